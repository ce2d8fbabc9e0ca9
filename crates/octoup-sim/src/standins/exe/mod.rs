//! `octoup-sim exe --dir DIR --node NAME <args>`: the `Octopus.Server.exe` command line of
//! one node, with the real syntax (`--name=value` or `--name value`), messages and refusals.
//!
//! - `args`: the commands and their options; `invocation`: the context of one run.
//! - `node`, `service`, `database`, `info`: the commands, by what they act on.
//! - `spare`: the commands on a spare node (rehearsal instances), outside the installation.

mod args;
mod database;
mod info;
mod invocation;
mod node;
mod service;
mod spare;

use args::{NOT_SIMULATED, options, parse_options};
use invocation::{Exe, error};

use super::Output;
use crate::state::Store;

pub use info::node_home;

/// Runs one `Octopus.Server.exe` command line on `node`. `prefix` runs this simulator
/// (a spare node's rehearsal instance starts its server with it).
pub fn run(store: &Store, node: &str, args: &[String], prefix: &[std::ffi::OsString]) -> Output {
    match run_inner(store, node, args, prefix) {
        Ok(out) | Err(out) => out,
    }
}

fn run_inner(
    store: &Store,
    node: &str,
    args: &[String],
    prefix: &[std::ffi::OsString],
) -> Result<Output, Output> {
    let state = store.snapshot()?;
    if state.spare(node).is_some() {
        return spare::run(store, node, &state, args, prefix);
    }
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
