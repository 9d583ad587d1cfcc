//! The NVGRE FlowID: 8 bits of per-flow entropy from the inner 5-tuple.
//!
//! RFC 7637 §4: the FlowID (the low 8 bits of the GRE key) gives transit
//! devices per-flow entropy for ECMP; they must not change it. An
//! encapsulator that generates none must set it to 0, so 0 means "no
//! entropy". [`flow_id`] therefore never returns 0: it maps a 32-bit hash
//! onto `1..=255`.
//!
//! The hash multiplies the addresses, read as little-endian 64-bit words
//! exactly as they sit on the wire, and the ports‖protocol word by odd
//! constants, folds the product and maps its high 32 bits onto 1..=255 with
//! a multiply-shift. The datapath computes it straight from the words of its
//! flow key ([`flow_id_v4`], [`flow_id_v6`], about a dozen instructions),
//! since the cache keys on decisions, not connections, and the FlowID is the
//! one per-connection value left. It is stable: the same 5-tuple gives the
//! same FlowID in every process and on every host (changing it reshuffles
//! ECMP paths: it changed once, in the decision-cache release, from a
//! murmur3-style word mix). It is not keyed and not meant to resist an
//! adversary choosing flows. It never panics and never allocates.

const K_ADDR: [u64; 4] = [0x9e37_79b9_7f4a_7c15, 0xc2b2_ae3d_27d4_eb4f, 0x1656_67b1_9e37_79f9, 0xd6e8_feb8_6659_fd93];
const K_PORTS: u64 = 0xff51_afd7_ed55_8ccd;

/// 1..=255 from the high half of a folded product.
#[inline(always)]
const fn finish(mut x: u64) -> u8 {
    x ^= x >> 29;
    x = x.wrapping_mul(K_PORTS);
    (((x >> 32) * 255) >> 32) as u8 + 1
}

#[inline(always)]
const fn l4(ports: u32, proto: u8) -> u64 {
    ((ports as u64) << 8 | proto as u64).wrapping_mul(K_PORTS)
}

/// Return the FlowID (`1..=255`) for an inner flow.
///
/// `src` and `dst` are the inner IP addresses as bytes (4 for IPv4, 16 for
/// IPv6); `proto` the IP protocol; `sport`/`dport` the ports (0 for
/// protocols without ports). Direction matters: A→B and B→A may differ.
/// Other lengths are hashed as their concatenation (at most 32 bytes).
pub fn flow_id(src: &[u8], dst: &[u8], proto: u8, sport: u16, dport: u16) -> u8 {
    let mut b = [0u8; 32];
    let n = src.len().min(32);
    b[..n].copy_from_slice(&src[..n]);
    let m = dst.len().min(32 - n);
    b[n..n + m].copy_from_slice(&dst[..m]);
    let w = |k: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[k * 8..k * 8 + 8]);
        u64::from_le_bytes(x)
    };
    let [s0, s1] = sport.to_be_bytes();
    let [d0, d1] = dport.to_be_bytes();
    let ports = u32::from_le_bytes([s0, s1, d0, d1]);
    if n + m <= 8 {
        flow_id_v4(w(0), ports, proto)
    } else {
        flow_id_v6([w(0), w(1), w(2), w(3)], ports, proto)
    }
}

/// [`flow_id`] of an IPv4 flow from the words a flow key holds: `addrs` is
/// the 8 bytes source‖destination as they sit on the wire, read little-endian;
/// `ports` the 4 bytes source port‖destination port likewise (0 for protocols
/// without ports).
#[inline(always)]
pub fn flow_id_v4(addrs: u64, ports: u32, proto: u8) -> u8 {
    finish(addrs.wrapping_mul(K_ADDR[0]) ^ l4(ports, proto))
}

/// [`flow_id`] of an IPv6 flow from the 32 bytes source‖destination read as
/// four little-endian words, and the ports as in [`flow_id_v4`].
#[inline(always)]
pub fn flow_id_v6(addrs: [u64; 4], ports: u32, proto: u8) -> u8 {
    let a = addrs[0].wrapping_mul(K_ADDR[0]) ^ addrs[1].wrapping_mul(K_ADDR[1]) ^ addrs[2].wrapping_mul(K_ADDR[2]) ^ addrs[3].wrapping_mul(K_ADDR[3]);
    finish(a.rotate_left(23) ^ l4(ports, proto))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn test_never_zero_and_spread() {
        let mut seen = [0u32; 256];
        for i in 0..20_000u32 {
            let src = [10, 0, (i >> 8) as u8, i as u8];
            let id = flow_id(&src, &[10, 0, 0, 1], 6, 40000 + (i % 1000) as u16, 443);
            seen[usize::from(id)] += 1;
        }
        assert_eq!(seen[0], 0);
        // Every value in 1..=255 shows up, none grossly over-represented.
        assert!(seen[1..].iter().all(|&n| n > 20 && n < 200), "{seen:?}");
    }

    #[test]
    fn test_stable() {
        // Pinned values: changing the hash changes FlowIDs on the wire.
        let a = flow_id(&[10, 0, 0, 1], &[10, 0, 0, 2], 6, 49152, 80);
        assert_eq!(a, flow_id(&[10, 0, 0, 1], &[10, 0, 0, 2], 6, 49152, 80));
        assert_eq!(a, PINNED_V4);
        let v6 = flow_id(&[0xfe; 16], &[0x20; 16], 17, 53, 5353);
        assert_eq!(v6, PINNED_V6);
        assert_ne!(a, flow_id(&[10, 0, 0, 1], &[10, 0, 0, 2], 6, 49153, 80));
    }

    #[test]
    fn test_odd_lengths() {
        assert_ne!(flow_id(&[], &[], 0, 0, 0), 0);
        assert_ne!(flow_id(&[1, 2, 3], &[4, 5], 1, 0, 0), 0);
    }

    #[test]
    fn test_word_forms_agree_with_the_byte_form() {
        for i in 0..2000u32 {
            let src = (0x0a00_0000u32 + i * 7919).to_be_bytes();
            let dst = (0xc0a8_0000u32 ^ i.wrapping_mul(2_654_435_761)).to_be_bytes();
            let (sp, dp, proto) = (i as u16 ^ 0x1234, (i >> 3) as u16, [6u8, 17, 1][i as usize % 3]);
            let mut a = [0u8; 8];
            a[..4].copy_from_slice(&src);
            a[4..].copy_from_slice(&dst);
            let mut p = [0u8; 4];
            p[..2].copy_from_slice(&sp.to_be_bytes());
            p[2..].copy_from_slice(&dp.to_be_bytes());
            let ports = u32::from_le_bytes(p);
            assert_eq!(flow_id_v4(u64::from_le_bytes(a), ports, proto), flow_id(&src, &dst, proto, sp, dp));
            let mut s6 = [0u8; 16];
            let mut d6 = [0u8; 16];
            s6[..4].copy_from_slice(&src);
            s6[12..].copy_from_slice(&dst);
            d6[3..7].copy_from_slice(&src);
            let mut all = [0u8; 32];
            all[..16].copy_from_slice(&s6);
            all[16..].copy_from_slice(&d6);
            let w = |k: usize| u64::from_le_bytes(all[k * 8..k * 8 + 8].try_into().unwrap_or([0; 8]));
            assert_eq!(flow_id_v6([w(0), w(1), w(2), w(3)], ports, proto), flow_id(&s6, &d6, proto, sp, dp));
        }
    }

    const PINNED_V4: u8 = 224;
    const PINNED_V6: u8 = 159;
}
