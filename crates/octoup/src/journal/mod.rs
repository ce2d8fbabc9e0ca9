//! The run journal: what an upgrade run planned, did, and found, so a crash or a failure
//! never leaves the operator guessing and a re-run continues where it stopped.
//!
//! Layout under `[state] dir`:
//! - `runs/<run-id>.json` — one journal per run, rewritten atomically after every change
//!   (temp file + fsync + rename), so a crash leaves the previous or the next version.
//! - `current-run` — the id of the unfinished run, if any.
//! - `octoup.lock` (+ `octoup.lock.owner` with the holder's pid) — one run at a time.
//! - `logs/<run-id>.log` — the run's command log.
//! - `launches/<run-id>/<step>.json` — launch markers of stop/start/watchdog commands
//!   (unsynced, see [`launch`]); gone when the run finishes.

mod launch;

pub(crate) use launch::LaunchMarker;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::process::fsutil::{self, IoContext, PathError};
use crate::version::Version;

/// The journal file format; a newer octoup reads older formats.
pub(crate) const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "another octoup run (pid {pid}) holds the lock {path}; wait for it to finish. If no octoup runs any more, the lock is released automatically: try again"
    )]
    Locked { pid: String, path: PathBuf },
    #[error("{0}. Check that [state] dir exists and is writable")]
    Io(#[from] PathError),
    #[error(
        "the journal {path} is damaged and cannot be read ({reason}). octoup will not start or continue a run over it: the run it records may be unfinished. Keep a copy of the file, check where the installation stands (every node's version, maintenance mode, drain flags; the run's log is in the logs directory beside it), then move the file away (and the `current-run` file beside the runs directory, if it names this run) and run octoup again"
    )]
    Corrupt { path: PathBuf, reason: String },
}

/// The state of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    Planned,
    Running,
    Done,
    Failed,
    /// It was done, then reversed (undo after a failure).
    Undone,
    /// Not needed (e.g. no watchdog to delete).
    Skipped,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Planned => "planned",
            StepState::Running => "running",
            StepState::Done => "done",
            StepState::Failed => "failed",
            StepState::Undone => "undone",
            StepState::Skipped => "skipped",
        }
    }

    /// Nothing more to do for this step going forward.
    pub(crate) fn is_settled(self) -> bool {
        matches!(self, StepState::Done | StepState::Skipped)
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Going forward (or interrupted while going forward).
    Running,
    /// Reversing the outage steps after a failure before the database upgrade.
    Undoing,
    /// Restoring the database backup and the original version (`octoup rollback`, or
    /// automatically when configured); a re-run continues the rollback.
    RollingBack,
    /// Stopped in a safe state; a re-run continues.
    Paused,
    Upgraded,
    /// Failed, and everything done was undone (or nothing was changed).
    Failed,
    RolledBack,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Undoing => "undoing",
            RunStatus::RollingBack => "rolling-back",
            RunStatus::Paused => "paused",
            RunStatus::Upgraded => "upgraded",
            RunStatus::Failed => "failed",
            RunStatus::RolledBack => "rolled-back",
        }
    }

    /// A finished run needs nothing more; an unfinished one is resumed by the next run.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Upgraded | RunStatus::Failed | RunStatus::RolledBack
        )
    }
}

/// Which way a run is going.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    #[default]
    Forward,
    Undo,
    /// Restoring the database and the original version (see `engine::rollback`).
    Rollback,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Unique in the run: `name` or `name@node`.
    pub id: String,
    pub name: String,
    pub node: Option<String>,
    pub state: StepState,
    pub started: Option<Timestamp>,
    pub finished: Option<Timestamp>,
    /// What the step found or made (backup paths, flags as they were before, ...).
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
    pub error: Option<String>,
}

impl Step {
    pub fn new(name: &str, node: Option<&str>) -> Step {
        Step {
            id: step_id(name, node),
            name: name.to_string(),
            node: node.map(str::to_string),
            state: StepState::Planned,
            started: None,
            finished: None,
            outputs: BTreeMap::new(),
            error: None,
        }
    }

    pub fn output_str(&self, key: &str) -> Option<&str> {
        self.outputs.get(key).and_then(Value::as_str)
    }

    pub(crate) fn output_bool(&self, key: &str) -> Option<bool> {
        self.outputs.get(key).and_then(Value::as_bool)
    }

    /// Seconds the step took, when it finished.
    pub fn seconds(&self) -> Option<f64> {
        Some(crate::process::clock::seconds_between(
            self.started?,
            self.finished?,
        ))
    }
}

pub(crate) fn step_id(name: &str, node: Option<&str>) -> String {
    match node {
        Some(n) => format!("{name}@{n}"),
        None => name.to_string(),
    }
}

/// A node as the run knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunNode {
    pub name: String,
    /// `OctopusServerNodes-<name>`.
    pub id: String,
    pub url: String,
    pub primary: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub format: u32,
    pub id: String,
    pub created: Timestamp,
    pub updated: Timestamp,
    /// The process that last worked on the run.
    pub pid: u32,
    /// SHA-256 (hex, shortened) of the config the run started with.
    pub config_digest: String,
    pub from: Version,
    pub target: Version,
    /// The whole upgrade path the target belongs to (stepping stones first).
    pub path: Vec<Version>,
    pub nodes: Vec<RunNode>,
    pub status: RunStatus,
    /// Forward (upgrading) or undo (putting things back after an early failure); a paused
    /// run resumes in this direction.
    #[serde(default)]
    pub direction: Direction,
    pub steps: Vec<Step>,
    /// The first service stop.
    pub outage_started: Option<Timestamp>,
    /// Every node serves the target (or the original version again, after an undo).
    pub outage_ended: Option<Timestamp>,
    pub error: Option<String>,
    pub next_step: Option<String>,
    pub log: PathBuf,
}

impl Run {
    pub(crate) fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    pub(crate) fn step_mut(&mut self, id: &str) -> Option<&mut Step> {
        self.steps.iter_mut().find(|s| s.id == id)
    }

    pub fn outage_seconds(&self) -> Option<f64> {
        Some(crate::process::clock::seconds_between(
            self.outage_started?,
            self.outage_ended?,
        ))
    }
}

/// A new run id: sortable by time, unique enough for one state directory.
pub(crate) fn new_run_id() -> String {
    let now = Timestamp::now();
    let stamp = now.strftime("%Y%m%dT%H%M%SZ").to_string();
    let suffix: u32 = rand::random::<u32>() & 0xffff;
    format!("{stamp}-{suffix:04x}")
}

/// The state directory.
#[derive(Debug, Clone)]
pub(crate) struct StateDir {
    root: PathBuf,
}

const CURRENT: &str = "current-run";
const LOCK: &str = "octoup.lock";
const LOCK_OWNER: &str = "octoup.lock.owner";

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    pub(crate) fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    pub(crate) fn run_path(&self, id: &str) -> PathBuf {
        self.runs_dir().join(format!("{id}.json"))
    }

    pub(crate) fn log_path(&self, id: &str) -> PathBuf {
        self.root.join("logs").join(format!("{id}.log"))
    }

    /// Takes the exclusive run lock, or says who holds it.
    pub(crate) fn lock(&self) -> Result<RunLock, JournalError> {
        std::fs::create_dir_all(&self.root).at("cannot create", &self.root)?;
        let path = self.root.join(LOCK);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .at("cannot open", &path)?;
        let owner = self.root.join(LOCK_OWNER);
        match file.try_lock() {
            Ok(()) => {
                let _ = std::fs::write(&owner, std::process::id().to_string());
                Ok(RunLock { _file: file, owner })
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(JournalError::Locked {
                pid: std::fs::read_to_string(&owner)
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| "unknown".into()),
                path,
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(PathError {
                action: "cannot lock",
                path,
                source: e,
            }
            .into()),
        }
    }

    /// The pid of the octoup that holds the lock now (a live run), if any. Changes nothing
    /// when no state directory exists yet.
    pub(crate) fn live_pid(&self) -> Option<String> {
        if !self.root.exists() {
            return None;
        }
        match self.lock() {
            Err(JournalError::Locked { pid, .. }) => Some(pid),
            _ => None,
        }
    }

    /// A live run as it stands in memory: steps that ended on some nodes while others still
    /// run (their ends reach the journal together; see [`Journal::save_view`]).
    pub(crate) fn live_view(&self, id: &str) -> Option<Run> {
        let text = std::fs::read_to_string(self.runs_dir().join(format!("{id}.live"))).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes a new run's journal and makes it the current run.
    pub(crate) fn create(&self, run: Run) -> Result<Journal, JournalError> {
        let mut journal = Journal {
            path: self.run_path(&run.id),
            current: self.root.join(CURRENT),
            run,
            view: false,
        };
        journal.save()?;
        fsutil::write_atomic(&journal.current, journal.run.id.as_bytes())
            .at("cannot write", &journal.current)?;
        Ok(journal)
    }

    /// A recorded run's journal, to record what happens to it after it finished (its held
    /// rollback point released), without making it the current run again.
    pub(crate) fn open(&self, id: &str) -> Result<Journal, JournalError> {
        let path = self.run_path(id);
        let run = read_run(&path)?;
        Ok(Journal {
            path,
            current: self.root.join(CURRENT),
            run,
            view: false,
        })
    }

    /// Makes a finished run the current one again (taking back a finished upgrade): once
    /// its status says unfinished, a crash is resumed from it like any other run.
    pub(crate) fn reopen(&self, id: &str) -> Result<Journal, JournalError> {
        let journal = self.open(id)?;
        fsutil::write_atomic(&journal.current, id.as_bytes())
            .at("cannot write", &journal.current)?;
        Ok(journal)
    }

    /// The unfinished run the next `octoup upgrade` must resume, if any.
    pub(crate) fn unfinished(&self) -> Result<Option<Journal>, JournalError> {
        let current = self.root.join(CURRENT);
        let id = match std::fs::read_to_string(&current) {
            Ok(id) => id.trim().to_string(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(PathError {
                    action: "cannot read",
                    path: current,
                    source,
                }
                .into());
            }
        };
        // octoup writes a run id there, atomically: anything else is damage, never "no run".
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if id.is_empty() || !id.chars().all(valid) {
            return Err(JournalError::Corrupt {
                path: current,
                reason: "it does not hold a run id".into(),
            });
        }
        let path = self.run_path(&id);
        let run = match read_run(&path) {
            Ok(run) => run,
            // A pointer to a journal that never got written (crash between the two writes).
            Err(JournalError::Io(e)) if e.source.kind() == std::io::ErrorKind::NotFound => {
                let _ = fsutil::remove_file_if_exists(&current);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if run.status.is_finished() {
            let _ = fsutil::remove_file_if_exists(&current);
            return Ok(None);
        }
        Ok(Some(Journal {
            path,
            current,
            run,
            view: false,
        }))
    }

    /// Every run, oldest first; a journal that cannot be read is an error naming it (it is
    /// never skipped: it may be the newest run, or an unfinished one).
    pub(crate) fn runs(&self) -> Result<Vec<Run>, JournalError> {
        let dir = self.runs_dir();
        let paths = fsutil::json_files(&dir).map_err(|source| PathError {
            action: "cannot read",
            path: dir.clone(),
            source,
        })?;
        let mut runs = paths
            .iter()
            .map(|p| read_run(p))
            .collect::<Result<Vec<Run>, _>>()?;
        runs.sort_by_key(|r| r.created);
        Ok(runs)
    }

    /// The unfinished run, else the newest finished one.
    pub(crate) fn last(&self) -> Result<Option<Run>, JournalError> {
        if let Some(j) = self.unfinished()? {
            return Ok(Some(j.run));
        }
        Ok(self.runs()?.pop())
    }
}

fn read_run(path: &Path) -> Result<Run, JournalError> {
    let text = std::fs::read_to_string(path).at("cannot read", path)?;
    serde_json::from_str(&text).map_err(|e| JournalError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Held while a run works; dropping it releases the lock.
pub(crate) struct RunLock {
    _file: File,
    owner: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.owner);
    }
}

/// An open run journal.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    current: PathBuf,
    pub run: Run,
    /// A `.live` view is on disk, ahead of the journal: the next write removes it.
    view: bool,
}

impl Journal {
    /// Changes the run and writes it before returning.
    pub(crate) fn update<R>(&mut self, f: impl FnOnce(&mut Run) -> R) -> Result<R, JournalError> {
        let r = f(&mut self.run);
        self.run.updated = Timestamp::now();
        self.save()?;
        Ok(r)
    }

    /// Writes the run as it stands for `octoup status` only, beside the journal and without
    /// fsync: not a recovery point (the journal is), so a crash may lose it harmlessly.
    pub(crate) fn save_view(&mut self) {
        let _ = serde_json::to_vec(&self.run)
            .map(|bytes| std::fs::write(self.path.with_extension("live"), bytes));
        self.view = true;
    }

    /// Changes one step and writes the journal.
    pub(crate) fn update_step(
        &mut self,
        id: &str,
        f: impl FnOnce(&mut Step),
    ) -> Result<(), JournalError> {
        self.update(|run| {
            if let Some(step) = run.step_mut(id) {
                f(step)
            }
        })
    }

    /// Sets the final (or paused) status; a finished run stops being the current one.
    pub(crate) fn set_status(&mut self, status: RunStatus) -> Result<(), JournalError> {
        self.update(|run| run.status = status)?;
        if status.is_finished() {
            fsutil::remove_file_durable(&self.current).at("cannot remove", &self.current)?;
            // `<root>/runs/<id>.json`: the run's launch markers are of no more use.
            if let Some(root) = self.path.parent().and_then(Path::parent) {
                StateDir::new(root).drop_launch_markers(&self.run.id);
            }
        }
        Ok(())
    }

    fn save(&mut self) -> Result<(), JournalError> {
        // Serializing our own types cannot fail (string keys only).
        let text = serde_json::to_vec_pretty(&self.run).unwrap_or_default();
        fsutil::write_atomic(&self.path, &text).at("cannot write", &self.path)?;
        if self.view {
            // The journal caught up with the view: it goes (else `status` would prefer it).
            let _ = fsutil::remove_file_if_exists(&self.path.with_extension("live"));
            self.view = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str) -> Run {
        Run {
            format: FORMAT,
            id: id.into(),
            created: Timestamp::now(),
            updated: Timestamp::now(),
            pid: std::process::id(),
            config_digest: "abc".into(),
            from: "2024.1.10".parse().unwrap(),
            target: "2024.2.7".parse().unwrap(),
            path: vec!["2024.2.7".parse().unwrap()],
            nodes: vec![RunNode {
                name: "N1".into(),
                id: "OctopusServerNodes-N1".into(),
                url: "http://127.0.0.1:1".into(),
                primary: true,
            }],
            status: RunStatus::Running,
            direction: Direction::Forward,
            steps: vec![
                Step::new("maintenance-on", None),
                Step::new("stop", Some("N1")),
            ],
            outage_started: None,
            outage_ended: None,
            error: None,
            next_step: None,
            log: PathBuf::from("x.log"),
        }
    }

    #[test]
    fn a_run_is_written_after_every_change_and_resumed_until_finished() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert!(state.unfinished().unwrap().is_none());
        let mut j = state.create(run("r1")).unwrap();
        j.update_step("stop@N1", |s| {
            s.state = StepState::Running;
            s.outputs
                .insert("watchdog_existed".into(), Value::Bool(true));
        })
        .unwrap();
        // A second process (or a re-run after a crash) sees exactly that.
        let resumed = state.unfinished().unwrap().expect("unfinished run");
        let step = resumed.run.step("stop@N1").unwrap();
        assert_eq!(step.state, StepState::Running);
        assert_eq!(step.output_bool("watchdog_existed"), Some(true));
        // Paused runs are still resumed; finished ones are not.
        j.set_status(RunStatus::Paused).unwrap();
        assert!(state.unfinished().unwrap().is_some());
        j.set_status(RunStatus::Upgraded).unwrap();
        assert!(state.unfinished().unwrap().is_none());
        assert!(!dir.path().join(CURRENT).exists());
        assert_eq!(state.last().unwrap().unwrap().status, RunStatus::Upgraded);
        // No temp files are left behind by the atomic writes.
        let names: Vec<_> = std::fs::read_dir(state.runs_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["r1.json".to_string()]);
    }

    #[test]
    fn a_stale_pointer_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        std::fs::write(dir.path().join(CURRENT), "missing-run").unwrap();
        assert!(state.unfinished().unwrap().is_none());
        assert!(!dir.path().join(CURRENT).exists());
    }

    #[test]
    fn a_corrupt_journal_is_explained() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        std::fs::create_dir_all(state.runs_dir()).unwrap();
        std::fs::write(state.run_path("bad"), "{ not json").unwrap();
        std::fs::write(dir.path().join(CURRENT), "bad").unwrap();
        let err = state.unfinished().unwrap_err();
        assert!(err.to_string().contains("bad.json"), "{err}");
        assert!(err.to_string().contains("move the file away"), "{err}");
    }

    #[test]
    fn every_journal_write_syncs_the_runs_directory_and_the_end_the_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let mut journal = state.create(run("r1")).unwrap();
        fsutil::synced::take();
        journal
            .update_step("maintenance-on", |s| s.state = StepState::Done)
            .unwrap();
        assert_eq!(fsutil::synced::take(), vec![state.runs_dir()]);
        journal.set_status(RunStatus::Upgraded).unwrap();
        // The journal's rename, then the removal of `current-run`.
        assert_eq!(
            fsutil::synced::take(),
            vec![state.runs_dir(), dir.path().to_path_buf()]
        );
    }

    #[test]
    fn a_damaged_pointer_or_past_journal_is_reported_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        state.create(run("r1")).unwrap();
        std::fs::write(dir.path().join(CURRENT), "").unwrap();
        let err = state.unfinished().unwrap_err().to_string();
        assert!(
            err.contains("current-run") && err.contains("does not hold a run id"),
            "{err}"
        );
        std::fs::remove_file(dir.path().join(CURRENT)).unwrap();
        std::fs::write(state.run_path("r0"), "{\"id\": \"r0\", \"stat").unwrap();
        let err = state.last().unwrap_err().to_string();
        assert!(
            err.contains("r0.json") && err.contains("will not start"),
            "{err}"
        );
        assert!(state.runs().is_err());
    }

    #[test]
    fn the_lock_is_exclusive_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let held = state.lock().unwrap();
        let err = state.lock().err().expect("second lock must fail");
        match &err {
            JournalError::Locked { pid, .. } => assert_eq!(pid, &std::process::id().to_string()),
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("another octoup run (pid"), "{err}");
        drop(held);
        state.lock().expect("free again after the holder is gone");
    }

    /// Not a test of its own: the lock holder [`a_killed_holder_frees_the_lock`] runs in a
    /// child process (this test binary again), which holds the lock until it is killed.
    #[test]
    #[ignore = "a helper process for a_killed_holder_frees_the_lock"]
    fn hold_the_lock_until_killed() {
        let Some(dir) = std::env::var_os("OCTOUP_TEST_HOLD_LOCK") else {
            return;
        };
        let _held = StateDir::new(PathBuf::from(dir)).lock().unwrap();
        println!("locked");
        std::thread::sleep(std::time::Duration::from_secs(120));
    }

    #[test]
    fn a_killed_holder_frees_the_lock() {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "journal::tests::hold_the_lock_until_killed"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env("OCTOUP_TEST_HOLD_LOCK", dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(
            lines.any(|l| l.is_ok_and(|l| l.contains("locked"))),
            "the holder never took the lock"
        );
        match state.lock() {
            Err(JournalError::Locked { pid, .. }) => assert_eq!(pid, child.id().to_string()),
            other => panic!("the lock must be held by the child: {:?}", other.err()),
        }
        // SIGKILL: no destructor runs; the lock file and the owner file stay behind, as
        // after a crash or a power loss.
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(dir.path().join(LOCK).exists() && dir.path().join(LOCK_OWNER).exists());
        let _lock = state
            .lock()
            .expect("the OS released the dead holder's lock");
        let owner = std::fs::read_to_string(dir.path().join(LOCK_OWNER)).unwrap();
        assert_eq!(
            owner,
            std::process::id().to_string(),
            "the new holder is named"
        );
    }

    #[test]
    fn concurrent_takers_never_both_get_the_lock() {
        const TAKERS: usize = 8;
        let dir = tempfile::tempdir().unwrap();
        for _round in 0..20 {
            let start = std::sync::Barrier::new(TAKERS);
            let done = std::sync::Barrier::new(TAKERS);
            let got = std::sync::atomic::AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..TAKERS {
                    s.spawn(|| {
                        let state = StateDir::new(dir.path());
                        start.wait();
                        let lock = state.lock();
                        if lock.is_ok() {
                            got.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        // Every taker holds what it got until all have tried.
                        done.wait();
                        drop(lock);
                    });
                }
            });
            assert_eq!(got.into_inner(), 1, "exactly one taker holds the lock");
        }
    }

    #[test]
    fn run_ids_sort_by_time() {
        let a = new_run_id();
        assert!(a.len() > 16 && a.contains('T'), "{a}");
    }
}
