//! The `octoup node` wire protocol: the actions, and the one JSON object each answers
//! with (a stable interface, docs/node-commands.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::agent::{NodeError, WatchdogInfo};
use crate::installer::cache::{InstallerError, StagedInstaller};
use crate::process::runner::RunError;

/// The JSON format version of every node answer; raised only for incompatible changes.
pub(crate) const FORMAT: u32 = 1;

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
pub(crate) type StageReport = StagedInstaller;

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
    pub(crate) fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
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
