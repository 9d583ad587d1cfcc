//! Whether two snapshots forward alike: the check that an incremental
//! compile equals the whole one (tests and fuzz targets use it).
//!
//! Contract: [`Tables::forwards_like`] compares what forwarding reads —
//! every record's compiled content (templates by their bytes, not their
//! ids), the record each `(VSID, MAC)` maps to (by content but for its CA:
//! records sharing a MAC are one VM), per-VSID facts but their versions and
//! member hash, routes, ports and provider addresses — and names the first
//! difference. Versions are not compared (they differ by design), nor the
//! live-migration marks (store state, not policy: a whole compile of the
//! policy alone has none).

use super::*;

impl Tables {
    /// `Ok` when `self` and `other` forward alike (see the module contract).
    ///
    /// # Errors
    /// The first difference found.
    pub fn forwards_like(&self, other: &Tables) -> Result<(), String> {
        let view = |t: &Tables, d: &Dest| {
            let to = match d.to {
                Delivery::Encap(id) => format!("encap {:?}", t.template(id).map(|x| &x.bytes[..usize::from(x.len)])),
                o => format!("{o:?}"),
            };
            (d.vsid, d.ca, d.mac, d.pa, to, d.l2_only, d.flow_entropy)
        };
        if self.records.len() != other.records.len() {
            return Err(format!("{} records against {}", self.records.len(), other.records.len()));
        }
        for d in self.records.iter() {
            let o = other.by_ca(d.vsid, d.ca).or_else(|| other.wildcard(d.vsid).filter(|w| w.ca == d.ca)).ok_or_else(|| format!("record ({}, {}) is missing", d.vsid, d.ca))?;
            if view(self, d) != view(other, o) {
                return Err(format!("record ({}, {}): {:?} against {:?}", d.vsid, d.ca, view(self, d), view(other, o)));
            }
            let by_mac = |t: &Tables| t.by_mac(d.vsid, d.mac).map(|m| (m.pa, m.to.clone_kind(t)));
            if self.wildcard(d.vsid).is_none_or(|w| w.slot != d.slot) && by_mac(self) != by_mac(other) {
                return Err(format!("MAC {:02x?} in VSID {}: {:?} against {:?}", d.mac, d.vsid, by_mac(self), by_mac(other)));
            }
        }
        if self.vsid_list() != other.vsid_list() {
            return Err("the VSIDs differ".into());
        }
        for v in self.vsid_list() {
            let (a, b) = (self.vsid(v), other.vsid(v));
            let plain = |e: Option<&VsidEntry>| e.map(|e| (e.rd, e.gw_v4, e.gw_v6, e.gw_mac, e.local_ports.clone(), e.acl.clone(), e.members.0, e.key_ports, e.wildcard.is_some()));
            if plain(a) != plain(b) {
                return Err(format!("VSID {v}: {a:?} against {b:?}"));
            }
        }
        if self.routes != other.routes || self.key_ports_vsids != other.key_ports_vsids || self.local_pas != other.local_pas {
            return Err("routes, flow-key masks or provider addresses differ".into());
        }
        let ports = |t: &Tables| t.ports.iter().map(|p| (p.name.clone(), p.role, p.vsid, p.mac, p.addresses.clone(), p.mtu, p.key_ports)).collect::<Vec<_>>();
        if ports(self) != ports(other) {
            return Err("ports differ".into());
        }
        Ok(())
    }
}

impl Delivery {
    /// This delivery with a template named by its bytes (comparable across snapshots).
    fn clone_kind(&self, t: &Tables) -> String {
        match *self {
            Delivery::Encap(id) => format!("encap {:?}", t.template(id).map(|x| &x.bytes[..usize::from(x.len)])),
            o => format!("{o:?}"),
        }
    }
}
