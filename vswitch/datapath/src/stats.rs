//! Datapath counters: per port, per VSID, per drop reason, per worker.
//!
//! Thread-safety contract: a [`DatapathStats`] belongs to one worker, which
//! is its only writer while it runs (relaxed load + store, no
//! read-modify-write atomics); the one exception is
//! [`DatapathStats::remove_port`], called by the control thread while that
//! worker is parked by [`pmd::ReloadGate`];
//! any thread may read it with relaxed loads, so totals are summed across
//! workers by the reader. At the end of each batch a worker also publishes
//! a settled summary of its packet counts (received, sent, replicas,
//! dropped) under a sequence number ([`DatapathStats::end_batch`]);
//! [`Totals::sum`] takes rx, tx, replicas and the drop total from those
//! summaries (a read of four words, retried while the worker writes them), so
//! a packet received but not yet sent or dropped is never seen and, on a live
//! switch, `reconciles()` is false only for a real uncounted loss. The other
//! counters are read as they are. VSID counters live in a fixed table of
//! [`MAX_VSIDS`] slots; the slot of each VSID is assigned by the policy store
//! and never changes while the process runs.

use crate::drop::DropReason;
use pmd::stats::Counter;
use pmd::MAX_PORTS;
use std::sync::atomic::{fence, AtomicU64, Ordering};

/// VSID counter slots.
pub const MAX_VSIDS: usize = 4096;

/// Counters of one port or one VSID.
#[derive(Debug, Default)]
pub struct Counters {
    /// Packets in.
    pub rx: Counter,
    /// Packets handed to a tx queue.
    pub tx: Counter,
    /// Packets dropped.
    pub drops: Counter,
}

/// One worker's datapath counters.
#[derive(Debug)]
pub struct DatapathStats {
    /// By switch port.
    pub ports: Box<[Counters]>,
    /// By VSID slot (see [`crate::tables::Tables::vsid_slot`]).
    pub vsids: Box<[Counters]>,
    /// By drop reason.
    pub drops: Box<[Counter]>,
    /// Packets received.
    pub rx: Counter,
    /// Packets handed to tx queues (replicas included).
    pub tx: Counter,
    /// Extra copies made for broadcast/multicast delivery.
    pub replicas: Counter,
    /// ARP/ND requests answered from policy (also counted in `tx`).
    pub answered: Counter,
    /// ICMP "fragmentation needed" / ICMPv6 "packet too big" errors sent
    /// back to VMs (each is the offending packet rewritten, so also counted in `tx`).
    pub too_big_sent: Counter,
    /// TCP SYNs from VMs whose MSS option was clamped (`[host] mss_clamp`).
    pub mss_clamped: Counter,
    /// Packets NVGRE-encapsulated.
    pub encapsulated: Counter,
    /// Packets NVGRE-decapsulated.
    pub decapsulated: Counter,
    /// Packets routed between virtual subnets.
    pub routed: Counter,
    /// Capture records lost because the capture ring was full.
    pub capture_lost: Counter,
    /// Packets that hit the flow cache.
    pub flow_hits: Counter,
    /// Packets with a flow key that missed the flow cache (stale entries included).
    pub flow_misses: Counter,
    /// MS-NVGREE REDIRECT/UNREACHABLE messages sent (also counted in `replicas` and `tx`).
    pub control_sent: Counter,
    /// ARP requests and neighbor solicitations for provider next hops sent
    /// (also counted in `replicas` and `tx`, or in a drop).
    pub neighbor_requests: Counter,
    /// Flow-cache entries written.
    pub flow_inserts: Counter,
    /// Flow-cache inserts that replaced a live entry.
    pub flow_evictions: Counter,
    /// Flow-cache entries found invalidated by a policy change.
    pub flow_stale: Counter,
    /// Flow-cache capacity (entries), set once by the worker.
    pub flow_capacity: Counter,
    /// Generation of the policy snapshot the worker forwarded its last batch with.
    pub policy_generation: Counter,
    /// Drops of every reason together.
    pub drops_total: Counter,
    /// Odd while the worker writes [`DatapathStats::summary`].
    seq: AtomicU64,
    /// rx, tx, replicas and drops as they stood at the end of the last batch.
    summary: [AtomicU64; 4],
    /// Flow-cache entries in use (a gauge: the worker adds the change).
    pub flow_entries: Counter,
}

impl Default for DatapathStats {
    fn default() -> Self {
        DatapathStats {
            ports: (0..MAX_PORTS).map(|_| Counters::default()).collect(),
            vsids: (0..MAX_VSIDS).map(|_| Counters::default()).collect(),
            drops: (0..DropReason::COUNT).map(|_| Counter::default()).collect(),
            rx: Counter::default(),
            tx: Counter::default(),
            replicas: Counter::default(),
            answered: Counter::default(),
            too_big_sent: Counter::default(),
            mss_clamped: Counter::default(),
            encapsulated: Counter::default(),
            decapsulated: Counter::default(),
            routed: Counter::default(),
            capture_lost: Counter::default(),
            flow_hits: Counter::default(),
            flow_misses: Counter::default(),
            control_sent: Counter::default(),
            neighbor_requests: Counter::default(),
            flow_inserts: Counter::default(),
            flow_evictions: Counter::default(),
            flow_stale: Counter::default(),
            flow_capacity: Counter::default(),
            policy_generation: Counter::default(),
            drops_total: Counter::default(),
            seq: AtomicU64::new(0),
            summary: Default::default(),
            flow_entries: Counter::default(),
        }
    }
}

impl DatapathStats {
    /// Count one drop.
    #[inline]
    pub fn drop(&self, reason: DropReason, port: u16, vsid_slot: Option<u16>) {
        self.drops_total.add(1);
        if let Some(c) = self.drops.get(reason.index()) {
            c.add(1);
        }
        if let Some(p) = self.ports.get(usize::from(port)) {
            p.drops.add(1);
        }
        if let Some(v) = vsid_slot.and_then(|s| self.vsids.get(usize::from(s))) {
            v.drops.add(1);
        }
    }

    /// Switch port `removed` is gone and later ports moved down by one:
    /// move their counters with them and zero the freed last slot. The removed
    /// port's own per-port counts are dropped (the totals and per-VSID and
    /// per-reason counters keep them). Call only while the owning worker is
    /// paused (see [`pmd::ReloadGate`]).
    pub fn remove_port(&self, removed: usize) {
        for i in removed..self.ports.len() {
            let (c, next) = (&self.ports[i], self.ports.get(i + 1));
            c.rx.set(next.map_or(0, |n| n.rx.get()));
            c.tx.set(next.map_or(0, |n| n.tx.get()));
            c.drops.set(next.map_or(0, |n| n.drops.get()));
        }
    }

    /// Total drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().map(Counter::get).sum()
    }

    /// Drops of one reason.
    pub fn drops_of(&self, reason: DropReason) -> u64 {
        self.drops.get(reason.index()).map_or(0, Counter::get)
    }
}

/// A plain sum of several workers' counters, for reports and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Received.
    pub rx: u64,
    /// Handed to tx queues.
    pub tx: u64,
    /// Broadcast copies.
    pub replicas: u64,
    /// ARP/ND answered.
    pub answered: u64,
    /// ICMP too-big errors sent to VMs.
    pub too_big_sent: u64,
    /// TCP SYNs with a clamped MSS.
    pub mss_clamped: u64,
    /// Encapsulated.
    pub encapsulated: u64,
    /// Decapsulated.
    pub decapsulated: u64,
    /// Routed.
    pub routed: u64,
    /// Flow-cache hits.
    pub flow_hits: u64,
    /// Flow-cache misses.
    pub flow_misses: u64,
    /// MS-NVGREE control messages sent.
    pub control_sent: u64,
    /// ARP requests and neighbor solicitations originated for provider next hops.
    pub neighbor_requests: u64,
    /// Drops by reason (only non-zero ones), in [`DropReason::ALL`] order
    /// (read as they are: may include drops of a batch still being counted).
    pub drops: Vec<(DropReason, u64)>,
    /// Drops of every reason, settled with rx and tx (see the module contract).
    pub dropped: u64,
    /// Per port: (rx, tx, drops).
    pub ports: Vec<(u64, u64, u64)>,
    /// Per VSID slot: (rx, tx, drops).
    pub vsids: Vec<(u64, u64, u64)>,
}

impl DatapathStats {
    /// Publish the settled summary (the worker, after counting a batch).
    #[inline]
    pub fn end_batch(&self) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1) | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        for (w, c) in self.summary.iter().zip([&self.rx, &self.tx, &self.replicas, &self.drops_total]) {
            w.store(c.get(), Ordering::Relaxed);
        }
        self.seq.store(s.wrapping_add(2) & !1, Ordering::Release);
    }

    /// The summary of the last batch, or `None` if none was published
    /// (counters written without [`DatapathStats::end_batch`], as tests do).
    fn settled(&self) -> Option<[u64; 4]> {
        for i in 0..SETTLE_TRIES {
            if i >= 64 {
                // The worker may be preempted mid-write (a test thread, or a worker
                // sharing its core): let it finish.
                std::thread::yield_now();
            }
            let before = self.seq.load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            if before & 1 == 0 {
                let v = [0, 1, 2, 3].map(|i| self.summary[i].load(Ordering::Relaxed));
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == before {
                    return Some(v);
                }
            }
            std::hint::spin_loop();
        }
        None
    }
}

/// Reads of a summary before falling back to the raw counters: the worker
/// rewrites it for a few ns per batch, so a read fails only while the worker
/// is preempted mid-write; after 64 spins each try yields the CPU to it.
const SETTLE_TRIES: usize = 100_000;

impl Totals {
    /// Sum `workers` (rx, tx, replicas and the drop total from each worker's
    /// settled summary; see the module contract).
    pub fn sum<'a>(workers: impl IntoIterator<Item = &'a DatapathStats>) -> Totals {
        let mut t = Totals { ports: vec![(0, 0, 0); MAX_PORTS], vsids: vec![(0, 0, 0); MAX_VSIDS], ..Default::default() };
        let mut drops = vec![0u64; DropReason::COUNT];
        for w in workers {
            let mut one = Totals { ports: vec![(0, 0, 0); MAX_PORTS], vsids: vec![(0, 0, 0); MAX_VSIDS], ..Default::default() };
            let mut one_drops = vec![0u64; DropReason::COUNT];
            let settled = w.settled();
            Self::add(&mut one, &mut one_drops, w);
            match settled {
                Some([rx, tx, replicas, dropped]) => {
                    (one.rx, one.tx, one.replicas) = (rx, tx, replicas);
                    t.dropped += dropped;
                }
                None => t.dropped += one_drops.iter().sum::<u64>(),
            }
            t.merge(&one, &one_drops, &mut drops);
        }
        t.drops = DropReason::ALL.iter().zip(drops).filter(|(_, n)| *n > 0).map(|(r, n)| (*r, n)).collect();
        t
    }

    fn merge(&mut self, one: &Totals, one_drops: &[u64], drops: &mut [u64]) {
        self.rx += one.rx;
        self.tx += one.tx;
        self.replicas += one.replicas;
        self.answered += one.answered;
        self.too_big_sent += one.too_big_sent;
        self.mss_clamped += one.mss_clamped;
        self.encapsulated += one.encapsulated;
        self.decapsulated += one.decapsulated;
        self.routed += one.routed;
        self.flow_hits += one.flow_hits;
        self.flow_misses += one.flow_misses;
        self.control_sent += one.control_sent;
        self.neighbor_requests += one.neighbor_requests;
        for (d, o) in drops.iter_mut().zip(one_drops) {
            *d += o;
        }
        for (p, o) in self.ports.iter_mut().zip(&one.ports) {
            *p = (p.0 + o.0, p.1 + o.1, p.2 + o.2);
        }
        for (v, o) in self.vsids.iter_mut().zip(&one.vsids) {
            *v = (v.0 + o.0, v.1 + o.1, v.2 + o.2);
        }
    }

    /// Add worker `w`'s counters (as they are now) to `t` and `drops`.
    fn add(t: &mut Totals, drops: &mut [u64], w: &DatapathStats) {
        t.rx += w.rx.get();
        t.tx += w.tx.get();
        t.replicas += w.replicas.get();
        t.answered += w.answered.get();
        t.too_big_sent += w.too_big_sent.get();
        t.mss_clamped += w.mss_clamped.get();
        t.encapsulated += w.encapsulated.get();
        t.decapsulated += w.decapsulated.get();
        t.routed += w.routed.get();
        t.flow_hits += w.flow_hits.get();
        t.flow_misses += w.flow_misses.get();
        t.control_sent += w.control_sent.get();
        t.neighbor_requests += w.neighbor_requests.get();
        for (d, c) in drops.iter_mut().zip(w.drops.iter()) {
            *d += c.get();
        }
        for (p, c) in t.ports.iter_mut().zip(w.ports.iter()) {
            p.0 += c.rx.get();
            p.1 += c.tx.get();
            p.2 += c.drops.get();
        }
        for (v, c) in t.vsids.iter_mut().zip(w.vsids.iter()) {
            v.0 += c.rx.get();
            v.1 += c.tx.get();
            v.2 += c.drops.get();
        }
    }

    /// Sum of all drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().map(|(_, n)| n).sum()
    }

    /// Drops of one reason.
    pub fn drops_of(&self, reason: DropReason) -> u64 {
        self.drops.iter().find(|(r, _)| *r == reason).map_or(0, |(_, n)| *n)
    }

    /// True when every packet is accounted for: `rx + replicas == tx + drops`.
    pub fn reconciles(&self) -> bool {
        self.rx + self.replicas == self.tx + self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker counting batch after batch while another thread sums: every
    /// total reconciles (a read of the raw counters between the rx and the tx
    /// count of a batch would not).
    #[test]
    fn totals_read_between_batches_always_reconcile() {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let st = Arc::new(DatapathStats::default());
        // As HnvSwitch::new does: a summary exists before the first batch.
        st.end_batch();
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (st, stop) = (st.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut batches = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    st.rx.add(32);
                    std::hint::spin_loop();
                    st.tx.add(30);
                    DatapathStats::drop(&st, DropReason::NoRecord, 0, None);
                    DatapathStats::drop(&st, DropReason::NoRecord, 0, None);
                    st.end_batch();
                    batches += 1;
                }
                batches
            })
        };
        let mut seen = 0;
        for _ in 0..5_000 {
            let t = Totals::sum([&*st]);
            assert!(t.reconciles(), "rx {} tx {} drops {}", t.rx, t.tx, t.dropped);
            seen = seen.max(t.rx);
        }
        stop.store(true, Ordering::Relaxed);
        let batches = worker.join().unwrap_or(0);
        assert!(batches > 0 && seen > 0);
    }

    #[test]
    fn removing_a_port_moves_later_ports_counters_down() {
        let s = DatapathStats::default();
        for (i, n) in [(0usize, 10u64), (1, 20), (2, 30)] {
            s.ports[i].rx.add(n);
            s.ports[i].tx.add(n + 1);
        }
        s.ports[MAX_PORTS - 1].drops.add(7);
        s.remove_port(1);
        let row = |i: usize| (s.ports[i].rx.get(), s.ports[i].tx.get(), s.ports[i].drops.get());
        assert_eq!([row(0), row(1), row(2)], [(10, 11, 0), (30, 31, 0), (0, 0, 0)]);
        assert_eq!(row(MAX_PORTS - 2), (0, 0, 7));
        assert_eq!(row(MAX_PORTS - 1), (0, 0, 0));
    }
}
