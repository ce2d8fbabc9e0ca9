//! Amazon RDS for SQL Server: native backups to S3 (`msdb.dbo.rds_backup_database`), polled
//! with `rds_task_status`; the rollback renames the upgraded database (RDS cannot restore
//! over an existing name) and runs `rds_restore_database`. On Multi-AZ the rename needs
//! Multi-AZ turned off first (docs/database.md). Facts: reference §2.4.

use super::point::sibling;
use super::tsql;
use super::{DatabaseError, DatabaseSide, Percent, RollbackPoint};
use crate::process::clock::Deadline;
use crate::process::runner::CommandRunner;

/// One row of `rds_task_status` (the columns octoup reads, by position).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Task {
    pub id: u64,
    pub kind: String,
    pub percent: Option<u32>,
    pub lifecycle: String,
    pub info: String,
}

/// The task rows in sqlcmd's output (`-h -1 -W -s "|"`): `task_id|task_type|database_name|
/// % complete|duration(mins)|lifecycle|task_info|…`. Other lines are skipped.
pub(crate) fn tasks(output: &str) -> Vec<Task> {
    output
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split('|').map(str::trim).collect();
            if f.len() < 7 {
                return None;
            }
            Some(Task {
                id: f[0].parse().ok()?,
                kind: f[1].to_string(),
                percent: f[3].parse().ok(),
                lifecycle: f[5].to_ascii_uppercase(),
                info: f[6].to_string(),
            })
        })
        .collect()
}

impl DatabaseSide {
    fn s3_object(&self, stem: &str) -> String {
        let arn = self
            .rds_s3_arn
            .as_deref()
            .unwrap_or("")
            .trim_end_matches('/');
        if self.stripes > 1 {
            format!("{arn}/{stem}*.bak")
        } else {
            format!("{arn}/{stem}.bak")
        }
    }

    /// The tasks `rds_task_status` lists for `database`.
    async fn tasks_of(
        &self,
        runner: &dyn CommandRunner,
        database: &str,
    ) -> Result<Vec<Task>, DatabaseError> {
        let out = self
            .sql
            .call(
                runner,
                "RDS task status",
                tsql::rds_tasks_of(database),
                self.listing(),
            )
            .await?;
        Ok(tasks(&out.stdout))
    }

    /// Runs an `rds_*` procedure that starts a task on `database`; its task id.
    async fn start_task(
        &self,
        runner: &dyn CommandRunner,
        what: &str,
        text: String,
        (database, kind): (&str, &str),
    ) -> Result<u64, DatabaseError> {
        let out = self.sql.call(runner, what, text, self.listing()).await?;
        if let Some(t) = tasks(&out.stdout).into_iter().max_by_key(|t| t.id) {
            return Ok(t.id);
        }
        // The procedure's own output did not show it: the newest task of that kind.
        self.tasks_of(runner, database)
            .await?
            .into_iter()
            .filter(|t| t.kind.eq_ignore_ascii_case(kind))
            .map(|t| t.id)
            .max()
            .ok_or_else(|| {
                DatabaseError::failed(what, "RDS started no task that octoup can see", "look at `exec msdb.dbo.rds_task_status` on the instance; the option group needs SQLSERVER_BACKUP_RESTORE")
            })
    }

    /// Polls the task until it ends; `Ok` on SUCCESS.
    async fn wait_task(
        &self,
        runner: &dyn CommandRunner,
        what: &str,
        id: u64,
        percent: Option<&Percent>,
    ) -> Result<Task, DatabaseError> {
        let deadline = Deadline::after(self.sql.timeout);
        loop {
            let out = self
                .sql
                .call(
                    runner,
                    "RDS task status",
                    tsql::rds_task_status(id),
                    self.listing(),
                )
                .await?;
            let Some(task) = tasks(&out.stdout).into_iter().find(|t| t.id == id) else {
                return Err(DatabaseError::failed(
                    what,
                    format!("rds_task_status shows no task {id}"),
                    "look at `exec msdb.dbo.rds_task_status` on the instance",
                ));
            };
            if let (Some(f), Some(p)) = (percent, task.percent) {
                f(p);
            }
            match task.lifecycle.as_str() {
                "SUCCESS" => return Ok(task),
                "ERROR" | "CANCELLED" | "CANCEL_REQUESTED" => {
                    return Err(DatabaseError::failed(
                        what,
                        format!("RDS task {id} ended {}: {}", task.lifecycle, task.info),
                        "fix what the task says (the S3 bucket, the IAM role of the SQLSERVER_BACKUP_RESTORE option), then run octoup again",
                    ));
                }
                _ => {}
            }
            if deadline.expired() {
                return Err(DatabaseError::failed(
                    what,
                    format!(
                        "RDS task {id} is still {} after {}",
                        task.lifecycle,
                        crate::process::clock::human_duration(self.sql.timeout)
                    ),
                    "raise [timeouts] backup; `exec msdb.dbo.rds_task_status` shows it",
                ));
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    pub(super) async fn rds_backup(
        &self,
        runner: &dyn CommandRunner,
        stem: &str,
        percent: Option<Percent>,
    ) -> Result<RollbackPoint, DatabaseError> {
        let object = self.s3_object(stem);
        let id = self
            .start_task(
                runner,
                "database backup",
                tsql::rds_backup(self.name(), &object, self.stripes),
                (self.name(), "BACKUP_DB"),
            )
            .await?;
        self.wait_task(runner, "database backup", id, percent.as_ref())
            .await?;
        Ok(RollbackPoint::Rds {
            object,
            task_id: id,
        })
    }

    pub(super) async fn rds_verify(
        &self,
        runner: &dyn CommandRunner,
        id: u64,
        object: &str,
    ) -> Result<String, DatabaseError> {
        let task = self
            .wait_task(runner, "backup verification", id, None)
            .await?;
        Ok(format!(
            "RDS task {id} ({}) ended SUCCESS: {object} (RDS has no RESTORE VERIFYONLY; the task checks what it wrote)",
            task.kind
        ))
    }

    pub(super) async fn rds_restore(
        &self,
        runner: &dyn CommandRunner,
        object: &str,
        stamp: &str,
    ) -> Result<String, DatabaseError> {
        let db = self.name();
        let failed = sibling(db, "failed_", stamp);
        if self.state(runner, db).await?.is_some() {
            self.quick(
                runner,
                "rename the upgraded database",
                tsql::rds_rename(db, &failed),
            )
            .await?;
        }
        let id = self
            .rds_restore_task(runner, "database restore", db, object, None)
            .await?;
        Ok(format!(
            "restored {db} from {object} (RDS task {id}); the upgraded database is kept as {failed}"
        ))
    }

    /// Waits for the tasks still running on `database`: RDS refuses to drop a database with
    /// a pending restore, and a restore still running would make it after the drop (an
    /// interrupted rehearsal's teardown).
    pub(super) async fn rds_wait_pending(
        &self,
        runner: &dyn CommandRunner,
        database: &str,
    ) -> Result<(), DatabaseError> {
        let pending = self
            .tasks_of(runner, database)
            .await?
            .into_iter()
            .filter(|t| !matches!(t.lifecycle.as_str(), "SUCCESS" | "ERROR" | "CANCELLED"));
        for t in pending {
            // How it ends does not matter here: what exists afterwards is dropped, and a drop
            // refused while it still runs is reported by the caller.
            let _ = self
                .wait_task(runner, "wait for the RDS task", t.id, None)
                .await;
        }
        Ok(())
    }

    /// `rds_restore_database` of `object` as `name` (which must not exist), waited for
    /// until SUCCESS; its task id.
    pub(super) async fn rds_restore_task(
        &self,
        runner: &dyn CommandRunner,
        what: &str,
        name: &str,
        object: &str,
        percent: Option<&Percent>,
    ) -> Result<u64, DatabaseError> {
        let id = self
            .start_task(
                runner,
                what,
                tsql::rds_restore(name, object),
                (name, "RESTORE_DB"),
            )
            .await?;
        self.wait_task(runner, what, id, percent).await?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_rows_are_read_by_position_and_other_lines_skipped() {
        let out = "Changed database context to 'msdb'.\n7|BACKUP_DB|Octo|45|2|IN_PROGRESS|Task is in progress.|2026-12-02 18:00:00|2026-12-02 17:58:00|arn:aws:s3:::b/k.bak|0|NULL|NULL|0\n\n";
        assert_eq!(
            tasks(out),
            vec![Task {
                id: 7,
                kind: "BACKUP_DB".into(),
                percent: Some(45),
                lifecycle: "IN_PROGRESS".into(),
                info: "Task is in progress.".into(),
            }]
        );
        assert!(
            tasks("task_id|task_type|x|y|z|w|v").is_empty(),
            "a header row is no task"
        );
    }
}
