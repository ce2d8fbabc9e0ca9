//! A fluent scenario builder: a simulated installation (`octoup-sim up` in a temporary
//! directory), the built `octoup` run against it with `--config DIR/octoup.toml`, and what
//! came out (exit code, the JSON report, the simulator's history and invariant check).
//! The simulation is always stopped (`octoup-sim down`) when the [`Sim`] is dropped.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn octoup_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_octoup"))
}

/// The `octoup-sim` binary beside `octoup` (another package of the workspace; built here if
/// `cargo test` did not build it already).
pub fn sim_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = octoup_bin().parent().expect("bin dir").to_path_buf();
        let bin = dir.join(format!("octoup-sim{}", std::env::consts::EXE_SUFFIX));
        if !bin.exists() {
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "octoup-sim", "--bin", "octoup-sim"])
                .status()
                .expect("run cargo build for octoup-sim");
            assert!(status.success(), "cargo build -p octoup-sim failed");
        }
        assert!(bin.exists(), "{} is missing", bin.display());
        bin
    })
    .clone()
}

/// One fault: `octoup-sim fault --op OP --action ACTION [--node N] [--times K]`.
#[derive(Clone)]
struct Fault {
    op: String,
    action: String,
    node: Option<String>,
    times: u32,
}

#[derive(Clone)]
pub struct Scenario {
    nodes: u32,
    time_scale: f64,
    faults: Vec<Fault>,
    workload: Vec<(String, f64)>,
    watchdogs: Vec<String>,
    config: Vec<(String, String, toml::Value)>,
    readonly_key: bool,
    maintenance_before: bool,
    drained_before: Vec<String>,
    spec_extra: String,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario::new()
    }
}

impl Scenario {
    pub fn new() -> Scenario {
        Scenario {
            nodes: 1,
            time_scale: 0.002,
            faults: Vec::new(),
            workload: Vec::new(),
            watchdogs: Vec::new(),
            config: Vec::new(),
            readonly_key: false,
            maintenance_before: false,
            drained_before: Vec::new(),
            spec_extra: String::new(),
        }
    }

    pub fn nodes(mut self, n: u32) -> Self {
        self.nodes = n;
        self
    }

    pub fn time_scale(mut self, scale: f64) -> Self {
        self.time_scale = scale;
        self
    }

    /// Extra spec TOML (e.g. `[durations]`), appended to the generated spec.
    pub fn spec(mut self, toml: &str) -> Self {
        self.spec_extra.push_str(toml);
        self.spec_extra.push('\n');
        self
    }

    /// A fault that fires once.
    pub fn fault(self, op: &str, action: &str) -> Self {
        self.fault_times(op, action, None, 1)
    }

    /// A fault on one node (`node: None` = any), firing `times` times (0 = forever).
    pub fn fault_times(mut self, op: &str, action: &str, node: Option<&str>, times: u32) -> Self {
        self.faults.push(Fault {
            op: op.into(),
            action: action.into(),
            node: node.map(str::to_string),
            times,
        });
        self
    }

    /// A task executing on `node` for `seconds` simulated seconds.
    pub fn task(mut self, node: &str, seconds: f64) -> Self {
        self.workload.push((node.into(), seconds));
        self
    }

    /// A service watchdog on `node` before the upgrade.
    pub fn watchdog(mut self, node: &str) -> Self {
        self.watchdogs.push(node.into());
        self
    }

    /// Sets `[table] key = value` in the generated octoup.toml.
    pub fn config(mut self, table: &str, key: &str, value: impl Into<toml::Value>) -> Self {
        self.config.push((table.into(), key.into(), value.into()));
        self
    }

    /// Use the API key of a user without AdministerSystem.
    pub fn readonly_key(mut self) -> Self {
        self.readonly_key = true;
        self
    }

    /// Maintenance mode is on before the upgrade.
    pub fn maintenance_before(mut self) -> Self {
        self.maintenance_before = true;
        self
    }

    /// `node` is drained before the upgrade.
    pub fn drained_before(mut self, node: &str) -> Self {
        self.drained_before.push(node.into());
        self
    }

    /// Starts the installation and sets the scene; octoup has not run yet.
    pub fn start(&self) -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spec = format!(
            "time_scale = {}\nnodes = {}\n{}\n",
            self.time_scale, self.nodes, self.spec_extra
        );
        for (node, secs) in &self.workload {
            spec.push_str(&format!(
                "\n[[workload]]\nnode = \"{node}\"\nduration = {secs}\nstate = \"Executing\"\nname = \"Deploy\"\ndescription = \"Deploy Web to Production on {node}\"\n"
            ));
        }
        let spec_path = dir.path().join("spec.toml");
        std::fs::write(&spec_path, spec).expect("write spec");
        let sim_dir = dir.path().join("sim");
        let sim = Sim {
            sim_dir: sim_dir.clone(),
            _dir: dir,
        };
        let out = sim.sim_cmd(&["up", "--spec", spec_path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "octoup-sim up failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        sim.edit_config(|cfg| {
            for (table, key, value) in &self.config {
                let t = cfg
                    .entry(table.clone())
                    .or_insert_with(|| toml::Value::Table(Default::default()));
                t.as_table_mut()
                    .expect("a table")
                    .insert(key.clone(), value.clone());
            }
            if self.readonly_key {
                let server = cfg
                    .get_mut("server")
                    .and_then(|s| s.as_table_mut())
                    .unwrap();
                let key = server["api_key_file"]
                    .as_str()
                    .unwrap()
                    .replace("api-key.txt", "api-key-readonly.txt");
                server.insert("api_key_file".into(), key.into());
            }
        });
        for node in &self.watchdogs {
            let out = sim.standin_exe(
                node,
                &["watchdog", "--create", "--interval=10", "--instances=*"],
            );
            assert!(out.status.success(), "watchdog --create: {out:?}");
        }
        for node in &self.drained_before {
            let out = sim.standin_exe(node, &["node", "--instance=OctopusServer", "--drain=true"]);
            assert!(out.status.success(), "node --drain: {out:?}");
        }
        if self.maintenance_before {
            sim.set_maintenance(true);
        }
        for f in &self.faults {
            let times = f.times.to_string();
            let mut args = vec![
                "fault", "--op", &f.op, "--action", &f.action, "--times", &times,
            ];
            if let Some(n) = &f.node {
                args.extend(["--node", n]);
            }
            let out = sim.sim_cmd(&args);
            assert!(out.status.success(), "fault: {out:?}");
        }
        sim
    }

    /// Starts the installation, runs `octoup <args>` once, and collects the result (the
    /// simulation stays up until the returned [`Sim`] is dropped).
    pub fn run(&self, args: &[&str]) -> (Sim, Ran) {
        let sim = self.start();
        let ran = sim.octoup(args);
        (sim, ran)
    }
}

/// A running simulated installation; stopped on drop.
pub struct Sim {
    sim_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = Command::new(sim_bin())
            .args(["down", "--dir"])
            .arg(&self.sim_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// What one `octoup` run produced.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The JSON object on stdout (with `--json`), else `Null`.
    pub report: Value,
}

impl Sim {
    pub fn config_path(&self) -> PathBuf {
        self.sim_dir.join("octoup.toml")
    }

    pub fn sim_cmd(&self, args: &[&str]) -> Output {
        let mut all = vec![args[0], "--dir", self.sim_dir.to_str().unwrap()];
        all.extend_from_slice(&args[1..]);
        Command::new(sim_bin())
            .args(&all)
            .output()
            .expect("run octoup-sim")
    }

    /// `octoup-sim exe --dir DIR --node NODE <args>`.
    pub fn standin_exe(&self, node: &str, args: &[&str]) -> Output {
        let mut all = vec![
            "exe",
            "--dir",
            self.sim_dir.to_str().unwrap(),
            "--node",
            node,
        ];
        all.extend_from_slice(args);
        Command::new(sim_bin())
            .args(&all)
            .output()
            .expect("run stand-in")
    }

    pub fn edit_config(&self, f: impl FnOnce(&mut toml::Table)) {
        let path = self.config_path();
        let mut cfg: toml::Table = std::fs::read_to_string(&path)
            .expect("read octoup.toml")
            .parse()
            .expect("parse octoup.toml");
        f(&mut cfg);
        std::fs::write(&path, toml::to_string(&cfg).unwrap()).expect("write octoup.toml");
    }

    pub fn read_config(&self) -> toml::Table {
        std::fs::read_to_string(self.config_path())
            .unwrap()
            .parse()
            .unwrap()
    }

    /// The `octoup` command with `--config` set and the environment cleared of Octopus
    /// variables (a developer's own must not leak into a test).
    pub fn octoup_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(octoup_bin());
        c.args(args)
            .arg("--config")
            .arg(self.config_path())
            .env_remove("OCTOPUS_URL")
            .env_remove("OCTOPUS_API_KEY")
            .stdin(Stdio::null());
        c
    }

    pub fn octoup(&self, args: &[&str]) -> Ran {
        let out = self.octoup_cmd(args).output().expect("run octoup");
        ran(out)
    }

    /// The event history.
    pub fn history(&self) -> Vec<Value> {
        let out = self.sim_cmd(&["history", "--json"]);
        assert!(out.status.success(), "history: {out:?}");
        serde_json::from_slice(&out.stdout).expect("history JSON")
    }

    /// `octoup-sim check`: whether every invariant holds, and the JSON answer.
    pub fn check(&self) -> (bool, Value) {
        self.check_with(&[])
    }

    pub fn check_with(&self, extra: &[&str]) -> (bool, Value) {
        let mut args = vec!["check", "--json"];
        args.extend_from_slice(extra);
        let out = self.sim_cmd(&args);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.success(), v)
    }

    pub fn assert_check(&self) {
        let (ok, v) = self.check();
        assert!(ok, "octoup-sim check failed: {v:#}");
    }

    pub fn state(&self) -> Value {
        let out = self.sim_cmd(&["state", "--json"]);
        assert!(out.status.success(), "state: {out:?}");
        serde_json::from_slice(&out.stdout).expect("state JSON")
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

    /// Starts `octoup <args>` in the background and returns once the history shows an
    /// event of `kind` (the run is then inside the step that event belongs to).
    pub fn spawn_until(&self, args: &[&str], kind: &str) -> std::process::Child {
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
}

fn ran(out: Output) -> Ran {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Ran {
        code: out.status.code().unwrap_or(-1),
        report: serde_json::from_str(stdout.trim()).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Ran {
    /// Fails with everything octoup said.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code {} (expected {code})\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    pub fn outcome(&self) -> &str {
        self.report["outcome"].as_str().unwrap_or("")
    }

    /// The status of the step `name` (on `node` when given) in the report.
    pub fn step(&self, name: &str, node: Option<&str>) -> String {
        self.report["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name && node.is_none_or(|n| s["node"] == n))
            .and_then(|s| s["status"].as_str())
            .unwrap_or("missing")
            .to_string()
    }
}

/// Index of the first history event of `kind` matching `pred`.
pub fn find(history: &[Value], kind: &str, pred: impl Fn(&Value) -> bool) -> Option<usize> {
    history.iter().position(|e| e["kind"] == kind && pred(e))
}

pub fn first(history: &[Value], kind: &str) -> usize {
    find(history, kind, |_| true).unwrap_or_else(|| panic!("no {kind} event in {}", kinds(history)))
}

pub fn last(history: &[Value], kind: &str) -> usize {
    history
        .iter()
        .rposition(|e| e["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {}", kinds(history)))
}

pub fn count(history: &[Value], kind: &str) -> usize {
    history.iter().filter(|e| e["kind"] == kind).count()
}

pub fn kinds(history: &[Value]) -> String {
    history
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("?"))
        .filter(|k| *k != "api-request" && *k != "standin-invoked")
        .collect::<Vec<_>>()
        .join(" ")
}

/// Events that change the installation (everything but reads, requests and invocations).
pub fn mutating(history: &[Value]) -> Vec<String> {
    const READ_ONLY: &[&str] = &[
        "installation-created",
        "api-request",
        "standin-invoked",
        "fault-fired",
        "task-queued",
        "task-started",
        "task-finished",
    ];
    history
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .filter(|k| !READ_ONLY.contains(k))
        .map(str::to_string)
        .collect()
}
