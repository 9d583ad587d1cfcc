//! `hnv-policy`: the HNV virtualization policy — its typed model, the
//! hand-written TOML policy file, and validation between the two.
//!
//! Contract:
//! - [`parse`] / [`load`] turn policy text into a [`Policy`] that satisfies
//!   every rule documented in [`validate`](mod@validate), or fail with a [`PolicyError`]
//!   naming the file, record and field of *every* problem found.
//! - [`to_toml`] writes a policy back; `parse(&to_toml(&p), ..) == Ok(p)`
//!   for every valid `p`.
//! - Nothing in this crate panics on any input, and it has no unsafe code.
//!
//! The value types ([`Vsid`], [`Prefix`], MAC text via [`parse_mac`] /
//! [`format_mac`]) are defined here so that this crate depends on nothing in
//! `hnv-wire` but `EthernetAddress`'s tuple field.
#![forbid(unsafe_code)]

pub mod addr;
pub mod advice;
pub mod api;
pub mod bulk;
pub mod derive;
pub mod error;
pub mod example;
pub mod file;
pub mod model;
pub mod state;
pub mod validate;
pub mod vsid;

pub use addr::{
    format_mac, format_port_range, format_protocol, is_guid, is_multicast_mac, is_unicast_mac, parse_mac, parse_port_range, parse_protocol, MacError, PortRangeError, PrefixError, ProtocolError,
    PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP,
};
pub use advice::advice;
pub use error::{FieldError, PolicyError};
pub use file::{to_toml, PolicyFile};
pub use hnv_wire::EthernetAddress;
pub use model::{
    classify, AclAction, AclRule, CustomerRoute, Direction, Encap, Host, LookupRecord, MssClamp, Neighbor, Policy, Port, PortRole, Prefix, ProviderAddress, ProviderRoute, RecordType, RoutingDomain,
    Rule, VirtualSubnet, VXLAN_PORT,
};
pub use validate::{load, load_with, parse, parse_with, validate, validate_with, Options, MAX_PORTS};
pub use vsid::{Vsid, VsidError};
