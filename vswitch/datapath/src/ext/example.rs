//! An example extension, and a short tutorial: an extension is one file
//! implementing one trait.
//!
//! **The traits.** A [`CaptureExtension`](crate::pipeline::CaptureExtension)
//! observes, a [`FilterExtension`] may drop, and the single
//! [`ForwardingExtension`](crate::pipeline::ForwardingExtension) picks
//! destinations. Each is called once per batch, on the worker's thread, with
//! the live packets of that batch as [`PacketRef`]s (frame bytes and
//! [`Meta`](crate::meta::Meta), both shared references) and a [`Context`]
//! (policy snapshot, TSC `now`, worker index).
//!
//! **What a filter may do.** Read the packets, their metadata and the policy
//! tables, keep its own per-worker state (`&mut self`), and drop the `k`-th
//! packet with [`Verdicts::drop`]. That is all the types allow: the packets
//! arrive behind `&`, so a filter cannot modify them, and [`Verdicts`] has no
//! method that sets a destination, so it cannot forward, redirect or
//! un-drop. It must also follow the hot-path rules the types cannot enforce:
//! no allocation, lock, blocking call, syscall or log in `filter`; count
//! instead (state allocated in the constructor is fine).
//!
//! **Registering.** Box it and add it to the pipeline; filters run in the
//! order added, on ingress (before forwarding) and on egress (after):
//!
//! ```ignore
//! use hnv_datapath::ext::example::BroadcastGuard;
//! let pipeline = Pipeline::new(forwarder).with_filter(Box::new(BroadcastGuard::new(8)));
//! ```
//!
//! [`BroadcastGuard`] below drops broadcast and multicast frames (destination
//! MAC with the group bit set) on ingress beyond `max_per_batch` per batch, a
//! crude storm guard. Each worker gets its own instance.

use crate::pipeline::{Context, FilterDrop, FilterExtension, PacketRef, Stage, Verdicts};

/// Drops group-addressed frames on ingress beyond a per-batch budget.
#[derive(Debug, Clone)]
pub struct BroadcastGuard {
    /// Group-addressed frames let through per batch.
    max_per_batch: usize,
    /// Frames dropped so far (this worker).
    dropped: u64,
}

impl BroadcastGuard {
    /// A guard letting `max_per_batch` broadcast/multicast frames through per batch.
    pub fn new(max_per_batch: usize) -> Self {
        BroadcastGuard { max_per_batch, dropped: 0 }
    }

    /// Frames this guard dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// True if `frame`'s destination MAC has the group (I/G) bit set.
#[inline]
fn is_group_addressed(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 1 == 1)
}

impl FilterExtension for BroadcastGuard {
    fn name(&self) -> &'static str {
        "broadcast-guard"
    }

    fn filter(&mut self, _cx: &Context<'_>, stage: Stage, pkts: &[PacketRef<'_>], verdicts: &mut Verdicts<'_>) {
        if stage != Stage::Ingress {
            return;
        }
        let mut seen = 0usize;
        for (k, p) in pkts.iter().enumerate() {
            if !is_group_addressed(p.data) {
                continue;
            }
            seen += 1;
            if seen > self.max_per_batch {
                verdicts.drop(k, FilterDrop::Extension);
                self.dropped += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drop::DropReason;
    use crate::meta::{Meta, Verdict};
    use crate::tables::Tables;

    const BCAST: [u8; 14] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0x15, 0x5d, 0, 0, 1, 0x08, 0x06];
    const MCAST: [u8; 14] = [0x01, 0x00, 0x5e, 0, 0, 1, 0, 0x15, 0x5d, 0, 0, 1, 0x08, 0x00];
    const UCAST: [u8; 14] = [0x00, 0x15, 0x5d, 0, 0, 2, 0, 0x15, 0x5d, 0, 0, 1, 0x08, 0x00];

    /// Run `guard` over `frames` at `stage`; return the verdicts.
    fn run(guard: &mut BroadcastGuard, stage: Stage, frames: &[&[u8]]) -> Vec<Verdict> {
        let tables = Tables::default();
        let cx = Context { tables: &tables, now: 0, worker: 0 };
        let meta = Meta::default();
        let refs: Vec<PacketRef<'_>> = frames.iter().map(|d| PacketRef { data: d, meta: &meta }).collect();
        let index: Vec<u8> = (0..frames.len() as u8).collect();
        let mut verdicts = vec![Verdict::Continue; frames.len()];
        let mut handle = Verdicts::for_test(&index, &mut verdicts);
        guard.filter(&cx, stage, &refs, &mut handle);
        verdicts
    }

    const DROP: Verdict = Verdict::Drop(DropReason::ExtensionDrop);
    const PASS: Verdict = Verdict::Continue;

    #[test]
    fn drops_group_frames_beyond_the_budget() {
        let mut g = BroadcastGuard::new(2);
        let v = run(&mut g, Stage::Ingress, &[&BCAST, &UCAST, &MCAST, &BCAST, &UCAST, &MCAST]);
        assert_eq!(v, vec![PASS, PASS, PASS, DROP, PASS, DROP]);
        assert_eq!(g.dropped(), 2);
        // The budget is per batch.
        let v = run(&mut g, Stage::Ingress, &[&BCAST, &BCAST, &BCAST]);
        assert_eq!(v, vec![PASS, PASS, DROP]);
        assert_eq!(g.dropped(), 3);
    }

    #[test]
    fn ignores_egress_unicast_and_runts() {
        let mut g = BroadcastGuard::new(0);
        assert_eq!(run(&mut g, Stage::Egress, &[&BCAST, &MCAST]), vec![PASS, PASS]);
        assert_eq!(run(&mut g, Stage::Ingress, &[&UCAST, &[], &BCAST]), vec![PASS, PASS, DROP]);
        assert_eq!(g.dropped(), 1);
        assert_eq!(g.name(), "broadcast-guard");
    }
}
