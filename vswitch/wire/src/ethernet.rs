//! Ethernet II frames (IEEE 802.3, without preamble and FCS).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  Destination MAC address                      |
//! +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                               |                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//! |                    Source MAC address                         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           EtherType           |  Payload …
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Contract: [`Frame::new_checked`] only checks that the buffer holds the
//! 14-byte header; after it succeeds no getter or setter panics. An 802.1Q
//! tag is not parsed here: when `ethertype()` is [`EtherType::Vlan`] or
//! [`EtherType::QinQ`] the payload starts with a [`crate::vlan`] tag.

use core::fmt;
use core::str::FromStr;

use crate::bytes::{read_u16, write_u16};
use crate::{Error, Ipv6Address, Result};

enum_with_unknown! {
    /// Ethernet protocol type.
    pub enum EtherType(u16) {
        /// IPv4.
        Ipv4 = 0x0800,
        /// ARP.
        Arp = 0x0806,
        /// IPv6.
        Ipv6 = 0x86DD,
        /// 802.1Q customer VLAN tag.
        Vlan = 0x8100,
        /// 802.1ad service VLAN tag (QinQ).
        QinQ = 0x88A8,
        /// Transparent Ethernet Bridging; the GRE protocol type of NVGRE.
        TransparentEthernetBridging = 0x6558,
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtherType::Ipv4 => f.write_str("IPv4"),
            EtherType::Arp => f.write_str("ARP"),
            EtherType::Ipv6 => f.write_str("IPv6"),
            EtherType::Vlan => f.write_str("802.1Q"),
            EtherType::QinQ => f.write_str("802.1ad"),
            EtherType::TransparentEthernetBridging => f.write_str("TEB"),
            EtherType::Unknown(v) => write!(f, "0x{v:04x}"),
        }
    }
}

/// A six-octet Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Address = Address([0xff; 6]);

    /// Construct an address from a six-byte slice.
    ///
    /// # Panics
    /// When `data` is not exactly six bytes long.
    pub fn from_bytes(data: &[u8]) -> Address {
        let mut bytes = [0u8; 6];
        bytes.copy_from_slice(data);
        Address(bytes)
    }

    /// Return the address as a byte slice.
    pub const fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Query whether this is the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Query whether the group (I/G) bit is set; broadcast is multicast too.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Query whether this is a unicast address (group bit clear).
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// Query whether the locally-administered (U/L) bit is set.
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }

    /// Return the `33:33:xx:xx:xx:xx` address an IPv6 multicast group maps to (RFC 2464 §7).
    pub const fn from_ipv6_multicast(group: &Ipv6Address) -> Address {
        let o = group.octets();
        Address([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

fn hex_nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl FromStr for Address {
    type Err = Error;

    /// Parse `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`: exactly six
    /// two-digit hex octets and one kind of separator.
    ///
    /// # Errors
    /// [`Error::Malformed`] for anything else.
    fn from_str(s: &str) -> Result<Address> {
        let s = s.as_bytes();
        if s.len() != 17 {
            return Err(Error::Malformed);
        }
        let sep = s[2];
        if sep != b':' && sep != b'-' {
            return Err(Error::Malformed);
        }
        let mut out = [0u8; 6];
        for (i, octet) in out.iter_mut().enumerate() {
            let at = i * 3;
            if i > 0 && s[at - 1] != sep {
                return Err(Error::Malformed);
            }
            let hi = hex_nibble(s[at]).ok_or(Error::Malformed)?;
            let lo = hex_nibble(s[at + 1]).ok_or(Error::Malformed)?;
            *octet = (hi << 4) | lo;
        }
        Ok(Address(out))
    }
}

/// A read/write view of an Ethernet II frame.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;

    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: usize = 14;
}

/// The Ethernet header length.
pub const HEADER_LEN: usize = field::PAYLOAD;

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wrap a buffer without checking it; getters panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wrap a buffer and check its length.
    ///
    /// # Errors
    /// See [`Frame::check_len`].
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Check that the buffer holds the whole header.
    ///
    /// # Errors
    /// [`Error::Truncated`] when it is shorter than 14 bytes.
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

    /// Return the header length (always 14).
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    /// Return the frame length for a payload of `payload_len` bytes.
    pub const fn buffer_len(payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Return the destination address field.
    pub fn dst_addr(&self) -> Address {
        Address::from_bytes(&self.buffer.as_ref()[field::DESTINATION])
    }

    /// Return the source address field.
    pub fn src_addr(&self) -> Address {
        Address::from_bytes(&self.buffer.as_ref()[field::SOURCE])
    }

    /// Return the EtherType field.
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(read_u16(&self.buffer.as_ref()[field::ETHERTYPE]))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Frame<&'a T> {
    /// Return the bytes after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Set the destination address field.
    pub fn set_dst_addr(&mut self, value: Address) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&value.0);
    }

    /// Set the source address field.
    pub fn set_src_addr(&mut self, value: Address) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&value.0);
    }

    /// Set the EtherType field.
    pub fn set_ethertype(&mut self, value: EtherType) {
        write_u16(&mut self.buffer.as_mut()[field::ETHERTYPE], value.into());
    }

    /// Return a mutable slice of the bytes after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Frame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The valid subset of an Ethernet header.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub struct Repr {
    /// Source MAC address.
    pub src_addr: Address,
    /// Destination MAC address.
    pub dst_addr: Address,
    /// EtherType (the outer one when the frame is tagged).
    pub ethertype: EtherType,
}

impl Repr {
    /// Parse a frame view.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the frame is shorter than its header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &Frame<&T>) -> Result<Repr> {
        frame.check_len()?;
        Ok(Repr { src_addr: frame.src_addr(), dst_addr: frame.dst_addr(), ethertype: frame.ethertype() })
    }

    /// Return the header length.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the header into a frame view.
    ///
    /// # Panics
    /// When the buffer is shorter than [`Repr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_src_addr(self.src_addr);
        frame.set_dst_addr(self.dst_addr);
        frame.set_ethertype(self.ethertype);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} > {} {}", self.src_addr, self.dst_addr, self.ethertype)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    static FRAME_BYTES: [u8; 18] = [
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, // dst
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, // src
        0x08, 0x00, // IPv4
        0xaa, 0xbb, 0xcc, 0xdd, // payload
    ];

    static PAYLOAD_BYTES: [u8; 4] = [0xaa, 0xbb, 0xcc, 0xdd];

    #[test]
    fn test_deconstruct() {
        let frame = Frame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(frame.dst_addr(), Address([1, 2, 3, 4, 5, 6]));
        assert_eq!(frame.src_addr(), Address([0x11, 0x12, 0x13, 0x14, 0x15, 0x16]));
        assert_eq!(frame.ethertype(), EtherType::Ipv4);
        assert_eq!(frame.payload(), &PAYLOAD_BYTES[..]);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 18];
        let mut frame = Frame::new_unchecked(&mut bytes[..]);
        frame.set_dst_addr(Address([1, 2, 3, 4, 5, 6]));
        frame.set_src_addr(Address([0x11, 0x12, 0x13, 0x14, 0x15, 0x16]));
        frame.set_ethertype(EtherType::Ipv4);
        frame.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(&bytes[..], &FRAME_BYTES[..]);
    }

    #[test]
    fn test_repr_roundtrip() {
        let frame = Frame::new_checked(&FRAME_BYTES[..]).unwrap();
        let repr = Repr::parse(&frame).unwrap();
        let mut bytes = [0xa5u8; 14];
        repr.emit(&mut Frame::new_unchecked(&mut bytes[..]));
        assert_eq!(&bytes[..], &FRAME_BYTES[..14]);
        assert_eq!(repr.buffer_len(), 14);
    }

    #[test]
    fn test_check_len_truncated() {
        assert_eq!(Frame::new_checked(&FRAME_BYTES[..13]), Err(Error::Truncated));
        assert!(Frame::new_checked(&FRAME_BYTES[..14]).is_ok());
    }

    #[test]
    fn test_ethertype_roundtrip() {
        for raw in [0x0800u16, 0x0806, 0x86dd, 0x8100, 0x88a8, 0x6558, 0x1234] {
            assert_eq!(u16::from(EtherType::from(raw)), raw);
        }
        assert_eq!(EtherType::from(0x1234), EtherType::Unknown(0x1234));
        assert_eq!(EtherType::from(0x6558), EtherType::TransparentEthernetBridging);
    }

    #[test]
    fn test_address_predicates() {
        assert!(Address::BROADCAST.is_broadcast());
        assert!(Address::BROADCAST.is_multicast());
        assert!(!Address::BROADCAST.is_unicast());
        let mc = Address([0x01, 0x00, 0x5e, 0, 0, 1]);
        assert!(mc.is_multicast() && !mc.is_broadcast());
        let uc = Address([0x02, 0, 0, 0, 0, 1]);
        assert!(uc.is_unicast() && uc.is_local());
        assert_eq!(uc.as_bytes(), &[2, 0, 0, 0, 0, 1]);
        let group: Ipv6Address = "ff02::1:ff00:1234".parse().unwrap();
        assert_eq!(Address::from_ipv6_multicast(&group), Address([0x33, 0x33, 0xff, 0x00, 0x12, 0x34]));
    }

    #[test]
    fn test_address_display_fromstr() {
        let a = Address([0x00, 0x15, 0x5d, 0xab, 0xcd, 0xef]);
        assert_eq!(a.to_string(), "00:15:5d:ab:cd:ef");
        assert_eq!("00:15:5d:ab:cd:ef".parse::<Address>(), Ok(a));
        assert_eq!("00-15-5D-AB-CD-EF".parse::<Address>(), Ok(a));
        for bad in ["", "00:15:5d:ab:cd", "00:15:5d:ab:cd:ef:01", "00:15-5d:ab:cd:ef", "00.15.5d.ab.cd.ef", "0g:15:5d:ab:cd:ef", "+0:15:5d:ab:cd:ef", "0:15:5d:ab:cd:ef0"] {
            assert_eq!(bad.parse::<Address>(), Err(Error::Malformed), "{bad}");
        }
    }
}
