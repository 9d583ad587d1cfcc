#!/usr/bin/python3
"""Checks a contender's captured output against the scenario's input and policy,
and prints a decoded sample (tshark).

  check.py --kind encap|decap|local|io --policy POLICY --src-port NAME --sink-port NAME
           --input IN.pcap --output OUT.pcap [--min N] [--sample K] [--label TEXT]

Every frame of OUT is checked, after removing duplicates (a looping source
repeats its frames):
  encap  tshark: outer IPv4 192.168.4.x local PA -> the PA of the inner destination
         CA's lookup record in the source port's VSID, outer Ethernet to that PA's
         neighbor MAC from the local PA MAC, GRE protocol 0x6558, key >> 8 = VSID;
         bytes: the frame without its 42-byte outer header is an input frame (intact).
  decap  tshark: no GRE left, Ethernet destination = the sink VM's MAC, IPv4
         destination = the sink VM's CA; bytes: the frame is the inner frame of an
         input frame (input minus its 42-byte outer header).
  local  tshark: destination MAC and CA = the sink VM's; bytes: an input frame.
  io     bytes: an input frame (testpmd forwards unchanged).
Exit status 0 when OUT holds at least --min distinct frames and all of them pass.
Only /usr/bin/python3's standard library and tshark are used.
"""
import argparse
import struct
import subprocess
import sys
import tomllib

OUTER = 14 + 20 + 8  # Ethernet + IPv4 + GRE with key


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        sys.exit(f"{path}: not a pcap file")
    frames, off = [], 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        frames.append(data[off:off + incl])
        off += incl
    return frames


FIELDS = ["frame.number", "eth.src", "eth.dst", "ip.src", "ip.dst", "ip.ttl", "gre.proto", "gre.key",
          "udp.srcport", "udp.dstport", "frame.len"]


def tshark(path, frames_wanted):
    """tshark field rows (lists of comma-separated occurrences) for the given 1-based frame numbers."""
    cmd = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
           "-E", "aggregator=,"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in out.splitlines():
        cols = line.split("\t")
        cols += [""] * (len(FIELDS) - len(cols))
        n = int(cols[0])
        if n in frames_wanted:
            rows[n] = {k: v.split(",") if v else [] for k, v in zip(FIELDS, cols)}
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", required=True, choices=["encap", "decap", "local", "io"])
    ap.add_argument("--policy", required=True)
    ap.add_argument("--src-port", required=True)
    ap.add_argument("--sink-port", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--min", type=int, default=16)
    ap.add_argument("--sample", type=int, default=3)
    ap.add_argument("--label", default="")
    a = ap.parse_args()

    with open(a.policy, "rb") as f:
        pol = tomllib.load(f)
    ports = {p["name"]: p for p in pol["ports"]}
    pa = pol["host"]["provider_addresses"][0]
    neigh = {n["address"]: n["mac"].lower() for n in pol["host"].get("neighbors", [])}
    records = {(r["vsid"], r["ca"]): r for r in pol.get("lookup", [])}
    src, sink = ports[a.src_port], ports[a.sink_port]

    inp = read_pcap(a.input)
    out = read_pcap(a.output)
    if a.kind == "decap":
        allowed = {x[OUTER:] for x in inp}
    else:
        allowed = set(inp)
    # Distinct output frames, first occurrence of each (1-based frame numbers for tshark).
    first = {}
    for i, fr in enumerate(out, 1):
        first.setdefault(fr, i)
    errors = []

    def err(n, msg):
        errors.append(f"frame {n}: {msg}")

    for fr, n in first.items():
        body = fr[OUTER:] if a.kind == "encap" else fr
        if body not in allowed:
            err(n, "not an (inner) input frame: modified or unknown" if a.kind != "io" else "not an input frame")

    rows = tshark(a.output, set(first.values())) if a.kind != "io" else {}
    for n, r in rows.items():
        if a.kind == "encap":
            vsid = src["vsid"]
            if len(r["ip.dst"]) != 2 or len(r["eth.dst"]) != 2 or len(r["gre.key"]) != 1:
                err(n, f"not Ethernet/IPv4/GRE(key)/Ethernet/IPv4: {r}")
                continue
            key = int(r["gre.key"][0], 16)
            ca = r["ip.dst"][1]
            rec = records.get((vsid, ca))
            if rec is None:
                err(n, f"inner destination {ca} has no record in VSID {vsid}")
                continue
            checks = [
                (key >> 8 == vsid, f"GRE key {key:#010x}: VSID {key >> 8} != {vsid}"),
                (r["gre.proto"] == ["0x6558"], f"GRE protocol {r['gre.proto']} != 0x6558"),
                (r["ip.src"][0] == pa["address"], f"outer source {r['ip.src'][0]} != local PA {pa['address']}"),
                (r["ip.dst"][0] == rec["pa"], f"outer destination {r['ip.dst'][0]} != PA {rec['pa']} of CA {ca}"),
                (r["eth.dst"][0].lower() == neigh.get(rec["pa"]), f"outer MAC {r['eth.dst'][0]} != {neigh.get(rec['pa'])} of PA {rec['pa']}"),
                (r["eth.src"][0].lower() == pa["mac"].lower(), f"outer source MAC {r['eth.src'][0]} != {pa['mac']}"),
                (r["eth.dst"][1].lower() == rec["mac"].lower(), f"inner MAC {r['eth.dst'][1]} != {rec['mac']} of CA {ca}"),
            ]
        else:  # decap, local: delivered to the sink VM
            checks = [
                (not r["gre.key"] and len(r["ip.dst"]) == 1, "still encapsulated"),
                (r["eth.dst"] == [sink["mac"].lower()], f"destination MAC {r['eth.dst']} != {sink['mac']} of {sink['name']}"),
                (r["ip.dst"] == sink["addresses"][:1], f"destination CA {r['ip.dst']} != {sink['addresses'][0]} of {sink['name']}"),
            ]
        for ok, msg in checks:
            if not ok:
                err(n, msg)

    label = a.label + ": " if a.label else ""
    print(f"  {label}{len(out)} frames captured, {len(first)} distinct, input {len(inp)} frames")
    # Decoded sample: the first K distinct frames.
    sample = sorted(first.values())[: a.sample]
    if sample:
        flt = " || ".join(f"frame.number == {n}" for n in sample)
        cmd = ["tshark", "-n", "-r", a.output, "-Y", flt, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
               "-E", "aggregator=,"] + sum([["-e", f] for f in FIELDS], [])
        res = subprocess.run(cmd, capture_output=True, text=True)
        print("    sample (tshark; outer,inner where encapsulated): " + " | ".join(FIELDS[1:]))
        for line in res.stdout.splitlines():
            cols = line.split("\t")
            extra = ""
            if len(cols) > 7 and cols[7]:
                k = int(cols[7], 16)
                extra = f"   [VSID {k >> 8}, FlowID {k & 0xff}]"
            print("    " + "  ".join(c if c else "-" for c in cols[1:]) + extra)
    if len(first) < a.min:
        print(f"  FAIL: only {len(first)} distinct frames captured (want >= {a.min})")
        return 1
    if errors:
        print(f"  FAIL: {len(errors)} errors, first ones:")
        for e in errors[:10]:
            print("    " + e)
        return 1
    if a.kind == "encap":
        what = "VSID in GRE key, outer PA and MACs per CA record, inner frame intact"
    elif a.kind == "io":
        what = "frames forwarded unchanged"
    else:
        what = f"delivered to {sink['name']} {sink['mac']}, " + ("decapsulated, inner frame intact" if a.kind == "decap" else "frame intact")
    print(f"  OK: all {len(first)} distinct frames correct ({what})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
