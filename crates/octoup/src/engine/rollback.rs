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

use std::path::PathBuf;
use std::time::Duration;

use crate::config::OnFailure;
use crate::journal::RunStatus;

use super::*;

pub const RB_STOP: &str = "rollback-stop";
pub const RB_RESTORE: &str = "rollback-restore-database";
pub const RB_INSTALL: &str = "rollback-install";
pub const RB_START: &str = "rollback-start";
pub const RB_VERIFY: &str = "rollback-verify";
pub const RB_WATCHDOG: &str = "rollback-create-watchdog";
pub const RB_DRAIN: &str = "rollback-drain";
pub const RB_MAINTENANCE: &str = "rollback-maintenance";

/// Whether a journal step belongs to a rollback.
pub fn is_rollback_step(name: &str) -> bool {
    name.starts_with("rollback-")
}

/// The rollback's steps for these nodes, in order.
fn rollback_steps(nodes: &[String]) -> Vec<Step> {
    let each = |name: &'static str| nodes.iter().map(move |n| Step::new(name, Some(n)));
    each(RB_STOP)
        .chain([Step::new(RB_RESTORE, None)])
        .chain(each(RB_INSTALL))
        .chain(each(RB_START))
        .chain([Step::new(RB_VERIFY, None)])
        .chain(each(RB_WATCHDOG))
        .chain(each(RB_DRAIN))
        .chain([Step::new(RB_MAINTENANCE, None)])
        .collect()
}

/// The refusal when there is no unfinished run to roll back.
pub(super) fn no_unfinished_run(last: Option<Run>) -> Report {
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
                    run.step(BACKUP_DATABASE)
                        .and_then(|s| s.output_str("path"))
                        .unwrap_or("(none recorded)"),
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
        .map(|r| (r.from.as_str(), r.target.as_str()))
        .unwrap_or(("", ""));
    let mut report = Report::without_run(Outcome::Refused, from, to);
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
    pub(super) fn rolls_back_on_failure(&self) -> bool {
        let config = self.config();
        (config.rollback.automatic || config.cluster.on_failure == OnFailure::Rollback)
            && self.step_state(VERIFY) != Some(StepState::Done)
    }

    /// A failure at or after the database upgrade, with automatic rollback configured.
    pub(super) async fn rollback_after(&self, failure: Failure) -> Report {
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
    pub(super) async fn take_over_rollback(&mut self) -> Report {
        self.resumed = true;
        self.journal_update(|r| r.pid = std::process::id()).ok();
        let run = self.run();
        if run.direction == Direction::Rollback {
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
        let cause = match (&run.error, run.status) {
            (Some(e), _) => e.clone(),
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
            let Some(path) = self.backup_path() else {
                return Some(Refusal {
                    reason: "the database may have been upgraded, and the run recorded no database backup to restore".into(),
                    next: by_hand,
                });
            };
            if self.step_state(VERIFY_BACKUP) != Some(StepState::Done) {
                return Some(Refusal {
                    reason: format!(
                        "the database backup {} was never verified (RESTORE VERIFYONLY did not pass in this run), so it is not trusted for a restore",
                        path.display()
                    ),
                    next: by_hand,
                });
            }
            // A backup share may be visible to the SQL Server only: when the file is not
            // here, SQL Server checks it again.
            if !path.exists()
                && let Err(e) = self.sql.verify(self.conn.runner.as_ref(), &path).await
            {
                return Some(Refusal {
                    reason: format!(
                        "the database backup {} is missing or damaged ({e})",
                        path.display()
                    ),
                    next: by_hand,
                });
            }
        }
        for n in &self.nodes {
            let id = step_id(RB_INSTALL, Some(&n.info.name));
            if self.step_state(&id).is_some_and(StepState::is_settled)
                || self.installed_is(n, &from).await
            {
                continue;
            }
            let staged = self.rollback_installer().filter(|p| p.exists());
            let package = self.output_path(STAGE_INSTALLER).filter(|p| p.exists());
            if staged.is_none() || package.is_none() {
                return Some(Refusal {
                    reason: format!(
                        "{} no longer has {from} installed, and {} is not in the cache ({}); a rollback never downloads",
                        n.info.name,
                        if staged.is_none() {
                            format!("the installer of {from}")
                        } else {
                            format!("the installer of {target} (needed to uninstall it)")
                        },
                        self.output_path(if staged.is_none() {
                            STAGE_ROLLBACK
                        } else {
                            STAGE_INSTALLER
                        })
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
    pub(super) async fn run_rollback(&self) -> Report {
        let names: Vec<String> = self.nodes.iter().map(|n| n.info.name.clone()).collect();
        self.journal_update(|r| {
            r.direction = Direction::Rollback;
            r.status = RunStatus::RollingBack;
            for step in rollback_steps(&names) {
                if r.step(&step.id).is_none() {
                    r.steps.push(step);
                }
            }
        })
        .ok();
        let cause = self.run().error.unwrap_or_default();
        match self.roll_back().await {
            Ok(()) => {
                let from = self.from();
                let backup = self
                    .backup_path()
                    .filter(|_| self.step_state(RB_RESTORE) == Some(StepState::Done))
                    .map(|p| format!(" on the database restored from {}", p.display()))
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
                let next = format!(
                    "The rollback is not finished: it stopped at {} ({}). Fix that, then run `octoup rollback` again (`octoup upgrade` also continues the rollback); `octoup status` shows which rollback steps are done. No node is started with binaries that differ from the database.",
                    f.step, f.message
                );
                self.end_stopped(RunStatus::Paused, Outcome::Paused, error, next)
                    .await
            }
        }
    }

    async fn roll_back(&self) -> Result<(), Failure> {
        // A crash may have left forward steps running (resumed rollback after a crash).
        self.settle_interrupted().await?;
        let restore = self.restore_needed();
        let stops_pending = self
            .nodes
            .iter()
            .any(|n| !self.settled(&step_id(RB_STOP, Some(&n.info.name))));
        let must_stop = stops_pending && (restore || self.binaries_changed().await);
        self.each(RB_STOP, |n| self.rb_stop(n, must_stop)).await?;
        self.step(RB_RESTORE, self.rb_restore(restore)).await?;
        self.each(RB_INSTALL, |n| self.rb_install(n)).await?;
        self.each(RB_START, |n| self.rb_start(n)).await?;
        self.step(RB_VERIFY, self.rb_verify()).await?;
        self.each(RB_WATCHDOG, |n| self.rb_watchdog(n)).await?;
        self.each(RB_DRAIN, |n| self.rb_drain(n)).await?;
        self.step(RB_MAINTENANCE, self.rb_maintenance()).await
    }

    fn settled(&self, id: &str) -> bool {
        self.step_state(id).is_some_and(StepState::is_settled)
    }

    /// The schema may differ from the original: the database upgrade was started.
    fn restore_needed(&self) -> bool {
        let id = step_id(UPGRADE_DATABASE, Some(&self.primary().info.name));
        self.step_state(&id)
            .is_some_and(|s| s != StepState::Planned)
    }

    fn backup_path(&self) -> Option<PathBuf> {
        self.output_path(BACKUP_DATABASE)
    }

    fn output_path(&self, id: &str) -> Option<PathBuf> {
        self.output(id, "path")
            .and_then(|v| v.as_str().map(PathBuf::from))
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

    /// Marks a forward step the rollback reversed (when it had been reached).
    fn mark_undone(&self, id: &str) {
        if matches!(
            self.step_state(id),
            Some(StepState::Done | StepState::Running | StepState::Failed)
        ) {
            let _ = self.mark(id, |s| {
                s.state = StepState::Undone;
                s.outputs
                    .insert("undone_at".into(), json!(now().to_string()));
            });
        }
    }

    async fn rb_stop(&self, n: &EngineNode, must_stop: bool) -> StepResult {
        if !must_stop {
            return Ok(Done::Skipped(
                "the database and the binaries are unchanged: the node is left as it is".into(),
            ));
        }
        self.journal_update(|r| {
            if r.outage_started.is_none() {
                r.outage_started = Some(now());
            }
        })
        .map_err(|e| e.to_string())?;
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
    async fn stop_for_rollback(&self, n: &EngineNode) -> Result<bool, String> {
        if n.agent.watchdog().await.map_err(|e| e.to_string())?.enabled {
            n.agent.delete_watchdog().await.map_err(|e| e.to_string())?;
        }
        let was_up = n.api().ping().await.is_up();
        n.agent.stop().await.map_err(|e| e.to_string())?;
        Ok(was_up)
    }

    async fn rb_restore(&self, needed: bool) -> StepResult {
        let from = self.from();
        if !needed {
            return Ok(Done::Skipped(format!(
                "the database upgrade never started: the schema is still {from}"
            )));
        }
        let path = self
            .backup_path()
            .ok_or("the run recorded no database backup to restore")?;
        if self.step_state(VERIFY_BACKUP) != Some(StepState::Done) {
            return Err(format!(
                "the backup {} was never verified; it is not restored",
                path.display()
            ));
        }
        // SQL Server needs exclusive use of the database: nothing may run against it. A
        // restore refused as "in use" (a service that came up, an interrupted restore
        // still finishing) is retried for up to [timeouts] backup.
        let deadline = Deadline::after(Duration::from_secs(self.config().timeouts.backup));
        let mut poll = Poller::new(Duration::from_millis(200), Duration::from_secs(10));
        loop {
            for n in &self.nodes {
                if n.api().ping().await.is_up() {
                    self.stop_for_rollback(n).await?;
                }
            }
            match self.sql.restore(self.conn.runner.as_ref(), &path).await {
                Ok(()) => break,
                Err(e) if in_use(&e.to_string()) && !deadline.expired() => {
                    self.events.note(&format!(
                        "the restore waits for exclusive use of the database: {e}"
                    ));
                    poll.wait(Some(&deadline)).await;
                }
                Err(e) => {
                    return Err(format!(
                        "{e}. The database was not restored; check [database] sqlcmd and that nothing else uses the database"
                    ));
                }
            }
        }
        self.mark_undone(&step_id(UPGRADE_DATABASE, Some(&self.primary().info.name)));
        Ok(Done::Ok(format!(
            "restored {}: the schema is {from} again",
            path.display()
        )))
    }

    async fn rb_install(&self, n: &EngineNode) -> StepResult {
        let from = self.from();
        let reinstalled = self.undo_install(n).await?;
        self.mark_undone(&step_id(INSTALL, Some(&n.info.name)));
        Ok(if reinstalled {
            Done::Ok(format!("{from} reinstalled from the staged installer"))
        } else {
            Done::Skipped(format!("{from} is installed"))
        })
    }

    async fn rb_start(&self, n: &EngineNode) -> StepResult {
        let from = self.from();
        let want: Version = from.parse().map_err(|e| format!("{e}"))?;
        let status = n.agent.status().await;
        let serves = status
            .api_version
            .as_deref()
            .and_then(|v| v.parse::<Version>().ok());
        if status.ping.is_up() {
            return match serves {
                Some(v) if v == want => {
                    self.mark_undone(&step_id(STOP, Some(&n.info.name)));
                    Ok(Done::Ok(format!("serves {from}")))
                }
                _ => Err(format!(
                    "{} answers ({}) but not with {from}: stop it and run `octoup rollback` again",
                    n.info.name,
                    status.api_version.unwrap_or_else(|| status.ping.describe())
                )),
            };
        }
        // I2: a node starts only on the original binaries against the original schema.
        if !self.installed_is(n, &from).await {
            return Err(format!(
                "{} does not have {from} installed: it is left stopped",
                n.info.name
            ));
        }
        n.agent.start(&from).await.map_err(|e| e.to_string())?;
        self.mark_undone(&step_id(STOP, Some(&n.info.name)));
        Ok(Done::Ok(format!("serves {from}")))
    }

    async fn rb_verify(&self) -> StepResult {
        let from = self.from();
        let want: Version = from.parse().map_err(|e| format!("{e}"))?;
        for n in &self.nodes {
            let s = n.agent.status().await;
            let serves = s
                .api_version
                .as_deref()
                .and_then(|v| v.parse::<Version>().ok());
            if !(s.ping.is_up() && serves.as_ref() == Some(&want)) {
                return Err(format!(
                    "node {} does not serve {from}: {}",
                    n.info.name,
                    s.ping.describe()
                ));
            }
        }
        let summary = self
            .conn
            .api
            .nodes_summary()
            .await
            .map_err(|e| e.to_string())?;
        for s in &summary {
            let known = self
                .nodes
                .iter()
                .any(|n| n.info.name.eq_ignore_ascii_case(&s.name));
            if let (true, Some(v)) = (known, &s.version)
                && v.parse::<Version>().ok().as_ref() != Some(&want)
            {
                return Err(format!(
                    "the cluster summary reports {} on {v}, not {from}",
                    s.name
                ));
            }
        }
        self.journal_update(|r| r.outage_ended = Some(now()))
            .map_err(|e| e.to_string())?;
        Ok(Done::Ok(format!(
            "every node serves {from} (/api, ping, cluster summary)"
        )))
    }

    async fn rb_watchdog(&self, n: &EngineNode) -> StepResult {
        let done = self.create_watchdog(n).await?;
        if matches!(done, Done::Ok(_)) {
            self.mark_undone(&step_id(DELETE_WATCHDOG, Some(&n.info.name)));
        }
        Ok(done)
    }

    async fn rb_drain(&self, n: &EngineNode) -> StepResult {
        let done = self.undrain(n).await?;
        self.mark_undone(&step_id(DRAIN, Some(&n.info.name)));
        Ok(done)
    }

    async fn rb_maintenance(&self) -> StepResult {
        let turned_off = self.undo_maintenance().await?;
        self.mark_undone(MAINTENANCE_ON);
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
    fn rollback_steps_are_in_order_per_node() {
        let ids: Vec<String> = rollback_steps(&["A".into(), "B".into()])
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(
            ids,
            [
                "rollback-stop@A",
                "rollback-stop@B",
                "rollback-restore-database",
                "rollback-install@A",
                "rollback-install@B",
                "rollback-start@A",
                "rollback-start@B",
                "rollback-verify",
                "rollback-create-watchdog@A",
                "rollback-create-watchdog@B",
                "rollback-drain@A",
                "rollback-drain@B",
                "rollback-maintenance",
            ]
        );
        assert!(is_rollback_step(RB_RESTORE));
        assert!(!is_rollback_step(UPGRADE_DATABASE));
    }

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
