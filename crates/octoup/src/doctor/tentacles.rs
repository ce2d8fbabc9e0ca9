//! `octoup verify --upgrade-tentacles`: the vendor's `Upgrade` task in batches, one machine
//! first (the canary), each batch waited for, then every machine's Tentacle version read
//! again, because an Upgrade task can report success after its installer failed
//! (OctopusDeploy/Issues#2468). A failed canary stops the rest.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::doctor::finding::{Finding, Findings};
use crate::doctor::integrity::{Waited, task_link, wait_for_task};
use crate::doctor::machines::listed;
use crate::octopus::api::OctopusApi;

/// What the upgrade needs of the server (the API in production, a fake in tests).
#[async_trait]
pub(crate) trait TentacleOps: Send + Sync {
    /// Starts an Upgrade of `machine_ids` in a space; the task's id and page.
    async fn start(
        &self,
        space_id: &str,
        machine_ids: &[String],
    ) -> Result<(String, String), String>;
    /// Waits for the task; its final state (or why it did not end).
    async fn wait(&self, task_id: &str) -> Result<String, String>;
    /// The machine's Tentacle version now.
    async fn version(&self, space_id: &str, machine_id: &str) -> Result<Option<String>, String>;
}

/// A machine whose Tentacle needs an upgrade.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    pub space_id: String,
    pub space: String,
    pub id: String,
    pub name: String,
    pub before: Option<String>,
}

/// One machine's upgrade, as it turned out.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UpgradedMachine {
    pub space: String,
    pub name: String,
    pub id: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub task: Option<String>,
    /// The task's final state (`Success`, `Failed`, …) or why it has none.
    pub task_state: String,
    /// The version changed: the only proof that the installer worked.
    pub upgraded: bool,
    pub canary: bool,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TentacleUpgrade {
    pub machines: Vec<UpgradedMachine>,
    /// The canary failed: these machines were not attempted.
    pub not_attempted: Vec<String>,
}

/// The canary (the first machine) alone, then the rest per space in batches of `size`.
pub(crate) fn batches(candidates: &[Candidate], size: usize) -> Vec<Vec<Candidate>> {
    let Some((canary, rest)) = candidates.split_first() else {
        return Vec::new();
    };
    let mut out = vec![vec![canary.clone()]];
    let mut spaces: Vec<&str> = Vec::new();
    for c in rest {
        if !spaces.contains(&c.space_id.as_str()) {
            spaces.push(&c.space_id);
        }
    }
    for space in spaces {
        let in_space: Vec<Candidate> = rest
            .iter()
            .filter(|c| c.space_id == space)
            .cloned()
            .collect();
        out.extend(in_space.chunks(size.max(1)).map(<[Candidate]>::to_vec));
    }
    out
}

pub(crate) async fn upgrade(
    ops: &dyn TentacleOps,
    candidates: &[Candidate],
    size: usize,
) -> (TentacleUpgrade, Findings) {
    let mut result = TentacleUpgrade::default();
    let mut links = Vec::new();
    for (i, batch) in batches(candidates, size).into_iter().enumerate() {
        let canary = i == 0;
        let ids: Vec<String> = batch.iter().map(|c| c.id.clone()).collect();
        let space = &batch[0].space_id;
        let (task, state) = match ops.start(space, &ids).await {
            Ok((task, link)) => {
                links.push(link);
                let state = ops.wait(&task).await.unwrap_or_else(|e| e);
                (Some(task), state)
            }
            Err(e) => (None, format!("not started: {e}")),
        };
        let mut batch_ok = true;
        for c in &batch {
            // A version that cannot be read again is no proof of an upgrade.
            let after = ops.version(&c.space_id, &c.id).await.ok().flatten();
            let upgraded = after.is_some() && after != c.before;
            batch_ok &= upgraded;
            result.machines.push(UpgradedMachine {
                space: c.space.clone(),
                name: c.name.clone(),
                id: c.id.clone(),
                before: c.before.clone(),
                after,
                task: task.clone(),
                task_state: state.clone(),
                upgraded,
                canary,
            });
        }
        if canary && !batch_ok {
            result.not_attempted = candidates[1..].iter().map(|c| c.name.clone()).collect();
            break;
        }
    }
    let findings = findings(&result, links.first().cloned());
    (result, findings)
}

fn findings(result: &TentacleUpgrade, link: Option<String>) -> Findings {
    let mut out = Findings::default();
    let failed: Vec<&UpgradedMachine> = result.machines.iter().filter(|m| !m.upgraded).collect();
    let done = result.machines.len() - failed.len();
    if done > 0 {
        out.push(Finding::info(
            "verify.tentacle-upgrade.done",
            format!(
                "{done} Tentacle(s) upgraded: {}",
                listed(
                    result
                        .machines
                        .iter()
                        .filter(|m| m.upgraded)
                        .map(|m| (m.space.as_str(), m.name.as_str()))
                )
            ),
        ));
    }
    if failed.is_empty() {
        return out;
    }
    let detail = failed
        .iter()
        .take(crate::doctor::machines::MAX_LISTED)
        .map(|m| {
            format!(
                "{} ({}: task {} {}, Tentacle still {})",
                m.name,
                m.space,
                m.task.as_deref().unwrap_or("-"),
                m.task_state,
                m.after
                    .as_deref()
                    .or(m.before.as_deref())
                    .unwrap_or("unknown")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let mut found = format!(
        "{} machine(s) still run the old Tentacle after the Upgrade task: {detail}",
        failed.len()
    );
    if failed.len() > crate::doctor::machines::MAX_LISTED {
        found.push_str(&format!(
            " (and {} more)",
            failed.len() - crate::doctor::machines::MAX_LISTED
        ));
    }
    if !result.not_attempted.is_empty() {
        found.push_str(&format!(
            "; the canary failed, so {} other machine(s) were not attempted",
            result.not_attempted.len()
        ));
    }
    let mut f = Finding::blocker(
        "verify.tentacle-upgrade",
        found,
        "an Upgrade task can report success after the Tentacle installer failed (OctopusDeploy/Issues#2468); octoup read each version again",
        "open the task's log and the machine's Tentacle log, fix the cause (often the installer on the machine), then run `octoup verify --upgrade-tentacles` again",
    );
    if let Some(link) = link {
        f = f.with_link(link);
    }
    out.push(f);
    out
}

/// The production [`TentacleOps`]: the API, each task waited for up to `timeout`.
pub(crate) struct ApiTentacles<'a> {
    pub api: &'a OctopusApi,
    pub timeout: Duration,
}

#[async_trait]
impl TentacleOps for ApiTentacles<'_> {
    async fn start(
        &self,
        space_id: &str,
        machine_ids: &[String],
    ) -> Result<(String, String), String> {
        let description = format!(
            "octoup: upgrade Tentacle on {} machine(s)",
            machine_ids.len()
        );
        let task = self
            .api
            .create_tentacle_upgrade(space_id, &description, machine_ids)
            .await
            .map_err(|e| e.to_string())?;
        let link = task_link(self.api, &task);
        Ok((task.id, link))
    }

    async fn wait(&self, task_id: &str) -> Result<String, String> {
        let task = self.api.task(task_id).await.map_err(|e| e.to_string())?;
        match wait_for_task(self.api, task, self.timeout).await {
            Ok(Waited::Final(t)) => Ok(t.state),
            Ok(Waited::TimedOut(t)) => Err(format!(
                "still {} after {} s ([doctor] tentacle_timeout_seconds)",
                t.state,
                self.timeout.as_secs()
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn version(&self, space_id: &str, machine_id: &str) -> Result<Option<String>, String> {
        let m = self
            .api
            .machine(space_id, machine_id)
            .await
            .map_err(|e| e.to_string())?;
        Ok(m.tentacle_version().map(str::to_string))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;
    use crate::doctor::finding::Severity;

    /// Machines by id: (version now, what an upgrade does: "ok" | "silent-fail" | "fail").
    struct Fake {
        machines: Mutex<BTreeMap<String, (String, &'static str)>>,
        started: Mutex<Vec<Vec<String>>>,
    }

    impl Fake {
        fn new(machines: &[(&str, &'static str)]) -> Fake {
            Fake {
                machines: Mutex::new(
                    machines
                        .iter()
                        .map(|(id, how)| (id.to_string(), ("6.3.605".to_string(), *how)))
                        .collect(),
                ),
                started: Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait]
    impl TentacleOps for Fake {
        async fn start(&self, _space: &str, ids: &[String]) -> Result<(String, String), String> {
            let mut started = self.started.lock().unwrap();
            started.push(ids.to_vec());
            let mut machines = self.machines.lock().unwrap();
            let mut failed = false;
            for id in ids {
                let m = machines.get_mut(id).unwrap();
                match m.1 {
                    "ok" => m.0 = "8.1.2".into(),
                    "fail" => failed = true,
                    _ => {}
                }
            }
            let n = started.len();
            let id = format!("ServerTasks-{n}{}", if failed { "F" } else { "" });
            Ok((id.clone(), format!("http://x/app#/tasks/{id}")))
        }
        async fn wait(&self, task: &str) -> Result<String, String> {
            Ok(if task.ends_with('F') {
                "Failed"
            } else {
                "Success"
            }
            .into())
        }
        async fn version(&self, _space: &str, id: &str) -> Result<Option<String>, String> {
            Ok(Some(self.machines.lock().unwrap()[id].0.clone()))
        }
    }

    fn candidates(ids: &[(&str, &str)]) -> Vec<Candidate> {
        ids.iter()
            .map(|(space, id)| Candidate {
                space_id: format!("Spaces-{space}"),
                space: space.to_string(),
                id: id.to_string(),
                name: format!("{id}-name"),
                before: Some("6.3.605".into()),
            })
            .collect()
    }

    #[test]
    fn a_canary_of_one_then_batches_per_space() {
        let c = candidates(&[("1", "a"), ("1", "b"), ("2", "c"), ("1", "d"), ("1", "e")]);
        let ids: Vec<Vec<String>> = batches(&c, 2)
            .iter()
            .map(|b| b.iter().map(|c| c.id.clone()).collect())
            .collect();
        assert_eq!(ids, [vec!["a"], vec!["b", "d"], vec!["e"], vec!["c"]]);
        assert!(batches(&[], 3).is_empty());
    }

    #[tokio::test]
    async fn a_task_that_reports_success_without_upgrading_is_a_finding() {
        let fake = Fake::new(&[("a", "ok"), ("b", "silent-fail"), ("c", "ok")]);
        let (r, f) = upgrade(&fake, &candidates(&[("1", "a"), ("1", "b"), ("1", "c")]), 5).await;
        assert_eq!(fake.started.lock().unwrap().len(), 2);
        let b = r.machines.iter().find(|m| m.id == "b").unwrap();
        assert_eq!(b.task_state, "Success");
        assert!(!b.upgraded);
        assert!(
            r.machines
                .iter()
                .filter(|m| m.id != "b")
                .all(|m| m.upgraded)
        );
        let blocker = f.blockers().next().unwrap();
        assert_eq!(blocker.id, "verify.tentacle-upgrade");
        assert!(
            blocker.found.contains("b-name") && blocker.found.contains("Success"),
            "{}",
            blocker.found
        );
        assert!(blocker.found.contains("still 6.3.605"), "{}", blocker.found);
        assert!(
            f.iter()
                .any(|f| f.id == "verify.tentacle-upgrade.done" && f.severity == Severity::Info)
        );
    }

    #[tokio::test]
    async fn a_failed_canary_stops_the_rest() {
        for how in ["fail", "silent-fail"] {
            let fake = Fake::new(&[("a", how), ("b", "ok"), ("c", "ok")]);
            let (r, f) =
                upgrade(&fake, &candidates(&[("1", "a"), ("1", "b"), ("1", "c")]), 5).await;
            assert_eq!(fake.started.lock().unwrap().len(), 1, "{how}");
            assert_eq!(r.not_attempted, ["b-name", "c-name"]);
            let blocker = f.blockers().next().unwrap();
            assert!(
                blocker.found.contains("the canary failed, so 2 other"),
                "{}",
                blocker.found
            );
        }
    }

    #[tokio::test]
    async fn all_upgraded_is_information_only() {
        let fake = Fake::new(&[("a", "ok"), ("b", "ok")]);
        let (r, f) = upgrade(&fake, &candidates(&[("1", "a"), ("2", "b")]), 1).await;
        assert!(r.machines.iter().all(|m| m.upgraded));
        assert!(r.machines[0].canary && !r.machines[1].canary);
        assert!(!f.has_blockers());
    }
}
