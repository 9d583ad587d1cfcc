//! `hnvswitch demo`: the embedded default, on virtual devices that exist on
//! every machine.
//!
//! It writes its own traffic file into a private temporary directory,
//! replays it with `net_pcap` (`infinite_rx=1`) through the switch into
//! `net_null`, prints per-second rates and the final counters, and removes
//! the directory.

use crate::config::{Config, Mode};
use crate::fwd::CrossConnect;
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
        println!("\nfinal port counters:\n{}", port_table(rt.names(), &rt.port_stats()));
        println!("workers:\n{}", worker_table(&workers));
        rt.shutdown();
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
