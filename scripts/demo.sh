#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run the
# switch's embedded demo (virtual devices only). Extra arguments go to `hnvswitch demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked --bin hnvswitch
exec target/release/hnvswitch demo "$@"
