//! What the watcher does with what etcd sends: a burst of watch events
//! becomes change requests applied as one transaction (one publication);
//! a whole state of the prefix (start, reconnect, re-read, or a burst that
//! cannot be expressed as changes) is merged and validated whole.
//!
//! Event → request, per key, comparing its value before the burst (the
//! watch's `prev_kv`) with its value after (a key changed several times in a
//! burst counts once):
//! - `lookup/...`: absent → present `add_record`, present → present
//!   `replace_record`, present → absent `remove_record`;
//! - `customer_routes/...` and `acl/...`: `add_route`/`add_acl`,
//!   `remove_route`/`remove_acl`, and a changed value as remove then add;
//! - removals go first, then replacements and additions.
//!
//! The whole-prefix merge ([`Fallback`]: the watcher reads the prefix again
//! at the burst's revision) is for everything else: a changed routing domain
//! or subnet (no request exists for them), a key or value that does not parse
//! (the merge names every bad key), an emptied prefix, a transaction the
//! policy refuses (the merge then says why, naming keys), and any burst after
//! a refused state, until a whole state is accepted again (until then the
//! policy in force is not the prefix's last state, so a change relative to
//! that state would not apply to it). The watcher keeps no copy of the
//! prefix's content.
//!
//! Runs on the watcher's thread only.

use super::objects::{canonical, key_of, local_part, merged_policy, objects_of, parse_objects, shown, BadKey, Object, MAX_VALUE};
use super::status::StatusHandle;
use crate::config::EtcdConfig;
use crate::service::{OneLine, PolicyService, PortListChanged};
use hnv_policy::api::Request;
use hnv_policy::file::PolicyFile;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// A key's value before a burst and after it (`None`: absent).
type BeforeAfter = (Option<Vec<u8>>, Option<Vec<u8>>);

/// What a burst of watch events changed: each key's value before the burst
/// and after it, however many events touched it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Burst {
    keys: BTreeMap<Vec<u8>, BeforeAfter>,
}

impl Burst {
    /// An event: `key` went from `before` to `after` (`None`: absent).
    pub fn set(&mut self, key: Vec<u8>, before: Option<Vec<u8>>, after: Option<Vec<u8>>) {
        match self.keys.entry(key) {
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().1 = after,
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert((before, after));
            }
        }
    }

    /// Keys touched.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// No event yet.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Why a burst needs the whole prefix (read again and merged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fallback {
    /// A routing domain or subnet changed (no change request for them).
    #[error("{0} changed (no change request for it)")]
    Structure(String),
    /// A key or value that does not parse: the merge names it.
    #[error("{0} does not parse")]
    Unparsed(String),
    /// The policy in force does not follow the prefix (before the first
    /// accepted state, or after a refused one).
    #[error("the policy in force does not follow the prefix")]
    NotInSync,
    /// The prefix is empty (the merge keeps the policy in force).
    #[error("the prefix is empty")]
    Empty,
    /// The policy refused the changes (the merge says why, naming keys).
    #[error("the changes were refused: {0}")]
    Refused(String),
}

/// Parse `value` stored under the UTF-8 `key` as its canonical object.
fn object(prefix: &str, key: &[u8], value: &[u8]) -> Result<Object, Fallback> {
    let key = std::str::from_utf8(key).map_err(|_| Fallback::Unparsed(format!("key {}", key.escape_ascii())))?;
    let unparsed = || Fallback::Unparsed(format!("key {}", shown(key)));
    let rest = key.strip_prefix(prefix).ok_or_else(unparsed)?;
    if value.len() > MAX_VALUE {
        return Err(unparsed());
    }
    let o = Object::parse(rest.split('/').next().unwrap_or_default(), value).map_err(|_| unparsed())?;
    if key_of(prefix, &o) != key {
        return Err(unparsed());
    }
    Ok(o)
}

/// The change requests that take the prefix from its state before `burst` to the one after.
///
/// # Errors
/// What cannot be expressed as changes ([`Fallback`]).
pub fn changes(prefix: &str, burst: &Burst) -> Result<Vec<Request>, Fallback> {
    let (mut removals, mut others) = (Vec::new(), Vec::new());
    for (key, (old, new)) in &burst.keys {
        if old == new {
            continue;
        }
        let old = old.as_deref().map(|v| object(prefix, key, v)).transpose()?;
        let new = new.as_deref().map(|v| object(prefix, key, v)).transpose()?;
        match (old, new) {
            (Some(_), Some(Object::Lookup(n))) => others.push(Request::ReplaceRecord { record: n }),
            (None, Some(Object::Lookup(n))) => others.push(Request::AddRecord { record: n }),
            (Some(Object::Lookup(o)), None) => removals.push(Request::RemoveRecord { vsid: o.vsid, ca: o.ca }),
            (o @ (Some(Object::Route(_)) | None), n @ (Some(Object::Route(_)) | None)) => {
                if let Some(Object::Route(o)) = o {
                    removals.push(Request::RemoveRoute { routing_domain: o.routing_domain, vsid: o.vsid, destination: o.destination });
                }
                if let Some(Object::Route(n)) = n {
                    others.push(Request::AddRoute { route: n });
                }
            }
            (o @ (Some(Object::Acl(_)) | None), n @ (Some(Object::Acl(_)) | None)) => {
                if let Some(Object::Acl(o)) = o {
                    removals.push(Request::RemoveAcl { vsid: o.vsid, priority: o.priority });
                }
                if let Some(Object::Acl(n)) = n {
                    others.push(Request::AddAcl { rule: n });
                }
            }
            (o, n) => {
                let kind = n.as_ref().or(o.as_ref()).map_or("object", Object::kind);
                return Err(Fallback::Structure(format!("{kind} key {}", String::from_utf8_lossy(key))));
            }
        }
    }
    removals.extend(others);
    Ok(removals)
}

/// Why a whole state of the prefix was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Keys or values that do not parse, one line each.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Unparsed(Vec<BadKey>),
    /// The merged policy does not validate (one line per problem, naming keys).
    #[error(transparent)]
    Invalid(hnv_policy::PolicyError),
    /// The merged policy changes the port list.
    #[error(transparent)]
    Ports(#[from] PortListChanged),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many objects the tenant part of `p` makes (one per routing domain,
/// subnet, record, route and ACL rule; [`objects_of`] may list fewer if keys
/// coincide, which only makes the shortcut that uses this count not apply).
fn object_count(p: &hnv_policy::Policy) -> usize {
    p.routing_domains.len() + p.subnets.len() + p.lookup.len() + p.customer_routes.len() + p.acl.len()
}

/// Applies what etcd sends to the policy service, and reports in the status.
#[derive(Debug)]
pub struct Follower {
    service: Arc<PolicyService>,
    cfg: EtcdConfig,
    status: StatusHandle,
    /// The tenant part of the policy in force is the prefix's content as last
    /// applied: a burst can be applied as changes to it.
    in_sync: AtomicBool,
}

impl Follower {
    /// Follow `cfg.prefix` into `service`, reporting into `status`.
    pub fn new(service: Arc<PolicyService>, cfg: EtcdConfig, status: StatusHandle) -> Self {
        Follower { service, cfg, status, in_sync: AtomicBool::new(false) }
    }

    /// The status.
    pub fn status(&self) -> &StatusHandle {
        &self.status
    }

    /// The policy service.
    pub fn service(&self) -> &Arc<PolicyService> {
        &self.service
    }

    /// The configuration.
    pub fn cfg(&self) -> &EtcdConfig {
        &self.cfg
    }

    fn origin(&self, rev: i64) -> String {
        format!("etcd {}{} revision {rev}", self.cfg.endpoints.first().map(String::as_str).unwrap_or(""), self.cfg.prefix)
    }

    /// Apply a burst of events, after which the prefix holds `keys` keys at
    /// revision `rev`, as one transaction of changes.
    ///
    /// # Errors
    /// The burst needs the whole prefix ([`Follower::resync`]); nothing was changed.
    pub fn apply_burst(&self, burst: &Burst, keys: usize, rev: i64) -> Result<(), Fallback> {
        if !self.in_sync.load(Ordering::Relaxed) {
            return Err(Fallback::NotInSync);
        }
        if keys == 0 {
            return Err(Fallback::Empty);
        }
        let changes = changes(&self.cfg.prefix, burst)?;
        if changes.is_empty() {
            let mut st = lock(&self.status);
            st.revision = rev;
            st.applied_revision = rev;
            st.last_error = None;
            return Ok(());
        }
        let g = self.service.apply_source_changes(&changes).map_err(|e| Fallback::Refused(OneLine(&e).to_string()))?;
        log::info!("etcd revision {rev}: {} change(s) of {} key(s) applied as one transaction: policy generation {g}", changes.len(), burst.len());
        let mut st = lock(&self.status);
        st.revision = rev;
        st.applied_revision = rev;
        st.last_error = None;
        st.change_transactions += 1;
        Ok(())
    }

    /// Apply the prefix's whole content `kvs` at revision `rev`: parse, merge
    /// with the host's own parts in force, validate, publish when it differs
    /// from the policy in force. A refused state leaves the previous policy
    /// in force, logged once and shown in the status.
    pub fn resync<K: AsRef<[u8]>>(&self, kvs: &BTreeMap<K, Vec<u8>>, rev: i64) {
        if kvs.is_empty() {
            log::warn!("etcd revision {rev}: nothing is published under {} yet (hnvctl publish); the policy in force stays", self.cfg.prefix);
            let mut st = lock(&self.status);
            st.revision = rev;
            st.last_error = Some(format!("nothing published under {}", self.cfg.prefix));
            return;
        }
        let origin = self.origin(rev);
        let result = self.service.adopt_source(&origin, |current| {
            let objects = parse_objects(&self.cfg.prefix, kvs).map_err(Refusal::Unparsed)?;
            let local = local_part(current);
            // The policy in force holds these very objects (as published): nothing to validate or publish.
            // (Equal objects are equal merges with the same local part; comparing the objects spares
            // two copies of every record, and a different count spares listing the policy in force.)
            if objects.len() == object_count(current) && objects == objects_of(&self.cfg.prefix, &PolicyFile::from_policy(current)) {
                return Ok(None);
            }
            let policy = merged_policy(&local, &objects, &origin).map_err(Refusal::Invalid)?;
            // The same policy written differently (e.g. defaults left out) is not republished either.
            Ok::<_, Refusal>((canonical(current).as_ref() != Some(&policy)).then_some(policy))
        });
        self.in_sync.store(result.is_ok(), Ordering::Relaxed);
        let mut st = lock(&self.status);
        st.revision = rev;
        st.full_merges += 1;
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
                let e = OneLine(&e).to_string().replace(&format!("{origin}: "), "");
                log::error!("etcd revision {rev} refused, the previous policy stays in force: {e}");
                st.last_error = Some(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Tenants;
    use hnv_datapath::PolicyStore;
    use hnv_policy::example::BLUE_RED_HOST1;
    use hnv_policy::Policy;
    use std::path::PathBuf;

    fn host(text: &str) -> Policy {
        hnv_policy::parse(text, "t").unwrap()
    }

    fn follower(p: &Policy, state_file: Option<PathBuf>) -> Follower {
        let cfg = EtcdConfig::new(vec!["http://127.0.0.1:1".into()], "/hnv/".into());
        let service = Arc::new(PolicyService::new(Arc::new(PolicyStore::new(p.clone())), Tenants::Shared("etcd at http://127.0.0.1:1 (prefix /hnv/)".into()), state_file));
        Follower::new(service, cfg.clone(), crate::etcd::status::new_status(&cfg))
    }

    /// Host 1's follower, synced at revision 5 with host 1's policy in
    /// `/hnv/`: (follower, its store, the prefix's keys, the generation then).
    fn synced_host1() -> (Follower, Arc<PolicyStore>, Kvs, u64) {
        let h1 = host(BLUE_RED_HOST1);
        let f = follower(&h1, None);
        let store = f.service().store().clone();
        let kvs = raw(stored("/hnv/", &h1));
        f.resync(&kvs, 5);
        let g0 = store.snapshot().generation;
        (f, store, kvs, g0)
    }

    fn stored(prefix: &str, p: &Policy) -> BTreeMap<String, Vec<u8>> {
        objects_of(prefix, &PolicyFile::from_policy(p)).iter().map(|(k, o)| (k.clone(), o.to_json().into_bytes())).collect()
    }

    /// The prefix's content, as the tests keep it.
    type Kvs = BTreeMap<Vec<u8>, Vec<u8>>;

    fn raw(kvs: BTreeMap<String, Vec<u8>>) -> Kvs {
        kvs.into_iter().map(|(k, v)| (k.into_bytes(), v)).collect()
    }

    /// An event on `kvs`, recorded in `burst` as the watch does (with the value before it).
    fn set(kvs: &mut Kvs, burst: &mut Burst, key: Vec<u8>, value: Option<Vec<u8>>) {
        let before = match &value {
            Some(v) => kvs.insert(key.clone(), v.clone()),
            None => kvs.remove(&key),
        };
        burst.set(key, before, value);
    }

    /// What the watcher does with a burst: changes, or the whole prefix.
    fn apply(f: &Follower, kvs: &Kvs, burst: &Burst, rev: i64) {
        if f.apply_burst(burst, kvs.len(), rev).is_err() {
            f.resync(kvs, rev);
        }
    }

    #[test]
    fn sighup_takes_host_parts_from_the_file_and_tenant_parts_from_etcd() {
        let dir = std::env::temp_dir().join(format!("hnv-etcd-hup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (path, state) = (dir.join("p.toml"), dir.join("state.toml"));
        let h1 = host(BLUE_RED_HOST1);
        let f = follower(&h1, Some(state.clone()));
        let (service, store) = (f.service().clone(), f.service().store().clone());
        let mut moved = stored("/hnv/", &h1);
        let v = String::from_utf8(moved["/hnv/lookup/5001/10.0.0.7"].clone()).unwrap().replace("192.168.4.22", "192.168.4.33");
        moved.insert("/hnv/lookup/5001/10.0.0.7".into(), v.into_bytes());
        f.resync(&moved, 9);
        let g = store.snapshot().generation;
        // The file adds a neighbor and still has the old PA: the neighbor is taken, the PA is not.
        let text = BLUE_RED_HOST1.replacen("[[host.neighbors]]", "[[host.neighbors]]\naddress = \"192.168.4.23\"\nmac = \"02:00:c0:a8:04:17\"\n\n[[host.neighbors]]", 1);
        std::fs::write(&path, &text).unwrap();
        assert_eq!(service.reload_file(&path).unwrap(), g + 1);
        let p = store.policy();
        assert_eq!(p.host.neighbors.len(), 2);
        assert_eq!(p.lookup_record(hnv_policy::Vsid::new(5001).unwrap(), "10.0.0.7".parse().unwrap()).unwrap().pa, "192.168.4.33".parse::<std::net::IpAddr>().unwrap());
        assert!(std::fs::read_to_string(&state).unwrap().contains("192.168.4.23"), "saved");
        // A file that changes the port list is refused, and counted.
        std::fs::write(&path, text.replacen("net_ring_h1up", "net_ring_other", 1)).unwrap();
        assert!(service.reload_file(&path).unwrap_err().to_string().contains("port list changed"));
        assert_eq!(store.snapshot().generation, g + 1);
        assert_eq!((service.reload_status().ok, service.reload_status().failed), (1, 1));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_vm_that_moved_away_is_taken_forwarded_for_the_grace_period_and_later_revisions_apply() {
        let h1 = host(BLUE_RED_HOST1);
        let shared = follower(&h1, None);
        let store = shared.service().store().clone();
        let mut kvs = stored("/hnv/", &h1);
        shared.resync(&kvs, 5);
        // Blue1 (port blue1, 10.0.0.5) moves to host 2 with one put.
        let k = "/hnv/lookup/5001/10.0.0.5";
        let v = String::from_utf8(kvs[k].clone()).unwrap().replace("192.168.4.11", "192.168.4.22");
        kvs.insert(k.into(), v.into_bytes());
        shared.resync(&kvs, 6);
        let st = lock(shared.status()).clone();
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
        shared.resync(&kvs, 7);
        assert_eq!(lock(shared.status()).applied_revision, 7);
        assert!(store.snapshot().by_ca(vsid, ca).unwrap().forward_moved, "still in its grace period");
        // The grace period ends; Blue1 stays at host 2.
        assert!(store.expire_moved(std::time::Instant::now() + hnv_datapath::store::MIGRATION_GRACE));
        let d = store.snapshot().by_ca(vsid, ca).cloned().unwrap();
        assert!(!d.forward_moved && matches!(d.to, hnv_datapath::tables::Delivery::Encap(_)));
        // And it can come back with one more put.
        let v = String::from_utf8(kvs["/hnv/lookup/5001/10.0.0.5"].clone()).unwrap().replace("192.168.4.22", "192.168.4.11");
        kvs.insert("/hnv/lookup/5001/10.0.0.5".into(), v.into_bytes());
        shared.resync(&kvs, 8);
        assert_eq!(lock(shared.status()).applied_revision, 8);
        assert!(matches!(store.snapshot().by_ca(vsid, ca).unwrap().to, hnv_datapath::tables::Delivery::Local(1)));
    }

    #[test]
    fn hostile_keys_and_values_are_refused_by_key_and_never_panic() {
        let h1 = host(BLUE_RED_HOST1);
        let shared = follower(&h1, None);
        let store = shared.service().store().clone();
        let good: Kvs = stored("/hnv/", &h1).into_iter().map(|(k, v)| (k.into_bytes(), v)).collect();
        shared.resync(&good, 5);
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
            shared.resync(&kvs, rev);
            let st = lock(shared.status()).clone();
            let e = st.last_error.unwrap_or_default();
            assert!(e.contains(named) && e.contains(problem), "case {i}: {e}");
            assert!(!e.contains('\n') && !e.contains('\u{7}'), "case {i}: one line: {e:?}");
            assert_eq!((st.revision, st.applied_revision), (rev, 5), "case {i}");
            assert_eq!(store.snapshot().generation, g, "case {i}: the previous policy stays in force");
        }
        // The good state applies again afterwards.
        shared.resync(&good, 20);
        assert_eq!(lock(shared.status()).applied_revision, 20);
    }

    #[test]
    fn refused_and_unchanged_revisions_leave_the_store_alone() {
        let h1 = host(BLUE_RED_HOST1);
        let shared = follower(&h1, None);
        let store = shared.service().store().clone();
        let g0 = store.snapshot().generation;
        let mut kvs = stored("/hnv/", &h1);
        shared.resync(&kvs, 5);
        assert_eq!(store.snapshot().generation, g0, "the same policy is not republished");
        assert_eq!(lock(shared.status()).applied_revision, 5);
        shared.resync(&Kvs::new(), 6);
        assert_eq!(store.snapshot().generation, g0, "an empty prefix changes nothing");
        kvs.insert("/hnv/lookup/5001/10.0.0.7".into(), b"oops".to_vec());
        shared.resync(&kvs, 7);
        assert_eq!(store.snapshot().generation, g0);
        let st = lock(shared.status()).clone();
        assert_eq!((st.revision, st.applied_revision), (7, 5));
        assert!(st.last_error.unwrap().contains("key /hnv/lookup/5001/10.0.0.7"));
        let moved = String::from_utf8(stored("/hnv/", &h1)["/hnv/lookup/5001/10.0.0.7"].clone()).unwrap().replace("192.168.4.22", "192.168.4.33");
        kvs.insert("/hnv/lookup/5001/10.0.0.7".into(), moved.into_bytes());
        shared.resync(&kvs, 8);
        assert_eq!(store.snapshot().generation, g0 + 1);
        assert_eq!(store.snapshot().by_ca(5001, "10.0.0.7".parse().unwrap()).unwrap().pa, "192.168.4.33".parse::<std::net::IpAddr>().unwrap());
    }

    /// A put of `key` (a lookup record, JSON) with `from` replaced by `to`.
    fn edited(kvs: &Kvs, key: &str, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8(kvs[key.as_bytes()].clone()).unwrap().replace(from, to).into_bytes()
    }

    #[test]
    fn a_burst_of_revisions_is_one_transaction_and_one_publication() {
        let (f, store, mut kvs, g0) = synced_host1();
        // Ten revisions: a record moved back and forth, another moved, one removed, one added, an ACL rule added.
        let mut burst = Burst::default();
        let blue2 = "/hnv/lookup/5001/10.0.0.7";
        let base = kvs[blue2.as_bytes()].clone();
        for i in 0..6 {
            let v = String::from_utf8(base.clone()).unwrap().replace("192.168.4.22", &format!("192.168.4.{}", 30 + i));
            set(&mut kvs, &mut burst, blue2.as_bytes().to_vec(), Some(v.into_bytes()));
        }
        let red2 = "/hnv/lookup/6001/10.0.0.7";
        let v = edited(&kvs, red2, "192.168.4.22", "192.168.4.44");
        set(&mut kvs, &mut burst, red2.as_bytes().to_vec(), Some(v));
        set(&mut kvs, &mut burst, b"/hnv/lookup/5002/10.0.1.9".to_vec(), None);
        let new = hnv_policy::file::LookupFile { ca: "10.0.0.99".into(), vsid: 5001, mac: "00:15:5d:01:00:99".into(), pa: "192.168.4.22".into(), ..Default::default() };
        let o = Object::Lookup(new);
        set(&mut kvs, &mut burst, key_of("/hnv/", &o).into_bytes(), Some(o.to_json().into_bytes()));
        let rule = hnv_policy::file::AclFile { vsid: 5001, priority: 777, action: "deny".into(), ..Default::default() };
        let o = Object::Acl(rule);
        set(&mut kvs, &mut burst, key_of("/hnv/", &o).into_bytes(), Some(o.to_json().into_bytes()));
        assert_eq!(burst.len(), 5, "a key changed six times counts once");
        let reqs = changes("/hnv/", &burst).unwrap();
        assert!(matches!(reqs[0], Request::RemoveRecord { .. }), "removals first: {reqs:?}");
        assert_eq!(reqs.len(), 5);
        apply(&f, &kvs, &burst, 15);
        assert_eq!(store.snapshot().generation, g0 + 1, "one publication for the whole burst");
        let st = lock(f.status()).clone();
        assert_eq!((st.applied_revision, st.last_error.as_deref(), st.change_transactions, st.full_merges), (15, None, 1, 1), "no whole-prefix merge");
        let t = store.snapshot();
        assert_eq!(t.by_ca(5001, "10.0.0.7".parse().unwrap()).unwrap().pa, "192.168.4.35".parse::<std::net::IpAddr>().unwrap());
        assert_eq!(t.by_ca(6001, "10.0.0.7".parse().unwrap()).unwrap().pa, "192.168.4.44".parse::<std::net::IpAddr>().unwrap());
        assert!(t.by_ca(5002, "10.0.1.9".parse().unwrap()).is_none());
        assert!(t.by_ca(5001, "10.0.0.99".parse().unwrap()).is_some());
        assert!(store.policy().acl.iter().any(|a| a.priority == 777));
        // The policy in force is exactly the prefix's state: a whole merge finds nothing to publish.
        f.resync(&kvs, 16);
        assert_eq!(store.snapshot().generation, g0 + 1);
    }

    #[test]
    fn a_burst_that_is_not_changes_or_is_refused_falls_back_to_the_whole_prefix() {
        let (f, store, mut kvs, g0) = synced_host1();
        // A subnet change and a record move: one publication through the merge.
        let mut burst = Burst::default();
        let subnet = "/hnv/subnets/5002";
        let v = edited(&kvs, subnet, "10.0.1.0/24", "10.0.1.0/25");
        set(&mut kvs, &mut burst, subnet.as_bytes().to_vec(), Some(v));
        let blue2 = "/hnv/lookup/5001/10.0.0.7";
        let v = edited(&kvs, blue2, "192.168.4.22", "192.168.4.33");
        set(&mut kvs, &mut burst, blue2.as_bytes().to_vec(), Some(v));
        assert!(matches!(changes("/hnv/", &burst), Err(Fallback::Structure(_))));
        apply(&f, &kvs, &burst, 6);
        assert_eq!(store.snapshot().generation, g0 + 1);
        let st = lock(f.status()).clone();
        assert_eq!((st.applied_revision, st.change_transactions, st.full_merges), (6, 0, 2));
        // An invalid value: refused with the key named, nothing published.
        let mut burst = Burst::default();
        let v = edited(&kvs, blue2, "00:15:5d:01:00:07", "01:00:5e:00:00:01");
        set(&mut kvs, &mut burst, blue2.as_bytes().to_vec(), Some(v));
        apply(&f, &kvs, &burst, 7);
        let st = lock(f.status()).clone();
        assert_eq!(store.snapshot().generation, g0 + 1);
        assert!(st.last_error.as_deref().unwrap_or_default().contains(&format!("key {blue2}")), "{st:?}");
        assert_eq!(st.applied_revision, 6);
        // The next burst (another key) cannot apply as changes to a policy that missed one: merged whole, still refused.
        let mut burst = Burst::default();
        let red2 = "/hnv/lookup/6001/10.0.0.7";
        let v = edited(&kvs, red2, "192.168.4.22", "192.168.4.44");
        set(&mut kvs, &mut burst, red2.as_bytes().to_vec(), Some(v));
        apply(&f, &kvs, &burst, 8);
        assert_eq!(store.snapshot().generation, g0 + 1);
        assert_eq!(lock(f.status()).applied_revision, 6);
        // The fix: merged whole (both changes at once), and in sync again.
        let mut burst = Burst::default();
        let v = edited(&kvs, blue2, "01:00:5e:00:00:01", "00:15:5d:01:00:07");
        set(&mut kvs, &mut burst, blue2.as_bytes().to_vec(), Some(v));
        apply(&f, &kvs, &burst, 9);
        assert_eq!(store.snapshot().generation, g0 + 2);
        assert_eq!(store.snapshot().by_ca(6001, "10.0.0.7".parse().unwrap()).unwrap().pa, "192.168.4.44".parse::<std::net::IpAddr>().unwrap());
        let mut burst = Burst::default();
        set(&mut kvs, &mut burst, b"/hnv/lookup/5002/10.0.1.9".to_vec(), None);
        apply(&f, &kvs, &burst, 10);
        let st = lock(f.status()).clone();
        assert_eq!((store.snapshot().generation, st.applied_revision, st.change_transactions), (g0 + 3, 10, 1), "{st:?}");
    }
}
