//! `/api/octopusservernodes`: the node list, one node (GET and PUT: drain and task cap),
//! the cluster summary, per-node ping and running-task details.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State as AxState};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::common::{NodeApi, Page, bool_property, object_body, ok, property, timestamp};
use super::query::Query;
use crate::server::http::{ApiError, json_response};
use crate::state::{Node, State};

const BASE: &str = "/api/octopusservernodes";
const TEMPLATE: &str = "/api/octopusservernodes{?skip,take,ids,partialName}";

fn self_link(node: &Node) -> String {
    format!("{BASE}/{}", node.id())
}

/// The node resource (3b).
fn node_json(node: &Node) -> Value {
    json!({
        "Id": node.id(),
        "Name": node.name,
        "MaxConcurrentTasks": node.max_concurrent_tasks,
        "IsInMaintenanceMode": node.drain,
        "Links": {
            "Self": self_link(node),
            "Details": format!("{}/details", self_link(node)),
        },
    })
}

/// When the node last checked in, and whether that is too long ago: a stopped node goes
/// offline once it has been silent for `node_stale_after` simulated seconds.
fn last_seen(state: &State, node: &Node) -> (String, bool) {
    let now = state.now_sim();
    let seen = node.last_seen(now);
    let offline = now - seen > state.durations.node_stale_after;
    (timestamp(state.clock().real_at(seen)), offline)
}

/// One node of the summary (3d). `version`: what the node registered when it last started.
fn summary_json(state: &State, node: &Node, version: &str) -> Value {
    let (seen, offline) = last_seen(state, node);
    json!({
        "Id": node.id(),
        "Name": node.name,
        "MaxConcurrentTasks": node.max_concurrent_tasks,
        "IsInMaintenanceMode": node.drain,
        "LastSeen": seen,
        "IsOffline": offline,
        "RunningTaskCount": node.running_tasks(&state.database.tasks),
        "Version": version,
        "MaxSqlConnectionPoolSize": 100,
        "RecommendedMaxSqlConnectionPoolSize": 100,
        "Links": { "Node": self_link(node) },
    })
}

fn find<'a>(state: &'a State, id: &str) -> Result<&'a Node, ApiError> {
    state
        .nodes
        .iter()
        .find(|n| n.id().eq_ignore_ascii_case(id))
        .ok_or_else(ApiError::not_found)
}

pub(super) async fn list(
    AxState(api): AxState<NodeApi>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    let page = Page::from_query(&q)?;
    let ids = q.list("ids");
    let partial = q.get("partialName").map(str::to_lowercase);
    let state = api.state().await?;
    let items = state
        .nodes
        .iter()
        .filter(|n| ids.is_empty() || ids.iter().any(|id| id.eq_ignore_ascii_case(&n.id())))
        .filter(|n| {
            partial
                .as_deref()
                .is_none_or(|p| n.name.to_lowercase().contains(p))
        })
        .map(node_json)
        .collect();
    let envelope = page.envelope("OctopusServerNode", items, BASE, TEMPLATE, &q.filters());
    Ok(ok(envelope.into()))
}

/// `GET /api/octopusservernodes/all`: a bare array.
pub(super) async fn all(AxState(api): AxState<NodeApi>) -> Result<Response, ApiError> {
    let state = api.state().await?;
    Ok(ok(state.nodes.iter().map(node_json).collect()))
}

pub(super) async fn get_one(
    AxState(api): AxState<NodeApi>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let state = api.state().await?;
    Ok(ok(node_json(find(&state, &id)?)))
}

/// `PUT /api/octopusservernodes/{id}`: `IsInMaintenanceMode` drains or undrains the node,
/// `MaxConcurrentTasks` sets its task cap; other fields are read-only and ignored.
pub(super) async fn put_one(
    AxState(api): AxState<NodeApi>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = object_body(&body)?;
    let drain = bool_property(&body, "IsInMaintenanceMode")?;
    let cap = match property(&body, "MaxConcurrentTasks") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let n = v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .filter(|n| *n <= i32::MAX as u64);
            match n {
                Some(n) => Some(n as u32),
                None => {
                    return Err(ApiError::invalid(vec![format!(
                        "The value {v} is not valid for MaxConcurrentTasks; use a whole number of 0 or more."
                    )]));
                }
            }
        }
    };
    let by = api.by();
    let node = api
        .shared
        .update(move |s| {
            let name = find(s, &id)?.name.clone();
            if let Some(drain) = drain {
                s.set_drain(&name, drain, &by);
            }
            if let (Some(cap), Some(node)) = (cap, s.node_mut(&name)) {
                node.max_concurrent_tasks = cap;
            }
            Ok::<_, ApiError>(s.node(&name).map(node_json))
        })
        .await?;
    node.map(ok).ok_or_else(ApiError::not_found)
}

/// `PUT /api/octopusservernodes` (no Id in the path).
pub(super) async fn put_without_id() -> ApiError {
    ApiError::bad_request("No id parameter was provided.")
}

pub(super) async fn summary(AxState(api): AxState<NodeApi>) -> Result<Response, ApiError> {
    let state = api.state().await?;
    let nodes: Vec<Value> = state
        .nodes
        .iter()
        .map(|n| summary_json(&state, n, &api.shared.registered_version(n)))
        .collect();
    Ok(ok(json!({
        "Nodes": nodes,
        "Links": { "Self": format!("{BASE}/summary") },
    })))
}

/// The load-balancer probe: 200 when this node is online and not draining, 418 while it
/// drains; the body is always this node.
pub(super) async fn ping(AxState(api): AxState<NodeApi>) -> Result<Response, ApiError> {
    let state = api.state().await?;
    let node = state.node(&api.node).ok_or_else(ApiError::not_found)?;
    let (seen, offline) = last_seen(&state, node);
    let body = json!({
        "Id": node.id(),
        "Name": node.name,
        "LastSeen": seen,
        "IsOffline": offline,
        "MaxConcurrentTasks": node.max_concurrent_tasks,
        "IsInMaintenanceMode": node.drain,
        "Version": node.version(),
        "Links": { "Self": format!("{BASE}/ping"), "Node": self_link(node) },
    });
    let status = if node.drain || offline {
        StatusCode::IM_A_TEAPOT
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, &body))
}

/// `GET /api/octopusservernodes/{id}/details`: `{Id, RunningTasks, Links}`.
pub(super) async fn details(
    AxState(api): AxState<NodeApi>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let state = api.state().await?;
    let node = find(&state, &id)?;
    Ok(ok(json!({
        "Id": node.id(),
        "RunningTasks": node.running_tasks(&state.database.tasks),
        "Links": { "Self": format!("{}/details", self_link(node)) },
    })))
}
