//! The policy file format: TOML written by hand.
//!
//! Contract: these serde structs mirror the model with text fields
//! (addresses, MACs, prefixes, enums as strings; numbers as `i64` so that
//! out-of-range values become validation errors naming the record rather than
//! type errors). Every struct denies unknown fields. Only `[host]` is
//! required; every array may be empty or absent. Parsing these structs checks
//! only shape; [`crate::validate::validate`] turns them into a [`crate::Policy`].
//! [`to_toml`] writes a policy back in this format such that
//! `parse(&to_toml(&p), ..) == Ok(p)` for every valid `p`.

use serde::{Deserialize, Serialize};

use crate::addr::{format_mac, format_port_range, format_protocol};
use crate::model::{AclAction, Direction, Policy, PortRole, RecordType, Rule};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// `[host]`.
    pub host: HostFile,
    /// `[[ports]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortFile>,
    /// `[[routing_domains]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routing_domains: Vec<RoutingDomainFile>,
    /// `[[subnets]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<SubnetFile>,
    /// `[[lookup]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lookup: Vec<LookupFile>,
    /// `[[customer_routes]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub customer_routes: Vec<CustomerRouteFile>,
    /// `[[acl]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acl: Vec<AclFile>,
}

/// `[host]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFile {
    /// Host name.
    pub name: String,
    /// `[[host.provider_addresses]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_addresses: Vec<ProviderAddressFile>,
    /// `[[host.provider_routes]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider_routes: Vec<ProviderRouteFile>,
    /// `[[host.neighbors]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub neighbors: Vec<NeighborFile>,
    /// VXLAN UDP destination port (default 4789).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_port: Option<i64>,
    /// TCP MSS clamping on VM SYNs: `true` (what fits the uplink MTU), `false`, or a maximum IPv4 MSS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mss_clamp: Option<BoolOrNumber>,
}

/// A value written either as a TOML boolean or integer (`mss_clamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BoolOrNumber {
    /// `true` / `false`
    Bool(bool),
    /// `1360`
    Number(i64),
}

/// `[[host.provider_addresses]]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderAddressFile {
    /// IP address.
    pub address: String,
    /// On-link prefix length.
    pub prefix_len: i64,
    /// VLAN ID 1..=4094.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<i64>,
    /// MAC.
    pub mac: String,
    /// Uplink port name.
    pub uplink: String,
}

/// `[[host.provider_routes]]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderRouteFile {
    /// Prefix `a.b.c.d/n`.
    pub destination: String,
    /// Next hop IP, `0.0.0.0`/`::` = on-link.
    pub next_hop: String,
    /// Metric (default 0).
    #[serde(default)]
    pub metric: i64,
}

/// `[[host.neighbors]]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborFile {
    /// IP address.
    pub address: String,
    /// MAC.
    pub mac: String,
}

/// `[[ports]]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortFile {
    /// Port name.
    pub name: String,
    /// `vm` or `uplink`.
    pub role: String,
    /// DPDK devargs.
    pub devargs: String,
    /// VSID (VM ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsid: Option<i64>,
    /// MAC (required for VM ports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Allowed source CAs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
}

/// `[[routing_domains]]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingDomainFile {
    /// Name.
    pub name: String,
    /// GUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// `[[subnets]]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetFile {
    /// VSID.
    pub vsid: i64,
    /// Routing domain name.
    pub routing_domain: String,
    /// On-link prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
    /// IPv4 gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_v4: Option<String>,
    /// IPv6 gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_v6: Option<String>,
    /// Gateway MAC (default `02:48:4e:` + VSID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_mac: Option<String>,
    /// `nvgre` (default) or `vxlan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encap: Option<String>,
}

/// `[[lookup]]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupFile {
    /// Customer address.
    pub ca: String,
    /// VSID.
    pub vsid: i64,
    /// MAC.
    pub mac: String,
    /// Provider address.
    pub pa: String,
    /// `encap` (default), `none`, `nat` (rejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// `static` (default), `l2only`, `gateway_wildcard`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// CustomerID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// VMName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_name: Option<String>,
    /// `false`: send FlowID 0 to this record (peers matching the whole GRE key, e.g. Linux gretap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<bool>,
}

impl LookupFile {
    /// The file form of a record.
    pub fn from_record(r: &crate::LookupRecord) -> LookupFile {
        LookupFile {
            ca: r.ca.to_string(),
            vsid: i64::from(r.vsid.get()),
            mac: format_mac(&r.mac),
            pa: r.pa.to_string(),
            rule: Some(rule_text(r.rule).to_string()),
            kind: Some(record_type_text(r.kind).to_string()),
            customer_id: r.customer_id.clone(),
            vm_name: r.vm_name.clone(),
            flow_id: (!r.flow_entropy).then_some(false),
        }
    }
}

/// `[[customer_routes]]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerRouteFile {
    /// Routing domain name.
    pub routing_domain: String,
    /// VSID.
    pub vsid: i64,
    /// Destination prefix.
    pub destination: String,
    /// Next hop, `0.0.0.0`/`::` = on-link.
    pub next_hop: String,
    /// Metric (default 0).
    #[serde(default)]
    pub metric: i64,
}

/// A value written either as a TOML string or integer (ports, protocol).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TextOrNumber {
    /// `80`
    Number(i64),
    /// `"1000-2000"`
    Text(String),
}

impl TextOrNumber {
    /// The value as text.
    pub fn as_text(&self) -> String {
        match self {
            TextOrNumber::Number(n) => n.to_string(),
            TextOrNumber::Text(s) => s.clone(),
        }
    }
}

/// `[[acl]]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclFile {
    /// VSID.
    pub vsid: i64,
    /// Priority, lower first.
    pub priority: i64,
    /// `in`, `out`, `both` (default both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// `allow` or `deny`.
    pub action: String,
    /// `any` (default), `tcp`, `udp`, `icmp`, `icmpv6` or a number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<TextOrNumber>,
    /// Source prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
    /// Destination prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<String>,
    /// `"80"` or `"1000-2000"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_ports: Option<TextOrNumber>,
    /// `"80"` or `"1000-2000"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_ports: Option<TextOrNumber>,
}

impl PolicyFile {
    /// The file form of a model policy (the inverse of validation).
    pub fn from_policy(p: &Policy) -> PolicyFile {
        let h = &p.host;
        PolicyFile {
            host: HostFile {
                name: h.name.clone(),
                provider_addresses: h
                    .provider_addresses
                    .iter()
                    .map(|a| ProviderAddressFile {
                        address: a.address.to_string(),
                        prefix_len: i64::from(a.prefix_len),
                        vlan: a.vlan.map(i64::from),
                        mac: format_mac(&a.mac),
                        uplink: a.uplink.clone(),
                    })
                    .collect(),
                provider_routes: h
                    .provider_routes
                    .iter()
                    .map(|r| ProviderRouteFile { destination: r.destination.to_string(), next_hop: r.next_hop.to_string(), metric: i64::from(r.metric) })
                    .collect(),
                neighbors: h.neighbors.iter().map(|n| NeighborFile { address: n.address.to_string(), mac: format_mac(&n.mac) }).collect(),
                vxlan_port: (h.vxlan_port != crate::model::VXLAN_PORT).then_some(i64::from(h.vxlan_port)),
                mss_clamp: match h.mss_clamp {
                    crate::model::MssClamp::Off => None,
                    crate::model::MssClamp::Auto => Some(BoolOrNumber::Bool(true)),
                    crate::model::MssClamp::Max(n) => Some(BoolOrNumber::Number(i64::from(n))),
                },
            },
            ports: p
                .ports
                .iter()
                .map(|port| PortFile {
                    name: port.name.clone(),
                    role: match port.role {
                        PortRole::Vm => "vm",
                        PortRole::Uplink => "uplink",
                    }
                    .to_string(),
                    devargs: port.devargs.clone(),
                    vsid: port.vsid.map(|v| i64::from(v.get())),
                    mac: port.mac.as_ref().map(format_mac),
                    addresses: port.addresses.iter().map(ToString::to_string).collect(),
                    mtu: port.mtu.map(i64::from),
                })
                .collect(),
            routing_domains: p.routing_domains.iter().map(|r| RoutingDomainFile { name: r.name.clone(), id: r.id.clone() }).collect(),
            subnets: p
                .subnets
                .iter()
                .map(|s| SubnetFile {
                    vsid: i64::from(s.vsid.get()),
                    routing_domain: s.routing_domain.clone(),
                    prefixes: s.prefixes.iter().map(ToString::to_string).collect(),
                    gateway_v4: s.gateway_v4.map(|g| g.to_string()),
                    gateway_v6: s.gateway_v6.map(|g| g.to_string()),
                    gateway_mac: Some(format_mac(&s.gateway_mac)),
                    encap: (s.encap != crate::model::Encap::Nvgre).then(|| s.encap.as_str().to_string()),
                })
                .collect(),
            lookup: p.lookup.iter().map(LookupFile::from_record).collect(),
            customer_routes: p
                .customer_routes
                .iter()
                .map(|r| CustomerRouteFile {
                    routing_domain: r.routing_domain.clone(),
                    vsid: i64::from(r.vsid.get()),
                    destination: r.destination.to_string(),
                    next_hop: r.next_hop.to_string(),
                    metric: i64::from(r.metric),
                })
                .collect(),
            acl: p
                .acl
                .iter()
                .map(|a| AclFile {
                    vsid: i64::from(a.vsid.get()),
                    priority: i64::from(a.priority),
                    direction: Some(direction_text(a.direction).to_string()),
                    action: action_text(a.action).to_string(),
                    protocol: a.protocol.map(|p| TextOrNumber::Text(format_protocol(Some(p)))),
                    src: a.src.map(|s| s.to_string()),
                    dst: a.dst.map(|s| s.to_string()),
                    src_ports: a.src_ports.map(|r| TextOrNumber::Text(format_port_range(r))),
                    dst_ports: a.dst_ports.map(|r| TextOrNumber::Text(format_port_range(r))),
                })
                .collect(),
        }
    }
}

/// File spelling of a [`Rule`].
pub fn rule_text(r: Rule) -> &'static str {
    match r {
        Rule::Encap => "encap",
        Rule::None => "none",
    }
}

/// File spelling of a [`RecordType`].
pub fn record_type_text(t: RecordType) -> &'static str {
    match t {
        RecordType::Static => "static",
        RecordType::L2Only => "l2only",
        RecordType::GatewayWildcard => "gateway_wildcard",
    }
}

/// File spelling of a [`Direction`].
pub fn direction_text(d: Direction) -> &'static str {
    match d {
        Direction::In => "in",
        Direction::Out => "out",
        Direction::Both => "both",
    }
}

/// File spelling of an [`AclAction`].
pub fn action_text(a: AclAction) -> &'static str {
    match a {
        AclAction::Allow => "allow",
        AclAction::Deny => "deny",
    }
}

/// Writes `policy` as a policy file. For a valid policy,
/// `parse(&to_toml(&p), ..)` returns `p` again.
pub fn to_toml(policy: &Policy) -> String {
    match toml::to_string(&PolicyFile::from_policy(policy)) {
        Ok(s) => s,
        // The file structs hold only strings, integers, options and arrays of
        // tables, which always serialize; keep a non-panicking fallback anyway.
        Err(e) => format!("# policy could not be serialized: {e}\n"),
    }
}
