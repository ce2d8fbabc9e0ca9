//! Running the built `octoup` and what one run produced.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::bins::octoup_bin;

/// What one command produced.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The JSON object on stdout: all of it (a pretty-printed report) or, after other
    /// output, its last line that is one; else `Null`.
    pub json: Value,
}

impl From<Output> for Ran {
    fn from(out: Output) -> Ran {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let json = serde_json::from_str(stdout.trim())
            .ok()
            .or_else(|| {
                stdout.lines().rev().find_map(|l| {
                    serde_json::from_str::<Value>(l)
                        .ok()
                        .filter(Value::is_object)
                })
            })
            .unwrap_or(Value::Null);
        Ran {
            code: out.status.code().unwrap_or(-1),
            json,
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Ran {
    /// Runs `command` to the end.
    pub fn of(command: &mut Command) -> Ran {
        let program = command.get_program().to_string_lossy().into_owned();
        command
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"))
            .into()
    }

    /// Fails with everything the command said unless it exited with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code {} (expected {code})\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// The report's `outcome` (`""` without one).
    pub fn outcome(&self) -> &str {
        self.json["outcome"].as_str().unwrap_or("")
    }

    /// Whether the report lists nodes and every one has `version` installed.
    pub fn all_nodes_on(&self, version: &str) -> bool {
        self.json["nodes"]
            .as_array()
            .is_some_and(|nodes| nodes.iter().all(|n| n["version"] == version))
    }

    /// The status of the step `name` (on `node` when given) in the report, or `"missing"`.
    pub fn step(&self, name: &str, node: Option<&str>) -> String {
        self.json["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name && node.is_none_or(|n| s["node"] == n))
            .and_then(|s| s["status"].as_str())
            .unwrap_or("missing")
            .to_string()
    }
}

/// The commands that ask before they change anything, and need `--yes` without a terminal.
const ASKING: [&str; 3] = ["upgrade", "resume", "rollback"];

/// The built `octoup` with `args`, the environment cleared of the Octopus variables (a
/// developer's own must not leak into a test) and no standard input. `upgrade`, `resume`
/// and `rollback` get `--yes` (there is no terminal to ask at); [`octoup_asking`] leaves
/// it off.
pub fn octoup_command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<S> = args.into_iter().collect();
    let words: Vec<&str> = args.iter().filter_map(|a| a.as_ref().to_str()).collect();
    let asks = words
        .iter()
        .find(|w| !w.starts_with('-'))
        .is_some_and(|w| ASKING.contains(w));
    let has_yes = words.iter().any(|w| *w == "--yes" || *w == "-y");
    let mut c = octoup_asking(args);
    if asks && !has_yes {
        c.arg("--yes");
    }
    c
}

/// [`octoup_command`] without the implied `--yes`: the command asks (and, without a
/// terminal, refuses).
pub fn octoup_asking<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = Command::new(octoup_bin());
    c.args(args)
        .env_remove("OCTOPUS_URL")
        .env_remove("OCTOPUS_API_KEY")
        .stdin(Stdio::null());
    c
}

/// `octoup <args>`, run to the end.
pub fn run<I, S>(args: I) -> Ran
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Ran::of(&mut octoup_command(args))
}

/// `octoup <args>` in `dir` (so no stray ./octoup.toml is picked up).
pub fn run_in<I, S>(dir: &Path, args: I) -> Ran
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Ran::of(octoup_command(args).current_dir(dir))
}

/// Every file under `dir` (recursively), with its text: for asserting what octoup wrote.
pub fn files_under(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((
                path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
}
