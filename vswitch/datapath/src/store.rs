//! The policy store: the control side publishes, workers read snapshots.
//!
//! Thread-safety contract: any thread may call [`PolicyStore::load`]; it is
//! lock-free (arc-swap) and workers call it once per batch. Writers
//! ([`PolicyStore::replace`], [`PolicyStore::apply_learned`]) serialise on an
//! internal mutex, compile the new tables off the datapath, and publish them
//! atomically; a packet sees either the old or the new snapshot, never a mix.
//! A policy that fails validation is rejected by [`hnv_policy`] before it
//! reaches the store, so the previous snapshot stays in force.
//!
//! Provider-side neighbor learning: workers push (PA, MAC) pairs into a
//! bounded lock-free queue (a full queue drops the hint); the control thread
//! drains it with [`PolicyStore::apply_learned`] and republishes when a next
//! hop's MAC is new or changed.

use crate::ingress::Learned;
use crate::tables::{Tables, VsidSlots};
use arc_swap::{ArcSwap, Guard};
use crossbeam::queue::ArrayQueue;
use hnv_policy::Policy;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Learned-neighbor hints buffered between workers and the control thread.
const LEARN_QUEUE: usize = 1024;

#[derive(Debug)]
struct Inner {
    policy: Policy,
    slots: VsidSlots,
    learned: Vec<Learned>,
    generation: u64,
    /// Records whose VM moved away from this host, with the end of their grace period.
    moved: Vec<(u32, Instant)>,
    grace: Duration,
}

/// How long a host keeps forwarding traffic for a VM that moved away.
pub const MIGRATION_GRACE: Duration = Duration::from_secs(5);

/// Versioned policy snapshots.
#[derive(Debug)]
pub struct PolicyStore {
    current: ArcSwap<Tables>,
    inner: Mutex<Inner>,
    learn: ArrayQueue<Learned>,
}

impl PolicyStore {
    /// A store publishing `policy` as generation 1.
    pub fn new(policy: Policy) -> Self {
        let mut slots = VsidSlots::default();
        let tables = Tables::compile(&policy, &mut slots, &[], 1);
        PolicyStore {
            current: ArcSwap::from_pointee(tables),
            inner: Mutex::new(Inner { policy, slots, learned: Vec::new(), generation: 1, moved: Vec::new(), grace: MIGRATION_GRACE }),
            learn: ArrayQueue::new(LEARN_QUEUE),
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

    /// Publish a new, already validated policy; returns its generation.
    pub fn replace(&self, policy: Policy) -> u64 {
        let mut g = self.lock();
        g.policy = policy;
        Self::publish(&self.current, &mut g)
    }

    fn publish(current: &ArcSwap<Tables>, g: &mut Inner) -> u64 {
        g.generation += 1;
        let generation = g.generation;
        let Inner { policy, slots, learned, moved, grace, .. } = g;
        let prev = current.load_full();
        let mut t = Tables::compile_next(policy, slots, learned, generation, Some(&prev));
        // A VM that was local and is now elsewhere: keep forwarding to it for a while.
        let now = Instant::now();
        for d in &t.dests {
            let was_local = prev.by_slot(d.slot).is_some_and(|o| matches!(o.to, crate::tables::Delivery::Local(_)));
            if was_local && matches!(d.to, crate::tables::Delivery::Encap(_)) && !moved.iter().any(|(s, _)| *s == d.slot) {
                moved.push((d.slot, now + *grace));
            }
        }
        moved.retain(|(s, _)| t.by_slot(*s).is_some_and(|d| matches!(d.to, crate::tables::Delivery::Encap(_))));
        let marked: Vec<u32> = moved.iter().map(|(s, _)| *s).collect();
        t.mark_moved(&marked);
        current.store(Arc::new(t));
        generation
    }

    /// Set the live-migration grace period (default [`MIGRATION_GRACE`]).
    pub fn set_migration_grace(&self, grace: Duration) {
        self.lock().grace = grace;
    }

    /// End grace periods that are over at `now`; republish if any ended. Returns true if republished.
    pub fn expire_moved(&self, now: Instant) -> bool {
        let mut g = self.lock();
        let before = g.moved.len();
        g.moved.retain(|(_, until)| *until > now);
        if g.moved.len() == before {
            return false;
        }
        Self::publish(&self.current, &mut g);
        true
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.lock().policy.clone()
    }

    /// VSID of each counter slot.
    pub fn vsid_slots(&self) -> Vec<(u16, u32)> {
        self.lock().slots.vsids()
    }

    /// Offer a learned provider neighbor (called by workers; never blocks).
    #[inline]
    pub fn offer_learned(&self, n: Learned) {
        let _ = self.learn.push(n);
    }

    /// Drain learned neighbors; republish if any is new or changed. Returns true if republished.
    pub fn apply_learned(&self) -> bool {
        if self.learn.is_empty() {
            return false;
        }
        let mut g = self.lock();
        let mut changed = false;
        while let Some((ip, mac)) = self.learn.pop() {
            let on_link = g.policy.host.provider_addresses.iter().any(|pa| pa.subnet().contains(ip));
            if !on_link || g.policy.host.neighbor(ip).is_some() {
                continue;
            }
            match g.learned.iter_mut().find(|(a, _)| *a == ip) {
                Some(e) if e.1 == mac => {}
                Some(e) => {
                    e.1 = mac;
                    changed = true;
                }
                None => {
                    g.learned.push((ip, mac));
                    changed = true;
                }
            }
        }
        if changed {
            Self::publish(&self.current, &mut g);
        }
        changed
    }

    /// Provider neighbors learned so far.
    pub fn learned(&self) -> Vec<Learned> {
        self.lock().learned.clone()
    }
}
