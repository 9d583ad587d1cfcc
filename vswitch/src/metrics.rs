//! Prometheus text metrics over HTTP (off unless `control.metrics` is set;
//! meant for loopback). Every GET is answered with the current counters;
//! the server runs on its own threads and never touches the datapath beyond
//! relaxed counter reads. DPDK's own telemetry socket stays available.
//!
//! Hostile or broken clients: each connection is served on its own thread,
//! at most [`MAX_CONNECTIONS`] at once (one more is closed unanswered); a
//! connection gets [`CONNECTION_DEADLINE`] in all to send its request (at
//! most [`MAX_REQUEST`] bytes) and take the answer. Stopping the server
//! shuts down every open connection, so it never waits on a slow client.

use crate::service::{PolicyService, ReloadStatus};
use hnv_datapath::{DatapathStats, DropReason, PolicyStore, Totals};
use pmd::WorkerStats;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 8;
/// Longest request head read.
pub const MAX_REQUEST: usize = 8 << 10;
/// How long one connection may take, from accept to the last byte answered.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);

/// A running metrics server; dropping it stops the thread.
#[derive(Debug)]
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    local: SocketAddr,
}

impl Server {
    /// The address it listens on (the port chosen when `addr` said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `v` as a label value: backslash, double quote and newline escaped, so a
/// port name cannot end its label or add lines to the exposition.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The exposition text: datapath counters, the policy generation and SIGHUP reload outcomes.
pub fn render(store: &PolicyStore, stats: &[Arc<DatapathStats>], ports: &[String], reloads: &ReloadStatus) -> String {
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
    counter("hnv_encapsulated_packets_total", "Packets NVGRE- or VXLAN-encapsulated.", vec![(String::new(), t.encapsulated)]);
    counter("hnv_nvgree_messages_sent_total", "MS-NVGREE REDIRECT/UNREACHABLE messages sent.", vec![(String::new(), t.control_sent)]);
    let (accepted, refused) = store.redirect_counts();
    counter("hnv_nvgree_redirects_received_total", "MS-NVGREE REDIRECTs received, by outcome.", vec![("{outcome=\"accepted\"}".into(), accepted), ("{outcome=\"refused\"}".into(), refused)]);
    let (entries, counts, skipped) = store.neighbors();
    counter("hnv_neighbor_requests_sent_total", "ARP requests and neighbor solicitations sent for provider next hops.", vec![(String::new(), t.neighbor_requests)]);
    counter("hnv_neighbor_requests_skipped_total", "Neighbor requests not queued because the request queue was full (asked again by the backoff).", vec![(String::new(), skipped)]);
    counter(
        "hnv_neighbor_replies_total",
        "Provider ARP/ND seen for the neighbor table, by outcome (refused: not a next hop the policy needs, or a static one).",
        vec![("{outcome=\"accepted\"}".into(), counts.accepted), ("{outcome=\"refused\"}".into(), counts.refused)],
    );
    counter("hnv_neighbor_over_limit_total", "Provider next hops left unresolved because the neighbor table was full.", vec![(String::new(), counts.over_limit)]);
    counter("hnv_decapsulated_packets_total", "Packets NVGRE- or VXLAN-decapsulated.", vec![(String::new(), t.decapsulated)]);
    counter("hnv_arp_nd_answered_total", "ARP/ND requests answered from policy.", vec![(String::new(), t.answered)]);
    counter("hnv_icmp_too_big_sent_total", "ICMP fragmentation-needed / ICMPv6 packet-too-big errors sent to VMs (path MTU).", vec![(String::new(), t.too_big_sent)]);
    counter("hnv_tcp_mss_clamped_total", "TCP SYNs from VMs whose MSS option was lowered to fit the uplink MTU ([host] mss_clamp).", vec![(String::new(), t.mss_clamped)]);
    counter("hnv_routed_packets_total", "Packets routed between virtual subnets.", vec![(String::new(), t.routed)]);
    counter("hnv_flow_cache_hits_total", "Flow-cache hits.", vec![(String::new(), t.flow_hits)]);
    counter("hnv_flow_cache_misses_total", "Flow-cache misses.", vec![(String::new(), t.flow_misses)]);
    // Every reason, zeros included: a series that first appears at N hides its first N drops from rate().
    let drops = DropReason::ALL.iter().map(|r| (format!("{{reason=\"{}\"}}", r.name()), t.drops.iter().find(|(d, _)| d == r).map_or(0, |(_, n)| *n))).collect();
    counter("hnv_drops_total", "Packets dropped, by reason.", drops);
    counter(
        "hnv_port_rx_packets_total",
        "Packets received, by switch port.",
        ports.iter().enumerate().map(|(i, p)| (format!("{{port=\"{}\"}}", label(p)), t.ports.get(i).map_or(0, |c| c.0))).collect(),
    );
    counter("hnv_port_tx_packets_total", "Packets sent, by switch port.", ports.iter().enumerate().map(|(i, p)| (format!("{{port=\"{}\"}}", label(p)), t.ports.get(i).map_or(0, |c| c.1))).collect());
    let slots = store.vsid_slots();
    counter("hnv_vsid_rx_packets_total", "Packets received, by VSID.", slots.iter().map(|(sl, v)| (format!("{{vsid=\"{v}\"}}"), t.vsids.get(usize::from(*sl)).map_or(0, |c| c.0))).collect());
    counter("hnv_vsid_tx_packets_total", "Packets sent, by VSID.", slots.iter().map(|(sl, v)| (format!("{{vsid=\"{v}\"}}"), t.vsids.get(usize::from(*sl)).map_or(0, |c| c.1))).collect());
    counter("hnv_policy_reloads_total", "Policy file reloads (SIGHUP), by outcome.", vec![("{outcome=\"ok\"}".into(), reloads.ok), ("{outcome=\"refused\"}".into(), reloads.failed)]);
    let snap = store.snapshot();
    let _ = writeln!(s, "# HELP hnv_vsid_encap The encapsulation a VSID's traffic to other hosts uses (nvgre or vxlan): 1 for the one in force.\n# TYPE hnv_vsid_encap gauge");
    for (_, v) in &slots {
        if let Some(e) = snap.vsid(*v) {
            let _ = writeln!(s, "hnv_vsid_encap{{vsid=\"{v}\",encap=\"{}\"}} 1", e.encap.as_str());
        }
    }
    let _ = writeln!(s, "# HELP hnv_neighbors Provider next hops in the neighbor table, by state and source.\n# TYPE hnv_neighbors gauge");
    for st in hnv_datapath::neighbor::State::ALL {
        for src in [hnv_datapath::neighbor::Source::Static, hnv_datapath::neighbor::Source::Learned, hnv_datapath::neighbor::Source::Resolved] {
            let n = entries.iter().filter(|e| e.state == st && e.source == src).count();
            let _ = writeln!(s, "hnv_neighbors{{state=\"{}\",source=\"{}\"}} {n}", st.name(), src.name());
        }
    }
    let _ = writeln!(s, "# HELP hnv_policy_generation Policy generation in force.\n# TYPE hnv_policy_generation gauge\nhnv_policy_generation {}", store.snapshot().generation);
    s
}

/// The exposition text of the poll-mode workers' counters, one series per
/// worker (`worker="0"`, ...): busy share is `rate(busy) / (rate(busy) +
/// rate(idle))`, cycles per packet `rate(busy) / rate(rx)`.
pub fn render_workers(workers: &[Arc<WorkerStats>]) -> String {
    let mut s = String::new();
    type Read = fn(&WorkerStats) -> u64;
    let rows: [(&str, &str, Read); 5] = [
        ("hnv_worker_rx_packets_total", "Packets received, by poll-mode worker.", |w| w.rx.get()),
        ("hnv_worker_tx_packets_total", "Packets accepted by tx queues, by poll-mode worker.", |w| w.tx.get()),
        ("hnv_worker_tx_refused_packets_total", "Packets a tx queue refused (full), freed, by poll-mode worker.", |w| w.tx_refused.get()),
        ("hnv_worker_busy_cycles_total", "TSC cycles in poll iterations that received packets, by poll-mode worker.", |w| w.busy_cycles.get()),
        ("hnv_worker_idle_cycles_total", "TSC cycles in poll iterations that received nothing, by poll-mode worker.", |w| w.idle_cycles.get()),
    ];
    for (name, help, read) in rows {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
        for (i, w) in workers.iter().enumerate() {
            let _ = writeln!(s, "{name}{{worker=\"{i}\"}} {}", read(w));
        }
    }
    s
}

/// A bonded port's counters, as the control loop last read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BondCounters {
    /// The switch port (policy name).
    pub port: String,
    /// Failovers (the members carrying traffic changed).
    pub failovers: u64,
    /// Kernel carrier changes of `net_af_packet` bond members (the switch watches them).
    pub carrier_changes: u64,
}

/// Bond counters shared between the control loop (writer) and the server (reader).
pub type SharedBonds = Arc<Mutex<Vec<BondCounters>>>;

/// The exposition text of the bonded ports' counters, one series per bond
/// (`port="uplink"`); no series when no port is a bond.
pub fn render_bonds(bonds: &[BondCounters]) -> String {
    let mut s = String::new();
    type Read = fn(&BondCounters) -> u64;
    let rows: [(&str, &str, Read); 2] = [
        ("hnv_bond_failovers_total", "Bond failovers (the members carrying traffic changed), by bonded port.", |b| b.failovers),
        ("hnv_bond_carrier_changes_total", "Kernel carrier changes of af_packet bond members, by bonded port.", |b| b.carrier_changes),
    ];
    for (name, help, read) in rows {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
        for b in bonds {
            let _ = writeln!(s, "{name}{{port=\"{}\"}} {}", label(&b.port), read(b));
        }
    }
    s
}

/// Listen on `addr` and answer every request with [`render`], [`render_workers`] and [`render_bonds`].
///
/// # Errors
/// When the address cannot be bound.
pub fn serve(addr: &str, service: Arc<PolicyService>, stats: Vec<Arc<DatapathStats>>, workers: Vec<Arc<WorkerStats>>, bonds: SharedBonds) -> std::io::Result<Server> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new().name("hnv-metrics".into()).spawn(move || {
        // Every connection being served, so that stopping can cut them off.
        let open: Mutex<Vec<(u64, TcpStream)>> = Mutex::new(Vec::new());
        let (service, stats, workers, bonds, open) = (&*service, &stats[..], &workers[..], &bonds, &open);
        std::thread::scope(|scope| {
            let mut next_id = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                let c = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                };
                let mut conns = open.lock().unwrap_or_else(PoisonError::into_inner);
                if conns.len() >= MAX_CONNECTIONS {
                    log::debug!("metrics: {MAX_CONNECTIONS} connections open, one more closed unanswered");
                    continue;
                }
                let Ok(cut) = c.try_clone() else { continue };
                let id = next_id;
                next_id += 1;
                conns.push((id, cut));
                drop(conns);
                let spawned = std::thread::Builder::new().name("hnv-metrics-conn".into()).spawn_scoped(scope, move || {
                    answer(c, service, stats, workers, bonds);
                    open.lock().unwrap_or_else(PoisonError::into_inner).retain(|(i, _)| *i != id);
                });
                if spawned.is_err() {
                    open.lock().unwrap_or_else(PoisonError::into_inner).retain(|(i, _)| *i != id);
                }
            }
            // Stopping: a connection still open fails its next read or write at once.
            for (_, c) in open.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
                let _ = c.shutdown(Shutdown::Both);
            }
        });
    })?;
    log::info!("metrics on http://{local}/metrics");
    Ok(Server { stop, thread: Some(thread), local })
}

/// Serve one connection. Checks, in order:
/// 1. the request head (up to a blank line, or the peer's end of sending)
///    arrives within [`CONNECTION_DEADLINE`] of the accept, else the
///    connection is closed unanswered;
/// 2. it is at most [`MAX_REQUEST`] bytes, else `431` and close (the rest is
///    never read);
/// 3. any request is answered `200` with [`render`]'s text; the answer must
///    be written by the same deadline, else the connection is closed.
fn answer(mut c: TcpStream, service: &PolicyService, stats: &[Arc<DatapathStats>], workers: &[Arc<WorkerStats>], bonds: &SharedBonds) {
    let deadline = Instant::now() + CONNECTION_DEADLINE;
    let left = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    if c.set_nonblocking(false).is_err() {
        return;
    }
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        if Instant::now() >= deadline || c.set_read_timeout(Some(left())).is_err() {
            return;
        }
        let n = match c.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
        if n == 0 || head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if head.len() >= MAX_REQUEST {
            let _ = c.set_write_timeout(Some(left()));
            let _ = c.write_all(b"HTTP/1.0 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n");
            return;
        }
    }
    // Port names in force (ports may be added or removed).
    let bonds = bonds.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let body = render(service.store(), stats, &service.port_names(), &service.reload_status()) + &render_workers(workers) + &render_bonds(&bonds);
    let head = format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n", body.len());
    if c.set_write_timeout(Some(left())).is_ok() {
        let _ = c.write_all(head.as_bytes()).and_then(|_| c.write_all(body.as_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hnv_policy::example::BLUE_RED_HOST1;

    fn server() -> Server {
        let store = Arc::new(PolicyStore::new(hnv_policy::parse(BLUE_RED_HOST1, "t").unwrap()));
        let service = Arc::new(PolicyService::new(store, crate::service::Tenants::Local, None));
        serve("127.0.0.1:0", service, vec![Arc::new(DatapathStats::default())], vec![Arc::new(WorkerStats::default())], SharedBonds::default()).unwrap()
    }

    fn scrape(addr: SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    }

    #[test]
    fn idle_clients_block_neither_a_scrape_nor_shutdown() {
        let m = server();
        let addr = m.local_addr();
        // Connected, never sending: each used to hold the only server thread for 500 ms.
        let idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        let body = scrape(addr);
        assert!(body.starts_with("HTTP/1.0 200") && body.contains("hnv_policy_generation 1"), "{body}");
        assert!(t.elapsed() < Duration::from_millis(1000), "a scrape waited {:?} behind idle clients", t.elapsed());
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        drop(m);
        assert!(t.elapsed() < Duration::from_millis(300), "shutdown waited {:?} on idle clients", t.elapsed());
        drop(idle);
    }

    #[test]
    fn a_slow_client_is_cut_off_at_the_deadline_and_shutdown_cuts_it_at_once() {
        let m = server();
        let mut slow = TcpStream::connect(m.local_addr()).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        // One byte at a time, never finishing the request.
        let t = Instant::now();
        let mut answer = Vec::new();
        let mut cut = false;
        while t.elapsed() < CONNECTION_DEADLINE + Duration::from_secs(5) {
            if slow.write_all(b"G").is_err() {
                cut = true;
                break;
            }
            slow.set_nonblocking(true).unwrap();
            match slow.read_to_end(&mut answer) {
                Ok(_) => {
                    cut = true;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    cut = true;
                    break;
                }
            }
            slow.set_nonblocking(false).unwrap();
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(cut && answer.is_empty(), "closed unanswered: {}", String::from_utf8_lossy(&answer));
        assert!(t.elapsed() >= CONNECTION_DEADLINE - Duration::from_millis(500) && t.elapsed() < CONNECTION_DEADLINE + Duration::from_secs(2), "{:?}", t.elapsed());
        // Another slow client, then shutdown: cut at once.
        let mut slow = TcpStream::connect(m.local_addr()).unwrap();
        slow.write_all(b"GET /met").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        drop(m);
        assert!(t.elapsed() < Duration::from_millis(300), "shutdown waited {:?}", t.elapsed());
        slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut rest = Vec::new();
        let _ = slow.read_to_end(&mut rest);
        assert!(rest.is_empty());
    }

    #[test]
    fn an_endless_request_is_cut_off_and_others_are_served_meanwhile() {
        let m = server();
        let addr = m.local_addr();
        let mut hog = TcpStream::connect(addr).unwrap();
        hog.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        let writer = std::thread::spawn(move || {
            let chunk = [b'a'; 16 << 10];
            let mut sent = 0usize;
            while sent < 256 << 20 {
                match hog.write(&chunk) {
                    Ok(n) => sent += n,
                    Err(_) => break,
                }
            }
            sent
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(scrape(addr).starts_with("HTTP/1.0 200"));
        let sent = writer.join().unwrap();
        assert!(sent < 64 << 20, "the server stopped reading after {MAX_REQUEST} bytes, not after {sent}");
    }

    #[test]
    fn connections_beyond_the_bound_are_closed_and_the_server_recovers() {
        let m = server();
        let addr = m.local_addr();
        let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(300));
        let mut extra = TcpStream::connect(addr).unwrap();
        extra.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = extra.write_all(b"GET / HTTP/1.0\r\n\r\n");
        let mut got = Vec::new();
        let _ = extra.read_to_end(&mut got);
        assert!(got.is_empty(), "closed unanswered");
        drop(idle);
        let t = Instant::now();
        loop {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut body = String::new();
            let _ = s.read_to_string(&mut body);
            if body.starts_with("HTTP/1.0 200") {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(5), "the server serves again once the idle clients leave");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn every_drop_reason_has_a_series_from_the_start() {
        let store = PolicyStore::new(hnv_policy::parse(BLUE_RED_HOST1, "t").unwrap());
        let text = render(&store, &[Arc::new(DatapathStats::default())], &[], &ReloadStatus::default());
        let drops: Vec<&str> = text.lines().filter(|l| l.starts_with("hnv_drops_total{")).collect();
        assert_eq!(drops.len(), DropReason::ALL.len(), "{text}");
        assert!(drops.iter().all(|l| l.ends_with("\"} 0")), "{text}");
    }

    #[test]
    fn worker_counters_are_exported_per_worker() {
        let (a, b) = (Arc::new(WorkerStats::default()), Arc::new(WorkerStats::default()));
        a.rx.add(100);
        a.busy_cycles.add(5000);
        b.idle_cycles.add(7);
        let text = render_workers(&[a, b]);
        for line in [
            "hnv_worker_rx_packets_total{worker=\"0\"} 100",
            "hnv_worker_busy_cycles_total{worker=\"0\"} 5000",
            "hnv_worker_idle_cycles_total{worker=\"1\"} 7",
            "hnv_worker_tx_refused_packets_total{worker=\"1\"} 0",
            "# TYPE hnv_worker_tx_packets_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        // Served along with the datapath's counters.
        let body = scrape(server().local_addr());
        assert!(body.contains("hnv_worker_busy_cycles_total{worker=\"0\"} 0\n"), "{body}");
    }

    #[test]
    fn bond_counters_are_exported_per_bonded_port_and_served() {
        let text = render_bonds(&[BondCounters { port: "uplink".into(), failovers: 3, carrier_changes: 6 }, BondCounters { port: "evil\"} 9\nhnv_fake 1".into(), failovers: 0, carrier_changes: 0 }]);
        for line in ["# TYPE hnv_bond_failovers_total counter", "hnv_bond_failovers_total{port=\"uplink\"} 3", "hnv_bond_carrier_changes_total{port=\"uplink\"} 6"] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        assert!(!text.lines().any(|l| l.starts_with("hnv_fake")), "{text}");
        // No bond: the families are declared, with no series.
        assert!(!render_bonds(&[]).lines().any(|l| !l.starts_with('#')));
        // Served from what the control loop last published.
        let store = Arc::new(PolicyStore::new(hnv_policy::parse(BLUE_RED_HOST1, "t").unwrap()));
        let service = Arc::new(PolicyService::new(store, crate::service::Tenants::Local, None));
        let bonds = SharedBonds::default();
        let srv = serve("127.0.0.1:0", service, vec![Arc::new(DatapathStats::default())], vec![Arc::new(WorkerStats::default())], bonds.clone()).unwrap();
        bonds.lock().unwrap().push(BondCounters { port: "uplink".into(), failovers: 2, carrier_changes: 4 });
        let body = scrape(srv.local_addr());
        assert!(body.contains("hnv_bond_failovers_total{port=\"uplink\"} 2\n"), "{body}");
        assert!(body.contains("hnv_bond_carrier_changes_total{port=\"uplink\"} 4\n"), "{body}");
    }

    #[test]
    fn a_port_name_cannot_add_lines_or_labels_to_the_exposition() {
        let store = PolicyStore::new(hnv_policy::parse(BLUE_RED_HOST1, "t").unwrap());
        let evil = "up\\\"} 1\nhnv_fake_total 99\n#".to_string();
        let text = render(&store, &[Arc::new(DatapathStats::default())], &[evil], &ReloadStatus::default());
        assert!(!text.lines().any(|l| l.starts_with("hnv_fake_total")), "{text}");
        assert!(text.contains(r#"hnv_port_rx_packets_total{port="up\\\"} 1\nhnv_fake_total 99\n#"} 0"#), "{text}");
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(l.rsplit_once(' ').is_some_and(|(_, v)| v.parse::<u64>().is_ok()), "{l}");
        }
    }
}

#[cfg(test)]
mod redirect_tests {
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
        let text = render(&store, &[Arc::new(DatapathStats::default())], &[], &ReloadStatus { ok: 2, failed: 1, last_error: None });
        assert!(text.contains("hnv_policy_reloads_total{outcome=\"refused\"} 1"), "{text}");
        assert!(text.contains("hnv_nvgree_redirects_received_total{outcome=\"accepted\"} 0\n"), "{text}");
        assert!(text.contains("hnv_nvgree_redirects_received_total{outcome=\"refused\"} 1\n"), "{text}");
    }

    #[test]
    fn neighbor_states_and_refusals_are_exported() {
        let text = hnv_policy::example::BLUE_RED_HOST1.replacen("[[host.neighbors]]\naddress = \"192.168.4.22\"\nmac = \"02:00:c0:a8:04:16\"\n", "", 1);
        let store = PolicyStore::new(hnv_policy::parse(&text, "t").unwrap_or_else(|e| panic!("{e}")));
        store.offer_learned(("192.168.4.99".parse().unwrap_or_else(|e| panic!("{e}")), [2, 0, 0, 0, 0, 0x99]));
        store.apply_learned(std::time::Instant::now());
        let text = render(&store, &[Arc::new(DatapathStats::default())], &[], &ReloadStatus::default());
        assert!(text.contains("hnv_neighbors{state=\"incomplete\",source=\"resolved\"} 1\n"), "{text}");
        assert!(text.contains("hnv_neighbors{state=\"reachable\",source=\"static\"} 0\n"), "{text}");
        assert!(text.contains("hnv_neighbor_replies_total{outcome=\"refused\"} 1\n"), "{text}");
        assert!(text.contains("hnv_neighbor_requests_sent_total 0\n"), "{text}");
    }
}
