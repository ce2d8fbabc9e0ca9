//! The node-level actions behind `octoup node <action>`, run on the node itself: stage,
//! stop, install, start and status. The orchestrator calls them over SSH
//! ([`crate::nodes::remote::SshAgent`]); Octopus runbooks, Ansible or any other engine can
//! call them the same way.
//!
//! Each action answers with one JSON object — a stable interface, documented in
//! docs/node-commands.md:
//! `{"format": 1, "node": "...", "action": "...", "ok": true, ...fields of the action}` or
//! `{"format": 1, "node": "...", "action": "...", "ok": false, "error": {"kind": "...",
//! "message": "...", ...}}`.
//!
//! The actions guard the invariants on their own, so a caller that gets the order wrong is
//! refused rather than obeyed: `install` refuses while the service answers, `start --to V`
//! refuses when the installed binary is not V (a node never serves on a mismatched version).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::agent::{NodeAgent, WatchdogInfo, file_safe};
use super::local::LocalAgent;
use crate::config::{Config, EnvOverrides, NodeConfig, Secret};
use crate::installer::cache::{InstallerCache, InstallerSettings, Role, StagedInstaller};
use crate::octopus::api::{OctopusApi, Ping};
use crate::octopus::http::{HttpClient, NetworkSettings};
use crate::process::runner::{LocalRunner, RunLog};
use crate::progress::NoProgress;
use crate::version::Version;

use super::protocol::*;

/// The node this machine is, from `--node NAME` and the config.
///
/// With `[[nodes]]`, NAME must be one of them (or may be left out when there is only one).
/// Without, the config describes this machine alone and NAME (when given) names it.
pub(crate) fn select_node(
    config: &Config,
    wanted: Option<&str>,
) -> Result<(String, NodeConfig), Failure> {
    if config.nodes.is_empty() {
        let node = config
            .effective_nodes()
            .map_err(|e| Failure::config(e.to_string()))?
            .remove(0);
        let name = wanted.unwrap_or("local").to_string();
        return Ok((name, node));
    }
    match wanted {
        Some(name) => config
            .nodes
            .iter()
            .find(|n| n.name.eq_ignore_ascii_case(name))
            .map(|n| (n.name.clone(), n.clone()))
            .ok_or_else(|| {
                let names: Vec<&str> = config.nodes.iter().map(|n| n.name.as_str()).collect();
                Failure::config(format!(
                    "node {name:?} is not in [[nodes]] of the config (it lists {}). Pass --node with one of them",
                    names.join(", ")
                ))
            }),
        None if config.nodes.len() == 1 => Ok((config.nodes[0].name.clone(), config.nodes[0].clone())),
        None => Err(Failure::config(format!(
            "the config lists {} nodes: pass --node NAME to say which one this is",
            config.nodes.len()
        ))),
    }
}

/// Everything an action on this node needs.
pub struct NodeContext {
    name: String,
    agent: LocalAgent,
    cache: InstallerCache,
    state_dir: PathBuf,
}

impl NodeContext {
    /// Builds the node's agent (commands logged to `<state>/logs/node-<name>.log`) and
    /// installer cache. The API key is optional: node actions use only anonymous endpoints.
    pub fn new(
        config: &Config,
        env: &EnvOverrides,
        wanted: Option<&str>,
    ) -> Result<NodeContext, Failure> {
        let (name, node) = select_node(config, wanted)?;
        let http = HttpClient::new(NetworkSettings::from_config(config))
            .map_err(|e| Failure::config(e.to_string()))?;
        let key = config.api_key(env).unwrap_or_else(|_| Secret::new(""));
        let api = OctopusApi::new(
            http.clone(),
            &node.url,
            key,
            Duration::from_secs(config.timeouts.http.max(1)),
        );
        let log_dir = config.state.dir.join("logs");
        let log =
            RunLog::open(&log_dir.join(format!("node-{}.log", file_safe(&name)))).map_err(|e| {
                Failure::config(format!(
                    "cannot write the node log in {}: {e}. Check [state] dir",
                    log_dir.display()
                ))
            })?;
        let runner = Arc::new(LocalRunner::new(Some(Arc::new(log))));
        let cache =
            InstallerCache::new(InstallerSettings::from_config(config), http, runner.clone());
        let agent = LocalAgent::new(config, &node, &name, api, runner, log_dir);
        Ok(NodeContext {
            name,
            agent,
            cache,
            state_dir: config.state.dir.clone(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs one action and answers.
    pub async fn run(&self, action: &Action) -> Reply {
        let result = match action {
            Action::Stage { version, rollback } => {
                self.stage(version, *rollback).await.map(Outcome::Stage)
            }
            Action::Stop => self.stop().await.map(Outcome::Stop),
            Action::Install { version, sha256 } => self
                .install(version, sha256.as_deref())
                .await
                .map(Outcome::Install),
            Action::Uninstall { version, sha256 } => self
                .uninstall(version, sha256.as_deref())
                .await
                .map(Outcome::Uninstall),
            Action::Start { version, watchdog } => self
                .start(version.as_deref(), *watchdog)
                .await
                .map(Outcome::Start),
            Action::Status => self.status().await.map(Outcome::Status),
        };
        Reply {
            node: self.name.clone(),
            action: action.name(),
            result,
        }
    }

    async fn stage(&self, version: &str, rollback: bool) -> Result<StageReport, Failure> {
        let version = parse_version(version)?;
        let role = if rollback {
            Role::Rollback
        } else {
            Role::Target
        };
        Ok(self
            .cache
            .ensure_installer(&version, role, &NoProgress)
            .await?)
    }

    async fn stop(&self) -> Result<StopReport, Failure> {
        // The watchdog restarts stopped services: it goes first, and is remembered here so
        // `start --watchdog` can put back exactly what was there.
        let watchdog = self.agent.watchdog().await?;
        let watchdog_deleted = if watchdog.enabled {
            let saved = serde_json::to_vec_pretty(&watchdog).unwrap_or_default();
            crate::process::fsutil::write_atomic(&self.watchdog_file(), &saved).map_err(|e| {
                Failure::config(format!(
                    "cannot remember the watchdog settings in {}: {e}; nothing was changed. Check [state] dir",
                    self.watchdog_file().display()
                ))
            })?;
            self.agent.delete_watchdog().await?;
            Some(watchdog)
        } else {
            None
        };
        self.agent.stop().await?;
        Ok(StopReport {
            stopped: true,
            watchdog_deleted,
        })
    }

    /// Refuses while the service answers: installers run on stopped nodes only.
    async fn ensure_stopped(&self) -> Result<(), Failure> {
        let ping = self.agent.ping().await;
        if ping.is_up() {
            return Err(Failure::new(
                FailureKind::Running,
                format!(
                    "{}: the service still answers at {} ({}); nothing was changed. Run `octoup node stop` first",
                    self.name,
                    self.agent.url(),
                    ping.describe()
                ),
            ));
        }
        Ok(())
    }

    /// The verified installer of `version` in this node's cache (with `sha256`, when given).
    async fn staged(
        &self,
        version: &Version,
        sha256: Option<&str>,
    ) -> Result<StagedInstaller, Failure> {
        let cache = self.cache.clone();
        let (v, pin) = (version.clone(), sha256.map(str::to_ascii_lowercase));
        let staged = tokio::task::spawn_blocking(move || cache.lookup(&v, pin.as_deref()))
            .await
            .map_err(|e| Failure::new(FailureKind::Failed, e.to_string()))??;
        let Some(staged) = staged else {
            let which = sha256
                .map(|s| format!(" with SHA-256 {s}"))
                .unwrap_or_default();
            return Err(Failure::new(
                FailureKind::NotStaged,
                format!(
                    "{}: no verified {version} installer{which} is staged on this node; nothing was changed. Run `octoup node stage --to {version}` first",
                    self.name
                ),
            ));
        };
        Ok(staged)
    }

    async fn install(&self, version: &str, sha256: Option<&str>) -> Result<InstallReport, Failure> {
        let version = parse_version(version)?;
        self.ensure_stopped().await?;
        let staged = self.staged(&version, sha256).await?;
        let outcome = self
            .agent
            .install(&staged.path, &version.to_string())
            .await?;
        // "The installer succeeded but the files are missing" happens (ISS#6383): believe
        // the binary, not the exit code.
        let installed = self.agent.installed_version().await?;
        if installed != version {
            return Err(Failure::new(
                FailureKind::Install,
                format!(
                    "{}: the installer exited {} but the installed version is {installed}, not {version}. Look at its log {} and install again",
                    self.name,
                    outcome.exit_code,
                    outcome.log.display()
                ),
            ));
        }
        Ok(InstallReport {
            version: version.to_string(),
            installer: staged.path,
            sha256: staged.sha256,
            exit_code: outcome.exit_code,
            reboot_required: outcome.reboot_required,
            attempts: outcome.attempts,
            log: outcome.log,
            installed_version: installed.to_string(),
        })
    }

    async fn uninstall(
        &self,
        version: &str,
        sha256: Option<&str>,
    ) -> Result<UninstallReport, Failure> {
        let version = parse_version(version)?;
        self.ensure_stopped().await?;
        let installed = self.agent.installed_version().await?;
        if installed != version {
            return Err(Failure::new(
                FailureKind::VersionMismatch,
                format!(
                    "{}: the installed version is {installed}, not {version}; nothing was changed",
                    self.name
                ),
            ));
        }
        let staged = self.staged(&version, sha256).await?;
        let outcome = self
            .agent
            .uninstall(&staged.path, &version.to_string())
            .await?;
        Ok(UninstallReport {
            version: version.to_string(),
            installer: staged.path,
            exit_code: outcome.exit_code,
            reboot_required: outcome.reboot_required,
            attempts: outcome.attempts,
            log: outcome.log,
        })
    }

    async fn start(&self, expected: Option<&str>, watchdog: bool) -> Result<StartReport, Failure> {
        let installed = self.agent.installed_version().await?;
        if let Some(expected) = expected {
            let expected = parse_version(expected)?;
            if installed != expected {
                return Err(Failure::new(
                    FailureKind::VersionMismatch,
                    format!(
                        "{}: the installed version is {installed}, not {expected}; not starting (a node never serves on a mismatched version). Run `octoup node install --to {expected}` first",
                        self.name
                    ),
                ));
            }
        }
        self.agent.start(&installed.to_string()).await?;
        let mut watchdog_created = false;
        if watchdog && let Some(saved) = self.saved_watchdog() {
            self.agent.create_watchdog(&saved).await?;
            let _ = crate::process::fsutil::remove_file_if_exists(&self.watchdog_file());
            watchdog_created = true;
        }
        Ok(StartReport {
            version: installed.to_string(),
            watchdog_created,
        })
    }

    async fn status(&self) -> Result<StatusReport, Failure> {
        let installed = self.agent.installed_version().await?;
        let status = self.agent.status().await;
        let (watchdog, watchdog_error) = match self.agent.watchdog().await {
            Ok(w) => (Some(w), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Ok(StatusReport {
            installed_version: installed.to_string(),
            service: service_report(&status.ping, status.api_version),
            watchdog,
            watchdog_error,
        })
    }

    fn watchdog_file(&self) -> PathBuf {
        self.state_dir
            .join(format!("node-{}-watchdog.json", file_safe(&self.name)))
    }

    fn saved_watchdog(&self) -> Option<WatchdogInfo> {
        read_json(&self.watchdog_file())
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn parse_version(text: &str) -> Result<Version, Failure> {
    text.parse()
        .map_err(|e: crate::version::VersionError| Failure::config(e.to_string()))
}

fn service_report(ping: &Ping, api_version: Option<String>) -> ServiceReport {
    let state = match ping {
        Ping::Serving(_) => "serving",
        Ping::Draining(_) => "draining",
        Ping::Unhealthy(_) => "unhealthy",
        Ping::Down(_) => "down",
    };
    ServiceReport {
        answering: ping.is_up(),
        state: state.into(),
        detail: ping.describe(),
        api_version,
        drained: ping.body().map(|b| b.is_in_maintenance_mode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::agent::NodeError;

    fn cfg(text: &str) -> Config {
        Config::parse(text).unwrap()
    }

    #[test]
    fn the_node_is_chosen_by_name_or_alone() {
        let two = cfg(
            "[[nodes]]\nname = \"N1\"\nurl = \"http://127.0.0.1:1\"\n[[nodes]]\nname = \"N2\"\nurl = \"http://127.0.0.1:2\"\n",
        );
        assert_eq!(select_node(&two, Some("n2")).unwrap().0, "N2");
        let err = select_node(&two, None).unwrap_err();
        assert_eq!(err.kind, FailureKind::Config);
        assert!(err.message.contains("--node"), "{}", err.message);
        let err = select_node(&two, Some("N3")).unwrap_err();
        assert!(err.message.contains("N1, N2"), "{}", err.message);
        // A node's own config need not list the cluster: --node names this machine.
        let alone = cfg("[server]\nurl = \"http://127.0.0.1:9\"\n");
        let (name, node) = select_node(&alone, Some("OCTO-NODE-07")).unwrap();
        assert_eq!(
            (name.as_str(), node.url.as_str()),
            ("OCTO-NODE-07", "http://127.0.0.1:9")
        );
        assert_eq!(select_node(&alone, None).unwrap().0, "local");
    }

    #[test]
    fn replies_are_flat_json_with_a_typed_error() {
        let ok = Reply {
            node: "N1".into(),
            action: "start",
            result: Ok(Outcome::Start(StartReport {
                version: "2024.2.7".into(),
                watchdog_created: false,
            })),
        };
        assert_eq!(
            ok.to_json(),
            serde_json::json!({"format": 1, "node": "N1", "action": "start", "ok": true,
                "version": "2024.2.7", "watchdog_created": false})
        );
        let failed = Reply {
            node: "N1".into(),
            action: "install",
            result: Err(NodeError::Install {
                node: "N1".into(),
                code: "exit code 1603".into(),
                log: PathBuf::from("/l.log"),
                tail: "Error 1603".into(),
            }
            .into()),
        };
        let v = failed.to_json();
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["kind"], "install");
        assert_eq!(v["error"]["code"], "exit code 1603");
        assert_eq!(v["error"]["log"], "/l.log");
        assert!(v["error"]["message"].as_str().unwrap().contains("1603"));
        let back: Failure = serde_json::from_value(v["error"].clone()).unwrap();
        assert_eq!(back.kind, FailureKind::Install);
        assert!(!back.kind.changed_nothing());
        assert!(FailureKind::NotStaged.changed_nothing());
    }
}
