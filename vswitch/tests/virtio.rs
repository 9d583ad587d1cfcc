//! The uplink on DPDK's virtio PMD, as inside a VM with a virtio-net NIC:
//! host 1 of the worked example has the uplink `net_virtio_user` (the virtio
//! PMD driving a vhost-user socket, in place of QEMU's virtio-net device), and
//! host 2 is the vhost-user backend, its uplink `net_vhost` (server) on that
//! socket. Both switches run in this process (one EAL); VM ports are
//! `net_ring`. NVGRE flows both ways: Blue1's and Red1's frames arrive
//! decapsulated at Blue2 and Red2, and their answers back, byte for byte.
//!
//! Multi-queue: both uplinks have two queue pairs (`queues=2`) and each switch
//! two workers. The vhost-user backend offers no RSS (no VIRTIO_NET_F_RSS), so
//! the sender picks the queue: each worker transmits on its own queue and
//! the peer receives on the queue of the same number. Blue's traffic is polled
//! by worker 0 and Red's by worker 1 on both hosts, so both queue pairs carry
//! traffic in both directions (checked on the PMDs' per-queue counters).
#![allow(clippy::unwrap_used)]

mod common;

use hnv_datapath::testkit::{self, mac};
use hnv_datapath::{standard_pipeline, DatapathStats, HnvSwitch, PolicyStore, Totals};
use hnv_policy::example::{BLUE_RED_HOST1, BLUE_RED_HOST2};
use hnvswitch::config::{Config, PortEntry};
use hnvswitch::hnv::port_specs;
use hnvswitch::runtime::Runtime;
use hnvswitch::traffic;
use pmd::dpdk::RingPort;
use pmd::PacketBuf;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

struct Host {
    rt: Runtime,
    store: Arc<PolicyStore>,
    stats: Vec<Arc<DatapathStats>>,
    vms: Vec<(String, RingPort)>,
}

fn host(policy_text: &str, tag: &str, uplink: &str) -> Host {
    let eal = common::eal();
    let mut policy = hnv_policy::parse(policy_text, "example").unwrap();
    let mut vms = Vec::new();
    for p in &mut policy.ports {
        if p.name == "uplink" {
            p.devargs = uplink.to_string();
        } else {
            let ring = RingPort::with_queues(eal, &format!("{tag}{}", p.name), 1024, 2).unwrap();
            p.devargs = ring.name().to_string();
            vms.push((p.name.clone(), ring));
        }
    }
    let mut cfg = Config::default();
    // Two workers: each has its own tx queue on the uplink, and polls one of its two rx queues.
    let cores = hnvswitch::config::available_cores();
    cfg.dpdk.workers = if cores.len() >= 2 { vec![cores[0], cores[1]] } else { vec![0, 0] };
    cfg.dpdk.mbufs = 4096;
    cfg.ports.push(PortEntry { name: "uplink".into(), devargs: uplink.into(), rx_queues: Some(2), mtu: None, members: Vec::new(), balance: None });
    // Two switches share core 0 here: let an idle worker yield it.
    cfg.dpdk.idle_sleep_us = 50;
    let rt = Runtime::start(&cfg, &port_specs(&policy, &cfg)).unwrap();
    let stats = rt.cores().iter().map(|_| Arc::new(DatapathStats::default())).collect();
    Host { rt, store: Arc::new(PolicyStore::new(policy)), stats, vms }
}

impl Host {
    fn vm(&self, name: &str) -> &RingPort {
        &self.vms.iter().find(|(n, _)| n == name).unwrap().1
    }
    fn uplink_link_up(&self) -> bool {
        let set = self.rt.ports();
        let i = set.names.iter().position(|n| n == "uplink").unwrap();
        set.ports[i].link().up
    }
    /// The uplink's driver and per-queue packet counters.
    fn uplink_queues(&self) -> (String, [u64; 4]) {
        let set = self.rt.ports();
        let i = set.names.iter().position(|n| n == "uplink").unwrap();
        let x = set.ports[i].xstats();
        let get = |k: &str| x.iter().find(|(n, _)| n == k).map_or(u64::MAX, |(_, v)| *v);
        (set.ports[i].driver().to_string(), [get("rx_q0_good_packets"), get("rx_q1_good_packets"), get("tx_q0_good_packets"), get("tx_q1_good_packets")])
    }
    fn totals(&self) -> Totals {
        Totals::sum(self.stats.iter().map(|s| &**s))
    }
}

fn collect_until(ring: &RingPort, want: usize, within: Duration) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let end = Instant::now() + within;
    while got.len() < want && Instant::now() < end {
        got.extend(ring.collect().iter().map(|m| m.data().to_vec()));
        std::thread::sleep(Duration::from_millis(5));
    }
    got
}

#[test]
fn nvgre_both_ways_over_virtio_user_and_vhost_user() {
    common::eal();
    let dir = common::tempdir("virtio");
    let sock = dir.join("uplink.sock");
    // The backend first: net_vhost creates the socket; net_virtio_user connects when probed.
    let h2 = host(BLUE_RED_HOST2, "vt2", &format!("net_vhost_vt2,iface={},queues=2", sock.display()));
    let h1 = host(BLUE_RED_HOST1, "vt1", &format!("net_virtio_user_vt1,path={},queues=2", sock.display()));
    let pool = common::pool("vt_inj", 2048);
    let stop = Arc::new(AtomicBool::new(false));
    let (b1, b2, r1, r2) = (mac(traffic::BLUE1_MAC), mac(traffic::BLUE2_MAC), mac(traffic::RED1_MAC), mac(traffic::RED2_MAC));
    let (ca5, ca7) = (IpAddr::V4(ip("10.0.0.5")), IpAddr::V4(ip("10.0.0.7")));
    // 32 flows each way per tenant; the source port of the first side numbers them.
    let out = |from, to, base: u16| (0..32u16).map(|i| testkit::udp(from, to, ca5, ca7, base + i, 9, 200)).collect::<Vec<_>>();
    let back = |from, to, base: u16| (0..32u16).map(|i| testkit::udp(from, to, ca7, ca5, 9, base + i, 200)).collect::<Vec<_>>();
    let (blue_out, red_out) = (out(b1, b2, 40_000), out(r1, r2, 41_000));
    let (blue_back, red_back) = (back(b2, b1, 40_000), back(r2, r1, 41_000));
    std::thread::scope(|s| {
        for h in [&h1, &h2] {
            let stop = stop.clone();
            s.spawn(move || {
                h.rt.run(|w| HnvSwitch::new(h.store.clone(), standard_pipeline(), h.stats[w].clone(), w), &stop, Some(Duration::from_secs(60)), None, |_, _| {}).unwrap();
            });
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let end = Instant::now() + Duration::from_secs(10);
            while !(h1.uplink_link_up() && h2.uplink_link_up()) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(h1.uplink_link_up() && h2.uplink_link_up(), "virtio-user and vhost-user came up");
            h1.vm("blue1").inject(common::mbufs(&pool, &blue_out));
            h1.vm("red1").inject(common::mbufs(&pool, &red_out));
            assert_eq!(collect_until(h2.vm("blue2"), 32, Duration::from_secs(10)), blue_out, "Blue1's frames arrive at Blue2 unchanged, through NVGRE over virtio");
            assert_eq!(collect_until(h2.vm("red2"), 32, Duration::from_secs(10)), red_out, "Red1's at Red2");
            h2.vm("blue2").inject(common::mbufs(&pool, &blue_back));
            h2.vm("red2").inject(common::mbufs(&pool, &red_back));
            assert_eq!(collect_until(h1.vm("blue1"), 32, Duration::from_secs(10)), blue_back, "and the answers come back");
            assert_eq!(collect_until(h1.vm("red1"), 32, Duration::from_secs(10)), red_back);
        }));
        stop.store(true, Ordering::Relaxed);
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    });
    // [rx q0, rx q1, tx q0, tx q1]: Blue on queue pair 0, Red on queue pair 1, both ways.
    assert_eq!(h1.uplink_queues(), ("net_virtio_user".to_string(), [32, 32, 32, 32]));
    assert_eq!(h2.uplink_queues(), ("net_vhost".to_string(), [32, 32, 32, 32]));
    let (t1, t2) = (h1.totals(), h2.totals());
    assert_eq!((t1.encapsulated, t1.decapsulated), (64, 64), "{t1:?}");
    assert_eq!((t2.encapsulated, t2.decapsulated), (64, 64), "{t2:?}");
    assert!(t1.reconciles() && t2.reconciles() && t1.total_drops() == 0 && t2.total_drops() == 0, "{t1:?} {t2:?}");
    drop(h1);
    drop(h2);
    std::fs::remove_dir_all(&dir).unwrap();
}
