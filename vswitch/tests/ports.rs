//! Hot-adding and removing ports on a running switch under traffic: a VM
//! port added with its record forwards its own traffic, a port in the middle
//! of the list is removed (later ports move down), the added VM leaves by live
//! migration (`port remove --moved-to`: its record now points to the new host),
//! refusals change neither the policy nor the ports, and Blue1's
//! encapsulation never stops; at exit the counters reconcile with no drop.
#![allow(clippy::unwrap_used, clippy::zombie_processes)]

mod support;

use hnv_datapath::testkit;
use hnv_policy::api::{Request, Response, Show};
use hnv_policy::file::{LookupFile, PortFile};
use hnvswitch::ctl::Client;
use hnvswitch::scenarios::{self, Scenario};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use support::{hnvctl, start, stop};

const BLUE9_MAC: &str = "00:15:5d:01:00:99";

fn show(c: &mut Client, what: Show) -> Response {
    let r = c.call(&Request::Show { what }).unwrap();
    assert!(r.ok, "{r:?}");
    r
}

fn port_names(c: &mut Client) -> Vec<String> {
    show(c, Show::Ports).data.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect()
}

fn encapsulated(c: &mut Client) -> u64 {
    show(c, Show::Counters).data["encapsulated"].as_u64().unwrap()
}

/// Encapsulation goes on: the counter grows (within 5 s on a loaded machine).
fn still_forwarding(c: &mut Client, what: &str) {
    let before = encapsulated(c);
    let deadline = Instant::now() + Duration::from_secs(5);
    while encapsulated(c) <= before {
        assert!(Instant::now() < deadline, "forwarding stopped {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ports_are_hot_added_and_removed_under_traffic() {
    let dir = std::env::temp_dir().join(format!("hnv-ports-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let w = scenarios::write(&dir, Scenario::Encap, 64, 64, "off", 8191).unwrap();
    // Blue9's own traffic: UDP to the remote Blue CA 10.0.0.16, encapsulated to its PA.
    let (ca16, mac16, _) = scenarios::remote(true, 0);
    let frames: Vec<Vec<u8>> = (0..32u16).map(|i| testkit::udp(testkit::mac(BLUE9_MAC), mac16, IpAddr::V4("10.0.0.99".parse().unwrap()), IpAddr::V4(ca16), 2000 + i, 9, 60)).collect();
    let blue9_pcap = dir.join("blue9.pcap");
    hnvswitch::traffic::write_pcap(&blue9_pcap, &frames).unwrap();
    let state = dir.join("state.toml");
    let mut cfg = std::fs::read_to_string(&w.config).unwrap();
    cfg += &format!("\n[control]\nstate_file = \"{}\"\n", state.display());
    std::fs::write(&w.config, cfg).unwrap();
    let sock = dir.join("ctl.sock");
    let (child, mut c) = start(&w.config, &sock);
    std::thread::sleep(Duration::from_millis(300));
    let start: Vec<String> = ["uplink", "blue1", "blue4", "red1"].map(String::from).to_vec();
    assert_eq!(port_names(&mut c), start);
    let g0 = show(&mut c, Show::Ports).generation.unwrap();

    // Refusals: policy, ports and forwarding unchanged.
    let blue9 = PortFile {
        name: "blue9".into(),
        role: "vm".into(),
        devargs: format!("net_pcap_blue9,rx_pcap={},infinite_rx=1", blue9_pcap.display()),
        vsid: Some(5001),
        mac: Some(BLUE9_MAC.into()),
        addresses: vec!["10.0.0.99".into()],
        mtu: None,
    };
    let record = LookupFile { ca: "10.0.0.99".into(), vsid: 5001, mac: BLUE9_MAC.into(), pa: "192.168.4.11".into(), ..Default::default() };
    let refusals: Vec<(Request, &str)> = vec![
        (Request::AddPort { port: PortFile { name: "blue1".into(), ..blue9.clone() }, records: vec![] }, "exists"),
        (Request::AddPort { port: blue9.clone(), records: vec![] }, "10.0.0.99"),
        (Request::AddPort { port: PortFile { devargs: "net_bogus0".into(), ..blue9.clone() }, records: vec![record.clone()] }, "net_bogus0"),
        (Request::AddPort { port: PortFile { devargs: "net_null_blue4".into(), ..blue9.clone() }, records: vec![record.clone()] }, "already open"),
        (Request::AddPort { port: PortFile { devargs: "net_null_blue4,no-rx=1".into(), ..blue9.clone() }, records: vec![record.clone()] }, "devargs"),
        (Request::RemovePort { name: "uplink".into(), with_records: true, moved_to: None }, "uplink"),
        (Request::RemovePort { name: "blue4".into(), with_records: false, moved_to: None }, "no local port"),
        (Request::RemovePort { name: "nope".into(), with_records: true, moved_to: None }, "no port named"),
    ];
    for (req, why) in refusals {
        let r = c.call(&req).unwrap();
        assert!(!r.ok && r.error.as_deref().unwrap_or("").contains(why), "{req:?}: {r:?}");
        assert_eq!(show(&mut c, Show::Ports).generation, Some(g0), "{req:?} changed the policy");
        assert_eq!(port_names(&mut c), start, "{req:?} changed the ports");
    }
    still_forwarding(&mut c, "after the refusals");

    // Add Blue9 with its record through the CLI; it receives and its traffic is encapsulated.
    let out = hnvctl(&sock, &["port", "add", "--name", "blue9", "--role", "vm", "--devargs", &blue9.devargs, "--vsid", "5001", "--mac", BLUE9_MAC, "--address", "10.0.0.99", "--pa", "192.168.4.11"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with(&format!("ok (policy generation {}; workers paused ", g0 + 1)), "{said}");
    assert_eq!(show(&mut c, Show::Ports).generation, Some(g0 + 1));
    assert_eq!(port_names(&mut c).last().map(String::as_str), Some("blue9"));
    std::thread::sleep(Duration::from_millis(300));
    let rows = show(&mut c, Show::Ports).data;
    let row = rows.as_array().unwrap().iter().find(|r| r["name"] == "blue9").unwrap().clone();
    assert!(row["switch_rx"].as_u64().unwrap() > 0 && row["driver"].as_str().unwrap().contains("pcap"), "{row}");
    assert!(String::from_utf8_lossy(&hnvctl(&sock, &["show", "ports"]).stdout).contains("blue9"));
    still_forwarding(&mut c, "after adding blue9");

    // Remove Blue4 from the middle: red1 and blue9 move down one index.
    let r = c.call(&Request::RemovePort { name: "blue4".into(), with_records: true, moved_to: None }).unwrap();
    assert!(r.ok, "{r:?}");
    let pause_us = r.data["pause_us"].as_u64().unwrap();
    println!("removing blue4 paused the workers {pause_us} µs");
    assert!(pause_us < 5_000_000, "the workers' pause is reported: {r:?}");
    assert_eq!(port_names(&mut c), ["uplink", "blue1", "red1", "blue9"].map(String::from).to_vec());
    std::thread::sleep(Duration::from_millis(200));
    let rows = show(&mut c, Show::Ports).data;
    let blue9_rx = rows.as_array().unwrap().iter().find(|r| r["name"] == "blue9").unwrap()["switch_rx"].as_u64().unwrap();
    assert!(blue9_rx >= row["switch_rx"].as_u64().unwrap(), "blue9's counters moved with it: {rows}");
    still_forwarding(&mut c, "after removing blue4");

    // Blue9 live-migrates to host 2: its port goes, its record now points there (CLI).
    let out = hnvctl(&sock, &["port", "remove", "blue9", "--moved-to", "192.168.4.22"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(port_names(&mut c), ["uplink", "blue1", "red1"].map(String::from).to_vec());
    assert_eq!(show(&mut c, Show::Ports).generation, Some(g0 + 3));
    let recs = show(&mut c, Show::Records).data;
    let moved = recs.as_array().unwrap().iter().find(|r| r["ca"] == "10.0.0.99").unwrap().clone();
    assert_eq!(moved["pa"], "192.168.4.22", "{moved}");
    still_forwarding(&mut c, "after blue9 left");
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(!saved.contains("name = \"blue9\"") && !saved.contains("name = \"blue4\""), "{saved}");
    assert!(saved.contains("192.168.4.22"), "{saved}");
    drop(c);

    let stdout = stop(child);
    assert!(stdout.contains("drops by reason:\n  (none)"), "no packet was lost to the port changes:\n{stdout}");
    assert!(stdout.contains(": reconciled"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}
