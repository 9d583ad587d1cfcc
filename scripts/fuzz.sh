#!/usr/bin/env bash
# Time-boxed cargo-fuzz runs over every fuzz target (frame parser, whole
# pipeline), starting from the committed seeds. libFuzzer needs nightly
# features; with only a stable toolchain installed, RUSTC_BOOTSTRAP=1 enables
# them, and `-s none` avoids needing a sanitizer runtime.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/../vswitch/wire"
SECS=${1:-30}
if ! command -v cargo-fuzz >/dev/null; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
for target in frame_parser pipeline; do
    corpus=$(mktemp -d /tmp/hnv-fuzz-$target.XXXXXX)
    echo "fuzz: $target for ${SECS}s"
    cargo fuzz run -s none "$target" "$corpus" "fuzz/seeds/$target" -- -max_total_time="$SECS" -max_len=4096 2>&1 | tail -n 3
    rm -rf "$corpus"
done
