//! The validated, typed policy model.
//!
//! Contract: a [`Policy`] returned by [`crate::parse`] / [`crate::load`] has
//! passed every check in [`crate::validate`](mod@crate::validate): every VSID is in range, every
//! name reference resolves, every MAC is a unicast station address, every
//! prefix has zero host bits, every VSID belongs to exactly one routing domain
//! (declared by exactly one subnet), and `acl` is sorted by `(vsid, priority)`
//! stably (file order breaks ties). Lists other than `acl` keep file order.
//!
//! The fields are public so that tests and tools can build policies by hand;
//! a hand-built policy carries no guarantee until it has been through
//! `parse(&to_toml(&p), ..)`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hnv_wire::EthernetAddress;

pub use crate::addr::Prefix;
use crate::addr::{PROTO_TCP, PROTO_UDP};
pub use crate::vsid::Vsid;

/// The whole virtualization policy of one host.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// This host: its provider addresses, provider routes and static neighbors.
    pub host: Host,
    /// Switch ports (VM ports and uplinks).
    pub ports: Vec<Port>,
    /// Routing domains (tenant isolation boundaries).
    pub routing_domains: Vec<RoutingDomain>,
    /// Virtual subnets: each VSID, its routing domain, on-link prefixes and gateway.
    pub subnets: Vec<VirtualSubnet>,
    /// Lookup records: (VSID, CA) → MAC, PA.
    pub lookup: Vec<LookupRecord>,
    /// Customer routes within routing domains.
    pub customer_routes: Vec<CustomerRoute>,
    /// ACL rules, sorted by `(vsid, priority)`, ties in file order.
    pub acl: Vec<AclRule>,
}

impl Policy {
    /// The subnet declaring `vsid`, if any.
    pub fn subnet(&self, vsid: Vsid) -> Option<&VirtualSubnet> {
        self.subnets.iter().find(|s| s.vsid == vsid)
    }

    /// The name of the routing domain `vsid` belongs to, if declared.
    pub fn routing_domain_of(&self, vsid: Vsid) -> Option<&str> {
        self.subnet(vsid).map(|s| s.routing_domain.as_str())
    }

    /// The port called `name`, if any.
    pub fn port(&self, name: &str) -> Option<&Port> {
        self.ports.iter().find(|p| p.name == name)
    }

    /// The ACL rules of `vsid`, in evaluation order (a contiguous slice when
    /// `acl` is sorted, as it is after parsing).
    pub fn acl_for(&self, vsid: Vsid) -> &[AclRule] {
        let start = self.acl.partition_point(|r| r.vsid < vsid);
        let end = self.acl.partition_point(|r| r.vsid <= vsid);
        self.acl.get(start..end).unwrap_or(&[])
    }

    /// The lookup record for `(vsid, ca)`, if any.
    pub fn lookup_record(&self, vsid: Vsid, ca: IpAddr) -> Option<&LookupRecord> {
        self.lookup.iter().find(|r| r.vsid == vsid && r.ca == ca)
    }

    /// Sorts `acl` by `(vsid, priority)`, stably.
    pub fn sort_acl(&mut self) {
        self.acl.sort_by_key(|r| (r.vsid, r.priority));
    }
}

/// This host's provider-network identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// Host name (informational, non-empty).
    pub name: String,
    /// Provider addresses (at least one).
    pub provider_addresses: Vec<ProviderAddress>,
    /// Provider-network routes.
    pub provider_routes: Vec<ProviderRoute>,
    /// Static provider-network ARP/ND entries.
    pub neighbors: Vec<Neighbor>,
    /// UDP destination port of VXLAN, sent and accepted (default [`VXLAN_PORT`]).
    pub vxlan_port: u16,
    /// TCP MSS clamping on SYNs that VMs send through the fabric.
    pub mss_clamp: MssClamp,
}

/// TCP MSS clamping on SYNs leaving VMs for the fabric (`[host] mss_clamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MssClamp {
    /// No clamping (the default): path MTU discovery alone.
    #[default]
    Off,
    /// Clamp to what fits the uplink MTU once encapsulated (`mss_clamp = true`).
    Auto,
    /// Clamp to at most this IPv4 MSS (IPv6: 20 less), and never above what fits (`mss_clamp = 1360`).
    Max(u16),
}

/// The IANA-assigned VXLAN UDP port (RFC 7348 §5).
pub const VXLAN_PORT: u16 = 4789;

/// How a virtual subnet's traffic crosses the provider network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Encap {
    /// NVGRE (RFC 7637): GRE key = VSID << 8 | FlowID (HNV v1, the default).
    #[default]
    Nvgre,
    /// VXLAN (RFC 7348) over UDP: VNI = VSID (HNV v2).
    Vxlan,
}

impl Encap {
    /// The policy-file spelling: `nvgre` or `vxlan`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Encap::Nvgre => "nvgre",
            Encap::Vxlan => "vxlan",
        }
    }
}

impl Host {
    /// Whether `ip` is one of this host's provider addresses.
    pub fn is_local_pa(&self, ip: IpAddr) -> bool {
        self.provider_addresses.iter().any(|p| p.address == ip)
    }

    /// The provider address record for `ip`, if it is one of this host's.
    pub fn provider_address(&self, ip: IpAddr) -> Option<&ProviderAddress> {
        self.provider_addresses.iter().find(|p| p.address == ip)
    }

    /// The static neighbor MAC for provider address `ip`, if listed.
    pub fn neighbor(&self, ip: IpAddr) -> Option<EthernetAddress> {
        self.neighbors.iter().find(|n| n.address == ip).map(|n| n.mac)
    }
}

/// One provider address (PA) of this host.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderAddress {
    /// The PA (unicast, not unspecified).
    pub address: IpAddr,
    /// On-link prefix length (≤ 32 for IPv4, ≤ 128 for IPv6).
    pub prefix_len: u8,
    /// 802.1Q VLAN of the provider network, `1..=4094`.
    pub vlan: Option<u16>,
    /// Source MAC used on the provider network for this PA.
    pub mac: EthernetAddress,
    /// Name of the uplink port (role [`PortRole::Uplink`]) this PA lives on.
    pub uplink: String,
}

impl ProviderAddress {
    /// The on-link provider subnet of this address (host bits cleared).
    pub fn subnet(&self) -> Prefix {
        network_of(self.address, self.prefix_len)
    }
}

/// The prefix `addr/len` with host bits cleared (len clamped to the family width).
pub(crate) fn network_of(addr: IpAddr, len: u8) -> Prefix {
    match addr {
        IpAddr::V4(a) => {
            let len = len.min(32);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
            let net = IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask));
            Prefix::new(net, len).unwrap_or_else(|_| Prefix::host(addr))
        }
        IpAddr::V6(a) => {
            let len = len.min(128);
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
            let net = IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask));
            Prefix::new(net, len).unwrap_or_else(|_| Prefix::host(addr))
        }
    }
}

/// A provider-network route.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderRoute {
    /// Destination prefix.
    pub destination: Prefix,
    /// Next hop; `0.0.0.0` / `::` means on-link. Same family as `destination`.
    pub next_hop: IpAddr,
    /// Metric (lowest wins).
    pub metric: u32,
}

impl ProviderRoute {
    /// Whether the route is on-link (next hop unspecified).
    pub fn is_on_link(&self) -> bool {
        self.next_hop.is_unspecified()
    }
}

/// A static provider-network ARP/ND entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbor {
    /// Provider-network IP address.
    pub address: IpAddr,
    /// Its MAC.
    pub mac: EthernetAddress,
}

/// What a port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortRole {
    /// A VM (tenant) port: has a VSID and a MAC.
    Vm,
    /// A provider-network uplink: carries NVGRE.
    Uplink,
}

/// A switch port.
#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    /// Unique port name.
    pub name: String,
    /// VM or uplink.
    pub role: PortRole,
    /// DPDK devargs (unique), e.g. `net_ring_blue1` or
    /// `net_pcap0,rx_pcap=a.pcap,tx_pcap=b.pcap`.
    pub devargs: String,
    /// VSID of a VM port (always `Some` for [`PortRole::Vm`], `None` for uplinks).
    pub vsid: Option<Vsid>,
    /// MAC of the VM (always `Some` for [`PortRole::Vm`]; optional for uplinks).
    pub mac: Option<EthernetAddress>,
    /// CAs the VM may source (anti-spoofing); VM ports only. Each is covered by
    /// a lookup record with this port's VSID and MAC and a local PA.
    pub addresses: Vec<IpAddr>,
    /// MTU override (68..=65535).
    pub mtu: Option<u16>,
}

/// A routing domain (tenant isolation boundary).
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingDomain {
    /// Unique name, referenced by subnets and customer routes.
    pub name: String,
    /// RDID GUID text as written (`{xxxxxxxx-...}` or bare), validated form.
    pub id: Option<String>,
}

/// A virtual subnet: one VSID.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualSubnet {
    /// The VSID (unique across subnets).
    pub vsid: Vsid,
    /// The routing domain this VSID belongs to.
    pub routing_domain: String,
    /// On-link CA prefixes (non-overlapping with other subnets of the same routing domain).
    pub prefixes: Vec<Prefix>,
    /// IPv4 default gateway (inside one of `prefixes`), answered by the switch.
    pub gateway_v4: Option<Ipv4Addr>,
    /// IPv6 default gateway (inside one of `prefixes`), answered by the switch.
    pub gateway_v6: Option<Ipv6Addr>,
    /// MAC of the distributed router in this VSID
    /// (default [`VirtualSubnet::default_gateway_mac`]).
    pub gateway_mac: EthernetAddress,
    /// Encapsulation of this VSID between hosts (every host of the subnet uses
    /// the same one; every host accepts both on receipt).
    pub encap: Encap,
}

impl VirtualSubnet {
    /// `02:48:4e:XX:YY:ZZ` where `XXYYZZ` is the VSID, big-endian.
    pub fn default_gateway_mac(vsid: Vsid) -> EthernetAddress {
        let [x, y, z] = vsid.to_be_bytes24();
        EthernetAddress([0x02, 0x48, 0x4e, x, y, z])
    }

    /// Whether `ip` is on-link in this subnet.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.prefixes.iter().any(|p| p.contains(ip))
    }
}

/// What a lookup record does with traffic to its CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// NVGRE encapsulation to the PA.
    Encap,
    /// No encapsulation (non-virtualized traffic; the PA equals the CA).
    None,
}

/// Lookup record type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// An ordinary VM record.
    Static,
    /// Layer-2 only: MAC forwarding, no routing to the CA.
    L2Only,
    /// A tenant gateway: CA is `0.0.0.0` or `::`.
    GatewayWildcard,
}

/// A lookup record: (VSID, CA) → MAC, PA.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupRecord {
    /// Customer address (`0.0.0.0`/`::` exactly for [`RecordType::GatewayWildcard`]).
    pub ca: IpAddr,
    /// VSID (declared by a subnet).
    pub vsid: Vsid,
    /// The VM's MAC (unicast).
    pub mac: EthernetAddress,
    /// Provider address of the host the VM lives on (equals `ca` for [`Rule::None`]).
    pub pa: IpAddr,
    /// Encap or none.
    pub rule: Rule,
    /// Record type.
    pub kind: RecordType,
    /// CustomerID (informational).
    pub customer_id: Option<String>,
    /// VMName (informational).
    pub vm_name: Option<String>,
    /// Fill the NVGRE FlowID with per-flow entropy (default). False sends
    /// FlowID 0, for peers that match the whole GRE key (Linux `gretap`).
    pub flow_entropy: bool,
}

/// A customer (tenant) route.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRoute {
    /// Routing domain (must match the VSID's subnet's routing domain).
    pub routing_domain: String,
    /// The VSID the route applies to.
    pub vsid: Vsid,
    /// Destination CA prefix.
    pub destination: Prefix,
    /// Next hop CA; `0.0.0.0` / `::` means on-link. Same family as `destination`.
    pub next_hop: IpAddr,
    /// Metric (lowest wins).
    pub metric: u32,
}

impl CustomerRoute {
    /// Whether the route is on-link (next hop unspecified).
    pub fn is_on_link(&self) -> bool {
        self.next_hop.is_unspecified()
    }
}

/// Direction of traffic relative to the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Toward the VM.
    In,
    /// From the VM.
    Out,
    /// Either way.
    Both,
}

/// ACL verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclAction {
    /// Let the packet through.
    Allow,
    /// Drop the packet.
    Deny,
}

/// One ACL rule of a VSID.
#[derive(Debug, Clone, PartialEq)]
pub struct AclRule {
    /// The VSID whose ports the rule applies to.
    pub vsid: Vsid,
    /// Lower is evaluated first.
    pub priority: u32,
    /// Direction relative to the VM.
    pub direction: Direction,
    /// Verdict on match.
    pub action: AclAction,
    /// IP protocol; `None` = any.
    pub protocol: Option<u8>,
    /// Source prefix; `None` = any.
    pub src: Option<Prefix>,
    /// Destination prefix; `None` = any.
    pub dst: Option<Prefix>,
    /// Inclusive source port range; TCP/UDP only.
    pub src_ports: Option<(u16, u16)>,
    /// Inclusive destination port range; TCP/UDP only.
    pub dst_ports: Option<(u16, u16)>,
}

fn in_range(r: Option<(u16, u16)>, p: u16) -> bool {
    match r {
        None => true,
        Some((lo, hi)) => lo <= p && p <= hi,
    }
}

impl AclRule {
    /// Whether a packet matches this rule.
    ///
    /// - `dir`: the packet's direction; a rule with [`Direction::Both`] matches
    ///   either, and passing `Direction::Both` matches rules of any direction.
    /// - `protocol`, `src`, `dst`: `None` in the rule matches anything; a
    ///   prefix never matches an address of the other family.
    /// - Ports constrain TCP/UDP only: a rule with `src_ports` or `dst_ports`
    ///   matches only TCP (6) or UDP (17) packets whose ports are in range;
    ///   `sport`/`dport` are ignored for rules without port ranges.
    pub fn matches(&self, dir: Direction, proto: u8, src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> bool {
        let dir_ok = self.direction == Direction::Both || dir == Direction::Both || dir == self.direction;
        if !dir_ok {
            return false;
        }
        if self.protocol.is_some_and(|p| p != proto) {
            return false;
        }
        if self.src.is_some_and(|p| !p.contains(src)) || self.dst.is_some_and(|p| !p.contains(dst)) {
            return false;
        }
        if self.src_ports.is_some() || self.dst_ports.is_some() {
            if proto != PROTO_TCP && proto != PROTO_UDP {
                return false;
            }
            return in_range(self.src_ports, sport) && in_range(self.dst_ports, dport);
        }
        true
    }
}

/// The verdict of the first rule in `rules` that matches, or
/// [`AclAction::Allow`] if none does (default allow within a VSID).
///
/// `rules` is taken in order; pass one VSID's rules sorted by priority, e.g.
/// [`Policy::acl_for`].
pub fn classify(rules: &[AclRule], dir: Direction, proto: u8, src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> AclAction {
    rules.iter().find(|r| r.matches(dir, proto, src, dst, sport, dport)).map_or(AclAction::Allow, |r| r.action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    fn vsid(v: u32) -> Vsid {
        Vsid::new(v).expect("valid vsid")
    }

    fn rule(priority: u32, action: AclAction) -> AclRule {
        AclRule { vsid: vsid(5001), priority, direction: Direction::Both, action, protocol: None, src: None, dst: None, src_ports: None, dst_ports: None }
    }

    #[test]
    fn default_gateway_mac() {
        assert_eq!(VirtualSubnet::default_gateway_mac(vsid(5001)), EthernetAddress([0x02, 0x48, 0x4e, 0x00, 0x13, 0x89]));
    }

    #[test]
    fn acl_matching() {
        let mut r = rule(10, AclAction::Deny);
        r.direction = Direction::In;
        r.protocol = Some(PROTO_TCP);
        r.dst_ports = Some((23, 23));
        let a = ip("10.0.0.7");
        let b = ip("10.0.0.5");
        assert!(r.matches(Direction::In, 6, a, b, 40000, 23));
        assert!(r.matches(Direction::Both, 6, a, b, 40000, 23));
        assert!(!r.matches(Direction::Out, 6, a, b, 40000, 23));
        assert!(!r.matches(Direction::In, 6, a, b, 40000, 22));
        assert!(!r.matches(Direction::In, 17, a, b, 40000, 23));

        // Ports with protocol any: only TCP/UDP packets can match.
        let mut p = rule(10, AclAction::Deny);
        p.dst_ports = Some((20, 30));
        assert!(p.matches(Direction::Out, 17, a, b, 1, 25));
        assert!(!p.matches(Direction::Out, 1, a, b, 0, 25));
        // Without ports, ICMP matches and ports are ignored.
        let any = rule(10, AclAction::Deny);
        assert!(any.matches(Direction::Out, 1, a, b, 0, 0));

        let mut s = rule(10, AclAction::Deny);
        s.src = "10.0.0.4/31".parse().ok();
        assert!(!s.matches(Direction::In, 6, a, b, 1, 1));
        assert!(s.matches(Direction::In, 6, b, a, 1, 1));
        assert!(!s.matches(Direction::In, 6, ip("::1"), a, 1, 1));
        let mut d = rule(10, AclAction::Deny);
        d.dst = "10.0.0.4/31".parse().ok();
        assert!(d.matches(Direction::In, 6, a, b, 1, 1));
        assert!(!d.matches(Direction::In, 6, b, a, 1, 1));
    }

    #[test]
    fn classify_first_match_default_allow() {
        let mut deny = rule(10, AclAction::Deny);
        deny.protocol = Some(PROTO_TCP);
        let allow = rule(20, AclAction::Allow);
        let mut deny_all = rule(30, AclAction::Deny);
        deny_all.protocol = Some(PROTO_UDP);
        let rules = [deny, allow, deny_all];
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        assert_eq!(classify(&rules, Direction::In, 6, a, b, 1, 2), AclAction::Deny);
        assert_eq!(classify(&rules, Direction::In, 17, a, b, 1, 2), AclAction::Allow);
        assert_eq!(classify(&rules[2..], Direction::In, 17, a, b, 1, 2), AclAction::Deny);
        assert_eq!(classify(&[], Direction::In, 17, a, b, 1, 2), AclAction::Allow);
    }

    #[test]
    fn acl_for_slices_by_vsid() {
        let mut p = Policy {
            host: Host { name: "h".into(), provider_addresses: vec![], provider_routes: vec![], neighbors: vec![], vxlan_port: VXLAN_PORT, mss_clamp: MssClamp::Off },
            ports: vec![],
            routing_domains: vec![],
            subnets: vec![],
            lookup: vec![],
            customer_routes: vec![],
            acl: vec![],
        };
        let mut r1 = rule(5, AclAction::Deny);
        r1.vsid = vsid(6001);
        let r2 = rule(9, AclAction::Deny);
        let r3 = rule(1, AclAction::Allow);
        let mut r4 = rule(1, AclAction::Deny);
        r4.vsid = vsid(7000);
        p.acl = vec![r1, r2, r3, r4];
        p.sort_acl();
        let s = p.acl_for(vsid(5001));
        assert_eq!(s.iter().map(|r| r.priority).collect::<Vec<_>>(), vec![1, 9]);
        assert_eq!(p.acl_for(vsid(6001)).len(), 1);
        assert!(p.acl_for(vsid(4096)).is_empty());
        assert!(p.acl_for(vsid(8000)).is_empty());
    }

    #[test]
    fn provider_subnet() {
        let pa = ProviderAddress { address: ip("192.168.4.11"), prefix_len: 24, vlan: None, mac: EthernetAddress([2, 0, 0, 0, 0, 1]), uplink: "uplink".into() };
        assert_eq!(pa.subnet().to_string(), "192.168.4.0/24");
        assert_eq!(network_of(ip("fd00::1:2"), 112).to_string(), "fd00::1:0/112");
        assert_eq!(network_of(ip("1.2.3.4"), 0).to_string(), "0.0.0.0/0");
    }
}
