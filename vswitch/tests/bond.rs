//! Bonded uplinks through DPDK's own bonding PMD (`net_bonding`): host 1 of
//! the worked example with its uplink a bond of two `net_null` members, which
//! the switch probes from the port's `members` before the bond. (`net_ring`
//! cannot be a member in DPDK 22.11: the bond sets its members' MAC addresses,
//! which `net_ring` does not support. Which member sent what is read from the
//! members' own ethdev counters.)
//!
//! - Active-backup: NVGRE leaves by the primary member only; its link is taken
//!   down under a steady stream of one frame per millisecond, the bond moves
//!   traffic to the other member, the switch logs and counts the failover, and
//!   the test reports the frames lost on the dead link and the time to recover.
//! - Balance-xor: which member a frame leaves by is DPDK's hash of the outer
//!   headers. NVGRE has no L4 ports, so `l34` hashes only the outer IPs: every
//!   flow between two hosts takes one member whatever its FlowID; flows to
//!   several hosts spread over both members.
//! - Balance by flow (`balance = "flow"`): the worker picks the member by the
//!   NVGRE key, so 64 flows with 64 FlowIDs to one host use both members, each
//!   flow always the same one; a member whose link (or, for af_packet, kernel
//!   carrier) goes down carries nothing more; `balance` on an active-backup bond is refused.
//! - af_packet members on real veth pairs (root only; skipped, saying so,
//!   without): DPDK 22.11's `net_af_packet` reports no link change, so the
//!   switch watches each member's kernel carrier and moves the active-backup
//!   bond's primary when a veth's peer goes down, and back when it returns.
#![allow(clippy::unwrap_used)]

mod common;

use hnv_datapath::testkit::{self, mac};
use hnv_datapath::{standard_pipeline, DatapathStats, HnvSwitch, PolicyStore};
use hnv_policy::example::BLUE_RED_HOST1;
use hnvswitch::config::{Balance, Config, PortEntry};
use hnvswitch::hnv::port_specs;
use hnvswitch::runtime::Runtime;
use hnvswitch::traffic;
use pmd::dpdk::{member_down, BondStatus, RingPort};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Serialises the tests of this file: each starts its own worker on core 0.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Host 1 of the example with its uplink the bond `uplink_devargs` of `members`.
struct Host {
    rt: Runtime,
    store: Arc<PolicyStore>,
    stats: Vec<Arc<DatapathStats>>,
}

fn host(policy_text: &str, tag: &str, uplink_devargs: &str, members: &[String], vm_rings: &mut Vec<(String, RingPort)>) -> Host {
    try_host(policy_text, tag, uplink_devargs, members, None, vm_rings).unwrap()
}

/// [`host`] with the uplink's `balance` policy; `Err` when the switch does not start.
fn try_host(policy_text: &str, tag: &str, uplink_devargs: &str, members: &[String], balance: Option<Balance>, vm_rings: &mut Vec<(String, RingPort)>) -> anyhow::Result<Host> {
    let eal = common::eal();
    let mut policy = hnv_policy::parse(policy_text, "example").unwrap();
    for p in &mut policy.ports {
        if p.name == "uplink" {
            p.devargs = uplink_devargs.to_string();
        } else {
            let ring = RingPort::create(eal, &format!("{tag}{}", p.name), 4096).unwrap();
            p.devargs = ring.name().to_string();
            vm_rings.push((p.name.clone(), ring));
        }
    }
    let mut cfg = Config::default();
    cfg.dpdk.workers = vec![0];
    cfg.dpdk.mbufs = 8192;
    cfg.ports.push(PortEntry { name: "uplink".into(), devargs: uplink_devargs.into(), rx_queues: None, mtu: None, members: members.to_vec(), balance });
    let specs = port_specs(&policy, &cfg);
    let rt = Runtime::start(&cfg, &specs)?;
    let stats = rt.cores().iter().map(|_| Arc::new(DatapathStats::default())).collect();
    Ok(Host { rt, store: Arc::new(PolicyStore::new(policy)), stats })
}

impl Host {
    /// Run the switch while `body` drives it from this thread.
    fn run_while(&self, body: impl FnOnce(&Runtime)) {
        /// Stops the switch however `body` ends (a failed assertion included).
        struct StopOnDrop(Arc<AtomicBool>);
        impl Drop for StopOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        std::thread::scope(|s| {
            let _stop = StopOnDrop(stop.clone());
            s.spawn(|| self.rt.run(|w| HnvSwitch::new(self.store.clone(), standard_pipeline(), self.stats[w].clone(), w), &stop, Some(Duration::from_secs(60)), None, |_, _| {}).unwrap());
            // The bond activates its members once it has seen their links up.
            let end = Instant::now() + Duration::from_secs(2);
            while uplink_status(&self.rt).members.iter().any(|m| !m.active) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
            // The watcher samples every 20 ms; make sure it has seen the members up.
            self.rt.watch_bonds();
            body(&self.rt);
        });
    }
}

fn uplink_row(rt: &Runtime) -> hnvswitch::bond::BondRow {
    let set = rt.ports();
    let i = set.names.iter().position(|n| n == "uplink").unwrap();
    hnvswitch::bond::row(&set.ports[i]).expect("the uplink is a bond")
}

fn uplink_status(rt: &Runtime) -> BondStatus {
    let set = rt.ports();
    let i = set.names.iter().position(|n| n == "uplink").unwrap();
    set.ports[i].bond_status().unwrap()
}

/// Packets each member has sent.
fn member_tx(rt: &Runtime) -> (u64, u64) {
    let s = uplink_status(rt);
    (s.members[0].tx_packets, s.members[1].tx_packets)
}

/// Wait until the members together have sent `n` packets (at most 2 s).
fn wait_tx(rt: &Runtime, n: u64) -> (u64, u64) {
    let end = Instant::now() + Duration::from_secs(2);
    loop {
        let (a, b) = member_tx(rt);
        if a + b >= n || Instant::now() > end {
            return (a, b);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn blue_udp(sport: u16, to: Ipv4Addr, to_mac: &str) -> Vec<u8> {
    testkit::udp(mac(traffic::BLUE1_MAC), mac(to_mac), IpAddr::V4(ip("10.0.0.5")), IpAddr::V4(to), sport, 9, 128)
}

#[test]
fn active_backup_fails_over_to_the_other_member_and_counts_it() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pool = common::pool("ab_inj", 4096);
    let mut vms = Vec::new();
    let members = vec!["net_null_aba,no-rx=1".to_string(), "net_null_abb,no-rx=1".to_string()];
    // DPDK 23.11's `member=` is accepted for 22.11's `slave=`; members listed in the
    // configuration are probed first and appended.
    let h = host(BLUE_RED_HOST1, "ab", "net_bonding_ab,mode=1,member=net_null_aba", &members, &mut vms);
    let blue1 = &vms.iter().find(|(n, _)| n == "blue1").unwrap().1;
    let (before, after) = (200u64, 300u64);
    let mut report = String::new();
    h.run_while(|rt| {
        let row = uplink_row(rt);
        assert_eq!(row.bond, "active-backup");
        assert_eq!(row.active_member, "net_null_aba", "{row:?}");
        assert_eq!(row.failovers, 0);
        assert_eq!(row.members, "net_null_aba(up,active) net_null_abb(up,backup)");
        let a_id = uplink_status(rt).members[0].port_id;
        // A steady stream of one frame per millisecond.
        for seq in 0..before {
            blue1.inject(common::mbufs(&pool, &[blue_udp(10_000 + seq as u16, ip("10.0.0.7"), traffic::BLUE2_MAC)]));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(wait_tx(rt, before), (before, 0), "everything leaves by the primary");
        member_down(a_id).unwrap();
        let down_at = Instant::now();
        let mut switched_after = None;
        let mut first_on_b = None;
        for seq in before..before + after {
            blue1.inject(common::mbufs(&pool, &[blue_udp(10_000 + seq as u16, ip("10.0.0.7"), traffic::BLUE2_MAC)]));
            std::thread::sleep(Duration::from_millis(1));
            if switched_after.is_none() && uplink_status(rt).transmitting().first().map(|m| m.name.as_str()) == Some("net_null_abb") {
                switched_after = Some(down_at.elapsed());
            }
            if first_on_b.is_none() && member_tx(rt).1 > 0 {
                first_on_b = Some(down_at.elapsed());
            }
        }
        let (a, b) = wait_tx(rt, before + after);
        let switched_after = switched_after.expect("the bond made the backup member active");
        // The switch's watcher (every 20 ms) logged and counted it.
        let end = Instant::now() + Duration::from_secs(2);
        while uplink_row(rt).failovers == 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        let row = uplink_row(rt);
        // Until the bond notices, frames go to the failed member, which refuses them
        // (a stopped net_null) or sends them into a dead link (counted as sent by A).
        let refused: u64 = rt.worker_stats().iter().map(|w| w.tx_refused.get()).sum();
        let lost = before + after - b - before;
        report = format!(
            "active-backup failover at 1000 frames/s: {lost} frames lost ({refused} refused by the failed member and counted as tx-refused, {} sent on it after its link went down); backup active after {:.1} ms, first frame on it after {:.1} ms; {a} frames by A, {b} by B",
            a - before,
            switched_after.as_secs_f64() * 1e3,
            first_on_b.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
        );
        assert_eq!(row.failovers, 1, "{row:?}");
        assert_eq!(row.active_member, "net_null_abb");
        assert_eq!(row.members, "net_null_aba(down,inactive) net_null_abb(up,active)");
        assert_eq!(lost, refused + (a - before), "every lost frame is counted: {report}");
        assert!(lost < 100, "{report}");
        assert!(switched_after < Duration::from_millis(500), "{report}");
    });
    eprintln!("{report}");
    drop(h);
}

/// Four more hosts with a Blue VM each, so that flows from Blue1 reach several PAs.
const MORE_HOSTS: &str = r#"
[[lookup]]
ca = "10.0.0.31"
vsid = 5001
mac = "00:15:5d:01:00:31"
pa = "192.168.4.31"

[[lookup]]
ca = "10.0.0.32"
vsid = 5001
mac = "00:15:5d:01:00:32"
pa = "192.168.4.32"

[[lookup]]
ca = "10.0.0.33"
vsid = 5001
mac = "00:15:5d:01:00:33"
pa = "192.168.4.33"

[[lookup]]
ca = "10.0.0.34"
vsid = 5001
mac = "00:15:5d:01:00:34"
pa = "192.168.4.34"

[[host.neighbors]]
address = "192.168.4.31"
mac = "02:00:c0:a8:04:1f"

[[host.neighbors]]
address = "192.168.4.32"
mac = "02:00:c0:a8:04:20"

[[host.neighbors]]
address = "192.168.4.33"
mac = "02:00:c0:a8:04:21"

[[host.neighbors]]
address = "192.168.4.34"
mac = "02:00:c0:a8:04:22"
"#;

#[test]
fn balance_xor_spreads_by_outer_addresses_not_by_flow_id() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pool = common::pool("bx_inj", 4096);
    let mut vms = Vec::new();
    let policy = format!("{BLUE_RED_HOST1}\n{MORE_HOSTS}");
    let members = vec!["net_null_bxa,no-rx=1".to_string(), "net_null_bxb,no-rx=1".to_string()];
    let h = host(&policy, "bx", "net_bonding_bx,mode=2,xmit_policy=l34", &members, &mut vms);
    let blue1 = &vms.iter().find(|(n, _)| n == "blue1").unwrap().1;
    h.run_while(|rt| {
        let row = uplink_row(rt);
        assert_eq!(row.bond, "balance-xor l34");
        assert_eq!(row.active_member, "net_null_bxa net_null_bxb");
        // 64 flows, with many FlowIDs, to one remote host: one member.
        let flows: Vec<Vec<u8>> = (0..64).map(|i| blue_udp(20_000 + i, ip("10.0.0.7"), traffic::BLUE2_MAC)).collect();
        let fids: BTreeSet<u8> = (0..64).map(|i| testkit::flow_id_of(IpAddr::V4(ip("10.0.0.5")), IpAddr::V4(ip("10.0.0.7")), 17, 20_000 + i, 9)).collect();
        assert!(fids.len() > 16, "the flows carry many FlowIDs");
        blue1.inject(common::mbufs(&pool, &flows));
        let (a, b) = wait_tx(rt, 64);
        assert_eq!(a + b, 64);
        assert!(a == 0 || b == 0, "l34 over NVGRE hashes the outer IPs only: one host pair, one member ({a} by A, {b} by B)");

        // Flows to four more hosts: the outer destinations differ, so they spread.
        let targets = [("10.0.0.31", "00:15:5d:01:00:31"), ("10.0.0.32", "00:15:5d:01:00:32"), ("10.0.0.33", "00:15:5d:01:00:33"), ("10.0.0.34", "00:15:5d:01:00:34")];
        let frames: Vec<Vec<u8>> = targets.iter().flat_map(|(ca, m)| (0..8).map(move |i| blue_udp(30_000 + i, ip(ca), m))).collect();
        blue1.inject(common::mbufs(&pool, &frames));
        let (a2, b2) = wait_tx(rt, 64 + frames.len() as u64);
        assert_eq!(a2 + b2, 64 + frames.len() as u64);
        assert!(a2 > a && b2 > b, "five hosts spread over both members: A {a} -> {a2}, B {b} -> {b2}");

        // A member leaving the balancing set is a failover too; its share moves to the other.
        member_down(uplink_status(rt).members[0].port_id).unwrap();
        let end = Instant::now() + Duration::from_secs(2);
        while uplink_row(rt).failovers == 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        let row = uplink_row(rt);
        assert_eq!((row.failovers, row.active_member.as_str()), (1, "net_null_bxb"), "{row:?}");
        blue1.inject(common::mbufs(&pool, &frames));
        let (a3, b3) = wait_tx(rt, 64 + 2 * frames.len() as u64);
        assert_eq!((a3, b3), (a2, b2 + frames.len() as u64));
    });
    drop(h);
}

/// `balance = "flow"`: the worker picks the member by the NVGRE key (VSID<<8 |
/// FlowID), so flows to ONE remote host spread over both members, each flow
/// always by the same member; with one member's link down, everything leaves
/// by the other.
#[test]
fn balance_flow_spreads_flows_to_one_host_by_flow_id() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pool = common::pool("bf_inj", 4096);
    let mut vms = Vec::new();
    let members = vec!["net_null_bfa,no-rx=1".to_string(), "net_null_bfb,no-rx=1".to_string()];
    let h = try_host(BLUE_RED_HOST1, "bf", "net_bonding_bf,mode=2,xmit_policy=l34", &members, Some(Balance::Flow), &mut vms).unwrap();
    let blue1 = &vms.iter().find(|(n, _)| n == "blue1").unwrap().1;
    // 64 flows from Blue1 to Blue2 (one remote host), each with its own FlowID.
    let mut seen = BTreeSet::new();
    let sports: Vec<u16> = (20_000u16..).filter(|&sp| seen.insert(testkit::flow_id_of(IpAddr::V4(ip("10.0.0.5")), IpAddr::V4(ip("10.0.0.7")), 17, sp, 9))).take(64).collect();
    let mut report = String::new();
    h.run_while(|rt| {
        let row = uplink_row(rt);
        assert_eq!(row.bond, "balance-xor flow", "{row:?}");
        assert_eq!(row.active_member, "net_null_bfa net_null_bfb");
        // Each flow alone, three frames, twice over: which member took it.
        let mut by = Vec::new();
        let mut total = 0u64;
        for round in 0..2 {
            for (i, &sp) in sports.iter().enumerate() {
                let before = member_tx(rt);
                let frame = blue_udp(sp, ip("10.0.0.7"), traffic::BLUE2_MAC);
                blue1.inject(common::mbufs(&pool, &[frame.clone(), frame.clone(), frame]));
                total += 3;
                let after = wait_tx(rt, total);
                let d = (after.0 - before.0, after.1 - before.1);
                let member = match d {
                    (3, 0) => 0,
                    (0, 3) => 1,
                    _ => panic!("flow {i} (sport {sp}) split over the members or lost: {d:?}"),
                };
                if round == 0 {
                    by.push(member);
                } else {
                    assert_eq!(member, by[i], "flow {i} (sport {sp}) changed member between rounds");
                }
            }
        }
        let on_b = by.iter().filter(|&&m| m == 1).count();
        let on_a = by.len() - on_b;
        report = format!("balance=flow: 64 flows to one host with 64 FlowIDs: {on_a} by member A, {on_b} by member B");
        assert!(on_a * 5 >= 64 && on_b * 5 >= 64, "each member carries at least 20% of the flows: {report}");
        // All 64 flows in one burst: grouped by member, each flow where it was.
        let burst: Vec<Vec<u8>> = sports.iter().map(|&sp| blue_udp(sp, ip("10.0.0.7"), traffic::BLUE2_MAC)).collect();
        let before = member_tx(rt);
        blue1.inject(common::mbufs(&pool, &burst));
        total += 64;
        let after = wait_tx(rt, total);
        assert_eq!((after.0 - before.0, after.1 - before.1), (on_a as u64, on_b as u64), "{report}");

        // Member A's link goes down: the watcher drops it from the active set; all flows leave by B.
        member_down(uplink_status(rt).members[0].port_id).unwrap();
        let end = Instant::now() + Duration::from_secs(2);
        while uplink_row(rt).failovers == 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        let row = uplink_row(rt);
        assert_eq!((row.failovers, row.active_member.as_str()), (1, "net_null_bfb"), "{row:?}");
        let before = member_tx(rt);
        blue1.inject(common::mbufs(&pool, &burst));
        total += 64;
        let after = wait_tx(rt, total);
        assert_eq!((after.0 - before.0, after.1 - before.1), (0, 64), "every flow leaves by the remaining member");
        let refused: u64 = rt.worker_stats().iter().map(|w| w.tx_refused.get()).sum();
        assert_eq!(refused, 0, "nothing was refused");
    });
    eprintln!("{report}");
    drop(h);
}

/// `balance = "flow"` is only for a balance-mode bond: on an active-backup bond
/// the switch does not start, and says why.
#[test]
fn balance_flow_on_an_active_backup_bond_is_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut vms = Vec::new();
    let members = vec!["net_null_bra,no-rx=1".to_string(), "net_null_brb,no-rx=1".to_string()];
    let e = try_host(BLUE_RED_HOST1, "br", "net_bonding_br,mode=1", &members, Some(Balance::Flow), &mut vms).err().expect("refused");
    let e = format!("{e:#}");
    assert!(e.contains("balance = \"flow\" needs a balance-mode bond (mode=2), not mode=1 (active-backup)"), "{e}");
}

/// Veth pairs whose peers live in a network namespace this test creates; our
/// ends stay in the test's namespace for `net_af_packet`. Removing the
/// namespace (on drop) removes the peers, and with them our ends.
struct Veths {
    ns: String,
    ours: Vec<String>,
    peers: Vec<String>,
}

fn ip_cmd(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip").args(args).output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Veths {
    /// `n` veth pairs, both ends up; `Err` when this process may not create them (not root).
    fn create(tag: &str, n: usize) -> Result<Veths, String> {
        let pid = std::process::id();
        let ns = format!("hnvbt-{tag}{pid}");
        ip_cmd(&["netns", "add", &ns])?;
        let mut v = Veths { ns, ours: Vec::new(), peers: Vec::new() };
        let _ = std::process::Command::new("ip").args(["netns", "exec", &v.ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]).status();
        for i in 0..n {
            let (ours, peer) = (format!("hb{tag}{pid}{i}"), format!("peer{i}"));
            ip_cmd(&["link", "add", "name", &ours, "type", "veth", "peer", "name", &peer, "netns", &v.ns])?;
            v.ours.push(ours.clone());
            v.peers.push(peer.clone());
            let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{ours}/disable_ipv6"), "1");
            ip_cmd(&["link", "set", &ours, "up"])?;
            ip_cmd(&["-n", &v.ns, "link", "set", &peer, "up"])?;
        }
        // Wait for the carriers (a veth's comes up once both ends are up).
        let end = Instant::now() + Duration::from_secs(5);
        while !v.ours.iter().all(|o| carrier(o)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(v)
    }

    /// Set peer `i` down or up: our end's kernel carrier follows.
    fn peer_link(&self, i: usize, up: bool) {
        ip_cmd(&["-n", &self.ns, "link", "set", &self.peers[i], if up { "up" } else { "down" }]).unwrap();
    }

    /// Frames peer `i` received (what the member really put on the wire).
    fn peer_rx(&self, i: usize) -> u64 {
        let out = std::process::Command::new("ip").args(["netns", "exec", &self.ns, "cat", &format!("/sys/class/net/{}/statistics/rx_packets", self.peers[i])]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
    }
}

impl Drop for Veths {
    fn drop(&mut self) {
        let _ = ip_cmd(&["netns", "del", &self.ns]);
        for o in &self.ours {
            let _ = ip_cmd(&["link", "del", o]);
        }
    }
}

fn carrier(iface: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/carrier")).is_ok_and(|c| c.trim() == "1")
}

/// DPDK 22.11's `net_af_packet` never reports its link down; the switch
/// watches the kernel carrier of its interface and moves the active-backup
/// bond's primary, so a bond of af_packet members on veth pairs fails over
/// when a veth loses its carrier, and back when the primary's returns. Needs root (veths, a namespace);
/// skipped, saying so, without.
#[test]
fn af_packet_members_fail_over_on_the_kernel_carrier() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let veths = match Veths::create("ap", 2) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("SKIP af_packet_members_fail_over_on_the_kernel_carrier: cannot create veth pairs in a namespace (needs root): {e}");
            return;
        }
    };
    assert!(veths.ours.iter().all(|o| carrier(o)), "veth carriers up");
    let pool = common::pool("ap_inj", 4096);
    let mut vms = Vec::new();
    let members: Vec<String> = veths.ours.iter().enumerate().map(|(i, o)| format!("net_af_packet_ap{i},iface={o}")).collect();
    let h = host(BLUE_RED_HOST1, "ap", "net_bonding_ap,mode=1,primary=net_af_packet_ap0", &members, &mut vms);
    let blue1 = &vms.iter().find(|(n, _)| n == "blue1").unwrap().1;
    let mut seq = 0u16;
    // One frame per millisecond from Blue1 to Blue2 (on host 2: leaves by the uplink) for `ms`.
    let mut stream = |ms: u64| {
        for _ in 0..ms {
            blue1.inject(common::mbufs(&pool, &[blue_udp(10_000u16.wrapping_add(seq), ip("10.0.0.7"), traffic::BLUE2_MAC)]));
            seq = seq.wrapping_add(1);
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let mut report = Vec::new();
    h.run_while(|rt| {
        let row = uplink_row(rt);
        assert_eq!((row.bond.as_str(), row.active_member.as_str(), row.failovers, row.carrier_changes), ("active-backup", "net_af_packet_ap0", 0, 0), "{row:?}");
        let rx0 = (veths.peer_rx(0), veths.peer_rx(1));
        stream(200);
        let (a, b) = wait_tx(rt, 200);
        assert!(a >= 200 && b == 0, "everything leaves by the primary: A {a}, B {b}");
        assert!(veths.peer_rx(0) >= rx0.0 + 200, "the frames reach the primary's veth peer");

        // The primary's veth loses its carrier (its peer set down).
        veths.peer_link(0, false);
        let down_at = Instant::now();
        let mut switched = None;
        for _ in 0..300 {
            stream(1);
            if switched.is_none() && uplink_status(rt).transmitting().first().map(|m| m.name.as_str()) == Some("net_af_packet_ap1") {
                switched = Some(down_at.elapsed());
            }
        }
        let switched = switched.expect("the switch made the backup primary");
        let (a2, b2) = wait_tx(rt, a + 200);
        let row = uplink_row(rt);
        assert_eq!((row.active_member.as_str(), row.failovers, row.carrier_changes), ("net_af_packet_ap1", 1, 1), "{row:?}");
        assert!(row.members.starts_with("net_af_packet_ap0(down,inactive)"), "{row:?}");
        assert!(b2 > 200 && veths.peer_rx(1) >= rx0.1 + 200, "the backup carries the stream: B sent {b2}, its peer got {}", veths.peer_rx(1) - rx0.1);
        report.push(format!("carrier down: backup primary after {:.1} ms; {} frames sent on A after the carrier dropped", switched.as_secs_f64() * 1e3, a2 - a));

        // The carrier returns: the primary takes over again.
        veths.peer_link(0, true);
        let up_at = Instant::now();
        let mut back = None;
        for _ in 0..500 {
            stream(1);
            if back.is_none() && uplink_status(rt).transmitting().first().map(|m| m.name.as_str()) == Some("net_af_packet_ap0") {
                back = Some(up_at.elapsed());
            }
        }
        let back = back.expect("the primary took over again when its carrier returned");
        let end = Instant::now() + Duration::from_secs(2);
        while uplink_row(rt).failovers < 2 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        let row = uplink_row(rt);
        assert_eq!((row.active_member.as_str(), row.failovers, row.carrier_changes), ("net_af_packet_ap0", 2, 2), "{row:?}");
        let (a3, _) = member_tx(rt);
        assert!(a3 > a2, "the primary sends again: A {a2} -> {a3}");
        report.push(format!("carrier up: primary active again after {:.1} ms (the switch reads the carrier every 10 ms)", back.as_secs_f64() * 1e3));
    });
    eprintln!("af_packet bond: {}", report.join("; "));
    drop(h);
    drop(veths);
}

/// `balance = "flow"` over af_packet members on veth pairs (root only; skipped,
/// saying so, without): DPDK's own balance policies cannot take a member
/// without kernel carrier out, but the flow-balanced bond's workers leave it
/// out of the active set, so every flow moves to the other member.
#[test]
fn balance_flow_moves_flows_off_an_af_packet_member_without_carrier() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let veths = match Veths::create("fb", 2) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("SKIP balance_flow_moves_flows_off_an_af_packet_member_without_carrier: cannot create veth pairs in a namespace (needs root): {e}");
            return;
        }
    };
    let pool = common::pool("fb_inj", 4096);
    let mut vms = Vec::new();
    let members: Vec<String> = veths.ours.iter().enumerate().map(|(i, o)| format!("net_af_packet_fb{i},iface={o}")).collect();
    let h = try_host(BLUE_RED_HOST1, "fb", "net_bonding_fb,mode=2", &members, Some(Balance::Flow), &mut vms).unwrap();
    let blue1 = &vms.iter().find(|(n, _)| n == "blue1").unwrap().1;
    let burst: Vec<Vec<u8>> = (0..64).map(|i| blue_udp(20_000 + i, ip("10.0.0.7"), traffic::BLUE2_MAC)).collect();
    h.run_while(|rt| {
        let row = uplink_row(rt);
        assert_eq!((row.bond.as_str(), row.active_member.as_str()), ("balance-xor flow", "net_af_packet_fb0 net_af_packet_fb1"), "{row:?}");
        let before = member_tx(rt);
        blue1.inject(common::mbufs(&pool, &burst));
        let after = wait_tx(rt, before.0 + before.1 + 64);
        let d = (after.0 - before.0, after.1 - before.1);
        assert!(d.0 > 0 && d.1 > 0 && d.0 + d.1 == 64, "both veths carry flows: {d:?}");

        veths.peer_link(0, false);
        let end = Instant::now() + Duration::from_secs(2);
        while uplink_row(rt).failovers == 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        let row = uplink_row(rt);
        assert_eq!((row.failovers, row.carrier_changes, row.active_member.as_str()), (1, 1, "net_af_packet_fb1"), "{row:?}");
        let before = member_tx(rt);
        blue1.inject(common::mbufs(&pool, &burst));
        let after = wait_tx(rt, before.0 + before.1 + 64);
        assert_eq!((after.0 - before.0, after.1 - before.1), (0, 64), "every flow leaves by the member with carrier");
    });
    drop(h);
    drop(veths);
}
