//! [`SshAgent`]: a node reached over SSH, behind the same [`NodeAgent`] trait as a local one.
//!
//! The node-level steps (stage, stop, install, start, status) run as
//! `<remote_octoup> node <action> --json --node NAME [--config <remote_config>]` on the node,
//! whose JSON answer ([`crate::nodes::actions`]) is turned back into the agent's results and
//! errors. Those steps wait on the node itself (for the service to go down or to serve the
//! version) and install the installer staged in the node's own cache.
//!
//! The single `Octopus.Server.exe` calls (watchdog, master key, database upgrade and its
//! status, drain through the CLI) run that program directly over the same transport, with
//! the node's `server_exe` argv from this config: the master key then travels only on the
//! encrypted channel as `show-master-key`'s own output, never as octoup's.
//!
//! The node's own URL (ping, `/api`) is watched from here, as for a local node.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::agent::{InstallOutcome, NodeAgent, NodeCommand, NodeError, WatchdogInfo};
use super::local::LocalAgent;
use super::protocol::{
    FORMAT, Failure, FailureKind, InstallReport, StageReport, StartReport, StatusReport,
    StopReport, UninstallReport,
};
use super::ssh::{SshRunner, SshTransport, TransportError};
use crate::config::{Config, NodeConfig, Secret, TimeoutsConfig};
use crate::octopus::api::{OctopusApi, Ping};
use crate::process::runner::{CommandRunner, CommandSpec, RunError, SpawnHook, tail_lines};
use crate::version::Version;

/// A node reached over SSH.
pub struct SshAgent {
    name: String,
    api: OctopusApi,
    runner: Arc<SshRunner>,
    remote_octoup: Vec<String>,
    remote_config: Option<String>,
    timeouts: TimeoutsConfig,
    busy_retries: u32,
    /// Runs the single `Octopus.Server.exe` calls over the transport.
    exe: LocalAgent,
}

impl SshAgent {
    /// The agent for `node` (which has `ssh = "user@host"`). `local` runs the ssh client
    /// (and logs each call); `log_dir` is where the node's installer logs go on the node
    /// for the direct calls (unused by the node commands, which log on the node).
    pub fn new(
        config: &Config,
        node: &NodeConfig,
        name: &str,
        api: OctopusApi,
        local: Arc<dyn CommandRunner>,
        log_dir: std::path::PathBuf,
    ) -> Result<SshAgent, TransportError> {
        let destination = node.ssh.as_deref().unwrap_or("");
        let transport = SshTransport::new(&config.ssh, name, destination)?;
        let runner = Arc::new(SshRunner::new(transport, local));
        let exe = LocalAgent::new(config, node, name, api.clone(), runner.clone(), log_dir);
        Ok(SshAgent {
            name: name.to_string(),
            api,
            runner,
            remote_octoup: config.ssh.remote_octoup.clone(),
            remote_config: node.remote_config.clone(),
            timeouts: config.timeouts.clone(),
            busy_retries: config.installer.busy_retries,
            exe,
        })
    }

    #[cfg(test)]
    pub(crate) fn transport(&self) -> &SshTransport {
        self.runner.transport()
    }

    /// The remote argv of `octoup node <action> <args> --json --node NAME [--config ...]`.
    pub(crate) fn node_argv(&self, action: &str, args: &[String]) -> Vec<String> {
        let mut argv = self.remote_octoup.clone();
        argv.extend(["node".to_string(), action.to_string()]);
        argv.extend(args.iter().cloned());
        argv.extend([
            "--json".to_string(),
            "--node".to_string(),
            self.name.clone(),
        ]);
        if let Some(config) = &self.remote_config {
            argv.extend(["--config".to_string(), config.clone()]);
        }
        argv
    }

    /// Runs one node action remotely and decodes its answer.
    async fn call<T: DeserializeOwned>(
        &self,
        action: &str,
        args: &[String],
        timeout: Duration,
        setting: &'static str,
        on_spawn: Option<SpawnHook>,
    ) -> Result<T, NodeError> {
        let command = format!("octoup node {action}");
        let spec = CommandSpec::new(
            format!("node {action} {}", self.name),
            self.node_argv(action, args),
            timeout,
        )
        .timeout_setting(setting)
        .on_spawn(on_spawn);
        let out = self.runner.run(spec).await?;
        let Some(answer) = last_json_object(&out.stdout) else {
            return Err(NodeError::Output {
                node: self.name.clone(),
                command,
                detail: format!(
                    "no JSON answer ({}): {}. Check [ssh] remote_octoup and the node's remote_config",
                    out.code_text(),
                    tail_lines(&format!("{}\n{}", out.stdout, out.stderr), 3)
                ),
            });
        };
        decode(&self.name, &command, &answer, out.code_text())
    }

    /// Downloads and verifies the installer into the node's own cache (before the outage).
    /// `rollback`: the installed version's installer, kept for a rollback.
    pub(crate) async fn stage_report(
        &self,
        version: &Version,
        rollback: bool,
    ) -> Result<StageReport, NodeError> {
        let mut args = vec!["--to".to_string(), version.to_string()];
        if rollback {
            args.push("--rollback".into());
        }
        // A download has no step timeout of its own; an installer's allowance covers it.
        let timeout = Duration::from_secs(self.timeouts.install.max(self.timeouts.command));
        self.call("stage", &args, timeout, "[timeouts] install", None)
            .await
    }

    /// Installed version, service state and watchdog, as the node sees them.
    pub(crate) async fn node_status(&self) -> Result<StatusReport, NodeError> {
        self.call(
            "status",
            &[],
            self.command_timeout() * 3 + Duration::from_secs(self.timeouts.http),
            "[timeouts] command",
            None,
        )
        .await
    }

    /// `install` or `uninstall` (`action`, naming the version with `version_flag`) with the
    /// installer staged on the node: the same bits as `installer` when that is a cache entry.
    async fn msi<R: DeserializeOwned + Into<InstallOutcome>>(
        &self,
        action: &str,
        version_flag: &str,
        installer: &Path,
        version: &str,
    ) -> Result<InstallOutcome, NodeError> {
        let mut args = vec![version_flag.to_string(), version.to_string()];
        if let Some(sha256) = cache_entry_digest(installer) {
            args.extend(["--sha256".to_string(), sha256]);
        }
        let report: R = self
            .call(
                action,
                &args,
                self.msi_timeout(),
                "[timeouts] install",
                None,
            )
            .await?;
        Ok(report.into())
    }

    /// msiexec 1618 is retried on the node with backoff of up to a minute per try.
    fn msi_timeout(&self) -> Duration {
        Duration::from_secs(self.timeouts.install) * (self.busy_retries + 1)
            + Duration::from_secs(60) * self.busy_retries
            + self.command_timeout() * 2
    }

    fn command_timeout(&self) -> Duration {
        Duration::from_secs(self.timeouts.command)
    }

    /// `octoup node stop` on the node (which waits there until the service is down).
    async fn stop_with(&self, on_spawn: Option<SpawnHook>) -> Result<(), NodeError> {
        let timeout = Duration::from_secs(self.timeouts.stop) + self.command_timeout() * 3;
        let _: StopReport = self
            .call("stop", &[], timeout, "[timeouts] stop", on_spawn)
            .await?;
        Ok(())
    }

    /// `octoup node start` on the node (which waits there until it serves `expected`).
    async fn start_with(
        &self,
        expected: &str,
        on_spawn: Option<SpawnHook>,
    ) -> Result<(), NodeError> {
        let timeout = Duration::from_secs(self.timeouts.start) + self.command_timeout() * 2;
        let _: StartReport = self
            .call(
                "start",
                &["--to".to_string(), expected.to_string()],
                timeout,
                "[timeouts] start",
                on_spawn,
            )
            .await?;
        Ok(())
    }
}

#[async_trait]
impl NodeAgent for SshAgent {
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
        let status = self.node_status().await?;
        status
            .installed_version
            .parse()
            .map_err(|e: crate::version::VersionError| NodeError::Output {
                node: self.name.clone(),
                command: "octoup node status".into(),
                detail: e.to_string(),
            })
    }

    async fn watchdog(&self) -> Result<WatchdogInfo, NodeError> {
        self.exe.watchdog().await
    }

    async fn delete_watchdog(&self) -> Result<(), NodeError> {
        self.exe.delete_watchdog().await
    }

    async fn create_watchdog(&self, watchdog: &WatchdogInfo) -> Result<(), NodeError> {
        self.exe.create_watchdog(watchdog).await
    }

    async fn master_key(&self) -> Result<Secret, NodeError> {
        self.exe.master_key().await
    }

    async fn stop(&self) -> Result<(), NodeError> {
        self.stop_with(None).await
    }

    async fn start(&self, expected: &str) -> Result<(), NodeError> {
        self.start_with(expected, None).await
    }

    /// The pid told is the local `ssh` client's: it runs as long as the remote command
    /// does (unless the connection broke). The schema upgrade is the exception: a second
    /// one must never start while the first may run (I1), and a broken connection may
    /// leave it running without its ssh, so it stays unwatched (recovery waits by time).
    async fn watched(
        &self,
        command: NodeCommand<'_>,
        on_spawn: SpawnHook,
    ) -> Result<(), NodeError> {
        match command {
            NodeCommand::Stop => self.stop_with(Some(on_spawn)).await,
            NodeCommand::Start { expected } => self.start_with(expected, Some(on_spawn)).await,
            NodeCommand::DeleteWatchdog | NodeCommand::CreateWatchdog(_) => {
                self.exe.watched(command, on_spawn).await
            }
            NodeCommand::UpgradeDatabase => self.database_upgrade().await,
        }
    }

    /// Installs the installer staged on the node by [`NodeAgent::stage`]. `installer` is the
    /// orchestrator's copy: when it sits in a cache entry (`<version>/<sha256>/...`) the node
    /// must install the same bits, so its digest is passed on.
    async fn install(&self, installer: &Path, version: &str) -> Result<InstallOutcome, NodeError> {
        self.msi::<InstallReport>("install", "--to", installer, version)
            .await
    }

    async fn stage(&self, version: &Version, rollback: bool) -> Result<(), NodeError> {
        self.stage_report(version, rollback).await.map(|_| ())
    }

    /// Removes the installed `version` with the installer staged on the node (the same bits
    /// as `installer`, when that is a cache entry).
    async fn uninstall(
        &self,
        installer: &Path,
        version: &str,
    ) -> Result<InstallOutcome, NodeError> {
        self.msi::<UninstallReport>("uninstall", "--installed", installer, version)
            .await
    }

    async fn database_upgrade(&self) -> Result<(), NodeError> {
        self.exe.database_upgrade().await
    }

    async fn database_upgrade_pending(&self) -> Result<Option<bool>, NodeError> {
        self.exe.database_upgrade_pending().await
    }

    async fn drain_cli(&self, on: bool) -> Result<(), NodeError> {
        self.exe.drain_cli(on).await
    }
}

/// Both msiexec answers carry the outcome under the same field names.
macro_rules! install_outcome_from {
    ($($report:ty),*) => {$(
        impl From<$report> for InstallOutcome {
            fn from(r: $report) -> InstallOutcome {
                InstallOutcome {
                    exit_code: r.exit_code,
                    reboot_required: r.reboot_required,
                    attempts: r.attempts,
                    log: r.log,
                }
            }
        }
    )*};
}
install_outcome_from!(InstallReport, UninstallReport);

/// The digest of a cached installer, from its directory (`<version>/<sha256>/<file>`).
fn cache_entry_digest(installer: &Path) -> Option<String> {
    let dir = installer.parent()?.file_name()?.to_str()?;
    crate::installer::verify::parse_sha256(dir).filter(|s| s == dir)
}

/// The last line of `text` that is a JSON object (login banners may come first).
pub(crate) fn last_json_object(text: &str) -> Option<Value> {
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find(Value::is_object)
}

/// A node answer turned into the action's report, or into the [`NodeError`] it stands for.
pub(crate) fn decode<T: DeserializeOwned>(
    node: &str,
    command: &str,
    answer: &Value,
    exit: String,
) -> Result<T, NodeError> {
    let output_error = |detail: String| NodeError::Output {
        node: node.to_string(),
        command: command.to_string(),
        detail,
    };
    let format = answer.get("format").and_then(Value::as_u64).unwrap_or(0);
    if format != u64::from(FORMAT) {
        return Err(output_error(format!(
            "the node answered in format {format}, this octoup reads format {FORMAT}: install the same octoup version on every node"
        )));
    }
    if answer.get("ok") == Some(&Value::Bool(true)) {
        return serde_json::from_value(answer.clone())
            .map_err(|e| output_error(format!("unexpected answer: {e}")));
    }
    let failure: Failure = answer
        .get("error")
        .cloned()
        .and_then(|e| serde_json::from_value(e).ok())
        .ok_or_else(|| output_error(format!("a failure without an error object ({exit})")))?;
    Err(node_error(node, command, failure))
}

/// The [`NodeError`] a remote failure stands for, so the orchestrator treats a remote node's
/// failures exactly as a local one's.
fn node_error(node: &str, command: &str, f: Failure) -> NodeError {
    match f.kind {
        FailureKind::Install => NodeError::Install {
            node: node.to_string(),
            code: f.code.unwrap_or_else(|| "failed".into()),
            log: f.log.unwrap_or_default(),
            tail: f.tail.unwrap_or(f.message),
        },
        FailureKind::Timeout => NodeError::Run(RunError::Transport {
            label: format!("{command} on {node}"),
            message: f.message,
        }),
        // The remote message already names the node, the step and the next action.
        _ => NodeError::Command {
            node: node.to_string(),
            command: command.to_string(),
            code: kind_text(f.kind),
            tail: f.message,
        },
    }
}

fn kind_text(kind: FailureKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "failed".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::octopus::http::{HttpClient, NetworkSettings};
    use crate::process::runner::LocalRunner;

    fn agent(node_toml: &str) -> SshAgent {
        let config = Config::parse(&format!(
            "[ssh]\nremote_octoup = [\"/opt/octoup/octoup\"]\nconnect_timeout_seconds = 3\n{node_toml}"
        ))
        .unwrap();
        let node = &config.nodes[0];
        let api = OctopusApi::new(
            HttpClient::new(NetworkSettings::default()).unwrap(),
            &node.url,
            Secret::new("API-X"),
            Duration::from_secs(1),
        );
        SshAgent::new(
            &config,
            node,
            &node.name,
            api,
            Arc::new(LocalRunner::default()),
            std::env::temp_dir(),
        )
        .unwrap()
    }

    #[test]
    fn the_remote_command_names_the_node_and_its_config() {
        let a = agent(
            "[[nodes]]\nname = \"N 2\"\nurl = \"http://127.0.0.1:1\"\nssh = \"root@n2\"\nremote_config = \"/etc/octoup/node.toml\"\n",
        );
        assert_eq!(
            a.node_argv("start", &["--to".into(), "2024.2.7".into()]),
            [
                "/opt/octoup/octoup",
                "node",
                "start",
                "--to",
                "2024.2.7",
                "--json",
                "--node",
                "N 2",
                "--config",
                "/etc/octoup/node.toml"
            ]
        );
        assert_eq!(a.transport().destination(), "root@n2");
    }

    #[test]
    fn a_bad_destination_is_refused_when_the_agent_is_made() {
        let config = Config::parse(
            "[[nodes]]\nname = \"N1\"\nurl = \"http://127.0.0.1:1\"\nssh = \"-oProxyCommand=x\"\n",
        )
        .unwrap();
        let api = OctopusApi::new(
            HttpClient::new(NetworkSettings::default()).unwrap(),
            "http://127.0.0.1:1",
            Secret::new("API-X"),
            Duration::from_secs(1),
        );
        let err = SshAgent::new(
            &config,
            &config.nodes[0],
            "N1",
            api,
            Arc::new(LocalRunner::default()),
            std::env::temp_dir(),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("N1"), "{err}");
    }

    #[test]
    fn answers_decode_to_reports_or_to_the_matching_node_error() {
        let ok = serde_json::json!({"format": 1, "node": "N1", "action": "start", "ok": true,
            "version": "2024.2.7", "watchdog_created": false});
        let r: StartReport = decode("N1", "octoup node start", &ok, "exit code 0".into()).unwrap();
        assert_eq!(r.version, "2024.2.7");

        let install = serde_json::json!({"format": 1, "node": "N1", "action": "install", "ok": false,
            "error": {"kind": "install", "message": "N1: the installer failed", "code": "exit code 1603",
                      "log": "/var/log/i.log", "tail": "Error 1603"}});
        match decode::<InstallReport>("N1", "octoup node install", &install, "exit code 1".into()) {
            Err(NodeError::Install {
                code, log, tail, ..
            }) => {
                assert_eq!(code, "exit code 1603");
                assert_eq!(log, Path::new("/var/log/i.log"));
                assert_eq!(tail, "Error 1603");
            }
            other => panic!("{other:?}"),
        }

        let mismatch = serde_json::json!({"format": 1, "node": "N1", "action": "start", "ok": false,
            "error": {"kind": "version-mismatch", "message": "N1: the installed version is 2024.1.10, not 2024.2.7; not starting"}});
        let err = decode::<StartReport>("N1", "octoup node start", &mismatch, "exit code 3".into())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("version-mismatch") && err.contains("not starting"),
            "{err}"
        );

        let future = serde_json::json!({"format": 2, "ok": true});
        let err = decode::<StartReport>("N1", "octoup node start", &future, "exit code 0".into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("same octoup version"), "{err}");
        assert!(
            decode::<StartReport>(
                "N1",
                "c",
                &serde_json::json!({"format": 1, "ok": false}),
                "x".into()
            )
            .is_err()
        );
    }

    #[test]
    fn banners_before_the_answer_are_skipped_and_digests_read_from_cache_paths() {
        let out = "Welcome to node 2\n{\"not\": \"last\"}\n{\"format\":1,\"ok\":true}\n";
        assert_eq!(last_json_object(out).unwrap()["ok"], true);
        assert!(last_json_object("Permission denied").is_none());
        let sha = "ab".repeat(32);
        let path = Path::new("/c/2024.2.7")
            .join(&sha)
            .join("Octopus.2024.2.7-x64.msi");
        assert_eq!(cache_entry_digest(&path), Some(sha));
        assert_eq!(cache_entry_digest(Path::new("/tmp/Octopus.msi")), None);
    }
}
