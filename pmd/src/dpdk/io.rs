//! [`PortIo`] over DPDK ethdev queues: the burst chokepoints.
//!
//! A bond opened with `balance_flow` ([`super::PortConfig::balance_flow`]) is
//! transmitted on member by member: [`DpdkIo::tx_burst`] reads the bond's
//! active members once per burst ([`FlowSteer::snapshot`], one atomic load),
//! picks each frame's member from its flow entropy ([`crate::steer`]), and
//! calls `rte_eth_tx_burst` once per member on the member's port with this
//! worker's tx queue id (as the bonding PMD's own balance tx does with the
//! same queue ids, so the worker stays the queue's only user). Frames a member
//! refuses, or all of them when no member is active, are returned unsent like
//! any refused frames. Every other port costs one branch per burst.

use super::bond::steer_of;
use super::eal::rdtsc;
use super::mbuf::Mbuf;
use crate::batch::{Batch, BURST};
use crate::buf::PacketBuf;
use crate::steer::FlowSteer;
use crate::worker::PortIo;
use dpdk_sys as sys;
use std::sync::Arc;

/// One worker's view of the switch ports: switch port index → ethdev id,
/// with the worker's own tx queue on every port.
#[derive(Debug, Clone)]
pub struct DpdkIo {
    port_ids: Vec<u16>,
    /// Per switch port: the flow steering of a flow-balanced bond, else `None`.
    steer: Vec<Option<Arc<FlowSteer>>>,
    tx_queue: u16,
    /// Where originated frames get their mbufs.
    pool: Option<std::sync::Arc<super::mempool::Mempool>>,
}

impl DpdkIo {
    /// `port_ids[i]` is the ethdev of switch port `i`; `tx_queue` is this worker's queue.
    pub fn new(port_ids: Vec<u16>, tx_queue: u16) -> Self {
        let steer = port_ids.iter().map(|&id| steer_of(id)).collect();
        DpdkIo { port_ids, steer, tx_queue, pool: None }
    }

    /// Allocate originated frames ([`PortIo::alloc`]) from `pool`.
    pub fn with_pool(mut self, pool: Option<std::sync::Arc<super::mempool::Mempool>>) -> Self {
        self.pool = pool;
        self
    }
}

impl PortIo<Mbuf> for DpdkIo {
    #[inline]
    fn rx_burst(&mut self, port: u16, queue: u16, pkts: &mut Batch<Mbuf>) -> usize {
        let Some(&id) = self.port_ids.get(usize::from(port)) else { return 0 };
        let len = pkts.len();
        let room = BURST - len;
        // SAFETY: Mbuf is repr(transparent) over a non-null `*mut rte_mbuf`; the spare
        // capacity behind `len` has room for `room` pointers, rx_burst writes at most
        // `room` valid, owned mbuf pointers there and returns how many, and only those
        // become part of the batch via set_len. id/queue were configured by Port::open.
        unsafe {
            let spare = pkts.as_mut_ptr().add(len).cast::<*mut sys::rte_mbuf>();
            let n = usize::from(sys::shim_rx_burst(id, queue, spare, room as u16)).min(room);
            pkts.set_len(len + n);
            n
        }
    }

    #[inline]
    fn tx_burst<const N: usize>(&mut self, port: u16, pkts: &mut arrayvec::ArrayVec<Mbuf, N>) -> usize {
        let Some(&id) = self.port_ids.get(usize::from(port)) else { return 0 };
        if let Some(Some(steer)) = self.steer.get(usize::from(port)) {
            return tx_steered(steer, self.tx_queue, pkts);
        }
        let len = pkts.len().min(usize::from(u16::MAX));
        let base = pkts.as_mut_ptr();
        // SAFETY: the array holds `len` valid owned mbuf pointers (Mbuf is repr(transparent));
        // the driver takes ownership of the first `sent`, so they leave the array without
        // being dropped: the unsent tail moves to the front and the length shrinks.
        unsafe {
            let sent = usize::from(sys::shim_tx_burst(id, self.tx_queue, base.cast::<*mut sys::rte_mbuf>(), len as u16)).min(len);
            let rest = pkts.len() - sent;
            if sent > 0 && rest > 0 {
                std::ptr::copy(base.add(sent), base, rest);
            }
            pkts.set_len(rest);
            sent
        }
    }

    #[inline]
    fn now(&self) -> u64 {
        rdtsc()
    }

    fn remap(&mut self, devices: &[u16]) {
        self.port_ids = devices.to_vec();
        self.steer = devices.iter().map(|&id| steer_of(id)).collect();
    }

    fn alloc(&mut self, frame: &[u8]) -> Option<Mbuf> {
        self.pool.as_ref()?.alloc_from(frame)
    }
}

/// Send `pkts` over the active members of a flow-balanced bond, one
/// `rte_eth_tx_burst` per member on `queue`; the unsent frames stay in `pkts`
/// (in no particular order). Returns how many were sent.
#[inline(never)]
fn tx_steered<const N: usize>(steer: &FlowSteer, queue: u16, pkts: &mut arrayvec::ArrayVec<Mbuf, N>) -> usize {
    let active = steer.snapshot();
    if active.count() == 0 {
        return 0;
    }
    let len = pkts.len();
    // Each frame's member (an index into `active`), read before the frames leave the array.
    let mut member = [0u8; N];
    for (m, p) in member.iter_mut().zip(pkts.iter()) {
        *m = active.pick(p.data()).unwrap_or(0) as u8;
    }
    let mut all = [std::ptr::null_mut::<sys::rte_mbuf>(); N];
    let mut group = [std::ptr::null_mut::<sys::rte_mbuf>(); N];
    let base = pkts.as_mut_ptr();
    // SAFETY: the array holds `len` (<= N) valid owned mbuf pointers (Mbuf is
    // repr(transparent)); they are copied out and the array emptied without
    // dropping them, so `all[..len]` owns them now. Each is then either taken by
    // the driver (the first `sent` of its member's group) or written back into
    // the array, whose length counts exactly those written back: none is lost or
    // owned twice. member ids come from the bond's member list, started by the
    // bond with the bond's tx queues, of which `queue` is this worker's alone.
    unsafe {
        std::ptr::copy_nonoverlapping(base.cast::<*mut sys::rte_mbuf>(), all.as_mut_ptr(), len);
        pkts.set_len(0);
        let mut rest = 0usize;
        let mut sent_total = 0usize;
        for k in 0..active.count() {
            let mut n = 0usize;
            for (i, &m) in member[..len].iter().enumerate() {
                if usize::from(m) == k {
                    group[n] = all[i];
                    n += 1;
                }
            }
            if n == 0 {
                continue;
            }
            let sent = usize::from(sys::shim_tx_burst(active.id(k), queue, group.as_mut_ptr(), n as u16)).min(n);
            sent_total += sent;
            for &p in &group[sent..n] {
                base.add(rest).cast::<*mut sys::rte_mbuf>().write(p);
                rest += 1;
            }
        }
        pkts.set_len(rest);
        sent_total
    }
}
