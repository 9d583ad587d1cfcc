#!/usr/bin/env bash
# Throughput of hnvswitch against Open vSwitch with DPDK (Debian
# openvswitch-switch-dpdk 3.1) and dpdk-testpmd --forward-mode=io (the ceiling
# of the harness), on identical traffic files and identical vdevs: a net_pcap
# infinite_rx source into net_null,no-rx=1 sinks, one forwarding core (core 1),
# hugepages. The traffic, the policy and hnvswitch's configuration come from
# `hnvswitch scenario`; OVS's bridges, ports and OpenFlow rules are generated from
# the same policy (scripts/ovs/policy.py); the OVS setup follows
# ../shared/reference/ovs-dpdk-peer.md (private directory, own network namespace,
# br-int with the VM ports and gre0, br-phy with the PA, one PMD on core 1).
#
# Per scenario: each contender first runs a short verification whose sink is a
# net_pcap tx_pcap and whose source is finite (at most the first 16384 frames of
# the traffic file; for OVS repeated and added after the rules, see verify_ovs);
# every distinct output frame is checked and a sample decoded with tshark
# (scripts/ovs/check.py). Then ROUNDS timed rounds, the order alternating per
# round (odd: testpmd, OVS, hnvswitch; even: the reverse). A run's figure is the
# median of its per-second Mpps on the sink port (the first second skipped); a
# scenario's figure is the median over the rounds. Each run also records load1,
# the forwarding thread's CPU share, what else ran on core 1 and the busiest other
# processes during the measured seconds.
#
# Usage: scripts/compare-ovs.sh [--quick] [--rounds N] [--seconds S]
#          [--scenarios encap:1024,decap:65536,...] [--out FILE.md] [--keep]
#   default: encap 1k/64k/1M, decap 1k/64k, local 1k; 3 rounds of 5 s (about 10 min)
#   --quick: encap, decap and local with 1k flows, 1 round of 3 s (about 1.5 min)
# Writes bench/results/compare-ovs-<date>.md (…-quick.md with --quick) and prints it.
# Needs root. Installs openvswitch-switch-dpdk and tshark with apt-get if missing.
# Cleans up on exit, Ctrl-C or TERM: processes by pid, the netns, /var/run/dpdk
# prefixes, temporary files and the hugepage setting.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ROUNDS=3 SECS=5 QUICK=0 KEEP=0 OUT=""
SCEN_LIST="encap:1024,encap:65536,encap:1048576,decap:1024,decap:65536,local:1024"
SCEN_SET=0
while (($#)); do
    case $1 in
        --quick) QUICK=1; shift ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --seconds) SECS=$2; shift 2 ;;
        --scenarios) SCEN_LIST=$2; SCEN_SET=1; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if ((QUICK)); then
    ROUNDS=1; SECS=3
    ((SCEN_SET)) || SCEN_LIST="encap:1024,decap:1024,local:1024"
fi
((SECS >= 2)) || { echo "--seconds must be >= 2" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "compare-ovs: must run as root (DPDK, hugepages, netns)" >&2; exit 1; }

# ---------------------------------------------------------------- prerequisites
HNV=$ROOT/target/release/hnvswitch
[[ -x $HNV ]] || cargo build --release --locked --bin hnvswitch >&2
PY=/usr/bin/python3   # Debian's: tomllib (3.11), no pyenv surprises
"$PY" -c 'import tomllib' 2>/dev/null || { echo "compare-ovs: $PY with tomllib (Python >= 3.11) needed" >&2; exit 1; }
command -v dpdk-testpmd >/dev/null || { echo "compare-ovs: dpdk-testpmd not found: run scripts/setup.sh" >&2; exit 1; }
need_pkgs=()
command -v tshark >/dev/null && command -v editcap >/dev/null || need_pkgs+=(tshark)
[[ -x /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk ]] || need_pkgs+=(openvswitch-switch-dpdk)
if ((${#need_pkgs[@]})); then
    echo "compare-ovs: installing ${need_pkgs[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}" >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}" >&2; }
fi
# The ovs-vswitchd alternative keeps pointing at the non-DPDK binary otherwise (peer doc, pitfall 2).
if [[ $(readlink -f /usr/sbin/ovs-vswitchd) != /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk ]]; then
    update-alternatives --set ovs-vswitchd /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk >&2
fi
mountpoint -q /dev/hugepages || { echo "compare-ovs: /dev/hugepages is not mounted (scripts/setup.sh sets hugepages up)" >&2; exit 1; }

# ---------------------------------------------------------------- state and cleanup
WORK=$(mktemp -d /tmp/hnv-cmpovs.XXXXXX)
NS=hnvcmp$$                    # OVS's network namespace
TPM_PREFIX=tpmcmp$$            # testpmd's DPDK file prefix
OVS_PREFIX=ovscmp$$            # OVS's DPDK file prefix
OVSD=$WORK/ovs                 # OVS's private directory (db, sockets, logs, pids)
HUGE_NR=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
HUGE_ORIG=$(cat "$HUGE_NR")
RUN_PID=""                     # the contender process running now
HNV_PIDS=()                    # hnvswitch pids (their DPDK prefix is hnv<pid>)
OVS_VS_PID="" OVS_DB_PID=""
NS_MADE=0

stop_pid() { # pid signal: signal, wait up to 10 s, then KILL
    local p=$1 sig=${2:-INT} i
    [[ -n $p ]] || return 0
    kill -"$sig" "$p" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

ovs_stop() {
    local p i f
    # Interrupted between a daemon's start and reading its pidfile: take the pid from the file.
    for f in ovs-vswitchd ovsdb-server; do
        [[ -s $OVSD/$f.pid ]] || continue
        p=$(cat "$OVSD/$f.pid")
        [[ $p != "$OVS_VS_PID" && $p != "$OVS_DB_PID" && $(cat /proc/"$p"/comm 2>/dev/null) == "${f:0:15}" ]] || continue
        if [[ $f == ovs-vswitchd ]]; then OVS_VS_PID=$p; else OVS_DB_PID=$p; fi
    done
    for p in $OVS_VS_PID $OVS_DB_PID; do # not our children (--detach): poll
        kill -TERM "$p" 2>/dev/null || continue
        for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    OVS_VS_PID="" OVS_DB_PID=""
    rm -rf "/var/run/dpdk/$OVS_PREFIX"
}

cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    stop_pid "$RUN_PID" INT
    ovs_stop
    ((NS_MADE)) && ip netns del "$NS" 2>/dev/null || true
    rm -rf "/var/run/dpdk/$TPM_PREFIX" "/var/run/dpdk/$OVS_PREFIX"
    for p in "${HNV_PIDS[@]}"; do rm -rf "/var/run/dpdk/hnv$p"; done
    [[ $(cat "$HUGE_NR") == "$HUGE_ORIG" ]] || echo "$HUGE_ORIG" > "$HUGE_NR" || true
    if ((KEEP)); then echo "compare-ovs: work files kept in $WORK" >&2; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "compare-ovs: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }
log() { echo "$*" >&2; }

# Make sure at least MB of 2 MiB hugepages are free, raising nr_hugepages (restored on exit).
ensure_free_huge() {
    local mb=$1 free want
    free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
    want=$(((mb + 1) / 2))
    if ((free < want)); then
        echo $(($(cat "$HUGE_NR") + want - free + 16)) > "$HUGE_NR" || true
        free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
        ((free >= want)) || log "  warning: only $((free * 2)) MB of hugepages free, $mb MB wanted"
    fi
}

# Wait until FILE matches PATTERN while PID lives (timeout seconds).
wait_for() {
    local file=$1 pat=$2 pid=$3 t=$4 i
    for ((i = 0; i < t * 10; i++)); do
        grep -qE "$pat" "$file" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# CPU ticks (1/100 s) of PID's threads whose name starts with PREFIX.
thread_ticks() {
    local t c s=0 v
    for t in /proc/"$1"/task/*; do
        read -r c < "$t/comm" 2>/dev/null || continue
        [[ $c == "$2"* ]] || continue
        v=$(awk '{print $14+$15}' "$t/stat" 2>/dev/null) || continue
        s=$((s + v))
    done
    echo "$s"
}
# "pid ticks comm" for every process (comm with its spaces replaced).
snap_procs() {
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk '{
        o = index($0, "("); r = length($0); while (r > o && substr($0, r, 1) != ")") r--
        comm = substr($0, o + 1, r - o - 1); gsub(/[ \t]/, "_", comm)
        n = split(substr($0, r + 2), f, " "); print $1, f[12] + f[13], comm }'
}
cpu1_ticks() { awk '$1 == "cpu1" {print $2+$3+$4+$7+$8, $9}' /proc/stat; }

# Measurement window around the timed seconds: sets W_DESC (load1, forwarding
# thread %, others on core 1, steal, busiest other processes) and W_FWD.
window_begin() { # pid thread-prefix
    W_PID=$1 W_THR=$2
    W_LOAD=$(cut -d' ' -f1 /proc/loadavg)
    W_T0=$(now); W_F0=$(thread_ticks "$1" "$2"); read -r W_C0 W_S0 < <(cpu1_ticks)
    snap_procs > "$WORK/snap0"
}
window_end() {
    local t1 f1 c1 s1 dt others
    t1=$(now); f1=$(thread_ticks "$W_PID" "$W_THR"); read -r c1 s1 < <(cpu1_ticks)
    snap_procs > "$WORK/snap1"
    dt=$(awk -v a="$W_T0" -v b="$t1" 'BEGIN {print b - a}')
    W_FWD=$(awk -v a="$W_F0" -v b="$f1" -v d="$dt" 'BEGIN {printf "%.0f", (b - a) / d}')
    others=$(awk -v d="$dt" -v me="$W_PID" -v self="$$" '
        NR == FNR {t[$1] = $2; next}
        ($1 in t) && $1 != me && $1 != self {p = ($2 - t[$1]) / d; if (p >= 3) printf "%s %.0f%%\n", $3, p}' \
        "$WORK/snap0" "$WORK/snap1" | sort -k2 -t' ' -g -r | head -3 | paste -sd, - | sed 's/,/, /g')
    W_DESC=$(awk -v l="$W_LOAD" -v f="$W_FWD" -v c0="$W_C0" -v c1="$c1" -v s0="$W_S0" -v s1="$s1" -v d="$dt" -v o="${others:-none}" \
        'BEGIN {c = (c1 - c0) / d - f; if (c < 0) c = 0; printf "load1 %s, fwd thread %s%%, rest of core 1 %.0f%%, steal %.0f%%; others: %s", l, f, c, (s1 - s0) / d, o}')
}

# A private copy of the binary: a rebuild during the run must not change the contender.
cp "$HNV" "$WORK/hnvswitch"; HNV=$WORK/hnvswitch

# ---------------------------------------------------------------- scenario files
declare -A SCEN_DIR SCEN_CFG SCEN_PCAP SCEN_SINK SCEN_SRC SCEN_POL SCEN_MBUFS SCEN_MEM SCEN_VIN SCEN_VN
mbufs_for() { # the pool must hold the whole preloaded pcap plus what is in flight
    local f=$1
    if ((f <= 8192)); then echo 16383
    elif ((f <= 65536)); then echo 131071
    else echo $((f + 65535)); fi
}
VERIFY_MAX=16384   # verification runs use at most the first 16384 frames of a traffic file

make_scenario() { # key = scen:flows
    local key=$1 scen=${1%%:*} flows=${1##*:} dir cfg pcap sink mbufs
    dir=$WORK/$scen-$flows
    mbufs=$(mbufs_for "$flows")
    read -r cfg pcap sink < <("$HNV" scenario --scenario "$scen" --flows "$flows" --size 64 --hugepages on --mbufs "$mbufs" --dir "$dir")
    [[ -f $cfg && -f $pcap ]] || { log "compare-ovs: hnvswitch scenario $scen $flows failed"; exit 1; }
    SCEN_DIR[$key]=$dir SCEN_CFG[$key]=$cfg SCEN_PCAP[$key]=$pcap SCEN_SINK[$key]=$sink SCEN_MBUFS[$key]=$mbufs
    SCEN_POL[$key]=$dir/${scen}_policy.toml
    SCEN_MEM[$key]=$(awk -F' *= *' '$1 == "memory_mb" {print $2}' "$cfg")
    [[ $scen == decap ]] && SCEN_SRC[$key]=uplink || SCEN_SRC[$key]=blue1
    if ((flows > VERIFY_MAX)); then
        editcap -F pcap -r "$pcap" "$dir/verify_in.pcap" "1-$VERIFY_MAX" >/dev/null
        SCEN_VIN[$key]=$dir/verify_in.pcap SCEN_VN[$key]=$VERIFY_MAX
    else
        SCEN_VIN[$key]=$pcap SCEN_VN[$key]=$flows
    fi
}
port_devargs() { "$PY" "$ROOT/scripts/ovs/policy.py" ports "$1" | awk -v n="$2" '$1 == n {print $4}'; }

# ---------------------------------------------------------------- testpmd
run_testpmd() { # key -> R_MPPS R_DESC
    local key=$1 log=$WORK/testpmd.log src sink
    src=$(port_devargs "${SCEN_POL[$key]}" "${SCEN_SRC[$key]}")
    sink=$(port_devargs "${SCEN_POL[$key]}" "${SCEN_SINK[$key]}")
    ensure_free_huge $((SCEN_MEM[$key] + 64))
    dpdk-testpmd -l 0,1 --no-pci --in-memory --file-prefix="$TPM_PREFIX" --vdev "$src" --vdev "$sink" -- \
        --forward-mode=io --nb-cores=1 --stats-period=1 --total-num-mbufs=$((SCEN_MBUFS[$key] + 1)) \
        --rxd=1024 --txd=1024 --burst=32 < /dev/null > "$log" 2>&1 &
    RUN_PID=$!
    if ! wait_for "$log" 'Tx-pps' "$RUN_PID" 120; then
        stop_pid "$RUN_PID" INT; RUN_PID=""
        R_MPPS=nan R_DESC="testpmd did not start: $(grep -m1 -iE 'fail|error|cannot' "$log" || tail -1 "$log")"; return
    fi
    sleep 1; window_begin "$RUN_PID" rte-worker; sleep "$SECS"; window_end
    stop_pid "$RUN_PID" INT; RUN_PID=""
    # One sample per stats period: the sum of the ports' Tx-pps (only the sink sends); period 1 skipped.
    R_MPPS=$(awk '/NIC statistics for port/ {s = $0; sub(/.*for port +/, "", s); if (s + 0 == 0) per++}
                  /Tx-pps:/ {tx[per] += $2} END {for (p = 2; p < per; p++) printf "%.3f\n", tx[p] / 1e6}' "$log" | median)
    R_DESC=$W_DESC
}

verify_testpmd() { # key
    local key=$1 log=$WORK/v_testpmd.log out=$WORK/v_testpmd.pcap pid
    rm -f "$out"
    dpdk-testpmd -l 0,1 --no-pci --in-memory --file-prefix="$TPM_PREFIX" \
        --vdev "net_pcap_${SCEN_SRC[$key]},rx_pcap=${SCEN_VIN[$key]}" --vdev "net_pcap_${SCEN_SINK[$key]},tx_pcap=$out" -- \
        --forward-mode=io --no-flush-rx --nb-cores=1 --stats-period=1 --total-num-mbufs=32768 --rxd=1024 --txd=1024 --burst=32 \
        < /dev/null > "$log" 2>&1 &
    RUN_PID=$!; pid=$RUN_PID
    wait_for "$log" 'Tx-pps' "$pid" 60 || true
    sleep 1; stop_pid "$pid" INT; RUN_PID=""
    "$PY" "$ROOT/scripts/ovs/check.py" --kind io --policy "${SCEN_POL[$key]}" --src-port "${SCEN_SRC[$key]}" \
        --sink-port "${SCEN_SINK[$key]}" --input "${SCEN_VIN[$key]}" --output "$out" --min "${SCEN_VN[$key]}" --label testpmd
}

# ---------------------------------------------------------------- hnvswitch
run_hnv() { # key -> R_MPPS R_DESC (R_FAIL on a crash or drops)
    local key=$1 log=$WORK/hnvswitch.log rc sink=${SCEN_SINK[$key]}
    ensure_free_huge $((SCEN_MEM[$key] + 64))
    RUST_LOG=warn "$HNV" run --config "${SCEN_CFG[$key]}" --duration $((SECS + 120)) > "$log" 2>&1 &
    RUN_PID=$!; HNV_PIDS+=("$RUN_PID")
    if ! wait_for "$log" '^\[' "$RUN_PID" 120; then
        rc=0; wait "$RUN_PID" || rc=$?; RUN_PID=""
        R_MPPS=nan R_FAIL="hnvswitch exited with status $rc before forwarding: $(grep -m3 -iE 'error|panic' "$log" | paste -sd' ' -)"
        R_DESC=$R_FAIL; cp "$log" "$WORK/hnvswitch-failed.log"; return
    fi
    sleep 1; window_begin "$RUN_PID" hnv-worker; sleep "$SECS"; window_end
    kill -INT "$RUN_PID"; rc=0; wait "$RUN_PID" || rc=$?; RUN_PID=""
    R_MPPS=$(grep -E '^\[' "$log" | sed -nE "s/.* ${sink}: rx [0-9.]+ Mpps tx ([0-9.]+) Mpps.*/\1/p" | tail -n +2 | median)
    R_DESC="$W_DESC; $(awk '/^worker +rx/ {getline; printf "%s cycles/pkt", $NF}' "$log")$(sed -nE 's/.*flow cache hits ([0-9]+), misses ([0-9]+).*/ \1 \2/p' "$log" |
        awk '{if ($1 + $2 > 0) printf ", flow cache hits %.1f%%", 100 * $1 / ($1 + $2)}')"
    if ((rc != 0)); then
        R_FAIL="hnvswitch exited with status $rc after SIGINT: $(grep -m3 -iE 'error|panic' "$log" | paste -sd' ' -)"
    elif ! grep -q 'reconciled' "$log"; then
        R_FAIL="hnvswitch counters do not reconcile: $(grep -E '^rx [0-9]+ \+ replicas' "$log")"
    elif ! grep -A1 '^drops by reason' "$log" | grep -q '(none)'; then
        R_FAIL="hnvswitch dropped packets: $(sed -n '/^drops by reason/,/^$/p' "$log" | tail -n +2 | paste -sd' ' -)"
    fi
    [[ -n ${R_FAIL:-} ]] && cp "$log" "$WORK/hnvswitch-failed.log"
    return 0
}

verify_hnv() { # key
    local key=$1 dir=${SCEN_DIR[$1]} out=$WORK/v_hnv.pcap rc=0
    rm -f "$out"
    "$PY" "$ROOT/scripts/ovs/policy.py" rewrite "${SCEN_POL[$key]}" "$dir/verify_hnv_policy.toml" \
        "${SCEN_SRC[$key]}=net_pcap_${SCEN_SRC[$key]},rx_pcap=${SCEN_VIN[$key]}" \
        "${SCEN_SINK[$key]}=net_pcap_${SCEN_SINK[$key]},tx_pcap=$out"
    sed -E "s|^policy = .*|policy = \"$dir/verify_hnv_policy.toml\"|; s|^mbufs = .*|mbufs = 32767|; s|^memory_mb = .*|memory_mb = 512|" \
        "${SCEN_CFG[$key]}" > "$dir/verify_hnv.toml"
    ensure_free_huge 600
    RUST_LOG=warn "$HNV" run --config "$dir/verify_hnv.toml" --duration 2 > "$WORK/v_hnv.log" 2>&1 &
    RUN_PID=$!; HNV_PIDS+=("$RUN_PID")
    wait "$RUN_PID" || rc=$?; RUN_PID=""
    if ((rc != 0)); then
        echo "  hnvswitch: FAIL: exited with status $rc: $(grep -m3 -iE 'error|panic' "$WORK/v_hnv.log" | paste -sd' ' -)"
        return 1
    fi
    "$PY" "$ROOT/scripts/ovs/check.py" --kind "${key%%:*}" --policy "${SCEN_POL[$key]}" --src-port "${SCEN_SRC[$key]}" \
        --sink-port "${SCEN_SINK[$key]}" --input "${SCEN_VIN[$key]}" --output "$out" --min "${SCEN_VN[$key]}" --label hnvswitch
}

# ---------------------------------------------------------------- Open vSwitch with DPDK
ovs_vsctl() { ovs-vsctl --timeout=120 "$@"; }
ovs_appctl() { ovs-appctl -t "$OVSD/ovs-vswitchd.$OVS_VS_PID.ctl" "$@"; }
ovs_bridge_of() { [[ $1 == uplink ]] && echo br-phy || echo br-int; }
ovs_tx() { # port -> tx packets
    ovs-ofctl dump-ports "$(ovs_bridge_of "$1")" "$1" 2>/dev/null | awk '/tx pkts=/ {s = $0; sub(/.*tx pkts=/, "", s); sub(/,.*/, "", s); print s; exit}'
}

# Start ovsdb-server and ovs-vswitchd in the netns from a fresh private directory,
# build br-int/br-phy from POLICY, install the rules. With OVS_DEFER=PORT that port
# is left out (the verification adds its finite source once the rules are in).
# Sets OVS_ERR on failure.
OVS_DEFER=""
ovs_port_ok() { # name devargs -> 0, or 1 with OVS_ERR
    local err port
    err=$(ovs_vsctl get Interface "$1" error 2>/dev/null || true)
    port=$(ovs_vsctl get Interface "$1" ofport 2>/dev/null || echo -1)
    if [[ $port == -1 || ( -n $err && $err != '[]' ) ]]; then
        OVS_ERR="port $1 ($2): ${err:-no ofport}; log: $(grep -m2 -E 'Not enough|ERR|failed' "$OVSD/ovs-vswitchd.log" | sed 's/^[^|]*|[^|]*|//' | paste -sd' ' -)"
        return 1
    fi
}
ovs_start() {
    local pol=$1
    local pa plen pamac name role ofp devargs args=() ip mac
    OVS_ERR=""
    rm -rf "$OVSD"; mkdir -p "$OVSD"
    export OVS_RUNDIR=$OVSD OVS_DBDIR=$OVSD OVS_LOGDIR=$OVSD
    if ((NS_MADE == 0)); then
        ip netns add "$NS"; NS_MADE=1
        ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        ip netns exec "$NS" ip link set lo up
    fi
    ovsdb-tool create "$OVSD/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    ip netns exec "$NS" ovsdb-server "$OVSD/conf.db" --remote="punix:$OVSD/db.sock" \
        --pidfile="$OVSD/ovsdb-server.pid" --log-file="$OVSD/ovsdb-server.log" --detach 2>/dev/null
    OVS_DB_PID=$(cat "$OVSD/ovsdb-server.pid")
    ovs_vsctl --no-wait init
    ovs_vsctl --no-wait set Open_vSwitch . other_config:dpdk-init=true \
        other_config:dpdk-extra="--no-pci --file-prefix=$OVS_PREFIX" \
        other_config:dpdk-socket-mem=256 other_config:dpdk-socket-limit=512 \
        other_config:dpdk-lcore-mask=0x1 other_config:pmd-cpu-mask=0x2
    ip netns exec "$NS" ovs-vswitchd "unix:$OVSD/db.sock" \
        --pidfile="$OVSD/ovs-vswitchd.pid" --log-file="$OVSD/ovs-vswitchd.log" --detach 2>/dev/null
    OVS_VS_PID=$(cat "$OVSD/ovs-vswitchd.pid")
    read -r pa plen pamac < <("$PY" "$ROOT/scripts/ovs/policy.py" pa "$pol")
    args=(add-br br-int -- set bridge br-int datapath_type=netdev fail_mode=secure
          -- add-port br-int gre0 -- set Interface gre0 type=gre ofport_request=100
             options:remote_ip=flow options:key=flow "options:local_ip=$pa"
          -- add-br br-phy -- set bridge br-phy datapath_type=netdev fail_mode=secure "other_config:hwaddr=$pamac")
    while read -r name role ofp devargs; do
        [[ $name == "$OVS_DEFER" ]] && continue
        args+=(-- add-port "$(ovs_bridge_of "$name")" "$name" -- set Interface "$name" type=dpdk
               "ofport_request=$ofp" "options:dpdk-devargs=$devargs")
    done < <("$PY" "$ROOT/scripts/ovs/policy.py" ports "$pol")
    ovs_vsctl "${args[@]}" 2>> "$WORK/ovs-vsctl.err" || true
    while read -r name role ofp devargs; do
        [[ $name == "$OVS_DEFER" ]] && continue
        ovs_port_ok "$name" "$devargs" || return 1
    done < <("$PY" "$ROOT/scripts/ovs/policy.py" ports "$pol")
    # br-phy's tap owns the local PA (OVS 3.1 takes the tunnel source from it), inside the netns only.
    ip netns exec "$NS" ip addr replace "$pa/$plen" dev br-phy
    ip netns exec "$NS" ip link set br-phy up
    ovs_appctl ovs/route/add "${pa%.*}.0/$plen" br-phy > /dev/null 2>&1 || true
    while read -r ip mac; do ovs_appctl tnl/arp/set br-phy "$ip" "$mac" > /dev/null; done \
        < <("$PY" "$ROOT/scripts/ovs/policy.py" arp "$pol")
    "$PY" "$ROOT/scripts/ovs/policy.py" flows "$pol" > "$OVSD/br-int.flows"
    printf '%s\n' "priority=100,in_port=LOCAL,actions=output:1" "priority=100,in_port=1,actions=LOCAL" > "$OVSD/br-phy.flows"
    ovs-ofctl -O OpenFlow13 replace-flows br-int "$OVSD/br-int.flows"
    ovs-ofctl -O OpenFlow13 replace-flows br-phy "$OVSD/br-phy.flows"
}

run_ovs() { # key -> R_MPPS R_DESC
    local key=$1 sink=${SCEN_SINK[$1]} i c0 t0 c t rates=() stats
    ensure_free_huge 640
    if ! ovs_start "${SCEN_POL[$key]}"; then
        R_MPPS=nan R_DESC="OVS could not run it: $OVS_ERR"; ovs_stop; return
    fi
    for ((i = 0; i < 600; i++)); do c=$(ovs_tx "$sink"); ((${c:-0} > 0)) && break; sleep 0.1; done
    if ((${c:-0} == 0)); then R_MPPS=nan R_DESC="OVS forwarded nothing to $sink"; ovs_stop; return; fi
    sleep 1
    ovs_appctl dpif-netdev/pmd-stats-clear > /dev/null
    window_begin "$OVS_VS_PID" pmd-c
    c0=$(ovs_tx "$sink"); t0=$(now)
    for ((i = 0; i < SECS; i++)); do
        sleep 1; c=$(ovs_tx "$sink"); t=$(now)
        rates+=("$(awk -v a="$c0" -v b="$c" -v s="$t0" -v e="$t" 'BEGIN {printf "%.3f", (b - a) / (e - s) / 1e6}')")
        c0=$c t0=$t
    done
    window_end
    ovs_appctl dpif-netdev/pmd-stats-show > "$WORK/pmd-stats.txt" 2>&1 || true
    stats=$(awk -F': *' '
        /packets received/ {r = $2} /datapath passes per packet/ {p = $2} /simple match hits/ {s = $2}
        /emc hits/ {e = $2} /smc hits/ {m = $2} /megaflow hits/ {f = $2} /miss with success upcall/ {u = $2}
        /avg processing cycles per packet/ {cy = $2} /^main thread/ {exit}
        END {n = r * (p ? p : 1); if (n > 0) printf "passes/pkt %s, simple %.1f%%, EMC %.1f%%, SMC %.1f%%, megaflow %.1f%%, upcalls %d, %.0f cycles/pkt", p, 100*s/n, 100*e/n, 100*m/n, 100*f/n, u, cy}' "$WORK/pmd-stats.txt")
    ovs_stop
    R_MPPS=$(printf '%s\n' "${rates[@]}" | median)
    R_DESC="$W_DESC; OVS lookups: $stats"
}

verify_ovs() { # key
    # A finite source (the sample four times over, or twice for a 16k sample) added once the rules
    # are installed: OVS drops the first few hundred frames of a port it has just added (the PMD
    # polls it before ofproto knows it, peer doc pitfall 5); the later copies carry every frame.
    local key=$1 dir=${SCEN_DIR[$1]} out=$WORK/v_ovs.pcap in=${SCEN_DIR[$1]}/verify_ovs_in.pcap
    local src=${SCEN_SRC[$1]} sink=${SCEN_SINK[$1]} copies=4 i c prev=-1 ofp dev
    ((SCEN_VN[$key] > 4096)) && copies=2
    rm -f "$out"
    mergecap -F pcap -a -w "$in" $(for ((i = 0; i < copies; i++)); do echo "${SCEN_VIN[$key]}"; done)
    dev="net_pcap_$src,rx_pcap=$in"
    "$PY" "$ROOT/scripts/ovs/policy.py" rewrite "${SCEN_POL[$key]}" "$dir/verify_ovs_policy.toml" \
        "$src=$dev" "$sink=net_pcap_$sink,tx_pcap=$out"
    ensure_free_huge 640
    OVS_DEFER=$src
    if ! ovs_start "$dir/verify_ovs_policy.toml"; then
        OVS_DEFER=""; echo "  OVS-DPDK: FAIL: $OVS_ERR"; ovs_stop; return 1
    fi
    OVS_DEFER=""
    ofp=$("$PY" "$ROOT/scripts/ovs/policy.py" ports "${SCEN_POL[$key]}" | awk -v n="$src" '$1 == n {print $3}')
    ovs_vsctl add-port "$(ovs_bridge_of "$src")" "$src" -- set Interface "$src" type=dpdk "ofport_request=$ofp" "options:dpdk-devargs=$dev" \
        2>> "$WORK/ovs-vsctl.err" || true
    if ! ovs_port_ok "$src" "$dev"; then echo "  OVS-DPDK: FAIL: $OVS_ERR"; ovs_stop; return 1; fi
    # Until the sink's counter stops moving (at most 20 s).
    for ((i = 0; i < 40; i++)); do
        sleep 0.5; c=$(ovs_tx "$sink"); c=${c:-0}
        ((c > 0 && c == prev)) && break
        prev=$c
    done
    # Deleting the ports closes them: the pcap writer flushes.
    ovs_vsctl del-port "$src" -- del-port "$sink"
    ovs_stop
    echo "  OVS-DPDK: source = the verification frames $copies times over, added after the rules"
    "$PY" "$ROOT/scripts/ovs/check.py" --kind "${key%%:*}" --policy "${SCEN_POL[$key]}" --src-port "$src" \
        --sink-port "$sink" --input "${SCEN_VIN[$key]}" --output "$out" --min "${SCEN_VN[$key]}" --label OVS-DPDK
}

# ---------------------------------------------------------------- main
IFS=, read -r -a KEYS <<< "$SCEN_LIST"
for key in "${KEYS[@]}"; do
    [[ $key =~ ^(encap|decap|local):[0-9]+$ ]] || { log "compare-ovs: bad scenario '$key' (want encap|decap|local:FLOWS)"; exit 2; }
done
STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
MACHINE="$(nproc) vCPU $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
COMMIT=$(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
HNV_VERSION=$("$HNV" --version 2>/dev/null | head -1)
OVS_VERSION=$(ovs-vswitchd --version | head -1)
DPDK_VERSION=$(dpkg-query -W -f='${Version}' dpdk 2>/dev/null || echo "?")
log "compare-ovs: $STARTED, $MACHINE, commit $COMMIT ($HNV_VERSION), $OVS_VERSION, DPDK $DPDK_VERSION"
log "compare-ovs: scenarios ${KEYS[*]}; $ROUNDS round(s) of $SECS s; work dir $WORK"
log "compare-ovs: before start: $(uptime | sed 's/^ *//')"

declare -A RES DETAIL VERIFY
FAILED=0 HNV_PROBLEMS=()
CONTENDERS=(testpmd ovs hnv)
declare -A NAME=([testpmd]="testpmd io" [ovs]="OVS-DPDK" [hnv]="hnvswitch")

for key in "${KEYS[@]}"; do
    scen=${key%%:*} flows=${key##*:}
    log ""
    log "=== $scen, $flows flows ==="
    make_scenario "$key"
    log "  traffic $(basename "${SCEN_PCAP[$key]}"): source port ${SCEN_SRC[$key]}, sink port ${SCEN_SINK[$key]}, $((SCEN_MBUFS[$key] + 1)) mbufs"
    declare -A OK=()
    for c in "${CONTENDERS[@]}"; do
        if ((${SCEN_VN[$key]} < flows)); then
            log "  verify ${NAME[$c]} (first ${SCEN_VN[$key]} frames of the traffic file):"
        else
            log "  verify ${NAME[$c]}:"
        fi
        # Not in a subshell: the cleanup trap must know the pids, the netns and the DPDK prefixes.
        if "verify_$c" "$key" > "$WORK/verify.out" 2>&1; then OK[$c]=1; else OK[$c]=0; FAILED=1; fi
        out=$(cat "$WORK/verify.out")
        log "$out"
        VERIFY[$key.$c]=$out
        if [[ $c == hnv ]] && ((OK[$c] == 0)); then HNV_PROBLEMS+=("$scen $flows flows: verification failed"); fi
    done
    ovs_skip=""   # set when OVS cannot load the traffic at all: later rounds are not tried again
    for ((r = 1; r <= ROUNDS; r++)); do
        if ((r % 2)); then order=(testpmd ovs hnv); else order=(hnv ovs testpmd); fi
        log "  round $r ($(cut -d' ' -f1-3 /proc/loadavg | sed 's/^/load /')):"
        for c in "${order[@]}"; do
            R_MPPS=nan R_DESC="" R_FAIL=""
            if ((OK[$c] == 0)); then
                R_DESC="not run: verification failed"
            elif [[ $c == ovs && -n $ovs_skip ]]; then
                R_DESC=$ovs_skip
            else
                "run_$c" "$key"
                if [[ $c == ovs && $R_MPPS == nan && $R_DESC == "OVS could not run it"* ]]; then
                    # OVS 3.1 caps a shared mempool at 262144 mbufs (MAX_NB_MBUF in netdev-dpdk.c), and
                    # net_pcap infinite_rx preloads the whole file into the port's pool.
                    ((flows > 262144)) && R_DESC="$R_DESC (OVS 3.1's shared mempool holds at most 262144 mbufs, MAX_NB_MBUF in lib/netdev-dpdk.c; net_pcap infinite_rx must preload all $flows frames)"
                    ovs_skip="not run again (round $r: OVS could not load the traffic)"
                fi
            fi
            RES[$key.$c.$r]=$R_MPPS
            DETAIL[$key.$c.$r]=$R_DESC
            log "    $(printf '%-11s %8s Mpps' "${NAME[$c]}" "$R_MPPS")   $R_DESC"
            if [[ -n ${R_FAIL:-} ]]; then
                log "    PROBLEM: $R_FAIL (log kept in $WORK/hnvswitch-failed.log; rerun with --keep to keep it)"
                HNV_PROBLEMS+=("$scen $flows flows, round $r: $R_FAIL"); FAILED=1
            fi
        done
    done
    # Give back the hugepages raised for this scenario (the 1M pools need about 3 GB).
    [[ $(cat "$HUGE_NR") == "$HUGE_ORIG" ]] || echo "$HUGE_ORIG" > "$HUGE_NR" || true
done

# ---------------------------------------------------------------- report
med_of() { local key=$1 c=$2 r v=(); for ((r = 1; r <= ROUNDS; r++)); do [[ ${RES[$key.$c.$r]} != nan ]] && v+=("${RES[$key.$c.$r]}"); done
           ((${#v[@]})) && printf '%s\n' "${v[@]}" | median || echo nan; }
rounds_of() { local key=$1 c=$2 r v=(); for ((r = 1; r <= ROUNDS; r++)); do v+=("${RES[$key.$c.$r]}"); done; echo "${v[*]}" | sed 's/ /, /g'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "nan" || b == "nan" || b == 0) print "n/a"; else printf "%.2f", a / b}'; }
fmt() { [[ $1 == nan ]] && echo "n/a" || printf '%.2f' "$1"; }
# Issue 4's target for a scenario, and whether this run meets it.
target() { # key hnv-median ovs-median
    local key=$1 h=$2 o=$3 scen=${1%%:*} flows=${1##*:} want base
    if [[ $scen == encap ]] && ((flows >= 1048576)); then
        [[ -z ${RES[encap:1024.hnv.1]:-} ]] && { echo "≥ ½ of hnvswitch encap 1k (not in this run)"; return; }
        base=$(med_of encap:1024 hnv)
        awk -v h="$h" -v b="$base" 'BEGIN {if (h == "nan" || b == "nan") print "≥ ½ of hnvswitch encap 1k: n/a";
            else printf "≥ ½ of hnvswitch encap 1k (%.2f): %s\n", b / 2, (h >= b / 2 ? "met" : sprintf("missed, %.2f of it", h / b))}'
        return
    fi
    case $scen in local) want=1.5 ;; encap) want=3 ;; decap) want=4 ;; esac
    awk -v h="$h" -v o="$o" -v w="$want" 'BEGIN {if (h == "nan" || o == "nan" || o == 0) printf "≥ %s× OVS: n/a\n", w;
        else printf "≥ %s× OVS: %s\n", w, (h / o >= w ? "met" : sprintf("missed (%.2f×)", h / o))}'
}
rounds_fmt() { rounds_of "$@" | sed 's/nan/n\/a/g'; }

report() {
    echo "# hnvswitch against OVS-DPDK and testpmd"
    echo
    echo "Run started $STARTED by \`scripts/compare-ovs.sh$SUFFIX_ARGS\`."
    echo "Machine: $MACHINE. Commit $COMMIT ($HNV_VERSION)."
    echo "Peers: dpdk-testpmd (DPDK $DPDK_VERSION), $OVS_VERSION (Debian openvswitch-switch-dpdk)."
    echo
    echo "64-byte frames (60 in the pcap); source net_pcap infinite_rx, sinks net_null,no-rx=1, the same devargs for"
    echo "all three; one forwarding core (core 1), control on core 0, 2 MiB hugepages. Mpps = frames/s sent by the sink"
    echo "port (encap: the uplink; decap: blue1; local: blue4). Per run: the median of ${SECS} one-second samples after"
    echo "a warm-up second; per contender: the median of $ROUNDS round(s), the order alternating per round."
    echo
    echo "| scenario | flows | testpmd io Mpps (rounds) | OVS-DPDK Mpps (rounds) | hnvswitch Mpps (rounds) | hnvswitch / OVS | hnvswitch / testpmd | issue 4 target |"
    echo "|---|---|---|---|---|---|---|---|"
    local key t o h
    for key in "${KEYS[@]}"; do
        t=$(med_of "$key" testpmd); o=$(med_of "$key" ovs); h=$(med_of "$key" hnv)
        echo "| ${key%%:*} | ${key##*:} | $(fmt "$t") ($(rounds_fmt "$key" testpmd)) | $(fmt "$o") ($(rounds_fmt "$key" ovs)) | $(fmt "$h") ($(rounds_fmt "$key" hnv)) | $(ratio "$h" "$o") | $(ratio "$h" "$t") | $(target "$key" "$h" "$o") |"
    done
    echo
    local c
    for key in "${KEYS[@]}"; do
        for c in "${CONTENDERS[@]}"; do
            [[ $(med_of "$key" "$c") == nan ]] && echo "n/a: ${NAME[$c]}, ${key%%:*} ${key##*:}: ${DETAIL[$key.$c.1]}" && echo
        done
    done
    echo
    echo "Conditions of every run (load1 before the timed seconds; the forwarding thread's CPU share; the rest of"
    echo "core 1's busy time; steal; other processes using >= 3 % of a core during the timed seconds):"
    echo
    local r
    for key in "${KEYS[@]}"; do
        for ((r = 1; r <= ROUNDS; r++)); do
            for c in "${CONTENDERS[@]}"; do
                echo "- ${key%%:*} ${key##*:}, round $r, ${NAME[$c]}: ${RES[$key.$c.$r]} Mpps; ${DETAIL[$key.$c.$r]}"
            done
        done
    done
    echo
    echo "Verification (short run, sink captured to a pcap, every distinct frame checked, sample decoded by tshark):"
    echo
    echo '```'
    for key in "${KEYS[@]}"; do
        echo "${key%%:*} ${key##*:}:"
        for c in "${CONTENDERS[@]}"; do echo "${VERIFY[$key.$c]}"; done
    done
    echo '```'
    if ((${#HNV_PROBLEMS[@]})); then
        echo
        echo "hnvswitch problems:"
        printf -- '- %s\n' "${HNV_PROBLEMS[@]}"
    fi
}

SUFFIX="" SUFFIX_ARGS=""
((QUICK)) && SUFFIX=-quick SUFFIX_ARGS=" --quick"
((QUICK == 0 && (ROUNDS != 3 || SECS != 5 || SCEN_SET))) && SUFFIX_ARGS=" --rounds $ROUNDS --seconds $SECS --scenarios $SCEN_LIST"
md=$(report)
if [[ -z $OUT ]]; then
    mkdir -p bench/results
    OUT=bench/results/compare-ovs-$(date -u +%Y-%m-%d)$SUFFIX.md
fi
echo "$md" > "$OUT"
echo
echo "$md"
echo
log "compare-ovs: written to $OUT"
exit "$FAILED"
