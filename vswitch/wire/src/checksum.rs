//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! [`data`] and [`combine`] return the ones'-complement *sum*, not inverted;
//! a header's checksum field is `!combine(&[..])`. A buffer including its
//! own correct checksum field sums to `0xffff`.
//!
//! [`update`] and [`update32`] patch a checksum field after one 16-bit or
//! 32-bit field changed, by RFC 1624 eqn 3: `HC' = ~(~HC + ~m + m')`. The
//! result equals a full recomputation for any header whose bytes are not all
//! zero (every IP, UDP, TCP and ICMP header here); that is what a router
//! needs to decrement a TTL or rewrite an address at line rate.
//!
//! Nothing here panics or allocates.

use crate::{IpProtocol, Ipv4Address, Ipv6Address};

/// Fold a wide ones'-complement accumulator into 16 bits with end-around carry.
#[inline]
const fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Return the ones'-complement sum of `data` as 16-bit big-endian words.
///
/// An odd trailing byte is padded with a zero byte. The sum is not inverted.
pub fn data(data: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        sum += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut words = rest.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = words.remainder() {
        sum += u64::from(*b) << 8;
    }
    fold(sum)
}

/// Return the ones'-complement sum of partial sums (from [`data`] and the
/// pseudo-header functions). The sum is not inverted.
pub fn combine(checksums: &[u16]) -> u16 {
    let mut sum: u64 = 0;
    for &c in checksums {
        sum += u64::from(c);
    }
    fold(sum)
}

/// Return the sum of the IPv4 pseudo-header (RFC 768, RFC 793).
///
/// `length` is the upper-layer length: the UDP length field, or the TCP
/// segment length.
pub fn pseudo_header_v4(src_addr: &Ipv4Address, dst_addr: &Ipv4Address, next_header: IpProtocol, length: u16) -> u16 {
    let s = src_addr.octets();
    let d = dst_addr.octets();
    let sum = u64::from(u16::from_be_bytes([s[0], s[1]]))
        + u64::from(u16::from_be_bytes([s[2], s[3]]))
        + u64::from(u16::from_be_bytes([d[0], d[1]]))
        + u64::from(u16::from_be_bytes([d[2], d[3]]))
        + u64::from(u8::from(next_header))
        + u64::from(length);
    fold(sum)
}

/// Return the sum of the IPv6 pseudo-header (RFC 8200 §8.1).
///
/// `length` is the upper-layer packet length.
pub fn pseudo_header_v6(src_addr: &Ipv6Address, dst_addr: &Ipv6Address, next_header: IpProtocol, length: u32) -> u16 {
    let sum = u64::from(data(&src_addr.octets())) + u64::from(data(&dst_addr.octets())) + u64::from(length >> 16) + u64::from(length & 0xffff) + u64::from(u8::from(next_header));
    fold(sum)
}

/// Return the checksum field after a 16-bit word changed from `old_word`
/// to `new_word` (RFC 1624 eqn 3).
///
/// `old_checksum` and the result are checksum *field* values (inverted).
pub const fn update(old_checksum: u16, old_word: u16, new_word: u16) -> u16 {
    let sum = (!old_checksum) as u64 + (!old_word) as u64 + new_word as u64;
    !fold(sum)
}

/// Return the checksum field after a 32-bit field (an IPv4 address, a TCP
/// sequence number) changed from `old` to `new`.
pub const fn update32(old_checksum: u16, old: u32, new: u32) -> u16 {
    let sum = (!old_checksum) as u64 + (!(old >> 16) & 0xffff) as u64 + (!old & 0xffff) as u64 + (new >> 16) as u64 + (new & 0xffff) as u64;
    !fold(sum)
}

#[cfg(test)]
mod test {
    use super::*;

    // RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
    static RFC1071_BYTES: [u8; 8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];

    // An IPv4 header with a correct checksum (0xb861).
    static IPV4_HEADER: [u8; 20] = [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7];

    #[test]
    fn test_data_rfc1071() {
        assert_eq!(data(&RFC1071_BYTES), 0xddf2);
        assert_eq!(data(&[]), 0);
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn test_verify_known_header() {
        assert_eq!(data(&IPV4_HEADER), 0xffff);
        let mut h = IPV4_HEADER;
        h[10] = 0;
        h[11] = 0;
        assert_eq!(!data(&h), 0xb861);
    }

    #[test]
    fn test_combine() {
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
        assert_eq!(combine(&[0x8000, 0x8000]), 0x0001);
        assert_eq!(combine(&[]), 0);
        assert_eq!(combine(&[data(&IPV4_HEADER[..10]), data(&IPV4_HEADER[10..])]), data(&IPV4_HEADER));
    }

    #[test]
    fn test_pseudo_header() {
        let src = Ipv4Address::new(192, 168, 0, 1);
        let dst = Ipv4Address::new(192, 168, 0, 199);
        let mut ph = [0u8; 12];
        ph[0..4].copy_from_slice(&src.octets());
        ph[4..8].copy_from_slice(&dst.octets());
        ph[9] = 17;
        ph[10..12].copy_from_slice(&95u16.to_be_bytes());
        assert_eq!(pseudo_header_v4(&src, &dst, IpProtocol::Udp, 95), data(&ph));

        let src6: Ipv6Address = "fe80::1".parse().unwrap();
        let dst6: Ipv6Address = "ff02::1:ff00:2".parse().unwrap();
        let mut ph6 = [0u8; 40];
        ph6[0..16].copy_from_slice(&src6.octets());
        ph6[16..32].copy_from_slice(&dst6.octets());
        ph6[32..36].copy_from_slice(&0x0001_0020u32.to_be_bytes());
        ph6[39] = 58;
        assert_eq!(pseudo_header_v6(&src6, &dst6, IpProtocol::Ipv6Icmp, 0x0001_0020), data(&ph6));
    }

    #[test]
    fn test_update_ttl() {
        let mut h = IPV4_HEADER;
        let old_word = u16::from_be_bytes([h[8], h[9]]);
        h[8] -= 1;
        let new_word = u16::from_be_bytes([h[8], h[9]]);
        let patched = update(0xb861, old_word, new_word);
        h[10] = 0;
        h[11] = 0;
        assert_eq!(patched, !data(&h));
    }

    #[test]
    fn test_update32_address() {
        let mut h = IPV4_HEADER;
        let old = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
        let new: u32 = 0x0a00_0005;
        h[12..16].copy_from_slice(&new.to_be_bytes());
        let patched = update32(0xb861, old, new);
        h[10] = 0;
        h[11] = 0;
        assert_eq!(patched, !data(&h));
    }
}
