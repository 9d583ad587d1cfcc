//! Benchmark scenarios: a policy, a configuration and traffic files for one
//! datapath path, written into a directory so that scripts (the callgrind
//! regression check, the cost curve, the testpmd and OVS comparisons) run
//! identical traffic.
//!
//! The host is host 1 of the worked example (PA 192.168.4.11, MAC
//! 02:00:c0:a8:04:0b) with the VM ports Blue1 (VSID 5001, 10.0.0.5), Blue4
//! (5001, 10.0.0.9), Red1 (6001, 10.0.0.5) and, in the multi-VM set, Red2
//! (6001, 10.0.0.9): the two tenants' CAs overlap. 32 remote records: 16 Blue
//! and 16 Red CAs (10.0.0.16–31, the same addresses in both tenants) spread over
//! the remote PAs 192.168.4.22–25, Red shifted by one PA against Blue so that a
//! VSID mix-up also shows as a wrong outer destination.
//!
//! Single-VM set (one source port):
//! - `encap`: Blue1 sends UDP flows to the 16 remote Blue CAs (net_pcap source
//!   on blue1, net_null uplink);
//! - `decap`: the uplink receives NVGRE from the remote PAs for Blue1
//!   (net_pcap source on the uplink, net_null blue1);
//! - `local`: Blue1 sends UDP flows to Blue4 on the same host;
//! - `encap-vxlan`, `decap-vxlan`: `encap` and `decap` with both subnets'
//!   `encap = "vxlan"` (VXLAN on UDP 4789, VNI = VSID; decap frames carry 50
//!   bytes of outer header).
//!
//! Multi-VM set (4 VM ports of two tenants):
//! - `encap-multi`: every VM port is a net_pcap source (its own file, a quarter
//!   of the flows) sending to the 16 remote CAs of its tenant; sink: the uplink;
//! - `decap-multi`: the uplink receives NVGRE for all 4 VMs (round robin) from
//!   the 4 remote PAs; sinks: the 4 VM ports.
//!
//! Flow `j` of a source sends to remote CA `j mod 16` of its tenant; the UDP
//! ports come from `j / 16`, so every frame of a scenario is distinct. Every
//! port that is not a source is `net_null,no-rx=1`.
//!
//! The frame size is that of the VM's frame on the wire (with FCS, so the pcap
//! holds `size - 4` bytes); decap frames carry 42 more bytes of outer header.
//!
//! `write` checks, in order: the flow count is at least the number of sources
//! (each needs one frame: "flows must be at least N"), the frame size is at
//! least 64 ("frame size"), then writes the files (I/O errors with the path).

use crate::traffic;
use anyhow::{bail, ensure, Context, Result};
use hnv_wire::frames::{self, mac};
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
    /// 4 VMs of two tenants → their remote VMs.
    EncapMulti,
    /// Remote VMs → 4 VMs of two tenants.
    DecapMulti,
    /// VM → remote VM: VXLAN encapsulation.
    EncapVxlan,
    /// Remote VM → VM: VXLAN decapsulation.
    DecapVxlan,
}

/// Every scenario, in the order of `--help`.
pub const ALL: [Scenario; 7] = [Scenario::Encap, Scenario::Decap, Scenario::Local, Scenario::EncapMulti, Scenario::DecapMulti, Scenario::EncapVxlan, Scenario::DecapVxlan];

impl Scenario {
    /// The name on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Encap => "encap",
            Scenario::Decap => "decap",
            Scenario::Local => "local",
            Scenario::EncapMulti => "encap-multi",
            Scenario::DecapMulti => "decap-multi",
            Scenario::EncapVxlan => "encap-vxlan",
            Scenario::DecapVxlan => "decap-vxlan",
        }
    }

    /// True for the VXLAN scenarios (both subnets `encap = "vxlan"`).
    pub fn vxlan(self) -> bool {
        matches!(self, Scenario::EncapVxlan | Scenario::DecapVxlan)
    }

    /// True for the 4-VM set.
    pub fn multi(self) -> bool {
        matches!(self, Scenario::EncapMulti | Scenario::DecapMulti)
    }

    /// Source ports (each gets its own traffic file) and sink ports (whose tx counts).
    pub fn ports(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Scenario::Encap | Scenario::EncapVxlan => (&["blue1"], &["uplink"]),
            Scenario::Decap | Scenario::DecapVxlan => (&["uplink"], &["blue1"]),
            Scenario::Local => (&["blue1"], &["blue4"]),
            Scenario::EncapMulti => (&["blue1", "blue4", "red1", "red2"], &["uplink"]),
            Scenario::DecapMulti => (&["uplink"], &["blue1", "blue4", "red1", "red2"]),
        }
    }
}

impl std::str::FromStr for Scenario {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match ALL.iter().find(|x| x.name() == s) {
            Some(x) => Ok(*x),
            None => bail!("unknown scenario {s:?} (expected encap, decap, local, encap-multi, decap-multi, encap-vxlan or decap-vxlan)"),
        }
    }
}

/// A VM port of the scenario host: name, VSID, MAC, CA.
#[derive(Debug, Clone, Copy)]
pub struct Vm {
    /// Port name.
    pub name: &'static str,
    /// Its virtual subnet.
    pub vsid: u32,
    /// Its MAC.
    pub mac: &'static str,
    /// Its customer address.
    pub ca: Ipv4Addr,
}

/// The VM ports: Blue1, Blue4, Red1, Red2 (the single-VM set has the first three).
pub const VMS: [Vm; 4] = [
    Vm { name: "blue1", vsid: 5001, mac: traffic::BLUE1_MAC, ca: Ipv4Addr::new(10, 0, 0, 5) },
    Vm { name: "blue4", vsid: 5001, mac: "00:15:5d:01:00:09", ca: Ipv4Addr::new(10, 0, 0, 9) },
    Vm { name: "red1", vsid: 6001, mac: traffic::RED1_MAC, ca: Ipv4Addr::new(10, 0, 0, 5) },
    Vm { name: "red2", vsid: 6001, mac: "00:15:5d:02:00:09", ca: Ipv4Addr::new(10, 0, 0, 9) },
];

const BLUE: u32 = 5001;

/// Remote CA index `k` (0..16) of the tenant: address, MAC, PA (Red one PA further than Blue).
pub fn remote(blue: bool, k: u8) -> (Ipv4Addr, [u8; 6], Ipv4Addr) {
    let t = if blue { 0x01 } else { 0x02 };
    let pa = if blue { k % 4 } else { (k + 1) % 4 };
    (Ipv4Addr::new(10, 0, 0, 16 + k), [0x00, 0x15, 0x5d, t, 0x10, k], Ipv4Addr::new(192, 168, 4, 22 + pa))
}

/// The MAC of remote PA 192.168.4.`22 + i`.
fn pa_mac(pa: Ipv4Addr) -> [u8; 6] {
    let o = pa.octets();
    [0x02, 0x00, 0xc0, 0xa8, 0x04, o[3]]
}

const REMOTES: u8 = 16;
const LOCAL_PA: Ipv4Addr = Ipv4Addr::new(192, 168, 4, 11);

/// The scenario policy with the single-VM port set (all ports `net_null`; `source` replaced).
pub fn policy_text(source: Option<(&str, &Path)>) -> String {
    let src: Vec<(&str, &Path)> = source.into_iter().collect();
    policy_for(false, &src)
}

/// The policy of the single-VM (`multi` false: blue1, blue4, red1) or multi-VM
/// port set; each `sources` port reads its pcap with `infinite_rx=1`, every other
/// port is a `net_null,no-rx=1` sink.
pub fn policy_for(multi: bool, sources: &[(&str, &Path)]) -> String {
    policy_in(multi, sources, false)
}

/// [`policy_for`], with both subnets on VXLAN when `vxlan`.
pub fn policy_in(multi: bool, sources: &[(&str, &Path)], vxlan: bool) -> String {
    let devargs = |name: &str| match sources.iter().find(|(n, _)| *n == name) {
        Some((_, pcap)) => format!("net_pcap_{name},rx_pcap={},infinite_rx=1", pcap.display()),
        None => format!("net_null_{name},no-rx=1"),
    };
    let mut s = String::from("[host]\nname = \"bench-host1\"\n\n[[host.provider_addresses]]\naddress = \"192.168.4.11\"\nprefix_len = 24\nmac = \"02:00:c0:a8:04:0b\"\nuplink = \"uplink\"\n");
    for k in 0..4u8 {
        let _ = write!(s, "\n[[host.neighbors]]\naddress = \"192.168.4.{}\"\nmac = \"02:00:c0:a8:04:{:02x}\"\n", 22 + k, 22 + k);
    }
    let _ = write!(s, "\n[[ports]]\nname = \"uplink\"\nrole = \"uplink\"\ndevargs = \"{}\"\n", devargs("uplink"));
    for vm in VMS.iter().take(if multi { 4 } else { 3 }) {
        let _ = write!(
            s,
            "\n[[ports]]\nname = \"{n}\"\nrole = \"vm\"\ndevargs = \"{d}\"\nvsid = {v}\nmac = \"{m}\"\naddresses = [\"{ca}\"]\n\n[[lookup]]\nca = \"{ca}\"\nvsid = {v}\nmac = \"{m}\"\npa = \"{LOCAL_PA}\"\n",
            n = vm.name,
            d = devargs(vm.name),
            v = vm.vsid,
            m = vm.mac,
            ca = vm.ca
        );
    }
    s += "\n[[routing_domains]]\nname = \"blue\"\n\n[[routing_domains]]\nname = \"red\"\n";
    let encap = if vxlan { "encap = \"vxlan\"\n" } else { "" };
    let _ = write!(s, "\n[[subnets]]\nvsid = 5001\nrouting_domain = \"blue\"\nprefixes = [\"10.0.0.0/24\"]\ngateway_v4 = \"10.0.0.1\"\n{encap}");
    let _ = write!(s, "\n[[subnets]]\nvsid = 6001\nrouting_domain = \"red\"\nprefixes = [\"10.0.0.0/24\"]\ngateway_v4 = \"10.0.0.1\"\n{encap}");
    for (blue, vsid) in [(true, 5001), (false, 6001)] {
        for k in 0..REMOTES {
            let (ca, m, pa) = remote(blue, k);
            let m = m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
            let _ = write!(s, "\n[[lookup]]\nca = \"{ca}\"\nvsid = {vsid}\nmac = \"{m}\"\npa = \"{pa}\"\n");
        }
    }
    s
}

/// UDP ports of flow `j` of a source (16 flows per port pair, one per remote CA).
fn flow_ports(j: usize) -> (u16, u16) {
    let j = j / usize::from(REMOTES);
    (1024 + (j % 60000) as u16, 9 + (j / 60000) as u16)
}

/// Frame `j` of `vm` to remote CA `j mod 16` of its tenant.
fn to_remote(vm: &Vm, j: usize, frame_len: usize) -> Vec<u8> {
    let (ca, m, _) = remote(vm.vsid == BLUE, (j % usize::from(REMOTES)) as u8);
    let (sport, dport) = flow_ports(j);
    frames::udp(mac(vm.mac), m, IpAddr::V4(vm.ca), IpAddr::V4(ca), sport, dport, frame_len)
}

/// Frame `j` from remote CA `j mod 16` of `vm`'s tenant to `vm`, in NVGRE from that CA's PA.
fn from_remote(vm: &Vm, j: usize, frame_len: usize) -> Vec<u8> {
    from_remote_in(vm, j, frame_len, false)
}

/// [`from_remote`], in VXLAN (UDP 4789) when `vxlan`.
fn from_remote_in(vm: &Vm, j: usize, frame_len: usize, vxlan: bool) -> Vec<u8> {
    let (ca, m, pa) = remote(vm.vsid == BLUE, (j % usize::from(REMOTES)) as u8);
    let (sport, dport) = flow_ports(j);
    let inner = frames::udp(m, mac(vm.mac), IpAddr::V4(ca), IpAddr::V4(vm.ca), sport, dport, frame_len);
    let fid = frames::flow_id_of(IpAddr::V4(ca), IpAddr::V4(vm.ca), 17, sport, dport);
    if vxlan {
        frames::vxlan(mac(traffic::PA1_MAC), pa_mac(pa), pa, LOCAL_PA, vm.vsid, fid, hnv_wire::vxlan::PORT, &inner)
    } else {
        frames::nvgre(mac(traffic::PA1_MAC), pa_mac(pa), pa, LOCAL_PA, vm.vsid, fid, &inner)
    }
}

/// The single-VM scenarios' traffic: `flows` distinct UDP flows of `frame_len`
/// bytes (no FCS) from the one source; for the multi-VM ones, all sources' frames
/// concatenated (see `traffic_of`).
pub fn frames(scenario: Scenario, flows: usize, frame_len: usize) -> Vec<Vec<u8>> {
    traffic_of(scenario, flows, frame_len).into_iter().flatten().collect()
}

/// Per source port (in the order of `Scenario::ports`), its frames: `flows` in
/// all, split evenly over the sources (the first ones take the remainder).
pub fn traffic_of(scenario: Scenario, flows: usize, frame_len: usize) -> Vec<Vec<Vec<u8>>> {
    let (blue1, blue4) = (&VMS[0], &VMS[1]);
    match scenario {
        Scenario::Encap | Scenario::EncapVxlan => vec![(0..flows).map(|j| to_remote(blue1, j, frame_len)).collect()],
        Scenario::Decap => vec![(0..flows).map(|j| from_remote(blue1, j, frame_len)).collect()],
        Scenario::DecapVxlan => vec![(0..flows).map(|j| from_remote_in(blue1, j, frame_len, true)).collect()],
        Scenario::Local => {
            vec![(0..flows).map(|i| frames::udp(mac(blue1.mac), mac(blue4.mac), IpAddr::V4(blue1.ca), IpAddr::V4(blue4.ca), 1024 + (i % 60000) as u16, 9 + (i / 60000) as u16, frame_len)).collect()]
        }
        Scenario::EncapMulti => VMS
            .iter()
            .enumerate()
            .map(|(p, vm)| {
                let n = flows / VMS.len() + usize::from(p < flows % VMS.len());
                (0..n).map(|j| to_remote(vm, j, frame_len)).collect()
            })
            .collect(),
        Scenario::DecapMulti => vec![(0..flows).map(|i| from_remote(&VMS[i % VMS.len()], i / VMS.len(), frame_len)).collect()],
    }
}

/// Files written for one scenario.
#[derive(Debug, Clone)]
pub struct Written {
    /// The `hnvswitch run` configuration.
    pub config: PathBuf,
    /// The policy it names.
    pub policy: PathBuf,
    /// The (first) source's traffic file.
    pub pcap: PathBuf,
    /// The (first) switch port whose tx counts the scenario's output.
    pub sink: &'static str,
    /// Every source port's traffic file, in the order of `sources`.
    pub pcaps: Vec<PathBuf>,
    /// The source ports.
    pub sources: &'static [&'static str],
    /// The sink ports (their tx summed is the scenario's output).
    pub sinks: &'static [&'static str],
}

/// Write the scenario's pcaps, policy and configuration into `dir`.
pub fn write(dir: &Path, scenario: Scenario, flows: usize, frame_size: usize, hugepages: &str, mbufs: u32) -> Result<Written> {
    let (sources, sinks) = scenario.ports();
    ensure!(flows >= sources.len(), "flows must be at least {} for {}", sources.len(), scenario.name());
    ensure!(frame_size >= 64, "frame size {frame_size} is below 64 bytes");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = scenario.name();
    let mut pcaps = Vec::new();
    for (src, frames) in sources.iter().zip(traffic_of(scenario, flows, frame_size - 4)) {
        let pcap = if sources.len() == 1 { dir.join(format!("{name}_{flows}.pcap")) } else { dir.join(format!("{name}_{flows}_{src}.pcap")) };
        traffic::write_pcap(&pcap, &frames)?;
        pcaps.push(pcap);
    }
    let policy = dir.join(format!("{name}_policy.toml"));
    let srcs: Vec<(&str, &Path)> = sources.iter().copied().zip(pcaps.iter().map(PathBuf::as_path)).collect();
    std::fs::write(&policy, policy_in(scenario.multi(), &srcs, scenario.vxlan())).with_context(|| format!("writing {}", policy.display()))?;
    let config = dir.join(format!("{name}.toml"));
    let memory = (u64::from(mbufs) * 2560 / (1 << 20) + 256).max(512);
    std::fs::write(
        &config,
        format!(
            "[dpdk]\nmain_core = 0\nworkers = [1]\nmemory_mb = {memory}\nhugepages = \"{hugepages}\"\nmbufs = {mbufs}\n\n[forwarding]\nmode = \"hnv\"\npolicy = \"{}\"\n\n[run]\nstats_interval_secs = 1\n",
            policy.display()
        ),
    )
    .with_context(|| format!("writing {}", config.display()))?;
    Ok(Written { config, policy, pcap: pcaps[0].clone(), sink: sinks[0], pcaps, sources, sinks })
}

/// First VSID of the tenants [`tenant_text`] adds.
pub const TENANT_VSID0: u32 = 100_000;

/// The CA of record `k` of a tenant: `10.128.0.2` upward (each tenant is its
/// own routing domain, so every tenant uses the same addresses).
pub fn tenant_ca(k: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 2)) + k)
}

/// The MAC of record `k` of tenant VSID `vsid`: `02:VV:VV:VV:KK:KK`.
pub fn tenant_mac(vsid: u32, k: u32) -> [u8; 6] {
    let v = vsid.to_be_bytes();
    let k = k.to_be_bytes();
    [0x02, v[1], v[2], v[3], k[2], k[3]]
}

/// The remote PA of record `k` (one of the scenario's four remote hosts, which have static neighbors).
pub fn tenant_pa(k: u32) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 4, 22 + (k % 4) as u8)
}

/// Policy text adding `tenants` tenants of `cas` VMs each to a scenario
/// policy, to size it like a hosting provider's: tenant `i` is VSID
/// [`TENANT_VSID0`]` + i` in routing domain `t<i>` with subnet 10.128.0.0/16,
/// and each of its VMs a lookup record on a remote host ([`tenant_ca`],
/// [`tenant_mac`], [`tenant_pa`]). `cas` is at most 65,000.
pub fn tenant_text(tenants: u32, cas: u32) -> String {
    let cas = cas.min(65_000);
    let mut s = String::with_capacity(tenants as usize * (120 + cas as usize * 80));
    for i in 0..tenants {
        let vsid = TENANT_VSID0 + i;
        let _ = write!(s, "\n[[routing_domains]]\nname = \"t{i}\"\n\n[[subnets]]\nvsid = {vsid}\nrouting_domain = \"t{i}\"\nprefixes = [\"10.128.0.0/16\"]\ngateway_v4 = \"10.128.0.1\"\n");
        for k in 0..cas {
            let m = tenant_mac(vsid, k);
            let _ = write!(
                s,
                "\n[[lookup]]\nca = \"{}\"\nvsid = {vsid}\nmac = \"{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\"\npa = \"{}\"\n",
                tenant_ca(k),
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5],
                tenant_pa(k)
            );
        }
    }
    s
}

/// Append [`tenant_text`] to the policy file at `policy`.
pub fn add_tenants(policy: &Path, tenants: u32, cas: u32) -> Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new().append(true).open(policy).with_context(|| format!("opening {}", policy.display()))?;
    f.write_all(tenant_text(tenants, cas).as_bytes()).with_context(|| format!("writing {}", policy.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distinct(f: &[Vec<u8>]) -> usize {
        let mut keys: Vec<&[u8]> = f.iter().map(|x| &x[..]).collect();
        keys.sort();
        keys.dedup();
        keys.len()
    }

    #[test]
    fn tenants_sized_policies_are_valid_and_count_their_records() {
        let text = policy_text(None) + &tenant_text(3, 50);
        let p = hnv_policy::parse(&text, "t").unwrap();
        assert_eq!(p.lookup.iter().filter(|r| r.vsid.get() >= TENANT_VSID0).count(), 150);
        assert_eq!(p.subnets.len(), 2 + 3);
    }

    #[test]
    fn scenario_policies_are_valid_and_frames_are_distinct_flows() {
        let p = hnv_policy::parse(&policy_text(None), "bench").unwrap();
        assert_eq!(p.lookup.len(), 3 + 32);
        let p = hnv_policy::parse(&policy_for(true, &[]), "bench").unwrap();
        assert_eq!(p.lookup.len(), 4 + 32);
        for s in ALL {
            let f = frames(s, 1000, 60);
            assert_eq!(f.len(), 1000, "{s:?}");
            assert_eq!(distinct(&f), 1000, "{s:?}");
            assert_eq!(s.name().parse::<Scenario>().unwrap(), s);
        }
        assert!("encap-4".parse::<Scenario>().is_err());
        let p = hnv_policy::parse(&policy_in(false, &[], true), "bench").unwrap();
        assert!(p.subnets.iter().all(|s| s.encap == hnv_policy::Encap::Vxlan));
        let d = frames(Scenario::DecapVxlan, 4, 60);
        assert!(d.iter().all(|f| f.len() == 110 && f[23] == 17 && f[36..38] == [0x12, 0xb5]));
        assert_eq!(frames(Scenario::EncapVxlan, 4, 60), frames(Scenario::Encap, 4, 60));
    }

    #[test]
    fn encap_multi_sends_from_every_vm_with_overlapping_five_tuples() {
        let per = traffic_of(Scenario::EncapMulti, 1026, 124);
        assert_eq!(per.iter().map(Vec::len).collect::<Vec<_>>(), [257, 257, 256, 256]);
        for (vm, frames) in VMS.iter().zip(&per) {
            for f in frames {
                assert_eq!(f.len(), 124);
                assert_eq!(f[6..12], mac(vm.mac), "{}: source MAC", vm.name);
                assert_eq!(f[26..30], vm.ca.octets(), "{}: source CA", vm.name);
                let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
                let k = dst.octets()[3] - 16;
                assert!(k < 16);
                assert_eq!(f[0..6], remote(vm.vsid == BLUE, k).1, "{}: destination MAC of {dst}", vm.name);
            }
        }
        // Blue1 and Red1 (both 10.0.0.5) send the same IP/UDP headers: only the VSID tells them apart.
        assert_eq!(per[0][7][14..42], per[2][7][14..42]);
        assert_ne!(per[0][7], per[2][7]);
        // Red's remote CAs sit one PA further than Blue's.
        assert_ne!(remote(true, 3).2, remote(false, 3).2);
    }

    #[test]
    fn decap_multi_carries_each_vms_vsid_from_its_remotes_pa() {
        let per = traffic_of(Scenario::DecapMulti, 64, 60);
        assert_eq!(per.len(), 1);
        let mut seen = [0usize; 4];
        for f in &per[0] {
            assert_eq!(f.len(), 102);
            let inner = &f[42..];
            let v = VMS.iter().position(|vm| inner[0..6] == mac(vm.mac) && inner[30..34] == vm.ca.octets()).unwrap();
            seen[v] += 1;
            let vm = &VMS[v];
            assert_eq!(u32::from_be_bytes([f[38], f[39], f[40], 0]) >> 8, vm.vsid, "GRE key VSID");
            let k = inner[29] - 16;
            let (_, rmac, pa) = remote(vm.vsid == BLUE, k);
            assert_eq!(inner[6..12], rmac);
            assert_eq!(f[26..30], pa.octets(), "outer source = the remote CA's PA");
            assert_eq!(f[30..34], LOCAL_PA.octets());
            assert_eq!(f[6..12], pa_mac(pa));
        }
        assert_eq!(seen, [16; 4]);
    }

    #[test]
    fn write_rejects_too_few_flows_and_small_frames_and_writes_one_file_per_source() {
        let dir = std::env::temp_dir().join(format!("hnv-scen-{}", std::process::id()));
        assert!(write(&dir, Scenario::EncapMulti, 3, 64, "off", 4096).unwrap_err().to_string().contains("at least 4"));
        assert!(write(&dir, Scenario::Encap, 16, 60, "off", 4096).unwrap_err().to_string().contains("frame size"));
        let w = write(&dir, Scenario::EncapMulti, 64, 128, "off", 4096).unwrap();
        assert_eq!(w.pcaps.len(), 4);
        assert_eq!((w.sources.len(), w.sinks), (4, &["uplink"][..]));
        for (p, src) in w.pcaps.iter().zip(w.sources) {
            let f = traffic::read_pcap(p).unwrap();
            assert_eq!((f.len(), f[0].len()), (16, 124), "{src}");
        }
        let pol = std::fs::read_to_string(&w.policy).unwrap();
        for src in w.sources {
            assert!(pol.contains(&format!("net_pcap_{src},rx_pcap=")), "{src}");
        }
        assert!(pol.contains("net_null_uplink,no-rx=1"));
        hnv_policy::parse(&pol, "bench").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
