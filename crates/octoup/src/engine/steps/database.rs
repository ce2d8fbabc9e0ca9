//! The database side of the outage: the verified backup, and the one schema upgrade, on
//! the primary, with every node stopped (I1).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::join_all;

use crate::database::{Percent, RollbackPoint};
use crate::process::clock::now;

use crate::journal::{Step, StepState};
use crate::nodes::{NodeCommand, NodeError};
use crate::process::clock::{Deadline, Poller, human_duration};

use super::super::catalogue::{StepId, StepKind};
use super::super::error::StepError;
use super::super::executor::{Done, Engine, StepResult};
use super::super::record::Record;

/// How long `database --upgrade` is retried while the server still sees nodes running
/// (a stopped node counts as running until its heartbeat goes stale).
pub(crate) const NODES_RUNNING_GRACE: Duration = Duration::from_secs(600);

impl Engine {
    /// Told a long database operation's percentage; shows a line every 10 %.
    fn percent(&self, what: &'static str) -> Percent {
        let events = self.events.clone();
        let shown = Arc::new(AtomicU32::new(0));
        let started = std::time::Instant::now();
        Arc::new(move |p: u32| {
            let last = shown.load(Ordering::Relaxed);
            if p >= last + 10 || (p == 100 && last < 100) {
                shown.store(p, Ordering::Relaxed);
                events.note(&format!(
                    "{what}: {p} % ({} so far)",
                    human_duration(started.elapsed())
                ));
            }
        })
    }

    /// The strategy's full backup (during the outage; with `snapshot`, before it).
    pub(super) async fn backup_database(&self) -> StepResult {
        let point = self
            .database
            .backup(
                &self.from(),
                &self.stamp,
                Some(self.percent("database backup")),
            )
            .await
            .map_err(StepError::DatabaseBackup)?;
        let mut detail = point.describe();
        if let RollbackPoint::Backup {
            bytes: Some(b),
            seconds: Some(s),
            ..
        } = &point
        {
            detail.push_str(&format!(
                " ({} in {}, {:.0} MB/s)",
                crate::process::fsutil::bytes(*b),
                human_duration(Duration::from_secs_f64(*s)),
                *b as f64 / 1e6 / s.max(0.001)
            ));
        }
        // The point and its first file as `path`, in one journal write.
        self.record(
            &StepId::once(StepKind::BackupDatabase),
            Record::Point(point),
        )?;
        Ok(Done::Ok(detail))
    }

    pub(super) async fn verify_backup(&self) -> StepResult {
        let point = self
            .point_of(StepKind::BackupDatabase)
            .ok_or(StepError::NoBackupRecorded)?;
        let detail =
            self.database
                .verify(&point)
                .await
                .map_err(|source| StepError::BackupUntrusted {
                    path: point.describe(),
                    source,
                })?;
        Ok(Done::Ok(detail))
    }

    /// The snapshot or copy, right after the last stop.
    pub(super) async fn hold_database(&self, kind: StepKind) -> StepResult {
        let what = if kind == StepKind::CopyDatabase {
            "database copy"
        } else {
            "database snapshot"
        };
        // Named after the run, not this process: a resumed run finds the snapshot or
        // copy it made before it died, and adopts it instead of refusing it as foreign.
        let point = self
            .database
            .hold(&self.run_id(), Some(self.percent(what)))
            .await
            .map_err(StepError::DatabaseBackup)?;
        let detail = format!("{} made", point.describe());
        self.record(&StepId::once(kind), Record::Point(point))?;
        Ok(Done::Ok(detail))
    }

    /// After success: drops the held snapshot or copy, or keeps it `[rollback] keep_hours`
    /// for `octoup rollback` to take the upgrade back.
    pub(super) async fn release_rollback_point(&self) -> StepResult {
        let Some(point) = self.held_point() else {
            return Ok(Done::Skipped("no snapshot or copy was made".into()));
        };
        let id = StepId::once(StepKind::ReleaseRollbackPoint);
        let keep = self.config.rollback.keep_hours;
        if keep > 0 {
            let until = now() + jiff::SignedDuration::from_hours(keep as i64);
            self.record(&id, Record::HeldUntil(until))?;
            return Ok(Done::Ok(format!(
                "{} kept until {until} ([rollback] keep_hours = {keep}): `octoup rollback` can take the upgrade back until then; `octoup finalize` releases it",
                point.describe()
            )));
        }
        let detail = self
            .database
            .release(&point)
            .await
            .map_err(StepError::DatabaseBackup)?;
        self.record(&id, Record::Released(now()))?;
        Ok(Done::Ok(detail))
    }

    /// The rollback point a step of `kind` recorded.
    pub(crate) fn point_of(&self, kind: StepKind) -> Option<RollbackPoint> {
        self.recorded(&StepId::once(kind), Step::rollback_point)
    }

    /// The snapshot or copy the run made, when it made one.
    pub(crate) fn held_point(&self) -> Option<RollbackPoint> {
        self.point_of(StepKind::SnapshotDatabase)
            .or_else(|| self.point_of(StepKind::CopyDatabase))
    }

    /// The database backup file the run made, when it recorded one (the report's
    /// `backups.database`).
    pub(crate) fn database_backup(&self) -> Option<std::path::PathBuf> {
        self.recorded(&StepId::once(StepKind::BackupDatabase), Step::recorded_path)
    }

    /// The one schema upgrade, on the primary, with every node stopped (I1).
    pub(super) async fn upgrade_database(&self) -> StepResult {
        let primary = self.primary();
        let target = self.target();
        // Every node at once: one unreachable host must not hold the outage for a
        // connect timeout per node.
        let pings = join_all(self.nodes.iter().map(|n| n.agent.ping())).await;
        if let Some((n, _)) = self.nodes.iter().zip(pings).find(|(_, p)| p.is_up()) {
            return Err(StepError::StillAnswers {
                node: n.info.name.clone(),
                url: n.info.url.clone(),
            });
        }
        // The install step of this process read the target back on the primary, and no
        // node has run since; a resumed run cannot know that, so it asks.
        let installed_here = !self.resumed
            && self.state_of(&StepId::on(StepKind::Install, &primary.info.name))
                == Some(StepState::Done);
        if !installed_here {
            let installed = primary.agent.installed_version().await?;
            if installed != target {
                return Err(StepError::PrimaryNotInstalled {
                    node: primary.info.name.clone(),
                    installed,
                    want: target,
                });
            }
        }
        if self.resumed
            && let Ok(Some(false)) = primary.agent.database_upgrade_pending().await
        {
            return Ok(Done::Ok(format!("the schema is already at {target}")));
        }
        let deadline = Deadline::after(NODES_RUNNING_GRACE);
        let mut poll = Poller::new(Duration::from_millis(200), Duration::from_secs(15));
        let mut attempts = 0;
        let id = StepId::on(StepKind::UpgradeDatabase, &primary.info.name);
        loop {
            attempts += 1;
            // Before the spawn, then the pid once it runs: recovery after a crash tells
            // "never started" (no wait) from "started" (wait for that process).
            let hook = self.launch_hook(&id)?;
            match primary
                .agent
                .watched(NodeCommand::UpgradeDatabase, hook)
                .await
            {
                Ok(()) => {
                    return Ok(Done::Ok(format!(
                        "schema upgraded to {target}{}",
                        if attempts > 1 {
                            format!(" (try {attempts}: the server first still saw nodes running)")
                        } else {
                            String::new()
                        }
                    )));
                }
                Err(NodeError::NodesStillRunning { tail, .. }) if !deadline.expired() => {
                    if attempts == 1 {
                        self.events.note(&format!(
                            "the server still sees nodes running ({}); retrying until their heartbeat goes stale (up to {})",
                            tail.lines().last().unwrap_or(""),
                            human_duration(NODES_RUNNING_GRACE)
                        ));
                    }
                    poll.wait(Some(&deadline)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
