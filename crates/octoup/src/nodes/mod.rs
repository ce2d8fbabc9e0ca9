//! Node-level operations behind one trait, so the orchestrator does not care whether a node
//! is this machine ([`LocalAgent`]) or another one reached over a transport (SSH, later).
//!
//! Every operation runs `Octopus.Server.exe` or the installer through the configured argv
//! and a [`CommandRunner`] (so every command has a timeout and lands in the run log), and
//! watches the node's own HTTP address to confirm what the command claims.

pub mod actions;
pub mod remote;
pub mod ssh;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{Config, NodeConfig, Secret, TimeoutsConfig};
use crate::octopus::api::{OctopusApi, Ping};
use crate::process::clock::{Deadline, Poller, human_duration};
use crate::process::runner::{
    CommandOutput, CommandRunner, CommandSpec, RunError, expand, tail_lines,
};
use crate::version::Version;

/// msiexec: success.
pub const MSI_OK: i32 = 0;
/// msiexec: success, a reboot is required to finish.
pub const MSI_REBOOT_REQUIRED: i32 = 3010;
/// msiexec: another installation is in progress (retry later).
pub const MSI_BUSY: i32 = 1618;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{node}: `{command}` failed ({code}): {tail}")]
    Command {
        node: String,
        command: String,
        code: String,
        tail: String,
    },
    #[error(
        "{node}: the installer failed ({code}). Last lines of its log {log}:\n{tail}\nFix the cause (the log names it), then run octoup again"
    )]
    Install {
        node: String,
        code: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "{node}: the database upgrade refused because nodes still look alive: {tail}. Every node must be stopped (and seen stopped) first"
    )]
    NodesStillRunning { node: String, tail: String },
    #[error(
        "{node}: after `service --stop` the node still answers at {url} ({state}) {waited} later. Stop it by hand (services.msc) and run octoup again"
    )]
    StillUp {
        node: String,
        url: String,
        state: String,
        waited: String,
    },
    #[error(
        "{node}: after `service --start` the node did not serve version {expected} at {url} within {waited} (last seen: {last}). Look at the server log on the node; raise [timeouts] start if it needs longer"
    )]
    NotUp {
        node: String,
        url: String,
        expected: String,
        waited: String,
        last: String,
    },
    #[error("{node}: cannot understand the output of `{command}`: {detail}")]
    Output {
        node: String,
        command: String,
        detail: String,
    },
}

/// The service watchdog of a node's host, as `show-configuration` reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchdogInfo {
    pub enabled: bool,
    pub interval_minutes: Option<u32>,
    pub instances: Option<String>,
}

/// What an install did.
#[derive(Debug, Clone, PartialEq)]
pub struct InstallOutcome {
    pub exit_code: i32,
    pub reboot_required: bool,
    /// Tries in all (1618 retries included).
    pub attempts: u32,
    pub log: PathBuf,
}

/// How a node looks from outside.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    pub ping: Ping,
    /// `/api` Version at the node's own address, when it answers.
    pub api_version: Option<String>,
}

/// Node-level operations.
#[async_trait]
pub trait NodeAgent: Send + Sync {
    /// The node's name as registered in Octopus.
    fn name(&self) -> &str;

    /// The node's own API (for ping and `/api`).
    fn api(&self) -> &OctopusApi;

    /// The installed binary version (`Octopus.Server.exe version`).
    async fn installed_version(&self) -> Result<Version, NodeError>;

    async fn watchdog(&self) -> Result<WatchdogInfo, NodeError>;
    async fn delete_watchdog(&self) -> Result<(), NodeError>;
    async fn create_watchdog(&self, watchdog: &WatchdogInfo) -> Result<(), NodeError>;

    /// `show-master-key`; the output is never logged.
    async fn master_key(&self) -> Result<Secret, NodeError>;

    /// `service --stop`, then waits until the node no longer answers.
    async fn stop(&self) -> Result<(), NodeError>;

    /// `service --start`, then waits until `/api` reports `expected` and ping answers
    /// (200, or 418 while the node is still drained).
    async fn start(&self, expected: &str) -> Result<(), NodeError>;

    /// Runs the installer on `installer`; 0 and 3010 succeed, 1618 is retried.
    async fn install(&self, installer: &Path, version: &str) -> Result<InstallOutcome, NodeError>;

    /// Removes the installed product (`msiexec /x`), the first half of putting an older
    /// version back: an MSI refuses to install over a newer version of itself. `installer`
    /// is the package of the installed version.
    async fn uninstall(
        &self,
        installer: &Path,
        version: &str,
    ) -> Result<InstallOutcome, NodeError> {
        let _ = (installer, version);
        Err(NodeError::Output {
            node: self.name().to_string(),
            command: "uninstall".into(),
            detail: "this node's transport cannot uninstall yet".into(),
        })
    }

    /// One `database --upgrade`. [`NodeError::NodesStillRunning`] when the server refused
    /// because it still sees running nodes (worth retrying).
    async fn database_upgrade(&self) -> Result<(), NodeError>;

    /// Whether starting would apply schema changes (`database-upgrade-status`); `None` when
    /// the server cannot tell (older than 2023.4) or the answer is not understood.
    async fn database_upgrade_pending(&self) -> Result<Option<bool>, NodeError>;

    /// Sets the drain flag through `node --drain=...` (for when the API cannot be used).
    async fn drain_cli(&self, on: bool) -> Result<(), NodeError>;

    /// Downloads and verifies the installer for `version` on the node itself, before the
    /// outage (`rollback`: the installed version's, kept to put it back). A node on this
    /// machine uses the orchestrator's own cache, so there is nothing to do.
    async fn stage(&self, version: &Version, rollback: bool) -> Result<(), NodeError> {
        let _ = (version, rollback);
        Ok(())
    }

    async fn status(&self) -> NodeStatus {
        let ping = self.api().ping().await;
        let api_version = if ping.is_up() {
            self.api().root().await.ok().map(|r| r.version)
        } else {
            None
        };
        NodeStatus { ping, api_version }
    }
}

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
    ) -> Result<CommandOutput, NodeError> {
        let mut spec = CommandSpec::new(
            format!("{what} {}", self.name),
            self.exe_argv(args),
            timeout,
        )
        .timeout_setting(setting);
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
                let mut tail = read_log_tail(&log, 15);
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
        self.exe(
            what,
            args,
            self.command_timeout(),
            "[timeouts] command",
            sensitive,
        )
        .await
    }
}

#[async_trait]
impl NodeAgent for LocalAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn api(&self) -> &OctopusApi {
        &self.api
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
        self.quick("delete watchdog", &["watchdog", "--delete"], false)
            .await?;
        Ok(())
    }

    async fn create_watchdog(&self, watchdog: &WatchdogInfo) -> Result<(), NodeError> {
        let interval = format!("--interval={}", watchdog.interval_minutes.unwrap_or(5));
        let instances = format!(
            "--instances={}",
            watchdog.instances.as_deref().unwrap_or(&self.instance)
        );
        self.quick(
            "create watchdog",
            &["watchdog", "--create", &interval, &instances],
            false,
        )
        .await?;
        Ok(())
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
        let timeout = Duration::from_secs(self.timeouts.stop);
        let deadline = self.service("stop", timeout, "[timeouts] stop").await?;
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

    async fn start(&self, expected: &str) -> Result<(), NodeError> {
        let timeout = Duration::from_secs(self.timeouts.start);
        let deadline = self.service("start", timeout, "[timeouts] start").await?;
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
        let instance = self.instance_arg();
        let timeout = Duration::from_secs(self.timeouts.db_upgrade);
        let spec = CommandSpec::new(
            format!("database upgrade {}", self.name),
            self.exe_argv(&["database", "--upgrade", &instance]),
            timeout,
        )
        .timeout_setting("[timeouts] db_upgrade");
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

/// The agent for a configured node: this machine today; the seam where a transport (SSH)
/// plugs in for nodes with `ssh = "user@host"`.
pub fn agent_for(
    config: &Config,
    node: &NodeConfig,
    name: &str,
    api: OctopusApi,
    runner: Arc<dyn CommandRunner>,
    log_dir: PathBuf,
) -> Result<Arc<dyn NodeAgent>, String> {
    if node.ssh.is_some() {
        let agent = crate::nodes::remote::SshAgent::new(config, node, name, api, runner, log_dir)
            .map_err(|e| e.to_string())?;
        return Ok(Arc::new(agent));
    }
    Ok(Arc::new(LocalAgent::new(
        config, node, name, api, runner, log_dir,
    )))
}

/// One install attempt's failure, for the retry policy.
enum Attempt {
    Run(RunError),
    Busy(CommandOutput),
    Failed(CommandOutput),
}

/// A name made safe for a file name.
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The version in `version --format=json` output (or plain text): a JSON field named like
/// a version, else the first token that parses as one.
pub fn parse_version_output(text: &str) -> Option<Version> {
    if let Some(v) = first_json_object(text) {
        for key in [
            "Version",
            "InformationalVersion",
            "MajorMinorPatch",
            "FullSemVer",
        ] {
            if let Some(found) = find_key_ci(&v, key).and_then(Value::as_str) {
                if let Ok(version) = found.trim().parse() {
                    return Some(version);
                }
                // "2024.1.10+Branch.main.Sha.abc": keep the part before build metadata.
                if let Some(head) = found.split(['+', ' ']).next()
                    && let Ok(version) = head.parse()
                {
                    return Some(version);
                }
            }
        }
    }
    text.split(|c: char| c.is_whitespace() || "\"',;:()[]{}".contains(c))
        .filter_map(|t| t.trim_start_matches(['v', 'V']).parse().ok())
        .next()
}

/// Watchdog settings from `show-configuration` JSON: flat dotted keys
/// (`Octopus.Watchdog.Enabled`) or the hierarchical form. A configuration without them
/// means no watchdog. `None` when the output is not JSON at all.
pub fn parse_watchdog(text: &str) -> Option<WatchdogInfo> {
    let v = first_json_object(text)?;
    let get = |name: &str| -> Option<Value> {
        find_key_ci(&v, &format!("Octopus.Watchdog.{name}"))
            .cloned()
            .or_else(|| {
                v.get("Octopus")
                    .and_then(|o| find_key_ci(o, "Watchdog"))
                    .and_then(|w| find_key_ci(w, name))
                    .cloned()
            })
    };
    let enabled = match get("Enabled") {
        Some(Value::Bool(b)) => b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let interval_minutes = match get("Interval") {
        Some(Value::Number(n)) => n.as_u64().map(|n| n as u32),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let instances = match get("Instances") {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    };
    Some(WatchdogInfo {
        enabled,
        interval_minutes,
        instances,
    })
}

/// The master key from `show-master-key` output: JSON `{"MasterKey": ...}` or text whose
/// last line holds it (after an optional `Master key:` label).
pub fn parse_master_key(text: &str) -> Option<Secret> {
    if let Some(v) = first_json_object(text)
        && let Some(key) = find_key_ci(&v, "MasterKey").and_then(Value::as_str)
    {
        return Some(Secret::new(key.trim())).filter(|s| !s.is_empty());
    }
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let key = line.rsplit(':').next().unwrap_or(line).trim();
    let plausible = key.len() >= 16
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c));
    plausible.then(|| Secret::new(key))
}

/// `database-upgrade-status` in words: pending, not pending, or unknown.
pub fn parse_upgrade_pending(text: &str) -> Option<bool> {
    if let Some(v) = first_json_object(text) {
        for key in [
            "UpgradeRequired",
            "IsUpgradeRequired",
            "RequiresUpgrade",
            "Pending",
        ] {
            if let Some(b) = find_key_ci(&v, key).and_then(Value::as_bool) {
                return Some(b);
            }
        }
    }
    let t = text.to_ascii_lowercase();
    let no = [
        "no upgrade",
        "not required",
        "up to date",
        "up-to-date",
        "no pending",
        "no scripts",
    ];
    let yes = [
        "will be upgraded",
        "upgrade required",
        "requires an upgrade",
        "pending",
        "scripts to run",
        "needs upgrade",
    ];
    if no.iter().any(|p| t.contains(p)) {
        Some(false)
    } else if yes.iter().any(|p| t.contains(p)) {
        Some(true)
    } else {
        None
    }
}

/// The server's refusal to upgrade while it sees nodes running (2023.2.9755+).
pub fn looks_like_nodes_running(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    (t.contains("node")
        && (t.contains("running") || t.contains("still active") || t.contains("online")))
        && !t.contains("license")
}

fn first_json_object(text: &str) -> Option<Value> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    (end > start)
        .then(|| serde_json::from_str::<Value>(&text[start..=end]).ok())
        .flatten()
        .filter(Value::is_object)
}

fn find_key_ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// msiexec's exit code. Unix keeps only 8 bits of an exit status, so a simulated msiexec's
/// 1603 arrives as 67; the verbose log's "Installation success or error status: N" line
/// holds the whole code, and is used when it agrees with the low 8 bits.
pub fn msi_exit_code(raw: Option<i32>, log_tail: &str) -> Option<i32> {
    let raw = raw?;
    let from_log = log_tail
        .rsplit("error status: ")
        .next()
        .filter(|_| log_tail.contains("error status: "))
        .and_then(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<i32>()
                .ok()
        });
    match from_log {
        Some(full) if full == raw || (full & 0xFF) == raw => Some(full),
        _ => Some(raw),
    }
}

/// The last lines of an installer log (msiexec writes UTF-16 when asked for Unicode).
fn read_log_tail(path: &Path, lines: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let text = if bytes.starts_with(&[0xFF, 0xFE]) {
        let units: Vec<u16> = bytes[2..]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    };
    tail_lines(&text, lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_found_in_json_or_text() {
        let v = |s: &str| parse_version_output(s).map(|v| v.to_string());
        assert_eq!(
            v(r#"{"Version":"2024.1.10"}"#).as_deref(),
            Some("2024.1.10")
        );
        assert_eq!(
            v(r#"noise {"InformationalVersion":"2024.2.7+Branch.main"} "#).as_deref(),
            Some("2024.2.7")
        );
        assert_eq!(
            v("Octopus Deploy: 2023.4.8166\n").as_deref(),
            Some("2023.4.8166")
        );
        assert_eq!(v("nothing here"), None);
    }

    #[test]
    fn watchdog_flat_hierarchical_or_absent() {
        let w = parse_watchdog(
            r#"{"Octopus.Home":"C:\\Octopus","Octopus.Watchdog.Enabled":true,"Octopus.Watchdog.Interval":5,"Octopus.Watchdog.Instances":"*"}"#,
        )
        .unwrap();
        assert_eq!(
            w,
            WatchdogInfo {
                enabled: true,
                interval_minutes: Some(5),
                instances: Some("*".into())
            }
        );
        let w = parse_watchdog(r#"{"Octopus":{"Watchdog":{"Enabled":"True","Interval":"10"}}}"#)
            .unwrap();
        assert!(w.enabled);
        assert_eq!(w.interval_minutes, Some(10));
        assert!(!parse_watchdog(r#"{"Octopus.Home":"x"}"#).unwrap().enabled);
        assert!(parse_watchdog("Error: access denied").is_none());
    }

    #[test]
    fn master_key_json_or_text() {
        let k = parse_master_key(r#"{"MasterKey":"q3Yl0p9tRk2ZsW8vX1a2Bg=="}"#).unwrap();
        assert_eq!(k.expose(), "q3Yl0p9tRk2ZsW8vX1a2Bg==");
        let k = parse_master_key("Octopus Deploy\nMaster key: q3Yl0p9tRk2ZsW8vX1a2Bg==\n").unwrap();
        assert_eq!(k.expose(), "q3Yl0p9tRk2ZsW8vX1a2Bg==");
        assert!(parse_master_key("Access is denied.").is_none());
    }

    #[test]
    fn refusals_are_told_apart() {
        assert!(looks_like_nodes_running(
            "Unable to upgrade: the following nodes are still running: OCTO-NODE-02"
        ));
        assert!(!looks_like_nodes_running(
            "The license would be non-compliant; no data was changed"
        ));
        assert_eq!(
            parse_upgrade_pending("The database is up to date."),
            Some(false)
        );
        assert_eq!(
            parse_upgrade_pending("12 scripts to run; the database will be upgraded"),
            Some(true)
        );
        assert_eq!(
            parse_upgrade_pending(r#"{"UpgradeRequired": false}"#),
            Some(false)
        );
        assert_eq!(parse_upgrade_pending("???"), None);
    }

    #[test]
    fn truncated_msi_codes_are_recovered_from_the_log() {
        let log = "MSI (s): Product: Octopus -- Installation success or error status: 1603.";
        assert_eq!(msi_exit_code(Some(1603 & 0xFF), log), Some(1603));
        assert_eq!(msi_exit_code(Some(1603), log), Some(1603));
        assert_eq!(
            msi_exit_code(Some(3010 & 0xFF), "error status: 3010."),
            Some(3010)
        );
        // A log that disagrees with the exit code does not override it.
        assert_eq!(msi_exit_code(Some(1), log), Some(1));
        assert_eq!(msi_exit_code(Some(0), ""), Some(0));
        assert_eq!(msi_exit_code(None, log), None);
    }

    #[test]
    fn utf16_installer_logs_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.log");
        let mut bytes = vec![0xFF, 0xFE];
        for u in "line one\r\nError 1603: fatal\r\n".encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(read_log_tail(&path, 1), "Error 1603: fatal");
    }
}
