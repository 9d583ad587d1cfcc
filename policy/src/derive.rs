//! One host's policy derived from another's by typed edits.
//!
//! Contract: [`derive`] takes a base policy file (the example host, or any
//! host's file) and applies [`Edits`] in a fixed order, each naming what it
//! changes; an edit that names something the base lacks (a port, a VM, a
//! subnet) is an error, never a silent no-op. The result is validated by the
//! policy file's own rules ([`crate::validate`]), so what `derive` returns is a
//! policy the switch accepts. This is how the namespace testbed writes each
//! host's policy (`hnvswitch derive-policy`), and how an operator can stamp a
//! template onto many hosts.
//!
//! Order of the edits, and the error each returns:
//! 1. host name, then the first provider address and its MAC
//!    ([`DeriveError::NoProviderAddress`]);
//! 2. ports: with [`Edits::ports`] set, only the named ports stay, with the
//!    given devargs ([`DeriveError::UnknownPort`]); then MTUs and parking
//!    ([`DeriveError::UnknownPort`]);
//! 3. lookup records of a named VM move to a PA ([`DeriveError::UnknownVm`]);
//! 4. a subnet's encapsulation ([`DeriveError::UnknownSubnet`]);
//! 5. static neighbors: cleared and/or replaced;
//! 6. fragments are appended (ports, routing domains, subnets, lookup records,
//!    customer routes, ACL rules, static neighbors);
//! 7. the whole is validated ([`DeriveError::Invalid`]).

use std::net::IpAddr;

use serde::Deserialize;

use crate::addr::format_mac;
use crate::file::{AclFile, CustomerRouteFile, LookupFile, NeighborFile, PolicyFile, PortFile, RoutingDomainFile, SubnetFile};
use crate::{Encap, EthernetAddress, Policy, PolicyError};

/// What to change in the base policy. Empty fields change nothing.
#[derive(Debug, Clone, Default)]
pub struct Edits {
    /// `[host] name`.
    pub host_name: Option<String>,
    /// The first provider address (the lookup records of this host's VMs do
    /// not follow it: move them with [`Edits::vm_pa`]).
    pub pa: Option<IpAddr>,
    /// The first provider address's MAC.
    pub pa_mac: Option<EthernetAddress>,
    /// Keep only these ports (by name), each with these devargs; `None` keeps all.
    pub ports: Option<Vec<(String, String)>>,
    /// Port MTUs.
    pub mtu: Vec<(String, u16)>,
    /// VM ports whose VM runs on another host: a placeholder MAC and no addresses.
    pub park: Vec<(String, EthernetAddress)>,
    /// Every lookup record of this VM (`vm_name`) now points at this PA.
    pub vm_pa: Vec<(String, IpAddr)>,
    /// A subnet's encapsulation.
    pub encap: Vec<(u32, Encap)>,
    /// Drop the base's static neighbors.
    pub clear_neighbors: bool,
    /// Static neighbors to add (after clearing, if asked).
    pub neighbors: Vec<(IpAddr, EthernetAddress)>,
    /// Policy fragments appended after the edits.
    pub fragments: Vec<Fragment>,
}

/// A piece of a policy file: every array of a policy file but `[host]`, plus
/// `[[host.neighbors]]` written as `[[neighbors]]`. Unknown keys are refused.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fragment {
    /// `[[ports]]`.
    #[serde(default)]
    pub ports: Vec<PortFile>,
    /// `[[routing_domains]]`.
    #[serde(default)]
    pub routing_domains: Vec<RoutingDomainFile>,
    /// `[[subnets]]`.
    #[serde(default)]
    pub subnets: Vec<SubnetFile>,
    /// `[[lookup]]`.
    #[serde(default)]
    pub lookup: Vec<LookupFile>,
    /// `[[customer_routes]]`.
    #[serde(default)]
    pub customer_routes: Vec<CustomerRouteFile>,
    /// `[[acl]]`.
    #[serde(default)]
    pub acl: Vec<AclFile>,
    /// Static provider neighbors.
    #[serde(default)]
    pub neighbors: Vec<NeighborFile>,
}

impl Fragment {
    /// Parses a fragment; `origin` names it in the error.
    pub fn parse(text: &str, origin: &str) -> Result<Fragment, DeriveError> {
        toml::from_str(text).map_err(|e| DeriveError::Fragment { origin: origin.to_string(), message: e.message().to_string() })
    }
}

/// Why a policy could not be derived.
#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    /// The base has no provider address to replace.
    #[error("the base policy has no [[host.provider_addresses]] to replace")]
    NoProviderAddress,
    /// An edit names a port the base lacks.
    #[error("no port named {0:?} in the base policy")]
    UnknownPort(String),
    /// An edit names a VM no lookup record carries.
    #[error("no lookup record with vm_name {0:?} in the base policy")]
    UnknownVm(String),
    /// An edit names a subnet the base lacks.
    #[error("no subnet with VSID {0} in the base policy")]
    UnknownSubnet(u32),
    /// A fragment is not a policy fragment.
    #[error("{origin}: not a policy fragment: {message}")]
    Fragment {
        /// The fragment's name.
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// The result breaks the policy file's rules.
    #[error(transparent)]
    Invalid(#[from] PolicyError),
}

/// Reads a base policy file's text (its shape only: [`derive`] validates the
/// result); `origin` names it in the error.
pub fn read_base(text: &str, origin: &str) -> Result<PolicyFile, DeriveError> {
    crate::bulk::read(text).map_err(|e| DeriveError::Invalid(PolicyError::from_toml(&e, text, origin)))
}

/// Applies `edits` to `base` and validates the result; `origin` names the
/// result in validation errors.
pub fn derive(mut base: PolicyFile, edits: &Edits, origin: &str) -> Result<(PolicyFile, Policy), DeriveError> {
    host(&mut base, edits)?;
    ports(&mut base, edits)?;
    vms(&mut base, edits)?;
    subnets(&mut base, edits)?;
    neighbors(&mut base, edits);
    for f in &edits.fragments {
        append(&mut base, f.clone());
    }
    let policy = crate::validate(&base, origin)?;
    Ok((base, policy))
}

/// Step 1: host name, first provider address and MAC.
fn host(p: &mut PolicyFile, e: &Edits) -> Result<(), DeriveError> {
    if let Some(name) = &e.host_name {
        p.host.name.clone_from(name);
    }
    if e.pa.is_some() || e.pa_mac.is_some() {
        let a = p.host.provider_addresses.first_mut().ok_or(DeriveError::NoProviderAddress)?;
        if let Some(pa) = e.pa {
            a.address = pa.to_string();
        }
        if let Some(mac) = &e.pa_mac {
            a.mac = format_mac(mac);
        }
    }
    Ok(())
}

/// Step 2: which ports stay, their devargs, MTUs, parked VM ports.
fn ports(p: &mut PolicyFile, e: &Edits) -> Result<(), DeriveError> {
    if let Some(keep) = &e.ports {
        if let Some((name, _)) = keep.iter().find(|(n, _)| !p.ports.iter().any(|port| &port.name == n)) {
            return Err(DeriveError::UnknownPort(name.clone()));
        }
        p.ports.retain(|port| keep.iter().any(|(n, _)| n == &port.name));
        for port in &mut p.ports {
            if let Some((_, devargs)) = keep.iter().find(|(n, _)| n == &port.name) {
                port.devargs.clone_from(devargs);
            }
        }
    }
    for (name, mtu) in &e.mtu {
        port_mut(p, name)?.mtu = Some(i64::from(*mtu));
    }
    for (name, mac) in &e.park {
        let port = port_mut(p, name)?;
        port.mac = Some(format_mac(mac));
        port.addresses.clear();
    }
    Ok(())
}

fn port_mut<'a>(p: &'a mut PolicyFile, name: &str) -> Result<&'a mut PortFile, DeriveError> {
    p.ports.iter_mut().find(|port| port.name == name).ok_or_else(|| DeriveError::UnknownPort(name.to_string()))
}

/// Step 3: a VM's records move to a PA.
fn vms(p: &mut PolicyFile, e: &Edits) -> Result<(), DeriveError> {
    for (vm, pa) in &e.vm_pa {
        let mut found = false;
        for r in p.lookup.iter_mut().filter(|r| r.vm_name.as_deref() == Some(vm.as_str())) {
            r.pa = pa.to_string();
            found = true;
        }
        if !found {
            return Err(DeriveError::UnknownVm(vm.clone()));
        }
    }
    Ok(())
}

/// Step 4: a subnet's encapsulation.
fn subnets(p: &mut PolicyFile, e: &Edits) -> Result<(), DeriveError> {
    for (vsid, encap) in &e.encap {
        let s = p.subnets.iter_mut().find(|s| s.vsid == i64::from(*vsid)).ok_or(DeriveError::UnknownSubnet(*vsid))?;
        s.encap = (*encap != Encap::Nvgre).then(|| encap.as_str().to_string());
    }
    Ok(())
}

/// Step 5: static neighbors.
fn neighbors(p: &mut PolicyFile, e: &Edits) {
    if e.clear_neighbors {
        p.host.neighbors.clear();
    }
    p.host.neighbors.extend(e.neighbors.iter().map(|(address, mac)| NeighborFile { address: address.to_string(), mac: format_mac(mac) }));
}

/// Step 6: a fragment's tables are appended.
fn append(p: &mut PolicyFile, f: Fragment) {
    p.ports.extend(f.ports);
    p.routing_domains.extend(f.routing_domains);
    p.subnets.extend(f.subnets);
    p.lookup.extend(f.lookup);
    p.customer_routes.extend(f.customer_routes);
    p.acl.extend(f.acl);
    p.host.neighbors.extend(f.neighbors);
}

/// How a VM's NIC must be set up to use a VM port: its MAC, its address with
/// the subnet's prefix length, and the subnet's gateway (`hnvswitch vm-nic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmNic {
    /// The port's MAC.
    pub mac: EthernetAddress,
    /// The port's first address and the length of its subnet prefix holding it.
    pub address: Option<(IpAddr, u8)>,
    /// The subnet's gateway of that address's family.
    pub gateway: Option<IpAddr>,
}

impl std::fmt::Display for VmNic {
    /// `MAC ADDRESS/LEN GATEWAY`, with `-` for what is absent.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", format_mac(&self.mac))?;
        match self.address {
            Some((a, len)) => write!(f, " {a}/{len}")?,
            None => f.write_str(" -")?,
        }
        match self.gateway {
            Some(g) => write!(f, " {g}"),
            None => f.write_str(" -"),
        }
    }
}

/// The NIC set-up for VM port `port` of `policy`.
pub fn vm_nic(policy: &Policy, port: &str) -> Result<VmNic, DeriveError> {
    let p = policy.ports.iter().find(|p| p.name == port && p.role == crate::PortRole::Vm).ok_or_else(|| DeriveError::UnknownPort(port.to_string()))?;
    let mac = p.mac.ok_or_else(|| DeriveError::UnknownPort(port.to_string()))?;
    let subnet = policy.subnets.iter().find(|s| Some(s.vsid) == p.vsid);
    let Some(&ip) = p.addresses.first() else {
        return Ok(VmNic { mac, address: None, gateway: None });
    };
    let len = subnet.and_then(|s| s.prefixes.iter().find(|x| x.contains(ip))).map_or(if ip.is_ipv4() { 32 } else { 128 }, |x| x.len());
    let gateway = subnet.and_then(|s| if ip.is_ipv4() { s.gateway_v4.map(IpAddr::V4) } else { s.gateway_v6.map(IpAddr::V6) });
    Ok(VmNic { mac, address: Some((ip, len)), gateway })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::parse_mac;

    fn base() -> PolicyFile {
        crate::bulk::read(crate::example::BLUE_RED_HOST1).expect("example parses")
    }

    fn mac(s: &str) -> EthernetAddress {
        parse_mac(s).expect("mac")
    }

    #[test]
    fn no_edits_is_the_base() {
        let (f, p) = derive(base(), &Edits::default(), "t").expect("derive");
        assert_eq!(f, base());
        assert_eq!(p, crate::parse(crate::example::BLUE_RED_HOST1, "t").expect("parse"));
    }

    #[test]
    fn edits_apply_in_order() {
        let b = base();
        let uplink = b.ports.iter().find(|p| p.role == "uplink").expect("uplink").name.clone();
        let vm = b.ports.iter().find(|p| p.role == "vm").expect("vm").name.clone();
        let vm_name = b.lookup.iter().find_map(|r| r.vm_name.clone()).expect("a named VM");
        let vsid = u32::try_from(b.subnets[0].vsid).expect("vsid");
        let e = Edits {
            host_name: Some("h9".into()),
            pa: Some("192.168.4.99".parse().expect("ip")),
            pa_mac: Some(mac("02:00:00:00:00:99")),
            ports: Some(vec![(uplink.clone(), "net_null0".into()), (vm.clone(), "net_null1".into())]),
            mtu: vec![(uplink.clone(), 1600)],
            park: vec![(vm.clone(), mac("02:00:00:00:99:07"))],
            vm_pa: vec![(vm_name.clone(), "192.168.4.77".parse().expect("ip"))],
            encap: vec![(vsid, Encap::Vxlan)],
            clear_neighbors: true,
            neighbors: vec![("192.168.4.77".parse().expect("ip"), mac("02:00:00:00:00:77"))],
            fragments: vec![Fragment::parse("[[neighbors]]\naddress = \"192.168.4.78\"\nmac = \"02:00:00:00:00:78\"\n", "frag").expect("fragment")],
        };
        let (f, p) = derive(b, &e, "t").expect("derive");
        assert_eq!(f.host.name, "h9");
        assert_eq!(f.host.provider_addresses[0].address, "192.168.4.99");
        assert_eq!(f.host.provider_addresses[0].mac, "02:00:00:00:00:99");
        assert_eq!(f.ports.len(), 2);
        assert_eq!(f.ports.iter().find(|p| p.name == uplink).expect("uplink").mtu, Some(1600));
        let parked = f.ports.iter().find(|p| p.name == vm).expect("vm");
        assert_eq!((parked.devargs.as_str(), parked.mac.as_deref(), parked.addresses.len()), ("net_null1", Some("02:00:00:00:99:07"), 0));
        assert!(f.lookup.iter().filter(|r| r.vm_name.as_deref() == Some(vm_name.as_str())).all(|r| r.pa == "192.168.4.77"));
        assert_eq!(f.subnets[0].encap.as_deref(), Some("vxlan"));
        let n: Vec<&str> = f.host.neighbors.iter().map(|n| n.address.as_str()).collect();
        assert_eq!(n, ["192.168.4.77", "192.168.4.78"]);
        assert_eq!(p.host.name, "h9");
    }

    #[test]
    fn names_the_base_lacks_are_errors() {
        let cases: [(Edits, &str); 4] = [
            (Edits { ports: Some(vec![("nope".into(), "x".into())]), ..Edits::default() }, "no port named \"nope\""),
            (Edits { mtu: vec![("nope".into(), 1500)], ..Edits::default() }, "no port named \"nope\""),
            (Edits { vm_pa: vec![("Nobody".into(), "10.1.1.1".parse().expect("ip"))], ..Edits::default() }, "no lookup record with vm_name \"Nobody\""),
            (Edits { encap: vec![(4242, Encap::Vxlan)], ..Edits::default() }, "no subnet with VSID 4242"),
        ];
        for (e, want) in cases {
            let err = derive(base(), &e, "t").expect_err(want).to_string();
            assert!(err.contains(want), "{err} should say {want}");
        }
    }

    #[test]
    fn the_result_is_validated() {
        // A second record for an existing (VSID, CA) breaks the file's rules.
        let b = base();
        let r = &b.lookup[0];
        let dup = format!("[[lookup]]\nca = \"{}\"\nvsid = {}\nmac = \"00:15:5d:09:09:09\"\npa = \"192.168.4.1\"\n", r.ca, r.vsid);
        let e = Edits { fragments: vec![Fragment::parse(&dup, "dup").expect("fragment")], ..Edits::default() };
        assert!(matches!(derive(b, &e, "t"), Err(DeriveError::Invalid(_))));
    }

    #[test]
    fn vm_nic_reads_port_and_subnet() {
        let p = crate::parse(crate::example::BLUE_RED_HOST1, "t").expect("parse");
        let vm = p.ports.iter().find(|x| x.role == crate::PortRole::Vm && !x.addresses.is_empty()).expect("a VM port");
        let nic = vm_nic(&p, &vm.name).expect("nic");
        assert_eq!(nic.mac, vm.mac.expect("mac"));
        let (ip, len) = nic.address.expect("address");
        assert_eq!(ip, vm.addresses[0]);
        let s = p.subnets.iter().find(|s| Some(s.vsid) == vm.vsid).expect("subnet");
        assert!(s.prefixes.iter().any(|x| x.contains(ip) && x.len() == len));
        assert_eq!(nic.gateway, s.gateway_v4.map(IpAddr::V4));
        assert!(matches!(vm_nic(&p, "nope"), Err(DeriveError::UnknownPort(_))));
        let uplink = p.ports.iter().find(|x| x.role == crate::PortRole::Uplink).expect("uplink");
        assert!(vm_nic(&p, &uplink.name).is_err(), "an uplink is no VM NIC");
    }

    #[test]
    fn fragments_refuse_unknown_keys_and_host() {
        assert!(Fragment::parse("[host]\nname = \"x\"\n", "f").is_err());
        assert!(Fragment::parse("[[lookup]]\nca = \"10.0.0.1\"\nbogus = 1\n", "f").is_err());
    }
}
