//! The exact-match flow cache: 4-way set-associative, fixed size, owned by
//! one worker.
//!
//! Memory is bounded by the entry count chosen at creation. A miss that
//! produces a cacheable outcome inserts into the first empty or stale way of
//! its set, else replaces the way picked by the hash's high bits, so a flood
//! of new flows evicts at a bounded cost per packet and never grows memory.
//! When more flows are active than the cache holds (hit rate below one half
//! over the last 1,024 lookups), only one miss in 16 (chosen by hash, so the
//! same flows each time) is inserted, as OVS's EMC does: the cached subset
//! then stays put instead of being evicted before it is reused.
//! An entry is used only while the versions it recorded still match the
//! snapshot (see [`crate::flow`]).

use super::key::FlowKey;
use crate::drop::DropReason;
use crate::tables::Tables;

/// Ways per set.
const WAYS: usize = 4;

/// What to do with a packet of a cached flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send out of a switch port.
    Port(u16),
    /// Encapsulate with the template of the record in `slot`, FlowID `flow_id`.
    Encap {
        /// Record slot.
        slot: u32,
        /// FlowID to put in the key.
        flow_id: u8,
    },
    /// Drop, counted under the reason.
    Drop(DropReason),
}

/// A cached outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    /// The final step.
    pub step: Step,
    /// Remove the 42-byte NVGRE outer header first.
    pub decap: bool,
    /// Routed: decrement TTL/hop limit (dropping at expiry) and write these (dst, src) MACs.
    pub route: Option<([u8; 6], [u8; 6])>,
    /// Counter slot of the ingress VSID.
    pub in_vsid_slot: u16,
    /// Counter slot of the VSID the packet leaves in.
    pub out_vsid_slot: u16,
}

/// What an entry's validity depends on (record slots or `u32::MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deps {
    /// Ingress VSID.
    pub in_vsid: u32,
    /// Egress VSID (differs when routed).
    pub out_vsid: u32,
    /// Destination record slot.
    pub dst_rec: u32,
    /// Source record slot (decapsulation anti-spoofing).
    pub src_rec: u32,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u32,
    key: FlowKey,
    action: Action,
    deps: Deps,
    generation: u64,
    global: u64,
    versions: [u64; 4],
}

/// Cache counters (owned by the worker; read via [`FlowCache::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups that found a valid entry.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
    /// Entries found but invalidated by a policy change.
    pub stale: u64,
    /// Entries written.
    pub inserts: u64,
    /// Inserts that replaced a live entry.
    pub evictions: u64,
    /// Misses not inserted because the cache was thrashing.
    pub skipped: u64,
    /// Entries in use (live or stale).
    pub occupied: u64,
}

/// Lookups per hit-rate window.
const WINDOW: u32 = 1024;

/// A per-worker exact-match cache.
#[derive(Debug)]
pub struct FlowCache {
    entries: Box<[Option<Entry>]>,
    mask: usize,
    stats: CacheStats,
    window_lookups: u32,
    window_hits: u32,
    thrashing: bool,
}

fn versions(t: &Tables, d: &Deps) -> Option<[u64; 4]> {
    let v = |vsid: u32| t.vsid(vsid).map(|e| e.version);
    let r = |slot: u32| if slot == u32::MAX { Some(0) } else { t.by_slot(slot).map(|d| d.version) };
    Some([v(d.in_vsid)?, v(d.out_vsid)?, r(d.dst_rec)?, r(d.src_rec)?])
}

impl FlowCache {
    /// A cache of `entries` entries (rounded up to a power of two, at least 64).
    pub fn new(entries: usize) -> Self {
        let n = entries.max(64).next_power_of_two();
        FlowCache { entries: vec![None; n].into_boxed_slice(), mask: n - 1, stats: CacheStats::default(), window_lookups: 0, window_hits: 0, thrashing: false }
    }

    /// Entry capacity.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Counters.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Live entries (a full scan: for reports and tests, not the hot path).
    pub fn len(&self) -> usize {
        self.entries.iter().filter(|e| e.is_some()).count()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    fn set(&self, hash: u32) -> usize {
        (hash as usize & self.mask) & !(WAYS - 1)
    }

    /// The action for `key` if cached and still valid under `t`.
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, hash: u32, t: &Tables) -> Option<&Action> {
        self.window_lookups += 1;
        if self.window_lookups >= WINDOW {
            self.thrashing = self.window_hits * 2 < self.window_lookups;
            self.window_lookups = 0;
            self.window_hits = 0;
        }
        let base = self.set(hash);
        let set = self.entries.get_mut(base..base + WAYS)?;
        for e in set.iter_mut().flatten() {
            if e.hash != hash || !e.key.same(key) {
                continue;
            }
            if e.generation != t.generation {
                if e.global != t.global_version || versions(t, &e.deps) != Some(e.versions) {
                    self.stats.stale += 1;
                    self.stats.misses += 1;
                    return None;
                }
                // Revalidated under a newer snapshot: the next hit is one compare.
                e.generation = t.generation;
            }
            self.stats.hits += 1;
            self.window_hits += 1;
            return Some(&e.action);
        }
        self.stats.misses += 1;
        None
    }

    /// Cache `action` for `key`, computed under `t` with dependencies `deps`.
    pub fn insert(&mut self, key: FlowKey, hash: u32, action: Action, deps: Deps, t: &Tables) {
        if self.thrashing && (hash >> 8) & 15 != 0 {
            self.stats.skipped += 1;
            return;
        }
        let Some(versions) = versions(t, &deps) else { return };
        let base = self.set(hash);
        let mut victim = base + ((hash >> 16) as usize & (WAYS - 1));
        for way in 0..WAYS {
            match self.entries.get(base + way) {
                Some(None) => {
                    victim = base + way;
                    break;
                }
                Some(Some(e)) if e.hash == hash && e.key.same(&key) => {
                    victim = base + way;
                    break;
                }
                Some(Some(e)) if e.generation != t.generation && e.global != t.global_version => {
                    victim = base + way;
                }
                _ => {}
            }
        }
        if let Some(slot) = self.entries.get_mut(victim) {
            match slot {
                Some(e) if !e.key.same(&key) => self.stats.evictions += 1,
                Some(_) => {}
                None => self.stats.occupied += 1,
            }
            *slot = Some(Entry { hash, key, action, deps, generation: t.generation, global: t.global_version, versions });
            self.stats.inserts += 1;
        }
    }

    /// Drop every entry.
    pub fn clear(&mut self) {
        self.entries.iter_mut().for_each(|e| *e = None);
        self.stats.occupied = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> Tables {
        let p = hnv_policy::parse(hnv_policy::example::BLUE_RED_HOST1, "t").unwrap();
        Tables::compile(&p, &mut Default::default(), &[], 1)
    }

    fn action(p: u16) -> Action {
        Action { step: Step::Port(p), decap: false, route: None, in_vsid_slot: 0, out_vsid_slot: 0 }
    }

    #[test]
    fn bounded_memory_under_a_flood_of_flows() {
        let t = tables();
        let mut c = FlowCache::new(1000);
        assert_eq!(c.capacity(), 1024);
        let deps = Deps { in_vsid: 5001, out_vsid: 5001, dst_rec: u32::MAX, src_rec: u32::MAX };
        for i in 0..100_000u64 {
            let k = FlowKey([i, 0, 0, 0, 0, 0, 0, 0]);
            let h = super::super::key::hash(&k);
            c.insert(k, h, action(1), deps, &t);
        }
        assert!(c.len() <= 1024);
        assert_eq!(c.stats().occupied as usize, c.len(), "the occupancy counter matches a full scan");
        assert_eq!(c.stats().inserts, 100_000, "insert() alone never thrashes: no lookups");
        // The most recent flows are found.
        let k = FlowKey([99_999, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(c.lookup(&k, super::super::key::hash(&k), &t).copied(), Some(action(1)));
        c.clear();
        assert_eq!((c.len(), c.stats().occupied), (0, 0));
    }
}

#[cfg(test)]
mod thrash_tests {
    use super::*;
    use crate::flow::key::hash;

    #[test]
    fn more_flows_than_entries_keep_a_stable_cached_subset() {
        let p = hnv_policy::parse(hnv_policy::example::BLUE_RED_HOST1, "t").unwrap();
        let t = Tables::compile(&p, &mut Default::default(), &[], 1);
        let deps = Deps { in_vsid: 5001, out_vsid: 5001, dst_rec: u32::MAX, src_rec: u32::MAX };
        let a = Action { step: Step::Port(1), decap: false, route: None, in_vsid_slot: 0, out_vsid_slot: 0 };
        let mut c = FlowCache::new(1024);
        // 16k flows replayed in order, like a pcap source: plain LRU-style
        // replacement would never hit; adaptive insertion keeps a subset.
        for _round in 0..8 {
            for i in 0..16_384u64 {
                let k = FlowKey([i, 0, 0, 0, 0, 0, 0, 0]);
                let h = hash(&k);
                if c.lookup(&k, h, &t).is_none() {
                    c.insert(k, h, a, deps, &t);
                }
            }
        }
        let s = c.stats();
        assert!(s.skipped > 0);
        // At most 1,024 of 16,384 flows (6.25 %) can be cached; a stable subset gets close to that.
        assert!(s.hits * 1000 / (s.hits + s.misses) >= 40, "{s:?}");
    }
}
