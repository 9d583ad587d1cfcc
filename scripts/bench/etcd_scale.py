#!/usr/bin/python3
"""Measurements and report of scripts/etcd-scale.sh (which only starts processes).

  host2    etcd_scale.py host2 --policy IN --out OUT
           host 2's own policy file from a scenario's (host 1's): PA 192.168.4.33 instead
           of 192.168.4.11, host 1's PA as a neighbor; its ports are host 1's ports (their
           VMs are at host 1 in etcd: VMs that are elsewhere, as after a move).
  publish  etcd_scale.py publish --state S --hnvctl BIN --etcd URL --policy P --batch N --records R --tenants T
           publish P's tenant parts with `hnvctl publish --batch N`; records its duration
           and the revision in the state file S (JSON).
  startup  etcd_scale.py startup --state S --name NAME --pid PID --start-ns NS --socket SOCK
           a switch started at NS (ns since the epoch) with --etcd: seconds until its control
           socket answers, and until a worker forwards with the policy of the published
           revision (show counters: etcd_applied_revision; show flows: policy_generation);
           its VmRSS/VmHWM then.
  burst    etcd_scale.py burst --state S --raw RAW --etcd URL --moves K [--threads N] [--etcd-pid P]
           K record moves (each a tenant record put with another of the four remote PAs), put
           to etcd as fast as possible over N keep-alive HTTP connections (etcd's JSON
           gateway), one key per put: the time from the first put until each switch has
           applied the last one (show counters: etcd_applied_revision), the policy
           generations and change transactions each needed, and forwarding afterwards.
           --per-txn M: M moves per etcd transaction (one revision each) instead of one put each.
           Appends one JSON record (with the state) to RAW.
  report   etcd_scale.py report --raw RAW --out FILE.md [--meta TEXT]
"""
import argparse
import base64
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from policy_scale import TENANT_VSID0, Ctl, proc_status, tenant_ca, tenant_mac, tenant_pa, workers_on  # noqa: E402

HOST1_PA, HOST1_MAC = "192.168.4.11", "02:00:c0:a8:04:0b"
HOST2_PA, HOST2_MAC = "192.168.4.33", "02:00:c0:a8:04:21"


def host2_text(text):
    """Host 2's policy text from host 1's scenario policy (see host2)."""
    if f'address = "{HOST1_PA}"' not in text or "\n[[ports]]" not in text:
        raise ValueError("not a scenario policy of host 1")
    t = text.replace('name = "bench-host1"', 'name = "bench-host2"').replace(f'"{HOST1_PA}"', f'"{HOST2_PA}"').replace(f'"{HOST1_MAC}"', f'"{HOST2_MAC}"')
    at = t.index("\n[[ports]]")
    return t[:at] + f'\n[[host.neighbors]]\naddress = "{HOST1_PA}"\nmac = "{HOST1_MAC}"\n' + t[at:]


def moves(n, tenants, cas):
    """n distinct (vsid, k) tenant records spread over the tenants, each with its new PA."""
    if n > tenants * cas:
        raise ValueError(f"{n} moves but only {tenants * cas} tenant records")
    out = []
    for i in range(n):
        t, j = i % tenants, i // tenants
        k = (j * 104729) % cas
        out.append((TENANT_VSID0 + t, k, tenant_pa(k, 1)))
    return out


def move_kv(prefix, vsid, k, pa):
    """The lookup key and value (as `hnvctl publish` writes a record) of record k of vsid at pa."""
    ca = tenant_ca(k)
    value = json.dumps({"ca": ca, "vsid": vsid, "mac": tenant_mac(vsid, k), "pa": pa}, separators=(",", ":"))
    return f"{prefix}lookup/{vsid}/{ca}", value


def b64(s):
    return base64.b64encode(s.encode()).decode()


class Etcd:
    """etcd's JSON gateway (/v3/kv/...) over one keep-alive HTTP connection."""

    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)

    def call(self, path, body):
        self.c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = self.c.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"etcd {path}: HTTP {r.status}: {data[:200]!r}")
        return json.loads(data)

    def put(self, key, value):
        """The revision of the put."""
        return int(self.call("/v3/kv/put", {"key": b64(key), "value": b64(value)})["header"]["revision"])

    def put_all(self, kvs):
        """Put kvs in one transaction (one revision); its revision."""
        ops = [{"request_put": {"key": b64(k), "value": b64(v)}} for k, v in kvs]
        return int(self.call("/v3/kv/txn", {"success": ops})["header"]["revision"])

    def count(self, prefix):
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        r = self.call("/v3/kv/range", {"key": b64(prefix), "range_end": b64(end), "count_only": True})
        return int(r.get("count", 0)), int(r["header"]["revision"])

    def close(self):
        self.c.close()


def load_state(path):
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {}


def save_state(path, st):
    with open(path, "w") as f:
        json.dump(st, f)


def publish(a):
    st = load_state(a.state)
    t0 = time.perf_counter()
    out = subprocess.run([a.hnvctl, "publish", "--etcd", a.etcd, "--batch", str(a.batch), a.policy], capture_output=True, text=True)
    took = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"hnvctl publish: {out.stdout}{out.stderr}")
    line = out.stdout.strip().splitlines()[-1]
    rev = int(line.rsplit("(revision ", 1)[1].rstrip(")"))
    e = Etcd(a.etcd)
    keys, _ = e.count("/hnv/")
    e.close()
    st["publish"] = {"seconds": took, "revision": rev, "keys": keys, "batch": a.batch, "records": a.records, "tenants": a.tenants, "output": line}
    save_state(a.state, st)
    print(json.dumps(st["publish"]))


def counters(ctl):
    r = ctl.call({"op": "show", "what": "counters"})
    return r.get("data") or {}, r.get("generation") or 0


def startup(a, limit=300.0):
    st = load_state(a.state)
    rev = st["publish"]["revision"]
    deadline = time.time() + limit
    ctl, answered = None, None
    while ctl is None:
        if time.time() > deadline or not os.path.exists(f"/proc/{a.pid}"):
            raise RuntimeError(f"{a.name}: the switch exited or did not answer in time")
        try:
            ctl = Ctl(a.socket, timeout=30.0)
            answered = (time.time_ns() - a.start_ns) / 1e9
        except OSError:
            time.sleep(0.005)
    while True:
        if time.time() > deadline or not os.path.exists(f"/proc/{a.pid}"):
            raise RuntimeError(f"{a.name}: the etcd policy was not applied in time")
        c, g = counters(ctl)
        if c.get("etcd_applied_revision", 0) >= rev and workers_on(ctl, g):
            ready = (time.time_ns() - a.start_ns) / 1e9
            break
        time.sleep(0.005)
    mem = proc_status(a.pid)
    tables = ctl.call({"op": "show", "what": "tables"}).get("data") or {}
    ctl.close()
    st.setdefault("switches", {})[a.name] = {"socket": a.socket, "pid": a.pid, "answered_s": answered, "ready_s": ready, "generation": g, "rss_mib": mem.get("VmRSS"), "hwm_mib": mem.get("VmHWM"), "records": tables.get("records")}
    save_state(a.state, st)
    print(json.dumps({a.name: st["switches"][a.name]}))


def first_at(samples, rev):
    """The time of the first (time, applied revision) sample at or past rev, or None."""
    return next((t for t, r in samples if r >= rev), None)


def burst(a):
    st = load_state(a.state)
    sw = st["switches"]
    names = sorted(sw)
    ctls = {n: Ctl(sw[n]["socket"], timeout=30.0) for n in names}
    before = {n: counters(ctls[n]) for n in names}
    p = st["publish"]
    tenants = p["tenants"]
    todo = [move_kv("/hnv/", *m) for m in moves(a.moves, tenants, a.cas)]
    parts = [todo[i :: a.threads] for i in range(a.threads)]
    conns = [Etcd(a.etcd) for _ in parts]
    revs, errors = [], []
    go = threading.Barrier(len(parts) + 1)

    def put_all(conn, part):
        mine = []
        try:
            go.wait()
            if a.per_txn > 1:
                for i in range(0, len(part), a.per_txn):
                    mine.append(conn.put_all(part[i : i + a.per_txn]))
            else:
                for k, v in part:
                    mine.append(conn.put(k, v))
        except Exception as e:  # reported below
            errors.append(repr(e))
        revs.extend(mine)

    threads = [threading.Thread(target=put_all, args=(c, part)) for c, part in zip(conns, parts)]
    for t in threads:
        t.start()
    go.wait()
    t0 = time.perf_counter()
    samples = {n: [] for n in names}
    last = None
    deadline = t0 + a.limit
    while time.perf_counter() < deadline:
        for n in names:
            c, _ = counters(ctls[n])
            samples[n].append((time.perf_counter() - t0, c.get("etcd_applied_revision", 0)))
        if last is None and not any(t.is_alive() for t in threads):
            put_s = time.perf_counter() - t0
            last = max(revs) if revs else 0
        if last is not None and all(samples[n][-1][1] >= last for n in names):
            break
        time.sleep(0.001)
    for t in threads:
        t.join()
    for c in conns:
        c.close()
    if errors:
        raise RuntimeError(f"puts failed: {errors[:3]}")
    rec = {"moves": a.moves, "threads": a.threads, "per_txn": a.per_txn, "puts": len(revs), "put_s": put_s, "first_revision": min(revs), "last_revision": last, "switches": {}}
    time.sleep(0.5)
    for n in names:
        c0, g0 = before[n]
        c1, g1 = counters(ctls[n])
        at = first_at(samples[n], last)
        tx = c1.get("tx", 0)
        time.sleep(0.2)
        c2, _ = counters(ctls[n])
        mem = proc_status(sw[n]["pid"]) if os.path.exists(f"/proc/{sw[n]['pid']}") else {}
        rec["switches"][n] = {
            "applied_s": at,
            "generations": g1 - g0,
            "change_transactions": c1.get("etcd_change_transactions", 0) - c0.get("etcd_change_transactions", 0),
            "full_merges": c1.get("etcd_full_merges", 0) - c0.get("etcd_full_merges", 0),
            "drops": c1.get("drops", 0) - c0.get("drops", 0),
            "forwarding_after": c2.get("tx", 0) > tx,
            "rss_mib": mem.get("VmRSS"),
            "hwm_mib": mem.get("VmHWM"),
        }
        ctls[n].close()
    both = [rec["switches"][n]["applied_s"] for n in names]
    rec["both_applied_s"] = None if None in both else max(both)
    if a.etcd_pid and os.path.exists(f"/proc/{a.etcd_pid}"):
        rec["etcd_rss_mib"] = proc_status(a.etcd_pid).get("VmRSS")
    st["burst"] = rec
    with open(a.raw, "a") as f:
        f.write(json.dumps(st) + "\n")
    print(json.dumps(st, indent=1))


def fmt(v, spec="{:.2f}"):
    return "n/a" if v is None else spec.format(v)


def lag(b):
    """Seconds from the last put's answer until both switches had applied it (None if unknown)."""
    if b.get("both_applied_s") is None or b.get("put_s") is None:
        return None
    return max(0.0, b["both_applied_s"] - b["put_s"])


def report_lines(rows, meta):
    out = [f"# etcd at scale ({meta})", ""]
    out.append("| records | publish s (txns of) | switch | start-up: socket / etcd policy forwarded s | RSS MiB (peak) | moves (per etcd txn) | puts s | last move applied s | generations (change txns, full merges) |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: r["publish"]["records"]):
        p, b = r["publish"], r.get("burst") or {}
        for n, s in sorted(r["switches"].items()):
            bs = (b.get("switches") or {}).get(n) or {}
            out.append(
                f"| {p['records']:,} | {fmt(p['seconds'])} ({p['batch']}) | {n} | {fmt(s['answered_s'])} / {fmt(s['ready_s'])} | {fmt(s.get('rss_mib'), '{:.0f}')} ({fmt(s.get('hwm_mib'), '{:.0f}')}) "
                f"| {b.get('moves', 0):,} ({b.get('per_txn', 1)}) | {fmt(b.get('put_s'))} | {fmt(bs.get('applied_s'), '{:.3f}')} | {bs.get('generations', 'n/a')} ({bs.get('change_transactions', 'n/a')}, {bs.get('full_merges', 'n/a')}) |"
            )
    out.append("")
    for r in sorted(rows, key=lambda r: r["publish"]["records"]):
        b = r.get("burst") or {}
        if b:
            out.append(
                f"At {r['publish']['records']:,} records: {b['moves']:,} moves in {b['puts']:,} etcd requests of {b.get('per_txn', 1)} put in {fmt(b['put_s'])} s over {b['threads']} connections (revisions {b['first_revision']}..{b['last_revision']}); "
                f"both switches had applied the last one {fmt(b.get('both_applied_s'), '{:.3f}')} s after the first put"
                f" ({fmt(lag(b), '{:.3f}')} s after the last put was answered)."
            )
    return out


def report(a):
    rows = []
    with open(a.raw) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    lines = report_lines(rows, a.meta or "")
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
        json.dump(rows, f, indent=1)
    print("\n".join(lines))


def host2(a):
    with open(a.policy) as f:
        text = f.read()
    with open(a.out, "w") as f:
        f.write(host2_text(text))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("host2")
    h.add_argument("--policy", required=True)
    h.add_argument("--out", required=True)
    pb = sub.add_parser("publish")
    pb.add_argument("--state", required=True)
    pb.add_argument("--hnvctl", required=True)
    pb.add_argument("--etcd", required=True)
    pb.add_argument("--policy", required=True)
    pb.add_argument("--batch", type=int, default=1000)
    pb.add_argument("--records", type=int, required=True)
    pb.add_argument("--tenants", type=int, required=True)
    s = sub.add_parser("startup")
    s.add_argument("--state", required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--start-ns", type=int, required=True)
    s.add_argument("--socket", required=True)
    b = sub.add_parser("burst")
    b.add_argument("--state", required=True)
    b.add_argument("--raw", required=True)
    b.add_argument("--etcd", required=True)
    b.add_argument("--moves", type=int, default=10_000)
    b.add_argument("--cas", type=int, default=1000)
    b.add_argument("--threads", type=int, default=8)
    b.add_argument("--per-txn", type=int, default=1)
    b.add_argument("--limit", type=float, default=300.0)
    b.add_argument("--etcd-pid", type=int)
    r = sub.add_parser("report")
    r.add_argument("--raw", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--meta")
    a = p.parse_args(argv)
    {"host2": host2, "publish": publish, "startup": startup, "burst": burst, "report": report}[a.cmd](a)


if __name__ == "__main__":
    main()
