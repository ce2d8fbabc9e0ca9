//! Amazon RDS's native backup procedures (reference §2.4, RDS
//! `SQLServer.Procedural.Importing.md`): `msdb.dbo.rds_backup_database`,
//! `rds_restore_database` (to any name that does not exist), `rds_task_status`,
//! `rds_drop_database` and `rdsadmin.dbo.rds_modify_db_name`. A task
//! runs in the background (CREATED → IN_PROGRESS → SUCCESS | ERROR, `% complete` in 5 %
//! steps); the S3 object is a file under `DIR/s3/<bucket>/<key>`. Elsewhere the procedures
//! do not exist (Msg 2812).

use std::path::{Path, PathBuf};

use super::execute::Sql;
use super::media::{BackupBody, read_set, s3_members, s3_path, write_set};
use super::parse::Expr;
use super::select::{Value, format};
use super::timing;
use crate::history::Event;
use crate::spec::Hosting;
use crate::standins::Output;
use crate::state::{DatabaseSnapshot, RdsTask, State};

/// RDS runs at most two native backup/restore tasks at once.
const MAX_TASKS: usize = 2;

const COLUMNS: &[&str] = &[
    "task_id",
    "task_type",
    "database_name",
    "% complete",
    "duration(mins)",
    "lifecycle",
    "task_info",
    "last_updated",
    "created_at",
    "S3_object_arn",
    "overwrite_s3_backup_file",
    "KMS_master_key_arn",
    "filepath",
    "overwrite_file",
];

/// The S3 objects of a backup: `…*.bak` matches the `1-of-n` members present.
fn objects(dir: &Path, arn: &str) -> Vec<(PathBuf, String)> {
    if !arn.contains('*') {
        return s3_path(dir, arn)
            .map(|p| vec![(p, arn.to_string())])
            .unwrap_or_default();
    }
    for n in 1..=10 {
        let members = s3_members(arn, n);
        let found: Vec<(PathBuf, String)> = members
            .iter()
            .filter_map(|m| s3_path(dir, m).map(|p| (p, m.clone())))
            .filter(|(p, _)| p.is_file())
            .collect();
        if !found.is_empty() && found.len() == members.len() {
            return found;
        }
    }
    Vec::new()
}

/// The database content an RDS backup in S3 holds.
pub(crate) fn s3_content(dir: &Path, arn: &str) -> Option<DatabaseSnapshot> {
    read_set(&objects(dir, arn)).ok().map(|b| b.snapshot)
}

fn arg(args: &[(Option<String>, Expr)], name: &str, position: usize) -> Option<String> {
    let value = args
        .iter()
        .find(|(n, _)| n.as_deref() == Some(name))
        .or_else(|| args.get(position).filter(|(n, _)| n.is_none()))
        .map(|(_, e)| e.clone());
    match value {
        Some(Expr::Str(s)) | Some(Expr::Number(s)) => Some(s),
        _ => None,
    }
}

impl Sql<'_> {
    fn rds_error(&self, text: &str) -> String {
        self.msg(50000, 16, text)
    }

    pub(super) fn exec(
        &self,
        procedure: &str,
        args: &[(Option<String>, Expr)],
    ) -> Result<Output, String> {
        let state = self.state()?;
        let short = procedure.rsplit('.').next().unwrap_or("");
        let known = matches!(
            short,
            "rds_backup_database"
                | "rds_restore_database"
                | "rds_task_status"
                | "rds_drop_database"
        ) || (short == "rds_modify_db_name" && procedure.starts_with("rdsadmin."));
        if state.sql.hosting != Hosting::AmazonRds || !known {
            return Err(self.msg(
                2812,
                16,
                &format!("Could not find stored procedure '{procedure}'."),
            ));
        }
        match short {
            "rds_backup_database" => self.rds_backup(&state, args),
            "rds_restore_database" => self.rds_restore(&state, args),
            "rds_drop_database" => {
                let Some(db) = arg(args, "db_name", 0) else {
                    return Err(self
                        .rds_error("Usage: EXECUTE msdb.dbo.rds_drop_database N'database_name'"));
                };
                let now = state.now_sim();
                if state.instance_dbs.rds_tasks.iter().any(|t| {
                    t.task_type == "RESTORE_DB"
                        && t.done_sim > now
                        && t.database.eq_ignore_ascii_case(&db)
                }) {
                    // Importing page: no DROP for a database with a pending restore task.
                    return Err(self.rds_error(&format!(
                        "Database '{db}' has a pending restore task; wait for it to finish (rds_task_status)."
                    )));
                }
                // Single-AZ or Multi-AZ alike (DropMirrorDB page).
                self.drop_database_as(&db, true)
            }
            "rds_task_status" => {
                let id = arg(args, "task_id", usize::MAX).and_then(|v| v.parse::<u64>().ok());
                let db = arg(args, "db_name", 0);
                let state = self.state()?;
                let tasks: Vec<&RdsTask> = state
                    .instance_dbs
                    .rds_tasks
                    .iter()
                    .filter(|t| id.is_none_or(|i| t.id == i))
                    .filter(|t| {
                        db.as_ref()
                            .is_none_or(|d| t.database.eq_ignore_ascii_case(d))
                    })
                    .collect();
                Ok(self.task_rows(&state, &tasks))
            }
            _ => {
                let (Some(from), Some(to)) = (arg(args, "", 0), arg(args, "", 1)) else {
                    return Err(self.rds_error(
                        "Usage: EXEC rdsadmin.dbo.rds_modify_db_name N'old_name', N'new_name'",
                    ));
                };
                if state.sql.multi_az {
                    // RenamingDB page: a Multi-AZ instance must have Multi-AZ turned off
                    // first (and on again after). RDS's exact text is unverified.
                    return Err(self.rds_error(&format!(
                        "Database '{from}' cannot be renamed on a Multi-AZ DB instance. Turn off Multi-AZ, rename the database, then turn Multi-AZ on again."
                    )));
                }
                self.rename(&from, &to, "rds_modify_db_name")
            }
        }
    }

    fn task_rows(&self, state: &State, tasks: &[&RdsTask]) -> Output {
        let now = state.now_sim();
        let stamp = |sim: f64| {
            let at = state.created_at
                + jiff::SignedDuration::from_secs_f64(sim.max(0.0) * state.time_scale);
            at.strftime("%Y-%m-%d %H:%M:%S%.3f").to_string()
        };
        let rows: Vec<Vec<Value>> = tasks
            .iter()
            .map(|t| {
                let lifecycle = t.lifecycle(now);
                let info = match (lifecycle, &t.error) {
                    ("ERROR", Some(e)) => Value::Str(e.clone()),
                    ("SUCCESS", _) => Value::Str(format!(
                        "[{}] Task execution has completed successfully.",
                        stamp(t.done_sim)
                    )),
                    _ => Value::Null,
                };
                let end = now.min(t.done_sim);
                vec![
                    Value::Int(t.id as i64),
                    Value::Str(t.task_type.clone()),
                    Value::Str(t.database.clone()),
                    Value::Int(i64::from(t.percent(now))),
                    Value::Int(((end - t.created_sim) / 60.0).floor() as i64),
                    Value::Str(lifecycle.into()),
                    info,
                    Value::Str(stamp(end)),
                    Value::Str(stamp(t.created_sim)),
                    Value::Str(t.s3_arn.clone()),
                    Value::Int(0),
                    Value::Null,
                    Value::Null,
                    Value::Int(0),
                ]
            })
            .collect();
        let columns: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
        Output::ok(format(&columns, &rows, &self.format, self.nocount.get()))
    }

    fn running(state: &State) -> usize {
        let now = state.now_sim();
        state
            .instance_dbs
            .rds_tasks
            .iter()
            .filter(|t| t.done_sim > now)
            .count()
    }

    /// Queues a task and prints its row.
    fn queue(
        &self,
        task: impl FnOnce(u64, f64) -> RdsTask,
        schema_version: Option<String>,
    ) -> Result<Output, String> {
        let task = self.change(|s| {
            let id = s
                .instance_dbs
                .rds_tasks
                .iter()
                .map(|t| t.id)
                .max()
                .unwrap_or(0)
                + 1;
            let t = task(id, s.now_sim());
            s.record(Event::RdsTaskCreated {
                task_id: t.id,
                task_type: t.task_type.clone(),
                database: t.database.clone(),
                s3_arn: t.s3_arn.clone(),
                schema_version,
            });
            s.instance_dbs.rds_tasks.push(t.clone());
            t
        })?;
        let state = self.state()?;
        Ok(self.task_rows(&state, &[&task]))
    }

    fn rds_backup(&self, state: &State, args: &[(Option<String>, Expr)]) -> Result<Output, String> {
        let (Some(db), Some(arn)) = (
            arg(args, "source_db_name", 0),
            arg(args, "s3_arn_to_backup_to", 1),
        ) else {
            return Err(
                self.rds_error("Both @source_db_name and @s3_arn_to_backup_to are required.")
            );
        };
        if !state.is_octopus(&db) {
            return Err(self.rds_error(&format!("Database '{db}' does not exist.")));
        }
        let files: u32 = arg(args, "number_of_files", usize::MAX)
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        if !(1..=10).contains(&files) || (files > 1 && !arn.contains('*')) {
            return Err(self.rds_error(
                "@number_of_files must be from 1 to 10, and more than 1 needs a * in @s3_arn_to_backup_to.",
            ));
        }
        if Self::running(state) >= MAX_TASKS {
            return Err(self.rds_error(
                "There are already 2 native backup or restore tasks running; wait for one to finish (rds_task_status).",
            ));
        }
        let dir = self.store.dir();
        let members = s3_members(&arn, files);
        let paths: Vec<PathBuf> = members.iter().filter_map(|m| s3_path(dir, m)).collect();
        if paths.len() != members.len() {
            return Err(self.rds_error(&format!(
                "{arn} is not an S3 ARN (arn:aws:s3:::bucket/key)."
            )));
        }
        let overwrite = arg(args, "overwrite_s3_backup_file", usize::MAX).as_deref() == Some("1");
        let exists = paths.iter().any(|p| p.is_file());
        let pages = timing::used_pages(&state.sql);
        let mut rate = state.sql.throughput_mb_s;
        if files > 1 {
            rate *= 1.25;
        }
        let secs = state
            .durations
            .backup
            .unwrap_or_else(|| timing::seconds(pages, rate));
        let error = (exists && !overwrite).then(|| {
            format!("The S3 object {arn} already exists. Use @overwrite_s3_backup_file = 1 to overwrite it.")
        });
        if error.is_none() {
            let body = BackupBody {
                database: state.database.name.clone(),
                taken_at: jiff::Timestamp::now(),
                copy_only: true,
                snapshot: state.snapshot(),
                families: 0,
                family: 0,
                set_id: String::new(),
                seconds: secs,
                pages,
            };
            write_set(&paths, &body).map_err(|e| self.rds_error(&e))?;
        }
        let schema = state.database.schema_version.clone();
        let done = if error.is_some() { 1.0 } else { secs };
        self.queue(
            |id, now| RdsTask {
                id,
                task_type: "BACKUP_DB".into(),
                database: db.clone(),
                s3_arn: arn.clone(),
                created_sim: now,
                done_sim: now + done,
                error,
                finished: false,
            },
            Some(schema),
        )
    }

    fn rds_restore(
        &self,
        state: &State,
        args: &[(Option<String>, Expr)],
    ) -> Result<Output, String> {
        let (Some(db), Some(arn)) = (
            arg(args, "restore_db_name", 0),
            arg(args, "s3_arn_to_restore_from", 1),
        ) else {
            return Err(
                self.rds_error("Both @restore_db_name and @s3_arn_to_restore_from are required.")
            );
        };
        if Self::running(state) >= MAX_TASKS {
            return Err(self.rds_error(
                "There are already 2 native backup or restore tasks running; wait for one to finish (rds_task_status).",
            ));
        }
        let set = read_set(&objects(self.store.dir(), &arn));
        // RDS reports these in the task, not as a statement error.
        let error = if state.database_exists(&db) {
            Some(format!(
                "Database '{db}' already exists. Two databases that differ only by case or accent are not allowed. Choose a different database name."
            ))
        } else if set.is_err() {
            Some(format!("Cannot find or read the S3 object {arn}."))
        } else {
            None
        };
        let secs = match &set {
            Ok(body) if error.is_none() => state
                .durations
                .restore
                .unwrap_or(body.seconds + timing::zero_fill(&state.sql)),
            _ => 1.0,
        };
        self.queue(
            |id, now| RdsTask {
                id,
                task_type: "RESTORE_DB".into(),
                database: db.clone(),
                s3_arn: arn.clone(),
                created_sim: now,
                done_sim: now + secs,
                error,
                finished: false,
            },
            None,
        )
    }
}
