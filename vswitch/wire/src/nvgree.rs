//! MS-NVGREE control messages: REDIRECT and UNREACHABLE, ICMPv4 inside NVGRE.
//!
//! A host that receives NVGRE for a VM that is no longer there tells the
//! sending host, in the VSID of that traffic:
//! - REDIRECT: the VM moved; its new provider address is in the message;
//! - UNREACHABLE: this host has no such VM; the sender's policy is stale.
//!
//! The NVGRE payload is the inner frame this module parses and builds:
//!
//! ```text
//! Ethernet  dst = the sender NVE's PA MAC, src = the receiver NVE's PA MAC, type 0x0800
//! IPv4      src = receiver PA, dst = sender PA, protocol 1 (ICMP), TTL 64
//! ICMPv4    REDIRECT:    type 5 (redirect), code 1 (host), gateway = the new PA
//!           UNREACHABLE: type 3 (destination unreachable), code 1 (host)
//!           then the quoted inner IPv4 header of the triggering traffic
//!           (src = the sending VM's CA, dst = the VM's CA) and 8 bytes
//! ```
//!
//! This is hnvswitch's reading of MS-NVGREE §2.2 (REDIRECT/UNREACHABLE) for
//! IPv4 provider and customer addresses; IPv6 is not built.
//! [`ControlRepr::parse`] checks lengths, the IPv4 and ICMP checksums and
//! the types, and never panics.

use crate::ethernet::{Address as EthernetAddress, EtherType, Frame as EthernetFrame};
use crate::icmpv4::{DstUnreachable, Packet as Icmpv4Packet, Repr as Icmpv4Repr};
use crate::ip::{IpProtocol, Ipv4Address};
use crate::ipv4::{Packet as Ipv4Packet, Repr as Ipv4Repr};
use crate::{Error, Result};

/// Bytes of the quoted invoking packet: an IPv4 header and 8 bytes.
const QUOTE_LEN: usize = 28;
/// Length of the inner frame: Ethernet 14 + IPv4 20 + ICMP 8 + quote 28.
pub const FRAME_LEN: usize = 14 + 20 + 8 + QUOTE_LEN;
/// TTL of the inner IPv4 header.
const TTL: u8 = 64;

/// Which control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// The VM now lives at `new_pa`.
    Redirect {
        /// Its new provider address.
        new_pa: Ipv4Address,
    },
    /// No such VM at the receiver.
    Unreachable,
}

/// A parsed or to-be-built control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlRepr {
    /// REDIRECT or UNREACHABLE.
    pub control: Control,
    /// PA of the host sending the message (the receiver of the data traffic).
    pub from_pa: Ipv4Address,
    /// PA of the host the message is for (the sender of the data traffic).
    pub to_pa: Ipv4Address,
    /// CA of the VM that sent the data traffic.
    pub src_ca: Ipv4Address,
    /// CA the data traffic was for (the VM that moved or is missing).
    pub dst_ca: Ipv4Address,
}

impl ControlRepr {
    /// Parse an inner Ethernet frame as a control message.
    ///
    /// # Errors
    /// [`Error::Truncated`] or [`Error::Malformed`] when it is too short or
    /// not IPv4/ICMP; [`Error::BadChecksum`]; [`Error::Unsupported`] for
    /// other ICMP messages.
    pub fn parse(frame: &[u8]) -> Result<ControlRepr> {
        let eth = EthernetFrame::new_checked(frame)?;
        if eth.ethertype() != EtherType::Ipv4 {
            return Err(Error::Unsupported);
        }
        let ip = Ipv4Packet::new_checked(eth.payload())?;
        let ipr = Ipv4Repr::parse(&ip)?;
        if ipr.next_header != IpProtocol::Icmp {
            return Err(Error::Unsupported);
        }
        let icmp = Icmpv4Packet::new_checked(ip.payload())?;
        let (control, quote) = match Icmpv4Repr::parse(&icmp)? {
            Icmpv4Repr::Redirect { code: 1, gateway, data } => (Control::Redirect { new_pa: gateway }, data),
            Icmpv4Repr::DstUnreachable { reason: DstUnreachable::HostUnreachable, data, .. } => (Control::Unreachable, data),
            _ => return Err(Error::Unsupported),
        };
        // A quote holds a header and the first 8 bytes only, so its total length is not checked.
        let quoted = Ipv4Packet::new_unchecked(quote.get(..20).ok_or(Error::Truncated)?);
        if quoted.version() != 4 {
            return Err(Error::Malformed);
        }
        Ok(ControlRepr { control, from_pa: ipr.src_addr, to_pa: ipr.dst_addr, src_ca: quoted.src_addr(), dst_ca: quoted.dst_addr() })
    }

    /// Write the inner frame into the first [`FRAME_LEN`] bytes of `buf`,
    /// from `src_mac` (this host's PA MAC) to `dst_mac` (the other host's).
    ///
    /// # Errors
    /// [`Error::Truncated`] when `buf` is shorter than [`FRAME_LEN`].
    pub fn emit(&self, src_mac: EthernetAddress, dst_mac: EthernetAddress, buf: &mut [u8]) -> Result<usize> {
        let buf = buf.get_mut(..FRAME_LEN).ok_or(Error::Truncated)?;
        buf.fill(0);
        // The quoted header of the triggering traffic (its checksum is not checked by readers).
        let mut quote = [0u8; QUOTE_LEN];
        {
            let q = Ipv4Repr { src_addr: self.src_ca, dst_addr: self.dst_ca, next_header: IpProtocol::Udp, payload_len: 8, hop_limit: TTL, dont_frag: false };
            let mut qp = Ipv4Packet::new_unchecked(&mut quote[..]);
            q.emit(&mut qp);
        }
        let (eth, rest) = buf.split_at_mut(14);
        let mut e = EthernetFrame::new_unchecked(eth);
        e.set_dst_addr(dst_mac);
        e.set_src_addr(src_mac);
        e.set_ethertype(EtherType::Ipv4);
        let (iph, icmp) = rest.split_at_mut(20);
        let ipr = Ipv4Repr { src_addr: self.from_pa, dst_addr: self.to_pa, next_header: IpProtocol::Icmp, payload_len: 8 + QUOTE_LEN, hop_limit: TTL, dont_frag: true };
        ipr.emit(&mut Ipv4Packet::new_unchecked(iph));
        let msg = match self.control {
            Control::Redirect { new_pa } => Icmpv4Repr::Redirect { code: 1, gateway: new_pa, data: &quote },
            Control::Unreachable => Icmpv4Repr::DstUnreachable { reason: DstUnreachable::HostUnreachable, next_hop_mtu: 0, data: &quote },
        };
        msg.emit(&mut Icmpv4Packet::new_unchecked(icmp));
        Ok(FRAME_LEN)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn repr(control: Control) -> ControlRepr {
        ControlRepr { control, from_pa: Ipv4Address::new(192, 168, 4, 22), to_pa: Ipv4Address::new(192, 168, 4, 11), src_ca: Ipv4Address::new(10, 0, 0, 5), dst_ca: Ipv4Address::new(10, 0, 0, 7) }
    }

    #[test]
    fn round_trips_both_messages() {
        for c in [Control::Redirect { new_pa: Ipv4Address::new(192, 168, 4, 33) }, Control::Unreachable] {
            let mut buf = [0u8; FRAME_LEN];
            let n = repr(c).emit(EthernetAddress([2, 0, 0, 0, 0, 22]), EthernetAddress([2, 0, 0, 0, 0, 11]), &mut buf).unwrap();
            assert_eq!(n, FRAME_LEN);
            assert_eq!(ControlRepr::parse(&buf).unwrap(), repr(c));
            assert_eq!(&buf[0..6], &[2, 0, 0, 0, 0, 11]);
        }
    }

    #[test]
    fn rejects_damage_without_panicking() {
        let mut buf = [0u8; FRAME_LEN];
        repr(Control::Unreachable).emit(EthernetAddress([2; 6]), EthernetAddress([4; 6]), &mut buf).unwrap();
        for n in 0..FRAME_LEN {
            assert!(ControlRepr::parse(&buf[..n]).is_err(), "truncated at {n}");
        }
        let mut bad = buf;
        bad[14 + 20 + 9] ^= 1; // ICMP body: checksum fails
        assert_eq!(ControlRepr::parse(&bad), Err(Error::BadChecksum));
        assert!(ControlRepr::parse(&[0u8; 8]).is_err());
        assert!(ControlRepr::emit(&repr(Control::Unreachable), EthernetAddress([2; 6]), EthernetAddress([4; 6]), &mut [0u8; 10]).is_err());
    }
}
