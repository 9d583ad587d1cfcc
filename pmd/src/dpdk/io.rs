//! [`PortIo`] over DPDK ethdev queues: the burst chokepoints.

use super::eal::rdtsc;
use super::mbuf::Mbuf;
use crate::batch::{Batch, BURST};
use crate::worker::PortIo;
use dpdk_sys as sys;

/// One worker's view of the switch ports: switch port index → ethdev id,
/// with the worker's own tx queue on every port.
#[derive(Debug, Clone)]
pub struct DpdkIo {
    port_ids: Vec<u16>,
    tx_queue: u16,
    /// Where packets a processor originates come from ([`PortIo::alloc`]).
    pool: Option<std::sync::Arc<super::Mempool>>,
}

impl DpdkIo {
    /// `port_ids[i]` is the ethdev of switch port `i`; `tx_queue` is this worker's queue.
    pub fn new(port_ids: Vec<u16>, tx_queue: u16) -> Self {
        DpdkIo { port_ids, tx_queue, pool: None }
    }

    /// Allocate packets a processor originates from `pool`.
    pub fn with_pool(mut self, pool: Option<std::sync::Arc<super::Mempool>>) -> Self {
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
    }

    fn alloc(&mut self, frame: &[u8]) -> Option<Mbuf> {
        self.pool.as_ref()?.alloc_from(frame)
    }
}
