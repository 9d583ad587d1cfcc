//! IEEE 802.1Q VLAN tags.
//!
//! The view covers the four bytes that follow an outer EtherType of
//! [`EtherType::Vlan`] (0x8100) or [`EtherType::QinQ`] (0x88A8): the Tag
//! Control Information and the inner EtherType. The payload is what follows.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | PCP |D|       VLAN ID         |       Inner EtherType         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Contract: [`Packet::new_checked`] checks only that the four bytes are
//! present; no getter or setter panics afterwards. RFC 7637 §4 forbids an
//! 802.1Q tag on the inner frame of NVGRE; enforcing that is the datapath's job.

use core::fmt;

use crate::bytes::{read_u16, write_u16};
use crate::{Error, EtherType, Result};

/// A read/write view of an 802.1Q tag.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;

    pub const TCI: Range<usize> = 0..2;
    pub const ETHERTYPE: Range<usize> = 2..4;
    pub const PAYLOAD: usize = 4;
}

/// The tag length after the outer EtherType.
pub const HEADER_LEN: usize = field::PAYLOAD;

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking it; getters panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer and check its length.
    ///
    /// # Errors
    /// See [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Check that the buffer holds the whole tag.
    ///
    /// # Errors
    /// [`Error::Truncated`] when it is shorter than 4 bytes.
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

    /// Return the tag length (always 4).
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    /// Return the raw Tag Control Information field.
    pub fn tci(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::TCI])
    }

    /// Return the Priority Code Point (3 bits).
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Return the Drop Eligible Indicator bit.
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// Return the VLAN identifier (12 bits).
    pub fn vlan_id(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// Return the inner EtherType field.
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(read_u16(&self.buffer.as_ref()[field::ETHERTYPE]))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Return the bytes after the tag.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the raw Tag Control Information field.
    pub fn set_tci(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::TCI], value);
    }

    /// Set the Priority Code Point (low 3 bits of `value`).
    pub fn set_pcp(&mut self, value: u8) {
        let tci = (self.tci() & 0x1fff) | (u16::from(value & 0x7) << 13);
        self.set_tci(tci);
    }

    /// Set the Drop Eligible Indicator bit.
    pub fn set_dei(&mut self, value: bool) {
        let tci = (self.tci() & !0x1000) | if value { 0x1000 } else { 0 };
        self.set_tci(tci);
    }

    /// Set the VLAN identifier (low 12 bits of `value`).
    pub fn set_vlan_id(&mut self, value: u16) {
        let tci = (self.tci() & 0xf000) | (value & 0x0fff);
        self.set_tci(tci);
    }

    /// Set the inner EtherType field.
    pub fn set_ethertype(&mut self, value: EtherType) {
        write_u16(&mut self.buffer.as_mut()[field::ETHERTYPE], value.into());
    }

    /// Return a mutable slice of the bytes after the tag.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

/// The valid subset of an 802.1Q tag.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub struct Repr {
    /// Priority Code Point, `0..=7`.
    pub pcp: u8,
    /// Drop Eligible Indicator.
    pub dei: bool,
    /// VLAN identifier, `0..=4095`.
    pub vlan_id: u16,
    /// Inner EtherType.
    pub ethertype: EtherType,
}

impl Repr {
    /// Parse a tag view.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the tag is shorter than 4 bytes.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        Ok(Repr { pcp: packet.pcp(), dei: packet.dei(), vlan_id: packet.vlan_id(), ethertype: packet.ethertype() })
    }

    /// Return the tag length.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the tag into a view (PCP and VLAN ID are masked to their widths).
    ///
    /// # Panics
    /// When the buffer is shorter than [`Repr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let tci = (u16::from(self.pcp & 0x7) << 13) | if self.dei { 0x1000 } else { 0 } | (self.vlan_id & 0x0fff);
        packet.set_tci(tci);
        packet.set_ethertype(self.ethertype);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vlan {} pcp {}", self.vlan_id, self.pcp)?;
        if self.dei {
            f.write_str(" dei")?;
        }
        write!(f, " {}", self.ethertype)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // PCP 5, DEI 1, VID 0x123, inner IPv4, two payload bytes.
    static TAG_BYTES: [u8; 6] = [0xb1, 0x23, 0x08, 0x00, 0xde, 0xad];

    #[test]
    fn test_deconstruct() {
        let p = Packet::new_checked(&TAG_BYTES[..]).unwrap();
        assert_eq!(p.tci(), 0xb123);
        assert_eq!(p.pcp(), 5);
        assert!(p.dei());
        assert_eq!(p.vlan_id(), 0x123);
        assert_eq!(p.ethertype(), EtherType::Ipv4);
        assert_eq!(p.payload(), &[0xde, 0xad]);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 6];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_tci(0);
        p.set_pcp(5);
        p.set_dei(true);
        p.set_vlan_id(0x123);
        p.set_ethertype(EtherType::Ipv4);
        p.payload_mut().copy_from_slice(&[0xde, 0xad]);
        assert_eq!(bytes, TAG_BYTES);
    }

    #[test]
    fn test_repr() {
        let p = Packet::new_checked(&TAG_BYTES[..]).unwrap();
        let repr = Repr::parse(&p).unwrap();
        assert_eq!(repr, Repr { pcp: 5, dei: true, vlan_id: 0x123, ethertype: EtherType::Ipv4 });
        let mut bytes = [0xa5u8; 4];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(&bytes[..], &TAG_BYTES[..4]);
    }

    #[test]
    fn test_check_len_truncated() {
        assert_eq!(Packet::new_checked(&TAG_BYTES[..3]), Err(Error::Truncated));
    }
}
