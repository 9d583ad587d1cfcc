//! [`HnvSwitch`]: the per-worker HNV processor the poll loop calls.
//!
//! Per batch: load the policy snapshot once; ingress (VSID, anti-spoofing,
//! provider ARP, decapsulation); the extension pipeline (capture, filter,
//! forward, filter, capture); then delivery: encapsulate with the record's
//! precompiled outer header (copy, patch length, checksum and FlowID),
//! replicate floods, enqueue to tx, and count every drop by reason. NVGRE
//! from the fabric for a VM that just moved away is re-encapsulated to its new
//! PA with the original sender's PA kept as outer source, and the sender gets
//! an MS-NVGREE REDIRECT; NVGRE for a CA with no VM here gets an UNREACHABLE
//! ([`crate::notify`], rate-limited, counted as replicas). The flow cache's
//! counters are added to the stats once per batch.
//!
//! Thread-safety contract: one `HnvSwitch` per worker; it owns its
//! pipeline and its [`DatapathStats`] (which other threads only read).

use crate::drop::DropReason;
use crate::forward::HnvForwarder;
use crate::ingress::{self, Hint};
use crate::notify::Notifier;
use crate::meta::{Meta, Verdict};
use crate::pipeline::{Context, Pipeline};
use crate::stats::DatapathStats;
use crate::store::PolicyStore;
use crate::flow::cache::{CacheStats, Deps};
use crate::flow::{key, Action, FlowCache, FlowKey, Step};
use crate::tables::{Delivery, Dest, EncapTemplate, Role, Tables};
use arrayvec::ArrayVec;
use hnv_wire::checksum;
use hnv_wire::nvgree::Control;
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
    cache: Option<FlowCache>,
    notifier: Notifier,
    /// Cache counters already added to `stats`.
    published: CacheStats,
}

/// Default minimum TSC cycles between two MS-NVGREE messages for one flow pair (~50 ms at 2 GHz).
pub const DEFAULT_NOTIFY_INTERVAL: u64 = 100_000_000;

/// Default flow-cache entries per worker.
pub const DEFAULT_CACHE_ENTRIES: usize = 1 << 16;

impl HnvSwitch {
    /// A switch reading `store`, running `pipeline`, counting into `stats`, with the default flow cache.
    pub fn new(store: Arc<PolicyStore>, pipeline: Pipeline<HnvForwarder>, stats: Arc<DatapathStats>, worker: usize) -> Self {
        let cache = FlowCache::new(DEFAULT_CACHE_ENTRIES);
        stats.flow_capacity.add(cache.capacity() as u64);
        HnvSwitch { store, pipeline, stats, worker, cache: Some(cache), notifier: Notifier::new(DEFAULT_NOTIFY_INTERVAL), published: CacheStats::default() }
    }

    /// Send at most one MS-NVGREE message per (sending VM, destination CA) every `cycles` TSC cycles.
    pub fn with_notify_interval(mut self, cycles: u64) -> Self {
        self.notifier = Notifier::new(cycles);
        self
    }

    /// Use a flow cache of `entries` entries (0 turns it off).
    pub fn with_cache(mut self, entries: usize) -> Self {
        let old = self.stats.flow_capacity.get();
        self.cache = (entries > 0).then(|| FlowCache::new(entries));
        let new = self.cache.as_ref().map_or(0, FlowCache::capacity) as u64;
        self.stats.flow_capacity.add(new.wrapping_sub(old));
        self
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<DatapathStats> {
        &self.stats
    }

    /// The flow cache, if on.
    pub fn cache(&self) -> Option<&FlowCache> {
        self.cache.as_ref()
    }
}

/// Drop reasons that depend only on the flow key and the policy, so a flow's
/// drop can be cached. (Malformed frames, TTL expiry and oversize frames are
/// properties of a packet, not of its flow.)
fn cacheable_drop(r: DropReason) -> bool {
    use DropReason::*;
    matches!(r, SpoofedMac | SpoofedIp | NoRecord | DstMacMismatch | NoLocalPort | NoRoute | NextHopUnresolved | VsidUnknown | UnknownSourceCa | PaCaMismatch | AclDeny)
}

/// The FlowID for a packet's inner 5-tuple (RFC 7637 §4: per-flow entropy); 0 for non-IP.
#[inline]
pub fn flow_id(m: &Meta) -> u8 {
    if m.ethertype != 0x0800 && m.ethertype != 0x86dd {
        return 0;
    }
    flow_id_of(m.src, m.dst, m.proto, m.sport, m.dport)
}

/// The FlowID of a 5-tuple (0 when the address families differ).
#[inline]
pub fn flow_id_of(src: IpAddr, dst: IpAddr, proto: u8, sport: u16, dport: u16) -> u8 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => hnv_wire::flow_id(&s.octets(), &d.octets(), proto, sport, dport),
        (IpAddr::V6(s), IpAddr::V6(d)) => hnv_wire::flow_id(&s.octets(), &d.octets(), proto, sport, dport),
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
    let data = pkt.prepend(len).ok_or(DropReason::NoHeadroom)?;
    if let (Some(h), true) = (data.get_mut(..42).and_then(|h| <&mut [u8; 42]>::try_from(h).ok()), len == 42) {
        // The common case, IPv4 without VLAN: fixed offsets, no library call.
        h.copy_from_slice(&tpl.bytes[..42]);
        let total = (inner + 28) as u16;
        let sum = u32::from(tpl.ip_sum) + u32::from(total);
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        h[16..18].copy_from_slice(&total.to_be_bytes());
        h[24..26].copy_from_slice(&sum.to_be_bytes());
        h[41] = flow_id;
        return Ok(());
    }
    let ip = usize::from(tpl.ip_off);
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
        let HnvSwitch { store, pipeline, stats, worker, cache, notifier, published } = self;
        if let Some(c) = cache.as_ref() {
            // The previous batch's insert/evict/stale counts (hits and misses are added below).
            let now = c.stats();
            stats.flow_inserts.add(now.inserts - published.inserts);
            stats.flow_evictions.add(now.evictions - published.evictions);
            stats.flow_stale.add(now.stale - published.stale);
            stats.flow_entries.add(now.occupied.wrapping_sub(published.occupied));
            *published = now;
        }
        let tables = store.load();
        let t: &Tables = &tables;
        let st = &**stats;
        let n = pkts.len();
        st.rx.add(n as u64);
        if let Some(c) = st.ports.get(usize::from(in_port)) {
            c.rx.add(n as u64);
        }
        let role = t.port(in_port).map(|p| p.role);
        let mut tx: TxCount = [0; pmd::MAX_PORTS];
        // Fast path: cached flows go straight to their action.
        let mut keys: ArrayVec<Option<(FlowKey, u32)>, BURST> = ArrayVec::new();
        let mut cache = match (cache.as_mut(), role) {
            (Some(c), Some(r)) if pipeline.cacheable() => {
                let mut slow: Batch<B> = Batch::new();
                let mut k = FlowKey::default();
                let before = c.stats();
                for p in pkts.drain(..) {
                    if p.is_contiguous() && key::extract(t, r, in_port, p.data(), &mut k) {
                        let h = key::hash(&k);
                        if let Some(a) = c.lookup(&k, h, t) {
                            apply(t, st, &mut tx, out, in_port, a, p);
                            continue;
                        }
                        keys.push(Some((k, h)));
                    } else {
                        keys.push(None);
                    }
                    slow.push(p);
                }
                *pkts = slow;
                let after = c.stats();
                st.flow_hits.add(after.hits - before.hits);
                st.flow_misses.add(after.misses - before.misses);
                Some(c)
            }
            _ => None,
        };
        if pkts.is_empty() {
            add_tx(st, &tx, t.ports.len());
            return;
        }
        let mut meta: ArrayVec<Meta, BURST> = ArrayVec::new();
        let mut verdicts: ArrayVec<Verdict, BURST> = ArrayVec::new();
        for p in pkts.iter_mut() {
            let mut m = Meta::default();
            let v = match role {
                Some(Role::Vm) => ingress::from_vm(t, in_port, p, &mut m),
                Some(Role::Uplink) => ingress::from_uplink(t, in_port, p, &mut m, &mut |h| match h {
                    Hint::Neighbor(l) => store.offer_learned(l),
                    Hint::Control { vsid, msg } => store.offer_control(vsid, msg),
                }),
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
        let in_vsid = meta.iter().map(|m| (m.vsid, m.vsid_slot)).collect::<ArrayVec<(u32, u16), BURST>>();
        let cx = Context { tables: t, now, worker: *worker };
        let (answered, routed) = {
            let f = pipeline.forwarder_mut();
            (f.answered, f.routed)
        };
        pipeline.run(&cx, pkts.as_mut_slice(), &mut meta, &mut verdicts);
        let f = pipeline.forwarder_mut();
        st.answered.add(f.answered - answered);
        st.routed.add(f.routed - routed);
        for (i, ((mut p, m), v)) in pkts.drain(..).zip(meta.iter()).zip(verdicts.iter()).enumerate() {
            let fid = match *v {
                Verdict::Encap(i) if t.dests.get(i as usize).is_some_and(|d| d.flow_entropy) => flow_id(m),
                _ => 0,
            };
            if let (Some(c), Some(Some((k, h)))) = (cache.as_deref_mut(), keys.get(i)) {
                let step = match *v {
                    Verdict::Port(q) => Some(Step::Port(q)),
                    // Traffic for a VM that just moved away stays on the slow path, which redirects its sender.
                    Verdict::Encap(idx) => t.dests.get(idx as usize).filter(|d| !(m.from_uplink && d.forward_moved)).map(|d| Step::Encap { slot: d.slot, flow_id: fid }),
                    Verdict::Drop(r) if cacheable_drop(r) => Some(Step::Drop(r)),
                    _ => None,
                };
                let (iv, islot) = in_vsid.get(i).copied().unwrap_or((0, 0));
                if let Some(step) = step {
                    let route = m.routed.then(|| {
                        let d = p.data();
                        let mut dst = [0u8; 6];
                        let mut src = [0u8; 6];
                        dst.copy_from_slice(&d[0..6]);
                        src.copy_from_slice(&d[6..12]);
                        (dst, src)
                    });
                    let action = Action { step, decap: m.from_uplink, route, in_vsid_slot: islot, out_vsid_slot: m.vsid_slot };
                    let deps = Deps { in_vsid: iv, out_vsid: m.vsid, dst_rec: m.dst_slot, src_rec: m.src_slot };
                    c.insert(*k, *h, action, deps, t);
                }
            }
            if m.from_uplink {
                let control = match *v {
                    Verdict::Encap(idx) => match t.dests.get(idx as usize) {
                        Some(d) if d.forward_moved => match d.pa {
                            IpAddr::V4(new_pa) => Some(Control::Redirect { new_pa }),
                            IpAddr::V6(_) => None,
                        },
                        _ => None,
                    },
                    Verdict::Drop(DropReason::NoLocalPort | DropReason::NoRecord) => Some(Control::Unreachable),
                    _ => None,
                };
                if let Some((msg, uplink)) = control.and_then(|c| notifier.message(t, m, &p, now, c)) {
                    st.replicas.add(1);
                    st.control_sent.add(1);
                    send(st, &mut tx, out, uplink, m.vsid_slot, msg);
                }
            }
            let verdict = match *v {
                Verdict::Encap(idx) => match t.dests.get(idx as usize) {
                    Some(Dest { to: Delivery::Encap(tpl), forward_moved, slot, .. }) => match encap(&mut p, tpl, fid) {
                        Ok(()) => {
                            store.note_sent(*slot, now); // issue 13: REDIRECTs are accepted only for CAs recently sent to
                            if m.from_uplink && *forward_moved {
                                keep_outer_source(&mut p, tpl, m.outer_src);
                            }
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
                Verdict::Port(port) => send(st, &mut tx, out, port, m.vsid_slot, p),
                Verdict::Flood => flood(t, st, &mut tx, out, m, p),
                Verdict::Drop(r) => st.drop(r, in_port, (r != DropReason::UnknownPort).then_some(m.vsid_slot)),
                Verdict::Continue | Verdict::Encap(_) => st.drop(DropReason::NoRecord, in_port, Some(m.vsid_slot)),
            }
        }
        add_tx(st, &tx, t.ports.len());
    }
}

/// Traffic forwarded for a VM that moved away keeps its original sender's PA
/// as outer source, so that the new host's PA/CA check accepts it (IPv4).
fn keep_outer_source<B: PacketBuf>(p: &mut B, tpl: &EncapTemplate, src: IpAddr) {
    let (IpAddr::V4(src), false) = (src, tpl.ipv6) else { return };
    let ip = usize::from(tpl.ip_off);
    if let Some(h) = p.data_mut().get_mut(ip..ip + 20) {
        h[12..16].copy_from_slice(&src.octets());
        h[10..12].fill(0);
        let sum = !checksum::data(h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
    }
}

/// Carry out a cached action on one packet.
#[inline(always)]
fn apply<B: PacketBuf>(t: &Tables, st: &DatapathStats, tx: &mut TxCount, out: &mut TxStage<B>, in_port: u16, a: &Action, mut p: B) {
    let ingress_drop = matches!(a.step, Step::Drop(r) if r.at_ingress());
    if !ingress_drop {
        if let Some(c) = st.vsids.get(usize::from(a.in_vsid_slot)) {
            c.rx.add(1);
        }
    }
    if let Step::Drop(r) = a.step {
        if a.decap && !r.at_ingress() {
            st.decapsulated.add(1);
        }
        st.drop(r, in_port, Some(if r.at_ingress() { a.in_vsid_slot } else { a.out_vsid_slot }));
        return;
    }
    if a.decap {
        let d = p.data();
        let total = d.get(16..18).map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
        let trailer = d.len().saturating_sub(14 + total);
        if !p.adj(key::OUTER_LEN) || !p.trim(trailer) {
            st.drop(DropReason::Malformed, in_port, Some(a.in_vsid_slot));
            return;
        }
        st.decapsulated.add(1);
    }
    if let Some((dst, src)) = a.route {
        let d = p.data_mut();
        let ok = match d.get(12..14) {
            Some([0x08, 0x00]) => hnv_wire::Ipv4Packet::new_checked(&mut d[14..]).is_ok_and(|mut ip| ip.hop_limit() > 1 && ip.decrement_ttl_incremental() > 0),
            Some([0x86, 0xdd]) => match d.get_mut(21) {
                Some(hl) if *hl > 1 => {
                    *hl -= 1;
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if !ok {
            st.drop(DropReason::TtlExpired, in_port, Some(a.out_vsid_slot));
            return;
        }
        d[0..6].copy_from_slice(&dst);
        d[6..12].copy_from_slice(&src);
        st.routed.add(1);
    }
    match a.step {
        Step::Port(q) => send(st, tx, out, q, a.out_vsid_slot, p),
        Step::Encap { slot, flow_id } => match t.by_slot(slot) {
            Some(Dest { to: Delivery::Encap(tpl), .. }) => match encap(&mut p, tpl, flow_id) {
                Ok(()) => {
                    st.encapsulated.add(1);
                    send(st, tx, out, tpl.uplink, a.out_vsid_slot, p);
                }
                Err(r) => st.drop(r, in_port, Some(a.out_vsid_slot)),
            },
            _ => st.drop(DropReason::NoRecord, in_port, Some(a.out_vsid_slot)),
        },
        Step::Drop(_) => {}
    }
}

/// Packets handed to each port's tx buffer in this batch, added to the
/// counters once at the end of the batch.
type TxCount = [u32; pmd::MAX_PORTS];

#[inline]
fn send<B: PacketBuf>(st: &DatapathStats, tx: &mut TxCount, out: &mut TxStage<B>, port: u16, vsid_slot: u16, p: B) {
    if let Some(n) = tx.get_mut(usize::from(port)) {
        *n += 1;
    }
    if let Some(c) = st.vsids.get(usize::from(vsid_slot)) {
        c.tx.add(1);
    }
    out.send(port, p);
}

fn add_tx(st: &DatapathStats, tx: &TxCount, ports: usize) {
    let mut total = 0u64;
    for (c, &n) in st.ports.iter().zip(tx.iter()).take(ports) {
        if n > 0 {
            c.tx.add(u64::from(n));
            total += u64::from(n);
        }
    }
    st.tx.add(total);
}

/// Copy `p` to every local port of its VSID except the one it came in on.
fn flood<B: PacketBuf>(t: &Tables, st: &DatapathStats, tx: &mut TxCount, out: &mut TxStage<B>, m: &Meta, p: B) {
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
                send(st, tx, out, q, m.vsid_slot, c);
            }
            None => {
                st.replicas.add(1);
                st.drop(DropReason::ReplicaAllocFailed, m.in_port, Some(m.vsid_slot));
            }
        }
    }
    send(st, tx, out, first, m.vsid_slot, p);
}
