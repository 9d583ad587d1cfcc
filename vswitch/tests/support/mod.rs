//! Shared helpers for the tests that run the `hnvswitch` binary with a
//! control socket: start it, wait for the socket, stop it with SIGINT.
#![allow(dead_code, clippy::unwrap_used)]

use hnvswitch::ctl::Client;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a switch may take to open its control socket (EAL start-up is slow on a loaded machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// `hnvswitch run --config CONFIG --control SOCK --duration 120 EXTRA...` with
/// `RUST_LOG=log`, stdout and stderr captured.
pub fn spawn(config: &Path, sock: &Path, extra: &[&str], log: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hnvswitch"))
        .args(["run", "--config"])
        .arg(config)
        .arg("--control")
        .arg(sock)
        .args(["--duration", "120"])
        .args(extra)
        .env("RUST_LOG", log)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait until the control socket at `sock` answers; panics after [`START_TIMEOUT`].
pub fn connect(sock: &Path) -> Client {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(c) = Client::connect(sock) {
            return c;
        }
        assert!(Instant::now() < deadline, "control socket {} did not appear", sock.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running switch that is killed (SIGINT, then SIGKILL) if the test ends
/// without stopping it, e.g. when an assertion fails: a failed test must not
/// leave a switch behind.
#[derive(Debug)]
pub struct Running(Option<Child>);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        self.0.as_ref().unwrap()
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(mut c) = self.0.take() else { return };
        let _ = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// [`spawn`] with `RUST_LOG=warn` and no extra flags, then [`connect`].
pub fn start(config: &Path, sock: &Path) -> (Running, Client) {
    let child = Running(Some(spawn(config, sock, &[], "warn")));
    let c = connect(sock);
    (child, c)
}

/// SIGINT, wait for a clean exit; returns (stdout, stderr).
pub fn stop_output(child: impl Into<Child>) -> (String, String) {
    let mut child: Child = child.into();
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "switch did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let (o, e) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "{o}\n{e}");
    (o, e)
}

impl From<Running> for Child {
    fn from(mut r: Running) -> Child {
        r.0.take().unwrap()
    }
}

/// [`stop_output`], stdout only.
pub fn stop(child: impl Into<Child>) -> String {
    stop_output(child).0
}

/// Run the `hnvctl` binary against `sock`.
pub fn hnvctl(sock: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hnvctl")).arg("--socket").arg(sock).args(args).output().unwrap()
}

/// The `encapsulated N,` count of a switch's exit report (0 if absent).
pub fn encapsulated(report: &str) -> u64 {
    report.split("encapsulated ").nth(1).and_then(|s| s.split(',').next()).and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}
