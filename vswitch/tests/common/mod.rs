//! Shared set-up for the tests that drive real DPDK: one EAL per test process
//! (`--no-huge`, no shared config, a unique file prefix), removed at exit.
#![allow(dead_code)]

use pmd::dpdk::{Eal, Mbuf, Mempool};
use std::sync::{Arc, OnceLock};

/// The process-wide EAL (DPDK cannot be initialised twice).
pub fn eal() -> &'static Eal {
    static PREFIX: OnceLock<String> = OnceLock::new();
    let prefix = PREFIX.get_or_init(|| format!("hnvtest{}", std::process::id()));
    let args: Vec<String> =
        ["-l", "0", "--no-huge", "-m", "512", "--no-shconf", "--no-pci", "--log-level=lib.eal:error"].iter().map(|s| s.to_string()).chain([format!("--file-prefix={prefix}")]).collect();
    let eal = Eal::init(&args).expect("EAL init (is libdpdk installed? run scripts/setup.sh)");
    // Runtime directory of --no-shconf runs; removed when the test binary exits.
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    eal
}

/// A pool unique to the caller.
pub fn pool(name: &str, n: u32) -> Arc<Mempool> {
    Arc::new(Mempool::create(eal(), name, n, 64).expect("mempool"))
}

/// Mbufs holding copies of `frames`.
pub fn mbufs(pool: &Mempool, frames: &[Vec<u8>]) -> Vec<Mbuf> {
    frames.iter().map(|f| pool.alloc_from(f).expect("mbuf alloc")).collect()
}

/// A private temporary directory.
pub fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("hnvtest-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tempdir");
    d
}
