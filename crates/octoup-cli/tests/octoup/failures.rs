//! Failures of each outage step: before the database upgrade everything is put back (exit
//! 1); at or after it the run pauses in a safe state (exit 4) and a re-run finishes. The
//! simulator's invariant check passes at the end of every scenario.

use octoup_testkit::*;

const FROM: &str = "2024.1.10";
const TARGET: &str = "2024.3.13050";

/// After an undone failure: every node serves the original version, nothing was upgraded.
fn assert_put_back(sim: &Sim, r: &Ran) {
    r.expect_code(1);
    assert_eq!(r.outcome(), "failed", "{}", r.stdout);
    for n in r.json["nodes"].as_array().unwrap() {
        assert_eq!(n["version"], FROM, "{}", r.stdout);
        assert!(n["serving"].is_string(), "{}", r.stdout);
    }
    assert!(
        r.json["next_step"].as_str().unwrap().contains("put back"),
        "{}",
        r.stdout
    );
    let h = sim.history();
    assert_eq!(count(&h, "db-upgrade-started"), 0, "{}", kinds(&h));
    let state = sim.state();
    assert_eq!(
        state["database"]["maintenance"]["is_in_maintenance_mode"],
        false
    );
    assert_eq!(state["database"]["schema_version"], FROM);
    sim.assert_check();
}

#[test]
fn a_non_admin_key_is_refused_before_anything_changes() {
    let (sim, r) = Scenario::new().readonly_key().run(&["upgrade", "--json"]);
    // A key without the permission is the operator's configuration to fix: 2, like a
    // refused key (README, "Exit status").
    r.expect_code(2);
    assert_eq!(r.outcome(), "failed");
    let error = r.json["error"].as_str().unwrap();
    assert!(error.contains("AdministerSystem"), "{error}");
    assert!(error.contains("administrator"), "{error}");
    assert_eq!(mutating(&sim.history()), Vec::<String>::new());
    // Text mode says the same on stderr.
    let r = sim.octoup(&["upgrade"]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("AdministerSystem"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    sim.assert_check();
}

#[test]
fn drain_deadline_with_tasks_running_puts_everything_back_and_names_them() {
    let sim = Scenario::new()
        .task("OCTO-NODE-01", 1_000_000.0)
        .config("drain", "wait_seconds", 1)
        .start();
    let r = sim.octoup(&["upgrade", "--json"]);
    assert_put_back(&sim, &r);
    let error = r.json["error"].as_str().unwrap();
    assert!(
        error.contains("Deploy Web to Production on OCTO-NODE-01"),
        "{error}"
    );
    assert!(error.contains("cancel_tasks"), "{error}");
    assert_eq!(r.step("drain", None), "failed");
    assert_eq!(r.step("maintenance-on", None), "undone");
    let drain = r.json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "drain")
        .unwrap();
    assert!(
        drain["detail"].as_str().unwrap_or("").contains("put back"),
        "{drain}"
    );
    let h = sim.history();
    assert_eq!(
        count(&h, "service-stopping"),
        0,
        "nothing may stop: {}",
        kinds(&h)
    );
    assert_eq!(count(&h, "task-killed"), 0);
}

#[test]
fn drain_deadline_cancels_when_configured() {
    let sim = Scenario::new()
        .task("OCTO-NODE-01", 1_000_000.0)
        .config("drain", "wait_seconds", 1)
        .config("drain", "cancel_tasks", true)
        .start();
    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(0);
    let h = sim.history();
    let canceled = first(&h, "task-canceled");
    assert!(canceled < first(&h, "service-stopping"), "{}", kinds(&h));
    assert_eq!(count(&h, "task-killed"), 0);
    sim.assert_check();
}

#[test]
fn a_failed_stop_puts_everything_back() {
    let sim = Scenario::new()
        .nodes(2)
        .watchdog("OCTO-NODE-02")
        .fault_times("service-stop", "exit:1", Some("OCTO-NODE-02"), 1)
        .start();
    let r = sim.octoup(&["upgrade", "--json"]);
    assert_put_back(&sim, &r);
    assert_eq!(r.step("stop", Some("OCTO-NODE-02")), "failed");
    assert_eq!(r.step("stop", Some("OCTO-NODE-01")), "undone");
    assert_eq!(r.step("delete-watchdog", Some("OCTO-NODE-02")), "undone");
    let h = sim.history();
    assert!(last(&h, "watchdog-created") > first(&h, "watchdog-deleted"));
}

#[test]
fn a_failed_backup_puts_the_original_binaries_back() {
    let sim = Scenario::new()
        .nodes(2)
        .fault("sql-backup", "exit:1")
        .start();
    let r = sim.octoup(&["upgrade", "--json"]);
    assert_put_back(&sim, &r);
    assert_eq!(r.step("backup-database", None), "failed");
    let h = sim.history();
    // The installs overlapped the backup; both nodes got the original version back
    // (uninstall, then the staged original installer) before they started again.
    for node in ["OCTO-NODE-01", "OCTO-NODE-02"] {
        let up = find(&h, "install-finished", |e| {
            e["node"] == node && e["version"] == TARGET
        });
        let back = find(&h, "install-finished", |e| {
            e["node"] == node && e["version"] == FROM
        });
        if let Some(up) = up {
            let back = back.unwrap_or_else(|| panic!("{node} kept {TARGET}: {}", kinds(&h)));
            assert!(up < back);
            assert_eq!(r.step("install", Some(node)), "undone");
        }
    }
}

#[test]
fn a_failed_verification_puts_everything_back() {
    let sim = Scenario::new().fault("sql-verify", "exit:1").start();
    let r = sim.octoup(&["upgrade", "--json"]);
    assert_put_back(&sim, &r);
    assert_eq!(r.step("verify-backup", None), "failed");
}

#[test]
fn installer_1603_shows_the_log_tail_and_puts_everything_back() {
    let sim = Scenario::new().fault("msiexec", "exit:1603").start();
    let r = sim.octoup(&["upgrade", "--json"]);
    assert_put_back(&sim, &r);
    let error = r.json["error"].as_str().unwrap();
    assert!(error.contains("1603"), "{error}");
    assert!(
        error.contains("Installation success or error status: 1603"),
        "the log tail: {error}"
    );
}

#[test]
fn installer_1618_is_retried() {
    let sim = Scenario::new().fault("msiexec", "exit:1618").start();
    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(0);
    assert_eq!(r.outcome(), "upgraded");
    let h = sim.history();
    // The stand-in answered 1618 once (fault-fired), then the retry installed.
    let busy = find(&h, "fault-fired", |e| e["op"] == "msiexec").expect("1618 fired");
    let installed = find(&h, "install-finished", |e| e["version"] == TARGET).expect("installed");
    assert!(busy < installed, "{}", kinds(&h));
    sim.assert_check();
}

#[test]
fn a_failed_database_upgrade_pauses_safely_and_a_rerun_finishes() {
    let sim = Scenario::new()
        .nodes(2)
        .fault("db-upgrade", "exit:1")
        .start();
    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(4);
    assert_eq!(r.outcome(), "paused");
    let next = r.json["next_step"].as_str().unwrap();
    assert!(next.contains("octoup upgrade"), "{next}");
    assert!(
        next.contains("still 2024.1.10"),
        "the schema was rolled back: {next}"
    );
    assert!(
        next.contains(r.json["backups"]["database"].as_str().unwrap()),
        "{next}"
    );
    for n in r.json["nodes"].as_array().unwrap() {
        assert!(n["serving"].is_null(), "nodes stay stopped: {}", r.stdout);
    }
    let state = sim.state();
    assert_eq!(
        state["database"]["maintenance"]["is_in_maintenance_mode"],
        true
    );

    // `status` says where it stands; retargeting the half-finished run is refused.
    let status = sim.octoup(&["status", "--json"]);
    assert_eq!(status.json["status"], "paused");
    let other = sim.octoup(&["upgrade", "--to", "2024.2.9550", "--json"]);
    other.expect_code(2);
    assert!(
        other.json["error"]
            .as_str()
            .unwrap()
            .contains("cannot be retargeted"),
        "{}",
        other.stdout
    );

    // The fault fired once; the operator "fixed the cause": a re-run finishes.
    let again = sim.octoup(&["upgrade", "--json"]);
    again.expect_code(0);
    assert_eq!(again.outcome(), "upgraded", "{}", again.stdout);
    let h = sim.history();
    assert_eq!(count(&h, "db-upgrade-finished"), 1);
    sim.assert_check();
}

#[test]
fn a_failed_start_pauses_and_a_rerun_finishes() {
    let sim = Scenario::new()
        .nodes(2)
        .fault_times("service-start", "exit:1", Some("OCTO-NODE-02"), 1)
        .start();
    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(4);
    assert_eq!(r.outcome(), "paused");
    assert_eq!(r.step("start", Some("OCTO-NODE-02")), "failed");
    let next = r.json["next_step"].as_str().unwrap();
    assert!(next.contains("upgraded to 2024.3.13050"), "{next}");
    assert!(next.contains("OCTO-NODE-02 is stopped"), "{next}");
    // The node that serves the target takes tasks again and maintenance mode is restored
    // while the failed one waits: the invariants hold even in this paused state.
    assert_eq!(r.step("undrain", Some("OCTO-NODE-01")), "done");
    assert_eq!(r.step("maintenance-restore", None), "done");
    sim.assert_check();
    let again = sim.octoup(&["upgrade", "--json"]);
    again.expect_code(0);
    assert!(again.all_nodes_on(TARGET), "{}", again.stdout);
    sim.assert_check();
}

#[test]
fn a_second_run_while_one_holds_the_lock_exits_6() {
    // 1000 simulated seconds of database upgrade: 2 s of held lock.
    let sim = Scenario::new()
        .time_scale(0.002)
        .fault("db-upgrade", "delay:1000")
        .start();
    // The database upgrade is slowed down: the first run holds the lock meanwhile.
    let mut first_run = sim.spawn_until(&["upgrade", "--json"], "fault-fired");
    let second = sim.octoup(&["upgrade", "--json"]);
    second.expect_code(6);
    assert!(
        second.json["error"]
            .as_str()
            .unwrap()
            .contains("another octoup run (pid"),
        "{}",
        second.stdout
    );
    let status = first_run.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    sim.assert_check();
}
