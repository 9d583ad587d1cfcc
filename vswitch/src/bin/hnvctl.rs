//! hnvctl: inspect and change a running hnvswitch over its control socket.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use hnv_policy::api::{Request, Response, Show};
use hnv_policy::file::{AclFile, CustomerRouteFile, LookupFile, PortFile, TextOrNumber};
use hnvswitch::ctl::Client;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "hnvctl", version, about = "Inspect and change a running hnvswitch (needs root: the socket is mode 0600)")]
pub(crate) struct Cli {
    /// The switch's control socket (hnvswitch run --control PATH, or control.socket).
    #[arg(long, short, default_value = "/run/hnvswitch/hnvswitch.sock", global = true)]
    socket: PathBuf,
    /// Print the raw JSON response instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show ports, vsids, records, routes, acl, counters, flows, workers, policy, capture, notices (MS-NVGREE messages),
    /// tables or neighbors (provider next hops: MAC, state, source static/learned/resolved, age, requests).
    Show {
        /// What to show.
        #[arg(value_enum)]
        what: Show,
    },
    /// Live per-port and per-VSID rates, refreshed every interval (Ctrl-C to stop).
    Watch {
        /// Seconds between refreshes.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Stop after this many refreshes (0 = forever).
        #[arg(long, default_value_t = 0)]
        count: u64,
    },
    /// Add, replace (e.g. move a CA to a new PA) or remove a lookup record.
    Record {
        #[command(subcommand)]
        action: RecordCmd,
    },
    /// Add or remove a customer route.
    Route {
        #[command(subcommand)]
        action: RouteCmd,
    },
    /// Set a virtual subnet's encapsulation between hosts: nvgre or vxlan
    /// (change it on every host of the subnet; hosts accept both on receipt).
    Encap {
        /// VSID.
        vsid: i64,
        /// nvgre or vxlan.
        encap: String,
    },
    /// Add or remove a VSID ACL rule.
    Acl {
        #[command(subcommand)]
        action: AclCmd,
    },
    /// Apply many record, route and ACL changes as one validated transaction:
    /// all of them or, if any is refused, none (one new policy generation).
    /// FILE ("-" for stdin) is TOML with one `[[change]]` table per change, or
    /// JSON (an array, or one object per line), each change in the form
    /// `hnvctl --json` sends it: op = "replace_record", record = {...}.
    Apply {
        /// The changes file, or - for stdin.
        file: PathBuf,
    },
    /// Validate a policy file and publish its tenant parts (routing domains, subnets,
    /// lookup records, customer routes, ACL) to etcd in one transaction; keys under
    /// the prefix that the file no longer holds are deleted.
    Publish {
        /// etcd client URL (repeatable).
        #[arg(long = "etcd", value_name = "URL", required = true)]
        etcd: Vec<String>,
        /// Key prefix.
        #[arg(long, default_value = hnvswitch::etcd::DEFAULT_PREFIX)]
        prefix: String,
        /// How to reach etcd: TLS and user, as the switch's [etcd] keys.
        #[command(flatten)]
        security: EtcdSecurity,
        /// At most N changed keys per transaction (0: all in one). Not atomic as a
        /// whole: for first publishes larger than etcd's --max-txn-ops allows.
        #[arg(long, value_name = "N", default_value_t = 0)]
        batch: usize,
        /// The policy file.
        policy: PathBuf,
    },
    /// Hot-add or remove a port (vdev, vhost-user or PCI) on the running switch.
    Port {
        #[command(subcommand)]
        action: PortCmd,
    },
    /// Start, stop or show a pcapng capture.
    Capture {
        #[command(subcommand)]
        action: CaptureCmd,
    },
}

#[derive(Subcommand, Debug)]
enum PortCmd {
    /// Add a port as the last switch port: validated, opened in DPDK, then
    /// swapped in with the workers briefly paused.
    Add {
        /// Port name.
        #[arg(long)]
        name: String,
        /// vm or uplink.
        #[arg(long)]
        role: String,
        /// DPDK devargs, e.g. net_vhost1,iface=/run/vm1.sock or net_pcap5,rx_pcap=in.pcap.
        #[arg(long)]
        devargs: String,
        /// VSID (VM ports).
        #[arg(long)]
        vsid: Option<i64>,
        /// The VM's MAC (VM ports).
        #[arg(long)]
        mac: Option<String>,
        /// A CA the VM may send from; repeat for more.
        #[arg(long = "address")]
        addresses: Vec<String>,
        /// MTU.
        #[arg(long)]
        mtu: Option<i64>,
        /// Also add a lookup record for each address, with this provider
        /// address of this host (a VM port's addresses need such records).
        #[arg(long)]
        pa: Option<String>,
    },
    /// Remove a port; later ports move down by one.
    Remove {
        /// Port name.
        name: String,
        /// Also remove the lookup records delivered to the port (its VSID and MAC at a local PA).
        #[arg(long, conflicts_with = "moved_to")]
        with_records: bool,
        /// The VM live-migrated to this provider address: its records point there from now on
        /// (this host forwards late traffic to it for 5 s and redirects senders).
        #[arg(long)]
        moved_to: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum CaptureCmd {
    /// Start capturing to a new pcapng file (written by the switch).
    Start {
        /// Output file (relative paths are taken from the current directory).
        file: PathBuf,
        /// Only this port (by name); repeat for more.
        #[arg(long = "port")]
        ports: Vec<String>,
        /// Only this VSID; repeat for more.
        #[arg(long = "vsid")]
        vsids: Vec<i64>,
        /// ingress, egress or both.
        #[arg(long, default_value = "both")]
        stage: String,
        /// Bytes kept per frame (at most 2048).
        #[arg(long)]
        snaplen: Option<u16>,
    },
    /// Stop the capture and close its file.
    Stop,
    /// Show the capture in progress.
    Status,
}

#[derive(Args, Debug)]
struct RecordArgs {
    /// Customer address.
    #[arg(long)]
    ca: String,
    /// VSID.
    #[arg(long)]
    vsid: i64,
    /// The VM's MAC.
    #[arg(long)]
    mac: String,
    /// Provider address of the VM's host.
    #[arg(long)]
    pa: String,
    /// encap (default) or none.
    #[arg(long)]
    rule: Option<String>,
    /// static (default), l2only or gateway_wildcard.
    #[arg(long = "type")]
    kind: Option<String>,
    /// VM name.
    #[arg(long)]
    vm_name: Option<String>,
    /// Send FlowID 0 to this record (peers that match the whole GRE key).
    #[arg(long)]
    no_flow_id: bool,
}

impl RecordArgs {
    fn file(self) -> LookupFile {
        LookupFile {
            ca: self.ca,
            vsid: self.vsid,
            mac: self.mac,
            pa: self.pa,
            rule: self.rule,
            kind: self.kind,
            vm_name: self.vm_name,
            flow_id: self.no_flow_id.then_some(false),
            ..Default::default()
        }
    }
}

#[derive(Subcommand, Debug)]
enum RecordCmd {
    /// Add a record.
    Add(RecordArgs),
    /// Replace the record with the same VSID and CA.
    Replace(RecordArgs),
    /// Remove a record.
    Remove {
        /// VSID.
        #[arg(long)]
        vsid: i64,
        /// Customer address.
        #[arg(long)]
        ca: String,
    },
}

#[derive(Subcommand, Debug)]
enum RouteCmd {
    /// Add a route.
    Add {
        #[command(flatten)]
        key: RouteKey,
        /// Next hop (0.0.0.0 = on-link).
        #[arg(long, default_value = "0.0.0.0")]
        next_hop: String,
        /// Metric.
        #[arg(long, default_value_t = 1)]
        metric: i64,
    },
    /// Remove a route.
    Remove(RouteKey),
}

/// What names a customer route.
#[derive(Args, Debug)]
struct RouteKey {
    /// Routing domain.
    #[arg(long)]
    routing_domain: String,
    /// VSID.
    #[arg(long)]
    vsid: i64,
    /// Destination prefix.
    #[arg(long)]
    destination: String,
}

#[derive(Subcommand, Debug)]
enum AclCmd {
    /// Add a rule.
    Add {
        /// VSID.
        #[arg(long)]
        vsid: i64,
        /// Priority (lower first).
        #[arg(long)]
        priority: i64,
        /// allow or deny.
        #[arg(long)]
        action: String,
        /// in, out or both.
        #[arg(long)]
        direction: Option<String>,
        /// any, tcp, udp, icmp, icmpv6 or a number.
        #[arg(long)]
        protocol: Option<String>,
        /// Source prefix.
        #[arg(long)]
        src: Option<String>,
        /// Destination prefix.
        #[arg(long)]
        dst: Option<String>,
        /// Source ports, "80" or "1000-2000".
        #[arg(long)]
        src_ports: Option<String>,
        /// Destination ports.
        #[arg(long)]
        dst_ports: Option<String>,
    },
    /// Remove a rule.
    Remove {
        /// VSID.
        #[arg(long)]
        vsid: i64,
        /// Priority.
        #[arg(long)]
        priority: i64,
    },
}

/// Columns that are identifiers, not counts: printed as they are.
const ID_COLUMNS: &[&str] = &["vsid", "worker", "generation", "policy_generation", "priority", "metric", "mtu", "rx_queues", "tx_queues", "pause_us", "index", "port"];

/// `8.33 Mpps`, `950.2 kpps`, `12 pps`.
fn rate(pps: f64) -> String {
    if pps >= 1e6 {
        format!("{:.2} Mpps", pps / 1e6)
    } else if pps >= 1e3 {
        format!("{:.1} kpps", pps / 1e3)
    } else {
        format!("{pps:.0} pps")
    }
}

/// `112,247,840`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A table cell as a person reads it: rates with units, counts grouped by
/// thousands, links up/down (`--json` keeps the raw numbers).
fn human(column: &str, v: &Value) -> String {
    match v {
        Value::Number(n) if column.ends_with("_pps") => n.as_f64().map_or_else(|| n.to_string(), rate),
        Value::Number(n) if column.ends_with("_pct") => n.as_f64().map_or_else(|| n.to_string(), |f| format!("{f:.1} %")),
        Value::Number(n) if !ID_COLUMNS.contains(&column) => n.as_u64().map_or_else(|| cell(v), grouped),
        Value::Bool(b) if column == "link_up" => (if *b { "up" } else { "down" }).to_string(),
        _ => cell(v),
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.0}"),
            _ => n.to_string(),
        },
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Render rows (an array of objects) as an aligned table.
fn table(rows: &[Value]) -> String {
    if !matches!(rows.first(), Some(Value::Object(_))) {
        return "(none)\n".into();
    }
    // Columns: every key of every row, in first-seen order (rows may omit optional fields).
    let mut cols: Vec<&String> = Vec::new();
    for k in rows.iter().filter_map(Value::as_object).flat_map(|o| o.keys()) {
        if !cols.contains(&k) {
            cols.push(k);
        }
    }
    let cells: Vec<Vec<String>> = rows.iter().map(|r| cols.iter().map(|c| human(c, r.get(c.as_str()).unwrap_or(&Value::Null))).collect()).collect();
    let widths: Vec<usize> = cols.iter().enumerate().map(|(i, c)| cells.iter().map(|r| r[i].len()).chain([c.len()]).max().unwrap_or(0)).collect();
    let line = |vals: Vec<&str>| vals.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect::<Vec<_>>().join("  ").trim_end().to_string() + "\n";
    let mut out = line(cols.iter().map(|c| c.as_str()).collect());
    for r in &cells {
        out += &line(r.iter().map(String::as_str).collect());
    }
    out
}

fn render(resp: &Response) -> String {
    match &resp.data {
        Value::Array(rows) => table(rows),
        Value::Object(o) if o.contains_key("toml") => {
            let source = o.get("source").map(|s| format!("# source: {}\n", cell(s))).unwrap_or_default();
            // SIGHUP reloads, when any was refused.
            let reloads = o
                .get("reloads")
                .filter(|r| r["failed"].as_u64().unwrap_or(0) > 0)
                .map_or_else(String::new, |r| format!("# reloads: {} ok, {} refused; last: {}\n", r["ok"], r["failed"], r["last_error"].as_str().unwrap_or("ok")));
            source + &reloads + &cell(&o["toml"])
        }
        // A port change: its generation and the workers' pause.
        Value::Object(o) if o.len() == 1 && o.contains_key("pause_us") => format!("ok (policy generation {}; workers paused {} µs)\n", resp.generation.unwrap_or(0), cell(&o["pause_us"])),
        Value::Object(o) => {
            let mut s = String::new();
            for (k, v) in o {
                match v {
                    Value::Array(rows) => s += &format!("{k}:\n{}", table(rows)),
                    v => s += &format!("{k:<14} {}\n", human(k, v)),
                }
            }
            s
        }
        Value::Null => format!("ok (policy generation {})\n", resp.generation.unwrap_or(0)),
        v => format!("{v}\n"),
    }
}

/// Per-worker busy share and cycles per packet over the last refresh interval.
fn interval_workers(prev: Option<&[Value]>, now: &[Value]) -> Vec<Value> {
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    now.iter()
        .enumerate()
        .map(|(i, w)| {
            let p = prev.and_then(|p| p.get(i));
            let d = |k: &str| num(w, k).saturating_sub(p.map_or(0, |p| num(p, k)));
            let (busy, idle, rx) = (d("busy_cycles"), d("idle_cycles"), d("rx"));
            serde_json::json!({"worker": i, "rx": rx, "busy_pct": hnvswitch::percent(busy, busy + idle), "cycles_per_pkt": busy.checked_div(rx).unwrap_or(0)})
        })
        .collect()
}

fn call(client: &mut Client, req: &Request, json: bool) -> Result<()> {
    let resp = client.call(req).context("talking to hnvswitch")?;
    if json {
        emit(format_args!("{}\n", serde_json::to_string_pretty(&resp)?))?;
    }
    if !resp.ok {
        bail!("{}", resp.error.unwrap_or_else(|| "refused".into()));
    }
    if !json {
        emit(format_args!("{}", render(&resp)))?;
    }
    Ok(())
}

/// `hnvctl publish`'s TLS and user options, named after the switch's `[etcd]` keys.
#[derive(Debug, clap::Args)]
struct EtcdSecurity {
    /// CA certificate (PEM) that signed the etcd servers' certificates (https:// endpoints).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for etcd's --client-cert-auth.
    #[arg(long, value_name = "FILE", requires = "key_file")]
    cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert_file")]
    key_file: Option<PathBuf>,
    /// etcd user.
    #[arg(long, value_name = "NAME", requires = "password_file")]
    user: Option<String>,
    /// File holding the user's password (mode 0600), never the password itself.
    #[arg(long, value_name = "FILE", requires = "user")]
    password_file: Option<PathBuf>,
}

/// The option of this command that sets the `[etcd]` key `key`.
fn option_of(key: &str) -> String {
    match key.strip_prefix("etcd.") {
        Some("endpoints") => "--etcd".into(),
        Some(k) if k.starts_with("endpoints[") => k.trim_start_matches("endpoints[").trim_end_matches(']').parse::<usize>().map_or_else(|_| "--etcd".into(), |i| format!("--etcd #{}", i + 1)),
        Some(k) => format!("--{}", k.replace('_', "-")),
        None => format!("key '{key}'"),
    }
}

/// A message naming `[etcd]` keys, naming this command's options instead.
fn as_options(m: &str) -> String {
    let mut m = m.replace("key 'etcd.endpoints'", "--etcd");
    for i in 0..16 {
        m = m.replace(&format!("key 'etcd.endpoints[{i}]'"), &format!("--etcd #{}", i + 1));
    }
    for key in ["prefix", "ca_file", "cert_file", "key_file", "user", "password_file"] {
        m = m.replace(&format!("key 'etcd.{key}'"), &format!("--{}", key.replace('_', "-")));
        m = m.replace(&format!("'etcd.{key}'"), &format!("--{}", key.replace('_', "-")));
    }
    m.replace("(keys --", "(options --")
}

fn publish(endpoints: Vec<String>, prefix: String, security: EtcdSecurity, batch: usize, path: &std::path::Path) -> Result<()> {
    let EtcdSecurity { ca_file, cert_file, key_file, user, password_file } = security;
    let cfg = hnvswitch::config::EtcdConfig { endpoints: endpoints.clone(), prefix: prefix.clone(), ca_file, cert_file, key_file, user, password_file };
    cfg.check().map_err(|e| anyhow::anyhow!("{}: {}", option_of(&e.key), e.problem))?;
    let policy = hnv_policy::load(path).map_err(|e| {
        eprintln!("{e}");
        anyhow::anyhow!("{}: policy rejected, nothing published", path.display())
    })?;
    let r = hnvswitch::etcd::publish(&cfg, &policy, batch).map_err(|e| anyhow::anyhow!("{}", as_options(&format!("{e:#}"))))?;
    let txns = if r.transactions > 1 { format!(" in {} transactions", r.transactions) } else { String::new() };
    emit(format_args!(
        "{}\n",
        format_args!(
            "published {} to etcd {} under {}: {} written, {} deleted, {} unchanged{txns} (revision {})",
            path.display(),
            endpoints.join(","),
            prefix,
            r.put,
            r.deleted,
            r.unchanged,
            r.revision
        )
    ))?;
    Ok(())
}

/// `hnvctl apply`'s TOML form: `[[change]]` tables.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangesFile {
    #[serde(default)]
    change: Vec<Request>,
}

/// Parse a changes file (`origin` names it in errors): TOML with `[[change]]`
/// tables, a JSON array of requests, or JSON lines.
fn parse_changes(text: &str, origin: &str) -> Result<Vec<Request>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') && !trimmed.starts_with("[[") {
        return serde_json::from_str(trimmed).with_context(|| format!("{origin}: not a JSON array of changes"));
    }
    if trimmed.starts_with('{') {
        return text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{origin}:{}: not a change", i + 1))).collect();
    }
    let f: ChangesFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1).unwrap_or(0);
        anyhow::anyhow!("{origin}:{line}: {}", e.message().trim())
    })?;
    Ok(f.change)
}

fn apply(connect: impl FnOnce() -> Result<Client>, file: &std::path::Path, json: bool) -> Result<()> {
    use std::io::Read;
    let (text, origin) = if file.as_os_str() == "-" {
        let mut t = String::new();
        std::io::stdin().read_to_string(&mut t).context("reading the changes from stdin")?;
        (t, "stdin".to_string())
    } else {
        (std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?, file.display().to_string())
    };
    let changes = parse_changes(&text, &origin)?;
    if changes.is_empty() {
        bail!("{origin}: no changes");
    }
    let resp = connect()?.transaction(&changes).context("talking to hnvswitch")?;
    if json {
        emit(format_args!("{}\n", serde_json::to_string_pretty(&resp)?))?;
    }
    if !resp.ok {
        bail!("{origin}: {}", resp.error.unwrap_or_else(|| "refused".into()));
    }
    if !json {
        emit(format_args!("{} change(s) applied as one transaction (policy generation {})\n", changes.len(), resp.generation.unwrap_or(0)))?;
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    let socket = cli.socket;
    let connect = || Client::connect(&socket).with_context(|| format!("cannot open {} (is hnvswitch running with a control socket, and are you root?)", socket.display()));
    let req = match cli.command {
        Command::Publish { etcd, prefix, security, batch, policy } => return publish(etcd, prefix, security, batch, &policy),
        Command::Apply { file } => return apply(connect, &file, cli.json),
        Command::Show { what } => Request::Show { what },
        Command::Watch { interval, count } => {
            let mut client = connect()?;
            let mut n = 0;
            let mut last: Option<Vec<Value>> = None;
            loop {
                let ports = client.call(&Request::Show { what: Show::Ports })?;
                let vsids = client.call(&Request::Show { what: Show::Vsids })?;
                let workers = client.call(&Request::Show { what: Show::Workers })?;
                let rows = workers.data.as_array().cloned().unwrap_or_default();
                let recent = interval_workers(last.as_deref(), &rows);
                last = Some(rows);
                emit(format_args!("\x1b[2J\x1b[H{}\n{}\n{}", render(&ports), render(&vsids), table(&recent)))?;
                n += 1;
                if count > 0 && n >= count {
                    return Ok(());
                }
                std::thread::sleep(std::time::Duration::from_secs_f64(interval.max(0.1)));
            }
        }
        Command::Record { action } => match action {
            RecordCmd::Add(a) => Request::AddRecord { record: a.file() },
            RecordCmd::Replace(a) => Request::ReplaceRecord { record: a.file() },
            RecordCmd::Remove { vsid, ca } => Request::RemoveRecord { vsid, ca },
        },
        Command::Route { action } => match action {
            RouteCmd::Add { key: RouteKey { routing_domain, vsid, destination }, next_hop, metric } => {
                Request::AddRoute { route: CustomerRouteFile { routing_domain, vsid, destination, next_hop, metric } }
            }
            RouteCmd::Remove(RouteKey { routing_domain, vsid, destination }) => Request::RemoveRoute { routing_domain, vsid, destination },
        },
        Command::Encap { vsid, encap } => Request::SetEncap { vsid, encap },
        Command::Acl { action } => match action {
            AclCmd::Add { vsid, priority, action, direction, protocol, src, dst, src_ports, dst_ports } => Request::AddAcl {
                rule: AclFile {
                    vsid,
                    priority,
                    direction,
                    action,
                    protocol: protocol.map(TextOrNumber::Text),
                    src,
                    dst,
                    src_ports: src_ports.map(TextOrNumber::Text),
                    dst_ports: dst_ports.map(TextOrNumber::Text),
                },
            },
            AclCmd::Remove { vsid, priority } => Request::RemoveAcl { vsid, priority },
        },
        Command::Port { action } => match action {
            PortCmd::Add { name, role, devargs, vsid, mac, addresses, mtu, pa } => {
                let records = match (&pa, vsid, &mac) {
                    (Some(pa), Some(vsid), Some(mac)) => addresses.iter().map(|ca| LookupFile { ca: ca.clone(), vsid, mac: mac.clone(), pa: pa.clone(), ..Default::default() }).collect(),
                    (Some(_), _, _) => bail!("--pa needs --vsid and --mac (the records carry them)"),
                    (None, _, _) => Vec::new(),
                };
                Request::AddPort { port: PortFile { name, role, devargs, vsid, mac, addresses, mtu }, records }
            }
            PortCmd::Remove { name, with_records, moved_to } => Request::RemovePort { name, with_records, moved_to },
        },
        Command::Capture { action } => match action {
            CaptureCmd::Start { file, ports, vsids, stage, snaplen } => {
                let path = std::path::absolute(&file).with_context(|| format!("capture file {}", file.display()))?;
                Request::CaptureStart { path: path.display().to_string(), ports, vsids, stage: Some(stage), snaplen }
            }
            CaptureCmd::Stop => Request::CaptureStop,
            CaptureCmd::Status => Request::Show { what: Show::Capture },
        },
    };
    call(&mut connect()?, &req, cli.json)
}

/// Writes to standard output. A closed pipe (`hnvctl show counters | head`)
/// ends hnvctl quietly with success, as SIGPIPE ends other tools; any other
/// write error is an error.
fn emit(text: std::fmt::Arguments) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_fmt(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        r => r.context("writing to standard output"),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", hnvswitch::service::OneLine(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn changes_files_parse_as_toml_json_array_or_json_lines() {
        let toml = "# move Blue2, drop a route\n[[change]]\nop = \"replace_record\"\nrecord = { ca = \"10.0.0.7\", vsid = 5001, mac = \"00:15:5d:01:00:07\", pa = \"192.168.4.33\" }\n\n[[change]]\nop = \"remove_route\"\nrouting_domain = \"blue\"\nvsid = 5001\ndestination = \"10.0.5.0/24\"\n\n[[change]]\nop = \"add_acl\"\n[change.rule]\nvsid = 5001\npriority = 50\naction = \"deny\"\nprotocol = \"tcp\"\ndst_ports = 3389\n";
        let c = parse_changes(toml, "c.toml").unwrap();
        assert_eq!(c.len(), 3);
        assert!(matches!(&c[0], Request::ReplaceRecord { record } if record.pa == "192.168.4.33"));
        assert!(matches!(&c[2], Request::AddAcl { rule } if rule.dst_ports == Some(TextOrNumber::Number(3389))));
        let lines: String = c.iter().map(|r| serde_json::to_string(r).unwrap() + "\n").collect();
        assert_eq!(parse_changes(&lines, "c.jsonl").unwrap(), c);
        assert_eq!(parse_changes(&serde_json::to_string(&c).unwrap(), "c.json").unwrap(), c);
        let e = parse_changes("[[change]]\nop = \"reboot\"\n", "bad.toml").unwrap_err().to_string();
        assert!(e.starts_with("bad.toml:1: ") || e.starts_with("bad.toml:2: "), "{e}");
        assert!(parse_changes("{\"op\":\"remove_record\"}\n", "bad.jsonl").unwrap_err().to_string().starts_with("bad.jsonl:1:"));
    }

    #[test]
    fn an_etcd_key_is_named_by_its_option() {
        for (key, option) in [("etcd.endpoints", "--etcd"), ("etcd.endpoints[1]", "--etcd #2"), ("etcd.password_file", "--password-file"), ("dpdk.workers", "key 'dpdk.workers'")] {
            assert_eq!(option_of(key), option);
        }
        let e = hnvswitch::config::EtcdConfig::new(vec!["http://h:1".into(), "ftp://x".into()], "/hnv/".into()).check().unwrap_err();
        assert_eq!(format!("{}: {}", option_of(&e.key), e.problem), "--etcd #2: \"ftp://x\" is not an http:// or https:// URL");
    }

    #[test]
    fn the_readme_example_parses() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("# changes.toml:").unwrap();
        let text = &readme[start..start + readme[start..].find("```").unwrap()];
        let c = parse_changes(text, "README").unwrap();
        assert_eq!(c.len(), 3);
        assert!(matches!(&c[2], Request::AddAcl { rule } if rule.dst_ports == Some(TextOrNumber::Number(3389))));
    }

    #[test]
    fn a_table_shows_fields_that_only_later_rows_have() {
        let rows = vec![serde_json::json!({"vsid": 5001, "priority": 10}), serde_json::json!({"vsid": 5001, "priority": 20, "dst": "10.0.0.7/32"})];
        let t = table(&rows);
        let mut lines = t.lines();
        assert_eq!(lines.next().map(|l| l.split_whitespace().collect::<Vec<_>>()), Some(vec!["vsid", "priority", "dst"]), "the switch's order, not the alphabet's");
        assert!(t.contains("10.0.0.7/32"), "{t}");
        assert_eq!(table(&[]), "(none)\n");
    }

    #[test]
    fn cells_read_like_pmd_perf_show_and_json_stays_raw() {
        let row = serde_json::json!({"name": "uplink", "link_up": true, "rx_pps": 8_330_000.0, "tx_pps": 950_200.0, "rx_packets": 112_247_840u64, "busy_pct": 87.25, "vsid": 5001, "rx_queues": 2});
        let t = table(std::slice::from_ref(&row));
        let head: Vec<&str> = t.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(head[..3], ["name", "link_up", "rx_pps"], "the identifying column first, then link, then rates");
        for want in ["uplink", "up", "8.33 Mpps", "950.2 kpps", "112,247,840", "87.2 %", "5001"] {
            assert!(t.contains(want), "{want} in {t}");
        }
        assert!(!t.contains("5,001"), "identifiers are not grouped: {t}");
        assert_eq!((grouped(0), grouped(999), grouped(1000), grouped(1_234_567)), ("0".into(), "999".into(), "1,000".into(), "1,234,567".into()));
        assert_eq!(rate(12.4), "12 pps");
        // --json prints the response as the switch sent it: raw numbers.
        assert_eq!(row["rx_packets"], 112_247_840u64);
    }
}
