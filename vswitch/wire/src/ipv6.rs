//! IPv6 fixed headers (RFC 8200 §3). Extension headers are not parsed.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Traffic Class |           Flow Label                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                    Source Address (128 bits)                  +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                 Destination Address (128 bits)                +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Contract: [`Packet::new_checked`] checks, in order: at least 40 bytes
//! ([`Error::Truncated`]), version 6 ([`Error::BadVersion`]) and
//! `40 + payload_len` within the buffer ([`Error::Truncated`]). The buffer
//! may be longer (Ethernet padding); [`Packet::payload`] stops at the payload
//! length. Afterwards no getter panics; `set_payload_len` can invalidate
//! the checks. A `next_header` naming an extension header is reported as
//! is; this crate does not walk extension chains.

use core::fmt;

use crate::bytes::{read_u16, read_u32, write_u16, write_u32};
use crate::{Error, IpProtocol, Ipv6Address, Result};

/// A read/write view of an IPv6 packet.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;

    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
}

/// The IPv6 fixed header length.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

fn ipv6_at(d: &[u8]) -> Ipv6Address {
    let mut o = [0u8; 16];
    o.copy_from_slice(&d[..16]);
    Ipv6Address::from(o)
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking it; getters panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer, check the version and lengths (see the module docs).
    ///
    /// # Errors
    /// [`Error::Truncated`] or [`Error::BadVersion`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if packet.version() != 6 {
            return Err(Error::BadVersion);
        }
        packet.check_len()?;
        Ok(packet)
    }

    /// Check that the buffer holds the header and the payload length.
    ///
    /// # Errors
    /// [`Error::Truncated`] when it is shorter than 40 bytes or than
    /// `40 + payload_len`.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < self.total_len() {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Consume the view and return the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Return the header length (always 40).
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    /// Return the header plus payload length.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    fn ver_tc_flow(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::VER_TC_FLOW])
    }

    /// Return the version field.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Return the traffic class field.
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// Return the flow label field (20 bits).
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Return the payload length field.
    pub fn payload_len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Return the next header field.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// Return the hop limit field.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Return the source address field.
    pub fn src_addr(&self) -> Ipv6Address {
        ipv6_at(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// Return the destination address field.
    pub fn dst_addr(&self) -> Ipv6Address {
        ipv6_at(&self.buffer.as_ref()[field::DST_ADDR])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Return the payload (`payload_len` bytes after the fixed header).
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_ver_tc_flow(&mut self, value: u32) {
        write_u32(&mut self.buffer.as_mut()[field::VER_TC_FLOW], value);
    }

    /// Set the version field.
    pub fn set_version(&mut self, value: u8) {
        let raw = (self.ver_tc_flow() & 0x0fff_ffff) | (u32::from(value & 0x0f) << 28);
        self.set_ver_tc_flow(raw);
    }

    /// Set the traffic class field.
    pub fn set_traffic_class(&mut self, value: u8) {
        let raw = (self.ver_tc_flow() & 0xf00f_ffff) | (u32::from(value) << 20);
        self.set_ver_tc_flow(raw);
    }

    /// Set the flow label field (low 20 bits of `value`).
    pub fn set_flow_label(&mut self, value: u32) {
        let raw = (self.ver_tc_flow() & 0xfff0_0000) | (value & 0x000f_ffff);
        self.set_ver_tc_flow(raw);
    }

    /// Set the payload length field.
    pub fn set_payload_len(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::LENGTH], value);
    }

    /// Set the next header field.
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = value.into();
    }

    /// Set the hop limit field.
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    /// Set the source address field.
    pub fn set_src_addr(&mut self, value: Ipv6Address) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Set the destination address field.
    pub fn set_dst_addr(&mut self, value: Ipv6Address) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// Return a mutable slice of the payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The valid subset of an IPv6 fixed header.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Address,
    /// Destination address.
    pub dst_addr: Ipv6Address,
    /// Next header.
    pub next_header: IpProtocol,
    /// Payload length.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Repr {
    /// Parse a view (re-checks version and lengths). Traffic class and flow
    /// label are not kept.
    ///
    /// # Errors
    /// Those of [`Packet::new_checked`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        let packet = Packet::new_checked(packet.buffer)?;
        Ok(Repr { src_addr: packet.src_addr(), dst_addr: packet.dst_addr(), next_header: packet.next_header(), payload_len: usize::from(packet.payload_len()), hop_limit: packet.hop_limit() })
    }

    /// Return the header length (40).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the fixed header (traffic class and flow label 0).
    ///
    /// `payload_len` must be at most 65535; larger values are truncated.
    ///
    /// # Panics
    /// When the buffer is shorter than [`Repr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_ver_tc_flow(6 << 28);
        packet.set_payload_len(self.payload_len as u16);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IPv6 {} > {} {} hlim {} len {}", self.src_addr, self.dst_addr, self.next_header, self.hop_limit, self.payload_len)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // TC 0x12, flow 0x34567, payload 4, UDP, hop limit 64, fe80::1 > fe80::2.
    static PACKET_BYTES: [u8; 44] = [
        0x61, 0x23, 0x45, 0x67, 0x00, 0x04, 0x11, 0x40, //
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, //
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, //
        0xde, 0xad, 0xbe, 0xef,
    ];

    fn src() -> Ipv6Address {
        Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)
    }

    fn dst() -> Ipv6Address {
        Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 2)
    }

    #[test]
    fn test_deconstruct() {
        let p = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x12);
        assert_eq!(p.flow_label(), 0x34567);
        assert_eq!(p.payload_len(), 4);
        assert_eq!(p.next_header(), IpProtocol::Udp);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), src());
        assert_eq!(p.dst_addr(), dst());
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 44];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_version(6);
        p.set_traffic_class(0x12);
        p.set_flow_label(0x34567);
        p.set_payload_len(4);
        p.set_next_header(IpProtocol::Udp);
        p.set_hop_limit(64);
        p.set_src_addr(src());
        p.set_dst_addr(dst());
        p.payload_mut().copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn test_parse_emit() {
        let repr = Repr { src_addr: src(), dst_addr: dst(), next_header: IpProtocol::Udp, payload_len: 4, hop_limit: 64 };
        let p = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&p), Ok(repr));
        let mut bytes = [0xa5u8; 44];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        let mut expected = PACKET_BYTES;
        expected[..4].copy_from_slice(&[0x60, 0, 0, 0]);
        assert_eq!(&bytes[..40], &expected[..40]);
    }

    #[test]
    fn test_check_len_truncated_header() {
        assert_eq!(Packet::new_checked(&PACKET_BYTES[..39]), Err(Error::Truncated));
    }

    #[test]
    fn test_check_len_truncated_payload() {
        assert_eq!(Packet::new_checked(&PACKET_BYTES[..43]), Err(Error::Truncated));
    }

    #[test]
    fn test_bad_version() {
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x41;
        assert_eq!(Packet::new_checked(&bytes[..]), Err(Error::BadVersion));
    }
}
