//! dpdk-sys (placeholder).
