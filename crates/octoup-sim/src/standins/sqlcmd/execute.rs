//! Running a parsed statement against the simulated database: backups written as files
//! (a header line with the SHA-256 of the JSON snapshot that follows), verified and restored
//! with SQL Server's messages and error numbers.

use std::cell::{Cell, RefCell};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::parse::Statement;
use super::select::{Format, Server, format};
use crate::history::Event;
use crate::spec::Hosting;
use crate::standins::{Output, apply_fault};
use crate::state::{BackupRecord, DatabaseSnapshot, ServiceState, State, Store, StoreError};

/// First line of a simulated backup file.
const BACKUP_MAGIC: &str = "OCTOUP-SIM-BAK/1";

/// The contents of a simulated backup file (after the header line).
#[derive(Debug, Serialize, Deserialize)]
struct BackupBody {
    database: String,
    taken_at: jiff::Timestamp,
    copy_only: bool,
    snapshot: DatabaseSnapshot,
}

/// The root of the volume `dir` is on, as `sys.dm_os_volume_stats` names a mount point
/// (`/`, `C:\\`).
fn volume_root(dir: &Path) -> String {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    dir.ancestors()
        .last()
        .map(|root| {
            let r = root.display().to_string();
            if r.ends_with(['/', '\\']) {
                r
            } else {
                format!("{r}\\")
            }
        })
        .unwrap_or_else(|| "/".into())
}

pub(super) struct Sql<'a> {
    pub store: &'a Store,
    pub server: String,
    /// Exit code of an `exit:N` fault that fired.
    pub fault_code: Cell<Option<i32>>,
    /// The connection's login (`-U`, or the Windows account).
    pub login: String,
    /// The database in context (`-d`, then `USE`).
    pub current: RefCell<String>,
    pub nocount: Cell<bool>,
    pub format: Format,
}

impl Sql<'_> {
    /// A SQL Server error message as sqlcmd prints it.
    pub fn msg(&self, number: u32, level: u32, text: &str) -> String {
        format!(
            "Msg {number}, Level {level}, State 1, Server {}, Line 1\n{text}",
            self.server
        )
    }

    fn terminating(&self, number: u32, text: &str, what: &str) -> String {
        self.terminating_at(number, 16, text, what)
    }

    fn terminating_at(&self, number: u32, level: u32, text: &str, what: &str) -> String {
        format!(
            "{}\n{}",
            self.msg(number, level, text),
            self.msg(3013, 16, &format!("{what} is terminating abnormally."))
        )
    }

    pub fn execute(&self, statement: Statement) -> Result<Output, String> {
        match statement {
            Statement::Backup {
                database,
                path,
                options,
            } => self.backup(&database, &path, &options),
            Statement::VerifyOnly { path } => self.verify(&path),
            Statement::Restore {
                database,
                path,
                options,
            } => self.restore(&database, &path, &options),
            Statement::SetNocount(on) => {
                self.nocount.set(on);
                Ok(Output::ok(""))
            }
            Statement::Use(db) => self.use_db(&db),
            Statement::Select(q) => {
                let state = self.store.snapshot().map_err(|e| e.to_string())?;
                let server = Server {
                    state: &state,
                    current: self.current.borrow().clone(),
                    login: self.login.clone(),
                    volume: volume_root(self.store.dir()),
                };
                match server.select(&q) {
                    Ok((columns, rows)) => Ok(Output::ok(format(
                        &columns,
                        &rows,
                        &self.format,
                        self.nocount.get(),
                    ))),
                    Err((number, level, text)) => Err(self.refused(number, level, &text)),
                }
            }
        }
    }

    /// A refused query; a permission error is followed by SQL Server's generic one.
    fn refused(&self, number: u32, level: u32, text: &str) -> String {
        let mut m = self.msg(number, level, text);
        if number == 300 {
            m.push('\n');
            m.push_str(&self.msg(
                297,
                16,
                "The user does not have permission to perform this action.",
            ));
        }
        m
    }

    fn use_db(&self, db: &str) -> Result<Output, String> {
        let state = self.store.snapshot().map_err(|e| e.to_string())?;
        let known = [
            "master",
            "tempdb",
            "model",
            "msdb",
            state.database.name.as_str(),
        ]
        .iter()
        .any(|d| d.eq_ignore_ascii_case(db))
            || (state.sql.hosting == Hosting::AmazonRds && db.eq_ignore_ascii_case("rdsadmin"));
        if !known {
            return Err(self.msg(
                911,
                16,
                &format!(
                    "Database '{db}' does not exist. Make sure that the name is entered correctly."
                ),
            ));
        }
        if state.sql.hosting == Hosting::AzureSqlDatabase
            && !self.current.borrow().eq_ignore_ascii_case(db)
        {
            return Err(self.msg(
                40508,
                16,
                "USE statement is not supported to switch between databases. Use a new connection to connect to a different database.",
            ));
        }
        *self.current.borrow_mut() = db.to_string();
        Ok(Output::ok(format!("Changed database context to '{db}'.")))
    }

    /// What the hosting and the login's rights refuse of a backup statement, as SQL Server
    /// words it: `Err` with the messages.
    fn refuse(&self, state: &State, statement: &str, database: &str) -> Result<(), String> {
        let sql = &state.sql;
        let what = match statement {
            "BACKUP" => "BACKUP DATABASE",
            "VERIFYONLY" => "VERIFY DATABASE",
            _ => "RESTORE DATABASE",
        };
        match sql.hosting {
            Hosting::AzureSqlDatabase => {
                let shown = if statement == "VERIFYONLY" {
                    "RESTORE VERIFYONLY"
                } else {
                    what
                };
                return Err(self.msg(
                    40510,
                    16,
                    &format!("Statement '{shown}' is not supported in this version of SQL Server."),
                ));
            }
            Hosting::AzureSqlManagedInstance => {
                return Err(self.terminating(
                    41914,
                    "BACKUP and RESTORE to or from DISK are not supported on SQL Database Managed Instance. Use BACKUP TO URL WITH COPY_ONLY and RESTORE FROM URL.",
                    what,
                ));
            }
            Hosting::AmazonRds => {
                let text = if statement == "BACKUP" {
                    format!("BACKUP DATABASE permission denied in database '{database}'.")
                } else {
                    "CREATE DATABASE permission denied in database 'master'.".to_string()
                };
                return Err(self.terminating_at(262, 14, &text, what));
            }
            Hosting::SelfManaged => {}
        }
        match statement {
            "BACKUP" if !sql.can_backup => Err(self.terminating_at(
                262,
                14,
                &format!("BACKUP DATABASE permission denied in database '{database}'."),
                what,
            )),
            "VERIFYONLY" if !sql.can_create_database => Err(self.terminating_at(
                262,
                14,
                "CREATE DATABASE permission denied in database 'master'.",
                what,
            )),
            "RESTORE" if !sql.can_restore => Err(self.terminating_at(
                3110,
                14,
                &format!("User does not have permission to RESTORE database '{database}'."),
                what,
            )),
            _ => Ok(()),
        }
    }

    fn fault(&self, op: &str, text: &str, what: &str) -> Result<(), String> {
        match apply_fault(self.store, op, None).map_err(|e| e.to_string())? {
            Some(code) => {
                self.fault_code.set(Some(code));
                Err(self.terminating(3202, text, what))
            }
            None => Ok(()),
        }
    }

    fn backup(&self, database: &str, path: &str, options: &[String]) -> Result<Output, String> {
        let state = self.store.snapshot().map_err(|e| e.to_string())?;
        if !database.eq_ignore_ascii_case(&state.database.name) {
            return Err(self.terminating(
                911,
                &format!("Database '{database}' does not exist. Make sure that the name is entered correctly."),
                "BACKUP DATABASE",
            ));
        }
        let target = Path::new(path);
        if target
            .parent()
            .is_some_and(|p| !p.as_os_str().is_empty() && !p.is_dir())
        {
            return Err(self.terminating(
                3201,
                &format!("Cannot open backup device '{path}'. Operating system error 3(The system cannot find the path specified.)."),
                "BACKUP DATABASE",
            ));
        }
        self.refuse(&state, "BACKUP", database)?;
        let has = |o: &str| options.iter().any(|x| x == o);
        let edition = state.sql.edition();
        if has("COMPRESSION") && (edition.starts_with("Express") || edition.starts_with("Web")) {
            return Err(self.terminating(
                1844,
                &format!("BACKUP DATABASE WITH COMPRESSION is not supported on {edition}."),
                "BACKUP DATABASE",
            ));
        }
        // The backup holds the used pages (about half of them compressed).
        let size = state.sql.size_gb * if has("COMPRESSION") { 0.5 } else { 1.0 };
        let no_space =
            format!("Write on \"{path}\" failed: 112(There is not enough space on the disk.)");
        if size > state.sql.backup_free_gb {
            return Err(self.terminating(3202, &no_space, "BACKUP DATABASE"));
        }
        self.fault("sql-backup", &no_space, "BACKUP DATABASE")?;
        let clock = state.clock();
        clock.sleep_sim(state.durations.backup);
        let copy_only = has("COPY_ONLY");
        let checksum = has("CHECKSUM");
        let record = self
            .store
            .update(|s| {
                let snapshot = s.snapshot();
                let body = BackupBody {
                    database: s.database.name.clone(),
                    taken_at: jiff::Timestamp::now(),
                    copy_only,
                    snapshot,
                };
                let json = serde_json::to_string_pretty(&body).unwrap_or_default();
                let sum = hex::encode(Sha256::digest(json.as_bytes()));
                let text = format!("{BACKUP_MAGIC} sha256={sum}\n{json}");
                std::fs::write(target, text).map_err(|e| StoreError::Io {
                    path: path.to_string(),
                    source: e,
                })?;
                let record = BackupRecord {
                    database: s.database.name.clone(),
                    path: path.to_string(),
                    schema_version: s.database.schema_version.clone(),
                    taken_sim: s.now_sim(),
                    copy_only,
                    checksum,
                };
                s.backups.push(record.clone());
                s.record(Event::DbBackupCreated {
                    database: record.database.clone(),
                    path: path.to_string(),
                    schema_version: record.schema_version.clone(),
                    copy_only,
                    checksum,
                });
                Ok::<_, StoreError>(record)
            })
            .map_err(|e| {
                self.terminating(
                    3201,
                    &format!("Cannot open backup device '{path}'. Operating system error 5(Access is denied.). ({e})"),
                    "BACKUP DATABASE",
                )
            })?;
        let pages = 5000 + (record.taken_sim as u64 % 1000);
        let secs = state.durations.backup;
        Ok(Output::ok(format!(
            "Processed {pages} pages for database '{db}', file '{db}' on file 1.\nProcessed 2 pages for database '{db}', file '{db}_log' on file 1.\nBACKUP DATABASE successfully processed {} pages in {secs:.3} seconds ({:.3} MB/sec).",
            pages + 2,
            (pages as f64 * 8.0 / 1024.0) / secs.max(0.001),
            db = record.database,
        )))
    }

    /// Reads and checks a backup file: its snapshot, or the SQL error text.
    fn read_backup(&self, path: &str, what: &str) -> Result<BackupBody, String> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.terminating(
                    3201,
                    &format!("Cannot open backup device '{path}'. Operating system error 2(The system cannot find the file specified.)."),
                    what,
                ));
            }
            Err(e) => {
                return Err(self.terminating(
                    3201,
                    &format!("Cannot open backup device '{path}'. ({e})"),
                    what,
                ));
            }
        };
        let damaged = || {
            self.terminating(
                3189,
                &format!("Damage to the backup set was detected. The media family on device '{path}' is incorrectly formed."),
                what,
            )
        };
        let text = String::from_utf8(text).map_err(|_| damaged())?;
        let (header, json) = text.split_once('\n').ok_or_else(damaged)?;
        let sum = header
            .strip_prefix(BACKUP_MAGIC)
            .and_then(|h| h.trim().strip_prefix("sha256="))
            .ok_or_else(damaged)?;
        if hex::encode(Sha256::digest(json.as_bytes())) != sum {
            return Err(damaged());
        }
        serde_json::from_str(json).map_err(|_| damaged())
    }

    fn verify(&self, path: &str) -> Result<Output, String> {
        let state = self.store.snapshot().map_err(|e| e.to_string())?;
        self.refuse(&state, "VERIFYONLY", &state.database.name)?;
        self.fault(
            "sql-verify",
            &format!("Read on \"{path}\" failed: 23(Data error (cyclic redundancy check).)"),
            "VERIFY DATABASE",
        )?;
        let (clock, secs) = self
            .store
            .read(|s| (s.clock(), s.durations.verify))
            .map_err(|e| e.to_string())?;
        clock.sleep_sim(secs);
        match self.read_backup(path, "VERIFY DATABASE") {
            Ok(body) => {
                self.store
                    .record(Event::DbBackupVerified {
                        path: path.to_string(),
                        schema_version: body.snapshot.schema_version,
                    })
                    .map_err(|e| e.to_string())?;
                Ok(Output::ok("The backup set on file 1 is valid."))
            }
            Err(message) => {
                self.store
                    .record(Event::DbBackupVerifyFailed {
                        path: path.to_string(),
                        reason: message.lines().nth(1).unwrap_or("").to_string(),
                    })
                    .map_err(|e| e.to_string())?;
                Err(message)
            }
        }
    }

    fn restore(&self, database: &str, path: &str, options: &[String]) -> Result<Output, String> {
        let state = self.store.snapshot().map_err(|e| e.to_string())?;
        self.refuse(&state, "RESTORE", database)?;
        let body = self.read_backup(path, "RESTORE DATABASE")?;
        if !database.eq_ignore_ascii_case(&state.database.name)
            || !body.database.eq_ignore_ascii_case(database)
        {
            return Err(self.terminating(
                3154,
                &format!("The backup set holds a backup of a database other than the existing '{database}' database."),
                "RESTORE DATABASE",
            ));
        }
        if !options.iter().any(|o| o == "REPLACE") {
            return Err(self.terminating(
                3159,
                &format!("The tail of the log for the database \"{database}\" has not been backed up. Use BACKUP LOG WITH NORECOVERY to back up the log if it contains work you do not want to lose. Use the WITH REPLACE or WITH STOPAT clause of the RESTORE statement to just overwrite the contents of the log."),
                "RESTORE DATABASE",
            ));
        }
        let in_use = || {
            self.terminating(
                3101,
                "Exclusive access could not be obtained because the database is in use.",
                "RESTORE DATABASE",
            )
        };
        let busy = |s: &State| {
            s.nodes.iter().any(|n| n.service != ServiceState::Stopped)
                || s.database.upgrade.is_some()
        };
        if busy(&state) {
            return Err(in_use());
        }
        self.fault(
            "sql-restore",
            &format!("Read on \"{path}\" failed: 38(Reached the end of the file.)"),
            "RESTORE DATABASE",
        )?;
        state.clock().sleep_sim(state.durations.restore);
        let restored = self
            .store
            .update(|s| {
                if busy(s) {
                    return Ok::<_, StoreError>(false);
                }
                s.restore(&body.snapshot, path);
                Ok(true)
            })
            .map_err(|e| e.to_string())?;
        if !restored {
            return Err(in_use());
        }
        Ok(Output::ok(format!(
            "Processed 5000 pages for database '{database}', file '{database}' on file 1.\nProcessed 2 pages for database '{database}', file '{database}_log' on file 1.\nRESTORE DATABASE successfully processed 5002 pages in {:.3} seconds.",
            state.durations.restore
        )))
    }
}
