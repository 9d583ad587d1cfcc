"""Shared pieces of the benchmark scripts (scripts/compare-ovs.sh,
scripts/cost-curve.sh, scripts/perf-regression.sh): medians, the run's
metadata (date, machine, commit, toolchain, DPDK and OVS versions), the
per-second rate samples of each contender's log, and the CPU window that
records what else ran while a contender was timed.

The shell scripts only start processes; every number they report is computed
here. Only /usr/bin/python3's standard library is used.

Rate samples, per contender (the first second is a warm-up and is skipped):
  hnvswitch  the `[  t s]  port: rx X Mpps tx Y Mpps ...` lines of `hnvswitch run`;
             one sample per line = the sum of the sink ports' tx;
  testpmd    `--stats-period=1` blocks; one sample per period = the sum of every
             port's Tx-pps (only sinks send); the last, possibly cut, period skipped;
  OVS        `T COUNT` lines (time, summed sink tx counter) written by the script
             once a second; one sample per interval = delta count / delta time.
"""
import json
import math
import os
import re
import statistics
import subprocess
import time

NAN = float("nan")


def median(values):
    """Median of the finite values; NaN when there is none."""
    v = [float(x) for x in values if x is not None and not math.isnan(float(x))]
    return statistics.median(v) if v else NAN


def ratio(a, b):
    """a / b, or NaN when either is missing or b is zero."""
    if a is None or b is None or math.isnan(a) or math.isnan(b) or b == 0:
        return NAN
    return a / b


def fmt(x, digits=2):
    return "n/a" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    """'MODEL, N CPUs (C cores × S sockets, T threads per core), M GiB, kernel' from lscpu and /proc."""
    info = {}
    for line in _run(["lscpu"]).splitlines():
        k, _, v = line.partition(":")
        info[k.strip()] = v.strip()
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) / 1048576
    except OSError:
        pass
    model = info.get("Model name", "unknown CPU")
    cpus = info.get("CPU(s)", str(os.cpu_count()))
    cores = info.get("Core(s) per socket", "?")
    sockets = info.get("Socket(s)", "?")
    threads = info.get("Thread(s) per core", "?")
    return f"{model}, {cpus} CPUs ({cores} cores × {sockets} socket, {threads} thread/core), {mem:.0f} GiB, kernel {os.uname().release}"


def metadata(root, hnv=None, with_ovs=True):
    """The run's provenance as a dict (all strings)."""
    commit = _run(["git", "-C", root, "describe", "--always", "--dirty", "--abbrev=12"]) or "unknown"
    m = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "commit": commit,
        "toolchain": _run(["rustc", "-V"]) or "rustc ?",
        "dpdk": _run(["dpkg-query", "-W", "-f=${Version}", "dpdk"]) or "?",
    }
    if hnv:
        m["hnvswitch"] = _run([hnv, "--version"]).splitlines()[0] if _run([hnv, "--version"]) else "?"
    if with_ovs:
        m["ovs"] = (_run(["ovs-vswitchd", "--version"]).splitlines() or ["?"])[0]
    return m


def metadata_lines(m):
    """Markdown lines describing the run."""
    g = lambda k: m.get(k, "?")  # noqa: E731
    out = [f"- Date: {g('date')}", f"- Machine: {g('machine')}", f"- Commit: {g('commit')}" + (f" ({m['hnvswitch']})" if m.get("hnvswitch") else ""),
           f"- Toolchain: {g('toolchain')}", f"- DPDK: {g('dpdk')} (Debian)"]
    if m.get("ovs"):
        out.append(f"- OVS: {m['ovs']} (Debian openvswitch-switch-dpdk)")
    return out


# ---------------------------------------------------------------- rate samples
HNV_PORT = re.compile(r"(\S+): rx ([0-9.]+) Mpps tx ([0-9.]+) Mpps")


def hnv_samples(text, sinks):
    """Per-second Mpps: the sum of the sink ports' tx, the first second skipped."""
    out = []
    for line in text.splitlines():
        if not line.startswith("["):
            continue
        ports = {n: float(tx) for n, _, tx in HNV_PORT.findall(line)}
        if all(s in ports for s in sinks):
            out.append(sum(ports[s] for s in sinks))
    return out[1:]


def hnv_details(text):
    """(detail, problem) from hnvswitch's exit report: cycles/packet, flow cache hit rate;
    a problem when the counters do not reconcile or a packet was dropped."""
    det = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^worker +rx", line) and i + 1 < len(lines) and lines[i + 1].split():
            det.append(f"{lines[i + 1].split()[-1]} cycles/pkt")
            break
    m = re.search(r"flow cache hits ([0-9]+), misses ([0-9]+)", text)
    if m and int(m[1]) + int(m[2]) > 0:
        det.append(f"flow cache hits {100 * int(m[1]) / (int(m[1]) + int(m[2])):.1f}%")
    problem = ""
    if "reconciled" not in text:
        rec = [x for x in lines if re.match(r"^rx [0-9]+ \+ replicas", x)]
        problem = "hnvswitch counters do not reconcile: " + (rec[0] if rec else "no exit report")
    else:
        for i, line in enumerate(lines):
            if line.startswith("drops by reason"):
                block = []
                for x in lines[i + 1:]:
                    if not x.strip():
                        break
                    block.append(x.strip())
                if block != ["(none)"]:
                    problem = "hnvswitch dropped packets: " + " ".join(block)
    return ", ".join(det), problem


def testpmd_samples(text):
    """Per stats period: the sum of every port's Tx-pps in Mpps; the first and the last period skipped."""
    per, tx = 0, {}
    for line in text.splitlines():
        m = re.search(r"NIC statistics for port +([0-9]+)", line)
        if m:
            if int(m[1]) == 0:
                per += 1
            continue
        m = re.search(r"Tx-pps: +([0-9]+)", line)
        if m and per > 0:
            tx[per] = tx.get(per, 0) + int(m[1])
    return [tx[p] / 1e6 for p in range(2, per) if p in tx]


def counter_samples(text):
    """'T COUNT' lines -> Mpps per interval."""
    pts = [tuple(map(float, line.split()[:2])) for line in text.splitlines() if len(line.split()) >= 2]
    return [(c1 - c0) / (t1 - t0) / 1e6 for (t0, c0), (t1, c1) in zip(pts, pts[1:]) if t1 > t0]


# ---------------------------------------------------------------- CPU window
def _proc_ticks():
    """{pid: (utime+stime ticks, comm)} of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        o, r = s.find("("), s.rfind(")")
        f = s[r + 2:].split()
        out[int(d)] = (int(f[11]) + int(f[12]), s[o + 1:r].replace(" ", "_"))
    return out


def _thread_ticks(pid, prefix):
    s = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                if not f.read().strip().startswith(prefix):
                    continue
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                s_ = f.read()
            fl = s_[s_.rfind(")") + 2:].split()
            s += int(fl[11]) + int(fl[12])
        except OSError:
            continue
    return s


def _cpu1():
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu1 "):
                v = list(map(int, line.split()[1:]))
                return v[0] + v[1] + v[2] + v[5] + v[6], v[7]
    return 0, 0


def window_begin(pid, prefix):
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    busy, steal = _cpu1()
    return {"pid": pid, "prefix": prefix, "load1": load, "t": time.time(), "fwd": _thread_ticks(pid, prefix),
            "cpu1": busy, "steal": steal, "procs": {str(k): v for k, v in _proc_ticks().items()}}


def window_end(w, self_pid=None):
    """A one-line description: load1 before, forwarding thread %, rest of core 1, steal, busiest others."""
    hz = os.sysconf("SC_CLK_TCK")
    dt = time.time() - w["t"]
    fwd = (_thread_ticks(w["pid"], w["prefix"]) - w["fwd"]) / hz / dt * 100
    busy, steal = _cpu1()
    rest = max(0.0, (busy - w["cpu1"]) / hz / dt * 100 - fwd)
    others = []
    for pid, (ticks, comm) in _proc_ticks().items():
        old = w["procs"].get(str(pid))
        if old is None or pid in (w["pid"], self_pid, os.getpid(), os.getppid()):
            continue
        p = (ticks - old[0]) / hz / dt * 100
        if p >= 3:
            others.append((p, comm))
    others.sort(reverse=True)
    o = ", ".join(f"{c} {p:.0f}%" for p, c in others[:3]) or "none"
    return (f"load1 {w['load1']}, fwd thread {fwd:.0f}%, rest of core 1 {rest:.0f}%, "
            f"steal {(steal - w['steal']) / hz / dt * 100:.0f}%; others: {o}")


def append_jsonl(path, rec):
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(x) for x in f if x.strip()]


def _main(argv):
    """Small command line for scripts that need one figure:
      benchlib.py hnv-median LOG SINK[,SINK]   median of hnvswitch's per-second sink tx (Mpps)
      benchlib.py testpmd-median LOG           median of testpmd's per-period Tx-pps (Mpps)
      benchlib.py median [X...]                median of the arguments (or of stdin's lines)
      benchlib.py ratio A B                    A / B, two decimals (n/a when undefined)
      benchlib.py machine                      the machine line (lscpu)
    """
    import sys
    if len(argv) == 3 and argv[0] == "hnv-median":
        with open(argv[1], errors="replace") as f:
            print(fmt(median(hnv_samples(f.read(), argv[2].split(","))), 3))
    elif len(argv) == 2 and argv[0] == "testpmd-median":
        with open(argv[1], errors="replace") as f:
            print(fmt(median(testpmd_samples(f.read())), 3))
    elif argv and argv[0] == "median":
        vals = argv[1:] or sys.stdin.read().split()
        print(fmt(median([float(x) for x in vals if x not in ("n/a", "nan")]), 3))
    elif len(argv) == 3 and argv[0] == "ratio":
        a, b = (NAN if x in ("n/a", "nan") else float(x) for x in argv[1:])
        print(fmt(ratio(a, b)))
    elif argv == ["machine"]:
        print(machine())
    else:
        sys.exit(_main.__doc__)


if __name__ == "__main__":
    import sys
    _main(sys.argv[1:])
