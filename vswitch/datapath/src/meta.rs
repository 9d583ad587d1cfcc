//! Per-packet metadata and verdicts, kept in arrays parallel to the batch.

use std::net::{IpAddr, Ipv4Addr};

/// What the switch knows about one packet (customer-address form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Switch port it arrived on.
    pub in_port: u16,
    /// True when it arrived NVGRE- or VXLAN-encapsulated on an uplink.
    pub from_uplink: bool,
    /// Bytes of outer headers removed on decapsulation (0 otherwise).
    pub outer_len: u8,
    /// Tenant VSID (after routing: the destination's VSID).
    pub vsid: u32,
    /// Counter slot of `vsid`.
    pub vsid_slot: u16,
    /// Ethertype of the (inner) frame.
    pub ethertype: u16,
    /// IP protocol (0 when not IP).
    pub proto: u8,
    /// Source CA (unspecified when not IP).
    pub src: IpAddr,
    /// Destination CA (unspecified when not IP).
    pub dst: IpAddr,
    /// TCP/UDP source port.
    pub sport: u16,
    /// TCP/UDP destination port.
    pub dport: u16,
    /// Outer source PA (decapsulated packets).
    pub outer_src: IpAddr,
    /// Local port chosen by the forwarder (`NO_PORT` otherwise).
    pub out_port: u16,
    /// Slot of the destination's lookup record (`u32::MAX` when none).
    pub dst_slot: u32,
    /// Slot of the source's lookup record, checked on decapsulation (`u32::MAX` when none).
    pub src_slot: u32,
    /// Routed by the distributed router.
    pub routed: bool,
    /// The transport ports could not be read (a non-first IPv4/IPv6 fragment,
    /// or a first fragment too short to hold them): the ACL assumes that
    /// port-specific deny rules match.
    pub ports_unknown: bool,
    /// The forwarder flooded it to the local ports of `vsid`.
    pub flooded: bool,
}

/// `Meta::out_port` when the packet is not delivered to a local port.
pub const NO_PORT: u16 = u16::MAX;

impl Default for Meta {
    fn default() -> Self {
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        Meta {
            in_port: 0,
            from_uplink: false,
            outer_len: 0,
            vsid: 0,
            vsid_slot: 0,
            ethertype: 0,
            proto: 0,
            src: any,
            dst: any,
            sport: 0,
            dport: 0,
            outer_src: any,
            out_port: NO_PORT,
            dst_slot: u32::MAX,
            src_slot: u32::MAX,
            routed: false,
            ports_unknown: false,
            flooded: false,
        }
    }
}

/// The fate of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not decided yet.
    Continue,
    /// Send unchanged out of a switch port (local delivery, or a reply back out).
    Port(u16),
    /// NVGRE-encapsulate with the template of record `dests[i]`, then send.
    Encap(u32),
    /// Copy to every local port of `meta.vsid` except the ingress one.
    Flood,
    /// Drop and count.
    Drop(crate::drop::DropReason),
}

impl Verdict {
    /// True for verdicts that send the packet somewhere.
    #[inline]
    pub fn is_delivery(&self) -> bool {
        matches!(self, Verdict::Port(_) | Verdict::Encap(_) | Verdict::Flood)
    }
}
