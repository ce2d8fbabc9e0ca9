//! `DELETE` and `UPDATE` of the Octopus rows a rehearsal disarms (the vendor's statements
//! for a cloned instance), in the current database: the Octopus one or another holding a
//! copy of it. Each change records `db-rows-changed` naming the database.

use super::execute::Sql;
use super::parse::{Cond, Expr};
use super::select::{Value, octopus_rows};
use crate::history::Event;
use crate::standins::Output;
use crate::state::{OctopusData, OtherKind};

/// What a statement does to the rows it matched.
enum Change {
    /// Rows of a counted table deleted or disabled.
    Count(u32),
    /// Rows removed by id (nodes, node status, extensions).
    Remove(Vec<String>),
    /// The `Configuration` JSON's new installation id.
    Installation(String),
    Nothing,
}

impl Sql<'_> {
    /// `DELETE` (`sets` None) or `UPDATE … SET` of an Octopus table.
    pub(super) fn dml(
        &self,
        table: &[String],
        filter: &[Cond],
        sets: Option<&[(String, Expr)]>,
    ) -> Result<Output, String> {
        let state = self.state()?;
        let server = self.server(&state);
        let name = table.join(".");
        let Some((data, canonical)) = server.octopus_table(&name) else {
            return Err(self.msg(208, 16, &format!("Invalid object name '{name}'.")));
        };
        let database = if table.len() == 3 {
            table[0].clone()
        } else {
            self.current.borrow().clone()
        };
        let database = state.database_name(&database);
        if matches!(
            state.instance_dbs.get(&database).map(|d| &d.kind),
            Some(OtherKind::Snapshot { .. })
        ) {
            return Err(self.msg(
                3906,
                16,
                &format!(
                    "Failed to update database \"{database}\" because the database is read-only."
                ),
            ));
        }
        let sql_error = |(n, l, t): (u32, u32, String)| self.msg(n, l, &t);
        let matched = server
            .matching(octopus_rows(&data, canonical), filter)
            .map_err(sql_error)?;
        let ids: Vec<String> = matched
            .iter()
            .filter_map(|r| match r.get("id") {
                Some(Value::Str(id)) => Some(id.clone()),
                _ => None,
            })
            .collect();
        let counted = matches!(
            canonical,
            "Subscription" | "ProjectTrigger" | "Machine" | "Worker"
        );
        let (change, statement) = match sets {
            None if counted => (Change::Count(matched.len() as u32), "delete"),
            None if matches!(canonical, "Configuration" | "ServerTask") => {
                // Not simulated: the rehearsal never deletes them.
                (Change::Nothing, "delete")
            }
            None => (Change::Remove(ids), "delete"),
            Some(sets) => {
                let mut change = Change::Nothing;
                for (column, expr) in sets {
                    change = match (canonical, column.to_ascii_lowercase().as_str()) {
                        (_, "isdisabled") if counted => {
                            let disable = matched
                                .first()
                                .map(|row| server.value(expr, row))
                                .transpose()
                                .map_err(sql_error)?
                                .is_some_and(|v| v == Value::Int(1));
                            // Only enabled rows are simulated: enabling changes none.
                            if disable {
                                Change::Count(matched.len() as u32)
                            } else {
                                Change::Nothing
                            }
                        }
                        ("Configuration", "json") => match matched.first() {
                            Some(row) => {
                                let json = server.value(expr, row).map_err(sql_error)?;
                                let doc: serde_json::Value = json
                                    .text()
                                    .and_then(|t| serde_json::from_str(&t).ok())
                                    .unwrap_or_default();
                                Change::Installation(
                                    doc.get("InstallationId")
                                        .and_then(|v| v.as_str())
                                        .unwrap_or_default()
                                        .to_string(),
                                )
                            }
                            None => Change::Nothing,
                        },
                        _ => {
                            return Err(self.msg(
                                207,
                                16,
                                &format!("Invalid column name '{column}'."),
                            ));
                        }
                    };
                }
                (change, "update")
            }
        };
        let rows = match (&change, sets.is_some()) {
            (Change::Nothing, false) => 0,
            _ => matched.len() as u64,
        };
        let changes_rows = !matches!(change, Change::Nothing) && rows > 0;
        if changes_rows {
            self.change(|s| {
                s.change_content(&database, |d| apply(d, canonical, &change));
                s.record(Event::DbRowsChanged {
                    database: database.clone(),
                    table: canonical.to_string(),
                    statement: statement.to_string(),
                    rows,
                });
            })?;
        }
        Ok(Output::ok(if self.nocount.get() {
            String::new()
        } else {
            format!("({rows} rows affected)")
        }))
    }
}

fn apply(d: &mut OctopusData, table: &str, change: &Change) {
    match change {
        Change::Count(n) => {
            let count = match table {
                "Subscription" => &mut d.subscriptions,
                "ProjectTrigger" => &mut d.project_triggers,
                "Machine" => &mut d.machines,
                _ => &mut d.workers,
            };
            *count = count.saturating_sub(*n);
        }
        Change::Remove(ids) => match table {
            "OctopusServerNode" => d.nodes.retain(|n| !ids.contains(&crate::state::node_id(n))),
            "OctopusServerNodeStatus" => d
                .node_status
                .retain(|n| !ids.contains(&crate::state::node_id(n))),
            _ => d.extensions.retain(|e| !ids.contains(e)),
        },
        Change::Installation(id) => d.installation_id = id.clone(),
        Change::Nothing => {}
    }
}
