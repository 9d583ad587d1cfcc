//! ICMP for IPv6 (RFC 4443); Neighbor Discovery bodies live in [`crate::ndisc`].
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Echo: Identifier             |  Echo: Sequence Number        |
//! |  Packet Too Big (type 2): MTU (32 bits)                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Message body …
//! ```
//!
//! The fixed header length depends on the type ([`Packet::header_len`]):
//! 24 for Neighbor Solicitation/Advertisement, 16 for Router Advertisement,
//! 40 for Redirect and 8 for every other type, known or not (every ICMPv6
//! message has at least the type, code, checksum and a 4-byte word).
//!
//! Contract: [`Packet::new_checked`] checks that the buffer holds that
//! header ([`Error::Truncated`]); afterwards no getter or setter panics.
//! The type-specific getters (`echo_ident`, `pkt_too_big_mtu`, …) read the
//! second 32-bit word whatever the type. The
//! checksum covers the IPv6 pseudo-header and the whole buffer, so pass
//! exactly the IPv6 payload. [`Repr::parse`] verifies it.

use core::fmt;

use crate::bytes::{read_u16, read_u32, write_u16, write_u32};
use crate::ndisc;
use crate::{checksum, Error, IpProtocol, Ipv6Address, Result};

enum_with_unknown! {
    /// ICMPv6 message type.
    pub enum Message(u8) {
        /// Destination unreachable.
        DstUnreachable = 1,
        /// Packet too big.
        PktTooBig = 2,
        /// Time exceeded.
        TimeExceeded = 3,
        /// Parameter problem.
        ParamProblem = 4,
        /// Echo request.
        EchoRequest = 128,
        /// Echo reply.
        EchoReply = 129,
        /// Multicast listener query.
        MldQuery = 130,
        /// Multicast listener report (v1).
        MldReport = 131,
        /// Multicast listener done.
        MldDone = 132,
        /// Router solicitation.
        RouterSolicit = 133,
        /// Router advertisement.
        RouterAdvert = 134,
        /// Neighbor solicitation.
        NeighborSolicit = 135,
        /// Neighbor advertisement.
        NeighborAdvert = 136,
        /// Redirect.
        Redirect = 137,
        /// Multicast listener report (v2).
        MldV2Report = 143,
    }
}

impl Message {
    /// Return the fixed header length of this message type.
    pub const fn header_len(self) -> usize {
        match self {
            Message::NeighborSolicit | Message::NeighborAdvert => 24,
            Message::RouterAdvert => 16,
            Message::Redirect => 40,
            _ => 8,
        }
    }
}

/// A read/write view of an ICMPv6 message.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const ECHO_IDENT: Range<usize> = 4..6;
    pub const ECHO_SEQNO: Range<usize> = 6..8;
    pub const MTU: Range<usize> = 4..8;
}

/// The shortest ICMPv6 header: type, code, checksum and one 32-bit word.
pub const MIN_HEADER_LEN: usize = field::MTU.end;

/// The minimum IPv6 link MTU; an ICMPv6 error must fit in it (RFC 4443 §2.4).
pub const MIN_MTU: usize = 1280;

/// Return what an ICMPv6 error quotes of `original` (an IPv6 packet): as
/// much as keeps the error within [`MIN_MTU`] (40 IPv6 + 8 ICMPv6 bytes
/// of headers). Never panics.
pub fn quote(original: &[u8]) -> &[u8] {
    &original[..original.len().min(MIN_MTU - 48)]
}

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

    /// Check that the buffer holds the header of its message type.
    ///
    /// # Errors
    /// [`Error::Truncated`] when it is shorter than 8 bytes or than
    /// [`Packet::header_len`].
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN || len < self.header_len() {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Consume the view and return the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Return the fixed header length for this message type.
    pub fn header_len(&self) -> usize {
        self.msg_type().header_len()
    }

    /// Return the type field.
    pub fn msg_type(&self) -> Message {
        Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// Return the code field.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Return the checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Return the echo identifier field.
    pub fn echo_ident(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::ECHO_IDENT])
    }

    /// Return the echo sequence number field.
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::ECHO_SEQNO])
    }

    /// Return the MTU field of a Packet Too Big message.
    pub fn pkt_too_big_mtu(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::MTU])
    }

    fn sum(&self, src_addr: &Ipv6Address, dst_addr: &Ipv6Address) -> u16 {
        let d = self.buffer.as_ref();
        checksum::combine(&[checksum::pseudo_header_v6(src_addr, dst_addr, IpProtocol::Ipv6Icmp, d.len() as u32), checksum::data(d)])
    }

    /// Validate the checksum with the IPv6 pseudo-header.
    pub fn verify_checksum(&self, src_addr: &Ipv6Address, dst_addr: &Ipv6Address) -> bool {
        self.sum(src_addr, dst_addr) == !0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Return the body after [`Packet::header_len`] bytes.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the type field.
    pub fn set_msg_type(&mut self, value: Message) {
        self.buffer.as_mut()[field::TYPE] = value.into();
    }

    /// Set the code field.
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Set the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
    }

    /// Set the echo identifier field.
    pub fn set_echo_ident(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::ECHO_IDENT], value);
    }

    /// Set the echo sequence number field.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::ECHO_SEQNO], value);
    }

    /// Set the MTU field of a Packet Too Big message.
    pub fn set_pkt_too_big_mtu(&mut self, value: u32) {
        write_u32(&mut self.buffer.as_mut()[field::MTU], value);
    }

    /// Compute and write the checksum with the IPv6 pseudo-header.
    pub fn fill_checksum(&mut self, src_addr: &Ipv6Address, dst_addr: &Ipv6Address) {
        self.set_checksum(0);
        let sum = self.sum(src_addr, dst_addr);
        self.set_checksum(!sum);
    }

    /// Return a mutable slice of the body after [`Packet::header_len`] bytes.
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

impl<T: AsRef<[u8]> + AsMut<[u8]>> AsMut<[u8]> for Packet<T> {
    fn as_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
}

/// The valid subset of the ICMPv6 messages this switch sends or answers.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub enum Repr<'a> {
    /// Echo request.
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Echo data.
        data: &'a [u8],
    },
    /// Packet too big (type 2, code 0).
    PktTooBig {
        /// MTU of the next hop.
        mtu: u32,
        /// The quoted invoking packet (see [`quote`]).
        data: &'a [u8],
    },
    /// Neighbor Solicitation or Advertisement.
    Ndisc(ndisc::Repr),
}

impl<'a> Repr<'a> {
    /// Parse a view and verify its checksum against the IPv6 addresses.
    ///
    /// # Errors
    /// [`Error::Truncated`]; [`Error::BadChecksum`]; [`Error::Malformed`]
    /// for a non-zero code where 0 is required (and the NDP checks of
    /// [`ndisc::Repr::parse`]); [`Error::Unsupported`] for other types.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(src_addr: &Ipv6Address, dst_addr: &Ipv6Address, packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        if !packet.verify_checksum(src_addr, dst_addr) {
            return Err(Error::BadChecksum);
        }
        match (packet.msg_type(), packet.msg_code()) {
            (Message::EchoRequest, 0) => Ok(Repr::EchoRequest { ident: packet.echo_ident(), seq_no: packet.echo_seq_no(), data: packet.payload() }),
            (Message::EchoReply, 0) => Ok(Repr::EchoReply { ident: packet.echo_ident(), seq_no: packet.echo_seq_no(), data: packet.payload() }),
            (Message::PktTooBig, 0) => Ok(Repr::PktTooBig { mtu: packet.pkt_too_big_mtu(), data: packet.payload() }),
            (Message::EchoRequest | Message::EchoReply | Message::PktTooBig, _) => Err(Error::Malformed),
            (Message::NeighborSolicit | Message::NeighborAdvert, _) => ndisc::Repr::parse(packet).map(Repr::Ndisc),
            _ => Err(Error::Unsupported),
        }
    }

    /// Return the message length.
    pub const fn buffer_len(&self) -> usize {
        match self {
            Repr::EchoRequest { data, .. } | Repr::EchoReply { data, .. } | Repr::PktTooBig { data, .. } => 8 + data.len(),
            Repr::Ndisc(n) => n.buffer_len(),
        }
    }

    /// Write the message, then fill the checksum with the IPv6 addresses.
    ///
    /// Pass a buffer of exactly [`Repr::buffer_len`] bytes: the checksum
    /// covers the whole buffer.
    ///
    /// # Panics
    /// When the buffer is shorter than [`Repr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, src_addr: &Ipv6Address, dst_addr: &Ipv6Address, packet: &mut Packet<T>) {
        let (ty, data) = match *self {
            Repr::EchoRequest { ident, seq_no, data } => {
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                (Message::EchoRequest, data)
            }
            Repr::EchoReply { ident, seq_no, data } => {
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                (Message::EchoReply, data)
            }
            Repr::PktTooBig { mtu, data } => {
                packet.set_pkt_too_big_mtu(mtu);
                (Message::PktTooBig, data)
            }
            Repr::Ndisc(n) => {
                n.emit(packet);
                packet.fill_checksum(src_addr, dst_addr);
                return;
            }
        };
        packet.set_msg_type(ty);
        packet.set_msg_code(0);
        packet.payload_mut()[..data.len()].copy_from_slice(data);
        packet.fill_checksum(src_addr, dst_addr);
    }
}

impl fmt::Display for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repr::EchoRequest { ident, seq_no, data } => {
                write!(f, "ICMPv6 echo request id {ident} seq {seq_no} len {}", data.len())
            }
            Repr::EchoReply { ident, seq_no, data } => {
                write!(f, "ICMPv6 echo reply id {ident} seq {seq_no} len {}", data.len())
            }
            Repr::PktTooBig { mtu, .. } => write!(f, "ICMPv6 packet too big mtu {mtu}"),
            Repr::Ndisc(n) => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn src() -> Ipv6Address {
        Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)
    }

    fn dst() -> Ipv6Address {
        Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 2)
    }

    // Echo request id 0x1234 seq 0xabcd, 4 data bytes, fe80::1 > fe80::2.
    static ECHO_BYTES: [u8; 12] = [0x80, 0x00, 0x19, 0xb3, 0x12, 0x34, 0xab, 0xcd, 0xaa, 0x00, 0x00, 0xff];

    static ECHO_DATA: [u8; 4] = [0xaa, 0x00, 0x00, 0xff];

    // Packet too big, MTU 1280, quoting 4 bytes.
    static PTB_BYTES: [u8; 12] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x60, 0x00, 0x00, 0x00];

    #[test]
    fn test_echo_deconstruct() {
        let p = Packet::new_checked(&ECHO_BYTES[..]).unwrap();
        assert_eq!(p.msg_type(), Message::EchoRequest);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.header_len(), 8);
        assert_eq!(p.checksum(), 0x19b3);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 0xabcd);
        assert_eq!(p.payload(), &ECHO_DATA);
        assert!(p.verify_checksum(&src(), &dst()));
        assert!(!p.verify_checksum(&dst(), &dst()));
    }

    #[test]
    fn test_echo_construct() {
        let mut bytes = [0xa5u8; 12];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_msg_type(Message::EchoRequest);
        p.set_msg_code(0);
        p.set_echo_ident(0x1234);
        p.set_echo_seq_no(0xabcd);
        p.payload_mut().copy_from_slice(&ECHO_DATA);
        p.fill_checksum(&src(), &dst());
        assert_eq!(bytes, ECHO_BYTES);
    }

    #[test]
    fn test_echo_parse_emit() {
        let repr = Repr::EchoRequest { ident: 0x1234, seq_no: 0xabcd, data: &ECHO_DATA };
        let p = Packet::new_checked(&ECHO_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&src(), &dst(), &p), Ok(repr));
        let mut bytes = [0xa5u8; 12];
        repr.emit(&src(), &dst(), &mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, ECHO_BYTES);
    }

    #[test]
    fn test_pkt_too_big() {
        let repr = Repr::PktTooBig { mtu: 1280, data: &PTB_BYTES[8..] };
        let mut bytes = [0xa5u8; 12];
        repr.emit(&src(), &dst(), &mut Packet::new_unchecked(&mut bytes[..]));
        let mut expected = PTB_BYTES;
        Packet::new_unchecked(&mut expected[..]).fill_checksum(&src(), &dst());
        assert_eq!(bytes, expected);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.pkt_too_big_mtu(), 1280);
        assert_eq!(Repr::parse(&src(), &dst(), &p), Ok(repr));
    }

    #[test]
    fn test_parse_errors() {
        let p = Packet::new_checked(&ECHO_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&dst(), &dst(), &p), Err(Error::BadChecksum));
        let mut bytes = ECHO_BYTES;
        bytes[1] = 3;
        Packet::new_unchecked(&mut bytes[..]).fill_checksum(&src(), &dst());
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&src(), &dst(), &p), Err(Error::Malformed));
        let mut bytes = ECHO_BYTES;
        bytes[0] = 200;
        Packet::new_unchecked(&mut bytes[..]).fill_checksum(&src(), &dst());
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&src(), &dst(), &p), Err(Error::Unsupported));
    }

    #[test]
    fn test_check_len_truncated_min() {
        assert_eq!(Packet::new_checked(&ECHO_BYTES[..3]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&[200u8, 0, 0, 0][..]), Err(Error::Truncated));
    }

    #[test]
    fn test_check_len_truncated_type_header() {
        assert_eq!(Packet::new_checked(&ECHO_BYTES[..7]), Err(Error::Truncated));
        // An unknown type needs 8 bytes.
        assert!(Packet::new_checked(&[200u8, 0, 0, 0, 0, 0, 0, 0][..]).is_ok());
        // A neighbor solicitation needs 24.
        let mut ns = [0u8; 23];
        ns[0] = 135;
        assert_eq!(Packet::new_checked(&ns[..]), Err(Error::Truncated));
    }

    #[test]
    fn test_quote() {
        assert_eq!(quote(&[0u8; 2000]).len(), 1232);
        assert_eq!(quote(&[0u8; 100]).len(), 100);
    }
}
