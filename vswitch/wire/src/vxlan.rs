//! VXLAN: Virtual eXtensible Local Area Network (RFC 7348), HNV v2's
//! encapsulation, with the VSID carried as the VNI.
//!
//! A VXLAN header follows a UDP header whose destination port is 4789 (or
//! the port the policy configures):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Inner Ethernet frame (no FCS, no 802.1Q tag) …
//! ```
//!
//! RFC 7348 §5: the I flag must be 1; the other flag bits (R) and the
//! reserved fields are sent as zero. The RFC says receivers ignore R bits;
//! like the Linux kernel's `vxlan` driver with no extensions configured, this
//! view rejects a flags byte other than exactly I, because a set R bit
//! means an extension (GBP, GPE) that changes what follows and that this
//! switch does not implement. The two reserved fields are ignored. The VNI is
//! the VSID, so VNIs 0..=0xFFF and 0xFFFFFF are rejected as reserved VSIDs
//! (RFC 7637 §4, HNV's range).
//!
//! [`Repr::parse`] checks, in order, and never panics: at least 8 bytes
//! ([`Error::Truncated`]), flags exactly I ([`Error::VxlanFlags`]), and a
//! usable VNI ([`Error::VsidReserved`]). The outer UDP rules (destination
//! port, checksum) and the inner-frame rules (no 802.1Q tag) are the
//! decapsulator's.
//!
//! Overhead: outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8 =
//! [`OVERHEAD_IPV4`] (50) bytes, or 14 + 40 + 8 + 8 = [`OVERHEAD_IPV6`] (70)
//! over IPv6, plus 4 when the outer frame carries a PA VLAN tag. The UDP
//! source port carries the flow entropy that NVGRE's FlowID carries
//! ([`src_port`]); the UDP checksum is zero over IPv4 (RFC 7348 §5) and
//! computed over IPv6 (RFC 8200 §8.1; RFC 6935/6936 allow zero only where a
//! receiver is configured for it, which the Linux kernel is not by default).

use core::fmt;

use crate::bytes::read_u32;
use crate::{Error, Result, Vsid};

/// The VXLAN header length.
pub const HEADER_LEN: usize = 8;

/// The IANA-assigned UDP destination port (RFC 7348 §5).
pub const PORT: u16 = 4789;

/// The flags byte of every valid header: I set, all else zero.
pub const FLAGS: u8 = 0x08;

/// Bytes VXLAN adds to an inner frame over an untagged IPv4 outer: 14 + 20 + 8 + 8.
pub const OVERHEAD_IPV4: usize = crate::ethernet::HEADER_LEN + crate::ipv4::HEADER_LEN + crate::udp::HEADER_LEN + HEADER_LEN;

/// Bytes VXLAN adds to an inner frame over an untagged IPv6 outer: 14 + 40 + 8 + 8.
pub const OVERHEAD_IPV6: usize = crate::ethernet::HEADER_LEN + crate::ipv6::HEADER_LEN + crate::udp::HEADER_LEN + HEADER_LEN;

/// The lowest UDP source port [`src_port`] returns (RFC 7348 §5 recommends 49152..=65535).
pub const SRC_PORT_MIN: u16 = 49152;

/// The UDP source port for a flow whose NVGRE FlowID is `flow_id`
/// (`1..=255`, or 0 for no entropy): `49152 + flow_id`, spread over the top
/// bits so that ECMP hashes that read only some port bits still see it.
/// Stable per flow; never below [`SRC_PORT_MIN`].
#[inline(always)]
pub const fn src_port(flow_id: u8) -> u16 {
    SRC_PORT_MIN | (flow_id as u16) << 6 | (flow_id as u16 & 0x3f)
}

mod field {
    use core::ops::Range;

    pub const FLAGS: usize = 0;
    pub const VNI: Range<usize> = 4..8;
}

/// A read/write view of a VXLAN header and the inner frame after it.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking it; getters panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer and check that the header fits.
    ///
    /// # Errors
    /// [`Error::Truncated`] when shorter than 8 bytes.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Check that the buffer holds the 8-byte header.
    ///
    /// # Errors
    /// [`Error::Truncated`].
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Consume the view and return the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Return the flags byte.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Return the 24-bit VNI field (unvalidated).
    pub fn vni(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::VNI]) >> 8
    }

    /// Return the inner frame.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the flags byte (and clear the first reserved field).
    pub fn set_flags(&mut self, flags: u8) {
        let b = self.buffer.as_mut();
        b[field::FLAGS] = flags;
        b[1..4].fill(0);
    }

    /// Set the VNI (and clear the last reserved byte).
    pub fn set_vni(&mut self, vni: u32) {
        self.buffer.as_mut()[field::VNI].copy_from_slice(&(vni << 8).to_be_bytes());
    }

    /// Return the inner frame, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The VXLAN fields of a validated header.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash, PartialOrd, Ord)]
pub struct Repr {
    /// The VNI, which is the Virtual Subnet ID.
    pub vsid: Vsid,
}

impl Repr {
    /// Parse and validate a VXLAN header (see the module docs).
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::VxlanFlags`] or [`Error::VsidReserved`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        let d: &[u8] = packet.buffer.as_ref();
        if d.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if d[field::FLAGS] != FLAGS {
            return Err(Error::VxlanFlags);
        }
        match Vsid::new(read_u32(&d[field::VNI]) >> 8) {
            Ok(vsid) => Ok(Repr { vsid }),
            Err(e) => Err(e),
        }
    }

    /// Return the header length (8).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the 8-byte VXLAN header.
    ///
    /// # Panics
    /// When the buffer is shorter than [`Repr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_flags(FLAGS);
        packet.set_vni(self.vsid.get());
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VXLAN vni {}", self.vsid)
    }
}

/// Validate a VXLAN header at the start of `udp_payload` and split off the inner frame.
///
/// # Errors
/// As [`Repr::parse`].
pub fn split(udp_payload: &[u8]) -> Result<(Repr, &[u8])> {
    let repr = Repr::parse(&Packet::new_unchecked(udp_payload))?;
    Ok((repr, &udp_payload[HEADER_LEN..]))
}

#[cfg(test)]
mod test {
    use super::*;

    // VNI 5001 (0x001389), 2 bytes of inner frame.
    static VXLAN_BYTES: [u8; 10] = [0x08, 0x00, 0x00, 0x00, 0x00, 0x13, 0x89, 0x00, 0xde, 0xad];

    fn repr() -> Repr {
        Repr { vsid: Vsid::new(5001).unwrap() }
    }

    fn parse(bytes: &[u8]) -> Result<Repr> {
        Repr::parse(&Packet::new_unchecked(bytes))
    }

    #[test]
    fn test_overhead() {
        assert_eq!(OVERHEAD_IPV4, 50);
        assert_eq!(OVERHEAD_IPV6, 70);
        assert_eq!(64 + OVERHEAD_IPV4, 114);
    }

    #[test]
    fn test_deconstruct() {
        assert_eq!(parse(&VXLAN_BYTES), Ok(repr()));
        let p = Packet::new_checked(&VXLAN_BYTES[..]).unwrap();
        assert_eq!(p.flags(), FLAGS);
        assert_eq!(p.vni(), 5001);
        assert_eq!(p.payload(), &[0xde, 0xad]);
        assert_eq!(split(&VXLAN_BYTES), Ok((repr(), &VXLAN_BYTES[8..])));
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 10];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        repr().emit(&mut p);
        p.payload_mut().copy_from_slice(&[0xde, 0xad]);
        assert_eq!(bytes, VXLAN_BYTES);
        assert_eq!(repr().buffer_len(), 8);
        assert_eq!(repr().to_string(), "VXLAN vni 5001");
    }

    #[test]
    fn test_truncated() {
        assert_eq!(Packet::new_checked(&VXLAN_BYTES[..7]).err(), Some(Error::Truncated));
        for n in 0..8 {
            assert_eq!(parse(&VXLAN_BYTES[..n]), Err(Error::Truncated), "{n}");
        }
        assert_eq!(parse(&VXLAN_BYTES[..8]), Ok(repr()));
    }

    #[test]
    fn test_flags() {
        for flags in [0x00u8, 0x0c, 0x88, 0x09, 0x80, 0x04, 0xff] {
            let mut bytes = VXLAN_BYTES;
            bytes[0] = flags;
            assert_eq!(parse(&bytes), Err(Error::VxlanFlags), "{flags:#04x}");
        }
    }

    #[test]
    fn test_reserved_fields_are_ignored() {
        let mut bytes = VXLAN_BYTES;
        bytes[1..4].copy_from_slice(&[0xff, 0xff, 0xff]);
        bytes[7] = 0xff;
        assert_eq!(parse(&bytes), Ok(repr()));
    }

    #[test]
    fn test_vni_reserved() {
        for vni in [0u32, 0xfff, 0xff_ffff] {
            let mut bytes = VXLAN_BYTES;
            bytes[4..8].copy_from_slice(&(vni << 8).to_be_bytes());
            assert_eq!(parse(&bytes), Err(Error::VsidReserved), "{vni:#x}");
        }
        let mut bytes = VXLAN_BYTES;
        bytes[4..8].copy_from_slice(&(0x1000u32 << 8).to_be_bytes());
        assert_eq!(parse(&bytes), Ok(Repr { vsid: Vsid::MIN }));
        bytes[4..8].copy_from_slice(&(0xff_fffeu32 << 8).to_be_bytes());
        assert_eq!(parse(&bytes), Ok(Repr { vsid: Vsid::MAX }));
    }

    #[test]
    fn test_src_port() {
        assert_eq!(src_port(0), SRC_PORT_MIN);
        let mut seen = std::collections::HashSet::new();
        for f in 0..=255u8 {
            let p = src_port(f);
            assert!(p >= SRC_PORT_MIN);
            assert!(seen.insert(p), "distinct per FlowID");
        }
    }
}
