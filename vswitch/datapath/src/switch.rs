//! [`HnvSwitch`]: the per-worker HNV processor the poll loop calls.
//!
//! Per batch: load the policy snapshot once; ingress (VSID, anti-spoofing,
//! provider ARP, decapsulation); the extension pipeline (capture, filter,
//! forward, filter, capture); then delivery: encapsulate with the record's
//! precompiled outer header (copy, patch length, checksum and FlowID),
//! replicate floods, enqueue to tx, and count every drop by reason.
//!
//! Thread-safety contract: one `HnvSwitch` per worker; it owns its
//! pipeline and its [`DatapathStats`] (which other threads only read).

use crate::drop::DropReason;
use crate::forward::HnvForwarder;
use crate::ingress;
use crate::meta::{Meta, Verdict};
use crate::pipeline::{Context, Pipeline};
use crate::stats::DatapathStats;
use crate::store::PolicyStore;
use crate::tables::{Delivery, EncapTemplate, Role, Tables};
use arrayvec::ArrayVec;
use hnv_wire::checksum;
use pmd::{Batch, PacketBuf, Processor, TxStage, BURST};
use std::net::IpAddr;
use std::sync::Arc;

/// One worker's HNV switch.
#[derive(Debug)]
pub struct HnvSwitch {
    store: Arc<PolicyStore>,
    pipeline: Pipeline<HnvForwarder>,
    stats: Arc<DatapathStats>,
    worker: usize,
}

impl HnvSwitch {
    /// A switch reading `store`, running `pipeline`, counting into `stats`.
    pub fn new(store: Arc<PolicyStore>, pipeline: Pipeline<HnvForwarder>, stats: Arc<DatapathStats>, worker: usize) -> Self {
        HnvSwitch { store, pipeline, stats, worker }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<DatapathStats> {
        &self.stats
    }
}

/// The FlowID for a packet's inner 5-tuple (RFC 7637 §4: per-flow entropy).
#[inline]
pub fn flow_id(m: &Meta) -> u8 {
    match (m.src, m.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => hnv_wire::flow_id(&s.octets(), &d.octets(), m.proto, m.sport, m.dport),
        (IpAddr::V6(s), IpAddr::V6(d)) => hnv_wire::flow_id(&s.octets(), &d.octets(), m.proto, m.sport, m.dport),
        _ => 0,
    }
}

/// Prepend `tpl` to `pkt` and patch the lengths, the IPv4 checksum and the FlowID.
#[inline]
pub fn encap<B: PacketBuf>(pkt: &mut B, tpl: &EncapTemplate, flow_id: u8) -> Result<(), DropReason> {
    let inner = pkt.len();
    if inner > usize::from(tpl.max_inner) {
        return Err(DropReason::EncapTooBig);
    }
    let len = usize::from(tpl.len);
    let ip = usize::from(tpl.ip_off);
    let data = pkt.prepend(len).ok_or(DropReason::NoHeadroom)?;
    data[..len].copy_from_slice(&tpl.bytes[..len]);
    if tpl.ipv6 {
        let payload = (inner + 8) as u16;
        data[ip + 4..ip + 6].copy_from_slice(&payload.to_be_bytes());
    } else {
        let total = (inner + 28) as u16;
        data[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        let sum = !checksum::combine(&[tpl.ip_sum, total]);
        data[ip + 10..ip + 12].copy_from_slice(&sum.to_be_bytes());
    }
    data[len - 1] = flow_id;
    Ok(())
}

impl<B: PacketBuf> Processor<B> for HnvSwitch {
    fn process(&mut self, in_port: u16, pkts: &mut Batch<B>, out: &mut TxStage<B>, now: u64) {
        let tables = self.store.load();
        let t: &Tables = &tables;
        let st = &*self.stats;
        let n = pkts.len();
        st.rx.add(n as u64);
        if let Some(c) = st.ports.get(usize::from(in_port)) {
            c.rx.add(n as u64);
        }
        let role = t.port(in_port).map(|p| p.role);
        let mut meta: ArrayVec<Meta, BURST> = ArrayVec::new();
        let mut verdicts: ArrayVec<Verdict, BURST> = ArrayVec::new();
        let store = &*self.store;
        for p in pkts.iter_mut() {
            let mut m = Meta::default();
            let v = match role {
                Some(Role::Vm) => ingress::from_vm(t, in_port, p, &mut m),
                Some(Role::Uplink) => ingress::from_uplink(t, in_port, p, &mut m, &mut |l| store.offer_learned(l)),
                None => Verdict::Drop(DropReason::UnknownPort),
            };
            if v == Verdict::Continue {
                if let Some(c) = st.vsids.get(usize::from(m.vsid_slot)) {
                    c.rx.add(1);
                }
                if m.from_uplink {
                    st.decapsulated.add(1);
                }
            }
            meta.push(m);
            verdicts.push(v);
        }
        let cx = Context { tables: t, now, worker: self.worker };
        let (answered, routed) = {
            let f = self.pipeline.forwarder_mut();
            (f.answered, f.routed)
        };
        self.pipeline.run(&cx, pkts.as_mut_slice(), &mut meta, &mut verdicts);
        let f = self.pipeline.forwarder_mut();
        st.answered.add(f.answered - answered);
        st.routed.add(f.routed - routed);
        for ((mut p, m), v) in pkts.drain(..).zip(meta.iter()).zip(verdicts.iter()) {
            let verdict = match *v {
                Verdict::Encap(idx) => match t.dests.get(idx as usize).map(|d| (d.to, d.flow_entropy)) {
                    Some((Delivery::Encap(tpl), entropy)) => match encap(&mut p, &tpl, if entropy { flow_id(m) } else { 0 }) {
                        Ok(()) => {
                            st.encapsulated.add(1);
                            Verdict::Port(tpl.uplink)
                        }
                        Err(r) => Verdict::Drop(r),
                    },
                    _ => Verdict::Drop(DropReason::NoRecord),
                },
                other => other,
            };
            match verdict {
                Verdict::Port(port) => send(st, out, port, m.vsid_slot, p),
                Verdict::Flood => flood(t, st, out, m, p),
                Verdict::Drop(r) => st.drop(r, in_port, (r != DropReason::UnknownPort).then_some(m.vsid_slot)),
                Verdict::Continue | Verdict::Encap(_) => st.drop(DropReason::NoRecord, in_port, Some(m.vsid_slot)),
            }
        }
    }
}

#[inline]
fn send<B: PacketBuf>(st: &DatapathStats, out: &mut TxStage<B>, port: u16, vsid_slot: u16, p: B) {
    st.tx.add(1);
    if let Some(c) = st.ports.get(usize::from(port)) {
        c.tx.add(1);
    }
    if let Some(c) = st.vsids.get(usize::from(vsid_slot)) {
        c.tx.add(1);
    }
    out.send(port, p);
}

/// Copy `p` to every local port of its VSID except the one it came in on.
fn flood<B: PacketBuf>(t: &Tables, st: &DatapathStats, out: &mut TxStage<B>, m: &Meta, p: B) {
    let members = t.vsid(m.vsid).map(|e| e.local_ports.as_slice()).unwrap_or(&[]);
    let mut targets = members.iter().copied().filter(|&q| q != m.in_port);
    let Some(first) = targets.next() else {
        st.drop(DropReason::FloodNoMembers, m.in_port, Some(m.vsid_slot));
        return;
    };
    for q in targets {
        match p.try_clone() {
            Some(c) => {
                st.replicas.add(1);
                send(st, out, q, m.vsid_slot, c);
            }
            None => {
                st.replicas.add(1);
                st.drop(DropReason::ReplicaAllocFailed, m.in_port, Some(m.vsid_slot));
            }
        }
    }
    send(st, out, first, m.vsid_slot, p);
}
