//! The HTTP side of the simulator against reference/octopus-api.md: shapes, status codes,
//! authentication, node listeners that vanish with the service, the feed and downloads,
//! and every HTTP fault.

mod api;
mod downloads;
mod faults;
mod listeners;
mod nodes;
mod tasks;

use serde_json::{Value, json};

const MSG_NOT_LOGGED_IN: &str =
    "You must be logged in to perform this action. Please provide a valid API key or log in again.";
const MSG_FORBIDDEN: &str = "You do not have permission to perform this action. Please contact your Octopus administrator. Missing permission: AdministerSystem";

const FAST: &str = "time_scale = 0.001\n";

fn two_nodes() -> String {
    format!("{FAST}nodes = 2\n")
}

/// Asserts an Octopus error response: the status and `{"ErrorMessage": message, "Errors": []}`.
async fn assert_error(response: reqwest::Response, status: u16, message: &str) {
    assert_eq!(response.status(), status, "{}", response.url());
    assert_eq!(error_message(&response.json().await.unwrap()), message);
}

fn error_message(body: &Value) -> &str {
    assert_eq!(body["Errors"], json!([]), "{body}");
    body["ErrorMessage"].as_str().unwrap()
}

/// `TotalResults` of a page.
fn count(page: &Value) -> u64 {
    page["TotalResults"].as_u64().unwrap()
}
