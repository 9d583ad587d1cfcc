#![no_main]
//! Fuzz the flow cache against the pipeline: the input describes a sequence
//! of traffic batches and policy changes (see `common/differential.rs`, which
//! `tests/flow_cache.rs` shares); a switch with a flow cache and one without
//! must emit the same frames and counters after every batch.
//!
//! Run with `scripts/fuzz.sh`, or `RUSTC_BOOTSTRAP=1 cargo fuzz run -s none
//! differential fuzz/seeds/differential` from `vswitch/datapath/`.

#[path = "../common/differential.rs"]
mod differential;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let s = differential::scenario(data, differential::Options { known_bugs: false });
    if let Err(e) = differential::run(&s) {
        panic!("cached and uncached switches differ: {e}");
    }
});
