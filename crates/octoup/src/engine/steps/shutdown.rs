//! Into the outage: maintenance mode on, every node drained (its tasks waited for, up to
//! the shared deadline), watchdogs deleted, every service stopped and seen down.

use std::time::Duration;

use crate::nodes::NodeCommand;
use crate::octopus::api::{Ping, TaskResource};
use crate::process::clock::{Deadline, Poller, human_duration};

use super::super::catalogue::{StepId, StepKind};
use super::super::error::StepError;
use super::super::executor::{Done, Engine, EngineNode, StepResult};
use super::super::record::Record;

impl Engine {
    pub(super) async fn maintenance_on(&self) -> StepResult {
        // `was_on` was recorded by the preflight; it is never re-read (it may be ours now).
        if self.cluster.maintenance().await? {
            return Ok(Done::Ok("already on".into()));
        }
        self.cluster.set_maintenance(true).await?;
        Ok(Done::Ok("turned on".into()))
    }

    /// Drains a node and waits until it runs no task, up to the shared deadline.
    pub(super) async fn drain(&self, n: &EngineNode) -> StepResult {
        let deadline = self.drain_deadline().await;
        let summary = self.cluster.nodes_summary().await?;
        let drained = summary
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(&n.info.name))
            .is_some_and(|s| s.is_in_maintenance_mode);
        if !drained {
            self.cluster.set_drain(&n.info.id, true).await?;
        }
        let mut poll = Poller::standard();
        let mut announced = false;
        loop {
            let (count, tasks) = self.running_on(n).await?;
            let ping = n.agent.ping().await;
            if count == 0 && tasks.is_empty() && !matches!(ping, Ping::Serving(_)) {
                return Ok(Done::Ok("drained; no task running".into()));
            }
            self.window_cuts(StepKind::Drain)?;
            if deadline.expired() {
                if !self.config.drain.cancel_tasks {
                    return Err(StepError::DrainDeadline {
                        deadline: human_duration(deadline.total()),
                        count: (count as usize).max(tasks.len()),
                        node: n.info.name.clone(),
                        tasks: describe_tasks(&tasks),
                    });
                }
                return self.cancel_and_wait(n, tasks).await;
            }
            if !announced {
                announced = true;
                self.events.note(&format!(
                    "{}: waiting for {} running task(s) to finish (up to {}): {}",
                    n.info.name,
                    count.max(tasks.len() as u32),
                    human_duration(deadline.remaining()),
                    describe_tasks(&tasks)
                ));
            }
            poll.wait(Some(&deadline)).await;
        }
    }

    /// Tasks executing on a node: the summary's count and the task list.
    async fn running_on(&self, n: &EngineNode) -> Result<(u32, Vec<TaskResource>), StepError> {
        let summary = self.cluster.nodes_summary().await?;
        let count = summary
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(&n.info.name))
            .map(|s| s.running_task_count)
            .unwrap_or(0);
        let tasks = self.cluster.running_tasks(&n.info.id).await?;
        Ok((count, tasks))
    }

    async fn cancel_and_wait(&self, n: &EngineNode, tasks: Vec<TaskResource>) -> StepResult {
        self.events.note(&format!(
            "{}: drain deadline reached; cancelling {} task(s) ([drain] cancel_tasks = true): {}",
            n.info.name,
            tasks.len(),
            describe_tasks(&tasks)
        ));
        for t in &tasks {
            self.cluster
                .cancel_task(&t.id)
                .await
                .map_err(|source| StepError::Cancel {
                    task: t.id.clone(),
                    source,
                })?;
        }
        self.record(
            &StepId::on(StepKind::Drain, &n.info.name),
            Record::Canceled(tasks.iter().map(|t| t.id.clone()).collect()),
        )?;
        let bound = Deadline::after(Duration::from_secs(self.config.timeouts.command));
        let mut poll = Poller::standard();
        loop {
            let (count, left) = self.running_on(n).await?;
            if count == 0 && left.is_empty() {
                return Ok(Done::Ok(format!(
                    "drained; canceled {} task(s) at the deadline",
                    tasks.len()
                )));
            }
            self.window_cuts(StepKind::Drain)?;
            if bound.expired() {
                return Err(StepError::CancelledTasksRun {
                    count: left.len().max(count as usize),
                    node: n.info.name.clone(),
                    waited: human_duration(bound.total()),
                    tasks: describe_tasks(&left),
                });
            }
            poll.wait(Some(&bound)).await;
        }
    }

    pub(super) async fn delete_watchdog(&self, n: &EngineNode) -> StepResult {
        let id = StepId::on(StepKind::DeleteWatchdog, &n.info.name);
        let existed = self.recorded(&id, |s| s.existed()).unwrap_or(false);
        let now_on = n.agent.watchdog().await?.enabled;
        if !existed && !now_on {
            return Ok(Done::Skipped("no watchdog".into()));
        }
        if now_on {
            let hook = self.launch_hook(&id)?;
            n.agent.watched(NodeCommand::DeleteWatchdog, hook).await?;
        }
        Ok(Done::Ok("deleted (recreated after the upgrade)".into()))
    }

    pub(super) async fn stop(&self, n: &EngineNode) -> StepResult {
        self.outage_begins()?;
        let was_up = n.agent.ping().await.is_up();
        // Found stopped (a resume after a crash): the service command confirms it, a no-op
        // on a stopped service.
        let hook = self.launch_hook(&StepId::on(StepKind::Stop, &n.info.name))?;
        n.agent.watched(NodeCommand::Stop, hook).await?;
        Ok(Done::Ok(
            if was_up {
                "stopped; the node no longer answers"
            } else {
                "stopped"
            }
            .into(),
        ))
    }
}

pub(crate) fn describe_tasks(tasks: &[TaskResource]) -> String {
    if tasks.is_empty() {
        return "(the task list is not available; the node summary counts them)".into();
    }
    tasks
        .iter()
        .map(|t| {
            format!(
                "{} \"{}\" ({})",
                t.id,
                if t.description.is_empty() {
                    &t.name
                } else {
                    &t.description
                },
                t.state
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
