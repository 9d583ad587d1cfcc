//! Connecting to etcd: options from the credentials, a time limit on every
//! request, and the prefix's content as raw key/value bytes, read in pages.

use crate::etcd_security::Credentials;
use anyhow::{bail, Context, Result};
use etcd_client::{Client, ConnectOptions, GetOptions};
use std::collections::BTreeMap;
use std::time::Duration;

/// Limit on one etcd request (a read, creating the watch, a publish).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// The prefix's content: raw key bytes to values.
pub type Kvs = BTreeMap<Vec<u8>, Vec<u8>>;

/// Limit on reading one page of a whole prefix ([`read_prefix`]): etcd 3.4
/// walks its index over the rest of the range for every page, ~0.5 s for a
/// page of 100,000 records at the start of a million on a busy 2-core host.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(15);

/// HTTP/2 keep-alive ping interval. etcd (grpc-go) closes a connection whose
/// client pings more often than `--grpc-keepalive-min-time` (default 5 s; a
/// GOAWAY "too_many_pings" after three such pings): with pings every second,
/// an idle watch was cut every ~4 s and the switch re-read the whole prefix
/// each time (at 1M records, a 20 s resynchronisation, during which a burst
/// of moves waited). grpc-go's own clients ping at most every 10 s.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// How long a ping may go unanswered before the connection counts as lost.
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connection options: TLS and user from `creds`, timeouts, keep-alive.
pub fn options(creds: &Credentials) -> ConnectOptions {
    creds.apply(ConnectOptions::new()).with_connect_timeout(REQUEST_TIMEOUT).with_keep_alive(KEEP_ALIVE, KEEP_ALIVE_TIMEOUT).with_keep_alive_while_idle(true)
}

/// `f`, failing after [`REQUEST_TIMEOUT`]; errors say `what` was being done.
///
/// # Errors
/// etcd's error, or no answer in time.
pub async fn timed<T>(what: &str, f: impl std::future::Future<Output = Result<T, etcd_client::Error>>) -> Result<T> {
    timed_for(REQUEST_TIMEOUT, what, f).await
}

/// `f`, failing after `limit`; errors say `what` was being done.
///
/// # Errors
/// etcd's error, or no answer in time.
pub async fn timed_for<T>(limit: Duration, what: &str, f: impl std::future::Future<Output = Result<T, etcd_client::Error>>) -> Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r.with_context(|| what.to_string()),
        Err(_) => bail!("{what}: no answer within {} s", limit.as_secs()),
    }
}

/// Keys per range request when reading a whole prefix. One response of a
/// million records (~160 MB) is far over gRPC's 4 MiB default message limit
/// and holds etcd for seconds; pages of this many keys (~16 MB of lookup
/// records) are read one after the other, all at the revision of the first.
/// Not smaller: etcd 3.4 walks its index over the whole rest of the range
/// for every page, so pages of 10,000 took 14 s for a million records
/// (100,000: ~4 s; one request: 2.5 s).
pub const PAGE_KEYS: i64 = 100_000;

/// Largest response accepted (a page of [`PAGE_KEYS`] keys of unusually
/// large values still fits; etcd's values are at most 1.5 MiB by default).
pub const MAX_RESPONSE: usize = 1 << 30;

/// The end of the key range of every key starting with `prefix` (etcd's
/// `range_end`): the prefix with its last byte below 0xff incremented, and
/// what follows it dropped; `[0]` (every key) when there is no such byte.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The first key after `key` (where the next page starts).
fn after(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.extend_from_slice(key);
    k.push(0);
    k
}

/// Every key under `prefix` at `revision` (0: the latest), read in pages of
/// `page` keys at one revision; returns them and that revision. Each page has
/// [`PAGE_TIMEOUT`]; errors say `what` was being done.
///
/// # Errors
/// etcd's error (e.g. the revision was compacted away), or no answer in time.
pub async fn read_prefix(client: &Client, prefix: &str, revision: i64, page: i64, what: &str) -> Result<(Kvs, i64)> {
    let mut kv = client.kv_client().max_decoding_message_size(MAX_RESPONSE);
    let end = prefix_end(prefix.as_bytes());
    let (mut kvs, mut rev, mut from) = (Kvs::new(), revision, prefix.as_bytes().to_vec());
    loop {
        let opts = GetOptions::new().with_range(end.clone()).with_limit(page).with_revision(rev);
        let resp = timed_for(PAGE_TIMEOUT, what, kv.get(from, Some(opts))).await?;
        if rev <= 0 {
            rev = resp.header().map_or(0, |h| h.revision());
        }
        for x in resp.kvs() {
            kvs.insert(x.key().to_vec(), x.value().to_vec());
        }
        match resp.kvs().last() {
            Some(last) if resp.more() => from = after(last.key()),
            _ => return Ok((kvs, rev)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_pings_no_more_often_than_etcd_permits() {
        // etcd's --grpc-keepalive-min-time defaults to 5 s; closer pings get the connection closed.
        assert!(KEEP_ALIVE >= Duration::from_secs(5));
        assert!(KEEP_ALIVE_TIMEOUT < KEEP_ALIVE);
    }

    #[test]
    fn a_prefix_range_ends_after_its_last_key() {
        assert_eq!(prefix_end(b"/hnv/"), b"/hnv0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), [0]);
        assert_eq!(prefix_end(b""), [0]);
        // Every key under the prefix sorts before the end, the next one after it.
        for k in [&b"/hnv/"[..], b"/hnv/lookup/1/10.0.0.1", b"/hnv/\xff\xff"] {
            assert!(k < &prefix_end(b"/hnv/")[..]);
        }
        assert!(b"/hnv0"[..] >= prefix_end(b"/hnv/")[..]);
        assert_eq!(after(b"/hnv/a"), b"/hnv/a\0");
        assert!(after(b"/hnv/a").as_slice() > &b"/hnv/a"[..] && after(b"/hnv/a").as_slice() < &b"/hnv/a\0\0"[..]);
    }
}
