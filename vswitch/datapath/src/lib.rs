//! The HNV switching core, sans-I/O.
//!
//! Per batch a worker's [`HnvSwitch`] runs: parse → ingress (port to VSID,
//! anti-spoofing, NVGRE decapsulation) → the typed extension [`pipeline`]
//! (capture, filter, the one HNV forwarder, filter, capture) → delivery
//! (local port, NVGRE encapsulation from a precompiled template, ARP/ND reply
//! from policy, distributed routing, or a counted drop).
//!
//! Policy arrives as immutable [`tables::Tables`] snapshots from the
//! [`store::PolicyStore`]; workers load one per batch and never lock. The
//! switching core has no sockets, DPDK or clock: time comes in the context,
//! packets through `pmd::PacketBuf`, so everything here unit-tests on heap
//! buffers. The only thread is the capture writer's ([`ext::capture`]), off
//! the hot path.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod drop;
pub mod ext;
pub mod flow;
pub mod forward;
pub mod ingress;
pub mod meta;
pub mod notify;
pub mod pipeline;
pub mod stats;
pub mod store;
pub mod switch;
pub mod tables;
pub mod testkit;

pub use drop::DropReason;
pub use forward::HnvForwarder;
pub use meta::{Meta, Verdict};
pub use pipeline::{CaptureExtension, Context, FilterExtension, ForwardingExtension, PacketRef, Pipeline, Stage};
pub use stats::{DatapathStats, Totals};
pub use store::PolicyStore;
pub use switch::HnvSwitch;
pub use tables::Tables;

/// The standard pipeline: the VSID ACL filter around the HNV forwarder.
pub fn standard_pipeline() -> Pipeline<HnvForwarder> {
    Pipeline::new(HnvForwarder::default()).with_filter(Box::new(ext::acl::VsidAcl))
}
