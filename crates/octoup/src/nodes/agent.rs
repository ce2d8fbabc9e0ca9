//! The node agent: what the engine may ask of one node, and the errors it gets back.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::octopus::api::Ping;
use crate::process::runner::{RunError, SpawnHook};
use crate::version::Version;

/// msiexec: success.
pub(crate) const MSI_OK: i32 = 0;
/// msiexec: success, a reboot is required to finish.
pub(crate) const MSI_REBOOT_REQUIRED: i32 = 3010;
/// msiexec: another installation is in progress (retry later).
pub(crate) const MSI_BUSY: i32 = 1618;

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
        "{node}: the installer failed ({code}). From its log {log} (the lines before the first \"Return value 3\", or its end):\n{tail}\nFix the cause (the log names it), then run octoup again"
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

/// A command that changes a node, which [`NodeAgent::watched`] runs with its process
/// tracked.
#[derive(Debug, Clone, Copy)]
pub enum NodeCommand<'a> {
    Stop,
    Start { expected: &'a str },
    DeleteWatchdog,
    CreateWatchdog(&'a WatchdogInfo),
    UpgradeDatabase,
}

/// Node-level operations.
#[async_trait]
pub trait NodeAgent: Send + Sync {
    /// The node's name as registered in Octopus.
    fn name(&self) -> &str;

    /// The node's own address (for messages).
    fn url(&self) -> &str;

    /// The node's own `/api/octopusservernodes/ping`.
    async fn ping(&self) -> Ping;

    /// `/api` Version at the node's own address, when it answers.
    async fn served_version(&self) -> Option<String>;

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

    /// Runs `command` with `on_spawn` told when the process that carries it is about to be
    /// spawned, and its pid: recovery after a crash then knows whether it ever started and
    /// whether it still runs. On this machine that is the command itself; over SSH the local
    /// `ssh` client (see docs/recovery.md). Transports that cannot tell run it unwatched
    /// (recovery then waits by time).
    async fn watched(
        &self,
        command: NodeCommand<'_>,
        on_spawn: SpawnHook,
    ) -> Result<(), NodeError> {
        let _ = on_spawn;
        self.unwatched(command).await
    }

    /// `command` through the plain operation.
    async fn unwatched(&self, command: NodeCommand<'_>) -> Result<(), NodeError> {
        match command {
            NodeCommand::Stop => self.stop().await,
            NodeCommand::Start { expected } => self.start(expected).await,
            NodeCommand::DeleteWatchdog => self.delete_watchdog().await,
            NodeCommand::CreateWatchdog(w) => self.create_watchdog(w).await,
            NodeCommand::UpgradeDatabase => self.database_upgrade().await,
        }
    }

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
        let ping = self.ping().await;
        let api_version = if ping.is_up() {
            self.served_version().await
        } else {
            None
        };
        NodeStatus { ping, api_version }
    }
}

/// A name made safe for a file name.
pub(crate) fn file_safe(name: &str) -> String {
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
