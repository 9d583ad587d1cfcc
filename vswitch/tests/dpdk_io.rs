//! The I/O layer through real DPDK PMDs: frames injected into net_ring and
//! net_pcap ports come out of the real rx/tx burst path byte for byte, and
//! the worker loop stops cleanly with counters that reconcile.
#![allow(clippy::unwrap_used)]

mod common;

use hnvswitch::config::Config;
use hnvswitch::fwd::CrossConnect;
use hnvswitch::runtime::{PortSpec, Runtime};
use hnvswitch::traffic;
use pmd::dpdk::{DpdkIo, Port, PortConfig, RingPort};
use pmd::{Batch, PacketBuf, PortIo};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn frames(n: usize) -> Vec<Vec<u8>> {
    let (a, b) = (std::net::IpAddr::from([10, 0, 0, 1]), std::net::IpAddr::from([10, 0, 0, 2]));
    (0..n).map(|i| hnv_datapath::testkit::udp([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], a, b, 1000 + i as u16, 53, 60 + (i % 7) * 100)).collect()
}

#[test]
fn ring_ports_move_frames_byte_for_byte_through_rx_and_tx_burst() {
    let eal = common::eal();
    let pool = common::pool("io_ring_pool", 4096);
    let a = RingPort::create(eal, "io_a", 1024).unwrap();
    let b = RingPort::create(eal, "io_b", 1024).unwrap();
    let pa = Port::open(eal, &PortConfig::new(a.name()), pool.clone()).unwrap();
    let pb = Port::open(eal, &PortConfig::new(b.name()), pool.clone()).unwrap();
    let sent = frames(100);
    assert_eq!(a.inject(common::mbufs(&pool, &sent)), 100);
    let mut io = DpdkIo::new(vec![pa.id(), pb.id()], 0);
    let mut got = 0;
    let mut batch: Batch<pmd::dpdk::Mbuf> = Batch::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got < 100 && Instant::now() < deadline {
        let n = io.rx_burst(0, 0, &mut batch);
        got += n;
        let mut out: arrayvec::ArrayVec<_, 32> = batch.drain(..).collect();
        let m = io.tx_burst(1, &mut out);
        assert_eq!(m, n, "net_ring accepts every packet");
    }
    let out: Vec<Vec<u8>> = b.collect().iter().map(|m| m.data().to_vec()).collect();
    assert_eq!(out, sent);
    let (sa, sb) = (pa.stats(), pb.stats());
    assert_eq!((sa.ipackets, sb.opackets), (100, 100));
    assert!(pa.link().up);
}

#[test]
fn pcap_ports_forward_a_capture_file_unchanged_through_the_worker_loop() {
    common::eal();
    let dir = common::tempdir("pcapio");
    let (src, dst) = (dir.join("in.pcap"), dir.join("out.pcap"));
    let sent = frames(500);
    traffic::write_pcap(&src, &sent).unwrap();
    let specs = vec![
        PortSpec { name: "in".into(), config: PortConfig::new(format!("net_pcap_io0,rx_pcap={}", src.display())), key: "ports".into() },
        PortSpec { name: "out".into(), config: PortConfig::new(format!("net_pcap_io1,tx_pcap={}", dst.display())), key: "ports".into() },
    ];
    let mut cfg = Config::default();
    cfg.dpdk.workers = vec![0];
    cfg.dpdk.mbufs = 4096;
    let rt = Runtime::start(&cfg, &specs).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let workers = rt
        .run(
            |_| CrossConnect::new(vec![1, 0], false),
            &stop,
            Some(Duration::from_secs(20)),
            Some(Duration::from_millis(50)),
            move |_, rt| {
                if rt.port_stats()[1].opackets >= 500 {
                    stop2.store(true, Ordering::Relaxed);
                }
            },
        )
        .unwrap();
    assert!(stop.load(Ordering::Relaxed));
    let st = &workers[0];
    assert_eq!((st.rx.get(), st.tx.get(), st.tx_refused.get()), (500, 500, 0));
    drop(rt); // closing net_pcap flushes the tx file
    assert_eq!(traffic::read_pcap(&dst).unwrap(), sent);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn worker_loop_stops_cleanly_on_request_under_load() {
    let eal = common::eal();
    let ring = RingPort::create(eal, "io_stop", 4096).unwrap();
    let specs = vec![
        PortSpec { name: "src".into(), config: PortConfig::new(ring.name()), key: "ports".into() },
        PortSpec { name: "sink".into(), config: PortConfig::new("net_null_iostop,no-rx=1"), key: "ports".into() },
    ];
    let mut cfg = Config::default();
    cfg.dpdk.workers = vec![0];
    cfg.dpdk.mbufs = 8192;
    let rt = Runtime::start(&cfg, &specs).unwrap();
    let pool = rt.pool().unwrap().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let injected = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::scope(|s| {
        let (stop_i, injected) = (stop.clone(), &injected);
        let feeder = s.spawn(move || {
            let one = frames(1);
            for _ in 0..50 {
                let n = ring.inject(common::mbufs(&pool, &vec![one[0].clone(); 64]));
                injected.fetch_add(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
            stop_i.store(true, Ordering::Relaxed);
            ring
        });
        let w = rt.run(|_| CrossConnect::new(vec![1, 0], false), &stop, Some(Duration::from_secs(20)), None, |_, _| {}).unwrap();
        (w, feeder.join().unwrap())
    });
    let (workers, ring) = workers;
    let st = &workers[0];
    let rx_port = rt.port_stats()[0].ipackets;
    // Whatever the worker received before stopping was sent on, and nothing is in flight.
    assert_eq!(st.rx.get(), rx_port);
    assert_eq!(st.rx.get(), st.tx.get() + st.tx_refused.get());
    assert!(st.rx.get() > 0 && st.rx.get() as usize <= injected.load(Ordering::Relaxed));
    drop(rt);
    drop(ring);
}
