//! Rollback: back to the original version on the original schema, from the run's journal.
//!
//! `octoup rollback` takes over an unfinished run (paused, or interrupted by a crash);
//! with `[rollback] automatic = true` or `[cluster] on_failure = "rollback"` it also runs by
//! itself when the database upgrade, a start or the verification fails. The procedure
//! (Octopus: "rollback is restore the database, reinstall the previous MSI"):
//!
//! 1. stop every node and confirm it is down (its watchdog first, so nothing restarts it) —
//!    only when the database or a node's binaries must change;
//! 2. restore the database from the run's verified backup (`RESTORE DATABASE … WITH
//!    REPLACE`) — only when the schema may have changed (the database upgrade started);
//! 3. put the original version back on every node whose binaries changed, from the
//!    installer staged before the outage (never the network);
//! 4. start every node, 5. verify every node serves the original version (`/api`, ping,
//!    cluster summary), 6. recreate the watchdogs, 7. drain flags and 8. maintenance mode
//!    as they were before the run.
//!
//! Every step is journaled, so a crash during a rollback is continued by the next
//! `octoup rollback` or `octoup upgrade`. A rollback is refused, changing nothing, when the
//! backup it needs is missing or unverified, when the original installer is not staged,
//! or when the run changed nothing.

use std::time::Duration;

use crate::config::OnFailure;
use crate::database::{Media, RollbackPoint};
use crate::journal::{Direction, Run, RunStatus, Step, StepState};
use crate::process::clock::{Deadline, Poller, now};

use super::catalogue::{Layout, ROLLBACK, StepId, StepKind, steps};
use super::error::StepError;
use super::executor::{Done, Engine, EngineNode, Failure, StepResult};
use super::report::{Outcome, Report};
use super::steps::serves;

/// The refusal when there is no unfinished run to roll back.
pub(crate) fn no_unfinished_run(last: Option<Run>) -> Report {
    let (reason, next) = match &last {
        None => (
            "there is no octoup run to roll back".to_string(),
            "Nothing was changed. `octoup status` shows the runs octoup knows about.".to_string(),
        ),
        Some(run) => match run.status {
            RunStatus::Upgraded => (
                format!(
                    "the last run ({}) finished: every node serves {}. octoup rolls back only an unfinished run (paused or interrupted); restoring the backup now would discard everything done in Octopus since the upgrade",
                    run.id, run.target
                ),
                format!(
                    "Nothing was changed. To go back to {} anyway, follow docs/recovery.md (\"Going back after a finished upgrade\"): stop every node, restore the backup {}, install {} on every node, start them.",
                    run.from,
                    run.step(StepKind::BackupDatabase.name())
                        .and_then(Step::recorded_path)
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "(none recorded)".into()),
                    run.from
                ),
            ),
            RunStatus::RolledBack => (
                format!(
                    "the last run ({}) was already rolled back: {} serves",
                    run.id, run.from
                ),
                "Nothing was changed.".to_string(),
            ),
            _ => (
                format!(
                    "the last run ({}) ended {}: what it did was put back, {} serves",
                    run.id,
                    run.status.as_str(),
                    run.from
                ),
                "Nothing was changed; there is nothing to roll back.".to_string(),
            ),
        },
    };
    let (from, to) = last
        .as_ref()
        .map(|r| (r.from.to_string(), r.target.to_string()))
        .unwrap_or_default();
    let mut report = Report::without_run(Outcome::Refused, &from, &to);
    report.operation = super::report::Operation::Rollback;
    report.error = Some(reason);
    report.next_step = Some(next);
    report
}

/// Why a rollback cannot be done now, and what to do instead.
struct Refusal {
    reason: String,
    next: String,
}

impl Engine {
    /// Whether a failure at or after the database upgrade is rolled back by itself: when
    /// configured, and only while the target is not yet served everywhere (afterwards only
    /// watchdogs, drain and maintenance are left, and a re-run finishes them).
    pub(crate) fn rolls_back_on_failure(&self) -> bool {
        let config = &self.config;
        (config.rollback.automatic || config.cluster.on_failure == OnFailure::Rollback)
            && self.state_of(&StepId::once(StepKind::Verify)) != Some(StepState::Done)
    }

    /// A failure at or after the database upgrade, with automatic rollback configured.
    pub(crate) async fn rollback_after(&self, failure: Failure) -> Report {
        if let Some(refusal) = self.rollback_refusal().await {
            let mut report = self.pause(&failure).await;
            let text = format!(
                "The automatic rollback was refused: {}. {}",
                refusal.reason,
                report.next_step.clone().unwrap_or_default()
            );
            self.journal_update(|r| r.next_step = Some(text.clone()))
                .ok();
            report.next_step = Some(text);
            return report;
        }
        let cause = format!("{}: {}", failure.step, failure.message);
        self.events.note(&format!(
            "rolling back automatically ([rollback] automatic / [cluster] on_failure): {} failed",
            failure.step
        ));
        self.begin_rollback(cause, "automatically after the failure");
        self.run_rollback().await
    }

    /// `octoup rollback` on an unfinished run: refused when it cannot be done (nothing is
    /// changed then), else rolled back; a rollback already under way continues.
    pub(crate) async fn take_over_rollback(&mut self) -> Report {
        self.resumed = true;
        self.journal_update(|r| r.pid = std::process::id()).ok();
        let run = self.run();
        if run.direction == Direction::Rollback {
            if let Some(refused) = self
                .confirm_takeover(super::confirm::Action::Rollback)
                .await
            {
                return refused;
            }
            self.events
                .note(&format!("continuing the rollback of run {}", run.id));
            return self.run_rollback().await;
        }
        // Let what the interrupted run had started finish before looking at the state.
        if let Err(f) = self.settle_interrupted().await {
            return self
                .refused(Refusal {
                    reason: format!("{}: {}", f.step, f.message),
                    next: "Nothing was changed. Fix that, then run `octoup rollback` again.".into(),
                })
                .await;
        }
        if let Some(refusal) = self.rollback_refusal().await {
            return self.refused(refusal).await;
        }
        if let Some(refused) = self
            .confirm_takeover(super::confirm::Action::Rollback)
            .await
        {
            return refused;
        }
        let finished = run.status == RunStatus::Upgraded;
        if finished {
            // Taking back a finished upgrade (its snapshot or copy is still held): a new
            // outage, measured from now.
            self.journal_update(|r| {
                r.outage_started = None;
                r.outage_ended = None;
            })
            .ok();
        }
        let cause = match (&run.error, run.status) {
            (Some(e), _) => e.clone(),
            (None, RunStatus::Upgraded) => format!(
                "taking back the finished upgrade to {} while its rollback point is held",
                run.target
            ),
            (None, RunStatus::Paused) => "paused".to_string(),
            (None, _) => "the run was interrupted (octoup stopped while it ran)".to_string(),
        };
        self.events.note(&format!(
            "rolling back run {} ({} → {}) as requested: every node goes back to {}",
            run.id, run.from, run.target, run.from
        ));
        self.begin_rollback(cause, "on request (`octoup rollback`)");
        self.run_rollback().await
    }

    /// A refusal report; the journal is left as it was.
    async fn refused(&self, refusal: Refusal) -> Report {
        self.log
            .note(&format!("rollback refused: {}", refusal.reason));
        let mut report = self.report(Outcome::Refused).await;
        report.refused = true;
        report.error = Some(format!("the rollback is refused: {}", refusal.reason));
        report.next_step = Some(refusal.next);
        report
    }

    /// What would make a rollback of this run impossible or meaningless; checked before
    /// anything is changed.
    async fn rollback_refusal(&self) -> Option<Refusal> {
        let run = self.run();
        let (from, target) = (run.from.clone(), run.target.clone());
        if !self.anything_changed() {
            return Some(Refusal {
                reason: format!(
                    "run {} never changed the installation (it stopped before maintenance mode was turned on): there is nothing to roll back",
                    run.id
                ),
                next: format!(
                    "Nothing was changed; every node still runs {from}. `octoup upgrade` continues the run."
                ),
            });
        }
        let by_hand = format!(
            "Nothing was changed. Either fix the cause and run `octoup upgrade` to finish the upgrade to {target}, or go back by hand (docs/recovery.md)."
        );
        if self.restore_needed() {
            let point = match self.restore_point() {
                Ok(p) => p,
                Err(e) => {
                    return Some(Refusal {
                        reason: format!("the database may have been upgraded, and {e}"),
                        next: by_hand,
                    });
                }
            };
            if !point.restorable() {
                return Some(Refusal {
                    reason: format!(
                        "the database may have been upgraded, and its rollback point ({}) is one only the hosting can restore",
                        point.describe()
                    ),
                    next: by_hand,
                });
            }
            // A backup share may be visible to the SQL Server only: when the file is not
            // here, SQL Server checks it again.
            if let RollbackPoint::Backup {
                media: Media::Disk,
                files,
                ..
            } = &point
                && files.iter().any(|f| !std::path::Path::new(f).exists())
                && let Err(e) = self.database.verify(&point).await
            {
                return Some(Refusal {
                    reason: format!(
                        "the database backup {} is missing or damaged ({e})",
                        point.describe()
                    ),
                    next: by_hand,
                });
            }
        }
        for n in &self.nodes {
            if self.settled(&StepId::on(StepKind::RollbackInstall, &n.info.name))
                || self.installed_is(n, &from).await
            {
                continue;
            }
            let staged = self.rollback_installer().filter(|p| p.exists());
            let package = self.staged_target_installer().filter(|p| p.exists());
            if staged.is_none() || package.is_none() {
                let missing = if staged.is_none() {
                    self.recorded(&StepId::once(StepKind::StageRollback), Step::recorded_path)
                } else {
                    self.staged_target_installer()
                };
                return Some(Refusal {
                    reason: format!(
                        "{} no longer has {from} installed, and {} is not in the cache ({}); a rollback never downloads",
                        n.info.name,
                        if staged.is_none() {
                            format!("the installer of {from}")
                        } else {
                            format!("the installer of {target} (needed to uninstall it)")
                        },
                        missing
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| "never staged: [rollback] enabled = false".into())
                    ),
                    next: format!(
                        "Nothing was changed. Install {from} on {} by hand (uninstall {target} first), then run `octoup rollback` again; or fix the cause and run `octoup upgrade` to finish the upgrade.",
                        n.info.name
                    ),
                });
            }
        }
        None
    }

    /// Turns the run around: from now on it rolls back, also after a crash.
    fn begin_rollback(&self, cause: String, how: &str) {
        self.log
            .note(&format!("rollback begins {how}; cause: {cause}"));
        self.journal_update(|r| {
            r.direction = Direction::Rollback;
            r.status = RunStatus::RollingBack;
            r.error = Some(cause);
            r.next_step = None;
        })
        .ok();
    }

    /// Runs (or continues) the rollback and reports `rolled-back`, or `paused` with the
    /// next step when a rollback step fails.
    pub(crate) async fn run_rollback(&self) -> Report {
        let names: Vec<String> = self.nodes.iter().map(|n| n.info.name.clone()).collect();
        let primary = self.primary().info.name.clone();
        self.journal_update(|r| {
            r.direction = Direction::Rollback;
            r.status = RunStatus::RollingBack;
            for id in steps(ROLLBACK, &names, &primary, true, Layout::default()) {
                if r.step(&id.key()).is_none() {
                    r.steps.push(Step::new(id.kind.name(), id.node.as_deref()));
                }
            }
        })
        .ok();
        let cause = self.run().error.unwrap_or_default();
        match self.roll_back().await {
            Ok(()) => {
                let from = self.from();
                let backup = self
                    .restore_point()
                    .ok()
                    .filter(|_| {
                        self.state_of(&StepId::once(StepKind::RollbackRestore))
                            == Some(StepState::Done)
                    })
                    .map(|p| format!(" on the database taken back to {}", p.describe()))
                    .unwrap_or_default();
                self.end(RunStatus::RolledBack, Outcome::RolledBack, |r| {
                    if r.outage_started.is_some() {
                        r.outage_ended = Some(now());
                    }
                    r.next_step = Some(format!(
                        "Rolled back: every node serves {from} again{backup}, and the watchdogs, drain flags and maintenance mode are as they were before the run. Fix the cause above before trying again; `octoup upgrade` then starts a new run."
                    ));
                })
                .await
            }
            Err(f) => {
                let error = format!(
                    "{cause}; then the rollback stopped at {}: {}",
                    f.step, f.message
                );
                let next = if f.is_stop() {
                    "The rollback paused at a safe point on request. Run `octoup rollback` to continue it (`octoup upgrade` also does); `octoup status` shows which rollback steps are done. No node is started with binaries that differ from the database.".to_string()
                } else {
                    format!(
                        "The rollback is not finished: it stopped at {} ({}). Fix that, then run `octoup rollback` again (`octoup upgrade` also continues the rollback); `octoup status` shows which rollback steps are done. No node is started with binaries that differ from the database.",
                        f.step, f.message
                    )
                };
                self.end_stopped(RunStatus::Paused, Outcome::Paused, error, next)
                    .await
            }
        }
    }

    async fn roll_back(&self) -> Result<(), Failure> {
        // A crash may have left forward steps running (resumed rollback after a crash).
        self.settle_interrupted().await?;
        self.run_phases(ROLLBACK).await
    }

    async fn binaries_changed(&self) -> bool {
        let from = self.from();
        for n in &self.nodes {
            if !self.installed_is(n, &from).await {
                return true;
            }
        }
        false
    }

    pub(super) async fn rb_stop(&self, n: &EngineNode) -> StepResult {
        // Decided once for every node, before the first stop: only when the database or
        // a node's binaries must change.
        let must_stop = *self
            .rollback_must_stop
            .get_or_init(|| async { self.restore_needed() || self.binaries_changed().await })
            .await;
        if !must_stop {
            return Ok(Done::Skipped(
                "the database and the binaries are unchanged: the node is left as it is".into(),
            ));
        }
        self.outage_begins()?;
        let was_up = self.stop_for_rollback(n).await?;
        Ok(Done::Ok(
            if was_up {
                "stopped"
            } else {
                "confirmed stopped"
            }
            .into(),
        ))
    }

    /// Deletes the node's watchdog (it would start the service again during the restore)
    /// and stops the service, confirming it is down. True when it was answering.
    async fn stop_for_rollback(&self, n: &EngineNode) -> Result<bool, StepError> {
        if n.agent.watchdog().await?.enabled {
            n.agent.delete_watchdog().await?;
        }
        let was_up = n.agent.ping().await.is_up();
        n.agent.stop().await?;
        Ok(was_up)
    }

    /// What a rollback takes the database back to: the held snapshot or copy while it is
    /// held, else the run's verified backup.
    pub(crate) fn restore_point(&self) -> Result<RollbackPoint, StepError> {
        let released = self
            .recorded(
                &StepId::once(StepKind::ReleaseRollbackPoint),
                Step::released,
            )
            .is_some();
        if let Some(p) = self.held_point().filter(|_| !released) {
            return Ok(p);
        }
        let point = self
            .point_of(StepKind::BackupDatabase)
            .ok_or(StepError::NoBackupToRestore)?;
        if point.restorable()
            && self.state_of(&StepId::once(StepKind::VerifyBackup)) != Some(StepState::Done)
        {
            return Err(StepError::BackupNeverVerified {
                path: point.describe(),
            });
        }
        Ok(point)
    }

    pub(super) async fn rb_restore(&self) -> StepResult {
        let from = self.from();
        if !self.restore_needed() {
            return Ok(Done::Skipped(format!(
                "the database upgrade never started: the schema is still {from}"
            )));
        }
        let point = self.restore_point()?;
        // SQL Server needs exclusive use of the database: nothing may run against it. A
        // restore refused as "in use" (a service that came up, an interrupted restore
        // still finishing) is retried for up to [timeouts] backup.
        let deadline = Deadline::after(Duration::from_secs(self.config.timeouts.backup));
        let mut poll = Poller::new(Duration::from_millis(200), Duration::from_secs(10));
        let detail;
        loop {
            for n in &self.nodes {
                if n.agent.ping().await.is_up() {
                    self.stop_for_rollback(n).await?;
                }
            }
            match self.database.restore(&point, &self.stamp).await {
                Ok(done) => {
                    detail = done;
                    break;
                }
                Err(e) if in_use(&e.to_string()) && !deadline.expired() => {
                    self.events.note(&format!(
                        "the restore waits for exclusive use of the database: {e}"
                    ));
                    poll.wait(Some(&deadline)).await;
                }
                Err(e) => return Err(StepError::Restore(e)),
            }
        }
        self.mark_undone(&StepId::on(
            StepKind::UpgradeDatabase,
            &self.primary().info.name,
        ));
        Ok(Done::Ok(format!("{detail}: the schema is {from} again")))
    }

    pub(super) async fn rb_install(&self, n: &EngineNode) -> StepResult {
        let from = self.from();
        let reinstalled = self.reinstall_original(n).await?;
        self.mark_undone(&StepId::on(StepKind::Install, &n.info.name));
        Ok(if reinstalled {
            Done::Ok(format!("{from} reinstalled from the staged installer"))
        } else {
            Done::Skipped(format!("{from} is installed"))
        })
    }

    pub(super) async fn rb_start(&self, n: &EngineNode) -> StepResult {
        let from = self.from();
        let status = n.agent.status().await;
        if status.ping.is_up() {
            if !serves(&status, &from) {
                return Err(StepError::ServesOther {
                    node: n.info.name.clone(),
                    serving: status.api_version.unwrap_or_else(|| status.ping.describe()),
                    want: from,
                });
            }
        } else {
            // I2: a node starts only on the original binaries against the original schema.
            if !self.installed_is(n, &from).await {
                return Err(StepError::NotInstalled {
                    node: n.info.name.clone(),
                    want: from,
                });
            }
            n.agent.start(&from.to_string()).await?;
        }
        self.mark_undone(&StepId::on(StepKind::Stop, &n.info.name));
        Ok(Done::Ok(format!("serves {from}")))
    }

    pub(super) async fn rb_verify(&self) -> StepResult {
        let from = self.from();
        self.verify_serving(&from).await?;
        self.journal_update(|r| r.outage_ended = Some(now()))?;
        Ok(Done::Ok(format!(
            "every node serves {from} (/api, ping, cluster summary)"
        )))
    }

    pub(super) async fn rb_watchdog(&self, n: &EngineNode) -> StepResult {
        let done = self.create_watchdog(n).await?;
        if matches!(done, Done::Ok(_)) {
            self.mark_undone(&StepId::on(StepKind::DeleteWatchdog, &n.info.name));
        }
        Ok(done)
    }

    pub(super) async fn rb_drain(&self, n: &EngineNode) -> StepResult {
        let done = self.undrain(n).await?;
        self.mark_undone(&StepId::on(StepKind::Drain, &n.info.name));
        Ok(done)
    }

    pub(super) async fn rb_maintenance(&self) -> StepResult {
        let turned_off = self.undo_maintenance().await?;
        self.mark_undone(&StepId::once(StepKind::MaintenanceOn));
        Ok(if turned_off {
            Done::Ok("turned off, as before the run".into())
        } else {
            Done::Skipped("was on before the run: stays on".into())
        })
    }
}

/// SQL Server's "the database is in use" refusal of a restore (Msg 3101).
fn in_use(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("3101") || m.contains("exclusive access") || m.contains("in use")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_use_refusals_are_recognised() {
        assert!(in_use(
            "database restore failed (exit code 1): Msg 3101, Level 16, State 1\nExclusive access could not be obtained because the database is in use."
        ));
        assert!(!in_use(
            "Msg 3201: Cannot open backup device 'x.bak'. Operating system error 3"
        ));
    }

    #[test]
    fn no_unfinished_run_explains_why() {
        let r = no_unfinished_run(None);
        assert_eq!(r.outcome, Outcome::Refused);
        assert!(r.error.unwrap().contains("no octoup run"));
    }
}
