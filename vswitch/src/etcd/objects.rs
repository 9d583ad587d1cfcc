//! The tenant objects as etcd holds them: one key per object under the
//! prefix, the value being the JSON of the policy file's struct; parsing a
//! state of the prefix, merging it with a host's own parts, and validating the
//! merge with errors that name etcd keys. Pure functions, no I/O.

use crate::service::SHARED_RECORDS;
use hnv_policy::file::{AclFile, CustomerRouteFile, LookupFile, PolicyFile, RoutingDomainFile, SubnetFile};
use hnv_policy::{FieldError, Policy, PolicyError};
use std::collections::BTreeMap;

/// One tenant object as stored under the prefix.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// `<prefix>routing_domains/<name>`
    RoutingDomain(RoutingDomainFile),
    /// `<prefix>subnets/<vsid>`
    Subnet(SubnetFile),
    /// `<prefix>lookup/<vsid>/<ca>`
    Lookup(LookupFile),
    /// `<prefix>customer_routes/<routing_domain>/<vsid>/<destination>/<next_hop>`
    Route(CustomerRouteFile),
    /// `<prefix>acl/<vsid>/<priority>`
    Acl(AclFile),
}

/// The object kinds, as the first key segment after the prefix and as the policy file's array names.
pub(crate) const KINDS: [&str; 5] = ["routing_domains", "subnets", "lookup", "customer_routes", "acl"];

/// An address in canonical text when it parses, else as written.
fn canon_ip(s: &str) -> String {
    s.parse::<std::net::IpAddr>().map(|a| a.to_string()).unwrap_or_else(|_| s.to_string())
}

/// A prefix `addr/len` with the address in canonical text when it parses.
fn canon_prefix(s: &str) -> String {
    match s.split_once('/') {
        Some((a, l)) => format!("{}/{l}", canon_ip(a)),
        None => canon_ip(s),
    }
}

impl Object {
    /// Its kind: the first key segment after the prefix.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::RoutingDomain(_) => KINDS[0],
            Object::Subnet(_) => KINDS[1],
            Object::Lookup(_) => KINDS[2],
            Object::Route(_) => KINDS[3],
            Object::Acl(_) => KINDS[4],
        }
    }

    /// Its key relative to the prefix, from the fields that identify it.
    pub fn name(&self) -> String {
        match self {
            Object::RoutingDomain(r) => format!("routing_domains/{}", r.name),
            Object::Subnet(s) => format!("subnets/{}", s.vsid),
            Object::Lookup(r) => format!("lookup/{}/{}", r.vsid, canon_ip(&r.ca)),
            Object::Route(r) => format!("customer_routes/{}/{}/{}/{}", r.routing_domain, r.vsid, canon_prefix(&r.destination), canon_ip(&r.next_hop)),
            Object::Acl(a) => format!("acl/{}/{}", a.vsid, a.priority),
        }
    }

    /// Parse a value stored under a key of `kind`.
    ///
    /// # Errors
    /// An unknown kind, or a value that is not the kind's JSON object.
    pub fn parse(kind: &str, value: &[u8]) -> Result<Object, ObjectError> {
        fn json<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T, ObjectError> {
            serde_json::from_slice(v).map_err(ObjectError::Value)
        }
        Ok(match kind {
            "routing_domains" => Object::RoutingDomain(json(value)?),
            "subnets" => Object::Subnet(json(value)?),
            "lookup" => Object::Lookup(json(value)?),
            "customer_routes" => Object::Route(json(value)?),
            "acl" => Object::Acl(json(value)?),
            other => return Err(ObjectError::Kind(other.to_string())),
        })
    }

    /// The value stored for it: the JSON of the policy-file struct.
    pub fn to_json(&self) -> String {
        let r = match self {
            Object::RoutingDomain(x) => serde_json::to_string(x),
            Object::Subnet(x) => serde_json::to_string(x),
            Object::Lookup(x) => serde_json::to_string(x),
            Object::Route(x) => serde_json::to_string(x),
            Object::Acl(x) => serde_json::to_string(x),
        };
        // The file structs hold only strings, integers, options and arrays: they always serialize.
        r.unwrap_or_default()
    }
}

/// Why a value does not parse as an object.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The first key segment is not one of the kinds.
    #[error("unknown object kind {0:?} (expected one of routing_domains, subnets, lookup, customer_routes, acl)")]
    Kind(String),
    /// The value is not the kind's JSON object.
    #[error("value is not a valid JSON object of this kind: {0}")]
    Value(serde_json::Error),
}

/// A key under the prefix that does not hold a valid object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key {key}: {problem}")]
pub struct BadKey {
    /// The key, escaped for one log line.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

/// The full key of `o` under `prefix`. The layout, one key per object:
/// `routing_domains/<name>`, `subnets/<vsid>`, `lookup/<vsid>/<ca>`,
/// `customer_routes/<routing_domain>/<vsid>/<destination>/<next_hop>` and
/// `acl/<vsid>/<priority>`, addresses in canonical text.
pub fn key_of(prefix: &str, o: &Object) -> String {
    format!("{prefix}{}", o.name())
}

/// The tenant objects of a policy file, keyed under `prefix`, in key order.
pub fn objects_of(prefix: &str, f: &PolicyFile) -> BTreeMap<String, Object> {
    let all = f
        .routing_domains
        .iter()
        .cloned()
        .map(Object::RoutingDomain)
        .chain(f.subnets.iter().cloned().map(Object::Subnet))
        .chain(f.lookup.iter().cloned().map(Object::Lookup))
        .chain(f.customer_routes.iter().cloned().map(Object::Route))
        .chain(f.acl.iter().cloned().map(Object::Acl));
    all.map(|o| (key_of(prefix, &o), o)).collect()
}

/// Longest value accepted under a key (a tenant object's JSON is a few hundred bytes).
pub const MAX_VALUE: usize = 64 * 1024;

/// A key or value from etcd made safe for one log line.
pub(crate) fn shown(s: &str) -> String {
    s.escape_debug().to_string()
}

/// Parse every key/value under `prefix` into objects. Keys are raw bytes as
/// etcd holds them (or strings, in tests).
///
/// # Errors
/// Every bad key ([`BadKey`], the key escaped): a key that is not UTF-8, an
/// unknown kind, a value over [`MAX_VALUE`] bytes, a value that does not
/// parse, or a key that is not the canonical key of its value.
pub fn parse_objects<K: AsRef<[u8]>>(prefix: &str, kvs: &BTreeMap<K, Vec<u8>>) -> Result<BTreeMap<String, Object>, Vec<BadKey>> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for (key, value) in kvs {
        let Ok(key) = std::str::from_utf8(key.as_ref()) else {
            problems.push(BadKey { key: key.as_ref().escape_ascii().to_string(), problem: "not UTF-8".into() });
            continue;
        };
        let bad = |problem: String| BadKey { key: shown(key), problem };
        let Some(rest) = key.strip_prefix(prefix) else {
            problems.push(bad(format!("not under the prefix {prefix}")));
            continue;
        };
        if value.len() > MAX_VALUE {
            problems.push(bad(format!("value of {} bytes is over the limit of {MAX_VALUE}", value.len())));
            continue;
        }
        let kind = rest.split('/').next().unwrap_or_default();
        match Object::parse(kind, value) {
            Ok(o) => {
                let want = key_of(prefix, &o);
                if want == key {
                    out.insert(want, o);
                } else {
                    problems.push(bad(format!("holds the object whose key is {}", shown(&want))));
                }
            }
            Err(e) => problems.push(bad(e.to_string())),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// `local`'s host and ports with the tenant `objects`, in key order.
pub fn merge(local: &PolicyFile, objects: &BTreeMap<String, Object>) -> PolicyFile {
    let mut f = PolicyFile { host: local.host.clone(), ports: local.ports.clone(), ..Default::default() };
    for o in objects.values() {
        match o.clone() {
            Object::RoutingDomain(x) => f.routing_domains.push(x),
            Object::Subnet(x) => f.subnets.push(x),
            Object::Lookup(x) => f.lookup.push(x),
            Object::Route(x) => f.customer_routes.push(x),
            Object::Acl(x) => f.acl.push(x),
        }
    }
    f
}

/// Validate the merge of `local` and `objects` like a policy file named `origin`.
/// Validation errors on tenant records name their etcd key instead of the array index.
///
/// # Errors
/// Every validation failure ([`PolicyError::Invalid`], one per line).
pub fn merged_policy(local: &PolicyFile, objects: &BTreeMap<String, Object>, origin: &str) -> Result<Policy, PolicyError> {
    let f = merge(local, objects);
    hnv_policy::validate_with(&f, origin, SHARED_RECORDS).map_err(|e| match e {
        PolicyError::Invalid { origin, errors } => {
            let keys: Vec<(&str, Vec<&String>)> = KINDS.iter().map(|k| (*k, objects.iter().filter(|(_, o)| o.kind() == *k).map(|(key, _)| key).collect())).collect();
            PolicyError::Invalid { origin, errors: errors.iter().map(|fe| rename(fe, &keys)).collect() }
        }
        other => other,
    })
}

/// `lookup[3] (ca ..)` → `key /hnv/lookup/.. (ca ..)`.
fn rename(fe: &FieldError, keys: &[(&str, Vec<&String>)]) -> FieldError {
    let mut fe = fe.clone();
    if let Some((head, rest)) = fe.record.split_once('[') {
        if let Some((idx, tail)) = rest.split_once(']') {
            let key = keys.iter().find(|(k, _)| *k == head).and_then(|(_, ks)| idx.parse::<usize>().ok().and_then(|i| ks.get(i)));
            if let Some(key) = key {
                fe.record = format!("key {key}{tail}");
            }
        }
    }
    fe
}

/// The host-local part of a policy: `[host]` and `[[ports]]`.
pub(crate) fn local_part(p: &Policy) -> PolicyFile {
    let f = PolicyFile::from_policy(p);
    PolicyFile { host: f.host, ports: f.ports, ..Default::default() }
}

/// `p` with its tenant records in key order, as a merge produces them.
pub(crate) fn canonical(p: &Policy) -> Option<Policy> {
    merged_policy(&local_part(p), &objects_of("", &PolicyFile::from_policy(p)), "").ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hnv_policy::example::{BLUE_RED_HOST1, BLUE_RED_HOST2};

    fn host(text: &str) -> Policy {
        hnv_policy::parse(text, "t").unwrap()
    }

    fn stored(prefix: &str, p: &Policy) -> BTreeMap<String, Vec<u8>> {
        objects_of(prefix, &PolicyFile::from_policy(p)).iter().map(|(k, o)| (k.clone(), o.to_json().into_bytes())).collect()
    }

    #[test]
    fn a_published_policy_merges_back_into_every_host() {
        let (h1, h2) = (host(BLUE_RED_HOST1), host(BLUE_RED_HOST2));
        let kvs = stored("/hnv/", &h1);
        assert!(kvs.contains_key("/hnv/lookup/5001/10.0.0.7"), "{:?}", kvs.keys().collect::<Vec<_>>());
        assert!(kvs.keys().all(|k| KINDS.iter().any(|kind| k.starts_with(&format!("/hnv/{kind}/")))));
        let objects = parse_objects("/hnv/", &kvs).unwrap();
        // Host 1 gets its own policy back; host 2 gets host 1's tenant parts with its own host and ports.
        assert_eq!(merged_policy(&local_part(&h1), &objects, "t").unwrap(), canonical(&h1).unwrap());
        let m2 = merged_policy(&local_part(&h2), &objects, "t").unwrap();
        assert_eq!((m2.host.clone(), m2.ports.clone()), (h2.host.clone(), h2.ports.clone()));
        assert_eq!(m2.lookup.len(), h1.lookup.len());
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let h1 = host(BLUE_RED_HOST1);
        let mut kvs = stored("/hnv/", &h1);
        kvs.insert("/hnv/lookup/5001/10.0.0.7".into(), b"{not json".to_vec());
        kvs.insert("/hnv/colours/red".into(), b"{}".to_vec());
        let wrong = kvs["/hnv/subnets/5001"].clone();
        kvs.insert("/hnv/subnets/6001x".into(), wrong);
        let problems: Vec<String> = parse_objects("/hnv/", &kvs).unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("key /hnv/lookup/5001/10.0.0.7: value is not a valid JSON")), "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("key /hnv/colours/red: unknown object kind")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("key /hnv/subnets/6001x: holds the object whose key is /hnv/subnets/5001")), "{problems:?}");
    }

    #[test]
    fn validation_errors_name_the_etcd_key() {
        let h1 = host(BLUE_RED_HOST1);
        let mut kvs = stored("/hnv/", &h1);
        let k = "/hnv/lookup/5001/10.0.0.7".to_string();
        let v = String::from_utf8(kvs[&k].clone()).unwrap().replace("00:15:5d:01:00:07", "01:00:5e:00:00:01");
        kvs.insert(k.clone(), v.into_bytes());
        let objects = parse_objects("/hnv/", &kvs).unwrap();
        let e = merged_policy(&local_part(&h1), &objects, "etcd x").unwrap_err().to_string();
        assert!(e.contains(&format!("etcd x: key {k} (ca 10.0.0.7, vsid 5001): field 'mac'")), "{e}");
    }
}
