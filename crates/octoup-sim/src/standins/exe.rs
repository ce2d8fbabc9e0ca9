//! `octoup-sim exe --dir DIR --node NAME <args>`: the `Octopus.Server.exe` command line of
//! one node, with the real syntax (`--name=value` or `--name value`), messages and refusals.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::{Output, apply_fault};
use crate::history::Event;
use crate::state::{ServiceState, State, Store, StoreError, UpgradeInProgress};
use crate::version;

/// Commands that exist on the real server but that the simulator does not model.
const NOT_SIMULATED: &[&str] = &[
    "admin",
    "checkservices",
    "configure",
    "create-instance",
    "delete-instance",
    "export-certificate",
    "import-certificate",
    "license",
    "lost-master-key",
    "path",
    "rotate-master-key",
    "run",
    "set-master-key",
    "ssl-certificate",
];

/// Options every command accepts.
const COMMON: &[(&str, bool)] = &[
    ("instance", true),
    ("config", true),
    ("console", false),
    ("nologo", false),
    ("noconsolelogging", false),
];

/// Options per command: (name, takes a value).
fn options(command: &str) -> Option<&'static [(&'static str, bool)]> {
    Some(match command {
        "node" => &[
            ("taskCap", true),
            ("drain", true),
            ("wait", true),
            ("cancel-tasks", false),
            ("cancel-wait", true),
            ("skipDatabaseCompatibilityCheck", false),
            ("skipDatabaseSchemaUpgradeCheck", false),
        ],
        "service" => &[
            ("start", false),
            ("stop", false),
            ("restart", false),
            ("install", false),
            ("reconfigure", false),
            ("uninstall", false),
            ("username", true),
            ("user", true),
            ("password", true),
            ("dependOn", true),
        ],
        "database" => &[
            ("upgrade", false),
            ("create", false),
            ("delete", false),
            ("skipLicenseCheck", false),
            ("skipDatabaseCompatibilityCheck", false),
            ("connectionString", true),
            ("masterKey", true),
            ("grant", true),
        ],
        "database-upgrade-status" => &[("connectionString", true), ("format", true)],
        "show-master-key" | "version" | "list-instances" => &[("format", true)],
        "show-configuration" => &[("format", true), ("file", true)],
        "watchdog" => &[
            ("create", false),
            ("delete", false),
            ("interval", true),
            ("instances", true),
        ],
        _ => return None,
    })
}

/// Parsed options, keyed by the canonical option name.
struct Opts(HashMap<&'static str, Option<String>>);

impl Opts {
    fn flag(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.as_deref())
    }
}

fn parse_options(command: &str, args: &[String]) -> Result<Opts, String> {
    let table: Vec<(&'static str, bool)> = COMMON
        .iter()
        .chain(options(command).unwrap_or(&[]))
        .copied()
        .collect();
    let mut opts = HashMap::new();
    let mut unknown = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            unknown.push(arg.clone());
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(&(canonical, takes_value)) =
            table.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))
        else {
            unknown.push(arg.clone());
            continue;
        };
        let value = if takes_value {
            match inline {
                Some(v) => Some(v),
                None if i < args.len() && !args[i].starts_with("--") => {
                    i += 1;
                    Some(args[i - 1].clone())
                }
                None => {
                    return Err(format!(
                        "Missing required value for option '--{canonical}'. Use --{canonical}=VALUE."
                    ));
                }
            }
        } else {
            if inline.is_some() {
                return Err(format!("Option '--{canonical}' does not take a value."));
            }
            None
        };
        opts.insert(canonical, value);
    }
    if !unknown.is_empty() {
        return Err(format!(
            "Unrecognized command line arguments: {}. Run `Octopus.Server {command} --help` to see the options.",
            unknown.join(" ")
        ));
    }
    Ok(Opts(opts))
}

fn error(code: i32, message: impl AsRef<str>) -> Output {
    Output::fail(code, format!("Error: {}", message.as_ref()))
}

/// Runs one `Octopus.Server.exe` command line on `node`.
pub fn run(store: &Store, node: &str, args: &[String]) -> Output {
    match run_inner(store, node, args) {
        Ok(out) | Err(out) => out,
    }
}

fn run_inner(store: &Store, node: &str, args: &[String]) -> Result<Output, Output> {
    let state = store.snapshot()?;
    let Some(this) = state.node(node) else {
        return Err(Output::fail(
            2,
            format!(
                "octoup-sim: no node {node} in this installation (nodes: {})",
                state.node_names().join(", ")
            ),
        ));
    };
    if this.installed_version.is_none() {
        return Err(Output::fail(
            9009,
            "'Octopus.Server.exe' is not recognized as an internal or external command, operable program or batch file. (Octopus Server is not installed on this node.)",
        ));
    }
    let Some(command) = args.first() else {
        return Err(error(
            1,
            "No command was specified. Usage: Octopus.Server <command> [<options>]; commands include node, service, database, show-master-key, show-configuration, version, list-instances, watchdog.",
        ));
    };
    let command = command.to_ascii_lowercase();
    if NOT_SIMULATED.contains(&command.as_str()) {
        return Err(error(
            1,
            format!(
                "The command '{command}' exists on Octopus Server but is not simulated by octoup-sim."
            ),
        ));
    }
    if options(&command).is_none() {
        return Err(error(
            1,
            format!(
                "Command '{command}' is not supported. Use `Octopus.Server help` to see the list of commands."
            ),
        ));
    }
    let opts = parse_options(&command, &args[1..]).map_err(|m| error(1, m))?;
    let star_ok = matches!(command.as_str(), "service" | "watchdog");
    if let Some(instance) = opts.value("instance")
        && !(star_ok && instance == "*")
        && !instance.eq_ignore_ascii_case(&state.instance)
    {
        return Err(error(
            1,
            format!(
                "Instance '{instance}' of Octopus Server has not been configured on this machine. Available instances: {}.",
                state.instance
            ),
        ));
    }
    let exe = Exe { store, node, state };
    match command.as_str() {
        "node" => exe.node_cmd(&opts),
        "service" => exe.service(&opts),
        "database" => exe.database(&opts),
        "database-upgrade-status" => exe.upgrade_status(&opts),
        "show-master-key" => exe.show_master_key(&opts),
        "show-configuration" => exe.show_configuration(&opts),
        "version" => exe.version(&opts),
        "list-instances" => exe.list_instances(&opts),
        "watchdog" => exe.watchdog(&opts),
        _ => unreachable!("options() knows every command handled here"),
    }
}

struct Exe<'a> {
    store: &'a Store,
    node: &'a str,
    /// The state when the command started.
    state: State,
}

/// `--format` values a command accepts.
fn format(opts: &Opts, allowed: &[&str], default: &str) -> Result<String, Output> {
    let f = opts.value("format").unwrap_or(default).to_ascii_lowercase();
    if allowed.contains(&f.as_str()) {
        Ok(f)
    } else {
        Err(error(
            1,
            format!(
                "The format '{f}' is not supported. Try one of: {}.",
                allowed.join(", ")
            ),
        ))
    }
}

fn parse_bool(name: &str, value: &str) -> Result<bool, Output> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(error(
            1,
            format!("Invalid value '{value}' for --{name}: expected true or false."),
        )),
    }
}

fn parse_number(name: &str, value: &str) -> Result<u64, Output> {
    value.parse().map_err(|_| {
        error(
            1,
            format!("Invalid value '{value}' for --{name}: expected a whole number."),
        )
    })
}

impl Exe<'_> {
    /// Applies a fault for `op`; `exit:N` fails with `message`.
    fn fault(&self, op: &str, message: &str) -> Result<(), Output> {
        match apply_fault(self.store, op, Some(self.node))? {
            Some(code) => Err(error(code, message)),
            None => Ok(()),
        }
    }

    fn binary(&self) -> String {
        self.state
            .node(self.node)
            .map(|n| n.version().to_string())
            .unwrap_or_default()
    }

    fn node_cmd(&self, opts: &Opts) -> Result<Output, Output> {
        let drain = opts
            .value("drain")
            .map(|v| parse_bool("drain", v))
            .transpose()?;
        let wait = opts
            .value("wait")
            .map(|v| parse_number("wait", v))
            .transpose()?
            .unwrap_or(0);
        let cancel = opts.flag("cancel-tasks");
        let task_cap = opts
            .value("taskCap")
            .map(|v| parse_number("taskCap", v))
            .transpose()?;
        if (opts.flag("wait") || cancel || opts.flag("cancel-wait")) && drain != Some(true) {
            return Err(error(
                1,
                "The --wait, --cancel-tasks and --cancel-wait options can only be used with --drain=true.",
            ));
        }
        if drain.is_none() && task_cap.is_none() {
            return Err(error(
                1,
                "Nothing to do: specify --drain=true|false and/or --taskCap=N.",
            ));
        }
        self.fault(
            "drain",
            "Timeout expired. The timeout period elapsed prior to obtaining a connection from the pool.",
        )?;
        let node = self.node;
        let mut out = Vec::new();
        self.store.update(|s| {
            if let Some(cap) = task_cap
                && let Some(n) = s.node_mut(node)
            {
                n.max_concurrent_tasks = cap.min(u64::from(u32::MAX)) as u32;
            }
            if let Some(value) = drain {
                s.set_drain(node, value, "cli");
            }
            s.advance_tasks();
            Ok::<_, StoreError>(())
        })?;
        if let Some(cap) = task_cap {
            out.push(format!("Task cap for node {node} set to {cap}."));
        }
        match drain {
            Some(false) => out.push(format!(
                "Node {node} is no longer draining and will pick up tasks."
            )),
            Some(true) => {
                out.push(format!(
                    "Draining node {node}: it will not pick up new tasks."
                ));
                let clock = self.state.clock();
                let deadline = clock.now_sim() + wait as f64;
                let mut running = self.running_tasks()?;
                while running > 0 && clock.now_sim() < deadline {
                    out.push(format!(
                        "Waiting for {running} running task(s) on node {node}..."
                    ));
                    std::thread::sleep(poll_interval(&clock));
                    running = self.running_tasks()?;
                }
                if running > 0 && cancel {
                    let n = self.store.update(|s| {
                        s.advance_tasks();
                        Ok::<_, StoreError>(s.cancel_tasks(Some(node), "cli"))
                    })?;
                    out.push(format!(
                        "Canceled {n} task(s) still running on node {node}."
                    ));
                    running = 0;
                }
                if running > 0 {
                    out.push(format!(
                        "Warning: node {node} is draining but {running} task(s) are still running after waiting {wait} seconds."
                    ));
                } else {
                    out.push(format!("Node {node} is drained."));
                }
            }
            None => {}
        }
        Ok(Output::ok(out.join("\n")))
    }

    fn running_tasks(&self) -> Result<usize, Output> {
        let node = self.node;
        Ok(self.store.update(|s| {
            s.advance_tasks();
            let n = s
                .node(node)
                .map(|n| n.running_tasks(&s.database.tasks))
                .unwrap_or(0);
            Ok::<_, StoreError>(n)
        })?)
    }

    fn service(&self, opts: &Opts) -> Result<Output, Output> {
        let actions: Vec<&str> = [
            "start",
            "stop",
            "restart",
            "install",
            "reconfigure",
            "uninstall",
        ]
        .into_iter()
        .filter(|a| opts.flag(a))
        .collect();
        match actions.as_slice() {
            ["start"] => self.start(),
            ["stop"] => self.stop(),
            ["restart"] => {
                let stopped = self.stop()?;
                let started = self.start()?;
                Ok(Output::ok(format!(
                    "{}\n{}",
                    stopped.stdout, started.stdout
                )))
            }
            [other] => Err(error(
                1,
                format!(
                    "service --{other} is not simulated by octoup-sim (the Windows service is always installed)."
                ),
            )),
            _ => Err(error(
                1,
                "Specify exactly one of --start, --stop, --restart, --install, --reconfigure or --uninstall.",
            )),
        }
    }

    fn stop(&self) -> Result<Output, Output> {
        self.fault(
            "service-stop",
            "Service 'OctopusDeploy' could not be stopped: The service did not respond to the start or control request in a timely fashion.",
        )?;
        let node = self.node;
        let previous = self.store.update(|s| {
            let Some(n) = s.node(node) else {
                return Ok::<_, StoreError>(ServiceState::Stopped);
            };
            let previous = n.service;
            if previous != ServiceState::Stopped {
                s.move_service(node, ServiceState::Stopping, "cli");
            }
            Ok(previous)
        })?;
        if previous == ServiceState::Stopped {
            return Ok(Output::ok("Service OctopusDeploy is not running."));
        }
        self.state.clock().sleep_sim(self.state.durations.stop);
        let (daemon, port) = self.store.update(|s| {
            s.advance_tasks();
            s.kill_tasks(node);
            s.move_service(node, ServiceState::Stopped, "cli");
            let port = s.node(node).map(|n| n.api_port).unwrap_or(0);
            Ok::<_, StoreError>((s.daemon.is_some(), port))
        })?;
        // Like the real service, the stop is over when the node no longer listens.
        if daemon && !wait_for_port_closed(port, Duration::from_secs(20)) {
            return Err(error(
                1,
                format!(
                    "Service 'OctopusDeploy' stopped but port {port} still accepts connections."
                ),
            ));
        }
        Ok(Output::ok(
            "Stopping service: OctopusDeploy\nService stopped.",
        ))
    }

    fn start(&self) -> Result<Output, Output> {
        self.fault(
            "service-start",
            "Service 'OctopusDeploy' could not be started: The service did not respond to the start or control request in a timely fashion.",
        )?;
        let node = self.node;
        let previous = self.store.update(|s| {
            let Some(n) = s.node(node) else {
                return Ok::<_, StoreError>(ServiceState::Running);
            };
            let previous = n.service;
            if previous == ServiceState::Stopped {
                s.move_service(node, ServiceState::Starting, "cli");
            }
            Ok(previous)
        })?;
        if previous != ServiceState::Stopped {
            return Ok(Output::ok("Service OctopusDeploy is already running."));
        }
        self.state.clock().sleep_sim(self.state.durations.start);
        let outcome = self.store.update(|s| {
            let started = s.finish_start(node, "cli");
            s.advance_tasks();
            let port = s.node(node).map(|n| n.api_port).unwrap_or(0);
            Ok::<_, StoreError>(started.map(|()| (s.daemon.is_some(), port)))
        })?;
        let (daemon, port) = outcome.map_err(|reason| error(100, reason))?;
        if daemon && !wait_for_port(port, Duration::from_secs(20)) {
            return Err(error(
                1,
                format!(
                    "Service 'OctopusDeploy' started but the web portal at http://127.0.0.1:{port}/ did not answer within 20 seconds. Check the server log."
                ),
            ));
        }
        Ok(Output::ok(
            "Starting service: OctopusDeploy\nService started.",
        ))
    }

    fn database(&self, opts: &Opts) -> Result<Output, Output> {
        if !opts.flag("upgrade") {
            let other = ["create", "delete", "grant"]
                .into_iter()
                .find(|o| opts.flag(o));
            return Err(error(
                1,
                match other {
                    Some(o) => format!("database --{o} is not simulated by octoup-sim."),
                    None => {
                        "No action was specified. Use --create, --upgrade, --delete or --grant."
                            .to_string()
                    }
                },
            ));
        }
        let skip_license = opts.flag("skipLicenseCheck");
        let fault = apply_fault(self.store, "db-upgrade", Some(self.node))?;
        let node = self.node;
        // Only one process can upgrade the schema; a second one deadlocks in SQL.
        let lock = try_lock_file(&self.store.dir().join("db-upgrade.lock"))?;
        let started = self.store.update(|s| {
            let binary = s.node(node).map(|n| n.version().to_string()).unwrap_or_default();
            let schema = s.database.schema_version.clone();
            let refuse = |s: &mut State, reason: String| {
                s.record(Event::DbUpgradeRefused {
                    node: node.to_string(),
                    reason: reason.clone(),
                });
                Ok::<_, StoreError>(Err(error(1, reason)))
            };
            if s.node(node).is_some_and(|n| n.service != ServiceState::Stopped) {
                return refuse(
                    s,
                    format!(
                        "The Octopus Server service on this node ({node}) is still running. Stop it with `service --stop` before upgrading the database."
                    ),
                );
            }
            let running = s.nodes_seen_running(node);
            if !running.is_empty() {
                return refuse(
                    s,
                    format!(
                        "The database upgrade was aborted because these Octopus Server nodes still appear to be running: {}. Stop every node that uses this database and try again; a node that has just stopped is considered running for up to {} seconds after it was last seen.",
                        running.join(", "),
                        s.durations.node_stale_after
                    ),
                );
            }
            match version::compare(&binary, &schema) {
                std::cmp::Ordering::Equal => {
                    return Ok(Ok(None));
                }
                std::cmp::Ordering::Less => {
                    return refuse(
                        s,
                        format!(
                            "The database schema ({schema}) was upgraded by a newer Octopus Server than the one installed here ({binary}). Downgrading a database is not supported; restore the backup taken before the upgrade instead."
                        ),
                    );
                }
                std::cmp::Ordering::Greater => {}
            }
            if !skip_license && !s.database.license.covers(&binary) {
                let l = &s.database.license;
                let reason = format!(
                    "Your license does not cover Octopus Server {binary}: its maintenance period ends {} and covers versions up to {}. No changes were made to the database. Reinstall the previous version or update the license, or use --skipLicenseCheck.",
                    l.maintenance_expires, l.max_version_covered
                );
                return refuse(s, reason);
            }
            s.record(Event::DbUpgradeStarted {
                node: node.to_string(),
                from: schema.clone(),
                to: binary.clone(),
            });
            if lock.is_none() {
                let reason = "Transaction (Process ID 61) was deadlocked on lock resources with another process and has been chosen as the deadlock victim. Rerun the transaction. The entire upgrade has been rolled back to its last known good state.".to_string();
                s.record(Event::DbUpgradeFailed {
                    node: node.to_string(),
                    from: schema,
                    to: binary,
                    reason: reason.clone(),
                });
                return Ok(Err(error(1, reason)));
            }
            if let Some(previous) = s.database.upgrade.take() {
                // Its process died while holding the lock: SQL rolled its transaction back.
                s.record(Event::DbUpgradeFailed {
                    node: previous.node,
                    from: previous.from,
                    to: previous.to,
                    reason: "the upgrading process ended before the upgrade finished; the upgrade was rolled back".to_string(),
                });
            }
            s.database.upgrade = Some(UpgradeInProgress {
                node: node.to_string(),
                from: schema.clone(),
                to: binary.clone(),
                started_sim: s.now_sim(),
            });
            Ok(Ok(Some((schema, binary))))
        })??;
        let Some((from, to)) = started else {
            return Ok(Output::ok(format!(
                "The database schema is already up to date ({}). No upgrade scripts need to run.",
                self.binary()
            )));
        };
        let clock = self.state.clock();
        if let Some(code) = fault {
            clock.sleep_sim(self.state.durations.db_upgrade / 2.0);
            let reason = "Upgrade script 'Script0412 - Add index to ServerTask.sql' failed: Timeout expired. The timeout period elapsed prior to completion of the operation. The entire upgrade has been rolled back to its last known good state.".to_string();
            self.store.update(|s| {
                s.database.upgrade = None;
                s.record(Event::DbUpgradeFailed {
                    node: node.to_string(),
                    from: from.clone(),
                    to: to.clone(),
                    reason: reason.clone(),
                });
                Ok::<_, StoreError>(())
            })?;
            return Err(error(code, reason));
        }
        clock.sleep_sim(self.state.durations.db_upgrade);
        self.store.update(|s| {
            s.database.schema_version = to.clone();
            s.database.upgrade = None;
            s.record(Event::DbUpgradeFinished {
                node: node.to_string(),
                from: from.clone(),
                to: to.clone(),
            });
            Ok::<_, StoreError>(())
        })?;
        drop(lock);
        Ok(Output::ok(format!(
            "Upgrading the database from {from} to {to}...\nThe database was upgraded successfully to {to}."
        )))
    }

    fn upgrade_status(&self, opts: &Opts) -> Result<Output, Output> {
        let binary = self.binary();
        if version::compare(&binary, "2023.4.1149").is_lt() {
            return Err(error(
                1,
                format!(
                    "Command 'database-upgrade-status' is not supported by Octopus Server {binary} (added in 2023.4.1149)."
                ),
            ));
        }
        let format = format(opts, &["text", "json"], "text")?;
        self.fault(
            "db-upgrade-status",
            "A network-related or instance-specific error occurred while establishing a connection to SQL Server.",
        )?;
        let schema = self.store.read(|s| s.database.schema_version.clone())?;
        let required = version::compare(&binary, &schema).is_gt();
        if format == "json" {
            let body = json!({
                "IsUpgradeRequired": required,
                "CurrentSchemaVersion": schema,
                "ServerVersion": binary,
            });
            return Ok(Output::ok(body.to_string()));
        }
        Ok(Output::ok(match version::compare(&binary, &schema) {
            std::cmp::Ordering::Greater => format!(
                "The database schema is at version {schema}. Upgrade scripts need to run before Octopus Server {binary} can start."
            ),
            std::cmp::Ordering::Equal => format!(
                "The database schema is up to date with Octopus Server {binary}. No upgrade scripts need to run."
            ),
            std::cmp::Ordering::Less => format!(
                "The database schema ({schema}) is newer than this Octopus Server ({binary})."
            ),
        }))
    }

    fn show_master_key(&self, opts: &Opts) -> Result<Output, Output> {
        let format = format(opts, &["text", "json"], "text")?;
        self.fault(
            "show-master-key",
            "Access to the path 'C:\\Octopus\\OctopusServer.config' is denied. Run the command from an elevated prompt.",
        )?;
        let node = self.node;
        let key = self.store.update(|s| {
            s.record(Event::MasterKeyRead {
                node: node.to_string(),
            });
            Ok::<_, StoreError>(s.secrets.master_key.clone())
        })?;
        Ok(Output::ok(if format == "json" {
            json!({ "MasterKey": key }).to_string()
        } else {
            key
        }))
    }

    fn show_configuration(&self, opts: &Opts) -> Result<Output, Output> {
        let format = format(opts, &["xml", "json", "json-hierarchical"], "xml")?;
        self.fault(
            "show-configuration",
            "The configuration file could not be read: the process cannot access the file because it is being used by another process.",
        )?;
        let settings = configuration(self.store.dir(), &self.state, self.node);
        let text = match format.as_str() {
            "json" => {
                let map: Map<String, Value> = settings
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                serde_json::to_string_pretty(&map).unwrap_or_default()
            }
            "json-hierarchical" => {
                let mut root = Map::new();
                for (key, value) in &settings {
                    insert_dotted(&mut root, key, value);
                }
                serde_json::to_string_pretty(&root).unwrap_or_default()
            }
            _ => {
                let mut xml = String::from(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<octopus-settings xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">\n",
                );
                for (key, value) in &settings {
                    xml.push_str(&format!(
                        "  <set key=\"{}\">{}</set>\n",
                        xml_escape(key),
                        xml_escape(value)
                    ));
                }
                xml.push_str("</octopus-settings>");
                xml
            }
        };
        if let Some(file) = opts.value("file") {
            std::fs::write(file, &text).map_err(|e| {
                error(
                    1,
                    format!("Could not write the configuration to {file}: {e}"),
                )
            })?;
            return Ok(Output::ok(format!("Configuration written to {file}.")));
        }
        Ok(Output::ok(text))
    }

    fn version(&self, opts: &Opts) -> Result<Output, Output> {
        let format = format(opts, &["text", "json"], "text")?;
        self.fault(
            "version",
            "Could not load file or assembly 'Octopus.Server'.",
        )?;
        let v = self.binary();
        Ok(Output::ok(if format == "json" {
            json!({
                "InformationalVersion": v,
                "MajorMinorPatch": v,
                "NuGetVersion": v,
                "SourceBranchName": "main",
            })
            .to_string()
        } else {
            v
        }))
    }

    fn list_instances(&self, opts: &Opts) -> Result<Output, Output> {
        let format = format(opts, &["text", "json"], "text")?;
        self.fault(
            "list-instances",
            "Requested registry access is not allowed. Run the command from an elevated prompt.",
        )?;
        let config = config_file(self.store.dir(), self.node);
        Ok(Output::ok(if format == "json" {
            json!([{
                "InstanceName": self.state.instance,
                "ConfigurationFilePath": config.display().to_string(),
            }])
            .to_string()
        } else {
            format!("{} ({})", self.state.instance, config.display())
        }))
    }

    fn watchdog(&self, opts: &Opts) -> Result<Output, Output> {
        let create = opts.flag("create");
        if create == opts.flag("delete") {
            return Err(error(1, "Specify either --create or --delete."));
        }
        let interval = opts
            .value("interval")
            .map(|v| parse_number("interval", v))
            .transpose()?
            .unwrap_or(5)
            .clamp(1, 1440) as u32;
        let instances = opts.value("instances").unwrap_or("*").to_string();
        self.fault(
            "watchdog",
            "Access is denied. Creating or deleting a scheduled task requires an elevated prompt.",
        )?;
        let node = self.node;
        let message = self.store.update(|s| {
            let Some(n) = s.node_mut(node) else {
                return Ok::<_, StoreError>(String::new());
            };
            if create {
                n.watchdog = Some(crate::state::Watchdog {
                    interval_minutes: interval,
                    instances: instances.clone(),
                });
                s.record(Event::WatchdogCreated {
                    node: node.to_string(),
                    interval_minutes: interval,
                });
                Ok(format!(
                    "Created scheduled task 'Octopus Watchdog OctopusServer' to run every {interval} minutes for instances {instances}."
                ))
            } else if n.watchdog.take().is_some() {
                s.record(Event::WatchdogDeleted {
                    node: node.to_string(),
                });
                Ok("Deleted scheduled task 'Octopus Watchdog OctopusServer'.".to_string())
            } else {
                Ok("Scheduled task 'Octopus Watchdog OctopusServer' does not exist; nothing to delete.".to_string())
            }
        })?;
        Ok(Output::ok(message))
    }
}

/// Exclusive lock on `path` if free; `None` when another process holds it.
pub(crate) fn try_lock_file(path: &Path) -> Result<Option<File>, Output> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Output::fail(1, format!("octoup-sim: {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(Output::fail(
            1,
            format!("octoup-sim: {}: {e}", path.display()),
        )),
    }
}

/// How often waits poll: a simulated second, kept between 5 and 200 real milliseconds.
fn poll_interval(clock: &crate::clock::Clock) -> Duration {
    clock
        .real_duration(1.0)
        .clamp(Duration::from_millis(5), Duration::from_millis(200))
}

/// Waits until nothing accepts connections on 127.0.0.1:`port` any more.
fn wait_for_port_closed(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub(crate) fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The node's home directory (`Octopus.Home`).
pub fn node_home(dir: &Path, node: &str) -> PathBuf {
    dir.join("nodes").join(node)
}

fn config_file(dir: &Path, node: &str) -> PathBuf {
    node_home(dir, node).join("OctopusServer.config")
}

/// The flat settings `show-configuration` reports.
fn configuration(dir: &Path, state: &State, node: &str) -> Vec<(String, String)> {
    let home = node_home(dir, node);
    let port = state.node(node).map(|n| n.api_port).unwrap_or(0);
    let cap = state
        .node(node)
        .map(|n| n.max_concurrent_tasks)
        .unwrap_or(5);
    let folder = |name: &str| home.join(name).display().to_string();
    let mut settings: Vec<(String, String)> = vec![
        ("Octopus.Home".into(), home.display().to_string()),
        (
            "Octopus.Storage.ExternalDatabaseConnectionString".into(),
            format!(
                "Data Source={};Initial Catalog={};Integrated Security=True",
                state.sql_server, state.database.name
            ),
        ),
        ("Octopus.Server.NodeName".into(), node.to_string()),
        ("Octopus.Server.TaskCap".into(), cap.to_string()),
        (
            "Octopus.WebPortal.ListenPrefixes".into(),
            format!("http://127.0.0.1:{port}/"),
        ),
        ("Octopus.Folders.LogsDirectory".into(), folder("Logs")),
        (
            "Octopus.Folders.ArtifactsDirectory".into(),
            folder("Artifacts"),
        ),
        (
            "Octopus.Folders.PackagesDirectory".into(),
            folder("Packages"),
        ),
        (
            "Octopus.Folders.TaskLogsDirectory".into(),
            folder("TaskLogs"),
        ),
        (
            "Octopus.Folders.EventExportsDirectory".into(),
            folder("EventExports"),
        ),
        ("Octopus.Upgrades.AllowChecking".into(), "True".into()),
    ];
    // The real server reports the watchdog here too (OctopusDSC's cOctopusServerWatchdog
    // reads Octopus.Watchdog.* from show-configuration); octoup notes it in its preflight.
    let watchdog = state.node(node).and_then(|n| n.watchdog.as_ref());
    settings.push((
        "Octopus.Watchdog.Enabled".into(),
        if watchdog.is_some() { "True" } else { "False" }.into(),
    ));
    if let Some(w) = watchdog {
        settings.push((
            "Octopus.Watchdog.Interval".into(),
            w.interval_minutes.to_string(),
        ));
        settings.push(("Octopus.Watchdog.Instances".into(), w.instances.clone()));
    }
    settings
}

fn insert_dotted(root: &mut Map<String, Value>, key: &str, value: &str) {
    let mut parts = key.split('.').peekable();
    let mut map = root;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            map.insert(part.to_string(), Value::String(value.to_string()));
            return;
        }
        let entry = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else { return };
        map = next;
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn options_in_both_forms_case_insensitive() {
        let o = parse_options(
            "node",
            &args(&[
                "--instance",
                "OctopusServer",
                "--drain=true",
                "--Wait",
                "30",
                "--cancel-tasks",
            ]),
        )
        .unwrap();
        assert_eq!(o.value("instance"), Some("OctopusServer"));
        assert_eq!(o.value("drain"), Some("true"));
        assert_eq!(o.value("wait"), Some("30"));
        assert!(o.flag("cancel-tasks"));
        let err = parse_options("node", &args(&["--drainn=true"]))
            .err()
            .unwrap();
        assert!(
            err.contains("Unrecognized command line arguments: --drainn=true"),
            "{err}"
        );
        let err = parse_options("node", &args(&["--wait"])).err().unwrap();
        assert!(
            err.contains("Missing required value for option '--wait'"),
            "{err}"
        );
        let err = parse_options("service", &args(&["--start=yes"]))
            .err()
            .unwrap();
        assert!(err.contains("does not take a value"), "{err}");
    }

    #[test]
    fn hierarchical_json_nests_dotted_keys() {
        let mut root = Map::new();
        insert_dotted(&mut root, "Octopus.Home", "/h");
        insert_dotted(&mut root, "Octopus.Server.NodeName", "N");
        assert_eq!(
            Value::Object(root),
            json!({"Octopus": {"Home": "/h", "Server": {"NodeName": "N"}}})
        );
    }
}
