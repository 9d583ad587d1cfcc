//! Ingress: parse, assign the VSID, check the sender, and decapsulate.
//!
//! - From a VM port: the frame takes the port's VSID; its source MAC must be
//!   the port's and its source CA one of the port's addresses, with three
//!   narrow exemptions ([`SpoofedIp`](DropReason::SpoofedIp) otherwise):
//!   `0.0.0.0` only for DHCP (UDP 68 → 67) and ARP probes; `::` only for
//!   neighbor solicitations and MLD reports (duplicate address detection);
//!   an IPv6 link-local source only when it is the VM's own (the EUI-64
//!   address of its MAC, or listed). The forwarder keeps such sources on the
//!   host. 802.1Q-tagged frames are dropped: VM ports are access ports.
//! - From an uplink: provider ARP for a local PA is answered in place (and its
//!   sender, when the Ethernet source agrees, offered to the neighbor
//!   resolver, [`crate::neighbor`]); provider IPv6 neighbor discovery likewise
//!   ([`provider_nd`]: advertisements feed the resolver, solicitations for a
//!   local PA are answered); NVGRE and VXLAN are checked in this order: GRE, or UDP to
//!   the policy's VXLAN port, to a local PA
//!   ([`UplinkNotForUs`](DropReason::UplinkNotForUs)), outer IPv4 header
//!   checksum ([`OuterChecksum`](DropReason::OuterChecksum)), not a fragment
//!   ([`Malformed`](DropReason::Malformed)), outer source not a local PA
//!   ([`OuterSrcLocal`](DropReason::OuterSrcLocal)), outer destination MAC
//!   the MAC of that local PA ([`OuterDstMac`](DropReason::OuterDstMac):
//!   the uplink is promiscuous, so flooded unicast for other hosts arrives
//!   too); for VXLAN over IPv6 a non-zero, valid UDP checksum
//!   ([`UdpChecksum`](DropReason::UdpChecksum)); then, in one pass, GRE
//!   flags/version/protocol or VXLAN flags
//!   ([`VxlanFlags`](DropReason::VxlanFlags)), VSID (VNI) range and
//!   presence on this host, no inner 802.1Q tag, the inner source's lookup
//!   record naming the outer source PA, and the outer headers are removed.
//!   A host accepts both encapsulations whatever its subnets' `encap` says
//!   (the checks are the same), so a subnet switched from one to the other
//!   keeps flowing while the hosts' policies change one by one.
//!   An MS-NVGREE REDIRECT/UNREACHABLE addressed to a local PA's MAC is
//!   handed to the control side as a [`Hint`] and consumed.
//! - L3 parsing ([`parse_l3`]) walks up to [`MAX_EXT_HEADERS`] IPv6
//!   extension headers (Hop-by-Hop, Routing, Fragment, Destination Options,
//!   AH) to the transport protocol; a longer or truncated chain is
//!   [`Ipv6ExtHeaders`](DropReason::Ipv6ExtHeaders). Non-first fragments
//!   (IPv4 or IPv6) carry no ports: [`Meta::ports_unknown`] is set for the ACL.
//!
//! Never panics, never allocates; every rejection is a [`DropReason`].

use crate::drop::DropReason;
use crate::meta::{Meta, Verdict};
use crate::tables::{Role, Tables};
use hnv_wire::nvgree::ControlRepr;
use hnv_wire::{ArpOperation, ArpPacket, EtherType, EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet, UdpPacket, VlanPacket};
use pmd::PacketBuf;
use std::net::IpAddr;

/// A provider-network (IP, MAC) pair seen on an uplink, for the neighbor learner.
pub type Learned = (IpAddr, [u8; 6]);

/// What uplink ingress tells the control side (through [`crate::PolicyStore`]'s queues).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// A provider neighbor seen in ARP.
    Neighbor(Learned),
    /// An MS-NVGREE control message for this host, received in `vsid`.
    Control {
        /// The VSID it arrived in.
        vsid: u32,
        /// The message.
        msg: ControlRepr,
    },
}

/// IPv6 extension headers [`parse_l3`] walks before giving up.
pub const MAX_EXT_HEADERS: usize = 8;

/// Walk the IPv6 extension headers that start at `rest` (the first one of
/// type `next`): the transport protocol, its header (empty for a non-first
/// fragment), and whether this is a non-first fragment.
fn walk_ipv6(mut next: u8, mut rest: &[u8]) -> Result<(u8, &[u8], bool), DropReason> {
    let mut later_fragment = false;
    for _ in 0..MAX_EXT_HEADERS {
        let len = match next {
            // Hop-by-Hop, Routing, Destination Options: length in 8-octet units after the first 8.
            0 | 43 | 60 => rest.get(1).map(|&l| (usize::from(l) + 1) * 8),
            // Fragment: fixed 8 octets; offset in the top 13 bits of bytes 2..4.
            44 => {
                if let Some(h) = rest.get(2..4) {
                    later_fragment |= u16::from_be_bytes([h[0], h[1]]) >> 3 != 0;
                }
                Some(8)
            }
            // Authentication Header: length in 4-octet units, minus 2.
            51 => rest.get(1).map(|&l| (usize::from(l) + 2) * 4),
            _ => return Ok((next, rest, later_fragment)),
        };
        let (Some(len), Some(&n)) = (len, rest.first()) else { return Err(DropReason::Ipv6ExtHeaders) };
        rest = rest.get(len..).ok_or(DropReason::Ipv6ExtHeaders)?;
        next = n;
        if later_fragment {
            // What follows a non-first fragment header is payload, not headers.
            return Ok((next, &[], true));
        }
    }
    match next {
        0 | 43 | 44 | 51 | 60 => Err(DropReason::Ipv6ExtHeaders),
        _ => Ok((next, rest, later_fragment)),
    }
}

/// Fill the L3/L4 fields of `meta` from an Ethernet payload; the ICMP or
/// ICMPv6 type when the packet carries an ICMP header.
pub fn parse_l3(ethertype: EtherType, l3: &[u8], meta: &mut Meta) -> Result<Option<u8>, DropReason> {
    meta.ethertype = u16::from(ethertype);
    let (proto, l4, later_fragment) = match ethertype {
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(l3).map_err(|_| DropReason::Malformed)?;
            meta.src = IpAddr::V4(ip.src_addr());
            meta.dst = IpAddr::V4(ip.dst_addr());
            let proto = u8::from(ip.next_header());
            // Only the first fragment carries ports.
            if ip.frag_offset() == 0 {
                (proto, ip.payload(), false)
            } else {
                (proto, &[][..], true)
            }
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(l3).map_err(|_| DropReason::Malformed)?;
            meta.src = IpAddr::V6(ip.src_addr());
            meta.dst = IpAddr::V6(ip.dst_addr());
            walk_ipv6(u8::from(ip.next_header()), ip.payload())?
        }
        _ => return Ok(None),
    };
    meta.proto = proto;
    if proto == 6 || proto == 17 {
        match l4.get(..4) {
            Some(p) if !later_fragment => {
                meta.sport = u16::from_be_bytes([p[0], p[1]]);
                meta.dport = u16::from_be_bytes([p[2], p[3]]);
            }
            _ => meta.ports_unknown = true,
        }
    }
    Ok(if (proto == 1 || proto == 58) && !later_fragment { l4.first().copied() } else { None })
}

fn is_link_local_or_unspecified(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(a) => a.is_unspecified() || (a.segments()[0] & 0xffc0) == 0xfe80,
        IpAddr::V4(a) => a.is_unspecified(),
    }
}

/// The IPv6 link-local address a VM forms from its MAC (modified EUI-64).
fn eui64_link_local(mac: [u8; 6]) -> std::net::Ipv6Addr {
    std::net::Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, mac[0] ^ 2, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]])
}

/// Whether a VM whose MAC is `mac` may send IP from `meta.src` though it is
/// not one of its addresses: DHCP from 0.0.0.0, DAD from `::`, its own link-local.
fn exempt_source(mac: [u8; 6], meta: &Meta, icmp_type: Option<u8>) -> bool {
    match meta.src {
        IpAddr::V4(a) => a.is_unspecified() && meta.proto == 17 && !meta.ports_unknown && meta.sport == 68 && meta.dport == 67,
        // Neighbor solicitation (135), MLDv1/v2 report (131, 143).
        IpAddr::V6(a) if a.is_unspecified() => meta.proto == 58 && matches!(icmp_type, Some(131 | 135 | 143)),
        IpAddr::V6(a) => a == eui64_link_local(mac),
    }
}

/// Ingress from a VM port.
pub fn from_vm<B: PacketBuf>(t: &Tables, in_port: u16, pkt: &B, meta: &mut Meta) -> Verdict {
    match vm(t, in_port, pkt, meta) {
        Ok(()) => Verdict::Continue,
        Err(r) => Verdict::Drop(r),
    }
}

fn vm<B: PacketBuf>(t: &Tables, in_port: u16, pkt: &B, meta: &mut Meta) -> Result<(), DropReason> {
    let port = t.port(in_port).ok_or(DropReason::UnknownPort)?;
    meta.in_port = in_port;
    meta.vsid = port.vsid;
    meta.vsid_slot = port.vsid_slot;
    if !pkt.is_contiguous() {
        return Err(DropReason::MultiSegment);
    }
    let eth = EthernetFrame::new_checked(pkt.data()).map_err(|_| DropReason::Malformed)?;
    if eth.src_addr().0 != port.mac {
        return Err(DropReason::SpoofedMac);
    }
    let ethertype = eth.ethertype();
    match ethertype {
        EtherType::Vlan | EtherType::QinQ => return Err(DropReason::VmVlanTagged),
        EtherType::Arp => {
            meta.ethertype = u16::from(ethertype);
            let arp = ArpPacket::new_checked(eth.payload()).map_err(|_| DropReason::Malformed)?;
            if arp.source_hardware_addr().0 != port.mac {
                return Err(DropReason::SpoofedMac);
            }
            // Its own addresses, or 0.0.0.0 (an ARP probe).
            let spa = IpAddr::V4(arp.source_protocol_addr());
            if !port.addresses.contains(&spa) && !spa.is_unspecified() {
                return Err(DropReason::SpoofedIp);
            }
            return Ok(());
        }
        _ => {}
    }
    let icmp_type = parse_l3(ethertype, eth.payload(), meta)?;
    if matches!(ethertype, EtherType::Ipv4 | EtherType::Ipv6) && !port.addresses.contains(&meta.src) && !exempt_source(port.mac, meta, icmp_type) {
        return Err(DropReason::SpoofedIp);
    }
    Ok(())
}

/// Ingress from an uplink: answers provider ARP, decapsulates NVGRE.
pub fn from_uplink<B: PacketBuf>(t: &Tables, in_port: u16, pkt: &mut B, meta: &mut Meta, hint: &mut dyn FnMut(Hint)) -> Verdict {
    meta.in_port = in_port;
    meta.from_uplink = true;
    match uplink(t, in_port, pkt, meta, hint) {
        Ok(v) => v,
        Err(r) => Verdict::Drop(r),
    }
}

fn uplink<B: PacketBuf>(t: &Tables, in_port: u16, pkt: &mut B, meta: &mut Meta, hint: &mut dyn FnMut(Hint)) -> Result<Verdict, DropReason> {
    if t.port(in_port).map(|p| p.role) != Some(Role::Uplink) {
        return Err(DropReason::UnknownPort);
    }
    if !pkt.is_contiguous() {
        return Err(DropReason::MultiSegment);
    }
    let data = pkt.data();
    let eth = EthernetFrame::new_checked(data).map_err(|_| DropReason::Malformed)?;
    let (mut ethertype, mut l3_off) = (eth.ethertype(), 14usize);
    if ethertype == EtherType::Vlan {
        let tag = VlanPacket::new_checked(eth.payload()).map_err(|_| DropReason::Malformed)?;
        ethertype = tag.ethertype();
        l3_off = 18;
    }
    let l3 = data.get(l3_off..).ok_or(DropReason::Malformed)?;
    // Only GRE, and UDP to the VXLAN port, to a local PA are for us.
    let vxlan_port = t.vxlan_port;
    let ours = |proto: IpProtocol, l4: &[u8], dst: IpAddr| match proto {
        IpProtocol::Gre => t.local_pa(dst).is_some(),
        IpProtocol::Udp => l4.get(2..4).is_some_and(|p| u16::from_be_bytes([p[0], p[1]]) == vxlan_port) && t.local_pa(dst).is_some(),
        _ => false,
    };
    let (outer_src, outer_dst, l4_off, vxlan) = match ethertype {
        EtherType::Arp => return provider_arp(t, in_port, pkt, l3_off, &mut |l| hint(Hint::Neighbor(l))),
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(l3).map_err(|_| DropReason::Malformed)?;
            if !ours(ip.next_header(), ip.payload(), IpAddr::V4(ip.dst_addr())) {
                return Err(DropReason::UplinkNotForUs);
            }
            if !ip.verify_checksum() {
                return Err(DropReason::OuterChecksum);
            }
            if ip.frag_offset() != 0 || ip.more_frags() {
                return Err(DropReason::Malformed);
            }
            (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()), l3_off + usize::from(ip.header_len()), ip.next_header() == IpProtocol::Udp)
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(l3).map_err(|_| DropReason::Malformed)?;
            if !ours(ip.next_header(), ip.payload(), IpAddr::V6(ip.dst_addr())) {
                if ip.next_header() == IpProtocol::Ipv6Icmp && matches!(ip.payload().first(), Some(135 | 136)) {
                    return provider_nd(t, in_port, pkt, l3_off, &mut |l| hint(Hint::Neighbor(l)));
                }
                return Err(DropReason::UplinkNotForUs);
            }
            (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()), l3_off + 40, ip.next_header() == IpProtocol::Udp)
        }
        _ => return Err(DropReason::UplinkNotForUs),
    };
    if t.local_pa(outer_src).is_some() {
        return Err(DropReason::OuterSrcLocal);
    }
    // The local PA's own MAC only: not flooded unicast for another host, not broadcast.
    if t.local_pa(outer_dst).map(|pa| pa.mac) != Some(eth.dst_addr().0) {
        return Err(DropReason::OuterDstMac);
    }
    // The IP views bounded the payload by the IP length; an Ethernet pad may follow.
    let ip_end = l3_off
        + match ethertype {
            EtherType::Ipv4 => Ipv4Packet::new_unchecked(l3).total_len() as usize,
            _ => 40 + Ipv6Packet::new_unchecked(l3).payload_len() as usize,
        };
    let l4 = data.get(l4_off..ip_end).ok_or(DropReason::Malformed)?;
    let (vsid, inner, encap_len) = if vxlan {
        let udp = UdpPacket::new_checked(l4).map_err(|_| DropReason::Malformed)?;
        // Over IPv6 the checksum is required (RFC 8200 §8.1); over IPv4 it is 0
        // (RFC 7348 §5) or, if set, not verified (the RFC's MAY: the inner frame
        // carries its own checksums).
        if let (IpAddr::V6(s), IpAddr::V6(d)) = (outer_src, outer_dst) {
            if udp.checksum() == 0 || !udp.verify_checksum_v6(&s, &d) {
                return Err(DropReason::UdpChecksum);
            }
        }
        let payload = l4.get(8..usize::from(udp.len())).ok_or(DropReason::Malformed)?;
        let (vx, inner) = hnv_wire::vxlan::split(payload).map_err(|e| match e {
            hnv_wire::Error::VxlanFlags => DropReason::VxlanFlags,
            hnv_wire::Error::VsidReserved => DropReason::VsidReserved,
            _ => DropReason::Malformed,
        })?;
        (vx.vsid.get(), inner, 8 + hnv_wire::vxlan::HEADER_LEN)
    } else {
        let (nv, inner) = hnv_wire::nvgre::split(l4).map_err(|e| match e {
            hnv_wire::Error::GreFlags => DropReason::GreFlags,
            hnv_wire::Error::GreVersion => DropReason::GreVersion,
            hnv_wire::Error::GreProtocol => DropReason::GreProtocol,
            hnv_wire::Error::VsidReserved => DropReason::VsidReserved,
            _ => DropReason::Malformed,
        })?;
        (nv.vsid.get(), inner, hnv_wire::nvgre::HEADER_LEN)
    };
    let entry = t.vsid(vsid).filter(|e| !e.local_ports.is_empty()).ok_or(DropReason::VsidUnknown)?;
    meta.vsid = vsid;
    meta.vsid_slot = entry.slot;
    meta.outer_src = outer_src;
    let ieth = EthernetFrame::new_checked(inner).map_err(|_| DropReason::Malformed)?;
    let iethertype = ieth.ethertype();
    if matches!(iethertype, EtherType::Vlan | EtherType::QinQ) {
        return Err(DropReason::InnerVlanTagged);
    }
    if iethertype == EtherType::Ipv4 && t.local_pa(outer_dst).is_some_and(|pa| pa.mac == ieth.dst_addr().0) {
        // Addressed to this host's PA MAC, not to a VM: an MS-NVGREE control message?
        if let Ok(msg) = ControlRepr::parse(inner) {
            if IpAddr::V4(msg.from_pa) == outer_src && IpAddr::V4(msg.to_pa) == outer_dst {
                hint(Hint::Control { vsid, msg });
                return Err(DropReason::NvgreControl);
            }
        }
    }
    let _ = parse_l3(iethertype, ieth.payload(), meta)?;
    // Provider-side anti-spoofing: the inner source must live at the outer source PA.
    let src_rec = match iethertype {
        EtherType::Ipv4 | EtherType::Ipv6 if !is_link_local_or_unspecified(meta.src) => t.source_record(vsid, meta.src),
        _ => t.by_mac(vsid, ieth.src_addr().0),
    };
    match src_rec {
        None => return Err(DropReason::UnknownSourceCa),
        Some(d) => {
            meta.src_slot = d.slot;
            if d.pa != outer_src {
                return Err(DropReason::PaCaMismatch);
            }
        }
    }
    let inner_len = inner.len();
    let outer_len = l4_off + encap_len;
    let trailer = pkt.len() - outer_len - inner_len;
    if !pkt.adj(outer_len) || !pkt.trim(trailer) {
        return Err(DropReason::Malformed);
    }
    meta.outer_len = outer_len.min(usize::from(u8::MAX)) as u8;
    Ok(Verdict::Continue)
}

/// Answer ARP requests for a local PA in place; offer senders to the learner.
fn provider_arp<B: PacketBuf>(t: &Tables, in_port: u16, pkt: &mut B, l3_off: usize, learn: &mut dyn FnMut(Learned)) -> Result<Verdict, DropReason> {
    let data = pkt.data();
    let arp = ArpPacket::new_checked(data.get(l3_off..).ok_or(DropReason::Malformed)?).map_err(|_| DropReason::Malformed)?;
    let sender = (IpAddr::V4(arp.source_protocol_addr()), arp.source_hardware_addr().0);
    let target = IpAddr::V4(arp.target_protocol_addr());
    let op = arp.operation();
    // Offered only when the Ethernet source agrees; the control side learns
    // only addresses the policy uses (see `PolicyStore::apply_learned`).
    if !sender.0.is_unspecified() && EthernetAddress(sender.1).is_unicast() && data.get(6..12) == Some(&sender.1[..]) {
        learn(sender);
    }
    let Some(pa) = t.local_pa(target).copied() else { return Err(DropReason::ProviderArpIgnored) };
    if op != ArpOperation::Request || pa.uplink != in_port {
        return Err(DropReason::ProviderArpIgnored);
    }
    let frame = pkt.data_mut();
    if l3_off == 14 {
        hnv_wire::arp::make_reply_frame_in_place(frame, EthernetAddress(pa.mac)).map_err(|_| DropReason::Malformed)?;
    } else {
        // Tagged: answer on the same VLAN.
        let (head, body) = frame.split_at_mut(l3_off);
        let mut a = ArpPacket::new_checked(body).map_err(|_| DropReason::Malformed)?;
        hnv_wire::arp::make_reply_in_place(&mut a, EthernetAddress(pa.mac));
        let requester: [u8; 6] = [head[6], head[7], head[8], head[9], head[10], head[11]];
        head[0..6].copy_from_slice(&requester);
        head[6..12].copy_from_slice(&pa.mac);
    }
    Ok(Verdict::Port(in_port))
}

/// Provider IPv6 neighbor discovery (RFC 4861), the counterpart of
/// [`provider_arp`]. Checks, in order: hop limit 255 and a valid ICMPv6
/// checksum ([`DropReason::ProviderNd`] otherwise); a neighbor
/// advertisement's target and Target Link-Layer Address, or a
/// solicitation's source and Source Link-Layer Address, is offered to the
/// resolver when the Ethernet source agrees and the MAC is unicast; an
/// untagged solicitation for a local PA on this uplink is answered in place
/// (S=1, O=1, from the PA's MAC); everything else is consumed as
/// [`DropReason::ProviderNd`].
fn provider_nd<B: PacketBuf>(t: &Tables, in_port: u16, pkt: &mut B, l3_off: usize, learn: &mut dyn FnMut(Learned)) -> Result<Verdict, DropReason> {
    use hnv_wire::ndisc::Repr as Nd;
    let data = pkt.data();
    let ip = Ipv6Packet::new_checked(data.get(l3_off..).ok_or(DropReason::Malformed)?).map_err(|_| DropReason::Malformed)?;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let icmp = hnv_wire::Icmpv6Packet::new_checked(ip.payload()).map_err(|_| DropReason::Malformed)?;
    if ip.hop_limit() != 255 || !icmp.verify_checksum(&src, &dst) {
        return Err(DropReason::ProviderNd);
    }
    let eth_src = data.get(6..12);
    let offer = |ip: std::net::Ipv6Addr, mac: EthernetAddress, learn: &mut dyn FnMut(Learned)| {
        if !ip.is_unspecified() && !ip.is_multicast() && mac.is_unicast() && eth_src == Some(&mac.0[..]) {
            learn((IpAddr::V6(ip), mac.0));
        }
    };
    match Nd::parse(&icmp).map_err(|_| DropReason::ProviderNd)? {
        Nd::NeighborAdvert { target_addr, lladdr: Some(mac), .. } => {
            offer(target_addr, mac, learn);
            Err(DropReason::ProviderNd)
        }
        Nd::NeighborSolicit { target_addr, lladdr } => {
            if let Some(mac) = lladdr {
                offer(src, mac, learn);
            }
            let pa = t.local_pa(IpAddr::V6(target_addr)).copied().filter(|pa| pa.uplink == in_port).ok_or(DropReason::ProviderNd)?;
            if l3_off != 14 {
                return Err(DropReason::ProviderNd);
            }
            let need = hnv_wire::ndisc::ADVERT_FRAME_LEN;
            if pkt.len() < need && pkt.append(need - pkt.len()).is_none() {
                return Err(DropReason::NoHeadroom);
            }
            let n = hnv_wire::ndisc::answer_solicit_frame_in_place(pkt.data_mut(), EthernetAddress(pa.mac)).map_err(|_| DropReason::ProviderNd)?;
            let extra = pkt.len().saturating_sub(n);
            pkt.trim(extra);
            Ok(Verdict::Port(in_port))
        }
        Nd::NeighborAdvert { .. } => Err(DropReason::ProviderNd),
    }
}
