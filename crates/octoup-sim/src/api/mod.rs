//! The REST API of one node, with the shapes, status codes and error bodies of Octopus
//! Server (see reference/octopus-api.md). Every response carries
//! `Octopus-Node: name=<node>; version=<version>`.

mod nodes;
mod query;
mod status;
mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use crate::daemon::Shared;
use crate::faults::{self, FaultAction, FaultSpec};
use crate::history::Event;
use crate::state::{State, StoreError};

pub(crate) use query::Query;

/// Octopus's messages for authentication and permission failures.
pub const MSG_NOT_LOGGED_IN: &str =
    "You must be logged in to perform this action. Please provide a valid API key or log in again.";
pub const MSG_BAD_KEY: &str = "The API key you provided was not valid. Please double-check your API key and try again. For instructions on finding your API key, please visit: https://oc.to/ApiKey";
pub const MSG_FORBIDDEN: &str = "You do not have permission to perform this action. Please contact your Octopus administrator. Missing permission: AdministerSystem";
pub const MSG_NO_BODY: &str = "No request body was supplied.";
pub const MSG_MODEL_INVALID: &str = "Model validation failed.";
pub const MSG_NOT_FOUND: &str = "The resource you requested was not found.";

const PING_PATH: &str = "/api/octopusservernodes/ping";

/// The API of one node: the daemon's shared state plus the node that answers.
#[derive(Clone)]
pub(crate) struct NodeApi {
    pub shared: Arc<Shared>,
    pub node: String,
}

impl NodeApi {
    async fn state(&self) -> Result<State, ApiError> {
        Ok(self.shared.state().await?)
    }

    /// `by` for history events caused through this node's API.
    fn by(&self) -> String {
        format!("api:{}", self.node)
    }
}

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
        .route("/api/tasks", get(tasks::list))
        .route("/api/{space}/tasks", get(tasks::list_in_space))
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
        // Every write this API implements (maintenance mode, node drain, task cancel)
        // needs AdministerSystem.
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
    let fault = take_fault(&api.shared, state, &op, Some(&api.node), exact, |a| {
        matches!(
            a,
            FaultAction::Http(_) | FaultAction::Hang | FaultAction::Delay(_)
        )
    })
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

/// Takes the first pending fault for `op` on `node` that `usable` accepts (consuming one
/// of its `times`, recording `fault-fired`). `exact`: ignore the catch-all `api` fault.
/// `seen` is a recent snapshot: most requests meet no fault and then need no write lock.
pub(crate) async fn take_fault(
    shared: &Shared,
    seen: &State,
    op: &str,
    node: Option<&str>,
    exact: bool,
    usable: fn(FaultAction) -> bool,
) -> Result<Option<FaultAction>, StoreError> {
    let accept = {
        let op = op.to_string();
        move |f: &FaultSpec| (!exact || f.op.as_str() == op) && usable(f.action)
    };
    if !seen.faults.iter().any(|f| f.applies(op, node) && accept(f)) {
        return Ok(None);
    }
    let op = op.to_string();
    let node = node.map(str::to_string);
    shared
        .update(move |s| {
            let Some(action) = faults::take_if(&mut s.faults, &op, node.as_deref(), accept) else {
                return Ok::<_, StoreError>(None);
            };
            s.record(Event::FaultFired {
                op,
                action: action.to_string(),
                node,
            });
            Ok(Some(action))
        })
        .await
}

/// The request-level faults every HTTP endpoint shares: `http:CODE` answers with an
/// Octopus error body, `hang` never answers, `delay:S` waits and then proceeds.
pub(crate) async fn apply_fault(shared: &Shared, action: FaultAction) -> Result<(), Response> {
    match action {
        FaultAction::Http(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Err(ApiError::new(status, fault_message(status)).into_response())
        }
        FaultAction::Hang => std::future::pending().await,
        FaultAction::Delay(seconds) => {
            shared.sleep_sim(seconds).await;
            Ok(())
        }
        _ => Ok(()),
    }
}

fn fault_message(status: StatusCode) -> String {
    match status.as_u16() {
        500 => "Object reference not set to an instance of an object.".to_string(),
        502 => "Bad Gateway: the upstream server did not answer.".to_string(),
        503 => "The service is unavailable. Octopus Server may be starting up or overloaded; please try again in a moment.".to_string(),
        504 => "Gateway Timeout: the upstream server did not answer in time.".to_string(),
        404 => MSG_NOT_FOUND.to_string(),
        _ => status
            .canonical_reason()
            .unwrap_or("The request failed.")
            .to_string(),
    }
}

/// An Octopus error response: `{"ErrorMessage": ..., "Errors": [...]}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    errors: Vec<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            errors: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 400 "Model validation failed." with the details in `Errors`.
    pub fn invalid(errors: Vec<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: MSG_MODEL_INVALID.to_string(),
            errors,
        }
    }

    pub fn not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, MSG_NOT_FOUND)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(
            self.status,
            &json!({ "ErrorMessage": self.message, "Errors": self.errors }),
        )
    }
}

/// A JSON body with Octopus's content type.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_string());
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        text,
    )
        .into_response()
}

pub(crate) fn ok(body: Value) -> Response {
    json_response(StatusCode::OK, &body)
}

/// `2024-09-23T14:42:30.123+00:00`, as Octopus writes timestamps.
pub(crate) fn timestamp(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string()
}

/// Reads a JSON object body; the 400s Octopus gives for a missing or malformed one.
pub(crate) fn object_body(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(MSG_NO_BODY));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Err(ApiError::bad_request(MSG_NO_BODY)),
        Ok(_) => Err(ApiError::invalid(vec![
            "The request body must be a JSON object.".to_string(),
        ])),
        Err(e) => Err(ApiError::invalid(vec![format!(
            "The request body is not valid JSON: {e}"
        )])),
    }
}

/// A property of a request body, matched case-insensitively as ASP.NET model binding does.
pub(crate) fn property<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// A boolean property: JSON `true`/`false` or the strings `"true"`/`"false"` (Octopus's
/// own sample script sends the string).
pub(crate) fn bool_property(
    body: &Map<String, Value>,
    name: &str,
) -> Result<Option<bool>, ApiError> {
    match property(body, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(ApiError::invalid(vec![format!(
            "The value {other} is not valid for {name}; use true or false."
        )])),
    }
}

/// The paging envelope every list endpoint shares (`LastPageNumber` is 0-based).
pub(crate) struct Page {
    pub skip: usize,
    pub take: usize,
}

/// `take` when the caller does not give one.
pub(crate) const DEFAULT_TAKE: usize = 30;
/// What `Page.All` asks for.
const TAKE_ALL: usize = 2_147_483_647;

impl Page {
    pub fn from_query(q: &Query) -> Result<Page, ApiError> {
        let number = |name: &str, default: usize| -> Result<usize, ApiError> {
            match q.get(name) {
                None | Some("") => Ok(default),
                Some(v) => v.parse::<usize>().map_err(|_| {
                    ApiError::invalid(vec![format!(
                        "The value '{v}' is not valid for {name}; use a non-negative number."
                    )])
                }),
            }
        };
        Ok(Page {
            skip: number("skip", 0)?,
            take: number("take", DEFAULT_TAKE)?,
        })
    }

    /// Builds the envelope for all matching `items` (this page is cut from them).
    /// `filters` is the query string of the non-paging parameters, e.g. `states=Executing`.
    pub fn envelope(
        &self,
        item_type: &str,
        items: Vec<Value>,
        base: &str,
        template: &str,
        filters: &str,
    ) -> Map<String, Value> {
        let total = items.len();
        let pages = if self.take == 0 {
            1
        } else {
            total.div_ceil(self.take).max(1)
        };
        let href = |skip: usize, take: usize| {
            let mut s = format!("{base}?skip={skip}&take={take}");
            if !filters.is_empty() {
                s.push('&');
                s.push_str(filters);
            }
            s
        };
        let mut links = Map::new();
        links.insert("Self".into(), href(self.skip, self.take).into());
        links.insert("Template".into(), template.into());
        links.insert("Page.All".into(), href(0, TAKE_ALL).into());
        links.insert("Page.Current".into(), href(self.skip, self.take).into());
        links.insert(
            "Page.Last".into(),
            href((pages - 1) * self.take, self.take).into(),
        );
        if self.take > 0 && self.skip + self.take < total {
            links.insert(
                "Page.Next".into(),
                href(self.skip + self.take, self.take).into(),
            );
        }
        let page: Vec<Value> = items.into_iter().skip(self.skip).take(self.take).collect();
        let mut envelope = Map::new();
        envelope.insert("ItemType".into(), item_type.into());
        envelope.insert("TotalResults".into(), total.into());
        envelope.insert("ItemsPerPage".into(), self.take.into());
        envelope.insert("NumberOfPages".into(), pages.into());
        envelope.insert("LastPageNumber".into(), (pages - 1).into());
        envelope.insert("Items".into(), page.into());
        envelope.insert("Links".into(), links.into());
        envelope
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_pages_are_zero_based() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let page = Page { skip: 2, take: 2 };
        let e = page.envelope(
            "Task",
            items,
            "/api/tasks",
            "/api/tasks{?skip,take}",
            "states=Queued",
        );
        assert_eq!(e["TotalResults"], 5);
        assert_eq!(e["ItemsPerPage"], 2);
        assert_eq!(e["NumberOfPages"], 3);
        assert_eq!(e["LastPageNumber"], 2);
        assert_eq!(e["Items"], json!([2, 3]));
        assert_eq!(e["Links"]["Self"], "/api/tasks?skip=2&take=2&states=Queued");
        assert_eq!(
            e["Links"]["Page.Next"],
            "/api/tasks?skip=4&take=2&states=Queued"
        );
        assert_eq!(
            e["Links"]["Page.Last"],
            "/api/tasks?skip=4&take=2&states=Queued"
        );
        assert_eq!(
            e["Links"]["Page.All"],
            "/api/tasks?skip=0&take=2147483647&states=Queued"
        );

        let empty = Page { skip: 0, take: 30 }.envelope("Task", vec![], "/api/tasks", "", "");
        assert_eq!(empty["NumberOfPages"], 1);
        assert_eq!(empty["LastPageNumber"], 0);
        assert!(empty["Links"].get("Page.Next").is_none());
    }

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

    #[test]
    fn bodies() {
        assert_eq!(object_body(b"  ").unwrap_err().message, MSG_NO_BODY);
        assert_eq!(object_body(b"[1]").unwrap_err().message, MSG_MODEL_INVALID);
        let body = object_body(br#"{"isinmaintenancemode": "True"}"#).unwrap();
        assert_eq!(
            bool_property(&body, "IsInMaintenanceMode").unwrap(),
            Some(true)
        );
        let body = object_body(br#"{"IsInMaintenanceMode": 3}"#).unwrap();
        assert!(bool_property(&body, "IsInMaintenanceMode").is_err());
        assert_eq!(
            timestamp("2024-09-23T14:42:30.12Z".parse().unwrap()),
            "2024-09-23T14:42:30.120+00:00"
        );
    }
}
