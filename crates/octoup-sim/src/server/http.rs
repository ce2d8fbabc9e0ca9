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
