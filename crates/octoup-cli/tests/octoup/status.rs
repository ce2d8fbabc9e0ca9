//! `octoup status`: a live run told from an interrupted one, per-state exit codes for
//! monitoring (README: "octoup status"), and `--all`.

use octoup_testkit::*;

const TARGET: &str = "2024.3.13050";

#[test]
fn status_tells_none_live_interrupted_and_finished_runs_apart_with_exit_codes() {
    let sim = Scenario::new()
        .nodes(2)
        .fault("db-upgrade", "delay:3000")
        .start();

    // No run yet.
    let none = sim.octoup(&["status", "--json"]);
    none.expect_code(11);
    assert_eq!(none.json["state"], "none", "{}", none.stdout);

    // A live run, inside the (slowed) database upgrade.
    let mut child = sim.spawn_until(&["upgrade", "--json"], "fault-fired");
    let live = sim.octoup(&["status", "--json"]);
    live.expect_code(9);
    assert_eq!(live.json["state"], "running", "{}", live.stdout);
    assert_eq!(
        live.json["live"]["pid"],
        child.id().to_string(),
        "{}",
        live.stdout
    );
    assert_eq!(
        live.json["current_step"]["id"], "upgrade-database@OCTO-NODE-01",
        "{}",
        live.stdout
    );
    assert_eq!(live.json["outage_ongoing"], true, "{}", live.stdout);
    // Every node's stop, backup and install ended, though they are journaled together.
    let steps = live.json["steps"].as_array().unwrap();
    for s in steps
        .iter()
        .filter(|s| s["name"] == "stop" || s["name"] == "install")
    {
        assert_eq!(s["state"], "done", "{s}");
    }
    let text = sim.octoup(&["status"]);
    text.expect_code(9);
    assert!(
        text.stdout
            .contains(&format!("octoup (pid {}) is working on it now", child.id())),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("Now: upgrade-database on OCTO-NODE-01 since"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("database    "),
        "backups are named: {}",
        text.stdout
    );

    // Killed: interrupted, and no longer "running".
    child.kill().unwrap();
    child.wait().unwrap();
    let dead = sim.octoup(&["status", "--json"]);
    dead.expect_code(10);
    assert_eq!(dead.json["state"], "interrupted", "{}", dead.stdout);
    assert!(dead.json["live"].is_null(), "{}", dead.stdout);
    let text = sim.octoup(&["status"]);
    assert!(
        text.stdout.contains("No octoup is working on it"),
        "{}",
        text.stdout
    );

    // Continued to the end: upgraded, exit 0; --all lists the run.
    let done = sim.octoup(&["upgrade", "--json"]);
    done.expect_code(0);
    assert!(done.all_nodes_on(TARGET), "{}", done.stdout);
    let ok = sim.octoup(&["status", "--json"]);
    ok.expect_code(0);
    assert_eq!(ok.json["state"], "upgraded", "{}", ok.stdout);
    assert_eq!(ok.json["outage_ongoing"], false, "{}", ok.stdout);
    let all = sim.octoup(&["status", "--all", "--json"]);
    all.expect_code(0);
    let runs = all.json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{}", all.stdout);
    assert_eq!(runs[0]["status"], "upgraded");
    sim.assert_check();
}

#[test]
fn a_paused_run_exits_4_from_status_and_its_report_says_octopus_is_down() {
    let sim = Scenario::new().fault("db-upgrade", "exit:1").start();
    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(4);
    assert_eq!(r.json["outage_ongoing"], true, "{}", r.stdout);
    assert!(r.json["nodes"][0]["serving"].is_null(), "{}", r.stdout);
    let text = sim.octoup(&["upgrade"]);
    // The resume pauses again (the fault is gone only after one firing: it finishes).
    text.expect_code(0);
    let status = sim.octoup(&["status", "--json"]);
    status.expect_code(0);

    let sim = Scenario::new().fault("db-upgrade", "exit:1").start();
    let text = sim.octoup(&["upgrade"]);
    text.expect_code(4);
    assert!(
        text.stdout.contains("Octopus is DOWN: ") && text.stdout.contains("no node serves"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .starts_with("PAUSED: the upgrade 2024.1.10 → 2024.3.13050"),
        "{}",
        text.stdout
    );
    sim.octoup(&["status"]).expect_code(4);
}

/// Per-node steps journal their ends together (one fsync for all nodes); `status` still
/// shows a node's finished step as done while another node's is running.
#[test]
fn status_shows_a_finished_node_step_while_another_node_still_runs_it() {
    let sim = Scenario::new().nodes(2).start();
    sim.fault("msiexec", "delay:4000", Some("OCTO-NODE-02"), 1);
    let mut child = sim.spawn_until(&["upgrade", "--json"], "fault-fired");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let state = |json: &serde_json::Value, id: &str| {
        json["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| {
                format!(
                    "{}@{}",
                    s["name"].as_str().unwrap(),
                    s["node"].as_str().unwrap_or("")
                ) == id
            })
            .map(|s| s["state"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    loop {
        let s = sim.octoup(&["status", "--json"]);
        if state(&s.json, "install@OCTO-NODE-01") == "done" {
            assert_eq!(
                state(&s.json, "install@OCTO-NODE-02"),
                "running",
                "{}",
                s.stdout
            );
            assert_eq!(s.json["state"], "running", "{}", s.stdout);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "install@OCTO-NODE-01 never shown done: {}",
            s.stdout
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(child.wait().unwrap().code(), Some(0));
    sim.assert_check();
}

/// `octoup plan` sees an unfinished run and says what `octoup upgrade` would do next,
/// instead of planning (or refusing) a new one.
#[test]
fn plan_shows_what_upgrade_would_do_with_an_unfinished_run() {
    let sim = Scenario::new().fault("db-upgrade", "exit:1").start();
    sim.octoup(&["upgrade", "--json"]).expect_code(4);
    let plan = sim.octoup(&["plan", "--json"]);
    plan.expect_code(0);
    assert_eq!(plan.json["status"], "paused", "{}", plan.stdout);
    assert_eq!(plan.json["direction"], "forward", "{}", plan.stdout);
    let remaining: Vec<&str> = plan.json["remaining"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(
        remaining.first().copied(),
        Some("upgrade-database@OCTO-NODE-01"),
        "{}",
        plan.stdout
    );
    assert!(
        remaining.contains(&"maintenance-restore"),
        "{}",
        plan.stdout
    );
    let text = sim.octoup(&["plan"]);
    assert!(
        text.stdout.contains("`octoup upgrade` continues it"),
        "{}",
        text.stdout
    );
    let before = sim.history().len();
    // And `upgrade` does exactly that.
    sim.octoup(&["upgrade", "--json"]).expect_code(0);
    assert!(sim.history().len() > before);
    sim.assert_check();
}
