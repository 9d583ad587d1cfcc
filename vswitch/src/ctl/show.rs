//! JSON rendering of `show`: each view of the running switch as the rows or
//! the document `hnvctl` prints (as a table, or raw with `--json`).
//!
//! Reads only: the policy service's store and status, the datapath and
//! worker counters, the port rows the main loop refreshes, the capture and
//! the etcd status. Runs on a control thread; never blocks a worker.

use super::state::CtlState;
use hnv_datapath::ext::live_capture::CaptureStatus;
use hnv_datapath::Totals;
use hnv_policy::api::Show;
use pmd::WorkerStats;
use serde_json::{json, Value};

/// A capture's status as `show capture` and `capture start/stop` report it.
pub fn capture_json(c: &CaptureStatus, running: bool) -> Value {
    json!({"path": c.path.display().to_string(), "running": running, "seconds": (c.seconds * 10.0).round() / 10.0,
           "written": c.summary.written, "lost": c.summary.lost, "ports": format!("{:?}", c.spec.ports), "vsids": format!("{:?}", c.spec.vsids),
           "stages": format!("{:?}", c.spec.stages).to_lowercase()})
}

/// The rows or document of `show what`. Only the views that list policy
/// objects copy the policy (counters, flows, workers, ports, notices and neighbors do not).
pub fn show(state: &CtlState, what: Show) -> Value {
    let store = state.service.store();
    let policy = || store.policy();
    let totals = Totals::sum(state.stats.iter().map(|s| &**s));
    match what {
        Show::Ports => {
            let rows = state.ports.lock().map(|p| p.clone()).unwrap_or_default();
            Value::Array(
                rows.iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let (rx, tx, drops) = totals.ports.get(i).copied().unwrap_or_default();
                        // Name, link, rates, then counters (the switch's after the NIC's), then the device.
                        let mut v = serde_json::Map::new();
                        if let Value::Object(o) = serde_json::to_value(r).unwrap_or(Value::Null) {
                            let mut o = o;
                            for k in ["name", "link_up", "rx_pps", "tx_pps", "rx_packets", "tx_packets", "rx_missed"] {
                                if let Some(x) = o.remove(k) {
                                    v.insert(k.into(), x);
                                }
                            }
                            v.insert("switch_rx".into(), json!(rx));
                            v.insert("switch_tx".into(), json!(tx));
                            v.insert("drops".into(), json!(drops));
                            v.extend(o);
                        }
                        Value::Object(v)
                    })
                    .collect(),
            )
        }
        Show::Vsids => {
            let policy = policy();
            let slots = store.vsid_slots();
            Value::Array(
                policy
                    .subnets
                    .iter()
                    .map(|s| {
                        let slot = slots.iter().find(|(_, v)| *v == s.vsid.get()).map(|(sl, _)| *sl);
                        let (rx, tx, drops) = slot.and_then(|sl| totals.vsids.get(usize::from(sl)).copied()).unwrap_or_default();
                        let local: Vec<&str> = policy.ports.iter().filter(|p| p.vsid == Some(s.vsid)).map(|p| p.name.as_str()).collect();
                        json!({"vsid": s.vsid.get(), "routing_domain": s.routing_domain, "encap": s.encap.as_str(), "prefixes": s.prefixes.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" "),
                           "gateway_mac": hnv_policy::format_mac(&s.gateway_mac), "local_ports": local.join(" "), "rx": rx, "tx": tx, "drops": drops})
                    })
                    .collect(),
            )
        }
        Show::Records => Value::Array(
            policy()
                .lookup
                .iter()
                .map(|r| {
                    json!({"vsid": r.vsid.get(), "ca": r.ca.to_string(), "mac": hnv_policy::format_mac(&r.mac), "pa": r.pa.to_string(),
                           "rule": format!("{:?}", r.rule).to_lowercase(), "type": format!("{:?}", r.kind).to_lowercase(), "vm": r.vm_name.clone().unwrap_or_default()})
                })
                .collect(),
        ),
        Show::Routes => Value::Array(
            policy()
                .customer_routes
                .iter()
                .map(|r| json!({"routing_domain": r.routing_domain, "vsid": r.vsid.get(), "destination": r.destination.to_string(), "next_hop": r.next_hop.to_string(), "metric": r.metric}))
                .collect(),
        ),
        Show::Acl => serde_json::to_value(&hnv_policy::PolicyFile::from_policy(&policy()).acl).unwrap_or(Value::Null),
        Show::Counters => {
            let mut v = json!({
                "rx": totals.rx, "tx": totals.tx, "replicas": totals.replicas, "drops": totals.total_drops(), "reconciles": totals.reconciles(),
                "answered": totals.answered, "too_big_sent": totals.too_big_sent, "mss_clamped": totals.mss_clamped, "encapsulated": totals.encapsulated, "decapsulated": totals.decapsulated, "routed": totals.routed,
                "drop_reasons": totals.drops.iter().map(|(r, n)| json!({"reason": r.name(), "packets": n, "meaning": r.description()})).collect::<Vec<_>>(),
            });
            // With etcd: the revision the policy in force follows (a cheap poll; `show policy` copies the whole policy).
            if let (Some(e), Some(o)) = (state.etcd.as_ref(), v.as_object_mut()) {
                let st = e.lock().map(|s| s.clone()).unwrap_or_default();
                o.insert("etcd_applied_revision".into(), json!(st.applied_revision));
                o.insert("etcd_change_transactions".into(), json!(st.change_transactions));
                o.insert("etcd_full_merges".into(), json!(st.full_merges));
            }
            v
        }
        Show::Flows => Value::Array(
            state
                .stats
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let (hits, misses) = (s.flow_hits.get(), s.flow_misses.get());
                    let entries = s.flow_entries.get();
                    json!({"worker": i, "entries": entries, "capacity": s.flow_capacity.get(), "hits": hits, "misses": misses, "hit_pct": crate::percent(hits, hits + misses),
                           "stale": s.flow_stale.get(), "evictions": s.flow_evictions.get(), "policy_generation": s.policy_generation.get()})
                })
                .collect(),
        ),
        Show::Workers => Value::Array(state.workers.iter().enumerate().map(|(i, w)| worker_row(i, w)).collect()),
        Show::Tables => {
            let m = store.memory();
            let n = m.records.max(1);
            let tables = m.tables.record_bytes + m.tables.map_bytes;
            json!({"generation": store.snapshot().generation, "records": m.records, "record_bytes": m.tables.record_bytes, "map_bytes": m.tables.map_bytes,
                   "template_bytes": m.tables.template_bytes, "tables_bytes_per_record": tables / n, "policy_bytes": m.policy_bytes,
                   "policy_bytes_per_record": m.policy_bytes / n, "slot_bytes": m.slot_bytes, "slot_bytes_per_record": m.slot_bytes / n})
        }
        Show::Policy => {
            let etcd = state.etcd.as_ref().map(|e| e.lock().map(|s| s.clone()).unwrap_or_default());
            let source = etcd.as_ref().map_or_else(|| "policy file".to_string(), crate::etcd::status::Status::line);
            let policy = policy();
            json!({"generation": store.snapshot().generation, "source": source, "reloads": state.service.reload_status(), "etcd": etcd, "toml": hnv_policy::to_toml(&policy)})
        }
        Show::Notices => {
            let since = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let now = std::time::Instant::now();
            json!({
                "received": store.notices().iter().map(|n| json!({"unix_time": since(n.at), "kind": n.kind, "vsid": n.vsid, "ca": n.ca.to_string(), "from": n.from.to_string(),
                    "new_pa": n.new_pa.map(|p| p.to_string()).unwrap_or_default(), "outcome": n.outcome})).collect::<Vec<_>>(),
                "redirects_in_force": store.redirects().iter().map(|r| json!({"vsid": r.vsid, "ca": r.ca.to_string(), "policy_pa": r.from.to_string(), "new_pa": r.new_pa.to_string(),
                    "seconds_left": r.until.saturating_duration_since(now).as_secs()})).collect::<Vec<_>>(),
                "sent": totals.control_sent,
                "redirects_accepted": store.redirect_counts().0,
                "redirects_refused": store.redirect_counts().1,
            })
        }
        Show::Neighbors => {
            let (entries, counts, skipped) = store.neighbors();
            let now = std::time::Instant::now();
            let secs = |d: std::time::Duration| (d.as_secs_f64() * 10.0).round() / 10.0;
            let rows: Vec<Value> = entries
                .iter()
                .map(|e| {
                    let dynamic = e.source != hnv_datapath::neighbor::Source::Static;
                    json!({"address": e.ip.to_string(), "mac": e.mac.map(|m| hnv_policy::format_mac(&hnv_policy::EthernetAddress(m))).unwrap_or_default(), "state": e.state.name(),
                           "source": e.source.name(), "age_s": if dynamic && e.mac.is_some() { json!(secs(now.saturating_duration_since(e.confirmed))) } else { Value::Null },
                           "probes": e.probes, "unanswered": e.unanswered,
                           "next_probe_s": if dynamic && e.state != hnv_datapath::neighbor::State::Reachable { json!(secs(e.next.saturating_duration_since(now))) } else { Value::Null },
                           "via": e.via.map(|v| v.pa.to_string()).unwrap_or_default()})
                })
                .collect();
            json!({"neighbors": rows, "requests_sent": totals.neighbor_requests, "replies_accepted": counts.accepted, "replies_refused": counts.refused,
                   "over_limit": counts.over_limit, "queue_full": skipped})
        }
        Show::Capture => state.captures.status().map_or_else(|| json!({"running": false}), |c| capture_json(&c, true)),
    }
}

/// One worker's row of `show workers`: I/O counters, the share of TSC
/// cycles spent in iterations that received packets, and those busy cycles
/// per received packet (both since start; `hnvctl watch` shows them per
/// interval from the raw cycle counters).
pub fn worker_row(i: usize, w: &WorkerStats) -> Value {
    let (rx, busy, idle) = (w.rx.get(), w.busy_cycles.get(), w.idle_cycles.get());
    json!({"worker": i, "rx": rx, "tx": w.tx.get(), "tx_refused": w.tx_refused.get(), "busy_pct": crate::percent(busy, busy + idle),
           "cycles_per_pkt": if rx > 0 { busy as f64 / rx as f64 } else { 0.0 }, "busy_cycles": busy, "idle_cycles": idle})
}
