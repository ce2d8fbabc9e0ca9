//! octoup dies inside a step (an injected crash: the engine's future panics in the fake,
//! so the journal on disk is exactly what a killed octoup leaves, the step `running`, and
//! the world as the step left it, finished or not). The next `octoup upgrade` must read
//! the real state: install and the schema upgrade are never repeated once done; stop,
//! start and the watchdogs are confirmed.

use super::*;
use crate::engine::Record;
use crate::journal::Step;
use std::time::Duration;

/// Three nodes, N1 with a watchdog; `fault` crashes octoup in `step`; the run is resumed
/// and must finish upgraded.
async fn crash_then_resume(op: Op, node: Option<&str>, fault: Fault, step: &str) -> Ran {
    let ran = Scenario::nodes(3)
        .watchdog("N1")
        .fault(op, node, fault)
        .run()
        .await;
    assert!(ran.report.is_none(), "the run must crash");
    ran.assert_status(RunStatus::Running)
        .assert_steps(&[step], StepState::Running)
        .assert_invariants(false);
    let ran = ran.resume().await;
    ran.assert_upgraded();
    ran
}

const BOTH: [Fault; 2] = [Fault::CrashBefore, Fault::CrashAfter];

/// `op` ran on `node` once, or twice when the crash came before it took effect (the
/// crashed call, then the resumed run's).
fn assert_ran_once_more_if_crashed_before(ran: &Ran, op: Op, node: &str, fault: Fault) {
    let want = if fault == Fault::CrashBefore { 2 } else { 1 };
    assert_eq!(
        ran.fake().calls(op, Some(node)),
        want,
        "{fault:?}: {op:?} calls"
    );
}

#[tokio::test]
async fn an_interrupted_install_is_not_repeated_where_it_finished() {
    for fault in BOTH {
        let ran = crash_then_resume(Op::Install, Some("N2"), fault, "install@N2").await;
        ran.assert_once_each(installed);
        assert_ran_once_more_if_crashed_before(&ran, Op::Install, "N2", fault);
    }
}

#[tokio::test]
async fn an_interrupted_schema_upgrade_is_not_repeated_when_it_finished() {
    for fault in BOTH {
        let ran = crash_then_resume(Op::UpgradeDatabase, None, fault, "upgrade-database@N1").await;
        assert_ran_once_more_if_crashed_before(&ran, Op::UpgradeDatabase, "N1", fault);
    }
}

#[tokio::test]
async fn an_interrupted_stop_is_confirmed() {
    for fault in BOTH {
        let ran = crash_then_resume(Op::Stop, Some("N2"), fault, "stop@N2").await;
        ran.assert_once_each(stopped);
        // The stop command runs again on N2 and confirms it (a no-op on a stopped service).
        assert_eq!(ran.fake().calls(Op::Stop, Some("N2")), 2, "{fault:?}");
    }
}

#[tokio::test]
async fn an_interrupted_start_is_confirmed_without_starting_twice() {
    for fault in BOTH {
        let ran = crash_then_resume(Op::Start, Some("N2"), fault, "start@N2").await;
        ran.assert_once_each(started);
        assert_ran_once_more_if_crashed_before(&ran, Op::Start, "N2", fault);
    }
}

#[tokio::test]
async fn an_interrupted_watchdog_delete_is_confirmed() {
    for fault in BOTH {
        let ran =
            crash_then_resume(Op::DeleteWatchdog, Some("N1"), fault, "delete-watchdog@N1").await;
        let deleted = watchdog_events(&ran, |e| matches!(e, Event::WatchdogDeleted { .. }));
        assert_eq!(deleted, 1, "{fault:?}");
        ran.assert_steps(
            &["delete-watchdog@N1", "create-watchdog@N1"],
            StepState::Done,
        );
    }
}

#[tokio::test]
async fn an_interrupted_watchdog_creation_is_confirmed() {
    for fault in BOTH {
        let ran =
            crash_then_resume(Op::CreateWatchdog, Some("N1"), fault, "create-watchdog@N1").await;
        let created = watchdog_events(&ran, |e| matches!(e, Event::WatchdogCreated { .. }));
        assert_eq!(created, 1, "{fault:?}");
    }
}

fn watchdog_events(ran: &Ran, is: fn(&Event) -> bool) -> usize {
    ran.history().iter().filter(|e| is(e)).count()
}

#[tokio::test]
async fn an_interrupted_database_backup_is_made_again_and_the_new_one_verified() {
    let ran = crash_then_resume(Op::Backup, None, Fault::CrashAfter, "backup-database").await;
    let made: Vec<std::path::PathBuf> = ran
        .history()
        .iter()
        .filter_map(|e| match e {
            Event::BackupMade { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(made.len(), 2, "a half-written backup is never trusted");
    assert_eq!(ran.recorded_file("backup-database"), made[1]);
    assert!(ran.history().contains(&Event::BackupVerified {
        path: made[1].clone()
    }));
}

#[tokio::test]
async fn an_interrupted_maintenance_on_is_ended_as_it_began() {
    // Found on after the crash, it is taken as ours (the preflight's "was off" is never
    // re-read) and turned off at the end.
    let ran = crash_then_resume(
        Op::Maintenance(true),
        None,
        Fault::CrashAfter,
        "maintenance-on",
    )
    .await;
    assert!(!ran.model().maintenance);
}

#[tokio::test]
async fn an_interrupted_drain_is_ended_as_it_began() {
    crash_then_resume(Op::Drain(true), Some("N3"), Fault::CrashAfter, "drain@N3").await;
}

#[tokio::test]
async fn a_crash_before_the_outage_resumes_and_finishes() {
    let ran = crash_then_resume(Op::MasterKey, None, Fault::CrashBefore, "backup-master-key").await;
    assert!(ran.report().backups.master_key.is_some());
}

#[cfg(unix)]
#[tokio::test]
async fn a_schema_upgrade_still_running_after_the_crash_is_waited_for_not_run_twice() {
    // octoup died; its `database --upgrade` child goes on and finishes 300 ms later.
    let (process, reaper) = live_process("2");
    let ran = Scenario::nodes(2)
        .config(|c| c.timeouts.db_upgrade = 5)
        .child_process(process)
        .fault(Op::UpgradeDatabase, None, Fault::CrashLaunched)
        .run()
        .await;
    assert!(ran.report.is_none(), "the run must crash");
    let world = ran.fake().world(&ran.journal().nodes);
    let orphan = world.nodes[0].1.clone();
    let child = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        orphan.database_upgrade().await
    });
    let ran = ran.resume().await;
    child.await.expect("orphan task").expect("orphaned upgrade");
    ran.assert_upgraded();
    assert_eq!(
        ran.fake().calls(Op::UpgradeDatabase, Some("N1")),
        2,
        "the crashed call and the orphan's"
    );
    reaper.join().unwrap();
}

#[tokio::test]
async fn a_schema_upgrade_killed_after_journaling_its_launch_but_before_the_spawn_is_not_waited_for()
 {
    // Found by scripts/chaos.sh (seed 18701, run 11): killed between the journal's
    // `launching` and the spawn, every re-run waited the whole `[timeouts] db_upgrade`.
    // The launch marker, written at the spawn itself, says it never happened.
    let ran = Scenario::nodes(2)
        .config(|c| c.timeouts.db_upgrade = 60)
        .fault(Op::UpgradeDatabase, None, Fault::CrashBefore)
        .run()
        .await;
    assert!(ran.report.is_none(), "the run must crash");
    let step = ran.journal().step("upgrade-database@N1").cloned().unwrap();
    assert!(step.launching() && step.child().is_none(), "{step:?}");
    let began = std::time::Instant::now();
    let ran = ran.resume().await;
    let took = began.elapsed();
    ran.assert_upgraded();
    assert!(took < Duration::from_secs(5), "waited {took:?}");
    assert_eq!(ran.fake().calls(Op::UpgradeDatabase, Some("N1")), 2);
}

/// octoup died in the schema upgrade with `[timeouts] db_upgrade` long; `edit` makes the
/// journal say what became of the child. The resume must not wait for it.
async fn crashed_in_the_schema_upgrade_then(edit: impl FnOnce(&mut Step)) -> (Ran, Duration) {
    let ran = Scenario::nodes(2)
        .config(|c| c.timeouts.db_upgrade = 60)
        .fault(Op::UpgradeDatabase, None, Fault::CrashBefore)
        .run()
        .await;
    assert!(ran.report.is_none(), "the run must crash");
    ran.edit_journal(|r| {
        let step = r.step_mut("upgrade-database@N1").expect("the step");
        assert!(step.launching(), "the launch is journaled before the spawn");
        edit(step);
    });
    let began = std::time::Instant::now();
    let ran = ran.resume().await;
    let took = began.elapsed();
    ran.assert_upgraded();
    (ran, took)
}

#[tokio::test]
async fn a_schema_upgrade_whose_journaled_process_is_gone_is_not_waited_for() {
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let process = crate::process::platform::ProcessId::of(gone.id());
    gone.wait().unwrap();
    let (ran, took) = crashed_in_the_schema_upgrade_then(|s| {
        Record::Child {
            process,
            started: crate::process::clock::now(),
        }
        .write(s)
    })
    .await;
    assert!(took < Duration::from_secs(5), "waited {took:?}");
    assert_eq!(ran.fake().calls(Op::UpgradeDatabase, Some("N1")), 2);
}

#[tokio::test]
async fn a_schema_upgrade_never_spawned_is_not_waited_for() {
    let (_, took) = crashed_in_the_schema_upgrade_then(|s| {
        s.outputs.remove("launching");
    })
    .await;
    assert!(took < Duration::from_secs(5), "waited {took:?}");
}

/// The service and watchdog steps whose command's launch is tracked, each with the fault
/// target and step it is on (N1 has the watchdog).
const LAUNCHED: [(Op, &str, &str); 4] = [
    (Op::Stop, "N2", "stop@N2"),
    (Op::Start, "N2", "start@N2"),
    (Op::DeleteWatchdog, "N1", "delete-watchdog@N1"),
    (Op::CreateWatchdog, "N1", "create-watchdog@N1"),
];

/// Timeouts long enough that a wait by time would show: the resume is timed.
fn long_timeouts(c: &mut Config) {
    c.timeouts.stop = 60;
    c.timeouts.start = 60;
    c.timeouts.command = 60;
}

/// octoup dies in `step` (by `fault`, with `child` as the command's process); the resume
/// must finish upgraded; how long it took.
async fn crash_in_launched_step(
    op: Op,
    node: &str,
    step: &str,
    fault: Fault,
    child: crate::process::platform::ProcessId,
) -> (Ran, Duration) {
    let ran = Scenario::nodes(3)
        .watchdog("N1")
        .config(long_timeouts)
        .child_process(child)
        .fault(op, Some(node), fault)
        .run()
        .await;
    assert!(ran.report.is_none(), "{step}: the run must crash");
    ran.assert_steps(&[step], StepState::Running);
    let began = std::time::Instant::now();
    let ran = ran.resume().await;
    let took = began.elapsed();
    ran.assert_upgraded();
    (ran, took)
}

/// A process that has ended (pid 0 is never one octoup started).
fn ended() -> crate::process::platform::ProcessId {
    crate::process::platform::ProcessId {
        pid: 0,
        os_start: None,
    }
}

#[tokio::test]
async fn a_step_killed_before_its_command_was_launched_is_not_waited_for() {
    for (op, node, step) in LAUNCHED {
        let (ran, took) = crash_in_launched_step(op, node, step, Fault::CrashBefore, ended()).await;
        assert!(took < Duration::from_secs(5), "{step}: waited {took:?}");
        assert_eq!(ran.fake().calls(op, Some(node)), 2, "{step}: run again");
    }
}

#[tokio::test]
async fn a_step_whose_command_was_launched_and_has_exited_is_rechecked_not_waited_for() {
    for (op, node, step) in LAUNCHED {
        // The command was spawned and ended without its effect (octoup died first).
        let (ran, took) =
            crash_in_launched_step(op, node, step, Fault::CrashLaunched, ended()).await;
        assert!(took < Duration::from_secs(5), "{step}: waited {took:?}");
        assert_eq!(
            ran.fake().calls(op, Some(node)),
            2,
            "{step}: re-issued by the resumed step"
        );
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_step_whose_command_still_runs_is_waited_for_until_it_ends() {
    for (op, node, step) in LAUNCHED {
        // The command runs on for about a second after octoup died, then ends without
        // its effect: the resume waits for it (not for the 60 s timeout), then re-issues it.
        let (process, reaper) = live_process("1");
        let (ran, took) =
            crash_in_launched_step(op, node, step, Fault::CrashLaunched, process).await;
        reaper.join().unwrap();
        assert!(
            took >= Duration::from_millis(800),
            "{step}: did not wait for the running command ({took:?})"
        );
        assert!(took < Duration::from_secs(10), "{step}: waited {took:?}");
        assert_eq!(ran.fake().calls(op, Some(node)), 2, "{step}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_running_stop_that_takes_effect_is_waited_for_and_not_the_process() {
    // `service --stop` still runs after octoup died; 300 ms later the service is down.
    let (process, reaper) = live_process("5");
    let ran = Scenario::nodes(2)
        .config(long_timeouts)
        .child_process(process)
        .fault(Op::Stop, Some("N2"), Fault::CrashLaunched)
        .run()
        .await;
    assert!(ran.report.is_none(), "the run must crash");
    let world = ran.fake().world(&ran.journal().nodes);
    let orphan = world.nodes[1].1.clone();
    let child = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        orphan.stop().await
    });
    let began = std::time::Instant::now();
    let ran = ran.resume().await;
    let took = began.elapsed();
    child.await.expect("orphan task").expect("orphaned stop");
    ran.assert_upgraded();
    assert!(
        (Duration::from_millis(250)..Duration::from_secs(4)).contains(&took),
        "waited {took:?}: the stop took effect after 300 ms, its process ran 5 s"
    );
    assert_eq!(ran.count("N2", stopped), 1, "stopped once");
    let _ = std::process::Command::new("kill")
        .arg(process.pid.to_string())
        .status();
    reaper.join().unwrap();
}

#[tokio::test]
async fn a_finished_run_leaves_no_launch_markers() {
    let (ran, _) =
        crash_in_launched_step(Op::Stop, "N2", "stop@N2", Fault::CrashLaunched, ended()).await;
    let launches = ran.ctx.config.state.dir.join("launches");
    let left: Vec<_> = std::fs::read_dir(&launches)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A `sleep` of `seconds`, and the thread that reaps it when it ends (so that it does not
/// linger as a zombie, which would still count as a process on some systems).
#[cfg(unix)]
fn live_process(
    seconds: &str,
) -> (
    crate::process::platform::ProcessId,
    std::thread::JoinHandle<()>,
) {
    let mut child = std::process::Command::new("sleep")
        .arg(seconds)
        .spawn()
        .unwrap();
    let process = crate::process::platform::ProcessId::of(child.id());
    let reaper = std::thread::spawn(move || {
        let _ = child.wait();
    });
    (process, reaper)
}
