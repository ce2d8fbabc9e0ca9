//! `octoup-sim sqlcmd --dir DIR <sqlcmd arguments>`: the simulated SQL Server, reached the
//! way octoup reaches the real one. Understands a batch (`;`-separated) of the statements an
//! upgrade and its preflight need:
//!
//! - `BACKUP DATABASE [db] TO DISK|URL = N'a'[, DISK|URL = N'b' …] [WITH COPY_ONLY, CHECKSUM,
//!   COMPRESSION, INIT, FORMAT, MAXTRANSFERSIZE = n, BUFFERCOUNT = n, BLOCKSIZE = n, STATS = n]`
//! - `RESTORE VERIFYONLY FROM DISK|URL = …`, `RESTORE DATABASE [db] FROM DISK|URL = … [WITH
//!   REPLACE, RECOVERY, STATS = n]`, `RESTORE DATABASE [db] FROM DATABASE_SNAPSHOT = N's'`
//! - `CREATE DATABASE [s] ON (NAME = …, FILENAME = …), … AS SNAPSHOT OF [db]`, `CREATE
//!   DATABASE [c] AS COPY OF [db]`, `DROP DATABASE`, `ALTER DATABASE [a] MODIFY NAME = [b]`
//! - `CREATE|ALTER CREDENTIAL [url] WITH IDENTITY = …, SECRET = …`
//! - RDS's `exec msdb.dbo.rds_backup_database|rds_restore_database|rds_task_status …` and
//!   `rdsadmin.dbo.rds_modify_db_name`
//! - `RESTORE FILELISTONLY`, `RESTORE DATABASE [new] … WITH MOVE …` (a copy), and the vendor's
//!   disarming `DELETE`/`UPDATE`/`IF EXISTS` on the Octopus tables (`rows`)
//! - `SET NOCOUNT ON|OFF`, `USE [db]`
//! - `SELECT` of expressions (SERVERPROPERTY, DATABASEPROPERTYEX, HAS_PERMS_BY_NAME,
//!   IS_SRVROLEMEMBER, …) from the catalog views and DMVs in [`select`], with `JOIN … ON`,
//!   `CROSS APPLY`, `WHERE … AND …` and `ORDER BY`.
//!
//! Anything else is a syntax error, an unknown view "Invalid object name", an unknown
//! function "not a recognized built-in function name". The spec's `[database]` decides what
//! the hosting and the login refuse. The password comes only from `SQLCMDPASSWORD`; `-P`
//! works like sqlcmd but is recorded as a secret leak.
//!
//! `$(NAME)` scripting variables are substituted from `-v` and the environment (not with `-x`).
//!
//! - `args`: sqlcmd's command line; `parse`: the T-SQL; `execute`: running a statement;
//!   `backup`, `databases`, `rds`, `rows`: the statements; `media`: backup files; `timing`:
//!   durations; `select`: the catalog and sqlcmd's result format.

mod args;
mod backup;
mod databases;
mod execute;
mod media;
mod parse;
mod rds;
mod rows;
mod select;
mod timing;

use std::cell::{Cell, RefCell};
use std::io::Write;

use args::{parse_args, substitute};
use execute::Sql;
use parse::parse_batch;
use select::Format;

use super::Output;
use crate::history::Event;
use crate::state::Store;

/// Runs one sqlcmd command line. `password_env` is the value of `SQLCMDPASSWORD`; `env`
/// looks up the environment for `$(NAME)`; results are written to `out` as they come (the
/// returned `Output` holds the error and the exit code).
pub fn run(
    store: &Store,
    args: &[String],
    password_env: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
) -> Output {
    match run_inner(store, args, password_env, env, out) {
        Ok(out) | Err(out) => out,
    }
}

fn run_inner(
    store: &Store,
    args: &[String],
    password_env: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    out: &mut dyn Write,
) -> Result<Output, Output> {
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
    }
    // Without -U, sqlcmd uses Windows authentication (as -E does): nothing to check.
    let Some(raw_query) = parsed.query.clone() else {
        return Err(Output::fail(
            1,
            "Sqlcmd: octoup-sim runs only -Q \"<query>\" (no interactive mode).",
        ));
    };
    // sqlcmd refuses the whole batch when a variable is undefined.
    let query = if parsed.no_variables {
        raw_query.clone()
    } else {
        substitute(&raw_query, &parsed.variables, env).map_err(|m| Output::fail(1, m))?
    };
    let login = parsed.user.clone().unwrap_or_else(|| {
        format!(
            "{}\\octoup",
            server.split(['\\', ',']).next().unwrap_or("SQL")
        )
    });
    let sql = Sql {
        store,
        server,
        fault_code: Cell::new(None),
        login,
        current: RefCell::new(parsed.database.clone().unwrap_or_else(|| "master".into())),
        nocount: Cell::new(false),
        format: Format {
            headers: parsed.headers != Some(-1),
            trim: parsed.trim,
            separator: parsed.separator.clone().unwrap_or_else(|| " ".into()),
        },
        raw_query,
        out: RefCell::new(out),
    };
    let result = match parse_batch(&query) {
        Ok(statements) => statements.into_iter().try_for_each(|statement| {
            let out = sql.execute(statement)?;
            sql.print(&out.stdout);
            Ok(())
        }),
        Err(near) => Err(sql.msg(102, 15, &format!("Incorrect syntax near '{near}'."))),
    };
    let stdout = String::new();
    match result {
        Ok(()) => Ok(Output::ok(stdout)),
        // Without -b sqlcmd reports the error but still exits 0.
        Err(message) => Err(Output {
            // An injected `exit:N` fault exits with N whatever -b says.
            code: sql
                .fault_code
                .get()
                .unwrap_or(if parsed.exit_on_error { 1 } else { 0 }),
            stdout,
            stderr: message,
        }),
    }
}
