//! `BACKUP DATABASE … TO DISK|URL`, `RESTORE VERIFYONLY`, `RESTORE DATABASE … FROM
//! DISK|URL` and the revert `FROM DATABASE_SNAPSHOT`, with the hostings' refusals, the
//! size-dependent durations of `timing` and `STATS = n` progress printed as it happens.

use std::path::{Path, PathBuf};

use super::execute::{Sql, data_dir};
use super::media::{BackupBody, ReadError, read_set, url_path, write_set};
use super::parse::{Media, Options};
use super::select::{Value, format};
use super::timing;
use crate::history::Event;
use crate::spec::Hosting;
use crate::standins::Output;
use crate::state::{BackupRecord, State};

/// `timing`'s MAXTRANSFERSIZE limits: a multiple of 64 KB up to 4 MB (reference §2.1).
const MAX_TRANSFER: u64 = 4_194_304;

impl Sql<'_> {
    /// Sleeps `secs` simulated seconds, printing `n percent processed.` at each step.
    fn progress(&self, state: &State, secs: f64, options: &Options) {
        let clock = state.clock();
        let steps = timing::percent_steps(options);
        if steps.is_empty() {
            clock.sleep_sim(secs);
            return;
        }
        let mut done = 0;
        for step in steps {
            clock.sleep_sim(secs * f64::from(step - done) / 100.0);
            done = step;
            self.print(&format!("{step} percent processed."));
        }
    }

    /// A restore's reading and writing: its fault (a backup read short), then its time
    /// (the backup's own, plus zero-filling the data files without instant initialization)
    /// with STATS lines.
    fn restore_work(
        &self,
        state: &State,
        backup_seconds: f64,
        paths: &[String],
        options: &Options,
    ) -> Result<f64, String> {
        self.fault(
            "sql-restore",
            &format!(
                "Read on \"{}\" failed: 38(Reached the end of the file.)",
                paths[0]
            ),
            "RESTORE DATABASE",
        )?;
        let secs = state
            .durations
            .restore
            .unwrap_or(backup_seconds + timing::zero_fill(&state.sql));
        self.progress(state, secs, options);
        Ok(secs)
    }

    /// The `Processed N pages …` lines for each file and the total.
    fn processed(&self, state: &State, database: &str, pages: u64) -> (Vec<String>, u64) {
        let files = state.sql.data_file_names(database);
        let each = pages / files.len() as u64;
        let mut lines: Vec<String> = files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let n = if i == 0 {
                    pages - each * (files.len() as u64 - 1)
                } else {
                    each
                };
                format!("Processed {n} pages for database '{database}', file '{f}' on file 1.")
            })
            .collect();
        lines.push(format!(
            "Processed 2 pages for database '{database}', file '{database}_log' on file 1."
        ));
        (lines, pages + 2)
    }

    /// Where each member of a set lives, or the error for a URL without a credential.
    fn members(
        &self,
        state: &State,
        media: Media,
        paths: &[String],
        what: &str,
    ) -> Result<Vec<(PathBuf, String)>, String> {
        paths
            .iter()
            .map(|p| match media {
                Media::Disk => Ok((PathBuf::from(p), p.clone())),
                Media::Url => {
                    let credential = state
                        .instance_dbs
                        .credentials
                        .iter()
                        .any(|c| p.starts_with(&format!("{}/", c.name.trim_end_matches('/'))));
                    match url_path(self.store.dir(), p) {
                        // SQL Server finds no SAS credential for the container: the
                        // request cannot be authorized.
                        Some(file) if credential => Ok((file, p.clone())),
                        _ => Err(self.terminating(
                            3201,
                            &format!("Cannot open backup device '{p}'. Operating system error 50(The request is not supported.)."),
                            what,
                        )),
                    }
                }
            })
            .collect()
    }

    fn read_error(&self, e: ReadError, what: &str) -> String {
        match e {
            ReadError::NotFound(p) => self.terminating(
                3201,
                &format!("Cannot open backup device '{p}'. Operating system error 2(The system cannot find the file specified.)."),
                what,
            ),
            ReadError::Io(p, e) => {
                self.terminating(3201, &format!("Cannot open backup device '{p}'. ({e})"), what)
            }
            ReadError::Damaged(p) => self.terminating(
                3189,
                &format!("Damage to the backup set was detected. The media family on device '{p}' is incorrectly formed."),
                what,
            ),
            ReadError::Members(families, given) => self.terminating(
                3132,
                &format!("The media set has {families} media families but only {given} are provided. All members must be provided."),
                what,
            ),
        }
    }

    /// Too many devices: 64 files, 32 URLs (MI differences page).
    fn device_limit(&self, media: Media, paths: &[String], what: &str) -> Result<(), String> {
        let limit = if media == Media::Url { 32 } else { 64 };
        if paths.len() > limit {
            return Err(self.terminating(
                3205,
                &format!("Too many backup devices specified for backup or restore; only {limit} are allowed."),
                what,
            ));
        }
        Ok(())
    }

    pub(super) fn backup(
        &self,
        database: &str,
        media: Media,
        paths: &[String],
        options: &Options,
    ) -> Result<Output, String> {
        const WHAT: &str = "BACKUP DATABASE";
        let state = self.state()?;
        if !state.is_octopus(database) {
            return Err(self.no_database(database, WHAT));
        }
        if media == Media::Disk {
            for path in paths {
                if Path::new(path)
                    .parent()
                    .is_some_and(|p| !p.as_os_str().is_empty() && !p.is_dir())
                {
                    return Err(self.terminating(
                        3201,
                        &format!("Cannot open backup device '{path}'. Operating system error 3(The system cannot find the path specified.)."),
                        WHAT,
                    ));
                }
            }
        }
        self.refuse(&state, "BACKUP", database, media)?;
        if state.sql.hosting == Hosting::AzureSqlManagedInstance && !options.has("COPY_ONLY") {
            // MI takes its own full backups; a user backup must not break their chain
            // (MI differences page: COPY_ONLY is mandatory). Number unverified.
            return Err(self.terminating(
                41914,
                "BACKUP DATABASE without COPY_ONLY is not supported on SQL Database Managed Instance. Use BACKUP TO URL WITH COPY_ONLY.",
                WHAT,
            ));
        }
        self.device_limit(media, paths, WHAT)?;
        if let Some(mts) = options.number("MAXTRANSFERSIZE")
            && (mts == 0 || mts % 65536 != 0 || mts > MAX_TRANSFER)
        {
            // The number is unverified; the limits are the documented ones.
            return Err(self.terminating(
                3268,
                &format!("The value {mts} specified for MAXTRANSFERSIZE is invalid: it must be a multiple of 65536 (64 KB) from 65536 to 4194304 (4 MB)."),
                WHAT,
            ));
        }
        let members = self.members(&state, media, paths, WHAT)?;
        let edition = state.sql.edition();
        if options.has("COMPRESSION")
            && (edition.starts_with("Express") || edition.starts_with("Web"))
        {
            return Err(self.terminating(
                1844,
                &format!("BACKUP DATABASE WITH COMPRESSION is not supported on {edition}."),
                WHAT,
            ));
        }
        let pages = timing::used_pages(&state.sql);
        // The backup holds the used pages (about half of them compressed).
        let size = state.sql.size_gb * if options.has("COMPRESSION") { 0.5 } else { 1.0 };
        let no_space = format!(
            "Write on \"{}\" failed: 112(There is not enough space on the disk.)",
            paths[0]
        );
        if media == Media::Disk && size > state.sql.backup_free_gb {
            return Err(self.terminating(3202, &no_space, WHAT));
        }
        self.fault("sql-backup", &no_space, WHAT)?;
        let secs = state.durations.backup.unwrap_or_else(|| {
            timing::seconds(pages, timing::backup_rate(&state.sql, options, paths.len()))
        });
        self.progress(&state, secs, options);
        let copy_only = options.has("COPY_ONLY");
        let checksum = options.has("CHECKSUM");
        let files: Vec<PathBuf> = members.iter().map(|(f, _)| f.clone()).collect();
        let record = self.change(|s| {
            let body = BackupBody {
                database: s.database.name.clone(),
                taken_at: jiff::Timestamp::now(),
                copy_only,
                snapshot: s.snapshot(),
                families: 0,
                family: 0,
                set_id: String::new(),
                seconds: secs,
                pages,
            };
            write_set(&files, &body)?;
            let record = BackupRecord {
                database: s.database.name.clone(),
                path: paths[0].clone(),
                schema_version: s.database.schema_version.clone(),
                taken_sim: s.now_sim(),
                copy_only,
                checksum,
            };
            s.backups.push(record.clone());
            // A striped set is known by its first member (verify and restore name it first).
            s.record(Event::DbBackupCreated {
                database: record.database.clone(),
                path: record.path.clone(),
                schema_version: record.schema_version.clone(),
                copy_only,
                checksum,
            });
            Ok::<_, String>(record)
        })?;
        let record = record.map_err(|e| {
            self.terminating(
                3201,
                &format!("Cannot open backup device '{}'. Operating system error 5(Access is denied.). ({e})", paths[0]),
                WHAT,
            )
        })?;
        let (mut lines, total) = self.processed(&state, &record.database, pages);
        lines.push(format!(
            "BACKUP DATABASE successfully processed {total} pages in {secs:.3} seconds ({:.3} MB/sec).",
            total as f64 * timing::PAGE / timing::MB / secs.max(0.001),
        ));
        Ok(Output::ok(lines.join("\n")))
    }

    pub(super) fn verify(&self, media: Media, paths: &[String]) -> Result<Output, String> {
        const WHAT: &str = "VERIFY DATABASE";
        let state = self.state()?;
        self.refuse(&state, "VERIFYONLY", &state.database.name, media)?;
        let members = self.members(&state, media, paths, WHAT)?;
        self.fault(
            "sql-verify",
            &format!(
                "Read on \"{}\" failed: 23(Data error (cyclic redundancy check).)",
                paths[0]
            ),
            WHAT,
        )?;
        match read_set(&members) {
            Ok(body) => {
                state
                    .clock()
                    .sleep_sim(state.durations.verify.unwrap_or(body.seconds));
                self.change(|s| {
                    s.record(Event::DbBackupVerified {
                        path: paths[0].clone(),
                        schema_version: body.snapshot.schema_version.clone(),
                    })
                })?;
                Ok(Output::ok("The backup set on file 1 is valid."))
            }
            Err(e) => {
                let message = self.read_error(e, WHAT);
                self.change(|s| {
                    s.record(Event::DbBackupVerifyFailed {
                        path: paths[0].clone(),
                        reason: message.lines().nth(1).unwrap_or("").to_string(),
                    })
                })?;
                Err(message)
            }
        }
    }

    pub(super) fn restore(
        &self,
        database: &str,
        media: Media,
        paths: &[String],
        options: &Options,
        moves: &[(String, String)],
    ) -> Result<Output, String> {
        const WHAT: &str = "RESTORE DATABASE";
        let state = self.state()?;
        if !database.eq_ignore_ascii_case(&state.database.name) && !state.database_exists(database)
        {
            return self.restore_as(&state, database, media, paths, options, moves);
        }
        self.refuse(&state, "RESTORE", database, media)?;
        let mi = state.sql.hosting == Hosting::AzureSqlManagedInstance;
        if mi && !options.is_empty() {
            let names: Vec<String> = options.0.iter().map(|(n, _)| n.to_lowercase()).collect();
            return Err(self.msg(
                41901,
                16,
                &format!("One or more of the options ({}) are not supported for this statement in SQL Database Managed Instance. Review the documentation for supported options.", names.join(", ")),
            ));
        }
        let octopus = database.eq_ignore_ascii_case(&state.database.name);
        let exists = state.database_exists(database);
        if exists && mi {
            // MI never restores over a database (reference §2.3): whichever one has the name.
            return Err(self.msg(
                1801,
                16,
                &format!("Database '{database}' already exists. Choose a different database name."),
            ));
        }
        self.device_limit(media, paths, WHAT)?;
        let members = self.members(&state, media, paths, WHAT)?;
        if let Some(snap) = state.instance_dbs.snapshots_of(database).first() {
            // Unverified number; the restriction is documented (snapshots page: the source
            // cannot be restored while a snapshot exists).
            return Err(self.terminating(
                3137,
                &format!("Database cannot be restored because the database snapshot \"{}\" of it exists. Drop the database snapshots first.", snap.name),
                WHAT,
            ));
        }
        let body = read_set(&members).map_err(|e| self.read_error(e, WHAT))?;
        if !octopus || !body.database.eq_ignore_ascii_case(database) {
            return Err(self.terminating(
                3154,
                &format!("The backup set holds a backup of a database other than the existing '{database}' database."),
                WHAT,
            ));
        }
        if exists && !options.has("REPLACE") {
            return Err(self.terminating(
                3159,
                &format!("The tail of the log for the database \"{database}\" has not been backed up. Use BACKUP LOG WITH NORECOVERY to back up the log if it contains work you do not want to lose. Use the WITH REPLACE or WITH STOPAT clause of the RESTORE statement to just overwrite the contents of the log."),
                WHAT,
            ));
        }
        let in_use = || {
            self.terminating(
                3101,
                "Exclusive access could not be obtained because the database is in use.",
                WHAT,
            )
        };
        if Self::busy(&state) {
            return Err(in_use());
        }
        let secs = self.restore_work(&state, body.seconds, paths, options)?;
        let restored = self.change(|s| {
            if Self::busy(s) {
                return false;
            }
            s.instance_dbs.octopus_absent = false;
            s.restore(&body.snapshot, &paths[0]);
            true
        })?;
        if !restored {
            return Err(in_use());
        }
        let pages = if body.pages > 0 { body.pages } else { 5000 };
        let (mut lines, total) = self.processed(&state, database, pages);
        lines.push(format!(
            "RESTORE DATABASE successfully processed {total} pages in {secs:.3} seconds ({:.3} MB/sec).",
            total as f64 * timing::PAGE / timing::MB / secs.max(0.001),
        ));
        Ok(Output::ok(lines.join("\n")))
    }
}

/// A file of a backup set, as `RESTORE FILELISTONLY` lists it.
struct BackupFile {
    logical: String,
    /// Where it was when backed up (where a restore puts it without `MOVE`).
    physical: String,
    log: bool,
    file_id: i64,
    size: i64,
}

/// The files a backup of `database` holds: the spec's ROWS files and the log, under
/// `DIR/data` as `sys.master_files` shows them.
fn backup_files(state: &State, data: &str, database: &str) -> Vec<BackupFile> {
    let names = state.sql.data_file_names(database);
    let n = names.len() as f64;
    let round = |bytes: f64| ((bytes / timing::PAGE).ceil() * timing::PAGE) as i64;
    let mut files: Vec<BackupFile> = names
        .iter()
        .enumerate()
        .map(|(i, name)| BackupFile {
            logical: name.clone(),
            physical: format!("{data}/{name}.{}", if i == 0 { "mdf" } else { "ndf" }),
            log: false,
            file_id: if i == 0 { 1 } else { i as i64 + 2 },
            size: round(state.sql.size_gb * 1.25 * 1e9 / n),
        })
        .collect();
    files.push(BackupFile {
        logical: format!("{database}_log"),
        physical: format!("{data}/{database}_log.ldf"),
        log: true,
        file_id: 2,
        size: round(state.sql.log_size_gb * 1e9),
    });
    files
}

impl Sql<'_> {
    /// `RESTORE FILELISTONLY`: the backup's files as a result set.
    pub(super) fn filelist(&self, media: Media, paths: &[String]) -> Result<Output, String> {
        const WHAT: &str = "RESTORE FILELIST";
        let state = self.state()?;
        self.refuse(&state, "FILELISTONLY", &state.database.name, media)?;
        self.device_limit(media, paths, WHAT)?;
        let members = self.members(&state, media, paths, WHAT)?;
        let body = read_set(&members).map_err(|e| self.read_error(e, WHAT))?;
        let data = data_dir(self.store.dir());
        let columns: Vec<String> = [
            "LogicalName",
            "PhysicalName",
            "Type",
            "FileGroupName",
            "Size",
            "MaxSize",
            "FileId",
        ]
        .map(String::from)
        .to_vec();
        let rows: Vec<Vec<Value>> = backup_files(&state, &data, &body.database)
            .into_iter()
            .map(|f| {
                vec![
                    Value::Str(f.logical),
                    Value::Str(f.physical),
                    Value::Str(if f.log { "L" } else { "D" }.into()),
                    if f.log {
                        Value::Null
                    } else {
                        Value::Str("PRIMARY".into())
                    },
                    Value::Int(f.size),
                    // Unlimited growth as SQL Server reports it: 32 TB rows, 2 TB log.
                    Value::Int(if f.log {
                        2_199_023_255_552
                    } else {
                        35_184_372_080_640
                    }),
                    Value::Int(f.file_id),
                ]
            })
            .collect();
        Ok(Output::ok(format(
            &columns,
            &rows,
            &self.format,
            self.nocount.get(),
        )))
    }

    /// `RESTORE DATABASE [new] … WITH MOVE …` where `new` does not exist: another database
    /// holding the backup's content; production is untouched.
    fn restore_as(
        &self,
        state: &State,
        database: &str,
        media: Media,
        paths: &[String],
        options: &Options,
        moves: &[(String, String)],
    ) -> Result<Output, String> {
        const WHAT: &str = "RESTORE DATABASE";
        self.refuse(state, "RESTORE AS", database, media)?;
        if state.sql.hosting == Hosting::AzureSqlManagedInstance
            && (!options.is_empty() || !moves.is_empty())
        {
            let mut names: Vec<String> = options.0.iter().map(|(n, _)| n.to_lowercase()).collect();
            if !moves.is_empty() {
                names.push("move".into());
            }
            return Err(self.msg(
                41901,
                16,
                &format!("One or more of the options ({}) are not supported for this statement in SQL Database Managed Instance. Review the documentation for supported options.", names.join(", ")),
            ));
        }
        self.device_limit(media, paths, WHAT)?;
        let members = self.members(state, media, paths, WHAT)?;
        let body = read_set(&members).map_err(|e| self.read_error(e, WHAT))?;
        let data = data_dir(self.store.dir());
        let files = backup_files(state, &data, &body.database);
        for (logical, _) in moves {
            if !files
                .iter()
                .any(|f| f.logical.eq_ignore_ascii_case(logical))
            {
                return Err(self.terminating(
                    3234,
                    &format!("Logical file '{logical}' is not part of database '{database}'. Use RESTORE FILELISTONLY to list the logical file names."),
                    WHAT,
                ));
            }
        }
        let mi = state.sql.hosting == Hosting::AzureSqlManagedInstance;
        // Where each file goes: its MOVE target, else where it was; Managed Instance names
        // and places the files of a new database itself (it takes no MOVE).
        let targets: Vec<(&BackupFile, String, bool)> = files
            .iter()
            .map(|f| {
                if mi {
                    let name = Path::new(&f.physical)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| f.logical.clone());
                    return (f, format!("{data}/{database}_{name}"), false);
                }
                match moves
                    .iter()
                    .rev()
                    .find(|(l, _)| l.eq_ignore_ascii_case(&f.logical))
                {
                    Some((_, to)) => (f, to.clone(), true),
                    None => (f, f.physical.clone(), false),
                }
            })
            .collect();
        let planning = || {
            self.msg(
                3119,
                16,
                "Problems were identified while planning for the RESTORE statement. Previous messages provide details.",
            )
        };
        let end = |mut problems: Vec<String>| {
            problems.push(planning());
            problems.push(self.msg(3013, 16, &format!("{WHAT} is terminating abnormally.")));
            problems.join("\n")
        };
        for (i, (a, path, _)) in targets.iter().enumerate() {
            if let Some((b, _, _)) = targets[i + 1..]
                .iter()
                .find(|(_, p, _)| p.eq_ignore_ascii_case(path))
            {
                // Msg 3176's text as SQL Server's message catalog has it (unverified here).
                return Err(end(vec![self.msg(
                    3176,
                    16,
                    &format!("File '{path}' is claimed by '{}'({}) and '{}'({}). The WITH MOVE clause can be used to relocate one or more files.", b.logical, b.file_id, a.logical, a.file_id),
                )]));
            }
        }
        // The default data folder exists on a real server.
        let _ = std::fs::create_dir_all(&data);
        let mut in_use: Vec<(String, String)> = Vec::new();
        if !state.instance_dbs.octopus_absent {
            for f in backup_files(state, &data, &state.database.name) {
                in_use.push((f.physical, state.database.name.clone()));
            }
        }
        for d in &state.instance_dbs.databases {
            for f in &d.files {
                in_use.push((f.clone(), d.name.clone()));
            }
        }
        let mut problems = Vec::new();
        for (f, path, moved) in &targets {
            let folder_missing = Path::new(path)
                .parent()
                .is_some_and(|p| !p.as_os_str().is_empty() && !p.is_dir());
            if *moved && folder_missing {
                problems.push(self.msg(
                    5133,
                    16,
                    &format!("Directory lookup for the file \"{path}\" failed with the operating system error 3(The system cannot find the path specified.)."),
                ));
            } else if let Some((_, owner)) =
                in_use.iter().find(|(p, _)| p.eq_ignore_ascii_case(path))
            {
                problems.push(self.msg(
                    1834,
                    16,
                    &format!("The file '{path}' cannot be overwritten.  It is being used by database '{owner}'."),
                ));
            } else {
                continue;
            }
            problems.push(self.msg(
                3156,
                16,
                &format!("File '{}' cannot be restored to '{path}'. Use WITH MOVE to identify a valid location for the file.", f.logical),
            ));
        }
        if !problems.is_empty() {
            return Err(end(problems));
        }
        let secs = self.restore_work(state, body.seconds, paths, options)?;
        let physical: Vec<String> = targets.iter().map(|(_, p, _)| p.clone()).collect();
        let created = self.change(|s| {
            // Another connection may have created it meanwhile.
            if s.database_exists(database) {
                return false;
            }
            s.instance_dbs.databases.push(crate::state::OtherDatabase {
                name: database.to_string(),
                kind: crate::state::OtherKind::Plain,
                content: body.snapshot.clone(),
                created_sim: s.now_sim(),
                files: physical,
            });
            s.record(Event::DbRestoredAs {
                database: database.to_string(),
                path: paths[0].clone(),
                schema_version: body.snapshot.schema_version.clone(),
            });
            true
        })?;
        if !created {
            return Err(self.terminating(
                3154,
                &format!("The backup set holds a backup of a database other than the existing '{database}' database."),
                WHAT,
            ));
        }
        let pages = if body.pages > 0 { body.pages } else { 5000 };
        let data_files: Vec<&BackupFile> = files.iter().filter(|f| !f.log).collect();
        let each = pages / data_files.len().max(1) as u64;
        let mut lines: Vec<String> = data_files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let n = if i == 0 {
                    pages - each * (data_files.len() as u64 - 1)
                } else {
                    each
                };
                format!(
                    "Processed {n} pages for database '{database}', file '{}' on file 1.",
                    f.logical
                )
            })
            .collect();
        if let Some(log) = files.iter().find(|f| f.log) {
            lines.push(format!(
                "Processed 2 pages for database '{database}', file '{}' on file 1.",
                log.logical
            ));
        }
        let total = pages + 2;
        lines.push(format!(
            "RESTORE DATABASE successfully processed {total} pages in {secs:.3} seconds ({:.3} MB/sec).",
            total as f64 * timing::PAGE / timing::MB / secs.max(0.001),
        ));
        Ok(Output::ok(lines.join("\n")))
    }
}
