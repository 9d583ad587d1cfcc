//! The built-in capture extension: chosen packets to a pcapng file, off the
//! hot path.
//!
//! [`capture`] builds one [`PcapngCapture`] per worker (a
//! [`CaptureExtension`], registered with `Pipeline::with_capture`) and one
//! [`CaptureWriter`], which owns a background thread that writes the file.
//! Each worker has its own pair of bounded rings of preallocated,
//! fixed-size records: `free` and `filled`. On the hot path
//! [`PcapngCapture::capture`] pops a free record, copies at most `snaplen`
//! bytes and the metadata into it and pushes it to `filled`; it never
//! allocates, locks, blocks, makes a syscall or logs. When no free record is
//! left (the writer is behind, or stopped) the packet is counted as lost and
//! skipped. The writer thread pops filled records, writes them, and returns
//! them to `free`; when idle it sleeps about a millisecond.
//!
//! Thread contract: a [`PcapngCapture`] belongs to one worker (it is `Send`,
//! not `Clone`). Its rings are single-producer (that worker) and
//! single-consumer (the writer thread). Its `lost` counter is written by that
//! worker only (relaxed load + store) and read by anyone. The `written`
//! counter is written by the writer thread only. Nothing here panics outside
//! tests.
//!
//! The file (new, never an existing file or a symlink; mode 0600: it holds
//! tenants' packets): one Interface Description Block per switch port (link type
//! Ethernet, `if_name` = the port's name, nanosecond timestamps); each packet
//! is an Enhanced Packet Block on the interface of the port it *arrived* on
//! (`meta.in_port`; at egress the destination is not part of a
//! [`PacketRef`]), with `epb_flags` direction inbound (ingress) or outbound
//! (egress) and a comment such as `"ingress vsid 5001"`, so an operator can
//! filter with `frame.comment contains "vsid 5001"` or
//! `frame.packet_flags_direction == 1` in Wireshark/tshark. Timestamps are
//! TSC values converted to wall-clock time with `tsc_hz` and one
//! (wall clock, TSC) pair taken when the writer sees the first record.
//! Records from different workers are merged approximately in TSC order.

use crate::meta::Meta;
use crate::pipeline::{CaptureExtension, Context, PacketRef, Stage};
use crossbeam::queue::ArrayQueue;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, PcapError};
use pmd::stats::Counter;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bytes of frame a record can hold; the largest usable snaplen.
pub const RECORD_DATA: usize = 2048;
/// Records preallocated per worker.
pub const RING_RECORDS: usize = 4096;
/// How long the writer sleeps when every ring is empty.
const IDLE_SLEEP: Duration = Duration::from_millis(1);
/// pcapng `if_tsresol` value for nanoseconds (10^-9 s).
const TSRESOL_NS: u8 = 9;
/// pcapng `epb_flags` direction bits.
const EPB_INBOUND: u32 = 1;
/// pcapng `epb_flags` direction bits.
const EPB_OUTBOUND: u32 = 2;

/// Which pipeline stages to capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageSel {
    /// Packets as they enter the pipeline (after decap and VSID assignment).
    Ingress,
    /// Packets about to leave (after forwarding and egress filters).
    Egress,
    /// Both; a packet that is delivered then appears twice.
    Both,
}

impl StageSel {
    /// True if `stage` is selected.
    #[inline]
    pub fn contains(self, stage: Stage) -> bool {
        matches!((self, stage), (StageSel::Both, _) | (StageSel::Ingress, Stage::Ingress) | (StageSel::Egress, Stage::Egress))
    }
}

/// What to capture.
///
/// A packet is captured when its stage is selected, its `in_port` is in
/// `ports` (or `ports` is empty) and its VSID is in `vsids` (or `vsids` is
/// empty): empty lists mean "everything", non-empty ones narrow together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSpec {
    /// Switch ports (by index, matched against `meta.in_port`); empty = all.
    pub ports: Vec<u16>,
    /// VSIDs (matched against `meta.vsid`); empty = all.
    pub vsids: Vec<u32>,
    /// Stages to capture at.
    pub stages: StageSel,
    /// Bytes kept per frame; 0 or more than [`RECORD_DATA`] means [`RECORD_DATA`].
    pub snaplen: u16,
}

impl CaptureSpec {
    /// Everything, at both stages, up to [`RECORD_DATA`] bytes per frame.
    pub fn all() -> Self {
        CaptureSpec { ports: Vec::new(), vsids: Vec::new(), stages: StageSel::Both, snaplen: 0 }
    }

    /// The effective snap length.
    fn effective_snaplen(&self) -> usize {
        match usize::from(self.snaplen) {
            0 => RECORD_DATA,
            n => n.min(RECORD_DATA),
        }
    }

    /// True if a packet with `meta` is selected (stage checked separately).
    #[inline]
    fn wants(&self, meta: &Meta) -> bool {
        (self.ports.is_empty() || self.ports.contains(&meta.in_port)) && (self.vsids.is_empty() || self.vsids.contains(&meta.vsid))
    }
}

/// What the writer wrote and what the workers could not hand it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureSummary {
    /// Packets written to the file.
    pub written: u64,
    /// Selected packets skipped because no free record was available.
    pub lost: u64,
}

/// One captured packet, preallocated and recycled between the rings.
struct Record {
    /// Frame bytes; the first `len` are valid.
    data: [u8; RECORD_DATA],
    /// Bytes captured.
    len: u16,
    /// Length of the frame.
    orig_len: u32,
    /// `meta.in_port`.
    port: u16,
    /// Where it was seen.
    stage: Stage,
    /// `meta.vsid`.
    vsid: u32,
    /// `cx.now` of the batch.
    tsc: u64,
}

impl Record {
    fn boxed() -> Box<Record> {
        Box::new(Record { data: [0; RECORD_DATA], len: 0, orig_len: 0, port: 0, stage: Stage::Ingress, vsid: 0, tsc: 0 })
    }
}

/// One worker's rings.
///
/// `free` and `filled`: pushed by one side, popped by the other (worker pops
/// `free` and pushes `filled`; the writer does the reverse). Both have the
/// capacity of the total number of records, so a push never fails.
/// `lost`: written by the worker only, read by anyone (relaxed).
#[derive(Debug)]
struct Ring {
    /// Records ready for the worker.
    free: ArrayQueue<Box<Record>>,
    /// Records waiting for the writer.
    filled: ArrayQueue<Box<Record>>,
    /// Selected packets the worker had no record for.
    lost: Counter,
}

impl Ring {
    /// A ring with `records` preallocated records, all free.
    fn new(records: usize) -> Ring {
        let records = records.max(1);
        let free = ArrayQueue::new(records);
        for _ in 0..records {
            // Cannot fail: exactly `records` pushes into capacity `records`.
            let _ = free.push(Record::boxed());
        }
        Ring { free, filled: ArrayQueue::new(records), lost: Counter::default() }
    }
}

/// One worker's capture extension (see the module docs).
#[derive(Debug)]
pub struct PcapngCapture {
    /// What to capture.
    spec: CaptureSpec,
    /// Bytes copied per frame, at most [`RECORD_DATA`].
    snaplen: usize,
    /// This worker's rings, shared with the writer.
    ring: Arc<Ring>,
}

impl PcapngCapture {
    /// Selected packets this extension had to skip so far.
    pub fn lost(&self) -> u64 {
        self.ring.lost.get()
    }
}

impl PcapngCapture {
    /// Copy the selected packets of `pkts`, seen at `stage`, into this
    /// worker's ring. Only the owning worker may call it (single producer).
    #[inline]
    pub(crate) fn record(&self, cx: &Context<'_>, stage: Stage, pkts: &[PacketRef<'_>]) {
        if !self.spec.stages.contains(stage) {
            return;
        }
        let mut lost = 0u64;
        for p in pkts {
            if !self.spec.wants(p.meta) {
                continue;
            }
            let Some(mut rec) = self.ring.free.pop() else {
                lost += 1;
                continue;
            };
            let n = p.data.len().min(self.snaplen);
            if let (Some(dst), Some(src)) = (rec.data.get_mut(..n), p.data.get(..n)) {
                dst.copy_from_slice(src);
            }
            rec.len = n as u16; // n <= RECORD_DATA < 2^16
            rec.orig_len = u32::try_from(p.data.len()).unwrap_or(u32::MAX);
            rec.port = p.meta.in_port;
            rec.stage = stage;
            rec.vsid = p.meta.vsid;
            rec.tsc = cx.now;
            if let Err(rec) = self.ring.filled.push(rec) {
                // Unreachable (capacity = record count); keep the record anyway.
                let _ = self.ring.free.push(rec);
                lost += 1;
            }
        }
        if lost != 0 {
            self.ring.lost.add(lost);
        }
    }
}

impl CaptureExtension for PcapngCapture {
    fn name(&self) -> &'static str {
        "pcapng-capture"
    }

    fn capture(&mut self, cx: &Context<'_>, stage: Stage, pkts: &[PacketRef<'_>]) {
        self.record(cx, stage, pkts);
    }
}

/// The background thread writing the pcapng file; stop it with
/// [`CaptureWriter::stop`] (dropping it stops it too, discarding errors).
#[derive(Debug)]
pub struct CaptureWriter {
    /// The thread; `None` once joined.
    thread: Option<JoinHandle<io::Result<()>>>,
    /// Set by [`CaptureWriter::stop`]; read by the thread (release/acquire).
    stop: Arc<AtomicBool>,
    /// Every worker's rings, for the `lost` counters.
    rings: Vec<Arc<Ring>>,
    /// Packets written; written by the thread only.
    written: Arc<Counter>,
}

impl CaptureWriter {
    /// Packets written so far.
    pub fn written(&self) -> u64 {
        self.written.get()
    }

    /// Selected packets the workers skipped so far (summed over workers).
    pub fn lost(&self) -> u64 {
        self.rings.iter().map(|r| r.lost.get()).sum()
    }

    /// True while the thread runs (false after an I/O error ended it).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Write every record queued so far, flush the file and join the thread.
    ///
    /// Call it after the workers stopped calling their [`PcapngCapture`]s for
    /// a complete file; packets captured after this call are not written
    /// (the extensions keep working and count them as lost).
    ///
    /// # Errors
    /// The first I/O error the thread met while writing or flushing.
    pub fn stop(mut self) -> io::Result<CaptureSummary> {
        self.stop.store(true, Ordering::Release);
        let result = match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| Err(io::Error::other("capture writer thread panicked"))),
            None => Ok(()),
        };
        result.map(|()| CaptureSummary { written: self.written(), lost: self.lost() })
    }
}

impl Drop for CaptureWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start capturing `spec` to a new pcapng file at `path`.
///
/// `port_names[i]` names switch port `i` (its `if_name`); a packet from a
/// port beyond the list gets an interface named `port<N>`. `tsc_hz` is the
/// TSC frequency of `cx.now`. Returns one extension per worker (give the
/// `i`-th to worker `i`'s pipeline) and the writer, whose thread is already
/// running. Preallocates [`RING_RECORDS`] records per worker.
///
/// # Errors
/// `tsc_hz` is 0 (`InvalidInput`), `path` exists (`AlreadyExists`, symlinks
/// included: a capture never overwrites), the file cannot be created, or the
/// section or interface headers cannot be written.
pub fn capture(spec: CaptureSpec, path: &Path, port_names: Vec<String>, tsc_hz: u64, workers: usize) -> io::Result<(Vec<PcapngCapture>, CaptureWriter)> {
    capture_with(spec, path, port_names, tsc_hz, workers, RING_RECORDS)
}

/// [`capture`] with `ring_records` records per worker.
fn capture_with(spec: CaptureSpec, path: &Path, port_names: Vec<String>, tsc_hz: u64, workers: usize, ring_records: usize) -> io::Result<(Vec<PcapngCapture>, CaptureWriter)> {
    if tsc_hz == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "tsc_hz must not be 0"));
    }
    let rings: Vec<Arc<Ring>> = (0..workers).map(|_| Arc::new(Ring::new(ring_records))).collect();
    let captures = extensions(&spec, &rings);
    let writer = spawn_writer(path, port_names, &spec, tsc_hz, rings)?;
    Ok((captures, writer))
}

/// One extension per ring.
fn extensions(spec: &CaptureSpec, rings: &[Arc<Ring>]) -> Vec<PcapngCapture> {
    let snaplen = spec.effective_snaplen();
    rings.iter().map(|r| PcapngCapture { spec: spec.clone(), snaplen, ring: Arc::clone(r) }).collect()
}

/// Create the file, write its headers and start the thread. The file is new
/// (`O_CREAT|O_EXCL`: an existing file or a symlink is refused with
/// `AlreadyExists`, so a capture never overwrites anything, nor writes
/// tenants' packets into a file someone else prepared, e.g. in /tmp) and
/// mode 0600 from the start (it holds tenants' packets).
fn spawn_writer(path: &Path, port_names: Vec<String>, spec: &CaptureSpec, tsc_hz: u64, rings: Vec<Arc<Ring>>) -> io::Result<CaptureWriter> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => io::Error::new(e.kind(), format!("{} exists (a capture never overwrites a file or follows a symlink)", path.display())),
        _ => e,
    })?;
    let file = BufWriter::new(file);
    let mut out = PcapFile { w: PcapNgWriter::new(file).map_err(pcap_io)?, snaplen: spec.effective_snaplen() as u32, interfaces: 0 };
    for name in &port_names {
        out.add_interface(name)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(Counter::default());
    let mut state = WriterState {
        out,
        rings: rings.clone(),
        heads: (0..rings.len()).map(|_| None).collect(),
        stop: Arc::clone(&stop),
        written: Arc::clone(&written),
        clock: Clock { tsc_hz, anchor: None },
        comment: String::with_capacity(32),
    };
    let thread = std::thread::Builder::new().name("hnv-capture".into()).spawn(move || state.run())?;
    Ok(CaptureWriter { thread: Some(thread), stop, rings, written })
}

/// `PcapError` as `io::Error`.
fn pcap_io(e: PcapError) -> io::Error {
    match e {
        PcapError::IoError(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

/// The pcapng file and how many interfaces it describes.
struct PcapFile {
    /// The writer.
    w: PcapNgWriter<BufWriter<File>>,
    /// Snap length written in every IDB.
    snaplen: u32,
    /// IDBs written so far (interface id = switch port).
    interfaces: u32,
}

impl PcapFile {
    /// Write the IDB of the next port.
    fn add_interface(&mut self, name: &str) -> io::Result<()> {
        let idb = InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: self.snaplen,
            options: vec![InterfaceDescriptionOption::IfName(Cow::Borrowed(name)), InterfaceDescriptionOption::IfTsResol(TSRESOL_NS)],
        };
        self.w.write_pcapng_block(idb).map_err(pcap_io)?;
        self.interfaces += 1;
        Ok(())
    }

    /// Make sure port `port` has an IDB (unnamed ports get `port<N>`).
    fn ensure_interface(&mut self, port: u16) -> io::Result<()> {
        while self.interfaces <= u32::from(port) {
            let name = format!("port{}", self.interfaces);
            self.add_interface(&name)?;
        }
        Ok(())
    }
}

/// TSC to wall-clock conversion.
struct Clock {
    /// TSC ticks per second (non-zero).
    tsc_hz: u64,
    /// (ns since the Unix epoch, TSC) taken at the first record.
    anchor: Option<(i128, u64)>,
}

impl Clock {
    /// Wall-clock time of `tsc`, as a duration since the Unix epoch.
    fn wall(&mut self, tsc: u64) -> Duration {
        let (ns0, tsc0) = *self.anchor.get_or_insert_with(|| {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            (now.as_nanos() as i128, tsc)
        });
        let delta = i128::from(tsc) - i128::from(tsc0);
        let ns = ns0 + delta * 1_000_000_000 / i128::from(self.tsc_hz);
        Duration::from_nanos(u64::try_from(ns.max(0)).unwrap_or(u64::MAX))
    }
}

/// Everything the writer thread owns.
struct WriterState {
    /// The output.
    out: PcapFile,
    /// Every worker's rings.
    rings: Vec<Arc<Ring>>,
    /// Per ring, the record popped but not yet written (for the merge).
    heads: Vec<Option<Box<Record>>>,
    /// Stop request.
    stop: Arc<AtomicBool>,
    /// Packets written.
    written: Arc<Counter>,
    /// Timestamps.
    clock: Clock,
    /// Reused EPB comment buffer.
    comment: String,
}

impl WriterState {
    /// The thread body: drain until stopped, then drain what is left and flush.
    fn run(&mut self) -> io::Result<()> {
        loop {
            // Read the flag before draining: every record pushed before
            // `stop()` is then visible to the drain below.
            let stopping = self.stop.load(Ordering::Acquire);
            if stopping {
                // Bounded final drain: what is queued now, not what workers
                // that keep running push meanwhile.
                let queued: usize = self.rings.iter().map(|r| r.filled.len()).sum::<usize>() + self.heads.len();
                self.drain(queued)?;
                break;
            }
            if self.drain(usize::MAX)? == 0 {
                std::thread::sleep(IDLE_SLEEP);
            }
        }
        self.out.w.get_mut().flush()
    }

    /// Write up to `limit` records, oldest TSC first among the rings' heads;
    /// return how many were written.
    fn drain(&mut self, limit: usize) -> io::Result<usize> {
        let mut n = 0;
        while n < limit {
            let mut oldest: Option<(usize, u64)> = None;
            for (i, (head, ring)) in self.heads.iter_mut().zip(&self.rings).enumerate() {
                if head.is_none() {
                    *head = ring.filled.pop();
                }
                if let Some(rec) = head {
                    if oldest.is_none_or(|(_, t)| rec.tsc < t) {
                        oldest = Some((i, rec.tsc));
                    }
                }
            }
            let Some((i, _)) = oldest else { break };
            let Some(rec) = self.heads.get_mut(i).and_then(Option::take) else { break };
            let result = self.write(&rec);
            if let Some(ring) = self.rings.get(i) {
                let _ = ring.free.push(rec);
            }
            result?;
            n += 1;
        }
        Ok(n)
    }

    /// Write one record as an EPB.
    fn write(&mut self, rec: &Record) -> io::Result<()> {
        self.out.ensure_interface(rec.port)?;
        let (dir, flags) = match rec.stage {
            Stage::Ingress => ("ingress", EPB_INBOUND),
            Stage::Egress => ("egress", EPB_OUTBOUND),
        };
        self.comment.clear();
        let _ = write!(self.comment, "{dir} vsid {}", rec.vsid);
        let data = rec.data.get(..usize::from(rec.len)).unwrap_or(&[]);
        let epb = EnhancedPacketBlock {
            interface_id: u32::from(rec.port),
            timestamp: self.clock.wall(rec.tsc),
            original_len: rec.orig_len,
            data: Cow::Borrowed(data),
            options: vec![EnhancedPacketOption::Comment(Cow::Borrowed(&self.comment)), EnhancedPacketOption::Flags(flags)],
        };
        self.out.w.write_pcapng_block(epb).map_err(pcap_io)?;
        self.written.add(1);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tables::Tables;
    use pcap_file::pcapng::{Block, PcapNgReader};
    use std::path::PathBuf;

    /// A unique temporary file path, removed on drop.
    struct TempPath(PathBuf);

    impl TempPath {
        fn new(tag: &str) -> TempPath {
            static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = SEQ.fetch_add(1, Ordering::Relaxed);
            TempPath(std::env::temp_dir().join(format!("hnv-capture-{}-{tag}-{n}.pcapng", std::process::id())))
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// One frame read back.
    #[derive(Debug, PartialEq, Eq)]
    struct Frame {
        iface: u32,
        data: Vec<u8>,
        orig_len: u32,
        comment: String,
        flags: u32,
        ts: Duration,
    }

    /// Read `path` back: interface names and frames.
    fn read_back(path: &Path) -> (Vec<String>, Vec<Frame>) {
        let mut r = PcapNgReader::new(File::open(path).unwrap()).unwrap();
        let mut frames = Vec::new();
        while let Some(block) = r.next_block() {
            if let Block::EnhancedPacket(epb) = block.unwrap() {
                let mut f = Frame { iface: epb.interface_id, data: epb.data.to_vec(), orig_len: epb.original_len, comment: String::new(), flags: 0, ts: epb.timestamp };
                for o in &epb.options {
                    match o {
                        EnhancedPacketOption::Comment(c) => f.comment = c.to_string(),
                        EnhancedPacketOption::Flags(x) => f.flags = *x,
                        _ => {}
                    }
                }
                frames.push(f);
            }
        }
        let names = r
            .interfaces()
            .iter()
            .map(|idb| {
                assert_eq!(idb.linktype, DataLink::ETHERNET);
                assert!(idb.options.contains(&InterfaceDescriptionOption::IfTsResol(TSRESOL_NS)));
                idb.options
                    .iter()
                    .find_map(|o| match o {
                        InterfaceDescriptionOption::IfName(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .unwrap()
            })
            .collect();
        (names, frames)
    }

    fn meta(port: u16, vsid: u32) -> Meta {
        Meta { in_port: port, vsid, ..Meta::default() }
    }

    /// A frame whose bytes encode (port, vsid, seq) and has `len` bytes.
    fn frame(port: u16, vsid: u32, seq: u8, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[0] = port as u8;
        f[1] = vsid as u8;
        f[2] = seq;
        f
    }

    fn names() -> Vec<String> {
        vec!["uplink0".into(), "vm-a".into(), "vm-b".into()]
    }

    /// Run one batch of `(port, vsid, bytes)` through `c` at `stage`.
    fn feed(c: &mut PcapngCapture, tables: &Tables, now: u64, stage: Stage, pkts: &[(u16, u32, Vec<u8>)]) {
        let metas: Vec<Meta> = pkts.iter().map(|(p, v, _)| meta(*p, *v)).collect();
        let refs: Vec<PacketRef<'_>> = pkts.iter().zip(&metas).map(|((_, _, d), m)| PacketRef { data: d, meta: m }).collect();
        let cx = Context { tables, now, worker: 0 };
        c.capture(&cx, stage, &refs);
    }

    #[test]
    fn writes_frames_interfaces_and_comments() {
        let tmp = TempPath::new("all");
        let tables = Tables::default();
        let spec = CaptureSpec::all();
        // Fill the rings first and start the writer after, so that the
        // cross-worker merge order is deterministic.
        let rings: Vec<Arc<Ring>> = (0..2).map(|_| Arc::new(Ring::new(16))).collect();
        let mut caps = extensions(&spec, &rings);
        let batch0 = vec![(1, 5001, frame(1, 1, 0, 60)), (2, 5002, frame(2, 2, 1, 1500))];
        feed(&mut caps[0], &tables, 1_000, Stage::Ingress, &batch0);
        feed(&mut caps[0], &tables, 2_000, Stage::Egress, &batch0[..1]);
        // A port beyond the named ones gets an interface of its own.
        feed(&mut caps[1], &tables, 1_500, Stage::Ingress, &[(4, 7, frame(4, 7, 2, 64))]);
        let writer = spawn_writer(&tmp.0, names(), &spec, 1_000_000_000, rings).unwrap();
        let summary = writer.stop().unwrap();
        assert_eq!(summary, CaptureSummary { written: 4, lost: 0 });

        let (ifaces, frames) = read_back(&tmp.0);
        assert_eq!(ifaces, vec!["uplink0", "vm-a", "vm-b", "port3", "port4"]);
        assert_eq!(frames.len(), 4);
        // Merged in TSC order across workers.
        let got: Vec<(u32, &str, u32)> = frames.iter().map(|f| (f.iface, f.comment.as_str(), f.flags)).collect();
        assert_eq!(got, vec![(1, "ingress vsid 5001", EPB_INBOUND), (2, "ingress vsid 5002", EPB_INBOUND), (4, "ingress vsid 7", EPB_INBOUND), (1, "egress vsid 5001", EPB_OUTBOUND)]);
        assert_eq!(frames[0].data, batch0[0].2);
        assert_eq!(frames[1].data, batch0[1].2);
        assert_eq!(frames[1].orig_len, 1500);
        // 1 GHz: TSC deltas are nanoseconds.
        assert_eq!(frames[3].ts - frames[0].ts, Duration::from_nanos(1_000));
        assert_eq!(frames[2].ts - frames[1].ts, Duration::from_nanos(500));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(now >= frames[0].ts && now - frames[0].ts < Duration::from_secs(60));
    }

    #[test]
    fn filters_by_port_vsid_stage_and_snaps() {
        let tmp = TempPath::new("filter");
        let tables = Tables::default();
        let spec = CaptureSpec { ports: vec![1, 2], vsids: vec![5001], stages: StageSel::Ingress, snaplen: 100 };
        let (mut caps, writer) = capture(spec, &tmp.0, names(), 2_000_000_000, 1).unwrap();
        let batch = vec![
            (1, 5001, frame(1, 1, 0, 300)), // kept, snapped to 100
            (2, 5002, frame(2, 2, 1, 60)),  // wrong VSID
            (0, 5001, frame(0, 1, 2, 60)),  // wrong port
            (2, 5001, frame(2, 1, 3, 60)),  // kept
        ];
        feed(&mut caps[0], &tables, 10, Stage::Ingress, &batch);
        feed(&mut caps[0], &tables, 20, Stage::Egress, &batch); // stage not selected
        let summary = writer.stop().unwrap();
        assert_eq!(summary, CaptureSummary { written: 2, lost: 0 });

        let (ifaces, frames) = read_back(&tmp.0);
        assert_eq!(ifaces, names());
        assert_eq!(frames.len(), 2);
        assert_eq!((frames[0].iface, frames[0].orig_len, frames[0].data.as_slice()), (1, 300, &batch[0].2[..100]));
        assert_eq!((frames[1].iface, frames[1].orig_len, frames[1].data.as_slice()), (2, 60, &batch[3].2[..]));
        assert!(frames.iter().all(|f| f.comment == "ingress vsid 5001"));
    }

    #[test]
    fn vsid_only_and_egress_only() {
        let tmp = TempPath::new("vsid");
        let tables = Tables::default();
        let spec = CaptureSpec { ports: vec![], vsids: vec![9, 10], stages: StageSel::Egress, snaplen: 0 };
        let (mut caps, writer) = capture(spec, &tmp.0, names(), 1_000_000, 1).unwrap();
        let batch = vec![(0, 9, frame(0, 9, 0, 3000)), (1, 11, frame(1, 11, 1, 60)), (2, 10, frame(2, 10, 2, 60))];
        feed(&mut caps[0], &tables, 5, Stage::Ingress, &batch);
        feed(&mut caps[0], &tables, 6, Stage::Egress, &batch);
        assert_eq!(writer.stop().unwrap().written, 2);
        let (_, frames) = read_back(&tmp.0);
        let got: Vec<(u32, &str, usize, u32)> = frames.iter().map(|f| (f.iface, f.comment.as_str(), f.data.len(), f.orig_len)).collect();
        // A jumbo frame is cut at RECORD_DATA.
        assert_eq!(got, vec![(0, "egress vsid 9", RECORD_DATA, 3000), (2, "egress vsid 10", 60, 60)]);
    }

    #[test]
    fn exhausted_free_ring_counts_lost_and_does_not_block() {
        let tmp = TempPath::new("lost");
        let tables = Tables::default();
        let spec = CaptureSpec::all();
        // Rings without a writer: nothing returns records to `free`.
        let rings: Vec<Arc<Ring>> = (0..1).map(|_| Arc::new(Ring::new(4))).collect();
        let mut caps = extensions(&spec, &rings);
        let batch: Vec<(u16, u32, Vec<u8>)> = (0..6).map(|i| (0, 1, frame(0, 1, i, 60))).collect();
        feed(&mut caps[0], &tables, 1, Stage::Ingress, &batch);
        feed(&mut caps[0], &tables, 2, Stage::Ingress, &batch[..3]);
        assert_eq!(caps[0].lost(), 5);
        assert_eq!(rings[0].filled.len(), 4);
        assert!(rings[0].free.is_empty());

        // A writer started now drains the four, and reports the loss.
        let writer = spawn_writer(&tmp.0, names(), &spec, 1_000, rings).unwrap();
        assert_eq!(writer.stop().unwrap(), CaptureSummary { written: 4, lost: 5 });
        let (_, frames) = read_back(&tmp.0);
        let seqs: Vec<u8> = frames.iter().map(|f| f.data[2]).collect();
        assert_eq!(seqs, vec![0, 1, 2, 3]);
    }

    #[test]
    fn records_recycle_through_a_running_writer() {
        let tmp = TempPath::new("recycle");
        let tables = Tables::default();
        let (mut caps, writer) = capture_with(CaptureSpec::all(), &tmp.0, names(), 1_000, 1, 8).unwrap();
        let batch: Vec<(u16, u32, Vec<u8>)> = (0..4).map(|i| (1, 1, frame(1, 1, i, 60))).collect();
        // Far more packets than records: the writer must hand them back.
        let mut sent = 0u64;
        for now in 0..200u64 {
            feed(&mut caps[0], &tables, now, Stage::Ingress, &batch);
            sent += 4;
            while !caps[0].ring.filled.is_empty() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let summary = writer.stop().unwrap();
        assert_eq!(summary.written + summary.lost, sent);
        assert_eq!(summary.lost, 0);
        assert_eq!(read_back(&tmp.0).1.len() as u64, sent);
    }

    #[test]
    fn rejects_zero_tsc_hz_and_bad_path() {
        let tmp = TempPath::new("bad");
        assert_eq!(capture(CaptureSpec::all(), &tmp.0, names(), 0, 1).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let dir = std::env::temp_dir();
        assert!(capture(CaptureSpec::all(), &dir, names(), 1, 1).is_err());
    }

    #[test]
    fn dropping_the_writer_stops_it() {
        let tmp = TempPath::new("drop");
        let tables = Tables::default();
        let (mut caps, writer) = capture(CaptureSpec::all(), &tmp.0, names(), 1_000, 1).unwrap();
        feed(&mut caps[0], &tables, 1, Stage::Ingress, &[(0, 1, frame(0, 1, 0, 60))]);
        drop(writer);
        assert_eq!(read_back(&tmp.0).1.len(), 1);
        // The extension keeps working without a writer: it counts, never blocks.
        feed(&mut caps[0], &tables, 2, Stage::Ingress, &[(0, 1, frame(0, 1, 1, 60))]);
    }

    #[test]
    fn the_file_is_new_and_private_to_root() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = TempPath::new("mode");
        let (_caps, writer) = capture(CaptureSpec::all(), &tmp.0, names(), 1_000, 1).unwrap();
        drop(writer);
        assert_eq!(std::fs::metadata(&tmp.0).unwrap().permissions().mode() & 0o777, 0o600, "a capture file holds tenants' packets: owner only");
        // An existing file (a finished capture, or one someone else prepared) is left as it was.
        std::fs::write(&tmp.0, "precious").unwrap();
        std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(capture(CaptureSpec::all(), &tmp.0, names(), 1_000, 1).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&tmp.0).unwrap(), "precious");
        // A symlink is not followed, even to a file that does not exist yet.
        let link = TempPath::new("link");
        let target = TempPath::new("target");
        std::os::unix::fs::symlink(&target.0, &link.0).unwrap();
        assert_eq!(capture(CaptureSpec::all(), &link.0, names(), 1_000, 1).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        assert!(!target.0.exists());
    }
}
