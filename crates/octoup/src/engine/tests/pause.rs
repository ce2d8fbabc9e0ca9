//! A failure at or after the database upgrade pauses in a safe state with the next step;
//! `octoup upgrade` again finishes, with one schema upgrade in all.

use super::*;

/// Three nodes (N1 with a watchdog) with `fault`: paused at `failed`, next step names
/// `octoup upgrade`; then the resumed run finishes upgraded.
async fn paused_then_resumed(op: Op, node: Option<&str>, fault: Fault, failed: &str) -> Ran {
    let ran = Scenario::nodes(3)
        .watchdog("N1")
        .fault(op, node, fault)
        .run()
        .await;
    ran.assert_paused("octoup upgrade")
        .assert_steps(&[failed], StepState::Failed);
    ran.assert_error(failed);
    let resumed = ran.resume().await;
    resumed.assert_upgraded();
    resumed
}

#[tokio::test]
async fn a_failed_database_upgrade_pauses_with_every_node_stopped_then_resumes() {
    let ran = Scenario::nodes(3)
        .fault(Op::UpgradeDatabase, None, Fault::FailOnce)
        .run()
        .await;
    ran.assert_paused("octoup upgrade");
    ran.assert_next("schema is still 2024.1.10")
        .assert_next("octoup rollback");
    let m = ran.model();
    assert!(
        m.nodes.iter().all(|n| n.serving.is_none()),
        "every node stays stopped"
    );
    assert!(m.maintenance, "maintenance mode stays on while paused");
    ran.resume().await.assert_upgraded();
}

#[tokio::test]
async fn a_database_upgrade_that_timed_out_after_finishing_is_not_run_again() {
    let ran = Scenario::nodes(2)
        .fault(Op::UpgradeDatabase, None, Fault::HangAfterDoing)
        .run()
        .await;
    ran.assert_paused("octoup upgrade");
    ran.assert_next("already 2024.2.7");
    let ran = ran.resume().await;
    ran.assert_upgraded();
    assert_eq!(ran.fake().calls(Op::UpgradeDatabase, Some("N1")), 1);
}

#[tokio::test]
async fn a_failed_start_on_one_node_pauses_with_the_others_serving_then_resumes() {
    let ran = Scenario::nodes(3)
        .watchdog("N1")
        .fault(Op::Start, Some("N2"), Fault::FailOnce)
        .run()
        .await;
    ran.assert_paused("octoup upgrade")
        .assert_steps(&["start@N2"], StepState::Failed);
    // The nodes that serve take tasks again while N2 waits (I6 where it can hold).
    let m = ran.model();
    assert_eq!(m.node("N1").serving, Some(v(TARGET)));
    assert_eq!(m.node("N2").serving, None);
    assert!(!m.maintenance && m.nodes.iter().all(|n| !n.drained));
    assert!(m.node("N1").watchdog.is_some());
    ran.assert_next("N2 is stopped");
    let ran = ran.resume().await;
    ran.assert_upgraded();
    assert_eq!(ran.count("N2", started), 1);
}

#[tokio::test]
async fn a_failed_start_on_the_only_node_pauses_then_resumes() {
    let ran = Scenario::nodes(1)
        .fault(Op::Start, Some("N1"), Fault::Hang)
        .run()
        .await;
    ran.assert_paused("octoup upgrade");
    assert!(ran.model().maintenance, "no node serves: nothing restored");
    ran.resume().await.assert_upgraded();
}

#[tokio::test]
async fn a_start_that_hung_after_starting_pauses_then_resumes_without_a_second_start() {
    let ran = paused_then_resumed(Op::Start, Some("N3"), Fault::HangAfterDoing, "start@N3").await;
    assert_eq!(
        ran.count("N3", started),
        1,
        "the start that hung had started it"
    );
}

#[tokio::test]
async fn a_failed_verification_pauses_then_resumes() {
    let ran = paused_then_resumed(Op::ServedVersion, Some("N2"), Fault::FailOnce, "verify").await;
    ran.assert_steps(&["start@N1", "start@N2", "start@N3"], StepState::Done);
}

#[tokio::test]
async fn a_failed_watchdog_creation_pauses_then_resumes() {
    let ran = paused_then_resumed(
        Op::CreateWatchdog,
        Some("N1"),
        Fault::FailOnce,
        "create-watchdog@N1",
    )
    .await;
    assert!(ran.model().node("N1").watchdog.is_some());
}

#[tokio::test]
async fn a_failed_undrain_pauses_then_resumes() {
    paused_then_resumed(Op::Drain(false), Some("N2"), Fault::FailOnce, "undrain@N2").await;
}

#[tokio::test]
async fn a_failed_maintenance_restore_pauses_then_resumes() {
    paused_then_resumed(
        Op::Maintenance(false),
        None,
        Fault::Hang,
        "maintenance-restore",
    )
    .await;
}

#[tokio::test]
async fn a_database_upgrade_that_keeps_failing_stays_paused_until_fixed() {
    let ran = Scenario::nodes(2)
        .fault(Op::UpgradeDatabase, None, Fault::FailAlways)
        .run()
        .await;
    ran.assert_paused("octoup upgrade");
    let ran = ran.resume().await;
    ran.assert_paused("octoup upgrade");
    ran.fake().clear_faults();
    let ran = ran.resume().await;
    ran.assert_upgraded();
    assert_eq!(ran.fake().calls(Op::UpgradeDatabase, Some("N1")), 3);
}
