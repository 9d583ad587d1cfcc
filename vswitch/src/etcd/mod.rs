//! The etcd policy backend: the tenant policy shared by every host lives
//! under one etcd key prefix; each switch watches it and applies changes live.
//!
//! Contract:
//! - etcd holds only the tenant objects, one key per object, the value being
//!   the JSON of the policy file's struct (see [`key_of`] for the layout). Each
//!   host keeps `[host]` and `[[ports]]` from its own policy (or state) file;
//!   the two are merged and validated like a policy file, with shared records
//!   ([`SHARED`]): a local VM port whose records place its VM at another host's
//!   PA is a VM that is elsewhere, not an error. The policy service
//!   ([`crate::service`]) owns the result; this module is its adapter to etcd.
//! - Moving a VM is one put of its lookup key with the new host's PA. The host
//!   it leaves keeps the port (until `hnvctl port remove NAME`) and takes the
//!   revision: the VM's traffic is encapsulated to the new PA, and NVGRE still
//!   arriving for it is forwarded there for the grace period with REDIRECTs to
//!   the senders, exactly as after `hnvctl port remove --moved-to`; later
//!   revisions apply as usual, and a restart resumes from the state file. The
//!   host it arrives at may have had the port all along (its VM elsewhere).
//! - The [`Watcher`] runs on its own thread with a current-thread tokio
//!   runtime; workers never wait on etcd. On start and on every reconnect it
//!   reads the whole prefix (in pages of [`client::PAGE_KEYS`] keys at one
//!   revision: a million records are far over gRPC's message limit), then watches from the next revision; changes
//!   arriving within [`DEBOUNCE`] of each other are one burst, applied as one
//!   transaction of change requests and published as one snapshot, or by
//!   merging the whole prefix when they cannot be expressed as changes
//!   ([`follower`] says which).
//! - A state of the prefix with a key that is not UTF-8, a value over
//!   [`MAX_VALUE`] bytes, a key or value that does not parse, a key that is not
//!   its value's canonical key, or a merged policy that fails validation is
//!   refused with one log line naming the keys (escaped) and problems; the
//!   previous policy stays in force. Nothing etcd sends makes the thread
//!   panic. An empty prefix changes nothing. The port list never changes
//!   through etcd; `hnvctl port add/remove` changes it locally (through the
//!   policy service), and later revisions merge with the new ports. Each
//!   accepted policy is saved to the state file.
//! - When another host answers this one's traffic with an MS-NVGREE
//!   UNREACHABLE (this host's policy is stale), the watcher probes the prefix
//!   (newest modification, number of keys) and re-reads it whole if it holds
//!   anything newer (at most once per `REREAD_EVERY`).
//! - The watcher keeps no copy of the prefix's content: watch events carry
//!   each key's previous value, and the prefix is read again when a burst
//!   needs the whole of it.
//! - Connections use TLS, a client certificate and an etcd user as `[etcd]`
//!   says ([`crate::etcd_security`]: the files are re-read on every
//!   connection); a refused connection is reported with what it means
//!   ([`explain`]).
//! - While etcd is unreachable the switch forwards on its last good policy,
//!   logs the loss once and retries with backoff ([`BACKOFF_MIN`] to [`BACKOFF_MAX`]).

//!
//! Files: [`objects`] (keys, values, merge), [`follower`] (what a burst or a
//! whole state does to the policy), [`status`], [`client`] (connection
//! helpers), [`mod@publish`] (`hnvctl publish`); the watcher itself is here.

pub mod client;
pub mod follower;
pub mod objects;
pub mod publish;
pub mod status;

pub use crate::config::DEFAULT_ETCD_PREFIX as DEFAULT_PREFIX;
pub use objects::{key_of, merge, merged_policy, objects_of, parse_objects, Object, MAX_VALUE};
pub use publish::{publish, Published};
pub use status::{new_status, Status, StatusHandle};

use crate::config::EtcdConfig;
use crate::etcd_security::{explain, Credentials};
use crate::service::PolicyService;
use anyhow::{bail, Context, Result};
use client::{options, read_prefix, timed, PAGE_KEYS};
use etcd_client::{Client, EventType, GetOptions, SortOrder, SortTarget, WatchOptions};
use follower::{Burst, Follower};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// Validation of a merged policy: the lookup records are shared by every host.
pub const SHARED: hnv_policy::Options = crate::service::SHARED_RECORDS;

/// Changes arriving within this window are applied as one snapshot.
pub const DEBOUNCE: Duration = Duration::from_millis(20);
/// First retry delay after a lost connection.
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often the watcher checks whether an MS-NVGREE UNREACHABLE asks for a re-read.
const STALE_CHECK: Duration = Duration::from_millis(200);
/// At most one re-read on UNREACHABLE per this interval (a flood of them must not load etcd).
const REREAD_EVERY: Duration = Duration::from_secs(5);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running etcd watcher; dropping it stops the thread.
pub struct Watcher {
    follower: Arc<Follower>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").field("status", &*lock(self.follower.status())).finish()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Watcher {
    /// Start watching `cfg.prefix` into `service` (whose policy is the local
    /// one until the first accepted revision), reporting into `status` (from
    /// [`new_status`]).
    ///
    /// # Errors
    /// The TLS or password files of `cfg` cannot be used (the error names the
    /// key), or the thread or its runtime cannot be created.
    pub fn start(cfg: &EtcdConfig, service: Arc<PolicyService>, status: StatusHandle) -> Result<Watcher> {
        // A missing or unreadable certificate, key or password file stops the switch at start.
        if Credentials::load(cfg).map_err(anyhow::Error::msg)?.password_in_clear() {
            log::warn!("etcd {}: user {:?} over http://: the password crosses the network unencrypted (use https:// with etcd.ca_file)", cfg.endpoints.join(","), cfg.user.as_deref().unwrap_or(""));
        }
        let follower = Arc::new(Follower::new(service, cfg.clone(), status));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("creating the etcd watcher's runtime")?;
        let (stop, stop_rx) = watch::channel(false);
        let f = follower.clone();
        let thread = std::thread::Builder::new().name("hnv-etcd".into()).spawn(move || rt.block_on(run(f, stop_rx))).context("starting the etcd watcher thread")?;
        Ok(Watcher { follower, stop, thread: Some(thread) })
    }

    /// The status, shared with the control socket.
    pub fn status(&self) -> StatusHandle {
        self.follower.status().clone()
    }
}

/// Reconnect forever with backoff until `stop`.
async fn run(shared: Arc<Follower>, mut stop: watch::Receiver<bool>) {
    let mut backoff = BACKOFF_MIN;
    let mut reported = false;
    let mut ever = false;
    loop {
        let mut connected = false;
        let r = tokio::select! {
            r = session(&shared, &mut connected, ever) => r,
            _ = stop.changed() => return,
        };
        if connected {
            backoff = BACKOFF_MIN;
            reported = false;
            ever = true;
        }
        let e = match r {
            Ok(()) => return,
            Err(e) => explain(&e, shared.cfg()),
        };
        {
            let mut st = lock(shared.status());
            st.connected = false;
            st.last_error = Some(e.clone());
        }
        if !reported {
            log::warn!(
                "etcd {}: {e}; forwarding continues on the last good policy (generation {}), retrying every {}-{} ms",
                shared.cfg().endpoints.join(","),
                shared.service().generation(),
                BACKOFF_MIN.as_millis(),
                BACKOFF_MAX.as_millis()
            );
            reported = true;
        } else {
            log::debug!("etcd: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Where a connection's watch stands.
#[derive(Debug, Default)]
struct Position {
    /// Latest revision seen (response headers included): what the status reports.
    seen: i64,
    /// Revision of the latest event applied or read: the prefix's state the policy follows.
    at: i64,
    /// Keys under the prefix at `at`.
    keys: usize,
}

/// Read the whole prefix (at `revision`, or the latest when 0) and apply it as a whole state.
async fn read_whole(shared: &Follower, client: &Client, pos: &mut Position, revision: i64, what: &str) -> Result<()> {
    let (kvs, r) = read_prefix(client, shared.cfg().prefix.as_str(), revision, PAGE_KEYS, what).await?;
    let r = if r > 0 { r } else { pos.at };
    pos.at = pos.at.max(r);
    pos.seen = pos.seen.max(r);
    pos.keys = kvs.len();
    shared.resync(&kvs, pos.seen);
    Ok(())
}

/// One connection: full read, then watch until an error. The prefix's
/// content is not kept: a burst carries each key's value before it
/// (`prev_kv`), and the whole prefix is read again only when a burst cannot
/// be applied as changes.
async fn session(shared: &Follower, connected: &mut bool, reconnect: bool) -> Result<()> {
    let cfg = shared.cfg();
    // Re-read on every connection: renewed certificates take effect on the next reconnect.
    let creds = Credentials::load(cfg).map_err(anyhow::Error::msg)?;
    let mut client = timed("connecting", Client::connect(&cfg.endpoints, Some(options(&creds)))).await?;
    let (kvs, rev) = read_prefix(&client, cfg.prefix.as_str(), 0, PAGE_KEYS, "reading the prefix").await?;
    let mut pos = Position { seen: rev, at: rev, keys: kvs.len() };
    let watch = WatchOptions::new().with_prefix().with_prev_key().with_start_revision(rev.saturating_add(1));
    let mut stream = timed("creating the watch", client.watch(cfg.prefix.as_str(), Some(watch))).await?;
    *connected = true;
    lock(shared.status()).connected = true;
    log::info!("etcd {}: {}, {} keys under {} at revision {rev}", cfg.endpoints.join(","), if reconnect { "reconnected, resynchronising" } else { "connected" }, kvs.len(), cfg.prefix);
    shared.resync(&kvs, rev);
    drop(kvs);
    let mut unreachable = shared.service().store().unreachable_received();
    let mut tick = tokio::time::interval(STALE_CHECK);
    let mut last_reread = std::time::Instant::now().checked_sub(REREAD_EVERY).unwrap_or_else(std::time::Instant::now);
    loop {
        let msg = tokio::select! {
            m = stream.message() => m.context("watch")?,
            _ = tick.tick() => {
                // Another host said this one's policy is stale (MS-NVGREE UNREACHABLE): re-read the
                // prefix if it holds anything newer than what was applied (a cheap probe first).
                let now = shared.service().store().unreachable_received();
                if now != unreachable && last_reread.elapsed() >= REREAD_EVERY {
                    last_reread = std::time::Instant::now();
                    unreachable = now;
                    let probe = GetOptions::new().with_prefix().with_sort(SortTarget::Mod, SortOrder::Descend).with_limit(1).with_keys_only();
                    let resp = timed("probing the prefix", client.get(cfg.prefix.as_str(), Some(probe))).await?;
                    let newest = resp.kvs().first().map_or(0, |kv| kv.mod_revision());
                    let keys = usize::try_from(resp.count()).unwrap_or(usize::MAX);
                    log::info!("etcd: UNREACHABLE received; newest change under {} at revision {newest}, {keys} keys", cfg.prefix);
                    if newest > pos.at || keys != pos.keys {
                        read_whole(shared, &client, &mut pos, 0, "re-reading the prefix").await?;
                    }
                }
                continue;
            }
        };
        // A burst: this response and every one within DEBOUNCE of it.
        let mut burst = Burst::default();
        if absorb(msg, &mut burst, &mut pos)? {
            let deadline = tokio::time::Instant::now() + DEBOUNCE;
            while let Ok(msg) = tokio::time::timeout_at(deadline, stream.message()).await {
                absorb(msg.context("watch")?, &mut burst, &mut pos)?;
            }
        }
        if burst.is_empty() {
            continue;
        }
        if let Err(why) = shared.apply_burst(&burst, pos.keys, pos.seen) {
            log::debug!("etcd revision {}: {why}; reading the whole prefix at revision {}", pos.seen, pos.at);
            let at = pos.at;
            read_whole(shared, &client, &mut pos, at, "reading the prefix").await?;
        }
    }
}

/// Fold one watch response into `burst` and `pos`; true if it carried events.
fn absorb(msg: Option<etcd_client::WatchResponse>, burst: &mut Burst, pos: &mut Position) -> Result<bool> {
    let Some(resp) = msg else { bail!("the watch stream ended") };
    if resp.canceled() || resp.compact_revision() > 0 {
        bail!("etcd cancelled the watch ({}; compacted to revision {})", resp.cancel_reason(), resp.compact_revision());
    }
    if let Some(h) = resp.header() {
        pos.seen = pos.seen.max(h.revision());
    }
    for ev in resp.events() {
        let Some(kv) = ev.kv() else { continue };
        pos.at = pos.at.max(kv.mod_revision());
        pos.seen = pos.seen.max(kv.mod_revision());
        let before = ev.prev_kv().map(|p| p.value().to_vec());
        let after = match ev.event_type() {
            EventType::Put => Some(kv.value().to_vec()),
            EventType::Delete => None,
        };
        match (&before, &after) {
            (None, Some(_)) => pos.keys += 1,
            (Some(_), None) => pos.keys = pos.keys.saturating_sub(1),
            _ => {}
        }
        burst.set(kv.key().to_vec(), before, after);
    }
    Ok(!resp.events().is_empty())
}
