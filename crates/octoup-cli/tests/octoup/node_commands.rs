//! `octoup node <action> --json` on a simulated two-node cluster: a whole upgrade driven
//! step by step, as a runbook or Ansible would, with the refusals that guard the invariants.

use octoup_testkit::{Ran, Scenario, Sim};

const TARGET: &str = "2024.2.9409";

/// `octoup sim up` with `nodes` nodes (so the stand-ins are this build's `octoup`).
pub fn sim_up(nodes: u32) -> Sim {
    Scenario::new().nodes(nodes).through_octoup().start()
}

fn ok(ran: &Ran) {
    assert_eq!(
        (ran.code, &ran.json["ok"]),
        (0, &serde_json::Value::Bool(true)),
        "stdout: {}\nstderr: {}",
        ran.stdout,
        ran.stderr
    );
}

fn refused(ran: &Ran, kind: &str) {
    assert_eq!(ran.code, 3, "{}{}", ran.stdout, ran.stderr);
    assert_eq!(ran.json["ok"], false);
    assert_eq!(ran.json["error"]["kind"], kind, "{}", ran.stdout);
}

#[test]
fn a_runbook_upgrades_a_cluster_with_node_commands_and_is_refused_out_of_order() {
    let sim = sim_up(2);
    let (n1, n2) = ("OCTO-NODE-01", "OCTO-NODE-02");
    // A watchdog on node 1, which stop must take away and start --watchdog put back.
    let out = sim.standin(
        &[
            "exe",
            "--node",
            n1,
            "watchdog",
            "--create",
            "--interval=7",
            "--instances=*",
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");

    let status = sim.node(&["status", "--node", n1]);
    ok(&status);
    assert_eq!(status.json["node"], n1);
    assert_eq!(status.json["installed_version"], "2024.1.10");
    assert_eq!(status.json["service"]["state"], "serving");
    assert_eq!(status.json["service"]["api_version"], "2024.1.10");
    assert_eq!(status.json["watchdog"]["enabled"], true);
    assert_eq!(status.json["watchdog"]["interval_minutes"], 7);

    // Out of order: installing on a running node, or with nothing staged, changes nothing.
    refused(
        &sim.node(&["install", "--to", TARGET, "--node", n2]),
        "running",
    );
    let usage = sim.node(&["status"]);
    assert_eq!(usage.code, 2, "{}", usage.stdout);
    assert!(
        usage.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--node")
    );

    let staged = sim.node(&["stage", "--to", TARGET, "--node", n1]);
    ok(&staged);
    assert_eq!(staged.json["cached"], false);
    let sha = staged.json["sha256"].as_str().unwrap().to_string();
    assert_eq!(sha.len(), 64);
    let again = sim.node(&["stage", "--to", TARGET, "--node", n2]);
    ok(&again);
    assert_eq!(
        (&again.json["cached"], &again.json["sha256"]),
        (&true.into(), &sha.clone().into())
    );

    let stop1 = sim.node(&["stop", "--node", n1]);
    ok(&stop1);
    assert_eq!(stop1.json["stopped"], true);
    assert_eq!(stop1.json["watchdog_deleted"]["interval_minutes"], 7);
    let stop2 = sim.node(&["stop", "--node", n2]);
    ok(&stop2);
    assert_eq!(stop2.json["watchdog_deleted"], serde_json::Value::Null);
    let down = sim.node(&["status", "--node", n1]);
    ok(&down);
    assert_eq!(down.json["service"]["state"], "down");
    assert_eq!(down.json["watchdog"]["enabled"], false);

    let other = "0".repeat(64);
    refused(
        &sim.node(&["install", "--to", TARGET, "--sha256", &other, "--node", n1]),
        "not-staged",
    );
    refused(
        &sim.node(&["install", "--to", "2024.3.1", "--node", n1]),
        "not-staged",
    );
    // Starting the old binary now would be fine for the schema, but the caller asked for
    // the target: refused, the node stays down.
    refused(
        &sim.node(&["start", "--to", TARGET, "--node", n1]),
        "version-mismatch",
    );
    assert_eq!(
        sim.node(&["status", "--node", n1]).json["service"]["state"],
        "down"
    );

    // What the orchestrator does between the stops and the installs: backup, master key.
    sim.back_up_database();
    let out = sim.standin(
        &[
            "exe",
            "--node",
            n1,
            "show-master-key",
            "--instance=OctopusServer",
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");

    for n in [n1, n2] {
        let installed = sim.node(&["install", "--to", TARGET, "--sha256", &sha, "--node", n]);
        ok(&installed);
        assert_eq!(installed.json["installed_version"], TARGET);
        assert_eq!(installed.json["exit_code"], 0);
        assert_eq!(installed.json["sha256"], sha.as_str());
    }
    let out = sim.standin(
        &[
            "exe",
            "--node",
            n1,
            "database",
            "--upgrade",
            "--instance=OctopusServer",
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");

    let start1 = sim.node(&["start", "--to", TARGET, "--watchdog", "--node", n1]);
    ok(&start1);
    assert_eq!(
        (&start1.json["version"], &start1.json["watchdog_created"]),
        (&TARGET.into(), &true.into())
    );
    ok(&sim.node(&["start", "--to", TARGET, "--node", n2]));
    for n in [n1, n2] {
        let s = sim.node(&["status", "--node", n]);
        ok(&s);
        assert_eq!(s.json["service"]["api_version"], TARGET, "{n}");
        assert_eq!(s.json["service"]["answering"], true, "{n}");
    }
    let s1 = sim.node(&["status", "--node", n1]);
    assert_eq!(s1.json["watchdog"]["enabled"], true);
    assert_eq!(s1.json["watchdog"]["interval_minutes"], 7);
    sim.assert_check();
    // Exactly one schema upgrade, and no node ever started on a mismatched version.
    assert_eq!(sim.count("db-upgrade-finished"), 1);
    assert_eq!(sim.count("service-start-failed"), 0);
}

#[test]
fn an_installer_failure_is_reported_with_its_code_and_log() {
    let sim = sim_up(1);
    ok(&sim.node(&["stage", "--to", TARGET]));
    ok(&sim.node(&["stop"]));
    sim.fault("msiexec", "exit:1603", None, 1);
    let failed = sim.node(&["install", "--to", TARGET]);
    assert_eq!(failed.code, 1, "{}", failed.stdout);
    assert_eq!(failed.json["error"]["kind"], "install");
    assert!(
        failed.json["error"]["code"]
            .as_str()
            .unwrap()
            .contains("1603"),
        "{}",
        failed.stdout
    );
    assert!(failed.json["error"]["log"].as_str().is_some());
    assert_eq!(failed.json["node"], "local");
    // The fault fired once: a second try installs.
    let installed = sim.node(&["install", "--to", TARGET]);
    ok(&installed);
    // A runbook's way back (the schema was never upgraded): take the new product off with
    // its staged installer, put the original back, start it.
    refused(
        &sim.node(&["uninstall", "--installed", "2024.1.10"]),
        "version-mismatch",
    );
    ok(&sim.node(&["stage", "--to", "2024.1.10", "--rollback"]));
    let removed = sim.node(&["uninstall", "--installed", TARGET]);
    ok(&removed);
    assert_eq!(removed.json["version"], TARGET);
    ok(&sim.node(&["install", "--to", "2024.1.10"]));
    let started = sim.node(&["start", "--to", "2024.1.10"]);
    ok(&started);
    assert_eq!(started.json["version"], "2024.1.10");
    sim.assert_check();
    // Human output (no --json) says the same in words.
    let text = sim.octoup(&["node", "status"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout.contains("installed 2024.1.10"),
        "{}",
        text.stdout
    );
}
