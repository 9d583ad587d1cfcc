//! The HNV datapath through real DPDK PMDs: the worked example on two switch
//! instances connected by net_ring ports (every byte of every output frame,
//! both directions, ARP included), and the NVGRE that leaves a net_pcap
//! uplink decoded by tshark (Wireshark's dissectors).
#![allow(clippy::unwrap_used)]

mod common;

use hnv_datapath::testkit::{self, mac};
use hnv_datapath::{standard_pipeline, DatapathStats, HnvSwitch, PolicyStore, Totals};
use hnv_policy::example::{BLUE_RED_HOST1, BLUE_RED_HOST2};
use hnv_policy::Policy;
use hnvswitch::config::Config;
use hnvswitch::hnv::port_specs;
use hnvswitch::runtime::Runtime;
use hnvswitch::traffic;
use pmd::dpdk::RingPort;
use pmd::PacketBuf;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Serialises the tests of this file: each starts its own worker on core 0.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn config() -> Config {
    let mut cfg = Config::default();
    cfg.dpdk.workers = vec![0];
    cfg.dpdk.mbufs = 4096;
    cfg
}

/// Run one switch over `policy` until its ports sent `expect_tx` packets; return its counters.
fn run_switch(policy: Policy, expect_tx: u64) -> Totals {
    run_switch_on(policy, expect_tx, vec![0])
}

/// [`run_switch`] with one worker per core in `workers`.
fn run_switch_on(policy: Policy, expect_tx: u64, workers: Vec<usize>) -> Totals {
    let mut cfg = config();
    cfg.dpdk.workers = workers;
    let specs = port_specs(&policy, &cfg);
    let store = Arc::new(PolicyStore::new(policy));
    let rt = Runtime::start(&cfg, &specs).unwrap();
    let stats: Vec<Arc<DatapathStats>> = rt.cores().iter().map(|_| Arc::new(DatapathStats::default())).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    rt.run(
        |w| HnvSwitch::new(store.clone(), standard_pipeline(), stats[w].clone(), w),
        &stop,
        Some(Duration::from_secs(20)),
        Some(Duration::from_millis(20)),
        move |_, rt| {
            if rt.port_stats().iter().map(|s| s.opackets).sum::<u64>() >= expect_tx {
                stop2.store(true, Ordering::Relaxed);
            }
        },
    )
    .unwrap();
    let t = Totals::sum(stats.iter().map(|s| &**s));
    assert!(stop.load(Ordering::Relaxed), "switch did not send {expect_tx} packets in time: {t:?}");
    drop(rt);
    t
}

/// A host of the example on ring ports: inject per port, run, collect per port.
fn ring_host(policy_text: &str, tag: &str, inject: &[(&str, Vec<Vec<u8>>)], expect_tx: u64) -> (HashMap<String, Vec<Vec<u8>>>, Totals) {
    ring_host_on(policy_text, tag, inject, expect_tx, vec![0])
}

fn ring_host_on(policy_text: &str, tag: &str, inject: &[(&str, Vec<Vec<u8>>)], expect_tx: u64, workers: Vec<usize>) -> (HashMap<String, Vec<Vec<u8>>>, Totals) {
    let eal = common::eal();
    let mut policy = hnv_policy::parse(policy_text, "example").unwrap();
    let pool = common::pool(&format!("{tag}_inj"), 2048);
    let mut rings = HashMap::new();
    for p in &mut policy.ports {
        let ring = RingPort::with_queues(eal, &format!("{tag}{}", p.name), 1024, workers.len() as u16).unwrap();
        p.devargs = ring.name().to_string();
        rings.insert(p.name.clone(), ring);
    }
    for (port, frames) in inject {
        rings[*port].inject(common::mbufs(&pool, frames));
    }
    let totals = run_switch_on(policy, expect_tx, workers);
    let out = rings.iter().map(|(n, r)| (n.clone(), r.collect().iter().map(|m| m.data().to_vec()).collect())).collect();
    (out, totals)
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn worked_example_two_hosts_byte_for_byte_through_net_ring() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (b1, b2, r1, r2) = (mac(traffic::BLUE1_MAC), mac(traffic::BLUE2_MAC), mac(traffic::RED1_MAC), mac(traffic::RED2_MAC));
    let (pa1, pa2) = (mac(traffic::PA1_MAC), mac(traffic::PA2_MAC));
    let (ca5, ca7) = (IpAddr::V4(ip("10.0.0.5")), IpAddr::V4(ip("10.0.0.7")));
    let blue = testkit::udp(b1, b2, ca5, ca7, 1111, 9, 128);
    let red = testkit::udp(r1, r2, ca5, ca7, 1111, 9, 128);
    let blue_arp = testkit::arp_request(b1, ip("10.0.0.5"), ip("10.0.0.7"));
    let red_arp = testkit::arp_request(r1, ip("10.0.0.5"), ip("10.0.0.7"));

    // Host 1: both tenants ARP for 10.0.0.7 and send to it.
    let (out1, t1) = ring_host(BLUE_RED_HOST1, "ga", &[("blue1", vec![blue_arp, blue.clone()]), ("red1", vec![red_arp, red.clone()])], 4);
    assert_eq!(out1["blue1"], vec![testkit::arp_reply(b2, ip("10.0.0.7"), b1, ip("10.0.0.5"))]);
    assert_eq!(out1["red1"], vec![testkit::arp_reply(r2, ip("10.0.0.7"), r1, ip("10.0.0.5"))]);
    let fid = testkit::flow_id_of(ca5, ca7, 17, 1111, 9);
    let wire_blue = testkit::nvgre(pa2, pa1, ip("192.168.4.11"), ip("192.168.4.22"), 5001, fid, &blue);
    let wire_red = testkit::nvgre(pa2, pa1, ip("192.168.4.11"), ip("192.168.4.22"), 6001, fid, &red);
    assert_eq!(out1["uplink"], vec![wire_blue.clone(), wire_red.clone()]);
    assert!(t1.reconciles() && t1.total_drops() == 0, "{t1:?}");

    // Host 2 delivers each to its own tenant, unchanged, and answers back.
    let blue_back = testkit::udp(b2, b1, ca7, ca5, 9, 1111, 128);
    let red_back = testkit::udp(r2, r1, ca7, ca5, 9, 1111, 128);
    let (out2, t2) = ring_host(BLUE_RED_HOST2, "gb", &[("uplink", vec![wire_blue, wire_red]), ("blue2", vec![blue_back.clone()]), ("red2", vec![red_back.clone()])], 4);
    assert_eq!(out2["blue2"], vec![blue]);
    assert_eq!(out2["red2"], vec![red]);
    assert!(out2["blue3"].is_empty());
    let fid_back = testkit::flow_id_of(ca7, ca5, 17, 9, 1111);
    let back_b = testkit::nvgre(pa1, pa2, ip("192.168.4.22"), ip("192.168.4.11"), 5001, fid_back, &blue_back);
    let back_r = testkit::nvgre(pa1, pa2, ip("192.168.4.22"), ip("192.168.4.11"), 6001, fid_back, &red_back);
    assert_eq!(out2["uplink"], vec![back_b.clone(), back_r.clone()]);
    assert!(t2.reconciles() && t2.total_drops() == 0, "{t2:?}");

    // Back on host 1.
    let (out3, _) = ring_host(BLUE_RED_HOST1, "gc", &[("uplink", vec![back_b, back_r])], 2);
    assert_eq!(out3["blue1"], vec![blue_back]);
    assert_eq!(out3["red1"], vec![red_back]);
}

/// Issue 13, through real DPDK ports: NVGRE with a wrong outer IPv4 checksum,
/// and NVGRE to a local PA but another host's MAC (flooded unknown unicast on
/// a promiscuous uplink), are dropped under their own names; the good frame
/// behind them is delivered.
#[test]
fn hostile_nvgre_on_the_uplink_is_dropped_and_named() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (b1, b2) = (mac(traffic::BLUE1_MAC), mac(traffic::BLUE2_MAC));
    let (pa1, pa2) = (mac(traffic::PA1_MAC), mac(traffic::PA2_MAC));
    let inner = testkit::udp(b2, b1, IpAddr::V4(ip("10.0.0.7")), IpAddr::V4(ip("10.0.0.5")), 9, 1111, 128);
    let good = testkit::nvgre(pa1, pa2, ip("192.168.4.22"), ip("192.168.4.11"), 5001, 0, &inner);
    let mut bad_checksum = good.clone();
    bad_checksum[24] ^= 0x5a;
    let other_host = testkit::nvgre(mac("02:00:c0:a8:04:63"), pa2, ip("192.168.4.22"), ip("192.168.4.11"), 5001, 0, &inner);
    let (out, t) = ring_host(BLUE_RED_HOST1, "hx", &[("uplink", vec![bad_checksum, other_host, good])], 1);
    assert_eq!(out["blue1"], vec![inner]);
    assert!(out["red1"].is_empty() && out["uplink"].is_empty());
    assert_eq!(t.drops_of(hnv_datapath::DropReason::OuterChecksum), 1, "{t:?}");
    assert_eq!(t.drops_of(hnv_datapath::DropReason::OuterDstMac), 1, "{t:?}");
    assert!(t.reconciles() && t.total_drops() == 2, "{t:?}");
}

/// Point every port of `policy` at pcap files in `dir` through `net_pcap`
/// vdevs named `net_pcap_<tag><index>` (unique per test): `files(name)` lists
/// a port's `rx_pcap`/`tx_pcap` arguments and their file names.
fn pcap_ports(policy: &mut Policy, dir: &std::path::Path, tag: &str, files: impl Fn(&str) -> &'static [(&'static str, &'static str)]) {
    for (i, p) in policy.ports.iter_mut().enumerate() {
        let args: Vec<String> = files(&p.name).iter().map(|(k, f)| format!("{k}={}", dir.join(f).display())).collect();
        p.devargs = format!("net_pcap_{tag}{i},{}", args.join(","));
    }
}

fn tshark_fields(pcap: &std::path::Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = std::process::Command::new("tshark");
    cmd.args(["-r"]).arg(pcap).args(["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=;"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark is installed (scripts/setup.sh --with-test-tools)");
    assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.split('|').map(str::to_string).collect()).collect()
}

#[test]
fn tshark_decodes_the_nvgre_the_uplink_sends() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::eal();
    let dir = common::tempdir("tshark");
    let mut policy = hnv_policy::parse(BLUE_RED_HOST1, "example").unwrap();
    let n = 16;
    let blue: Vec<Vec<u8>> = traffic::vm_traffic(true, n, 60)[..n].to_vec();
    let red: Vec<Vec<u8>> = traffic::vm_traffic(false, n, 60)[..n].to_vec();
    traffic::write_pcap(&dir.join("blue.pcap"), &blue).unwrap();
    traffic::write_pcap(&dir.join("red.pcap"), &red).unwrap();
    pcap_ports(&mut policy, &dir, "ts", |name| match name {
        "uplink" => &[("tx_pcap", "uplink.pcap")],
        "blue1" => &[("rx_pcap", "blue.pcap")],
        _ => &[("rx_pcap", "red.pcap")],
    });
    let t = run_switch(policy, 2 * n as u64);
    assert_eq!(t.encapsulated, 2 * n as u64);
    let rows = tshark_fields(
        &dir.join("uplink.pcap"),
        &["eth.src", "eth.dst", "ip.src", "ip.dst", "ip.ttl", "ip.flags.df", "ip.checksum.status", "gre.proto", "gre.key", "gre.flags_and_version", "eth.type", "udp.srcport"],
    );
    assert_eq!(rows.len(), 2 * n);
    let mut per_vsid: HashMap<u32, usize> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let at = |k: usize, j: usize| r[k].split(';').nth(j).unwrap_or("").to_string();
        assert_eq!(at(0, 0), "02:00:c0:a8:04:0b", "outer source = host 1's PA MAC");
        assert_eq!(at(1, 0), "02:00:c0:a8:04:16", "outer destination = host 2's PA MAC");
        assert_eq!((at(2, 0), at(3, 0)), ("192.168.4.11".into(), "192.168.4.22".into()), "outer PAs");
        assert_eq!((at(2, 1), at(3, 1)), ("10.0.0.5".into(), "10.0.0.7".into()), "inner CAs, unchanged");
        assert_eq!(at(4, 0), "128", "outer TTL");
        assert_eq!(at(5, 0), "1", "DF set");
        assert_eq!(at(6, 0), "1", "outer IPv4 checksum verified good by Wireshark (1 = PROTO_CHECKSUM_E_GOOD)");
        assert_eq!(at(7, 0), "0x6558", "transparent Ethernet bridging");
        assert_eq!(at(9, 0), "0x2000", "C=0 K=1 S=0 Ver=0");
        let key = u32::from_str_radix(at(8, 0).trim_start_matches("0x"), 16).unwrap();
        let vsid = key >> 8;
        assert!(vsid == 5001 || vsid == 6001, "row {i}: key {key:#x}");
        let inner = if vsid == 5001 { &blue } else { &red };
        let sport: u16 = at(11, 0).parse().unwrap();
        let expect_fid = testkit::flow_id_of(IpAddr::V4(ip("10.0.0.5")), IpAddr::V4(ip("10.0.0.7")), 17, sport, 9);
        assert_eq!(key & 0xff, u32::from(expect_fid), "FlowID = hash of the inner 5-tuple");
        assert!(inner.iter().any(|f| u16::from_be_bytes([f[34], f[35]]) == sport));
        *per_vsid.entry(vsid).or_default() += 1;
    }
    assert_eq!(per_vsid[&5001], n);
    assert_eq!(per_vsid[&6001], n);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `BLUE_RED_HOST1` with Blue (5001) on VXLAN.
fn host1_blue_vxlan() -> Policy {
    let text = BLUE_RED_HOST1.replacen("vsid = 5001\nrouting_domain", "vsid = 5001\nencap = \"vxlan\"\nrouting_domain", 1);
    hnv_policy::parse(&text, "example").unwrap()
}

#[test]
fn tshark_decodes_the_vxlan_the_uplink_sends() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::eal();
    let dir = common::tempdir("tshark-vxlan");
    let mut policy = host1_blue_vxlan();
    let n = 16;
    let blue: Vec<Vec<u8>> = traffic::vm_traffic(true, n, 60)[..n].to_vec();
    let red: Vec<Vec<u8>> = traffic::vm_traffic(false, n, 60)[..n].to_vec();
    traffic::write_pcap(&dir.join("blue.pcap"), &blue).unwrap();
    traffic::write_pcap(&dir.join("red.pcap"), &red).unwrap();
    pcap_ports(&mut policy, &dir, "vx", |name| match name {
        "uplink" => &[("tx_pcap", "uplink.pcap")],
        "blue1" => &[("rx_pcap", "blue.pcap")],
        _ => &[("rx_pcap", "red.pcap")],
    });
    let t = run_switch(policy, 2 * n as u64);
    assert_eq!(t.encapsulated, 2 * n as u64);
    let rows = tshark_fields(
        &dir.join("uplink.pcap"),
        &["eth.src", "ip.src", "ip.dst", "ip.ttl", "ip.flags.df", "ip.checksum.status", "udp.srcport", "udp.dstport", "udp.checksum", "vxlan.flags", "vxlan.vni", "gre.key", "eth.type"],
    );
    assert_eq!(rows.len(), 2 * n);
    let (mut vx, mut nv) = (0, 0);
    for (i, r) in rows.iter().enumerate() {
        let at = |k: usize, j: usize| r[k].split(';').nth(j).unwrap_or("").to_string();
        assert_eq!(at(0, 0), "02:00:c0:a8:04:0b", "outer source = host 1's PA MAC");
        assert_eq!((at(1, 0), at(2, 0)), ("192.168.4.11".into(), "192.168.4.22".into()), "outer PAs");
        assert_eq!((at(1, 1), at(2, 1)), ("10.0.0.5".into(), "10.0.0.7".into()), "inner CAs, unchanged");
        assert_eq!((at(3, 0), at(4, 0), at(5, 0)), ("128".into(), "1".into(), "1".into()), "TTL 128, DF, good outer checksum");
        if at(10, 0).is_empty() {
            // Red stays on NVGRE.
            assert_eq!(u32::from_str_radix(at(11, 0).trim_start_matches("0x"), 16).unwrap() >> 8, 6001, "row {i}");
            nv += 1;
            continue;
        }
        vx += 1;
        assert_eq!(at(10, 0), "5001", "row {i}: VNI = Blue's VSID");
        assert_eq!(at(7, 0), "4789");
        assert_eq!(at(8, 0), "0x0000", "UDP checksum 0 over IPv4");
        assert_eq!(at(9, 0), "0x0800", "flags (16 bits in Wireshark): I only");
        assert_eq!(at(12, 1), "0x0800", "the inner frame is decoded as Ethernet carrying IPv4");
        let outer_sport: u16 = at(6, 0).parse().unwrap();
        let inner_sport: u16 = at(6, 1).parse().unwrap();
        let fid = testkit::flow_id_of(IpAddr::V4(ip("10.0.0.5")), IpAddr::V4(ip("10.0.0.7")), 17, inner_sport, 9);
        assert_eq!(outer_sport, hnv_wire::vxlan::src_port(fid), "outer source port = the inner flow's entropy");
        assert!(blue.iter().any(|f| u16::from_be_bytes([f[34], f[35]]) == inner_sport));
    }
    assert_eq!((vx, nv), (n, n));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn vxlan_from_the_uplink_is_decapsulated_and_captured() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::eal();
    let dir = common::tempdir("vxlan-decap");
    let mut policy = host1_blue_vxlan();
    let n = 8;
    let mut input = traffic::uplink_traffic_in(n, 60, true);
    // A VXLAN frame with an R flag set: dropped as vxlan_flags.
    let mut bad = input[0].clone();
    bad[42] = 0x88;
    input.push(bad);
    traffic::write_pcap(&dir.join("up.pcap"), &input).unwrap();
    pcap_ports(&mut policy, &dir, "dx", |name| match name {
        "uplink" => &[("rx_pcap", "up.pcap")],
        "blue1" => &[("tx_pcap", "blue.pcap")],
        _ => &[("tx_pcap", "red.pcap")],
    });
    let mut cfg = config();
    cfg.run.max_packets = input.len() as u64;
    cfg.run.stats_interval_secs = 0.0;
    let rt = Runtime::start(&cfg, &port_specs(&policy, &cfg)).unwrap();
    let pcapng = dir.join("cap.pcapng");
    let spec = hnv_datapath::ext::capture::CaptureSpec { vsids: vec![5001], ..hnv_datapath::ext::capture::CaptureSpec::all() };
    let stop = Arc::new(AtomicBool::new(false));
    let out = hnvswitch::hnv::run_on(&rt, &cfg, None, policy, &stop, Some(hnvswitch::hnv::CaptureRequest { path: pcapng.clone(), spec })).unwrap();
    drop(rt);
    let t = &out.totals;
    assert!(t.reconciles(), "{t:?}");
    assert_eq!(t.decapsulated, 2 * n as u64, "{t:?}");
    assert_eq!(t.drops_of(hnv_datapath::DropReason::VxlanFlags), 1, "{t:?}");
    for (file, vsid_mac) in [("blue.pcap", "00:15:5d:01:00:05"), ("red.pcap", "00:15:5d:02:00:05")] {
        let rows = tshark_fields(&dir.join(file), &["eth.dst", "ip.src", "udp.dstport", "vxlan.vni"]);
        assert_eq!(rows.len(), n, "{file}");
        assert!(rows.iter().all(|r| r[0] == vsid_mac && r[1] == "10.0.0.7" && r[2] == "9" && r[3].is_empty()), "{file}: inner frames only: {rows:?}");
    }
    // The capture sees Blue's decapsulated frames, in customer-address form, on ingress and egress.
    let rows = tshark_fields(&pcapng, &["frame.comment", "ip.src", "vxlan.vni"]);
    assert_eq!(rows.iter().filter(|r| r[0].starts_with("ingress vsid 5001")).count(), n, "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r[0].starts_with("egress vsid 5001")).count(), n, "{rows:?}");
    assert!(rows.iter().all(|r| r[2].is_empty()), "no outer headers in the capture: {rows:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn capture_extension_writes_pcapng_that_tshark_reads() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::eal();
    let dir = common::tempdir("capture");
    let mut policy = hnv_policy::parse(BLUE_RED_HOST1, "example").unwrap();
    let blue: Vec<Vec<u8>> = traffic::vm_traffic(true, 8, 60);
    traffic::write_pcap(&dir.join("blue.pcap"), &blue).unwrap();
    for p in &mut policy.ports {
        p.devargs = match p.name.as_str() {
            "uplink" => format!("net_pcap_capup,tx_pcap={}", dir.join("uplink.pcap").display()),
            "blue1" => format!("net_pcap_capb,rx_pcap={}", dir.join("blue.pcap").display()),
            _ => "net_null_capr,no-rx=1".to_string(),
        };
    }
    let mut cfg = config();
    cfg.run.max_packets = blue.len() as u64;
    cfg.run.stats_interval_secs = 0.0;
    let rt = Runtime::start(&cfg, &port_specs(&policy, &cfg)).unwrap();
    let pcapng = dir.join("cap.pcapng");
    let spec = hnv_datapath::ext::capture::CaptureSpec { vsids: vec![5001], ..hnv_datapath::ext::capture::CaptureSpec::all() };
    let stop = Arc::new(AtomicBool::new(false));
    let out = hnvswitch::hnv::run_on(&rt, &cfg, None, policy, &stop, Some(hnvswitch::hnv::CaptureRequest { path: pcapng.clone(), spec })).unwrap();
    drop(rt);
    assert!(out.totals.reconciles());
    // Ingress: every Blue1 frame (the spoofed one is dropped at ingress, before the extensions).
    // Egress: the 8 encapsulated UDP frames and the ARP reply; the routed packet
    // leaves in VSID 5002, which this capture does not select.
    let rows = tshark_fields(&pcapng, &["frame.interface_name", "frame.comment", "eth.src", "arp.opcode", "ip.dst"]);
    let ingress = rows.iter().filter(|r| r[1].starts_with("ingress vsid 5001")).count();
    let egress = rows.iter().filter(|r| r[1].starts_with("egress vsid 500")).count();
    assert_eq!(ingress, blue.len() - 1, "{rows:?}");
    assert_eq!(egress, blue.len() - 2, "{rows:?}");
    assert!(!rows.iter().any(|r| r[1].starts_with("egress") && r[4] == "10.0.1.9"), "{rows:?}");
    assert!(rows.iter().all(|r| r[0] == "blue1"), "filed under the ingress port's interface: {rows:?}");
    assert!(rows.iter().any(|r| r[3] == "2"), "the ARP reply is captured on egress");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn one_and_two_workers_produce_the_same_frames() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cores = hnvswitch::config::available_cores();
    let two = if cores.len() >= 2 { vec![cores[0], cores[1]] } else { vec![0, 0] };
    let inject = vec![("blue1", traffic::vm_traffic(true, 200, 60)), ("red1", traffic::vm_traffic(false, 200, 60)), ("uplink", traffic::uplink_traffic(100, 60))];
    // Every frame but the spoofed one per VM is sent somewhere.
    let expect = 200 * 2 + 2 + 1 + 200;
    let (a, ta) = ring_host_on(BLUE_RED_HOST1, "w1", &inject, expect, vec![0]);
    let (b, tb) = ring_host_on(BLUE_RED_HOST1, "w2", &inject, expect, two);
    for port in ["uplink", "blue1", "red1"] {
        // Each port is polled by one worker, so per-port order holds; the uplink
        // interleaves Blue and Red traffic differently across workers: compare as multisets.
        let (mut x, mut y) = (a[port].clone(), b[port].clone());
        x.sort();
        y.sort();
        assert_eq!(x, y, "port {port}");
    }
    assert_eq!((ta.rx, ta.tx, ta.total_drops()), (tb.rx, tb.tx, tb.total_drops()));
    assert!(ta.reconciles() && tb.reconciles());
}

/// `BLUE_RED_HOST1` with IPv6 CAs for Blue1 and Blue2 and an IPv6 gateway in VSID 5001.
fn host1_with_ipv6() -> Policy {
    let text = BLUE_RED_HOST1.replacen("addresses = [\"10.0.0.5\"]", "addresses = [\"10.0.0.5\", \"fd00::5\"]", 1).replacen(
        "prefixes = [\"10.0.0.0/24\"]\ngateway_v4 = \"10.0.0.1\"",
        "prefixes = [\"10.0.0.0/24\", \"fd00::/64\"]\ngateway_v4 = \"10.0.0.1\"\ngateway_v6 = \"fd00::1\"",
        1,
    ) + "\n[[lookup]]\nca = \"fd00::5\"\nvsid = 5001\nmac = \"00:15:5d:01:00:05\"\npa = \"192.168.4.11\"\n\n[[lookup]]\nca = \"fd00::7\"\nvsid = 5001\nmac = \"00:15:5d:01:00:07\"\npa = \"192.168.4.22\"\n";
    hnv_policy::parse(&text, "example").unwrap()
}

/// Path MTU through real DPDK ports (net_pcap): with the example's uplink
/// MTU of 1500, Blue1 sends an IPv4 frame exactly at the NVGRE limit (1472
/// bytes: encapsulated), one byte over with DF (answered), one over without
/// DF (dropped) and an IPv6 frame over the limit (answered); Wireshark's
/// dissectors read the errors Blue1's port sends back: type 3 code 4 with
/// MTU 1458 and ICMPv6 type 2 with MTU 1458, every checksum good, from the
/// subnet's gateway, quoting the offending packet.
/// MSS clamping through real DPDK ports (net_pcap): with `mss_clamp = true`
/// on the example's 1500-byte uplink, Blue1's SYN offering MSS 1460 leaves
/// encapsulated offering 1418 (1500 − 42 − 40), and Wireshark's dissector
/// finds the inner TCP checksum right; a SYN already below it is untouched.
#[test]
fn tshark_sees_the_clamped_mss_with_a_good_checksum() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::eal();
    let dir = common::tempdir("tshark-mss");
    let (b1, b2) = (mac(traffic::BLUE1_MAC), mac(traffic::BLUE2_MAC));
    let syns = vec![testkit::tcp_syn_mss(b1, b2, ip("10.0.0.5"), ip("10.0.0.7"), 40000, 5201, 1460), testkit::tcp_syn_mss(b1, b2, ip("10.0.0.5"), ip("10.0.0.7"), 40001, 5201, 1200)];
    traffic::write_pcap(&dir.join("blue.pcap"), &syns).unwrap();
    let text = BLUE_RED_HOST1.replacen("[host]\n", "[host]\nmss_clamp = true\n", 1);
    let mut policy = hnv_policy::parse(&text, "example").unwrap();
    policy.ports.retain(|p| p.name != "red1");
    pcap_ports(&mut policy, &dir, "ms", |name| match name {
        "uplink" => &[("tx_pcap", "uplink.pcap")],
        _ => &[("rx_pcap", "blue.pcap")],
    });
    let t = run_switch(policy, 2);
    assert_eq!((t.encapsulated, t.mss_clamped), (2, 1), "{t:?}");
    assert!(t.reconciles(), "{t:?}");
    let rows = tshark_fields(&dir.join("uplink.pcap"), &["gre.key", "tcp.srcport", "tcp.options.mss_val", "tcp.checksum.status", "ip.checksum.status"]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (r, (port, want)) in rows.iter().zip([("40000", "1418"), ("40001", "1200")]) {
        assert_eq!((r[1].as_str(), r[2].as_str()), (port, want), "{rows:?}");
        assert_eq!(r[3], "1", "the inner TCP checksum is good (Wireshark: 1 = good, 0 = bad): {rows:?}");
        assert_eq!(r[4], "1;1", "outer and inner IPv4 checksums good: {rows:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tshark_decodes_the_path_mtu_errors_sent_to_the_vm() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::eal();
    let dir = common::tempdir("tshark-pmtu");
    let (b1, b2) = (mac(traffic::BLUE1_MAC), mac(traffic::BLUE2_MAC));
    let (ca5, ca7) = (IpAddr::V4(ip("10.0.0.5")), IpAddr::V4(ip("10.0.0.7")));
    let (v6_5, v6_7): (IpAddr, IpAddr) = ("fd00::5".parse().unwrap(), "fd00::7".parse().unwrap());
    let at_limit = testkit::udp(b1, b2, ca5, ca7, 1111, 9, 1472);
    let over_df = testkit::udp(b1, b2, ca5, ca7, 1112, 9, 1473);
    let mut over_no_df = testkit::udp(b1, b2, ca5, ca7, 1113, 9, 1473);
    over_no_df[20] = 0;
    over_no_df[24..26].fill(0);
    let c = !hnv_wire::checksum::data(&over_no_df[14..34]);
    over_no_df[24..26].copy_from_slice(&c.to_be_bytes());
    let over_v6 = testkit::udp(b1, b2, v6_5, v6_7, 1114, 9, 1600);
    let blue = vec![at_limit, over_df.clone(), over_no_df, over_v6.clone()];
    let red = vec![testkit::udp(mac(traffic::RED1_MAC), mac(traffic::RED2_MAC), ca5, ca7, 1111, 9, 128)];
    traffic::write_pcap(&dir.join("blue.pcap"), &blue).unwrap();
    traffic::write_pcap(&dir.join("red.pcap"), &red).unwrap();
    let mut policy = host1_with_ipv6();
    pcap_ports(&mut policy, &dir, "pm", |name| match name {
        "uplink" => &[("tx_pcap", "uplink.pcap")],
        "blue1" => &[("rx_pcap", "blue.pcap"), ("tx_pcap", "blue_out.pcap")],
        _ => &[("rx_pcap", "red.pcap")],
    });
    let t = run_switch(policy, 4);
    assert_eq!((t.encapsulated, t.too_big_sent, t.drops_of(hnv_datapath::DropReason::EncapTooBig)), (2, 2, 1), "{t:?}");
    assert!(t.reconciles(), "{t:?}");
    let up = tshark_fields(&dir.join("uplink.pcap"), &["frame.len", "ip.len"]);
    assert!(up.iter().any(|r| r[0] == "1514" && r[1].starts_with("1500;1458")), "the frame at the limit leaves at exactly the uplink MTU: {up:?}");
    let rows = tshark_fields(
        &dir.join("blue_out.pcap"),
        &[
            "eth.src",
            "eth.dst",
            "ip.src",
            "ip.dst",
            "ip.checksum.status",
            "icmp.type",
            "icmp.code",
            "icmp.mtu",
            "icmp.checksum.status",
            "ipv6.src",
            "ipv6.dst",
            "icmpv6.type",
            "icmpv6.mtu",
            "icmpv6.checksum.status",
            "udp.srcport",
            "frame.len",
        ],
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    let at = |r: &Vec<String>, k: usize, j: usize| r[k].split(';').nth(j).unwrap_or("").to_string();
    let v4 = rows.iter().find(|r| !r[5].is_empty()).expect("an ICMP error");
    assert_eq!((at(v4, 0, 0), at(v4, 1, 0)), ("02:48:4e:00:13:89".into(), traffic::BLUE1_MAC.to_string()), "from the gateway MAC to Blue1");
    assert_eq!((at(v4, 2, 0), at(v4, 3, 0)), ("10.0.0.1".into(), "10.0.0.5".into()), "from the subnet's gateway to the sender");
    assert_eq!((at(v4, 2, 1), at(v4, 3, 1)), ("10.0.0.5".into(), "10.0.0.7".into()), "quoting the offending header");
    assert_eq!(at(v4, 4, 0), "1", "IPv4 header checksum good");
    assert_eq!((at(v4, 5, 0), at(v4, 6, 0), at(v4, 7, 0), at(v4, 8, 0)), ("3".into(), "4".into(), "1458".into(), "1".into()), "fragmentation needed, MTU 1458, checksum good");
    assert_eq!(at(v4, 14, 0), "1112", "the quote's 8 bytes: the offending packet's UDP ports");
    let v6 = rows.iter().find(|r| !r[11].is_empty()).expect("an ICMPv6 error");
    assert_eq!((at(v6, 9, 0), at(v6, 10, 0)), ("fd00::1".into(), "fd00::5".into()));
    assert_eq!((at(v6, 9, 1), at(v6, 10, 1)), ("fd00::5".into(), "fd00::7".into()), "quoting the offending packet");
    assert_eq!((at(v6, 11, 0), at(v6, 12, 0), at(v6, 13, 0)), ("2".into(), "1458".into(), "1".into()), "packet too big, MTU 1458, checksum good");
    assert_eq!(at(v6, 15, 0), "1294", "14 + 1280: the error fills the IPv6 minimum MTU");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Provider next-hop resolution through real DPDK ports: host 1 without a
/// static neighbor for host 2 drops Blue1's first packet as
/// `nexthop_unresolved`, sends an ARP request for 192.168.4.22 from its PA
/// on the net_ring uplink (checked byte by byte and by tshark), takes host
/// 2's reply, and then encapsulates Blue1's traffic to host 2's PA MAC.
#[test]
fn with_no_static_neighbor_the_switch_arps_for_its_next_hop_and_then_encapsulates() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let eal = common::eal();
    let dir = common::tempdir("nbr-arp");
    let text = BLUE_RED_HOST1.replacen("[[host.neighbors]]\naddress = \"192.168.4.22\"\nmac = \"02:00:c0:a8:04:16\"\n", "", 1);
    assert_ne!(text, BLUE_RED_HOST1);
    let mut policy = hnv_policy::parse(&text, "example").unwrap();
    let pool = common::pool("nbr_inj", 256);
    let mut rings = HashMap::new();
    for p in &mut policy.ports {
        let ring = RingPort::with_queues(eal, &format!("nb{}", p.name), 1024, 1).unwrap();
        p.devargs = ring.name().to_string();
        rings.insert(p.name.clone(), ring);
    }
    let (b1, b2, pa1, pa2) = (mac(traffic::BLUE1_MAC), mac(traffic::BLUE2_MAC), mac(traffic::PA1_MAC), mac(traffic::PA2_MAC));
    let (ca5, ca7) = (IpAddr::V4(ip("10.0.0.5")), IpAddr::V4(ip("10.0.0.7")));
    let blue = testkit::udp(b1, b2, ca5, ca7, 1111, 9, 128);
    rings["blue1"].inject(common::mbufs(&pool, std::slice::from_ref(&blue)));

    let cfg = config();
    let specs = port_specs(&policy, &cfg);
    let store = Arc::new(PolicyStore::new(policy));
    let rt = Runtime::start(&cfg, &specs).unwrap();
    let stats = vec![Arc::new(DatapathStats::default())];
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    // What the uplink sent, in order; the phase: 0 waiting for the request, 1 for the republish, 2 for the NVGRE.
    let mut uplink_out: Vec<Vec<u8>> = Vec::new();
    let mut phase = 0;
    let mut unresolved_before_reply = 0;
    let (store2, stats2) = (store.clone(), stats.clone());
    rt.run(
        |w| HnvSwitch::new(store.clone(), standard_pipeline(), stats[w].clone(), w),
        &stop,
        Some(Duration::from_secs(20)),
        Some(Duration::from_millis(20)),
        |_, _| {
            // The control thread's tick, as `hnvswitch run` does it every 100 ms.
            let republished = store2.apply_learned(std::time::Instant::now());
            uplink_out.extend(rings["uplink"].collect().iter().map(|m| m.data().to_vec()));
            match phase {
                0 if uplink_out.iter().any(|f| f[12..14] == [0x08, 0x06]) => {
                    unresolved_before_reply = Totals::sum(stats2.iter().map(|s| &**s)).drops_of(hnv_datapath::DropReason::NextHopUnresolved);
                    rings["uplink"].inject(common::mbufs(&pool, &[testkit::arp_reply(pa2, ip("192.168.4.22"), pa1, ip("192.168.4.11"))]));
                    phase = 1;
                }
                1 if republished => {
                    rings["blue1"].inject(common::mbufs(&pool, std::slice::from_ref(&blue)));
                    phase = 2;
                }
                2 if uplink_out.iter().any(|f| f[12..14] == [0x08, 0x00]) => stop2.store(true, Ordering::Relaxed),
                _ => {}
            }
        },
    )
    .unwrap();
    let t = Totals::sum(stats.iter().map(|s| &**s));
    assert!(stop.load(Ordering::Relaxed), "no NVGRE after resolution in time (phase {phase}): {t:?}");
    drop(rt);

    // Before the reply: the first packet was dropped and counted.
    assert_eq!(unresolved_before_reply, 1, "{t:?}");
    assert_eq!(t.drops_of(hnv_datapath::DropReason::NextHopUnresolved), 1);
    // The request, byte for byte: broadcast, from host 1's PA MAC and PA, for host 2's PA, padded to 60.
    let arps: Vec<&Vec<u8>> = uplink_out.iter().filter(|f| f[12..14] == [0x08, 0x06]).collect();
    let mut want = vec![0xff; 6];
    want.extend_from_slice(&pa1);
    want.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    want.extend_from_slice(&pa1);
    want.extend_from_slice(&[192, 168, 4, 11, 0, 0, 0, 0, 0, 0, 192, 168, 4, 22]);
    want.resize(60, 0);
    assert_eq!(arps[0], &want);
    // Then the encapsulated packet, to host 2's PA MAC.
    let fid = testkit::flow_id_of(ca5, ca7, 17, 1111, 9);
    let nvgre: Vec<&Vec<u8>> = uplink_out.iter().filter(|f| f[12..14] == [0x08, 0x00]).collect();
    assert_eq!(nvgre, vec![&testkit::nvgre(pa2, pa1, ip("192.168.4.11"), ip("192.168.4.22"), 5001, fid, &blue)]);
    assert!(t.neighbor_requests >= 1 && t.encapsulated == 1, "{t:?}");
    assert!(t.reconciles(), "{t:?}");
    let (entries, counts, _) = store.neighbors();
    let e = entries.iter().find(|e| e.ip == IpAddr::V4(ip("192.168.4.22"))).unwrap();
    assert_eq!((e.state, e.source, e.mac), (hnv_datapath::neighbor::State::Reachable, hnv_datapath::neighbor::Source::Resolved, Some(pa2)));
    assert_eq!(counts.accepted, 1);

    // Wireshark's ARP dissector reads the request the same way.
    traffic::write_pcap(&dir.join("uplink.pcap"), &uplink_out).unwrap();
    let rows = tshark_fields(&dir.join("uplink.pcap"), &["eth.dst", "eth.src", "arp.opcode", "arp.src.hw_mac", "arp.src.proto_ipv4", "arp.dst.proto_ipv4", "_ws.expert"]);
    let first = &rows[0];
    assert_eq!(first[..6], ["ff:ff:ff:ff:ff:ff", "02:00:c0:a8:04:0b", "1", "02:00:c0:a8:04:0b", "192.168.4.11", "192.168.4.22"], "{rows:?}");
    assert_eq!(first[6], "", "no expert-info warnings: {rows:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
