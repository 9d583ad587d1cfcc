//! HNV datapath (placeholder).
#![forbid(unsafe_code)]
