//! The policy in force, indexed for changes that cost what they touch.
//!
//! Contract: a [`PolicyState`] holds a valid [`Policy`] with its lookup
//! records in an ordered map keyed by `(VSID, CA)`. [`PolicyState::apply`]
//! applies a transaction of change [`Request`]s and gives exactly the result
//! of [`crate::api::apply_all_with`] on the whole policy (same acceptance,
//! same errors but for an item's position such as `lookup[i]`), but validates only the *neighbourhood* of the change:
//!
//! - the records the changes name, and every record sharing a changed
//!   record's `(VSID, MAC)` (one VM's records must agree on its PA);
//! - for every VM port, the records covering its addresses (anti-spoofing);
//! - the host, every port, and the routing domains, subnets, customer routes
//!   and ACL rules of the routing domains of the VSIDs involved (the changed
//!   ones and the ports').
//!
//! Every validation rule involving a lookup record relates it only to records
//! of its own `(VSID, CA)` or `(VSID, MAC)`, to ports, to the host and to its
//! VSID's subnet; customer routes and ACL rules relate only to routing
//! domains and subnets. So the neighbourhood passes validation exactly when
//! the whole policy would (the rest is unchanged and was valid). A change costs
//! the size of its neighbourhood, not of the policy: microseconds at a
//! million records. A [`Delta`] says what changed, so the datapath recompiles
//! only that.
//!
//! Requests that change the host or routing domains, or a subnet other than
//! its encapsulation, do not exist; those come with a whole policy
//! ([`PolicyState::new`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::api::{ChangeError, Request};
use crate::file::PolicyFile;
use crate::{LookupRecord, Options, Policy, Vsid};

/// A `(VSID, CA)` key.
pub type RecordKey = (Vsid, IpAddr);

/// What a transaction changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// Lookup records added, replaced (with a different content) or removed.
    pub records: Vec<RecordKey>,
    /// The port list changed.
    pub ports: bool,
    /// Customer routes changed.
    pub routes: bool,
    /// ACL rules changed.
    pub acl: bool,
    /// A subnet changed (its encapsulation).
    pub subnets: bool,
}

impl Delta {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && !self.ports && !self.routes && !self.acl && !self.subnets
    }
}

/// The policy in force (see the module contract).
#[derive(Debug, Clone)]
pub struct PolicyState {
    /// Everything but the lookup records (`base.lookup` is empty).
    base: Policy,
    records: BTreeMap<RecordKey, LookupRecord>,
}

fn first_of(v: Vsid) -> RecordKey {
    (v, IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

fn last_of(v: Vsid) -> RecordKey {
    (v, IpAddr::V6(Ipv6Addr::from(u128::MAX)))
}

fn key_of(vsid: i64, ca: &str) -> Option<RecordKey> {
    Some((Vsid::new(u32::try_from(vsid).ok()?).ok()?, ca.trim().parse().ok()?))
}

impl PolicyState {
    /// Index a valid policy.
    pub fn new(mut policy: Policy) -> Self {
        let lookup = std::mem::take(&mut policy.lookup);
        let records = lookup.into_iter().map(|r| ((r.vsid, r.ca), r)).collect();
        PolicyState { base: policy, records }
    }

    /// The policy, whole (records in `(VSID, CA)` order). Costs a copy of every record.
    pub fn to_policy(&self) -> Policy {
        Policy { lookup: self.records.values().cloned().collect(), ..self.base.clone() }
    }

    /// Everything but the lookup records (its `lookup` is empty).
    pub fn base(&self) -> &Policy {
        &self.base
    }

    /// The record for `(vsid, ca)`.
    pub fn record(&self, vsid: Vsid, ca: IpAddr) -> Option<&LookupRecord> {
        self.records.get(&(vsid, ca))
    }

    /// The records of `vsid`, in CA order.
    pub fn records_of(&self, vsid: Vsid) -> impl Iterator<Item = &LookupRecord> {
        self.records.range(first_of(vsid)..=last_of(vsid)).map(|(_, r)| r)
    }

    /// Every record, in `(VSID, CA)` order.
    pub fn records(&self) -> impl Iterator<Item = &LookupRecord> {
        self.records.values()
    }

    /// Approximate bytes the indexed records hold: B-tree entries (key and
    /// record, at the B-tree's typical two-thirds fill) plus the heap text of
    /// their optional names.
    pub fn record_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(RecordKey, LookupRecord)>();
        let text: usize = self.records.values().map(|r| r.customer_id.as_ref().map_or(0, String::capacity) + r.vm_name.as_ref().map_or(0, String::capacity)).sum();
        self.records.len() * entry * 3 / 2 + text
    }

    /// How many records there are.
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// Apply `reqs` as one transaction (see the module contract); on error
    /// nothing changes.
    ///
    /// # Errors
    /// As [`crate::api::apply_all_with`].
    pub fn apply(&mut self, reqs: &[Request], options: Options) -> Result<Delta, ChangeError> {
        let scope = self.scope(reqs);
        let sub = self.neighbourhood(&scope);
        let mut f = PolicyFile::from_policy(&sub);
        let mut changed = false;
        for req in reqs {
            changed |= crate::api::edit(&mut f, &sub, req)?;
        }
        if !changed {
            return Ok(Delta::default());
        }
        let out = crate::validate_with(&f, "hnvctl change", options)?;
        Ok(self.splice(&scope, sub, out))
    }

    /// Whether `reqs` would be accepted, without applying them.
    ///
    /// # Errors
    /// As [`PolicyState::apply`].
    pub fn check(&self, reqs: &[Request], options: Options) -> Result<(), ChangeError> {
        let scope = self.scope(reqs);
        let sub = self.neighbourhood(&scope);
        let mut f = PolicyFile::from_policy(&sub);
        for req in reqs {
            crate::api::edit(&mut f, &sub, req)?;
        }
        crate::validate_with(&f, "hnvctl change", options).map(|_| ()).map_err(ChangeError::from)
    }

    /// The VSIDs a transaction involves and the records it names.
    fn scope(&self, reqs: &[Request]) -> Scope {
        let mut s = Scope::default();
        let mac_of = |s: &mut Scope, vsid: i64, mac: &str| {
            if let (Some(v), Ok(m)) = (u32::try_from(vsid).ok().and_then(|v| Vsid::new(v).ok()), crate::parse_mac(mac)) {
                s.macs.insert((v, m.0));
            }
        };
        for req in reqs {
            match req {
                Request::AddRecord { record } | Request::ReplaceRecord { record } => {
                    s.keys.extend(key_of(record.vsid, &record.ca));
                    mac_of(&mut s, record.vsid, &record.mac);
                }
                Request::RemoveRecord { vsid, ca } => s.keys.extend(key_of(*vsid, ca)),
                Request::AddRoute { route } => s.vsids.extend(u32::try_from(route.vsid).ok().and_then(|v| Vsid::new(v).ok())),
                Request::RemoveRoute { vsid, .. } | Request::RemoveAcl { vsid, .. } => s.vsids.extend(u32::try_from(*vsid).ok().and_then(|v| Vsid::new(v).ok())),
                Request::AddAcl { rule } => s.vsids.extend(u32::try_from(rule.vsid).ok().and_then(|v| Vsid::new(v).ok())),
                Request::SetEncap { vsid, .. } => s.vsids.extend(u32::try_from(*vsid).ok().and_then(|v| Vsid::new(v).ok())),
                Request::AddPort { port, records } => {
                    if let (Some(v), Some(m)) = (port.vsid, &port.mac) {
                        mac_of(&mut s, v, m);
                    }
                    for r in records {
                        s.keys.extend(key_of(r.vsid, &r.ca));
                        mac_of(&mut s, r.vsid, &r.mac);
                    }
                }
                Request::RemovePort { .. } | Request::Show { .. } | Request::CaptureStart { .. } | Request::CaptureStop => {}
            }
        }
        // A named record's current MAC, and every port's VSID and MAC (port changes
        // move records of the port's MAC; coverage needs the port's records).
        for (v, ca) in s.keys.clone() {
            if let Some(r) = self.records.get(&(v, ca)) {
                s.macs.insert((v, r.mac.0));
            }
        }
        for p in &self.base.ports {
            if let (Some(v), Some(m)) = (p.vsid, p.mac) {
                s.macs.insert((v, m.0));
            }
        }
        s.vsids.extend(s.keys.iter().map(|k| k.0));
        s.vsids.extend(s.macs.iter().map(|k| k.0));
        s.domains = s.vsids.iter().filter_map(|v| self.base.routing_domain_of(*v)).map(str::to_string).collect();
        s
    }

    /// The part of the policy the scope's validation reads.
    fn neighbourhood(&self, s: &Scope) -> Policy {
        let in_rd = |rd: &str| s.domains.contains(rd);
        let b = &self.base;
        let mut keys: BTreeSet<RecordKey> = s.keys.iter().copied().filter(|k| self.records.contains_key(k)).collect();
        for &(v, mac) in &s.macs {
            keys.extend(self.records_of(v).filter(|r| r.mac.0 == mac).map(|r| (r.vsid, r.ca)));
        }
        for p in &b.ports {
            if let Some(v) = p.vsid {
                keys.extend(p.addresses.iter().map(|a| (v, *a)).filter(|k| self.records.contains_key(k)));
            }
        }
        Policy {
            host: b.host.clone(),
            ports: b.ports.clone(),
            routing_domains: b.routing_domains.iter().filter(|r| in_rd(&r.name)).cloned().collect(),
            subnets: b.subnets.iter().filter(|x| in_rd(&x.routing_domain)).cloned().collect(),
            lookup: keys.iter().filter_map(|k| self.records.get(k)).cloned().collect(),
            customer_routes: b.customer_routes.iter().filter(|r| in_rd(&r.routing_domain)).cloned().collect(),
            acl: b.acl.iter().filter(|r| b.routing_domain_of(r.vsid).is_some_and(in_rd)).cloned().collect(),
        }
    }

    /// Put the validated neighbourhood `out` (of input `sub`) in place; what changed.
    fn splice(&mut self, s: &Scope, sub: Policy, out: Policy) -> Delta {
        let in_rd = |rd: &str| s.domains.contains(rd);
        let mut d = Delta { ports: sub.ports != out.ports, routes: sub.customer_routes != out.customer_routes, acl: sub.acl != out.acl, subnets: sub.subnets != out.subnets, records: Vec::new() };
        let before: BTreeMap<RecordKey, LookupRecord> = sub.lookup.into_iter().map(|r| ((r.vsid, r.ca), r)).collect();
        let after: BTreeMap<RecordKey, LookupRecord> = out.lookup.into_iter().map(|r| ((r.vsid, r.ca), r)).collect();
        for (k, r) in &before {
            if !after.contains_key(k) {
                self.records.remove(k);
                d.records.push(*k);
            } else if after.get(k) != Some(r) {
                d.records.push(*k);
            }
        }
        for (k, r) in after {
            if !before.contains_key(&k) {
                d.records.push(k);
            }
            self.records.insert(k, r);
        }
        d.records.sort_unstable();
        let b = &mut self.base;
        b.ports = out.ports;
        if d.subnets {
            for x in out.subnets {
                if let Some(old) = b.subnets.iter_mut().find(|o| o.vsid == x.vsid) {
                    *old = x;
                }
            }
        }
        if d.routes {
            b.customer_routes.retain(|r| !in_rd(&r.routing_domain));
            b.customer_routes.extend(out.customer_routes);
        }
        if d.acl {
            let rd_of: BTreeMap<Vsid, String> = b.subnets.iter().map(|x| (x.vsid, x.routing_domain.clone())).collect();
            b.acl.retain(|r| !rd_of.get(&r.vsid).is_some_and(|rd| in_rd(rd)));
            b.acl.extend(out.acl);
            b.sort_acl();
        }
        d
    }
}

/// The change requests that turn `old` into `new`, when requests can say it:
/// `None` when the host, routing domains, subnets or ports differ (those need
/// a whole load, or a port hot-plug). Records are matched by `(VSID, CA)`,
/// ACL rules by `(VSID, priority)`, customer routes by `(routing domain, VSID,
/// destination)`; a changed ACL rule or route is removed and added again; two
/// ACL rules (or routes) of one key also give `None`.
/// Used to apply a reloaded file or an etcd resync incrementally.
pub fn diff(old: &Policy, new: &Policy) -> Option<Vec<Request>> {
    use crate::file::{AclFile, CustomerRouteFile, LookupFile, PolicyFile};
    if old.host != new.host || old.routing_domains != new.routing_domains || old.subnets != new.subnets || old.ports != new.ports {
        return None;
    }
    let mut reqs = Vec::new();
    let a: BTreeMap<RecordKey, &LookupRecord> = old.lookup.iter().map(|r| ((r.vsid, r.ca), r)).collect();
    let b: BTreeMap<RecordKey, &LookupRecord> = new.lookup.iter().map(|r| ((r.vsid, r.ca), r)).collect();
    for (k, r) in &a {
        match b.get(k) {
            None => reqs.push(Request::RemoveRecord { vsid: i64::from(k.0.get()), ca: k.1.to_string() }),
            Some(n) if n != r => reqs.push(Request::ReplaceRecord { record: LookupFile::from_record(n) }),
            Some(_) => {}
        }
    }
    reqs.extend(b.iter().filter(|(k, _)| !a.contains_key(k)).map(|(_, r)| Request::AddRecord { record: LookupFile::from_record(r) }));
    let acl_key = |f: &AclFile| (f.vsid, f.priority);
    let (fa, fb) = (PolicyFile::from_policy(&Policy { lookup: Vec::new(), ..old.clone() }), PolicyFile::from_policy(&Policy { lookup: Vec::new(), ..new.clone() }));
    // Requests name ACL rules by (VSID, priority) and routes by (routing domain, VSID,
    // destination): a policy with two of one key cannot be reached by requests.
    let unique = |keys: Vec<String>| keys.len() == keys.iter().collect::<BTreeSet<_>>().len();
    for f in [&fa, &fb] {
        if !unique(f.acl.iter().map(|r| format!("{:?}", acl_key(r))).collect()) || !unique(f.customer_routes.iter().map(|r| format!("{}/{}/{}", r.routing_domain, r.vsid, r.destination)).collect()) {
            return None;
        }
    }
    for r in fa.acl.iter().filter(|r| !fb.acl.contains(r)) {
        reqs.push(Request::RemoveAcl { vsid: acl_key(r).0, priority: acl_key(r).1 });
    }
    reqs.extend(fb.acl.iter().filter(|r| !fa.acl.contains(r)).map(|r| Request::AddAcl { rule: r.clone() }));
    let route_gone = |r: &CustomerRouteFile| Request::RemoveRoute { routing_domain: r.routing_domain.clone(), vsid: r.vsid, destination: r.destination.clone() };
    reqs.extend(fa.customer_routes.iter().filter(|r| !fb.customer_routes.contains(r)).map(route_gone));
    reqs.extend(fb.customer_routes.iter().filter(|r| !fa.customer_routes.contains(r)).map(|r| Request::AddRoute { route: r.clone() }));
    Some(reqs)
}

/// What a transaction involves.
#[derive(Debug, Default)]
struct Scope {
    /// Records named by the changes.
    keys: BTreeSet<RecordKey>,
    /// `(VSID, MAC)` pairs whose records are validated together.
    macs: BTreeSet<(Vsid, [u8; 6])>,
    /// VSIDs involved.
    vsids: BTreeSet<Vsid>,
    /// Their routing domains.
    domains: BTreeSet<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
