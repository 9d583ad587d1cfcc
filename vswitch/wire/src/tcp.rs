//! TCP segment headers (RFC 9293), enough for 5-tuples and checksums.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Source Port          |       Destination Port        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        Sequence Number                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Acknowledgment Number                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Data |     |N|C|E|U|A|P|R|S|F|                               |
//! | Offset| Rsv |S|W|C|R|C|S|S|Y|I|            Window             |
//! |       |     | |R|E|G|K|H|T|N|N|                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Checksum            |         Urgent Pointer        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Options (data offset > 5)                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Contract: [`Packet::new_checked`] checks that the 20-byte header is
//! present ([`Error::Truncated`]), that the data offset is at least 5
//! ([`Error::BadHeaderLen`]) and that the header fits the buffer
//! ([`Error::Truncated`]). Afterwards no getter panics. TCP has no length
//! field: the segment is the whole buffer, so pass exactly the IP payload
//! before computing a checksum.

use crate::bytes::{read_u16, read_u32, write_u16, write_u32};
use crate::{checksum, Error, IpProtocol, Ipv4Address, Ipv6Address, Result};

/// A read/write view of a TCP segment.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    pub const FLAGS: Range<usize> = 12..14;
    pub const WIN_SIZE: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;

    pub const FLG_FIN: u16 = 0x001;
    pub const FLG_SYN: u16 = 0x002;
    pub const FLG_RST: u16 = 0x004;
    pub const FLG_PSH: u16 = 0x008;
    pub const FLG_ACK: u16 = 0x010;
    pub const FLG_URG: u16 = 0x020;
    pub const FLG_ECE: u16 = 0x040;
    pub const FLG_CWR: u16 = 0x080;
    pub const FLG_NS: u16 = 0x100;
}

/// The length of a TCP header without options.
pub const HEADER_LEN: usize = field::URGENT.end;

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking it; getters panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer and check it (see [`Packet::check_len`]).
    ///
    /// # Errors
    /// [`Error::Truncated`] or [`Error::BadHeaderLen`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Check the header length against the buffer.
    ///
    /// # Errors
    /// [`Error::Truncated`] when the buffer is shorter than 20 bytes or the
    /// data offset; [`Error::BadHeaderLen`] when the data offset is below 5.
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
        Ok(())
    }

    /// Consume the view and return the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Return the source port field.
    pub fn src_port(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::SRC_PORT])
    }

    /// Return the destination port field.
    pub fn dst_port(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::DST_PORT])
    }

    /// Return the sequence number field.
    pub fn seq_number(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::SEQ_NUM])
    }

    /// Return the acknowledgment number field.
    pub fn ack_number(&self) -> u32 {
        read_u32(&self.buffer.as_ref()[field::ACK_NUM])
    }

    fn raw_flags(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::FLAGS])
    }

    /// Return the header length in bytes (data offset × 4).
    pub fn header_len(&self) -> u8 {
        ((self.raw_flags() >> 12) as u8) * 4
    }

    /// Return the nine flag bits (NS, CWR, ECE, URG, ACK, PSH, RST, SYN, FIN).
    pub fn flags(&self) -> u16 {
        self.raw_flags() & 0x01ff
    }

    /// Return the FIN flag.
    pub fn fin(&self) -> bool {
        self.raw_flags() & field::FLG_FIN != 0
    }

    /// Return the SYN flag.
    pub fn syn(&self) -> bool {
        self.raw_flags() & field::FLG_SYN != 0
    }

    /// Return the RST flag.
    pub fn rst(&self) -> bool {
        self.raw_flags() & field::FLG_RST != 0
    }

    /// Return the PSH flag.
    pub fn psh(&self) -> bool {
        self.raw_flags() & field::FLG_PSH != 0
    }

    /// Return the ACK flag.
    pub fn ack(&self) -> bool {
        self.raw_flags() & field::FLG_ACK != 0
    }

    /// Return the URG flag.
    pub fn urg(&self) -> bool {
        self.raw_flags() & field::FLG_URG != 0
    }

    /// Return the ECE flag.
    pub fn ece(&self) -> bool {
        self.raw_flags() & field::FLG_ECE != 0
    }

    /// Return the CWR flag.
    pub fn cwr(&self) -> bool {
        self.raw_flags() & field::FLG_CWR != 0
    }

    /// Return the NS flag.
    pub fn ns(&self) -> bool {
        self.raw_flags() & field::FLG_NS != 0
    }

    /// Return the window size field.
    pub fn window_len(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::WIN_SIZE])
    }

    /// Return the checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::CHECKSUM])
    }

    /// Return the urgent pointer field.
    pub fn urgent_at(&self) -> u16 {
        read_u16(&self.buffer.as_ref()[field::URGENT])
    }

    /// Return the options bytes.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// Return the segment length (the whole buffer).
    pub fn segment_len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    /// Validate the checksum with the IPv4 pseudo-header.
    pub fn verify_checksum_v4(&self, src_addr: &Ipv4Address, dst_addr: &Ipv4Address) -> bool {
        let d = self.buffer.as_ref();
        checksum::combine(&[checksum::pseudo_header_v4(src_addr, dst_addr, IpProtocol::Tcp, d.len() as u16), checksum::data(d)]) == !0
    }

    /// Validate the checksum with the IPv6 pseudo-header.
    pub fn verify_checksum_v6(&self, src_addr: &Ipv6Address, dst_addr: &Ipv6Address) -> bool {
        let d = self.buffer.as_ref();
        checksum::combine(&[checksum::pseudo_header_v6(src_addr, dst_addr, IpProtocol::Tcp, d.len() as u32), checksum::data(d)]) == !0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Return the payload (after the options, to the end of the buffer).
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..]
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

    /// Set the sequence number field.
    pub fn set_seq_number(&mut self, value: u32) {
        write_u32(&mut self.buffer.as_mut()[field::SEQ_NUM], value);
    }

    /// Set the acknowledgment number field.
    pub fn set_ack_number(&mut self, value: u32) {
        write_u32(&mut self.buffer.as_mut()[field::ACK_NUM], value);
    }

    /// Set the header length in bytes (a multiple of 4, 20..=60).
    pub fn set_header_len(&mut self, value: u8) {
        let raw = (self.raw_flags() & 0x0fff) | (u16::from(value / 4) << 12);
        write_u16(&mut self.buffer.as_mut()[field::FLAGS], raw);
    }

    /// Set the nine flag bits; reserved bits are cleared.
    pub fn set_flags(&mut self, value: u16) {
        let raw = (self.raw_flags() & 0xf000) | (value & 0x01ff);
        write_u16(&mut self.buffer.as_mut()[field::FLAGS], raw);
    }

    /// Set the window size field.
    pub fn set_window_len(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::WIN_SIZE], value);
    }

    /// Set the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
    }

    /// Set the urgent pointer field.
    pub fn set_urgent_at(&mut self, value: u16) {
        write_u16(&mut self.buffer.as_mut()[field::URGENT], value);
    }

    /// Compute and write the checksum with the IPv4 pseudo-header.
    pub fn fill_checksum_v4(&mut self, src_addr: &Ipv4Address, dst_addr: &Ipv4Address) {
        self.set_checksum(0);
        let d = self.buffer.as_ref();
        let sum = checksum::combine(&[checksum::pseudo_header_v4(src_addr, dst_addr, IpProtocol::Tcp, d.len() as u16), checksum::data(d)]);
        self.set_checksum(!sum);
    }

    /// Compute and write the checksum with the IPv6 pseudo-header.
    pub fn fill_checksum_v6(&mut self, src_addr: &Ipv6Address, dst_addr: &Ipv6Address) {
        self.set_checksum(0);
        let d = self.buffer.as_ref();
        let sum = checksum::combine(&[checksum::pseudo_header_v6(src_addr, dst_addr, IpProtocol::Tcp, d.len() as u32), checksum::data(d)]);
        self.set_checksum(!sum);
    }

    /// Return a mutable slice of the options.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Return a mutable slice of the payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        &mut self.buffer.as_mut()[start..]
    }
}

/// TCP flag bits, for [`Packet::flags`] and [`Packet::set_flags`].
pub mod flags {
    /// FIN.
    pub const FIN: u16 = super::field::FLG_FIN;
    /// SYN.
    pub const SYN: u16 = super::field::FLG_SYN;
    /// RST.
    pub const RST: u16 = super::field::FLG_RST;
    /// PSH.
    pub const PSH: u16 = super::field::FLG_PSH;
    /// ACK.
    pub const ACK: u16 = super::field::FLG_ACK;
    /// URG.
    pub const URG: u16 = super::field::FLG_URG;
    /// ECE.
    pub const ECE: u16 = super::field::FLG_ECE;
    /// CWR.
    pub const CWR: u16 = super::field::FLG_CWR;
    /// NS.
    pub const NS: u16 = super::field::FLG_NS;
}

#[cfg(test)]
mod test {
    use super::*;

    // 10.0.0.1:49152 > 10.0.0.2:80, SYN, seq 1, window 64240, MSS option
    // 1460 and NOP padding, no payload.
    static PACKET_BYTES: [u8; 24] = [0xc0, 0x00, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x60, 0x02, 0xfa, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4];

    const SRC: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
    const DST: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);

    fn with_checksum() -> [u8; 24] {
        let mut bytes = PACKET_BYTES;
        Packet::new_unchecked(&mut bytes[..]).fill_checksum_v4(&SRC, &DST);
        bytes
    }

    #[test]
    fn test_deconstruct() {
        let bytes = with_checksum();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.src_port(), 49152);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 1);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 24);
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst() && !p.psh());
        assert!(!p.urg() && !p.ece() && !p.cwr() && !p.ns());
        assert_eq!(p.flags(), flags::SYN);
        assert_eq!(p.window_len(), 64240);
        assert_eq!(p.urgent_at(), 0);
        assert_eq!(p.options(), &[0x02, 0x04, 0x05, 0xb4]);
        assert!(p.payload().is_empty());
        assert_eq!(p.segment_len(), 24);
        assert!(p.verify_checksum_v4(&SRC, &DST));
        assert!(!p.verify_checksum_v4(&DST, &Ipv4Address::new(1, 2, 3, 4)));
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 24];
        let mut p = Packet::new_unchecked(&mut bytes[..]);
        p.set_src_port(49152);
        p.set_dst_port(80);
        p.set_seq_number(1);
        p.set_ack_number(0);
        p.set_header_len(24);
        p.set_flags(flags::SYN);
        p.set_window_len(64240);
        p.set_checksum(0);
        p.set_urgent_at(0);
        p.options_mut().copy_from_slice(&[0x02, 0x04, 0x05, 0xb4]);
        assert!(p.payload_mut().is_empty());
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn test_checksum_v6() {
        let mut bytes = PACKET_BYTES;
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        let (s, d) = (Ipv6Address::LOCALHOST, Ipv6Address::UNSPECIFIED);
        p.fill_checksum_v6(&s, &d);
        assert!(p.verify_checksum_v6(&s, &d));
        assert!(!p.verify_checksum_v6(&d, &d));
    }

    #[test]
    fn test_check_len_truncated_header() {
        assert_eq!(Packet::new_checked(&PACKET_BYTES[..19]), Err(Error::Truncated));
    }

    #[test]
    fn test_check_len_bad_data_offset() {
        let mut bytes = PACKET_BYTES;
        bytes[12] = 0x40;
        assert_eq!(Packet::new_checked(&bytes[..]), Err(Error::BadHeaderLen));
    }

    #[test]
    fn test_check_len_options_past_buffer() {
        assert_eq!(Packet::new_checked(&PACKET_BYTES[..23]), Err(Error::Truncated));
    }
}
