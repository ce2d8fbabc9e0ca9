//! A rollback point kept after a successful upgrade (`[rollback] keep_hours`): `octoup
//! status` shows it, `octoup rollback` takes the finished upgrade back with it, `octoup
//! finalize` releases it, and one past its time is released before the next upgrade.

use octoup_testkit::*;

const FROM: &str = "2024.1.10";
const TARGET: &str = "2024.3.13050";

/// An upgraded two-node cluster whose snapshot (or copy) is kept a day.
fn upgraded_keeping(strategy: &str) -> Sim {
    let s = Scenario::new()
        .nodes(2)
        .config("rollback", "keep_hours", 24);
    let s = match strategy {
        "snapshot" => s.config("database", "strategy", "snapshot"),
        "azure-copy" => s.database("hosting", "azure-sql-database"),
        other => panic!("no scenario for {other}"),
    };
    let sim = s.start();
    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(0);
    assert!(r.all_nodes_on(TARGET), "{}", r.stdout);
    let release = r.step("release-rollback-point", None);
    assert_eq!(release, "done", "{}", r.stdout);
    sim
}

fn held(sim: &Sim) -> serde_json::Value {
    sim.octoup(&["status", "--json"]).json["held"].clone()
}

#[test]
fn a_held_snapshot_takes_back_a_finished_upgrade() {
    let sim = upgraded_keeping("snapshot");
    let h = sim.history();
    assert_eq!(count(&h, "db-snapshot-created"), 1, "{}", kinds(&h));
    assert_eq!(count(&h, "db-snapshot-dropped"), 0, "kept: {}", kinds(&h));
    let shown = held(&sim);
    assert!(
        shown["point"]
            .as_str()
            .is_some_and(|p| p.contains("snapshot")),
        "{shown}"
    );
    assert_eq!(shown["expired"], false);
    let text = sim.octoup(&["status"]);
    assert!(text.stdout.contains("octoup finalize"), "{}", text.stdout);

    let r = sim.octoup(&["rollback", "--json"]);
    r.expect_code(5);
    assert_eq!(r.outcome(), "rolled-back", "{}", r.stdout);
    assert!(r.all_nodes_on(FROM), "{}", r.stdout);
    let h = sim.history();
    assert_eq!(count(&h, "db-snapshot-reverted"), 1, "{}", kinds(&h));
    assert_eq!(count(&h, "db-upgrade-started"), 1, "{}", kinds(&h));
    sim.assert_check();
    // Taken back: nothing is held any more, and a second rollback is refused.
    assert!(held(&sim).is_null());
    sim.octoup(&["rollback", "--json"]).expect_code(3);
}

#[test]
fn finalize_releases_the_point_and_ends_the_take_back() {
    let sim = upgraded_keeping("azure-copy");
    assert!(!held(&sim).is_null());
    let f = sim.octoup(&["finalize", "--json"]);
    f.expect_code(0);
    assert!(
        f.json["released"]["describe"].as_str().is_some(),
        "{}",
        f.stdout
    );
    let h = sim.history();
    assert!(
        h.iter()
            .any(|e| e["kind"] == "db-dropped" || e["kind"] == "database-dropped"),
        "the copy was dropped: {}",
        kinds(&h)
    );
    assert!(held(&sim).is_null());
    // Nothing held: finalize again is harmless, a rollback is refused and changes nothing.
    let again = sim.octoup(&["finalize", "--json"]);
    again.expect_code(0);
    assert!(again.json["released"].is_null(), "{}", again.stdout);
    let before = sim.history().len();
    let r = sim.octoup(&["rollback", "--json"]);
    r.expect_code(3);
    assert_eq!(mutating(&sim.history()[before..]), Vec::<String>::new());
    sim.assert_check();
}

#[test]
fn an_expired_point_is_released_before_the_next_upgrade_and_a_held_one_refuses_it() {
    let sim = upgraded_keeping("snapshot");
    // Still held: a new `octoup upgrade` is refused, naming the way out.
    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(3);
    let error = r.json["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("octoup finalize"), "{}", r.stdout);
    // Past its time (the journal says so): released first, then the upgrade goes on
    // (here: already up to date).
    let journal = sim.octoup(&["status", "--json"]).json["journal"]
        .as_str()
        .unwrap()
        .to_string();
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut run: serde_json::Value = serde_json::from_str(&text).unwrap();
    for step in run["steps"].as_array_mut().unwrap() {
        if step["name"] == "release-rollback-point" {
            step["outputs"]["held_until"] = "2020-01-01T00:00:00Z".into();
        }
    }
    std::fs::write(&journal, serde_json::to_vec_pretty(&run).unwrap()).unwrap();
    assert_eq!(held(&sim)["expired"], true);
    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(0);
    let h = sim.history();
    assert_eq!(count(&h, "db-snapshot-dropped"), 1, "{}", kinds(&h));
    assert!(held(&sim).is_null());
    sim.assert_check();
}
