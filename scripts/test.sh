#!/usr/bin/env bash
# The README's second command: install what is missing, then run the whole
# test suite: unit and property tests, the DPDK integration tests (net_ring,
# net_pcap), tshark decoding, the binary's CLI tests, and a time-boxed
# cargo-fuzz run over the frame parser and the whole pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-test-tools
export RUST_BACKTRACE=1
echo "== build"
cargo build --release --locked --bin hnvswitch
echo "== tests"
cargo test --workspace --locked
echo "== fuzz (time-boxed)"
scripts/fuzz.sh "${HNV_FUZZ_SECONDS:-20}"
echo "== done"
