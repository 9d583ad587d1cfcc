//! Flow keys: the *decision* a frame needs, read in one pass over fixed
//! offsets.
//!
//! A key holds what the forwarding decision depends on (OVS's megaflow idea,
//! with the mask compiled from policy instead of learned): the ingress port,
//! source and destination MAC, ethertype, IP protocol, source and
//! destination CA and, for NVGRE or VXLAN from an uplink, the outer source
//! PA, the VSID and the encapsulation (the key's kind: what decapsulation
//! removes is part of the decision). The TCP/UDP ports are part of the key only when the frame's VSID
//! has [`crate::tables::VsidEntry::key_ports`] set (an ACL rule of its
//! routing domain matches on ports); otherwise they are masked to zero, so
//! every connection between the same two VMs shares one cache entry. The
//! ports as they sit on the wire are returned separately for the FlowID,
//! which is computed per packet ([`Fields::flow_id`]).
//!
//! [`extract`] accepts only the common, cacheable shapes and returns false
//! for everything else, which then takes the full pipeline:
//! - inner frame: untagged, unicast destination MAC, IPv4 without options or
//!   fragmentation, or IPv6 whose next header is TCP or UDP (no extension
//!   headers, no ICMPv6) with at least 8 payload bytes; the source CA is not
//!   0.0.0.0, `::` or link-local (those get the slow path's narrower checks);
//! - from an uplink, also: untagged outer IPv4 without options or
//!   fragmentation, a valid outer header checksum, protocol GRE with exactly
//!   the NVGRE flags (key present, version 0), protocol 0x6558, a destination
//!   that is a local PA *and* a destination MAC that is that PA's MAC, and an
//!   inner destination MAC that is not that PA's MAC (MS-NVGREE control
//!   messages are never cached); or, for VXLAN, UDP to the policy's VXLAN
//!   port whose length agrees with the IP length and flags exactly I, with
//!   the same outer and inner conditions.
//!
//! Never panics: every read is bounds-checked first.

use crate::tables::{PortEntry, Tables};

/// A flow key: 8 words, compared and hashed as a whole.
///
/// Word 0: ingress port (bits 0..16), ethertype (16..32), IP protocol
/// (32..40), kind (40..42: 1 = VM port, 2 = NVGRE from an uplink, 3 = VXLAN
/// from an uplink), ports-in-key (48).
/// Words 1, 2: destination and source MAC, each with 16 bits of the ports
/// (zero when masked). Words 3..7: source‖destination CA (IPv4: word 3
/// only). Word 7: outer source PA and VSID (uplink).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(align(64))]
pub struct FlowKey(pub [u64; 8]);

/// What a key extraction yields besides the key: the fields the FlowID
/// needs, which the key may mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fields {
    /// TCP/UDP ports as on the wire, read little-endian (0 for other protocols).
    pub ports: u32,
}

impl Fields {
    /// The NVGRE FlowID of the frame whose key is `key` (same value as
    /// [`crate::encap::flow_id`] of the slow path).
    #[inline]
    pub fn flow_id(&self, key: &FlowKey) -> u8 {
        let proto = (key.0[0] >> 32) as u8;
        if key.0[0] >> 16 & 0xffff == 0x0800 {
            hnv_wire::flow_id_v4(key.0[3], self.ports, proto)
        } else {
            hnv_wire::flow_id_v6([key.0[3], key.0[4], key.0[5], key.0[6]], self.ports, proto)
        }
    }
}

/// Offset of the inner frame in a fast-path NVGRE packet (14 + 20 + 8).
pub const OUTER_LEN: usize = 42;
/// Offset of the inner frame in a fast-path VXLAN packet (14 + 20 + 8 + 8).
pub const VXLAN_OUTER_LEN: usize = 50;

const KIND_VM: u64 = 1 << 40;
const KIND_UPLINK: u64 = 2 << 40;
const KIND_VXLAN: u64 = 3 << 40;
const MAC: u64 = (1 << 48) - 1;

#[inline(always)]
fn be16<const N: usize>(d: &[u8; N], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

#[inline(always)]
fn w32<const N: usize>(d: &[u8; N], at: usize) -> u32 {
    u32::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
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

/// Fill words 1..7 and the L3 part of word 0 from an inner (customer)
/// frame, the ports masked unless `with_ports`; false when not a fast-path shape.
#[inline(always)]
fn inner(d: &[u8], with_ports: bool, key: &mut FlowKey, f: &mut Fields) -> bool {
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
            let addrs = w64(h, 26);
            if addrs as u32 == 0 {
                return false; // 0.0.0.0: DHCP and probes only, decided by the slow path
            }
            key.0[3] = addrs;
            key.0[4] = 0;
            key.0[5] = 0;
            key.0[6] = 0;
            (h[23], if total >= 24 { w32(h, 34) } else { 0 })
        }
        0x86dd => {
            let Some(h6) = head::<58>(d) else { return false };
            let payload = usize::from(be16(h6, 18));
            if h6[14] >> 4 != 6 || payload < 8 || 54 + payload > d.len() || !matches!(h6[20], 6 | 17) {
                return false;
            }
            let (s0, s1) = (w64(h6, 22), w64(h6, 30));
            // `::` or fe80::/10: neighbor discovery and the VM's own link-local only.
            if s0 | s1 == 0 || (h6[22] == 0xfe && h6[23] & 0xc0 == 0x80) {
                return false;
            }
            key.0[3] = s0;
            key.0[4] = s1;
            key.0[5] = w64(h6, 38);
            key.0[6] = w64(h6, 46);
            (h6[20], w32(h6, 54))
        }
        _ => return false,
    };
    // Ports (as they sit on the wire) only for TCP and UDP.
    f.ports = if proto == 6 || proto == 17 { ports } else { 0 };
    let masked = u64::from(f.ports) & (with_ports as u64).wrapping_neg();
    key.0[1] = (w64(h, 0) & MAC) | masked << 48;
    key.0[2] = (w64(h, 6) & MAC) | (masked >> 16) << 48;
    key.0[0] |= u64::from(ethertype) << 16 | u64::from(proto) << 32 | (with_ports as u64) << 48;
    true
}

/// Write the key of a frame received on VM port `in_port` (entry `port`)
/// into `key`; false (key contents unspecified) for the slow path.
#[inline]
pub fn from_vm(port: &PortEntry, in_port: u16, d: &[u8], key: &mut FlowKey, f: &mut Fields) -> bool {
    key.0[0] = u64::from(in_port) | KIND_VM;
    key.0[7] = 0;
    inner(d, port.key_ports, key, f)
}

/// The outer IPv4 header's checksum verifies (20 bytes, no options): the
/// one's-complement sum of the header is 0xffff. Summed as five 32-bit
/// little-endian words and folded; a one's-complement sum is the same in
/// either byte order up to a swap, and 0xffff is its own swap.
#[inline(always)]
fn outer_checksum_ok<const N: usize>(o: &[u8; N]) -> bool {
    let mut sum = 0u64;
    let mut i = 14;
    while i < 34 {
        sum += u64::from(w32(o, i));
        i += 4;
    }
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum == 0xffff
}

/// Write the key of an NVGRE frame received on uplink `in_port` into `key`;
/// false (key contents unspecified) for the slow path.
#[inline]
pub fn from_uplink(t: &Tables, in_port: u16, d: &[u8], key: &mut FlowKey, f: &mut Fields) -> bool {
    let Some(o) = head::<OUTER_LEN>(d) else { return false };
    if be16(o, 12) != 0x0800 || o[14] != 0x45 || o[23] != 47 {
        // Tested only once NVGRE failed: the NVGRE path pays nothing for VXLAN.
        return o[23] == 17 && from_uplink_vxlan(t, in_port, d, key, f);
    }
    let total = usize::from(be16(o, 16));
    if 14 + total > d.len() || total < 28 + 38 || be16(o, 20) & 0x3fff != 0 || be16(o, 34) != 0x2000 || be16(o, 36) != 0x6558 {
        return false;
    }
    let dst = std::net::Ipv4Addr::new(o[30], o[31], o[32], o[33]);
    let Some(pa) = t.local_pa(std::net::IpAddr::V4(dst)) else { return false };
    if o[0..6] != pa.mac || !outer_checksum_ok(o) {
        return false;
    }
    let vsid = u32::from_be_bytes([o[38], o[39], o[40], o[41]]) >> 8;
    key.0[0] = u64::from(in_port) | KIND_UPLINK;
    key.0[7] = u64::from(w32(o, 26)) | u64::from(vsid) << 32;
    let Some(inner_frame) = d.get(OUTER_LEN..14 + total) else { return false };
    if inner_frame.get(..6).is_some_and(|m| m == pa.mac) {
        return false; // to this host's PA MAC: MS-NVGREE control (as ingress decides), never cached
    }
    inner(inner_frame, t.key_ports(vsid), key, f)
}

/// [`from_uplink`] for VXLAN: untagged outer IPv4 without options or
/// fragmentation, a valid header checksum, UDP to the policy's VXLAN port
/// whose length is the IP payload's, flags exactly I, to a local PA and its
/// MAC; the inner frame as for NVGRE. The key's kind differs from NVGRE's
/// (the outer header to remove is part of the decision).
#[inline(never)]
fn from_uplink_vxlan(t: &Tables, in_port: u16, d: &[u8], key: &mut FlowKey, f: &mut Fields) -> bool {
    let Some(o) = head::<VXLAN_OUTER_LEN>(d) else { return false };
    let total = usize::from(be16(o, 16));
    if be16(o, 12) != 0x0800 || o[14] != 0x45 || 14 + total > d.len() || total < 36 + 38 || be16(o, 20) & 0x3fff != 0 {
        return false;
    }
    if be16(o, 36) != t.vxlan_port || usize::from(be16(o, 38)) != total - 20 || o[42] != hnv_wire::vxlan::FLAGS {
        return false;
    }
    let dst = std::net::Ipv4Addr::new(o[30], o[31], o[32], o[33]);
    let Some(pa) = t.local_pa(std::net::IpAddr::V4(dst)) else { return false };
    if o[0..6] != pa.mac || !outer_checksum_ok(o) {
        return false;
    }
    let vsid = u32::from_be_bytes([0, o[46], o[47], o[48]]);
    key.0[0] = u64::from(in_port) | KIND_VXLAN;
    key.0[7] = u64::from(w32(o, 26)) | u64::from(vsid) << 32;
    let Some(inner_frame) = d.get(VXLAN_OUTER_LEN..14 + total) else { return false };
    if inner_frame.get(..6).is_some_and(|m| m == pa.mac) {
        return false; // to this host's PA MAC: MS-NVGREE control (as ingress decides), never cached
    }
    inner(inner_frame, t.key_ports(vsid), key, f)
}

/// The flow key of a frame, or `None` for the slow path (convenience form for tests and tools).
pub fn key_of(t: &Tables, in_port: u16, d: &[u8]) -> Option<FlowKey> {
    let mut k = FlowKey::default();
    let mut f = Fields::default();
    let port = t.port(in_port)?;
    let ok = match port.role {
        crate::tables::Role::Vm => from_vm(port, in_port, d, &mut k, &mut f),
        crate::tables::Role::Uplink => from_uplink(t, in_port, d, &mut k, &mut f),
    };
    ok.then_some(k)
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

/// Hash of a key: two multiply lanes over rotated words, folded (64 bits;
/// the table takes its bucket from the low bits and its signature from the
/// high ones).
#[inline(always)]
pub fn hash(k: &FlowKey) -> u64 {
    let w = &k.0;
    let a = (w[0] ^ w[1].rotate_left(21) ^ w[2].rotate_left(42) ^ w[7].rotate_left(11)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let b = (w[3] ^ w[4].rotate_left(17) ^ w[5].rotate_left(34) ^ w[6].rotate_left(51)).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    let h = a ^ b.rotate_left(32);
    h ^ h >> 29
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{self, mac};
    use std::net::{IpAddr, Ipv4Addr};

    fn tables(extra: &str) -> Tables {
        let p = hnv_policy::parse(&format!("{}{extra}", hnv_policy::example::BLUE_RED_HOST1), "t").unwrap();
        Tables::compile(&p, &mut Default::default(), &[], 1)
    }

    fn udp(sport: u16, dport: u16) -> Vec<u8> {
        let (a, b) = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)));
        testkit::udp(mac("00:15:5d:01:00:05"), mac("00:15:5d:01:00:07"), a, b, sport, dport, 60)
    }

    fn red_udp(sport: u16, dport: u16) -> Vec<u8> {
        let (a, b) = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)));
        testkit::udp(mac("00:15:5d:02:00:05"), mac("00:15:5d:02:00:07"), a, b, sport, dport, 60)
    }

    fn port(t: &Tables, name: &str) -> u16 {
        t.ports.iter().position(|p| p.name == name).unwrap() as u16
    }

    fn nvgre(vsid: u32, dst_pa: Ipv4Addr, inner: &[u8]) -> Vec<u8> {
        testkit::nvgre(mac("02:00:c0:a8:04:0b"), mac("02:00:c0:a8:04:16"), Ipv4Addr::new(192, 168, 4, 22), dst_pa, vsid, 3, inner)
    }

    const RED_PORT_ACL: &str = "\n[[acl]]\nvsid = 6001\npriority = 10\ndirection = \"out\"\naction = \"deny\"\nprotocol = \"tcp\"\ndst_ports = \"22\"\n";

    #[test]
    fn connections_between_the_same_vms_share_a_key_unless_an_acl_reads_ports() {
        let pa = Ipv4Addr::new(192, 168, 4, 11);
        let t = tables("");
        let red = port(&t, "red1");
        let k1 = key_of(&t, red, &red_udp(1, 2)).unwrap();
        assert_eq!(Some(k1), key_of(&t, red, &red_udp(1, 3)), "ports are masked without a port ACL in the routing domain");
        assert_eq!(key_of(&t, 0, &nvgre(6001, pa, &red_udp(1, 2))), key_of(&t, 0, &nvgre(6001, pa, &red_udp(7, 3))), "decap into 6001 too");
        let blue = port(&t, "blue1");
        assert_ne!(key_of(&t, blue, &udp(1, 2)), key_of(&t, blue, &udp(1, 3)), "Blue's ACL on port 23 puts ports in Blue's keys");
        assert_ne!(key_of(&t, 0, &nvgre(5001, pa, &udp(1, 2))), key_of(&t, 0, &nvgre(5001, pa, &udp(1, 3))), "decapsulated into Blue too");
        assert_ne!(key_of(&t, red, &red_udp(1, 2)), key_of(&t, blue, &red_udp(1, 2)), "the ingress port is part of the key");
        let t = tables(RED_PORT_ACL);
        assert_ne!(key_of(&t, red, &red_udp(1, 2)), key_of(&t, red, &red_udp(1, 3)), "a port ACL in Red puts ports in Red's keys");
        assert_ne!(key_of(&t, 0, &nvgre(6001, pa, &red_udp(1, 2))), key_of(&t, 0, &nvgre(6001, pa, &red_udp(1, 3))));
    }

    #[test]
    fn the_flow_id_matches_the_slow_paths() {
        let t = tables("");
        for (s, d) in [(1u16, 2u16), (40000, 443), (9, 65535)] {
            let f = udp(s, d);
            let (mut k, mut fl) = (FlowKey::default(), Fields::default());
            let p = port(&t, "blue1");
            assert!(from_vm(t.port(p).unwrap(), p, &f, &mut k, &mut fl));
            assert_eq!(fl.flow_id(&k), hnv_wire::flow_id(&[10, 0, 0, 5], &[10, 0, 0, 7], 17, s, d));
        }
    }

    #[test]
    fn slow_path_shapes_and_hostile_outer_headers_get_no_key() {
        let t = tables("");
        assert!(key_of(&t, port(&t, "blue1"), &testkit::arp_request(mac("00:15:5d:01:00:05"), Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 7))).is_none());
        let zero = testkit::udp(mac("00:15:5d:01:00:05"), mac("00:15:5d:01:00:07"), IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)), 68, 67, 60);
        assert!(key_of(&t, port(&t, "blue1"), &zero).is_none(), "0.0.0.0 sources take the slow path");
        let good = nvgre(5001, Ipv4Addr::new(192, 168, 4, 11), &udp(1, 2));
        let ku = key_of(&t, 0, &good).unwrap();
        assert_ne!(Some(ku), key_of(&t, 0, &nvgre(6001, Ipv4Addr::new(192, 168, 4, 11), &udp(1, 2))), "the VSID is part of the key");
        assert!(key_of(&t, 0, &nvgre(5001, Ipv4Addr::new(192, 168, 4, 99), &udp(1, 2))).is_none(), "not to a local PA");
        let mut bad_sum = good.clone();
        bad_sum[24] ^= 1;
        assert!(key_of(&t, 0, &bad_sum).is_none(), "a wrong outer checksum");
        let mut other_mac = good.clone();
        other_mac[5] ^= 1;
        assert!(key_of(&t, 0, &other_mac).is_none(), "an outer destination MAC that is not the PA's");
        let mut to_host = udp(1, 2);
        to_host[0..6].copy_from_slice(&mac("02:00:c0:a8:04:0b"));
        assert!(key_of(&t, 0, &nvgre(5001, Ipv4Addr::new(192, 168, 4, 11), &to_host)).is_none(), "inner frames to the host's own MAC (MS-NVGREE)");
        for cut in 0..good.len() {
            let _ = key_of(&t, 0, &good[..cut]);
            let f = udp(1, 2);
            let _ = key_of(&t, port(&t, "blue1"), &f[..cut.min(f.len())]);
        }
    }

    #[test]
    fn vxlan_keys_differ_from_nvgre_keys_and_need_the_fast_path_shape() {
        let t = tables("");
        let pa = Ipv4Addr::new(192, 168, 4, 11);
        let vx = |vni: u32, port: u16, inner: &[u8]| testkit::vxlan(mac("02:00:c0:a8:04:0b"), mac("02:00:c0:a8:04:16"), Ipv4Addr::new(192, 168, 4, 22), pa, vni, 3, port, inner);
        let f = red_udp(1, 2);
        let kv = key_of(&t, 0, &vx(6001, 4789, &f)).unwrap();
        let kn = key_of(&t, 0, &nvgre(6001, pa, &f)).unwrap();
        assert_ne!(kv, kn, "the encapsulation is part of the decision");
        assert_eq!(kv.0[1..7], kn.0[1..7], "the inner part is keyed alike");
        assert_eq!(kv.0[7], kn.0[7], "outer source PA and VSID alike");
        assert_eq!(Some(kv), key_of(&t, 0, &vx(6001, 4789, &red_udp(5, 6))), "ports masked as for NVGRE");
        assert_ne!(Some(kv), key_of(&t, 0, &vx(5001, 4789, &f)), "the VNI is part of the key");
        assert!(key_of(&t, 0, &vx(6001, 4790, &f)).is_none(), "another UDP port");
        let good = vx(6001, 4789, &f);
        let mut flags = good.clone();
        flags[42] = 0x0c;
        assert!(key_of(&t, 0, &flags).is_none(), "flags other than I");
        let mut udp_len = good.clone();
        udp_len[39] ^= 2;
        assert!(key_of(&t, 0, &udp_len).is_none(), "a UDP length that is not the IP payload's");
        let mut sum = good.clone();
        sum[24] ^= 1;
        assert!(key_of(&t, 0, &sum).is_none(), "a wrong outer checksum");
        for cut in 0..good.len() {
            let _ = key_of(&t, 0, &good[..cut]);
        }
    }
}
