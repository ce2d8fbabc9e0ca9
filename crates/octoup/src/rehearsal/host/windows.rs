//! The Windows host: a spare Windows node (never one of `[[nodes]]`) that installs the
//! staged target MSI through its node agent, makes a rehearsal instance against the copy,
//! runs `database-upgrade-status` and a timed `database --upgrade`, and serves the target
//! from that instance for the checks.
//!
//! The vendor's CLI takes the master key of an existing database only as
//! `--masterKey=VALUE` on its command line, so this host is refused unless the operator
//! opted in (`[rehearsal.windows] secret_arguments`); every such value is registered with
//! the run log's redaction and never journaled (docs/rehearsal.md).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::windows_cli as cli;
use super::{Launched, RehearsalHost};
use crate::config::{Config, NodeConfig, Secret, TimeoutsConfig, WindowsRehearsalConfig};
use crate::doctor::preflight::Connection;
use crate::installer::cache::{InstallerCache, InstallerSettings, Role};
use crate::nodes::NodeAgent;
use crate::nodes::ssh::{SshRunner, SshTransport};
use crate::octopus::api::OctopusApi;
use crate::process::runner::{CommandOutput, CommandRunner, CommandSpec};
use crate::progress::NoProgress;
use crate::rehearsal::endpoint::{self, SqlEndpoint};
use crate::rehearsal::record::{DATABASE_UPGRADE, Rehearsal, Rehearsals, WindowsInstance};
use crate::rehearsal::{Kit, RehearsalError};
use crate::version::Version;

/// Lines of a failed command's output kept as the excerpt.
const EXCERPT_LINES: usize = 40;

pub(in crate::rehearsal) struct WindowsHost {
    node: NodeConfig,
    settings: WindowsRehearsalConfig,
    /// `Octopus.Server.exe` on the spare node (its `server_exe`, else `[server]`'s).
    exe: Vec<String>,
    /// Runs on the spare node: this machine's runner, or over SSH.
    runner: Arc<dyn CommandRunner>,
    agent: Arc<dyn NodeAgent>,
    /// The production API key opens the copy too: API keys live in the database.
    api: OctopusApi,
    timeouts: TimeoutsConfig,
    /// The staged target installer (set by `ready`).
    installer: Mutex<Option<PathBuf>>,
    /// The output of the last command that failed, for the excerpt.
    last_output: Mutex<String>,
}

impl WindowsHost {
    /// The host for `[rehearsal.windows.node]`, if one is named.
    pub fn new(conn: &Connection) -> Result<Option<WindowsHost>, RehearsalError> {
        let config = &conn.config;
        let Some(node) = config.rehearsal.windows.node.clone() else {
            return Ok(None);
        };
        let settings = config.rehearsal.windows.clone();
        let url = cli::instance_url(&node.url, settings.listen_port);
        let agent = conn.agent(&node, &node.name, &url)?;
        let runner: Arc<dyn CommandRunner> = match node.ssh.as_deref() {
            Some(destination) => {
                let transport =
                    SshTransport::new(&config.ssh, &node.name, destination).map_err(|e| {
                        RehearsalError::Setup(format!("[rehearsal.windows.node] ssh: {e}"))
                    })?;
                Arc::new(SshRunner::new(transport, conn.runner.clone()))
            }
            None => conn.runner.clone(),
        };
        Ok(Some(WindowsHost {
            exe: config.server_exe_for(&node).to_vec(),
            api: conn.api.at(&url),
            node,
            settings,
            runner,
            agent,
            timeouts: config.timeouts.clone(),
            installer: Mutex::new(None),
            last_output: Mutex::new(String::new()),
        }))
    }

    /// Runs `Octopus.Server.exe <args>` on the spare node.
    async fn exe(
        &self,
        what: &str,
        args: Vec<String>,
        timeout: Duration,
        setting: &'static str,
    ) -> Result<CommandOutput, RehearsalError> {
        let mut argv = self.exe.clone();
        argv.extend(args);
        let spec = CommandSpec::new(format!("{what} on {}", self.node.name), argv, timeout)
            .timeout_setting(setting);
        Ok(self.runner.run(spec).await?)
    }

    async fn quick(&self, what: &str, args: Vec<String>) -> Result<CommandOutput, RehearsalError> {
        let timeout = Duration::from_secs(self.timeouts.command);
        self.exe(what, args, timeout, "[timeouts] command").await
    }

    /// A command that must succeed: its failure says what and the output's end.
    async fn checked(
        &self,
        kit: &Kit<'_>,
        what: &str,
        args: Vec<String>,
    ) -> Result<CommandOutput, RehearsalError> {
        let out = self.quick(what, args).await?;
        if !out.success() {
            return Err(self.failed(kit, what, &out));
        }
        Ok(out)
    }

    fn failed(&self, kit: &Kit<'_>, what: &str, out: &CommandOutput) -> RehearsalError {
        self.keep_output(out);
        RehearsalError::Setup(kit.log.scrub(&format!(
            "the spare node {} could not {what}: Octopus.Server.exe exited {}: {}",
            self.node.name,
            out.code_text(),
            out.tail(4)
        )))
    }

    fn keep_output(&self, out: &CommandOutput) {
        if let Ok(mut last) = self.last_output.lock() {
            *last = format!("{}\n{}", out.stdout, out.stderr).trim().to_string();
        }
    }

    /// The copy's connection string as the spare node reaches the SQL Server directly:
    /// Integrated Security (no secret), or the rehearsal's SQL login.
    fn connection(&self, kit: &Kit<'_>, database: &str) -> Result<Secret, RehearsalError> {
        let config = &kit.conn.config;
        let options = &config.rehearsal.connection_options;
        let s = if self.settings.integrated_security {
            let (host, port) = endpoint::server(config)?;
            Secret::new(endpoint::integrated_connection_string(
                &host, port, database, options,
            ))
        } else {
            let e = SqlEndpoint::from_config(config)?;
            kit.log.redact(&e.password);
            e.connection_string(&e.host, e.port, database, options)
        };
        kit.log.redact(&s);
        Ok(s)
    }

    fn instance<'r>(&self, r: &'r Rehearsal) -> Option<&'r WindowsInstance> {
        r.windows.as_ref().filter(|w| w.made)
    }
}

#[async_trait]
impl RehearsalHost for WindowsHost {
    fn refused(&self, kit: &Kit<'_>) -> Result<(), RehearsalError> {
        let config = &kit.conn.config;
        if !self.settings.secret_arguments {
            let login = if self.settings.integrated_security {
                None
            } else {
                Some(
                    SqlEndpoint::from_config(config)
                        .map(|e| e.login)
                        .unwrap_or_else(|_| "(sqlcmd's -U)".into()),
                )
            };
            return Err(RehearsalError::Setup(cli::refusal(
                &self.settings,
                &self.node.name,
                self.node.ssh.is_some(),
                login.as_deref(),
            )));
        }
        if let Some(reason) = config.production_node_like(&self.node) {
            return Err(RehearsalError::Setup(format!(
                "[rehearsal.windows.node]: {reason}"
            )));
        }
        Ok(())
    }

    async fn ready(&self, kit: &Kit<'_>, r: &mut Rehearsal) -> Result<String, RehearsalError> {
        let config = &kit.conn.config;
        // Refused before the copy exists: a connection string that cannot be made.
        self.connection(kit, "check")?;
        let names = cli::names(&self.settings, &r.id);
        r.image = InstallerCache::file_name(&r.target);
        r.windows = Some(WindowsInstance {
            node: self.node.name.clone(),
            instance: names.instance,
            home: names.home,
            config: names.config,
            url: self.api.base().to_string(),
            made: false,
            upgrade_status: None,
        });
        kit.events
            .phase("stage", &format!("the {} installer", r.target));
        let cache = InstallerCache::new(
            InstallerSettings::from_config(config),
            kit.conn.http.clone(),
            kit.conn.runner.clone(),
        );
        let staged = cache
            .ensure_installer(&r.target, Role::Target, &NoProgress)
            .await
            .map_err(|e| RehearsalError::Setup(format!("the target's installer: {e}")))?;
        self.agent
            .stage(&r.target, false)
            .await
            .map_err(|e| RehearsalError::Setup(format!("staging on the spare node: {e}")))?;
        if let Ok(mut i) = self.installer.lock() {
            *i = Some(staged.path.clone());
        }
        Ok(format!(
            "spare Windows node {}; the installer {} (verified by {}); the master key goes on Octopus.Server.exe's command line there ([rehearsal.windows] secret_arguments = true)",
            self.node.name,
            staged.path.display(),
            crate::installer::cache::describe(&staged.verified_by)
        ))
    }

    async fn launch(
        &self,
        kit: &Kit<'_>,
        r: &mut Rehearsal,
        book: &Rehearsals,
        master_key: Secret,
    ) -> Result<Option<Launched>, RehearsalError> {
        let Some(w) = r.windows.clone() else {
            return Err(RehearsalError::Setup(
                "the rehearsal instance was not named".into(),
            ));
        };
        let target = r.target.to_string();
        let installer = self
            .installer
            .lock()
            .ok()
            .and_then(|i| i.clone())
            .ok_or_else(|| RehearsalError::Setup("the installer was not staged".into()))?;

        kit.events.phase(
            "install",
            &format!("Octopus {target} on {}", self.node.name),
        );
        let t = Instant::now();
        let installed = self.agent.install(&installer, &target).await.map_err(|e| {
            RehearsalError::Setup(kit.log.scrub(&format!("installing on the spare node: {e}")))
        })?;
        kit.finish(
            r,
            book,
            "install",
            t,
            format!(
                "exit {} (log {})",
                installed.exit_code,
                installed.log.display()
            ),
        )?;

        kit.events.phase(
            "instance",
            &format!("{} against {}", w.instance, r.scratch_database),
        );
        let t = Instant::now();
        if let Some(made) = r.windows.as_mut() {
            made.made = true;
        }
        kit.save(r, book)?;
        self.checked(
            kit,
            "create the rehearsal instance",
            cli::create_instance(&cli::Names {
                instance: w.instance.clone(),
                home: w.home.clone(),
                config: w.config.clone(),
            }),
        )
        .await?;
        let connection = self.connection(kit, &r.scratch_database)?;
        kit.log.redact(&master_key);
        // The opt-in: the only route the vendor documents for an existing database.
        self.checked(
            kit,
            "point the rehearsal instance at the copy (database --connectionString --masterKey)",
            cli::database_settings(&w.instance, &connection, &master_key),
        )
        .await?;
        kit.finish(
            r,
            book,
            "instance",
            t,
            format!("{} at {}", w.instance, w.home),
        )?;

        // Older targets have no `database-upgrade-status` (reference/octopus-upgrades.md).
        let since = cli::UPGRADE_STATUS_SINCE.parse::<Version>().ok();
        if since.is_none_or(|v| r.target >= v) {
            let out = self
                .quick(
                    "ask database-upgrade-status",
                    cli::upgrade_status(&w.instance),
                )
                .await?;
            let said = kit
                .log
                .scrub(format!("{} {}", out.stdout.trim(), out.stderr.trim()).trim());
            kit.events.note(&format!("database-upgrade-status: {said}"));
            if let Some(rec) = r.windows.as_mut() {
                rec.upgrade_status = Some(said);
            }
            kit.save(r, book)?;
        }

        kit.events
            .phase(DATABASE_UPGRADE, &format!("{} → {target}", r.from));
        let t = Instant::now();
        let out = self
            .exe(
                "upgrade the copy's schema (database --upgrade)",
                cli::upgrade(&w.instance),
                Duration::from_secs(self.timeouts.db_upgrade),
                "[timeouts] db_upgrade",
            )
            .await?;
        if !out.success() {
            // A failed migration is the answer: no-go, with the error and the output.
            self.keep_output(&out);
            let text = kit.log.scrub(&format!("{}\n{}", out.stdout, out.stderr));
            let error = text
                .lines()
                .rev()
                .find(|l| l.to_ascii_lowercase().contains("error"))
                .or_else(|| text.lines().rev().find(|l| !l.trim().is_empty()))
                .map(|l| l.trim().to_string());
            r.reasons.push(format!(
                "the migrations failed: `database --upgrade` on the copy exited {}{}",
                out.code_text(),
                error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
            ));
            r.error = error;
            r.log_excerpt = Some(crate::process::runner::tail_lines(&text, EXCERPT_LINES));
            kit.finish(r, book, DATABASE_UPGRADE, t, "failed".into())?;
            return Ok(None);
        }
        kit.finish(
            r,
            book,
            DATABASE_UPGRADE,
            t,
            format!("{} → {target}", r.from),
        )?;

        let port = self.settings.listen_port;
        kit.events.phase(
            "start",
            &format!("{} on {}", w.instance, cli::listen_prefix(port)),
        );
        let started = Instant::now();
        self.checked(
            kit,
            "set the listen prefix",
            cli::configure(&w.instance, port),
        )
        .await?;
        self.checked(
            kit,
            "install and start the rehearsal instance's service",
            cli::service(&w.instance, &["install", "start"]),
        )
        .await?;
        Ok(Some(Launched {
            api: self.api.clone(),
            phase: "start",
            started,
            keep: None,
        }))
    }

    fn start_limit(&self, config: &Config) -> (Duration, &'static str) {
        // The migrations ran (and were timed) before: this wait is a service's start.
        (
            Duration::from_secs(config.timeouts.start),
            "[timeouts] start",
        )
    }

    async fn stopped(&self, _r: &Rehearsal) -> Result<Option<Option<i64>>, RehearsalError> {
        // A Windows service that stops is seen as an API that does not answer: the wait's
        // deadline ([timeouts] start) decides.
        Ok(None)
    }

    async fn logs(&self, r: &Rehearsal) -> String {
        let last = self
            .last_output
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        if !last.is_empty() {
            return crate::process::runner::tail_lines(&last, EXCERPT_LINES);
        }
        match &r.windows {
            Some(w) => format!(
                "(the rehearsal instance's server log is in {}\\Logs on {})",
                w.home, w.node
            ),
            None => String::new(),
        }
    }

    async fn teardown(&self, r: &Rehearsal, actions: &mut Vec<String>) -> bool {
        let Some(w) = self.instance(r) else {
            return true;
        };
        if !w.node.eq_ignore_ascii_case(&self.node.name) {
            actions.push(format!(
                "could not remove the rehearsal instance {} on {}: [rehearsal.windows.node] now names {}; put {} back there and run `octoup rehearse --cleanup`",
                w.instance, w.node, self.node.name, w.node
            ));
            return false;
        }
        let mut ok = true;
        let steps: [(&str, Vec<String>, String); 2] = [
            (
                "stop and uninstall the rehearsal instance's service",
                cli::service(&w.instance, &["stop", "uninstall"]),
                format!(
                    "stopped and uninstalled the service of {} on {}",
                    w.instance, w.node
                ),
            ),
            (
                "delete the rehearsal instance",
                cli::delete_instance(&w.instance),
                format!("deleted the instance {} on {}", w.instance, w.node),
            ),
        ];
        for (what, args, done) in steps {
            match self.quick(what, args).await {
                Ok(out) if out.success() => actions.push(done),
                Ok(out) if cli::instance_gone(&format!("{}{}", out.stdout, out.stderr)) => {}
                Ok(out) => {
                    ok = false;
                    actions.push(format!(
                        "could not {what} {} on {} (exit {}): {}",
                        w.instance,
                        w.node,
                        out.code_text(),
                        out.tail(2)
                    ));
                }
                Err(e) => {
                    ok = false;
                    actions.push(format!(
                        "could not {what} {} on {}: {e}",
                        w.instance, w.node
                    ));
                }
            }
        }
        // Said, so that nobody is surprised to find it there: the node is a spare, and the
        // next rehearsal's installer runs over it.
        if r.phases.iter().any(|p| p.name == "install") {
            actions.push(format!(
                "left Octopus {} installed on the spare node {} (no instance uses it)",
                r.target, w.node
            ));
        }
        ok
    }
}
