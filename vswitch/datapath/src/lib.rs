//! The HNV switching core, sans-I/O.
//!
//! Per batch a worker's [`HnvSwitch`] ([`switch`]) runs the [`fast_path`]:
//! key every packet on its *decision* ([`flow::key`]), look the keys up in
//! the per-worker decision cache ([`flow::cache`]) and act on the hits. What
//! misses takes the [`slow_path`]: parse → ingress (port to VSID,
//! anti-spoofing, NVGRE decapsulation; [`ingress`]) → the typed extension
//! [`pipeline`] (capture, filter, the one HNV forwarder [`forward`], filter,
//! capture) → delivery ([`deliver`]: local port, NVGRE encapsulation from a
//! precompiled template ([`encap`]), ARP/ND reply from policy, distributed
//! routing, MS-NVGREE messages ([`notify`]), or a counted drop ([`drop`])).
//!
//! Policy arrives as immutable [`tables::Tables`] snapshots from the
//! [`store::PolicyStore`]; workers load one per batch and never lock. The
//! switching core has no sockets, DPDK or clock: time comes in the context,
//! packets through `pmd::PacketBuf`, so everything here unit-tests on heap
//! buffers. The only thread is the capture writer's ([`ext::capture`]), off
//! the hot path.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod announce;
pub mod deliver;
pub mod drop;
pub mod encap;
pub mod ext;
pub mod fast_path;
pub mod flow;
pub mod forward;
pub mod ingress;
pub mod meta;
pub mod mss;
pub mod neighbor;
pub mod notify;
pub mod pipeline;
pub mod slow_path;
pub mod stats;
pub mod store;
pub mod switch;
pub mod tables;
pub mod testkit;
pub mod too_big;

pub use drop::DropReason;
pub use forward::HnvForwarder;
pub use meta::{Meta, Verdict};
pub use pipeline::{CaptureExtension, Context, FilterExtension, ForwardingExtension, PacketRef, Pipeline, Stage};
pub use stats::{DatapathStats, Totals};
pub use store::{Memory, PolicyStore, Prepared};
pub use switch::HnvSwitch;
pub use tables::Tables;

// The policy's port limit is the worker's: a validated policy never names a
// port the tx stage and the per-port counters cannot address.
const _: () = assert!(hnv_policy::MAX_PORTS == pmd::MAX_PORTS, "hnv_policy::MAX_PORTS and pmd::MAX_PORTS must agree");

/// The standard pipeline: the VSID ACL filter around the HNV forwarder.
pub fn standard_pipeline() -> Pipeline<HnvForwarder> {
    Pipeline::new(HnvForwarder::default()).with_filter(Box::new(ext::acl::VsidAcl))
}
