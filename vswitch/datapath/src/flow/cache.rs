//! The per-worker decision cache: a compact, fixed-size, 8-way hash table
//! owned by one worker (DPDK rte_hash's layout, OVS SMC's signatures).
//!
//! Layout, by how often a lookup touches it:
//! - signatures: one 16-byte bucket of eight 16-bit signatures per set (four
//!   buckets a cache line); 0 means an empty way;
//! - keys: one 64-byte [`FlowKey`] per entry (entry = bucket × 8 + way),
//!   read only for ways whose signature matched;
//! - hot: the [`Action`] and the snapshot generation it was last valid in;
//! - cold: what the entry depends on and the versions it saw, read only when
//!   the generation differs (a policy change since the last hit).
//!
//! A batch first hashes every key and prefetches its bucket
//! ([`FlowCache::prefetch_bucket`]), then looks each up ([`FlowCache::find`])
//! and counts hits and misses once ([`FlowCache::account`]), so memory
//! latency overlaps across the batch. Memory is bounded by the entry count chosen at
//! creation. An insert takes the first empty or stale way of its bucket,
//! else the way the hash picks, so a flood of new decisions evicts at a
//! bounded cost and never grows memory. When more decisions are live than
//! the cache holds (hit rate below one half over the last 1,024 lookups),
//! only one miss in 16 (chosen by hash, so the same ones each time) is
//! inserted, as OVS's EMC does.
//!
//! An entry is used only while the versions it recorded still match the
//! snapshot (see [`crate::flow`]).

use super::key::FlowKey;
use crate::drop::DropReason;
use crate::tables::Tables;

/// Ways per bucket.
pub const WAYS: usize = 8;

/// What to do with a packet of a cached flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send out of a switch port.
    Port(u16),
    /// Encapsulate with the template of the record in `slot` (the FlowID is
    /// computed per packet).
    Encap {
        /// Record slot.
        slot: u32,
    },
    /// Drop, counted under the reason.
    Drop(DropReason),
}

/// A cached outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    /// The final step.
    pub step: Step,
    /// Remove this many bytes of outer header first (42 for NVGRE, 50 for
    /// VXLAN, over untagged IPv4); 0 = not decapsulated.
    pub decap: u8,
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

/// The 8 signatures of one bucket.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(16))]
struct Sigs([u16; WAYS]);

#[derive(Debug, Clone, Copy)]
struct Hot {
    action: Action,
    /// Generation of the snapshot the entry was last found valid in.
    generation: u64,
    /// Datapath time at which this entry's record was last marked as sent
    /// to ([`crate::PolicyStore::note_sent`]).
    noted: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Cold {
    deps: Deps,
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

/// A per-worker decision cache.
#[derive(Debug)]
pub struct FlowCache {
    sigs: Box<[Sigs]>,
    keys: Box<[FlowKey]>,
    hot: Box<[Hot]>,
    cold: Box<[Cold]>,
    bucket_mask: usize,
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

/// The signature of `hash` (never 0, which marks an empty way).
#[inline(always)]
fn sig(hash: u64) -> u16 {
    (hash >> 48) as u16 | 1
}

/// The candidate ways of bucket `s` for signature `want`, as a bitmap where
/// way `w` is bit `16 * (w % 4) + w / 4` (SWAR over the two 64-bit halves;
/// may flag extra ways, never misses one). Decode with [`way_of`].
#[inline(always)]
fn matches(s: &Sigs, want: u16) -> u64 {
    const LO: u64 = 0x0001_0001_0001_0001;
    const HI: u64 = 0x8000_8000_8000_8000;
    let b = LO.wrapping_mul(u64::from(want));
    let half = |i: usize| {
        let w = u64::from(s.0[i]) | u64::from(s.0[i + 1]) << 16 | u64::from(s.0[i + 2]) << 32 | u64::from(s.0[i + 3]) << 48;
        let x = w ^ b;
        x.wrapping_sub(LO) & !x & HI
    };
    half(0) >> 15 | half(4) >> 14
}

/// The way of the lowest bit of a [`matches`] bitmap.
#[inline(always)]
fn way_of(m: u64) -> usize {
    let b = m.trailing_zeros() as usize;
    b >> 4 | (b & 1) << 2
}

impl FlowCache {
    /// A cache of `entries` entries (rounded up to a power of two, at least 64).
    pub fn new(entries: usize) -> Self {
        let n = entries.max(64).next_power_of_two();
        let buckets = n / WAYS;
        let none = Hot { action: Action { step: Step::Drop(DropReason::Malformed), decap: 0, route: None, in_vsid_slot: 0, out_vsid_slot: 0 }, generation: u64::MAX, noted: 0 };
        FlowCache {
            sigs: vec![Sigs::default(); buckets].into_boxed_slice(),
            keys: vec![FlowKey::default(); n].into_boxed_slice(),
            hot: vec![none; n].into_boxed_slice(),
            cold: vec![Cold::default(); n].into_boxed_slice(),
            bucket_mask: buckets - 1,
            stats: CacheStats::default(),
            window_lookups: 0,
            window_hits: 0,
            thrashing: false,
        }
    }

    /// Entry capacity.
    pub fn capacity(&self) -> usize {
        self.keys.len()
    }

    /// Counters.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Entries in use (a full scan: for reports and tests, not the hot path).
    pub fn len(&self) -> usize {
        self.sigs.iter().map(|s| s.0.iter().filter(|&&x| x != 0).count()).sum()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline(always)]
    fn bucket(&self, hash: u64) -> usize {
        hash as usize & self.bucket_mask
    }

    /// Stage 1: hint the CPU to load the bucket of `hash`.
    #[inline(always)]
    pub fn prefetch_bucket(&self, hash: u64) {
        if let Some(s) = self.sigs.get(self.bucket(hash)) {
            pmd::prefetch(s);
        }
    }

    /// The entry index of `key` if cached and still valid under `t`
    /// (stale entries count in [`CacheStats::stale`]; hits and misses are
    /// counted by the caller, once per batch, through [`FlowCache::account`]).
    #[inline(always)]
    pub fn find(&mut self, key: &FlowKey, hash: u64, t: &Tables) -> Option<u32> {
        let b = self.bucket(hash);
        let mut m = matches(self.sigs.get(b)?, sig(hash));
        while m != 0 {
            let i = b * WAYS + way_of(m);
            m &= m - 1;
            if !self.keys.get(i).is_some_and(|k| k.same(key)) {
                continue;
            }
            let hot = self.hot.get_mut(i)?;
            if hot.generation != t.generation {
                let cold = self.cold.get(i).copied().unwrap_or_default();
                if cold.global != t.global_version || versions(t, &cold.deps) != Some(cold.versions) {
                    self.stats.stale += 1;
                    return None;
                }
                // Revalidated under a newer snapshot: the next hit is one compare.
                hot.generation = t.generation;
            }
            return Some(i as u32);
        }
        None
    }

    /// Count a batch's `hits` and `misses` (and update the hit-rate window
    /// that turns thrash protection on and off).
    #[inline]
    pub fn account(&mut self, hits: u32, misses: u32) {
        self.stats.hits += u64::from(hits);
        self.stats.misses += u64::from(misses);
        self.window_lookups += hits + misses;
        self.window_hits += hits;
        if self.window_lookups >= WINDOW {
            self.thrashing = self.window_hits * 2 < self.window_lookups;
            self.window_lookups = 0;
            self.window_hits = 0;
        }
    }

    /// True (and the entry stamped with `now`) when entry `i` was last marked
    /// as sent to at least `refresh` ticks ago: its caller marks the record.
    #[inline(always)]
    pub fn note_due(&mut self, i: u32, now: u64, refresh: u64) -> bool {
        match self.hot.get_mut(i as usize) {
            Some(h) if now.wrapping_sub(h.noted) >= refresh => {
                h.noted = now;
                true
            }
            _ => false,
        }
    }

    /// The action of entry `i` (from [`FlowCache::find`]).
    #[inline(always)]
    pub fn action(&self, i: u32) -> Option<&Action> {
        self.hot.get(i as usize).map(|h| &h.action)
    }

    /// The action for `key` if cached and still valid under `t`, counted
    /// as one lookup.
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey, hash: u64, t: &Tables) -> Option<&Action> {
        let i = self.find(key, hash, t);
        self.account(u32::from(i.is_some()), u32::from(i.is_none()));
        self.action(i?)
    }

    /// Cache `action` for `key`, computed under `t` with dependencies `deps`.
    pub fn insert(&mut self, key: FlowKey, hash: u64, action: Action, deps: Deps, t: &Tables) {
        if self.thrashing && (hash >> 8) & 15 != 0 {
            self.stats.skipped += 1;
            return;
        }
        let Some(versions) = versions(t, &deps) else { return };
        let b = self.bucket(hash);
        let Some(sigs) = self.sigs.get(b).copied() else { return };
        let base = b * WAYS;
        let same = matches(&sigs, sig(hash));
        let mut way = (hash >> 16) as usize % WAYS;
        let mut found = false;
        for w in 0..WAYS {
            let i = base + w;
            if sigs.0[w] == 0 {
                way = w;
                break;
            }
            if same & (1 << (16 * (w % 4) + w / 4)) != 0 && self.keys.get(i).is_some_and(|k| k.same(&key)) {
                way = w;
                found = true;
                break;
            }
            let stale =
                self.hot.get(i).is_some_and(|h| h.generation != t.generation) && self.cold.get(i).is_some_and(|c| c.global != t.global_version || self::versions(t, &c.deps) != Some(c.versions));
            if stale {
                way = w;
            }
        }
        let i = base + way;
        match sigs.0[way] {
            0 => self.stats.occupied += 1,
            _ if !found => self.stats.evictions += 1,
            _ => {}
        }
        if let (Some(s), Some(k), Some(h), Some(c)) = (self.sigs.get_mut(b), self.keys.get_mut(i), self.hot.get_mut(i), self.cold.get_mut(i)) {
            s.0[way] = sig(hash);
            *k = key;
            *h = Hot { action, generation: t.generation, noted: 0 };
            *c = Cold { deps, global: t.global_version, versions };
            self.stats.inserts += 1;
        }
    }

    /// Drop every entry.
    pub fn clear(&mut self) {
        self.sigs.iter_mut().for_each(|s| *s = Sigs::default());
        self.stats.occupied = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::hash;

    fn tables() -> Tables {
        let p = hnv_policy::parse(hnv_policy::example::BLUE_RED_HOST1, "t").unwrap();
        Tables::compile(&p, &mut Default::default(), &[], 1)
    }

    fn action(p: u16) -> Action {
        Action { step: Step::Port(p), decap: 0, route: None, in_vsid_slot: 0, out_vsid_slot: 0 }
    }

    const DEPS: Deps = Deps { in_vsid: 5001, out_vsid: 5001, dst_rec: u32::MAX, src_rec: u32::MAX };

    #[test]
    fn signature_matching_finds_every_way() {
        let mut s = Sigs::default();
        for w in 0..WAYS {
            s.0[w] = 0x1000 + w as u16;
        }
        let ways = |mut m: u64| {
            let mut v = Vec::new();
            while m != 0 {
                v.push(way_of(m));
                m &= m - 1;
            }
            v
        };
        for w in 0..WAYS {
            assert!(ways(matches(&s, 0x1000 + w as u16)).contains(&w), "way {w}");
        }
        assert_eq!(matches(&s, 0x7777), 0);
        s.0[3] = 0x4242;
        s.0[6] = 0x4242;
        let m = ways(matches(&s, 0x4242));
        assert!(m.contains(&3) && m.contains(&6), "{m:?}");
    }

    #[test]
    fn bounded_memory_under_a_flood_of_flows() {
        let t = tables();
        let mut c = FlowCache::new(1000);
        assert_eq!(c.capacity(), 1024);
        for i in 0..100_000u64 {
            let k = FlowKey([i, 0, 0, 0, 0, 0, 0, 0]);
            c.insert(k, hash(&k), action(1), DEPS, &t);
        }
        assert!(c.len() <= 1024);
        assert_eq!(c.stats().occupied as usize, c.len(), "the occupancy counter matches a full scan");
        assert_eq!(c.stats().inserts, 100_000, "insert() alone never thrashes: no lookups");
        // The most recent flows are found.
        let k = FlowKey([99_999, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(c.lookup(&k, hash(&k), &t).copied(), Some(action(1)));
        c.clear();
        assert_eq!((c.len(), c.stats().occupied), (0, 0));
        assert_eq!(c.lookup(&k, hash(&k), &t), None);
    }

    #[test]
    fn a_reinsert_updates_in_place_and_a_newer_policy_revalidates() {
        let t = tables();
        let mut c = FlowCache::new(64);
        let k = FlowKey([7, 1, 2, 3, 4, 5, 6, 7]);
        c.insert(k, hash(&k), action(1), DEPS, &t);
        c.insert(k, hash(&k), action(2), DEPS, &t);
        assert_eq!(c.len(), 1);
        assert_eq!(c.lookup(&k, hash(&k), &t).copied(), Some(action(2)));
        let mut newer = t.clone();
        newer.generation += 1;
        assert_eq!(c.lookup(&k, hash(&k), &newer).copied(), Some(action(2)), "nothing it depends on changed");
        let mut moved = newer.clone();
        moved.generation += 1;
        moved.global_version = moved.generation;
        assert_eq!(c.lookup(&k, hash(&k), &moved), None, "host-level state changed");
        assert_eq!(c.stats().stale, 1);
    }

    #[test]
    fn more_flows_than_entries_keep_a_stable_cached_subset() {
        let t = tables();
        let mut c = FlowCache::new(1024);
        // 16k decisions replayed in order, like a pcap source: plain
        // replacement would never hit; adaptive insertion keeps a subset.
        for _round in 0..8 {
            for i in 0..16_384u64 {
                let k = FlowKey([i, 0, 0, 0, 0, 0, 0, 0]);
                let h = hash(&k);
                if c.lookup(&k, h, &t).is_none() {
                    c.insert(k, h, action(1), DEPS, &t);
                }
            }
        }
        let s = c.stats();
        assert!(s.skipped > 0);
        // At most 1,024 of 16,384 (6.25 %) can be cached; a stable subset gets close to that.
        assert!(s.hits * 1000 / (s.hits + s.misses) >= 40, "{s:?}");
    }
}
