#!/usr/bin/env bash
# Cross-connect throughput: dpdk-testpmd --forward-mode=io against hnvswitch
# (mode io) on identical virtual devices: a net_pcap infinite_rx source of
# 64-byte frames into net_null (no-rx=1), one pinned forwarding core, the
# same EAL memory mode. Rounds alternate the order; the script prints Mpps per
# round, the medians and their ratio, and (unless --no-callgrind) hnvswitch's
# callgrind instructions per packet for a fixed packet count. Medians, the ratio
# and Ir/packet are computed by scripts/bench/*.py; this script only starts processes.
#
# Usage: scripts/compare-testpmd.sh [--rounds N] [--seconds S] [--flows F] [--size B] [--no-callgrind] [--out FILE.md]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=3 SECONDS_PER_RUN=7 FLOWS=1024 SIZE=64 CALLGRIND=1 OUT=""
while (($#)); do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --seconds) SECONDS_PER_RUN=$2; shift 2 ;;
        --flows) FLOWS=$2; shift 2 ;;
        --size) SIZE=$2; shift 2 ;;
        --no-callgrind) CALLGRIND=0; shift ;;
        --out) OUT=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

HNV=target/release/hnvswitch
[[ -x $HNV ]] || cargo build --release --locked --bin hnvswitch >&2
command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd not found: run scripts/setup.sh" >&2; exit 1; }

WORK=$(mktemp -d /tmp/hnv-compare.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK" /var/run/dpdk/hnvcmp* /var/run/dpdk/tpmcmp*
}
trap cleanup EXIT INT TERM

$HNV traffic --flows "$FLOWS" --size "$SIZE" --out "$WORK/src.pcap"
MBUFS=32767

free_huge=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if mountpoint -q /dev/hugepages && (( free_huge * 2 >= 1024 )); then
    MEMMODE="hugepages (--in-memory)"; TPM_EAL=(--in-memory); HNV_HUGE=on
else
    MEMMODE="--no-huge -m 1024"; TPM_EAL=(--no-huge -m 1024 --no-shconf); HNV_HUGE=off
fi

cat > "$WORK/hnv.toml" <<CFG
[dpdk]
main_core = 0
workers = [1]
memory_mb = 1024
hugepages = "$HNV_HUGE"
file_prefix = "hnvcmp$$"
mbufs = $MBUFS
[[ports]]
name = "src"
devargs = "net_pcap0,rx_pcap=$WORK/src.pcap,infinite_rx=1"
[[ports]]
name = "sink"
devargs = "net_null0,no-rx=1"
[forwarding]
mode = "io"
[run]
stats_interval_secs = 1
CFG

PY=/usr/bin/python3
BL=scripts/bench/benchlib.py

# Per-second Mpps samples of the sink port, the first (warm-up) one skipped; prints their median.
run_hnv() {
    RUST_LOG=warn $HNV run --config "$WORK/hnv.toml" --duration "$SECONDS_PER_RUN" > "$WORK/hnv.log" 2>&1 &
    PIDS=($!); wait "${PIDS[0]}"; PIDS=()
    "$PY" "$BL" hnv-median "$WORK/hnv.log" sink
}

run_testpmd() {
    timeout -s INT "$((SECONDS_PER_RUN + 1))" dpdk-testpmd -l 0,1 --no-pci --file-prefix="tpmcmp$$" "${TPM_EAL[@]}" \
        --vdev "net_pcap0,rx_pcap=$WORK/src.pcap,infinite_rx=1" --vdev net_null0,no-rx=1 -- \
        --forward-mode=io --nb-cores=1 --stats-period=1 --total-num-mbufs=$MBUFS --rxd=1024 --txd=1024 --burst=32 \
        < /dev/null > "$WORK/tpm.log" 2>&1 &
    PIDS=($!); wait "${PIDS[0]}" || true; PIDS=()
    "$PY" "$BL" testpmd-median "$WORK/tpm.log"
}

declare -a T H
for ((r = 1; r <= ROUNDS; r++)); do
    if (( r % 2 )); then t=$(run_testpmd); h=$(run_hnv); else h=$(run_hnv); t=$(run_testpmd); fi
    T+=("$t"); H+=("$h")
    echo "round $r: testpmd io $t Mpps, hnvswitch io $h Mpps" >&2
done
tm=$("$PY" "$BL" median "${T[@]}")
hm=$("$PY" "$BL" median "${H[@]}")
ratio=$("$PY" "$BL" ratio "$hm" "$tm")

irpp="not measured"
if (( CALLGRIND )) && command -v valgrind >/dev/null; then
    # Instructions per packet = (Ir(N2) - Ir(N1)) / (N2 - N1): start-up cost cancels out.
    sed -e 's/^hugepages = .*/hugepages = "off"/' -e 's/^memory_mb = .*/memory_mb = 512/' -e "s/^mbufs = .*/mbufs = 8191/" "$WORK/hnv.toml" > "$WORK/cg.toml"
    ir() {
        RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$1" $HNV run --config "$WORK/cg.toml" --packets "$1" --duration 600 > "$WORK/cg.$1.log" 2>&1
    }
    n1=100000 n2=1100000
    ir $n1; ir $n2
    irpp=$("$PY" scripts/bench/perf_check.py ir "$WORK/cg.$n1" "$WORK/cg.$n2" $n1 $n2)
fi

machine=$("$PY" "$BL" machine)
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
report=$(cat <<MD
| scenario | testpmd io (Mpps) | hnvswitch io (Mpps) | ratio | hnvswitch Ir/packet |
|---|---|---|---|---|
| cross-connect, ${SIZE}-byte frames, ${FLOWS} flows | ${tm} (rounds: ${T[*]}) | ${hm} (rounds: ${H[*]}) | ${ratio} | ${irpp} |

$(date -u +%Y-%m-%d), ${machine}, memory: ${MEMMODE}, one forwarding core, median of ${ROUNDS} alternating rounds of ${SECONDS_PER_RUN} s, commit ${commit}.
MD
)
echo "$report"
[[ -n $OUT ]] && echo "$report" > "$OUT"
exit 0
