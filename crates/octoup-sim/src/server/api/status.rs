//! The root document, maintenance mode, server status and health, system info, licenses.

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::common::{NodeApi, bool_property, object_body, ok, timestamp};
use crate::history::Event;
use crate::server::http::{ApiError, json_response};
use crate::state::{ServiceState, State};
use crate::version;

/// `GET /api` (anonymous). `IsEarlyAccessProgram` (OctopusClients' `RootResource`) is
/// left out when false, as Octopus's serializer does, and sent for an EAP build.
pub(super) async fn root(AxState(api): AxState<NodeApi>) -> Result<Response, ApiError> {
    let state = api.state().await?;
    let version = state
        .node(&api.node)
        .map(|n| n.version())
        .unwrap_or_default();
    let mut body = json!({
        "Application": "Octopus Deploy",
        "Version": version,
        "ApiVersion": "3.0.0",
        "InstallationId": state.installation_id,
        "HasLongTermSupport": true,
        "Links": {
            "Self": "/api",
            "CurrentUser": "/api/users/me",
            "CurrentLicense": "/api/licenses/licenses-current",
            "CurrentLicenseStatus": "/api/licenses/licenses-current-status",
            "CurrentLicenseUsage": "/api/licenses/licenses-current-usage",
            "MaintenanceConfiguration": "/api/maintenanceconfiguration",
            "OctopusServerClusterSummary": "/api/octopusservernodes/summary",
            "OctopusServerNodes": "/api/octopusservernodes{/id}{?skip,take,ids,partialName}",
            "ServerStatus": "/api/serverstatus",
            "ServerHealthStatus": "/api/serverstatus/health",
            "SpaceHome": "/api/{spaceId}",
            "Spaces": "/api/spaces{/id}{?skip,ids,take,partialName}",
            "Tasks": "/api/tasks{/id}{?skip,active,environment,tenant,runbook,project,name,node,running,states,hasPendingInterruptions,hasWarningsOrErrors,take,ids,partialName,spaces,includeSystem,description,fromCompletedDate,toCompletedDate,fromQueueDate,toQueueDate,fromStartDate,toStartDate}",
            "TaskTypes": "/api/tasks/tasktypes",
            "UpgradeConfiguration": "/api/upgradeconfiguration",
            "Users": "/api/users{/id}{?skip,take,ids,filter}",
            "Web": "/app",
        },
    });
    if state.server.early_access_program {
        body["IsEarlyAccessProgram"] = true.into();
    }
    Ok(ok(body))
}

fn maintenance_json(state: &State) -> Value {
    let m = &state.database.maintenance;
    let mut body = json!({
        "Id": "maintenance",
        "IsInMaintenanceMode": m.is_in_maintenance_mode,
        "Links": { "Self": "/api/maintenanceconfiguration" },
    });
    // Null base fields are left out, as Octopus does.
    if let Some(on) = m.last_modified_on {
        body["LastModifiedOn"] = timestamp(on).into();
    }
    if let Some(by) = &m.last_modified_by {
        body["LastModifiedBy"] = by.clone().into();
    }
    body
}

pub(super) async fn get_maintenance(AxState(api): AxState<NodeApi>) -> Result<Response, ApiError> {
    Ok(ok(maintenance_json(&api.state().await?)))
}

/// `PUT /api/maintenanceconfiguration`: `IsInMaintenanceMode` as a bool or `"true"`/`"false"`.
pub(super) async fn put_maintenance(
    AxState(api): AxState<NodeApi>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = object_body(&body)?;
    let Some(value) = bool_property(&body, "IsInMaintenanceMode")? else {
        return Err(ApiError::invalid(vec![
            "The IsInMaintenanceMode field is required.".to_string(),
        ]));
    };
    let by = api.by();
    let state = api
        .shared
        .update(move |s| {
            s.set_maintenance(value, &by);
            Ok::<_, ApiError>(s.clone())
        })
        .await?;
    Ok(ok(maintenance_json(&state)))
}

/// The newest version in the feed.
fn newest(state: &State) -> Option<&str> {
    state
        .feed
        .iter()
        .map(|e| e.version.as_str())
        .max_by(|a, b| version::compare(a, b))
}

/// `major.minor` of a version.
fn line(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

pub(super) async fn server_status(AxState(api): AxState<NodeApi>) -> Result<Response, ApiError> {
    let state = api.state().await?;
    let current = state
        .node(&api.node)
        .map(|n| n.version())
        .unwrap_or_default();
    let newest = newest(&state).unwrap_or(current);
    let upgrade = version::compare(newest, current).is_gt();
    Ok(ok(json!({
        "IsDatabaseEncrypted": true,
        "IsMajorMinorUpgrade": upgrade && line(newest) != line(current),
        "IsInMaintenanceMode": state.database.maintenance.is_in_maintenance_mode,
        "IsUpgradeAvailable": upgrade,
        "IsPotentialClone": false,
        "MaximumAvailableVersion": newest,
        "MaximumAvailableVersionCoveredByLicense": state.database.license.max_version_covered,
        "MaintenanceExpires": state.database.license.maintenance_expires,
        "Links": {
            "Self": "/api/serverstatus",
            "SystemInfo": "/api/serverstatus/system-info",
            "Health": "/api/serverstatus/health",
            "RecentLogs": "/api/serverstatus/logs",
            "GCCollect": "/api/serverstatus/gc-collect",
            "SystemReport": "/api/serverstatus/system-report",
        },
    })))
}

/// `GET /api/serverstatus/health` (anonymous): 200 when the cluster operates normally,
/// 418 with the same body when it is read-only (maintenance mode) or every node drains.
pub(super) async fn health(AxState(api): AxState<NodeApi>) -> Result<Response, ApiError> {
    let state = api.state().await?;
    let read_only = state.database.maintenance.is_in_maintenance_mode;
    let live: Vec<_> = state
        .nodes
        .iter()
        .filter(|n| n.service == ServiceState::Running)
        .collect();
    let draining = !live.is_empty() && live.iter().all(|n| n.drain);
    let normal = !read_only && !draining;
    let description = match (read_only, draining) {
        (false, false) => "Octopus Server is operating normally.",
        (true, false) => "The entire cluster is in maintenance mode.",
        (false, true) => "The entire cluster is draining tasks.",
        (true, true) => "The entire cluster is in maintenance mode and draining tasks.",
    };
    let body = json!({
        "IsOperatingNormally": normal,
        "Description": description,
        "IsEntireClusterReadOnly": read_only,
        "IsEntireClusterDrainingTasks": draining,
        "IsCompliantWithLicense": true,
        "Links": { "Self": "/api/serverstatus/health", "Index": "/api" },
    });
    let status = if normal {
        StatusCode::OK
    } else {
        StatusCode::IM_A_TEAPOT
    };
    Ok(json_response(status, &body))
}

/// `GET /api/serverstatus/system-info`: needs AdministerSystem, so it doubles as the cheap
/// "is this key an administrator" probe.
pub(super) async fn system_info(AxState(api): AxState<NodeApi>) -> Result<Response, ApiError> {
    let state = api.state().await?;
    let node = state.node(&api.node).ok_or_else(ApiError::not_found)?;
    let uptime = (state.now_sim() - node.service_changed_sim).max(0.0) as u64;
    Ok(ok(json!({
        "Version": node.version(),
        "OSVersion": state.server.os_version,
        "ClrVersion": "8.0.8",
        "WorkingSetBytes": 734_003_200u64,
        "ThreadCount": 97,
        "MinThreadPoolCount": 32,
        "Uptime": format!("{}.{:02}:{:02}:{:02}", uptime / 86_400, uptime / 3600 % 24, uptime / 60 % 60, uptime % 60),
        "Links": { "Self": "/api/serverstatus/system-info" },
    })))
}

/// `GET /api/licenses/licenses-current`: the license XML; recorded as `license-read`.
pub(super) async fn license(AxState(api): AxState<NodeApi>) -> Result<Response, ApiError> {
    let via = api.by();
    let state = api
        .shared
        .update(move |s| {
            s.record(Event::LicenseRead { via });
            Ok::<_, ApiError>(s.clone())
        })
        .await?;
    let license = &state.database.license;
    Ok(ok(json!({
        "Id": "licenses-current",
        "LicenseText": license.xml,
        "SerialNumber": license.serial_number,
        "Links": { "Self": "/api/licenses/licenses-current" },
    })))
}

pub(super) async fn license_status(AxState(api): AxState<NodeApi>) -> Result<Response, ApiError> {
    let state = api.state().await?;
    let license = &state.database.license;
    let today = jiff::Zoned::now().date();
    let days_to = |date: &str| {
        jiff::civil::Date::strptime("%Y-%m-%d", date)
            .ok()
            .and_then(|expiry| today.until(expiry).ok())
            .map(|span| span.get_days())
            .unwrap_or(0)
    };
    let days = days_to(&license.maintenance_expires);
    let term_days = days_to(&license.expires);
    let message = if days >= 0 {
        json!({ "Message": format!("Your maintenance period ends in {days} days."), "Disposition": "Information" })
    } else {
        json!({
            "Message": format!(
                "Your maintenance period ended on {}. Versions newer than {} are not covered by your license.",
                license.maintenance_expires, license.max_version_covered
            ),
            "Disposition": "Warning",
        })
    };
    let nodes = state.nodes.len();
    let node_limit = license.node_limit as usize;
    let compliant = term_days >= 0 && nodes <= node_limit;
    let limit = |name: &str, usage: usize, limit: Option<usize>| {
        let text = limit.map_or_else(|| "Unlimited".to_string(), |l| l.to_string());
        json!({
            "Name": name,
            "EffectiveLimit": limit.unwrap_or(i32::MAX as usize),
            "LicensedLimit": limit.unwrap_or(i32::MAX as usize),
            "IsUnlimited": limit.is_none(),
            "CurrentUsage": usage,
            "EffectiveLimitDescription": text,
            "LicenseLimitDescription": text,
            "Message": "",
            "Disposition": "Information",
        })
    };
    let summary = if term_days < 0 {
        format!("Your license expired on {}.", license.expires)
    } else if nodes > node_limit {
        format!("Your license allows {node_limit} node(s); {nodes} are registered.")
    } else {
        "Your license is valid and within limits.".to_string()
    };
    Ok(ok(json!({
        // Obsolete since 2019.8.6 but still sent (OctopusClients' LicenseStatusResource).
        "LicenseKind": "Standard",
        "IsCompliant": compliant,
        "HostingEnvironment": "SelfHosted",
        "ComplianceSummary": summary,
        "EffectiveExpiryDate": license.expires,
        "DaysToEffectiveExpiryDate": term_days,
        "DoesExpiryBlockKeyActivities": false,
        "EffectiveNodeTaskLimit": 5,
        "EffectiveClusterTaskLimit": 5 * nodes,
        "IsNodeTaskLimitControlledByLicense": false,
        "IsClusterTaskLimitControlledByLicense": false,
        "PermissionsMode": "Full",
        "Messages": [message],
        "Limits": [
            limit("Projects", 12, None),
            limit("Targets", 37, None),
            limit("Users", 8, None),
            limit("Nodes", nodes, Some(node_limit)),
        ],
        "Links": { "Self": "/api/licenses/licenses-current-status" },
    })))
}
