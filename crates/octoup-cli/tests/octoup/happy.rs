//! Upgrades that succeed: one node, a cluster, flags that were on before, and nothing to do.

use serde_json::Value;

use octoup_testkit::*;

const FROM: &str = "2024.1.10";
/// The policy's choice from the simulator's default feed and license (allow = minor).
const TARGET: &str = "2024.3.13050";

#[test]
fn one_node_upgrade_runs_every_step_in_order_and_keeps_verified_backups() {
    // The native strategy's order (strategies.rs has the snapshot's).
    let sim = Scenario::new()
        .config("database", "strategy", "native")
        .watchdog("OCTO-NODE-01")
        .task("OCTO-NODE-01", 1500.0)
        .start();

    // `plan` shows everything and changes nothing.
    let before = sim.history().len();
    let plan = sim.octoup(&["plan", "--json"]);
    plan.expect_code(0);
    assert_eq!(plan.json["to"], TARGET, "{}", plan.stdout);
    assert_eq!(plan.json["from"], FROM);
    assert_eq!(plan.json["facts"]["nodes"][0]["exe_version"], FROM);
    assert_eq!(plan.json["facts"]["nodes"][0]["watchdog"]["enabled"], true);
    assert!(plan.json["outage_estimate_seconds"].as_f64().unwrap() > 0.0);
    let after_plan = sim.history();
    assert_eq!(
        mutating(&after_plan[before..]),
        Vec::<String>::new(),
        "plan changed something"
    );

    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(0);
    assert_eq!(r.outcome(), "upgraded");
    assert_eq!(r.json["from"], FROM);
    assert_eq!(r.json["to"], TARGET);
    assert!(r.json["outage_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(r.json["nodes"][0]["name"], "OCTO-NODE-01");
    assert_eq!(r.json["nodes"][0]["version"], TARGET);
    for step in [
        "maintenance-on",
        "drain",
        "delete-watchdog",
        "stop",
        "backup-database",
        "verify-backup",
        "install",
        "upgrade-database",
        "start",
        "verify",
        "create-watchdog",
        "undrain",
        "maintenance-restore",
    ] {
        assert_eq!(r.step(step, None), "done", "step {step}: {}", r.stdout);
    }

    let h = sim.history();
    let m_on = find(&h, "maintenance-set", |e| e["value"] == true).expect("maintenance on");
    let d_on = find(&h, "drain-set", |e| e["value"] == true).expect("drain on");
    // The workload's deployment (the System Integrity Check tasks finish too).
    let deploy = &h[find(&h, "task-queued", |e| e["name"] == "Deploy").expect("the deployment")];
    let task_done = find(&h, "task-finished", |e| e["task_id"] == deploy["task_id"])
        .expect("the deployment finished");
    let w_del = first(&h, "watchdog-deleted");
    let stop = first(&h, "service-stopping");
    let backup = first(&h, "db-backup-created");
    let verified = first(&h, "db-backup-verified");
    let installed = find(&h, "install-finished", |e| e["version"] == TARGET).expect("install");
    let upgrade = first(&h, "db-upgrade-started");
    let upgraded = first(&h, "db-upgrade-finished");
    let started = find(&h, "service-started", |e| e["binary_version"] == TARGET).expect("start");
    let w_new = last(&h, "watchdog-created");
    let d_off = find(&h, "drain-set", |e| e["value"] == false).expect("drain off");
    let m_off = find(&h, "maintenance-set", |e| e["value"] == false).expect("maintenance off");
    let order = [
        m_on, d_on, task_done, w_del, stop, backup, verified, upgrade, upgraded, started, w_new,
        d_off, m_off,
    ];
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "order {order:?}: {}",
        kinds(&h)
    );
    assert!(stop < installed && installed < upgrade, "{}", kinds(&h));
    assert_eq!(
        count(&h, "task-killed"),
        0,
        "the drain must wait for the task"
    );
    // Last watchdog-created comes after the deletion of the pre-existing one.
    assert_eq!(h[w_new]["interval_minutes"], 10, "recreated as it was");

    // Backups: the verified database backup, the master key (owner-only), the license.
    let db = r.json["backups"]["database"]
        .as_str()
        .expect("database backup");
    assert_eq!(h[backup]["path"], db);
    assert_eq!(h[verified]["path"], db);
    assert_eq!(h[backup]["copy_only"], true);
    assert_eq!(h[backup]["checksum"], true);
    assert!(db.contains("OctopusDeploy-2024.1.10-"), "{db}");
    assert_eq!(r.json["backups"]["database_verified"], true);
    let mk = r.json["backups"]["master_key"]
        .as_str()
        .expect("master key");
    let master_key = sim.secrets()[3].clone();
    assert_eq!(std::fs::read_to_string(mk).unwrap().trim(), master_key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(mk).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "master key file mode {mode:o}");
    }
    let license = r.json["backups"]["license"].as_str().expect("license");
    assert!(
        std::fs::read_to_string(license)
            .unwrap()
            .contains("<License")
    );

    sim.assert_check();

    // `status` tells the last run in words and JSON.
    let status = sim.octoup(&["status", "--json"]);
    status.expect_code(0);
    assert_eq!(status.json["status"], "upgraded");
    assert_eq!(status.json["to"], TARGET);
    let text = sim.octoup(&["status"]);
    assert!(text.stdout.contains(": UPGRADED."), "{}", text.stdout);

    // A second run finds nothing to do.
    let again = sim.octoup(&["upgrade", "--json"]);
    again.expect_code(0);
    assert_eq!(again.outcome(), "up-to-date", "{}", again.stdout);
}

#[test]
fn a_cluster_upgrades_the_database_once_with_every_node_stopped() {
    let sim = Scenario::new()
        .nodes(3)
        .task("OCTO-NODE-02", 100.0)
        .task("OCTO-NODE-03", 50.0)
        .start();
    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(0);
    assert_eq!(r.outcome(), "upgraded");
    let h = sim.history();
    assert_eq!(count(&h, "db-upgrade-started"), 1, "{}", kinds(&h));
    let up = first(&h, "db-upgrade-started");
    assert_eq!(
        h[up]["node"], "OCTO-NODE-01",
        "the primary upgrades the schema"
    );
    // At the schema upgrade every node's last service event is a stop.
    for node in ["OCTO-NODE-01", "OCTO-NODE-02", "OCTO-NODE-03"] {
        let last_service = h[..up]
            .iter()
            .rev()
            .find(|e| e["node"] == node && e["kind"].as_str().unwrap_or("").starts_with("service-"))
            .unwrap_or_else(|| panic!("no service event for {node}"));
        assert_eq!(
            last_service["kind"], "service-stopped",
            "{node} at the upgrade"
        );
        let installed = find(&h, "install-finished", |e| {
            e["node"] == node && e["version"] == TARGET
        })
        .unwrap_or_else(|| panic!("{node} not installed"));
        assert!(installed < up, "{node} installed after the schema upgrade");
        let started = find(&h, "service-started", |e| {
            e["node"] == node && e["binary_version"] == TARGET
        })
        .unwrap_or_else(|| panic!("{node} not started"));
        assert!(started > up);
    }
    let nodes: Vec<&Value> = r.json["nodes"].as_array().unwrap().iter().collect();
    assert_eq!(nodes.len(), 3);
    assert!(
        nodes
            .iter()
            .all(|n| n["version"] == TARGET && n["serving"] == TARGET)
    );
    sim.assert_check();
}

#[test]
fn canary_starts_the_primary_before_the_others() {
    let sim = Scenario::new()
        .nodes(2)
        .config("cluster", "canary", true)
        .start();
    sim.octoup(&["upgrade", "--json"]).expect_code(0);
    let h = sim.history();
    let primary_up = find(&h, "service-started", |e| {
        e["node"] == "OCTO-NODE-01" && e["binary_version"] == TARGET
    })
    .unwrap();
    let other_starting = find(&h, "service-starting", |e| {
        e["node"] == "OCTO-NODE-02" && e["binary_version"] == TARGET
    })
    .unwrap();
    assert!(primary_up < other_starting, "{}", kinds(&h));
    sim.assert_check();
}

#[test]
fn flags_that_were_on_before_stay_on() {
    let sim = Scenario::new()
        .nodes(2)
        .maintenance_before()
        .drained_before("OCTO-NODE-02")
        .start();
    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(0);
    assert_eq!(r.step("maintenance-restore", None), "skipped");
    assert_eq!(r.step("undrain", Some("OCTO-NODE-02")), "skipped");
    assert_eq!(r.step("undrain", Some("OCTO-NODE-01")), "done");
    let state = sim.state();
    assert_eq!(
        state["database"]["maintenance"]["is_in_maintenance_mode"],
        true
    );
    let drains: Vec<bool> = state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["drain"].as_bool().unwrap())
        .collect();
    assert_eq!(drains, [false, true]);
    // The checker's I6 compares with the flags at the installation's creation, before this
    // scenario set them; put them back as the scene found them, then check the rest.
    sim.exe(
        "OCTO-NODE-02",
        &["node", "--instance=OctopusServer", "--drain=false"],
    );
    sim.set_maintenance(false);
    sim.assert_check();
}

#[test]
fn maintenance_is_left_on_when_configured() {
    let sim = Scenario::new()
        .config("maintenance", "leave_on", true)
        .start();
    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(0);
    assert!(
        r.json["next_step"]
            .as_str()
            .unwrap()
            .contains("turn it off"),
        "{}",
        r.stdout
    );
    assert_eq!(
        sim.state()["database"]["maintenance"]["is_in_maintenance_mode"],
        true
    );
    assert!(
        !sim.check().0,
        "I6 flags maintenance left on unless allowed"
    );
    assert!(sim.check_with(&["--allow-maintenance-left-on"]).0);
}

#[test]
fn nothing_happens_when_already_on_the_target() {
    let sim = Scenario::new().start();
    let before = sim.history().len();
    let r = sim.octoup(&["upgrade", "--to", FROM, "--json"]);
    r.expect_code(0);
    assert_eq!(r.outcome(), "up-to-date");
    assert_eq!(mutating(&sim.history()[before..]), Vec::<String>::new());
}
