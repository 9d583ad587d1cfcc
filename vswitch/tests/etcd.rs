//! The etcd policy backend against a real etcd on loopback (Debian
//! `etcd-server`; `scripts/setup.sh --with-test-tools` installs it): two
//! switches follow a move published through etcd within a second, refuse a
//! value that does not parse or validate without effect, forward unaffected
//! while etcd is down, resynchronising when it returns, take a VM that moved
//! away from them with one put (and back), restarting fine after it, and
//! reach etcd over mutual TLS with user authentication (certificates made
//! with the `openssl` CLI), saying clearly why a connection was refused.
#![allow(clippy::unwrap_used, clippy::zombie_processes)]

mod support;

use hnv_policy::api::{Request, Show};
use hnv_policy::file::LookupFile;
use hnvswitch::ctl::Client;
use hnvswitch::scenarios::{self, Scenario};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const MOVED_KEY: &str = "/hnv/lookup/5001/10.0.0.16";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn need(tool: &str, arg: &str) {
    let ok = Command::new(tool).arg(arg).env("ETCDCTL_API", "3").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    assert!(ok, "{tool} is not installed (Debian etcd-server / etcd-client): run scripts/setup.sh --with-test-tools");
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
    t0.elapsed()
}

/// A single-member etcd on free loopback ports in its own data directory;
/// killed and removed on drop (also when a test fails).
struct Etcd {
    child: Option<Child>,
    dir: PathBuf,
    client: u16,
    peer: u16,
    /// TLS with --client-cert-auth: the directory of [`Pki`]'s files.
    tls: Option<PathBuf>,
    /// etcdctl's --user (after `auth enable`).
    user: Option<String>,
}

impl Etcd {
    fn start(dir: &Path) -> Etcd {
        Etcd::start_with(dir, None)
    }

    /// `tls`: serve https:// with `server.pem`, and require client certificates signed by `ca.pem`.
    fn start_with(dir: &Path, tls: Option<&Path>) -> Etcd {
        need("etcd", "--version");
        need("etcdctl", "version");
        let mut e = Etcd { child: None, dir: dir.to_path_buf(), client: free_port(), peer: free_port(), tls: tls.map(Path::to_path_buf), user: None };
        e.spawn();
        e
    }

    fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", if self.tls.is_some() { "https" } else { "http" }, self.client)
    }

    /// Start (or restart, on the same data directory and ports) and wait until it answers.
    fn spawn(&mut self) {
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let log = std::fs::File::options().create(true).append(true).open(self.dir.join("etcd.log")).unwrap();
        let tls: Vec<String> = match &self.tls {
            Some(d) => ["--client-cert-auth", "--trusted-ca-file", "ca.pem", "--cert-file", "server.pem", "--key-file", "server.key"]
                .iter()
                .map(|a| if a.contains('.') { d.join(a).display().to_string() } else { a.to_string() })
                .collect(),
            None => Vec::new(),
        };
        let child = Command::new("etcd")
            .args(&tls)
            .args(["--name", "hnvtest", "--data-dir"])
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &self.url(), "--advertise-client-urls", &self.url()])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("hnvtest={peer}")])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_for("etcd to answer", Duration::from_secs(20), || self.ctl(&["endpoint", "health"]).status.success());
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        let mut c = Command::new("etcdctl");
        c.env("ETCDCTL_API", "3").args(["--endpoints", &self.url(), "--command-timeout=2s"]);
        if let Some(d) = &self.tls {
            c.arg("--cacert").arg(d.join("ca.pem")).arg("--cert").arg(d.join("client.pem")).arg("--key").arg(d.join("client.key"));
        }
        if let Some(u) = &self.user {
            c.args(["--user", u]);
        }
        c.args(args).output().unwrap()
    }

    /// etcdctl, which must succeed.
    fn must(&self, args: &[&str]) {
        let out = self.ctl(args);
        assert!(out.status.success(), "etcdctl {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }

    /// Put one key; returns the revision it created.
    fn put(&self, key: &str, value: &str) -> i64 {
        let out = self.ctl(&["-w", "json", "put", key, value]);
        assert!(out.status.success(), "etcdctl put: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["header"]["revision"].as_i64().unwrap()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(self.dir.join("data"));
    }
}

/// A test's directory, removed on drop (also when the test fails; declare it
/// first so that etcd and the switches are gone before).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("hnv-etcd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running hnvswitch with its control client; killed on drop unless stopped.
struct Switch {
    child: Option<Child>,
    client: Option<Client>,
}

impl Switch {
    fn start(config: &Path, sock: &Path, extra: &[&str]) -> Switch {
        let child = support::spawn(config, sock, extra, "info");
        let mut s = Switch { child: Some(child), client: None };
        wait_for("the control socket", Duration::from_secs(20), || {
            if s.child.as_mut().unwrap().try_wait().unwrap().is_some() {
                let out = s.child.take().unwrap().wait_with_output().unwrap();
                panic!("hnvswitch exited at start: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            }
            s.client = Client::connect(sock).ok();
            s.client.is_some()
        });
        s
    }

    fn show(&mut self, what: Show) -> (Value, u64) {
        let r = self.client.as_mut().unwrap().call(&Request::Show { what }).unwrap();
        assert!(r.ok, "{:?}", r.error);
        (r.data, r.generation.unwrap())
    }

    fn generation(&mut self) -> u64 {
        self.show(Show::Counters).1
    }

    fn etcd(&mut self) -> Value {
        self.show(Show::Policy).0["etcd"].clone()
    }

    fn pa(&mut self, vsid: u32, ca: &str) -> Option<String> {
        let (rows, _) = self.show(Show::Records);
        rows.as_array().unwrap().iter().find(|r| r["vsid"] == vsid && r["ca"] == ca).map(|r| r["pa"].as_str().unwrap().to_string())
    }

    fn tx(&mut self) -> u64 {
        self.show(Show::Counters).0["tx"].as_u64().unwrap()
    }

    /// SIGINT, then (stdout, stderr); asserts a clean exit.
    fn stop(mut self) -> (String, String) {
        self.client = None;
        support::stop_output(self.child.take().unwrap())
    }
}

impl Drop for Switch {
    /// After a failed assertion: SIGINT first, so DPDK removes its runtime files, then SIGKILL.
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
            let t0 = Instant::now();
            while matches!(c.try_wait(), Ok(None)) && t0.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn publish(url: &str, policy: &Path) -> i64 {
    let out = Command::new(env!("CARGO_BIN_EXE_hnvctl")).args(["publish", "--etcd", url]).arg(policy).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "hnvctl publish: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    println!("{}", stdout.trim());
    stdout.rsplit("(revision ").next().and_then(|s| s.trim().trim_end_matches(')').parse().ok()).unwrap()
}

fn moved_value(pa: &str) -> String {
    serde_json::to_string(&LookupFile { ca: "10.0.0.16".into(), vsid: 5001, mac: "00:15:5d:01:10:00".into(), pa: pa.into(), ..Default::default() }).unwrap()
}

fn applied(s: &mut Switch, rev: i64) -> bool {
    s.etcd()["applied_revision"].as_i64().unwrap() >= rev
}

fn clean_exit(stdout: &str) {
    assert!(stdout.contains(": reconciled"), "{stdout}");
    assert!(stdout.contains("drops by reason:\n  (none)"), "no packet was dropped:\n{stdout}");
}

#[test]
fn two_switches_follow_a_move_through_etcd_within_a_second() {
    let dir = std::env::temp_dir().join(format!("hnv-etcd-two-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let etcd = Etcd::start(&dir);
    let url = etcd.url();
    // Two hosts, each its own DPDK process (--no-huge, file prefix hnv<pid>), both on core 1.
    let a = scenarios::write(&dir.join("a"), Scenario::Encap, 64, 64, "off", 4096).unwrap();
    let b = scenarios::write(&dir.join("b"), Scenario::Encap, 64, 64, "off", 4096).unwrap();
    let mut cfg = std::fs::read_to_string(&a.config).unwrap();
    cfg += &format!("\n[etcd]\nendpoints = [\"{url}\"]\nprefix = \"/hnv/\"\n");
    std::fs::write(&a.config, cfg).unwrap();
    let mut sa = Switch::start(&a.config, &dir.join("a.sock"), &[]);
    let mut sb = Switch::start(&b.config, &dir.join("b.sock"), &["--etcd", &url]);

    // Nothing published yet: both keep forwarding on their local policy files.
    let rev = publish(&url, &a.policy);
    let t = Instant::now();
    wait_for("both switches to apply the publish", Duration::from_secs(5), || applied(&mut sa, rev) && applied(&mut sb, rev));
    println!("publish applied on both switches after {:?}", t.elapsed());
    for s in [&mut sa, &mut sb] {
        let e = s.etcd();
        assert_eq!(e["connected"], true, "{e}");
        assert_eq!(s.pa(5001, "10.0.0.16").as_deref(), Some("192.168.4.22"));
        // The cheap poll (show counters) reports the revision applied, like show policy.
        assert_eq!(s.show(Show::Counters).0["etcd_applied_revision"], e["applied_revision"]);
    }
    // Whole-prefix reads go in pages at one revision: pages of 2 keys read what one unlimited range read does.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = rt.block_on(etcd_client::Client::connect([url.as_str()], None)).unwrap();
    let (paged, at) = rt.block_on(hnvswitch::etcd::client::read_prefix(&client, "/hnv/", 0, 2, "paging")).unwrap();
    let (whole, _) = rt.block_on(hnvswitch::etcd::client::read_prefix(&client, "/hnv/", at, 0, "one read")).unwrap();
    assert_eq!(at, rev);
    assert!(paged.len() > 30 && paged.keys().all(|k| k.starts_with(b"/hnv/")), "{}", paged.len());
    assert_eq!(paged, whole);
    drop((client, rt));
    let (ga, gb) = (sa.generation(), sb.generation());

    // Move a VM with one put of its lookup key.
    let t = Instant::now();
    let rev = etcd.put(MOVED_KEY, &moved_value("192.168.4.25"));
    let put_took = t.elapsed();
    let mut seen = [None, None];
    wait_for("both switches to show the new PA", Duration::from_secs(1), || {
        for (i, s) in [&mut sa, &mut sb].into_iter().enumerate() {
            if seen[i].is_none() && s.pa(5001, "10.0.0.16").as_deref() == Some("192.168.4.25") {
                seen[i] = Some(t.elapsed());
            }
        }
        seen.iter().all(Option::is_some)
    });
    println!("move at revision {rev}: etcdctl put returned after {put_took:?}; switch a updated after {:?}, switch b after {:?}", seen[0].unwrap(), seen[1].unwrap());
    assert_eq!((sa.generation(), sb.generation()), (ga + 1, gb + 1), "one move, one new snapshot each");
    for s in [&mut sa, &mut sb] {
        let e = s.etcd();
        assert!(e["change_transactions"].as_u64().unwrap() >= 1, "the put was applied as a change, not by merging the whole prefix: {e}");
    }

    // A value that does not parse, then one that does not validate: refused, nothing changes.
    let (ga, gb) = (ga + 1, gb + 1);
    for (value, problem) in [(moved_value("192.168.4.23")[..40].to_string(), "not a valid JSON"), (moved_value("192.168.4"), "field 'pa'")] {
        let rev = etcd.put(MOVED_KEY, &value);
        for s in [&mut sa, &mut sb] {
            wait_for("the switch to read the bad revision", Duration::from_secs(2), || s.etcd()["revision"].as_i64().unwrap() >= rev);
            let e = s.etcd();
            let err = e["last_error"].as_str().unwrap_or_default().to_string();
            assert!(err.contains(MOVED_KEY) && err.contains(problem), "{e}");
            assert!(e["applied_revision"].as_i64().unwrap() < rev, "{e}");
            assert_eq!(s.pa(5001, "10.0.0.16").as_deref(), Some("192.168.4.25"));
        }
        assert_eq!((sa.generation(), sb.generation()), (ga, gb), "a refused value changes nothing");
    }
    for s in [&mut sa, &mut sb] {
        let tx = s.tx();
        wait_for("traffic to keep flowing", Duration::from_secs(2), || s.tx() > tx + 1000);
    }

    // Edits over the socket are refused while etcd manages the policy; show policy names the source.
    let r = sa.client.as_mut().unwrap().call(&Request::RemoveRecord { vsid: 6001, ca: "10.0.0.16".into() }).unwrap();
    assert!(!r.ok && r.error.as_deref().unwrap_or("").contains("managed by etcd"), "{r:?}");
    sb.client = None; // the socket serves one connection at a time
    let out = Command::new(env!("CARGO_BIN_EXE_hnvctl")).arg("--socket").arg(dir.join("b.sock")).args(["show", "policy"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(&format!("# source: etcd {url} prefix /hnv/: connected")), "{text}{}", String::from_utf8_lossy(&out.stderr));
    sb.client = Some(Client::connect(&dir.join("b.sock")).unwrap());

    // Republishing a file without a record deletes its key, in the same transaction as the rest.
    let mut p = hnv_policy::load(&a.policy).unwrap();
    p.lookup.retain(|r| !(r.vsid.get() == 6001 && r.ca.to_string() == "10.0.0.16"));
    let smaller = dir.join("smaller.toml");
    std::fs::write(&smaller, hnv_policy::to_toml(&p)).unwrap();
    // In transactions of at most one change each (hnvctl publish --batch): the deletion and the restored PA.
    let out = publish_with(&url, &["--batch".into(), "1".into()], &smaller);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("1 written, 1 deleted") && stdout.contains("in 2 transactions"), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let rev: i64 = stdout.rsplit("(revision ").next().and_then(|s| s.trim().trim_end_matches(')').parse().ok()).unwrap();
    wait_for("both switches to apply the republish", Duration::from_secs(2), || applied(&mut sa, rev) && applied(&mut sb, rev));
    for s in [&mut sa, &mut sb] {
        assert_eq!(s.pa(6001, "10.0.0.16"), None);
        assert_eq!(s.pa(5001, "10.0.0.16").as_deref(), Some("192.168.4.22"), "the publish also restored the file's PA");
    }

    let (out_a, err_a) = sa.stop();
    let (out_b, _) = sb.stop();
    clean_exit(&out_a);
    clean_exit(&out_b);
    for l in err_a.lines().filter(|l| l.contains("etcd")) {
        println!("switch a: {l}");
    }
    assert!(err_a.contains("refused, the previous policy stays in force") && err_a.contains(MOVED_KEY), "{err_a}");
    drop(etcd);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn forwarding_survives_an_etcd_outage_and_resynchronises() {
    let dir = std::env::temp_dir().join(format!("hnv-etcd-outage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut etcd = Etcd::start(&dir);
    let url = etcd.url();
    let w = scenarios::write(&dir.join("a"), Scenario::Encap, 64, 64, "off", 4096).unwrap();
    let state = dir.join("state.toml");
    let mut cfg = std::fs::read_to_string(&w.config).unwrap();
    cfg += &format!("\n[control]\nstate_file = \"{}\"\n\n[etcd]\nendpoints = [\"{url}\"]\n", state.display());
    std::fs::write(&w.config, cfg).unwrap();
    let rev = publish(&url, &w.policy);
    let mut s = Switch::start(&w.config, &dir.join("a.sock"), &[]);
    wait_for("the switch to apply the policy", Duration::from_secs(5), || applied(&mut s, rev));
    let g = s.generation();

    etcd.kill();
    let t = Instant::now();
    wait_for("the switch to notice the outage", Duration::from_secs(10), || s.etcd()["connected"] == false);
    println!("outage noticed after {:?}", t.elapsed());
    let mut last = s.tx();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        let tx = s.tx();
        assert!(tx > last + 1000, "forwarding continues while etcd is down: tx {last} -> {tx}");
        last = tx;
    }
    assert_eq!(s.generation(), g, "an outage changes no policy");
    assert_eq!(s.pa(5001, "10.0.0.16").as_deref(), Some("192.168.4.22"));

    // Back, on the same data directory: the change made right after the restart arrives
    // through the resynchronising read (or the watch, if the switch was quicker).
    etcd.spawn();
    let rev = etcd.put(MOVED_KEY, &moved_value("192.168.4.24"));
    let t = Instant::now();
    wait_for("the switch to resynchronise", Duration::from_secs(5), || applied(&mut s, rev));
    println!("resynchronised {:?} after the put", t.elapsed());
    assert_eq!(s.etcd()["connected"], true);
    assert_eq!(s.pa(5001, "10.0.0.16").as_deref(), Some("192.168.4.24"));
    assert_eq!(s.generation(), g + 1);
    assert!(std::fs::read_to_string(&state).unwrap().contains("192.168.4.24"), "the accepted update was saved");

    let (out, err) = s.stop();
    clean_exit(&out);
    assert_eq!(err.matches("forwarding continues on the last good policy").count(), 1, "the outage is logged once:\n{err}");
    assert!(err.contains("reconnected, resynchronising"), "{err}");

    // Restarted while etcd is down: the switch resumes with the last good policy from its state file.
    etcd.kill();
    let mut s = Switch::start(&w.config, &dir.join("a.sock"), &[]);
    assert_eq!(s.pa(5001, "10.0.0.16").as_deref(), Some("192.168.4.24"));
    let tx = s.tx();
    wait_for("traffic to flow without etcd", Duration::from_secs(3), || s.tx() > tx + 1000);
    assert_eq!(s.etcd()["connected"], false);
    let (out, _) = s.stop();
    clean_exit(&out);
    drop(etcd);
    std::fs::remove_dir_all(&dir).unwrap();
}

const BLUE4_KEY: &str = "/hnv/lookup/5001/10.0.0.9";

fn record(vsid: i64, ca: &str, mac: &str, pa: &str) -> String {
    serde_json::to_string(&LookupFile { ca: ca.into(), vsid, mac: mac.into(), pa: pa.into(), ..Default::default() }).unwrap()
}

fn blue4_value(pa: &str) -> String {
    record(5001, "10.0.0.9", "00:15:5d:01:00:09", pa)
}

/// Host B of the move test: PA 192.168.4.33, an uplink and the port of
/// A's VM blue4 (10.0.0.9), with A's tenant parts in its local file.
fn host_b_policy(a_policy: &Path, path: &Path) {
    use hnv_policy::file::{NeighborFile, PolicyFile, PortFile};
    let mut f: PolicyFile = toml::from_str(&std::fs::read_to_string(a_policy).unwrap()).unwrap();
    f.host.name = "bench-host2".into();
    f.host.provider_addresses[0].address = "192.168.4.33".into();
    f.host.provider_addresses[0].mac = "02:00:c0:a8:04:21".into();
    f.host.neighbors.retain(|n| n.address != "192.168.4.33");
    f.host.neighbors.push(NeighborFile { address: "192.168.4.11".into(), mac: "02:00:c0:a8:04:0b".into() });
    let blue4 = f.ports.iter().find(|p| p.name == "blue4").unwrap().clone();
    f.ports = vec![
        PortFile { name: "uplink".into(), role: "uplink".into(), devargs: "net_null_uplink,no-rx=1".into(), ..Default::default() },
        PortFile { devargs: "net_null_blue4,no-rx=1".into(), ..blue4 },
    ];
    std::fs::write(path, toml::to_string(&f).unwrap()).unwrap();
}

/// The README's "move a VM: one put" for a VM local to a switch: the host it
/// leaves keeps its port (the VM is elsewhere now), takes the move, keeps
/// applying later revisions for every tenant, restarts on its state file, and
/// the VM can come back with one more put to a host that had its port ready.
#[test]
fn a_vm_moved_by_one_put_leaves_its_old_host_working() {
    let tmp = TempDir::new("move");
    let dir = tmp.0.clone();
    let etcd = Etcd::start(&dir);
    let url = etcd.url();
    // Host A (PA 192.168.4.11) has blue4 (10.0.0.9) and knows host B's PA.
    let a = scenarios::write(&dir.join("a"), Scenario::Encap, 64, 64, "off", 4096).unwrap();
    let text = std::fs::read_to_string(&a.policy).unwrap().replacen("[[host.neighbors]]", "[[host.neighbors]]\naddress = \"192.168.4.33\"\nmac = \"02:00:c0:a8:04:21\"\n\n[[host.neighbors]]", 1);
    std::fs::write(&a.policy, text).unwrap();
    let state = dir.join("a-state.toml");
    let mut cfg = std::fs::read_to_string(&a.config).unwrap();
    cfg += &format!("\n[control]\nstate_file = \"{}\"\n\n[etcd]\nendpoints = [\"{url}\"]\n", state.display());
    std::fs::write(&a.config, cfg).unwrap();
    let rev = publish(&url, &a.policy);
    let mut sa = Switch::start(&a.config, &dir.join("a.sock"), &[]);
    wait_for("switch a to apply the publish", Duration::from_secs(5), || applied(&mut sa, rev));
    assert_eq!(sa.pa(5001, "10.0.0.9").as_deref(), Some("192.168.4.11"));
    let g = sa.generation();

    // The move: one put. Host A still has blue4's port; it takes the revision.
    let rev = etcd.put(BLUE4_KEY, &blue4_value("192.168.4.33"));
    let took = wait_for("switch a to apply the move (or say why not)", Duration::from_secs(3), || applied(&mut sa, rev) || !sa.etcd()["last_error"].is_null());
    let e = sa.etcd();
    assert!(e["last_error"].is_null() && applied(&mut sa, rev), "the host the VM left refused the move: {e}");
    println!("switch a applied the move at revision {rev} after {took:?}");
    assert_eq!(sa.pa(5001, "10.0.0.9").as_deref(), Some("192.168.4.33"));
    assert_eq!(sa.generation(), g + 1);

    // A later revision for another tenant applies too.
    let rev = etcd.put("/hnv/lookup/6001/10.0.0.16", &record(6001, "10.0.0.16", "00:15:5d:02:10:00", "192.168.4.24"));
    wait_for("switch a to apply a red revision", Duration::from_secs(3), || applied(&mut sa, rev) || !sa.etcd()["last_error"].is_null());
    assert!(sa.etcd()["last_error"].is_null(), "{}", sa.etcd());
    assert_eq!(sa.pa(6001, "10.0.0.16").as_deref(), Some("192.168.4.24"));
    assert!(std::fs::read_to_string(&state).unwrap().contains("192.168.4.33"), "the move was saved");
    let tx = sa.tx();
    wait_for("traffic to keep flowing on a", Duration::from_secs(3), || sa.tx() > tx + 1000);
    let (out, err) = sa.stop();
    clean_exit(&out);
    assert!(!err.contains("refused"), "{err}");

    // A restarts on its state file (the VM elsewhere, its port still here) and follows etcd.
    let mut sa = Switch::start(&a.config, &dir.join("a.sock"), &[]);
    assert_eq!(sa.pa(5001, "10.0.0.9").as_deref(), Some("192.168.4.33"), "resumed with the saved policy");
    let rev = etcd.put(MOVED_KEY, &moved_value("192.168.4.25"));
    wait_for("the restarted switch a to apply a revision", Duration::from_secs(5), || applied(&mut sa, rev));
    assert!(sa.etcd()["last_error"].is_null(), "{}", sa.etcd());

    // Host B has blue4's port and its PA; then the VM comes back to A with one put.
    let b_policy = dir.join("b-policy.toml");
    host_b_policy(&a.policy, &b_policy);
    let b = scenarios::write(&dir.join("b"), Scenario::Encap, 64, 64, "off", 4096).unwrap();
    let cfg = std::fs::read_to_string(&b.config).unwrap().replace(&b.policy.display().to_string(), &b_policy.display().to_string());
    std::fs::write(&b.config, cfg).unwrap();
    let mut sb = Switch::start(&b.config, &dir.join("b.sock"), &["--etcd", &url]);
    wait_for("switch b to apply etcd", Duration::from_secs(5), || applied(&mut sb, rev));
    assert!(sb.etcd()["last_error"].is_null(), "{}", sb.etcd());
    assert_eq!(sb.pa(5001, "10.0.0.9").as_deref(), Some("192.168.4.33"));
    let rev = etcd.put(BLUE4_KEY, &blue4_value("192.168.4.11"));
    wait_for("both switches to apply the move back", Duration::from_secs(3), || applied(&mut sa, rev) && applied(&mut sb, rev));
    for s in [&mut sa, &mut sb] {
        assert!(s.etcd()["last_error"].is_null(), "{}", s.etcd());
        assert_eq!(s.pa(5001, "10.0.0.9").as_deref(), Some("192.168.4.11"));
    }
    // B's port of the VM that left is removed locally; etcd keeps applying on B.
    let out = support::hnvctl(&dir.join("b.sock"), &["port", "remove", "blue4"]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let rev = etcd.put(MOVED_KEY, &moved_value("192.168.4.22"));
    wait_for("switch b to apply a revision after the port removal", Duration::from_secs(3), || applied(&mut sb, rev));
    assert!(sb.etcd()["last_error"].is_null(), "{}", sb.etcd());
    // Hot-added again, with its address (the record is in etcd, at A), the VM moves to B once more.
    let add = ["port", "add", "--name", "blue4", "--role", "vm", "--devargs", "net_null_blue4b,no-rx=1", "--vsid", "5001", "--mac", "00:15:5d:01:00:09", "--address", "10.0.0.9"];
    let out = support::hnvctl(&dir.join("b.sock"), &add);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let rev = etcd.put(BLUE4_KEY, &blue4_value("192.168.4.33"));
    wait_for("both switches to apply the second move", Duration::from_secs(3), || applied(&mut sa, rev) && applied(&mut sb, rev));
    for s in [&mut sa, &mut sb] {
        assert!(s.etcd()["last_error"].is_null(), "{}", s.etcd());
        assert_eq!(s.pa(5001, "10.0.0.9").as_deref(), Some("192.168.4.33"));
    }
    let (out_a, err_a) = sa.stop();
    let (out_b, err_b) = sb.stop();
    clean_exit(&out_a);
    clean_exit(&out_b);
    assert!(err_a.contains("resuming with the policy saved"), "{err_a}");
    assert!(!err_a.contains("refused") && !err_b.contains("refused"), "{err_a}\n{err_b}");
    drop(etcd);
}

/// A throwaway PKI made with the `openssl` CLI in `dir`: `ca` signs the etcd
/// server's certificate (`server`, for 127.0.0.1) and the switch's (`client`);
/// `rogue`, another CA, signs `intruder`. Keys are mode 0600.
fn pki(dir: &Path) {
    need("openssl", "version");
    std::fs::create_dir_all(dir).unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").current_dir(dir).args(args).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    for ca in ["ca", "rogue"] {
        let (k, p, subj) = (format!("{ca}.key"), format!("{ca}.pem"), format!("/CN=hnv test {ca}"));
        let mut args = vec!["req", "-x509"];
        args.extend(key);
        args.extend(["-keyout", &k, "-out", &p, "-days", "2", "-subj", &subj, "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        openssl(&args);
    }
    for (name, ca, usage) in [("server", "ca", "serverAuth"), ("client", "ca", "clientAuth"), ("intruder", "rogue", "clientAuth")] {
        let (k, csr, p, ext, subj) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"), format!("/CN=hnv test {name}"));
        std::fs::write(dir.join(&ext), format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\nsubjectAltName=IP:127.0.0.1\n")).unwrap();
        let mut args = vec!["req"];
        args.extend(key);
        args.extend(["-keyout", &k, "-out", &csr, "-subj", &subj]);
        openssl(&args);
        let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
        openssl(&["x509", "-req", "-in", &csr, "-CA", &ca_pem, "-CAkey", &ca_key, "-CAcreateserial", "-out", &p, "-days", "2", "-extfile", &ext]);
    }
    for f in std::fs::read_dir(dir).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "key") {
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        }
    }
}

/// `hnvctl publish --etcd URL EXTRA... POLICY`.
fn publish_with(url: &str, extra: &[String], policy: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hnvctl")).args(["publish", "--etcd", url]).args(extra).arg(policy).output().unwrap()
}

/// `config` with an `[etcd]` section for `url` and `keys` (TOML lines).
fn with_etcd(config: &Path, url: &str, keys: &str) -> PathBuf {
    let text = std::fs::read_to_string(config).unwrap();
    let text = text.split("\n[etcd]").next().unwrap().to_string();
    std::fs::write(config, format!("{text}\n[etcd]\nendpoints = [\"{url}\"]\n{keys}")).unwrap();
    config.to_path_buf()
}

/// etcd over TLS with `--client-cert-auth`, then with `auth enable`: the switch
/// follows policy over mutual TLS; without a client certificate or with one
/// from another CA it is refused and says so; a wrong password is refused and
/// the right one works; `hnvctl publish` takes the same options; the password
/// appears nowhere.
#[test]
fn mutual_tls_and_user_authentication() {
    let tmp = TempDir::new("tls");
    let dir = tmp.0.clone();
    let certs = dir.join("pki");
    pki(&certs);
    let mut etcd = Etcd::start_with(&dir, Some(&certs));
    let url = etcd.url();
    let c = |f: &str| certs.join(f).display().to_string();
    let mtls = format!("ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n", c("ca.pem"), c("client.pem"), c("client.key"));
    let w = scenarios::write(&dir.join("a"), Scenario::Encap, 64, 64, "off", 4096).unwrap();
    let sock = dir.join("a.sock");

    // hnvctl publish: refused without a client certificate, with one from another CA, or
    // without the CA that signed the server's; accepted with the switch's files.
    let opts = |pairs: &[(&str, &str)]| -> Vec<String> { pairs.iter().flat_map(|(k, f)| [format!("--{k}"), c(f)]).collect() };
    for (extra, says) in [
        (opts(&[("ca-file", "ca.pem")]), "it requires a client certificate (options --cert-file, --key-file)"),
        (opts(&[("ca-file", "ca.pem"), ("cert-file", "intruder.pem"), ("key-file", "intruder.key")]), "it does not accept this client's certificate"),
        (opts(&[("ca-file", "rogue.pem"), ("cert-file", "client.pem"), ("key-file", "client.key")]), "the etcd server's certificate is not signed by the CA in --ca-file"),
    ] {
        let out = publish_with(&url, &extra, &w.policy);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{extra:?}: {err}");
    }
    let out = publish_with(&url, &opts(&[("ca-file", "ca.pem"), ("cert-file", "client.pem"), ("key-file", "client.key")]), &w.policy);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rev = etcd.ctl(&["get", "/hnv/", "--prefix", "-w", "json"]);
    let rev = serde_json::from_slice::<Value>(&rev.stdout).unwrap()["header"]["revision"].as_i64().unwrap();

    // (a) The switch follows the policy over mutual TLS.
    let mut s = Switch::start(&with_etcd(&w.config, &url, &mtls), &sock, &[]);
    wait_for("the switch to apply the policy over mTLS", Duration::from_secs(5), || applied(&mut s, rev));
    let rev = etcd.put(MOVED_KEY, &moved_value("192.168.4.24"));
    wait_for("the switch to follow a put over mTLS", Duration::from_secs(3), || applied(&mut s, rev));
    assert_eq!(s.pa(5001, "10.0.0.16").as_deref(), Some("192.168.4.24"));
    assert_eq!(s.etcd()["connected"], true);
    let (out, _) = s.stop();
    clean_exit(&out);

    // (b) Without a client certificate, or with one from another CA: refused, and the switch says so.
    for (keys, says) in [
        (format!("ca_file = \"{}\"\n", c("ca.pem")), "it requires a client certificate (keys 'etcd.cert_file', 'etcd.key_file')"),
        (format!("ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n", c("ca.pem"), c("intruder.pem"), c("intruder.key")), "it does not accept this client's certificate"),
    ] {
        let mut s = Switch::start(&with_etcd(&w.config, &url, &keys), &sock, &[]);
        wait_for("the switch to report the refusal", Duration::from_secs(5), || !s.etcd()["last_error"].is_null());
        let e = s.etcd();
        assert!(e["connected"] == false && e["applied_revision"] == 0 && e["last_error"].as_str().unwrap().contains(says), "{e}");
        assert_eq!(s.pa(5001, "10.0.0.16").as_deref(), Some("192.168.4.22"), "the local policy stays in force");
        let (out, err) = s.stop();
        clean_exit(&out);
        assert!(err.contains(says) && err.contains("forwarding continues on the last good policy"), "{err}");
    }
    // A missing key file stops the switch before DPDK starts, naming the key.
    let bad = with_etcd(&w.config, &url, &mtls.replace("client.key", "missing.key"));
    let out = Command::new(env!("CARGO_BIN_EXE_hnvswitch")).args(["run", "--config"]).arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("key 'etcd.key_file': cannot read") && err.contains("missing.key"), "{err}");

    // (c) etcd authentication: a user that may read and write the prefix.
    let root_pw = "root-pw-not-for-switches";
    etcd.must(&["user", "add", &format!("root:{root_pw}")]);
    etcd.must(&["user", "grant-role", "root", "root"]);
    // The switches' user may read the prefix; the publisher's may write it.
    etcd.must(&["user", "add", "hnv:hnv-s3cret-pw"]);
    etcd.must(&["role", "add", "hnv-read"]);
    etcd.must(&["role", "grant-permission", "hnv-read", "--prefix=true", "read", "/hnv/"]);
    etcd.must(&["user", "grant-role", "hnv", "hnv-read"]);
    etcd.must(&["user", "add", "hnv-admin:hnv-admin-s3cret-pw"]);
    etcd.must(&["role", "add", "hnv-rw"]);
    etcd.must(&["role", "grant-permission", "hnv-rw", "--prefix=true", "readwrite", "/hnv/"]);
    etcd.must(&["user", "grant-role", "hnv-admin", "hnv-rw"]);
    etcd.must(&["auth", "enable"]);
    etcd.user = Some(format!("root:{root_pw}"));
    let (good, wrong, admin) = (dir.join("hnv.pw"), dir.join("wrong.pw"), dir.join("admin.pw"));
    for (p, text) in [(&good, "hnv-s3cret-pw\n"), (&wrong, "hnv-wrong-pw\n"), (&admin, "hnv-admin-s3cret-pw")] {
        std::fs::write(p, text).unwrap();
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    let user = |pw: &Path| format!("{mtls}user = \"hnv\"\npassword_file = \"{}\"\n", pw.display());
    let mut tls_user = opts(&[("ca-file", "ca.pem"), ("cert-file", "client.pem"), ("key-file", "client.key")]);
    tls_user.extend(["--user".into(), "hnv-admin".into(), "--password-file".into(), wrong.display().to_string()]);
    let out = publish_with(&url, &tls_user, &w.policy);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("etcd refused user \"hnv-admin\": wrong user name or password (options --user, --password-file)"), "{err}");
    let user_at = tls_user.len() - 3;
    *tls_user.last_mut().unwrap() = good.display().to_string();
    tls_user[user_at] = "hnv".into();
    let out = publish_with(&url, &tls_user, &w.policy);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("etcd user \"hnv\" lacks permission under /hnv/ (the switch needs read, hnvctl publish readwrite"), "a read-only user cannot publish: {err}");
    tls_user[user_at] = "hnv-admin".into();
    *tls_user.last_mut().unwrap() = admin.display().to_string();
    let out = publish_with(&url, &tls_user, &w.policy);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut s = Switch::start(&with_etcd(&w.config, &url, &user(&wrong)), &sock, &[]);
    wait_for("the switch to report the wrong password", Duration::from_secs(5), || !s.etcd()["last_error"].is_null());
    let e = s.etcd();
    assert!(e["connected"] == false && e["last_error"].as_str().unwrap().contains("etcd refused user \"hnv\": wrong user name or password (keys 'etcd.user', 'etcd.password_file')"), "{e}");
    let (out, err_wrong) = s.stop();
    clean_exit(&out);

    let mut s = Switch::start(&with_etcd(&w.config, &url, &user(&good)), &sock, &[]);
    let rev = etcd.put(MOVED_KEY, &moved_value("192.168.4.25"));
    wait_for("the switch with the right password to follow a put", Duration::from_secs(5), || applied(&mut s, rev));
    assert_eq!(s.pa(5001, "10.0.0.16").as_deref(), Some("192.168.4.25"));
    sock_show_policy_has_no_password(&sock);
    let (out, err) = s.stop();
    clean_exit(&out);
    for text in [&err_wrong, &err, &out] {
        assert!(!text.contains("s3cret-pw") && !text.contains("hnv-wrong-pw"), "a password was logged:\n{text}");
    }
    drop(etcd);
}

fn sock_show_policy_has_no_password(sock: &Path) {
    let out = support::hnvctl(sock, &["--json", "show", "policy"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && (text.contains("\"connected\": true") || text.contains("\"connected\":true")), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}
