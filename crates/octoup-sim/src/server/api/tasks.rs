//! `/api/tasks`: the task list with Octopus's filters and `TotalCounts`, one task, and
//! cancel (Executing → Cancelling, which the workload turns into Canceled), and creating the
//! tasks octoup starts (the System Integrity Check, a space's Tentacle `Upgrade`).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::StatusCode;
use axum::response::Response;
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::common::{NodeApi, Page, object_body, ok, property, timestamp};
use super::query::Query;
use crate::clock::Clock;
use crate::history::Event;
use crate::server::http::{ApiError, json_response};
use crate::state::{State, Task, TaskState, node_id};

const BASE: &str = "/api/tasks";
const TEMPLATE: &str = "/api/tasks{/id}{?skip,active,environment,tenant,runbook,project,name,node,running,states,hasPendingInterruptions,hasWarningsOrErrors,take,ids,partialName,spaces,includeSystem,description,fromCompletedDate,toCompletedDate,fromQueueDate,toQueueDate,fromStartDate,toStartDate}";
const SPACE: &str = "Spaces-1";

/// Task types that belong to a project in a space; the rest are system tasks.
fn in_project(task: &Task) -> bool {
    matches!(task.name.as_str(), "Deploy" | "RunbookRun")
}

fn number(task: &Task) -> &str {
    task.id.rsplit('-').next().unwrap_or("0")
}

/// `"18 seconds"`, `"12 minutes"`, `"3 hours"`: how Octopus words a task's duration.
fn words(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    let (n, unit) = if s < 60 {
        (s, "second")
    } else if s < 3600 {
        (s / 60, "minute")
    } else {
        (s / 3600, "hour")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The task resource, field for field as Octopus sends it.
fn task_json(task: &Task, clock: &Clock, now: Timestamp) -> Value {
    let n = number(task);
    let project = in_project(task);
    let arguments = match task.name.as_str() {
        "Deploy" => json!({ "DeploymentId": format!("Deployments-{n}") }),
        "RunbookRun" => json!({ "RunbookRunId": format!("RunbookRuns-{n}") }),
        "Upgrade" => json!({ "MachineIds": task.machine_ids }),
        _ => json!({}),
    };
    let completed = match task.state {
        TaskState::Queued => "Queued...".to_string(),
        TaskState::Executing => "Executing...".to_string(),
        TaskState::Cancelling => "Cancelling...".to_string(),
        _ => task
            .completed_time
            .map(|t| t.strftime("%A, %-d %B %Y %-I:%M:%S %p +00:00").to_string())
            .unwrap_or_default(),
    };
    // Durations in simulated time, so a 30 s workload task reads "30 seconds".
    let since = |t: Timestamp| clock.sim_at(task.completed_time.unwrap_or(now)) - clock.sim_at(t);
    let duration = words(
        task.start_time
            .map(since)
            .unwrap_or_else(|| since(task.queue_time)),
    );
    let done = !task.state.is_active();
    let last_updated = task.completed_time.filter(|_| done).unwrap_or(now);
    let id = &task.id;
    json!({
        "Id": id,
        "SpaceId": match &task.space_id {
            Some(space) => Value::from(space.as_str()),
            None if project => Value::from(SPACE),
            None => Value::Null,
        },
        "EstimatedRemainingQueueDurationSeconds": 0,
        "Name": task.name,
        "Description": task.description,
        "Arguments": arguments,
        "State": task.state.as_str(),
        "Completed": completed,
        "QueueTime": timestamp(task.queue_time),
        "QueueTimeExpiry": Value::Null,
        "StartTime": task.start_time.map(timestamp),
        "LastUpdatedTime": timestamp(last_updated),
        "CompletedTime": task.completed_time.map(timestamp),
        "ServerNode": task.server_node_id(),
        "Duration": duration,
        "ErrorMessage": task.error_message,
        "HasBeenPickedUpByProcessor": task.start_time.is_some(),
        "IsCompleted": done,
        "FinishedSuccessfully": task.state == TaskState::Success,
        "HasPendingInterruptions": false,
        "HasPendingPreconditions": false,
        "CanRerun": done && task.name == "Deploy",
        "HasWarningsOrErrors": task.state == TaskState::Failed,
        "UnmetPreconditions": Value::Null,
        "ProjectId": if project { Value::from("Projects-1") } else { Value::Null },
        "Links": {
            "Self": format!("{BASE}/{id}"),
            "Web": format!("/app#/{SPACE}/tasks/{id}"),
            "Raw": format!("{BASE}/{id}/raw"),
            "Rerun": format!("{BASE}/rerun/{id}"),
            "Cancel": format!("{BASE}/{id}/cancel"),
            "State": format!("{BASE}/{id}/state"),
            "BlockedBy": format!("{BASE}/{id}/blockedby"),
            "QueuedBehind": format!("{BASE}/{id}/queued-behind{{?skip,take}}"),
            "Details": format!("{BASE}/{id}/details{{?verbose,tail,ranges}}"),
            "StatusMessages": format!("{BASE}/{id}/status/messages"),
            "Prioritize": format!("{BASE}/{id}/prioritize"),
            "Artifacts": format!("/api/{SPACE}/artifacts?regarding={id}"),
            "Interruptions": format!("/api/{SPACE}/interruptions?regarding={id}"),
        },
    })
}

/// The filters of `GET /api/tasks` other than the state ones.
struct Filter {
    ids: Vec<String>,
    names: Vec<String>,
    /// Node Ids or bare names.
    nodes: Vec<String>,
    partial_name: Option<String>,
    space: Option<String>,
}

impl Filter {
    fn from_query(q: &Query, space: Option<String>) -> Filter {
        Filter {
            ids: q.list("ids"),
            names: q.list("name"),
            nodes: q.list("node"),
            partial_name: q.get("partialName").map(str::to_lowercase),
            space,
        }
    }

    fn matches(&self, task: &Task) -> bool {
        let any = |list: &[String], value: &str| {
            list.is_empty() || list.iter().any(|x| x.eq_ignore_ascii_case(value))
        };
        let node_matches = self.nodes.is_empty()
            || task.server_node.as_deref().is_some_and(|name| {
                let id = node_id(name);
                self.nodes
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(&id) || n.eq_ignore_ascii_case(name))
            });
        any(&self.ids, &task.id)
            && any(&self.names, &task.name)
            && node_matches
            && self
                .partial_name
                .as_deref()
                .is_none_or(|p| task.description.to_lowercase().contains(p))
            && self
                .space
                .as_deref()
                .is_none_or(|s| in_project(task) && s.eq_ignore_ascii_case(SPACE))
    }
}

/// `states`, `active`, `running`: which states a query keeps.
fn state_filter(q: &Query) -> Result<impl Fn(TaskState) -> bool + use<>, ApiError> {
    let mut states = Vec::new();
    for name in q.list("states") {
        match TaskState::ALL
            .iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(&name))
        {
            Some(s) => states.push(*s),
            // `New` exists in Octopus's enum but no simulated task is ever in it.
            None if name.eq_ignore_ascii_case("New") => {}
            None => {
                return Err(ApiError::invalid(vec![format!(
                    "'{name}' is not a valid task state; use one of New, Queued, Executing, Cancelling, Success, Failed, Canceled, TimedOut."
                )]));
            }
        }
    }
    let states_given = !q.list("states").is_empty();
    let active = q.flag("active") == Some(true);
    let running = q.flag("running") == Some(true);
    Ok(move |s: TaskState| {
        (!states_given || states.contains(&s))
            && (!active || s.is_active())
            && (!running || s.is_running())
    })
}

async fn list_tasks(
    api: NodeApi,
    raw: Option<String>,
    space: Option<String>,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    let page = Page::from_query(&q)?;
    let keep_state = state_filter(&q)?;
    let filter = Filter::from_query(&q, space.clone());
    let state = api.state().await?;
    let clock = state.clock();
    let now = Timestamp::now();

    // Newest first, as Octopus lists tasks.
    let mut matching: Vec<&Task> = state
        .database
        .tasks
        .iter()
        .filter(|t| filter.matches(t))
        .collect();
    matching.sort_by(|a, b| {
        b.queue_time
            .cmp(&a.queue_time)
            .then_with(|| b.id.cmp(&a.id))
    });

    // TotalCounts: per state over everything the other filters match.
    let mut counts = Map::new();
    for s in TaskState::ALL {
        let n = matching.iter().filter(|t| t.state == s).count();
        counts.insert(s.as_str().to_string(), n.into());
    }
    let items = matching
        .into_iter()
        .filter(|t| keep_state(t.state))
        .map(|t| task_json(t, &clock, now))
        .collect();
    let base = match &space {
        Some(space) => format!("/api/{space}/tasks"),
        None => BASE.to_string(),
    };
    let mut envelope = page.envelope("Task", items, &base, TEMPLATE, &q.filters());
    envelope.insert("TotalCounts".into(), counts.into());
    envelope.insert("TotalCountsInOtherSpaces".into(), json!({}));
    Ok(ok(envelope.into()))
}

pub(super) async fn list(
    AxState(api): AxState<NodeApi>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    list_tasks(api, raw, None).await
}

/// `GET /api/{spaceId}/tasks`: the tasks of one space (only `Spaces-1` exists).
pub(super) async fn list_in_space(
    AxState(api): AxState<NodeApi>,
    Path(space): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    if !space.to_ascii_lowercase().starts_with("spaces-") {
        return Err(ApiError::not_found());
    }
    list_tasks(api, raw, Some(space)).await
}

pub(super) async fn get_one(
    AxState(api): AxState<NodeApi>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let state = api.state().await?;
    let task = find(&state, &id)?;
    Ok(ok(task_json(task, &state.clock(), Timestamp::now())))
}

/// `POST /api/tasks`: a system task. octoup-sim runs `SystemIntegrityCheck`; other task
/// types are refused as Octopus refuses an unknown one.
pub(super) async fn create(
    AxState(api): AxState<NodeApi>,
    body: Bytes,
) -> Result<Response, ApiError> {
    create_task(api, None, &body).await
}

/// `POST /api/{spaceId}/tasks`: a space's task; octoup-sim runs the Tentacle `Upgrade`
/// (`Arguments.MachineIds`).
pub(super) async fn create_in_space(
    AxState(api): AxState<NodeApi>,
    Path(space): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    create_task(api, Some(space), &body).await
}

async fn create_task(
    api: NodeApi,
    space: Option<String>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let body = object_body(body)?;
    let text = |name: &str| {
        property(&body, name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let name = text("Name");
    let description = text("Description");
    let machine_ids: Vec<String> = property(&body, "Arguments")
        .and_then(Value::as_object)
        .and_then(|a| property(a, "MachineIds"))
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let (task, clock) = api
        .shared
        .update(move |s| {
            let id = match (name.as_str(), &space) {
                ("SystemIntegrityCheck", None) => s.queue_integrity_check(if description.is_empty() {
                    "Check the integrity of the database"
                } else {
                    &description
                }),
                ("Upgrade", Some(space)) => {
                    let space_id = s.space(space).ok_or_else(ApiError::not_found)?.id.clone();
                    if machine_ids.is_empty() {
                        return Err(ApiError::invalid(vec![
                            "Please specify at least one machine to upgrade.".to_string(),
                        ]));
                    }
                    if let Some(unknown) = machine_ids
                        .iter()
                        .find(|id| !s.machines.iter().any(|m| &m.id == *id && m.space_id == space_id))
                    {
                        return Err(ApiError::invalid(vec![format!(
                            "The machine {unknown} does not exist in {space_id}."
                        )]));
                    }
                    let description = if description.is_empty() {
                        "Upgrade Tentacle".to_string()
                    } else {
                        description.clone()
                    };
                    s.queue_tentacle_upgrade(&space_id, &description, machine_ids.clone())
                }
                ("", _) => {
                    return Err(ApiError::invalid(vec![
                        "The Name field is required.".to_string(),
                    ]));
                }
                (other, _) => {
                    return Err(ApiError::invalid(vec![format!(
                        "The task '{other}' cannot be created here (octoup-sim runs SystemIntegrityCheck and a space's Upgrade)."
                    )]));
                }
            };
            Ok::<_, ApiError>((find(s, &id)?.clone(), s.clock()))
        })
        .await?;
    Ok(json_response(
        StatusCode::CREATED,
        &task_json(&task, &clock, Timestamp::now()),
    ))
}

fn find<'a>(state: &'a State, id: &str) -> Result<&'a Task, ApiError> {
    state
        .database
        .tasks
        .iter()
        .find(|t| t.id.eq_ignore_ascii_case(id))
        .ok_or_else(ApiError::not_found)
}

/// `POST /api/tasks/{id}/cancel`: a queued task is canceled at once, an executing one goes
/// to Cancelling (the workload completes it); a finished task is returned unchanged.
pub(super) async fn cancel(
    AxState(api): AxState<NodeApi>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let by = api.by();
    let (task, clock) = api
        .shared
        .update(move |s| {
            let id = find(s, &id)?.id.clone();
            let now = Timestamp::now();
            let mut event = None;
            if let Some(t) = s.database.tasks.iter_mut().find(|t| t.id == id) {
                let next = match t.state {
                    TaskState::Queued => Some(TaskState::Canceled),
                    TaskState::Executing => Some(TaskState::Cancelling),
                    _ => None,
                };
                if let Some(next) = next {
                    t.state = next;
                    t.error_message = "The task was canceled.".to_string();
                    if next == TaskState::Canceled {
                        t.completed_time = Some(now);
                    }
                    event = Some(Event::TaskCanceled {
                        task_id: t.id.clone(),
                        node: t.server_node.clone(),
                        by,
                    });
                }
            }
            if let Some(event) = event {
                s.record(event);
            }
            let task = find(s, &id)?.clone();
            Ok::<_, ApiError>((task, s.clock()))
        })
        .await?;
    Ok(ok(task_json(&task, &clock, Timestamp::now())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_words() {
        assert_eq!(words(1.0), "1 second");
        assert_eq!(words(18.2), "18 seconds");
        assert_eq!(words(12.0 * 60.0 + 5.0), "12 minutes");
        assert_eq!(words(3.0 * 3600.0), "3 hours");
        assert_eq!(words(-4.0), "0 seconds");
    }

    #[test]
    fn state_filters() {
        let keep = state_filter(&Query::parse(Some("states=Executing,cancelling"))).unwrap();
        assert!(keep(TaskState::Executing) && keep(TaskState::Cancelling));
        assert!(!keep(TaskState::Queued));
        let keep = state_filter(&Query::parse(Some("active=true"))).unwrap();
        assert!(keep(TaskState::Queued) && !keep(TaskState::Success));
        let keep = state_filter(&Query::parse(Some("running=true"))).unwrap();
        assert!(!keep(TaskState::Queued) && keep(TaskState::Cancelling));
        assert!(state_filter(&Query::parse(Some("states=Bogus"))).is_err());
    }
}
