//! [`HnvSwitch`]: the per-worker HNV processor the poll loop calls.
//!
//! Per batch: load the policy snapshot once; run the batch through the
//! decision cache ([`crate::fast_path`]); run what missed through the full
//! pipeline ([`crate::slow_path`]), which fills the cache; then publish the
//! batch's tallies and the cache's counters once ([`crate::deliver`]).
//! Encapsulation lives in [`crate::encap`], ICMP too-big errors in [`crate::too_big`], MS-NVGREE messages in
//! [`crate::notify`].
//!
//! Thread-safety contract: one `HnvSwitch` per worker; it owns its
//! pipeline, its cache and its [`DatapathStats`] (which other threads only
//! read).

use crate::deliver::{Out, Tally};
use crate::fast_path::FastPath;
use crate::flow::cache::CacheStats;
use crate::flow::FlowCache;
use crate::forward::HnvForwarder;
use crate::notify::Notifier;
use crate::pipeline::Pipeline;
use crate::slow_path::SlowPath;
use crate::stats::DatapathStats;
use crate::store::PolicyStore;
use crate::tables::Tables;
use crate::too_big::TooBigLimiter;
use pmd::{Batch, PacketBuf, Processor, TxStage};
use std::sync::Arc;

pub use crate::encap::{encap, flow_id, flow_id_of};

/// One worker's HNV switch.
#[derive(Debug)]
pub struct HnvSwitch {
    store: Arc<PolicyStore>,
    pipeline: Pipeline<HnvForwarder>,
    stats: Arc<DatapathStats>,
    worker: usize,
    cache: Option<FlowCache>,
    fast: Box<FastPath>,
    tally: Box<Tally>,
    notifier: Notifier,
    icmp: TooBigLimiter,
    /// Cache counters already added to `stats`.
    published: CacheStats,
    /// Announcements (gratuitous ARP, [`crate::announce`]) sent: the store's request count when last sent.
    announced: u64,
}

/// Default minimum TSC cycles between two MS-NVGREE messages for one flow pair (~50 ms at 2 GHz).
pub const DEFAULT_NOTIFY_INTERVAL: u64 = 100_000_000;

/// Default decision-cache entries per worker.
pub const DEFAULT_CACHE_ENTRIES: usize = 1 << 16;

impl HnvSwitch {
    /// A switch reading `store`, running `pipeline`, counting into `stats`, with the default cache.
    pub fn new(store: Arc<PolicyStore>, pipeline: Pipeline<HnvForwarder>, stats: Arc<DatapathStats>, worker: usize) -> Self {
        let cache = FlowCache::new(DEFAULT_CACHE_ENTRIES);
        stats.flow_capacity.add(cache.capacity() as u64);
        // Totals read the settled summary from now on, even during the first batch.
        stats.end_batch();
        let announced = store_announced(&store);
        HnvSwitch {
            store,
            pipeline,
            stats,
            worker,
            cache: Some(cache),
            fast: Box::default(),
            tally: Box::default(),
            notifier: Notifier::new(DEFAULT_NOTIFY_INTERVAL),
            icmp: TooBigLimiter::default(),
            published: CacheStats::default(),
            announced,
        }
    }

    /// Send at most one MS-NVGREE message per (sending VM, destination CA) every `cycles` TSC cycles.
    pub fn with_notify_interval(mut self, cycles: u64) -> Self {
        self.notifier = Notifier::new(cycles);
        self
    }

    /// Send at most `burst` ICMP too-big errors at once, and one more every `cycles` TSC cycles.
    pub fn with_too_big_rate(mut self, cycles: u64, burst: u32) -> Self {
        self.icmp = TooBigLimiter::new(cycles, burst);
        self
    }

    /// Use a cache of `entries` entries (0 turns it off).
    pub fn with_cache(mut self, entries: usize) -> Self {
        let old = self.stats.flow_capacity.get();
        self.cache = (entries > 0).then(|| FlowCache::new(entries));
        let new = self.cache.as_ref().map_or(0, FlowCache::capacity) as u64;
        self.stats.flow_capacity.add(new.wrapping_sub(old));
        self
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<DatapathStats> {
        &self.stats
    }

    /// The cache, if on.
    pub fn cache(&self) -> Option<&FlowCache> {
        self.cache.as_ref()
    }

    /// Add the cache's counters since the last call to the stats.
    fn publish_cache(&mut self) {
        let Some(c) = self.cache.as_ref() else { return };
        let (now, st, was) = (c.stats(), &self.stats, &mut self.published);
        st.flow_hits.add(now.hits - was.hits);
        st.flow_misses.add(now.misses - was.misses);
        st.flow_inserts.add(now.inserts - was.inserts);
        st.flow_evictions.add(now.evictions - was.evictions);
        st.flow_stale.add(now.stale - was.stale);
        st.flow_entries.add(now.occupied.wrapping_sub(was.occupied));
        *was = now;
    }
}

/// VSID slot of originated provider frames: none (no VSID counter).
const ANNOUNCE_SLOT: u16 = u16::MAX;

/// Requests made before a worker starts are not its to answer.
fn store_announced(store: &PolicyStore) -> u64 {
    store.announce_requests()
}

impl HnvSwitch {
    /// Worker 0 answers an announcement request: one gratuitous ARP per IPv4
    /// PA, one unsolicited neighbor advertisement per IPv6 PA, out of its
    /// uplink ([`crate::announce`]), counted as originated (`replicas`) and sent (or
    /// dropped as `tx_overflow`, or `replica_alloc_failed` when no buffer is
    /// free), so
    /// `rx + replicas == tx + drops` still holds.
    fn announce<B: PacketBuf>(&mut self, out: &mut TxStage<B>, alloc: &mut dyn FnMut(&[u8]) -> Option<B>) {
        if self.worker != 0 {
            return;
        }
        let want = self.store.announce_requests();
        if want == self.announced {
            return;
        }
        self.announced = want;
        let tables = self.store.load();
        let st: &DatapathStats = &self.stats;
        let mut o = Out { tx: out, st, tally: &mut self.tally, in_port: 0, icmp: &mut self.icmp };
        for pa in &tables.local_pas {
            let (frame, len) = crate::announce::announcement(pa);
            st.replicas.add(1);
            o.in_port = pa.uplink;
            match frame.get(..len).and_then(&mut *alloc) {
                Some(p) => o.send(pa.uplink, ANNOUNCE_SLOT, p),
                None => st.drop(crate::drop::DropReason::ReplicaAllocFailed, pa.uplink, None),
            }
        }
        o.tally.publish(st, tables.ports.len());
        st.end_batch();
    }
}

impl<B: PacketBuf> Processor<B> for HnvSwitch {
    fn process(&mut self, in_port: u16, pkts: &mut Batch<B>, out: &mut TxStage<B>, now: u64) {
        let tables = self.store.load();
        let t: &Tables = &tables;
        let HnvSwitch { store, pipeline, stats, worker, cache, fast, tally, notifier, icmp, .. } = self;
        let st: &DatapathStats = stats;
        let n = pkts.len() as u64;
        st.rx.add(n);
        if st.policy_generation.get() != t.generation {
            st.policy_generation.set(t.generation);
        }
        if let Some(c) = st.ports.get(usize::from(in_port)) {
            c.rx.add(n);
        }
        let port = t.port(in_port);
        let mut o = Out { tx: out, st, tally, in_port, icmp };
        match (cache.as_mut(), port) {
            (Some(c), Some(p)) if pipeline.cacheable() => fast.run(c, t, store, now, in_port, p, pkts, &mut o),
            _ => fast.reset(),
        }
        if !pkts.is_empty() {
            let slow = SlowPath { t, store, worker: *worker, now };
            slow.run(pipeline, cache.as_mut(), fast, notifier, port.map(|p| p.role), pkts, &mut o);
        }
        o.tally.publish(st, t.ports.len());
        st.end_batch();
        self.publish_cache();
    }

    /// Send the gratuitous ARPs a failover asked for ([`HnvSwitch::announce`],
    /// worker 0 only), then the ARP requests and neighbor solicitations the
    /// control thread queued ([`PolicyStore::take_request`]), at most one
    /// burst per call: each is a locally originated frame, counted in
    /// `replicas` (requests also in `neighbor_requests`) and then as sent (or
    /// as a drop: no mbuf, full tx buffer), so `rx + replicas == tx + drops`
    /// still holds.
    fn originate(&mut self, out: &mut TxStage<B>, alloc: &mut dyn FnMut(&[u8]) -> Option<B>, _now: u64) {
        self.announce(out, alloc);
        let Some(first) = self.store.take_request() else { return };
        let st: &DatapathStats = &self.stats;
        let ports = self.store.load().ports.len();
        let mut o = Out { tx: out, st, tally: &mut self.tally, in_port: first.port, icmp: &mut self.icmp };
        let mut next = Some(first);
        let mut n = 0;
        while let Some(f) = next {
            o.in_port = f.port;
            st.replicas.add(1);
            st.neighbor_requests.add(1);
            match alloc(f.data()) {
                Some(p) => o.send(f.port, 0, p),
                None => o.drop(crate::DropReason::ReplicaAllocFailed, None),
            }
            n += 1;
            next = if n < pmd::BURST { self.store.take_request() } else { None };
        }
        o.tally.publish(st, ports);
        st.end_batch();
    }
}
