#!/usr/bin/env bash
# Install what hnvswitch needs on Debian 12, idempotently, and reserve 2 MiB
# hugepages where the machine allows (falling back to --no-huge otherwise).
# Usage: scripts/setup.sh [--with-test-tools] [--with-package-tools]
set -euo pipefail
# The Debian package (scripts/package.sh): cargo-deb from crates.io, pinned.
CARGO_DEB_VERSION=3.8.0

# protoc and the well-known .proto files: the etcd-client crate compiles etcd's API at build time.
PKGS=(dpdk dpdk-dev libdpdk-dev libclang-dev pkg-config protobuf-compiler libprotobuf-dev)
# Bonded uplinks (net_bonding, linked for its member queries) and uplinks inside a VM (virtio).
PKGS+=(librte-net-bond23 librte-net-virtio23 librte-net-vhost23)
if [[ " $* " == *" --with-package-tools "* ]]; then
    # systemd-analyze verifies the unit; man -w finds the pages; prometheus (promtool and
    # a server) evaluates the Grafana dashboard's queries against the installed switch.
    PKGS+=(systemd man-db curl prometheus)
fi
if [[ " $* " == *" --with-test-tools "* ]]; then
    # etcd-server/etcd-client: the etcd tests start their own etcd on free loopback ports;
    # openssl: they make a throwaway CA and certificates for etcd over mutual TLS;
    # python3-matplotlib: the cost-curve plot (scripts/cost-curve.sh);
    # openvswitch-switch-dpdk: the testbed's independent NVGRE peer (host 6, its own
    # private ovsdb-server/ovs-vswitchd; the system OVS service is never used) and
    # scripts/compare-ovs.sh.
    PKGS+=(tshark valgrind iproute2 python3 python3-matplotlib iperf3 iputils-ping ethtool etcd-server etcd-client openssl
           openvswitch-switch-dpdk)
fi

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture; answer no without a prompt.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
    # iperf3 asks whether to start a daemon; the testbed starts its own servers.
    echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections 2>/dev/null || true
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "setup: packages already installed"
fi

if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found; install the Rust toolchain (rustup) first" >&2
    exit 1
fi

if [[ " $* " == *" --with-package-tools "* ]] && [[ "$(cargo deb --version 2>/dev/null)" != *" $CARGO_DEB_VERSION"* ]]; then
    echo "setup: installing cargo-deb $CARGO_DEB_VERSION (cargo install, a few minutes)"
    cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
fi

# Hugepages: best effort. The switch uses them when enough are free, else --no-huge.
want=${HNV_HUGEPAGES:-512}
nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
if [[ -w $nr ]]; then
    have=$(cat "$nr")
    if (( have < want )); then
        echo "$want" > "$nr" 2>/dev/null || true
    fi
    mountpoint -q /dev/hugepages 2>/dev/null || { mkdir -p /dev/hugepages && mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages 2>/dev/null; } || true
fi
free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)
if mountpoint -q /dev/hugepages 2>/dev/null && (( free > 0 )); then
    echo "setup: $free free 2 MiB hugepages on /dev/hugepages"
else
    echo "setup: no hugepages available; hnvswitch will run with --no-huge"
fi
