//! Recovery rules for a step the journal shows `running`: octoup died while it ran (killed,
//! the machine restarted). Such a step is never repeated blindly; what it did is read back
//! from the real installation first.
//!
//! | interrupted step | what is checked |
//! |---|---|
//! | install | the installed version (`Octopus.Server.exe version`): once it is the target, done |
//! | database upgrade | the schema (`database-upgrade-status`): once it is the target, done; while it is not, the interrupted `database --upgrade` may still run, and is waited for before another one starts (I1): exactly the process whose pid the step journaled, and not at all when it is gone or was never spawned |
//! | stop, start | ping: waits until the node is down (up), then the step confirms it |
//! | watchdog delete/create | `show-configuration`: waits until it is gone (there), then the step confirms it |
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

use crate::journal::{Step, StepState};
use crate::process::clock::{Deadline, Poller, human_duration, now, seconds, seconds_between};

use super::catalogue::{StepId, StepKind};
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
            (StepKind::UpgradeDatabase, _) => self.settle_database_upgrade(step).await,
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
                .wait_since(step.started, capped(timeouts.stop), async || {
                    Wait::settled_if(!n.agent.ping().await.is_up())
                })
                .await
                .then(|| "the node is stopped".to_string()),
            (StepKind::Start, Some(n)) => self
                .wait_since(step.started, capped(timeouts.start), async || {
                    Wait::settled_if(n.agent.ping().await.is_up())
                })
                .await
                .then(|| "the node answers (the interrupted start finished)".to_string()),
            (StepKind::DeleteWatchdog | StepKind::CreateWatchdog, Some(n)) => {
                let want = id.kind == StepKind::CreateWatchdog;
                self.wait_since(step.started, capped(timeouts.command), async || {
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
    /// tell. The journal says which process to wait for ([`Record::Child`]): while it runs,
    /// up to `[timeouts] db_upgrade` from the step's start; once it is gone, or when it was
    /// never spawned, not at all. Only when it cannot be told (a crash between the launch
    /// and its pid, a remote node, an older journal) is the whole timeout waited for.
    async fn settle_database_upgrade(&self, previous: &Step) -> Option<String> {
        let target = self.target();
        let primary = self.primary();
        let limit = self.config.timeouts.db_upgrade;
        let child = previous.child().map(|(process, _)| process);
        let already =
            || format!("the schema is already {target} (the interrupted upgrade had finished)");
        let launch = match child {
            Some(p) if p.is_running() => Launch::Running(p.pid),
            Some(p) => Launch::Gone(p.pid),
            None if previous.launching() || !previous.tracks_child() => Launch::Unknown,
            None => Launch::Never,
        };
        if let Launch::Gone(_) | Launch::Never = launch {
            let text = match launch {
                Launch::Gone(pid) => format!(
                    "the interrupted `database --upgrade` (pid {pid}) is no longer running: not waiting for it"
                ),
                _ => "the interrupted step never started `database --upgrade`: nothing to wait for"
                    .to_string(),
            };
            self.log.note(&text);
            self.events.note(&text);
            return matches!(
                primary.agent.database_upgrade_pending().await,
                Ok(Some(false))
            )
            .then(already);
        }
        let mut announced = false;
        let settled = self
            .wait_since(previous.started, limit, async || {
                // Whether it runs, before the schema: a process that ended has written it.
                let running = child.is_none_or(|p| p.is_running());
                match primary.agent.database_upgrade_pending().await {
                    Ok(Some(true)) if running => {
                        if !announced {
                            announced = true;
                            self.events.note(&format!(
                                "the database schema is not yet {target}: the interrupted `database --upgrade`{} may still be running; waiting for it (up to {} after it began) so that two upgrades never run at once",
                                match launch {
                                    Launch::Running(pid) => format!(" (pid {pid})"),
                                    _ => String::new(),
                                },
                                human_duration(Duration::from_secs(limit))
                            ));
                        }
                        Wait::Again
                    }
                    Ok(Some(false)) => Wait::Settled,
                    // It ended without upgrading: the step runs it again.
                    Ok(Some(true)) => Wait::Unknown,
                    // Older than 2023.4 (no database-upgrade-status), or not understood:
                    // `database --upgrade` itself says "already up to date" when it is.
                    Ok(None) | Err(_) => Wait::Unknown,
                }
            })
            .await;
        settled.then(already)
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

/// What the journal tells of an interrupted step's command.
#[derive(Clone, Copy)]
enum Launch {
    /// Never spawned: nothing to wait for.
    Never,
    /// Spawned, and this process (pid) still runs.
    Running(u32),
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
