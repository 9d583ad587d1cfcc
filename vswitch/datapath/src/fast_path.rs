//! The fast path: a whole batch through the decision cache in stages
//! (DPDK's `rte_hash_lookup_bulk`, VPP's vector nodes).
//!
//! 1. key and hash every packet ([`crate::flow::key`]), prefetching its
//!    bucket, so the bucket loads of the whole batch overlap;
//! 2. look each key up (signatures, key, validity under the snapshot) and
//!    act on each hit in place ([`act`]: decapsulate, route, encapsulate
//!    with a per-packet FlowID) — drops are counted here; hits and misses
//!    are counted once per batch;
//! 3. deliver: a batch whose packets all hit and leave by one port in one
//!    VSID is handed to the tx stage whole; otherwise each hit is sent, each
//!    drop freed, and each miss kept, in order, for the slow path, which
//!    gets its key back through [`FastPath::slow_key`].
//!
//! (Two stages, not rte_hash's four: with decision keys the table a batch
//! touches is small and hot, and every extra pass over the batch costs
//! instructions on the hit path; callgrind measured the split.)
//!
//! Packet-level conditions that the decision does not capture are checked
//! per packet in [`act`]: TTL/hop limit on routed packets, the uplink MTU (a
//! frame too big becomes an ICMP error for its VM, [`crate::too_big`]) and
//! headroom on encapsulation, the length of a decapsulated frame.
//! No allocation, lock, syscall or log line; per-packet counts go to the
//! batch's [`crate::deliver::Tally`].

use crate::deliver::Out;
use crate::drop::DropReason;
use crate::encap::encap;
use crate::flow::key::{self, Fields, FlowKey};
use crate::flow::{Action, FlowCache, Step};
use crate::mss;
use crate::stats::DatapathStats;
use crate::store::PolicyStore;
use crate::tables::{Delivery, Dest, PortEntry, Role, Tables};
use crate::too_big;
use arrayvec::ArrayVec;
use pmd::{Batch, PacketBuf, BURST};

/// What [`act`] made of a hit, packed in a word so a batch's outcomes compare
/// cheaply: `port << 16 | vsid_slot` for a packet to send, or one of the two
/// markers (ports are below [`pmd::MAX_PORTS`], so they never collide).
type Outcome = u32;
/// Dropped and counted; free it.
const DROPPED: Outcome = u32::MAX - 1;
/// Take the slow path.
const SLOW: Outcome = u32::MAX;

#[inline(always)]
fn out_to(port: u16, vsid_slot: u16) -> Outcome {
    u32::from(port) << 16 | u32::from(vsid_slot)
}

/// One worker's per-batch scratch (reused, never reallocated).
#[derive(Debug)]
pub struct FastPath {
    keys: [FlowKey; BURST],
    fields: [Fields; BURST],
    hashes: [u64; BURST],
    has_key: [bool; BURST],
    /// For each packet handed to the slow path, its index in this batch's keys (or `u8::MAX`).
    slow_from: ArrayVec<u8, BURST>,
}

impl Default for FastPath {
    fn default() -> Self {
        FastPath { keys: [FlowKey::default(); BURST], fields: [Fields::default(); BURST], hashes: [0; BURST], has_key: [false; BURST], slow_from: ArrayVec::new() }
    }
}

impl FastPath {
    /// The key and hash of the `j`-th packet left for the slow path, if it had one.
    #[inline]
    pub fn slow_key(&self, j: usize) -> Option<(&FlowKey, u64)> {
        let i = usize::from(*self.slow_from.get(j)?);
        (*self.has_key.get(i)?).then(|| (&self.keys[i], self.hashes[i]))
    }

    /// Forget the previous batch's slow-path keys (when the fast path does not run).
    pub fn reset(&mut self) {
        self.slow_from.clear();
    }

    /// Run `pkts` (received on `in_port`, entry `port`) through the cache;
    /// what misses stays in `pkts`, in order, for the slow path.
    // Index loops over the parallel per-packet arrays: `i < n <= BURST` lets
    // the compiler drop the bounds checks that zip chains cost in callgrind.
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    pub fn run<B: PacketBuf>(&mut self, cache: &mut FlowCache, t: &Tables, store: &PolicyStore, now: u64, in_port: u16, port: &PortEntry, pkts: &mut Batch<B>, out: &mut Out<'_, B>) {
        let n = pkts.len().min(BURST);
        self.slow_from.clear();
        // Stage 1: keys and hashes; prefetch the buckets.
        let uplink = port.role == Role::Uplink;
        let mut keyed = false;
        for i in 0..n {
            let Some(p) = pkts.get(i) else { break };
            let ok = p.is_contiguous()
                && if uplink { key::from_uplink(t, in_port, p.data(), &mut self.keys[i], &mut self.fields[i]) } else { key::from_vm(port, in_port, p.data(), &mut self.keys[i], &mut self.fields[i]) };
            self.has_key[i] = ok;
            if ok {
                let h = key::hash(&self.keys[i]);
                self.hashes[i] = h;
                cache.prefetch_bucket(h);
            }
            keyed |= ok;
        }
        if !keyed {
            self.slow_from.extend((0..n as u8).take(BURST));
            return;
        }
        // Stage 2: look up and act on every hit in place.
        let mut outcome = [SLOW; BURST];
        let (mut hits, mut misses) = (0u32, 0u32);
        let refresh = store.note_refresh();
        for i in 0..n {
            if !self.has_key[i] {
                continue;
            }
            let Some(e) = cache.find(&self.keys[i], self.hashes[i], t) else {
                misses += 1;
                continue;
            };
            hits += 1;
            let note = cache.note_due(e, now, refresh);
            let (Some(a), Some(p)) = (cache.action(e), pkts.get_mut(i)) else { continue };
            outcome[i] = act(t, note.then_some(store), now, out, a, &self.keys[i], &self.fields[i], p);
        }
        cache.account(hits, misses);
        // Stage 3: deliver. A batch that all leaves by one port in one VSID is handed over whole.
        let first = outcome[0];
        if hits as usize == n && first < DROPPED && outcome[..n].iter().all(|&o| o == first) && out.hand_over((first >> 16) as u16, first as u16, pkts) {
            return;
        }
        let mut slow: Batch<B> = Batch::new();
        for (i, p) in pkts.drain(..).enumerate() {
            match outcome.get(i).copied().unwrap_or(SLOW) {
                SLOW => {
                    slow.push(p);
                    self.slow_from.push(i as u8);
                }
                DROPPED => drop(p),
                o => out.send((o >> 16) as u16, o as u16, p),
            }
        }
        *pkts = slow;
    }
}

/// Carry out cached action `a` on packet `p` (key `k`, fields `f`); mark
/// its record as sent to through `note` when given.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn act<B: PacketBuf>(t: &Tables, note: Option<&PolicyStore>, now: u64, out: &mut Out<'_, B>, a: &Action, k: &FlowKey, f: &Fields, p: &mut B) -> Outcome {
    let st: &DatapathStats = out.st;
    if let Step::Drop(r) = a.step {
        if !r.at_ingress() {
            out.tally.vsid_rx(st, a.in_vsid_slot);
            if a.decap != 0 {
                out.tally.decapsulated += 1;
            }
        }
        // Routed first, then dropped (an "in" ACL rule of the destination):
        // as on the slow path, an expiring TTL is the reason, else it counts as routed.
        if !routed(out, a, p) {
            return DROPPED;
        }
        out.drop(r, Some(if r.at_ingress() { a.in_vsid_slot } else { a.out_vsid_slot }));
        return DROPPED;
    }
    out.tally.vsid_rx(st, a.in_vsid_slot);
    if a.decap != 0 {
        let d = p.data();
        let total = d.get(16..18).map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
        let trailer = d.len().saturating_sub(14 + total);
        if !p.adj(usize::from(a.decap)) || !p.trim(trailer) {
            out.drop(DropReason::Malformed, Some(a.in_vsid_slot));
            return DROPPED;
        }
        out.tally.decapsulated += 1;
    }
    if !routed(out, a, p) {
        return DROPPED;
    }
    match a.step {
        Step::Port(q) => out_to(q, a.out_vsid_slot),
        Step::Encap { slot } => match t.by_slot(slot) {
            Some(Dest { to: Delivery::Encap(id), flow_entropy, vsid, .. }) => {
                let Some(tpl) = t.template(*id) else {
                    out.drop(DropReason::NextHopUnresolved, Some(a.out_vsid_slot));
                    return DROPPED;
                };
                let fid = if *flow_entropy { f.flow_id(k) } else { 0 };
                mss::clamp(p, tpl, out.tally);
                match encap(p, tpl, vsid << 8 | u32::from(fid)) {
                    Ok(()) => {
                        out.tally.encapsulated += 1;
                        if let Some(store) = note {
                            // Due for this entry: REDIRECTs are accepted only for CAs recently sent to.
                            store.note_sent(slot, now);
                        }
                        out_to(tpl.uplink, a.out_vsid_slot)
                    }
                    Err(DropReason::EncapTooBig) => match too_big::answer(t, out.in_port, tpl.max_inner, p, out.icmp, now) {
                        Ok(port) => {
                            out.tally.too_big += 1;
                            out_to(port, a.in_vsid_slot)
                        }
                        Err(r) => {
                            out.drop(r, Some(a.out_vsid_slot));
                            DROPPED
                        }
                    },
                    Err(r) => {
                        out.drop(r, Some(a.out_vsid_slot));
                        DROPPED
                    }
                }
            }
            _ => {
                out.drop(DropReason::NoRecord, Some(a.out_vsid_slot));
                DROPPED
            }
        },
        Step::Drop(_) => DROPPED,
    }
}

/// For a routed action: route `p` and count it as routed, or count a
/// `ttl_expired` drop in the source VSID (the router drops before the packet
/// changes VSID) and return false. True for actions that do not route.
#[inline(always)]
fn routed<B: PacketBuf>(out: &mut Out<'_, B>, a: &Action, p: &mut B) -> bool {
    let Some((dst, src)) = a.route else { return true };
    if !route(p, &dst, &src) {
        out.drop(DropReason::TtlExpired, Some(a.in_vsid_slot));
        return false;
    }
    out.tally.routed += 1;
    true
}

/// Decrement the TTL / hop limit (false at expiry) and write the routed MACs.
#[inline]
fn route<B: PacketBuf>(p: &mut B, dst: &[u8; 6], src: &[u8; 6]) -> bool {
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
    if ok {
        d[0..6].copy_from_slice(dst);
        d[6..12].copy_from_slice(src);
    }
    ok
}
