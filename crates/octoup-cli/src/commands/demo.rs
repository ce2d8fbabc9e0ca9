//! `octoup demo`: starts a simulated installation (the embedded simulator, `octoup sim up`),
//! upgrades it with progress, prints the report and the simulator's invariant check, and
//! stops the simulation again. Everything stays local; it finishes in seconds.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use octoup::config::{Config, EnvOverrides};
use octoup::engine::report::Outcome;
use octoup::engine::{self, UpgradeOptions};

use crate::cli::DemoArgs;
use crate::context::Context;
use crate::exit::Exit;
use crate::steps::StepPrinter;

use super::upgrade::{block_on, exit_for, settle};

/// Simulated seconds of each slow step: a mid-size installation.
const STOP: f64 = 20.0;
const START: f64 = 45.0;
const BACKUP: f64 = 90.0;
const VERIFY: f64 = 30.0;
const INSTALL: f64 = 120.0;
const DB_UPGRADE: f64 = 180.0;

/// The spec of the demo installation: realistic durations and running deployments, so the
/// drain has something to wait for.
fn spec(nodes: u32, time_scale: f64) -> String {
    let mut spec = format!(
        "time_scale = {time_scale}\nnodes = {nodes}\n\n[durations]\nstop = {STOP}\nstart = {START}\nbackup = {BACKUP}\nverify = {VERIFY}\ninstall = {INSTALL}\ndb_upgrade = {DB_UPGRADE}\nnode_stale_after = 5\n"
    );
    let tasks = [
        ("Deploy", "Deploy Web 1.4.2 to Production", 60.0),
        ("RunbookRun", "Runbook: rotate certificates", 40.0),
    ];
    for (i, (name, description, duration)) in tasks.iter().enumerate() {
        let node = (i as u32 % nodes) + 1;
        spec.push_str(&format!(
            "\n[[workload]]\nnode = \"OCTO-NODE-{node:02}\"\nduration = {duration}\nstate = \"Executing\"\nname = \"{name}\"\ndescription = \"{description}\"\n"
        ));
    }
    spec
}

/// Stops the simulation however the demo ends.
struct SimGuard {
    exe: PathBuf,
    dir: PathBuf,
}

impl Drop for SimGuard {
    fn drop(&mut self) {
        let _ = sim(
            &self.exe,
            &["down".as_ref(), "--dir".as_ref(), self.dir.as_os_str()],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    }
}

fn sim(exe: &Path, args: &[&std::ffi::OsStr]) -> Command {
    let mut c = Command::new(exe);
    c.arg("sim").args(args);
    c
}

pub fn run(args: DemoArgs, ctx: &Context) -> Exit {
    let say = |text: &str| {
        if !ctx.json {
            eprintln!("{text}");
        }
    };
    if args.nodes == 0 || args.nodes > 20 {
        ctx.report_error(&"--nodes must be between 1 and 20");
        return Exit::Usage;
    }
    if !(args.time_scale.is_finite() && args.time_scale > 0.0 && args.time_scale <= 1.0) {
        ctx.report_error(
            &"--time-scale must be a number in (0, 1]: real seconds per simulated second",
        );
        return Exit::Usage;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            ctx.report_error(&format!("cannot find the octoup executable: {e}"));
            return Exit::Failed;
        }
    };
    // A temporary directory unless the operator wants to keep the installation.
    let temp;
    let base = match &args.dir {
        Some(d) => d.clone(),
        None => match tempfile::Builder::new().prefix("octoup-demo-").tempdir() {
            Ok(t) => {
                temp = t;
                temp.path().to_path_buf()
            }
            Err(e) => {
                ctx.report_error(&format!("cannot create a temporary directory: {e}"));
                return Exit::Failed;
            }
        },
    };
    let sim_dir = base.join("sim");
    let spec_path = base.join("demo-spec.toml");
    if let Err(e) = std::fs::create_dir_all(&base)
        .and_then(|_| std::fs::write(&spec_path, spec(args.nodes, args.time_scale)))
    {
        ctx.report_error(&format!("cannot write {}: {e}", spec_path.display()));
        return Exit::Failed;
    }
    say(&format!(
        "Starting a simulated Octopus installation of {} node(s) in {} (1 simulated second = {} s)...",
        args.nodes,
        sim_dir.display(),
        args.time_scale
    ));
    let up = sim(
        &exe,
        &[
            "up".as_ref(),
            "--dir".as_ref(),
            sim_dir.as_os_str(),
            "--spec".as_ref(),
            spec_path.as_os_str(),
        ],
    )
    .output();
    let _guard = SimGuard {
        exe: exe.clone(),
        dir: sim_dir.clone(),
    };
    match up {
        Ok(out) if out.status.success() => say(String::from_utf8_lossy(&out.stdout).trim_end()),
        Ok(out) => {
            ctx.report_error(&format!(
                "the simulator did not start: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            return Exit::Failed;
        }
        Err(e) => {
            ctx.report_error(&format!("cannot run `octoup sim up`: {e}"));
            return Exit::Failed;
        }
    }
    let config = match Config::load(&sim_dir.join("octoup.toml")) {
        Ok(c) => c,
        Err(e) => {
            ctx.report_error(&e);
            return Exit::Failed;
        }
    };
    // The vendor's HA runbook runs each step on every node in parallel, one step after
    // another: the backup does not overlap the installs, for any number of nodes.
    let vendor = (STOP + BACKUP + VERIFY + INSTALL + DB_UPGRADE + START) * args.time_scale;
    say("\nUpgrading it with octoup:");
    let events = Arc::new(StepPrinter::new(ctx.json, ctx.quiet(), true).with_config(&config));
    // The demo never takes OCTOPUS_URL / OCTOPUS_API_KEY: it talks only to its simulation.
    let result = block_on(engine::upgrade(
        config,
        &EnvOverrides::default(),
        UpgradeOptions::default(),
        events,
    ));
    let report = match settle(ctx, result) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    // With a snapshot the verified backup is taken before the outage and the snapshot (made
    // at once by the simulator) replaces it in the outage: S + max(Snap, I) + U + T.
    let snapshot = report
        .database
        .as_ref()
        .and_then(|d| d.strategy.as_ref())
        .is_some_and(|c| c.strategy == octoup::config::DatabaseStrategy::Snapshot);
    let (in_outage, formula) = if snapshot {
        (0.0, "max(snapshot, install)")
    } else {
        (BACKUP + VERIFY, "max(backup + verify, install)")
    };
    let bound = (STOP + in_outage.max(INSTALL) + DB_UPGRADE + START) * args.time_scale;
    let check = sim(
        &exe,
        &[
            "check".as_ref(),
            "--dir".as_ref(),
            sim_dir.as_os_str(),
            "--json".as_ref(),
        ],
    )
    .output();
    let (check_ok, check_json) = match check {
        Ok(out) => {
            let v: serde_json::Value =
                serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
            (out.status.success(), v)
        }
        Err(e) => (
            false,
            serde_json::json!({ "ok": false, "error": e.to_string() }),
        ),
    };
    if ctx.json {
        let mut value = serde_json::to_value(&report).unwrap_or_default();
        if let Some(obj) = value.as_object_mut() {
            obj.insert("check".into(), check_json);
            obj.insert(
                "outage_bound_seconds".into(),
                serde_json::json!((bound * 1000.0).round() / 1000.0),
            );
            obj.insert(
                "vendor_outage_seconds".into(),
                serde_json::json!((vendor * 1000.0).round() / 1000.0),
            );
            obj.insert("simulator".into(), serde_json::json!(sim_dir));
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        println!();
        print!("{}", crate::render::report(&report));
        if report.outcome == Outcome::Upgraded {
            println!(
                "\nThe outage's lower bound for these durations is stop + {formula} + database upgrade + start = {bound:.2} s{}; the vendor's runbook order (each step on every node at once, one step after another, the backup in the outage) would take about {vendor:.2} s.",
                if snapshot {
                    " (the verified backup was taken before the outage; the snapshot takes seconds whatever the size)"
                } else {
                    ""
                }
            );
        }
        println!(
            "\nSimulator invariant check (I1 one schema upgrade with every node stopped, I2 no node on a mismatched schema, I3 verified backup and master key first, I5 no secret on a command line, I6 flags restored): {}",
            if check_ok { "PASSED" } else { "FAILED" }
        );
        if !check_ok {
            println!(
                "{}",
                serde_json::to_string_pretty(&check_json).unwrap_or_default()
            );
        }
        if args.dir.is_some() {
            println!(
                "The simulation was stopped; its files stay in {} (`octoup sim history --dir {}` shows every event).",
                sim_dir.display(),
                sim_dir.display()
            );
        }
    }
    if !check_ok {
        return Exit::Failed;
    }
    exit_for(report.outcome)
}

/// `octoup sim ...` runs the embedded simulator, so `octoup demo` needs no second binary.
pub fn sim_passthrough(args: Vec<OsString>) -> Exit {
    let exe = std::env::current_exe()
        .map(OsString::from)
        .unwrap_or_else(|_| OsString::from("octoup"));
    // Stand-ins exit with codes above 255 (msiexec's 1603): exit with the code itself.
    std::process::exit(octoup_sim::run_cli(vec![exe, OsString::from("sim")], args))
}
