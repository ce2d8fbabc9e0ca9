//! A fake world for the engine: one in-memory installation (nodes, the schema, maintenance
//! mode, backups, running tasks) behind one lock, which keeps a history of every change and
//! every refused unsafe attempt, and fails, hangs or "crashes" an operation on request.
//!
//! It behaves like the real thing where the engine's rules depend on it: a stopped node does
//! not answer, a drained one answers 418; the cluster API answers only while some node
//! serves; a service refuses to start when its binaries differ from the schema; the schema
//! upgrade refuses while any node runs; a restore refuses while the database is in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::config::Secret;
use crate::database::{DatabaseError, Media, Percent, RollbackPoint};
use crate::installer::cache::{InstallerError, Role, StagedInstaller};
use crate::journal::RunNode;
use crate::nodes::{InstallOutcome, NodeAgent, NodeCommand, NodeError, WatchdogInfo};
use crate::octopus::api::{ApiError, NodeSummary, Ping, PingBody, TaskResource};
use crate::process::platform::ProcessId;
use crate::process::runner::{RunError, SpawnHook};
use crate::progress::Progress;
use crate::version::Version;

use super::super::executor::World;
use super::super::seams::{Cluster, Database, Installers};

/// An operation of the fake that a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `Installers::ensure` (staging an installer).
    Stage,
    MasterKey,
    License,
    /// Setting maintenance mode on (`true`) or off.
    Maintenance(bool),
    /// Setting a node's drain flag on (`true`) or off.
    Drain(bool),
    DeleteWatchdog,
    CreateWatchdog,
    Stop,
    Start,
    Backup,
    Verify,
    Install,
    Uninstall,
    UpgradeDatabase,
    Restore,
    /// A snapshot made (`Database::hold`).
    Hold,
    /// A held snapshot dropped.
    Release,
    /// A node's `/api` Version (any fault: it gives no answer).
    ServedVersion,
    /// `Octopus.Server.exe version` on a node (counted only: a command on the outage's
    /// critical path).
    InstalledVersion,
}

/// What a fault does to the operation it hits. Only `FailAlways` strikes more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    FailOnce,
    FailAlways,
    /// The command hung and was killed at its timeout, having done nothing.
    Hang,
    /// The command did its work, but hung and was killed before it returned.
    HangAfterDoing,
    /// octoup dies (the engine's future panics) before the operation takes effect (before
    /// its command is spawned).
    CrashBefore,
    /// octoup dies once the command was spawned (its pid told), before it took effect; the
    /// command goes on as the process the fake reports ([`Fake::child_process`]) does.
    CrashLaunched,
    /// octoup dies right after the operation took effect.
    CrashAfter,
    /// The database upgrade takes an hour (of tokio's clock, paused in tests), then works.
    Slow,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    pub name: String,
    pub url: String,
    pub primary: bool,
    /// `None` after an uninstall.
    pub installed: Option<Version>,
    /// The binary version the running service serves; `None` when stopped.
    pub serving: Option<Version>,
    pub drained: bool,
    pub watchdog: Option<WatchdogInfo>,
}

impl NodeState {
    pub fn id(&self) -> String {
        node_id(&self.name)
    }
}

pub fn node_id(name: &str) -> String {
    format!("OctopusServerNodes-{name}")
}

#[derive(Debug, Clone, PartialEq)]
pub struct BackupFile {
    pub path: PathBuf,
    /// The schema it holds.
    pub schema: Version,
    pub verified: bool,
}

/// The whole installation.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub nodes: Vec<NodeState>,
    pub schema: Version,
    pub maintenance: bool,
    pub backups: Vec<BackupFile>,
    pub master_key_read: bool,
    /// (task id, node name) of the tasks executing.
    pub tasks: Vec<(String, String)>,
}

impl Model {
    pub fn node(&self, name: &str) -> &NodeState {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no fake node {name}"))
    }

    pub fn node_mut(&mut self, name: &str) -> &mut NodeState {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no fake node {name}"))
    }

    fn any_serving(&self) -> Option<&NodeState> {
        self.nodes.iter().find(|n| n.serving.is_some())
    }
}

/// One thing that happened to the installation.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The state the run found (the history's first event).
    Began(Model),
    Fault {
        op: Op,
        node: Option<String>,
        fault: Fault,
    },
    MaintenanceSet(bool),
    DrainSet {
        node: String,
        on: bool,
    },
    WatchdogDeleted {
        node: String,
    },
    WatchdogCreated {
        node: String,
    },
    MasterKeyRead {
        node: String,
    },
    ServiceStopped {
        node: String,
    },
    ServiceStarted {
        node: String,
        binary: Version,
        schema: Version,
    },
    Installed {
        node: String,
        from: Option<Version>,
        to: Version,
    },
    Uninstalled {
        node: String,
        version: Version,
    },
    BackupMade {
        path: PathBuf,
        schema: Version,
    },
    BackupVerified {
        path: PathBuf,
    },
    SchemaUpgradeStarted {
        node: String,
        from: Version,
        to: Version,
    },
    /// `ok: false`: the upgrade failed and Octopus rolled it back (the schema is unchanged).
    SchemaUpgradeFinished {
        node: String,
        schema: Version,
        ok: bool,
    },
    Restored {
        path: PathBuf,
        schema: Version,
    },
    /// A held snapshot was dropped.
    Released {
        path: PathBuf,
    },
    TaskCancelled {
        id: String,
    },
    /// An unsafe attempt the fake (like the real server) refused.
    Refused {
        op: Op,
        node: String,
        why: String,
    },
}

struct Rule {
    op: Op,
    node: Option<String>,
    fault: Fault,
}

struct Inner {
    model: Model,
    history: Vec<Event>,
    rules: Vec<Rule>,
    /// Calls of the operations that change something, faults included.
    calls: Vec<(Op, Option<String>)>,
    /// The process a watched command is told to run as (see [`Fake::child_process`]).
    child: ProcessId,
}

impl Inner {
    fn event(&mut self, e: Event) {
        self.history.push(e);
    }

    /// The fault that strikes this call, if any (recorded in the history).
    fn strike(&mut self, op: Op, node: Option<&str>) -> Option<Fault> {
        self.calls.push((op, node.map(str::to_string)));
        let pos = self
            .rules
            .iter()
            .position(|r| r.op == op && (r.node.is_none() || r.node.as_deref() == node))?;
        let fault = self.rules[pos].fault;
        if fault != Fault::FailAlways {
            self.rules.remove(pos);
        }
        self.event(Event::Fault {
            op,
            node: node.map(str::to_string),
            fault,
        });
        Some(fault)
    }
}

/// How an injected fault shows: a failure or a timeout.
#[derive(Debug, Clone, Copy)]
enum Hit {
    Fail,
    Timeout,
}

fn timeout(label: String, program: &str) -> RunError {
    RunError::Timeout {
        label,
        program: program.into(),
        timeout: Duration::from_secs(1),
        setting: "[timeouts] command",
    }
}

const CRASH: &str = "simulated crash: ";

/// Whether a panic's payload is an injected crash (see [`crash`]).
pub fn is_crash(payload: &(dyn std::any::Any + Send)) -> bool {
    payload
        .downcast_ref::<String>()
        .is_some_and(|s| s.starts_with(CRASH))
}

/// octoup dies here: the engine's future unwinds (without the panic hook, so no message
/// or backtrace is printed for a crash that was asked for).
fn crash(op: Op, node: Option<&str>) -> ! {
    std::panic::resume_unwind(Box::new(format!(
        "{CRASH}octoup died in {op:?} on {node:?}"
    )))
}

/// The fake installation. Cheap to clone: every clone is the same world.
#[derive(Clone)]
pub struct Fake {
    inner: Arc<Mutex<Inner>>,
    dir: PathBuf,
}

impl Fake {
    /// The command's spawn as `hook` sees it: never when octoup dies first; octoup dies
    /// right after it on [`Fault::CrashLaunched`].
    fn spawn(&self, op: Op, node: Option<&str>, fault: Option<Fault>, hook: Option<&SpawnHook>) {
        if fault == Some(Fault::CrashBefore) {
            crash(op, node);
        }
        if let Some(hook) = hook {
            hook.launching();
            let child = self.lock().child;
            hook.spawned(child);
        }
        if fault == Some(Fault::CrashLaunched) {
            crash(op, node);
        }
    }

    /// Nodes `names` (the first is the primary), all serving `from` on a `from` schema.
    pub fn new(dir: &Path, names: &[&str], from: &Version) -> Fake {
        let nodes = names
            .iter()
            .enumerate()
            .map(|(i, name)| NodeState {
                name: name.to_string(),
                url: format!("http://{}.fake", name.to_ascii_lowercase()),
                primary: i == 0,
                installed: Some(from.clone()),
                serving: Some(from.clone()),
                drained: false,
                watchdog: None,
            })
            .collect();
        let model = Model {
            nodes,
            schema: from.clone(),
            maintenance: false,
            backups: Vec::new(),
            master_key_read: false,
            tasks: Vec::new(),
        };
        Fake {
            inner: Arc::new(Mutex::new(Inner {
                model,
                history: Vec::new(),
                rules: Vec::new(),
                calls: Vec::new(),
                // pid 0 is never a child: by default every command has ended.
                child: ProcessId {
                    pid: 0,
                    os_start: None,
                },
            })),
            dir: dir.to_path_buf(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("fake lock")
    }

    /// Changes the installation without a trace (set-up before the run).
    pub fn setup(&self, f: impl FnOnce(&mut Model)) {
        f(&mut self.lock().model);
    }

    /// Starts the history at the state as it is now.
    pub fn begin(&self) {
        let mut inner = self.lock();
        let began = Event::Began(inner.model.clone());
        inner.history = vec![began];
    }

    /// The operator installs `version` on a stopped node by hand (it is in the history).
    pub fn install_by_hand(&self, node: &str, version: &Version) {
        let mut inner = self.lock();
        let n = inner.model.node_mut(node);
        assert!(n.serving.is_none(), "{node} runs");
        let from = n.installed.replace(version.clone());
        inner.event(Event::Installed {
            node: node.into(),
            from,
            to: version.clone(),
        });
    }

    pub fn fault(&self, op: Op, node: Option<&str>, fault: Fault) {
        self.lock().rules.push(Rule {
            op,
            node: node.map(str::to_string),
            fault,
        });
    }

    /// The process each watched command reports as its child from now on (a live one
    /// stands for a command still running after octoup died).
    pub fn child_process(&self, process: ProcessId) {
        self.lock().child = process;
    }

    pub fn clear_faults(&self) {
        self.lock().rules.clear();
    }

    pub fn model(&self) -> Model {
        self.lock().model.clone()
    }

    pub fn history(&self) -> Vec<Event> {
        self.lock().history.clone()
    }

    /// How often `op` was called on `node` (faulted calls included).
    pub fn calls(&self, op: Op, node: Option<&str>) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|(o, n)| *o == op && n.as_deref() == node)
            .count()
    }

    /// The seams and node agents over this world, for the run's nodes.
    pub fn world(&self, nodes: &[RunNode]) -> World {
        World {
            cluster: Arc::new(self.clone()),
            database: Arc::new(self.clone()),
            installers: Arc::new(self.clone()),
            nodes: nodes
                .iter()
                .map(|n| {
                    let agent: Arc<dyn NodeAgent> = Arc::new(FakeNode {
                        fake: self.clone(),
                        name: n.name.clone(),
                        url: n.url.clone(),
                    });
                    (n.clone(), agent)
                })
                .collect(),
        }
    }

    /// Runs an operation that changes something: the fault first (a failure, a timeout
    /// or a crash before it), then `effect` under the lock, then what a fault does after.
    fn act<T, E>(
        &self,
        op: Op,
        node: Option<&str>,
        error: impl Fn(Hit) -> E,
        effect: impl FnOnce(&mut Inner) -> Result<T, E>,
    ) -> Result<T, E> {
        self.act_watched(op, node, None, error, effect)
    }

    /// [`Self::act`] for a command whose spawn `hook` is told of (after a crash before it,
    /// before anything else).
    fn act_watched<T, E>(
        &self,
        op: Op,
        node: Option<&str>,
        hook: Option<&SpawnHook>,
        error: impl Fn(Hit) -> E,
        effect: impl FnOnce(&mut Inner) -> Result<T, E>,
    ) -> Result<T, E> {
        let fault = self.lock().strike(op, node);
        self.spawn(op, node, fault, hook);
        match fault {
            Some(Fault::FailOnce | Fault::FailAlways) => return Err(error(Hit::Fail)),
            Some(Fault::Hang) => return Err(error(Hit::Timeout)),
            _ => {}
        }
        let result = effect(&mut self.lock());
        match fault {
            Some(Fault::CrashAfter) => crash(op, node),
            Some(Fault::HangAfterDoing) => result.and(Err(error(Hit::Timeout))),
            _ => result,
        }
    }

    fn api_error(&self, hit: Hit) -> ApiError {
        let url = "http://cluster.fake".to_string();
        match hit {
            Hit::Fail => ApiError::Status {
                url,
                status: 500,
                message: "injected failure".into(),
            },
            Hit::Timeout => ApiError::Unreachable {
                url,
                reason: "operation timed out".into(),
            },
        }
    }

    /// The cluster API answers through any node that serves.
    fn api_up(&self) -> Result<(), ApiError> {
        if self.lock().model.any_serving().is_some() {
            Ok(())
        } else {
            Err(ApiError::Unreachable {
                url: "http://cluster.fake".into(),
                reason: "connection refused (no node runs)".into(),
            })
        }
    }

    fn sql_error(what: &str, hit: Hit, tail: &str) -> DatabaseError {
        match hit {
            Hit::Fail => DatabaseError::Sql {
                what: what.into(),
                code: "exit code 1".into(),
                tail: tail.into(),
            },
            Hit::Timeout => DatabaseError::Run(timeout(what.into(), "sqlcmd")),
        }
    }

    fn installer_path(&self, version: &Version) -> PathBuf {
        self.dir
            .join("installers")
            .join(format!("Octopus.{version}-x64.msi"))
    }
}

#[async_trait]
impl Cluster for Fake {
    async fn maintenance(&self) -> Result<bool, ApiError> {
        self.api_up()?;
        Ok(self.lock().model.maintenance)
    }

    async fn set_maintenance(&self, on: bool) -> Result<(), ApiError> {
        self.api_up()?;
        self.act(
            Op::Maintenance(on),
            None,
            |h| self.api_error(h),
            |i| {
                i.model.maintenance = on;
                i.event(Event::MaintenanceSet(on));
                Ok(())
            },
        )
    }

    async fn nodes_summary(&self) -> Result<Vec<NodeSummary>, ApiError> {
        self.api_up()?;
        let inner = self.lock();
        Ok(inner
            .model
            .nodes
            .iter()
            .map(|n| NodeSummary {
                id: n.id(),
                name: n.name.clone(),
                is_in_maintenance_mode: n.drained,
                is_offline: n.serving.is_none(),
                last_seen: None,
                running_task_count: inner.model.tasks.iter().filter(|t| t.1 == n.name).count()
                    as u32,
                max_concurrent_tasks: 5,
                version: n.serving.as_ref().map(ToString::to_string),
            })
            .collect())
    }

    async fn set_drain(&self, node_id: &str, on: bool) -> Result<(), ApiError> {
        self.api_up()?;
        let name = self
            .lock()
            .model
            .nodes
            .iter()
            .find(|n| n.id() == node_id)
            .map(|n| n.name.clone())
            .ok_or_else(|| ApiError::Status {
                url: "http://cluster.fake".into(),
                status: 404,
                message: format!("no node {node_id}"),
            })?;
        self.act(
            Op::Drain(on),
            Some(&name),
            |h| self.api_error(h),
            |i| {
                i.model.node_mut(&name).drained = on;
                i.event(Event::DrainSet {
                    node: name.clone(),
                    on,
                });
                Ok(())
            },
        )
    }

    async fn running_tasks(&self, node_id: &str) -> Result<Vec<TaskResource>, ApiError> {
        self.api_up()?;
        Ok(self
            .lock()
            .model
            .tasks
            .iter()
            .filter(|(_, node)| node_id == self::node_id(node))
            .map(|(id, _)| TaskResource {
                id: id.clone(),
                name: "Deploy".into(),
                description: format!("Deploy (fake task {id})"),
                state: "Executing".into(),
                server_node: Some(node_id.to_string()),
                ..Default::default()
            })
            .collect())
    }

    async fn cancel_task(&self, task_id: &str) -> Result<(), ApiError> {
        self.api_up()?;
        let mut inner = self.lock();
        inner.model.tasks.retain(|(id, _)| id != task_id);
        inner.event(Event::TaskCancelled { id: task_id.into() });
        Ok(())
    }

    async fn license_text(&self) -> Result<String, ApiError> {
        self.api_up()?;
        self.act(
            Op::License,
            None,
            |h| self.api_error(h),
            |_| Ok("<License>fake</License>".into()),
        )
    }
}

/// The file a disk backup point names (the fake's points name one).
fn point_path(point: &RollbackPoint) -> PathBuf {
    match point {
        RollbackPoint::Backup { files, .. } => PathBuf::from(&files[0]),
        RollbackPoint::Snapshot { name } | RollbackPoint::Copy { name } => PathBuf::from(name),
        other => PathBuf::from(other.describe()),
    }
}

#[async_trait]
impl Database for Fake {
    async fn backup(
        &self,
        from: &Version,
        stamp: &str,
        _percent: Option<Percent>,
    ) -> Result<RollbackPoint, DatabaseError> {
        let dir = self.dir.join("sql");
        let path = dir.join(format!("OctopusDeploy-{from}-{stamp}.bak"));
        self.act(
            Op::Backup,
            None,
            |h| Self::sql_error("database backup", h, "injected failure"),
            |i| {
                let schema = i.model.schema.clone();
                std::fs::create_dir_all(&dir)
                    .and_then(|()| std::fs::write(&path, schema.to_string()))
                    .map_err(|e| Self::sql_error("database backup", Hit::Fail, &e.to_string()))?;
                i.model.backups.push(BackupFile {
                    path: path.clone(),
                    schema: schema.clone(),
                    verified: false,
                });
                i.event(Event::BackupMade {
                    path: path.clone(),
                    schema,
                });
                Ok(RollbackPoint::Backup {
                    media: Media::Disk,
                    files: vec![path.to_string_lossy().into_owned()],
                    bytes: None,
                    seconds: None,
                })
            },
        )
    }

    async fn verify(&self, point: &RollbackPoint) -> Result<String, DatabaseError> {
        let file = point_path(point);
        self.act(
            Op::Verify,
            None,
            |h| Self::sql_error("RESTORE VERIFYONLY", h, "injected failure"),
            |i| {
                let known = i.model.backups.iter_mut().find(|b| b.path == file);
                match known {
                    Some(b) if file.exists() => {
                        b.verified = true;
                        i.event(Event::BackupVerified { path: file.clone() });
                        Ok(format!("verified {}", file.display()))
                    }
                    _ => Err(Self::sql_error(
                        "RESTORE VERIFYONLY",
                        Hit::Fail,
                        &format!("Cannot open backup device '{}'", file.display()),
                    )),
                }
            },
        )
    }

    /// A snapshot: the schema as it is, kept in the model like a verified backup (it cannot
    /// be read back otherwise).
    async fn hold(
        &self,
        stamp: &str,
        _percent: Option<Percent>,
    ) -> Result<RollbackPoint, DatabaseError> {
        let name = format!("OctopusDeploy_octoup_{stamp}");
        self.act(
            Op::Hold,
            None,
            |h| Self::sql_error("database snapshot", h, "injected failure"),
            |i| {
                if i.model.backups.iter().any(|b| b.path == Path::new(&name)) {
                    return Err(Self::sql_error(
                        "database snapshot",
                        Hit::Fail,
                        "Msg 1801: Database already exists.",
                    ));
                }
                let schema = i.model.schema.clone();
                i.model.backups.push(BackupFile {
                    path: PathBuf::from(&name),
                    schema: schema.clone(),
                    verified: true,
                });
                i.event(Event::BackupMade {
                    path: PathBuf::from(&name),
                    schema,
                });
                i.event(Event::BackupVerified {
                    path: PathBuf::from(&name),
                });
                Ok(RollbackPoint::Snapshot { name: name.clone() })
            },
        )
    }

    async fn restore(&self, point: &RollbackPoint, _stamp: &str) -> Result<String, DatabaseError> {
        let file = point_path(point);
        self.act(
            Op::Restore,
            None,
            |h| Self::sql_error("database restore", h, "injected failure"),
            |i| {
                if let Some(n) = i.model.any_serving().map(|n| n.name.clone()) {
                    i.event(Event::Refused {
                        op: Op::Restore,
                        node: n,
                        why: "the database is in use".into(),
                    });
                    return Err(Self::sql_error(
                        "database restore",
                        Hit::Fail,
                        "Msg 3101: Exclusive access could not be obtained because the database is in use.",
                    ));
                }
                let Some(b) = i.model.backups.iter().find(|b| b.path == file).cloned() else {
                    return Err(Self::sql_error(
                        "database restore",
                        Hit::Fail,
                        "Cannot open backup device",
                    ));
                };
                i.model.schema = b.schema.clone();
                i.event(Event::Restored {
                    path: b.path.clone(),
                    schema: b.schema,
                });
                Ok(format!("restored {}", b.path.display()))
            },
        )
    }

    async fn release(&self, point: &RollbackPoint) -> Result<String, DatabaseError> {
        let file = point_path(point);
        self.act(
            Op::Release,
            None,
            |h| Self::sql_error("DROP DATABASE", h, "injected failure"),
            |i| {
                i.model.backups.retain(|b| b.path != file);
                i.event(Event::Released { path: file.clone() });
                Ok(format!("dropped {}", file.display()))
            },
        )
    }
}

#[async_trait]
impl Installers for Fake {
    async fn ensure(
        &self,
        version: &Version,
        role: Role,
        _progress: &dyn Progress,
    ) -> Result<StagedInstaller, InstallerError> {
        let path = self.installer_path(version);
        let store = |e: std::io::Error| InstallerError::Store {
            version: version.to_string(),
            path: path.clone(),
            source: e,
        };
        self.act(
            Op::Stage,
            None,
            |_| InstallerError::Busy {
                version: format!("{version} ({role:?})"),
                lock: self.dir.join("installers.lock"),
            },
            |_| {
                std::fs::create_dir_all(self.dir.join("installers")).map_err(store)?;
                std::fs::write(&path, version.to_string()).map_err(store)?;
                Ok(StagedInstaller {
                    version: version.to_string(),
                    path: path.clone(),
                    sha256: "0".repeat(64),
                    size: version.to_string().len() as u64,
                    verified_by: Vec::new(),
                    cached: true,
                })
            },
        )
    }
}

/// One node's agent over the shared world.
pub struct FakeNode {
    fake: Fake,
    name: String,
    url: String,
}

impl FakeNode {
    fn error(&self, command: &str, hit: Hit) -> NodeError {
        match hit {
            Hit::Fail => NodeError::Command {
                node: self.name.clone(),
                command: format!("Octopus.Server.exe {command}"),
                code: "exit code 1".into(),
                tail: "injected failure".into(),
            },
            Hit::Timeout => NodeError::Run(timeout(
                format!("{command} {}", self.name),
                "Octopus.Server.exe",
            )),
        }
    }

    fn refuse(&self, inner: &mut Inner, op: Op, command: &str, why: String) -> NodeError {
        inner.event(Event::Refused {
            op,
            node: self.name.clone(),
            why: why.clone(),
        });
        NodeError::Command {
            node: self.name.clone(),
            command: format!("Octopus.Server.exe {command}"),
            code: "exit code 1".into(),
            tail: why,
        }
    }

    fn state(&self) -> NodeState {
        self.fake.lock().model.node(&self.name).clone()
    }

    fn log(&self, what: &str) -> PathBuf {
        self.fake
            .dir
            .join("logs")
            .join(format!("{what}-{}.log", self.name))
    }

    /// msiexec on the node's package: refused while the service runs (its files are in
    /// use); `change` alters what is installed.
    fn msi(
        &self,
        op: Op,
        command: &str,
        log: &Path,
        change: impl FnOnce(&mut Inner, &NodeState) -> Result<(), NodeError>,
    ) -> Result<InstallOutcome, NodeError> {
        self.act(op, command, |i| {
            let n = i.model.node(&self.name).clone();
            if n.serving.is_some() {
                let why = "the service is running: its files are in use".to_string();
                return Err(self.refuse(i, op, command, why));
            }
            change(i, &n)?;
            Ok(InstallOutcome {
                exit_code: 0,
                reboot_required: false,
                attempts: 1,
                log: log.to_path_buf(),
            })
        })
    }

    /// msiexec 1619: the package cannot be opened.
    fn no_package(&self, installer: &Path, log: &Path, e: std::io::Error) -> NodeError {
        NodeError::Install {
            node: self.name.clone(),
            code: "exit code 1619".into(),
            log: log.to_path_buf(),
            tail: format!("cannot open {}: {e}", installer.display()),
        }
    }

    fn act<T>(
        &self,
        op: Op,
        command: &str,
        effect: impl FnOnce(&mut Inner) -> Result<T, NodeError>,
    ) -> Result<T, NodeError> {
        self.act_watched(op, command, None, effect)
    }

    fn act_watched<T>(
        &self,
        op: Op,
        command: &str,
        hook: Option<&SpawnHook>,
        effect: impl FnOnce(&mut Inner) -> Result<T, NodeError>,
    ) -> Result<T, NodeError> {
        self.fake.act_watched(
            op,
            Some(&self.name),
            hook,
            |h| self.error(command, h),
            effect,
        )
    }
}

impl FakeNode {
    fn delete_watchdog_with(&self, hook: Option<&SpawnHook>) -> Result<(), NodeError> {
        self.act_watched(Op::DeleteWatchdog, "watchdog --delete", hook, |i| {
            i.model.node_mut(&self.name).watchdog = None;
            i.event(Event::WatchdogDeleted {
                node: self.name.clone(),
            });
            Ok(())
        })
    }

    fn create_watchdog_with(
        &self,
        watchdog: &WatchdogInfo,
        hook: Option<&SpawnHook>,
    ) -> Result<(), NodeError> {
        self.act_watched(Op::CreateWatchdog, "watchdog --create", hook, |i| {
            i.model.node_mut(&self.name).watchdog = Some(watchdog.clone());
            i.event(Event::WatchdogCreated {
                node: self.name.clone(),
            });
            Ok(())
        })
    }

    fn stop_with(&self, hook: Option<&SpawnHook>) -> Result<(), NodeError> {
        self.act_watched(Op::Stop, "service --stop", hook, |i| {
            let n = i.model.node_mut(&self.name);
            if n.serving.take().is_some() {
                i.event(Event::ServiceStopped {
                    node: self.name.clone(),
                });
            }
            Ok(())
        })
    }

    fn start_with(&self, expected: &str, hook: Option<&SpawnHook>) -> Result<(), NodeError> {
        self.act_watched(Op::Start, "service --start", hook, |i| {
            let schema = i.model.schema.clone();
            let n = i.model.node(&self.name).clone();
            let binary = match (&n.serving, &n.installed) {
                (Some(serving), _) => serving.clone(),
                (None, None) => {
                    return Err(self.refuse(i, Op::Start, "service --start", "no Octopus Server is installed".into()));
                }
                (None, Some(installed)) if *installed != schema => {
                    let why = format!(
                        "the database schema is {schema} but this installation is {installed}: the service refuses to start"
                    );
                    return Err(self.refuse(i, Op::Start, "service --start", why));
                }
                (None, Some(installed)) => {
                    i.model.node_mut(&self.name).serving = Some(installed.clone());
                    i.event(Event::ServiceStarted {
                        node: self.name.clone(),
                        binary: installed.clone(),
                        schema,
                    });
                    installed.clone()
                }
            };
            if binary.to_string() != expected {
                return Err(NodeError::NotUp {
                    node: self.name.clone(),
                    url: self.url.clone(),
                    expected: expected.into(),
                    waited: "0s".into(),
                    last: format!("serving {binary}"),
                });
            }
            Ok(())
        })
    }
}

#[async_trait]
impl NodeAgent for FakeNode {
    fn name(&self) -> &str {
        &self.name
    }

    fn url(&self) -> &str {
        &self.url
    }

    async fn ping(&self) -> Ping {
        let n = self.state();
        let Some(serving) = &n.serving else {
            return Ping::Down("connection refused".into());
        };
        let body = PingBody {
            id: n.id(),
            name: n.name.clone(),
            is_in_maintenance_mode: n.drained,
            version: Some(serving.to_string()),
        };
        if n.drained {
            Ping::Draining(body)
        } else {
            Ping::Serving(body)
        }
    }

    async fn served_version(&self) -> Option<String> {
        let fault = self.fake.lock().strike(Op::ServedVersion, Some(&self.name));
        match fault {
            Some(Fault::CrashBefore | Fault::CrashAfter) => {
                crash(Op::ServedVersion, Some(&self.name))
            }
            Some(_) => None,
            None => self.state().serving.map(|v| v.to_string()),
        }
    }

    async fn installed_version(&self) -> Result<Version, NodeError> {
        self.fake
            .lock()
            .calls
            .push((Op::InstalledVersion, Some(self.name.clone())));
        self.state().installed.ok_or_else(|| NodeError::Output {
            node: self.name.clone(),
            command: "Octopus.Server.exe version".into(),
            detail: "no Octopus Server is installed".into(),
        })
    }

    async fn watchdog(&self) -> Result<WatchdogInfo, NodeError> {
        Ok(self.state().watchdog.unwrap_or_default())
    }

    async fn delete_watchdog(&self) -> Result<(), NodeError> {
        self.delete_watchdog_with(None)
    }

    async fn create_watchdog(&self, watchdog: &WatchdogInfo) -> Result<(), NodeError> {
        self.create_watchdog_with(watchdog, None)
    }

    async fn master_key(&self) -> Result<Secret, NodeError> {
        self.act(Op::MasterKey, "show-master-key", |i| {
            i.model.master_key_read = true;
            i.event(Event::MasterKeyRead {
                node: self.name.clone(),
            });
            Ok(Secret::new("fake-master-key-0123456789"))
        })
    }

    async fn stop(&self) -> Result<(), NodeError> {
        self.stop_with(None)
    }

    async fn start(&self, expected: &str) -> Result<(), NodeError> {
        self.start_with(expected, None)
    }

    async fn watched(&self, command: NodeCommand<'_>, hook: SpawnHook) -> Result<(), NodeError> {
        let hook = Some(&hook);
        match command {
            NodeCommand::Stop => self.stop_with(hook),
            NodeCommand::Start { expected } => self.start_with(expected, hook),
            NodeCommand::DeleteWatchdog => self.delete_watchdog_with(hook),
            NodeCommand::CreateWatchdog(w) => self.create_watchdog_with(w, hook),
            NodeCommand::UpgradeDatabase => self.database_upgrade_with(hook).await,
        }
    }

    async fn install(&self, installer: &Path, version: &str) -> Result<InstallOutcome, NodeError> {
        let log = self.log(&format!("install-{version}"));
        self.msi(Op::Install, "msiexec /i", &log, |i, n| {
            let contents = std::fs::read_to_string(installer)
                .map_err(|e| self.no_package(installer, &log, e))?;
            let to: Version = contents
                .trim()
                .parse()
                .expect("a fake installer holds its version");
            i.model.node_mut(&self.name).installed = Some(to.clone());
            i.event(Event::Installed {
                node: self.name.clone(),
                from: n.installed.clone(),
                to,
            });
            Ok(())
        })
    }

    async fn uninstall(
        &self,
        installer: &Path,
        version: &str,
    ) -> Result<InstallOutcome, NodeError> {
        let log = self.log(&format!("uninstall-{version}"));
        self.msi(Op::Uninstall, "msiexec /x", &log, |i, n| {
            std::fs::metadata(installer).map_err(|e| self.no_package(installer, &log, e))?;
            if let Some(version) = n.installed.clone() {
                i.model.node_mut(&self.name).installed = None;
                i.event(Event::Uninstalled {
                    node: self.name.clone(),
                    version,
                });
            }
            Ok(())
        })
    }

    async fn database_upgrade(&self) -> Result<(), NodeError> {
        self.database_upgrade_with(None).await
    }

    async fn database_upgrade_pending(&self) -> Result<Option<bool>, NodeError> {
        let schema = self.fake.lock().model.schema.clone();
        Ok(Some(self.installed_version().await? != schema))
    }

    async fn drain_cli(&self, on: bool) -> Result<(), NodeError> {
        self.act(Op::Drain(on), "node --drain", |i| {
            i.model.node_mut(&self.name).drained = on;
            i.event(Event::DrainSet {
                node: self.name.clone(),
                on,
            });
            Ok(())
        })
    }
}

impl FakeNode {
    async fn database_upgrade_with(&self, hook: Option<&SpawnHook>) -> Result<(), NodeError> {
        let fault = self
            .fake
            .lock()
            .strike(Op::UpgradeDatabase, Some(&self.name));
        self.fake
            .spawn(Op::UpgradeDatabase, Some(&self.name), fault, hook);
        if fault == Some(Fault::Hang) {
            return Err(self.error("database --upgrade", Hit::Timeout));
        }
        if fault == Some(Fault::Slow) {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        {
            let mut i = self.fake.lock();
            if let Some(running) = i.model.any_serving().map(|n| n.name.clone()) {
                let why = format!("node {running} is still running");
                i.event(Event::Refused {
                    op: Op::UpgradeDatabase,
                    node: self.name.clone(),
                    why: why.clone(),
                });
                return Err(NodeError::NodesStillRunning {
                    node: self.name.clone(),
                    tail: why,
                });
            }
            let from = i.model.schema.clone();
            let to =
                i.model
                    .node(&self.name)
                    .installed
                    .clone()
                    .ok_or_else(|| NodeError::Output {
                        node: self.name.clone(),
                        command: "database --upgrade".into(),
                        detail: "no Octopus Server is installed".into(),
                    })?;
            i.event(Event::SchemaUpgradeStarted {
                node: self.name.clone(),
                from: from.clone(),
                to: to.clone(),
            });
            let ok = !matches!(fault, Some(Fault::FailOnce | Fault::FailAlways));
            if ok {
                i.model.schema = to;
            }
            let schema = i.model.schema.clone();
            i.event(Event::SchemaUpgradeFinished {
                node: self.name.clone(),
                schema,
                ok,
            });
        }
        match fault {
            Some(Fault::CrashAfter) => crash(Op::UpgradeDatabase, Some(&self.name)),
            Some(Fault::FailOnce | Fault::FailAlways) => Err(NodeError::Command {
                node: self.name.clone(),
                command: "Octopus.Server.exe database --upgrade".into(),
                code: "exit code 1".into(),
                tail: "Upgrade script failed (injected). The entire upgrade has been rolled back to its last known good state.".into(),
            }),
            Some(Fault::HangAfterDoing) => Err(self.error("database --upgrade", Hit::Timeout)),
            _ => Ok(()),
        }
    }
}
