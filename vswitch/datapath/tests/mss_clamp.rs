//! TCP MSS clamping (`[host] mss_clamp`): a SYN a VM sends through the fabric
//! leaves with its MSS option lowered to what fits the uplink MTU once
//! encapsulated (or to the configured maximum), its TCP checksum still right;
//! other segments, and every SYN with clamping off, leave unchanged. Each case
//! runs with the flow cache off and on, and the counters reconcile.
#![allow(clippy::unwrap_used)]

use hnv_datapath::testkit::{self, mac};
use hnv_datapath::{standard_pipeline, DatapathStats, HnvSwitch, PolicyStore, Totals};
use hnv_policy::example::BLUE_RED_HOST1;
use hnv_wire::checksum;
use pmd::{Batch, HeapBuf, PacketBuf, Processor, TxStage};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

const UPLINK: u16 = 0;
const BLUE: u16 = 1;
/// NVGRE over IPv4 (42 bytes) at the example's uplink MTU 1500.
const OUTER: usize = 42;
/// 1500 − 20 − 8 − 14 − 20 − 20: what fits the uplink MTU.
const FITS: u16 = 1418;

/// A TCP segment from Blue1 (10.0.0.5) to Blue2 (10.0.0.7, on host 2): a SYN
/// offering MSS 1460 (`flags` 0x02), or a 60-byte segment with `flags`.
fn segment(flags: u8) -> Vec<u8> {
    let (b1, b2) = (mac("00:15:5d:01:00:05"), mac("00:15:5d:01:00:07"));
    let (ca5, ca7) = (Ipv4Addr::new(10, 0, 0, 5), Ipv4Addr::new(10, 0, 0, 7));
    if flags == 0x02 {
        testkit::tcp_syn_mss(b1, b2, ca5, ca7, 40000, 5201, 1460)
    } else {
        testkit::tcp(b1, b2, IpAddr::V4(ca5), IpAddr::V4(ca7), 40000, 5201, flags, 60)
    }
}

/// The TCP checksum `f` (an untagged IPv4 frame with a 20-byte header) should carry.
fn tcp_sum(f: &[u8]) -> u16 {
    let mut seg = f[34..].to_vec();
    seg[16] = 0;
    seg[17] = 0;
    let src = hnv_wire::Ipv4Address::new(f[26], f[27], f[28], f[29]);
    let dst = hnv_wire::Ipv4Address::new(f[30], f[31], f[32], f[33]);
    !checksum::combine(&[checksum::pseudo_header_v4(&src, &dst, hnv_wire::IpProtocol::Tcp, seg.len() as u16), checksum::data(&seg)])
}

/// Host 1 of the example with `host_line` added to `[host]`; send `frames` from
/// Blue1; return the inner frames that left by the uplink and the totals.
fn send(host_line: &str, frames: &[Vec<u8>], cache: bool) -> (Vec<Vec<u8>>, Totals) {
    let text = BLUE_RED_HOST1.replacen("[host]\n", &format!("[host]\n{host_line}\n"), 1);
    let store = Arc::new(PolicyStore::new(hnv_policy::parse(&text, "mss").unwrap()));
    let stats = Arc::new(DatapathStats::default());
    let mut sw = HnvSwitch::new(store, standard_pipeline(), stats.clone(), 0).with_cache(if cache { 1024 } else { 0 });
    let mut out = TxStage::new(8);
    for f in frames {
        let mut b: Batch<HeapBuf> = std::iter::once(HeapBuf::from_slice(f)).collect();
        sw.process(BLUE, &mut b, &mut out, 1);
    }
    let inner = out.pending_mut(usize::from(UPLINK)).unwrap().drain(..).map(|p| p.data()[OUTER..].to_vec()).collect();
    let t = Totals::sum([&*stats]);
    assert!(t.reconciles(), "{t:?}");
    (inner, t)
}

fn mss(inner: &[u8]) -> u16 {
    u16::from_be_bytes([inner[56], inner[57]])
}

#[test]
fn syns_are_clamped_to_what_fits_and_their_checksums_stay_right() {
    for cache in [false, true] {
        let frames = [segment(0x02), segment(0x10), segment(0x02)];
        let (inner, t) = send("mss_clamp = true", &frames, cache);
        assert_eq!(inner.len(), 3, "cache {cache}");
        assert_eq!((mss(&inner[0]), mss(&inner[2])), (FITS, FITS), "cache {cache}");
        for f in &inner {
            assert_eq!(u16::from_be_bytes([f[50], f[51]]), tcp_sum(f), "the TCP checksum is right (cache {cache})");
        }
        assert_eq!(inner[1], frames[1], "a non-SYN segment is untouched (cache {cache})");
        assert_eq!((t.mss_clamped, t.encapsulated), (2, 3), "cache {cache}");
    }
}

#[test]
fn a_configured_maximum_below_what_fits_wins_and_above_it_does_not() {
    for cache in [false, true] {
        let (inner, t) = send("mss_clamp = 1300", &[segment(0x02)], cache);
        assert_eq!((mss(&inner[0]), t.mss_clamped), (1300, 1), "cache {cache}");
        let (inner, _) = send("mss_clamp = 8000", &[segment(0x02)], cache);
        assert_eq!(mss(&inner[0]), FITS, "never above what fits (cache {cache})");
    }
}

#[test]
fn off_by_default_and_when_false() {
    for line in ["", "mss_clamp = false"] {
        let syn = segment(0x02);
        let (inner, t) = send(line, std::slice::from_ref(&syn), true);
        assert_eq!((inner[0].as_slice(), t.mss_clamped), (syn.as_slice(), 0), "{line:?}");
    }
}
