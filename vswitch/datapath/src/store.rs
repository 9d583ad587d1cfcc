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
//! Provider-side neighbor learning: workers push (PA, MAC) pairs into a
//! bounded lock-free queue (a full queue drops the hint); the control thread
//! drains it with [`PolicyStore::apply_learned`] and republishes when a next
//! hop's MAC is new or changed.
//!
//! MS-NVGREE: workers push received REDIRECT/UNREACHABLE messages into a
//! second bounded queue; [`PolicyStore::apply_control`] (control thread)
//! validates them, keeps notices, and republishes when a REDIRECT is applied.
//! The compiled tables then come from an *effective* policy: [`PolicyStore::policy`]
//! (what is saved and shown) with the PAs of redirected CAs replaced, until the
//! policy changes those records or the REDIRECT expires. Live migration: a
//! record that was local and becomes remote is marked moved for the grace
//! period ([`PolicyStore::expire_moved`]).

use crate::ingress::Learned;
use crate::tables::{Tables, VsidSlots};
use arc_swap::{ArcSwap, Guard};
use crossbeam::queue::ArrayQueue;
use hnv_policy::{Policy, Vsid};
use hnv_wire::nvgree::{Control, ControlRepr};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

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
    /// PAs changed by REDIRECT messages until the policy catches up or they expire.
    redirects: Vec<Redirected>,
    /// The latest control messages received, newest last.
    notices: VecDeque<Notice>,
    /// UNREACHABLE messages received so far.
    unreachable: u64,
}

/// How long a REDIRECT overrides the policy's PA for a CA (unless the policy changes first).
pub const REDIRECT_HOLD: Duration = Duration::from_secs(60);
/// Control messages remembered for `hnvctl show notices`.
const NOTICES: usize = 64;

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

/// Versioned policy snapshots.
#[derive(Debug)]
pub struct PolicyStore {
    current: ArcSwap<Tables>,
    inner: Mutex<Inner>,
    learn: ArrayQueue<Learned>,
    control: ArrayQueue<(u32, ControlRepr)>,
}

impl PolicyStore {
    /// A store publishing `policy` as generation 1.
    pub fn new(policy: Policy) -> Self {
        let mut slots = VsidSlots::default();
        let tables = Tables::compile(&policy, &mut slots, &[], 1);
        PolicyStore {
            current: ArcSwap::from_pointee(tables),
            inner: Mutex::new(Inner {
                policy,
                slots,
                learned: Vec::new(),
                generation: 1,
                moved: Vec::new(),
                grace: MIGRATION_GRACE,
                redirects: Vec::new(),
                notices: VecDeque::new(),
                unreachable: 0,
            }),
            learn: ArrayQueue::new(LEARN_QUEUE),
            control: ArrayQueue::new(LEARN_QUEUE),
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
        let Inner { policy, slots, learned, moved, grace, redirects, .. } = g;
        let prev = current.load_full();
        // A REDIRECT holds only while the policy still places the CA at its sender.
        redirects.retain(|r| Vsid::new(r.vsid).ok().and_then(|v| policy.lookup_record(v, r.ca)).is_some_and(|rec| rec.pa == r.from));
        let effective = (!redirects.is_empty()).then(|| with_redirects(policy, redirects));
        let mut t = Tables::compile_next(effective.as_ref().unwrap_or(policy), slots, learned, generation, Some(&prev));
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
        let mut g = self.lock();
        let before = g.redirects.len();
        g.redirects.retain(|r| r.until > now);
        let mut changed = g.redirects.len() != before;
        while let Some((vsid, msg)) = self.control.pop() {
            let ca = IpAddr::V4(msg.dst_ca);
            let from = IpAddr::V4(msg.from_pa);
            let (kind, new_pa, outcome) = match msg.control {
                Control::Unreachable if record_in_domain(&g.policy, vsid, ca).is_none_or(|r| r.pa != from) => {
                    ("unreachable", None, format!("ignored: this host does not send CA {ca} to {from}"))
                }
                Control::Unreachable => {
                    g.unreachable += 1;
                    ("unreachable", None, format!("the host at {from} has no VM with CA {ca} in VSID {vsid}: this host's policy may be stale"))
                }
                Control::Redirect { new_pa } => {
                    let new_pa = IpAddr::V4(new_pa);
                    let outcome = match redirect(&g.policy, &g.redirects, vsid, ca, from, new_pa) {
                        Ok(vsid) => {
                            g.redirects.retain(|r| !(r.vsid == vsid && r.ca == ca));
                            g.redirects.push(Redirected { vsid, ca, from, new_pa, until: now + REDIRECT_HOLD });
                            changed = true;
                            format!("applied: CA {ca} in VSID {vsid} now encapsulated to {new_pa} until the policy changes (at most {} s)", REDIRECT_HOLD.as_secs())
                        }
                        Err(why) => format!("ignored: {why}"),
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
        if changed {
            Self::publish(&self.current, &mut g);
        }
        changed
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

    /// Provider neighbors learned so far.
    pub fn learned(&self) -> Vec<Learned> {
        self.lock().learned.clone()
    }
}

/// `policy` with the PAs of redirected CAs replaced.
fn with_redirects(policy: &Policy, redirects: &[Redirected]) -> Policy {
    let mut p = policy.clone();
    for r in redirects {
        if let Some(rec) = p.lookup.iter_mut().find(|l| l.vsid.get() == r.vsid && l.ca == r.ca && l.pa == r.from) {
            rec.pa = r.new_pa;
        }
    }
    p
}

/// The record of `ca` in the routing domain of `vsid` (a message arrives in
/// the sending VM's VSID, which for routed traffic is not the CA's own).
fn record_in_domain(policy: &Policy, vsid: u32, ca: IpAddr) -> Option<&hnv_policy::LookupRecord> {
    let rd = policy.subnets.iter().find(|s| s.vsid.get() == vsid).map(|s| &s.routing_domain)?;
    policy.lookup.iter().find(|r| r.ca == ca && policy.subnets.iter().any(|s| s.vsid == r.vsid && &s.routing_domain == rd))
}

/// Whether a REDIRECT received in `vsid` for `ca` from `from` to `new_pa` may be
/// applied; the VSID of the CA's record if so.
fn redirect(policy: &Policy, redirects: &[Redirected], vsid: u32, ca: IpAddr, from: IpAddr, new_pa: IpAddr) -> Result<u32, String> {
    let rec = record_in_domain(policy, vsid, ca).ok_or_else(|| format!("no lookup record for CA {ca} in the routing domain of VSID {vsid}"))?;
    let vsid = rec.vsid.get();
    if rec.pa != from {
        return Err(format!("the policy places CA {ca} at {}, not at the sender {from}", rec.pa));
    }
    if new_pa == from || policy.host.provider_addresses.iter().any(|p| p.address == new_pa) {
        return Err(format!("new PA {new_pa} is the sender itself or this host"));
    }
    let mut next: Vec<Redirected> = redirects.iter().filter(|r| !(r.vsid == vsid && r.ca == ca)).copied().collect();
    next.push(Redirected { vsid, ca, from, new_pa, until: Instant::now() });
    let candidate = with_redirects(policy, &next);
    hnv_policy::validate(&hnv_policy::PolicyFile::from_policy(&candidate), "REDIRECT").map(|_| vsid).map_err(|e| e.to_string().replace('\n', "; "))
}
