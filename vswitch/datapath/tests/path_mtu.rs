//! Path MTU: a frame from a VM too big for the uplink MTU once encapsulated
//! comes back to the VM as an ICMP "fragmentation needed" (IPv4, DF) or
//! ICMPv6 "packet too big" from its subnet's gateway; everything else too
//! big is a counted drop. Every case runs with the flow cache off and on
//! (the size check is per packet, never cached) and checks that the
//! counters reconcile.
#![allow(clippy::unwrap_used)]

use hnv_datapath::testkit::{self, mac, Mac};
use hnv_datapath::{standard_pipeline, DatapathStats, DropReason, HnvSwitch, PolicyStore, Totals};
use hnv_policy::example::BLUE_RED_HOST1;
use hnv_wire::{Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, Ipv4Packet, Ipv6Packet};
use pmd::{Batch, HeapBuf, PacketBuf, Processor, TxStage};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

const UPLINK: u16 = 0;
const BLUE: u16 = 1;
const B1: &str = "00:15:5d:01:00:05";
const B2: &str = "00:15:5d:01:00:07";
const GW5001: &str = "02:48:4e:00:13:89";
/// The example's uplink MTU is the default, 1500: the largest inner frame
/// NVGRE over IPv4 carries is 1500 − 20 − 8 = 1472, an IP MTU of 1458.
const MAX_FRAME: usize = 1472;
const NVGRE_MTU: u16 = 1458;

struct Host {
    sw: HnvSwitch,
    stats: Arc<DatapathStats>,
}

impl Host {
    fn new(text: &str, cache: bool) -> Host {
        let store = Arc::new(PolicyStore::new(hnv_policy::parse(text, "pmtu").unwrap()));
        let stats = Arc::new(DatapathStats::default());
        let sw = HnvSwitch::new(store, standard_pipeline(), stats.clone(), 0).with_cache(if cache { 1024 } else { 0 });
        Host { sw, stats }
    }

    fn run_at(&mut self, port: u16, frames: &[Vec<u8>], now: u64) -> Vec<(u16, Vec<u8>)> {
        let mut out = TxStage::new(8);
        for chunk in frames.chunks(32) {
            let mut b: Batch<HeapBuf> = chunk.iter().map(|f| HeapBuf::from_slice(f)).collect();
            self.sw.process(port, &mut b, &mut out, now);
        }
        (0..out.ports()).flat_map(|p| out.pending_mut(p).unwrap().drain(..).map(move |f| (p as u16, f.data().to_vec())).collect::<Vec<_>>()).collect()
    }

    fn run(&mut self, port: u16, frames: &[Vec<u8>]) -> Vec<(u16, Vec<u8>)> {
        self.run_at(port, frames, 1)
    }

    fn totals(&self) -> Totals {
        let t = Totals::sum([&*self.stats]);
        assert!(t.reconciles(), "rx + replicas != tx + drops: {t:?}");
        t
    }
}

fn both(mut f: impl FnMut(bool)) {
    for cache in [false, true] {
        f(cache);
    }
}

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse().unwrap())
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse().unwrap())
}

/// A UDP frame of `len` bytes from Blue1 (10.0.0.5) to `dst` at MAC `dst_mac`, DF set.
fn udp(dst_mac: Mac, dst: IpAddr, len: usize) -> Vec<u8> {
    let src = if dst.is_ipv6() { v6("fd00::5") } else { v4("10.0.0.5") };
    testkit::udp(mac(B1), dst_mac, src, dst, 4000, 5000, len)
}

fn clear_df(f: &mut [u8]) {
    f[20] &= !0x40;
    f[24..26].fill(0);
    let c = !hnv_wire::checksum::data(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Check that `got` is a "fragmentation needed" for `orig` from `gw` to Blue1, and return its MTU.
fn frag_needed(got: &[u8], orig: &[u8], gw: &str) -> u16 {
    assert_eq!((&got[0..6], &got[6..12]), (&mac(B1)[..], &mac(GW5001)[..]), "gateway MAC to the VM's MAC");
    let ip = Ipv4Packet::new_checked(&got[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.dst_addr()), (gw.parse::<Ipv4Addr>().unwrap(), "10.0.0.5".parse::<Ipv4Addr>().unwrap()));
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    let Icmpv4Repr::DstUnreachable { reason: Icmpv4DstUnreachable::FragRequired, next_hop_mtu, data } = Icmpv4Repr::parse(&icmp).unwrap() else { panic!("not a fragmentation needed") };
    // The quote: the IP header as it was sent (TTL as received unless routed) + 8 bytes.
    assert_eq!(data.len(), 28);
    assert_eq!(&data[12..28], &orig[26..42], "addresses and the UDP header are quoted");
    next_hop_mtu
}

#[test]
fn a_df_packet_one_byte_over_the_limit_gets_fragmentation_needed_and_one_at_it_passes() {
    both(|cache| {
        let mut h = Host::new(BLUE_RED_HOST1, cache);
        let at = udp(mac(B2), v4("10.0.0.7"), MAX_FRAME);
        let over = udp(mac(B2), v4("10.0.0.7"), MAX_FRAME + 1);
        // Small, big, small, big of one flow: the cached encapsulation checks each packet's size.
        let out = h.run(BLUE, &[at.clone(), over.clone(), at.clone(), over.clone()]);
        assert_eq!(out.len(), 4, "{cache}");
        let (sent, back): (Vec<_>, Vec<_>) = out.iter().partition(|(p, _)| *p == UPLINK);
        assert_eq!(sent.len(), 2);
        assert!(sent.iter().all(|(_, f)| f.len() == MAX_FRAME + 42), "at the limit: encapsulated to exactly the uplink MTU");
        assert_eq!(back.len(), 2);
        for (port, f) in &back {
            assert_eq!(*port, BLUE);
            assert_eq!(f.len(), 14 + 20 + 8 + 28);
            assert_eq!(frag_needed(f, &over, "10.0.0.1"), NVGRE_MTU);
        }
        let t = h.totals();
        assert_eq!((t.too_big_sent, t.encapsulated, t.tx, t.dropped), (2, 2, 4, 0));
    });
}

#[test]
fn without_df_too_big_is_a_counted_drop() {
    both(|cache| {
        let mut h = Host::new(BLUE_RED_HOST1, cache);
        let mut f = udp(mac(B2), v4("10.0.0.7"), 1600);
        clear_df(&mut f);
        assert!(h.run(BLUE, &[f.clone(), f]).is_empty());
        let t = h.totals();
        assert_eq!((t.drops_of(DropReason::EncapTooBig), t.too_big_sent), (2, 0));
    });
}

#[test]
fn a_routed_packet_is_answered_from_the_source_subnets_gateway() {
    both(|cache| {
        let mut h = Host::new(BLUE_RED_HOST1, cache);
        // Blue1 → Blue3 (10.0.1.9, VSID 5002 on host 2) through the distributed router.
        let f = udp(mac(GW5001), v4("10.0.1.9"), 1500);
        let out = h.run(BLUE, &[f.clone(), f.clone()]);
        assert_eq!(out.len(), 2);
        for (port, g) in &out {
            assert_eq!(*port, BLUE);
            assert_eq!(frag_needed(g, &f, "10.0.0.1"), NVGRE_MTU);
        }
        let t = h.totals();
        assert_eq!(t.too_big_sent, 2);
        assert_eq!(t.vsids[0].1 + t.vsids[1].1 + t.vsids[2].1, 2, "counted once as sent");
    });
}

fn with_v6(gateway_v6: bool) -> String {
    let gw = if gateway_v6 { "\ngateway_v6 = \"fd00::1\"" } else { "" };
    BLUE_RED_HOST1.replacen("addresses = [\"10.0.0.5\"]", "addresses = [\"10.0.0.5\", \"fd00::5\"]", 1).replacen(
        "prefixes = [\"10.0.0.0/24\"]\ngateway_v4 = \"10.0.0.1\"",
        &format!("prefixes = [\"10.0.0.0/24\", \"fd00::/64\"]\ngateway_v4 = \"10.0.0.1\"{gw}"),
        1,
    ) + "\n[[lookup]]\nca = \"fd00::5\"\nvsid = 5001\nmac = \"00:15:5d:01:00:05\"\npa = \"192.168.4.11\"\n\n[[lookup]]\nca = \"fd00::7\"\nvsid = 5001\nmac = \"00:15:5d:01:00:07\"\npa = \"192.168.4.22\"\n"
}

#[test]
fn ipv6_gets_packet_too_big_from_the_gateway_or_its_link_local_address() {
    for (gateway_v6, src) in [(true, "fd00::1"), (false, "fe80::48:4eff:fe00:1389")] {
        both(|cache| {
            let mut h = Host::new(&with_v6(gateway_v6), cache);
            let at = udp(mac(B2), v6("fd00::7"), MAX_FRAME);
            let over = udp(mac(B2), v6("fd00::7"), 1600);
            let out = h.run(BLUE, &[at.clone(), over.clone()]);
            assert_eq!(out.len(), 2);
            assert_eq!((out[0].0, out[0].1.len()), (UPLINK, MAX_FRAME + 42));
            let (port, g) = &out[1];
            assert_eq!((*port, g.len()), (BLUE, 14 + 1280), "the error fills the IPv6 minimum MTU");
            assert_eq!((&g[0..6], &g[6..12]), (&mac(B1)[..], &mac(GW5001)[..]));
            let ip = Ipv6Packet::new_checked(&g[14..]).unwrap();
            assert_eq!((ip.src_addr(), ip.dst_addr()), (src.parse::<Ipv6Addr>().unwrap(), "fd00::5".parse::<Ipv6Addr>().unwrap()));
            let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
            assert!(icmp.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
            assert_eq!(Icmpv6Repr::parse(&ip.src_addr(), &ip.dst_addr(), &icmp).unwrap(), Icmpv6Repr::PktTooBig { mtu: u32::from(NVGRE_MTU), data: &over[14..14 + 1232] });
            assert_eq!(h.totals().too_big_sent, 1);
        });
    }
}

#[test]
fn vxlan_reports_its_own_overhead() {
    let p = BLUE_RED_HOST1.replacen("vsid = 5001\nrouting_domain", "vsid = 5001\nencap = \"vxlan\"\nrouting_domain", 1);
    both(|cache| {
        let mut h = Host::new(&p, cache);
        let ok = udp(mac(B2), v4("10.0.0.7"), 1500 - 36);
        let over = udp(mac(B2), v4("10.0.0.7"), 1500 - 36 + 1);
        let out = h.run(BLUE, &[ok, over.clone()]);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].0, out[0].1.len()), (UPLINK, 1500 + 14));
        assert_eq!(frag_needed(&out[1].1, &over, "10.0.0.1"), 1450, "uplink MTU − 50");
    });
}

#[test]
fn the_errors_are_rate_limited_per_worker_and_the_excess_counted() {
    both(|cache| {
        let mut h = Host::new(BLUE_RED_HOST1, cache);
        let f = udp(mac(B2), v4("10.0.0.7"), 1600);
        let burst = hnv_datapath::too_big::DEFAULT_BURST as usize;
        let out = h.run_at(BLUE, &vec![f.clone(); burst + 36], 5);
        assert_eq!(out.len(), burst);
        let t = h.totals();
        assert_eq!((t.too_big_sent, t.drops_of(DropReason::TooBigRateLimited)), (burst as u64, 36));
        // One interval later, one more.
        let out = h.run_at(BLUE, &[f.clone(), f], 5 + hnv_datapath::too_big::DEFAULT_INTERVAL);
        assert_eq!(out.len(), 1);
        assert_eq!(h.totals().drops_of(DropReason::TooBigRateLimited), 37);
    });
}

#[test]
fn hostile_big_frames_get_no_error() {
    both(|cache| {
        let mut h = Host::new(BLUE_RED_HOST1, cache);
        // A VM sending big ICMP errors itself (destination unreachable, DF set): no error about an error.
        let mut err = testkit::icmp_echo(mac(B1), mac(B2), v4("10.0.0.5"), v4("10.0.0.7"), 1, 1, 1600);
        err[34] = 3;
        err[35] = 1;
        // A non-first fragment with DF set (no valid sender makes one).
        let mut frag = udp(mac(B2), v4("10.0.0.7"), 1600);
        frag[20] = 0x40;
        frag[21] = 0x10;
        frag[24..26].fill(0);
        let c = !hnv_wire::checksum::data(&frag[14..34]);
        frag[24..26].copy_from_slice(&c.to_be_bytes());
        // A bogus IHL (3 words, shorter than the fixed header) on a big frame.
        let mut ihl = udp(mac(B2), v4("10.0.0.7"), 1600);
        ihl[14] = 0x43;
        // An IP length field longer than the frame.
        let mut long = udp(mac(B2), v4("10.0.0.7"), 1600);
        long[16..18].copy_from_slice(&4000u16.to_be_bytes());
        let big_echo = testkit::icmp_echo(mac(B1), mac(B2), v4("10.0.0.5"), v4("10.0.0.7"), 1, 1, 1600);
        let out = h.run(BLUE, &[err, frag, ihl, long, big_echo.clone()]);
        // Only the echo request is answered.
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(frag_needed(&out[0].1, &big_echo, "10.0.0.1"), NVGRE_MTU);
        let t = h.totals();
        assert_eq!(t.too_big_sent, 1);
        assert_eq!(t.dropped, 4, "{:?}", t.drops);
        assert!(t.drops_of(DropReason::EncapTooBig) >= 2, "{:?}", t.drops);
        // IHL 15 (40 bytes of garbage options): the error quotes the VM's own 60-byte header + 8 bytes, nothing more.
        let mut opts = udp(mac(B2), v4("10.0.0.7"), 1600);
        opts[14] = 0x4f;
        let out = h.run(BLUE, &[opts.clone()]);
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0].1[42..], &opts[14..14 + 68]);
        h.totals();
    });
}
