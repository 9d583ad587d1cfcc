//! Generic Routing Encapsulation (RFC 2784) with the key and sequence
//! number extensions (RFC 2890). NVGRE's stricter rules live in
//! [`crate::nvgre`].
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |C| |K|S| Reserved0       | Ver |         Protocol Type         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      Checksum (optional)      |       Reserved1 (optional)    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         Key (optional)                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Sequence Number (optional)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! C = 0x8000, K = 0x2000, S = 0x1000 in the first 16-bit word; the
//! version is its low 3 bits; every other bit is Reserved0 (including the
//! RFC 1701 routing bit 0x4000). Each optional field present adds 4 bytes,
//! in the order above, so [`Packet::header_len`] depends on the flags.
//!
//! Contract: [`Packet::new_checked`] checks that the buffer holds the
//! 4-byte base header and then the optional fields its flags announce
//! ([`Error::Truncated`]). Afterwards no getter panics. It does not check
//! the version or reserved bits: [`Repr::parse`] does ([`Error::GreVersion`],
//! [`Error::GreFlags`]), and so does [`crate::NvgreRepr::parse`]. The
//! setters of the optional fields write at offsets computed from the
//! current flags, so set the flags first.

use core::fmt;

use crate::bytes::{read_u16, read_u32, write_u16, write_u32};
use crate::{checksum, Error, EtherType, Result};

/// A read/write view of a GRE header and its payload.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;

    pub const FLAGS_VER: Range<usize> = 0..2;
    pub const PROTOCOL: Range<usize> = 2..4;
    pub const OPTIONAL: usize = 4;
    pub const CHECKSUM: Range<usize> = 4..6;
    pub const RESERVED1: Range<usize> = 6..8;
}

/// The checksum-present flag.
pub const FLAG_C: u16 = 0x8000;
/// The key-present flag.
pub const FLAG_K: u16 = 0x2000;
/// The sequence-number-present flag.
pub const FLAG_S: u16 = 0x1000;
/// The version bits.
pub const VERSION_MASK: u16 = 0x0007;
/// The Reserved0 bits: everything but C, K, S and the version.
pub const RESERVED0_MASK: u16 = !(FLAG_C | FLAG_K | FLAG_S | VERSION_MASK);

/// The base GRE header length (flags, version, protocol type).
pub const BASE_HEADER_LEN: usize = field::OPTIONAL;

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking it; getters panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer and check its length (see [`Packet::check_len`]).
    ///
    /// # Errors
    /// [`Error::Truncated`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Check that the buffer holds the base header and the optional fields.
    ///
    /// # Errors
    /// [`Error::Truncated`] when it is shorter than 4 bytes or than
    /// [`Packet::header_len`].
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < BASE_HEADER_LEN || len < self.header_len() {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Consume the view and return the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Return the raw first word: flags, Reserved0 and version.
    pub fn flags_version(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::FLAGS_VER])
    }

    /// Return the C (checksum present) flag.
    pub fn checksum_present(&self) -> bool {
        self.flags_version() & FLAG_C != 0
    }

    /// Return the K (key present) flag.
    pub fn key_present(&self) -> bool {
        self.flags_version() & FLAG_K != 0
    }

    /// Return the S (sequence number present) flag.
    pub fn seq_present(&self) -> bool {
        self.flags_version() & FLAG_S != 0
    }

    /// Return the Reserved0 bits, in place (masked with [`RESERVED0_MASK`]).
    pub fn reserved0(&self) -> u16 {
        self.flags_version() & RESERVED0_MASK
    }

    /// Return the version field.
    pub fn version(&self) -> u8 {
        (self.flags_version() & VERSION_MASK) as u8
    }

    /// Return the protocol type field.
    pub fn protocol_type(&self) -> EtherType {
        EtherType::from(read_u16(&self.buffer.as_ref()[field::PROTOCOL]))
    }

    fn key_offset(&self) -> usize {
        field::OPTIONAL + if self.checksum_present() { 4 } else { 0 }
    }

    fn seq_offset(&self) -> usize {
        self.key_offset() + if self.key_present() { 4 } else { 0 }
    }

    /// Return the header length announced by the flags: 4, 8, 12 or 16.
    pub fn header_len(&self) -> usize {
        self.seq_offset() + if self.seq_present() { 4 } else { 0 }
    }

    /// Return the checksum field, when C is set.
    pub fn checksum(&self) -> Option<u16> {
        self.checksum_present().then(|| read_u16(&self.buffer.as_ref()[field::CHECKSUM]))
    }

    /// Return the key field, when K is set.
    pub fn key(&self) -> Option<u32> {
        let at = self.key_offset();
        self.key_present().then(|| read_u32(&self.buffer.as_ref()[at..at + 4]))
    }

    /// Return the sequence number field, when S is set.
    pub fn sequence(&self) -> Option<u32> {
        let at = self.seq_offset();
        self.seq_present().then(|| read_u32(&self.buffer.as_ref()[at..at + 4]))
    }

    /// Validate the checksum over the whole buffer; true when C is clear.
    pub fn verify_checksum(&self) -> bool {
        !self.checksum_present() || checksum::data(self.buffer.as_ref()) == !0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Return the payload after [`Packet::header_len`] bytes.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the raw first word: flags, Reserved0 and version.
    pub fn set_flags_version(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::FLAGS_VER], value);
    }

    fn set_flag(&mut self, flag: u16, value: bool) {
        let raw = self.flags_version();
        self.set_flags_version(if value { raw | flag } else { raw & !flag });
    }

    /// Set the C flag.
    pub fn set_checksum_present(&mut self, value: bool) {
        self.set_flag(FLAG_C, value);
    }

    /// Set the K flag.
    pub fn set_key_present(&mut self, value: bool) {
        self.set_flag(FLAG_K, value);
    }

    /// Set the S flag.
    pub fn set_seq_present(&mut self, value: bool) {
        self.set_flag(FLAG_S, value);
    }

    /// Set the version field (low 3 bits of `value`).
    pub fn set_version(&mut self, value: u8) {
        let raw = (self.flags_version() & !VERSION_MASK) | (u16::from(value) & VERSION_MASK);
        self.set_flags_version(raw);
    }

    /// Set the protocol type field.
    pub fn set_protocol_type(&mut self, value: EtherType) {
        write_u16(&mut self.buffer.as_mut()[field::PROTOCOL], value.into());
    }

    /// Set the checksum field and zero Reserved1 (the C flag is not changed).
    pub fn set_checksum(&mut self, value: u16) {
        let d = self.buffer.as_mut();
        write_u16(&mut d[field::CHECKSUM], value);
        write_u16(&mut d[field::RESERVED1], 0);
    }

    /// Set the key field at the offset the current C flag implies.
    pub fn set_key(&mut self, value: u32) {
        let at = self.key_offset();
        write_u32(&mut self.buffer.as_mut()[at..at + 4], value);
    }

    /// Set the sequence number field at the offset the current C and K flags imply.
    pub fn set_sequence(&mut self, value: u32) {
        let at = self.seq_offset();
        write_u32(&mut self.buffer.as_mut()[at..at + 4], value);
    }

    /// Compute and write the checksum over the whole buffer, when C is set.
    pub fn fill_checksum(&mut self) {
        if !self.checksum_present() {
            return;
        }
        self.set_checksum(0);
        let sum = checksum::data(self.buffer.as_ref());
        self.set_checksum(!sum);
    }

    /// Return a mutable slice of the payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The valid subset of an RFC 2784/2890 GRE header.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub struct Repr {
    /// Protocol type of the payload.
    pub protocol_type: EtherType,
    /// Whether a checksum is present (it is verified by parse, filled by emit).
    pub checksum: bool,
    /// Key, when K is set.
    pub key: Option<u32>,
    /// Sequence number, when S is set.
    pub sequence: Option<u32>,
}

impl Repr {
    /// Parse a view.
    ///
    /// # Errors
    /// [`Error::Truncated`]; [`Error::GreVersion`] for a version other
    /// than 0; [`Error::GreFlags`] for Reserved0 bits set;
    /// [`Error::BadChecksum`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.version() != 0 {
            return Err(Error::GreVersion);
        }
        if packet.reserved0() != 0 {
            return Err(Error::GreFlags);
        }
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        Ok(Repr { protocol_type: packet.protocol_type(), checksum: packet.checksum_present(), key: packet.key(), sequence: packet.sequence() })
    }

    /// Return the header length.
    pub const fn buffer_len(&self) -> usize {
        BASE_HEADER_LEN + if self.checksum { 4 } else { 0 } + if self.key.is_some() { 4 } else { 0 } + if self.sequence.is_some() { 4 } else { 0 }
    }

    /// Write the header. With `checksum`, write the payload first and then
    /// call [`Packet::fill_checksum`]; emit leaves the checksum zero.
    ///
    /// # Panics
    /// When the buffer is shorter than [`Repr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let mut flags = 0;
        if self.checksum {
            flags |= FLAG_C;
        }
        if self.key.is_some() {
            flags |= FLAG_K;
        }
        if self.sequence.is_some() {
            flags |= FLAG_S;
        }
        packet.set_flags_version(flags);
        packet.set_protocol_type(self.protocol_type);
        if self.checksum {
            packet.set_checksum(0);
        }
        if let Some(key) = self.key {
            packet.set_key(key);
        }
        if let Some(seq) = self.sequence {
            packet.set_sequence(seq);
        }
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GRE proto {}", self.protocol_type)?;
        if self.checksum {
            f.write_str(" csum")?;
        }
        if let Some(key) = self.key {
            write!(f, " key 0x{key:08x}")?;
        }
        if let Some(seq) = self.sequence {
            write!(f, " seq {seq}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // C, K and S set; protocol IPv4; key 0x01020304; seq 7; 2 payload bytes.
    static FULL_BYTES: [u8; 18] = [
        0xb0, 0x00, 0x08, 0x00, // flags, proto
        0x00, 0x00, 0x00, 0x00, // checksum (filled below), reserved1
        0x01, 0x02, 0x03, 0x04, // key
        0x00, 0x00, 0x00, 0x07, // seq
        0xab, 0xcd,
    ];

    // K only (the NVGRE shape): protocol 0x6558, key 0x00138901.
    static KEY_BYTES: [u8; 10] = [0x20, 0x00, 0x65, 0x58, 0x00, 0x13, 0x89, 0x01, 0xde, 0xad];

    fn full_with_checksum() -> [u8; 18] {
        let mut bytes = FULL_BYTES;
        Packet::new_unchecked(&mut bytes[..]).fill_checksum();
        bytes
    }

    #[test]
    fn test_deconstruct_key_only() {
        let p = Packet::new_checked(&KEY_BYTES[..]).unwrap();
        assert!(!p.checksum_present() && p.key_present() && !p.seq_present());
        assert_eq!(p.version(), 0);
        assert_eq!(p.reserved0(), 0);
        assert_eq!(p.protocol_type(), EtherType::TransparentEthernetBridging);
        assert_eq!(p.header_len(), 8);
        assert_eq!(p.checksum(), None);
        assert_eq!(p.key(), Some(0x0013_8901));
        assert_eq!(p.sequence(), None);
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &[0xde, 0xad]);
    }

    #[test]
    fn test_deconstruct_full() {
        let bytes = full_with_checksum();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.header_len(), 16);
        assert!(p.checksum().is_some());
        assert_eq!(p.key(), Some(0x0102_0304));
        assert_eq!(p.sequence(), Some(7));
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), &[0xab, 0xcd]);
    }

    #[test]
    fn test_construct_full() {
        let mut bytes = [0xa5u8; 18];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_flags_version(0);
        p.set_checksum_present(true);
        p.set_key_present(true);
        p.set_seq_present(true);
        p.set_version(0);
        p.set_protocol_type(EtherType::Ipv4);
        p.set_key(0x0102_0304);
        p.set_sequence(7);
        p.payload_mut().copy_from_slice(&[0xab, 0xcd]);
        p.fill_checksum();
        assert_eq!(bytes, full_with_checksum());
    }

    #[test]
    fn test_construct_key_only() {
        let mut bytes = [0xa5u8; 10];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_flags_version(FLAG_K);
        p.set_protocol_type(EtherType::TransparentEthernetBridging);
        p.set_key(0x0013_8901);
        p.payload_mut().copy_from_slice(&[0xde, 0xad]);
        assert_eq!(bytes, KEY_BYTES);
    }

    #[test]
    fn test_repr() {
        let bytes = full_with_checksum();
        let repr = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(repr, Repr { protocol_type: EtherType::Ipv4, checksum: true, key: Some(0x0102_0304), sequence: Some(7) });
        assert_eq!(repr.buffer_len(), 16);
        let mut out = [0xa5u8; 18];
        let mut p = Packet::new_unchecked(&mut out[..]);
        repr.emit(&mut p);
        p.payload_mut().copy_from_slice(&[0xab, 0xcd]);
        p.fill_checksum();
        assert_eq!(out, bytes);
    }

    #[test]
    fn test_repr_errors() {
        let mut bytes = full_with_checksum();
        bytes[17] ^= 1;
        assert_eq!(Repr::parse(&Packet::new_unchecked(&bytes[..])), Err(Error::BadChecksum));
        let mut bytes = KEY_BYTES;
        bytes[1] = 1;
        assert_eq!(Repr::parse(&Packet::new_unchecked(&bytes[..])), Err(Error::GreVersion));
        let mut bytes = KEY_BYTES;
        bytes[0] |= 0x40;
        assert_eq!(Repr::parse(&Packet::new_unchecked(&bytes[..])), Err(Error::GreFlags));
    }

    #[test]
    fn test_check_len_truncated_base() {
        assert_eq!(Packet::new_checked(&KEY_BYTES[..3]), Err(Error::Truncated));
    }

    #[test]
    fn test_check_len_truncated_optional() {
        assert_eq!(Packet::new_checked(&KEY_BYTES[..7]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&FULL_BYTES[..15]), Err(Error::Truncated));
        assert!(Packet::new_checked(&FULL_BYTES[..16]).is_ok());
    }
}
