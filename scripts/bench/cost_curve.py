#!/usr/bin/python3
"""Statistics, table and plot of scripts/cost-curve.sh (which only starts processes).

How hnvswitch's cost grows with the number of flows: for encap, decap and local
(the single-VM scenarios of `hnvswitch scenario`) at 1k, 16k, 64k, 256k and 1M
flows, the throughput (Mpps, median of alternating short rounds; testpmd io at
the same point for the ceiling of the harness) and callgrind's instructions per
packet in the steady state.

Instructions per packet, differential: Ir(N2) - Ir(N1) over N2 - N1 packets,
two callgrind runs of `hnvswitch run --packets N` that differ only in N, so the
start-up (EAL, the pool, loading the pcap) cancels out. N1 = flows + 32768: the
pcap cycles, so by packet N1 every flow has been seen at least once (its miss and
cache fill are in both runs and cancel) and only packets of flows seen before are
in the difference; N2 - N1 = 262144 (65536 with --quick) of them, a whole number
of pcap cycles up to 256k flows and a quarter of the cycle at 1M flows (the flows
are laid out round robin over the remote CAs, so any window of the cycle has the
same mix). A flow cache that cannot hold every flow still misses in that window:
that is the steady state this measures, as the Mpps runs do. Each run counts up to
the first rte_eth_dev_stop (callgrind --dump-before, part 1) and is then killed:
the teardown would be the same in both runs, but freeing and zeroing a --no-huge
pool of a million mbufs takes minutes under valgrind.

  cost_curve.py rate --raw RAW --scenario S --flows F --contender hnv|testpmd --round R --log LOG --sinks P
  cost_curve.py ir --raw RAW --scenario S --flows F --n1 N1 --n2 N2 --out1 CG1 --out2 CG2
  cost_curve.py meta --raw RAW --root DIR --hnv BIN --args TEXT --rounds R --seconds S
  cost_curve.py report --raw RAW --out FILE.md   (also FILE.json, FILE.csv and FILE.svg)
Uses /usr/bin/python3's standard library, and matplotlib (Debian's python3-matplotlib) for the plot.
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

SCENARIOS = ["encap", "decap", "local"]


def callgrind_total(path):
    """The Ir total of a callgrind output file ('summary:' or 'totals:' line)."""
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit(f"{path}: no summary line")


def cmd_rate(a):
    with open(a.log, errors="replace") as f:
        text = f.read()
    if a.contender == "hnv":
        samples = bl.hnv_samples(text, a.sinks.split(","))
        detail, problem = bl.hnv_details(text)
    else:
        samples, detail, problem = bl.testpmd_samples(text), "", ""
    m = bl.median(samples)
    bl.append_jsonl(a.raw, {"type": "rate", "scenario": a.scenario, "flows": a.flows, "contender": a.contender, "round": a.round,
                            "mpps": None if math.isnan(m) else round(m, 3), "samples": [round(x, 3) for x in samples], "detail": detail, "problem": problem})
    print(f"{bl.fmt(m, 3)} Mpps" + (f"; {detail}" if detail else "") + (f"; PROBLEM: {problem}" if problem else ""))


def cmd_ir(a):
    i1, i2 = callgrind_total(a.out1), callgrind_total(a.out2)
    per = (i2 - i1) / (a.n2 - a.n1)
    bl.append_jsonl(a.raw, {"type": "ir", "scenario": a.scenario, "flows": a.flows, "n1": a.n1, "n2": a.n2, "ir1": i1, "ir2": i2, "ir_per_packet": round(per, 1)})
    print(f"{per:.1f} Ir/packet (Ir {i1} at {a.n1} packets, {i2} at {a.n2})")


def cmd_meta(a):
    m = bl.metadata(a.root, a.hnv, with_ovs=False)
    m.update({"type": "meta", "args": a.args, "rounds": a.rounds, "seconds": a.seconds})
    bl.append_jsonl(a.raw, m)
    print(f"{m['date']}, {m['machine']}, commit {m['commit']}, {m['toolchain']}, DPDK {m['dpdk']}")


# issue 10: callgrind Ir/packet at 1k flows; Mpps at 64k and 1M flows against the own 1k figure
IR_TARGET = {"encap": 360, "decap": 360, "local": 300}


def target(s, f, mpps, one, irv):
    if f == 1024:
        if irv is None:
            return f"Ir ≤ {IR_TARGET[s]}: n/a"
        return f"Ir ≤ {IR_TARGET[s]}: " + ("met" if irv <= IR_TARGET[s] else f"missed ({irv / IR_TARGET[s]:.2f}×)")
    want = {65536: 0.8, 1048576: 0.6}.get(f)
    if want is None:
        return ""
    r = bl.ratio(mpps, one)
    return f"≥ {want:g}× own 1k: " + ("n/a" if math.isnan(r) else "met" if r >= want else f"missed ({r:.2f}×)")


def label(f):
    return f"{f // 1048576}M" if f % 1048576 == 0 else f"{f // 1024}k" if f % 1024 == 0 else str(f)


def plot(path, flows, med, ir, tp):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("cost_curve: matplotlib not found (apt-get install python3-matplotlib): no plot", file=sys.stderr)
        return False
    matplotlib.rcParams["svg.hashsalt"] = "hnvswitch"  # stable ids: the committed SVG diffs cleanly
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"encap": "tab:blue", "decap": "tab:orange", "local": "tab:green"}
    for s in SCENARIOS:
        xs = [f for f in flows if not math.isnan(med.get((s, f), math.nan))]
        if xs:
            ax1.plot(xs, [med[(s, f)] for f in xs], "o-", color=colors[s], label=f"hnvswitch {s}")
        xs = [f for f in flows if not math.isnan(tp.get((s, f), math.nan))]
        if xs:
            ax1.plot(xs, [tp[(s, f)] for f in xs], "x--", color=colors[s], alpha=0.5, label=f"testpmd io ({s} traffic)")
        xs = [f for f in flows if (s, f) in ir]
        if xs:
            ax2.plot(xs, [ir[(s, f)] for f in xs], "o-", color=colors[s], label=s)
    # issue 10's callgrind targets at 1k flows
    ax2.axhline(360, ls=":", color="gray", lw=1, label="target encap/decap (1k): 360")
    ax2.axhline(300, ls=":", color="tab:green", lw=1, label="target local (1k): 300")
    for ax, title, yl in ((ax1, "Throughput, one core", "Mpps (median of rounds)"), (ax2, "callgrind, steady state", "instructions per packet")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(flows)
        ax.set_xticklabels([label(f) for f in flows])
        ax.set_xlabel("flows")
        ax.set_ylabel(yl)
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None})
    plt.close(fig)
    return True


def cmd_report(a):
    recs = bl.read_jsonl(a.raw)
    meta = next((r for r in recs if r["type"] == "meta"), {})
    rates = [r for r in recs if r["type"] == "rate"]
    irs = {(r["scenario"], r["flows"]): r["ir_per_packet"] for r in recs if r["type"] == "ir"}
    flows = sorted({r["flows"] for r in rates} | {f for _, f in irs})
    scen = [s for s in SCENARIOS if any(r["scenario"] == s for r in rates) or any(k[0] == s for k in irs)]

    def med_of(s, f, c):
        return bl.median([r["mpps"] for r in rates if (r["scenario"], r["flows"], r["contender"]) == (s, f, c) and r["mpps"] is not None])

    med = {(s, f): med_of(s, f, "hnv") for s in scen for f in flows}
    tp = {(s, f): med_of(s, f, "testpmd") for s in scen for f in flows}
    base = a.out[:-3] if a.out.endswith(".md") else a.out
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    has_plot = plot(base + ".svg", flows, med, irs, tp)
    L = ["# hnvswitch cost curve: throughput and instructions per packet against the number of flows", ""]
    L += [f"Run by `scripts/cost-curve.sh{(' ' + meta['args']) if meta.get('args') else ''}`.", ""] + bl.metadata_lines(meta) + [""]
    L += [
        "Single-VM scenarios of `hnvswitch scenario` (Blue1; encap to 16 remote CAs on 4 PAs, decap from them, local to",
        "Blue4), 64-byte frames, a net_pcap infinite_rx source into net_null, one forwarding core.",
        f"Mpps: median over {meta.get('rounds', '?')} round(s) of {meta.get('seconds', '?')} s (per run the median of its",
        "one-second samples after a warm-up second); every round visits every point, the order reversed each round;",
        "testpmd io on the same vdevs at the same point is the ceiling of the harness.",
        "Ir/packet: callgrind, (Ir(N2) - Ir(N1)) / (N2 - N1) with N1 = flows + 32768 (every flow seen before the",
        "counted packets), so it is the steady-state cost including the misses of a cache that cannot hold all flows",
        "(scripts/bench/cost_curve.py explains the choice); `--no-huge`.",
        "",
    ]
    if has_plot:
        L += [f"![cost curve]({os.path.basename(base)}.svg)", ""]
    L += ["| scenario | flows | hnvswitch Mpps (rounds) | ÷ own 1k | testpmd io Mpps | hnvswitch ÷ testpmd | Ir/packet | target (issue 10) | cycles/pkt, cache hits (last round) |",
          "|---|---|---|---|---|---|---|---|---|"]
    for s in scen:
        for f in flows:
            rs = sorted((r for r in rates if (r["scenario"], r["flows"], r["contender"]) == (s, f, "hnv")), key=lambda r: r["round"])
            rounds = ", ".join(bl.fmt(r["mpps"], 3) if r["mpps"] is not None else "n/a" for r in rs)
            one = med.get((s, 1024), math.nan)
            irv = irs.get((s, f))
            L.append(f"| {s} | {label(f)} | {bl.fmt(med[(s, f)])} ({rounds}) | {bl.fmt(bl.ratio(med[(s, f)], one))} | {bl.fmt(tp[(s, f)])} | "
                     f"{bl.fmt(bl.ratio(med[(s, f)], tp[(s, f)]))} | {bl.fmt(irv, 1) if irv is not None else 'n/a'} | {target(s, f, med[(s, f)], one, irv)} | "
                     f"{rs[-1]['detail'] if rs else ''} |")
    problems = [f"{r['scenario']} {r['flows']} round {r['round']}: {r['problem']}" for r in rates if r.get("problem")]
    if problems:
        L += ["", "Problems:", ""] + [f"- {p}" for p in problems]
    md = "\n".join(L) + "\n"
    with open(a.out, "w") as f:
        f.write(md)
    with open(base + ".json", "w") as f:
        json.dump({"meta": meta, "records": [r for r in recs if r["type"] != "meta"]}, f, indent=1)
    with open(base + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scenario", "flows", "kind", "round", "value", "samples_or_ir", "detail"])
        for r in rates:
            w.writerow([r["scenario"], r["flows"], f"{r['contender']}_mpps", r["round"], "" if r["mpps"] is None else r["mpps"], " ".join(map(str, r["samples"])), r["detail"]])
        for r in recs:
            if r["type"] == "ir":
                w.writerow([r["scenario"], r["flows"], "ir_per_packet", "", r["ir_per_packet"], f"{r['n1']}:{r['ir1']} {r['n2']}:{r['ir2']}", ""])
    sys.stdout.write(md)
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("rate")
    for x in ("--raw", "--scenario", "--contender", "--log", "--sinks"):
        p.add_argument(x, required=x != "--sinks", default="")
    p.add_argument("--flows", type=int, required=True)
    p.add_argument("--round", type=int, required=True)
    p = sub.add_parser("ir")
    for x in ("--raw", "--scenario", "--out1", "--out2"):
        p.add_argument(x, required=True)
    for x in ("--flows", "--n1", "--n2"):
        p.add_argument(x, type=int, required=True)
    p = sub.add_parser("meta")
    for x in ("--raw", "--root", "--hnv", "--args"):
        p.add_argument(x, required=x != "--args", default="")
    p.add_argument("--rounds", type=int, required=True)
    p.add_argument("--seconds", type=int, required=True)
    p = sub.add_parser("report")
    p.add_argument("--raw", required=True)
    p.add_argument("--out", required=True)
    a = ap.parse_args()
    return {"rate": cmd_rate, "ir": cmd_ir, "meta": cmd_meta, "report": cmd_report}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
