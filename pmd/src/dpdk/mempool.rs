//! Packet mempools.

use super::eal::{eal_error, Eal, EalError};
use super::mbuf::Mbuf;
use dpdk_sys as sys;
use std::ffi::CString;
use std::ptr::NonNull;

/// A DPDK pktmbuf pool, freed when dropped. Share it with `Arc` so that it
/// outlives every port that receives into it.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<sys::rte_mempool>,
    name: String,
}

// SAFETY: rte_mempool is multi-producer/multi-consumer safe; the handle is only a pointer.
unsafe impl Send for Mempool {}
// SAFETY: as above; all operations through &Mempool are thread-safe in DPDK.
unsafe impl Sync for Mempool {}

/// Data room per mbuf: 2048 bytes of frame plus DPDK's default headroom.
pub const DATA_ROOM: u16 = 2048 + 128;

impl Mempool {
    /// Create a pool of `n` mbufs with a per-lcore cache of `cache`.
    ///
    /// # Errors
    /// DPDK's reason (usually too little memory) with the pool's name.
    pub fn create(_eal: &Eal, name: &str, n: u32, cache: u32) -> Result<Self, EalError> {
        let cname = CString::new(name).map_err(|_| eal_error(format!("mempool name {name:?}"), -22))?;
        // SAFETY: the EAL is initialised; cname is a valid C string DPDK copies.
        let raw = unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache.min(512), 0, DATA_ROOM, sys::rte_socket_id() as i32) };
        NonNull::new(raw).map(|raw| Mempool { raw, name: name.to_string() }).ok_or_else(|| eal_error(format!("creating mempool {name:?} of {n} mbufs"), 0))
    }

    /// Allocate one mbuf with an empty frame.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: raw is a live pool.
        let m = unsafe { sys::shim_pktmbuf_alloc(self.raw.as_ptr()) };
        // SAFETY: a non-null result is a freshly allocated mbuf we now own.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// Allocate an mbuf holding a copy of `frame`.
    pub fn alloc_from(&self, frame: &[u8]) -> Option<Mbuf> {
        use crate::buf::PacketBuf;
        let mut m = self.alloc()?;
        let data = m.append(frame.len())?;
        data.copy_from_slice(frame);
        Some(m)
    }

    /// Mbufs currently available (in the ring and the caches).
    pub fn available(&self) -> u32 {
        // SAFETY: raw is a live pool.
        unsafe { sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: we own the pool; Arc-sharing ports were dropped before us.
        unsafe { sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}
