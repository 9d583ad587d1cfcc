//! UDP datagrams (RFC 768), with IPv4 and IPv6 pseudo-header checksums.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Source Port          |       Destination Port        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            Length             |           Checksum            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Contract: [`Packet::new_checked`] checks that the 8-byte header is
//! present ([`Error::Truncated`]), that the length field is at least 8
//! ([`Error::Malformed`]) and that it fits the buffer ([`Error::Truncated`]).
//! Afterwards no getter panics; `set_len` can invalidate the checks. The
//! checksum covers `len()` bytes, so pass the IP payload as the buffer.
//!
//! Checksums need the IP addresses, so they are separate from parsing:
//! [`Packet::verify_checksum_v4`] (a zero field means "no checksum" over
//! IPv4), [`Packet::verify_checksum_v6`] (zero is invalid over IPv6, RFC
//! 8200 §8.1), and the matching `fill_checksum_*` which write 0xffff for a
//! computed zero.

use core::fmt;

use crate::bytes::{read_u16, write_u16};
use crate::{checksum, Error, IpProtocol, Ipv4Address, Ipv6Address, Result};

/// A read/write view of a UDP datagram.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// The UDP header length.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking it; getters panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer and check it (see [`Packet::check_len`]).
    ///
    /// # Errors
    /// [`Error::Truncated`] or [`Error::Malformed`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Check the header and the length field.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the buffer is shorter than 8 bytes or the
    /// length field; [`Error::Malformed`] when the length field is below 8.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if field_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Consume the view and return the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Return the header length (always 8).
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    /// Return the source port field.
    pub fn src_port(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    /// Return the destination port field.
    pub fn dst_port(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::DST_PORT])
    }

    /// Return the length field (header plus payload).
    pub fn len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Query whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Return the checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    fn sum_v4(&self, src: &Ipv4Address, dst: &Ipv4Address) -> u16 {
        let len = self.len();
        checksum::combine(&[checksum::pseudo_header_v4(src, dst, IpProtocol::Udp, len), checksum::data(&self.buffer.as_ref()[..usize::from(len)])])
    }

    fn sum_v6(&self, src: &Ipv6Address, dst: &Ipv6Address) -> u16 {
        let len = self.len();
        checksum::combine(&[checksum::pseudo_header_v6(src, dst, IpProtocol::Udp, u32::from(len)), checksum::data(&self.buffer.as_ref()[..usize::from(len)])])
    }

    /// Validate the checksum over IPv4; a zero field (no checksum) is valid.
    pub fn verify_checksum_v4(&self, src_addr: &Ipv4Address, dst_addr: &Ipv4Address) -> bool {
        self.checksum() == 0 || self.sum_v4(src_addr, dst_addr) == !0
    }

    /// Validate the checksum over IPv6; a zero field is invalid.
    pub fn verify_checksum_v6(&self, src_addr: &Ipv6Address, dst_addr: &Ipv6Address) -> bool {
        self.checksum() != 0 && self.sum_v6(src_addr, dst_addr) == !0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Return the payload (up to the length field).
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
}

fn nonzero(sum: u16) -> u16 {
    match !sum {
        0 => 0xffff,
        c => c,
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the source port field.
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::SRC_PORT], value);
    }

    /// Set the destination port field.
    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::DST_PORT], value);
    }

    /// Set the length field.
    pub fn set_len(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::LENGTH], value);
    }

    /// Set the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
    }

    /// Compute and write the checksum with the IPv4 pseudo-header.
    pub fn fill_checksum_v4(&mut self, src_addr: &Ipv4Address, dst_addr: &Ipv4Address) {
        self.set_checksum(0);
        let c = nonzero(self.sum_v4(src_addr, dst_addr));
        self.set_checksum(c);
    }

    /// Compute and write the checksum with the IPv6 pseudo-header.
    pub fn fill_checksum_v6(&mut self, src_addr: &Ipv6Address, dst_addr: &Ipv6Address) {
        self.set_checksum(0);
        let c = nonzero(self.sum_v6(src_addr, dst_addr));
        self.set_checksum(c);
    }

    /// Return a mutable slice of the payload (up to the length field).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The valid subset of a UDP header.
///
/// The checksum is not part of it: verify it on the view, and fill it after
/// [`Repr::emit`] and after writing the payload.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length (length field minus 8).
    pub payload_len: usize,
}

impl Repr {
    /// Parse a view (re-checks lengths; does not verify the checksum).
    ///
    /// # Errors
    /// Those of [`Packet::check_len`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr { src_port: packet.src_port(), dst_port: packet.dst_port(), payload_len: usize::from(packet.len()) - HEADER_LEN })
    }

    /// Return the header length (8).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the header with a zero checksum.
    ///
    /// # Panics
    /// When the buffer is shorter than [`Repr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len((HEADER_LEN + self.payload_len) as u16);
        packet.set_checksum(0);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UDP {} > {} len {}", self.src_port, self.dst_port, self.payload_len)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // 192.168.1.1:53 > 192.168.1.2:1234, 4 bytes payload.
    static PACKET_BYTES: [u8; 12] = [0x00, 0x35, 0x04, 0xd2, 0x00, 0x0c, 0xcc, 0x7b, 0xaa, 0x00, 0x00, 0xff];

    const SRC: Ipv4Address = Ipv4Address::new(192, 168, 1, 1);
    const DST: Ipv4Address = Ipv4Address::new(192, 168, 1, 2);

    #[test]
    fn test_deconstruct() {
        let p = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(p.src_port(), 53);
        assert_eq!(p.dst_port(), 1234);
        assert_eq!(p.len(), 12);
        assert!(!p.is_empty());
        assert_eq!(p.checksum(), 0xcc7b);
        assert_eq!(p.payload(), &[0xaa, 0x00, 0x00, 0xff]);
        assert!(p.verify_checksum_v4(&SRC, &DST));
        assert!(!p.verify_checksum_v4(&DST, &Ipv4Address::new(1, 2, 3, 4)));
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 12];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_src_port(53);
        p.set_dst_port(1234);
        p.set_len(12);
        p.payload_mut().copy_from_slice(&[0xaa, 0x00, 0x00, 0xff]);
        p.fill_checksum_v4(&SRC, &DST);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn test_parse_emit() {
        let repr = Repr { src_port: 53, dst_port: 1234, payload_len: 4 };
        let p = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&p), Ok(repr));
        let mut bytes = [0xa5u8; 12];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        repr.emit(&mut p);
        p.payload_mut().copy_from_slice(&[0xaa, 0x00, 0x00, 0xff]);
        p.fill_checksum_v4(&SRC, &DST);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn test_zero_checksum() {
        let mut bytes = PACKET_BYTES;
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_checksum(0);
        let s6 = Ipv6Address::LOCALHOST;
        assert!(p.verify_checksum_v4(&SRC, &DST));
        assert!(!p.verify_checksum_v6(&s6, &s6));
        p.fill_checksum_v6(&s6, &s6);
        assert!(p.verify_checksum_v6(&s6, &s6));
    }

    #[test]
    fn test_check_len_truncated_header() {
        assert_eq!(Packet::new_checked(&PACKET_BYTES[..7]), Err(Error::Truncated));
    }

    #[test]
    fn test_check_len_length_below_header() {
        let mut bytes = PACKET_BYTES;
        bytes[5] = 7;
        assert_eq!(Packet::new_checked(&bytes[..]), Err(Error::Malformed));
    }

    #[test]
    fn test_check_len_length_past_buffer() {
        assert_eq!(Packet::new_checked(&PACKET_BYTES[..11]), Err(Error::Truncated));
    }
}
