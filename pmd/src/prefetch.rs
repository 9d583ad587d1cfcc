//! A safe cache-line prefetch hint, for the batch stages of the datapath
//! (VPP's `clib_prefetch_load`, DPDK's `rte_prefetch0`).
//!
//! A prefetch is a hint: it never faults, never changes memory or program
//! state, and may be ignored by the CPU, so it is sound for any address. It
//! is the only `unsafe` outside [`crate::dpdk`].

/// Hint that the cache line holding `r` will be read soon.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        let p = (r as *const T).cast::<i8>();
        // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has (it is in
        // the target's baseline features); PREFETCHT0 never faults and has no
        // architectural effect, and `p` comes from a live reference anyway.
        #[allow(unsafe_code)]
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefetch_is_a_no_op_for_program_state() {
        let v = [1u64, 2, 3];
        super::prefetch(&v[1]);
        assert_eq!(v, [1, 2, 3]);
    }
}
