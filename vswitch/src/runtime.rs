//! Bringing DPDK up and down around the workers.
//!
//! [`Runtime::start`] builds the EAL arguments (unique `--file-prefix`,
//! hugepages or `--no-huge`), creates the mempool and opens every port.
//! [`Runtime::run`] spawns one pinned, DPDK-registered worker thread per
//! core, assigns rx queues round-robin, reports rates from the main thread
//! and stops on SIGINT/SIGTERM or after the configured duration. Dropping it
//! closes the ports and frees the pool; [`Runtime::shutdown`] also releases
//! the EAL and its runtime directory, so no hugepage file or directory is
//! left behind.
//!
//! Port-list changes on a running switch: [`Runtime::open_port`] probes,
//! configures and starts a new port (one tx queue per worker) while the
//! workers keep forwarding; [`Runtime::change_ports`] then pauses the
//! workers at the top of their loop ([`ReloadGate`]), swaps the port list,
//! hands every worker its new plan and port map, runs the caller's publish
//! step (the new policy snapshot) and resumes them; a removed port is closed
//! only after that. Ports are held in a mutex that only the control side
//! takes; workers never lock it.

use crate::config::{Config, Hugepages};
use anyhow::{bail, Context, Result};
use pmd::dpdk::{thread_register, thread_unregister, tsc_hz, DpdkIo, Eal, Mbuf, Mempool, Port, PortConfig, PortStats};
use pmd::{Processor, Reload, ReloadGate, RxQueue, WorkerPlan, WorkerStats};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One port to open: display name and settings.
#[derive(Debug, Clone)]
pub struct PortSpec {
    /// Name in reports.
    pub name: String,
    /// How to open it.
    pub config: PortConfig,
    /// Where it was configured, for error messages (e.g. `ports[0].devargs`).
    pub key: String,
}

/// How long [`Runtime::change_ports`] waits for every worker to pause.
pub const PAUSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the main thread checks bonds while the workers poll: the kernel
/// carrier of af_packet members is read at this interval (the bond polls its
/// other members' links every 10 ms itself).
pub const BOND_WATCH_INTERVAL: Duration = Duration::from_millis(10);

/// The open ports, in switch-port order, with their display names.
#[derive(Debug, Default)]
pub struct PortSet {
    /// Ports.
    pub ports: Vec<Port>,
    /// Display names (`names[i]` names `ports[i]`).
    pub names: Vec<String>,
}

/// A change to the port list.
#[derive(Debug)]
pub enum PortChange {
    /// Append an opened port (see [`Runtime::open_port`]) as the last switch port.
    Add {
        /// Display name.
        name: String,
        /// The port.
        port: Port,
    },
    /// Remove switch port `index`; later ports move down by one.
    Remove {
        /// Switch port index.
        index: usize,
    },
}

/// Workers running now: their reload gate and packet limit.
#[derive(Debug)]
struct Running {
    gate: Arc<ReloadGate>,
    max_rx: Option<u64>,
}

/// DPDK started with its pool and ports.
#[derive(Debug)]
pub struct Runtime {
    eal: &'static Eal,
    set: Mutex<PortSet>,
    running: Mutex<Option<Running>>,
    descriptors: u16,
    pool: Option<Arc<Mempool>>,
    prefix: String,
    cores: Vec<usize>,
    idle_sleep: Option<Duration>,
    worker_stats: Vec<Arc<WorkerStats>>,
}

/// A DPDK object name unique in this process.
fn unique_name(base: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    format!("{base}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Free 2 MiB hugepages, in MiB, when hugetlbfs is mounted.
fn free_hugepage_mb() -> u64 {
    let mounted = std::fs::read_to_string("/proc/mounts").map(|m| m.lines().any(|l| l.contains("hugetlbfs"))).unwrap_or(false);
    if !mounted {
        return 0;
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |k: &str| meminfo.lines().find(|l| l.starts_with(k)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field("HugePages_Free:") * field("Hugepagesize:") / 1024
}

/// True when `pc` names a PCI device: as the port, as a bond member, or in a
/// bond's `slave=`/`member=` (EAL then scans the PCI bus; otherwise `--no-pci`).
fn needs_pci(pc: &PortConfig) -> bool {
    let mut args = pc.devargs.split(',');
    let head = args.next().unwrap_or_default();
    head.contains(':')
        || args.any(|a| a.strip_prefix("slave=").or_else(|| a.strip_prefix("member=")).is_some_and(|m| m.contains(':')))
        || pc.members.iter().any(|m| m.split(',').next().is_some_and(|h| h.contains(':')))
}

/// The EAL arguments for `cfg`, and the file prefix they use.
pub fn eal_args(cfg: &Config, need_pci: bool) -> Result<(Vec<String>, String)> {
    let d = &cfg.dpdk;
    let prefix = d.file_prefix.clone().unwrap_or_else(|| format!("hnv{}", std::process::id()));
    let mut args = vec!["-l".to_string(), d.main_core.to_string(), format!("--file-prefix={prefix}")];
    let huge = match d.hugepages {
        Hugepages::Off => false,
        Hugepages::On => {
            if free_hugepage_mb() < u64::from(d.memory_mb) {
                bail!("dpdk.hugepages = \"on\" but only {} MiB of hugepages are free (need {}): run scripts/setup.sh", free_hugepage_mb(), d.memory_mb);
            }
            true
        }
        Hugepages::Auto => free_hugepage_mb() >= u64::from(d.memory_mb),
    };
    if huge {
        // No files outlive the process, and no lock on a shared config.
        args.push("--in-memory".into());
    } else {
        args.extend(["--no-huge".to_string(), "-m".to_string(), d.memory_mb.to_string(), "--no-shconf".to_string()]);
    }
    if !need_pci {
        args.push("--no-pci".into());
    }
    if std::env::var_os("HNV_EAL_VERBOSE").is_none() {
        args.push("--log-level=lib.eal:warning".into());
    }
    args.extend(d.extra_eal_args.iter().cloned());
    Ok((args, prefix))
}

impl Runtime {
    /// Start the EAL, create the pool and open `ports` in order (switch port `i` = `ports[i]`).
    pub fn start(cfg: &Config, ports: &[PortSpec]) -> Result<Runtime> {
        let need_pci = ports.iter().any(|p| needs_pci(&p.config));
        // Before EAL init, which pins this thread to the main core.
        let cores = cfg.worker_cores();
        let (args, prefix) = eal_args(cfg, need_pci)?;
        log::info!("EAL arguments: {}", args.join(" "));
        let owns_eal = !Eal::is_initialized();
        let eal = Eal::init(&args).context("starting DPDK (EAL)")?;
        let idle_sleep = (cfg.dpdk.idle_sleep_us > 0).then(|| Duration::from_micros(cfg.dpdk.idle_sleep_us));
        let worker_stats = cores.iter().map(|_| Arc::new(WorkerStats::default())).collect();
        let mut rt = Runtime { eal, set: Mutex::default(), running: Mutex::new(None), descriptors: cfg.dpdk.descriptors, pool: None, prefix, cores, idle_sleep, worker_stats };
        match rt.open_ports(cfg, ports) {
            Ok(()) => Ok(rt),
            Err(e) => {
                if owns_eal {
                    rt.shutdown();
                }
                Err(e)
            }
        }
    }

    fn open_ports(&mut self, cfg: &Config, ports: &[PortSpec]) -> Result<()> {
        let eal = self.eal;
        let pool = Arc::new(
            Mempool::create(eal, &unique_name("hnv_pkts"), cfg.dpdk.mbufs, cfg.dpdk.mbuf_cache)
                .with_context(|| format!("key 'dpdk.mbufs' / 'dpdk.memory_mb': cannot create {} mbufs", cfg.dpdk.mbufs))?,
        );
        self.pool = Some(pool);
        for spec in ports {
            let port = self.open_port(spec)?;
            let mut set = self.lock_ports();
            set.ports.push(port);
            set.names.push(spec.name.clone());
        }
        Ok(())
    }

    fn lock_ports(&self) -> MutexGuard<'_, PortSet> {
        self.set.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Probe, configure and start `spec` (one tx queue per worker) without
    /// adding it to the switch; workers keep forwarding meanwhile. A port that
    /// fails is closed again, so nothing half-open is left behind.
    ///
    /// # Errors
    /// DPDK's reason, or a device name that an open port already uses.
    pub fn open_port(&self, spec: &PortSpec) -> Result<Port> {
        let pool = self.pool.clone().context("no packet pool")?;
        let device = spec.config.devargs.split(',').next().unwrap_or_default().to_string();
        if let Some(i) = self.lock_ports().ports.iter().position(|p| p.name() == device) {
            bail!("key '{}': opening port {:?}: device {device:?} is already open as switch port {i}", spec.key, spec.name);
        }
        let mut pc = spec.config.clone();
        pc.tx_queues = u16::try_from(self.cores.len()).unwrap_or(1).max(1);
        pc.rx_desc = self.descriptors;
        pc.tx_desc = self.descriptors;
        let port = Port::open(self.eal, &pc, pool).with_context(|| format!("key '{}': opening port {:?}", spec.key, spec.name))?;
        log::info!("port {} = ethdev {} ({}, driver {}), {} rx queue(s)", spec.name, port.id(), port.name(), port.driver(), port.rx_queues());
        Ok(port)
    }

    /// Apply `change` to the port list. While workers run, they are paused
    /// first (at most [`PAUSE_TIMEOUT`]); with every worker parked the list is
    /// changed, each worker is given its new plan and port map, `publish`
    /// runs (publish the matching policy there), and the workers resume. A
    /// removed port is stopped and closed afterwards. On error nothing
    /// changed (an added port is closed again).
    ///
    /// # Errors
    /// The workers did not pause, or the index is out of range.
    pub fn change_ports(&self, change: PortChange, publish: impl FnOnce()) -> Result<()> {
        let mut set = self.lock_ports();
        if let PortChange::Remove { index } = change {
            if index >= set.ports.len() {
                bail!("no switch port {index}");
            }
        }
        let running = self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = running.as_ref() {
            r.gate.pause(PAUSE_TIMEOUT).map_err(|e| anyhow::anyhow!("the port list is unchanged: {e}"))?;
        }
        let removed = match change {
            PortChange::Add { name, port } => {
                set.ports.push(port);
                set.names.push(name);
                None
            }
            PortChange::Remove { index } => {
                set.names.remove(index);
                Some(set.ports.remove(index))
            }
        };
        if let Some(r) = running.as_ref() {
            let devices: Vec<u16> = set.ports.iter().map(Port::id).collect();
            for plan in self.plans_of(&set.ports, r.max_rx) {
                r.gate.publish(plan.id, Reload { plan, devices: devices.clone() });
            }
        }
        publish();
        if let Some(r) = running.as_ref() {
            r.gate.resume();
        }
        drop(running);
        drop(set);
        if let Some(p) = removed {
            log::info!("port ethdev {} ({}) closed", p.id(), p.name());
        }
        Ok(())
    }

    /// The EAL handle.
    pub fn eal(&self) -> &'static Eal {
        self.eal
    }
    /// The packet pool.
    pub fn pool(&self) -> Option<&Arc<Mempool>> {
        self.pool.as_ref()
    }
    /// The open ports and their names, locked (control side only; workers never lock them).
    pub fn ports(&self) -> MutexGuard<'_, PortSet> {
        self.lock_ports()
    }
    /// Port display names, in switch-port order.
    pub fn names(&self) -> Vec<String> {
        self.lock_ports().names.clone()
    }
    /// Worker cores.
    pub fn cores(&self) -> &[usize] {
        &self.cores
    }
    /// Each worker's I/O and cycle counters (cumulative over every run).
    pub fn worker_stats(&self) -> &[Arc<WorkerStats>] {
        &self.worker_stats
    }

    /// The rx queues each worker polls: every (port, queue) round-robin over the workers.
    pub fn plans(&self, max_rx: Option<u64>) -> Vec<WorkerPlan> {
        self.plans_of(&self.lock_ports().ports, max_rx)
    }

    fn plans_of(&self, ports: &[Port], max_rx: Option<u64>) -> Vec<WorkerPlan> {
        let n = self.cores.len().max(1);
        let drain_cycles = (tsc_hz() / 10_000).max(1);
        let mut plans: Vec<WorkerPlan> = (0..n).map(|id| WorkerPlan { id, rx: Vec::new(), ports: ports.len(), drain_cycles, max_rx, idle_sleep: self.idle_sleep }).collect();
        let mut next = 0;
        for (i, p) in ports.iter().enumerate() {
            for q in 0..p.rx_queues() {
                plans[next % n].rx.push(RxQueue { port: i as u16, queue: q });
                next += 1;
            }
        }
        plans
    }

    /// Run one worker per core with the processor `make(worker_id)` until
    /// `stop` is set or `duration` passes; `report(elapsed, runtime)` is called
    /// every `interval` from the main thread. Returns the workers' stats.
    pub fn run<P, F, R>(&self, make: F, stop: &Arc<AtomicBool>, duration: Option<Duration>, interval: Option<Duration>, report: R) -> Result<Vec<Arc<WorkerStats>>>
    where
        P: Processor<Mbuf>,
        F: Fn(usize) -> P + Sync,
        R: FnMut(f64, &Runtime),
    {
        self.run_limited(make, stop, duration, interval, None, report)
    }

    /// [`Runtime::run`], each worker also stopping after `max_rx` received packets.
    pub fn run_limited<P, F, R>(&self, make: F, stop: &Arc<AtomicBool>, duration: Option<Duration>, interval: Option<Duration>, max_rx: Option<u64>, mut report: R) -> Result<Vec<Arc<WorkerStats>>>
    where
        P: Processor<Mbuf>,
        F: Fn(usize) -> P + Sync,
        R: FnMut(f64, &Runtime),
    {
        let gate = Arc::new(ReloadGate::new(self.cores.len().max(1)));
        let (plans, ids) = {
            // Plans and the gate are installed together, so a port change sees either neither or both.
            let set = self.lock_ports();
            *self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Running { gate: gate.clone(), max_rx });
            (self.plans_of(&set.ports, max_rx), set.ports.iter().map(Port::id).collect::<Vec<u16>>())
        };
        let stats: Vec<Arc<WorkerStats>> = plans.iter().map(|p| self.worker_stats.get(p.id).cloned().unwrap_or_default()).collect();
        let eal = self.eal;
        let started = Instant::now();
        self.watch_bonds();
        let result: Result<()> = std::thread::scope(|s| {
            let mut handles = Vec::new();
            for (plan, st) in plans.iter().zip(&stats) {
                let core = self.cores.get(plan.id).copied().unwrap_or(0);
                let (ids, make, stop, st, gate, pool) = (ids.clone(), &make, stop.clone(), st.clone(), gate.clone(), self.pool.clone());
                let h = std::thread::Builder::new().name(format!("hnv-worker-{}", plan.id)).spawn_scoped(s, move || -> Result<()> {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                        log::warn!("worker {}: cannot pin to core {core}", plan.id);
                    }
                    let lcore = thread_register(eal).context("registering worker thread with DPDK")?;
                    log::info!("worker {} on core {core} (lcore {lcore}) polls {:?}", plan.id, plan.rx);
                    let mut io = DpdkIo::new(ids, plan.id as u16).with_pool(pool);
                    let mut processor = make(plan.id);
                    pmd::worker::run_reloadable(&mut io, &mut processor, plan.clone(), &stop, &st, Some(&gate));
                    drop(processor);
                    thread_unregister();
                    Ok(())
                });
                handles.push(h.context("spawning worker")?);
            }
            let mut next = interval.map(|i| started + i);
            while !stop.load(Ordering::Relaxed) && !handles.iter().all(|h| h.is_finished()) {
                std::thread::sleep(BOND_WATCH_INTERVAL);
                self.watch_bonds();
                let now = Instant::now();
                if duration.is_some_and(|d| now.duration_since(started) >= d) {
                    break;
                }
                if let (Some(n), Some(i)) = (next, interval) {
                    if now >= n {
                        report(now.duration_since(started).as_secs_f64(), self);
                        next = Some(n + i);
                    }
                }
            }
            stop.store(true, Ordering::Relaxed);
            for h in handles {
                match h.join() {
                    Ok(r) => r?,
                    Err(_) => bail!("a worker thread panicked"),
                }
            }
            Ok(())
        });
        *self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        result?;
        Ok(stats)
    }

    /// Check every bonded port: watch the kernel carrier of its af_packet
    /// members (changes logged, counted in [`Port::carrier_changes`]; an
    /// active-backup bond's primary moved off a member without carrier), then
    /// look for a failover (the members carrying traffic changed; logged,
    /// counted in [`Port::failovers`]). Called by [`Runtime::run`] every
    /// [`BOND_WATCH_INTERVAL`], from the control side.
    pub fn watch_bonds(&self) {
        let set = self.lock_ports();
        for (p, name) in set.ports.iter().zip(&set.names) {
            let Some((status, failover, carrier)) = p.watch_bond() else { continue };
            for c in &carrier.changes {
                log::warn!("port {name}: bond {} member {}: kernel carrier of {} {} (change {})", p.name(), c.member, c.iface, if c.up { "up" } else { "down" }, c.count);
            }
            match &carrier.primary_set {
                Some(Ok(m)) => log::info!("port {name}: bond {}: {m} made primary (kernel carrier of the af_packet members)", p.name()),
                Some(Err(e)) => log::warn!("port {name}: bond {}: cannot move the primary: {e}", p.name()),
                None => {}
            }
            if let Some(f) = failover {
                let links: Vec<String> = status.members.iter().map(|m| format!("{} {}", m.name, if m.link_up { "up" } else { "down" })).collect();
                log::warn!(
                    "port {name}: bond {} ({}) failover {}: traffic moved from [{}] to [{}] (links: {})",
                    p.name(),
                    status.mode_name(),
                    f.count,
                    f.from.join(", "),
                    f.to.join(", "),
                    links.join(", ")
                );
            }
        }
    }

    /// Per-port DPDK counters, in switch-port order.
    pub fn port_stats(&self) -> Vec<PortStats> {
        self.lock_ports().ports.iter().map(Port::stats).collect()
    }
}

impl Runtime {
    /// Close every port, free the pool, then release the EAL and remove its
    /// runtime directory. The process cannot use DPDK afterwards.
    pub fn shutdown(mut self) {
        *self.lock_ports() = PortSet::default();
        self.pool = None;
        self.eal.cleanup();
        let dir = std::path::Path::new("/var/run/dpdk").join(&self.prefix);
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Format per-port counters as a table.
pub fn port_table(names: &[String], stats: &[PortStats]) -> String {
    let mut s = format!("{:<12} {:>14} {:>14} {:>10} {:>10} {:>10}\n", "port", "rx-packets", "tx-packets", "rx-missed", "rx-errors", "tx-errors");
    for (n, st) in names.iter().zip(stats) {
        s += &format!("{:<12} {:>14} {:>14} {:>10} {:>10} {:>10}\n", n, st.ipackets, st.opackets, st.imissed, st.ierrors, st.oerrors);
    }
    s
}

/// Format per-worker counters as a table.
pub fn worker_table(stats: &[Arc<WorkerStats>]) -> String {
    let mut s = format!("{:<8} {:>14} {:>14} {:>12} {:>8} {:>12}\n", "worker", "rx", "tx", "tx-refused", "busy%", "cycles/pkt");
    for (i, w) in stats.iter().enumerate() {
        let busy = w.busy_cycles.get();
        let total = busy + w.idle_cycles.get();
        let pct = if total > 0 { 100.0 * busy as f64 / total as f64 } else { 0.0 };
        let cpp = if w.rx.get() > 0 { busy as f64 / w.rx.get() as f64 } else { 0.0 };
        s += &format!("{:<8} {:>14} {:>14} {:>12} {:>8.1} {:>12.1}\n", i, w.rx.get(), w.tx.get(), w.tx_refused.get(), pct, cpp);
    }
    s
}
