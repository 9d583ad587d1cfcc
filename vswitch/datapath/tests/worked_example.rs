//! hnv.md §2's worked example through two switch instances on heap buffers:
//! every byte of every output frame, both directions, ARP included; plus
//! routing, ACL, and each malformed or hostile input dropped and counted.
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
const BLUE3: u16 = 3;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

struct Host {
    sw: HnvSwitch,
    stats: Arc<DatapathStats>,
}

fn host(policy: &str) -> Host {
    let policy = policy.to_string();
    let policy = policy.as_str();
    let store = Arc::new(PolicyStore::new(hnv_policy::parse(policy, "example").unwrap()));
    let stats = Arc::new(DatapathStats::default());
    Host { sw: HnvSwitch::new(store, standard_pipeline(), stats.clone(), 0), stats }
}

impl Host {
    /// Push frames in on `port`; return what comes out, by port.
    fn run(&mut self, port: u16, frames: &[Vec<u8>]) -> Vec<(u16, Vec<u8>)> {
        let mut out = TxStage::new(8);
        for chunk in frames.chunks(32) {
            let mut b: Batch<HeapBuf> = chunk.iter().map(|f| HeapBuf::from_slice(f)).collect();
            self.sw.process(port, &mut b, &mut out, 0);
        }
        let mut res = Vec::new();
        for p in 0..out.ports() {
            for pkt in out.pending_mut(p).unwrap().drain(..) {
                res.push((p as u16, pkt.data().to_vec()));
            }
        }
        res
    }
    fn totals(&self) -> Totals {
        Totals::sum([&*self.stats])
    }
}

const B1: &str = "00:15:5d:01:00:05";
const B2: &str = "00:15:5d:01:00:07";
const R1: &str = "00:15:5d:02:00:05";
const R2: &str = "00:15:5d:02:00:07";
const PA1_MAC: &str = "02:00:c0:a8:04:0b";
const PA2_MAC: &str = "02:00:c0:a8:04:16";

fn udp(src: Mac, dst: Mac, s: &str, d: &str, sport: u16) -> Vec<u8> {
    testkit::udp(src, dst, IpAddr::V4(ip(s)), IpAddr::V4(ip(d)), sport, 9, 60)
}

fn fid(f: &[u8]) -> u8 {
    let sport = u16::from_be_bytes([f[34], f[35]]);
    let dport = u16::from_be_bytes([f[36], f[37]]);
    let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
    let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
    testkit::flow_id_of(IpAddr::V4(src), IpAddr::V4(dst), f[23], sport, dport)
}

#[test]
fn blue1_to_blue2_and_red1_to_red2_with_identical_addresses_stay_apart() {
    let mut h1 = host(BLUE_RED_HOST1);
    let mut h2 = host(BLUE_RED_HOST2);
    let blue = udp(mac(B1), mac(B2), "10.0.0.5", "10.0.0.7", 1000);
    let red = udp(mac(R1), mac(R2), "10.0.0.5", "10.0.0.7", 1000);

    // Host 1 encapsulates each toward host 2 with its own VSID.
    let out_b = h1.run(BLUE, &[blue.clone()]);
    let out_r = h1.run(RED, &[red.clone()]);
    let want_b = testkit::nvgre(mac(PA2_MAC), mac(PA1_MAC), ip("192.168.4.11"), ip("192.168.4.22"), 5001, fid(&blue), &blue);
    let want_r = testkit::nvgre(mac(PA2_MAC), mac(PA1_MAC), ip("192.168.4.11"), ip("192.168.4.22"), 6001, fid(&red), &red);
    assert_eq!(out_b, vec![(UPLINK, want_b.clone())]);
    assert_eq!(out_r, vec![(UPLINK, want_r.clone())]);
    assert_ne!(want_b, want_r, "only the key differs on the wire");

    // Host 2 decapsulates each to the right tenant's VM, unchanged.
    assert_eq!(h2.run(UPLINK, &[want_b]), vec![(BLUE, blue)]);
    assert_eq!(h2.run(UPLINK, &[want_r]), vec![(RED, red)]);

    // And back.
    let back = udp(mac(B2), mac(B1), "10.0.0.7", "10.0.0.5", 2000);
    let enc = h2.run(BLUE, &[back.clone()]);
    let want = testkit::nvgre(mac(PA1_MAC), mac(PA2_MAC), ip("192.168.4.22"), ip("192.168.4.11"), 5001, fid(&back), &back);
    assert_eq!(enc, vec![(UPLINK, want.clone())]);
    assert_eq!(h1.run(UPLINK, &[want]), vec![(BLUE, back)]);

    for h in [&h1, &h2] {
        let t = h.totals();
        assert!(t.reconciles(), "{t:?}");
        assert_eq!(t.total_drops(), 0);
    }
}

#[test]
fn arp_is_answered_from_policy_per_tenant_and_never_leaves_the_host() {
    let mut h1 = host(BLUE_RED_HOST1);
    let req = testkit::arp_request(mac(B1), ip("10.0.0.5"), ip("10.0.0.7"));
    let out = h1.run(BLUE, &[req]);
    assert_eq!(out, vec![(BLUE, testkit::arp_reply(mac(B2), ip("10.0.0.7"), mac(B1), ip("10.0.0.5")))]);
    let req = testkit::arp_request(mac(R1), ip("10.0.0.5"), ip("10.0.0.7"));
    assert_eq!(h1.run(RED, &[req]), vec![(RED, testkit::arp_reply(mac(R2), ip("10.0.0.7"), mac(R1), ip("10.0.0.5")))]);
    // The gateway answers with the subnet's virtual gateway MAC.
    let req = testkit::arp_request(mac(B1), ip("10.0.0.5"), ip("10.0.0.1"));
    assert_eq!(h1.run(BLUE, &[req]), vec![(BLUE, testkit::arp_reply(mac("02:48:4e:00:13:89"), ip("10.0.0.1"), mac(B1), ip("10.0.0.5")))]);
    // No record: no answer, counted.
    let req = testkit::arp_request(mac(B1), ip("10.0.0.5"), ip("10.0.0.99"));
    assert!(h1.run(BLUE, &[req]).is_empty());
    let t = h1.totals();
    assert_eq!(t.drops_of(DropReason::ArpNoRecord), 1);
    assert_eq!(t.answered, 3);
    assert!(t.reconciles());
}

#[test]
fn provider_arp_for_the_local_pa_is_answered_on_the_uplink() {
    let mut h1 = host(BLUE_RED_HOST1);
    let req = testkit::arp_request(mac("02:00:00:00:00:99"), ip("192.168.4.99"), ip("192.168.4.11"));
    let out = h1.run(UPLINK, &[req]);
    assert_eq!(out, vec![(UPLINK, testkit::arp_reply(mac(PA1_MAC), ip("192.168.4.11"), mac("02:00:00:00:00:99"), ip("192.168.4.99")))]);
}

#[test]
fn routing_between_subnets_of_one_routing_domain() {
    let mut h1 = host(BLUE_RED_HOST1);
    let mut h2 = host(BLUE_RED_HOST2);
    let gw5001 = mac("02:48:4e:00:13:89");
    let gw5002 = mac("02:48:4e:00:13:8a");
    let f = udp(mac(B1), gw5001, "10.0.0.5", "10.0.1.9", 7);
    let out = h1.run(BLUE, &[f.clone()]);
    assert_eq!(out.len(), 1);
    let (port, wire) = &out[0];
    assert_eq!(*port, UPLINK);
    assert_eq!(&wire[38..41], &[0x00, 0x13, 0x8a], "routed into VSID 5002");
    let inner = &wire[42..];
    let mut want = f.clone();
    want[0..6].copy_from_slice(&mac("00:15:5d:01:01:09"));
    want[6..12].copy_from_slice(&gw5002);
    want[22] -= 1;
    want[24..26].copy_from_slice(&[0, 0]);
    let c = !hnv_wire::checksum::data(&want[14..34]);
    want[24..26].copy_from_slice(&c.to_be_bytes());
    assert_eq!(inner, &want[..]);
    assert_eq!(hnv_wire::checksum::data(&inner[14..34]), 0xffff, "checksum stays valid");
    assert_eq!(h2.run(UPLINK, &[wire.clone()]), vec![(BLUE3, want)]);

    // Red's routing domain has no route to 10.0.1.0/24.
    let red = udp(mac(R1), mac("02:48:4e:00:17:71"), "10.0.0.5", "10.0.1.9", 7);
    assert!(h1.run(RED, &[red]).is_empty());
    assert_eq!(h1.totals().drops_of(DropReason::NoRoute), 1);

    // TTL 1 expires.
    let mut ttl1 = f;
    ttl1[22] = 1;
    ttl1[24..26].copy_from_slice(&[0, 0]);
    let c = !hnv_wire::checksum::data(&ttl1[14..34]);
    ttl1[24..26].copy_from_slice(&c.to_be_bytes());
    assert!(h1.run(BLUE, &[ttl1]).is_empty());
    assert_eq!(h1.totals().drops_of(DropReason::TtlExpired), 1);
}

#[test]
fn inbound_acl_denies_telnet_to_blue() {
    let mut h1 = host(BLUE_RED_HOST1);
    let mut h2 = host(BLUE_RED_HOST2);
    let telnet = testkit::tcp_syn(mac(B2), mac(B1), ip("10.0.0.7"), ip("10.0.0.5"), 40000, 23);
    let ssh = testkit::tcp_syn(mac(B2), mac(B1), ip("10.0.0.7"), ip("10.0.0.5"), 40000, 22);
    let wire = h2.run(BLUE, &[telnet, ssh]);
    assert_eq!(wire.len(), 2, "outbound from Blue2 is allowed");
    let frames: Vec<Vec<u8>> = wire.into_iter().map(|(_, f)| f).collect();
    let delivered = h1.run(UPLINK, &frames);
    assert_eq!(delivered.len(), 1);
    assert_eq!(u16::from_be_bytes([delivered[0].1[36], delivered[0].1[37]]), 22);
    assert_eq!(h1.totals().drops_of(DropReason::AclDeny), 1);
    assert!(h1.totals().reconciles());
}

#[test]
fn hostile_and_malformed_input_is_dropped_and_counted() {
    let mut h1 = host(BLUE_RED_HOST1);
    let good = udp(mac(R2), mac(R1), "10.0.0.7", "10.0.0.5", 1);
    let nv = |vsid: u32, src_pa: &str, inner: &[u8]| testkit::nvgre(mac(PA1_MAC), mac(PA2_MAC), ip(src_pa), ip("192.168.4.11"), vsid, 1, inner);
    let ok = nv(6001, "192.168.4.22", &good);
    let mut cases: Vec<(Vec<u8>, u16, DropReason)> = Vec::new();
    let mut flags = ok.clone();
    flags[34] |= 0x80; // C bit
    cases.push((flags, UPLINK, DropReason::GreFlags));
    let mut ver = ok.clone();
    ver[35] |= 1;
    cases.push((ver, UPLINK, DropReason::GreVersion));
    let mut proto = ok.clone();
    proto[36..38].copy_from_slice(&[0x08, 0x00]);
    cases.push((proto, UPLINK, DropReason::GreProtocol));
    cases.push((nv(7777, "192.168.4.22", &good), UPLINK, DropReason::VsidUnknown));
    // Red's frame re-keyed into Blue's VSID: Blue2 has the same CA, but no Blue VM owns the Red MAC.
    cases.push((nv(5001, "192.168.4.22", &good), UPLINK, DropReason::NoRecord));
    let stranger = udp(mac(R2), mac(R1), "10.0.0.99", "10.0.0.5", 1);
    cases.push((nv(6001, "192.168.4.22", &stranger), UPLINK, DropReason::UnknownSourceCa));
    cases.push((nv(6001, "192.168.4.33", &good), UPLINK, DropReason::PaCaMismatch));
    let mut tagged = good[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    tagged.extend_from_slice(&good[12..]);
    cases.push((nv(6001, "192.168.4.22", &tagged), UPLINK, DropReason::InnerVlanTagged));
    cases.push((udp(mac(B2), mac(B1), "10.0.0.7", "10.0.0.5", 1), BLUE, DropReason::SpoofedMac));
    cases.push((udp(mac(B1), mac(B2), "10.0.0.6", "10.0.0.7", 1), BLUE, DropReason::SpoofedIp));
    let mut vm_tagged = udp(mac(B1), mac(B2), "10.0.0.5", "10.0.0.7", 1);
    vm_tagged.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    cases.push((vm_tagged, BLUE, DropReason::VmVlanTagged));
    cases.push((udp(mac(B1), mac(B2), "10.0.0.5", "10.0.0.99", 1), BLUE, DropReason::NoRecord));
    cases.push((udp(mac(B1), mac(R2), "10.0.0.5", "10.0.0.7", 1), BLUE, DropReason::DstMacMismatch));
    // Too big without DF (with DF it is answered with an ICMP error: tests/path_mtu.rs).
    let mut big = testkit::udp(mac(B1), mac(B2), IpAddr::V4(ip("10.0.0.5")), IpAddr::V4(ip("10.0.0.7")), 1, 2, 1514);
    big[20] = 0;
    big[24..26].fill(0);
    let sum = !hnv_wire::checksum::data(&big[14..34]);
    big[24..26].copy_from_slice(&sum.to_be_bytes());
    cases.push((big, BLUE, DropReason::EncapTooBig));
    let mut bad_vsid = ok.clone();
    bad_vsid[38..41].copy_from_slice(&[0, 0, 0x10]);
    cases.push((bad_vsid, UPLINK, DropReason::VsidReserved));
    for (i, (frame, port, want)) in cases.iter().enumerate() {
        let before = h1.totals().drops_of(*want);
        let out = h1.run(*port, &[frame.clone()]);
        // The only thing that may leave: an MS-NVGREE UNREACHABLE back to a validated sender.
        let unreachable = |f: &Vec<u8>| hnv_wire::nvgree::ControlRepr::parse(&f[42..]).is_ok_and(|c| c.control == hnv_wire::nvgree::Control::Unreachable);
        assert!(out.iter().all(|(q, f)| *q == UPLINK && unreachable(f)), "case {i} ({want}) must not be forwarded: {out:?}");
        assert_eq!(h1.totals().drops_of(*want), before + 1, "case {i} counted as {want}: {:?}", h1.totals().drops);
    }
    // The untouched frame is delivered, so the cases above fail for their stated reason only.
    assert_eq!(h1.run(UPLINK, &[ok]), vec![(RED, good.clone())]);
    // Truncation at every offset: never forwarded as-is, never a panic, always counted.
    let blue = udp(mac(B1), mac(B2), "10.0.0.5", "10.0.0.7", 1);
    for cut in 0..blue.len() {
        h1.run(BLUE, &[blue[..cut].to_vec()]);
    }
    for cut in 0..ok_len() {
        let f = nv(6001, "192.168.4.22", &good);
        h1.run(UPLINK, &[f[..cut].to_vec()]);
    }
    let t = h1.totals();
    assert!(t.reconciles(), "{t:?}");
}

fn ok_len() -> usize {
    42 + 60
}

/// Host 1 with a second Blue VM (Blue4, 10.0.0.9) on the same host, IPv6 CAs
/// for Blue1 and Blue2, and a gateway-wildcard record for Red.
fn host1_extended() -> String {
    BLUE_RED_HOST1.replacen("addresses = [\"10.0.0.5\"]", "addresses = [\"10.0.0.5\", \"fd00::5\"]", 1).replacen(
        "prefixes = [\"10.0.0.0/24\"]\ngateway_v4 = \"10.0.0.1\"",
        "prefixes = [\"10.0.0.0/24\", \"fd00::/64\"]\ngateway_v4 = \"10.0.0.1\"\ngateway_v6 = \"fd00::1\"",
        1,
    ) + r#"
[[ports]]
name = "blue4"
role = "vm"
devargs = "net_ring_h1blue4"
vsid = 5001
mac = "00:15:5d:01:00:09"
addresses = ["10.0.0.9"]

[[lookup]]
ca = "10.0.0.9"
vsid = 5001
mac = "00:15:5d:01:00:09"
pa = "192.168.4.11"

[[lookup]]
ca = "fd00::5"
vsid = 5001
mac = "00:15:5d:01:00:05"
pa = "192.168.4.11"

[[lookup]]
ca = "fd00::7"
vsid = 5001
mac = "00:15:5d:01:00:07"
pa = "192.168.4.22"

[[lookup]]
ca = "0.0.0.0"
vsid = 6001
mac = "00:15:5d:02:00:fe"
pa = "192.168.4.22"
type = "gateway_wildcard"
"#
}
const BLUE4: u16 = 3;

#[test]
fn same_host_same_vsid_delivery_and_local_flooding() {
    let mut h1 = host(&host1_extended());
    let f = udp(mac(B1), mac("00:15:5d:01:00:09"), "10.0.0.5", "10.0.0.9", 5);
    assert_eq!(h1.run(BLUE, &[f.clone()]), vec![(BLUE4, f)]);
    // A broadcast that is not ARP reaches the other local Blue port only (not Red, not the fabric).
    let bcast = udp(mac(B1), [0xff; 6], "10.0.0.5", "10.0.0.255", 5);
    assert_eq!(h1.run(BLUE, &[bcast.clone()]), vec![(BLUE4, bcast.clone())]);
    // Red has no other local port: dropped, counted.
    let rb = udp(mac(R1), [0xff; 6], "10.0.0.5", "10.0.0.255", 5);
    assert!(h1.run(RED, &[rb]).is_empty());
    assert_eq!(h1.totals().drops_of(DropReason::FloodNoMembers), 1);
    assert!(h1.totals().reconciles());
}

#[test]
fn ipv6_neighbor_solicitation_is_answered_and_ipv6_is_encapsulated() {
    let mut h1 = host(&host1_extended());
    let (me, peer): (std::net::Ipv6Addr, std::net::Ipv6Addr) = ("fd00::5".parse().unwrap(), "fd00::7".parse().unwrap());
    let ns = testkit::neighbor_solicit(mac(B1), me, peer);
    let out = h1.run(BLUE, &[ns]);
    assert_eq!(out.len(), 1);
    let (port, na) = &out[0];
    assert_eq!(*port, BLUE);
    assert_eq!(&na[0..6], &mac(B1), "unicast back to the asker");
    assert_eq!(&na[6..12], &mac(B2), "from Blue2's MAC");
    assert_eq!(na[54], 136, "a neighbor advertisement");
    assert_eq!(&na[62..78], &peer.octets(), "for the solicited target");
    assert_eq!(&na[80..86], &mac(B2), "target link-layer address option = Blue2's MAC");
    // The ICMPv6 checksum verifies over the pseudo-header.
    let payload = &na[54..];
    let ph = hnv_wire::checksum::pseudo_header_v6(&peer, &me, hnv_wire::IpProtocol::Ipv6Icmp, payload.len() as u32);
    assert_eq!(hnv_wire::checksum::combine(&[ph, hnv_wire::checksum::data(payload)]), 0xffff);
    // Gateway and unknown targets.
    let gw = h1.run(BLUE, &[testkit::neighbor_solicit(mac(B1), me, "fd00::1".parse().unwrap())]);
    assert_eq!(&gw[0].1[6..12], &mac("02:48:4e:00:13:89"));
    assert!(h1.run(BLUE, &[testkit::neighbor_solicit(mac(B1), me, "fd00::99".parse().unwrap())]).is_empty());
    assert_eq!(h1.totals().drops_of(DropReason::NdNoRecord), 1);
    // IPv6 unicast goes out as NVGRE with the right key.
    let f = testkit::udp(mac(B1), mac(B2), IpAddr::V6(me), IpAddr::V6(peer), 1, 2, 80);
    let out = h1.run(BLUE, &[f.clone()]);
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].1[38..41], &[0x00, 0x13, 0x89]);
    assert_eq!(&out[0].1[42..], &f[..]);
}

#[test]
fn gateway_wildcard_takes_off_subnet_traffic() {
    let mut h1 = host(&host1_extended());
    let gw6001 = mac("02:48:4e:00:17:71");
    let f = udp(mac(R1), gw6001, "10.0.0.5", "8.8.8.8", 5);
    let out = h1.run(RED, &[f]);
    assert_eq!(out.len(), 1, "{:?}", h1.totals());
    let wire = &out[0].1;
    assert_eq!(&wire[30..34], &[192, 168, 4, 22], "to the gateway's PA");
    assert_eq!(&wire[38..41], &[0x00, 0x17, 0x71], "in Red's VSID");
    assert_eq!(&wire[42..48], &mac("00:15:5d:02:00:fe"), "to the gateway's MAC");
    assert_eq!(wire[42 + 22], 63, "TTL decremented");
    // Blue has no wildcard: the same destination has no route.
    assert!(h1.run(BLUE, &[udp(mac(B1), mac("02:48:4e:00:13:89"), "10.0.0.5", "8.8.8.8", 5)]).is_empty());
    assert_eq!(h1.totals().drops_of(DropReason::NoRoute), 1);
}

#[test]
fn unresolved_next_hop_is_learned_from_provider_arp() {
    // Host 1 without the static neighbor for host 2.
    let text = BLUE_RED_HOST1.replacen("[[host.neighbors]]\naddress = \"192.168.4.22\"\nmac = \"02:00:c0:a8:04:16\"\n", "", 1);
    assert_ne!(text, BLUE_RED_HOST1);
    let store = Arc::new(PolicyStore::new(hnv_policy::parse(&text, "t").unwrap()));
    let stats = Arc::new(DatapathStats::default());
    let mut h1 = Host { sw: HnvSwitch::new(store.clone(), standard_pipeline(), stats.clone(), 0), stats };
    let f = udp(mac(B1), mac(B2), "10.0.0.5", "10.0.0.7", 5);
    assert!(h1.run(BLUE, &[f.clone()]).is_empty());
    assert_eq!(h1.totals().drops_of(DropReason::NextHopUnresolved), 1);
    // Host 2 asks for host 1's PA: answered, and its MAC learned.
    let req = testkit::arp_request(mac(PA2_MAC), ip("192.168.4.22"), ip("192.168.4.11"));
    assert_eq!(h1.run(UPLINK, &[req]).len(), 1);
    let now = std::time::Instant::now();
    assert!(store.apply_learned(now), "a new neighbor republishes the policy");
    assert!(!store.apply_learned(now));
    let out = h1.run(BLUE, &[f]);
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].1[0..6], &mac(PA2_MAC));
}

#[test]
fn arp_arriving_over_the_fabric_is_answered_back_to_the_requesters_pa() {
    let mut h1 = host(BLUE_RED_HOST1);
    let req = testkit::arp_request(mac(B2), ip("10.0.0.7"), ip("10.0.0.5"));
    let wire = testkit::nvgre(mac(PA1_MAC), mac(PA2_MAC), ip("192.168.4.22"), ip("192.168.4.11"), 5001, 0, &req);
    let out = h1.run(UPLINK, &[wire]);
    let reply = testkit::arp_reply(mac(B1), ip("10.0.0.5"), mac(B2), ip("10.0.0.7"));
    assert_eq!(out, vec![(UPLINK, testkit::nvgre(mac(PA2_MAC), mac(PA1_MAC), ip("192.168.4.11"), ip("192.168.4.22"), 5001, 0, &reply))]);
    assert_eq!(h1.totals().answered, 1);
    assert!(h1.totals().reconciles());
}

#[test]
fn a_host_that_lost_a_vm_forwards_its_traffic_to_the_new_pa_during_the_grace_period() {
    let store = Arc::new(PolicyStore::new(hnv_policy::parse(BLUE_RED_HOST2, "t").unwrap()));
    let stats = Arc::new(DatapathStats::default());
    let mut h2 = Host { sw: HnvSwitch::new(store.clone(), standard_pipeline(), stats.clone(), 0), stats };
    let inner = udp(mac(B1), mac(B2), "10.0.0.5", "10.0.0.7", 77);
    let from_h1 = testkit::nvgre(mac(PA2_MAC), mac(PA1_MAC), ip("192.168.4.11"), ip("192.168.4.22"), 5001, 5, &inner);
    assert_eq!(h2.run(UPLINK, &[from_h1.clone()]), vec![(BLUE, inner.clone())]);
    // Blue2 migrates to host 3 (192.168.4.33); host 2 keeps its (now idle) port.
    let mut p = store.policy();
    p.host.neighbors.push(hnv_policy::Neighbor { address: "192.168.4.33".parse().unwrap(), mac: hnv_policy::EthernetAddress([2, 0, 0xc0, 0xa8, 4, 0x21]) });
    let port = p.ports.iter_mut().find(|q| q.name == "blue2").unwrap();
    port.mac = Some(hnv_policy::EthernetAddress([2, 0, 0, 0, 2, 7]));
    port.addresses.clear();
    p.lookup.iter_mut().find(|r| r.vm_name.as_deref() == Some("Blue2")).unwrap().pa = "192.168.4.33".parse().unwrap();
    let p = hnv_policy::parse(&hnv_policy::to_toml(&p), "migrated").unwrap();
    store.replace(p);
    // Packets still arriving from host 1 (stale policy there) go on to host 3,
    // unchanged inside, and host 1 gets one MS-NVGREE REDIRECT naming the new PA.
    let out = h2.run(UPLINK, &[from_h1.clone(), from_h1.clone()]);
    assert_eq!(out.len(), 3, "{:?}", h2.totals().drops);
    let (redirects, forwarded): (Vec<_>, Vec<_>) = out.into_iter().partition(|(_, f)| f[30..34] == [192, 168, 4, 11]);
    assert_eq!(forwarded.len(), 2);
    assert_eq!(&forwarded[0].1[30..34], &[192, 168, 4, 33]);
    assert_eq!(&forwarded[0].1[26..30], &[192, 168, 4, 11], "the original sender's PA stays the outer source");
    assert_eq!(&forwarded[0].1[42..], &inner[..]);
    let redirect = hnv_wire::nvgree::ControlRepr::parse(&redirects[0].1[42..]).unwrap();
    assert_eq!(redirect.control, hnv_wire::nvgree::Control::Redirect { new_pa: ip("192.168.4.33") });
    assert_eq!((redirect.from_pa, redirect.to_pa, redirect.src_ca, redirect.dst_ca), (ip("192.168.4.22"), ip("192.168.4.11"), ip("10.0.0.5"), ip("10.0.0.7")));
    assert_eq!(h2.totals().control_sent, 1);
    // After the grace period they are dropped (host 1 has the new policy by then).
    assert!(store.expire_moved(std::time::Instant::now() + std::time::Duration::from_secs(60)));
    assert!(h2.run(UPLINK, &[from_h1]).is_empty());
    assert_eq!(h2.totals().drops_of(DropReason::NoLocalPort), 1);
    assert!(h2.totals().reconciles());
}

#[test]
fn the_switch_resolves_its_next_hop_by_arp_and_a_cached_drop_gives_way_to_encapsulation() {
    use hnv_datapath::neighbor::{Source, State};
    let text = BLUE_RED_HOST1.replacen("[[host.neighbors]]\naddress = \"192.168.4.22\"\nmac = \"02:00:c0:a8:04:16\"\n", "", 1);
    let store = Arc::new(PolicyStore::new(hnv_policy::parse(&text, "t").unwrap()));
    let stats = Arc::new(DatapathStats::default());
    let mut h1 = Host { sw: HnvSwitch::new(store.clone(), standard_pipeline(), stats.clone(), 0), stats };
    let f = udp(mac(B1), mac(B2), "10.0.0.5", "10.0.0.7", 5);
    // Unresolved: dropped under its reason, the second time from the flow cache.
    assert!(h1.run(BLUE, &[f.clone()]).is_empty());
    assert!(h1.run(BLUE, &[f.clone()]).is_empty());
    assert_eq!(h1.totals().drops_of(DropReason::NextHopUnresolved), 2);
    assert!(h1.totals().flow_hits >= 1, "the drop was cached");
    // The control tick asks for host 2's PA; a worker sends the request on the uplink.
    let t0 = std::time::Instant::now();
    assert!(!store.apply_learned(t0));
    let mut out = TxStage::new(8);
    h1.sw.originate(&mut out, &mut |b| Some(HeapBuf::from_slice(b)), 0);
    let sent: Vec<Vec<u8>> = out.pending_mut(usize::from(UPLINK)).unwrap().drain(..).map(|p| p.data().to_vec()).collect();
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert_eq!(&r[0..6], &[0xff; 6], "broadcast");
    assert_eq!(&r[6..12], &mac(PA1_MAC), "from the PA's MAC");
    assert_eq!(&r[12..14], &[0x08, 0x06]);
    assert_eq!(&r[20..22], &[0, 1], "request");
    assert_eq!(&r[22..28], &mac(PA1_MAC));
    assert_eq!(&r[28..32], &[192, 168, 4, 11], "from the PA");
    assert_eq!(&r[38..42], &[192, 168, 4, 22], "for host 2's PA");
    let t = h1.totals();
    assert_eq!((t.neighbor_requests, t.replicas), (1, 1));
    assert!(t.reconciles(), "{t:?}");
    // Nothing else is queued; a stranger's reply is refused.
    h1.sw.originate(&mut out, &mut |b| Some(HeapBuf::from_slice(b)), 0);
    assert_eq!(out.pending_len(usize::from(UPLINK)), 0);
    h1.run(UPLINK, &[testkit::arp_reply([2, 0, 0, 0, 0x66, 0x66], ip("192.168.4.99"), mac(PA1_MAC), ip("192.168.4.11"))]);
    // Host 2 answers: consumed (counted), fed to the resolver.
    assert!(h1.run(UPLINK, &[testkit::arp_reply(mac(PA2_MAC), ip("192.168.4.22"), mac(PA1_MAC), ip("192.168.4.11"))]).is_empty());
    assert_eq!(h1.totals().drops_of(DropReason::ProviderArpIgnored), 2);
    assert!(store.apply_learned(t0 + std::time::Duration::from_millis(3)), "a resolved MAC republishes the tables");
    let (entries, counts, skipped) = store.neighbors();
    let e = entries.iter().find(|e| e.ip == IpAddr::V4(ip("192.168.4.22"))).unwrap();
    assert_eq!((e.state, e.source, e.mac, e.probes), (State::Reachable, Source::Resolved, Some(mac(PA2_MAC)), 1));
    assert_eq!((counts.requests, counts.accepted, counts.refused, skipped), (1, 1, 1, 0));
    // The same flow now leaves encapsulated to host 2's MAC: the cached drop is gone.
    let out = h1.run(BLUE, &[f]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, UPLINK);
    assert_eq!(&out[0].1[0..6], &mac(PA2_MAC));
    assert_eq!(h1.totals().drops_of(DropReason::NextHopUnresolved), 2);
    assert!(h1.totals().reconciles());
}

#[test]
fn ipv6_next_hops_are_solicited_and_provider_nd_is_answered_and_learned() {
    // Host 1 with an IPv6 PA too; Blue2 lives at host 2's IPv6 PA, with no static neighbor.
    let text = BLUE_RED_HOST1
        .replacen("[[host.provider_routes]]", "[[host.provider_addresses]]\naddress = \"fd00:4::11\"\nprefix_len = 64\nmac = \"02:00:c0:a8:04:0b\"\nuplink = \"uplink\"\n\n[[host.provider_routes]]", 1)
        .replacen("pa = \"192.168.4.22\"\nvm_name = \"Blue2\"", "pa = \"fd00:4::22\"\nvm_name = \"Blue2\"", 1);
    let store = Arc::new(PolicyStore::new(hnv_policy::parse(&text, "t").unwrap()));
    let stats = Arc::new(DatapathStats::default());
    let mut h1 = Host { sw: HnvSwitch::new(store.clone(), standard_pipeline(), stats.clone(), 0), stats };
    let (pa1, pa2): (std::net::Ipv6Addr, std::net::Ipv6Addr) = ("fd00:4::11".parse().unwrap(), "fd00:4::22".parse().unwrap());
    let t0 = std::time::Instant::now();
    store.apply_learned(t0);
    let mut out = TxStage::new(8);
    h1.sw.originate(&mut out, &mut |b| Some(HeapBuf::from_slice(b)), 0);
    let sent: Vec<Vec<u8>> = out.pending_mut(usize::from(UPLINK)).unwrap().drain(..).map(|p| p.data().to_vec()).collect();
    let ns = sent.iter().find(|f| f[12..14] == [0x86, 0xdd]).expect("a neighbor solicitation");
    assert_eq!(&ns[0..6], &[0x33, 0x33, 0xff, 0, 0, 0x22], "to the solicited-node group of fd00:4::22");
    assert_eq!(&ns[6..12], &mac(PA1_MAC));
    assert_eq!(&ns[22..38], &pa1.octets(), "from host 1's IPv6 PA");
    // Host 2 solicits host 1's PA: answered from host 1's PA MAC, and host 2 learned from its source link-layer option.
    let via = hnv_datapath::neighbor::Via { port: 0, pa: IpAddr::V6(pa2), mac: mac(PA2_MAC), vlan: None };
    let theirs = hnv_datapath::neighbor::request_frame(&hnv_datapath::neighbor::Request { target: IpAddr::V6(pa1), via, unicast: None }).unwrap();
    let got = h1.run(UPLINK, &[theirs.data().to_vec()]);
    assert_eq!(got.len(), 1);
    let na = &got[0].1;
    assert_eq!((&na[0..6], &na[6..12]), (&mac(PA2_MAC)[..], &mac(PA1_MAC)[..]));
    assert_eq!(na[14 + 40], 136, "a neighbor advertisement");
    assert!(store.apply_learned(t0 + std::time::Duration::from_millis(5)));
    assert_eq!(store.learned(), vec![(IpAddr::V6(pa2), mac(PA2_MAC))]);
    // An advertisement for an address no record needs (here: host 1's own answer played back) is consumed and refused.
    let before = store.neighbors().1.refused;
    assert!(h1.run(UPLINK, &[na.clone()]).is_empty());
    assert_eq!(h1.totals().drops_of(DropReason::ProviderNd), 1);
    store.apply_learned(t0 + std::time::Duration::from_millis(6));
    assert_eq!(store.neighbors().1.refused, before + 1);
    // Blue1 -> Blue2 leaves over IPv6 to host 2's MAC.
    let out = h1.run(BLUE, &[udp(mac(B1), mac(B2), "10.0.0.5", "10.0.0.7", 5)]);
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].1[0..6], &mac(PA2_MAC));
    assert_eq!(&out[0].1[12..14], &[0x86, 0xdd]);
    assert!(h1.totals().reconciles());
}

/// Live migration to a host this one never sent to (no static neighbor for
/// it): the grace period starts at the move although the new PA has no MAC
/// yet; meanwhile NVGRE for the VM drops as `nexthop_unresolved` (no
/// UNREACHABLE); once the new PA is resolved it is forwarded there and the
/// sender gets a REDIRECT.
#[test]
fn a_vm_moved_to_an_unresolved_pa_keeps_its_grace_period_and_is_forwarded_once_resolved() {
    let store = Arc::new(PolicyStore::new(hnv_policy::parse(BLUE_RED_HOST2, "t").unwrap()));
    let stats = Arc::new(DatapathStats::default());
    let mut h2 = Host { sw: HnvSwitch::new(store.clone(), standard_pipeline(), stats.clone(), 0), stats };
    let t0 = std::time::Instant::now();
    store.apply_learned(t0);
    // Blue2 moves to host 3 (192.168.4.33), which host 2 has no MAC for.
    let mut moved = hnv_policy::parse(BLUE_RED_HOST2, "t").unwrap();
    // Blue2's port stays, "parked" (as the testbed does): VSID 5001 keeps a local port.
    for p in moved.ports.iter_mut().filter(|p| p.name == "blue2") {
        p.mac = Some(hnv_policy::EthernetAddress([2, 0, 0, 0, 0x22, 7]));
        p.addresses.clear();
    }
    for r in moved.lookup.iter_mut().filter(|r| r.vm_name.as_deref() == Some("Blue2")) {
        r.pa = IpAddr::V4(ip("192.168.4.33"));
    }
    store.replace(hnv_policy::parse(&hnv_policy::to_toml(&moved), "t").unwrap());
    let blue = udp(mac(B1), mac(B2), "10.0.0.5", "10.0.0.7", 5);
    let from_h1 = testkit::nvgre(mac(PA2_MAC), mac(PA1_MAC), ip("192.168.4.11"), ip("192.168.4.22"), 5001, fid(&blue), &blue);
    assert!(h2.run(UPLINK, &[from_h1.clone()]).is_empty());
    assert_eq!(h2.totals().drops_of(DropReason::NextHopUnresolved), 1, "{:?}", h2.totals().drops);
    assert_eq!(h2.totals().drops_of(DropReason::NoLocalPort), 0, "not an UNREACHABLE case");
    assert_eq!(h2.totals().control_sent, 0);
    // Host 2 asks for 192.168.4.33; host 3 answers.
    store.apply_learned(t0 + std::time::Duration::from_millis(1));
    let pa3 = [2, 0, 0xc0, 0xa8, 4, 0x21];
    h2.run(UPLINK, &[testkit::arp_reply(pa3, ip("192.168.4.33"), mac(PA2_MAC), ip("192.168.4.22"))]);
    assert!(store.apply_learned(t0 + std::time::Duration::from_millis(2)));
    let out = h2.run(UPLINK, &[from_h1]);
    let to_h3: Vec<&(u16, Vec<u8>)> = out.iter().filter(|(_, f)| f[0..6] == pa3).collect();
    assert_eq!(to_h3.len(), 1, "forwarded to the VM's new host");
    assert_eq!(&to_h3[0].1[30..34], &[192, 168, 4, 33]);
    assert_eq!(h2.totals().control_sent, 1, "a REDIRECT for host 1");
    assert!(h2.totals().reconciles());
}
