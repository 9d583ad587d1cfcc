#!/usr/bin/python3
"""Tests of scripts/bench/etcd_scale.py: host 2's policy, the moves (distinct
records, each to another PA, as `hnvctl publish` writes them), when a switch
applied the last move, and the report."""
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import etcd_scale as es  # noqa: E402

HOST1 = """[host]
name = "bench-host1"

[[host.provider_addresses]]
address = "192.168.4.11"
prefix_len = 24
mac = "02:00:c0:a8:04:0b"
uplink = "uplink"

[[host.neighbors]]
address = "192.168.4.22"
mac = "02:00:c0:a8:04:16"

[[ports]]
name = "uplink"
role = "uplink"

[[lookup]]
ca = "10.0.0.5"
vsid = 5001
mac = "00:15:5d:01:00:05"
pa = "192.168.4.11"
"""


class EtcdScaleTest(unittest.TestCase):
    def test_host2_has_its_own_pa_and_host1_as_a_neighbor(self):
        t = es.host2_text(HOST1)
        self.assertIn('name = "bench-host2"', t)
        self.assertNotIn('"bench-host1"', t)
        head, _, rest = t.partition("\n[[ports]]")
        self.assertIn('address = "192.168.4.33"\nprefix_len = 24\nmac = "02:00:c0:a8:04:21"', head)
        self.assertIn('[[host.neighbors]]\naddress = "192.168.4.11"\nmac = "02:00:c0:a8:04:0b"', head)
        self.assertIn('pa = "192.168.4.33"', rest, "its own VMs at its own PA in its file")
        self.assertEqual(t.count("192.168.4.11"), 1, "host 1's PA only as a neighbor")
        with self.assertRaises(ValueError):
            es.host2_text('[host]\nname = "x"\n')

    def test_moves_are_distinct_records_each_to_another_pa(self):
        for tenants, n in ((1000, 10_000), (100, 10_000), (10, 10_000)):
            m = es.moves(n, tenants, 1000)
            self.assertEqual(len(m), n)
            self.assertEqual(len({(v, k) for v, k, _ in m}), n, "distinct records")
            for vsid, k, pa in m:
                self.assertTrue(es.TENANT_VSID0 <= vsid < es.TENANT_VSID0 + tenants and 0 <= k < 1000)
                self.assertNotEqual(pa, es.tenant_pa(k), "a move changes the PA")
        with self.assertRaises(ValueError):
            es.moves(10_001, 10, 1000)

    def test_a_move_is_the_record_as_publish_writes_it(self):
        k, v = es.move_kv("/hnv/", 100_001, 258, "192.168.4.25")
        self.assertEqual(k, "/hnv/lookup/100001/10.128.1.4")
        self.assertEqual(v, '{"ca":"10.128.1.4","vsid":100001,"mac":"02:01:86:a1:01:02","pa":"192.168.4.25"}')
        self.assertEqual(json.loads(v)["ca"], k.rsplit("/", 1)[1])

    def test_applied_at_the_first_sample_past_the_last_revision(self):
        s = [(0.1, 5), (0.2, 90), (0.3, 100), (0.4, 120)]
        self.assertEqual(es.first_at(s, 100), 0.3)
        self.assertEqual(es.first_at(s, 95), 0.3)
        self.assertIsNone(es.first_at(s, 121))

    def test_report_has_a_row_per_switch_and_the_burst(self):
        row = {
            "publish": {"seconds": 20.5, "revision": 1001, "keys": 1_002_030, "batch": 1000, "records": 1_000_035, "tenants": 1000},
            "switches": {
                "host1": {"answered_s": 0.3, "ready_s": 4.2, "rss_mib": 900.0, "hwm_mib": 1500.0},
                "host2": {"answered_s": 0.3, "ready_s": 4.4, "rss_mib": 910.0, "hwm_mib": 1510.0},
            },
            "burst": {
                "moves": 10_000, "threads": 8, "per_txn": 1, "puts": 10_000, "put_s": 3.1, "first_revision": 1002, "last_revision": 11_001, "both_applied_s": 3.25,
                "switches": {"host1": {"applied_s": 3.2, "generations": 150, "change_transactions": 150, "full_merges": 0}, "host2": {"applied_s": 3.25, "generations": 151, "change_transactions": 151, "full_merges": 0}},
            },
        }
        lines = es.report_lines([row], "meta")
        text = "\n".join(lines)
        self.assertIn("| 1,000,035 | 20.50 (1000) | host1 | 0.30 / 4.20 | 900 (1500) | 10,000 (1) | 3.10 | 3.200 | 150 (150, 0) |", text)
        self.assertIn("| host2 |", text)
        self.assertIn("applied the last one 3.250 s after the first put (0.150 s after the last put was answered)", text)
        self.assertIsNone(es.lag({"put_s": 1.0}))


if __name__ == "__main__":
    unittest.main()
