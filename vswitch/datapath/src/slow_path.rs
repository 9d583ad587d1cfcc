//! The slow path: the full pipeline for packets the cache did not decide.
//!
//! Per batch: ingress ([`crate::ingress`]: VSID, anti-spoofing, provider ARP,
//! NVGRE validation and decapsulation); the extension [`Pipeline`]
//! (capture, filter, forward, filter, capture); then, per packet: cache the
//! outcome when it depends only on the flow key and the policy
//! ([`cacheable_drop`], and never traffic for a VM that just moved away);
//! send an MS-NVGREE REDIRECT or UNREACHABLE to the sender of NVGRE for a
//! VM that is not here ([`crate::notify`]); encapsulate (a frame from a VM
//! too big for the uplink MTU becomes an ICMP error back to it,
//! [`crate::too_big`]); deliver or count the drop.

use crate::deliver::Out;
use crate::drop::DropReason;
use crate::encap::{encap, flow_id, keep_outer_source};
use crate::fast_path::FastPath;
use crate::flow::cache::Deps;
use crate::flow::{Action, FlowCache, Step};
use crate::forward::HnvForwarder;
use crate::ingress::{self, Hint};
use crate::meta::{Meta, Verdict};
use crate::mss;
use crate::notify::Notifier;
use crate::pipeline::{Context, Pipeline};
use crate::store::PolicyStore;
use crate::tables::{Delivery, Dest, Role, Tables};
use crate::too_big;
use arrayvec::ArrayVec;
use hnv_wire::nvgree::Control;
use pmd::{Batch, PacketBuf, BURST};
use std::net::IpAddr;

/// Drop reasons that depend only on the flow key and the policy records the
/// entry depends on (its VSIDs and its source and destination records), so
/// a flow's drop can be cached. Not cached: what a packet carries beyond its
/// key (malformed frames, TTL, size), and outcomes that depend on records
/// the entry does not track — `NoRoute` (the next hop's record in another
/// VSID) and `UnknownSourceCa` (a record that does not exist yet, possibly
/// in another VSID of the routing domain): adding the missing record must
/// take effect on the very next packet.
pub fn cacheable_drop(r: DropReason) -> bool {
    use DropReason::*;
    matches!(r, SpoofedMac | SpoofedIp | NoRecord | DstMacMismatch | NoLocalPort | NextHopUnresolved | VsidUnknown | PaCaMismatch | AclDeny)
}

/// What the slow path works with besides the packets.
#[derive(Debug)]
pub struct SlowPath<'a> {
    /// The batch's snapshot.
    pub t: &'a Tables,
    /// The store (for hints to the control side).
    pub store: &'a PolicyStore,
    /// The worker.
    pub worker: usize,
    /// TSC of this iteration.
    pub now: u64,
}

impl SlowPath<'_> {
    /// Run `pkts` (received on `in_port`, of role `role`) through the full
    /// pipeline; cache what can be cached (keys from `fp`).
    #[allow(clippy::too_many_arguments)]
    pub fn run<B: PacketBuf>(
        &self,
        pipeline: &mut Pipeline<HnvForwarder>,
        cache: Option<&mut FlowCache>,
        fp: &FastPath,
        notifier: &mut Notifier,
        role: Option<Role>,
        pkts: &mut Batch<B>,
        out: &mut Out<'_, B>,
    ) {
        let t = self.t;
        let st = out.st;
        let in_port = out.in_port;
        let mut meta: ArrayVec<Meta, BURST> = ArrayVec::new();
        let mut verdicts: ArrayVec<Verdict, BURST> = ArrayVec::new();
        for p in pkts.iter_mut() {
            let mut m = Meta::default();
            let v = match role {
                Some(Role::Vm) => ingress::from_vm(t, in_port, p, &mut m),
                Some(Role::Uplink) => ingress::from_uplink(t, in_port, p, &mut m, &mut |h| match h {
                    Hint::Neighbor(l) => self.store.offer_learned(l),
                    Hint::Control { vsid, msg } => self.store.offer_control(vsid, msg),
                }),
                None => Verdict::Drop(DropReason::UnknownPort),
            };
            if v == Verdict::Continue {
                out.tally.vsid_rx(st, m.vsid_slot);
                if m.from_uplink {
                    out.tally.decapsulated += 1;
                }
            }
            meta.push(m);
            verdicts.push(v);
        }
        let in_vsid = meta.iter().map(|m| (m.vsid, m.vsid_slot)).collect::<ArrayVec<(u32, u16), BURST>>();
        let cx = Context { tables: t, now: self.now, worker: self.worker };
        let (answered, routed) = {
            let f = pipeline.forwarder_mut();
            (f.answered, f.routed)
        };
        pipeline.run(&cx, pkts.as_mut_slice(), &mut meta, &mut verdicts);
        let f = pipeline.forwarder_mut();
        st.answered.add(f.answered - answered);
        out.tally.routed += (f.routed - routed) as u32;
        let mut cache = cache;
        for (i, ((mut p, m), v)) in pkts.drain(..).zip(meta.iter()).zip(verdicts.iter()).enumerate() {
            if let (Some(c), Some((k, h))) = (cache.as_deref_mut(), fp.slow_key(i)) {
                if let Some((action, deps)) = compile(t, &p, m, *v, in_vsid.get(i).copied().unwrap_or((0, 0))) {
                    c.insert(*k, h, action, deps, t);
                }
            }
            if m.from_uplink {
                notify(t, notifier, out, m, *v, &p, self.now);
            }
            // The ICMP error for a frame too big to encapsulate goes back in the ingress VSID.
            let mut slot = m.vsid_slot;
            let verdict = match *v {
                Verdict::Encap(idx) => match t.by_slot(idx) {
                    Some(d @ Dest { to: Delivery::Encap(id), forward_moved, .. }) => match t.template(*id).ok_or(DropReason::NextHopUnresolved).and_then(|tpl| {
                        mss::clamp(&mut p, tpl, out.tally);
                        encap(&mut p, tpl, d.vsid << 8 | u32::from(if d.flow_entropy { flow_id(m) } else { 0 })).map(|()| tpl)
                    }) {
                        Ok(tpl) => {
                            // REDIRECTs are accepted only for CAs recently sent to.
                            self.store.note_sent(d.slot, self.now);
                            if m.from_uplink && *forward_moved {
                                keep_outer_source(&mut p, tpl, m.outer_src);
                            }
                            out.tally.encapsulated += 1;
                            Verdict::Port(tpl.uplink)
                        }
                        Err(DropReason::EncapTooBig) => match too_big::answer(t, in_port, d_max_inner(t, d), &mut p, out.icmp, self.now) {
                            Ok(port) => {
                                out.tally.too_big += 1;
                                slot = in_vsid.get(i).map_or(slot, |s| s.1);
                                Verdict::Port(port)
                            }
                            Err(r) => Verdict::Drop(r),
                        },
                        Err(r) => Verdict::Drop(r),
                    },
                    _ => Verdict::Drop(DropReason::NoRecord),
                },
                other => other,
            };
            match verdict {
                Verdict::Port(port) => out.send(port, slot, p),
                Verdict::Flood => out.flood(t, m, p),
                Verdict::Drop(r) => out.drop(r, (r != DropReason::UnknownPort).then_some(m.vsid_slot)),
                Verdict::Continue | Verdict::Encap(_) => out.drop(DropReason::NoRecord, Some(m.vsid_slot)),
            }
        }
    }
}

/// The largest inner frame record `d`'s template carries (its uplink MTU less the outer headers).
fn d_max_inner(t: &Tables, d: &Dest) -> u16 {
    match d.to {
        Delivery::Encap(id) => t.template(id).map_or(0, |tpl| tpl.max_inner),
        _ => 0,
    }
}

/// The cache entry for a packet's outcome, if it can be cached: the action
/// and what its validity depends on. `p` is the packet after the pipeline
/// (routed MACs already written); `in_vsid` its ingress (VSID, counter slot).
fn compile<B: PacketBuf>(t: &Tables, p: &B, m: &Meta, v: Verdict, (iv, islot): (u32, u16)) -> Option<(Action, Deps)> {
    let step = match v {
        Verdict::Port(q) => Step::Port(q),
        // Traffic for a VM that just moved away stays on the slow path, which redirects its sender.
        Verdict::Encap(idx) => t.by_slot(idx).filter(|d| !(m.from_uplink && d.forward_moved)).map(|d| Step::Encap { slot: d.slot })?,
        // NVGRE for a VM that is not here is answered with an UNREACHABLE
        // (rate-limited) by the slow path, every time.
        Verdict::Drop(DropReason::NoRecord | DropReason::NoLocalPort) if m.from_uplink => return None,
        Verdict::Drop(r) if cacheable_drop(r) => Step::Drop(r),
        _ => return None,
    };
    let route = m.routed.then(|| {
        let d = p.data();
        let mut dst = [0u8; 6];
        let mut src = [0u8; 6];
        if let (Some(a), Some(b)) = (d.get(0..6), d.get(6..12)) {
            dst.copy_from_slice(a);
            src.copy_from_slice(b);
        }
        (dst, src)
    });
    let action = Action { step, decap: if m.from_uplink { m.outer_len } else { 0 }, route, in_vsid_slot: islot, out_vsid_slot: m.vsid_slot };
    Some((action, Deps { in_vsid: iv, out_vsid: m.vsid, dst_rec: m.dst_slot, src_rec: m.src_slot }))
}

/// An MS-NVGREE message for the sender of decapsulated packet `p`, if its
/// outcome calls for one: REDIRECT when its VM moved away, UNREACHABLE when
/// no VM here has its destination.
fn notify<B: PacketBuf>(t: &Tables, notifier: &mut Notifier, out: &mut Out<'_, B>, m: &Meta, v: Verdict, p: &B, now: u64) {
    let control = match v {
        Verdict::Encap(idx) => match t.by_slot(idx) {
            Some(d) if d.forward_moved => match d.pa {
                IpAddr::V4(new_pa) => Some(Control::Redirect { new_pa }),
                IpAddr::V6(_) => None,
            },
            _ => None,
        },
        Verdict::Drop(DropReason::NoLocalPort | DropReason::NoRecord) => Some(Control::Unreachable),
        _ => None,
    };
    if let Some((msg, uplink)) = control.and_then(|c| notifier.message(t, m, p, now, c)) {
        out.st.replicas.add(1);
        out.st.control_sent.add(1);
        out.send(uplink, m.vsid_slot, msg);
    }
}
