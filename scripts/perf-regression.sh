#!/usr/bin/env bash
# Instructions per packet (callgrind, deterministic) for the encap, decap and
# local paths at 1024 flows, encap at 65536 flows, and VXLAN encap and decap
# (encap-vxlan, decap-vxlan) at 1024 flows, compared with the baseline
# in bench/baseline.toml; fails when a case costs more than 5 % above its
# baseline (HNV_PERF_TOLERANCE=0.10 for 10 %).
#   Ir/packet = (Ir(N2 packets) - Ir(N1 packets)) / (N2 - N1)   (start-up cancels out)
# N1 = max(50000, flows + 32768): every flow has been seen (missed and cached) before
# the counted packets, so the figure is the steady state; N2 = N1 + 300000.
# The arithmetic is scripts/bench/perf_check.py's; this script only starts processes.
# Usage: scripts/perf-regression.sh [--update]   (--update rewrites the baseline)
set -euo pipefail
cd "$(dirname "$0")/.."
HNV=target/release/hnvswitch
[[ -x $HNV ]] || cargo build --release --locked --bin hnvswitch >&2
command -v valgrind >/dev/null || { echo "valgrind not found: run scripts/setup.sh --with-test-tools" >&2; exit 1; }
PY=/usr/bin/python3
CHECK=scripts/bench/perf_check.py
BASE=bench/baseline.toml
UPDATE=0
[[ "${1:-}" == "--update" ]] && UPDATE=1
WORK=$(mktemp -d /tmp/hnv-perf.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
TOL=${HNV_PERF_TOLERANCE:-0.05}

ir() { # config packets tag -> callgrind output file $WORK/cg.tag
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$3" "$HNV" run --config "$1" --packets "$2" --duration 600 > "$WORK/log.$3" 2>&1 \
        || { cat "$WORK/log.$3" >&2; exit 1; }
}

got=()
for c in encap:1024:encap decap:1024:decap local:1024:local encap:65536:encap_64k encap-vxlan:1024:encap_vxlan decap-vxlan:1024:decap_vxlan; do
    IFS=: read -r s flows name <<< "$c"
    if ((flows <= 8192)); then mbufs=8191; else mbufs=$((flows + 65535)); fi
    read -r cfg _ < <($HNV scenario --scenario "$s" --flows "$flows" --hugepages off --mbufs "$mbufs" --dir "$WORK/$name")
    n1=$((flows + 32768)); ((n1 >= 50000)) || n1=50000
    n2=$((n1 + 300000))
    ir "$cfg" "$n1" "$name.1"; ir "$cfg" "$n2" "$name.2"
    got+=("$name=$("$PY" "$CHECK" ir "$WORK/cg.$name.1" "$WORK/cg.$name.2" "$n1" "$n2")")
    rm -f "$WORK/cg.$name".[12]
done
status=0
"$PY" "$CHECK" compare "$BASE" "$TOL" "${got[@]}" || status=1
if ((UPDATE)); then
    "$PY" "$CHECK" update "$BASE" "$(git rev-parse --short=12 HEAD)" "${got[@]}"
    status=0
fi
exit $status
