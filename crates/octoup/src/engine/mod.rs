//! The upgrade engine: the procedure for N nodes (one node is a cluster of one), journaled
//! step by step so a failure undoes or pauses cleanly and a crash resumes.
//!
//! - [`catalogue`]: the step kinds, their properties, and the one written order.
//! - `executor`: runs a step or a phase, journals its start and end.
//! - `steps/`: the step bodies, one file per group.
//! - `finish`, `undo`, [`rollback`], `recovery`: how a run ends, is put back, rolled back,
//!   or continued after a crash.
//! - [`preflight`], [`plan`], [`report`]: what is found before, planned, and reported.
//!
//! A failure before the database upgrade is undone (original binaries put back where they
//! changed, nodes started, watchdogs, drain and maintenance restored). A failure at or
//! after it stops in a safe state (`paused`) with the next step in the journal; a re-run
//! continues from there. Every step reads the real state before acting, so a step found
//! "running" after a crash is finished, not blindly repeated.

// Step errors are the cold path, and carry versions and paths for the operator: boxing them
// would only make every variant harder to read.
#![allow(clippy::result_large_err)]

pub mod catalogue;
pub mod confirm;
mod error;
mod executor;
pub mod finalize;
mod finish;
pub mod milestone;
pub mod plan;
pub use crate::doctor::preflight;
mod record;
mod recovery;
pub mod report;
pub mod rollback;
pub mod seams;
pub mod status;
mod steps;
#[cfg(test)]
mod tests;
mod undo;
pub mod upgrade_record;
pub mod window;

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Config, ConfigError, EnvOverrides, NodeConfig};
use crate::installer::cache::{InstallerCache, InstallerSettings};
use crate::journal::{
    Direction, FORMAT, Journal, JournalError, Run, RunNode, RunStatus, StateDir, Step, StepState,
    new_run_id,
};
use crate::nodes::{NodeAgent, WatchdogInfo};
use crate::process::clock::now;
use crate::process::runner::RunLog;
use crate::progress::{NoProgress, Progress};
use crate::version::Version;

use catalogue::{FORWARD, StepId, StepKind};
pub use confirm::{Answer, Confirmation};
pub use error::StepError;
use executor::{Engine, World};
pub use milestone::Milestone;
use preflight::{Connection, Facts, PreflightError, TargetChoice, preflight};
pub use record::Record;
use report::{NodeReport, Outcome, Report};
use seams::{ClusterApi, SqlDatabase};

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
    /// Last word before anything changes: any answer but yes ends the run with nothing
    /// changed.
    fn confirm(&self, _what: &Confirmation) -> Answer {
        Answer::Yes
    }
    /// Asked between phases: `true` stops the run at that safe point (the CLI's first
    /// Ctrl-C); a running step is never cancelled.
    fn stop_requested(&self) -> bool {
        false
    }
    /// A milestone of the run (plan ready, outage started or ended): for notifications.
    /// The run's ending is its report.
    fn milestone(&self, _milestone: &Milestone) {}
}

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
        from: Version,
        target: Version,
        asked: String,
    },
    #[error(
        "the unfinished run {run} names node {node}, which is not in the config any more. Restore the config the run started with, then run `octoup upgrade` again"
    )]
    UnknownNode { run: String, node: String },
    #[error("{0}")]
    Preflight(#[from] PreflightError),
    #[error(
        "there is no unfinished run in {} to resume; `octoup status` shows the last run, `octoup upgrade` starts a new one",
        state.display()
    )]
    NothingToResume { state: PathBuf },
    #[error(
        "run {run} is unfinished: it holds no released upgrade yet. Finish it (`octoup upgrade`) or roll it back (`octoup rollback`) first; `octoup status` shows where it stands"
    )]
    FinalizeUnfinished { run: String },
    #[error(
        "releasing the rollback point failed: {0}. It is still held (`octoup status`); fix the cause and run `octoup finalize` again, or drop it by hand (docs/database.md, \"Finalize\")"
    )]
    Finalize(String),
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
    /// Warnings accepted on the command line (`--accept ID`).
    pub accept: Vec<String>,
    /// `--until`: this run's hard end, instead of `[window]`.
    pub until: Option<crate::window::Until>,
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
        if let Some(journal) = finalize::reopen_held(&state)? {
            return resume(config, env, journal, options, events).await;
        }
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
    match finalize::release_expired(&state, &conn, &log).await {
        Ok(Some(released)) => {
            events.note(&format!("the last upgrade's rollback point: {released}"))
        }
        Ok(None) => {}
        Err(why) => {
            log.note(&format!("refused: {why}"));
            let mut report = Report::without_run(Outcome::Refused, "", "");
            report.error = Some(why);
            report.next_step = Some("Nothing was changed.".into());
            report.log = Some(log.path().to_path_buf());
            return Ok(report);
        }
    }
    events.note("preflight: checking the server, the nodes, the target and the license");
    let acceptance = crate::doctor::acceptance(&conn.config, &options.accept);
    let facts = match preflight(&conn, options.to.as_deref(), &acceptance).await {
        Ok(f) => f,
        Err(PreflightError::Config(e)) => return Err(e.into()),
        Err(e) if e.is_config() => return Err(e.into()),
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
        .and_then(|t| t.target.as_ref())
        .map(ToString::to_string)
        .unwrap_or_default();
    if facts.findings.has_blockers() {
        let blockers = facts.blockers();
        log.note(&format!("refused: {}", blockers.join("; ")));
        let mut report = Report::without_run(Outcome::Refused, &facts.version, &to);
        report.error = Some(blockers.join("\n"));
        report.warnings = facts.warnings();
        report.findings = facts.findings.clone();
        report.database = facts.database.clone();
        report.next_step =
            Some("Fix the blockers above (nothing was changed), then run `octoup upgrade` again. `octoup plan` shows everything the preflight found.".into());
        report.log = Some(log.path().to_path_buf());
        return Ok(report);
    }
    let (Some(choice), Ok(from)) = (
        target.clone().filter(|t| t.target.is_some()),
        facts.version.parse::<Version>(),
    ) else {
        return Ok(up_to_date(&facts, target.as_ref()));
    };
    let history = state.runs()?;
    let rehearsals = crate::rehearsal::recorded(&conn.config);
    let rehearsed = choice
        .target
        .as_ref()
        .and_then(|t| crate::rehearsal::newest_go(&rehearsals, t));
    let window = match window::admit(
        &conn.config,
        options.until,
        facts.nodes.len(),
        &history,
        catalogue::Layout::of_choice(facts.strategy().as_ref()),
        facts.database.as_ref(),
        rehearsed,
    ) {
        Ok(w) => w,
        Err((why, record)) => {
            log.note(&format!("refused: {why}"));
            let mut report = Report::without_run(Outcome::Refused, &facts.version, &to);
            report.error = Some(why);
            report.window = record;
            report.next_step = Some("Nothing was changed.".into());
            report.log = Some(log.path().to_path_buf());
            return Ok(report);
        }
    };
    let estimate = plan::make_plan(&conn.config, facts.clone(), &history, rehearsed);
    let confirmation = Confirmation {
        action: confirm::Action::Upgrade,
        run: None,
        from: facts.version.clone(),
        to: to.clone(),
        nodes: facts.nodes.iter().map(|n| n.name.clone()).collect(),
        outage_estimate_seconds: Some(estimate.outage_estimate_seconds),
        drain_wait_seconds: Some(conn.config.drain.wait_seconds),
        outage_ongoing: false,
        continues_at: None,
        restore: None,
    };
    if let Some(refusal) = events.confirm(&confirmation).refusal() {
        log.note(&format!("not confirmed: {refusal}"));
        let mut report = Report::without_run(Outcome::Refused, &facts.version, &to);
        report.error = Some(refusal.to_string());
        report.next_step = Some("Nothing was changed.".into());
        report.log = Some(log.path().to_path_buf());
        return Ok(report);
    }
    events.milestone(&Milestone::plan_ready(
        &run_id,
        &up_to_date(&facts, None),
        &to,
        estimate.outage_estimate_seconds,
    ));
    let before = Before::from_facts(&facts, from, &choice);
    let journal = create_run(&state, &run_id, &digest, &before, &conn.config, &log)?;
    let nodes = journal
        .run
        .nodes
        .iter()
        .cloned()
        .zip(facts.nodes.iter().map(|f| f.config.clone()))
        .collect();
    let world = production_world(&conn, nodes, &journal.run)?;
    let engine = Engine::new(conn.config.clone(), state, journal, world, events, log);
    if let Some(w) = window {
        engine.begin_window(w);
    }
    for w in facts.warnings() {
        engine.events.note(&format!("warning: {w}"));
    }
    for id in facts.findings.accepted() {
        engine.events.note(&format!("accepted: {id}"));
    }
    let mut report = engine.run_forward().await;
    report.database = facts.database.clone();
    Ok(report)
}

/// Nothing to install: the report says so, with the nodes as they are.
fn up_to_date(facts: &Facts, target: Option<&TargetChoice>) -> Report {
    let mut report = Report::without_run(Outcome::UpToDate, &facts.version, &facts.version);
    report.warnings = facts.warnings();
    report.findings = facts.findings.clone();
    report.database = facts.database.clone();
    if let Some(t) = target
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
            serving: n.api_version.clone(),
        })
        .collect();
    report
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

/// The production seams: HTTP for the cluster, `sqlcmd` for the database, the download
/// cache for installers, and an agent per node.
fn production_world(
    conn: &Connection,
    nodes: Vec<(RunNode, NodeConfig)>,
    run: &Run,
) -> Result<World, EngineError> {
    let mut agents: Vec<(RunNode, Arc<dyn NodeAgent>)> = Vec::new();
    for (info, cfg) in nodes {
        let agent = conn.agent(&cfg, &info.name, &info.url)?;
        agents.push((info, agent));
    }
    let cluster = ClusterApi {
        main: conn.api.clone(),
        nodes: agents.iter().map(|(_, a)| a.clone()).collect(),
    };
    // The strategy is the journal's: a resumed run goes on with the one it began with.
    let choice = run
        .step(StepKind::Preflight.name())
        .and_then(Step::strategy)
        .unwrap_or_else(|| {
            crate::database::Choice::native(
                "a journal from before database strategies",
                conn.config.database.compression.unwrap_or(false),
            )
        });
    let database = SqlDatabase {
        side: crate::database::DatabaseSide::new(&conn.config, &choice)?,
        runner: conn.runner.clone(),
    };
    let installers = InstallerCache::new(
        InstallerSettings::from_config(&conn.config),
        conn.http.clone(),
        conn.runner.clone(),
    );
    Ok(World {
        cluster: Arc::new(cluster),
        database: Arc::new(database),
        installers: Arc::new(installers),
        nodes: agents,
    })
}

/// How the installation looked before the run: what the run starts from and what the undo
/// and the final restore go back to.
pub(crate) struct Before {
    pub from: Version,
    pub target: Version,
    pub path: Vec<Version>,
    pub why: String,
    pub warnings: Vec<String>,
    /// Warnings the operator accepted by id.
    pub accepted: Vec<String>,
    pub maintenance: bool,
    pub nodes: Vec<NodeBefore>,
    /// The database strategy the checks chose (native when there were none to make).
    pub strategy: crate::database::Choice,
}

pub(crate) struct NodeBefore {
    pub info: RunNode,
    pub drained: bool,
    pub watchdog: Option<WatchdogInfo>,
}

impl Before {
    fn from_facts(facts: &Facts, from: Version, choice: &TargetChoice) -> Before {
        let primary = facts
            .primary()
            .map(|n| n.name.clone())
            .or_else(|| facts.nodes.first().map(|n| n.name.clone()))
            .unwrap_or_default();
        Before {
            from,
            target: choice
                .target
                .clone()
                .unwrap_or_else(|| Version::new(0, 0, 0)),
            path: choice.path.clone(),
            why: choice.why.clone(),
            warnings: facts.warnings(),
            accepted: facts.findings.accepted(),
            maintenance: facts.maintenance,
            strategy: facts.strategy().unwrap_or_else(|| {
                crate::database::Choice::native("no database checks were made", false)
            }),
            nodes: facts
                .nodes
                .iter()
                .map(|n| NodeBefore {
                    info: RunNode {
                        name: n.name.clone(),
                        id: n.id.clone(),
                        url: n.url.clone(),
                        primary: n.name == primary,
                    },
                    drained: n.drained,
                    watchdog: n.watchdog.clone(),
                })
                .collect(),
        }
    }
}

/// The journal of a new run: every step of [`FORWARD`] planned, with what the undo and the
/// final restore need recorded up front.
pub(crate) fn new_run(
    run_id: &str,
    digest: &str,
    before: &Before,
    config: &Config,
    log: PathBuf,
) -> Run {
    let names: Vec<String> = before.nodes.iter().map(|n| n.info.name.clone()).collect();
    let primary = before
        .nodes
        .iter()
        .find(|n| n.info.primary)
        .map(|n| n.info.name.clone())
        .unwrap_or_else(|| names.first().cloned().unwrap_or_default());
    let layout = catalogue::Layout::of(before.strategy.strategy);
    let mut steps: Vec<Step> =
        catalogue::steps(FORWARD, &names, &primary, config.rollback.enabled, layout)
            .into_iter()
            .map(|id| Step::new(id.kind.name(), id.node.as_deref()))
            .collect();
    let mut record = |id: StepId, what: Record| {
        if let Some(s) = steps.iter_mut().find(|s| s.id == id.key()) {
            what.write(s);
        }
    };
    record(
        StepId::once(StepKind::Preflight),
        Record::Warnings(before.warnings.clone()),
    );
    record(
        StepId::once(StepKind::Preflight),
        Record::Accepted(before.accepted.clone()),
    );
    record(
        StepId::once(StepKind::Preflight),
        Record::Why(before.why.clone()),
    );
    record(
        StepId::once(StepKind::Preflight),
        Record::Strategy(before.strategy.clone()),
    );
    for n in &before.nodes {
        record(
            StepId::on(StepKind::Drain, &n.info.name),
            Record::WasOn(n.drained),
        );
        if let Some(w) = &n.watchdog {
            let id = StepId::on(StepKind::DeleteWatchdog, &n.info.name);
            record(id.clone(), Record::Existed(w.enabled));
            record(id, Record::Watchdog(w.clone()));
        }
    }
    record(
        StepId::once(StepKind::MaintenanceOn),
        Record::WasOn(before.maintenance),
    );
    for s in steps
        .iter_mut()
        .filter(|s| StepKind::parse(&s.name).is_some_and(recovery::tracks_launch))
    {
        Record::TracksChild.write(s);
    }
    if let Some(p) = steps
        .iter_mut()
        .find(|s| s.name == StepKind::Preflight.name())
    {
        p.state = StepState::Done;
        p.started = Some(now());
        p.finished = Some(now());
    }
    Run {
        format: FORMAT,
        id: run_id.to_string(),
        created: now(),
        updated: now(),
        pid: std::process::id(),
        config_digest: digest.to_string(),
        from: before.from.clone(),
        target: before.target.clone(),
        path: before.path.clone(),
        nodes: before.nodes.iter().map(|n| n.info.clone()).collect(),
        status: RunStatus::Running,
        direction: Direction::Forward,
        steps,
        outage_started: None,
        outage_ended: None,
        error: None,
        next_step: None,
        log,
    }
}

fn create_run(
    state: &StateDir,
    run_id: &str,
    digest: &str,
    before: &Before,
    config: &Config,
    log: &RunLog,
) -> Result<Journal, EngineError> {
    let run = new_run(run_id, digest, before, config, log.path().to_path_buf());
    log.note(&format!(
        "run {run_id}: {} → {} on {}",
        run.from,
        run.target,
        run.nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
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
        let same = asked.parse::<Version>().is_ok_and(|a| a == run.target);
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
    let world = production_world(&conn, nodes, &journal.run)?;
    let config_changed = digest != run.config_digest;
    let engine = Engine::new(conn.config.clone(), state, journal, world, events, log);
    if options.until.is_some() {
        engine.until_ignored();
    }
    Ok(engine.resume(options.rollback, config_changed).await)
}

/// `octoup status`: the unfinished run, else the last one.
pub fn last_run(config: &Config) -> Result<Option<(Run, PathBuf)>, EngineError> {
    let state = StateDir::new(&config.state.dir);
    Ok(state.last()?.map(|r| {
        let path = state.run_path(&r.id);
        (r, path)
    }))
}

/// `octoup plan`: the preflight's findings and the steps, changing nothing; or, when a run
/// is unfinished, what `octoup upgrade` would do next with it.
pub async fn plan(
    config: Config,
    env: &EnvOverrides,
    to: Option<&str>,
    accept: &[String],
) -> Result<plan::PlanView, EngineError> {
    let state = StateDir::new(&config.state.dir);
    if let Some(journal) = state.unfinished()? {
        return Ok(plan::PlanView::Unfinished(Box::new(plan::resume_plan(
            &journal.run,
            state.live_pid(),
        ))));
    }
    let history = state.runs()?;
    let log = Arc::new(RunLog::disabled());
    let conn = Connection::new(config, env, log)?;
    let acceptance = crate::doctor::acceptance(&conn.config, accept);
    let facts = preflight(&conn, to, &acceptance).await?;
    let rehearsals = crate::rehearsal::recorded(&conn.config);
    let rehearsed = facts
        .target
        .as_ref()
        .and_then(|t| t.target.as_ref())
        .and_then(|t| crate::rehearsal::newest_go(&rehearsals, t));
    Ok(plan::PlanView::Fresh(Box::new(plan::make_plan(
        &conn.config,
        facts,
        &history,
        rehearsed,
    ))))
}

/// `octoup doctor`: every preflight check, changing nothing.
pub async fn doctor(
    config: Config,
    env: &EnvOverrides,
    to: Option<&str>,
    accept: &[String],
) -> Result<crate::doctor::DoctorReport, EngineError> {
    let log = Arc::new(RunLog::disabled());
    let conn = Connection::new(config, env, log)?;
    let acceptance = crate::doctor::acceptance(&conn.config, accept);
    let facts = preflight(&conn, to, &acceptance).await?;
    Ok(crate::doctor::DoctorReport::from_facts(&facts))
}

/// `octoup verify`: the checks after the start, on demand. The expected version is what
/// the cluster serves, or the target of the last upgraded run when that is newer.
pub async fn verify(
    config: Config,
    env: &EnvOverrides,
    options: crate::doctor::verify::VerifyOptions,
) -> Result<crate::doctor::verify::VerifyReport, EngineError> {
    let last_target = StateDir::new(&config.state.dir)
        .last()?
        .filter(|r| r.status == RunStatus::Upgraded)
        .map(|r| r.target);
    let conn = Connection::new(config, env, Arc::new(RunLog::disabled()))?;
    let served: Option<Version> = conn
        .api
        .root()
        .await
        .map_err(PreflightError::from)?
        .version
        .parse()
        .ok();
    let expected = match (served, last_target) {
        (Some(s), Some(t)) => s.max(t),
        (Some(v), None) | (None, Some(v)) => v,
        (None, None) => {
            return Err(PreflightError::Other(
                "the server's /api Version is not a version and no upgraded run is recorded: octoup cannot tell which version to expect".into(),
            )
            .into());
        }
    };
    Ok(crate::doctor::verify::on_demand(&conn, expected, options).await)
}
