//! TCP MSS clamping, in place, on an Ethernet frame a VM sent.
//!
//! Contract: [`clamp`] lowers the Maximum Segment Size option of a TCP SYN
//! (or SYN-ACK) carried in an untagged Ethernet frame to `max_v4` (IPv4) or
//! `max_v4 - 20` (IPv6, whose header is 20 bytes longer), and patches the TCP
//! checksum incrementally (RFC 1624, eqn. 3), so the frame stays valid
//! whatever checksum it carried. It reads only within `frame`, never panics,
//! and leaves every other frame untouched. Checks, in order, each returning
//! `None` (nothing changed):
//! 1. EtherType IPv4 or IPv6 (VM frames carry no VLAN tag: ingress drops them);
//! 2. IPv4: version 4, IHL >= 5 and within the frame, protocol TCP, not a
//!    fragment other than the first (offset 0); IPv6: next header TCP directly
//!    (a SYN behind extension headers is left alone);
//! 3. the TCP header within the frame, data offset >= 5 and its options
//!    within the frame; the SYN flag set;
//! 4. an MSS option (kind 2, length 4) found by walking the options (END
//!    stops, NOP is one byte, any other option needs a length >= 2 that stays
//!    within the options), with a value above the limit.

/// What [`clamp`] changed: the MSS before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clamped {
    /// The MSS the VM offered.
    pub was: u16,
    /// The MSS now in the option.
    pub now: u16,
}

const ETHER_HDR: usize = 14;
const TCP_SYN: u8 = 0x02;
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;

/// Clamp the MSS option of a TCP SYN in `frame` to `max_v4` (IPv4) or
/// `max_v4 - 20` (IPv6); see the module contract.
pub fn clamp(frame: &mut [u8], max_v4: u16) -> Option<Clamped> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let (tcp, max) = match ethertype {
        0x0800 => (ipv4_tcp(frame)?, max_v4),
        0x86dd => (ipv6_tcp(frame)?, max_v4.saturating_sub(20)),
        _ => return None,
    };
    let doff = usize::from(*frame.get(tcp + 12)? >> 4) * 4;
    if doff < 20 || frame.len() < tcp + doff || *frame.get(tcp + 13)? & TCP_SYN == 0 {
        return None;
    }
    let at = mss_option(frame.get(tcp + 20..tcp + doff)?)? + tcp + 20;
    let was = u16::from_be_bytes([frame[at], frame[at + 1]]);
    if was <= max {
        return None;
    }
    frame[at..at + 2].copy_from_slice(&max.to_be_bytes());
    let sum = u16::from_be_bytes([frame[tcp + 16], frame[tcp + 17]]);
    frame[tcp + 16..tcp + 18].copy_from_slice(&update(sum, was, max).to_be_bytes());
    Some(Clamped { was, now: max })
}

/// The TCP header's offset in an IPv4 frame, if it carries the start of a TCP segment.
fn ipv4_tcp(frame: &[u8]) -> Option<usize> {
    let ip = frame.get(ETHER_HDR..ETHER_HDR + 20)?;
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let first_fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
    (ip[0] >> 4 == 4 && ihl >= 20 && ip[9] == 6 && first_fragment && frame.len() >= ETHER_HDR + ihl).then_some(ETHER_HDR + ihl)
}

/// The TCP header's offset in an IPv6 frame whose next header is TCP.
fn ipv6_tcp(frame: &[u8]) -> Option<usize> {
    let ip = frame.get(ETHER_HDR..ETHER_HDR + 40)?;
    (ip[0] >> 4 == 6 && ip[6] == 6).then_some(ETHER_HDR + 40)
}

/// The offset of the MSS value within `options`, if a well-formed MSS option is there.
fn mss_option(options: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(&kind) = options.get(i) {
        match kind {
            OPT_END => return None,
            OPT_NOP => i += 1,
            _ => {
                let len = usize::from(*options.get(i + 1)?);
                if len < 2 || i + len > options.len() {
                    return None;
                }
                if kind == OPT_MSS && len == 4 {
                    return Some(i + 2);
                }
                i += len;
            }
        }
    }
    None
}

/// RFC 1624 eqn. 3: the checksum `sum` after one 16-bit word changed from `old` to `new`.
fn update(sum: u16, old: u16, new: u16) -> u16 {
    let s = u32::from(!sum) + u32::from(!old) + u32::from(new);
    let s = (s & 0xffff) + (s >> 16);
    !(((s & 0xffff) + (s >> 16)) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum;

    /// An Ethernet + IPv4 + TCP SYN with `options`, its TCP checksum correct.
    fn syn_v4(options: &[u8], flags: u8) -> Vec<u8> {
        let tcp_len = 20 + options.len();
        let mut f = vec![0u8; 14 + 20 + tcp_len];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
        ip[6] = 0x40;
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 0, 5]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 7]);
        let t = 34;
        f[t..t + 2].copy_from_slice(&40000u16.to_be_bytes());
        f[t + 2..t + 4].copy_from_slice(&5201u16.to_be_bytes());
        f[t + 12] = ((tcp_len / 4) as u8) << 4;
        f[t + 13] = flags;
        f[t + 20..].copy_from_slice(options);
        let sum = tcp_checksum_v4(&f);
        f[t + 16..t + 18].copy_from_slice(&sum.to_be_bytes());
        f
    }

    fn tcp_checksum_v4(f: &[u8]) -> u16 {
        let t = 34;
        let mut seg = f[t..].to_vec();
        seg[16] = 0;
        seg[17] = 0;
        let src = crate::Ipv4Address::new(f[26], f[27], f[28], f[29]);
        let dst = crate::Ipv4Address::new(f[30], f[31], f[32], f[33]);
        !checksum::combine(&[checksum::pseudo_header_v4(&src, &dst, crate::IpProtocol::Tcp, seg.len() as u16), checksum::data(&seg)])
    }

    const LINUX_SYN_OPTIONS: [u8; 20] = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];

    #[test]
    fn a_syn_above_the_limit_is_clamped_and_its_checksum_stays_right() {
        let mut f = syn_v4(&LINUX_SYN_OPTIONS, TCP_SYN);
        assert_eq!(clamp(&mut f, 1418), Some(Clamped { was: 1460, now: 1418 }));
        assert_eq!(u16::from_be_bytes([f[56], f[57]]), 1418);
        assert_eq!(u16::from_be_bytes([f[50], f[51]]), tcp_checksum_v4(&f), "incremental update equals a full recompute");
        assert_eq!(clamp(&mut f, 1418), None, "already within the limit");
        let mut syn_ack = syn_v4(&LINUX_SYN_OPTIONS, TCP_SYN | 0x10);
        assert!(clamp(&mut syn_ack, 1418).is_some(), "SYN-ACK too");
    }

    #[test]
    fn other_frames_are_untouched() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (syn_v4(&LINUX_SYN_OPTIONS, 0x10), "not a SYN"),
            (syn_v4(&[1, 1, 1, 1], TCP_SYN), "no MSS option"),
            (syn_v4(&[0, 0, 0, 0, 2, 4, 5, 0xb4], TCP_SYN), "MSS after END"),
            (syn_v4(&[8, 0, 0, 0, 2, 4, 5, 0xb4], TCP_SYN), "an option of length 0"),
            (syn_v4(&[8, 40, 0, 0, 2, 4, 5, 0xb4], TCP_SYN), "an option longer than the options"),
            (syn_v4(&[2, 3, 5, 0xb4], TCP_SYN), "MSS with a bad length"),
            (syn_v4(&[1, 1, 2, 4], TCP_SYN), "MSS cut by the end of the options"),
        ];
        for (mut f, why) in cases {
            let before = f.clone();
            assert_eq!(clamp(&mut f, 1000), None, "{why}");
            assert_eq!(f, before, "{why}");
        }
        let mut frag = syn_v4(&LINUX_SYN_OPTIONS, TCP_SYN);
        frag[20] = 0x00;
        frag[21] = 0x10;
        assert_eq!(clamp(&mut frag, 1000), None, "a non-first fragment");
        let mut udp = syn_v4(&LINUX_SYN_OPTIONS, TCP_SYN);
        udp[23] = 17;
        assert_eq!(clamp(&mut udp, 1000), None, "UDP");
        let mut bad_ihl = syn_v4(&LINUX_SYN_OPTIONS, TCP_SYN);
        bad_ihl[14] = 0x4f;
        assert_eq!(clamp(&mut bad_ihl, 1000), None, "IHL 15 beyond the TCP header");
        let mut bad_doff = syn_v4(&LINUX_SYN_OPTIONS, TCP_SYN);
        bad_doff[46] = 0xf0;
        assert_eq!(clamp(&mut bad_doff, 1000), None, "data offset beyond the frame");
    }

    #[test]
    fn ipv6_clamps_twenty_less() {
        let v4 = syn_v4(&LINUX_SYN_OPTIONS, TCP_SYN);
        let mut f = vec![0u8; 14 + 40];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        f[20] = 6;
        f.extend_from_slice(&v4[34..]);
        assert_eq!(clamp(&mut f, 1418), Some(Clamped { was: 1460, now: 1398 }));
    }

    #[test]
    fn every_truncation_and_every_byte_value_is_safe() {
        let f = syn_v4(&LINUX_SYN_OPTIONS, TCP_SYN);
        for n in 0..f.len() {
            let mut g = f[..n].to_vec();
            let _ = clamp(&mut g, 1000);
        }
        for i in 0..f.len() {
            for v in [0u8, 1, 2, 4, 0x0f, 0x45, 0xff] {
                let mut g = f.clone();
                g[i] = v;
                let _ = clamp(&mut g, 1000);
            }
        }
    }

    #[test]
    fn the_incremental_update_matches_rfc_1624() {
        // RFC 1624 §4's example: HC 0xdd2f, m 0x5555 -> m' 0x3285 gives HC' 0x0000.
        assert_eq!(update(0xdd2f, 0x5555, 0x3285), 0x0000);
    }
}
