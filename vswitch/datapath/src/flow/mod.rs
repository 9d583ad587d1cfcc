//! The per-worker flow cache (OVS's EMC, VFP's unified flow table).
//!
//! The first packet of a flow walks the full pipeline; its outcome, when it
//! depends only on the flow key and the policy, is compiled into an
//! [`cache::Action`] (output port, or record slot + FlowID for encapsulation,
//! routing rewrite, decapsulation, or a drop reason) and cached under the
//! packet's [`key::FlowKey`]. Later packets of the flow take one key
//! extraction, one hash probe and the action.
//!
//! Invalidation is per record: an entry remembers the versions of what it
//! depends on (the ingress and egress VSIDs, the destination record, the
//! source record for decapsulation, the host-level state); a policy change
//! re-stamps only what it changed, so a CA moving to a new PA invalidates
//! only the flows toward that CA. Entries are checked lazily on hit.
//!
//! Thread-safety contract: each worker owns its cache (no sharing, no locks,
//! no atomics). Capturing, or a filter extension that is not cacheable,
//! turns the cache off for that pipeline.

pub mod cache;
pub mod key;

pub use cache::{Action, FlowCache, Step};
pub use key::FlowKey;
