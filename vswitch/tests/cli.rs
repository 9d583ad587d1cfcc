//! The `hnvswitch` binary as a user meets it: help, version, the demo, and a
//! one-line error (no panic, no backtrace, no files left) for each kind of bad
//! configuration.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hnvswitch"));
    c.env("RUST_LOG", "warn").env_remove("RUST_BACKTRACE");
    c
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("hnvcli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run `hnvswitch run` on `config`; return (exit ok, stderr).
fn run_config(tag: &str, config: &str) -> (bool, String, String) {
    let dir = tempdir(tag);
    let f = dir.join("bad.toml");
    std::fs::write(&f, config).unwrap();
    let child = bin().args(["run", "--config"]).arg(&f).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let runtime_dir = std::path::PathBuf::from(format!("/var/run/dpdk/hnv{pid}"));
    assert!(!runtime_dir.exists(), "{} left behind", runtime_dir.display());
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned(), f.display().to_string())
}

fn assert_one_line_error(stderr: &str, file: &str, needles: &[&str]) {
    let err: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(err.len(), 1, "exactly one error line expected:\n{stderr}");
    assert!(err[0].contains(file), "error names the file: {}", err[0]);
    for n in needles {
        assert!(err[0].contains(n), "error mentions {n:?}: {}", err[0]);
    }
    assert!(!stderr.contains("panicked") && !stderr.contains("stack backtrace"), "{stderr}");
}

#[test]
fn help_and_version() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "demo", "check", "traffic"] {
        assert!(help.contains(cmd), "{help}");
    }
    let out = bin().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("hnvswitch 0."));
}

#[test]
fn bad_cli_argument_is_a_usage_error() {
    let out = bin().args(["run", "--frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--frobnicate"));
}

#[test]
fn unknown_key() {
    let (ok, err, f) = run_config("unknown", "[dpdk]\nmemory_mb = 512\ncolour = 'blue'\n[[ports]]\nname='a'\ndevargs='net_null0'\n");
    assert!(!ok);
    assert_one_line_error(&err, &f, &["line 3", "colour"]);
}

#[test]
fn missing_field() {
    let (ok, err, f) = run_config("missing", "[[ports]]\nname='a'\n");
    assert!(!ok);
    assert_one_line_error(&err, &f, &["devargs"]);
}

#[test]
fn nonexistent_core() {
    let (ok, err, f) = run_config("core", "[dpdk]\nworkers=[999]\n[[ports]]\nname='a'\ndevargs='net_null0'\n");
    assert!(!ok);
    assert_one_line_error(&err, &f, &["dpdk.workers[0]", "999"]);
}

#[test]
fn too_little_memory() {
    let (ok, err, f) = run_config("mem", "[dpdk]\nmemory_mb=32\nmbufs=65535\n[[ports]]\nname='a'\ndevargs='net_null0'\n");
    assert!(!ok);
    assert_one_line_error(&err, &f, &["dpdk.memory_mb"]);
}

#[test]
fn devargs_dpdk_rejects() {
    let (ok, err, f) = run_config("devargs", "[dpdk]\nhugepages='off'\nmemory_mb=256\nmbufs=4096\n[[ports]]\nname='a'\ndevargs='net_nosuchdriver0,foo=1'\n");
    assert!(!ok);
    assert_one_line_error(&err, &f, &["ports[0].devargs", "net_nosuchdriver0"]);
}

#[test]
fn hnv_demo_switches_both_tenants_and_reconciles() {
    let out = bin().args(["demo", "--duration", "2.5"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
    let vsid_tx = |v: &str| -> u64 {
        let line = stdout.lines().find(|l| l.starts_with(v)).unwrap_or_else(|| panic!("per-VSID line for {v}:\n{stdout}"));
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    assert!(vsid_tx("5001 ") > 100_000 && vsid_tx("6001 ") > 100_000, "{stdout}");
    assert!(stdout.contains("spoofed_ip"), "the spoofed packets are counted by name:\n{stdout}");
    assert!(stdout.contains(": reconciled"), "{stdout}");
}

#[test]
fn io_demo_forwards_packets_through_dpdk() {
    let out = bin().args(["demo", "--io", "--duration", "2.5"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
    let sink = stdout.lines().find(|l| l.starts_with("sink ")).expect("final counters show the sink port");
    let tx: u64 = sink.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(tx > 1_000_000, "the demo forwarded only {tx} packets:\n{stdout}");
    assert!(stdout.contains("Mpps"), "{stdout}");
}

#[test]
fn check_accepts_the_example_and_names_every_error() {
    let dir = tempdir("check");
    let good = dir.join("good.toml");
    std::fs::write(&good, hnv_policy::example::BLUE_RED_HOST1).unwrap();
    let out = bin().arg("check").arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
    let bad = dir.join("bad.toml");
    let text = hnv_policy::example::BLUE_RED_HOST1.replacen("vsid = 5001", "vsid = 12", 1).replacen("mac = \"00:15:5d:02:00:05\"", "mac = \"00:15:5d:02:00\"", 1);
    std::fs::write(&bad, text).unwrap();
    let out = bin().arg("check").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml"), "{err}");
    assert!(err.contains("vsid") && err.contains("12"), "{err}");
    assert!(err.contains("mac"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `derive-policy` writes a policy `check` accepts; `vm-nic` reads a VM's NIC from it; a
/// name the base lacks, a bad fragment or a malformed edit is a one-line error and
/// writes nothing.
#[test]
fn derive_policy_and_vm_nic() {
    let dir = tempdir("derive");
    let out = dir.join("h9.toml");
    let frag = dir.join("extra.toml");
    std::fs::write(&frag, "[[lookup]]\nca = \"10.0.0.99\"\nvsid = 5001\nmac = \"00:15:5d:01:00:99\"\npa = \"192.168.4.99\"\nvm_name = \"Extra\"\n").unwrap();
    let derive = |extra: &[&str]| {
        let mut c = bin();
        c.args([
            "derive-policy",
            "--from",
            "host1",
            "--host-name",
            "h9",
            "--pa",
            "192.168.4.9",
            "--pa-mac",
            "02:00:00:00:00:09",
            "--no-neighbors",
            "--mtu",
            "uplink=1600",
            "--vm-pa",
            "Blue1=192.168.4.9",
            "--vm-pa",
            "Red1=192.168.4.9",
        ]);
        c.args(extra).output().unwrap()
    };
    let ok = derive(&["--add", frag.to_str().unwrap(), "--neighbor", "192.168.4.99=02:00:00:00:00:99", "-o", out.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let checked = bin().arg("check").arg(&out).output().unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    let summary = String::from_utf8_lossy(&checked.stdout);
    assert!(summary.contains("host h9"), "{summary}");
    let text = std::fs::read_to_string(&out).unwrap();
    for needle in ["192.168.4.9\"", "10.0.0.99", "mtu = 1600", "address = \"192.168.4.99\""] {
        assert!(text.contains(needle), "{needle} in\n{text}");
    }
    let nic = bin().args(["vm-nic"]).arg(&out).arg("blue1").output().unwrap();
    assert!(nic.status.success(), "{}", String::from_utf8_lossy(&nic.stderr));
    assert_eq!(String::from_utf8_lossy(&nic.stdout).trim(), "00:15:5d:01:00:05 10.0.0.5/24 10.0.0.1");

    std::fs::remove_file(&out).unwrap();
    for (args, needle) in [
        (&["--port", "nope=net_null0"][..], "no port named \"nope\""),
        (&["--vm-pa", "Nobody=192.168.4.1"][..], "no lookup record with vm_name \"Nobody\""),
        (&["--encap", "4242=vxlan"][..], "no subnet with VSID 4242"),
        (&["--encap", "5001=gre"][..], "unknown encapsulation"),
        (&["--neighbor", "192.168.4.1=zz"][..], "192.168.4.1=zz"),
        (&["--add", "/nonexistent/x.toml"][..], "/nonexistent/x.toml"),
    ] {
        let mut a = args.to_vec();
        a.extend(["-o", out.to_str().unwrap()]);
        let o = derive(&a);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
    }
    let nic = bin().args(["vm-nic"]).arg(dir.join("missing.toml")).arg("blue1").output().unwrap();
    assert!(!nic.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}
