#!/usr/bin/python3
"""Tests of scripts/testbed/failover.py, the testbed failover check's numbers.

  /usr/bin/python3 -m unittest discover -s scripts/bench -p 'test_*.py'
"""
import datetime
import io
import json
import os
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "testbed"))
import failover  # noqa: E402


def ping_log(t0, interval, seqs, sent):
    """A `ping -D` log with replies for `seqs` (RTT 1 ms) and its summary."""
    lines = ["PING 10.0.0.7 (10.0.0.7) 56(84) bytes of data."]
    for s in seqs:
        lines.append(f"[{t0 + (s - 1) * interval + 0.001:.6f}] 64 bytes from 10.0.0.7: icmp_seq={s} ttl=64 time=1.00 ms")
    lines.append(f"{sent} packets transmitted, {len(seqs)} received, 0% packet loss, time 1000ms")
    return "\n".join(lines) + "\n"


class FailoverTest(unittest.TestCase):
    def run_ping(self, text, *times):
        with tempfile.NamedTemporaryFile("w", suffix=".out", delete=False) as f:
            f.write(text)
        try:
            out = io.StringIO()
            with redirect_stdout(out):
                failover.ping(f.name, 0.05, list(times))
            return out.getvalue().split("\n")[:-1]
        finally:
            os.unlink(f.name)

    def test_loss_and_recovery_per_event(self):
        # 200 requests at 20/s from t=1000; seqs 41-44 lost after an event at 1002.0
        # (seq 41 is sent at 1002.0), seq 121 lost after one at 1006.0; none after 1008.
        seqs = [s for s in range(1, 201) if s not in (41, 42, 43, 44, 121)]
        lines = self.run_ping(ping_log(1000.0, 0.05, seqs, 200), 1002.0, 1006.0)
        lost, rec = lines[0].split()
        self.assertEqual(lost, "4")
        # First reply after the gap: seq 45, sent at 1002.2, answered 1 ms later.
        self.assertAlmostEqual(float(rec), 0.201, places=3)
        lost, rec = lines[1].split()
        self.assertEqual(lost, "1")
        self.assertAlmostEqual(float(rec), 0.051, places=3)
        self.assertEqual(lines[2], "200 195")

    def test_a_later_loss_is_counted_but_not_the_events_gap(self):
        seqs = [s for s in range(1, 101) if s != 60]  # seq 60 is sent 1 s after the event at 1002.0
        lines = self.run_ping(ping_log(1000.0, 0.05, seqs, 100), 1001.95)
        self.assertEqual(lines[0], "1 0.000")

    def test_no_loss_is_zero_recovery(self):
        lines = self.run_ping(ping_log(1000.0, 0.05, range(1, 101), 100), 1001.0)
        self.assertEqual(lines, ["0 0.000", "100 100"])

    def test_no_reply_after_the_gap_is_no_recovery(self):
        # Replies stop after seq 20; requests sent from 1001.45 on (seqs 30-100) count for the event.
        lines = self.run_ping(ping_log(1000.0, 0.05, range(1, 21), 100), 1001.5)
        self.assertEqual(lines[0], "71 -")

    def test_failover_logged_after_each_event(self):
        log = ("[2026-12-01T08:18:35.889Z WARN  hnvswitch::runtime] port uplink: bond net_bonding0 (active-backup) failover 1: traffic moved from [a] to [b] (links: a down, b up)\n"
               "[2026-12-01T08:18:36.000Z INFO  hnvswitch::runtime] something else\n")
        with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
            f.write(log)
        t = datetime.datetime(2026, 12, 1, 8, 18, 35, 880000, tzinfo=datetime.timezone.utc).timestamp()
        try:
            out = io.StringIO()
            with redirect_stdout(out):
                failover.logged(f.name, [t, t + 2])
        finally:
            os.unlink(f.name)
        self.assertEqual(out.getvalue(), "0.009\n-\n")

    def test_bond_row_is_found_in_the_answer(self):
        answer = {"ok": True, "ports": [{"name": "blue1", "driver": "net_tap"},
                                        {"name": "uplink", "active_member": "net_af_packet1", "failovers": 1, "carrier_changes": 1}]}
        sys.stdin, saved = io.StringIO(json.dumps(answer)), sys.stdin
        try:
            out = io.StringIO()
            with redirect_stdout(out):
                failover.bond("uplink")
                sys.stdin = io.StringIO(json.dumps(answer))
                failover.bond("nosuch")
        finally:
            sys.stdin = saved
        self.assertEqual(out.getvalue(), "net_af_packet1 1 1\n- - -\n")


if __name__ == "__main__":
    unittest.main()
