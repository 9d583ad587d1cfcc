//! IPv4 headers (RFC 791), with incremental checksum updates (RFC 1624).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |  DSCP     |ECN|          Total Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Identification        |Flags|      Fragment Offset    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       Source Address                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Destination Address                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Options (IHL > 5)                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Contract: [`Packet::new_checked`] checks, in order: at least 20 bytes
//! ([`Error::Truncated`]), version 4 ([`Error::BadVersion`]), IHL >= 5
//! ([`Error::BadHeaderLen`]), header within the buffer ([`Error::Truncated`]),
//! total length >= header length ([`Error::Malformed`]) and total length
//! within the buffer ([`Error::Truncated`]). The buffer may be longer than
//! the total length (Ethernet padding); [`Packet::payload`] stops at the
//! total length. Afterwards no getter panics; `set_header_len` and
//! `set_total_len` can invalidate the checks.
//!
//! The checksum is not checked by `new_checked`: use
//! [`Packet::verify_checksum`] or [`Repr::parse`], which does.

use core::fmt;

use crate::bytes::{read_u16, write_u16};
use crate::{checksum, Error, IpProtocol, Ipv4Address, Result};

/// A read/write view of an IPv4 packet.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// The length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

fn ipv4_at(d: &[u8]) -> Ipv4Address {
    Ipv4Address::new(d[0], d[1], d[2], d[3])
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking it; getters panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer, check the version and every length (see the module docs).
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::BadVersion`], [`Error::BadHeaderLen`]
    /// or [`Error::Malformed`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if packet.version() != 4 {
            return Err(Error::BadVersion);
        }
        packet.check_len()?;
        Ok(packet)
    }

    /// Check the header and total lengths against each other and the buffer.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the buffer is shorter than 20 bytes, the
    /// header or the total length; [`Error::BadHeaderLen`] when IHL < 5;
    /// [`Error::Malformed`] when the total length is below the header length.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::Malformed);
        }
        if total_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Consume the view and return the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Return the version field.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Return the header length in bytes (IHL × 4).
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// Return the DSCP and ECN byte.
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Return the Differentiated Services Code Point (6 bits).
    pub fn dscp(&self) -> u8 {
        self.dscp_ecn() >> 2
    }

    /// Return the Explicit Congestion Notification bits.
    pub fn ecn(&self) -> u8 {
        self.dscp_ecn() & 0x03
    }

    /// Return the total length field.
    pub fn total_len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::LENGTH])
    }

    /// Return the identification field.
    pub fn ident(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::IDENT])
    }

    /// Return the Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        read_u16(&self.buffer.as_ref()[field::FLG_OFF]) & 0x4000 != 0
    }

    /// Return the More Fragments flag.
    pub fn more_frags(&self) -> bool {
        read_u16(&self.buffer.as_ref()[field::FLG_OFF]) & 0x2000 != 0
    }

    /// Return the fragment offset, in bytes.
    pub fn frag_offset(&self) -> u16 {
        (read_u16(&self.buffer.as_ref()[field::FLG_OFF]) & 0x1fff) << 3
    }

    /// Query whether this is a fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        read_u16(&self.buffer.as_ref()[field::FLG_OFF]) & 0x3fff != 0
    }

    /// Return the time to live field.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Return the protocol field.
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Return the header checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Return the source address field.
    pub fn src_addr(&self) -> Ipv4Address {
        ipv4_at(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// Return the destination address field.
    pub fn dst_addr(&self) -> Ipv4Address {
        ipv4_at(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// Return the options bytes (empty when IHL is 5).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// Validate the header checksum.
    pub fn verify_checksum(&self) -> bool {
        let header = &self.buffer.as_ref()[..usize::from(self.header_len())];
        checksum::data(header) == !0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Return the payload: from the end of the header to the total length.
    pub fn payload(&self) -> &'a [u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        &self.buffer.as_ref()[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the version field.
    pub fn set_version(&mut self, value: u8) {
        let d = &mut self.buffer.as_mut()[field::VER_IHL];
        *d = (*d & 0x0f) | (value << 4);
    }

    /// Set the header length, in bytes (a multiple of 4, 20..=60).
    pub fn set_header_len(&mut self, value: u8) {
        let d = &mut self.buffer.as_mut()[field::VER_IHL];
        *d = (*d & 0xf0) | ((value / 4) & 0x0f);
    }

    /// Set the DSCP and ECN byte.
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Set the total length field.
    pub fn set_total_len(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::LENGTH], value);
    }

    /// Set the identification field.
    pub fn set_ident(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::IDENT], value);
    }

    /// Clear the flags and the fragment offset.
    pub fn clear_flags(&mut self) {
        write_u16(&mut self.buffer.as_mut()[field::FLG_OFF], 0);
    }

    fn set_flg_off_bits(&mut self, mask: u16, bits: u16) {
        let raw = read_u16(&self.buffer.as_ref()[field::FLG_OFF]);
        write_u16(&mut self.buffer.as_mut()[field::FLG_OFF], (raw & !mask) | (bits & mask));
    }

    /// Set the Don't Fragment flag.
    pub fn set_dont_frag(&mut self, value: bool) {
        self.set_flg_off_bits(0x4000, if value { 0x4000 } else { 0 });
    }

    /// Set the More Fragments flag.
    pub fn set_more_frags(&mut self, value: bool) {
        self.set_flg_off_bits(0x2000, if value { 0x2000 } else { 0 });
    }

    /// Set the fragment offset, in bytes (a multiple of 8).
    pub fn set_frag_offset(&mut self, value: u16) {
        self.set_flg_off_bits(0x1fff, value >> 3);
    }

    /// Set the time to live field (the checksum is not updated).
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Set the protocol field.
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.into();
    }

    /// Set the header checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
    }

    /// Set the source address field (the checksum is not updated).
    pub fn set_src_addr(&mut self, value: Ipv4Address) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Set the destination address field (the checksum is not updated).
    pub fn set_dst_addr(&mut self, value: Ipv4Address) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// Compute and write the header checksum over `header_len()` bytes.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = {
            let header = &self.buffer.as_ref()[..usize::from(self.header_len())];
            checksum::data(header)
        };
        self.set_checksum(!sum);
    }

    /// Set the time to live and patch the checksum incrementally (RFC 1624).
    pub fn set_hop_limit_incremental(&mut self, value: u8) {
        let d = self.buffer.as_ref();
        let old_word = read_u16(&d[field::TTL..field::PROTOCOL + 1]);
        let new_word = (u16::from(value) << 8) | u16::from(d[field::PROTOCOL]);
        let new_checksum = checksum::update(self.checksum(), old_word, new_word);
        self.set_hop_limit(value);
        self.set_checksum(new_checksum);
    }

    /// Decrement the time to live by one, patching the checksum (RFC 1624).
    ///
    /// Returns the new TTL. A TTL of 0 is left alone and 0 returned; a router
    /// drops the packet when the result is 0.
    pub fn decrement_ttl_incremental(&mut self) -> u8 {
        let ttl = self.hop_limit();
        if ttl == 0 {
            return 0;
        }
        self.set_hop_limit_incremental(ttl - 1);
        ttl - 1
    }

    /// Set the source address and patch the checksum incrementally.
    pub fn set_src_addr_incremental(&mut self, value: Ipv4Address) {
        let old = u32::from(self.src_addr());
        let new_checksum = checksum::update32(self.checksum(), old, u32::from(value));
        self.set_src_addr(value);
        self.set_checksum(new_checksum);
    }

    /// Set the destination address and patch the checksum incrementally.
    pub fn set_dst_addr_incremental(&mut self, value: Ipv4Address) {
        let old = u32::from(self.dst_addr());
        let new_checksum = checksum::update32(self.checksum(), old, u32::from(value));
        self.set_dst_addr(value);
        self.set_checksum(new_checksum);
    }

    /// Set the DSCP/ECN byte and patch the checksum incrementally.
    pub fn set_dscp_ecn_incremental(&mut self, value: u8) {
        let d = self.buffer.as_ref();
        let old_word = read_u16(&d[field::VER_IHL..field::DSCP_ECN + 1]);
        let new_word = (old_word & 0xff00) | u16::from(value);
        let new_checksum = checksum::update(self.checksum(), old_word, new_word);
        self.set_dscp_ecn(value);
        self.set_checksum(new_checksum);
    }

    /// Return a mutable slice of the payload (header end to total length).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = usize::from(self.header_len())..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The valid subset of an IPv4 header.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Address,
    /// Destination address.
    pub dst_addr: Ipv4Address,
    /// Protocol of the payload.
    pub next_header: IpProtocol,
    /// Payload length (total length minus header length).
    pub payload_len: usize,
    /// Time to live.
    pub hop_limit: u8,
    /// Don't Fragment flag.
    pub dont_frag: bool,
}

impl Repr {
    /// Parse a view: re-checks lengths and version, verifies the checksum.
    ///
    /// Options are skipped. DSCP/ECN and the identification are not kept.
    ///
    /// # Errors
    /// Those of [`Packet::new_checked`]; [`Error::BadChecksum`]; and
    /// [`Error::Unsupported`] for a fragment.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        let packet = Packet::new_checked(packet.buffer)?;
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        if packet.is_fragment() {
            return Err(Error::Unsupported);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.total_len()) - usize::from(packet.header_len()),
            hop_limit: packet.hop_limit(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// Return the header length (20; no options are emitted).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write a 20-byte header (DSCP/ECN 0, ident 0) and fill its checksum.
    ///
    /// `payload_len` must be at most 65515; larger values are truncated.
    ///
    /// # Panics
    /// When the buffer is shorter than [`Repr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN as u8);
        packet.set_dscp_ecn(0);
        packet.set_total_len((HEADER_LEN + self.payload_len) as u16);
        packet.set_ident(0);
        packet.clear_flags();
        packet.set_dont_frag(self.dont_frag);
        packet.set_hop_limit(self.hop_limit);
        packet.set_next_header(self.next_header);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IPv4 {} > {} {} ttl {} len {}", self.src_addr, self.dst_addr, self.next_header, self.hop_limit, self.payload_len)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // 20-byte header, DSCP/ECN 0, total 24, ident 0x1234, DF, TTL 64, ICMP,
    // 10.0.0.1 > 10.0.0.2, then 4 payload bytes.
    static PACKET_BYTES: [u8; 24] = [0x45, 0x00, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0x14, 0xaf, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, 0xaa, 0x00, 0x00, 0xff];

    static PAYLOAD_BYTES: [u8; 4] = [0xaa, 0x00, 0x00, 0xff];

    fn repr() -> Repr {
        Repr { src_addr: Ipv4Address::new(10, 0, 0, 1), dst_addr: Ipv4Address::new(10, 0, 0, 2), next_header: IpProtocol::Icmp, payload_len: 4, hop_limit: 64, dont_frag: true }
    }

    #[test]
    fn test_deconstruct() {
        let p = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp_ecn(), 0);
        assert_eq!(p.total_len(), 24);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.next_header(), IpProtocol::Icmp);
        assert_eq!(p.checksum(), 0x14af);
        assert_eq!(p.src_addr(), Ipv4Address::new(10, 0, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Address::new(10, 0, 0, 2));
        assert!(p.options().is_empty());
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &PAYLOAD_BYTES[..]);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 24];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_dscp_ecn(0);
        p.set_total_len(24);
        p.set_ident(0x1234);
        p.clear_flags();
        p.set_dont_frag(true);
        p.set_more_frags(false);
        p.set_frag_offset(0);
        p.set_hop_limit(64);
        p.set_next_header(IpProtocol::Icmp);
        p.set_src_addr(Ipv4Address::new(10, 0, 0, 1));
        p.set_dst_addr(Ipv4Address::new(10, 0, 0, 2));
        p.fill_checksum();
        p.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn test_parse_emit() {
        let p = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&p), Ok(repr()));
        let mut bytes = [0xa5u8; 24];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        repr().emit(&mut p);
        p.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        // emit writes ident 0, so patch it the same way and compare.
        let mut expected = PACKET_BYTES;
        expected[4] = 0;
        expected[5] = 0;
        let mut e = Packet::new_unchecked(&mut expected[..]);
        e.fill_checksum();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn test_padding_ignored() {
        let mut bytes = [0u8; 30];
        bytes[..24].copy_from_slice(&PACKET_BYTES);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.payload(), &PAYLOAD_BYTES[..]);
    }

    #[test]
    fn test_check_len_truncated_short() {
        assert_eq!(Packet::new_checked(&PACKET_BYTES[..19]), Err(Error::Truncated));
    }

    #[test]
    fn test_check_len_bad_header_len() {
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x44;
        assert_eq!(Packet::new_checked(&bytes[..]), Err(Error::BadHeaderLen));
    }

    #[test]
    fn test_check_len_header_past_buffer() {
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x47; // 28-byte header in a 24-byte buffer
        assert_eq!(Packet::new_checked(&bytes[..]), Err(Error::Truncated));
    }

    #[test]
    fn test_check_len_total_below_header() {
        let mut bytes = PACKET_BYTES;
        bytes[3] = 19;
        assert_eq!(Packet::new_checked(&bytes[..]), Err(Error::Malformed));
    }

    #[test]
    fn test_check_len_total_past_buffer() {
        assert_eq!(Packet::new_checked(&PACKET_BYTES[..23]), Err(Error::Truncated));
    }

    #[test]
    fn test_bad_version() {
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x65;
        assert_eq!(Packet::new_checked(&bytes[..]), Err(Error::BadVersion));
    }

    #[test]
    fn test_parse_bad_checksum() {
        let mut bytes = PACKET_BYTES;
        bytes[11] ^= 1;
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&p), Err(Error::BadChecksum));
    }

    #[test]
    fn test_parse_fragment_unsupported() {
        let mut bytes = PACKET_BYTES;
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_more_frags(true);
        p.fill_checksum();
        assert_eq!(Repr::parse(&Packet::new_unchecked(&bytes[..])), Err(Error::Unsupported));
    }

    #[test]
    fn test_options() {
        // IHL 6 with a 4-byte NOP option block.
        let mut bytes = [0u8; 28];
        bytes[0] = 0x46;
        bytes[3] = 28;
        bytes[8] = 1;
        bytes[20..24].copy_from_slice(&[1, 1, 1, 0]);
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.fill_checksum();
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert!(p.verify_checksum());
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.payload().len(), 4);
        assert_eq!(Repr::parse(&p).map(|r| r.payload_len), Ok(4));
    }

    #[test]
    fn test_incremental() {
        let mut bytes = PACKET_BYTES;
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        assert_eq!(p.decrement_ttl_incremental(), 63);
        assert!(p.verify_checksum());
        p.set_src_addr_incremental(Ipv4Address::new(192, 168, 1, 7));
        p.set_dst_addr_incremental(Ipv4Address::new(172, 16, 0, 9));
        p.set_dscp_ecn_incremental(0xb8);
        assert!(p.verify_checksum());
        let incremental = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), incremental);
        p.set_hop_limit_incremental(0);
        assert_eq!(p.decrement_ttl_incremental(), 0);
        assert!(p.verify_checksum());
    }
}
