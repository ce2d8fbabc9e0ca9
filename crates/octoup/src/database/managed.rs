//! Azure SQL Database: the copy made during the outage (`CREATE DATABASE … AS COPY OF`,
//! asynchronous, polled in `sys.databases` and `sys.dm_database_copies`), and the rollback
//! that swaps the names. Facts: reference §2.2.

use super::point::sibling;
use super::tsql;
use super::{DatabaseError, DatabaseSide, Percent, RollbackPoint};
use crate::process::clock::Deadline;
use crate::process::runner::CommandRunner;

impl DatabaseSide {
    /// `state_desc` of a database, `None` when there is none of that name.
    pub(super) async fn state(
        &self,
        runner: &dyn CommandRunner,
        name: &str,
    ) -> Result<Option<String>, DatabaseError> {
        Ok(self
            .rows(runner, "database state", tsql::database_state(name))
            .await?
            .into_iter()
            .next()
            .and_then(|r| r.first().cloned().flatten()))
    }

    pub(super) async fn copy(
        &self,
        runner: &dyn CommandRunner,
        stamp: &str,
        percent: Option<Percent>,
    ) -> Result<RollbackPoint, DatabaseError> {
        let name = sibling(self.name(), "", stamp);
        self.copy_named(runner, name, percent).await
    }

    /// `CREATE DATABASE [name] AS COPY OF` the Octopus database, waited for until ONLINE.
    pub(super) async fn copy_named(
        &self,
        runner: &dyn CommandRunner,
        name: String,
        percent: Option<Percent>,
    ) -> Result<RollbackPoint, DatabaseError> {
        let db = self.name();
        // A resumed run finds the copy it started: killing the statement does not stop a
        // copy, so it is waited for rather than started twice.
        if self.state(runner, &name).await?.is_none() {
            self.quick(
                runner,
                "start the database copy",
                tsql::create_copy(db, &name),
            )
            .await?;
        }
        let deadline = Deadline::after(self.sql.timeout);
        loop {
            match self.state(runner, &name).await?.as_deref() {
                Some(s) if s.eq_ignore_ascii_case("ONLINE") => {
                    if let Some(f) = &percent {
                        f(100);
                    }
                    return Ok(RollbackPoint::Copy { name });
                }
                Some(s) if s.eq_ignore_ascii_case("COPYING") => {
                    let progress = self
                        .rows(runner, "copy progress", tsql::copy_progress(&name))
                        .await?;
                    if let Some(row) = progress.first() {
                        if let Some(code) = row.get(1).cloned().flatten().filter(|c| c != "0") {
                            let desc = row.get(2).cloned().flatten().unwrap_or_default();
                            return Err(DatabaseError::failed(
                                "database copy",
                                format!("the copy {name} failed with error {code}: {desc}"),
                                format!(
                                    "drop it (DROP DATABASE [{name}]) and run `octoup upgrade` again"
                                ),
                            ));
                        }
                        if let (Some(f), Some(p)) = (
                            &percent,
                            super::sqlcmd_output::number(&row.first().cloned().flatten()),
                        ) {
                            f(p as u32);
                        }
                    }
                }
                state => {
                    return Err(DatabaseError::failed(
                        "database copy",
                        match state {
                            Some(s) => format!("the copy {name} is {s}"),
                            None => format!("the copy {name} disappeared"),
                        },
                        format!(
                            "drop it if it is still there (DROP DATABASE [{name}]) and run `octoup upgrade` again: a SUSPECT copy failed"
                        ),
                    ));
                }
            }
            if deadline.expired() {
                return Err(DatabaseError::failed(
                    "database copy",
                    format!(
                        "the copy {name} was still COPYING after {}",
                        crate::process::clock::human_duration(self.sql.timeout)
                    ),
                    "raise [timeouts] backup, or look at sys.dm_operation_status on the server",
                ));
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// The upgraded database is renamed away (and kept), the copy takes its name. Each
    /// rename is checked first, so a re-run after a crash in between finishes the swap.
    pub(super) async fn swap(
        &self,
        runner: &dyn CommandRunner,
        copy: &str,
        stamp: &str,
    ) -> Result<String, DatabaseError> {
        let db = self.name();
        let failed = sibling(db, "failed_", stamp);
        if self.state(runner, copy).await?.is_none() {
            if self.state(runner, &failed).await?.is_some()
                && self.state(runner, db).await?.is_some()
            {
                return Ok(format!(
                    "{db} is the copy already; the upgraded database is kept as {failed}"
                ));
            }
            return Err(DatabaseError::failed(
                "swap in the copy",
                format!("the copy {copy} is gone"),
                "restore the database from the hosting's point-in-time backups (docs/database.md, \"azure-copy\")",
            ));
        }
        if self.state(runner, db).await?.is_some() {
            self.quick(
                runner,
                "rename the upgraded database",
                tsql::rename_database(db, &failed),
            )
            .await?;
        }
        self.quick(runner, "rename the copy", tsql::rename_database(copy, db))
            .await?;
        Ok(format!(
            "{db} is the copy taken during the outage again; the upgraded database is kept as {failed} (drop it once nobody needs it)"
        ))
    }
}
