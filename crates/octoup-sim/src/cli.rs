//! The `octoup-sim` command line. [`run_cli`] is the entry point of the binary and of any
//! binary that embeds the simulator (e.g. `octoup sim ...`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::checker::{self, CheckOptions};
use crate::faults::FaultSpec;
use crate::history::Record;
use crate::standins::{self, Output};
use crate::state::{State, Store, StoreError};
use crate::up::{self, UpOptions};

#[derive(Debug, Parser)]
#[command(
    name = "octoup-sim",
    about = "A faithful local Octopus Server installation to test and rehearse upgrades against",
    after_help = "Stand-ins (argv prefixes in DIR/octoup.toml):\n  exe     --dir DIR --node NAME <Octopus.Server.exe arguments...>\n  msiexec --dir DIR --node NAME <msiexec arguments...>\n  sqlcmd  --dir DIR [--server rehearsal] <sqlcmd arguments...>"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the installation (or restart its daemon), write DIR/octoup.toml, start the
    /// daemon in the background and wait until every node and the feed answer.
    Up {
        #[arg(long)]
        dir: PathBuf,
        /// Number of nodes (overrides the spec).
        #[arg(long)]
        nodes: Option<u32>,
        /// Installed version on every node (overrides the spec).
        #[arg(long)]
        version: Option<String>,
        /// Spec file (TOML), see docs/simulator.md.
        #[arg(long)]
        spec: Option<PathBuf>,
    },
    /// Stop the background daemon.
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Check the invariants on the history; exit 1 naming each broken invariant.
    Check {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
        /// Accept maintenance mode left on at the end.
        #[arg(long)]
        allow_maintenance_left_on: bool,
    },
    /// Print the event history.
    History {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Inject a fault at runtime.
    Fault {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        op: String,
        #[arg(long)]
        action: String,
        #[arg(long)]
        node: Option<String>,
        /// How often it fires before it clears; 0 = forever.
        #[arg(long, default_value_t = 1)]
        times: u32,
    },
    /// Print the current state.
    State {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Run the daemon in the foreground (`up` starts it).
    Serve {
        #[arg(long)]
        dir: PathBuf,
    },
    /// The vendor's Linux container (octopusdeploy/octopusdeploy:V), played by the
    /// simulator: reads ACCEPT_EULA, DB_CONNECTION_STRING, MASTER_KEY, ADMIN_API_KEY, …
    /// from the environment and serves the API on 0.0.0.0:8080.
    Container {
        #[arg(long)]
        version: String,
        /// Anything else on the container's command line (checked for secrets).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    /// Write a `docker build` context for the container stand-in of version V.
    Image {
        #[arg(long)]
        version: String,
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs the simulator's command line. `prefix` is the argv that invokes the simulator
/// (`[/abs/octoup-sim]`, or `[/abs/octoup, sim]` when embedded); `args` are the arguments
/// after it. Returns the process exit code: pass it to `std::process::exit` (stand-ins
/// exit with codes above 255, e.g. msiexec's 1603, which Unix truncates to 8 bits).
pub fn run_cli(prefix: Vec<OsString>, args: Vec<OsString>) -> i32 {
    let args: Vec<String> = match args
        .into_iter()
        .map(|a| a.into_string())
        .collect::<Result<_, _>>()
    {
        Ok(a) => a,
        Err(bad) => {
            eprintln!("octoup-sim: argument {bad:?} is not valid Unicode");
            return 2;
        }
    };
    if let Some(program) = args.first()
        && matches!(program.as_str(), "exe" | "msiexec" | "sqlcmd")
    {
        return run_standin(&prefix, program, &args[1..]);
    }
    let cli = match Cli::try_parse_from(std::iter::once("octoup-sim".to_string()).chain(args)) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run_command(&prefix, cli.command) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("octoup-sim: {message}");
            1
        }
    }
}

fn run_command(prefix: &[OsString], command: Command) -> Result<i32, String> {
    let open = |dir: &Path| Store::open(dir).map_err(|e| e.to_string());
    match command {
        Command::Up {
            dir,
            nodes,
            version,
            spec,
        } => {
            let options = UpOptions {
                dir,
                nodes,
                version,
                spec,
            };
            let report = up::up(prefix, &options).map_err(|e| e.to_string())?;
            println!(
                "octoup-sim {} in {}",
                if report.created { "is up" } else { "restarted" },
                report.dir.display()
            );
            for (name, url) in &report.nodes {
                println!("  {name}  {url}");
            }
            println!("  feed          {}", report.feed);
            println!("  config        {}", report.config.display());
            Ok(0)
        }
        Command::Down { dir } => {
            if up::down(&dir).map_err(|e| e.to_string())? {
                println!("octoup-sim daemon for {} stopped", dir.display());
            } else {
                println!("octoup-sim daemon for {} was not running", dir.display());
            }
            Ok(0)
        }
        Command::Check {
            dir,
            json,
            allow_maintenance_left_on,
        } => {
            let history = open(&dir)?.history().map_err(|e| e.to_string())?;
            let violations = checker::check(
                &history,
                CheckOptions {
                    allow_maintenance_left_on,
                },
            );
            if json {
                let body =
                    serde_json::json!({ "ok": violations.is_empty(), "violations": violations });
                println!("{body}");
            } else if violations.is_empty() {
                println!(
                    "All invariants hold (I1, I2, I3, I4 rollbacks, I5, I6, R1) over {} events.",
                    history.len()
                );
            } else {
                for v in &violations {
                    println!("{v}");
                    println!("    {}: {}", v.invariant, v.invariant.description());
                }
            }
            Ok(if violations.is_empty() { 0 } else { 1 })
        }
        Command::History { dir, json } => {
            let history = open(&dir)?.history().map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&history).unwrap_or_default()
                );
            } else {
                for r in &history {
                    println!("{}", history_line(r));
                }
            }
            Ok(0)
        }
        Command::Fault {
            dir,
            op,
            action,
            node,
            times,
        } => {
            let fault = FaultSpec::parse(&op, &action, node, times)?;
            let shown = format!(
                "{} -> {} on {} ({})",
                fault.op,
                fault.action,
                fault.node.as_deref().unwrap_or("any node"),
                match fault.times {
                    0 => "until cleared".to_string(),
                    1 => "once".to_string(),
                    n => format!("{n} times"),
                }
            );
            open(&dir)?
                .update(|s| {
                    if let Some(node) = &fault.node
                        && s.node(node).is_none()
                    {
                        return Ok(Err(format!(
                            "no node {node} in this installation (nodes: {})",
                            s.node_names().join(", ")
                        )));
                    }
                    s.faults.push(fault);
                    Ok::<_, StoreError>(Ok(()))
                })
                .map_err(|e| e.to_string())??;
            println!("fault added: {shown}");
            Ok(0)
        }
        Command::State { dir, json } => {
            let state = open(&dir)?.snapshot().map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&state).unwrap_or_default()
                );
            } else {
                print!("{}", describe(&state));
            }
            Ok(0)
        }
        Command::Serve { dir } => {
            crate::server::serve(&dir).map_err(|e| format!("{e:#}"))?;
            Ok(0)
        }
        Command::Container { version, .. } => {
            let argv: Vec<String> = std::env::args().collect();
            let env = |name: &str| std::env::var(name).ok();
            Ok(crate::container::run(
                &version,
                &env,
                &argv,
                &mut std::io::stdout(),
            ))
        }
        Command::Image { version, out } => {
            let wrote = crate::image::write(&version, &out)?;
            println!(
                "wrote the build context of octoup-sim/octopusdeploy:{version} to {} ({} files); build it with: docker build -t octoup-sim/octopusdeploy:{version} {}",
                out.display(),
                wrote.len(),
                out.display()
            );
            Ok(0)
        }
    }
}

/// `exe`/`msiexec`/`sqlcmd`: `--dir DIR` (and `--node NAME`) first, then the program's own
/// arguments untouched.
fn run_standin(prefix: &[OsString], program: &str, args: &[String]) -> i32 {
    let mut dir = None;
    let mut node = None;
    // sqlcmd `--server rehearsal`: the rehearsal SQL Server (`DIR/rehearsal-sql`).
    let mut server = None;
    let mut i = 0;
    while i < args.len() {
        let (name, inline) = match args[i].split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (args[i].as_str(), None),
        };
        let slot = match name {
            "--dir" => &mut dir,
            "--node" if program != "sqlcmd" => &mut node,
            "--server" if program == "sqlcmd" => &mut server,
            _ => break,
        };
        match inline {
            Some(v) => {
                *slot = Some(v);
                i += 1;
            }
            None => {
                *slot = args.get(i + 1).cloned();
                i += 2;
            }
        }
    }
    let rest = &args[i.min(args.len())..];
    let Some(dir) = dir else {
        eprintln!("octoup-sim {program}: --dir DIR is required before the program's arguments");
        return 2;
    };
    let store = match (Store::open(Path::new(&dir)), server.as_deref()) {
        (Ok(s), None) => s,
        (Ok(s), Some("rehearsal")) => match s.rehearsal_server() {
            Ok(s) => s,
            Err(e) => return Output::from(e).emit(),
        },
        (Ok(_), Some(other)) => {
            eprintln!(
                "octoup-sim sqlcmd: --server {other:?}: the only other SQL Server is \"rehearsal\" (spec rehearsal_sql_server)"
            );
            return 2;
        }
        (Err(e), _) => return Output::from(e).emit(),
    };
    let output = match (program, node) {
        ("sqlcmd", _) => {
            if let Err(e) = standins::record_invocation(&store, "sqlcmd", None, rest) {
                return Output::from(e).emit();
            }
            let password = std::env::var("SQLCMDPASSWORD").ok();
            let env = |name: &str| std::env::var(name).ok();
            standins::sqlcmd::run(
                &store,
                rest,
                password.as_deref(),
                &env,
                &mut std::io::stdout(),
            )
        }
        (_, None) => {
            eprintln!(
                "octoup-sim {program}: --node NAME is required before the program's arguments"
            );
            return 2;
        }
        (program, Some(node)) => {
            if let Err(e) = standins::record_invocation(&store, program, Some(&node), rest) {
                return Output::from(e).emit();
            }
            if program == "exe" {
                standins::exe::run(&store, &node, rest, prefix)
            } else {
                standins::msiexec::run(&store, &node, rest)
            }
        }
    };
    output.emit()
}

fn history_line(r: &Record) -> String {
    let mut fields = serde_json::to_value(&r.event).unwrap_or_default();
    let kind = r.event.kind();
    if let Some(map) = fields.as_object_mut() {
        map.remove("kind");
    }
    let fields = fields
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let server = r
        .server
        .as_ref()
        .map(|s| format!(" server={s}"))
        .unwrap_or_default();
    format!(
        "{:>5} {:>10.1}s  {kind:<22} {fields}{server}",
        r.seq, r.sim_seconds
    )
}

/// A human summary of the state (no secrets).
fn describe(s: &State) -> String {
    let db = &s.database;
    let mut out = format!(
        "installation {}  (sim time {:.1} s, time scale {})\ndatabase {}: schema {}, maintenance mode {}, license covers up to {} (maintenance expires {})\n",
        s.installation_id,
        s.now_sim(),
        s.time_scale,
        db.name,
        db.schema_version,
        if db.maintenance.is_in_maintenance_mode {
            "ON"
        } else {
            "off"
        },
        db.license.max_version_covered,
        db.license.maintenance_expires
    );
    if let Some(u) = &db.upgrade {
        out.push_str(&format!(
            "schema upgrade {} -> {} running on {}\n",
            u.from, u.to, u.node
        ));
    }
    for n in &s.nodes {
        out.push_str(&format!(
            "{}  port {}  binary {}  service {:?}  drain {}  watchdog {}  running tasks {}{}\n",
            n.name,
            n.api_port,
            n.installed_version.as_deref().unwrap_or("(not installed)"),
            n.service,
            if n.drain { "on" } else { "off" },
            if n.watchdog.is_some() { "yes" } else { "no" },
            n.running_tasks(&db.tasks),
            if n.install_in_progress {
                "  (installing)"
            } else {
                ""
            }
        ));
    }
    let active = db.tasks.iter().filter(|t| t.state.is_active()).count();
    out.push_str(&format!(
        "tasks: {} total, {active} active\n",
        db.tasks.len()
    ));
    for f in &s.faults {
        out.push_str(&format!(
            "fault: {} -> {} on {} (times {})\n",
            f.op,
            f.action,
            f.node.as_deref().unwrap_or("any node"),
            f.times
        ));
    }
    out.push_str(&match &s.daemon {
        Some(d) => format!("daemon: pid {}, feed on port {}\n", d.pid, s.feed_port),
        None => "daemon: not running\n".to_string(),
    });
    out
}
