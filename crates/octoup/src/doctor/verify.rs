//! After the start: what an upgrade can leave broken that `/api` and ping do not show. Run
//! at the end of every successful `upgrade` (its findings go into the report; they never
//! turn an upgraded run into a failure) and on demand as `octoup verify`:
//! - every node's version (the cluster summary) is the expected one;
//! - the System Integrity Check on the new version;
//! - a `RecurringScheduledDeployments` task stuck in the queue (OctopusDeploy/Issues#8485,
//!   #8875): reported, cancelled only with `[doctor] cancel_stuck_triggers`;
//! - queue health;
//! - the Tentacles and Calamari that need an upgrade, per space; with
//!   `--upgrade-tentacles` the vendor's Upgrade tasks ([`crate::doctor::tentacles`]).

use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::doctor::finding::{Finding, Findings};
use crate::doctor::preflight::Connection;
use crate::doctor::tentacles::{self, ApiTentacles, Candidate, TentacleUpgrade};
use crate::doctor::{integrity, machines, octopus};
use crate::octopus::api::{NodeSummary, OctopusApi, TaskResource};
use crate::version::Version;

/// `octoup verify --json`.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The version every node should serve.
    pub expected: String,
    pub nodes: Vec<NodeVersion>,
    pub findings: Findings,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tentacle_upgrade: Option<TentacleUpgrade>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeVersion {
    pub name: String,
    pub version: Option<String>,
    pub offline: bool,
}

impl VerifyReport {
    /// Something at blocker level remains (`octoup verify` exits non-zero).
    pub fn has_blockers(&self) -> bool {
        self.findings.has_blockers()
    }
}

#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Start the vendor's Tentacle Upgrade tasks (canary first, then batches).
    pub upgrade_tentacles: bool,
}

/// `octoup verify` once the expected version is known (see `engine::verify`).
pub(crate) async fn on_demand(
    conn: &Connection,
    expected: Version,
    options: VerifyOptions,
) -> VerifyReport {
    let (mut findings, nodes, candidates) = checks(&conn.api, &conn.config, &expected).await;
    let tentacle_upgrade = if options.upgrade_tentacles && !candidates.is_empty() {
        let ops = ApiTentacles {
            api: &conn.api,
            timeout: Duration::from_secs(conn.config.doctor.tentacle_timeout_seconds),
        };
        let (result, found) =
            tentacles::upgrade(&ops, &candidates, conn.config.doctor.tentacle_batch).await;
        // The upgrade's own findings replace the list of Tentacles needing one.
        findings.0.retain(|f| f.id != "verify.tentacles");
        findings.extend(found.0);
        Some(result)
    } else {
        None
    };
    VerifyReport {
        expected: expected.to_string(),
        nodes,
        findings,
        tentacle_upgrade,
    }
}

/// The checks at the end of a successful upgrade.
pub(crate) async fn after_upgrade(
    api: &OctopusApi,
    config: &Config,
    expected: &Version,
) -> Findings {
    checks(api, config, expected).await.0
}

async fn checks(
    api: &OctopusApi,
    config: &Config,
    expected: &Version,
) -> (Findings, Vec<NodeVersion>, Vec<Candidate>) {
    let mut f = Findings::default();
    let nodes = match api.nodes_summary().await {
        Ok(summary) => {
            f.extend(node_findings(&summary, expected));
            summary
                .iter()
                .map(|n| NodeVersion {
                    name: n.name.clone(),
                    version: n.version.clone(),
                    offline: n.is_offline,
                })
                .collect()
        }
        Err(e) => {
            f.push(Finding::unchecked(
                "verify.nodes",
                "every node's version",
                e,
            ));
            Vec::new()
        }
    };
    f.extend(integrity::check(api, &config.doctor, "verify.integrity", "after the upgrade").await);
    f.extend(stuck_triggers(api, config).await);
    f.extend(octopus::queue(api, "verify.queue", jiff::Timestamp::now()).await);
    let (found, candidates) = needing_upgrade(api).await;
    f.extend(found);
    (f, nodes, candidates)
}

pub(crate) fn node_findings(summary: &[NodeSummary], expected: &Version) -> Vec<Finding> {
    let mut out = Vec::new();
    for n in summary {
        if n.is_offline {
            out.push(Finding::warning(
                "verify.node-offline",
                format!(
                    "node {} is offline (last seen {})",
                    n.name,
                    n.last_seen.as_deref().unwrap_or("never")
                ),
                "an offline node serves nothing; if it starts later it must run the new version",
                "start it with the new version installed, or delete it in Configuration → Nodes if it is gone",
            ));
            continue;
        }
        let ok = n
            .version
            .as_deref()
            .and_then(|v| v.parse::<Version>().ok())
            .is_some_and(|v| v == *expected);
        if !ok {
            out.push(Finding::blocker(
                "verify.node-version",
                format!(
                    "node {} reports version {}, expected {expected}",
                    n.name,
                    n.version.as_deref().unwrap_or("none")
                ),
                "every node of a cluster must run the version of the database schema",
                format!("install {expected} on {} and restart it", n.name),
            ));
        }
    }
    out
}

/// The recurring-triggers task queued longer than `[doctor] stuck_task_minutes`.
async fn stuck_triggers(api: &OctopusApi, config: &Config) -> Vec<Finding> {
    let id = "verify.stuck-triggers";
    let page = match api
        .tasks("name=RecurringScheduledDeployments&states=Queued")
        .await
    {
        Ok(p) => p,
        Err(e) => return vec![Finding::unchecked(id, "the recurring-triggers task", e)],
    };
    let stuck = stuck_tasks(
        &page.items,
        config.doctor.stuck_task_minutes,
        jiff::Timestamp::now(),
    );
    let mut out = Vec::new();
    for (task, minutes) in stuck {
        let link = integrity::task_link(api, task);
        let found = format!(
            "the recurring-triggers task {} (RecurringScheduledDeployments) has been queued for {minutes} min",
            task.id
        );
        let why = "while it is stuck no scheduled trigger runs (OctopusDeploy/Issues#8485, #8875); expect a burst of catch-up runs once it moves";
        if !config.doctor.cancel_stuck_triggers {
            out.push(
                Finding::warning(
                    id,
                    found,
                    why,
                    "cancel it (Tasks → the task → Cancel) or restart a node; `[doctor] cancel_stuck_triggers = true` makes octoup cancel it",
                )
                .with_link(link),
            );
            continue;
        }
        match api.cancel_task(&task.id).await {
            Ok(()) => out.push(
                Finding::info(
                    "verify.stuck-triggers.cancelled",
                    format!("{found}: cancelled ([doctor] cancel_stuck_triggers); Octopus queues it again"),
                )
                .with_link(link),
            ),
            Err(e) => out.push(
                Finding::warning(
                    id,
                    format!("{found}; cancelling it failed: {e}"),
                    why,
                    "cancel it by hand (Tasks → the task → Cancel) or restart a node",
                )
                .with_link(link),
            ),
        }
    }
    out
}

pub(crate) fn stuck_tasks(
    queued: &[TaskResource],
    threshold_minutes: u64,
    now: jiff::Timestamp,
) -> Vec<(&TaskResource, i64)> {
    queued
        .iter()
        .filter(|t| t.state == "Queued")
        .filter_map(|t| Some((t, octopus::queued_minutes(t, now)?)))
        .filter(|(_, m)| *m >= threshold_minutes as i64)
        .collect()
}

/// The Tentacles and Calamari the environments summaries name, per space, and the
/// machines an upgrade would start with.
async fn needing_upgrade(api: &OctopusApi) -> (Vec<Finding>, Vec<Candidate>) {
    let mut out = Vec::new();
    let (all, errors) = match machines::all(api).await {
        Ok(x) => x,
        Err(e) => {
            return (
                vec![Finding::unchecked(
                    "verify.tentacles",
                    "which Tentacles need an upgrade",
                    e,
                )],
                Vec::new(),
            );
        }
    };
    for (space, e) in errors {
        out.push(Finding::unchecked(
            "verify.tentacles",
            &format!("the machines of space {space}"),
            e,
        ));
    }
    let mut spaces: Vec<(String, String)> = Vec::new();
    for p in &all {
        if !spaces.iter().any(|(id, _)| *id == p.space.id) {
            spaces.push((p.space.id.clone(), p.space.name.clone()));
        }
    }
    let mut tentacle = Vec::new();
    let mut calamari: Vec<(String, String)> = Vec::new();
    for (space_id, space_name) in &spaces {
        let summary = match api.environments_summary(space_id).await {
            Ok(s) => s,
            Err(e) => {
                out.push(Finding::unchecked(
                    "verify.tentacles",
                    &format!("which Tentacles of space {space_name} need an upgrade"),
                    e,
                ));
                continue;
            }
        };
        let named = |id: &str| {
            all.iter()
                .find(|p| p.space.id == *space_id && p.machine.id == id)
                .map(|p| p.machine.clone())
        };
        for id in &summary.machine_ids_for_tentacle_upgrade {
            let m = named(id);
            tentacle.push(Candidate {
                space_id: space_id.clone(),
                space: space_name.clone(),
                id: id.clone(),
                name: m
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_else(|| id.clone()),
                before: m
                    .as_ref()
                    .and_then(|m| m.tentacle_version().map(str::to_string)),
            });
        }
        for id in &summary.machine_ids_for_calamari_upgrade {
            let name = named(id).map(|m| m.name).unwrap_or_else(|| id.clone());
            calamari.push((space_name.clone(), name));
        }
    }
    if !tentacle.is_empty() {
        out.push(Finding::warning(
            "verify.tentacles",
            format!(
                "{} Tentacle(s) need an upgrade: {}",
                tentacle.len(),
                machines::listed(tentacle.iter().map(|c| (c.space.as_str(), c.name.as_str())))
            ),
            "the new server bundles a newer Tentacle; old ones keep working for now but miss fixes and may lose support",
            "run `octoup verify --upgrade-tentacles` (a canary first, then batches), or Infrastructure → Deployment Targets → Upgrade",
        ));
    }
    if !calamari.is_empty() {
        out.push(Finding::info(
            "verify.calamari",
            format!(
                "{} machine(s) will receive a new Calamari: {}",
                calamari.len(),
                machines::listed(calamari.iter().map(|(s, n)| (s.as_str(), n.as_str())))
            ),
        ));
    }
    (out, tentacle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_on_another_version_or_offline() {
        let expected: Version = "2024.3.13050".parse().unwrap();
        let node = |name: &str, version: Option<&str>, offline: bool| NodeSummary {
            name: name.into(),
            version: version.map(str::to_string),
            is_offline: offline,
            ..Default::default()
        };
        let f = node_findings(
            &[
                node("A", Some("2024.3.13050"), false),
                node("B", Some("2024.1.10"), false),
                node("C", None, false),
                node("D", Some("2024.1.10"), true),
            ],
            &expected,
        );
        let ids: Vec<&str> = f.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "verify.node-version",
                "verify.node-version",
                "verify.node-offline"
            ]
        );
        assert!(
            f[0].found
                .contains("node B reports version 2024.1.10, expected 2024.3.13050")
        );
        assert!(f[1].found.contains("none"));
    }

    #[test]
    fn stuck_means_queued_past_the_threshold() {
        let now: jiff::Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
        let task = |id: &str, state: &str, queued: &str| TaskResource {
            id: id.into(),
            state: state.into(),
            queue_time: Some(queued.into()),
            ..Default::default()
        };
        let tasks = [
            task("T1", "Queued", "2026-12-02T11:00:00.000+00:00"),
            task("T2", "Queued", "2026-12-02T11:55:00.000+00:00"),
            task("T3", "Executing", "2026-12-02T10:00:00.000+00:00"),
            TaskResource {
                id: "T4".into(),
                state: "Queued".into(),
                ..Default::default()
            },
        ];
        let stuck: Vec<(&str, i64)> = stuck_tasks(&tasks, 10, now)
            .into_iter()
            .map(|(t, m)| (t.id.as_str(), m))
            .collect();
        assert_eq!(stuck, [("T1", 60)]);
    }
}
