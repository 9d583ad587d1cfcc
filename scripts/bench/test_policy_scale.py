#!/usr/bin/python3
"""Tests of scripts/bench/policy_scale.py: the tenant addresses agree with
`hnvswitch scenario --tenants` (vswitch/src/scenarios.rs), percentiles, and
the report's verdicts against issue 11's targets."""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import policy_scale as ps  # noqa: E402


class PolicyScaleTest(unittest.TestCase):
    def test_tenant_addresses_match_the_generator(self):
        self.assertEqual(ps.tenant_ca(0), "10.128.0.2")
        self.assertEqual(ps.tenant_ca(300), "10.128.1.46")
        self.assertEqual(ps.tenant_mac(100_001, 258), "02:01:86:a1:01:02")
        self.assertEqual(ps.tenant_pa(5), "192.168.4.23")
        self.assertEqual(ps.tenant_pa(5, 3), "192.168.4.22")

    def test_percentile_is_nearest_rank(self):
        xs = list(range(1, 101))
        self.assertEqual(ps.percentile(xs, 99), 99)
        self.assertEqual(ps.percentile(xs, 50), 50)
        self.assertEqual(ps.percentile([7.0], 99), 7.0)

    def test_report_says_met_and_missed(self):
        row = {"records": 1_000_035, "startup_s": 6.1, "rss_mib": 900.0, "hwm_mib": 950.0, "tables": {"records": 1000, "record_bytes": 100_000, "map_bytes": 50_000},
               "applied_ms": {"p50": 0.2, "p99": 0.9}, "forwarded_ms": {"p50": 0.3, "p99": 1.5}, "changes": 1000, "during_changes": {"drops": {}}}
        text = "\n".join(ps.report_lines([row], "test"))
        self.assertIn("start-up missed (6.10 s)", text)
        self.assertIn("RSS met (900 MiB)", text)
        self.assertIn("change p99 met (0.900 ms)", text)
        self.assertIn("tables met (150 B/record)", text)
        self.assertIn("| 1,000,035 |", text)


if __name__ == "__main__":
    unittest.main()
