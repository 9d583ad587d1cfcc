//! Prometheus text metrics over HTTP (off unless `control.metrics` is set;
//! meant for loopback). Every GET is answered with the current counters;
//! the server runs on its own thread and never touches the datapath beyond
//! relaxed counter reads. DPDK's own telemetry socket stays available.

use hnv_datapath::{DatapathStats, PolicyStore, Totals};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A running metrics server; dropping it stops the thread.
#[derive(Debug)]
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The exposition text.
pub fn render(store: &PolicyStore, stats: &[Arc<DatapathStats>], ports: &[String]) -> String {
    let t = Totals::sum(stats.iter().map(|s| &**s));
    let mut s = String::new();
    let mut counter = |name: &str, help: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
        for (labels, v) in rows {
            let _ = writeln!(s, "{name}{labels} {v}");
        }
    };
    counter("hnv_rx_packets_total", "Packets received by the datapath.", vec![(String::new(), t.rx)]);
    counter("hnv_tx_packets_total", "Packets handed to tx queues.", vec![(String::new(), t.tx)]);
    counter("hnv_encapsulated_packets_total", "Packets NVGRE-encapsulated.", vec![(String::new(), t.encapsulated)]);
    counter("hnv_nvgree_messages_sent_total", "MS-NVGREE REDIRECT/UNREACHABLE messages sent.", vec![(String::new(), t.control_sent)]);
    let (accepted, refused) = store.redirect_counts();
    counter("hnv_nvgree_redirects_received_total", "MS-NVGREE REDIRECTs received, by outcome.", vec![("{outcome=\"accepted\"}".into(), accepted), ("{outcome=\"refused\"}".into(), refused)]);
    counter("hnv_decapsulated_packets_total", "Packets NVGRE-decapsulated.", vec![(String::new(), t.decapsulated)]);
    counter("hnv_arp_nd_answered_total", "ARP/ND requests answered from policy.", vec![(String::new(), t.answered)]);
    counter("hnv_routed_packets_total", "Packets routed between virtual subnets.", vec![(String::new(), t.routed)]);
    counter("hnv_flow_cache_hits_total", "Flow-cache hits.", vec![(String::new(), t.flow_hits)]);
    counter("hnv_flow_cache_misses_total", "Flow-cache misses.", vec![(String::new(), t.flow_misses)]);
    counter("hnv_drops_total", "Packets dropped, by reason.", t.drops.iter().map(|(r, n)| (format!("{{reason=\"{}\"}}", r.name()), *n)).collect());
    counter(
        "hnv_port_rx_packets_total",
        "Packets received, by switch port.",
        ports.iter().enumerate().map(|(i, p)| (format!("{{port=\"{p}\"}}"), t.ports.get(i).map_or(0, |c| c.0))).collect(),
    );
    counter(
        "hnv_port_tx_packets_total",
        "Packets sent, by switch port.",
        ports.iter().enumerate().map(|(i, p)| (format!("{{port=\"{p}\"}}"), t.ports.get(i).map_or(0, |c| c.1))).collect(),
    );
    let slots = store.vsid_slots();
    counter(
        "hnv_vsid_rx_packets_total",
        "Packets received, by VSID.",
        slots.iter().map(|(sl, v)| (format!("{{vsid=\"{v}\"}}"), t.vsids.get(usize::from(*sl)).map_or(0, |c| c.0))).collect(),
    );
    counter(
        "hnv_vsid_tx_packets_total",
        "Packets sent, by VSID.",
        slots.iter().map(|(sl, v)| (format!("{{vsid=\"{v}\"}}"), t.vsids.get(usize::from(*sl)).map_or(0, |c| c.1))).collect(),
    );
    let _ = writeln!(s, "# HELP hnv_policy_generation Policy generation in force.\n# TYPE hnv_policy_generation gauge\nhnv_policy_generation {}", store.snapshot().generation);
    s
}

/// Listen on `addr` and answer every request with [`render`].
///
/// # Errors
/// When the address cannot be bound.
pub fn serve(addr: &str, store: Arc<PolicyStore>, stats: Vec<Arc<DatapathStats>>) -> std::io::Result<Server> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new().name("hnv-metrics".into()).spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut c, _)) => {
                    let _ = c.set_nonblocking(false);
                    let _ = c.set_read_timeout(Some(Duration::from_millis(500)));
                    let mut buf = [0u8; 1024];
                    let _ = c.read(&mut buf);
                    // Port names from the policy in force (ports may be added or removed).
                    let ports: Vec<String> = store.policy().ports.iter().map(|p| p.name.clone()).collect();
                    let body = render(&store, &stats, &ports);
                    let head = format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n", body.len());
                    let _ = c.write_all(head.as_bytes()).and_then(|_| c.write_all(body.as_bytes()));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    })?;
    log::info!("metrics on http://{addr}/metrics");
    Ok(Server { stop, thread: Some(thread) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_outcomes_are_exported() {
        let store = PolicyStore::new(hnv_policy::parse(hnv_policy::example::BLUE_RED_HOST1, "t").unwrap_or_else(|e| panic!("{e}")));
        let msg = hnv_wire::nvgree::ControlRepr {
            control: hnv_wire::nvgree::Control::Redirect { new_pa: hnv_wire::Ipv4Address::new(192, 168, 4, 99) },
            from_pa: hnv_wire::Ipv4Address::new(192, 168, 4, 22),
            to_pa: hnv_wire::Ipv4Address::new(192, 168, 4, 11),
            src_ca: hnv_wire::Ipv4Address::new(10, 0, 0, 5),
            dst_ca: hnv_wire::Ipv4Address::new(10, 0, 0, 7),
        };
        store.offer_control(5001, msg);
        store.apply_control(std::time::Instant::now());
        let text = render(&store, &[Arc::new(DatapathStats::default())], &[]);
        assert!(text.contains("hnv_nvgree_redirects_received_total{outcome=\"accepted\"} 0\n"), "{text}");
        assert!(text.contains("hnv_nvgree_redirects_received_total{outcome=\"refused\"} 1\n"), "{text}");
    }
}
