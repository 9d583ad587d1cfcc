//! The startup configuration file (`hnvswitch run --config FILE`).
//!
//! TOML, every table optional except `ports` (or a policy in `hnv` mode).
//! Unknown keys are errors. [`Config::load`] turns every problem into one
//! line naming the file, the key and what is wrong.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Why a configuration was rejected: one line, naming the file and key.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    /// The file (or `<embedded>`).
    pub file: String,
    /// Key and problem.
    pub message: String,
}

/// A problem with one key of the configuration, e.g.
/// `key 'dpdk.workers[0]': core 4096 does not exist`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key '{key}': {problem}")]
pub struct KeyError {
    /// The key's path, e.g. `etcd.endpoints[1]`.
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

impl KeyError {
    /// The problem `problem` with `key`.
    pub fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        KeyError { key: key.into(), problem: problem.into() }
    }
}

/// Whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// EAL and memory settings.
    #[serde(default)]
    pub dpdk: DpdkConfig,
    /// Ports for the `io` and `macswap` modes (in `hnv` mode the policy names them).
    #[serde(default)]
    pub ports: Vec<PortEntry>,
    /// What the workers do with packets.
    #[serde(default)]
    pub forwarding: Forwarding,
    /// Run length and reporting.
    #[serde(default)]
    pub run: RunConfig,
    /// The control socket.
    #[serde(default)]
    pub control: ControlConfig,
    /// Take the tenant policy from etcd (hnv mode; none = the policy file alone).
    #[serde(default)]
    pub etcd: Option<EtcdConfig>,
}

/// `[etcd]`
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// Client URLs, e.g. `["https://10.0.0.1:2379"]`: all `http://` or all `https://`.
    pub endpoints: Vec<String>,
    /// Key prefix holding the tenant policy; ends with `/`.
    #[serde(default = "default_etcd_prefix")]
    pub prefix: String,
    /// PEM CA certificate(s) the etcd servers' certificates are checked against
    /// (needed with `https://` endpoints).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for etcd's `--client-cert-auth` (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`; not accessible to other users.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// etcd user (etcd's `auth enable`; with `password_file`).
    #[serde(default)]
    pub user: Option<String>,
    /// File holding the user's password (mode 0600; one trailing newline is ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// Key prefix used when `etcd.prefix` is not set.
pub const DEFAULT_ETCD_PREFIX: &str = "/hnv/";

fn default_etcd_prefix() -> String {
    DEFAULT_ETCD_PREFIX.to_string()
}

impl EtcdConfig {
    /// Plaintext, unauthenticated access to `endpoints` under `prefix`.
    pub fn new(endpoints: Vec<String>, prefix: String) -> Self {
        EtcdConfig { endpoints, prefix, ..Default::default() }
    }

    /// Check endpoints, prefix and which security keys go together; the error
    /// names the key. The files are read by `etcd_security::Credentials::load`.
    ///
    /// # Errors
    /// The `etcd.*` key and its problem.
    pub fn check(&self) -> Result<(), KeyError> {
        if self.endpoints.is_empty() {
            return Err(KeyError::new("etcd.endpoints", "at least one endpoint is needed"));
        }
        let mut tls = None;
        for (i, e) in self.endpoints.iter().enumerate() {
            let (https, rest) = match (e.strip_prefix("http://"), e.strip_prefix("https://")) {
                (Some(rest), _) => (false, rest),
                (_, Some(rest)) => (true, rest),
                _ => return Err(KeyError::new(format!("etcd.endpoints[{i}]"), format!("{e:?} is not an http:// or https:// URL"))),
            };
            if rest.is_empty() || rest.contains(char::is_whitespace) {
                return Err(KeyError::new(format!("etcd.endpoints[{i}]"), format!("{e:?} names no host")));
            }
            if tls.is_some_and(|t| t != https) {
                return Err(KeyError::new(format!("etcd.endpoints[{i}]"), format!("{e:?} mixes http:// and https:// endpoints")));
            }
            tls = Some(https);
        }
        if !self.prefix.ends_with('/') || self.prefix.len() < 2 {
            return Err(KeyError::new("etcd.prefix", format!("{:?} must be non-empty and end with '/'", self.prefix)));
        }
        if tls == Some(true) && self.ca_file.is_none() {
            return Err(KeyError::new("etcd.ca_file", "https:// endpoints need the CA certificate that signed the etcd servers' certificates"));
        }
        if tls == Some(false) {
            for (key, set) in [("ca_file", self.ca_file.is_some()), ("cert_file", self.cert_file.is_some()), ("key_file", self.key_file.is_some())] {
                if set {
                    return Err(KeyError::new(format!("etcd.{key}"), "TLS needs https:// endpoints"));
                }
            }
        }
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => return Err(KeyError::new("etcd.key_file", "cert_file needs its private key")),
            (None, Some(_)) => return Err(KeyError::new("etcd.cert_file", "key_file needs its certificate")),
            _ => {}
        }
        match (&self.user, &self.password_file) {
            (Some(u), Some(_)) if u.is_empty() || u.contains(char::is_control) => return Err(KeyError::new("etcd.user", format!("{u:?} is not a user name"))),
            (Some(_), None) => return Err(KeyError::new("etcd.password_file", "user needs a password file")),
            (None, Some(_)) => return Err(KeyError::new("etcd.user", "password_file needs a user")),
            _ => {}
        }
        Ok(())
    }

    /// Relative file paths made relative to `dir` (the configuration file's).
    fn resolve(&mut self, dir: &Path) {
        for p in [&mut self.ca_file, &mut self.cert_file, &mut self.key_file, &mut self.password_file].into_iter().flatten() {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }
}

/// `[control]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// Unix socket for `hnvctl` (hnv mode; none = no control socket).
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Where the policy in force is saved after every accepted change; at
    /// start, a valid state file takes precedence over the policy file, so a
    /// restarted switch resumes with the policy it had.
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    /// Serve Prometheus text metrics on this address (e.g. "127.0.0.1:9469"; none = off).
    #[serde(default)]
    pub metrics: Option<String>,
    /// Once the state file's snapshot is at least this many bytes, accepted
    /// changes are appended to a journal next to it instead of rewriting it
    /// (0: always journal).
    #[serde(default = "default_journal_threshold")]
    pub state_journal_threshold: u64,
}

fn default_journal_threshold() -> u64 {
    4 << 20
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig { socket: None, state_file: None, metrics: None, state_journal_threshold: default_journal_threshold() }
    }
}

/// `[dpdk]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DpdkConfig {
    /// Core of the EAL main (control) thread.
    #[serde(default)]
    pub main_core: usize,
    /// Cores of the poll-mode workers, one worker each. Default: the last core.
    #[serde(default)]
    pub workers: Vec<usize>,
    /// Memory to reserve, MiB.
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// `auto` (hugepages when enough are free), `on`, or `off` (`--no-huge`).
    #[serde(default)]
    pub hugepages: Hugepages,
    /// EAL `--file-prefix`; default `hnv<pid>` so instances never collide.
    #[serde(default)]
    pub file_prefix: Option<String>,
    /// Extra EAL arguments, passed as they are.
    #[serde(default)]
    pub extra_eal_args: Vec<String>,
    /// Mbufs in the packet pool.
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
    /// Per-lcore mempool cache.
    #[serde(default = "default_cache")]
    pub mbuf_cache: u32,
    /// Rx/tx descriptors per queue.
    #[serde(default = "default_desc")]
    pub descriptors: u16,
    /// Let an idle worker sleep this many µs after 1024 empty polls (0 = pure
    /// poll mode). For hosts that share cores with VMs or tests.
    #[serde(default)]
    pub idle_sleep_us: u64,
}

fn default_memory() -> u32 {
    512
}
fn default_mbufs() -> u32 {
    16383
}
fn default_cache() -> u32 {
    256
}
fn default_desc() -> u16 {
    1024
}

impl Default for DpdkConfig {
    fn default() -> Self {
        DpdkConfig {
            main_core: 0,
            workers: Vec::new(),
            memory_mb: default_memory(),
            hugepages: Hugepages::Auto,
            file_prefix: None,
            extra_eal_args: Vec::new(),
            mbufs: default_mbufs(),
            mbuf_cache: default_cache(),
            descriptors: default_desc(),
            idle_sleep_us: 0,
        }
    }
}

/// Hugepage use.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Hugepages {
    /// Hugepages when enough are free and mounted, else `--no-huge`.
    #[default]
    Auto,
    /// Require hugepages.
    On,
    /// `--no-huge`.
    Off,
}

/// `[[ports]]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortEntry {
    /// Name used in `forwarding.pairs` and reports.
    pub name: String,
    /// DPDK devargs or PCI address.
    pub devargs: String,
    /// Rx queues (RSS over them when more than one). Default: one per worker, at most the device's.
    #[serde(default)]
    pub rx_queues: Option<u16>,
    /// MTU.
    #[serde(default)]
    pub mtu: Option<u16>,
    /// A bond's members (`net_bonding…` devargs): devargs or PCI addresses,
    /// probed before the bond and named as its members. In hnv mode they apply
    /// to the policy port of this name.
    #[serde(default)]
    pub members: Vec<String>,
    /// How a balance-mode bond (`mode=2`) spreads frames over its members:
    /// unset, DPDK's `xmit_policy`; `"flow"`, by the encapsulation's flow entropy
    /// (NVGRE's key, VSID<<8 | FlowID; VXLAN's UDP source port), the member picked
    /// by the worker among the active ones. Only for a bond with `members`, in mode 2.
    #[serde(default)]
    pub balance: Option<Balance>,
}

/// `[[ports]] balance`: a bond's transmit policy chosen by the switch.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Balance {
    /// By the outer header's flow entropy (see `pmd::steer`).
    Flow,
}

/// `[forwarding]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Forwarding {
    /// The mode.
    #[serde(default)]
    pub mode: Mode,
    /// `io`/`macswap`: port pairs forwarded both ways; default 0↔1, 2↔3, … (a lone port loops to itself).
    #[serde(default)]
    pub pairs: Vec<[String; 2]>,
    /// `hnv`: the policy file (relative paths are relative to the config file).
    #[serde(default)]
    pub policy: Option<PathBuf>,
    /// `hnv`: act on MS-NVGREE REDIRECT messages from other hosts (default true;
    /// false ignores them all, counted as refused).
    #[serde(default = "default_true")]
    pub accept_redirects: bool,
}

fn default_true() -> bool {
    true
}

impl Default for Forwarding {
    fn default() -> Self {
        Forwarding { mode: Mode::default(), pairs: Vec::new(), policy: None, accept_redirects: true }
    }
}

/// Forwarding mode.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Cross-connect ports unchanged (like `testpmd --forward-mode=io`).
    #[default]
    Io,
    /// Cross-connect and swap source/destination MACs.
    Macswap,
    /// The HNV switch driven by a policy file.
    Hnv,
}

/// `[run]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Stop after this many seconds (0 = until SIGINT/SIGTERM).
    #[serde(default)]
    pub duration_secs: f64,
    /// Print rates every this many seconds (0 = never).
    #[serde(default = "default_interval")]
    pub stats_interval_secs: f64,
    /// Stop each worker after it received this many packets (0 = no limit); for profiling.
    #[serde(default)]
    pub max_packets: u64,
}

fn default_interval() -> f64 {
    1.0
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig { duration_secs: 0.0, stats_interval_secs: default_interval(), max_packets: 0 }
    }
}

impl Config {
    /// Read and check a configuration file.
    ///
    /// # Errors
    /// One-line [`ConfigError`] naming the file, key and problem.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError { file: file.clone(), message: format!("cannot read: {e}") })?;
        let mut cfg = Config::parse(&text, &file)?;
        if let (Some(p), Some(dir)) = (cfg.forwarding.policy.as_mut(), path.parent()) {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
        if let (Some(e), Some(dir)) = (cfg.etcd.as_mut(), path.parent()) {
            e.resolve(dir);
        }
        Ok(cfg)
    }

    /// Parse and check configuration text; `file` names it in errors.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError { file: file.to_string(), message };
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}: ")
            });
            err(format!("{}{}", at.unwrap_or_default(), e.message().trim()))
        })?;
        cfg.check().map_err(|e| err(e.to_string()))?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), KeyError> {
        let cores = available_cores();
        let exists = |c: usize| cores.is_empty() || cores.contains(&c);
        if !exists(self.dpdk.main_core) {
            return Err(KeyError::new("dpdk.main_core", format!("core {} does not exist (available: {cores:?})", self.dpdk.main_core)));
        }
        for (i, c) in self.dpdk.workers.iter().enumerate() {
            if !exists(*c) {
                return Err(KeyError::new(format!("dpdk.workers[{i}]"), format!("core {c} does not exist (available: {cores:?})")));
            }
            if self.dpdk.workers[..i].contains(c) {
                return Err(KeyError::new(format!("dpdk.workers[{i}]"), format!("core {c} is listed twice")));
            }
        }
        if self.dpdk.workers.len() > 16 {
            return Err(KeyError::new("dpdk.workers", "at most 16 workers"));
        }
        // Each mbuf takes about 2.5 KiB with its headers; leave room for rings and descriptors.
        let need_mb = (u64::from(self.dpdk.mbufs) * 2560 / (1 << 20)) + 64;
        if u64::from(self.dpdk.memory_mb) < need_mb {
            return Err(KeyError::new("dpdk.memory_mb", format!("{} MiB is too little for {} mbufs (needs at least {need_mb} MiB)", self.dpdk.memory_mb, self.dpdk.mbufs)));
        }
        if self.dpdk.mbufs < 1024 {
            return Err(KeyError::new("dpdk.mbufs", format!("{} is too few (at least 1024)", self.dpdk.mbufs)));
        }
        for (i, p) in self.ports.iter().enumerate() {
            if p.name.is_empty() || p.devargs.trim().is_empty() {
                return Err(KeyError::new(format!("ports[{i}]"), "name and devargs must not be empty"));
            }
            if self.ports[..i].iter().any(|q| q.name == p.name) {
                return Err(KeyError::new(format!("ports[{i}].name"), format!("duplicate port name {:?}", p.name)));
            }
            if p.rx_queues == Some(0) {
                return Err(KeyError::new(format!("ports[{i}].rx_queues"), "must be at least 1"));
            }
            if p.balance.is_some() && p.members.is_empty() {
                return Err(KeyError::new(format!("ports[{i}].balance"), "only a bond whose members are listed (members = [...]) in balance mode (mode=2) takes a balance policy"));
            }
            if p.balance.is_some() && p.devargs.split(',').any(|kv| kv.strip_prefix("mode=").is_some_and(|m| m.trim() != "2" && m.trim() != "balance")) {
                return Err(KeyError::new(format!("ports[{i}].balance"), "balance = \"flow\" needs a balance-mode bond (mode=2)"));
            }
        }
        match self.forwarding.mode {
            Mode::Io | Mode::Macswap => {
                if self.ports.is_empty() {
                    return Err(KeyError::new("ports", "io and macswap modes need at least one port"));
                }
                for (i, [a, b]) in self.forwarding.pairs.iter().enumerate() {
                    for n in [a, b] {
                        if !self.ports.iter().any(|p| &p.name == n) {
                            return Err(KeyError::new(format!("forwarding.pairs[{i}]"), format!("unknown port {n:?}")));
                        }
                    }
                }
            }
            Mode::Hnv => {
                if self.forwarding.policy.is_none() {
                    return Err(KeyError::new("forwarding.policy", "hnv mode needs a policy file"));
                }
            }
        }
        if let Some(e) = &self.etcd {
            if self.forwarding.mode != Mode::Hnv {
                return Err(KeyError::new("etcd", "only hnv mode takes its policy from etcd"));
            }
            e.check()?;
        }
        if !(self.run.duration_secs >= 0.0 && self.run.stats_interval_secs >= 0.0) {
            return Err(KeyError::new("run", "durations must be non-negative numbers"));
        }
        Ok(())
    }

    /// Worker cores: as configured, or the last available core.
    pub fn worker_cores(&self) -> Vec<usize> {
        if !self.dpdk.workers.is_empty() {
            return self.dpdk.workers.clone();
        }
        let cores = available_cores();
        vec![cores.iter().copied().filter(|&c| c != self.dpdk.main_core).max().unwrap_or(self.dpdk.main_core)]
    }

    /// For `io`/`macswap`: the output port index of each port index.
    pub fn peer_map(&self) -> Vec<u16> {
        let n = self.ports.len();
        let idx = |name: &str| self.ports.iter().position(|p| p.name == name).unwrap_or(0) as u16;
        if self.forwarding.pairs.is_empty() {
            return (0..n).map(|i| if i ^ 1 < n { (i ^ 1) as u16 } else { i as u16 }).collect();
        }
        let mut map: Vec<u16> = (0..n as u16).collect();
        for [a, b] in &self.forwarding.pairs {
            map[idx(a) as usize] = idx(b);
            map[idx(b) as usize] = idx(a);
        }
        map
    }
}

/// The cores this process may run on.
pub fn available_cores() -> Vec<usize> {
    core_affinity::get_core_ids().map(|v| v.into_iter().map(|c| c.id).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_parses_with_defaults() {
        let c = Config::parse("[[ports]]\nname='a'\ndevargs='net_null0'\n", "t.toml").unwrap();
        assert_eq!(c.dpdk.memory_mb, 512);
        assert_eq!(c.forwarding.mode, Mode::Io);
        assert_eq!(c.peer_map(), vec![0]);
    }

    #[test]
    fn unknown_key_is_named_with_file_and_line() {
        let e = Config::parse("[dpdk]\nmemroy_mb = 5\n", "x.toml").unwrap_err().to_string();
        assert!(e.starts_with("x.toml: line 2"), "{e}");
        assert!(e.contains("memroy_mb"), "{e}");
    }

    #[test]
    fn missing_field_is_named() {
        let e = Config::parse("[[ports]]\nname='a'\n", "x.toml").unwrap_err().to_string();
        assert!(e.contains("devargs"), "{e}");
    }

    #[test]
    fn nonexistent_core_is_rejected() {
        let e = Config::parse("[dpdk]\nworkers=[4096]\n[[ports]]\nname='a'\ndevargs='net_null0'\n", "x.toml").unwrap_err().to_string();
        assert!(e.contains("dpdk.workers[0]") && e.contains("4096"), "{e}");
    }

    #[test]
    fn too_little_memory_is_rejected() {
        let e = Config::parse("[dpdk]\nmemory_mb=16\n[[ports]]\nname='a'\ndevargs='net_null0'\n", "x.toml").unwrap_err().to_string();
        assert!(e.contains("dpdk.memory_mb"), "{e}");
    }

    #[test]
    fn balance_flow_needs_a_balance_mode_bond_with_members() {
        let bond = "[[ports]]\nname='up'\ndevargs='net_bonding0,mode=2'\nmembers=['net_null_a','net_null_b']\n";
        assert_eq!(Config::parse(&format!("{bond}balance='flow'\n"), "t").unwrap().ports[0].balance, Some(Balance::Flow));
        assert_eq!(Config::parse(bond, "t").unwrap().ports[0].balance, None);
        let e = Config::parse("[[ports]]\nname='up'\ndevargs='net_null0'\nbalance='flow'\n", "t").unwrap_err().to_string();
        assert!(e.contains("ports[0].balance") && e.contains("members"), "{e}");
        let e = Config::parse("[[ports]]\nname='up'\ndevargs='net_bonding0,mode=1'\nmembers=['a','b']\nbalance='flow'\n", "t").unwrap_err().to_string();
        assert!(e.contains("ports[0].balance") && e.contains("mode=2"), "{e}");
        let e = Config::parse(&format!("{bond}balance='l5'\n"), "t").unwrap_err().to_string();
        assert!(e.contains("flow"), "{e}");
    }

    #[test]
    fn pairs_map_both_ways() {
        let c = Config::parse("[[ports]]\nname='a'\ndevargs='x'\n[[ports]]\nname='b'\ndevargs='y'\n[[ports]]\nname='c'\ndevargs='z'\n[forwarding]\npairs=[['a','c']]\n", "t").unwrap();
        assert_eq!(c.peer_map(), vec![2, 1, 0]);
        let e = Config::parse("[[ports]]\nname='a'\ndevargs='x'\n[forwarding]\npairs=[['a','q']]\n", "t").unwrap_err();
        assert!(e.to_string().contains("unknown port \"q\""));
    }

    #[test]
    fn etcd_section_is_optional_and_checked() {
        let hnv = "[forwarding]\nmode='hnv'\npolicy='p.toml'\n";
        assert_eq!(Config::parse(hnv, "t").unwrap().etcd, None);
        let c = Config::parse(&format!("{hnv}[etcd]\nendpoints=['http://127.0.0.1:2379']\n"), "t").unwrap();
        assert_eq!(c.etcd.unwrap().prefix, "/hnv/");
        for (bad, key) in [
            ("endpoints=[]", "etcd.endpoints"),
            ("endpoints=['ftp://h:2379']", "etcd.endpoints[0]"),
            ("endpoints=['https://h:2379']", "etcd.ca_file"),
            ("endpoints=['https://h:2379', 'http://g:2379']\nca_file='ca.pem'", "etcd.endpoints[1]"),
            ("endpoints=['http://h:2379']\nca_file='ca.pem'", "etcd.ca_file"),
            ("endpoints=['https://h:2379']\nca_file='ca.pem'\ncert_file='c.pem'", "etcd.key_file"),
            ("endpoints=['https://h:2379']\nca_file='ca.pem'\nkey_file='k.pem'", "etcd.cert_file"),
            ("endpoints=['http://h:2379']\nuser='hnv'", "etcd.password_file"),
            ("endpoints=['http://h:2379']\npassword_file='pw'", "etcd.user"),
            ("endpoints=['http://h:2379']\nuser=''\npassword_file='pw'", "etcd.user"),
            ("endpoints=['http://h:2379']\npassword='secret'", "password"),
            ("endpoints=['http://h:2379']\nprefix='/hnv'", "etcd.prefix"),
            ("endpoints=['http://h:2379']\nprefx='/x/'", "prefx"),
        ] {
            let e = Config::parse(&format!("{hnv}[etcd]\n{bad}\n"), "x.toml").unwrap_err().to_string();
            assert!(e.starts_with("x.toml: ") && e.contains(key) && !e.contains("secret"), "{bad}: {e}");
        }
        let c = Config::parse(&format!("{hnv}[etcd]\nendpoints=['https://h:2379']\nca_file='ca.pem'\ncert_file='c.pem'\nkey_file='k.pem'\nuser='hnv'\npassword_file='pw'\n"), "t").unwrap();
        let mut e = c.etcd.unwrap();
        e.resolve(Path::new("/etc/hnv"));
        assert_eq!((e.ca_file.unwrap(), e.password_file.unwrap()), (PathBuf::from("/etc/hnv/ca.pem"), PathBuf::from("/etc/hnv/pw")));
        let e = Config::parse("[[ports]]\nname='a'\ndevargs='x'\n[etcd]\nendpoints=['http://h:1']\n", "t").unwrap_err().to_string();
        assert!(e.contains("key 'etcd'"), "{e}");
    }
}
