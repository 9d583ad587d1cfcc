//! Connecting to etcd: options from the credentials, a time limit on every
//! request, and the prefix's content as raw key/value bytes.

use crate::etcd_security::Credentials;
use anyhow::{bail, Context, Result};
use etcd_client::ConnectOptions;
use std::collections::BTreeMap;
use std::time::Duration;

/// Limit on one etcd request (a read, creating the watch, a publish).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The prefix's content: raw key bytes to values.
pub type Kvs = BTreeMap<Vec<u8>, Vec<u8>>;

/// Connection options: TLS and user from `creds`, timeouts, keep-alive.
pub fn options(creds: &Credentials) -> ConnectOptions {
    creds.apply(ConnectOptions::new()).with_connect_timeout(REQUEST_TIMEOUT).with_keep_alive(Duration::from_secs(1), Duration::from_secs(2)).with_keep_alive_while_idle(true)
}

/// `f`, failing after [`REQUEST_TIMEOUT`]; errors say `what` was being done.
///
/// # Errors
/// etcd's error, or no answer in time.
pub async fn timed<T>(what: &str, f: impl std::future::Future<Output = Result<T, etcd_client::Error>>) -> Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(r) => r.with_context(|| what.to_string()),
        Err(_) => bail!("{what}: no answer within {} s", REQUEST_TIMEOUT.as_secs()),
    }
}

/// The key/values of a range read.
pub fn key_values(resp: &etcd_client::GetResponse) -> Kvs {
    resp.kvs().iter().map(|kv| (kv.key().to_vec(), kv.value().to_vec())).collect()
}
