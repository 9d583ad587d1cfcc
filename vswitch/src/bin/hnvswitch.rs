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
struct Cli {
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
    },
    /// Run the embedded demo on virtual devices (no file, no NIC needed).
    Demo {
        /// Seconds to run (0 = until Ctrl-C).
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
    },
}

fn run(config: PathBuf, duration: Option<f64>) -> Result<()> {
    let mut cfg = Config::load(&config)?;
    if let Some(d) = duration {
        if !(d >= 0.0) {
            bail!("--duration must be a non-negative number of seconds");
        }
        cfg.run.duration_secs = d;
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
                    PortSpec { name: p.name.clone(), config: pc, key: format!("ports[{i}].devargs") }
                })
                .collect::<Vec<_>>(),
        ),
        Mode::Hnv => bail!("{}: key 'forwarding.mode': hnv mode is not available in this build yet", config.display()),
    };
    let stop = stop_on_signals()?;
    let rt = Runtime::start(&cfg, &specs).with_context(|| config.display().to_string())?;
    let peer = cfg.peer_map();
    let workers = rt.run(|_| CrossConnect::new(peer.clone(), macswap), &stop, secs(cfg.run.duration_secs), secs(cfg.run.stats_interval_secs), rate_printer())?;
    println!("\nfinal port counters:\n{}", port_table(rt.names(), &rt.port_stats()));
    println!("workers:\n{}", worker_table(&workers));
    rt.shutdown();
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).format_timestamp_millis().init();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let result = match cli.command {
        Command::Run { config, duration } => run(config, duration),
        Command::Demo { duration } => demo::run_io(duration),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
