#!/usr/bin/env bash
# etcd at scale (issue 11): a private etcd (own data directory, loopback ports)
# holds a policy of T tenants × 1,000 lookup records (`hnvswitch scenario --tenants T
# --cas-per-tenant 1000`), published with `hnvctl publish --batch N`; two switches
# start with --etcd, each with its own small local part (host 1: the encap
# scenario's host and ports at PA 192.168.4.11; host 2: the same ports at PA
# 192.168.4.33, their VMs at host 1 in etcd), one after the other; then 10,000
# record moves are put to etcd as fast as possible. scripts/bench/etcd_scale.py
# measures the publish, each switch's start-up until it forwards with the etcd
# policy (and its RSS), and the time from the first put until both switches have
# applied the last one, with the policy generations each needed. This script
# only starts and stops processes (etcd, the switches).
#
# Usage: scripts/etcd-scale.sh [--tenants 1000] [--moves 10000] [--batch 1000] [--threads 8] [--per-txn 1]
#                              [--etcd-tmpfs] [--raw FILE.jsonl] [--out FILE.md] [--keep]
# --per-txn M: M moves per etcd transaction (default 1: one put per move).
# --raw: append the run's record to FILE (to report several runs in one table).
# --etcd-tmpfs: etcd's data directory in /dev/shm (its fsyncs cost nothing: the puts are not
# limited by this VM's disk); removed at the end.
# Writes bench/results/etcd-scale-<date>.md and .json. Needs etcd and etcdctl
# (scripts/setup.sh --with-test-tools). About 2 minutes at 1M records; ~2 GB in /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RAW_ARG="" TENANTS=1000 MOVES=10000 BATCH=1000 THREADS=8 PER_TXN=1 OUT="" KEEP=0 CAS=1000 TMPFS=0
while (($#)); do
    case $1 in
        --tenants) TENANTS=$2; shift 2 ;;
        --moves) MOVES=$2; shift 2 ;;
        --batch) BATCH=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --per-txn) PER_TXN=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --raw) RAW_ARG=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --etcd-tmpfs) TMPFS=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
command -v etcd >/dev/null && command -v etcdctl >/dev/null || { echo "etcd-scale: needs etcd and etcdctl (scripts/setup.sh --with-test-tools)" >&2; exit 1; }
[[ -x target/release/hnvswitch && -x target/release/hnvctl ]] || cargo build --release --locked --bin hnvswitch --bin hnvctl
BIN=$ROOT/target/release/hnvswitch CTL=$ROOT/target/release/hnvctl PY=scripts/bench/etcd_scale.py
W=$(mktemp -d /tmp/hnv-etcd-scale.XXXXXX)
RAW=${RAW_ARG:-$W/raw.jsonl} STATE=$W/state.json DATA=$W/etcd
((TMPFS)) && DATA=$(mktemp -d /dev/shm/hnv-etcd-scale.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PIDS=()
stop() { # SIGINT (DPDK removes its runtime files), then SIGKILL
    local p=$1
    kill -0 "$p" 2>/dev/null || return 0
    kill -INT "$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
cleanup() { # the switches first, then etcd
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop "${PIDS[i]}"; done
    ((KEEP)) || rm -rf "$W"
    ((TMPFS)) && rm -rf "$DATA"
    return 0
}
trap cleanup EXIT INT TERM

# The private etcd: its own data directory, loopback ports; transactions of up to BATCH operations.
CLIENT=$(free_port) PEER=$(free_port)
URL=http://127.0.0.1:$CLIENT
etcd --name hnvscale --data-dir "$DATA" --listen-client-urls "$URL" --advertise-client-urls "$URL" \
    --listen-peer-urls "http://127.0.0.1:$PEER" --initial-advertise-peer-urls "http://127.0.0.1:$PEER" \
    --initial-cluster "hnvscale=http://127.0.0.1:$PEER" --max-txn-ops "$((BATCH > 128 ? BATCH : 128))" \
    --quota-backend-bytes $((8 << 30)) >"$W/etcd.log" 2>&1 &
ETCD=$!
PIDS+=("$ETCD")
for _ in $(seq 200); do ETCDCTL_API=3 etcdctl --endpoints "$URL" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done

# The shared policy (the tenants' records) and both hosts' own parts (the scenario without tenants).
read -r _ _ <<< "$("$BIN" scenario --scenario encap --flows 1024 --hugepages off --mbufs 8191 --dir "$W/shared" --tenants "$TENANTS" --cas-per-tenant "$CAS")"
records=$(grep -c '^\[\[lookup\]\]' "$W/shared/encap_policy.toml")
for h in 1 2; do
    read -r cfg _ <<< "$("$BIN" scenario --scenario encap --flows 1024 --hugepages off --mbufs 8191 --dir "$W/host$h")"
    eval "CFG$h=$cfg"
done
python3 $PY host2 --policy "$W/host2/encap_policy.toml" --out "$W/host2/host2.toml"
mv "$W/host2/host2.toml" "$W/host2/encap_policy.toml"
sync
python3 $PY publish --state "$STATE" --hnvctl "$CTL" --etcd "$URL" --policy "$W/shared/encap_policy.toml" --batch "$BATCH" --records "$records" --tenants "$TENANTS"
rm -rf "$W/shared"

for h in 1 2; do
    cfg=CFG$h
    start=$(date +%s%N)
    "$BIN" run --config "${!cfg}" --control "$W/host$h.sock" --etcd "$URL" >"$W/host$h.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    python3 $PY startup --state "$STATE" --name "host$h" --pid "$pid" --start-ns "$start" --socket "$W/host$h.sock" \
        || { echo "etcd-scale: host $h did not start with the etcd policy; its log:" >&2; tail -20 "$W/host$h.log" >&2; exit 1; }
done
python3 $PY burst --state "$STATE" --raw "$RAW" --etcd "$URL" --moves "$MOVES" --cas "$CAS" --threads "$THREADS" --per-txn "$PER_TXN" --etcd-pid "$ETCD" \
    || { echo "etcd-scale: the burst failed; the switches' logs:" >&2; tail -5 "$W"/host*.log >&2; exit 1; }
grep -h "etcd" "$W"/host*.log | tail -4 || true
OUT=${OUT:-bench/results/etcd-scale-$(date +%F).md}
meta="$(date -u +%FT%TZ), $(nproc) vCPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), commit $(git rev-parse --short HEAD), etcd $(etcd --version | head -1 | awk '{print $3}') with its data on $( ((TMPFS)) && echo tmpfs || df --output=source "$W" | tail -1)"
python3 $PY report --raw "$RAW" --out "$OUT" --meta "$meta"
