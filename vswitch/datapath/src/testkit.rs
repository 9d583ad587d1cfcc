//! Test helpers for tests, benches and fuzz targets: the wire crate's frame
//! builders ([`hnv_wire::frames`]), re-exported under their old path.
//! Production code (the traffic generator, the benchmark scenarios) uses
//! `hnv_wire::frames` directly.

pub use hnv_wire::frames::*;
