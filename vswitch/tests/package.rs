//! The Debian package's example configuration (`vswitch/package/`), checked on
//! every `cargo test` so that a change to the configuration or policy format
//! that breaks it fails here, not first on an operator's machine
//! (`scripts/package-test.sh` also runs the installed switch on it).
#![allow(clippy::unwrap_used)]

use hnvswitch::config::{Config, Mode};
use std::path::Path;

const CONFIG: &str = include_str!("../package/etc/hnvswitch.toml");
const POLICY: &str = include_str!("../package/etc/policy.toml");
const UNIT: &str = include_str!("../package/hnvswitch.service");

fn unit_value<'a>(key: &str) -> Vec<&'a str> {
    UNIT.lines().filter_map(|l| l.strip_prefix(key)?.strip_prefix('=')).collect()
}

#[test]
fn the_example_configuration_and_policy_are_valid() {
    let cfg = Config::parse(CONFIG, "/etc/hnvswitch/hnvswitch.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.forwarding.mode, Mode::Hnv);
    assert_eq!(cfg.forwarding.policy.as_deref(), Some(Path::new("policy.toml")));
    let policy = hnv_policy::parse(POLICY, "/etc/hnvswitch/policy.toml").unwrap_or_else(|e| panic!("{e}"));
    // Ports that exist on every machine, so that the service starts without a NIC.
    assert!(!policy.ports.is_empty() && policy.ports.iter().all(|p| p.devargs.starts_with("net_ring")), "{:?}", policy.ports);
}

#[test]
fn the_configuration_uses_the_directories_the_unit_gives_it() {
    let cfg = Config::parse(CONFIG, "hnvswitch.toml").unwrap_or_else(|e| panic!("{e}"));
    // RuntimeDirectory=hnvswitch holds the control socket, hnvctl's default.
    assert_eq!(unit_value("RuntimeDirectory"), ["hnvswitch"]);
    assert_eq!(cfg.control.socket.as_deref(), Some(Path::new("/run/hnvswitch/hnvswitch.sock")));
    let hnvctl = include_str!("../src/bin/hnvctl.rs");
    assert!(hnvctl.contains("default_value = \"/run/hnvswitch/hnvswitch.sock\""), "hnvctl's default socket is the service's");
    // StateDirectory=hnvswitch holds the state file.
    assert_eq!(unit_value("StateDirectory"), ["hnvswitch"]);
    assert!(cfg.control.state_file.as_deref().is_some_and(|p| p.parent() == Some(Path::new("/var/lib/hnvswitch"))), "{:?}", cfg.control.state_file);
    assert!(cfg.control.metrics.as_deref().is_some_and(|a| a.starts_with("127.0.0.1:")), "metrics on loopback");
    // The unit runs the switch on this file, and restarts it when it fails.
    assert!(unit_value("ExecStart").iter().any(|e| e.starts_with("/usr/bin/hnvswitch run --config /etc/hnvswitch/hnvswitch.toml")), "{UNIT}");
    assert_eq!(unit_value("Restart"), ["on-failure"]);
}
