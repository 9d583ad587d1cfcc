#!/usr/bin/env bash
# The README's second command: install what is missing, then run the whole
# test suite: unit and property tests, the DPDK integration tests (net_ring,
# net_pcap), tshark decoding, the binary's CLI tests, and a time-boxed
# cargo-fuzz run over the frame parser, the whole pipeline and the flow
# cache against the pipeline (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-test-tools
export RUST_BACKTRACE=1
echo "== lints (clippy -D warnings, rustfmt)"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo fmt --all --check
echo "== build"
cargo build --release --locked --bin hnvswitch
echo "== tests"
log=$(mktemp /tmp/hnv-tests.XXXXXX)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
echo "== benchmark scripts (Python unit tests)"
/usr/bin/python3 -m unittest discover -s scripts/bench -p 'test_*.py' 2>&1 | tee -a "$log"
echo "== Debian package (build, dpkg -i, check the files, verify the unit, run the installed switch, purge)"
scripts/package-test.sh
echo "== namespace testbed (real Linux stacks as VMs, tshark, iperf3, gretap stand-in, vhost-user)"
HNVTB_STRICT=${HNVTB_STRICT:-1} scripts/testbed.sh run
echo "== callgrind instructions per packet against bench/baseline.toml"
scripts/perf-regression.sh
echo "== fuzz (time-boxed)"
scripts/fuzz.sh "${HNV_FUZZ_SECONDS:-20}"
echo "== summary"
awk '/^test result:/ {p += $4; f += $6; s += $8} END {printf "tests: %d passed, %d failed, %d skipped\n", p, f, s}' "$log"
