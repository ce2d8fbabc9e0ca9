//! Every change of the state, each recording the history events it causes (appended
//! when the [`Store`](super::Store) update that made it commits).

use jiff::Timestamp;

use super::model::{
    DATABASE, Database, DatabaseSnapshot, INSTANCE, License, Maintenance, Node, OctopusData, Ports,
    SQL_SERVER, Secrets, ServiceState, State, Task, TaskState,
};
use crate::faults::FaultAction;
use crate::history::{Event, NodeInit};
use crate::spec::Spec;

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
            sql_port: 0,
            rehearsal_sql_port: 0,
            server_label: None,
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
                data: OctopusData::default(),
            },
            sql: spec.database.clone(),
            instance_dbs: Default::default(),
            nodes,
            secrets,
            backups: Vec::new(),
            faults: spec.faults.clone(),
            server: Default::default(),
            spaces: Vec::new(),
            machines: Vec::new(),
            spare_nodes: Vec::new(),
            daemon: None,
            next_seq: 1,
            pending: Vec::new(),
        };
        state.furnish(spec);
        state.database.data = octopus_data(spec, &names, &state.installation_id);
        state.seed_instance();
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

    /// Takes a pending fault for `op` on `node` (consuming one of its `times`) and records
    /// `fault-fired`.
    pub(crate) fn take_fault(&mut self, op: &str, node: Option<&str>) -> Option<FaultAction> {
        let action = crate::faults::take(&mut self.faults, op, node)?;
        self.record(Event::FaultFired {
            op: op.to_string(),
            action: action.to_string(),
            node: node.map(str::to_string),
        });
        Some(action)
    }

    /// Nodes other than `except` whose service runs, or ran within `node_stale_after`.
    pub(crate) fn nodes_seen_running(&self, except: &str) -> Vec<String> {
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
    pub(crate) fn move_service(&mut self, node: &str, to: ServiceState, by: &str) {
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
            fails_with: None,
            machine_ids: Vec::new(),
            stuck: false,
            space_id: None,
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
    pub(crate) fn advance_tasks(&mut self) {
        let now = self.now_sim();
        let clock = self.clock();
        let mut events = Vec::new();
        let mut finished = Vec::new();
        for t in &mut self.database.tasks {
            match t.state {
                TaskState::Executing => {
                    let end = t.started_sim.unwrap_or(now) + t.duration;
                    if end <= now {
                        t.state = match t.fails_with.take() {
                            Some(message) => {
                                t.error_message = message;
                                TaskState::Failed
                            }
                            None => TaskState::Success,
                        };
                        t.completed_time = Some(clock.real_at(end));
                        events.push(Event::TaskFinished {
                            task_id: t.id.clone(),
                            node: t.server_node.clone().unwrap_or_default(),
                            state: t.state.as_str().to_string(),
                        });
                        finished.push(t.id.clone());
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
        for id in finished {
            self.task_finished(&id);
        }
        let queued: Vec<(String, Option<String>)> = self
            .database
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Queued && !t.stuck)
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
    pub(crate) fn cancel_tasks(&mut self, node: Option<&str>, by: &str) -> usize {
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
    pub(crate) fn kill_tasks(&mut self, node: &str) {
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
    pub(crate) fn start_refusal(&self, binary: &str) -> Option<String> {
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
    pub(crate) fn finish_start(&mut self, node: &str, by: &str) -> Result<(), String> {
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
    pub(crate) fn run_watchdogs(&mut self) {
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
    pub(crate) fn snapshot(&self) -> DatabaseSnapshot {
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
            data: self.octopus_data(),
        }
    }

    /// Simulated seconds a schema migration `from` → `to` takes here (one rule for
    /// `database --upgrade` and the container).
    pub(crate) fn migration_seconds(&self, from: &str, to: &str) -> f64 {
        self.durations
            .migration_seconds(self.sql.size_gb, from, to, &self.feed)
    }

    /// The Octopus database's rows (an old state file has none recorded: its nodes and
    /// installation id then stand in).
    pub(crate) fn octopus_data(&self) -> OctopusData {
        let mut data = self.database.data.clone();
        if data.installation_id.is_empty() {
            data.installation_id = self.installation_id.clone();
        }
        data
    }

    /// Puts the database back as `snapshot` describes; records the flag changes and
    /// `db-restored`. Tasks are kept (the history of work is not rolled back here).
    pub(crate) fn restore(&mut self, snapshot: &DatabaseSnapshot, path: &str) {
        let from = self.database.schema_version.clone();
        self.database.schema_version = snapshot.schema_version.clone();
        self.database.license = snapshot.license.clone();
        // A backup written before rehearsals carries no rows: keep the current ones.
        if !snapshot.data.installation_id.is_empty() {
            self.database.data = snapshot.data.clone();
        }
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

/// The Octopus rows of a new installation: its nodes, the spec's counts, at least one
/// deployment target and one worker (so disarming visibly changes something).
fn octopus_data(spec: &Spec, nodes: &[String], installation_id: &str) -> OctopusData {
    let workers = spec.machines.iter().filter(|m| m.role == "worker").count() as u32;
    let targets = spec.machines.len() as u32 - workers;
    let d = &spec.database;
    OctopusData {
        nodes: nodes.to_vec(),
        node_status: nodes.to_vec(),
        subscriptions: d.subscriptions,
        project_triggers: d.project_triggers,
        machines: targets.max(1),
        workers: workers.max(1),
        extensions: d.extensions.clone(),
        installation_id: installation_id.to_string(),
        migration_failure: Some(d.migration_failure.clone()).filter(|m| !m.is_empty()),
    }
}

/// A fresh GUID, lower case, as `LOWER(CONVERT(NVARCHAR(255), NEWID()))` gives.
pub(crate) fn new_guid() -> String {
    installation_id()
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
