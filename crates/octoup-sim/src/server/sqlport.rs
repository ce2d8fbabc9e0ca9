//! The simulator's "SQL Server port" (`state.sql_port` on 127.0.0.1): what `octoup-sim
//! container` reaches through `DB_CONNECTION_STRING` where the real server speaks TDS. Its
//! own protocol, HTTP/JSON: `POST /v1/<op>` with `{"login", "password", "database", …}`;
//! every request logs in again (login and database checked as SQL Server does). Answers
//! 200 with JSON, or 4xx `{"number": N, "message": "…"}` with SQL Server's error.
//!
//! Ops: `connect` (`version`, `master_key`) → the database's schema, size, Octopus rows, the
//! time scale, the migration time and failure, and what is still armed; `armed` (`what`);
//! `migration-start` / `migration-finish` / `migration-fail` (`from`, `to`, `error`);
//! `register-node` (`node`); `secret-leak` (`place`, `detail`). Events go in this
//! installation's history; the password and master key are never recorded.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::shared::Shared;
use crate::history::Event;
use crate::state::{OtherKind, State, StoreError};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/{op}", post(handle))
        .with_state(shared)
}

/// A SQL Server error as the port answers it.
struct SqlError(StatusCode, u32, String);

impl IntoResponse for SqlError {
    fn into_response(self) -> Response {
        (
            self.0,
            axum::Json(json!({ "number": self.1, "message": self.2 })),
        )
            .into_response()
    }
}

fn text(body: &Value, key: &str) -> String {
    body.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// SQL Server's login checks: the login and its password, then the database.
fn login(s: &State, body: &Value) -> Result<String, SqlError> {
    let user = text(body, "login");
    if user != s.secrets.sql_login || text(body, "password") != s.secrets.sql_password {
        return Err(SqlError(
            StatusCode::UNAUTHORIZED,
            18456,
            format!("Login failed for user '{user}'."),
        ));
    }
    let database = text(body, "database");
    if s.content_of(&database).is_none() {
        return Err(SqlError(
            StatusCode::NOT_FOUND,
            4060,
            format!(
                "Cannot open database \"{database}\" requested by the login. The login failed."
            ),
        ));
    }
    Ok(s.database_name(&database))
}

/// What in `database` a started server would act on: production's nodes, enabled
/// subscriptions, triggers, targets and workers.
fn armed(s: &State, database: &str) -> Vec<String> {
    let Some((data, _)) = s.content_of(database) else {
        return Vec::new();
    };
    let mut what = Vec::new();
    let production: Vec<&String> = data
        .nodes
        .iter()
        .filter(|n| s.nodes.iter().any(|p| p.name == **n))
        .collect();
    if !production.is_empty() {
        what.push(format!(
            "OctopusServerNode rows of production nodes {}",
            production
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for (n, table) in [
        (data.subscriptions, "subscriptions"),
        (data.project_triggers, "project triggers"),
        (data.machines, "deployment targets"),
        (data.workers, "workers"),
    ] {
        if n > 0 {
            what.push(format!("{n} enabled {table}"));
        }
    }
    what
}

fn set_schema(s: &mut State, database: &str, to: &str) {
    if s.is_octopus(database) {
        s.database.schema_version = to.to_string();
    } else if let Some(d) = s
        .instance_dbs
        .databases
        .iter_mut()
        .find(|d| d.name.eq_ignore_ascii_case(database))
    {
        d.content.schema_version = to.to_string();
    }
}

async fn handle(
    AxState(shared): AxState<Arc<Shared>>,
    Path(op): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return SqlError(StatusCode::BAD_REQUEST, 0, "the request is not JSON".into())
            .into_response();
    };
    let result = shared
        .update(move |s| Ok::<_, StoreError>(run(s, &op, &body)))
        .await;
    match result {
        Ok(Ok(v)) => (StatusCode::OK, axum::Json(v)).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(e) => SqlError(StatusCode::INTERNAL_SERVER_ERROR, 0, e.to_string()).into_response(),
    }
}

fn run(s: &mut State, op: &str, body: &Value) -> Result<Value, SqlError> {
    let database = login(s, body)?;
    let from = text(body, "from");
    let to = text(body, "to");
    match op {
        "connect" => {
            let (data, schema) = s.content_of(&database).unwrap_or_default();
            let version = text(body, "version");
            let copying = s.instance_dbs.get(&database).is_some_and(
                |d| matches!(&d.kind, OtherKind::Copy { done_sim, .. } if *done_sim > s.now_sim()),
            );
            if copying {
                return Err(SqlError(
                    StatusCode::CONFLICT,
                    4060,
                    format!(
                        "Cannot open database \"{database}\" requested by the login. The login failed."
                    ),
                ));
            }
            let license = if s.is_octopus(&database) {
                s.database.license.clone()
            } else {
                s.instance_dbs
                    .get(&database)
                    .map(|d| d.content.license.clone())
                    .unwrap_or_else(|| s.database.license.clone())
            };
            Ok(json!({
                "database": database,
                "schema_version": schema,
                "size_gb": s.sql.size_gb,
                "time_scale": s.time_scale,
                "migration_seconds": s.migration_seconds(&schema, &version),
                "data": data,
                "license": license,
                "master_key_ok": text(body, "master_key") == s.secrets.master_key,
                "armed": armed(s, &database),
                "server": s.server,
                "spaces": s.spaces,
                "machines": s.machines,
            }))
        }
        "armed" => {
            s.record(Event::RehearsalArmed {
                database,
                what: text(body, "what"),
            });
            Ok(json!({}))
        }
        "migration-start" => {
            s.record(Event::RehearsalMigrationStarted { database, from, to });
            Ok(json!({}))
        }
        "migration-finish" => {
            set_schema(s, &database, &to);
            s.record(Event::RehearsalMigrationFinished { database, from, to });
            Ok(json!({}))
        }
        "migration-fail" => {
            s.record(Event::RehearsalMigrationFailed {
                database,
                from,
                to,
                error: text(body, "error"),
            });
            Ok(json!({}))
        }
        "register-node" => {
            let node = text(body, "node");
            let mut added = false;
            s.change_content(&database, |d| {
                if !d.nodes.contains(&node) {
                    d.nodes.push(node.clone());
                    d.node_status.retain(|n| *n != node);
                    d.node_status.push(node.clone());
                    added = true;
                }
            });
            if added {
                s.record(Event::DbRowsChanged {
                    database,
                    table: "OctopusServerNode".into(),
                    statement: "insert".into(),
                    rows: 1,
                });
            }
            Ok(json!({}))
        }
        "secret-leak" => {
            s.record(Event::SecretLeak {
                place: text(body, "place"),
                detail: text(body, "detail"),
            });
            Ok(json!({}))
        }
        other => Err(SqlError(
            StatusCode::NOT_FOUND,
            0,
            format!("unknown operation {other}"),
        )),
    }
}
