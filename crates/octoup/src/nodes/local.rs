//! A node on this machine (or reached through argv prefixes that point at it): every
//! operation runs `Octopus.Server.exe` or the installer through the configured argv and a
//! [`CommandRunner`], and watches the node's own HTTP address to confirm what it claims.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};

use crate::config::{Config, NodeConfig, Secret, TimeoutsConfig};
use crate::octopus::api::{OctopusApi, Ping};
use crate::process::clock::{Deadline, Poller, human_duration};
use crate::process::runner::{
    CommandOutput, CommandRunner, CommandSpec, RunError, SpawnHook, expand, tail_lines,
};
use crate::version::Version;

use super::agent::*;
use super::output::*;

/// A node on this machine (or reached through argv prefixes that point at it).
pub struct LocalAgent {
    name: String,
    exe: Vec<String>,
    instance: String,
    install: Vec<String>,
    uninstall: Vec<String>,
    api: OctopusApi,
    runner: Arc<dyn CommandRunner>,
    timeouts: TimeoutsConfig,
    busy_retries: u32,
    /// Where installer logs go.
    log_dir: PathBuf,
}

impl LocalAgent {
    pub fn new(
        config: &Config,
        node: &NodeConfig,
        name: &str,
        api: OctopusApi,
        runner: Arc<dyn CommandRunner>,
        log_dir: PathBuf,
    ) -> LocalAgent {
        LocalAgent {
            name: name.to_string(),
            exe: config.server_exe_for(node).to_vec(),
            instance: config.instance_for(node).to_string(),
            install: config.install_for(node).to_vec(),
            uninstall: config.uninstall_for(node).to_vec(),
            api,
            runner,
            timeouts: config.timeouts.clone(),
            busy_retries: config.installer.busy_retries,
            log_dir,
        }
    }

    fn exe_argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv = self.exe.clone();
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    }

    /// One `database --upgrade`, its pid told to `on_spawn`.
    async fn run_database_upgrade(&self, on_spawn: Option<SpawnHook>) -> Result<(), NodeError> {
        let instance = self.instance_arg();
        let timeout = Duration::from_secs(self.timeouts.db_upgrade);
        let spec = CommandSpec::new(
            format!("database upgrade {}", self.name),
            self.exe_argv(&["database", "--upgrade", &instance]),
            timeout,
        )
        .timeout_setting("[timeouts] db_upgrade")
        .on_spawn(on_spawn);
        let out = self.runner.run(spec).await?;
        if out.success() {
            return Ok(());
        }
        let tail = out.tail(5);
        if looks_like_nodes_running(&tail) {
            return Err(NodeError::NodesStillRunning {
                node: self.name.clone(),
                tail,
            });
        }
        Err(NodeError::Command {
            node: self.name.clone(),
            command: "Octopus.Server.exe database --upgrade".into(),
            code: out.code_text(),
            tail,
        })
    }

    fn instance_arg(&self) -> String {
        format!("--instance={}", self.instance)
    }

    /// Runs `Octopus.Server.exe <args>`; a non-zero exit is an error with the output's tail.
    async fn exe(
        &self,
        what: &str,
        args: &[&str],
        timeout: Duration,
        setting: &'static str,
        sensitive: bool,
        on_spawn: Option<SpawnHook>,
    ) -> Result<CommandOutput, NodeError> {
        let mut spec = CommandSpec::new(
            format!("{what} {}", self.name),
            self.exe_argv(args),
            timeout,
        )
        .timeout_setting(setting)
        .on_spawn(on_spawn);
        if sensitive {
            spec = spec.sensitive();
        }
        let out = self.runner.run(spec).await?;
        if !out.success() {
            return Err(NodeError::Command {
                node: self.name.clone(),
                command: format!("Octopus.Server.exe {}", args.join(" ")),
                code: out.code_text(),
                tail: if sensitive {
                    "(output not shown: it may hold the master key)".into()
                } else {
                    out.tail(5)
                },
            });
        }
        Ok(out)
    }

    /// Runs an msiexec argv template (install or uninstall) with 1618 retries; 0 and 3010
    /// succeed, anything else fails with the tail of the installer's log.
    async fn run_msi(
        &self,
        what: &str,
        template: &[String],
        installer: &Path,
        version: &str,
    ) -> Result<InstallOutcome, NodeError> {
        std::fs::create_dir_all(&self.log_dir).map_err(|e| NodeError::Output {
            node: self.name.clone(),
            command: "install".into(),
            detail: format!("cannot create {}: {e}", self.log_dir.display()),
        })?;
        let stamp = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        let log = self.log_dir.join(format!(
            "install-{}-{version}-{stamp}.log",
            file_safe(&self.name)
        ));
        // The installer writes into a file that only its owner can read (it names hosts,
        // paths and properties); msiexec keeps an existing file's permissions.
        let _ = crate::process::platform::append_owner_only(&log);
        let installer_text = installer.to_string_lossy().into_owned();
        let log_text = log.to_string_lossy().into_owned();
        let argv = expand(
            template,
            &[
                ("installer", installer_text.as_str()),
                ("log", log_text.as_str()),
                ("version", version),
            ],
        );
        let timeout = Duration::from_secs(self.timeouts.install);
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let once = || async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let spec = CommandSpec::new(format!("{what} {}", self.name), argv.clone(), timeout)
                .timeout_setting("[timeouts] install");
            let mut out = self.runner.run(spec).await.map_err(Attempt::Run)?;
            out.code = msi_exit_code(out.code, &read_log_tail(&log, 5));
            match out.code {
                Some(MSI_OK | MSI_REBOOT_REQUIRED) => Ok(out),
                Some(MSI_BUSY) => Err(Attempt::Busy(out)),
                _ => Err(Attempt::Failed(out)),
            }
        };
        // 1618: another installation runs (Windows Update, another MSI): wait and retry.
        let policy = ExponentialBuilder::default()
            .with_min_delay(Duration::from_secs(1))
            .with_max_delay(Duration::from_secs(60))
            .with_max_times(self.busy_retries as usize);
        let result = once
            .retry(policy)
            .when(|e| matches!(e, Attempt::Busy(_)))
            .await;
        let attempts = attempts.into_inner();
        let out = match result {
            Ok(out) => out,
            Err(Attempt::Run(e)) => return Err(e.into()),
            Err(Attempt::Busy(out) | Attempt::Failed(out)) => {
                let mut tail = msi_failure_excerpt(&log, 15);
                if tail.is_empty() {
                    tail = out.tail(10);
                }
                let code = match out.code {
                    Some(MSI_BUSY) => format!(
                        "exit code 1618: another installation kept running through {attempts} tries"
                    ),
                    Some(1603) => "exit code 1603: fatal error during installation".into(),
                    _ => out.code_text(),
                };
                return Err(NodeError::Install {
                    node: self.name.clone(),
                    code,
                    log,
                    tail,
                });
            }
        };
        let exit_code = out.code.unwrap_or_default();
        Ok(InstallOutcome {
            exit_code,
            reboot_required: exit_code == MSI_REBOOT_REQUIRED,
            attempts,
            log,
        })
    }

    fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.timeouts.command)
    }

    /// `Octopus.Server.exe <command> --instance=NAME --format=json` under `[timeouts] command`,
    /// its output read by `parse`; output it cannot read fails as `shown` with `detail`.
    async fn show<T>(
        &self,
        command: &str,
        sensitive: bool,
        parse: impl FnOnce(&str) -> Option<T>,
        shown: &str,
        detail: &str,
    ) -> Result<T, NodeError> {
        let instance = self.instance_arg();
        let out = self
            .quick(command, &[command, &instance, "--format=json"], sensitive)
            .await?;
        parse(&out.stdout).ok_or_else(|| NodeError::Output {
            node: self.name.clone(),
            command: shown.into(),
            detail: detail.into(),
        })
    }

    /// `service --<action>` under `timeout`. The returned deadline covers the command and
    /// the wait that follows it, so it starts before the command.
    async fn service(
        &self,
        action: &str,
        timeout: Duration,
        setting: &'static str,
        on_spawn: Option<SpawnHook>,
    ) -> Result<Deadline, NodeError> {
        let deadline = Deadline::after(timeout);
        let instance = self.instance_arg();
        let flag = format!("--{action}");
        self.exe(
            action,
            &["service", &flag, &instance],
            timeout,
            setting,
            false,
            on_spawn,
        )
        .await?;
        Ok(deadline)
    }

    /// A short `Octopus.Server.exe` command under `[timeouts] command`.
    async fn quick(
        &self,
        what: &str,
        args: &[&str],
        sensitive: bool,
    ) -> Result<CommandOutput, NodeError> {
        self.quick_watched(what, args, sensitive, None).await
    }

    async fn quick_watched(
        &self,
        what: &str,
        args: &[&str],
        sensitive: bool,
        on_spawn: Option<SpawnHook>,
    ) -> Result<CommandOutput, NodeError> {
        self.exe(
            what,
            args,
            self.command_timeout(),
            "[timeouts] command",
            sensitive,
            on_spawn,
        )
        .await
    }

    async fn delete_watchdog_with(&self, on_spawn: Option<SpawnHook>) -> Result<(), NodeError> {
        self.quick_watched(
            "delete watchdog",
            &["watchdog", "--delete"],
            false,
            on_spawn,
        )
        .await?;
        Ok(())
    }

    async fn create_watchdog_with(
        &self,
        watchdog: &WatchdogInfo,
        on_spawn: Option<SpawnHook>,
    ) -> Result<(), NodeError> {
        let interval = format!("--interval={}", watchdog.interval_minutes.unwrap_or(5));
        let instances = format!(
            "--instances={}",
            watchdog.instances.as_deref().unwrap_or(&self.instance)
        );
        self.quick_watched(
            "create watchdog",
            &["watchdog", "--create", &interval, &instances],
            false,
            on_spawn,
        )
        .await?;
        Ok(())
    }

    /// `service --stop`, then waits until the node no longer answers.
    async fn stop_with(&self, on_spawn: Option<SpawnHook>) -> Result<(), NodeError> {
        let timeout = Duration::from_secs(self.timeouts.stop);
        let deadline = self
            .service("stop", timeout, "[timeouts] stop", on_spawn)
            .await?;
        let mut poll = Poller::standard();
        loop {
            let ping = self.api.ping().await;
            if !ping.is_up() {
                return Ok(());
            }
            if deadline.expired() {
                return Err(NodeError::StillUp {
                    node: self.name.clone(),
                    url: self.api.base().to_string(),
                    state: ping.describe(),
                    waited: human_duration(timeout),
                });
            }
            poll.wait(Some(&deadline)).await;
        }
    }

    /// `service --start`, then waits until the node serves `expected`.
    async fn start_with(
        &self,
        expected: &str,
        on_spawn: Option<SpawnHook>,
    ) -> Result<(), NodeError> {
        let timeout = Duration::from_secs(self.timeouts.start);
        let deadline = self
            .service("start", timeout, "[timeouts] start", on_spawn)
            .await?;
        let want: Option<Version> = expected.parse().ok();
        let mut poll = Poller::standard();
        loop {
            let status = self.status().await;
            let version_ok = match (&status.api_version, &want) {
                (Some(v), Some(w)) => v.parse::<Version>().ok().as_ref() == Some(w),
                (Some(v), None) => v == expected,
                _ => false,
            };
            if version_ok && status.ping.is_up() {
                return Ok(());
            }
            if deadline.expired() {
                return Err(NodeError::NotUp {
                    node: self.name.clone(),
                    url: self.api.base().to_string(),
                    expected: expected.to_string(),
                    waited: human_duration(timeout),
                    last: match status.api_version {
                        Some(v) => format!("{}, /api Version {v}", status.ping.describe()),
                        None => status.ping.describe(),
                    },
                });
            }
            poll.wait(Some(&deadline)).await;
        }
    }
}

#[async_trait]
impl NodeAgent for LocalAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn url(&self) -> &str {
        self.api.base()
    }

    async fn ping(&self) -> Ping {
        self.api.ping().await
    }

    async fn served_version(&self) -> Option<String> {
        self.api.root().await.ok().map(|r| r.version)
    }

    async fn installed_version(&self) -> Result<Version, NodeError> {
        let out = self
            .quick("version", &["version", "--format=json"], false)
            .await?;
        parse_version_output(&out.stdout).ok_or_else(|| NodeError::Output {
            node: self.name.clone(),
            command: "Octopus.Server.exe version --format=json".into(),
            detail: format!("no version in {:?}", tail_lines(&out.stdout, 3)),
        })
    }

    async fn watchdog(&self) -> Result<WatchdogInfo, NodeError> {
        self.show(
            "show-configuration",
            false,
            parse_watchdog,
            "Octopus.Server.exe show-configuration --format=json",
            "not a JSON object",
        )
        .await
    }

    async fn delete_watchdog(&self) -> Result<(), NodeError> {
        self.delete_watchdog_with(None).await
    }

    async fn create_watchdog(&self, watchdog: &WatchdogInfo) -> Result<(), NodeError> {
        self.create_watchdog_with(watchdog, None).await
    }

    async fn master_key(&self) -> Result<Secret, NodeError> {
        self.show(
            "show-master-key",
            true,
            parse_master_key,
            "Octopus.Server.exe show-master-key",
            "no master key in the output (output not shown)",
        )
        .await
    }

    async fn stop(&self) -> Result<(), NodeError> {
        self.stop_with(None).await
    }

    async fn start(&self, expected: &str) -> Result<(), NodeError> {
        self.start_with(expected, None).await
    }

    async fn install(&self, installer: &Path, version: &str) -> Result<InstallOutcome, NodeError> {
        self.run_msi("install", &self.install, installer, version)
            .await
    }

    async fn uninstall(
        &self,
        installer: &Path,
        version: &str,
    ) -> Result<InstallOutcome, NodeError> {
        self.run_msi("uninstall", &self.uninstall, installer, version)
            .await
    }

    async fn database_upgrade(&self) -> Result<(), NodeError> {
        self.run_database_upgrade(None).await
    }

    async fn watched(
        &self,
        command: NodeCommand<'_>,
        on_spawn: SpawnHook,
    ) -> Result<(), NodeError> {
        let hook = Some(on_spawn);
        match command {
            NodeCommand::Stop => self.stop_with(hook).await,
            NodeCommand::Start { expected } => self.start_with(expected, hook).await,
            NodeCommand::DeleteWatchdog => self.delete_watchdog_with(hook).await,
            NodeCommand::CreateWatchdog(w) => self.create_watchdog_with(w, hook).await,
            NodeCommand::UpgradeDatabase => self.run_database_upgrade(hook).await,
        }
    }

    async fn database_upgrade_pending(&self) -> Result<Option<bool>, NodeError> {
        let instance = self.instance_arg();
        let spec = CommandSpec::new(
            format!("database-upgrade-status {}", self.name),
            self.exe_argv(&["database-upgrade-status", &instance, "--format=json"]),
            self.command_timeout(),
        );
        let out = self.runner.run(spec).await?;
        if !out.success() {
            return Ok(None);
        }
        Ok(parse_upgrade_pending(&format!(
            "{}\n{}",
            out.stdout, out.stderr
        )))
    }

    async fn drain_cli(&self, on: bool) -> Result<(), NodeError> {
        let instance = self.instance_arg();
        let drain = format!("--drain={on}");
        self.quick("drain", &["node", &instance, &drain], false)
            .await?;
        Ok(())
    }
}

/// One install attempt's failure, for the retry policy.
enum Attempt {
    Run(RunError),
    Busy(CommandOutput),
    Failed(CommandOutput),
}
