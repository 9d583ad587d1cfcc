//! The HNV forwarding extension: picks each packet's destination from policy.
//!
//! For a packet from a VM (its VSID already assigned):
//! - ARP requests and IPv6 neighbor solicitations for a CA of the VSID (or
//!   its virtual gateway) are answered in place from the lookup records and
//!   sent back to the VM; nothing is flooded to the fabric. A duplicate
//!   address probe (ARP from 0.0.0.0, NS from `::`) for the asker's own
//!   address is not answered ([`DadOwnAddress`](DropReason::DadOwnAddress));
//!   for another VM's address it is (the address is in use);
//! - frames to the subnet's virtual gateway MAC are routed by the
//!   distributed router within the routing domain (TTL/hop limit
//!   decremented, MACs rewritten, VSID changed), or sent to the VSID's
//!   gateway-wildcard record;
//! - other unicast goes to the lookup record of (VSID, destination CA), or
//!   (VSID, destination MAC) for non-IP: a local port or NVGRE encapsulation;
//! - broadcast and multicast reach the other local ports of the VSID only
//!   (remote members are not replicated to: HNV answers ARP/ND itself);
//! - an IP packet from an unspecified or link-local source (IPv4 0.0.0.0 or
//!   169.254/16, IPv6 `::` or fe80::/10; ingress admitted only the VM's own)
//!   stays on the host: routing or encapsulating it is
//!   [`LinkLocalOffLink`](DropReason::LinkLocalOffLink).
//!
//! Every flood is marked ([`Meta::flooded`]) so that egress filters apply
//! "in" rules to it as to any delivery to a local VM port.
//!
//! Decapsulated packets go to the local port of their VSID that owns the
//! destination MAC (broadcast: every local port of the VSID). A decapsulated
//! ARP request (from a peer that does not answer ARP from policy, such as
//! Linux `gretap`) is answered from policy and encapsulated back to the
//! requester's PA.

use crate::drop::DropReason;
use crate::meta::{Meta, Verdict};
use crate::pipeline::{Context, ForwardingExtension};
use crate::tables::{Delivery, Dest, Tables};
use hnv_wire::{EthernetAddress, Ipv4Packet, Ipv6Packet};
use pmd::PacketBuf;
use std::net::IpAddr;

/// The built-in HNV forwarder.
#[derive(Debug, Default)]
pub struct HnvForwarder {
    /// ARP/ND requests answered.
    pub answered: u64,
    /// Packets routed between virtual subnets.
    pub routed: u64,
}

const ARP: u16 = 0x0806;
const IPV4: u16 = 0x0800;
const IPV6: u16 = 0x86dd;

/// An unspecified or link-local IP source: it must not leave the host.
fn on_link_only(m: &Meta) -> bool {
    if m.ethertype != IPV4 && m.ethertype != IPV6 {
        return false;
    }
    match m.src {
        IpAddr::V4(a) => a.is_unspecified() || a.is_link_local(),
        IpAddr::V6(a) => a.is_unspecified() || (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn dst_mac(data: &[u8]) -> [u8; 6] {
    let mut m = [0u8; 6];
    if let Some(d) = data.get(..6) {
        m.copy_from_slice(d);
    }
    m
}

/// The verdict that delivers to `d`.
#[inline]
pub fn deliver_to(d: &Dest) -> Verdict {
    match d.to {
        Delivery::Local(p) => Verdict::Port(p),
        Delivery::Encap(_) => Verdict::Encap(d.slot),
        Delivery::Unresolved => Verdict::Drop(DropReason::NextHopUnresolved),
        Delivery::NoLocalPort => Verdict::Drop(DropReason::NoLocalPort),
    }
}

impl ForwardingExtension for HnvForwarder {
    fn name(&self) -> &'static str {
        "hnv-forwarder"
    }

    fn forward<B: PacketBuf>(&mut self, cx: &Context<'_>, pkts: &mut [B], meta: &mut [Meta], verdicts: &mut [Verdict]) {
        for ((p, m), v) in pkts.iter_mut().zip(meta.iter_mut()).zip(verdicts.iter_mut()) {
            if *v == Verdict::Continue {
                *v = if m.from_uplink { self.uplink_frame(cx.tables, p, m) } else { self.vm_frame(cx.tables, p, m) };
                if let Verdict::Encap(i) = *v {
                    m.dst_slot = cx.tables.by_slot(i).map_or(u32::MAX, |d| d.slot);
                }
                if let Verdict::Port(port) = *v {
                    m.out_port = port;
                }
                m.flooded = *v == Verdict::Flood;
            }
        }
    }
}

impl HnvForwarder {
    fn uplink_frame<B: PacketBuf>(&mut self, t: &Tables, p: &mut B, m: &mut Meta) -> Verdict {
        if m.ethertype == ARP {
            // A tenant ARP request from a peer that does not answer ARP from policy
            // (e.g. Linux gretap): answer it here and send the reply back to the
            // requester's PA. Nothing is flooded to the VMs.
            return match self.answer_arp(t, p, m) {
                Verdict::Port(_) => match t.by_slot(m.src_slot) {
                    Some(d) if matches!(d.to, Delivery::Encap(_)) => {
                        m.dst_slot = d.slot;
                        Verdict::Encap(d.slot)
                    }
                    _ => Verdict::Drop(DropReason::NoRecord),
                },
                other => other,
            };
        }
        let dst = dst_mac(p.data());
        if EthernetAddress(dst).is_multicast() {
            return Verdict::Flood;
        }
        let Some(d) = t.by_mac(m.vsid, dst) else { return Verdict::Drop(DropReason::NoRecord) };
        m.dst_slot = d.slot;
        match d.to {
            Delivery::Local(port) => Verdict::Port(port),
            // Live migration: the VM left this host moments ago; forward to its new
            // PA (never back to the host that sent it).
            Delivery::Encap(_) if d.forward_moved && d.pa != m.outer_src => Verdict::Encap(d.slot),
            // Moved to a PA whose next hop is being resolved: not an UNREACHABLE.
            Delivery::Unresolved if d.forward_moved && d.pa != m.outer_src => Verdict::Drop(DropReason::NextHopUnresolved),
            _ => Verdict::Drop(DropReason::NoLocalPort),
        }
    }

    fn vm_frame<B: PacketBuf>(&mut self, t: &Tables, p: &mut B, m: &mut Meta) -> Verdict {
        let Some(vs) = t.vsid(m.vsid) else { return Verdict::Drop(DropReason::VsidUnknown) };
        if m.ethertype == ARP {
            return self.answer_arp(t, p, m);
        }
        if m.ethertype == IPV6 && m.proto == 58 {
            if let Some(v) = self.neighbor_discovery(t, p, m) {
                return v;
            }
        }
        let dst = dst_mac(p.data());
        if EthernetAddress(dst).is_multicast() {
            return Verdict::Flood;
        }
        let local_only = on_link_only(m);
        if dst == vs.gw_mac {
            if local_only {
                return Verdict::Drop(DropReason::LinkLocalOffLink);
            }
            return self.route(t, p, m, vs.rd);
        }
        let rec = match m.ethertype {
            IPV4 | IPV6 => t.by_ca(m.vsid, m.dst).or_else(|| t.by_mac(m.vsid, dst).filter(|d| d.l2_only)),
            _ => t.by_mac(m.vsid, dst),
        };
        match rec {
            None => Verdict::Drop(DropReason::NoRecord),
            Some(d) => {
                m.dst_slot = d.slot;
                if d.mac != dst {
                    Verdict::Drop(DropReason::DstMacMismatch)
                } else if local_only && matches!(d.to, Delivery::Encap(_)) {
                    Verdict::Drop(DropReason::LinkLocalOffLink)
                } else {
                    deliver_to(d)
                }
            }
        }
    }

    fn answer_arp<B: PacketBuf>(&mut self, t: &Tables, p: &mut B, m: &Meta) -> Verdict {
        let Some(vs) = t.vsid(m.vsid) else { return Verdict::Drop(DropReason::VsidUnknown) };
        let data = p.data();
        // Ethernet(14) + ARP: op at 6..8, target protocol address at 24..28.
        let (Some(op), Some(tpa)) = (data.get(20..22), data.get(38..42)) else { return Verdict::Drop(DropReason::Malformed) };
        if op != [0, 1] {
            return Verdict::Drop(DropReason::ArpNotRequest);
        }
        let target = std::net::Ipv4Addr::new(tpa[0], tpa[1], tpa[2], tpa[3]);
        let answer = if vs.gw_v4 == Some(target) {
            vs.gw_mac
        } else {
            match t.by_ca(m.vsid, IpAddr::V4(target)) {
                Some(d) => d.mac,
                None => return Verdict::Drop(DropReason::ArpNoRecord),
            }
        };
        // An ARP probe (sender 0.0.0.0) for the asker's own address: a reply would be a conflict.
        if data.get(28..32) == Some(&[0, 0, 0, 0][..]) && data.get(6..12) == Some(&answer[..]) {
            return Verdict::Drop(DropReason::DadOwnAddress);
        }
        match hnv_wire::arp::make_reply_frame_in_place(p.data_mut(), EthernetAddress(answer)) {
            Ok(()) => {
                self.answered += 1;
                Verdict::Port(m.in_port)
            }
            Err(_) => Verdict::Drop(DropReason::Malformed),
        }
    }

    /// `None` for ICMPv6 that is not neighbor discovery, or that follows
    /// extension headers (e.g. MLD behind Hop-by-Hop): forwarded as any IP.
    fn neighbor_discovery<B: PacketBuf>(&mut self, t: &Tables, p: &mut B, m: &Meta) -> Option<Verdict> {
        if p.data().get(20) != Some(&58) {
            return None;
        }
        let icmp_type = *p.data().get(54)?;
        match icmp_type {
            135 => {}
            130..=134 | 136 | 137 | 143 => return Some(Verdict::Drop(DropReason::NdUnhandled)),
            _ => return None,
        }
        let vs = t.vsid(m.vsid)?;
        let tgt: [u8; 16] = p.data().get(62..78)?.try_into().ok()?;
        let target = std::net::Ipv6Addr::from(tgt);
        let answer = if vs.gw_v6 == Some(target) {
            vs.gw_mac
        } else {
            match t.by_ca(m.vsid, IpAddr::V6(target)) {
                Some(d) => d.mac,
                None => return Some(Verdict::Drop(DropReason::NdNoRecord)),
            }
        };
        // Duplicate address detection (source ::) for the asker's own address: an advert would fail its DAD.
        if m.src.is_unspecified() && p.data().get(6..12) == Some(&answer[..]) {
            return Some(Verdict::Drop(DropReason::DadOwnAddress));
        }
        let need = hnv_wire::ndisc::ADVERT_FRAME_LEN;
        if p.len() < need && p.append(need - p.len()).is_none() {
            return Some(Verdict::Drop(DropReason::NoHeadroom));
        }
        Some(match hnv_wire::ndisc::answer_solicit_frame_in_place(p.data_mut(), EthernetAddress(answer)) {
            Ok(n) => {
                let extra = p.len().saturating_sub(n);
                p.trim(extra);
                self.answered += 1;
                Verdict::Port(m.in_port)
            }
            Err(_) => Verdict::Drop(DropReason::Malformed),
        })
    }

    /// The distributed router: within the routing domain `rd` of the source VSID.
    fn route<B: PacketBuf>(&mut self, t: &Tables, p: &mut B, m: &mut Meta, rd: u16) -> Verdict {
        if m.ethertype != IPV4 && m.ethertype != IPV6 {
            return Verdict::Drop(DropReason::RoutedNonIp);
        }
        let dest = match t.route(rd, m.dst) {
            Some(r) => t.by_ca(r.vsid, r.next_hop.unwrap_or(m.dst)),
            None => t.wildcard(m.vsid),
        };
        let Some(d) = dest else { return Verdict::Drop(DropReason::NoRoute) };
        let Some(dvs) = t.vsid(d.vsid) else { return Verdict::Drop(DropReason::NoRoute) };
        let data = p.data_mut();
        let Some(l3) = data.get_mut(14..) else { return Verdict::Drop(DropReason::Malformed) };
        if m.ethertype == IPV4 {
            let Ok(mut ip) = Ipv4Packet::new_checked(l3) else { return Verdict::Drop(DropReason::Malformed) };
            if ip.hop_limit() <= 1 {
                return Verdict::Drop(DropReason::TtlExpired);
            }
            ip.decrement_ttl_incremental();
        } else {
            let Ok(mut ip) = Ipv6Packet::new_checked(l3) else { return Verdict::Drop(DropReason::Malformed) };
            let hl = ip.hop_limit();
            if hl <= 1 {
                return Verdict::Drop(DropReason::TtlExpired);
            }
            ip.set_hop_limit(hl - 1);
        }
        data[0..6].copy_from_slice(&d.mac);
        data[6..12].copy_from_slice(&dvs.gw_mac);
        m.vsid = d.vsid;
        m.vsid_slot = d.vsid_slot;
        m.dst_slot = d.slot;
        m.routed = true;
        self.routed += 1;
        deliver_to(d)
    }
}
