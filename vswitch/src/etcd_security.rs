//! How the switch and `hnvctl publish` reach etcd securely: TLS with a CA
//! certificate, an optional client certificate (etcd's `--client-cert-auth`,
//! mutual TLS), and etcd user/password authentication.
//!
//! Contract:
//! - [`Credentials::load`] reads the files that `[etcd]` names (`ca_file`,
//!   `cert_file`, `key_file`, `password_file`), checking in this order, each
//!   failure one line naming the key: the keys go together
//!   ([`EtcdConfig::check`]); each file is readable; `ca_file` and `cert_file`
//!   hold a PEM certificate, `key_file` a PEM private key not accessible to
//!   other users; `password_file` is accessible to its owner only (mode 0600
//!   or 0400) and holds one non-empty UTF-8 line (a trailing newline is
//!   ignored). The switch loads them at start (a problem stops it) and again on
//!   every connection, so renewed certificates are picked up on the next
//!   reconnect.
//! - The password is never on a command line, in a log line, in the status or
//!   in `Debug` output.
//! - [`explain`] turns a failed connection or request into one line that says
//!   which side refused what and which keys to check (the server's certificate
//!   not signed by `ca_file`, the client certificate missing or refused, a
//!   wrong user or password, authentication required but not configured).

use crate::config::{EtcdConfig, KeyError};
use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};
use std::path::Path;

/// The TLS material and credentials of one `[etcd]` section, read from its files.
#[derive(Clone, Default)]
pub struct Credentials {
    /// CA certificate(s), PEM (TLS on when set).
    ca: Option<Vec<u8>>,
    /// Client certificate and key, PEM.
    identity: Option<(Vec<u8>, Vec<u8>)>,
    /// User name and password.
    user: Option<(String, String)>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("tls", &self.ca.is_some())
            .field("client_certificate", &self.identity.is_some())
            .field("user", &self.user.as_ref().map(|(u, _)| u.as_str()))
            .finish_non_exhaustive()
    }
}

/// Reject a secret file that others can use: `mask` are the forbidden mode bits.
fn private(key: &str, path: &Path, mask: u32, want: &str) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| KeyError::new(format!("etcd.{key}"), format!("cannot read {}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & mask != 0 {
        return Err(KeyError::new(format!("etcd.{key}"), format!("{} has mode {mode:04o}; it must not be accessible to {want} (chmod {})", path.display(), if mask == 0o077 { "600" } else { "640" })));
    }
    Ok(())
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|e| KeyError::new(format!("etcd.{key}"), format!("cannot read {}: {e}", path.display())))
}

/// The file at `path` (named by `key`), which must hold a PEM block whose label ends with `label`.
fn pem(key: &str, path: &Path, label: &str) -> Result<Vec<u8>, KeyError> {
    let data = read(key, path)?;
    let text = String::from_utf8_lossy(&data);
    let found = text.lines().any(|l| l.trim().strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")).is_some_and(|l| l.ends_with(label)));
    if !found {
        return Err(KeyError::new(format!("etcd.{key}"), format!("{} holds no PEM {}", path.display(), label.to_lowercase())));
    }
    Ok(data)
}

impl Credentials {
    /// Check `cfg` and read the files it names.
    ///
    /// # Errors
    /// The `etcd.*` key and its problem (see the module contract).
    pub fn load(cfg: &EtcdConfig) -> Result<Credentials, KeyError> {
        cfg.check()?;
        let ca = cfg.ca_file.as_deref().map(|p| pem("ca_file", p, "CERTIFICATE")).transpose()?;
        let identity = match (&cfg.cert_file, &cfg.key_file) {
            (Some(c), Some(k)) => {
                let cert = pem("cert_file", c, "CERTIFICATE")?;
                private("key_file", k, 0o007, "other users")?;
                Some((cert, pem("key_file", k, "PRIVATE KEY")?))
            }
            _ => None,
        };
        let user = match (&cfg.user, &cfg.password_file) {
            (Some(u), Some(p)) => {
                private("password_file", p, 0o077, "group or others")?;
                let text = String::from_utf8(read("password_file", p)?).map_err(|_| KeyError::new("etcd.password_file", format!("{} is not UTF-8 text", p.display())))?;
                let pw = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
                if pw.is_empty() || pw.contains('\n') {
                    return Err(KeyError::new("etcd.password_file", format!("{} must hold the password on one line", p.display())));
                }
                Some((u.clone(), pw.to_string()))
            }
            _ => None,
        };
        Ok(Credentials { ca, identity, user })
    }

    /// True when a password would cross the network unencrypted.
    pub fn password_in_clear(&self) -> bool {
        self.user.is_some() && self.ca.is_none()
    }

    /// `base` with TLS and authentication set up.
    pub fn apply(&self, mut base: ConnectOptions) -> ConnectOptions {
        if let Some(ca) = &self.ca {
            let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(ca));
            if let Some((cert, key)) = &self.identity {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            base = base.with_tls(tls);
        }
        if let Some((user, password)) = &self.user {
            base = base.with_user(user.as_str(), password.as_str()).with_auto_token_refresh(true);
        }
        base
    }
}

/// `error` (a failed connection or request, with its causes) as one line,
/// with what it most likely means for the keys of `cfg` in front.
pub fn explain(error: &anyhow::Error, cfg: &EtcdConfig) -> String {
    let text = format!("{error:#}").replace('\n', " ");
    let lower = text.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    let tls = cfg.ca_file.is_some();
    let hint: String = if has(&["authentication failed", "invalid user id or password"]) {
        format!("etcd refused user {:?}: wrong user name or password (keys 'etcd.user', 'etcd.password_file')", cfg.user.as_deref().unwrap_or(""))
    } else if has(&["user name is empty", "permission denied"]) {
        match &cfg.user {
            Some(u) => {
                format!("etcd user {u:?} lacks permission under {} (the switch needs read, hnvctl publish readwrite: etcdctl role grant-permission ROLE --prefix=true read {})", cfg.prefix, cfg.prefix)
            }
            None => format!("etcd refused access under {}: it requires authentication (keys 'etcd.user', 'etcd.password_file')", cfg.prefix),
        }
    } else if has(&["unknownissuer", "unknown issuer", "invalid peer certificate"]) {
        "the etcd server's certificate is not signed by the CA in key 'etcd.ca_file' (or does not name this endpoint's host)".into()
    } else if tls && has(&["fatal alert", "badcertificate", "certificaterequired", "unknownca", "connection closed", "canceled", "broken pipe", "connection reset"]) {
        // etcd with --client-cert-auth closes the connection right after the handshake.
        if cfg.cert_file.is_some() {
            "the etcd server closed the TLS connection: it does not accept this client's certificate (keys 'etcd.cert_file', 'etcd.key_file': signed by a CA in its --trusted-ca-file?)".into()
        } else {
            "the etcd server closed the TLS connection: it requires a client certificate (keys 'etcd.cert_file', 'etcd.key_file')".into()
        }
    } else if !tls && !has(&["refused"]) && has(&["broken pipe", "connection reset", "connection closed"]) {
        "the etcd server closed the connection: if it serves TLS, give https:// endpoints and key 'etcd.ca_file'".into()
    } else {
        return text;
    };
    format!("{hint}: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn files_are_checked_and_every_problem_names_its_key() {
        let dir = std::env::temp_dir().join(format!("hnv-etcd-sec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = EtcdConfig {
            endpoints: vec!["https://127.0.0.1:2379".into()],
            prefix: "/hnv/".into(),
            ca_file: Some(write(&dir, "ca.pem", CERT, 0o644)),
            cert_file: Some(write(&dir, "c.pem", CERT, 0o644)),
            key_file: Some(write(&dir, "k.pem", KEY, 0o600)),
            user: Some("hnv".into()),
            password_file: Some(write(&dir, "pw", "s3cret\n", 0o600)),
        };
        let c = Credentials::load(&good).unwrap();
        assert_eq!(c.user, Some(("hnv".into(), "s3cret".into())), "one trailing newline is dropped");
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret") && shown.contains("hnv"), "{shown}");
        let missing = dir.join("missing.pem");
        let cases: Vec<(EtcdConfig, &str, &str)> = vec![
            (EtcdConfig { ca_file: Some(missing.clone()), ..good.clone() }, "etcd.ca_file", "cannot read"),
            (EtcdConfig { ca_file: Some(write(&dir, "notpem", "hello", 0o644)), ..good.clone() }, "etcd.ca_file", "holds no PEM certificate"),
            (EtcdConfig { cert_file: Some(good.key_file.clone().unwrap()), ..good.clone() }, "etcd.cert_file", "holds no PEM certificate"),
            (EtcdConfig { key_file: Some(missing.clone()), ..good.clone() }, "etcd.key_file", "cannot read"),
            (EtcdConfig { key_file: Some(write(&dir, "k2.pem", KEY, 0o644)), ..good.clone() }, "etcd.key_file", "mode 0644"),
            (EtcdConfig { key_file: Some(write(&dir, "k3.pem", CERT, 0o600)), ..good.clone() }, "etcd.key_file", "holds no PEM private key"),
            (EtcdConfig { password_file: Some(missing.clone()), ..good.clone() }, "etcd.password_file", "cannot read"),
            (EtcdConfig { password_file: Some(write(&dir, "pw2", "s3cret\n", 0o640)), ..good.clone() }, "etcd.password_file", "mode 0640"),
            (EtcdConfig { password_file: Some(write(&dir, "pw3", "\n", 0o600)), ..good.clone() }, "etcd.password_file", "on one line"),
            (EtcdConfig { password_file: Some(write(&dir, "pw4", "s3cret\nmore\n", 0o600)), ..good.clone() }, "etcd.password_file", "on one line"),
            (EtcdConfig { endpoints: vec!["http://127.0.0.1:2379".into()], ..good.clone() }, "etcd.ca_file", "needs https://"),
        ];
        for (cfg, key, problem) in cases {
            let e = Credentials::load(&cfg).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            let e = e.to_string();
            assert!(e.starts_with(&format!("key '{key}': ")) && e.contains(problem), "{key}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
