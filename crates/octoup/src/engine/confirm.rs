//! The last word before anything changes, and the stop at a safe point.
//!
//! [`Confirmation`] is what the engine tells the person before it acts (the CLI renders
//! it and answers with an [`Answer`]); a declined or unanswerable confirmation changes
//! nothing. A stop asked for while a run goes on ([`super::Events::stop_requested`], the
//! CLI's first Ctrl-C) is honoured between phases: the running step finishes and is
//! journaled, then the run pauses (or, before the outage, ends with everything as before).

use std::path::PathBuf;

use jiff::Timestamp;
use serde::Serialize;

use crate::journal::{Direction, StepState};

use super::catalogue::{StepId, StepKind};
use super::executor::{Engine, Failure};
use super::report::{Outcome, Report};

/// What is about to be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// A new run.
    Upgrade,
    /// Continuing an unfinished run (paused, interrupted, or an undo under way).
    Resume,
    /// Taking an unfinished run back to the original version (or continuing that).
    Rollback,
}

/// What the person is asked before anything changes; data, rendered by the CLI.
#[derive(Debug, Clone, Serialize)]
pub struct Confirmation {
    pub action: Action,
    /// The unfinished run (resume, rollback).
    pub run: Option<String>,
    pub from: String,
    pub to: String,
    pub nodes: Vec<String>,
    /// The plan's estimate of the outage (a new run).
    pub outage_estimate_seconds: Option<f64>,
    /// A new run turns maintenance mode on and drains every node first, waiting up to this
    /// long for running tasks (`[drain] wait_seconds`), before the outage.
    pub drain_wait_seconds: Option<u64>,
    /// A node was already stopped by the run: Octopus is down now.
    pub outage_ongoing: bool,
    /// A resume: the step it continues with.
    pub continues_at: Option<String>,
    /// A rollback that restores the database: what the restore discards.
    pub restore: Option<Restore>,
}

/// A database restore, and what it throws away.
#[derive(Debug, Clone, Serialize)]
pub struct Restore {
    pub backup: Option<PathBuf>,
    /// Nodes that have served the new version, and since when (their start step's end).
    pub served: Vec<Served>,
    /// Maintenance mode was turned back off at this time: users could change things since.
    pub maintenance_off_since: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Served {
    pub node: String,
    pub since: Timestamp,
}

/// The answer to a [`Confirmation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    /// Declined at the prompt.
    Declined,
    /// Nobody can be asked (standard input is not a terminal) and `--yes` was not given.
    NeedsTerminal,
}

impl Answer {
    /// The report's error when the answer is not yes.
    pub(crate) fn refusal(self) -> Option<&'static str> {
        match self {
            Answer::Yes => None,
            Answer::Declined => Some("declined at the prompt: nothing was changed"),
            Answer::NeedsTerminal => Some(
                "confirmation needed: standard input is not a terminal, so octoup cannot ask; run it again with --yes to go ahead without asking. Nothing was changed",
            ),
        }
    }
}

/// The step name of the failure a requested stop ends a phase walk with.
const STOP: &str = "stop requested";

impl Failure {
    /// The walk stopped between phases because a stop was asked for (Ctrl-C).
    pub(crate) fn stop() -> Failure {
        Failure {
            step: STOP.to_string(),
            message: "octoup was interrupted (Ctrl-C or SIGTERM) and stopped at a safe point"
                .into(),
        }
    }

    pub(crate) fn is_stop(&self) -> bool {
        self.step == STOP
    }
}

impl Engine {
    /// Asks before a resume or a rollback of the unfinished run; `Some(report)` (nothing
    /// changed, the journal as it was) unless the answer is yes.
    pub(crate) async fn confirm_takeover(&self, action: Action) -> Option<Report> {
        let run = self.run();
        let restore = (action == Action::Rollback && self.restore_needed()).then(|| Restore {
            backup: self.database_backup(),
            served: run
                .steps
                .iter()
                .filter(|s| s.name == StepKind::Start.name() && s.state == StepState::Done)
                .filter_map(|s| {
                    Some(Served {
                        node: s.node.clone()?,
                        since: s.finished?,
                    })
                })
                .collect(),
            maintenance_off_since: self
                .run()
                .step(&StepId::once(StepKind::MaintenanceRestore).key())
                .filter(|s| {
                    s.state == StepState::Done
                        && !self.maintenance_was_on()
                        && !self.config.maintenance.leave_on
                })
                .and_then(|s| s.finished),
        });
        let continues_at = run
            .steps
            .iter()
            .find(|s| !s.state.is_settled())
            .map(|s| s.id.clone());
        let confirmation = Confirmation {
            action: if run.direction == Direction::Rollback {
                Action::Rollback
            } else {
                action
            },
            run: Some(run.id.clone()),
            from: run.from.to_string(),
            to: run.target.to_string(),
            nodes: run.nodes.iter().map(|n| n.name.clone()).collect(),
            outage_estimate_seconds: None,
            drain_wait_seconds: None,
            outage_ongoing: run.outage_started.is_some() && run.outage_ended.is_none(),
            continues_at: continues_at.filter(|_| action == Action::Resume),
            restore,
        };
        let refusal = self.events.confirm(&confirmation).refusal()?;
        self.log.note(&format!("not confirmed: {refusal}"));
        let mut report = self.report(Outcome::Refused).await;
        report.refused = true;
        report.error = Some(refusal.to_string());
        report.next_step = Some(format!(
            "Run {} is as it was ({}). `octoup upgrade --yes` continues it, `octoup rollback --yes` takes it back; `octoup status` shows where it stands.",
            run.id,
            run.status.as_str()
        ));
        Some(report)
    }

    /// Ends a forward run stopped at a safe point: before the outage, as a failure there
    /// does (nothing changed, or everything put back); once it began, paused with the
    /// next step.
    pub(crate) async fn stopped(&self, failure: Failure) -> Report {
        let run = self.run();
        if run.outage_started.is_none() {
            self.events.note(
                "stopped before the outage began: putting back what was changed (maintenance mode, drain flags)",
            );
            return if self.anything_changed() {
                self.run_undo(Some(failure)).await
            } else {
                self.fail_unchanged(&failure).await
            };
        }
        let next = run
            .steps
            .iter()
            .find(|s| !s.state.is_settled())
            .map(|s| s.id.clone())
            .unwrap_or_default();
        let back = if self.restore_needed() {
            format!(
                "restores the verified database backup and reinstalls {} on every node",
                run.from
            )
        } else {
            format!("puts {} back on every node", run.from)
        };
        let text = if self.settled(&StepId::once(StepKind::Verify)) {
            format!(
                "Paused at a safe point on request: every node serves {}. The next step is {next}: `octoup upgrade` finishes what is left (watchdogs, drain flags, maintenance mode); `octoup rollback` {back}.",
                run.target
            )
        } else {
            format!(
                "Paused at a safe point on request: the outage is ongoing (nodes stopped, maintenance mode on, the nodes drained). The next step is {next}: `octoup upgrade` continues from there; `octoup rollback` {back}.",
            )
        };
        self.end_stopped(
            crate::journal::RunStatus::Paused,
            Outcome::Paused,
            format!("{}: {}", failure.step, failure.message),
            text,
        )
        .await
    }
}
