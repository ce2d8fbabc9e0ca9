//! A typed client for the parts of the Octopus REST API an upgrade needs.
//!
//! The API key travels only in the `X-Octopus-ApiKey` header (never in a URL). Responses are
//! read leniently: unknown fields are ignored and missing optional fields are fine, because
//! servers from 2018 to today differ. Every error names the URL and what to do next.

use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{ApiKeySource, Secret};
use crate::octopus::http::{HttpClient, HttpError};

pub(crate) const API_KEY_HEADER: &str = "X-Octopus-ApiKey";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server refused the key. `key` says where it came from (the CLI's message names
    /// it); `None` when the client was built without knowing.
    #[error(
        "{url}: the API key{} was refused (HTTP 401). Create an API key for an administrator (Profile → My API Keys) and put it in [server] api_key_file or OCTOPUS_API_KEY",
        key_suffix(.key)
    )]
    Unauthorized {
        url: String,
        key: Option<ApiKeySource>,
    },
    #[error(
        "{url}: the user of the API key{} lacks AdministerSystem (HTTP 403{}). octoup changes maintenance mode and node drain, which need it: use an administrator's API key",
        key_suffix(.key),
        detail_suffix(.detail)
    )]
    Forbidden {
        url: String,
        detail: String,
        key: Option<ApiKeySource>,
    },
    #[error(
        "cannot reach the Octopus server at {url}: {reason}. Check [server] url (or OCTOPUS_URL), that the server runs, and the network"
    )]
    Unreachable { url: String, reason: String },
    #[error("{url} answered HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error(
        "{url} did not answer as an Octopus server: {reason}. Check that [server] url points at Octopus (not a proxy login page)"
    )]
    Shape { url: String, reason: String },
    #[error(
        "{url} redirected to {to}: octoup does not follow a redirect of the Octopus API (the API key would go along to wherever it points). Set the URL (or OCTOPUS_URL) to the address Octopus itself answers on"
    )]
    Redirected { url: String, to: String },
    #[error("{0}")]
    Http(HttpError),
}

/// The most an API answer may hold: the largest octoup reads (a cluster summary, a page
/// of tasks) is a few kilobytes; more is not Octopus talking.
pub(crate) const MAX_API_BODY: usize = 4 * 1024 * 1024;

fn key_suffix(key: &Option<ApiKeySource>) -> String {
    match key {
        Some(ApiKeySource::Environment) => " from OCTOPUS_API_KEY".into(),
        Some(ApiKeySource::File(path)) => format!(" in {}", path.display()),
        None => String::new(),
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl ApiError {
    /// A mistake in the configuration rather than a server that could not be read: the URL
    /// is unusable (scheme, plain http, proxy, CA bundle) or the server refused the key
    /// (401) or its user's permissions (403): the operator fixes the config, not the server.
    pub fn is_config(&self) -> bool {
        match self {
            ApiError::Unauthorized { .. } | ApiError::Forbidden { .. } => true,
            ApiError::Http(e) => e.is_config(),
            _ => false,
        }
    }

    #[cfg(test)]
    /// The key is fine but the server did not answer (worth retrying, or the node is down).
    pub(crate) fn is_unreachable(&self) -> bool {
        matches!(self, ApiError::Unreachable { .. })
    }

    #[cfg(test)]
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            ApiError::Unauthorized { .. } => Some(401),
            ApiError::Forbidden { .. } => Some(403),
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// `GET /api`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RootResource {
    pub application: String,
    pub version: String,
    pub api_version: String,
    pub installation_id: String,
}

/// `GET /api/serverstatus`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServerStatus {
    pub is_in_maintenance_mode: bool,
    pub maximum_available_version: Option<String>,
    pub maximum_available_version_covered_by_license: Option<String>,
    pub maintenance_expires: Option<String>,
    pub is_upgrade_available: bool,
    pub is_database_encrypted: bool,
    pub is_potential_clone: bool,
}

/// `GET /api/serverstatus/system-info` (needs AdministerSystem).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct SystemInfo {
    pub version: String,
    #[serde(rename = "OSVersion")]
    pub os_version: String,
    pub clr_version: String,
}

/// One node of `GET /api/octopusservernodes/summary`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct NodeSummary {
    pub id: String,
    pub name: String,
    /// The node's drain flag (not the cluster's maintenance mode).
    pub is_in_maintenance_mode: bool,
    pub is_offline: bool,
    pub last_seen: Option<String>,
    pub running_task_count: u32,
    pub max_concurrent_tasks: u32,
    pub version: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct ClusterSummary {
    pub nodes: Vec<NodeSummary>,
}

/// A server task (the fields an upgrade reports).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct TaskResource {
    pub id: String,
    pub name: String,
    pub description: String,
    pub state: String,
    pub server_node: Option<String>,
    pub start_time: Option<String>,
    pub queue_time: Option<String>,
    pub error_message: String,
    pub space_id: Option<String>,
    /// `Self`, `Web` (the task's page, relative to the server), `Raw` (its log), …
    pub links: std::collections::BTreeMap<String, String>,
}

impl TaskResource {
    /// The task reached a final state (Success, Failed, Canceled, TimedOut).
    pub(crate) fn is_final(&self) -> bool {
        !matches!(
            self.state.as_str(),
            "New" | "Queued" | "Executing" | "Cancelling" | ""
        )
    }
}

/// A page of `GET /api/tasks`, with the per-state counts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct TaskPage {
    pub items: Vec<TaskResource>,
    pub total_results: u64,
    pub total_counts: std::collections::BTreeMap<String, u64>,
}

/// One space of `GET /api/spaces/all`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct SpaceResource {
    pub id: String,
    pub name: String,
}

/// `Endpoint.TentacleVersionDetails` of a machine.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct TentacleVersionDetails {
    pub version: Option<String>,
    pub upgrade_suggested: bool,
    pub upgrade_required: bool,
    pub upgrade_available: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct EndpointResource {
    pub communication_style: String,
    pub tentacle_version_details: Option<TentacleVersionDetails>,
}

/// A deployment target or worker (`MachineResource` / `WorkerResource`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct MachineResource {
    pub id: String,
    pub name: String,
    pub space_id: Option<String>,
    pub operating_system: Option<String>,
    pub operating_system_version: Option<String>,
    pub has_latest_calamari: Option<bool>,
    pub endpoint: EndpointResource,
}

impl MachineResource {
    pub(crate) fn tentacle_version(&self) -> Option<&str> {
        self.endpoint
            .tentacle_version_details
            .as_ref()
            .and_then(|d| d.version.as_deref())
    }
}

/// `GET /api/{space}/environments/summary`: the machines whose Tentacle or Calamari is
/// behind the server's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct EnvironmentsSummary {
    pub machine_ids_for_tentacle_upgrade: Vec<String>,
    pub machine_ids_for_calamari_upgrade: Vec<String>,
}

/// One entry of `Limits` in `licenses-current-status`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct LicenseLimit {
    pub name: String,
    pub effective_limit: Option<i64>,
    pub is_unlimited: bool,
    pub current_usage: Option<i64>,
}

/// `GET /api/licenses/licenses-current-status`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct LicenseStatus {
    pub is_compliant: Option<bool>,
    pub compliance_summary: Option<String>,
    /// `yyyy-MM-dd`: the end of the term.
    pub effective_expiry_date: Option<String>,
    pub days_to_effective_expiry_date: Option<i64>,
    pub does_expiry_block_key_activities: Option<bool>,
    /// Obsolete since 2019.8.6, still sent by some servers.
    pub license_kind: Option<String>,
    pub limits: Vec<LicenseLimit>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct Page<T> {
    pub items: Vec<T>,
}

/// The body of `/api/octopusservernodes/ping`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct PingBody {
    pub id: String,
    pub name: String,
    pub is_in_maintenance_mode: bool,
    pub version: Option<String>,
}

/// What a node's ping endpoint said.
#[derive(Debug, Clone, PartialEq)]
pub enum Ping {
    /// 200: online and taking tasks.
    Serving(PingBody),
    /// 418: draining (or offline, per some docs).
    Draining(PingBody),
    /// Any other status: something answers, but not a healthy node.
    Unhealthy(u16),
    /// No answer at all (connection refused, timeout).
    Down(String),
}

impl Ping {
    /// The node's service answers (serving or draining).
    pub fn is_up(&self) -> bool {
        matches!(self, Ping::Serving(_) | Ping::Draining(_))
    }

    pub(crate) fn body(&self) -> Option<&PingBody> {
        match self {
            Ping::Serving(b) | Ping::Draining(b) => Some(b),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Ping::Serving(_) => "serving (200)".into(),
            Ping::Draining(_) => "draining (418)".into(),
            Ping::Unhealthy(s) => format!("unhealthy (HTTP {s})"),
            Ping::Down(r) => format!("not answering ({r})"),
        }
    }
}

/// A client for one base URL (the cluster's, or one node's own).
#[derive(Debug, Clone)]
pub struct OctopusApi {
    http: HttpClient,
    base: String,
    key: Secret,
    key_source: Option<ApiKeySource>,
    timeout: Duration,
}

impl OctopusApi {
    pub fn new(http: HttpClient, base: &str, key: Secret, timeout: Duration) -> OctopusApi {
        OctopusApi {
            http,
            base: base.trim_end_matches('/').to_string(),
            key,
            key_source: None,
            timeout,
        }
    }

    /// Where the key came from, for the error when the server refuses it.
    pub fn with_key_source(mut self, source: Option<ApiKeySource>) -> OctopusApi {
        self.key_source = source;
        self
    }

    /// The same client aimed at another address (a node's own URL).
    pub(crate) fn at(&self, base: &str) -> OctopusApi {
        OctopusApi {
            base: base.trim_end_matches('/').to_string(),
            ..self.clone()
        }
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        with_key: bool,
    ) -> Result<(u16, String), ApiError> {
        let url = self.url(path);
        let mut request = self
            .http
            .request_no_redirect(method, &url)
            .map_err(ApiError::Http)?
            .timeout(self.timeout)
            .header("Accept", "application/json");
        if with_key {
            request = request.header(API_KEY_HEADER, self.key.expose());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.http.send(request).await.map_err(|e| match e {
            HttpError::Request { url, reason, .. } => ApiError::Unreachable { url, reason },
            other => ApiError::Http(other),
        })?;
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            let to = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(no Location)");
            return Err(ApiError::Redirected {
                url,
                to: crate::octopus::http::redact_url(to),
            });
        }
        let html = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.trim_start().to_ascii_lowercase().starts_with("text/html"));
        let text = crate::octopus::http::read_text(response, MAX_API_BODY)
            .await
            .map_err(|e| match e {
                HttpError::TooLarge { limit, .. } => ApiError::Shape {
                    url: url.clone(),
                    reason: format!("the answer is larger than {limit} bytes"),
                },
                HttpError::Request { reason, .. } => ApiError::Unreachable {
                    url: url.clone(),
                    reason: format!(
                        "the answer broke off, or did not arrive whole within {} s ([timeouts] http): {reason}",
                        self.timeout.as_secs()
                    ),
                },
                other => ApiError::Http(other),
            })?;
        if (200..300).contains(&status) && (html || looks_like_html(&text)) {
            return Err(ApiError::Shape {
                url,
                reason: "expected JSON, got an HTML page (a proxy's login page?)".into(),
            });
        }
        Ok((status, text))
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        with_key: bool,
    ) -> Result<T, ApiError> {
        let (status, text) = self.call(method, path, body, with_key).await?;
        let url = self.url(path);
        check_status(&url, status, &text).map_err(|e| match e {
            ApiError::Unauthorized { url, .. } => ApiError::Unauthorized {
                url,
                key: self.key_source.clone(),
            },
            ApiError::Forbidden { url, detail, .. } => ApiError::Forbidden {
                url,
                detail,
                key: self.key_source.clone(),
            },
            other => other,
        })?;
        parse(&url, &text)
    }

    /// `GET /api` (anonymous): the version this address serves.
    pub async fn root(&self) -> Result<RootResource, ApiError> {
        let root: RootResource = self.json(Method::GET, "/api", None, false).await?;
        if root.version.trim().is_empty() {
            return Err(ApiError::Shape {
                url: self.url("/api"),
                reason: "the answer has no Version".into(),
            });
        }
        Ok(root)
    }

    pub async fn server_status(&self) -> Result<ServerStatus, ApiError> {
        self.json(Method::GET, "/api/serverstatus", None, true)
            .await
    }

    /// Needs AdministerSystem: octoup's probe that the key is an administrator's, which
    /// changes nothing.
    pub(crate) async fn system_info(&self) -> Result<SystemInfo, ApiError> {
        self.json(Method::GET, "/api/serverstatus/system-info", None, true)
            .await
    }

    /// The cluster-wide maintenance mode.
    pub(crate) async fn maintenance(&self) -> Result<bool, ApiError> {
        let v: Value = self
            .json(Method::GET, "/api/maintenanceconfiguration", None, true)
            .await?;
        read_bool(&v, "IsInMaintenanceMode").ok_or_else(|| ApiError::Shape {
            url: self.url("/api/maintenanceconfiguration"),
            reason: "the answer has no IsInMaintenanceMode".into(),
        })
    }

    pub(crate) async fn set_maintenance(&self, on: bool) -> Result<(), ApiError> {
        let body = serde_json::json!({ "Id": "maintenance", "IsInMaintenanceMode": on });
        let _: Value = self
            .json(
                Method::PUT,
                "/api/maintenanceconfiguration",
                Some(&body),
                true,
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn nodes_summary(&self) -> Result<Vec<NodeSummary>, ApiError> {
        let s: ClusterSummary = self
            .json(Method::GET, "/api/octopusservernodes/summary", None, true)
            .await?;
        Ok(s.nodes)
    }

    /// Sets a node's drain flag (`IsInMaintenanceMode` on the node resource), keeping its
    /// other fields as the server has them.
    pub(crate) async fn set_drain(&self, node_id: &str, on: bool) -> Result<(), ApiError> {
        let path = format!("/api/octopusservernodes/{}", path_segment(node_id));
        let mut node: Value = self.json(Method::GET, &path, None, true).await?;
        let Some(obj) = node.as_object_mut() else {
            return Err(ApiError::Shape {
                url: self.url(&path),
                reason: "the node is not a JSON object".into(),
            });
        };
        obj.insert("IsInMaintenanceMode".into(), Value::Bool(on));
        obj.entry("Id")
            .or_insert_with(|| Value::String(node_id.into()));
        let _: Value = self.json(Method::PUT, &path, Some(&node), true).await?;
        Ok(())
    }

    /// The node serving this address, by its ping endpoint (anonymous). Never fails: a
    /// node that does not answer is [`Ping::Down`].
    pub(crate) async fn ping(&self) -> Ping {
        match self
            .call(Method::GET, "/api/octopusservernodes/ping", None, false)
            .await
        {
            Err(e) => Ping::Down(match e {
                ApiError::Unreachable { reason, .. } => short_reason(&reason),
                other => other.to_string(),
            }),
            Ok((200, text)) => Ping::Serving(serde_json::from_str(&text).unwrap_or_default()),
            Ok((418, text)) => Ping::Draining(serde_json::from_str(&text).unwrap_or_default()),
            Ok((status, _)) => Ping::Unhealthy(status),
        }
    }

    /// Tasks executing (or being cancelled) on a node.
    pub(crate) async fn running_tasks(&self, node_id: &str) -> Result<Vec<TaskResource>, ApiError> {
        let path = format!(
            "/api/tasks?node={}&states=Executing,Cancelling&includeSystem=true&take=100",
            path_segment(node_id)
        );
        let page: Page<TaskResource> = self.json(Method::GET, &path, None, true).await?;
        Ok(page.items)
    }

    pub(crate) async fn cancel_task(&self, task_id: &str) -> Result<(), ApiError> {
        let path = format!("/api/tasks/{}/cancel", path_segment(task_id));
        let _: Value = self.json(Method::POST, &path, None, true).await?;
        Ok(())
    }

    /// Starts a system task (`POST /api/tasks`, e.g. `SystemIntegrityCheck`).
    pub(crate) async fn create_task(
        &self,
        name: &str,
        description: &str,
    ) -> Result<TaskResource, ApiError> {
        let body = serde_json::json!({ "Name": name, "Description": description });
        self.json(Method::POST, "/api/tasks", Some(&body), true)
            .await
    }

    /// Starts the vendor's Tentacle `Upgrade` of `machine_ids` in one space.
    pub(crate) async fn create_tentacle_upgrade(
        &self,
        space_id: &str,
        description: &str,
        machine_ids: &[String],
    ) -> Result<TaskResource, ApiError> {
        let body = serde_json::json!({
            "Name": "Upgrade", "Description": description, "SpaceId": space_id,
            "Arguments": { "MachineIds": machine_ids },
        });
        let path = format!("/api/{}/tasks", path_segment(space_id));
        self.json(Method::POST, &path, Some(&body), true).await
    }

    pub(crate) async fn task(&self, task_id: &str) -> Result<TaskResource, ApiError> {
        let path = format!("/api/tasks/{}", path_segment(task_id));
        self.json(Method::GET, &path, None, true).await
    }

    /// Tasks across every space, system tasks included: `query` is e.g.
    /// `states=Queued&name=RecurringScheduledDeployments`.
    pub(crate) async fn tasks(&self, query: &str) -> Result<TaskPage, ApiError> {
        let path = format!("/api/tasks?{query}&spaces=all&includeSystem=true&take=100");
        self.json(Method::GET, &path, None, true).await
    }

    pub(crate) async fn spaces(&self) -> Result<Vec<SpaceResource>, ApiError> {
        self.json(Method::GET, "/api/spaces/all", None, true).await
    }

    /// The deployment targets (`workers`: the workers) of a space.
    pub(crate) async fn machines(
        &self,
        space_id: &str,
        workers: bool,
    ) -> Result<Vec<MachineResource>, ApiError> {
        let kind = if workers { "workers" } else { "machines" };
        let path = format!("/api/{}/{kind}/all", path_segment(space_id));
        self.json(Method::GET, &path, None, true).await
    }

    /// One machine by id (`Workers-…` ids are workers).
    pub(crate) async fn machine(
        &self,
        space_id: &str,
        machine_id: &str,
    ) -> Result<MachineResource, ApiError> {
        let kind = if machine_id.starts_with("Workers-") {
            "workers"
        } else {
            "machines"
        };
        let path = format!(
            "/api/{}/{kind}/{}",
            path_segment(space_id),
            path_segment(machine_id)
        );
        self.json(Method::GET, &path, None, true).await
    }

    pub(crate) async fn environments_summary(
        &self,
        space_id: &str,
    ) -> Result<EnvironmentsSummary, ApiError> {
        let path = format!("/api/{}/environments/summary", path_segment(space_id));
        self.json(Method::GET, &path, None, true).await
    }

    pub(crate) async fn license_status(&self) -> Result<LicenseStatus, ApiError> {
        self.json(
            Method::GET,
            "/api/licenses/licenses-current-status",
            None,
            true,
        )
        .await
    }

    /// The license XML (`LicenseText` of `licenses-current`).
    pub(crate) async fn license_text(&self) -> Result<String, ApiError> {
        let path = "/api/licenses/licenses-current";
        let v: Value = self.json(Method::GET, path, None, true).await?;
        license_text_of(&v).ok_or_else(|| ApiError::Shape {
            url: self.url(path),
            reason: "the answer has no LicenseText".into(),
        })
    }
}

/// The non-blank `LicenseText` of a `licenses-current` answer.
pub(crate) fn license_text_of(v: &Value) -> Option<String> {
    v.get("LicenseText")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
        .map(str::to_string)
}

pub(crate) fn check_status(url: &str, status: u16, text: &str) -> Result<(), ApiError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let message = error_message(text);
    Err(match status {
        401 => ApiError::Unauthorized {
            url: url.to_string(),
            key: None,
        },
        403 => ApiError::Forbidden {
            url: url.to_string(),
            detail: message,
            key: None,
        },
        _ => ApiError::Status {
            url: url.to_string(),
            status,
            message: if message.is_empty() {
                "no error message".into()
            } else {
                message
            },
        },
    })
}

/// A body that is an HTML document whatever its Content-Type says.
fn looks_like_html(text: &str) -> bool {
    let start: String = text
        .trim_start()
        .chars()
        .take(15)
        .collect::<String>()
        .to_ascii_lowercase();
    start.starts_with("<!doctype html") || start.starts_with("<html")
}

/// `ErrorMessage` (and `Errors`) of an Octopus error body, else the start of the body.
fn error_message(text: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(text)
        && let Some(m) = v.get("ErrorMessage").and_then(Value::as_str)
    {
        let mut out = m.to_string();
        if let Some(errors) = v.get("Errors").and_then(Value::as_array) {
            for e in errors.iter().filter_map(Value::as_str) {
                out.push_str("; ");
                out.push_str(e);
            }
        }
        return out;
    }
    text.trim().chars().take(200).collect()
}

pub(crate) fn parse<T: DeserializeOwned>(url: &str, text: &str) -> Result<T, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::Shape {
        url: url.to_string(),
        reason: format!("not the expected JSON ({e})"),
    })
}

/// A bool field, accepting the string forms `"true"`/`"false"` old scripts send.
pub(crate) fn read_bool(v: &Value, key: &str) -> Option<bool> {
    match v.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Percent-encodes what cannot stand in a path segment or query value.
fn path_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The last, most specific part of a transport error ("Connection refused").
fn short_reason(reason: &str) -> String {
    reason
        .rsplit(": ")
        .next()
        .unwrap_or(reason)
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::octopus::http::NetworkSettings;
    use wiremock::matchers::{body_partial_json, header, method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const KEY: &str = "API-ABCDEFGHIJKLMNOPQRSTUVWXYZ";

    fn api(base: &str) -> OctopusApi {
        let http = HttpClient::new(NetworkSettings::default()).unwrap();
        OctopusApi::new(http, base, Secret::new(KEY), Duration::from_secs(5))
    }

    #[tokio::test]
    async fn root_is_anonymous_and_lenient() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "Application": "Octopus Deploy", "Version": "2024.1.10", "ApiVersion": "3.0.0",
                "Links": {"Self": "/api"}, "SomethingNew": [1, 2]
            })))
            .mount(&server)
            .await;
        let root = api(&server.uri()).root().await.unwrap();
        assert_eq!(root.version, "2024.1.10");
        let requests = server.received_requests().await.unwrap();
        assert!(requests[0].headers.get(API_KEY_HEADER).is_none());
    }

    #[tokio::test]
    async fn the_key_goes_in_the_header_only() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/serverstatus/system-info"))
            .and(header(API_KEY_HEADER, KEY))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "Version": "2024.1.10", "OSVersion": "Microsoft Windows 10.0.20348"
            })))
            .mount(&server)
            .await;
        let info = api(&server.uri()).system_info().await.unwrap();
        assert_eq!(info.version, "2024.1.10");
        let requests = server.received_requests().await.unwrap();
        assert!(!requests[0].url.as_str().contains(KEY));
    }

    #[tokio::test]
    async fn unauthorized_and_forbidden_say_what_to_do() {
        let server = MockServer::start().await;
        Mock::given(path("/api/serverstatus/system-info"))
            .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
                "ErrorMessage": "You must be logged in to perform this action."
            })))
            .mount(&server)
            .await;
        Mock::given(path("/api/maintenanceconfiguration"))
            .respond_with(ResponseTemplate::new(403).set_body_json(serde_json::json!({
                "ErrorMessage": "You do not have permission to perform this action. Please contact your Octopus administrator. Missing permission: AdministerSystem",
                "Errors": []
            })))
            .mount(&server)
            .await;
        let a = api(&server.uri());
        let err = a.system_info().await.unwrap_err();
        assert!(matches!(err, ApiError::Unauthorized { .. }));
        let msg = err.to_string();
        assert!(
            msg.contains("was refused") && msg.contains("system-info"),
            "{msg}"
        );
        assert!(!msg.contains(KEY));
        let err = a.maintenance().await.unwrap_err();
        assert!(matches!(err, ApiError::Forbidden { .. }));
        let msg = err.to_string();
        assert!(msg.contains("lacks AdministerSystem"), "{msg}");
        assert!(
            msg.contains("Missing permission: AdministerSystem"),
            "{msg}"
        );
        assert!(msg.contains("administrator's API key"), "{msg}");
    }

    #[tokio::test]
    async fn bad_json_and_server_errors_name_the_url() {
        let server = MockServer::start().await;
        Mock::given(path("/api"))
            .respond_with(ResponseTemplate::new(200).set_body_string("<html>Sign in</html>"))
            .mount(&server)
            .await;
        Mock::given(path("/api/octopusservernodes/summary"))
            .respond_with(ResponseTemplate::new(500).set_body_json(serde_json::json!({
                "ErrorMessage": "Object reference not set to an instance of an object."
            })))
            .mount(&server)
            .await;
        let a = api(&server.uri());
        let err = a.root().await.unwrap_err();
        assert!(matches!(err, ApiError::Shape { .. }), "{err}");
        assert!(err.to_string().contains(&format!("{}/api", server.uri())));
        let err = a.nodes_summary().await.unwrap_err();
        assert_eq!(err.status(), Some(500));
        assert!(err.to_string().contains("Object reference"), "{err}");
    }

    #[tokio::test]
    async fn hostile_answers_are_refused_by_url_with_what_was_wrong() {
        let server = MockServer::start().await;
        Mock::given(path("/api"))
            .respond_with(
                ResponseTemplate::new(302).insert_header("Location", "http://127.0.0.2:9/steal"),
            )
            .mount(&server)
            .await;
        Mock::given(path("/api/serverstatus"))
            .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(MAX_API_BODY + 1)))
            .mount(&server)
            .await;
        Mock::given(path("/api/maintenanceconfiguration"))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw("<form>Sign in</form>", "text/html"),
            )
            .mount(&server)
            .await;
        let a = api(&server.uri());
        let err = a.root().await.unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "{}/api redirected to http://127.0.0.2:9/steal",
                server.uri()
            )),
            "{err}"
        );
        assert!(err.contains("does not follow"), "{err}");
        let err = a.server_status().await.unwrap_err().to_string();
        assert!(
            err.contains("/api/serverstatus") && err.contains("larger than"),
            "{err}"
        );
        let err = a.maintenance().await.unwrap_err().to_string();
        assert!(err.contains("got an HTML page"), "{err}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_unreachable() {
        // Bind and drop a listener: the port is very likely closed now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let a = api(&format!("http://127.0.0.1:{port}"));
        let err = a.root().await.unwrap_err();
        assert!(err.is_unreachable(), "{err}");
        assert!(err.to_string().contains("[server] url"), "{err}");
        assert!(matches!(a.ping().await, Ping::Down(_)));
    }

    #[tokio::test]
    async fn ping_distinguishes_serving_draining_and_unhealthy() {
        let server = MockServer::start().await;
        let node = serde_json::json!({"Id": "OctopusServerNodes-A", "Name": "A", "IsInMaintenanceMode": true});
        Mock::given(path("/api/octopusservernodes/ping"))
            .respond_with(ResponseTemplate::new(418).set_body_json(node))
            .up_to_n_times(1)
            .mount(&server)
            .await;
        Mock::given(path("/api/octopusservernodes/ping"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&server)
            .await;
        let a = api(&server.uri());
        match a.ping().await {
            Ping::Draining(body) => assert_eq!(body.name, "A"),
            other => panic!("{other:?}"),
        }
        assert_eq!(a.ping().await, Ping::Unhealthy(503));
    }

    #[tokio::test]
    async fn drain_keeps_the_node_fields_and_sets_the_flag() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/octopusservernodes/OctopusServerNodes-A"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "Id": "OctopusServerNodes-A", "Name": "A", "MaxConcurrentTasks": 7, "IsInMaintenanceMode": false
            })))
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .and(path("/api/octopusservernodes/OctopusServerNodes-A"))
            .and(body_partial_json(serde_json::json!({
                "Id": "OctopusServerNodes-A", "MaxConcurrentTasks": 7, "IsInMaintenanceMode": true
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({})))
            .expect(1)
            .mount(&server)
            .await;
        api(&server.uri())
            .set_drain("OctopusServerNodes-A", true)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn running_tasks_and_summary_parse() {
        let server = MockServer::start().await;
        Mock::given(path("/api/tasks"))
            .and(query_param("node", "OctopusServerNodes-A"))
            .and(query_param("states", "Executing,Cancelling"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "ItemType": "Task", "TotalResults": 1,
                "Items": [{"Id": "ServerTasks-1", "Name": "Deploy", "Description": "Deploy Web",
                           "State": "Executing", "ServerNode": "OctopusServerNodes-A"}]
            })))
            .mount(&server)
            .await;
        Mock::given(path("/api/octopusservernodes/summary"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "Nodes": [{"Id": "OctopusServerNodes-A", "Name": "A", "RunningTaskCount": 2,
                           "IsInMaintenanceMode": false, "IsOffline": false, "Version": "2024.1.10"}]
            })))
            .mount(&server)
            .await;
        let a = api(&server.uri());
        let tasks = a.running_tasks("OctopusServerNodes-A").await.unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].description, "Deploy Web");
        let nodes = a.nodes_summary().await.unwrap();
        assert_eq!(nodes[0].running_task_count, 2);
        assert_eq!(nodes[0].version.as_deref(), Some("2024.1.10"));
    }

    #[tokio::test]
    async fn maintenance_reads_string_booleans() {
        let server = MockServer::start().await;
        Mock::given(path("/api/maintenanceconfiguration"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "Id": "maintenance", "IsInMaintenanceMode": "true"
            })))
            .mount(&server)
            .await;
        assert!(api(&server.uri()).maintenance().await.unwrap());
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(
            path_segment("OctopusServerNodes-A B/1"),
            "OctopusServerNodes-A%20B%2F1"
        );
    }
}
