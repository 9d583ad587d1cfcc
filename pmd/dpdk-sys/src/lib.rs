//! Raw bindings to DPDK (>= 22.11), generated at build time by bindgen over the
//! installed headers, plus `shim_*` wrappers for the static-inline fast-path
//! functions (rx/tx burst, mbuf alloc/free/prepend/adj/append, lcore id, errno).
//!
//! Nothing here is safe to call without reading DPDK's documentation; the safe
//! layer is `pmd::dpdk`.
#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case, dead_code)]
#![allow(clippy::all, clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]
#![allow(missing_debug_implementations, improper_ctypes)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
