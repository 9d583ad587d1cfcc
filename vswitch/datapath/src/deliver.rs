//! Delivery: handing packets to the worker's tx stage, flooding, and the
//! per-batch tallies that reach the shared counters once per batch.
//!
//! Every packet that leaves the datapath goes through [`Out::send`] (or
//! [`Out::hand_over`] for a whole batch bound to one port): a packet the tx
//! stage refuses (full buffer, unknown port) is counted as a
//! [`DropReason::TxOverflow`] drop, never as sent, so `rx + replicas == tx +
//! drops` holds. Counts of packets sent, encapsulated, decapsulated and
//! routed accumulate in a [`Tally`] (plain integers on the worker's stack)
//! and are added to [`DatapathStats`] by [`Tally::publish`]; per-VSID counts
//! accumulate as runs of the same slot, so a batch of one tenant's traffic
//! costs one counter update, not one per packet. [`Out`] also carries the
//! worker's rate limit on ICMP too-big errors ([`crate::too_big`]).

use crate::drop::DropReason;
use crate::meta::Meta;
use crate::stats::DatapathStats;
use crate::tables::Tables;
use crate::too_big::TooBigLimiter;
use pmd::{Batch, PacketBuf, TxStage, MAX_PORTS};

/// Consecutive packets of one VSID counter slot.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    slot: u16,
    n: u32,
}

/// One batch's counts, published once.
#[derive(Debug, Clone)]
pub struct Tally {
    tx: [u32; MAX_PORTS],
    vsid_rx: Run,
    vsid_tx: Run,
    /// Packets NVGRE-encapsulated.
    pub encapsulated: u32,
    /// Packets NVGRE-decapsulated.
    pub decapsulated: u32,
    /// Packets routed between virtual subnets.
    pub routed: u32,
    /// ICMP too-big errors sent back to VMs.
    pub too_big: u32,
    /// TCP SYNs whose MSS option was clamped ([`crate::mss`]).
    pub mss_clamped: u32,
}

impl Default for Tally {
    fn default() -> Self {
        Tally { tx: [0; MAX_PORTS], vsid_rx: Run::default(), vsid_tx: Run::default(), encapsulated: 0, decapsulated: 0, routed: 0, too_big: 0, mss_clamped: 0 }
    }
}

impl Tally {
    /// Count one packet received in VSID counter slot `slot`.
    #[inline(always)]
    pub fn vsid_rx(&mut self, st: &DatapathStats, slot: u16) {
        if self.vsid_rx.slot != slot {
            flush_rx(st, self.vsid_rx);
            self.vsid_rx = Run { slot, n: 0 };
        }
        self.vsid_rx.n += 1;
    }

    /// Count `n` packets sent on `port` in VSID counter slot `slot`.
    #[inline(always)]
    fn sent(&mut self, st: &DatapathStats, port: u16, slot: u16, n: u32) {
        if let Some(c) = self.tx.get_mut(usize::from(port)) {
            *c += n;
        }
        if self.vsid_tx.slot != slot {
            flush_tx(st, self.vsid_tx);
            self.vsid_tx = Run { slot, n: 0 };
        }
        self.vsid_tx.n += n;
    }

    /// Add everything to `st` and reset.
    pub fn publish(&mut self, st: &DatapathStats, ports: usize) {
        flush_rx(st, self.vsid_rx);
        flush_tx(st, self.vsid_tx);
        let mut total = 0u64;
        for (c, n) in st.ports.iter().zip(self.tx.iter_mut()).take(ports.min(MAX_PORTS)) {
            if *n > 0 {
                c.tx.add(u64::from(*n));
                total += u64::from(*n);
                *n = 0;
            }
        }
        st.tx.add(total);
        let add = |c: &pmd::stats::Counter, n: u32| {
            if n > 0 {
                c.add(u64::from(n));
            }
        };
        add(&st.encapsulated, self.encapsulated);
        add(&st.decapsulated, self.decapsulated);
        add(&st.routed, self.routed);
        add(&st.too_big_sent, self.too_big);
        add(&st.mss_clamped, self.mss_clamped);
        self.vsid_rx = Run::default();
        self.vsid_tx = Run::default();
        self.encapsulated = 0;
        self.decapsulated = 0;
        self.routed = 0;
        self.too_big = 0;
        self.mss_clamped = 0;
    }
}

fn flush_rx(st: &DatapathStats, r: Run) {
    if let (true, Some(c)) = (r.n > 0, st.vsids.get(usize::from(r.slot))) {
        c.rx.add(u64::from(r.n));
    }
}

fn flush_tx(st: &DatapathStats, r: Run) {
    if let (true, Some(c)) = (r.n > 0, st.vsids.get(usize::from(r.slot))) {
        c.tx.add(u64::from(r.n));
    }
}

/// Where one batch's packets go: the tx stage, the counters and the tally.
#[derive(Debug)]
pub struct Out<'a, B> {
    /// The worker's tx stage.
    pub tx: &'a mut TxStage<B>,
    /// The counters.
    pub st: &'a DatapathStats,
    /// This batch's counts.
    pub tally: &'a mut Tally,
    /// The port the batch arrived on (drops are counted against it).
    pub in_port: u16,
    /// The worker's rate limit on ICMP too-big errors.
    pub icmp: &'a mut TooBigLimiter,
}

impl<B: PacketBuf> Out<'_, B> {
    /// Send `p` out of `port`, counted in VSID slot `vsid_slot`.
    #[inline]
    pub fn send(&mut self, port: u16, vsid_slot: u16, p: B) {
        if self.tx.send(port, p) {
            self.tally.sent(self.st, port, vsid_slot, 1);
        } else {
            self.st.drop(DropReason::TxOverflow, self.in_port, Some(vsid_slot));
        }
    }

    /// Hand all of `pkts` to `port` without moving a packet, counted in VSID
    /// slot `vsid_slot`; false (nothing done) when the port has packets pending.
    #[inline]
    pub fn hand_over(&mut self, port: u16, vsid_slot: u16, pkts: &mut Batch<B>) -> bool {
        let n = pkts.len() as u32;
        if !self.tx.hand_over(port, pkts) {
            return false;
        }
        self.tally.sent(self.st, port, vsid_slot, n);
        true
    }

    /// Count a drop of a packet (the caller frees it).
    #[inline]
    pub fn drop(&self, r: DropReason, vsid_slot: Option<u16>) {
        self.st.drop(r, self.in_port, vsid_slot);
    }

    /// Copy `p` to every local port of its VSID except the one it came in on.
    pub fn flood(&mut self, t: &Tables, m: &Meta, p: B) {
        let members = t.vsid(m.vsid).map(|e| e.local_ports.as_slice()).unwrap_or(&[]);
        let mut targets = members.iter().copied().filter(|&q| q != m.in_port);
        let Some(first) = targets.next() else {
            self.st.drop(DropReason::FloodNoMembers, m.in_port, Some(m.vsid_slot));
            return;
        };
        for q in targets {
            self.st.replicas.add(1);
            match p.try_clone() {
                Some(c) => self.send(q, m.vsid_slot, c),
                None => self.st.drop(DropReason::ReplicaAllocFailed, m.in_port, Some(m.vsid_slot)),
            }
        }
        self.send(first, m.vsid_slot, p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pmd::HeapBuf;

    /// A packet the tx stage refuses (unknown port, full buffer) is a counted
    /// `tx_overflow` drop, never a packet sent: the books still balance.
    #[test]
    fn refused_packets_are_drops_not_sends() {
        let st = DatapathStats::default();
        let mut tally = Tally::default();
        let mut tx: TxStage<HeapBuf> = TxStage::new(2);
        let mut icmp = TooBigLimiter::default();
        let mut out = Out { tx: &mut tx, st: &st, tally: &mut tally, in_port: 1, icmp: &mut icmp };
        let sent = 100usize;
        for _ in 0..sent {
            out.send(0, 0, HeapBuf::from_slice(&[0u8; 60]));
        }
        out.send(9, 0, HeapBuf::from_slice(&[0u8; 60]));
        tally.publish(&st, 2);
        let queued = tx.pending_len(0) as u64;
        assert!(queued < sent as u64, "the buffer is bounded");
        assert_eq!(st.tx.get(), queued, "only queued packets count as sent");
        assert_eq!(st.drops_of(DropReason::TxOverflow), sent as u64 + 1 - queued, "the rest are tx_overflow drops");
        assert_eq!(st.tx.get() + st.drops_of(DropReason::TxOverflow), sent as u64 + 1);
        assert_eq!(st.vsids[0].tx.get(), queued);
    }
}
