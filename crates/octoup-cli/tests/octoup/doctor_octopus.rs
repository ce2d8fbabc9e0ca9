//! The Octopus checks before the outage (docs/preflight.md, "Octopus checks"): each blocker
//! makes `octoup upgrade` refuse before anything changes, with the fix named; a warning can
//! be accepted by id; a check that cannot run is a warning, never a crash.

use octoup_testkit::*;
use serde_json::Value;

/// The finding with `id` in a report's (or doctor's) `findings`.
fn finding<'a>(r: &'a Ran, id: &str) -> &'a Value {
    r.json["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["id"] == id))
        .unwrap_or_else(|| panic!("no finding {id} in\n{}", r.stdout))
}

/// `upgrade` refused with `id` as a blocker whose fix contains `fix`; nothing changed.
fn assert_refused_with(sim: &Sim, r: &Ran, id: &str, fix: &str) {
    r.expect_code(3);
    assert_eq!(r.json["refused"], true, "{}", r.stdout);
    let f = finding(r, id);
    assert_eq!(f["severity"], "blocker", "{f}");
    assert!(
        f["fix"].as_str().unwrap_or("").contains(fix),
        "the fix names {fix:?}: {f}"
    );
    assert!(
        r.json["error"]
            .as_str()
            .unwrap_or("")
            .contains(f["found"].as_str().unwrap())
    );
    let h = sim.history();
    assert_eq!(mutating(&h), Vec::<String>::new(), "{}", kinds(&h));
    assert_eq!(count(&h, "service-stopping"), 0);
    sim.assert_check();
}

#[test]
fn a_license_expired_past_its_grace_is_refused_before_any_change() {
    let (sim, r) = Scenario::new()
        .license_expires_in_days(-90)
        .run(&["upgrade", "--yes", "--json"]);
    assert_refused_with(&sim, &r, "license.expired", "renewed license");
    let found = finding(&r, "license.expired")["found"].as_str().unwrap();
    assert!(found.contains("90 days ago"), "{found}");
}

#[test]
fn more_nodes_than_the_license_allows_is_refused() {
    let (sim, r) = Scenario::new()
        .nodes(2)
        .license("node_limit", 1)
        .run(&["upgrade", "--yes", "--json"]);
    assert_refused_with(&sim, &r, "license.nodes", "higher node limit");
    let found = finding(&r, "license.nodes")["found"].as_str().unwrap();
    assert!(
        found.contains("allows 1 node(s) but the cluster has 2: OCTO-NODE-01, OCTO-NODE-02"),
        "{found}"
    );
}

#[test]
fn a_failed_integrity_check_configured_as_a_blocker_is_refused_with_the_tasks_link() {
    let (sim, r) = Scenario::new()
        .server(
            "integrity_errors",
            vec!["Missing index IX_ServerTask_State on dbo.ServerTask"],
        )
        .config("doctor", "integrity_check", "blocker")
        .run(&["upgrade", "--yes", "--json"]);
    assert_refused_with(&sim, &r, "octopus.integrity", "Configuration → Diagnostics");
    let f = finding(&r, "octopus.integrity");
    let found = f["found"].as_str().unwrap();
    assert!(found.contains("ended Failed"), "{found}");
    assert!(found.contains("IX_ServerTask_State"), "{found}");
    let link = f["link"].as_str().unwrap();
    assert!(
        link.starts_with("http://127.0.0.1:") && link.contains("/app#/"),
        "{link}"
    );
    // The check ran as Octopus's own task.
    let h = sim.history();
    assert!(
        find(&h, "task-queued", |e| e["name"] == "SystemIntegrityCheck").is_some(),
        "{}",
        kinds(&h)
    );
}

#[test]
fn a_failed_integrity_check_is_a_warning_by_default_and_off_skips_it() {
    let sim = Scenario::new()
        .server(
            "integrity_errors",
            vec!["Column dbo.Project.Extra is not expected"],
        )
        .start();
    let r = sim.octoup(&["doctor", "--json"]);
    r.expect_code(0);
    assert_eq!(finding(&r, "octopus.integrity")["severity"], "warning");
    sim.edit_config(|cfg| {
        let doctor = cfg
            .entry("doctor")
            .or_insert_with(|| toml::Value::Table(Default::default()));
        doctor
            .as_table_mut()
            .unwrap()
            .insert("integrity_check".into(), "off".into());
    });
    let before = count(&sim.history(), "task-queued");
    let r = sim.octoup(&["doctor", "--json"]);
    r.expect_code(0);
    assert!(!r.stdout.contains("octopus.integrity"), "{}", r.stdout);
    assert_eq!(
        count(&sim.history(), "task-queued"),
        before,
        "off starts no task"
    );
}

#[test]
fn a_host_windows_too_old_for_the_target_is_refused() {
    let (sim, r) = Scenario::new()
        .server("os_version", "Microsoft Windows NT 6.2.9200.0")
        .run(&["upgrade", "--yes", "--json"]);
    assert_refused_with(&sim, &r, "host.windows", "Windows Server 2012 R2");
    let f = finding(&r, "host.windows");
    assert!(
        f["found"]
            .as_str()
            .unwrap()
            .contains("Windows NT 6.2.9200.0 (Windows Server 2012)"),
        "{f}"
    );
}

#[test]
fn a_linux_container_host_is_information_only() {
    let sim = Scenario::new()
        .server("os_version", "Unix 5.15.0.1052")
        .start();
    let r = sim.octoup(&["doctor", "--json"]);
    r.expect_code(0);
    assert_eq!(finding(&r, "host.os")["severity"], "info");
    assert!(!r.stdout.contains("host.windows"), "{}", r.stdout);
}

#[test]
fn an_accepted_license_grace_warning_lets_the_upgrade_go_ahead() {
    let sim = Scenario::new().license_expires_in_days(-10).start();
    // Shown, not blocking.
    let r = sim.octoup(&["doctor", "--json"]);
    r.expect_code(0);
    let f = finding(&r, "license.grace");
    assert_eq!(f["severity"], "warning");
    assert!(f["found"].as_str().unwrap().contains("10 days ago"), "{f}");
    // `plan` shows the same findings.
    let plan = sim.octoup(&["plan", "--json"]);
    plan.expect_code(0);
    assert!(plan.stdout.contains("license.grace"), "{}", plan.stdout);
    // Accepted by name: the run records it and goes ahead.
    let r = sim.octoup(&["upgrade", "--yes", "--json", "--accept", "license.grace"]);
    r.expect_code(0);
    assert_eq!(r.outcome(), "upgraded");
    assert_eq!(
        r.json["accepted"],
        serde_json::json!(["license.grace"]),
        "{}",
        r.stdout
    );
    sim.assert_check();
}

#[test]
fn a_check_the_server_cannot_answer_is_an_unchecked_warning() {
    // An older server without licenses-current-status: 404.
    let sim = Scenario::new()
        .fault_times(
            "api:/api/licenses/licenses-current-status",
            "http:404",
            None,
            0,
        )
        .start();
    let r = sim.octoup(&["doctor", "--json"]);
    r.expect_code(0);
    let f = finding(&r, "license.unchecked");
    assert_eq!(f["severity"], "warning");
    let found = f["found"].as_str().unwrap();
    assert!(
        found.starts_with("could not check the license's term and node limit"),
        "{found}"
    );
    assert!(
        found.contains("/api/licenses/licenses-current-status") && found.contains("404"),
        "{found}"
    );
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("--accept license.unchecked"),
        "{f}"
    );
}

#[test]
fn targets_and_workers_on_an_os_the_target_drops_are_listed_per_space() {
    let sim = Scenario::new()
        .machine(
            "legacy-web",
            &[
                ("os", "Microsoft Windows Server 2003".into()),
                ("os_version", "5.2.3790".into()),
            ],
        )
        .machine(
            "build-2012",
            &[
                ("space", "Ops".into()),
                ("role", "worker".into()),
                ("os", "Microsoft Windows Server 2012".into()),
                ("os_version", "6.2.9200".into()),
            ],
        )
        .machine("modern", &[])
        .start();
    let r = sim.octoup(&["doctor", "--json"]);
    r.expect_code(0);
    let dropped = finding(&r, "targets.os-dropped");
    assert!(
        dropped["found"]
            .as_str()
            .unwrap()
            .contains("Default: legacy-web"),
        "{dropped}"
    );
    let dotnet = finding(&r, "targets.dotnet")["found"].as_str().unwrap();
    assert!(
        dotnet.contains("2 deployment target(s) or worker(s)"),
        "{dotnet}"
    );
    assert!(
        dotnet.contains("Default: legacy-web; Ops: build-2012"),
        "{dotnet}"
    );
    assert!(!r.stdout.contains("modern"), "{}", r.stdout);
}
