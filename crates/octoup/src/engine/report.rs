//! The result of a run, for machines (the design's JSON object) and for people.

use std::path::PathBuf;

use serde::{Serialize, Serializer};

use crate::doctor::Findings;
use crate::journal::{Run, StepState};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Upgraded,
    UpToDate,
    RolledBack,
    /// Stopped in a documented safe state; `next_step` says what to do, a re-run continues.
    Paused,
    /// Failed; what was done was undone (the original version serves, flags restored).
    Failed,
    /// A preflight check refused before anything changed.
    Refused,
}

impl Outcome {
    /// The interface's word (`refused` is a `failed` that changed nothing; the `refused`
    /// field tells them apart).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Upgraded => "upgraded",
            Outcome::UpToDate => "up-to-date",
            Outcome::RolledBack => "rolled-back",
            Outcome::Paused => "paused",
            Outcome::Failed | Outcome::Refused => "failed",
        }
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeReport {
    pub name: String,
    /// The version the node serves (or has installed, when it does not serve).
    pub version: String,
    /// The version the node's own `/api` answers with; `None` while it does not serve.
    pub serving: Option<String>,
}

/// What the operator asked for: headers and messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    #[default]
    Upgrade,
    /// Continuing an unfinished run (`octoup upgrade` on one, or `octoup resume`).
    Resume,
    Rollback,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Upgrade => "upgrade",
            Operation::Resume => "resumed upgrade",
            Operation::Rollback => "rollback",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepReport {
    pub name: String,
    pub node: Option<String>,
    /// `done`, `failed`, `skipped` (not needed, or never reached: see `reached`), `undone`.
    pub status: &'static str,
    /// False for a step the run never got to.
    pub reached: bool,
    pub seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Backups {
    pub database: Option<String>,
    pub database_verified: bool,
    pub master_key: Option<String>,
    pub license: Option<String>,
}

impl Backups {
    /// The backups a run has made so far, from its journal.
    pub(crate) fn from_run(run: &Run) -> Backups {
        let path_of = |step: &str| {
            run.step(step)
                .and_then(|s| s.output_str("path"))
                .map(str::to_string)
        };
        Backups {
            database: path_of("backup-database"),
            database_verified: run
                .step("verify-backup")
                .is_some_and(|s| matches!(s.state, StepState::Done)),
            master_key: path_of("backup-master-key"),
            license: path_of("backup-license"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    pub operation: Operation,
    /// Which way the run was going when it ended: `forward`, `undo` or `rollback` (a
    /// paused rollback is not a paused upgrade).
    pub direction: crate::journal::Direction,
    /// Refused by a preflight check: nothing was changed.
    pub refused: bool,
    pub from: String,
    pub to: String,
    /// From the first service stop until every node served the target (or, after an undo,
    /// the original version) again; for a paused run, until it paused.
    pub outage_seconds: f64,
    /// The outage began and has not ended: Octopus is (partly) down now.
    pub outage_ongoing: bool,
    pub nodes: Vec<NodeReport>,
    pub steps: Vec<StepReport>,
    pub backups: Backups,
    pub run_id: Option<String>,
    pub error: Option<String>,
    pub next_step: Option<String>,
    pub warnings: Vec<String>,
    /// Warnings the operator accepted by id (journaled at the preflight).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accepted: Vec<String>,
    /// The preflight's findings, when this run refused or did nothing (a run that went
    /// ahead has them in its plan and journal).
    #[serde(skip_serializing_if = "Findings::is_empty")]
    pub findings: Findings,
    /// What the checks after the start found (`octoup verify`'s, at the end of an upgraded
    /// run): attention needed, never a failure of the run.
    #[serde(skip_serializing_if = "Findings::is_empty")]
    pub verification: Findings,
    /// What the preflight's database checks found (hosting, sizes, rights).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<crate::doctor::DatabaseFacts>,
    pub log: Option<PathBuf>,
    pub journal: Option<PathBuf>,
    /// The maintenance window the run kept to (absent without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<super::window::WindowRecord>,
}

impl Report {
    /// A run that ended (or paused) with `outcome`, from its journal.
    pub(crate) fn from_run(
        run: &Run,
        outcome: Outcome,
        nodes: Vec<NodeReport>,
        journal: PathBuf,
    ) -> Report {
        let steps = run
            .steps
            .iter()
            .filter(|s| s.name != "preflight")
            .map(|s| {
                let reached = s.state != StepState::Planned;
                StepReport {
                    name: s.name.clone(),
                    node: s.node.clone(),
                    status: match s.state {
                        StepState::Done => "done",
                        // Still "running" in a report: the run stopped inside it.
                        StepState::Failed | StepState::Running => "failed",
                        StepState::Undone => "undone",
                        StepState::Skipped | StepState::Planned => "skipped",
                    },
                    reached,
                    seconds: s.seconds(),
                    detail: s.output_str("detail").map(str::to_string),
                    error: s.error.clone(),
                }
            })
            .collect();
        let backups = Backups::from_run(run);
        let outage_seconds = match (run.outage_started, run.outage_ended) {
            (Some(a), Some(b)) => crate::process::clock::seconds_between(a, b),
            (Some(a), None) => crate::process::clock::seconds_between(a, run.updated),
            _ => 0.0,
        };
        Report {
            outcome,
            operation: Operation::Upgrade,
            direction: run.direction,
            refused: false,
            from: run.from.to_string(),
            to: run.target.to_string(),
            outage_seconds: (outage_seconds * 1000.0).round() / 1000.0,
            outage_ongoing: run.outage_started.is_some() && run.outage_ended.is_none(),
            nodes,
            steps,
            backups,
            run_id: Some(run.id.clone()),
            error: run.error.clone(),
            next_step: run.next_step.clone(),
            warnings: Vec::new(),
            accepted: Vec::new(),
            findings: Findings::default(),
            verification: Findings::default(),
            database: None,
            log: Some(run.log.clone()),
            journal: Some(journal),
            window: super::window::recorded(run),
        }
    }

    /// The warnings and acceptances the run's preflight journaled.
    pub(crate) fn read_preflight(&mut self, run: &Run) {
        if let Some(p) = run.step(super::catalogue::StepKind::Preflight.name()) {
            self.warnings = p.warnings();
            self.accepted = p.accepted();
        }
    }

    /// Nothing to do, or refused before anything changed.
    pub(crate) fn without_run(outcome: Outcome, from: &str, to: &str) -> Report {
        Report {
            outcome,
            operation: Operation::Upgrade,
            direction: crate::journal::Direction::Forward,
            refused: outcome == Outcome::Refused,
            from: from.to_string(),
            to: to.to_string(),
            outage_seconds: 0.0,
            outage_ongoing: false,
            nodes: Vec::new(),
            steps: Vec::new(),
            backups: Backups::default(),
            run_id: None,
            error: None,
            next_step: None,
            warnings: Vec::new(),
            accepted: Vec::new(),
            findings: Findings::default(),
            verification: Findings::default(),
            database: None,
            log: None,
            journal: None,
            window: None,
        }
    }
}
