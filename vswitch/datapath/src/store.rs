//! The policy store: the control side publishes, workers read snapshots.
//!
//! Thread-safety contract: any thread may call [`PolicyStore::load`]; it is
//! lock-free (arc-swap) and workers call it once per batch. Writers
//! ([`PolicyStore::replace`], [`PolicyStore::apply_learned`],
//! [`PolicyStore::apply_control`], [`PolicyStore::expire_moved`]) serialise on an
//! internal mutex, compile the new tables off the datapath, and publish them
//! atomically; a packet sees either the old or the new snapshot, never a mix.
//! A policy that fails validation is rejected by [`hnv_policy`] before it
//! reaches the store, so the previous snapshot stays in force.
//!
//! Provider next hops ([`crate::neighbor`]): the control thread calls
//! [`PolicyStore::apply_learned`] every tick. It recomputes the next hops the
//! compiled tables need when the generation changed (each remote PA's next
//! hop, [`crate::neighbor::wanted`]), drains the (PA, MAC) pairs workers saw
//! in provider ARP and neighbor advertisements (a bounded lock-free queue; a
//! full queue drops the hint) into the [`Resolver`], runs its timers, and
//! queues the ARP requests and neighbor solicitations due as ready-made
//! frames ([`PolicyStore::take_request`]: a bounded lock-free queue that
//! workers drain at their tx drain tick; a full queue skips the request,
//! counted, and the backoff asks again). When a next hop's MAC is new,
//! changed or withdrawn it republishes (the whole compile: neighbors feed
//! every outer header). Static neighbors always win. Time is passed in,
//! never read here.
//!
//! MS-NVGREE: workers push received REDIRECT/UNREACHABLE messages into a
//! second bounded queue; [`PolicyStore::apply_control`] (control thread)
//! validates them, keeps notices, and republishes when a REDIRECT is applied.
//! A REDIRECT is accepted only when, in this order: REDIRECT handling is on
//! ([`PolicyStore::set_accept_redirects`]); the rate limit has a token
//! ([`REDIRECT_BURST`] at once, [`REDIRECT_RATE`] per second); the policy
//! places the CA at the sending PA; this host sent to that CA within
//! [`SENT_WINDOW_SECS`] (workers mark each record slot they encapsulate to
//! with [`PolicyStore::note_sent`]: one relaxed load and compare per packet,
//! a store only when the mark is older than an eighth of the window); the
//! quoted source CA is a local VM's address in the VSID it arrived in; the
//! new PA is a provider address the policy knows (a lookup record's PA, a
//! static neighbor, or an address on a provider subnet of this host, which
//! the neighbor resolver then resolves) and neither the sender nor this host; and the policy
//! with the new PA validates. Accepted and refused REDIRECTs are counted
//! ([`PolicyStore::redirect_counts`]).
//! The compiled tables then come from an *effective* policy: [`PolicyStore::policy`]
//! (what is saved and shown) with the PAs of redirected CAs replaced, until the
//! policy changes those records or the REDIRECT expires. Live migration: a
//! record that was local and becomes remote is marked moved for the grace
//! period ([`PolicyStore::expire_moved`]).

use crate::ingress::Learned;
use crate::neighbor::{self, Frame, Resolver};
use crate::tables::{Delivery, RecordChange, RecordSource, Tables, VsidSlots};
use arc_swap::{ArcSwap, Guard};
use crossbeam::queue::ArrayQueue;
use hnv_policy::api::{ChangeError, Request};
use hnv_policy::state::{Delta, PolicyState, RecordKey};
use hnv_policy::{Options, Policy, Vsid};
use hnv_wire::nvgree::{Control, ControlRepr};
use std::collections::HashMap;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// Learned-neighbor hints buffered between workers and the control thread.
const LEARN_QUEUE: usize = 1024;

#[derive(Debug)]
struct Inner {
    /// The policy in force, indexed.
    state: PolicyState,
    slots: VsidSlots,
    /// Provider next hops: states, timers, MACs.
    resolver: Resolver,
    /// The dynamic (IP, MAC) pairs the tables were compiled with.
    learned: Vec<Learned>,
    /// Generation whose next hops the resolver was last told.
    wanted_at: u64,
    /// Requests not queued because the queue was full.
    requests_skipped: u64,
    generation: u64,
    /// Records whose VM moved away from this host, with the end of their grace period.
    moved: Vec<(u32, Instant)>,
    grace: Duration,
    /// PAs changed by REDIRECT messages until the policy catches up or they expire.
    redirects: Vec<Redirected>,
    /// The latest control messages received, newest last.
    notices: VecDeque<Notice>,
    /// UNREACHABLE messages received so far.
    unreachable: u64,
    /// REDIRECT handling on (operator switch; default on).
    accept_redirects: bool,
    /// REDIRECTs applied / refused so far.
    redirects_accepted: u64,
    redirects_refused: u64,
    /// REDIRECT rate-limit tokens and when they were last refilled.
    tokens: u32,
    refilled: Option<Instant>,
    /// Reads the datapath clock (the `now` workers pass to [`PolicyStore::note_sent`]).
    clock: fn() -> u64,
}

/// How long a REDIRECT overrides the policy's PA for a CA (unless the policy changes first).
pub const REDIRECT_HOLD: Duration = Duration::from_secs(60);
/// Control messages remembered for `hnvctl show notices`.
const NOTICES: usize = 64;
/// A REDIRECT is accepted only for a CA this host encapsulated to within this many seconds.
pub const SENT_WINDOW_SECS: u64 = 2;
/// REDIRECTs handled at once before the rate limit bites.
pub const REDIRECT_BURST: u32 = 32;
/// REDIRECTs handled per second, sustained.
pub const REDIRECT_RATE: u32 = 32;
/// ARP requests and neighbor solicitations waiting for a worker to send them.
pub const REQUEST_QUEUE: usize = 256;
/// Sent marks: direct-mapped by record slot (low 16 bits), told apart by a 16-bit tag.
const SENT_MARKS: usize = 1 << 16;
/// Datapath time kept in a mark: the low 48 bits (compared modulo 2^48).
const TIME_MASK: u64 = (1 << 48) - 1;

/// The default datapath clock: nanoseconds since the first call (workers
/// that pass TSC cycles set theirs with [`PolicyStore::set_datapath_clock`]).
fn monotonic_ns() -> u64 {
    static ANCHOR: OnceLock<Instant> = OnceLock::new();
    ANCHOR.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// "This host encapsulated to record slot S at datapath time T", shared by all workers.
#[derive(Debug)]
struct SentMarks {
    /// `time << 16 | tag` per mark; 0 = never.
    marks: Box<[AtomicU64]>,
    /// Datapath ticks in the acceptance window.
    window: AtomicU64,
    /// A mark younger than this is not rewritten.
    refresh: AtomicU64,
}

impl SentMarks {
    fn new(ticks_per_sec: u64) -> Self {
        let s = SentMarks { marks: (0..SENT_MARKS).map(|_| AtomicU64::new(0)).collect(), window: AtomicU64::new(0), refresh: AtomicU64::new(0) };
        s.set_rate(ticks_per_sec);
        s
    }

    fn set_rate(&self, ticks_per_sec: u64) {
        let window = ticks_per_sec.saturating_mul(SENT_WINDOW_SECS).min(TIME_MASK / 4);
        self.window.store(window, Ordering::Relaxed);
        self.refresh.store(window / 8, Ordering::Relaxed);
    }

    #[inline]
    fn note(&self, slot: u32, now: u64) {
        let Some(m) = self.marks.get(slot as usize % SENT_MARKS) else { return };
        let tag = u64::from(slot >> 16);
        let t = (now & TIME_MASK).max(1);
        let old = m.load(Ordering::Relaxed);
        if old != 0 && old & 0xffff == tag && (t.wrapping_sub(old >> 16) & TIME_MASK) < self.refresh.load(Ordering::Relaxed) {
            return;
        }
        m.store(t << 16 | tag, Ordering::Relaxed);
    }

    fn recent(&self, slot: u32, now: u64) -> bool {
        let Some(m) = self.marks.get(slot as usize % SENT_MARKS) else { return false };
        let old = m.load(Ordering::Relaxed);
        if old == 0 || old & 0xffff != u64::from(slot >> 16) {
            return false;
        }
        let age = (now & TIME_MASK).wrapping_sub(old >> 16) & TIME_MASK;
        let window = self.window.load(Ordering::Relaxed);
        // A worker's clock may run slightly ahead of the control thread's.
        age <= window || age >= TIME_MASK - window
    }
}

/// A CA whose traffic goes to `new_pa` instead of the policy's `from` because
/// the host at `from` sent a REDIRECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redirected {
    /// VSID.
    pub vsid: u32,
    /// The VM's CA.
    pub ca: IpAddr,
    /// The PA the policy names (the host that sent the REDIRECT).
    pub from: IpAddr,
    /// Where the VM is now.
    pub new_pa: IpAddr,
    /// When the override ends.
    pub until: Instant,
}

/// A received MS-NVGREE control message and what the switch did with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// When it was handled.
    pub at: SystemTime,
    /// `redirect` or `unreachable`.
    pub kind: &'static str,
    /// VSID.
    pub vsid: u32,
    /// The CA it is about.
    pub ca: IpAddr,
    /// The host that sent it.
    pub from: IpAddr,
    /// The new PA (REDIRECT).
    pub new_pa: Option<IpAddr>,
    /// What was done.
    pub outcome: String,
}

/// How long a host keeps forwarding traffic for a VM that moved away.
pub const MIGRATION_GRACE: Duration = Duration::from_secs(5);

/// Memory the policy takes (see [`PolicyStore::memory`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Lookup records in the policy.
    pub records: usize,
    /// The compiled tables workers read.
    pub tables: crate::tables::Footprint,
    /// The policy model: the indexed lookup records (approximate).
    pub policy_bytes: usize,
    /// Record and VSID slot assignments (control side).
    pub slot_bytes: usize,
}

/// A change validated and compiled by [`PolicyStore::prepare`], not yet published.
#[derive(Debug)]
pub struct Prepared {
    /// The generation it follows.
    after: u64,
    tables: Arc<Tables>,
    state: PolicyState,
    slots: VsidSlots,
    moved: Vec<(u32, Instant)>,
    redirects: Vec<Redirected>,
}

impl Prepared {
    /// The generation it will publish.
    pub fn generation(&self) -> u64 {
        self.tables.generation
    }
}

/// Versioned policy snapshots.
#[derive(Debug)]
pub struct PolicyStore {
    current: ArcSwap<Tables>,
    inner: Mutex<Inner>,
    learn: ArrayQueue<Learned>,
    requests: ArrayQueue<Frame>,
    control: ArrayQueue<(u32, ControlRepr)>,
    sent: SentMarks,
    /// Gratuitous-ARP announcements asked for (see [`crate::announce`]).
    announce: std::sync::atomic::AtomicU64,
}

impl PolicyStore {
    /// Ask worker 0 to announce this host's PAs with gratuitous ARP (after an
    /// uplink failover); control side.
    pub fn request_announce(&self) {
        self.announce.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Announcements asked for so far (a worker compares it with the last it sent).
    pub fn announce_requests(&self) -> u64 {
        self.announce.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A store publishing `policy` as generation 1.
    pub fn new(policy: Policy) -> Self {
        let mut slots = VsidSlots::default();
        let started = Instant::now();
        let tables = Tables::compile(&policy, &mut slots, &[], 1);
        let f = tables.footprint();
        log::info!(
            "policy compiled in {} ms: {} lookup records, tables {} B/record ({} MiB)",
            started.elapsed().as_millis(),
            f.records,
            (f.record_bytes + f.map_bytes) / f.records.max(1),
            (f.record_bytes + f.map_bytes + f.template_bytes) >> 20
        );
        PolicyStore {
            current: ArcSwap::from_pointee(tables),
            inner: Mutex::new(Inner {
                state: PolicyState::new(policy),
                slots,
                resolver: Resolver::new(),
                learned: Vec::new(),
                wanted_at: 0,
                requests_skipped: 0,
                generation: 1,
                moved: Vec::new(),
                grace: MIGRATION_GRACE,
                redirects: Vec::new(),
                notices: VecDeque::new(),
                unreachable: 0,
                accept_redirects: true,
                redirects_accepted: 0,
                redirects_refused: 0,
                tokens: REDIRECT_BURST,
                refilled: None,
                clock: monotonic_ns,
            }),
            learn: ArrayQueue::new(LEARN_QUEUE),
            requests: ArrayQueue::new(REQUEST_QUEUE),
            control: ArrayQueue::new(LEARN_QUEUE),
            sent: SentMarks::new(1_000_000_000),
            announce: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current snapshot (lock-free; hold it for one batch).
    #[inline]
    pub fn load(&self) -> Guard<Arc<Tables>> {
        self.current.load()
    }

    /// The current snapshot as an owned `Arc`.
    pub fn snapshot(&self) -> Arc<Tables> {
        self.current.load_full()
    }

    /// Publish a new, already validated policy (a whole load: every table is
    /// compiled); returns its generation.
    pub fn replace(&self, policy: Policy) -> u64 {
        let mut g = self.lock();
        g.state = PolicyState::new(policy);
        Self::publish(&self.current, &mut g, &Delta { ports: true, routes: true, acl: true, subnets: true, records: Vec::new() })
    }

    /// Apply `changes` (records, routes, ACL rules, ports) as one transaction:
    /// validated together, published as one snapshot. Returns the generation
    /// now in force (unchanged when nothing changed); on error the policy in
    /// force stays as it was. Only what the changes touch is validated and
    /// compiled ([`PolicyState::apply`], [`Tables::update_records`]), unless
    /// the port list changes.
    ///
    /// # Errors
    /// The first change that is refused, with why.
    pub fn change(&self, changes: &[Request], options: Options) -> Result<u64, ChangeError> {
        let mut g = self.lock();
        let delta = g.state.apply(changes, options)?;
        if delta.is_empty() {
            return Ok(g.generation);
        }
        Ok(Self::publish(&self.current, &mut g, &delta))
    }

    /// Validate `changes` and compile the tables they give, without
    /// publishing: for port changes, whose tables should be ready before the
    /// workers pause ([`PolicyStore::commit`] then only swaps).
    ///
    /// # Errors
    /// As [`PolicyStore::change`].
    pub fn prepare(&self, changes: &[Request], options: Options) -> Result<Prepared, ChangeError> {
        let g = self.lock();
        let mut state = g.state.clone();
        let delta = state.apply(changes, options)?;
        let mut scratch = Inner {
            state,
            slots: g.slots.clone(),
            resolver: Resolver::new(),
            learned: g.learned.clone(),
            wanted_at: g.wanted_at,
            requests_skipped: 0,
            generation: g.generation,
            moved: g.moved.clone(),
            grace: g.grace,
            redirects: g.redirects.clone(),
            notices: VecDeque::new(),
            unreachable: 0,
            accept_redirects: g.accept_redirects,
            redirects_accepted: 0,
            redirects_refused: 0,
            tokens: 0,
            refilled: None,
            clock: g.clock,
        };
        drop(g);
        let cell = ArcSwap::new(self.current.load_full());
        let generation = Self::publish(&cell, &mut scratch, &delta);
        Ok(Prepared { after: generation - 1, tables: cell.load_full(), state: scratch.state, slots: scratch.slots, moved: scratch.moved, redirects: scratch.redirects })
    }

    /// Publish what [`PolicyStore::prepare`] compiled (an atomic pointer swap);
    /// refused when another change was published since.
    ///
    /// # Errors
    /// [`ChangeError::Conflict`] when the policy changed in between (prepare again).
    pub fn commit(&self, p: Prepared) -> Result<u64, ChangeError> {
        let mut g = self.lock();
        if g.generation != p.after {
            return Err(ChangeError::Conflict("the policy changed while the port change was being prepared; try again".into()));
        }
        g.generation = p.tables.generation;
        let old_state = std::mem::replace(&mut g.state, p.state);
        let old_slots = std::mem::replace(&mut g.slots, p.slots);
        g.moved = p.moved;
        g.redirects = p.redirects;
        let old_tables = self.current.swap(p.tables);
        // The caller may hold the workers paused: freeing a large policy takes
        // milliseconds, so it happens on a thread of its own (inline only if none starts).
        let _ = std::thread::Builder::new().name("hnv-free".into()).spawn(move || drop((old_state, old_slots, old_tables)));
        Ok(g.generation)
    }

    /// Compile and publish what `delta` says changed.
    fn publish(current: &ArcSwap<Tables>, g: &mut Inner, delta: &Delta) -> u64 {
        g.generation += 1;
        let generation = g.generation;
        let Inner { state, slots, learned, moved, grace, redirects, .. } = g;
        let learned: &[Learned] = learned;
        let prev = current.load_full();
        // A REDIRECT holds only while the policy still places the CA at its sender.
        redirects.retain(|r| Vsid::new(r.vsid).ok().and_then(|v| state.record(v, r.ca)).is_some_and(|rec| rec.pa == r.from));
        let redirected: HashMap<(u32, IpAddr), IpAddr> = redirects.iter().map(|r| ((r.vsid, r.ca), r.new_pa)).collect();
        let pa_of = |r: &hnv_policy::LookupRecord| redirected.get(&(r.vsid.get(), r.ca)).copied().unwrap_or(r.pa);
        let now = Instant::now();
        // Ports, and a subnet's encapsulation (every outer header of its records), take the whole compile.
        let whole = delta.ports || delta.subnets;
        let t = if whole {
            let mut t = Tables::compile_from(state.base(), &mut state.records().map(|r| (r, pa_of(r))), slots, learned, generation, Some(&prev));
            // A VM that was local and is now elsewhere: keep forwarding to it for a while.
            let newly: Vec<u32> = t.dests().filter(|d| was_local_now_remote(&prev, d)).map(|d| d.slot).collect();
            note_moved(moved, &newly, now + *grace);
            moved.retain(|(s, _)| t.by_slot(*s).is_some_and(is_remote));
            let marked: Vec<u32> = moved.iter().map(|(s, _)| *s).collect();
            t.mark_moved(&marked, Some(&prev));
            t
        } else {
            let mut t = if delta.routes || delta.acl { prev.update_vsids(state.base(), slots, generation) } else { (*prev).clone() };
            if !delta.records.is_empty() {
                let changes: Vec<RecordChange<'_>> = delta
                    .records
                    .iter()
                    .map(|&(v, ca)| {
                        let moved_now = slots.record_slot(v.get(), ca).is_some_and(|s| moved.iter().any(|(m, _)| *m == s));
                        RecordChange { vsid: v.get(), ca, record: state.record(v, ca).map(|r| (r, pa_of(r))), moved: moved_now }
                    })
                    .collect();
                t = t.update_records(state.base(), &changes, &Others(state), slots, learned, generation);
                let changed: Vec<u32> = delta.records.iter().filter_map(|&(v, ca)| slots.record_slot(v.get(), ca)).collect();
                let newly: Vec<u32> = changed.iter().filter_map(|&s| t.by_slot(s)).filter(|d| was_local_now_remote(&prev, d)).map(|d| d.slot).collect();
                note_moved(moved, &newly, now + *grace);
                moved.retain(|(s, _)| !changed.contains(s) || t.by_slot(*s).is_some_and(is_remote));
                let marked: Vec<u32> = newly.iter().copied().filter(|s| moved.iter().any(|(m, _)| m == s)).collect();
                t.mark_moved(&marked, Some(&prev));
            }
            t.generation = generation;
            t
        };
        let old = current.swap(Arc::new(t));
        if whole {
            retire(old);
        }
        generation
    }

    /// Republish the records in `keys` (a REDIRECT or a grace period began or ended for them).
    fn publish_records(current: &ArcSwap<Tables>, g: &mut Inner, keys: Vec<RecordKey>) -> u64 {
        Self::publish(current, g, &Delta { records: keys, ..Delta::default() })
    }

    /// Set the live-migration grace period (default [`MIGRATION_GRACE`]).
    pub fn set_migration_grace(&self, grace: Duration) {
        self.lock().grace = grace;
    }

    /// End grace periods that are over at `now`; republish if any ended. Returns true if republished.
    pub fn expire_moved(&self, now: Instant) -> bool {
        let mut g = self.lock();
        let ended: Vec<u32> = g.moved.iter().filter(|(_, until)| *until <= now).map(|(s, _)| *s).collect();
        if ended.is_empty() {
            return false;
        }
        g.moved.retain(|(_, until)| *until > now);
        let t = self.current.load();
        let keys: Vec<RecordKey> = ended.iter().filter_map(|&s| t.by_slot(s)).filter_map(|d| Some((Vsid::new(d.vsid).ok()?, d.ca))).collect();
        drop(t);
        Self::publish_records(&self.current, &mut g, keys);
        true
    }

    /// The policy in force (a copy of every record: for saving and showing it whole).
    pub fn policy(&self) -> Policy {
        self.lock().state.to_policy()
    }

    /// What the policy in force takes in memory, by part.
    pub fn memory(&self) -> Memory {
        let g = self.lock();
        Memory { records: g.state.record_count(), tables: self.current.load().footprint(), policy_bytes: g.state.record_bytes(), slot_bytes: g.slots.bytes() }
    }

    /// Lookup records in force.
    pub fn record_count(&self) -> usize {
        self.lock().state.record_count()
    }

    /// VSID of each counter slot.
    pub fn vsid_slots(&self) -> Vec<(u16, u32)> {
        self.lock().slots.vsids()
    }

    /// Offer a provider (IP, MAC) pair seen in ARP or a neighbor
    /// advertisement on an uplink (called by workers; never blocks).
    #[inline]
    pub fn offer_learned(&self, n: Learned) {
        let _ = self.learn.push(n);
    }

    /// The next ARP request or neighbor solicitation to send (called by
    /// workers at their drain tick; lock-free, never blocks).
    #[inline]
    pub fn take_request(&self) -> Option<Frame> {
        self.requests.pop()
    }

    /// The control thread's neighbor tick at `now` (see the module
    /// contract): follow the next hops the policy needs, take what workers
    /// heard, queue the requests due, and republish if a next hop's MAC is
    /// new, changed or withdrawn. Returns true if republished.
    pub fn apply_learned(&self, now: Instant) -> bool {
        let mut g = self.lock();
        let mut changed = false;
        if g.wanted_at != g.generation {
            let t = self.current.load();
            let ports = t.ports.clone();
            let uplink = |name: &str| ports.iter().position(|p| p.name == name && p.role == crate::tables::Role::Uplink).map(|i| i as u16);
            let h = &g.state.base().host;
            let wants = neighbor::wanted(h, t.remote_pas(), &uplink);
            let statics: Vec<Learned> = h.neighbors.iter().map(|n| (n.address, n.mac.0)).collect();
            drop(t);
            g.wanted_at = g.generation;
            changed |= g.resolver.set_wanted(&wants, &statics, now);
        }
        while let Some((ip, mac)) = self.learn.pop() {
            if let Ok(c) = g.resolver.heard(ip, mac, now) {
                changed |= c;
            }
        }
        let mut skipped = 0;
        changed |= g.resolver.poll(now, &mut |r| {
            if let Some(f) = neighbor::request_frame(&r) {
                if self.requests.push(f).is_err() {
                    skipped += 1;
                }
            }
        });
        g.requests_skipped += skipped;
        if changed {
            g.learned = g.resolver.macs();
            // Neighbors feed the outer headers of every record: the whole compile.
            Self::publish(&self.current, &mut g, &Delta { ports: true, ..Delta::default() });
            g.wanted_at = g.generation;
        }
        changed
    }

    /// The neighbor table and its counters, and requests skipped because the queue was full.
    pub fn neighbors(&self) -> (Vec<neighbor::Entry>, neighbor::Counts, u64) {
        let g = self.lock();
        (g.resolver.entries(), g.resolver.counts(), g.requests_skipped)
    }

    /// Mark record slot `slot` as encapsulated to at datapath time `now`
    /// (called by workers per encapsulated packet: one relaxed load and
    /// compare, a relaxed store at most every eighth of the window).
    #[inline]
    pub fn note_sent(&self, slot: u32, now: u64) {
        self.sent.note(slot, now);
    }

    /// How often (datapath ticks) a worker needs to mark a record it keeps
    /// sending to: a mark younger than this is not rewritten anyway. The
    /// fast path keeps the time it last marked in the cache entry and calls
    /// [`PolicyStore::note_sent`] only when this much has passed.
    #[inline]
    pub fn note_refresh(&self) -> u64 {
        self.sent.refresh.load(Ordering::Relaxed)
    }

    /// The datapath clock workers pass as `now` and its ticks per second
    /// (default: nanoseconds since the first store was made).
    pub fn set_datapath_clock(&self, clock: fn() -> u64, ticks_per_sec: u64) {
        self.lock().clock = clock;
        self.sent.set_rate(ticks_per_sec);
    }

    /// Turn REDIRECT handling on or off (default on); off also ends the REDIRECTs in force
    /// at the next [`PolicyStore::apply_control`].
    pub fn set_accept_redirects(&self, on: bool) {
        self.lock().accept_redirects = on;
    }

    /// REDIRECTs (accepted, refused) so far.
    pub fn redirect_counts(&self) -> (u64, u64) {
        let g = self.lock();
        (g.redirects_accepted, g.redirects_refused)
    }

    /// Offer a received control message (called by workers; never blocks).
    #[inline]
    pub fn offer_control(&self, vsid: u32, msg: ControlRepr) {
        let _ = self.control.push((vsid, msg));
    }

    /// Handle queued control messages and end expired REDIRECTs; republish
    /// if the effective policy changed. Returns true if republished.
    ///
    /// A REDIRECT is applied only when the policy places the CA at the PA
    /// that sent it, the new PA differs, and the policy with the new PA
    /// validates; it then holds until the policy changes that record or
    /// [`REDIRECT_HOLD`] passes. An UNREACHABLE is logged and kept as a
    /// notice for the operator: this host's policy is stale for that CA.
    pub fn apply_control(&self, now: Instant) -> bool {
        let clock = self.lock().clock;
        self.apply_control_at(now, clock())
    }

    /// [`PolicyStore::apply_control`] with the datapath clock read as `dp_now`.
    pub fn apply_control_at(&self, now: Instant, dp_now: u64) -> bool {
        let mut g = self.lock();
        let on = g.accept_redirects;
        // Records whose effective PA changes: REDIRECTs ended or applied.
        let mut touched: Vec<RecordKey> = g.redirects.iter().filter(|r| !(on && r.until > now)).filter_map(|r| Some((Vsid::new(r.vsid).ok()?, r.ca))).collect();
        g.redirects.retain(|r| on && r.until > now);
        // Refill the rate limit.
        let last = *g.refilled.get_or_insert(now);
        let add = now.saturating_duration_since(last).as_millis().saturating_mul(u128::from(REDIRECT_RATE)) / 1000;
        if add > 0 {
            g.tokens = u128::from(g.tokens).saturating_add(add).min(u128::from(REDIRECT_BURST)) as u32;
            g.refilled = Some(now);
        }
        while let Some((vsid, msg)) = self.control.pop() {
            let ca = IpAddr::V4(msg.dst_ca);
            let from = IpAddr::V4(msg.from_pa);
            let (kind, new_pa, outcome) = match msg.control {
                Control::Unreachable if record_in_domain(&g.state, vsid, ca).is_none_or(|r| r.pa != from) => ("unreachable", None, format!("ignored: this host does not send CA {ca} to {from}")),
                Control::Unreachable => {
                    g.unreachable += 1;
                    ("unreachable", None, format!("the host at {from} has no VM with CA {ca} in VSID {vsid}: this host's policy may be stale"))
                }
                Control::Redirect { new_pa } => {
                    let new_pa = IpAddr::V4(new_pa);
                    let checked = if !g.accept_redirects {
                        Err("REDIRECT handling is off".to_string())
                    } else if g.tokens == 0 {
                        Err("rate limit".to_string())
                    } else {
                        g.tokens -= 1;
                        let quoted = IpAddr::V4(msg.src_ca);
                        // The cheap checks first; `redirect` then validates the policy with the new PA.
                        match record_in_domain(&g.state, vsid, ca).filter(|r| r.pa == from) {
                            None => Err(format!("the policy does not place CA {ca} (routing domain of VSID {vsid}) at the sender {from}")),
                            Some(rec) if !g.slots.record_slot(rec.vsid.get(), ca).is_some_and(|s| self.sent.recent(s, dp_now)) => {
                                Err(format!("this host has not sent to CA {ca} in VSID {} within {SENT_WINDOW_SECS} s", rec.vsid.get()))
                            }
                            Some(_) if !g.state.base().ports.iter().any(|p| p.role == hnv_policy::PortRole::Vm && p.vsid.is_some_and(|pv| pv.get() == vsid) && p.addresses.contains(&quoted)) => {
                                Err(format!("the quoted source {quoted} is not a local VM's address in VSID {vsid}"))
                            }
                            Some(_) => redirect(&g.state, self.current.load().uses_pa(new_pa), vsid, ca, from, new_pa),
                        }
                    };
                    let outcome = match checked {
                        Ok(vsid) => {
                            g.redirects.retain(|r| !(r.vsid == vsid && r.ca == ca));
                            g.redirects.push(Redirected { vsid, ca, from, new_pa, until: now + REDIRECT_HOLD });
                            g.redirects_accepted += 1;
                            touched.extend(Vsid::new(vsid).ok().map(|v| (v, ca)));
                            format!("applied: CA {ca} in VSID {vsid} now encapsulated to {new_pa} until the policy changes (at most {} s)", REDIRECT_HOLD.as_secs())
                        }
                        Err(why) => {
                            g.redirects_refused += 1;
                            format!("ignored: {why}")
                        }
                    };
                    ("redirect", Some(new_pa), outcome)
                }
            };
            if outcome.starts_with("ignored") {
                log::debug!("MS-NVGREE {kind} from {from}: {outcome}");
            } else {
                log::info!("MS-NVGREE {kind} from {from}: {outcome}");
            }
            if g.notices.len() == NOTICES {
                g.notices.pop_front();
            }
            g.notices.push_back(Notice { at: SystemTime::now(), kind, vsid, ca, from, new_pa, outcome });
        }
        touched.sort_unstable();
        touched.dedup();
        if touched.is_empty() {
            return false;
        }
        Self::publish_records(&self.current, &mut g, touched);
        true
    }

    /// UNREACHABLE messages received so far (a policy source may resynchronise when it grows).
    pub fn unreachable_received(&self) -> u64 {
        self.lock().unreachable
    }

    /// REDIRECTs in force.
    pub fn redirects(&self) -> Vec<Redirected> {
        self.lock().redirects.clone()
    }

    /// The latest control messages received, oldest first.
    pub fn notices(&self) -> Vec<Notice> {
        self.lock().notices.iter().cloned().collect()
    }

    /// The dynamic provider neighbors (resolved or learned) the tables use.
    pub fn learned(&self) -> Vec<Learned> {
        self.lock().learned.clone()
    }
}

/// Free a replaced snapshot here rather than on a worker: a whole compile's
/// previous tables share nothing with the new ones, and freeing a million
/// records takes milliseconds. Workers hold a snapshot for one batch, so wait
/// (at most ~10 ms) until this is the last reference.
fn retire(old: Arc<Tables>) {
    for _ in 0..100 {
        if Arc::strong_count(&old) == 1 {
            break;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    drop(old);
}

/// Answers [`RecordSource`] from the policy in force.
struct Others<'a>(&'a PolicyState);

impl RecordSource for Others<'_> {
    fn other_with_mac(&self, vsid: u32, mac: [u8; 6], except: IpAddr) -> Option<IpAddr> {
        let v = Vsid::new(vsid).ok()?;
        self.0.records_of(v).find(|r| r.mac.0 == mac && r.ca != except && r.kind != hnv_policy::RecordType::GatewayWildcard).map(|r| r.ca)
    }
}

/// Record `d` was delivered locally in `prev` and is encapsulated now: its VM moved away.
fn was_local_now_remote(prev: &Tables, d: &crate::tables::Dest) -> bool {
    is_remote(d) && prev.by_slot(d.slot).is_some_and(|o| matches!(o.to, Delivery::Local(_)))
}

/// Record `d` is at another host: encapsulated, or waiting for its next hop's
/// MAC (a VM that just moved to a host this one never sent to: its grace
/// period must start now, not when the new PA is resolved).
fn is_remote(d: &crate::tables::Dest) -> bool {
    matches!(d.to, Delivery::Encap(_) | Delivery::Unresolved)
}

/// Start the grace period of the `newly` moved record slots (until `until`).
fn note_moved(moved: &mut Vec<(u32, Instant)>, newly: &[u32], until: Instant) {
    for &s in newly {
        if !moved.iter().any(|(m, _)| *m == s) {
            moved.push((s, until));
        }
    }
}

/// The record of `ca` in the routing domain of `vsid` (a message arrives in
/// the sending VM's VSID, which for routed traffic is not the CA's own).
fn record_in_domain(state: &PolicyState, vsid: u32, ca: IpAddr) -> Option<&hnv_policy::LookupRecord> {
    let base = state.base();
    let rd = base.subnets.iter().find(|s| s.vsid.get() == vsid).map(|s| &s.routing_domain)?;
    base.subnets.iter().filter(|s| &s.routing_domain == rd).find_map(|s| state.record(s.vsid, ca))
}

/// Whether a REDIRECT received in `vsid` for `ca` from `from` to `new_pa` may be
/// applied; the VSID of the CA's record if so.
/// `known_pa`: some record encapsulates to `new_pa` now.
fn redirect(state: &PolicyState, known_pa: bool, vsid: u32, ca: IpAddr, from: IpAddr, new_pa: IpAddr) -> Result<u32, String> {
    let rec = record_in_domain(state, vsid, ca).ok_or_else(|| format!("no lookup record for CA {ca} in the routing domain of VSID {vsid}"))?;
    let vsid = rec.vsid.get();
    if rec.pa != from {
        return Err(format!("the policy places CA {ca} at {}, not at the sender {from}", rec.pa));
    }
    let host = &state.base().host;
    if new_pa == from || host.provider_addresses.iter().any(|p| p.address == new_pa) {
        return Err(format!("new PA {new_pa} is the sender itself or this host"));
    }
    // Known: a record's PA, a static neighbor, or an address on one of this
    // host's provider subnets (which the neighbor resolver then asks for).
    let on_link = host.provider_addresses.iter().any(|p| p.subnet().contains(new_pa));
    if !known_pa && host.neighbor(new_pa).is_none() && !on_link {
        return Err(format!("new PA {new_pa} is not a provider address the policy knows (no lookup record or static neighbor names it, and it is on no provider subnet of this host)"));
    }
    // The policy with the record at the new PA must validate (its neighbourhood does).
    let mut moved = hnv_policy::file::LookupFile::from_record(rec);
    moved.pa = new_pa.to_string();
    state.check(&[Request::ReplaceRecord { record: moved }], Options::default()).map(|()| vsid).map_err(|e| e.to_string().replace('\n', "; "))
}
