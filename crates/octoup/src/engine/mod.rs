//! The orchestrator: the upgrade procedure for N nodes (one node is a cluster of one),
//! journaled step by step so a failure undoes or pauses cleanly and a crash resumes.
//!
//! Order (design, "HA"): preflight → stage installers → back up master key and license →
//! [outage] maintenance on → drain every node and wait for its tasks → delete watchdogs →
//! stop every node → database backup + verify, overlapping the installs on every node →
//! the one `database --upgrade`, on the primary → start every node → verify → recreate
//! watchdogs → undrain → maintenance restored.
//!
//! A failure before the database upgrade is undone (original binaries put back where they
//! changed, nodes started, watchdogs, drain and maintenance restored). A failure at or
//! after it stops in a safe state (`paused`) with the next step in the journal; a re-run
//! continues from there. Every step reads the real state before acting, so a step found
//! "running" after a crash is finished, not blindly repeated.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::backup::{self, Sql};
use crate::config::{Config, ConfigError, EnvOverrides, NodeConfig};
use crate::engine::preflight::{Connection, Facts, PreflightError, preflight};
use crate::engine::report::{NodeReport, Outcome, Report};
use crate::installer::cache::{InstallerCache, InstallerSettings, Role};
use crate::journal::{
    Direction, FORMAT, Journal, JournalError, Run, RunNode, RunStatus, StateDir, Step, StepState,
    new_run_id, step_id,
};
use crate::nodes::{NodeAgent, NodeError, WatchdogInfo};
use crate::octopus::api::{OctopusApi, Ping, TaskResource};
use crate::process::clock::{Deadline, Poller, human_duration, now};
use crate::process::runner::RunLog;
use crate::progress::{NoProgress, Progress};
use crate::version::Version;
use plan::*;

pub mod plan;
pub mod preflight;
mod recovery;
pub mod report;
pub mod rollback;

/// How long `database --upgrade` is retried while the server still sees nodes running
/// (a stopped node counts as running until its heartbeat goes stale).
pub const NODES_RUNNING_GRACE: Duration = Duration::from_secs(600);

/// What the engine tells the person watching (the CLI draws it; JSON mode shows nothing).
pub trait Events: Send + Sync {
    fn step_started(&self, _step: &Step) {}
    fn step_finished(&self, _step: &Step) {}
    /// A line worth showing (a wait, a retry, a resume).
    fn note(&self, _text: &str) {}
    /// Byte progress of downloads.
    fn progress(&self) -> &dyn Progress {
        &NoProgress
    }
    /// Last word before anything changes: `false` stops the run (nothing was changed).
    fn confirm(&self, _summary: &str) -> bool {
        true
    }
}

/// Shows nothing.
pub struct Silent;
impl Events for Silent {}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot open the run log {path}: {source}. Check [state] dir")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "an unfinished run ({run}) is upgrading {from} → {target}; it cannot be retargeted to {asked}. Run `octoup upgrade` without --to (or with --to {target}) to finish it first; `octoup status` shows where it stands"
    )]
    Retarget {
        run: String,
        from: String,
        target: String,
        asked: String,
    },
    #[error(
        "the unfinished run {run} names node {node}, which is not in the config any more. Restore the config the run started with, then run `octoup upgrade` again"
    )]
    UnknownNode { run: String, node: String },
    #[error("{0}")]
    Preflight(#[from] PreflightError),
    #[error(
        "there is no unfinished run in {state} to resume; `octoup status` shows the last run, `octoup upgrade` starts a new one"
    )]
    NothingToResume { state: PathBuf },
}

/// What `octoup upgrade` was asked.
#[derive(Debug, Clone, Default)]
pub struct UpgradeOptions {
    /// Install this version instead of the policy's choice.
    pub to: Option<String>,
    /// Only continue an unfinished run; never start a new one (`octoup resume`).
    pub resume_only: bool,
    /// Roll the unfinished run back instead of continuing it (`octoup rollback`).
    pub rollback: bool,
}

/// `octoup upgrade`: resumes the unfinished run if there is one, else preflights and runs.
pub async fn upgrade(
    config: Config,
    env: &EnvOverrides,
    options: UpgradeOptions,
    events: Arc<dyn Events>,
) -> Result<Report, EngineError> {
    let state = StateDir::new(&config.state.dir);
    let _lock = state.lock()?;
    if let Some(journal) = state.unfinished()? {
        return resume(config, env, journal, options, events).await;
    }
    if options.rollback {
        return Ok(rollback::no_unfinished_run(state.last()?));
    }
    if options.resume_only {
        return Err(EngineError::NothingToResume {
            state: config.state.dir.clone(),
        });
    }
    let run_id = new_run_id();
    let log = open_log(&state.log_path(&run_id))?;
    let digest = config_digest(&config);
    let conn = Connection::new(config, env, log.clone())?;
    events.note("preflight: checking the server, the nodes, the target and the license");
    let facts = match preflight(&conn, options.to.as_deref()).await {
        Ok(f) => f,
        Err(PreflightError::Config(e)) => return Err(e.into()),
        Err(e) => {
            log.note(&format!("refused: {e}"));
            let mut report = Report::without_run(Outcome::Refused, "", "");
            report.error = Some(e.to_string());
            report.next_step = Some("Fix the cause above; nothing was changed.".into());
            report.log = Some(log.path().to_path_buf());
            return Ok(report);
        }
    };
    let target = facts.target.clone();
    let to = target
        .as_ref()
        .and_then(|t| t.target.clone())
        .unwrap_or_default();
    if !facts.blockers.is_empty() {
        log.note(&format!("refused: {}", facts.blockers.join("; ")));
        let mut report = Report::without_run(Outcome::Refused, &facts.version, &to);
        report.error = Some(facts.blockers.join("\n"));
        report.warnings = facts.warnings.clone();
        report.next_step =
            Some("Fix the blockers above (nothing was changed), then run `octoup upgrade` again. `octoup plan` shows everything the preflight found.".into());
        report.log = Some(log.path().to_path_buf());
        return Ok(report);
    }
    let Some(choice) = target.clone().filter(|t| t.target.is_some()) else {
        let mut report = Report::without_run(Outcome::UpToDate, &facts.version, &facts.version);
        report.warnings = facts.warnings.clone();
        if let Some(t) = &target
            && !t.up_to_date
        {
            report.warnings.push(t.why.clone());
        }
        report.nodes = facts
            .nodes
            .iter()
            .map(|n| NodeReport {
                name: n.name.clone(),
                version: n.api_version.clone().unwrap_or_default(),
                serving: true,
            })
            .collect();
        return Ok(report);
    };
    let to = choice.target.clone().unwrap_or_default();
    let summary = format!(
        "octoup will upgrade Octopus {} → {to} on {}. Octopus is unavailable from the first service stop until every node serves {to}; `octoup plan` shows the steps and estimates.",
        facts.version,
        facts
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );
    if !events.confirm(&summary) {
        let mut report = Report::without_run(Outcome::Refused, &facts.version, &to);
        report.error = Some("not confirmed: nothing was changed".into());
        return Ok(report);
    }
    let journal = create_run(
        &state,
        &run_id,
        &digest,
        &facts,
        &choice,
        &conn.config,
        &log,
    )?;
    let engine = Engine::new(conn, state, journal, &facts, events)?;
    for w in &facts.warnings {
        engine.events.note(&format!("warning: {w}"));
    }
    Ok(engine.run_forward().await)
}

fn open_log(path: &std::path::Path) -> Result<Arc<RunLog>, EngineError> {
    RunLog::open(path)
        .map(Arc::new)
        .map_err(|source| EngineError::Log {
            path: path.to_path_buf(),
            source,
        })
}

/// A short digest of the config, to notice a config changed between a run and its resume.
pub fn config_digest(config: &Config) -> String {
    use sha2::{Digest, Sha256};
    let text = toml::to_string(config).unwrap_or_default();
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

fn create_run(
    state: &StateDir,
    run_id: &str,
    digest: &str,
    facts: &Facts,
    target: &crate::engine::preflight::TargetChoice,
    config: &Config,
    log: &RunLog,
) -> Result<Journal, EngineError> {
    let names: Vec<String> = facts.nodes.iter().map(|n| n.name.clone()).collect();
    let primary = facts
        .primary()
        .map(|n| n.name.clone())
        .unwrap_or_else(|| names[0].clone());
    let mut steps: Vec<Step> = plan::steps(&names, &primary, config.rollback.enabled)
        .into_iter()
        .map(|(name, node)| Step::new(name, node.as_deref()))
        .collect();
    if let Some(p) = steps.iter_mut().find(|s| s.name == PREFLIGHT) {
        p.state = StepState::Done;
        p.started = Some(now());
        p.finished = Some(now());
        p.outputs
            .insert("warnings".into(), json!(facts.warnings.clone()));
        p.outputs.insert("why".into(), json!(target.why.clone()));
    }
    // What each node looked like before: the undo and the final restore go back to it.
    for n in &facts.nodes {
        if let Some(s) = steps
            .iter_mut()
            .find(|s| s.id == step_id(DRAIN, Some(&n.name)))
        {
            s.outputs.insert("was_on".into(), json!(n.drained));
        }
        if let Some(s) = steps
            .iter_mut()
            .find(|s| s.id == step_id(DELETE_WATCHDOG, Some(&n.name)))
            && let Some(w) = &n.watchdog
        {
            s.outputs.insert("existed".into(), json!(w.enabled));
            s.outputs.insert(
                "watchdog".into(),
                serde_json::to_value(w).unwrap_or_default(),
            );
        }
    }
    if let Some(s) = steps.iter_mut().find(|s| s.name == MAINTENANCE_ON) {
        s.outputs.insert("was_on".into(), json!(facts.maintenance));
    }
    let run = Run {
        format: FORMAT,
        id: run_id.to_string(),
        created: now(),
        updated: now(),
        pid: std::process::id(),
        config_digest: digest.to_string(),
        from: facts.version.clone(),
        target: target.target.clone().unwrap_or_default(),
        path: target.path.clone(),
        nodes: facts
            .nodes
            .iter()
            .map(|n| RunNode {
                name: n.name.clone(),
                id: n.id.clone(),
                url: n.url.clone(),
                primary: n.name == primary,
            })
            .collect(),
        status: RunStatus::Running,
        direction: Direction::Forward,
        steps,
        outage_started: None,
        outage_ended: None,
        error: None,
        next_step: None,
        log: log.path().to_path_buf(),
    };
    log.note(&format!(
        "run {run_id}: {} → {} on {}",
        run.from,
        run.target,
        names.join(", ")
    ));
    Ok(state.create(run)?)
}

/// Resumes an unfinished run (after a crash, a pause or an interrupted undo).
async fn resume(
    config: Config,
    env: &EnvOverrides,
    journal: Journal,
    options: UpgradeOptions,
    events: Arc<dyn Events>,
) -> Result<Report, EngineError> {
    let run = journal.run.clone();
    if let Some(asked) = &options.to {
        let same = match (asked.parse::<Version>(), run.target.parse::<Version>()) {
            (Ok(a), Ok(b)) => a == b,
            _ => *asked == run.target,
        };
        if !same {
            return Err(EngineError::Retarget {
                run: run.id.clone(),
                from: run.from.clone(),
                target: run.target.clone(),
                asked: asked.clone(),
            });
        }
    }
    let state = StateDir::new(&config.state.dir);
    let log = open_log(&run.log)?;
    let digest = config_digest(&config);
    let conn = Connection::new(config, env, log.clone())?;
    let effective = conn.config.effective_nodes()?;
    let mut nodes = Vec::new();
    for rn in &run.nodes {
        let cfg = if conn.config.nodes.is_empty() {
            effective.first().cloned()
        } else {
            effective
                .iter()
                .find(|n| n.name.eq_ignore_ascii_case(&rn.name))
                .cloned()
        };
        let Some(cfg) = cfg else {
            return Err(EngineError::UnknownNode {
                run: run.id.clone(),
                node: rn.name.clone(),
            });
        };
        nodes.push((rn.clone(), cfg));
    }
    let mut engine = Engine::from_parts(conn, state, journal, nodes, events)?;
    if options.rollback {
        return Ok(engine.take_over_rollback().await);
    }
    let note = format!(
        "resuming run {} ({} → {}), which was {}{}",
        run.id,
        run.from,
        run.target,
        run.status.as_str(),
        if run.direction == Direction::Undo {
            " putting things back"
        } else {
            ""
        }
    );
    engine.log.note(&note);
    engine.events.note(&note);
    if digest != run.config_digest {
        let w = "the config changed since this run started; the run continues with its recorded target and nodes";
        engine.log.note(w);
        engine.events.note(&format!("warning: {w}"));
    }
    engine.resumed = true;
    engine
        .journal_update(|r| {
            r.pid = std::process::id();
            r.error = None;
            r.next_step = None;
            if r.status == RunStatus::Paused {
                r.status = if r.direction == Direction::Undo {
                    RunStatus::Undoing
                } else {
                    RunStatus::Running
                };
            }
        })
        .ok();
    Ok(match run.direction {
        Direction::Undo => engine.run_undo(None).await,
        Direction::Forward => engine.run_forward().await,
        Direction::Rollback => engine.run_rollback().await,
    })
}

/// A step that could not be done.
#[derive(Debug, Clone)]
struct Failure {
    step: String,
    message: String,
}

/// How a step ended well.
enum Done {
    Ok(String),
    Skipped(String),
}

struct EngineNode {
    info: RunNode,
    agent: Arc<dyn NodeAgent>,
}

impl EngineNode {
    fn api(&self) -> &OctopusApi {
        self.agent.api()
    }
}

struct Engine {
    conn: Connection,
    state: StateDir,
    journal: Mutex<Journal>,
    nodes: Vec<EngineNode>,
    events: Arc<dyn Events>,
    log: Arc<RunLog>,
    sql: Sql,
    cache: InstallerCache,
    stamp: String,
    resumed: bool,
    /// Per-node steps whose start and end are journaled once for all nodes (see `each`).
    batched: Mutex<std::collections::HashSet<String>>,
}

type StepResult = Result<Done, String>;

impl Engine {
    fn new(
        conn: Connection,
        state: StateDir,
        journal: Journal,
        facts: &Facts,
        events: Arc<dyn Events>,
    ) -> Result<Engine, EngineError> {
        // The run's nodes were made from the facts, in the same order.
        let nodes = journal
            .run
            .nodes
            .iter()
            .cloned()
            .zip(facts.nodes.iter().map(|f| f.config.clone()))
            .collect();
        Engine::from_parts(conn, state, journal, nodes, events)
    }

    fn from_parts(
        conn: Connection,
        state: StateDir,
        journal: Journal,
        nodes: Vec<(RunNode, NodeConfig)>,
        events: Arc<dyn Events>,
    ) -> Result<Engine, EngineError> {
        let mut engine_nodes = Vec::new();
        for (info, cfg) in nodes {
            let agent = conn.agent(&cfg, &info.name, &info.url)?;
            engine_nodes.push(EngineNode { info, agent });
        }
        let sql = Sql::from_config(&conn.config)?;
        let cache = InstallerCache::new(
            InstallerSettings::from_config(&conn.config),
            conn.http.clone(),
            conn.runner.clone(),
        );
        let log = conn.log.clone();
        Ok(Engine {
            conn,
            state,
            journal: Mutex::new(journal),
            nodes: engine_nodes,
            events,
            log,
            sql,
            cache,
            stamp: backup::stamp(),
            resumed: false,
            batched: Mutex::new(std::collections::HashSet::new()),
        })
    }

    fn config(&self) -> &Config {
        &self.conn.config
    }

    fn run(&self) -> Run {
        self.journal.lock().expect("journal lock").run.clone()
    }

    fn journal_update<R>(&self, f: impl FnOnce(&mut Run) -> R) -> Result<R, JournalError> {
        self.journal.lock().expect("journal lock").update(f)
    }

    fn set_status(&self, status: RunStatus) {
        if let Err(e) = self
            .journal
            .lock()
            .expect("journal lock")
            .set_status(status)
        {
            self.log.note(&format!("cannot write the journal: {e}"));
        }
    }

    fn step_state(&self, id: &str) -> Option<StepState> {
        self.journal
            .lock()
            .expect("journal lock")
            .run
            .step(id)
            .map(|s| s.state)
    }

    fn output(&self, id: &str, key: &str) -> Option<Value> {
        self.journal
            .lock()
            .expect("journal lock")
            .run
            .step(id)
            .and_then(|s| s.outputs.get(key).cloned())
    }

    /// Records what a step found or made, before acting on it (so a crash keeps it).
    fn record(&self, id: &str, key: &str, value: Value) -> Result<(), String> {
        self.journal
            .lock()
            .expect("journal lock")
            .update_step(id, |s| {
                s.outputs.insert(key.to_string(), value);
            })
            .map_err(|e| e.to_string())
    }

    fn from(&self) -> String {
        self.run().from
    }

    fn target(&self) -> String {
        self.run().target
    }

    fn primary(&self) -> &EngineNode {
        self.nodes
            .iter()
            .find(|n| n.info.primary)
            .unwrap_or(&self.nodes[0])
    }

    /// Runs one step unless it is already settled; journals its start and end.
    async fn step(&self, id: &str, body: impl Future<Output = StepResult>) -> Result<(), Failure> {
        match self.step_state(id) {
            None => return Ok(()),
            Some(s) if s.is_settled() => return Ok(()),
            Some(_) => {}
        }
        let batched = self.batched.lock().expect("batch lock").contains(id);
        // Found `running`: octoup died in this step; see recovery.rs. (A batched step was
        // marked running a moment ago by `each`, for every node at once.)
        let interrupted = self
            .run()
            .step(id)
            .filter(|s| s.state == StepState::Running && !batched)
            .cloned();
        let started = if batched {
            self.run().step(id).cloned().expect("step exists")
        } else {
            self.mark(id, start_step)?
        };
        self.events.step_started(&started);
        let result = match interrupted {
            Some(previous) => match self.recover_interrupted(&previous).await {
                Some(found) => Ok(found),
                None => body.await,
            },
            None => body.await,
        };
        let finished = self.mark_maybe_later(id, batched, |s| {
            s.finished = Some(now());
            match &result {
                Ok(Done::Ok(detail)) => {
                    s.state = StepState::Done;
                    if !detail.is_empty() {
                        s.outputs.insert("detail".into(), json!(detail));
                    }
                }
                Ok(Done::Skipped(why)) => {
                    s.state = StepState::Skipped;
                    s.outputs.insert("detail".into(), json!(why));
                }
                Err(message) => {
                    s.state = StepState::Failed;
                    s.error = Some(message.clone());
                }
            }
        })?;
        self.log.note(&format!(
            "step {id}: {}{}",
            finished.state.as_str(),
            finished
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
        self.events.step_finished(&finished);
        match result {
            Ok(_) => Ok(()),
            Err(message) => Err(Failure {
                step: id.to_string(),
                message,
            }),
        }
    }

    /// Like `mark`, but a batched step's end is only changed in memory: `each` writes the
    /// ends of all nodes at once. Until then a crash finds it `running`, which recovery
    /// checks against the real state.
    fn mark_maybe_later(
        &self,
        id: &str,
        later: bool,
        f: impl FnOnce(&mut Step),
    ) -> Result<Step, Failure> {
        if !later {
            return self.mark(id, f);
        }
        let mut journal = self.journal.lock().expect("journal lock");
        if let Some(step) = journal.run.step_mut(id) {
            f(step);
        }
        Ok(journal.run.step(id).cloned().expect("step exists"))
    }

    /// Marks the fresh per-node steps of `name` running with one journal write (with many
    /// nodes, one write per node would delay the last node's start by every other's fsync).
    fn start_together(&self, name: &str) -> Result<Vec<String>, Failure> {
        let fresh: Vec<String> = self
            .nodes
            .iter()
            .map(|n| step_id(name, Some(&n.info.name)))
            .filter(|id| {
                self.step_state(id)
                    .is_some_and(|s| !s.is_settled() && s != StepState::Running)
            })
            .collect();
        if fresh.len() < 2 {
            return Ok(Vec::new());
        }
        self.journal
            .lock()
            .expect("journal lock")
            .update(|run| {
                for id in &fresh {
                    if let Some(step) = run.step_mut(id) {
                        start_step(step);
                    }
                }
            })
            .map_err(|e| Failure {
                step: fresh[0].clone(),
                message: e.to_string(),
            })?;
        self.batched
            .lock()
            .expect("batch lock")
            .extend(fresh.iter().cloned());
        Ok(fresh)
    }

    /// Writes the ends of the steps `start_together` began, once.
    fn finish_together(&self, ids: &[String]) -> Result<(), Failure> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut batched = self.batched.lock().expect("batch lock");
        for id in ids {
            batched.remove(id);
        }
        drop(batched);
        self.journal
            .lock()
            .expect("journal lock")
            .update(|_| ())
            .map(|_| ())
            .map_err(|e| Failure {
                step: ids[0].clone(),
                message: e.to_string(),
            })
    }

    fn mark(&self, id: &str, f: impl FnOnce(&mut Step)) -> Result<Step, Failure> {
        let mut journal = self.journal.lock().expect("journal lock");
        journal.update_step(id, f).map_err(|e| Failure {
            step: id.to_string(),
            message: e.to_string(),
        })?;
        Ok(journal.run.step(id).cloned().expect("step exists"))
    }

    /// Runs a per-node step on every node at once; waits for all, then reports the first
    /// failure (never abandons a node half-way).
    async fn each<'a, F, Fut>(&'a self, name: &str, body: F) -> Result<(), Failure>
    where
        F: Fn(&'a EngineNode) -> Fut,
        Fut: Future<Output = StepResult> + 'a,
    {
        let together = self.start_together(name)?;
        let result = self
            .on_every_node(name, |id, n| {
                let fut = body(n);
                async move { self.step(&id, fut).await }
            })
            .await;
        let written = self.finish_together(&together);
        result.and(written)
    }

    /// Runs `one(step id, node)` for every node at once, waits for all, and reports the
    /// first failure.
    async fn on_every_node<'a, F, Fut>(&'a self, name: &str, one: F) -> Result<(), Failure>
    where
        F: Fn(String, &'a EngineNode) -> Fut,
        Fut: Future<Output = Result<(), Failure>> + 'a,
    {
        let futures = self
            .nodes
            .iter()
            .map(|n| one(step_id(name, Some(&n.info.name)), n))
            .collect::<Vec<_>>();
        first_failure(join_all(futures).await)
    }

    // ---------------------------------------------------------------- forward

    async fn run_forward(&self) -> Report {
        match self.forward().await {
            Ok(()) => self.finish_upgraded().await,
            Err(failure) => {
                let past_point_of_no_return = self
                    .step_state(&step_id(UPGRADE_DATABASE, Some(&self.primary().info.name)))
                    .is_some_and(|s| s != StepState::Planned);
                let outage_began = self.run().outage_started.is_some();
                if past_point_of_no_return && self.rolls_back_on_failure() {
                    self.rollback_after(failure).await
                } else if past_point_of_no_return {
                    self.pause(&failure).await
                } else if !outage_began && !self.anything_changed() {
                    self.fail_unchanged(&failure).await
                } else {
                    self.run_undo(Some(failure)).await
                }
            }
        }
    }

    /// Whether any step that changes the installation has started.
    fn anything_changed(&self) -> bool {
        let run = self.run();
        run.steps.iter().any(|s| {
            !matches!(
                s.name.as_str(),
                PREFLIGHT | STAGE_INSTALLER | STAGE_ROLLBACK | BACKUP_MASTER_KEY | BACKUP_LICENSE
            ) && s.state != StepState::Planned
        })
    }

    async fn forward(&self) -> Result<(), Failure> {
        // Before the outage.
        self.step(STAGE_INSTALLER, self.stage(Role::Target)).await?;
        self.step(STAGE_ROLLBACK, self.stage(Role::Rollback))
            .await?;
        self.step(BACKUP_MASTER_KEY, self.backup_master_key())
            .await?;
        self.step(BACKUP_LICENSE, self.backup_license()).await?;

        // The outage.
        self.step(MAINTENANCE_ON, self.maintenance_on()).await?;
        let deadline = Deadline::after(Duration::from_secs(self.config().drain.wait_seconds));
        self.each(DRAIN, |n| self.drain(n, deadline)).await?;
        self.each(DELETE_WATCHDOG, |n| self.delete_watchdog(n))
            .await?;
        self.each(STOP, |n| self.stop(n)).await?;
        let database = async {
            self.step(BACKUP_DATABASE, self.backup_database()).await?;
            self.step(VERIFY_BACKUP, self.verify_backup()).await
        };
        if self.rollback_installer().is_some() {
            // Installs do not touch the database: they overlap the backup. A failed backup
            // is undone by reinstalling the staged original version.
            let (db, installs) = tokio::join!(database, self.each(INSTALL, |n| self.install(n)));
            db?;
            installs?;
        } else {
            // Without a staged original installer a failed backup could not be undone
            // after an install: back up first.
            database.await?;
            self.each(INSTALL, |n| self.install(n)).await?;
        }
        let primary = self.primary();
        self.step(
            &step_id(UPGRADE_DATABASE, Some(&primary.info.name)),
            self.upgrade_database(),
        )
        .await?;
        if self.config().cluster.canary && self.nodes.len() > 1 {
            self.step(
                &step_id(START, Some(&primary.info.name)),
                self.start(primary),
            )
            .await?;
        }
        self.each(START, |n| self.start(n)).await?;
        self.step(VERIFY, self.verify()).await?;
        self.each(CREATE_WATCHDOG, |n| self.create_watchdog(n))
            .await?;
        self.each(UNDRAIN, |n| self.undrain(n)).await?;
        self.step(MAINTENANCE_RESTORE, self.maintenance_restore())
            .await?;
        Ok(())
    }

    fn rollback_installer(&self) -> Option<PathBuf> {
        if self.step_state(STAGE_ROLLBACK) != Some(StepState::Done) {
            return None;
        }
        self.output(STAGE_ROLLBACK, "path")
            .and_then(|v| v.as_str().map(PathBuf::from))
    }

    async fn stage(&self, role: Role) -> StepResult {
        let version_text = match role {
            Role::Target => self.target(),
            Role::Rollback => self.from(),
        };
        let version: Version = version_text.parse().map_err(|e| format!("{e}"))?;
        let staged = self
            .cache
            .ensure_installer(&version, role, self.events.progress())
            .await
            .map_err(|e| match role {
                Role::Target => format!("{e}. Nothing was changed on the server"),
                Role::Rollback => format!(
                    "{e}. The installer of the current version is kept so a failed upgrade can put it back; nothing was changed. Make it downloadable (or cached), or set [rollback] enabled = false to upgrade without it"
                ),
            })?;
        // Nodes reached over a transport stage into their own cache, all at once, before the
        // outage (a node on this machine uses the cache above: nothing to do).
        join_all(self.nodes.iter().map(|n| async {
            n.agent
                .stage(&version, role == Role::Rollback)
                .await
                .map_err(|e| format!("{e}. Nothing was changed on the server"))
        }))
        .await
        .into_iter()
        .collect::<Result<Vec<()>, String>>()?;
        let id = match role {
            Role::Target => STAGE_INSTALLER,
            Role::Rollback => STAGE_ROLLBACK,
        };
        self.record(id, "path", json!(staged.path))?;
        self.record(id, "sha256", json!(staged.sha256))?;
        self.record(
            id,
            "verified_by",
            json!(crate::installer::cache::describe(&staged.verified_by)),
        )?;
        Ok(Done::Ok(format!(
            "{} ({})",
            staged.path.display(),
            crate::installer::cache::describe(&staged.verified_by)
        )))
    }

    async fn backup_master_key(&self) -> StepResult {
        let primary = self.primary();
        let path = backup::save_master_key(
            primary.agent.as_ref(),
            &self.config().backup.dir,
            &self.log,
            &self.stamp,
        )
        .await
        .map_err(|e| format!("{e}. Nothing was changed"))?;
        self.record(BACKUP_MASTER_KEY, "path", json!(path))?;
        Ok(Done::Ok(path.display().to_string()))
    }

    async fn backup_license(&self) -> StepResult {
        let path = backup::save_license(&self.conn.api, &self.config().backup.dir, &self.stamp)
            .await
            .map_err(|e| format!("{e}. Nothing was changed"))?;
        self.record(BACKUP_LICENSE, "path", json!(path))?;
        Ok(Done::Ok(path.display().to_string()))
    }

    async fn maintenance_on(&self) -> StepResult {
        let api = &self.conn.api;
        // `was_on` was recorded by the preflight; it is never re-read (it may be ours now).
        let on = api.maintenance().await.map_err(|e| e.to_string())?;
        if on {
            return Ok(Done::Ok("already on".into()));
        }
        api.set_maintenance(true).await.map_err(|e| e.to_string())?;
        Ok(Done::Ok("turned on".into()))
    }

    /// Drains a node and waits until it runs no task, up to the shared deadline.
    async fn drain(&self, n: &EngineNode, deadline: Deadline) -> StepResult {
        let id = step_id(DRAIN, Some(&n.info.name));
        let cluster = &self.conn.api;
        let summary = cluster.nodes_summary().await.map_err(|e| e.to_string())?;
        let drained = summary
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(&n.info.name))
            .is_some_and(|s| s.is_in_maintenance_mode);
        if !drained {
            cluster
                .set_drain(&n.info.id, true)
                .await
                .map_err(|e| e.to_string())?;
        }
        let mut poll = Poller::standard();
        let mut announced = false;
        loop {
            let (count, tasks) = self.running_on(n).await?;
            let ping = n.api().ping().await;
            if count == 0 && tasks.is_empty() && !matches!(ping, Ping::Serving(_)) {
                return Ok(Done::Ok("drained; no task running".into()));
            }
            if deadline.expired() {
                if !self.config().drain.cancel_tasks {
                    return Err(format!(
                        "the drain deadline ({}) passed with {} task(s) still running on {}: {}. Nothing was stopped. Let them finish (or cancel them) and run `octoup upgrade` again, raise [drain] wait_seconds, or set [drain] cancel_tasks = true",
                        human_duration(deadline.total()),
                        count.max(tasks.len() as u32),
                        n.info.name,
                        describe_tasks(&tasks)
                    ));
                }
                return self.cancel_and_wait(&id, n, tasks).await;
            }
            if !announced {
                announced = true;
                self.events.note(&format!(
                    "{}: waiting for {} running task(s) to finish (up to {}): {}",
                    n.info.name,
                    count.max(tasks.len() as u32),
                    human_duration(deadline.remaining()),
                    describe_tasks(&tasks)
                ));
            }
            poll.wait(Some(&deadline)).await;
        }
    }

    /// Tasks executing on a node: the summary's count and the task list.
    async fn running_on(&self, n: &EngineNode) -> Result<(u32, Vec<TaskResource>), String> {
        let cluster = &self.conn.api;
        let summary = cluster.nodes_summary().await.map_err(|e| e.to_string())?;
        let count = summary
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(&n.info.name))
            .map(|s| s.running_task_count)
            .unwrap_or(0);
        let tasks = cluster
            .running_tasks(&n.info.id)
            .await
            .map_err(|e| e.to_string())?;
        Ok((count, tasks))
    }

    async fn cancel_and_wait(
        &self,
        id: &str,
        n: &EngineNode,
        tasks: Vec<TaskResource>,
    ) -> StepResult {
        let cluster = &self.conn.api;
        self.events.note(&format!(
            "{}: drain deadline reached; cancelling {} task(s) ([drain] cancel_tasks = true): {}",
            n.info.name,
            tasks.len(),
            describe_tasks(&tasks)
        ));
        for t in &tasks {
            cluster
                .cancel_task(&t.id)
                .await
                .map_err(|e| format!("cannot cancel {}: {e}", t.id))?;
        }
        self.record(
            id,
            "canceled",
            json!(tasks.iter().map(|t| t.id.clone()).collect::<Vec<_>>()),
        )?;
        let bound = Deadline::after(Duration::from_secs(self.config().timeouts.command));
        let mut poll = Poller::standard();
        loop {
            let (count, left) = self.running_on(n).await?;
            if count == 0 && left.is_empty() {
                return Ok(Done::Ok(format!(
                    "drained; canceled {} task(s) at the deadline",
                    tasks.len()
                )));
            }
            if bound.expired() {
                return Err(format!(
                    "{} task(s) on {} did not end within {} of being cancelled: {}. Nothing was stopped; look at them in the Octopus UI, then run `octoup upgrade` again",
                    left.len().max(count as usize),
                    n.info.name,
                    human_duration(bound.total()),
                    describe_tasks(&left)
                ));
            }
            poll.wait(Some(&bound)).await;
        }
    }

    async fn delete_watchdog(&self, n: &EngineNode) -> StepResult {
        let id = step_id(DELETE_WATCHDOG, Some(&n.info.name));
        let existed = self
            .output(&id, "existed")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let now_on = n.agent.watchdog().await.map_err(|e| e.to_string())?.enabled;
        if !existed && !now_on {
            return Ok(Done::Skipped("no watchdog".into()));
        }
        if now_on {
            n.agent.delete_watchdog().await.map_err(|e| e.to_string())?;
        }
        Ok(Done::Ok("deleted (recreated after the upgrade)".into()))
    }

    async fn stop(&self, n: &EngineNode) -> StepResult {
        self.journal_update(|r| {
            if r.outage_started.is_none() {
                r.outage_started = Some(now());
            }
        })
        .map_err(|e| e.to_string())?;
        if !n.api().ping().await.is_up() {
            // Found stopped (a resume after a crash): confirm with the service command,
            // which is a no-op on a stopped service.
            n.agent.stop().await.map_err(|e| e.to_string())?;
            return Ok(Done::Ok("stopped".into()));
        }
        n.agent.stop().await.map_err(|e| e.to_string())?;
        Ok(Done::Ok("stopped; the node no longer answers".into()))
    }

    async fn backup_database(&self) -> StepResult {
        let path = self
            .sql
            .backup(self.conn.runner.as_ref(), &self.from(), &self.stamp)
            .await
            .map_err(|e| {
                format!(
                    "{e}. Check [database] sqlcmd and backup_dir (a folder the SQL Server can write)"
                )
            })?;
        self.record(BACKUP_DATABASE, "path", json!(path))?;
        Ok(Done::Ok(path.display().to_string()))
    }

    async fn verify_backup(&self) -> StepResult {
        let path = self
            .output(BACKUP_DATABASE, "path")
            .and_then(|v| v.as_str().map(PathBuf::from))
            .ok_or("no backup to verify: the backup step recorded no file")?;
        self.sql
            .verify(self.conn.runner.as_ref(), &path)
            .await
            .map_err(|e| format!("{e}. The backup {} cannot be trusted", path.display()))?;
        Ok(Done::Ok(format!(
            "RESTORE VERIFYONLY passed: {}",
            path.display()
        )))
    }

    async fn install(&self, n: &EngineNode) -> StepResult {
        let id = step_id(INSTALL, Some(&n.info.name));
        let target = self.target();
        let want: Version = target.parse().map_err(|e| format!("{e}"))?;
        let installed = n
            .agent
            .installed_version()
            .await
            .map_err(|e| e.to_string())?;
        if installed == want {
            return Ok(Done::Ok(format!("{target} is installed")));
        }
        let installer = self
            .output(STAGE_INSTALLER, "path")
            .and_then(|v| v.as_str().map(PathBuf::from))
            .ok_or("no staged installer recorded")?;
        let outcome = n
            .agent
            .install(&installer, &target)
            .await
            .map_err(|e| e.to_string())?;
        self.record(&id, "exit_code", json!(outcome.exit_code))?;
        self.record(&id, "log", json!(outcome.log))?;
        // The installer can claim success and leave the old files (Octopus issue 6383).
        let now_installed = n
            .agent
            .installed_version()
            .await
            .map_err(|e| e.to_string())?;
        if now_installed != want {
            return Err(format!(
                "the installer exited {} but {} still has {now_installed} installed; see its log {}",
                outcome.exit_code,
                n.info.name,
                outcome.log.display()
            ));
        }
        Ok(Done::Ok(format!(
            "{target} installed{}{}",
            if outcome.attempts > 1 {
                format!(
                    " after {} tries (another installation was running)",
                    outcome.attempts
                )
            } else {
                String::new()
            },
            if outcome.reboot_required {
                " (exit 3010: Windows asks for a reboot; octoup does not reboot)"
            } else {
                ""
            }
        )))
    }

    /// The one schema upgrade, on the primary, with every node stopped (I1).
    async fn upgrade_database(&self) -> StepResult {
        let primary = self.primary();
        let target = self.target();
        for n in &self.nodes {
            if n.api().ping().await.is_up() {
                return Err(format!(
                    "node {} still answers at {}: the database upgrade needs every node stopped",
                    n.info.name, n.info.url
                ));
            }
        }
        let installed = primary
            .agent
            .installed_version()
            .await
            .map_err(|e| e.to_string())?;
        if installed.to_string() != target
            && installed != target.parse().map_err(|e| format!("{e}"))?
        {
            return Err(format!(
                "the primary {} has {installed} installed, not {target}",
                primary.info.name
            ));
        }
        if self.resumed
            && let Ok(Some(false)) = primary.agent.database_upgrade_pending().await
        {
            return Ok(Done::Ok(format!("the schema is already at {target}")));
        }
        let deadline = Deadline::after(NODES_RUNNING_GRACE);
        let mut poll = Poller::new(Duration::from_millis(200), Duration::from_secs(15));
        let mut attempts = 0;
        loop {
            attempts += 1;
            match primary.agent.database_upgrade().await {
                Ok(()) => {
                    return Ok(Done::Ok(format!(
                        "schema upgraded to {target}{}",
                        if attempts > 1 {
                            format!(" (try {attempts}: the server first still saw nodes running)")
                        } else {
                            String::new()
                        }
                    )));
                }
                Err(NodeError::NodesStillRunning { tail, .. }) if !deadline.expired() => {
                    if attempts == 1 {
                        self.events.note(&format!(
                            "the server still sees nodes running ({}); retrying until their heartbeat goes stale (up to {})",
                            tail.lines().last().unwrap_or(""),
                            human_duration(NODES_RUNNING_GRACE)
                        ));
                    }
                    poll.wait(Some(&deadline)).await;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    async fn start(&self, n: &EngineNode) -> StepResult {
        let target = self.target();
        let status = n.agent.status().await;
        if status.ping.is_up() && status.api_version.as_deref() == Some(target.as_str()) {
            return Ok(Done::Ok(format!("serves {target}")));
        }
        n.agent.start(&target).await.map_err(|e| e.to_string())?;
        Ok(Done::Ok(format!("serves {target}")))
    }

    async fn verify(&self) -> StepResult {
        let target = self.target();
        let want: Version = target.parse().map_err(|e| format!("{e}"))?;
        for n in &self.nodes {
            let s = n.agent.status().await;
            let ok = s.ping.is_up()
                && s.api_version
                    .as_deref()
                    .and_then(|v| v.parse::<Version>().ok())
                    .is_some_and(|v| v == want);
            if !ok {
                return Err(format!(
                    "node {} does not serve {target}: {}{}",
                    n.info.name,
                    s.ping.describe(),
                    s.api_version
                        .map(|v| format!(", /api Version {v}"))
                        .unwrap_or_default()
                ));
            }
        }
        let summary = self
            .conn
            .api
            .nodes_summary()
            .await
            .map_err(|e| e.to_string())?;
        for n in &self.nodes {
            let v = summary
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(&n.info.name))
                .and_then(|s| s.version.clone());
            if let Some(v) = v
                && v.parse::<Version>().ok().as_ref() != Some(&want)
            {
                return Err(format!(
                    "the cluster summary reports {} on {v}, not {target}",
                    n.info.name
                ));
            }
        }
        self.journal_update(|r| r.outage_ended = Some(now()))
            .map_err(|e| e.to_string())?;
        Ok(Done::Ok(format!(
            "every node serves {target} (/api, ping, cluster summary)"
        )))
    }

    async fn create_watchdog(&self, n: &EngineNode) -> StepResult {
        let info = self.recorded_watchdog(n);
        let Some(info) = info else {
            return Ok(Done::Skipped("no watchdog before the upgrade".into()));
        };
        if n.agent.watchdog().await.map_err(|e| e.to_string())?.enabled {
            return Ok(Done::Ok("present".into()));
        }
        n.agent
            .create_watchdog(&info)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Done::Ok("recreated".into()))
    }

    fn recorded_watchdog(&self, n: &EngineNode) -> Option<WatchdogInfo> {
        let id = step_id(DELETE_WATCHDOG, Some(&n.info.name));
        if self.output(&id, "existed").and_then(|v| v.as_bool()) != Some(true) {
            return None;
        }
        self.output(&id, "watchdog")
            .and_then(|v| serde_json::from_value(v).ok())
            .or(Some(WatchdogInfo {
                enabled: true,
                interval_minutes: None,
                instances: None,
            }))
    }

    fn drain_was_on(&self, n: &EngineNode) -> bool {
        self.output(&step_id(DRAIN, Some(&n.info.name)), "was_on")
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }

    async fn undrain(&self, n: &EngineNode) -> StepResult {
        if self.drain_was_on(n) {
            return Ok(Done::Skipped(
                "was drained before the upgrade: stays drained".into(),
            ));
        }
        self.cluster()
            .await
            .set_drain(&n.info.id, false)
            .await
            .map_err(|e| e.to_string())?;
        if !n.api().ping().await.is_up() {
            return Ok(Done::Ok(
                "drain flag cleared; the node is stopped and takes tasks once it starts".into(),
            ));
        }
        // The node takes tasks again once its ping says 200.
        let deadline = Deadline::after(Duration::from_secs(self.config().timeouts.command));
        let mut poll = Poller::standard();
        loop {
            match n.api().ping().await {
                Ping::Serving(_) => return Ok(Done::Ok("taking tasks again (ping 200)".into())),
                other if deadline.expired() => {
                    return Err(format!(
                        "{} was undrained but its ping still says {}",
                        n.info.name,
                        other.describe()
                    ));
                }
                _ => poll.wait(Some(&deadline)).await,
            }
        }
    }

    fn maintenance_was_on(&self) -> bool {
        self.output(MAINTENANCE_ON, "was_on")
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }

    async fn maintenance_restore(&self) -> StepResult {
        if self.maintenance_was_on() {
            return Ok(Done::Skipped("was on before the upgrade: stays on".into()));
        }
        if self.config().maintenance.leave_on {
            return Ok(Done::Skipped(
                "left on as configured ([maintenance] leave_on): check the server, then turn it off".into(),
            ));
        }
        self.cluster()
            .await
            .set_maintenance(false)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Done::Ok("turned off".into()))
    }

    async fn finish_upgraded(&self) -> Report {
        let next = if self.config().maintenance.leave_on && !self.maintenance_was_on() {
            Some("Maintenance mode was left on as configured: check the server, then turn it off (Configuration → Maintenance).".to_string())
        } else {
            None
        };
        let run = self.run();
        let next = if run.path.len() > 1
            && let Some(pos) = run.path.iter().position(|v| *v == run.target)
            && pos + 1 < run.path.len()
        {
            let rest = run.path[pos + 1..].join(" → ");
            Some(format!(
                "{} is a stop on the way to {}: run `octoup upgrade` again for the next version ({rest})",
                run.target,
                run.path.last().cloned().unwrap_or_default()
            ))
        } else {
            next
        };
        self.end(RunStatus::Upgraded, Outcome::Upgraded, |r| {
            r.next_step = next
        })
        .await
    }

    /// Ends the run: `record` notes in the journal how it ended (error, next step), then the
    /// run takes `status` and the report says `outcome`.
    async fn end(
        &self,
        status: RunStatus,
        outcome: Outcome,
        record: impl FnOnce(&mut Run),
    ) -> Report {
        self.journal_update(record).ok();
        self.set_status(status);
        self.report(outcome).await
    }

    /// Ends the run stopped by `error`, with the operator's `next` step.
    async fn end_stopped(
        &self,
        status: RunStatus,
        outcome: Outcome,
        error: String,
        next: String,
    ) -> Report {
        self.end(status, outcome, |r| {
            r.error = Some(error);
            r.next_step = Some(next);
        })
        .await
    }

    // ------------------------------------------------------------- safe stops

    async fn fail_unchanged(&self, failure: &Failure) -> Report {
        let text =
            "Nothing on the server was changed. Fix the cause, then run `octoup upgrade` again."
                .to_string();
        let error = format!("{}: {}", failure.step, failure.message);
        let mut report = self
            .end_stopped(RunStatus::Failed, Outcome::Failed, error, text)
            .await;
        report.refused = true;
        report.outcome = Outcome::Refused;
        report
    }

    async fn pause(&self, failure: &Failure) -> Report {
        if matches!(failure.step.split('@').next(), Some(START | VERIFY)) {
            self.restore_what_serves().await;
        }
        let next = self.next_step_after(failure).await;
        let error = format!("{}: {}", failure.step, failure.message);
        self.end_stopped(RunStatus::Paused, Outcome::Paused, error, next)
            .await
    }

    /// After a node failed to start: the nodes that serve the target get their watchdogs
    /// back and take tasks again, and maintenance mode is restored, so the cluster works on
    /// fewer nodes while the failed one waits for the operator (I6 holds). Nothing happens
    /// when no node serves (the API is down with them).
    async fn restore_what_serves(&self) {
        let target = self.target();
        let mut serving = Vec::new();
        for n in &self.nodes {
            let s = n.agent.status().await;
            if s.ping.is_up() && s.api_version.as_deref() == Some(target.as_str()) {
                serving.push(n);
            }
        }
        if serving.is_empty() {
            return;
        }
        self.events.note(&format!(
            "{} serve {target}: restoring their watchdogs, the drain flags and maintenance mode while the failed node waits",
            serving
                .iter()
                .map(|n| n.info.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for n in &serving {
            let id = step_id(CREATE_WATCHDOG, Some(&n.info.name));
            let _ = self.step(&id, self.create_watchdog(n)).await;
        }
        let _ = self.each(UNDRAIN, |n| self.undrain(n)).await;
        let _ = self
            .step(MAINTENANCE_RESTORE, self.maintenance_restore())
            .await;
    }

    /// The cluster's API: the configured address, or (when that node is the one down, as
    /// without a load balancer) any node that answers.
    async fn cluster(&self) -> OctopusApi {
        if self.conn.api.ping().await.is_up() {
            return self.conn.api.clone();
        }
        for n in &self.nodes {
            if n.api().ping().await.is_up() {
                return n.api().clone();
            }
        }
        self.conn.api.clone()
    }

    /// Exactly what to do after a failure at or after the database upgrade.
    async fn next_step_after(&self, failure: &Failure) -> String {
        let run = self.run();
        let (from, target) = (run.from.clone(), run.target.clone());
        let backup = run
            .step(BACKUP_DATABASE)
            .and_then(|s| s.output_str("path"))
            .unwrap_or("(none)")
            .to_string();
        let name = failure.step.split('@').next().unwrap_or("");
        match name {
            UPGRADE_DATABASE => {
                let pending = self
                    .primary()
                    .agent
                    .database_upgrade_pending()
                    .await
                    .ok()
                    .flatten();
                format!(
                    "Every node is stopped and drained, maintenance mode is on, and every node has {target} installed. {} Fix the cause above, then run `octoup upgrade` again: it retries the database upgrade and finishes. To go back to {from} instead: restore the verified backup {backup} and reinstall {from} on every node (`octoup rollback`).",
                    match pending {
                        Some(true) => format!(
                            "The database schema is still {from} (Octopus rolls a failed upgrade back)."
                        ),
                        Some(false) => format!("The database schema is already {target}."),
                        None => "The database schema state could not be read.".to_string(),
                    }
                )
            }
            START | VERIFY => format!(
                "The database is upgraded to {target}; {}. {} Look at the Octopus server log on the node named above, fix the cause, then run `octoup upgrade` again: it starts what is not running, verifies, and restores what is left (watchdogs, drain, maintenance mode). Never start a node with {from} installed against this database.",
                self.serving_summary().await,
                if self
                    .step_state(MAINTENANCE_RESTORE)
                    .is_some_and(|s| s.is_settled())
                {
                    "The nodes that serve take tasks again and maintenance mode is restored."
                } else {
                    "Maintenance mode is on and the nodes stay drained."
                }
            ),
            _ => format!(
                "Every node serves {target}. Run `octoup upgrade` again to finish the remaining steps (watchdogs, undrain, maintenance mode), or do them by hand as the failed step above says."
            ),
        }
    }

    async fn serving_summary(&self) -> String {
        let mut parts = Vec::new();
        for n in &self.nodes {
            let s = n.agent.status().await;
            parts.push(format!(
                "{} {}",
                n.info.name,
                if s.ping.is_up() {
                    format!("serves {}", s.api_version.unwrap_or_default())
                } else {
                    "is stopped".to_string()
                }
            ));
        }
        parts.join(", ")
    }

    // ------------------------------------------------------------------- undo

    /// Puts back what the run changed before the database upgrade.
    async fn run_undo(&self, failure: Option<Failure>) -> Report {
        let cause = match &failure {
            Some(f) => format!("{}: {}", f.step, f.message),
            None => self.run().error.unwrap_or_default(),
        };
        self.journal_update(|r| {
            r.status = RunStatus::Undoing;
            r.direction = Direction::Undo;
            r.error = Some(cause.clone());
        })
        .ok();
        self.events
            .note("putting everything back (the failure came before the database upgrade)");
        match self.undo().await {
            Ok(()) => {
                let from = self.from();
                self.end(RunStatus::Failed, Outcome::Failed, |r| {
                    if r.outage_started.is_some() && r.outage_ended.is_none() {
                        r.outage_ended = Some(now());
                    }
                    r.next_step = Some(format!(
                        "Everything was put back: every node serves {from}, and the watchdogs, drain flags and maintenance mode are as they were. Fix the cause above, then run `octoup upgrade` again."
                    ));
                })
                .await
            }
            Err(f) => {
                let error = format!(
                    "{cause}; then putting things back failed at {}: {}",
                    f.step, f.message
                );
                let next = format!(
                    "The upgrade failed before the database upgrade (the database is unchanged), and putting things back stopped at {}: {}. Fix that, then run `octoup upgrade` again: it continues putting things back (it never starts a node whose installed version differs from the database).",
                    f.step, f.message
                );
                self.end_stopped(RunStatus::Paused, Outcome::Paused, error, next)
                    .await
            }
        }
    }

    async fn undo(&self) -> Result<(), Failure> {
        self.undo_each(INSTALL, |n| self.undo_install(n)).await?;
        self.undo_each(STOP, |n| self.undo_stop(n)).await?;
        self.undo_each(DELETE_WATCHDOG, |n| self.undo_watchdog(n))
            .await?;
        self.undo_each(DRAIN, |n| self.undo_drain(n)).await?;
        self.undo_step(MAINTENANCE_ON, self.undo_maintenance())
            .await
    }

    /// Reverses one step if it was reached; `Ok(true)` from the body marks it undone.
    async fn undo_step(
        &self,
        id: &str,
        body: impl Future<Output = Result<bool, String>>,
    ) -> Result<(), Failure> {
        match self.step_state(id) {
            Some(StepState::Done | StepState::Running | StepState::Failed) => {}
            _ => return Ok(()),
        }
        let reversed = body.await.map_err(|message| Failure {
            step: format!("undo {id}"),
            message,
        })?;
        if reversed {
            // A failed step keeps "failed" (it is the cause); what it had changed is noted.
            let step = self.mark(id, |s| {
                if s.state == StepState::Failed {
                    s.outputs
                        .insert("detail".into(), json!("what it had changed was put back"));
                } else {
                    s.state = StepState::Undone;
                }
                s.outputs
                    .insert("undone_at".into(), json!(now().to_string()));
            })?;
            self.log.note(&format!("step {id}: undone"));
            self.events.step_finished(&step);
        }
        Ok(())
    }

    async fn undo_each<'a, F, Fut>(&'a self, name: &str, body: F) -> Result<(), Failure>
    where
        F: Fn(&'a EngineNode) -> Fut,
        Fut: Future<Output = Result<bool, String>> + 'a,
    {
        self.on_every_node(name, |id, n| {
            let fut = body(n);
            async move { self.undo_step(&id, fut).await }
        })
        .await
    }

    /// A node whose binaries changed gets the original version back before it may start:
    /// the newer product is uninstalled (an MSI refuses to downgrade itself), then the staged
    /// original installer runs.
    async fn undo_install(&self, n: &EngineNode) -> Result<bool, String> {
        let from = self.from();
        let want: Version = from.parse().map_err(|e| format!("{e}"))?;
        // Nothing installed at all (a crash between the uninstall and the install) reads as
        // an error from `version`: go on to install.
        let installed = n.agent.installed_version().await.ok();
        if installed.as_ref() == Some(&want) {
            return Ok(false);
        }
        let shown = installed
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| "no Octopus Server".into());
        let Some(original) = self.rollback_installer() else {
            return Err(format!(
                "{} has {shown} installed but the database is still {from}, and no installer of {from} was staged ([rollback] enabled = false). Install {from} on {} by hand (the node must not start with {shown}), then run `octoup upgrade` again",
                n.info.name, n.info.name
            ));
        };
        self.events.note(&format!(
            "{}: putting {from} back (the node must not start with {shown} against a {from} database)",
            n.info.name
        ));
        if let Some(current) = &installed {
            let package = self
                .output(STAGE_INSTALLER, "path")
                .and_then(|v| v.as_str().map(PathBuf::from))
                .ok_or("no staged installer recorded for the uninstall")?;
            n.agent
                .uninstall(&package, &current.to_string())
                .await
                .map_err(|e| e.to_string())?;
        }
        n.agent
            .install(&original, &from)
            .await
            .map_err(|e| e.to_string())?;
        let now_installed = n
            .agent
            .installed_version()
            .await
            .map_err(|e| e.to_string())?;
        if now_installed != want {
            return Err(format!(
                "reinstalling {from} on {} left {now_installed} installed",
                n.info.name
            ));
        }
        Ok(true)
    }

    async fn undo_stop(&self, n: &EngineNode) -> Result<bool, String> {
        let from = self.from();
        if n.api().ping().await.is_up() {
            return Ok(false);
        }
        // I2: never start a node whose binaries differ from the schema.
        let installed = n
            .agent
            .installed_version()
            .await
            .map_err(|e| e.to_string())?;
        if installed.to_string() != from
            && installed != from.parse::<Version>().map_err(|e| format!("{e}"))?
        {
            return Err(format!(
                "{} has {installed} installed, not {from}: it is left stopped",
                n.info.name
            ));
        }
        n.agent.start(&from).await.map_err(|e| e.to_string())?;
        Ok(true)
    }

    async fn undo_watchdog(&self, n: &EngineNode) -> Result<bool, String> {
        let Some(info) = self.recorded_watchdog(n) else {
            return Ok(false);
        };
        if n.agent.watchdog().await.map_err(|e| e.to_string())?.enabled {
            return Ok(false);
        }
        n.agent
            .create_watchdog(&info)
            .await
            .map_err(|e| e.to_string())?;
        Ok(true)
    }

    async fn undo_drain(&self, n: &EngineNode) -> Result<bool, String> {
        if self.drain_was_on(n) {
            return Ok(false);
        }
        self.conn
            .api
            .set_drain(&n.info.id, false)
            .await
            .map_err(|e| e.to_string())?;
        Ok(true)
    }

    async fn undo_maintenance(&self) -> Result<bool, String> {
        if self.maintenance_was_on() {
            return Ok(false);
        }
        self.conn
            .api
            .set_maintenance(false)
            .await
            .map_err(|e| e.to_string())?;
        Ok(true)
    }

    // ----------------------------------------------------------------- report

    async fn report(&self, outcome: Outcome) -> Report {
        let mut nodes = Vec::new();
        for n in &self.nodes {
            let s = n.agent.status().await;
            let (version, serving) = match (s.ping.is_up(), s.api_version) {
                (true, Some(v)) => (v, true),
                _ => (
                    n.agent
                        .installed_version()
                        .await
                        .map(|v| v.to_string())
                        .unwrap_or_else(|_| "unknown".into()),
                    false,
                ),
            };
            nodes.push(NodeReport {
                name: n.info.name.clone(),
                version,
                serving,
            });
        }
        let journal = self.state.run_path(&self.run().id);
        let run = self.run();
        let mut report = Report::from_run(&run, outcome, nodes, journal);
        if let Some(w) = run
            .step(PREFLIGHT)
            .and_then(|s| s.outputs.get("warnings"))
            .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
        {
            report.warnings = w;
        }
        report
    }
}

fn first_failure(results: Vec<Result<(), Failure>>) -> Result<(), Failure> {
    let failures: Vec<Failure> = results.into_iter().filter_map(Result::err).collect();
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.into_iter().next().expect("one")),
        _ => Err(Failure {
            step: failures[0].step.clone(),
            message: failures
                .iter()
                .map(|f| format!("{}: {}", f.step, f.message))
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

fn describe_tasks(tasks: &[TaskResource]) -> String {
    if tasks.is_empty() {
        return "(the task list is not available; the node summary counts them)".into();
    }
    tasks
        .iter()
        .map(|t| {
            format!(
                "{} \"{}\" ({})",
                t.id,
                if t.description.is_empty() {
                    &t.name
                } else {
                    &t.description
                },
                t.state
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `octoup status`: the unfinished run, else the last one.
pub fn last_run(config: &Config) -> Result<Option<(Run, PathBuf)>, EngineError> {
    let state = StateDir::new(&config.state.dir);
    Ok(state.last()?.map(|r| {
        let path = state.run_path(&r.id);
        (r, path)
    }))
}

/// `octoup plan`: the preflight's findings and the steps, changing nothing.
pub async fn plan(
    config: Config,
    env: &EnvOverrides,
    to: Option<&str>,
) -> Result<plan::Plan, EngineError> {
    let state = StateDir::new(&config.state.dir);
    let history = state.runs();
    let log = Arc::new(RunLog::disabled());
    let conn = Connection::new(config, env, log)?;
    let facts = preflight(&conn, to).await?;
    Ok(plan::make_plan(&conn.config, facts, &history))
}

/// A step begins: running from now, no end or error yet.
fn start_step(s: &mut Step) {
    s.state = StepState::Running;
    s.started = Some(now());
    s.finished = None;
    s.error = None;
}
