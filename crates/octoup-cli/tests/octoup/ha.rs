//! High availability: 1-, 3- and 5-node clusters upgraded over the local transport with the
//! orchestrator's overlap (the database backup runs while every node installs; every node
//! starts at once), and one non-primary node failing at each node-level step (stop,
//! install, start): the invariants hold, no node ever starts on a version other than the
//! schema's, the report names the node, the step and the next action, and a re-run finishes.

use serde_json::Value;

use octoup_testkit::*;

const FROM: &str = "2024.1.10";
const TARGET: &str = "2024.3.13050";
/// Steps long enough (in real time) that process start-up jitter on a loaded machine
/// cannot make parallel work look serial.
const DURATIONS: &str = "[durations]\nstop = 250\nbackup = 500\nverify = 20\ninstall = 500\ndb_upgrade = 50\nstart = 250\n";
const FAILING: &str = "OCTO-NODE-03";

fn node_names(n: u32) -> Vec<String> {
    (1..=n).map(|i| format!("OCTO-NODE-{i:02}")).collect()
}

/// I2 as the history shows it: every service start ran the schema's version.
fn assert_no_mismatched_start(h: &[Value]) {
    for e in h.iter().filter(|e| {
        matches!(
            e["kind"].as_str(),
            Some("service-starting" | "service-started")
        )
    }) {
        assert_eq!(
            e["binary_version"], e["schema_version"],
            "a node started on a mismatched version: {e}"
        );
    }
    assert_eq!(count(h, "service-start-failed"), 0, "{}", kinds(h));
}

/// Every node serves the target; one schema upgrade, by the primary; the checker agrees.
fn assert_upgraded(sim: &Sim, r: &Ran, n: u32) -> Vec<Value> {
    r.expect_code(0);
    assert_eq!(r.outcome(), "upgraded", "{}", r.stdout);
    let nodes = r.json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), n as usize, "{}", r.stdout);
    for node in nodes {
        assert_eq!(node["version"], TARGET, "{}", r.stdout);
        assert!(node["serving"].is_string(), "{}", r.stdout);
    }
    let h = sim.history();
    assert_eq!(count(&h, "db-upgrade-finished"), 1, "{}", kinds(&h));
    assert_eq!(h[first(&h, "db-upgrade-started")]["node"], "OCTO-NODE-01");
    assert_no_mismatched_start(&h);
    sim.assert_check();
    h
}

fn upgrade_cluster(n: u32) {
    // The native strategy: its backup is what must overlap the installs (strategies.rs
    // covers the others).
    let sim = Scenario::new()
        .nodes(n)
        .spec(DURATIONS)
        .config("database", "strategy", "native")
        .start();
    let r = sim.octoup(&["upgrade", "--json"]);
    let h = assert_upgraded(&sim, &r, n);
    let names = node_names(n);
    // The first and the last position of `kind` over all nodes (one event per node; with
    // `target`, only events about the target version).
    let span = |kind: &str, target: bool| {
        let at: Vec<usize> = names
            .iter()
            .map(|node| {
                find(&h, kind, |e| {
                    e["node"] == node.as_str()
                        && (!target || e["version"] == TARGET || e["binary_version"] == TARGET)
                })
                .unwrap_or_else(|| panic!("no {kind} on {node}: {}", kinds(&h)))
            })
            .collect();
        (*at.iter().min().unwrap(), *at.iter().max().unwrap())
    };
    let (install_began, last_install_begun) = span("install-started", true);
    let (first_install_done, install_ended) = span("install-finished", true);
    // The backup overlaps the installs: it began before the last install ended and ended
    // after the first install began.
    let backup_began = find(&h, "standin-invoked", |e| {
        e["program"] == "sqlcmd"
            && e["args"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|x| x.as_str().is_some_and(|s| s.contains("BACKUP DATABASE")))
            })
    })
    .expect("the backup ran");
    let backup_ended = first(&h, "db-backup-created");
    assert!(
        backup_began < install_ended && install_began < backup_ended,
        "the backup and the installs did not overlap: {}",
        kinds(&h)
    );
    // Every node stops, installs and starts at once: all began before any finished.
    let parallel = [
        (
            "stops",
            span("service-stopping", false).1,
            span("service-stopped", false).0,
        ),
        ("installs", last_install_begun, first_install_done),
        (
            "starts",
            span("service-starting", true).1,
            span("service-started", true).0,
        ),
    ];
    for (what, last_began, first_done) in parallel {
        assert!(
            last_began < first_done,
            "{what} ran one by one: {}",
            kinds(&h)
        );
    }
    let summary_ok = r.json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "verify" && s["status"] == "done");
    assert!(summary_ok, "{}", r.stdout);
}

#[test]
fn one_node_upgrades_with_the_backup_overlapping_the_install() {
    upgrade_cluster(1);
}

#[test]
fn three_nodes_upgrade_in_parallel() {
    upgrade_cluster(3);
}

#[test]
fn five_nodes_upgrade_in_parallel() {
    upgrade_cluster(5);
}

/// What every failure report must say: the node, the step, and what to do next.
fn assert_names_node_step_and_next(r: &Ran, step: &str) {
    assert_eq!(r.step(step, Some(FAILING)), "failed", "{}", r.stdout);
    let error = r.json["error"].as_str().unwrap_or("");
    assert!(error.contains(FAILING), "the error names the node: {error}");
    assert!(error.contains(step), "the error names the step: {error}");
    let next = r.json["next_step"].as_str().unwrap_or("");
    assert!(next.contains("octoup upgrade"), "the next action: {next}");
}

/// One non-primary node fails at `step` through `op`; then the same command runs again.
fn one_node_fails(step: &str, op: &str, action: &str, expected_exit: i32) {
    let sim = Scenario::new()
        .nodes(3)
        .watchdog(FAILING)
        .fault_times(op, action, Some(FAILING), 1)
        .start();
    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(expected_exit);
    assert_names_node_step_and_next(&r, step);
    let h = sim.history();
    assert_no_mismatched_start(&h);
    // I1-I3 hold at once; I6 (flags back as they were) only once the run has finished: a
    // paused cluster stays in maintenance mode and drained on purpose.
    let (ok, check) = sim.check();
    let broken: Vec<&Value> = check["violations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| r.outcome() != "paused" || v["invariant"] != "I6")
        .collect();
    assert!(ok || broken.is_empty(), "octoup-sim check: {check:#}");
    assert!(count(&h, "db-upgrade-finished") <= 1);
    let serving: Vec<&Value> = r.json["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["serving"].is_string())
        .collect();
    match r.outcome() {
        // Undone before the schema changed: the whole cluster serves the original version.
        "failed" | "rolled-back" => {
            assert_eq!(serving.len(), 3, "{}", r.stdout);
            assert!(serving.iter().all(|n| n["version"] == FROM), "{}", r.stdout);
            assert_eq!(sim.state()["database"]["schema_version"], FROM);
        }
        // Paused after the schema changed: whatever serves, serves the target.
        "paused" => {
            assert!(
                serving.iter().all(|n| n["version"] == TARGET),
                "{}",
                r.stdout
            );
            let next = r.json["next_step"].as_str().unwrap();
            assert!(next.contains(FAILING), "{next}");
        }
        other => panic!("unexpected outcome {other}: {}", r.stdout),
    }

    // The fault fired once: a re-run finishes the whole cluster.
    let again = sim.octoup(&["upgrade", "--json"]);
    let h = assert_upgraded(&sim, &again, 3);
    assert_eq!(count(&h, "db-upgrade-finished"), 1);
    // The failing node's watchdog is back after all.
    assert!(
        sim.state()["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == FAILING && !n["watchdog"].is_null()),
        "{:#}",
        sim.state()["nodes"]
    );
}

#[test]
fn a_node_failing_to_stop_leaves_the_cluster_on_the_original_version_and_a_rerun_finishes() {
    one_node_fails("stop", "service-stop", "exit:1", 1);
}

#[test]
fn a_node_failing_to_install_leaves_the_cluster_on_the_original_version_and_a_rerun_finishes() {
    one_node_fails("install", "msiexec", "exit:1603", 1);
}

#[test]
fn a_node_failing_to_start_pauses_without_a_mismatched_node_and_a_rerun_finishes() {
    one_node_fails("start", "service-start", "exit:1", 4);
}

/// Issue 7.1: a node registered against the database but missing from `[[nodes]]` is
/// reported before anything changes (it would block the database upgrade, or be left on
/// the old version against the new schema).
#[test]
fn a_running_node_missing_from_the_config_is_refused_before_anything_changes() {
    let sim = Scenario::new().nodes(3).start();
    sim.edit_config(|cfg| {
        let nodes = cfg.get_mut("nodes").and_then(|n| n.as_array_mut()).unwrap();
        nodes.retain(|n| n["name"].as_str() != Some(FAILING));
    });
    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(3);
    let text = r.stdout.clone() + &r.stderr;
    assert!(text.contains(FAILING), "the unknown node is named: {text}");
    let h = sim.history();
    assert!(
        mutating(&h).is_empty(),
        "nothing may change: {:?}",
        mutating(&h)
    );
    sim.assert_check();
}
