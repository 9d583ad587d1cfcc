//! Zero-copy wire views for the frames hnvswitch handles.
//!
//! This crate is the bottom of the switch: it knows how to read and write
//! Ethernet, 802.1Q, ARP, IPv4, IPv6, ICMPv4, ICMPv6/NDP, UDP, TCP, GRE and
//! NVGRE (RFC 7637) and VXLAN (RFC 7348) headers, and nothing else. It does no I/O, never
//! allocates outside tests, has no dependencies and contains no `unsafe`.
//!
//! # The packet layer and the representation layer
//!
//! Following smoltcp, every protocol module has two layers:
//!
//! - A *view* (`Packet<T>` or `Frame<T>`) wrapping any `T: AsRef<[u8]>`.
//!   Getters are named after the header fields and read them at fixed
//!   offsets (`mod field`); setters `set_<field>` exist when
//!   `T: AsMut<[u8]>` as well. Views never copy the buffer.
//! - A *representation* (`Repr`): a small `Copy` value holding the valid
//!   subset of a header. `Repr::parse` validates a view and
//!   `Repr::emit` writes every field of a header into a view.
//!
//! # Panic contract
//!
//! - `new_unchecked` wraps a buffer without looking at it. Getters and
//!   setters on such a view panic when the buffer is too short for the field.
//!   Use it only to *emit* into a buffer you sized with `Repr::buffer_len`,
//!   where `new_checked` would be wrong (the stale bytes of a reused buffer
//!   are not a header yet).
//! - `new_checked` calls `check_len` (and the structural checks listed in
//!   each module's docs). Once it succeeds, no getter on the view panics and
//!   no setter panics unless it changes a length field (documented per
//!   module). Untrusted input must always go through `new_checked`.
//! - `Repr::parse` never panics, whatever the view. `Repr::emit` never panics
//!   when the buffer is at least `Repr::buffer_len()` bytes long.
//!
//! # Errors
//!
//! Every failure is one variant of the crate-wide [`Error`], a `Copy` enum
//! specific enough to index a drop counter ([`Error::index`],
//! [`Error::as_str`]).
//!
//! # Example
//!
//! ```
//! use hnv_wire::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
//!
//! let repr = EthernetRepr {
//!     src_addr: EthernetAddress([0x02, 0, 0, 0, 0, 1]),
//!     dst_addr: EthernetAddress::BROADCAST,
//!     ethertype: EtherType::Arp,
//! };
//! let mut buf = [0u8; 14];
//! repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
//! let frame = EthernetFrame::new_checked(&buf[..]).unwrap();
//! assert_eq!(EthernetRepr::parse(&frame), Ok(repr));
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

#[macro_use]
mod macros;
mod bytes;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod flow_hash;
pub mod frames;
pub mod gre;
pub mod icmpv4;
pub mod icmpv6;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod mss_clamp;
pub mod ndisc;
pub mod nvgre;
pub mod nvgree;
pub mod pretty;
pub mod tcp;
pub mod too_big;
pub mod udp;
pub mod vlan;
pub mod vsid;
pub mod vxlan;

use core::fmt;

pub use crate::arp::{Operation as ArpOperation, Packet as ArpPacket, Repr as ArpRepr};
pub use crate::ethernet::{Address as EthernetAddress, EtherType, Frame as EthernetFrame, Repr as EthernetRepr};
pub use crate::flow_hash::{flow_id, flow_id_v4, flow_id_v6};
pub use crate::gre::{Packet as GrePacket, Repr as GreRepr};
pub use crate::icmpv4::{DstUnreachable as Icmpv4DstUnreachable, Message as Icmpv4Message, Packet as Icmpv4Packet, Repr as Icmpv4Repr};
pub use crate::icmpv6::{Message as Icmpv6Message, Packet as Icmpv6Packet, Repr as Icmpv6Repr};
pub use crate::ip::{IpProtocol, Ipv4Address, Ipv6Address};
pub use crate::ipv4::{Packet as Ipv4Packet, Repr as Ipv4Repr};
pub use crate::ipv6::{Packet as Ipv6Packet, Repr as Ipv6Repr};
pub use crate::ndisc::{NdiscOption, NdiscOptionType, NeighborAdvert as NdiscNeighborAdvert, NeighborFlags as NdiscNeighborFlags, NeighborSolicit as NdiscNeighborSolicit, Repr as NdiscRepr};
pub use crate::nvgre::Repr as NvgreRepr;
pub use crate::pretty::PrettyFrame;
pub use crate::tcp::Packet as TcpPacket;
pub use crate::udp::{Packet as UdpPacket, Repr as UdpRepr};
pub use crate::vlan::{Packet as VlanPacket, Repr as VlanRepr};
pub use crate::vsid::Vsid;
pub use crate::vxlan::{Packet as VxlanPacket, Repr as VxlanRepr};

/// Why a buffer was rejected. One variant per drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than a header or a length field says.
    Truncated,
    /// A field holds a value the protocol forbids (a length field too small,
    /// a non-zero code where zero is required, a zero-length option, …).
    Malformed,
    /// The IP version field is not the expected one.
    BadVersion,
    /// A checksum does not verify.
    BadChecksum,
    /// A header-length field (IPv4 IHL, TCP data offset) is too small.
    BadHeaderLen,
    /// NVGRE: C or S set, K clear, or a reserved bit set in the GRE flags.
    GreFlags,
    /// GRE version is not 0.
    GreVersion,
    /// GRE protocol type is not 0x6558 (Transparent Ethernet Bridging).
    GreProtocol,
    /// VSID outside `4096..=0xFF_FFFE` (RFC 7637 §4 reserves the rest).
    VsidReserved,
    /// VXLAN: the flags byte is not exactly I (an R bit set, or I clear).
    VxlanFlags,
    /// Valid on the wire but not handled here (non-Ethernet/IPv4 ARP,
    /// IPv4 fragments, IPv6 extension headers, unknown message types).
    Unsupported,
}

impl Error {
    /// Number of variants; the length of a counter array indexed by [`Error::index`].
    pub const COUNT: usize = 11;

    /// Every variant, in [`Error::index`] order.
    pub const ALL: [Error; Error::COUNT] = [
        Error::Truncated,
        Error::Malformed,
        Error::BadVersion,
        Error::BadChecksum,
        Error::BadHeaderLen,
        Error::GreFlags,
        Error::GreVersion,
        Error::GreProtocol,
        Error::VsidReserved,
        Error::Unsupported,
        Error::VxlanFlags,
    ];

    /// Return a dense index in `0..Error::COUNT`, for counter arrays.
    pub const fn index(self) -> usize {
        match self {
            Error::Truncated => 0,
            Error::Malformed => 1,
            Error::BadVersion => 2,
            Error::BadChecksum => 3,
            Error::BadHeaderLen => 4,
            Error::GreFlags => 5,
            Error::GreVersion => 6,
            Error::GreProtocol => 7,
            Error::VsidReserved => 8,
            Error::Unsupported => 9,
            Error::VxlanFlags => 10,
        }
    }

    /// Return a short snake_case name, suitable as a counter name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::BadVersion => "bad_version",
            Error::BadChecksum => "bad_checksum",
            Error::BadHeaderLen => "bad_header_len",
            Error::GreFlags => "gre_flags",
            Error::GreVersion => "gre_version",
            Error::GreProtocol => "gre_protocol",
            Error::VsidReserved => "vsid_reserved",
            Error::Unsupported => "unsupported",
            Error::VxlanFlags => "vxlan_flags",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::BadVersion => "bad IP version",
            Error::BadChecksum => "bad checksum",
            Error::BadHeaderLen => "bad header length",
            Error::GreFlags => "GRE flags not NVGRE (C/S set, K clear or reserved bits set)",
            Error::GreVersion => "GRE version not 0",
            Error::GreProtocol => "GRE protocol not 0x6558",
            Error::VsidReserved => "reserved VSID",
            Error::Unsupported => "unsupported",
            Error::VxlanFlags => "VXLAN flags not exactly I (R bits set or I clear)",
        };
        f.write_str(s)
    }
}

impl std::error::Error for Error {}

/// The result type of every fallible function in this crate.
pub type Result<T> = core::result::Result<T, Error>;

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn error_index_is_dense() {
        for (i, e) in Error::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert!(!e.as_str().is_empty());
            assert!(!e.to_string().is_empty());
        }
    }
}
