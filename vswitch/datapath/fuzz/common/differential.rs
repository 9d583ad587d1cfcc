// The flow cache's differential check, shared by the property test
// (vswitch/datapath/tests/flow_cache.rs) and the `differential` fuzz target
// (vswitch/datapath/fuzz/fuzz_targets/differential.rs); both include this
// file with `#[path]`.
//
// Contract:
// - [`scenario`] turns any byte string into a [`Scenario`] and never panics
//   (an exhausted input reads as zeros): one of the two example hosts with
//   IPv6 CAs added to every VM, then up to `MAX_STEPS` steps of traffic
//   batches and policy changes. Traffic mixes IPv4 and IPv6, UDP, TCP and
//   ICMP/ICMPv6 echo, many connections (source ports) between the same VM
//   pairs, routed, misaddressed, spoofed and broadcast frames, from VM ports
//   and NVGRE or VXLAN from the uplink (MS-NVGREE control messages
//   included; each VSID's own encapsulation, and for a quarter of the flows
//   the other one, as while a subnet is switched over), and
//   byte mutations (bit flips anywhere, truncation, extension) of frames of
//   flows sent before. Most frames repeat earlier flows so that the cache
//   hits. Policy changes: lookup records added, moved to another PA and
//   removed, VMs migrated away and in (ports removed and added), ACL rules on
//   protocols, ports, prefixes and directions added and removed per VSID,
//   customer routes added and removed, FlowID entropy toggled, a subnet's
//   encapsulation switched between NVGRE and VXLAN, queued
//   REDIRECT/learned-neighbor hints applied. Every policy change is
//   validated (`hnv_policy::parse`); an invalid one is not emitted.
// - [`run`] drives a scenario through two `HnvSwitch`es reading one
//   `PolicyStore`, one with a flow cache and one without, and after every
//   batch compares the frames each port received (as multisets: the cache
//   may reorder packets of different flows within a batch) and every counter
//   of `Totals` except the cache's own hits and misses (totals, per drop
//   reason, per port, per VSID); it also checks `rx + replicas == tx + drops`
//   for both and that no tx buffer overflowed. The first difference is
//   returned as `Err` with the step that caused it.
// - With `Options::known_bugs` false the generator leaves out the inputs of
//   the known cache defects listed at [`Options::known_bugs`] (and `run`
//   skips the one counter they skew), so that the check can run green while
//   they are open.
#![allow(dead_code, clippy::too_many_arguments)]

use hnv_datapath::testkit::{self, mac, Mac};
use hnv_datapath::{standard_pipeline, DatapathStats, HnvSwitch, PolicyStore, Totals};
use hnv_policy::{AclAction, AclRule, CustomerRoute, Direction, Encap, EthernetAddress, LookupRecord, Neighbor, Policy, Port, PortRole, Prefix, RecordType, Rule, Vsid};
use hnv_wire::nvgree::{Control, ControlRepr};
use pmd::{Batch, HeapBuf, PacketBuf, Processor, TxStage};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

/// Most steps in a scenario.
pub const MAX_STEPS: usize = 48;
/// Most distinct flows a scenario keeps for repeating.
const MAX_FLOWS: usize = 48;

/// What the generator may produce.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Also produce the inputs of known, open defects (issue 13 "stale cached
    /// drops", and a cached drop swallowing an MS-NVGREE control message):
    /// routed traffic to a CA with no record yet in another VSID of the
    /// routing domain (then the record is added), and decapsulated traffic
    /// from a CA whose record is in another VSID (then it is added), and
    /// control messages preceded by a mutated copy; and routed
    /// frames from VM ports with TTL 0 or 1 (counted in another VSID); and
    /// IPv6 TCP/UDP frames with a payload length below 4 (the key's ports
    /// are read beyond it, the pipeline's are 0: FlowID and ACL differ). Without
    /// it, [`run`] does not compare the `routed` counter (a cached route that
    /// ends in an ACL drop is not counted as routed; the pipeline counts it),
    /// and takes the MS-NVGREE messages the switches send out of the
    /// comparison (a cached drop sends no further UNREACHABLE where the
    /// pipeline sends one per interval, or whenever its rate limiter's slot
    /// was taken by another flow pair).
    pub known_bugs: bool,
}

/// A byte reader that never fails: past the end it reads zeros.
#[derive(Debug)]
pub struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    /// Read from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data, at: 0 }
    }

    /// The next byte (0 past the end).
    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    /// True once every byte has been read.
    pub fn done(&self) -> bool {
        self.at >= self.data.len()
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        match n {
            0 => 0,
            1..=256 => usize::from(self.byte()) % n,
            _ => usize::from(self.u16()) % n,
        }
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    /// One of `xs` (which must not be empty).
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

/// A VM of the example, or one the generator can add.
#[derive(Debug, Clone, Copy)]
pub struct Vm {
    /// Name (port name when local, lower-cased).
    pub name: &'static str,
    /// VSID.
    pub vsid: u32,
    /// MAC.
    pub mac: &'static str,
    /// IPv4 CA.
    pub ca4: [u8; 4],
    /// Last 16 bits of the IPv6 CA (prefix from the VSID).
    pub ca6: u16,
    /// Index in [`PAS`] of the host it starts on.
    pub home: usize,
}

/// The example's five VMs, then three that policy changes may add.
pub const VMS: [Vm; 8] = [
    Vm { name: "Blue1", vsid: 5001, mac: "00:15:5d:01:00:05", ca4: [10, 0, 0, 5], ca6: 5, home: 0 },
    Vm { name: "Red1", vsid: 6001, mac: "00:15:5d:02:00:05", ca4: [10, 0, 0, 5], ca6: 5, home: 0 },
    Vm { name: "Blue2", vsid: 5001, mac: "00:15:5d:01:00:07", ca4: [10, 0, 0, 7], ca6: 7, home: 1 },
    Vm { name: "Red2", vsid: 6001, mac: "00:15:5d:02:00:07", ca4: [10, 0, 0, 7], ca6: 7, home: 1 },
    Vm { name: "Blue3", vsid: 5002, mac: "00:15:5d:01:01:09", ca4: [10, 0, 1, 9], ca6: 9, home: 1 },
    Vm { name: "Blue4", vsid: 5001, mac: "00:15:5d:01:00:09", ca4: [10, 0, 0, 9], ca6: 9, home: 2 },
    Vm { name: "Red3", vsid: 6001, mac: "00:15:5d:02:00:09", ca4: [10, 0, 0, 9], ca6: 9, home: 2 },
    Vm { name: "Blue5", vsid: 5002, mac: "00:15:5d:01:01:14", ca4: [10, 0, 1, 20], ca6: 0x14, home: 1 },
];
/// VMs in the example policy.
const BASE_VMS: usize = 5;
/// Provider addresses: host 1, host 2, and a third host only reachable as a neighbor.
pub const PAS: [[u8; 4]; 3] = [[192, 168, 4, 11], [192, 168, 4, 22], [192, 168, 4, 33]];
/// Their MACs.
pub const PA_MACS: [&str; 3] = ["02:00:c0:a8:04:0b", "02:00:c0:a8:04:16", "02:00:c0:a8:04:21"];
/// VSIDs of the example.
const VSIDS: [u32; 3] = [5001, 5002, 6001];
/// CAs without a record (in a subnet, or off every subnet).
const UNKNOWN4: [[u8; 4]; 4] = [[10, 0, 0, 66], [8, 8, 8, 8], [10, 0, 1, 99], [10, 9, 1, 1]];
const UNKNOWN6: [u16; 2] = [0x66, 0x99];
const SPORTS: [u16; 6] = [1000, 1001, 1002, 1003, 40000, 65535];
const DPORTS: [u16; 7] = [22, 23, 53, 80, 443, 5000, 1000];

fn v6_prefix(vsid: u32) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, if vsid == 5002 { 1 } else { 0 }, 0, 0, 0, 0, 0, 0)
}

fn ca6(vsid: u32, low: u16) -> Ipv6Addr {
    let s = v6_prefix(vsid).segments();
    Ipv6Addr::new(s[0], s[1], 0, 0, 0, 0, 0, low)
}

impl Vm {
    fn ca(&self, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(ca6(self.vsid, self.ca6))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.ca4))
        }
    }

    fn mac(&self) -> Mac {
        mac(self.mac)
    }
}

fn gw_mac(vsid: u32) -> Mac {
    let b = vsid.to_be_bytes();
    [0x02, 0x48, 0x4e, b[1], b[2], b[3]]
}

fn vsid(v: u32) -> Vsid {
    Vsid::new(v).expect("example VSIDs are in range")
}

fn pa(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(PAS[i % PAS.len()]))
}

fn record(vm: &Vm, v6: bool, at: IpAddr) -> LookupRecord {
    LookupRecord {
        ca: vm.ca(v6),
        vsid: vsid(vm.vsid),
        mac: EthernetAddress(vm.mac()),
        pa: at,
        rule: Rule::Encap,
        kind: RecordType::Static,
        customer_id: None,
        vm_name: (!v6).then(|| vm.name.to_string()),
        flow_entropy: true,
    }
}

/// Validate a changed policy the way the control plane does.
fn finish(p: &Policy) -> Option<Policy> {
    hnv_policy::parse(&hnv_policy::to_toml(p), "difftest").ok()
}

/// The example policy of `host` (0 or 1) with IPv6 CAs, prefixes and
/// gateways added to every VM and VSID, and the third host as a neighbor.
pub fn base_policy(host: usize) -> Policy {
    let text = if host == 0 { hnv_policy::example::BLUE_RED_HOST1 } else { hnv_policy::example::BLUE_RED_HOST2 };
    let mut p = hnv_policy::parse(text, "example").expect("the example policy is valid");
    for s in &mut p.subnets {
        let v = s.vsid.get();
        s.prefixes.push(Prefix::new(IpAddr::V6(v6_prefix(v)), 64).expect("a /64"));
        s.gateway_v6 = Some(ca6(v, 1));
    }
    for port in &mut p.ports {
        if let Some(vm) = VMS.iter().find(|vm| port.mac == Some(EthernetAddress(vm.mac())) && port.vsid.map(Vsid::get) == Some(vm.vsid)) {
            port.addresses.push(vm.ca(true));
        }
    }
    for vm in &VMS[..BASE_VMS] {
        p.lookup.push(record(vm, true, pa(vm.home)));
    }
    p.host.neighbors.push(Neighbor { address: pa(2), mac: EthernetAddress(mac(PA_MACS[2])) });
    finish(&p).expect("the dual-stack example policy is valid")
}

/// Which end a flow is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dst {
    /// A VM of [`VMS`] (through the gateway MAC when in another VSID).
    Vm(usize),
    /// A VM's CA with another VM's MAC.
    WrongMac(usize),
    /// A CA without a record.
    Unknown(usize),
    /// A VM's CA in a broadcast frame.
    Broadcast(usize),
}

/// Flow payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// UDP.
    Udp,
    /// TCP with these flags.
    Tcp(u8),
    /// ICMP or ICMPv6 echo request.
    Echo,
    /// From the uplink: an MS-NVGREE REDIRECT (new PA index) or UNREACHABLE (`None`).
    Control(Option<usize>),
}

/// An abstract flow; its frame depends on the port it is sent on and the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// IPv6 CAs.
    pub v6: bool,
    /// Payload.
    pub kind: Kind,
    /// Source port (or echo identifier).
    pub sport: u16,
    /// Destination port (or echo sequence).
    pub dport: u16,
    /// TTL / hop limit.
    pub ttl: u8,
    /// Frame length before encapsulation.
    pub len: u16,
    /// Destination.
    pub dst: Dst,
    /// The sending VM when sent from the uplink (from a VM port: the port's VM).
    pub sender: usize,
    /// 0: honest; 1: spoofed source CA; 2: spoofed source MAC.
    pub spoof: u8,
    /// Outer source PA: 0 = the sender's PA per the policy, else `PAS[outer - 1]`.
    pub outer: u8,
    /// Outer destination: false = this host's PA, true = another host's.
    pub misrouted: bool,
    /// NVGRE VSID: 0 = the natural one, else 5001, 5002, 6001 or an unknown VSID.
    pub vsid_sel: u8,
    /// NVGRE FlowID.
    pub flow_id: u8,
}

/// One step of a scenario.
#[derive(Debug, Clone)]
pub enum Step {
    /// A batch received on `port` at TSC `now`.
    Traffic {
        /// Ingress port.
        port: u16,
        /// Frames.
        frames: Vec<Vec<u8>>,
        /// What each frame is (for reports).
        what: Vec<String>,
        /// TSC.
        now: u64,
    },
    /// Publish a new policy.
    Policy {
        /// The policy.
        policy: Box<Policy>,
        /// The change.
        what: String,
    },
    /// Apply queued MS-NVGREE messages and learned neighbors.
    ApplyHints,
}

/// A generated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Host (0 or 1) of the example.
    pub host: usize,
    /// Flow-cache entries of the cached switch.
    pub cache: usize,
    /// The first policy.
    pub policy: Policy,
    /// Steps.
    pub steps: Vec<Step>,
    /// Generated with [`Options::known_bugs`] (which also compares the `routed` counter).
    pub known_bugs: bool,
}

/// What a run saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Batches run.
    pub batches: usize,
    /// Frames sent.
    pub frames: u64,
    /// Cache hits of the cached switch.
    pub hits: u64,
    /// Cache misses of the cached switch.
    pub misses: u64,
    /// Policy changes published.
    pub changes: usize,
}

struct Gen<'a, 'b> {
    b: &'b mut Bytes<'a>,
    opt: Options,
    host: usize,
    p: Policy,
    flows: Vec<Flow>,
    /// (flow, port) pairs sent so far.
    sent: Vec<(usize, u16)>,
    /// VSIDs whose records traffic of another VSID has depended on (see [`Gen::note_sent`]).
    cross: Vec<u32>,
}

fn local_vm(p: &Policy, vm: &Vm) -> Option<usize> {
    p.ports.iter().position(|port| port.role == PortRole::Vm && port.mac == Some(EthernetAddress(vm.mac())) && port.vsid.map(Vsid::get) == Some(vm.vsid))
}

fn record_pa(p: &Policy, vm: &Vm) -> Option<IpAddr> {
    p.lookup.iter().find(|r| r.vsid.get() == vm.vsid && r.mac == EthernetAddress(vm.mac())).map(|r| r.pa)
}

fn has_record(p: &Policy, vm: &Vm, v6: bool) -> bool {
    p.lookup.iter().any(|r| r.vsid.get() == vm.vsid && r.ca == vm.ca(v6))
}

fn rd_of(vsid: u32) -> &'static str {
    if vsid == 6001 {
        "red"
    } else {
        "blue"
    }
}

impl Gen<'_, '_> {
    fn local_pa(&self) -> IpAddr {
        pa(self.host)
    }

    /// A PA that is not this host's.
    fn remote_pa(&mut self) -> IpAddr {
        let others = [pa(1 - self.host), pa(2)];
        self.b.pick(&others)
    }

    fn flow(&mut self) -> Flow {
        let b = &mut *self.b;
        let kind = match b.below(16) {
            0..=5 => Kind::Udp,
            6..=10 => Kind::Tcp(b.pick(&[0x02, 0x10, 0x18, 0x11, 0x04])),
            11..=13 => Kind::Echo,
            14 => Kind::Control(Some(2)),
            _ => Kind::Control(None),
        };
        let dst = match b.below(16) {
            0..=9 => Dst::Vm(b.below(VMS.len())),
            10 | 11 => Dst::Unknown(b.below(UNKNOWN4.len())),
            12 | 13 => Dst::WrongMac(b.below(VMS.len())),
            _ => Dst::Broadcast(b.below(VMS.len())),
        };
        Flow {
            v6: b.chance(1, 3),
            kind,
            sport: b.pick(&SPORTS).wrapping_add(b.below(4) as u16),
            dport: b.pick(&DPORTS),
            ttl: b.pick(&[64, 64, 64, 2, 1, 0]),
            len: b.pick(&[60, 60, 64, 90, 128, 200]),
            dst,
            sender: b.below(VMS.len()),
            spoof: if b.chance(1, 10) { 1 + b.below(2) as u8 } else { 0 },
            outer: if b.chance(1, 8) { 1 + b.below(3) as u8 } else { 0 },
            misrouted: b.chance(1, 16),
            vsid_sel: if b.chance(1, 10) { 1 + b.below(4) as u8 } else { 0 },
            flow_id: b.byte(),
        }
    }

    /// `f` as a frame received on `port` under the current policy.
    fn render(&self, f: &Flow, port: u16) -> Vec<u8> {
        let p = &self.p;
        let on_uplink = p.ports.get(usize::from(port)).is_some_and(|q| q.role == PortRole::Uplink);
        let local_sender =
            p.ports.get(usize::from(port)).and_then(|q| VMS.iter().position(|vm| q.role == PortRole::Vm && q.mac == Some(EthernetAddress(vm.mac())) && q.vsid.map(Vsid::get) == Some(vm.vsid)));
        let sender = VMS[if on_uplink { f.sender } else { local_sender.unwrap_or(f.sender) }];
        let v6 = f.v6;
        if let (Kind::Control(new_pa), true) = (f.kind, on_uplink) {
            return self.control(f, &sender, new_pa);
        }
        // The inner frame.
        let (dst_vsid, dst_ca, mut dst_mac) = match f.dst {
            Dst::Vm(i) | Dst::WrongMac(i) | Dst::Broadcast(i) => (VMS[i].vsid, VMS[i].ca(v6), VMS[i].mac()),
            Dst::Unknown(i) => {
                let ca = if v6 { IpAddr::V6(ca6(sender.vsid, UNKNOWN6[i % UNKNOWN6.len()])) } else { IpAddr::V4(Ipv4Addr::from(UNKNOWN4[i])) };
                let in_subnet = v6 || UNKNOWN4[i][..3] == sender.ca4[..3];
                (sender.vsid, ca, if in_subnet { mac("00:15:5d:01:00:66") } else { gw_mac(sender.vsid) })
            }
        };
        let routed = dst_vsid != sender.vsid;
        let mut src_mac = sender.mac();
        if routed {
            // From a VM: to its gateway; from the uplink: already routed by the sender's host.
            if on_uplink {
                src_mac = gw_mac(dst_vsid);
            } else {
                dst_mac = gw_mac(sender.vsid);
            }
        }
        match f.dst {
            Dst::WrongMac(i) => dst_mac = VMS[(i + 1) % VMS.len()].mac(),
            Dst::Broadcast(_) => dst_mac = [0xff; 6],
            _ => {}
        }
        let mut src_ca = sender.ca(v6);
        match f.spoof {
            1 => src_ca = if v6 { IpAddr::V6(ca6(sender.vsid, 0x66)) } else { IpAddr::V4(Ipv4Addr::new(10, 0, 0, 66)) },
            2 => src_mac = mac("00:15:5d:09:09:09"),
            _ => {}
        }
        let len = usize::from(f.len);
        let mut inner = match f.kind {
            Kind::Udp => testkit::udp(src_mac, dst_mac, src_ca, dst_ca, f.sport, f.dport, len),
            Kind::Tcp(flags) => testkit::tcp(src_mac, dst_mac, src_ca, dst_ca, f.sport, f.dport, flags, len),
            Kind::Echo | Kind::Control(_) => testkit::icmp_echo(src_mac, dst_mac, src_ca, dst_ca, f.sport, f.dport, len),
        };
        if f.ttl != 64 {
            testkit::set_ttl(&mut inner, f.ttl);
        }
        if !on_uplink {
            return inner;
        }
        let vsid = match f.vsid_sel {
            0 => dst_vsid,
            1 => 5001,
            2 => 5002,
            3 => 6001,
            _ => 7777,
        };
        self.wrap(f, &sender, vsid, &inner)
    }

    /// `inner` in NVGRE or VXLAN from the sender's host to this one (or as
    /// the flow's outer fields say): the VSID's encapsulation in the current
    /// policy, or for a quarter of the flows (FlowID bits 6 and 7 set) the
    /// other one, as during a switch-over.
    fn wrap(&self, f: &Flow, sender: &Vm, vsid: u32, inner: &[u8]) -> Vec<u8> {
        let src = match f.outer {
            0 => record_pa(&self.p, sender).unwrap_or(pa(sender.home)),
            k => pa(usize::from(k) - 1),
        };
        let src_i = PAS.iter().position(|a| IpAddr::V4(Ipv4Addr::from(*a)) == src).unwrap_or(2);
        let dst = if f.misrouted { 2 } else { self.host };
        let (IpAddr::V4(s), IpAddr::V4(d)) = (src, pa(dst)) else { return inner.to_vec() };
        let subnet_vxlan = self.p.subnets.iter().any(|n| n.vsid.get() == vsid && n.encap == Encap::Vxlan);
        if subnet_vxlan != (f.flow_id & 0xc0 == 0xc0) {
            testkit::vxlan(mac(PA_MACS[dst]), mac(PA_MACS[src_i]), s, d, vsid, f.flow_id, hnv_wire::vxlan::PORT, inner)
        } else {
            testkit::nvgre(mac(PA_MACS[dst]), mac(PA_MACS[src_i]), s, d, vsid, f.flow_id, inner)
        }
    }

    /// An MS-NVGREE message from the sender's host about a CA this host sends it.
    fn control(&self, f: &Flow, sender: &Vm, new_pa: Option<usize>) -> Vec<u8> {
        let from = match f.outer {
            0 => record_pa(&self.p, sender).unwrap_or(pa(sender.home)),
            k => pa(usize::from(k) - 1),
        };
        let from_i = PAS.iter().position(|a| IpAddr::V4(Ipv4Addr::from(*a)) == from).unwrap_or(2);
        // The local VM that sent the traffic the message is about: one of the sender's VSID.
        let local = VMS.iter().find(|vm| vm.vsid == sender.vsid && local_vm(&self.p, vm).is_some()).copied().unwrap_or(VMS[0]);
        let (IpAddr::V4(from4), IpAddr::V4(to4)) = (from, self.local_pa()) else { return Vec::new() };
        let repr = ControlRepr {
            control: match new_pa {
                Some(i) => Control::Redirect { new_pa: Ipv4Addr::from(PAS[i % PAS.len()]) },
                None => Control::Unreachable,
            },
            from_pa: from4,
            to_pa: to4,
            src_ca: Ipv4Addr::from(local.ca4),
            dst_ca: Ipv4Addr::from(sender.ca4),
        };
        let mut inner = vec![0u8; hnv_wire::nvgree::FRAME_LEN];
        if repr.emit(EthernetAddress(mac(PA_MACS[from_i])), EthernetAddress(mac(PA_MACS[self.host])), &mut inner).is_err() {
            return Vec::new();
        }
        let vsid = if f.vsid_sel == 0 { local.vsid } else { self.b_vsid(f.vsid_sel) };
        self.wrap(f, sender, vsid, &inner)
    }

    fn b_vsid(&self, sel: u8) -> u32 {
        [5001, 5002, 6001, 7777][usize::from(sel - 1) % 4]
    }

    /// Frames no flow key covers: ARP, neighbor discovery, provider ARP, junk.
    fn slow_frame(&mut self, port: u16) -> Vec<u8> {
        let on_uplink = self.p.ports.get(usize::from(port)).is_some_and(|q| q.role == PortRole::Uplink);
        let sender = VMS.iter().find(|vm| local_vm(&self.p, vm) == Some(usize::from(port))).copied().unwrap_or(VMS[self.b.below(VMS.len())]);
        let target = VMS[self.b.below(VMS.len())];
        let b = &mut *self.b;
        match b.below(5) {
            0 if on_uplink => {
                let from = b.below(3);
                let (IpAddr::V4(f), IpAddr::V4(t)) = (pa(from), pa(self.host)) else { return Vec::new() };
                testkit::arp_request(mac(PA_MACS[from]), f, t)
            }
            0 | 1 => {
                let IpAddr::V4(ca) = sender.ca(false) else { return Vec::new() };
                let t = if b.chance(1, 3) { Ipv4Addr::new(10, 0, if sender.vsid == 5002 { 1 } else { 0 }, 1) } else { Ipv4Addr::from(target.ca4) };
                testkit::arp_request(sender.mac(), ca, t)
            }
            2 => {
                let (IpAddr::V6(src), IpAddr::V6(t)) = (sender.ca(true), target.ca(true)) else { return Vec::new() };
                testkit::neighbor_solicit(sender.mac(), src, t)
            }
            3 => {
                let n = 14 + b.below(60);
                (0..n).map(|_| b.byte()).collect()
            }
            _ => {
                let mut f = testkit::udp(sender.mac(), [0xff; 6], sender.ca(false), IpAddr::V4(Ipv4Addr::BROADCAST), 68, 67, 90);
                if on_uplink {
                    f = testkit::nvgre(mac(PA_MACS[self.host]), mac(PA_MACS[1 - self.host]), Ipv4Addr::from(PAS[1 - self.host]), Ipv4Addr::from(PAS[self.host]), sender.vsid, 3, &f);
                }
                f
            }
        }
    }

    fn mutate(&mut self, f: &mut Vec<u8>) {
        let b = &mut *self.b;
        match b.below(10) {
            0 => {
                let n = b.below(f.len() + 1);
                f.truncate(n);
            }
            1 => {
                let n = 1 + b.below(8);
                f.extend((0..n).map(|_| b.byte()));
            }
            _ => {
                for _ in 0..1 + b.below(3) {
                    if f.is_empty() {
                        break;
                    }
                    // Mostly in the headers (outer and inner), sometimes anywhere.
                    let at = if b.chance(3, 4) { b.below(f.len().min(96)) } else { b.below(f.len()) };
                    f[at] ^= 1 << b.below(8) | if b.chance(1, 4) { b.byte() } else { 0 };
                }
            }
        }
    }

    /// A known-defect input the generator must leave out (see [`Options::known_bugs`]):
    /// a mutated copy of an MS-NVGREE message, whose cached drop would swallow the real one.
    fn avoid(&self, f: &Flow, port: u16, mutated: bool) -> bool {
        let on_uplink = self.p.ports.get(usize::from(port)).is_some_and(|q| q.role == PortRole::Uplink);
        !self.opt.known_bugs && mutated && on_uplink && matches!(f.kind, Kind::Control(_))
    }

    /// Without known defects: a frame routed from a VM port gets a TTL of at
    /// least 2 (a cached route counts a TTL expiry in the destination VSID,
    /// the pipeline in the source VSID).
    ///
    /// And an IPv6 TCP/UDP frame (from a VM, or inside NVGRE) gets a payload
    /// length of at least 4 (the flow key reads the ports beyond a shorter
    /// payload, the pipeline does not).
    fn defuse(&self, port: u16, frame: &mut [u8]) {
        if self.opt.known_bugs {
            return;
        }
        let inner_at = if frame.get(12..14) == Some(&[8, 0][..]) && frame.get(23) == Some(&47) { 42 } else { 0 };
        if let Some(h) = frame.get_mut(inner_at..inner_at + 58) {
            if h[12..14] == [0x86, 0xdd] && matches!(h[20], 6 | 17) && u16::from_be_bytes([h[18], h[19]]) < 4 {
                h[18..20].copy_from_slice(&4u16.to_be_bytes());
            }
        }
        let Some(sender) = VMS.iter().find(|vm| local_vm(&self.p, vm) == Some(usize::from(port))) else { return };
        let ttl_at = match frame.get(12..14) {
            Some([0x08, 0x00]) => 22,
            Some([0x86, 0xdd]) => 21,
            _ => return,
        };
        if frame.get(..6) == Some(&gw_mac(sender.vsid)[..]) && frame.get(ttl_at).is_some_and(|t| *t <= 1) {
            testkit::set_ttl(frame, 2);
        }
    }

    /// Note the VSIDs whose records decide the fate of `frame` although it
    /// is not in them (routed from a VM, or decapsulated with a source CA of
    /// another VSID): a record added there later would meet a stale cached drop.
    fn note_sent(&mut self, port: u16, frame: &[u8]) {
        let on_uplink = self.p.ports.get(usize::from(port)).is_some_and(|q| q.role == PortRole::Uplink);
        let blue_vsid_of = |ip: &[u8]| match ip {
            [10, 0, 0, _] | [0xfd, 0, 0, 0, ..] => Some(5001),
            [10, 0, 1, _] | [0xfd, 0, 0, 1, ..] => Some(5002),
            _ => None,
        };
        let mut mark = |v: u32| {
            if !self.cross.contains(&v) {
                self.cross.push(v);
            }
        };
        if !on_uplink {
            let Some(sender) = VMS.iter().find(|vm| local_vm(&self.p, vm) == Some(usize::from(port))) else { return };
            if frame.get(..6) == Some(&gw_mac(sender.vsid)[..]) && sender.vsid != 6001 {
                mark(5001);
                mark(5002);
            }
            return;
        }
        let Some(v) = frame.get(38..42).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) >> 8) else { return };
        if v == 6001 {
            return;
        }
        let inner = frame.get(42..).unwrap_or(&[]);
        let src = match inner.get(12..14) {
            Some([0x86, 0xdd]) => inner.get(22..38),
            _ => inner.get(26..30),
        };
        match src.and_then(blue_vsid_of) {
            Some(w) if w == v => {}
            Some(w) => mark(w),
            None => {
                mark(5001);
                mark(5002);
            }
        }
    }

    fn traffic(&mut self, favorites: &[u16; 2], now: &mut u64) -> Step {
        let nports = self.p.ports.len();
        let port = if self.b.chance(7, 8) { favorites[self.b.below(2)] % nports as u16 } else { self.b.below(nports + 1) as u16 };
        let n = 1 + self.b.below(pmd::BURST);
        let (mut frames, mut what) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            let choice = self.b.below(16);
            let (frame, desc) = match choice {
                0..=8 if !self.flows.is_empty() => {
                    let i = self.b.below(self.flows.len());
                    let f = self.flows[i];
                    self.sent.push((i, port));
                    (self.render(&f, port), format!("flow {i} {f:?}"))
                }
                12 | 13 if !self.flows.is_empty() => {
                    // A mutation of a flow already sent on this port (so most likely cached), else of any flow.
                    let here: Vec<usize> = self.sent.iter().filter(|(_, q)| *q == port).map(|(i, _)| *i).collect();
                    let i = if here.is_empty() { self.b.below(self.flows.len()) } else { here[self.b.below(here.len())] };
                    let f = self.flows[i];
                    if self.avoid(&f, port, true) {
                        continue;
                    }
                    let mut frame = self.render(&f, port);
                    self.mutate(&mut frame);
                    (frame, format!("mutated flow {i} {f:?}"))
                }
                14 => (self.slow_frame(port), "slow-path frame".to_string()),
                _ => {
                    let f = self.flow();
                    let i = if self.flows.len() < MAX_FLOWS {
                        self.flows.push(f);
                        self.flows.len() - 1
                    } else {
                        let i = self.b.below(MAX_FLOWS);
                        self.flows[i] = f;
                        self.sent.retain(|(j, _)| *j != i);
                        i
                    };
                    self.sent.push((i, port));
                    (self.render(&f, port), format!("new flow {i} {f:?}"))
                }
            };
            let mut frame = frame;
            self.defuse(port, &mut frame);
            self.note_sent(port, &frame);
            frames.push(frame);
            what.push(desc);
        }
        // Sometimes past the MS-NVGREE rate-limit interval.
        *now += if self.b.chance(1, 8) { 200_000_000 } else { 1_000 };
        Step::Traffic { port, frames, what, now: *now }
    }

    /// A random policy change, or `None` if the one drawn does not apply or does not validate.
    fn change(&mut self) -> Option<Step> {
        let mut p = self.p.clone();
        let vm_i = self.b.below(VMS.len());
        let vm = VMS[vm_i];
        let what = match self.b.below(12) {
            0 => {
                // Move a remote VM to another remote PA.
                if local_vm(&p, &vm).is_some() || record_pa(&p, &vm).is_none() {
                    return None;
                }
                let to = self.remote_pa();
                p.lookup.iter_mut().filter(|r| r.vsid.get() == vm.vsid && r.mac == EthernetAddress(vm.mac())).for_each(|r| r.pa = to);
                format!("move {} to {to}", vm.name)
            }
            1 => {
                // Remove a remote VM's records (one family or both).
                if local_vm(&p, &vm).is_some() {
                    return None;
                }
                let fam = self.b.below(3);
                p.lookup.retain(|r| !(r.vsid.get() == vm.vsid && r.mac == EthernetAddress(vm.mac()) && (fam == 2 || r.ca.is_ipv6() == (fam == 1))));
                format!("remove records of {} (family {fam})", vm.name)
            }
            2 | 3 => {
                // Add a remote VM's missing records.
                if local_vm(&p, &vm).is_some() || self.stale_risk(&vm) {
                    return None;
                }
                let at = match record_pa(&p, &vm) {
                    Some(a) => a,
                    None => self.remote_pa(),
                };
                for v6 in [false, true] {
                    if !has_record(&p, &vm, v6) {
                        p.lookup.push(record(&vm, v6, at));
                    }
                }
                format!("add records of {} at {at}", vm.name)
            }
            4 | 5 => {
                let r = self.acl_rule();
                let what = format!("add ACL {r:?}");
                p.acl.push(r);
                what
            }
            6 => {
                if p.acl.is_empty() {
                    return None;
                }
                let i = self.b.below(p.acl.len());
                let r = p.acl.remove(i);
                format!("remove ACL {r:?}")
            }
            7 => {
                let routes = [
                    ("blue", 5002, "8.8.8.0/24", "10.0.1.9"),
                    ("blue", 5001, "10.9.0.0/16", "10.0.0.7"),
                    ("blue", 5002, "2001:db8::/32", "fd00:1::9"),
                    ("red", 6001, "8.8.8.0/24", "10.0.0.7"),
                    ("blue", 5001, "8.8.0.0/16", "10.0.0.9"),
                    ("blue", 5002, "0.0.0.0/0", "10.0.1.20"),
                ];
                let (rd, v, dst, nh) = routes[self.b.below(routes.len())];
                let destination: Prefix = dst.parse().ok()?;
                let next_hop: IpAddr = nh.parse().ok()?;
                if p.customer_routes.iter().any(|r| r.destination == destination && r.vsid.get() == v) {
                    return None;
                }
                p.customer_routes.push(CustomerRoute { routing_domain: rd.to_string(), vsid: vsid(v), destination, next_hop, metric: 10 });
                format!("add route {rd} {v} {dst} via {nh}")
            }
            8 => {
                if p.customer_routes.is_empty() {
                    return None;
                }
                let i = self.b.below(p.customer_routes.len());
                let r = p.customer_routes.remove(i);
                format!("remove route {r:?}")
            }
            9 => {
                // Live migration: a local VM leaves (its port goes, its records point elsewhere), or a VM arrives.
                let recs = |p: &mut Policy, at: IpAddr| {
                    p.lookup.retain(|r| !(r.vsid.get() == vm.vsid && r.mac == EthernetAddress(vm.mac())));
                    p.lookup.push(record(&vm, false, at));
                    p.lookup.push(record(&vm, true, at));
                };
                match local_vm(&p, &vm) {
                    Some(i) => {
                        p.ports.remove(i);
                        let to = self.remote_pa();
                        recs(&mut p, to);
                        format!("{} migrates away to {to}", vm.name)
                    }
                    None => {
                        if self.stale_risk(&vm) {
                            return None;
                        }
                        p.ports.push(Port {
                            name: vm.name.to_ascii_lowercase(),
                            role: PortRole::Vm,
                            devargs: format!("net_ring_dt_{}", vm.name.to_ascii_lowercase()),
                            vsid: Some(vsid(vm.vsid)),
                            mac: Some(EthernetAddress(vm.mac())),
                            addresses: vec![vm.ca(false), vm.ca(true)],
                            mtu: None,
                        });
                        recs(&mut p, self.local_pa());
                        format!("{} migrates in", vm.name)
                    }
                }
            }
            11 => {
                // Switch the VM's subnet to the other encapsulation.
                let s = p.subnets.iter_mut().find(|s| s.vsid.get() == vm.vsid)?;
                s.encap = if s.encap == Encap::Vxlan { Encap::Nvgre } else { Encap::Vxlan };
                format!("VSID {} to {}", vm.vsid, s.encap.as_str())
            }
            _ => {
                if self.b.chance(1, 2) {
                    return Some(Step::ApplyHints);
                }
                let r = p.lookup.iter_mut().find(|r| r.vsid.get() == vm.vsid && r.mac == EthernetAddress(vm.mac()))?;
                r.flow_entropy = !r.flow_entropy;
                format!("FlowID entropy of {} {}", vm.name, r.flow_entropy)
            }
        };
        let p = finish(&p)?;
        self.p = p.clone();
        Some(Step::Policy { policy: Box::new(p), what })
    }

    /// Adding records of `vm` could meet a known stale cached drop (see [`Options::known_bugs`]).
    fn stale_risk(&self, vm: &Vm) -> bool {
        !self.opt.known_bugs && self.cross.contains(&vm.vsid)
    }

    fn acl_rule(&mut self) -> AclRule {
        let b = &mut *self.b;
        let protocol = b.pick(&[None, Some(6u8), Some(17), Some(6), Some(17), Some(1), Some(58)]);
        let ports = matches!(protocol, Some(6 | 17));
        let range = |b: &mut Bytes<'_>, xs: &[u16]| {
            let lo = b.pick(xs);
            (lo, lo.saturating_add(b.pick(&[0, 0, 1, 3, 1000])))
        };
        let prefixes = ["10.0.0.0/24", "10.0.0.5/32", "10.0.0.7/32", "10.0.1.0/24", "fd00::/64", "fd00::7/128", "8.8.8.0/24", "0.0.0.0/0"];
        let prefix = |b: &mut Bytes<'_>| if b.chance(1, 4) { b.pick(&prefixes).parse::<Prefix>().ok() } else { None };
        AclRule {
            vsid: vsid(b.pick(&VSIDS)),
            priority: 1 + b.below(200) as u32,
            direction: b.pick(&[Direction::In, Direction::Out, Direction::Both]),
            action: if b.chance(3, 4) { AclAction::Deny } else { AclAction::Allow },
            protocol,
            src: prefix(b),
            dst: prefix(b),
            src_ports: if ports && b.chance(1, 3) { Some(range(b, &SPORTS)) } else { None },
            dst_ports: if ports && b.chance(2, 3) { Some(range(b, &DPORTS)) } else { None },
        }
    }
}

/// The scenario `data` describes (see the module contract).
pub fn scenario(data: &[u8], opt: Options) -> Scenario {
    let mut b = Bytes::new(data);
    let host = usize::from(b.byte() & 1);
    let cache = if b.chance(1, 4) { 64 } else { 1024 };
    let policy = base_policy(host);
    let nports = policy.ports.len() as u16;
    let favorites = [b.byte() as u16 % nports, b.byte() as u16 % nports];
    let mut g = Gen { b: &mut b, opt, host, p: policy.clone(), flows: Vec::new(), sent: Vec::new(), cross: Vec::new() };
    let mut steps = Vec::new();
    let mut now = 0u64;
    while steps.len() < MAX_STEPS && !g.b.done() {
        if g.b.chance(1, 5) {
            if let Some(s) = g.change() {
                steps.push(s);
            }
        } else {
            steps.push(g.traffic(&favorites, &mut now));
        }
    }
    Scenario { host, cache, policy, steps, known_bugs: opt.known_bugs }
}

/// Frames per port of one batch, each port's sorted.
type Output = Vec<Vec<Vec<u8>>>;

fn process(sw: &mut HnvSwitch, port: u16, frames: &[Vec<u8>], now: u64) -> Result<Output, String> {
    let mut out = TxStage::new(pmd::MAX_PORTS);
    let mut batch: Batch<HeapBuf> = frames.iter().map(|f| HeapBuf::from_slice(f)).collect();
    sw.process(port, &mut batch, &mut out, now);
    if !batch.is_empty() {
        return Err(format!("{} packets left in the batch", batch.len()));
    }
    let mut res = vec![Vec::new(); out.ports()];
    for (p, r) in res.iter_mut().enumerate() {
        if let Some(q) = out.pending_mut(p) {
            r.extend(q.drain(..).map(|pkt| pkt.data().to_vec()));
        }
        r.sort();
    }
    if out.overflow() != 0 {
        return Err(format!("{} packets lost in the tx stage", out.overflow()));
    }
    Ok(res)
}

fn hex(f: &[u8]) -> String {
    f.iter().map(|b| format!("{b:02x}")).collect()
}

/// What differs between two sets of counters (the cache's own counters excluded).
fn diff(c: &Totals, p: &Totals, known_bugs: bool) -> String {
    let mut s = String::new();
    if known_bugs && c.routed != p.routed {
        let _ = write!(s, " routed: cached {} uncached {};", c.routed, p.routed);
    }
    macro_rules! field {
        ($($f:ident),*) => {$(
            if c.$f != p.$f {
                let _ = write!(s, " {}: cached {} uncached {};", stringify!($f), c.$f, p.$f);
            }
        )*};
    }
    field!(rx, tx, replicas, answered, encapsulated, decapsulated, control_sent);
    if c.drops != p.drops {
        let _ = write!(s, " drops: cached {:?} uncached {:?};", c.drops, p.drops);
    }
    for (i, (a, b)) in c.ports.iter().zip(&p.ports).enumerate() {
        if a != b {
            let _ = write!(s, " port {i} (rx, tx, drops): cached {a:?} uncached {b:?};");
        }
    }
    for (i, (a, b)) in c.vsids.iter().zip(&p.vsids).enumerate() {
        if a != b {
            let _ = write!(s, " VSID slot {i} (rx, tx, drops): cached {a:?} uncached {b:?};");
        }
    }
    s
}

/// Remove the MS-NVGREE messages from `out`, counting them in `n` as the
/// switch counted them (replica, tx, port tx, control_sent).
fn take_control_messages(out: &mut Output, n: &mut Totals) {
    if n.ports.is_empty() {
        *n = Totals::sum([&DatapathStats::default()]);
    }
    for (q, frames) in out.iter_mut().enumerate() {
        frames.retain(|f| {
            let is_control = f.len() > 42 && f[12..14] == [8, 0] && ((f[23] == 47 && ControlRepr::parse(&f[42..]).is_ok()) || (f[23] == 17 && f.len() > 50 && ControlRepr::parse(&f[50..]).is_ok()));
            if is_control {
                n.control_sent += 1;
                n.ports[q].1 += 1;
            }
            !is_control
        });
    }
}

/// `t` less the messages counted in `n`. A message is counted in the VSID
/// of the packet that triggered it, which is not known here (two packets of
/// different VSIDs can trigger the same message, and the cached switch
/// sends it for another one than the uncached switch): once either switch
/// has sent a message, per-VSID tx counts are replaced by their sum, less
/// the messages, in VSID slot 0.
fn discount(t: &mut Totals, n: &Totals, per_vsid_tx: bool) {
    t.control_sent -= n.control_sent;
    t.replicas -= n.control_sent;
    t.tx -= n.control_sent;
    for (a, b) in t.ports.iter_mut().zip(&n.ports) {
        a.1 -= b.1;
    }
    if !per_vsid_tx {
        let sum: u64 = t.vsids.iter().map(|v| v.1).sum();
        t.vsids.iter_mut().for_each(|v| v.1 = 0);
        if let Some(v) = t.vsids.first_mut() {
            v.1 = sum - n.control_sent;
        }
    }
}

/// Run `s` through a cached and an uncached switch and compare (see the module contract).
pub fn run(s: &Scenario) -> Result<Outcome, String> {
    let store = Arc::new(PolicyStore::new(s.policy.clone()));
    let (cs, ps) = (Arc::new(DatapathStats::default()), Arc::new(DatapathStats::default()));
    let mut cached = HnvSwitch::new(store.clone(), standard_pipeline(), cs.clone(), 0).with_cache(s.cache);
    let mut plain = HnvSwitch::new(store.clone(), standard_pipeline(), ps.clone(), 0).with_cache(0);
    let mut o = Outcome::default();
    let mut last_change = String::from("(none)");
    // Without known defects: MS-NVGREE messages each switch sent so far, taken out of the comparison.
    let (mut cn, mut pn) = (Totals::default(), Totals::default());
    let mut messages_sent = false;
    for (i, step) in s.steps.iter().enumerate() {
        match step {
            Step::Policy { policy, what } => {
                // Every other change goes the incremental way (as hnvctl's and etcd's do), when
                // change requests can express it; its tables must forward like a whole compile's.
                match hnv_policy::state::diff(&store.policy(), policy).filter(|_| o.changes % 2 == 1) {
                    Some(reqs) => {
                        store.change(&reqs, hnv_policy::Options::default()).map_err(|e| format!("step {i}: {what}: the incremental change was refused: {e}"))?;
                        let whole = hnv_datapath::Tables::compile(&store.policy(), &mut Default::default(), &store.learned(), 0);
                        store.snapshot().forwards_like(&whole).map_err(|e| format!("step {i}: {what}: incremental tables differ from a whole compile: {e}"))?;
                    }
                    None => {
                        store.replace((**policy).clone());
                    }
                }
                last_change = format!("step {i}: {what}");
                o.changes += 1;
            }
            Step::ApplyHints => {
                store.apply_control(Instant::now());
                store.apply_learned(Instant::now());
            }
            Step::Traffic { port, frames, what, now } => {
                let mut a = process(&mut cached, *port, frames, *now).map_err(|e| format!("step {i}: cached switch: {e}"))?;
                let mut b = process(&mut plain, *port, frames, *now).map_err(|e| format!("step {i}: uncached switch: {e}"))?;
                let (mut c, mut p) = (Totals::sum([&*cs]), Totals::sum([&*ps]));
                if !s.known_bugs {
                    take_control_messages(&mut a, &mut cn);
                    take_control_messages(&mut b, &mut pn);
                    messages_sent |= cn.control_sent + pn.control_sent > 0;
                    discount(&mut c, &cn, !messages_sent);
                    discount(&mut p, &pn, !messages_sent);
                }
                let context = || {
                    let mut m = format!("host {} cache {} port {port}, last policy change {last_change}\n", s.host + 1, s.cache);
                    for (f, w) in frames.iter().zip(what) {
                        let _ = writeln!(m, "  sent {w}\n    {}", hex(f));
                    }
                    m
                };
                if a != b {
                    let mut m = format!("step {i}: the switches emit different frames\n{}", context());
                    for (q, (x, y)) in a.iter().zip(&b).enumerate().filter(|(_, (x, y))| x != y) {
                        let _ = writeln!(m, "  port {q}: cached {:?}\n          uncached {:?}", x.iter().map(|f| hex(f)).collect::<Vec<_>>(), y.iter().map(|f| hex(f)).collect::<Vec<_>>());
                    }
                    return Err(m);
                }
                let d = diff(&c, &p, s.known_bugs);
                if !d.is_empty() {
                    return Err(format!("step {i}: counters differ:{d}\n{}", context()));
                }
                if !c.reconciles() || !p.reconciles() {
                    return Err(format!("step {i}: counters do not reconcile: cached {c:?} uncached {p:?}"));
                }
                o.batches += 1;
                o.frames += frames.len() as u64;
                o.hits = c.flow_hits;
                o.misses = c.flow_misses;
            }
        }
    }
    Ok(o)
}
