//! Ring-backed ethdev ports for injecting and collecting packets.
//!
//! A [`RingPort`] owns two `rte_ring`s and an ethdev made from them with
//! `rte_eth_from_rings` (driver `net_ring`): what a test enqueues with
//! [`RingPort::inject`] is received through the real `rte_eth_rx_burst` path,
//! and what the switch sends with `rte_eth_tx_burst` is dequeued by
//! [`RingPort::collect`]. Its ethdev name is `net_ring_<name>`.

use super::eal::{eal_error, Eal, EalError};
use super::mbuf::Mbuf;
use dpdk_sys as sys;
use std::ffi::CString;
use std::ptr::NonNull;

/// An ethdev over an injection ring and a collection ring.
#[derive(Debug)]
pub struct RingPort {
    rx: Vec<NonNull<sys::rte_ring>>,
    tx: Vec<NonNull<sys::rte_ring>>,
    port_id: u16,
    name: String,
}

// SAFETY: rte_rings are created multi-producer/multi-consumer, so any thread may use them.
unsafe impl Send for RingPort {}
// SAFETY: as above.
unsafe impl Sync for RingPort {}

fn ring(name: &str, size: u32) -> Result<NonNull<sys::rte_ring>, EalError> {
    let c = CString::new(name).map_err(|_| eal_error("ring name", -22))?;
    // SAFETY: EAL is initialised (callers hold &Eal); c is a valid C string.
    let r = unsafe { sys::rte_ring_create(c.as_ptr(), size, sys::rte_socket_id() as i32, 0) };
    NonNull::new(r).ok_or_else(|| eal_error(format!("rte_ring_create {name}"), 0))
}

impl RingPort {
    /// Create the rings and the `net_ring_<name>` ethdev (not yet configured or started).
    ///
    /// # Errors
    /// DPDK's reason when a ring or the ethdev cannot be created.
    pub fn create(eal: &Eal, name: &str, size: u32) -> Result<Self, EalError> {
        Self::with_queues(eal, name, size, 1)
    }

    /// [`RingPort::create`] with `queues` rx and tx queues (one ring each);
    /// injected frames go to rx queue 0, and every tx queue is collected.
    ///
    /// # Errors
    /// As [`RingPort::create`].
    pub fn with_queues(_eal: &Eal, name: &str, size: u32, queues: u16) -> Result<Self, EalError> {
        let mut rx = Vec::new();
        let mut tx = Vec::new();
        for q in 0..queues.max(1) {
            rx.push(ring(&format!("{name}_rx{q}"), size)?);
            tx.push(ring(&format!("{name}_tx{q}"), size)?);
        }
        let c = CString::new(name).map_err(|_| eal_error("ring port name", -22))?;
        let rxs: Vec<*mut sys::rte_ring> = rx.iter().map(|r| r.as_ptr()).collect();
        let txs: Vec<*mut sys::rte_ring> = tx.iter().map(|r| r.as_ptr()).collect();
        let n = rxs.len() as u32;
        // SAFETY: both arrays hold `n` live rings; DPDK keeps the pointers, and we keep the
        // rings alive for as long as the port exists (freed in Drop after close).
        let id = unsafe { sys::rte_eth_from_rings(c.as_ptr(), rxs.as_ptr(), n, txs.as_ptr(), n, sys::rte_socket_id()) };
        if id < 0 {
            return Err(eal_error(format!("rte_eth_from_rings {name}"), 0));
        }
        Ok(RingPort { rx, tx, port_id: u16::try_from(id).unwrap_or(u16::MAX), name: format!("net_ring_{name}") })
    }

    /// The ethdev port id.
    pub fn port_id(&self) -> u16 {
        self.port_id
    }

    /// The ethdev name (`net_ring_<name>`), usable as a port's devargs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Enqueue frames for the port to receive; returns how many fit (the rest are freed).
    pub fn inject(&self, pkts: Vec<Mbuf>) -> usize {
        let raws: Vec<*mut std::os::raw::c_void> = pkts.into_iter().map(|m| m.into_raw().cast()).collect();
        let Some(rx) = self.rx.first() else { return 0 };
        // SAFETY: raws holds owned mbuf pointers; the ring takes ownership of those it accepts.
        let n = unsafe { sys::shim_ring_enqueue_burst(rx.as_ptr(), raws.as_ptr(), raws.len() as u32) } as usize;
        for &p in &raws[n..] {
            // SAFETY: not accepted by the ring, so still ours; free it.
            unsafe { sys::shim_pktmbuf_free(p.cast()) };
        }
        n
    }

    /// Dequeue everything the port has transmitted so far (tx queue 0 first, then 1, …).
    pub fn collect(&self) -> Vec<Mbuf> {
        let mut out = Vec::new();
        let mut buf = [std::ptr::null_mut::<std::os::raw::c_void>(); 64];
        for tx in &self.tx {
            loop {
                // SAFETY: buf has room for 64 pointers; the ring hands us ownership of each mbuf.
                let n = unsafe { sys::shim_ring_dequeue_burst(tx.as_ptr(), buf.as_mut_ptr(), 64) } as usize;
                for &p in &buf[..n] {
                    if let Some(m) = NonNull::new(p.cast::<sys::rte_mbuf>()) {
                        // SAFETY: dequeued mbufs are owned by us now.
                        out.push(unsafe { Mbuf::from_raw(m) });
                    }
                }
                if n < 64 {
                    break;
                }
            }
        }
        out
    }
}

impl Drop for RingPort {
    fn drop(&mut self) {
        drop(self.collect());
        // Close the ethdev unless a `Port` already did (its id may since have been reused).
        if super::port::port_by_name(&self.name) == Some(self.port_id) {
            // SAFETY: the id still names our ethdev; it must be closed before its rings go.
            unsafe {
                sys::rte_eth_dev_stop(self.port_id);
                sys::rte_eth_dev_close(self.port_id);
            }
        }
        let mut buf = [std::ptr::null_mut::<std::os::raw::c_void>(); 64];
        for rx in &self.rx {
            loop {
                // SAFETY: drain leftover injected mbufs, which we own once dequeued.
                let n = unsafe { sys::shim_ring_dequeue_burst(rx.as_ptr(), buf.as_mut_ptr(), 64) } as usize;
                for &p in &buf[..n] {
                    // SAFETY: owned mbuf from the ring.
                    unsafe { sys::shim_pktmbuf_free(p.cast()) };
                }
                if n == 0 {
                    break;
                }
            }
        }
        for r in self.rx.iter().chain(&self.tx) {
            // SAFETY: the ethdev that referenced the rings is closed.
            unsafe { sys::rte_ring_free(r.as_ptr()) };
        }
    }
}
