//! The NVGRE FlowID: 8 bits of per-flow entropy from the inner 5-tuple.
//!
//! RFC 7637 §4: the FlowID (the low 8 bits of the GRE key) gives transit
//! devices per-flow entropy for ECMP; they must not change it. An
//! encapsulator that generates none must set it to 0, so 0 means "no
//! entropy". [`flow_id`] therefore never returns 0: it maps a 32-bit hash
//! onto `1..=255`.
//!
//! The hash is a multiplicative word mix with a murmur3 finaliser. It is
//! stable: the same 5-tuple gives the same FlowID in every process, on every
//! host and in every version of this crate (changing it would reshuffle
//! ECMP paths, so treat it as part of the wire format). It is not keyed and
//! not meant to resist an adversary choosing flows. It never panics and
//! never allocates.

const SEED: u32 = 0x6558_2f00;
const MUL: u32 = 0x9e37_79b1;

#[inline]
const fn mix(h: u32, word: u32) -> u32 {
    (h ^ word).wrapping_mul(MUL).rotate_left(15)
}

#[inline]
fn mix_bytes(mut h: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(4);
    for c in &mut chunks {
        h = mix(h, u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 4];
        w[..rest.len()].copy_from_slice(rest);
        h = mix(h, u32::from_be_bytes(w));
    }
    h
}

#[inline]
const fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Return the FlowID (`1..=255`) for an inner flow.
///
/// `src` and `dst` are the inner IP addresses as bytes (4 for IPv4, 16 for
/// IPv6); `proto` the IP protocol; `sport`/`dport` the ports (0 for
/// protocols without ports). Direction matters: A→B and B→A may differ.
pub fn flow_id(src: &[u8], dst: &[u8], proto: u8, sport: u16, dport: u16) -> u8 {
    let mut h = mix(SEED, ((src.len() as u32) << 8) | u32::from(proto));
    h = mix_bytes(h, src);
    h = mix_bytes(h, dst);
    h = mix(h, (u32::from(sport) << 16) | u32::from(dport));
    (fmix32(h) % 255) as u8 + 1
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

    const PINNED_V4: u8 = 157;
    const PINNED_V6: u8 = 246;
}
