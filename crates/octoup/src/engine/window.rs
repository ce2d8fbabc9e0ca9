//! What fits in the maintenance window: estimates of the steps left (measured where octoup
//! has figures, the catalogue's defaults otherwise), the refusal before anything changes,
//! the checks between phases up to the point of no return (the database upgrade), and the
//! overrun noted after it (a run never aborts past that point).
//!
//! The hard end and the figures are journaled on the preflight step ([`Record::Window`]), so
//! a resumed run honours the same end with the same figures.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::journal::{Run, RunStatus, Step};
use crate::process::clock::{Deadline, human_seconds, now, seconds, seconds_between};
use crate::window::{HardEnd, Until};

use super::catalogue::{FORWARD, Layout, Phase, Scope, StepId, StepKind};
use super::error::StepError;
use super::executor::{Engine, Failure};
use super::record::Record;

/// Where step durations come from. Sources are asked in order; the first that knows a kind
/// wins. A rehearsal (`octoup rehearse`) is asked first, for the database upgrade.
pub trait EstimateSource: Send + Sync {
    /// Names the figures: `run 20261202-…`, `defaults`.
    fn label(&self) -> String;
    fn seconds(&self, kind: StepKind) -> Option<f64>;
}

/// Measured step durations (the longest per kind) of the newest upgraded run.
pub(crate) struct History {
    run: String,
    seconds: BTreeMap<String, f64>,
}

impl History {
    pub(crate) fn newest(history: &[Run]) -> Option<History> {
        let run = history
            .iter()
            .rev()
            .find(|r| r.status == RunStatus::Upgraded)?;
        let mut seconds: BTreeMap<String, f64> = BTreeMap::new();
        for s in &run.steps {
            if let Some(secs) = s.seconds() {
                let e = seconds.entry(s.name.clone()).or_insert(0.0);
                *e = e.max(secs);
            }
        }
        Some(History {
            run: run.id.clone(),
            seconds,
        })
    }
}

impl EstimateSource for History {
    fn label(&self) -> String {
        format!("run {}", self.run)
    }
    fn seconds(&self, kind: StepKind) -> Option<f64> {
        self.seconds.get(kind.name()).copied()
    }
}

/// The migrations as a rehearsal measured them on a copy of this database (with the start
/// of the rehearsal server: an upper bound).
pub(crate) struct Rehearsed {
    label: String,
    seconds: f64,
}

impl Rehearsed {
    pub(crate) fn new(r: &crate::rehearsal::Rehearsal) -> Option<Rehearsed> {
        Some(Rehearsed {
            label: rehearsal_label(r),
            seconds: r.migration_seconds()?,
        })
    }
}

/// `rehearsal <id> on <date>`.
pub(crate) fn rehearsal_label(r: &crate::rehearsal::Rehearsal) -> String {
    format!(
        "rehearsal {} on {}",
        r.id,
        r.created.to_zoned(jiff::tz::TimeZone::UTC).date()
    )
}

impl EstimateSource for Rehearsed {
    fn label(&self) -> String {
        self.label.clone()
    }
    fn seconds(&self, kind: StepKind) -> Option<f64> {
        (kind == StepKind::UpgradeDatabase).then_some(self.seconds)
    }
}

/// The catalogue's estimates for a mid-size installation.
pub(crate) struct Defaults;

impl EstimateSource for Defaults {
    fn label(&self) -> String {
        "defaults".into()
    }
    fn seconds(&self, kind: StepKind) -> Option<f64> {
        Some(kind.default_estimate())
    }
}

/// The database steps from the size of the data and a throughput: the one the newest
/// upgraded run measured (SQL Server's own figures, recorded with its backup), else the
/// reference's rates (about 75 MB/s plain, twice that compressed; reference §4). The
/// backup and its verification grow with the data; nothing else here does.
pub(crate) struct Throughput {
    label: String,
    /// From a run's own figures (else the reference's rate).
    measured: bool,
    backup: f64,
    verify: f64,
}

/// Plain and compressed backup rates when nothing was measured (reference §4, **inf**).
const PLAIN_BYTES_PER_SECOND: f64 = 75e6;

impl Throughput {
    pub(crate) fn new(history: &[Run], used_bytes: u64, compression: bool) -> Throughput {
        let measured = history
            .iter()
            .rev()
            .filter(|r| r.status == RunStatus::Upgraded)
            .find_map(|r| {
                let backup = r.step(StepKind::BackupDatabase.name())?;
                let Some(crate::database::RollbackPoint::Backup {
                    bytes: Some(b),
                    seconds: Some(secs),
                    ..
                }) = backup.rollback_point()
                else {
                    return None;
                };
                let verify = r
                    .step(StepKind::VerifyBackup.name())
                    .and_then(|s| s.seconds())
                    .unwrap_or(secs);
                (b > 0 && secs > 0.0).then(|| (r.id.clone(), b as f64 / secs, verify / secs))
            });
        let size = used_bytes as f64;
        match measured {
            Some((run, rate, verify_ratio)) => Throughput {
                label: format!("the data size at run {run}'s throughput"),
                measured: true,
                backup: size / rate,
                verify: size / rate * verify_ratio,
            },
            None => {
                let rate = PLAIN_BYTES_PER_SECOND * if compression { 2.0 } else { 1.0 };
                Throughput {
                    label: format!("the data size at {:.0} MB/s", rate / 1e6),
                    measured: false,
                    backup: size / rate,
                    // VERIFYONLY re-reads the file: about a plain backup's time, less when
                    // compressed.
                    verify: size / PLAIN_BYTES_PER_SECOND / if compression { 2.0 } else { 1.0 },
                }
            }
        }
    }
}

impl EstimateSource for Throughput {
    fn label(&self) -> String {
        self.label.clone()
    }
    fn seconds(&self, kind: StepKind) -> Option<f64> {
        match kind {
            StepKind::BackupDatabase => Some(self.backup),
            StepKind::VerifyBackup => Some(self.verify),
            _ => None,
        }
    }
}

/// The sources in order, ending with [`Defaults`].
pub struct Estimates {
    sources: Vec<Box<dyn EstimateSource>>,
}

impl Estimates {
    /// Measured durations of earlier runs where there are any, defaults for the rest.
    pub(crate) fn from_history(history: &[Run]) -> Estimates {
        let mut sources: Vec<Box<dyn EstimateSource>> = Vec::new();
        if let Some(h) = History::newest(history) {
            sources.push(Box::new(h));
        }
        sources.push(Box::new(Defaults));
        Estimates { sources }
    }

    /// With the database's used size known, its backup and verification are estimated
    /// from it (see [`Throughput`]) before anything else.
    pub(crate) fn with_database(
        mut self,
        history: &[Run],
        database: Option<&crate::doctor::DatabaseFacts>,
    ) -> Estimates {
        if let Some(d) = database
            && let Some(used) = d.data_used_bytes
        {
            let compression = d.strategy.as_ref().is_some_and(|c| c.compression);
            let t = Throughput::new(history, used, compression);
            // A measured throughput beats every other figure; the reference's rate only
            // the defaults (a run's measured duration is for its own size, but measured).
            let at = if t.measured {
                0
            } else {
                self.sources.len() - 1
            };
            self.sources.insert(at, Box::new(t));
        }
        self
    }

    /// With a go rehearsal to the target, the database upgrade is what it measured.
    pub(crate) fn with_rehearsal(mut self, r: Option<&crate::rehearsal::Rehearsal>) -> Estimates {
        if let Some(source) = r.and_then(Rehearsed::new) {
            self.sources.insert(0, Box::new(source));
        }
        self
    }

    fn pick(&self, kind: StepKind) -> (f64, usize) {
        self.sources
            .iter()
            .enumerate()
            .find_map(|(i, s)| s.seconds(kind).map(|secs| (secs, i)))
            .unwrap_or((kind.default_estimate(), self.sources.len()))
    }

    pub fn seconds(&self, kind: StepKind) -> f64 {
        self.pick(kind).0
    }

    /// The source of the figures in general: the first that knows a step every run has
    /// (a [`Throughput`] knows only the database's).
    fn main_index(&self) -> usize {
        self.pick(StepKind::Install).1
    }

    /// The main source's label (`defaults` when none gave anything).
    pub fn main_label(&self) -> String {
        self.sources
            .get(self.main_index())
            .map(|s| s.label())
            .unwrap_or_else(|| Defaults.label())
    }

    /// Which figures the steps up to the end of the outage use: `run X`, or `run X;
    /// defaults for stage-rollback-installer` — the main source first.
    pub fn figures(&self, layout: Layout) -> String {
        let mut by_source: Vec<Vec<&str>> = vec![Vec::new(); self.sources.len() + 1];
        for kind in outage_kinds(layout) {
            by_source[self.pick(kind).1].push(kind.name());
        }
        let main = self.main_index();
        let mut used: Vec<usize> = (0..by_source.len())
            .filter(|&i| !by_source[i].is_empty())
            .collect();
        used.sort_by_key(|&i| (i != main, i));
        let label = |i: usize| {
            self.sources
                .get(i)
                .map(|s| s.label())
                .unwrap_or_else(|| Defaults.label())
        };
        used.iter()
            .enumerate()
            .map(|(n, &i)| {
                if n == 0 {
                    label(i)
                } else {
                    format!("{} for {}", label(i), by_source[i].join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The figure of every kind up to the end of the outage, as the journal keeps them.
    fn table(&self, layout: Layout) -> BTreeMap<String, f64> {
        outage_kinds(layout)
            .map(|k| (k.name().to_string(), self.seconds(k)))
            .collect()
    }
}

/// Every kind from the first step to the end of the outage (verify).
pub(crate) fn outage_kinds(layout: Layout) -> impl Iterator<Item = StepKind> {
    FORWARD[..=verify_index()]
        .iter()
        .flat_map(move |p| match *p {
            Phase::Step(k, _) => vec![k],
            Phase::DatabaseBeforeOutage => layout.before_outage.to_vec(),
            Phase::BackupWhileInstalling => {
                let mut v = layout.in_outage.to_vec();
                v.push(StepKind::Install);
                v
            }
        })
        .filter(|k| *k != StepKind::Preflight)
}

fn index_of(kind: StepKind) -> usize {
    FORWARD
        .iter()
        .position(|p| matches!(p, Phase::Step(k, _) if *k == kind))
        .expect("the kind is in FORWARD")
}

fn verify_index() -> usize {
    index_of(StepKind::Verify)
}

/// The phase's position in [`FORWARD`] (`None` for a rollback phase).
fn forward_index(phase: &Phase) -> Option<usize> {
    FORWARD.iter().position(|p| match (p, phase) {
        (Phase::Step(a, _), Phase::Step(b, _)) => a == b,
        (Phase::BackupWhileInstalling, Phase::BackupWhileInstalling) => true,
        (Phase::DatabaseBeforeOutage, Phase::DatabaseBeforeOutage) => true,
        _ => false,
    })
}

/// How the remaining work runs: what overlaps, what runs twice.
struct Shape<'a> {
    seconds: &'a dyn Fn(StepKind) -> f64,
    settled: &'a dyn Fn(StepKind) -> bool,
    /// The database backup overlaps the installs.
    overlap: bool,
    /// The primary starts alone first.
    canary: bool,
    /// Where the strategy's database steps go.
    layout: Layout,
}

impl Shape<'_> {
    /// Seconds of [`FORWARD`] from phase `from` to the end of the outage (verify): per-node
    /// steps run on every node at once, so a phase takes one step's time.
    fn remaining(&self, from: usize) -> f64 {
        let step = |k: StepKind| {
            if (self.settled)(k) {
                0.0
            } else {
                (self.seconds)(k)
            }
        };
        FORWARD
            .iter()
            .enumerate()
            .take(verify_index() + 1)
            .skip(from)
            .map(|(_, p)| match *p {
                Phase::Step(StepKind::Preflight, _) => 0.0,
                Phase::Step(k, Scope::EachNodeCanary) if self.canary => 2.0 * step(k),
                Phase::Step(k, _) => step(k),
                Phase::DatabaseBeforeOutage => {
                    self.layout.before_outage.iter().map(|&k| step(k)).sum()
                }
                Phase::BackupWhileInstalling => {
                    let b: f64 = self.layout.in_outage.iter().map(|&k| step(k)).sum();
                    let i = step(StepKind::Install);
                    if self.overlap { b.max(i) } else { b + i }
                }
            })
            .sum()
    }
}

/// The window of one run as the journal keeps it (on the preflight step) and the report
/// shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WindowRecord {
    /// `[window] Sat, Sun 02:00–04:00 Europe/London` or `--until …`.
    pub source: String,
    /// The hard end.
    pub ends_at: Timestamp,
    /// The same, as people read it in the window's zone.
    pub ends: String,
    pub zone: String,
    /// The estimate, when the run began, of the work up to the end of the outage.
    pub estimate_seconds: f64,
    /// Which figures that estimate used (`run …`, `defaults`, or both).
    pub figures: String,
    /// The figure per step kind (what a resumed run estimates with).
    pub seconds: BTreeMap<String, f64>,
    /// How far past the end the run went (after the point of no return), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrun_seconds: Option<f64>,
}

/// What `octoup plan` says about the configured window now.
#[derive(Debug, Clone, Serialize)]
pub struct WindowFit {
    pub source: String,
    /// Inside the window now (else it `opens`).
    pub inside: bool,
    pub ends: Option<String>,
    pub opens: Option<String>,
    pub seconds_left: f64,
    /// The work up to the end of the outage.
    pub estimate_seconds: f64,
    pub figures: String,
    pub fits: bool,
}

/// The estimate for a run about to begin, with the config's shape.
fn estimate_for(config: &Config, nodes: usize, est: &Estimates, layout: Layout) -> f64 {
    let rollback = config.rollback.enabled;
    Shape {
        seconds: &|k| est.seconds(k),
        settled: &|k| k == StepKind::StageRollback && !rollback,
        overlap: rollback,
        canary: config.cluster.canary && nodes > 1,
        layout,
    }
    .remaining(0)
}

/// `octoup plan`: where now falls in `[window]` and whether the work fits (`None` without
/// a window).
pub(crate) fn planned(
    config: &Config,
    nodes: usize,
    est: &Estimates,
    at: Timestamp,
    layout: Layout,
) -> Option<WindowFit> {
    let estimate = estimate_for(config, nodes, est, layout);
    let fit = |source: String, ends: Option<String>, opens: Option<String>, left: f64| WindowFit {
        inside: ends.is_some(),
        fits: ends.is_some() && estimate <= left,
        source,
        ends,
        opens,
        seconds_left: left,
        estimate_seconds: estimate,
        figures: est.figures(layout),
    };
    match crate::window::hard_end(&config.window, None, at) {
        Ok(None) => None,
        Ok(Some(end)) => Some(fit(
            end.source.clone(),
            Some(end.shown()),
            None,
            seconds_between(at, end.at),
        )),
        Err(outside) => Some(fit(
            format!("[window] {}", outside.schedule),
            None,
            outside.opens,
            0.0,
        )),
    }
}

/// Before anything changes: the run's window record, `Ok(None)` without a window, or why
/// the run must not begin (outside the window, or the work does not fit before its end).
pub(crate) fn admit(
    config: &Config,
    until: Option<Until>,
    nodes: usize,
    history: &[Run],
    layout: Layout,
    database: Option<&crate::doctor::DatabaseFacts>,
    rehearsal: Option<&crate::rehearsal::Rehearsal>,
) -> Result<Option<WindowRecord>, (String, Option<WindowRecord>)> {
    let at = now();
    let end = match crate::window::hard_end(&config.window, until, at) {
        Ok(None) => return Ok(None),
        Ok(Some(end)) => end,
        Err(outside) => return Err((outside.to_string(), None)),
    };
    let est = Estimates::from_history(history)
        .with_database(history, database)
        .with_rehearsal(rehearsal);
    let estimate = estimate_for(config, nodes, &est, layout);
    let record = record_for(&end, estimate, &est, layout);
    let left = seconds_between(at, end.at);
    if estimate > left {
        let why = format!(
            "{}: nothing was changed. Run `octoup upgrade` in a longer window (or give a later --until); `octoup plan` shows the estimate per step",
            too_short(
                &record,
                left,
                estimate,
                "the work up to the end of the outage"
            )
        );
        return Err((why, Some(record)));
    }
    Ok(Some(record))
}

fn record_for(end: &HardEnd, estimate: f64, est: &Estimates, layout: Layout) -> WindowRecord {
    WindowRecord {
        source: end.source.clone(),
        ends_at: end.at,
        ends: end.shown(),
        zone: end.zone_name.clone(),
        estimate_seconds: estimate,
        figures: est.figures(layout),
        seconds: est.table(layout),
        overrun_seconds: None,
    }
}

/// `the maintenance window (SOURCE) ends at END, in LEFT, but WHAT is estimated at E
/// (figures: F)`.
fn too_short(w: &WindowRecord, left: f64, estimate: f64, what: &str) -> String {
    if left <= 0.0 {
        // Reads on: "… ended at END before the point of no return".
        return format!("the maintenance window ({}) ended at {}", w.source, w.ends);
    }
    format!(
        "the maintenance window ({}) ends at {}, in {}, but {what} is estimated at {} (figures: {})",
        w.source,
        w.ends,
        human_seconds(left),
        human_seconds(estimate),
        w.figures
    )
}

/// The journaled window of a run.
pub(crate) fn recorded(run: &Run) -> Option<WindowRecord> {
    run.step(StepKind::Preflight.name()).and_then(Step::window)
}

/// The window as the engine holds it: the record and its end on the engine's clock.
pub(crate) struct Active {
    record: WindowRecord,
    deadline: Deadline,
}

impl Engine {
    fn window(&self) -> Option<&Active> {
        self.window
            .get_or_init(|| {
                let record = recorded(&self.run())?;
                // The end on tokio's clock (paused in tests): later checks read no wall time.
                let deadline = Deadline::after(seconds(seconds_between(now(), record.ends_at)));
                Some(Active { record, deadline })
            })
            .as_ref()
    }

    /// Journals the window a new run begins with.
    pub(crate) fn begin_window(&self, record: WindowRecord) {
        let id = StepId::once(StepKind::Preflight);
        if let Err(e) = self.record(&id, Record::Window(record)) {
            self.log.note(&format!("cannot journal the window: {e}"));
        }
    }

    /// `--until` on a resume: the run keeps the end it began with (journaled).
    pub(crate) fn until_ignored(&self) {
        let kept = recorded(&self.run())
            .map(|w| format!("its window ({}, ending {})", w.source, w.ends))
            .unwrap_or_else(|| "no window (it began without one)".into());
        let text = format!("--until is ignored: the unfinished run keeps {kept}");
        self.log.note(&text);
        self.events.note(&format!("warning: {text}"));
    }

    /// The estimate from phase `from` on, with the journaled figures and what is settled.
    fn rest_from(&self, w: &Active, from: usize) -> f64 {
        let run = self.run();
        let settled = |k: StepKind| {
            run.steps
                .iter()
                .filter(|s| s.name == k.name())
                .all(|s| s.state.is_settled())
        };
        Shape {
            seconds: &|k| {
                w.record
                    .seconds
                    .get(k.name())
                    .copied()
                    .unwrap_or_else(|| k.default_estimate())
            },
            settled: &settled,
            overlap: self.rollback_installer().is_some(),
            canary: self.config.cluster.canary && self.nodes.len() > 1,
            layout: self.layout(),
        }
        .remaining(from)
    }

    /// Before a phase of the forward run: up to the point of no return, the rest must fit
    /// before the end (else the run stops and is undone); after it, an overrun is noted.
    pub(crate) fn window_allows(&self, phase: &Phase) -> Result<(), Failure> {
        let (Some(w), Some(index)) = (self.window(), forward_index(phase)) else {
            return Ok(());
        };
        if self.restore_needed() || index > index_of(StepKind::UpgradeDatabase) {
            self.note_overrun();
            return Ok(());
        }
        let what = if index == index_of(StepKind::UpgradeDatabase) {
            "the database upgrade and the start that follows"
        } else {
            "what is left up to the end of the outage"
        };
        self.fits(w, index, what).map_err(|text| Failure {
            step: "window".into(),
            message: text,
        })
    }

    /// Inside a wait before the point of no return (a drain): whether to stop waiting,
    /// because what comes after phase `kind` no longer fits before the end.
    pub(crate) fn window_cuts(&self, kind: StepKind) -> Result<(), StepError> {
        let Some(w) = self.window() else {
            return Ok(());
        };
        self.fits(
            w,
            index_of(kind) + 1,
            "what comes after it up to the end of the outage",
        )
        .map_err(StepError::Window)
    }

    fn fits(&self, w: &Active, from: usize, what: &str) -> Result<(), String> {
        let rest = self.rest_from(w, from);
        let left = w.deadline.remaining().as_secs_f64();
        if !w.deadline.expired() && rest <= left {
            return Ok(());
        }
        let changed = self.anything_changed();
        let when = if w.deadline.expired() {
            " "
        } else {
            "; this is "
        };
        Err(format!(
            "{}{when}before the point of no return (the database upgrade): {}. Run `octoup upgrade` again in the next window (or with a later --until)",
            too_short(&w.record, left, rest, what),
            if changed {
                "nothing more is started and what was done is undone"
            } else {
                "nothing was changed"
            }
        ))
    }

    /// After the point of no return the run goes on whatever the time; past the end, the
    /// overrun is journaled and warned about (the report and `octoup status` show it).
    pub(crate) fn note_overrun(&self) {
        let Some(w) = self.window() else {
            return;
        };
        if !w.deadline.expired() {
            return;
        }
        let id = StepId::once(StepKind::Preflight);
        let Some(mut record) = self.recorded(&id, Step::window) else {
            return;
        };
        let first = record.overrun_seconds.is_none();
        record.overrun_seconds = Some(seconds_between(record.ends_at, now()));
        let mut result = self.record(&id, Record::Window(record.clone()));
        if first {
            let text = format!(
                "the maintenance window ({}) ended at {} after the point of no return: the upgrade went on to the end (it never aborts once the database upgrade has begun) and overran the window",
                record.source, record.ends
            );
            self.log.note(&text);
            self.events.note(&format!("warning: {text}"));
            let mut warnings = self
                .recorded(&id, |s| Some(s.warnings()))
                .unwrap_or_default();
            warnings.push(text);
            result = result.and(self.record(&id, Record::Warnings(warnings)));
        }
        if let Err(e) = result {
            self.log.note(&format!("cannot journal the overrun: {e}"));
        }
    }
}

impl Step {
    pub(crate) fn window(&self) -> Option<WindowRecord> {
        self.outputs
            .get("window")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_overlaps_the_backup_and_the_installs_and_counts_settled_steps_as_zero() {
        let secs = |k: StepKind| k.default_estimate();
        let none = |_: StepKind| false;
        let all = Shape {
            seconds: &secs,
            settled: &none,
            overlap: true,
            canary: false,
            layout: Layout::default(),
        }
        .remaining(0);
        let d = |k: StepKind| k.default_estimate();
        use StepKind::*;
        let want = d(StageInstaller)
            + d(StageRollback)
            + d(BackupMasterKey)
            + d(BackupLicense)
            + d(MaintenanceOn)
            + d(Drain)
            + d(DeleteWatchdog)
            + d(Stop)
            + (d(BackupDatabase) + d(VerifyBackup)).max(d(Install))
            + d(UpgradeDatabase)
            + d(Start)
            + d(Verify);
        assert_eq!(all, want);
        let from_upgrade = Shape {
            seconds: &secs,
            settled: &none,
            overlap: true,
            canary: true,
            layout: Layout::default(),
        }
        .remaining(index_of(UpgradeDatabase));
        assert_eq!(
            from_upgrade,
            d(UpgradeDatabase) + 2.0 * d(Start) + d(Verify)
        );
    }

    /// An upgraded run `r1` with no steps yet.
    fn upgraded_run() -> Run {
        serde_json::from_value(serde_json::json!({
            "format": crate::journal::FORMAT, "id": "r1", "created": "2026-12-01T00:00:00Z",
            "updated": "2026-12-01T00:00:00Z", "pid": 1, "config_digest": "d",
            "from": "2024.1.10", "target": "2024.2.7", "path": [], "nodes": [],
            "status": "upgraded", "steps": [], "outage_started": null, "outage_ended": null,
            "error": null, "next_step": null, "log": "l"
        }))
        .expect("a run")
    }

    #[test]
    fn figures_name_history_and_the_defaults_that_filled_its_gaps() {
        let mut run = upgraded_run();
        assert_eq!(
            Estimates::from_history(&[run.clone()]).figures(Layout::default()),
            "defaults"
        );
        for kind in outage_kinds(Layout::default()).filter(|k| *k != StepKind::StageRollback) {
            let mut s = Step::new(kind.name(), None);
            s.started = Some("2026-12-01T00:00:00Z".parse().unwrap());
            s.finished = Some("2026-12-01T00:00:02Z".parse().unwrap());
            run.steps.push(s);
        }
        let est = Estimates::from_history(&[run]);
        assert_eq!(est.seconds(StepKind::Install), 2.0);
        assert_eq!(
            est.figures(Layout::default()),
            "run r1; defaults for stage-rollback-installer"
        );
        assert_eq!(est.main_label(), "run r1");
    }

    #[test]
    fn the_backup_estimate_grows_with_the_data_at_the_measured_throughput() {
        let none = Throughput::new(&[], 75_000_000_000, false);
        assert_eq!(none.seconds(StepKind::BackupDatabase), Some(1000.0));
        let compressed = Throughput::new(&[], 75_000_000_000, true);
        assert_eq!(compressed.seconds(StepKind::BackupDatabase), Some(500.0));
        assert_eq!(compressed.seconds(StepKind::Install), None);
        // A run that backed up 10 GB in 50 s (200 MB/s) and verified it in 25 s.
        let mut run = upgraded_run();
        let mut backup = Step::new(StepKind::BackupDatabase.name(), None);
        Record::Point(crate::database::RollbackPoint::Backup {
            media: crate::database::Media::Disk,
            files: vec!["b.bak".into()],
            bytes: Some(10_000_000_000),
            seconds: Some(50.0),
        })
        .write(&mut backup);
        let mut verify = Step::new(StepKind::VerifyBackup.name(), None);
        verify.started = Some("2026-12-01T00:00:00Z".parse().unwrap());
        verify.finished = Some("2026-12-01T00:00:25Z".parse().unwrap());
        run.steps = vec![backup, verify];
        let t = Throughput::new(&[run], 100_000_000_000, false);
        assert_eq!(t.seconds(StepKind::BackupDatabase), Some(500.0));
        assert_eq!(t.seconds(StepKind::VerifyBackup), Some(250.0));
        assert!(t.label().contains("run r1"), "{}", t.label());
    }
}
