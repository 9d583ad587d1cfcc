#!/usr/bin/env bash
# Build the Debian package target/debian/hnvswitch_<version>-1_<arch>.deb:
# man pages and shell completions from the binaries' clap definitions (the
# gendoc example, a debug build), then `cargo deb`, which builds the release
# binaries (fat LTO, a few minutes) and packs them with the files named in
# Cargo.toml's [package.metadata.deb]; the binaries' debug line tables go to
# target/debian/hnvswitch-dbgsym_<version>-1_<arch>.ddeb. Prints the .deb's path last.
# Usage: scripts/package.sh [--no-build]   (--no-build: release binaries already built)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-package-tools >&2
docs=target/pkg-docs
rm -rf "$docs"
cargo run --locked --quiet --example gendoc -- "$docs" >&2
# Debian ships man pages gzip-compressed, without timestamps (-n).
gzip -9n "$docs"/man/*.1
rm -f target/debian/hnvswitch_*.deb target/debian/hnvswitch-dbgsym_*.ddeb
cargo deb --locked ${1:+"$1"} >&2
deb=$(ls target/debian/hnvswitch_*.deb)
echo "$deb"
