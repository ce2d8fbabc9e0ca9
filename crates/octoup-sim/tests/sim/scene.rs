//! A simulated installation without the daemon, for driving the stand-ins exactly as
//! octoup does: `octoup-sim exe|msiexec|sqlcmd --dir DIR ...` as child processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use assert_cmd::assert::Assert;
use octoup_sim::history::Record;
use octoup_sim::spec::Spec;
use octoup_sim::state::{Ports, Secrets, State, Store};
use octoup_testkit::{SQLCMD_ARGS, sim_bin};

pub const OLD: &str = "2024.1.10";
pub const NEW: &str = "2024.2.9409";

pub struct Scene {
    pub store: Store,
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

/// Fast defaults: 1 ms per simulated second.
pub fn spec(nodes: u32) -> Spec {
    Spec {
        time_scale: 0.001,
        nodes,
        ..Spec::default()
    }
}

impl Scene {
    pub fn new(spec: Spec) -> Scene {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sim");
        let ports = Ports {
            feed: 1,
            // Nothing listens there: the stand-ins do not wait for ports without a daemon.
            nodes: (0..spec.nodes).map(|i| 2 + i as u16).collect(),
        };
        let store = Store::create(&dir, State::new(&spec, &ports, Secrets::generate())).unwrap();
        std::fs::create_dir_all(dir.join("sql-backups")).unwrap();
        Scene {
            store,
            dir,
            _tmp: tmp,
        }
    }

    pub fn with_nodes(nodes: u32) -> Scene {
        Scene::new(spec(nodes))
    }

    pub fn state(&self) -> State {
        self.store.snapshot().unwrap()
    }

    pub fn update(&self, f: impl FnOnce(&mut State)) {
        crate::support::update(&self.store, f);
    }

    pub fn history(&self) -> Vec<Record> {
        self.store.history().unwrap()
    }

    pub fn kinds(&self) -> Vec<String> {
        self.history()
            .iter()
            .map(|r| r.event.kind())
            .filter(|k| k != "standin-invoked")
            .collect()
    }

    pub fn has(&self, kind: &str) -> bool {
        self.kinds().iter().any(|k| k == kind)
    }

    pub fn fault(&self, op: &str, action: &str, node: Option<&str>, times: u32) {
        crate::support::add_fault(&self.store, op, action, node, times);
    }

    fn command(&self, program: &str, node: Option<&str>) -> Command {
        let mut cmd = Command::new(sim_bin());
        cmd.arg(program).arg("--dir").arg(&self.dir);
        if let Some(node) = node {
            cmd.args(["--node", node]);
        }
        cmd.timeout(Duration::from_secs(30));
        cmd
    }

    /// `Octopus.Server.exe <args>` on `node`.
    pub fn exe(&self, node: &str, args: &[&str]) -> Assert {
        self.command("exe", Some(node)).args(args).assert()
    }

    /// `msiexec /i FILE /quiet RUNMANAGERONEXIT=no /norestart /l*v LOG` on `node`.
    pub fn msiexec(&self, node: &str, file: &Path, log: &Path) -> Assert {
        self.command("msiexec", Some(node))
            .arg("/i")
            .arg(file)
            .args(["/quiet", "RUNMANAGERONEXIT=no", "/norestart", "/l*v"])
            .arg(log)
            .assert()
    }

    pub fn msiexec_args(&self, node: &str, args: &[&str]) -> Assert {
        self.command("msiexec", Some(node)).args(args).assert()
    }

    /// `sqlcmd -S 127.0.0.1,1433 -d master -U octoup -b -Q <query>` with the right password.
    pub fn sqlcmd(&self, query: &str) -> Assert {
        let password = self.state().secrets.sql_password;
        self.command("sqlcmd", None)
            .args(SQLCMD_ARGS)
            .args(["-Q", query])
            .env("SQLCMDPASSWORD", password)
            .assert()
    }

    /// `sqlcmd <SQLCMD_ARGS> <extra> -Q <query>` with the password and `env` set.
    pub fn sql(&self, query: &str, extra: &[&str], env: &[(&str, &str)]) -> Assert {
        let password = self.state().secrets.sql_password;
        let mut cmd = self.command("sqlcmd", None);
        cmd.args(SQLCMD_ARGS)
            .args(extra)
            .args(["-Q", query])
            .env("SQLCMDPASSWORD", password);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.assert()
    }

    /// The rows of a query as octoup reads them (`-h -1 -W -s "|"`), split on `|`.
    pub fn rows(&self, query: &str) -> Vec<Vec<String>> {
        let out = self
            .sql(query, &["-h", "-1", "-W", "-s", "|"], &[])
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('|').map(str::to_string).collect())
            .collect()
    }

    /// `octoup-sim check --json`: the invariants violated, by name.
    pub fn violations(&self) -> Vec<String> {
        let out = Command::new(sim_bin())
            .args(["check", "--json", "--dir"])
            .arg(&self.dir)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| format!("{}: {}", x["invariant"], x["message"]))
            .collect()
    }

    pub fn sqlcmd_args(&self, args: &[&str], password: Option<&str>) -> Assert {
        let mut cmd = self.command("sqlcmd", None);
        cmd.args(args).env_remove("SQLCMDPASSWORD");
        if let Some(p) = password {
            cmd.env("SQLCMDPASSWORD", p);
        }
        cmd.assert()
    }

    /// Starts a stand-in in the background (for concurrency and hang tests).
    pub fn spawn(&self, program: &str, node: Option<&str>, args: &[&str]) -> Child {
        let mut cmd = std::process::Command::new(sim_bin());
        cmd.arg(program).arg("--dir").arg(&self.dir);
        if let Some(node) = node {
            cmd.args(["--node", node]);
        }
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// A valid simulated installer for `version` in the scene's directory.
    pub fn installer(&self, version: &str) -> PathBuf {
        let size = 70_000;
        let path = self.dir.join(format!("Octopus.{version}-x64.msi"));
        let bytes: Vec<u8> = octoup_sim::installer::generate_range(version, size, 0, size)
            .flatten()
            .collect();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Stops `node` through the stand-in.
    pub fn stop(&self, node: &str) {
        self.exe(node, &["service", "--instance=OctopusServer", "--stop"])
            .success();
    }

    /// Waits until `condition` holds on the state; panics after 10 s.
    pub fn wait_for(&self, what: &str, condition: impl Fn(&State) -> bool) {
        let start = Instant::now();
        while !condition(&self.state()) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The exit status a code shows as on this platform (Unix keeps the low 8 bits).
pub fn code(n: i32) -> i32 {
    if cfg!(unix) { n & 0xff } else { n }
}

/// Output of a finished child as (exit code, stdout, stderr).
pub fn finish(child: Child) -> (i32, String, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
