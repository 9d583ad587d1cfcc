//! `hnvswitch demo`: the embedded default, on virtual devices that exist on
//! every machine.
//!
//! The HNV demo is host 1 of hnv.md's worked example: VM ports Blue1 and
//! Red1 (VSIDs 5001 and 6001, both CA 10.0.0.5) and an uplink, each a
//! `net_pcap` port replaying (`infinite_rx=1`) a traffic file the binary
//! writes into a private temporary directory: the VMs send UDP to their peers
//! on host 2 (10.0.0.7, same CA in both tenants), ARP for them, route once via
//! the gateway and try one spoofed packet; the uplink carries host 2's NVGRE
//! traffic for both tenants. It prints per-second rates, then per-port,
//! per-VSID and per-reason counters, and removes the directory.
//! `--io` runs the plain cross-connect (net_pcap → net_null) instead.

use crate::config::{Config, Mode};
use crate::fwd::CrossConnect;
use crate::hnv;
use crate::runtime::{port_table, worker_table, PortSpec, Runtime};
use crate::{rate_printer, secs, stop_on_signals, traffic};
use anyhow::{Context, Result};
use pmd::dpdk::PortConfig;

/// Run the I/O demo for `duration` seconds (0 = until Ctrl-C).
pub fn run_io(duration: f64) -> Result<()> {
    let dir = tempdir()?;
    let src = dir.join("demo_64.pcap");
    traffic::write_pcap(&src, &traffic::udp_flows(1024, 60))?;
    let mut cfg = Config::default();
    cfg.forwarding.mode = Mode::Io;
    let specs = vec![
        PortSpec { name: "src".into(), config: PortConfig::new(format!("net_pcap_demo0,rx_pcap={},infinite_rx=1", src.display())), key: "ports".into() },
        PortSpec { name: "sink".into(), config: PortConfig::new("net_null_demo0,no-rx=1"), key: "ports".into() },
    ];
    println!("hnvswitch demo: port cross-connect, net_pcap (1024 UDP flows, 64-byte frames, replayed) -> net_null");
    let stop = stop_on_signals()?;
    let result = (|| -> Result<()> {
        let rt = Runtime::start(&cfg, &specs)?;
        let workers = rt.run(|_| CrossConnect::new(vec![1, 0], false), &stop, secs(duration), secs(1.0), rate_printer())?;
        println!("\nfinal port counters:\n{}", port_table(&rt.names(), &rt.port_stats()));
        println!("workers:\n{}", worker_table(&workers));
        rt.shutdown();
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Run the HNV worked-example demo for `duration` seconds (0 = until Ctrl-C).
pub fn run_hnv(duration: f64) -> Result<()> {
    let dir = tempdir()?;
    let result = (|| -> Result<()> {
        let files = [
            ("uplink", dir.join("uplink_rx.pcap"), traffic::uplink_traffic(256, 60)),
            ("blue1", dir.join("blue1_tx.pcap"), traffic::vm_traffic(true, 256, 60)),
            ("red1", dir.join("red1_tx.pcap"), traffic::vm_traffic(false, 256, 60)),
        ];
        let mut policy = hnv_policy::parse(hnv_policy::example::BLUE_RED_HOST1, "<embedded demo policy>")?;
        for (name, path, frames) in &files {
            traffic::write_pcap(path, frames)?;
            if let Some(p) = policy.ports.iter_mut().find(|p| &p.name == name) {
                p.devargs = format!("net_pcap_{name},rx_pcap={},infinite_rx=1", path.display());
            }
        }
        let mut cfg = Config::default();
        cfg.forwarding.mode = Mode::Hnv;
        cfg.run.duration_secs = duration;
        println!("hnvswitch demo: host 1 of the Blue/Red worked example (hnv.md §2) on net_pcap ports replaying:");
        println!("  blue1  (VSID 5001, CA 10.0.0.5): UDP to Blue2 10.0.0.7, ARP for it, one routed packet to Blue3 10.0.1.9, one spoofed source");
        println!("  red1   (VSID 6001, CA 10.0.0.5): UDP to Red2 10.0.0.7, ARP for it, one spoofed source");
        println!("  uplink (PA 192.168.4.11): NVGRE from host 2 (192.168.4.22) for both tenants");
        let stop = stop_on_signals()?;
        let out = hnv::run(&cfg, None, policy, &stop, None)?;
        anyhow::ensure!(out.totals.reconciles(), "datapath counters do not reconcile");
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// A fresh private directory under the system temporary directory.
pub fn tempdir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("hnvswitch-{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
