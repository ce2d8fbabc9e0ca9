//! Snapshots of the human text output (`tests/octoup/snapshots/*.snap`): `check` offline and
//! against the simulator, `plan` for one and three nodes, the final report of `upgrade` for
//! an upgraded and a paused run, and `status` after each.
//!
//! Only stdout is snapshotted: it is the report, printed once at the end in plan order.
//! The progress lines on stderr interleave the nodes of a parallel step in whatever order
//! they finish, so they are not. What varies from run to run is redacted: the simulator's
//! directory, ports, clock times and the run ids and file stamps made from them, measured
//! durations, digests, pids and free disk space.

use octoup_testkit::{Ran, Scenario, Sim};

use crate::check::offline_text;

/// Redactions applied by insta after [`Sim`]'s directory is replaced.
const FILTERS: &[(&str, &str)] = &[
    (
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
        "[TIMESTAMP]",
    ),
    // Run ids and backup file stamps: 20261202T060637Z-11d9.
    (r"\d{8}T\d{6}Z-[0-9a-f]+", "[STAMP]"),
    // The same stamp in a database name (a snapshot's): 20261202T060637Z_11d9.
    (r"\d{8}T\d{6}Z_[0-9a-f]+", "[STAMP]"),
    (r"\b[0-9a-f]{64}\b", "[SHA256]"),
    (r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]"),
    // Measured durations, as `human_duration` writes them: `0s`, `0.4s`, `12s`, `1m 05s`,
    // `1h 02m` (the plan's estimates, from the config, are not in parentheses and stay).
    (r"\((\d+h \d+m|\d+m \d+s|\d+(\.\d+)?s)\)", "([DURATION])"),
    (
        r"Outage: (\d+h \d+m|\d+m \d+s|\d+(\.\d+)?s) \(",
        "Outage: [DURATION] (",
    ),
    (
        r"(\d+h \d+m|\d+m \d+s|\d+(\.\d+)?s) (so far|since the first stop)",
        "[DURATION] $3",
    ),
    (
        r"Outage: (\d+h \d+m|\d+m \d+s|\d+(\.\d+)?s)\.",
        "Outage: [DURATION].",
    ),
    (
        r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})? UTC\b",
        "[DATETIME]",
    ),
    (r"\b\d{2}:\d{2}:\d{2}( UTC)?\b", "[TIME]"),
    (r"\b\d+(\.\d+)? [KMGT]?i?B free\b", "[SPACE] free"),
    (r"\bpid \d+\b", "pid [PID]"),
    // What SQL Server reported of a backup: its size, time and rate.
    (
        r"\(\d+(\.\d+)? [KMGT]?B in [^,()]+, \d+ MB/s\)",
        "([MEASURED])",
    ),
];

/// `text` with `sim`'s directory shown as `[SIM]`, snapshotted as `name` with the filters.
fn snapshot(name: &str, sim: Option<&Sim>, text: &str) {
    let mut text = text.to_string();
    if let Some(sim) = sim {
        let dir = sim.dir();
        if let Ok(real) = dir.canonicalize() {
            text = text.replace(&real.display().to_string(), "[SIM]");
        }
        text = text.replace(&dir.display().to_string(), "[SIM]");
    }
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in FILTERS {
        settings.add_filter(pattern, *replacement);
    }
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// `octoup <args>` against `sim`, expecting exit status `code`; its stdout.
fn stdout(sim: &Sim, args: &[&str], code: i32) -> String {
    let ran: Ran = sim.octoup(args);
    ran.expect_code(code);
    ran.stdout
}

#[test]
fn check_offline_with_a_feed_file() {
    snapshot("check_offline", None, &offline_text().stdout);
}

#[test]
fn check_against_the_simulator() {
    let sim = Scenario::new().start();
    snapshot("check_sim", Some(&sim), &stdout(&sim, &["check"], 0));
}

#[test]
fn plan_one_node() {
    let sim = Scenario::new().watchdog("OCTO-NODE-01").start();
    snapshot("plan_1_node", Some(&sim), &stdout(&sim, &["plan"], 0));
}

#[test]
fn plan_three_nodes() {
    let sim = Scenario::new().nodes(3).start();
    snapshot("plan_3_nodes", Some(&sim), &stdout(&sim, &["plan"], 0));
}

#[test]
fn upgrade_and_status_of_an_upgraded_run() {
    let sim = Scenario::new().nodes(3).watchdog("OCTO-NODE-02").start();
    let report = stdout(&sim, &["upgrade", "--yes"], 0);
    snapshot("upgrade_upgraded", Some(&sim), &report);
    snapshot("status_upgraded", Some(&sim), &stdout(&sim, &["status"], 0));
    sim.assert_check();
}

#[test]
fn upgrade_and_status_of_a_run_paused_on_the_database_upgrade() {
    let sim = Scenario::new().fault("db-upgrade", "exit:1").start();
    let report = stdout(&sim, &["upgrade", "--yes"], 4);
    snapshot("upgrade_paused", Some(&sim), &report);
    snapshot("status_paused", Some(&sim), &stdout(&sim, &["status"], 4));
}
