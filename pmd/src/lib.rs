//! Poll-mode packet I/O for hnvswitch.
//!
//! `pmd` knows how packets move, not what happens to them:
//! - [`PacketBuf`] is the buffer the datapath works on (a DPDK mbuf in the
//!   switch, a [`HeapBuf`] in unit tests);
//! - [`Batch`] holds up to [`BURST`] packets, the unit every stage works on;
//! - [`Processor`] is what a worker calls once per received batch; the
//!   datapath implements it;
//! - [`worker`] is the l2fwd-style poll loop: rx burst → process → buffered tx,
//!   drained at least every 100 µs;
//! - [`dpdk`] (feature `dpdk`) is the safe layer over DPDK and the only module
//!   with `unsafe` code.
#![deny(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod batch;
pub mod buf;
pub mod prefetch;
pub mod processor;
pub mod stats;
pub mod steer;
pub mod worker;

#[cfg(feature = "dpdk")]
#[allow(unsafe_code)]
pub mod dpdk;

pub use batch::{Batch, BURST};
pub use buf::{HeapBuf, PacketBuf};
pub use prefetch::prefetch;
pub use processor::{Processor, TxStage, MAX_PORTS};
pub use stats::WorkerStats;
pub use worker::{PortIo, Reload, ReloadGate, RxQueue, WorkerPlan};
