//! The commands that report: `show-master-key`, `show-configuration` (xml, json or
//! json-hierarchical, the node's settings), `version` and `list-instances`.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::args::{Opts, format};
use super::invocation::{Exe, error};
use crate::history::Event;
use crate::standins::Output;
use crate::state::{State, StoreError};

impl Exe<'_> {
    pub(super) fn show_master_key(&self, opts: &Opts) -> Result<Output, Output> {
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

    pub(super) fn show_configuration(&self, opts: &Opts) -> Result<Output, Output> {
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

    pub(super) fn version(&self, opts: &Opts) -> Result<Output, Output> {
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

    pub(super) fn list_instances(&self, opts: &Opts) -> Result<Output, Output> {
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
