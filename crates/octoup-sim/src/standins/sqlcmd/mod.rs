//! `octoup-sim sqlcmd --dir DIR <sqlcmd arguments>`: the simulated SQL Server, reached the
//! way octoup reaches the real one. Understands the three statements an upgrade needs:
//!
//! - `BACKUP DATABASE [db] TO DISK = N'path' [WITH COPY_ONLY, CHECKSUM, COMPRESSION, INIT, FORMAT, STATS = n]`
//! - `RESTORE VERIFYONLY FROM DISK = N'path' [WITH CHECKSUM]`
//! - `RESTORE DATABASE [db] FROM DISK = N'path' WITH REPLACE [, RECOVERY, STATS = n]`
//!
//! plus `SELECT @@VERSION`. Anything else is a syntax error. The password comes only from
//! `SQLCMDPASSWORD`; `-P` works like sqlcmd but is recorded as a secret leak.
//!
//! - `args`: sqlcmd's command line; `parse`: the T-SQL; `execute`: running a statement.

mod args;
mod execute;
mod parse;

use std::cell::Cell;

use args::parse_args;
use execute::Sql;
use parse::parse_statement;

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
    let sql = Sql {
        store,
        server,
        fault_code: Cell::new(None),
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
