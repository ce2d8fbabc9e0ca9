//! The System Integrity Check: Octopus compares the live schema with the one it expects.
//! octoup starts the task (`POST /api/tasks {"Name": "SystemIntegrityCheck"}`: it changes
//! none of the installation's data) and waits for it, before the outage and after the start.

use std::time::Duration;

use crate::config::{DoctorConfig, IntegrityCheck};
use crate::doctor::finding::{Finding, Severity};
use crate::octopus::api::{OctopusApi, TaskResource};

/// How a task that octoup waited for ended.
pub(crate) enum Waited {
    Final(TaskResource),
    /// The deadline passed first; the task as last read.
    TimedOut(TaskResource),
}

/// Polls `GET /api/tasks/{id}` until the task is final or `timeout` passes.
pub(crate) async fn wait_for_task(
    api: &OctopusApi,
    task: TaskResource,
    timeout: Duration,
) -> Result<Waited, crate::octopus::api::ApiError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut task = task;
    let mut pause = Duration::from_millis(50);
    loop {
        if task.is_final() {
            return Ok(Waited::Final(task));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(Waited::TimedOut(task));
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_secs(2));
        task = api.task(&task.id).await?;
    }
}

/// The page of a task for a person: the server's address plus `Links.Web`, else the raw log.
pub(crate) fn task_link(api: &OctopusApi, task: &TaskResource) -> String {
    let link = |name: &str| {
        task.links
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split('{').next().unwrap_or(v).to_string())
            .filter(|v| !v.is_empty())
    };
    match link("Web").or_else(|| link("Raw")) {
        Some(path) if path.starts_with("http://") || path.starts_with("https://") => path,
        Some(path) => format!("{}{}", api.base(), path),
        None => format!("{}/api/tasks/{}", api.base(), task.id),
    }
}

/// Runs the check and reports a failure as `id` (`octopus.integrity` before the outage,
/// `verify.integrity` after the start); nothing when it passes or is turned off.
pub(crate) async fn check(
    api: &OctopusApi,
    config: &DoctorConfig,
    id: &str,
    when: &str,
) -> Option<Finding> {
    let severity = match config.integrity_check {
        IntegrityCheck::Off => return None,
        IntegrityCheck::Warning => Severity::Warning,
        IntegrityCheck::Blocker => Severity::Blocker,
    };
    let what = "the database schema (System Integrity Check)";
    let task = match api
        .create_task("SystemIntegrityCheck", &format!("octoup: {when}"))
        .await
    {
        Ok(t) => t,
        Err(e) => return Some(Finding::unchecked(id, what, e)),
    };
    let timeout = Duration::from_secs(config.integrity_timeout_seconds);
    let task = match wait_for_task(api, task, timeout).await {
        Ok(Waited::Final(t)) => t,
        Ok(Waited::TimedOut(t)) => {
            let link = task_link(api, &t);
            return Some(
                Finding::unchecked(
                    id,
                    what,
                    format!(
                        "task {} is still {} after {} s ([doctor] integrity_timeout_seconds)",
                        t.id, t.state, config.integrity_timeout_seconds
                    ),
                )
                .with_link(link),
            );
        }
        Err(e) => return Some(Finding::unchecked(id, what, e)),
    };
    if task.state == "Success" {
        return None;
    }
    let link = task_link(api, &task);
    let detail = if task.error_message.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", task.error_message.trim())
    };
    Some(
        Finding::new(
            id,
            severity,
            format!(
                "the System Integrity Check ({}) ended {}{detail}",
                task.id, task.state
            ),
            "the schema differs from the one this Octopus version expects; the database upgrade can fail on it, or leave it broken",
            "open the task's log, then fix the differences (Octopus support can help) and run the check again in Configuration → Diagnostics",
        )
        .with_link(link),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::octopus::http::{HttpClient, NetworkSettings};

    fn api() -> OctopusApi {
        let http = HttpClient::new(NetworkSettings::default()).unwrap();
        OctopusApi::new(
            http,
            "http://127.0.0.1:8080/",
            Secret::new("API-X"),
            Duration::from_secs(1),
        )
    }

    #[test]
    fn the_link_is_the_web_page_else_the_raw_log() {
        let mut t = TaskResource {
            id: "ServerTasks-7".into(),
            ..Default::default()
        };
        assert_eq!(
            task_link(&api(), &t),
            "http://127.0.0.1:8080/api/tasks/ServerTasks-7"
        );
        t.links
            .insert("Raw".into(), "/api/tasks/ServerTasks-7/raw".into());
        assert_eq!(
            task_link(&api(), &t),
            "http://127.0.0.1:8080/api/tasks/ServerTasks-7/raw"
        );
        t.links
            .insert("Web".into(), "/app#/Spaces-1/tasks/ServerTasks-7".into());
        assert_eq!(
            task_link(&api(), &t),
            "http://127.0.0.1:8080/app#/Spaces-1/tasks/ServerTasks-7"
        );
    }

    #[test]
    fn final_states() {
        let t = |s: &str| TaskResource {
            state: s.into(),
            ..Default::default()
        };
        for s in ["Success", "Failed", "Canceled", "TimedOut"] {
            assert!(t(s).is_final(), "{s}");
        }
        for s in ["Queued", "Executing", "Cancelling", "New", ""] {
            assert!(!t(s).is_final(), "{s}");
        }
    }
}
