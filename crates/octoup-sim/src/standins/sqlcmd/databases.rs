//! The other databases a rollback point needs: snapshots (`CREATE DATABASE … AS SNAPSHOT
//! OF`, revert, drop), Azure SQL Database copies (`AS COPY OF`), renames (`ALTER DATABASE …
//! MODIFY NAME`) and credentials for backups to URL; with the refusals of each hosting.
//! Sources: reference §2–§3 (MS snapshot, revert, database-copy and MI pages).

use std::path::Path;

use sha2::{Digest, Sha256};

use super::execute::Sql;
use crate::history::Event;
use crate::spec::Hosting;
use crate::standins::{Output, apply_fault};
use crate::state::{Credential, OtherDatabase, OtherKind};

/// Simulated seconds a snapshot takes to create: sparse files, whatever the size.
const SNAPSHOT_SECONDS: f64 = 3.0;
/// A revert copies back only the pages changed since the snapshot, and rebuilds the log.
const REVERT_SECONDS: f64 = 10.0;

/// `ProductVersion` as numbers (`13.0.4001.0` → [13, 0, 4001, 0]).
fn version_parts(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

impl Sql<'_> {
    fn no_create_database(&self) -> String {
        self.msg(
            262,
            14,
            "CREATE DATABASE permission denied in database 'master'.",
        )
    }

    fn already_exists(&self, name: &str) -> String {
        self.msg(
            1801,
            16,
            &format!("Database '{name}' already exists. Choose a different database name."),
        )
    }

    pub(super) fn create_snapshot(
        &self,
        name: &str,
        files: &[(String, String)],
        source: &str,
    ) -> Result<Output, String> {
        let state = self.state()?;
        let sql = &state.sql;
        match sql.hosting {
            Hosting::AzureSqlDatabase | Hosting::AzureSqlManagedInstance => {
                // Not supported on Azure SQL Database or MI (features-comparison page).
                return Err(self.msg(
                    40517,
                    16,
                    "Keyword or statement option 'AS SNAPSHOT OF' is not supported in this version of SQL Server.",
                ));
            }
            Hosting::AmazonRds | Hosting::GoogleCloudSql => {
                // RDS: "Amazon RDS supports only DB instance snapshots"; neither gives the
                // rights a snapshot needs.
                return Err(self.no_create_database());
            }
            Hosting::SelfManaged => {}
        }
        let edition = sql.edition();
        let any_version = edition.starts_with("Enterprise") || edition.starts_with("Developer");
        // Every edition from 2016 SP1 (13.0.4001); Enterprise and Developer always.
        if !any_version && version_parts(&sql.product_version()) < vec![13, 0, 4001] {
            return Err(self.msg(
                1844,
                16,
                &format!("Database Snapshot is not supported on {edition}."),
            ));
        }
        if !sql.can_create_database {
            return Err(self.no_create_database());
        }
        if !state.is_octopus(source) {
            return Err(self.msg(
                911,
                16,
                &format!(
                    "Database '{source}' does not exist. Make sure that the name is entered correctly."
                ),
            ));
        }
        if state.database_exists(name) {
            return Err(self.already_exists(name));
        }
        if sql.memory_optimized {
            // Snapshots page: no MEMORY_OPTIMIZED_DATA filegroup (message 1844's form).
            return Err(self.msg(
                1844,
                16,
                "Database Snapshot is not supported on databases with a MEMORY_OPTIMIZED_DATA filegroup.",
            ));
        }
        for logical in sql.data_file_names(&state.database.name) {
            if !files.iter().any(|(l, _)| l.eq_ignore_ascii_case(&logical)) {
                return Err(self.msg(
                    5127,
                    16,
                    &format!("All files must be specified for database snapshot creation. Missing the file \"{logical}\"."),
                ));
            }
        }
        // The data files' directory exists on a real server.
        let _ = std::fs::create_dir_all(super::execute::data_dir(self.store.dir()));
        for (_, file) in files {
            let path = Path::new(file);
            let created = path
                .parent()
                .is_some_and(|p| p.as_os_str().is_empty() || p.is_dir())
                && std::fs::write(path, b"").is_ok();
            if !created {
                return Err(self.msg(
                    5123,
                    16,
                    &format!("CREATE FILE encountered operating system error 3(The system cannot find the path specified.) while attempting to open or create the physical file '{file}'."),
                ));
            }
        }
        state.clock().sleep_sim(SNAPSHOT_SECONDS);
        self.change(|s| {
            let content = s.snapshot();
            let schema_version = content.schema_version.clone();
            s.instance_dbs.databases.push(OtherDatabase {
                name: name.to_string(),
                kind: OtherKind::Snapshot {
                    source: s.database.name.clone(),
                },
                content,
                created_sim: s.now_sim(),
                files: Vec::new(),
            });
            s.record(Event::DbSnapshotCreated {
                snapshot: name.to_string(),
                source: s.database.name.clone(),
                schema_version,
            });
        })?;
        // After the snapshot exists: a `delay` here is octoup dying before it journals it.
        self.fault(
            "sql-snapshot",
            "the injected sql-snapshot fault",
            "CREATE DATABASE AS SNAPSHOT",
        )?;
        Ok(Output::ok(""))
    }

    pub(super) fn revert(&self, database: &str, snapshot: &str) -> Result<Output, String> {
        const WHAT: &str = "RESTORE DATABASE";
        let state = self.state()?;
        self.refuse(&state, "RESTORE", database, super::parse::Media::Disk)?;
        let snapshots = state.instance_dbs.snapshots_of(database);
        let target = snapshots
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(snapshot));
        // Revert page: only with one snapshot, the one reverted to.
        let Some(target) = target.filter(|_| snapshots.len() == 1) else {
            return Err(self.terminating(
                3137,
                "Database cannot be reverted. Either the primary or the snapshot names are improperly specified, all other snapshots have not been dropped, or there are missing files.",
                WHAT,
            ));
        };
        if state.sql.filestream {
            // Snapshots page: FILESTREAM filegroups block a revert. Number as for 3137.
            return Err(self.terminating(
                3137,
                "Database cannot be reverted because it has a FILESTREAM filegroup.",
                WHAT,
            ));
        }
        if Self::busy(&state) {
            return Err(self.terminating(
                3101,
                "Exclusive access could not be obtained because the database is in use.",
                WHAT,
            ));
        }
        state.clock().sleep_sim(REVERT_SECONDS);
        let content = target.content.clone();
        let name = target.name.clone();
        self.change(|s| {
            s.record(Event::DbSnapshotReverted {
                snapshot: name.clone(),
                source: s.database.name.clone(),
                from_schema: s.database.schema_version.clone(),
                to_schema: content.schema_version.clone(),
            });
            s.restore(&content, &format!("snapshot:{name}"));
        })?;
        Ok(Output::ok(""))
    }

    pub(super) fn create_copy(&self, name: &str, source: &str) -> Result<Output, String> {
        let state = self.state()?;
        if state.sql.hosting != Hosting::AzureSqlDatabase {
            // `AS COPY OF` exists only in Azure SQL Database's CREATE DATABASE.
            return Err(self.msg(102, 15, "Incorrect syntax near 'COPY'."));
        }
        if !state.sql.can_create_database {
            // Server admin or a dbmanager member (database-copy page).
            return Err(self.no_create_database());
        }
        if !state.is_octopus(source) {
            return Err(self.msg(
                40861,
                16,
                &format!("The database '{source}' does not exist on the server."),
            ));
        }
        if state.database_exists(name) {
            return Err(self.already_exists(name));
        }
        let now = state.now_sim();
        if state.instance_dbs.databases.iter().any(|d| {
            matches!(&d.kind, OtherKind::Copy { source: s, done_sim, .. } if s.eq_ignore_ascii_case(source) && *done_sim > now)
        }) {
            return Err(self.msg(
                40565,
                16,
                &format!("Database copy limit per database reached. The database '{source}' cannot have more than 1 concurrent database copies."),
            ));
        }
        // An injected `sql-copy` fault makes the copy end SUSPECT.
        let fails = apply_fault(self.store, "sql-copy", None)
            .map_err(|e| e.to_string())?
            .is_some();
        let secs = state.sql.size_gb * 1e9 / super::timing::MB / state.sql.copy_mb_s;
        self.change(|s| {
            let content = s.snapshot();
            let schema_version = content.schema_version.clone();
            let now = s.now_sim();
            s.instance_dbs.databases.push(OtherDatabase {
                name: name.to_string(),
                kind: OtherKind::Copy {
                    source: s.database.name.clone(),
                    started_sim: now,
                    done_sim: now + secs,
                    fails,
                    announced: false,
                },
                content,
                created_sim: now,
                files: Vec::new(),
            });
            s.record(Event::DbCopyStarted {
                copy: name.to_string(),
                source: s.database.name.clone(),
                schema_version,
            });
        })?;
        Ok(Output::ok(""))
    }

    pub(super) fn drop_database(&self, name: &str) -> Result<Output, String> {
        self.drop_database_as(name, false)
    }

    /// `DROP DATABASE`, or RDS's `rds_drop_database` (`procedure`), which a Multi-AZ
    /// instance needs: there every database is mirrored (or in an availability group) to
    /// the standby, and SQL Server refuses to drop a mirrored database.
    pub(super) fn drop_database_as(&self, name: &str, procedure: bool) -> Result<Output, String> {
        let state = self.state()?;
        if state.sql.hosting == Hosting::AmazonRds
            && state.sql.multi_az
            && !procedure
            && state.database_exists(name)
        {
            // SQL Server's message for a mirrored database (its number unverified here).
            return Err(self.msg(
                3743,
                16,
                &format!("The database '{name}' is enabled for database mirroring. Database mirroring must be removed before you drop the database."),
            ));
        }
        if !state.database_exists(name) {
            return Err(self.msg(
                3701,
                11,
                &format!("Cannot drop the database '{name}', because it does not exist or you do not have permission."),
            ));
        }
        if name.eq_ignore_ascii_case(&state.database.name) && state.instance_dbs.get(name).is_none()
        {
            if let Some(snap) = state.instance_dbs.snapshots_of(name).first() {
                return Err(self.msg(
                    3709,
                    16,
                    &format!("Cannot drop the database while the database snapshot \"{}\" refers to it. Drop that database first.", snap.name),
                ));
            }
            if Self::busy(&state) {
                return Err(self.msg(
                    3702,
                    16,
                    &format!("Cannot drop database \"{name}\" because it is currently in use."),
                ));
            }
            self.change(|s| {
                s.instance_dbs.octopus_absent = true;
                s.record(Event::DbDropped {
                    database: name.to_string(),
                });
            })?;
            return Ok(Output::ok(""));
        }
        self.change(|s| s.drop_database(name))?;
        Ok(Output::ok(""))
    }

    /// `ALTER DATABASE … MODIFY NAME` (and RDS's `rds_modify_db_name`, `how`).
    pub(super) fn rename(&self, from: &str, to: &str, how: &str) -> Result<Output, String> {
        let state = self.state()?;
        let no_access = || {
            self.msg(
                5011,
                14,
                &format!("User does not have permission to alter database '{from}', the database does not exist, or the database is not in a state that allows access checks."),
            )
        };
        // RDS renames only through rdsadmin.dbo.rds_modify_db_name.
        if state.sql.hosting == Hosting::AmazonRds && how == "ALTER DATABASE" {
            return Err(no_access());
        }
        // Azure SQL Database: only the server admin or a dbmanager member alters a
        // database (ALTER DATABASE, Azure SQL Database: "Permissions").
        if state.sql.hosting == Hosting::AzureSqlDatabase && !state.sql.can_create_database {
            return Err(no_access());
        }
        if !state.database_exists(from) {
            return Err(no_access());
        }
        let copying = state.instance_dbs.get(from).is_some_and(|d| {
            matches!(&d.kind, OtherKind::Copy { done_sim, fails, .. } if *done_sim > state.now_sim() || *fails)
        });
        if copying {
            return Err(no_access());
        }
        if state.database_exists(to) {
            return Err(self.already_exists(to));
        }
        let octopus = &state.database.name;
        if (from.eq_ignore_ascii_case(octopus) || to.eq_ignore_ascii_case(octopus))
            && Self::busy(&state)
        {
            return Err(self.msg(
                5030,
                16,
                "The database could not be exclusively locked to perform the operation.",
            ));
        }
        self.change(|s| s.rename_database(from, to))?;
        Ok(Output::ok(format!(
            "The database name '{to}' has been set."
        )))
    }

    pub(super) fn credential(
        &self,
        alter: bool,
        name: &str,
        identity: &str,
        secret: &str,
    ) -> Result<Output, String> {
        let state = self.state()?;
        let statement = if alter {
            "ALTER CREDENTIAL"
        } else {
            "CREATE CREDENTIAL"
        };
        match state.sql.hosting {
            Hosting::AzureSqlDatabase => {
                return Err(self.msg(
                    40510,
                    16,
                    &format!(
                        "Statement '{statement}' is not supported in this version of SQL Server."
                    ),
                ));
            }
            Hosting::AmazonRds | Hosting::GoogleCloudSql => {
                return Err(self.msg(
                    15247,
                    16,
                    "User does not have permission to perform this action.",
                ));
            }
            _ => {}
        }
        let exists = state
            .instance_dbs
            .credentials
            .iter()
            .any(|c| c.name == name);
        if alter && !exists {
            return Err(self.msg(
                15151,
                16,
                &format!("Cannot alter the credential '{name}', because it does not exist or you do not have permission."),
            ));
        }
        if !alter && exists {
            return Err(self.msg(
                15025,
                16,
                &format!("The credential '{name}' already exists."),
            ));
        }
        // The secret typed into the query (not a `$(NAME)` from the environment) is on
        // sqlcmd's command line: a leak (I5).
        let leaked = secret.len() >= 8 && self.raw_query.contains(secret);
        let secret_sha256 = hex::encode(Sha256::digest(secret.as_bytes()));
        self.change(|s| {
            s.instance_dbs.credentials.retain(|c| c.name != name);
            s.instance_dbs.credentials.push(Credential {
                name: name.to_string(),
                identity: identity.to_string(),
                secret_sha256,
            });
            s.record(Event::CredentialSet {
                name: name.to_string(),
                identity: identity.to_string(),
                altered: alter,
            });
            if leaked {
                s.record(Event::SecretLeak {
                    place: "command line of sqlcmd".into(),
                    detail: format!("the SECRET of credential {name} was written into the query instead of a $(NAME) scripting variable"),
                });
            }
        })?;
        Ok(Output::ok(""))
    }
}
