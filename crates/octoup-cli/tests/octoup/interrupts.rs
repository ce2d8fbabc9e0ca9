//! At 2 a.m.: the confirmation (asked on a terminal, refused without one unless `--yes`)
//! and Ctrl-C (the first stops at a safe point, the second exits at once; the children
//! are never killed). The terminal cases run octoup on a pseudo-terminal.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

use octoup_testkit::*;

const TARGET: &str = "2024.3.13050";

/// `octoup` on a pseudo-terminal: what it wrote, and what is typed at it.
struct Terminal {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    output: Arc<Mutex<String>>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Terminal {
    fn run(sim: &Sim, args: &[&str]) -> Terminal {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: 50,
                cols: 250,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("a pseudo-terminal");
        let mut cmd = CommandBuilder::new(octoup_bin());
        cmd.args(args);
        cmd.arg("--config");
        cmd.arg(sim.config_path());
        cmd.env_remove("OCTOPUS_URL");
        cmd.env_remove("OCTOPUS_API_KEY");
        cmd.cwd(sim.dir());
        let child = pty.slave.spawn_command(cmd).expect("start octoup");
        drop(pty.slave);
        let mut reader = pty.master.try_clone_reader().unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Terminal {
            child,
            writer: pty.master.take_writer().unwrap(),
            output,
            _master: pty.master,
        }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits until octoup wrote `text`.
    #[track_caller]
    fn expect(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.output().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn type_in(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    /// The exit code, once octoup has ended.
    #[track_caller]
    fn exit_code(&mut self) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader drain what is left.
                std::thread::sleep(Duration::from_millis(200));
                return status.exit_code();
            }
            assert!(
                Instant::now() < deadline,
                "octoup did not end:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn declined_at_the_prompt_exits_7_and_changes_nothing() {
    let sim = Scenario::new().nodes(2).start();
    let mut term = Terminal::run(&sim, &["upgrade"]);
    term.expect("Continue? [y/N]");
    let prompt = term.output();
    assert!(prompt.contains(&format!("→ {TARGET}")), "{prompt}");
    assert!(
        prompt.contains("an estimated"),
        "the outage estimate: {prompt}"
    );
    assert!(
        prompt.contains("maintenance mode goes on") && prompt.contains("[drain] wait_seconds"),
        "maintenance mode and the drain first: {prompt}"
    );
    term.type_in("n\r");
    assert_eq!(term.exit_code(), 7, "{}", term.output());
    assert!(
        mutating(&sim.history()).is_empty(),
        "nothing changed: {}",
        kinds(&sim.history())
    );
    assert!(term.output().contains("declined"), "{}", term.output());
}

#[test]
fn confirmed_at_the_prompt_upgrades() {
    let sim = Scenario::new().start();
    let mut term = Terminal::run(&sim, &["upgrade"]);
    term.expect("Continue? [y/N]");
    term.type_in("y\r");
    assert_eq!(term.exit_code(), 0, "{}", term.output());
    let status = sim.octoup(&["status", "--json"]);
    assert_eq!(status.json["status"], "upgraded", "{}", status.stdout);
    sim.assert_check();
}

/// A run paused at the database upgrade (it failed once), and the history's mutating
/// events then.
fn paused_run() -> (Sim, usize) {
    let sim = Scenario::new()
        .nodes(2)
        .fault_times("db-upgrade", "exit:1", None, 1)
        .start();
    sim.octoup(&["upgrade", "--json"]).expect_code(4);
    let changes = mutating(&sim.history()).len();
    (sim, changes)
}

#[test]
fn without_a_terminal_upgrade_resume_and_rollback_need_yes() {
    let sim = Scenario::new().start();
    let ran = Ran::of(&mut sim.octoup_asking_cmd(&["upgrade", "--json"]));
    ran.expect_code(8);
    assert!(ran.stdout.contains("--yes"), "{}", ran.stdout);
    assert!(
        mutating(&sim.history()).is_empty(),
        "{}",
        kinds(&sim.history())
    );
    let ran = Ran::of(&mut sim.octoup_asking_cmd(&["upgrade"]));
    ran.expect_code(8);

    let (sim, changes) = paused_run();
    for command in ["resume", "rollback"] {
        let ran = Ran::of(&mut sim.octoup_asking_cmd(&[command, "--json"]));
        ran.expect_code(8);
        assert!(ran.stdout.contains("--yes"), "{command}: {}", ran.stdout);
        assert_eq!(
            mutating(&sim.history()).len(),
            changes,
            "{command} changed something: {}",
            kinds(&sim.history())
        );
    }
    let status = sim.octoup(&["status", "--json"]);
    assert_eq!(status.json["status"], "paused", "{}", status.stdout);
}

#[test]
fn rollback_asks_and_says_what_the_restore_discards() {
    let (sim, changes) = paused_run();
    let mut term = Terminal::run(&sim, &["rollback"]);
    term.expect("Continue? [y/N]");
    let prompt = term.output();
    assert!(
        prompt.contains("is restored from") && prompt.contains("discarded"),
        "{prompt}"
    );
    assert!(prompt.contains("No node has served"), "{prompt}");
    assert!(prompt.contains("Maintenance mode stayed on"), "{prompt}");
    term.type_in("no\r");
    assert_eq!(term.exit_code(), 7, "{}", term.output());
    assert_eq!(mutating(&sim.history()).len(), changes);
}

/// A cluster whose `database --upgrade` takes about 3 s, with a long `[timeouts] db_upgrade`.
fn slow_schema_upgrade() -> Sim {
    Scenario::new()
        .nodes(2)
        .fault_times("db-upgrade", "delay:1500", None, 1)
        .config("timeouts", "db_upgrade", 600)
        .start()
}

#[test]
fn ctrl_c_in_the_database_upgrade_lets_it_finish_then_pauses() {
    let sim = slow_schema_upgrade();
    let mut term = Terminal::run(&sim, &["upgrade", "--yes"]);
    assert!(sim.wait_for_event("fault-fired", Duration::from_secs(60)));
    term.expect("upgrade-database");
    term.type_in("\x03");
    term.expect("stops at the next safe point");
    assert_eq!(term.exit_code(), 4, "paused:\n{}", term.output());
    let out = term.output();
    assert!(
        out.contains("Running now: upgrade-database"),
        "what runs: {out}"
    );
    assert!(out.to_lowercase().contains("paused"), "{out}");
    assert!(out.contains("`octoup upgrade` continues"), "{out}");
    let history = sim.history();
    assert_eq!(
        count(&history, "db-upgrade-finished"),
        1,
        "the child was not killed: {}",
        kinds(&history)
    );
    let status = sim.octoup(&["status", "--json"]);
    assert_eq!(status.json["status"], "paused", "{}", status.stdout);

    let began = Instant::now();
    let ran = sim.octoup(&["upgrade", "--json"]);
    ran.expect_code(0);
    assert!(ran.all_nodes_on(TARGET), "{}", ran.stdout);
    assert!(
        began.elapsed() < Duration::from_secs(60),
        "the re-run waited {:?}",
        began.elapsed()
    );
    assert_eq!(count(&sim.history(), "db-upgrade-started"), 1);
    sim.assert_check();
}

#[test]
fn a_second_ctrl_c_exits_130_and_the_database_upgrade_runs_on() {
    let sim = slow_schema_upgrade();
    let mut term = Terminal::run(&sim, &["upgrade", "--yes"]);
    assert!(sim.wait_for_event("fault-fired", Duration::from_secs(60)));
    term.expect("upgrade-database");
    term.type_in("\x03");
    term.expect("stops at the next safe point");
    term.type_in("\x03");
    assert_eq!(term.exit_code(), 130, "{}", term.output());
    assert!(term.output().contains("exiting now"), "{}", term.output());
    let status = sim.octoup(&["status", "--json"]);
    let step = status.json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "upgrade-database")
        .unwrap()
        .clone();
    assert_eq!(step["state"], "running", "{}", status.stdout);

    // The re-run waits for exactly the journaled process, then finds the schema upgraded.
    let began = Instant::now();
    let ran = sim.octoup(&["upgrade", "--json"]);
    ran.expect_code(0);
    assert!(ran.all_nodes_on(TARGET), "{}", ran.stdout);
    assert!(
        began.elapsed() < Duration::from_secs(60),
        "the re-run waited {:?}",
        began.elapsed()
    );
    let history = sim.history();
    assert_eq!(
        count(&history, "db-upgrade-started"),
        1,
        "{}",
        kinds(&history)
    );
    assert_eq!(
        count(&history, "db-upgrade-finished"),
        1,
        "{}",
        kinds(&history)
    );
    sim.assert_check();
}
