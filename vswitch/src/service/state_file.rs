//! The state file: the policy in force, saved after every accepted change so
//! that a restarted switch resumes with it (`control.state_file`).
//!
//! Saves are atomic and durable: a temporary file next to the state file is
//! written, fsynced and renamed into place, then the directory is fsynced. The
//! file is mode 0600 from its creation (it holds every tenant's addresses).
//! Called by [`super::PolicyService`] with its edit lock held; safe to call
//! from several threads at once all the same (each save uses its own
//! temporary file).

use hnv_datapath::PolicyStore;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Save the policy in force to `path` atomically and durably (write and fsync a
/// temporary file next to it, rename it, fsync the directory). The file is
/// mode 0600 from its creation: it holds every tenant's addresses.
///
/// # Errors
/// File-system errors.
pub fn persist(store: &PolicyStore, path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let name = path.file_name().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{} is not a file name", path.display())))?;
    // Unique per call (concurrent saves never share it) and created new: a
    // symlink or file planted at that name is refused, never written through.
    let tmp = path.with_file_name(format!(".{}.{}.{}.tmp", name.to_string_lossy(), std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let text = format!("# hnvswitch state: the policy in force (generation {})\n{}", store.snapshot().generation, hnv_policy::to_toml(&store.policy()));
    let written = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // Make the rename itself durable.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Remove temporary files that [`persist`] left next to `path` when a switch
/// was killed mid-save (call before the first save; one switch per state file).
pub fn remove_stale_temporaries(path: &Path) {
    let (Some(name), Some(dir)) = (path.file_name(), path.parent()) else { return };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let prefix = format!(".{}.", name.to_string_lossy());
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&prefix) && n.ends_with(".tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hnv_policy::example::BLUE_RED_HOST1;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn the_state_file_is_private_and_concurrent_saves_never_mix() {
        let dir = std::env::temp_dir().join(format!("hnv-state-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.toml");
        // A world-readable file where the state goes (an older version, or planted): replaced.
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = PolicyStore::new(hnv_policy::parse(BLUE_RED_HOST1, "t").unwrap());
        persist(&store, &path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600, "the state file lists every tenant's addresses");
        assert_eq!(hnv_policy::load(&path).unwrap(), store.policy());
        // Saves racing each other (control connections, etcd): each file whole, none fails.
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..20 {
                        persist(&store, &path).unwrap();
                    }
                });
            }
            for _ in 0..20 {
                assert_eq!(hnv_policy::load(&path).unwrap(), store.policy());
            }
        });
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["state.toml"], "no temporary file left");
        // What a switch killed mid-save leaves is removed at the next start; nothing else is.
        std::fs::write(dir.join(".state.toml.4242.7.tmp"), "half").unwrap();
        std::fs::write(dir.join(".other.toml.4242.7.tmp"), "not ours").unwrap();
        remove_stale_temporaries(&path);
        let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, [".other.toml.4242.7.tmp", "state.toml"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
