//! The whole compile: every table from a validated policy.
//!
//! Contract: [`Tables::compile_from`] builds the tables of `base` (a policy
//! whose lookup records come separately, each with the PA to use: the
//! record's own, or a REDIRECT's) and stamps versions against the previous
//! snapshot: a record, VSID or the host-level state keeps its version when
//! its compiled content is unchanged, so cached flows that depend only on
//! unchanged parts stay valid. It costs time linear in the policy and runs on
//! the control thread for whole loads and for port, provider-address and
//! neighbor changes; record, route and ACL changes take the incremental paths
//! in `update.rs`, which share [`Ctx::dest`] and [`Ctx::template`] with it.

use super::*;
use hnv_policy::{Encap, Host, LookupRecord, MssClamp, PortRole, RecordType, Rule};
use hnv_wire::checksum;

/// What compiling one record reads.
pub(super) struct Ctx<'a> {
    pub host: &'a Host,
    pub neighbors: &'a [(IpAddr, [u8; 6])],
    /// The snapshot before: a PA whose template is unchanged keeps its id
    /// (so records toward it compile the same and keep their versions).
    pub prev: Option<&'a Tables>,
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

/// Hash of a record slot, summed into [`VsidEntry::members`].
pub(super) fn member_hash(slot: u32) -> u64 {
    u64::from(slot).wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
}

impl Ctx<'_> {
    fn neighbor(&self, ip: IpAddr) -> Option<[u8; 6]> {
        self.host.neighbor(ip).map(|m| m.0).or_else(|| self.neighbors.iter().find(|(a, _)| *a == ip).map(|(_, m)| *m))
    }

    /// The outer header toward `pa` in NVGRE or (`vxlan`) VXLAN to UDP port
    /// `vxlan_port` (key or VNI zero), or `None` if the next hop's MAC is unknown.
    pub fn template(&self, ports: &[PortEntry], pa: IpAddr, vxlan: bool, vxlan_port: u16) -> Option<EncapTemplate> {
        let host = self.host;
        let local = host.provider_addresses.iter().find(|l| l.address.is_ipv4() == pa.is_ipv4())?;
        let next_hop = if local.subnet().contains(pa) {
            pa
        } else {
            host.provider_routes.iter().filter(|r| r.destination.contains(pa)).max_by(|a, b| a.destination.len().cmp(&b.destination.len()).then(b.metric.cmp(&a.metric))).map(|r| {
                if r.is_on_link() {
                    pa
                } else {
                    r.next_hop
                }
            })?
        };
        let nh_mac = self.neighbor(next_hop)?;
        let uplink = ports.iter().position(|p| p.name == local.uplink)? as u16;
        let mtu = ports.get(usize::from(uplink)).map_or(DEFAULT_UPLINK_MTU, |p| p.mtu);
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
            b[gre_off + 2..gre_off + 4].copy_from_slice(&vxlan_port.to_be_bytes());
            b[gre_off + 8] = hnv_wire::vxlan::FLAGS;
            gre_off + 16
        } else {
            b[gre_off..gre_off + 2].copy_from_slice(&0x2000u16.to_be_bytes());
            b[gre_off + 2..gre_off + 4].copy_from_slice(&0x6558u16.to_be_bytes());
            gre_off + 8
        };
        let ip_and_gre = len - ip_off;
        let max_inner = usize::from(mtu).saturating_sub(ip_and_gre).min(usize::from(u16::MAX)) as u16;
        // What fits: the inner Ethernet, IPv4 and TCP headers (14 + 20 + 20) come off the inner frame.
        let fits = max_inner.saturating_sub(54);
        let mss = match self.host.mss_clamp {
            MssClamp::Off => 0,
            MssClamp::Auto => fits,
            MssClamp::Max(n) => n.min(fits),
        };
        Some(EncapTemplate { bytes: b, len: len as u8, ip_off: ip_off as u8, ipv6, ip_sum, uplink, max_inner, vxlan, mss })
    }

    /// Record `r` compiled, encapsulating to `pa` (its own PA or a REDIRECT's)
    /// in `encap` (its VSID's); templates of PAs not seen yet are added to `t`.
    pub fn dest(&self, t: &mut Tables, slots: &mut VsidSlots, r: &LookupRecord, pa: IpAddr, encap: Encap, generation: u64) -> Dest {
        let vsid = r.vsid.get();
        let to = if r.rule == Rule::None || self.host.is_local_pa(pa) {
            match t.ports.iter().position(|p| p.role == Role::Vm && p.vsid == vsid && p.mac == r.mac.0) {
                Some(i) => Delivery::Local(i as u16),
                None => Delivery::NoLocalPort,
            }
        } else {
            let vxlan = encap == Encap::Vxlan;
            let key = (pa, vxlan);
            let id = match t.pa_templates.get(&key) {
                Some(id) => *id,
                None => {
                    let id = self.template(&t.ports, pa, vxlan, t.vxlan_port).map(|tpl| {
                        let old = self.prev.and_then(|p| p.pa_templates.get(&key).copied().flatten().filter(|&i| p.template(i) == Some(&tpl)));
                        match old {
                            Some(i) if t.template(i) == Some(&tpl) => i,
                            _ => {
                                let v = Arc::make_mut(&mut t.templates);
                                v.push(tpl);
                                (v.len() - 1) as u32
                            }
                        }
                    });
                    Arc::make_mut(&mut t.pa_templates).insert(key, id);
                    id
                }
            };
            id.map_or(Delivery::Unresolved, Delivery::Encap)
        };
        Dest {
            slot: slots.record(vsid, r.ca),
            version: generation,
            vsid,
            ca: r.ca,
            mac: r.mac.0,
            pa,
            to,
            vsid_slot: slots.slot(vsid),
            l2_only: r.kind == RecordType::L2Only,
            flow_entropy: r.flow_entropy,
            forward_moved: false,
        }
    }
}

impl Tables {
    /// Compile `policy`; `neighbors` adds learned provider MACs to its static ones.
    pub fn compile(policy: &Policy, slots: &mut VsidSlots, neighbors: &[(IpAddr, [u8; 6])], generation: u64) -> Tables {
        Self::compile_next(policy, slots, neighbors, generation, None)
    }

    /// Compile `policy`, stamping versions against the previous snapshot `prev`.
    pub fn compile_next(policy: &Policy, slots: &mut VsidSlots, neighbors: &[(IpAddr, [u8; 6])], generation: u64, prev: Option<&Tables>) -> Tables {
        Self::compile_from(policy, &mut policy.lookup.iter().map(|r| (r, r.pa)), slots, neighbors, generation, prev)
    }

    /// Compile `base` with the lookup records `records` (each with the PA to
    /// encapsulate to), stamping versions against `prev` (see the module contract).
    pub fn compile_from(
        base: &Policy,
        records: &mut dyn Iterator<Item = (&LookupRecord, IpAddr)>,
        slots: &mut VsidSlots,
        neighbors: &[(IpAddr, [u8; 6])],
        generation: u64,
        prev: Option<&Tables>,
    ) -> Tables {
        let mut t = Tables { generation, vxlan_port: base.host.vxlan_port, ..Default::default() };
        if let Some(p) = prev {
            // Template ids stay stable across whole compiles; unused ones are dropped when they are most.
            if p.templates.len() < 2 * p.pa_templates.len() + 16 {
                t.templates = p.templates.clone();
            }
        }
        t.ports = Arc::new(build_ports(base, slots));
        for pa in &base.host.provider_addresses {
            t.local_pas.push(LocalPa { ip: pa.address, mac: pa.mac.0, vlan: pa.vlan, uplink: base.ports.iter().position(|p| p.name == pa.uplink).unwrap_or(0) as u16 });
        }
        let mut vsids = build_vsids(base, slots, &t.ports, generation);
        let cx = Ctx { host: &base.host, neighbors, prev };
        for (r, pa) in records {
            let encap = vsids.get(&r.vsid.get()).map_or(Encap::Nvgre, |e| e.encap);
            let d = cx.dest(&mut t, slots, r, pa, encap, generation);
            if let Some(e) = vsids.get_mut(&d.vsid) {
                e.members.0 += 1;
                e.members.1 = e.members.1.wrapping_add(member_hash(d.slot));
                if r.kind == RecordType::GatewayWildcard {
                    e.wildcard = Some(d.slot);
                }
            }
            if r.kind != RecordType::GatewayWildcard {
                t.by_ca.insert(CaKey(d.vsid, d.ca), d.slot);
                t.by_mac.insert_if_absent(MacKey(d.vsid, d.mac), d.slot);
            }
            t.records.set(d.slot, Some(d));
        }
        t.routes = Arc::new(build_routes(base));
        t.vsids = vsids.into_iter().map(|(v, e)| (v, Arc::new(e))).collect();
        t.compile_key_masks();
        t.stamp(prev, generation);
        t
    }

    fn stamp(&mut self, prev: Option<&Tables>, generation: u64) {
        let same = |a: &Dest, b: &Dest| Dest { version: 0, ..*a } == Dest { version: 0, ..*b };
        if let Some(p) = prev {
            // Unchanged records keep their version (copy on write touches only changed chunks).
            let stamps: Vec<(u32, u64)> = self.records.iter().filter_map(|d| p.by_slot(d.slot).filter(|o| same(o, d)).map(|o| (d.slot, o.version))).collect();
            for (slot, version) in stamps {
                if let Some(d) = self.records.get(slot).copied() {
                    self.records.set(slot, Some(Dest { version, ..d }));
                }
            }
        }
        self.stamp_vsids(prev, generation);
        self.global_version = match prev {
            Some(p)
                if p.local_pas == self.local_pas && p.ports.len() == self.ports.len() && p.ports.iter().zip(self.ports.iter()).all(|(a, b)| a.name == b.name && a.role == b.role && a.mtu == b.mtu) =>
            {
                p.global_version
            }
            _ => generation,
        };
    }

    /// A VSID keeps its version when its entry, ports and routes are as in `prev`.
    pub(super) fn stamp_vsids(&mut self, prev: Option<&Tables>, generation: u64) {
        let vsids: Vec<u32> = self.vsids.keys().copied().collect();
        for v in vsids {
            let unchanged = prev.and_then(|p| {
                let o = p.vsids.get(&v)?;
                let e = self.vsids.get(&v)?;
                let ports = |t: &Tables| t.ports.iter().filter(|q| q.vsid == v).map(|q| (q.name.clone(), q.mac, q.addresses.clone())).collect::<Vec<_>>();
                let same_routes = p.routes.get(usize::from(o.rd)) == self.routes.get(usize::from(e.rd));
                (VsidEntry { version: 0, ..(**o).clone() } == VsidEntry { version: 0, ..(**e).clone() } && ports(p) == ports(self) && same_routes).then_some(o.version)
            });
            if let Some(e) = self.vsids.get_mut(&v) {
                Arc::make_mut(e).version = unchanged.unwrap_or(generation);
            }
        }
    }

    /// Per routing domain: do any of its VSIDs' ACL rules match on L4 ports?
    /// Then every VSID of it keys flows on ports too (traffic can be routed
    /// into any VSID of its routing domain and meet that VSID's "in" rules).
    pub(super) fn compile_key_masks(&mut self) {
        let reads_ports = |e: &VsidEntry| e.acl.iter().any(|r| r.src_ports.is_some() || r.dst_ports.is_some());
        let mut rds: Vec<u16> = self.vsids.values().filter(|e| reads_ports(e)).map(|e| e.rd).collect();
        rds.sort_unstable();
        rds.dedup();
        for e in self.vsids.values_mut() {
            let k = rds.binary_search(&e.rd).is_ok();
            if e.key_ports != k {
                Arc::make_mut(e).key_ports = k;
            }
        }
        let mut v: Vec<u32> = self.vsids.iter().filter(|(_, e)| e.key_ports).map(|(v, _)| *v).collect();
        v.sort_unstable();
        self.key_ports_vsids = v;
        let vsids = &self.vsids;
        let ports = Arc::make_mut(&mut self.ports);
        for p in ports.iter_mut() {
            p.key_ports = p.role == Role::Vm && vsids.get(&p.vsid).is_some_and(|e| e.key_ports);
        }
    }
}

fn rd_index(base: &Policy, name: &str) -> u16 {
    base.routing_domains.iter().position(|r| r.name == name).unwrap_or(0) as u16
}

pub(super) fn build_ports(base: &Policy, slots: &mut VsidSlots) -> Vec<PortEntry> {
    base.ports
        .iter()
        .map(|p| {
            let vsid = p.vsid.map_or(0, |v| v.get());
            PortEntry {
                name: p.name.clone(),
                role: if p.role == PortRole::Vm { Role::Vm } else { Role::Uplink },
                vsid,
                mac: p.mac.map_or([0; 6], |m| m.0),
                addresses: p.addresses.clone(),
                vsid_slot: if p.role == PortRole::Vm { slots.slot(vsid) } else { 0 },
                mtu: p.mtu.unwrap_or(if p.role == PortRole::Uplink { DEFAULT_UPLINK_MTU } else { 1500 }),
                key_ports: false,
            }
        })
        .collect()
}

/// The per-VSID entries of `base` (members and wildcard empty).
pub(super) fn build_vsids(base: &Policy, slots: &mut VsidSlots, ports: &[PortEntry], generation: u64) -> HashMap<u32, VsidEntry> {
    let mut vsids = HashMap::with_capacity(base.subnets.len());
    for s in &base.subnets {
        let v = s.vsid.get();
        vsids.insert(
            v,
            VsidEntry {
                rd: rd_index(base, &s.routing_domain),
                slot: slots.slot(v),
                gw_v4: s.gateway_v4,
                gw_v6: s.gateway_v6,
                gw_mac: s.gateway_mac.0,
                local_ports: Vec::new(),
                acl: base.acl_for(s.vsid).to_vec(),
                wildcard: None,
                members: (0, 0),
                encap: s.encap,
                key_ports: false,
                version: generation,
            },
        );
    }
    for (i, p) in ports.iter().enumerate() {
        if let (Role::Vm, Some(e)) = (p.role, vsids.get_mut(&p.vsid)) {
            e.local_ports.push(i as u16);
        }
    }
    vsids
}

pub(super) fn build_routes(base: &Policy) -> Vec<Vec<Route>> {
    let mut routes = vec![Vec::new(); base.routing_domains.len().max(1)];
    for s in &base.subnets {
        for p in &s.prefixes {
            routes[usize::from(rd_index(base, &s.routing_domain))].push(Route { prefix: *p, vsid: s.vsid.get(), next_hop: None, metric: 0 });
        }
    }
    for r in &base.customer_routes {
        let nh = (!r.is_on_link()).then_some(r.next_hop);
        routes[usize::from(rd_index(base, &r.routing_domain))].push(Route { prefix: r.destination, vsid: r.vsid.get(), next_hop: nh, metric: r.metric });
    }
    for rd in &mut routes {
        rd.sort_by(|a, b| b.prefix.len().cmp(&a.prefix.len()).then(a.metric.cmp(&b.metric)));
    }
    routes
}
