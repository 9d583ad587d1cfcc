//! Fuzz every hnv-wire parser: pretty-print the input as an Ethernet frame
//! (which walks every layer, NVGRE inner frames included) and run every
//! `new_checked` + getters + `Repr::parse` over it.
//!
//! Run with `scripts/fuzz.sh`, or `RUSTC_BOOTSTRAP=1 cargo fuzz run -s none frame_parser fuzz/seeds/frame_parser`
//! from `vswitch/wire/`. The body lives in `common/parse_all.rs` so that
//! `cargo test -p hnv-wire` compiles and runs it on stable too.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../common/parse_all.rs"]
mod parse_all;

fuzz_target!(|data: &[u8]| {
    parse_all::run(data);
});
