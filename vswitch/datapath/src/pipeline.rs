//! The typed extension pipeline, in the Hyper-V extensible switch's order.
//!
//! Per batch, after ingress (parse, VSID assignment, decapsulation):
//! 1. capture extensions see every live packet on ingress (read-only);
//! 2. filter extensions may drop on ingress;
//! 3. the one forwarding extension decides each packet's destination;
//! 4. filter extensions may drop on egress (destination known);
//! 5. capture extensions see every packet about to leave (read-only).
//!
//! The roles are enforced by types, not convention: a [`CaptureExtension`]
//! receives only shared references and no verdict handle, so it can neither
//! modify nor drop; a [`FilterExtension`] receives shared references and a
//! [`Verdicts`] handle that can only add a drop; the forwarding extension is a
//! single generic parameter of [`Pipeline`], so there is exactly one, and it
//! is the only stage with mutable access to packets.
//!
//! Each extension is called once per batch (one dynamic call), never per
//! packet, and must not allocate, block, take locks or log per packet.

use crate::drop::DropReason;
use crate::meta::{Meta, Verdict};
use crate::tables::Tables;
use arrayvec::ArrayVec;
use pmd::{PacketBuf, BURST};

/// Where in the pipeline an extension is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Before forwarding: `meta.in_port` and `meta.vsid` are known.
    Ingress,
    /// After forwarding: the destination is known too.
    Egress,
}

/// What every extension may read.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The policy snapshot of this batch.
    pub tables: &'a Tables,
    /// TSC of this iteration.
    pub now: u64,
    /// Worker index.
    pub worker: usize,
}

/// A read-only view of one packet, in customer-address (decapsulated) form.
#[derive(Debug, Clone, Copy)]
pub struct PacketRef<'a> {
    /// Frame bytes.
    pub data: &'a [u8],
    /// Metadata.
    pub meta: &'a Meta,
}

/// A reason a filter extension may give for a drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterDrop {
    /// The VSID ACL denied it.
    AclDeny,
    /// Any other filter's decision.
    Extension,
}

/// The only thing a filter can do to a packet: drop it.
#[derive(Debug)]
pub struct Verdicts<'a> {
    index: &'a [u8],
    verdicts: &'a mut [Verdict],
}

impl<'a> Verdicts<'a> {
    /// A handle over `verdicts` for unit-testing filters outside a pipeline.
    #[cfg(test)]
    pub(crate) fn for_test(index: &'a [u8], verdicts: &'a mut [Verdict]) -> Verdicts<'a> {
        Verdicts { index, verdicts }
    }

    /// Drop the `k`-th packet of the slice the filter was given.
    #[inline]
    pub fn drop(&mut self, k: usize, why: FilterDrop) {
        let reason = match why {
            FilterDrop::AclDeny => DropReason::AclDeny,
            FilterDrop::Extension => DropReason::ExtensionDrop,
        };
        if let Some(v) = self.index.get(k).and_then(|&i| self.verdicts.get_mut(usize::from(i))) {
            *v = Verdict::Drop(reason);
        }
    }
}

/// Observes packets; cannot change or drop them.
pub trait CaptureExtension: Send {
    /// Name for reports.
    fn name(&self) -> &'static str;
    /// See the live packets of a batch at `stage`.
    fn capture(&mut self, cx: &Context<'_>, stage: Stage, pkts: &[PacketRef<'_>]);
    /// False while it would record nothing, so that the flow cache may run
    /// (it bypasses the extensions). Asked once per batch. Default: true.
    fn active(&self) -> bool {
        true
    }
}

/// May drop packets; cannot change them or pick destinations.
pub trait FilterExtension: Send {
    /// Name for reports.
    fn name(&self) -> &'static str;
    /// Decide on the live packets of a batch at `stage`.
    fn filter(&mut self, cx: &Context<'_>, stage: Stage, pkts: &[PacketRef<'_>], verdicts: &mut Verdicts<'_>);
    /// True when every decision depends only on the flow key (addresses,
    /// protocol, ports, ingress port, VSID) and the policy snapshot, so the
    /// flow cache may replay it. Default: false (the cache is then off).
    fn cacheable(&self) -> bool {
        false
    }
}

/// Picks destinations. Exactly one per pipeline.
pub trait ForwardingExtension: Send {
    /// Name for reports.
    fn name(&self) -> &'static str;
    /// Set `verdicts[i]` for every packet whose verdict is [`Verdict::Continue`];
    /// may rewrite packets (ARP replies, routing) and their metadata.
    fn forward<B: PacketBuf>(&mut self, cx: &Context<'_>, pkts: &mut [B], meta: &mut [Meta], verdicts: &mut [Verdict]);
}

/// Capture and filter extensions around one forwarding extension.
pub struct Pipeline<F> {
    captures: Vec<Box<dyn CaptureExtension>>,
    filters: Vec<Box<dyn FilterExtension>>,
    forwarder: F,
}

impl<F: ForwardingExtension> std::fmt::Debug for Pipeline<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("captures", &self.captures.iter().map(|c| c.name()).collect::<Vec<_>>())
            .field("filters", &self.filters.iter().map(|c| c.name()).collect::<Vec<_>>())
            .field("forwarder", &self.forwarder.name())
            .finish()
    }
}

impl<F: ForwardingExtension> Pipeline<F> {
    /// A pipeline with only the forwarder.
    pub fn new(forwarder: F) -> Self {
        Pipeline { captures: Vec::new(), filters: Vec::new(), forwarder }
    }

    /// Add a capture extension (called in the order added).
    pub fn with_capture(mut self, c: Box<dyn CaptureExtension>) -> Self {
        self.captures.push(c);
        self
    }

    /// Add a filter extension (called in the order added).
    pub fn with_filter(mut self, f: Box<dyn FilterExtension>) -> Self {
        self.filters.push(f);
        self
    }

    /// True when the flow cache may stand in for this pipeline: no capture
    /// active capture extension (captures must see every packet) and only cacheable filters.
    pub fn cacheable(&self) -> bool {
        self.captures.iter().all(|c| !c.active()) && self.filters.iter().all(|f| f.cacheable())
    }

    /// Names of the extensions in calling order.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self.captures.iter().map(|c| c.name()).collect();
        v.extend(self.filters.iter().map(|f| f.name()));
        v.push(self.forwarder.name());
        v
    }

    /// Run the five stages over a batch.
    pub fn run<B: PacketBuf>(&mut self, cx: &Context<'_>, pkts: &mut [B], meta: &mut [Meta], verdicts: &mut [Verdict]) {
        self.observe(cx, Stage::Ingress, pkts, meta, verdicts);
        if verdicts.contains(&Verdict::Continue) {
            self.forwarder.forward(cx, pkts, meta, verdicts);
        }
        self.observe(cx, Stage::Egress, pkts, meta, verdicts);
    }

    /// Filters then captures on ingress; captures then filters... in Hyper-V
    /// order: ingress = capture, filter; egress = filter, capture.
    fn observe<B: PacketBuf>(&mut self, cx: &Context<'_>, stage: Stage, pkts: &[B], meta: &[Meta], verdicts: &mut [Verdict]) {
        if self.captures.is_empty() && self.filters.is_empty() {
            return;
        }
        let live = |v: &Verdict| match stage {
            Stage::Ingress => *v == Verdict::Continue,
            Stage::Egress => v.is_delivery(),
        };
        if stage == Stage::Ingress {
            self.run_captures(cx, stage, pkts, meta, verdicts, live);
            self.run_filters(cx, stage, pkts, meta, verdicts, live);
        } else {
            self.run_filters(cx, stage, pkts, meta, verdicts, live);
            self.run_captures(cx, stage, pkts, meta, verdicts, live);
        }
    }

    fn run_captures<B: PacketBuf>(&mut self, cx: &Context<'_>, stage: Stage, pkts: &[B], meta: &[Meta], verdicts: &[Verdict], live: impl Fn(&Verdict) -> bool) {
        if self.captures.is_empty() {
            return;
        }
        let refs: ArrayVec<PacketRef<'_>, BURST> = pkts.iter().zip(meta).zip(verdicts).filter(|(_, v)| live(v)).map(|((p, m), _)| PacketRef { data: p.data(), meta: m }).collect();
        for c in &mut self.captures {
            c.capture(cx, stage, &refs);
        }
    }

    fn run_filters<B: PacketBuf>(&mut self, cx: &Context<'_>, stage: Stage, pkts: &[B], meta: &[Meta], verdicts: &mut [Verdict], live: impl Fn(&Verdict) -> bool) {
        for f in &mut self.filters {
            let mut index: ArrayVec<u8, BURST> = ArrayVec::new();
            let mut refs: ArrayVec<PacketRef<'_>, BURST> = ArrayVec::new();
            for (i, ((p, m), v)) in pkts.iter().zip(meta).zip(verdicts.iter()).enumerate().take(BURST) {
                if live(v) {
                    index.push(i as u8);
                    refs.push(PacketRef { data: p.data(), meta: m });
                }
            }
            if refs.is_empty() {
                return;
            }
            let mut handle = Verdicts { index: &index, verdicts };
            f.filter(cx, stage, &refs, &mut handle);
        }
    }

    /// The forwarding extension.
    pub fn forwarder_mut(&mut self) -> &mut F {
        &mut self.forwarder
    }
}
