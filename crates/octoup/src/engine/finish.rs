//! How a forward run ends: upgraded, failed with nothing changed, undone (undo.rs),
//! rolled back (rollback.rs), or paused in a documented safe state with the exact next
//! step; and the report of it.

use crate::journal::{Run, RunStatus, Step, StepState};

use super::catalogue::{FORWARD, StepId, StepKind};
use super::executor::{Engine, Failure};
use super::report::{NodeReport, Outcome, Report};
use super::steps::serves;

impl Engine {
    pub(crate) async fn run_forward(&self) -> Report {
        let Err(failure) = self.run_phases(FORWARD).await else {
            return self.finish_upgraded().await;
        };
        if failure.is_stop() {
            return self.stopped(failure).await;
        }
        let past_point_of_no_return = self.restore_needed();
        let outage_began = self.run().outage_started.is_some();
        if past_point_of_no_return && self.rolls_back_on_failure() {
            self.rollback_after(failure).await
        } else if past_point_of_no_return {
            self.pause(&failure).await
        } else if !outage_began && !self.anything_changed() {
            self.fail_unchanged(&failure).await
        } else {
            self.run_undo(Some(failure)).await
        }
    }

    /// The database upgrade was started: the schema may differ from the original.
    pub(crate) fn restore_needed(&self) -> bool {
        let id = StepId::on(StepKind::UpgradeDatabase, &self.primary().info.name);
        self.state_of(&id).is_some_and(|s| s != StepState::Planned)
    }

    /// Whether any step that changes the installation has started.
    pub(crate) fn anything_changed(&self) -> bool {
        self.run().steps.iter().any(|s| {
            s.state != StepState::Planned
                && StepKind::parse(&s.name).is_none_or(StepKind::changes_installation)
        })
    }

    async fn finish_upgraded(&self) -> Report {
        let run = self.run();
        let next = match run.path.iter().position(|v| *v == run.target) {
            Some(pos) if pos + 1 < run.path.len() => Some(format!(
                "{} is a stop on the way to {}: run `octoup upgrade` again for the next version ({})",
                run.target,
                run.path.last().map(ToString::to_string).unwrap_or_default(),
                join(&run.path[pos + 1..])
            )),
            _ if self.config.maintenance.leave_on && !self.maintenance_was_on() => Some(
                "Maintenance mode was left on as configured: check the server, then turn it off (Configuration → Maintenance).".to_string(),
            ),
            _ => None,
        };
        let target = run.target.clone();
        let mut report = self
            .end(RunStatus::Upgraded, Outcome::Upgraded, |r| {
                r.next_step = next
            })
            .await;
        // After the journal says upgraded: what the checks find needs attention but never
        // makes the run a failure.
        self.events
            .note("verify: the integrity check, stuck triggers, the queue and Tentacles");
        report.verification = self.cluster.verify(&self.config, &target).await;
        report
    }

    /// Ends the run: `record` notes in the journal how it ended (error, next step), then the
    /// run takes `status` and the report says `outcome`.
    pub(crate) async fn end(
        &self,
        status: RunStatus,
        outcome: Outcome,
        record: impl FnOnce(&mut Run),
    ) -> Report {
        self.journal_update(record).ok();
        self.set_status(status);
        self.report(outcome).await
    }

    /// Ends the run stopped by `error`, with the operator's `next` step.
    pub(crate) async fn end_stopped(
        &self,
        status: RunStatus,
        outcome: Outcome,
        error: String,
        next: String,
    ) -> Report {
        self.end(status, outcome, |r| {
            r.error = Some(error);
            r.next_step = Some(next);
        })
        .await
    }

    pub(crate) async fn fail_unchanged(&self, failure: &Failure) -> Report {
        let text =
            "Nothing on the server was changed. Fix the cause, then run `octoup upgrade` again."
                .to_string();
        let error = format!("{}: {}", failure.step, failure.message);
        let mut report = self
            .end_stopped(RunStatus::Failed, Outcome::Failed, error, text)
            .await;
        report.refused = true;
        report.outcome = Outcome::Refused;
        report
    }

    pub(crate) async fn pause(&self, failure: &Failure) -> Report {
        if matches!(failure.kind(), Some(StepKind::Start | StepKind::Verify)) {
            self.restore_what_serves().await;
        }
        let next = self.next_step_after(failure).await;
        let error = format!("{}: {}", failure.step, failure.message);
        self.end_stopped(RunStatus::Paused, Outcome::Paused, error, next)
            .await
    }

    /// After a node failed to start: the nodes that serve the target get their watchdogs
    /// back and take tasks again, and maintenance mode is restored, so the cluster works on
    /// fewer nodes while the failed one waits for the operator (I6 holds). Nothing happens
    /// when no node serves (the API is down with them).
    async fn restore_what_serves(&self) {
        let target = self.target();
        let mut serving = Vec::new();
        for n in &self.nodes {
            if serves(&n.agent.status().await, &target) {
                serving.push(n);
            }
        }
        if serving.is_empty() {
            return;
        }
        self.events.note(&format!(
            "{} serve {target}: restoring their watchdogs, the drain flags and maintenance mode while the failed node waits",
            serving
                .iter()
                .map(|n| n.info.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for n in &serving {
            let _ = self.on_node(StepKind::CreateWatchdog, n).await;
        }
        let _ = self.each(StepKind::Undrain).await;
        let _ = self.once(StepKind::MaintenanceRestore).await;
    }

    /// Exactly what to do after a failure at or after the database upgrade.
    async fn next_step_after(&self, failure: &Failure) -> String {
        let run = self.run();
        let (from, target) = (run.from.clone(), run.target.clone());
        let backup = run
            .step(StepKind::BackupDatabase.name())
            .and_then(Step::recorded_path)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(none)".into());
        match failure.kind() {
            Some(StepKind::UpgradeDatabase) => {
                let pending = self
                    .primary()
                    .agent
                    .database_upgrade_pending()
                    .await
                    .ok()
                    .flatten();
                format!(
                    "Every node is stopped and drained, maintenance mode is on, and every node has {target} installed. {} Fix the cause above, then run `octoup upgrade` again: it retries the database upgrade and finishes. To go back to {from} instead: restore the verified backup {backup} and reinstall {from} on every node (`octoup rollback`).",
                    match pending {
                        Some(true) => format!(
                            "The database schema is still {from} (Octopus rolls a failed upgrade back)."
                        ),
                        Some(false) => format!("The database schema is already {target}."),
                        None => "The database schema state could not be read.".to_string(),
                    }
                )
            }
            Some(StepKind::Start | StepKind::Verify) => format!(
                "The database is upgraded to {target}; {}. {} Look at the Octopus server log on the node named above, fix the cause, then run `octoup upgrade` again: it starts what is not running, verifies, and restores what is left (watchdogs, drain, maintenance mode). Never start a node with {from} installed against this database.",
                self.serving_summary().await,
                if self.settled(&StepId::once(StepKind::MaintenanceRestore)) {
                    "The nodes that serve take tasks again and maintenance mode is restored."
                } else {
                    "Maintenance mode is on and the nodes stay drained."
                }
            ),
            _ => format!(
                "Every node serves {target}. Run `octoup upgrade` again to finish the remaining steps (watchdogs, undrain, maintenance mode), or do them by hand as the failed step above says."
            ),
        }
    }

    async fn serving_summary(&self) -> String {
        let mut parts = Vec::new();
        for n in &self.nodes {
            let s = n.agent.status().await;
            parts.push(format!(
                "{} {}",
                n.info.name,
                if s.ping.is_up() {
                    format!("serves {}", s.api_version.unwrap_or_default())
                } else {
                    "is stopped".to_string()
                }
            ));
        }
        parts.join(", ")
    }

    pub(crate) async fn report(&self, outcome: Outcome) -> Report {
        let mut nodes = Vec::new();
        for n in &self.nodes {
            let s = n.agent.status().await;
            let serving = s.api_version.filter(|_| s.ping.is_up());
            let version = match &serving {
                Some(v) => v.clone(),
                None => n
                    .agent
                    .installed_version()
                    .await
                    .map(|v| v.to_string())
                    .unwrap_or_else(|_| "unknown".into()),
            };
            nodes.push(NodeReport {
                name: n.info.name.clone(),
                version,
                serving,
            });
        }
        let run = self.run();
        let journal = self.state.run_path(&run.id);
        let mut report = Report::from_run(&run, outcome, nodes, journal);
        report.operation = self.operation;
        report.read_preflight(&run);
        report
    }
}

fn join(versions: &[crate::version::Version]) -> String {
    versions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" → ")
}
