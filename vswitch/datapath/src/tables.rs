//! Compiled policy: the immutable lookup tables workers read.
//!
//! [`Tables::compile`] turns a validated [`Policy`] into hash tables keyed
//! the way the datapath asks (VSID + CA, VSID + MAC), per-VSID facts (local
//! ports, gateway, ACL, routing domain), per-routing-domain route lists and,
//! for every remote record, a precompiled NVGRE outer-header template. It runs
//! on the control thread; the result is published as a snapshot and never
//! changes, so workers read it without locks.

use hashbrown::HashMap;
use hnv_policy::{AclRule, Encap, Policy, PortRole, Prefix, RecordType, Rule};
use hnv_wire::checksum;
use std::net::IpAddr;

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

/// A prebuilt outer header: copy, then patch length, checksum and FlowID
/// (NVGRE), or lengths, checksums and the UDP source port (VXLAN).
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
}

impl EncapTemplate {
    /// Offset of the FlowID byte (last byte of the GRE key; NVGRE).
    pub fn flow_id_off(&self) -> usize {
        usize::from(self.len) - 1
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
    /// NVGRE to another host.
    Encap(EncapTemplate),
    /// Remote, but no MAC is known for the provider next hop.
    Unresolved,
    /// The record names this host but no local port has its MAC.
    NoLocalPort,
}

/// A lookup record, compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dest {
    /// Position in [`Tables::dests`].
    pub index: u32,
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
    /// Gateway-wildcard record (off-subnet traffic goes there when no route matches).
    pub wildcard: Option<u32>,
    /// Record slots of the VSID's lookup records (sorted).
    pub members: Vec<u32>,
    /// Encapsulation of this VSID's traffic to other hosts.
    pub encap: Encap,
    /// The flow-key mask: true when a forwarding decision for traffic entering
    /// this VSID can depend on TCP/UDP ports, i.e. when an ACL rule of a VSID
    /// of its routing domain (where its traffic can be routed to) matches on
    /// ports. Part of the entry, so a change re-stamps the VSID's version.
    pub key_ports: bool,
    /// Generation at which anything a cached flow of this VSID depends on last
    /// changed: the entry itself, its member set, its ports, its routing domain's routes.
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

/// The compiled policy.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    /// Publication generation.
    pub generation: u64,
    /// Switch ports.
    pub ports: Vec<PortEntry>,
    /// This host's provider addresses.
    pub local_pas: Vec<LocalPa>,
    /// Compiled lookup records.
    pub dests: Vec<Dest>,
    by_ca: HashMap<(u32, IpAddr), u32>,
    by_mac: HashMap<(u32, [u8; 6]), u32>,
    vsids: HashMap<u32, VsidEntry>,
    routes: Vec<Vec<Route>>,
    /// Record slot → position in `dests` (`u32::MAX` when the slot has no record now).
    slot_to_dest: Vec<u32>,
    /// Generation at which ports, provider addresses or neighbors last changed.
    pub global_version: u64,
    /// UDP destination port of VXLAN (sent and accepted).
    pub vxlan_port: u16,
    /// VSIDs whose [`VsidEntry::key_ports`] is set, sorted (uplink flow keys
    /// look the decapsulated VSID up here; usually empty).
    pub key_ports_vsids: Vec<u32>,
}

fn ip_bytes(ip: &IpAddr) -> ([u8; 16], usize) {
    let mut b = [0u8; 16];
    match ip {
        IpAddr::V4(a) => {
            b[..4].copy_from_slice(&a.octets());
            (b, 4)
        }
        IpAddr::V6(a) => {
            b.copy_from_slice(&a.octets());
            (b, 16)
        }
    }
}

impl Tables {
    /// Compile `policy`; `neighbors` adds learned provider MACs to its static ones.
    pub fn compile(policy: &Policy, slots: &mut VsidSlots, neighbors: &[(IpAddr, [u8; 6])], generation: u64) -> Tables {
        Self::compile_next(policy, slots, neighbors, generation, None)
    }

    /// Compile, stamping versions against the previous snapshot `prev`: a
    /// record, VSID or the global state keeps its version when its compiled
    /// content is unchanged, so cached flows that depend only on unchanged
    /// parts stay valid.
    pub fn compile_next(policy: &Policy, slots: &mut VsidSlots, neighbors: &[(IpAddr, [u8; 6])], generation: u64, prev: Option<&Tables>) -> Tables {
        let mut t = Self::build(policy, slots, neighbors, generation);
        t.stamp(prev, generation);
        t
    }

    fn stamp(&mut self, prev: Option<&Tables>, generation: u64) {
        let same = |a: &Dest, b: &Dest| Dest { index: 0, version: 0, ..*a } == Dest { index: 0, version: 0, ..*b };
        let mut slot_to_dest = vec![u32::MAX; self.dests.iter().map(|d| d.slot as usize + 1).max().unwrap_or(0)];
        for d in &mut self.dests {
            slot_to_dest[d.slot as usize] = d.index;
            d.version = prev.and_then(|p| p.by_slot(d.slot)).filter(|o| same(o, d)).map_or(generation, |o| o.version);
        }
        self.slot_to_dest = slot_to_dest;
        let mut members: HashMap<u32, Vec<u32>> = HashMap::new();
        for d in &self.dests {
            members.entry(d.vsid).or_default().push(d.slot);
        }
        let vsids: Vec<u32> = self.vsids.keys().copied().collect();
        for v in vsids {
            let ports: Vec<PortEntry> = self.ports.iter().filter(|p| p.vsid == v).cloned().collect();
            let Some(e) = self.vsids.get_mut(&v) else { continue };
            let mut m = members.remove(&v).unwrap_or_default();
            m.sort_unstable();
            e.members = m;
            let routes = self.routes.get(usize::from(e.rd)).cloned().unwrap_or_default();
            let unchanged = prev.and_then(|p| {
                let o = p.vsids.get(&v)?;
                let o_ports: Vec<&PortEntry> = p.ports.iter().filter(|q| q.vsid == v).collect();
                let same_ports = o_ports.len() == ports.len() && o_ports.iter().zip(&ports).all(|(a, b)| a.addresses == b.addresses && a.mac == b.mac && a.name == b.name);
                let same_routes = p.routes.get(usize::from(o.rd)).is_some_and(|r| *r == routes);
                (VsidEntry { version: 0, ..o.clone() } == VsidEntry { version: 0, ..e.clone() } && same_ports && same_routes).then_some(o.version)
            });
            e.version = unchanged.unwrap_or(generation);
        }
        self.global_version = match prev {
            Some(p) if p.local_pas == self.local_pas && p.ports.len() == self.ports.len() && p.ports.iter().zip(&self.ports).all(|(a, b)| a.name == b.name && a.role == b.role && a.mtu == b.mtu) => {
                p.global_version
            }
            _ => generation,
        };
    }

    /// Mark the records in `slots` as moved away (see [`Dest::forward_moved`]).
    pub fn mark_moved(&mut self, slots: &[u32]) {
        for d in &mut self.dests {
            if slots.contains(&d.slot) {
                d.forward_moved = true;
            }
        }
    }

    /// The record in stable slot `slot`.
    #[inline]
    pub fn by_slot(&self, slot: u32) -> Option<&Dest> {
        let i = *self.slot_to_dest.get(slot as usize)?;
        self.dests.get(i as usize)
    }

    fn build(policy: &Policy, slots: &mut VsidSlots, neighbors: &[(IpAddr, [u8; 6])], generation: u64) -> Tables {
        let port_index = |name: &str| policy.ports.iter().position(|p| p.name == name).map(|i| i as u16);
        let mut t = Tables { generation, vxlan_port: policy.host.vxlan_port, ..Default::default() };
        let rd_index = |name: &str| policy.routing_domains.iter().position(|r| r.name == name).unwrap_or(0) as u16;
        for s in &policy.subnets {
            let v = s.vsid.get();
            let acl: Vec<AclRule> = policy.acl.iter().filter(|r| r.vsid == s.vsid).cloned().collect();
            t.vsids.insert(
                v,
                VsidEntry {
                    rd: rd_index(&s.routing_domain),
                    slot: slots.slot(v),
                    gw_v4: s.gateway_v4,
                    gw_v6: s.gateway_v6,
                    gw_mac: s.gateway_mac.0,
                    local_ports: Vec::new(),
                    acl,
                    wildcard: None,
                    members: Vec::new(),
                    encap: s.encap,
                    key_ports: false,
                    version: generation,
                },
            );
        }
        for (i, p) in policy.ports.iter().enumerate() {
            let vsid = p.vsid.map_or(0, |v| v.get());
            let slot = if p.role == PortRole::Vm { slots.slot(vsid) } else { 0 };
            if let Some(e) = t.vsids.get_mut(&vsid) {
                if p.role == PortRole::Vm {
                    e.local_ports.push(i as u16);
                }
            }
            t.ports.push(PortEntry {
                name: p.name.clone(),
                role: if p.role == PortRole::Vm { Role::Vm } else { Role::Uplink },
                vsid,
                mac: p.mac.map_or([0; 6], |m| m.0),
                addresses: p.addresses.clone(),
                vsid_slot: slot,
                mtu: p.mtu.unwrap_or(if p.role == PortRole::Uplink { DEFAULT_UPLINK_MTU } else { 1500 }),
                key_ports: false,
            });
        }
        for pa in &policy.host.provider_addresses {
            t.local_pas.push(LocalPa { ip: pa.address, mac: pa.mac.0, vlan: pa.vlan, uplink: port_index(&pa.uplink).unwrap_or(0) });
        }
        let neighbor = |ip: IpAddr| -> Option<[u8; 6]> { policy.host.neighbor(ip).map(|m| m.0).or_else(|| neighbors.iter().find(|(a, _)| *a == ip).map(|(_, m)| *m)) };
        for r in &policy.lookup {
            let vsid = r.vsid.get();
            let to = if r.rule == Rule::None || policy.host.is_local_pa(r.pa) {
                match t.ports.iter().position(|p| p.role == Role::Vm && p.vsid == vsid && p.mac == r.mac.0) {
                    Some(i) => Delivery::Local(i as u16),
                    None => Delivery::NoLocalPort,
                }
            } else {
                let encap = policy.subnets.iter().find(|s| s.vsid == r.vsid).map_or(Encap::Nvgre, |s| s.encap);
                t.template(policy, r.pa, vsid, encap, &neighbor).map_or(Delivery::Unresolved, Delivery::Encap)
            };
            let idx = t.dests.len() as u32;
            t.dests.push(Dest {
                index: idx,
                slot: slots.record(vsid, r.ca),
                version: generation,
                vsid,
                ca: r.ca,
                mac: r.mac.0,
                pa: r.pa,
                to,
                vsid_slot: slots.slot(vsid),
                l2_only: r.kind == RecordType::L2Only,
                flow_entropy: r.flow_entropy,
                forward_moved: false,
            });
            if r.kind == RecordType::GatewayWildcard {
                if let Some(e) = t.vsids.get_mut(&vsid) {
                    e.wildcard = Some(idx);
                }
                continue;
            }
            t.by_ca.insert((vsid, r.ca), idx);
            t.by_mac.entry((vsid, r.mac.0)).or_insert(idx);
        }
        t.routes = vec![Vec::new(); policy.routing_domains.len().max(1)];
        for s in &policy.subnets {
            for p in &s.prefixes {
                t.routes[usize::from(rd_index(&s.routing_domain))].push(Route { prefix: *p, vsid: s.vsid.get(), next_hop: None, metric: 0 });
            }
        }
        for r in &policy.customer_routes {
            let nh = (!r.is_on_link()).then_some(r.next_hop);
            t.routes[usize::from(rd_index(&r.routing_domain))].push(Route { prefix: r.destination, vsid: r.vsid.get(), next_hop: nh, metric: r.metric });
        }
        for rd in &mut t.routes {
            rd.sort_by(|a, b| b.prefix.len().cmp(&a.prefix.len()).then(a.metric.cmp(&b.metric)));
        }
        t.compile_key_masks();
        t
    }

    /// Per routing domain: do any of its VSIDs' ACL rules match on L4 ports?
    /// Then every VSID of it keys flows on ports too (traffic can be routed
    /// into any VSID of its routing domain and meet that VSID's "in" rules).
    fn compile_key_masks(&mut self) {
        let reads_ports = |e: &VsidEntry| e.acl.iter().any(|r| r.src_ports.is_some() || r.dst_ports.is_some());
        let mut rds: Vec<u16> = self.vsids.values().filter(|e| reads_ports(e)).map(|e| e.rd).collect();
        rds.sort_unstable();
        rds.dedup();
        for e in self.vsids.values_mut() {
            e.key_ports = rds.binary_search(&e.rd).is_ok();
        }
        let mut v: Vec<u32> = self.vsids.iter().filter(|(_, e)| e.key_ports).map(|(v, _)| *v).collect();
        v.sort_unstable();
        self.key_ports_vsids = v;
        let vsids = &self.vsids;
        for p in &mut self.ports {
            p.key_ports = p.role == Role::Vm && vsids.get(&p.vsid).is_some_and(|e| e.key_ports);
        }
    }

    /// The flow-key mask of traffic decapsulated into `vsid`: include L4 ports?
    #[inline]
    pub fn key_ports(&self, vsid: u32) -> bool {
        !self.key_ports_vsids.is_empty() && self.key_ports_vsids.binary_search(&vsid).is_ok()
    }

    /// Build the outer header toward `pa` for `vsid`, or `None` if the next hop's MAC is unknown.
    fn template(&self, policy: &Policy, pa: IpAddr, vsid: u32, encap: Encap, neighbor: &dyn Fn(IpAddr) -> Option<[u8; 6]>) -> Option<EncapTemplate> {
        let local = policy.host.provider_addresses.iter().find(|l| l.address.is_ipv4() == pa.is_ipv4())?;
        let next_hop = if local.subnet().contains(pa) {
            pa
        } else {
            policy.host.provider_routes.iter().filter(|r| r.destination.contains(pa)).max_by(|a, b| a.destination.len().cmp(&b.destination.len()).then(b.metric.cmp(&a.metric))).map(|r| {
                if r.is_on_link() {
                    pa
                } else {
                    r.next_hop
                }
            })?
        };
        let nh_mac = neighbor(next_hop)?;
        let uplink = policy.ports.iter().position(|p| p.name == local.uplink)? as u16;
        let mtu = self.ports.get(usize::from(uplink)).map_or(DEFAULT_UPLINK_MTU, |p| p.mtu);
        let mut b = [0u8; MAX_OUTER];
        b[0..6].copy_from_slice(&nh_mac);
        b[6..12].copy_from_slice(&local.mac.0);
        let mut off = 12;
        if let Some(vlan) = local.vlan {
            b[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
            b[14..16].copy_from_slice(&(vlan & 0x0fff).to_be_bytes());
            off = 16;
        }
        let ipv6 = pa.is_ipv6();
        let vxlan = encap == Encap::Vxlan;
        let proto = if vxlan { 17 } else { 47 };
        b[off..off + 2].copy_from_slice(&(if ipv6 { 0x86ddu16 } else { 0x0800 }).to_be_bytes());
        let ip_off = off + 2;
        let (src, n) = ip_bytes(&local.address);
        let (dst, _) = ip_bytes(&pa);
        let mut ip_sum = 0;
        let gre_off = if ipv6 {
            let h = &mut b[ip_off..ip_off + 40];
            h[0] = 0x60;
            h[6] = proto;
            h[7] = OUTER_TTL;
            h[8..24].copy_from_slice(&src[..n]);
            h[24..40].copy_from_slice(&dst[..n]);
            ip_off + 40
        } else {
            let h = &mut b[ip_off..ip_off + 20];
            h[0] = 0x45;
            h[6] = 0x40; // DF: the encapsulator must not fragment
            h[8] = OUTER_TTL;
            h[9] = proto;
            h[12..16].copy_from_slice(&src[..4]);
            h[16..20].copy_from_slice(&dst[..4]);
            ip_sum = checksum::data(h);
            ip_off + 20
        };
        let len = if vxlan {
            // UDP: source port and length patched per packet, checksum 0 (IPv4) or computed (IPv6).
            b[gre_off + 2..gre_off + 4].copy_from_slice(&self.vxlan_port.to_be_bytes());
            b[gre_off + 8] = hnv_wire::vxlan::FLAGS;
            b[gre_off + 12..gre_off + 16].copy_from_slice(&(vsid << 8).to_be_bytes());
            gre_off + 16
        } else {
            b[gre_off..gre_off + 2].copy_from_slice(&0x2000u16.to_be_bytes());
            b[gre_off + 2..gre_off + 4].copy_from_slice(&0x6558u16.to_be_bytes());
            b[gre_off + 4..gre_off + 8].copy_from_slice(&(vsid << 8).to_be_bytes());
            gre_off + 8
        };
        let ip_and_gre = len - ip_off;
        let max_inner = usize::from(mtu).saturating_sub(ip_and_gre).min(usize::from(u16::MAX)) as u16;
        Some(EncapTemplate { bytes: b, len: len as u8, ip_off: ip_off as u8, ipv6, ip_sum, uplink, max_inner, vxlan })
    }

    /// The record for (`vsid`, CA).
    #[inline]
    pub fn by_ca(&self, vsid: u32, ca: IpAddr) -> Option<&Dest> {
        self.by_ca.get(&(vsid, ca)).and_then(|&i| self.dests.get(i as usize))
    }

    /// The record for (`vsid`, MAC).
    #[inline]
    pub fn by_mac(&self, vsid: u32, mac: [u8; 6]) -> Option<&Dest> {
        self.by_mac.get(&(vsid, mac)).and_then(|&i| self.dests.get(i as usize))
    }

    /// Per-VSID facts.
    #[inline]
    pub fn vsid(&self, vsid: u32) -> Option<&VsidEntry> {
        self.vsids.get(&vsid)
    }

    /// Counter slot of `vsid`, if known.
    #[inline]
    pub fn vsid_slot(&self, vsid: u32) -> Option<u16> {
        self.vsids.get(&vsid).map(|e| e.slot)
    }

    /// The gateway-wildcard record of `vsid`.
    pub fn wildcard(&self, vsid: u32) -> Option<&Dest> {
        self.vsids.get(&vsid).and_then(|e| e.wildcard).and_then(|i| self.dests.get(i as usize))
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
        assert_eq!(&b.bytes[38..42], &[0x00, 0x13, 0x89, 0x00], "key = 5001 << 8");
        assert_eq!(&r.bytes[38..42], &[0x00, 0x17, 0x71, 0x00], "key = 6001 << 8");
        assert_eq!(b.len, 42);
        assert_eq!(&b.bytes[0..6], &[0x02, 0x00, 0xc0, 0xa8, 0x04, 0x16], "next hop = host 2's PA MAC");
        let local = t.by_ca(5001, "10.0.0.5".parse().unwrap()).unwrap();
        assert_eq!(local.to, Delivery::Local(1));
    }

    #[test]
    fn template_checksum_is_valid_once_length_is_patched() {
        let t = host(1);
        let Delivery::Encap(tpl) = t.by_ca(5001, "10.0.0.7".parse().unwrap()).unwrap().to else { panic!() };
        let mut h = tpl.bytes[14..34].to_vec();
        let total: u16 = 20 + 8 + 60;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        let sum = !checksum::combine(&[tpl.ip_sum, total]);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(checksum::data(&h), 0xffff);
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
        assert!(b.vxlan);
        assert_eq!(b.len, 50);
        assert_eq!(b.udp_off(), 34);
        assert_eq!(b.bytes[23], 17, "outer protocol UDP");
        assert_eq!(&b.bytes[34..50], &[0, 0, 0x12, 0xb5, 0, 0, 0, 0, 0x08, 0, 0, 0, 0x00, 0x13, 0x89, 0x00], "dst port 4789, VNI 5001");
        assert_eq!(b.max_inner, 1500 - 36);
        assert_eq!(vx.vsid(5001).unwrap().encap, Encap::Vxlan);
        assert_ne!(vx.by_ca(5001, ca).unwrap().version, nv.by_ca(5001, ca).unwrap().version, "the record's decisions are invalidated");
        assert_eq!(vx.by_ca(6001, ca).unwrap().version, nv.by_ca(6001, ca).unwrap().version, "Red's are not");
        let Delivery::Encap(r) = vx.by_ca(6001, ca).unwrap().to else { panic!() };
        assert!(!r.vxlan);
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
