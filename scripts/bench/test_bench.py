#!/usr/bin/python3
"""Tests of the benchmark scripts' Python: log parsing, medians, the report's
target column, the baseline arithmetic, and scripts/ovs/check.py's per-port
verification of the multi-VM scenarios (needs target/release/hnvswitch and
tshark; skipped without them).

  /usr/bin/python3 -m unittest discover -s scripts/bench -p 'test_*.py'
"""
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)
import benchlib as bl  # noqa: E402
import compare  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "scripts", "ovs"))
from check import read_pcap  # noqa: E402  (either byte order; hnvswitch writes big-endian pcaps)

HNV_LOG = """\
[   1.0s]  uplink: rx 0.00 Mpps tx 9.00 Mpps  blue1: rx 9.00 Mpps tx 0.00 Mpps
[   2.0s]  uplink: rx 0.00 Mpps tx 10.00 Mpps  blue1: rx 10.00 Mpps tx 1.50 Mpps
[   3.0s]  uplink: rx 0.00 Mpps tx 12.00 Mpps  blue1: rx 12.00 Mpps tx 2.50 Mpps
[   4.0s]  uplink: rx 0.00 Mpps tx 11.00 Mpps  blue1: rx 11.00 Mpps tx 0.50 Mpps

workers:
worker               rx             tx   tx-refused    busy%   cycles/pkt
0               1081344        1081344            0    100.0      126.7

drops by reason:
  (none)

rx 1081344 + replicas 0 = 1081344; tx 1081344 + drops 0 = 1081344: reconciled
(answered ARP/ND 0, encapsulated 1081344, decapsulated 0, routed 0; flow cache hits 900, misses 100)
"""

TESTPMD_LOG = "".join(
    f"  ######################## NIC statistics for port 0  ########################\n"
    f"  Throughput (since last show)\n  Rx-pps: {rx} Rx-bps: 1\n  Tx-pps: 0 Tx-bps: 0\n"
    f"  ######################## NIC statistics for port 1  ########################\n"
    f"  Throughput (since last show)\n  Rx-pps: 0 Rx-bps: 0\n  Tx-pps: {tx} Tx-bps: 1\n"
    for rx, tx in [(1, 5000000), (1, 20000000), (1, 22000000), (1, 21000000), (1, 3000000)])


class Parsing(unittest.TestCase):
    def test_hnv_samples_sum_the_sinks_and_skip_the_first_second(self):
        self.assertEqual(bl.hnv_samples(HNV_LOG, ["uplink"]), [10.0, 12.0, 11.0])
        self.assertEqual(bl.hnv_samples(HNV_LOG, ["uplink", "blue1"]), [11.5, 14.5, 11.5])
        self.assertEqual(bl.hnv_samples(HNV_LOG, ["red2"]), [])

    def test_hnv_details_report_cycles_hits_and_problems(self):
        d, p = bl.hnv_details(HNV_LOG)
        self.assertEqual(d, "126.7 cycles/pkt, flow cache hits 90.0%")
        self.assertEqual(p, "")
        _, p = bl.hnv_details(HNV_LOG.replace("  (none)", "  no route 7"))
        self.assertIn("dropped packets: no route 7", p)
        _, p = bl.hnv_details(HNV_LOG.replace(": reconciled", ": MISMATCH"))
        self.assertIn("do not reconcile", p)

    def test_testpmd_samples_skip_the_first_and_the_cut_last_period(self):
        self.assertEqual(bl.testpmd_samples(TESTPMD_LOG), [20.0, 22.0, 21.0])

    def test_counter_samples_are_rates_per_interval(self):
        self.assertEqual(bl.counter_samples("0.0 0\n1.0 2000000\n3.0 8000000\n"), [2.0, 3.0])

    def test_median_ignores_missing_values(self):
        self.assertEqual(bl.median([3, None, float("nan"), 1, 2]), 2)
        self.assertTrue(math.isnan(bl.median([None])))
        self.assertTrue(math.isnan(bl.ratio(1.0, 0.0)))


class Targets(unittest.TestCase):
    def test_issue_10_targets(self):
        med = {("encap-multi", 1024, 64, "hnv"): 30.0, ("encap-multi", 1024, 64, "ovs"): 9.0,
               ("encap-multi", 65536, 64, "hnv"): 20.0, ("encap-multi", 65536, 64, "ovs"): 5.0,
               ("encap-multi", 1048576, 64, "hnv"): 19.0, ("encap-multi", 1048576, 64, "ovs"): math.nan}
        self.assertEqual(compare.target("encap-multi", 1024, 64, med), "≥ 3× OVS: met")
        self.assertEqual(compare.target("encap-multi", 65536, 64, med), "≥ 3× OVS: met; ≥ 0.8× own 1k: missed (0.67×)")
        self.assertEqual(compare.target("encap-multi", 1048576, 64, med), "≥ 0.6× own 1k: met")


    def test_cost_curve_targets(self):
        import cost_curve
        self.assertEqual(cost_curve.target("encap", 1024, 20.0, 20.0, 350.0), "Ir ≤ 360: met")
        self.assertEqual(cost_curve.target("local", 1024, 20.0, 20.0, 450.0), "Ir ≤ 300: missed (1.50×)")
        self.assertEqual(cost_curve.target("decap", 65536, 15.0, 20.0, 900.0), "≥ 0.8× own 1k: missed (0.75×)")
        self.assertEqual(cost_curve.target("decap", 1048576, 13.0, 20.0, None), "≥ 0.6× own 1k: met")
        self.assertEqual(cost_curve.target("decap", 16384, 13.0, 20.0, None), "")


class Baseline(unittest.TestCase):
    def test_compare_flags_a_regression_above_the_tolerance(self):
        d = tempfile.mkdtemp()
        try:
            base = os.path.join(d, "b.toml")
            with open(base, "w") as f:
                f.write("# comment\nencap = 500.0\nencap_64k = 800.0\n")
            run = lambda *a: subprocess.run([sys.executable, os.path.join(HERE, "perf_check.py"), *a], capture_output=True, text=True)  # noqa: E731
            r = run("compare", base, "0.05", "encap=520", "encap_64k=700", "local=300")
            self.assertEqual(r.returncode, 0, r.stdout)
            self.assertIn("local 300.0 Ir/packet (no baseline)", r.stdout)
            r = run("compare", base, "0.05", "encap=530")
            self.assertEqual(r.returncode, 1)
            self.assertIn("+6.0% REGRESSION", r.stdout)
        finally:
            shutil.rmtree(d)


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for x in frames:
            f.write(struct.pack("<IIII", 0, 0, len(x), len(x)) + x)


def csum(b):
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def encap(inner, vsid, dst_pa, dst_mac):
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + 8 + len(inner), 0, 0x4000, 64, 47, 0,
                               bytes([192, 168, 4, 11]), bytes(map(int, dst_pa.split(".")))))
    ip[10:12] = struct.pack("!H", csum(bytes(ip)))
    eth = bytes.fromhex(dst_mac.replace(":", "")) + bytes.fromhex("0200c0a8040b") + b"\x08\x00"
    return eth + bytes(ip) + struct.pack("!HHI", 0x2000, 0x6558, vsid << 8) + inner


HNV = os.path.join(ROOT, "target", "release", "hnvswitch")


@unittest.skipUnless(os.access(HNV, os.X_OK) and shutil.which("tshark"), "needs target/release/hnvswitch and tshark")
class MultiPortCheck(unittest.TestCase):
    """check.py attributes each frame to the port that sent it: a frame of Red1 (VSID 6001)
    encapsulated with Blue's VSID must fail even though Blue has a record for the same CA."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()
        out = subprocess.run([HNV, "scenario", "--scenario", "encap-multi", "--flows", "64", "--hugepages", "off", "--mbufs", "4096",
                              "--dir", self.dir], capture_output=True, text=True, check=True).stdout.split()
        self.cfg, self.pcaps, self.sinks, self.srcs = out[0], out[1], out[2], out[3]
        self.policy = os.path.join(self.dir, "encap-multi_policy.toml")
        import tomllib
        with open(self.policy, "rb") as f:
            self.pol = tomllib.load(f)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def check(self, frames):
        out = os.path.join(self.dir, "out.pcap")
        write_pcap(out, frames)
        return subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "ovs", "check.py"), "--kind", "encap", "--policy", self.policy,
                               "--src-port", self.srcs, "--sink-port", self.sinks, "--input", self.pcaps, "--output", out, "--min", "64"],
                              capture_output=True, text=True)

    def encapsulate(self, vsid_of):
        recs = {(r["vsid"], r["ca"]): r for r in self.pol["lookup"]}
        neigh = {n["address"]: n["mac"] for n in self.pol["host"]["neighbors"]}
        vsid = {p["name"]: p.get("vsid") for p in self.pol["ports"]}
        frames = []
        for name, path in zip(self.srcs.split(","), self.pcaps.split(",")):
            for x in read_pcap(path):
                v = vsid_of(name, vsid[name])
                rec = recs[(v, ".".join(map(str, x[30:34])))]
                frames.append(encap(x, v, rec["pa"], neigh[rec["pa"]]))
        return frames

    def test_correct_output_of_all_four_ports_passes(self):
        r = self.check(self.encapsulate(lambda _, v: v))
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("OK: all 64 distinct frames correct", r.stdout)

    def test_red_frames_sent_in_blue_vsid_fail(self):
        r = self.check(self.encapsulate(lambda n, v: 5001 if n.startswith("red") else v))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("VSID 5001 != 6001 of source port red1", r.stdout)

    def test_a_missing_port_fails_the_count(self):
        r = self.check([x for x in self.encapsulate(lambda _, v: v) if x[42 + 6:42 + 12] != bytes.fromhex("00155d020009")])
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("only 48 distinct frames", r.stdout)


if __name__ == "__main__":
    unittest.main()
