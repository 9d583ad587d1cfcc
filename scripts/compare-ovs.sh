#!/usr/bin/env bash
# Throughput of hnvswitch against Open vSwitch with DPDK (Debian
# openvswitch-switch-dpdk 3.1) and dpdk-testpmd --forward-mode=io (the ceiling
# of the harness), on identical traffic files and identical vdevs: net_pcap
# infinite_rx sources (one per source port) into net_null,no-rx=1 sinks, one
# forwarding core (core 1) polling every port, hugepages. The traffic, the policy
# and hnvswitch's configuration come from `hnvswitch scenario`; OVS's bridges,
# ports and OpenFlow rules are generated from the same policy
# (scripts/ovs/policy.py); the OVS setup follows ../shared/reference/ovs-dpdk-peer.md
# (private directory, own network namespace, br-int with the VM ports and gre0,
# br-phy with the PA, one PMD on core 1).
#
# Scenarios (SCEN:FLOWS[:FRAME]): the single-VM encap, decap, local (Blue1 only),
# encap-vxlan and decap-vxlan (encap and decap with the subnets on VXLAN; OVS gets a
# type=vxlan port instead of type=gre, tun_id = VNI = VSID)
# and the multi-VM encap-multi, decap-multi (Blue1, Blue4 in VSID 5001, Red1,
# Red2 in 6001 with overlapping CAs, 32 remote CAs on 4 remote PAs; encap-multi
# sources traffic on all 4 VM ports, decap-multi receives NVGRE for all 4 VMs on
# the uplink). testpmd io forwards port pairs: each source is paired with a
# net_null sink (the scenario's sink where there is one, an extra one otherwise).
#
# Per scenario: each contender first runs a short verification whose sinks are
# net_pcap tx_pcap and whose sources are finite (at most the first 16384 frames of
# the traffic together; for OVS repeated and added after the rules, see verify_ovs);
# every distinct output frame is checked and a sample decoded with tshark
# (scripts/ovs/check.py). Then ROUNDS timed rounds, the order alternating per
# round (odd: testpmd, OVS, hnvswitch; even: the reverse). Each run records its
# per-second Mpps on the sink ports (summed) and its conditions (load1, the
# forwarding thread's CPU share, what else ran on core 1, the busiest other
# processes); scripts/bench/compare.py computes the medians (per run over its
# seconds, the first skipped; per contender over the rounds), the ratios and the
# report. This script only starts processes.
#
# Usage: scripts/compare-ovs.sh [--quick] [--rounds N] [--seconds S] [--frame-size 64[,128]]
#          [--scenarios encap-multi:1024,decap:65536:128,...] [--out FILE.md] [--keep]
#   default: encap-multi and decap-multi 1k/64k/1M and 1k at 128 bytes; encap 1k/64k/1M,
#            decap 1k/64k, local 1k; 64-byte frames; 3 rounds of 5 s (about 35 min on the 2-vCPU VM)
#   --frame-size: frame sizes (with FCS) for the scenarios that name none (default 64)
#   --quick: encap-multi, decap-multi, encap, decap and local with 1k flows, 1 round of 3 s (about 3 min)
# Writes bench/results/compare-ovs-<date>.md (…-quick.md with --quick) with the raw
# per-round figures next to it (.json, .csv), and prints the report.
# Needs root. Installs openvswitch-switch-dpdk and tshark with apt-get if missing.
# Cleans up on exit, Ctrl-C or TERM: processes by pid, the netns, /var/run/dpdk
# prefixes, temporary files and the hugepage setting.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ROUNDS=3 SECS=5 QUICK=0 KEEP=0 OUT="" SIZES=64
SCEN_LIST="encap-multi:1024,encap-multi:65536,encap-multi:1048576,decap-multi:1024,decap-multi:65536,decap-multi:1048576"
SCEN_LIST+=",encap-multi:1024:128,decap-multi:1024:128,encap:1024,encap:65536,encap:1048576,decap:1024,decap:65536,local:1024"
SCEN_LIST+=",encap-vxlan:1024,decap-vxlan:1024"
SCEN_SET=0 ARGS="$*"
while (($#)); do
    case $1 in
        --quick) QUICK=1; shift ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --seconds) SECS=$2; shift 2 ;;
        --frame-size) SIZES=$2; shift 2 ;;
        --scenarios) SCEN_LIST=$2; SCEN_SET=1; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if ((QUICK)); then
    ROUNDS=1; SECS=3
    ((SCEN_SET)) || SCEN_LIST="encap-multi:1024,decap-multi:1024,encap:1024,decap:1024,local:1024,encap-vxlan:1024,decap-vxlan:1024"
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
STATS=$ROOT/scripts/bench/compare.py
RAW=$WORK/raw.jsonl            # every run and verification, for compare.py report
now() { date +%s.%N; }
log() { echo "$*" >&2; }
free_huge() { local k v _; while read -r k v _; do if [[ $k == HugePages_Free: ]]; then echo "$v"; fi; done < /proc/meminfo; }

# Make sure at least MB of 2 MiB hugepages are free, raising nr_hugepages (restored on exit).
ensure_free_huge() {
    local mb=$1 free want
    free=$(free_huge)
    want=$(((mb + 1) / 2))
    if ((free < want)); then
        echo $(($(cat "$HUGE_NR") + want - free + 16)) > "$HUGE_NR" || true
        free=$(free_huge)
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
# The measurement window around the timed seconds (compare.py reads /proc): W_DESC.
window_begin() { "$PY" "$STATS" window-begin "$1" "$2" "$WORK/window.json"; }
window_end() { W_DESC=$("$PY" "$STATS" window-end "$WORK/window.json"); }

# Record run ROUND of contender C on KEY from LOG (compare.py parses the samples): sets R_MPPS, R_DESC, R_FAIL.
record_run() { # key contender round log desc [fail]
    local out
    out=$("$PY" "$STATS" run --raw "$RAW" --key "$1" --contender "$2" --round "$3" --log "$4" \
        --sinks "${SCEN_SINKS[$1]}" --desc "$5" --fail "${6:-}")
    IFS=$'\x1f' read -r R_MPPS R_DESC R_FAIL <<< "$out"
}

# A private copy of the binary: a rebuild during the run must not change the contender.
cp "$HNV" "$WORK/hnvswitch"; HNV=$WORK/hnvswitch

# ---------------------------------------------------------------- scenario files
# Per key: the directory, hnvswitch's config, the policy, and comma lists of the source
# ports, their traffic files, the sink ports, and the verification inputs (VIN; VN frames).
declare -A SCEN_DIR SCEN_CFG SCEN_PCAPS SCEN_SINKS SCEN_SRCS SCEN_POL SCEN_MBUFS SCEN_MEM SCEN_VIN SCEN_VN
mbufs_for() { # the pool must hold every preloaded pcap plus what is in flight
    local f=$1
    if ((f <= 8192)); then echo 16383
    elif ((f <= 65536)); then echo 131071
    else echo $((f + 65535)); fi
}
VERIFY_MAX=16384   # verification runs use at most the first 16384 frames of the traffic (all sources together)

make_scenario() { # key = scen:flows:size
    local key=$1 scen flows size dir cfg pcaps sinks srcs mbufs per p vin=() vn=0 n i=0 mem
    IFS=: read -r scen flows size <<< "$key"
    dir=$WORK/$scen-$flows-$size
    mbufs=$(mbufs_for "$flows")
    read -r cfg pcaps sinks srcs < <("$HNV" scenario --scenario "$scen" --flows "$flows" --frame-size "$size" \
        --hugepages on --mbufs "$mbufs" --dir "$dir")
    [[ -f $cfg && -n $srcs ]] || { log "compare-ovs: hnvswitch scenario $scen $flows $size failed"; exit 1; }
    SCEN_DIR[$key]=$dir SCEN_CFG[$key]=$cfg SCEN_PCAPS[$key]=$pcaps SCEN_SINKS[$key]=$sinks SCEN_SRCS[$key]=$srcs SCEN_MBUFS[$key]=$mbufs
    SCEN_POL[$key]=$dir/${scen}_policy.toml
    mem=$(grep -E '^memory_mb *=' "$cfg"); SCEN_MEM[$key]=${mem##*= }
    IFS=, read -r -a pcaps <<< "$pcaps"
    per=$((VERIFY_MAX / ${#pcaps[@]}))
    for p in "${pcaps[@]}"; do
        n=$(( (flows + ${#pcaps[@]} - 1 - i) / ${#pcaps[@]} )); i=$((i + 1))  # frames in this source's file
        if ((n > per)); then
            editcap -F pcap -r "$p" "${p%.pcap}_verify.pcap" "1-$per" >/dev/null
            vin+=("${p%.pcap}_verify.pcap"); vn=$((vn + per))
        else
            vin+=("$p"); vn=$((vn + n))
        fi
    done
    SCEN_VIN[$key]=$(IFS=,; echo "${vin[*]}") SCEN_VN[$key]=$vn
}
port_field() { # policy port field(ofport|devargs) -> the port's value (empty when not in the policy)
    local name role ofp devargs
    while read -r name role ofp devargs; do
        if [[ $name == "$2" ]]; then [[ $3 == ofport ]] && echo "$ofp" || echo "$devargs"; fi
    done < <("$PY" "$ROOT/scripts/ovs/policy.py" ports "$1")
}
port_devargs() { port_field "$1" "$2" devargs; }
list() { local -n _l=$2; IFS=, read -r -a _l <<< "$1"; }   # comma list -> array variable

# ---------------------------------------------------------------- testpmd
# testpmd io forwards port pairs (0-1, 2-3, ...): source i is paired with sink i, or with an
# extra net_null sink where the scenario has fewer sinks than sources (encap-multi).
testpmd_sink() { # key i -> sink name
    local sinks; list "${SCEN_SINKS[$1]}" sinks
    if (($2 < ${#sinks[@]})); then echo "${sinks[$2]}"; else echo "tpmsink$2"; fi
}
run_testpmd() { # key round
    local key=$1 log=$WORK/testpmd.log srcs vdevs=() i s sink
    list "${SCEN_SRCS[$key]}" srcs
    for i in "${!srcs[@]}"; do
        sink=$(testpmd_sink "$key" "$i")
        vdevs+=(--vdev "$(port_devargs "${SCEN_POL[$key]}" "${srcs[$i]}")")
        s=$(port_devargs "${SCEN_POL[$key]}" "$sink"); vdevs+=(--vdev "${s:-net_null_$sink,no-rx=1}")
    done
    ensure_free_huge $((SCEN_MEM[$key] + 64))
    dpdk-testpmd -l 0,1 --no-pci --in-memory --file-prefix="$TPM_PREFIX" "${vdevs[@]}" -- \
        --forward-mode=io --port-topology=paired --nb-cores=1 --stats-period=1 --total-num-mbufs=$((SCEN_MBUFS[$key] + 1)) \
        --rxd=1024 --txd=1024 --burst=32 < /dev/null > "$log" 2>&1 &
    RUN_PID=$!
    if ! wait_for "$log" 'Tx-pps' "$RUN_PID" 120; then
        stop_pid "$RUN_PID" INT; RUN_PID=""
        record_run "$key" testpmd "$2" "" "" "testpmd did not start: $(grep -m1 -iE 'fail|error|cannot' "$log" || tail -1 "$log")"; return
    fi
    # SECS + 2 stats periods: the first (partial) and the last are not used (benchlib.py). Counted,
    # not timed: on a loaded machine testpmd's main lcore prints them late.
    sleep 1; window_begin "$RUN_PID" rte-worker; wait_periods "$log" $((SECS + 2)) "$RUN_PID" $((3 * SECS + 20)) || true; window_end
    stop_pid "$RUN_PID" INT; RUN_PID=""
    record_run "$key" testpmd "$2" "$log" "$W_DESC"
}

verify_testpmd() { # key
    local key=$1 log=$WORK/v_testpmd.log srcs vin vdevs=() outs=() sinks=() i sink pid
    list "${SCEN_SRCS[$key]}" srcs; list "${SCEN_VIN[$key]}" vin
    for i in "${!srcs[@]}"; do
        sink=$(testpmd_sink "$key" "$i"); sinks+=("$sink"); outs+=("$WORK/v_testpmd_$sink.pcap"); rm -f "${outs[-1]}"
        vdevs+=(--vdev "net_pcap_${srcs[$i]},rx_pcap=${vin[$i]}" --vdev "net_pcap_$sink,tx_pcap=${outs[-1]}")
    done
    dpdk-testpmd -l 0,1 --no-pci --in-memory --file-prefix="$TPM_PREFIX" "${vdevs[@]}" -- \
        --forward-mode=io --port-topology=paired --no-flush-rx --nb-cores=1 --stats-period=1 --total-num-mbufs=32768 \
        --rxd=1024 --txd=1024 --burst=32 < /dev/null > "$log" 2>&1 &
    RUN_PID=$!; pid=$RUN_PID
    wait_for "$log" 'Tx-pps' "$pid" 60 || true
    sleep 1; stop_pid "$pid" INT; RUN_PID=""
    "$PY" "$ROOT/scripts/ovs/check.py" --kind io --policy "${SCEN_POL[$key]}" --src-port "${SCEN_SRCS[$key]}" \
        --sink-port "$(IFS=,; echo "${sinks[*]}")" --input "${SCEN_VIN[$key]}" --output "$(IFS=,; echo "${outs[*]}")" \
        --min "${SCEN_VN[$key]}" --label testpmd
}

# ---------------------------------------------------------------- hnvswitch
run_hnv() { # key round
    local key=$1 log=$WORK/hnvswitch.log rc
    ensure_free_huge $((SCEN_MEM[$key] + 64))
    RUST_LOG=warn "$HNV" run --config "${SCEN_CFG[$key]}" --duration $((SECS + 120)) > "$log" 2>&1 &
    RUN_PID=$!; HNV_PIDS+=("$RUN_PID")
    if ! wait_for "$log" '^\[' "$RUN_PID" 120; then
        rc=0; wait "$RUN_PID" || rc=$?; RUN_PID=""
        cp "$log" "$WORK/hnvswitch-failed.log"
        record_run "$key" hnv "$2" "" "" "hnvswitch exited with status $rc before forwarding: $(grep -m3 -iE 'error|panic' "$log" | paste -sd' ' -)"
        R_FAIL=$R_DESC; return
    fi
    sleep 1; window_begin "$RUN_PID" hnv-worker; sleep "$SECS"; window_end
    kill -INT "$RUN_PID"; rc=0; wait "$RUN_PID" || rc=$?; RUN_PID=""
    if ((rc != 0)); then
        record_run "$key" hnv "$2" "$log" "$W_DESC"
        R_FAIL="hnvswitch exited with status $rc after SIGINT: $(grep -m3 -iE 'error|panic' "$log" | paste -sd' ' -)"
    else
        record_run "$key" hnv "$2" "$log" "$W_DESC"
    fi
    [[ -n ${R_FAIL:-} ]] && cp "$log" "$WORK/hnvswitch-failed.log"
    return 0
}

verify_hnv() { # key
    local key=$1 dir=${SCEN_DIR[$1]} rc=0 srcs sinks vin changes=() outs=() i
    list "${SCEN_SRCS[$key]}" srcs; list "${SCEN_SINKS[$key]}" sinks; list "${SCEN_VIN[$key]}" vin
    for i in "${!srcs[@]}"; do changes+=("${srcs[$i]}=net_pcap_${srcs[$i]},rx_pcap=${vin[$i]}"); done
    for i in "${!sinks[@]}"; do
        outs+=("$WORK/v_hnv_${sinks[$i]}.pcap"); rm -f "${outs[-1]}"
        changes+=("${sinks[$i]}=net_pcap_${sinks[$i]},tx_pcap=${outs[-1]}")
    done
    "$PY" "$ROOT/scripts/ovs/policy.py" rewrite "${SCEN_POL[$key]}" "$dir/verify_hnv_policy.toml" "${changes[@]}"
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
    "$PY" "$ROOT/scripts/ovs/check.py" --kind "${key%%[-:]*}" --policy "${SCEN_POL[$key]}" --src-port "${SCEN_SRCS[$key]}" \
        --sink-port "${SCEN_SINKS[$key]}" --input "${SCEN_VIN[$key]}" --output "$(IFS=,; echo "${outs[*]}")" \
        --min "${SCEN_VN[$key]}" --label hnvswitch
}

# ---------------------------------------------------------------- Open vSwitch with DPDK
ovs_vsctl() { ovs-vsctl --timeout=120 "$@"; }
ovs_appctl() { ovs-appctl -t "$OVSD/ovs-vswitchd.$OVS_VS_PID.ctl" "$@"; }
ovs_bridge_of() { [[ $1 == uplink ]] && echo br-phy || echo br-int; }
ovs_tx() { # comma list of ports -> their tx packets summed
    local p ports line n sum=0
    list "$1" ports
    for p in "${ports[@]}"; do
        line=$(ovs-ofctl dump-ports "$(ovs_bridge_of "$p")" "$p" 2>/dev/null | grep -m1 -o 'tx pkts=[0-9]*' || true)
        n=${line#tx pkts=}; sum=$((sum + ${n:-0}))
    done
    echo "$sum"
}

# Start ovsdb-server and ovs-vswitchd in the netns from a fresh private directory,
# build br-int/br-phy from POLICY, install the rules. The ports in OVS_DEFER (a comma
# list) are left out (the verification adds its finite sources once the rules are in).
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
    # The tunnel port: type=gre (NVGRE) or type=vxlan (UDP 4789) after the scenario's subnets.
    local tun; tun=$("$PY" "$ROOT/scripts/ovs/policy.py" tunnel "$pol")
    local tport=gre0 tofp=100; [[ $tun == vxlan ]] && { tport=vxlan0; tofp=101; }
    args=(add-br br-int -- set bridge br-int datapath_type=netdev fail_mode=secure
          -- add-port br-int $tport -- set Interface $tport type=$tun ofport_request=$tofp
             options:remote_ip=flow options:key=flow "options:local_ip=$pa"
          -- add-br br-phy -- set bridge br-phy datapath_type=netdev fail_mode=secure "other_config:hwaddr=$pamac")
    while read -r name role ofp devargs; do
        [[ ,$OVS_DEFER, == *",$name,"* ]] && continue
        args+=(-- add-port "$(ovs_bridge_of "$name")" "$name" -- set Interface "$name" type=dpdk
               "ofport_request=$ofp" "options:dpdk-devargs=$devargs")
    done < <("$PY" "$ROOT/scripts/ovs/policy.py" ports "$pol")
    ovs_vsctl "${args[@]}" 2>> "$WORK/ovs-vsctl.err" || true
    while read -r name role ofp devargs; do
        [[ ,$OVS_DEFER, == *",$name,"* ]] && continue
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

run_ovs() { # key round
    local key=$1 sinks=${SCEN_SINKS[$1]} i c cnt=$WORK/ovs-counts.txt stats desc
    ensure_free_huge 640
    if ! ovs_start "${SCEN_POL[$key]}"; then
        local why="OVS could not run it: $OVS_ERR" flows
        IFS=: read -r _ flows _ <<< "$key"
        # OVS 3.1 caps a shared mempool at 262144 mbufs (MAX_NB_MBUF in netdev-dpdk.c), and
        # net_pcap infinite_rx preloads the whole file into the port's pool.
        ((flows <= 262144)) || why+=" (OVS 3.1's shared mempool holds at most 262144 mbufs, MAX_NB_MBUF in lib/netdev-dpdk.c; net_pcap infinite_rx must preload all $flows frames)"
        ovs_stop; record_run "$key" ovs "$2" "" "" "$why"; return
    fi
    for ((i = 0; i < 600; i++)); do c=$(ovs_tx "$sinks"); ((c > 0)) && break; sleep 0.1; done
    if ((c == 0)); then ovs_stop; record_run "$key" ovs "$2" "" "" "OVS forwarded nothing to $sinks"; return; fi
    sleep 1
    ovs_appctl dpif-netdev/pmd-stats-clear > /dev/null
    window_begin "$OVS_VS_PID" pmd-c
    # The sinks' summed tx counter once a second; compare.py turns it into Mpps per interval.
    echo "$(now) $(ovs_tx "$sinks")" > "$cnt"
    for ((i = 0; i < SECS; i++)); do sleep 1; echo "$(now) $(ovs_tx "$sinks")" >> "$cnt"; done
    window_end
    ovs_appctl dpif-netdev/pmd-stats-show > "$WORK/pmd-stats.txt" 2>&1 || true
    stats=$("$PY" "$ROOT/scripts/ovs/pmdstats.py" "$WORK/pmd-stats.txt")
    ovs_stop
    record_run "$key" ovs "$2" "$cnt" "$W_DESC; OVS lookups: $stats"
}

verify_ovs() { # key
    # Finite sources (each source's sample four times over, or twice for more than 4096 frames)
    # added once the rules are installed: OVS drops the first few hundred frames of a port it has
    # just added (the PMD polls it before ofproto knows it, peer doc pitfall 5); the later copies
    # carry every frame.
    local key=$1 dir=${SCEN_DIR[$1]} srcs sinks vin copies=8 i j c prev=-1 ofp devs=() changes=() outs=() del=() in per
    list "${SCEN_SRCS[$key]}" srcs; list "${SCEN_SINKS[$key]}" sinks; list "${SCEN_VIN[$key]}" vin
    per=$((SCEN_VN[$key] / ${#srcs[@]}))   # frames per source
    ((per > 1024)) && copies=4
    ((per > 4096)) && copies=2
    for i in "${!srcs[@]}"; do
        in=$dir/verify_ovs_${srcs[$i]}.pcap
        mergecap -F pcap -a -w "$in" $(for ((j = 0; j < copies; j++)); do echo "${vin[$i]}"; done)
        devs+=("net_pcap_${srcs[$i]},rx_pcap=$in"); changes+=("${srcs[$i]}=${devs[$i]}")
    done
    for i in "${!sinks[@]}"; do
        outs+=("$WORK/v_ovs_${sinks[$i]}.pcap"); rm -f "${outs[-1]}"
        changes+=("${sinks[$i]}=net_pcap_${sinks[$i]},tx_pcap=${outs[-1]}")
        del+=(-- del-port "${sinks[$i]}")
    done
    "$PY" "$ROOT/scripts/ovs/policy.py" rewrite "${SCEN_POL[$key]}" "$dir/verify_ovs_policy.toml" "${changes[@]}"
    ensure_free_huge 640
    OVS_DEFER=${SCEN_SRCS[$key]}
    if ! ovs_start "$dir/verify_ovs_policy.toml"; then
        OVS_DEFER=""; echo "  OVS-DPDK: FAIL: $OVS_ERR"; ovs_stop; return 1
    fi
    OVS_DEFER=""
    # One port per transaction: ports added together become known to ofproto only when the last
    # one is up, and the PMD would drop the others' frames meanwhile.
    for i in "${!srcs[@]}"; do
        ofp=$(port_field "${SCEN_POL[$key]}" "${srcs[$i]}" ofport)
        ovs_vsctl add-port "$(ovs_bridge_of "${srcs[$i]}")" "${srcs[$i]}" -- set Interface "${srcs[$i]}" type=dpdk \
            "ofport_request=$ofp" "options:dpdk-devargs=${devs[$i]}" 2>> "$WORK/ovs-vsctl.err" || true
        if ! ovs_port_ok "${srcs[$i]}" "${devs[$i]}"; then echo "  OVS-DPDK: FAIL: $OVS_ERR"; ovs_stop; return 1; fi
        del+=(-- del-port "${srcs[$i]}")
    done
    # Until the sinks' counter stops moving (at most 20 s).
    for ((i = 0; i < 40; i++)); do
        sleep 0.5; c=$(ovs_tx "${SCEN_SINKS[$key]}")
        ((c > 0 && c == prev)) && break
        prev=$c
    done
    # Deleting the ports closes them: the pcap writers flush.
    ovs_vsctl "${del[@]:1}"
    ovs_stop
    echo "  OVS-DPDK: sources = the verification frames $copies times over, added one by one after the rules"
    "$PY" "$ROOT/scripts/ovs/check.py" --kind "${key%%[-:]*}" --policy "${SCEN_POL[$key]}" --src-port "${SCEN_SRCS[$key]}" \
        --sink-port "${SCEN_SINKS[$key]}" --input "${SCEN_VIN[$key]}" --output "$(IFS=,; echo "${outs[*]}")" \
        --min "${SCEN_VN[$key]}" --label OVS-DPDK
}

# ---------------------------------------------------------------- main
IFS=, read -r -a KEYS <<< "$SCEN_LIST"
IFS=, read -r -a SIZE_LIST <<< "$SIZES"
EXP=()
for key in "${KEYS[@]}"; do
    if [[ $key =~ ^(encap|decap|local|encap-multi|decap-multi|encap-vxlan|decap-vxlan):[0-9]+$ ]]; then
        for s in "${SIZE_LIST[@]}"; do EXP+=("$key:$s"); done
    elif [[ $key =~ ^(encap|decap|local|encap-multi|decap-multi|encap-vxlan|decap-vxlan):[0-9]+:[0-9]+$ ]]; then
        EXP+=("$key")
    else
        log "compare-ovs: bad scenario '$key' (want encap|decap|local|encap-multi|decap-multi|encap-vxlan|decap-vxlan:FLOWS[:FRAME])"; exit 2
    fi
done
KEYS=()   # each key once, in the order given
for key in "${EXP[@]}"; do [[ " ${KEYS[*]} " == *" $key "* ]] || KEYS+=("$key"); done
for s in "${SIZE_LIST[@]}"; do [[ $s =~ ^[0-9]+$ ]] && ((s >= 64)) || { log "compare-ovs: bad frame size '$s' (>= 64)"; exit 2; }; done

log "compare-ovs: $("$PY" "$STATS" meta --raw "$RAW" --root "$ROOT" --hnv "$HNV" --args "$ARGS" --rounds "$ROUNDS" --seconds "$SECS")"
log "compare-ovs: scenarios ${KEYS[*]}; $ROUNDS round(s) of $SECS s; work dir $WORK"
log "compare-ovs: before start: $(uptime | sed 's/^ *//')"

FAILED=0
CONTENDERS=(testpmd ovs hnv)
declare -A NAME=([testpmd]="testpmd io" [ovs]="OVS-DPDK" [hnv]="hnvswitch")

for key in "${KEYS[@]}"; do
    IFS=: read -r scen flows size <<< "$key"
    log ""
    log "=== $scen, $flows flows, $size-byte frames ==="
    make_scenario "$key"
    log "  traffic: source ports ${SCEN_SRCS[$key]}, sink ports ${SCEN_SINKS[$key]}, $((SCEN_MBUFS[$key] + 1)) mbufs"
    declare -A OK=()
    for c in "${CONTENDERS[@]}"; do
        if ((${SCEN_VN[$key]} < flows)); then
            log "  verify ${NAME[$c]} (first ${SCEN_VN[$key]} frames of the traffic):"
        else
            log "  verify ${NAME[$c]}:"
        fi
        # Not in a subshell: the cleanup trap must know the pids, the netns and the DPDK prefixes.
        if "verify_$c" "$key" > "$WORK/verify.out" 2>&1; then OK[$c]=1; else OK[$c]=0; FAILED=1; fi
        log "$(cat "$WORK/verify.out")"
        "$PY" "$STATS" verify --raw "$RAW" --key "$key" --contender "$c" --ok "${OK[$c]}" --text "$WORK/verify.out"
    done
    ovs_skip=""   # set when OVS cannot load the traffic at all: later rounds are not tried again
    for ((r = 1; r <= ROUNDS; r++)); do
        if ((r % 2)); then order=(testpmd ovs hnv); else order=(hnv ovs testpmd); fi
        log "  round $r (load $(cut -d' ' -f1-3 /proc/loadavg)):"
        for c in "${order[@]}"; do
            R_MPPS=nan R_DESC="" R_FAIL=""
            if ((OK[$c] == 0)); then
                record_run "$key" "$c" "$r" "" "" "not run: verification failed"
            elif [[ $c == ovs && -n $ovs_skip ]]; then
                record_run "$key" "$c" "$r" "" "" "$ovs_skip"
            else
                "run_$c" "$key" "$r"
                if [[ $c == ovs && $R_MPPS == n/a && $R_DESC == "OVS could not run it"* ]]; then
                    ovs_skip="not run again (round $r: OVS could not load the traffic)"
                fi
            fi
            log "    $(printf '%-11s %8s Mpps' "${NAME[$c]}" "$R_MPPS")   $R_DESC"
            if [[ -n ${R_FAIL:-} ]]; then
                log "    PROBLEM: $R_FAIL (log kept in $WORK/hnvswitch-failed.log; rerun with --keep to keep it)"
                FAILED=1
            fi
        done
    done
    # Give back the hugepages raised for this scenario (the 1M pools need about 3 GB).
    [[ $(cat "$HUGE_NR") == "$HUGE_ORIG" ]] || echo "$HUGE_ORIG" > "$HUGE_NR" || true
done

# ---------------------------------------------------------------- report
if [[ -z $OUT ]]; then
    mkdir -p bench/results
    OUT=bench/results/compare-ovs-$(date -u +%Y-%m-%d)
    if ((QUICK)); then OUT+=-quick.md; else OUT+=.md; fi
fi
echo
"$PY" "$STATS" report --raw "$RAW" --out "$OUT" || FAILED=1
echo
log "compare-ovs: written to $OUT (raw figures: ${OUT%.md}.json, ${OUT%.md}.csv)"
exit "$FAILED"
