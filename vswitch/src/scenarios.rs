//! Benchmark scenarios: a policy, a configuration and a traffic file for one
//! datapath path, written into a directory so that scripts (the callgrind
//! regression check, the testpmd and OVS comparisons) run identical traffic.
//!
//! The host is host 1 of the worked example (PA 192.168.4.11) with Blue1
//! (VSID 5001, 10.0.0.5), Blue4 (5001, 10.0.0.9, same host) and Red1 (6001,
//! 10.0.0.5), and 32 remote records: 16 Blue and 16 Red CAs (10.0.0.16–31)
//! spread over the remote PAs 192.168.4.22–25.
//! - `encap`: Blue1 sends UDP flows to the 16 remote Blue CAs (net_pcap source
//!   on blue1, net_null uplink);
//! - `decap`: the uplink receives NVGRE from the remote PAs for Blue1
//!   (net_pcap source on the uplink, net_null blue1);
//! - `local`: Blue1 sends UDP flows to Blue4 on the same host.

use crate::traffic;
use anyhow::{bail, Context, Result};
use hnv_datapath::testkit::{self, mac};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// Which path a scenario exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// VM → remote VM: NVGRE encapsulation.
    Encap,
    /// Remote VM → VM: NVGRE decapsulation.
    Decap,
    /// VM → VM on the same host and VSID.
    Local,
}

impl std::str::FromStr for Scenario {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "encap" => Scenario::Encap,
            "decap" => Scenario::Decap,
            "local" => Scenario::Local,
            other => bail!("unknown scenario {other:?} (expected encap, decap or local)"),
        })
    }
}

/// Remote CA index `k` (0..16) of the tenant: address, MAC, PA.
pub fn remote(blue: bool, k: u8) -> (Ipv4Addr, [u8; 6], Ipv4Addr) {
    let t = if blue { 0x01 } else { 0x02 };
    (Ipv4Addr::new(10, 0, 0, 16 + k), [0x00, 0x15, 0x5d, t, 0x10, k], Ipv4Addr::new(192, 168, 4, 22 + k % 4))
}

const REMOTES: u8 = 16;

/// The scenario policy (all ports `net_null`; the source port is replaced).
pub fn policy_text(source: Option<(&str, &Path)>) -> String {
    let devargs = |name: &str| match source {
        Some((n, pcap)) if n == name => format!("net_pcap_{name},rx_pcap={},infinite_rx=1", pcap.display()),
        _ => format!("net_null_{name},no-rx=1"),
    };
    let mut s = String::from("[host]\nname = \"bench-host1\"\n\n[[host.provider_addresses]]\naddress = \"192.168.4.11\"\nprefix_len = 24\nmac = \"02:00:c0:a8:04:0b\"\nuplink = \"uplink\"\n");
    for k in 0..4u8 {
        let _ = write!(s, "\n[[host.neighbors]]\naddress = \"192.168.4.{}\"\nmac = \"02:00:c0:a8:04:{:02x}\"\n", 22 + k, 0x16 + k);
    }
    for (name, role, vsid, m, ca) in [
        ("uplink", "uplink", 0, "", ""),
        ("blue1", "vm", 5001, traffic::BLUE1_MAC, "10.0.0.5"),
        ("blue4", "vm", 5001, "00:15:5d:01:00:09", "10.0.0.9"),
        ("red1", "vm", 6001, traffic::RED1_MAC, "10.0.0.5"),
    ] {
        let _ = write!(s, "\n[[ports]]\nname = \"{name}\"\nrole = \"{role}\"\ndevargs = \"{}\"\n", devargs(name));
        if role == "vm" {
            let _ = write!(s, "vsid = {vsid}\nmac = \"{m}\"\naddresses = [\"{ca}\"]\n\n[[lookup]]\nca = \"{ca}\"\nvsid = {vsid}\nmac = \"{m}\"\npa = \"192.168.4.11\"\n");
        }
    }
    s += "\n[[routing_domains]]\nname = \"blue\"\n\n[[routing_domains]]\nname = \"red\"\n";
    s += "\n[[subnets]]\nvsid = 5001\nrouting_domain = \"blue\"\nprefixes = [\"10.0.0.0/24\"]\ngateway_v4 = \"10.0.0.1\"\n";
    s += "\n[[subnets]]\nvsid = 6001\nrouting_domain = \"red\"\nprefixes = [\"10.0.0.0/24\"]\ngateway_v4 = \"10.0.0.1\"\n";
    for (blue, vsid) in [(true, 5001), (false, 6001)] {
        for k in 0..REMOTES {
            let (ca, m, pa) = remote(blue, k);
            let m = m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
            let _ = write!(s, "\n[[lookup]]\nca = \"{ca}\"\nvsid = {vsid}\nmac = \"{m}\"\npa = \"{pa}\"\n");
        }
    }
    s
}

/// The scenario's traffic: `flows` distinct UDP flows of `frame_len` bytes (no FCS).
pub fn frames(scenario: Scenario, flows: usize, frame_len: usize) -> Vec<Vec<u8>> {
    let b1 = mac(traffic::BLUE1_MAC);
    let ca5 = Ipv4Addr::new(10, 0, 0, 5);
    (0..flows)
        .map(|i| {
            let k = (i % usize::from(REMOTES)) as u8;
            let j = i / usize::from(REMOTES);
            let (sport, dport) = (1024 + (j % 60000) as u16, 9 + (j / 60000) as u16);
            match scenario {
                Scenario::Encap => {
                    let (ca, m, _) = remote(true, k);
                    testkit::udp(b1, m, IpAddr::V4(ca5), IpAddr::V4(ca), sport, dport, frame_len)
                }
                Scenario::Local => {
                    let (sport, dport) = (1024 + (i % 60000) as u16, 9 + (i / 60000) as u16);
                    testkit::udp(b1, mac("00:15:5d:01:00:09"), IpAddr::V4(ca5), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), sport, dport, frame_len)
                }
                Scenario::Decap => {
                    let (ca, m, pa) = remote(true, k);
                    let inner = testkit::udp(m, b1, IpAddr::V4(ca), IpAddr::V4(ca5), sport, dport, frame_len);
                    let fid = testkit::flow_id_of(IpAddr::V4(ca), IpAddr::V4(ca5), 17, sport, dport);
                    let pa_mac = [0x02, 0x00, 0xc0, 0xa8, 0x04, 0x16 + k % 4];
                    testkit::nvgre(mac(traffic::PA1_MAC), pa_mac, pa, Ipv4Addr::new(192, 168, 4, 11), 5001, fid, &inner)
                }
            }
        })
        .collect()
}

/// Files written for one scenario.
#[derive(Debug, Clone)]
pub struct Written {
    /// The `hnvswitch run` configuration.
    pub config: PathBuf,
    /// The policy it names.
    pub policy: PathBuf,
    /// The traffic source.
    pub pcap: PathBuf,
    /// Switch port whose tx counts the scenario's output.
    pub sink: &'static str,
}

/// Write the scenario's pcap, policy and configuration into `dir`.
pub fn write(dir: &Path, scenario: Scenario, flows: usize, frame_size: usize, hugepages: &str, mbufs: u32) -> Result<Written> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (name, source, sink) = match scenario {
        Scenario::Encap => ("encap", "blue1", "uplink"),
        Scenario::Decap => ("decap", "uplink", "blue1"),
        Scenario::Local => ("local", "blue1", "blue4"),
    };
    let pcap = dir.join(format!("{name}_{flows}.pcap"));
    traffic::write_pcap(&pcap, &frames(scenario, flows, frame_size.saturating_sub(4)))?;
    let policy = dir.join(format!("{name}_policy.toml"));
    std::fs::write(&policy, policy_text(Some((source, &pcap))))?;
    let config = dir.join(format!("{name}.toml"));
    let memory = (u64::from(mbufs) * 2560 / (1 << 20) + 256).max(512);
    std::fs::write(
        &config,
        format!(
            "[dpdk]\nmain_core = 0\nworkers = [1]\nmemory_mb = {memory}\nhugepages = \"{hugepages}\"\nmbufs = {mbufs}\n\n[forwarding]\nmode = \"hnv\"\npolicy = \"{}\"\n\n[run]\nstats_interval_secs = 1\n",
            policy.display()
        ),
    )?;
    Ok(Written { config, policy, pcap, sink })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_policy_is_valid_and_frames_are_distinct_flows() {
        let p = hnv_policy::parse(&policy_text(None), "bench").unwrap();
        assert_eq!(p.lookup.len(), 3 + 32);
        for s in [Scenario::Encap, Scenario::Decap, Scenario::Local] {
            let f = frames(s, 1000, 60);
            let mut keys: Vec<&[u8]> = f.iter().map(|x| &x[..]).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), 1000, "{s:?}");
        }
    }
}
