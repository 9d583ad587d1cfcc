//! IPv6 Neighbor Discovery (RFC 4861): Neighbor Solicitation and
//! Advertisement, link-layer address options, and answering a solicitation.
//!
//! Both messages are ICMPv6 messages with a 24-byte fixed part followed by
//! options:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Type 135/136 |     Code 0    |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|S|O|                    Reserved (NS: all reserved)          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                       Target Address                          +
//! |                        (128 bits)                             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Options …  (Type | Length in units of 8 octets | Value …)
//! ```
//!
//! Contract: the views' `new_checked` checks that the 24-byte fixed part is
//! present ([`Error::Truncated`]), that the type is the view's
//! ([`Error::Unsupported`]) and that the code is 0 ([`Error::Malformed`]);
//! afterwards no getter or setter panics. Options are validated lazily:
//! [`NdiscOptions`] yields an error for a zero-length or overrunning option
//! and stops. [`Repr::parse`] validates everything RFC 4861 §7.1 asks of
//! the ICMPv6 body (the IPv6 hop limit of 255 is checked by the answer
//! helpers, which see the IPv6 header).
//!
//! HNV answers ND from policy. [`answer_solicit`] and friends build the
//! Neighbor Advertisement (S=1, O=1, R=0, with a Target Link-Layer Address
//! option) that answers a solicitation, into a caller buffer or in place,
//! with a correct checksum and without allocating.

use core::fmt;
use core::ops::BitOr;

use crate::{Error, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Icmpv6Message, Icmpv6Packet, IpProtocol, Ipv6Address, Ipv6Packet, Ipv6Repr, Result};

/// Neighbor Advertisement flags (the top three bits of byte 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NeighborFlags(u8);

impl NeighborFlags {
    /// R: the sender is a router.
    pub const ROUTER: NeighborFlags = NeighborFlags(0x80);
    /// S: sent in response to a solicitation.
    pub const SOLICITED: NeighborFlags = NeighborFlags(0x40);
    /// O: override an existing cache entry.
    pub const OVERRIDE: NeighborFlags = NeighborFlags(0x20);

    /// Return no flags.
    pub const fn empty() -> NeighborFlags {
        NeighborFlags(0)
    }

    /// Construct from the flags byte, dropping the reserved bits.
    pub const fn from_bits_truncate(bits: u8) -> NeighborFlags {
        NeighborFlags(bits & 0xe0)
    }

    /// Return the flags byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Query whether every flag of `other` is set.
    pub const fn contains(self, other: NeighborFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Return the R flag.
    pub const fn router(self) -> bool {
        self.contains(Self::ROUTER)
    }

    /// Return the S flag.
    pub const fn solicited(self) -> bool {
        self.contains(Self::SOLICITED)
    }

    /// Return the O flag.
    pub const fn override_flag(self) -> bool {
        self.contains(Self::OVERRIDE)
    }
}

impl BitOr for NeighborFlags {
    type Output = NeighborFlags;

    fn bitor(self, rhs: NeighborFlags) -> NeighborFlags {
        NeighborFlags(self.0 | rhs.0)
    }
}

impl fmt::Display for NeighborFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (flag, c) in [(Self::ROUTER, "R"), (Self::SOLICITED, "S"), (Self::OVERRIDE, "O")] {
            if self.contains(flag) {
                f.write_str(c)?;
            }
        }
        f.write_str("]")
    }
}

enum_with_unknown! {
    /// NDP option type (RFC 4861 §4.6).
    pub enum NdiscOptionType(u8) {
        /// Source Link-Layer Address.
        SourceLinkLayerAddr = 1,
        /// Target Link-Layer Address.
        TargetLinkLayerAddr = 2,
        /// Prefix Information.
        PrefixInformation = 3,
        /// Redirected Header.
        RedirectedHeader = 4,
        /// MTU.
        Mtu = 5,
    }
}

/// One NDP option: its type and the bytes after the type and length octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NdiscOption<'a> {
    /// Option type.
    pub option_type: NdiscOptionType,
    /// Option value (`8 × length − 2` bytes).
    pub data: &'a [u8],
}

impl NdiscOption<'_> {
    /// Return the Ethernet address of a source/target link-layer address option.
    ///
    /// `None` for other types or a value shorter than 6 bytes.
    pub fn link_layer_addr(&self) -> Option<EthernetAddress> {
        match self.option_type {
            NdiscOptionType::SourceLinkLayerAddr | NdiscOptionType::TargetLinkLayerAddr => self.data.get(..6).map(EthernetAddress::from_bytes),
            _ => None,
        }
    }
}

/// Iterator over NDP options. Yields `Err` once for a malformed option
/// (zero length: [`Error::Malformed`]; overrun: [`Error::Truncated`]) and stops.
#[derive(Debug, Clone)]
pub struct NdiscOptions<'a> {
    rest: &'a [u8],
}

impl<'a> NdiscOptions<'a> {
    /// Iterate over the options in `bytes` (the body after the 24-byte fixed part).
    pub const fn new(bytes: &'a [u8]) -> NdiscOptions<'a> {
        NdiscOptions { rest: bytes }
    }
}

impl<'a> Iterator for NdiscOptions<'a> {
    type Item = Result<NdiscOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest;
        let (&kind, &len) = match rest {
            [] => return None,
            [k, l, ..] => (k, l),
            [_] => {
                self.rest = &[];
                return Some(Err(Error::Truncated));
            }
        };
        let total = usize::from(len) * 8;
        if total == 0 {
            self.rest = &[];
            return Some(Err(Error::Malformed));
        }
        if total > rest.len() {
            self.rest = &[];
            return Some(Err(Error::Truncated));
        }
        self.rest = &rest[total..];
        Some(Ok(NdiscOption { option_type: NdiscOptionType::from(kind), data: &rest[2..total] }))
    }
}

/// Return the first link-layer address option of type `kind`, checking
/// every option for well-formedness.
///
/// # Errors
/// [`Error::Malformed`] or [`Error::Truncated`] for a bad option.
fn find_lladdr(options: &[u8], kind: NdiscOptionType) -> Result<Option<EthernetAddress>> {
    let mut found = None;
    for option in NdiscOptions::new(options) {
        let option = option?;
        if option.option_type == kind && found.is_none() {
            found = Some(option.link_layer_addr().ok_or(Error::Malformed)?);
        }
    }
    Ok(found)
}

mod field {
    use core::ops::Range;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Range<usize> = 2..4;
    pub const FLAGS: usize = 4;
    pub const RESERVED: Range<usize> = 4..8;
    pub const TARGET: Range<usize> = 8..24;
    pub const OPTIONS: usize = 24;
}

/// The fixed part of a Neighbor Solicitation or Advertisement.
pub const HEADER_LEN: usize = field::OPTIONS;

/// The length of a link-layer address option for Ethernet.
pub const LLADDR_OPTION_LEN: usize = 8;

fn ipv6_at(d: &[u8]) -> Ipv6Address {
    let mut o = [0u8; 16];
    o.copy_from_slice(&d[..16]);
    Ipv6Address::from(o)
}

fn check_message(d: &[u8], expected: Icmpv6Message) -> Result<()> {
    if d.len() < HEADER_LEN {
        return Err(Error::Truncated);
    }
    if Icmpv6Message::from(d[field::TYPE]) != expected {
        return Err(Error::Unsupported);
    }
    if d[field::CODE] != 0 {
        return Err(Error::Malformed);
    }
    Ok(())
}

macro_rules! ndisc_view {
    ($(#[$attr:meta])* $name:ident, $msg:expr) => {
        $(#[$attr])*
        #[derive(Debug, PartialEq, Eq, Clone)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wrap a buffer without checking it; getters panic on a short buffer.
            pub const fn new_unchecked(buffer: T) -> $name<T> {
                $name { buffer }
            }

            /// Wrap a buffer, check its length, type and code.
            ///
            /// # Errors
            /// [`Error::Truncated`], [`Error::Unsupported`] (another type) or
            /// [`Error::Malformed`] (non-zero code).
            pub fn new_checked(buffer: T) -> Result<$name<T>> {
                let packet = Self::new_unchecked(buffer);
                packet.check_len()?;
                check_message(packet.buffer.as_ref(), $msg)?;
                Ok(packet)
            }

            /// Check that the buffer holds the 24-byte fixed part.
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

            /// Return the fixed part length (always 24).
            pub const fn header_len() -> usize {
                HEADER_LEN
            }

            /// Return the type field.
            pub fn msg_type(&self) -> Icmpv6Message {
                Icmpv6Message::from(self.buffer.as_ref()[field::TYPE])
            }

            /// Return the code field.
            pub fn msg_code(&self) -> u8 {
                self.buffer.as_ref()[field::CODE]
            }

            /// Return the checksum field.
            pub fn checksum(&self) -> u16 {
                crate::bytes::read_u16(&self.buffer.as_ref()[field::CHECKSUM])
            }

            /// Return the target address field.
            pub fn target_addr(&self) -> Ipv6Address {
                ipv6_at(&self.buffer.as_ref()[field::TARGET])
            }

            /// Return the option bytes after the fixed part.
            pub fn options_bytes(&self) -> &[u8] {
                &self.buffer.as_ref()[field::OPTIONS..]
            }

            /// Iterate over the options.
            pub fn options(&self) -> NdiscOptions<'_> {
                NdiscOptions::new(self.options_bytes())
            }

            /// Validate the ICMPv6 checksum with the IPv6 pseudo-header.
            pub fn verify_checksum(&self, src_addr: &Ipv6Address, dst_addr: &Ipv6Address) -> bool {
                Icmpv6Packet::new_unchecked(self.buffer.as_ref())
                    .verify_checksum(src_addr, dst_addr)
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            /// Set the type field.
            pub fn set_msg_type(&mut self, value: Icmpv6Message) {
                self.buffer.as_mut()[field::TYPE] = value.into();
            }

            /// Set the code field.
            pub fn set_msg_code(&mut self, value: u8) {
                self.buffer.as_mut()[field::CODE] = value;
            }

            /// Set the checksum field.
            pub fn set_checksum(&mut self, value: u16) {
                crate::bytes::write_u16(&mut self.buffer.as_mut()[field::CHECKSUM], value);
            }

            /// Zero the flags and reserved bytes.
            pub fn clear_reserved(&mut self) {
                self.buffer.as_mut()[field::RESERVED].fill(0);
            }

            /// Set the target address field.
            pub fn set_target_addr(&mut self, value: Ipv6Address) {
                self.buffer.as_mut()[field::TARGET].copy_from_slice(&value.octets());
            }

            /// Return a mutable slice of the option bytes.
            pub fn options_mut(&mut self) -> &mut [u8] {
                &mut self.buffer.as_mut()[field::OPTIONS..]
            }

            /// Compute and write the ICMPv6 checksum over the whole buffer.
            pub fn fill_checksum(&mut self, src_addr: &Ipv6Address, dst_addr: &Ipv6Address) {
                Icmpv6Packet::new_unchecked(self.buffer.as_mut())
                    .fill_checksum(src_addr, dst_addr);
            }
        }
    };
}

ndisc_view!(
    /// A read/write view of a Neighbor Solicitation (ICMPv6 type 135).
    NeighborSolicit,
    Icmpv6Message::NeighborSolicit
);

ndisc_view!(
    /// A read/write view of a Neighbor Advertisement (ICMPv6 type 136).
    NeighborAdvert,
    Icmpv6Message::NeighborAdvert
);

impl<T: AsRef<[u8]>> NeighborSolicit<T> {
    /// Return the Source Link-Layer Address option, if any.
    ///
    /// # Errors
    /// [`Error::Malformed`] or [`Error::Truncated`] when an option is bad.
    pub fn source_link_layer_addr(&self) -> Result<Option<EthernetAddress>> {
        find_lladdr(self.options_bytes(), NdiscOptionType::SourceLinkLayerAddr)
    }
}

impl<T: AsRef<[u8]>> NeighborAdvert<T> {
    /// Return the R, S and O flags.
    pub fn flags(&self) -> NeighborFlags {
        NeighborFlags::from_bits_truncate(self.buffer.as_ref()[field::FLAGS])
    }

    /// Return the Target Link-Layer Address option, if any.
    ///
    /// # Errors
    /// [`Error::Malformed`] or [`Error::Truncated`] when an option is bad.
    pub fn target_link_layer_addr(&self) -> Result<Option<EthernetAddress>> {
        find_lladdr(self.options_bytes(), NdiscOptionType::TargetLinkLayerAddr)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> NeighborAdvert<T> {
    /// Set the R, S and O flags (the rest of the byte is cleared).
    pub fn set_flags(&mut self, value: NeighborFlags) {
        self.buffer.as_mut()[field::FLAGS] = value.bits();
    }
}

/// Write an Ethernet link-layer address option at the start of `buf`.
fn emit_lladdr(buf: &mut [u8], kind: NdiscOptionType, addr: EthernetAddress) {
    buf[0] = kind.into();
    buf[1] = 1;
    buf[2..8].copy_from_slice(&addr.0);
}

/// The valid subset of a Neighbor Solicitation or Advertisement.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub enum Repr {
    /// Neighbor Solicitation.
    NeighborSolicit {
        /// The address being resolved.
        target_addr: Ipv6Address,
        /// Source Link-Layer Address option.
        lladdr: Option<EthernetAddress>,
    },
    /// Neighbor Advertisement.
    NeighborAdvert {
        /// R, S and O.
        flags: NeighborFlags,
        /// The address being advertised.
        target_addr: Ipv6Address,
        /// Target Link-Layer Address option.
        lladdr: Option<EthernetAddress>,
    },
}

impl Repr {
    /// Parse an ICMPv6 view holding a solicitation or advertisement.
    ///
    /// Does not verify the checksum (it needs the IPv6 addresses; see
    /// [`crate::Icmpv6Repr::parse`]). Options other than the link-layer
    /// address are skipped, as RFC 4861 §4.6 requires.
    ///
    /// # Errors
    /// [`Error::Truncated`] for a short body or option; [`Error::Unsupported`]
    /// for another type; [`Error::Malformed`] for a non-zero code, a zero-length
    /// option, a short link-layer option or a multicast target.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Icmpv6Packet<&T>) -> Result<Repr> {
        let d: &[u8] = packet.as_ref();
        let repr = match Icmpv6Message::from(*d.first().ok_or(Error::Truncated)?) {
            Icmpv6Message::NeighborSolicit => {
                let ns = NeighborSolicit::new_checked(d)?;
                Repr::NeighborSolicit { target_addr: ns.target_addr(), lladdr: ns.source_link_layer_addr()? }
            }
            Icmpv6Message::NeighborAdvert => {
                let na = NeighborAdvert::new_checked(d)?;
                Repr::NeighborAdvert { flags: na.flags(), target_addr: na.target_addr(), lladdr: na.target_link_layer_addr()? }
            }
            _ => return Err(Error::Unsupported),
        };
        if repr.target_addr().is_multicast() {
            return Err(Error::Malformed);
        }
        Ok(repr)
    }

    /// Return the target address.
    pub const fn target_addr(&self) -> Ipv6Address {
        match *self {
            Repr::NeighborSolicit { target_addr, .. } | Repr::NeighborAdvert { target_addr, .. } => target_addr,
        }
    }

    /// Return the message length: 24, plus 8 with a link-layer option.
    pub const fn buffer_len(&self) -> usize {
        match self {
            Repr::NeighborSolicit { lladdr, .. } | Repr::NeighborAdvert { lladdr, .. } => HEADER_LEN + if lladdr.is_some() { LLADDR_OPTION_LEN } else { 0 },
        }
    }

    /// Write the message with a zero checksum; fill it afterwards with
    /// [`Icmpv6Packet::fill_checksum`] (or use [`crate::Icmpv6Repr::emit`]).
    ///
    /// # Panics
    /// When the buffer is shorter than [`Repr::buffer_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Icmpv6Packet<T>) {
        let d: &mut [u8] = packet.as_mut();
        let (ty, flags, target, option) = match *self {
            Repr::NeighborSolicit { target_addr, lladdr } => (Icmpv6Message::NeighborSolicit, NeighborFlags::empty(), target_addr, lladdr.map(|a| (NdiscOptionType::SourceLinkLayerAddr, a))),
            Repr::NeighborAdvert { flags, target_addr, lladdr } => (Icmpv6Message::NeighborAdvert, flags, target_addr, lladdr.map(|a| (NdiscOptionType::TargetLinkLayerAddr, a))),
        };
        d[field::TYPE] = ty.into();
        d[field::CODE] = 0;
        d[field::CHECKSUM].fill(0);
        d[field::RESERVED].fill(0);
        d[field::FLAGS] = flags.bits();
        d[field::TARGET].copy_from_slice(&target.octets());
        if let Some((kind, addr)) = option {
            emit_lladdr(&mut d[field::OPTIONS..], kind, addr);
        }
    }
}

impl fmt::Display for Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repr::NeighborSolicit { target_addr, lladdr } => {
                write!(f, "ICMPv6 neighbor solicit who-has {target_addr}")?;
                if let Some(a) = lladdr {
                    write!(f, " lladdr {a}")?;
                }
                Ok(())
            }
            Repr::NeighborAdvert { flags, target_addr, lladdr } => {
                write!(f, "ICMPv6 neighbor advert {target_addr} {flags}")?;
                if let Some(a) = lladdr {
                    write!(f, " is-at {a}")?;
                }
                Ok(())
            }
        }
    }
}

/// Return the solicited-node multicast address of `addr` (`ff02::1:ffXX:XXXX`).
pub const fn solicited_node(addr: &Ipv6Address) -> Ipv6Address {
    let o = addr.octets();
    Ipv6Address::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | o[13] as u16, ((o[14] as u16) << 8) | o[15] as u16)
}

/// Query whether `addr` is a solicited-node multicast address.
pub fn is_solicited_node(addr: &Ipv6Address) -> bool {
    addr.octets()[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff]
}

/// The all-nodes link-local multicast address `ff02::1`.
pub const ALL_NODES: Ipv6Address = Ipv6Address::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Length of the IPv6 packet the answer helpers write: 40 + 24 + 8.
pub const ADVERT_IPV6_LEN: usize = crate::ipv6::HEADER_LEN + HEADER_LEN + LLADDR_OPTION_LEN;

/// Length of the Ethernet frame the frame answer helpers write: 14 + 72.
pub const ADVERT_FRAME_LEN: usize = crate::ethernet::HEADER_LEN + ADVERT_IPV6_LEN;

/// What the answer needs from a validated solicitation.
#[derive(Clone, Copy)]
struct Solicit {
    src_addr: Ipv6Address,
    target_addr: Ipv6Address,
}

/// Validate an IPv6 packet holding a Neighbor Solicitation (RFC 4861 §7.1.1).
fn parse_solicit(ns: &[u8]) -> Result<Solicit> {
    let ip = Ipv6Packet::new_checked(ns)?;
    if ip.next_header() != IpProtocol::Ipv6Icmp {
        return Err(Error::Unsupported);
    }
    let (src_addr, dst_addr) = (ip.src_addr(), ip.dst_addr());
    let icmp = Icmpv6Packet::new_checked(ip.payload())?;
    if icmp.msg_type() != Icmpv6Message::NeighborSolicit {
        return Err(Error::Unsupported);
    }
    if ip.hop_limit() != 255 {
        return Err(Error::Malformed);
    }
    if !icmp.verify_checksum(&src_addr, &dst_addr) {
        return Err(Error::BadChecksum);
    }
    let Repr::NeighborSolicit { target_addr, lladdr } = Repr::parse(&icmp)? else {
        return Err(Error::Unsupported);
    };
    if src_addr.is_unspecified() && (lladdr.is_some() || !is_solicited_node(&dst_addr)) {
        return Err(Error::Malformed);
    }
    Ok(Solicit { src_addr, target_addr })
}

/// Write the IPv6 advertisement answering `s` into `out[..ADVERT_IPV6_LEN]`.
fn emit_advert(s: Solicit, answer_mac: EthernetAddress, out: &mut [u8]) -> Result<usize> {
    let out = out.get_mut(..ADVERT_IPV6_LEN).ok_or(Error::Truncated)?;
    // RFC 4861 §7.2.4: answer to the solicitor; for DAD (unspecified
    // source) to all-nodes with S clear.
    let (dst_addr, flags) = if s.src_addr.is_unspecified() { (ALL_NODES, NeighborFlags::OVERRIDE) } else { (s.src_addr, NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE) };
    let ip_repr = Ipv6Repr { src_addr: s.target_addr, dst_addr, next_header: IpProtocol::Ipv6Icmp, payload_len: HEADER_LEN + LLADDR_OPTION_LEN, hop_limit: 255 };
    let (ip_buf, icmp_buf) = out.split_at_mut(crate::ipv6::HEADER_LEN);
    ip_repr.emit(&mut Ipv6Packet::new_unchecked(ip_buf));
    let na = Repr::NeighborAdvert { flags, target_addr: s.target_addr, lladdr: Some(answer_mac) };
    let mut icmp = Icmpv6Packet::new_unchecked(icmp_buf);
    na.emit(&mut icmp);
    icmp.fill_checksum(&s.target_addr, &dst_addr);
    Ok(ADVERT_IPV6_LEN)
}

/// Build, into `out`, the IPv6 Neighbor Advertisement answering the IPv6
/// Neighbor Solicitation `ns`, announcing `answer_mac` for its target.
///
/// The answer comes from the target address, goes to the solicitor (or to
/// `ff02::1` with S clear for a DAD probe), has hop limit 255, flags S=1 O=1
/// R=0, a Target Link-Layer Address option and a correct checksum. Returns
/// the length written, [`ADVERT_IPV6_LEN`]. The caller has already decided
/// (by policy) to answer for the target.
///
/// # Errors
/// [`Error::Truncated`] for a short solicitation or an `out` shorter than
/// [`ADVERT_IPV6_LEN`]; [`Error::BadVersion`]; [`Error::Unsupported`] when
/// it is not a solicitation (or has extension headers); [`Error::Malformed`]
/// for a hop limit other than 255 or a rule of RFC 4861 §7.1.1 broken;
/// [`Error::BadChecksum`].
pub fn answer_solicit(ns: &[u8], answer_mac: EthernetAddress, out: &mut [u8]) -> Result<usize> {
    let s = parse_solicit(ns)?;
    emit_advert(s, answer_mac, out)
}

/// As [`answer_solicit`], overwriting the solicitation in `buf` with the answer.
///
/// `buf` must have room for [`ADVERT_IPV6_LEN`] bytes even when the
/// solicitation was shorter (a DAD probe carries no option); on error `buf`
/// is untouched.
///
/// # Errors
/// As [`answer_solicit`].
pub fn answer_solicit_in_place(buf: &mut [u8], answer_mac: EthernetAddress) -> Result<usize> {
    let s = parse_solicit(buf)?;
    emit_advert(s, answer_mac, buf)
}

fn parse_solicit_frame(frame: &[u8]) -> Result<(EthernetAddress, Solicit)> {
    let eth = EthernetFrame::new_checked(frame)?;
    if eth.ethertype() != EtherType::Ipv6 {
        return Err(Error::Unsupported);
    }
    let s = parse_solicit(eth.payload())?;
    let dst = if s.src_addr.is_unspecified() { EthernetAddress::from_ipv6_multicast(&ALL_NODES) } else { eth.src_addr() };
    Ok((dst, s))
}

fn emit_advert_frame(eth_dst: EthernetAddress, s: Solicit, answer_mac: EthernetAddress, out: &mut [u8]) -> Result<usize> {
    let out = out.get_mut(..ADVERT_FRAME_LEN).ok_or(Error::Truncated)?;
    let (eth_buf, ip_buf) = out.split_at_mut(crate::ethernet::HEADER_LEN);
    EthernetRepr { src_addr: answer_mac, dst_addr: eth_dst, ethertype: EtherType::Ipv6 }.emit(&mut EthernetFrame::new_unchecked(eth_buf));
    emit_advert(s, answer_mac, ip_buf)?;
    Ok(ADVERT_FRAME_LEN)
}

/// As [`answer_solicit`] for an untagged Ethernet frame: the answer frame
/// goes from `answer_mac` to the solicitor's MAC (or `33:33:00:00:00:01`
/// for a DAD probe). Returns [`ADVERT_FRAME_LEN`].
///
/// # Errors
/// As [`answer_solicit`]; [`Error::Unsupported`] for a non-IPv6 frame.
pub fn answer_solicit_frame(ns_frame: &[u8], answer_mac: EthernetAddress, out: &mut [u8]) -> Result<usize> {
    let (eth_dst, s) = parse_solicit_frame(ns_frame)?;
    emit_advert_frame(eth_dst, s, answer_mac, out)
}

/// As [`answer_solicit_frame`], overwriting the frame in `frame` (which
/// must have room for [`ADVERT_FRAME_LEN`] bytes); on error it is untouched.
///
/// # Errors
/// As [`answer_solicit_frame`].
pub fn answer_solicit_frame_in_place(frame: &mut [u8], answer_mac: EthernetAddress) -> Result<usize> {
    let (eth_dst, s) = parse_solicit_frame(frame)?;
    emit_advert_frame(eth_dst, s, answer_mac, frame)
}

#[cfg(test)]
mod test {
    use super::*;

    const MAC1: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const MAC2: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

    fn ip1() -> Ipv6Address {
        Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)
    }

    fn ip2() -> Ipv6Address {
        Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 2)
    }

    // NS from fe80::1 (02:00:00:00:00:01) for fe80::2, to ff02::1:ff00:2.
    static NS_BYTES: [u8; 32] = [
        0x87, 0x00, 0x7a, 0x97, 0x00, 0x00, 0x00, 0x00, //
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, //
        0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];

    // NA from fe80::2 (02:00:00:00:00:02) to fe80::1, S and O set.
    static NA_BYTES: [u8; 32] = [
        0x88, 0x00, 0x18, 0x1a, 0x60, 0x00, 0x00, 0x00, //
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, //
        0x02, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02,
    ];

    fn ns_ipv6() -> [u8; 72] {
        let mut buf = [0u8; 72];
        Ipv6Repr { src_addr: ip1(), dst_addr: solicited_node(&ip2()), next_header: IpProtocol::Ipv6Icmp, payload_len: 32, hop_limit: 255 }.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
        buf[40..].copy_from_slice(&NS_BYTES);
        buf
    }

    fn ns_frame() -> [u8; 86] {
        let mut frame = [0u8; 86];
        EthernetRepr { src_addr: MAC1, dst_addr: EthernetAddress::from_ipv6_multicast(&solicited_node(&ip2())), ethertype: EtherType::Ipv6 }.emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
        frame[14..].copy_from_slice(&ns_ipv6());
        frame
    }

    #[test]
    fn test_ns_deconstruct() {
        let ns = NeighborSolicit::new_checked(&NS_BYTES[..]).unwrap();
        assert_eq!(ns.msg_type(), Icmpv6Message::NeighborSolicit);
        assert_eq!(ns.msg_code(), 0);
        assert_eq!(ns.checksum(), 0x7a97);
        assert_eq!(ns.target_addr(), ip2());
        assert_eq!(ns.source_link_layer_addr(), Ok(Some(MAC1)));
        assert!(ns.verify_checksum(&ip1(), &solicited_node(&ip2())));
        let opts: Vec<_> = ns.options().collect();
        assert_eq!(opts, vec![Ok(NdiscOption { option_type: NdiscOptionType::SourceLinkLayerAddr, data: &NS_BYTES[26..32] })]);
    }

    #[test]
    fn test_ns_construct() {
        let mut bytes = [0xa5u8; 32];
        let mut ns = NeighborSolicit::new_unchecked(&mut bytes[..]);
        ns.set_msg_type(Icmpv6Message::NeighborSolicit);
        ns.set_msg_code(0);
        ns.clear_reserved();
        ns.set_target_addr(ip2());
        ns.options_mut().copy_from_slice(&[1, 1, 2, 0, 0, 0, 0, 1]);
        ns.fill_checksum(&ip1(), &solicited_node(&ip2()));
        assert_eq!(bytes, NS_BYTES);
    }

    #[test]
    fn test_na_deconstruct() {
        let na = NeighborAdvert::new_checked(&NA_BYTES[..]).unwrap();
        assert_eq!(na.flags(), NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE);
        assert!(na.flags().solicited() && na.flags().override_flag() && !na.flags().router());
        assert_eq!(na.target_addr(), ip2());
        assert_eq!(na.target_link_layer_addr(), Ok(Some(MAC2)));
        assert!(na.verify_checksum(&ip2(), &ip1()));
    }

    #[test]
    fn test_na_construct() {
        let mut bytes = [0xa5u8; 32];
        let mut na = NeighborAdvert::new_unchecked(&mut bytes[..]);
        na.set_msg_type(Icmpv6Message::NeighborAdvert);
        na.set_msg_code(0);
        na.clear_reserved();
        na.set_flags(NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE);
        na.set_target_addr(ip2());
        na.options_mut().copy_from_slice(&[2, 1, 2, 0, 0, 0, 0, 2]);
        na.fill_checksum(&ip2(), &ip1());
        assert_eq!(bytes, NA_BYTES);
    }

    #[test]
    fn test_repr_parse_emit() {
        let ns = Repr::NeighborSolicit { target_addr: ip2(), lladdr: Some(MAC1) };
        let na = Repr::NeighborAdvert { flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE, target_addr: ip2(), lladdr: Some(MAC2) };
        assert_eq!(Repr::parse(&Icmpv6Packet::new_unchecked(&NS_BYTES[..])), Ok(ns));
        assert_eq!(Repr::parse(&Icmpv6Packet::new_unchecked(&NA_BYTES[..])), Ok(na));
        let mut bytes = [0xa5u8; 32];
        let mut p = Icmpv6Packet::new_unchecked(&mut bytes[..]);
        na.emit(&mut p);
        p.fill_checksum(&ip2(), &ip1());
        assert_eq!(bytes, NA_BYTES);
        let no_opt = Repr::NeighborSolicit { target_addr: ip2(), lladdr: None };
        assert_eq!(no_opt.buffer_len(), 24);
        let mut bytes = [0xa5u8; 24];
        no_opt.emit(&mut Icmpv6Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(Repr::parse(&Icmpv6Packet::new_unchecked(&bytes[..])), Ok(no_opt));
    }

    #[test]
    fn test_check_len_truncated() {
        assert_eq!(NeighborSolicit::new_checked(&NS_BYTES[..23]), Err(Error::Truncated));
        assert_eq!(NeighborAdvert::new_checked(&NA_BYTES[..23]), Err(Error::Truncated));
    }

    #[test]
    fn test_wrong_type_and_code() {
        assert_eq!(NeighborAdvert::new_checked(&NS_BYTES[..]), Err(Error::Unsupported));
        let mut bytes = NS_BYTES;
        bytes[1] = 1;
        assert_eq!(NeighborSolicit::new_checked(&bytes[..]), Err(Error::Malformed));
    }

    #[test]
    fn test_bad_options() {
        let mut bytes = NS_BYTES;
        bytes[25] = 0;
        let ns = NeighborSolicit::new_checked(&bytes[..]).unwrap();
        assert_eq!(ns.source_link_layer_addr(), Err(Error::Malformed));
        assert_eq!(ns.options().collect::<Vec<_>>(), vec![Err(Error::Malformed)]);
        bytes[25] = 2;
        let ns = NeighborSolicit::new_checked(&bytes[..]).unwrap();
        assert_eq!(ns.source_link_layer_addr(), Err(Error::Truncated));
        let ns = NeighborSolicit::new_checked(&NS_BYTES[..25]).unwrap();
        assert_eq!(ns.options().collect::<Vec<_>>(), vec![Err(Error::Truncated)]);
    }

    #[test]
    fn test_multicast_target_rejected() {
        let mut bytes = NS_BYTES;
        bytes[8] = 0xff;
        assert_eq!(Repr::parse(&Icmpv6Packet::new_unchecked(&bytes[..])), Err(Error::Malformed));
    }

    #[test]
    fn test_solicited_node() {
        let a: Ipv6Address = "2001:db8::12:3456:789a".parse().unwrap();
        let sn = solicited_node(&a);
        assert_eq!(sn, "ff02::1:ff56:789a".parse::<Ipv6Address>().unwrap());
        assert!(is_solicited_node(&sn));
        assert!(!is_solicited_node(&a));
    }

    #[test]
    fn test_answer_solicit() {
        let ns = ns_ipv6();
        let mut out = [0xa5u8; 80];
        assert_eq!(answer_solicit(&ns, MAC2, &mut out), Ok(ADVERT_IPV6_LEN));
        let ip = Ipv6Packet::new_checked(&out[..72]).unwrap();
        assert_eq!(ip.src_addr(), ip2());
        assert_eq!(ip.dst_addr(), ip1());
        assert_eq!(ip.hop_limit(), 255);
        assert_eq!(ip.next_header(), IpProtocol::Ipv6Icmp);
        assert_eq!(ip.payload(), &NA_BYTES[..]);
        assert_eq!(&out[72..], &[0xa5; 8]);

        let mut buf = ns;
        assert_eq!(answer_solicit_in_place(&mut buf, MAC2), Ok(72));
        assert_eq!(&buf[..], &out[..72]);
    }

    #[test]
    fn test_answer_solicit_dad() {
        // DAD probe: unspecified source, no option, 64 bytes.
        let mut ns = [0u8; 72];
        Ipv6Repr { src_addr: Ipv6Address::UNSPECIFIED, dst_addr: solicited_node(&ip2()), next_header: IpProtocol::Ipv6Icmp, payload_len: 24, hop_limit: 255 }
            .emit(&mut Ipv6Packet::new_unchecked(&mut ns[..]));
        let mut icmp = Icmpv6Packet::new_unchecked(&mut ns[40..64]);
        Repr::NeighborSolicit { target_addr: ip2(), lladdr: None }.emit(&mut icmp);
        icmp.fill_checksum(&Ipv6Address::UNSPECIFIED, &solicited_node(&ip2()));
        assert_eq!(answer_solicit_in_place(&mut ns[..64], MAC2), Err(Error::Truncated));
        assert_eq!(answer_solicit_in_place(&mut ns, MAC2), Ok(72));
        let ip = Ipv6Packet::new_checked(&ns[..]).unwrap();
        assert_eq!(ip.dst_addr(), ALL_NODES);
        let na = NeighborAdvert::new_checked(ip.payload()).unwrap();
        assert_eq!(na.flags(), NeighborFlags::OVERRIDE);
        assert!(na.verify_checksum(&ip2(), &ALL_NODES));
    }

    #[test]
    fn test_answer_solicit_rejects() {
        let mut out = [0u8; 72];
        let mut ns = ns_ipv6();
        assert_eq!(answer_solicit(&ns, MAC2, &mut out[..71]), Err(Error::Truncated));
        ns[7] = 64;
        assert_eq!(answer_solicit(&ns, MAC2, &mut out), Err(Error::Malformed));
        let mut ns = ns_ipv6();
        ns[45] ^= 1;
        assert_eq!(answer_solicit(&ns, MAC2, &mut out), Err(Error::BadChecksum));
        let mut ns = ns_ipv6();
        ns[6] = 17;
        assert_eq!(answer_solicit(&ns, MAC2, &mut out), Err(Error::Unsupported));
        let mut ns = ns_ipv6();
        ns[40..].copy_from_slice(&NA_BYTES);
        assert_eq!(answer_solicit(&ns, MAC2, &mut out), Err(Error::Unsupported));
        assert_eq!(answer_solicit(&ns_ipv6()[..50], MAC2, &mut out), Err(Error::Truncated));
        // Unspecified source with a source link-layer option breaks §7.1.1.
        let mut ns = ns_ipv6();
        ns[8..24].fill(0);
        Icmpv6Packet::new_unchecked(&mut ns[40..]).fill_checksum(&Ipv6Address::UNSPECIFIED, &solicited_node(&ip2()));
        assert_eq!(answer_solicit(&ns, MAC2, &mut out), Err(Error::Malformed));
    }

    #[test]
    fn test_answer_solicit_frame() {
        let frame = ns_frame();
        let mut out = [0u8; 100];
        assert_eq!(answer_solicit_frame(&frame, MAC2, &mut out), Ok(ADVERT_FRAME_LEN));
        let eth = EthernetFrame::new_checked(&out[..86]).unwrap();
        assert_eq!(eth.dst_addr(), MAC1);
        assert_eq!(eth.src_addr(), MAC2);
        assert_eq!(eth.ethertype(), EtherType::Ipv6);
        assert_eq!(&eth.payload()[40..], &NA_BYTES[..]);
        let mut in_place = frame;
        assert_eq!(answer_solicit_frame_in_place(&mut in_place, MAC2), Ok(86));
        assert_eq!(&in_place[..], &out[..86]);
        let mut arp = frame;
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(answer_solicit_frame(&arp, MAC2, &mut out), Err(Error::Unsupported));
    }
}
