//! Flow steering over a bond's members by the encapsulation's entropy (sans I/O).
//!
//! DPDK 22.11's balance-mode transmit policies (`l2`, `l23`, `l34`) never read
//! the GRE key, so all NVGRE traffic between two hosts would leave by one
//! member. A bond opened with the `flow` balance policy is transmitted on by
//! the worker itself: each frame goes to the member [`member_index`] picks from
//! [`entropy`] of the frame, among the members a [`FlowSteer`] currently lists
//! as active. This file holds the pure parts; the DPDK tx path that uses them is
//! `dpdk/io.rs`, and the control thread that refreshes the active set is
//! `dpdk/port.rs` (`Port::watch_bond`).
//!
//! [`entropy`] reads fixed offsets only, checking each length before it reads,
//! in this order (any failed check falls back to the next weaker source, never
//! to a panic or an out-of-bounds read):
//! 1. Ethernet header (14 bytes, else `0`); one 802.1Q/802.1ad tag skipped (18 bytes, else `0`).
//! 2. IPv4 (version 4, IHL ≥ 5, the whole header present, not a non-first
//!    fragment) or IPv6 (40-byte header present); any other EtherType: the MAC addresses.
//! 3. GRE (protocol 47) with the K bit and the key present (after the checksum
//!    word when the C bit is set): the key, i.e. NVGRE's VSID<<8 | FlowID.
//! 4. UDP (protocol 17) to port 4789 (VXLAN) with the 8-byte header present: the source port.
//! 5. Otherwise: the outer source and destination addresses.
//!
//! Every source is mixed by a 32-bit finaliser, so that neighbouring FlowIDs
//! land on independent members.

use std::sync::atomic::{AtomicU32, Ordering};

/// Most members a steered bond may have (the width of the active mask).
pub const MAX_STEER_MEMBERS: usize = 16;

/// VXLAN's UDP destination port (RFC 7348).
const VXLAN_PORT: u16 = 4789;
/// IP protocol numbers.
const PROTO_GRE: u8 = 47;
const PROTO_UDP: u8 = 17;

#[inline]
fn be16(f: &[u8], at: usize) -> Option<u16> {
    let b = f.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

#[inline]
fn be32(f: &[u8], at: usize) -> Option<u32> {
    let b = f.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// murmur3's 32-bit finaliser: every input bit affects every output bit.
#[inline]
fn mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Fold `len` bytes at `at` into a word (a missing range folds to 0).
#[inline]
fn fold(f: &[u8], at: usize, len: usize) -> u32 {
    let Some(b) = at.checked_add(len).and_then(|end| f.get(at..end)) else { return 0 };
    b.chunks(4).fold(0u32, |acc, c| {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        mix(acc ^ u32::from_be_bytes(w))
    })
}

/// The parts of an IP header the entropy needs.
struct Ip {
    /// Where the transport header starts and its protocol (`None` for a non-first fragment).
    l4: Option<(usize, u8)>,
    /// Offset of the source address; the destination follows.
    addrs: usize,
    /// Length of both addresses together.
    alen: usize,
}

/// The IP header at `l3` of EtherType `ethertype`, when whole and valid.
#[inline]
fn ip_header(f: &[u8], l3: usize, ethertype: u16) -> Option<Ip> {
    match ethertype {
        0x0800 => {
            let vihl = *f.get(l3)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 || f.len() < l3 + ihl {
                return None;
            }
            let frag = be16(f, l3 + 6)? & 0x1fff;
            Some(Ip { l4: (frag == 0).then(|| (l3 + ihl, f[l3 + 9])), addrs: l3 + 12, alen: 8 })
        }
        0x86dd => {
            if f.len() < l3 + 40 || f[l3] >> 4 != 6 {
                return None;
            }
            Some(Ip { l4: Some((l3 + 40, f[l3 + 6])), addrs: l3 + 8, alen: 32 })
        }
        _ => None,
    }
}

/// The GRE key at `gre`, when the K bit says there is one and it is present.
#[inline]
fn gre_key(f: &[u8], gre: usize) -> Option<u32> {
    let flags = be16(f, gre)?;
    if flags & 0x2000 == 0 {
        return None;
    }
    be32(f, gre + if flags & 0x8000 != 0 { 8 } else { 4 })
}

/// The UDP source port at `udp`, when the datagram goes to VXLAN's port and its header is whole.
#[inline]
fn vxlan_sport(f: &[u8], udp: usize) -> Option<u16> {
    if f.len() < udp + 8 || be16(f, udp + 2)? != VXLAN_PORT {
        return None;
    }
    be16(f, udp)
}

/// The flow entropy of an outer frame (see the file's contract for the sources, in order).
#[inline]
pub fn entropy(f: &[u8]) -> u32 {
    let Some(mut ethertype) = be16(f, 12) else { return 0 };
    let mut at = 14;
    if ethertype == 0x8100 || ethertype == 0x88a8 {
        let Some(inner) = be16(f, 16) else { return 0 };
        ethertype = inner;
        at = 18;
    }
    let Some(ip) = ip_header(f, at, ethertype) else { return fold(f, 0, 12) };
    let by_l4 = match ip.l4 {
        Some((gre, PROTO_GRE)) => gre_key(f, gre).map(mix),
        Some((udp, PROTO_UDP)) => vxlan_sport(f, udp).map(|sp| mix(u32::from(sp) | 0x1_0000)),
        _ => None,
    };
    by_l4.unwrap_or_else(|| fold(f, ip.addrs, ip.alen))
}

/// The member, of `count` active ones, that a frame of entropy `hash` leaves by
/// (`None` when no member is active). Multiply-shift: uniform over `count`.
#[inline]
pub fn member_index(hash: u32, count: usize) -> Option<usize> {
    if count == 0 {
        return None;
    }
    Some(((u64::from(hash) * count as u64) >> 32) as usize)
}

/// A bond's members and which of them are active, shared between the control
/// thread (writes the mask) and the workers (read it once per burst, lock-free).
#[derive(Debug)]
pub struct FlowSteer {
    /// Member port ids, in the bond's order; fixed for the bond's life.
    members: Vec<u16>,
    /// Bit `i` set: `members[i]` is active (link up, in the bond's active set).
    active: AtomicU32,
}

/// The active members at one instant: what a worker uses for one burst.
#[derive(Debug, Clone, Copy)]
pub struct ActiveMembers {
    ids: [u16; MAX_STEER_MEMBERS],
    count: usize,
}

impl ActiveMembers {
    /// How many members are active.
    #[inline]
    pub fn count(&self) -> usize {
        self.count
    }
    /// Port id of active member `i` (`i < count`).
    #[inline]
    pub fn id(&self, i: usize) -> u16 {
        self.ids[i % MAX_STEER_MEMBERS]
    }
    /// The active member index a frame goes to (see [`entropy`], [`member_index`]).
    #[inline]
    pub fn pick(&self, frame: &[u8]) -> Option<usize> {
        member_index(entropy(frame), self.count)
    }
}

impl FlowSteer {
    /// Steering over `members` (at most [`MAX_STEER_MEMBERS`]; more are ignored), none active yet.
    pub fn new(members: &[u16]) -> FlowSteer {
        FlowSteer { members: members.iter().copied().take(MAX_STEER_MEMBERS).collect(), active: AtomicU32::new(0) }
    }

    /// Member port ids.
    pub fn members(&self) -> &[u16] {
        &self.members
    }

    /// Publish the active members (control thread): those of `active` that are members.
    /// Returns true when the set changed.
    pub fn set_active(&self, active: &[u16]) -> bool {
        let mask = self.members.iter().enumerate().filter(|(_, id)| active.contains(id)).fold(0u32, |m, (i, _)| m | 1 << i);
        self.active.swap(mask, Ordering::Release) != mask
    }

    /// The active members now (worker: once per burst; one atomic load).
    #[inline]
    pub fn snapshot(&self) -> ActiveMembers {
        let mut mask = self.active.load(Ordering::Acquire);
        let mut s = ActiveMembers { ids: [0; MAX_STEER_MEMBERS], count: 0 };
        while mask != 0 {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            if let Some(&id) = self.members.get(i) {
                s.ids[s.count] = id;
                s.count += 1;
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An NVGRE frame over IPv4 (optionally VLAN-tagged) with key `vsid<<8|fid`.
    fn nvgre4(vlan: bool, vsid: u32, fid: u8, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f[0] = 2;
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 47, 0, 0];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x20, 0x00, 0x65, 0x58]);
        f.extend_from_slice(&((vsid << 8) | u32::from(fid)).to_be_bytes());
        f.extend_from_slice(&[0u8; 60]);
        f
    }

    fn nvgre6(vsid: u32, fid: u8) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x86, 0xdd]);
        let mut ip = vec![0x60, 0, 0, 0, 0, 8, 47, 64];
        ip.extend_from_slice(&[0xfd; 16]);
        ip.extend_from_slice(&[0xfe; 16]);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x20, 0x00, 0x65, 0x58]);
        f.extend_from_slice(&((vsid << 8) | u32::from(fid)).to_be_bytes());
        f
    }

    #[test]
    fn the_gre_key_is_the_entropy_over_ipv4_ipv6_and_a_vlan_tag() {
        let a = nvgre4(false, 5001, 7, [192, 168, 4, 1], [192, 168, 4, 2]);
        assert_eq!(entropy(&a), mix((5001 << 8) | 7));
        assert_eq!(entropy(&nvgre4(true, 5001, 7, [1, 1, 1, 1], [2, 2, 2, 2])), entropy(&a), "the key only, whatever the addresses or tag");
        assert_eq!(entropy(&nvgre6(5001, 7)), entropy(&a));
        assert_ne!(entropy(&nvgre4(false, 5001, 8, [192, 168, 4, 1], [192, 168, 4, 2])), entropy(&a));
    }

    #[test]
    fn gre_with_a_checksum_word_reads_the_key_after_it() {
        let mut f = nvgre4(false, 1, 1, [1, 1, 1, 1], [2, 2, 2, 2]);
        // C and K bits: checksum+reserved word, then the key.
        f[34] = 0xa0;
        f.splice(38..38, [0xde, 0xad, 0, 0]);
        assert_eq!(entropy(&f), mix((1 << 8) | 1));
    }

    #[test]
    fn vxlan_uses_the_udp_source_port_and_other_traffic_the_addresses() {
        let mut f = nvgre4(false, 0, 0, [10, 0, 0, 1], [10, 0, 0, 2]);
        f[23] = PROTO_UDP;
        f[34..38].copy_from_slice(&[0x12, 0x34, 0x12, 0xb5]); // sport 0x1234, dport 4789
        assert_eq!(entropy(&f), mix(0x1_1234));
        f[36..38].copy_from_slice(&[0, 53]); // not VXLAN
        assert_eq!(entropy(&f), fold(&f, 26, 8));
        f[23] = 6; // TCP
        assert_eq!(entropy(&f), fold(&f, 26, 8));
        // GRE without a key: the addresses.
        let mut g = nvgre4(false, 9, 9, [10, 0, 0, 1], [10, 0, 0, 2]);
        g[34] = 0;
        assert_eq!(entropy(&g), fold(&g, 26, 8));
        // A non-first fragment has no transport header: the addresses.
        let mut h = nvgre4(false, 9, 9, [10, 0, 0, 1], [10, 0, 0, 2]);
        h[20..22].copy_from_slice(&[0x00, 0x10]);
        assert_eq!(entropy(&h), fold(&h, 26, 8));
    }

    #[test]
    fn hostile_frames_never_panic_or_read_past_the_end() {
        let good = nvgre4(true, 5001, 3, [1, 2, 3, 4], [5, 6, 7, 8]);
        // Every truncation of a valid frame.
        for n in 0..=good.len() {
            let _ = entropy(&good[..n]);
        }
        let good6 = nvgre6(77, 1);
        for n in 0..=good6.len() {
            let _ = entropy(&good6[..n]);
        }
        // Bogus IHL values (0..15) and versions, with truncations.
        for vihl in 0..=255u8 {
            let mut f = nvgre4(false, 1, 1, [1, 1, 1, 1], [2, 2, 2, 2]);
            f[14] = vihl;
            for n in [14, 15, 20, 33, 34, 37, 38, 41, 42, f.len()] {
                let _ = entropy(&f[..n.min(f.len())]);
            }
            // IHL past the frame: not IP, so the MACs.
            if vihl >> 4 == 4 && usize::from(vihl & 15) * 4 > 20 {
                assert_eq!(entropy(&f[..34]), fold(&f, 0, 12));
            }
        }
        // Every byte value at every header position of a short frame.
        let base = nvgre4(true, 1, 1, [1, 1, 1, 1], [2, 2, 2, 2]);
        for pos in 0..46 {
            for v in [0u8, 0x08, 0x20, 0x2f, 0x45, 0x4f, 0x60, 0x81, 0x86, 0xa0, 0xdd, 0xff] {
                let mut f = base[..46].to_vec();
                f[pos] = v;
                let _ = entropy(&f);
            }
        }
        // Non-IP: the MAC addresses.
        let mut arp = vec![0xaa; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(entropy(&arp), fold(&arp, 0, 12));
        assert_eq!(entropy(&[]), 0);
    }

    #[test]
    fn members_are_chosen_uniformly_and_none_without_active_members() {
        assert_eq!(member_index(123, 0), None);
        let mut counts = [0usize; 2];
        for fid in 0..=255u8 {
            let i = member_index(entropy(&nvgre4(false, 5001, fid, [1, 1, 1, 1], [2, 2, 2, 2])), 2).unwrap();
            counts[i] += 1;
        }
        assert!(counts.iter().all(|&c| c > 96), "256 FlowIDs over 2 members: {counts:?}");
        for n in 1..=MAX_STEER_MEMBERS {
            assert!(member_index(u32::MAX, n).unwrap() < n);
        }
    }

    #[test]
    fn the_active_set_is_published_as_one_word() {
        let s = FlowSteer::new(&[7, 9, 11]);
        assert_eq!(s.snapshot().count(), 0);
        assert!(s.set_active(&[9, 11, 42]));
        let a = s.snapshot();
        assert_eq!((a.count(), a.id(0), a.id(1)), (2, 9, 11));
        assert!(!s.set_active(&[11, 9]), "same set, no change");
        assert!(s.set_active(&[]));
        assert_eq!(s.snapshot().count(), 0);
        assert_eq!(s.members(), &[7, 9, 11]);
    }
}
