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

/// Learned-neighbor hints buffered between workers and the control thread.
const LEARN_QUEUE: usize = 1024;

#[derive(Debug)]
struct Inner {
    policy: Policy,
    slots: VsidSlots,
    learned: Vec<Learned>,
    generation: u64,
}

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
            inner: Mutex::new(Inner { policy, slots, learned: Vec::new(), generation: 1 }),
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
        let Inner { policy, slots, learned, .. } = g;
        let prev = current.load_full();
        current.store(Arc::new(Tables::compile_next(policy, slots, learned, generation, Some(&prev))));
        generation
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
