//! `octoup status`: where the current or last run stands, read from the journal without
//! touching the installation, and whether an octoup is working on it right now.

use std::path::PathBuf;

use serde::Serialize;

use crate::config::Config;
use crate::journal::{Run, RunStatus, StateDir, StepState};

use super::EngineError;
use super::report::{Outcome, Report};

/// The state `octoup status` reports (and exits with: see the CLI's exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatusState {
    /// No run recorded.
    None,
    /// An octoup is working on the run now (it holds the lock).
    Running,
    /// Unfinished, and no octoup works on it: it was interrupted (killed, a reboot).
    Interrupted,
    Paused,
    Failed,
    Upgraded,
    RolledBack,
}

impl StatusState {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::None => "none",
            StatusState::Running => "running",
            StatusState::Interrupted => "interrupted",
            StatusState::Paused => "paused",
            StatusState::Failed => "failed",
            StatusState::Upgraded => "upgraded",
            StatusState::RolledBack => "rolled-back",
        }
    }
}

/// What `octoup status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub state: StatusState,
    /// The pid of the octoup working on the run, while one does.
    pub live_pid: Option<String>,
    /// The run, as the journal has it (for a live run, with the ends of steps that finished
    /// on some nodes while others still run).
    pub run: Option<Run>,
    /// The run's steps, durations, backups and outage, as in the report.
    pub report: Option<Report>,
    pub journal: Option<PathBuf>,
    pub state_dir: PathBuf,
    /// The snapshot or copy the upgraded run still keeps (`[rollback] keep_hours`).
    pub held: Option<super::finalize::Held>,
}

/// The current or last run.
pub fn status(config: &Config) -> Result<Status, EngineError> {
    let state = StateDir::new(&config.state.dir);
    let live_pid = state.live_pid();
    let Some(mut run) = state.last()? else {
        return Ok(Status {
            state: StatusState::None,
            live_pid,
            run: None,
            report: None,
            journal: None,
            state_dir: config.state.dir.clone(),
            held: None,
        });
    };
    let live = live_pid.is_some() && !run.status.is_finished();
    if live && let Some(view) = state.live_view(&run.id) {
        run = view;
    }
    let state_now = match run.status {
        RunStatus::Upgraded => StatusState::Upgraded,
        RunStatus::Failed => StatusState::Failed,
        RunStatus::RolledBack => StatusState::RolledBack,
        RunStatus::Paused if !live => StatusState::Paused,
        _ if live => StatusState::Running,
        _ => StatusState::Interrupted,
    };
    let outcome = match state_now {
        StatusState::Upgraded => Outcome::Upgraded,
        StatusState::RolledBack => Outcome::RolledBack,
        StatusState::Failed => Outcome::Failed,
        _ => Outcome::Paused,
    };
    let journal = state.run_path(&run.id);
    let mut report = Report::from_run(&run, outcome, Vec::new(), journal.clone());
    report.read_preflight(&run);
    Ok(Status {
        held: super::finalize::held(&run),
        state: state_now,
        live_pid: live_pid.filter(|_| live),
        run: Some(run),
        report: Some(report),
        journal: Some(journal),
        state_dir: config.state.dir.clone(),
    })
}

/// Every run recorded, oldest first (`octoup status --all`).
pub fn runs(config: &Config) -> Result<Vec<Run>, EngineError> {
    Ok(StateDir::new(&config.state.dir).runs()?)
}

/// The step an octoup is in now, and since when (the newest one `running`).
pub fn current_step(run: &Run) -> Option<&crate::journal::Step> {
    run.steps
        .iter()
        .filter(|s| s.state == StepState::Running)
        .max_by_key(|s| s.started)
}
