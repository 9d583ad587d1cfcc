//! `hnvctl publish`: write a policy file's tenant objects under the prefix in
//! one etcd transaction (or, for first publishes larger than one transaction
//! may be, in transactions of a given size).

use super::client::{options, read_prefix, timed, PAGE_KEYS};
use super::objects::objects_of;
use crate::config::EtcdConfig;
use crate::etcd_security::{explain, Credentials};
use anyhow::{bail, Context, Result};
use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use hnv_policy::file::PolicyFile;
use hnv_policy::Policy;
use std::collections::BTreeMap;

/// What [`publish`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Keys written (new or changed).
    pub put: usize,
    /// Keys deleted (no longer in the policy).
    pub deleted: usize,
    /// Keys left as they were.
    pub unchanged: usize,
    /// The etcd revision after the publish.
    pub revision: i64,
    /// Transactions it took (1 unless published in batches; 0 when nothing changed).
    pub transactions: usize,
}

/// Publish the tenant objects of `policy` under `cfg.prefix` in one transaction:
/// write new and changed keys, delete keys under the prefix that are no longer
/// in the policy. The transaction is conditional on nothing under the prefix
/// having changed since it was read (it is retried a few times otherwise).
///
/// With `batch` > 0, at most `batch` operations go in one transaction: the
/// first is conditional as above, the others follow it unconditionally, so
/// the publish as a whole is not atomic and a watching switch may see (and
/// refuse) an intermediate state. For loading a large policy into a prefix
/// nobody else writes to (and etcd's `--max-txn-ops`, `--max-request-bytes`).
///
/// # Errors
/// Unusable TLS or password files (the error names the key), etcd unreachable
/// or refusing this client, a refused transaction (e.g. more changes than
/// etcd's `--max-txn-ops`, default 128), or a prefix that kept changing.
pub fn publish(cfg: &EtcdConfig, policy: &Policy, batch: usize) -> Result<Published> {
    let creds = Credentials::load(cfg).map_err(anyhow::Error::msg)?;
    let (endpoints, prefix) = (&cfg.endpoints, cfg.prefix.as_str());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("creating a runtime")?;
    let want: BTreeMap<Vec<u8>, String> = objects_of(prefix, &PolicyFile::from_policy(policy)).iter().map(|(k, o)| (k.clone().into_bytes(), o.to_json())).collect();
    rt.block_on(async {
        let at = endpoints.join(",");
        let fail = |e: anyhow::Error| anyhow::anyhow!("etcd {at}: {}", explain(&e, cfg));
        let mut client = timed("connecting", Client::connect(endpoints, Some(options(&creds)))).await.map_err(fail)?;
        for _ in 0..5 {
            let (have, rev) = read_prefix(&client, prefix, 0, PAGE_KEYS, "reading the prefix").await.map_err(fail)?;
            let mut ops = Vec::new();
            let mut put = 0;
            for (k, v) in &want {
                if have.get(k).map(Vec::as_slice) != Some(v.as_bytes()) {
                    ops.push(TxnOp::put(k.as_slice(), v.as_str(), None));
                    put += 1;
                }
            }
            // Every other key under the prefix goes, UTF-8 or not.
            let stale: Vec<&Vec<u8>> = have.keys().filter(|k| !want.contains_key(*k)).collect();
            for k in &stale {
                ops.push(TxnOp::delete(k.as_slice(), None));
            }
            let unchanged = want.len() - put;
            if ops.is_empty() {
                return Ok(Published { put: 0, deleted: 0, unchanged, revision: rev, transactions: 0 });
            }
            let n_ops = ops.len();
            let size = if batch == 0 { n_ops } else { batch };
            let count = n_ops.div_ceil(size);
            let mut ops = ops.into_iter();
            let mut revision = rev;
            for i in 0..count {
                let chunk: Vec<TxnOp> = ops.by_ref().take(size).collect();
                let n = chunk.len();
                let mut txn = Txn::new();
                if i == 0 {
                    txn = txn.when([Compare::mod_revision(prefix, CompareOp::Less, rev.saturating_add(1)).with_prefix()]);
                }
                let hint = if n > 128 { " (more than etcd's default --max-txn-ops of 128)" } else { "" };
                let r = timed("publishing", client.txn(txn.and_then(chunk))).await.map_err(|e| anyhow::anyhow!("etcd {at}: a transaction of {n} operations{hint}: {}", explain(&e, cfg)))?;
                if !r.succeeded() {
                    break;
                }
                revision = r.header().map_or(revision, |h| h.revision());
                if i + 1 == count {
                    return Ok(Published { put, deleted: stale.len(), unchanged, revision, transactions: count });
                }
            }
        }
        bail!("etcd {at}: keys under {prefix} kept changing while publishing; try again")
    })
}
