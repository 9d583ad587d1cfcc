//! `hnvctl publish`: write a policy file's tenant objects under the prefix in one etcd transaction.

use super::client::{key_values, options, timed};
use super::objects::objects_of;
use crate::config::EtcdConfig;
use crate::etcd_security::{explain, Credentials};
use anyhow::{bail, Context, Result};
use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};
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
}

/// Publish the tenant objects of `policy` under `cfg.prefix` in one transaction:
/// write new and changed keys, delete keys under the prefix that are no longer
/// in the policy. The transaction is conditional on nothing under the prefix
/// having changed since it was read (it is retried a few times otherwise).
///
/// # Errors
/// Unusable TLS or password files (the error names the key), etcd unreachable
/// or refusing this client, a refused transaction (e.g. more changes than
/// etcd's `--max-txn-ops`, default 128), or a prefix that kept changing.
pub fn publish(cfg: &EtcdConfig, policy: &Policy) -> Result<Published> {
    let creds = Credentials::load(cfg).map_err(anyhow::Error::msg)?;
    let (endpoints, prefix) = (&cfg.endpoints, cfg.prefix.as_str());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("creating a runtime")?;
    let want: BTreeMap<Vec<u8>, String> = objects_of(prefix, &PolicyFile::from_policy(policy)).iter().map(|(k, o)| (k.clone().into_bytes(), o.to_json())).collect();
    rt.block_on(async {
        let at = endpoints.join(",");
        let fail = |e: anyhow::Error| anyhow::anyhow!("etcd {at}: {}", explain(&e, cfg));
        let mut client = timed("connecting", Client::connect(endpoints, Some(options(&creds)))).await.map_err(fail)?;
        for _ in 0..5 {
            let resp = timed("reading the prefix", client.get(prefix, Some(GetOptions::new().with_prefix()))).await.map_err(fail)?;
            let rev = resp.header().map_or(0, |h| h.revision());
            let have = key_values(&resp);
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
                return Ok(Published { put: 0, deleted: 0, unchanged, revision: rev });
            }
            let n = ops.len();
            let txn = Txn::new().when([Compare::mod_revision(prefix, CompareOp::Less, rev.saturating_add(1)).with_prefix()]).and_then(ops);
            let hint = if n > 128 { " (more than etcd's default --max-txn-ops of 128)" } else { "" };
            let r = timed("publishing", client.txn(txn)).await.map_err(|e| anyhow::anyhow!("etcd {at}: a transaction of {n} operations{hint}: {}", explain(&e, cfg)))?;
            if r.succeeded() {
                return Ok(Published { put, deleted: stale.len(), unchanged, revision: r.header().map_or(0, |h| h.revision()) });
            }
        }
        bail!("etcd {at}: keys under {prefix} kept changing while publishing; try again")
    })
}
