//! Path MTU errors made in place from the frame that was too big: ICMP
//! "destination unreachable, fragmentation needed" (type 3 code 4, RFC 792,
//! RFC 1191) for IPv4 with DF set, ICMPv6 "packet too big" (type 2, RFC 4443
//! §3.2) for IPv6.
//!
//! A switch that cannot encapsulate a frame within the uplink MTU (RFC 7637
//! §4 forbids fragmenting the outer packet) turns the frame itself into the
//! error and sends it back to the VM, from the VM subnet's virtual gateway:
//!
//! ```text
//! before: | Ethernet 14 | IPv4 header (IHL×4) | payload …                    |
//! after:  | Ethernet 14 | IPv4 20 | ICMP 8 | IPv4 header (IHL×4) + 8 bytes  |
//!
//! before: | Ethernet 14 | IPv6 40 | payload …                                |
//! after:  | Ethernet 14 | IPv6 40 | ICMPv6 8 | the packet, ≤ 1232 bytes      |
//! ```
//!
//! Contract: [`frag_needed_len`] / [`too_big_len`] check the offending frame
//! and return the length of the error frame, which may exceed the frame's
//! (a short packet under a small MTU): the caller grows its buffer to at
//! least that, then calls [`frag_needed_in_place`] / [`too_big_in_place`],
//! which check again, write the error from byte 0 and return its length (the
//! caller trims the rest). Checks, in order, with the error each returns:
//! 1. the Ethernet header is there and its type is IPv4 (IPv6)
//!    ([`Error::Truncated`], [`Error::Unsupported`]);
//! 2. the IP header is valid: version, IPv4 IHL ≥ 5, header and the length
//!    field within the frame ([`Error::BadVersion`], [`Error::BadHeaderLen`],
//!    [`Error::Truncated`], [`Error::Malformed`]);
//! 3. the packet may be answered with an error ([`Error::Unsupported`]):
//!    IPv4 DF is set (without DF a router would fragment: not an error
//!    case) and it is not a non-first fragment (RFC 1812 §4.3.2.7); its
//!    source is a unicast address and its destination is not multicast or
//!    broadcast; it is not itself an ICMP error (RFC 1122 §3.2.2, RFC 4443
//!    §2.4 e.1), nor an ICMP message whose type cannot be read.
//!
//! The error's IPv4 header has TTL 64, DF clear, identification 0; the IPv6
//! header hop limit 64. Checksums are computed over what is written (the IP
//! header checksum, the ICMP checksum; the ICMPv6 checksum with its
//! pseudo-header). Never panics, never allocates.

use crate::checksum;
use crate::ip::{IpProtocol, Ipv4Address, Ipv6Address};
use crate::{Error, Result};

/// Ethernet + IPv4 + ICMP header bytes before the quote.
pub const V4_HEADERS: usize = 14 + 20 + 8;
/// Ethernet + IPv6 + ICMPv6 header bytes before the quote.
pub const V6_HEADERS: usize = 14 + 40 + 8;
/// The most of the offending IPv6 packet an ICMPv6 error quotes (1280 − 48).
pub const V6_MAX_QUOTE: usize = crate::icmpv6::MIN_MTU - 48;
/// TTL / hop limit of the errors.
pub const HOP_LIMIT: u8 = 64;

/// The sender of the error: the virtual gateway's MAC and the VM's MAC (the
/// error's Ethernet source and destination).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Macs {
    /// The virtual gateway's MAC (Ethernet source of the error).
    pub gateway: [u8; 6],
    /// The VM's MAC (Ethernet destination of the error).
    pub vm: [u8; 6],
}

fn ethertype(frame: &[u8], want: u16) -> Result<()> {
    match frame.get(12..14) {
        None => Err(Error::Truncated),
        Some(t) if u16::from_be_bytes([t[0], t[1]]) == want => Ok(()),
        Some(_) => Err(Error::Unsupported),
    }
}

/// IPv4: the quoted length (header + 8 bytes, within the packet), after the checks.
fn check_v4(frame: &[u8]) -> Result<usize> {
    ethertype(frame, 0x0800)?;
    let ip = frame.get(14..).ok_or(Error::Truncated)?;
    let first = *ip.first().ok_or(Error::Truncated)?;
    if first >> 4 != 4 {
        return Err(Error::BadVersion);
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 {
        return Err(Error::BadHeaderLen);
    }
    if ip.len() < ihl {
        return Err(Error::Truncated);
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total < ihl {
        return Err(Error::Malformed);
    }
    if total > ip.len() {
        return Err(Error::Truncated);
    }
    let flags = u16::from_be_bytes([ip[6], ip[7]]);
    let (df, offset) = (flags & 0x4000 != 0, flags & 0x1fff);
    if !df || offset != 0 {
        return Err(Error::Unsupported);
    }
    let (src, dst) = (Ipv4Address::new(ip[12], ip[13], ip[14], ip[15]), Ipv4Address::new(ip[16], ip[17], ip[18], ip[19]));
    if src.is_unspecified() || src.is_multicast() || src.is_broadcast() || dst.is_multicast() || dst.is_broadcast() {
        return Err(Error::Unsupported);
    }
    if ip[9] == 1 {
        // ICMP: only queries (echo, timestamp, …) may be answered with an error.
        match ip.get(ihl) {
            Some(0 | 8 | 13 | 14 | 15 | 16 | 17 | 18) => {}
            _ => return Err(Error::Unsupported),
        }
    }
    Ok((ihl + 8).min(total))
}

/// IPv6: the quoted length (as much of the packet as fits 1280 bytes), after the checks.
fn check_v6(frame: &[u8]) -> Result<usize> {
    ethertype(frame, 0x86dd)?;
    let ip = frame.get(14..).ok_or(Error::Truncated)?;
    if ip.len() < 40 {
        return Err(Error::Truncated);
    }
    if ip[0] >> 4 != 6 {
        return Err(Error::BadVersion);
    }
    let total = 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    if total > ip.len() {
        return Err(Error::Truncated);
    }
    let src = addr6(&ip[8..24]);
    let dst = addr6(&ip[24..40]);
    if src.is_unspecified() || src.is_multicast() || dst.is_multicast() {
        return Err(Error::Unsupported);
    }
    if ip[6] == 58 {
        // ICMPv6 directly after the header: errors (types < 128) are never answered.
        match ip.get(40) {
            Some(t) if *t >= 128 => {}
            _ => return Err(Error::Unsupported),
        }
    }
    Ok(total.min(V6_MAX_QUOTE))
}

fn addr6(b: &[u8]) -> Ipv6Address {
    let mut a = [0u8; 16];
    a.copy_from_slice(b);
    Ipv6Address::from(a)
}

/// The length of the "fragmentation needed" frame for IPv4 frame `frame`, or why none is sent.
pub fn frag_needed_len(frame: &[u8]) -> Result<usize> {
    check_v4(frame).map(|q| V4_HEADERS + q)
}

/// The length of the "packet too big" frame for IPv6 frame `frame`, or why none is sent.
pub fn too_big_len(frame: &[u8]) -> Result<usize> {
    check_v6(frame).map(|q| V6_HEADERS + q)
}

/// Turn IPv4 frame `frame` (the offending packet at its start; the buffer
/// at least [`frag_needed_len`] long) into an ICMP "fragmentation needed"
/// with next-hop MTU `mtu` from `gateway` to the packet's source; return
/// the error frame's length.
pub fn frag_needed_in_place(frame: &mut [u8], macs: Macs, gateway: Ipv4Address, mtu: u16) -> Result<usize> {
    let quote = check_v4(frame)?;
    let len = V4_HEADERS + quote;
    if frame.len() < len {
        return Err(Error::Truncated);
    }
    let vm = Ipv4Address::new(frame[26], frame[27], frame[28], frame[29]);
    frame.copy_within(14..14 + quote, V4_HEADERS);
    write_eth(frame, macs, 0x0800);
    let ip = &mut frame[14..34];
    ip.copy_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, HOP_LIMIT, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    ip[2..4].copy_from_slice(&((20 + 8 + quote) as u16).to_be_bytes());
    ip[12..16].copy_from_slice(&gateway.octets());
    ip[16..20].copy_from_slice(&vm.octets());
    let sum = !checksum::data(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let icmp = &mut frame[34..len];
    icmp[..8].copy_from_slice(&[3, 4, 0, 0, 0, 0, 0, 0]);
    icmp[6..8].copy_from_slice(&mtu.to_be_bytes());
    let sum = !checksum::data(icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    Ok(len)
}

/// Turn IPv6 frame `frame` (the buffer at least [`too_big_len`] long) into
/// an ICMPv6 "packet too big" with MTU `mtu` from `gateway` to the packet's
/// source; return the error frame's length.
pub fn too_big_in_place(frame: &mut [u8], macs: Macs, gateway: Ipv6Address, mtu: u32) -> Result<usize> {
    let quote = check_v6(frame)?;
    let len = V6_HEADERS + quote;
    if frame.len() < len {
        return Err(Error::Truncated);
    }
    let vm = addr6(&frame[22..38]);
    frame.copy_within(14..14 + quote, V6_HEADERS);
    write_eth(frame, macs, 0x86dd);
    let ip = &mut frame[14..54];
    ip[..8].copy_from_slice(&[0x60, 0, 0, 0, 0, 0, 58, HOP_LIMIT]);
    ip[4..6].copy_from_slice(&((8 + quote) as u16).to_be_bytes());
    ip[8..24].copy_from_slice(&gateway.octets());
    ip[24..40].copy_from_slice(&vm.octets());
    let icmp = &mut frame[54..len];
    icmp[..8].copy_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]);
    icmp[4..8].copy_from_slice(&mtu.to_be_bytes());
    let sum = !checksum::combine(&[checksum::pseudo_header_v6(&gateway, &vm, IpProtocol::Ipv6Icmp, (8 + quote) as u32), checksum::data(icmp)]);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    Ok(len)
}

fn write_eth(frame: &mut [u8], macs: Macs, ethertype: u16) {
    frame[0..6].copy_from_slice(&macs.vm);
    frame[6..12].copy_from_slice(&macs.gateway);
    frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// The link-local address a MAC's modified EUI-64 makes (RFC 4291 §2.5.1):
/// the source of a "packet too big" for a subnet without an IPv6 gateway.
pub fn link_local_of(mac: [u8; 6]) -> Ipv6Address {
    let mut a = [0u8; 16];
    a[0] = 0xfe;
    a[1] = 0x80;
    a[8] = mac[0] ^ 0x02;
    a[9] = mac[1];
    a[10] = mac[2];
    a[11] = 0xff;
    a[12] = 0xfe;
    a[13] = mac[3];
    a[14] = mac[4];
    a[15] = mac[5];
    Ipv6Address::from(a)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::frames;
    use crate::icmpv4::{DstUnreachable, Packet as Icmpv4Packet, Repr as Icmpv4Repr};
    use crate::icmpv6::{Packet as Icmpv6Packet, Repr as Icmpv6Repr};
    use crate::ipv4::Packet as Ipv4Packet;
    use crate::ipv6::Packet as Ipv6Packet;

    const VM: [u8; 6] = [0x00, 0x15, 0x5d, 0x01, 0x00, 0x01];
    const GW: [u8; 6] = [0x00, 0x15, 0x5d, 0xff, 0x00, 0x01];
    const MACS: Macs = Macs { gateway: GW, vm: VM };

    fn v4_frame(len: usize, df: bool) -> Vec<u8> {
        let mut f = frames::eth([2; 6], VM, 0x0800);
        let payload = len - 14 - 20;
        let mut h = frames::ipv4_header("10.0.0.5".parse().unwrap(), "10.0.0.7".parse().unwrap(), 6, 63, payload);
        {
            h[6] = if df { 0x40 } else { 0 };
            h[10..12].fill(0);
            let s = !checksum::data(&h);
            h[10..12].copy_from_slice(&s.to_be_bytes());
        }
        f.extend_from_slice(&h);
        f.extend((0..payload).map(|i| i as u8));
        f
    }

    fn v6_frame(len: usize, next: u8) -> Vec<u8> {
        let mut f = frames::eth([2; 6], VM, 0x86dd);
        let payload = len - 14 - 40;
        let mut h = [0u8; 40];
        h[0] = 0x60;
        h[4..6].copy_from_slice(&(payload as u16).to_be_bytes());
        h[6] = next;
        h[7] = 64;
        h[8..24].copy_from_slice(&"fd00::5".parse::<Ipv6Address>().unwrap().octets());
        h[24..40].copy_from_slice(&"fd00::7".parse::<Ipv6Address>().unwrap().octets());
        f.extend_from_slice(&h);
        f.extend((0..payload).map(|i| (i * 7) as u8));
        f
    }

    #[test]
    fn frag_needed_quotes_header_and_8_bytes_with_valid_checksums() {
        let orig = v4_frame(1600, true);
        let mut f = orig.clone();
        let n = frag_needed_in_place(&mut f, MACS, "10.0.0.1".parse().unwrap(), 1458).unwrap();
        assert_eq!(n, frag_needed_len(&orig).unwrap());
        assert_eq!(n, 14 + 20 + 8 + 28);
        let f = &f[..n];
        assert_eq!((&f[0..6], &f[6..12], &f[12..14]), (&VM[..], &GW[..], &[8u8, 0][..]));
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.src_addr(), ip.dst_addr(), ip.next_header(), usize::from(ip.total_len())), ("10.0.0.1".parse().unwrap(), "10.0.0.5".parse().unwrap(), IpProtocol::Icmp, n - 14));
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        let repr = Icmpv4Repr::parse(&icmp).unwrap();
        assert_eq!(repr, Icmpv4Repr::DstUnreachable { reason: DstUnreachable::FragRequired, next_hop_mtu: 1458, data: &orig[14..14 + 28] });
    }

    #[test]
    fn frag_needed_quotes_ip_options() {
        let mut orig = v4_frame(1600, true);
        // IHL 6: one options word (four NOPs); the quote is 24 + 8 bytes.
        orig[14] = 0x46;
        orig[34..38].fill(1);
        let n = frag_needed_len(&orig).unwrap();
        assert_eq!(n, V4_HEADERS + 32);
        let mut f = orig.clone();
        frag_needed_in_place(&mut f, MACS, "10.0.0.1".parse().unwrap(), 1000).unwrap();
        assert_eq!(&f[V4_HEADERS..n], &orig[14..46]);
    }

    #[test]
    fn packet_too_big_quotes_1232_bytes_with_a_valid_checksum() {
        let orig = v6_frame(1600, 17);
        let mut f = orig.clone();
        let gw: Ipv6Address = "fd00::1".parse().unwrap();
        let n = too_big_in_place(&mut f, MACS, gw, 1450).unwrap();
        assert_eq!(n, 14 + 1280);
        let ip = Ipv6Packet::new_checked(&f[14..n]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr(), ip.next_header(), ip.hop_limit()), (gw, "fd00::5".parse().unwrap(), IpProtocol::Ipv6Icmp, 64));
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
        assert_eq!(Icmpv6Repr::parse(&ip.src_addr(), &ip.dst_addr(), &icmp).unwrap(), Icmpv6Repr::PktTooBig { mtu: 1450, data: &orig[14..14 + 1232] });
    }

    #[test]
    fn a_short_ipv6_packet_is_quoted_whole_and_the_error_is_longer() {
        let orig = v6_frame(200, 17);
        assert_eq!(too_big_len(&orig), Ok(V6_HEADERS + 186));
        let mut f = orig.clone();
        assert_eq!(too_big_in_place(&mut f, MACS, "fd00::1".parse().unwrap(), 150), Err(Error::Truncated), "the caller must grow the buffer first");
        f.resize(V6_HEADERS + 186, 0);
        let n = too_big_in_place(&mut f, MACS, "fd00::1".parse().unwrap(), 150).unwrap();
        assert_eq!(&f[V6_HEADERS..n], &orig[14..]);
    }

    #[test]
    fn no_error_without_df_for_fragments_or_for_icmp_errors() {
        assert_eq!(frag_needed_len(&v4_frame(1600, false)), Err(Error::Unsupported));
        let mut frag = v4_frame(1600, true);
        frag[21] = 0x10; // offset 16 (×8), DF still set
        assert_eq!(frag_needed_len(&frag), Err(Error::Unsupported));
        let mut icmp_err = v4_frame(1600, true);
        icmp_err[23] = 1;
        icmp_err[34] = 3; // destination unreachable quoting something
        assert_eq!(frag_needed_len(&icmp_err), Err(Error::Unsupported));
        icmp_err[34] = 8; // an echo request is answered
        assert_eq!(frag_needed_len(&icmp_err), Ok(V4_HEADERS + 28));
        let mut v6 = v6_frame(1600, 58);
        v6[54] = 1; // ICMPv6 destination unreachable
        assert_eq!(too_big_len(&v6), Err(Error::Unsupported));
        v6[54] = 128; // echo request
        assert!(too_big_len(&v6).is_ok());
        let mut bcast = v4_frame(1600, true);
        bcast[30..34].fill(0xff);
        assert_eq!(frag_needed_len(&bcast), Err(Error::Unsupported));
        let mut mcast = v6_frame(1600, 17);
        mcast[38] = 0xff;
        assert_eq!(too_big_len(&mcast), Err(Error::Unsupported));
    }

    #[test]
    fn hostile_headers_are_refused() {
        let good = v4_frame(1600, true);
        let mut bad = good.clone();
        bad[14] = 0x44; // IHL 4
        assert_eq!(frag_needed_len(&bad), Err(Error::BadHeaderLen));
        bad[14] = 0x4f; // IHL 15: 60 bytes, fine if present
        assert_eq!(frag_needed_len(&bad), Ok(V4_HEADERS + 68));
        bad[14] = 0x65;
        assert_eq!(frag_needed_len(&bad), Err(Error::BadVersion));
        let mut long = good.clone();
        long[16..18].copy_from_slice(&2000u16.to_be_bytes());
        assert_eq!(frag_needed_len(&long), Err(Error::Truncated));
        let mut short = good.clone();
        short[16..18].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(frag_needed_len(&short), Err(Error::Malformed));
        assert_eq!(frag_needed_len(&good[..20]), Err(Error::Truncated));
        assert_eq!(frag_needed_len(&v6_frame(1600, 17)), Err(Error::Unsupported));
        let mut v6 = v6_frame(1600, 17);
        v6[18..20].copy_from_slice(&3000u16.to_be_bytes());
        assert_eq!(too_big_len(&v6), Err(Error::Truncated));
        assert_eq!(too_big_len(&v6[..50]), Err(Error::Truncated));
        // Every prefix of a valid frame and every single-byte corruption: no panic.
        for cut in 0..good.len() {
            let mut f = good[..cut].to_vec();
            let _ = frag_needed_len(&f);
            let _ = frag_needed_in_place(&mut f, MACS, Ipv4Address::LOCALHOST, 1);
        }
        for i in 0..80 {
            let mut f = v6_frame(300, 58);
            f[i] ^= 0xa5;
            let _ = too_big_len(&f);
            let _ = too_big_in_place(&mut f, MACS, Ipv6Address::LOCALHOST, 1);
        }
    }

    #[test]
    fn link_local_is_the_modified_eui64() {
        assert_eq!(link_local_of(GW), "fe80::215:5dff:feff:1".parse::<Ipv6Address>().unwrap());
    }
}
