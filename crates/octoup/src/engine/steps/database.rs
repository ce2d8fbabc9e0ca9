//! The database side of the outage: the verified backup, and the one schema upgrade, on
//! the primary, with every node stopped (I1).

use std::time::Duration;

use crate::journal::Step;
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
    pub(super) async fn backup_database(&self) -> StepResult {
        let path = self
            .database
            .backup(&self.from(), &self.stamp)
            .await
            .map_err(StepError::DatabaseBackup)?;
        self.record(
            &StepId::once(StepKind::BackupDatabase),
            Record::Path(path.clone()),
        )?;
        Ok(Done::Ok(path.display().to_string()))
    }

    pub(super) async fn verify_backup(&self) -> StepResult {
        let path = self.database_backup().ok_or(StepError::NoBackupRecorded)?;
        self.database
            .verify(&path)
            .await
            .map_err(|source| StepError::BackupUntrusted {
                path: path.clone(),
                source,
            })?;
        Ok(Done::Ok(format!(
            "RESTORE VERIFYONLY passed: {}",
            path.display()
        )))
    }

    /// The database backup the run made, when it recorded one.
    pub(crate) fn database_backup(&self) -> Option<std::path::PathBuf> {
        self.recorded(&StepId::once(StepKind::BackupDatabase), Step::recorded_path)
    }

    /// The one schema upgrade, on the primary, with every node stopped (I1).
    pub(super) async fn upgrade_database(&self) -> StepResult {
        let primary = self.primary();
        let target = self.target();
        for n in &self.nodes {
            if n.agent.ping().await.is_up() {
                return Err(StepError::StillAnswers {
                    node: n.info.name.clone(),
                    url: n.info.url.clone(),
                });
            }
        }
        let installed = primary.agent.installed_version().await?;
        if installed != target {
            return Err(StepError::PrimaryNotInstalled {
                node: primary.info.name.clone(),
                installed,
                want: target,
            });
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
