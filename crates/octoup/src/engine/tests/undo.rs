//! A failure before the database upgrade is undone: the original version serves everywhere,
//! the flags and watchdogs are as before, what the run did is `undone` in the journal.

use super::*;

/// Runs three nodes (N1 with a watchdog) with `fault`; the run fails and is put back. The
/// step that failed stays `failed`; `undone` steps were reached and reversed.
async fn undone(op: Op, node: Option<&str>, fault: Fault, failed: &str, undone: &[&str]) -> Ran {
    let ran = Scenario::nodes(3)
        .watchdog("N1")
        .fault(op, node, fault)
        .run()
        .await;
    ran.assert_undone()
        .assert_steps(&[failed], StepState::Failed)
        .assert_steps(undone, StepState::Undone);
    ran.assert_error(failed);
    let run = ran.journal();
    for s in &run.steps {
        if s.state == StepState::Done {
            let kind = super::super::catalogue::StepKind::parse(&s.name).expect("known step");
            assert!(!kind.has_undo(), "{} is done but was not undone", s.id);
        }
    }
    ran
}

const DRAINS: [&str; 3] = ["drain@N1", "drain@N2", "drain@N3"];
const STOPS: [&str; 3] = ["stop@N1", "stop@N2", "stop@N3"];
const INSTALLS: [&str; 3] = ["install@N1", "install@N2", "install@N3"];

#[tokio::test]
async fn a_failed_maintenance_on_is_undone() {
    undone(
        Op::Maintenance(true),
        None,
        Fault::FailOnce,
        "maintenance-on",
        &[],
    )
    .await;
}

#[tokio::test]
async fn a_drain_deadline_with_tasks_running_is_undone() {
    let ran = Scenario::nodes(3).task("N2").run().await;
    ran.assert_undone()
        .assert_steps(&["drain@N2"], StepState::Failed)
        .assert_steps(
            &["maintenance-on", "drain@N1", "drain@N3"],
            StepState::Undone,
        )
        .assert_steps(&STOPS, StepState::Planned);
    ran.assert_error("drain deadline");
}

#[tokio::test]
async fn a_failed_drain_is_undone() {
    undone(
        Op::Drain(true),
        Some("N2"),
        Fault::FailOnce,
        "drain@N2",
        &["maintenance-on", "drain@N1", "drain@N3"],
    )
    .await;
}

#[tokio::test]
async fn a_failed_watchdog_delete_is_undone() {
    let ran = undone(
        Op::DeleteWatchdog,
        Some("N1"),
        Fault::FailOnce,
        "delete-watchdog@N1",
        &["maintenance-on"],
    )
    .await;
    ran.assert_steps(&DRAINS, StepState::Undone);
}

#[tokio::test]
async fn a_failed_stop_is_undone() {
    let ran = undone(
        Op::Stop,
        Some("N2"),
        Fault::FailOnce,
        "stop@N2",
        &["stop@N1", "stop@N3", "delete-watchdog@N1"],
    )
    .await;
    ran.assert_steps(&DRAINS, StepState::Undone);
}

#[tokio::test]
async fn a_hung_stop_is_undone_and_the_node_that_still_runs_is_left_running() {
    let ran = undone(
        Op::Stop,
        Some("N2"),
        Fault::Hang,
        "stop@N2",
        &["stop@N1", "stop@N3"],
    )
    .await;
    assert_eq!(ran.count("N2", stopped), 0);
    assert_eq!(
        ran.count("N2", started),
        0,
        "N2 never stopped: not started again"
    );
}

#[tokio::test]
async fn a_failed_database_backup_is_undone_and_the_installs_it_overlapped_are_reversed() {
    let ran = undone(Op::Backup, None, Fault::FailOnce, "backup-database", &STOPS).await;
    ran.assert_steps(&INSTALLS, StepState::Undone);
    for n in ["N1", "N2", "N3"] {
        assert_eq!(
            ran.count(n, installed),
            2,
            "{n}: target, then the original back"
        );
    }
}

#[tokio::test]
async fn a_failed_backup_verification_is_undone() {
    let ran = undone(
        Op::Verify,
        None,
        Fault::FailOnce,
        "verify-backup",
        &INSTALLS,
    )
    .await;
    ran.assert_steps(&["backup-database"], StepState::Done);
}

#[tokio::test]
async fn a_failed_install_on_one_node_is_undone() {
    let ran = undone(
        Op::Install,
        Some("N2"),
        Fault::FailOnce,
        "install@N2",
        &["install@N1", "install@N3", "stop@N2"],
    )
    .await;
    assert_eq!(
        ran.count("N2", installed),
        0,
        "N2 kept its original binaries"
    );
}

#[tokio::test]
async fn an_install_that_hung_after_installing_is_reversed() {
    let ran = undone(
        Op::Install,
        Some("N3"),
        Fault::HangAfterDoing,
        "install@N3",
        &["install@N1", "install@N2"],
    )
    .await;
    assert_eq!(
        ran.count("N3", installed),
        2,
        "the target, then the original"
    );
}

#[tokio::test]
async fn without_a_staged_original_a_failed_backup_comes_before_any_install() {
    let ran = Scenario::nodes(2)
        .config(|c| c.rollback.enabled = false)
        .fault(Op::Backup, None, Fault::FailOnce)
        .run()
        .await;
    ran.assert_undone()
        .assert_steps(&["install@N1", "install@N2"], StepState::Planned);
    assert_eq!(ran.count("N1", installed), 0);
}

#[tokio::test]
async fn a_failure_before_the_outage_changes_nothing() {
    let ran = Scenario::nodes(2)
        .fault(Op::Stage, None, Fault::FailOnce)
        .run()
        .await;
    ran.assert_outcome(Outcome::Refused)
        .assert_status(RunStatus::Failed)
        .assert_serving(FROM)
        .assert_steps(&["stage-installer"], StepState::Failed)
        .assert_steps(&["maintenance-on"], StepState::Planned);
    assert!(ran.report().refused);
    assert_eq!(
        ran.history().len(),
        2,
        "Began and the fault: {:#?}",
        ran.history()
    );
}

#[tokio::test]
async fn flags_already_on_stay_on_after_an_undo() {
    let ran = Scenario::nodes(3)
        .with(|m| {
            m.maintenance = true;
            m.node_mut("N3").drained = true;
        })
        .fault(Op::Stop, Some("N1"), Fault::FailOnce)
        .run()
        .await;
    ran.assert_undone();
    let m = ran.model();
    assert!(m.maintenance && m.node("N3").drained && !m.node("N1").drained);
}

/// Two nodes: stop@N2 fails, then the undo's start of N1 fails once: the undo pauses.
async fn undo_paused() -> Ran {
    let ran = Scenario::nodes(2)
        .fault(Op::Stop, Some("N2"), Fault::FailOnce)
        .fault(Op::Start, Some("N1"), Fault::FailOnce)
        .run()
        .await;
    ran.assert_paused("octoup upgrade");
    ran.assert_error("stop@N2: ").assert_error("undo stop@N1");
    ran
}

#[tokio::test]
async fn an_undo_that_fails_pauses_and_the_resume_finishes_it() {
    undo_paused().await.resume().await.assert_undone();
}

#[tokio::test]
async fn the_undo_never_starts_a_node_whose_binaries_differ_from_the_database() {
    let ran = undo_paused().await;
    // While the undo waits, N1 gets the target's binaries (by hand): it must stay stopped.
    ran.fake().install_by_hand("N1", &v(TARGET));
    let ran = ran.resume().await;
    ran.assert_paused("octoup upgrade")
        .assert_error("N1 has 2024.2.7 installed, not 2024.1.10");
    assert_eq!(ran.model().node("N1").serving, None);
}

/// `Engine::resume` clears `run.error` before `run_undo(None)` reads the cause from it:
/// the finished run then says `error: ""` (journal, report, `octoup status`).
#[tokio::test]
async fn a_resumed_undo_keeps_the_cause() {
    let ran = undo_paused().await.resume().await;
    ran.assert_error("stop@N2: ");
}

#[tokio::test]
async fn without_the_original_installer_changed_nodes_are_left_stopped_not_started() {
    // No original installer was staged; the backup, then the installs on both nodes ran
    // (N2's timed out after installing): the undo cannot put 2024.1.10 back, so no node
    // may start (I2).
    let ran = Scenario::nodes(2)
        .config(|c| c.rollback.enabled = false)
        .fault(Op::Install, Some("N2"), Fault::HangAfterDoing)
        .run()
        .await;
    ran.assert_paused("octoup upgrade");
    ran.assert_next("Install 2024.1.10 on N");
    assert!(ran.model().nodes.iter().all(|n| n.serving.is_none()));
    // The operator puts 2024.1.10 back by hand; `octoup upgrade` finishes the undo.
    for n in ["N1", "N2"] {
        ran.fake().install_by_hand(n, &v(FROM));
    }
    ran.resume().await.assert_undone();
}
