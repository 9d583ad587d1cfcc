#!/usr/bin/env bash
# Instructions per packet (callgrind, deterministic) for the encap, decap and
# local paths, compared with the baseline in bench/baseline.toml; fails when a
# path costs more than 5 % above its baseline.
#   Ir/packet = (Ir(N2 packets) - Ir(N1 packets)) / (N2 - N1)   (start-up cancels out)
# Usage: scripts/perf-regression.sh [--update]   (--update rewrites the baseline)
set -euo pipefail
cd "$(dirname "$0")/.."
HNV=target/release/hnvswitch
[[ -x $HNV ]] || cargo build --release --locked --bin hnvswitch >&2
command -v valgrind >/dev/null || { echo "valgrind not found: run scripts/setup.sh --with-test-tools" >&2; exit 1; }
BASE=bench/baseline.toml
UPDATE=0
[[ "${1:-}" == "--update" ]] && UPDATE=1
WORK=$(mktemp -d /tmp/hnv-perf.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
N1=50000 N2=350000
TOL=${HNV_PERF_TOLERANCE:-0.05}

ir() { # config packets tag
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$3" "$HNV" run --config "$1" --packets "$2" --duration 600 > "$WORK/log.$3" 2>&1 \
        || { cat "$WORK/log.$3" >&2; exit 1; }
    awk '/^summary:|^totals:/ {print $2; exit}' "$WORK/cg.$3"
}

status=0
declare -A got
for s in encap decap local; do
    read -r cfg _ _ < <($HNV scenario --scenario "$s" --flows 1024 --hugepages off --mbufs 8191 --dir "$WORK/$s")
    a=$(ir "$cfg" $N1 "$s.1"); b=$(ir "$cfg" $N2 "$s.2")
    got[$s]=$(awk -v a="$a" -v b="$b" -v n1=$N1 -v n2=$N2 'BEGIN {printf "%.1f", (b-a)/(n2-n1)}')
    base=$(awk -F' *= *' -v k="$s" '$1 == k {print $2}' "$BASE" 2>/dev/null || true)
    if [[ -z $base ]]; then
        echo "perf: $s ${got[$s]} Ir/packet (no baseline)"
    else
        verdict=$(awk -v g="${got[$s]}" -v b="$base" -v t="$TOL" 'BEGIN {d=(g-b)/b; printf "%+.1f%% %s", d*100, (d > t ? "REGRESSION" : "ok")}')
        echo "perf: $s ${got[$s]} Ir/packet, baseline $base: $verdict"
        [[ $verdict == *REGRESSION* ]] && status=1
    fi
done
if ((UPDATE)); then
    {
        echo "# callgrind instructions per packet (scripts/perf-regression.sh --update), 1024 flows, 64-byte frames,"
        echo "# --no-huge, net_pcap infinite_rx source -> net_null sink; commit $(git rev-parse --short=12 HEAD), $(date -u +%Y-%m-%d)"
        for s in encap decap local; do echo "$s = ${got[$s]}"; done
    } > "$BASE"
    echo "perf: baseline written to $BASE"
    status=0
fi
exit $status
