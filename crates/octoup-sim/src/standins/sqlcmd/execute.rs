//! Running a parsed statement against the simulated server: the dispatch, SQL Server's
//! message format, and what each hosting and the login's rights refuse. The statements
//! themselves are in `backup` (BACKUP/VERIFYONLY/RESTORE), `databases` (snapshots, copies,
//! renames, drops, credentials) and `rds` (RDS's stored procedures).

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::path::Path;

use super::parse::{Media, Statement};
use super::select::{Format, Server, format};
use crate::spec::Hosting;
use crate::standins::{Output, apply_fault};
use crate::state::{ServiceState, State, Store, StoreError};

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

/// Where the simulated database files are: `DIR/data` (absolute).
pub(super) fn data_dir(dir: &Path) -> String {
    std::path::absolute(dir.join("data"))
        .unwrap_or_else(|_| dir.join("data"))
        .display()
        .to_string()
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
    /// The query as given, before `$(NAME)` substitution (what the history shows).
    pub raw_query: String,
    /// Where the output goes, line by line as it happens.
    pub out: RefCell<&'a mut dyn Write>,
}

impl Sql<'_> {
    /// Prints `text` at once (octoup reads progress while the statement runs).
    pub fn print(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        let mut out = self.out.borrow_mut();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    pub fn state(&self) -> Result<State, String> {
        self.store.snapshot().map_err(|e| e.to_string())
    }

    /// Applies a change; a store failure becomes the message.
    pub fn change<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T, String> {
        self.store
            .update(|s| Ok::<_, StoreError>(f(s)))
            .map_err(|e| e.to_string())
    }

    /// A SQL Server error message as sqlcmd prints it.
    pub fn msg(&self, number: u32, level: u32, text: &str) -> String {
        format!(
            "Msg {number}, Level {level}, State 1, Server {}, Line 1\n{text}",
            self.server
        )
    }

    pub fn terminating(&self, number: u32, text: &str, what: &str) -> String {
        self.terminating_at(number, 16, text, what)
    }

    pub fn terminating_at(&self, number: u32, level: u32, text: &str, what: &str) -> String {
        format!(
            "{}\n{}",
            self.msg(number, level, text),
            self.msg(3013, 16, &format!("{what} is terminating abnormally."))
        )
    }

    pub fn execute(&self, statement: Statement) -> Result<Output, String> {
        self.settle()?;
        match statement {
            Statement::Backup {
                database,
                media,
                paths,
                options,
            } => self.backup(&database, media, &paths, &options),
            Statement::VerifyOnly { media, paths } => self.verify(media, &paths),
            Statement::Restore {
                database,
                media,
                paths,
                options,
                moves,
            } => self.restore(&database, media, &paths, &options, &moves),
            Statement::FileListOnly { media, paths } => self.filelist(media, &paths),
            Statement::Delete { table, filter } => self.dml(&table, &filter, None),
            Statement::Update {
                table,
                sets,
                filter,
            } => self.dml(&table, &filter, Some(&sets)),
            Statement::IfExists { query, then } => {
                let state = self.state()?;
                let found = match self.server(&state).select(&query) {
                    Ok((_, rows)) => !rows.is_empty(),
                    Err((number, level, text)) => return Err(self.refused(number, level, &text)),
                };
                if found {
                    self.execute(*then)
                } else {
                    Ok(Output::ok(""))
                }
            }
            Statement::Revert { database, snapshot } => self.revert(&database, &snapshot),
            Statement::CreateSnapshot {
                name,
                files,
                source,
            } => self.create_snapshot(&name, &files, &source),
            Statement::CreateCopy { name, source } => self.create_copy(&name, &source),
            Statement::Drop(name) => self.drop_database(&name),
            Statement::Rename { from, to } => self.rename(&from, &to, "ALTER DATABASE"),
            Statement::Credential {
                alter,
                name,
                identity,
                secret,
            } => self.credential(alter, &name, &identity, &secret),
            Statement::Exec { procedure, args } => self.exec(&procedure, &args),
            Statement::SetNocount(on) => {
                self.nocount.set(on);
                Ok(Output::ok(""))
            }
            Statement::Use(db) => self.use_db(&db),
            Statement::Select(q) => {
                let state = self.state()?;
                match self.server(&state).select(&q) {
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

    /// The server as a query in the current context sees it.
    pub fn server<'s>(&self, state: &'s State) -> Server<'s> {
        Server {
            state,
            current: self.current.borrow().clone(),
            login: self.login.clone(),
            volume: volume_root(self.store.dir()),
            data_dir: data_dir(self.store.dir()),
        }
    }

    /// Records copies and RDS tasks that finished by now; writes only when one did.
    fn settle(&self) -> Result<(), String> {
        let dir = self.store.dir().to_path_buf();
        let pending = self
            .store
            .read(|s| s.has_unsettled())
            .map_err(|e| e.to_string())?;
        if pending {
            self.change(|s| s.settle(&|arn: &str| super::rds::s3_content(&dir, arn)))?;
        }
        Ok(())
    }

    /// Nodes running, or the schema being upgraded: the database is in use.
    pub fn busy(s: &State) -> bool {
        s.nodes.iter().any(|n| n.service != ServiceState::Stopped) || s.database.upgrade.is_some()
    }

    /// `Database 'x' does not exist.` (911) as a terminating error of `what`.
    pub fn no_database(&self, database: &str, what: &str) -> String {
        self.terminating(
            911,
            &format!(
                "Database '{database}' does not exist. Make sure that the name is entered correctly."
            ),
            what,
        )
    }

    /// A refused query; a permission error is followed by SQL Server's generic one.
    pub fn refused(&self, number: u32, level: u32, text: &str) -> String {
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
        let state = self.state()?;
        let known = ["master", "tempdb", "model", "msdb"]
            .iter()
            .any(|d| d.eq_ignore_ascii_case(db))
            || state.database_exists(db)
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
    pub fn refuse(
        &self,
        state: &State,
        statement: &str,
        database: &str,
        media: Media,
    ) -> Result<(), String> {
        let sql = &state.sql;
        let what = match statement {
            "BACKUP" => "BACKUP DATABASE",
            "VERIFYONLY" => "VERIFY DATABASE",
            "FILELISTONLY" => "RESTORE FILELIST",
            _ => "RESTORE DATABASE",
        };
        match sql.hosting {
            Hosting::AzureSqlDatabase => {
                let shown = match statement {
                    "VERIFYONLY" => "RESTORE VERIFYONLY",
                    "FILELISTONLY" => "RESTORE FILELISTONLY",
                    _ => what,
                };
                return Err(self.msg(
                    40510,
                    16,
                    &format!("Statement '{shown}' is not supported in this version of SQL Server."),
                ));
            }
            Hosting::AzureSqlManagedInstance if media == Media::Url => {}
            Hosting::AzureSqlManagedInstance => {
                return Err(self.terminating(
                    41914,
                    "BACKUP and RESTORE to or from DISK are not supported on SQL Database Managed Instance. Use BACKUP TO URL WITH COPY_ONLY and RESTORE FROM URL.",
                    what,
                ));
            }
            Hosting::AmazonRds | Hosting::GoogleCloudSql => {
                // Neither gives the login sysadmin: RDS backs up with its procedures, Cloud SQL
                // with `gcloud sql export bak`.
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
            // Reading a backup's contents and restoring it as a new database both need
            // CREATE DATABASE.
            "VERIFYONLY" | "FILELISTONLY" | "RESTORE AS" if !sql.can_create_database => Err(self
                .terminating_at(
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

    pub fn fault(&self, op: &str, text: &str, what: &str) -> Result<(), String> {
        match apply_fault(self.store, op, None).map_err(|e| e.to_string())? {
            Some(code) => {
                self.fault_code.set(Some(code));
                Err(self.terminating(3202, text, what))
            }
            None => Ok(()),
        }
    }
}
