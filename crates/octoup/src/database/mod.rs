//! The database side of an upgrade: the rollback point, made by one of the strategies
//! (`[database] strategy`), and the way back to it. Every statement goes through the
//! configured `sqlcmd` argv; the SQL password reaches it only as `SQLCMDPASSWORD`, and a SAS
//! token only as the `$(OCTOUP_SAS_TOKEN)` scripting variable's environment value.
//!
//! - `native` (self-managed): `BACKUP … TO DISK` (tuned: compression where the edition
//!   allows it, stripes, MAXTRANSFERSIZE/BUFFERCOUNT, STATS progress) during the outage,
//!   then `RESTORE VERIFYONLY`; back: `RESTORE … WITH REPLACE`.
//! - `snapshot` (self-managed, 2016 SP1+): the same verified backup before the outage (the
//!   net against media failure), a database snapshot right after the last stop; back: a
//!   revert to the snapshot.
//! - `azure-copy` (Azure SQL Database): `CREATE DATABASE … AS COPY OF` during the outage;
//!   back: the names swapped.
//! - `url` (Managed Instance, or SQL Server to blob): `BACKUP … TO URL`; back: on Managed
//!   Instance a rename, then `RESTORE … FROM URL`.
//! - `rds`: `msdb.dbo.rds_backup_database` to S3, polled with `rds_task_status`; back: a
//!   rename, then `rds_restore_database`.
//! - `external` (e.g. Cloud SQL): a configured command takes the hosting's backup; the way
//!   back is manual, so it needs `[rollback] enabled = false`.

pub mod detect;
mod external;
mod managed;
mod native;
pub mod point;
mod rds;
pub(crate) mod scratch;
mod snapshot;
pub(crate) mod sql;
pub(crate) mod sqlcmd_output;
pub mod strategy;
pub(crate) mod tsql;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use detect::{Detected, Hosting};
pub use point::RollbackPoint;
pub(crate) use sql::Sql;
pub use strategy::{Choice, Refusal};
pub use tsql::Media;

use crate::config::{Config, ConfigError, DatabaseStrategy, Secret};
use crate::process::runner::{CommandRunner, RunError};
use crate::version::Version;

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{what} failed ({code}): {tail}")]
    Sql {
        what: String,
        code: String,
        tail: String,
    },
    /// The statement ran, but what came back says it did not do its job.
    #[error("{what}: {detail}. {fix}")]
    Failed {
        what: String,
        detail: String,
        fix: String,
    },
    #[error(
        "the rollback point {point} cannot be restored by octoup: {why}. Restore it by hand (docs/database.md, \"Going back by hand\"), then reinstall the original version on every node"
    )]
    Manual { point: String, why: String },
}

impl DatabaseError {
    fn failed(what: &str, detail: impl Into<String>, fix: impl Into<String>) -> DatabaseError {
        DatabaseError::Failed {
            what: what.to_string(),
            detail: detail.into(),
            fix: fix.into(),
        }
    }
}

/// Told the percentage of a long operation as it advances.
pub type Percent = Arc<dyn Fn(u32) + Send + Sync>;

/// The database side of one run: the connection and the chosen strategy's settings.
#[derive(Debug, Clone)]
pub(crate) struct DatabaseSide {
    pub sql: Sql,
    pub strategy: DatabaseStrategy,
    pub hosting: Option<Hosting>,
    pub tuning: tsql::Tuning,
    pub stripes: u32,
    /// Where SQL Server writes disk backups (a path the SQL Server can write).
    pub backup_dir: PathBuf,
    pub snapshot_dir: Option<PathBuf>,
    pub url: Option<String>,
    pub sas_token: Option<Secret>,
    pub rds_s3_arn: Option<String>,
    pub external: Vec<String>,
    /// The timeout of a quick query (a poll, a rename).
    pub quick: Duration,
    /// Between two polls of an asynchronous operation (a copy, an RDS task).
    pub poll: Duration,
}

impl DatabaseSide {
    pub fn new(config: &Config, choice: &Choice) -> Result<DatabaseSide, ConfigError> {
        let d = &config.database;
        Ok(DatabaseSide {
            sql: Sql::from_config(config)?,
            strategy: choice.strategy,
            hosting: choice.hosting,
            tuning: tsql::Tuning {
                compression: choice.compression,
                max_transfer_size: d.max_transfer_size,
                buffer_count: d.buffer_count,
            },
            stripes: d.stripes.max(1),
            backup_dir: d.backup_dir.clone(),
            snapshot_dir: d.snapshot_dir.clone(),
            url: d.url.clone(),
            sas_token: config.sas_token()?,
            rds_s3_arn: d.rds_s3_arn.clone(),
            external: d.external_backup.clone(),
            quick: Duration::from_secs(config.timeouts.command),
            poll: Duration::from_secs(2),
        })
    }

    fn name(&self) -> &str {
        &self.sql.database
    }

    /// The side of the rehearsal SQL Server (`[rehearsal.sql]`), when one is configured: the
    /// same settings over its own connection, self-managed, reading backups from its view
    /// of the share.
    pub fn rehearsal_server(&self, config: &Config) -> Result<Option<DatabaseSide>, ConfigError> {
        let Some(r) = &config.rehearsal.sql else {
            return Ok(None);
        };
        Ok(Some(DatabaseSide {
            sql: Sql::for_rehearsal(config, r)?,
            strategy: DatabaseStrategy::Native,
            hosting: Some(Hosting::SelfManaged),
            backup_dir: r.backup_dir.clone().unwrap_or_default(),
            ..self.clone()
        }))
    }

    /// `OctopusDeploy-2024.1.10-20250304T091244Z` (+ `-1of2` per stripe): the database,
    /// the version it holds and when (the vendor script lost the name to a variable typo).
    fn backup_stem(&self, from: &Version, stamp: &str) -> String {
        format!(
            "{}-{}-{stamp}",
            crate::nodes::file_safe(self.name()),
            crate::nodes::file_safe(&from.to_string())
        )
    }

    /// The full backup the strategy takes (during the outage, or before it with
    /// `snapshot`).
    pub async fn backup(
        &self,
        runner: &dyn CommandRunner,
        from: &Version,
        stamp: &str,
        percent: Option<Percent>,
    ) -> Result<RollbackPoint, DatabaseError> {
        let stem = self.backup_stem(from, stamp);
        match self.strategy {
            DatabaseStrategy::Rds => self.rds_backup(runner, &stem, percent).await,
            DatabaseStrategy::External => self.external_backup(runner, from, stamp).await,
            DatabaseStrategy::Url => {
                self.ensure_credential(runner).await?;
                self.media_backup(runner, Media::Url, &stem, percent).await
            }
            _ => self.media_backup(runner, Media::Disk, &stem, percent).await,
        }
    }

    /// Proves the backup can be restored, as far as the hosting lets octoup look.
    pub async fn verify(
        &self,
        runner: &dyn CommandRunner,
        point: &RollbackPoint,
    ) -> Result<String, DatabaseError> {
        match point {
            RollbackPoint::Backup { media, files, .. } => {
                self.sql
                    .run(
                        runner,
                        "backup verification",
                        tsql::verify_backup(*media, files),
                    )
                    .await?;
                Ok(format!("RESTORE VERIFYONLY passed: {}", point.describe()))
            }
            RollbackPoint::Rds { task_id, object } => {
                self.rds_verify(runner, *task_id, object).await
            }
            RollbackPoint::External { command } => Ok(format!(
                "`{command}` exited 0; the hosting's backup cannot be read back from here"
            )),
            RollbackPoint::Snapshot { .. } | RollbackPoint::Copy { .. } => {
                Ok(format!("{} is online", point.describe()))
            }
        }
    }

    /// The fast rollback point made during the outage: a snapshot or a copy.
    pub async fn hold(
        &self,
        runner: &dyn CommandRunner,
        stamp: &str,
        percent: Option<Percent>,
    ) -> Result<RollbackPoint, DatabaseError> {
        match self.strategy {
            DatabaseStrategy::AzureCopy => self.copy(runner, stamp, percent).await,
            _ => self.snapshot(runner, stamp).await,
        }
    }

    /// Takes the database back to `point`; returns what was done, in words.
    pub async fn restore(
        &self,
        runner: &dyn CommandRunner,
        point: &RollbackPoint,
        stamp: &str,
    ) -> Result<String, DatabaseError> {
        match point {
            RollbackPoint::Backup { media, files, .. } => {
                self.restore_media(runner, *media, files, stamp).await
            }
            RollbackPoint::Snapshot { name } => self.revert(runner, name).await,
            RollbackPoint::Copy { name } => self.swap(runner, name, stamp).await,
            RollbackPoint::Rds { object, .. } => self.rds_restore(runner, object, stamp).await,
            RollbackPoint::External { .. } => Err(DatabaseError::Manual {
                point: point.describe(),
                why: "the hosting took it, and only the hosting restores it".into(),
            }),
        }
    }

    /// Drops a held snapshot or copy (success, `octoup finalize`, or before a restore
    /// from a backup, which a snapshot would block).
    pub async fn release(
        &self,
        runner: &dyn CommandRunner,
        point: &RollbackPoint,
    ) -> Result<String, DatabaseError> {
        match point {
            RollbackPoint::Snapshot { name } | RollbackPoint::Copy { name } => {
                if !self.exists(runner, name).await? {
                    return Ok(format!("{} was already gone", point.describe()));
                }
                self.sql
                    .run(
                        runner,
                        "release the rollback point",
                        tsql::drop_database(name),
                    )
                    .await?;
                Ok(format!("dropped {}", point.describe()))
            }
            _ => Ok(format!("{} stays where it is", point.describe())),
        }
    }

    /// Whether a database of that name exists on the server.
    async fn exists(&self, runner: &dyn CommandRunner, name: &str) -> Result<bool, DatabaseError> {
        Ok(!self
            .rows(runner, "look for a database", tsql::database_state(name))
            .await?
            .is_empty())
    }

    /// A quick statement whose output is read as rows (`-h -1 -W -s "|"`).
    fn listing(&self) -> sql::Call<'static> {
        sql::Call {
            options: sqlcmd_output::OPTIONS,
            quick: Some(self.quick),
            ..sql::Call::default()
        }
    }

    /// Runs a marked query quickly; its rows.
    async fn rows(
        &self,
        runner: &dyn CommandRunner,
        what: &str,
        text: String,
    ) -> Result<Vec<sqlcmd_output::Row>, DatabaseError> {
        let out = self.sql.call(runner, what, text, self.listing()).await?;
        sqlcmd_output::rows(&out.stdout, &out.stderr)
            .map_err(|e| DatabaseError::failed(what, e, "look at the run log for the whole output"))
    }

    /// A statement that changes something but is quick (a rename, a drop).
    async fn quick(
        &self,
        runner: &dyn CommandRunner,
        what: &str,
        text: String,
    ) -> Result<(), DatabaseError> {
        self.sql
            .call(
                runner,
                what,
                text,
                sql::Call {
                    quick: Some(self.quick),
                    ..sql::Call::default()
                },
            )
            .await?;
        Ok(())
    }
}
