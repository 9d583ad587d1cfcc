#!/usr/bin/env bash
# The README's second command: install what is missing, then run the whole
# test suite (unit, property, DPDK integration, wire-format checks with tshark).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-test-tools
export RUST_BACKTRACE=1
echo "== build"
cargo build --release --locked --bin hnvswitch
echo "== tests"
cargo test --workspace --locked
echo "== command-line checks"
scripts/cli-checks.sh target/release/hnvswitch
