//! Scratch copies of the Octopus database for `octoup rehearse`: a verified backup restored
//! under a new name, with every file moved (self-managed SQL Server), `FROM URL` with no
//! options (Managed Instance) or by `rds_restore_database` (Amazon RDS); or `AS COPY OF`
//! (Azure SQL Database). The Octopus database itself is only read (a COPY_ONLY backup, or the
//! copy's source); every statement that changes anything names the scratch database.

use std::path::Path;

use super::sql::Sql;
use super::sqlcmd_output;
use super::tsql::{self, Media};
use super::{DatabaseError, DatabaseSide, Hosting, Percent, RollbackPoint};
use crate::process::runner::CommandRunner;

/// One file of a backup, as `RESTORE FILELISTONLY` lists it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BackupFile {
    pub logical: String,
    pub physical: String,
    /// `D` data, `L` log, `S` FILESTREAM/memory-optimized, `F` full-text.
    pub kind: String,
}

/// Where each file of the copy goes: `<dir>/<copy>_<logical>.<ext>`, one name per file.
pub(crate) fn moves(files: &[BackupFile], copy: &str, dir: &str) -> Vec<(String, String)> {
    let sep = if dir.contains('\\') && !dir.contains('/') {
        '\\'
    } else {
        '/'
    };
    let dir = dir.trim_end_matches(['/', '\\']);
    let mut data = 0;
    files
        .iter()
        .map(|f| {
            let ext = match f.kind.as_str() {
                "L" => "ldf".to_string(),
                "D" => {
                    data += 1;
                    if data == 1 { "mdf" } else { "ndf" }.to_string()
                }
                _ => "data".to_string(),
            };
            let safe = crate::nodes::file_safe(&f.logical);
            (
                f.logical.clone(),
                format!("{dir}{sep}{}_{safe}.{ext}", crate::nodes::file_safe(copy)),
            )
        })
        .collect()
}

impl DatabaseSide {
    /// The files a disk backup holds.
    pub(crate) async fn backup_files(
        &self,
        runner: &dyn CommandRunner,
        files: &[String],
    ) -> Result<Vec<BackupFile>, DatabaseError> {
        let what = "list the backup's files (RESTORE FILELISTONLY)";
        let out = self
            .sql
            .call(
                runner,
                what,
                tsql::file_list(Media::Disk, files),
                self.listing(),
            )
            .await?;
        let rows = sqlcmd_output::plain_rows(&out.stdout, &out.stderr, 3).map_err(|e| {
            DatabaseError::failed(what, e, "look at the run log for the whole output")
        })?;
        let list: Vec<BackupFile> = rows
            .into_iter()
            .filter_map(|r| {
                let kind = r.get(2).cloned().flatten()?;
                (kind.len() == 1).then(|| BackupFile {
                    logical: r.first().cloned().flatten().unwrap_or_default(),
                    physical: r.get(1).cloned().flatten().unwrap_or_default(),
                    kind,
                })
            })
            .filter(|f| !f.logical.is_empty())
            .collect();
        if !list.iter().any(|f| f.kind == "D") {
            return Err(DatabaseError::failed(
                what,
                format!("no data file in the answer ({} rows)", list.len()),
                "look at the run log for the whole output",
            ));
        }
        Ok(list)
    }

    /// Restores `point` as `copy`: a disk backup with its files moved under `data_dir`; a
    /// backup to URL on Managed Instance, which places the files itself; an RDS backup in S3.
    pub(crate) async fn restore_as(
        &self,
        runner: &dyn CommandRunner,
        point: &RollbackPoint,
        copy: &str,
        data_dir: &Path,
        percent: Option<Percent>,
    ) -> Result<String, DatabaseError> {
        const WHAT: &str = "restore the rehearsal copy";
        let files = match point {
            RollbackPoint::Backup {
                media: Media::Disk,
                files,
                ..
            } => files,
            RollbackPoint::Backup {
                media: Media::Url,
                files,
                ..
            } if self.hosting == Some(Hosting::AzureSqlManagedInstance) => {
                // Managed Instance takes no WITH option on a restore (MOVE, REPLACE and STATS
                // are refused: reference §2.3): it names and places the files itself.
                self.sql
                    .run(
                        runner,
                        WHAT,
                        tsql::restore_database_plain(copy, Media::Url, files),
                    )
                    .await?;
                return Ok(format!(
                    "{} restored as {copy} (Managed Instance placed its files)",
                    point.describe()
                ));
            }
            RollbackPoint::Rds { object, .. } => {
                let id = self
                    .rds_restore_task(runner, WHAT, copy, object, percent.as_ref())
                    .await?;
                return Ok(format!("{object} restored as {copy} (RDS task {id})"));
            }
            _ => {
                return Err(DatabaseError::failed(
                    WHAT,
                    format!(
                        "{} cannot be restored under a new name on {}",
                        point.describe(),
                        self.hosting.map(Hosting::name).unwrap_or("this server")
                    ),
                    "rehearse on self-managed SQL Server, Managed Instance or Amazon RDS (docs/rehearsal.md)",
                ));
            }
        };
        let list = self.backup_files(runner, files).await?;
        let moves = moves(&list, copy, &data_dir.to_string_lossy());
        let _ = std::fs::create_dir_all(data_dir);
        self.sql
            .call(
                runner,
                WHAT,
                tsql::restore_as(copy, Media::Disk, files, &moves),
                super::sql::Call {
                    on_line: super::native::progress_hook(percent),
                    ..super::sql::Call::default()
                },
            )
            .await?;
        Ok(format!(
            "{} restored as {copy} ({} files under {})",
            point.describe(),
            moves.len(),
            data_dir.display()
        ))
    }

    /// `CREATE DATABASE [copy] AS COPY OF` the Octopus database (Azure SQL Database).
    pub(crate) async fn copy_as(
        &self,
        runner: &dyn CommandRunner,
        copy: &str,
        percent: Option<Percent>,
    ) -> Result<(), DatabaseError> {
        self.copy_named(runner, copy.to_string(), percent).await?;
        Ok(())
    }

    /// The hosting (from `EngineEdition` and an `rdsadmin` database) and whether the
    /// edition allows `COMPRESSION` (not Express, not Web).
    pub(crate) async fn server_kind(
        &self,
        runner: &dyn CommandRunner,
    ) -> Result<(Option<Hosting>, bool), DatabaseError> {
        let rows = self
            .rows(
                runner,
                "ask the SQL Server its edition",
                "SET NOCOUNT ON; SELECT N'octoup', SERVERPROPERTY('Edition'), SERVERPROPERTY('EngineEdition'), DB_ID(N'rdsadmin');".into(),
            )
            .await?;
        let row = rows.first().cloned().unwrap_or_default();
        let edition = row.first().cloned().flatten().unwrap_or_default();
        let engine = sqlcmd_output::number(&row.get(1).cloned().flatten()).map(|n| n as u32);
        let rdsadmin = row.get(2).cloned().flatten().is_some();
        let hosting = engine.and_then(|e| Hosting::from_engine_edition(e, rdsadmin));
        let lower = edition.to_ascii_lowercase();
        let compression = !(lower.contains("express") || lower.contains("web"));
        Ok((hosting, compression))
    }

    /// Drops the scratch database when it exists (on RDS with `rds_drop_database`, which
    /// Multi-AZ needs); `Ok(true)`: it did.
    pub(crate) async fn drop_scratch(
        &self,
        runner: &dyn CommandRunner,
        copy: &str,
    ) -> Result<bool, DatabaseError> {
        if copy.eq_ignore_ascii_case(self.name()) {
            // Never: the scratch name is generated, but a hand-edited journal could say so.
            return Err(DatabaseError::failed(
                "drop the rehearsal copy",
                format!("{copy} is the Octopus database"),
                "fix the rehearsal's journal by hand",
            ));
        }
        let rds = self.hosting == Some(Hosting::AmazonRds);
        if rds {
            self.rds_wait_pending(runner, copy).await?;
        }
        if !self.exists(runner, copy).await? {
            return Ok(false);
        }
        let text = if rds {
            tsql::rds_drop_database(copy)
        } else {
            tsql::drop_database(copy)
        };
        self.quick(runner, "drop the rehearsal copy", text).await?;
        Ok(true)
    }

    /// The connection with the copy as its database (`-d`), for hostings where `USE`
    /// is refused (Azure SQL Database).
    pub(crate) fn sql_in(&self, database: &str) -> Sql {
        let mut sql = self.sql.clone();
        let mut argv = Vec::with_capacity(sql.sqlcmd.len() + 2);
        let mut it = sql.sqlcmd.iter();
        let mut replaced = false;
        while let Some(a) = it.next() {
            if a == "-d" {
                it.next();
                argv.push("-d".to_string());
                argv.push(database.to_string());
                replaced = true;
            } else if a.len() > 2 && a.starts_with("-d") {
                argv.push(format!("-d{database}"));
                replaced = true;
            } else {
                argv.push(a.clone());
            }
        }
        if !replaced {
            argv.push("-d".into());
            argv.push(database.into());
        }
        sql.sqlcmd = argv;
        sql.database = database.to_string();
        sql
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(logical: &str, kind: &str) -> BackupFile {
        BackupFile {
            logical: logical.into(),
            physical: format!("C:\\Data\\{logical}.mdf"),
            kind: kind.into(),
        }
    }

    #[test]
    fn every_file_moves_under_its_own_name() {
        let files = [
            file("OctopusDeploy", "D"),
            file("Extra", "D"),
            file("OctopusDeploy_log", "L"),
        ];
        let m = moves(&files, "OctopusRehearsal_1", "D:\\SQLData\\rehearsal\\");
        assert_eq!(
            m,
            vec![
                (
                    "OctopusDeploy".into(),
                    "D:\\SQLData\\rehearsal\\OctopusRehearsal_1_OctopusDeploy.mdf".into()
                ),
                (
                    "Extra".into(),
                    "D:\\SQLData\\rehearsal\\OctopusRehearsal_1_Extra.ndf".into()
                ),
                (
                    "OctopusDeploy_log".into(),
                    "D:\\SQLData\\rehearsal\\OctopusRehearsal_1_OctopusDeploy_log.ldf".into()
                ),
            ]
        );
        let unix = moves(&files[..1], "c", "/var/opt/mssql/data");
        assert_eq!(unix[0].1, "/var/opt/mssql/data/c_OctopusDeploy.mdf");
    }
}
