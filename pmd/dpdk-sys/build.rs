//! Probe DPDK with pkg-config, compile the C shim with DPDK's own cflags, and
//! generate bindings with bindgen. Stops with one message naming the Debian
//! packages when DPDK or libclang is missing.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const INSTALL_HINT: &str = "install them with: apt-get install -y dpdk dpdk-dev libdpdk-dev libclang-dev pkg-config (or run scripts/setup.sh)";

fn fail(what: &str) -> ! {
    eprintln!("error: {what}; {INSTALL_HINT}");
    println!("cargo:warning={what}; {INSTALL_HINT}");
    std::process::exit(1);
}

fn main() {
    println!("cargo:rerun-if-changed=csrc/shim.c");
    println!("cargo:rerun-if-changed=csrc/shim.h");
    println!("cargo:rerun-if-changed=csrc/wrapper.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let lib = pkg_config::Config::new().atleast_version("22.11").probe("libdpdk").unwrap_or_else(|e| fail(&format!("DPDK >= 22.11 (libdpdk.pc) not found by pkg-config: {e}")));
    // APIs that live in driver libraries, which `pkg-config --libs` omits
    // (rte_net_bond: the bonding PMD's member and active-member queries).
    for drv in ["rte_net_ring", "rte_bus_vdev", "rte_net_bond"] {
        println!("cargo:rustc-link-lib={drv}");
    }

    // The pkg-config crate drops `-include rte_config.h` and `-march=...`; the shim needs them.
    let out = Command::new("pkg-config").args(["--cflags", "libdpdk"]).output().unwrap_or_else(|e| fail(&format!("cannot run pkg-config: {e}")));
    let raw = String::from_utf8_lossy(&out.stdout).to_string();
    let mut cflags: Vec<String> = Vec::new();
    let mut words = raw.split_whitespace();
    while let Some(w) = words.next() {
        if w == "-include" {
            if let Some(f) = words.next() {
                cflags.push(format!("-include{f}"));
            }
        } else {
            cflags.push(w.to_string());
        }
    }

    let mut cc = cc::Build::new();
    cc.file("csrc/shim.c").include("csrc").opt_level(3).warnings(false);
    for f in &cflags {
        cc.flag(f);
    }
    for p in &lib.include_paths {
        cc.include(p);
    }
    cc.compile("hnv_dpdk_shim");

    let mut clang_args: Vec<String> = cflags.clone();
    clang_args.extend(lib.include_paths.iter().map(|p| format!("-I{}", p.display())));
    clang_args.push("-Icsrc".into());
    let bindings = std::panic::catch_unwind(|| {
        bindgen::Builder::default()
            .header("csrc/wrapper.h")
            .clang_args(&clang_args)
            .allowlist_function(
                "shim_.*|rte_eal_.*|rte_eth_.*|rte_pktmbuf_.*|rte_mempool_.*|rte_ring_.*|rte_vdev_.*|rte_lcore_.*|rte_socket_id|rte_strerror|rte_thread_.*|rte_version|rte_get_.*|rte_dev_.*|rte_mbuf_.*",
            )
            .allowlist_type("rte_eth_.*|rte_mbuf|rte_mempool|rte_ring|rte_ether_addr|rte_lcore_state_t|rte_dev_.*")
            .blocklist_type("rte_l2tpv2.*")
            .opaque_type("rte_flow.*")
            .allowlist_var("RTE_.*|RING_F_.*|BONDING_MODE_.*|BALANCE_XMIT_POLICY_.*")
            .derive_default(true)
            .no_debug("rte_flow_item_gtp_psc")
            .generate_comments(false)
            .layout_tests(true)
            .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
            .generate()
    })
    .unwrap_or_else(|_| fail("bindgen could not load libclang"))
    .unwrap_or_else(|e| fail(&format!("bindgen failed over the DPDK headers: {e}")));
    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| fail("OUT_DIR not set")));
    bindings.write_to_file(out.join("bindings.rs")).unwrap_or_else(|e| fail(&format!("cannot write bindings: {e}")));
}
