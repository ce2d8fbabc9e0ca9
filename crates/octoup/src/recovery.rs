//! Recovery rules for a step the journal shows `running`: octoup died while it ran (killed,
//! the machine restarted). Such a step is never repeated blindly; what it did is read back
//! from the real installation first.
//!
//! | interrupted step | what is checked |
//! |---|---|
//! | install | the installed version (`Octopus.Server.exe version`): the target → done |
//! | database upgrade | the schema (`database-upgrade-status`); while it is not yet the target, the interrupted `database --upgrade` may still run (octoup died, its child need not have): wait for it, up to `[timeouts] db_upgrade` after it began, before running another (I1) |
//! | stop, start | the step itself pings the node first and only acts on what it finds |
//! | database backup | redone to a new file (a half-written backup is never trusted) |
//! | backup verification | `RESTORE VERIFYONLY` runs again |
//! | maintenance, drain, watchdog | the step reads the flags from the API / the configuration first |
//!
//! Before a rollback acts on an interrupted run, what octoup had started may likewise still
//! be finishing in the background: an install, a database upgrade, a service start. Each is
//! waited for (up to its own timeout after it began) and then recorded as it ended.

use std::time::Duration;

use jiff::Timestamp;

use super::rollback::is_rollback_step;
use super::*;

impl Engine {
    /// Before an interrupted step runs again: `Some` when the real state shows it finished
    /// (it is then recorded as done without repeating it), `None` to run it again.
    pub(super) async fn recover_interrupted(&self, previous: &Step) -> Option<Done> {
        let text = format!(
            "step {} was interrupted in an earlier run (octoup stopped while it ran): checking what it did before going on",
            previous.id
        );
        self.log.note(&text);
        self.events.note(&text);
        let found = match previous.name.as_str() {
            INSTALL => {
                let n = self.node_of(previous)?;
                let target = self.target();
                self.installed_is(n, &target).await.then(|| {
                    format!("{target} is installed (the interrupted install had finished)")
                })
            }
            UPGRADE_DATABASE => self.settle_database_upgrade(previous).await,
            _ => None,
        };
        if let Some(detail) = &found {
            self.log
                .note(&format!("step {}: found done: {detail}", previous.id));
        }
        found.map(Done::Ok)
    }

    /// Waits for the outcome of a `database --upgrade` octoup started before it died.
    /// `Some` once the schema is the target's; `None` when it is not (after waiting up to
    /// `[timeouts] db_upgrade` from the step's start) or the server cannot tell.
    pub(super) async fn settle_database_upgrade(&self, previous: &Step) -> Option<String> {
        let target = self.target();
        let primary = self.primary();
        let limit = self.config().timeouts.db_upgrade;
        let mut announced = false;
        let settled = self
            .wait_since(previous.started, limit, async || {
                match primary.agent.database_upgrade_pending().await {
                    Ok(Some(true)) => {
                        if !announced {
                            announced = true;
                            self.events.note(&format!(
                                "the database schema is not yet {target}: the interrupted `database --upgrade` may still be running; waiting for it (up to {} after it began) so that two upgrades never run at once",
                                human_duration(Duration::from_secs(limit))
                            ));
                        }
                        Wait::Again
                    }
                    Ok(Some(false)) => Wait::Settled,
                    // Older than 2023.4 (no database-upgrade-status), or not understood:
                    // `database --upgrade` itself says "already up to date" when it is.
                    Ok(None) | Err(_) => Wait::Unknown,
                }
            })
            .await;
        settled.then(|| {
            format!("the schema is already {target} (the interrupted upgrade had finished)")
        })
    }

    /// Before a rollback: forward steps still marked `running` (octoup died in them) are
    /// let finish — an install, a database upgrade or a service start may still be under
    /// way in the background — and are recorded as they ended.
    pub(super) async fn settle_interrupted(&self) -> Result<(), Failure> {
        let interrupted: Vec<Step> = self
            .run()
            .steps
            .into_iter()
            .filter(|s| s.state == StepState::Running && !is_rollback_step(&s.name))
            .collect();
        for step in interrupted {
            let ended = match step.name.as_str() {
                UPGRADE_DATABASE => self.settle_database_upgrade(&step).await,
                INSTALL => self.settle_install(&step).await,
                START => self.settle_start(&step).await,
                _ => None,
            };
            self.mark(&step.id, |s| {
                s.finished = Some(now());
                match &ended {
                    Some(detail) => {
                        s.state = StepState::Done;
                        s.outputs.insert("detail".into(), json!(detail));
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

    /// An interrupted install of the target: waits until the target is installed, up to
    /// `[timeouts] install` after the install began.
    async fn settle_install(&self, step: &Step) -> Option<String> {
        let n = self.node_of(step)?;
        let target = self.target();
        self.wait_since(step.started, self.config().timeouts.install, async || {
            if self.installed_is(n, &target).await {
                Wait::Settled
            } else {
                Wait::Again
            }
        })
        .await
        .then(|| format!("{target} installed (the interrupted install finished)"))
    }

    /// An interrupted service start: waits until the node answers, up to `[timeouts] start`
    /// after the start began (a service the operating system was asked to start still
    /// comes up after octoup died).
    async fn settle_start(&self, step: &Step) -> Option<String> {
        let n = self.node_of(step)?;
        self.wait_since(step.started, self.config().timeouts.start, async || {
            if n.api().ping().await.is_up() {
                Wait::Settled
            } else {
                Wait::Again
            }
        })
        .await
        .then(|| "the node started (the interrupted start finished)".to_string())
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
            .map(|t| Duration::from_secs_f64(crate::clock::seconds_between(t, now())))
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

    fn node_of(&self, step: &Step) -> Option<&EngineNode> {
        let name = step.node.as_deref()?;
        self.nodes
            .iter()
            .find(|n| n.info.name.eq_ignore_ascii_case(name))
    }

    /// Whether `version` is what the node has installed (false when it cannot be read).
    pub(super) async fn installed_is(&self, n: &EngineNode, version: &str) -> bool {
        let Ok(want) = version.parse::<Version>() else {
            return false;
        };
        n.agent.installed_version().await.is_ok_and(|v| v == want)
    }
}

/// One look at something that is still finishing.
enum Wait {
    Settled,
    Again,
    /// Cannot be told: stop waiting.
    Unknown,
}
