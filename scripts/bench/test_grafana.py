#!/usr/bin/python3
"""Tests of the Grafana dashboard docs/grafana/hnvswitch.json against the
Prometheus metrics the switch exports (vswitch/src/metrics.rs):

- the JSON parses, panel ids are unique, every query has a data source;
- every metric name a query uses is one the switch exports, and every label
  a query selects or groups by is one the switch attaches (or Prometheus's
  own `instance`/`job`);
- the dashboard shows what an operator needs: per-port and per-VSID rates,
  drops by reason, per-worker busy share and cycles per packet, the
  flow-cache hit rate;
- with HNV_METRICS_SCRAPE=FILE (a scrape of a running switch, written by
  scripts/package-test.sh): each metric the dashboard uses is in it, with
  the labels the queries select on;
- with HNV_PROMETHEUS_URL=URL (a Prometheus scraping that switch, also
  started by scripts/package-test.sh): every query evaluates without error,
  and those that need no traffic return series.

  /usr/bin/python3 -m unittest discover -s scripts/bench -p 'test_*.py'
"""
import json
import os
import re
import sys
import unittest
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True
DASHBOARD = os.path.join(ROOT, "docs", "grafana", "hnvswitch.json")
METRICS_RS = os.path.join(ROOT, "vswitch", "src", "metrics.rs")

# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"instance", "job"}
# PromQL words that look like identifiers but are not metrics.
PROMQL_WORDS = {"sum", "by", "rate", "max", "clamp_min", "sort_desc", "label_values", "without", "on", "ignoring"}


def load_dashboard():
    with open(DASHBOARD, encoding="utf-8") as f:
        return json.load(f)


def panels(dash):
    """Every panel, rows' nested panels included."""
    out = []
    for p in dash.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def queries(dash):
    """(where, PromQL) for every panel target and query variable."""
    out = []
    for p in panels(dash):
        for t in p.get("targets", []):
            out.append((f"panel {p.get('title')!r} {t.get('refId')}", t["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            out.append((f"variable {v['name']}", q))
    return out


def metric_names(expr):
    """Metric names in a PromQL expression: identifiers followed by '{', '[' or ')' or ','
    that are not functions, keywords or labels (our metrics all start with hnv_)."""
    names = set(re.findall(r"\b(hnv_[a-z0-9_]+)\b", expr))
    other = {n for n in re.findall(r"\b([a-z_][a-z0-9_]*)\s*\{", expr) if n not in PROMQL_WORDS}
    return names | other


def selected_labels(expr):
    """metric -> labels named in its {...} selector."""
    out = {}
    for m, sel in re.findall(r"\b([a-z_][a-z0-9_]*)\{([^}]*)\}", expr):
        out.setdefault(m, set()).update(re.findall(r"([a-z_][a-z0-9_]*)\s*(?:=~|!~|!=|=)", sel))
    return out


def grouping_labels(expr):
    """Labels in by (...) clauses and label_values(metric, label)."""
    labels = set()
    for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        labels.update(x.strip() for x in group.split(",") if x.strip())
    labels.update(re.findall(r"label_values\([^,]*,\s*([a-z_][a-z0-9_]*)\s*\)", expr))
    return labels


def exported():
    """(metric names, label names) the switch's exposition code writes: names
    in string literals of metrics.rs outside its test modules."""
    with open(METRICS_RS, encoding="utf-8") as f:
        text = f.read().split("#[cfg(test)]")[0]
    literals = re.findall(r'"((?:[^"\\]|\\.)*)"', text)
    names, labels = set(), set()
    for lit in literals:
        names.update(re.findall(r"\b(hnv_[a-z0-9_]+)\b", lit))
        labels.update(re.findall(r"\{\{?([a-z_]+)=", lit))
    return names, labels


def parse_scrape(text):
    """metric -> set of label names, from Prometheus text exposition."""
    return parse_scrape_samples(text)[0]


def parse_scrape_samples(text):
    """(metric -> set of label names, set of metrics with at least one sample).

    A metric declared (# TYPE) without samples, e.g. bond failovers on a switch
    with no bond, has no series whose labels could be checked."""
    out, sampled = {}, set()
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) \S+", line)
        if m:
            out.setdefault(m.group(1), set())
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s", line)
        if m:
            labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
            out.setdefault(m.group(1), set()).update(labels)
            sampled.add(m.group(1))
    return out, sampled


def concrete(expr, rate_interval="5s"):
    """A dashboard query with Grafana's variables replaced, as Grafana sends it."""
    return expr.replace("$__rate_interval", rate_interval).replace("$instance", ".*").replace("$port", ".*").replace("$vsid", ".*")


class DashboardTest(unittest.TestCase):
    def setUp(self):
        self.dash = load_dashboard()
        self.queries = queries(self.dash)

    def test_parses_with_unique_ids_and_data_sources(self):
        self.assertEqual(self.dash["uid"], "hnvswitch")
        ids = [p["id"] for p in panels(self.dash)]
        self.assertEqual(len(ids), len(set(ids)), "panel ids are unique")
        self.assertGreater(len(self.queries), 10)
        for p in panels(self.dash):
            if p["type"] == "row":
                continue
            self.assertTrue(p.get("title"), p)
            self.assertTrue(p.get("targets"), p["title"])
            for t in p["targets"]:
                self.assertEqual(t["datasource"]["uid"], "${datasource}", p["title"])
                self.assertTrue(t["expr"].strip(), p["title"])
            g = p["gridPos"]
            self.assertTrue(0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"])

    def test_every_metric_is_one_the_switch_exports(self):
        names, _ = exported()
        self.assertIn("hnv_drops_total", names)
        self.assertIn("hnv_worker_busy_cycles_total", names)
        for where, expr in self.queries:
            used = metric_names(expr)
            self.assertTrue(used, f"{where}: no metric in {expr}")
            for m in used:
                self.assertIn(m, names, f"{where}: {m} is not exported by vswitch/src/metrics.rs")

    def test_every_label_is_one_the_switch_attaches(self):
        _, labels = exported()
        self.assertTrue({"port", "vsid", "reason", "worker", "outcome"} <= labels, labels)
        for where, expr in self.queries:
            used = grouping_labels(expr) | set().union(*selected_labels(expr).values(), set())
            for label in used:
                self.assertIn(label, labels | TARGET_LABELS, f"{where}: label {label!r} in {expr}")

    def test_shows_what_the_operator_needs(self):
        exprs = " ".join(e for _, e in self.queries)
        for m in ["hnv_port_rx_packets_total", "hnv_port_tx_packets_total", "hnv_vsid_rx_packets_total", "hnv_vsid_tx_packets_total",
                  "hnv_flow_cache_hits_total", "hnv_flow_cache_misses_total", "hnv_worker_busy_cycles_total", "hnv_worker_idle_cycles_total",
                  "hnv_worker_rx_packets_total"]:
            self.assertIn(m, exprs)
        self.assertRegex(exprs, r"sum by \(reason\) \(rate\(hnv_drops_total")
        titles = {p["title"] for p in panels(self.dash)}
        for t in ["Port receive rate", "VSID receive rate", "Drops by reason", "Worker busy share", "Cycles per packet", "Flow-cache hit rate"]:
            self.assertIn(t, titles)
        # Bonded uplinks: failovers (as events over Grafana's interval, and since start).
        self.assertIn("hnv_bond_failovers_total", exprs)
        # Rates are per second over Grafana's interval, or increases over it for rare events
        # (failovers), never raw counters (the "since start" tables excepted).
        for where, expr in self.queries:
            if "_total" in expr and "rate(" not in expr and "increase(" not in expr and "table" not in where.lower() and "since start" not in where:
                self.assertTrue(expr.startswith("label_values"), f"{where}: a counter without rate(): {expr}")

    def test_helpers(self):
        self.assertEqual(metric_names('sum by (port) (rate(hnv_x_total{instance=~"$i"}[5s]))'), {"hnv_x_total"})
        self.assertEqual(selected_labels('rate(hnv_x{instance=~"a",port=~"b"}[1m])'), {"hnv_x": {"instance", "port"}})
        self.assertEqual(grouping_labels("sum by (instance, worker) (x) / label_values(m, vsid)"), {"instance", "worker", "vsid"})
        scrape = '# HELP a_total A.\n# TYPE a_total counter\na_total{port="p",vsid="1"} 3\n# TYPE b gauge\nb 1\n'
        self.assertEqual(parse_scrape(scrape), {"a_total": {"port", "vsid"}, "b": set()})
        declared_only = "# TYPE c_total counter\n" + scrape
        self.assertEqual(parse_scrape_samples(declared_only), ({"a_total": {"port", "vsid"}, "b": set(), "c_total": set()}, {"a_total", "b"}))

    @unittest.skipUnless(os.environ.get("HNV_METRICS_SCRAPE"), "HNV_METRICS_SCRAPE (a live scrape) not given")
    def test_against_a_live_scrape(self):
        with open(os.environ["HNV_METRICS_SCRAPE"], encoding="utf-8") as f:
            live, sampled = parse_scrape_samples(f.read())
        for where, expr in self.queries:
            for m in metric_names(expr):
                self.assertIn(m, live, f"{where}: {m} is not in the running switch's metrics")
            for m, labels in selected_labels(expr).items():
                if m not in sampled:
                    continue  # declared, no series on this switch (no bond): no labels to check
                for label in labels - TARGET_LABELS:
                    self.assertIn(label, live.get(m, set()), f"{where}: {m} has no label {label!r} in the scrape")

    @unittest.skipUnless(os.environ.get("HNV_PROMETHEUS_URL"), "HNV_PROMETHEUS_URL (a Prometheus scraping a switch) not given")
    def test_queries_evaluate_in_prometheus(self):
        url = os.environ["HNV_PROMETHEUS_URL"].rstrip("/")
        for where, expr in self.queries:
            if expr.startswith("label_values("):
                metric, label = re.match(r"label_values\((.*),\s*(\w+)\)$", expr).groups()
                q = urllib.parse.urlencode({"match[]": concrete(metric)})
                with urllib.request.urlopen(f"{url}/api/v1/label/{label}/values?{q}", timeout=10) as r:
                    body = json.load(r)
                self.assertEqual(body["status"], "success", f"{where}: {body}")
                self.assertTrue(body["data"], f"{where}: no values for {label}")
                continue
            q = urllib.parse.urlencode({"query": concrete(expr)})
            with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=10) as r:
                body = json.load(r)
            self.assertEqual(body["status"], "success", f"{where}: {body}")
            # A switch with no traffic has no drops (filtered by > 0); everything else has series.
            if "> 0" not in expr:
                self.assertTrue(body["data"]["result"], f"{where}: no series for {concrete(expr)}")


if __name__ == "__main__":
    unittest.main()
