//! The strategies' layouts, in-process: where the database steps go (the snapshot strategy's
//! verified backup before the outage, its snapshot after the last stop) and what a rollback
//! goes back to.

use super::*;
use crate::config::DatabaseStrategy;
use crate::journal::Step;

fn snapshot(c: &mut Config) {
    c.database.strategy = DatabaseStrategy::Snapshot;
}

fn position(run: &Run, id: &str) -> usize {
    run.steps
        .iter()
        .position(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id}"))
}

#[tokio::test]
async fn the_snapshot_strategy_backs_up_before_the_outage_and_snapshots_after_the_last_stop() {
    let ran = Scenario::nodes(2).config(snapshot).run().await;
    ran.assert_upgraded().assert_invariants(true);
    let run = ran.journal();
    // The journal order is the run's order.
    assert!(position(&run, "verify-backup") < position(&run, "maintenance-on"));
    assert!(position(&run, "stop@N2") < position(&run, "snapshot-database"));
    assert!(position(&run, "snapshot-database") < position(&run, "upgrade-database@N1"));
    assert_eq!(
        run.steps.last().map(|s| s.name.as_str()),
        Some("release-rollback-point")
    );
    // The backup was taken while every node still served.
    let history = ran.history();
    let backup = history
        .iter()
        .position(|e| matches!(e, Event::BackupMade { path, .. } if path.extension().is_some()))
        .expect("a backup file");
    let first_stop = history
        .iter()
        .position(|e| matches!(e, Event::ServiceStopped { .. }))
        .expect("a stop");
    assert!(backup < first_stop, "{history:#?}");
    // keep_hours = 0: the snapshot is dropped at the end.
    assert!(
        history.iter().any(|e| matches!(e, Event::Released { .. })),
        "{history:#?}"
    );
    assert!(
        run.step("release-rollback-point")
            .and_then(Step::released)
            .is_some()
    );
}

#[tokio::test]
async fn a_failed_schema_upgrade_reverts_to_the_snapshot_not_the_older_backup() {
    let ran = Scenario::nodes(2)
        .config(snapshot)
        .fault(Op::UpgradeDatabase, None, Fault::FailOnce)
        .run()
        .await;
    ran.assert_paused("octoup rollback");
    let ran = ran.rollback().await;
    ran.assert_outcome(Outcome::RolledBack)
        .assert_serving(FROM)
        .assert_invariants(true)
        .assert_as_before();
    let restored: Vec<String> = ran
        .history()
        .iter()
        .filter_map(|e| match e {
            Event::Restored { path, .. } => Some(path.display().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert!(
        restored[0].contains("_octoup_"),
        "the snapshot: {restored:?}"
    );
}

#[tokio::test]
async fn the_native_layout_is_unchanged() {
    let ran = Scenario::nodes(1).run().await;
    ran.assert_upgraded();
    let run = ran.journal();
    assert!(position(&run, "stop@N1") < position(&run, "backup-database"));
    assert!(run.step("snapshot-database").is_none());
    assert!(run.step("release-rollback-point").is_none());
}

#[tokio::test]
async fn a_kept_snapshot_is_held_and_takes_back_the_finished_upgrade() {
    let ran = Scenario::nodes(2)
        .config(|c| {
            snapshot(c);
            c.rollback.keep_hours = 24;
        })
        .run()
        .await;
    ran.assert_upgraded().assert_invariants(true);
    let held = crate::engine::finalize::held(&ran.journal()).expect("the snapshot is held");
    assert!(held.until > jiff::Timestamp::now() + jiff::SignedDuration::from_hours(23));
    assert!(
        !ran.history()
            .iter()
            .any(|e| matches!(e, Event::Released { .. })),
        "kept, not dropped: {:#?}",
        ran.history()
    );
    let ran = ran.take_back().await;
    ran.assert_outcome(Outcome::RolledBack)
        .assert_serving(FROM)
        .assert_invariants(true)
        .assert_as_before();
    assert!(crate::engine::finalize::held(&ran.journal()).is_none());
    assert!(
        ran.history()
            .iter()
            .any(|e| matches!(e, Event::Restored { path, .. } if path.display().to_string().contains("_octoup_"))),
        "reverted to the snapshot: {:#?}",
        ran.history()
    );
}
