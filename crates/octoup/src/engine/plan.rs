//! The steps of an upgrade, with estimated durations and the outage they add up to.
//! `octoup plan` shows it (changing nothing); `octoup upgrade` journals the same list.

use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::engine::preflight::Facts;

use crate::version::Version;

use super::catalogue::{self, FORWARD, StepKind};
use super::window::{Estimates, WindowFit};
use crate::journal::Run;
use crate::process::clock::human_duration;

#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub name: String,
    pub node: Option<String>,
    pub estimate_seconds: f64,
    pub in_outage: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A rehearsal the plan measures by.
#[derive(Debug, Clone, Serialize)]
pub struct PlanRehearsal {
    pub id: String,
    pub date: String,
    pub migrations_seconds: f64,
}

#[derive(Clone, Serialize)]
pub struct Plan {
    pub from: String,
    pub to: Option<Version>,
    pub path: Vec<Version>,
    pub why: String,
    pub up_to_date: bool,
    pub facts: Facts,
    pub steps: Vec<PlannedStep>,
    /// S + max(B, I) + U + T: octoup's order (backup and installs overlap).
    pub outage_estimate_seconds: f64,
    /// S + B + I + U + T: the vendor's HA runbook, which runs each step on every node in
    /// parallel but one step after another (the backup does not overlap the installs).
    pub vendor_outage_estimate_seconds: f64,
    /// `defaults`, or the run whose measured durations were used.
    pub estimates_from: String,
    /// The go rehearsal to the target whose migrations the database upgrade is estimated by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rehearsal: Option<PlanRehearsal>,
    /// Whether the database backup overlaps the installs (needs a staged rollback installer).
    pub backup_overlaps_install: bool,
    /// `[window]`: whether now is inside it and the work fits (absent without a window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowFit>,
}

/// The plan for the preflight's findings. Changes nothing.
pub(crate) fn make_plan(
    config: &Config,
    facts: Facts,
    history: &[Run],
    rehearsal: Option<&crate::rehearsal::Rehearsal>,
) -> Plan {
    let estimates = Estimates::from_history(history)
        .with_database(history, facts.database.as_ref())
        .with_rehearsal(rehearsal);
    let estimate = |kind: StepKind| estimates.seconds(kind);
    let nodes: Vec<String> = facts.nodes.iter().map(|n| n.name.clone()).collect();
    let primary = facts.primary().map(|n| n.name.clone()).unwrap_or_default();
    let rollback = config.rollback.enabled;
    let mut steps = Vec::new();
    let layout = catalogue::Layout::of_choice(facts.strategy().as_ref());
    for id in catalogue::steps(FORWARD, &nodes, &primary, rollback, layout) {
        let (kind, node) = (id.kind, id.node);
        if kind == StepKind::Preflight {
            continue;
        }
        let node_facts = node
            .as_ref()
            .and_then(|n| facts.nodes.iter().find(|f| &f.name == n));
        let mut note = None;
        let mut secs = estimate(kind);
        match kind {
            StepKind::Drain => {
                if let Some(f) = node_facts
                    && f.running_tasks > 0
                {
                    note = Some(format!(
                        "{} task(s) running now: waits up to {} for them, then {}",
                        f.running_tasks,
                        human_duration(Duration::from_secs(config.drain.wait_seconds)),
                        if config.drain.cancel_tasks {
                            "cancels what still runs"
                        } else {
                            "stops and puts everything back"
                        }
                    ));
                    secs = secs.max(config.drain.wait_seconds as f64);
                }
            }
            StepKind::DeleteWatchdog | StepKind::CreateWatchdog => {
                let exists = node_facts
                    .and_then(|f| f.watchdog.as_ref())
                    .is_some_and(|w| w.enabled);
                if !exists {
                    note = Some("no watchdog: skipped".into());
                    secs = 0.0;
                }
            }
            StepKind::Undrain if node_facts.is_some_and(|f| f.drained) => {
                note = Some("was drained before: stays drained".into());
                secs = 0.0;
            }
            StepKind::MaintenanceOn if facts.maintenance => {
                note = Some("already on".into());
            }
            StepKind::MaintenanceRestore => {
                note = Some(if config.maintenance.leave_on {
                    "left on ([maintenance] leave_on): turn it off after checking".into()
                } else if facts.maintenance {
                    "was on before: stays on".into()
                } else {
                    "turned off again".into()
                });
            }
            StepKind::UpgradeDatabase => {
                note = Some(
                    match rehearsal.filter(|r| r.migration_seconds().is_some()) {
                        Some(r) => format!(
                            "the only schema upgrade, with every node stopped; measured in {} (the migrations and the start, on a copy of this database)",
                            super::window::rehearsal_label(r)
                        ),
                        None => "the only schema upgrade, with every node stopped".into(),
                    },
                );
            }
            _ => {}
        }
        steps.push(PlannedStep {
            name: kind.name().to_string(),
            node,
            estimate_seconds: secs,
            in_outage: layout.in_outage(kind),
            note,
        });
    }
    let longest = |kind: StepKind| {
        steps
            .iter()
            .filter(|s| s.name == kind.name())
            .map(|s| s.estimate_seconds)
            .fold(0.0, f64::max)
    };
    let (s, b, i, u, t) = (
        longest(StepKind::Stop),
        layout.in_outage.iter().map(|&k| longest(k)).sum::<f64>(),
        longest(StepKind::Install),
        longest(StepKind::UpgradeDatabase),
        longest(StepKind::Start),
    );
    let canary_extra = if config.cluster.canary && nodes.len() > 1 {
        t
    } else {
        0.0
    };
    let overlap = rollback;
    let outage = s
        + if overlap { b.max(i) } else { b + i }
        + u
        + t
        + canary_extra
        + longest(StepKind::Verify);
    // The vendor's runbook backs up during the outage whatever octoup's strategy does.
    let vendor_b = if longest(StepKind::BackupDatabase) > 0.0 {
        longest(StepKind::BackupDatabase) + longest(StepKind::VerifyBackup)
    } else {
        b
    };
    let vendor = s + vendor_b + i + u + t;
    let target = facts.target.clone();
    Plan {
        from: facts.version.clone(),
        to: target.as_ref().and_then(|t| t.target.clone()),
        path: target.as_ref().map(|t| t.path.clone()).unwrap_or_default(),
        why: target.as_ref().map(|t| t.why.clone()).unwrap_or_default(),
        up_to_date: target.as_ref().is_some_and(|t| t.up_to_date),
        facts,
        steps,
        outage_estimate_seconds: outage,
        vendor_outage_estimate_seconds: vendor,
        estimates_from: estimates.main_label(),
        rehearsal: rehearsal.and_then(|r| {
            Some(PlanRehearsal {
                id: r.id.clone(),
                date: r
                    .created
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .date()
                    .to_string(),
                migrations_seconds: r.migration_seconds()?,
            })
        }),
        backup_overlaps_install: overlap,
        window: super::window::planned(
            config,
            nodes.len(),
            &estimates,
            crate::process::clock::now(),
            layout,
        ),
    }
}

/// What `octoup plan` shows.
#[derive(Clone, Serialize)]
#[serde(untagged)]
pub enum PlanView {
    /// No run is unfinished: the preflight and the steps of a new run.
    Fresh(Box<Plan>),
    /// A run is unfinished: `octoup upgrade` continues it instead of starting a new one.
    Unfinished(Box<ResumePlan>),
}

/// What `octoup upgrade` would do with the unfinished run.
#[derive(Debug, Clone, Serialize)]
pub struct ResumePlan {
    pub unfinished_run: String,
    pub status: String,
    /// `forward` (finishes the upgrade), `undo` (puts things back) or `rollback`.
    pub direction: String,
    pub from: Version,
    pub to: Version,
    /// An octoup works on it now (`octoup upgrade` would wait for the lock).
    pub live_pid: Option<String>,
    /// The steps still to do, in order (`name` or `name@node`).
    pub remaining: Vec<String>,
    pub error: Option<String>,
    pub next_step: Option<String>,
}

/// The unfinished run's remaining steps, in the order the run would take them.
pub(crate) fn resume_plan(run: &Run, live_pid: Option<String>) -> ResumePlan {
    use crate::journal::{Direction, StepState};
    let reached = |s: &crate::journal::Step| {
        matches!(
            s.state,
            StepState::Done | StepState::Running | StepState::Failed
        )
    };
    let remaining = match run.direction {
        Direction::Undo => catalogue::undo_order()
            .into_iter()
            .flat_map(|kind| {
                run.steps
                    .iter()
                    .filter(move |s| s.name == kind.name() && reached(s))
                    .map(|s| format!("undo {}", s.id))
            })
            .collect(),
        Direction::Forward | Direction::Rollback => {
            let rolling_back = run.direction == Direction::Rollback;
            let mut left: Vec<String> = run
                .steps
                .iter()
                .filter(|s| !s.state.is_settled())
                .filter(|s| {
                    StepKind::parse(&s.name).is_some_and(|k| k.is_rollback() == rolling_back)
                })
                .map(|s| s.id.clone())
                .collect();
            if rolling_back && left.is_empty() {
                left.push("rollback steps as journaled".into());
            }
            left
        }
    };
    ResumePlan {
        unfinished_run: run.id.clone(),
        status: run.status.as_str().to_string(),
        direction: match run.direction {
            Direction::Forward => "forward",
            Direction::Undo => "undo",
            Direction::Rollback => "rollback",
        }
        .to_string(),
        from: run.from.clone(),
        to: run.target.clone(),
        live_pid,
        remaining,
        error: run.error.clone(),
        next_step: run.next_step.clone(),
    }
}
