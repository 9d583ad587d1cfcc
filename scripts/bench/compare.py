#!/usr/bin/python3
"""Statistics and report of scripts/compare-ovs.sh (which only starts processes).

The script appends one JSON record per event to a raw file (JSON lines):
  meta     compare.py meta --raw RAW --root DIR --hnv BIN --args TEXT --rounds R --seconds S
  run      compare.py run --raw RAW --key SCEN:FLOWS:SIZE --contender testpmd|ovs|hnv --round R
                 --log LOG [--sinks a,b] [--desc TEXT] [--fail TEXT]
           parses the contender's per-second samples from LOG (benchlib), records
           them with their median and prints "MPPS<US>DETAIL<US>PROBLEM" (US = \\x1f) (PROBLEM:
           hnvswitch did not reconcile or dropped packets; empty otherwise)
  verify   compare.py verify --raw RAW --key K --contender C --ok 0|1 --text FILE
  window   compare.py window-begin PID THREAD-PREFIX STATE; compare.py window-end STATE
           (the conditions of a timed run: load1, forwarding thread %, the rest of
           core 1, steal, the busiest other processes)
and at the end
  report   compare.py report --raw RAW --out FILE.md
           writes FILE.md (the table: per scenario, flows and frame size the medians
           over the rounds of testpmd io, OVS-DPDK and hnvswitch, hnvswitch ÷ OVS,
           hnvswitch ÷ testpmd and issue 10's target; the conditions of every run;
           the verification output), FILE.json (every record) and FILE.csv (one row
           per run: its samples and median), and prints the Markdown.
A run's figure is the median of its samples; a contender's figure the median of
its rounds' figures (rounds that could not run are left out and shown as n/a).
"""
import argparse
import csv
import json
import math
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

CONTENDERS = [("testpmd", "testpmd io"), ("ovs", "OVS-DPDK"), ("hnv", "hnvswitch")]
# issue 10: hnvswitch ÷ OVS-DPDK at 1k and 64k flows
OVS_TARGET = {"encap": 3.0, "decap": 4.0, "local": 1.5}


def split_key(k):
    scen, flows, size = k.split(":")
    return scen, int(flows), int(size)


def cmd_run(a):
    text = ""
    if a.log and os.path.exists(a.log):
        with open(a.log, errors="replace") as f:
            text = f.read()
    detail, problem, samples = a.desc or "", "", []
    if a.fail:
        detail = a.fail
    elif a.contender == "hnv":
        samples = bl.hnv_samples(text, a.sinks.split(","))
        d, problem = bl.hnv_details(text)
        detail = "; ".join(x for x in (detail, d) if x)
    elif a.contender == "testpmd":
        samples = bl.testpmd_samples(text)
    else:
        samples = bl.counter_samples(text)
    mpps = bl.median(samples)
    if not a.fail and math.isnan(mpps):
        detail = (detail + "; " if detail else "") + "no rate samples in the log"
    bl.append_jsonl(a.raw, {"type": "run", "key": a.key, "contender": a.contender, "round": a.round, "mpps": None if math.isnan(mpps) else round(mpps, 3),
                            "samples": [round(x, 3) for x in samples], "detail": detail, "problem": problem})
    print(f"{bl.fmt(mpps, 3)}\x1f{detail}\x1f{problem}")


def cmd_meta(a):
    m = bl.metadata(a.root, a.hnv, with_ovs=True)
    m.update({"type": "meta", "args": a.args, "rounds": a.rounds, "seconds": a.seconds})
    bl.append_jsonl(a.raw, m)
    print(f"{m['date']}, {m['machine']}, commit {m['commit']} ({m.get('hnvswitch', '?')}), {m['toolchain']}, {m['ovs']}, DPDK {m['dpdk']}")


def cmd_verify(a):
    with open(a.text, errors="replace") as f:
        text = f.read()
    bl.append_jsonl(a.raw, {"type": "verify", "key": a.key, "contender": a.contender, "ok": a.ok == 1, "text": text})


def cmd_window_begin(a):
    with open(a.state, "w") as f:
        json.dump(bl.window_begin(a.pid, a.prefix), f)


def cmd_window_end(a):
    with open(a.state) as f:
        w = json.load(f)
    print(bl.window_end(w))


def target(scen, flows, size, med):
    """Issue 10's target for the row and whether this run meets it."""
    base = scen.split("-")[0]  # encap-multi, encap-vxlan: encap's target
    h, o = med[(scen, flows, size, "hnv")], med[(scen, flows, size, "ovs")]
    parts = []
    if flows <= 65536 and base in OVS_TARGET:
        w = OVS_TARGET[base]
        r = bl.ratio(h, o)
        parts.append(f"≥ {w:g}× OVS: " + ("n/a" if math.isnan(r) else "met" if r >= w else f"missed ({r:.2f}×)"))
    if flows >= 65536:
        w = 0.8 if flows < 1048576 else 0.6
        one = med.get((scen, 1024, size, "hnv"))
        if one is None:
            parts.append(f"≥ {w:g}× own 1k (not in this run)")
        else:
            r = bl.ratio(h, one)
            parts.append(f"≥ {w:g}× own 1k: " + ("n/a" if math.isnan(r) else "met" if r >= w else f"missed ({r:.2f}×)"))
    return "; ".join(parts)


def cmd_report(a):
    recs = bl.read_jsonl(a.raw)
    meta = next((r for r in recs if r["type"] == "meta"), {})
    runs = [r for r in recs if r["type"] == "run"]
    keys = list(dict.fromkeys(r["key"] for r in runs))
    rounds = {}
    for r in runs:
        rounds.setdefault((r["key"], r["contender"]), []).append(r)
    med = {}
    for k in keys:
        for c, _ in CONTENDERS:
            v = [x["mpps"] for x in sorted(rounds.get((k, c), []), key=lambda x: x["round"])]
            med[split_key(k) + (c,)] = bl.median([x for x in v if x is not None])
    L = ["# hnvswitch against OVS-DPDK and testpmd", ""]
    L += [f"Run by `scripts/compare-ovs.sh{(' ' + meta['args']) if meta.get('args') else ''}`."] + [""] + bl.metadata_lines(meta) + [""]
    L += [
        "Source net_pcap infinite_rx (one file per source port), sinks net_null,no-rx=1, the same devargs for all",
        "three; one forwarding core (core 1) polls every port, control on core 0, 2 MiB hugepages. Mpps = frames/s",
        "sent by the sink ports together (encap: the uplink; decap: the VM ports; local: blue4). Single-VM scenarios",
        "(`encap`, `decap`, `local`): Blue1 only. Multi-VM (`encap-multi`, `decap-multi`): Blue1, Blue4 (VSID 5001),",
        "Red1, Red2 (6001) with overlapping CAs, 32 remote CAs on 4 remote PAs; encap-multi has a source on each VM",
        "port, decap-multi receives NVGRE for all 4 VMs on the uplink. testpmd io forwards port pairs, so in",
        "encap-multi each source is paired with its own net_null sink (4 sinks), in decap-multi the uplink with",
        "blue1's. `encap-vxlan`, `decap-vxlan`: `encap` and `decap` with both subnets on VXLAN (UDP 4789, VNI = VSID;",
        "OVS: a `type=vxlan` port instead of `type=gre`), with the same targets as NVGRE.",
        "The frame size is the VM frame's with FCS (decap frames carry 42 bytes of outer header more, 50 for VXLAN).",
        f"Per run: the median of {meta.get('seconds', '?')} one-second samples after a warm-up second; per contender:",
        f"the median of {meta.get('rounds', '?')} round(s), the order alternating per round.",
        "",
        "| scenario | flows | frame | testpmd io Mpps (rounds) | OVS-DPDK Mpps (rounds) | hnvswitch Mpps (rounds) | hnvswitch ÷ OVS | hnvswitch ÷ testpmd | target (issue 10) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k in keys:
        scen, flows, size = split_key(k)
        cells = []
        for c, _ in CONTENDERS:
            v = [x["mpps"] for x in sorted(rounds.get((k, c), []), key=lambda x: x["round"])]
            cells.append(f"{bl.fmt(med[(scen, flows, size, c)])} ({', '.join(bl.fmt(x, 3) if x is not None else 'n/a' for x in v)})")
        t, o, h = (med[(scen, flows, size, c)] for c, _ in CONTENDERS)
        L.append(f"| {scen} | {flows} | {size} | {' | '.join(cells)} | {bl.fmt(bl.ratio(h, o))} | {bl.fmt(bl.ratio(h, t))} | {target(scen, flows, size, med)} |")
    L.append("")
    names = dict(CONTENDERS)
    for k in keys:
        for c, n in CONTENDERS:
            rs = rounds.get((k, c), [])
            if rs and all(x["mpps"] is None for x in rs):
                L += [f"n/a: {n}, {k}: {rs[0]['detail']}", ""]
    problems = [f"{r['key']} round {r['round']}: {r['problem']}" for r in runs if r.get("problem")]
    verifies = [r for r in recs if r["type"] == "verify"]
    problems += [f"{r['key']}: {names[r['contender']]} verification failed" for r in verifies if not r["ok"]]
    if problems:
        L += ["Problems:", ""] + [f"- {p}" for p in problems] + [""]
    L += ["Conditions of every run (load1 before the timed seconds; the forwarding thread's CPU share; the rest of",
          "core 1's busy time; steal; other processes using >= 3 % of a core during the timed seconds):", ""]
    for r in sorted(runs, key=lambda x: (keys.index(x["key"]), x["round"])):
        L.append(f"- {r['key']}, round {r['round']}, {names[r['contender']]}: {bl.fmt(r['mpps'] if r['mpps'] is not None else math.nan, 3)} Mpps; {r['detail']}")
    L += ["", "Verification (short run, sinks captured to pcaps, every distinct frame checked, sample decoded by tshark):", "", "```"]
    for k in keys:
        L.append(f"{k}:")
        for r in verifies:
            if r["key"] == k:
                L.append(r["text"].rstrip("\n"))
    L.append("```")
    md = "\n".join(L) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    base = a.out[:-3] if a.out.endswith(".md") else a.out
    with open(a.out, "w") as f:
        f.write(md)
    with open(base + ".json", "w") as f:
        json.dump({"meta": meta, "records": [r for r in recs if r["type"] != "meta"]}, f, indent=1)
    with open(base + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scenario", "flows", "frame_size", "contender", "round", "mpps", "samples", "detail"])
        for r in runs:
            scen, flows, size = split_key(r["key"])
            w.writerow([scen, flows, size, r["contender"], r["round"], "" if r["mpps"] is None else r["mpps"], " ".join(map(str, r["samples"])), r["detail"]])
    sys.stdout.write(md)
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("meta")
    for x in ("--raw", "--root", "--hnv", "--args"):
        p.add_argument(x, required=x != "--args", default="")
    p.add_argument("--rounds", type=int, required=True)
    p.add_argument("--seconds", type=int, required=True)
    p = sub.add_parser("run")
    p.add_argument("--raw", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--contender", required=True, choices=[c for c, _ in CONTENDERS])
    p.add_argument("--round", type=int, required=True)
    p.add_argument("--log", default="")
    p.add_argument("--sinks", default="")
    p.add_argument("--desc", default="")
    p.add_argument("--fail", default="")
    p = sub.add_parser("verify")
    p.add_argument("--raw", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--contender", required=True)
    p.add_argument("--ok", type=int, required=True)
    p.add_argument("--text", required=True)
    p = sub.add_parser("window-begin")
    p.add_argument("pid", type=int)
    p.add_argument("prefix")
    p.add_argument("state")
    p = sub.add_parser("window-end")
    p.add_argument("state")
    p = sub.add_parser("report")
    p.add_argument("--raw", required=True)
    p.add_argument("--out", required=True)
    a = ap.parse_args()
    return {"run": cmd_run, "meta": cmd_meta, "verify": cmd_verify, "window-begin": cmd_window_begin,
            "window-end": cmd_window_end, "report": cmd_report}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
