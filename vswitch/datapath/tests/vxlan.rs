//! VXLAN (RFC 7348) as a subnet's encapsulation: hnv.md §2's worked example
//! with Blue on VXLAN and Red on NVGRE, every byte of every frame, through
//! the cache (each exchange runs twice: slow path, then cached) and without;
//! each hostile VXLAN input dropped under its named reason; a subnet switched
//! from NVGRE to VXLAN changes only its own cached decisions, and a host
//! still on NVGRE accepts VXLAN (and the reverse) while the change spreads.
#![allow(clippy::unwrap_used, clippy::cloned_ref_to_slice_refs)]

use hnv_datapath::testkit::{self, mac, Mac};
use hnv_datapath::{standard_pipeline, DatapathStats, DropReason, HnvSwitch, PolicyStore, Totals};
use hnv_policy::example::{BLUE_RED_HOST1, BLUE_RED_HOST2};
use pmd::{Batch, HeapBuf, PacketBuf, Processor, TxStage};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

const UPLINK: u16 = 0;
const BLUE: u16 = 1;
const RED: u16 = 2;
const B1: &str = "00:15:5d:01:00:05";
const B2: &str = "00:15:5d:01:00:07";
const R1: &str = "00:15:5d:02:00:05";
const R2: &str = "00:15:5d:02:00:07";
const PA1_MAC: &str = "02:00:c0:a8:04:0b";
const PA2_MAC: &str = "02:00:c0:a8:04:16";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// `policy` with subnet 5001 (Blue) on VXLAN.
fn blue_vxlan(policy: &str) -> String {
    let p = policy.replacen("vsid = 5001\nrouting_domain", "vsid = 5001\nencap = \"vxlan\"\nrouting_domain", 1);
    assert_ne!(p, policy);
    p
}

struct Host {
    sw: HnvSwitch,
    store: Arc<PolicyStore>,
    stats: Arc<DatapathStats>,
}

fn host(policy: &str) -> Host {
    let store = Arc::new(PolicyStore::new(hnv_policy::parse(policy, "example").unwrap()));
    let stats = Arc::new(DatapathStats::default());
    Host { sw: HnvSwitch::new(store.clone(), standard_pipeline(), stats.clone(), 0), store, stats }
}

impl Host {
    fn run(&mut self, port: u16, frames: &[Vec<u8>]) -> Vec<(u16, Vec<u8>)> {
        let mut out = TxStage::new(8);
        let mut b: Batch<HeapBuf> = frames.iter().map(|f| HeapBuf::from_slice(f)).collect();
        self.sw.process(port, &mut b, &mut out, 0);
        let mut res = Vec::new();
        for p in 0..out.ports() {
            for pkt in out.pending_mut(p).unwrap().drain(..) {
                res.push((p as u16, pkt.data().to_vec()));
            }
        }
        res
    }

    /// Run the same frame twice (a miss, then a cache hit); both must give the same output.
    fn run2(&mut self, port: u16, frame: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let a = self.run(port, &[frame.to_vec()]);
        let b = self.run(port, &[frame.to_vec()]);
        assert_eq!(a, b, "the cached decision differs from the slow path's");
        a
    }

    fn totals(&self) -> Totals {
        Totals::sum([&*self.stats])
    }

    fn drops(&self, r: DropReason) -> u64 {
        self.totals().drops.iter().find(|(d, _)| *d == r).map_or(0, |(_, n)| *n)
    }

    fn hits(&self) -> u64 {
        self.sw.cache().map_or(0, |c| c.stats().hits)
    }
}

fn udp(src: Mac, dst: Mac, s: &str, d: &str, sport: u16) -> Vec<u8> {
    testkit::udp(src, dst, IpAddr::V4(ip(s)), IpAddr::V4(ip(d)), sport, 9, 60)
}

fn fid(f: &[u8]) -> u8 {
    let sport = u16::from_be_bytes([f[34], f[35]]);
    let dport = u16::from_be_bytes([f[36], f[37]]);
    testkit::flow_id_of(IpAddr::V4(Ipv4Addr::new(f[26], f[27], f[28], f[29])), IpAddr::V4(Ipv4Addr::new(f[30], f[31], f[32], f[33])), f[23], sport, dport)
}

fn vxlan_1_to_2(vni: u32, inner: &[u8]) -> Vec<u8> {
    testkit::vxlan(mac(PA2_MAC), mac(PA1_MAC), ip("192.168.4.11"), ip("192.168.4.22"), vni, fid(inner), 4789, inner)
}

#[test]
fn blue_on_vxlan_and_red_on_nvgre_with_identical_addresses_stay_apart() {
    let mut h1 = host(&blue_vxlan(BLUE_RED_HOST1));
    let mut h2 = host(&blue_vxlan(BLUE_RED_HOST2));
    let blue = udp(mac(B1), mac(B2), "10.0.0.5", "10.0.0.7", 1000);
    let red = udp(mac(R1), mac(R2), "10.0.0.5", "10.0.0.7", 1000);

    let want_b = vxlan_1_to_2(5001, &blue);
    let want_r = testkit::nvgre(mac(PA2_MAC), mac(PA1_MAC), ip("192.168.4.11"), ip("192.168.4.22"), 6001, fid(&red), &red);
    assert_eq!(h1.run2(BLUE, &blue), vec![(UPLINK, want_b.clone())]);
    assert_eq!(h1.run2(RED, &red), vec![(UPLINK, want_r.clone())]);
    assert_eq!(want_b.len(), blue.len() + 50);
    assert_eq!(&want_b[36..38], &[0x12, 0xb5], "UDP destination port 4789");
    assert_eq!(&want_b[40..42], &[0, 0], "UDP checksum 0 over IPv4");
    assert_eq!(u16::from_be_bytes([want_b[34], want_b[35]]), hnv_wire::vxlan::src_port(fid(&blue)), "the source port carries the flow's entropy");

    assert_eq!(h2.run2(UPLINK, &want_b), vec![(BLUE, blue.clone())]);
    assert_eq!(h2.run2(UPLINK, &want_r), vec![(RED, red.clone())]);

    // Another connection between the same VMs: another source port.
    let blue2 = udp(mac(B1), mac(B2), "10.0.0.5", "10.0.0.7", 1001);
    assert_eq!(h1.run2(BLUE, &blue2), vec![(UPLINK, vxlan_1_to_2(5001, &blue2))]);

    // And back, host 2 to host 1.
    let back = udp(mac(B2), mac(B1), "10.0.0.7", "10.0.0.5", 2000);
    let enc = h2.run2(BLUE, &back);
    let want = testkit::vxlan(mac(PA1_MAC), mac(PA2_MAC), ip("192.168.4.22"), ip("192.168.4.11"), 5001, fid(&back), 4789, &back);
    assert_eq!(enc, vec![(UPLINK, want.clone())]);
    assert_eq!(h1.run2(UPLINK, &want), vec![(BLUE, back)]);

    // A whole batch decapsulated from the cache.
    let batch: Vec<Vec<u8>> = (0..32).map(|i| vxlan_1_to_2(5001, &udp(mac(B1), mac(B2), "10.0.0.5", "10.0.0.7", 3000 + i))).collect();
    let out = h2.run(UPLINK, &batch);
    assert_eq!(out.len(), 32);
    assert!(out.iter().enumerate().all(|(i, (p, f))| *p == BLUE && *f == udp(mac(B1), mac(B2), "10.0.0.5", "10.0.0.7", 3000 + i as u16)));

    for h in [&h1, &h2] {
        let t = h.totals();
        assert!(t.reconciles(), "{t:?}");
        assert_eq!(t.total_drops(), 0, "{t:?}");
        assert!(h.hits() > 0);
    }
}

#[test]
fn routed_traffic_takes_the_destination_subnets_encapsulation() {
    // Blue1 (5001, VXLAN) to Blue3 (5002, NVGRE, on host 2) through the distributed router.
    let mut h1 = host(&blue_vxlan(BLUE_RED_HOST1));
    let to_gw = udp(mac(B1), mac("02:48:4e:00:13:89"), "10.0.0.5", "10.0.1.9", 1000);
    let out = h1.run2(BLUE, &to_gw);
    assert_eq!(out.len(), 1);
    let f = &out[0].1;
    assert_eq!(f[23], 47, "5002 is NVGRE");
    assert_eq!(&f[38..41], &[0x00, 0x13, 0x8a], "key = 5002");

    // Blue3 (5002, NVGRE, host 2) to Blue1 (5001, VXLAN, host 1): host 2 routes into 5001 and sends VXLAN,
    // host 1 accepts the routed source (its record is in 5002 of the same routing domain).
    let mut h2 = host(&blue_vxlan(BLUE_RED_HOST2));
    let back = udp(mac("00:15:5d:01:01:09"), mac("02:48:4e:00:13:8a"), "10.0.1.9", "10.0.0.5", 2000);
    let out = h2.run2(3, &back);
    assert_eq!(out.len(), 1, "{:?}", h2.totals().drops);
    let f = out[0].1.clone();
    assert_eq!((f[23], &f[36..38], &f[46..49]), (17, &[0x12, 0xb5][..], &[0x00, 0x13, 0x89][..]), "VXLAN, VNI 5001");
    let delivered = h1.run2(UPLINK, &f);
    assert_eq!(delivered.len(), 1, "{:?}", h1.totals().drops);
    assert_eq!(delivered[0].0, BLUE);
    assert_eq!(&delivered[0].1[6..12], &mac("02:48:4e:00:13:89"), "routed: source = 5001's gateway MAC");
    for h in [&h1, &h2] {
        assert_eq!(h.totals().total_drops(), 0, "{:?}", h.totals().drops);
    }
}

#[test]
fn arp_in_a_vxlan_subnet_is_answered_from_policy_and_never_leaves_the_host() {
    let mut h1 = host(&blue_vxlan(BLUE_RED_HOST1));
    let req = testkit::arp_request(mac(B1), ip("10.0.0.5"), ip("10.0.0.7"));
    assert_eq!(h1.run2(BLUE, &req), vec![(BLUE, testkit::arp_reply(mac(B2), ip("10.0.0.7"), mac(B1), ip("10.0.0.5")))]);
}

#[test]
fn hostile_vxlan_is_dropped_under_its_own_reason() {
    let mut h2 = host(&blue_vxlan(BLUE_RED_HOST2));
    let blue = udp(mac(B1), mac(B2), "10.0.0.5", "10.0.0.7", 1000);
    let good = vxlan_1_to_2(5001, &blue);
    assert_eq!(h2.run2(UPLINK, &good).len(), 1);

    let mut cases: Vec<(DropReason, Vec<u8>)> = Vec::new();
    for flags in [0x00u8, 0x0c, 0x88] {
        let mut f = good.clone();
        f[42] = flags;
        cases.push((DropReason::VxlanFlags, f));
    }
    cases.push((DropReason::VsidReserved, vxlan_1_to_2(0xfff, &blue)));
    cases.push((DropReason::VsidUnknown, vxlan_1_to_2(7777, &blue)));
    cases.push((DropReason::UplinkNotForUs, testkit::vxlan(mac(PA2_MAC), mac(PA1_MAC), ip("192.168.4.11"), ip("192.168.4.22"), 5001, 1, 4790, &blue)));
    cases.push((DropReason::UplinkNotForUs, testkit::vxlan(mac(PA2_MAC), mac(PA1_MAC), ip("192.168.4.11"), ip("192.168.4.99"), 5001, 1, 4789, &blue)));
    cases.push((DropReason::OuterSrcLocal, testkit::vxlan(mac(PA2_MAC), mac(PA1_MAC), ip("192.168.4.22"), ip("192.168.4.22"), 5001, 1, 4789, &blue)));
    let mut f = good.clone();
    f[1] ^= 1;
    cases.push((DropReason::OuterDstMac, f));
    let mut f = good.clone();
    f[24] ^= 1;
    cases.push((DropReason::OuterChecksum, f));
    // Blue1's CA from another PA: its record names 192.168.4.11.
    cases.push((DropReason::PaCaMismatch, testkit::vxlan(mac(PA2_MAC), mac(PA1_MAC), ip("192.168.4.33"), ip("192.168.4.22"), 5001, 1, 4789, &blue)));
    let tagged = {
        let mut t = blue[..12].to_vec();
        t.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        t.extend_from_slice(&blue[12..]);
        t
    };
    cases.push((DropReason::InnerVlanTagged, vxlan_1_to_2(5001, &tagged)));
    let unknown = udp(mac(B1), mac(B2), "10.0.0.66", "10.0.0.7", 1000);
    cases.push((DropReason::UnknownSourceCa, vxlan_1_to_2(5001, &unknown)));
    cases.push((DropReason::Malformed, testkit::vxlan(mac(PA2_MAC), mac(PA1_MAC), ip("192.168.4.11"), ip("192.168.4.22"), 5001, 1, 4789, &blue[..10])));

    for (reason, frame) in cases {
        let before = h2.drops(reason);
        assert!(h2.run2(UPLINK, &frame).is_empty(), "{reason}");
        assert_eq!(h2.drops(reason), before + 2, "{reason}");
    }
    assert!(h2.totals().reconciles());
}

#[test]
fn switching_a_subnet_to_vxlan_changes_only_its_decisions_and_hosts_accept_both_meanwhile() {
    let mut h1 = host(BLUE_RED_HOST1);
    let mut h2 = host(BLUE_RED_HOST2);
    let blue = udp(mac(B1), mac(B2), "10.0.0.5", "10.0.0.7", 1000);
    let red = udp(mac(R1), mac(R2), "10.0.0.5", "10.0.0.7", 1000);
    let nv_b = testkit::nvgre(mac(PA2_MAC), mac(PA1_MAC), ip("192.168.4.11"), ip("192.168.4.22"), 5001, fid(&blue), &blue);
    assert_eq!(h1.run2(BLUE, &blue), vec![(UPLINK, nv_b.clone())]);
    h1.run2(RED, &red);
    let stale = h1.sw.cache().unwrap().stats().stale;

    // Host 1 switches first: it sends VXLAN; host 2, still on NVGRE, accepts it.
    h1.store.replace(hnv_policy::parse(&blue_vxlan(BLUE_RED_HOST1), "t").unwrap());
    let vx_b = vxlan_1_to_2(5001, &blue);
    assert_eq!(h1.run2(BLUE, &blue), vec![(UPLINK, vx_b.clone())]);
    assert_eq!(h1.sw.cache().unwrap().stats().stale, stale + 1, "only Blue's cached decision was invalidated");
    let hits = h1.hits();
    assert_eq!(h1.run(RED, &[red.clone()]).len(), 1);
    assert_eq!(h1.hits(), hits + 1, "Red's decision is still cached");
    assert_eq!(h2.run2(UPLINK, &vx_b), vec![(BLUE, blue.clone())]);
    // Host 2 switches later; NVGRE still in flight from before is accepted too.
    h2.store.replace(hnv_policy::parse(&blue_vxlan(BLUE_RED_HOST2), "t").unwrap());
    assert_eq!(h2.run2(UPLINK, &nv_b), vec![(BLUE, blue.clone())]);
    assert_eq!(h2.run2(UPLINK, &vx_b), vec![(BLUE, blue)]);
    for h in [&h1, &h2] {
        assert_eq!(h.totals().total_drops(), 0);
    }
}

#[test]
fn the_vxlan_port_comes_from_the_policy() {
    let p = blue_vxlan(BLUE_RED_HOST2).replacen("name = \"host2\"", "name = \"host2\"\nvxlan_port = 8472", 1);
    let mut h2 = host(&p);
    let blue = udp(mac(B1), mac(B2), "10.0.0.5", "10.0.0.7", 1000);
    let on = |port| testkit::vxlan(mac(PA2_MAC), mac(PA1_MAC), ip("192.168.4.11"), ip("192.168.4.22"), 5001, 1, port, &blue);
    assert_eq!(h2.run2(UPLINK, &on(8472)), vec![(BLUE, blue.clone())]);
    assert!(h2.run2(UPLINK, &on(4789)).is_empty());
    assert_eq!(h2.drops(DropReason::UplinkNotForUs), 2);
    let back = udp(mac(B2), mac(B1), "10.0.0.7", "10.0.0.5", 2000);
    let out = h2.run2(BLUE, &back);
    assert_eq!(&out[0].1[36..38], &8472u16.to_be_bytes());
}

/// `policy` with the provider network on IPv6 (fd00::11, fd00::22; no provider route).
fn on_ipv6(policy: &str) -> String {
    let p = policy
        .replace("192.168.4.11", "fd00::11")
        .replace("192.168.4.22", "fd00::22")
        .replace("prefix_len = 24", "prefix_len = 64")
        .replace("[[host.provider_routes]]\ndestination = \"0.0.0.0/0\"\nnext_hop = \"192.168.4.1\"\nmetric = 10\n\n", "");
    assert!(!p.contains("192.168.4."), "{p}");
    p
}

#[test]
fn vxlan_over_ipv6_carries_a_checksum_and_a_zero_or_wrong_one_is_dropped() {
    let mut h1 = host(&on_ipv6(&blue_vxlan(BLUE_RED_HOST1)));
    let mut h2 = host(&on_ipv6(&blue_vxlan(BLUE_RED_HOST2)));
    let blue = udp(mac(B1), mac(B2), "10.0.0.5", "10.0.0.7", 1000);
    let out = h1.run2(BLUE, &blue);
    assert_eq!(out.len(), 1, "{:?}", h1.totals().drops);
    let f = out[0].1.clone();
    assert_eq!(f.len(), blue.len() + 70);
    assert_eq!((&f[12..14], f[20]), (&[0x86, 0xdd][..], 17), "IPv6, next header UDP");
    let ip = hnv_wire::Ipv6Packet::new_checked(&f[14..]).unwrap();
    let u = hnv_wire::UdpPacket::new_checked(ip.payload()).unwrap();
    assert!(u.checksum() != 0 && u.verify_checksum_v6(&ip.src_addr(), &ip.dst_addr()), "a valid UDP checksum over IPv6");
    assert_eq!(h2.run2(UPLINK, &f), vec![(BLUE, blue)]);
    let mut zero = f.clone();
    zero[60..62].fill(0);
    let mut wrong = f.clone();
    wrong[61] ^= 0x40;
    for bad in [zero, wrong] {
        let before = h2.drops(DropReason::UdpChecksum);
        assert!(h2.run2(UPLINK, &bad).is_empty());
        assert_eq!(h2.drops(DropReason::UdpChecksum), before + 2);
    }
    assert!(h2.totals().reconciles());
}
