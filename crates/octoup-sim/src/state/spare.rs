//! Spare Windows nodes: machines outside the installation (no service of production, not
//! in the node list the daemon serves or the checker watches) where `octoup rehearse`
//! may install a version and make a rehearsal instance against a scratch database.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpareNode {
    pub name: String,
    /// The port `up` chose for a rehearsal instance's web server on it.
    pub listen_port: u16,
    pub installed_version: Option<String>,
    pub instances: Vec<RehearsalInstance>,
}

/// An Octopus instance on a spare node, as `create-instance` and `database` configure it
/// (its config file, played by the state).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RehearsalInstance {
    pub name: String,
    pub config: String,
    pub home: String,
    /// `database --connectionString`: the database it runs against.
    pub connection_string: Option<String>,
    /// `database --masterKey`, kept as the real config file keeps it (encrypted there).
    pub master_key: Option<String>,
    /// `configure --webListenPrefixes`.
    pub listen_port: Option<u16>,
    pub service_installed: bool,
    /// The process serving the instance's API while its service runs.
    pub pid: Option<u32>,
}

impl SpareNode {
    pub fn new(name: String, listen_port: u16) -> SpareNode {
        SpareNode {
            name,
            listen_port,
            installed_version: None,
            instances: Vec::new(),
        }
    }

    pub fn instance(&self, name: &str) -> Option<&RehearsalInstance> {
        self.instances
            .iter()
            .find(|i| i.name.eq_ignore_ascii_case(name))
    }

    pub fn instance_mut(&mut self, name: &str) -> Option<&mut RehearsalInstance> {
        self.instances
            .iter_mut()
            .find(|i| i.name.eq_ignore_ascii_case(name))
    }
}

impl super::State {
    pub(crate) fn spare(&self, name: &str) -> Option<&SpareNode> {
        self.spare_nodes.iter().find(|n| n.name == name)
    }

    pub(crate) fn spare_mut(&mut self, name: &str) -> Option<&mut SpareNode> {
        self.spare_nodes.iter_mut().find(|n| n.name == name)
    }
}
