//! The policy service's errors, one enum per concern, and [`OneLine`], the
//! one place where a multi-line error (a [`hnv_policy::PolicyError`] lists
//! every problem on its own line) is rendered for a one-line protocol: the
//! control socket's answers, the etcd status and log lines.

use std::fmt;

/// An error rendered on one line: its lines joined with `"; "`.
#[derive(Debug, Clone, Copy)]
pub struct OneLine<'a, E: ?Sized>(pub &'a E);

impl<E: fmt::Display + ?Sized> fmt::Display for OneLine<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        let mut lines = text.lines();
        if let Some(first) = lines.next() {
            f.write_str(first)?;
        }
        for l in lines {
            f.write_str("; ")?;
            f.write_str(l)?;
        }
        Ok(())
    }
}

/// A policy whose port list differs from the one in force (ports change only
/// through `hnvctl port add/remove`).
#[derive(Debug, thiserror::Error)]
#[error("{origin}: the port list changed (change ports with hnvctl port add/remove)")]
pub struct PortListChanged {
    /// Where the policy came from.
    pub origin: String,
}

/// Why a change of records, routes or ACL rules was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The tenant policy comes from a shared source (etcd).
    #[error("policy is managed by {0}; publish changes with hnvctl publish")]
    Managed(String),
    /// The request is not a policy change (a port change, a capture, `show`).
    #[error("{0} cannot be part of a policy change (send it on its own)")]
    NotAChange(&'static str),
    /// The policy refused it: missing or duplicate object, or an invalid result.
    #[error(transparent)]
    Refused(#[from] hnv_policy::api::ChangeError),
}

/// Why reloading the policy file (SIGHUP) was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not load or validate.
    #[error(transparent)]
    Load(hnv_policy::PolicyError),
    /// The file's host parts merged with the tenant policy in force do not validate.
    #[error(transparent)]
    Merge(hnv_policy::PolicyError),
    /// The file changes the port list.
    #[error(transparent)]
    Ports(#[from] PortListChanged),
}

/// Why a port change was refused; the ports and the policy are then as they were.
#[derive(Debug, thiserror::Error)]
pub enum PortChangeError {
    /// Lookup records come from a shared source (etcd): a port change cannot carry or edit them.
    #[error("lookup records are managed by {origin}: {what}")]
    RecordsShared {
        /// The shared source.
        origin: String,
        /// What the request asked for.
        what: &'static str,
    },
    /// The policy with the change made is refused.
    #[error(transparent)]
    Invalid(#[from] hnv_policy::api::ChangeError),
    /// The request is not `add_port` or `remove_port`.
    #[error("not a port change")]
    NotAPortChange,
    /// DPDK could not open the added port.
    #[error("{0:#}")]
    Open(anyhow::Error),
    /// The workers did not pause, or the port list could not be changed.
    #[error("{0:#}")]
    Swap(anyhow::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_joins_the_lines_of_a_policy_error() {
        let e = hnv_policy::parse("[host]\nname = 1\n", "p.toml").unwrap_err();
        assert!(!OneLine(&e).to_string().contains('\n'));
        let e = hnv_policy::parse(&hnv_policy::example::BLUE_RED_HOST1.replace("00:15:5d:01:00:07", "x").replace("vsid = 5001", "vsid = 1"), "p.toml").unwrap_err();
        let text = e.to_string();
        assert!(text.lines().count() > 1, "{text}");
        assert_eq!(OneLine(&e).to_string(), text.lines().collect::<Vec<_>>().join("; "));
    }
}
