#!/usr/bin/env bash
# The namespace testbed (issue 6): hnv.md §2's worked example end to end, with
# real kernel network stacks as VMs, on one machine.
#
#   scripts/testbed.sh up      build the testbed (stale state is torn down first)
#   scripts/testbed.sh check   run the checks (PASS/FAIL/SKIP lines; non-zero exit on a FAIL)
#   scripts/testbed.sh down    tear everything down (idempotent)
#   scripts/testbed.sh run     up + check + down; down runs even on failure or Ctrl-C
#
# Topology (every name starts with $HNVTB_PREFIX, default "hnvtb"; nothing is
# added to the root namespace):
#
#   hnvtb-dc     the datacenter: bridge br0 (MTU 1600), ports h1..h5, h1b..h3b
#   hnvtb-h1..3  one `hnvswitch run` each (PA 192.168.4.11/.22/.33); uplink =
#                an active-backup bond (net_bonding) of two net_af_packet
#                members: veth "uplink" <-> hnvtb-dc:hN (primary) and veth
#                "uplink2" <-> hnvtb-dc:hNb (backup; check_failover)
#   hnvtb-h4     a kernel-only "host" (PA 192.168.4.44): Linux gretap gt0
#                (key 5001<<8, FlowID 0) bridged to the kernel VM BlueK; on a
#                kernel without GRE, scripts/testbed/gre.py stands in for gt0
#   hnvtb-h5     a kernel-only "host" (PA 192.168.4.55): the kernel's own
#                vxlan vx0 (VNI 6001, remote 192.168.4.11, dstport 4789)
#                bridged to the kernel VM RedK (Red, 10.0.0.10); the switches
#                reach it once Red is switched to VXLAN (check_switchover)
#   hnvtb-h6     Open vSwitch (PA 192.168.4.66): its own ovsdb-server and
#                ovs-vswitchd (userspace datapath); br-phy holds the uplink
#                veth and the PA, br-int the VM BlueO's veth and a GRE port
#                (key=flow, remote_ip=flow) programmed from the Blue records:
#                an NVGRE implementation no one here wrote (check_ovs)
#   VMs          namespaces hnvtb-blue1, -red1 (host 1), -blue2, -red2, -blue3
#                (host 2), -bluek (host 4); their eth0 is a net_tap port of
#                the switch, moved into the VM namespace after port start.
#                Blue2 also holds eth1, its port on host 3 (live migration).
#                hnvtb-bluev hosts dpdk-testpmd (virtio_user, vhost-user
#                server) on host 2's vhost-user port "bluev" (10.0.0.9), which
#                is a vhost-user client, so it survives a switch restart.
#
# Environment: HNVTB_PREFIX, HNVTB_DIR (state directory, default /tmp/$PREFIX),
# HNVSWITCH, HNVCTL (binaries), HNVTB_HUGEPAGES (off|auto, default off),
# HNVTB_IDLE_SLEEP_US (default 100), HNVTB_OVS (auto|dpdk|kernel|off, default
# auto: host 6 with Open vSwitch when it is installed; its uplink a DPDK port
# when 2 MiB hugepages are free, else a kernel port), HNVTB_KEEP_LOGS=DIR (down copies the
# switch logs, policies and captures there first), HNVTB_STRICT=1 (a missing
# precondition such as root or netns support fails instead of skipping).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
P=${HNVTB_PREFIX:-hnvtb}
DIR=${HNVTB_DIR:-/tmp/$P}
SENDER_DELAY=${HNVTB_SENDER_DELAY:-1}   # seconds the sending host's policy lags a migration
BIN=${HNVSWITCH:-$ROOT/target/release/hnvswitch}
CTL=${HNVCTL:-$ROOT/target/release/hnvctl}
HUGE=${HNVTB_HUGEPAGES:-off}
IDLE_US=${HNVTB_IDLE_SLEEP_US:-100}
UPLINK_MTU=1600          # NVGRE adds 42 bytes: guests keep a 1500-byte MTU
PYTHON=$(command -v /usr/bin/python3 || command -v python3)

[[ $P =~ ^[a-z][a-z0-9]{0,8}$ ]] || { echo "testbed: HNVTB_PREFIX must be 1-9 lowercase letters/digits (interface names are <prefix>-blue2)" >&2; exit 2; }
NCPU=$(nproc)
LAST=$((NCPU - 1))

# Hosts: PA and PA MAC (the uplink veth gets the PA MAC too).
declare -A PA=([h1]=192.168.4.11 [h2]=192.168.4.22 [h3]=192.168.4.33 [h4]=192.168.4.44 [h5]=192.168.4.55 [h6]=192.168.4.66)
declare -A PAMAC=([h1]=02:00:c0:a8:04:0b [h2]=02:00:c0:a8:04:16 [h3]=02:00:c0:a8:04:21 [h4]=02:00:c0:a8:04:2c [h5]=02:00:c0:a8:04:37 [h6]=02:00:c0:a8:04:42)
# Switch cores (main, worker): spread the three workers over the machine.
declare -A MAIN=([h1]=0 [h2]=$LAST [h3]=0)
declare -A WORKER=([h1]=$LAST [h2]=0 [h3]=$LAST)
# VM ports that are net_tap: "host:port:vm-namespace:ifname[:nic-host:noaddr]". The
# VM's MAC, address/prefix and gateway are the port's in the host's policy
# (`hnvswitch vm-nic`, reading the policy of NIC-HOST when given). Blue2's NICs
# take their MAC from the host Blue2 is on (its port elsewhere is parked); its
# second NIC (host 3, live migration) gets no address.
TAPS=(
    "h1:blue1:blue1:eth0"
    "h1:red1:red1:eth0"
    "h2:blue2:blue2:eth0"
    "h2:red2:red2:eth0"
    "h2:blue3:blue3:eth0"
    "h3:blue2:blue2:eth1::noaddr"
)
SWITCHES=(h1 h2 h3)
BLUEK_MAC=00:15:5d:01:00:08
BLUEV_MAC=00:15:5d:01:00:09
REDK_MAC=00:15:5d:02:00:0a
BLUEO_MAC=00:15:5d:01:00:0b   # BlueO 10.0.0.11, behind Open vSwitch's GRE on host 6
OVSD=$DIR/ovs                 # host 6's OVS: database, sockets, logs (all private)
OVS_VM_OFPORT=1 OVS_GRE_OFPORT=100
RED_VSID=6001            # Red: NVGRE at first, switched to VXLAN live (check_switchover)
GRE_KEY=$((5001 << 8))   # 0x138900
# The switches' uplink: an active-backup bond of two af_packet members (issue 14).
BOND="net_bonding0,mode=1,primary=net_af_packet0"
BOND_MEMBERS='"net_af_packet0,iface=uplink", "net_af_packet1,iface=uplink2"'

log() { echo "testbed: $*" >&2; }
die() { echo "testbed: error: $*" >&2; exit 1; }
nsx() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }

# ---------------------------------------------------------------- policies

# derive FROM HOST BLUE2_HOST [derive-policy options...]: the built-in example
# policy FROM (host1 or host2) as host HOST of this testbed, written to
# $DIR/HOST.toml (validated, atomically) by the switch's own typed
# `hnvswitch derive-policy`: this host's name, PA and PA MAC, the uplink MTU,
# Blue2's current PA (BLUE2_HOST = h2 or h3), Red's encapsulation once switched
# (check_switchover), no static neighbors (the switches resolve each other's
# PAs by ARP), plus the testbed's
# extra records. The options name the ports to keep (--port NAME=DEVARGS; the
# others are removed), parked ports and further fragments.
derive() {
    local from=$1 h=$2 b2=$3 enc
    shift 3
    local args=(--from "$from" --host-name "$h" --pa "${PA[$h]}" --pa-mac "${PAMAC[$h]}" --mtu "uplink=$UPLINK_MTU"
        --vm-pa "Blue2=${PA[$b2]}" --no-neighbors --add "$DIR/extra.toml" --out "$DIR/$h.toml")
    enc=$(cat "$DIR/red.encap" 2>/dev/null) && [[ -n $enc ]] && args+=(--encap "$RED_VSID=$enc")
    "$BIN" derive-policy "${args[@]}" "$@" 2> "$DIR/$h.check" || { cat "$DIR/$h.check" >&2; return 1; }
}

# park HOST BLUE2_HOST: Blue2's port on the host it is NOT on is "parked": a
# placeholder MAC and no addresses (see check_migration for why).
park() { [[ $1 != "$2" ]] && echo "--park=blue2=02:00:00:00:${1#h}${1#h}:07"; }

# Records every host carries in addition to the example's five.
extra_records() {
    cat <<EOF
# Testbed additions: the kernel VM behind Linux gretap on host 4 (FlowID 0,
# because gretap matches the whole 32-bit key) and the vhost-user VM on host 2.
[[lookup]]
ca = "10.0.0.8"
vsid = 5001
mac = "$BLUEK_MAC"
pa = "${PA[h4]}"
vm_name = "BlueK"
flow_id = false

[[lookup]]
ca = "10.0.0.9"
vsid = 5001
mac = "$BLUEV_MAC"
pa = "${PA[h2]}"
vm_name = "BlueV"

# The kernel VM behind the Linux kernel's own vxlan device on host 5 (Red).
[[lookup]]
ca = "10.0.0.10"
vsid = $RED_VSID
mac = "$REDK_MAC"
pa = "${PA[h5]}"
vm_name = "RedK"

# The VM behind Open vSwitch's userspace GRE on host 6. OVS matches the key
# as tun_id/0xffffff00, so FlowIDs are fine (no flow_id = false).
[[lookup]]
ca = "10.0.0.11"
vsid = 5001
mac = "$BLUEO_MAC"
pa = "${PA[h6]}"
vm_name = "BlueO"

EOF
}

# Host 2's vhost-user VM port.
bluev_port() {
    cat <<EOF
[[ports]]
name = "bluev"
role = "vm"
devargs = "net_vhost0,iface=$DIR/bluev.sock,client=1"
vsid = 5001
mac = "$BLUEV_MAC"
addresses = ["10.0.0.9"]
EOF
}

# write_policies HOST_OF_BLUE2: h1.toml, h2.toml, h3.toml in $DIR, each validated.
# No static neighbors: each switch resolves the provider addresses its policy needs by ARP.
write_policies() {
    local b2=$1
    extra_records > "$DIR/extra.toml"
    bluev_port > "$DIR/bluev.toml"
    derive host1 h1 "$b2" \
        --port "uplink=$BOND" --port "blue1=net_tap0,iface=$P-blue1" --port "red1=net_tap1,iface=$P-red1" || return 1
    # shellcheck disable=SC2046 # park prints one word or none
    derive host2 h2 "$b2" $(park h2 "$b2") --add "$DIR/bluev.toml" \
        --port "uplink=$BOND" --port "blue2=net_tap0,iface=$P-blue2" --port "red2=net_tap1,iface=$P-red2" --port "blue3=net_tap2,iface=$P-blue3" || return 1
    # shellcheck disable=SC2046
    derive host2 h3 "$b2" $(park h3 "$b2") \
        --port "uplink=$BOND" --port "blue2=net_tap0,iface=$P-blue2" || return 1
    echo "$1" > "$DIR/blue2.at"
}

write_config() {
    local h=$1
    cat > "$DIR/$h.conf.toml" <<EOF
# testbed switch $h: small memory, no hugepages by default, idle workers sleep
[dpdk]
main_core = ${MAIN[$h]}
workers = [${WORKER[$h]}]
memory_mb = 128
hugepages = "$HUGE"
file_prefix = "$P-$h"
mbufs = 4095
mbuf_cache = 64
descriptors = 256
idle_sleep_us = $IDLE_US

[forwarding]
mode = "hnv"
policy = "$h.toml"

[run]
stats_interval_secs = 10

# hnvctl socket; the state file makes a restarted switch resume with the
# policy in force (check_restart)
[control]
socket = "$DIR/$h.sock"
state_file = "$DIR/$h.state.toml"

# the policy's uplink is the bond; its members, probed before it
[[ports]]
name = "uplink"
devargs = "$BOND"
members = [$BOND_MEMBERS]
EOF
}

# ---------------------------------------------------------------- down

# alive PID: running, and not a zombie (a process whose parent has exited is
# reaped by PID 1, which in some containers takes a second or more).
alive() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; [[ ${s%% *} != Z ]]; }

kill_pid() { # kill_pid PID [wait-seconds]: TERM, wait, then KILL
    local pid=$1 t=${2:-5} i
    [[ -n $pid ]] && alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < t * 20; i++)); do alive "$pid" || return 0; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null
    sleep 0.1
}

our_namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$P-" || true; }

down() {
    local f n pid
    # Switches and testpmd first, by pid, so that they print their counters.
    for f in "$DIR"/pids/*.pid; do
        [[ -e $f ]] || continue
        kill_pid "$(cat "$f")" 10
    done
    # Whatever else still runs inside our namespaces (iperf3, ping, tshark).
    for n in $(our_namespaces); do
        for pid in $(ip netns pids "$n" 2>/dev/null); do kill_pid "$pid" 3; done
    done
    for n in $(our_namespaces); do ip netns del "$n" 2>/dev/null || log "cannot delete namespace $n"; done
    if [[ -n ${HNVTB_KEEP_LOGS:-} && -d $DIR ]]; then
        mkdir -p "$HNVTB_KEEP_LOGS" && find "$DIR" -maxdepth 1 -type f -exec cp -t "$HNVTB_KEEP_LOGS" {} + && log "logs, policies and captures kept in $HNVTB_KEEP_LOGS"
        for f in "$OVSD"/*.log; do [[ -e $f ]] && cp "$f" "$HNVTB_KEEP_LOGS/h6-${f##*/}"; done
    fi
    rm -rf "/var/run/dpdk/$P-"* 2>/dev/null
    rm -f "/dev/hugepages/$P-"* 2>/dev/null
    rm -rf "$DIR"
    return 0
}

# ---------------------------------------------------------------- up

preflight() {
    local why="" c
    [[ $(id -u) == 0 ]] || why="needs root (network namespaces, DPDK)"
    if [[ -z $why ]]; then
        ip netns add "$P-probe" 2>/dev/null && ip netns del "$P-probe" || why="cannot create network namespaces"
    fi
    if [[ -z $why ]] && [[ ! -c /dev/net/tun ]]; then why="no /dev/net/tun (net_tap)"; fi
    if [[ -n $why ]]; then
        echo "SKIP: testbed: $why"
        [[ ${HNVTB_STRICT:-0} == 1 ]] && exit 1
        exit 0
    fi
    for c in ip tshark iperf3 ping ethtool dpdk-testpmd; do
        command -v "$c" >/dev/null || { log "$c missing: running scripts/setup.sh --with-test-tools"; scripts/setup.sh --with-test-tools >&2 || die "setup failed"; break; }
    done
    # Host 6 (Open vSwitch): installed by setup.sh --with-test-tools; without
    # it (and not strict) the OVS checks are a SKIP.
    OVS_MODE=off
    [[ ${HNVTB_OVS:-auto} =~ ^(auto|dpdk|kernel|off)$ ]] || die "HNVTB_OVS must be auto, dpdk, kernel or off"
    if [[ ${HNVTB_OVS:-auto} != off ]]; then
        if ! ovs_installed && [[ ${HNVTB_STRICT:-0} == 1 ]]; then
            log "Open vSwitch missing: running scripts/setup.sh --with-test-tools"
            scripts/setup.sh --with-test-tools >&2 || die "setup failed"
            ovs_installed || die "Open vSwitch (ovs-vswitchd, ovsdb-server, ovs-vsctl, ovs-ofctl, ovs-appctl) is still missing"
        fi
        ovs_installed && OVS_MODE=${HNVTB_OVS:-auto}
    fi
    if [[ ! -x $BIN || ! -x $CTL ]]; then
        log "building $BIN and $CTL"
        cargo build --release --locked --bin hnvswitch --bin hnvctl >&2 || die "build failed"
    fi
}

ovs_installed() {
    local c
    for c in ovsdb-tool ovsdb-server ovs-vswitchd ovs-vsctl ovs-ofctl ovs-appctl; do command -v "$c" >/dev/null || return 1; done
    [[ -r /usr/share/openvswitch/vswitch.ovsschema ]]
}

newns() {
    ip netns add "$P-$1" || return 1
    nsx "$1" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1
    ip -n "$P-$1" link set lo up
}

# Plain frames only on the veths: no TSO/GSO/GRO and no checksum offload, so
# that what af_packet and gretap see is what a NIC would put on a wire.
no_offload() { nsx "$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null 2>&1 || true; }

start_switch() {
    local h=$1
    write_config "$h"
    ( cd "$DIR" && RUST_LOG=${RUST_LOG:-info} exec ip netns exec "$P-$h" "$BIN" run --config "$h.conf.toml" > "$DIR/$h.log" 2>&1 ) &
    echo $! > "$DIR/pids/$h.pid"
}

wait_switch() {
    local h=$1 pid i
    pid=$(cat "$DIR/pids/$h.pid")
    for ((i = 0; i < 300; i++)); do
        grep -q "polls \[" "$DIR/$h.log" 2>/dev/null && return 0
        alive "$pid" || { tail -20 "$DIR/$h.log" >&2; log "switch $h exited during start"; return 1; }
        sleep 0.1
    done
    tail -20 "$DIR/$h.log" >&2
    log "switch $h did not start in 30 s"
    return 1
}

# Move a switch's tap into the VM namespace and give it the VM's identity.
plumb_tap() {
    local host port vm ifn from noaddr mac cidr gw i
    IFS=: read -r host port vm ifn from noaddr <<< "$1"
    read -r mac cidr gw < <("$BIN" vm-nic "$DIR/${from:-$host}.toml" "$port") && [[ -n $mac ]] || return 1
    for ((i = 0; i < 50; i++)); do ip -n "$P-$host" link show "$P-$port" >/dev/null 2>&1 && break; sleep 0.1; done
    ip -n "$P-$host" link set "$P-$port" netns "$P-$vm" || return 1
    ip -n "$P-$vm" link set "$P-$port" down name "$ifn" address "$mac" || return 1
    if [[ -z $noaddr && $cidr != - ]]; then
        ip -n "$P-$vm" addr add "$cidr" dev "$ifn"
        ip -n "$P-$vm" link set "$ifn" up
        [[ $gw != - ]] && ip -n "$P-$vm" route add default via "$gw"
    fi
}

# plumb_host H: plumb host H's taps (after its switch started); Blue2's port on
# the host Blue2 is not on stays parked (down, no address).
plumb_host() {
    local h=$1 t at a b c d noaddr
    at=$(cat "$DIR/blue2.at")
    for t in "${TAPS[@]}"; do
        [[ $t == "$h:"* ]] || continue
        if [[ $t == "$h:blue2:"* ]]; then
            # Blue2's MAC is its port's on the host it is on (the other's is parked).
            IFS=: read -r a b c d _ noaddr <<< "$t"
            [[ $h != "$at" ]] && noaddr=noaddr
            t="$a:$b:$c:$d:$at:$noaddr"
        fi
        plumb_tap "$t" || { log "plumbing tap $t"; return 1; }
    done
}

up() {
    local h t i
    preflight
    down
    mkdir -p "$DIR/pids" || die "cannot create $DIR"
    write_policies h2 || die "a generated policy is invalid"
    echo "$OVS_MODE" > "$DIR/ovs.mode"
    local fabric=(h1 h2 h3 h4 h5) extra=()
    [[ $OVS_MODE != off ]] && { fabric+=(h6); extra=(h6 blueo); }
    for n in dc h1 h2 h3 h4 h5 blue1 red1 blue2 red2 blue3 bluek bluev redk "${extra[@]}"; do newns "$n" || die "cannot create namespace $P-$n"; done

    # The datacenter: one bridge, one veth per host.
    ip -n "$P-dc" link add br0 mtu $UPLINK_MTU type bridge
    for h in "${fabric[@]}"; do
        ip link add name uplink netns "$P-$h" mtu $UPLINK_MTU type veth peer name "$h" netns "$P-dc" mtu $UPLINK_MTU || die "veth for $h"
        ip -n "$P-$h" link set uplink address "${PAMAC[$h]}" up
        ip -n "$P-dc" link set "$h" master br0 up
        no_offload "$h" uplink; no_offload dc "$h"
    done
    # The switches' second uplink veth, the bond's backup member.
    for h in "${SWITCHES[@]}"; do
        ip link add name uplink2 netns "$P-$h" mtu $UPLINK_MTU type veth peer name "${h}b" netns "$P-dc" mtu $UPLINK_MTU || die "second veth for $h"
        ip -n "$P-$h" link set uplink2 address "02:01:${PAMAC[$h]#02:00:}" up
        ip -n "$P-dc" link set "${h}b" master br0 up
        no_offload "$h" uplink2; no_offload dc "${h}b"
    done
    ip -n "$P-dc" link set br0 up

    # Host 4: just the kernel. gretap to host 1 in VSID 5001, bridged to BlueK.
    ip -n "$P-h4" addr add "${PA[h4]}/24" dev uplink
    if ip -n "$P-h4" link add gt0 type gretap local "${PA[h4]}" remote "${PA[h1]}" key $GRE_KEY 2> "$DIR/gretap.err"; then
        echo kernel > "$DIR/gre.mode"
    else
        # This kernel has no GRE (e.g. CONFIG_NET_IPGRE off): the same
        # semantics in userspace, on the kernel's IP stack and ARP.
        echo userspace > "$DIR/gre.mode"
        bg gre h4 "$PYTHON" "$ROOT/scripts/testbed/gre.py" "${PA[h4]}" "${PA[h1]}" $GRE_KEY gt0
        for ((i = 0; i < 50; i++)); do ip -n "$P-h4" link show gt0 >/dev/null 2>&1 && break; sleep 0.1; done
        ip -n "$P-h4" link show gt0 >/dev/null 2>&1 || die "gretap failed ($(cat "$DIR/gretap.err")) and so did scripts/testbed/gre.py: $(cat "$DIR/gre.out")"
    fi
    # multicast off: the bridge is no host; without it, its IGMP reports would ride the tunnel.
    ip -n "$P-h4" link add br0 type bridge mcast_snooping 0
    ip -n "$P-h4" link set br0 multicast off
    ip link add name eth0 netns "$P-bluek" type veth peer name vm netns "$P-h4"
    ip -n "$P-h4" link set gt0 master br0 up
    ip -n "$P-h4" link set vm master br0 up
    ip -n "$P-h4" link set br0 up
    no_offload h4 gt0; no_offload h4 vm; no_offload bluek eth0
    ip -n "$P-bluek" link set eth0 address $BLUEK_MAC up
    ip -n "$P-bluek" addr add 10.0.0.8/24 dev eth0
    # No HNV layer on a kernel host to answer ARP from policy: program it.
    ip -n "$P-bluek" neigh replace 10.0.0.5 lladdr 00:15:5d:01:00:05 dev eth0 nud permanent

    # Host 5: just the kernel. Its own vxlan device to host 1 in VNI 6001 (Red), bridged to RedK.
    ip -n "$P-h5" addr add "${PA[h5]}/24" dev uplink
    ip -n "$P-h5" link add vx0 type vxlan id $RED_VSID local "${PA[h5]}" remote "${PA[h1]}" dstport 4789 dev uplink 2> "$DIR/vxlan.err" ||
        die "the kernel cannot create a vxlan device: $(cat "$DIR/vxlan.err")"
    ip -n "$P-h5" link add br0 type bridge mcast_snooping 0
    ip -n "$P-h5" link set br0 multicast off
    ip link add name eth0 netns "$P-redk" type veth peer name vm netns "$P-h5"
    ip -n "$P-h5" link set vx0 master br0 up
    ip -n "$P-h5" link set vm master br0 up
    ip -n "$P-h5" link set br0 up
    no_offload h5 vx0; no_offload h5 vm; no_offload redk eth0
    ip -n "$P-redk" link set eth0 address $REDK_MAC up
    ip -n "$P-redk" addr add 10.0.0.10/24 dev eth0
    ip -n "$P-redk" neigh replace 10.0.0.5 lladdr 00:15:5d:02:00:05 dev eth0 nud permanent

    for h in "${SWITCHES[@]}"; do start_switch "$h"; done
    [[ $OVS_MODE != off ]] && { up_ovs || die "host 6 (Open vSwitch) did not come up; see $OVSD/ovs-vswitchd.log"; }
    for h in "${SWITCHES[@]}"; do wait_switch "$h" || die "switch $h did not start"; done
    for h in "${SWITCHES[@]}"; do plumb_host "$h" || die "plumbing the taps of $h"; done
    for n in $(our_namespaces); do ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1; done
    log "up: switches h1 h2 h3 running (logs and policies in $DIR)"
}

# ---------------------------------------------------------------- host 6: Open vSwitch

# OVS's own daemons for host 6, with everything in $OVSD: nothing of the
# machine's OVS (if any) is used or touched. ovs-ofctl finds the bridges'
# management sockets through OVS_RUNDIR.
ovs_env() { OVS_RUNDIR=$OVSD OVS_DBDIR=$OVSD OVS_LOGDIR=$OVSD OVS_SYSCONFDIR=$OVSD "$@"; }
ovsctl() { ovs_env ovs-vsctl --db="unix:$OVSD/db.sock" --timeout=60 "$@"; }   # DPDK init under load can take 20 s
ovsapp() { ovs_env ovs-appctl -t "$OVSD/vswitchd.ctl" --timeout=10 "$@"; }
ovsof() { ovs_env ovs-ofctl -O OpenFlow13 "$@"; }
# ovs_flows: br-int's rules from host 1's policy (the Blue records; Blue2's PA is where it is now).
ovs_flows() { "$PYTHON" "$ROOT/scripts/testbed/ovs_peer.py" flows "$DIR/h1.toml" 5001 "${PA[h6]}" $BLUEO_MAC 10.0.0.11 $OVS_VM_OFPORT $OVS_GRE_OFPORT; }
# ovs_neigh: BlueO's static neighbors (CA -> MAC of the Blue records), as policy would give them.
ovs_neigh() {
    local ca mac
    while read -r ca mac; do nsx blueo ip neigh replace "$ca" lladdr "$mac" dev eth0 nud permanent || return 1; done \
        < <("$PYTHON" "$ROOT/scripts/testbed/ovs_peer.py" neigh "$DIR/h1.toml" 5001 "${PA[h6]}")
}

# ovs_port_ok NAME: the interface has an OpenFlow port and no error.
ovs_port_ok() {
    local err ofp
    err=$(ovsctl get Interface "$1" error 2>/dev/null); ofp=$(ovsctl get Interface "$1" ofport 2>/dev/null)
    [[ -n $ofp && $ofp != -1 && ( -z $err || $err == '[]' ) ]]
}

# up_ovs: host 6. OVS's userspace datapath (datapath_type=netdev); the tunnel
# is OVS's native userspace GRE (tnl_push/tnl_pop in dpif-netdev).
#   br-phy  the uplink veth: a `dpdk` port (net_af_packet, polled by one PMD
#           thread that sleeps when idle, pmd-maxsleep) in mode dpdk, a
#           `system` port (a packet socket) in mode kernel (the PMD is on core
#           0, which has one switch worker; the last core has two and testpmd); br-phy's internal
#           port (a tap in hnvtb-h6) holds the PA, from which OVS takes the
#           tunnel's source and route, and ARPs for the remote PAs.
#   br-int  the VM port `vm` (veth; eth0 in hnvtb-blueo; a system port) and
#           gre0 (type=gre, options:key=flow remote_ip=flow local_ip=PA).
# Mode auto is dpdk when OVS has DPDK and 384 MiB of 2 MiB hugepages are free
# (EAL gets 256 MiB; OVS adds --in-memory, so no hugepage file is left), else
# kernel; a DPDK uplink that fails in auto mode falls back to the kernel port.
up_ovs() {
    local i t0=$SECONDS kind=$OVS_MODE vswitchd=ovs-vswitchd free
    # The DPDK build, whichever binary the ovs-vswitchd alternative names.
    [[ -x /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk ]] && vswitchd=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
    if [[ $kind == auto ]]; then
        free=$(awk '/HugePages_Free/ {f = $2} /Hugepagesize/ {s = $2} END {print int(f * s / 1024)}' /proc/meminfo)
        if "$vswitchd" --version 2>/dev/null | grep -q DPDK && mountpoint -q /dev/hugepages && (( free >= 384 )); then kind=dpdk; else kind=kernel; fi
    fi
    mkdir -p "$OVSD"
    ovs_env ovsdb-tool create "$OVSD/conf.db" /usr/share/openvswitch/vswitch.ovsschema || return 1
    bg ovsdb h6 env OVS_RUNDIR="$OVSD" OVS_DBDIR="$OVSD" OVS_LOGDIR="$OVSD" ovsdb-server "$OVSD/conf.db" \
        --remote="punix:$OVSD/db.sock" --unixctl="$OVSD/ovsdb.ctl" --log-file="$OVSD/ovsdb-server.log" --no-chdir
    for ((i = 0; i < 100; i++)); do [[ -S $OVSD/db.sock ]] && break; sleep 0.1; done
    ovsctl --no-wait init || return 1
    if [[ $kind == dpdk ]]; then
        # dpdk-init=try in auto mode: without hugepages after all, OVS runs on
        # and the uplink falls back below; with HNVTB_OVS=dpdk, it must work.
        ovsctl --no-wait set Open_vSwitch . "other_config:dpdk-init=$([[ $OVS_MODE == dpdk ]] && echo true || echo try)" \
            "other_config:dpdk-extra=--no-pci --file-prefix=$P-h6" other_config:dpdk-socket-mem=256 other_config:dpdk-socket-limit=256 \
            other_config:dpdk-lcore-mask=0x1 other_config:pmd-cpu-mask=0x1 other_config:pmd-maxsleep=10000 || return 1
    else
        ovsctl --no-wait set Open_vSwitch . other_config:dpdk-init=false || return 1
    fi
    bg ovs h6 env OVS_RUNDIR="$OVSD" OVS_DBDIR="$OVSD" OVS_LOGDIR="$OVSD" "$vswitchd" "unix:$OVSD/db.sock" \
        --unixctl="$OVSD/vswitchd.ctl" --log-file="$OVSD/ovs-vswitchd.log" --no-chdir
    for ((i = 0; i < 200; i++)); do [[ -S $OVSD/vswitchd.ctl ]] && break; alive "$(cat "$DIR/pids/ovs.pid")" || break; sleep 0.1; done
    [[ -S $OVSD/vswitchd.ctl ]] || { log "ovs-vswitchd did not start: $(tail -3 "$DIR/ovs.out" | tr '\n' ' ')"; return 1; }

    # The VM: a veth whose peer `vm` is br-int's VM port.
    ip link add name eth0 netns "$P-blueo" type veth peer name vm netns "$P-h6" || return 1
    ip -n "$P-h6" link set vm up
    no_offload h6 vm; no_offload blueo eth0
    ip -n "$P-blueo" link set eth0 address $BLUEO_MAC up
    ip -n "$P-blueo" addr add 10.0.0.11/24 dev eth0

    # The uplink veth is br-phy's port, not an interface of this host's kernel:
    # another MAC than the PA's, and no ARP replies or input from it. Otherwise
    # the kernel, which owns the PA on br-phy, also takes the GRE frames that
    # reach the veth (weak host model) and answers each with an ICMP protocol
    # unreachable (it has no GRE), and answers ARP for the PA with the veth's MAC.
    ip -n "$P-h6" link set uplink address 02:00:00:00:06:01
    nsx h6 sysctl -qw net.ipv4.conf.uplink.arp_ignore=8 net.ipv4.conf.uplink.rp_filter=1
    ovsctl -- add-br br-phy -- set bridge br-phy datapath_type=netdev fail_mode=secure "other_config:hwaddr=${PAMAC[h6]}" \
        -- add-port br-phy uplink -- set Interface uplink ofport_request=1 \
           $([[ $kind == dpdk ]] && echo "type=dpdk options:dpdk-devargs=net_af_packet0,iface=uplink") \
        -- add-br br-int -- set bridge br-int datapath_type=netdev fail_mode=secure \
        -- add-port br-int vm -- set Interface vm ofport_request=$OVS_VM_OFPORT \
        -- add-port br-int gre0 -- set Interface gre0 type=gre ofport_request=$OVS_GRE_OFPORT \
           options:remote_ip=flow options:key=flow "options:local_ip=${PA[h6]}" || return 1
    if [[ $kind == dpdk ]] && ! ovs_port_ok uplink; then
        log "host 6: the DPDK uplink failed: $(ovsctl get Interface uplink error 2>&1)"
        [[ $OVS_MODE == dpdk ]] && return 1
        log "host 6: using a kernel (system) port for the uplink instead"
        ovsctl -- set Interface uplink type=system -- remove Interface uplink options dpdk-devargs || return 1
        kind=kernel
    fi
    for i in uplink vm gre0; do ovs_port_ok $i || { log "host 6: OVS port $i: $(ovsctl get Interface $i error 2>&1)"; return 1; }; done
    echo "$kind" > "$DIR/ovs.mode"
    # net_af_packet reports a 1518-byte maximum frame, so OVS refuses
    # mtu_request=1600 on the DPDK uplink, and it drops (tx_mtu_exceeded) what
    # exceeds the port's MTU 1500 after encapsulation: BlueO gets 1500 - 42
    # (NVGRE's outer Ethernet is the uplink's own). The kernel port takes the
    # veth's MTU 1600, and BlueO keeps 1500.
    [[ $kind == dpdk ]] && { ip -n "$P-blueo" link set eth0 mtu 1458 || return 1; }
    # br-phy's tap owns the PA (OVS 3.1 takes the tunnel source from the output
    # bridge's address); IPv6 is off in the namespace, multicast off on the tap.
    ip -n "$P-h6" link set br-phy multicast off
    ip -n "$P-h6" addr add "${PA[h6]}/24" dev br-phy || return 1
    ip -n "$P-h6" link set br-phy up
    ovsapp ovs/route/add "${PA[h6]%.*}.0/24" br-phy > /dev/null 2>&1 || true   # also learned from the namespace's routes
    # br-phy: uplink <-> LOCAL (frames for the PA reach LOCAL, where OVS pops the tunnel).
    printf '%s\n' "priority=100,in_port=LOCAL,actions=output:1" "priority=100,in_port=1,actions=LOCAL" |
        ovsof replace-flows br-phy - || return 1
    ovs_flows > "$DIR/ovs-br-int.flows" || return 1
    ovsof replace-flows br-int "$DIR/ovs-br-int.flows" || return 1
    ovs_neigh || return 1
    log "up: host 6 Open vSwitch $(ovs-vswitchd --version | head -1 | awk '{print $NF}') (userspace datapath, $kind uplink), br-int $(grep -c . "$DIR/ovs-br-int.flows") rules, up in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------- checks

PASSES=0 FAILS=0 SKIPS=0
RESULTS=()
pass() { echo "PASS: $*"; PASSES=$((PASSES + 1)); }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
skip() { echo "SKIP: $*"; SKIPS=$((SKIPS + 1)); }
note() { echo "      $*"; RESULTS+=("$*"); }

# snmp NS PROTO FIELD: a counter of /proc/net/snmp inside NS.
snmp() {
    nsx "$1" awk -v p="$2:" -v f="$3" '$1 == p { if (!c) { for (i = 2; i <= NF; i++) if ($i == f) c = i } else { print $c; exit } }' /proc/net/snmp
}
# pings NS DST COUNT [INTERVAL]: the number of replies.
pings() {
    nsx "$1" timeout $(( $3 + 10 )) ping -n -q -c "$3" -i "${4:-0.2}" -W 1 "$2" 2>/dev/null | awk '/packets transmitted/ {print $4; f = 1} END {if (!f) print 0}'
}
# bg NAME NS CMD...: run in the background, pid kept for down.
bg() { local name=$1 n=$2; shift 2; ( exec ip netns exec "$P-$n" "$@" ) > "$DIR/$name.out" 2>&1 & echo $! > "$DIR/pids/$name.pid"; }
stop_bg() { local f=$DIR/pids/$1.pid; [[ -e $f ]] && kill_pid "$(cat "$f")" 3; rm -f "$f"; }
wait_listen() { local i; for ((i = 0; i < 50; i++)); do nsx "$1" ss -Hltn "sport = :$2" 2>/dev/null | grep -q . && return 0; sleep 0.1; done; return 1; }
# iperf NS DST [PORT]: receiver throughput in Mbit/s, or empty.
iperf() {
    nsx "$1" timeout 20 iperf3 -c "$2" -p "${3:-5201}" -t 2 -f m --connect-timeout 3000 2>&1 | tee -a "$DIR/iperf.out" |
        awk '/receiver/ { for (i = 1; i <= NF; i++) if ($i == "Mbits/sec") print $(i - 1) }'
}

check_tenants() {
    local b2e r2e b2t r2t b3e rb rr cap=$DIR/tenants.pcapng i bw
    echo "== tenants: Blue1<->Blue2 and Red1<->Red2 at the same time, same addresses"
    b2e=$(snmp blue2 Icmp InEchos); r2e=$(snmp red2 Icmp InEchos)
    # Capture the fabric (every host port of the datacenter bridge) during the pings.
    bg capture dc tshark -q -n -a duration:30 -i h1 -i h2 -i h3 -i h4 -w "$cap"
    for ((i = 0; i < 100; i++)); do grep -q "Capturing on" "$DIR/capture.out" 2>/dev/null && break; sleep 0.1; done
    sleep 0.5
    pings blue1 10.0.0.7 5 > "$DIR/ping-b" & local pb=$!
    pings red1 10.0.0.7 4 > "$DIR/ping-r" & local pr=$!
    wait $pb $pr
    rb=$(cat "$DIR/ping-b"); rr=$(cat "$DIR/ping-r")
    local db=$(( $(snmp blue2 Icmp InEchos) - b2e )) dr=$(( $(snmp red2 Icmp InEchos) - r2e ))
    if (( rb >= 4 && rr >= 3 )); then pass "ping Blue1->10.0.0.7 $rb/5, Red1->10.0.0.7 $rr/4"
    else fail "ping Blue1->10.0.0.7 $rb/5, Red1->10.0.0.7 $rr/4 (want all)"; fi
    # Echo requests counted by each VM's own kernel: Blue's 5 reach only Blue2, Red's 4 only Red2.
    if (( db == 5 && dr == 4 )); then pass "isolation: Blue2 received $db echo requests (Blue1 sent 5), Red2 received $dr (Red1 sent 4)"
    else fail "isolation: Blue2 received $db echo requests (want 5), Red2 $dr (want 4)"; fi
    sleep 0.5
    stop_capture
    check_capture "$cap"

    # TCP, with listeners in both Blue2 and Red2 on the same address and port.
    bg iperf-blue2 blue2 iperf3 -s -p 5201; bg iperf-red2 red2 iperf3 -s -p 5201
    wait_listen blue2 5201; wait_listen red2 5201
    b2t=$(snmp blue2 Tcp PassiveOpens); r2t=$(snmp red2 Tcp PassiveOpens)
    bw=$(iperf blue1 10.0.0.7)
    local ob=$(( $(snmp blue2 Tcp PassiveOpens) - b2t )) or=$(( $(snmp red2 Tcp PassiveOpens) - r2t ))
    if [[ -n $bw ]] && (( ob >= 1 && or == 0 )); then pass "TCP Blue1->10.0.0.7: $bw Mbit/s; connections accepted by Blue2 $ob, by Red2 $or"; note "iperf3 Blue1->Blue2 (host1->host2, NVGRE): $bw Mbit/s"
    else fail "TCP Blue1->10.0.0.7: '${bw:-no result}' Mbit/s; accepted by Blue2 $ob (want >=1), by Red2 $or (want 0)"; fi
    b2t=$(snmp blue2 Tcp PassiveOpens); r2t=$(snmp red2 Tcp PassiveOpens)
    bw=$(iperf red1 10.0.0.7)
    ob=$(( $(snmp blue2 Tcp PassiveOpens) - b2t )); or=$(( $(snmp red2 Tcp PassiveOpens) - r2t ))
    if [[ -n $bw ]] && (( or >= 1 && ob == 0 )); then pass "TCP Red1->10.0.0.7: $bw Mbit/s; connections accepted by Red2 $or, by Blue2 $ob"; note "iperf3 Red1->Red2 (host1->host2, NVGRE): $bw Mbit/s"
    else fail "TCP Red1->10.0.0.7: '${bw:-no result}' Mbit/s; accepted by Red2 $or (want >=1), by Blue2 $ob (want 0)"; fi
    stop_bg iperf-blue2; stop_bg iperf-red2

    # A forged destination: Blue1 aims 10.0.0.7 at Red2's MAC. The switch looks
    # up (VSID 5001, 10.0.0.7) and refuses the MAC; nothing reaches Red2.
    r2e=$(snmp red2 Icmp InEchos)
    nsx blue1 ip neigh replace 10.0.0.7 lladdr 00:15:5d:02:00:07 dev eth0 nud permanent
    rb=$(pings blue1 10.0.0.7 3)
    nsx blue1 ip neigh del 10.0.0.7 dev eth0
    dr=$(( $(snmp red2 Icmp InEchos) - r2e ))
    if (( rb == 0 && dr == 0 )); then pass "Blue1 with a forged neighbor (10.0.0.7 at Red2's MAC): 0/3 replies, Red2 received 0"
    else fail "Blue1 with a forged neighbor (10.0.0.7 at Red2's MAC): $rb/3 replies, Red2 received $dr (want 0, 0)"; fi

    # The ACL of the example: VSID 5001 denies inbound TCP to port 23.
    bg iperf-b2-23 blue2 iperf3 -s -p 23; wait_listen blue2 23
    bw=$(iperf blue1 10.0.0.7 23)
    stop_bg iperf-b2-23
    if [[ -z $bw ]]; then pass "ACL: TCP Blue1->Blue2 port 23 is denied (VSID 5001 'in' deny tcp/23)"
    else fail "ACL: TCP Blue1->Blue2 port 23 got through ($bw Mbit/s)"; fi
}

stop_capture() { local f=$DIR/pids/capture.pid; [[ -e $f ]] && kill -INT "$(cat "$f")" 2>/dev/null; wait_bg_exit capture 10; }
wait_bg_exit() { local f=$DIR/pids/$1.pid i; for ((i = 0; i < $2 * 10; i++)); do alive "$(cat "$f" 2>/dev/null)" || break; sleep 0.1; done; stop_bg "$1"; }

check_capture() {
    local cap=$1 out
    if [[ ! -s $cap ]]; then fail "fabric capture: no capture file ($(tail -2 "$DIR/capture.out" | tr '\n' ' '))"; return; fi
    # One line per frame: eth.type, ARP addresses, ip.proto, gre.proto, gre.key, eth.src (all occurrences).
    out=$(tshark -n -r "$cap" -T fields -E separator='|' -E occurrence=a -E aggregator=, \
        -e eth.type -e arp.src.proto_ipv4 -e arp.dst.proto_ipv4 -e ip.proto -e gre.proto -e gre.key -e eth.src 2>/dev/null |
        awk -F'|' '
        function hex(s,   i, v) { v = 0; s = tolower(s); sub(/^0x/, "", s); for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
        function mac_vsid(m) { return m ~ /^00:15:5d:01:/ ? 5001 : m ~ /^00:15:5d:02:/ ? 6001 : 0 }
        {
            n++; split($1, et, ","); split($4, pr, ","); split($7, src, ",")
            if (et[1] == "0x0806") {
                if ($2 ~ /^192\.168\.4\./ && $3 ~ /^192\.168\.4\./) parp++; else { tarp++; bad[n] = "tenant ARP " $2 "->" $3 }
                next
            }
            if (et[1] == "0x0800" && pr[1] == "47" && $5 == "0x6558") {
                key = hex($6); vsid = int(key / 256); flow[key % 256] = 1
                if (et[2] == "0x0806") { tarp++; bad[n] = "tenant ARP inside NVGRE"; next }
                if (vsid != 5001 && vsid != 6001) { bad[n] = "key " $6 " (VSID " vsid ")"; next }
                if (mac_vsid(src[2]) != vsid) { bad[n] = "VSID " vsid " carries a frame from " src[2]; next }
                cnt[vsid]++
                next
            }
            bad[n] = "not NVGRE: eth.type " $1 " ip.proto " $4 " gre.proto " $5
        }
        END {
            nb = 0; for (i in bad) { if (nb < 5) printf "frame %d: %s; ", i, bad[i]; nb++ }
            nf = 0; for (f in flow) nf++
            printf "\n%d %d %d %d %d %d %d\n", n, cnt[5001] + 0, cnt[6001] + 0, parp + 0, tarp + 0, nb, nf
        }')
    local detail=${out%%$'\n'*} nums=${out##*$'\n'}
    local n b r pa ta nb nf
    read -r n b r pa ta nb nf <<< "$nums"
    if (( nb == 0 && b > 0 && r > 0 )); then
        pass "fabric capture (datacenter bridge ports; a frame counts at its ingress and egress port): $n frames, all NVGRE (GRE 0x6558) or provider ARP: key VSID 5001 $b (inner source MAC always Blue's), VSID 6001 $r (always Red's), provider ARP $pa, tenant ARP $ta, $nf distinct FlowIDs"
    else
        fail "fabric capture: $n frames, VSID 5001 $b, VSID 6001 $r, provider ARP $pa, tenant ARP $ta, $nb bad: $detail"
    fi
}

check_routing() {
    local b3e r out ttl
    echo "== routing between virtual subnets of one routing domain"
    b3e=$(snmp blue3 Icmp InEchos)
    out=$(nsx blue1 timeout 15 ping -n -c 3 -i 0.2 -W 1 10.0.1.9 2>&1)
    r=$(awk '/packets transmitted/ {print $4}' <<< "$out"); ttl=$(grep -o 'ttl=[0-9]*' <<< "$out" | head -1)
    local d=$(( $(snmp blue3 Icmp InEchos) - b3e ))
    if (( ${r:-0} >= 2 && d == 3 )); then pass "Blue1 (5001, 10.0.0.5) -> Blue3 (5002, 10.0.1.9): ${r}/3 replies, $ttl (one routed hop)"
    else fail "Blue1 -> Blue3 10.0.1.9: ${r:-0}/3 replies, Blue3 received $d echo requests (want 3)"; fi
    b3e=$(snmp blue3 Icmp InEchos)
    r=$(pings red1 10.0.1.9 3)
    d=$(( $(snmp blue3 Icmp InEchos) - b3e ))
    if (( r == 0 && d == 0 )); then pass "Red1 (routing domain red) -> 10.0.1.9: 0/3 replies, Blue3 received 0 (no route between routing domains)"
    else fail "Red1 -> 10.0.1.9: $r/3 replies, Blue3 received $d echo requests (want 0, 0)"; fi
}

check_kernel() {
    local r bw mode what
    mode=$(cat "$DIR/gre.mode")
    if [[ $mode == kernel ]]; then
        what="Linux gretap"
        echo "== kernel interop: Linux gretap on host 4 (${PA[h4]}, key 0x$(printf %x $GRE_KEY)), BlueK 10.0.0.8"
    else
        what="GRE stand-in"
        echo "== kernel interop: host 4 (${PA[h4]}, key 0x$(printf %x $GRE_KEY)), BlueK 10.0.0.8"
        skip "Linux gretap: this kernel cannot create one ($(tr -d '\n' < "$DIR/gretap.err"); no CONFIG_NET_IPGRE); host 4 runs scripts/testbed/gre.py instead: gretap's rules (whole 32-bit key must equal 0x$(printf %x $GRE_KEY), K flag only, proto 0x6558, outer source = 192.168.4.11) in userspace, over the kernel's IP stack and ARP"
    fi
    # Host 4 speaks first: its kernel's ARP for 192.168.4.11 teaches host 1
    # the MAC of 192.168.4.44 (no static neighbor for it in host 1's policy).
    r=$(pings bluek 10.0.0.5 5)
    if (( r >= 4 )); then pass "ping BlueK ($what, host 4) -> Blue1: $r/5 (host 1 learned 192.168.4.44 from ARP)"
    else fail "ping BlueK ($what, host 4) -> Blue1: $r/5 replies"; fi
    r=$(pings blue1 10.0.0.8 5)
    if (( r >= 4 )); then pass "ping Blue1 -> BlueK ($what; host 1 sends FlowID 0 for this record): $r/5"
    else fail "ping Blue1 -> BlueK ($what): $r/5 replies"; fi
    bg iperf-blue1 blue1 iperf3 -s -p 5201; bg iperf-bluek bluek iperf3 -s -p 5201
    wait_listen blue1 5201; wait_listen bluek 5201
    bw=$(iperf bluek 10.0.0.5)
    if [[ -n $bw ]]; then pass "TCP BlueK ($what) -> Blue1: $bw Mbit/s"; note "iperf3 BlueK ($what, host 4) -> Blue1: $bw Mbit/s"
    else fail "TCP BlueK ($what) -> Blue1: no result"; fi
    bw=$(iperf blue1 10.0.0.8)
    if [[ -n $bw ]]; then pass "TCP Blue1 -> BlueK ($what): $bw Mbit/s"; note "iperf3 Blue1 -> BlueK ($what, host 4): $bw Mbit/s"
    else fail "TCP Blue1 -> BlueK ($what): no result"; fi
    stop_bg iperf-blue1; stop_bg iperf-bluek
    if [[ $mode == userspace ]]; then
        kill -USR1 "$(cat "$DIR/pids/gre.pid")" 2>/dev/null; sleep 0.6
        note "gre.py counters: $(tail -1 "$DIR/gre.out" | sed 's/^gre.py: //') (bad_key = frames whose 32-bit key was not 0x$(printf %x $GRE_KEY))"
    fi
}

# ovs_capture FILE: the fabric seen at host 6's bridge port. Prints "frames
# from66 to66 provider_arp flowids_to66 bad", then up to 5 bad frames. Good
# frames: provider ARP; GRE (K flag only, protocol 0x6558) from 192.168.4.66
# with the key exactly 5001<<8, or to it with key>>8 = 5001 (any FlowID); the
# inner source MAC a Blue one (00:15:5d:01:...).
ovs_capture() {
    tshark -n -r "$1" -T fields -E separator='|' -E occurrence=a -E aggregator=, \
        -e eth.type -e arp.src.proto_ipv4 -e ip.proto -e ip.src -e ip.dst -e gre.flags_and_version -e gre.proto -e gre.key -e eth.src 2>/dev/null |
        awk -F'|' -v pa="${PA[h6]}" -v key=$GRE_KEY '
        function hex(s,   i, v) { v = 0; s = tolower(s); sub(/^0x/, "", s); for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
        {
            n++; split($1, et, ","); split($3, pr, ","); split($4, src, ","); split($5, dst, ","); split($9, mac, ",")
            if (et[1] == "0x0806") { if ($2 ~ /^192\.168\.4\./) parp++; else bad[n] = "tenant ARP " $2; next }
            if (et[1] != "0x0800" || pr[1] != "47") { bad[n] = "not GRE: eth.type " $1 " ip.proto " $3; next }
            if (hex($6) != 8192 || $7 != "0x6558") { bad[n] = "GRE flags " $6 " proto " $7; next }
            if (mac[2] !~ /^00:15:5d:01:/) { bad[n] = "inner source " mac[2] " is not a Blue MAC"; next }
            k = hex($8)
            if (src[1] == pa) { if (k != key) { bad[n] = "OVS sent key " $8; next }; from++ }
            else if (dst[1] == pa) { if (int(k / 256) != int(key / 256)) { bad[n] = "key " $8 " to OVS"; next }; to++; fid[k % 256] = 1 }
            else { bad[n] = "GRE " src[1] " -> " dst[1] " at host 6"; next }
        }
        END {
            nb = 0; for (i in bad) nb++
            nf = 0; for (f in fid) nf++
            printf "%d %d %d %d %d %d\n", n, from + 0, to + 0, parp + 0, nf, nb
            k = 0; for (i in bad) { if (k++ < 5) printf "frame %d: %s; ", i, bad[i] }
            print ""
        }'
}

# drop_counts HOST: a switch's counters as JSON (hnvctl --json show counters).
drop_counts() { "$CTL" -s "$DIR/$1.sock" --json show counters 2>/dev/null; }

# Blue VMs on two hnvswitch hosts <-> BlueO behind Open vSwitch's userspace GRE on host 6.
check_ovs() {
    local b2 r t bw e d ke r2 out nums h t0=$SECONDS
    b2=$(cat "$DIR/blue2.at")
    echo "== independent NVGRE peer: Open vSwitch userspace GRE on host 6 (${PA[h6]}, uplink: $(cat "$DIR/ovs.mode" 2>/dev/null) port), BlueO 10.0.0.11 (VSID 5001) <-> Blue1 (host 1), Blue2 ($b2)"
    if [[ $(cat "$DIR/ovs.mode" 2>/dev/null) == off ]]; then
        skip "Open vSwitch peer: ovs-vswitchd/ovsdb-server not installed or HNVTB_OVS=off (scripts/setup.sh --with-test-tools installs openvswitch-switch-dpdk)"
        return
    fi
    # Blue2 may have moved (check_migration): br-int's rules and BlueO's neighbors follow the records.
    ovs_flows > "$DIR/ovs-br-int.flows" && ovsof replace-flows br-int "$DIR/ovs-br-int.flows" && ovs_neigh || fail "host 6: reprogramming br-int"
    CAP_SNAPLEN=160 start_capture ovscap h6
    local vm ns ca
    for t in "Blue1 blue1 10.0.0.5 h1" "Blue2 blue2 10.0.0.7 $b2"; do
        read -r vm ns ca h <<< "$t"
        # BlueO speaks first: OVS ARPs for the remote PA, which teaches the switch 192.168.4.66.
        r=$(pings blueo "$ca" 5)
        if (( r >= 4 )); then pass "ping BlueO (OVS GRE, host 6) -> $vm ($h): $r/5"
        else fail "ping BlueO (OVS GRE, host 6) -> $vm ($h): $r/5 replies"; fi
        r=$(pings "$ns" 10.0.0.11 5)
        if (( r >= 4 )); then pass "ping $vm ($h) -> BlueO (OVS GRE): $r/5"
        else fail "ping $vm ($h) -> BlueO (OVS GRE): $r/5 replies"; fi
    done
    bg iperf-blueo blueo iperf3 -s -p 5201; bg iperf-blue1 blue1 iperf3 -s -p 5201; bg iperf-blue2 blue2 iperf3 -s -p 5201
    wait_listen blueo 5201; wait_listen blue1 5201; wait_listen blue2 5201
    for t in "Blue1 blue1 10.0.0.5 h1" "Blue2 blue2 10.0.0.7 $b2"; do
        read -r vm ns ca h <<< "$t"
        bw=$(iperf blueo "$ca")
        if [[ -n $bw ]]; then pass "TCP BlueO (OVS GRE) -> $vm ($h): $bw Mbit/s"; note "iperf3 BlueO (Open vSwitch GRE, host 6) -> $vm ($h): $bw Mbit/s"
        else fail "TCP BlueO (OVS GRE) -> $vm ($h): no result"; fi
        bw=$(iperf "$ns" 10.0.0.11)
        if [[ -n $bw ]]; then pass "TCP $vm ($h) -> BlueO (OVS GRE): $bw Mbit/s"; note "iperf3 $vm ($h) -> BlueO (Open vSwitch GRE, host 6): $bw Mbit/s"
        else fail "TCP $vm ($h) -> BlueO (OVS GRE): no result"; fi
    done
    stop_bg iperf-blueo; stop_bg iperf-blue1; stop_bg iperf-blue2
    # OVS's own count of the uplink: the traffic went through it (the DPDK port
    # when mode is dpdk), and nothing was dropped for exceeding its MTU.
    local st rxp txp mtud
    st=$(ovsctl get Interface uplink statistics 2>/dev/null)
    rxp=$(grep -o '[{ ]rx_packets=[0-9]*' <<< "$st" | cut -d= -f2); txp=$(grep -o '[{ ]tx_packets=[0-9]*' <<< "$st" | cut -d= -f2)
    mtud=$(grep -o 'ovs_tx_mtu_exceeded_drops=[0-9]*' <<< "$st" | cut -d= -f2)
    if (( ${rxp:-0} > 1000 && ${txp:-0} > 1000 && ${mtud:-0} == 0 )); then pass "OVS's $(cat "$DIR/ovs.mode") uplink port counted rx ${rxp} and tx ${txp} packets; drops for exceeding its MTU: ${mtud:-not counted for a kernel port}"
    else fail "OVS's $(cat "$DIR/ovs.mode") uplink port: rx '${rxp}', tx '${txp}' packets (want > 1000), MTU drops '${mtud}' (want 0)"; fi

    # The other tenant, both ways. Red1 (VSID 6001, 10.0.0.5) has no record
    # for 10.0.0.11, and aiming at BlueO's MAC does not help; BlueO has no
    # neighbor (and OVS no rule) for a Red VM.
    e=$(snmp blueo Icmp InEchos)
    r=$(pings red1 10.0.0.11 3)
    nsx red1 ip neigh replace 10.0.0.11 lladdr $BLUEO_MAC dev eth0 nud permanent
    r2=$(pings red1 10.0.0.11 3)
    nsx red1 ip neigh del 10.0.0.11 dev eth0
    d=$(( $(snmp blueo Icmp InEchos) - e ))
    if (( r == 0 && r2 == 0 && d == 0 )); then pass "isolation: Red1 -> 10.0.0.11 0/3, with a forged neighbor (BlueO's MAC) 0/3; BlueO received 0 echo requests"
    else fail "isolation: Red1 -> 10.0.0.11 $r/3, forged $r2/3, BlueO received $d echo requests (want 0, 0, 0)"; fi
    ke=$(snmp redk Icmp InEchos)
    r=$(pings blueo 10.0.0.10 3)
    d=$(( $(snmp redk Icmp InEchos) - ke ))
    if (( r == 0 && d == 0 )); then pass "isolation: BlueO -> RedK 10.0.0.10 0/3, RedK received 0"
    else fail "isolation: BlueO -> RedK 10.0.0.10 $r/3, RedK received $d (want 0, 0)"; fi
    sleep 0.3
    stop_named_capture ovscap
    out=$(ovs_capture "$DIR/ovscap.pcapng"); nums=${out%%$'\n'*}
    local n from to pa nf nbad
    read -r n from to pa nf nbad <<< "$nums"
    if (( nbad == 0 && from > 0 && to > 0 )); then
        pass "fabric capture at host 6: $n frames, all GRE (K flag only, protocol 0x6558) or provider ARP ($pa): OVS sent $from, all with key 0x$(printf %x $GRE_KEY) (FlowID 0); hnvswitch sent $to with VSID 5001 and $nf distinct FlowIDs, which OVS accepts (tun_id/0xffffff00); inner source always a Blue MAC"
    else
        fail "fabric capture at host 6: $n frames, from OVS $from, to OVS $to, provider ARP $pa, $nbad bad: ${out#*$'\n'}"
    fi

    # A hostile peer: OVS is given rules that send BlueO's frames to Red1's MAC
    # (10.0.0.5 at 00:15:5d:02:00:05 in BlueO's neighbor table), first in
    # Blue's key, then in Red's (5001<<8, 6001<<8). Host 1 must deliver none.
    local redmac=00:15:5d:02:00:05 key sent=0 c0 c1
    e=$(snmp red1 Icmp InEchos)
    c0=$(drop_counts h1)
    nsx blueo ip neigh replace 10.0.0.5 lladdr $redmac dev eth0 nud permanent
    r=0
    for key in $GRE_KEY $((RED_VSID << 8)); do
        ovsof add-flow br-int "table=1,priority=200,dl_dst=$redmac,ip,actions=set_field:$(printf %#x "$key")->tun_id,set_field:${PA[h1]}->tun_dst,output:$OVS_GRE_OFPORT"
        r=$(( r + $(pings blueo 10.0.0.5 3) ))
        sent=$(( sent + $(ovsof dump-flows br-int "table=1,dl_dst=$redmac" 2>/dev/null | grep -o 'n_packets=[0-9]*' | cut -d= -f2 | head -1) ))
        ovsof del-flows br-int --strict "table=1,priority=200,dl_dst=$redmac,ip"
    done
    ovs_neigh
    c1=$(drop_counts h1)
    d=$(( $(snmp red1 Icmp InEchos) - e ))
    local delta; delta=$("$PYTHON" - "$c0" "$c1" <<'PY'
import json, sys
def drops(s):
    try:
        return {d["reason"]: d["packets"] for d in json.loads(s)["data"]["drop_reasons"]}
    except (ValueError, KeyError, TypeError):
        return {}
a, b = drops(sys.argv[1]), drops(sys.argv[2])
d = {k: v - a.get(k, 0) for k, v in b.items() if v > a.get(k, 0)}
print(sum(d.values()), " ".join(f"{k} +{v}" for k, v in sorted(d.items())) or "none")
PY
)
    if (( r == 0 && d == 0 && sent >= 6 && ${delta%% *} >= sent )); then pass "hostile OVS peer: BlueO's frames to Red1's MAC in key 5001<<8 and 6001<<8 (OVS sent $sent): 0/6 replies, Red1 received 0; host 1 counted ${delta%% *} drops: ${delta#* }"
    else fail "hostile OVS peer: OVS sent $sent (want >= 6), $r/6 replies, Red1 received $d echo requests (want 0); host 1 counted ${delta%% *} drops (want >= $sent): ${delta#* }"; fi
    note "Open vSwitch peer checks (host 6): $((SECONDS - t0)) s"
}

# encap_capture FILE: one line of numbers about a fabric capture, by
# encapsulation and VSID: "frames nvgre5001 vxlan5001 nvgre6001 vxlan6001
# provider_arp bad", then up to 5 bad frames (anything else: other
# protocols, other VNIs/keys, a Red frame in Blue's VSID or the reverse).
encap_capture() {
    tshark -n -r "$1" -T fields -E separator='|' -E occurrence=a -E aggregator=, \
        -e eth.type -e arp.src.proto_ipv4 -e ip.proto -e udp.dstport -e vxlan.vni -e gre.key -e eth.src 2>/dev/null |
        awk -F'|' '
        function hex(s,   i, v) { v = 0; s = tolower(s); sub(/^0x/, "", s); for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return v }
        function mac_vsid(m) { return m ~ /^00:15:5d:01:/ ? 5001 : m ~ /^00:15:5d:02:/ ? 6001 : 0 }
        {
            n++; split($1, et, ","); split($3, pr, ","); split($4, up, ","); split($7, src, ",")
            if (et[1] == "0x0806") { if ($2 ~ /^192\.168\.4\./) parp++; else bad[n] = "tenant ARP " $2; next }
            if (et[1] == "0x0800" && pr[1] == "47") { kind = "nvgre"; vsid = int(hex($6) / 256) }
            else if (et[1] == "0x0800" && pr[1] == "17" && up[1] == "4789") { kind = "vxlan"; vsid = $5 + 0 }
            else { bad[n] = "not NVGRE or VXLAN: eth.type " $1 " ip.proto " $3 " udp.dstport " $4; next }
            if (mac_vsid(src[2]) != vsid) { bad[n] = kind " VSID " vsid " carries a frame from " src[2]; next }
            cnt[kind vsid]++
        }
        END {
            nb = 0; for (i in bad) nb++
            printf "%d %d %d %d %d %d %d\n", n, cnt["nvgre5001"] + 0, cnt["vxlan5001"] + 0, cnt["nvgre6001"] + 0, cnt["vxlan6001"] + 0, parp + 0, nb
            k = 0; for (i in bad) { if (k++ < 5) printf "frame %d: %s; ", i, bad[i] }
            print ""
        }'
}

# start_capture NAME IFACES...: a fabric capture on datacenter bridge ports.
start_capture() {
    local name=$1 i args=(); shift
    for i in "$@"; do args+=(-i "$i"); done
    # CAP_SNAPLEN: bytes kept per frame (0 = all); headers are all the checks read.
    bg "$name" dc tshark -q -n -a duration:60 -s "${CAP_SNAPLEN:-0}" "${args[@]}" -w "$DIR/$name.pcapng"
    for ((i = 0; i < 100; i++)); do grep -q "Capturing on" "$DIR/$name.out" 2>/dev/null && break; sleep 0.1; done
    sleep 0.5
}
stop_named_capture() { local f=$DIR/pids/$1.pid; [[ -e $f ]] && kill -INT "$(cat "$f")" 2>/dev/null; wait_bg_exit "$1" 10; }

# Red (VSID 6001) goes from NVGRE to VXLAN by a live hnvctl change on every
# host, one after the other, under a 20/s ping Red1 -> Red2 (host 1 -> host 2).
# Hosts accept both encapsulations, so the order does not matter.
check_switchover() {
    local h tx rx lost gap ok=0 out nums
    echo "== switch-over: Red (VSID $RED_VSID) from NVGRE to VXLAN with hnvctl on h1, h2, h3 (0.5 s apart) under a 20/s ping Red1 -> Red2"
    bg swping red1 ping -n -i 0.05 -c 120 -W 1 10.0.0.7
    sleep 2
    for h in "${SWITCHES[@]}"; do
        "$CTL" -s "$DIR/$h.sock" encap $RED_VSID vxlan >> "$DIR/ctl.out" 2>&1 && ok=$((ok + 1))
        sleep 0.5
    done
    echo vxlan > "$DIR/red.encap"   # later policy rewrites (migration) keep it
    wait_bg_exit swping 20
    tx=$(awk '/packets transmitted/ {print $1}' "$DIR/swping.out"); rx=$(awk '/packets transmitted/ {print $4}' "$DIR/swping.out")
    lost=$(( ${tx:-0} - ${rx:-0} ))
    gap=$(awk -F'icmp_seq=' '/icmp_seq=/ { split($2, a, " "); s = a[1]; if (p && s - p - 1 > g) g = s - p - 1; p = s } END {print g + 0}' "$DIR/swping.out")
    local shown=0
    for h in "${SWITCHES[@]}"; do "$CTL" -s "$DIR/$h.sock" show vsids 2>/dev/null | grep -E "(^|[^0-9])$RED_VSID([^0-9]|$)" | grep -q vxlan && shown=$((shown + 1)); done
    if (( ok == ${#SWITCHES[@]} && shown == ${#SWITCHES[@]} && ${rx:-0} > 0 && lost <= 2 )); then
        pass "switch-over NVGRE -> VXLAN of VSID $RED_VSID on $ok hosts (hnvctl encap; show vsids says vxlan on $shown): ping Red1->Red2 lost $lost of ${tx:-0} (20/s, longest gap $gap)"
    else
        fail "switch-over NVGRE -> VXLAN: hnvctl succeeded on $ok/${#SWITCHES[@]} hosts, show vsids vxlan on $shown, ping lost $lost of ${tx:-0} (longest gap $gap; missing icmp_seq $(missing_seqs "$DIR/swping.out" "${tx:-0}")): $(tail -3 "$DIR/ctl.out" | tr '\n' ' ')"
    fi
    note "switch-over NVGRE -> VXLAN (VSID $RED_VSID, 3 hosts 0.5 s apart): $lost of ${tx:-0} pings lost at 20/s (longest gap $gap pings)"

    # Afterwards the fabric carries Red only as VXLAN (VNI 6001) and Blue only as NVGRE.
    start_capture encapcap h1 h2
    pings red1 10.0.0.7 4 > "$DIR/ping-r" & local pr=$!
    pings blue1 10.0.0.7 4 > "$DIR/ping-b" & local pb=$!
    wait $pr $pb
    sleep 0.3
    stop_named_capture encapcap
    out=$(encap_capture "$DIR/encapcap.pcapng"); nums=${out%%$'\n'*}
    local n nb5 vb5 nr vr pa nbad
    read -r n nb5 vb5 nr vr pa nbad <<< "$nums"
    if (( nbad == 0 && nr == 0 && vr > 0 && vb5 == 0 && nb5 > 0 )); then
        pass "fabric capture after the switch-over: $n frames; Red only VXLAN with VNI $RED_VSID ($vr, inner source always Red's), Blue only NVGRE key 5001 ($nb5), provider ARP $pa"
    else
        fail "fabric capture after the switch-over: $n frames; Red NVGRE $nr / VXLAN $vr, Blue NVGRE $nb5 / VXLAN $vb5, $nbad bad: ${out#*$'\n'}"
    fi
}

# Red1 (hnvswitch host 1) <-> RedK behind the kernel's own vxlan device on host 5.
check_kernel_vxlan() {
    local r bw ke out nums
    echo "== kernel interop: Linux vxlan on host 5 (${PA[h5]}, VNI $RED_VSID, dstport 4789), RedK 10.0.0.10 <-> Red1 10.0.0.5 on host 1"
    # The iperf3 transfers below pass through this capture: keep the headers only
    # (outer 50 + inner Ethernet and IP: 160 bytes), or tshark reads ~1 GB afterwards.
    CAP_SNAPLEN=160 start_capture kvxcap h1 h5
    # Host 5 speaks first: its ARP for 192.168.4.11 teaches host 1 the MAC of 192.168.4.55.
    r=$(pings redk 10.0.0.5 5)
    if (( r >= 4 )); then pass "ping RedK (Linux vxlan, host 5) -> Red1: $r/5 (host 1 learned 192.168.4.55 from ARP)"
    else fail "ping RedK (Linux vxlan, host 5) -> Red1: $r/5 replies"; fi
    r=$(pings red1 10.0.0.10 5)
    if (( r >= 4 )); then pass "ping Red1 -> RedK (Linux vxlan): $r/5"
    else fail "ping Red1 -> RedK (Linux vxlan): $r/5 replies"; fi
    bg iperf-red1 red1 iperf3 -s -p 5201; bg iperf-redk redk iperf3 -s -p 5201
    wait_listen red1 5201; wait_listen redk 5201
    bw=$(iperf redk 10.0.0.5)
    if [[ -n $bw ]]; then pass "TCP RedK (Linux vxlan) -> Red1: $bw Mbit/s"; note "iperf3 RedK (Linux vxlan, host 5) -> Red1 (hnvswitch, VXLAN): $bw Mbit/s"
    else fail "TCP RedK (Linux vxlan) -> Red1: no result"; fi
    bw=$(iperf red1 10.0.0.10)
    if [[ -n $bw ]]; then pass "TCP Red1 -> RedK (Linux vxlan): $bw Mbit/s"; note "iperf3 Red1 (hnvswitch, VXLAN) -> RedK (Linux vxlan, host 5): $bw Mbit/s"
    else fail "TCP Red1 -> RedK (Linux vxlan): no result"; fi
    stop_bg iperf-red1; stop_bg iperf-redk
    # The other tenant: Blue1 has no record for 10.0.0.10, and a forged neighbor does not help.
    ke=$(snmp redk Icmp InEchos)
    r=$(pings blue1 10.0.0.10 3)
    nsx blue1 ip neigh replace 10.0.0.10 lladdr $REDK_MAC dev eth0 nud permanent
    local r2; r2=$(pings blue1 10.0.0.10 3)
    nsx blue1 ip neigh del 10.0.0.10 dev eth0
    local d=$(( $(snmp redk Icmp InEchos) - ke ))
    if (( r == 0 && r2 == 0 && d == 0 )); then pass "isolation: Blue1 -> RedK 10.0.0.10 0/3, with a forged neighbor (RedK's MAC) 0/3; RedK received 0 echo requests"
    else fail "isolation: Blue1 -> RedK $r/3, forged $r2/3, RedK received $d echo requests (want 0, 0, 0)"; fi
    sleep 0.3
    stop_named_capture kvxcap
    out=$(encap_capture "$DIR/kvxcap.pcapng"); nums=${out%%$'\n'*}
    local n nb5 vb5 nr vr pa nbad
    read -r n nb5 vb5 nr vr pa nbad <<< "$nums"
    if (( nbad == 0 && nr == 0 && vr > 0 && nb5 + vb5 == 0 )); then
        pass "fabric capture host 1 <-> host 5: $n frames, all VXLAN with VNI $RED_VSID ($vr, inner source always Red's) or provider ARP ($pa); no Blue frame"
    else
        fail "fabric capture host 1 <-> host 5: $n frames; Red NVGRE $nr / VXLAN $vr, Blue $((nb5 + vb5)), $nbad bad: ${out#*$'\n'}"
    fi
}

start_testpmd() { # start_testpmd N
    local core=${WORKER[h1]}
    bg "testpmd$1" bluev dpdk-testpmd --lcores="0@$core,1@$core" --no-huge --no-pci -m 256 --file-prefix="$P-vm" \
        --vdev="net_virtio_user0,path=$DIR/bluev.sock,server=1,mac=$BLUEV_MAC" -- \
        --forward-mode=icmpecho --port-topology=loop --nb-cores=1 --total-num-mbufs=2048 --stats-period=1
}
# until_ping NS DST SECONDS: seconds until the first reply, or empty.
until_ping() {
    local t0=$(date +%s.%N) i
    for ((i = 0; i < $3; i++)); do
        if nsx "$1" ping -n -q -c 1 -W 1 "$2" >/dev/null 2>&1; then awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}'; return 0; fi
    done
    return 1
}
# The last RX/TX-packets lines testpmd prints on exit: its accumulated totals.
testpmd_stats() { awk '/RX-packets:/ {rx = $2} /TX-packets:/ {tx = $2} END {printf "testpmd received %s, sent %s", rx, tx}' "$DIR/$1.out"; }

check_vhost() {
    local t r
    echo "== vhost-user: host 2 port bluev (10.0.0.9, client) <-> dpdk-testpmd virtio_user (server), forward-mode icmpecho"
    # Client mode: the switch connects to the VM's socket, and starts (and
    # keeps retrying once a second) while that socket does not exist yet.
    if ! grep -q "bluev.sock) vhost-user client" "$DIR/h2.log"; then fail "vhost-user: host 2's port bluev is not a vhost-user client"; return; fi
    if grep -q "bluev.sock) failed to connect" "$DIR/h2.log"; then
        pass "host 2 started with vhost-user port bluev in client mode before its VM existed (no socket yet; DPDK retries)"
    fi
    start_testpmd 1
    if t=$(until_ping blue1 10.0.0.9 20); then
        r=$(pings blue1 10.0.0.9 5)
        if (( r >= 4 )); then pass "Blue1 -> BlueV (vhost-user, echoed by testpmd): $r/5 replies (first reply ${t}s after testpmd start)"
        else fail "Blue1 -> BlueV (vhost-user): $r/5 replies"; fi
    else
        fail "Blue1 -> BlueV (vhost-user): no reply within 20 s of testpmd start"
    fi
    stop_testpmd 1
    r=$(pings blue1 10.0.0.9 3 0.2)
    if (( r == 0 )); then pass "with testpmd stopped, Blue1 -> BlueV: 0/3 replies (the replies came from testpmd)"
    else fail "with testpmd stopped, Blue1 -> BlueV still answered: $r/3"; fi
    start_testpmd 2
    if t=$(until_ping blue1 10.0.0.9 20); then
        r=$(pings blue1 10.0.0.9 5)
        if (( r >= 4 )); then pass "vhost-user port recovers after the testpmd peer restarts: $r/5 replies, first reply ${t}s after restart"; note "vhost-user reconnect: first reply ${t}s after testpmd restart"
        else fail "vhost-user after peer restart: $r/5 replies"; fi
    else
        fail "vhost-user port did not recover within 20 s of the testpmd restart"
    fi
    stop_testpmd 2
}
stop_testpmd() {
    local f=$DIR/pids/testpmd$1.pid
    [[ -e $f ]] && { kill -INT "$(cat "$f")" 2>/dev/null; wait_bg_exit "testpmd$1" 10; }
    note "testpmd run $1: $(testpmd_stats "testpmd$1")"
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", b - a}'; }
# ping_after FILE T: from a `ping -D` log, "FIRST GAP": seconds from epoch T to
# the first reply after T ("-" if none yet) and the longest silence between
# two replies, in seconds.
ping_after() {
    awk -F'[][]' -v t="$2" '/icmp_seq=/ { ts = $2 + 0; if (p && ts - p > g) g = ts - p; p = ts; if (f == "" && ts > t) f = sprintf("%.1f", ts - t) }
        END { printf "%s %.1f\n", (f == "" ? "-" : f), g }' "$1" 2>/dev/null
}
# ping_lost FILE: "LOST SENT" from ping's summary.
# missing_seqs FILE COUNT: the icmp_seq numbers (1..COUNT) without a reply in ping's output.
missing_seqs() { awk -F'icmp_seq=' -v n="$2" '/icmp_seq=/ { split($2, a, " "); got[a[1] + 0] = 1 } END { for (i = 1; i <= n; i++) if (!(i in got)) printf "%s%d", (c++ ? "," : ""), i; if (!c) printf "none" }' "$1"; }
ping_lost() { awk '/packets transmitted/ {print $1 - $4, $1; f = 1} END {if (!f) print "? ?"}' "$1"; }
stop_ping() { local f=$DIR/pids/$1.pid; [[ -e $f ]] && kill -INT "$(cat "$f")" 2>/dev/null; wait_bg_exit "$1" 5; }

# Uplink failover (issue 14). Host 1's uplink is an active-backup bond of two
# af_packet members; the switch watches their veths' kernel carrier (DPDK
# 22.11's af_packet reports no link changes). Under a 20/s ping Blue1->Blue2, a
# 20/s ping the other way and a TCP transfer Blue1->Blue2, the active member's
# datacenter end is set down, then up again (the primary returns); then again
# with only Blue2->Blue1, so that host 1 only receives. Reported per event: pings lost, and the time from the
# link change to the first answered ping after the gap (ping -D timestamps).
# bond_state: "ACTIVE FAILOVERS CARRIER_CHANGES" of host 1's uplink.
bond_state() { "$CTL" -s "$DIR/h1.sock" --json show ports 2>/dev/null | "$PYTHON" "$ROOT/scripts/testbed/failover.py" bond uplink; }
check_failover() {
    local act f0 c0 dev t1 t2 a1 f1 c1 a2 f2 c2 bw out l1 r1 l2 r2 rl1 rr1 rl2 rr2 s rcv rs rrcv
    echo "== failover: host 1's active uplink member down and back under 20/s pings Blue1<->Blue2 and TCP Blue1->Blue2"
    read -r act f0 c0 <<< "$(bond_state)"
    case $act in net_af_packet0) dev=h1 ;; net_af_packet1) dev=h1b ;; *) fail "failover: host 1's uplink is no bond with an active member ($act)"; return ;; esac
    bg fo-iperfd blue2 iperf3 -s -1 -p 5211; wait_listen blue2 5211
    bg fo-ping blue1 ping -D -n -i 0.05 -W 1 10.0.0.7
    bg fo-rping blue2 ping -D -n -i 0.05 -W 1 10.0.0.5
    sleep 1
    bg fo-iperf blue1 iperf3 -c 10.0.0.7 -p 5211 -t 8 -f m --connect-timeout 3000
    sleep 2
    t1=$(now); ip -n "$P-dc" link set "$dev" down
    sleep 3
    read -r a1 f1 c1 <<< "$(bond_state)"
    t2=$(now); ip -n "$P-dc" link set "$dev" up
    sleep 3
    read -r a2 f2 c2 <<< "$(bond_state)"
    wait_bg_exit fo-iperf 15
    stop_ping fo-ping; stop_ping fo-rping; stop_bg fo-iperfd
    bw=$(awk '/receiver/ { for (i = 1; i <= NF; i++) if ($i == "Mbits/sec") print $(i - 1) }' "$DIR/fo-iperf.out")
    out=$("$PYTHON" "$ROOT/scripts/testbed/failover.py" ping "$DIR/fo-ping.out" 0.05 "$t1" "$t2")
    { read -r l1 r1; read -r l2 r2; read -r s rcv; } <<< "$out"
    out=$("$PYTHON" "$ROOT/scripts/testbed/failover.py" ping "$DIR/fo-rping.out" 0.05 "$t1" "$t2")
    { read -r rl1 rr1; read -r rl2 rr2; read -r rs rrcv; } <<< "$out"
    local logged; logged=$(grep -c "failover .*: traffic moved" "$DIR/h1.log")
    local d1 d2; { read -r d1; read -r d2; } <<< "$("$PYTHON" "$ROOT/scripts/testbed/failover.py" log "$DIR/h1.log" "$t1" "$t2")"
    if [[ $a1 != "$act" && $a1 != - && $f1 == $((f0 + 1)) && $c1 == $((c0 + 1)) && $r1 != - && $rr1 != - ]]; then
        pass "failover: $dev down -> host 1 moved traffic from $act to $a1 (failovers $f0->$f1, carrier changes $c0->$c1) and logged it ${d1} s after the link went down; Blue1->Blue2 lost $l1 pings, first reply after the gap ${r1} s after the link went down; Blue2->Blue1 lost $rl1, ${rr1} s"
    else fail "failover: $dev down: active member $act -> $a1 (want the other), failovers $f0->$f1, carrier changes $c0->$c1; Blue1->Blue2 lost $l1, recovered '${r1}' s; Blue2->Blue1 lost $rl1, recovered '${rr1}' s"; fi
    if [[ $a2 == "$act" && $f2 == $((f1 + 1)) && $c2 == $((c1 + 1)) && $r2 != - && $rr2 != - ]]; then
        pass "failback: $dev up -> $act active again (failovers $f2, carrier changes $c2; $logged failovers logged, this one ${d2} s after the link came back); Blue1->Blue2 lost $l2 pings, first reply after the gap ${r2} s after the link came back; Blue2->Blue1 lost $rl2, ${rr2} s"
    else fail "failback: $dev up: active member $a2 (want $act), failovers $f1->$f2, carrier changes $c1->$c2; Blue1->Blue2 lost $l2, recovered '${r2}' s; Blue2->Blue1 lost $rl2, recovered '${rr2}' s"; fi
    if [[ -n $bw ]] && awk -v b="$bw" 'BEGIN {exit !(b >= 1)}'; then pass "failover: the TCP transfer Blue1->Blue2 across both link changes completed: $bw Mbit/s over 8 s"
    else fail "failover: the TCP transfer Blue1->Blue2 did not complete at >= 1 Mbit/s ('${bw:-no result}'): $(tail -3 "$DIR/fo-iperf.out" | tr '\n' ' ')"; fi
    note "uplink failover (host 1, active-backup bond of 2 af_packet veths, 20/s pings): link down: failover logged after ${d1} s, Blue1->Blue2 lost $l1, recovered ${r1} s; Blue2->Blue1 lost $rl1, recovered ${rr1} s; link back: failover logged after ${d2} s, lost $l2 / $rl2, recovered ${r2} / ${rr2} s; TCP ${bw:-failed} Mbit/s"
    # Host 1 only receiving: nothing it sends would teach the bridge that its
    # PA MAC is back on the primary's port after the failback (the bridge keeps
    # delivering to the backup's port, where an active-backup bond does not
    # receive), so the switch announces its PA with a gratuitous ARP after
    # every failover.
    local t3 t4 ol1 or1 ol2 or2 os orc garps0 garps fdb
    garps0=$(grep -c "gratuitous ARP for this host's provider addresses requested" "$DIR/h1.log")
    bg fo-oping blue2 ping -D -n -i 0.05 -W 1 10.0.0.5
    sleep 1
    t3=$(now); ip -n "$P-dc" link set "$dev" down; sleep 2
    t4=$(now); ip -n "$P-dc" link set "$dev" up; sleep 3
    stop_ping fo-oping
    out=$("$PYTHON" "$ROOT/scripts/testbed/failover.py" ping "$DIR/fo-oping.out" 0.05 "$t3" "$t4")
    { read -r ol1 or1; read -r ol2 or2; read -r os orc; } <<< "$out"
    garps=$(( $(grep -c "gratuitous ARP for this host's provider addresses requested" "$DIR/h1.log") - garps0 ))
    fdb=$(nsx dc bridge fdb show br br0 | awk -v m="${PAMAC[h1]}" '$1 == m {print $3}' | tr '\n' ' ')
    if [[ $or1 != - && $or2 != - ]] && (( garps == 2 )); then
        pass "failover with host 1 only receiving (Blue2->Blue1 20/s): $garps gratuitous ARPs requested; link down: lost $ol1, recovered ${or1} s; link back: lost $ol2, recovered ${or2} s (the bridge has host 1's PA MAC on: $fdb)"
    else fail "failover with host 1 only receiving (Blue2->Blue1 20/s): $garps gratuitous ARPs requested (want 2); link down: lost $ol1, recovered '${or1}' s; link back: lost $ol2, recovered '${or2}' s (the bridge has host 1's PA MAC on: $fdb)"; fi
    note "uplink failover, host 1 only receiving (Blue2->Blue1 20/s, gratuitous ARP): link down: lost $ol1, recovered ${or1} s; link back: lost $ol2, recovered ${or2} s"
}

# Restart survival. Host 2's switch is stopped and started again while Blue1
# pings BlueV (vhost-user) and Red1 pings Red2 (tap), 10/s each. Before that,
# hnvctl changes host 2's policy live (a record and an ACL rule that its policy
# file does not have); the restarted switch must resume with them (state
# file). The testpmd VM, the vhost-user server, is not restarted: the switch
# (client) reconnects to it. The taps die with the switch (a net_tap interface
# belongs to its process), so the new ones are plumbed into the same VM
# namespaces, as at start; a real VM's vhost-user port needs nothing.
check_restart() {
    local sock=$DIR/h2.sock state=$DIR/h2.state.toml tp old t0 t1 t2 t3 i k r d b3e fv gv fr gr lv sv lr sr ok
    echo "== restart: host 2's switch restarted under 10/s pings Blue1->BlueV (vhost-user) and Red1->Red2 (tap)"
    start_testpmd 3
    if ! until_ping blue1 10.0.0.9 20 >/dev/null; then fail "restart: BlueV does not answer before the restart"; stop_testpmd 3; return; fi
    tp=$(cat "$DIR/pids/testpmd3.pid")
    # Live changes: in host 2's state file, not in its policy file.
    if ! "$CTL" -s "$sock" record replace --ca 10.0.0.8 --vsid 5001 --mac "$BLUEK_MAC" --pa "${PA[h4]}" --no-flow-id --vm-name BlueK-live > "$DIR/ctl.out" 2>&1 ||
        ! "$CTL" -s "$sock" acl add --vsid 5002 --priority 10 --direction in --action deny --protocol icmp --dst 10.0.1.9/32 >> "$DIR/ctl.out" 2>&1; then
        fail "restart: hnvctl on host 2: $(tr '\n' ' ' < "$DIR/ctl.out")"; stop_testpmd 3; return
    fi
    cp "$state" "$DIR/h2.state.before"
    bg rsping-v blue1 ping -D -n -i 0.1 -W 1 10.0.0.9
    bg rsping-r red1 ping -D -n -i 0.1 -W 1 10.0.0.7
    sleep 1
    old=$(cat "$DIR/pids/h2.pid")
    t0=$(now)
    kill_pid "$old" 10
    t1=$(now)
    k=1; while [[ -e $DIR/h2.log.$k ]]; do k=$((k + 1)); done
    mv "$DIR/h2.log" "$DIR/h2.log.$k"
    start_switch h2
    if ! wait_switch h2; then fail "restart: host 2's switch did not start again"; stop_ping rsping-v; stop_ping rsping-r; stop_testpmd 3; return; fi
    t2=$(now)
    plumb_host h2 || fail "restart: plumbing host 2's new taps"
    t3=$(now)
    # Wait (at most 20 s) until both pings are answered by the new switch.
    for ((i = 0; i < 200; i++)); do
        [[ $(ping_after "$DIR/rsping-v.out" "$t1") != -* && $(ping_after "$DIR/rsping-r.out" "$t1") != -* ]] && break
        sleep 0.1
    done
    sleep 0.5
    stop_ping rsping-v; stop_ping rsping-r
    read -r fv gv <<< "$(ping_after "$DIR/rsping-v.out" "$t1")"; read -r lv sv <<< "$(ping_lost "$DIR/rsping-v.out")"
    read -r fr gr <<< "$(ping_after "$DIR/rsping-r.out" "$t1")"; read -r lr sr <<< "$(ping_lost "$DIR/rsping-r.out")"

    # The same policy: the log says so, the state file saved at start equals the
    # one before (but for its generation comment), hnvctl shows the live changes.
    local why=()
    grep -q "resuming with the policy saved in" "$DIR/h2.log" || why+=("no 'resuming with the policy saved in' in its log")
    cmp -s <(tail -n +2 "$DIR/h2.state.before") <(tail -n +2 "$state") || why+=("state file changed: $(diff <(tail -n +2 "$DIR/h2.state.before") <(tail -n +2 "$state") | head -4 | tr '\n' ' ')")
    # (read whole: with pipefail, `hnvctl | grep -q` fails when grep exits before hnvctl's last write)
    local out
    out=$("$CTL" -s "$sock" show records 2>&1); grep -q "BlueK-live" <<< "$out" || why+=("hnvctl show records has no BlueK-live")
    out=$("$CTL" -s "$sock" --json show acl 2>&1); grep -q '"dst": "10.0.1.9/32"' <<< "$out" || why+=("hnvctl show acl has no rule for 10.0.1.9/32")
    if (( ${#why[@]} == 0 )); then pass "host 2 resumed from its state file: the record (BlueK renamed BlueK-live) and ACL rule (VSID 5002 in deny icmp to 10.0.1.9) set live with hnvctl are in force, and the state file it saved at start equals the one before the restart"
    else fail "host 2 did not resume with the policy in force before the restart: $(IFS=';'; echo "${why[*]}")"; fi
    b3e=$(snmp blue3 Icmp InEchos)
    r=$(pings blue1 10.0.1.9 2)
    d=$(( $(snmp blue3 Icmp InEchos) - b3e ))
    "$CTL" -s "$sock" acl remove --vsid 5002 --priority 10 > "$DIR/ctl.out" 2>&1
    local r2; r2=$(pings blue1 10.0.1.9 3)
    if (( r == 0 && d == 0 && r2 >= 2 )); then pass "the live ACL rule still denies after the restart: Blue1->Blue3 0/2, Blue3 received 0; removed with hnvctl: $r2/3"
    else fail "live ACL rule after the restart: Blue1->Blue3 $r/2, Blue3 received $d (want 0, 0); after its removal $r2/3 (want >=2)"; fi
    "$CTL" -s "$sock" record replace --ca 10.0.0.8 --vsid 5001 --mac "$BLUEK_MAC" --pa "${PA[h4]}" --no-flow-id --vm-name BlueK > "$DIR/ctl.out" 2>&1 || fail "restart: hnvctl could not undo the record change: $(tr '\n' ' ' < "$DIR/ctl.out")"

    local timing="old switch stopped in $(since "$t0" "$t1") s, new one polling $(since "$t1" "$t2") s later, taps plumbed after $(since "$t2" "$t3") s"
    if [[ $fv != - ]] && alive "$tp" && [[ $(cat "$DIR/pids/testpmd3.pid") == "$tp" ]]; then
        pass "vhost-user VM reconnected without a restart (testpmd pid $tp, the vhost-user server): Blue1->BlueV lost $lv of $sv pings at 10/s, longest silence ${gv} s, first reply ${fv} s after the old switch exited"
    else fail "vhost-user VM after the switch restart: first reply '${fv}' s, testpmd pid $tp alive: $(alive "$tp" && echo yes || echo no); lost $lv of $sv"; fi
    if [[ $fr != - ]]; then pass "tap VM Red2 after the switch restart: Red1->Red2 lost $lr of $sr pings at 10/s, longest silence ${gr} s, first reply ${fr} s after the old switch exited"
    else fail "tap VM Red2: no reply within 20 s of the switch restart (lost $lr of $sr)"; fi
    note "restart of host 2 ($timing): Blue1->BlueV (vhost-user) lost $lv of $sv pings at 10/s (longest silence ${gv} s), Red1->Red2 (tap) lost $lr of $sr (${gr} s)"
    stop_testpmd 3
}

# Path MTU (README "Path MTU"): the fabric between host 1 and Blue2's host is
# lowered to 1500 (both veth ends, and each switch's uplink `mtu` in its policy
# file, applied with SIGHUP), the VMs keep 1500, so NVGRE carries at most 1458
# bytes of tenant IP. A DF ping of 1472 bytes (1500 on the wire) must come back
# as "Frag needed and DF set (mtu = 1458)" from the subnet gateway, a 1430-byte
# one (1458) must pass, and iperf3 must complete after PMTU discovery. The
# MTUs, policies and the VMs' route caches are restored afterwards.
set_fabric_mtu() { # set_fabric_mtu MTU HOST...: veth ends and switch policies, then SIGHUP and wait for the reload
    local mtu=$1 h i pids=() ok; shift
    local -A g0
    for h in "$@"; do
        ip -n "$P-$h" link set uplink mtu "$mtu"; ip -n "$P-dc" link set "$h" mtu "$mtu"
        ip -n "$P-$h" link set uplink2 mtu "$mtu"; ip -n "$P-dc" link set "${h}b" mtu "$mtu"   # the bond's backup member
        "$BIN" derive-policy --from "$DIR/$h.toml" --mtu "uplink=$mtu" --out "$DIR/$h.toml" || return 1
        g0[$h]=$(grep -c "policy reloaded" "$DIR/$h.log"); pids+=("$(cat "$DIR/pids/$h.pid")")
    done
    kill -HUP "${pids[@]}"
    for ((i = 0; i < 100; i++)); do
        ok=1; for h in "$@"; do (( $(grep -c "policy reloaded" "$DIR/$h.log") > ${g0[$h]} )) || ok=0; done
        (( ok )) && return 0; sleep 0.1
    done
    return 1
}
# too_big_sent H: host H's ICMP too-big errors sent so far (hnvctl), or "?".
too_big_sent() { "$CTL" -s "$DIR/$1.sock" --json show counters 2>/dev/null | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["data"]["too_big_sent"])' 2>/dev/null || echo "?"; }
# delta A B: B - A when both are numbers, else "?".
delta() { [[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]] && echo $(( $2 - $1 )) || echo "?"; }

check_pmtu() {
    local at out big small bw pmtu sent0 sent1 sent2
    at=$(cat "$DIR/blue2.at")
    echo "== path MTU: fabric MTU 1500 between host 1 and $at (switch uplinks 1500), VM MTU 1500: NVGRE leaves 1458 for tenant IP"
    if ! set_fabric_mtu 1500 h1 "$at"; then fail "path MTU: the switches did not reload with uplink MTU 1500"; set_fabric_mtu 1600 h1 "$at"; return; fi
    nsx blue1 ip route flush cache
    sent0=$(too_big_sent h1)
    out=$(nsx blue1 timeout 10 ping -n -c 2 -i 0.5 -W 1 -M do -s 1472 10.0.0.7 2>&1); echo "$out" > "$DIR/pmtu-ping-big.out"
    big=$(grep -m1 -E "mtu ?= ?1458" <<< "$out")
    # (-W 3: on a loaded machine a reply can take longer than a second)
    small=$(nsx blue1 timeout 20 ping -n -q -c 5 -i 0.3 -W 3 -M do -s 1430 10.0.0.7 2>/dev/null | awk '/packets transmitted/ {print $4; f = 1} END {if (!f) print 0}')
    sent1=$(too_big_sent h1)
    if [[ -n $big ]] && grep -q "^From 10.0.0.1 " <<< "$out" && (( small >= 3 )); then
        pass "DF ping Blue1->Blue2 of 1472 bytes: '$(sed -E 's/^ +//' <<< "$big")'; of 1430 bytes (1458 on the wire): $small/5 replies; host 1 sent $(delta "$sent0" "$sent1") ICMP too-big"
        note "path MTU: DF ping of 1472 bytes answered '$(sed -E 's/^From [^ ]+ icmp_seq=[0-9]+ //' <<< "$big")' by the switch (from 10.0.0.1), 1430 bytes passes"
    else
        fail "DF ping of 1472 bytes: $(tr '\n' ' ' < "$DIR/pmtu-ping-big.out" | cut -c1-300) (want 'From 10.0.0.1 ... mtu = 1458'); of 1430 bytes: $small/5 replies (want >= 3)"
    fi
    # TCP from a clean route cache: the first full-size segments meet the switch's ICMP, the kernel learns 1458.
    nsx blue1 ip route flush cache
    bg iperf-pmtu blue2 iperf3 -s -p 5202; wait_listen blue2 5202
    bw=$(iperf blue1 10.0.0.7 5202)
    sent2=$(too_big_sent h1)
    pmtu=$(nsx blue1 ip route get 10.0.0.7 | grep -o "mtu [0-9]*" | awk '{print $2}')
    stop_bg iperf-pmtu
    if [[ -n $bw && $pmtu == 1458 ]]; then
        pass "TCP Blue1->Blue2 over the 1500-byte fabric: $bw Mbit/s after PMTU discovery (Blue1's route learned mtu $pmtu; host 1 sent $(delta "$sent1" "$sent2") ICMP too-big during the transfer)"
        note "path MTU: iperf3 Blue1->Blue2 with fabric MTU 1500 and VM MTU 1500: $bw Mbit/s, PMTU learned $pmtu"
    else
        fail "TCP over the 1500-byte fabric: '${bw:-no result}' Mbit/s, Blue1's learned route MTU '${pmtu:-none}' (want a result and 1458)"
    fi
    set_fabric_mtu 1600 h1 "$at" || fail "path MTU: the switches did not reload with uplink MTU 1600 again"
    nsx blue1 ip route flush cache; nsx blue2 ip route flush cache
}

# Live migration with the switch as it is: ports are fixed until restart, and
# policy validation requires a VM port's MAC to have a lookup record on THIS
# host ("pa must be one of this host's provider addresses"), so a destination
# port cannot be pre-created with the VM's identity while the record still
# names the source host. The testbed therefore keeps Blue2's port on both hosts
# and "parks" the one not in use (placeholder MAC, no addresses); the reload
# that moves the record also swaps which port is parked (a reload may change a
# port's MAC and addresses, only name/devargs/role are fixed).
#
# migrate FROM TO: Blue2 resumes on host TO; every host's policy says so; SIGHUP.
migrate() {
    local from=$1 to=$2 old new h
    [[ $from == h2 ]] && { old=eth0; new=eth1; } || { old=eth1; new=eth0; }
    write_policies "$to" || return 1
    nsx blue2 ip link set "$old" down
    nsx blue2 ip addr flush dev "$old"
    nsx blue2 ip addr add 10.0.0.7/24 dev "$new"
    nsx blue2 ip link set "$new" up
    nsx blue2 ip route replace default via 10.0.0.1 dev "$new"
    # The two hosts of the move learn it at once; the senders' policy arrives
    # $SENDER_DELAY s later, so meanwhile their traffic rides on the old host's
    # grace forwarding and its MS-NVGREE REDIRECT.
    kill -HUP "$(cat "$DIR/pids/$from.pid")" "$(cat "$DIR/pids/$to.pid")"
    sleep "$SENDER_DELAY"
    for h in "${SWITCHES[@]}"; do [[ $h == "$from" || $h == "$to" ]] || kill -HUP "$(cat "$DIR/pids/$h.pid")"; done
}

check_migration() {
    local from to tx rx lost reloaded=0 h ifn before after r
    from=$(cat "$DIR/blue2.at"); [[ $from == h2 ]] && to=h3 || to=h2
    [[ $to == h3 ]] && ifn=eth1 || ifn=eth0
    echo "== live migration: Blue2 from $from (${PA[$from]}) to $to (${PA[$to]}) under a 20/s ping from Blue1"
    before=$(nsx blue2 cat /sys/class/net/$ifn/statistics/rx_packets)
    local -A g0
    for h in "${SWITCHES[@]}"; do g0[$h]=$(grep -c "policy reloaded" "$DIR/$h.log"); done
    local red0; red0=$(grep -c "MS-NVGREE redirect from .*: applied" "$DIR/h1.log")
    bg migping blue1 ping -n -i 0.05 -c 160 -W 1 10.0.0.7
    sleep 3
    migrate "$from" "$to" || { fail "migration: the migrated policy is invalid"; return; }
    wait_bg_exit migping 20
    for h in "${SWITCHES[@]}"; do (( $(grep -c "policy reloaded" "$DIR/$h.log") > ${g0[$h]} )) && reloaded=$((reloaded + 1)); done
    local redirects=$(( $(grep -c "MS-NVGREE redirect from .*: applied" "$DIR/h1.log") - red0 ))
    tx=$(awk '/packets transmitted/ {print $1}' "$DIR/migping.out"); rx=$(awk '/packets transmitted/ {print $4}' "$DIR/migping.out")
    lost=$(( ${tx:-0} - ${rx:-0} ))
    r=$(pings blue1 10.0.0.7 5)
    after=$(nsx blue2 cat /sys/class/net/$ifn/statistics/rx_packets)
    local gap; gap=$(awk -F'icmp_seq=' '/icmp_seq=/ { split($2, a, " "); s = a[1]; if (p && s - p - 1 > g) g = s - p - 1; p = s } END {print g + 0}' "$DIR/migping.out")
    if (( r >= 4 && after > before && reloaded == ${#SWITCHES[@]} )); then
        pass "live migration $from->$to: ping Blue1->Blue2 lost $lost of ${tx:-0} (20/s; longest gap $gap), $reloaded switches reloaded (host 1 ${SENDER_DELAY}s late), host 1 applied $redirects REDIRECT(s), afterwards $r/5 replies via Blue2's $to port"
        note "live migration $from->$to: $lost of ${tx:-0} pings lost at 20/s (longest gap $gap pings = $((gap * 50)) ms); sender's policy ${SENDER_DELAY}s late, $redirects REDIRECT(s) applied by host 1"
    else
        fail "live migration $from->$to: afterwards $r/5 replies, Blue2 $ifn rx $before->$after, $reloaded/${#SWITCHES[@]} switches reloaded; lost $lost of ${tx:-0}"
    fi
}

switch_alive() {
    local h ok=1
    for h in "${SWITCHES[@]}"; do
        alive "$(cat "$DIR/pids/$h.pid" 2>/dev/null)" || { fail "switch $h is not running: $(tail -3 "$DIR/$h.log" | tr '\n' ' ')"; ok=0; }
    done
    return $(( 1 - ok ))
}

check() {
    [[ -d $DIR/pids ]] || die "the testbed is not up (no $DIR); run: $0 up"
    local t0=$SECONDS
    switch_alive || { echo "SUMMARY: testbed is broken"; return 1; }
    check_tenants
    check_failover
    check_routing
    check_kernel
    check_ovs
    check_switchover
    check_kernel_vxlan
    check_vhost
    check_restart
    check_pmtu
    check_migration
    switch_alive
    echo "== numbers"
    local n; for n in "${RESULTS[@]}"; do echo "  $n"; done
    echo "SUMMARY: $PASSES passed, $FAILS failed, $SKIPS skipped ($((SECONDS - t0)) s)"
    (( FAILS == 0 ))
}

# Print the end of each switch's report (it prints counters when it stops).
reports() {
    local h
    for h in "${SWITCHES[@]}"; do
        [[ -e $DIR/$h.log ]] || continue
        echo "---- $h: drops by reason (final report)"
        sed -n '/^drops by reason:/,$p' "$DIR/$h.log" | head -40
    done
}

run() {
    local rc
    trap on_signal INT TERM
    trap down_verbose EXIT
    up || exit 1
    # check runs in the background so that a signal is acted on at once: bash
    # defers traps until a foreground command ends, while `wait` returns early.
    check & CHECK_PID=$!
    wait "$CHECK_PID"; rc=$?
    CHECK_PID=
    exit $rc
}
on_signal() {
    trap - INT TERM
    echo "testbed: interrupted, tearing down" >&2
    [[ -n ${CHECK_PID:-} ]] && kill -TERM "$CHECK_PID" 2>/dev/null
    exit 130
}
down_verbose() {
    local rc=$?
    # Stop the switches first so that their final counters reach the logs.
    if [[ -d $DIR/pids ]]; then
        for h in "${SWITCHES[@]}"; do [[ -e $DIR/pids/$h.pid ]] && kill_pid "$(cat "$DIR/pids/$h.pid")" 10; done
        (( rc != 0 )) && reports
    fi
    down
    log "down: clean"
}

case "${1:-}" in
    up) up ;;
    check) check ;;
    down) down; log "down: clean" ;;
    run) run ;;
    *) echo "usage: $0 up|check|down|run" >&2; exit 2 ;;
esac
