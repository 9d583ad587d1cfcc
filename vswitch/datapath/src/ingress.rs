//! Ingress: parse, assign the VSID, check the sender, and decapsulate.
//!
//! - From a VM port: the frame takes the port's VSID; its source MAC must be
//!   the port's and its source CA one of the port's addresses (IPv6
//!   link-local and `::` are allowed for neighbor discovery). 802.1Q-tagged
//!   frames are dropped: VM ports are access ports.
//! - From an uplink: provider ARP for a local PA is answered in place (and its
//!   sender offered to the neighbor learner); NVGRE to a local PA is
//!   validated in one pass (GRE flags/version/protocol, VSID range and
//!   presence on this host, no inner 802.1Q tag, the inner source's lookup
//!   record naming the outer source PA) and the outer headers removed. An
//!   MS-NVGREE REDIRECT/UNREACHABLE addressed to a local PA's MAC is handed
//!   to the control side as a [`Hint`] and consumed.
//!
//! Never panics, never allocates; every rejection is a [`DropReason`].

use crate::drop::DropReason;
use crate::meta::{Meta, Verdict};
use crate::tables::{Role, Tables};
use hnv_wire::nvgree::ControlRepr;
use hnv_wire::{ArpOperation, ArpPacket, EtherType, EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet, Ipv6Packet, VlanPacket};
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

/// Fill the L3/L4 fields of `meta` from an Ethernet payload.
pub fn parse_l3(ethertype: EtherType, l3: &[u8], meta: &mut Meta) -> Result<(), DropReason> {
    meta.ethertype = u16::from(ethertype);
    let (proto, l4) = match ethertype {
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(l3).map_err(|_| DropReason::Malformed)?;
            meta.src = IpAddr::V4(ip.src_addr());
            meta.dst = IpAddr::V4(ip.dst_addr());
            let proto = u8::from(ip.next_header());
            // Only the first fragment carries ports.
            (proto, if ip.frag_offset() == 0 { ip.payload() } else { &[][..] })
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(l3).map_err(|_| DropReason::Malformed)?;
            meta.src = IpAddr::V6(ip.src_addr());
            meta.dst = IpAddr::V6(ip.dst_addr());
            (u8::from(ip.next_header()), ip.payload())
        }
        _ => return Ok(()),
    };
    meta.proto = proto;
    if (proto == 6 || proto == 17) && l4.len() >= 4 {
        meta.sport = u16::from_be_bytes([l4[0], l4[1]]);
        meta.dport = u16::from_be_bytes([l4[2], l4[3]]);
    }
    Ok(())
}

fn is_link_local_or_unspecified(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(a) => a.is_unspecified() || (a.segments()[0] & 0xffc0) == 0xfe80,
        IpAddr::V4(a) => a.is_unspecified(),
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
            let spa = IpAddr::V4(arp.source_protocol_addr());
            if !port.addresses.contains(&spa) && !is_link_local_or_unspecified(spa) {
                return Err(DropReason::SpoofedIp);
            }
            return Ok(());
        }
        _ => {}
    }
    parse_l3(ethertype, eth.payload(), meta)?;
    if matches!(ethertype, EtherType::Ipv4 | EtherType::Ipv6) && !port.addresses.contains(&meta.src) && !is_link_local_or_unspecified(meta.src) {
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
    let (outer_src, outer_dst, gre) = match ethertype {
        EtherType::Arp => return provider_arp(t, in_port, pkt, l3_off, &mut |l| hint(Hint::Neighbor(l))),
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(l3).map_err(|_| DropReason::Malformed)?;
            if ip.next_header() != IpProtocol::Gre || t.local_pa(IpAddr::V4(ip.dst_addr())).is_none() {
                return Err(DropReason::UplinkNotForUs);
            }
            if ip.frag_offset() != 0 || ip.more_frags() {
                return Err(DropReason::Malformed);
            }
            (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()), l3_off + usize::from(ip.header_len()))
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(l3).map_err(|_| DropReason::Malformed)?;
            if ip.next_header() != IpProtocol::Gre || t.local_pa(IpAddr::V6(ip.dst_addr())).is_none() {
                return Err(DropReason::UplinkNotForUs);
            }
            (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()), l3_off + 40)
        }
        _ => return Err(DropReason::UplinkNotForUs),
    };
    // The IP views bounded the payload by the IP length; an Ethernet pad may follow.
    let ip_end = l3_off
        + match ethertype {
            EtherType::Ipv4 => Ipv4Packet::new_unchecked(l3).total_len() as usize,
            _ => 40 + Ipv6Packet::new_unchecked(l3).payload_len() as usize,
        };
    let gre_bytes = data.get(gre..ip_end).ok_or(DropReason::Malformed)?;
    let (nv, inner) = hnv_wire::nvgre::split(gre_bytes).map_err(|e| match e {
        hnv_wire::Error::GreFlags => DropReason::GreFlags,
        hnv_wire::Error::GreVersion => DropReason::GreVersion,
        hnv_wire::Error::GreProtocol => DropReason::GreProtocol,
        hnv_wire::Error::VsidReserved => DropReason::VsidReserved,
        _ => DropReason::Malformed,
    })?;
    let vsid = nv.vsid.get();
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
    parse_l3(iethertype, ieth.payload(), meta)?;
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
    let outer_len = gre + hnv_wire::nvgre::HEADER_LEN;
    let trailer = pkt.len() - outer_len - inner_len;
    if !pkt.adj(outer_len) || !pkt.trim(trailer) {
        return Err(DropReason::Malformed);
    }
    Ok(Verdict::Continue)
}

/// Answer ARP requests for a local PA in place; offer senders to the learner.
fn provider_arp<B: PacketBuf>(t: &Tables, in_port: u16, pkt: &mut B, l3_off: usize, learn: &mut dyn FnMut(Learned)) -> Result<Verdict, DropReason> {
    let data = pkt.data();
    let arp = ArpPacket::new_checked(data.get(l3_off..).ok_or(DropReason::Malformed)?).map_err(|_| DropReason::Malformed)?;
    let sender = (IpAddr::V4(arp.source_protocol_addr()), arp.source_hardware_addr().0);
    let target = IpAddr::V4(arp.target_protocol_addr());
    let op = arp.operation();
    if !sender.0.is_unspecified() && EthernetAddress(sender.1).is_unicast() {
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
