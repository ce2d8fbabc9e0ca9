//! `Octopus.Server.exe` on a spare node (outside the installation): rehearsal instances
//! against a scratch database. `create-instance`, `delete-instance`, `database
//! --connectionString --masterKey` and `--upgrade`, `database-upgrade-status`,
//! `configure --webListenPrefixes`, `service`, `version`, `list-instances`.
//!
//! The database is reached the way the container reaches it (`container::connect`,
//! `container::migrate`: the same refusals, timings, `migration_failure` and
//! rehearsal-migration events), and a started service is the container's server, run
//! with its settings in its environment.

use std::ffi::OsString;
use std::process::{Command, Stdio};

use serde_json::json;

use super::args::{Opts, format, options, parse_options};
use super::invocation::error;
use crate::container::{self, ConnectionString, parse_connection_string};
use crate::history::Event;
use crate::standins::Output;
use crate::state::{RehearsalInstance, SpareNode, State, Store, StoreError};
use crate::version;

/// Commands a spare node answers.
const COMMANDS: &[&str] = &[
    "create-instance",
    "delete-instance",
    "database",
    "database-upgrade-status",
    "configure",
    "service",
    "version",
    "list-instances",
];

struct Spare<'a> {
    store: &'a Store,
    node: &'a str,
    spare: SpareNode,
    binary: String,
    /// The argv that runs this simulator (to start an instance's server).
    prefix: &'a [OsString],
}

/// Runs one command line on the spare node `node` of `state`.
pub(super) fn run(
    store: &Store,
    node: &str,
    state: &State,
    args: &[String],
    prefix: &[OsString],
) -> Result<Output, Output> {
    let Some(spare) = state.spare(node).cloned() else {
        return Err(Output::fail(2, format!("octoup-sim: no spare node {node}")));
    };
    let Some(binary) = spare.installed_version.clone() else {
        return Err(Output::fail(
            9009,
            "'Octopus.Server.exe' is not recognized as an internal or external command, operable program or batch file. (Octopus Server is not installed on this spare node.)",
        ));
    };
    let Some(command) = args.first().map(|c| c.to_ascii_lowercase()) else {
        return Err(error(1, "No command was specified."));
    };
    if !COMMANDS.contains(&command.as_str()) || options(&command).is_none() {
        return Err(error(
            1,
            format!("The command '{command}' is not simulated on a spare node by octoup-sim."),
        ));
    }
    let opts = parse_options(&command, &args[1..]).map_err(|m| error(1, m))?;
    let s = Spare {
        store,
        node,
        spare,
        binary,
        prefix,
    };
    match command.as_str() {
        "create-instance" => s.create(&opts),
        "version" => Ok(Output::ok(
            json!({ "InstallationVersion": s.binary }).to_string(),
        )),
        "list-instances" => Ok(Output::ok(
            s.spare
                .instances
                .iter()
                .map(|i| i.name.clone())
                .collect::<Vec<_>>()
                .join("\n"),
        )),
        _ => {
            let instance = s.instance(&opts)?;
            match command.as_str() {
                "delete-instance" => s.delete(&instance),
                "database" => s.database(&instance, &opts),
                "database-upgrade-status" => s.upgrade_status(&instance, &opts),
                "configure" => s.configure(&instance, &opts),
                _ => s.service(&instance, &opts),
            }
        }
    }
}

impl Spare<'_> {
    /// The instance `--instance` names; the real CLI's answer when it does not exist.
    fn instance(&self, opts: &Opts) -> Result<RehearsalInstance, Output> {
        let name = opts.value("instance").unwrap_or("OctopusServer");
        self.spare.instance(name).cloned().ok_or_else(|| {
            let names: Vec<&str> = self.spare.instances.iter().map(|i| i.name.as_str()).collect();
            error(
                1,
                format!(
                    "Instance '{name}' of Octopus Server has not been configured on this machine. Available instances: {}.",
                    if names.is_empty() { "(none)".to_string() } else { names.join(", ") }
                ),
            )
        })
    }

    fn change(&self, f: impl FnOnce(&mut SpareNode, &mut Vec<Event>)) -> Result<(), Output> {
        self.store.update(|s| {
            let mut events = Vec::new();
            if let Some(n) = s.spare_mut(self.node) {
                f(n, &mut events);
            }
            for e in events {
                s.record(e);
            }
            Ok::<_, StoreError>(())
        })?;
        Ok(())
    }

    fn create(&self, opts: &Opts) -> Result<Output, Output> {
        let (Some(name), Some(config)) = (opts.value("instance"), opts.value("config")) else {
            return Err(error(
                1,
                "create-instance needs --instance NAME and --config PATH.",
            ));
        };
        if self.spare.instance(name).is_some() {
            return Err(error(
                1,
                format!("An instance named '{name}' already exists."),
            ));
        }
        let instance = RehearsalInstance {
            name: name.to_string(),
            config: config.to_string(),
            home: opts.value("home").unwrap_or_default().to_string(),
            ..RehearsalInstance::default()
        };
        self.change(|n, events| {
            n.instances.push(instance);
            events.push(Event::RehearsalInstanceCreated {
                node: self.node.to_string(),
                instance: name.to_string(),
            });
        })?;
        Ok(Output::ok(format!(
            "Creating configuration file at: {config}\nInstance '{name}' was created."
        )))
    }

    fn delete(&self, i: &RehearsalInstance) -> Result<Output, Output> {
        self.stop_server(i)?;
        self.change(|n, events| {
            n.instances
                .retain(|x| !x.name.eq_ignore_ascii_case(&i.name));
            events.push(Event::RehearsalInstanceDeleted {
                node: self.node.to_string(),
                instance: i.name.clone(),
            });
        })?;
        Ok(Output::ok(format!("Instance '{}' was deleted.", i.name)))
    }

    /// The instance's database, as its config file names it.
    fn connection(&self, i: &RehearsalInstance) -> Result<(ConnectionString, String), Output> {
        let (Some(text), Some(key)) = (&i.connection_string, &i.master_key) else {
            return Err(error(
                1,
                format!(
                    "The instance '{}' has no database configured. Run `database --connectionString=... --masterKey=...` first.",
                    i.name
                ),
            ));
        };
        let c = parse_connection_string(text).map_err(|e| error(1, e))?;
        Ok((c, key.clone()))
    }

    /// Connects as this instance's server would; refuses a wrong master key.
    fn connect(&self, c: &ConnectionString, key: &str) -> Result<serde_json::Value, Output> {
        let info = container::connect(c, &self.binary, key).map_err(|e| Output::fail(1, e))?;
        if info["master_key_ok"] != json!(true) {
            return Err(error(
                1,
                format!(
                    "The master key cannot decrypt the data in database '{}': it is not the master key of the installation this database belongs to.",
                    c.database
                ),
            ));
        }
        Ok(info)
    }

    fn database(&self, i: &RehearsalInstance, opts: &Opts) -> Result<Output, Output> {
        if opts.flag("upgrade") {
            return self.upgrade(i);
        }
        let (Some(text), Some(key)) = (opts.value("connectionString"), opts.value("masterKey"))
        else {
            return Err(error(
                1,
                "octoup-sim simulates `database --upgrade`, and `database --connectionString=... --masterKey=...` on a spare node's instance.",
            ));
        };
        let c = parse_connection_string(text).map_err(|e| error(1, e))?;
        self.connect(&c, key)?;
        let (text, key) = (text.to_string(), key.to_string());
        self.change(|n, _| {
            if let Some(x) = n.instance_mut(&i.name) {
                x.connection_string = Some(text);
                x.master_key = Some(key);
            }
        })?;
        Ok(Output::ok(format!(
            "Saving the database connection and the master key to {}.",
            i.config
        )))
    }

    fn upgrade(&self, i: &RehearsalInstance) -> Result<Output, Output> {
        let (c, key) = self.connection(i)?;
        let info = self.connect(&c, &key)?;
        let schema = info["schema_version"].as_str().unwrap_or("").to_string();
        let mut lines = Vec::new();
        let result = container::migrate(&c, &info, &schema, &self.binary, &mut |l| {
            lines.push(l.to_string())
        });
        match result {
            Ok(()) => Ok(Output::ok(lines.join("\n"))),
            Err(e) => {
                lines.push(e);
                Err(Output::fail(1, lines.join("\n")))
            }
        }
    }

    fn upgrade_status(&self, i: &RehearsalInstance, opts: &Opts) -> Result<Output, Output> {
        if version::compare(&self.binary, "2023.4.1149").is_lt() {
            return Err(error(
                1,
                format!(
                    "Command 'database-upgrade-status' is not supported by Octopus Server {} (added in 2023.4.1149).",
                    self.binary
                ),
            ));
        }
        let format = format(opts, &["text", "json"], "text")?;
        let (c, key) = self.connection(i)?;
        let info = self.connect(&c, &key)?;
        let schema = info["schema_version"].as_str().unwrap_or("").to_string();
        let required = version::compare(&self.binary, &schema).is_gt();
        if format == "json" {
            return Ok(Output::ok(
                json!({
                    "IsUpgradeRequired": required,
                    "CurrentSchemaVersion": schema,
                    "ServerVersion": self.binary,
                })
                .to_string(),
            ));
        }
        Ok(Output::ok(if required {
            format!("The database schema is at version {schema}. Upgrade scripts need to run.")
        } else {
            "No upgrade scripts need to run.".to_string()
        }))
    }

    fn configure(&self, i: &RehearsalInstance, opts: &Opts) -> Result<Output, Output> {
        let Some(prefixes) = opts.value("webListenPrefixes") else {
            return Err(error(
                1,
                "octoup-sim simulates `configure --webListenPrefixes URL` on a spare node.",
            ));
        };
        let port = prefixes
            .split(',')
            .find_map(|p| {
                let rest = p.trim().split_once("://")?.1;
                rest.split('/')
                    .next()?
                    .rsplit_once(':')?
                    .1
                    .parse::<u16>()
                    .ok()
            })
            .ok_or_else(|| {
                error(
                    1,
                    format!(
                        "The listen prefix '{prefixes}' has no port (expected e.g. http://+:8091/)."
                    ),
                )
            })?;
        self.change(|n, _| {
            if let Some(x) = n.instance_mut(&i.name) {
                x.listen_port = Some(port);
            }
        })?;
        Ok(Output::ok(format!(
            "Web listen prefixes set to {prefixes}."
        )))
    }

    fn service(&self, i: &RehearsalInstance, opts: &Opts) -> Result<Output, Output> {
        let mut said = Vec::new();
        if (opts.flag("stop") || opts.flag("uninstall")) && self.stop_server(i)? {
            said.push("Service stopped.");
        }
        if opts.flag("uninstall") {
            self.change(|n, _| {
                if let Some(x) = n.instance_mut(&i.name) {
                    x.service_installed = false;
                }
            })?;
            said.push("Service uninstalled.");
        }
        if opts.flag("install") {
            self.change(|n, _| {
                if let Some(x) = n.instance_mut(&i.name) {
                    x.service_installed = true;
                }
            })?;
            said.push("Service installed.");
        }
        if opts.flag("start") {
            let installed = opts.flag("install") || i.service_installed;
            if !installed {
                return Err(error(
                    1,
                    format!(
                        "The service for instance '{}' is not installed. Use --install.",
                        i.name
                    ),
                ));
            }
            self.start_server(i)?;
            said.push("Service started.");
        }
        Ok(Output::ok(said.join("\n")))
    }

    /// Starts the instance's web server: the container's server, its settings in its
    /// environment (never on its command line), on the configured port.
    fn start_server(&self, i: &RehearsalInstance) -> Result<(), Output> {
        let (c, key) = self.connection(i)?;
        let port = i.listen_port.unwrap_or(self.spare.listen_port);
        let text = i.connection_string.clone().unwrap_or_default();
        let api_key = self.store.read(|s| s.secrets.admin_api_key.clone())?;
        let log = self
            .store
            .dir()
            .join(format!("spare-{}-{}.log", self.node, i.name));
        let out = std::fs::File::create(&log)
            .map_err(|e| Output::fail(1, format!("octoup-sim: {}: {e}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(|e| Output::fail(1, format!("octoup-sim: {e}")))?;
        let program = self
            .prefix
            .first()
            .cloned()
            .unwrap_or_else(|| "octoup-sim".into());
        let mut command = Command::new(program);
        command
            .args(self.prefix.iter().skip(1))
            .args(["container", "--version", &self.binary])
            .env("ACCEPT_EULA", "Y")
            .env("DB_CONNECTION_STRING", text)
            .env("MASTER_KEY", key)
            // The copy holds production's API keys (they live in the database).
            .env("ADMIN_API_KEY", api_key)
            .env("OCTOPUS_SERVER_NODE_NAME", &i.name)
            .env("OCTOUP_SIM_CONTAINER_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        crate::platform::detach(&mut command);
        let child = command
            .spawn()
            .map_err(|e| Output::fail(1, format!("The service could not be started: {e}")))?;
        let pid = child.id();
        let database = c.database.clone();
        self.change(|n, events| {
            if let Some(x) = n.instance_mut(&i.name) {
                x.pid = Some(pid);
            }
            events.push(Event::RehearsalInstanceStarted {
                node: self.node.to_string(),
                instance: i.name.clone(),
                database,
                port,
            });
        })?;
        Ok(())
    }

    /// Ends the instance's server; `true` when one ran.
    fn stop_server(&self, i: &RehearsalInstance) -> Result<bool, Output> {
        let Some(pid) = i.pid else {
            return Ok(false);
        };
        crate::platform::terminate(pid);
        self.change(|n, events| {
            if let Some(x) = n.instance_mut(&i.name) {
                x.pid = None;
            }
            events.push(Event::RehearsalInstanceStopped {
                node: self.node.to_string(),
                instance: i.name.clone(),
            });
        })?;
        Ok(true)
    }
}
