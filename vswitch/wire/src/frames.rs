//! Frame builders: well-formed Ethernet, IPv4/IPv6, TCP/UDP/ICMP, ARP, ND and
//! NVGRE frames with correct checksums, for the traffic generator, the demo,
//! the benchmark scenarios, tests, benches and fuzz targets. They allocate
//! (a `Vec` per frame) and are never used on the datapath.

use crate::checksum;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A MAC from its six octets.
pub type Mac = [u8; 6];

fn fold(sum: u32) -> u16 {
    let mut s = sum;
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Ethernet header.
pub fn eth(dst: Mac, src: Mac, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// An IPv4 header (checksum filled) for `payload_len` bytes of protocol `proto`.
pub fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, ttl: u8, payload_len: usize) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    h[6] = 0x40;
    h[8] = ttl;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = !checksum::data(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// An IPv4 or IPv6 UDP frame of `frame_len` bytes (padded payload), with UDP checksum.
pub fn udp(src_mac: Mac, dst_mac: Mac, src: IpAddr, dst: IpAddr, sport: u16, dport: u16, frame_len: usize) -> Vec<u8> {
    let v6 = src.is_ipv6();
    let l3 = if v6 { 40 } else { 20 };
    let payload_len = frame_len.saturating_sub(14 + l3 + 8);
    let udp_len = 8 + payload_len;
    let mut u = vec![0u8; udp_len];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    for (i, b) in u[8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut f = eth(dst_mac, src_mac, if v6 { 0x86dd } else { 0x0800 });
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let ph = checksum::pseudo_header_v4(&s, &d, crate::IpProtocol::Udp, udp_len as u16);
            let c = !fold(u32::from(ph) + u32::from(checksum::data(&u)));
            u[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
            f.extend_from_slice(&ipv4_header(s, d, 17, 64, udp_len));
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let ph = checksum::pseudo_header_v6(&s, &d, crate::IpProtocol::Udp, udp_len as u32);
            let c = !fold(u32::from(ph) + u32::from(checksum::data(&u)));
            u[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
            f.extend_from_slice(&ipv6_header(s, d, 17, 64, udp_len));
        }
        _ => {}
    }
    f.extend_from_slice(&u);
    f
}

/// An IPv4 TCP SYN frame (no options, checksum filled).
pub fn tcp_syn(src_mac: Mac, dst_mac: Mac, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    let mut t = [0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02;
    t[14..16].copy_from_slice(&8192u16.to_be_bytes());
    let ph = checksum::pseudo_header_v4(&src, &dst, crate::IpProtocol::Tcp, 20);
    let c = !fold(u32::from(ph) + u32::from(checksum::data(&t)));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    let mut f = eth(dst_mac, src_mac, 0x0800);
    f.extend_from_slice(&ipv4_header(src, dst, 6, 64, 20));
    f.extend_from_slice(&t);
    f
}

/// An IPv4 TCP SYN frame with an MSS option of `mss` (then NOPs and window
/// scale 7, as Linux sends them), checksum filled.
pub fn tcp_syn_mss(src_mac: Mac, dst_mac: Mac, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, mss: u16) -> Vec<u8> {
    let mut t = [0u8; 28];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 7 << 4;
    t[13] = 0x02;
    t[14..16].copy_from_slice(&64240u16.to_be_bytes());
    t[20..22].copy_from_slice(&[2, 4]);
    t[22..24].copy_from_slice(&mss.to_be_bytes());
    t[24..28].copy_from_slice(&[1, 3, 3, 7]);
    let ph = checksum::pseudo_header_v4(&src, &dst, crate::IpProtocol::Tcp, 28);
    let c = !fold(u32::from(ph) + u32::from(checksum::data(&t)));
    t[16..18].copy_from_slice(&c.to_be_bytes());
    let mut f = eth(dst_mac, src_mac, 0x0800);
    f.extend_from_slice(&ipv4_header(src, dst, 6, 64, 28));
    f.extend_from_slice(&t);
    f
}

/// An IPv4 or IPv6 TCP frame of `frame_len` bytes (padded payload, no
/// options) with the given `flags` byte, checksum filled.
#[allow(clippy::too_many_arguments)] // mirrors `udp` plus the flags byte
pub fn tcp(src_mac: Mac, dst_mac: Mac, src: IpAddr, dst: IpAddr, sport: u16, dport: u16, flags: u8, frame_len: usize) -> Vec<u8> {
    let l3 = if src.is_ipv6() { 40 } else { 20 };
    let mut t = vec![0u8; 20 + frame_len.saturating_sub(14 + l3 + 20)];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&8192u16.to_be_bytes());
    for (i, b) in t[20..].iter_mut().enumerate() {
        *b = i as u8;
    }
    l4_frame(src_mac, dst_mac, src, dst, 6, t, 16)
}

/// An ICMP (IPv4) or ICMPv6 echo request of `frame_len` bytes, checksum filled.
pub fn icmp_echo(src_mac: Mac, dst_mac: Mac, src: IpAddr, dst: IpAddr, ident: u16, seq: u16, frame_len: usize) -> Vec<u8> {
    let v6 = src.is_ipv6();
    let l3 = if v6 { 40 } else { 20 };
    let mut m = vec![0u8; 8 + frame_len.saturating_sub(14 + l3 + 8)];
    m[0] = if v6 { 128 } else { 8 };
    m[4..6].copy_from_slice(&ident.to_be_bytes());
    m[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in m[8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    l4_frame(src_mac, dst_mac, src, dst, if v6 { 58 } else { 1 }, m, 2)
}

/// Wrap the L4 bytes `l4` of protocol `proto` in IP and Ethernet, filling
/// the checksum at `sum_at` in `l4` (pseudo-header included except for ICMPv4).
fn l4_frame(src_mac: Mac, dst_mac: Mac, src: IpAddr, dst: IpAddr, proto: u8, mut l4: Vec<u8>, sum_at: usize) -> Vec<u8> {
    let ph = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) if proto != 1 => u32::from(checksum::pseudo_header_v4(&s, &d, crate::IpProtocol::from(proto), l4.len() as u16)),
        (IpAddr::V6(s), IpAddr::V6(d)) => u32::from(checksum::pseudo_header_v6(&s, &d, crate::IpProtocol::from(proto), l4.len() as u32)),
        _ => 0,
    };
    let c = !fold(ph + u32::from(checksum::data(&l4)));
    l4[sum_at..sum_at + 2].copy_from_slice(&c.to_be_bytes());
    let mut f = eth(dst_mac, src_mac, if src.is_ipv6() { 0x86dd } else { 0x0800 });
    match (src, dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => f.extend_from_slice(&ipv6_header(s, d, proto, 64, l4.len())),
        (s, d) => f.extend_from_slice(&ipv4_header(v4_or_unspecified(s), v4_or_unspecified(d), proto, 64, l4.len())),
    }
    f.extend_from_slice(&l4);
    f
}

fn v4_or_unspecified(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

/// Set the TTL (IPv4, header checksum recomputed) or hop limit (IPv6) of an
/// untagged IP frame; other frames are left as they are.
pub fn set_ttl(frame: &mut [u8], ttl: u8) {
    match frame.get(12..14) {
        Some([0x08, 0x00]) if frame.len() >= 34 => {
            frame[22] = ttl;
            frame[24..26].fill(0);
            let c = !checksum::data(&frame[14..34]);
            frame[24..26].copy_from_slice(&c.to_be_bytes());
        }
        Some([0x86, 0xdd]) if frame.len() >= 54 => frame[21] = ttl,
        _ => {}
    }
}

/// An IPv6 header.
pub fn ipv6_header(src: Ipv6Addr, dst: Ipv6Addr, next: u8, hop: u8, payload_len: usize) -> [u8; 40] {
    let mut h = [0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    h[6] = next;
    h[7] = hop;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    h
}

/// A broadcast ARP request from (`mac`, `ip`) for `target`.
pub fn arp_request(mac: Mac, ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = eth([0xff; 6], mac, 0x0806);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f.resize(60, 0);
    f
}

/// The ARP reply a responder (`mac`, `ip`) sends to a request from (`to_mac`, `to_ip`).
pub fn arp_reply(mac: Mac, ip: Ipv4Addr, to_mac: Mac, to_ip: Ipv4Addr) -> Vec<u8> {
    let mut f = eth(to_mac, mac, 0x0806);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&to_mac);
    f.extend_from_slice(&to_ip.octets());
    f.resize(60, 0);
    f
}

/// An IPv6 neighbor solicitation from (`mac`, `src`) for `target`, to its solicited-node group.
pub fn neighbor_solicit(mac: Mac, src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let t = target.octets();
    let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(t[13]), u16::from_be_bytes([t[14], t[15]]));
    let g = group.octets();
    let mut icmp = vec![135u8, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&t);
    icmp.extend_from_slice(&[1, 1]);
    icmp.extend_from_slice(&mac);
    let ph = checksum::pseudo_header_v6(&src, &group, crate::IpProtocol::Ipv6Icmp, icmp.len() as u32);
    let c = !fold(u32::from(ph) + u32::from(checksum::data(&icmp)));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = eth([0x33, 0x33, g[12], g[13], g[14], g[15]], mac, 0x86dd);
    f.extend_from_slice(&ipv6_header(src, group, 58, 255, icmp.len()));
    f.extend_from_slice(&icmp);
    f
}

/// `inner` wrapped in NVGRE over IPv4 (outer MACs, PAs, VSID, FlowID; TTL 128, DF, checksum).
pub fn nvgre(outer_dst: Mac, outer_src: Mac, src_pa: Ipv4Addr, dst_pa: Ipv4Addr, vsid: u32, flow_id: u8, inner: &[u8]) -> Vec<u8> {
    let mut f = eth(outer_dst, outer_src, 0x0800);
    f.extend_from_slice(&ipv4_header(src_pa, dst_pa, 47, 128, 8 + inner.len()));
    f.extend_from_slice(&[0x20, 0x00, 0x65, 0x58]);
    f.extend_from_slice(&((vsid << 8) | u32::from(flow_id)).to_be_bytes());
    f.extend_from_slice(inner);
    f
}

/// A VXLAN frame over IPv4 (UDP checksum 0) to `port` (4789 as a rule), the
/// UDP source port hnvswitch derives from `flow_id`.
#[allow(clippy::too_many_arguments)]
pub fn vxlan(outer_dst: Mac, outer_src: Mac, src_pa: Ipv4Addr, dst_pa: Ipv4Addr, vni: u32, flow_id: u8, port: u16, inner: &[u8]) -> Vec<u8> {
    let mut f = eth(outer_dst, outer_src, 0x0800);
    f.extend_from_slice(&ipv4_header(src_pa, dst_pa, 17, 128, 16 + inner.len()));
    f.extend_from_slice(&crate::vxlan::src_port(flow_id).to_be_bytes());
    f.extend_from_slice(&port.to_be_bytes());
    f.extend_from_slice(&((16 + inner.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x08, 0, 0, 0]);
    f.extend_from_slice(&(vni << 8).to_be_bytes());
    f.extend_from_slice(inner);
    f
}

/// The FlowID hnvswitch puts in the GRE key for a 5-tuple (0 when the address families differ).
pub fn flow_id_of(src: IpAddr, dst: IpAddr, proto: u8, sport: u16, dport: u16) -> u8 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => crate::flow_id(&s.octets(), &d.octets(), proto, sport, dport),
        (IpAddr::V6(s), IpAddr::V6(d)) => crate::flow_id(&s.octets(), &d.octets(), proto, sport, dport),
        _ => 0,
    }
}

/// Parse a MAC like `00:15:5d:01:00:05` (octets that do not parse read as 0).
pub fn mac(s: &str) -> Mac {
    let mut m = [0u8; 6];
    for (i, p) in s.split(':').enumerate().take(6) {
        m[i] = u8::from_str_radix(p, 16).unwrap_or(0);
    }
    m
}
