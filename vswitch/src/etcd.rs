//! The etcd policy backend: the tenant policy shared by every host lives
//! under one etcd key prefix; each switch watches it and applies changes live.
//!
//! Contract:
//! - etcd holds only the tenant objects, one key per object, the value being
//!   the JSON of the policy file's struct (see [`key_of`] for the layout). Each
//!   host keeps `[host]` and `[[ports]]` from its own policy (or state) file;
//!   the two are merged and validated like a policy file, with shared records
//!   ([`SHARED`]): a local VM port whose records place its VM at another host's
//!   PA is a VM that is elsewhere, not an error.
//! - Moving a VM is one put of its lookup key with the new host's PA. The host
//!   it leaves keeps the port (until `hnvctl port remove NAME`) and takes the
//!   revision: the VM's traffic is encapsulated to the new PA, and NVGRE still
//!   arriving for it is forwarded there for the grace period with REDIRECTs to
//!   the senders, exactly as after `hnvctl port remove --moved-to`; later
//!   revisions apply as usual, and a restart resumes from the state file. The
//!   host it arrives at may have had the port all along (its VM elsewhere).
//! - The [`Watcher`] runs on its own thread with a current-thread tokio
//!   runtime; workers never wait on etcd. On start and on every reconnect it
//!   reads the whole prefix, then watches from the next revision; changes
//!   arriving within [`DEBOUNCE`] of each other are published as one snapshot.
//! - A state of the prefix with a key that is not UTF-8, a value over
//!   [`MAX_VALUE`] bytes, a key or value that does not parse, a key that is not
//!   its value's canonical key, or a merged policy that fails validation is
//!   refused with one log line naming the keys (escaped) and problems; the
//!   previous policy stays in force. Nothing etcd sends makes the thread
//!   panic. An empty prefix changes nothing. The port list never changes
//!   through etcd; `hnvctl port add/remove` changes it locally
//!   ([`Watcher::change_ports`]), and later revisions merge with the new
//!   ports. Each accepted policy is saved to the state file.
//! - When another host answers this one's traffic with an MS-NVGREE
//!   UNREACHABLE (this host's policy is stale), the watcher re-reads the prefix
//!   (at most once per [`REREAD_EVERY`]).
//! - Connections use TLS, a client certificate and an etcd user as `[etcd]`
//!   says ([`crate::etcd_security`]: the files are re-read on every
//!   connection); a refused connection is reported with what it means
//!   ([`explain`]).
//! - While etcd is unreachable the switch forwards on its last good policy,
//!   logs the loss once and retries with backoff ([`BACKOFF_MIN`] to [`BACKOFF_MAX`]).

use crate::config::EtcdConfig;
use crate::etcd_security::{explain, Credentials};
use anyhow::{bail, Context, Result};
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Txn, TxnOp, WatchOptions};
use hnv_datapath::PolicyStore;
use hnv_policy::file::{AclFile, CustomerRouteFile, LookupFile, PolicyFile, RoutingDomainFile, SubnetFile};
use hnv_policy::{FieldError, Policy, PolicyError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// Validation of a merged policy: the lookup records are shared by every host.
pub const SHARED: hnv_policy::Options = hnv_policy::Options { shared_records: true };

/// Key prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "/hnv/";
/// Changes arriving within this window are applied as one snapshot.
pub const DEBOUNCE: Duration = Duration::from_millis(20);
/// First retry delay after a lost connection.
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often the watcher checks whether an MS-NVGREE UNREACHABLE asks for a re-read.
const STALE_CHECK: Duration = Duration::from_millis(200);
/// At most one re-read on UNREACHABLE per this interval (a flood of them must not load etcd).
const REREAD_EVERY: Duration = Duration::from_secs(5);
/// Limit on one etcd request (a read, creating the watch, a publish).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// One tenant object as stored under the prefix.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// `<prefix>routing_domains/<name>`
    RoutingDomain(RoutingDomainFile),
    /// `<prefix>subnets/<vsid>`
    Subnet(SubnetFile),
    /// `<prefix>lookup/<vsid>/<ca>`
    Lookup(LookupFile),
    /// `<prefix>customer_routes/<routing_domain>/<vsid>/<destination>/<next_hop>`
    Route(CustomerRouteFile),
    /// `<prefix>acl/<vsid>/<priority>`
    Acl(AclFile),
}

/// The object kinds, as the first key segment after the prefix and as the policy file's array names.
const KINDS: [&str; 5] = ["routing_domains", "subnets", "lookup", "customer_routes", "acl"];

/// An address in canonical text when it parses, else as written.
fn canon_ip(s: &str) -> String {
    s.parse::<std::net::IpAddr>().map(|a| a.to_string()).unwrap_or_else(|_| s.to_string())
}

/// A prefix `addr/len` with the address in canonical text when it parses.
fn canon_prefix(s: &str) -> String {
    match s.split_once('/') {
        Some((a, l)) => format!("{}/{l}", canon_ip(a)),
        None => canon_ip(s),
    }
}

impl Object {
    /// Its kind: the first key segment after the prefix.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::RoutingDomain(_) => KINDS[0],
            Object::Subnet(_) => KINDS[1],
            Object::Lookup(_) => KINDS[2],
            Object::Route(_) => KINDS[3],
            Object::Acl(_) => KINDS[4],
        }
    }

    /// Its key relative to the prefix, from the fields that identify it.
    pub fn name(&self) -> String {
        match self {
            Object::RoutingDomain(r) => format!("routing_domains/{}", r.name),
            Object::Subnet(s) => format!("subnets/{}", s.vsid),
            Object::Lookup(r) => format!("lookup/{}/{}", r.vsid, canon_ip(&r.ca)),
            Object::Route(r) => format!("customer_routes/{}/{}/{}/{}", r.routing_domain, r.vsid, canon_prefix(&r.destination), canon_ip(&r.next_hop)),
            Object::Acl(a) => format!("acl/{}/{}", a.vsid, a.priority),
        }
    }

    /// Parse a value stored under a key of `kind`.
    ///
    /// # Errors
    /// An unknown kind, or a value that is not the kind's JSON object.
    pub fn parse(kind: &str, value: &[u8]) -> Result<Object, String> {
        fn json<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T, String> {
            serde_json::from_slice(v).map_err(|e| format!("value is not a valid JSON object of this kind: {e}"))
        }
        Ok(match kind {
            "routing_domains" => Object::RoutingDomain(json(value)?),
            "subnets" => Object::Subnet(json(value)?),
            "lookup" => Object::Lookup(json(value)?),
            "customer_routes" => Object::Route(json(value)?),
            "acl" => Object::Acl(json(value)?),
            other => return Err(format!("unknown object kind {other:?} (expected one of {})", KINDS.join(", "))),
        })
    }

    /// The value stored for it: the JSON of the policy-file struct.
    pub fn to_json(&self) -> String {
        let r = match self {
            Object::RoutingDomain(x) => serde_json::to_string(x),
            Object::Subnet(x) => serde_json::to_string(x),
            Object::Lookup(x) => serde_json::to_string(x),
            Object::Route(x) => serde_json::to_string(x),
            Object::Acl(x) => serde_json::to_string(x),
        };
        // The file structs hold only strings, integers, options and arrays: they always serialize.
        r.unwrap_or_default()
    }
}

/// The full key of `o` under `prefix`. The layout, one key per object:
/// `routing_domains/<name>`, `subnets/<vsid>`, `lookup/<vsid>/<ca>`,
/// `customer_routes/<routing_domain>/<vsid>/<destination>/<next_hop>` and
/// `acl/<vsid>/<priority>`, addresses in canonical text.
pub fn key_of(prefix: &str, o: &Object) -> String {
    format!("{prefix}{}", o.name())
}

/// The tenant objects of a policy file, keyed under `prefix`, in key order.
pub fn objects_of(prefix: &str, f: &PolicyFile) -> BTreeMap<String, Object> {
    let all = f
        .routing_domains
        .iter()
        .cloned()
        .map(Object::RoutingDomain)
        .chain(f.subnets.iter().cloned().map(Object::Subnet))
        .chain(f.lookup.iter().cloned().map(Object::Lookup))
        .chain(f.customer_routes.iter().cloned().map(Object::Route))
        .chain(f.acl.iter().cloned().map(Object::Acl));
    all.map(|o| (key_of(prefix, &o), o)).collect()
}

/// Longest value accepted under a key (a tenant object's JSON is a few hundred bytes).
pub const MAX_VALUE: usize = 64 * 1024;

/// A key or value from etcd made safe for one log line.
fn shown(s: &str) -> String {
    s.escape_debug().to_string()
}

/// Parse every key/value under `prefix` into objects. Keys are raw bytes as
/// etcd holds them (or strings, in tests).
///
/// # Errors
/// One line per bad key (`key K: problem`, K escaped): a key that is not
/// UTF-8, an unknown kind, a value over [`MAX_VALUE`] bytes, a value that does
/// not parse, or a key that is not the canonical key of its value.
pub fn parse_objects<K: AsRef<[u8]>>(prefix: &str, kvs: &BTreeMap<K, Vec<u8>>) -> Result<BTreeMap<String, Object>, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for (key, value) in kvs {
        let Ok(key) = std::str::from_utf8(key.as_ref()) else {
            problems.push(format!("key {}: not UTF-8", key.as_ref().escape_ascii()));
            continue;
        };
        let Some(rest) = key.strip_prefix(prefix) else {
            problems.push(format!("key {}: not under the prefix {prefix}", shown(key)));
            continue;
        };
        if value.len() > MAX_VALUE {
            problems.push(format!("key {}: value of {} bytes is over the limit of {MAX_VALUE}", shown(key), value.len()));
            continue;
        }
        let kind = rest.split('/').next().unwrap_or_default();
        match Object::parse(kind, value) {
            Ok(o) => {
                let want = key_of(prefix, &o);
                if want == key {
                    out.insert(want, o);
                } else {
                    problems.push(format!("key {}: holds the object whose key is {}", shown(key), shown(&want)));
                }
            }
            Err(e) => problems.push(format!("key {}: {e}", shown(key))),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// `local`'s host and ports with the tenant `objects`, in key order.
pub fn merge(local: &PolicyFile, objects: &BTreeMap<String, Object>) -> PolicyFile {
    let mut f = PolicyFile { host: local.host.clone(), ports: local.ports.clone(), ..Default::default() };
    for o in objects.values() {
        match o.clone() {
            Object::RoutingDomain(x) => f.routing_domains.push(x),
            Object::Subnet(x) => f.subnets.push(x),
            Object::Lookup(x) => f.lookup.push(x),
            Object::Route(x) => f.customer_routes.push(x),
            Object::Acl(x) => f.acl.push(x),
        }
    }
    f
}

/// Validate the merge of `local` and `objects` like a policy file named `origin`.
/// Validation errors on tenant records name their etcd key instead of the array index.
///
/// # Errors
/// Every validation failure, one per line.
pub fn merged_policy(local: &PolicyFile, objects: &BTreeMap<String, Object>, origin: &str) -> Result<Policy, String> {
    let f = merge(local, objects);
    hnv_policy::validate_with(&f, origin, SHARED).map_err(|e| match e {
        PolicyError::Invalid { errors, .. } => {
            let keys: Vec<(&str, Vec<&String>)> = KINDS.iter().map(|k| (*k, objects.iter().filter(|(_, o)| o.kind() == *k).map(|(key, _)| key).collect())).collect();
            errors.iter().map(|fe| format!("{origin}: {}", rename(fe, &keys))).collect::<Vec<_>>().join("\n")
        }
        other => other.to_string(),
    })
}

/// `lookup[3] (ca ..)` → `key /hnv/lookup/.. (ca ..)`.
fn rename(fe: &FieldError, keys: &[(&str, Vec<&String>)]) -> FieldError {
    let mut fe = fe.clone();
    if let Some((head, rest)) = fe.record.split_once('[') {
        if let Some((idx, tail)) = rest.split_once(']') {
            let key = keys.iter().find(|(k, _)| *k == head).and_then(|(_, ks)| idx.parse::<usize>().ok().and_then(|i| ks.get(i)));
            if let Some(key) = key {
                fe.record = format!("key {key}{tail}");
            }
        }
    }
    fe
}

/// The host-local part of a policy: `[host]` and `[[ports]]`.
fn local_part(p: &Policy) -> PolicyFile {
    let f = PolicyFile::from_policy(p);
    PolicyFile { host: f.host, ports: f.ports, ..Default::default() }
}

/// `p` with its tenant records in key order, as a merge produces them.
fn canonical(p: &Policy) -> Option<Policy> {
    merged_policy(&local_part(p), &objects_of("", &PolicyFile::from_policy(p)), "").ok()
}

fn same_ports(a: &Policy, b: &Policy) -> bool {
    a.ports.len() == b.ports.len() && a.ports.iter().zip(&b.ports).all(|(x, y)| x.name == y.name && x.devargs == y.devargs && x.role == y.role)
}

/// What `hnvctl show policy` reports about the backend.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// Client URLs.
    pub endpoints: Vec<String>,
    /// Key prefix.
    pub prefix: String,
    /// A watch is established.
    pub connected: bool,
    /// Latest revision read from etcd (0 = none yet).
    pub revision: i64,
    /// Revision of the policy in force (0 = none yet: the local file's policy).
    pub applied_revision: i64,
    /// Why the latest revision was refused, or why the connection failed.
    pub last_error: Option<String>,
}

impl Status {
    /// One line: where the policy comes from and how current it is.
    pub fn line(&self) -> String {
        format!(
            "etcd {} prefix {}: {}, revision {} read, {} applied{}",
            self.endpoints.join(","),
            self.prefix,
            if self.connected { "connected" } else { "NOT connected (forwarding on the last good policy)" },
            self.revision,
            self.applied_revision,
            self.last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default()
        )
    }
}

/// The backend status shared with the control socket.
pub type StatusHandle = Arc<Mutex<Status>>;

/// A status for `cfg`, not yet connected.
pub fn new_status(cfg: &EtcdConfig) -> StatusHandle {
    Arc::new(Mutex::new(Status { endpoints: cfg.endpoints.clone(), prefix: cfg.prefix.clone(), ..Default::default() }))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Shared {
    store: Arc<PolicyStore>,
    state_file: Option<PathBuf>,
    cfg: EtcdConfig,
    status: StatusHandle,
    /// Serialises merges (watcher and SIGHUP reload) with their publication.
    merge: Mutex<MergeState>,
}

struct MergeState {
    /// `[host]` and `[[ports]]` in force.
    local: PolicyFile,
    /// The last accepted tenant objects (none before the first accepted revision).
    objects: Option<BTreeMap<String, Object>>,
}

impl Shared {
    fn origin(&self, rev: i64) -> String {
        format!("etcd {}{} revision {rev}", self.cfg.endpoints.first().map(String::as_str).unwrap_or(""), self.cfg.prefix)
    }

    /// Merge, validate and publish; `Ok(None)` when the policy in force is already this one.
    fn adopt(&self, m: &mut MergeState, local: PolicyFile, objects: BTreeMap<String, Object>, origin: &str) -> Result<Option<u64>, String> {
        let policy = merged_policy(&local, &objects, origin)?;
        let current = self.store.policy();
        if !same_ports(&current, &policy) {
            return Err(format!("{origin}: the port list changed (change ports with hnvctl port add/remove)"));
        }
        m.local = local;
        m.objects = Some(objects);
        if canonical(&current).as_ref() == Some(&policy) {
            return Ok(None);
        }
        let generation = self.store.replace(policy);
        self.save();
        Ok(Some(generation))
    }

    /// Save the policy in force to the state file (callers hold `merge`, so saves never overlap).
    fn save(&self) {
        if let Some(path) = &self.state_file {
            if let Err(e) = crate::ctl::persist(&self.store, path) {
                log::error!("cannot save state to {}: {e}", path.display());
            }
        }
    }

    /// Apply the prefix's content at revision `rev`.
    fn apply<K: AsRef<[u8]>>(&self, kvs: &BTreeMap<K, Vec<u8>>, rev: i64) {
        if kvs.is_empty() {
            log::warn!("etcd revision {rev}: nothing is published under {} yet (hnvctl publish); the policy in force stays", self.cfg.prefix);
            let mut st = lock(&self.status);
            st.revision = rev;
            st.last_error = Some(format!("nothing published under {}", self.cfg.prefix));
            return;
        }
        let mut m = lock(&self.merge);
        let result = {
            let origin = self.origin(rev);
            parse_objects(&self.cfg.prefix, kvs).map_err(|p| p.into_iter().map(|l| format!("{origin}: {l}")).collect::<Vec<_>>().join("\n")).and_then(|objects| {
                let local = m.local.clone();
                self.adopt(&mut m, local, objects, &origin)
            })
        };
        let mut st = lock(&self.status);
        st.revision = rev;
        match result {
            Ok(g) => {
                st.applied_revision = rev;
                st.last_error = None;
                match g {
                    Some(g) => log::info!("etcd revision {rev} applied ({} keys under {}): policy generation {g}", kvs.len(), self.cfg.prefix),
                    None => log::info!("etcd revision {rev} ({} keys under {}) matches the policy in force", kvs.len(), self.cfg.prefix),
                }
            }
            Err(e) => {
                let e = e.replace(&format!("{}: ", self.origin(rev)), "").replace('\n', "; ");
                log::error!("etcd revision {rev} refused, the previous policy stays in force: {e}");
                st.last_error = Some(e);
            }
        }
    }
}

/// A running etcd watcher; dropping it stops the thread.
pub struct Watcher {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").field("status", &*lock(&self.shared.status)).finish()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Watcher {
    /// Start watching `cfg.prefix`, reporting into `status` (from [`new_status`]);
    /// `store` holds the local policy until the first accepted revision.
    ///
    /// # Errors
    /// The TLS or password files of `cfg` cannot be used (the error names the
    /// key), or the thread or its runtime cannot be created.
    pub fn start(cfg: &EtcdConfig, store: Arc<PolicyStore>, state_file: Option<PathBuf>, status: StatusHandle) -> Result<Watcher> {
        // A missing or unreadable certificate, key or password file stops the switch at start.
        if Credentials::load(cfg).map_err(anyhow::Error::msg)?.password_in_clear() {
            log::warn!("etcd {}: user {:?} over http://: the password crosses the network unencrypted (use https:// with etcd.ca_file)", cfg.endpoints.join(","), cfg.user.as_deref().unwrap_or(""));
        }
        let local = local_part(&store.policy());
        let shared = Arc::new(Shared { store, state_file, cfg: cfg.clone(), status, merge: Mutex::new(MergeState { local, objects: None }) });
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("creating the etcd watcher's runtime")?;
        let (stop, stop_rx) = watch::channel(false);
        let s = shared.clone();
        let thread = std::thread::Builder::new().name("hnv-etcd".into()).spawn(move || rt.block_on(run(s, stop_rx))).context("starting the etcd watcher thread")?;
        Ok(Watcher { shared, stop, thread: Some(thread) })
    }

    /// The status, shared with the control socket.
    pub fn status(&self) -> StatusHandle {
        self.shared.status.clone()
    }

    /// SIGHUP with etcd on: take `[host]` and `[[ports]]` from the policy file
    /// at `path`, merge them with the last accepted tenant objects (or take the
    /// whole file before any), validate, publish and save the state file. The
    /// previous policy stays in force on any error.
    ///
    /// # Errors
    /// The file does not load, the merge is invalid, or the port list changed.
    pub fn reload_local(&self, path: &Path) -> Result<u64> {
        let result = (|| {
            let file = hnv_policy::load_with(path, SHARED).map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut m = lock(&self.shared.merge);
            let origin = format!("{} with {}", path.display(), self.shared.origin(lock(&self.shared.status).applied_revision));
            match m.objects.clone() {
                Some(objects) => Ok(self.shared.adopt(&mut m, local_part(&file), objects, &origin).map_err(anyhow::Error::msg)?.unwrap_or_else(|| self.shared.store.snapshot().generation)),
                None => {
                    if !same_ports(&self.shared.store.policy(), &file) {
                        bail!("{}: the port list changed (change ports with hnvctl port add/remove)", path.display());
                    }
                    m.local = local_part(&file);
                    let generation = self.shared.store.replace(file);
                    self.shared.save();
                    Ok(generation)
                }
            }
        })();
        match &result {
            Ok(g) => log::info!("host policy reloaded from {} and merged with etcd (generation {g})", path.display()),
            Err(e) => log::error!("policy reload rejected, the previous policy stays in force: {}", e.to_string().replace('\n', "; ")),
        }
        result
    }
}

impl Watcher {
    /// `hnvctl port add/remove` with etcd on: edit the ports of the policy in
    /// force, validate, let `switch` apply it to the running switch (it
    /// publishes the policy), then keep the new ports as the local part that
    /// later etcd revisions merge with, and save the state file. Serialised
    /// with etcd revisions and SIGHUP reloads. Lookup records live in etcd, so
    /// a change carrying records is refused.
    ///
    /// # Errors
    /// The change is invalid or `switch` failed; nothing changed then.
    pub fn change_ports(&self, req: &hnv_policy::api::Request, switch: impl FnOnce(Policy) -> Result<u64, String>) -> Result<u64, String> {
        use hnv_policy::api::Request;
        match req {
            Request::AddPort { records, .. } if !records.is_empty() => return Err("lookup records are managed by etcd: a port change here cannot carry them".into()),
            Request::RemovePort { with_records: true, .. } | Request::RemovePort { moved_to: Some(_), .. } => return Err("lookup records are managed by etcd: change them there".into()),
            _ => {}
        }
        let mut m = lock(&self.shared.merge);
        let policy = hnv_policy::api::apply_with(&self.shared.store.policy(), req, SHARED).map_err(|e| e.to_string().replace('\n', "; "))?.ok_or("not a port change")?;
        let local = local_part(&policy);
        let generation = switch(policy)?;
        m.local = local;
        self.shared.save();
        Ok(generation)
    }
}

fn options(creds: &Credentials) -> ConnectOptions {
    creds.apply(ConnectOptions::new()).with_connect_timeout(REQUEST_TIMEOUT).with_keep_alive(Duration::from_secs(1), Duration::from_secs(2)).with_keep_alive_while_idle(true)
}

async fn timed<T>(what: &str, f: impl std::future::Future<Output = Result<T, etcd_client::Error>>) -> Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(r) => r.with_context(|| what.to_string()),
        Err(_) => bail!("{what}: no answer within {} s", REQUEST_TIMEOUT.as_secs()),
    }
}

/// Reconnect forever with backoff until `stop`.
async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut backoff = BACKOFF_MIN;
    let mut reported = false;
    let mut ever = false;
    loop {
        let mut connected = false;
        let r = tokio::select! {
            r = session(&shared, &mut connected, ever) => r,
            _ = stop.changed() => return,
        };
        if connected {
            backoff = BACKOFF_MIN;
            reported = false;
            ever = true;
        }
        let e = match r {
            Ok(()) => return,
            Err(e) => explain(&e, &shared.cfg),
        };
        {
            let mut st = lock(&shared.status);
            st.connected = false;
            st.last_error = Some(e.clone());
        }
        if !reported {
            log::warn!(
                "etcd {}: {e}; forwarding continues on the last good policy (generation {}), retrying every {}-{} ms",
                shared.cfg.endpoints.join(","),
                shared.store.snapshot().generation,
                BACKOFF_MIN.as_millis(),
                BACKOFF_MAX.as_millis()
            );
            reported = true;
        } else {
            log::debug!("etcd: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection: full read, then watch until an error.
async fn session(shared: &Shared, connected: &mut bool, reconnect: bool) -> Result<()> {
    let cfg = &shared.cfg;
    // Re-read on every connection: renewed certificates take effect on the next reconnect.
    let creds = Credentials::load(cfg).map_err(anyhow::Error::msg)?;
    let mut client = timed("connecting", Client::connect(&cfg.endpoints, Some(options(&creds)))).await?;
    let resp = timed("reading the prefix", client.get(cfg.prefix.as_str(), Some(GetOptions::new().with_prefix()))).await?;
    let mut rev = resp.header().map_or(0, |h| h.revision());
    let mut kvs = key_values(&resp);
    let mut stream = timed("creating the watch", client.watch(cfg.prefix.as_str(), Some(WatchOptions::new().with_prefix().with_start_revision(rev.saturating_add(1))))).await?;
    *connected = true;
    lock(&shared.status).connected = true;
    log::info!("etcd {}: {}, {} keys under {} at revision {rev}", cfg.endpoints.join(","), if reconnect { "reconnected, resynchronising" } else { "connected" }, kvs.len(), cfg.prefix);
    shared.apply(&kvs, rev);
    let mut unreachable = shared.store.unreachable_received();
    let mut tick = tokio::time::interval(STALE_CHECK);
    let mut last_reread = std::time::Instant::now().checked_sub(REREAD_EVERY).unwrap_or_else(std::time::Instant::now);
    loop {
        let msg = tokio::select! {
            m = stream.message() => m.context("watch")?,
            _ = tick.tick() => {
                // Another host said this one's policy is stale (MS-NVGREE UNREACHABLE): re-read the prefix.
                let now = shared.store.unreachable_received();
                if now != unreachable && last_reread.elapsed() >= REREAD_EVERY {
                    last_reread = std::time::Instant::now();
                    unreachable = now;
                    let resp = timed("re-reading the prefix", client.get(cfg.prefix.as_str(), Some(GetOptions::new().with_prefix()))).await?;
                    let r = resp.header().map_or(rev, |h| h.revision());
                    let fresh = key_values(&resp);
                    log::info!("etcd: UNREACHABLE received; re-read {} keys at revision {r}", fresh.len());
                    if fresh != kvs {
                        kvs = fresh;
                        rev = rev.max(r);
                        shared.apply(&kvs, rev);
                    }
                }
                continue;
            }
        };
        let mut changed = absorb(msg, &mut kvs, &mut rev)?;
        if changed {
            let deadline = tokio::time::Instant::now() + DEBOUNCE;
            while let Ok(msg) = tokio::time::timeout_at(deadline, stream.message()).await {
                changed |= absorb(msg.context("watch")?, &mut kvs, &mut rev)?;
            }
        }
        if changed {
            shared.apply(&kvs, rev);
        }
    }
}

/// The prefix's content: raw key bytes to values.
type Kvs = BTreeMap<Vec<u8>, Vec<u8>>;

fn key_values(resp: &etcd_client::GetResponse) -> Kvs {
    resp.kvs().iter().map(|kv| (kv.key().to_vec(), kv.value().to_vec())).collect()
}

/// Fold one watch response into `kvs`; true if it carried events.
fn absorb(msg: Option<etcd_client::WatchResponse>, kvs: &mut Kvs, rev: &mut i64) -> Result<bool> {
    let Some(resp) = msg else { bail!("the watch stream ended") };
    if resp.canceled() || resp.compact_revision() > 0 {
        bail!("etcd cancelled the watch ({}; compacted to revision {})", resp.cancel_reason(), resp.compact_revision());
    }
    if let Some(h) = resp.header() {
        *rev = (*rev).max(h.revision());
    }
    for ev in resp.events() {
        let Some(kv) = ev.kv() else { continue };
        let key = kv.key().to_vec();
        *rev = (*rev).max(kv.mod_revision());
        match ev.event_type() {
            EventType::Put => {
                kvs.insert(key, kv.value().to_vec());
            }
            EventType::Delete => {
                kvs.remove(&key);
            }
        }
    }
    Ok(!resp.events().is_empty())
}

/// What [`publish`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Keys written (new or changed).
    pub put: usize,
    /// Keys deleted (no longer in the policy).
    pub deleted: usize,
    /// Keys left as they were.
    pub unchanged: usize,
    /// The etcd revision after the publish.
    pub revision: i64,
}

/// Publish the tenant objects of `policy` under `cfg.prefix` in one transaction:
/// write new and changed keys, delete keys under the prefix that are no longer
/// in the policy. The transaction is conditional on nothing under the prefix
/// having changed since it was read (it is retried a few times otherwise).
///
/// # Errors
/// Unusable TLS or password files (the error names the key), etcd unreachable
/// or refusing this client, a refused transaction (e.g. more changes than
/// etcd's `--max-txn-ops`, default 128), or a prefix that kept changing.
pub fn publish(cfg: &EtcdConfig, policy: &Policy) -> Result<Published> {
    let creds = Credentials::load(cfg).map_err(anyhow::Error::msg)?;
    let (endpoints, prefix) = (&cfg.endpoints, cfg.prefix.as_str());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("creating a runtime")?;
    let want: BTreeMap<Vec<u8>, String> = objects_of(prefix, &PolicyFile::from_policy(policy)).iter().map(|(k, o)| (k.clone().into_bytes(), o.to_json())).collect();
    rt.block_on(async {
        let at = endpoints.join(",");
        let fail = |e: anyhow::Error| anyhow::anyhow!("etcd {at}: {}", explain(&e, cfg));
        let mut client = timed("connecting", Client::connect(endpoints, Some(options(&creds)))).await.map_err(fail)?;
        for _ in 0..5 {
            let resp = timed("reading the prefix", client.get(prefix, Some(GetOptions::new().with_prefix()))).await.map_err(fail)?;
            let rev = resp.header().map_or(0, |h| h.revision());
            let have = key_values(&resp);
            let mut ops = Vec::new();
            let mut put = 0;
            for (k, v) in &want {
                if have.get(k).map(Vec::as_slice) != Some(v.as_bytes()) {
                    ops.push(TxnOp::put(k.as_slice(), v.as_str(), None));
                    put += 1;
                }
            }
            // Every other key under the prefix goes, UTF-8 or not.
            let stale: Vec<&Vec<u8>> = have.keys().filter(|k| !want.contains_key(*k)).collect();
            for k in &stale {
                ops.push(TxnOp::delete(k.as_slice(), None));
            }
            let unchanged = want.len() - put;
            if ops.is_empty() {
                return Ok(Published { put: 0, deleted: 0, unchanged, revision: rev });
            }
            let n = ops.len();
            let txn = Txn::new().when([Compare::mod_revision(prefix, CompareOp::Less, rev.saturating_add(1)).with_prefix()]).and_then(ops);
            let hint = if n > 128 { " (more than etcd's default --max-txn-ops of 128)" } else { "" };
            let r = timed("publishing", client.txn(txn)).await.map_err(|e| anyhow::anyhow!("etcd {at}: a transaction of {n} operations{hint}: {}", explain(&e, cfg)))?;
            if r.succeeded() {
                return Ok(Published { put, deleted: stale.len(), unchanged, revision: r.header().map_or(0, |h| h.revision()) });
            }
        }
        bail!("etcd {at}: keys under {prefix} kept changing while publishing; try again")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hnv_policy::example::{BLUE_RED_HOST1, BLUE_RED_HOST2};

    fn host(text: &str) -> Policy {
        hnv_policy::parse(text, "t").unwrap()
    }

    fn test_shared(store: &Arc<PolicyStore>, p: &Policy) -> Shared {
        let cfg = EtcdConfig::new(vec!["http://127.0.0.1:1".into()], "/hnv/".into());
        Shared { store: store.clone(), state_file: None, cfg, status: Arc::default(), merge: Mutex::new(MergeState { local: local_part(p), objects: None }) }
    }

    fn stored(prefix: &str, p: &Policy) -> BTreeMap<String, Vec<u8>> {
        objects_of(prefix, &PolicyFile::from_policy(p)).iter().map(|(k, o)| (k.clone(), o.to_json().into_bytes())).collect()
    }

    #[test]
    fn a_published_policy_merges_back_into_every_host() {
        let (h1, h2) = (host(BLUE_RED_HOST1), host(BLUE_RED_HOST2));
        let kvs = stored("/hnv/", &h1);
        assert!(kvs.contains_key("/hnv/lookup/5001/10.0.0.7"), "{:?}", kvs.keys().collect::<Vec<_>>());
        assert!(kvs.keys().all(|k| KINDS.iter().any(|kind| k.starts_with(&format!("/hnv/{kind}/")))));
        let objects = parse_objects("/hnv/", &kvs).unwrap();
        // Host 1 gets its own policy back; host 2 gets host 1's tenant parts with its own host and ports.
        assert_eq!(merged_policy(&local_part(&h1), &objects, "t").unwrap(), canonical(&h1).unwrap());
        let m2 = merged_policy(&local_part(&h2), &objects, "t").unwrap();
        assert_eq!((m2.host.clone(), m2.ports.clone()), (h2.host.clone(), h2.ports.clone()));
        assert_eq!(m2.lookup.len(), h1.lookup.len());
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let h1 = host(BLUE_RED_HOST1);
        let mut kvs = stored("/hnv/", &h1);
        kvs.insert("/hnv/lookup/5001/10.0.0.7".into(), b"{not json".to_vec());
        kvs.insert("/hnv/colours/red".into(), b"{}".to_vec());
        let wrong = kvs["/hnv/subnets/5001"].clone();
        kvs.insert("/hnv/subnets/6001x".into(), wrong);
        let problems = parse_objects("/hnv/", &kvs).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("key /hnv/lookup/5001/10.0.0.7: value is not a valid JSON")), "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("key /hnv/colours/red: unknown object kind")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("key /hnv/subnets/6001x: holds the object whose key is /hnv/subnets/5001")), "{problems:?}");
    }

    #[test]
    fn validation_errors_name_the_etcd_key() {
        let h1 = host(BLUE_RED_HOST1);
        let mut kvs = stored("/hnv/", &h1);
        let k = "/hnv/lookup/5001/10.0.0.7".to_string();
        let v = String::from_utf8(kvs[&k].clone()).unwrap().replace("00:15:5d:01:00:07", "01:00:5e:00:00:01");
        kvs.insert(k.clone(), v.into_bytes());
        let objects = parse_objects("/hnv/", &kvs).unwrap();
        let e = merged_policy(&local_part(&h1), &objects, "etcd x").unwrap_err();
        assert!(e.contains(&format!("etcd x: key {k} (ca 10.0.0.7, vsid 5001): field 'mac'")), "{e}");
    }

    #[test]
    fn sighup_takes_host_parts_from_the_file_and_tenant_parts_from_etcd() {
        let dir = std::env::temp_dir().join(format!("hnv-etcd-hup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (path, state) = (dir.join("p.toml"), dir.join("state.toml"));
        let h1 = host(BLUE_RED_HOST1);
        let store = Arc::new(PolicyStore::new(h1.clone()));
        // Nothing listens on port 1: the watcher keeps retrying in the background.
        let cfg = EtcdConfig::new(vec!["http://127.0.0.1:1".into()], "/hnv/".into());
        let w = Watcher::start(&cfg, store.clone(), Some(state.clone()), new_status(&cfg)).unwrap();
        let mut moved = stored("/hnv/", &h1);
        let v = String::from_utf8(moved["/hnv/lookup/5001/10.0.0.7"].clone()).unwrap().replace("192.168.4.22", "192.168.4.33");
        moved.insert("/hnv/lookup/5001/10.0.0.7".into(), v.into_bytes());
        w.shared.apply(&moved, 9);
        let g = store.snapshot().generation;
        // The file adds a neighbor and still has the old PA: the neighbor is taken, the PA is not.
        let text = BLUE_RED_HOST1.replacen("[[host.neighbors]]", "[[host.neighbors]]\naddress = \"192.168.4.23\"\nmac = \"02:00:c0:a8:04:17\"\n\n[[host.neighbors]]", 1);
        std::fs::write(&path, &text).unwrap();
        assert_eq!(w.reload_local(&path).unwrap(), g + 1);
        let p = store.policy();
        assert_eq!(p.host.neighbors.len(), 2);
        assert_eq!(p.lookup_record(hnv_policy::Vsid::new(5001).unwrap(), "10.0.0.7".parse().unwrap()).unwrap().pa, "192.168.4.33".parse::<std::net::IpAddr>().unwrap());
        assert!(std::fs::read_to_string(&state).unwrap().contains("192.168.4.23"), "saved");
        // A file that changes the port list is refused.
        std::fs::write(&path, text.replacen("net_ring_h1up", "net_ring_other", 1)).unwrap();
        assert!(w.reload_local(&path).unwrap_err().to_string().contains("port list changed"));
        assert_eq!(store.snapshot().generation, g + 1);
        assert!(!lock(&w.status()).connected);
        drop(w);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_vm_that_moved_away_is_taken_forwarded_for_the_grace_period_and_later_revisions_apply() {
        let h1 = host(BLUE_RED_HOST1);
        let store = Arc::new(PolicyStore::new(h1.clone()));
        let shared = test_shared(&store, &h1);
        let mut kvs = stored("/hnv/", &h1);
        shared.apply(&kvs, 5);
        // Blue1 (port blue1, 10.0.0.5) moves to host 2 with one put.
        let k = "/hnv/lookup/5001/10.0.0.5";
        let v = String::from_utf8(kvs[k].clone()).unwrap().replace("192.168.4.11", "192.168.4.22");
        kvs.insert(k.into(), v.into_bytes());
        shared.apply(&kvs, 6);
        let st = lock(&shared.status).clone();
        assert_eq!((st.applied_revision, st.last_error), (6, None));
        let (vsid, ca) = (5001, "10.0.0.5".parse().unwrap());
        let d = store.snapshot().by_ca(vsid, ca).cloned().unwrap();
        assert_eq!(d.pa, "192.168.4.22".parse::<std::net::IpAddr>().unwrap());
        assert!(matches!(d.to, hnv_datapath::tables::Delivery::Encap(_)), "{:?}", d.to);
        assert!(d.forward_moved, "late NVGRE for Blue1 is forwarded to its new host");
        assert!(store.policy().ports.iter().any(|p| p.name == "blue1"), "the port stays until hnvctl port remove");
        // A later revision for the other tenant applies.
        let k = "/hnv/lookup/6001/10.0.0.7";
        let v = String::from_utf8(kvs[k].clone()).unwrap().replace("Red2", "Red2b");
        kvs.insert(k.into(), v.into_bytes());
        shared.apply(&kvs, 7);
        assert_eq!(lock(&shared.status).applied_revision, 7);
        assert!(store.snapshot().by_ca(vsid, ca).unwrap().forward_moved, "still in its grace period");
        // The grace period ends; Blue1 stays at host 2.
        assert!(store.expire_moved(std::time::Instant::now() + hnv_datapath::store::MIGRATION_GRACE));
        let d = store.snapshot().by_ca(vsid, ca).cloned().unwrap();
        assert!(!d.forward_moved && matches!(d.to, hnv_datapath::tables::Delivery::Encap(_)));
        // And it can come back with one more put.
        let v = String::from_utf8(kvs["/hnv/lookup/5001/10.0.0.5"].clone()).unwrap().replace("192.168.4.22", "192.168.4.11");
        kvs.insert("/hnv/lookup/5001/10.0.0.5".into(), v.into_bytes());
        shared.apply(&kvs, 8);
        assert_eq!(lock(&shared.status).applied_revision, 8);
        assert!(matches!(store.snapshot().by_ca(vsid, ca).unwrap().to, hnv_datapath::tables::Delivery::Local(1)));
    }

    #[test]
    fn hostile_keys_and_values_are_refused_by_key_and_never_panic() {
        let h1 = host(BLUE_RED_HOST1);
        let store = Arc::new(PolicyStore::new(h1.clone()));
        let shared = test_shared(&store, &h1);
        let good: Kvs = stored("/hnv/", &h1).into_iter().map(|(k, v)| (k.into_bytes(), v)).collect();
        shared.apply(&good, 5);
        let g = store.snapshot().generation;
        let k = "/hnv/lookup/5001/10.0.0.7";
        let nested = "[".repeat(MAX_VALUE - 1);
        let cases: [(&[u8], Vec<u8>, &str, &str); 7] = [
            (b"/hnv/lookup/5001/\xff\xfe", b"{}".to_vec(), "key /hnv/lookup/5001/\\xff\\xfe: not UTF-8", ""),
            (k.as_bytes(), vec![0xff, 0xfe, b'{'], k, "not a valid JSON object"),
            (k.as_bytes(), vec![b' '; MAX_VALUE + 1], k, "value of 65537 bytes is over the limit of 65536"),
            (k.as_bytes(), nested.into_bytes(), k, "not a valid JSON object"),
            (k.as_bytes(), b"ca = \"10.0.0.7\"\nvsid = 5001".to_vec(), k, "not a valid JSON object"),
            (b"/hnv/acl\n/1", b"{}".to_vec(), "key /hnv/acl\\n/1: unknown object kind", ""),
            (b"/hnv/routing_domains/a\nb", br#"{"name":"a\nb\u0007"}"#.to_vec(), "key /hnv/routing_domains/a\\nb: holds the object whose key is /hnv/routing_domains/a\\nb\\u{7}", ""),
        ];
        for (i, (key, value, named, problem)) in cases.into_iter().enumerate() {
            let mut kvs = good.clone();
            kvs.insert(key.to_vec(), value);
            let rev = 6 + i as i64;
            shared.apply(&kvs, rev);
            let st = lock(&shared.status).clone();
            let e = st.last_error.unwrap_or_default();
            assert!(e.contains(named) && e.contains(problem), "case {i}: {e}");
            assert!(!e.contains('\n') && !e.contains('\u{7}'), "case {i}: one line: {e:?}");
            assert_eq!((st.revision, st.applied_revision), (rev, 5), "case {i}");
            assert_eq!(store.snapshot().generation, g, "case {i}: the previous policy stays in force");
        }
        // The good state applies again afterwards.
        shared.apply(&good, 20);
        assert_eq!(lock(&shared.status).applied_revision, 20);
    }

    #[test]
    fn refused_and_unchanged_revisions_leave_the_store_alone() {
        let h1 = host(BLUE_RED_HOST1);
        let store = Arc::new(PolicyStore::new(h1.clone()));
        let shared = test_shared(&store, &h1);
        let g0 = store.snapshot().generation;
        let mut kvs = stored("/hnv/", &h1);
        shared.apply(&kvs, 5);
        assert_eq!(store.snapshot().generation, g0, "the same policy is not republished");
        assert_eq!(lock(&shared.status).applied_revision, 5);
        shared.apply(&Kvs::new(), 6);
        assert_eq!(store.snapshot().generation, g0, "an empty prefix changes nothing");
        kvs.insert("/hnv/lookup/5001/10.0.0.7".into(), b"oops".to_vec());
        shared.apply(&kvs, 7);
        assert_eq!(store.snapshot().generation, g0);
        let st = lock(&shared.status).clone();
        assert_eq!((st.revision, st.applied_revision), (7, 5));
        assert!(st.last_error.unwrap().contains("key /hnv/lookup/5001/10.0.0.7"));
        let moved = String::from_utf8(stored("/hnv/", &h1)["/hnv/lookup/5001/10.0.0.7"].clone()).unwrap().replace("192.168.4.22", "192.168.4.33");
        kvs.insert("/hnv/lookup/5001/10.0.0.7".into(), moved.into_bytes());
        shared.apply(&kvs, 8);
        assert_eq!(store.snapshot().generation, g0 + 1);
        assert_eq!(store.snapshot().by_ca(5001, "10.0.0.7".parse().unwrap()).unwrap().pa, "192.168.4.33".parse::<std::net::IpAddr>().unwrap());
    }
}
