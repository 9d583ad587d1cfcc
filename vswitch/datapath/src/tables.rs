//! Compiled policy: the immutable lookup tables workers read.
//!
//! [`Tables::compile`] turns a validated [`Policy`] into hash tables keyed
//! the way the datapath asks (VSID + CA, VSID + MAC), per-VSID facts (local
//! ports, gateway, ACL, routing domain), per-routing-domain route lists and
//! one precompiled NVGRE outer-header template per remote PA (its VSID and
//! FlowID are written per packet). It runs on the control thread; the result
//! is published as a snapshot and never changes, so workers read it without
//! locks.
//!
//! Snapshots share structure ([`shared`]): records live in slot-indexed
//! chunks and the two record maps in shards, each behind its own `Arc`, so
//! [`Tables::update_records`] makes the next snapshot of a record change by
//! copying one chunk and two shards (microseconds at a million records), and
//! [`Tables::update_vsids`] that of a route or ACL change by rebuilding only
//! the per-VSID layer. Ports, provider addresses and neighbors recompile
//! everything ([`Tables::compile_next`]).

mod compare;
mod compile;
pub mod shared;
mod update;

pub use update::{RecordChange, RecordSource};

use hashbrown::HashMap;
use hnv_policy::{AclRule, Encap, Policy, Prefix};
use shared::{Chunked, ShardKey, Sharded};
use std::net::IpAddr;
use std::sync::Arc;

/// Default uplink MTU when the policy sets none.
pub const DEFAULT_UPLINK_MTU: u16 = 1500;
/// Outer TTL / hop limit (Windows' default for NVGRE).
pub const OUTER_TTL: u8 = 128;
/// Longest outer header: Ethernet + 802.1Q + IPv6 + UDP + VXLAN (NVGRE's GRE with key is 8 shorter).
pub const MAX_OUTER: usize = 14 + 4 + 40 + 8 + 8;

/// What a switch port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A VM port in one VSID.
    Vm,
    /// A provider-network uplink.
    Uplink,
}

/// One switch port (index = position in the policy's port list).
#[derive(Debug, Clone)]
pub struct PortEntry {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// VSID (VM ports), else 0.
    pub vsid: u32,
    /// The VM's MAC (VM ports).
    pub mac: [u8; 6],
    /// CAs the VM may send from.
    pub addresses: Vec<IpAddr>,
    /// Counter slot of its VSID.
    pub vsid_slot: u16,
    /// Port MTU.
    pub mtu: u16,
    /// Flow keys of this VM port's traffic include the L4 ports (its VSID's
    /// [`VsidEntry::key_ports`]).
    pub key_ports: bool,
}

/// A provider address of this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalPa {
    /// Address.
    pub ip: IpAddr,
    /// Its MAC.
    pub mac: [u8; 6],
    /// 802.1Q VLAN on the provider network.
    pub vlan: Option<u16>,
    /// Uplink switch port.
    pub uplink: u16,
}

/// A prebuilt outer header toward one remote PA in one encapsulation: copy,
/// then patch length, checksum and the GRE key (VSID and FlowID; NVGRE), or
/// lengths, checksums, the VNI and the UDP source port (VXLAN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncapTemplate {
    /// Header bytes (first `len` used).
    pub bytes: [u8; MAX_OUTER],
    /// Header length: 42 (IPv4), 46 (IPv4 + VLAN), 62 (IPv6), 66 (IPv6 + VLAN);
    /// 8 more for VXLAN (UDP + VXLAN instead of GRE).
    pub len: u8,
    /// Offset of the outer IP header.
    pub ip_off: u8,
    /// Outer IPv6.
    pub ipv6: bool,
    /// IPv4 header checksum computed with total length 0 (uncomplemented sum).
    pub ip_sum: u16,
    /// Uplink switch port.
    pub uplink: u16,
    /// Largest inner frame that fits the uplink MTU.
    pub max_inner: u16,
    /// VXLAN (UDP + VXLAN header) rather than NVGRE.
    pub vxlan: bool,
    /// Largest IPv4 TCP MSS a VM's SYN may offer through this template (IPv6: 20
    /// less); 0: no clamping (`[host] mss_clamp`, [`crate::mss`]).
    pub mss: u16,
}

impl EncapTemplate {
    /// Offset of the GRE key (VSID << 8 | FlowID) or of the VXLAN VNI (VSID << 8), the header's last four bytes.
    pub fn key_off(&self) -> usize {
        usize::from(self.len) - 4
    }

    /// Offset of the outer UDP header (VXLAN).
    pub fn udp_off(&self) -> usize {
        usize::from(self.len) - 16
    }
}

/// Where a lookup record's traffic goes from this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A local VM port.
    Local(u16),
    /// NVGRE to another host, with template [`Tables::template`]`(id)`.
    Encap(u32),
    /// Remote, but no MAC is known for the provider next hop.
    Unresolved,
    /// The record names this host but no local port has its MAC.
    NoLocalPort,
}

/// A lookup record, compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dest {
    /// Stable slot of this record's (VSID, CA) across publications.
    pub slot: u32,
    /// Generation at which this record's compiled content last changed.
    pub version: u64,
    /// VSID.
    pub vsid: u32,
    /// Customer address.
    pub ca: IpAddr,
    /// The VM's MAC.
    pub mac: [u8; 6],
    /// Provider address.
    pub pa: IpAddr,
    /// Delivery from this host.
    pub to: Delivery,
    /// Counter slot of the VSID.
    pub vsid_slot: u16,
    /// An L2-only record: matched by MAC even for IP traffic.
    pub l2_only: bool,
    /// Put per-flow entropy in the FlowID (else 0).
    pub flow_entropy: bool,
    /// The VM just moved away from this host: NVGRE still arriving here for it
    /// is re-encapsulated to its new PA (live-migration grace period).
    pub forward_moved: bool,
}

/// Per-VSID facts.
#[derive(Debug, Clone, PartialEq)]
pub struct VsidEntry {
    /// Routing domain index.
    pub rd: u16,
    /// Counter slot.
    pub slot: u16,
    /// Virtual gateway IPv4.
    pub gw_v4: Option<std::net::Ipv4Addr>,
    /// Virtual gateway IPv6.
    pub gw_v6: Option<std::net::Ipv6Addr>,
    /// Virtual gateway MAC.
    pub gw_mac: [u8; 6],
    /// Local VM ports in the VSID.
    pub local_ports: Vec<u16>,
    /// ACL rules in priority order.
    pub acl: Vec<AclRule>,
    /// Slot of the gateway-wildcard record (off-subnet traffic goes there when no route matches).
    pub wildcard: Option<u32>,
    /// The VSID's lookup records: how many, and the sum of a hash of their
    /// slots (a member set that changes changes these).
    pub members: (u32, u64),
    /// Encapsulation of this VSID's traffic to other hosts.
    pub encap: Encap,
    /// The flow-key mask: true when a forwarding decision for traffic entering
    /// this VSID can depend on TCP/UDP ports, i.e. when an ACL rule of a VSID
    /// of its routing domain (where its traffic can be routed to) matches on
    /// ports. Part of the entry, so a change re-stamps the VSID's version.
    pub key_ports: bool,
    /// Generation at which anything a cached flow of this VSID depends on last
    /// changed: the entry itself, its member set, its ports, its routing
    /// domain's routes, the MACs its records map.
    pub version: u64,
}

/// A customer route, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix.
    pub prefix: Prefix,
    /// Destination VSID.
    pub vsid: u32,
    /// Next hop CA (`None` = on-link: the destination itself).
    pub next_hop: Option<IpAddr>,
    /// Metric (lower wins among equal prefix lengths).
    pub metric: u32,
}

/// Persistent slot assignments, kept by the policy store: VSID → counter
/// slot, and (VSID, CA) → record slot (for per-record flow invalidation).
#[derive(Debug, Default, Clone)]
pub struct VsidSlots {
    map: HashMap<u32, u16>,
    records: HashMap<(u32, IpAddr), u32>,
}

impl VsidSlots {
    /// The slot of record (`vsid`, `ca`), assigning the next one.
    pub fn record(&mut self, vsid: u32, ca: IpAddr) -> u32 {
        let next = self.records.len() as u32;
        *self.records.entry((vsid, ca)).or_insert(next)
    }

    /// Bytes the slot maps hold (buckets of key, value and control byte).
    pub fn bytes(&self) -> usize {
        self.records.capacity() * (std::mem::size_of::<((u32, IpAddr), u32)>() + 1) + self.map.capacity() * 7
    }

    /// The slot of record (`vsid`, `ca`), if one was assigned.
    pub fn record_slot(&self, vsid: u32, ca: IpAddr) -> Option<u32> {
        self.records.get(&(vsid, ca)).copied()
    }

    /// The slot of `vsid`, assigning the next free one (the last slot is shared on overflow).
    pub fn slot(&mut self, vsid: u32) -> u16 {
        let next = self.map.len().min(crate::stats::MAX_VSIDS - 1) as u16;
        *self.map.entry(vsid).or_insert(next)
    }
    /// VSID of each slot in use.
    pub fn vsids(&self) -> Vec<(u16, u32)> {
        let mut v: Vec<(u16, u32)> = self.map.iter().map(|(v, s)| (*s, *v)).collect();
        v.sort();
        v
    }
}

/// Key of the CA map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CaKey(u32, IpAddr);

impl ShardKey for CaKey {
    #[inline]
    fn mix(&self) -> u64 {
        let low = match self.1 {
            IpAddr::V4(a) => u64::from(u32::from(a)),
            IpAddr::V6(a) => {
                let x = u128::from(a);
                (x as u64) ^ ((x >> 64) as u64).rotate_left(17)
            }
        };
        low ^ u64::from(self.0) << 32
    }
}

/// Key of the MAC map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct MacKey(u32, [u8; 6]);

impl ShardKey for MacKey {
    #[inline]
    fn mix(&self) -> u64 {
        let m = self.1;
        u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]) ^ u64::from(self.0).rotate_left(40)
    }
}

/// The compiled policy.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    /// Publication generation.
    pub generation: u64,
    /// Switch ports.
    pub ports: Arc<Vec<PortEntry>>,
    /// This host's provider addresses.
    pub local_pas: Vec<LocalPa>,
    /// Compiled lookup records by slot.
    records: Chunked<Dest>,
    by_ca: Sharded<CaKey, u32>,
    by_mac: Sharded<MacKey, u32>,
    vsids: HashMap<u32, Arc<VsidEntry>>,
    routes: Arc<Vec<Vec<Route>>>,
    /// Outer headers, one per resolved remote PA.
    templates: Arc<Vec<EncapTemplate>>,
    /// Every remote PA (and encapsulation: VXLAN or not) a record uses, with
    /// its template (`None`: next hop unresolved).
    pa_templates: Arc<HashMap<(IpAddr, bool), Option<u32>>>,
    /// UDP destination port of VXLAN (sent and accepted).
    pub vxlan_port: u16,
    /// Generation at which ports, provider addresses or neighbors last changed.
    pub global_version: u64,
    /// VSIDs whose [`VsidEntry::key_ports`] is set, sorted (uplink flow keys
    /// look the decapsulated VSID up here; usually empty).
    pub key_ports_vsids: Vec<u32>,
}

/// Bytes the compiled tables hold, by part (see [`Tables::footprint`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Lookup records compiled.
    pub records: usize,
    /// The slot-indexed record chunks.
    pub record_bytes: usize,
    /// The (VSID, CA) and (VSID, MAC) maps.
    pub map_bytes: usize,
    /// Outer-header templates.
    pub template_bytes: usize,
}

impl Tables {
    /// The record in stable slot `slot`.
    #[inline]
    pub fn by_slot(&self, slot: u32) -> Option<&Dest> {
        self.records.get(slot)
    }

    /// Outer-header template `id` (see [`Delivery::Encap`]).
    #[inline]
    pub fn template(&self, id: u32) -> Option<&EncapTemplate> {
        self.templates.get(id as usize)
    }

    /// Whether some record encapsulates to remote PA `pa` (resolved or not).
    pub fn uses_pa(&self, pa: IpAddr) -> bool {
        self.pa_templates.contains_key(&(pa, false)) || self.pa_templates.contains_key(&(pa, true))
    }

    /// Every remote PA some record encapsulates to (resolved or not), each once.
    pub fn remote_pas(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.pa_templates.keys().map(|(pa, _)| *pa).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Every compiled record, in slot order.
    pub fn dests(&self) -> impl Iterator<Item = &Dest> {
        self.records.iter()
    }

    /// What the compiled tables hold.
    pub fn footprint(&self) -> Footprint {
        Footprint {
            records: self.records.len(),
            record_bytes: self.records.bytes(),
            map_bytes: self.by_ca.bytes() + self.by_mac.bytes(),
            template_bytes: self.templates.len() * std::mem::size_of::<EncapTemplate>() + self.pa_templates.capacity() * 40,
        }
    }

    /// The flow-key mask of traffic decapsulated into `vsid`: include L4 ports?
    #[inline]
    pub fn key_ports(&self, vsid: u32) -> bool {
        !self.key_ports_vsids.is_empty() && self.key_ports_vsids.binary_search(&vsid).is_ok()
    }

    /// The record for (`vsid`, CA).
    #[inline]
    pub fn by_ca(&self, vsid: u32, ca: IpAddr) -> Option<&Dest> {
        self.by_ca.get(&CaKey(vsid, ca)).and_then(|&s| self.records.get(s))
    }

    /// The record for (`vsid`, MAC).
    #[inline]
    pub fn by_mac(&self, vsid: u32, mac: [u8; 6]) -> Option<&Dest> {
        self.by_mac.get(&MacKey(vsid, mac)).and_then(|&s| self.records.get(s))
    }

    /// Per-VSID facts.
    #[inline]
    pub fn vsid(&self, vsid: u32) -> Option<&VsidEntry> {
        self.vsids.get(&vsid).map(|e| &**e)
    }

    /// Counter slot of `vsid`, if known.
    #[inline]
    pub fn vsid_slot(&self, vsid: u32) -> Option<u16> {
        self.vsids.get(&vsid).map(|e| e.slot)
    }

    /// The gateway-wildcard record of `vsid`.
    pub fn wildcard(&self, vsid: u32) -> Option<&Dest> {
        self.vsids.get(&vsid).and_then(|e| e.wildcard).and_then(|s| self.records.get(s))
    }

    /// The record of source CA `ca` as seen from `vsid`: in `vsid` itself, or
    /// (for routed traffic) in the VSID of its routing domain that owns `ca`.
    pub fn source_record(&self, vsid: u32, ca: IpAddr) -> Option<&Dest> {
        self.by_ca(vsid, ca).or_else(|| {
            let rd = self.vsid(vsid)?.rd;
            let r = self.route(rd, ca)?;
            self.by_ca(r.vsid, ca)
        })
    }

    /// Longest-prefix match of `dst` among the routes of routing domain `rd`.
    #[inline]
    pub fn route(&self, rd: u16, dst: IpAddr) -> Option<&Route> {
        self.routes.get(usize::from(rd))?.iter().find(|r| r.prefix.contains(dst))
    }

    /// The local PA equal to `ip`.
    #[inline]
    pub fn local_pa(&self, ip: IpAddr) -> Option<&LocalPa> {
        self.local_pas.iter().find(|p| p.ip == ip)
    }

    /// Port entry.
    #[inline]
    pub fn port(&self, port: u16) -> Option<&PortEntry> {
        self.ports.get(usize::from(port))
    }

    /// VSIDs known to the policy.
    pub fn vsid_list(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.vsids.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hnv_policy::example::{BLUE_RED_HOST1, BLUE_RED_HOST2};

    fn host(n: u8) -> Tables {
        let p = hnv_policy::parse(if n == 1 { BLUE_RED_HOST1 } else { BLUE_RED_HOST2 }, "example").unwrap();
        Tables::compile(&p, &mut VsidSlots::default(), &[], 1)
    }

    #[test]
    fn overlapping_cas_resolve_per_vsid() {
        let t = host(1);
        let ca: IpAddr = "10.0.0.7".parse().unwrap();
        let blue = t.by_ca(5001, ca).unwrap();
        let red = t.by_ca(6001, ca).unwrap();
        assert_eq!(blue.mac, [0x00, 0x15, 0x5d, 0x01, 0x00, 0x07]);
        assert_eq!(red.mac, [0x00, 0x15, 0x5d, 0x02, 0x00, 0x07]);
        let (Delivery::Encap(b), Delivery::Encap(r)) = (blue.to, red.to) else { panic!("remote records encapsulate") };
        assert_eq!(b, r, "one template per remote PA: Blue2 and Red2 share host 2's");
        let b = t.template(b).unwrap();
        assert_eq!(b.len, 42);
        assert_eq!(b.key_off(), 38);
        assert_eq!(&b.bytes[0..6], &[0x02, 0x00, 0xc0, 0xa8, 0x04, 0x16], "next hop = host 2's PA MAC");
        let local = t.by_ca(5001, "10.0.0.5".parse().unwrap()).unwrap();
        assert_eq!(local.to, Delivery::Local(1));
    }

    #[test]
    fn template_checksum_is_valid_once_length_is_patched() {
        let t = host(1);
        let Delivery::Encap(id) = t.by_ca(5001, "10.0.0.7".parse().unwrap()).unwrap().to else { panic!() };
        let tpl = t.template(id).unwrap();
        let mut h = tpl.bytes[14..34].to_vec();
        let total: u16 = 20 + 8 + 60;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        let sum = !hnv_wire::checksum::combine(&[tpl.ip_sum, total]);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(hnv_wire::checksum::data(&h), 0xffff);
    }

    #[test]
    fn a_vxlan_subnet_gets_vxlan_templates_and_only_its_records_change() {
        let nv = host(1);
        let text = hnv_policy::example::BLUE_RED_HOST1.replacen("vsid = 5001\nrouting_domain", "vsid = 5001\nencap = \"vxlan\"\nrouting_domain", 1);
        assert_ne!(text, hnv_policy::example::BLUE_RED_HOST1, "the example declares subnet 5001 this way");
        let p = hnv_policy::parse(&text, "example").unwrap();
        let vx = Tables::compile_next(&p, &mut VsidSlots::default(), &[], 2, Some(&nv));
        let ca: IpAddr = "10.0.0.7".parse().unwrap();
        let Delivery::Encap(b) = vx.by_ca(5001, ca).unwrap().to else { panic!() };
        let b = vx.template(b).unwrap();
        assert!(b.vxlan);
        assert_eq!(b.len, 50);
        assert_eq!(b.udp_off(), 34);
        assert_eq!(b.bytes[23], 17, "outer protocol UDP");
        assert_eq!(&b.bytes[34..50], &[0, 0, 0x12, 0xb5, 0, 0, 0, 0, 0x08, 0, 0, 0, 0, 0, 0, 0], "dst port 4789, flags I; the VNI is written per packet");
        assert_eq!(b.key_off(), 46);
        assert_eq!(b.max_inner, 1500 - 36);
        assert_eq!(vx.vsid(5001).unwrap().encap, Encap::Vxlan);
        assert_ne!(vx.by_ca(5001, ca).unwrap().version, nv.by_ca(5001, ca).unwrap().version, "the record's decisions are invalidated");
        assert_eq!(vx.by_ca(6001, ca).unwrap().version, nv.by_ca(6001, ca).unwrap().version, "Red's are not");
        let Delivery::Encap(r) = vx.by_ca(6001, ca).unwrap().to else { panic!() };
        assert!(!vx.template(r).unwrap().vxlan);
    }

    #[test]
    fn routes_find_the_other_subnet_of_the_routing_domain() {
        let t = host(2);
        let blue = t.vsid(5001).unwrap();
        let r = t.route(blue.rd, "10.0.1.9".parse().unwrap()).unwrap();
        assert_eq!(r.vsid, 5002);
        let red = t.vsid(6001).unwrap();
        assert!(t.route(red.rd, "10.0.1.9".parse().unwrap()).is_none(), "red cannot reach blue's subnet");
    }
}
