//! Out of the outage: every node started and verified on the target, then watchdogs,
//! drain flags and maintenance mode back as they were (I6).

use std::time::Duration;

use crate::nodes::{NodeCommand, NodeStatus, WatchdogInfo};
use crate::octopus::api::Ping;
use crate::process::clock::{Deadline, Poller, now};
use crate::version::Version;

use super::super::catalogue::{StepId, StepKind};
use super::super::error::StepError;
use super::super::executor::{Done, Engine, EngineNode, StepResult};

/// Whether a node answers with `version` at its own `/api`.
pub(crate) fn serves(status: &NodeStatus, version: &Version) -> bool {
    status.ping.is_up()
        && status
            .api_version
            .as_deref()
            .and_then(|v| v.parse::<Version>().ok())
            .is_some_and(|v| v == *version)
}

impl Engine {
    pub(super) async fn start(&self, n: &EngineNode) -> StepResult {
        let target = self.target();
        if !serves(&n.agent.status().await, &target) {
            let hook = self.launch_hook(&StepId::on(StepKind::Start, &n.info.name))?;
            let expected = target.to_string();
            let start = NodeCommand::Start {
                expected: &expected,
            };
            n.agent.watched(start, hook).await?;
        }
        Ok(Done::Ok(format!("serves {target}")))
    }

    pub(super) async fn verify(&self) -> StepResult {
        let target = self.target();
        self.verify_serving(&target).await?;
        self.journal_update(|r| r.outage_ended = Some(now()))?;
        Ok(Done::Ok(format!(
            "every node serves {target} (/api, ping, cluster summary)"
        )))
    }

    /// Every node serves `want` at its own address, and the cluster summary agrees.
    pub(crate) async fn verify_serving(&self, want: &Version) -> Result<(), StepError> {
        for n in &self.nodes {
            let s = n.agent.status().await;
            if !serves(&s, want) {
                return Err(StepError::NotServing {
                    node: n.info.name.clone(),
                    want: want.clone(),
                    ping: s.ping.describe(),
                    served: s.api_version,
                });
            }
        }
        for s in self.cluster.nodes_summary().await? {
            if self.node_named(&s.name).is_none() {
                continue;
            }
            if let Some(v) = s.version
                && v.parse::<Version>().ok().as_ref() != Some(want)
            {
                return Err(StepError::SummaryMismatch {
                    node: s.name,
                    version: v,
                    want: want.clone(),
                });
            }
        }
        Ok(())
    }

    pub(crate) async fn create_watchdog(&self, n: &EngineNode) -> StepResult {
        let Some(info) = self.watchdog_before(n) else {
            return Ok(Done::Skipped("no watchdog before the upgrade".into()));
        };
        if n.agent.watchdog().await?.enabled {
            return Ok(Done::Ok("present".into()));
        }
        let hook = self.launch_hook(&StepId::on(StepKind::CreateWatchdog, &n.info.name))?;
        n.agent
            .watched(NodeCommand::CreateWatchdog(&info), hook)
            .await?;
        Ok(Done::Ok("recreated".into()))
    }

    /// The node's watchdog as the preflight found it.
    pub(crate) fn watchdog_before(&self, n: &EngineNode) -> Option<WatchdogInfo> {
        self.recorded(&StepId::on(StepKind::DeleteWatchdog, &n.info.name), |s| {
            s.watchdog_before()
        })
    }

    pub(crate) fn drain_was_on(&self, n: &EngineNode) -> bool {
        self.recorded(&StepId::on(StepKind::Drain, &n.info.name), |s| s.was_on())
            .unwrap_or(false)
    }

    pub(crate) async fn undrain(&self, n: &EngineNode) -> StepResult {
        if self.drain_was_on(n) {
            return Ok(Done::Skipped(
                "was drained before the upgrade: stays drained".into(),
            ));
        }
        self.cluster.set_drain(&n.info.id, false).await?;
        if !n.agent.ping().await.is_up() {
            return Ok(Done::Ok(
                "drain flag cleared; the node is stopped and takes tasks once it starts".into(),
            ));
        }
        // The node takes tasks again once its ping says 200.
        let deadline = Deadline::after(Duration::from_secs(self.config.timeouts.command));
        let mut poll = Poller::standard();
        loop {
            match n.agent.ping().await {
                Ping::Serving(_) => return Ok(Done::Ok("taking tasks again (ping 200)".into())),
                other if deadline.expired() => {
                    return Err(StepError::StillDrained {
                        node: n.info.name.clone(),
                        ping: other.describe(),
                    });
                }
                _ => poll.wait(Some(&deadline)).await,
            }
        }
    }

    pub(crate) fn maintenance_was_on(&self) -> bool {
        self.recorded(&StepId::once(StepKind::MaintenanceOn), |s| s.was_on())
            .unwrap_or(false)
    }

    pub(super) async fn maintenance_restore(&self) -> StepResult {
        if self.maintenance_was_on() {
            return Ok(Done::Skipped("was on before the upgrade: stays on".into()));
        }
        if self.config.maintenance.leave_on {
            return Ok(Done::Skipped(
                "left on as configured ([maintenance] leave_on): check the server, then turn it off".into(),
            ));
        }
        self.cluster.set_maintenance(false).await?;
        Ok(Done::Ok("turned off".into()))
    }
}
