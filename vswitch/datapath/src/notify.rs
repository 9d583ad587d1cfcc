//! The old host's side of MS-NVGREE: tell a host that still sends NVGRE for
//! a VM that is not here where the VM went (REDIRECT) or that it is gone
//! (UNREACHABLE), so that the sender updates before its policy does.
//!
//! [`Notifier::message`] builds the message ([`hnv_wire::nvgree`]) in a new
//! packet buffer from the triggering packet's pool and encapsulates it with
//! the outer template of the *sending* VM's own lookup record, so it reaches
//! the sender's PA in that VM's VSID over the normal uplink path. IPv4 PAs
//! and CAs only. At most one message per (sending VM, destination CA) per
//! interval: a direct-mapped table of the last send times. No heap
//! allocation, lock, syscall or log line.

use crate::encap::encap;
use crate::meta::Meta;
use crate::tables::{Delivery, Tables};
use hnv_wire::nvgree::{Control, ControlRepr, FRAME_LEN};
use hnv_wire::EthernetAddress;
use pmd::PacketBuf;
use std::net::IpAddr;

/// Rate-limiter slots.
const SLOTS: usize = 256;

/// One worker's rate-limited message builder.
#[derive(Debug)]
pub struct Notifier {
    /// (key, TSC of the last message) per slot; key 0 = empty.
    last: [(u64, u64); SLOTS],
    /// Minimum TSC cycles between two messages for one key.
    interval: u64,
}

impl Notifier {
    /// A notifier sending at most one message per key every `interval` TSC cycles.
    pub fn new(interval: u64) -> Self {
        Notifier { last: [(0, 0); SLOTS], interval }
    }

    /// The message `control` for the decapsulated packet `p` (metadata `m`,
    /// seen at TSC `now`), encapsulated toward its sender, and the uplink to
    /// send it on; `None` when rate-limited, not IPv4, the sender's record
    /// is not remote, or no buffer is free.
    pub fn message<B: PacketBuf>(&mut self, t: &Tables, m: &Meta, p: &B, now: u64, control: Control) -> Option<(B, u16)> {
        let (IpAddr::V4(to_pa), IpAddr::V4(src_ca), IpAddr::V4(dst_ca)) = (m.outer_src, m.src, m.dst) else { return None };
        let sender = t.by_slot(m.src_slot)?;
        let Delivery::Encap(id) = sender.to else { return None };
        let tpl = t.template(id)?;
        if tpl.ipv6 || sender.pa != m.outer_src {
            return None;
        }
        let key = (u64::from(m.src_slot) << 32 | u64::from(u32::from(dst_ca))) | 1 << 63;
        let slot = self.last.get_mut((key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize % SLOTS)?;
        if slot.0 == key && now.wrapping_sub(slot.1) < self.interval {
            return None;
        }
        *slot = (key, now);
        let ip = usize::from(tpl.ip_off);
        let from = tpl.bytes.get(ip + 12..ip + 16)?;
        let from_pa = hnv_wire::Ipv4Address::new(from[0], from[1], from[2], from[3]);
        let repr = ControlRepr { control, from_pa, to_pa, src_ca, dst_ca };
        let mut msg = p.try_clone()?;
        if !msg.trim(msg.len()) {
            return None;
        }
        let buf = msg.append(FRAME_LEN)?;
        let mac = |r: std::ops::Range<usize>| tpl.bytes.get(r).map(EthernetAddress::from_bytes);
        repr.emit(mac(6..12)?, mac(0..6)?, buf).ok()?;
        encap(&mut msg, tpl, sender.vsid << 8).ok()?;
        Some((msg, tpl.uplink))
    }
}
