//! What every HTTP endpoint of the daemon shares (node APIs and the feed server alike):
//! Octopus's error body, JSON responses, and the request-level faults.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::shared::Shared;
use crate::faults::{self, FaultAction, FaultSpec};
use crate::history::Event;
use crate::state::{State, StoreError};

pub const MSG_MODEL_INVALID: &str = "Model validation failed.";
pub const MSG_NOT_FOUND: &str = "The resource you requested was not found.";

/// Takes the first pending fault for `op` on `node` that `usable` accepts (consuming one
/// of its `times`, recording `fault-fired`). `exact`: ignore the catch-all `api` fault.
/// `seen` is a recent snapshot: most requests meet no fault and then need no write lock.
pub(crate) async fn take_fault(
    shared: &Shared,
    seen: &State,
    op: &str,
    node: Option<&str>,
    exact: bool,
    usable: fn(&FaultAction) -> bool,
) -> Result<Option<FaultAction>, StoreError> {
    let accept = {
        let op = op.to_string();
        move |f: &FaultSpec| (!exact || f.op.as_str() == op) && usable(&f.action)
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
/// Octopus error body, `hang` never answers, `delay:S` waits and then proceeds, and the
/// hostile answers ([`FaultAction::is_hostile_answer`]) replace the answer.
pub(crate) async fn apply_fault(shared: &Shared, action: FaultAction) -> Result<(), Response> {
    if let Some(answer) = hostile_answer(&action) {
        return Err(answer);
    }
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

/// Whether a fault usable on any request applies: `http:CODE`, `hang`, `delay:S` and the
/// hostile answers.
pub(crate) fn request_fault(a: &FaultAction) -> bool {
    matches!(
        a,
        FaultAction::Http(_) | FaultAction::Hang | FaultAction::Delay(_)
    ) || a.is_hostile_answer()
}

/// A proxy's sign-in page, as a misconfigured reverse proxy answers any path.
pub(crate) const LOGIN_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Sign in</title></head>\n<body><form method=\"post\" action=\"/login\"><h1>Sign in to continue</h1><input name=\"user\"><input name=\"password\" type=\"password\"><button>Sign in</button></form></body></html>\n";

/// What [`FaultAction::WrongShape`] and [`FaultAction::Truncate`] send: an Octopus-like
/// answer cut half way, and JSON of no Octopus resource's shape.
pub(crate) const WRONG_SHAPE: &str = "[{\"Unexpected\": \"a list where an object belongs\"}]";
pub(crate) const TRUNCATED: &str =
    "{\"Application\": \"Octopus Deploy\", \"Version\": \"2024.1.10\", \"Api";

/// The answer a hostile fault sends instead of the real one, if `action` is one.
fn hostile_answer(action: &FaultAction) -> Option<Response> {
    use axum::body::Body;
    use axum::body::Bytes;
    use futures_util::stream::{self, StreamExt};
    let json = [(header::CONTENT_TYPE, "application/json; charset=utf-8")];
    let answer = match action {
        FaultAction::Html => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            LOGIN_PAGE,
        )
            .into_response(),
        FaultAction::WrongShape => (json, WRONG_SHAPE).into_response(),
        FaultAction::Truncate => (json, TRUNCATED).into_response(),
        FaultAction::Huge(bytes) => {
            // `{"Padding":"xxx…"}`, streamed in 64 KiB chunks without a Content-Length.
            const CHUNK: u64 = 64 * 1024;
            let total = (*bytes).max(16);
            let body = (0..total.div_ceil(CHUNK)).map(move |i| {
                let start = i * CHUNK;
                let len = CHUNK.min(total - start);
                let chunk: Vec<u8> = (start..start + len)
                    .map(|at| match at {
                        0..=11 => b"{\"Padding\":\""[at as usize],
                        _ if at == total - 2 => b'"',
                        _ if at == total - 1 => b'}',
                        _ => b'x',
                    })
                    .collect();
                Ok::<_, std::io::Error>(Bytes::from(chunk))
            });
            (json, Body::from_stream(stream::iter(body))).into_response()
        }
        FaultAction::Drip(ms) => {
            let every = std::time::Duration::from_millis(*ms);
            let body = stream::iter(TRUNCATED.bytes().chain(*b"Version\": 1}")).then(
                move |b| async move {
                    tokio::time::sleep(every).await;
                    Ok::<_, std::io::Error>(Bytes::from(vec![b]))
                },
            );
            (json, Body::from_stream(body)).into_response()
        }
        FaultAction::Redirect(url) => {
            (StatusCode::FOUND, [(header::LOCATION, url.as_str())], "").into_response()
        }
        _ => return None,
    };
    Some(answer)
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
    pub(super) message: String,
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
