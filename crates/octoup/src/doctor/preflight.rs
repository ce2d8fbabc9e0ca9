//! Everything checked before any downtime, changing nothing: the server answers, the key is
//! an administrator's, each node's version read two ways (API and `Octopus.Server.exe
//! version`) agrees, no unknown node runs against the database, the target is chosen and
//! the license covers it, there is disk space, and each node's watchdog is noted.
//!
//! Then the deep checks of [`crate::doctor`] run. Every problem is a [`Finding`]: blockers
//! make the upgrade refuse (exit 3); warnings and information are shown in the plan.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Serialize;

use crate::choice::ChoiceError;
use crate::choice::check::{CheckReport, CheckStatus};
use crate::config::{Config, ConfigError, EnvOverrides, NodeConfig};
use crate::doctor::{Acceptance, Finding, Findings, Rules};
use crate::nodes::{NodeAgent, WatchdogInfo, agent_for};
use crate::octopus::api::{ApiError, NodeSummary, OctopusApi, ServerStatus};
use crate::octopus::http::{HttpClient, NetworkSettings};
use crate::process::runner::{CommandRunner, LocalRunner, RunLog};
use crate::version::{Version, VersionError};

/// Installer size assumed when the download server does not say (the 2026 MSI is 1.43 GB).
pub(crate) const ASSUMED_INSTALLER_BYTES: u64 = 1_600_000_000;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("cannot set up HTTP: {0}")]
    Http(#[from] crate::octopus::http::HttpError),
    #[error("{0}")]
    Other(String),
    /// `[versions]`, the feed URL or `--to` is wrong (a usage error, not a refusal).
    #[error(transparent)]
    Choice(#[from] ChoiceError),
    #[error("--to {to}: {source}")]
    BadTo { to: String, source: VersionError },
    #[error(
        "--to {wanted} is older than the installed {current}: octoup does not downgrade (a downgrade is a database restore)"
    )]
    Downgrade {
        wanted: Box<Version>,
        current: Box<Version>,
    },
}

impl PreflightError {
    /// A mistake in the configuration or the command line (nothing was asked of the
    /// installation that it refused): the CLI exits 2 for these, 3 for the rest.
    pub fn is_config(&self) -> bool {
        match self {
            PreflightError::Config(_)
            | PreflightError::Http(_)
            | PreflightError::BadTo { .. }
            | PreflightError::Downgrade { .. } => true,
            PreflightError::Choice(e) => e.is_config(),
            PreflightError::Api(e) => e.is_config(),
            PreflightError::Other(_) => false,
        }
    }
}

/// What every command that talks to the installation shares.
pub(crate) struct Connection {
    pub config: Arc<Config>,
    pub http: HttpClient,
    /// The cluster (or load balancer) address.
    pub api: OctopusApi,
    pub runner: Arc<dyn CommandRunner>,
}

impl Connection {
    /// Builds the clients; reads the API key (never from argv) and checks nothing remote yet.
    pub fn new(
        config: Config,
        env: &EnvOverrides,
        log: Arc<RunLog>,
    ) -> Result<Connection, PreflightError> {
        let key = config.api_key(env)?;
        log.redact(&key);
        if let Some(pw) = config.sql_password()? {
            log.redact(&pw);
        }
        let http = HttpClient::new(NetworkSettings::from_config(&config))?.with_log(log.clone());
        let url = config.server_url()?.to_string();
        http.check_url(&url)?;
        let api = OctopusApi::new(
            http.clone(),
            &url,
            key,
            Duration::from_secs(config.timeouts.http),
        )
        .with_key_source(config.api_key_source(env));
        let runner: Arc<dyn CommandRunner> = Arc::new(LocalRunner::new(Some(log.clone())));
        Ok(Connection {
            config: Arc::new(config),
            http,
            api,
            runner,
        })
    }

    /// The agent for a configured node known by `name` at `url`.
    pub(crate) fn agent(
        &self,
        node: &NodeConfig,
        name: &str,
        url: &str,
    ) -> Result<Arc<dyn NodeAgent>, PreflightError> {
        agent_for(
            &self.config,
            node,
            name,
            self.api.at(url),
            self.runner.clone(),
            self.config.state.dir.join("logs"),
        )
        .map_err(|e| PreflightError::Other(e.to_string()))
    }
}

/// One node as the preflight found it.
#[derive(Clone, Serialize)]
pub struct NodeFacts {
    pub name: String,
    pub id: String,
    pub url: String,
    pub primary: bool,
    /// `/api` Version at the node's own address.
    pub api_version: Option<String>,
    /// `Octopus.Server.exe version` on the node.
    pub exe_version: Option<String>,
    pub ping: String,
    /// The node's drain flag now.
    pub drained: bool,
    pub running_tasks: u32,
    pub watchdog: Option<WatchdogInfo>,
    #[serde(skip)]
    pub config: NodeConfig,
    #[serde(skip)]
    pub agent: Option<Arc<dyn NodeAgent>>,
}

/// The version to install and why.
#[derive(Debug, Clone, Serialize)]
pub struct TargetChoice {
    /// The next version to install (the first stop of `path`).
    pub target: Option<Version>,
    /// Every version to install in order; a run installs one, a re-run the next.
    pub path: Vec<Version>,
    pub why: String,
    pub up_to_date: bool,
    #[serde(skip)]
    pub check: Option<CheckReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiskFact {
    pub what: String,
    pub path: PathBuf,
    pub available_bytes: Option<u64>,
    pub needed_bytes: Option<u64>,
}

/// Everything the preflight found.
#[derive(Clone, Serialize)]
pub struct Facts {
    pub server_url: String,
    /// `/api` Version at the server URL.
    pub version: String,
    pub maintenance: bool,
    pub server_status: ServerStatus,
    pub nodes: Vec<NodeFacts>,
    /// Nodes in the cluster summary that are not in the config.
    pub other_nodes: Vec<NodeSummary>,
    pub target: Option<TargetChoice>,
    pub license_covers_up_to: Option<String>,
    pub license_maintenance_expires: Option<String>,
    pub disk: Vec<DiskFact>,
    /// Everything the checks found, accepted warnings marked.
    pub findings: Findings,
    /// The detected SQL hosting, when the database checks could tell.
    pub hosting: Option<String>,
    /// What the database checks found (hosting, sizes, rights).
    pub database: Option<crate::doctor::DatabaseFacts>,
}

impl Facts {
    pub(crate) fn primary(&self) -> Option<&NodeFacts> {
        self.nodes.iter().find(|n| n.primary)
    }

    /// The warnings not accepted, one line each.
    pub fn warnings(&self) -> Vec<String> {
        self.findings.warning_lines()
    }

    /// The strategy the database checks chose (native when they could not tell: the fake
    /// world of the engine's tests has no database checks).
    pub fn strategy(&self) -> Option<crate::database::Choice> {
        self.database.as_ref().and_then(|d| d.strategy.clone())
    }

    /// The blockers, one line each (empty: the upgrade may go ahead).
    pub fn blockers(&self) -> Vec<String> {
        self.findings.blocker_lines()
    }
}

/// Runs every check. Errors only when nothing more can be learned (server unreachable, key
/// refused); everything else is a blocker or a warning in the result.
pub(crate) async fn preflight(
    conn: &Connection,
    to: Option<&str>,
    acceptance: &Acceptance,
) -> Result<Facts, PreflightError> {
    let config = &conn.config;
    let api = &conn.api;
    // A `--to` that is not a version is a usage error, whatever the server would say.
    let to = to
        .map(|to| {
            to.parse::<Version>()
                .map_err(|source| PreflightError::BadTo {
                    to: to.to_string(),
                    source,
                })
        })
        .transpose()?;
    let root = api.root().await?;
    // The admin probe: needs AdministerSystem, changes nothing.
    api.system_info().await?;
    let server_status = api.server_status().await?;
    let maintenance = api.maintenance().await?;
    let summary = api.nodes_summary().await?;

    let mut findings = Findings::default();
    let mut nodes = Vec::new();
    for node in config.effective_nodes()? {
        nodes.push(node_facts(conn, &node, &summary, &mut findings).await);
    }

    // Versions must agree everywhere before anything is touched.
    let current = nodes
        .iter()
        .find_map(|n| n.api_version.clone())
        .unwrap_or_else(|| root.version.clone());
    for n in &nodes {
        if let Some(v) = &n.api_version
            && !same_version(v, &current)
        {
            findings.push(Finding::blocker(
                "cluster.mixed-versions",
                format!("node {} serves {v} but {current} runs elsewhere", n.name),
                "a cluster upgrade starts from one version on every node",
                "bring every node to one version first",
            ));
        }
        if let (Some(a), Some(e)) = (&n.api_version, &n.exe_version)
            && !same_version(a, e)
        {
            findings.push(Finding::blocker(
                "node.version-mismatch",
                format!(
                    "node {}: the API reports {a} but `Octopus.Server.exe version` reports {e}",
                    n.name
                ),
                "the service runs a different build than the one installed (a pending restart?)",
                "restart the service, then run octoup again",
            ));
        }
    }

    // Nodes the config does not list but the database knows.
    let known: Vec<String> = nodes.iter().map(|n| n.name.to_ascii_lowercase()).collect();
    let other_nodes: Vec<NodeSummary> = summary
        .iter()
        .filter(|s| !known.contains(&s.name.to_ascii_lowercase()))
        .cloned()
        .collect();
    for other in &other_nodes {
        if other.is_offline {
            findings.push(Finding::warning(
                "cluster.offline-node",
                format!(
                    "node {} is registered but offline (last seen {})",
                    other.name,
                    other.last_seen.as_deref().unwrap_or("never")
                ),
                "if it comes back during the upgrade it runs against a changed database",
                "if it is gone for good, delete it in Configuration → Nodes",
            ));
        } else if config.nodes.is_empty() {
            findings.push(Finding::blocker(
                "cluster.unlisted-node",
                format!("the cluster has another running node, {}", other.name),
                "every node must be stopped for the database upgrade",
                "list every node under [[nodes]] so all are stopped and upgraded together",
            ));
        } else {
            findings.push(Finding::blocker(
                "cluster.unlisted-node",
                format!(
                    "node {} runs against the same database but is not in [[nodes]]",
                    other.name
                ),
                "the database upgrade refuses while it runs",
                "add it, or stop it and delete it in Configuration → Nodes",
            ));
        }
    }

    let license_max = server_status
        .maximum_available_version_covered_by_license
        .clone();
    let target = match current.parse::<Version>() {
        Ok(cur) => Some(
            choose_target(
                conn,
                &cur,
                license_max.as_deref().and_then(|v| v.parse().ok()),
                to,
                &mut findings,
            )
            .await?,
        ),
        Err(e) => {
            findings.push(Finding::blocker(
                "server.version",
                format!("the server's version cannot be read: {e}"),
                "octoup chooses the target from the installed version",
                "check that [server] url points at the Octopus Server",
            ));
            None
        }
    };

    let disk = disk_facts(conn, target.as_ref()).await;
    for d in &disk {
        if let (Some(avail), Some(need)) = (d.available_bytes, d.needed_bytes)
            && avail < need
        {
            findings.push(Finding::blocker(
                "disk.space",
                format!(
                    "not enough free space for the {} in {}: {} available, {} needed",
                    d.what,
                    d.path.display(),
                    bytes(avail),
                    bytes(need)
                ),
                "the file is written before the outage and must fit",
                "free space there, or point the setting at a bigger volume",
            ));
        }
    }
    if server_status.is_potential_clone {
        findings.push(Finding::warning(
            "server.potential-clone",
            "the server reports it may be a clone (IsPotentialClone)",
            "a clone shares the license and can deploy to production targets",
            "make sure this is the installation you mean to upgrade",
        ));
    }

    let mut facts = Facts {
        server_url: api.base().to_string(),
        version: current,
        maintenance,
        server_status: server_status.clone(),
        nodes,
        other_nodes,
        target,
        license_covers_up_to: license_max,
        license_maintenance_expires: server_status.maintenance_expires.clone(),
        disk,
        findings,
        hosting: None,
        database: None,
    };
    let target = facts.target.as_ref().and_then(|t| t.target.clone());
    let deep = crate::doctor::deep_checks(&crate::doctor::Context {
        conn,
        facts: &facts,
        target: target.as_ref(),
        rules: Rules::builtin(),
    })
    .await;
    facts.findings.extend(deep.findings.0);
    facts.hosting = deep.hosting;
    facts.database = deep.database;
    facts.findings.settle(acceptance);
    Ok(facts)
}

async fn node_facts(
    conn: &Connection,
    node: &NodeConfig,
    summary: &[NodeSummary],
    findings: &mut Findings,
) -> NodeFacts {
    let node_api = conn.api.at(&node.url);
    let ping = node_api.ping().await;
    // The single-node config has no name: the node says who it is.
    let name = if node.name.is_empty() {
        ping.body()
            .map(|b| b.name.clone())
            .filter(|n| !n.is_empty())
            .or_else(|| (summary.len() == 1).then(|| summary[0].name.clone()))
            .unwrap_or_else(|| "this node".to_string())
    } else {
        node.name.clone()
    };
    let entry = summary.iter().find(|s| s.name.eq_ignore_ascii_case(&name));
    let id = entry
        .map(|s| s.id.clone())
        .filter(|i| !i.is_empty())
        .or_else(|| ping.body().map(|b| b.id.clone()).filter(|i| !i.is_empty()))
        .unwrap_or_else(|| format!("OctopusServerNodes-{name}"));
    let mut facts = NodeFacts {
        name: name.clone(),
        id,
        url: node.url.clone(),
        primary: node.primary,
        api_version: None,
        exe_version: None,
        ping: ping.describe(),
        drained: entry.map(|s| s.is_in_maintenance_mode).unwrap_or(false),
        running_tasks: entry.map(|s| s.running_task_count).unwrap_or(0),
        watchdog: None,
        config: node.clone(),
        agent: None,
    };
    if !ping.is_up() {
        findings.push(Finding::blocker(
            "node.down",
            format!("node {name} at {} is {}", node.url, ping.describe()),
            "every node must run before an upgrade: octoup must see its version and drain it",
            "start the node (or fix its url in [[nodes]]), then run octoup again",
        ));
    } else {
        match node_api.root().await {
            Ok(r) => facts.api_version = Some(r.version),
            Err(e) => findings.push(Finding::blocker(
                "node.api",
                format!("node {name}: {e}"),
                "octoup reads each node's version from its own /api",
                "check the node's url in [[nodes]]",
            )),
        }
    }
    let agent = match conn.agent(node, &name, &node.url) {
        Ok(a) => a,
        Err(e) => {
            findings.push(Finding::blocker(
                "node.agent",
                format!("node {name}: {e}"),
                "octoup runs the node's commands through this",
                "fix the node's ssh or command settings in [[nodes]]",
            ));
            return facts;
        }
    };
    match agent.installed_version().await {
        Ok(v) => facts.exe_version = Some(v.to_string()),
        Err(e) => findings.push(Finding::blocker(
            "node.installed-version",
            format!("node {name}: cannot read the installed version: {e}"),
            "the installed build must agree with the one the API serves",
            "check [server] server_exe",
        )),
    }
    match agent.watchdog().await {
        Ok(w) => facts.watchdog = Some(w),
        Err(e) => findings.push(Finding::blocker(
            "node.watchdog",
            format!("node {name}: cannot read the configuration (for the watchdog): {e}"),
            "a watchdog left running restarts the service during the outage",
            "check [server] server_exe and [server] instance",
        )),
    }
    facts.agent = Some(agent);
    facts
}

fn same_version(a: &str, b: &str) -> bool {
    match (a.parse::<Version>(), b.parse::<Version>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The target: `--to` when given (it must be in the feed; checked against the license),
/// else the version policy. Errors are the operator's mistakes (exit 2); a feed that cannot
/// be read is a blocker.
pub(crate) async fn choose_target(
    conn: &Connection,
    current: &Version,
    license_max: Option<Version>,
    to: Option<Version>,
    findings: &mut Findings,
) -> Result<TargetChoice, PreflightError> {
    let versions = &conn.config.versions;
    if let Some(wanted) = to {
        if wanted == *current {
            return Ok(TargetChoice {
                target: None,
                path: Vec::new(),
                why: format!("{current} is already installed"),
                up_to_date: true,
                check: None,
            });
        }
        if wanted < *current {
            return Err(PreflightError::Downgrade {
                wanted: Box::new(wanted),
                current: Box::new(current.clone()),
            });
        }
        match crate::choice::requested(versions, None, &conn.http, &wanted).await {
            Ok(found) => findings.extend(found.warnings.into_iter().map(choice_warning)),
            Err(ChoiceError::Feed(e)) => {
                findings.push(Finding::blocker(
                    "feed.unreadable",
                    format!(
                        "--to {wanted} cannot be checked against the version feed, which could not be read: {e}"
                    ),
                    "octoup installs only a release the feed lists",
                    "check [versions] feed and the network (or [network] proxy)",
                ));
                return Ok(no_target("the version feed could not be read".into()));
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(max) = &license_max
            && wanted > *max
        {
            findings.push(Finding::blocker(
                "license.coverage",
                format!("the license covers versions up to {max}; {wanted} is not covered"),
                "the database upgrade would refuse",
                "renew the license or choose an older target",
            ));
        }
        return Ok(TargetChoice {
            target: Some(wanted.clone()),
            path: vec![wanted.clone()],
            why: format!("{wanted} was asked for with --to"),
            up_to_date: false,
            check: None,
        });
    }
    let report = match crate::choice::choose(versions, None, &conn.http, current, license_max).await
    {
        Ok(report) => report,
        Err(ChoiceError::Feed(e)) => {
            findings.push(Finding::blocker(
                "feed.unreadable",
                format!("the version feed could not be read: {e}"),
                "octoup chooses the target from the feed",
                "check [versions] feed and the network (or [network] proxy)",
            ));
            return Ok(no_target("the version feed could not be read".into()));
        }
        Err(e) => return Err(e.into()),
    };
    findings.extend(report.warnings.iter().cloned().map(choice_warning));
    let path = report.path.clone();
    Ok(TargetChoice {
        target: path.first().cloned(),
        path,
        why: report.explanation.clone(),
        up_to_date: report.status != CheckStatus::UpgradeAvailable,
        check: Some(report),
    })
}

/// A remark of the version choice (an unusual feed, a skipped release) as a warning.
fn choice_warning(text: String) -> Finding {
    Finding::warning("version.choice", text, "", "")
}

fn no_target(why: String) -> TargetChoice {
    TargetChoice {
        target: None,
        path: Vec::new(),
        why,
        up_to_date: false,
        check: None,
    }
}

async fn disk_facts(conn: &Connection, target: Option<&TargetChoice>) -> Vec<DiskFact> {
    let config = &conn.config;
    let mut out = Vec::new();
    if let Some(version) = target.and_then(|t| t.target.as_ref()) {
        let url = config
            .installer
            .url
            .replace("{version}", &version.to_string());
        let size = installer_size(&conn.http, &url).await;
        let copies = if config.rollback.enabled { 2 } else { 1 };
        out.push(DiskFact {
            what: if copies == 2 {
                "installers (target and rollback)".into()
            } else {
                "installer".into()
            },
            path: config.cache_dir(),
            available_bytes: crate::process::platform::available_space(&config.cache_dir()),
            needed_bytes: Some(size.unwrap_or(ASSUMED_INSTALLER_BYTES) * copies),
        });
    }
    // The database size is not known to octoup; the space is shown for the operator.
    out.push(DiskFact {
        what: "database backup".into(),
        path: config.database.backup_dir.clone(),
        available_bytes: crate::process::platform::available_space(&config.database.backup_dir),
        needed_bytes: None,
    });
    out.push(DiskFact {
        what: "master key and license copies".into(),
        path: config.backup.dir.clone(),
        available_bytes: crate::process::platform::available_space(&config.backup.dir),
        needed_bytes: Some(1024 * 1024),
    });
    out
}

/// `Content-Length` of a HEAD request, when the server says.
async fn installer_size(http: &HttpClient, url: &str) -> Option<u64> {
    let request = http
        .request(Method::HEAD, url)
        .ok()?
        .timeout(Duration::from_secs(15));
    let response = http.send(request).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

pub use crate::process::fsutil::bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1_430_000_000), "1.4 GB");
        assert_eq!(bytes(12_000), "12.0 KB");
    }
}
