//! Flow keys: one pass over fixed offsets of a frame.
//!
//! [`extract`] returns a key only for the common, cacheable shapes:
//! untagged IPv4 (no options, not fragmented) or IPv6 (TCP/UDP/ICMP-less
//! next headers other than ICMPv6 and extension headers) unicast frames from a
//! VM port, and, on an uplink, untagged NVGRE over IPv4 (no options) to a
//! local PA carrying such a frame. Everything else (ARP, ND, broadcast,
//! fragments, VLAN tags, options) returns `None` and takes the full pipeline.
//! Never panics: every read is bounds-checked first.

use crate::tables::{Role, Tables};
use std::net::IpAddr;

/// A flow key: 8 words, compared and hashed as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowKey(pub [u64; 8]);

/// Offset of the inner frame in a fast-path NVGRE packet (14 + 20 + 8).
pub const OUTER_LEN: usize = 42;

#[inline(always)]
fn be16<const N: usize>(d: &[u8; N], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

#[inline(always)]
fn w32<const N: usize>(d: &[u8; N], at: usize) -> u64 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&d[at..at + 4]);
    u64::from(u32::from_le_bytes(b))
}

#[inline(always)]
fn w64<const N: usize>(d: &[u8; N], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[at..at + 8]);
    u64::from_le_bytes(b)
}

/// The first `N` bytes as a fixed-size array (one bounds check for all later reads).
#[inline(always)]
fn head<const N: usize>(d: &[u8]) -> Option<&[u8; N]> {
    d.get(..N)?.try_into().ok()
}

/// Fill words 1..7 and the L3 part of word 0 from an inner (customer) frame;
/// false when not a fast-path shape.
#[inline(always)]
fn inner(d: &[u8], key: &mut FlowKey) -> bool {
    let Some(h) = head::<38>(d) else { return false };
    if h[0] & 1 != 0 {
        return false;
    }
    let ethertype = be16(h, 12);
    let (proto, ports) = match ethertype {
        0x0800 => {
            let total = usize::from(be16(h, 16));
            if h[14] != 0x45 || total < 20 || 14 + total > d.len() || be16(h, 20) & 0x3fff != 0 {
                return false;
            }
            // Source and destination address in one load.
            key.0[3] = w64(h, 26);
            key.0[4] = 0;
            key.0[5] = 0;
            key.0[6] = 0;
            (h[23], if total >= 24 { w32(h, 34) } else { 0 })
        }
        0x86dd => {
            let Some(h6) = head::<58>(d) else { return false };
            if h6[14] >> 4 != 6 || 54 + usize::from(be16(h6, 18)) > d.len() || !matches!(h6[20], 6 | 17) {
                return false;
            }
            key.0[3] = w64(h6, 22);
            key.0[4] = w64(h6, 30);
            key.0[5] = w64(h6, 38);
            key.0[6] = w64(h6, 46);
            (h6[20], w32(h6, 54))
        }
        _ => return false,
    };
    // Ports (as they sit on the wire) only for TCP and UDP.
    let ports = if proto == 6 || proto == 17 { ports } else { 0 };
    const MAC: u64 = (1 << 48) - 1;
    key.0[1] = (w64(h, 0) & MAC) | (ports & 0xffff) << 48;
    key.0[2] = (w64(h, 6) & MAC) | (ports >> 16) << 48;
    key.0[0] |= u64::from(ethertype) << 16 | u64::from(proto) << 32;
    true
}

/// Write the flow key of a frame received on `in_port` into `key`; false
/// (key contents unspecified) when the frame takes the slow path.
#[inline]
pub fn extract(t: &Tables, role: Role, in_port: u16, d: &[u8], key: &mut FlowKey) -> bool {
    match role {
        Role::Vm => {
            key.0[0] = u64::from(in_port) | 1 << 40;
            key.0[7] = 0;
            inner(d, key)
        }
        Role::Uplink => {
            let Some(o) = head::<OUTER_LEN>(d) else { return false };
            if be16(o, 12) != 0x0800 || o[14] != 0x45 || o[23] != 47 {
                return false;
            }
            let total = usize::from(be16(o, 16));
            if 14 + total > d.len() || total < 28 + 38 || be16(o, 20) & 0x3fff != 0 || be16(o, 34) != 0x2000 || be16(o, 36) != 0x6558 {
                return false;
            }
            let dst = IpAddr::V4(std::net::Ipv4Addr::new(o[30], o[31], o[32], o[33]));
            if t.local_pa(dst).is_none() {
                return false;
            }
            let vsid = u32::from_be_bytes([o[38], o[39], o[40], o[41]]) >> 8;
            key.0[0] = u64::from(in_port) | 2 << 40;
            key.0[7] = w32(o, 26) | u64::from(vsid) << 32;
            match d.get(OUTER_LEN..14 + total) {
                Some(inner_frame) => inner(inner_frame, key),
                None => false,
            }
        }
    }
}

/// The flow key of a frame, or `None` for the slow path (convenience form of [`extract`]).
pub fn key_of(t: &Tables, role: Role, in_port: u16, d: &[u8]) -> Option<FlowKey> {
    let mut k = FlowKey::default();
    extract(t, role, in_port, d, &mut k).then_some(k)
}

impl FlowKey {
    /// Word-wise equality without a library call.
    #[inline(always)]
    pub fn same(&self, other: &FlowKey) -> bool {
        let mut x = 0;
        for i in 0..8 {
            x |= self.0[i] ^ other.0[i];
        }
        x == 0
    }
}

/// Hash of a key (multiply-rotate over the words; never 0).
#[inline]
pub fn hash(k: &FlowKey) -> u32 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for w in k.0 {
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    ((h >> 32) as u32 ^ h as u32) | 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{self, mac};
    use std::net::Ipv4Addr;

    fn tables() -> Tables {
        let p = hnv_policy::parse(hnv_policy::example::BLUE_RED_HOST1, "t").unwrap();
        Tables::compile(&p, &mut Default::default(), &[], 1)
    }

    #[test]
    fn keys_tell_flows_apart_and_reject_slow_path_shapes() {
        let t = tables();
        let (a, b) = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)));
        let f1 = testkit::udp(mac("00:15:5d:01:00:05"), mac("00:15:5d:01:00:07"), a, b, 1, 2, 60);
        let f2 = testkit::udp(mac("00:15:5d:01:00:05"), mac("00:15:5d:01:00:07"), a, b, 1, 3, 60);
        let k1 = key_of(&t, Role::Vm, 1, &f1).unwrap();
        assert_eq!(Some(k1), key_of(&t, Role::Vm, 1, &f1));
        assert_ne!(Some(k1), key_of(&t, Role::Vm, 1, &f2));
        assert_ne!(Some(k1), key_of(&t, Role::Vm, 2, &f1), "the ingress port is part of the key");
        assert!(key_of(&t, Role::Vm, 1, &testkit::arp_request(mac("00:15:5d:01:00:05"), Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 7))).is_none());
        let nv = testkit::nvgre(mac("02:00:c0:a8:04:0b"), mac("02:00:c0:a8:04:16"), Ipv4Addr::new(192, 168, 4, 22), Ipv4Addr::new(192, 168, 4, 11), 5001, 3, &f1);
        let ku = key_of(&t, Role::Uplink, 0, &nv).unwrap();
        let nv6001 = testkit::nvgre(mac("02:00:c0:a8:04:0b"), mac("02:00:c0:a8:04:16"), Ipv4Addr::new(192, 168, 4, 22), Ipv4Addr::new(192, 168, 4, 11), 6001, 3, &f1);
        assert_ne!(Some(ku), key_of(&t, Role::Uplink, 0, &nv6001), "the VSID is part of the key");
        let nv_other = testkit::nvgre(mac("02:00:c0:a8:04:0b"), mac("02:00:c0:a8:04:16"), Ipv4Addr::new(192, 168, 4, 22), Ipv4Addr::new(192, 168, 4, 99), 5001, 3, &f1);
        assert!(key_of(&t, Role::Uplink, 0, &nv_other).is_none(), "not to a local PA");
        for cut in 0..nv.len() {
            let _ = key_of(&t, Role::Uplink, 0, &nv[..cut]);
            let _ = key_of(&t, Role::Vm, 1, &f1[..cut.min(f1.len())]);
        }
    }
}
