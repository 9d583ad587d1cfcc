//! Validation: from the file form to the typed model.
//!
//! Contract: [`validate`] either returns a [`Policy`] satisfying every rule
//! below or [`PolicyError::Invalid`] listing *every* violation found (one
//! [`FieldError`] per problem, naming the record and field). It never panics.
//! A record with a malformed field is left out of the cross-record checks that
//! need that field, so one typo does not cascade into many errors.
//!
//! Rules:
//! - Host: non-empty name; at least one provider address; each PA unicast,
//!   prefix length within its family, VLAN `1..=4094`, unicast MAC, `uplink`
//!   naming a port with role `uplink`; no duplicate PA. Provider routes: valid
//!   prefix (host bits zero), next hop of the same family and on-link in some
//!   PA subnet (or unspecified = on-link). Neighbors: unique, on-link in a PA
//!   subnet, not one of this host's PAs, unicast MAC.
//! - Ports: at most [`MAX_PORTS`]; unique non-empty names and devargs; role
//!   `vm` or `uplink`. VM ports need a VSID declared by a subnet and a unicast
//!   MAC (unique within the VSID, not the subnet's gateway MAC); each of
//!   their addresses must be covered by a lookup record with the port's VSID
//!   and MAC and a PA of this host (or rule `none`). Uplinks take no VSID and no
//!   addresses. MTU `68..=65535`.
//! - Routing domains: unique non-empty names; `id` in GUID form, unique.
//! - Subnets: VSID in range, declared once; known routing domain; prefixes
//!   valid and not overlapping any other prefix of the same routing domain;
//!   gateways inside one of the subnet's prefixes; unicast gateway MAC.
//! - Lookup records: VSID in range and declared by a subnet; CA `0.0.0.0`/`::`
//!   exactly for `gateway_wildcard`; CA not the subnet's gateway; unicast MAC;
//!   unicast PA; rule `encap` or `none` (`nat` is rejected as unsupported;
//!   `none` needs `pa == ca`); type `static`, `l2only` or `gateway_wildcard`;
//!   `(vsid, ca)` unique; records sharing `(vsid, mac)` agree on the PA of
//!   each family; an encap record needs a local PA of its PA's family; an
//!   encap record whose MAC is a local VM port's MAC in that VSID must use one
//!   of this host's PAs; an encap record using one of this host's PAs must
//!   belong to a local VM port (same VSID and MAC).
//!   With [`Options::shared_records`] (the records are shared by every host,
//!   e.g. through etcd) a local VM port whose records place its VM at another
//!   host's PA is not an error: that VM is elsewhere (it moved away, or has not
//!   arrived yet), its traffic is encapsulated to that PA, and its port's
//!   addresses need records with its VSID and MAC at any PA.
//! - Customer routes: known routing domain; VSID declared by a subnet of that
//!   same routing domain; valid destination; next hop of the same family;
//!   no duplicate `(routing_domain, vsid, destination, next_hop)`.
//! - ACL: VSID declared by a subnet; direction `in`/`out`/`both` (default
//!   both); action `allow`/`deny`; protocol `any`/`tcp`/`udp`/`icmp`/`icmpv6`/
//!   number; src/dst prefixes of one family, IPv4 for `icmp` and IPv6 for
//!   `icmpv6`; port ranges `lo <= hi`, only with `tcp`, `udp` or `any`.
//!   The result's ACL is sorted by `(vsid, priority)`, stably.

use hashbrown::{HashMap, HashSet};
use std::fmt::Display;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use hnv_wire::EthernetAddress;

use crate::addr::{format_mac, is_guid, is_multicast_mac, parse_mac, parse_port_range, parse_protocol, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};
use crate::error::{FieldError, PolicyError};
use crate::file::{BoolOrNumber, PolicyFile, TextOrNumber};
use crate::model::{
    AclAction, AclRule, CustomerRoute, Direction, Encap, Host, LookupRecord, MssClamp, Neighbor, Policy, Port, PortRole, Prefix, ProviderAddress, ProviderRoute, RecordType, RoutingDomain, Rule,
    VirtualSubnet, Vsid, VXLAN_PORT,
};

/// The most ports one switch instance accepts (equal to `pmd::MAX_PORTS`, the
/// ports a worker can address; the datapath crate asserts they agree at compile time).
pub const MAX_PORTS: usize = 64;

/// The smallest MSS `mss_clamp` takes: IPv4's minimum (RFC 879).
pub const MSS_CLAMP_MIN: u16 = 536;
/// The largest MSS `mss_clamp` takes (a 9,000-byte jumbo frame's).
pub const MSS_CLAMP_MAX: u16 = 8960;

/// What a validation accepts beyond the rules of a policy file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// The lookup records are shared by every host (etcd) while the ports are
    /// this host's: a local VM port whose records place its VM at another
    /// host's PA is a VM that is elsewhere (moved away, or not arrived yet),
    /// not an error.
    pub shared_records: bool,
}

/// Reads and validates the policy file at `path`. Errors name the path.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    load_with(path, Options::default())
}

/// [`load`] with `options`.
pub fn load_with(path: &Path, options: Options) -> Result<Policy, PolicyError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io { origin: origin.clone(), source })?;
    parse_with(&text, &origin, options)
}

/// Parses and validates policy text; `origin` names it in errors (e.g. the
/// file name).
pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
    parse_with(text, origin, Options::default())
}

/// [`parse`] with `options`.
pub fn parse_with(text: &str, origin: &str, options: Options) -> Result<Policy, PolicyError> {
    let file: PolicyFile = crate::bulk::read(text).map_err(|e| PolicyError::from_toml(&e, text, origin))?;
    validate_with(&file, origin, options)
}

/// Validates an already-deserialized policy file.
pub fn validate(file: &PolicyFile, origin: &str) -> Result<Policy, PolicyError> {
    validate_with(file, origin, Options::default())
}

/// [`validate`] with `options`.
pub fn validate_with(file: &PolicyFile, origin: &str, options: Options) -> Result<Policy, PolicyError> {
    let mut v = Validator { options, ..Validator::default() };
    let policy = v.run(file);
    if v.errors.is_empty() {
        Ok(policy)
    } else {
        Err(PolicyError::Invalid { origin: origin.to_string(), errors: v.errors })
    }
}

/// User text made safe for a one-line message.
fn show(s: &str) -> String {
    s.escape_debug().to_string()
}

/// Escapes control characters so that a message stays on one line.
fn one_line(s: &str) -> String {
    if s.chars().any(char::is_control) {
        s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
    } else {
        s.to_string()
    }
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn is_unicast_ip(ip: &IpAddr) -> bool {
    !ip.is_unspecified() && !ip.is_multicast() && *ip != IpAddr::V4(Ipv4Addr::BROADCAST)
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
    options: Options,
}

/// What is known about a port even if some of its fields are malformed.
struct PortInfo {
    name: String,
    role: Option<PortRole>,
    vsid: Option<Vsid>,
    mac: Option<EthernetAddress>,
    addresses: Vec<IpAddr>,
}

/// What is known about a lookup record even if some of its fields are malformed.
struct LookupInfo {
    vsid: Option<Vsid>,
    ca: Option<IpAddr>,
    mac: Option<EthernetAddress>,
    pa: Option<IpAddr>,
    rule: Option<Rule>,
}

/// `None` (malformed, already reported) agrees with anything.
fn agrees<T: PartialEq>(field: Option<T>, want: T) -> bool {
    match field {
        None => true,
        Some(f) => f == want,
    }
}

impl Validator {
    fn err(&mut self, record: &dyn Display, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError { record: one_line(&record.to_string()), field: one_line(field), message: one_line(&message.into()) });
    }

    fn ip(&mut self, rec: &dyn Display, field: &str, s: &str) -> Option<IpAddr> {
        match s.trim().parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.err(rec, field, format!("'{}' is not an IP address", show(s)));
                None
            }
        }
    }

    /// An IP that must be a unicast host address.
    fn unicast_ip(&mut self, rec: &dyn Display, field: &str, s: &str) -> Option<IpAddr> {
        let ip = self.ip(rec, field, s)?;
        if !is_unicast_ip(&ip) {
            self.err(rec, field, format!("{ip} is not a unicast address"));
            return None;
        }
        Some(ip)
    }

    fn mac(&mut self, rec: &dyn Display, field: &str, s: &str) -> Option<EthernetAddress> {
        match parse_mac(s) {
            Ok(m) if is_multicast_mac(&m) => {
                self.err(rec, field, format!("{} is a multicast MAC; a station MAC must be unicast", format_mac(&m)));
                None
            }
            Ok(m) if m.0 == [0; 6] => {
                self.err(rec, field, "00:00:00:00:00:00 is not a usable MAC");
                None
            }
            Ok(m) => Some(m),
            Err(e) => {
                self.err(rec, field, e.to_string());
                None
            }
        }
    }

    fn prefix(&mut self, rec: &dyn Display, field: &str, s: &str) -> Option<Prefix> {
        match s.parse::<Prefix>() {
            Ok(p) => Some(p),
            Err(e) => {
                self.err(rec, field, e.to_string());
                None
            }
        }
    }

    fn vsid(&mut self, rec: &dyn Display, field: &str, n: i64) -> Option<Vsid> {
        match Vsid::from_i64(n) {
            Ok(v) => Some(v),
            Err(e) => {
                self.err(rec, field, e.to_string());
                None
            }
        }
    }

    fn int<T: TryFrom<i64>>(&mut self, rec: &dyn Display, field: &str, n: i64, lo: i64, hi: i64) -> Option<T> {
        if n < lo || n > hi {
            self.err(rec, field, format!("{n} is outside {lo}..={hi}"));
            return None;
        }
        T::try_from(n).ok()
    }

    fn nonempty(&mut self, rec: &dyn Display, field: &str, s: &str) -> bool {
        if s.trim().is_empty() {
            self.err(rec, field, "must not be empty");
            false
        } else {
            true
        }
    }

    fn run(&mut self, f: &PolicyFile) -> Policy {
        // ---- raw name tables, for references that must not cascade -------
        let port_roles: HashMap<&str, Option<PortRole>> = f.ports.iter().map(|p| (p.name.as_str(), parse_role(&p.role))).collect();
        let rd_names: HashSet<&str> = f.routing_domains.iter().map(|r| r.name.as_str()).collect();

        let host = self.host(f, &port_roles);
        let (ports, port_infos) = self.ports(f);
        let routing_domains = self.routing_domains(f);
        let (subnets, vsid_rd) = self.subnets(f, &rd_names);
        self.vm_port_subnets(&port_infos, &vsid_rd, &subnets);
        let (lookup, lookup_infos) = self.lookup(f, &host, &port_infos, &vsid_rd, &subnets);
        self.port_coverage(&port_infos, &lookup_infos, &host);
        let customer_routes = self.customer_routes(f, &rd_names, &vsid_rd);
        let mut acl = self.acl(f, &vsid_rd);
        acl.sort_by_key(|r| (r.vsid, r.priority));

        Policy { host, ports, routing_domains, subnets, lookup, customer_routes, acl }
    }

    fn host(&mut self, f: &PolicyFile, port_roles: &HashMap<&str, Option<PortRole>>) -> Host {
        let h = &f.host;
        self.nonempty(&"host", "name", &h.name);
        if h.provider_addresses.is_empty() {
            self.err(&"host", "provider_addresses", "at least one provider address is required");
        }

        let mut pas: Vec<ProviderAddress> = Vec::new();
        let mut seen: HashMap<IpAddr, usize> = HashMap::new();
        for (i, a) in h.provider_addresses.iter().enumerate() {
            let rec = format!("host.provider_addresses[{i}] ({})", show(&a.address));
            let address = self.unicast_ip(&rec, "address", &a.address);
            if let Some(ip) = address {
                if let Some(j) = seen.insert(ip, i) {
                    self.err(&rec, "address", format!("{ip} is already declared by host.provider_addresses[{j}]"));
                }
            }
            let max = if address.is_some_and(|ip| ip.is_ipv4()) { 32 } else { 128 };
            let prefix_len = self.int::<u8>(&rec, "prefix_len", a.prefix_len, 0, max);
            let vlan = match a.vlan {
                Some(n) => self.int::<u16>(&rec, "vlan", n, 1, 4094).map(Some),
                None => Some(None),
            };
            let mac = self.mac(&rec, "mac", &a.mac);
            let uplink_ok = match port_roles.get(a.uplink.as_str()) {
                None => {
                    self.err(&rec, "uplink", format!("no port is named '{}'", show(&a.uplink)));
                    false
                }
                Some(Some(PortRole::Vm)) => {
                    self.err(&rec, "uplink", format!("port '{}' has role vm, not uplink", show(&a.uplink)));
                    false
                }
                // A malformed role is reported on the port itself.
                Some(_) => true,
            };
            if let (Some(address), Some(prefix_len), Some(vlan), Some(mac), true) = (address, prefix_len, vlan, mac, uplink_ok) {
                pas.push(ProviderAddress { address, prefix_len, vlan, mac, uplink: a.uplink.clone() });
            }
        }
        let pa_subnets: Vec<Prefix> = pas.iter().map(ProviderAddress::subnet).collect();
        let on_link = |ip: IpAddr| pa_subnets.iter().any(|p| p.contains(ip));

        let mut routes = Vec::new();
        for (i, r) in h.provider_routes.iter().enumerate() {
            let rec = format!("host.provider_routes[{i}] ({})", show(&r.destination));
            let destination = self.prefix(&rec, "destination", &r.destination);
            let mut next_hop = self.ip(&rec, "next_hop", &r.next_hop);
            if let Some(nh) = next_hop {
                if destination.is_some_and(|d| d.is_ipv4() != nh.is_ipv4()) {
                    self.err(&rec, "next_hop", format!("{nh} is {} but the destination is not", family(&nh)));
                    next_hop = None;
                } else if !nh.is_unspecified() && !is_unicast_ip(&nh) {
                    self.err(&rec, "next_hop", format!("{nh} is not a unicast address"));
                    next_hop = None;
                } else if !nh.is_unspecified() && !pas.is_empty() && !on_link(nh) {
                    self.err(&rec, "next_hop", format!("{nh} is not on-link in any provider address subnet"));
                    next_hop = None;
                }
            }
            let metric = self.int::<u32>(&rec, "metric", r.metric, 0, i64::from(u32::MAX));
            if let (Some(destination), Some(next_hop), Some(metric)) = (destination, next_hop, metric) {
                routes.push(ProviderRoute { destination, next_hop, metric });
            }
        }

        let mut neighbors = Vec::new();
        let mut seen_n: HashMap<IpAddr, usize> = HashMap::new();
        for (i, n) in h.neighbors.iter().enumerate() {
            let rec = format!("host.neighbors[{i}] ({})", show(&n.address));
            let mut address = self.unicast_ip(&rec, "address", &n.address);
            if let Some(ip) = address {
                if let Some(j) = seen_n.insert(ip, i) {
                    self.err(&rec, "address", format!("{ip} is already listed by host.neighbors[{j}]"));
                    address = None;
                } else if pas.iter().any(|p| p.address == ip) {
                    self.err(&rec, "address", format!("{ip} is this host's own provider address"));
                    address = None;
                } else if !pas.is_empty() && !on_link(ip) {
                    self.err(&rec, "address", format!("{ip} is not on-link in any provider address subnet"));
                    address = None;
                }
            }
            let mac = self.mac(&rec, "mac", &n.mac);
            if let (Some(address), Some(mac)) = (address, mac) {
                neighbors.push(Neighbor { address, mac });
            }
        }

        let vxlan_port = match h.vxlan_port {
            None => VXLAN_PORT,
            Some(p) => match u16::try_from(p) {
                Ok(p) if p != 0 => p,
                _ => {
                    self.err(&"host", "vxlan_port", format!("{p} is not a UDP port (1..=65535)"));
                    VXLAN_PORT
                }
            },
        };
        let mss_clamp = match h.mss_clamp {
            None | Some(BoolOrNumber::Bool(false)) => MssClamp::Off,
            Some(BoolOrNumber::Bool(true)) => MssClamp::Auto,
            Some(BoolOrNumber::Number(n)) => match u16::try_from(n) {
                Ok(n) if (MSS_CLAMP_MIN..=MSS_CLAMP_MAX).contains(&n) => MssClamp::Max(n),
                _ => {
                    self.err(&"host", "mss_clamp", format!("{n} is not a TCP MSS to clamp to ({MSS_CLAMP_MIN}..={MSS_CLAMP_MAX}), nor true or false"));
                    MssClamp::Off
                }
            },
        };
        Host { name: h.name.clone(), provider_addresses: pas, provider_routes: routes, neighbors, vxlan_port, mss_clamp }
    }

    fn ports(&mut self, f: &PolicyFile) -> (Vec<Port>, Vec<PortInfo>) {
        if f.ports.len() > MAX_PORTS {
            self.err(&"ports", "ports", format!("{} ports; at most {MAX_PORTS} are supported", f.ports.len()));
        }
        let mut ports = Vec::new();
        let mut infos = Vec::new();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut devargs: HashMap<&str, usize> = HashMap::new();
        let mut vm_macs: HashMap<(Vsid, EthernetAddress), usize> = HashMap::new();
        for (i, p) in f.ports.iter().enumerate() {
            let rec = format!("ports[{i}] ({})", show(&p.name));
            let mut ok = self.nonempty(&rec, "name", &p.name);
            if ok {
                if let Some(j) = names.insert(p.name.as_str(), i) {
                    self.err(&rec, "name", format!("port name '{}' is already used by ports[{j}]", show(&p.name)));
                    ok = false;
                }
            }
            if self.nonempty(&rec, "devargs", &p.devargs) {
                if let Some(j) = devargs.insert(p.devargs.trim(), i) {
                    self.err(&rec, "devargs", format!("devargs '{}' are already used by ports[{j}]", show(&p.devargs)));
                    ok = false;
                }
            } else {
                ok = false;
            }
            let role = parse_role(&p.role);
            if role.is_none() {
                self.err(&rec, "role", format!("'{}' is not a port role (expected vm or uplink)", show(&p.role)));
                ok = false;
            }
            let mut vsid = None;
            if let Some(n) = p.vsid {
                if role == Some(PortRole::Uplink) {
                    self.err(&rec, "vsid", "an uplink port carries no VSID");
                    ok = false;
                } else {
                    vsid = self.vsid(&rec, "vsid", n);
                    ok &= vsid.is_some();
                }
            } else if role == Some(PortRole::Vm) {
                self.err(&rec, "vsid", "a vm port needs a vsid");
                ok = false;
            }
            let mac = match &p.mac {
                Some(m) => {
                    let mac = self.mac(&rec, "mac", m);
                    ok &= mac.is_some();
                    mac
                }
                None => {
                    if role == Some(PortRole::Vm) {
                        self.err(&rec, "mac", "a vm port needs a mac");
                        ok = false;
                    }
                    None
                }
            };
            if let (Some(PortRole::Vm), Some(v), Some(m)) = (role, vsid, mac) {
                if let Some(j) = vm_macs.insert((v, m), i) {
                    self.err(&rec, "mac", format!("{} is already the MAC of ports[{j}] in VSID {v}", format_mac(&m)));
                    ok = false;
                }
            }
            let mut addresses = Vec::new();
            if role == Some(PortRole::Uplink) && !p.addresses.is_empty() {
                self.err(&rec, "addresses", "an uplink port has no customer addresses");
                ok = false;
            }
            let mut seen_a = HashSet::new();
            for a in &p.addresses {
                match self.unicast_ip(&rec, "addresses", a) {
                    Some(ip) if !seen_a.insert(ip) => {
                        self.err(&rec, "addresses", format!("{ip} is listed twice"));
                        ok = false;
                    }
                    Some(ip) => addresses.push(ip),
                    None => ok = false,
                }
            }
            let mtu = match p.mtu {
                Some(n) => {
                    let m = self.int::<u16>(&rec, "mtu", n, 68, 65535);
                    ok &= m.is_some();
                    m
                }
                None => None,
            };
            infos.push(PortInfo { name: p.name.clone(), role, vsid, mac, addresses: addresses.clone() });
            if let (true, Some(role)) = (ok, role) {
                ports.push(Port { name: p.name.clone(), role, devargs: p.devargs.clone(), vsid, mac, addresses, mtu });
            }
        }
        (ports, infos)
    }

    fn routing_domains(&mut self, f: &PolicyFile) -> Vec<RoutingDomain> {
        let mut out = Vec::new();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut ids: HashMap<String, usize> = HashMap::new();
        for (i, r) in f.routing_domains.iter().enumerate() {
            let rec = format!("routing_domains[{i}] ({})", show(&r.name));
            let mut ok = self.nonempty(&rec, "name", &r.name);
            if ok {
                if let Some(j) = names.insert(r.name.as_str(), i) {
                    self.err(&rec, "name", format!("routing domain '{}' is already declared by routing_domains[{j}]", show(&r.name)));
                    ok = false;
                }
            }
            if let Some(id) = &r.id {
                if !is_guid(id) {
                    self.err(&rec, "id", format!("'{}' is not a GUID (expected {{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}})", show(id)));
                    ok = false;
                } else {
                    let norm = id.trim().trim_start_matches('{').trim_end_matches('}').to_ascii_lowercase();
                    if let Some(j) = ids.insert(norm, i) {
                        self.err(&rec, "id", format!("GUID {} is already the id of routing_domains[{j}]", show(id)));
                        ok = false;
                    }
                }
            }
            if ok {
                out.push(RoutingDomain { name: r.name.clone(), id: r.id.clone() });
            }
        }
        out
    }

    /// Returns the valid subnets and, for every subnet whose VSID parsed, the
    /// VSID's routing domain name and subnet index.
    fn subnets(&mut self, f: &PolicyFile, rd_names: &HashSet<&str>) -> (Vec<VirtualSubnet>, HashMap<Vsid, (String, usize)>) {
        let mut out = Vec::new();
        let mut vsid_rd: HashMap<Vsid, (String, usize)> = HashMap::new();
        // (routing domain, prefix, subnet index) of every valid prefix so far.
        let mut rd_prefixes: Vec<(&str, Prefix, usize)> = Vec::new();
        for (i, s) in f.subnets.iter().enumerate() {
            let rec = format!("subnets[{i}] (vsid {})", s.vsid);
            let mut vsid = self.vsid(&rec, "vsid", s.vsid);
            if let Some(v) = vsid {
                if let Some((_, j)) = vsid_rd.get(&v) {
                    self.err(&rec, "vsid", format!("VSID {v} is already declared by subnets[{j}]; a VSID belongs to one subnet and one routing domain"));
                    vsid = None;
                } else {
                    vsid_rd.insert(v, (s.routing_domain.clone(), i));
                }
            }
            let rd_ok = rd_names.contains(s.routing_domain.as_str());
            if !rd_ok {
                self.err(&rec, "routing_domain", format!("no routing domain is named '{}'", show(&s.routing_domain)));
            }
            let mut prefixes = Vec::new();
            let mut prefixes_ok = true;
            for p in &s.prefixes {
                let Some(px) = self.prefix(&rec, "prefixes", p) else {
                    prefixes_ok = false;
                    continue;
                };
                if let Some((_, other, j)) = rd_prefixes.iter().find(|(rd, q, _)| *rd == s.routing_domain.as_str() && q.overlaps(&px)) {
                    let whose = if *j == i { "this subnet".to_string() } else { format!("subnets[{j}]") };
                    self.err(&rec, "prefixes", format!("{px} overlaps {other} ({whose}) in routing domain '{}'", show(&s.routing_domain)));
                    prefixes_ok = false;
                    continue;
                }
                rd_prefixes.push((s.routing_domain.as_str(), px, i));
                prefixes.push(px);
            }
            let gateway_v4 = match &s.gateway_v4 {
                None => Some(None),
                Some(g) => match g.trim().parse::<Ipv4Addr>() {
                    Err(_) => {
                        self.err(&rec, "gateway_v4", format!("'{}' is not an IPv4 address", show(g)));
                        None
                    }
                    Ok(a) => self.gateway(&rec, "gateway_v4", IpAddr::V4(a), &prefixes, prefixes_ok).then_some(Some(a)),
                },
            };
            let gateway_v6 = match &s.gateway_v6 {
                None => Some(None),
                Some(g) => match g.trim().parse::<Ipv6Addr>() {
                    Err(_) => {
                        self.err(&rec, "gateway_v6", format!("'{}' is not an IPv6 address", show(g)));
                        None
                    }
                    Ok(a) => self.gateway(&rec, "gateway_v6", IpAddr::V6(a), &prefixes, prefixes_ok).then_some(Some(a)),
                },
            };
            let gateway_mac = match (&s.gateway_mac, vsid) {
                (Some(m), _) => self.mac(&rec, "gateway_mac", m),
                (None, Some(v)) => Some(VirtualSubnet::default_gateway_mac(v)),
                (None, None) => None,
            };
            let encap = match s.encap.as_deref().map(str::trim) {
                None | Some("nvgre") => Some(Encap::Nvgre),
                Some("vxlan") => Some(Encap::Vxlan),
                Some(e) => {
                    self.err(&rec, "encap", format!("'{}' is not an encapsulation (nvgre or vxlan)", show(e)));
                    None
                }
            };
            if let (Some(vsid), true, true, Some(gateway_v4), Some(gateway_v6), Some(gateway_mac), Some(encap)) = (vsid, rd_ok, prefixes_ok, gateway_v4, gateway_v6, gateway_mac, encap) {
                out.push(VirtualSubnet { vsid, routing_domain: s.routing_domain.clone(), prefixes, gateway_v4, gateway_v6, gateway_mac, encap });
            }
        }
        (out, vsid_rd)
    }

    fn gateway(&mut self, rec: &dyn Display, field: &str, gw: IpAddr, prefixes: &[Prefix], prefixes_ok: bool) -> bool {
        if !is_unicast_ip(&gw) {
            self.err(rec, field, format!("{gw} is not a unicast address"));
            return false;
        }
        if prefixes.iter().any(|p| p.contains(gw)) {
            return true;
        }
        if prefixes_ok {
            let list: Vec<String> = prefixes.iter().map(ToString::to_string).collect();
            let list = if list.is_empty() { "(none)".to_string() } else { list.join(", ") };
            self.err(rec, field, format!("gateway {gw} lies outside the subnet's prefixes {list}"));
        }
        false
    }

    fn vm_port_subnets(&mut self, infos: &[PortInfo], vsid_rd: &HashMap<Vsid, (String, usize)>, subnets: &[VirtualSubnet]) {
        for (i, info) in infos.iter().enumerate() {
            let (Some(PortRole::Vm), Some(v)) = (info.role, info.vsid) else {
                continue;
            };
            let rec = format!("ports[{i}] ({})", show(&info.name));
            if !vsid_rd.contains_key(&v) {
                self.err(&rec, "vsid", format!("no subnet declares VSID {v}"));
            }
            if let (Some(m), Some(s)) = (info.mac, subnets.iter().find(|s| s.vsid == v)) {
                if m == s.gateway_mac {
                    self.err(&rec, "mac", format!("{} is the gateway MAC of VSID {v}", format_mac(&m)));
                }
            }
        }
    }

    fn lookup(&mut self, f: &PolicyFile, host: &Host, ports: &[PortInfo], vsid_rd: &HashMap<Vsid, (String, usize)>, subnets: &[VirtualSubnet]) -> (Vec<LookupRecord>, Vec<LookupInfo>) {
        let local_pas: Vec<IpAddr> = host.provider_addresses.iter().map(|p| p.address).collect();
        let mut out = Vec::new();
        let mut infos = Vec::new();
        let mut cas: HashMap<(Vsid, IpAddr), usize> = HashMap::new();
        // (vsid, mac, is_ipv4 PA) → (PA, record index)
        let mut vm_pa: HashMap<(Vsid, EthernetAddress, bool), (IpAddr, usize)> = HashMap::new();
        let subnet_of: HashMap<Vsid, &VirtualSubnet> = subnets.iter().map(|s| (s.vsid, s)).collect();
        for (i, r) in f.lookup.iter().enumerate() {
            // Formatted only when reported.
            let rec = LookupName(i, &r.ca, r.vsid);
            let mut ok = true;
            let kind = match r.kind.as_deref().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
                None | Some("static") => Some(RecordType::Static),
                Some("l2only") | Some("l2_only") => Some(RecordType::L2Only),
                Some("gateway_wildcard") | Some("gatewaywildcard") => Some(RecordType::GatewayWildcard),
                Some("dynamic") => {
                    self.err(&rec, "type", "type 'dynamic' is not supported (use static)");
                    None
                }
                Some(_) => {
                    self.err(&rec, "type", format!("'{}' is not a record type (expected static, l2only or gateway_wildcard)", show(r.kind.as_deref().unwrap_or_default())));
                    None
                }
            };
            let rule = match r.rule.as_deref().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
                None | Some("encap") => Some(Rule::Encap),
                Some("none") => Some(Rule::None),
                Some("nat") => {
                    self.err(&rec, "rule", "rule 'nat' (IP address rewrite) is not supported; use encap");
                    None
                }
                Some(_) => {
                    self.err(&rec, "rule", format!("'{}' is not a rule (expected encap or none)", show(r.rule.as_deref().unwrap_or_default())));
                    None
                }
            };
            let mut ca = self.ip(&rec, "ca", &r.ca);
            if let Some(c) = ca {
                let wildcard = kind == Some(RecordType::GatewayWildcard);
                if wildcard && !c.is_unspecified() {
                    self.err(&rec, "ca", format!("a gateway_wildcard record's CA must be 0.0.0.0 or ::, not {c}"));
                    ca = None;
                } else if !wildcard && kind.is_some() && !is_unicast_ip(&c) {
                    self.err(&rec, "ca", format!("{c} is not a unicast address (only gateway_wildcard records use 0.0.0.0 or ::)"));
                    ca = None;
                }
            }
            let vsid = self.vsid(&rec, "vsid", r.vsid);
            let mac = self.mac(&rec, "mac", &r.mac);
            let mut pa = self.unicast_ip(&rec, "pa", &r.pa);
            ok &= kind.is_some() && rule.is_some() && ca.is_some() && vsid.is_some() && mac.is_some() && pa.is_some();

            if let Some(v) = vsid {
                if !vsid_rd.contains_key(&v) {
                    self.err(&rec, "vsid", format!("no subnet declares VSID {v}"));
                    ok = false;
                }
                let subnet = subnet_of.get(&v).copied();
                if let (Some(c), Some(s)) = (ca, subnet) {
                    if s.gateway_v4.map(IpAddr::V4) == Some(c) || s.gateway_v6.map(IpAddr::V6) == Some(c) {
                        self.err(&rec, "ca", format!("{c} is the gateway address of VSID {v}, which the switch answers itself"));
                        ok = false;
                    }
                }
                if let (Some(m), Some(s)) = (mac, subnet) {
                    if m == s.gateway_mac {
                        self.err(&rec, "mac", format!("{} is the gateway MAC of VSID {v}", format_mac(&m)));
                        ok = false;
                    }
                }
                if let Some(c) = ca {
                    if let Some(j) = cas.insert((v, c), i) {
                        self.err(&rec, "ca", format!("CA {c} in VSID {v} is already mapped by lookup[{j}]"));
                        ok = false;
                    }
                }
            }

            if let (Some(Rule::None), Some(c), Some(p)) = (rule, ca, pa) {
                if c != p {
                    self.err(&rec, "pa", format!("rule none sends without encapsulation, so pa must equal the CA {c}, not {p}"));
                    ok = false;
                }
            }

            if let (Some(Rule::Encap), Some(v), Some(m), Some(p)) = (rule, vsid, mac, pa) {
                if let Some((other, j)) = vm_pa.get(&(v, m, p.is_ipv4())) {
                    if *other != p {
                        self.err(&rec, "pa", format!("MAC {} in VSID {v} is at PA {other} per lookup[{j}]; one VM cannot be on two hosts", format_mac(&m)));
                        ok = false;
                        pa = None;
                    }
                } else {
                    vm_pa.insert((v, m, p.is_ipv4()), (p, i));
                }
                if pa.is_some() {
                    if !local_pas.is_empty() && !local_pas.iter().any(|l| l.is_ipv4() == p.is_ipv4()) {
                        self.err(&rec, "pa", format!("{p} is {} but this host has no {} provider address to encapsulate from", family(&p), family(&p)));
                        ok = false;
                    }
                    let local_port = ports.iter().find(|pi| pi.role == Some(PortRole::Vm) && pi.vsid == Some(v) && pi.mac == Some(m));
                    let pa_local = local_pas.contains(&p);
                    match (local_port, pa_local) {
                        // Shared records: this port's VM is at another host now (or not yet here).
                        (Some(_), false) if self.options.shared_records => {}
                        (Some(port), false) if !local_pas.is_empty() => {
                            let list: Vec<String> = local_pas.iter().map(ToString::to_string).collect();
                            self.err(
                                &rec,
                                "pa",
                                format!("MAC {} is local port '{}' in VSID {v}, so pa must be one of this host's provider addresses ({}), not {p}", format_mac(&m), show(&port.name), list.join(", ")),
                            );
                            ok = false;
                        }
                        (None, true) => {
                            self.err(&rec, "pa", format!("PA {p} is this host's but no local port in VSID {v} has MAC {}", format_mac(&m)));
                            ok = false;
                        }
                        _ => {}
                    }
                }
            }

            infos.push(LookupInfo { vsid, ca, mac, pa, rule });
            if let (true, Some(ca), Some(vsid), Some(mac), Some(pa), Some(rule), Some(kind)) = (ok, ca, vsid, mac, pa, rule, kind) {
                out.push(LookupRecord { ca, vsid, mac, pa, rule, kind, customer_id: r.customer_id.clone(), vm_name: r.vm_name.clone(), flow_entropy: r.flow_id.unwrap_or(true) });
            }
        }
        (out, infos)
    }

    /// Every VM port address must be covered by a lookup record with the
    /// port's VSID and MAC and a local PA (or rule none; any PA with shared records).
    fn port_coverage(&mut self, ports: &[PortInfo], lookup: &[LookupInfo], host: &Host) {
        let shared = self.options.shared_records;
        for (i, p) in ports.iter().enumerate() {
            let (Some(PortRole::Vm), Some(v), Some(m)) = (p.role, p.vsid, p.mac) else {
                continue;
            };
            for a in &p.addresses {
                let covered = lookup.iter().any(|r| {
                    agrees(r.vsid, v)
                        && agrees(r.ca, *a)
                        && agrees(r.mac, m)
                        && (r.rule.is_none()
                            || r.rule == Some(Rule::None)
                            || shared
                            || match r.pa {
                                None => true,
                                Some(pa) => host.is_local_pa(pa),
                            })
                });
                if !covered {
                    self.err(
                        &format!("ports[{i}] ({})", show(&p.name)),
                        "addresses",
                        if shared {
                            format!("{a} has no lookup record with VSID {v} and MAC {} (anti-spoofing needs one)", format_mac(&m))
                        } else {
                            format!("{a} has no lookup record with VSID {v}, MAC {} and a provider address of this host (anti-spoofing needs one)", format_mac(&m))
                        },
                    );
                }
            }
        }
    }

    fn customer_routes(&mut self, f: &PolicyFile, rd_names: &HashSet<&str>, vsid_rd: &HashMap<Vsid, (String, usize)>) -> Vec<CustomerRoute> {
        let mut out = Vec::new();
        let mut seen: HashMap<(&str, Vsid, Prefix, IpAddr), usize> = HashMap::new();
        for (i, r) in f.customer_routes.iter().enumerate() {
            let rec = format!("customer_routes[{i}] (rd {}, vsid {}, {})", show(&r.routing_domain), r.vsid, show(&r.destination));
            let mut ok = true;
            if !rd_names.contains(r.routing_domain.as_str()) {
                self.err(&rec, "routing_domain", format!("no routing domain is named '{}'", show(&r.routing_domain)));
                ok = false;
            }
            let vsid = self.vsid(&rec, "vsid", r.vsid);
            if let Some(v) = vsid {
                match vsid_rd.get(&v) {
                    None => {
                        self.err(&rec, "vsid", format!("no subnet declares VSID {v}"));
                        ok = false;
                    }
                    Some((rd, j)) if *rd != r.routing_domain => {
                        self.err(&rec, "vsid", format!("VSID {v} belongs to routing domain '{}' (subnets[{j}]), not '{}'; a VSID is in one routing domain", show(rd), show(&r.routing_domain)));
                        ok = false;
                    }
                    Some(_) => {}
                }
            }
            let destination = self.prefix(&rec, "destination", &r.destination);
            let mut next_hop = self.ip(&rec, "next_hop", &r.next_hop);
            if let Some(nh) = next_hop {
                if destination.is_some_and(|d| d.is_ipv4() != nh.is_ipv4()) {
                    self.err(&rec, "next_hop", format!("{nh} is {} but the destination is not", family(&nh)));
                    next_hop = None;
                } else if !nh.is_unspecified() && !is_unicast_ip(&nh) {
                    self.err(&rec, "next_hop", format!("{nh} is not a unicast address"));
                    next_hop = None;
                }
            }
            let metric = self.int::<u32>(&rec, "metric", r.metric, 0, i64::from(u32::MAX));
            if let (Some(v), Some(d), Some(nh)) = (vsid, destination, next_hop) {
                if let Some(j) = seen.insert((r.routing_domain.as_str(), v, d, nh), i) {
                    self.err(&rec, "destination", format!("the same route is already declared by customer_routes[{j}]"));
                    ok = false;
                }
            }
            if let (true, Some(vsid), Some(destination), Some(next_hop), Some(metric)) = (ok, vsid, destination, next_hop, metric) {
                out.push(CustomerRoute { routing_domain: r.routing_domain.clone(), vsid, destination, next_hop, metric });
            }
        }
        out
    }

    fn acl(&mut self, f: &PolicyFile, vsid_rd: &HashMap<Vsid, (String, usize)>) -> Vec<AclRule> {
        let mut out = Vec::new();
        for (i, a) in f.acl.iter().enumerate() {
            let rec = format!("acl[{i}] (vsid {}, priority {})", a.vsid, a.priority);
            let mut ok = true;
            let vsid = self.vsid(&rec, "vsid", a.vsid);
            if let Some(v) = vsid {
                if !vsid_rd.contains_key(&v) {
                    self.err(&rec, "vsid", format!("no subnet declares VSID {v}"));
                    ok = false;
                }
            }
            let priority = self.int::<u32>(&rec, "priority", a.priority, 0, i64::from(u32::MAX));
            let direction = match a.direction.as_deref().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
                None | Some("both") => Some(Direction::Both),
                Some("in") => Some(Direction::In),
                Some("out") => Some(Direction::Out),
                Some(_) => {
                    self.err(&rec, "direction", format!("'{}' is not a direction (expected in, out or both)", show(a.direction.as_deref().unwrap_or_default())));
                    None
                }
            };
            let action = match a.action.trim().to_ascii_lowercase().as_str() {
                "allow" => Some(AclAction::Allow),
                "deny" => Some(AclAction::Deny),
                _ => {
                    self.err(&rec, "action", format!("'{}' is not an action (expected allow or deny)", show(&a.action)));
                    None
                }
            };
            let protocol = match &a.protocol {
                None => Some(None),
                Some(TextOrNumber::Number(n)) => self.int::<u8>(&rec, "protocol", *n, 0, 255).map(Some),
                Some(TextOrNumber::Text(t)) => match parse_protocol(t) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        self.err(&rec, "protocol", e.to_string());
                        None
                    }
                },
            };
            let src = match &a.src {
                None => Some(None),
                Some(s) => self.prefix(&rec, "src", s).map(Some),
            };
            let dst = match &a.dst {
                None => Some(None),
                Some(s) => self.prefix(&rec, "dst", s).map(Some),
            };
            let src_ports = self.ports_field(&rec, "src_ports", a.src_ports.as_ref());
            let dst_ports = self.ports_field(&rec, "dst_ports", a.dst_ports.as_ref());

            // Cross-field checks.
            if let (Some(Some(s)), Some(Some(d))) = (src, dst) {
                if s.is_ipv4() != d.is_ipv4() {
                    self.err(&rec, "dst", format!("{d} and src {s} are of different address families"));
                    ok = false;
                }
            }
            if let Some(Some(p)) = protocol {
                for (field, px) in [("src", src), ("dst", dst)] {
                    if let Some(Some(px)) = px {
                        if p == PROTO_ICMP && !px.is_ipv4() {
                            self.err(&rec, field, format!("{px} is IPv6 but protocol icmp is IPv4 only (use icmpv6)"));
                            ok = false;
                        } else if p == PROTO_ICMPV6 && px.is_ipv4() {
                            self.err(&rec, field, format!("{px} is IPv4 but protocol icmpv6 is IPv6 only (use icmp)"));
                            ok = false;
                        }
                    }
                }
                if p != PROTO_TCP && p != PROTO_UDP {
                    for (field, given) in [("src_ports", &a.src_ports), ("dst_ports", &a.dst_ports)] {
                        if given.is_some() {
                            self.err(&rec, field, format!("ports apply only to tcp and udp, not protocol {}", crate::addr::format_protocol(Some(p))));
                            ok = false;
                        }
                    }
                }
            }
            if let (true, Some(vsid), Some(priority), Some(direction), Some(action), Some(protocol), Some(src), Some(dst), Some(src_ports), Some(dst_ports)) =
                (ok, vsid, priority, direction, action, protocol, src, dst, src_ports, dst_ports)
            {
                out.push(AclRule { vsid, priority, direction, action, protocol, src, dst, src_ports, dst_ports });
            }
        }
        out
    }

    /// `None` = malformed (reported); `Some(None)` = absent.
    #[allow(clippy::option_option)]
    fn ports_field(&mut self, rec: &str, field: &str, v: Option<&TextOrNumber>) -> Option<Option<(u16, u16)>> {
        let Some(v) = v else { return Some(None) };
        match parse_port_range(&v.as_text()) {
            Ok(r) => Some(Some(r)),
            Err(e) => {
                self.err(&rec, field, e.to_string());
                None
            }
        }
    }
}

/// A lookup record's name in errors: `lookup[i] (ca C, vsid V)`.
struct LookupName<'a>(usize, &'a str, i64);

impl Display for LookupName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lookup[{}] (ca {}, vsid {})", self.0, show(self.1), self.2)
    }
}

fn parse_role(s: &str) -> Option<PortRole> {
    match s.trim().to_ascii_lowercase().as_str() {
        "vm" => Some(PortRole::Vm),
        "uplink" => Some(PortRole::Uplink),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
