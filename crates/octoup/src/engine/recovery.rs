//! Recovery rules for a step the journal shows `running`: octoup died while it ran (killed,
//! the machine restarted). Such a step is never repeated blindly; what it did is read back
//! from the real installation first.
//!
//! | interrupted step | what is checked |
//! |---|---|
//! | install | the installed version (`Octopus.Server.exe version`): once it is the target, done |
//! | database upgrade | the schema (`database-upgrade-status`): once it is the target, done; while it is not, the interrupted `database --upgrade` may still run, and is waited for before another one starts (I1): exactly the process whose pid the step journaled, and not at all when it is gone or was never spawned |
//! | stop, start | ping: while the interrupted `service --stop` (`--start`) runs, waits until the node is down (up); then the step confirms it |
//! | watchdog delete/create | `show-configuration`: the same, while the interrupted `watchdog` command runs |
//!
//! Which process: every one of these commands is launched through [`Engine::launch_hook`],
//! which records "about to spawn" and then the child's pid in an unsynced launch marker
//! (off the outage's fsyncs: [`crate::journal::LaunchMarker`]); the schema upgrade also in
//! the journal, fsynced. [`Engine::settle_launched`] reads it back: never
//! spawned, or spawned and gone, means one look at the real state and no wait.
//! | database backup | redone to a new file (a half-written backup is never trusted) |
//! | backup verification | `RESTORE VERIFYONLY` runs again |
//! | maintenance, drain | the step reads the flags from the API first |
//!
//! Octoup may die while its child command goes on (an install, a `database --upgrade`, a
//! service start keep running). The waits above let such a command finish, up to its own
//! timeout after it began (capped at [`ORPHAN_WAIT_CAP`], except the database upgrade), so
//! nothing is done twice at once. A rollback of an interrupted run does the same for
//! every step found running before it acts, and records how each ended.

use std::time::Duration;

use jiff::Timestamp;

use crate::journal::{LaunchMarker, Step, StepState};
use crate::process::clock::{Deadline, Poller, human_duration, now, seconds, seconds_between};
use crate::process::platform::ProcessId;
use crate::process::runner::SpawnHook;

use super::catalogue::{StepId, StepKind};
use super::error::StepError;
use super::executor::{Done, Engine, Failure};
use super::record::Record;

/// The longest wait for a command an earlier octoup left running (an install, a start),
/// whatever its own timeout: after a restart of the machine nothing runs any more, and
/// the step itself copes with what it finds.
pub(crate) const ORPHAN_WAIT_CAP: Duration = Duration::from_secs(600);

impl Engine {
    /// Before an interrupted step runs again: `Some` when the real state shows it finished
    /// (it is then recorded as done without repeating it), `None` to run it again (every
    /// step body reads the real state before it acts).
    pub(super) async fn recover_interrupted(&self, id: &StepId, previous: &Step) -> Option<Done> {
        let text = format!(
            "step {} was interrupted in an earlier run (octoup stopped while it ran): checking what it did before going on",
            previous.id
        );
        self.log.note(&text);
        self.events.note(&text);
        let found = self.settle(id, previous, Settle::Resume).await?;
        self.log
            .note(&format!("step {}: found finished: {found}", previous.id));
        // Installing and upgrading the schema are never repeated once done; the others
        // run again and confirm what they find (a start also checks the version served).
        id.kind.never_repeated().then_some(Done::Ok(found))
    }

    /// Before a rollback: forward steps still marked `running` (octoup died in them) are
    /// let finish and recorded as they ended.
    pub(super) async fn settle_interrupted(&self) -> Result<(), Failure> {
        let interrupted: Vec<(StepId, Step)> = self
            .run()
            .steps
            .into_iter()
            .filter(|s| s.state == StepState::Running)
            .filter_map(|s| {
                let kind = StepKind::parse(&s.name).filter(|k| !k.is_rollback())?;
                Some((
                    StepId {
                        kind,
                        node: s.node.clone(),
                    },
                    s,
                ))
            })
            .collect();
        for (id, step) in interrupted {
            let ended = self.settle(&id, &step, Settle::Rollback).await;
            self.mark(&step.id, |s| {
                s.finished = Some(now());
                match &ended {
                    Some(detail) => {
                        s.state = StepState::Done;
                        Record::Detail(detail.clone()).write(s);
                    }
                    None => {
                        s.state = StepState::Failed;
                        s.error = Some("interrupted: octoup stopped while this step ran".into());
                    }
                }
            })?;
        }
        Ok(())
    }

    /// What an interrupted step's command may still be doing in the background (octoup
    /// died, its child need not have) is waited for, up to that command's own timeout after
    /// the step began (capped at [`ORPHAN_WAIT_CAP`], except the database upgrade, which is
    /// never run twice at once). `Some` with what was found when the step's effect is there.
    async fn settle(&self, id: &StepId, step: &Step, purpose: Settle) -> Option<String> {
        let timeouts = &self.config.timeouts;
        let capped = |secs: u64| secs.min(ORPHAN_WAIT_CAP.as_secs());
        let node = id.node.as_deref().and_then(|name| self.node_named(name));
        match (id.kind, node) {
            (StepKind::UpgradeDatabase, _) => self.settle_database_upgrade(id, step).await,
            (StepKind::Install, Some(n)) => {
                let target = self.target();
                // Going forward, a second installer waits for the first by itself (1618,
                // retried); a rollback must not decide on a version still being replaced.
                let limit = match purpose {
                    Settle::Resume => 0,
                    Settle::Rollback => capped(timeouts.install),
                };
                self.wait_since(step.started, limit, async || {
                    Wait::settled_if(self.installed_is(n, &target).await)
                })
                .await
                .then(|| format!("{target} is installed (the interrupted install finished)"))
            }
            (StepKind::Stop, Some(n)) => self
                .settle_launched(id, step, capped(timeouts.stop), async || {
                    Wait::settled_if(!n.agent.ping().await.is_up())
                })
                .await
                .then(|| "the node is stopped".to_string()),
            (StepKind::Start, Some(n)) => self
                .settle_launched(id, step, capped(timeouts.start), async || {
                    Wait::settled_if(n.agent.ping().await.is_up())
                })
                .await
                .then(|| "the node answers (the interrupted start finished)".to_string()),
            (StepKind::DeleteWatchdog | StepKind::CreateWatchdog, Some(n)) => {
                let want = id.kind == StepKind::CreateWatchdog;
                self.settle_launched(id, step, capped(timeouts.command), async || {
                    match n.agent.watchdog().await {
                        Ok(w) => Wait::settled_if(w.enabled == want),
                        Err(_) => Wait::Unknown,
                    }
                })
                .await
                .then(|| {
                    format!(
                        "the watchdog is {}",
                        if want { "present" } else { "deleted" }
                    )
                })
            }
            _ => None,
        }
    }

    /// Waits for the outcome of a `database --upgrade` octoup started before it died.
    /// `Some` once the schema is the target's; `None` when it is not or the server cannot
    /// tell. Waited for while that process runs (see [`Self::settle_launched`]), up to
    /// `[timeouts] db_upgrade` from the step's start, so that two never run at once (I1).
    async fn settle_database_upgrade(&self, id: &StepId, previous: &Step) -> Option<String> {
        let target = self.target();
        let primary = self.primary();
        let limit = self.config.timeouts.db_upgrade;
        self.settle_launched(id, previous, limit, async || {
            match primary.agent.database_upgrade_pending().await {
                Ok(Some(true)) => Wait::Again,
                Ok(Some(false)) => Wait::Settled,
                // Older than 2023.4 (no database-upgrade-status), or not understood:
                // `database --upgrade` itself says "already up to date" when it is.
                Ok(None) | Err(_) => Wait::Unknown,
            }
        })
        .await
        .then(|| format!("the schema is already {target} (the interrupted upgrade had finished)"))
    }

    /// Records that step `id` is about to spawn its command, and gives the hook that
    /// records the child once it runs. Every tracked step has a launch marker, written at
    /// the spawn itself (unsynced, off the outage's fsyncs: see [`LaunchMarker`]). The
    /// schema upgrade also journals [`Record::Launching`] now and [`Record::Child`]
    /// (fsynced): nothing may run a second upgrade on a guess (I1).
    pub(crate) fn launch_hook(&self, id: &StepId) -> Result<SpawnHook, StepError> {
        let journaled = (id.kind == StepKind::UpgradeDatabase).then(|| self.child_hook(id));
        if journaled.is_some() {
            self.record(id, Record::Launching(now()))?;
        }
        let marker = self.launch_marker(id);
        let attempt = self.recorded(id, |s| s.started).unwrap_or_else(now);
        let log = self.log.clone();
        let key = id.key();
        // The records, as they go into a journal step (one format, one reader).
        let records = std::sync::Arc::new(std::sync::Mutex::new(Step::new(&key, None)));
        let write = move |what: Record| {
            let mut step = records.lock().expect("launch records");
            what.write(&mut step);
            if let Err(e) = marker.write(attempt, &step.outputs) {
                log.note(&format!("cannot write step {key}'s launch marker: {e}"));
            }
        };
        let launching = write.clone();
        Ok(SpawnHook::new(move |process| {
            write(Record::Child {
                process,
                started: now(),
            });
            if let Some(journal) = &journaled {
                journal.spawned(process);
            }
        })
        .with_launching(move || launching(Record::Launching(now()))))
    }

    fn launch_marker(&self, id: &StepId) -> LaunchMarker {
        self.state.launch_marker(&self.run_id(), &id.key())
    }

    /// What the records say of the command of `step` (interrupted), see [`Self::launch_hook`]:
    /// the child from the marker or the journal; else "about to spawn" in the marker means
    /// it cannot be told (the instant of the spawn), and no marker means never spawned (a
    /// killed octoup's marker survives in the page cache; after a reboot no child does).
    fn launch_of(&self, id: &StepId, step: &Step) -> Launch {
        let mut marked = Step::new(&step.name, step.node.as_deref());
        if let Some(outputs) = step.started.and_then(|t| self.launch_marker(id).read(t)) {
            marked.outputs = outputs;
        }
        match marked.child().or_else(|| step.child()) {
            Some((p, _)) if p.is_running() => Launch::Running(p),
            Some((p, _)) => Launch::Gone(p.pid),
            // A run of a release that did not record launches: it cannot be told.
            None if marked.launching() || !step.tracks_child() => Launch::Unknown,
            None => Launch::Never,
        }
    }

    /// What an interrupted step's command may still be doing: `check` looks at its effect.
    /// Never spawned, or spawned and gone: one look, no wait (the step then runs again
    /// and re-issues it when needed). Still running: looks until it settles, the process
    /// ends, or `limit` seconds after the step began. Cannot be told: until it settles or
    /// the limit. True when it settled.
    async fn settle_launched(
        &self,
        id: &StepId,
        step: &Step,
        limit: u64,
        mut check: impl AsyncFnMut() -> Wait,
    ) -> bool {
        let command = command_of(id.kind);
        let launch = self.launch_of(id, step);
        let note = |text: String| {
            self.log.note(&text);
            self.events.note(&text);
        };
        match launch {
            Launch::Gone(pid) => note(format!(
                "step {}: the interrupted `{command}` (pid {pid}) is no longer running: not waiting for it",
                step.id
            )),
            Launch::Never => note(format!(
                "step {}: the interrupted step never started `{command}`: nothing to wait for",
                step.id
            )),
            Launch::Running(_) | Launch::Unknown => {}
        }
        if let Launch::Gone(_) | Launch::Never = launch {
            return matches!(check().await, Wait::Settled);
        }
        let mut announced = false;
        self.wait_since(step.started, limit, async || {
            // Whether it runs, before the look: a process that ended has done its part.
            let running = match launch {
                Launch::Running(p) => p.is_running(),
                _ => true,
            };
            match check().await {
                // It ended without the effect: the step runs again.
                Wait::Again if !running => Wait::Unknown,
                Wait::Again => {
                    if !announced {
                        announced = true;
                        note(format!(
                            "step {}: the interrupted `{command}`{} may still be running; waiting for it (up to {} after it began) so that it never runs twice at once",
                            step.id,
                            match launch {
                                Launch::Running(p) => format!(" (pid {})", p.pid),
                                _ => String::new(),
                            },
                            human_duration(Duration::from_secs(limit))
                        ));
                    }
                    Wait::Again
                }
                other => other,
            }
        })
        .await
    }

    /// Polls `check` until it settles, or `limit` seconds after `since` (now when unknown).
    /// True when it settled.
    async fn wait_since(
        &self,
        since: Option<Timestamp>,
        limit: u64,
        mut check: impl AsyncFnMut() -> Wait,
    ) -> bool {
        let elapsed = since
            .map(|t| seconds(seconds_between(t, now())))
            .unwrap_or_default();
        let deadline = Deadline::after(Duration::from_secs(limit).saturating_sub(elapsed));
        let mut poll = Poller::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            match check().await {
                Wait::Settled => return true,
                Wait::Unknown => return false,
                Wait::Again if deadline.expired() => return false,
                Wait::Again => poll.wait(Some(&deadline)).await,
            }
        }
    }
}

/// Why an interrupted step is looked at.
#[derive(Clone, Copy)]
enum Settle {
    /// Before it runs again.
    Resume,
    /// Before a rollback acts.
    Rollback,
}

/// What the launch records tell of an interrupted step's command.
#[derive(Clone, Copy)]
enum Launch {
    /// Never spawned: nothing to wait for.
    Never,
    /// Spawned, and this process still runs.
    Running(ProcessId),
    /// Spawned, and the process (pid) is gone.
    Gone(u32),
    /// Cannot be told: wait by time.
    Unknown,
}

/// One look at something that is still finishing.
enum Wait {
    Settled,
    Again,
    /// Cannot be told: stop waiting.
    Unknown,
}

impl Wait {
    fn settled_if(done: bool) -> Wait {
        if done { Wait::Settled } else { Wait::Again }
    }
}

/// The command a launch-tracked step spawns, for notes.
fn command_of(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Stop => "service --stop",
        StepKind::Start => "service --start",
        StepKind::DeleteWatchdog => "watchdog --delete",
        StepKind::CreateWatchdog => "watchdog --create",
        _ => "database --upgrade",
    }
}

/// The steps whose command's launch is recorded ([`Engine::launch_hook`]); a new run says
/// so on each ([`Record::TracksChild`]), so that a run journaled by an older release is
/// still waited for by time.
pub(crate) fn tracks_launch(kind: StepKind) -> bool {
    matches!(
        kind,
        StepKind::UpgradeDatabase
            | StepKind::Stop
            | StepKind::Start
            | StepKind::DeleteWatchdog
            | StepKind::CreateWatchdog
    )
}
