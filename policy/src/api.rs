//! The control protocol between `hnvctl` and a running `hnvswitch`.
//!
//! One JSON object per line in each direction over a Unix socket: a
//! [`Request`], then a [`Response`]. Changes carry records in the policy
//! file's own form ([`LookupFile`], [`CustomerRouteFile`], [`AclFile`]), so
//! they are validated by exactly the rules a policy file is; a rejected change
//! leaves the running policy as it was. [`apply`] is that edit-and-validate
//! step, shared by the server and tests.
//!
//! Port changes ([`Request::AddPort`], [`Request::RemovePort`]) edit
//! `[[ports]]`: a port is added at the end of the list, and removing one
//! shifts the later ports down by one (the switch port index is the position
//! in the list). A running switch validates the change, opens the new DPDK
//! port, then swaps the port list while its workers are paused.

use crate::file::{AclFile, CustomerRouteFile, LookupFile, PolicyFile, PortFile};
use crate::{Policy, PolicyError};
use serde::{Deserialize, Serialize};

/// What `show` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Show {
    /// Ports with link state and counters.
    Ports,
    /// VSIDs with routing domain, gateway and counters.
    Vsids,
    /// Lookup records.
    Records,
    /// Customer routes.
    Routes,
    /// ACL rules.
    Acl,
    /// Datapath counters and drop reasons.
    Counters,
    /// Flow-cache entries, capacity, hits and misses per worker.
    Flows,
    /// Per-worker busy cycles and cycles per packet.
    Workers,
    /// The whole policy as TOML.
    Policy,
    /// The capture in progress.
    Capture,
    /// MS-NVGREE REDIRECT/UNREACHABLE messages received, and REDIRECTs in force.
    Notices,
    /// Memory of the policy in force: compiled tables, policy model, slots (bytes per record).
    Tables,
    /// Provider next hops: MAC, state, source (static, learned, resolved), age, requests sent.
    Neighbors,
}

/// A control request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// List something.
    Show {
        /// What.
        what: Show,
    },
    /// Add a lookup record.
    AddRecord {
        /// The record, as in a policy file's `[[lookup]]`.
        record: LookupFile,
    },
    /// Replace the record with the same (VSID, CA), e.g. to move a CA to a new PA.
    ReplaceRecord {
        /// The new record.
        record: LookupFile,
    },
    /// Remove the record (VSID, CA).
    RemoveRecord {
        /// VSID.
        vsid: i64,
        /// Customer address.
        ca: String,
    },
    /// Add a customer route.
    AddRoute {
        /// The route, as in `[[customer_routes]]`.
        route: CustomerRouteFile,
    },
    /// Remove the route (routing domain, VSID, destination).
    RemoveRoute {
        /// Routing domain.
        routing_domain: String,
        /// VSID.
        vsid: i64,
        /// Destination prefix.
        destination: String,
    },
    /// Add an ACL rule.
    AddAcl {
        /// The rule, as in `[[acl]]`.
        rule: AclFile,
    },
    /// Remove the ACL rule (VSID, priority).
    RemoveAcl {
        /// VSID.
        vsid: i64,
        /// Priority.
        priority: i64,
    },
    /// Add a port at the end of the port list (hot-plugged on a running switch),
    /// with the lookup records it needs (a VM port's addresses need records
    /// with its VSID, MAC and a local PA).
    AddPort {
        /// The port, as in `[[ports]]`.
        port: PortFile,
        /// Records added in the same change; one with the VSID and CA of an existing
        /// record replaces it (a VM arriving by live migration).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        records: Vec<LookupFile>,
    },
    /// Remove the port `name`; later ports move down by one.
    RemovePort {
        /// Port name.
        name: String,
        /// Also remove the lookup records delivered to it (its VSID and MAC at a
        /// local PA); without this a VM port whose records remain is refused.
        #[serde(default)]
        with_records: bool,
        /// The VM moved to this PA (live migration): its records are repointed
        /// there in the same change, so this host forwards late traffic to it
        /// for the grace period and redirects senders.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        moved_to: Option<String>,
    },
    /// Set the encapsulation of a virtual subnet (`nvgre` or `vxlan`); every
    /// host of the subnet should get the same change (hosts accept both on receipt).
    SetEncap {
        /// VSID.
        vsid: i64,
        /// `nvgre` or `vxlan`.
        encap: String,
    },
    /// Start capturing to a new pcapng file (one capture at a time).
    CaptureStart {
        /// The file, written by the switch (an absolute path).
        path: String,
        /// Port names to capture from; empty = all.
        #[serde(default)]
        ports: Vec<String>,
        /// VSIDs to capture; empty = all.
        #[serde(default)]
        vsids: Vec<i64>,
        /// `ingress`, `egress` or `both` (the default).
        #[serde(default)]
        stage: Option<String>,
        /// Bytes kept per frame (default and maximum 2048).
        #[serde(default)]
        snaplen: Option<u16>,
    },
    /// Stop the capture and close its file.
    CaptureStop,
}

/// A control response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Response {
    /// True when the request succeeded.
    pub ok: bool,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Policy generation now in force (changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Rows or a document (show).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl Response {
    /// A failure with `error`.
    pub fn error(error: impl Into<String>) -> Self {
        Response { ok: false, error: Some(error.into()), ..Default::default() }
    }
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The object to change does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The object already exists.
    #[error("{0}")]
    Exists(String),
    /// The request contradicts itself.
    #[error("{0}")]
    Conflict(String),
    /// The resulting policy fails validation.
    #[error("{0}")]
    Invalid(#[from] PolicyError),
}

fn same_ca(a: &str, b: &str) -> bool {
    match (a.parse::<std::net::IpAddr>(), b.parse::<std::net::IpAddr>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Apply a change request to `current`; the result is fully validated.
/// Returns `Ok(None)` for requests that change no policy (`Show`, captures).
///
/// # Errors
/// [`ChangeError`] when the object is missing or duplicated, or the new policy is invalid.
pub fn apply(current: &Policy, req: &Request) -> Result<Option<Policy>, ChangeError> {
    apply_with(current, req, crate::Options::default())
}

/// [`apply`], validating the result with `options`.
///
/// # Errors
/// As [`apply`].
pub fn apply_with(current: &Policy, req: &Request, options: crate::Options) -> Result<Option<Policy>, ChangeError> {
    apply_all_with(current, std::slice::from_ref(req), options)
}

/// Apply `reqs` to `current` in order as one transaction: the result is
/// validated once, and either every change takes effect or none does.
/// Returns `Ok(None)` when no request changes the policy.
///
/// # Errors
/// The first [`ChangeError`] met; the policy is then unchanged.
pub fn apply_all_with(current: &Policy, reqs: &[Request], options: crate::Options) -> Result<Option<Policy>, ChangeError> {
    let mut f = PolicyFile::from_policy(current);
    let mut changed = false;
    for req in reqs {
        changed |= edit(&mut f, current, req)?;
    }
    if !changed {
        return Ok(None);
    }
    Ok(Some(crate::validate_with(&f, "hnvctl change", options)?))
}

/// Edit the policy file `f` (whose policy before the transaction is `current`) by `req`.
/// Returns false for requests that change no policy.
pub(crate) fn edit(f: &mut PolicyFile, current: &Policy, req: &Request) -> Result<bool, ChangeError> {
    match req {
        Request::Show { .. } | Request::CaptureStart { .. } | Request::CaptureStop => return Ok(false),
        Request::AddRecord { record } => {
            if f.lookup.iter().any(|r| r.vsid == record.vsid && same_ca(&r.ca, &record.ca)) {
                return Err(ChangeError::Exists(format!("a record for CA {} in VSID {} exists (use replace)", record.ca, record.vsid)));
            }
            f.lookup.push(record.clone());
        }
        Request::ReplaceRecord { record } => {
            let Some(r) = f.lookup.iter_mut().find(|r| r.vsid == record.vsid && same_ca(&r.ca, &record.ca)) else {
                return Err(ChangeError::NotFound(format!("no record for CA {} in VSID {}", record.ca, record.vsid)));
            };
            *r = record.clone();
        }
        Request::RemoveRecord { vsid, ca } => {
            let before = f.lookup.len();
            f.lookup.retain(|r| !(r.vsid == *vsid && same_ca(&r.ca, ca)));
            if f.lookup.len() == before {
                return Err(ChangeError::NotFound(format!("no record for CA {ca} in VSID {vsid}")));
            }
        }
        Request::AddRoute { route } => {
            if f.customer_routes.iter().any(|r| r.routing_domain == route.routing_domain && r.vsid == route.vsid && r.destination == route.destination) {
                return Err(ChangeError::Exists(format!("route {} in VSID {} exists", route.destination, route.vsid)));
            }
            f.customer_routes.push(route.clone());
        }
        Request::RemoveRoute { routing_domain, vsid, destination } => {
            let before = f.customer_routes.len();
            f.customer_routes.retain(|r| !(&r.routing_domain == routing_domain && r.vsid == *vsid && &r.destination == destination));
            if f.customer_routes.len() == before {
                return Err(ChangeError::NotFound(format!("no route {destination} in VSID {vsid} of {routing_domain}")));
            }
        }
        Request::AddAcl { rule } => {
            if f.acl.iter().any(|r| r.vsid == rule.vsid && r.priority == rule.priority) {
                return Err(ChangeError::Exists(format!("an ACL rule with priority {} exists in VSID {}", rule.priority, rule.vsid)));
            }
            f.acl.push(rule.clone());
        }
        Request::AddPort { port, records } => {
            if f.ports.iter().any(|p| p.name == port.name) {
                return Err(ChangeError::Exists(format!("a port named {:?} exists", port.name)));
            }
            f.ports.push(port.clone());
            for record in records {
                // A VM arriving here (live migration): its record moves to this host.
                match f.lookup.iter_mut().find(|r| r.vsid == record.vsid && same_ca(&r.ca, &record.ca)) {
                    Some(r) => *r = record.clone(),
                    None => f.lookup.push(record.clone()),
                }
            }
        }
        Request::RemovePort { name, with_records, moved_to } => {
            let Some(i) = f.ports.iter().position(|p| &p.name == name) else {
                return Err(ChangeError::NotFound(format!("no port named {name:?}")));
            };
            let Some(port) = current.port(name) else {
                return Err(ChangeError::Conflict(format!("port {name:?} is added and removed in the same transaction")));
            };
            f.ports.remove(i);
            let delivered: Vec<(i64, std::net::IpAddr)> =
                current.lookup.iter().filter(|r| Some(r.vsid) == port.vsid && Some(r.mac) == port.mac && current.host.is_local_pa(r.pa)).map(|r| (i64::from(r.vsid.get()), r.ca)).collect();
            let is_delivered = |r: &LookupFile| delivered.iter().any(|(v, ca)| r.vsid == *v && same_ca(&r.ca, &ca.to_string()));
            match (moved_to, *with_records) {
                (Some(_), true) => return Err(ChangeError::Conflict("--with-records and --moved-to exclude each other".into())),
                (Some(pa), false) => f.lookup.iter_mut().filter(|r| is_delivered(r)).for_each(|r| r.pa = pa.clone()),
                (None, true) => f.lookup.retain(|r| !is_delivered(r)),
                (None, false) => {}
            }
        }
        Request::SetEncap { vsid, encap } => {
            let Some(s) = f.subnets.iter_mut().find(|s| s.vsid == *vsid) else {
                return Err(ChangeError::NotFound(format!("no subnet with VSID {vsid}")));
            };
            s.encap = Some(encap.clone());
        }
        Request::RemoveAcl { vsid, priority } => {
            let before = f.acl.len();
            f.acl.retain(|r| !(r.vsid == *vsid && r.priority == *priority));
            if f.acl.len() == before {
                return Err(ChangeError::NotFound(format!("no ACL rule with priority {priority} in VSID {vsid}")));
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::example::BLUE_RED_HOST1;

    fn host1() -> Policy {
        crate::parse(BLUE_RED_HOST1, "t").unwrap()
    }

    fn blue2(pa: &str) -> LookupFile {
        LookupFile { ca: "10.0.0.7".into(), vsid: 5001, mac: "00:15:5d:01:00:07".into(), pa: pa.into(), ..Default::default() }
    }

    #[test]
    fn replace_moves_a_ca_and_bad_changes_are_refused() {
        let p = host1();
        let moved = apply(&p, &Request::ReplaceRecord { record: blue2("192.168.4.33") }).unwrap().unwrap();
        assert_eq!(moved.lookup_record(crate::Vsid::new(5001).unwrap(), "10.0.0.7".parse().unwrap()).unwrap().pa, "192.168.4.33".parse::<std::net::IpAddr>().unwrap());
        assert!(matches!(apply(&p, &Request::AddRecord { record: blue2("192.168.4.33") }), Err(ChangeError::Exists(_))));
        let bad = LookupFile { vsid: 12, ..blue2("192.168.4.33") };
        assert!(matches!(apply(&p, &Request::ReplaceRecord { record: bad.clone() }), Err(ChangeError::NotFound(_))));
        let err = apply(&p, &Request::AddRecord { record: LookupFile { ca: "10.0.0.99".into(), ..bad } }).unwrap_err().to_string();
        assert!(err.contains("vsid"), "{err}");
        assert!(matches!(apply(&p, &Request::RemoveRecord { vsid: 5001, ca: "10.9.9.9".into() }), Err(ChangeError::NotFound(_))));
        // Removing Blue1's own record would leave its port without a record: invalid.
        assert!(matches!(apply(&p, &Request::RemoveRecord { vsid: 5001, ca: "10.0.0.5".into() }), Err(ChangeError::Invalid(_))));
    }

    #[test]
    fn set_encap_changes_one_subnet() {
        let p = host1();
        let v = apply(&p, &Request::SetEncap { vsid: 5001, encap: "vxlan".into() }).unwrap().unwrap();
        assert_eq!(v.subnet(crate::Vsid::new(5001).unwrap()).unwrap().encap, crate::Encap::Vxlan);
        assert_eq!(v.subnet(crate::Vsid::new(6001).unwrap()).unwrap().encap, crate::Encap::Nvgre);
        let back = apply(&v, &Request::SetEncap { vsid: 5001, encap: "nvgre".into() }).unwrap().unwrap();
        assert_eq!(back, p);
        assert!(matches!(apply(&p, &Request::SetEncap { vsid: 5009, encap: "vxlan".into() }), Err(ChangeError::NotFound(_))));
        let err = apply(&p, &Request::SetEncap { vsid: 5001, encap: "geneve".into() }).unwrap_err().to_string();
        assert!(err.contains("encap"), "{err}");
    }

    fn blue9() -> (PortFile, LookupFile) {
        let port = PortFile {
            name: "blue9".into(),
            role: "vm".into(),
            devargs: "net_null_blue9,no-rx=1".into(),
            vsid: Some(5001),
            mac: Some("00:15:5d:01:00:99".into()),
            addresses: vec!["10.0.0.99".into()],
            mtu: None,
        };
        let record = LookupFile { ca: "10.0.0.99".into(), vsid: 5001, mac: "00:15:5d:01:00:99".into(), pa: "192.168.4.11".into(), ..Default::default() };
        (port, record)
    }

    #[test]
    fn ports_are_added_with_their_records_and_removed_with_them() {
        let p = host1();
        let (port, record) = blue9();
        // Its addresses need a record: refused without one, accepted with it.
        let err = apply(&p, &Request::AddPort { port: port.clone(), records: vec![] }).unwrap_err().to_string();
        assert!(err.contains("10.0.0.99"), "{err}");
        let added = apply(&p, &Request::AddPort { port: port.clone(), records: vec![record.clone()] }).unwrap().unwrap();
        assert_eq!(added.ports.last().unwrap().name, "blue9");
        assert_eq!(added.ports.len(), p.ports.len() + 1);
        // Duplicates: name, devargs, MAC in the VSID.
        assert!(matches!(apply(&added, &Request::AddPort { port: port.clone(), records: vec![] }), Err(ChangeError::Exists(_))));
        let same_devargs = PortFile { name: "blue10".into(), mac: Some("00:15:5d:01:00:9a".into()), addresses: vec![], ..port.clone() };
        assert!(apply(&added, &Request::AddPort { port: same_devargs, records: vec![] }).unwrap_err().to_string().contains("devargs"));
        let same_mac = PortFile { name: "blue10".into(), devargs: "net_null_blue10".into(), addresses: vec![], ..port.clone() };
        assert!(apply(&added, &Request::AddPort { port: same_mac, records: vec![] }).unwrap_err().to_string().contains("MAC"));
        // Removal: its record still needs it unless removed with it.
        let err = apply(&added, &Request::RemovePort { name: "blue9".into(), with_records: false, moved_to: None }).unwrap_err().to_string();
        assert!(err.contains("no local port"), "{err}");
        let removed = apply(&added, &Request::RemovePort { name: "blue9".into(), with_records: true, moved_to: None }).unwrap().unwrap();
        assert_eq!(removed, p);
        assert!(matches!(apply(&p, &Request::RemovePort { name: "nope".into(), with_records: true, moved_to: None }), Err(ChangeError::NotFound(_))));
        // The uplink carries the provider address: refused.
        let uplink = p.ports.iter().find(|q| q.role == crate::PortRole::Uplink).unwrap().name.clone();
        assert!(matches!(apply(&p, &Request::RemovePort { name: uplink, with_records: true, moved_to: None }), Err(ChangeError::Invalid(_))));
    }

    #[test]
    fn requests_round_trip_through_json() {
        let r = Request::ReplaceRecord { record: blue2("192.168.4.33") };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"op\":\"replace_record\""), "{text}");
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), r);
        assert!(serde_json::from_str::<Request>("{\"op\":\"explode\"}").is_err());
    }

    #[test]
    fn a_vm_arriving_by_migration_brings_its_port_and_moves_its_record_here() {
        let p = host1();
        let port = PortFile {
            name: "blue2".into(),
            role: "vm".into(),
            devargs: "net_ring_h1blue2".into(),
            vsid: Some(5001),
            mac: Some("00:15:5d:01:00:07".into()),
            addresses: vec!["10.0.0.7".into()],
            ..Default::default()
        };
        let arrived = apply(&p, &Request::AddPort { port, records: vec![blue2("192.168.4.11")] }).unwrap().unwrap();
        let rec = arrived.lookup_record(crate::Vsid::new(5001).unwrap(), "10.0.0.7".parse().unwrap()).unwrap();
        assert_eq!(rec.pa, "192.168.4.11".parse::<std::net::IpAddr>().unwrap());
        assert_eq!(arrived.lookup.len(), p.lookup.len(), "replaced, not duplicated");
        assert_eq!(arrived.ports.last().unwrap().name, "blue2");
    }

    #[test]
    fn a_vm_leaving_by_migration_takes_its_port_away_and_its_records_point_to_the_new_host() {
        let p = host1();
        let moved = apply(&p, &Request::RemovePort { name: "blue1".into(), with_records: false, moved_to: Some("192.168.4.33".into()) }).unwrap().unwrap();
        let rec = moved.lookup_record(crate::Vsid::new(5001).unwrap(), "10.0.0.5".parse().unwrap()).unwrap();
        assert_eq!(rec.pa, "192.168.4.33".parse::<std::net::IpAddr>().unwrap());
        assert!(!moved.ports.iter().any(|q| q.name == "blue1"));
        let red = moved.lookup_record(crate::Vsid::new(6001).unwrap(), "10.0.0.5".parse().unwrap()).unwrap();
        assert_eq!(red.pa, "192.168.4.11".parse::<std::net::IpAddr>().unwrap(), "Red1 (another port) stays");
        let both = Request::RemovePort { name: "blue1".into(), with_records: true, moved_to: Some("192.168.4.33".into()) };
        assert!(matches!(apply(&p, &both), Err(ChangeError::Conflict(_))));
        let bad = Request::RemovePort { name: "blue1".into(), with_records: false, moved_to: Some("not-an-ip".into()) };
        assert!(matches!(apply(&p, &bad), Err(ChangeError::Invalid(_))));
    }
}
