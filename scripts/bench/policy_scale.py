#!/usr/bin/python3
"""Measurements and report of scripts/policy-scale.sh (which only starts processes).

  measure  policy_scale.py measure --raw RAW --records N --tenants T --cas C
               --pid PID --start-ns NS --socket SOCK --changes K [--stderr LOG]
           against a switch that scripts/policy-scale.sh started at NS (ns since the
           epoch) with a policy of N lookup records (T tenants of C VMs each plus the
           scenario's own) and encap traffic running:
           - startup: from NS until the control socket answers and a worker forwards
             with the first policy (show flows: policy_generation >= 1, rx rising);
           - memory: VmRSS and VmHWM of PID; the compiled tables' bytes per record
             (show tables);
           - K record changes, one at a time, each moving a tenant VM to another of
             the four remote PAs: the latency from sending the request until the
             answer (validated, compiled and published) and until every worker has
             forwarded a batch with that generation (show flows, polled);
           - forwarding during the changes: the datapath counters before and after
             (drops by reason, reconciliation), and whether any drop happened;
           - a port hot-add and its removal: the workers' pause (the switch reports it).
           Appends one JSON record to RAW.
  report   policy_scale.py report --raw RAW --out FILE.md
           the table (one row per policy size) with the issue's targets, FILE.json.
"""
import argparse
import json
import math
import os
import socket
import statistics
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

TENANT_VSID0 = 100_000
# issue 11's targets
TARGETS = {"startup_s": 5.0, "rss_mib": 1024.0, "change_p99_ms": 5.0, "pause_ms": 1.0, "table_bytes_per_record": 200.0}


def tenant_ca(k):
    """scenarios::tenant_ca: 10.128.0.2 upward."""
    n = (10 << 24 | 128 << 16) + 2 + k
    return ".".join(str(n >> s & 255) for s in (24, 16, 8, 0))


def tenant_mac(vsid, k):
    v = vsid.to_bytes(4, "big")
    kk = k.to_bytes(4, "big")
    return ":".join(f"{b:02x}" for b in (2, v[1], v[2], v[3], kk[2], kk[3]))


def tenant_pa(k, shift=0):
    return f"192.168.4.{22 + (k + shift) % 4}"


class Ctl:
    """The control protocol: one JSON request per line, one JSON answer per line."""

    def __init__(self, path, timeout=30.0):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.f = self.s.makefile("rb")

    def call(self, req):
        self.s.sendall((json.dumps(req) + "\n").encode())
        line = self.f.readline()
        if not line:
            raise RuntimeError("the switch closed the control socket")
        return json.loads(line)

    def close(self):
        self.f.close()
        self.s.close()


def percentile(xs, q):
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(q / 100.0 * len(s)) - 1))
    return s[k]


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024.0
    return out


def workers_on(ctl, generation):
    rows = ctl.call({"op": "show", "what": "flows"}).get("data") or []
    return bool(rows) and all(r.get("policy_generation", 0) >= generation for r in rows)


def wait_ready(sock, pid, start_ns, limit=120.0):
    """Seconds from start_ns until the socket answers and a worker forwards with generation 1."""
    deadline = time.time() + limit
    while time.time() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            raise RuntimeError("the switch exited during start-up")
        try:
            ctl = Ctl(sock, timeout=5.0)
        except OSError:
            time.sleep(0.005)
            continue
        while time.time() < deadline:
            if workers_on(ctl, 1):
                return (time.time_ns() - start_ns) / 1e9, ctl
            time.sleep(0.002)
    raise RuntimeError("the switch did not become ready in time")


def counters(ctl):
    return ctl.call({"op": "show", "what": "counters"}).get("data") or {}


def measure(a):
    ready_s, ctl = wait_ready(a.socket, a.pid, a.start_ns)
    time.sleep(0.5)
    mem = proc_status(a.pid)
    tables = ctl.call({"op": "show", "what": "tables"})
    rec = {"records": a.records, "tenants": a.tenants, "cas": a.cas, "startup_s": ready_s, "rss_mib": mem.get("VmRSS"), "hwm_mib": mem.get("VmHWM"), "tables": tables.get("data") if tables.get("ok") else None}
    before = counters(ctl)
    applied, forwarded, refused = [], [], []
    moved = {}
    for i in range(a.changes):
        t = (i * 7919) % a.tenants
        k = (i * 104729) % a.cas
        vsid = TENANT_VSID0 + t
        shift = moved.get((t, k), 0) + 1
        moved[(t, k)] = shift
        req = {"op": "replace_record", "record": {"ca": tenant_ca(k), "vsid": vsid, "mac": tenant_mac(vsid, k), "pa": tenant_pa(k, shift)}}
        t0 = time.perf_counter()
        resp = ctl.call(req)
        t1 = time.perf_counter()
        if not resp.get("ok"):
            refused.append(resp.get("error"))
            continue
        g = resp.get("generation") or 0
        while not workers_on(ctl, g):
            pass
        t2 = time.perf_counter()
        applied.append((t1 - t0) * 1e3)
        forwarded.append((t2 - t0) * 1e3)
    time.sleep(0.2)
    after = counters(ctl)
    rec["changes"] = len(applied)
    rec["refused"] = refused[:5]
    if applied:
        rec["applied_ms"] = {"p50": statistics.median(applied), "p99": percentile(applied, 99), "max": max(applied)}
        rec["forwarded_ms"] = {"p50": statistics.median(forwarded), "p99": percentile(forwarded, 99), "max": max(forwarded)}
    drops = {}
    for r in after.get("drop_reasons", []):
        prev = next((x["packets"] for x in before.get("drop_reasons", []) if x["reason"] == r["reason"]), 0)
        if r["packets"] != prev:
            drops[r["reason"]] = r["packets"] - prev
    rec["during_changes"] = {"rx": after.get("rx", 0) - before.get("rx", 0), "tx": after.get("tx", 0) - before.get("tx", 0), "drops": drops, "reconciles": after.get("reconciles")}
    # A port hot-add and removal: the workers' pause, as the switch reports it.
    port = {"name": "scale9", "role": "vm", "devargs": "net_null_scale9,no-rx=1", "vsid": TENANT_VSID0, "mac": "02:99:00:00:00:09", "addresses": ["10.128.250.9"]}
    record = {"ca": "10.128.250.9", "vsid": TENANT_VSID0, "mac": "02:99:00:00:00:09", "pa": "192.168.4.11"}
    t0 = time.perf_counter()
    add = ctl.call({"op": "add_port", "port": port, "records": [record]})
    rec["port_add"] = {"ok": add.get("ok"), "error": add.get("error"), "total_ms": (time.perf_counter() - t0) * 1e3, "pause_us": (add.get("data") or {}).get("pause_us") if isinstance(add.get("data"), dict) else None}
    t0 = time.perf_counter()
    rm = ctl.call({"op": "remove_port", "name": "scale9", "with_records": True})
    rec["port_remove"] = {"ok": rm.get("ok"), "error": rm.get("error"), "total_ms": (time.perf_counter() - t0) * 1e3, "pause_us": (rm.get("data") or {}).get("pause_us") if isinstance(rm.get("data"), dict) else None}
    ctl.close()
    with open(a.raw, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(json.dumps(rec, indent=1))


def fmt(v, spec="{:.2f}"):
    return "n/a" if v is None else spec.format(v)


def table_bpr(r):
    t = r.get("tables") or {}
    n = t.get("records") or 0
    return (t.get("record_bytes", 0) + t.get("map_bytes", 0)) / n if n else None


def report_lines(rows, meta):
    out = [f"# Policy at scale ({meta})", ""]
    out.append("| records | start-up s | RSS MiB (peak) | tables B/record | change applied p50 / p99 ms | until forwarded p50 / p99 ms | changes | drops during changes | port add pause µs | port remove pause µs |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: r["records"]):
        ap, fw = r.get("applied_ms") or {}, r.get("forwarded_ms") or {}
        drops = r.get("during_changes", {}).get("drops") or {}
        out.append(
            f"| {r['records']:,} | {fmt(r['startup_s'])} | {fmt(r.get('rss_mib'), '{:.0f}')} ({fmt(r.get('hwm_mib'), '{:.0f}')}) | {fmt(table_bpr(r), '{:.0f}')} "
            f"| {fmt(ap.get('p50'), '{:.3f}')} / {fmt(ap.get('p99'), '{:.3f}')} | {fmt(fw.get('p50'), '{:.3f}')} / {fmt(fw.get('p99'), '{:.3f}')} | {r.get('changes', 0)} "
            f"| {sum(drops.values()) if drops else 0} {json.dumps(drops) if drops else ''} | {fmt((r.get('port_add') or {}).get('pause_us'), '{:.0f}')} | {fmt((r.get('port_remove') or {}).get('pause_us'), '{:.0f}')} |"
        )
    out.append("")
    out.append(
        "Targets (issue 11): start-up ≤ {startup_s} s and RSS ≤ {rss_mib:.0f} MiB at 1M records; one change ≤ {change_p99_ms} ms p99; "
        "port hot-add pause ≤ {pause_ms} ms; compiled tables ≤ {table_bytes_per_record:.0f} B/record; no loss during changes.".format(**TARGETS)
    )
    big = [r for r in rows if r["records"] >= 1_000_000]
    for r in big:
        verdict = []
        verdict.append(f"start-up {'met' if r['startup_s'] <= TARGETS['startup_s'] else 'missed'} ({r['startup_s']:.2f} s)")
        if r.get("rss_mib") is not None:
            verdict.append(f"RSS {'met' if r['rss_mib'] <= TARGETS['rss_mib'] else 'missed'} ({r['rss_mib']:.0f} MiB)")
        p99 = (r.get("applied_ms") or {}).get("p99")
        if p99 is not None:
            verdict.append(f"change p99 {'met' if p99 <= TARGETS['change_p99_ms'] else 'missed'} ({p99:.3f} ms)")
        bpr = table_bpr(r)
        if bpr is not None:
            verdict.append(f"tables {'met' if bpr <= TARGETS['table_bytes_per_record'] else 'missed'} ({bpr:.0f} B/record)")
        out.append(f"At {r['records']:,} records: " + "; ".join(verdict) + ".")
    return out


def report(a):
    rows = []
    with open(a.raw) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    meta = a.meta or ""
    lines = report_lines(rows, meta)
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
        json.dump(rows, f, indent=1)
    print("\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--raw", required=True)
    m.add_argument("--records", type=int, required=True)
    m.add_argument("--tenants", type=int, required=True)
    m.add_argument("--cas", type=int, required=True)
    m.add_argument("--pid", type=int, required=True)
    m.add_argument("--start-ns", type=int, required=True)
    m.add_argument("--socket", required=True)
    m.add_argument("--changes", type=int, default=1000)
    r = sub.add_parser("report")
    r.add_argument("--raw", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--meta")
    a = p.parse_args(argv)
    {"measure": measure, "report": report}[a.cmd](a)


if __name__ == "__main__":
    main()
