//! What the etcd backend reports: `hnvctl show policy` and the watcher share it.

use crate::config::EtcdConfig;
use serde::Serialize;
use std::sync::{Arc, Mutex};

/// What `hnvctl show policy` reports about the backend.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// Client URLs.
    pub endpoints: Vec<String>,
    /// Key prefix.
    pub prefix: String,
    /// A watch is established.
    pub connected: bool,
    /// Latest revision read from etcd (0 = none yet).
    pub revision: i64,
    /// Revision of the policy in force (0 = none yet: the local file's policy).
    pub applied_revision: i64,
    /// Why the latest revision was refused, or why the connection failed.
    pub last_error: Option<String>,
    /// Bursts of revisions applied as one transaction of changes.
    pub change_transactions: u64,
    /// Whole states of the prefix merged and validated (start, reconnect, re-read, fallback).
    pub full_merges: u64,
}

impl Status {
    /// One line: where the policy comes from and how current it is.
    pub fn line(&self) -> String {
        format!(
            "etcd {} prefix {}: {}, revision {} read, {} applied{}",
            self.endpoints.join(","),
            self.prefix,
            if self.connected { "connected" } else { "NOT connected (forwarding on the last good policy)" },
            self.revision,
            self.applied_revision,
            self.last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default()
        )
    }
}

/// The backend status shared with the control socket.
pub type StatusHandle = Arc<Mutex<Status>>;

/// A status for `cfg`, not yet connected.
pub fn new_status(cfg: &EtcdConfig) -> StatusHandle {
    Arc::new(Mutex::new(Status { endpoints: cfg.endpoints.clone(), prefix: cfg.prefix.clone(), ..Default::default() }))
}
