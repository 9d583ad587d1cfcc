//! Starting and stopping a pcapng capture on a running switch (`hnvctl capture`).
//!
//! Every worker's pipeline carries one [`LiveCapture`] from the start. While
//! no capture runs it reports itself inactive, so the flow cache stays on,
//! and costs a lock-free load per batch.
//! [`CaptureControl::start`] opens the file, starts the writer thread and
//! publishes a session (the spec and one [`PcapngCapture`] ring per worker);
//! from their next batch the workers copy the selected packets into their
//! ring exactly as the startup capture does. [`CaptureControl::stop`]
//! unpublishes the session, waits (at most [`GRACE`]) until no worker still
//! holds it, then drains the rings, closes the file and reports written and
//! lost packets.
//!
//! Thread contract: `start`, `stop`, `status` and `set_port_names` may be
//! called from any thread; they serialise on one mutex that no worker ever
//! takes. Workers only load the published session (arc-swap). Worker `i`
//! writes only ring `i` (single producer), the writer thread only consumes.

use super::capture::{capture, CaptureSpec, CaptureSummary, CaptureWriter, PcapngCapture};
use crate::pipeline::{CaptureExtension, Context, PacketRef, Stage};
use arc_swap::ArcSwapOption;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The longest `stop` waits for workers still inside a batch with the session.
pub const GRACE: Duration = Duration::from_millis(200);

/// What the workers see while a capture runs.
#[derive(Debug)]
struct Session {
    /// One per worker, indexed by worker id.
    captures: Vec<PcapngCapture>,
}

/// The capture in progress, as the control side sees it.
#[derive(Debug)]
struct Active {
    writer: CaptureWriter,
    path: PathBuf,
    spec: CaptureSpec,
    started: Instant,
}

/// A running or finished capture, for `hnvctl`.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureStatus {
    /// The pcapng file.
    pub path: PathBuf,
    /// What is captured.
    pub spec: CaptureSpec,
    /// Seconds since it started.
    pub seconds: f64,
    /// Written and lost packets so far (final values once stopped).
    pub summary: CaptureSummary,
}

#[derive(Debug)]
struct ControlState {
    active: Option<Active>,
    port_names: Vec<String>,
}

/// Starts and stops captures for a set of workers (see the module docs).
#[derive(Debug)]
pub struct CaptureControl {
    live: ArcSwapOption<Session>,
    state: Mutex<ControlState>,
    workers: usize,
    tsc_hz: u64,
}

impl CaptureControl {
    /// A control for `workers` workers whose `cx.now` ticks at `tsc_hz`;
    /// `port_names[i]` names switch port `i` in the files it writes.
    pub fn new(workers: usize, tsc_hz: u64, port_names: Vec<String>) -> Arc<Self> {
        Arc::new(CaptureControl { live: ArcSwapOption::empty(), state: Mutex::new(ControlState { active: None, port_names }), workers, tsc_hz })
    }

    /// A worker's capture extension (it records into ring `cx.worker`).
    pub fn extension(self: &Arc<Self>) -> LiveCapture {
        LiveCapture { ctl: Arc::clone(self) }
    }

    /// Port names for captures started from now on (after ports were added or removed).
    pub fn set_port_names(&self, names: Vec<String>) {
        if let Ok(mut s) = self.state.lock() {
            s.port_names = names;
        }
    }

    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, ControlState>> {
        self.state.lock().map_err(|_| io::Error::other("capture control poisoned"))
    }

    /// Start capturing `spec` to a new file at `path`.
    ///
    /// # Errors
    /// A capture is already running (`AlreadyExists`), or the file cannot be created.
    pub fn start(&self, spec: CaptureSpec, path: &Path) -> io::Result<()> {
        let mut st = self.lock()?;
        if let Some(a) = &st.active {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("a capture to {} is already running (stop it first)", a.path.display())));
        }
        let (captures, writer) = capture(spec.clone(), path, st.port_names.clone(), self.tsc_hz, self.workers)?;
        st.active = Some(Active { writer, path: path.to_path_buf(), spec, started: Instant::now() });
        self.live.store(Some(Arc::new(Session { captures })));
        Ok(())
    }

    /// The capture in progress, if any.
    pub fn status(&self) -> Option<CaptureStatus> {
        let st = self.state.lock().ok()?;
        st.active.as_ref().map(|a| CaptureStatus {
            path: a.path.clone(),
            spec: a.spec.clone(),
            seconds: a.started.elapsed().as_secs_f64(),
            summary: CaptureSummary { written: a.writer.written(), lost: a.writer.lost() },
        })
    }

    /// Stop the capture in progress and close its file; `Ok(None)` when none runs.
    ///
    /// # Errors
    /// The first I/O error the writer met; the capture is stopped regardless.
    pub fn stop(&self) -> io::Result<Option<CaptureStatus>> {
        let mut st = self.lock()?;
        let Some(a) = st.active.take() else { return Ok(None) };
        // A swap settles every worker's outstanding load into the strong count, so
        // once it drops to ours no worker is still inside a batch with this session.
        let old = self.live.swap(None);
        let deadline = std::time::Instant::now() + GRACE;
        while old.as_ref().is_some_and(|o| Arc::strong_count(o) > 1) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(100));
        }
        let seconds = a.started.elapsed().as_secs_f64();
        let summary = a.writer.stop()?;
        Ok(Some(CaptureStatus { path: a.path, spec: a.spec, seconds, summary }))
    }
}

impl Drop for CaptureControl {
    fn drop(&mut self) {
        self.live.store(None);
    }
}

/// One worker's handle on [`CaptureControl`]: a capture extension that
/// records into the published session, if any.
#[derive(Debug)]
pub struct LiveCapture {
    ctl: Arc<CaptureControl>,
}

impl CaptureExtension for LiveCapture {
    fn name(&self) -> &'static str {
        "live-capture"
    }

    #[inline]
    fn active(&self) -> bool {
        self.ctl.live.load().is_some()
    }

    #[inline]
    fn capture(&mut self, cx: &Context<'_>, stage: Stage, pkts: &[PacketRef<'_>]) {
        let session = self.ctl.live.load();
        if let Some(c) = session.as_ref().and_then(|s| s.captures.get(cx.worker)) {
            c.record(cx, stage, pkts);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ext::capture::StageSel;
    use crate::meta::Meta;
    use crate::tables::Tables;

    fn frames(n: u8) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i; 64]).collect()
    }

    fn feed(ext: &mut LiveCapture, worker: usize, tables: &Tables, data: &[Vec<u8>]) {
        let metas: Vec<Meta> = data.iter().map(|_| Meta { in_port: 0, vsid: 5001, ..Default::default() }).collect();
        let pkts: Vec<PacketRef<'_>> = data.iter().zip(&metas).map(|(d, m)| PacketRef { data: d, meta: m }).collect();
        let cx = Context { tables, now: 1_000, worker };
        ext.capture(&cx, Stage::Ingress, &pkts);
    }

    fn packets_in(path: &Path) -> usize {
        let mut r = pcap_file::pcapng::PcapNgReader::new(std::fs::File::open(path).unwrap()).unwrap();
        let mut n = 0;
        while let Some(b) = r.next_block() {
            if matches!(b.unwrap(), pcap_file::pcapng::Block::EnhancedPacket(_)) {
                n += 1;
            }
        }
        n
    }

    #[test]
    fn captures_only_between_start_and_stop() {
        let dir = std::env::temp_dir().join(format!("hnv-live-capture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.pcapng");
        let tables = Tables::default();
        let ctl = CaptureControl::new(2, 1_000_000_000, vec!["vm0".into()]);
        let mut w0 = ctl.extension();
        let mut w1 = ctl.extension();
        feed(&mut w0, 0, &tables, &frames(5)); // before start: nothing
        assert!(ctl.status().is_none());
        assert!(ctl.stop().unwrap().is_none());
        let spec = CaptureSpec { stages: StageSel::Ingress, ..CaptureSpec::all() };
        ctl.start(spec.clone(), &path).unwrap();
        let again = ctl.start(spec, &dir.join("b.pcapng")).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        feed(&mut w0, 0, &tables, &frames(3));
        feed(&mut w1, 1, &tables, &frames(4));
        let done = ctl.stop().unwrap().unwrap();
        assert_eq!(done.summary.written, 7);
        assert_eq!(done.summary.lost, 0);
        feed(&mut w0, 0, &tables, &frames(5)); // after stop: nothing
        assert_eq!(packets_in(&path), 7);
        // A second capture to another file works.
        let path2 = dir.join("c.pcapng");
        ctl.start(CaptureSpec::all(), &path2).unwrap();
        feed(&mut w1, 1, &tables, &frames(2));
        assert!(ctl.status().is_some());
        assert_eq!(ctl.stop().unwrap().unwrap().summary.written, 2);
        assert_eq!(packets_in(&path2), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bad_path_is_an_error_and_nothing_runs() {
        let ctl = CaptureControl::new(1, 1_000_000_000, Vec::new());
        assert!(ctl.start(CaptureSpec::all(), Path::new("/nonexistent-dir/x.pcapng")).is_err());
        assert!(ctl.status().is_none());
    }
}
