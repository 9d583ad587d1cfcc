//! NVGRE and VXLAN encapsulation from a precompiled outer header, and the FlowID.
//!
//! [`encap`] prepends a remote PA's [`EncapTemplate`] (one per PA and
//! encapsulation) and patches the fields that vary per packet. NVGRE: the
//! outer length, the outer IPv4 header checksum (incrementally, from the
//! template's precomputed partial sum) and the GRE key (VSID and FlowID).
//! VXLAN: the same outer length and checksum, the VNI, the UDP length and
//! the UDP source port ([`hnv_wire::vxlan::src_port`] of the FlowID: the
//! same per-flow entropy); the UDP checksum stays 0 over IPv4 (RFC 7348 §5)
//! and is computed over the whole datagram over IPv6 (RFC 8200 §8.1: the
//! Linux kernel's `vxlan` drops zero-checksum IPv6 unless `udp6zerocsumrx`
//! is set, RFC 6935/6936). Checks, in order: the inner frame fits the
//! uplink MTU ([`DropReason::EncapTooBig`]); the buffer has headroom for the
//! outer header ([`DropReason::NoHeadroom`]). Never panics, never allocates.

use crate::drop::DropReason;
use crate::meta::Meta;
use crate::tables::EncapTemplate;
use hnv_wire::checksum;
use pmd::PacketBuf;
use std::net::IpAddr;

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

/// Prepend `tpl` to `pkt` and patch the lengths, the IPv4 checksum and the
/// GRE key (NVGRE), or the lengths, the IPv4 or UDP checksum, the VNI and the
/// UDP source port (VXLAN). `key` is VSID << 8 | FlowID.
#[inline(always)]
pub fn encap<B: PacketBuf>(pkt: &mut B, tpl: &EncapTemplate, key: u32) -> Result<(), DropReason> {
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
        h[38..42].copy_from_slice(&key.to_be_bytes());
        return Ok(());
    }
    // VXLAN templates are at least 50 bytes long: NVGRE's common case above pays nothing for them.
    if tpl.vxlan {
        vxlan_patch(data, tpl, inner, key);
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
    data[len - 4..len].copy_from_slice(&key.to_be_bytes());
    Ok(())
}

/// VXLAN: copy `tpl` into `data` (the frame with room for it prepended; the
/// inner frame is `inner` bytes) and patch the lengths, the IPv4 header
/// checksum or the IPv6 UDP checksum, and the UDP source port.
#[inline]
fn vxlan_patch(data: &mut [u8], tpl: &EncapTemplate, inner: usize, key: u32) {
    let len = usize::from(tpl.len);
    let (vni, flow_id) = ((key & 0xffff_ff00).to_be_bytes(), key as u8);
    if let (Some(h), true) = (data.get_mut(..50).and_then(|h| <&mut [u8; 50]>::try_from(h).ok()), len == 50) {
        // The common case, IPv4 without VLAN: fixed offsets, no library call.
        h.copy_from_slice(&tpl.bytes[..50]);
        h[46..50].copy_from_slice(&vni);
        let udp_len = (inner + 16) as u16;
        let total = udp_len + 20;
        let sum = u32::from(tpl.ip_sum) + u32::from(total);
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        h[16..18].copy_from_slice(&total.to_be_bytes());
        h[24..26].copy_from_slice(&sum.to_be_bytes());
        h[34..36].copy_from_slice(&hnv_wire::vxlan::src_port(flow_id).to_be_bytes());
        h[38..40].copy_from_slice(&udp_len.to_be_bytes());
        return;
    }
    let ip = usize::from(tpl.ip_off);
    let udp = tpl.udp_off();
    let Some(h) = data.get_mut(..len) else { return };
    h.copy_from_slice(&tpl.bytes[..len]);
    h[len - 4..len].copy_from_slice(&vni);
    let udp_len = (inner + 16) as u16;
    h[udp..udp + 2].copy_from_slice(&hnv_wire::vxlan::src_port(flow_id).to_be_bytes());
    h[udp + 4..udp + 6].copy_from_slice(&udp_len.to_be_bytes());
    if tpl.ipv6 {
        h[ip + 4..ip + 6].copy_from_slice(&udp_len.to_be_bytes());
        let (src, dst) = (v6(&h[ip + 8..ip + 24]), v6(&h[ip + 24..ip + 40]));
        if let Some(d) = data.get_mut(udp..) {
            hnv_wire::UdpPacket::new_unchecked(d).fill_checksum_v6(&src, &dst);
        }
    } else {
        let total = udp_len + 20;
        h[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        let sum = u32::from(tpl.ip_sum) + u32::from(total);
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        h[ip + 10..ip + 12].copy_from_slice(&sum.to_be_bytes());
    }
}

fn v6(b: &[u8]) -> std::net::Ipv6Addr {
    std::net::Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap_or_default())
}

/// Traffic forwarded for a VM that moved away keeps its original sender's PA
/// as outer source, so that the new host's PA/CA check accepts it (IPv4).
pub fn keep_outer_source<B: PacketBuf>(p: &mut B, tpl: &EncapTemplate, src: IpAddr) {
    let (IpAddr::V4(src), false) = (src, tpl.ipv6) else { return };
    let ip = usize::from(tpl.ip_off);
    if let Some(h) = p.data_mut().get_mut(ip..ip + 20) {
        h[12..16].copy_from_slice(&src.octets());
        h[10..12].fill(0);
        let sum = !checksum::data(h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{Delivery, Tables};
    use hnv_policy::example::BLUE_RED_HOST1;
    use pmd::HeapBuf;

    fn template(policy: &str, ca: &str) -> EncapTemplate {
        let p = hnv_policy::parse(policy, "t").unwrap();
        let t = Tables::compile(&p, &mut Default::default(), &[], 1);
        let Some(Delivery::Encap(id)) = t.by_ca(5001, ca.parse().unwrap()).map(|d| d.to) else { panic!("no template") };
        *t.template(id).unwrap()
    }

    fn vxlan_policy() -> String {
        BLUE_RED_HOST1.replacen("vsid = 5001\nrouting_domain", "vsid = 5001\nencap = \"vxlan\"\nrouting_domain", 1)
    }

    #[test]
    fn vxlan_over_ipv4_patches_lengths_checksum_and_source_port() {
        let tpl = template(&vxlan_policy(), "10.0.0.7");
        let inner = [0x5au8; 60];
        let mut b = HeapBuf::from_slice(&inner);
        encap(&mut b, &tpl, 5001 << 8 | 7).unwrap();
        let d = b.data();
        assert_eq!(d.len(), 110);
        let ip = hnv_wire::Ipv4Packet::new_checked(&d[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.total_len(), 96);
        let udp = hnv_wire::UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port(), udp.len(), udp.checksum()), (hnv_wire::vxlan::src_port(7), 4789, 76, 0));
        let (vx, rest) = hnv_wire::vxlan::split(&d[42..]).unwrap();
        assert_eq!(vx.vsid.get(), 5001);
        assert_eq!(rest, &inner[..]);
        let mut big = HeapBuf::from_slice(&[0u8; 1500 - 36 + 1]);
        assert_eq!(encap(&mut big, &tpl, 0), Err(DropReason::EncapTooBig));
    }

    #[test]
    fn vxlan_over_ipv6_computes_the_udp_checksum() {
        let p = vxlan_policy()
            .replacen("address = \"192.168.4.11\"\nprefix_len = 24", "address = \"fd00::11\"\nprefix_len = 64", 1)
            .replace("pa = \"192.168.4.22\"", "pa = \"fd00::22\"")
            .replace("pa = \"192.168.4.11\"", "pa = \"fd00::11\"")
            .replace("address = \"192.168.4.22\"", "address = \"fd00::22\"")
            .replace("[[host.provider_routes]]\ndestination = \"0.0.0.0/0\"\nnext_hop = \"192.168.4.1\"\nmetric = 10\n\n", "");
        let tpl = template(&p, "10.0.0.7");
        assert!(tpl.ipv6 && tpl.vxlan);
        assert_eq!(tpl.len, 70);
        let inner = [0x3cu8; 61];
        let mut b = HeapBuf::from_slice(&inner);
        encap(&mut b, &tpl, 5001 << 8 | 9).unwrap();
        let d = b.data();
        let ip = hnv_wire::Ipv6Packet::new_checked(&d[14..]).unwrap();
        assert_eq!(usize::from(ip.payload_len()), 16 + 61);
        let udp = hnv_wire::UdpPacket::new_checked(ip.payload()).unwrap();
        assert_ne!(udp.checksum(), 0);
        assert!(udp.verify_checksum_v6(&ip.src_addr(), &ip.dst_addr()));
        assert_eq!(udp.src_port(), hnv_wire::vxlan::src_port(9));
        assert_eq!(&d[70..], &inner[..]);
    }
}
