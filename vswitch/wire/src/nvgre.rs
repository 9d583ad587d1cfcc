//! NVGRE: Network Virtualization using GRE (RFC 7637, MS-NVGREE).
//!
//! An NVGRE header is a GRE header with exactly the key present:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |0| |1|0|   Reserved0     | Ver |   Protocol Type 0x6558        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |               Virtual Subnet ID (VSID)        |    FlowID     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Inner Ethernet frame (no FCS, no 802.1Q tag) …
//! ```
//!
//! RFC 7637 §3.2: C = 0, S = 0, K = 1, Reserved0 = 0, Ver = 0, protocol
//! type 0x6558 (Transparent Ethernet Bridging); key = VSID (24 bits) << 8 |
//! FlowID (8 bits). VSIDs 0..=0xFFF and 0xFFFFFF are reserved (§4).
//!
//! [`Repr::parse`] checks, in order, and never panics: at least 4 bytes
//! ([`Error::Truncated`]), version 0 ([`Error::GreVersion`]), flags exactly
//! K ([`Error::GreFlags`]: C or S set, K clear, or a Reserved0 bit set),
//! protocol 0x6558 ([`Error::GreProtocol`]), at least 8 bytes
//! ([`Error::Truncated`]), and a usable VSID ([`Error::VsidReserved`]). The
//! inner-frame rules (no 802.1Q tag, §4) are the decapsulator's.
//!
//! Overhead: outer Ethernet 14 + IPv4 20 + NVGRE 8 = [`OVERHEAD_IPV4`]
//! (42) bytes, or 14 + 40 + 8 = [`OVERHEAD_IPV6`] (62) over IPv6, plus 4
//! when the outer frame carries a PA VLAN tag. NVGRE must not fragment, so
//! the physical MTU must absorb that overhead.

use core::fmt;

use crate::bytes::{read_u16, read_u32};
use crate::gre::{FLAG_K, VERSION_MASK};
use crate::{Error, EtherType, GrePacket, Result, Vsid};

/// The NVGRE header length (GRE base header plus key).
pub const HEADER_LEN: usize = 8;

/// Bytes NVGRE adds to an inner frame over an untagged IPv4 outer: 14 + 20 + 8.
pub const OVERHEAD_IPV4: usize = crate::ethernet::HEADER_LEN + crate::ipv4::HEADER_LEN + HEADER_LEN;

/// Bytes NVGRE adds to an inner frame over an untagged IPv6 outer: 14 + 40 + 8.
pub const OVERHEAD_IPV6: usize = crate::ethernet::HEADER_LEN + crate::ipv6::HEADER_LEN + HEADER_LEN;

/// The first 16-bit word of every NVGRE header: K set, all else zero.
pub const FLAGS_VERSION: u16 = FLAG_K;

/// The NVGRE fields of a validated header.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash, PartialOrd, Ord)]
pub struct Repr {
    /// Virtual Subnet ID.
    pub vsid: Vsid,
    /// Per-flow entropy; 0 when the encapsulator provides none.
    pub flow_id: u8,
}

impl Repr {
    /// Construct from a GRE key.
    ///
    /// # Errors
    /// [`Error::VsidReserved`] when the key's VSID is reserved.
    pub const fn from_key(key: u32) -> Result<Repr> {
        match Vsid::new(key >> 8) {
            Ok(vsid) => Ok(Repr { vsid, flow_id: key as u8 }),
            Err(e) => Err(e),
        }
    }

    /// Return the GRE key: VSID << 8 | FlowID.
    pub const fn key(&self) -> u32 {
        (self.vsid.get() << 8) | self.flow_id as u32
    }

    /// Parse and validate a GRE view as NVGRE (see the module docs).
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::GreVersion`], [`Error::GreFlags`],
    /// [`Error::GreProtocol`] or [`Error::VsidReserved`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &GrePacket<&T>) -> Result<Repr> {
        let d: &[u8] = packet.as_ref();
        if d.len() < 4 {
            return Err(Error::Truncated);
        }
        let flags_version = read_u16(&d[0..2]);
        if flags_version & VERSION_MASK != 0 {
            return Err(Error::GreVersion);
        }
        if flags_version != FLAGS_VERSION {
            return Err(Error::GreFlags);
        }
        if read_u16(&d[2..4]) != u16::from(EtherType::TransparentEthernetBridging) {
            return Err(Error::GreProtocol);
        }
        if d.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Repr::from_key(read_u32(&d[4..8]))
    }

    /// Return the header length (8).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the 8-byte NVGRE header.
    ///
    /// # Panics
    /// When the buffer is shorter than [`Repr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut GrePacket<T>) {
        packet.set_flags_version(FLAGS_VERSION);
        packet.set_protocol_type(EtherType::TransparentEthernetBridging);
        packet.set_key(self.key());
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NVGRE vsid {} flowid {}", self.vsid, self.flow_id)
    }
}

/// Validate an NVGRE header at the start of `gre` and split off the inner frame.
///
/// # Errors
/// As [`Repr::parse`].
pub fn split(gre: &[u8]) -> Result<(Repr, &[u8])> {
    let repr = Repr::parse(&GrePacket::new_unchecked(gre))?;
    Ok((repr, &gre[HEADER_LEN..]))
}

#[cfg(test)]
mod test {
    use super::*;

    // VSID 5001 (0x001389), FlowID 0x2a, 2 bytes of inner frame.
    static NVGRE_BYTES: [u8; 10] = [0x20, 0x00, 0x65, 0x58, 0x00, 0x13, 0x89, 0x2a, 0xde, 0xad];

    fn repr() -> Repr {
        Repr { vsid: Vsid::new(5001).unwrap(), flow_id: 0x2a }
    }

    fn parse(bytes: &[u8]) -> Result<Repr> {
        Repr::parse(&GrePacket::new_unchecked(bytes))
    }

    #[test]
    fn test_overhead() {
        assert_eq!(OVERHEAD_IPV4, 42);
        assert_eq!(OVERHEAD_IPV6, 62);
        assert_eq!(64 + OVERHEAD_IPV4, 106);
    }

    #[test]
    fn test_deconstruct() {
        assert_eq!(parse(&NVGRE_BYTES), Ok(repr()));
        let p = GrePacket::new_checked(&NVGRE_BYTES[..]).unwrap();
        assert_eq!(p.header_len(), HEADER_LEN);
        assert_eq!(p.payload(), &[0xde, 0xad]);
        assert_eq!(split(&NVGRE_BYTES), Ok((repr(), &NVGRE_BYTES[8..])));
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 10];
        let mut p = GrePacket::new_unchecked(&mut bytes[..]);
        repr().emit(&mut p);
        p.payload_mut().copy_from_slice(&[0xde, 0xad]);
        assert_eq!(bytes, NVGRE_BYTES);
        assert_eq!(repr().buffer_len(), 8);
        assert_eq!(repr().key(), 0x0013_892a);
        assert_eq!(Repr::from_key(0x0013_892a), Ok(repr()));
        assert_eq!(repr().to_string(), "NVGRE vsid 5001 flowid 42");
    }

    #[test]
    fn test_truncated() {
        assert_eq!(parse(&NVGRE_BYTES[..3]), Err(Error::Truncated));
        assert_eq!(parse(&NVGRE_BYTES[..7]), Err(Error::Truncated));
        assert_eq!(parse(&NVGRE_BYTES[..8]), Ok(repr()));
    }

    #[test]
    fn test_flags() {
        for first_word in [0xa000u16, 0x3000, 0x0000, 0x2008, 0x6000, 0x2100, 0xb000] {
            let mut bytes = NVGRE_BYTES;
            bytes[..2].copy_from_slice(&first_word.to_be_bytes());
            assert_eq!(parse(&bytes), Err(Error::GreFlags), "{first_word:#06x}");
        }
    }

    #[test]
    fn test_version() {
        let mut bytes = NVGRE_BYTES;
        bytes[1] = 0x01;
        assert_eq!(parse(&bytes), Err(Error::GreVersion));
    }

    #[test]
    fn test_protocol() {
        let mut bytes = NVGRE_BYTES;
        bytes[2..4].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(parse(&bytes), Err(Error::GreProtocol));
    }

    #[test]
    fn test_vsid_reserved() {
        for key in [0x0000_0000u32, 0x000f_ff2a, 0xffff_ff00] {
            let mut bytes = NVGRE_BYTES;
            bytes[4..8].copy_from_slice(&key.to_be_bytes());
            assert_eq!(parse(&bytes), Err(Error::VsidReserved), "{key:#010x}");
        }
        let mut bytes = NVGRE_BYTES;
        bytes[4..8].copy_from_slice(&0x0010_0000u32.to_be_bytes());
        assert_eq!(parse(&bytes).map(|r| r.vsid), Ok(Vsid::MIN));
        bytes[4..8].copy_from_slice(&0xffff_feffu32.to_be_bytes());
        assert_eq!(parse(&bytes), Ok(Repr { vsid: Vsid::MAX, flow_id: 0xff }));
    }
}
