//! Incremental compiles: the next snapshot from the previous one and a change.
//!
//! Contract: [`Tables::update_records`] gives the tables that
//! [`Tables::compile_from`] would give for the policy with the changed
//! records (same lookups, same versions for what did not change), copying
//! only the chunks and shards the changed records live in. A record whose
//! compiled content changes gets the new generation as its version; its VSID
//! gets it too when the VSID's member set, wildcard or MAC map changes (a
//! cached flow that found no record, or found one by MAC, depends on those).
//! [`Tables::update_vsids`] rebuilds the per-VSID layer (ACL rules, routes,
//! flow-key masks) and keeps the records. Neither changes the host-level
//! version: ports, provider addresses and neighbors take the whole compile.

use super::compile::{build_routes, build_vsids, member_hash, Ctx};
use super::*;
use hnv_policy::LookupRecord;

/// One lookup record's new state.
#[derive(Debug, Clone, Copy)]
pub struct RecordChange<'a> {
    /// VSID.
    pub vsid: u32,
    /// CA.
    pub ca: IpAddr,
    /// The record now and the PA to encapsulate to; `None`: removed.
    pub record: Option<(&'a LookupRecord, IpAddr)>,
    /// The VM just moved away from this host (see [`Dest::forward_moved`]).
    pub moved: bool,
}

/// What an update needs to know about records it does not change.
pub trait RecordSource {
    /// The CA of a record of `vsid` with MAC `mac` other than `except`, if
    /// any (the MAC map then points to that record).
    fn other_with_mac(&self, vsid: u32, mac: [u8; 6], except: IpAddr) -> Option<IpAddr>;
}

impl Tables {
    /// The next snapshot with `changes` applied (see the module contract).
    /// `base` is the policy without its records (host and ports are read).
    pub fn update_records(&self, base: &Policy, changes: &[RecordChange<'_>], others: &dyn RecordSource, slots: &mut VsidSlots, neighbors: &[(IpAddr, [u8; 6])], generation: u64) -> Tables {
        let mut t = self.clone();
        t.generation = generation;
        let cx = Ctx { host: &base.host, neighbors, prev: None };
        for c in changes {
            let old = slots.record_slot(c.vsid, c.ca).and_then(|s| t.records.get(s)).copied();
            let encap = t.vsids.get(&c.vsid).map_or(hnv_policy::Encap::Nvgre, |e| e.encap);
            let new = c.record.map(|(r, pa)| {
                let mut d = cx.dest(&mut t, slots, r, pa, encap, generation);
                d.forward_moved = c.moved;
                (d, r.kind == hnv_policy::RecordType::GatewayWildcard)
            });
            if let (Some(o), Some((n, _))) = (old, new) {
                if (Dest { version: 0, ..o }) == (Dest { version: 0, ..n }) {
                    let wildcard_now = t.vsids.get(&c.vsid).is_some_and(|e| e.wildcard == Some(o.slot));
                    if new.is_some_and(|(_, w)| w == wildcard_now) {
                        continue;
                    }
                }
            }
            let mut membership = false;
            if let Some(o) = old {
                let was_wildcard = t.vsids.get(&c.vsid).is_some_and(|e| e.wildcard == Some(o.slot));
                let stays = new.is_some_and(|(n, w)| n.mac == o.mac && w == was_wildcard);
                if !stays {
                    t.unlink(&o, was_wildcard, others, slots);
                    membership = true;
                }
            }
            match new {
                Some((d, wildcard)) => {
                    let linked = old.is_some() && !membership;
                    if !linked {
                        t.link(&d, wildcard);
                        membership = true;
                    }
                    t.records.set(d.slot, Some(d));
                }
                None => {
                    if let Some(o) = old {
                        t.records.set(o.slot, None);
                    }
                }
            }
            if membership {
                if let Some(e) = t.vsids.get_mut(&c.vsid) {
                    Arc::make_mut(e).version = generation;
                }
            }
        }
        t
    }

    /// Take record `o` out of its VSID's maps and member set.
    fn unlink(&mut self, o: &Dest, wildcard: bool, others: &dyn RecordSource, slots: &VsidSlots) {
        if let Some(e) = self.vsids.get_mut(&o.vsid) {
            let e = Arc::make_mut(e);
            e.members.0 = e.members.0.saturating_sub(1);
            e.members.1 = e.members.1.wrapping_sub(member_hash(o.slot));
            if wildcard {
                e.wildcard = None;
                return;
            }
        }
        self.by_ca.remove(&CaKey(o.vsid, o.ca));
        let mk = MacKey(o.vsid, o.mac);
        if self.by_mac.get(&mk) == Some(&o.slot) {
            match others.other_with_mac(o.vsid, o.mac, o.ca).and_then(|ca| slots.record_slot(o.vsid, ca)).filter(|s| self.records.get(*s).is_some()) {
                Some(s) => self.by_mac.insert(mk, s),
                None => {
                    self.by_mac.remove(&mk);
                }
            }
        }
    }

    /// Put record `d` into its VSID's maps and member set.
    fn link(&mut self, d: &Dest, wildcard: bool) {
        if let Some(e) = self.vsids.get_mut(&d.vsid) {
            let e = Arc::make_mut(e);
            e.members.0 += 1;
            e.members.1 = e.members.1.wrapping_add(member_hash(d.slot));
            if wildcard {
                e.wildcard = Some(d.slot);
                return;
            }
        }
        self.by_ca.insert(CaKey(d.vsid, d.ca), d.slot);
        self.by_mac.insert_if_absent(MacKey(d.vsid, d.mac), d.slot);
    }

    /// The next snapshot with the per-VSID layer of `base` (ACL rules,
    /// routes, flow-key masks) and the records of `self`.
    pub fn update_vsids(&self, base: &Policy, slots: &mut VsidSlots, generation: u64) -> Tables {
        let mut t = self.clone();
        t.generation = generation;
        let mut fresh = build_vsids(base, slots, &t.ports, generation);
        for (v, e) in fresh.iter_mut() {
            if let Some(o) = self.vsids.get(v) {
                e.members = o.members;
                e.wildcard = o.wildcard;
                e.key_ports = o.key_ports;
            }
        }
        t.vsids = fresh.into_iter().map(|(v, e)| (v, Arc::new(e))).collect();
        t.routes = Arc::new(build_routes(base));
        t.compile_key_masks();
        t.stamp_vsids(Some(self), generation);
        t
    }

    /// Mark the records in `slots` as moved away (see [`Dest::forward_moved`]);
    /// a record that was so marked in `prev` with the same content keeps its version.
    pub fn mark_moved(&mut self, moved: &[u32], prev: Option<&Tables>) {
        for &s in moved {
            if let Some(d) = self.records.get(s).copied() {
                let mut d = Dest { forward_moved: true, ..d };
                if let Some(o) = prev.and_then(|p| p.by_slot(s)).filter(|o| Dest { version: 0, ..**o } == Dest { version: 0, ..d }) {
                    d.version = o.version;
                }
                self.records.set(s, Some(d));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::PolicyStore;
    use hnv_policy::api::Request;
    use hnv_policy::file::LookupFile;
    use hnv_policy::Options;

    fn rec(ca: &str, vsid: i64, mac: &str, pa: &str, kind: Option<&str>) -> LookupFile {
        LookupFile { ca: ca.into(), vsid, mac: mac.into(), pa: pa.into(), kind: kind.map(Into::into), ..Default::default() }
    }

    /// After every change the store's incremental tables forward like a whole compile.
    #[test]
    fn record_changes_compile_like_the_whole_policy() {
        let store = PolicyStore::new(hnv_policy::parse(hnv_policy::example::BLUE_RED_HOST1, "t").unwrap());
        let steps: Vec<Vec<Request>> = vec![
            // A second CA of Blue2 (same MAC), a wildcard gateway, an IPv6 record.
            vec![Request::AddRecord { record: rec("10.0.0.8", 5001, "00:15:5d:01:00:07", "192.168.4.22", None) }],
            vec![Request::AddRecord { record: rec("0.0.0.0", 5001, "00:15:5d:01:00:fe", "192.168.4.22", Some("gateway_wildcard")) }],
            vec![Request::AddRecord { record: rec("fd00::7", 5001, "00:15:5d:01:00:07", "192.168.4.22", None) }],
            // The MAC map pointed at 10.0.0.7: remove it, the map moves to another CA of the VM.
            vec![Request::RemoveRecord { vsid: 5001, ca: "10.0.0.7".into() }],
            // Blue2 moves (both remaining CAs in one transaction), then to an unknown next hop.
            vec![
                Request::ReplaceRecord { record: rec("10.0.0.8", 5001, "00:15:5d:01:00:07", "192.168.4.33", None) },
                Request::ReplaceRecord { record: rec("fd00::7", 5001, "00:15:5d:01:00:07", "192.168.4.33", None) },
            ],
            vec![Request::RemoveRecord { vsid: 5001, ca: "0.0.0.0".into() }],
            vec![Request::AddRecord { record: rec("10.0.0.7", 5001, "00:15:5d:01:00:77", "192.168.4.22", Some("l2only")) }],
        ];
        for (i, reqs) in steps.iter().enumerate() {
            let before = store.snapshot();
            let g = store.change(reqs, Options::default()).unwrap_or_else(|e| panic!("step {i}: {e}"));
            let t = store.snapshot();
            assert_eq!(t.generation, g);
            assert_eq!(t.global_version, before.global_version, "step {i}: record changes leave the host-level version");
            let whole = crate::Tables::compile(&store.policy(), &mut Default::default(), &[], 0);
            t.forwards_like(&whole).unwrap_or_else(|e| panic!("step {i}: {e}"));
            // Red's VSID did not change: its version stays.
            assert_eq!(t.vsid(6001).unwrap().version, before.vsid(6001).unwrap().version, "step {i}");
        }
        let mac = store.snapshot().by_mac(5001, [0, 0x15, 0x5d, 1, 0, 7]).copied().unwrap();
        assert_eq!(mac.pa, "192.168.4.33".parse::<std::net::IpAddr>().unwrap());
        // A refused transaction publishes nothing.
        let g = store.snapshot().generation;
        assert!(store.change(&[Request::RemoveRecord { vsid: 5001, ca: "10.0.0.5".into() }], Options::default()).is_err());
        assert_eq!(store.snapshot().generation, g);
    }
}
