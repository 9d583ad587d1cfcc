#!/usr/bin/python3
"""Checks a contender's captured output against the scenario's input and policy,
and prints a decoded sample (tshark).

  check.py --kind encap|decap|local|io --policy POLICY --src-port NAME[,NAME...]
           --sink-port NAME[,NAME...] --input IN.pcap[,IN.pcap...]
           --output OUT.pcap[,OUT.pcap...] [--min N] [--sample K] [--label TEXT]

--input lists one file per source port and --output one capture per sink port,
in the same order as the ports (several: the multi-VM scenarios). Every frame of
every output is checked, after removing duplicates (a looping source repeats its
frames); each input frame is attributed to the source port whose file holds it:
  encap  tshark: outer IPv4 local PA -> the PA of the inner destination CA's lookup
         record in the VSID of the source port that sent the inner frame, outer
         Ethernet to that PA's neighbor MAC from the local PA MAC, GRE protocol
         0x6558, key >> 8 = that VSID, inner destination MAC = the record's;
         bytes: the frame without its 42-byte outer header is an input frame (intact).
  decap  tshark: no GRE left, Ethernet destination = the sink VM's MAC, IPv4
         destination = the sink VM's CA; bytes: the frame is the inner frame of an
         input frame whose GRE key carries the sink VM's VSID and whose outer source
         is the PA of the inner source CA's record in that VSID.
  local  tshark: destination MAC and CA = the sink VM's; bytes: an input frame of a
         source port in the sink's VSID.
  io     bytes: an input frame (testpmd forwards unchanged).
When the policy's subnets have encap = "vxlan", the encapsulation is VXLAN: the outer
header is 50 bytes (Ethernet + IPv4 + UDP + VXLAN), UDP destination port 4789 and
vxlan.vni = the VSID take the place of GRE protocol 0x6558 and key >> 8.
Exit status 0 when the outputs hold at least --min distinct frames together and all
of them pass (with --min = the number of input frames, every input frame came out).
Only /usr/bin/python3's standard library and tshark are used.
"""
import argparse
import struct
import subprocess
import sys
import tomllib

OUTER_NVGRE = 14 + 20 + 8  # Ethernet + IPv4 + GRE with key
OUTER_VXLAN = 14 + 20 + 8 + 8  # Ethernet + IPv4 + UDP + VXLAN


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
          "udp.srcport", "udp.dstport", "frame.len", "vxlan.vni"]


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
    vx = any(s.get("encap") == "vxlan" for s in pol.get("subnets", []))
    OUTER = OUTER_VXLAN if vx else OUTER_NVGRE
    pa = pol["host"]["provider_addresses"][0]
    neigh = {n["address"]: n["mac"].lower() for n in pol["host"].get("neighbors", [])}
    records = {(r["vsid"], r["ca"]): r for r in pol.get("lookup", [])}
    srcs, sinks = a.src_port.split(","), a.sink_port.split(",")
    inputs, outputs = a.input.split(","), a.output.split(",")
    if len(srcs) != len(inputs) or len(sinks) != len(outputs):
        sys.exit("check.py: one --input per --src-port and one --output per --sink-port")

    # Input frame (decap: its inner frame) -> (source port, outer frame).
    origin = {}
    n_in = 0
    for name, path in zip(srcs, inputs):
        for x in read_pcap(path):
            n_in += 1
            origin.setdefault(x[OUTER:] if a.kind == "decap" else x, (name, x))
    errors = []
    total_distinct = 0
    label = a.label + ": " if a.label else ""
    for sink_name, path in zip(sinks, outputs):
        out = read_pcap(path)
        sink = ports.get(sink_name, {"name": sink_name})
        # Distinct output frames, first occurrence of each (1-based frame numbers for tshark).
        first = {}
        for i, fr in enumerate(out, 1):
            first.setdefault(fr, i)
        total_distinct += len(first)
        where = f"{sink_name} " if len(sinks) > 1 else ""
        print(f"  {label}{where}{len(out)} frames captured, {len(first)} distinct, input {n_in} frames")

        def err(n, msg):
            errors.append(f"{where}frame {n}: {msg}")

        by_n = {n: fr for fr, n in first.items()}
        for fr, n in first.items():
            body = fr[OUTER:] if a.kind == "encap" else fr
            if body not in origin:
                err(n, "not an (inner) input frame: modified or unknown" if a.kind != "io" else "not an input frame")

        rows = tshark(path, set(first.values())) if a.kind != "io" else {}
        for n, r in rows.items():
            fr = by_n[n]
            if a.kind == "encap":
                src = origin.get(fr[OUTER:])
                if src is None:
                    continue
                vsid = ports[src[0]]["vsid"]
                if vx and (len(r["ip.dst"]) != 2 or len(r["eth.dst"]) != 2 or len(r["vxlan.vni"]) != 1):
                    err(n, f"not Ethernet/IPv4/UDP/VXLAN/Ethernet/IPv4: {r}")
                    continue
                if not vx and (len(r["ip.dst"]) != 2 or len(r["eth.dst"]) != 2 or len(r["gre.key"]) != 1):
                    err(n, f"not Ethernet/IPv4/GRE(key)/Ethernet/IPv4: {r}")
                    continue
                key = int(r["vxlan.vni"][0]) << 8 if vx else int(r["gre.key"][0], 16)
                ca = r["ip.dst"][1]
                rec = records.get((vsid, ca))
                if rec is None:
                    err(n, f"inner destination {ca} has no record in VSID {vsid} (source port {src[0]})")
                    continue
                checks = [
                    (key >> 8 == vsid, f"{'VNI' if vx else 'GRE key'} {key:#010x}: VSID {key >> 8} != {vsid} of source port {src[0]}"),
                    (r["udp.dstport"][:1] == ["4789"] if vx else r["gre.proto"] == ["0x6558"],
                     f"UDP destination port {r['udp.dstport'][:1]} != 4789" if vx else f"GRE protocol {r['gre.proto']} != 0x6558"),
                    (r["ip.src"][0] == pa["address"], f"outer source {r['ip.src'][0]} != local PA {pa['address']}"),
                    (r["ip.dst"][0] == rec["pa"], f"outer destination {r['ip.dst'][0]} != PA {rec['pa']} of CA {ca} in VSID {vsid}"),
                    (r["eth.dst"][0].lower() == neigh.get(rec["pa"]), f"outer MAC {r['eth.dst'][0]} != {neigh.get(rec['pa'])} of PA {rec['pa']}"),
                    (r["eth.src"][0].lower() == pa["mac"].lower(), f"outer source MAC {r['eth.src'][0]} != {pa['mac']}"),
                    (r["eth.dst"][1].lower() == rec["mac"].lower(), f"inner MAC {r['eth.dst'][1]} != {rec['mac']} of CA {ca}"),
                ]
            else:  # decap, local: delivered to the sink VM
                checks = [
                    (not r["gre.key"] and not r["vxlan.vni"] and len(r["ip.dst"]) == 1, "still encapsulated"),
                    (r["eth.dst"] == [sink["mac"].lower()], f"destination MAC {r['eth.dst']} != {sink['mac']} of {sink_name}"),
                    (r["ip.dst"] == sink["addresses"][:1], f"destination CA {r['ip.dst']} != {sink['addresses'][0]} of {sink_name}"),
                ]
                src = origin.get(fr)
                if src is not None and a.kind == "decap":
                    outer = src[1]
                    key_vsid = int.from_bytes(outer[46:49] if vx else outer[38:41], "big")
                    outer_src = ".".join(map(str, outer[26:30]))
                    rec = records.get((sink["vsid"], r["ip.src"][0] if r["ip.src"] else ""))
                    checks += [
                        (key_vsid == sink["vsid"], f"delivered to {sink_name} (VSID {sink['vsid']}) from a frame of VSID {key_vsid}"),
                        (rec is not None and rec["pa"] == outer_src, f"outer source {outer_src} is not the PA of {r['ip.src']} in VSID {sink['vsid']}"),
                    ]
                elif src is not None and a.kind == "local":
                    checks.append((ports[src[0]]["vsid"] == sink["vsid"], f"from {src[0]} (VSID {ports[src[0]]['vsid']}) to {sink_name} (VSID {sink['vsid']})"))
            for ok, msg in checks:
                if not ok:
                    err(n, msg)

        # Decoded sample: the first K distinct frames.
        sample = sorted(first.values())[: a.sample]
        if sample:
            flt = " || ".join(f"frame.number == {n}" for n in sample)
            cmd = ["tshark", "-n", "-r", path, "-Y", flt, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
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
    if total_distinct < a.min:
        print(f"  FAIL: only {total_distinct} distinct frames captured (want >= {a.min})")
        return 1
    if errors:
        print(f"  FAIL: {len(errors)} errors, first ones:")
        for e in errors[:10]:
            print("    " + e)
        return 1
    if a.kind == "encap":
        what = ("VSID of the sending port in the " + ("VXLAN VNI (UDP 4789)" if vx else "GRE key")
                + ", outer PA and MACs per CA record, inner frame intact")
    elif a.kind == "io":
        what = "frames forwarded unchanged"
    else:
        what = f"delivered to {','.join(sinks)} by MAC, CA and VSID, " + ("decapsulated, outer PA per record, inner frame intact" if a.kind == "decap" else "frame intact")
    print(f"  OK: all {total_distinct} distinct frames correct ({what})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
