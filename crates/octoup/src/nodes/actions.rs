//! The node-level actions behind `octoup node <action>`, run on the node itself: stage,
//! stop, install, start and status. The orchestrator calls them over SSH
//! ([`crate::nodes::remote::SshAgent`]); Octopus runbooks, Ansible or any other engine can
//! call them the same way.
//!
//! Each action answers with one JSON object — a stable interface, documented in
//! docs/node-commands.md:
//! `{"format": 1, "node": "...", "action": "...", "ok": true, ...fields of the action}` or
//! `{"format": 1, "node": "...", "action": "...", "ok": false, "error": {"kind": "...",
//! "message": "...", ...}}`.
//!
//! The actions guard the invariants on their own, so a caller that gets the order wrong is
//! refused rather than obeyed: `install` refuses while the service answers, `start --to V`
//! refuses when the installed binary is not V (a node never serves on a mismatched version).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Config, EnvOverrides, NodeConfig, Secret};
use crate::installer::cache::{
    InstallerCache, InstallerError, InstallerSettings, Role, StagedInstaller,
};
use crate::nodes::{LocalAgent, NodeAgent, NodeError, WatchdogInfo, file_safe};
use crate::octopus::api::{OctopusApi, Ping};
use crate::octopus::http::{HttpClient, NetworkSettings};
use crate::process::runner::{LocalRunner, RunError, RunLog};
use crate::progress::NoProgress;
use crate::version::Version;

/// The JSON format version of every node answer; raised only for incompatible changes.
pub const FORMAT: u32 = 1;

/// One node action, as `octoup node <action>` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Download and verify the installer for `version` into this node's cache.
    Stage { version: String, rollback: bool },
    /// Delete the watchdog (remembering it), stop the service, confirm it is down.
    Stop,
    /// Install the staged installer for `version` (the one with `sha256`, when given).
    Install {
        version: String,
        sha256: Option<String>,
    },
    /// Remove the installed `version` with its staged installer (`msiexec /x`): the first
    /// half of putting an older version back, as an MSI refuses to downgrade itself.
    Uninstall {
        version: String,
        sha256: Option<String>,
    },
    /// Start the service and wait until it serves `version` (default: the installed one);
    /// `watchdog` recreates the watchdog `stop` deleted.
    Start {
        version: Option<String>,
        watchdog: bool,
    },
    /// Installed version, service state, watchdog.
    Status,
}

impl Action {
    /// The action's name on the command line and in the JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Stage { .. } => "stage",
            Action::Stop => "stop",
            Action::Install { .. } => "install",
            Action::Uninstall { .. } => "uninstall",
            Action::Start { .. } => "start",
            Action::Status => "status",
        }
    }
}

/// The answer of `stage`: the staged installer (`cached`: nothing was downloaded).
pub type StageReport = StagedInstaller;

/// The answer of `stop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopReport {
    /// The node no longer answers at its own URL.
    pub stopped: bool,
    /// The watchdog this stop deleted (kept on the node for `start --watchdog`), or null.
    pub watchdog_deleted: Option<WatchdogInfo>,
}

/// The answer of `install`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstallReport {
    pub version: String,
    pub installer: PathBuf,
    pub sha256: String,
    pub exit_code: i32,
    pub reboot_required: bool,
    pub attempts: u32,
    pub log: PathBuf,
    /// What `Octopus.Server.exe version` says after the install.
    pub installed_version: String,
}

/// The answer of `uninstall`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UninstallReport {
    /// The version that was removed.
    pub version: String,
    pub installer: PathBuf,
    pub exit_code: i32,
    pub reboot_required: bool,
    pub attempts: u32,
    pub log: PathBuf,
}

/// The answer of `start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartReport {
    /// The version the node now serves.
    pub version: String,
    pub watchdog_created: bool,
}

/// The node's service as seen at its own URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceReport {
    /// Serving (200) or draining (418).
    pub answering: bool,
    /// `serving`, `draining`, `unhealthy` or `down`.
    pub state: String,
    pub detail: String,
    /// `/api` Version, when it answers.
    pub api_version: Option<String>,
    /// The node's drain flag, when it answers.
    pub drained: Option<bool>,
}

/// The answer of `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub installed_version: String,
    pub service: ServiceReport,
    /// Null when it could not be read (see `watchdog_error`).
    pub watchdog: Option<WatchdogInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog_error: Option<String>,
}

/// What an action produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Stage(StageReport),
    Stop(StopReport),
    Install(InstallReport),
    Uninstall(UninstallReport),
    Start(StartReport),
    Status(StatusReport),
}

/// Why an action failed: `kind` for machines, `message` for people (it names the next
/// step), and the fields of the failure that a caller may act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    /// Exit code or similar (`install`, `command`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The installer log on the node (`install`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<PathBuf>,
    /// The last lines of output or log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// Bad config, unknown node, bad arguments: nothing was changed.
    Config,
    /// `install`: no verified installer for the version is staged here.
    NotStaged,
    /// `install`: the service still answers; stop it first.
    Running,
    /// `start`: the installed binary is not the version asked for.
    VersionMismatch,
    /// `stage`: download or verification failed.
    Stage,
    /// The installer failed.
    Install,
    /// After `service --stop` the node still answers.
    StillUp,
    /// After `service --start` the node did not serve the version in time.
    NotUp,
    /// `Octopus.Server.exe` (or another program) failed.
    Command,
    /// A program's output was not understood.
    Output,
    /// A program did not finish in time.
    Timeout,
    /// Anything else.
    Failed,
}

impl FailureKind {
    /// Whether the action refused before changing anything.
    pub fn changed_nothing(self) -> bool {
        matches!(
            self,
            FailureKind::Config
                | FailureKind::NotStaged
                | FailureKind::Running
                | FailureKind::VersionMismatch
        )
    }
}

impl Failure {
    fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            code: None,
            log: None,
            tail: None,
        }
    }

    pub fn config(message: impl Into<String>) -> Failure {
        Failure::new(FailureKind::Config, message)
    }
}

impl From<NodeError> for Failure {
    fn from(e: NodeError) -> Failure {
        let message = e.to_string();
        let mut f = Failure::new(FailureKind::Failed, message);
        match e {
            NodeError::Install {
                code, log, tail, ..
            } => {
                f.kind = FailureKind::Install;
                f.code = Some(code);
                f.log = Some(log);
                f.tail = Some(tail);
            }
            NodeError::StillUp { .. } => f.kind = FailureKind::StillUp,
            NodeError::NotUp { .. } => f.kind = FailureKind::NotUp,
            NodeError::Command { code, tail, .. } => {
                f.kind = FailureKind::Command;
                f.code = Some(code);
                f.tail = Some(tail);
            }
            NodeError::Output { .. } => f.kind = FailureKind::Output,
            NodeError::Run(RunError::Timeout { .. }) => f.kind = FailureKind::Timeout,
            _ => {}
        }
        f
    }
}

impl From<InstallerError> for Failure {
    fn from(e: InstallerError) -> Failure {
        Failure::new(FailureKind::Stage, e.to_string())
    }
}

/// The whole answer of one action.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub node: String,
    pub action: &'static str,
    pub result: Result<Outcome, Failure>,
}

impl Reply {
    /// The JSON object printed by `octoup node <action> --json`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::json!({
            "format": FORMAT,
            "node": self.node,
            "action": self.action,
            "ok": self.result.is_ok(),
        });
        let fields = match &self.result {
            Ok(Outcome::Stage(r)) => serde_json::to_value(r),
            Ok(Outcome::Stop(r)) => serde_json::to_value(r),
            Ok(Outcome::Install(r)) => serde_json::to_value(r),
            Ok(Outcome::Uninstall(r)) => serde_json::to_value(r),
            Ok(Outcome::Start(r)) => serde_json::to_value(r),
            Ok(Outcome::Status(r)) => serde_json::to_value(r),
            Err(f) => serde_json::to_value(f).map(|e| serde_json::json!({ "error": e })),
        };
        if let (Some(obj), Ok(serde_json::Value::Object(fields))) = (out.as_object_mut(), fields) {
            obj.extend(fields);
        }
        out
    }
}

/// The node this machine is, from `--node NAME` and the config.
///
/// With `[[nodes]]`, NAME must be one of them (or may be left out when there is only one).
/// Without, the config describes this machine alone and NAME (when given) names it.
pub fn select_node(config: &Config, wanted: Option<&str>) -> Result<(String, NodeConfig), Failure> {
    if config.nodes.is_empty() {
        let node = config
            .effective_nodes()
            .map_err(|e| Failure::config(e.to_string()))?
            .remove(0);
        let name = wanted.unwrap_or("local").to_string();
        return Ok((name, node));
    }
    match wanted {
        Some(name) => config
            .nodes
            .iter()
            .find(|n| n.name.eq_ignore_ascii_case(name))
            .map(|n| (n.name.clone(), n.clone()))
            .ok_or_else(|| {
                let names: Vec<&str> = config.nodes.iter().map(|n| n.name.as_str()).collect();
                Failure::config(format!(
                    "node {name:?} is not in [[nodes]] of the config (it lists {}). Pass --node with one of them",
                    names.join(", ")
                ))
            }),
        None if config.nodes.len() == 1 => Ok((config.nodes[0].name.clone(), config.nodes[0].clone())),
        None => Err(Failure::config(format!(
            "the config lists {} nodes: pass --node NAME to say which one this is",
            config.nodes.len()
        ))),
    }
}

/// Everything an action on this node needs.
pub struct NodeContext {
    name: String,
    agent: LocalAgent,
    cache: InstallerCache,
    state_dir: PathBuf,
}

impl NodeContext {
    /// Builds the node's agent (commands logged to `<state>/logs/node-<name>.log`) and
    /// installer cache. The API key is optional: node actions use only anonymous endpoints.
    pub fn new(
        config: &Config,
        env: &EnvOverrides,
        wanted: Option<&str>,
    ) -> Result<NodeContext, Failure> {
        let (name, node) = select_node(config, wanted)?;
        let http = HttpClient::new(NetworkSettings::from_config(config))
            .map_err(|e| Failure::config(e.to_string()))?;
        let key = config.api_key(env).unwrap_or_else(|_| Secret::new(""));
        let api = OctopusApi::new(
            http.clone(),
            &node.url,
            key,
            Duration::from_secs(config.timeouts.http.max(1)),
        );
        let log_dir = config.state.dir.join("logs");
        let log =
            RunLog::open(&log_dir.join(format!("node-{}.log", file_safe(&name)))).map_err(|e| {
                Failure::config(format!(
                    "cannot write the node log in {}: {e}. Check [state] dir",
                    log_dir.display()
                ))
            })?;
        let runner = Arc::new(LocalRunner::new(Some(Arc::new(log))));
        let cache =
            InstallerCache::new(InstallerSettings::from_config(config), http, runner.clone());
        let agent = LocalAgent::new(config, &node, &name, api, runner, log_dir);
        Ok(NodeContext {
            name,
            agent,
            cache,
            state_dir: config.state.dir.clone(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs one action and answers.
    pub async fn run(&self, action: &Action) -> Reply {
        let result = match action {
            Action::Stage { version, rollback } => {
                self.stage(version, *rollback).await.map(Outcome::Stage)
            }
            Action::Stop => self.stop().await.map(Outcome::Stop),
            Action::Install { version, sha256 } => self
                .install(version, sha256.as_deref())
                .await
                .map(Outcome::Install),
            Action::Uninstall { version, sha256 } => self
                .uninstall(version, sha256.as_deref())
                .await
                .map(Outcome::Uninstall),
            Action::Start { version, watchdog } => self
                .start(version.as_deref(), *watchdog)
                .await
                .map(Outcome::Start),
            Action::Status => self.status().await.map(Outcome::Status),
        };
        Reply {
            node: self.name.clone(),
            action: action.name(),
            result,
        }
    }

    async fn stage(&self, version: &str, rollback: bool) -> Result<StageReport, Failure> {
        let version = parse_version(version)?;
        let role = if rollback {
            Role::Rollback
        } else {
            Role::Target
        };
        Ok(self
            .cache
            .ensure_installer(&version, role, &NoProgress)
            .await?)
    }

    async fn stop(&self) -> Result<StopReport, Failure> {
        // The watchdog restarts stopped services: it goes first, and is remembered here so
        // `start --watchdog` can put back exactly what was there.
        let watchdog = self.agent.watchdog().await?;
        let watchdog_deleted = if watchdog.enabled {
            let saved = serde_json::to_vec_pretty(&watchdog).unwrap_or_default();
            crate::process::fsutil::write_atomic(&self.watchdog_file(), &saved).map_err(|e| {
                Failure::config(format!(
                    "cannot remember the watchdog settings in {}: {e}; nothing was changed. Check [state] dir",
                    self.watchdog_file().display()
                ))
            })?;
            self.agent.delete_watchdog().await?;
            Some(watchdog)
        } else {
            None
        };
        self.agent.stop().await?;
        Ok(StopReport {
            stopped: true,
            watchdog_deleted,
        })
    }

    /// Refuses while the service answers: installers run on stopped nodes only.
    async fn ensure_stopped(&self) -> Result<(), Failure> {
        let ping = self.agent.api().ping().await;
        if ping.is_up() {
            return Err(Failure::new(
                FailureKind::Running,
                format!(
                    "{}: the service still answers at {} ({}); nothing was changed. Run `octoup node stop` first",
                    self.name,
                    self.agent.api().base(),
                    ping.describe()
                ),
            ));
        }
        Ok(())
    }

    /// The verified installer of `version` in this node's cache (with `sha256`, when given).
    async fn staged(
        &self,
        version: &Version,
        sha256: Option<&str>,
    ) -> Result<StagedInstaller, Failure> {
        let cache = self.cache.clone();
        let (v, pin) = (version.clone(), sha256.map(str::to_ascii_lowercase));
        let staged = tokio::task::spawn_blocking(move || cache.lookup(&v, pin.as_deref()))
            .await
            .map_err(|e| Failure::new(FailureKind::Failed, e.to_string()))??;
        let Some(staged) = staged else {
            let which = sha256
                .map(|s| format!(" with SHA-256 {s}"))
                .unwrap_or_default();
            return Err(Failure::new(
                FailureKind::NotStaged,
                format!(
                    "{}: no verified {version} installer{which} is staged on this node; nothing was changed. Run `octoup node stage --to {version}` first",
                    self.name
                ),
            ));
        };
        Ok(staged)
    }

    async fn install(&self, version: &str, sha256: Option<&str>) -> Result<InstallReport, Failure> {
        let version = parse_version(version)?;
        self.ensure_stopped().await?;
        let staged = self.staged(&version, sha256).await?;
        let outcome = self
            .agent
            .install(&staged.path, &version.to_string())
            .await?;
        // "The installer succeeded but the files are missing" happens (ISS#6383): believe
        // the binary, not the exit code.
        let installed = self.agent.installed_version().await?;
        if installed != version {
            return Err(Failure::new(
                FailureKind::Install,
                format!(
                    "{}: the installer exited {} but the installed version is {installed}, not {version}. Look at its log {} and install again",
                    self.name,
                    outcome.exit_code,
                    outcome.log.display()
                ),
            ));
        }
        Ok(InstallReport {
            version: version.to_string(),
            installer: staged.path,
            sha256: staged.sha256,
            exit_code: outcome.exit_code,
            reboot_required: outcome.reboot_required,
            attempts: outcome.attempts,
            log: outcome.log,
            installed_version: installed.to_string(),
        })
    }

    async fn uninstall(
        &self,
        version: &str,
        sha256: Option<&str>,
    ) -> Result<UninstallReport, Failure> {
        let version = parse_version(version)?;
        self.ensure_stopped().await?;
        let installed = self.agent.installed_version().await?;
        if installed != version {
            return Err(Failure::new(
                FailureKind::VersionMismatch,
                format!(
                    "{}: the installed version is {installed}, not {version}; nothing was changed",
                    self.name
                ),
            ));
        }
        let staged = self.staged(&version, sha256).await?;
        let outcome = self
            .agent
            .uninstall(&staged.path, &version.to_string())
            .await?;
        Ok(UninstallReport {
            version: version.to_string(),
            installer: staged.path,
            exit_code: outcome.exit_code,
            reboot_required: outcome.reboot_required,
            attempts: outcome.attempts,
            log: outcome.log,
        })
    }

    async fn start(&self, expected: Option<&str>, watchdog: bool) -> Result<StartReport, Failure> {
        let installed = self.agent.installed_version().await?;
        if let Some(expected) = expected {
            let expected = parse_version(expected)?;
            if installed != expected {
                return Err(Failure::new(
                    FailureKind::VersionMismatch,
                    format!(
                        "{}: the installed version is {installed}, not {expected}; not starting (a node never serves on a mismatched version). Run `octoup node install --to {expected}` first",
                        self.name
                    ),
                ));
            }
        }
        self.agent.start(&installed.to_string()).await?;
        let mut watchdog_created = false;
        if watchdog && let Some(saved) = self.saved_watchdog() {
            self.agent.create_watchdog(&saved).await?;
            let _ = crate::process::fsutil::remove_file_if_exists(&self.watchdog_file());
            watchdog_created = true;
        }
        Ok(StartReport {
            version: installed.to_string(),
            watchdog_created,
        })
    }

    async fn status(&self) -> Result<StatusReport, Failure> {
        let installed = self.agent.installed_version().await?;
        let status = self.agent.status().await;
        let (watchdog, watchdog_error) = match self.agent.watchdog().await {
            Ok(w) => (Some(w), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Ok(StatusReport {
            installed_version: installed.to_string(),
            service: service_report(&status.ping, status.api_version),
            watchdog,
            watchdog_error,
        })
    }

    fn watchdog_file(&self) -> PathBuf {
        self.state_dir
            .join(format!("node-{}-watchdog.json", file_safe(&self.name)))
    }

    fn saved_watchdog(&self) -> Option<WatchdogInfo> {
        read_json(&self.watchdog_file())
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn parse_version(text: &str) -> Result<Version, Failure> {
    text.parse()
        .map_err(|e: crate::version::VersionError| Failure::config(e.to_string()))
}

fn service_report(ping: &Ping, api_version: Option<String>) -> ServiceReport {
    let state = match ping {
        Ping::Serving(_) => "serving",
        Ping::Draining(_) => "draining",
        Ping::Unhealthy(_) => "unhealthy",
        Ping::Down(_) => "down",
    };
    ServiceReport {
        answering: ping.is_up(),
        state: state.into(),
        detail: ping.describe(),
        api_version,
        drained: ping.body().map(|b| b.is_in_maintenance_mode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Config {
        Config::parse(text).unwrap()
    }

    #[test]
    fn the_node_is_chosen_by_name_or_alone() {
        let two = cfg(
            "[[nodes]]\nname = \"N1\"\nurl = \"http://127.0.0.1:1\"\n[[nodes]]\nname = \"N2\"\nurl = \"http://127.0.0.1:2\"\n",
        );
        assert_eq!(select_node(&two, Some("n2")).unwrap().0, "N2");
        let err = select_node(&two, None).unwrap_err();
        assert_eq!(err.kind, FailureKind::Config);
        assert!(err.message.contains("--node"), "{}", err.message);
        let err = select_node(&two, Some("N3")).unwrap_err();
        assert!(err.message.contains("N1, N2"), "{}", err.message);
        // A node's own config need not list the cluster: --node names this machine.
        let alone = cfg("[server]\nurl = \"http://127.0.0.1:9\"\n");
        let (name, node) = select_node(&alone, Some("OCTO-NODE-07")).unwrap();
        assert_eq!(
            (name.as_str(), node.url.as_str()),
            ("OCTO-NODE-07", "http://127.0.0.1:9")
        );
        assert_eq!(select_node(&alone, None).unwrap().0, "local");
    }

    #[test]
    fn replies_are_flat_json_with_a_typed_error() {
        let ok = Reply {
            node: "N1".into(),
            action: "start",
            result: Ok(Outcome::Start(StartReport {
                version: "2024.2.7".into(),
                watchdog_created: false,
            })),
        };
        assert_eq!(
            ok.to_json(),
            serde_json::json!({"format": 1, "node": "N1", "action": "start", "ok": true,
                "version": "2024.2.7", "watchdog_created": false})
        );
        let failed = Reply {
            node: "N1".into(),
            action: "install",
            result: Err(NodeError::Install {
                node: "N1".into(),
                code: "exit code 1603".into(),
                log: PathBuf::from("/l.log"),
                tail: "Error 1603".into(),
            }
            .into()),
        };
        let v = failed.to_json();
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["kind"], "install");
        assert_eq!(v["error"]["code"], "exit code 1603");
        assert_eq!(v["error"]["log"], "/l.log");
        assert!(v["error"]["message"].as_str().unwrap().contains("1603"));
        let back: Failure = serde_json::from_value(v["error"].clone()).unwrap();
        assert_eq!(back.kind, FailureKind::Install);
        assert!(!back.kind.changed_nothing());
        assert!(FailureKind::NotStaged.changed_nothing());
    }
}
