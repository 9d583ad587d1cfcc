//! EAL initialisation, once per process.
//!
//! `rte_eal_init` may run only once per process and cannot be redone after
//! `rte_eal_cleanup`, so [`Eal::init`] is guarded by a `OnceLock`: the first
//! call's arguments win and later calls return the same handle.

use dpdk_sys as sys;
use std::ffi::{CStr, CString};
use std::sync::OnceLock;

/// An EAL failure with DPDK's own message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{context}: {message} (rte_errno {errno})")]
pub struct EalError {
    /// What was being done.
    pub context: String,
    /// `rte_strerror` text.
    pub message: String,
    /// The errno value.
    pub errno: i32,
}

/// Build an [`EalError`] from `rte_errno` (or from `code` when it is negative).
pub fn eal_error(context: impl Into<String>, code: i32) -> EalError {
    // SAFETY: shim_errno reads this thread's rte_errno; always valid to call.
    let errno = if code < 0 { -code } else { unsafe { sys::shim_errno() } };
    // SAFETY: rte_strerror returns a pointer to a static or thread-local string.
    let message = unsafe { CStr::from_ptr(sys::rte_strerror(errno)) }.to_string_lossy().into_owned();
    EalError { context: context.into(), message, errno }
}

/// Proof that the EAL is initialised in this process.
#[derive(Debug)]
pub struct Eal {
    args: Vec<String>,
}

static EAL: OnceLock<Result<Eal, EalError>> = OnceLock::new();

impl Eal {
    /// Initialise the EAL with `args` (argv\[0\] is added), or return the existing handle.
    ///
    /// # Errors
    /// DPDK's reason when `rte_eal_init` fails; the failure is sticky for the process.
    pub fn init(args: &[String]) -> Result<&'static Eal, EalError> {
        EAL.get_or_init(|| {
            let mut argv_c: Vec<CString> = Vec::with_capacity(args.len() + 1);
            argv_c.push(CString::new("hnvswitch").unwrap_or_default());
            for a in args {
                argv_c.push(CString::new(a.as_str()).map_err(|_| EalError { context: "EAL arguments".into(), message: format!("argument {a:?} contains a NUL byte"), errno: libc_einval() })?);
            }
            // EAL keeps pointers into argv for the life of the process: leak it.
            let argv: &'static mut [*mut std::os::raw::c_char] = Box::leak(argv_c.into_iter().map(CString::into_raw).collect::<Vec<_>>().into_boxed_slice());
            let argc = i32::try_from(argv.len()).unwrap_or(i32::MAX);
            // SAFETY: argv holds argc valid NUL-terminated strings that live forever.
            let rc = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
            if rc < 0 {
                return Err(eal_error("rte_eal_init", 0));
            }
            Ok(Eal { args: args.to_vec() })
        })
        .as_ref()
        .map_err(Clone::clone)
    }

    /// True once [`Eal::init`] has run in this process (successfully or not).
    pub fn is_initialized() -> bool {
        EAL.get().is_some()
    }

    /// The arguments the EAL was started with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// True when the EAL runs on hugepages.
    pub fn has_hugepages(&self) -> bool {
        // SAFETY: the EAL is initialised (self exists).
        unsafe { sys::rte_eal_has_hugepages() != 0 }
    }

    /// Release EAL resources (hugepage files, runtime directory). Call once, at
    /// exit, after every port and pool is dropped; the EAL cannot be used after.
    pub fn cleanup(&self) {
        // SAFETY: called at process end after all DPDK objects were released.
        unsafe {
            sys::rte_eal_cleanup();
        }
    }
}

fn libc_einval() -> i32 {
    22
}

/// Read the TSC.
#[inline]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC has no preconditions on x86_64 (the same instruction rte_rdtsc uses).
    // JUSTIFICATION: inlined, it avoids a C call per poll iteration (scripts/compare-testpmd.sh).
    unsafe {
        std::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: rte_rdtsc reads a CPU counter; no preconditions.
    unsafe {
        sys::shim_rdtsc()
    }
}

/// TSC frequency in Hz.
pub fn tsc_hz() -> u64 {
    // SAFETY: rte_get_tsc_hz reads a value set at EAL init; callers hold an `Eal`.
    unsafe { sys::shim_get_tsc_hz() }
}

/// Register the calling (non-EAL) thread with DPDK so it gets an lcore id and
/// mempool caches work.
///
/// # Errors
/// When DPDK has no free lcore slot.
pub fn thread_register(_eal: &Eal) -> Result<u32, EalError> {
    // SAFETY: the EAL is initialised; registering the current thread is always allowed.
    let rc = unsafe { sys::rte_thread_register() };
    if rc != 0 {
        return Err(eal_error("rte_thread_register", 0));
    }
    // SAFETY: reads this thread's lcore id.
    Ok(unsafe { sys::shim_lcore_id() })
}

/// Undo [`thread_register`] for the calling thread.
pub fn thread_unregister() {
    // SAFETY: harmless for a registered thread; a no-op otherwise.
    unsafe { sys::rte_thread_unregister() }
}
