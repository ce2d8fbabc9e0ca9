//! The connection: the configured `sqlcmd` argv, with the password only as
//! `SQLCMDPASSWORD` in its environment, and `-Q <T-SQL>` appended.

use std::time::Duration;

use super::DatabaseError;
use crate::config::{Config, ConfigError, RehearsalSqlConfig, Secret, read_sql_password};
use crate::process::runner::{CommandOutput, CommandRunner, CommandSpec, LineHook};

/// How to reach the database.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub sqlcmd: Vec<String>,
    pub password: Option<Secret>,
    pub database: String,
    pub timeout: Duration,
    /// The setting `timeout` comes from, for the message when it runs out.
    pub timeout_setting: &'static str,
}

/// One statement to run: what it is for, extra environment (a SAS token for `$(NAME)`),
/// and a line hook for progress.
#[derive(Default)]
pub(crate) struct Call<'a> {
    pub options: &'a [&'a str],
    pub env: Vec<(String, Secret)>,
    pub on_line: Option<LineHook>,
    /// A quick query: `[timeouts] command` instead of the backup's timeout.
    pub quick: Option<Duration>,
}

impl Sql {
    pub fn from_config(config: &Config) -> Result<Sql, ConfigError> {
        Ok(Sql {
            password: config.sql_password()?,
            ..Sql::from_config_without_password(config)
        })
    }

    /// The rehearsal SQL Server (`[rehearsal.sql]`): its own argv and password, the same
    /// database name (the guard against dropping it) and timeouts as production.
    pub fn for_rehearsal(config: &Config, r: &RehearsalSqlConfig) -> Result<Sql, ConfigError> {
        Ok(Sql {
            sqlcmd: r.sqlcmd.clone(),
            password: r
                .password_file
                .as_deref()
                .map(read_sql_password)
                .transpose()?,
            ..Sql::from_config_without_password(config)
        })
    }

    fn from_config_without_password(config: &Config) -> Sql {
        Sql {
            sqlcmd: config.database.sqlcmd.clone(),
            password: None,
            database: config.database.name.clone(),
            timeout: Duration::from_secs(config.timeouts.backup),
            timeout_setting: "[timeouts] backup",
        }
    }

    /// Runs `sql`; a failed exit is [`DatabaseError::Sql`] with the server's message.
    pub(crate) async fn run(
        &self,
        runner: &dyn CommandRunner,
        what: &str,
        sql: String,
    ) -> Result<CommandOutput, DatabaseError> {
        self.call(runner, what, sql, Call::default()).await
    }

    /// Runs `sql` with extra sqlcmd `options` before `-Q` (the doctor's output format).
    pub(crate) async fn run_with(
        &self,
        runner: &dyn CommandRunner,
        what: &str,
        options: &[&str],
        sql: String,
    ) -> Result<CommandOutput, DatabaseError> {
        self.call(
            runner,
            what,
            sql,
            Call {
                options,
                ..Call::default()
            },
        )
        .await
    }

    pub(crate) async fn call(
        &self,
        runner: &dyn CommandRunner,
        what: &str,
        sql: String,
        call: Call<'_>,
    ) -> Result<CommandOutput, DatabaseError> {
        let mut argv = self.sqlcmd.clone();
        argv.extend(call.options.iter().map(|o| o.to_string()));
        argv.push("-Q".into());
        argv.push(sql);
        let (timeout, setting) = match call.quick {
            Some(t) => (t, "[timeouts] command"),
            None => (self.timeout, self.timeout_setting),
        };
        let mut spec = CommandSpec::new(what, argv, timeout)
            .timeout_setting(setting)
            .on_line(call.on_line);
        if let Some(pw) = &self.password {
            spec = spec.env("SQLCMDPASSWORD", pw.clone());
        }
        for (name, value) in call.env {
            spec = spec.env(name, value);
        }
        let out = runner.run(spec).await?;
        if !out.success() {
            return Err(DatabaseError::Sql {
                what: what.to_string(),
                code: out.code_text(),
                tail: out.tail(6),
            });
        }
        Ok(out)
    }
}
