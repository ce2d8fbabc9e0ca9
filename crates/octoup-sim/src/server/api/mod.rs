//! The REST API of one node, with the shapes, status codes and error bodies of Octopus
//! Server (see reference/octopus-api.md). Every response carries
//! `Octopus-Node: name=<node>; version=<version>`.

mod common;
mod machines;
mod nodes;
mod query;
mod status;
mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::history::Event;
use crate::server::http::{ApiError, MSG_NOT_FOUND, apply_fault, request_fault, take_fault};
use crate::server::shared::Shared;
use crate::state::{State, StoreError};
use common::NodeApi;
use query::Query;

/// Octopus's messages for authentication and permission failures.
pub const MSG_NOT_LOGGED_IN: &str =
    "You must be logged in to perform this action. Please provide a valid API key or log in again.";
pub const MSG_BAD_KEY: &str = "The API key you provided was not valid. Please double-check your API key and try again. For instructions on finding your API key, please visit: https://oc.to/ApiKey";
pub const MSG_FORBIDDEN: &str = "You do not have permission to perform this action. Please contact your Octopus administrator. Missing permission: AdministerSystem";

const PING_PATH: &str = "/api/octopusservernodes/ping";
/// The router of one node's API.
pub(crate) fn router(shared: Arc<Shared>, node: &str) -> Router {
    let api = NodeApi {
        shared,
        node: node.to_string(),
    };
    Router::new()
        .route("/api", get(status::root))
        .route("/api/", get(status::root))
        .route(
            "/api/maintenanceconfiguration",
            get(status::get_maintenance).put(status::put_maintenance),
        )
        .route("/api/serverstatus", get(status::server_status))
        .route("/api/serverstatus/health", get(status::health))
        .route("/api/serverstatus/system-info", get(status::system_info))
        .route("/api/licenses/licenses-current", get(status::license))
        .route(
            "/api/licenses/licenses-current-status",
            get(status::license_status),
        )
        .route(
            "/api/octopusservernodes",
            get(nodes::list).put(nodes::put_without_id),
        )
        .route("/api/octopusservernodes/all", get(nodes::all))
        .route("/api/octopusservernodes/summary", get(nodes::summary))
        .route(PING_PATH, get(nodes::ping))
        .route(
            "/api/octopusservernodes/{id}",
            get(nodes::get_one).put(nodes::put_one),
        )
        .route("/api/octopusservernodes/{id}/details", get(nodes::details))
        .route("/api/tasks", get(tasks::list).post(tasks::create))
        .route(
            "/api/{space}/tasks",
            get(tasks::list_in_space).post(tasks::create_in_space),
        )
        .route("/api/spaces/all", get(machines::spaces))
        .route("/api/{space}/machines/all", get(machines::targets))
        .route("/api/{space}/machines/{id}", get(machines::target))
        .route("/api/{space}/workers/all", get(machines::workers))
        .route("/api/{space}/workers/{id}", get(machines::worker))
        .route(
            "/api/{space}/environments/summary",
            get(machines::environments_summary),
        )
        .route("/api/tasks/{id}", get(tasks::get_one))
        .route("/api/tasks/{id}/cancel", post(tasks::cancel))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(api.clone(), gate))
        .with_state(api)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, MSG_NOT_FOUND)
}

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Anonymous,
    /// Any valid API key.
    User,
    /// A key with AdministerSystem.
    Admin,
}

fn access(method: &Method, path: &str) -> Access {
    let read = method == Method::GET || method == Method::HEAD;
    match path {
        "/api" | "/api/" | PING_PATH | "/api/serverstatus/health" if read => Access::Anonymous,
        "/api/serverstatus/system-info" => Access::Admin,
        // Every write this API implements (maintenance mode, node drain, task cancel,
        // creating a task) needs AdministerSystem.
        _ if !read => Access::Admin,
        _ => Access::User,
    }
}

/// Runs around every request: injected faults, authentication, the `api-request` history
/// event for writes, and the `Octopus-Node` header.
async fn gate(AxState(api): AxState<NodeApi>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let access = access(&method, &path);
    // Read before any await: the request body is not Sync, so `&Request` cannot cross one.
    let key = api_key(&request);

    // One read serves the fault check, the key check and the header (the node's binary
    // version cannot change while its service answers).
    let (mut response, version) = match api.state().await {
        Ok(state) => {
            let version = state
                .node(&api.node)
                .map(|n| n.version().to_string())
                .unwrap_or_default();
            let response = match admit(&api, &state, &path, access, key).await {
                Ok(()) => next.run(request).await,
                Err(refusal) => refusal,
            };
            (response, version)
        }
        Err(e) => (e.into_response(), String::new()),
    };
    if let Ok(value) = HeaderValue::from_str(&format!("name={}; version={version}", api.node)) {
        response.headers_mut().insert("Octopus-Node", value);
    }
    if method != Method::GET && method != Method::HEAD {
        let event = Event::ApiRequest {
            node: api.node.clone(),
            method: method.to_string(),
            path,
            status: response.status().as_u16(),
        };
        let _ = api
            .shared
            .update(move |s| {
                s.record(event);
                Ok::<_, StoreError>(())
            })
            .await;
    }
    response
}

/// Applies faults and checks the API key; `Err` is the response to send instead.
async fn admit(
    api: &NodeApi,
    state: &State,
    path: &str,
    access: Access,
    key: Option<String>,
) -> Result<(), Response> {
    // `ping` has its own op; a plain `api` fault covers the authenticated calls only, so
    // the anonymous endpoints answer to faults naming their exact path.
    let (op, exact) = if path == PING_PATH {
        ("ping".to_string(), true)
    } else {
        (format!("api:{path}"), access == Access::Anonymous)
    };
    let fault = take_fault(
        &api.shared,
        state,
        &op,
        Some(&api.node),
        exact,
        request_fault,
    )
    .await
    .map_err(|e| ApiError::from(e).into_response())?;
    if let Some(action) = fault {
        apply_fault(&api.shared, action).await?;
    }
    if access == Access::Anonymous {
        return Ok(());
    }

    let Some(key) = key else {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, MSG_NOT_LOGGED_IN).into_response());
    };
    let secrets = &state.secrets;
    let admin = key == secrets.admin_api_key;
    if !admin && key != secrets.readonly_api_key {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, MSG_BAD_KEY).into_response());
    }
    if access == Access::Admin && !admin {
        return Err(ApiError::new(StatusCode::FORBIDDEN, MSG_FORBIDDEN).into_response());
    }
    Ok(())
}

/// The API key from `X-Octopus-ApiKey` (or `X-NuGet-ApiKey`), else the `apikey` query
/// parameter (any case, as ASP.NET binds it).
fn api_key(request: &Request) -> Option<String> {
    for name in ["X-Octopus-ApiKey", "X-NuGet-ApiKey"] {
        if let Some(value) = request.headers().get(name).and_then(|v| v.to_str().ok()) {
            return Some(value.trim().to_string());
        }
    }
    Query::parse(request.uri().query())
        .get("apikey")
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_rules() {
        assert_eq!(access(&Method::GET, "/api"), Access::Anonymous);
        assert_eq!(access(&Method::GET, PING_PATH), Access::Anonymous);
        assert_eq!(
            access(&Method::GET, "/api/serverstatus/health"),
            Access::Anonymous
        );
        assert_eq!(access(&Method::GET, "/api/tasks"), Access::User);
        assert_eq!(
            access(&Method::PUT, "/api/maintenanceconfiguration"),
            Access::Admin
        );
        assert_eq!(
            access(&Method::POST, "/api/tasks/ServerTasks-1/cancel"),
            Access::Admin
        );
        assert_eq!(
            access(&Method::GET, "/api/serverstatus/system-info"),
            Access::Admin
        );
    }
}
