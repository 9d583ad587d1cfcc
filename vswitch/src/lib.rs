//! hnvswitch: a DPDK-backed virtual switch for Hyper-V Network Virtualization.
//!
//! How the pieces are wired:
//! - [`config`] reads the startup file (cores, memory, ports, mode);
//! - [`service`] owns the policy in force and applies every change to it
//!   (policy file and SIGHUP, `hnvctl`, etcd, port hot-add/remove); its
//!   adapters are [`ctl`] (the control socket: server, client, protocol,
//!   `show`), [`etcd`] (the watcher) and [`metrics`], wired by [`hnv`];
//! - [`runtime`] starts DPDK (EAL, mempool, ports) through `pmd::dpdk` and runs
//!   one pinned poll-mode worker per core, each calling a `pmd::Processor`
//!   once per burst;
//! - the processors are [`fwd::CrossConnect`] (I/O validation modes) and the
//!   HNV datapath (`hnv_datapath`), fed by policy snapshots (`hnv_policy`);
//! - [`demo`] runs the embedded default on virtual devices only;
//! - [`traffic`] writes the pcap traffic files the demo, tests and scripts replay.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bond;
pub mod config;
pub mod ctl;
pub mod demo;
pub mod etcd;
pub mod etcd_security;
pub mod fwd;
pub mod hnv;
pub mod logging;
pub mod metrics;
pub mod runtime;
pub mod scenarios;
pub mod service;
pub mod traffic;

use anyhow::Result;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Stop flag set by SIGINT and SIGTERM.
pub fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    Ok(stop)
}

/// A duration from seconds, `None` for zero.
pub fn secs(s: f64) -> Option<Duration> {
    (s > 0.0).then(|| Duration::from_secs_f64(s))
}

/// `part` as a percentage of `whole`, one decimal; 0 when `whole` is 0.
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (1000.0 * part as f64 / whole as f64).round() / 10.0
    }
}

/// Receive and transmit packets per second between two counter readings `dt` seconds apart.
pub fn pps(prev: &pmd::dpdk::PortStats, now: &pmd::dpdk::PortStats, dt: f64) -> (f64, f64) {
    let dt = dt.max(1e-9);
    (now.ipackets.saturating_sub(prev.ipackets) as f64 / dt, now.opackets.saturating_sub(prev.opackets) as f64 / dt)
}

/// A reporter printing per-port packet rates every interval.
pub fn rate_printer() -> impl FnMut(f64, &runtime::Runtime) {
    let mut last: Option<(f64, Vec<pmd::dpdk::PortStats>)> = Some((0.0, Vec::new()));
    move |t, rt| {
        let now = rt.port_stats();
        if let Some((t0, prev)) = &last {
            let mut line = format!("[{t:6.1}s]");
            let zero = pmd::dpdk::PortStats::default();
            for (i, (n, a)) in rt.names().iter().zip(&now).enumerate() {
                let (rx, tx) = pps(prev.get(i).unwrap_or(&zero), a, t - t0);
                line += &format!("  {n}: rx {:.2} Mpps tx {:.2} Mpps", rx / 1e6, tx / 1e6);
            }
            println!("{line}");
        }
        last = Some((t, now));
    }
}
