#![no_main]
//! Fuzz the whole switch pipeline (ingress, extensions, forwarder, delivery).

#[path = "../common/pipeline_case.rs"]
mod pipeline_case;

libfuzzer_sys::fuzz_target!(|data: &[u8]| pipeline_case::run(data));
