//! The fault matrix: every outage step × (a) it fails, (b) it hangs past its timeout,
//! (c) octoup is killed (SIGKILL) in the middle of it. After each, a follow-up (`octoup
//! upgrade`, which resumes, or `octoup rollback`) must reach the target or the original
//! version on every node, and `octoup-sim check` must pass (I1, I2, I3, I5, I6).
//!
//! Each cell has its own simulated installation (own directory and ports); cells run in
//! parallel worker threads. The table is printed (visible with `--nocapture`) and written
//! to `target/fault-matrix.md`; docs/recovery.md keeps a copy.
//!
//! Faults on steps that share an operation with an earlier step (the same API path, the
//! watchdog command) are injected while octoup is held at an earlier step by a `delay`
//! fault (the "anchor"), so they hit exactly the step under test.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use octoup_testkit::*;

const NODE: &str = "OCTO-NODE-01";
const FROM: &str = "2024.1.10";
const TARGET: &str = "2024.3.13050";
/// Simulated seconds that hold an operation open (0.002 real s each at the default scale).
const HOLD: &str = "delay:500";
const ANCHOR_HOLD: &str = "delay:250";

/// One outage step and how to hit it in the simulator.
#[derive(Clone, Copy)]
struct Row {
    /// The journal's step name.
    step: &'static str,
    /// The simulator operation the step performs.
    op: &'static str,
    /// `(a)`: how the operation fails.
    fail: &'static str,
    /// `(b)`: the `[timeouts]` key that bounds the operation.
    timeout: &'static str,
    /// An earlier operation (held by a delay) after which the fault is injected, when the
    /// step's operation also happens before the step.
    anchor: Option<&'static str>,
    /// The step is at or after the database upgrade.
    after_db: bool,
}

const MAINTENANCE: &str = "api:/api/maintenanceconfiguration";
const NODE_RESOURCE: &str = "api:/api/octopusservernodes/OctopusServerNodes-OCTO-NODE-01";
const SUMMARY: &str = "api:/api/octopusservernodes/summary";

const ROWS: &[Row] = &[
    row(
        "maintenance-on",
        MAINTENANCE,
        "http:503",
        "http",
        Some("show-master-key"),
        false,
    ),
    row("drain", NODE_RESOURCE, "http:503", "http", None, false),
    row(
        "delete-watchdog",
        "watchdog",
        "exit:1",
        "command",
        None,
        false,
    ),
    row("stop", "service-stop", "exit:1", "stop", None, false),
    row(
        "backup-database",
        "sql-backup",
        "exit:1",
        "backup",
        None,
        false,
    ),
    row(
        "verify-backup",
        "sql-verify",
        "exit:1",
        "backup",
        None,
        false,
    ),
    row("install", "msiexec", "exit:1603", "install", None, false),
    row(
        "upgrade-database",
        "db-upgrade",
        "exit:1",
        "db_upgrade",
        None,
        true,
    ),
    row("start", "service-start", "exit:1", "start", None, true),
    row(
        "verify",
        SUMMARY,
        "http:503",
        "http",
        Some("db-upgrade"),
        true,
    ),
    row(
        "create-watchdog",
        "watchdog",
        "exit:1",
        "command",
        Some("db-upgrade"),
        true,
    ),
    row(
        "undrain",
        NODE_RESOURCE,
        "http:503",
        "http",
        Some("db-upgrade"),
        true,
    ),
    row(
        "maintenance-restore",
        MAINTENANCE,
        "http:503",
        "http",
        Some("db-upgrade"),
        true,
    ),
];

const fn row(
    step: &'static str,
    op: &'static str,
    fail: &'static str,
    timeout: &'static str,
    anchor: Option<&'static str>,
    after_db: bool,
) -> Row {
    Row {
        step,
        op,
        fail,
        timeout,
        anchor,
        after_db,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Fail,
    Hang,
    Kill,
}

impl Kind {
    fn label(self, row: &Row) -> String {
        match self {
            Kind::Fail => format!("(a) fails ({})", row.fail),
            Kind::Hang => format!("(b) hangs ([timeouts] {} = 1)", row.timeout),
            Kind::Kill => "(c) SIGKILL".to_string(),
        }
    }
}

/// What a cell does and expects.
#[derive(Clone)]
struct Cell {
    row: Row,
    kind: Kind,
    label: String,
    nodes: u32,
    /// Extra `[table] key = value` settings.
    config: Vec<(&'static str, &'static str, toml::Value)>,
    /// Fault node (`None`: any).
    fault_node: Option<&'static str>,
    /// The first run's expected exit code and outcome (`None`: killed).
    first: Option<(i32, &'static str)>,
    /// The follow-up command after the first run.
    follow: &'static str,
    /// Its expected exit code and outcome.
    then: (i32, &'static str),
    /// Something to do between the first run and the follow-up (with a description).
    between: Option<Between>,
}

#[derive(Clone, Copy)]
enum Between {
    /// `octoup rollback` killed while it restores the database.
    KillRollbackInRestore,
    /// Fail the rollback's reinstall once (msiexec 1603).
    FailRollbackInstall,
    /// Delete the database backup; `octoup rollback` must refuse.
    DeleteBackup,
}

impl Cell {
    fn main(row: Row, kind: Kind) -> Cell {
        let (first, follow, then) = match (kind, row.after_db) {
            (Kind::Fail | Kind::Hang, false) => (Some((1, "failed")), "upgrade", (0, "upgraded")),
            (Kind::Kill, false) => (None, "upgrade", (0, "upgraded")),
            (Kind::Fail, true) => (Some((4, "paused")), "upgrade", (0, "upgraded")),
            (Kind::Hang, true) => (Some((4, "paused")), "rollback", (5, "rolled-back")),
            (Kind::Kill, true) => (None, "rollback", (5, "rolled-back")),
        };
        Cell {
            row,
            kind,
            label: kind.label(&row),
            nodes: 1,
            config: Vec::new(),
            fault_node: None,
            first,
            follow,
            then,
            between: None,
        }
    }
}

fn find_row(step: &str) -> Row {
    *ROWS.iter().find(|r| r.step == step).expect("row")
}

/// The cells beyond the main matrix: automatic rollback, a crash or a failure during a
/// rollback, a refused rollback, and a crash in the database upgrade resumed forward.
fn extra_cells() -> Vec<Cell> {
    let db = find_row("upgrade-database");
    let start = find_row("start");
    let mut cells = Vec::new();

    let mut c = Cell::main(db, Kind::Kill);
    c.follow = "upgrade";
    c.then = (0, "upgraded");
    cells.push(c);

    let mut c = Cell::main(db, Kind::Fail);
    c.label = "(a) fails, [rollback] automatic = true".into();
    c.config.push(("rollback", "automatic", true.into()));
    c.first = Some((5, "rolled-back"));
    cells.push(c);

    let mut c = Cell::main(start, Kind::Fail);
    c.label = "(a) fails on node 2 of 2, [cluster] on_failure = \"rollback\"".into();
    c.nodes = 2;
    c.fault_node = Some("OCTO-NODE-02");
    c.config.push(("cluster", "on_failure", "rollback".into()));
    c.first = Some((5, "rolled-back"));
    cells.push(c);

    let mut c = Cell::main(db, Kind::Fail);
    c.label = "(a) fails; `octoup rollback` killed in its restore".into();
    c.between = Some(Between::KillRollbackInRestore);
    c.then = (5, "rolled-back");
    cells.push(c);

    let mut c = Cell::main(db, Kind::Fail);
    c.label = "(a) fails; the rollback's reinstall fails (1603)".into();
    c.between = Some(Between::FailRollbackInstall);
    c.follow = "rollback";
    c.then = (5, "rolled-back");
    cells.push(c);

    let mut c = Cell::main(db, Kind::Fail);
    c.label = "(a) fails; backup deleted: `octoup rollback` refused".into();
    c.between = Some(Between::DeleteBackup);
    cells.push(c);
    cells
}

/// What a cell produced.
struct Outcome {
    cell: Cell,
    first: String,
    between: String,
    follow: String,
    check: String,
    problems: Vec<String>,
    seconds: f64,
}

#[test]
fn fault_matrix() {
    let started = Instant::now();
    let mut cells: Vec<Cell> = Vec::new();
    for row in ROWS {
        for kind in [Kind::Fail, Kind::Hang, Kind::Kill] {
            cells.push(Cell::main(*row, kind));
        }
    }
    cells.extend(extra_cells());
    let total = cells.len();
    let queue = Mutex::new(cells.into_iter().enumerate().collect::<VecDeque<_>>());
    let results = Mutex::new(Vec::new());
    let workers: usize = std::env::var("FAULT_MATRIX_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let Some((i, cell)) = queue.lock().unwrap().pop_front() else {
                        return;
                    };
                    let outcome = run_cell(cell);
                    results.lock().unwrap().push((i, outcome));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    let outcomes: Vec<Outcome> = results.into_iter().map(|(_, o)| o).collect();
    assert_eq!(outcomes.len(), total);

    let table = render(&outcomes, started.elapsed());
    println!("{table}");
    let path = target_dir().join("fault-matrix.md");
    std::fs::write(&path, &table).expect("write target/fault-matrix.md");
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.problems.is_empty())
        .map(|o| {
            format!(
                "{} {}:\n  {}",
                o.cell.row.step,
                o.cell.label,
                o.problems.join("\n  ")
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {total} cells failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

fn render(outcomes: &[Outcome], took: Duration) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| step | fault | first run | then | follow-up | `octoup-sim check` | s |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|");
    for o in outcomes {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {:.1} |",
            o.cell.row.step,
            o.cell.label,
            o.first,
            if o.between.is_empty() {
                "—"
            } else {
                &o.between
            },
            o.follow,
            o.check,
            o.seconds
        );
    }
    let failed = outcomes.iter().filter(|o| !o.problems.is_empty()).count();
    let _ = writeln!(
        t,
        "\n{} cells, {} failed, {:.0} s in all.",
        outcomes.len(),
        failed,
        took.as_secs_f64()
    );
    t
}

fn run_cell(cell: Cell) -> Outcome {
    let started = Instant::now();
    let mut out = Outcome {
        cell: cell.clone(),
        first: String::new(),
        between: String::new(),
        follow: String::new(),
        check: String::new(),
        problems: Vec::new(),
        seconds: 0.0,
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        play(&cell, &mut out);
    }));
    if let Err(panic) = result {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into());
        out.problems.push(format!("panicked: {text}"));
    }
    out.seconds = started.elapsed().as_secs_f64();
    out
}

fn scenario(cell: &Cell) -> Scenario {
    // The rows are the native strategy's steps (its backup file, its restore); the other
    // strategies' faults are in strategies.rs.
    let mut s = Scenario::new()
        .nodes(cell.nodes)
        .watchdog(NODE)
        .config("database", "strategy", "native");
    for (table, key, value) in &cell.config {
        s = s.config(table, key, value.clone());
    }
    if cell.kind == Kind::Hang {
        s = s.config("timeouts", cell.row.timeout, 1);
    }
    let times = 1;
    if let Some(anchor) = cell.row.anchor {
        // The step's own fault is injected once octoup is held at the anchor.
        s = s.fault_times(anchor, ANCHOR_HOLD, None, times);
    } else {
        s = s.fault_times(cell.row.op, action(cell), cell.fault_node, times);
    }
    s
}

fn action(cell: &Cell) -> &'static str {
    match cell.kind {
        Kind::Fail => cell.row.fail,
        Kind::Hang => "hang",
        Kind::Kill => HOLD,
    }
}

fn play(cell: &Cell, out: &mut Outcome) {
    let sim = scenario(cell).start();
    let child = sim
        .octoup_cmd(&["upgrade", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn octoup");
    if let Some(anchor) = cell.row.anchor {
        wait_fired(&sim, anchor, 0);
        inject(&sim, cell.row.op, action(cell), cell.fault_node);
    }
    // First run.
    match cell.kind {
        Kind::Kill => {
            let mut child = child;
            wait_fired_or_exit(&sim, cell.row.op, 0, &mut child);
            child.kill().expect("kill octoup");
            let _ = child.wait();
            out.first = "killed in the step".into();
            let status = sim.octoup(&["status", "--json"]);
            let state = step_state(&status.json, cell.row.step);
            if !state.contains("running") {
                out.problems.push(format!(
                    "after the kill, `octoup status` shows {} as {state}, not running",
                    cell.row.step
                ));
            }
        }
        Kind::Fail | Kind::Hang => {
            let output = child.wait_with_output().expect("octoup output");
            let code = output.status.code().unwrap_or(-1);
            let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
            let outcome = report["outcome"].as_str().unwrap_or("?").to_string();
            out.first = format!("{outcome} (exit {code})");
            if let Some((want_code, want)) = cell.first
                && (code != want_code || outcome != want)
            {
                out.problems.push(format!(
                    "first run: {outcome} (exit {code}), expected {want} (exit {want_code}); error: {}; stderr: {}",
                    report["error"],
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            if cell.first.is_some_and(|(_, o)| o == "paused")
                && !report["next_step"]
                    .as_str()
                    .is_some_and(|n| n.contains("octoup upgrade") && n.contains("rollback"))
                && cell.row.step == "upgrade-database"
            {
                out.problems.push(format!(
                    "paused without both next steps: {}",
                    report["next_step"]
                ));
            }
        }
    }
    if let Some(between) = cell.between {
        out.between = between_step(&sim, between, out);
    }
    // Follow-up.
    let r = sim.octoup(&[cell.follow, "--json"]);
    let outcome = r.outcome().to_string();
    out.follow = format!("`octoup {}`: {outcome} (exit {})", cell.follow, r.code);
    let (want_code, want) = cell.then;
    if r.code == 6 {
        // The killed octoup's lock must have died with it (an OS file lock).
        out.problems
            .push("the follow-up found the lock still held (exit 6)".to_string());
    }
    if r.code != want_code || outcome != want {
        out.problems.push(format!(
            "follow-up `octoup {}`: {outcome} (exit {}), expected {want} (exit {want_code}); error: {}; next: {}; stderr: {}",
            cell.follow, r.code, r.json["error"], r.json["next_step"], r.stderr
        ));
    }
    let version = if want == "upgraded" { TARGET } else { FROM };
    for n in r.json["nodes"].as_array().into_iter().flatten() {
        if n["version"] != version || n["serving"] != version {
            out.problems
                .push(format!("follow-up: node {n} does not serve {version}"));
        }
    }
    // The simulator's own view: every node serves that version, and the invariants hold.
    let state = sim.state();
    for n in state["nodes"].as_array().into_iter().flatten() {
        if n["installed_version"] != version {
            out.problems.push(format!(
                "{} has {} installed, expected {version}",
                n["name"], n["installed_version"]
            ));
        }
    }
    // A crash in the database upgrade: the re-run waited for the orphaned upgrade
    // instead of starting a second one.
    let history = sim.history();
    let upgrades = count(&history, "db-upgrade-started");
    let want_upgrades = match (cell.row.step, cell.kind, cell.follow) {
        ("upgrade-database", Kind::Kill, _) => Some(1),
        (_, _, "upgrade")
            if want == "upgraded" && cell.first.is_none_or(|f| f.1 != "rolled-back") =>
        {
            Some(1 + usize::from(cell.row.step == "upgrade-database" && cell.kind == Kind::Fail))
        }
        _ => None,
    };
    if let Some(n) = want_upgrades
        && upgrades != n
    {
        out.problems.push(format!(
            "{upgrades} database upgrades started, expected {n}: {}",
            kinds(&history)
        ));
    }
    let (ok, check) = sim.check();
    out.check = if ok {
        "ok".into()
    } else {
        let v: Vec<String> = check["violations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| format!("{} (seq {})", v["invariant"], v["seq"]))
            .collect();
        out.problems.push(format!("octoup-sim check: {check}"));
        format!("FAILED: {}", v.join(", "))
    };
}

/// What happens between the first run and the follow-up, in words for the table.
fn between_step(sim: &Sim, between: Between, out: &mut Outcome) -> String {
    match between {
        Between::KillRollbackInRestore => {
            inject(sim, "sql-restore", HOLD, None);
            let before = fired_count(sim, "sql-restore");
            let mut child = sim
                .octoup_cmd(&["rollback", "--json"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn octoup rollback");
            wait_fired_or_exit(sim, "sql-restore", before, &mut child);
            child.kill().expect("kill");
            let _ = child.wait();
            let status = sim.octoup(&["status", "--json"]);
            if status.json["status"] != "rolling-back" {
                out.problems.push(format!(
                    "after killing the rollback, status is {}",
                    status.json["status"]
                ));
            }
            "`octoup rollback` killed in its restore".into()
        }
        Between::FailRollbackInstall => {
            inject(sim, "msiexec", "exit:1603", None);
            let r = sim.octoup(&["rollback", "--json"]);
            if r.code != 4 || r.outcome() != "paused" {
                out.problems.push(format!(
                    "rollback with a failing reinstall: {} (exit {}), expected paused (exit 4)",
                    r.outcome(),
                    r.code
                ));
            }
            format!("`octoup rollback`: {} (exit {})", r.outcome(), r.code)
        }
        Between::DeleteBackup => {
            let status = sim.octoup(&["status", "--json"]);
            let backup = status.json["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["name"] == "backup-database")
                .and_then(|s| s["detail"].as_str())
                .unwrap_or_default()
                // The path, then what SQL Server reported: ` (44.0 MB in 1m 00s, 1 MB/s)`.
                .split(" (")
                .next()
                .unwrap_or_default()
                .to_string();
            std::fs::remove_file(&backup).expect("delete the backup");
            let before = sim.history().len();
            let r = sim.octoup(&["rollback", "--json"]);
            let error = r.json["error"].as_str().unwrap_or_default();
            if r.code != 3 || r.json["refused"] != true || !error.contains("missing") {
                out.problems.push(format!(
                    "rollback without its backup: exit {}, refused {}, error {error}",
                    r.code, r.json["refused"]
                ));
            }
            // Verifying the backup again reads it; nothing else may happen.
            let changed: Vec<String> = mutating(&sim.history()[before..])
                .into_iter()
                .filter(|k| !k.starts_with("db-backup-verif"))
                .collect();
            if !changed.is_empty() {
                out.problems
                    .push(format!("the refused rollback changed things: {changed:?}"));
            }
            format!(
                "`octoup rollback`: refused (exit {}): backup missing",
                r.code
            )
        }
    }
}

/// `octoup-sim fault --op OP --action ACTION [--node N]` (once).
fn inject(sim: &Sim, op: &str, action: &str, node: Option<&str>) {
    sim.fault(op, action, node, 1);
}

fn fired_count(sim: &Sim, op: &str) -> usize {
    sim.history()
        .iter()
        .filter(|e| e["kind"] == "fault-fired" && e["op"] == op)
        .count()
}

/// Waits until more than `seen` faults on `op` have fired.
fn wait_fired(sim: &Sim, op: &str, seen: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while fired_count(sim, op) <= seen {
        assert!(Instant::now() < deadline, "the fault on {op} never fired");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Like [`wait_fired`], but fails at once when octoup exits first.
fn wait_fired_or_exit(sim: &Sim, op: &str, seen: usize, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while fired_count(sim, op) <= seen {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("octoup exited ({status}) before the fault on {op} fired");
        }
        assert!(Instant::now() < deadline, "the fault on {op} never fired");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The journal state of step `name` in `octoup status --json` (every node's).
fn step_state(status: &Value, name: &str) -> String {
    status["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["name"] == name)
        .map(|s| s["state"].as_str().unwrap_or("?").to_string())
        .collect::<Vec<_>>()
        .join(",")
}
