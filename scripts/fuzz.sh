#!/usr/bin/env bash
# Time-boxed cargo-fuzz runs over every fuzz target of every fuzz crate, each
# starting from its committed seeds with a fresh corpus in /tmp:
#   vswitch/wire/fuzz      frame_parser  (every hnv-wire parser)
#   vswitch/datapath/fuzz  pipeline      (the whole switch, warm flow cache, policy change between passes)
#                          differential  (batches and policy changes through a cached and an uncached switch)
# libFuzzer needs nightly features; with only a stable toolchain installed,
# RUSTC_BOOTSTRAP=1 enables them, and `-s none` avoids needing a sanitizer
# runtime. Each fuzz crate is its own workspace with a committed Cargo.lock;
# cargo-fuzz has no --locked, so a `cargo fetch --locked` first refuses a
# stale lock instead of letting the build rewrite it. A run leaves the tree
# as it found it (crash artifacts, if any, go to <crate>/fuzz/artifacts/,
# which git ignores).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 30)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-30}
if ! command -v cargo-fuzz >/dev/null; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1
work=$(mktemp -d /tmp/hnv-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
for crate in vswitch/wire vswitch/datapath; do
    cd "$root/$crate"
    if ! cargo fetch --locked --quiet --manifest-path fuzz/Cargo.toml; then
        echo "fuzz: $crate/fuzz/Cargo.lock is out of date: run 'cargo update --workspace --manifest-path $crate/fuzz/Cargo.toml' and commit the lock" >&2
        exit 1
    fi
    for target in $(cargo fuzz list); do
        corpus="$work/$target"
        mkdir -p "$corpus"
        echo "fuzz: $target for ${SECS}s"
        if ! cargo fuzz run -s none "$target" "$corpus" "fuzz/seeds/$target" -- -max_total_time="$SECS" -max_len=4096 >"$work/$target.log" 2>&1; then
            tail -n 60 "$work/$target.log"
            echo "fuzz: $target FAILED (crash input under $crate/fuzz/artifacts/$target/)" >&2
            exit 1
        fi
        tail -n 3 "$work/$target.log"
        rm -rf "$corpus"
    done
done
