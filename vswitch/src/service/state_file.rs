//! The state file: the policy in force, saved after every accepted change so
//! that a restarted switch resumes with it (`control.state_file`).
//!
//! Two parts: a snapshot (`state.toml`, the whole policy as a policy file) and,
//! for a large policy, a journal next to it (`state.toml.journal`, one JSON
//! line per accepted transaction: `{"run":..,"generation":..,"changes":[..]}`).
//! A change is saved before it is acknowledged: a snapshot is written and
//! fsynced to a temporary file, renamed into place and the directory fsynced;
//! a journal line is appended and fsynced. While the snapshot is small
//! (under [`SNAPSHOT_THRESHOLD`]) every change rewrites it, as a policy file an
//! operator can read; above, changes are appended to the journal (a change
//! costs its own size, not the policy's), and the journal is folded into a new
//! snapshot once it outgrows the snapshot (so saving costs at most twice the
//! bytes changed, amortised). Whole-policy loads (SIGHUP, etcd) write a
//! snapshot.
//!
//! Restart ([`load`]): the snapshot, then the journal lines of the same run
//! (its header names it) with a later generation, replayed in order as the
//! transactions they were. A line cut short by a kill (never acknowledged)
//! ends the replay. Each run starts with a fresh snapshot, so lines of an
//! older run are never replayed twice.
//!
//! Files are mode 0600 from their creation (they hold every tenant's
//! addresses); temporary files are created new (a planted symlink is refused).
//! Called by [`super::PolicyService`] with its edit lock held.

use hnv_datapath::PolicyStore;
use hnv_policy::api::Request;
use hnv_policy::state::PolicyState;
use hnv_policy::{Options, Policy};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Snapshots smaller than this are rewritten on every change (no journal), unless set otherwise.
pub const SNAPSHOT_THRESHOLD: u64 = 4 << 20;

/// The journal next to the state file at `path`.
pub fn journal_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".journal");
    PathBuf::from(p)
}

/// One journal line: a transaction accepted in run `run` that made `generation`.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    run: String,
    generation: u64,
    changes: Vec<Request>,
}

/// The state file of a running switch.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    /// This run's id, in the snapshot's header and every journal line.
    run: String,
    /// Bytes of the last snapshot written (0: none yet).
    snapshot_bytes: u64,
    /// Bytes appended to the journal since.
    journal_bytes: u64,
    /// Snapshots under this size are rewritten on every change.
    threshold: u64,
}

/// The first line of a snapshot: generation and run.
fn header(generation: u64, run: &str) -> String {
    format!("# hnvswitch state: the policy in force (generation {generation}, run {run})\n")
}

/// The generation and run a snapshot's first line names.
fn parse_header(text: &str) -> Option<(u64, &str)> {
    let rest = text.lines().next()?.strip_prefix("# hnvswitch state: the policy in force (generation ")?;
    let (g, rest) = rest.split_once(", run ")?;
    Some((g.parse().ok()?, rest.strip_suffix(')')?))
}

fn fsync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => std::fs::File::open(".")?.sync_all(),
    }
}

impl StateFile {
    /// The state file at `path`, for a new run (nothing written yet).
    pub fn new(path: PathBuf) -> Self {
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let run = format!("{}-{nanos}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::Relaxed));
        StateFile { path, run, snapshot_bytes: 0, journal_bytes: 0, threshold: SNAPSHOT_THRESHOLD }
    }

    /// Journal changes once the snapshot reaches `bytes` (0: always).
    pub fn set_threshold(&mut self, bytes: u64) {
        self.threshold = bytes;
    }

    /// Where the snapshot is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// At start: remove what a killed switch left, write a snapshot of this run.
    ///
    /// # Errors
    /// File-system errors.
    pub fn start(&mut self, store: &PolicyStore) -> std::io::Result<()> {
        remove_stale_temporaries(&self.path);
        self.save_snapshot(store)
    }

    /// Write the whole policy in force, then drop the journal it includes.
    ///
    /// # Errors
    /// File-system errors; the previous snapshot and journal are then intact.
    pub fn save_snapshot(&mut self, store: &PolicyStore) -> std::io::Result<()> {
        let generation = store.snapshot().generation;
        let text = format!("{}{}", header(generation, &self.run), hnv_policy::to_toml(&store.policy()));
        write_atomically(&self.path, text.as_bytes())?;
        self.snapshot_bytes = text.len() as u64;
        self.journal_bytes = 0;
        match std::fs::remove_file(journal_path(&self.path)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Save the transaction `changes` that made `generation`: a journal line
    /// when the snapshot is large, else (or when the journal has outgrown the
    /// snapshot) a new snapshot.
    ///
    /// # Errors
    /// File-system errors.
    pub fn save_changes(&mut self, store: &PolicyStore, generation: u64, changes: &[Request]) -> std::io::Result<()> {
        if self.snapshot_bytes == 0 || self.snapshot_bytes < self.threshold || self.journal_bytes > self.snapshot_bytes {
            return self.save_snapshot(store);
        }
        let mut line = serde_json::to_string(&Entry { run: self.run.clone(), generation, changes: changes.to_vec() }).map_err(std::io::Error::other)?;
        line.push('\n');
        let journal = journal_path(&self.path);
        let created = !journal.exists();
        let mut f = std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(&journal)?;
        f.write_all(line.as_bytes())?;
        f.sync_data()?;
        if created {
            fsync_dir(&journal)?;
        }
        self.journal_bytes += line.len() as u64;
        Ok(())
    }
}

/// What [`load`] replayed from the journal.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// Transactions replayed.
    pub transactions: usize,
    /// Why the replay stopped early (a cut line, a refused transaction).
    pub stopped: Option<String>,
}

/// The policy saved at `path`: the snapshot, validated with `options`, then
/// the journal's transactions of the snapshot's run after its generation.
///
/// # Errors
/// The snapshot does not load or validate.
pub fn load(path: &Path, options: Options) -> Result<(Policy, Replayed), hnv_policy::PolicyError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| hnv_policy::PolicyError::Io { origin: origin.clone(), source })?;
    let policy = hnv_policy::parse_with(&text, &origin, options)?;
    let mut replayed = Replayed::default();
    let Some((generation, run)) = parse_header(&text) else { return Ok((policy, replayed)) };
    let Ok(journal) = std::fs::read_to_string(journal_path(path)) else { return Ok((policy, replayed)) };
    // The lines of the snapshot's run after it, up to the first one cut short.
    let mut entries = Vec::new();
    for (i, line) in journal.lines().enumerate() {
        match serde_json::from_str::<Entry>(line) {
            Ok(e) if e.run == run && e.generation > generation => entries.push((i + 1, e)),
            Ok(_) => {}
            Err(e) => {
                replayed.stopped = Some(format!("journal line {} is cut short or corrupt ({e})", i + 1));
                break;
            }
        }
    }
    if entries.is_empty() {
        return Ok((policy, replayed));
    }
    // Replayed as the switch applied them: incrementally, each validated with what it touches.
    let mut state = PolicyState::new(policy);
    for (line, entry) in entries {
        if let Err(e) = state.apply(&entry.changes, options) {
            replayed.stopped = Some(format!("journal line {line} (generation {}) no longer applies: {}", entry.generation, super::error::OneLine(&e)));
            break;
        }
        replayed.transactions += 1;
    }
    Ok((state.to_policy(), replayed))
}

/// Write `bytes` to `path` atomically and durably: a new 0600 temporary file
/// next to it, fsynced, renamed into place, the directory fsynced.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let name = path.file_name().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{} is not a file name", path.display())))?;
    // Unique per call and created new: a symlink or file planted at that name is refused, never written through.
    let tmp = path.with_file_name(format!(".{}.{}.{}.tmp", name.to_string_lossy(), std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let written = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // Make the rename itself durable.
    fsync_dir(path)
}

/// Save the policy in force to `path` as a snapshot of its own (no journal).
///
/// # Errors
/// File-system errors.
pub fn persist(store: &PolicyStore, path: &Path) -> std::io::Result<()> {
    StateFile::new(path.to_path_buf()).save_snapshot(store)
}

/// Remove temporary files that a save left next to `path` when a switch
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
    use hnv_policy::file::LookupFile;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn tmp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hnv-state-file-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_state_file_is_private_and_concurrent_saves_never_mix() {
        let dir = tmp("private");
        let path = dir.join("state.toml");
        // A world-readable file where the state goes (an older version, or planted): replaced.
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = PolicyStore::new(hnv_policy::parse(BLUE_RED_HOST1, "t").unwrap());
        persist(&store, &path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600, "the state file lists every tenant's addresses");
        assert_eq!(hnv_policy::load(&path).unwrap(), store.policy());
        // Saves racing each other: each file whole, none fails.
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

    fn blue2(pa: &str) -> Request {
        Request::ReplaceRecord { record: LookupFile { ca: "10.0.0.7".into(), vsid: 5001, mac: "00:15:5d:01:00:07".into(), pa: pa.into(), ..Default::default() } }
    }

    fn pa_of(p: &Policy) -> String {
        p.lookup_record(hnv_policy::Vsid::new(5001).unwrap(), "10.0.0.7".parse().unwrap()).unwrap().pa.to_string()
    }

    #[test]
    fn a_large_policy_journals_its_changes_and_a_restart_replays_them() {
        let dir = tmp("journal");
        let path = dir.join("state.toml");
        let journal = journal_path(&path);
        let store = PolicyStore::new(hnv_policy::parse(BLUE_RED_HOST1, "t").unwrap());
        let mut sf = StateFile::new(path.clone());
        sf.set_threshold(0);
        sf.start(&store).unwrap();
        let snapshot = std::fs::read_to_string(&path).unwrap();
        // Changes go to the journal; the snapshot stays as it was.
        for pa in ["192.168.4.31", "192.168.4.32"] {
            let g = store.change(&[blue2(pa)], Options::default()).unwrap();
            sf.save_changes(&store, g, &[blue2(pa)]).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), snapshot);
        assert_eq!(std::fs::read_to_string(&journal).unwrap().lines().count(), 2);
        assert_eq!(std::fs::metadata(&journal).unwrap().mode() & 0o777, 0o600);
        let (p, r) = load(&path, Options::default()).unwrap();
        assert_eq!((pa_of(&p), r.transactions, r.stopped), ("192.168.4.32".to_string(), 2, None));
        assert_eq!(p, store.policy());
        // A line cut short by a kill ends the replay there.
        std::fs::OpenOptions::new().append(true).open(&journal).unwrap().write_all(b"{\"run\":\"x\",\"gener").unwrap();
        let (p, r) = load(&path, Options::default()).unwrap();
        assert_eq!((pa_of(&p), r.transactions), ("192.168.4.32".to_string(), 2));
        assert!(r.stopped.unwrap().contains("line 3"));
        // The next run starts with its own snapshot: the old journal is gone and never replayed twice.
        let mut next = StateFile::new(path.clone());
        next.set_threshold(0);
        next.start(&store).unwrap();
        assert!(!journal.exists());
        assert_eq!(load(&path, Options::default()).unwrap().0, store.policy());
        // Lines of another run, or at or before the snapshot's generation, are skipped.
        let g = store.snapshot().generation;
        let line = |run: &str, generation: u64| serde_json::to_string(&Entry { run: run.into(), generation, changes: vec![blue2("192.168.4.99")] }).unwrap() + "\n";
        std::fs::write(&journal, line("another-run", g + 1) + &line(&next.run, g)).unwrap();
        assert_eq!(pa_of(&load(&path, Options::default()).unwrap().0), "192.168.4.32");
        // Once the journal outgrows the snapshot, it is folded into a new one.
        std::fs::remove_file(&journal).unwrap();
        let mut n = 0;
        loop {
            let pa = format!("192.168.4.{}", 40 + n % 2);
            let g = store.change(&[blue2(&pa)], Options::default()).unwrap();
            next.save_changes(&store, g, &[blue2(&pa)]).unwrap();
            n += 1;
            if n > 1 && !journal.exists() {
                break;
            }
            assert!(n < 10_000, "the journal was never folded");
        }
        assert!(std::fs::read_to_string(&path).unwrap().contains(&format!("192.168.4.{}", 40 + (n - 1) % 2)));
        assert_eq!(load(&path, Options::default()).unwrap().0, store.policy());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
