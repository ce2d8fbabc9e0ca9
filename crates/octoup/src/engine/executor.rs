//! The executor: runs a step unless the journal says it is settled, journals its start and
//! end, runs per-node steps on every node at once, and walks a procedure's phases.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::OnceCell;

use crate::config::{Config, NotifyEvent};
use crate::journal::{
    Direction, Journal, JournalError, Run, RunNode, RunStatus, StateDir, Step, StepState,
};
use crate::nodes::NodeAgent;
use crate::process::clock::{Deadline, now};
use crate::process::runner::{RunLog, SpawnHook};
use crate::version::Version;

use super::catalogue::{Layout, Phase, Scope, StepId, StepKind};
use super::error::StepError;
use super::record::Record;
use super::seams::{Cluster, Database, Installers};
use super::{Events, Milestone};

/// A step that could not be done: the step (`name@node`, or `undo name@node`) and why.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub step: String,
    pub message: String,
}

impl Failure {
    pub fn new(step: &StepId, error: impl ToString) -> Failure {
        Failure {
            step: step.key(),
            message: error.to_string(),
        }
    }

    /// The kind of the step that failed (`undo …` steps included).
    pub(crate) fn kind(&self) -> Option<StepKind> {
        let name = self.step.trim_start_matches("undo ");
        StepKind::parse(name.split('@').next().unwrap_or(name))
    }
}

/// How a step ended well.
pub(crate) enum Done {
    Ok(String),
    Skipped(String),
}

pub(crate) type StepResult = Result<Done, StepError>;

pub(crate) struct EngineNode {
    pub info: RunNode,
    pub agent: Arc<dyn NodeAgent>,
}

/// Everything the engine acts on: the seams production fills with HTTP, `sqlcmd`, the
/// download cache and node agents, and tests with a fake.
pub(crate) struct World {
    pub cluster: Arc<dyn Cluster>,
    pub database: Arc<dyn Database>,
    pub installers: Arc<dyn Installers>,
    pub nodes: Vec<(RunNode, Arc<dyn NodeAgent>)>,
}

pub(crate) struct Engine {
    pub config: Arc<Config>,
    pub state: StateDir,
    /// Shared with the runner's spawn hooks, which journal a child's pid as it starts.
    journal: Arc<Mutex<Journal>>,
    pub nodes: Vec<EngineNode>,
    pub events: Arc<dyn Events>,
    pub log: Arc<RunLog>,
    pub cluster: Arc<dyn Cluster>,
    pub database: Arc<dyn Database>,
    pub installers: Arc<dyn Installers>,
    /// Names this engine's backup files.
    pub stamp: String,
    /// Continuing a run an earlier octoup started.
    pub resumed: bool,
    /// Per-node steps whose start and end are journaled once for all nodes (see `each`).
    batched: Mutex<HashSet<String>>,
    /// The drain deadline, shared by every node (set when the first node starts draining).
    pub drain_deadline: OnceCell<Deadline>,
    /// Whether the rollback must stop the nodes (decided once, before the first stop).
    pub rollback_must_stop: OnceCell<bool>,
    /// What the operator asked for (the report's headers name it).
    pub operation: super::report::Operation,
    /// The maintenance window, read from the journal once (see `window.rs`).
    pub(crate) window: std::sync::OnceLock<Option<super::window::Active>>,
}

impl Engine {
    pub fn new(
        config: Arc<Config>,
        state: StateDir,
        journal: Journal,
        world: World,
        events: Arc<dyn Events>,
        log: Arc<RunLog>,
    ) -> Engine {
        Engine {
            config,
            state,
            journal: Arc::new(Mutex::new(journal)),
            nodes: world
                .nodes
                .into_iter()
                .map(|(info, agent)| EngineNode { info, agent })
                .collect(),
            events,
            log,
            cluster: world.cluster,
            database: world.database,
            installers: world.installers,
            stamp: crate::backup::stamp(),
            resumed: false,
            batched: Mutex::new(HashSet::new()),
            drain_deadline: OnceCell::new(),
            rollback_must_stop: OnceCell::new(),
            operation: super::report::Operation::Upgrade,
            window: std::sync::OnceLock::new(),
        }
    }

    /// Continues an unfinished run in its direction (or rolls it back when asked).
    pub(crate) async fn resume(mut self, rollback: bool, config_changed: bool) -> super::Report {
        let run = self.run();
        if rollback {
            self.operation = super::report::Operation::Rollback;
            return self.take_over_rollback().await;
        }
        self.operation = super::report::Operation::Resume;
        let action = match run.direction {
            Direction::Rollback => super::confirm::Action::Rollback,
            _ => super::confirm::Action::Resume,
        };
        if let Some(refused) = self.confirm_takeover(action).await {
            return refused;
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
        self.log.note(&note);
        self.events.note(&note);
        if config_changed {
            let w = "the config changed since this run started; the run continues with its recorded target and nodes";
            self.log.note(w);
            self.events.note(&format!("warning: {w}"));
        }
        self.resumed = true;
        self.journal_update(|r| {
            r.pid = std::process::id();
            // An undo or a rollback carries its cause on; a forward run starts afresh.
            if r.direction == Direction::Forward {
                r.error = None;
            }
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
        match run.direction {
            Direction::Undo => self.run_undo(None).await,
            Direction::Forward => self.run_forward().await,
            Direction::Rollback => self.run_rollback().await,
        }
    }

    // ------------------------------------------------------------- the journal

    pub fn run(&self) -> Run {
        self.journal.lock().expect("journal lock").run.clone()
    }

    /// The run's id, the same in every process that works on it (`stamp` is not).
    pub(crate) fn run_id(&self) -> String {
        self.journal.lock().expect("journal lock").run.id.clone()
    }

    /// Updates the run in the journal; the outage's start and end (set only here) are
    /// milestones for the watchers.
    pub(crate) fn journal_update<R>(
        &self,
        f: impl FnOnce(&mut Run) -> R,
    ) -> Result<R, JournalError> {
        let mut journal = self.journal.lock().expect("journal lock");
        let before = (journal.run.outage_started, journal.run.outage_ended);
        let result = journal.update(f)?;
        let run = &journal.run;
        let milestone = match before {
            (None, _) if run.outage_started.is_some() => {
                Some((NotifyEvent::OutageStarted, &run.from))
            }
            (_, None) if run.outage_ended.is_some() => {
                Some((NotifyEvent::OutageEnded, &run.target))
            }
            _ => None,
        }
        .map(|(event, version)| {
            let version = match (event, run.direction) {
                (NotifyEvent::OutageEnded, Direction::Forward) => version,
                _ => &run.from,
            };
            Milestone::of_run(event, run, &version.to_string())
        });
        drop(journal);
        if let Some(m) = milestone {
            self.events.milestone(&m);
        }
        Ok(result)
    }

    pub(crate) fn set_status(&self, status: RunStatus) {
        if let Err(e) = self
            .journal
            .lock()
            .expect("journal lock")
            .set_status(status)
        {
            self.log.note(&format!("cannot write the journal: {e}"));
        }
    }

    pub(crate) fn state_of(&self, id: &StepId) -> Option<StepState> {
        self.journal
            .lock()
            .expect("journal lock")
            .run
            .step(&id.key())
            .map(|s| s.state)
    }

    pub(crate) fn settled(&self, id: &StepId) -> bool {
        self.state_of(id).is_some_and(StepState::is_settled)
    }

    /// Reads what a step recorded.
    pub(crate) fn recorded<T>(
        &self,
        id: &StepId,
        read: impl FnOnce(&Step) -> Option<T>,
    ) -> Option<T> {
        self.journal
            .lock()
            .expect("journal lock")
            .run
            .step(&id.key())
            .and_then(read)
    }

    /// Records what a step found or made, before acting on it (so a crash keeps it).
    pub(crate) fn record(&self, id: &StepId, what: Record) -> Result<(), StepError> {
        self.journal
            .lock()
            .expect("journal lock")
            .update_step(&id.key(), |s| what.write(s))?;
        Ok(())
    }

    /// A hook that journals the spawned child on step `id` ([`Record::Child`]).
    pub(crate) fn child_hook(&self, id: &StepId) -> SpawnHook {
        let journal = self.journal.clone();
        let (key, log) = (id.key(), self.log.clone());
        SpawnHook::new(move |process| {
            let what = Record::Child {
                process,
                started: now(),
            };
            let written = journal
                .lock()
                .expect("journal lock")
                .update_step(&key, |s| what.write(s));
            match written {
                Ok(()) => log.note(&format!("step {key}: child pid {}", process.pid)),
                Err(e) => log.note(&format!("cannot journal step {key}'s child: {e}")),
            }
        })
    }

    pub(crate) fn from(&self) -> Version {
        self.journal.lock().expect("journal lock").run.from.clone()
    }

    pub(crate) fn target(&self) -> Version {
        self.journal
            .lock()
            .expect("journal lock")
            .run
            .target
            .clone()
    }

    /// One step as the journal holds it now. (Not `run().step()`: with many nodes, cloning
    /// the whole run for every node's step costs the critical path O(nodes²).)
    fn step_now(&self, key: &str) -> Option<Step> {
        self.journal
            .lock()
            .expect("journal lock")
            .run
            .step(key)
            .cloned()
    }

    pub(crate) fn primary(&self) -> &EngineNode {
        self.nodes
            .iter()
            .find(|n| n.info.primary)
            .unwrap_or(&self.nodes[0])
    }

    pub(crate) fn node_named(&self, name: &str) -> Option<&EngineNode> {
        self.nodes
            .iter()
            .find(|n| n.info.name.eq_ignore_ascii_case(name))
    }

    /// Marks the outage's start at the first service stop.
    pub(crate) fn outage_begins(&self) -> Result<(), StepError> {
        self.journal_update(|r| {
            if r.outage_started.is_none() {
                r.outage_started = Some(now());
            }
        })?;
        Ok(())
    }

    pub(crate) fn mark(&self, id: &str, f: impl FnOnce(&mut Step)) -> Result<Step, Failure> {
        let mut journal = self.journal.lock().expect("journal lock");
        journal.update_step(id, f).map_err(|e| Failure {
            step: id.to_string(),
            message: e.to_string(),
        })?;
        Ok(journal.run.step(id).cloned().expect("step exists"))
    }

    /// Marks a forward step the rollback or the undo reversed (when it had been reached).
    pub(crate) fn mark_undone(&self, id: &StepId) {
        if matches!(
            self.state_of(id),
            Some(StepState::Done | StepState::Running | StepState::Failed)
        ) {
            let _ = self.mark(&id.key(), |s| {
                s.state = StepState::Undone;
                Record::UndoneAt(now()).write(s);
            });
        }
    }

    // ------------------------------------------------------------------ steps

    /// Runs one step unless it is already settled (or not in this run); journals its start
    /// and end.
    pub(crate) async fn step(
        &self,
        id: &StepId,
        body: impl Future<Output = StepResult>,
    ) -> Result<(), Failure> {
        let key = id.key();
        match self.state_of(id) {
            None => return Ok(()),
            Some(s) if s.is_settled() => return Ok(()),
            Some(_) => {}
        }
        let batched = self.batched.lock().expect("batch lock").contains(&key);
        // Found `running`: octoup died in this step; see recovery.rs. (A batched step was
        // marked running a moment ago by `each`, for every node at once.)
        let interrupted = self
            .step_now(&key)
            .filter(|s| s.state == StepState::Running && !batched);
        let started = if batched {
            self.step_now(&key).expect("step exists")
        } else {
            self.mark(&key, start_step)?
        };
        self.events.step_started(&started);
        let result = match interrupted {
            Some(previous) => match self.recover_interrupted(id, &previous).await {
                Some(found) => Ok(found),
                None => body.await,
            },
            None => body.await,
        };
        let finished = self.mark_maybe_later(&key, batched, |s| {
            s.finished = Some(now());
            match &result {
                Ok(Done::Ok(detail)) => {
                    s.state = StepState::Done;
                    if !detail.is_empty() {
                        Record::Detail(detail.clone()).write(s);
                    }
                }
                Ok(Done::Skipped(why)) => {
                    s.state = StepState::Skipped;
                    Record::Detail(why.clone()).write(s);
                }
                Err(e) => {
                    s.state = StepState::Failed;
                    s.error = Some(e.to_string());
                }
            }
        })?;
        self.log.note(&format!(
            "step {key}: {}{}",
            finished.state.as_str(),
            finished
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
        self.events.step_finished(&finished);
        result.map(|_| ()).map_err(|e| Failure::new(id, e))
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
        journal.save_view();
        Ok(journal.run.step(id).cloned().expect("step exists"))
    }

    /// Marks the fresh per-node steps of `kind` running with one journal write (with many
    /// nodes, one write per node would delay the last node's start by every other's fsync).
    fn start_together(&self, kind: StepKind) -> Result<Vec<String>, Failure> {
        let fresh: Vec<String> = self
            .nodes
            .iter()
            .map(|n| StepId::on(kind, &n.info.name))
            .filter(|id| {
                self.state_of(id)
                    .is_some_and(|s| !s.is_settled() && s != StepState::Running)
            })
            .map(|id| id.key())
            .collect();
        if fresh.len() < 2 {
            return Ok(Vec::new());
        }
        self.journal_update(|run| {
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

    /// Ends the batch `start_together` began. Its ends are in memory (and the `.live`
    /// view): the next journal write carries them, which is the next step's start, at once
    /// (a separate write here would put two more fsyncs between one phase's end and the
    /// next one's start). A crash before it finds the steps `running`, which the recovery
    /// rules check against the real state, as for a node whose step was still running.
    fn finish_together(&self, ids: &[String]) {
        let mut batched = self.batched.lock().expect("batch lock");
        for id in ids {
            batched.remove(id);
        }
    }

    /// A step of the whole installation.
    pub(crate) async fn once(&self, kind: StepKind) -> Result<(), Failure> {
        let id = StepId::once(kind);
        self.step(&id, self.body(kind, None)).await
    }

    /// A per-node step on one node.
    pub(crate) async fn on_node(&self, kind: StepKind, n: &EngineNode) -> Result<(), Failure> {
        let id = StepId::on(kind, &n.info.name);
        self.step(&id, self.body(kind, Some(n))).await
    }

    /// Runs a per-node step on every node at once; waits for all, then reports the first
    /// failure (never abandons a node half-way).
    pub(crate) async fn each(&self, kind: StepKind) -> Result<(), Failure> {
        let together = self.start_together(kind)?;
        let result = self.on_every_node(|n| self.on_node(kind, n)).await;
        self.finish_together(&together);
        result
    }

    /// Runs `one(node)` for every node at once, waits for all, and reports the first
    /// failure.
    pub(crate) async fn on_every_node<'a, F, Fut>(&'a self, one: F) -> Result<(), Failure>
    where
        F: Fn(&'a EngineNode) -> Fut,
        Fut: Future<Output = Result<(), Failure>> + 'a,
    {
        first_failure(join_all(self.nodes.iter().map(one)).await)
    }

    /// Walks a procedure ([`super::catalogue::FORWARD`], [`super::catalogue::ROLLBACK`]).
    pub(crate) async fn run_phases(&self, phases: &[Phase]) -> Result<(), Failure> {
        for phase in phases {
            // A stop (Ctrl-C) is honoured here, between phases: never inside a step.
            if self.events.stop_requested() {
                self.log.note("stop requested: stopping at this safe point");
                return Err(Failure::stop());
            }
            self.window_allows(phase)?;
            self.run_phase(*phase).await?;
        }
        self.note_overrun();
        Ok(())
    }

    async fn run_phase(&self, phase: Phase) -> Result<(), Failure> {
        match phase {
            Phase::Step(StepKind::ReleaseRollbackPoint, _) if !self.layout().holds_point => Ok(()),
            Phase::Step(kind, Scope::Once) => self.once(kind).await,
            Phase::Step(kind, Scope::EachNode) => self.each(kind).await,
            Phase::Step(kind, Scope::Primary) => self.on_node(kind, self.primary()).await,
            Phase::Step(kind, Scope::EachNodeCanary) => {
                if self.config.cluster.canary && self.nodes.len() > 1 {
                    self.on_node(kind, self.primary()).await?;
                }
                self.each(kind).await
            }
            Phase::DatabaseBeforeOutage => {
                for &kind in self.layout().before_outage {
                    self.once(kind).await?;
                }
                Ok(())
            }
            Phase::BackupWhileInstalling => {
                let database = async {
                    for &kind in self.layout().in_outage {
                        self.once(kind).await?;
                    }
                    Ok(())
                };
                if self.rollback_installer().is_some() {
                    // A failed backup is undone by reinstalling the staged original version.
                    let (db, installs) = tokio::join!(database, self.each(StepKind::Install));
                    db.and(installs)
                } else {
                    database.await?;
                    self.each(StepKind::Install).await
                }
            }
        }
    }

    /// The run's strategy (recorded on the preflight step; native for a journal from
    /// before strategies).
    pub(crate) fn strategy(&self) -> Option<crate::database::Choice> {
        self.recorded(&StepId::once(StepKind::Preflight), Step::strategy)
    }

    /// Where the run's database steps go.
    pub(crate) fn layout(&self) -> Layout {
        Layout::of_choice(self.strategy().as_ref())
    }

    /// The staged installer of the original version, when the run staged one.
    pub(crate) fn rollback_installer(&self) -> Option<std::path::PathBuf> {
        let id = StepId::once(StepKind::StageRollback);
        if self.state_of(&id) != Some(StepState::Done) {
            return None;
        }
        self.recorded(&id, Step::recorded_path)
    }

    /// The drain deadline: one for every node, from when the first one starts draining.
    pub(crate) async fn drain_deadline(&self) -> Deadline {
        *self
            .drain_deadline
            .get_or_init(|| async {
                Deadline::after(Duration::from_secs(self.config.drain.wait_seconds))
            })
            .await
    }
}

pub(crate) fn first_failure(results: Vec<Result<(), Failure>>) -> Result<(), Failure> {
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

/// A step begins: running from now, no end or error yet.
pub(crate) fn start_step(s: &mut Step) {
    s.state = StepState::Running;
    s.started = Some(now());
    s.finished = None;
    s.error = None;
}
