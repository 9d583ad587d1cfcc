//! ARP for Ethernet and IPv4 (RFC 826), and answering it in place.
//!
//! Only the Ethernet/IPv4 form is handled, so every field has a fixed
//! offset:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Hardware type (1)         |    Protocol type (0x0800)     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  HLEN (6)     |   PLEN (4)    |          Operation            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Sender hardware address (6 bytes)  …                 |
//! |  … | Sender protocol address (4 bytes) | Target hardware …    |
//! |  … address (6 bytes)  | Target protocol address (4 bytes)     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Contract: [`Packet::check_len`] checks that the 28 bytes of the
//! Ethernet/IPv4 form are present; [`Packet::new_checked`] also checks that
//! the hardware/protocol types and lengths are 1/0x0800/6/4
//! ([`Error::Unsupported`] otherwise). After either, no getter or setter
//! panics. Trailing bytes (Ethernet padding) are ignored.
//!
//! HNV answers ARP from policy: [`make_reply_in_place`] turns a request into
//! its reply in the same buffer, and [`make_reply_frame_in_place`] does the
//! same for a whole Ethernet frame.

use core::fmt;

use crate::bytes::{read_u16, write_u16};
use crate::{Error, EtherType, EthernetAddress, EthernetFrame, Ipv4Address, Result};

enum_with_unknown! {
    /// ARP operation.
    pub enum Operation(u16) {
        /// Who has the target protocol address?
        Request = 1,
        /// The sender has it.
        Reply = 2,
    }
}

/// The ARP hardware type for Ethernet.
pub const HARDWARE_ETHERNET: u16 = 1;

/// A read/write view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;

    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// The length of an Ethernet/IPv4 ARP packet.
pub const HEADER_LEN: usize = field::TPA.end;

fn ipv4_at(d: &[u8]) -> Ipv4Address {
    Ipv4Address::new(d[0], d[1], d[2], d[3])
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking it; getters panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer, check its length and that it is Ethernet/IPv4 ARP.
    ///
    /// # Errors
    /// [`Error::Truncated`] (see [`Packet::check_len`]) or
    /// [`Error::Unsupported`] for other hardware or protocol types.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        packet.check_supported()?;
        Ok(packet)
    }

    /// Check that the buffer holds the 28 bytes of the Ethernet/IPv4 form.
    ///
    /// # Errors
    /// [`Error::Truncated`] when it is shorter.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Check that this is Ethernet (1) over IPv4 (0x0800) with lengths 6 and 4.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the fixed 8 bytes are missing;
    /// [`Error::Unsupported`] for any other combination.
    pub fn check_supported(&self) -> Result<()> {
        let d = self.buffer.as_ref();
        if d.len() < field::OPER.end {
            return Err(Error::Truncated);
        }
        if read_u16(&d[field::HTYPE]) != HARDWARE_ETHERNET || read_u16(&d[field::PTYPE]) != u16::from(EtherType::Ipv4) || d[field::HLEN] != 6 || d[field::PLEN] != 4 {
            return Err(Error::Unsupported);
        }
        Ok(())
    }

    /// Consume the view and return the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Return the packet length (always 28).
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    /// Return the hardware type field.
    pub fn hardware_type(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::HTYPE])
    }

    /// Return the protocol type field.
    pub fn protocol_type(&self) -> EtherType {
        EtherType::from(read_u16(&self.buffer.as_ref()[field::PTYPE]))
    }

    /// Return the hardware length field.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Return the protocol length field.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Return the operation field.
    pub fn operation(&self) -> Operation {
        Operation::from(read_u16(&self.buffer.as_ref()[field::OPER]))
    }

    /// Return the sender hardware address field.
    pub fn source_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SHA])
    }

    /// Return the sender protocol address field.
    pub fn source_protocol_addr(&self) -> Ipv4Address {
        ipv4_at(&self.buffer.as_ref()[field::SPA])
    }

    /// Return the target hardware address field.
    pub fn target_hardware_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::THA])
    }

    /// Return the target protocol address field.
    pub fn target_protocol_addr(&self) -> Ipv4Address {
        ipv4_at(&self.buffer.as_ref()[field::TPA])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the hardware type field.
    pub fn set_hardware_type(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::HTYPE], value);
    }

    /// Set the protocol type field.
    pub fn set_protocol_type(&mut self, value: EtherType) {
        write_u16(&mut self.buffer.as_mut()[field::PTYPE], value.into());
    }

    /// Set the hardware length field.
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Set the protocol length field.
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Set the operation field.
    pub fn set_operation(&mut self, value: Operation) {
        write_u16(&mut self.buffer.as_mut()[field::OPER], value.into());
    }

    /// Set the sender hardware address field.
    pub fn set_source_hardware_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&value.0);
    }

    /// Set the sender protocol address field.
    pub fn set_source_protocol_addr(&mut self, value: Ipv4Address) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&value.octets());
    }

    /// Set the target hardware address field.
    pub fn set_target_hardware_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&value.0);
    }

    /// Set the target protocol address field.
    pub fn set_target_protocol_addr(&mut self, value: Ipv4Address) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&value.octets());
    }
}

/// Turn an ARP request into the reply announcing `answer_mac`, in place.
///
/// The new target is the old sender, the new sender protocol address is the
/// requested target IP, the new sender hardware address is `answer_mac`, and
/// the operation becomes [`Operation::Reply`]. The caller has already
/// decided to answer (checked the operation and looked the target up); the
/// Ethernet header is left alone (see [`make_reply_frame_in_place`]).
///
/// # Panics
/// When `packet` is shorter than 28 bytes (never after `new_checked`).
pub fn make_reply_in_place<T: AsRef<[u8]> + AsMut<[u8]>>(packet: &mut Packet<T>, answer_mac: EthernetAddress) {
    let requester_mac = packet.source_hardware_addr();
    let requester_ip = packet.source_protocol_addr();
    let requested_ip = packet.target_protocol_addr();
    packet.set_operation(Operation::Reply);
    packet.set_source_hardware_addr(answer_mac);
    packet.set_source_protocol_addr(requested_ip);
    packet.set_target_hardware_addr(requester_mac);
    packet.set_target_protocol_addr(requester_ip);
}

/// Turn an untagged Ethernet frame carrying an ARP request into the reply, in place.
///
/// Validates the frame, then swaps the Ethernet addresses (destination =
/// the requester, source = `answer_mac`) and applies [`make_reply_in_place`].
/// The frame keeps its length (padding included).
///
/// # Errors
/// [`Error::Truncated`] for a short frame, [`Error::Unsupported`] when it is
/// not an Ethernet/IPv4 ARP request.
pub fn make_reply_frame_in_place(frame: &mut [u8], answer_mac: EthernetAddress) -> Result<()> {
    let mut eth = EthernetFrame::new_checked(frame)?;
    if eth.ethertype() != EtherType::Arp {
        return Err(Error::Unsupported);
    }
    let mut arp = Packet::new_checked(eth.payload_mut())?;
    if arp.operation() != Operation::Request {
        return Err(Error::Unsupported);
    }
    let requester_mac = arp.source_hardware_addr();
    make_reply_in_place(&mut arp, answer_mac);
    eth.set_dst_addr(requester_mac);
    eth.set_src_addr(answer_mac);
    Ok(())
}

/// The valid subset of an Ethernet/IPv4 ARP packet.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub struct Repr {
    /// Operation.
    pub operation: Operation,
    /// Sender hardware address.
    pub source_hardware_addr: EthernetAddress,
    /// Sender protocol address.
    pub source_protocol_addr: Ipv4Address,
    /// Target hardware address.
    pub target_hardware_addr: EthernetAddress,
    /// Target protocol address.
    pub target_protocol_addr: Ipv4Address,
}

impl Repr {
    /// Parse an ARP view.
    ///
    /// # Errors
    /// [`Error::Truncated`] or [`Error::Unsupported`], as [`Packet::new_checked`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        packet.check_supported()?;
        Ok(Repr {
            operation: packet.operation(),
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// Return the packet length (28).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write the packet into a view, types and lengths included.
    ///
    /// # Panics
    /// When the buffer is shorter than [`Repr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_hardware_type(HARDWARE_ETHERNET);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(self.source_hardware_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.operation {
            Operation::Request => write!(f, "ARP request who-has {} tell {}", self.target_protocol_addr, self.source_protocol_addr),
            Operation::Reply => write!(f, "ARP reply {} is-at {}", self.source_protocol_addr, self.source_hardware_addr),
            Operation::Unknown(op) => write!(f, "ARP op {} {} ({}) > {} ({})", op, self.source_protocol_addr, self.source_hardware_addr, self.target_protocol_addr, self.target_hardware_addr),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    static PACKET_BYTES: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // eth/ipv4, request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // sha
        0x0a, 0x00, 0x00, 0x01, // spa 10.0.0.1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // tha
        0x0a, 0x00, 0x00, 0x02, // tpa 10.0.0.2
    ];

    static REPLY_BYTES: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, // eth/ipv4, reply
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // sha = answer
        0x0a, 0x00, 0x00, 0x02, // spa 10.0.0.2
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // tha = requester
        0x0a, 0x00, 0x00, 0x01, // tpa 10.0.0.1
    ];

    fn request_repr() -> Repr {
        Repr {
            operation: Operation::Request,
            source_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            source_protocol_addr: Ipv4Address::new(10, 0, 0, 1),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Address::new(10, 0, 0, 2),
        }
    }

    #[test]
    fn test_deconstruct() {
        let p = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), EtherType::Ipv4);
        assert_eq!(p.hardware_len(), 6);
        assert_eq!(p.protocol_len(), 4);
        assert_eq!(p.operation(), Operation::Request);
        assert_eq!(p.source_hardware_addr(), EthernetAddress([2, 0, 0, 0, 0, 1]));
        assert_eq!(p.source_protocol_addr(), Ipv4Address::new(10, 0, 0, 1));
        assert_eq!(p.target_hardware_addr(), EthernetAddress([0; 6]));
        assert_eq!(p.target_protocol_addr(), Ipv4Address::new(10, 0, 0, 2));
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 28];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_hardware_type(1);
        p.set_protocol_type(EtherType::Ipv4);
        p.set_hardware_len(6);
        p.set_protocol_len(4);
        p.set_operation(Operation::Request);
        p.set_source_hardware_addr(EthernetAddress([2, 0, 0, 0, 0, 1]));
        p.set_source_protocol_addr(Ipv4Address::new(10, 0, 0, 1));
        p.set_target_hardware_addr(EthernetAddress([0; 6]));
        p.set_target_protocol_addr(Ipv4Address::new(10, 0, 0, 2));
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn test_parse_emit() {
        let p = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&p), Ok(request_repr()));
        let mut bytes = [0xa5u8; 28];
        request_repr().emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn test_check_len_truncated() {
        assert_eq!(Packet::new_checked(&PACKET_BYTES[..27]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&PACKET_BYTES[..7]), Err(Error::Truncated));
    }

    #[test]
    fn test_unsupported() {
        for (at, value) in [(1usize, 6u8), (2, 0x86), (4, 8), (5, 16)] {
            let mut bytes = PACKET_BYTES;
            bytes[at] = value;
            assert_eq!(Packet::new_checked(&bytes[..]), Err(Error::Unsupported));
            assert_eq!(Repr::parse(&Packet::new_unchecked(&bytes[..])), Err(Error::Unsupported));
        }
    }

    #[test]
    fn test_make_reply_in_place() {
        let mut bytes = PACKET_BYTES;
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        make_reply_in_place(&mut p, EthernetAddress([2, 0, 0, 0, 0, 2]));
        assert_eq!(bytes, REPLY_BYTES);
    }

    #[test]
    fn test_make_reply_frame_in_place() {
        let mut frame = [0u8; 60];
        frame[..6].copy_from_slice(&[0xff; 6]);
        frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        frame[12..14].copy_from_slice(&[0x08, 0x06]);
        frame[14..42].copy_from_slice(&PACKET_BYTES);
        let answer = EthernetAddress([2, 0, 0, 0, 0, 2]);
        make_reply_frame_in_place(&mut frame, answer).unwrap();
        assert_eq!(&frame[..6], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&frame[6..12], answer.as_bytes());
        assert_eq!(&frame[14..42], &REPLY_BYTES[..]);
        // A reply is not answered again.
        assert_eq!(make_reply_frame_in_place(&mut frame, answer), Err(Error::Unsupported));
        assert_eq!(make_reply_frame_in_place(&mut frame[..41], answer), Err(Error::Truncated));
        frame[12] = 0x86;
        assert_eq!(make_reply_frame_in_place(&mut frame, answer), Err(Error::Unsupported));
    }

    #[test]
    fn test_display() {
        assert_eq!(request_repr().to_string(), "ARP request who-has 10.0.0.2 tell 10.0.0.1");
    }
}
