//! `octoup-sim sqlcmd --dir DIR <sqlcmd arguments>`: the simulated SQL Server, reached the
//! way octoup reaches the real one. Understands a batch (`;`-separated) of the statements an
//! upgrade and its preflight need:
//!
//! - `BACKUP DATABASE [db] TO DISK = N'path' [WITH COPY_ONLY, CHECKSUM, COMPRESSION, INIT, FORMAT, STATS = n]`
//! - `RESTORE VERIFYONLY FROM DISK = N'path' [WITH CHECKSUM]`
//! - `RESTORE DATABASE [db] FROM DISK = N'path' WITH REPLACE [, RECOVERY, STATS = n]`
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
//! - `args`: sqlcmd's command line; `parse`: the T-SQL; `execute`: running a statement;
//!   `select`: the catalog and sqlcmd's result format.

mod args;
mod execute;
mod parse;
mod select;

use std::cell::{Cell, RefCell};

use args::parse_args;
use execute::Sql;
use parse::parse_batch;
use select::Format;

use super::Output;
use crate::history::Event;
use crate::state::Store;

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
    }
    // Without -U, sqlcmd uses Windows authentication (as -E does): nothing to check.
    let Some(query) = parsed.query.clone() else {
        return Err(Output::fail(
            1,
            "Sqlcmd: octoup-sim runs only -Q \"<query>\" (no interactive mode).",
        ));
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
    };
    let mut printed: Vec<String> = Vec::new();
    let result = match parse_batch(&query) {
        Ok(statements) => statements.into_iter().try_for_each(|statement| {
            let out = sql.execute(statement)?;
            if !out.stdout.is_empty() {
                printed.push(out.stdout);
            }
            Ok(())
        }),
        Err(near) => Err(sql.msg(102, 15, &format!("Incorrect syntax near '{near}'."))),
    };
    let stdout = printed.join("\n");
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
