//! Crash safety: a run killed half-way is resumed from its journal by the next
//! `octoup upgrade`, which checks the real state instead of repeating steps blindly.

use std::time::{Duration, Instant};

use octoup_testkit::*;

const TARGET: &str = "2024.3.13050";

/// Kills `octoup` once the history shows `kind` (the slowed-down step has begun).
fn crash_when(sim: &Sim, kind: &str) {
    let mut child = sim.spawn_until(&["upgrade", "--json"], kind);
    child.kill().unwrap();
    child.wait().unwrap();
}

fn wait_until(sim: &Sim, what: &str, f: impl Fn(&[serde_json::Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f(&sim.history()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_crash_during_the_database_upgrade_is_resumed_without_repeating_it() {
    let sim = Scenario::new()
        .nodes(2)
        .fault("db-upgrade", "delay:1500")
        .start();
    crash_when(&sim, "fault-fired");
    let status = sim.octoup(&["status", "--json"]);
    assert_eq!(status.json["finished"], false, "{}", status.stdout);
    let step = status.json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "upgrade-database")
        .unwrap()
        .clone();
    assert_eq!(
        step["state"], "running",
        "the journal shows the step in flight"
    );
    // The orphaned `database --upgrade` finishes on its own, as a real one would.
    wait_until(&sim, "db-upgrade-finished", |h| {
        count(h, "db-upgrade-finished") == 1
    });

    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(0);
    assert_eq!(r.outcome(), "upgraded");
    let h = sim.history();
    assert_eq!(
        count(&h, "db-upgrade-started"),
        1,
        "repeated: {}",
        kinds(&h)
    );
    assert!(r.all_nodes_on(TARGET), "{}", r.stdout);
    sim.assert_check();
}

#[test]
fn a_crash_during_the_installs_is_resumed_without_reinstalling() {
    let sim = Scenario::new()
        .nodes(2)
        .fault_times("msiexec", "delay:1000", Some("OCTO-NODE-02"), 1)
        .start();
    crash_when(&sim, "fault-fired");
    wait_until(&sim, "both installs", |h| {
        h.iter()
            .filter(|e| e["kind"] == "install-finished" && e["version"] == TARGET)
            .count()
            == 2
    });
    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(0);
    let h = sim.history();
    let installs = h
        .iter()
        .filter(|e| e["kind"] == "install-started" && e["version"] == TARGET)
        .count();
    assert_eq!(installs, 2, "an install was repeated: {}", kinds(&h));
    sim.assert_check();
}

#[test]
fn a_crash_right_after_the_snapshot_adopts_it_instead_of_refusing_it() {
    // The snapshot is made, then octoup dies before it journals it (the `delay` comes
    // after the CREATE). The resumed run finds its own snapshot (named after the run) and
    // goes on with it; a second snapshot would be refused by the revert rule.
    let sim = Scenario::new()
        .nodes(2)
        .config("database", "strategy", "snapshot")
        .fault("sql-snapshot", "delay:1500")
        .start();
    crash_when(&sim, "fault-fired");
    assert_eq!(count(&sim.history(), "db-snapshot-created"), 1);
    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(0);
    assert_eq!(r.outcome(), "upgraded");
    let h = sim.history();
    assert_eq!(count(&h, "db-snapshot-created"), 1, "{}", kinds(&h));
    assert_eq!(
        count(&h, "db-snapshot-dropped"),
        1,
        "released at the end: {}",
        kinds(&h)
    );
    assert!(r.all_nodes_on(TARGET), "{}", r.stdout);
    sim.assert_check();
}
