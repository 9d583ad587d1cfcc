//! The hnvswitch binary: argument parsing and error reporting only.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use hnvswitch::config::{Config, Mode};
use hnvswitch::fwd::CrossConnect;
use hnvswitch::runtime::{port_table, worker_table, PortSpec, Runtime};
use hnvswitch::{demo, rate_printer, secs, stop_on_signals};
use pmd::dpdk::PortConfig;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "hnvswitch", version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("HNV_GIT_COMMIT"), ", DPDK via pkg-config)"))]
#[command(about = "A DPDK-backed multi-tenant virtual switch for Hyper-V Network Virtualization (NVGRE)")]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the switch from a configuration file until SIGINT/SIGTERM (or its run.duration_secs).
    Run {
        /// The TOML configuration file (see README, "Configuration").
        #[arg(short, long)]
        config: PathBuf,
        /// Override run.duration_secs (0 = until a signal).
        #[arg(long)]
        duration: Option<f64>,
        /// Override run.max_packets: each worker stops after this many received packets.
        #[arg(long)]
        packets: Option<u64>,
        /// hnv mode: capture to this pcapng file (all ports, both stages).
        #[arg(long)]
        capture: Option<PathBuf>,
        /// hnv mode: serve hnvctl on this Unix socket (overrides control.socket).
        #[arg(long)]
        control: Option<PathBuf>,
        /// hnv mode: take the tenant policy from etcd at this client URL (repeatable; overrides etcd.endpoints, keeps the other [etcd] keys).
        #[arg(long = "etcd", value_name = "URL")]
        etcd: Vec<String>,
    },
    /// Write a traffic file (pcap) for benchmarks and tests.
    Traffic {
        /// What to generate: `udp` (Blue1 → Blue2 UDP flows), `vm-blue` (the demo's Blue1 traffic), `uplink` (host 2's NVGRE traffic).
        #[arg(long, default_value = "udp")]
        kind: String,
        /// Number of distinct flows.
        #[arg(long, default_value_t = 1024)]
        flows: usize,
        /// Frame size on the wire including the 4-byte FCS (the pcap holds size - 4).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Output pcap file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a built-in example policy: host1 or host2 of the Blue/Red worked example.
    ExamplePolicy {
        /// host1 or host2.
        host: String,
    },
    /// Write a benchmark scenario (policy, configuration, traffic) into a directory and print
    /// "CONFIG PCAPS SINKS SOURCES" (lists comma-separated; PCAPS in the order of SOURCES).
    Scenario {
        /// encap, decap, local (one VM), encap-multi, decap-multi (4 VMs of two tenants), or encap-vxlan, decap-vxlan (encap and decap with the subnets on VXLAN).
        #[arg(long)]
        scenario: hnvswitch::scenarios::Scenario,
        /// Distinct flows in all traffic files together.
        #[arg(long, default_value_t = 1024)]
        flows: usize,
        /// The VM frame's size including FCS (decap frames carry 42 bytes more).
        #[arg(long = "frame-size", alias = "size", default_value_t = 64)]
        size: usize,
        /// EAL memory mode for the configuration: auto, on or off.
        #[arg(long, default_value = "auto")]
        hugepages: String,
        /// Mbufs in the pool (must exceed the flows: net_pcap preloads the file).
        #[arg(long, default_value_t = 16383)]
        mbufs: u32,
        /// Output directory.
        #[arg(long)]
        dir: PathBuf,
        /// Size the policy: add this many tenants (VSIDs, each its own routing domain) ...
        #[arg(long, default_value_t = 0)]
        tenants: u32,
        /// ... of this many VMs (lookup records on remote hosts) each (at most 65,000).
        #[arg(long = "cas-per-tenant", default_value_t = 1000)]
        cas_per_tenant: u32,
    },
    /// Run the embedded demo on virtual devices (no file, no NIC needed): host 1 of the Blue/Red worked example.
    Demo {
        /// Seconds to run (0 = until Ctrl-C).
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Run the plain port cross-connect (I/O layer) demo instead.
        #[arg(long)]
        io: bool,
    },
    /// Derive one host's policy from a base policy by typed edits, validate it, and print it
    /// (or write it atomically with --out). Edits naming a port, VM or subnet the base lacks are errors.
    DerivePolicy(DeriveArgs),
    /// Print how a VM's NIC must be set up for a VM port of a policy: "MAC ADDRESS/LEN GATEWAY"
    /// ("-" for what the port or its subnet lacks).
    VmNic {
        /// The policy file.
        policy: PathBuf,
        /// The VM port's name.
        port: String,
    },
    /// Validate a policy file without starting DPDK; print a summary or every error.
    Check {
        /// The policy file (TOML).
        policy: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct DeriveArgs {
    /// The base policy: `host1` or `host2` (the built-in examples) or a policy file.
    #[arg(long, default_value = "host1")]
    from: String,
    /// The host's name ([host] name).
    #[arg(long)]
    host_name: Option<String>,
    /// The host's (first) provider address.
    #[arg(long)]
    pa: Option<std::net::IpAddr>,
    /// The MAC of that provider address.
    #[arg(long, value_parser = parse_mac)]
    pa_mac: Option<hnv_policy::EthernetAddress>,
    /// NAME=DEVARGS (repeatable): keep only the ports named, with these devargs.
    #[arg(long = "port", value_name = "NAME=DEVARGS", value_parser = parse_pair::<String>)]
    ports: Vec<(String, String)>,
    /// NAME=MTU (repeatable): a port's MTU.
    #[arg(long, value_name = "NAME=MTU", value_parser = parse_pair::<u16>)]
    mtu: Vec<(String, u16)>,
    /// NAME=MAC (repeatable): a VM port whose VM runs elsewhere: this placeholder MAC, no addresses.
    #[arg(long, value_name = "NAME=MAC", value_parser = parse_park)]
    park: Vec<(String, hnv_policy::EthernetAddress)>,
    /// VM=PA (repeatable): every lookup record with this vm_name points at this provider address.
    #[arg(long = "vm-pa", value_name = "VM=PA", value_parser = parse_pair::<std::net::IpAddr>)]
    vm_pa: Vec<(String, std::net::IpAddr)>,
    /// VSID=nvgre|vxlan (repeatable): a subnet's encapsulation.
    #[arg(long, value_name = "VSID=ENCAP", value_parser = parse_encap)]
    encap: Vec<(u32, hnv_policy::Encap)>,
    /// Drop the base's static neighbors ([[host.neighbors]]).
    #[arg(long)]
    no_neighbors: bool,
    /// IP=MAC (repeatable): add a static provider neighbor.
    #[arg(long = "neighbor", value_name = "IP=MAC", value_parser = parse_neighbor)]
    neighbors: Vec<(std::net::IpAddr, hnv_policy::EthernetAddress)>,
    /// A policy fragment to append (repeatable; `-` = standard input): [[ports]], [[lookup]], [[subnets]],
    /// [[routing_domains]], [[customer_routes]], [[acl]] and [[neighbors]] tables.
    #[arg(long = "add", value_name = "FILE")]
    add: Vec<PathBuf>,
    /// Write the policy here (atomically) instead of standard output.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

fn parse_pair<T: std::str::FromStr>(s: &str) -> Result<(String, T), String>
where
    T::Err: std::fmt::Display,
{
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected NAME=VALUE"))?;
    if k.is_empty() {
        return Err(format!("{s:?}: empty name before '='"));
    }
    v.parse().map(|v| (k.to_string(), v)).map_err(|e| format!("{s:?}: {e}"))
}

fn parse_mac(s: &str) -> Result<hnv_policy::EthernetAddress, String> {
    hnv_policy::addr::parse_mac(s).map_err(|e| format!("{s:?}: {e}"))
}

fn parse_park(s: &str) -> Result<(String, hnv_policy::EthernetAddress), String> {
    let (k, v) = parse_pair::<String>(s)?;
    Ok((k, parse_mac(&v)?))
}

fn parse_neighbor(s: &str) -> Result<(std::net::IpAddr, hnv_policy::EthernetAddress), String> {
    let (k, v) = parse_pair::<String>(s)?;
    let ip = k.parse().map_err(|e| format!("{s:?}: {e}"))?;
    Ok((ip, parse_mac(&v)?))
}

fn parse_encap(s: &str) -> Result<(u32, hnv_policy::Encap), String> {
    let (k, v) = parse_pair::<String>(s)?;
    let vsid: hnv_policy::Vsid = k.parse().map_err(|e| format!("{s:?}: {e}"))?;
    let encap = match v.as_str() {
        "nvgre" => hnv_policy::Encap::Nvgre,
        "vxlan" => hnv_policy::Encap::Vxlan,
        other => return Err(format!("{s:?}: unknown encapsulation {other:?} (expected nvgre or vxlan)")),
    };
    Ok((vsid.get(), encap))
}

/// `hnvswitch derive-policy`.
fn derive_policy(a: DeriveArgs) -> Result<()> {
    use hnv_policy::derive::{derive, Edits, Fragment};
    let read = |p: &std::path::Path| -> Result<String> {
        if p.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("reading standard input")
        } else {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
        }
    };
    let (base_text, origin) = match a.from.as_str() {
        "host1" => (hnv_policy::example::BLUE_RED_HOST1.to_string(), "example host1".to_string()),
        "host2" => (hnv_policy::example::BLUE_RED_HOST2.to_string(), "example host2".to_string()),
        path => (read(std::path::Path::new(path))?, path.to_string()),
    };
    let base = hnv_policy::derive::read_base(&base_text, &origin)?;
    let fragments = a.add.iter().map(|p| Fragment::parse(&read(p)?, &p.display().to_string()).map_err(anyhow::Error::from)).collect::<Result<Vec<_>>>()?;
    let edits = Edits {
        host_name: a.host_name,
        pa: a.pa,
        pa_mac: a.pa_mac,
        ports: (!a.ports.is_empty()).then_some(a.ports),
        mtu: a.mtu,
        park: a.park,
        vm_pa: a.vm_pa,
        encap: a.encap,
        clear_neighbors: a.no_neighbors,
        neighbors: a.neighbors,
        fragments,
    };
    let out_name = a.out.as_ref().map_or_else(|| "the derived policy".to_string(), |p| p.display().to_string());
    let (_, policy) = derive(base, &edits, &out_name)?;
    let text = format!("# derived by `hnvswitch derive-policy` from {origin}\n{}", hnv_policy::to_toml(&policy));
    match a.out {
        None => print!("{text}"),
        Some(path) => {
            let tmp = path.with_extension("derive.tmp");
            std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        }
    }
    Ok(())
}

fn run(config: PathBuf, duration: Option<f64>, packets: Option<u64>, capture: Option<PathBuf>, control: Option<PathBuf>, etcd: Vec<String>) -> Result<()> {
    let mut cfg = Config::load(&config)?;
    if !etcd.is_empty() {
        if cfg.forwarding.mode != Mode::Hnv {
            bail!("--etcd: only hnv mode takes its policy from etcd");
        }
        // The endpoints replace etcd.endpoints; prefix, TLS and user stay as configured.
        let e = hnvswitch::config::EtcdConfig { endpoints: etcd, ..cfg.etcd.take().unwrap_or_else(|| hnvswitch::config::EtcdConfig::new(Vec::new(), hnvswitch::etcd::DEFAULT_PREFIX.to_string())) };
        e.check().map_err(|m| anyhow::anyhow!("--etcd: {m}"))?;
        cfg.etcd = Some(e);
    }
    if let Some(e) = &cfg.etcd {
        // Certificate, key and password files are checked before DPDK starts.
        hnvswitch::etcd_security::Credentials::load(e).map_err(|m| anyhow::anyhow!("{}: {m}", config.display()))?;
    }
    if let Some(d) = duration {
        if d.is_nan() || d < 0.0 {
            bail!("--duration must be a non-negative number of seconds");
        }
        cfg.run.duration_secs = d;
    }
    if let Some(p) = packets {
        cfg.run.max_packets = p;
    }
    if control.is_some() {
        cfg.control.socket = control;
    }
    let (macswap, specs) = match cfg.forwarding.mode {
        Mode::Io | Mode::Macswap => (
            cfg.forwarding.mode == Mode::Macswap,
            cfg.ports
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let mut pc = PortConfig::new(p.devargs.clone());
                    pc.rx_queues = p.rx_queues.unwrap_or(1);
                    pc.mtu = p.mtu;
                    pc.members = p.members.clone();
                    pc.balance_flow = p.balance == Some(hnvswitch::config::Balance::Flow);
                    PortSpec { name: p.name.clone(), config: pc, key: format!("ports[{i}].devargs") }
                })
                .collect::<Vec<_>>(),
        ),
        Mode::Hnv => {
            let path = cfg.forwarding.policy.clone().unwrap_or_default();
            let policy = hnvswitch::hnv::initial_policy(&cfg, &path)?;
            for a in hnv_policy::advice(&policy) {
                log::warn!("{a}");
            }
            let stop = stop_on_signals()?;
            let capture = capture.map(|path| hnvswitch::hnv::CaptureRequest { path, spec: hnv_datapath::ext::capture::CaptureSpec::all() });
            hnvswitch::hnv::run(&cfg, Some(&path), policy, &stop, capture).with_context(|| config.display().to_string())?;
            return Ok(());
        }
    };
    let stop = stop_on_signals()?;
    let rt = Runtime::start(&cfg, &specs).with_context(|| config.display().to_string())?;
    let peer = cfg.peer_map();
    let max = (cfg.run.max_packets > 0).then_some(cfg.run.max_packets);
    let workers = rt.run_limited(|_| CrossConnect::new(peer.clone(), macswap), &stop, secs(cfg.run.duration_secs), secs(cfg.run.stats_interval_secs), max, rate_printer())?;
    println!("\nfinal port counters:\n{}", port_table(&rt.names(), &rt.port_stats()));
    println!("workers:\n{}", worker_table(&workers));
    rt.shutdown();
    Ok(())
}

fn check(path: &std::path::Path) -> Result<()> {
    match hnv_policy::load(path) {
        Ok(p) => {
            println!(
                "{}: valid: host {}, {} provider address(es), {} port(s), {} routing domain(s), {} subnet(s) ({} nvgre, {} vxlan on UDP port {}), {} lookup record(s), {} customer route(s), {} ACL rule(s)",
                path.display(),
                p.host.name,
                p.host.provider_addresses.len(),
                p.ports.len(),
                p.routing_domains.len(),
                p.subnets.len(),
                p.subnets.iter().filter(|s| s.encap == hnv_policy::Encap::Nvgre).count(),
                p.subnets.iter().filter(|s| s.encap == hnv_policy::Encap::Vxlan).count(),
                p.host.vxlan_port,
                p.lookup.len(),
                p.customer_routes.len(),
                p.acl.len()
            );
            for a in hnv_policy::advice(&p) {
                eprintln!("warning: {}: {a}", path.display());
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("{e}");
            bail!("{}: policy rejected", path.display())
        }
    }
}

fn traffic_cmd(kind: &str, flows: usize, size: usize, out: &std::path::Path) -> Result<()> {
    if !(64..=1518).contains(&size) || flows == 0 {
        bail!("--size must be 64..=1518 and --flows at least 1");
    }
    let frames = match kind {
        "udp" => hnvswitch::traffic::udp_flows(flows, size - 4),
        "vm-blue" => hnvswitch::traffic::vm_traffic(true, flows, size - 4),
        "uplink" => hnvswitch::traffic::uplink_traffic(flows, size - 4),
        other => bail!("--kind {other:?}: unknown (expected udp, vm-blue or uplink)"),
    };
    hnvswitch::traffic::write_pcap(out, &frames)
}

fn main() -> ExitCode {
    hnvswitch::logging::init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let result = match cli.command {
        Command::Run { config, duration, packets, capture, control, etcd } => run(config, duration, packets, capture, control, etcd),
        Command::Demo { duration, io } => {
            if io {
                demo::run_io(duration)
            } else {
                demo::run_hnv(duration)
            }
        }
        Command::Check { policy } => check(&policy),
        Command::DerivePolicy(a) => derive_policy(a),
        Command::VmNic { policy, port } => {
            hnv_policy::load(&policy).map_err(anyhow::Error::from).and_then(|p| hnv_policy::derive::vm_nic(&p, &port).with_context(|| format!("{}", policy.display()))).map(|nic| println!("{nic}"))
        }
        Command::ExamplePolicy { host } => match host.as_str() {
            "host1" | "host2" => {
                print!("{}", if host == "host1" { hnv_policy::example::BLUE_RED_HOST1 } else { hnv_policy::example::BLUE_RED_HOST2 });
                Ok(())
            }
            other => Err(anyhow::anyhow!("unknown example {other:?} (expected host1 or host2)")),
        },
        Command::Scenario { scenario, flows, size, hugepages, mbufs, dir, tenants, cas_per_tenant } => hnvswitch::scenarios::write(&dir, scenario, flows, size, &hugepages, mbufs)
            .and_then(|w| {
                if tenants > 0 {
                    hnvswitch::scenarios::add_tenants(&w.policy, tenants, cas_per_tenant)?;
                }
                Ok(w)
            })
            .map(|w| {
                let pcaps: Vec<String> = w.pcaps.iter().map(|p| p.display().to_string()).collect();
                println!("{} {} {} {}", w.config.display(), pcaps.join(","), w.sinks.join(","), w.sources.join(","));
            }),
        Command::Traffic { kind, flows, size, out } => traffic_cmd(&kind, flows, size, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", hnvswitch::logging::error_line(&hnvswitch::service::OneLine(&format!("{e:#}")).to_string()));
            ExitCode::FAILURE
        }
    }
}
