//! One test per row of the README's "Exit status" table, each driving the real binary
//! against the simulator: the code, and, where the table says "nothing was changed", that
//! the simulator's history has no mutating event. A row added to the table gets its test
//! here.

use serde_json::Value;

use octoup_testkit::*;

const FROM: &str = "2024.1.10";
const TARGET: &str = "2024.3.13050";

/// The table's promise for rows 2, 3 and 6.
#[track_caller]
fn assert_nothing_changed(sim: &Sim, r: &Ran) {
    assert_eq!(
        mutating(&sim.history()),
        Vec::<String>::new(),
        "exit {} must change nothing\nstdout:\n{}\nstderr:\n{}",
        r.code,
        r.stdout,
        r.stderr
    );
}

#[test]
fn row_0_upgraded() {
    let (sim, r) = Scenario::new().run(&["upgrade", "--json"]);
    r.expect_code(0);
    assert_eq!(r.outcome(), "upgraded");
    assert!(r.all_nodes_on(TARGET), "{}", r.stdout);
    // And "the command did what it was asked": status of the finished run.
    sim.octoup(&["status", "--json"]).expect_code(0);
    sim.assert_check();
}

#[test]
fn row_1_failed_and_put_back() {
    let (sim, r) = Scenario::new()
        .fault("service-stop", "exit:1")
        .run(&["upgrade", "--json"]);
    r.expect_code(1);
    assert_eq!(r.outcome(), "failed");
    assert!(r.all_nodes_on(FROM), "{}", r.stdout);
    assert!(
        r.json["next_step"].as_str().is_some_and(|n| !n.is_empty()),
        "the report says what to do: {}",
        r.stdout
    );
    assert_eq!(count(&sim.history(), "db-upgrade-started"), 0);
    sim.assert_check();
}

#[test]
fn row_2_bad_usage_or_configuration() {
    let (sim, r) = Scenario::new().run(&["upgrade", "--to", "banana", "--json"]);
    r.expect_code(2);
    assert!(
        r.json["error"].as_str().unwrap_or("").contains("banana"),
        "{}",
        r.stdout
    );
    assert_nothing_changed(&sim, &r);
}

#[test]
fn row_3_preflight_refused_or_unreachable() {
    // The feed cannot be read: the preflight refuses (a blocker), nothing is touched.
    let (sim, r) = Scenario::new()
        .config("versions", "feed", "/nonexistent/octoup-feed.json")
        .run(&["upgrade", "--json"]);
    r.expect_code(3);
    assert_eq!(r.json["refused"], true, "{}", r.stdout);
    assert_nothing_changed(&sim, &r);
}

#[test]
fn row_4_paused_in_a_safe_state() {
    let (sim, r) = Scenario::new()
        .fault("db-upgrade", "exit:1")
        .run(&["upgrade", "--json"]);
    r.expect_code(4);
    assert_eq!(r.outcome(), "paused");
    let next = r.json["next_step"].as_str().unwrap_or("");
    assert!(next.contains("octoup upgrade"), "{next}");
    // The documented safe state: maintenance mode on, every node stopped (a re-run
    // finishes: failures.rs).
    assert_eq!(
        sim.state()["database"]["maintenance"]["is_in_maintenance_mode"],
        true
    );
    for n in r.json["nodes"].as_array().unwrap() {
        assert!(n["serving"].is_null(), "{}", r.stdout);
    }
}

#[test]
fn row_5_rolled_back() {
    let (sim, r) = Scenario::new()
        .config("rollback", "automatic", true)
        .fault("db-upgrade", "exit:1")
        .run(&["upgrade", "--json"]);
    r.expect_code(5);
    assert_eq!(r.outcome(), "rolled-back");
    assert!(r.all_nodes_on(FROM), "the original serves: {}", r.stdout);
    assert_eq!(sim.state()["database"]["schema_version"], FROM);
    sim.assert_check();
}

#[test]
fn row_6_another_run_holds_the_lock() {
    let sim = Scenario::new().start();
    // This test holds the lock the way a running octoup does.
    let state = sim.dir().join("octoup-state");
    std::fs::create_dir_all(&state).unwrap();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state.join("octoup.lock"))
        .unwrap();
    lock.try_lock().expect("take the lock");
    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(6);
    assert!(
        r.json["error"]
            .as_str()
            .unwrap_or("")
            .contains("another octoup run"),
        "{}",
        r.stdout
    );
    assert_nothing_changed(&sim, &r);
    drop(lock);
}

#[test]
fn row_12_check_exit_code_when_an_upgrade_is_eligible() {
    let sim = Scenario::new().start();
    let eligible = sim.octoup(&["check", "--exit-code", "--json"]);
    eligible.expect_code(12);
    assert_eq!(eligible.json["target"], TARGET, "{}", eligible.stdout);
    // Without the flag the same answer is a success.
    sim.octoup(&["check", "--json"]).expect_code(0);
    // Up to date: 0 with the flag too.
    sim.octoup(&["upgrade", "--json"]).expect_code(0);
    let before = sim.history().len();
    let current = sim.octoup(&["check", "--exit-code", "--json"]);
    current.expect_code(0);
    assert_eq!(current.json["target"], Value::Null, "{}", current.stdout);
    // Errors keep their codes: a server that cannot be reached is 3.
    let unreachable = Ran::of(
        sim.octoup_cmd(&["check", "--exit-code", "--json"])
            .env("OCTOPUS_URL", "http://127.0.0.1:1"),
    );
    unreachable.expect_code(3);
    // `check` only reads.
    assert_eq!(mutating(&sim.history()[before..]), Vec::<String>::new());
}
