//! The control server: accepts connections on the control socket and turns
//! each line into a call of the [`crate::service::PolicyService`] (changes),
//! the main thread (port changes, as a [`PortJob`]), the capture control or
//! [`super::show`].
//!
//! Each connection is served on its own control thread (at most
//! `MAX_CONNECTIONS`), never on a worker; the service serialises changes.
//! A rejected change, a malformed line or a peer that disconnects
//! mid-request changes nothing, and the workers keep forwarding throughout.
//! A connection's open transaction ([`super::protocol`]) lives in its
//! [`Session`] and is discarded when the connection ends.
//!
//! Hostile or broken clients: the socket is 0600 from the moment its path
//! exists (bound in a private directory, then renamed into place); a request
//! line is at most [`MAX_LINE`] bytes, a longer one is answered with an
//! error and the connection closed without reading the rest; a transaction
//! queues at most [`super::protocol::MAX_TRANSACTION`] changes; bytes that
//! are not UTF-8 or not a request are answered `malformed request`; a
//! response write blocks at most `WRITE_TIMEOUT`. No input makes this
//! module panic (property-tested below): with `panic = "abort"` a panic here
//! would take the datapath down.

use super::protocol::{parse_line, response_line, CtlError, Framing, Line, MAX_LINE, MAX_TRANSACTION};
use super::show::{capture_json, show};
use super::state::{CtlState, PortJob};
use crate::service::OneLine;
use hnv_datapath::ext::capture::{CaptureSpec, StageSel};
use hnv_policy::api::{Request, Response};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Control connections served at once (each on its own thread).
const MAX_CONNECTIONS: usize = 16;
/// How long writing a response may block on a peer that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a control connection waits for the main thread to apply a port change.
const PORT_JOB_TIMEOUT: Duration = Duration::from_secs(60);

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

/// Serve one connection until the peer closes it or the server stops.
///
/// Checks, in order, for each line:
/// 1. at most [`MAX_LINE`] bytes (newline included) are ever buffered: a
///    longer line is answered `request longer than ...` and the connection
///    is closed (the rest of the line is never read);
/// 2. [`Session::answer`] answers it.
///
/// A partial line left when the peer disconnects is dropped unanswered.
/// Writes time out after [`WRITE_TIMEOUT`], so a peer that stops reading
/// cannot hold the server's shutdown.
fn handle(s: UnixStream, state: &CtlState, stop: &AtomicBool) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    s.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut w = std::io::BufWriter::new(s.try_clone()?);
    let mut r = BufReader::new(s);
    let mut session = Session::new(state);
    let mut line: Vec<u8> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if line.len() >= MAX_LINE {
            w.write_all(response_line(&CtlError::TooLong.into_response()).as_bytes())?;
            w.flush()?;
            return Ok(());
        }
        // Bounded: never more than MAX_LINE bytes buffered, whatever the peer sends.
        let room = (MAX_LINE - line.len()) as u64;
        match (&mut r).take(room).read_until(b'\n', &mut line) {
            Ok(0) => return w.flush(),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted) => {
                w.flush()?;
                continue;
            }
            Err(e) => return Err(e),
        }
        if !line.ends_with(b"\n") {
            continue;
        }
        let resp = session.answer(&line);
        line.clear();
        w.write_all(response_line(&resp).as_bytes())?;
        // Answers to lines a client wrote ahead go out together; the last one at once.
        if r.buffer().is_empty() {
            w.flush()?;
        }
    }
    w.flush()
}

/// An open transaction: the changes queued so far, or why it failed.
#[derive(Debug)]
enum Transaction {
    Open(Vec<Request>),
    Failed(String),
}

/// One connection's state: its open transaction, if any.
#[derive(Debug)]
pub struct Session<'a> {
    state: &'a CtlState,
    txn: Option<Transaction>,
}

impl<'a> Session<'a> {
    /// A connection's session, no transaction open.
    pub fn new(state: &'a CtlState) -> Self {
        Session { state, txn: None }
    }

    /// Answer one line (its newline included or not).
    pub fn answer(&mut self, line: &[u8]) -> Response {
        let parsed = parse_line(line);
        match (&mut self.txn, parsed) {
            (None, Ok(Line::Request(req))) => respond(self.state, &req),
            (None, Ok(Line::Framing(Framing::Begin))) => {
                self.txn = Some(Transaction::Open(Vec::new()));
                ok()
            }
            (None, Ok(Line::Framing(f))) => CtlError::Transaction(format!("{}: no transaction is open", framing_name(f))).into_response(),
            (None, Err(e)) => e.into_response(),
            (Some(txn), parsed) => {
                let (resp, closed) = txn_line(self.state, txn, parsed);
                if closed {
                    self.txn = None;
                }
                resp
            }
        }
    }
}

fn ok() -> Response {
    Response { ok: true, ..Default::default() }
}

fn framing_name(f: Framing) -> &'static str {
    match f {
        Framing::Begin => "begin",
        Framing::Commit => "commit",
        Framing::Abort => "abort",
    }
}

/// Answer a line inside a transaction; true when it ended the transaction.
fn txn_line(state: &CtlState, txn: &mut Transaction, parsed: Result<Line, CtlError>) -> (Response, bool) {
    match parsed {
        Ok(Line::Framing(Framing::Abort)) => return (ok(), true),
        Ok(Line::Framing(Framing::Commit)) => {
            let result = match txn {
                Transaction::Failed(why) => Err(format!("transaction refused, nothing changed: {why}")),
                Transaction::Open(changes) => state.service.change(changes).map_err(|e| format!("transaction of {} change(s) refused, nothing changed: {}", changes.len(), OneLine(&e))),
            };
            let resp = match result {
                Ok(generation) => Response { ok: true, generation: Some(generation), ..Default::default() },
                Err(why) => CtlError::Transaction(why).into_response(),
            };
            return (resp, true);
        }
        // `show` inside a transaction is answered as usual and queues nothing.
        Ok(Line::Request(req @ Request::Show { .. })) => return (respond(state, &req), false),
        _ => {}
    }
    let changes = match txn {
        Transaction::Open(changes) => changes,
        Transaction::Failed(why) => return (CtlError::Transaction(format!("transaction failed earlier, line ignored: {why}")).into_response(), false),
    };
    let n = changes.len() + 1;
    let refusal = match parsed {
        Ok(Line::Request(Request::AddPort { .. } | Request::RemovePort { .. } | Request::CaptureStart { .. } | Request::CaptureStop)) => {
            Some(format!("change {n}: only record, route and ACL changes go in a transaction"))
        }
        Ok(Line::Request(req)) if changes.len() < MAX_TRANSACTION => {
            changes.push(req);
            None
        }
        Ok(Line::Request(_)) => Some(format!("more than {MAX_TRANSACTION} changes in one transaction")),
        Ok(Line::Framing(_)) => Some("begin: a transaction is already open".to_string()),
        Err(e) => Some(format!("change {n}: {}", OneLine(&e))),
    };
    match refusal {
        None => (ok(), false),
        Some(why) => {
            *txn = Transaction::Failed(why.clone());
            (CtlError::Transaction(why).into_response(), false)
        }
    }
}

/// Answer one request line outside any transaction (its newline included or not).
pub fn answer_line(state: &CtlState, line: &[u8]) -> Response {
    match parse_line(line) {
        Ok(Line::Request(req)) => respond(state, &req),
        Ok(Line::Framing(f)) => CtlError::Transaction(format!("{}: transactions need a connection (Session)", framing_name(f))).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Answer one request.
pub fn respond(state: &CtlState, req: &Request) -> Response {
    let result = match req {
        Request::Show { what } => return Response { ok: true, data: show(state, *what), generation: Some(state.service.generation()), error: None },
        Request::CaptureStart { path, ports, vsids, stage, snaplen } => capture_start(state, path, ports, vsids, stage.as_deref(), *snaplen),
        Request::CaptureStop => match state.captures.stop() {
            Ok(Some(c)) => return Response { ok: true, data: capture_json(&c, false), ..Default::default() },
            Ok(None) => Err(CtlError::NoCapture),
            Err(e) => Err(CtlError::CaptureIncomplete(e.to_string())),
        },
        Request::AddPort { .. } | Request::RemovePort { .. } => port_change(state, req).map(|c| Response {
            ok: true,
            generation: Some(c.generation),
            data: serde_json::json!({"pause_us": u64::try_from(c.pause.as_micros()).unwrap_or(u64::MAX)}),
            ..Default::default()
        }),
        _ => state.service.change(std::slice::from_ref(req)).map(|g| Response { ok: true, generation: Some(g), ..Default::default() }).map_err(CtlError::from),
    };
    result.unwrap_or_else(CtlError::into_response)
}

/// Hand a port change to the main thread and wait for its outcome.
fn port_change(state: &CtlState, req: &Request) -> Result<crate::service::PortChanged, CtlError> {
    let _one = state.ports_or_capture.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(c) = state.captures.status() {
        return Err(CtlError::CaptureRunning(c.path.display().to_string()));
    }
    let jobs = state.port_jobs.as_ref().ok_or(CtlError::NoPortChanges)?;
    let (reply, answer) = std::sync::mpsc::channel();
    jobs.send(PortJob { req: req.clone(), reply }).map_err(|_| CtlError::Stopping)?;
    Ok(answer.recv_timeout(PORT_JOB_TIMEOUT).map_err(|_| CtlError::PortTimeout)??)
}

fn capture_start(state: &CtlState, path: &str, ports: &[String], vsids: &[i64], stage: Option<&str>, snaplen: Option<u16>) -> Result<Response, CtlError> {
    let path = Path::new(path);
    if !path.is_absolute() {
        return Err(CtlError::Capture(format!("capture path {} must be absolute (the switch writes it)", path.display())));
    }
    let _one = state.ports_or_capture.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let names = state.service.port_names();
    let mut port_ids = Vec::new();
    for name in ports {
        match names.iter().position(|p| p == name) {
            Some(i) => port_ids.push(i as u16),
            None => return Err(CtlError::Capture(format!("no port named {name:?}"))),
        }
    }
    let mut vsid_ids = Vec::new();
    for v in vsids {
        match hnv_policy::Vsid::from_i64(*v) {
            Ok(v) => vsid_ids.push(v.get()),
            Err(e) => return Err(CtlError::Capture(format!("capture: {e}"))),
        }
    }
    let stages = match stage.unwrap_or("both") {
        "ingress" => StageSel::Ingress,
        "egress" => StageSel::Egress,
        "both" => StageSel::Both,
        other => return Err(CtlError::Capture(format!("stage {other:?}: expected ingress, egress or both"))),
    };
    let spec = CaptureSpec { ports: port_ids, vsids: vsid_ids, stages, snaplen: snaplen.unwrap_or(0) };
    match state.captures.start(spec, path) {
        Ok(()) => {
            log::info!("capture to {} started", path.display());
            Ok(Response { ok: true, data: state.captures.status().map(|c| capture_json(&c, true)).unwrap_or(Value::Null), ..Default::default() })
        }
        Err(e) => Err(CtlError::Capture(format!("cannot start a capture to {}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::client::Client;
    use crate::service::{PolicyService, Tenants};
    use hnv_datapath::ext::live_capture::CaptureControl;
    use hnv_datapath::{DatapathStats, PolicyStore};
    use hnv_policy::api::Show;
    use hnv_policy::example::BLUE_RED_HOST1;
    use hnv_policy::file::LookupFile;
    use pmd::WorkerStats;
    use proptest::prelude::*;
    use serde_json::json;
    use std::os::unix::fs::MetadataExt;

    fn state() -> CtlState {
        let policy = hnv_policy::parse(BLUE_RED_HOST1, "t").unwrap();
        let names = policy.ports.iter().map(|p| p.name.clone()).collect();
        CtlState {
            service: Arc::new(PolicyService::new(Arc::new(PolicyStore::new(policy)), Tenants::Local, None)),
            stats: vec![Arc::new(DatapathStats::default())],
            ports: Arc::default(),
            etcd: None,
            workers: vec![Arc::new(WorkerStats::default())],
            captures: CaptureControl::new(1, 1_000_000, names),
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

    fn blue2(pa: &str) -> Request {
        Request::ReplaceRecord { record: LookupFile { ca: "10.0.0.7".into(), vsid: 5001, mac: "00:15:5d:01:00:07".into(), pa: pa.into(), ..Default::default() } }
    }

    fn line(r: &impl serde::Serialize) -> Vec<u8> {
        serde_json::to_vec(r).unwrap()
    }

    #[test]
    fn a_transaction_is_all_or_nothing_and_lines_after_a_refusal_are_ignored() {
        let st = state();
        let mut s = Session::new(&st);
        let g0 = st.service.generation();
        let gone = Request::RemoveRecord { vsid: 5001, ca: "10.9.9.9".into() };
        // A change that the store refuses at commit: nothing changes.
        for l in [line(&Framing::Begin), line(&blue2("192.168.4.33")), line(&gone)] {
            assert!(s.answer(&l).ok);
        }
        let r = s.answer(&line(&Framing::Commit));
        assert!(!r.ok && r.error.as_deref().unwrap().contains("transaction of 2 change(s) refused, nothing changed: no record for CA 10.9.9.9"), "{r:?}");
        assert_eq!(st.service.generation(), g0);
        // A malformed line fails the transaction at once; later changes are ignored, not applied alone.
        assert!(s.answer(&line(&Framing::Begin)).ok);
        assert!(!s.answer(b"{\"op\":\"replace_record\"}").ok);
        let r = s.answer(&line(&blue2("192.168.4.33")));
        assert!(!r.ok && r.error.as_deref().unwrap().contains("failed earlier"), "{r:?}");
        let r = s.answer(&line(&Framing::Commit));
        assert!(!r.ok && r.error.as_deref().unwrap().starts_with("transaction refused, nothing changed: change 1: malformed request"), "{r:?}");
        assert_eq!(st.service.generation(), g0);
        // Port changes do not go in a transaction; show is answered inside one.
        assert!(s.answer(&line(&Framing::Begin)).ok);
        assert!(s.answer(&line(&Request::Show { what: Show::Records })).data.is_array());
        assert!(!s.answer(&line(&Request::RemovePort { name: "blue1".into(), with_records: true, moved_to: None })).ok);
        assert!(s.answer(&line(&Framing::Abort)).ok);
        assert!(!s.answer(&line(&Framing::Commit)).ok, "no transaction is open");
        // Accepted: both changes in one publication.
        for l in [line(&Framing::Begin), line(&blue2("192.168.4.33")), line(&Request::RemoveRecord { vsid: 6001, ca: "10.0.0.7".into() })] {
            assert!(s.answer(&l).ok);
        }
        let r = s.answer(&line(&Framing::Commit));
        assert_eq!((r.ok, r.generation), (true, Some(g0 + 1)), "{r:?}");
    }

    #[test]
    fn the_client_streams_a_transaction_through_the_socket() {
        let dir = TempDir::new("txn");
        let path = dir.0.join("ctl.sock");
        let st = state();
        let server = serve(&path, st.clone()).unwrap();
        let mut c = Client::connect(&path).unwrap();
        // Many changes written ahead of the answers: more than a socket buffer holds.
        let changes: Vec<Request> = (0..3000).map(|i| blue2(if i % 2 == 0 { "192.168.4.33" } else { "192.168.4.34" })).collect();
        let r = c.transaction(&changes).unwrap();
        assert_eq!((r.ok, r.generation), (true, Some(2)), "{r:?}");
        let mut bad = changes.clone();
        bad.insert(1500, Request::RemoveAcl { vsid: 5001, priority: 12345 });
        let r = c.transaction(&bad).unwrap();
        assert!(!r.ok && r.error.as_deref().unwrap().contains("no ACL rule with priority 12345"), "{r:?}");
        assert_eq!(c.call(&Request::Show { what: Show::Counters }).unwrap().generation, Some(2), "the connection is usable afterwards");
        drop(c);
        drop(server);
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
        const SHOW: &[&str] = &["ports", "vsids", "records", "routes", "acl", "counters", "flows", "workers", "policy", "capture", "notices", "neighbors", "everything"];
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
            proptest::sample::select(&["begin", "commit", "abort"][..]).prop_map(|f| json!({"op": f})),
            field().prop_map(|v| json!({"op": v})),
        ]
    }

    /// Feed `lines` to [`answer_line`] in order on one state; check every
    /// answer, and that every accepted policy survives a restart from the
    /// state file it would be saved to.
    fn feed(st: &CtlState, tmp: &Path, lines: &[Vec<u8>]) -> Result<(), TestCaseError> {
        let mut session = Session::new(st);
        for line in lines {
            let text = String::from_utf8_lossy(line).replace("\"TMP\"", &format!("{:?}", tmp.join("c.pcapng").display().to_string()));
            let before = st.service.store().snapshot().generation;
            let resp = session.answer(text.as_bytes());
            prop_assert!(resp.ok || resp.error.as_deref().is_some_and(|e| !e.is_empty()), "a refusal says why: {resp:?}");
            prop_assert!(serde_json::to_string(&resp).is_ok());
            // The main thread's side of a port change (needs DPDK to complete, but validation runs here).
            if let Ok(req) = serde_json::from_str::<Request>(text.trim()) {
                let _ = hnv_policy::api::apply(&st.service.store().policy(), &req);
            }
            if st.service.store().snapshot().generation != before {
                let saved = format!("# state\n{}", hnv_policy::to_toml(&st.service.store().policy()));
                let back = hnv_policy::parse(&saved, "state file");
                prop_assert!(back.is_ok(), "an accepted change must survive a restart: {:?}\n{saved}", back.err());
                prop_assert_eq!(back.ok(), Some(st.service.store().policy()));
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
