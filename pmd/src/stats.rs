//! Per-worker counters.
//!
//! Thread-safety contract: each field is written by exactly one worker thread
//! (relaxed load + store, no read-modify-write atomics) and read by any thread
//! with relaxed loads. A reader may see a counter one increment late; it never
//! sees a torn value.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One worker's I/O counters.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Packets received from all its rx queues.
    pub rx: Counter,
    /// Packets accepted by a NIC's tx queue.
    pub tx: Counter,
    /// Packets a NIC refused (tx queue full), freed.
    pub tx_refused: Counter,
    /// Poll iterations.
    pub iterations: Counter,
    /// TSC cycles spent in iterations that received packets.
    pub busy_cycles: Counter,
    /// TSC cycles spent in iterations that received nothing.
    pub idle_cycles: Counter,
}

/// A single-writer counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Add `n`. Only the owning thread may call this.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    /// Overwrite the value. Only the owning thread, or another while the
    /// owner is paused (a port-list change moving per-port counters), may call this.
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }
    /// Read the current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}
