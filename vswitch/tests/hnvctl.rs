//! hnvctl against a running switch under sustained traffic: inspection,
//! thousands of hitless policy updates (no drop attributable to them, counters
//! reconcile), refusal of malformed or invalid requests without effect, an
//! endless request line cut off without growing the switch, and a switch
//! killed with SIGKILL restarting from its state file with every acknowledged
//! change.
#![allow(clippy::unwrap_used, clippy::zombie_processes)]

mod support;

use hnv_policy::api::{Request, Show};
use hnv_policy::file::{AclFile, LookupFile, TextOrNumber};
use hnvswitch::scenarios::{self, Scenario};
use std::process::Command;
use std::time::Duration;
use support::{encapsulated, hnvctl, start, stop};

fn record(pa: &str) -> LookupFile {
    LookupFile { ca: "10.0.0.16".into(), vsid: 5001, mac: "00:15:5d:01:10:00".into(), pa: pa.into(), ..Default::default() }
}

#[test]
fn restart_resumes_with_the_saved_policy_and_metrics_serve_counters() {
    let dir = std::env::temp_dir().join(format!("hnvctl-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let w = scenarios::write(&dir, Scenario::Encap, 64, 64, "off", 4096).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let state = dir.join("state.toml");
    let mut cfg = std::fs::read_to_string(&w.config).unwrap();
    cfg += &format!("\n[control]\nstate_file = \"{}\"\nmetrics = \"127.0.0.1:{port}\"\n", state.display());
    std::fs::write(&w.config, cfg).unwrap();
    let sock = dir.join("ctl.sock");

    let (child, mut c) = start(&w.config, &sock);
    assert!(c.call(&Request::ReplaceRecord { record: record("192.168.4.25") }).unwrap().ok);
    std::thread::sleep(Duration::from_millis(300));
    let mut body = String::new();
    {
        use std::io::{Read, Write};
        // The metrics listener opens just after the control socket: on a loaded machine, later.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut s = loop {
            match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(e) => assert!(std::time::Instant::now() < deadline, "metrics on port {port}: {e}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        s.read_to_string(&mut body).unwrap();
    }
    assert!(body.starts_with("HTTP/1.0 200"), "{body}");
    assert!(body.contains("hnv_policy_generation 2"), "{body}");
    let enc: u64 = body.lines().find(|l| l.starts_with("hnv_encapsulated_packets_total ")).and_then(|l| l.split(' ').nth(1)).unwrap().parse().unwrap();
    assert!(enc > 0, "{body}");
    assert!(body.contains("hnv_vsid_rx_packets_total{vsid=\"5001\"}"), "{body}");
    assert!(body.contains("hnv_vsid_encap{vsid=\"5001\",encap=\"nvgre\"} 1"), "{body}");
    // Blue switched to VXLAN live: listed by show vsids, kept across the restart.
    let r = c.call(&Request::SetEncap { vsid: 5001, encap: "vxlan".into() }).unwrap();
    assert!(r.ok, "{r:?}");
    let vsids = c.call(&Request::Show { what: Show::Vsids }).unwrap();
    let blue = vsids.data.as_array().unwrap().iter().find(|r| r["vsid"] == 5001).cloned().unwrap();
    assert_eq!(blue["encap"], "vxlan", "{blue}");
    assert!(!c.call(&Request::SetEncap { vsid: 5001, encap: "gre".into() }).unwrap().ok);
    drop(c);
    stop(child);
    assert!(std::fs::read_to_string(&state).unwrap().contains("192.168.4.25"));

    // Restarted: the moved record is still in force, and traffic flows again.
    let (child, mut c) = start(&w.config, &sock);
    let recs = c.call(&Request::Show { what: Show::Records }).unwrap();
    let rows = recs.data.as_array().unwrap();
    let moved = rows.iter().find(|r| r["ca"] == "10.0.0.16").unwrap();
    assert_eq!(moved["pa"], "192.168.4.25");
    let vsids = c.call(&Request::Show { what: Show::Vsids }).unwrap();
    assert!(vsids.data.as_array().unwrap().iter().any(|r| r["vsid"] == 5001 && r["encap"] == "vxlan"), "{vsids:?}");
    std::thread::sleep(Duration::from_millis(500));
    drop(c);
    let out = stop(child);
    assert!(out.contains(": reconciled"), "{out}");
    let enc = encapsulated(&out);
    assert!(enc > 10_000, "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hitless_updates_and_refusals_under_traffic() {
    let dir = std::env::temp_dir().join(format!("hnvctl-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let w = scenarios::write(&dir, Scenario::Encap, 1024, 64, "off", 8191).unwrap();
    let sock = dir.join("ctl.sock");
    let (child, mut client) = start(&w.config, &sock);
    let mode = std::fs::metadata(&sock).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777).unwrap();
    assert_eq!(mode, 0o600, "only root can open the socket");

    let recs = client.call(&Request::Show { what: Show::Records }).unwrap();
    assert!(recs.ok && recs.data.to_string().contains("10.0.0.16"));
    let g0 = recs.generation.unwrap();

    // Thousands of updates while traffic flows: move 10.0.0.16 between two PAs.
    let n = 2000;
    for i in 0..n {
        let pa = if i % 2 == 0 { "192.168.4.23" } else { "192.168.4.22" };
        let r = client.call(&Request::ReplaceRecord { record: record(pa) }).unwrap();
        assert!(r.ok, "{:?}", r.error);
    }
    let g1 = client.call(&Request::Show { what: Show::Counters }).unwrap().generation.unwrap();
    assert_eq!(g1, g0 + n);

    // Refusals change nothing.
    let bad = client.call(&Request::ReplaceRecord { record: LookupFile { mac: "00:15:5d:01:10".into(), ..record("192.168.4.22") } }).unwrap();
    assert!(!bad.ok && bad.error.as_deref().unwrap_or("").contains("mac"), "{bad:?}");
    let gone = client.call(&Request::RemoveRecord { vsid: 5001, ca: "10.9.9.9".into() }).unwrap();
    assert!(!gone.ok);
    let raw = client.call_raw("{this is not json").unwrap();
    assert!(raw.contains("\"ok\":false") && raw.contains("malformed"), "{raw}");
    let raw = client.call_raw("{\"op\":\"reboot\"}").unwrap();
    assert!(raw.contains("\"ok\":false"), "{raw}");
    assert_eq!(client.call(&Request::Show { what: Show::Counters }).unwrap().generation, Some(g1));
    // A peer that disconnects mid-request.
    {
        use std::io::Write;
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.write_all(b"{\"op\":\"show\",").unwrap();
    }
    drop(client);

    // The hnvctl binary, human-readable and failing cleanly.
    let out = Command::new(env!("CARGO_BIN_EXE_hnvctl")).arg("--socket").arg(&sock).args(["show", "counters"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("encapsulated"));
    let out = Command::new(env!("CARGO_BIN_EXE_hnvctl"))
        .arg("--socket")
        .arg(&sock)
        .args(["record", "add", "--ca", "10.0.0.99", "--vsid", "12", "--mac", "00:15:5d:01:10:63", "--pa", "192.168.4.22"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error:") && err.contains("vsid"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_hnvctl")).arg("--socket").arg(&sock).args(["show", "ports"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("net_pcap"), "{}", String::from_utf8_lossy(&out.stdout));
    // Provider next hops: the address first; the scenario's are static.
    let out = Command::new(env!("CARGO_BIN_EXE_hnvctl")).arg("--socket").arg(&sock).args(["show", "neighbors"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.starts_with("neighbors:\naddress  ") && text.contains(" static ") && text.contains("replies_refused"), "{text}");

    let stdout = stop(child);
    assert!(stdout.contains("drops by reason:\n  (none)"), "no packet was lost to the updates:\n{stdout}");
    assert!(stdout.contains(": reconciled"), "{stdout}");
    let enc = encapsulated(&stdout);
    assert!(enc > 100_000, "traffic kept flowing through the updates: {enc}");
    assert!(!sock.exists(), "socket removed at exit");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn capture_starts_and_stops_live_and_workers_show_busy_cycles() {
    let dir = std::env::temp_dir().join(format!("hnvctl-capture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let w = scenarios::write(&dir, Scenario::Encap, 64, 64, "off", 4096).unwrap();
    let sock = dir.join("ctl.sock");
    let (child, mut c) = start(&w.config, &sock);
    std::thread::sleep(Duration::from_millis(300));

    // Per-worker busy cycles and cycles per packet, live.
    let workers = c.call(&Request::Show { what: Show::Workers }).unwrap();
    let row = &workers.data.as_array().unwrap()[0];
    assert!(row["busy_cycles"].as_u64().unwrap() > 0 && row["rx"].as_u64().unwrap() > 0, "{row}");
    assert!(row["cycles_per_pkt"].as_f64().unwrap() > 1.0, "{row}");
    let flows = c.call(&Request::Show { what: Show::Flows }).unwrap();
    let f = &flows.data.as_array().unwrap()[0];
    assert_eq!(f["capacity"], 65536, "{f}");
    // The cache keys on decisions: 64 connections from Blue1 to 16 remote CAs share 16 entries.
    assert!(f["entries"].as_u64().unwrap() == 16 && f["hits"].as_u64().unwrap() > 0, "64 flows, 16 decisions cached and hit: {f}");
    let out = hnvctl(&sock, &["show", "workers"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("cycles_per_pkt"), "{}", String::from_utf8_lossy(&out.stdout));
    // Output into a closed pipe (`hnvctl show counters | head -0`) ends hnvctl quietly, with success.
    let piped =
        Command::new("sh").arg("-c").arg(format!("(sleep 0.2; '{}' -s '{}' show counters; echo \"hnvctl exit $?\" >&2) | true", env!("CARGO_BIN_EXE_hnvctl"), sock.display())).output().unwrap();
    let piped_err = String::from_utf8_lossy(&piped.stderr);
    assert!(piped_err.contains("hnvctl exit 0") && !piped_err.contains("panicked"), "{piped_err}");

    // Bad capture requests are refused and start nothing.
    for args in [&["capture", "start", "x.pcapng", "--port", "nope"][..], &["capture", "start", "x.pcapng", "--vsid", "12"], &["capture", "start", "x.pcapng", "--stage", "sideways"]] {
        let out = hnvctl(&sock, args);
        assert!(!out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error:"), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(!hnvctl(&sock, &["capture", "stop"]).status.success(), "no capture is running");
    let raw = c.call_raw(r#"{"op":"capture_start","path":"relative.pcapng"}"#).unwrap();
    assert!(raw.contains("\"ok\":false") && raw.contains("absolute"), "{raw}");

    // Start, see it running, stop: only VSID 5001 at ingress.
    let file = dir.join("live.pcapng");
    let out = hnvctl(&sock, &["capture", "start", file.to_str().unwrap(), "--vsid", "5001", "--stage", "ingress", "--snaplen", "128"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!hnvctl(&sock, &["capture", "start", dir.join("second.pcapng").to_str().unwrap()]).status.success(), "one capture at a time");
    std::thread::sleep(Duration::from_millis(200));
    let st = c.call(&Request::Show { what: Show::Capture }).unwrap();
    assert_eq!(st.data["running"], true, "{st:?}");
    let out = hnvctl(&sock, &["--json", "capture", "stop"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let resp: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let written = resp["data"]["written"].as_u64().unwrap();
    assert!(written > 0, "{resp}");
    assert_eq!(c.call(&Request::Show { what: Show::Capture }).unwrap().data["running"], false);
    // DPDK's own telemetry stays available next to the control socket.
    let tel = Command::new("sh").arg("-c").arg(format!("echo /ethdev/list | dpdk-telemetry.py -f hnv{}", child.id())).output().unwrap();
    let tel = String::from_utf8_lossy(&tel.stdout);
    assert!(tel.contains("{\"/ethdev/list\": [0"), "{tel}");
    drop(c);
    let out = stop(child);
    assert!(out.contains(": reconciled"), "{out}");

    // Wireshark's reader agrees: every frame is an ingress frame of VSID 5001.
    let t = Command::new("tshark").arg("-r").arg(&file).args(["-T", "fields", "-e", "frame.comment"]).output().unwrap();
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    let lines: Vec<String> = String::from_utf8_lossy(&t.stdout).lines().map(str::to_string).collect();
    assert_eq!(lines.len() as u64, written);
    assert!(lines.iter().all(|l| l == "ingress vsid 5001"), "{:?}", &lines[..lines.len().min(5)]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).unwrap().parse().unwrap()
}

#[test]
fn a_switch_killed_under_traffic_restarts_from_its_state_file_with_every_acknowledged_change() {
    killed_under_traffic("kill", "");
}

/// The same with every change journalled (a state file that counts as large).
#[test]
fn a_switch_killed_under_traffic_restarts_from_its_snapshot_and_journal_with_every_acknowledged_change() {
    killed_under_traffic("kill-journal", "state_journal_threshold = 0\n");
}

fn killed_under_traffic(tag: &str, control: &str) {
    use std::io::{BufRead, Write};
    let dir = std::env::temp_dir().join(format!("hnvctl-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let w = scenarios::write(&dir, Scenario::Encap, 64, 64, "off", 4096).unwrap();
    let state = dir.join("state.toml");
    let mut cfg = std::fs::read_to_string(&w.config).unwrap();
    cfg += &format!("\n[control]\nstate_file = \"{}\"\n{control}", state.display());
    std::fs::write(&w.config, cfg).unwrap();
    let sock = dir.join("ctl.sock");
    let (child, mut c) = start(&w.config, &sock);
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(300));

    // An endless request line: cut off with an error, the switch does not
    // buffer it, and other clients are served meanwhile.
    let rss_before = rss_kib(pid);
    let hog = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    hog.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    hog.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut hw = hog.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 << 10];
        let mut sent = 0usize;
        while sent < 64 << 20 {
            match hw.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        sent
    });
    for _ in 0..5 {
        assert!(c.call(&Request::Show { what: Show::Counters }).unwrap().ok, "another client is served meanwhile");
    }
    let mut resp = String::new();
    std::io::BufReader::new(&hog).read_line(&mut resp).unwrap();
    assert!(resp.contains("\"ok\":false") && resp.contains("longer than"), "{resp}");
    let sent = writer.join().unwrap();
    assert!(sent < 16 << 20, "the switch stopped reading at the line limit, not after {sent} bytes");
    let grown = rss_kib(pid).saturating_sub(rss_before);
    assert!(grown < 16 << 10, "the switch grew by {grown} KiB for one endless line");

    // Acknowledged changes, then SIGKILL while a client keeps changing a record.
    let acl = AclFile {
        vsid: 5001,
        priority: 300,
        direction: Some("in".into()),
        action: "deny".into(),
        protocol: Some(TextOrNumber::Text("tcp".into())),
        dst_ports: Some(TextOrNumber::Text("2222".into())),
        ..Default::default()
    };
    assert!(c.call(&Request::AddAcl { rule: acl }).unwrap().ok);
    assert!(c.call(&Request::RemoveRecord { vsid: 6001, ca: "10.0.0.31".into() }).unwrap().ok);
    const PAS: [&str; 4] = ["192.168.4.22", "192.168.4.23", "192.168.4.24", "192.168.4.25"];
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hammer = {
        let (acked, sock) = (acked.clone(), sock.clone());
        std::thread::spawn(move || {
            let mut c = hnvswitch::ctl::Client::connect(&sock).unwrap();
            for i in 1.. {
                match c.call(&Request::ReplaceRecord { record: record(PAS[i % 4]) }) {
                    Ok(r) if r.ok => acked.store(i, std::sync::atomic::Ordering::SeqCst),
                    _ => return,
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(700));
    Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    hammer.join().unwrap();
    let mut child = child;
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed");
    // What a killed DPDK process leaves: its runtime directory (the supervisor's restart does not need it removed).
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/hnv{pid}"));
    let k = acked.load(std::sync::atomic::Ordering::SeqCst);
    assert!(k > 10, "changes were being made when the switch was killed ({k})");
    if !control.is_empty() {
        // Folded into the snapshot whenever it outgrows it (often, with this small policy).
        let journal = std::fs::read_to_string(dir.join("state.toml.journal")).unwrap_or_default();
        println!("killed with {} journal line(s) after the snapshot, {k} changes acknowledged", journal.lines().count());
    }
    drop(c);

    // Restarted from the state file: every acknowledged change is in force
    // (the one in flight at the kill may or may not be), and traffic flows.
    let (child, mut c) = start(&w.config, &sock);
    let recs = c.call(&Request::Show { what: Show::Records }).unwrap();
    let rows = recs.data.as_array().unwrap();
    let moved = rows.iter().find(|r| r["ca"] == "10.0.0.16" && r["vsid"] == 5001).unwrap();
    assert!(moved["pa"] == PAS[k % 4] || moved["pa"] == PAS[(k + 1) % 4], "acknowledged PA {} (change {k}), found {}", PAS[k % 4], moved["pa"]);
    assert!(!rows.iter().any(|r| r["ca"] == "10.0.0.31" && r["vsid"] == 6001), "the removed record stays removed");
    let acl = c.call(&Request::Show { what: Show::Acl }).unwrap();
    assert!(acl.data.to_string().contains("2222"), "{acl:?}");
    std::thread::sleep(Duration::from_millis(500));
    drop(c);
    let out = stop(child);
    assert!(out.contains(": reconciled"), "{out}");
    assert!(encapsulated(&out) > 1000, "{out}");
    // No private socket directory, no temporary state file of the killed switch.
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with('.')).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `hnvctl apply`: a file of changes is one transaction. One bad change in it
/// leaves the policy and its generation as they were; the good file is applied
/// whole as one new generation, under traffic, without a drop. A SIGHUP with a
/// broken policy file is refused, logged, and shown by `show policy` and the
/// metrics-backing status.
#[test]
fn apply_is_one_transaction_and_a_refused_reload_is_visible() {
    let dir = std::env::temp_dir().join(format!("hnvctl-apply-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let w = scenarios::write(&dir, Scenario::Encap, 64, 64, "off", 4096).unwrap();
    let state = dir.join("state.toml");
    let mut cfg = std::fs::read_to_string(&w.config).unwrap();
    cfg += &format!("\n[control]\nstate_file = \"{}\"\n", state.display());
    std::fs::write(&w.config, cfg).unwrap();
    let sock = dir.join("ctl.sock");
    let (child, mut c) = start(&w.config, &sock);
    let g0 = c.call(&Request::Show { what: Show::Counters }).unwrap().generation.unwrap();
    let good = "# Blue's 10.0.0.16 moves, Red's 10.0.0.31 goes, RDP is denied\n\
        [[change]]\nop = \"replace_record\"\nrecord = { ca = \"10.0.0.16\", vsid = 5001, mac = \"00:15:5d:01:10:00\", pa = \"192.168.4.25\" }\n\n\
        [[change]]\nop = \"remove_record\"\nvsid = 6001\nca = \"10.0.0.31\"\n\n\
        [[change]]\nop = \"add_acl\"\n[change.rule]\nvsid = 5001\npriority = 333\ndirection = \"in\"\naction = \"deny\"\nprotocol = \"tcp\"\ndst_ports = 3389\n";
    // One bad change (a record that does not exist) among the good ones: nothing changes.
    let bad = format!("{good}\n[[change]]\nop = \"remove_record\"\nvsid = 5001\nca = \"10.9.9.9\"\n");
    let file = dir.join("changes.toml");
    std::fs::write(&file, &bad).unwrap();
    let out = hnvctl(&sock, &["apply", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("refused, nothing changed") && err.contains("10.9.9.9"), "{err}");
    assert_eq!(c.call(&Request::Show { what: Show::Counters }).unwrap().generation, Some(g0), "generation unchanged");
    let recs = c.call(&Request::Show { what: Show::Records }).unwrap().data;
    let row = |ca: &str, vsid: u32| recs.as_array().unwrap().iter().find(|r| r["ca"] == ca && r["vsid"] == vsid).cloned();
    assert_eq!(row("10.0.0.16", 5001).unwrap()["pa"], "192.168.4.22", "the good changes of a refused file are not applied");
    assert!(row("10.0.0.31", 6001).is_some());
    // The same without the bad change, from stdin: one transaction, one generation.
    let mut apply =
        Command::new(env!("CARGO_BIN_EXE_hnvctl")).arg("--socket").arg(&sock).args(["apply", "-"]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    {
        use std::io::Write;
        apply.stdin.take().unwrap().write_all(good.as_bytes()).unwrap();
    }
    let out = apply.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains(&format!("3 change(s) applied as one transaction (policy generation {})", g0 + 1)), "{text}");
    let recs = c.call(&Request::Show { what: Show::Records }).unwrap().data;
    let row = |ca: &str, vsid: u32| recs.as_array().unwrap().iter().find(|r| r["ca"] == ca && r["vsid"] == vsid).cloned();
    assert_eq!(row("10.0.0.16", 5001).unwrap()["pa"], "192.168.4.25");
    assert!(row("10.0.0.31", 6001).is_none());
    assert!(c.call(&Request::Show { what: Show::Acl }).unwrap().data.to_string().contains("3389"));
    assert!(std::fs::read_to_string(&state).unwrap().contains("192.168.4.25"), "saved before the answer");

    // SIGHUP with a broken policy file: refused, the policy stays, and it shows.
    let policy = std::fs::read_to_string(&w.policy).unwrap();
    std::fs::write(&w.policy, policy.replacen("vsid = 5001", "vsid = 12", 1)).unwrap();
    Command::new("kill").args(["-HUP", &child.id().to_string()]).status().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let out = hnvctl(&sock, &["show", "policy"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("# reloads: 0 ok, 1 refused") {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "the refused reload is not shown:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(shown.lines().nth(1).unwrap().contains("vsid"), "{shown}");
    assert_eq!(c.call(&Request::Show { what: Show::Counters }).unwrap().generation, Some(g0 + 1), "the previous policy stays in force");
    drop(c);
    let stdout = stop(child);
    assert!(stdout.contains("drops by reason:\n  (none)"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}
