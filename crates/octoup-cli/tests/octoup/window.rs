//! The maintenance window against the simulator: a run that does not fit is refused with
//! nothing changed, a window that ends during the drain undoes the run (flags restored, the
//! invariants hold), and a database upgrade that runs past the end finishes and reports the
//! overrun. The figures are measured ones: the journal of an upgrade of a twin installation
//! is put in the state directory first, as an earlier run would have left it.

use std::path::PathBuf;
use std::sync::OnceLock;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use octoup_testkit::*;

const FROM: &str = "2024.1.10";
const TARGET: &str = "2024.3.13050";

/// `now + secs`, as `--until` takes it (RFC 3339).
fn until(secs: i64) -> String {
    (Timestamp::now() + SignedDuration::from_secs(secs)).to_string()
}

/// The journal (file name, text) of an upgraded run on a twin simulation.
fn measured_run() -> &'static (String, String) {
    static RUN: OnceLock<(String, String)> = OnceLock::new();
    RUN.get_or_init(|| {
        let (_sim, r) = Scenario::new().run(&["upgrade", "--json"]);
        r.expect_code(0);
        let path = PathBuf::from(r.json["journal"].as_str().expect("journal path"));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        (name, std::fs::read_to_string(&path).expect("journal"))
    })
}

/// Puts the measured run in `sim`'s state directory: its history.
fn with_history(sim: &Sim) -> String {
    let (name, text) = measured_run();
    let state = PathBuf::from(sim.read_config()["state"]["dir"].as_str().unwrap());
    let runs = state.join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    std::fs::write(runs.join(name), text).unwrap();
    let run: Value = serde_json::from_str(text).unwrap();
    format!("run {}", run["id"].as_str().unwrap())
}

#[test]
fn a_run_that_does_not_fit_or_is_outside_the_window_is_refused_with_nothing_changed() {
    let sim = Scenario::new().start();
    let before = sim.history().len();

    // Five minutes; the default figures need about twenty.
    let r = sim.octoup(&["upgrade", "--json", "--until", &until(300)]);
    r.expect_code(3);
    assert_eq!(r.outcome(), "failed", "{}", r.stdout);
    assert_eq!(r.json["refused"], true);
    let error = r.json["error"].as_str().unwrap();
    assert!(error.contains("maintenance window"), "{error}");
    // The defaults, and the database's steps from its size (no run measured one yet).
    assert!(
        error.contains("(figures: defaults; the data size at "),
        "{error}"
    );
    assert!(error.contains("nothing was changed"), "{error}");
    assert!(
        r.json["window"]["figures"]
            .as_str()
            .is_some_and(|f| f.starts_with("defaults; the data size at ")),
        "{}",
        r.stdout
    );
    assert!(r.json["window"]["estimate_seconds"].as_f64().unwrap() > 300.0);

    // A [window] that opens in six hours: outside it now.
    let opens = Timestamp::now() + SignedDuration::from_hours(6);
    let start = opens
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%H:%M")
        .to_string();
    let end = (opens + SignedDuration::from_mins(30))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%H:%M")
        .to_string();
    sim.edit_config(|cfg| {
        let mut w = toml::Table::new();
        w.insert("start".into(), start.clone().into());
        w.insert("end".into(), end.clone().into());
        w.insert("time_zone".into(), "UTC".into());
        cfg.insert("window".into(), w.into());
    });
    let plan = sim.octoup(&["plan", "--json"]);
    plan.expect_code(0);
    assert_eq!(plan.json["window"]["inside"], false, "{}", plan.stdout);
    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(3);
    let error = r.json["error"].as_str().unwrap();
    assert!(error.contains("outside the maintenance window"), "{error}");
    assert!(error.contains("opens next at"), "{error}");
    assert!(error.contains(&start), "{error}");

    assert_eq!(
        mutating(&sim.history()[before..]),
        Vec::<String>::new(),
        "a refused run changed something"
    );
    sim.assert_check();
}

#[test]
fn a_window_that_ends_during_the_drain_undoes_the_run() {
    let sim = Scenario::new()
        .task("OCTO-NODE-01", 1.0e7)
        .config("drain", "wait_seconds", 3600)
        .start();
    let figures = with_history(&sim);
    let plan = sim.octoup(&["plan", "--json"]);
    assert_eq!(
        plan.json["estimates_from"],
        figures.as_str(),
        "{}",
        plan.stdout
    );

    let r = sim.octoup(&["upgrade", "--json", "--until", &until(30)]);
    r.expect_code(1);
    assert_eq!(r.outcome(), "failed", "{}", r.stdout);
    assert_eq!(r.json["refused"], false);
    let error = r.json["error"].as_str().unwrap();
    assert!(error.contains("maintenance window"), "{error}");
    assert!(error.contains("before the point of no return"), "{error}");
    assert!(error.contains("undone"), "{error}");
    // The run's figures (and the database's steps from the size).
    assert!(
        r.json["window"]["figures"]
            .as_str()
            .is_some_and(|f| f.starts_with(figures.as_str())),
        "{}",
        r.stdout
    );
    assert!(
        r.json["next_step"].as_str().unwrap().contains("put back"),
        "{}",
        r.stdout
    );
    assert_eq!(r.step("maintenance-on", None), "undone");
    assert_eq!(r.step("stop", None), "skipped", "never stopped");
    let h = sim.history();
    assert_eq!(count(&h, "service-stopping"), 0, "{}", kinds(&h));
    assert_eq!(count(&h, "db-upgrade-started"), 0, "{}", kinds(&h));
    let state = sim.state();
    assert_eq!(
        state["database"]["maintenance"]["is_in_maintenance_mode"],
        false
    );
    assert_eq!(state["database"]["schema_version"], FROM);
    assert!(r.all_nodes_on(FROM), "{}", r.stdout);
    sim.assert_check();
}

#[test]
fn a_database_upgrade_past_the_end_finishes_and_reports_the_overrun() {
    let sim = Scenario::new().start();
    with_history(&sim);
    // The database upgrade takes 15 s (7500 simulated seconds at 2 ms each), longer than the
    // whole window: it starts inside it and ends after it.
    sim.fault("db-upgrade", "delay:7500", None, 1);
    let r = sim.octoup(&["upgrade", "--json", "--until", &until(15)]);
    r.expect_code(0);
    assert_eq!(r.outcome(), "upgraded", "{}", r.stdout);
    assert!(r.all_nodes_on(TARGET), "{}", r.stdout);
    let warnings = r.json["warnings"].to_string();
    assert!(
        warnings.contains("after the point of no return") && warnings.contains("overran"),
        "{}",
        r.stdout
    );
    assert!(
        r.json["window"]["overrun_seconds"].as_f64().unwrap() > 0.0,
        "{}",
        r.stdout
    );
    let status = sim.octoup(&["status", "--json"]);
    assert!(
        status.stdout.contains("overran"),
        "status shows the overrun: {}",
        status.stdout
    );
    sim.assert_check();
}
