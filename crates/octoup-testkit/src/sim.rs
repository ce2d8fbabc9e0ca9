//! A running simulated installation (`octoup-sim up` in a temporary directory) and what a
//! test does with it: run `octoup` against its `octoup.toml`, edit that config, read the
//! history and state, run the invariant checker, add faults. Stopped (`down`) on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bins::sim_bin;
use crate::history;
use crate::ran::{Ran, octoup_command};

/// The arguments octoup passes the `sqlcmd` stand-in before `-Q <query>`: the simulated
/// server, the `master` database, the SQL login, stop on the first error.
pub const SQLCMD_ARGS: &[&str] = &["-S", "127.0.0.1,1433", "-d", "master", "-U", "octoup", "-b"];

/// Which program runs the simulator; its stand-ins in `octoup.toml` are that program too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Launcher {
    /// The `octoup-sim` binary.
    #[default]
    OctoupSim,
    /// `octoup sim`, the simulator built into the `octoup` binary.
    Octoup,
}

impl Launcher {
    /// The simulator's `command` (`up`, `check`, `exe`, ...) with `--dir DIR` after it.
    fn command(self, command: &str, dir: &Path) -> Command {
        let mut c = match self {
            Launcher::OctoupSim => Command::new(sim_bin()),
            Launcher::Octoup => octoup_command(["sim"]),
        };
        c.arg(command).arg("--dir").arg(dir);
        c
    }
}

/// A running simulated installation; stopped on drop.
pub struct Sim {
    dir: PathBuf,
    launcher: Launcher,
    // Last: the daemon is stopped before the directory goes.
    _tmp: tempfile::TempDir,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self
            .sim_command(&["down"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Sim {
    /// Starts an installation from a whole spec (TOML text) with the `octoup-sim` binary;
    /// [`crate::Scenario`] builds the spec and sets the scene.
    pub fn up(spec: &str) -> Sim {
        Sim::up_with(spec, Launcher::OctoupSim)
    }

    /// Starts an installation from a whole spec with `launcher`; returns once it answers.
    pub fn up_with(spec: &str, launcher: Launcher) -> Sim {
        let tmp = tempfile::tempdir().expect("tempdir");
        let spec_path = tmp.path().join("spec.toml");
        std::fs::write(&spec_path, spec).expect("write spec");
        let sim = Sim {
            dir: tmp.path().join("sim"),
            launcher,
            _tmp: tmp,
        };
        let up = Ran::of(sim.sim_command(&["up"]).arg("--spec").arg(&spec_path));
        assert_eq!(
            up.code, 0,
            "simulator up failed: {}{}",
            up.stdout, up.stderr
        );
        sim
    }

    /// The installation's directory (its `octoup.toml`, secrets files, state).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("octoup.toml")
    }

    /// The `octoup.toml` that `up` wrote (with any edits), as text.
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(self.config_path()).expect("read octoup.toml")
    }

    /// The `octoup.toml`, parsed.
    pub fn read_config(&self) -> toml::Table {
        self.config_text().parse().expect("parse octoup.toml")
    }

    pub fn edit_config(&self, f: impl FnOnce(&mut toml::Table)) {
        let mut cfg = self.read_config();
        f(&mut cfg);
        std::fs::write(self.config_path(), toml::to_string(&cfg).unwrap())
            .expect("write octoup.toml");
    }

    /// The simulator's `args[0]` with `--dir DIR` and the rest of `args`, not yet run.
    pub fn sim_command(&self, args: &[&str]) -> Command {
        let mut c = self.launcher.command(args[0], &self.dir);
        c.args(&args[1..]);
        c
    }

    /// `octoup-sim <args[0]> --dir DIR <args[1..]>`, run to the end.
    pub fn sim(&self, args: &[&str]) -> Ran {
        Ran::of(&mut self.sim_command(args))
    }

    /// A stand-in (`exe`, `msiexec`, `sqlcmd`) with its arguments and environment, e.g.
    /// `["exe", "--node", NODE, ...]`.
    pub fn standin(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.sim_command(args);
        c.envs(env.iter().copied());
        c.output().expect("run stand-in")
    }

    /// `Octopus.Server.exe <args>` on `node` (the `exe` stand-in).
    pub fn exe(&self, node: &str, args: &[&str]) -> Output {
        let mut all = vec!["exe", "--node", node];
        all.extend_from_slice(args);
        self.standin(&all, &[])
    }

    /// The `octoup` command with `--config DIR/octoup.toml` after `args`.
    pub fn octoup_cmd(&self, args: &[&str]) -> Command {
        let mut c = octoup_command(args);
        c.arg("--config").arg(self.config_path());
        c
    }

    /// [`Self::octoup_cmd`] without the implied `--yes` (see [`crate::octoup_asking`]).
    pub fn octoup_asking_cmd(&self, args: &[&str]) -> Command {
        let mut c = crate::octoup_asking(args);
        c.arg("--config").arg(self.config_path());
        c
    }

    /// `octoup <args> --config DIR/octoup.toml`, run to the end.
    pub fn octoup(&self, args: &[&str]) -> Ran {
        Ran::of(&mut self.octoup_cmd(args))
    }

    /// `octoup node <args> --json --config DIR/octoup.toml`.
    pub fn node(&self, args: &[&str]) -> Ran {
        let mut all = vec!["node"];
        all.extend_from_slice(args);
        all.push("--json");
        self.octoup(&all)
    }

    /// The event history.
    pub fn history(&self) -> Vec<Value> {
        let ran = self.sim(&["history", "--json"]);
        ran.expect_code(0);
        serde_json::from_str(&ran.stdout).expect("history JSON")
    }

    /// How many history events are of `kind`.
    pub fn count(&self, kind: &str) -> usize {
        history::count(&self.history(), kind)
    }

    /// `octoup-sim check`: whether every invariant holds, and the JSON answer.
    pub fn check(&self) -> (bool, Value) {
        self.check_with(&[])
    }

    pub fn check_with(&self, extra: &[&str]) -> (bool, Value) {
        let mut args = vec!["check", "--json"];
        args.extend_from_slice(extra);
        let ran = self.sim(&args);
        (ran.code == 0, ran.json)
    }

    /// Panics with the checker's words when an invariant is broken.
    #[track_caller]
    pub fn assert_check(&self) {
        let (ok, v) = self.check();
        assert!(ok, "octoup-sim check failed: {v:#}");
    }

    /// `octoup-sim state --json`.
    pub fn state(&self) -> Value {
        let ran = self.sim(&["state", "--json"]);
        ran.expect_code(0);
        ran.json
    }

    /// A fault: `octoup-sim fault --op OP --action ACTION [--node N] --times K` (0 = forever).
    pub fn fault(&self, op: &str, action: &str, node: Option<&str>, times: u32) {
        let times = times.to_string();
        let mut args = vec!["fault", "--op", op, "--action", action, "--times", &times];
        if let Some(n) = node {
            args.extend(["--node", n]);
        }
        self.sim(&args).expect_code(0);
    }

    /// Every secret of the installation: admin and read-only API keys, SQL password, master key.
    pub fn secrets(&self) -> Vec<String> {
        let s = &self.state()["secrets"];
        [
            "admin_api_key",
            "readonly_api_key",
            "sql_password",
            "master_key",
        ]
        .iter()
        .map(|k| s[k].as_str().expect("secret").to_string())
        .collect()
    }

    /// Maintenance mode through the API, as an administrator.
    pub fn set_maintenance(&self, on: bool) {
        let cfg = self.read_config();
        let url = cfg["server"]["url"].as_str().unwrap().to_string();
        let key_file = cfg["server"]["api_key_file"].as_str().unwrap().to_string();
        let key = std::fs::read_to_string(key_file)
            .unwrap()
            .trim()
            .to_string();
        let body = format!("{{\"IsInMaintenanceMode\":{on}}}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let status = reqwest::Client::new()
                .put(format!("{url}/api/maintenanceconfiguration"))
                .header("X-Octopus-ApiKey", key)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status();
            assert!(status.is_success(), "PUT maintenance: {status}");
        });
    }

    /// A verified database backup through the sqlcmd stand-in, as the orchestrator makes
    /// it before a schema upgrade (the checker's I3 wants one).
    pub fn back_up_database(&self) {
        let password = std::fs::read_to_string(self.dir.join("sql-password.txt")).unwrap();
        let bak = self.dir.join("pre.bak");
        for sql in [
            format!(
                "BACKUP DATABASE [OctopusDeploy] TO DISK = N'{}' WITH COPY_ONLY, CHECKSUM",
                bak.display()
            ),
            format!(
                "RESTORE VERIFYONLY FROM DISK = N'{}' WITH CHECKSUM",
                bak.display()
            ),
        ] {
            let mut args = vec!["sqlcmd"];
            args.extend_from_slice(SQLCMD_ARGS);
            args.extend(["-Q", &sql]);
            let out = self.standin(&args, &[("SQLCMDPASSWORD", password.trim())]);
            assert!(out.status.success(), "{sql}: {out:?}");
        }
    }

    /// Starts `octoup <args>` in the background and returns once the history shows an
    /// event of `kind` (the run is then inside the step that event belongs to).
    pub fn spawn_until(&self, args: &[&str], kind: &str) -> Child {
        let child = self
            .octoup_cmd(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start octoup");
        assert!(
            self.wait_for_event(kind, Duration::from_secs(60)),
            "no {kind} event"
        );
        child
    }

    /// Waits until the history has an event of `kind` (true) or `timeout` passes (false).
    pub fn wait_for_event(&self, kind: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.history().iter().any(|e| e["kind"] == kind) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}
