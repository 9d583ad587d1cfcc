//! Fixed-capacity packet batches.
//!
//! A batch never allocates: it is an inline array of at most [`BURST`]
//! packets, reused across iterations by its worker.

/// Packets per burst, as in DPDK's l2fwd and OVS's `dp_packet_batch`.
pub const BURST: usize = 32;

/// Up to [`BURST`] packets, in arrival order.
pub type Batch<B> = arrayvec::ArrayVec<B, BURST>;
