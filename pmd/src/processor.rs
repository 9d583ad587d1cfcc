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
}

/// Per-port tx buffers owned by one worker (no sharing, no locks).
#[derive(Debug)]
pub struct TxStage<B> {
    pending: Vec<ArrayVec<B, PENDING>>,
    overflow: u64,
}

impl<B: PacketBuf> TxStage<B> {
    /// Buffers for `ports` switch ports (at most [`MAX_PORTS`]).
    pub fn new(ports: usize) -> Self {
        let ports = ports.min(MAX_PORTS);
        TxStage { pending: (0..ports).map(|_| ArrayVec::new()).collect(), overflow: 0 }
    }

    /// Queue `pkt` for `port`. An unknown port or a full buffer frees the
    /// packet and counts it in [`TxStage::overflow`].
    #[inline]
    pub fn send(&mut self, port: u16, pkt: B) {
        match self.pending.get_mut(usize::from(port)) {
            Some(q) => {
                if q.try_push(pkt).is_err() {
                    self.overflow += 1;
                }
            }
            None => self.overflow += 1,
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

    /// The pending packets of `port`, for flushing.
    pub fn pending_mut(&mut self, port: usize) -> Option<&mut ArrayVec<B, PENDING>> {
        self.pending.get_mut(port)
    }

    /// Pending packet count of `port`.
    pub fn pending_len(&self, port: usize) -> usize {
        self.pending.get(port).map_or(0, |q| q.len())
    }
}
