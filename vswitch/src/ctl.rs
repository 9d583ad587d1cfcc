//! The control socket: `hnvctl` talks to a running switch over a Unix socket
//! that only root can open (mode 0600 in a 0700 directory).
//!
//! One JSON [`Request`] per line, one JSON [`Response`] per line. Each
//! connection is served on its own control thread (at most
//! [`MAX_CONNECTIONS`]), never on a worker; changes are serialised by
//! [`CtlState::edits`]. A
//! change is validated by [`hnv_policy::api::apply`] exactly like a policy
//! file and published as a new snapshot; a rejected change, a malformed line
//! or a peer that disconnects mid-request changes nothing, and the workers
//! keep forwarding throughout.
//!
//! Port changes (`add_port`, `remove_port`) need the DPDK runtime, which the
//! main thread owns: they are handed to it as a [`PortJob`] and answered
//! once applied (see `hnv::run_on`). They are refused while a capture runs
//! (its file names ports by index). With the etcd backend they are allowed:
//! ports are host-local.
//!
//! Hostile or broken clients: the socket is 0600 from the moment its path
//! exists (bound in a private directory, then renamed into place); a request
//! line is at most [`MAX_LINE`] bytes, a longer one is answered with an
//! error and the connection closed without reading the rest; bytes that are
//! not UTF-8 or not a request are answered `malformed request`; a response
//! write blocks at most [`WRITE_TIMEOUT`]. No input makes this module panic
//! (property-tested below): with `panic = "abort"` a panic here would take
//! the datapath down. The state file is written 0600.

use hnv_datapath::ext::capture::{CaptureSpec, StageSel};
use hnv_datapath::ext::live_capture::{CaptureControl, CaptureStatus};
use hnv_datapath::{DatapathStats, PolicyStore, Totals};
use hnv_policy::api::{apply, Request, Response, Show};
use pmd::WorkerStats;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest request line accepted.
const MAX_LINE: usize = 1 << 20;
/// Control connections served at once (each on its own thread).
const MAX_CONNECTIONS: usize = 16;
/// How long writing a response may block on a peer that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Per-port facts the main loop refreshes for `show ports`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PortRow {
    /// Port name.
    pub name: String,
    /// DPDK driver.
    pub driver: String,
    /// Link up.
    pub link_up: bool,
    /// Rx queues.
    pub rx_queues: u16,
    /// Tx queues.
    pub tx_queues: u16,
    /// Packets received (DPDK).
    pub rx_packets: u64,
    /// Packets sent (DPDK).
    pub tx_packets: u64,
    /// Receive rate over the last interval.
    pub rx_pps: f64,
    /// Transmit rate over the last interval.
    pub tx_pps: f64,
    /// Packets the NIC missed.
    pub rx_missed: u64,
}

/// How long a control connection waits for the main thread to apply a port change.
const PORT_JOB_TIMEOUT: Duration = Duration::from_secs(60);

/// A port change for the main thread, and where to send its answer.
#[derive(Debug)]
pub struct PortJob {
    /// `add_port` or `remove_port`.
    pub req: Request,
    /// Receives the response.
    pub reply: std::sync::mpsc::Sender<Response>,
}

/// What the control thread can see.
#[derive(Debug, Clone)]
pub struct CtlState {
    /// The policy store.
    pub store: Arc<PolicyStore>,
    /// Each worker's datapath counters.
    pub stats: Vec<Arc<DatapathStats>>,
    /// Port rows, refreshed by the main loop.
    pub ports: Arc<Mutex<Vec<PortRow>>>,
    /// Where to save the policy after each accepted change.
    pub state_file: Option<PathBuf>,
    /// The etcd backend's status when etcd manages the tenant policy (changes here are then refused).
    pub etcd: Option<crate::etcd::StatusHandle>,
    /// Each worker's I/O and cycle counters.
    pub workers: Vec<Arc<WorkerStats>>,
    /// Starts and stops captures.
    pub captures: Arc<CaptureControl>,
    /// Held from reading the policy to publishing the edited one, so that
    /// concurrent connections' changes never overwrite each other.
    pub edits: Arc<Mutex<()>>,
    /// Held by port changes and capture starts, so that a capture never
    /// resolves port names against a port list about to change.
    pub ports_or_capture: Arc<Mutex<()>>,
    /// Where port changes go (the main thread); None: ports cannot change.
    pub port_jobs: Option<std::sync::mpsc::Sender<PortJob>>,
}

/// Save the policy in force to `path` atomically and durably (write and fsync a
/// temporary file next to it, rename it, fsync the directory). The file is
/// mode 0600 from its creation: it holds every tenant's addresses.
///
/// # Errors
/// File-system errors.
pub fn persist(store: &PolicyStore, path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let name = path.file_name().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{} is not a file name", path.display())))?;
    // Unique per call (concurrent saves never share it) and created new: a
    // symlink or file planted at that name is refused, never written through.
    let tmp = path.with_file_name(format!(".{}.{}.{}.tmp", name.to_string_lossy(), std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let text = format!("# hnvswitch state: the policy in force (generation {})\n{}", store.snapshot().generation, hnv_policy::to_toml(&store.policy()));
    let written = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // Make the rename itself durable.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Remove temporary files that [`persist`] left next to `path` when a switch
/// was killed mid-save (call before the first save; one switch per state file).
pub fn remove_stale_temporaries(path: &Path) {
    let (Some(name), Some(dir)) = (path.file_name(), path.parent()) else { return };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let prefix = format!(".{}.", name.to_string_lossy());
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&prefix) && n.ends_with(".tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// A running control server; dropping it stops the thread and removes the socket.
#[derive(Debug)]
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Bind `path` (replacing a stale socket) and serve requests on a thread.
///
/// # Errors
/// When the socket cannot be created.
pub fn serve(path: &Path, state: CtlState) -> std::io::Result<Server> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    if path.exists() && UnixStream::connect(path).is_ok() {
        return Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, format!("{} is in use by another hnvswitch", path.display())));
    }
    let listener = bind_private(path)?;
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new().name("hnv-ctl".into()).spawn(move || {
        let open = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|scope| {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        if open.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                            let _ = s.write_all(b"{\"ok\":false,\"error\":\"too many control connections\"}\n");
                            continue;
                        }
                        open.fetch_add(1, Ordering::Relaxed);
                        let (state, stop, open2) = (&state, &*stop2, open.clone());
                        let spawned = std::thread::Builder::new().name("hnv-ctl-conn".into()).spawn_scoped(scope, move || {
                            if let Err(e) = handle(s, state, stop) {
                                log::debug!("control connection ended: {e}");
                            }
                            open2.fetch_sub(1, Ordering::Relaxed);
                        });
                        if let Err(e) = spawned {
                            open.fetch_sub(1, Ordering::Relaxed);
                            log::warn!("cannot serve a control connection: {e}");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
                    Err(e) => {
                        log::warn!("control socket accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        });
    })?;
    log::info!("control socket {}", path.display());
    Ok(Server { stop, thread: Some(thread), path: path.to_path_buf() })
}

/// Serve one connection until the peer closes it or the server stops.
///
/// Checks, in order, for each line:
/// 1. at most [`MAX_LINE`] bytes (newline included) are ever buffered: a
///    longer line is answered `request longer than ...` and the connection
///    is closed (the rest of the line is never read);
/// 2. the line is UTF-8 JSON of a [`Request`], else `malformed request: ...`;
/// 3. [`respond`] answers it.
///
/// A partial line left when the peer disconnects is dropped unanswered.
/// Writes time out after [`WRITE_TIMEOUT`], so a peer that stops reading
/// cannot hold the server's shutdown.
/// Bind a listening socket that is mode 0600 from the moment `path` names
/// it: bind in a fresh 0700 directory next to `path` (where nobody else can
/// reach it), set 0600 there, then rename it onto `path` (replacing a stale
/// socket atomically). The directory is removed whatever happens.
///
/// # Errors
/// File-system errors, or a socket path too long for `sockaddr_un` (the
/// temporary path is about 20 bytes longer than `path`).
fn bind_private(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::DirBuilderExt;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let parent = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir = parent.join(format!(".hnvctl-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
    if dir.exists() {
        // Left by a killed process that had the same pid.
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let tmp = dir.join("s");
    let bound = UnixListener::bind(&tmp).and_then(|l| {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, path)?;
        Ok(l)
    });
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_dir(&dir);
    bound
}

fn handle(s: UnixStream, state: &CtlState, stop: &AtomicBool) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    s.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    let mut line: Vec<u8> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if line.len() >= MAX_LINE {
            let mut text = serde_json::to_string(&Response::error(format!("request longer than {MAX_LINE} bytes: connection closed"))).unwrap_or_else(|_| "{\"ok\":false}".into());
            text.push('\n');
            w.write_all(text.as_bytes())?;
            return Ok(());
        }
        // Bounded: never more than MAX_LINE bytes buffered, whatever the peer sends.
        let room = (MAX_LINE - line.len()) as u64;
        match (&mut r).take(room).read_until(b'\n', &mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted) => continue,
            Err(e) => return Err(e),
        }
        if !line.ends_with(b"\n") {
            continue;
        }
        let resp = answer_line(state, &line);
        line.clear();
        let mut text = serde_json::to_string(&resp).unwrap_or_else(|_| "{\"ok\":false}".into());
        text.push('\n');
        w.write_all(text.as_bytes())?;
    }
    Ok(())
}

/// Answer one request line (its newline included or not): parse, then [`respond`].
pub fn answer_line(state: &CtlState, line: &[u8]) -> Response {
    let text = match std::str::from_utf8(line) {
        Ok(t) => t,
        Err(e) => return Response::error(format!("malformed request: not UTF-8 ({e})")),
    };
    match serde_json::from_str::<Request>(text.trim()) {
        Ok(req) => respond(state, &req),
        Err(e) => Response::error(format!("malformed request: {e}")),
    }
}

/// Answer one request.
pub fn respond(state: &CtlState, req: &Request) -> Response {
    if let Request::Show { what } = req {
        return Response { ok: true, data: show(state, *what), generation: Some(state.store.snapshot().generation), error: None };
    }
    match req {
        Request::CaptureStart { path, ports, vsids, stage, snaplen } => return capture_start(state, path, ports, vsids, stage.as_deref(), *snaplen),
        Request::CaptureStop => {
            return match state.captures.stop() {
                Ok(Some(c)) => Response { ok: true, data: capture_json(&c, false), ..Default::default() },
                Ok(None) => Response::error("no capture is running"),
                Err(e) => Response::error(format!("capture stopped, but its file may be incomplete: {e}")),
            }
        }
        Request::AddPort { .. } | Request::RemovePort { .. } => return port_change(state, req),
        _ => {}
    }
    if let Some(e) = &state.etcd {
        let st = e.lock().map(|s| s.clone()).unwrap_or_default();
        return Response::error(format!("policy is managed by etcd at {} (prefix {}); publish changes with hnvctl publish", st.endpoints.join(","), st.prefix));
    }
    let _edit = state.edits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match apply(&state.store.policy(), req) {
        Ok(Some(p)) => {
            let generation = state.store.replace(p);
            if let Some(path) = &state.state_file {
                if let Err(e) = persist(&state.store, path) {
                    log::error!("cannot save state to {}: {e}", path.display());
                }
            }
            Response { ok: true, generation: Some(generation), ..Default::default() }
        }
        Ok(None) => Response { ok: true, ..Default::default() },
        Err(e) => Response::error(e.to_string().replace('\n', "; ")),
    }
}

fn port_change(state: &CtlState, req: &Request) -> Response {
    let _one = state.ports_or_capture.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(c) = state.captures.status() {
        return Response::error(format!("a capture to {} is running and names ports by index: stop it before adding or removing ports", c.path.display()));
    }
    let Some(jobs) = &state.port_jobs else { return Response::error("this switch cannot change ports while running") };
    let (reply, answer) = std::sync::mpsc::channel();
    if jobs.send(PortJob { req: req.clone(), reply }).is_err() {
        return Response::error("the switch is stopping");
    }
    answer.recv_timeout(PORT_JOB_TIMEOUT).unwrap_or_else(|_| Response::error("the switch did not apply the port change in time (it may still be applied; see hnvctl show ports)"))
}

fn capture_start(state: &CtlState, path: &str, ports: &[String], vsids: &[i64], stage: Option<&str>, snaplen: Option<u16>) -> Response {
    let path = Path::new(path);
    if !path.is_absolute() {
        return Response::error(format!("capture path {} must be absolute (the switch writes it)", path.display()));
    }
    let _one = state.ports_or_capture.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let policy = state.store.policy();
    let mut port_ids = Vec::new();
    for name in ports {
        match policy.ports.iter().position(|p| &p.name == name) {
            Some(i) => port_ids.push(i as u16),
            None => return Response::error(format!("no port named {name:?}")),
        }
    }
    let mut vsid_ids = Vec::new();
    for v in vsids {
        match hnv_policy::Vsid::from_i64(*v) {
            Ok(v) => vsid_ids.push(v.get()),
            Err(e) => return Response::error(format!("capture: {e}")),
        }
    }
    let stages = match stage.unwrap_or("both") {
        "ingress" => StageSel::Ingress,
        "egress" => StageSel::Egress,
        "both" => StageSel::Both,
        other => return Response::error(format!("stage {other:?}: expected ingress, egress or both")),
    };
    let spec = CaptureSpec { ports: port_ids, vsids: vsid_ids, stages, snaplen: snaplen.unwrap_or(0) };
    match state.captures.start(spec, path) {
        Ok(()) => {
            log::info!("capture to {} started", path.display());
            Response { ok: true, data: state.captures.status().map(|c| capture_json(&c, true)).unwrap_or(Value::Null), ..Default::default() }
        }
        Err(e) => Response::error(format!("cannot start a capture to {}: {e}", path.display())),
    }
}

fn capture_json(c: &CaptureStatus, running: bool) -> Value {
    json!({"path": c.path.display().to_string(), "running": running, "seconds": (c.seconds * 10.0).round() / 10.0,
           "written": c.summary.written, "lost": c.summary.lost, "ports": format!("{:?}", c.spec.ports), "vsids": format!("{:?}", c.spec.vsids),
           "stages": format!("{:?}", c.spec.stages).to_lowercase()})
}

fn show(state: &CtlState, what: Show) -> Value {
    let policy = state.store.policy();
    let t = state.store.snapshot();
    let totals = Totals::sum(state.stats.iter().map(|s| &**s));
    let slots = state.store.vsid_slots();
    match what {
        Show::Ports => {
            let rows = state.ports.lock().map(|p| p.clone()).unwrap_or_default();
            Value::Array(
                rows.iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let (rx, tx, drops) = totals.ports.get(i).copied().unwrap_or_default();
                        let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
                        if let Some(o) = v.as_object_mut() {
                            o.insert("switch_rx".into(), json!(rx));
                            o.insert("switch_tx".into(), json!(tx));
                            o.insert("drops".into(), json!(drops));
                        }
                        v
                    })
                    .collect(),
            )
        }
        Show::Vsids => Value::Array(
            policy
                .subnets
                .iter()
                .map(|s| {
                    let slot = slots.iter().find(|(_, v)| *v == s.vsid.get()).map(|(sl, _)| *sl);
                    let (rx, tx, drops) = slot.and_then(|sl| totals.vsids.get(usize::from(sl)).copied()).unwrap_or_default();
                    let local: Vec<&str> = policy.ports.iter().filter(|p| p.vsid == Some(s.vsid)).map(|p| p.name.as_str()).collect();
                    json!({"vsid": s.vsid.get(), "routing_domain": s.routing_domain, "encap": s.encap.as_str(), "prefixes": s.prefixes.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" "),
                           "gateway_mac": hnv_policy::format_mac(&s.gateway_mac), "local_ports": local.join(" "), "rx": rx, "tx": tx, "drops": drops})
                })
                .collect(),
        ),
        Show::Records => Value::Array(
            policy
                .lookup
                .iter()
                .map(|r| {
                    json!({"vsid": r.vsid.get(), "ca": r.ca.to_string(), "mac": hnv_policy::format_mac(&r.mac), "pa": r.pa.to_string(),
                           "rule": format!("{:?}", r.rule).to_lowercase(), "type": format!("{:?}", r.kind).to_lowercase(), "vm": r.vm_name.clone().unwrap_or_default()})
                })
                .collect(),
        ),
        Show::Routes => Value::Array(
            policy
                .customer_routes
                .iter()
                .map(|r| json!({"routing_domain": r.routing_domain, "vsid": r.vsid.get(), "destination": r.destination.to_string(), "next_hop": r.next_hop.to_string(), "metric": r.metric}))
                .collect(),
        ),
        Show::Acl => serde_json::to_value(&hnv_policy::PolicyFile::from_policy(&policy).acl).unwrap_or(Value::Null),
        Show::Counters => json!({
            "rx": totals.rx, "tx": totals.tx, "replicas": totals.replicas, "drops": totals.total_drops(), "reconciles": totals.reconciles(),
            "answered": totals.answered, "encapsulated": totals.encapsulated, "decapsulated": totals.decapsulated, "routed": totals.routed,
            "drop_reasons": totals.drops.iter().map(|(r, n)| json!({"reason": r.name(), "packets": n, "meaning": r.description()})).collect::<Vec<_>>(),
        }),
        Show::Flows => Value::Array(
            state
                .stats
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let (hits, misses) = (s.flow_hits.get(), s.flow_misses.get());
                    let entries = s.flow_entries.get();
                    json!({"worker": i, "entries": entries, "capacity": s.flow_capacity.get(), "hits": hits, "misses": misses, "hit_pct": crate::percent(hits, hits + misses),
                           "stale": s.flow_stale.get(), "evictions": s.flow_evictions.get()})
                })
                .collect(),
        ),
        Show::Workers => Value::Array(state.workers.iter().enumerate().map(|(i, w)| worker_row(i, w)).collect()),
        Show::Policy => {
            let etcd = state.etcd.as_ref().map(|e| e.lock().map(|s| s.clone()).unwrap_or_default());
            let source = etcd.as_ref().map_or_else(|| "policy file".to_string(), crate::etcd::Status::line);
            json!({"generation": t.generation, "source": source, "etcd": etcd, "toml": hnv_policy::to_toml(&policy)})
        }
        Show::Notices => {
            let since = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let now = std::time::Instant::now();
            json!({
                "received": state.store.notices().iter().map(|n| json!({"unix_time": since(n.at), "kind": n.kind, "vsid": n.vsid, "ca": n.ca.to_string(), "from": n.from.to_string(),
                    "new_pa": n.new_pa.map(|p| p.to_string()).unwrap_or_default(), "outcome": n.outcome})).collect::<Vec<_>>(),
                "redirects_in_force": state.store.redirects().iter().map(|r| json!({"vsid": r.vsid, "ca": r.ca.to_string(), "policy_pa": r.from.to_string(), "new_pa": r.new_pa.to_string(),
                    "seconds_left": r.until.saturating_duration_since(now).as_secs()})).collect::<Vec<_>>(),
                "sent": totals.control_sent,
                "redirects_accepted": state.store.redirect_counts().0,
                "redirects_refused": state.store.redirect_counts().1,
            })
        }
        Show::Capture => state.captures.status().map_or_else(|| json!({"running": false}), |c| capture_json(&c, true)),
    }
}

/// One worker's row of `show workers`: I/O counters, the share of TSC
/// cycles spent in iterations that received packets, and those busy cycles
/// per received packet (both since start; `hnvctl watch` shows them per
/// interval from the raw cycle counters).
pub fn worker_row(i: usize, w: &WorkerStats) -> Value {
    let (rx, busy, idle) = (w.rx.get(), w.busy_cycles.get(), w.idle_cycles.get());
    json!({"worker": i, "rx": rx, "tx": w.tx.get(), "tx_refused": w.tx_refused.get(), "busy_pct": crate::percent(busy, busy + idle),
           "cycles_per_pkt": if rx > 0 { busy as f64 / rx as f64 } else { 0.0 }, "busy_cycles": busy, "idle_cycles": idle})
}

/// A client for the control socket.
#[derive(Debug)]
pub struct Client {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Client {
    /// Connect to `path`.
    ///
    /// # Errors
    /// When the socket cannot be opened (not running, or not root).
    pub fn connect(path: &Path) -> std::io::Result<Client> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Client { w: s.try_clone()?, r: BufReader::new(s) })
    }

    /// Send a request and wait for its response.
    ///
    /// # Errors
    /// Socket errors, or a response that is not valid JSON.
    pub fn call(&mut self, req: &Request) -> std::io::Result<Response> {
        let mut text = serde_json::to_string(req).map_err(std::io::Error::other)?;
        text.push('\n');
        self.w.write_all(text.as_bytes())?;
        let mut line = String::new();
        self.r.read_line(&mut line)?;
        serde_json::from_str(&line).map_err(std::io::Error::other)
    }

    /// Send a raw line (for tests of malformed input) and read the response line.
    ///
    /// # Errors
    /// Socket errors.
    pub fn call_raw(&mut self, line: &str) -> std::io::Result<String> {
        self.w.write_all(line.as_bytes())?;
        self.w.write_all(b"\n")?;
        let mut resp = String::new();
        self.r.read_line(&mut resp)?;
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hnv_policy::example::BLUE_RED_HOST1;
    use proptest::prelude::*;
    use std::os::unix::fs::MetadataExt;

    fn state() -> CtlState {
        let policy = hnv_policy::parse(BLUE_RED_HOST1, "t").unwrap();
        let names = policy.ports.iter().map(|p| p.name.clone()).collect();
        CtlState {
            store: Arc::new(PolicyStore::new(policy)),
            stats: vec![Arc::new(DatapathStats::default())],
            ports: Arc::default(),
            state_file: None,
            etcd: None,
            workers: vec![Arc::new(WorkerStats::default())],
            captures: CaptureControl::new(1, 1_000_000, names),
            edits: Arc::default(),
            ports_or_capture: Arc::default(),
            port_jobs: None,
        }
    }

    /// A fresh directory under the temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static SEQ: AtomicUsize = AtomicUsize::new(0);
            let d = std::env::temp_dir().join(format!("hnv-ctl-{tag}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            TempDir(d)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn an_endless_line_is_cut_off_with_an_error_after_at_most_max_line_bytes() {
        let st = state();
        let stop = AtomicBool::new(false);
        let (server, client) = UnixStream::pair().unwrap();
        client.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        client.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        std::thread::scope(|s| {
            let served = s.spawn(|| handle(server, &st, &stop));
            // 64 MiB without a newline, written until the switch closes the connection.
            let mut w = client.try_clone().unwrap();
            let writer = s.spawn(move || {
                let chunk = vec![b'a'; 64 << 10];
                let mut sent = 0usize;
                while sent < 64 << 20 {
                    match w.write(&chunk) {
                        Ok(n) => sent += n,
                        Err(_) => break,
                    }
                }
                sent
            });
            let mut resp = String::new();
            BufReader::new(&client).read_line(&mut resp).unwrap();
            assert!(resp.contains("\"ok\":false") && resp.contains("longer than"), "{resp}");
            let sent = writer.join().unwrap();
            assert!(sent < MAX_LINE + (8 << 20), "the switch stopped reading after the limit, not after {sent} bytes");
            assert!(served.join().unwrap().is_ok(), "connection closed by the switch");
        });
    }

    #[test]
    fn a_line_split_inside_a_utf8_character_by_a_pause_is_read_whole() {
        let st = state();
        let stop = AtomicBool::new(false);
        let (server, mut client) = UnixStream::pair().unwrap();
        client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| handle(server, &st, &stop));
            // "é" is 0xc3 0xa9; the pause is longer than the server's read timeout.
            let req = "{\"op\":\"remove_record\",\"vsid\":5001,\"ca\":\"é\"}\n".as_bytes();
            let cut = req.iter().position(|&b| b == 0xc3).unwrap() + 1;
            client.write_all(&req[..cut]).unwrap();
            std::thread::sleep(Duration::from_millis(500));
            client.write_all(&req[cut..]).unwrap();
            let mut resp = String::new();
            BufReader::new(&client).read_line(&mut resp).unwrap();
            assert!(resp.contains("no record for CA é"), "{resp}");
            client.shutdown(std::net::Shutdown::Both).unwrap();
        });
    }

    #[test]
    fn the_socket_is_private_from_the_moment_its_path_appears() {
        let dir = TempDir::new("sock");
        let path = dir.0.join("ctl.sock");
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let watcher = s.spawn(|| {
                let (mut seen, mut open) = (0u32, Vec::new());
                while !done.load(Ordering::Relaxed) {
                    if let Ok(m) = std::fs::symlink_metadata(&path) {
                        seen += 1;
                        if m.mode() & 0o077 != 0 {
                            open.push(format!("{:o}", m.mode() & 0o777));
                        }
                    }
                }
                (seen, open)
            });
            for _ in 0..200 {
                drop(serve(&path, state()).unwrap());
            }
            done.store(true, Ordering::Relaxed);
            let (seen, open) = watcher.join().unwrap();
            assert!(seen > 0, "the watcher saw the socket");
            assert!(open.is_empty(), "the socket was reachable with modes {:?} ({} of {seen} looks)", &open[..open.len().min(5)], open.len());
        });
        assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 0, "no socket or temporary directory left");
    }

    #[test]
    fn a_served_socket_answers_and_replaces_a_stale_one() {
        let dir = TempDir::new("stale");
        let path = dir.0.join("ctl.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists(), "a stale socket from a killed switch");
        let server = serve(&path, state()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let mut c = Client::connect(&path).unwrap();
        assert!(c.call(&Request::Show { what: Show::Records }).unwrap().ok);
        assert_eq!(serve(&path, state()).unwrap_err().kind(), std::io::ErrorKind::AddrInUse);
        drop(c);
        drop(server);
        assert!(!path.exists());
    }

    #[test]
    fn the_state_file_is_private_and_concurrent_saves_never_mix() {
        let dir = TempDir::new("state");
        let path = dir.0.join("state.toml");
        // A world-readable file where the state goes (an older version, or planted): replaced.
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let st = state();
        persist(&st.store, &path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600, "the state file lists every tenant's addresses");
        assert_eq!(hnv_policy::load(&path).unwrap(), st.store.policy());
        // Saves racing each other (control connections, etcd): each file whole, none fails.
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..20 {
                        persist(&st.store, &path).unwrap();
                    }
                });
            }
            for _ in 0..20 {
                assert_eq!(hnv_policy::load(&path).unwrap(), st.store.policy());
            }
        });
        let names: Vec<_> = std::fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["state.toml"], "no temporary file left");
        // What a switch killed mid-save leaves is removed at the next start; nothing else is.
        std::fs::write(dir.0.join(".state.toml.4242.7.tmp"), "half").unwrap();
        std::fs::write(dir.0.join(".other.toml.4242.7.tmp"), "not ours").unwrap();
        remove_stale_temporaries(&path);
        let mut names: Vec<_> = std::fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, [".other.toml.4242.7.tmp", "state.toml"]);
    }

    /// Values a hostile or careless client might put in any field.
    fn text() -> impl Strategy<Value = Value> {
        const POOL: &[&str] = &[
            "",
            " ",
            "10.0.0.5",
            "10.0.0.7",
            "10.0.0.16",
            "10.0.1.9",
            "10.0.0.1",
            "192.168.4.11",
            "192.168.4.22",
            "192.168.4.1",
            "0.0.0.0",
            "::",
            "::1",
            "255.255.255.255",
            "224.0.0.1",
            "fe80::1",
            "fd00::5",
            "10.0.0.0/24",
            "10.0.0.0/33",
            "10.0.0.5/32",
            "::/0",
            "::/129",
            "0.0.0.0/0",
            "10.0.0.0/-1",
            "10.0.0.0/99999999999999999999",
            "00:15:5d:01:00:05",
            "00:15:5d:01:10:00",
            "ff:ff:ff:ff:ff:ff",
            "01:00:5e:00:00:01",
            "00:15:5d:01:10",
            "00:15:5d:01:10:00:00",
            "zz:zz:zz:zz:zz:zz",
            "é",
            "ééé:é",
            "1000-2000",
            "2000-1000",
            "0-65535",
            "65535-65536",
            "-",
            "--",
            "80-",
            "-80",
            "1-2-3",
            "99999999999999999999",
            "-9223372036854775808",
            "tcp",
            "udp",
            "icmp",
            "icmpv6",
            "any",
            "256",
            "-1",
            "in",
            "out",
            "both",
            "allow",
            "deny",
            "encap",
            "none",
            "nat",
            "static",
            "l2only",
            "gateway_wildcard",
            "vm",
            "uplink",
            "blue",
            "red",
            "blue1",
            "red1",
            "uplink",
            "blue9",
            "net_null_x",
            "net_ring_h1blue1",
            "{11111111-2222-3333-4444-555555555555}",
            "ingress",
            "egress",
            "sideways",
            "relative.pcapng",
            "/nonexistent-dir/x.pcapng",
        ];
        prop_oneof![
            4 => proptest::sample::select(POOL).prop_map(Value::from),
            1 => "\\PC{0,24}".prop_map(Value::from),
            1 => number(),
            1 => Just(Value::Null),
            1 => Just(json!(["10.0.0.5", 1])),
            1 => Just(json!({"x": 1})),
            1 => Just(Value::Bool(true)),
        ]
    }

    fn number() -> impl Strategy<Value = Value> {
        prop_oneof![
            proptest::sample::select(&[0i64, 1, -1, 5001, 5002, 6001, 4095, 4096, 0xff_ffff, 0x100_0000, 65535, 65536, 100, i64::MIN, i64::MAX][..]).prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            Just(json!(u64::MAX)),
            Just(json!(1e300)),
            Just(json!(-0.5)),
        ]
    }

    fn field() -> impl Strategy<Value = Value> {
        prop_oneof![3 => text(), 1 => number()]
    }

    /// Values that pass or nearly pass validation for field `key`, so that
    /// changes are accepted and later requests see them.
    fn plausible(key: &str) -> BoxedStrategy<Value> {
        let v: Vec<Value> = match key {
            "ca" => vec![json!("10.0.0.16"), json!("10.0.0.99"), json!("10.0.0.5"), json!("10.0.1.20"), json!("fd00::5"), json!("10.0.0.255"), json!("10.0.0.0")],
            "vsid" => vec![json!(5001), json!(5002), json!(6001), json!(7000)],
            "mac" => vec![json!("00:15:5d:01:10:00"), json!("00:15:5d:01:00:05"), json!("00:15:5d:01:10:63"), json!("01:00:5e:00:00:01"), json!("02:48:4e:00:13:89")],
            "pa" | "moved_to" => vec![json!("192.168.4.22"), json!("192.168.4.11"), json!("192.168.4.33"), json!("10.0.0.5"), json!("::1"), json!("not-an-ip")],
            "rule" => vec![json!("encap"), json!("none"), json!("nat")],
            "type" => vec![json!("static"), json!("l2only"), json!("gateway_wildcard")],
            "flow_id" | "with_records" => vec![json!(true), json!(false)],
            "routing_domain" => vec![json!("blue"), json!("red"), json!("green")],
            "destination" | "src" | "dst" => vec![json!("10.0.5.0/24"), json!("0.0.0.0/0"), json!("10.0.0.0/24"), json!("fd00::/64"), json!("10.0.0.0/33"), json!("10.0.0.7")],
            "next_hop" => vec![json!("10.0.0.7"), json!("0.0.0.0"), json!("::"), json!("10.9.9.9")],
            "metric" | "priority" => vec![json!(0), json!(1), json!(100), json!(200), json!(-1), json!(i64::MAX)],
            "direction" => vec![json!("in"), json!("out"), json!("both")],
            "action" => vec![json!("allow"), json!("deny")],
            "protocol" => vec![json!("tcp"), json!("udp"), json!(6), json!(17), json!(300), json!("any"), json!("icmpv6")],
            "src_ports" | "dst_ports" => vec![json!("80"), json!("1000-2000"), json!(80), json!(70000), json!("2000-1000"), json!(-1)],
            "name" => vec![json!("blue9"), json!("blue1"), json!("uplink"), json!("")],
            "role" => vec![json!("vm"), json!("uplink")],
            "devargs" => vec![json!("net_null_blue9"), json!("net_ring_h1blue1")],
            "addresses" => vec![json!(["10.0.0.99"]), json!([]), json!(["10.0.0.99", "fd00::99"]), json!(["x"])],
            "mtu" => vec![json!(1500), json!(0), json!(65536), json!(-1)],
            "stage" => vec![json!("ingress"), json!("egress"), json!("both")],
            "snaplen" => vec![json!(0), json!(128), json!(65535), json!(-1)],
            _ => vec![Value::Null],
        };
        proptest::sample::select(v).boxed()
    }

    /// An object with `keys`: half the time every required key with a
    /// plausible value (optional ones sometimes), else any subset with
    /// plausible or arbitrary values and sometimes an unknown key.
    fn object(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
        const OPTIONAL: &[&str] =
            &["rule", "type", "customer_id", "vm_name", "flow_id", "direction", "protocol", "src", "dst", "src_ports", "dst_ports", "mtu", "addresses", "metric", "moved_to", "with_records"];
        let clean: Vec<_> = keys.iter().map(|k| (proptest::bool::weighted(if OPTIONAL.contains(k) { 0.3 } else { 1.0 }), plausible(k))).collect();
        let wild: Vec<_> = keys.iter().map(|k| (proptest::bool::weighted(0.9), prop_oneof![4 => plausible(k), 1 => field()])).collect();
        let object = move |(vals, extra): (Vec<(bool, Value)>, bool)| {
            let mut o = serde_json::Map::new();
            for (k, (present, v)) in keys.iter().zip(vals) {
                if present {
                    o.insert((*k).to_string(), v);
                }
            }
            if extra {
                o.insert("bogus".into(), json!(1));
            }
            Value::Object(o)
        };
        prop_oneof![(clean, Just(false)).prop_map(object), (wild, proptest::bool::weighted(0.05)).prop_map(object)]
    }

    const RECORD: &[&str] = &["ca", "vsid", "mac", "pa", "rule", "type", "customer_id", "vm_name", "flow_id"];
    const ROUTE: &[&str] = &["routing_domain", "vsid", "destination", "next_hop", "metric"];
    const ACL: &[&str] = &["vsid", "priority", "direction", "action", "protocol", "src", "dst", "src_ports", "dst_ports"];
    const PORT: &[&str] = &["name", "role", "devargs", "vsid", "mac", "addresses", "mtu"];

    /// A request line: mostly well-formed requests with hostile field values.
    fn request() -> impl Strategy<Value = Value> {
        const SHOW: &[&str] = &["ports", "vsids", "records", "routes", "acl", "counters", "flows", "workers", "policy", "capture", "notices", "everything"];
        prop_oneof![
            proptest::sample::select(SHOW).prop_map(|w| json!({"op": "show", "what": w})),
            object(RECORD).prop_map(|r| json!({"op": "add_record", "record": r})),
            object(RECORD).prop_map(|r| json!({"op": "replace_record", "record": r})),
            object(&["vsid", "ca"]).prop_map(|mut o| {
                o["op"] = json!("remove_record");
                o
            }),
            object(ROUTE).prop_map(|r| json!({"op": "add_route", "route": r})),
            object(&["routing_domain", "vsid", "destination"]).prop_map(|mut o| {
                o["op"] = json!("remove_route");
                o
            }),
            object(ACL).prop_map(|r| json!({"op": "add_acl", "rule": r})),
            object(&["vsid", "priority"]).prop_map(|mut o| {
                o["op"] = json!("remove_acl");
                o
            }),
            (object(PORT), proptest::collection::vec(object(RECORD), 0..3)).prop_map(|(p, r)| json!({"op": "add_port", "port": p, "records": r})),
            object(&["name", "with_records", "moved_to"]).prop_map(|mut o| {
                o["op"] = json!("remove_port");
                o
            }),
            (
                object(&["stage", "snaplen"]),
                proptest::sample::select(&["", "relative.pcapng", "/nonexistent-dir/x.pcapng", "TMP"][..]),
                proptest::collection::vec(field(), 0..3),
                proptest::collection::vec(field(), 0..3)
            )
                .prop_map(|(mut o, path, ports, vsids)| {
                    o["op"] = json!("capture_start");
                    o["path"] = json!(path);
                    o["ports"] = json!(ports);
                    o["vsids"] = json!(vsids);
                    o
                }),
            Just(json!({"op": "capture_stop"})),
            field().prop_map(|v| json!({"op": v})),
        ]
    }

    /// Feed `lines` to [`answer_line`] in order on one state; check every
    /// answer, and that every accepted policy survives a restart from the
    /// state file it would be saved to.
    fn feed(st: &CtlState, tmp: &Path, lines: &[Vec<u8>]) -> Result<(), TestCaseError> {
        for line in lines {
            let text = String::from_utf8_lossy(line).replace("\"TMP\"", &format!("{:?}", tmp.join("c.pcapng").display().to_string()));
            let before = st.store.snapshot().generation;
            let resp = answer_line(st, text.as_bytes());
            prop_assert!(resp.ok || resp.error.as_deref().is_some_and(|e| !e.is_empty()), "a refusal says why: {resp:?}");
            prop_assert!(serde_json::to_string(&resp).is_ok());
            // The main thread's side of a port change (needs DPDK to complete, but validation runs here).
            if let Ok(req) = serde_json::from_str::<Request>(text.trim()) {
                let _ = hnv_policy::api::apply(&st.store.policy(), &req);
            }
            if st.store.snapshot().generation != before {
                let saved = format!("# state\n{}", hnv_policy::to_toml(&st.store.policy()));
                let back = hnv_policy::parse(&saved, "state file");
                prop_assert!(back.is_ok(), "an accepted change must survive a restart: {:?}\n{saved}", back.err());
                prop_assert_eq!(back.ok(), Some(st.store.policy()));
            }
        }
        let _ = st.captures.stop();
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// Hostile requests (sequences, so that accepted ones change what later ones see): never a panic, always an answer.
        #[test]
        fn no_request_panics_and_every_one_is_answered(reqs in proptest::collection::vec(request(), 1..6)) {
            let dir = TempDir::new("prop");
            let st = state();
            let lines: Vec<Vec<u8>> = reqs.iter().map(|r| r.to_string().into_bytes()).collect();
            feed(&st, &dir.0, &lines)?;
        }

        /// Arbitrary bytes, and JSON cut or corrupted anywhere.
        #[test]
        fn no_line_of_bytes_panics(raw in proptest::collection::vec(any::<u8>(), 0..256), req in request(), cut in any::<usize>(), flip in any::<(usize, u8)>()) {
            let dir = TempDir::new("bytes");
            let st = state();
            let mut whole = req.to_string().into_bytes();
            let cut_line = whole[..cut % (whole.len() + 1)].to_vec();
            let i = flip.0 % whole.len();
            whole[i] = flip.1;
            feed(&st, &dir.0, &[raw, cut_line, whole])?;
        }

        /// The connection loop: any bytes in any chunks get one answer per line and a clean end.
        #[test]
        fn the_connection_answers_every_line(chunks in proptest::collection::vec(proptest::collection::vec(prop_oneof![any::<u8>(), Just(b'\n')], 0..64), 0..8)) {
            let st = state();
            let stop = AtomicBool::new(false);
            let (server, mut client) = UnixStream::pair().unwrap();
            client.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let lines = chunks.iter().flatten().filter(|&&b| b == b'\n').count();
            let answers = std::thread::scope(|s| {
                let served = s.spawn(|| handle(server, &st, &stop));
                for c in &chunks {
                    client.write_all(c).unwrap();
                }
                client.shutdown(std::net::Shutdown::Write).unwrap();
                let mut out = String::new();
                let _ = client.read_to_string(&mut out);
                (served.join().is_ok_and(|r| r.is_ok()), out)
            });
            prop_assert!(answers.0, "the connection ended cleanly");
            prop_assert_eq!(answers.1.lines().count(), lines);
            for l in answers.1.lines() {
                prop_assert!(serde_json::from_str::<Response>(l).is_ok(), "{}", l);
            }
        }
    }
}
