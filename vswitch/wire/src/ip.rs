//! Items shared by IPv4 and IPv6: the protocol number and address types.
//!
//! The address types are the standard library's, so they format, parse and
//! compare as everywhere else.

use core::fmt;

/// An IPv4 address.
pub type Ipv4Address = core::net::Ipv4Addr;

/// An IPv6 address.
pub type Ipv6Address = core::net::Ipv6Addr;

enum_with_unknown! {
    /// IP protocol number (IPv4 `protocol`, IPv6 `next header`), IANA registry.
    pub enum IpProtocol(u8) {
        /// IPv6 Hop-by-Hop Options.
        HopByHop = 0,
        /// ICMP for IPv4.
        Icmp = 1,
        /// TCP.
        Tcp = 6,
        /// UDP.
        Udp = 17,
        /// IPv6 Routing header.
        Ipv6Route = 43,
        /// IPv6 Fragment header.
        Ipv6Frag = 44,
        /// GRE (and so NVGRE).
        Gre = 47,
        /// ICMP for IPv6.
        Ipv6Icmp = 58,
        /// IPv6 No Next Header.
        Ipv6NoNxt = 59,
        /// IPv6 Destination Options.
        Ipv6Opts = 60,
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpProtocol::HopByHop => f.write_str("Hop-by-Hop"),
            IpProtocol::Icmp => f.write_str("ICMP"),
            IpProtocol::Tcp => f.write_str("TCP"),
            IpProtocol::Udp => f.write_str("UDP"),
            IpProtocol::Ipv6Route => f.write_str("IPv6-Route"),
            IpProtocol::Ipv6Frag => f.write_str("IPv6-Frag"),
            IpProtocol::Gre => f.write_str("GRE"),
            IpProtocol::Ipv6Icmp => f.write_str("ICMPv6"),
            IpProtocol::Ipv6NoNxt => f.write_str("IPv6-NoNxt"),
            IpProtocol::Ipv6Opts => f.write_str("IPv6-Opts"),
            IpProtocol::Unknown(v) => write!(f, "proto-{v}"),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn test_protocol_roundtrip() {
        for raw in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(raw)), raw);
        }
        assert_eq!(IpProtocol::from(47), IpProtocol::Gre);
        assert_eq!(IpProtocol::from(58), IpProtocol::Ipv6Icmp);
        assert_eq!(IpProtocol::from(200), IpProtocol::Unknown(200));
    }
}
