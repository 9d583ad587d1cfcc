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
}

impl DpdkIo {
    /// `port_ids[i]` is the ethdev of switch port `i`; `tx_queue` is this worker's queue.
    pub fn new(port_ids: Vec<u16>, tx_queue: u16) -> Self {
        DpdkIo { port_ids, tx_queue }
    }
}

impl PortIo<Mbuf> for DpdkIo {
    #[inline]
    fn rx_burst(&mut self, port: u16, queue: u16, pkts: &mut Batch<Mbuf>) -> usize {
        let Some(&id) = self.port_ids.get(usize::from(port)) else { return 0 };
        let room = BURST - pkts.len();
        let mut raw = [std::ptr::null_mut::<sys::rte_mbuf>(); BURST];
        // SAFETY: raw has BURST slots and we ask for at most `room` <= BURST mbufs;
        // id/queue were configured by Port::open.
        let n = unsafe { sys::shim_rx_burst(id, queue, raw.as_mut_ptr(), room as u16) } as usize;
        for &m in &raw[..n.min(room)] {
            if let Some(m) = std::ptr::NonNull::new(m) {
                // SAFETY: rx_burst hands us ownership of each returned mbuf.
                pkts.push(unsafe { Mbuf::from_raw(m) });
            }
        }
        n
    }

    #[inline]
    fn tx_burst<const N: usize>(&mut self, port: u16, pkts: &mut arrayvec::ArrayVec<Mbuf, N>) -> usize {
        let Some(&id) = self.port_ids.get(usize::from(port)) else { return 0 };
        let len = pkts.len().min(usize::from(u16::MAX));
        // SAFETY: Mbuf is repr(transparent) over a non-null `*mut rte_mbuf`, so the
        // array is `len` valid mbuf pointers; the queue was configured by Port::open.
        let sent = unsafe { sys::shim_tx_burst(id, self.tx_queue, pkts.as_mut_ptr().cast::<*mut sys::rte_mbuf>(), len as u16) }
            as usize;
        // The NIC owns the first `sent` mbufs now: forget them without freeing.
        pkts.drain(..sent).for_each(std::mem::forget);
        sent
    }

    #[inline]
    fn now(&self) -> u64 {
        rdtsc()
    }
}
