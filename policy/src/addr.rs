//! Address value types and their text forms: IP prefixes, MAC addresses,
//! port ranges, IP protocols and GUIDs.
//!
//! Contract:
//! - A [`Prefix`] always has `len <= 32` (IPv4) or `len <= 128` (IPv6) and no
//!   host bits set; parsing `"a.b.c.d/n"` or `"v6/n"` rejects anything else.
//! - [`parse_mac`] accepts `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (any
//!   case) and [`format_mac`] writes lower-case colon form; the two round-trip.
//! - Nothing here panics on any input.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use hnv_wire::EthernetAddress;
use thiserror::Error;

/// An IP prefix: an address and a prefix length, with all host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

/// Why text or numbers do not form a [`Prefix`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PrefixError {
    /// No `/len` part.
    #[error("'{0}' is not a prefix (expected address/length, e.g. 10.0.0.0/24)")]
    Syntax(String),
    /// The address part does not parse.
    #[error("'{0}' is not an IP address")]
    Address(String),
    /// The length is not a number or exceeds the family's width.
    #[error("prefix length '{len}' is invalid for {family} (0..={max})")]
    Length {
        /// The offending length text.
        len: String,
        /// "IPv4" or "IPv6".
        family: &'static str,
        /// 32 or 128.
        max: u8,
    },
    /// Bits beyond the prefix length are set.
    #[error("{addr}/{len} has host bits set (did you mean {network}/{len}?)")]
    HostBits {
        /// The address as given.
        addr: IpAddr,
        /// The prefix length.
        len: u8,
        /// The address with host bits cleared.
        network: IpAddr,
    },
}

fn family_max(addr: &IpAddr) -> (u8, &'static str) {
    match addr {
        IpAddr::V4(_) => (32, "IPv4"),
        IpAddr::V6(_) => (128, "IPv6"),
    }
}

fn addr_bits(addr: &IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(*a)),
        IpAddr::V6(a) => u128::from(*a),
    }
}

fn mask_of(max: u8, len: u8) -> u128 {
    // Mask with the top `len` bits of a `max`-bit number set.
    if len == 0 {
        return 0;
    }
    let ones = u128::MAX >> (128 - u32::from(len.min(max)));
    ones << (u32::from(max) - u32::from(len.min(max)))
}

fn with_bits(addr: &IpAddr, bits: u128) -> IpAddr {
    match addr {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from((bits & 0xFFFF_FFFF) as u32)),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(bits)),
    }
}

impl Prefix {
    /// Builds a prefix, rejecting an over-long length or set host bits.
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, PrefixError> {
        let (max, family) = family_max(&addr);
        if len > max {
            return Err(PrefixError::Length { len: len.to_string(), family, max });
        }
        let bits = addr_bits(&addr);
        let mask = mask_of(max, len);
        if bits & !mask != 0 {
            return Err(PrefixError::HostBits { addr, len, network: with_bits(&addr, bits & mask) });
        }
        Ok(Prefix { addr, len })
    }

    /// The single-address prefix (/32 or /128) for `addr`.
    pub fn host(addr: IpAddr) -> Prefix {
        let (max, _) = family_max(&addr);
        Prefix { addr, len: max }
    }

    /// The network address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether this is an IPv4 prefix.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether `ip` lies inside this prefix (always false across families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.addr.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        let (max, _) = family_max(&ip);
        let mask = mask_of(max, self.len);
        addr_bits(&ip) & mask == addr_bits(&self.addr)
    }

    /// Whether the two prefixes share any address.
    pub fn overlaps(&self, other: &Prefix) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let Some((a, l)) = t.split_once('/') else {
            return Err(PrefixError::Syntax(s.to_string()));
        };
        let addr: IpAddr = a.parse().map_err(|_| PrefixError::Address(a.to_string()))?;
        let (max, family) = family_max(&addr);
        let len = match l.parse::<u8>() {
            Ok(n) if n <= max && !l.starts_with('+') => n,
            _ => return Err(PrefixError::Length { len: l.to_string(), family, max }),
        };
        Prefix::new(addr, len)
    }
}

/// Why text is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("'{0}' is not a MAC address (expected six hex octets, e.g. 00:15:5d:01:00:05)")]
pub struct MacError(pub String);

/// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (either case; each octet
/// exactly two hex digits).
pub fn parse_mac(s: &str) -> Result<EthernetAddress, MacError> {
    let t = s.trim().as_bytes();
    let bad = || MacError(s.to_string());
    // `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`: 17 bytes, one separator throughout.
    let sep = *t.get(2).ok_or_else(bad)?;
    if t.len() != 17 || (sep != b':' && sep != b'-') {
        return Err(bad());
    }
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 6];
    for (i, o) in out.iter_mut().enumerate() {
        let j = i * 3;
        if i > 0 && t[j - 1] != sep {
            return Err(bad());
        }
        *o = hex(t[j]).zip(hex(t[j + 1])).map(|(h, l)| h << 4 | l).ok_or_else(bad)?;
    }
    Ok(EthernetAddress(out))
}

/// Writes a MAC in lower-case colon form, `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &EthernetAddress) -> String {
    let m = &mac.0;
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

/// Whether the MAC has the group (multicast/broadcast) bit set.
pub fn is_multicast_mac(mac: &EthernetAddress) -> bool {
    mac.0[0] & 1 == 1
}

/// Whether the MAC is usable as a station address: not multicast, not all-zero.
pub fn is_unicast_mac(mac: &EthernetAddress) -> bool {
    !is_multicast_mac(mac) && mac.0 != [0; 6]
}

/// Why text is not a port or port range.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PortRangeError {
    /// Not `N` or `LO-HI` with numbers in `0..=65535`.
    #[error("'{0}' is not a port or port range (expected e.g. 80 or 1000-2000)")]
    Syntax(String),
    /// `LO` is greater than `HI`.
    #[error("port range {0}-{1} is empty (low end above high end)")]
    Reversed(u16, u16),
}

/// Parses `"80"` or `"1000-2000"` into an inclusive range.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), PortRangeError> {
    let t = s.trim();
    let num = |p: &str| -> Result<u16, PortRangeError> {
        let p = p.trim();
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PortRangeError::Syntax(s.to_string()));
        }
        p.parse::<u16>().map_err(|_| PortRangeError::Syntax(s.to_string()))
    };
    let (lo, hi) = match t.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let v = num(t)?;
            (v, v)
        }
    };
    if lo > hi {
        return Err(PortRangeError::Reversed(lo, hi));
    }
    Ok((lo, hi))
}

/// Writes a port range as `"80"` or `"1000-2000"`.
pub fn format_port_range(r: (u16, u16)) -> String {
    if r.0 == r.1 {
        r.0.to_string()
    } else {
        format!("{}-{}", r.0, r.1)
    }
}

/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;

/// Why text is not an IP protocol.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("'{0}' is not a protocol (expected any, tcp, udp, icmp, icmpv6 or a number 0..=255)")]
pub struct ProtocolError(pub String);

/// Parses `any` (→ `None`), `tcp`, `udp`, `icmp`, `icmpv6` (any case) or a
/// decimal number `0..=255`.
pub fn parse_protocol(s: &str) -> Result<Option<u8>, ProtocolError> {
    let t = s.trim().to_ascii_lowercase();
    match t.as_str() {
        "any" | "*" => Ok(None),
        "tcp" => Ok(Some(PROTO_TCP)),
        "udp" => Ok(Some(PROTO_UDP)),
        "icmp" => Ok(Some(PROTO_ICMP)),
        "icmpv6" => Ok(Some(PROTO_ICMPV6)),
        n if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n.parse::<u8>().map(Some).map_err(|_| ProtocolError(s.to_string())),
        _ => Err(ProtocolError(s.to_string())),
    }
}

/// Writes a protocol the way [`parse_protocol`] reads it (`any` for `None`).
pub fn format_protocol(p: Option<u8>) -> String {
    match p {
        None => "any".to_string(),
        Some(PROTO_TCP) => "tcp".to_string(),
        Some(PROTO_UDP) => "udp".to_string(),
        Some(PROTO_ICMP) => "icmp".to_string(),
        Some(PROTO_ICMPV6) => "icmpv6".to_string(),
        Some(n) => n.to_string(),
    }
}

/// Whether `s` is a GUID in registry form, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`,
/// optionally wrapped in braces.
pub fn is_guid(s: &str) -> bool {
    let t = s.trim();
    let inner = match (t.strip_prefix('{'), t.strip_suffix('}')) {
        (Some(_), Some(_)) if t.len() >= 2 => &t[1..t.len() - 1],
        (None, None) => t,
        _ => return false,
    };
    let groups: Vec<&str> = inner.split('-').collect();
    let lens = [8usize, 4, 4, 4, 12];
    groups.len() == 5 && groups.iter().zip(lens).all(|(g, l)| g.len() == l && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn prefix_parse() {
        let p: Prefix = "10.0.0.0/24".parse().expect("valid");
        assert_eq!((p.addr(), p.len()), (ip("10.0.0.0"), 24));
        assert!(p.contains(ip("10.0.0.255")));
        assert!(!p.contains(ip("10.0.1.0")));
        assert!(!p.contains(ip("::a00:0")));
        assert_eq!(p.to_string(), "10.0.0.0/24");
        let z: Prefix = "0.0.0.0/0".parse().expect("valid");
        assert!(z.contains(ip("255.255.255.255")));
        let v6: Prefix = "fd00:1::/64".parse().expect("valid");
        assert!(v6.contains(ip("fd00:1::5")));
        assert!(!v6.contains(ip("fd00:2::5")));
        let all6: Prefix = "::/0".parse().expect("valid");
        assert!(all6.contains(ip("ffff::1")));
        let h: Prefix = "10.1.2.3/32".parse().expect("valid");
        assert!(h.contains(ip("10.1.2.3")) && !h.contains(ip("10.1.2.4")));
        assert_eq!(Prefix::host(ip("fd00::1")).len(), 128);
    }

    #[test]
    fn prefix_rejects() {
        assert!(matches!("10.0.0.1/24".parse::<Prefix>(), Err(PrefixError::HostBits { .. })));
        assert!(matches!("10.0.0.0/33".parse::<Prefix>(), Err(PrefixError::Length { .. })));
        assert!(matches!("fd00::/129".parse::<Prefix>(), Err(PrefixError::Length { .. })));
        assert!(matches!("10.0.0.0".parse::<Prefix>(), Err(PrefixError::Syntax(_))));
        assert!(matches!("10.0.0/8".parse::<Prefix>(), Err(PrefixError::Address(_))));
        assert!(matches!("10.0.0.0/+8".parse::<Prefix>(), Err(PrefixError::Length { .. })));
        assert!(matches!("fd00::1/64".parse::<Prefix>(), Err(PrefixError::HostBits { .. })));
        let e = "10.0.0.1/24".parse::<Prefix>().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("10.0.0.0/24"), "{e}");
    }

    #[test]
    fn prefix_overlap() {
        let a: Prefix = "10.0.0.0/16".parse().expect("valid");
        let b: Prefix = "10.0.5.0/24".parse().expect("valid");
        let c: Prefix = "10.1.0.0/16".parse().expect("valid");
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
    }

    #[test]
    fn mac_parse_format() {
        let m = parse_mac("00:15:5D:01:00:05").expect("valid");
        assert_eq!(m, EthernetAddress([0, 0x15, 0x5d, 1, 0, 5]));
        assert_eq!(format_mac(&m), "00:15:5d:01:00:05");
        assert_eq!(parse_mac("00-15-5d-01-00-05"), Ok(m));
        for bad in ["", "00:15:5d:01:00", "00:15:5d:01:00:05:06", "0:15:5d:01:00:05", "00:15:5d:01:00:zz", "00:15-5d:01:00:05", "+0:15:5d:01:00:05"] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
        assert!(is_multicast_mac(&EthernetAddress([1, 0, 0x5e, 0, 0, 1])));
        assert!(!is_unicast_mac(&EthernetAddress([0; 6])));
        assert!(is_unicast_mac(&m));
    }

    #[test]
    fn ports_and_protocols() {
        assert_eq!(parse_port_range("80"), Ok((80, 80)));
        assert_eq!(parse_port_range("1000-2000"), Ok((1000, 2000)));
        assert_eq!(parse_port_range("2000-1000"), Err(PortRangeError::Reversed(2000, 1000)));
        assert!(parse_port_range("65536").is_err());
        assert!(parse_port_range("-1").is_err());
        assert!(parse_port_range("+1").is_err());
        assert_eq!(format_port_range((5, 5)), "5");
        assert_eq!(format_port_range((5, 7)), "5-7");
        assert_eq!(parse_protocol("any"), Ok(None));
        assert_eq!(parse_protocol("TCP"), Ok(Some(6)));
        assert_eq!(parse_protocol("icmpv6"), Ok(Some(58)));
        assert_eq!(parse_protocol("47"), Ok(Some(47)));
        assert!(parse_protocol("256").is_err());
        assert!(parse_protocol("sctp").is_err());
        for p in [None, Some(1), Some(6), Some(17), Some(58), Some(47)] {
            assert_eq!(parse_protocol(&format_protocol(p)), Ok(p));
        }
    }

    #[test]
    fn guids() {
        assert!(is_guid("{11111111-2222-3333-4444-555555555555}"));
        assert!(is_guid("11111111-2222-3333-4444-aaaaaaaaaaaa"));
        assert!(!is_guid("{11111111-2222-3333-4444-555555555555"));
        assert!(!is_guid("11111111-2222-3333-4444-55555555555"));
        assert!(!is_guid("1111111g-2222-3333-4444-555555555555"));
        assert!(!is_guid("{}"));
        assert!(!is_guid("}"));
        assert!(!is_guid(""));
    }
}
