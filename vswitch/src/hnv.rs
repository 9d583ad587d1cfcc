//! `hnv` mode: the HNV switch on DPDK ports named by a policy file.
//!
//! The control thread (this module) loads and validates the policy, opens
//! its ports, starts one [`HnvSwitch`] per worker, and then, while the
//! workers poll: prints rates, applies learned provider neighbors, applies
//! port changes from the control socket ([`change_ports`]), and reloads the
//! policy file on SIGHUP. A reloaded policy that fails validation, or that
//! changes the port list (use `hnvctl port add/remove`), is rejected with a
//! log line and the previous policy stays in force. On exit it prints
//! per-port, per-VSID and per-reason counters and checks that they reconcile.

use crate::config::Config;
use crate::runtime::{port_table, worker_table, PortChange, PortSpec, Runtime};
use crate::{rate_printer, secs};
use anyhow::{Context, Result};
use hnv_datapath::ext::capture::CaptureSpec;
use hnv_datapath::ext::live_capture::CaptureControl;
use hnv_datapath::{standard_pipeline, DatapathStats, HnvSwitch, PolicyStore, Totals};
use hnv_policy::api::{Request, Response};
use hnv_policy::Policy;
use pmd::dpdk::{tsc_hz, PortConfig};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where to capture to, and what.
#[derive(Debug, Clone)]
pub struct CaptureRequest {
    /// Output pcapng file.
    pub path: PathBuf,
    /// Which ports/VSIDs/stages.
    pub spec: CaptureSpec,
}

/// Port specs for a policy's ports, in policy order.
pub fn port_specs(policy: &Policy, cfg: &Config) -> Vec<PortSpec> {
    policy
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut pc = PortConfig::new(p.devargs.clone());
            pc.mtu = p.mtu;
            pc.rx_queues = cfg.ports.iter().find(|c| c.name == p.name).and_then(|c| c.rx_queues).unwrap_or(1);
            pc.members = cfg.ports.iter().find(|c| c.name == p.name).map(|c| c.members.clone()).unwrap_or_default();
            PortSpec { name: p.name.clone(), config: pc, key: format!("ports[{i}].devargs (policy)") }
        })
        .collect()
}

/// What an HNV run leaves behind.
#[derive(Debug)]
pub struct Outcome {
    /// Summed datapath counters.
    pub totals: Totals,
    /// VSID of each counter slot.
    pub vsid_slots: Vec<(u16, u32)>,
    /// Policy generations published during the run (1 = only the initial one).
    pub generation: u64,
}

/// The policy to start with: a valid state file (a restart) wins over the policy file.
/// With etcd the lookup records are shared ([`crate::etcd::SHARED`]): a VM port
/// whose VM is at another host is valid.
pub fn initial_policy(cfg: &Config, policy_path: &Path) -> Result<Policy> {
    let options = if cfg.etcd.is_some() { crate::etcd::SHARED } else { hnv_policy::Options::default() };
    if let Some(state) = cfg.control.state_file.as_deref().filter(|p| p.exists()) {
        match hnv_policy::load_with(state, options) {
            Ok(p) => {
                log::info!("resuming with the policy saved in {}", state.display());
                return Ok(p);
            }
            Err(e) => log::warn!("state file {} ignored: {}", state.display(), e.to_string().replace('\n', "; ")),
        }
    }
    let started = std::time::Instant::now();
    let p = hnv_policy::load_with(policy_path, options).map_err(|e| anyhow::anyhow!("{}", e.to_string().replace('\n', "; ")))?;
    log::info!("policy {} read and validated in {} ms", policy_path.display(), started.elapsed().as_millis());
    Ok(p)
}

/// Start DPDK for `policy`, run the HNV switch until `stop`, the duration or
/// the packet limit, print the reports, and release DPDK.
pub fn run(cfg: &Config, policy_path: Option<&Path>, policy: Policy, stop: &Arc<AtomicBool>, capture_req: Option<CaptureRequest>) -> Result<Outcome> {
    let specs = port_specs(&policy, cfg);
    let rt = Runtime::start(cfg, &specs)?;
    let out = run_on(&rt, cfg, policy_path, policy, stop, capture_req);
    rt.shutdown();
    out
}

/// [`run`] on an already started runtime whose ports are `policy`'s, in order.
pub fn run_on(rt: &Runtime, cfg: &Config, policy_path: Option<&Path>, policy: Policy, stop: &Arc<AtomicBool>, capture_req: Option<CaptureRequest>) -> Result<Outcome> {
    let names: Vec<String> = policy.ports.iter().map(|p| p.name.clone()).collect();
    let store = Arc::new(PolicyStore::new(policy));
    let workers = rt.cores().len();
    let stats: Vec<Arc<DatapathStats>> = (0..workers).map(|_| Arc::new(DatapathStats::default())).collect();
    let captures = CaptureControl::new(workers, tsc_hz(), names.clone());
    if let Some(c) = &capture_req {
        captures.start(c.spec.clone(), &c.path).with_context(|| format!("starting capture to {}", c.path.display()))?;
    }
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    let mut rates = rate_printer();
    // Issue 13: REDIRECTs are checked against the workers' TSC marks; the operator may turn them off.
    store.set_datapath_clock(pmd::dpdk::rdtsc, tsc_hz());
    store.set_accept_redirects(cfg.forwarding.accept_redirects);
    let report_store = store.clone();
    let port_rows = Arc::new(Mutex::new(Vec::new()));
    let edits: Arc<Mutex<()>> = Arc::default();
    let etcd_status = cfg.etcd.as_ref().map(crate::etcd::new_status);
    let (port_jobs, jobs) = std::sync::mpsc::channel::<crate::ctl::PortJob>();
    let _control = match &cfg.control.socket {
        Some(path) => Some(
            crate::ctl::serve(
                path,
                crate::ctl::CtlState {
                    store: store.clone(),
                    stats: stats.clone(),
                    ports: port_rows.clone(),
                    state_file: cfg.control.state_file.clone(),
                    workers: rt.worker_stats().to_vec(),
                    captures: captures.clone(),
                    edits: edits.clone(),
                    ports_or_capture: Arc::default(),
                    etcd: etcd_status.clone(),
                    port_jobs: Some(port_jobs),
                },
            )
            .with_context(|| format!("key 'control.socket': cannot serve {}", path.display()))?,
        ),
        None => None,
    };
    let _metrics = match &cfg.control.metrics {
        Some(addr) => Some(crate::metrics::serve(addr, store.clone(), stats.clone(), rt.worker_stats().to_vec()).with_context(|| format!("key 'control.metrics': cannot listen on {addr}"))?),
        None => None,
    };
    if let Some(path) = &cfg.control.state_file {
        crate::ctl::remove_stale_temporaries(path);
        crate::ctl::persist(&store, path).with_context(|| format!("key 'control.state_file': cannot write {}", path.display()))?;
    }
    let etcd = match (&cfg.etcd, etcd_status) {
        (Some(e), Some(status)) => Some(crate::etcd::Watcher::start(e, store.clone(), cfg.control.state_file.clone(), status).context("etcd")?),
        _ => None,
    };
    let etcd = etcd.as_ref();
    let mut last_rows: Option<(f64, Vec<pmd::dpdk::PortStats>)> = None;
    let policy_path = policy_path.map(Path::to_path_buf);
    let max = (cfg.run.max_packets > 0).then_some(cfg.run.max_packets);
    let worker_stats = rt.run_limited(
        |w| {
            let pipeline = standard_pipeline().with_capture(Box::new(captures.extension()));
            HnvSwitch::new(store.clone(), pipeline, stats[w].clone(), w).with_notify_interval(tsc_hz() / 20)
        },
        stop,
        secs(cfg.run.duration_secs),
        Some(Duration::from_millis(100)),
        max,
        {
            let mut ticks = 0u64;
            let (stats, captures) = (stats.clone(), captures.clone());
            let every = (cfg.run.stats_interval_secs * 10.0).round() as u64;
            move |t, rt| {
                report_store.apply_learned(std::time::Instant::now());
                report_store.apply_control(std::time::Instant::now());
                report_store.expire_moved(std::time::Instant::now());
                // Port changes from the control socket; answered once `show ports` has the new rows.
                let mut answers = Vec::new();
                while let Ok(job) = jobs.try_recv() {
                    let _edit = edits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let ctx = PortCtx { rt, cfg, store: &report_store, stats: &stats, captures: &captures };
                    let result = match etcd {
                        Some(w) => w.change_ports(&job.req, |p| change_ports(&ctx, &job.req, p)),
                        None => hnv_policy::api::apply(&report_store.policy(), &job.req)
                            .map_err(|e| e.to_string().replace('\n', "; "))
                            .and_then(|p| p.ok_or_else(|| "not a port change".to_string()))
                            .and_then(|p| change_ports(&ctx, &job.req, p))
                            .inspect(|_| {
                                if let Some(state) = &cfg.control.state_file {
                                    if let Err(e) = crate::ctl::persist(&report_store, state) {
                                        log::error!("cannot save state to {}: {e}", state.display());
                                    }
                                }
                            }),
                    };
                    let resp = match result {
                        Ok(g) => Response { ok: true, generation: Some(g), ..Default::default() },
                        Err(e) => {
                            log::warn!("port change refused, ports and policy unchanged: {e}");
                            Response::error(e)
                        }
                    };
                    // Rates over an interval that spans a port change would compare different ports.
                    last_rows = None;
                    answers.push((job.reply, resp));
                }
                if cfg.control.socket.is_some() {
                    let now = rt.port_stats();
                    let set = rt.ports();
                    let rows = set
                        .ports
                        .iter()
                        .zip(&set.names)
                        .zip(&now)
                        .enumerate()
                        .map(|(i, ((p, n), s))| {
                            let (rx_pps, tx_pps) = match &last_rows {
                                Some((t0, prev)) if t > *t0 => crate::pps(&prev.get(i).copied().unwrap_or_default(), s, t - t0),
                                _ => (0.0, 0.0),
                            };
                            crate::ctl::PortRow {
                                name: n.clone(),
                                driver: p.driver().to_string(),
                                link_up: p.link().up,
                                rx_queues: p.rx_queues(),
                                tx_queues: p.tx_queues(),
                                rx_packets: s.ipackets,
                                tx_packets: s.opackets,
                                rx_pps,
                                tx_pps,
                                rx_missed: s.imissed,
                                bond: crate::bond::row(p),
                            }
                        })
                        .collect();
                    drop(set);
                    if let Ok(mut r) = port_rows.lock() {
                        *r = rows;
                    }
                    last_rows = Some((t, now));
                }
                for (reply, resp) in answers {
                    let _ = reply.send(resp);
                }
                if hup.swap(false, Ordering::Relaxed) {
                    if let Some(p) = &policy_path {
                        let _edit = edits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        if let Some(w) = etcd {
                            // Host parts from the file, tenant parts from etcd; saves the state file.
                            let _ = w.reload_local(p);
                        } else if reload(&report_store, p).is_ok() {
                            if let Some(state) = &cfg.control.state_file {
                                let _ = crate::ctl::persist(&report_store, state);
                            }
                        }
                    }
                }
                ticks += 1;
                if every > 0 && ticks.is_multiple_of(every) {
                    rates(t, rt);
                }
            }
        },
    )?;
    if let Some(c) = captures.stop().context("finishing the capture file")? {
        println!("capture: {} packets written to {} ({} lost)", c.summary.written, c.path.display(), c.summary.lost);
    }
    let totals = Totals::sum(stats.iter().map(|s| &**s));
    println!("\nfinal port counters (DPDK):\n{}", port_table(&rt.names(), &rt.port_stats()));
    println!("workers:\n{}", worker_table(&worker_stats));
    let vsid_slots = store.vsid_slots();
    print!("{}", datapath_report(&totals, &rt.names(), &vsid_slots));
    let generation = store.snapshot().generation;
    Ok(Outcome { totals, vsid_slots, generation })
}

/// What a port change touches besides the runtime.
struct PortCtx<'a> {
    rt: &'a Runtime,
    cfg: &'a Config,
    store: &'a PolicyStore,
    stats: &'a [Arc<DatapathStats>],
    captures: &'a CaptureControl,
}

/// Apply the validated `policy`, which is the policy in force with the port
/// change `req` made, to the running switch: open an added port first
/// (outside any pause), then swap the port list with the workers paused and
/// publish `policy` in the same pause (so port indices in the tables and the
/// workers' port maps always agree), moving per-port counters down after a
/// removal; a removed port is closed afterwards. Returns the new generation.
/// On error the running policy and ports are as they were.
fn change_ports(ctx: &PortCtx<'_>, req: &Request, policy: Policy) -> Result<u64, String> {
    if policy.ports.len() > pmd::MAX_PORTS {
        return Err(format!("at most {} ports", pmd::MAX_PORTS));
    }
    let old = ctx.store.policy();
    let (change, removed) = match req {
        Request::AddPort { port, .. } => {
            let i = policy.ports.iter().position(|p| p.name == port.name).ok_or("the added port is missing")?;
            if i + 1 != policy.ports.len() || i != old.ports.len() {
                return Err("a port is added at the end of the port list".into());
            }
            let mut spec = port_specs(&policy, ctx.cfg).swap_remove(i);
            spec.key = format!("ports[{i}].devargs (hnvctl port add)");
            let opened = ctx.rt.open_port(&spec).map_err(|e| format!("{e:#}"))?;
            (PortChange::Add { name: port.name.clone(), port: opened }, None)
        }
        Request::RemovePort { name, .. } => {
            let index = old.ports.iter().position(|p| &p.name == name).ok_or_else(|| format!("no port named {name:?}"))?;
            (PortChange::Remove { index }, Some(index))
        }
        _ => return Err("not a port change".into()),
    };
    let names: Vec<String> = policy.ports.iter().map(|p| p.name.clone()).collect();
    let mut generation = 0;
    ctx.rt
        .change_ports(change, || {
            // Counters first: a metrics scrape never sees the new names over the old counters.
            if let Some(i) = removed {
                for s in ctx.stats {
                    s.remove_port(i);
                }
            }
            ctx.captures.set_port_names(names);
            generation = ctx.store.replace(policy);
        })
        .map_err(|e| format!("{e:#}"))?;
    log::info!(
        "{} (policy generation {generation})",
        match req {
            Request::AddPort { port, .. } => format!("port {} added", port.name),
            Request::RemovePort { name, .. } => format!("port {name} removed"),
            _ => String::new(),
        }
    );
    Ok(generation)
}

/// Reload the policy file; keep the old policy if the new one is invalid or changes ports.
pub fn reload(store: &PolicyStore, path: &Path) -> Result<u64> {
    let result = hnv_policy::load(path).map_err(|e| anyhow::anyhow!("{e}")).and_then(|p| {
        let old = store.policy();
        let same_ports = old.ports.len() == p.ports.len() && old.ports.iter().zip(&p.ports).all(|(a, b)| a.name == b.name && a.devargs == b.devargs && a.role == b.role);
        anyhow::ensure!(same_ports, "{}: the port list changed (change ports with hnvctl port add/remove)", path.display());
        Ok(store.replace(p))
    });
    match &result {
        Ok(g) => log::info!("policy reloaded from {} (generation {g})", path.display()),
        Err(e) => log::error!("policy reload rejected, the previous policy stays in force: {e}"),
    }
    result
}

/// Per-port, per-VSID and per-reason datapath counters, with the reconciliation line.
pub fn datapath_report(t: &Totals, names: &[String], slots: &[(u16, u32)]) -> String {
    let mut s = format!("datapath per port:\n{:<12} {:>14} {:>14} {:>12}\n", "port", "rx", "tx", "drops");
    for (i, n) in names.iter().enumerate() {
        let (rx, tx, d) = t.ports[i];
        s += &format!("{n:<12} {rx:>14} {tx:>14} {d:>12}\n");
    }
    s += &format!("\nper VSID:\n{:<10} {:>14} {:>14} {:>12}\n", "vsid", "rx", "tx", "drops");
    for (slot, vsid) in slots {
        let (rx, tx, d) = t.vsids[usize::from(*slot)];
        if rx + tx + d > 0 {
            s += &format!("{vsid:<10} {rx:>14} {tx:>14} {d:>12}\n");
        }
    }
    s += "\ndrops by reason:\n";
    if t.drops.is_empty() {
        s += "  (none)\n";
    }
    for (r, n) in &t.drops {
        s += &format!("  {:<22} {n:>14}  {}\n", r.name(), r.description());
    }
    s += &format!(
        "\nrx {} + replicas {} = {}; tx {} + drops {} = {}: {}\n(answered ARP/ND {}, encapsulated {}, decapsulated {}, routed {}; flow cache hits {}, misses {})\n",
        t.rx,
        t.replicas,
        t.rx + t.replicas,
        t.tx,
        t.total_drops(),
        t.tx + t.total_drops(),
        if t.reconciles() { "reconciled" } else { "MISMATCH" },
        t.answered,
        t.encapsulated,
        t.decapsulated,
        t.routed,
        t.flow_hits,
        t.flow_misses
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use hnv_policy::example::BLUE_RED_HOST1;

    #[test]
    fn a_rejected_reload_leaves_the_previous_policy_in_force() {
        let dir = std::env::temp_dir().join(format!("hnv-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("p.toml");
        let store = PolicyStore::new(hnv_policy::parse(BLUE_RED_HOST1, "t").unwrap());
        let before = store.snapshot();
        for bad in
            [BLUE_RED_HOST1.replacen("vsid = 5001", "vsid = 1", 1), BLUE_RED_HOST1.replacen("[[lookup]]", "[[lookup]]\nbogus = 1", 1), BLUE_RED_HOST1.replacen("name = \"red1\"", "name = \"red9\"", 1)]
        {
            std::fs::write(&path, bad).unwrap();
            assert!(reload(&store, &path).is_err());
            assert!(Arc::ptr_eq(&before, &store.snapshot()), "snapshot unchanged");
        }
        let moved = BLUE_RED_HOST1.replacen("pa = \"192.168.4.22\"", "pa = \"192.168.4.33\"", 1);
        std::fs::write(&path, &moved).unwrap();
        assert_eq!(reload(&store, &path).unwrap(), 2);
        let after = store.snapshot();
        assert_eq!(after.by_ca(5001, "10.0.0.7".parse().unwrap()).unwrap().pa, "192.168.4.33".parse::<std::net::IpAddr>().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
