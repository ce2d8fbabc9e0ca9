//! The simulated installation's state on disk: `DIR/state.json`, guarded by an exclusive
//! lock on `DIR/state.lock`, written atomically (temp file + rename). Every process of the
//! simulator (the daemon, each stand-in) goes through [`Store`], so concurrent changes never
//! interleave and history events are appended under the same lock as the change they describe.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::faults::{FaultAction, FaultSpec};
use crate::history::{self, Event, NodeInit, Record};
use crate::spec::{Durations, FeedEntry, Spec};

pub const STATE_FILE: &str = "state.json";
pub const LOCK_FILE: &str = "state.lock";
pub const HISTORY_FILE: &str = "history.jsonl";

/// Instance name every node uses.
pub const INSTANCE: &str = "OctopusServer";
/// The Octopus database's name.
pub const DATABASE: &str = "OctopusDeploy";
/// The SQL login octoup uses with `-U`.
pub const SQL_LOGIN: &str = "octoup";
/// What `-S` names in the generated config.
pub const SQL_SERVER: &str = "127.0.0.1,1433";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}; check that the simulator directory exists and is writable")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is corrupt ({message}); recreate the installation with `octoup-sim up`")]
    Corrupt { path: String, message: String },
    #[error("no simulated installation in {0}; create one with `octoup-sim up --dir {0}`")]
    NotFound(String),
    #[error(
        "{0} already holds a simulated installation; stop it with `octoup-sim down --dir {0}` and remove the directory, or choose another one"
    )]
    AlreadyExists(String),
}

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
    pub const ALL: [TaskState; 7] = [
        TaskState::Queued,
        TaskState::Executing,
        TaskState::Cancelling,
        TaskState::Success,
        TaskState::Failed,
        TaskState::Canceled,
        TaskState::TimedOut,
    ];

    pub fn as_str(self) -> &'static str {
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
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TaskState::Queued | TaskState::Executing | TaskState::Cancelling
        )
    }

    /// Executing or Cancelling (the API's `running=true`; counts for a drain).
    pub fn is_running(self) -> bool {
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
}

impl License {
    pub fn new(maintenance_expires: &str, max_version_covered: &str, nodes: u32) -> License {
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
        }
    }

    /// Whether the license's maintenance period covers `version`.
    pub fn covers(&self, version: &str) -> bool {
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
}

impl Task {
    pub fn server_node_id(&self) -> Option<String> {
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
    pub fn id(&self) -> String {
        node_id(&self.name)
    }

    /// The binary version, or `""` when nothing is installed.
    pub fn version(&self) -> &str {
        self.installed_version.as_deref().unwrap_or("")
    }

    /// When the node last checked in, seen at `now` (a live service checks in now).
    pub fn last_seen(&self, now_sim: f64) -> f64 {
        if self.service == ServiceState::Stopped {
            self.last_seen_sim
        } else {
            now_sim
        }
    }

    pub fn running_tasks(&self, tasks: &[Task]) -> usize {
        tasks
            .iter()
            .filter(|t| t.state.is_running() && t.server_node.as_deref() == Some(&self.name))
            .count()
    }
}

/// `OctopusServerNodes-<name>`.
pub fn node_id(name: &str) -> String {
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

    /// Every secret value, for leak detection.
    pub fn all(&self) -> [&str; 4] {
        [
            &self.admin_api_key,
            &self.readonly_api_key,
            &self.sql_password,
            &self.master_key,
        ]
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
    /// The feed as served (order kept).
    pub feed: Vec<FeedEntry>,
    pub installer_size: u64,
    pub database: Database,
    pub nodes: Vec<Node>,
    pub secrets: Secrets,
    pub backups: Vec<BackupRecord>,
    pub faults: Vec<FaultSpec>,
    /// Set by the daemon while it runs.
    pub daemon: Option<DaemonInfo>,
    /// Sequence number of the next history record.
    pub next_seq: u64,
    /// Events recorded during the current update, appended when it commits.
    #[serde(skip)]
    pending: Vec<Event>,
}

impl State {
    /// A fresh installation from a spec; records `installation-created` and the workload.
    pub fn new(spec: &Spec, ports: &Ports, secrets: Secrets) -> State {
        let created_at = Timestamp::now();
        let names = spec.node_names();
        let nodes: Vec<Node> = names
            .iter()
            .enumerate()
            .map(|(i, name)| Node {
                name: name.clone(),
                api_port: ports.nodes.get(i).copied().unwrap_or(0),
                installed_version: Some(spec.version.clone()),
                service: ServiceState::Running,
                drain: false,
                max_concurrent_tasks: 5,
                watchdog: None,
                last_seen_sim: 0.0,
                service_changed_sim: 0.0,
                install_in_progress: false,
            })
            .collect();
        let mut state = State {
            installation_id: installation_id(),
            created_at,
            time_scale: spec.time_scale,
            durations: spec.durations.clone(),
            instance: INSTANCE.to_string(),
            sql_server: SQL_SERVER.to_string(),
            feed_port: ports.feed,
            feed: spec.feed.versions.clone(),
            installer_size: spec.installer.size,
            database: Database {
                name: DATABASE.to_string(),
                schema_version: spec.version.clone(),
                maintenance: Maintenance {
                    is_in_maintenance_mode: false,
                    last_modified_on: None,
                    last_modified_by: None,
                },
                license: License::new(
                    &spec.license.maintenance_expires,
                    &spec.license.max_version_covered,
                    spec.nodes,
                ),
                tasks: Vec::new(),
                next_task_number: 1001,
                upgrade: None,
            },
            nodes,
            secrets,
            backups: Vec::new(),
            faults: spec.faults.clone(),
            daemon: None,
            next_seq: 1,
            pending: Vec::new(),
        };
        let init = state
            .nodes
            .iter()
            .map(|n| NodeInit {
                node: n.name.clone(),
                binary_version: n.version().to_string(),
                running: true,
                drain: n.drain,
                watchdog: n.watchdog.is_some(),
            })
            .collect();
        state.record(Event::InstallationCreated {
            schema_version: spec.version.clone(),
            maintenance: false,
            nodes: init,
        });
        for (i, w) in spec.workload.iter().enumerate() {
            let node = w
                .node
                .clone()
                .unwrap_or_else(|| names[i % names.len()].clone());
            let description = w
                .description
                .clone()
                .unwrap_or_else(|| format!("{} {} (simulated workload)", w.name, i + 1));
            let id = state.queue_task(&w.name, &description, w.duration, w.node.clone());
            if w.state == "Executing" {
                state.start_task(&id, &node, 0.0);
            }
        }
        state
    }

    pub fn clock(&self) -> Clock {
        Clock::new(self.created_at, self.time_scale)
    }

    pub fn now_sim(&self) -> f64 {
        self.clock().now_sim()
    }

    /// Queues an event; it is appended to the history when the current update commits.
    pub fn record(&mut self, event: Event) {
        self.pending.push(event);
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Takes a pending fault for `op` on `node` (consuming one of its `times`) and records
    /// `fault-fired`.
    pub fn take_fault(&mut self, op: &str, node: Option<&str>) -> Option<FaultAction> {
        let action = crate::faults::take(&mut self.faults, op, node)?;
        self.record(Event::FaultFired {
            op: op.to_string(),
            action: action.to_string(),
            node: node.map(str::to_string),
        });
        Some(action)
    }

    /// Nodes other than `except` whose service runs, or ran within `node_stale_after`.
    pub fn nodes_seen_running(&self, except: &str) -> Vec<String> {
        let now = self.now_sim();
        self.nodes
            .iter()
            .filter(|n| n.name != except)
            .filter(|n| {
                n.service != ServiceState::Stopped
                    || now - n.last_seen_sim < self.durations.node_stale_after
            })
            .map(|n| n.name.clone())
            .collect()
    }

    /// Changes a node's service state, keeping `last_seen_sim` and `service_changed_sim`.
    pub fn set_service(&mut self, node: &str, service: ServiceState) {
        let now = self.now_sim();
        if let Some(n) = self.node_mut(node) {
            if n.service != ServiceState::Stopped || service != ServiceState::Stopped {
                n.last_seen_sim = now;
            }
            n.service = service;
            n.service_changed_sim = now;
        }
    }

    /// Moves `node`'s service to `to` and records the matching `service-*` event with the
    /// node's binary and the schema version. `by` names who started it (`cli`, `watchdog`).
    pub fn move_service(&mut self, node: &str, to: ServiceState, by: &str) {
        let binary_version = self
            .node(node)
            .map(|n| n.version().to_string())
            .unwrap_or_default();
        let schema_version = self.database.schema_version.clone();
        self.set_service(node, to);
        let node = node.to_string();
        self.record(match to {
            ServiceState::Starting => Event::ServiceStarting {
                node,
                binary_version,
                schema_version,
            },
            ServiceState::Running => Event::ServiceStarted {
                node,
                binary_version,
                schema_version,
                by: by.to_string(),
            },
            ServiceState::Stopping => Event::ServiceStopping {
                node,
                binary_version,
                schema_version,
            },
            ServiceState::Stopped => Event::ServiceStopped {
                node,
                binary_version,
                schema_version,
            },
        });
    }

    /// Sets the cluster maintenance mode; records `maintenance-set` when it changes.
    pub fn set_maintenance(&mut self, value: bool, by: &str) {
        let m = &mut self.database.maintenance;
        let changed = m.is_in_maintenance_mode != value;
        m.is_in_maintenance_mode = value;
        m.last_modified_on = Some(Timestamp::now());
        m.last_modified_by = Some(by.to_string());
        if changed {
            self.record(Event::MaintenanceSet {
                value,
                by: by.to_string(),
            });
        }
    }

    /// Sets a node's drain flag; records `drain-set` when it changes. False: no such node.
    pub fn set_drain(&mut self, node: &str, value: bool, by: &str) -> bool {
        let Some(n) = self.node_mut(node) else {
            return false;
        };
        let changed = n.drain != value;
        n.drain = value;
        if changed {
            self.record(Event::DrainSet {
                node: node.to_string(),
                value,
                by: by.to_string(),
            });
        }
        true
    }

    /// Adds a queued task; returns its Id.
    pub fn queue_task(
        &mut self,
        name: &str,
        description: &str,
        duration: f64,
        pinned_node: Option<String>,
    ) -> String {
        let id = format!("ServerTasks-{}", self.database.next_task_number);
        self.database.next_task_number += 1;
        self.database.tasks.push(Task {
            id: id.clone(),
            name: name.to_string(),
            description: description.to_string(),
            state: TaskState::Queued,
            server_node: None,
            pinned_node: pinned_node.clone(),
            queue_time: Timestamp::now(),
            start_time: None,
            completed_time: None,
            duration,
            started_sim: None,
            error_message: String::new(),
        });
        self.record(Event::TaskQueued {
            task_id: id.clone(),
            name: name.to_string(),
            node: pinned_node,
        });
        id
    }

    fn start_task(&mut self, id: &str, node: &str, now: f64) {
        let real = self.clock().real_at(now);
        if let Some(t) = self.database.tasks.iter_mut().find(|t| t.id == id) {
            t.state = TaskState::Executing;
            t.server_node = Some(node.to_string());
            t.start_time = Some(real);
            t.started_sim = Some(now);
            let event = Event::TaskStarted {
                task_id: t.id.clone(),
                node: node.to_string(),
                name: t.name.clone(),
            };
            self.record(event);
        }
    }

    /// Moves tasks forward to `now`: executing tasks past their duration succeed,
    /// cancelling tasks become canceled, queued tasks start on a running, undrained node
    /// below its task cap (maintenance mode does not stop queued tasks from starting).
    pub fn advance_tasks(&mut self) {
        let now = self.now_sim();
        let clock = self.clock();
        let mut events = Vec::new();
        for t in &mut self.database.tasks {
            match t.state {
                TaskState::Executing => {
                    let end = t.started_sim.unwrap_or(now) + t.duration;
                    if end <= now {
                        t.state = TaskState::Success;
                        t.completed_time = Some(clock.real_at(end));
                        events.push(Event::TaskFinished {
                            task_id: t.id.clone(),
                            node: t.server_node.clone().unwrap_or_default(),
                            state: "Success".to_string(),
                        });
                    }
                }
                TaskState::Cancelling => {
                    t.state = TaskState::Canceled;
                    t.completed_time = Some(Timestamp::now());
                }
                _ => {}
            }
        }
        for e in events {
            self.record(e);
        }
        let queued: Vec<(String, Option<String>)> = self
            .database
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Queued)
            .map(|t| (t.id.clone(), t.pinned_node.clone()))
            .collect();
        for (id, pinned) in queued {
            let tasks = &self.database.tasks;
            let free = self.nodes.iter().find(|n| {
                n.service == ServiceState::Running
                    && !n.drain
                    && pinned.as_deref().is_none_or(|p| p == n.name)
                    && n.running_tasks(tasks) < n.max_concurrent_tasks as usize
            });
            if let Some(node) = free.map(|n| n.name.clone()) {
                self.start_task(&id, &node, now);
            }
        }
    }

    /// Cancels the running and queued tasks of `node` (all nodes when `None`).
    pub fn cancel_tasks(&mut self, node: Option<&str>, by: &str) -> usize {
        let now = Timestamp::now();
        let mut events = Vec::new();
        for t in &mut self.database.tasks {
            let on_node = match node {
                None => true,
                Some(n) => t.server_node.as_deref() == Some(n),
            };
            if t.state.is_running() && on_node {
                t.state = TaskState::Canceled;
                t.completed_time = Some(now);
                t.error_message = "The task was canceled.".to_string();
                events.push(Event::TaskCanceled {
                    task_id: t.id.clone(),
                    node: t.server_node.clone(),
                    by: by.to_string(),
                });
            }
        }
        let n = events.len();
        for e in events {
            self.record(e);
        }
        n
    }

    /// The service of `node` went down under its executing tasks: they fail.
    pub fn kill_tasks(&mut self, node: &str) {
        let now = Timestamp::now();
        let mut events = Vec::new();
        for t in &mut self.database.tasks {
            if t.state.is_running() && t.server_node.as_deref() == Some(node) {
                t.state = TaskState::Failed;
                t.completed_time = Some(now);
                t.error_message =
                    "The Octopus Server node running this task was shut down.".to_string();
                events.push(Event::TaskKilled {
                    task_id: t.id.clone(),
                    node: node.to_string(),
                });
            }
        }
        for e in events {
            self.record(e);
        }
    }

    /// Why the server would refuse to start with `binary` against the current database.
    pub fn start_refusal(&self, binary: &str) -> Option<String> {
        let schema = &self.database.schema_version;
        let instance = &self.instance;
        match crate::version::compare(binary, schema) {
            std::cmp::Ordering::Less => {
                return Some(format!(
                    "The database schema ({schema}) is newer than this version of Octopus Server ({binary}). Octopus Server cannot run against a database upgraded by a newer version: install Octopus Server {schema} or later, or restore the database backup taken before the upgrade."
                ));
            }
            std::cmp::Ordering::Greater => {
                return Some(format!(
                    "The database schema ({schema}) is older than this version of Octopus Server ({binary}). A database upgrade is required: with every node stopped, run `Octopus.Server.exe database --upgrade --instance={instance}` on one node, then start the service."
                ));
            }
            std::cmp::Ordering::Equal => {}
        }
        let license = &self.database.license;
        if !license.covers(binary) {
            return Some(format!(
                "Your license's maintenance period ends {} and covers versions up to {}; Octopus Server {binary} is not covered, so it cannot start. Install a license that covers {binary} or reinstall the previous version.",
                license.maintenance_expires, license.max_version_covered
            ));
        }
        if self.database.upgrade.is_some() {
            return Some("The database is being upgraded by another node. Wait for the upgrade to finish, then start the service.".to_string());
        }
        None
    }

    /// Ends a start of `node`'s service: Running (`service-started`), or back to Stopped
    /// with `service-start-failed` and the reason when [`State::start_refusal`] refuses.
    pub fn finish_start(&mut self, node: &str, by: &str) -> Result<(), String> {
        let binary_version = self
            .node(node)
            .map(|n| n.version().to_string())
            .unwrap_or_default();
        match self.start_refusal(&binary_version) {
            Some(reason) => {
                self.set_service(node, ServiceState::Stopped);
                self.record(Event::ServiceStartFailed {
                    node: node.to_string(),
                    binary_version,
                    schema_version: self.database.schema_version.clone(),
                    reason: reason.clone(),
                });
                Err(reason)
            }
            None => {
                self.move_service(node, ServiceState::Running, by);
                Ok(())
            }
        }
    }

    /// The service watchdog (`watchdog --create`): a stopped node with a watchdog is started
    /// again once its interval has passed since it stopped, as the scheduled
    /// `checkservices` task does. Call it from the daemon's tick.
    pub fn run_watchdogs(&mut self) {
        let now = self.now_sim();
        let due: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.service == ServiceState::Stopped && n.installed_version.is_some())
            .filter(|n| {
                n.watchdog.as_ref().is_some_and(|w| {
                    now - n.service_changed_sim >= f64::from(w.interval_minutes) * 60.0
                })
            })
            .map(|n| n.name.clone())
            .collect();
        for node in due {
            self.move_service(&node, ServiceState::Starting, "watchdog");
            // A refused start stays stopped; the next run is one interval later.
            let _ = self.finish_start(&node, "watchdog");
        }
    }

    /// What a database backup contains.
    pub fn snapshot(&self) -> DatabaseSnapshot {
        DatabaseSnapshot {
            database: self.database.name.clone(),
            schema_version: self.database.schema_version.clone(),
            maintenance: self.database.maintenance.is_in_maintenance_mode,
            license: self.database.license.clone(),
            drain: self
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.drain))
                .collect(),
            max_concurrent_tasks: self
                .nodes
                .iter()
                .map(|n| (n.name.clone(), n.max_concurrent_tasks))
                .collect(),
        }
    }

    /// Puts the database back as `snapshot` describes; records the flag changes and
    /// `db-restored`. Tasks are kept (the history of work is not rolled back here).
    pub fn restore(&mut self, snapshot: &DatabaseSnapshot, path: &str) {
        let from = self.database.schema_version.clone();
        self.database.schema_version = snapshot.schema_version.clone();
        self.database.license = snapshot.license.clone();
        self.set_maintenance(snapshot.maintenance, "restore");
        for (node, drain) in &snapshot.drain {
            self.set_drain(node, *drain, "restore");
        }
        for (node, cap) in &snapshot.max_concurrent_tasks {
            if let Some(n) = self.node_mut(node) {
                n.max_concurrent_tasks = *cap;
            }
        }
        self.record(Event::DbRestored {
            database: snapshot.database.clone(),
            path: path.to_string(),
            from_schema: from,
            to_schema: snapshot.schema_version.clone(),
        });
    }
}

/// The part of the state a database backup holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatabaseSnapshot {
    pub database: String,
    pub schema_version: String,
    pub maintenance: bool,
    pub license: License,
    pub drain: BTreeMap<String, bool>,
    pub max_concurrent_tasks: BTreeMap<String, u32>,
}

fn installation_id() -> String {
    use rand::Rng;
    let b: [u8; 16] = rand::rng().random();
    let h = hex::encode(b);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Access to one installation's state directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens an existing installation.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        if !dir.join(STATE_FILE).is_file() {
            return Err(StoreError::NotFound(dir.display().to_string()));
        }
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    /// Creates the directory and writes a new state (and its first history events).
    pub fn create(dir: &Path, mut state: State) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let store = Store {
            dir: dir.to_path_buf(),
        };
        let _lock = store.lock_file(true, true)?;
        if store.state_path().exists() {
            return Err(StoreError::AlreadyExists(dir.display().to_string()));
        }
        store.commit(&mut state)?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    pub fn history_path(&self) -> PathBuf {
        self.dir.join(HISTORY_FILE)
    }

    /// Reads the state under a shared lock.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> Result<T, StoreError> {
        let _lock = self.lock(false)?;
        let state = self.load()?;
        Ok(f(&state))
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> Result<State, StoreError> {
        self.read(State::clone)
    }

    /// Locks, loads, lets `f` change the state, then saves it and appends the events `f`
    /// recorded. When `f` fails nothing is saved and its events are dropped.
    pub fn update<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, E>,
    ) -> Result<T, E> {
        let _lock = self.lock(true)?;
        let mut state = self.load()?;
        let value = f(&mut state)?;
        self.commit(&mut state)?;
        Ok(value)
    }

    /// Appends one event to the history.
    pub fn record(&self, event: Event) -> Result<(), StoreError> {
        self.update(|s| {
            s.record(event);
            Ok::<_, StoreError>(())
        })
    }

    /// Every history record so far.
    pub fn history(&self) -> Result<Vec<Record>, StoreError> {
        let _lock = self.lock(false)?;
        history::load(&self.history_path())
    }

    /// Takes the state lock. Only [`Store::create`] creates the lock file: an installation
    /// whose directory is being deleted must not have it recreated under the deleter.
    fn lock(&self, exclusive: bool) -> Result<File, StoreError> {
        self.lock_file(exclusive, false)
    }

    fn lock_file(&self, exclusive: bool, create: bool) -> Result<File, StoreError> {
        let path = self.dir.join(LOCK_FILE);
        let io = |source| StoreError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .create(create)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    StoreError::NotFound(self.dir.display().to_string())
                } else {
                    io(source)
                }
            })?;
        if exclusive {
            file.lock().map_err(io)?;
        } else {
            file.lock_shared().map_err(io)?;
        }
        // Dropping the file releases the lock.
        Ok(file)
    }

    fn load(&self) -> Result<State, StoreError> {
        let path = self.state_path();
        let text = std::fs::read_to_string(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                StoreError::NotFound(self.dir.display().to_string())
            } else {
                StoreError::Io {
                    path: path.display().to_string(),
                    source,
                }
            }
        })?;
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Saves the state (temp file + rename) and appends its pending events.
    fn commit(&self, state: &mut State) -> Result<(), StoreError> {
        let clock = state.clock();
        let at = Timestamp::now();
        let sim_seconds = clock.sim_at(at);
        let records: Vec<Record> = std::mem::take(&mut state.pending)
            .into_iter()
            .map(|event| {
                let seq = state.next_seq;
                state.next_seq += 1;
                Record {
                    seq,
                    at,
                    sim_seconds,
                    event,
                }
            })
            .collect();
        let path = self.state_path();
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        let io = |p: &Path, source| StoreError::Io {
            path: p.display().to_string(),
            source,
        };
        // Serializing our own types cannot fail.
        let text = serde_json::to_string_pretty(state).unwrap_or_default();
        std::fs::write(&tmp, text).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        history::append(&self.history_path(), &records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn ports(n: usize) -> Ports {
        Ports {
            feed: 41000,
            nodes: (0..n).map(|i| 41001 + i as u16).collect(),
        }
    }

    #[test]
    fn create_update_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec {
            nodes: 2,
            workload: vec![crate::spec::WorkloadSpec::default()],
            ..Spec::default()
        };
        let store = Store::create(
            dir.path(),
            State::new(&spec, &ports(2), Secrets::generate()),
        )
        .unwrap();
        assert!(matches!(
            Store::create(
                dir.path(),
                State::new(&spec, &ports(2), Secrets::generate())
            ),
            Err(StoreError::AlreadyExists(_))
        ));
        let state = store.snapshot().unwrap();
        assert_eq!(state.nodes.len(), 2);
        assert_eq!(state.nodes[1].id(), "OctopusServerNodes-OCTO-NODE-02");
        assert_eq!(state.database.tasks[0].state, TaskState::Executing);
        assert!(state.secrets.admin_api_key.starts_with("API-"));
        assert_eq!(state.secrets.admin_api_key.len(), 30);

        store
            .update(|s| {
                s.set_maintenance(true, "test");
                s.set_drain("OCTO-NODE-01", true, "cli");
                Ok::<_, StoreError>(())
            })
            .unwrap();
        // A failing update saves nothing and records nothing.
        let err: Result<(), StoreError> = store.update(|s| {
            s.set_maintenance(false, "test");
            Err(StoreError::NotFound("x".into()))
        });
        assert!(err.is_err());
        assert!(
            store
                .read(|s| s.database.maintenance.is_in_maintenance_mode)
                .unwrap()
        );

        let history = store.history().unwrap();
        let kinds: Vec<String> = history.iter().map(|r| r.event.kind()).collect();
        assert_eq!(
            kinds,
            [
                "installation-created",
                "task-queued",
                "task-started",
                "maintenance-set",
                "drain-set"
            ]
        );
        let seqs: Vec<u64> = history.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn concurrent_updates_do_not_lose_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(
            dir.path(),
            State::new(&Spec::default(), &ports(1), Secrets::generate()),
        )
        .unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        store
                            .update(|s| {
                                s.nodes[0].max_concurrent_tasks += 1;
                                Ok::<_, StoreError>(())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            store.read(|s| s.nodes[0].max_concurrent_tasks).unwrap(),
            105
        );
    }

    #[test]
    fn tasks_advance_and_respect_drain() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec {
            time_scale: 0.001,
            ..Spec::default()
        };
        let store = Store::create(
            dir.path(),
            State::new(&spec, &ports(1), Secrets::generate()),
        )
        .unwrap();
        store
            .update(|s| {
                s.set_drain("OCTO-NODE-01", true, "cli");
                s.queue_task("Deploy", "d", 5.0, None);
                s.advance_tasks();
                assert_eq!(s.database.tasks[0].state, TaskState::Queued);
                s.set_drain("OCTO-NODE-01", false, "cli");
                s.advance_tasks();
                assert_eq!(s.database.tasks[0].state, TaskState::Executing);
                Ok::<_, StoreError>(())
            })
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        store
            .update(|s| {
                s.advance_tasks();
                assert_eq!(s.database.tasks[0].state, TaskState::Success);
                Ok::<_, StoreError>(())
            })
            .unwrap();
    }

    #[test]
    fn the_watchdog_restarts_a_stopped_service_after_its_interval() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec {
            time_scale: 0.001,
            nodes: 2,
            ..Spec::default()
        };
        let store = Store::create(
            dir.path(),
            State::new(&spec, &ports(2), Secrets::generate()),
        )
        .unwrap();
        store
            .update(|s| {
                for n in &mut s.nodes {
                    n.watchdog = Some(Watchdog {
                        interval_minutes: 1,
                        instances: "*".into(),
                    });
                }
                s.set_service("OCTO-NODE-01", ServiceState::Stopped);
                s.set_service("OCTO-NODE-02", ServiceState::Stopped);
                // Node 2 was upgraded but the schema was not: its restart fails.
                s.nodes[1].installed_version = Some("2024.2.9409".into());
                s.run_watchdogs();
                assert_eq!(s.nodes[0].service, ServiceState::Stopped, "not yet due");
                Ok::<_, StoreError>(())
            })
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(80));
        store
            .update(|s| {
                s.run_watchdogs();
                assert_eq!(s.nodes[0].service, ServiceState::Running);
                assert_eq!(s.nodes[1].service, ServiceState::Stopped);
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let history = store.history().unwrap();
        assert!(history.iter().any(|r| matches!(&r.event,
            Event::ServiceStarted { node, by, .. } if node == "OCTO-NODE-01" && by == "watchdog")));
        assert!(history.iter().any(|r| matches!(&r.event,
            Event::ServiceStartFailed { node, .. } if node == "OCTO-NODE-02")));
    }
}
