//! Node-level operations behind one trait, so the orchestrator does not care whether a node
//! is this machine ([`LocalAgent`]) or another one reached over a transport (SSH, later).
//!
//! Every operation runs `Octopus.Server.exe` or the installer through the configured argv
//! and a [`CommandRunner`] (so every command has a timeout and lands in the run log), and
//! watches the node's own HTTP address to confirm what the command claims.

pub mod actions;
mod agent;
mod local;
pub(crate) mod output;
pub mod protocol;
pub mod remote;
pub mod ssh;

use std::path::PathBuf;
use std::sync::Arc;

pub use agent::*;
pub use local::LocalAgent;

use crate::config::{Config, NodeConfig};
use crate::octopus::api::OctopusApi;
use crate::process::runner::CommandRunner;

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
        let agent = remote::SshAgent::new(config, node, name, api, runner, log_dir)
            .map_err(|e| e.to_string())?;
        return Ok(Arc::new(agent));
    }
    Ok(Arc::new(LocalAgent::new(
        config, node, name, api, runner, log_dir,
    )))
}
