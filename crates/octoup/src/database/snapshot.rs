//! The database snapshot: made right after the last node stops (seconds, whatever the
//! size), reverted to for a rollback, dropped when released. Facts: reference §3.

use super::point::sibling;
use super::tsql;
use super::{DatabaseError, DatabaseSide, RollbackPoint};
use crate::process::runner::CommandRunner;

/// The sparse file for data file `logical` (at `physical` on the SQL Server): in `dir`, or
/// next to the data file. The SQL Server's own separator is kept: it may be Windows while
/// octoup runs elsewhere.
pub(crate) fn sparse_path(physical: &str, dir: Option<&str>, logical: &str, stamp: &str) -> String {
    let base = dir
        .map(str::to_string)
        .unwrap_or_else(|| match physical.rfind(['\\', '/']) {
            Some(i) => physical[..i].to_string(),
            None => String::new(),
        });
    let sep = if base.contains('\\') { '\\' } else { '/' };
    let file = format!(
        "{}_{}.ss",
        crate::nodes::file_safe(logical),
        crate::nodes::file_safe(stamp)
    );
    if base.is_empty() {
        file
    } else {
        format!("{}{sep}{file}", base.trim_end_matches(['\\', '/']))
    }
}

impl DatabaseSide {
    pub(super) async fn snapshot(
        &self,
        runner: &dyn CommandRunner,
        stamp: &str,
    ) -> Result<RollbackPoint, DatabaseError> {
        let db = self.name();
        let name = sibling(db, "", stamp);
        // A resumed run finds the snapshot it made before it died (the name carries the
        // run's stamp, so nobody else made it): `CREATE DATABASE … AS SNAPSHOT` is one
        // statement, and an ONLINE snapshot is whole. Nodes stay stopped until this phase
        // ends, so it still shows the database as the outage began.
        if self.adopt(runner, &name).await? {
            return Ok(RollbackPoint::Snapshot { name });
        }
        let others: Vec<String> = self
            .rows(runner, "look for other snapshots", tsql::snapshots_of(db))
            .await?
            .into_iter()
            .filter_map(|r| r.first().cloned().flatten())
            .filter(|other| *other != name)
            .collect();
        if !others.is_empty() {
            return Err(DatabaseError::failed(
                "database snapshot",
                format!(
                    "{db} already has a snapshot ({}); a revert needs octoup's to be the only one",
                    others.join(", ")
                ),
                format!(
                    "drop it (DROP DATABASE [{}]) if nobody needs it, or set [database] strategy = \"native\"",
                    others[0]
                ),
            ));
        }
        let files: Vec<(String, String)> = self
            .rows(runner, "list the data files", tsql::data_files(db))
            .await?
            .into_iter()
            .filter_map(|r| Some((r.first().cloned().flatten()?, r.get(1).cloned().flatten()?)))
            .collect();
        if files.is_empty() {
            return Err(DatabaseError::failed(
                "database snapshot",
                format!("sys.master_files lists no data file of {db}"),
                "check [database] name and that the login has VIEW ANY DEFINITION",
            ));
        }
        let dir = self
            .snapshot_dir
            .as_ref()
            .map(|d| d.to_string_lossy().into_owned());
        let sparse: Vec<(String, String)> = files
            .iter()
            .map(|(logical, physical)| {
                (
                    logical.clone(),
                    sparse_path(physical, dir.as_deref(), logical, stamp),
                )
            })
            .collect();
        let made = self
            .sql
            .run(
                runner,
                "database snapshot",
                tsql::create_snapshot(db, &name, &sparse),
            )
            .await;
        match made {
            Ok(_) => Ok(RollbackPoint::Snapshot { name }),
            // The `CREATE` an earlier, killed octoup left running may have made it meanwhile.
            Err(_) if self.adopt(runner, &name).await? => Ok(RollbackPoint::Snapshot { name }),
            Err(e) => Err(e),
        }
    }

    /// Whether this run's own snapshot `name` is there and ONLINE (so whole). One that is
    /// there in another state was interrupted half-way: it is refused with the way out.
    async fn adopt(&self, runner: &dyn CommandRunner, name: &str) -> Result<bool, DatabaseError> {
        match self.state(runner, name).await? {
            None => Ok(false),
            Some(s) if s.eq_ignore_ascii_case("ONLINE") => Ok(true),
            Some(s) => Err(DatabaseError::failed(
                "database snapshot",
                format!("this run's snapshot {name} is {s}, not ONLINE"),
                format!("drop it (DROP DATABASE [{name}]) and run `octoup upgrade` again"),
            )),
        }
    }

    /// Reverts to the snapshot, then drops it (a revert keeps it, and a later upgrade would
    /// find it in the way).
    pub(super) async fn revert(
        &self,
        runner: &dyn CommandRunner,
        name: &str,
    ) -> Result<String, DatabaseError> {
        if !self.exists(runner, name).await? {
            return Err(DatabaseError::failed(
                "revert to the snapshot",
                format!("the snapshot {name} is gone"),
                "restore the backup taken before the outage instead (docs/database.md, \"snapshot\"): it misses what Octopus wrote between it and the outage",
            ));
        }
        self.sql
            .run(
                runner,
                "revert to the snapshot",
                tsql::revert_to_snapshot(self.name(), name),
            )
            .await?;
        self.quick(runner, "drop the snapshot", tsql::drop_database(name))
            .await?;
        Ok(format!(
            "reverted {} to the snapshot {name} (then dropped it); the revert rebuilt the log, so take a full backup when the DBA's log chain matters",
            self.name()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_files_go_next_to_the_data_file_with_its_separator() {
        assert_eq!(
            sparse_path(r"D:\Data\Octo.mdf", None, "Octo", "s1"),
            r"D:\Data\Octo_s1.ss"
        );
        assert_eq!(
            sparse_path("/var/opt/mssql/data/Octo.mdf", None, "Octo", "s1"),
            "/var/opt/mssql/data/Octo_s1.ss"
        );
        assert_eq!(
            sparse_path(r"D:\Data\Octo.mdf", Some(r"E:\Snaps\"), "Octo 2", "s1"),
            r"E:\Snaps\Octo_2_s1.ss"
        );
        assert_eq!(sparse_path("Octo.mdf", None, "Octo", "s"), "Octo_s.ss");
    }
}
