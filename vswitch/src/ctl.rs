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

use hnv_datapath::{DatapathStats, PolicyStore, Totals};
use hnv_policy::api::{apply, Request, Response, Show};
use pmd::WorkerStats;
use hnv_datapath::ext::capture::{CaptureSpec, StageSel};
use hnv_datapath::ext::live_capture::{CaptureControl, CaptureStatus};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
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
/// temporary file, rename it, fsync the directory).
///
/// # Errors
/// File-system errors.
pub fn persist(store: &PolicyStore, path: &Path) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let text = format!("# hnvswitch state: the policy in force (generation {})\n{}", store.snapshot().generation, hnv_policy::to_toml(&store.policy()));
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // Make the rename itself durable.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
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
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, format!("{} is in use by another hnvswitch", path.display())));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
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
                        let (state, stop, open) = (&state, &*stop2, open.clone());
                        let spawned = std::thread::Builder::new().name("hnv-ctl-conn".into()).spawn_scoped(scope, move || {
                            if let Err(e) = handle(s, state, stop) {
                                log::debug!("control connection ended: {e}");
                            }
                            open.fetch_sub(1, Ordering::Relaxed);
                        });
                        if let Err(e) = spawned {
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

fn handle(s: UnixStream, state: &CtlState, stop: &AtomicBool) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while !stop.load(Ordering::Relaxed) {
        match r.read_line(&mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e),
        }
        if !line.ends_with('\n') && line.len() < MAX_LINE {
            continue;
        }
        let resp = if line.len() >= MAX_LINE {
            Response::error("request too long")
        } else {
            match serde_json::from_str::<Request>(line.trim()) {
                Ok(req) => respond(state, &req),
                Err(e) => Response::error(format!("malformed request: {e}")),
            }
        };
        line.clear();
        let mut text = serde_json::to_string(&resp).unwrap_or_else(|_| "{\"ok\":false}".into());
        text.push('\n');
        w.write_all(text.as_bytes())?;
    }
    Ok(())
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
                    json!({"vsid": s.vsid.get(), "routing_domain": s.routing_domain, "prefixes": s.prefixes.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" "),
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
