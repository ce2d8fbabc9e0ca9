//! `octoup rollback` of an unfinished run: the database restored from the verified backup
//! and the original version reinstalled from the staged installer; or refused, changing
//! nothing, when it cannot be done.

use super::*;

/// Two nodes (N1 with a watchdog), paused at the database upgrade by `fault`.
async fn paused_at_database_upgrade(fault: Fault, config: fn(&mut Config)) -> Ran {
    let ran = Scenario::nodes(2)
        .watchdog("N1")
        .config(config)
        .fault(Op::UpgradeDatabase, None, fault)
        .run()
        .await;
    ran.assert_paused("octoup rollback");
    ran
}

fn keep(_: &mut Config) {}

/// Rolled back: the original version on the original schema everywhere, flags as before,
/// the forward steps that changed something `undone`.
fn assert_rolled_back(ran: &Ran) {
    ran.assert_outcome(Outcome::RolledBack)
        .assert_status(RunStatus::RolledBack)
        .assert_serving(FROM)
        .assert_invariants(true)
        .assert_as_before()
        .assert_steps(
            &[
                "maintenance-on",
                "drain@N1",
                "drain@N2",
                "delete-watchdog@N1",
                "stop@N1",
                "stop@N2",
                "install@N1",
                "install@N2",
                "upgrade-database@N1",
            ],
            StepState::Undone,
        );
    let restored = ran
        .history()
        .iter()
        .filter(|e| matches!(e, Event::Restored { .. }))
        .count();
    assert_eq!(restored, 1, "one restore");
    for n in ["N1", "N2"] {
        assert_eq!(
            ran.count(n, installed),
            2,
            "{n}: the target, then the original"
        );
    }
}

#[tokio::test]
async fn a_paused_failed_database_upgrade_is_rolled_back() {
    let ran = paused_at_database_upgrade(Fault::FailOnce, keep).await;
    let ran = ran.rollback().await;
    assert_rolled_back(&ran);
    ran.assert_next("Rolled back");
}

#[tokio::test]
async fn a_schema_that_was_upgraded_is_restored() {
    let ran = paused_at_database_upgrade(Fault::HangAfterDoing, keep).await;
    assert_eq!(
        ran.model().schema,
        v(TARGET),
        "the upgrade had gone through"
    );
    let ran = ran.rollback().await;
    assert_rolled_back(&ran);
}

#[tokio::test]
async fn an_automatic_rollback_needs_no_second_run() {
    let ran = Scenario::nodes(2)
        .watchdog("N1")
        .config(|c| c.rollback.automatic = true)
        .fault(Op::UpgradeDatabase, None, Fault::HangAfterDoing)
        .run()
        .await;
    assert_rolled_back(&ran);
}

#[tokio::test]
async fn a_paused_start_with_nodes_serving_the_target_is_rolled_back() {
    let ran = Scenario::nodes(2)
        .watchdog("N1")
        .fault(Op::Start, Some("N2"), Fault::FailOnce)
        .run()
        .await;
    ran.assert_paused("octoup upgrade");
    let ran = ran.rollback().await;
    assert_rolled_back(&ran);
}

#[tokio::test]
async fn a_rollback_that_crashed_between_uninstall_and_install_continues() {
    let ran = paused_at_database_upgrade(Fault::FailOnce, keep).await;
    ran.fake()
        .fault(Op::Uninstall, Some("N2"), Fault::CrashAfter);
    let ran = ran.rollback().await;
    assert!(ran.report.is_none(), "the rollback must crash");
    assert_eq!(
        ran.model().node("N2").installed,
        None,
        "nothing installed on N2"
    );
    ran.assert_status(RunStatus::RollingBack)
        .assert_invariants(false);
    // `octoup upgrade` continues a rollback under way.
    let ran = ran.resume().await;
    assert_rolled_back(&ran);
}

// ------------------------------------------------------------------ refusals

/// `octoup rollback` is refused for `reason`: nothing in the world changes, the run keeps
/// its status, and (when it was paused) `octoup upgrade` still finishes it.
async fn refused(ran: Ran, reason: &str) -> Ran {
    let history = ran.history();
    let status = ran.journal().status;
    let ran = ran.rollback().await;
    ran.assert_outcome(Outcome::Refused)
        .assert_status(status)
        .assert_error(reason)
        .assert_next("Nothing was changed");
    assert!(ran.report().refused);
    assert_eq!(ran.history(), history, "the refusal changed the world");
    if status == RunStatus::Paused {
        let ran = ran.resume().await;
        ran.assert_upgraded();
        return ran;
    }
    ran
}

#[tokio::test]
async fn a_run_that_changed_nothing_is_not_rolled_back() {
    let ran = Scenario::nodes(2)
        .fault(Op::MasterKey, None, Fault::CrashBefore)
        .run()
        .await;
    assert!(ran.report.is_none(), "the run must crash");
    refused(ran, "never changed the installation").await;
}

#[tokio::test]
async fn no_recorded_backup_refuses_the_rollback() {
    let ran = paused_at_database_upgrade(Fault::FailOnce, keep).await;
    ran.edit_journal(|r| {
        let outputs = &mut r.step_mut("backup-database").unwrap().outputs;
        outputs.remove("path");
        outputs.remove("rollback_point");
    });
    refused(ran, "recorded no database backup").await;
}

#[tokio::test]
async fn a_backup_never_verified_refuses_the_rollback() {
    let ran = paused_at_database_upgrade(Fault::FailOnce, keep).await;
    ran.edit_journal(|r| r.step_mut("verify-backup").unwrap().state = StepState::Failed);
    refused(ran, "was never verified").await;
}

#[tokio::test]
async fn a_missing_backup_refuses_the_rollback() {
    let ran = paused_at_database_upgrade(Fault::FailOnce, keep).await;
    std::fs::remove_file(ran.recorded_file("backup-database")).unwrap();
    refused(ran, "is missing or damaged").await;
}

#[tokio::test]
async fn a_missing_original_installer_refuses_the_rollback() {
    let ran = paused_at_database_upgrade(Fault::FailOnce, keep).await;
    std::fs::remove_file(ran.recorded_file("stage-rollback-installer")).unwrap();
    refused(ran, "the installer of 2024.1.10").await;
}

#[tokio::test]
async fn an_original_installer_never_staged_refuses_the_rollback() {
    let ran = paused_at_database_upgrade(Fault::FailOnce, |c| c.rollback.enabled = false).await;
    let ran = refused(ran, "never staged").await;
    assert!(ran.journal().step("stage-rollback-installer").is_none());
}

#[tokio::test]
async fn a_missing_target_installer_refuses_the_rollback_it_would_uninstall_with() {
    let ran = paused_at_database_upgrade(Fault::FailOnce, keep).await;
    std::fs::remove_file(ran.recorded_file("stage-installer")).unwrap();
    refused(ran, "needed to uninstall it").await;
}

#[tokio::test]
async fn a_run_that_crashed_in_the_installs_is_rolled_back_instead_of_resumed() {
    let ran = Scenario::nodes(3)
        .fault(Op::Install, Some("N2"), Fault::CrashAfter)
        .run()
        .await;
    assert!(ran.report.is_none(), "the run must crash");
    let ran = ran.rollback().await;
    ran.assert_outcome(Outcome::RolledBack)
        .assert_serving(FROM)
        .assert_invariants(true)
        .assert_as_before()
        .assert_steps(&["rollback-restore-database"], StepState::Skipped);
    assert!(
        ran.history()
            .iter()
            .all(|e| !matches!(e, Event::Restored { .. }))
    );
    assert_eq!(ran.count("N3", installed), 0, "N3 was never changed");
}

/// The same engine bug as `undo::a_resumed_undo_keeps_the_cause`: `octoup upgrade`
/// continuing a rollback clears `run.error` before `run_rollback` reads its cause.
#[tokio::test]
async fn a_rollback_continued_by_upgrade_keeps_the_cause() {
    let ran = paused_at_database_upgrade(Fault::FailOnce, keep).await;
    ran.fake()
        .fault(Op::Uninstall, Some("N2"), Fault::CrashAfter);
    let ran = ran.rollback().await.resume().await;
    assert_rolled_back(&ran);
    ran.assert_error("upgrade-database@N1");
}
