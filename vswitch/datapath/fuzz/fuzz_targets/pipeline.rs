#![no_main]
//! Fuzz the whole switch pipeline (ingress, extensions, forwarder, delivery),
//! with a warm flow cache and a policy change between passes (see
//! `common/pipeline_case.rs`, which `tests/fuzz_cases.rs` also runs).

#[path = "../common/pipeline_case.rs"]
mod pipeline_case;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pipeline_case::run(data);
});
