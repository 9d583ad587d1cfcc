//! `hnv` mode: the HNV switch on DPDK ports named by a policy file.
//!
//! The main thread (this module) wires the daemon: it starts DPDK's ports,
//! the [`PolicyService`] that owns the policy in force, the adapters around
//! it (control socket, metrics, etcd watcher), and one [`HnvSwitch`] per
//! worker. While the workers poll, its `ControlLoop` applies the
//! datapath's feedback (learned neighbors, MS-NVGREE), port changes from the
//! control socket (through [`PolicyService::change_ports`] with the runtime
//! as its [`PortBackend`]), refreshes `show ports`, reloads the policy file
//! on SIGHUP (a refused reload is logged and counted; the previous policy
//! stays in force) and prints rates. On exit it prints per-port, per-VSID
//! and per-reason counters and checks that they reconcile.

use crate::config::Config;
use crate::ctl::{CtlState, PortJob};
use crate::runtime::{port_table, worker_table, PortChange, PortSpec, Runtime};
use crate::service::{OneLine, PolicyService, PortBackend, PortChangeError, PortChanged, PortSwap, Tenants, SHARED_RECORDS};
use crate::{rate_printer, secs};
use anyhow::{Context, Result};
use hnv_datapath::ext::capture::CaptureSpec;
use hnv_datapath::ext::live_capture::CaptureControl;
use hnv_datapath::{standard_pipeline, DatapathStats, HnvSwitch, PolicyStore, Totals};
use hnv_policy::file::PortFile;
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
            pc.balance_flow = cfg.ports.iter().any(|c| c.name == p.name && c.balance == Some(crate::config::Balance::Flow));
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
/// With etcd the lookup records are shared ([`SHARED_RECORDS`]): a VM port
/// whose VM is at another host is valid.
///
/// # Errors
/// The policy file does not load or validate (one line per problem, joined).
pub fn initial_policy(cfg: &Config, policy_path: &Path) -> Result<Policy> {
    let options = if cfg.etcd.is_some() { SHARED_RECORDS } else { hnv_policy::Options::default() };
    if let Some(state) = cfg.control.state_file.as_deref().filter(|p| p.exists()) {
        match crate::service::state_file::load(state, options) {
            Ok((p, replayed)) => {
                log::info!("resuming with the policy saved in {} ({} journalled transaction(s) replayed)", state.display(), replayed.transactions);
                if let Some(why) = replayed.stopped {
                    log::warn!("state file {}: {why}; the changes before it are in force", state.display());
                }
                return Ok(p);
            }
            Err(e) => log::warn!("state file {} ignored: {}", state.display(), OneLine(&e)),
        }
    }
    let started = std::time::Instant::now();
    let p = hnv_policy::load_with(policy_path, options).map_err(|e| anyhow::anyhow!("{}", OneLine(&e)))?;
    log::info!("policy {} read and validated in {} ms", policy_path.display(), started.elapsed().as_millis());
    Ok(p)
}

/// Start DPDK for `policy`, run the HNV switch until `stop`, the duration or
/// the packet limit, print the reports, and release DPDK.
///
/// # Errors
/// DPDK, the control socket, metrics, the state file or etcd cannot start.
pub fn run(cfg: &Config, policy_path: Option<&Path>, policy: Policy, stop: &Arc<AtomicBool>, capture_req: Option<CaptureRequest>) -> Result<Outcome> {
    let specs = port_specs(&policy, cfg);
    let rt = Runtime::start(cfg, &specs)?;
    let out = run_on(&rt, cfg, policy_path, policy, stop, capture_req);
    rt.shutdown();
    out
}

/// Where the tenant policy comes from, as the policy service is told.
fn tenants(cfg: &Config) -> Tenants {
    match &cfg.etcd {
        Some(e) => Tenants::Shared(format!("etcd at {} (prefix {})", e.endpoints.join(","), e.prefix)),
        None => Tenants::Local,
    }
}

/// [`run`] on an already started runtime whose ports are `policy`'s, in order:
/// the policy service with its adapters (control socket, metrics, etcd
/// watcher), the workers, and the `ControlLoop` on this thread.
///
/// # Errors
/// As [`run`].
pub fn run_on(rt: &Runtime, cfg: &Config, policy_path: Option<&Path>, policy: Policy, stop: &Arc<AtomicBool>, capture_req: Option<CaptureRequest>) -> Result<Outcome> {
    let names: Vec<String> = policy.ports.iter().map(|p| p.name.clone()).collect();
    let store = Arc::new(PolicyStore::new(policy));
    // Issue 13: REDIRECTs are checked against the workers' TSC marks; the operator may turn them off.
    store.set_datapath_clock(pmd::dpdk::rdtsc, tsc_hz());
    store.set_accept_redirects(cfg.forwarding.accept_redirects);
    let service = Arc::new(PolicyService::new(store.clone(), tenants(cfg), cfg.control.state_file.clone()));
    service.set_journal_threshold(cfg.control.state_journal_threshold);
    let workers = rt.cores().len();
    let stats: Vec<Arc<DatapathStats>> = (0..workers).map(|_| Arc::new(DatapathStats::default())).collect();
    let captures = CaptureControl::new(workers, tsc_hz(), names);
    if let Some(c) = &capture_req {
        captures.start(c.spec.clone(), &c.path).with_context(|| format!("starting capture to {}", c.path.display()))?;
    }
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    let port_rows = Arc::new(Mutex::new(Vec::new()));
    let bond_counters = crate::metrics::SharedBonds::default();
    let etcd_status = cfg.etcd.as_ref().map(crate::etcd::new_status);
    let (port_jobs, jobs) = std::sync::mpsc::channel::<PortJob>();
    let _control = match &cfg.control.socket {
        Some(path) => Some(
            crate::ctl::serve(
                path,
                CtlState {
                    service: service.clone(),
                    stats: stats.clone(),
                    ports: port_rows.clone(),
                    workers: rt.worker_stats().to_vec(),
                    captures: captures.clone(),
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
        Some(addr) => Some(
            crate::metrics::serve(addr, service.clone(), stats.clone(), rt.worker_stats().to_vec(), bond_counters.clone())
                .with_context(|| format!("key 'control.metrics': cannot listen on {addr}"))?,
        ),
        None => None,
    };
    if let Some(path) = &cfg.control.state_file {
        service.start_state_file().with_context(|| format!("key 'control.state_file': cannot write {}", path.display()))?;
    }
    let _etcd = match (&cfg.etcd, etcd_status) {
        (Some(e), Some(status)) => Some(crate::etcd::Watcher::start(e, service.clone(), status).context("etcd")?),
        _ => None,
    };
    let max = (cfg.run.max_packets > 0).then_some(cfg.run.max_packets);
    let mut control = ControlLoop {
        cfg,
        service: service.clone(),
        stats: stats.clone(),
        captures: captures.clone(),
        jobs,
        port_rows: cfg.control.socket.is_some().then_some(port_rows),
        bond_counters: cfg.control.metrics.is_some().then_some(bond_counters),
        failovers_seen: 0,
        last_rows: None,
        hup,
        policy_path: policy_path.map(Path::to_path_buf),
        rates: Box::new(rate_printer()),
        ticks: 0,
        rate_every: (cfg.run.stats_interval_secs * 10.0).round() as u64,
    };
    let worker_stats = rt.run_limited(
        |w| {
            let pipeline = standard_pipeline().with_capture(Box::new(captures.extension()));
            HnvSwitch::new(store.clone(), pipeline, stats[w].clone(), w).with_notify_interval(tsc_hz() / 20).with_too_big_rate(tsc_hz() / TOO_BIG_PER_SEC, hnv_datapath::too_big::DEFAULT_BURST)
        },
        stop,
        secs(cfg.run.duration_secs),
        Some(CONTROL_TICK),
        max,
        |t, rt| control.tick(t, rt),
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

/// Prints the rate line.
type RatePrinter<'a> = Box<dyn FnMut(f64, &Runtime) + 'a>;
/// A port change's outcome and where it goes.
type PortAnswer = (std::sync::mpsc::Sender<Result<PortChanged, PortChangeError>>, Result<PortChanged, PortChangeError>);

/// ICMP too-big errors one worker sends per second at most (bursts of
/// `hnv_datapath::too_big::DEFAULT_BURST`); the excess counts as `too_big_rate_limited`.
const TOO_BIG_PER_SEC: u64 = 1000;

/// How often the control loop runs while the workers poll.
const CONTROL_TICK: Duration = Duration::from_millis(100);

/// The main thread's work while the workers poll, one [`ControlLoop::tick`]
/// every [`CONTROL_TICK`]: the datapath's feedback into the policy, port
/// changes from the control socket, the port rows of `show ports`, SIGHUP
/// reloads, and the rate line.
struct ControlLoop<'a> {
    cfg: &'a Config,
    service: Arc<PolicyService>,
    stats: Vec<Arc<DatapathStats>>,
    captures: Arc<CaptureControl>,
    /// Port changes handed over by the control socket.
    jobs: std::sync::mpsc::Receiver<PortJob>,
    /// Where `show ports` reads its rows (none without a control socket).
    port_rows: Option<Arc<Mutex<Vec<crate::ctl::PortRow>>>>,
    /// Failovers of all bonded ports seen at the last tick (a rise asks for an announcement).
    failovers_seen: u64,
    /// Where the metrics server reads the bonds' counters (none without metrics).
    bond_counters: Option<crate::metrics::SharedBonds>,
    /// Time and DPDK counters of the previous rows, for rates.
    last_rows: Option<(f64, Vec<pmd::dpdk::PortStats>)>,
    /// Set by SIGHUP.
    hup: Arc<AtomicBool>,
    /// The policy file a SIGHUP reloads.
    policy_path: Option<PathBuf>,
    rates: RatePrinter<'a>,
    /// Ticks so far.
    ticks: u64,
    /// Print rates every this many ticks (0: never).
    rate_every: u64,
}

impl ControlLoop<'_> {
    /// One round, at `t` seconds since the start.
    fn tick(&mut self, t: f64, rt: &Runtime) {
        self.apply_datapath_feedback();
        let answers = self.apply_port_changes(rt);
        self.refresh_port_rows(t, rt);
        self.refresh_bond_counters(rt);
        self.announce_after_failover(rt);
        // Answered once `show ports` has the new rows.
        for (reply, outcome) in answers {
            let _ = reply.send(outcome);
        }
        self.reload_on_sighup();
        // Last, so that a next hop a REDIRECT, a port change or a reload just
        // introduced is asked for in this tick.
        self.service.store().apply_learned(std::time::Instant::now());
        self.print_rates(t, rt);
    }

    /// MS-NVGREE messages the workers received and grace periods of moved
    /// VMs that ended (the provider neighbor tick comes at the end of [`ControlLoop::tick`]).
    fn apply_datapath_feedback(&self) {
        let store = self.service.store();
        let now = std::time::Instant::now();
        store.apply_control(now);
        store.expire_moved(now);
    }

    /// Apply the port changes queued by the control socket; returns their outcomes to send.
    fn apply_port_changes(&mut self, rt: &Runtime) -> Vec<PortAnswer> {
        let mut answers = Vec::new();
        while let Ok(job) = self.jobs.try_recv() {
            let backend = DpdkPorts { rt, cfg: self.cfg, stats: &self.stats, captures: &self.captures };
            let outcome = self.service.change_ports(&job.req, &backend);
            if let Err(e) = &outcome {
                log::warn!("port change refused, ports and policy unchanged: {}", OneLine(e));
            }
            // Rates over an interval that spans a port change would compare different ports.
            self.last_rows = None;
            answers.push((job.reply, outcome));
        }
        answers
    }

    /// Link, queues, DPDK counters and rates of every port, for `show ports`.
    fn refresh_port_rows(&mut self, t: f64, rt: &Runtime) {
        let Some(port_rows) = &self.port_rows else { return };
        let now = rt.port_stats();
        let set = rt.ports();
        let rows = set
            .ports
            .iter()
            .zip(&set.names)
            .zip(&now)
            .enumerate()
            .map(|(i, ((p, n), s))| {
                let (rx_pps, tx_pps) = match &self.last_rows {
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
        self.last_rows = Some((t, now));
    }

    /// After a failover of a bonded uplink, ask worker 0 to announce this
    /// host's PAs with gratuitous ARP (see `hnv_datapath::announce`), so that
    /// the fabric learns the new member's port even if the host only receives.
    fn announce_after_failover(&mut self, rt: &Runtime) {
        let now: u64 = rt.ports().ports.iter().map(pmd::dpdk::Port::failovers).sum();
        if now > self.failovers_seen {
            log::info!("uplink failover: gratuitous ARP for this host's provider addresses requested");
            self.service.store().request_announce();
        }
        self.failovers_seen = now;
    }

    /// The bonds' failover and carrier counters, for the metrics server.
    fn refresh_bond_counters(&self, rt: &Runtime) {
        let Some(shared) = &self.bond_counters else { return };
        let set = rt.ports();
        let rows = set
            .ports
            .iter()
            .zip(&set.names)
            .filter(|(p, _)| p.is_bond())
            .map(|(p, n)| crate::metrics::BondCounters { port: n.clone(), failovers: p.failovers(), carrier_changes: p.carrier_changes() })
            .collect();
        drop(set);
        *shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = rows;
    }

    /// SIGHUP: reload the policy file (logged and counted by the service).
    fn reload_on_sighup(&self) {
        if self.hup.swap(false, Ordering::Relaxed) {
            if let Some(p) = &self.policy_path {
                let _ = self.service.reload_file(p);
            }
        }
    }

    /// Every `run.stats_interval_secs`: per-port packet rates on stdout.
    fn print_rates(&mut self, t: f64, rt: &Runtime) {
        self.ticks += 1;
        if self.rate_every > 0 && self.ticks.is_multiple_of(self.rate_every) {
            (self.rates)(t, rt);
        }
    }
}

/// The running switch's ports, as the policy service changes them.
struct DpdkPorts<'a> {
    rt: &'a Runtime,
    cfg: &'a Config,
    stats: &'a [Arc<DatapathStats>],
    captures: &'a CaptureControl,
}

impl PortBackend for DpdkPorts<'_> {
    type Opened = pmd::dpdk::Port;

    fn open(&self, port: &PortFile, index: usize) -> Result<pmd::dpdk::Port> {
        let mut config = PortConfig::new(port.devargs.clone());
        config.mtu = port.mtu.and_then(|m| u16::try_from(m).ok());
        config.rx_queues = self.cfg.ports.iter().find(|c| c.name == port.name).and_then(|c| c.rx_queues).unwrap_or(1);
        self.rt.open_port(&PortSpec { name: port.name.clone(), config, key: format!("ports[{index}].devargs (hnvctl port add)") })
    }

    /// Swap with the workers paused; per-port counters move down after a
    /// removal before the new names are seen (a metrics scrape never sees the
    /// new names over the old counters).
    fn swap(&self, swap: PortSwap<pmd::dpdk::Port>, names: &[String], publish: &mut dyn FnMut()) -> Result<Duration> {
        let (change, removed) = match swap {
            PortSwap::Add { name, port } => (PortChange::Add { name, port }, None),
            PortSwap::Remove { index } => (PortChange::Remove { index }, Some(index)),
        };
        // From asking the workers to pause until the swap is published (they resume right after; a
        // removed port is closed later): what the longest-parked worker waited, at most.
        let started = std::time::Instant::now();
        let mut swapped = None;
        self.rt.change_ports(change, || {
            if let Some(i) = removed {
                for s in self.stats {
                    s.remove_port(i);
                }
            }
            self.captures.set_port_names(names.to_vec());
            publish();
            swapped = Some(std::time::Instant::now());
        })?;
        Ok(swapped.unwrap_or_else(std::time::Instant::now).duration_since(started))
    }
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
        "\nrx {} + replicas {} = {}; tx {} + drops {} = {}: {}\n(answered ARP/ND {}, ICMP too-big sent {}, encapsulated {}, decapsulated {}, routed {}; flow cache hits {}, misses {})\n",
        t.rx,
        t.replicas,
        t.rx + t.replicas,
        t.tx,
        t.total_drops(),
        t.tx + t.total_drops(),
        if t.reconciles() { "reconciled" } else { "MISMATCH" },
        t.answered,
        t.too_big_sent,
        t.encapsulated,
        t.decapsulated,
        t.routed,
        t.flow_hits,
        t.flow_misses
    );
    s
}
