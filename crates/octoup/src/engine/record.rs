//! What steps record in the journal (`outputs`), typed. The keys are the journal format:
//! a journal written by an earlier release reads the same.

use std::path::PathBuf;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::journal::Step;
use crate::nodes::WatchdogInfo;
use crate::process::platform::ProcessId;

/// One thing a step found or made.
#[derive(Debug, Clone)]
pub enum Record {
    /// The file the step made or staged (installer, backup).
    Path(PathBuf),
    Sha256(String),
    VerifiedBy(String),
    /// A flag as it was before the run (maintenance mode, a node's drain flag).
    WasOn(bool),
    /// Whether the node had a watchdog before the run.
    Existed(bool),
    Watchdog(WatchdogInfo),
    ExitCode(i32),
    Log(PathBuf),
    /// Tasks cancelled at the drain deadline.
    Canceled(Vec<String>),
    /// How the step ended, in words.
    Detail(String),
    /// The preflight's warnings.
    Warnings(Vec<String>),
    /// The ids of the warnings the operator accepted (`[doctor] accept`, `--accept`).
    Accepted(Vec<String>),
    /// Why this target.
    Why(String),
    UndoneAt(Timestamp),
    /// The step is about to start its long-running command (`database --upgrade`); until
    /// [`Record::Child`] follows, a crash cannot tell whether it was spawned.
    Launching(Timestamp),
    /// The command's process, once spawned (separate from the step being `running`): after
    /// a crash, recovery waits for exactly this process, and not at all once it is gone.
    Child {
        process: ProcessId,
        started: Timestamp,
    },
    /// This run records [`Record::Launching`] and [`Record::Child`] on the step (a journal of
    /// an older release does not: its interrupted step is waited for by time).
    TracksChild,
    /// The maintenance window's hard end and the figures the run estimates with (on the
    /// preflight step).
    Window(super::window::WindowRecord),
    /// The database strategy the run uses, and why (on the preflight step).
    Strategy(crate::database::Choice),
    /// The rollback point the step made (a backup's files, a snapshot, a copy).
    Point(crate::database::RollbackPoint),
    /// A held snapshot or copy is kept until then (`[rollback] keep_hours`).
    HeldUntil(Timestamp),
    /// The held point was released then.
    Released(Timestamp),
}

impl Record {
    pub(crate) fn key(&self) -> &'static str {
        match self {
            Record::Path(_) => "path",
            Record::Sha256(_) => "sha256",
            Record::VerifiedBy(_) => "verified_by",
            Record::WasOn(_) => "was_on",
            Record::Existed(_) => "existed",
            Record::Watchdog(_) => "watchdog",
            Record::ExitCode(_) => "exit_code",
            Record::Log(_) => "log",
            Record::Canceled(_) => "canceled",
            Record::Detail(_) => "detail",
            Record::Warnings(_) => "warnings",
            Record::Accepted(_) => "accepted",
            Record::Why(_) => "why",
            Record::UndoneAt(_) => "undone_at",
            Record::Launching(_) => "launching",
            Record::Child { .. } => "child",
            Record::TracksChild => "tracks_child",
            Record::Window(_) => "window",
            Record::Strategy(_) => "strategy",
            Record::Point(_) => "rollback_point",
            Record::HeldUntil(_) => "held_until",
            Record::Released(_) => "released",
        }
    }

    fn value(&self) -> Value {
        match self {
            Record::Path(p) | Record::Log(p) => json!(p),
            Record::Sha256(s) | Record::VerifiedBy(s) | Record::Detail(s) | Record::Why(s) => {
                json!(s)
            }
            Record::WasOn(b) | Record::Existed(b) => json!(b),
            Record::Watchdog(w) => serde_json::to_value(w).unwrap_or_default(),
            Record::ExitCode(c) => json!(c),
            Record::Canceled(v) | Record::Warnings(v) | Record::Accepted(v) => json!(v),
            Record::UndoneAt(t)
            | Record::Launching(t)
            | Record::HeldUntil(t)
            | Record::Released(t) => json!(t.to_string()),
            Record::Child { process, started } => {
                json!({"pid": process.pid, "os_start": process.os_start, "started": started.to_string()})
            }
            Record::TracksChild => json!(true),
            Record::Window(w) => serde_json::to_value(w).unwrap_or_default(),
            Record::Strategy(c) => serde_json::to_value(c).unwrap_or_default(),
            Record::Point(p) => serde_json::to_value(p).unwrap_or_default(),
        }
    }

    /// Writes it into the step's outputs. A new launch forgets the previous attempt's child.
    pub(crate) fn write(&self, step: &mut Step) {
        if matches!(self, Record::Launching(_)) {
            step.outputs.remove("child");
        }
        // A backup's first file is also its `path`, as the report and earlier releases
        // read it: one journal write for both.
        if let Record::Point(crate::database::RollbackPoint::Backup { files, .. }) = self
            && let Some(first) = files.first()
        {
            Record::Path(first.into()).write(step);
        }
        step.outputs.insert(self.key().to_string(), self.value());
    }
}

/// Typed reads of what a step recorded.
impl Step {
    pub(crate) fn recorded_path(&self) -> Option<PathBuf> {
        self.output_str("path").map(PathBuf::from)
    }

    pub(crate) fn was_on(&self) -> Option<bool> {
        self.output_bool("was_on")
    }

    pub(crate) fn existed(&self) -> Option<bool> {
        self.output_bool("existed")
    }

    /// The watchdog as it was before the run; one recorded only as "existed" (an older
    /// journal) is taken as enabled with the server's defaults.
    pub(crate) fn watchdog_before(&self) -> Option<WatchdogInfo> {
        if self.existed() != Some(true) {
            return None;
        }
        self.outputs
            .get("watchdog")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .or(Some(WatchdogInfo {
                enabled: true,
                interval_minutes: None,
                instances: None,
            }))
    }

    /// The process the step spawned (see [`Record::Child`]) and when.
    pub(crate) fn child(&self) -> Option<(ProcessId, Timestamp)> {
        let c = self.outputs.get("child")?;
        let process = ProcessId {
            pid: u32::try_from(c.get("pid")?.as_u64()?).ok()?,
            os_start: c.get("os_start").and_then(Value::as_u64),
        };
        let started = c.get("started")?.as_str()?.parse().ok()?;
        Some((process, started))
    }

    /// Whether the step had begun to start its command (see [`Record::Launching`]).
    pub(crate) fn launching(&self) -> bool {
        self.outputs.contains_key("launching")
    }

    /// Whether the run records the step's child at all (see [`Record::TracksChild`]).
    pub(crate) fn tracks_child(&self) -> bool {
        self.output_bool("tracks_child") == Some(true)
    }

    /// The rollback point the step made. A backup step of a journal from before
    /// strategies recorded only its file: that is a one-file disk backup.
    pub fn rollback_point(&self) -> Option<crate::database::RollbackPoint> {
        if let Some(v) = self.outputs.get("rollback_point") {
            return serde_json::from_value(v.clone()).ok();
        }
        (self.name == super::catalogue::StepKind::BackupDatabase.name())
            .then(|| self.recorded_path())
            .flatten()
            .map(|p| crate::database::RollbackPoint::Backup {
                media: crate::database::Media::Disk,
                files: vec![p.to_string_lossy().into_owned()],
                bytes: None,
                seconds: None,
            })
    }

    /// The database strategy the run chose (on the preflight step).
    pub fn strategy(&self) -> Option<crate::database::Choice> {
        self.outputs
            .get("strategy")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Until when a held point is kept, and when it was released.
    pub fn held_until(&self) -> Option<Timestamp> {
        self.output_str("held_until")?.parse().ok()
    }

    pub fn released(&self) -> Option<Timestamp> {
        self.output_str("released")?.parse().ok()
    }

    pub(crate) fn warnings(&self) -> Vec<String> {
        self.strings("warnings")
    }

    /// The ids of the warnings the operator accepted.
    pub(crate) fn accepted(&self) -> Vec<String> {
        self.strings("accepted")
    }

    fn strings(&self, key: &str) -> Vec<String> {
        self.outputs
            .get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }
}
