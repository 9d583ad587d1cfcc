//! Hostile input against the slow path (issue 13): frames a hostile fabric
//! host or a hostile VM can send, each of which was accepted before. Every
//! test runs with the flow cache off and on, checks the named drop reason,
//! and checks that the counters reconcile (`rx + replicas == tx + drops`).
#![allow(clippy::unwrap_used, clippy::cloned_ref_to_slice_refs)]

use hnv_datapath::testkit::{self, mac, Mac};
use hnv_datapath::{standard_pipeline, DatapathStats, DropReason, HnvSwitch, PolicyStore, Totals};
use hnv_policy::example::BLUE_RED_HOST1;
use hnv_policy::{EthernetAddress, Neighbor, Policy};
use hnv_wire::nvgree::{Control, ControlRepr};
use pmd::{Batch, HeapBuf, PacketBuf, Processor, TxStage};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const UPLINK: u16 = 0;
const BLUE: u16 = 1;
const BLUE4: u16 = 3;
const B1: &str = "00:15:5d:01:00:05";
const B2: &str = "00:15:5d:01:00:07";
const PA1_MAC: &str = "02:00:c0:a8:04:0b";
const PA2_MAC: &str = "02:00:c0:a8:04:16";
const GW5001: &str = "02:48:4e:00:13:89";
/// Datapath clock ticks per second in these tests (the store's default clock unit: ns).
const HZ: u64 = 1_000_000_000;

struct Host {
    sw: HnvSwitch,
    store: Arc<PolicyStore>,
    stats: Arc<DatapathStats>,
}

fn policy(text: &str) -> Policy {
    hnv_policy::parse(text, "hostile").unwrap()
}

impl Host {
    fn new(p: Policy, cache: bool) -> Host {
        let store = Arc::new(PolicyStore::new(p));
        let stats = Arc::new(DatapathStats::default());
        let sw = HnvSwitch::new(store.clone(), standard_pipeline(), stats.clone(), 0).with_cache(if cache { 1024 } else { 0 });
        Host { sw, store, stats }
    }

    /// Frames in on `port` at datapath time `now`; what comes out, by port.
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
        Totals::sum([&*self.stats])
    }

    fn drops(&self, r: DropReason) -> u64 {
        self.totals().drops_of(r)
    }

    fn reconciles(&self) {
        let t = self.totals();
        assert!(t.reconciles(), "rx + replicas != tx + drops: {t:?}");
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn both(mut f: impl FnMut(bool)) {
    for cache in [false, true] {
        f(cache);
    }
}

/// Host 1 of the example with a second Blue VM (Blue4, 10.0.0.9) and IPv6 CAs for Blue1/Blue2.
fn host1_extended() -> Policy {
    policy(
        &(BLUE_RED_HOST1.replacen("addresses = [\"10.0.0.5\"]", "addresses = [\"10.0.0.5\", \"fd00::5\"]", 1).replacen(
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
"#),
    )
}

/// `inner` as host 2 (192.168.4.22) sends it to host 1 (192.168.4.11) in `vsid`.
fn from_host2(vsid: u32, inner: &[u8]) -> Vec<u8> {
    testkit::nvgre(mac(PA1_MAC), mac(PA2_MAC), ip("192.168.4.22"), ip("192.168.4.11"), vsid, 0, inner)
}

fn blue2_to_blue1(sport: u16) -> Vec<u8> {
    testkit::udp(mac(B2), mac(B1), IpAddr::V4(ip("10.0.0.7")), IpAddr::V4(ip("10.0.0.5")), sport, 9, 60)
}

// ---- 1. outer IPv4 header checksum ------------------------------------------------------------

#[test]
fn nvgre_with_a_bad_outer_checksum_is_dropped() {
    both(|cache| {
        let mut h1 = Host::new(policy(BLUE_RED_HOST1), cache);
        let good = from_host2(5001, &blue2_to_blue1(1));
        let mut bad = good.clone();
        bad[24] ^= 0x5a;
        assert!(h1.run(UPLINK, &[bad]).is_empty(), "cache {cache}");
        assert_eq!(h1.drops(DropReason::OuterChecksum), 1);
        assert_eq!(h1.run(UPLINK, &[good]).len(), 1, "the same frame with a good checksum is delivered");
        h1.reconciles();
    });
}

/// The flow key checks the outer checksum and destination MAC too, so a warm cache cannot bypass them.
#[test]
fn a_warm_cache_does_not_deliver_a_bad_outer_checksum_or_dst_mac() {
    let mut h1 = Host::new(policy(BLUE_RED_HOST1), true);
    let good = from_host2(5001, &blue2_to_blue1(1));
    assert_eq!(h1.run(UPLINK, &[good.clone(), good.clone()]).len(), 2);
    let mut bad = good.clone();
    bad[24] ^= 0x5a;
    let mut other = good.clone();
    other[5] = 0x63;
    assert!(h1.run(UPLINK, &[bad, other]).is_empty());
    assert_eq!(h1.drops(DropReason::OuterChecksum), 1);
    assert_eq!(h1.drops(DropReason::OuterDstMac), 1);
    h1.reconciles();
}

// ---- 2. outer destination MAC ----------------------------------------------------------------

#[test]
fn nvgre_to_another_mac_is_dropped_even_to_a_local_pa() {
    both(|cache| {
        let mut h1 = Host::new(policy(BLUE_RED_HOST1), cache);
        let inner = blue2_to_blue1(1);
        // Flooded unknown unicast for another host, and an NVGRE broadcast.
        let other = testkit::nvgre(mac("02:00:c0:a8:04:63"), mac(PA2_MAC), ip("192.168.4.22"), ip("192.168.4.11"), 5001, 0, &inner);
        let bcast = testkit::nvgre([0xff; 6], mac(PA2_MAC), ip("192.168.4.22"), ip("192.168.4.11"), 5001, 0, &inner);
        assert!(h1.run(UPLINK, &[other, bcast]).is_empty(), "cache {cache}");
        assert_eq!(h1.drops(DropReason::OuterDstMac), 2);
        // Provider ARP is still answered when broadcast.
        let req = testkit::arp_request(mac(PA2_MAC), ip("192.168.4.22"), ip("192.168.4.11"));
        assert_eq!(h1.run(UPLINK, &[req]).len(), 1);
        assert_eq!(h1.run(UPLINK, &[from_host2(5001, &inner)]).len(), 1);
        h1.reconciles();
    });
}

// ---- 7. outer source is this host's own PA ------------------------------------------------------

#[test]
fn nvgre_from_this_hosts_own_pa_is_dropped() {
    both(|cache| {
        let mut h1 = Host::new(policy(BLUE_RED_HOST1), cache);
        // Claims to come from Blue1 (whose record is at 192.168.4.11, this host) to Blue1.
        let inner = testkit::udp(mac(B1), mac(B1), IpAddr::V4(ip("10.0.0.5")), IpAddr::V4(ip("10.0.0.5")), 1, 9, 60);
        let f = testkit::nvgre(mac(PA1_MAC), mac(PA2_MAC), ip("192.168.4.11"), ip("192.168.4.11"), 5001, 0, &inner);
        assert!(h1.run(UPLINK, &[f.clone(), f]).is_empty(), "cache {cache}");
        assert_eq!(h1.drops(DropReason::OuterSrcLocal), 2);
        h1.reconciles();
    });
}

// ---- 3. forged MS-NVGREE REDIRECT -------------------------------------------------------------

fn redirect_msg(from_pa: &str, new_pa: &str, src_ca: &str, dst_ca: &str) -> ControlRepr {
    ControlRepr {
        control: Control::Redirect { new_pa: new_pa.parse().unwrap() },
        from_pa: from_pa.parse().unwrap(),
        to_pa: "192.168.4.11".parse().unwrap(),
        src_ca: src_ca.parse().unwrap(),
        dst_ca: dst_ca.parse().unwrap(),
    }
}

/// The message on the wire, as the host at `from_pa` (host 2's MAC) sends it to host 1.
fn redirect_frame(m: &ControlRepr) -> Vec<u8> {
    let mut inner = vec![0u8; hnv_wire::nvgree::FRAME_LEN];
    m.emit(EthernetAddress(mac(PA2_MAC)), EthernetAddress(mac(PA1_MAC)), &mut inner).unwrap();
    testkit::nvgre(mac(PA1_MAC), mac(PA2_MAC), m.from_pa, m.to_pa, 5001, 0, &inner)
}

/// Host 1 knowing a third host (192.168.4.33) as a static provider neighbor.
fn host1_with_host3() -> Policy {
    let mut p = policy(BLUE_RED_HOST1);
    p.host.neighbors.push(Neighbor { address: "192.168.4.33".parse().unwrap(), mac: EthernetAddress([2, 0, 0xc0, 0xa8, 4, 0x21]) });
    p
}

fn blue1_to_blue2(sport: u16) -> Vec<u8> {
    testkit::udp(mac(B1), mac(B2), IpAddr::V4(ip("10.0.0.5")), IpAddr::V4(ip("10.0.0.7")), sport, 9, 60)
}

#[test]
fn redirect_for_a_ca_this_host_never_sent_to_is_refused() {
    both(|cache| {
        let mut h1 = Host::new(host1_with_host3(), cache);
        // From the PA that holds Blue2, toward a known PA, quoting Blue1: but host 1 never sent to Blue2.
        let m = redirect_msg("192.168.4.22", "192.168.4.33", "10.0.0.5", "10.0.0.7");
        assert!(h1.run_at(UPLINK, &[redirect_frame(&m)], 5 * HZ).is_empty());
        assert!(!h1.store.apply_control_at(Instant::now(), 5 * HZ), "cache {cache}");
        assert!(h1.store.redirects().is_empty());
        assert_eq!(h1.store.redirect_counts(), (0, 1), "(accepted, refused)");
        h1.reconciles();
    });
}

#[test]
fn redirect_after_sending_is_accepted_only_recently_and_only_toward_a_known_pa() {
    both(|cache| {
        let mut h1 = Host::new(host1_with_host3(), cache);
        let t0 = 10 * HZ;
        assert_eq!(h1.run_at(BLUE, &[blue1_to_blue2(1), blue1_to_blue2(1)], t0).len(), 2);
        // Toward an address the policy does not know as a provider address: refused.
        let unknown = redirect_msg("192.168.4.22", "203.0.113.9", "10.0.0.5", "10.0.0.7");
        h1.run_at(UPLINK, &[redirect_frame(&unknown)], t0);
        assert!(!h1.store.apply_control_at(Instant::now(), t0));
        // Quoting a source that is not a local VM: refused.
        let not_local = redirect_msg("192.168.4.22", "192.168.4.33", "10.0.0.7", "10.0.0.7");
        h1.run_at(UPLINK, &[redirect_frame(&not_local)], t0);
        assert!(!h1.store.apply_control_at(Instant::now(), t0));
        assert!(h1.store.redirects().is_empty());
        // Long after the last packet: refused.
        let good = redirect_msg("192.168.4.22", "192.168.4.33", "10.0.0.5", "10.0.0.7");
        h1.run_at(UPLINK, &[redirect_frame(&good)], t0 + 600 * HZ);
        assert!(!h1.store.apply_control_at(Instant::now(), t0 + 600 * HZ), "cache {cache}");
        // Within the window: accepted.
        h1.run_at(UPLINK, &[redirect_frame(&good)], t0 + HZ / 2);
        assert!(h1.store.apply_control_at(Instant::now(), t0 + HZ / 2));
        assert_eq!(h1.store.redirects().len(), 1);
        assert_eq!(h1.store.redirect_counts(), (1, 3));
        assert_eq!(h1.drops(DropReason::NvgreControl), 4);
        h1.reconciles();
    });
}

/// Without a static neighbor, a REDIRECT toward an address on host 1's
/// provider subnet is accepted: the new PA is then resolved by ARP (the
/// record drops as `nexthop_unresolved` until it is).
#[test]
fn redirect_toward_an_on_link_pa_without_a_static_neighbor_is_accepted_and_resolved() {
    let p = policy(&BLUE_RED_HOST1.replacen("[[host.neighbors]]\naddress = \"192.168.4.22\"\nmac = \"02:00:c0:a8:04:16\"\n", "", 1));
    let mut h1 = Host::new(p, false);
    let t0 = 10 * HZ;
    h1.store.apply_learned(Instant::now());
    h1.run_at(UPLINK, &[testkit::arp_reply(mac(PA2_MAC), ip("192.168.4.22"), mac(PA1_MAC), ip("192.168.4.11"))], t0);
    assert!(h1.store.apply_learned(Instant::now()));
    assert_eq!(h1.run_at(BLUE, &[blue1_to_blue2(1)], t0).len(), 1);
    let good = redirect_msg("192.168.4.22", "192.168.4.33", "10.0.0.5", "10.0.0.7");
    h1.run_at(UPLINK, &[redirect_frame(&good)], t0);
    assert!(h1.store.apply_control_at(Instant::now(), t0), "{:?}", h1.store.notices());
    assert!(h1.run_at(BLUE, &[blue1_to_blue2(2)], t0).is_empty());
    assert_eq!(h1.drops(DropReason::NextHopUnresolved), 1);
    h1.store.apply_learned(Instant::now());
    h1.run_at(UPLINK, &[testkit::arp_reply([2, 0, 0xc0, 0xa8, 4, 0x21], ip("192.168.4.33"), mac(PA1_MAC), ip("192.168.4.11"))], t0);
    assert!(h1.store.apply_learned(Instant::now()));
    let out = h1.run_at(BLUE, &[blue1_to_blue2(3)], t0);
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].1[0..6], &[2, 0, 0xc0, 0xa8, 4, 0x21]);
    assert_eq!(&out[0].1[30..34], &[192, 168, 4, 33]);
    h1.reconciles();
}

/// A long-lived flow served from the flow cache must keep its sent mark fresh.
#[test]
fn redirect_for_a_flow_served_from_the_cache_is_accepted() {
    let mut h1 = Host::new(host1_with_host3(), true);
    let t0 = 10 * HZ;
    assert_eq!(h1.run_at(BLUE, &[blue1_to_blue2(1)], t0).len(), 1);
    let later = t0 + 5 * HZ;
    assert_eq!(h1.run_at(BLUE, &[blue1_to_blue2(1), blue1_to_blue2(1)], later).len(), 2);
    assert!(h1.totals().flow_hits >= 2);
    let good = redirect_msg("192.168.4.22", "192.168.4.33", "10.0.0.5", "10.0.0.7");
    h1.run_at(UPLINK, &[redirect_frame(&good)], later);
    assert!(h1.store.apply_control_at(Instant::now(), later), "{:?}", h1.store.notices());
}

#[test]
fn redirects_are_rate_limited_and_can_be_turned_off() {
    let h1 = Host::new(host1_with_host3(), false);
    let good = redirect_msg("192.168.4.22", "192.168.4.33", "10.0.0.5", "10.0.0.7");
    let slot = h1.store.snapshot().by_ca(5001, "10.0.0.7".parse().unwrap()).unwrap().slot;
    h1.store.note_sent(slot, HZ);
    let n = hnv_datapath::store::REDIRECT_BURST + 10;
    for _ in 0..n {
        h1.store.offer_control(5001, good);
    }
    assert!(h1.store.apply_control_at(Instant::now(), HZ));
    assert_eq!(h1.store.redirect_counts(), (hnv_datapath::store::REDIRECT_BURST as u64, 10));
    // Off: nothing is applied, the one in force is dropped at once.
    h1.store.set_accept_redirects(false);
    h1.store.offer_control(5001, good);
    assert!(h1.store.apply_control_at(Instant::now() + Duration::from_secs(5), HZ));
    assert!(h1.store.redirects().is_empty());
    assert_eq!(h1.store.redirect_counts(), (hnv_datapath::store::REDIRECT_BURST as u64, 11));
}

// ---- 4. ACL bypasses ----------------------------------------------------------------------------

#[test]
fn inbound_acl_applies_to_unicast_ip_in_a_broadcast_frame() {
    both(|cache| {
        let mut h1 = Host::new(policy(BLUE_RED_HOST1), cache);
        // Telnet to Blue1, the inner Ethernet destination broadcast.
        let telnet = testkit::tcp_syn(mac(B2), [0xff; 6], ip("10.0.0.7"), ip("10.0.0.5"), 40000, 23);
        assert!(h1.run(UPLINK, &[from_host2(5001, &telnet)]).is_empty(), "cache {cache}");
        assert_eq!(h1.drops(DropReason::AclDeny), 1);
        h1.reconciles();
        // Between two local VMs of one VSID, too.
        let mut p = host1_extended();
        p.acl[0].direction = hnv_policy::Direction::In;
        let mut h = Host::new(p, cache);
        let telnet = testkit::tcp_syn(mac(B1), [0xff; 6], ip("10.0.0.5"), ip("10.0.0.9"), 40000, 23);
        assert!(h.run(BLUE, &[telnet]).is_empty());
        assert_eq!(h.drops(DropReason::AclDeny), 1);
        let ssh = testkit::tcp_syn(mac(B1), [0xff; 6], ip("10.0.0.5"), ip("10.0.0.9"), 40000, 22);
        assert_eq!(h.run(BLUE, &[ssh]).len(), 1, "allowed traffic still floods");
        h.reconciles();
    });
}

/// An IPv6 frame whose payload is the extension headers `ext` (each `(type, bytes)` with its
/// next-header byte filled in here) and then `l4` of protocol `proto`.
fn ipv6_with_ext(src_mac: Mac, dst_mac: Mac, src: &str, dst: &str, ext: &[(u8, Vec<u8>)], proto: u8, l4: &[u8]) -> Vec<u8> {
    let (s, d): (Ipv6Addr, Ipv6Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut payload = Vec::new();
    for (i, (_, body)) in ext.iter().enumerate() {
        let mut b = body.clone();
        b[0] = ext.get(i + 1).map_or(proto, |e| e.0);
        payload.extend_from_slice(&b);
    }
    payload.extend_from_slice(l4);
    let first = ext.first().map_or(proto, |e| e.0);
    let mut f = testkit::eth(dst_mac, src_mac, 0x86dd);
    f.extend_from_slice(&testkit::ipv6_header(s, d, first, 64, payload.len()));
    f.extend_from_slice(&payload);
    f
}

fn tcp_to(dport: u16) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&40000u16.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 2;
    t
}

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const DST_OPTS: u8 = 60;

fn opts() -> Vec<u8> {
    vec![0, 0, 1, 4, 0, 0, 0, 0]
}

fn frag(offset: u16, more: bool) -> Vec<u8> {
    let v = (offset << 3) | u16::from(more);
    let mut b = vec![0, 0, 0, 0, 0, 0, 0, 7];
    b[2..4].copy_from_slice(&v.to_be_bytes());
    b
}

#[test]
fn ipv6_extension_headers_do_not_hide_ports_from_the_acl() {
    both(|cache| {
        let mut h1 = Host::new(host1_extended(), cache);
        let chains: Vec<Vec<(u8, Vec<u8>)>> = vec![
            vec![(HOP_BY_HOP, opts())],
            vec![(DST_OPTS, opts())],
            vec![(HOP_BY_HOP, opts()), (ROUTING, vec![0, 0, 0, 0, 0, 0, 0, 0]), (DST_OPTS, opts())],
            vec![(FRAGMENT, frag(0, true))],
            // A non-first fragment: ports unknown, so a port-specific deny rule must be assumed to match.
            vec![(FRAGMENT, frag(2, false))],
        ];
        let frames: Vec<Vec<u8>> = chains.iter().map(|c| from_host2(5001, &ipv6_with_ext(mac(B2), mac(B1), "fd00::7", "fd00::5", c, 6, &tcp_to(23)))).collect();
        assert!(h1.run(UPLINK, &frames).is_empty(), "cache {cache}: {:?}", h1.totals().drops);
        assert_eq!(h1.drops(DropReason::AclDeny), chains.len() as u64);
        // SSH behind the same headers is allowed (first fragments carry the ports).
        let ssh: Vec<Vec<u8>> = chains[..4].iter().map(|c| from_host2(5001, &ipv6_with_ext(mac(B2), mac(B1), "fd00::7", "fd00::5", c, 6, &tcp_to(22)))).collect();
        assert_eq!(h1.run(UPLINK, &ssh).len(), 4);
        // A chain longer than the walk's bound is dropped, counted.
        let long: Vec<(u8, Vec<u8>)> = (0..12).map(|_| (DST_OPTS, opts())).collect();
        assert!(h1.run(UPLINK, &[from_host2(5001, &ipv6_with_ext(mac(B2), mac(B1), "fd00::7", "fd00::5", &long, 6, &tcp_to(22)))]).is_empty());
        assert_eq!(h1.drops(DropReason::Ipv6ExtHeaders), 1);
        h1.reconciles();
    });
}

#[test]
fn ipv4_non_first_fragments_meet_port_specific_deny_rules() {
    both(|cache| {
        let mut h1 = Host::new(policy(BLUE_RED_HOST1), cache);
        let mut f = testkit::tcp_syn(mac(B2), mac(B1), ip("10.0.0.7"), ip("10.0.0.5"), 40000, 22);
        // Offset 8 bytes, then fix the header checksum.
        f[20] = 0;
        f[21] = 1;
        f[24] = 0;
        f[25] = 0;
        let c = !hnv_wire::checksum::data(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        assert!(h1.run(UPLINK, &[from_host2(5001, &f)]).is_empty(), "cache {cache}");
        assert_eq!(h1.drops(DropReason::AclDeny), 1);
        h1.reconciles();
    });
}

// ---- 5. anti-spoofing exemptions ------------------------------------------------------------------

/// A duplicate address detection solicitation: from `::`, no source link-layer option (RFC 4862 §5.4.2).
fn dad_solicit(m: Mac, target: &str) -> Vec<u8> {
    let t: Ipv6Addr = target.parse().unwrap();
    let o = t.octets();
    let group = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00 | u16::from(o[13]), u16::from_be_bytes([o[14], o[15]]));
    let mut icmp = vec![135u8, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&o);
    let ph = hnv_wire::checksum::pseudo_header_v6(&Ipv6Addr::UNSPECIFIED, &group, hnv_wire::IpProtocol::Ipv6Icmp, icmp.len() as u32);
    let c = !hnv_wire::checksum::combine(&[ph, hnv_wire::checksum::data(&icmp)]);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let g = group.octets();
    let mut f = testkit::eth([0x33, 0x33, g[12], g[13], g[14], g[15]], m, 0x86dd);
    f.extend_from_slice(&testkit::ipv6_header(Ipv6Addr::UNSPECIFIED, group, 58, 255, icmp.len()));
    f.extend_from_slice(&icmp);
    f
}

fn eui64(m: Mac) -> Ipv6Addr {
    Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, m[0] ^ 2, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]])
}

#[test]
fn unspecified_source_only_for_dhcp_and_arp_probes() {
    both(|cache| {
        let mut h1 = Host::new(host1_extended(), cache);
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        // To a remote VM and to a local one: both spoofed.
        let remote = testkit::udp(mac(B1), mac(B2), any, IpAddr::V4(ip("10.0.0.7")), 1, 9, 60);
        let local = testkit::udp(mac(B1), mac("00:15:5d:01:00:09"), any, IpAddr::V4(ip("10.0.0.9")), 1, 9, 60);
        assert!(h1.run(BLUE, &[remote, local]).is_empty(), "cache {cache}");
        assert_eq!(h1.drops(DropReason::SpoofedIp), 2);
        // DHCP discover floods to the other local port; an ARP probe is answered from policy.
        let dhcp = testkit::udp(mac(B1), [0xff; 6], any, IpAddr::V4(Ipv4Addr::BROADCAST), 68, 67, 300);
        assert_eq!(h1.run(BLUE, &[dhcp]), vec![(BLUE4, testkit::udp(mac(B1), [0xff; 6], any, IpAddr::V4(Ipv4Addr::BROADCAST), 68, 67, 300))]);
        let probe = testkit::arp_request(mac(B1), Ipv4Addr::UNSPECIFIED, ip("10.0.0.9"));
        assert_eq!(h1.run(BLUE, &[probe]).len(), 1, "another VM's address is in use");
        let own_probe = testkit::arp_request(mac(B1), Ipv4Addr::UNSPECIFIED, ip("10.0.0.5"));
        assert!(h1.run(BLUE, &[own_probe]).is_empty(), "no conflict for its own address");
        assert_eq!(h1.drops(DropReason::DadOwnAddress), 1);
        // IPv6 `::` only for neighbor discovery (DAD).
        let udp6 = testkit::udp(mac(B1), mac(B2), IpAddr::V6(Ipv6Addr::UNSPECIFIED), "fd00::7".parse().unwrap(), 1, 9, 80);
        assert!(h1.run(BLUE, &[udp6]).is_empty());
        assert_eq!(h1.drops(DropReason::SpoofedIp), 3);
        // DAD for its own address is not answered (an advert would fail it); for another VM's, it is.
        let dad = dad_solicit(mac(B1), "fd00::5");
        assert!(h1.run(BLUE, &[dad]).is_empty());
        assert_eq!(h1.drops(DropReason::DadOwnAddress), 2);
        let dad_taken = dad_solicit(mac(B1), "fd00::7");
        let na = h1.run(BLUE, &[dad_taken]);
        assert_eq!(na.len(), 1, "{:?}", h1.totals().drops);
        assert_eq!(&na[0].1[0..6], &[0x33, 0x33, 0, 0, 0, 1], "to all-nodes");
        // An MLDv2 report from `::` behind a Hop-by-Hop header (router alert), as sent during DAD.
        let mld = ipv6_with_ext(mac(B1), [0x33, 0x33, 0, 0, 0, 0x16], "::", "ff02::16", &[(HOP_BY_HOP, vec![0, 0, 5, 2, 0, 0, 1, 0])], 58, &[143, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(h1.run(BLUE, &[mld]).len(), 1, "flooded to Blue4");
        assert_eq!(h1.drops(DropReason::SpoofedIp), 3, "DAD is not spoofing");
        // But `::` with any other ICMPv6 type behind the same header is.
        let echo = ipv6_with_ext(mac(B1), mac(B2), "::", "fd00::7", &[(HOP_BY_HOP, vec![0, 0, 5, 2, 0, 0, 1, 0])], 58, &[128, 0, 0, 0, 0, 0, 0, 0]);
        assert!(h1.run(BLUE, &[echo]).is_empty());
        assert_eq!(h1.drops(DropReason::SpoofedIp), 4);
        h1.reconciles();
    });
}

#[test]
fn link_local_source_only_the_vms_own_and_never_off_link() {
    both(|cache| {
        let mut h1 = Host::new(host1_extended(), cache);
        let other = testkit::udp(mac(B1), mac(B2), "fe80::1234".parse().unwrap(), "fd00::7".parse().unwrap(), 1, 9, 80);
        assert!(h1.run(BLUE, &[other]).is_empty(), "cache {cache}");
        assert_eq!(h1.drops(DropReason::SpoofedIp), 1, "someone else's link-local address");
        let own = IpAddr::V6(eui64(mac(B1)));
        let encap = testkit::udp(mac(B1), mac(B2), own, "fd00::7".parse().unwrap(), 1, 9, 80);
        let routed = testkit::udp(mac(B1), mac(GW5001), own, "fd00::7".parse().unwrap(), 1, 9, 80);
        assert!(h1.run(BLUE, &[encap, routed]).is_empty());
        assert_eq!(h1.drops(DropReason::LinkLocalOffLink), 2);
        // Own link-local to a local multicast group stays on the host.
        let mcast = testkit::udp(mac(B1), [0x33, 0x33, 0, 0, 0, 1], own, "ff02::1".parse().unwrap(), 1, 9, 80);
        assert_eq!(h1.run(BLUE, &[mcast]).len(), 1);
        h1.reconciles();
    });
}

// ---- 6. provider ARP learning --------------------------------------------------------------------

fn host1_without_static_neighbor() -> Policy {
    policy(&BLUE_RED_HOST1.replacen("[[host.neighbors]]\naddress = \"192.168.4.22\"\nmac = \"02:00:c0:a8:04:16\"\n", "", 1))
}

#[test]
fn provider_arp_learns_only_addresses_the_policy_uses_bounded_and_aged() {
    both(|cache| {
        let mut h1 = Host::new(host1_without_static_neighbor(), cache);
        let t0 = Instant::now();
        // Strangers on the provider subnet: not learned.
        let strangers: Vec<Vec<u8>> = (0..200u8).map(|i| testkit::arp_request([2, 0, 0, 0, 1, i], Ipv4Addr::new(192, 168, 4, 100 + (i % 100)), ip("192.168.4.11"))).collect();
        h1.run(UPLINK, &strangers);
        assert!(!h1.store.apply_learned(t0), "cache {cache}");
        assert!(h1.store.learned().is_empty());
        // Host 2 (a PA of the policy's records): learned.
        h1.run(UPLINK, &[testkit::arp_request(mac(PA2_MAC), ip("192.168.4.22"), ip("192.168.4.11"))]);
        assert!(h1.store.apply_learned(t0));
        assert_eq!(h1.store.learned().len(), 1);
        // Aged out when not seen again.
        assert!(h1.store.apply_learned(t0 + hnv_datapath::neighbor::REACHABLE + hnv_datapath::neighbor::STALE + Duration::from_secs(1)));
        assert!(h1.store.learned().is_empty());
        h1.reconciles();
    });
}

#[test]
fn gratuitous_arp_for_the_provider_gateway_does_not_override_a_static_neighbor() {
    both(|cache| {
        let mut p = policy(BLUE_RED_HOST1);
        // Host 2 is off-link, behind the provider gateway (static).
        p.host.neighbors = vec![Neighbor { address: "192.168.4.1".parse().unwrap(), mac: EthernetAddress([2, 0, 0, 0, 0, 1]) }];
        p.host.provider_addresses[0].prefix_len = 28;
        let p = policy(&hnv_policy::to_toml(&p));
        let mut h1 = Host::new(p, cache);
        let out = h1.run(BLUE, &[blue1_to_blue2(1)]);
        assert_eq!(&out[0].1[0..6], &[2, 0, 0, 0, 0, 1]);
        let garp = testkit::arp_request([2, 0, 0, 0, 0x66, 0x66], ip("192.168.4.1"), ip("192.168.4.1"));
        h1.run(UPLINK, &[garp]);
        h1.store.apply_learned(Instant::now());
        let out = h1.run(BLUE, &[blue1_to_blue2(2)]);
        assert_eq!(&out[0].1[0..6], &[2, 0, 0, 0, 0, 1], "the static neighbor wins");
        h1.reconciles();
    });
}
