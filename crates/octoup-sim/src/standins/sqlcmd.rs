//! `octoup-sim sqlcmd --dir DIR <sqlcmd arguments>`: the simulated SQL Server, reached the
//! way octoup reaches the real one. Understands the three statements an upgrade needs:
//!
//! - `BACKUP DATABASE [db] TO DISK = N'path' [WITH COPY_ONLY, CHECKSUM, COMPRESSION, INIT, FORMAT, STATS = n]`
//! - `RESTORE VERIFYONLY FROM DISK = N'path' [WITH CHECKSUM]`
//! - `RESTORE DATABASE [db] FROM DISK = N'path' WITH REPLACE [, RECOVERY, STATS = n]`
//!
//! plus `SELECT @@VERSION`. Anything else is a syntax error. The password comes only from
//! `SQLCMDPASSWORD`; `-P` works like sqlcmd but is recorded as a secret leak.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Output, apply_fault};
use crate::history::Event;
use crate::state::{BackupRecord, DatabaseSnapshot, ServiceState, Store, StoreError};

/// First line of a simulated backup file.
const BACKUP_MAGIC: &str = "OCTOUP-SIM-BAK/1";

#[derive(Debug, Default)]
struct Args {
    server: String,
    user: Option<String>,
    password_arg: Option<String>,
    trusted: bool,
    exit_on_error: bool,
    query: Option<String>,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    // Options with a value; the value may be attached (`-Sserver`) or the next argument.
    const WITH_VALUE: &[char] = &[
        'S', 'd', 'U', 'P', 'Q', 'q', 'h', 's', 't', 'l', 'V', 'r', 'w', 'f', 'y', 'Y', 'H', 'a',
        'c', 'o', 'i', 'v', 'A', 'L', 'K', 'M', 'G',
    ];
    const FLAGS: &[char] = &[
        'E', 'b', 'W', 'C', 'N', 'I', 'X', 'e', 'p', 'k', 'u', 'x', 'R', 'z', 'Z', 'j', 'm',
    ];
    let mut parsed = Args::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(body) = arg.strip_prefix('-').or_else(|| arg.strip_prefix('/')) else {
            return Err(format!(
                "'{arg}': Unexpected argument. Enter '-?' for help."
            ));
        };
        let mut chars = body.chars();
        let Some(opt) = chars.next() else {
            return Err(format!("'{arg}': Unknown Option. Enter '-?' for help."));
        };
        let rest: String = chars.collect();
        let value = if WITH_VALUE.contains(&opt) {
            if !rest.is_empty() {
                rest
            } else if let Some(v) = args.get(i) {
                i += 1;
                v.clone()
            } else {
                return Err(format!("'-{opt}': Missing argument. Enter '-?' for help."));
            }
        } else if FLAGS.contains(&opt) && rest.is_empty() {
            String::new()
        } else {
            return Err(format!("'{arg}': Unknown Option. Enter '-?' for help."));
        };
        match opt {
            'S' => parsed.server = value,
            'U' => parsed.user = Some(value),
            'P' => parsed.password_arg = Some(value),
            'E' => parsed.trusted = true,
            'b' => parsed.exit_on_error = true,
            'Q' | 'q' => parsed.query = Some(value),
            'i' => {
                return Err("'-i': input files are not simulated by octoup-sim; use -Q".to_string());
            }
            _ => {}
        }
    }
    Ok(parsed)
}

/// Runs one sqlcmd command line. `password_env` is the value of `SQLCMDPASSWORD`.
pub fn run(store: &Store, args: &[String], password_env: Option<&str>) -> Output {
    match run_inner(store, args, password_env) {
        Ok(out) | Err(out) => out,
    }
}

fn run_inner(store: &Store, args: &[String], password_env: Option<&str>) -> Result<Output, Output> {
    let parsed = parse_args(args).map_err(|m| Output::fail(1, format!("Sqlcmd: {m}")))?;
    let state = store.snapshot()?;
    if let Some(p) = &parsed.password_arg {
        // A password on the command line is visible to every user of the machine (I5).
        if *p != state.secrets.sql_password {
            store.record(Event::SecretLeak {
                place: "command line of sqlcmd".to_string(),
                detail: "a password was passed with -P instead of SQLCMDPASSWORD".to_string(),
            })?;
        }
    }
    let server = if parsed.server.is_empty() {
        "(local)".to_string()
    } else {
        parsed.server.clone()
    };
    if let Some(user) = &parsed.user {
        let password = parsed.password_arg.as_deref().or(password_env);
        if *user != state.secrets.sql_login || password != Some(state.secrets.sql_password.as_str())
        {
            return Err(Output::fail(
                1,
                format!(
                    "Sqlcmd: Error: Microsoft ODBC Driver 17 for SQL Server : Login failed for user '{user}'.."
                ),
            ));
        }
    } else if !parsed.trusted && parsed.password_arg.is_none() {
        // Without -U, sqlcmd uses Windows authentication (as -E does).
    }
    let Some(query) = parsed.query.clone() else {
        return Err(Output::fail(
            1,
            "Sqlcmd: octoup-sim runs only -Q \"<query>\" (no interactive mode).",
        ));
    };
    let sql = Sql {
        store,
        server,
        fault_code: std::cell::Cell::new(None),
    };
    let result = match parse_statement(&query) {
        Ok(statement) => sql.execute(statement),
        Err(near) => Err(sql.msg(102, 15, &format!("Incorrect syntax near '{near}'."))),
    };
    match result {
        Ok(out) => Ok(out),
        // Without -b sqlcmd reports the error but still exits 0.
        Err(message) => Err(Output {
            // An injected `exit:N` fault exits with N whatever -b says.
            code: sql
                .fault_code
                .get()
                .unwrap_or(if parsed.exit_on_error { 1 } else { 0 }),
            stdout: String::new(),
            stderr: message,
        }),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Ident(String),
    Str(String),
    Number(String),
    Punct(char),
}

impl Token {
    fn shown(&self) -> String {
        match self {
            Token::Word(w) | Token::Number(w) => w.clone(),
            Token::Ident(i) => i.clone(),
            Token::Str(s) => s.clone(),
            Token::Punct(c) => c.to_string(),
        }
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(kw))
    }
}

/// Splits T-SQL into tokens; `Err` carries the text near the problem.
/// The text of a quoted identifier or string from `chars[*i..]` up to `close` (a doubled
/// `close` stands for one), leaving `*i` after it; `Err` with what was read when it is not
/// closed.
fn quoted(chars: &[char], i: &mut usize, close: char) -> Result<String, String> {
    let mut text = String::new();
    loop {
        match chars.get(*i) {
            None => return Err(text),
            Some(&c) if c == close && chars.get(*i + 1) == Some(&close) => {
                text.push(close);
                *i += 2;
            }
            Some(&c) if c == close => {
                *i += 1;
                return Ok(text);
            }
            Some(&c) => {
                text.push(c);
                *i += 1;
            }
        }
    }
}

fn tokenize(sql: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '[' {
            i += 1;
            let ident = quoted(&chars, &mut i, ']').map_err(|part| format!("[{part}"))?;
            tokens.push(Token::Ident(ident));
        } else if c == '\'' || ((c == 'N' || c == 'n') && chars.get(i + 1) == Some(&'\'')) {
            i += if c == '\'' { 1 } else { 2 };
            let text = quoted(&chars, &mut i, '\'').map_err(|part| format!("'{part}"))?;
            tokens.push(Token::Str(text));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            tokens.push(Token::Number(chars[start..i].iter().collect()));
        } else if c.is_alphabetic() || c == '_' || c == '@' || c == '#' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_@#$".contains(chars[i])) {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else if "=,;()".contains(c) {
            tokens.push(Token::Punct(c));
            i += 1;
        } else {
            return Err(c.to_string());
        }
    }
    Ok(tokens)
}

#[derive(Debug, Clone, PartialEq)]
enum Statement {
    Backup {
        database: String,
        path: String,
        options: Vec<String>,
    },
    VerifyOnly {
        path: String,
    },
    Restore {
        database: String,
        path: String,
        options: Vec<String>,
    },
    SelectVersion,
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn near(&self) -> String {
        self.peek()
            .map(Token::shown)
            .unwrap_or_else(|| self.tokens.last().map(Token::shown).unwrap_or_default())
    }

    fn keyword(&mut self, kw: &str) -> Result<(), String> {
        if self.peek().is_some_and(|t| t.is_kw(kw)) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.near())
        }
    }

    fn punct(&mut self, c: char) -> Result<(), String> {
        if self.peek() == Some(&Token::Punct(c)) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.near())
        }
    }

    /// A database name: `[bracketed]` or a bare word.
    fn name(&mut self) -> Result<String, String> {
        match self.peek().cloned() {
            Some(Token::Ident(n)) | Some(Token::Word(n)) => {
                self.pos += 1;
                Ok(n)
            }
            _ => Err(self.near()),
        }
    }

    /// `DISK = N'path'`
    fn disk(&mut self) -> Result<String, String> {
        self.keyword("DISK")?;
        self.punct('=')?;
        match self.peek().cloned() {
            Some(Token::Str(s)) => {
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.near()),
        }
    }

    /// `WITH opt [= value], ...`, upper-cased option names; only `allowed` ones.
    fn with(&mut self, allowed: &[&str]) -> Result<Vec<String>, String> {
        let mut options = Vec::new();
        if !self.peek().is_some_and(|t| t.is_kw("WITH")) {
            return Ok(options);
        }
        self.pos += 1;
        loop {
            let Some(Token::Word(w)) = self.peek().cloned() else {
                return Err(self.near());
            };
            let upper = w.to_ascii_uppercase();
            if !allowed.contains(&upper.as_str()) {
                return Err(w);
            }
            self.pos += 1;
            if upper == "STATS" && self.peek() == Some(&Token::Punct('=')) {
                self.pos += 1;
                match self.peek() {
                    Some(Token::Number(_)) => self.pos += 1,
                    _ => return Err(self.near()),
                }
            }
            options.push(upper);
            if self.peek() == Some(&Token::Punct(',')) {
                self.pos += 1;
            } else {
                return Ok(options);
            }
        }
    }

    fn end(&mut self) -> Result<(), String> {
        while self.peek() == Some(&Token::Punct(';')) {
            self.pos += 1;
        }
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(t.shown()),
        }
    }
}

/// Parses one statement; `Err` is the text near the syntax error.
fn parse_statement(sql: &str) -> Result<Statement, String> {
    let tokens = tokenize(sql)?;
    let mut p = Parser { tokens, pos: 0 };
    let first = p.peek().cloned().ok_or_else(|| sql.trim().to_string())?;
    let statement = if first.is_kw("BACKUP") {
        p.pos += 1;
        p.keyword("DATABASE")?;
        let database = p.name()?;
        p.keyword("TO")?;
        let path = p.disk()?;
        let options = p.with(&[
            "COPY_ONLY",
            "CHECKSUM",
            "NO_CHECKSUM",
            "COMPRESSION",
            "NO_COMPRESSION",
            "INIT",
            "NOINIT",
            "FORMAT",
            "NOFORMAT",
            "STATS",
            "SKIP",
            "NOSKIP",
        ])?;
        Statement::Backup {
            database,
            path,
            options,
        }
    } else if first.is_kw("RESTORE") {
        p.pos += 1;
        if p.peek().is_some_and(|t| t.is_kw("VERIFYONLY")) {
            p.pos += 1;
            p.keyword("FROM")?;
            let path = p.disk()?;
            p.with(&["CHECKSUM", "NO_CHECKSUM", "STATS"])?;
            Statement::VerifyOnly { path }
        } else {
            p.keyword("DATABASE")?;
            let database = p.name()?;
            p.keyword("FROM")?;
            let path = p.disk()?;
            let options = p.with(&["REPLACE", "RECOVERY", "STATS", "CHECKSUM"])?;
            Statement::Restore {
                database,
                path,
                options,
            }
        }
    } else if first.is_kw("SELECT") {
        p.pos += 1;
        if p.peek().is_some_and(|t| t.is_kw("@@VERSION")) {
            p.pos += 1;
            Statement::SelectVersion
        } else {
            return Err(p.near());
        }
    } else {
        return Err(first.shown());
    };
    p.end()?;
    Ok(statement)
}

/// The contents of a simulated backup file (after the header line).
#[derive(Debug, Serialize, Deserialize)]
struct BackupBody {
    database: String,
    taken_at: jiff::Timestamp,
    copy_only: bool,
    snapshot: DatabaseSnapshot,
}

struct Sql<'a> {
    store: &'a Store,
    server: String,
    /// Exit code of an `exit:N` fault that fired.
    fault_code: std::cell::Cell<Option<i32>>,
}

impl Sql<'_> {
    /// A SQL Server error message as sqlcmd prints it.
    fn msg(&self, number: u32, level: u32, text: &str) -> String {
        format!(
            "Msg {number}, Level {level}, State 1, Server {}, Line 1\n{text}",
            self.server
        )
    }

    fn terminating(&self, number: u32, text: &str, what: &str) -> String {
        format!(
            "{}\n{}",
            self.msg(number, 16, text),
            self.msg(3013, 16, &format!("{what} is terminating abnormally."))
        )
    }

    fn execute(&self, statement: Statement) -> Result<Output, String> {
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
            Statement::SelectVersion => Ok(Output::ok(
                "\n---------------------------------------------------------------------\nMicrosoft SQL Server 2019 (RTM-CU22) (KB5027702) - 15.0.4322.2 (X64) (octoup-sim)\n\n(1 rows affected)",
            )),
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
        self.fault(
            "sql-backup",
            &format!("Write on \"{path}\" failed: 112(There is not enough space on the disk.)"),
            "BACKUP DATABASE",
        )?;
        let clock = state.clock();
        clock.sleep_sim(state.durations.backup);
        let has = |o: &str| options.iter().any(|x| x == o);
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
        let busy = |s: &crate::state::State| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_statements_octoup_sends() {
        assert_eq!(
            parse_statement("BACKUP DATABASE [Octopus]]Deploy] TO DISK = N'C:\\b\\it''s.bak' WITH COPY_ONLY, CHECKSUM, COMPRESSION, INIT, STATS = 10;").unwrap(),
            Statement::Backup {
                database: "Octopus]Deploy".into(),
                path: "C:\\b\\it's.bak".into(),
                options: vec!["COPY_ONLY".into(), "CHECKSUM".into(), "COMPRESSION".into(), "INIT".into(), "STATS".into()],
            }
        );
        assert_eq!(
            parse_statement("restore verifyonly from disk = 'x.bak'").unwrap(),
            Statement::VerifyOnly {
                path: "x.bak".into()
            }
        );
        assert_eq!(
            parse_statement(
                "RESTORE DATABASE OctopusDeploy FROM DISK = N'x.bak' WITH REPLACE, RECOVERY"
            )
            .unwrap(),
            Statement::Restore {
                database: "OctopusDeploy".into(),
                path: "x.bak".into(),
                options: vec!["REPLACE".into(), "RECOVERY".into()]
            }
        );
        assert_eq!(
            parse_statement("SELECT @@VERSION").unwrap(),
            Statement::SelectVersion
        );
    }

    #[test]
    fn rejects_everything_else_naming_the_token() {
        assert_eq!(
            parse_statement("DROP DATABASE [OctopusDeploy]").unwrap_err(),
            "DROP"
        );
        assert_eq!(
            parse_statement("BACKUP DATABASE [x] TO DISK = N'p' WITH SHRINK").unwrap_err(),
            "SHRINK"
        );
        assert_eq!(
            parse_statement("BACKUP DATABASE [x] TO DISK = N'p' GO").unwrap_err(),
            "GO"
        );
        assert_eq!(
            parse_statement("BACKUP DATABASE [x] TO DISK = N'p").unwrap_err(),
            "'p"
        );
        assert!(parse_statement("BACKUP DATABASE [x] TO DISK = N'p'; SELECT 1").is_err());
    }

    #[test]
    fn sqlcmd_arguments() {
        let a: Vec<String> = [
            "-S",
            "127.0.0.1,1433",
            "-dmaster",
            "-U",
            "octoup",
            "-b",
            "-Q",
            "SELECT @@VERSION",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let p = parse_args(&a).unwrap();
        assert_eq!(p.server, "127.0.0.1,1433");
        assert_eq!(p.user.as_deref(), Some("octoup"));
        assert!(p.exit_on_error);
        assert!(parse_args(&["-Z9".to_string()]).is_err());
        assert!(parse_args(&["-S".to_string()]).is_err());
    }
}
