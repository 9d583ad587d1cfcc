//! NVGRE encapsulation from a precompiled outer header, and the FlowID.
//!
//! [`encap`] prepends a remote PA's [`EncapTemplate`] and patches the three
//! fields that vary per packet: the outer length, the outer IPv4 header
//! checksum (incrementally, from the template's precomputed partial sum) and
//! the GRE key (VSID and FlowID). Checks, in order: the inner frame fits the uplink MTU
//! ([`DropReason::EncapTooBig`]); the buffer has headroom for the outer
//! header ([`DropReason::NoHeadroom`]). Never panics, never allocates.

use crate::drop::DropReason;
use crate::meta::Meta;
use crate::tables::EncapTemplate;
use hnv_wire::checksum;
use pmd::PacketBuf;
use std::net::IpAddr;

/// The FlowID for a packet's inner 5-tuple (RFC 7637 §4: per-flow entropy); 0 for non-IP.
#[inline]
pub fn flow_id(m: &Meta) -> u8 {
    if m.ethertype != 0x0800 && m.ethertype != 0x86dd {
        return 0;
    }
    flow_id_of(m.src, m.dst, m.proto, m.sport, m.dport)
}

/// The FlowID of a 5-tuple (0 when the address families differ).
#[inline]
pub fn flow_id_of(src: IpAddr, dst: IpAddr, proto: u8, sport: u16, dport: u16) -> u8 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => hnv_wire::flow_id(&s.octets(), &d.octets(), proto, sport, dport),
        (IpAddr::V6(s), IpAddr::V6(d)) => hnv_wire::flow_id(&s.octets(), &d.octets(), proto, sport, dport),
        _ => 0,
    }
}

/// Prepend `tpl` to `pkt` and patch the lengths, the IPv4 checksum and the
/// GRE key (`key` = VSID << 8 | FlowID).
#[inline(always)]
pub fn encap<B: PacketBuf>(pkt: &mut B, tpl: &EncapTemplate, key: u32) -> Result<(), DropReason> {
    let inner = pkt.len();
    if inner > usize::from(tpl.max_inner) {
        return Err(DropReason::EncapTooBig);
    }
    let len = usize::from(tpl.len);
    let data = pkt.prepend(len).ok_or(DropReason::NoHeadroom)?;
    if let (Some(h), true) = (data.get_mut(..42).and_then(|h| <&mut [u8; 42]>::try_from(h).ok()), len == 42) {
        // The common case, IPv4 without VLAN: fixed offsets, no library call.
        h.copy_from_slice(&tpl.bytes[..42]);
        let total = (inner + 28) as u16;
        let sum = u32::from(tpl.ip_sum) + u32::from(total);
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        h[16..18].copy_from_slice(&total.to_be_bytes());
        h[24..26].copy_from_slice(&sum.to_be_bytes());
        h[38..42].copy_from_slice(&key.to_be_bytes());
        return Ok(());
    }
    let ip = usize::from(tpl.ip_off);
    data[..len].copy_from_slice(&tpl.bytes[..len]);
    if tpl.ipv6 {
        let payload = (inner + 8) as u16;
        data[ip + 4..ip + 6].copy_from_slice(&payload.to_be_bytes());
    } else {
        let total = (inner + 28) as u16;
        data[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        let sum = !checksum::combine(&[tpl.ip_sum, total]);
        data[ip + 10..ip + 12].copy_from_slice(&sum.to_be_bytes());
    }
    data[len - 4..len].copy_from_slice(&key.to_be_bytes());
    Ok(())
}

/// Traffic forwarded for a VM that moved away keeps its original sender's PA
/// as outer source, so that the new host's PA/CA check accepts it (IPv4).
pub fn keep_outer_source<B: PacketBuf>(p: &mut B, tpl: &EncapTemplate, src: IpAddr) {
    let (IpAddr::V4(src), false) = (src, tpl.ipv6) else { return };
    let ip = usize::from(tpl.ip_off);
    if let Some(h) = p.data_mut().get_mut(ip..ip + 20) {
        h[12..16].copy_from_slice(&src.octets());
        h[10..12].fill(0);
        let sum = !checksum::data(h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
    }
}
