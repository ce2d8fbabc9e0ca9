//! What the endpoint modules of a node's API share: the node that answers, request bodies
//! as ASP.NET binds them, the paging envelope and Octopus's timestamps.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};

use super::query::Query;
use crate::server::http::{ApiError, json_response};
use crate::server::shared::Shared;
use crate::state::State;

pub const MSG_NO_BODY: &str = "No request body was supplied.";

/// The API of one node: the daemon's shared state plus the node that answers.
#[derive(Clone)]
pub(crate) struct NodeApi {
    pub shared: Arc<Shared>,
    pub node: String,
}

impl NodeApi {
    pub async fn state(&self) -> Result<State, ApiError> {
        Ok(self.shared.state().await?)
    }

    /// `by` for history events caused through this node's API.
    pub fn by(&self) -> String {
        format!("api:{}", self.node)
    }
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
    use serde_json::json;

    use super::*;
    use crate::server::http::MSG_MODEL_INVALID;

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
