#!/usr/bin/env bash
# The Debian package, end to end on this machine (CI step of scripts/test.sh):
# build it (scripts/package.sh), install it with dpkg -i, check every file
# (binaries, man pages with man -w, completions, conffiles, the unit with
# systemd-analyze verify), run the installed switch on the installed example
# configuration (net_ring ports; hnvctl on its default socket; the metrics
# scraped, and every query of the Grafana dashboard evaluated by a
# Prometheus scraping it), stop it with SIGTERM as systemd would, then
# dpkg -r and dpkg --purge and check that nothing is left behind.
# There is no systemd as PID 1 here, so the unit is verified, not started.
# Usage: scripts/package-test.sh [--no-build]   (--no-build: release binaries already built)
# HNV_PKG_DEB=FILE tests that package instead of building one. Refuses to run where
# hnvswitch is already installed (HNV_PKG_TEST_REPLACE=1 to purge it first).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-package-tools

fail() { echo "package-test: FAIL: $*" >&2; exit 1; }
ok() { echo "package-test: ok: $*"; }
installed() { dpkg-query -W -f='${Status}' hnvswitch 2>/dev/null | grep -q "ok installed"; }
known() { dpkg-query -W -f='${Status}' hnvswitch 2>/dev/null | grep -qv "not-installed"; }

if known; then
    [[ ${HNV_PKG_TEST_REPLACE:-0} == 1 ]] || fail "a hnvswitch package is already on this machine ($(dpkg-query -W -f='${Status}' hnvswitch)); HNV_PKG_TEST_REPLACE=1 purges it first"
    dpkg --purge hnvswitch >/dev/null
fi
for p in /etc/hnvswitch /var/lib/hnvswitch /run/hnvswitch; do
    [[ ! -e $p ]] || fail "$p exists but no hnvswitch package is installed: remove it first"
done

tmp=$(mktemp -d /tmp/hnv-pkg-test.XXXXXX)
switch_pid= prom_pid=
cleanup() {
    local rc=$?
    for pid in $switch_pid $prom_pid; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    if known; then dpkg --purge hnvswitch >/dev/null 2>&1 || true; fi
    rm -rf "$tmp"
    ((rc == 0)) || echo "package-test: failed; the package was purged and $tmp removed" >&2
}
trap cleanup EXIT

echo "== package: build"
if [[ -n ${HNV_PKG_DEB:-} ]]; then
    deb=$HNV_PKG_DEB   # an already built package
else
    deb=$(scripts/package.sh "$@" | tail -n 1)
fi
[[ -f $deb ]] || fail "scripts/package.sh did not make a .deb"
ok "built $deb ($(du -h "$deb" | cut -f1))"

echo "== package: contents and control data"
dpkg-deb -e "$deb" "$tmp/control"
conffiles=$(cat "$tmp/control/conffiles")
for f in /etc/hnvswitch/hnvswitch.toml /etc/hnvswitch/policy.toml /etc/default/hnvswitch; do
    grep -qx "$f" <<<"$conffiles" || fail "$f is not a conffile: $conffiles"
done
depends=$(dpkg-deb -f "$deb" Depends)
for d in librte-eal23 librte-ethdev23 librte-net-ring23; do
    [[ $depends == *"$d"* ]] || fail "Depends lacks $d: $depends"
done
ok "conffiles and Depends ($depends)"

echo "== package: dpkg -i"
dpkg -i "$deb" >"$tmp/dpkg-i.log" 2>&1 || { cat "$tmp/dpkg-i.log" >&2; fail "dpkg -i"; }
installed || fail "dpkg says hnvswitch is not installed"
dpkg -L hnvswitch | sort >"$tmp/files"
for f in /usr/bin/hnvswitch /usr/bin/hnvctl /usr/libexec/hnvswitch/hnvswitch-hugepages; do
    [[ -x $f ]] || fail "$f is not installed executable"
done
/usr/bin/hnvswitch --version | grep -q "^hnvswitch " || fail "hnvswitch --version"
/usr/bin/hnvctl --version | grep -q "^hnvctl " || fail "hnvctl --version"
for page in hnvswitch hnvswitch-run hnvswitch-check hnvctl hnvctl-show hnvctl-port-add hnvctl-capture-start; do
    where=$(man -w "$page" 2>/dev/null) || fail "man -w $page finds no page"
    [[ $where == /usr/share/man/man1/$page.1.gz ]] || fail "man -w $page: $where"
    MANPAGER=cat man "$page" >"$tmp/man.txt" 2>/dev/null && grep -q "^NAME" "$tmp/man.txt" || fail "man $page does not render"
done
for c in /usr/share/bash-completion/completions/hnvswitch /usr/share/bash-completion/completions/hnvctl \
         /usr/share/zsh/vendor-completions/_hnvswitch /usr/share/zsh/vendor-completions/_hnvctl \
         /usr/share/fish/vendor_completions.d/hnvswitch.fish /usr/share/fish/vendor_completions.d/hnvctl.fish; do
    [[ -s $c ]] || fail "completion $c missing or empty"
done
# bash loads it and completes subcommands.
words=$(bash -c 'source /usr/share/bash-completion/completions/hnvctl; COMP_WORDS=(hnvctl sh); COMP_CWORD=1; COMP_LINE="hnvctl sh"; COMP_POINT=9; _hnvctl hnvctl sh hnvctl; echo "${COMPREPLY[*]}"')
[[ $words == *show* ]] || fail "bash completion of 'hnvctl sh': '$words'"
for f in /etc/hnvswitch/hnvswitch.toml /etc/hnvswitch/policy.toml /etc/default/hnvswitch \
         /usr/lib/systemd/system/hnvswitch.service /usr/share/hnvswitch/grafana/hnvswitch.json \
         /usr/share/doc/hnvswitch/operations.md /usr/share/doc/hnvswitch/copyright; do
    [[ -s $f ]] || fail "$f missing or empty"
done
status=$(dpkg-query -W -f='${Conffiles}' hnvswitch)
for f in /etc/hnvswitch/hnvswitch.toml /etc/hnvswitch/policy.toml /etc/default/hnvswitch; do
    [[ $status == *"$f "* ]] || fail "dpkg does not track $f as a conffile"
done
# Not enabled or started by the package: the operator does that.
[[ ! -e /etc/systemd/system/multi-user.target.wants/hnvswitch.service ]] || fail "the package enabled the unit"
ok "$(wc -l <"$tmp/files") paths installed: binaries, $(grep -c '/man1/' "$tmp/files") man pages (man -w), completions for bash/zsh/fish, conffiles, unit, dashboard"

echo "== package: systemd-analyze verify"
verify=$(systemd-analyze verify /usr/lib/systemd/system/hnvswitch.service 2>&1) || { echo "$verify" >&2; fail "systemd-analyze verify"; }
if grep -i "hnvswitch" <<<"$verify"; then fail "systemd-analyze verify warns about the unit"; fi
ok "systemd-analyze verify: clean"

echo "== package: the installed switch on the installed example configuration"
/usr/bin/hnvswitch check /etc/hnvswitch/policy.toml || fail "hnvswitch check on the example policy"
# The hugepage helper never lowers the reservation, and says what it did.
nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
if [[ -r $nr ]]; then
    before=$(cat "$nr")
    HNV_HUGEPAGES=$before /usr/libexec/hnvswitch/hnvswitch-hugepages 2>"$tmp/huge.log"
    [[ $(cat "$nr") == "$before" ]] || fail "hnvswitch-hugepages changed nr_hugepages from $before"
    grep -q "^<[46]>hnvswitch-hugepages: " "$tmp/huge.log" || fail "hnvswitch-hugepages: $(cat "$tmp/huge.log")"
fi
metrics=$(sed -n 's/^metrics = "\(.*\)".*/\1/p' /etc/hnvswitch/hnvswitch.toml)
[[ -n $metrics ]] || fail "the example configuration has no metrics address"
if (exec 3<>"/dev/tcp/${metrics%:*}/${metrics#*:}") 2>/dev/null; then
    fail "something already listens on $metrics (the example's metrics address)"
fi
# As the unit runs it: its environment file, and JOURNAL_STREAM naming stderr's device and
# inode as systemd does for a stream to the journal (a file stands in for the journal here).
: >"$tmp/switch.err"
# Also in the part of the unit's sandbox that can be had without systemd, so that DPDK
# failing under it fails here: CapabilityBoundingSet and NoNewPrivileges (setpriv), and
# in a private mount namespace ProtectSystem=full, ProtectHome=read-only and
# ProtectKernelTunables=yes (read-only bind mounts).
unit=/usr/lib/systemd/system/hnvswitch.service
for d in NoNewPrivileges=yes ProtectSystem=full ProtectHome=read-only ProtectKernelTunables=yes; do
    grep -qx "$d" "$unit" || fail "the unit no longer says $d: update the emulation here"
done
bounding=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ \+/,/g')
[[ -n $bounding ]] || fail "the unit has no CapabilityBoundingSet"
readonly_paths="/usr /boot /etc /home /root /run/user /sys /proc/sys"
(set -a; . /etc/default/hnvswitch; set +a; export JOURNAL_STREAM=$(stat -c '%d:%i' "$tmp/switch.err")
    exec unshare --mount --propagation private -- sh -c '
        for d in '"$readonly_paths"'; do
            [ -d "$d" ] || continue
            mount --bind "$d" "$d" && mount -o remount,bind,ro "$d" || exit 97
        done
        exec setpriv --bounding-set "-all,$0" --no-new-privs "$@"' "$bounding" \
        /usr/bin/hnvswitch run --config /etc/hnvswitch/hnvswitch.toml) \
    >"$tmp/switch.out" 2>>"$tmp/switch.err" &
switch_pid=$!
sock=/run/hnvswitch/hnvswitch.sock
for _ in $(seq 300); do
    [[ -S $sock ]] && curl -sf "http://$metrics/metrics" -o /dev/null && break
    kill -0 "$switch_pid" 2>/dev/null || { cat "$tmp/switch.out" "$tmp/switch.err" >&2; fail "the switch exited while starting"; }
    sleep 0.1
done
[[ -S $sock ]] || fail "no control socket at $sock"
[[ $(stat -c %a /run/hnvswitch) == 700 && $(stat -c %a "$sock") == 600 ]] || fail "control socket modes: $(stat -c '%a %n' /run/hnvswitch "$sock")"
# hnvctl's default socket is the example's.
# (the port rows appear with the first report tick after start)
for _ in $(seq 50); do
    /usr/bin/hnvctl show ports >"$tmp/ports.txt" || fail "hnvctl show ports"
    grep -qw red1 "$tmp/ports.txt" && break
    sleep 0.1
done
for p in uplink blue1 red1; do grep -qw "$p" "$tmp/ports.txt" || fail "hnvctl show ports lacks $p: $(cat "$tmp/ports.txt")"; done
/usr/bin/hnvctl --json show workers >"$tmp/workers.json" && grep -q busy "$tmp/workers.json" || fail "hnvctl show workers"
[[ -s /var/lib/hnvswitch/state.toml ]] || fail "no state file in /var/lib/hnvswitch"
want=$(setpriv --bounding-set "-all,$bounding" grep CapBnd /proc/self/status)
[[ $(grep CapBnd "/proc/$switch_pid/status") == "$want" ]] \
    || fail "the switch does not run with the unit's capability bounding set ($want): $(grep CapBnd "/proc/$switch_pid/status")"
[[ $(nsenter -t "$switch_pid" -m sh -c '[ -w /usr ] || [ -w /proc/sys/kernel ] && echo rw || echo ro') == ro ]] || fail "/usr or /proc/sys is writable to the switch"
[[ -w /usr ]] || fail "the host's /usr became read-only"
ok "running with the unit's capabilities ($bounding) and read-only $readonly_paths: control socket $sock (hnvctl show ports), state file /var/lib/hnvswitch/state.toml"

echo "== package: metrics and the Grafana dashboard"
curl -sf "http://$metrics/metrics" >"$tmp/scrape.txt" || fail "scraping $metrics"
grep -q '^hnv_worker_busy_cycles_total{worker="0"} ' "$tmp/scrape.txt" || fail "no per-worker metrics in the scrape"
grep -q '^hnv_port_rx_packets_total{port="uplink"} ' "$tmp/scrape.txt" || fail "no per-port metrics in the scrape"
prom_url=
if command -v prometheus >/dev/null; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat >"$tmp/prometheus.yml" <<EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: hnvswitch
    static_configs: [{targets: ["$metrics"]}]
EOF
    promtool check config "$tmp/prometheus.yml" >/dev/null || fail "promtool check config"
    prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" --web.listen-address="127.0.0.1:$port" \
        --log.level=warn >"$tmp/prometheus.log" 2>&1 &
    prom_pid=$!
    prom_url=http://127.0.0.1:$port
    # Enough samples for rate() over 5 s.
    for _ in $(seq 200); do
        n=$(curl -sf "$prom_url/api/v1/query?query=count_over_time(hnv_policy_generation%5B1m%5D)" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)' 2>/dev/null || echo 0)
        ((n >= 7)) && break
        kill -0 "$prom_pid" 2>/dev/null || { cat "$tmp/prometheus.log" >&2; fail "prometheus exited"; }
        sleep 0.25
    done
    ((n >= 7)) || fail "prometheus has $n samples of the switch after 50 s"
else
    echo "package-test: prometheus not installed: the dashboard's queries are checked against the scrape only"
fi
HNV_METRICS_SCRAPE=$tmp/scrape.txt HNV_PROMETHEUS_URL=$prom_url /usr/bin/python3 -m unittest discover -s scripts/bench -p test_grafana.py 2>"$tmp/dash.log" \
    || { cat "$tmp/dash.log" >&2; fail "the Grafana dashboard against the running switch"; }
grep -q "skipped=1" "$tmp/dash.log" && [[ -n $prom_url ]] && { cat "$tmp/dash.log" >&2; fail "a dashboard check was skipped"; }
ok "the dashboard's metrics and labels are in the live scrape${prom_url:+, and Prometheus evaluates every query}"
if [[ -n $prom_pid ]]; then kill -TERM "$prom_pid"; wait "$prom_pid" 2>/dev/null || true; prom_pid=; fi

echo "== package: stop (SIGTERM, as systemctl stop)"
kill -TERM "$switch_pid"
rc=0
wait "$switch_pid" || rc=$?
switch_pid=
((rc == 0)) || { cat "$tmp/switch.err" >&2; fail "the switch exited $rc on SIGTERM"; }
grep -q "final port counters" "$tmp/switch.out" || fail "no final counters on stdout: $(tail -5 "$tmp/switch.out")"
# Journal form: every log line starts with a syslog priority, none with a timestamp.
grep -q '^<6>hnvswitch' "$tmp/switch.err" || fail "no <6> info lines: $(head -3 "$tmp/switch.err")"
if grep -E '^\[[0-9]{4}-' "$tmp/switch.err"; then fail "timestamped log lines in journal form"; fi
eal=$(sed -n 's/^<6>[a-z_:]*: EAL arguments: //p' "$tmp/switch.err")
[[ -n $eal ]] || fail "no EAL arguments line in the log"
ok "stopped cleanly; $(grep -c '^<[0-7]>' "$tmp/switch.err") log lines with <N> priorities; EAL: $eal"

echo "== package: reinstall over it (an upgrade keeps the operator's edits to conffiles)"
echo "# edited by package-test" >>/etc/hnvswitch/hnvswitch.toml
dpkg -i "$deb" >"$tmp/dpkg-i2.log" 2>&1 </dev/null || { cat "$tmp/dpkg-i2.log" >&2; fail "dpkg -i over the installed package"; }
grep -qx "# edited by package-test" /etc/hnvswitch/hnvswitch.toml || fail "reinstalling replaced the edited /etc/hnvswitch/hnvswitch.toml"
[[ -s /var/lib/hnvswitch/state.toml ]] || fail "reinstalling removed the state file"
ok "reinstalled: the edited conffile and the state file stay"

echo "== package: dpkg -r, then dpkg --purge"
dpkg -r hnvswitch >"$tmp/dpkg-r.log" 2>&1 || { cat "$tmp/dpkg-r.log" >&2; fail "dpkg -r"; }
[[ ! -e /usr/bin/hnvswitch && ! -e /usr/bin/hnvctl ]] || fail "binaries left after dpkg -r"
[[ -f /etc/hnvswitch/hnvswitch.toml ]] || fail "dpkg -r removed a conffile (only --purge should)"
dpkg --purge hnvswitch >"$tmp/dpkg-purge.log" 2>&1 || { cat "$tmp/dpkg-purge.log" >&2; fail "dpkg --purge"; }
! known || fail "dpkg still knows hnvswitch: $(dpkg-query -W -f='${Status}' hnvswitch)"
# Every file the package held is gone (directories that remain are shared with other packages).
while read -r f; do
    [[ -d $f && ! -L $f ]] && continue
    [[ ! -e $f && ! -L $f ]] || fail "$f left behind"
done <"$tmp/files"
for p in /etc/hnvswitch /var/lib/hnvswitch /run/hnvswitch /usr/libexec/hnvswitch /usr/share/hnvswitch /usr/share/doc/hnvswitch \
         /etc/systemd/system/hnvswitch.service /etc/systemd/system/multi-user.target.wants/hnvswitch.service; do
    [[ ! -e $p && ! -L $p ]] || fail "$p left behind after purge"
done
man -w hnvswitch >/dev/null 2>&1 && fail "man -w hnvswitch still finds a page"
ok "removed and purged: no file, conffile, state or unit left"
echo "package-test: PASS"
