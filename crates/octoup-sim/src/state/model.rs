//! The types of `DIR/state.json`: the nodes, the shared database with its tasks, the
//! installation's secrets and backups, and [`State`], the whole of it. Changing a state is
//! in `transitions`; reading and writing it is in `store`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::faults::FaultSpec;
use crate::history::Event;
use crate::spec::{DatabaseSpec, Durations, FeedEntry};

/// Instance name every node uses.
pub(crate) const INSTANCE: &str = "OctopusServer";
/// The Octopus database's name.
pub(crate) const DATABASE: &str = "OctopusDeploy";
/// The SQL login octoup uses with `-U`.
pub(crate) const SQL_LOGIN: &str = "octoup";
/// What `-S` names in the generated config.
pub(crate) const SQL_SERVER: &str = "127.0.0.1,1433";

/// The Windows service state of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceState {
    Running,
    Stopped,
    Starting,
    Stopping,
}

/// Task states as the API spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    Queued,
    Executing,
    Cancelling,
    Success,
    Failed,
    Canceled,
    TimedOut,
}

impl TaskState {
    pub(crate) const ALL: [TaskState; 7] = [
        TaskState::Queued,
        TaskState::Executing,
        TaskState::Cancelling,
        TaskState::Success,
        TaskState::Failed,
        TaskState::Canceled,
        TaskState::TimedOut,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "Queued",
            TaskState::Executing => "Executing",
            TaskState::Cancelling => "Cancelling",
            TaskState::Success => "Success",
            TaskState::Failed => "Failed",
            TaskState::Canceled => "Canceled",
            TaskState::TimedOut => "TimedOut",
        }
    }

    /// Not finished: Queued, Executing or Cancelling (the API's `active=true`).
    pub(crate) fn is_active(self) -> bool {
        matches!(
            self,
            TaskState::Queued | TaskState::Executing | TaskState::Cancelling
        )
    }

    /// Executing or Cancelling (the API's `running=true`; counts for a drain).
    pub(crate) fn is_running(self) -> bool {
        matches!(self, TaskState::Executing | TaskState::Cancelling)
    }
}

/// The cluster-wide maintenance mode (stored in the database).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Maintenance {
    pub is_in_maintenance_mode: bool,
    pub last_modified_on: Option<Timestamp>,
    pub last_modified_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct License {
    /// `yyyy-MM-dd`.
    pub maintenance_expires: String,
    /// `MaximumAvailableVersionCoveredByLicense`.
    pub max_version_covered: String,
    pub serial_number: String,
    /// The whole license XML (`LicenseText`).
    pub xml: String,
    /// The term's end (`EffectiveExpiryDate`, `yyyy-MM-dd`).
    #[serde(default)]
    pub expires: String,
    #[serde(default)]
    pub node_limit: u32,
}

impl License {
    pub(crate) fn new(maintenance_expires: &str, max_version_covered: &str, nodes: u32) -> License {
        let serial_number = "71463-82930-11457-60082".to_string();
        let valid_from = jiff::civil::Date::strptime("%Y-%m-%d", maintenance_expires)
            .ok()
            .and_then(|d| d.checked_sub(jiff::Span::new().years(1)).ok())
            .map(|d| d.to_string())
            .unwrap_or_else(|| maintenance_expires.to_string());
        let xml = format!(
            "<License Signature=\"b2N0b3VwLXNpbS1ub3QtYS1yZWFsLXNpZ25hdHVyZQ==\">\n  \
             <LicensedTo>octoup-sim</LicensedTo>\n  <LicenseKey>{serial_number}</LicenseKey>\n  \
             <Version>2.0</Version>\n  <ValidFrom>{valid_from}</ValidFrom>\n  \
             <MaintenanceExpires>{maintenance_expires}</MaintenanceExpires>\n  \
             <ProjectLimit>Unlimited</ProjectLimit>\n  <MachineLimit>Unlimited</MachineLimit>\n  \
             <UserLimit>Unlimited</UserLimit>\n  <NodeLimit>{nodes}</NodeLimit>\n</License>\n"
        );
        License {
            maintenance_expires: maintenance_expires.to_string(),
            max_version_covered: max_version_covered.to_string(),
            serial_number,
            xml,
            expires: String::new(),
            node_limit: nodes,
        }
    }

    /// Whether the license's maintenance period covers `version`.
    pub(crate) fn covers(&self, version: &str) -> bool {
        crate::version::compare(version, &self.max_version_covered).is_le()
    }
}

/// One server task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// `ServerTasks-N`.
    pub id: String,
    pub name: String,
    pub description: String,
    pub state: TaskState,
    /// Name of the node executing it (render as node Id `OctopusServerNodes-<name>`).
    pub server_node: Option<String>,
    /// The node a queued task must run on; any node when `None`.
    pub pinned_node: Option<String>,
    pub queue_time: Timestamp,
    pub start_time: Option<Timestamp>,
    pub completed_time: Option<Timestamp>,
    /// Simulated seconds the task executes.
    pub duration: f64,
    /// Simulated second it started executing.
    pub started_sim: Option<f64>,
    pub error_message: String,
    /// The task ends Failed with this message (an integrity check that finds drift).
    #[serde(default)]
    pub fails_with: Option<String>,
    /// `Arguments.MachineIds` of an `Upgrade` task.
    #[serde(default)]
    pub machine_ids: Vec<String>,
    /// Never picked up from the queue (the stuck recurring-triggers task).
    #[serde(default)]
    pub stuck: bool,
    /// The space a space-scoped task was created in.
    #[serde(default)]
    pub space_id: Option<String>,
}

impl Task {
    pub(crate) fn server_node_id(&self) -> Option<String> {
        self.server_node.as_deref().map(node_id)
    }
}

/// The shared database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Database {
    pub name: String,
    pub schema_version: String,
    pub maintenance: Maintenance,
    pub license: License,
    pub tasks: Vec<Task>,
    pub next_task_number: u64,
    /// The schema upgrade running now, if any (the `database --upgrade` process also holds
    /// `DIR/db-upgrade.lock`, so a killed upgrade does not block the next one).
    pub upgrade: Option<UpgradeInProgress>,
    /// The rows octoup's rehearsal disarms (nodes, triggers, …); empty in old state files.
    #[serde(default)]
    pub data: OctopusData,
}

/// The Octopus rows a rehearsal copy must not keep enabled, as counts and ids: what the
/// vendor's disarming statements change and what a started server acts on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OctopusData {
    /// `OctopusServerNode` rows: node names.
    pub nodes: Vec<String>,
    /// `OctopusServerNodeStatus` rows: node names (the table exists from schema 2022.1).
    pub node_status: Vec<String>,
    /// Enabled rows of `Subscription`, `ProjectTrigger`, `Machine`, `Worker`.
    pub subscriptions: u32,
    pub project_triggers: u32,
    pub machines: u32,
    pub workers: u32,
    /// `ExtensionConfiguration` ids.
    pub extensions: Vec<String>,
    /// `InstallationId` of the `Configuration` row `upgradeavailability`.
    pub installation_id: String,
    /// A data-dependent migration failure: the next schema upgrade of this content fails
    /// half way with this message.
    pub migration_failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpgradeInProgress {
    pub node: String,
    pub from: String,
    pub to: String,
    pub started_sim: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watchdog {
    pub interval_minutes: u32,
    pub instances: String,
}

/// One node: its registration in the database plus what lives on its host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    /// Port of this node's API on 127.0.0.1.
    pub api_port: u16,
    /// Binary version installed on the host; `None` after `msiexec /x`.
    pub installed_version: Option<String>,
    pub service: ServiceState,
    /// The node's drain flag (`IsInMaintenanceMode` on the node resource).
    pub drain: bool,
    pub max_concurrent_tasks: u32,
    pub watchdog: Option<Watchdog>,
    /// Simulated second the node last checked in; a running node checks in continuously.
    pub last_seen_sim: f64,
    /// Simulated second the service last changed state.
    pub service_changed_sim: f64,
    pub install_in_progress: bool,
}

impl Node {
    pub(crate) fn id(&self) -> String {
        node_id(&self.name)
    }

    /// The binary version, or `""` when nothing is installed.
    pub(crate) fn version(&self) -> &str {
        self.installed_version.as_deref().unwrap_or("")
    }

    /// When the node last checked in, seen at `now` (a live service checks in now).
    pub(crate) fn last_seen(&self, now_sim: f64) -> f64 {
        if self.service == ServiceState::Stopped {
            self.last_seen_sim
        } else {
            now_sim
        }
    }

    pub(crate) fn running_tasks(&self, tasks: &[Task]) -> usize {
        tasks
            .iter()
            .filter(|t| t.state.is_running() && t.server_node.as_deref() == Some(&self.name))
            .count()
    }
}

/// `OctopusServerNodes-<name>`.
pub(crate) fn node_id(name: &str) -> String {
    format!("OctopusServerNodes-{name}")
}

/// Credentials of the installation (also written to files by `up`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Secrets {
    /// `API-` + 26 of `[A-Z0-9]`; has AdministerSystem.
    pub admin_api_key: String,
    /// A valid key without AdministerSystem.
    pub readonly_api_key: String,
    pub sql_login: String,
    pub sql_password: String,
    /// 16 bytes, base64.
    pub master_key: String,
}

impl Secrets {
    pub fn generate() -> Secrets {
        use base64::Engine;
        use rand::Rng;
        let mut rng = rand::rng();
        let mut key = || {
            const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            let body: String = (0..26)
                .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
                .collect();
            format!("API-{body}")
        };
        let admin_api_key = key();
        let readonly_api_key = key();
        let mut rng = rand::rng();
        let sql_password: String = (0..24)
            .map(|_| rng.sample(rand::distr::Alphanumeric) as char)
            .collect();
        let mut master = [0u8; 16];
        rng.fill(&mut master);
        Secrets {
            admin_api_key,
            readonly_api_key,
            sql_login: SQL_LOGIN.to_string(),
            sql_password: format!("Sq1-{sql_password}"),
            master_key: base64::engine::general_purpose::STANDARD.encode(master),
        }
    }
}

/// A backup the simulated SQL Server wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupRecord {
    pub database: String,
    pub path: String,
    pub schema_version: String,
    pub taken_sim: f64,
    pub copy_only: bool,
    pub checksum: bool,
}

/// What the daemon (`octoup-sim serve`) publishes about itself while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonInfo {
    pub pid: u32,
    pub started_at: Timestamp,
}

/// Ports chosen for an installation.
#[derive(Debug, Clone, PartialEq)]
pub struct Ports {
    pub feed: u16,
    /// One per node, in node order.
    pub nodes: Vec<u16>,
}

/// The whole state (`DIR/state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub installation_id: String,
    /// Real time the installation was created: simulated second 0.
    pub created_at: Timestamp,
    pub time_scale: f64,
    pub durations: Durations,
    pub instance: String,
    pub sql_server: String,
    /// Port of the feed and download server on 127.0.0.1.
    pub feed_port: u16,
    /// Port of the simulator's SQL Server port on 127.0.0.1 (0: none, an old state file).
    #[serde(default)]
    pub sql_port: u16,
    /// The feed as served (order kept).
    pub feed: Vec<FeedEntry>,
    pub installer_size: u64,
    pub database: Database,
    /// The SQL Server as the sqlcmd stand-in reports it (the spec's `[database]`).
    #[serde(default)]
    pub sql: DatabaseSpec,
    /// The other databases, credentials and RDS tasks on the SQL instance.
    #[serde(default)]
    pub instance_dbs: super::instance::SqlInstance,
    pub nodes: Vec<Node>,
    /// Machines outside the installation (`spare_nodes` in the spec).
    #[serde(default)]
    pub spare_nodes: Vec<super::SpareNode>,
    pub secrets: Secrets,
    pub backups: Vec<BackupRecord>,
    pub faults: Vec<FaultSpec>,
    /// The host and the server's own checks.
    #[serde(default)]
    pub server: super::machines::ServerInfo,
    #[serde(default)]
    pub spaces: Vec<super::machines::Space>,
    /// Deployment targets and workers, in every space.
    #[serde(default)]
    pub machines: Vec<super::machines::Machine>,
    /// Set by the daemon while it runs.
    pub daemon: Option<DaemonInfo>,
    /// Port of the rehearsal SQL Server's SQL port (0: none; spec `rehearsal_sql_server`).
    /// Its own state is in `DIR/rehearsal-sql`.
    #[serde(default)]
    pub rehearsal_sql_port: u16,
    /// Set in the state of a SQL Server that is not the installation's own (`rehearsal`):
    /// its events go into the installation's history (the parent directory), tagged so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_label: Option<String>,
    /// Sequence number of the next history record.
    pub next_seq: u64,
    /// Events recorded during the current update, appended when it commits.
    #[serde(skip)]
    pub(super) pending: Vec<Event>,
}

impl State {
    pub(crate) fn clock(&self) -> Clock {
        Clock::new(self.created_at, self.time_scale)
    }

    pub(crate) fn now_sim(&self) -> f64 {
        self.clock().now_sim()
    }

    /// Queues an event; it is appended to the history when the current update commits.
    pub(crate) fn record(&mut self, event: Event) {
        self.pending.push(event);
    }

    /// Drops the queued events (a copy of a state that must not repeat them).
    pub(crate) fn forget_pending(&mut self) {
        self.pending.clear();
    }

    pub(crate) fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    pub(crate) fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }
}

/// The part of the state a database backup holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DatabaseSnapshot {
    pub database: String,
    pub schema_version: String,
    pub maintenance: bool,
    pub license: License,
    pub drain: BTreeMap<String, bool>,
    pub max_concurrent_tasks: BTreeMap<String, u32>,
    /// The Octopus rows (absent from backups written before rehearsals: defaults).
    #[serde(flatten, default)]
    pub data: OctopusData,
}
