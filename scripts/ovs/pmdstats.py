#!/usr/bin/python3
"""Summarizes `ovs-appctl dpif-netdev/pmd-stats-show` (the first PMD thread) in
one line: datapath passes per packet, the share of packets each cache level
served (simple match, EMC, SMC, megaflow), successful upcalls and the average
processing cycles per packet.

  pmdstats.py FILE
Only /usr/bin/python3's standard library is used.
"""
import re
import sys

KEYS = {"packets received": "r", "datapath passes per packet": "p", "simple match hits": "s", "emc hits": "e",
        "smc hits": "m", "megaflow hits": "f", "miss with success upcall": "u", "avg processing cycles per packet": "cy"}


def main():
    v = {}
    with open(sys.argv[1], errors="replace") as f:
        for line in f:
            if line.startswith("main thread"):
                break
            k, _, rest = line.strip().partition(":")
            for name, short in KEYS.items():
                # substrings: "avg. datapath passes per packet", "avg processing cycles per packet"
                if name in k and short not in v:
                    m = re.match(r"\s*([0-9.]+)", rest)
                    if m:
                        v[short] = float(m[1])
    n = v.get("r", 0) * (v.get("p") or 1)
    if n <= 0:
        print("no PMD statistics")
        return
    pct = {k: 100 * v.get(k, 0) / n for k in "semf"}
    print(f"passes/pkt {v.get('p', 1):.2f}, simple {pct['s']:.1f}%, EMC {pct['e']:.1f}%, SMC {pct['m']:.1f}%, "
          f"megaflow {pct['f']:.1f}%, upcalls {v.get('u', 0):.0f}, {v.get('cy', 0):.0f} cycles/pkt")


if __name__ == "__main__":
    main()
