#!/usr/bin/env bash
# The cost curve: hnvswitch's throughput (Mpps) and callgrind instructions per
# packet for encap, decap and local at 1k, 16k, 64k, 256k and 1M flows, with
# testpmd io at the same points as the ceiling of the harness. Every point is a
# single-VM scenario of `hnvswitch scenario` (64-byte frames, net_pcap
# infinite_rx source into net_null, one forwarding core on core 1, hugepages for
# the timed runs, --no-huge under callgrind). Rounds alternate: each round visits
# every point, odd rounds hnvswitch first, even rounds testpmd first and the
# points in reverse order. scripts/bench/cost_curve.py computes the medians,
# Ir/packet = (Ir(N2) - Ir(N1)) / (N2 - N1) with N1 = flows + 32768 (see its
# header for why that measures the steady state), the table and the plot. This
# script only starts processes.
#
# Usage: scripts/cost-curve.sh [--quick] [--rounds N] [--seconds S] [--flows 1024,16384,...]
#          [--scenarios encap,decap,local] [--no-callgrind] [--no-testpmd] [--out FILE.md] [--keep]
#   default: 3 rounds of 4 s, callgrind with N2 - N1 = 262144 (about 22 min on the 2-vCPU VM;
#            callgrind at 1M flows takes about 100 s per scenario)
#   --quick: 1 round of 2 s, N2 - N1 = 65536 (about 11 min)
# Writes bench/results/cost-curve-<date>.md (…-quick.md with --quick) with the plot
# (.svg) and the raw figures (.json, .csv) next to it, and prints the table.
# Needs root (hugepages), valgrind (scripts/setup.sh --with-test-tools) and
# python3-matplotlib for the plot. Cleans up on exit, Ctrl-C or TERM: the running
# process by pid, its /var/run/dpdk prefix, the work directory, the hugepage setting.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ROUNDS=3 SECS=4 QUICK=0 KEEP=0 OUT="" CALLGRIND=1 TESTPMD=1 DIFF=262144
FLOWS=1024,16384,65536,262144,1048576 SCENS=encap,decap,local ARGS="$*"
while (($#)); do
    case $1 in
        --quick) QUICK=1; shift ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --seconds) SECS=$2; shift 2 ;;
        --flows) FLOWS=$2; shift 2 ;;
        --scenarios) SCENS=$2; shift 2 ;;
        --no-callgrind) CALLGRIND=0; shift ;;
        --no-testpmd) TESTPMD=0; shift ;;
        --out) OUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if ((QUICK)); then ROUNDS=1; SECS=2; DIFF=65536; fi
((SECS >= 2)) || { echo "--seconds must be >= 2" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "cost-curve: must run as root (hugepages)" >&2; exit 1; }
IFS=, read -r -a FLOW_LIST <<< "$FLOWS"
IFS=, read -r -a SCEN_LIST <<< "$SCENS"
for f in "${FLOW_LIST[@]}"; do [[ $f =~ ^[0-9]+$ ]] && ((f > 0)) || { echo "cost-curve: bad flow count '$f'" >&2; exit 2; }; done
for s in "${SCEN_LIST[@]}"; do [[ $s =~ ^(encap|decap|local)$ ]] || { echo "cost-curve: bad scenario '$s'" >&2; exit 2; }; done

HNV=$ROOT/target/release/hnvswitch
[[ -x $HNV ]] || cargo build --release --locked --bin hnvswitch >&2
PY=/usr/bin/python3
CC=$ROOT/scripts/bench/cost_curve.py
((CALLGRIND == 0)) || command -v valgrind >/dev/null || { echo "cost-curve: valgrind not found (scripts/setup.sh --with-test-tools)" >&2; exit 1; }
((TESTPMD == 0)) || command -v dpdk-testpmd >/dev/null || { echo "cost-curve: dpdk-testpmd not found (scripts/setup.sh)" >&2; exit 1; }
mountpoint -q /dev/hugepages || { echo "cost-curve: /dev/hugepages is not mounted (scripts/setup.sh)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/hnv-cost.XXXXXX)
RAW=$WORK/raw.jsonl
TPM_PREFIX=tpmcost$$
HUGE_NR=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
HUGE_ORIG=$(cat "$HUGE_NR")
RUN_PID="" HNV_PIDS=()

stop_pid() { # pid signal: signal, wait up to 10 s, then KILL
    local p=$1 sig=${2:-INT} i
    [[ -n $p ]] || return 0
    kill -"$sig" "$p" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    stop_pid "$RUN_PID" INT
    rm -rf "/var/run/dpdk/$TPM_PREFIX"
    for p in "${HNV_PIDS[@]}"; do rm -rf "/var/run/dpdk/hnv$p"; done
    [[ $(cat "$HUGE_NR") == "$HUGE_ORIG" ]] || echo "$HUGE_ORIG" > "$HUGE_NR" || true
    if ((KEEP)); then echo "cost-curve: work files kept in $WORK" >&2; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "cost-curve: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM
log() { echo "$*" >&2; }
free_huge() { local k v _; while read -r k v _; do if [[ $k == HugePages_Free: ]]; then echo "$v"; fi; done < /proc/meminfo; }
ensure_free_huge() { # MB: raise nr_hugepages until that much is free (restored on exit)
    local want=$((($1 + 1) / 2)) free
    free=$(free_huge)
    if ((free < want)); then echo $(($(cat "$HUGE_NR") + want - free + 16)) > "$HUGE_NR" || true; fi
    free=$(free_huge)
    if ((free < want)); then log "  warning: only $((free * 2)) MB of hugepages free, $1 MB wanted"; fi
}
wait_for() { # file pattern pid timeout
    local i
    for ((i = 0; i < $4 * 10; i++)); do
        grep -qE "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
wait_periods() { # testpmd-log count pid timeout: until COUNT stats periods are in the log
    local i n
    for ((i = 0; i < $4 * 10; i++)); do
        n=$(grep -c 'NIC statistics for port 0 ' "$1" || true)
        ((n >= $2)) && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
mbufs_for() { # the pool must hold the preloaded pcap plus what is in flight
    if (($1 <= 8192)); then echo 16383; elif (($1 <= 65536)); then echo 131071; else echo $(($1 + 65535)); fi
}

# A private copy of the binary: a rebuild during the run must not change what is measured.
cp "$HNV" "$WORK/hnvswitch"; HNV=$WORK/hnvswitch

log "cost-curve: $("$PY" "$CC" meta --raw "$RAW" --root "$ROOT" --hnv "$HNV" --args "$ARGS" --rounds "$ROUNDS" --seconds "$SECS")"
log "cost-curve: ${SCEN_LIST[*]} at ${FLOW_LIST[*]} flows; $ROUNDS round(s) of $SECS s; callgrind $CALLGRIND (N2 - N1 = $DIFF); work dir $WORK"

# ---------------------------------------------------------------- scenario files
declare -A CFG SRC SINK MEM MBUFS
POINTS=()
for s in "${SCEN_LIST[@]}"; do
    for f in "${FLOW_LIST[@]}"; do
        m=$(mbufs_for "$f")
        read -r cfg pcap sink src < <("$HNV" scenario --scenario "$s" --flows "$f" --frame-size 64 --hugepages on --mbufs "$m" --dir "$WORK/$s-$f")
        [[ -f $cfg ]] || { log "cost-curve: hnvswitch scenario $s $f failed"; exit 1; }
        k=$s:$f; POINTS+=("$k")
        CFG[$k]=$cfg SINK[$k]=$sink MBUFS[$k]=$m
        mem=$(grep -E '^memory_mb *=' "$cfg"); MEM[$k]=${mem##*= }
        SRC[$k]="--vdev net_pcap_$src,rx_pcap=$pcap,infinite_rx=1 --vdev net_null_$sink,no-rx=1"
    done
done

run_hnv() { # point round
    local k=$1 log=$WORK/hnv.log
    ensure_free_huge $((MEM[$k] + 64))
    RUST_LOG=warn "$HNV" run --config "${CFG[$k]}" --duration $((SECS + 1)) > "$log" 2>&1 &
    RUN_PID=$!; HNV_PIDS+=("$RUN_PID")
    wait "$RUN_PID" || true; RUN_PID=""
    log "    hnvswitch $(printf '%-6s %8s' "${k%%:*}" "${k##*:}"): $("$PY" "$CC" rate --raw "$RAW" --scenario "${k%%:*}" --flows "${k##*:}" --contender hnv --round "$2" --log "$log" --sinks "${SINK[$k]}")"
}
run_testpmd() { # point round
    local k=$1 log=$WORK/testpmd.log
    ensure_free_huge $((MEM[$k] + 64))
    # shellcheck disable=SC2086 # SRC holds two --vdev options
    dpdk-testpmd -l 0,1 --no-pci --in-memory --file-prefix="$TPM_PREFIX" ${SRC[$k]} -- \
        --forward-mode=io --nb-cores=1 --stats-period=1 --total-num-mbufs=$((MBUFS[$k] + 1)) \
        --rxd=1024 --txd=1024 --burst=32 < /dev/null > "$log" 2>&1 &
    RUN_PID=$!
    # SECS + 2 stats periods: the first (partial) and the last are not used (benchlib.py). Counted,
    # not timed: on a loaded machine testpmd's main lcore prints them late.
    if wait_for "$log" 'Tx-pps' "$RUN_PID" 120; then wait_periods "$log" $((SECS + 2)) "$RUN_PID" $((3 * SECS + 20)) || true; fi
    stop_pid "$RUN_PID" INT; RUN_PID=""
    log "    testpmd   $(printf '%-6s %8s' "${k%%:*}" "${k##*:}"): $("$PY" "$CC" rate --raw "$RAW" --scenario "${k%%:*}" --flows "${k##*:}" --contender testpmd --round "$2" --log "$log")"
}

# ---------------------------------------------------------------- Mpps, alternating rounds
START=$SECONDS
for ((r = 1; r <= ROUNDS; r++)); do
    log "round $r (load $(cut -d' ' -f1-3 /proc/loadavg)):"
    if ((r % 2)); then order=("${POINTS[@]}"); else order=(); for ((i = ${#POINTS[@]} - 1; i >= 0; i--)); do order+=("${POINTS[$i]}"); done; fi
    for k in "${order[@]}"; do
        if ((r % 2)); then run_hnv "$k" "$r"; fi
        if ((TESTPMD)); then run_testpmd "$k" "$r"; fi
        if ((r % 2 == 0)); then run_hnv "$k" "$r"; fi
    done
    [[ $(cat "$HUGE_NR") == "$HUGE_ORIG" ]] || echo "$HUGE_ORIG" > "$HUGE_NR" || true
done
log "cost-curve: rates took $((SECONDS - START)) s"

# ---------------------------------------------------------------- callgrind Ir/packet
cg() { # point packets tag -> callgrind counts up to the end of forwarding in $WORK/cg.tag.1
    local k=$1 cfg=$WORK/cg-${1/:/-}.toml out=$WORK/cg.$3
    # --no-huge (valgrind cannot reserve DPDK's hugepage VA space): 4 KiB pages hold one mbuf each.
    sed -e 's/^hugepages = .*/hugepages = "off"/' -e "s/^memory_mb = .*/memory_mb = $((MBUFS[$k] * 4096 / 1048576 + 256))/" "${CFG[$k]}" > "$cfg"
    # Part 1 is dumped when the first port is stopped, i.e. after the last packet and the exit
    # report; the teardown after it (freeing and zeroing the pool: minutes at 1M flows) is not
    # needed, so the process is killed once part 1 is complete.
    rm -f "$out" "$out".*
    RUST_LOG=warn valgrind --tool=callgrind --dump-before=rte_eth_dev_stop --callgrind-out-file="$out" \
        "$HNV" run --config "$cfg" --packets "$2" --duration 3600 > "$out.log" 2>&1 &
    RUN_PID=$!; HNV_PIDS+=("$RUN_PID")
    while kill -0 "$RUN_PID" 2>/dev/null && ! grep -qs '^totals:' "$out.1"; do sleep 0.5; done
    stop_pid "$RUN_PID" KILL 2>/dev/null; RUN_PID=""   # (no "Killed" job notice)
    grep -qs '^totals:' "$out.1" || { log "cost-curve: callgrind run failed: $(grep -v '^==' "$out.log" | tail -3)"; return 1; }
    grep -q 'reconciled' "$out.log" || { log "cost-curve: counters do not reconcile: $(grep -E '^rx [0-9]+' "$out.log")"; return 1; }
}
if ((CALLGRIND)); then
    for k in "${POINTS[@]}"; do
        t0=$SECONDS f=${k##*:}
        n1=$((f + 32768)); n2=$((n1 + DIFF))
        if cg "$k" "$n1" 1 && cg "$k" "$n2" 2; then
            log "  callgrind $(printf '%-6s %8s' "${k%%:*}" "$f"): $("$PY" "$CC" ir --raw "$RAW" --scenario "${k%%:*}" --flows "$f" --n1 "$n1" --n2 "$n2" --out1 "$WORK/cg.1.1" --out2 "$WORK/cg.2.1") ($((SECONDS - t0)) s)"
        fi
        rm -f "$WORK"/cg.[12] "$WORK"/cg.[12].*[0-9]
    done
fi
log "cost-curve: total $((SECONDS - START)) s"

# ---------------------------------------------------------------- report
if [[ -z $OUT ]]; then
    OUT=bench/results/cost-curve-$(date -u +%Y-%m-%d)
    if ((QUICK)); then OUT+=-quick.md; else OUT+=.md; fi
fi
"$PY" "$CC" report --raw "$RAW" --out "$OUT"
log "cost-curve: written to $OUT (plot ${OUT%.md}.svg, raw figures ${OUT%.md}.json, ${OUT%.md}.csv)"
