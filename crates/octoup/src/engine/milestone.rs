//! Milestones of a run, as data: what a notification says (the `notify` module sends it).
//! Each carries the report's key fields as they stand at that moment.

use serde::Serialize;

use crate::config::NotifyEvent;
use crate::journal::Run;

use super::report::{Backups, NodeReport, Outcome, Report};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Milestone {
    pub event: NotifyEvent,
    pub run_id: Option<String>,
    pub from: String,
    pub to: String,
    pub nodes: Vec<NodeReport>,
    /// So far (outage-started: 0), or in all (outage-ended and the endings).
    pub outage_seconds: Option<f64>,
    pub outage_ongoing: bool,
    /// plan-ready: the plan's estimate of the outage.
    pub outage_estimate_seconds: Option<f64>,
    pub backups: Backups,
    /// paused, failed: what to do now.
    pub next_step: Option<String>,
    pub error: Option<String>,
    /// Refused before anything changed (a `failed` that changed nothing).
    pub refused: bool,
}

impl Milestone {
    /// A milestone inside a run, from its journal: the nodes as recorded, on `version`.
    pub(crate) fn of_run(event: NotifyEvent, run: &Run, version: &str) -> Milestone {
        Milestone {
            event,
            run_id: Some(run.id.clone()),
            from: run.from.to_string(),
            to: run.target.to_string(),
            nodes: run
                .nodes
                .iter()
                .map(|n| NodeReport {
                    name: n.name.clone(),
                    version: version.to_string(),
                    serving: None,
                })
                .collect(),
            outage_seconds: run.outage_seconds().or(run.outage_started.map(|_| 0.0)),
            outage_ongoing: run.outage_started.is_some() && run.outage_ended.is_none(),
            outage_estimate_seconds: None,
            backups: Backups::from_run(run),
            next_step: None,
            error: None,
            refused: false,
        }
    }

    /// The plan is confirmed: `now` is the installation as the preflight found it.
    pub(crate) fn plan_ready(run_id: &str, now: &Report, to: &str, estimate: f64) -> Milestone {
        Milestone {
            event: NotifyEvent::PlanReady,
            run_id: Some(run_id.to_string()),
            from: now.from.clone(),
            to: to.to_string(),
            nodes: now.nodes.clone(),
            outage_seconds: None,
            outage_ongoing: false,
            outage_estimate_seconds: Some(estimate),
            backups: Backups::default(),
            next_step: None,
            error: None,
            refused: false,
        }
    }

    /// How a run ended, from its report; `None` when there is nothing to tell (up to date).
    pub fn of_report(report: &Report) -> Option<Milestone> {
        let event = match report.outcome {
            Outcome::Upgraded => NotifyEvent::Upgraded,
            Outcome::UpToDate => return None,
            Outcome::RolledBack => NotifyEvent::RolledBack,
            Outcome::Paused => NotifyEvent::Paused,
            Outcome::Failed | Outcome::Refused => NotifyEvent::Failed,
        };
        Some(Milestone {
            event,
            run_id: report.run_id.clone(),
            from: report.from.clone(),
            to: report.to.clone(),
            nodes: report.nodes.clone(),
            outage_seconds: Some(report.outage_seconds),
            outage_ongoing: report.outage_ongoing,
            outage_estimate_seconds: None,
            backups: report.backups.clone(),
            next_step: report.next_step.clone(),
            error: report.error.clone(),
            refused: report.refused,
        })
    }
}
