//! A simulated installation started through `octoup sim up` (so the stand-ins in its
//! octoup.toml point at this build), and helpers to run `octoup` against it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub fn octoup() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_octoup"))
}

/// The exit code and, when stdout holds one, the JSON object a command printed.
pub struct Ran {
    pub code: i32,
    pub json: Value,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(args: &[&str]) -> Ran {
    let out = Command::new(octoup())
        .args(args)
        .env_remove("OCTOPUS_URL")
        .env_remove("OCTOPUS_API_KEY")
        .output()
        .expect("run octoup");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Ran {
        code: out.status.code().unwrap_or(-1),
        // One object: pretty-printed (upgrade) or on one line after other output (node).
        json: serde_json::from_str(&stdout)
            .ok()
            .or_else(|| {
                stdout
                    .lines()
                    .rev()
                    .find_map(|l| serde_json::from_str(l).ok())
            })
            .unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub struct Sim {
    dir: tempfile::TempDir,
}

impl Sim {
    /// `octoup sim up` with `nodes` nodes and extra spec lines (a fast time scale by default).
    pub fn up(nodes: u32, spec: &str) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let spec_path = dir.path().join("spec.toml");
        let spec = if spec.contains("time_scale") {
            spec.to_string()
        } else {
            format!("time_scale = 0.002\n{spec}")
        };
        std::fs::write(&spec_path, spec).unwrap();
        let sim = Sim { dir };
        let n = nodes.to_string();
        let ran = sim.sim(&["up", "--nodes", &n, "--spec", spec_path.to_str().unwrap()]);
        assert_eq!(ran.code, 0, "octoup sim up: {}{}", ran.stdout, ran.stderr);
        sim
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.dir().join("octoup.toml")
    }

    /// `octoup sim <command> --dir DIR <args...>`.
    pub fn sim(&self, args: &[&str]) -> Ran {
        let dir = self.dir().to_str().unwrap().to_string();
        let mut all = vec!["sim", args[0], "--dir", &dir];
        all.extend_from_slice(&args[1..]);
        run(&all)
    }

    /// A stand-in (`exe`, `sqlcmd`, ...) with its arguments, e.g. `["exe", "--node", N, ...]`.
    pub fn standin(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let dir = self.dir().to_str().unwrap().to_string();
        let mut all = vec!["sim", args[0], "--dir", &dir];
        all.extend_from_slice(&args[1..]);
        let mut cmd = Command::new(octoup());
        cmd.args(&all);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// `octoup node <args> --json --config DIR/octoup.toml`.
    pub fn node(&self, args: &[&str]) -> Ran {
        let config = self.config();
        let mut all = vec!["node"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--json", "--config", config.to_str().unwrap()]);
        run(&all)
    }

    /// `octoup sim check`: panics with the checker's words when an invariant is broken.
    pub fn assert_invariants(&self) {
        let ran = self.sim(&["check"]);
        assert_eq!(
            ran.code, 0,
            "octoup sim check: {}{}",
            ran.stdout, ran.stderr
        );
    }

    /// The event history (`octoup sim history --json`).
    pub fn history(&self) -> Vec<Value> {
        let ran = self.sim(&["history", "--json"]);
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        match serde_json::from_str::<Value>(&ran.stdout) {
            Ok(Value::Array(items)) => items,
            _ => ran
                .stdout
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect(),
        }
    }
}

impl Sim {
    /// A verified database backup through the sqlcmd stand-in, as the orchestrator makes
    /// it before a schema upgrade (the checker's I3 wants one).
    pub fn back_up_database(&self) {
        let password = std::fs::read_to_string(self.dir().join("sql-password.txt")).unwrap();
        let bak = self.dir().join("pre.bak");
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
            let out = self.standin(
                &[
                    "sqlcmd",
                    "-S",
                    "127.0.0.1,1433",
                    "-d",
                    "master",
                    "-U",
                    "octoup",
                    "-b",
                    "-Q",
                    &sql,
                ],
                &[("SQLCMDPASSWORD", password.trim())],
            );
            assert!(out.status.success(), "{sql}: {out:?}");
        }
    }

    /// How many history events are of `kind`.
    pub fn count(&self, kind: &str) -> usize {
        self.history().iter().filter(|e| e["kind"] == kind).count()
    }

    /// The `octoup.toml` that `up` wrote.
    pub fn read_config(&self) -> String {
        std::fs::read_to_string(self.config()).unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.sim(&["down"]);
    }
}
