//! The poll-mode worker loop (DPDK l2fwd shape).
//!
//! Each iteration reads the TSC once, drains every port's tx buffer when the
//! drain interval has passed, then for each assigned rx queue: rx burst →
//! [`Processor::process`] → flush ports holding a full burst. Packets a port
//! refuses are freed and counted. The loop allocates nothing and stops when
//! `stop` is set, after a final drain.

use crate::batch::{Batch, BURST};
use crate::buf::PacketBuf;
use crate::processor::{Processor, TxStage};
use crate::stats::WorkerStats;
use std::sync::atomic::{AtomicBool, Ordering};

/// The packet I/O a worker drives: DPDK ports in the switch, in-memory queues in tests.
pub trait PortIo<B: PacketBuf> {
    /// Receive up to `BURST - pkts.len()` packets from `queue` of switch port `port` into `pkts`.
    fn rx_burst(&mut self, port: u16, queue: u16, pkts: &mut Batch<B>) -> usize;
    /// Send from the front of `pkts` on the worker's tx queue of `port`;
    /// return how many were accepted and removed from `pkts`.
    fn tx_burst<const N: usize>(&mut self, port: u16, pkts: &mut arrayvec::ArrayVec<B, N>) -> usize;
    /// Current time in TSC cycles.
    fn now(&self) -> u64;
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
        if now.wrapping_sub(last_drain) >= plan.drain_cycles {
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

    /// In-memory ports: rx from a queue, tx into a vector.
    struct MemIo {
        rx: Vec<VecDeque<HeapBuf>>,
        tx: Vec<Vec<HeapBuf>>,
        clock: std::cell::Cell<u64>,
        tx_limit: usize,
    }

    impl PortIo<HeapBuf> for MemIo {
        fn rx_burst(&mut self, port: u16, _q: u16, pkts: &mut Batch<HeapBuf>) -> usize {
            let mut n = 0;
            while !pkts.is_full() {
                match self.rx[port as usize].pop_front() {
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
            let n = pkts.len().min(self.tx_limit);
            self.tx[port as usize].extend(pkts.drain(..n));
            n
        }
        fn now(&self) -> u64 {
            let t = self.clock.get() + 10;
            self.clock.set(t);
            t
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
        let mut io = MemIo { rx: vec![VecDeque::new(), VecDeque::new()], tx: vec![vec![], vec![]], clock: 0.into(), tx_limit };
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
}
