//! Spaces, deployment targets and workers (`/api/spaces/all`, `/api/{space}/machines`,
//! `/api/{space}/workers`) and the per-space environments summary that names the machines
//! whose Tentacle or Calamari needs an upgrade. Shapes follow OctopusClients'
//! `SpaceResource`, `MachineResource`/`WorkerResource` and `EnvironmentsSummaryResource`.

use axum::extract::{Path, State as AxState};
use axum::response::Response;
use serde_json::{Value, json};

use super::common::{NodeApi, ok};
use crate::server::http::ApiError;
use crate::state::{Machine, Space, State};

fn space_json(s: &Space) -> Value {
    json!({
        "Id": s.id,
        "Name": s.name,
        "Slug": s.name.to_lowercase().replace(' ', "-"),
        "Description": Value::Null,
        "IsDefault": s.id == "Spaces-1",
        "TaskQueueStopped": false,
        "SpaceManagersTeams": ["teams-administrators"],
        "SpaceManagersTeamMembers": [],
        "Links": {
            "Self": format!("/api/spaces/{}", s.id),
            "SpaceHome": format!("/api/{}", s.id),
            "Web": format!("/app#/spaces/{}", s.id),
        },
    })
}

fn machine_json(state: &State, m: &Machine) -> Value {
    let kind = if m.is_worker() { "workers" } else { "machines" };
    let needs = state.needs_tentacle_upgrade(m);
    let mut body = json!({
        "Id": m.id,
        "SpaceId": m.space_id,
        "Name": m.name,
        "Thumbprint": "8A7E6157A34158EDA1B5127CB027B2A267760A4F",
        "Uri": format!("https://{}:10933/", m.name.to_lowercase()),
        "IsDisabled": false,
        "MachinePolicyId": "MachinePolicies-1",
        "HealthStatus": "Healthy",
        "HasLatestCalamari": m.calamari_current,
        "StatusSummary": "Octopus was able to successfully establish a connection with this machine.",
        "IsInProcess": false,
        "OperatingSystem": m.os,
        "OperatingSystemVersion": m.os_version,
        "ShellName": "PowerShell",
        "ShellVersion": "5.1.17763.1",
        "Architecture": "x64",
        "Endpoint": {
            "CommunicationStyle": "TentaclePassive",
            "Uri": format!("https://{}:10933/", m.name.to_lowercase()),
            "Thumbprint": "8A7E6157A34158EDA1B5127CB027B2A267760A4F",
            "TentacleVersionDetails": {
                "UpgradeLocked": false,
                "Version": m.tentacle_version,
                "UpgradeSuggested": needs,
                "UpgradeRequired": false,
                "UpgradeAvailable": needs,
            },
            "Id": Value::Null,
            "Links": {},
        },
        "Links": {
            "Self": format!("/api/{}/{kind}/{}", m.space_id, m.id),
            "Web": format!("/app#/{}/infrastructure/{kind}/{}", m.space_id, m.id),
        },
    });
    if m.is_worker() {
        body["WorkerPoolIds"] = json!(["WorkerPools-1"]);
    } else {
        body["EnvironmentIds"] = json!(["Environments-1"]);
        body["Roles"] = json!(["web-server"]);
        body["TenantedDeploymentParticipation"] = "Untenanted".into();
        body["TenantIds"] = json!([]);
        body["TenantTags"] = json!([]);
    }
    body
}

/// `GET /api/spaces/all`: a bare array.
pub(super) async fn spaces(AxState(api): AxState<NodeApi>) -> Result<Response, ApiError> {
    let state = api.state().await?;
    Ok(ok(state.spaces.iter().map(space_json).collect()))
}

fn in_space<'a>(state: &'a State, space: &str) -> Result<&'a Space, ApiError> {
    state.space(space).ok_or_else(ApiError::not_found)
}

fn all(state: &State, space: &str, workers: bool) -> Result<Response, ApiError> {
    let space = in_space(state, space)?;
    Ok(ok(state
        .machines
        .iter()
        .filter(|m| m.space_id == space.id && m.is_worker() == workers)
        .map(|m| machine_json(state, m))
        .collect()))
}

fn one(state: &State, space: &str, id: &str, workers: bool) -> Result<Response, ApiError> {
    let space = in_space(state, space)?;
    state
        .machines
        .iter()
        .find(|m| m.space_id == space.id && m.is_worker() == workers && m.id == id)
        .map(|m| ok(machine_json(state, m)))
        .ok_or_else(ApiError::not_found)
}

/// `GET /api/{space}/machines/all`: the space's deployment targets, a bare array.
pub(super) async fn targets(
    AxState(api): AxState<NodeApi>,
    Path(space): Path<String>,
) -> Result<Response, ApiError> {
    all(&api.state().await?, &space, false)
}

pub(super) async fn workers(
    AxState(api): AxState<NodeApi>,
    Path(space): Path<String>,
) -> Result<Response, ApiError> {
    all(&api.state().await?, &space, true)
}

pub(super) async fn target(
    AxState(api): AxState<NodeApi>,
    Path((space, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    one(&api.state().await?, &space, &id, false)
}

pub(super) async fn worker(
    AxState(api): AxState<NodeApi>,
    Path((space, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    one(&api.state().await?, &space, &id, true)
}

/// `GET /api/{space}/environments/summary`: counts, and the machines (targets and workers)
/// whose Tentacle or Calamari is behind the server's.
pub(super) async fn environments_summary(
    AxState(api): AxState<NodeApi>,
    Path(space): Path<String>,
) -> Result<Response, ApiError> {
    let state = api.state().await?;
    let space = in_space(&state, &space)?;
    let machines: Vec<&Machine> = state
        .machines
        .iter()
        .filter(|m| m.space_id == space.id)
        .collect();
    let tentacle: Vec<&str> = machines
        .iter()
        .filter(|m| state.needs_tentacle_upgrade(m))
        .map(|m| m.id.as_str())
        .collect();
    let calamari: Vec<&str> = machines
        .iter()
        .filter(|m| !m.calamari_current)
        .map(|m| m.id.as_str())
        .collect();
    let targets = machines.iter().filter(|m| !m.is_worker()).count();
    Ok(ok(json!({
        "MachineHealthStatusSummaries": {
            "Healthy": machines.len(), "HasWarnings": 0, "Unhealthy": 0, "Unavailable": 0, "Unknown": 0,
        },
        "MachineEndpointSummaries": { "TentaclePassive": machines.len() },
        "MachineTenantSummaries": {},
        "MachineTenantTagSummaries": {},
        "MachineIdsForCalamariUpgrade": calamari,
        "MachineIdsForTentacleUpgrade": tentacle,
        "TentacleUpgradesRequired": false,
        "TotalMachines": targets,
        "TotalDisabledMachines": 0,
        "EnvironmentSummaries": [{
            "Environment": { "Id": "Environments-1", "Name": "Production", "SpaceId": space.id },
            "TotalMachines": targets,
            "TotalDisabledMachines": 0,
            "MachineHealthStatusSummaries": { "Healthy": targets },
            "MachineEndpointSummaries": { "TentaclePassive": targets },
            "MachineTenantSummaries": {},
            "MachineTenantTagSummaries": {},
            "TentacleUpgradesRequired": false,
            "MachineIdsForCalamariUpgrade": calamari,
        }],
    })))
}
