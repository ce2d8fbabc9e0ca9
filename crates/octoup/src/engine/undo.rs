//! The undo: after a failure before the database upgrade, what the run changed is put
//! back, in the reverse of the forward order ([`undo_order`]): original binaries where
//! they changed, nodes started, watchdogs, drain flags and maintenance mode restored.

use crate::journal::{Direction, RunStatus, StepState};
use crate::process::clock::now;

use super::catalogue::{StepId, StepKind, undo_order};
use super::error::StepError;
use super::executor::{Engine, EngineNode, Failure};
use super::record::Record;
use super::report::{Outcome, Report};

impl Engine {
    /// Puts back what the run changed before the database upgrade.
    pub(crate) async fn run_undo(&self, failure: Option<Failure>) -> Report {
        let cause = match &failure {
            Some(f) => format!("{}: {}", f.step, f.message),
            None => self.run().error.unwrap_or_default(),
        };
        self.journal_update(|r| {
            r.status = RunStatus::Undoing;
            r.direction = Direction::Undo;
            r.error = Some(cause.clone());
        })
        .ok();
        self.events
            .note("putting everything back (the failure came before the database upgrade)");
        match self.undo().await {
            Ok(()) => {
                let from = self.from();
                self.end(RunStatus::Failed, Outcome::Failed, |r| {
                    if r.outage_started.is_some() && r.outage_ended.is_none() {
                        r.outage_ended = Some(now());
                    }
                    r.next_step = Some(format!(
                        "Everything was put back: every node serves {from}, and the watchdogs, drain flags and maintenance mode are as they were. Fix the cause above, then run `octoup upgrade` again."
                    ));
                })
                .await
            }
            Err(f) => {
                let error = format!(
                    "{cause}; then putting things back failed at {}: {}",
                    f.step, f.message
                );
                let next = format!(
                    "The upgrade failed before the database upgrade (the database is unchanged), and putting things back stopped at {}: {}. Fix that, then run `octoup upgrade` again: it continues putting things back (it never starts a node whose installed version differs from the database).",
                    f.step, f.message
                );
                self.end_stopped(RunStatus::Paused, Outcome::Paused, error, next)
                    .await
            }
        }
    }

    async fn undo(&self) -> Result<(), Failure> {
        for kind in undo_order() {
            if kind.per_node() {
                self.on_every_node(|n| self.undo_step(StepId::on(kind, &n.info.name), Some(n)))
                    .await?;
            } else {
                self.undo_step(StepId::once(kind), None).await?;
            }
        }
        Ok(())
    }

    /// Reverses one step if it was reached.
    async fn undo_step(&self, id: StepId, node: Option<&EngineNode>) -> Result<(), Failure> {
        match self.state_of(&id) {
            Some(StepState::Done | StepState::Running | StepState::Failed) => {}
            _ => return Ok(()),
        }
        let reversed = self.undo_body(id.kind, node).await.map_err(|e| Failure {
            step: format!("undo {id}"),
            message: e.to_string(),
        })?;
        if reversed {
            // A failed step keeps "failed" (it is the cause); what it had changed is noted.
            let step = self.mark(&id.key(), |s| {
                if s.state == StepState::Failed {
                    Record::Detail("what it had changed was put back".into()).write(s);
                } else {
                    s.state = StepState::Undone;
                }
                Record::UndoneAt(now()).write(s);
            })?;
            self.log.note(&format!("step {id}: undone"));
            self.events.step_finished(&step);
        }
        Ok(())
    }

    /// The undo of a step of `kind`: `Ok(true)` when something was put back.
    async fn undo_body(
        &self,
        kind: StepKind,
        node: Option<&EngineNode>,
    ) -> Result<bool, StepError> {
        let n = || node.ok_or(StepError::NoNode(kind));
        match kind {
            StepKind::Install => self.reinstall_original(n()?).await,
            StepKind::Stop => self.undo_stop(n()?).await,
            StepKind::DeleteWatchdog => self.undo_watchdog(n()?).await,
            StepKind::Drain => self.undo_drain(n()?).await,
            StepKind::MaintenanceOn => self.undo_maintenance().await,
            _ => Ok(false),
        }
    }

    async fn undo_stop(&self, n: &EngineNode) -> Result<bool, StepError> {
        let from = self.from();
        if n.agent.ping().await.is_up() {
            return Ok(false);
        }
        // I2: never start a node whose binaries differ from the schema.
        let installed = n.agent.installed_version().await?;
        if installed != from {
            return Err(StepError::LeftStopped {
                node: n.info.name.clone(),
                installed,
                want: from,
            });
        }
        n.agent.start(&from.to_string()).await?;
        Ok(true)
    }

    pub(crate) async fn undo_watchdog(&self, n: &EngineNode) -> Result<bool, StepError> {
        let Some(info) = self.watchdog_before(n) else {
            return Ok(false);
        };
        if n.agent.watchdog().await?.enabled {
            return Ok(false);
        }
        n.agent.create_watchdog(&info).await?;
        Ok(true)
    }

    async fn undo_drain(&self, n: &EngineNode) -> Result<bool, StepError> {
        if self.drain_was_on(n) {
            return Ok(false);
        }
        self.cluster.set_drain(&n.info.id, false).await?;
        Ok(true)
    }

    pub(crate) async fn undo_maintenance(&self) -> Result<bool, StepError> {
        if self.maintenance_was_on() {
            return Ok(false);
        }
        self.cluster.set_maintenance(false).await?;
        Ok(true)
    }
}
