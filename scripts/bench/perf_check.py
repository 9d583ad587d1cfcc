#!/usr/bin/python3
"""Arithmetic of scripts/perf-regression.sh: instructions per packet from two
callgrind runs, the comparison with bench/baseline.toml, and its rewrite.

  perf_check.py ir CG1 CG2 N1 N2
      prints (Ir(CG2) - Ir(CG1)) / (N2 - N1), one decimal
  perf_check.py compare BASELINE TOLERANCE NAME=IR...
      one line per case: its Ir/packet, the baseline and the change; exit status 1
      when a case costs more than TOLERANCE (a fraction, 0.05 = 5 %) above its baseline
  perf_check.py update BASELINE COMMIT NAME=IR...
      rewrites BASELINE: a comment saying how each case is measured, then NAME = IR

The baseline is plain TOML, one `case = Ir/packet` per line (tomllib reads it).
Only /usr/bin/python3's standard library is used.
"""
import datetime
import sys
import tomllib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, __file__.rsplit("/", 1)[0])
from cost_curve import callgrind_total  # noqa: E402

CASES = {
    "encap": "encap, 1024 flows",
    "decap": "decap, 1024 flows",
    "local": "local, 1024 flows",
    "encap_64k": "encap, 65536 flows (steady state: every flow seen before the counted packets)",
    "encap_vxlan": "encap-vxlan (VXLAN encapsulation), 1024 flows",
    "decap_vxlan": "decap-vxlan (VXLAN decapsulation), 1024 flows",
}


def pairs(args):
    out = {}
    for a in args:
        k, _, v = a.partition("=")
        out[k] = float(v)
    return out


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "ir" and len(sys.argv) == 6:
        i1, i2 = callgrind_total(sys.argv[2]), callgrind_total(sys.argv[3])
        n1, n2 = int(sys.argv[4]), int(sys.argv[5])
        print(f"{(i2 - i1) / (n2 - n1):.1f}")
        return 0
    if len(sys.argv) >= 4 and sys.argv[1] == "compare":
        try:
            with open(sys.argv[2], "rb") as f:
                base = tomllib.load(f)
        except FileNotFoundError:
            base = {}
        tol = float(sys.argv[3])
        status = 0
        for k, got in pairs(sys.argv[4:]).items():
            b = base.get(k)
            if b is None:
                print(f"perf: {k} {got:.1f} Ir/packet (no baseline)")
                continue
            d = (got - b) / b
            verdict = "REGRESSION" if d > tol else "ok"
            print(f"perf: {k} {got:.1f} Ir/packet, baseline {b}: {d * 100:+.1f}% {verdict}")
            status |= d > tol
        return int(status)
    if len(sys.argv) >= 4 and sys.argv[1] == "update":
        got = pairs(sys.argv[4:])
        lines = ["# callgrind instructions per packet (scripts/perf-regression.sh --update): 64-byte frames, --no-huge,",
                 "# net_pcap infinite_rx source -> net_null sink, Ir(N2) - Ir(N1) over N2 - N1 packets;",
                 f"# commit {sys.argv[3]}, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}"]
        for k, v in got.items():
            lines.append(f"# {k}: {CASES.get(k, k)}")
        lines += [f"{k} = {v:.1f}" for k, v in got.items()]
        with open(sys.argv[2], "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"perf: baseline written to {sys.argv[2]}")
        return 0
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main())
