//! The checks after the start (docs/preflight.md, "After the start"): at the end of every
//! successful upgrade (the report's `verification`, never a failure of the run) and as
//! `octoup verify [--upgrade-tentacles]` (exit 14 while a blocker-level finding remains).

use octoup_testkit::*;
use serde_json::Value;

const TARGET: &str = "2024.3.13050";

fn with_id<'a>(findings: &'a Value, id: &str) -> Option<&'a Value> {
    findings.as_array()?.iter().find(|f| f["id"] == id)
}

#[track_caller]
fn expect<'a>(findings: &'a Value, id: &str) -> &'a Value {
    with_id(findings, id).unwrap_or_else(|| panic!("no finding {id} in {findings}"))
}

fn machine<'a>(state: &'a Value, name: &str) -> &'a Value {
    state["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no machine {name}"))
}

#[test]
fn a_clean_upgrade_verifies_clean() {
    let (sim, r) = Scenario::new().run(&["upgrade", "--yes", "--json"]);
    r.expect_code(0);
    assert!(r.json.get("verification").is_none(), "{}", r.stdout);
    let v = sim.octoup(&["verify", "--json"]);
    v.expect_code(0);
    assert_eq!(v.json["expected"], TARGET, "{}", v.stdout);
    assert_eq!(v.json["findings"], serde_json::json!([]), "{}", v.stdout);
    assert_eq!(v.json["nodes"][0]["version"], TARGET);
    // The integrity check ran before the outage, after the start, and for `verify`.
    let h = sim.history();
    let checks = h
        .iter()
        .filter(|e| e["kind"] == "task-queued" && e["name"] == "SystemIntegrityCheck")
        .count();
    assert_eq!(
        checks,
        3,
        "preflight, end of upgrade, verify: {}",
        kinds(&h)
    );
    sim.assert_check();
}

#[test]
fn a_stuck_recurring_triggers_task_is_reported_not_cancelled() {
    let (sim, r) = Scenario::new()
        .server("stuck_triggers_after_upgrade", true)
        .run(&["upgrade", "--yes", "--json"]);
    r.expect_code(0);
    assert_eq!(r.outcome(), "upgraded");
    let f = expect(&r.json["verification"], "verify.stuck-triggers");
    assert_eq!(f["severity"], "warning");
    assert!(
        f["found"]
            .as_str()
            .unwrap()
            .contains("RecurringScheduledDeployments"),
        "{f}"
    );
    assert!(
        f["fix"].as_str().unwrap().contains("cancel_stuck_triggers"),
        "{f}"
    );
    // The text report says it too.
    let text = sim.octoup(&["verify"]);
    text.expect_code(0);
    assert!(
        text.stdout.contains("[verify.stuck-triggers]"),
        "{}",
        text.stdout
    );
    assert_eq!(sim.count("task-canceled"), 0);
    sim.assert_check();
}

#[test]
fn a_stuck_recurring_triggers_task_is_cancelled_when_configured() {
    let (sim, r) = Scenario::new()
        .server("stuck_triggers_after_upgrade", true)
        .config("doctor", "cancel_stuck_triggers", true)
        .run(&["upgrade", "--yes", "--json"]);
    r.expect_code(0);
    let f = expect(&r.json["verification"], "verify.stuck-triggers.cancelled");
    assert_eq!(f["severity"], "info");
    assert!(with_id(&r.json["verification"], "verify.stuck-triggers").is_none());
    let h = sim.history();
    assert_eq!(count(&h, "task-canceled"), 1, "{}", kinds(&h));
    // Cancelled after the upgrade finished.
    assert!(
        first(&h, "task-canceled") > last(&h, "service-started"),
        "{}",
        kinds(&h)
    );
    sim.assert_check();
}

#[test]
fn a_failed_integrity_check_after_the_start_is_reported_but_the_run_is_upgraded() {
    let (sim, r) = Scenario::new()
        .server(
            "integrity_errors_after_upgrade",
            vec!["Unexpected table dbo.Tmp_Upgrade"],
        )
        .run(&["upgrade", "--yes", "--json"]);
    r.expect_code(0);
    assert_eq!(r.outcome(), "upgraded");
    let f = expect(&r.json["verification"], "verify.integrity");
    assert!(f["found"].as_str().unwrap().contains("Tmp_Upgrade"), "{f}");
    assert!(f["link"].as_str().unwrap().contains("/app#/"), "{f}");
    // Configured as a blocker, `verify` exits 14 until it is fixed.
    sim.edit_config(|cfg| {
        cfg.entry("doctor")
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .unwrap()
            .insert("integrity_check".into(), "blocker".into());
    });
    let v = sim.octoup(&["verify", "--json"]);
    v.expect_code(14);
    assert_eq!(
        expect(&v.json["findings"], "verify.integrity")["severity"],
        "blocker"
    );
}

fn fleet() -> Scenario {
    let old = |space: &str, role: &str, upgrade: &str| -> Vec<(&'static str, toml::Value)> {
        vec![
            ("space", space.into()),
            ("role", role.into()),
            ("tentacle_version", "6.3.605".into()),
            ("upgrade", upgrade.into()),
        ]
    };
    Scenario::new()
        .machine("web-01", &old("Default", "target", "ok"))
        .machine(
            "web-02",
            &old("Default", "target", "reports-success-but-fails"),
        )
        .machine("web-03", &old("Default", "target", "ok"))
        .machine("build-01", &old("Ops", "worker", "ok"))
        .machine(
            "db-01",
            &[("calamari_current", false.into()), ("space", "Ops".into())],
        )
        .machine("current", &[])
}

#[test]
fn tentacles_and_calamari_needing_an_upgrade_are_listed_per_space() {
    let sim = fleet().start();
    let r = sim.octoup(&["verify", "--json"]);
    // Warnings and information only: exit 0.
    r.expect_code(0);
    let t = expect(&r.json["findings"], "verify.tentacles");
    let found = t["found"].as_str().unwrap();
    assert!(
        found.starts_with("4 Tentacle(s) need an upgrade"),
        "{found}"
    );
    assert!(
        found.contains("Default: web-01, web-02, web-03; Ops: build-01"),
        "{found}"
    );
    assert!(
        t["fix"].as_str().unwrap().contains("--upgrade-tentacles"),
        "{t}"
    );
    let c = expect(&r.json["findings"], "verify.calamari");
    assert!(c["found"].as_str().unwrap().contains("Ops: db-01"), "{c}");
    assert!(!r.stdout.contains("\"current\""), "{}", r.stdout);
    // Listing changes nothing.
    assert_eq!(
        count(&sim.history(), "task-queued"),
        1,
        "only the integrity check"
    );
}

#[test]
fn upgrading_tentacles_rereads_versions_and_catches_a_task_that_lies() {
    let sim = fleet().config("doctor", "tentacle_batch", 2).start();
    let r = sim.octoup(&["verify", "--upgrade-tentacles", "--json"]);
    r.expect_code(14);
    let machines = r.json["tentacle_upgrade"]["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 4, "{}", r.stdout);
    assert_eq!(machines[0]["name"], "web-01");
    assert_eq!(machines[0]["canary"], true);
    let web02 = machines.iter().find(|m| m["name"] == "web-02").unwrap();
    assert_eq!(web02["task_state"], "Success", "{web02}");
    assert_eq!(web02["upgraded"], false, "{web02}");
    let f = expect(&r.json["findings"], "verify.tentacle-upgrade");
    assert_eq!(f["severity"], "blocker");
    let found = f["found"].as_str().unwrap();
    assert!(
        found.contains("web-02") && found.contains("Success") && found.contains("still 6.3.605"),
        "{found}"
    );
    // The simulator agrees: the others moved to the bundled Tentacle.
    let state = sim.state();
    for name in ["web-01", "web-03", "build-01"] {
        assert_eq!(machine(&state, name)["tentacle_version"], "8.1.2", "{name}");
    }
    assert_eq!(machine(&state, "web-02")["tentacle_version"], "6.3.605");
    // Canary alone, then web-02 + web-03 (batch of 2), then Ops's build-01.
    let h = sim.history();
    let upgrades = h
        .iter()
        .filter(|e| e["kind"] == "task-queued" && e["name"] == "Upgrade")
        .count();
    assert_eq!(upgrades, 3, "{}", kinds(&h));
    sim.assert_check();
}

#[test]
fn a_failed_canary_stops_the_tentacle_upgrade() {
    let sim = Scenario::new()
        .machine(
            "canary",
            &[
                ("tentacle_version", "6.3.605".into()),
                ("upgrade", "fails".into()),
            ],
        )
        .machine("next", &[("tentacle_version", "6.3.605".into())])
        .start();
    let r = sim.octoup(&["verify", "--upgrade-tentacles", "--json"]);
    r.expect_code(14);
    assert_eq!(
        r.json["tentacle_upgrade"]["not_attempted"],
        serde_json::json!(["next"]),
        "{}",
        r.stdout
    );
    let found = expect(&r.json["findings"], "verify.tentacle-upgrade")["found"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(found.contains("canary failed"), "{found}");
    let h = sim.history();
    assert_eq!(
        h.iter()
            .filter(|e| e["kind"] == "task-queued" && e["name"] == "Upgrade")
            .count(),
        1
    );
    assert_eq!(machine(&sim.state(), "next")["tentacle_version"], "6.3.605");
}

#[test]
fn the_text_report_of_an_upgrade_says_what_needs_attention_after_the_start() {
    let (sim, r) = Scenario::new()
        .server("stuck_triggers_after_upgrade", true)
        .run(&["upgrade", "--yes"]);
    r.expect_code(0);
    assert!(r.stdout.contains("UPGRADED"), "{}", r.stdout);
    let after = r
        .stdout
        .split("After the start")
        .nth(1)
        .unwrap_or_else(|| panic!("no verification block in\n{}", r.stdout));
    assert!(after.contains("[verify.stuck-triggers]"), "{after}");
    assert!(after.contains("cancel_stuck_triggers"), "{after}");
    sim.assert_check();
}
