//! What steps record in the journal (`outputs`), typed. The keys are the journal format:
//! a journal written by an earlier release reads the same.

use std::path::PathBuf;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::journal::Step;
use crate::nodes::WatchdogInfo;

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
    /// Why this target.
    Why(String),
    UndoneAt(Timestamp),
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
            Record::Why(_) => "why",
            Record::UndoneAt(_) => "undone_at",
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
            Record::Canceled(v) | Record::Warnings(v) => json!(v),
            Record::UndoneAt(t) => json!(t.to_string()),
        }
    }

    /// Writes it into the step's outputs.
    pub(crate) fn write(&self, step: &mut Step) {
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

    pub(crate) fn warnings(&self) -> Vec<String> {
        self.outputs
            .get("warnings")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }
}
