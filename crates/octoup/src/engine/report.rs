//! The result of a run, for machines (the design's JSON object) and for people.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Serialize, Serializer};

use crate::journal::{Run, StepState};
use crate::process::clock::human_duration;

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
    pub serving: bool,
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

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub outcome: Outcome,
    /// Refused by a preflight check: nothing was changed.
    pub refused: bool,
    pub from: String,
    pub to: String,
    /// From the first service stop until every node served the target (or, after an undo,
    /// the original version) again; for a paused run, until it paused.
    pub outage_seconds: f64,
    pub nodes: Vec<NodeReport>,
    pub steps: Vec<StepReport>,
    pub backups: Backups,
    pub run_id: Option<String>,
    pub error: Option<String>,
    pub next_step: Option<String>,
    pub warnings: Vec<String>,
    pub log: Option<PathBuf>,
    pub journal: Option<PathBuf>,
}

impl Report {
    /// A run that ended (or paused) with `outcome`, from its journal.
    pub fn from_run(
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
        let path_of = |step: &str| {
            run.step(step)
                .and_then(|s| s.output_str("path"))
                .map(str::to_string)
        };
        let backups = Backups {
            database: path_of("backup-database"),
            database_verified: run
                .step("verify-backup")
                .is_some_and(|s| matches!(s.state, StepState::Done)),
            master_key: path_of("backup-master-key"),
            license: path_of("backup-license"),
        };
        let outage_seconds = match (run.outage_started, run.outage_ended) {
            (Some(a), Some(b)) => crate::process::clock::seconds_between(a, b),
            (Some(a), None) => crate::process::clock::seconds_between(a, run.updated),
            _ => 0.0,
        };
        Report {
            outcome,
            refused: false,
            from: run.from.to_string(),
            to: run.target.to_string(),
            outage_seconds: (outage_seconds * 1000.0).round() / 1000.0,
            nodes,
            steps,
            backups,
            run_id: Some(run.id.clone()),
            error: run.error.clone(),
            next_step: run.next_step.clone(),
            warnings: Vec::new(),
            log: Some(run.log.clone()),
            journal: Some(journal),
        }
    }

    /// Nothing to do, or refused before anything changed.
    pub fn without_run(outcome: Outcome, from: &str, to: &str) -> Report {
        Report {
            outcome,
            refused: outcome == Outcome::Refused,
            from: from.to_string(),
            to: to.to_string(),
            outage_seconds: 0.0,
            nodes: Vec::new(),
            steps: Vec::new(),
            backups: Backups::default(),
            run_id: None,
            error: None,
            next_step: None,
            warnings: Vec::new(),
            log: None,
            journal: None,
        }
    }

    /// A summary for people.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let headline = match self.outcome {
            Outcome::Upgraded => format!("Upgraded {} → {}.", self.from, self.to),
            Outcome::UpToDate => format!("Up to date: {} (nothing to do).", self.from),
            Outcome::RolledBack => format!(
                "The upgrade to {} failed and was rolled back: {} serves again.",
                self.to, self.from
            ),
            Outcome::Paused => format!(
                "PAUSED: the upgrade {} → {} stopped in a safe state.",
                self.from, self.to
            ),
            Outcome::Failed => format!(
                "FAILED: the upgrade {} → {} did not happen; what was done was undone.",
                self.from, self.to
            ),
            Outcome::Refused => format!(
                "REFUSED: nothing was changed; the upgrade {} → {} cannot start.",
                self.from,
                if self.to.is_empty() { "?" } else { &self.to }
            ),
        };
        let _ = writeln!(out, "{headline}");
        if self.outage_seconds > 0.0 {
            let _ = writeln!(
                out,
                "Outage: {} (first service stop until every node served {}).",
                human_duration(std::time::Duration::from_secs_f64(self.outage_seconds)),
                match self.outcome {
                    Outcome::Upgraded => &self.to,
                    _ => &self.from,
                }
            );
        }
        if let Some(e) = &self.error {
            let _ = writeln!(out, "\nCause: {e}");
        }
        if !self.nodes.is_empty() {
            let _ = writeln!(out, "\nNodes:");
            for n in &self.nodes {
                let _ = writeln!(
                    out,
                    "  {:<20} {:<14} {}",
                    n.name,
                    n.version,
                    if n.serving { "serving" } else { "NOT serving" }
                );
            }
        }
        let reached: Vec<&StepReport> = self.steps.iter().filter(|s| s.reached).collect();
        if !reached.is_empty() {
            let _ = writeln!(out, "\nSteps:");
            for s in reached {
                let what = match &s.node {
                    Some(n) => format!("{} {n}", s.name),
                    None => s.name.clone(),
                };
                let secs = s
                    .seconds
                    .map(|x| {
                        format!(
                            " ({})",
                            human_duration(std::time::Duration::from_secs_f64(x))
                        )
                    })
                    .unwrap_or_default();
                let detail = s
                    .detail
                    .as_deref()
                    .map(|d| format!(" — {d}"))
                    .unwrap_or_default();
                let _ = writeln!(out, "  {:<8} {what}{secs}{detail}", s.status);
            }
        }
        let b = &self.backups;
        if b.database.is_some() || b.master_key.is_some() || b.license.is_some() {
            let _ = writeln!(out, "\nBackups:");
            if let Some(p) = &b.database {
                let _ = writeln!(
                    out,
                    "  database    {p}{}",
                    if b.database_verified {
                        " (verified)"
                    } else {
                        " (NOT verified)"
                    }
                );
            }
            if let Some(p) = &b.master_key {
                let _ = writeln!(out, "  master key  {p} (owner-only)");
            }
            if let Some(p) = &b.license {
                let _ = writeln!(out, "  license     {p}");
            }
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        if let Some(n) = &self.next_step {
            let _ = writeln!(out, "\nNext step: {n}");
        }
        if let Some(l) = &self.log {
            let _ = writeln!(out, "Log: {}", l.display());
        }
        out
    }
}
