//! ICMP for IPv4 (RFC 792, RFC 1191 for the next-hop MTU).
//!
//! Every message handled here has an 8-byte header:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Echo: Identifier            |   Echo: Sequence Number       |
//! |   Dst unreachable: unused     |   code 4: Next-Hop MTU        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Data (echo data, or the invoking IP header + 8 bytes) …
//! ```
//!
//! Contract: [`Packet::new_checked`] checks only that the 8-byte header is
//! present ([`Error::Truncated`]); afterwards no getter or setter panics.
//! The checksum covers the whole buffer, so pass exactly the IPv4 payload.
//! [`Repr::parse`] verifies the checksum.
//!
//! A switch that drops a frame too big to encapsulate (RFC 7637 §4 forbids
//! fragmenting) may send the VM a "fragmentation needed" message:
//! [`Repr::DstUnreachable`] with [`DstUnreachable::FragRequired`], the
//! next-hop MTU and [`quote`] of the dropped packet.

use core::fmt;

use crate::bytes::{read_u16, write_u16};
use crate::ip::Ipv4Address;
use crate::{checksum, Error, Result};

enum_with_unknown! {
    /// ICMPv4 message type.
    pub enum Message(u8) {
        /// Echo reply.
        EchoReply = 0,
        /// Destination unreachable.
        DstUnreachable = 3,
        /// Redirect.
        Redirect = 5,
        /// Echo request.
        EchoRequest = 8,
        /// Router advertisement.
        RouterAdvert = 9,
        /// Router solicitation.
        RouterSolicit = 10,
        /// Time exceeded.
        TimeExceeded = 11,
        /// Parameter problem.
        ParamProblem = 12,
        /// Timestamp.
        Timestamp = 13,
        /// Timestamp reply.
        TimestampReply = 14,
    }
}

enum_with_unknown! {
    /// Code of a destination unreachable message.
    pub enum DstUnreachable(u8) {
        /// Network unreachable.
        NetUnreachable = 0,
        /// Host unreachable.
        HostUnreachable = 1,
        /// Protocol unreachable.
        ProtoUnreachable = 2,
        /// Port unreachable.
        PortUnreachable = 3,
        /// Fragmentation needed and DF set; carries the next-hop MTU.
        FragRequired = 4,
        /// Source route failed.
        SrcRouteFailed = 5,
        /// Destination network unknown.
        DstNetUnknown = 6,
        /// Destination host unknown.
        DstHostUnknown = 7,
        /// Source host isolated.
        SrcHostIsolated = 8,
        /// Network administratively prohibited.
        NetProhibited = 9,
        /// Host administratively prohibited.
        HostProhibited = 10,
        /// Network unreachable for ToS.
        NetUnreachToS = 11,
        /// Host unreachable for ToS.
        HostUnreachToS = 12,
        /// Communication administratively prohibited.
        CommProhibited = 13,
        /// Host precedence violation.
        HostPrecedViol = 14,
        /// Precedence cutoff in effect.
        PrecedCutoff = 15,
    }
}

/// A read/write view of an ICMPv4 message.
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
    pub const UNUSED: Range<usize> = 4..6;
    pub const MTU: Range<usize> = 6..8;
    pub const GATEWAY: Range<usize> = 4..8;
    pub const DATA: usize = 8;
}

/// The ICMPv4 header length.
pub const HEADER_LEN: usize = field::DATA;

/// Return what an ICMPv4 error quotes of `original` (an IPv4 packet): its
/// header plus the first 8 bytes of its payload (RFC 792), bounded by the
/// slice. Never panics.
pub fn quote(original: &[u8]) -> &[u8] {
    let ihl = original.first().map_or(0, |b| usize::from(b & 0x0f) * 4);
    let want = ihl + 8;
    &original[..want.min(original.len())]
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

    /// Check that the buffer holds the 8-byte header.
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

    /// Consume the view and return the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Return the header length (always 8).
    pub const fn header_len() -> usize {
        HEADER_LEN
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

    /// Return the next-hop MTU field of a "fragmentation needed" message.
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::MTU])
    }

    /// The gateway address of a redirect.
    pub fn gateway(&self) -> Ipv4Address {
        let b = self.buffer.as_ref();
        Ipv4Address::new(b[field::GATEWAY.start], b[field::GATEWAY.start + 1], b[field::GATEWAY.start + 2], b[field::GATEWAY.start + 3])
    }

    /// Verify the checksum over the whole buffer.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == !0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Return the data after the 8-byte header.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::DATA..]
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

    /// Set the unused half of a destination unreachable header to zero.
    pub fn clear_unused(&mut self) {
        write_u16(&mut self.buffer.as_mut()[field::UNUSED], 0);
    }

    /// Set the gateway address of a redirect.
    pub fn set_gateway(&mut self, value: Ipv4Address) {
        self.buffer.as_mut()[field::GATEWAY].copy_from_slice(&value.octets());
    }

    /// Set the next-hop MTU field.
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::MTU], value);
    }

    /// Compute and write the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.buffer.as_ref());
        self.set_checksum(!sum);
    }

    /// Return a mutable slice of the data after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }
}

/// The valid subset of the ICMPv4 messages this switch sends or answers.
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
    /// Destination unreachable.
    DstUnreachable {
        /// The code.
        reason: DstUnreachable,
        /// Next-hop MTU; meaningful for [`DstUnreachable::FragRequired`], else 0.
        next_hop_mtu: u16,
        /// The quoted invoking packet (see [`quote`]).
        data: &'a [u8],
    },
    /// Time exceeded.
    TimeExceeded {
        /// 0: TTL exceeded in transit; 1: reassembly time exceeded.
        code: u8,
        /// The quoted invoking packet.
        data: &'a [u8],
    },
    /// Redirect (RFC 792): send datagrams for the quoted destination via `gateway`.
    Redirect {
        /// 0: network, 1: host, 2: ToS and network, 3: ToS and host.
        code: u8,
        /// The gateway to use instead.
        gateway: Ipv4Address,
        /// The quoted invoking packet.
        data: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Parse a view and verify its checksum.
    ///
    /// # Errors
    /// [`Error::Truncated`]; [`Error::BadChecksum`]; [`Error::Malformed`]
    /// for an echo with a non-zero code; [`Error::Unsupported`] for other
    /// message types.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        match (packet.msg_type(), packet.msg_code()) {
            (Message::EchoRequest, 0) => Ok(Repr::EchoRequest { ident: packet.echo_ident(), seq_no: packet.echo_seq_no(), data: packet.payload() }),
            (Message::EchoReply, 0) => Ok(Repr::EchoReply { ident: packet.echo_ident(), seq_no: packet.echo_seq_no(), data: packet.payload() }),
            (Message::EchoRequest | Message::EchoReply, _) => Err(Error::Malformed),
            (Message::DstUnreachable, code) => Ok(Repr::DstUnreachable { reason: DstUnreachable::from(code), next_hop_mtu: packet.next_hop_mtu(), data: packet.payload() }),
            (Message::TimeExceeded, code) => Ok(Repr::TimeExceeded { code, data: packet.payload() }),
            (Message::Redirect, code @ 0..=3) => Ok(Repr::Redirect { code, gateway: packet.gateway(), data: packet.payload() }),
            (Message::Redirect, _) => Err(Error::Malformed),
            _ => Err(Error::Unsupported),
        }
    }

    /// Return the message length: 8 plus the data.
    pub const fn buffer_len(&self) -> usize {
        match self {
            Repr::EchoRequest { data, .. } | Repr::EchoReply { data, .. } | Repr::DstUnreachable { data, .. } | Repr::TimeExceeded { data, .. } | Repr::Redirect { data, .. } => {
                HEADER_LEN + data.len()
            }
        }
    }

    /// Write the message and its data, then fill the checksum.
    ///
    /// Pass a buffer of exactly [`Repr::buffer_len`] bytes: the checksum
    /// covers the whole buffer.
    ///
    /// # Panics
    /// When the buffer is shorter than [`Repr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let data = match *self {
            Repr::EchoRequest { ident, seq_no, data } => {
                packet.set_msg_type(Message::EchoRequest);
                packet.set_msg_code(0);
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                data
            }
            Repr::EchoReply { ident, seq_no, data } => {
                packet.set_msg_type(Message::EchoReply);
                packet.set_msg_code(0);
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                data
            }
            Repr::DstUnreachable { reason, next_hop_mtu, data } => {
                packet.set_msg_type(Message::DstUnreachable);
                packet.set_msg_code(reason.into());
                packet.clear_unused();
                packet.set_next_hop_mtu(next_hop_mtu);
                data
            }
            Repr::TimeExceeded { code, data } => {
                packet.set_msg_type(Message::TimeExceeded);
                packet.set_msg_code(code);
                packet.clear_unused();
                packet.set_next_hop_mtu(0);
                data
            }
            Repr::Redirect { code, gateway, data } => {
                packet.set_msg_type(Message::Redirect);
                packet.set_msg_code(code);
                packet.set_gateway(gateway);
                data
            }
        };
        packet.payload_mut()[..data.len()].copy_from_slice(data);
        packet.fill_checksum();
    }
}

impl fmt::Display for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repr::EchoRequest { ident, seq_no, data } => {
                write!(f, "ICMP echo request id {ident} seq {seq_no} len {}", data.len())
            }
            Repr::EchoReply { ident, seq_no, data } => {
                write!(f, "ICMP echo reply id {ident} seq {seq_no} len {}", data.len())
            }
            Repr::DstUnreachable { reason: DstUnreachable::FragRequired, next_hop_mtu, .. } => {
                write!(f, "ICMP frag needed mtu {next_hop_mtu}")
            }
            Repr::DstUnreachable { reason, .. } => {
                write!(f, "ICMP unreachable code {}", u8::from(*reason))
            }
            Repr::TimeExceeded { code, .. } => write!(f, "ICMP time exceeded code {code}"),
            Repr::Redirect { code, gateway, .. } => write!(f, "ICMP redirect code {code} to {gateway}"),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    static ECHO_BYTES: [u8; 12] = [0x08, 0x00, 0x8e, 0xfe, 0x12, 0x34, 0xab, 0xcd, 0xaa, 0x00, 0x00, 0xff];

    static ECHO_DATA: [u8; 4] = [0xaa, 0x00, 0x00, 0xff];

    // Type 3 code 4, MTU 1400, quoting 4 bytes.
    static FRAG_NEEDED_BYTES: [u8; 12] = [0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0x05, 0x78, 0x45, 0x00, 0x05, 0xdc];

    fn echo_repr() -> Repr<'static> {
        Repr::EchoRequest { ident: 0x1234, seq_no: 0xabcd, data: &ECHO_DATA }
    }

    #[test]
    fn test_echo_deconstruct() {
        let p = Packet::new_checked(&ECHO_BYTES[..]).unwrap();
        assert_eq!(p.msg_type(), Message::EchoRequest);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.checksum(), 0x8efe);
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 0xabcd);
        assert_eq!(p.payload(), &ECHO_DATA);
        assert!(p.verify_checksum());
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
        p.fill_checksum();
        assert_eq!(bytes, ECHO_BYTES);
    }

    #[test]
    fn test_echo_parse_emit() {
        let p = Packet::new_checked(&ECHO_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&p), Ok(echo_repr()));
        let mut bytes = [0xa5u8; 12];
        assert_eq!(echo_repr().buffer_len(), 12);
        echo_repr().emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, ECHO_BYTES);
    }

    #[test]
    fn test_frag_needed() {
        let mut bytes = [0xa5u8; 12];
        let repr = Repr::DstUnreachable { reason: DstUnreachable::FragRequired, next_hop_mtu: 1400, data: &FRAG_NEEDED_BYTES[8..] };
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        let mut expected = FRAG_NEEDED_BYTES;
        Packet::new_unchecked(&mut expected[..]).fill_checksum();
        assert_eq!(bytes, expected);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.next_hop_mtu(), 1400);
        assert_eq!(Repr::parse(&p), Ok(repr));
        assert_eq!(repr.to_string(), "ICMP frag needed mtu 1400");
    }

    #[test]
    fn test_parse_errors() {
        let mut bytes = ECHO_BYTES;
        bytes[2] ^= 0xff;
        assert_eq!(Repr::parse(&Packet::new_unchecked(&bytes[..])), Err(Error::BadChecksum));
        let mut bytes = ECHO_BYTES;
        bytes[1] = 1;
        Packet::new_unchecked(&mut bytes[..]).fill_checksum();
        assert_eq!(Repr::parse(&Packet::new_unchecked(&bytes[..])), Err(Error::Malformed));
        let mut bytes = ECHO_BYTES;
        bytes[0] = 13;
        Packet::new_unchecked(&mut bytes[..]).fill_checksum();
        assert_eq!(Repr::parse(&Packet::new_unchecked(&bytes[..])), Err(Error::Unsupported));
        assert_eq!(Repr::parse(&Packet::new_unchecked(&ECHO_BYTES[..7])), Err(Error::Truncated));
    }

    #[test]
    fn test_check_len_truncated() {
        assert_eq!(Packet::new_checked(&ECHO_BYTES[..7]), Err(Error::Truncated));
    }

    #[test]
    fn test_quote() {
        let mut ip = [0u8; 40];
        ip[0] = 0x45;
        assert_eq!(quote(&ip).len(), 28);
        assert_eq!(quote(&ip[..10]).len(), 10);
        assert!(quote(&[]).is_empty());
    }
}
