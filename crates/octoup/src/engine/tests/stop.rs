//! A stop asked for while the run goes on (the CLI's first Ctrl-C): the running step
//! finishes and is journaled, then the run stops at that safe point: before the outage as
//! a failure there (nothing changed, or put back), after it paused with the next step.

use std::sync::Mutex;

use super::*;
use crate::journal::Step;

/// Asks for a stop once, when step `at` has finished.
struct StopAfter {
    at: &'static str,
    armed: Mutex<bool>,
}

impl StopAfter {
    fn new(at: &'static str) -> Arc<StopAfter> {
        Arc::new(StopAfter {
            at,
            armed: Mutex::new(false),
        })
    }
}

impl Events for StopAfter {
    fn step_finished(&self, step: &Step) {
        if step.id == self.at {
            *self.armed.lock().unwrap() = true;
        }
    }

    fn stop_requested(&self) -> bool {
        std::mem::take(&mut *self.armed.lock().unwrap())
    }
}

#[tokio::test]
async fn a_stop_before_anything_changed_ends_with_nothing_changed() {
    let ran = Scenario::nodes(2)
        .events(StopAfter::new("backup-license"))
        .run()
        .await;
    ran.assert_outcome(Outcome::Refused)
        .assert_error("interrupted")
        .assert_as_before();
}

#[tokio::test]
async fn a_stop_after_the_drain_puts_maintenance_and_drain_back() {
    let ran = Scenario::nodes(2)
        .events(StopAfter::new("drain@N2"))
        .run()
        .await;
    ran.assert_outcome(Outcome::Failed)
        .assert_error("interrupted")
        .assert_as_before();
    assert!(!ran.model().maintenance);
}

#[tokio::test]
async fn a_stop_in_the_outage_pauses_after_the_running_step_and_a_resume_finishes() {
    let ran = Scenario::nodes(2)
        .events(StopAfter::new("upgrade-database@N1"))
        .run()
        .await;
    ran.assert_paused("`octoup upgrade` continues")
        .assert_next("start@N1")
        .assert_steps(&["upgrade-database@N1"], StepState::Done);
    let ran = ran.resume().await;
    ran.assert_upgraded();
    assert_eq!(ran.schema_upgrades().len(), 1);
}
