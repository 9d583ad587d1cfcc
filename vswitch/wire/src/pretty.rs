//! A one-line, tcpdump-like summary of a frame, for traces and tests.
//!
//! [`PrettyFrame`] walks Ethernet → 802.1Q (up to two tags) → ARP / IPv4 /
//! IPv6 → UDP / TCP / ICMP / ICMPv6 and GRE / NVGRE. For NVGRE it prints the
//! VSID and FlowID, then the inner frame, once: an NVGRE frame nested
//! inside the inner frame is not decoded again.
//!
//! Contract: formatting never panics and never allocates, whatever the
//! bytes. Every layer goes through `new_checked`; what cannot be parsed is
//! shown as `[truncated]` or `[malformed: <reason>]` and the walk stops
//! there. This makes it the single entry point the fuzz target uses to
//! drive every parser in the crate.

use core::fmt;

use crate::{
    ArpPacket, ArpRepr, Error, EtherType, EthernetFrame, GrePacket, Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv6Address, Ipv6Packet, NvgreRepr, TcpPacket,
    UdpPacket, VlanPacket, VxlanRepr,
};

/// Display adapter printing a one-line summary of an Ethernet frame.
#[derive(Debug, Clone, Copy)]
pub struct PrettyFrame<'a>(pub &'a [u8]);

impl fmt::Display for PrettyFrame<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        ethernet(f, self.0, 0)
    }
}

/// How many NVGRE layers are decoded.
const MAX_DEPTH: u8 = 1;

/// How many stacked VLAN tags are decoded.
const MAX_TAGS: u8 = 2;

/// The network layer under a transport header: ICMPv6 needs the addresses.
#[derive(Clone, Copy)]
enum Addrs {
    V4,
    V6(Ipv6Address, Ipv6Address),
}

fn note(f: &mut fmt::Formatter<'_>, e: Error) -> fmt::Result {
    match e {
        Error::Truncated => f.write_str(" [truncated]"),
        e => write!(f, " [malformed: {e}]"),
    }
}

fn ethernet(f: &mut fmt::Formatter<'_>, d: &[u8], depth: u8) -> fmt::Result {
    let eth = match EthernetFrame::new_checked(d) {
        Ok(eth) => eth,
        Err(e) => {
            f.write_str("Ethernet")?;
            return note(f, e);
        }
    };
    write!(f, "{} > {}", eth.src_addr(), eth.dst_addr())?;
    let mut ethertype = eth.ethertype();
    let mut payload = eth.payload();
    let mut tags = 0;
    while matches!(ethertype, EtherType::Vlan | EtherType::QinQ) && tags < MAX_TAGS {
        let tag = match VlanPacket::new_checked(payload) {
            Ok(tag) => tag,
            Err(e) => {
                write!(f, ", {ethertype}")?;
                return note(f, e);
            }
        };
        write!(f, ", vlan {} pcp {}", tag.vlan_id(), tag.pcp())?;
        ethertype = tag.ethertype();
        payload = tag.payload();
        tags += 1;
    }
    f.write_str(", ")?;
    match ethertype {
        EtherType::Arp => arp(f, payload),
        EtherType::Ipv4 => ipv4(f, payload, depth),
        EtherType::Ipv6 => ipv6(f, payload, depth),
        other => write!(f, "ethertype {other} len {}", payload.len()),
    }
}

fn arp(f: &mut fmt::Formatter<'_>, d: &[u8]) -> fmt::Result {
    match ArpPacket::new_checked(d).and_then(|p| ArpRepr::parse(&p)) {
        Ok(repr) => write!(f, "{repr}"),
        Err(e) => {
            f.write_str("ARP")?;
            note(f, e)
        }
    }
}

fn ipv4(f: &mut fmt::Formatter<'_>, d: &[u8], depth: u8) -> fmt::Result {
    let ip = match Ipv4Packet::new_checked(d) {
        Ok(ip) => ip,
        Err(e) => {
            f.write_str("IPv4")?;
            return note(f, e);
        }
    };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    write!(f, "IPv4 {src} > {dst} ttl {} len {}", ip.hop_limit(), ip.total_len())?;
    if !ip.verify_checksum() {
        f.write_str(" [bad checksum]")?;
    }
    if ip.frag_offset() != 0 {
        return write!(f, ", {} fragment off {}", ip.next_header(), ip.frag_offset());
    }
    if ip.more_frags() {
        f.write_str(" [first fragment]")?;
    }
    f.write_str(", ")?;
    l4(f, ip.next_header(), ip.payload(), Addrs::V4, depth)
}

fn ipv6(f: &mut fmt::Formatter<'_>, d: &[u8], depth: u8) -> fmt::Result {
    let ip = match Ipv6Packet::new_checked(d) {
        Ok(ip) => ip,
        Err(e) => {
            f.write_str("IPv6")?;
            return note(f, e);
        }
    };
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    write!(f, "IPv6 {src} > {dst} hlim {} len {}, ", ip.hop_limit(), ip.payload_len())?;
    l4(f, ip.next_header(), ip.payload(), Addrs::V6(src, dst), depth)
}

fn l4(f: &mut fmt::Formatter<'_>, proto: IpProtocol, d: &[u8], addrs: Addrs, depth: u8) -> fmt::Result {
    match (proto, addrs) {
        (IpProtocol::Udp, _) => udp(f, d, depth),
        (IpProtocol::Tcp, _) => tcp(f, d),
        (IpProtocol::Icmp, Addrs::V4) => icmpv4(f, d),
        (IpProtocol::Ipv6Icmp, Addrs::V6(src, dst)) => icmpv6(f, d, &src, &dst),
        (IpProtocol::Gre, _) => gre(f, d, depth),
        (other, _) => write!(f, "{other} len {}", d.len()),
    }
}

fn udp(f: &mut fmt::Formatter<'_>, d: &[u8], depth: u8) -> fmt::Result {
    match UdpPacket::new_checked(d) {
        Ok(udp) if udp.dst_port() == crate::vxlan::PORT => {
            write!(f, "UDP {} > {}, ", udp.src_port(), udp.dst_port())?;
            let payload = &d[crate::udp::HEADER_LEN..usize::from(udp.len())];
            vxlan(f, payload, depth)
        }
        Ok(udp) => write!(f, "UDP {} > {} len {}", udp.src_port(), udp.dst_port(), usize::from(udp.len()).saturating_sub(crate::udp::HEADER_LEN)),
        Err(e) => {
            f.write_str("UDP")?;
            note(f, e)
        }
    }
}

fn tcp(f: &mut fmt::Formatter<'_>, d: &[u8]) -> fmt::Result {
    let tcp = match TcpPacket::new_checked(d) {
        Ok(tcp) => tcp,
        Err(e) => {
            f.write_str("TCP")?;
            return note(f, e);
        }
    };
    write!(f, "TCP {} > {} [", tcp.src_port(), tcp.dst_port())?;
    for (set, c) in [(tcp.syn(), "S"), (tcp.fin(), "F"), (tcp.rst(), "R"), (tcp.psh(), "P"), (tcp.urg(), "U"), (tcp.ece(), "E"), (tcp.cwr(), "W"), (tcp.ack(), ".")] {
        if set {
            f.write_str(c)?;
        }
    }
    write!(f, "] seq {} ack {} win {} len {}", tcp.seq_number(), tcp.ack_number(), tcp.window_len(), tcp.payload().len())
}

fn icmpv4(f: &mut fmt::Formatter<'_>, d: &[u8]) -> fmt::Result {
    let icmp = match Icmpv4Packet::new_checked(d) {
        Ok(icmp) => icmp,
        Err(e) => {
            f.write_str("ICMP")?;
            return note(f, e);
        }
    };
    match Icmpv4Repr::parse(&icmp) {
        Ok(repr) => write!(f, "{repr}"),
        Err(e) => {
            write!(f, "ICMP type {} code {}", u8::from(icmp.msg_type()), icmp.msg_code())?;
            if e == Error::Unsupported {
                Ok(())
            } else {
                note(f, e)
            }
        }
    }
}

fn icmpv6(f: &mut fmt::Formatter<'_>, d: &[u8], src: &Ipv6Address, dst: &Ipv6Address) -> fmt::Result {
    let icmp = match Icmpv6Packet::new_checked(d) {
        Ok(icmp) => icmp,
        Err(e) => {
            f.write_str("ICMPv6")?;
            return note(f, e);
        }
    };
    match Icmpv6Repr::parse(src, dst, &icmp) {
        Ok(repr) => write!(f, "{repr}"),
        Err(e) => {
            write!(f, "ICMPv6 type {} code {}", u8::from(icmp.msg_type()), icmp.msg_code())?;
            if e == Error::Unsupported {
                Ok(())
            } else {
                note(f, e)
            }
        }
    }
}

/// VXLAN on UDP port 4789 (the pretty printer knows only the standard port).
fn vxlan(f: &mut fmt::Formatter<'_>, d: &[u8], depth: u8) -> fmt::Result {
    match VxlanRepr::parse(&crate::VxlanPacket::new_unchecked(d)) {
        Ok(repr) => {
            write!(f, "{repr}: ")?;
            let inner = &d[crate::vxlan::HEADER_LEN..];
            if depth < MAX_DEPTH {
                ethernet(f, inner, depth + 1)
            } else {
                write!(f, "[nested VXLAN not decoded, {} bytes]", inner.len())
            }
        }
        Err(e) => {
            f.write_str("VXLAN")?;
            note(f, e)
        }
    }
}

fn gre(f: &mut fmt::Formatter<'_>, d: &[u8], depth: u8) -> fmt::Result {
    match NvgreRepr::parse(&GrePacket::new_unchecked(d)) {
        Ok(repr) => {
            write!(f, "{repr}: ")?;
            let inner = &d[crate::nvgre::HEADER_LEN..];
            if depth < MAX_DEPTH {
                ethernet(f, inner, depth + 1)
            } else {
                write!(f, "[nested NVGRE not decoded, {} bytes]", inner.len())
            }
        }
        Err(nvgre_err) => {
            f.write_str("GRE")?;
            match GrePacket::new_checked(d) {
                Ok(gre) => {
                    write!(f, " flags 0x{:04x} proto {} len {}", gre.flags_version(), gre.protocol_type(), gre.payload().len())?;
                    if gre.protocol_type() == EtherType::TransparentEthernetBridging || gre.key_present() {
                        note(f, nvgre_err)
                    } else {
                        Ok(())
                    }
                }
                Err(e) => note(f, e),
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::{EthernetAddress, EthernetRepr, Ipv4Address, Ipv4Repr, UdpRepr, Vsid};

    fn udp_frame(buf: &mut [u8]) -> usize {
        let eth = EthernetRepr { src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]), dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]), ethertype: EtherType::Ipv4 };
        let ip = Ipv4Repr { src_addr: Ipv4Address::new(10, 0, 0, 1), dst_addr: Ipv4Address::new(10, 0, 0, 2), next_header: IpProtocol::Udp, payload_len: 12, hop_limit: 64, dont_frag: false };
        eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..]));
        let mut udp = UdpPacket::new_unchecked(&mut buf[34..46]);
        UdpRepr { src_port: 1000, dst_port: 53, payload_len: 4 }.emit(&mut udp);
        udp.fill_checksum_v4(&ip.src_addr, &ip.dst_addr);
        46
    }

    #[test]
    fn test_udp() {
        let mut buf = [0u8; 46];
        udp_frame(&mut buf);
        assert_eq!(
            PrettyFrame(&buf).to_string(),
            "02:00:00:00:00:01 > 02:00:00:00:00:02, IPv4 10.0.0.1 > 10.0.0.2 ttl 64 len 32, \
             UDP 1000 > 53 len 4"
        );
    }

    #[test]
    fn test_nvgre() {
        let mut buf = [0u8; 46 + 42];
        let outer = EthernetRepr { src_addr: EthernetAddress([0, 0x15, 0x5d, 0, 0, 1]), dst_addr: EthernetAddress([0, 0x15, 0x5d, 0, 0, 2]), ethertype: EtherType::Ipv4 };
        outer.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        Ipv4Repr { src_addr: Ipv4Address::new(192, 168, 0, 1), dst_addr: Ipv4Address::new(192, 168, 0, 2), next_header: IpProtocol::Gre, payload_len: 8 + 46, hop_limit: 128, dont_frag: true }
            .emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..]));
        NvgreRepr { vsid: Vsid::new(5001).unwrap(), flow_id: 7 }.emit(&mut GrePacket::new_unchecked(&mut buf[34..]));
        udp_frame(&mut buf[42..]);
        let s = PrettyFrame(&buf).to_string();
        assert!(s.contains("NVGRE vsid 5001 flowid 7: 02:00:00:00:00:01"), "{s}");
        assert!(s.ends_with("UDP 1000 > 53 len 4"), "{s}");
        // Truncations never panic and say so.
        for cut in 0..buf.len() {
            let s = PrettyFrame(&buf[..cut]).to_string();
            assert!(s.contains("[truncated]") || s.contains("[malformed"), "{cut}: {s}");
        }
    }

    #[test]
    fn test_vxlan() {
        let mut buf = [0u8; 46 + 50];
        let outer = EthernetRepr { src_addr: EthernetAddress([0, 0x15, 0x5d, 0, 0, 1]), dst_addr: EthernetAddress([0, 0x15, 0x5d, 0, 0, 2]), ethertype: EtherType::Ipv4 };
        outer.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        Ipv4Repr { src_addr: Ipv4Address::new(192, 168, 0, 1), dst_addr: Ipv4Address::new(192, 168, 0, 2), next_header: IpProtocol::Udp, payload_len: 16 + 46, hop_limit: 128, dont_frag: true }
            .emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..]));
        UdpRepr { src_port: 49153, dst_port: 4789, payload_len: 8 + 46 }.emit(&mut UdpPacket::new_unchecked(&mut buf[34..42]));
        VxlanRepr { vsid: Vsid::new(5001).unwrap() }.emit(&mut crate::VxlanPacket::new_unchecked(&mut buf[42..50]));
        udp_frame(&mut buf[50..]);
        let s = PrettyFrame(&buf).to_string();
        assert!(s.contains("UDP 49153 > 4789, VXLAN vni 5001: 02:00:00:00:00:01"), "{s}");
        assert!(s.ends_with("UDP 1000 > 53 len 4"), "{s}");
        for cut in 0..buf.len() {
            let s = PrettyFrame(&buf[..cut]).to_string();
            assert!(s.contains("[truncated]") || s.contains("[malformed"), "{cut}: {s}");
        }
    }

    #[test]
    fn test_garbage() {
        assert_eq!(PrettyFrame(&[]).to_string(), "Ethernet [truncated]");
        let mut buf = [0u8; 20];
        buf[12..14].copy_from_slice(&[0x08, 0x00]);
        buf[14] = 0x65;
        let s = PrettyFrame(&buf).to_string();
        assert!(s.ends_with("IPv4 [truncated]"), "{s}");
        buf[12..14].copy_from_slice(&[0x81, 0x00]);
        let s = PrettyFrame(&buf[..16]).to_string();
        assert!(s.ends_with("802.1Q [truncated]"), "{s}");
    }
}
