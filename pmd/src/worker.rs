//! The poll-mode worker loop (DPDK l2fwd shape).
//!
//! Each iteration reads the TSC once, drains every port's tx buffer when the
//! drain interval has passed, then for each assigned rx queue: rx burst →
//! [`Processor::process`] → flush ports holding a full burst. Packets a port
//! refuses are freed and counted. The loop allocates nothing and stops when
//! `stop` is set, after a final drain.
//!
//! Port-list changes ([`ReloadGate`], OVS-DPDK's PMD reload): the control
//! side raises a reload request; each worker notices it at the top of an
//! iteration (one relaxed load), flushes its pending tx with the old port
//! map, parks and acknowledges. Once every worker is parked the control side
//! publishes the new policy and each worker's new plan and port map, then
//! releases them; a worker takes its new plan (rx queues, device ids, tx
//! buffers sized to the new port count) before its next rx burst. So a
//! packet is never sent by a port index from one port list through the
//! port map of another. Only the parked path allocates or locks.

use crate::batch::{Batch, BURST};
use crate::buf::PacketBuf;
use crate::processor::{Processor, TxStage};
use crate::stats::WorkerStats;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The packet I/O a worker drives: DPDK ports in the switch, in-memory queues in tests.
pub trait PortIo<B: PacketBuf> {
    /// Receive up to `BURST - pkts.len()` packets from `queue` of switch port `port` into `pkts`.
    fn rx_burst(&mut self, port: u16, queue: u16, pkts: &mut Batch<B>) -> usize;
    /// Send from the front of `pkts` on the worker's tx queue of `port`;
    /// return how many were accepted and removed from `pkts`.
    fn tx_burst<const N: usize>(&mut self, port: u16, pkts: &mut arrayvec::ArrayVec<B, N>) -> usize;
    /// Current time in TSC cycles.
    fn now(&self) -> u64;
    /// Take a new port map after a reload: `devices[i]` is the device of switch port `i`
    /// (an ethdev id for DPDK). Called only while the worker is parked.
    fn remap(&mut self, devices: &[u16]) {
        let _ = devices;
    }
    /// A new packet buffer holding `frame`, for packets a processor originates
    /// ([`Processor::tick`]); `None` by default (and when none is free).
    fn alloc(&mut self, frame: &[u8]) -> Option<B> {
        let _ = frame;
        None
    }
}

/// One (port, queue) pair polled by a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxQueue {
    /// Switch port index.
    pub port: u16,
    /// Rx queue id on that port.
    pub queue: u16,
}

/// What one worker polls and how often it drains.
#[derive(Debug, Clone)]
pub struct WorkerPlan {
    /// Worker index, also its tx queue id on every port.
    pub id: usize,
    /// Rx queues this worker owns.
    pub rx: Vec<RxQueue>,
    /// Number of switch ports.
    pub ports: usize,
    /// Drain interval in TSC cycles (100 µs).
    pub drain_cycles: u64,
    /// Stop after receiving this many packets (for fixed-count profiling runs).
    pub max_rx: Option<u64>,
    /// Sleep this long after [`IDLE_SPINS`] empty polls in a row (None = pure polling).
    pub idle_sleep: Option<std::time::Duration>,
}

/// Empty polls in a row before an idle worker may sleep.
pub const IDLE_SPINS: u32 = 1024;

/// Run the poll loop until `stop` is set.
pub fn run<B, IO, P>(io: &mut IO, processor: &mut P, plan: &WorkerPlan, stop: &AtomicBool, stats: &WorkerStats)
where
    B: PacketBuf,
    IO: PortIo<B>,
    P: Processor<B>,
{
    run_reloadable(io, processor, plan.clone(), stop, stats, None);
}

/// A worker's configuration after a port-list change.
#[derive(Debug, Clone)]
pub struct Reload {
    /// Its new plan (rx queues, port count).
    pub plan: WorkerPlan,
    /// Device of each switch port (see [`PortIo::remap`]).
    pub devices: Vec<u16>,
}

/// A worker that has left its loop, in [`ReloadGate`]'s per-worker state.
const EXITED: u64 = u64::MAX;

/// Pauses the workers between two loop iterations so that the control side
/// can change the port list (see the module docs).
///
/// Thread-safety contract: [`ReloadGate::pause`], [`ReloadGate::publish`] and
/// [`ReloadGate::resume`] are called by one control thread at a time (the
/// caller serialises changes); workers only read `requested`/`released` and
/// write their own `parked` slot.
#[derive(Debug)]
pub struct ReloadGate {
    /// Epoch of the latest reload request.
    requested: AtomicU64,
    /// Epoch up to which workers may resume.
    released: AtomicU64,
    /// Per worker: the epoch it is parked at (or acknowledged), [`EXITED`] once it left its loop.
    parked: Vec<AtomicU64>,
    /// Per worker: its new configuration, published while it is parked.
    next: Mutex<Vec<Option<Reload>>>,
}

impl ReloadGate {
    /// A gate for `workers` workers (indexed by [`WorkerPlan::id`]).
    pub fn new(workers: usize) -> Self {
        ReloadGate { requested: AtomicU64::new(0), released: AtomicU64::new(0), parked: (0..workers).map(|_| AtomicU64::new(0)).collect(), next: Mutex::new(vec![None; workers]) }
    }

    /// Ask every worker to park and wait until all have (or have exited).
    /// On timeout the request is withdrawn (parked workers resume unchanged).
    ///
    /// # Errors
    /// The workers that did not park within `timeout`.
    pub fn pause(&self, timeout: Duration) -> Result<(), String> {
        let epoch = self.requested.load(Ordering::Relaxed) + 1;
        self.requested.store(epoch, Ordering::Release);
        let deadline = Instant::now() + timeout;
        loop {
            let late: Vec<usize> = self.parked.iter().enumerate().filter(|(_, p)| !matches!(p.load(Ordering::Acquire), e if e == epoch || e == EXITED)).map(|(i, _)| i).collect();
            if late.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.released.store(epoch, Ordering::Release);
                return Err(format!("worker(s) {late:?} did not pause within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Give worker `id` its new configuration (between [`ReloadGate::pause`] and [`ReloadGate::resume`]).
    pub fn publish(&self, id: usize, reload: Reload) {
        let mut next = self.next.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(slot) = next.get_mut(id) {
            *slot = Some(reload);
        }
    }

    /// Let the parked workers go on, with whatever was published.
    pub fn resume(&self) {
        self.released.store(self.requested.load(Ordering::Relaxed), Ordering::Release);
    }

    /// True when a reload was requested after epoch `seen` (one relaxed load).
    #[inline]
    fn pending(&self, seen: u64) -> bool {
        self.requested.load(Ordering::Relaxed) != seen
    }

    /// Worker side: park until released; returns the epoch acknowledged and the new configuration, if any.
    #[cold]
    fn park(&self, id: usize, stop: &AtomicBool) -> (u64, Option<Reload>) {
        let epoch = self.requested.load(Ordering::Acquire);
        if let Some(p) = self.parked.get(id) {
            p.store(epoch, Ordering::Release);
        }
        while self.released.load(Ordering::Acquire) < epoch && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_micros(50));
        }
        let reload = self.next.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(id).and_then(Option::take);
        (epoch, reload)
    }

    /// Worker side: it left its loop and will never park again.
    fn exited(&self, id: usize) {
        if let Some(p) = self.parked.get(id) {
            p.store(EXITED, Ordering::Release);
        }
    }
}

/// [`run`] that also parks for port-list changes requested through `gate`.
pub fn run_reloadable<B, IO, P>(io: &mut IO, processor: &mut P, mut plan: WorkerPlan, stop: &AtomicBool, stats: &WorkerStats, gate: Option<&ReloadGate>)
where
    B: PacketBuf,
    IO: PortIo<B>,
    P: Processor<B>,
{
    let mut seen: u64 = 0;
    let mut batch: Batch<B> = Batch::new();
    let mut tx = TxStage::new(plan.ports);
    let mut last_drain = io.now();
    let mut start = last_drain;
    let mut iterations: u64 = 0;
    let mut received: u64 = 0;
    // One TSC read per iteration: the time since the previous read is charged
    // to the previous iteration, busy if it received packets, idle otherwise.
    let mut was_busy = false;
    let mut empty_polls: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        let now = io.now();
        let spent = now.wrapping_sub(start);
        if was_busy {
            stats.busy_cycles.add(spent);
        } else {
            stats.idle_cycles.add(spent);
        }
        start = now;
        if let Some(g) = gate.filter(|g| g.pending(seen)) {
            // Drain with the old port map, then wait for the new one.
            flush(io, &mut tx, 1, stats);
            let (epoch, reload) = g.park(plan.id, stop);
            seen = epoch;
            if let Some(r) = reload {
                let max_rx = plan.max_rx;
                plan = r.plan;
                plan.max_rx = max_rx;
                io.remap(&r.devices);
                tx = TxStage::new(plan.ports);
            }
            start = io.now();
            last_drain = start;
            continue;
        }
        if now.wrapping_sub(last_drain) >= plan.drain_cycles {
            processor.tick(&mut tx, &mut |f: &[u8]| io.alloc(f), now);
            flush(io, &mut tx, 1, stats);
            last_drain = now;
        }
        let mut got = 0usize;
        for q in &plan.rx {
            let n = io.rx_burst(q.port, q.queue, &mut batch);
            if n == 0 {
                continue;
            }
            got += n;
            processor.process(q.port, &mut batch, &mut tx, now);
            batch.clear();
            flush(io, &mut tx, BURST, stats);
        }
        iterations += 1;
        was_busy = got > 0;
        if was_busy {
            empty_polls = 0;
        } else if let Some(d) = plan.idle_sleep {
            empty_polls += 1;
            if empty_polls >= IDLE_SPINS {
                flush(io, &mut tx, 1, stats);
                std::thread::sleep(d);
            }
        }
        if was_busy {
            received += got as u64;
            stats.rx.add(got as u64);
            if plan.max_rx.is_some_and(|m| received >= m) {
                break;
            }
        }
        if iterations & 0xff == 0 {
            stats.iterations.add(256);
        }
    }
    flush(io, &mut tx, 1, stats);
    stats.iterations.add(iterations & 0xff);
    if let Some(g) = gate {
        g.exited(plan.id);
    }
}

/// Send every port's pending packets if it holds at least `threshold`.
fn flush<B: PacketBuf, IO: PortIo<B>>(io: &mut IO, tx: &mut TxStage<B>, threshold: usize, stats: &WorkerStats) {
    for port in 0..tx.ports() {
        if tx.pending_len(port) < threshold {
            continue;
        }
        if let Some(d) = tx.direct_mut(port) {
            send_all(io, port as u16, d, stats);
        } else if let Some(q) = tx.pending_mut(port) {
            send_all(io, port as u16, q, stats);
        }
    }
}

/// Send `q` on `port`, retrying a few times so that a briefly full NIC queue
/// does not drop; free and count what is still refused.
#[inline]
fn send_all<B: PacketBuf, IO: PortIo<B>, const N: usize>(io: &mut IO, port: u16, q: &mut arrayvec::ArrayVec<B, N>, stats: &WorkerStats) {
    let mut sent = 0;
    for _ in 0..4 {
        sent += io.tx_burst(port, q);
        if q.is_empty() {
            break;
        }
    }
    let refused = q.len();
    q.clear();
    stats.tx.add(sent as u64);
    stats.tx_refused.add(refused as u64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::HeapBuf;
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicU16, AtomicUsize};
    use std::sync::Arc;

    /// In-memory devices: rx from a queue, tx into a vector; switch port `i` is device `map[i]`.
    struct MemIo {
        rx: Vec<VecDeque<HeapBuf>>,
        tx: Vec<Vec<HeapBuf>>,
        clock: std::cell::Cell<u64>,
        tx_limit: usize,
        map: Vec<u16>,
        /// Packets rx may still hand out (None = all).
        allow: Option<Arc<AtomicUsize>>,
    }

    impl MemIo {
        fn new(devices: usize) -> Self {
            MemIo { rx: vec![VecDeque::new(); devices], tx: vec![vec![]; devices], clock: 0.into(), tx_limit: usize::MAX, map: (0..devices as u16).collect(), allow: None }
        }
    }

    impl PortIo<HeapBuf> for MemIo {
        fn rx_burst(&mut self, port: u16, _q: u16, pkts: &mut Batch<HeapBuf>) -> usize {
            let mut n = 0;
            let Some(&dev) = self.map.get(usize::from(port)) else { return 0 };
            while !pkts.is_full() {
                if let Some(a) = &self.allow {
                    if a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_err() {
                        break;
                    }
                }
                match self.rx[usize::from(dev)].pop_front() {
                    Some(p) => {
                        pkts.push(p);
                        n += 1;
                    }
                    None => break,
                }
            }
            n
        }
        fn tx_burst<const N: usize>(&mut self, port: u16, pkts: &mut arrayvec::ArrayVec<HeapBuf, N>) -> usize {
            let Some(&dev) = self.map.get(usize::from(port)) else { return 0 };
            let n = pkts.len().min(self.tx_limit);
            self.tx[usize::from(dev)].extend(pkts.drain(..n));
            n
        }
        fn now(&self) -> u64 {
            let t = self.clock.get() + 10;
            self.clock.set(t);
            t
        }
        fn remap(&mut self, devices: &[u16]) {
            self.map = devices.to_vec();
        }
    }

    /// Cross-connect 0 <-> 1 and stop after `limit` packets.
    struct Cross<'a> {
        seen: usize,
        limit: usize,
        stop: &'a AtomicBool,
    }

    impl Processor<HeapBuf> for Cross<'_> {
        fn process(&mut self, in_port: u16, pkts: &mut Batch<HeapBuf>, out: &mut TxStage<HeapBuf>, _now: u64) {
            self.seen += pkts.len();
            if self.seen.is_multiple_of(3) {
                out.send_batch(in_port ^ 1, pkts);
            } else {
                for p in pkts.drain(..) {
                    out.send(in_port ^ 1, p);
                }
            }
            if self.seen >= self.limit {
                self.stop.store(true, Ordering::Relaxed);
            }
        }
    }

    fn run_cross(tx_limit: usize) -> (MemIo, WorkerStats) {
        let mut io = MemIo { tx_limit, ..MemIo::new(2) };
        for i in 0..100u8 {
            io.rx[0].push_back(HeapBuf::from_slice(&[i; 60]));
        }
        let stop = AtomicBool::new(false);
        let stats = WorkerStats::default();
        let plan = WorkerPlan { id: 0, rx: vec![RxQueue { port: 0, queue: 0 }, RxQueue { port: 1, queue: 0 }], ports: 2, drain_cycles: 1000, max_rx: None, idle_sleep: None };
        let mut p = Cross { seen: 0, limit: 100, stop: &stop };
        run(&mut io, &mut p, &plan, &stop, &stats);
        (io, stats)
    }

    #[test]
    fn forwards_everything_in_order_and_drains_on_stop() {
        let (io, stats) = run_cross(usize::MAX);
        assert_eq!(io.tx[1].len(), 100);
        for (i, p) in io.tx[1].iter().enumerate() {
            assert_eq!(p.data(), &[i as u8; 60]);
        }
        assert_eq!(stats.rx.get(), 100);
        assert_eq!(stats.tx.get(), 100);
        assert_eq!(stats.tx_refused.get(), 0);
    }

    #[test]
    fn refused_packets_are_counted() {
        let (io, stats) = run_cross(0);
        assert!(io.tx[1].is_empty());
        assert_eq!(stats.tx_refused.get(), 100);
        assert_eq!(stats.rx.get(), stats.tx.get() + stats.tx_refused.get());
    }

    /// Sends everything to the port in `target` (the test's stand-in for the policy snapshot).
    struct ToTarget(Arc<AtomicU16>);

    impl Processor<HeapBuf> for ToTarget {
        fn process(&mut self, _in_port: u16, pkts: &mut Batch<HeapBuf>, out: &mut TxStage<HeapBuf>, _now: u64) {
            out.send_batch(self.0.load(Ordering::Relaxed), pkts);
        }
    }

    fn wait_for(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn plan(ports: usize, rx: &[u16]) -> WorkerPlan {
        // A drain interval that never passes: only bursts and the reload flush send.
        WorkerPlan { id: 0, rx: rx.iter().map(|&port| RxQueue { port, queue: 0 }).collect(), ports, drain_cycles: u64::MAX, max_rx: None, idle_sleep: None }
    }

    /// Runs one worker on `io` with `gate`; `control` drives it, then the worker is stopped and its io returned.
    fn with_worker(io: MemIo, initial: WorkerPlan, target: &Arc<AtomicU16>, control: impl FnOnce(&ReloadGate, &WorkerStats)) -> MemIo {
        let gate = ReloadGate::new(1);
        let stats = WorkerStats::default();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let (gate, stats, stop) = (&gate, &stats, &stop);
            let t = target.clone();
            let h = s.spawn(move || {
                let mut io = io;
                run_reloadable(&mut io, &mut ToTarget(t), initial, stop, stats, Some(gate));
                io
            });
            control(gate, stats);
            stop.store(true, Ordering::Relaxed);
            let io = h.join().unwrap();
            assert_eq!(gate.parked[0].load(Ordering::Relaxed), EXITED);
            io
        })
    }

    #[test]
    fn a_removal_flushes_on_the_old_map_and_shifts_later_ports() {
        // Devices 0 (source), 1 and 2; switch ports [0, 1, 2] become [0, 2]: port 1 now means device 2.
        let mut io = MemIo::new(3);
        let allow = Arc::new(AtomicUsize::new(0));
        io.allow = Some(allow.clone());
        for i in 0..200u8 {
            io.rx[0].push_back(HeapBuf::from_slice(&[i; 60]));
        }
        let target = Arc::new(AtomicU16::new(1));
        let io = with_worker(io, plan(3, &[0]), &target, |gate, stats| {
            allow.store(100, Ordering::Relaxed);
            wait_for("100 packets", || stats.rx.get() == 100);
            gate.pause(Duration::from_secs(5)).unwrap();
            // 100 = 3 bursts sent + 4 pending: the pending ones went out on the old map before parking.
            assert_eq!(stats.tx.get(), 100);
            gate.publish(0, Reload { plan: plan(2, &[0]), devices: vec![0, 2] });
            gate.resume();
            allow.store(100, Ordering::Relaxed);
            wait_for("200 packets", || stats.rx.get() == 200);
        });
        let seq = |v: &Vec<HeapBuf>| v.iter().map(|p| p.data()[0]).collect::<Vec<u8>>();
        assert_eq!(seq(&io.tx[1]), (0..100).collect::<Vec<u8>>());
        assert_eq!(seq(&io.tx[2]), (100..200).collect::<Vec<u8>>(), "after the reload port 1 is device 2 (the rest flushed on stop)");
    }

    #[test]
    fn an_added_port_is_polled_and_reachable_after_the_reload() {
        let mut io = MemIo::new(3);
        for i in 0..10u8 {
            io.rx[2].push_back(HeapBuf::from_slice(&[i; 60]));
        }
        let target = Arc::new(AtomicU16::new(1));
        let io = with_worker(io, plan(2, &[0, 1]), &target, |gate, stats| {
            std::thread::sleep(Duration::from_millis(5));
            assert_eq!(stats.rx.get(), 0, "device 2 is not a switch port yet");
            gate.pause(Duration::from_secs(5)).unwrap();
            target.store(0, Ordering::Relaxed);
            gate.publish(0, Reload { plan: plan(3, &[0, 1, 2]), devices: vec![0, 1, 2] });
            gate.resume();
            wait_for("the new port's packets", || stats.rx.get() == 10);
        });
        assert_eq!(io.tx[0].len(), 10);
        assert!(io.tx[1].is_empty() && io.tx[2].is_empty());
    }

    #[test]
    fn a_pause_that_times_out_changes_nothing() {
        // Worker 1 never runs: the pause is withdrawn and worker 0 goes on with its plan.
        let gate = ReloadGate::new(2);
        let stats = WorkerStats::default();
        let stop = AtomicBool::new(false);
        let mut io = MemIo::new(2);
        for i in 0..10u8 {
            io.rx[0].push_back(HeapBuf::from_slice(&[i; 60]));
        }
        let target = Arc::new(AtomicU16::new(1));
        let io = std::thread::scope(|s| {
            let h = s.spawn(|| {
                let mut io = io;
                run_reloadable(&mut io, &mut ToTarget(target.clone()), plan(2, &[0]), &stop, &stats, Some(&gate));
                io
            });
            let err = gate.pause(Duration::from_millis(50)).unwrap_err();
            assert!(err.contains("[1]"), "{err}");
            wait_for("traffic after the withdrawn pause", || stats.rx.get() == 10);
            stop.store(true, Ordering::Relaxed);
            h.join().unwrap()
        });
        assert_eq!(io.tx[1].len(), 10);
    }
}
