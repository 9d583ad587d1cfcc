//! Owned mbufs.
//!
//! [`Mbuf`] is the one chokepoint from an `rte_mbuf` to a byte slice. It owns
//! the mbuf and returns it to its pool when dropped. It is `repr(transparent)`
//! over the raw pointer so that a slice of `Mbuf` can be handed to a burst call.

use crate::buf::PacketBuf;
use dpdk_sys as sys;
use std::ptr::NonNull;

/// One owned packet mbuf.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an Mbuf is uniquely owned; mempools are multi-thread safe, so it may be
// freed or used on any thread (without a per-lcore cache on unregistered threads).
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Take ownership of a raw mbuf.
    ///
    /// # Safety
    /// `m` must be a valid mbuf that nothing else owns or frees.
    #[inline]
    pub unsafe fn from_raw(m: NonNull<sys::rte_mbuf>) -> Self {
        Mbuf(m)
    }

    /// Give up ownership without freeing.
    #[inline]
    pub fn into_raw(self) -> *mut sys::rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    #[inline]
    fn raw(&self) -> &sys::rte_mbuf {
        // SAFETY: we own a valid mbuf for our whole life.
        unsafe { self.0.as_ref() }
    }

    /// The RSS hash the NIC computed (0 when none).
    pub fn rss_hash(&self) -> u32 {
        // SAFETY: reading a plain-old-data union member; any bit pattern is a valid u32.
        unsafe { self.raw().__bindgen_anon_2.hash.rss }
    }

    /// Bytes free in front of the frame.
    pub fn headroom(&self) -> u16 {
        self.raw().data_off
    }
}

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off points at data_len initialised bytes inside
        // the mbuf's buffer, which we own exclusively for the borrow's lifetime.
        unsafe { std::slice::from_raw_parts(m.buf_addr.cast::<u8>().add(usize::from(m.data_off)), usize::from(m.data_len)) }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw();
        let (addr, off, len) = (m.buf_addr.cast::<u8>(), usize::from(m.data_off), usize::from(m.data_len));
        // SAFETY: as in `data`, and &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(addr.add(off), len) }
    }

    #[inline]
    fn len(&self) -> usize {
        usize::from(self.raw().data_len)
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let n = u16::try_from(n).ok()?;
        // SAFETY: we own the mbuf exclusively (&mut self); this is rte_pktmbuf_prepend's
        // arithmetic on the first segment, done only when the headroom allows it.
        // JUSTIFICATION: inlined on the encapsulation path (scripts/perf-regression.sh).
        let m = unsafe { self.0.as_mut() };
        if n > m.data_off {
            return None;
        }
        m.data_off -= n;
        m.data_len += n;
        m.pkt_len += u32::from(n);
        Some(self.data_mut())
    }

    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else { return false };
        // SAFETY: exclusive ownership; rte_pktmbuf_adj's arithmetic on the first segment,
        // done only when it holds at least `n` bytes.
        // JUSTIFICATION: inlined on the decapsulation path (scripts/perf-regression.sh).
        let m = unsafe { self.0.as_mut() };
        if n > m.data_len {
            return false;
        }
        m.data_off += n;
        m.data_len -= n;
        m.pkt_len -= u32::from(n);
        true
    }

    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let Ok(n) = u16::try_from(n) else { return false };
        // SAFETY: valid owned mbuf; trim checks the length and returns -1 without change.
        unsafe { sys::shim_pktmbuf_trim(self.0.as_ptr(), n) == 0 }
    }

    #[inline]
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        let n = u16::try_from(n).ok()?;
        // SAFETY: valid owned mbuf; append checks tailroom and returns NULL without change.
        let p = unsafe { sys::shim_pktmbuf_append(self.0.as_ptr(), n) };
        if p.is_null() {
            None
        } else {
            Some(self.data_mut())
        }
    }

    fn try_clone(&self) -> Option<Self> {
        // SAFETY: pool is the live pool this mbuf came from.
        let m = unsafe { sys::shim_pktmbuf_alloc(self.raw().pool) };
        // SAFETY: a non-null result is a fresh mbuf we now own.
        let mut copy = Mbuf(NonNull::new(m)?);
        let src = self.data();
        copy.append(src.len())?.copy_from_slice(src);
        Some(copy)
    }

    #[inline]
    fn is_contiguous(&self) -> bool {
        self.raw().nb_segs == 1
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (and any chained segments) and never use it again.
        unsafe { sys::shim_pktmbuf_free(self.0.as_ptr()) }
    }
}
