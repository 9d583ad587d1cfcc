//! The policy service: the one owner of the policy in force, through which
//! every source of change goes.
//!
//! Sources and the entry point each uses:
//! - the policy file: at start ([`PolicyService::new`] with the loaded policy,
//!   then [`PolicyService::start_state_file`]) and on SIGHUP
//!   ([`PolicyService::reload_file`], outcome counted in [`ReloadStatus`]);
//! - `hnvctl` record, route and ACL changes, one request or a batch, each one
//!   transaction ([`PolicyService::change`]);
//! - etcd: a burst of revisions as one transaction
//!   ([`PolicyService::apply_source_changes`]), the whole prefix on resync
//!   ([`PolicyService::adopt_source`]);
//! - port hot-add and remove ([`PolicyService::change_ports`], with the
//!   runtime behind a [`PortBackend`]).
//!
//! The adapters around it (control socket in `ctl`, etcd watcher in `etcd`,
//! the control loop in `hnv`) translate their input into these calls and
//! render the typed errors ([`error`]) at their edge. Every change is
//! validated and published as one snapshot through the datapath's
//! [`PolicyStore`], then saved to the state file ([`state_file`]: a snapshot,
//! and for a large policy a journal of transactions) before it is
//! acknowledged. Changes are serialised by one edit lock; readers (`show`,
//! metrics, workers) never take it. Nothing here runs on a worker.

pub mod error;
pub mod state_file;

pub use error::{ChangeError, OneLine, PortChangeError, PortListChanged, ReloadError};
pub use state_file::StateFile;

use hnv_datapath::PolicyStore;
use hnv_policy::api::Request;
use hnv_policy::file::{PolicyFile, PortFile};
use hnv_policy::{Options, Policy};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Validation of a policy whose lookup records are shared by every host
/// (etcd): a local VM port whose records place its VM at another host's PA is
/// a VM that is elsewhere, not an error.
pub const SHARED_RECORDS: Options = Options { shared_records: true };

/// Where the tenant policy (routing domains, subnets, records, routes, ACL) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenants {
    /// The policy file, changed with `hnvctl`.
    Local,
    /// A source shared by every host, e.g. `etcd at http://h:2379 (prefix /hnv/)`:
    /// `hnvctl` changes to tenant objects are refused, records are validated as shared.
    Shared(String),
}

/// Outcomes of reloading the policy file (SIGHUP), for `hnvctl show policy` and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReloadStatus {
    /// Reloads that published the file.
    pub ok: u64,
    /// Reloads refused (the previous policy stayed in force).
    pub failed: u64,
    /// Why the latest reload was refused; none when it succeeded (or none was tried).
    pub last_error: Option<String>,
}

/// What the edit lock guards.
#[derive(Debug)]
struct Edits {
    /// A shared source has delivered a policy: a reload takes only the host parts from the file.
    from_source: bool,
    /// Where accepted changes are saved.
    state_file: Option<StateFile>,
}

/// The policy service. Shared by the control socket's threads, the etcd
/// watcher and the main thread (`Arc`).
#[derive(Debug)]
pub struct PolicyService {
    store: Arc<PolicyStore>,
    tenants: Tenants,
    /// Held from reading the policy in force to publishing and saving the
    /// next one, so that no two changes overwrite each other.
    edits: Mutex<Edits>,
    /// Port names in switch-port order (written under `edits`, read by anyone).
    ports: Mutex<Arc<[String]>>,
    reloads: Mutex<ReloadStatus>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Same port names, devargs and roles, in the same order.
pub fn same_ports(a: &Policy, b: &Policy) -> bool {
    a.ports.len() == b.ports.len() && a.ports.iter().zip(&b.ports).all(|(x, y)| x.name == y.name && x.devargs == y.devargs && x.role == y.role)
}

fn names_of(p: &Policy) -> Arc<[String]> {
    p.ports.iter().map(|p| p.name.clone()).collect()
}

/// The opened port a [`PortBackend`] swaps in, or the index of the one it removes.
#[derive(Debug)]
pub enum PortSwap<P> {
    /// Append `port` as the last switch port.
    Add {
        /// Its name.
        name: String,
        /// The port, opened by [`PortBackend::open`].
        port: P,
    },
    /// Remove switch port `index`; later ports move down by one.
    Remove {
        /// Switch-port index.
        index: usize,
    },
}

/// The running switch's side of a port change (DPDK ports and workers).
pub trait PortBackend {
    /// An opened port, not yet polled.
    type Opened;

    /// Open `port`, to be switch port `index`, while the workers keep forwarding.
    ///
    /// # Errors
    /// DPDK's reason.
    fn open(&self, port: &PortFile, index: usize) -> anyhow::Result<Self::Opened>;

    /// Pause the workers; apply `swap` to the port list, the workers' port
    /// maps and per-port state (new names: `names`); run `publish` (which
    /// publishes the matching policy); resume the workers. Returns how long
    /// the workers were paused (at most).
    ///
    /// # Errors
    /// The workers did not pause; nothing changed then.
    fn swap(&self, swap: PortSwap<Self::Opened>, names: &[String], publish: &mut dyn FnMut()) -> anyhow::Result<std::time::Duration>;
}

/// A port change that took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortChanged {
    /// The policy generation that has the new port list.
    pub generation: u64,
    /// How long the workers were paused (from asking them to pause until they resumed).
    pub pause: std::time::Duration,
}

impl PolicyService {
    /// A service publishing through `store`, whose policy is the one in force.
    pub fn new(store: Arc<PolicyStore>, tenants: Tenants, state_file: Option<PathBuf>) -> Self {
        let ports = names_of(&store.policy());
        let edits = Edits { from_source: false, state_file: state_file.map(StateFile::new) };
        PolicyService { store, tenants, edits: Mutex::new(edits), ports: Mutex::new(ports), reloads: Mutex::default() }
    }

    /// The store the workers read.
    pub fn store(&self) -> &Arc<PolicyStore> {
        &self.store
    }

    /// Where the tenant policy comes from.
    pub fn tenants(&self) -> &Tenants {
        &self.tenants
    }

    /// How policies are validated here.
    pub fn options(&self) -> Options {
        match self.tenants {
            Tenants::Local => Options::default(),
            Tenants::Shared(_) => SHARED_RECORDS,
        }
    }

    /// The generation in force.
    pub fn generation(&self) -> u64 {
        self.store.snapshot().generation
    }

    /// Port names in switch-port order (no copy of the policy).
    pub fn port_names(&self) -> Arc<[String]> {
        lock(&self.ports).clone()
    }

    /// Outcomes of SIGHUP reloads so far.
    pub fn reload_status(&self) -> ReloadStatus {
        lock(&self.reloads).clone()
    }

    /// At start: remove what a killed switch left next to the state file and save the policy in force.
    ///
    /// # Errors
    /// The state file cannot be written.
    pub fn start_state_file(&self) -> std::io::Result<()> {
        let mut edits = lock(&self.edits);
        match &mut edits.state_file {
            Some(sf) => sf.start(&self.store),
            None => Ok(()),
        }
    }

    /// Journal changes once the state file's snapshot reaches `bytes` (`control.state_journal_threshold`).
    pub fn set_journal_threshold(&self, bytes: u64) {
        if let Some(sf) = &mut lock(&self.edits).state_file {
            sf.set_threshold(bytes);
        }
    }

    /// Save the transaction `changes` that made `generation` (the caller holds the edit lock).
    fn save_changes(&self, edits: &mut Edits, generation: u64, changes: &[Request]) {
        if let Some(sf) = &mut edits.state_file {
            if let Err(e) = sf.save_changes(&self.store, generation, changes) {
                log::error!("cannot save state to {}: {e}", sf.path().display());
            }
        }
    }

    /// Save the whole policy in force (the caller holds the edit lock).
    fn save_snapshot(&self, edits: &mut Edits) {
        if let Some(sf) = &mut edits.state_file {
            if let Err(e) = sf.save_snapshot(&self.store) {
                log::error!("cannot save state to {}: {e}", sf.path().display());
            }
        }
    }

    /// `hnvctl`: apply `changes` (records, routes, ACL rules) as one transaction,
    /// validated together and published as one snapshot, then saved. Returns
    /// the generation in force (unchanged when nothing changed).
    ///
    /// # Errors
    /// The tenant policy comes from a shared source, a request is not a
    /// policy change (ports have [`PolicyService::change_ports`]), or the
    /// store refused the transaction; nothing changed then.
    pub fn change(&self, changes: &[Request]) -> Result<u64, ChangeError> {
        if let Tenants::Shared(source) = &self.tenants {
            return Err(ChangeError::Managed(source.clone()));
        }
        if let Some(op) = changes.iter().find_map(not_a_policy_change) {
            return Err(ChangeError::NotAChange(op));
        }
        self.transaction(changes).map_err(ChangeError::from)
    }

    /// A shared source (etcd): apply `changes` translated from its updates as
    /// one transaction (one publication), then save.
    ///
    /// # Errors
    /// The store refused the transaction; nothing changed then.
    pub fn apply_source_changes(&self, changes: &[Request]) -> Result<u64, hnv_policy::api::ChangeError> {
        self.transaction(changes)
    }

    fn transaction(&self, changes: &[Request]) -> Result<u64, hnv_policy::api::ChangeError> {
        let mut edits = lock(&self.edits);
        let before = self.generation();
        let generation = self.store.change(changes, self.options())?;
        if generation != before {
            self.save_changes(&mut edits, generation, changes);
        }
        Ok(generation)
    }

    /// A shared source's whole state (etcd on start, reconnect or fallback):
    /// `build` gets the policy in force and returns the policy to publish, or
    /// `None` when the one in force is already it. The port list must not
    /// change. Returns the new generation, `None` when nothing was published.
    ///
    /// # Errors
    /// What `build` returned, or [`PortListChanged`] converted into `E`.
    pub fn adopt_source<E: From<PortListChanged>>(&self, origin: &str, build: impl FnOnce(&Policy) -> Result<Option<Policy>, E>) -> Result<Option<u64>, E> {
        let mut edits = lock(&self.edits);
        let current = self.store.policy();
        let Some(policy) = build(&current)? else {
            edits.from_source = true;
            return Ok(None);
        };
        if !same_ports(&current, &policy) {
            return Err(PortListChanged { origin: origin.to_string() }.into());
        }
        edits.from_source = true;
        let generation = self.store.replace(policy);
        self.save_snapshot(&mut edits);
        Ok(Some(generation))
    }

    /// SIGHUP: reload the policy file at `path`. With a shared source that
    /// has delivered, only `[host]` and `[[ports]]` are taken from the file and
    /// merged with the tenant policy in force. The outcome is logged and
    /// counted ([`PolicyService::reload_status`]); on error the previous
    /// policy stays in force.
    ///
    /// # Errors
    /// The file does not load, the merge does not validate, or the port list changed.
    pub fn reload_file(&self, path: &Path) -> Result<u64, ReloadError> {
        let result = self.reload(path);
        let mut st = lock(&self.reloads);
        match &result {
            Ok(g) => {
                st.ok += 1;
                st.last_error = None;
                log::info!("policy reloaded from {} (generation {g})", path.display());
            }
            Err(e) => {
                st.failed += 1;
                st.last_error = Some(OneLine(e).to_string());
                log::error!("policy reload rejected, the previous policy stays in force: {}", OneLine(e));
            }
        }
        result
    }

    fn reload(&self, path: &Path) -> Result<u64, ReloadError> {
        let file = hnv_policy::load_with(path, self.options()).map_err(ReloadError::Load)?;
        let mut edits = lock(&self.edits);
        let current = self.store.policy();
        if !same_ports(&current, &file) {
            return Err(PortListChanged { origin: path.display().to_string() }.into());
        }
        let policy = match (&self.tenants, edits.from_source) {
            (Tenants::Shared(source), true) => {
                // Host parts from the file, tenant parts as the source delivered them.
                let host = PolicyFile::from_policy(&file);
                let merged = PolicyFile { host: host.host, ports: host.ports, ..PolicyFile::from_policy(&current) };
                hnv_policy::validate_with(&merged, &format!("{} with {source}", path.display()), self.options()).map_err(ReloadError::Merge)?
            }
            _ => file,
        };
        let generation = self.store.replace(policy);
        self.save_snapshot(&mut edits);
        Ok(generation)
    }

    /// Hot-add or remove a port (`add_port`, `remove_port`), in this order:
    /// 1. validate the change and compile its tables
    ///    ([`PolicyStore::prepare`]) while the workers forward;
    /// 2. open an added port in DPDK while the workers forward;
    /// 3. pause the workers, swap the port list and the workers' port maps,
    ///    publish the prepared tables in the same pause ([`PolicyStore::commit`],
    ///    a pointer swap: port indices in the tables and the workers' maps
    ///    always agree), resume ([`PortBackend::swap`]);
    /// 4. save the state file.
    ///
    /// A removed port is closed by the backend after the pause. Returns the new
    /// generation and the workers' pause.
    ///
    /// # Errors
    /// Any step's; the ports and the policy in force are then as they were.
    pub fn change_ports<B: PortBackend>(&self, req: &Request, backend: &B) -> Result<PortChanged, PortChangeError> {
        let mut edits = lock(&self.edits);
        let (step, names) = self.plan_port_change(req)?;
        // 1. Validate and compile.
        let prepared = self.store.prepare(std::slice::from_ref(req), self.options())?;
        // 2. Open an added port.
        let swap = match step {
            PortStep::Add { index, port } => PortSwap::Add { name: port.name.clone(), port: backend.open(port, index).map_err(PortChangeError::Open)? },
            PortStep::Remove { index } => PortSwap::Remove { index },
        };
        // 3. Pause, swap, publish, resume.
        let mut prepared = Some(prepared);
        let mut published = Err(hnv_policy::api::ChangeError::Conflict("not published".into()));
        let pause = backend
            .swap(swap, &names, &mut || {
                if let Some(p) = prepared.take() {
                    // Nothing else publishes meanwhile (the edit lock, and the datapath's feedback runs on
                    // this thread); were it to, the change is applied again, compiled within the pause.
                    published = self.store.commit(p).or_else(|_| self.store.change(std::slice::from_ref(req), self.options()));
                }
            })
            .map_err(PortChangeError::Swap)?;
        *lock(&self.ports) = names.into();
        let generation = published.map_err(|e| {
            log::error!("the ports changed but their policy was not published: {}", OneLine(&e));
            PortChangeError::Invalid(e)
        })?;
        // 4. Save.
        self.save_changes(&mut edits, generation, std::slice::from_ref(req));
        match req {
            Request::AddPort { port, .. } => log::info!("port {} added (policy generation {generation}; workers paused {} µs)", port.name, pause.as_micros()),
            Request::RemovePort { name, .. } => log::info!("port {name} removed (policy generation {generation}; workers paused {} µs)", pause.as_micros()),
            _ => {}
        }
        Ok(PortChanged { generation, pause })
    }

    /// Where the port change `req` goes, and the port names after it (not yet validated).
    fn plan_port_change<'r>(&self, req: &'r Request) -> Result<(PortStep<'r>, Vec<String>), PortChangeError> {
        if let Tenants::Shared(source) = &self.tenants {
            let what = match req {
                Request::AddPort { records, .. } if !records.is_empty() => Some("a port change here cannot carry them"),
                Request::RemovePort { with_records: true, .. } | Request::RemovePort { moved_to: Some(_), .. } => Some("change them there"),
                _ => None,
            };
            if let Some(what) = what {
                return Err(PortChangeError::RecordsShared { origin: source.clone(), what });
            }
        }
        let mut names: Vec<String> = self.port_names().to_vec();
        let step = match req {
            Request::AddPort { port, .. } => {
                names.push(port.name.clone());
                PortStep::Add { index: names.len() - 1, port }
            }
            Request::RemovePort { name, .. } => match names.iter().position(|p| p == name) {
                Some(index) => {
                    names.remove(index);
                    PortStep::Remove { index }
                }
                None => return Err(hnv_policy::api::ChangeError::NotFound(format!("no port named {name:?}")).into()),
            },
            _ => return Err(PortChangeError::NotAPortChange),
        };
        Ok((step, names))
    }
}

/// Where a port change goes.
#[derive(Debug, Clone, Copy)]
enum PortStep<'r> {
    Add { index: usize, port: &'r PortFile },
    Remove { index: usize },
}

/// The `op` of a request that is not a change of records, routes or ACL rules.
fn not_a_policy_change(r: &Request) -> Option<&'static str> {
    match r {
        Request::Show { .. } => Some("show"),
        Request::AddPort { .. } => Some("add_port"),
        Request::RemovePort { .. } => Some("remove_port"),
        Request::CaptureStart { .. } => Some("capture_start"),
        Request::CaptureStop => Some("capture_stop"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hnv_policy::example::BLUE_RED_HOST1;
    use hnv_policy::file::LookupFile;
    use std::cell::RefCell;

    fn service(tenants: Tenants, state_file: Option<PathBuf>) -> PolicyService {
        PolicyService::new(Arc::new(PolicyStore::new(hnv_policy::parse(BLUE_RED_HOST1, "t").unwrap())), tenants, state_file)
    }

    fn blue2(pa: &str) -> LookupFile {
        LookupFile { ca: "10.0.0.7".into(), vsid: 5001, mac: "00:15:5d:01:00:07".into(), pa: pa.into(), ..Default::default() }
    }

    fn tmp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hnv-service-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_rejected_reload_leaves_the_previous_policy_in_force_and_is_counted() {
        let dir = tmp("reload");
        let path = dir.join("p.toml");
        let s = service(Tenants::Local, None);
        let before = s.store().snapshot();
        for bad in
            [BLUE_RED_HOST1.replacen("vsid = 5001", "vsid = 1", 1), BLUE_RED_HOST1.replacen("[[lookup]]", "[[lookup]]\nbogus = 1", 1), BLUE_RED_HOST1.replacen("name = \"red1\"", "name = \"red9\"", 1)]
        {
            std::fs::write(&path, bad).unwrap();
            assert!(s.reload_file(&path).is_err());
            assert!(Arc::ptr_eq(&before, &s.store().snapshot()), "snapshot unchanged");
        }
        let st = s.reload_status();
        assert_eq!((st.ok, st.failed), (0, 3));
        assert!(st.last_error.as_deref().is_some_and(|e| e.contains("port list changed") && !e.contains('\n')), "{st:?}");
        let moved = BLUE_RED_HOST1.replacen("pa = \"192.168.4.22\"", "pa = \"192.168.4.33\"", 1);
        std::fs::write(&path, &moved).unwrap();
        assert_eq!(s.reload_file(&path).unwrap(), 2);
        assert_eq!(s.reload_status(), ReloadStatus { ok: 1, failed: 3, last_error: None });
        let after = s.store().snapshot();
        assert_eq!(after.by_ca(5001, "10.0.0.7".parse().unwrap()).unwrap().pa, "192.168.4.33".parse::<std::net::IpAddr>().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_transaction_applies_whole_or_not_at_all_and_is_saved() {
        let dir = tmp("txn");
        let state = dir.join("state.toml");
        let s = service(Tenants::Local, Some(state.clone()));
        s.start_state_file().unwrap();
        let g0 = s.generation();
        let good = [Request::ReplaceRecord { record: blue2("192.168.4.33") }, Request::RemoveRecord { vsid: 6001, ca: "10.0.0.7".into() }];
        // One bad change among good ones: nothing changes.
        let bad = [good[0].clone(), Request::RemoveRecord { vsid: 5001, ca: "10.9.9.9".into() }];
        assert!(matches!(s.change(&bad), Err(ChangeError::Refused(hnv_policy::api::ChangeError::NotFound(_)))));
        assert_eq!(s.generation(), g0);
        assert!(!std::fs::read_to_string(&state).unwrap().contains("192.168.4.33"));
        // Ports and show are not policy changes.
        let port = Request::RemovePort { name: "blue1".into(), with_records: true, moved_to: None };
        assert!(matches!(s.change(&[good[0].clone(), port]), Err(ChangeError::NotAChange("remove_port"))));
        assert_eq!(s.change(&good).unwrap(), g0 + 1, "two changes, one publication");
        let p = s.store().policy();
        assert!(p.lookup_record(hnv_policy::Vsid::new(6001).unwrap(), "10.0.0.7".parse().unwrap()).is_none());
        assert!(std::fs::read_to_string(&state).unwrap().contains("192.168.4.33"), "saved before the answer");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_restart_resumes_with_every_saved_change_also_from_the_journal() {
        let dir = tmp("journal");
        let state = dir.join("state.toml");
        let s = service(Tenants::Local, Some(state.clone()));
        s.set_journal_threshold(0);
        s.start_state_file().unwrap();
        s.change(&[Request::ReplaceRecord { record: blue2("192.168.4.33") }]).unwrap();
        s.change(&[Request::RemoveRecord { vsid: 6001, ca: "10.0.0.7".into() }]).unwrap();
        let backend = FakePorts::default();
        s.change_ports(&Request::RemovePort { name: "red1".into(), with_records: true, moved_to: None }, &backend).unwrap();
        assert!(state_file::journal_path(&state).exists());
        let (p, replayed) = state_file::load(&state, Options::default()).unwrap();
        assert_eq!(replayed.transactions, 3);
        assert_eq!(p, s.store().policy(), "the snapshot and the journal give the policy in force");
        // The next run starts from it and writes its own snapshot.
        let next = PolicyService::new(Arc::new(PolicyStore::new(p)), Tenants::Local, Some(state.clone()));
        next.start_state_file().unwrap();
        assert!(!state_file::journal_path(&state).exists());
        assert_eq!(state_file::load(&state, Options::default()).unwrap().0, s.store().policy());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_shared_source_refuses_hnvctl_changes_and_records_on_port_changes() {
        let s = service(Tenants::Shared("etcd at http://h:2379 (prefix /hnv/)".into()), None);
        let e = s.change(&[Request::ReplaceRecord { record: blue2("192.168.4.33") }]).unwrap_err().to_string();
        assert!(e.contains("managed by etcd at http://h:2379"), "{e}");
        let backend = FakePorts::default();
        let e = s.change_ports(&Request::RemovePort { name: "blue1".into(), with_records: true, moved_to: None }, &backend).unwrap_err().to_string();
        assert!(e.contains("lookup records are managed by etcd"), "{e}");
        assert_eq!(s.apply_source_changes(&[Request::ReplaceRecord { record: blue2("192.168.4.33") }]).unwrap(), 2, "the source itself applies");
    }

    /// A runtime that records what it was asked to do.
    #[derive(Default)]
    struct FakePorts {
        log: RefCell<Vec<String>>,
        refuse_open: bool,
    }

    impl PortBackend for FakePorts {
        type Opened = String;
        fn open(&self, port: &PortFile, index: usize) -> anyhow::Result<String> {
            self.log.borrow_mut().push(format!("open {} as {index}", port.name));
            anyhow::ensure!(!self.refuse_open, "DPDK rejected the device");
            Ok(port.devargs.clone())
        }
        fn swap(&self, swap: PortSwap<String>, names: &[String], publish: &mut dyn FnMut()) -> anyhow::Result<std::time::Duration> {
            self.log.borrow_mut().push(format!("pause; {swap:?}; names {}", names.join(",")));
            publish();
            self.log.borrow_mut().push("published; resume".into());
            Ok(std::time::Duration::from_micros(7))
        }
    }

    #[test]
    fn a_port_change_validates_opens_then_swaps_and_publishes_in_one_pause() {
        let s = service(Tenants::Local, None);
        let port = PortFile {
            name: "blue9".into(),
            role: "vm".into(),
            devargs: "net_null_blue9".into(),
            vsid: Some(5001),
            mac: Some("00:15:5d:01:00:99".into()),
            addresses: vec!["10.0.0.99".into()],
            mtu: None,
        };
        let record = LookupFile { ca: "10.0.0.99".into(), vsid: 5001, mac: "00:15:5d:01:00:99".into(), pa: "192.168.4.11".into(), ..Default::default() };
        // Invalid (no record for its address): nothing opened.
        let b = FakePorts::default();
        assert!(matches!(s.change_ports(&Request::AddPort { port: port.clone(), records: vec![] }, &b), Err(PortChangeError::Invalid(_))));
        assert!(b.log.borrow().is_empty());
        // DPDK refuses: opened, never swapped.
        let b = FakePorts { refuse_open: true, ..Default::default() };
        let add = Request::AddPort { port, records: vec![record] };
        assert!(matches!(s.change_ports(&add, &b), Err(PortChangeError::Open(_))));
        assert_eq!(*b.log.borrow(), ["open blue9 as 3"]);
        assert_eq!(s.generation(), 1);
        // Accepted.
        let b = FakePorts::default();
        assert_eq!(s.change_ports(&add, &b).unwrap(), PortChanged { generation: 2, pause: std::time::Duration::from_micros(7) });
        assert_eq!(*b.log.borrow(), ["open blue9 as 3", "pause; Add { name: \"blue9\", port: \"net_null_blue9\" }; names uplink,blue1,red1,blue9", "published; resume"].map(String::from).to_vec());
        assert_eq!(s.port_names().last().map(String::as_str), Some("blue9"));
        let b = FakePorts::default();
        assert_eq!(s.change_ports(&Request::RemovePort { name: "blue1".into(), with_records: true, moved_to: None }, &b).unwrap().generation, 3);
        assert!(b.log.borrow()[0].starts_with("pause; Remove { index: 1 }; names uplink,red1,blue9"), "{:?}", b.log.borrow());
        assert_eq!(s.store().policy().ports.len(), 3);
    }
}
