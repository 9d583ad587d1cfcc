//! The per-batch contract between a worker and the switching logic.
//!
//! A worker calls [`Processor::process`] once per received burst. The
//! processor moves each packet either into the worker's [`TxStage`] (toward a
//! switch port) or drops it, counting why. It must not allocate, block, take
//! locks or log per packet.

use crate::batch::{Batch, BURST};
use crate::buf::PacketBuf;
use arrayvec::ArrayVec;

/// Most switch ports one worker can address.
pub const MAX_PORTS: usize = 64;

/// Pending tx packets per port: one unflushed burst plus one burst of output.
const PENDING: usize = 2 * BURST;

/// Switching logic called by a worker for every received burst.
pub trait Processor<B: PacketBuf> {
    /// Handle `pkts`, received on switch port `in_port`; `now` is the worker's
    /// TSC read once for this iteration. Every packet ends in `out` or dropped.
    fn process(&mut self, in_port: u16, pkts: &mut Batch<B>, out: &mut TxStage<B>, now: u64);

    /// Called by the worker loop at each drain tick (every `drain_cycles`,
    /// never per packet) with `alloc`, which makes a new packet buffer holding
    /// a frame (`None` when none is free or the I/O cannot); a processor may
    /// queue packets it originates in `out`. Does nothing by default.
    fn tick(&mut self, out: &mut TxStage<B>, alloc: &mut dyn FnMut(&[u8]) -> Option<B>, now: u64) {
        let _ = (out, alloc, now);
    }
}

/// Per-port tx buffers owned by one worker (no sharing, no locks).
///
/// A whole batch bound for one port is handed over without copying packets
/// ([`TxStage::send_batch`]): it is swapped into the port's direct slot when
/// nothing is pending there, else appended in order.
#[derive(Debug)]
pub struct TxStage<B> {
    direct: Vec<Batch<B>>,
    pending: Vec<ArrayVec<B, PENDING>>,
    overflow: u64,
}

impl<B: PacketBuf> TxStage<B> {
    /// Buffers for `ports` switch ports (at most [`MAX_PORTS`]).
    pub fn new(ports: usize) -> Self {
        let ports = ports.min(MAX_PORTS);
        TxStage { direct: (0..ports).map(|_| Batch::new()).collect(), pending: (0..ports).map(|_| ArrayVec::new()).collect(), overflow: 0 }
    }

    /// Queue every packet of `pkts` for `port`, leaving `pkts` empty; returns
    /// how many were refused (freed and counted in [`TxStage::overflow`]).
    #[inline]
    pub fn send_batch(&mut self, port: u16, pkts: &mut Batch<B>) -> usize {
        if self.hand_over(port, pkts) {
            return 0;
        }
        let mut refused = 0;
        for pkt in pkts.drain(..) {
            refused += usize::from(!self.send(port, pkt));
        }
        refused
    }

    /// Hand the whole of `pkts` to `port` without moving a packet (swapped into
    /// the port's direct slot), leaving `pkts` empty, if nothing is pending
    /// there; else false and `pkts` untouched. Never refuses a packet.
    #[inline]
    pub fn hand_over(&mut self, port: u16, pkts: &mut Batch<B>) -> bool {
        let i = usize::from(port);
        match (self.direct.get_mut(i), self.pending.get(i)) {
            (Some(d), Some(p)) if d.is_empty() && p.is_empty() => {
                std::mem::swap(d, pkts);
                true
            }
            _ => false,
        }
    }

    /// Queue `pkt` for `port`; true when queued. An unknown port or a full
    /// buffer frees the packet, counts it in [`TxStage::overflow`] and
    /// returns false (the caller counts the drop).
    #[inline]
    pub fn send(&mut self, port: u16, pkt: B) -> bool {
        if self.direct.get(usize::from(port)).is_some_and(|d| !d.is_empty()) {
            // Keep order behind a handed-over batch.
            let _ = self.pending_mut(usize::from(port));
        }
        match self.pending.get_mut(usize::from(port)) {
            Some(q) => {
                if q.try_push(pkt).is_err() {
                    self.overflow += 1;
                    return false;
                }
                true
            }
            None => {
                self.overflow += 1;
                false
            }
        }
    }

    /// Packets freed because a port's buffer was full or the port unknown.
    pub fn overflow(&self) -> u64 {
        self.overflow
    }

    /// Number of ports.
    pub fn ports(&self) -> usize {
        self.pending.len()
    }

    /// The pending packets of `port`, in order (a handed-over batch first), for flushing.
    pub fn pending_mut(&mut self, port: usize) -> Option<&mut ArrayVec<B, PENDING>> {
        let d = self.direct.get_mut(port)?;
        let q = self.pending.get_mut(port)?;
        if !d.is_empty() {
            // Rare: something was sent after a handed-over batch; restore order.
            let tail: ArrayVec<B, PENDING> = q.drain(..).collect();
            for p in d.drain(..).chain(tail) {
                if q.try_push(p).is_err() {
                    self.overflow += 1;
                }
            }
        }
        Some(q)
    }

    /// The handed-over batch of `port`, if nothing else is pending there.
    pub fn direct_mut(&mut self, port: usize) -> Option<&mut Batch<B>> {
        let d = self.direct.get_mut(port)?;
        (!d.is_empty() && self.pending.get(port).is_some_and(|q| q.is_empty())).then_some(d)
    }

    /// Pending packet count of `port`.
    pub fn pending_len(&self, port: usize) -> usize {
        self.pending.get(port).map_or(0, |q| q.len()) + self.direct.get(port).map_or(0, |q| q.len())
    }
}
