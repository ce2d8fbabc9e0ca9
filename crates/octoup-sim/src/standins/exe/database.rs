//! `database --upgrade` (with its refusals, the upgrade lock and the schema change) and
//! `database-upgrade-status`.

use serde_json::json;

use super::args::{Opts, format};
use super::invocation::{Exe, error};
use crate::history::Event;
use crate::standins::{Output, apply_fault, try_lock_file};
use crate::state::{ServiceState, State, StoreError, UpgradeInProgress};
use crate::version;

impl Exe<'_> {
    pub(super) fn database(&self, opts: &Opts) -> Result<Output, Output> {
        if !opts.flag("upgrade") {
            let other = ["create", "delete", "grant"]
                .into_iter()
                .find(|o| opts.flag(o));
            return Err(error(
                1,
                match other {
                    Some(o) => format!("database --{o} is not simulated by octoup-sim."),
                    None => {
                        "No action was specified. Use --create, --upgrade, --delete or --grant."
                            .to_string()
                    }
                },
            ));
        }
        let skip_license = opts.flag("skipLicenseCheck");
        let fault = apply_fault(self.store, "db-upgrade", Some(self.node))?;
        let node = self.node;
        // Only one process can upgrade the schema; a second one deadlocks in SQL.
        let lock = try_lock_file(&self.store.dir().join("db-upgrade.lock"))?;
        let started = self.store.update(|s| {
            let binary = s.node(node).map(|n| n.version().to_string()).unwrap_or_default();
            let schema = s.database.schema_version.clone();
            let refuse = |s: &mut State, reason: String| {
                s.record(Event::DbUpgradeRefused {
                    node: node.to_string(),
                    reason: reason.clone(),
                });
                Ok::<_, StoreError>(Err(error(1, reason)))
            };
            if s.node(node).is_some_and(|n| n.service != ServiceState::Stopped) {
                return refuse(
                    s,
                    format!(
                        "The Octopus Server service on this node ({node}) is still running. Stop it with `service --stop` before upgrading the database."
                    ),
                );
            }
            let running = s.nodes_seen_running(node);
            if !running.is_empty() {
                return refuse(
                    s,
                    format!(
                        "The database upgrade was aborted because these Octopus Server nodes still appear to be running: {}. Stop every node that uses this database and try again; a node that has just stopped is considered running for up to {} seconds after it was last seen.",
                        running.join(", "),
                        s.durations.node_stale_after
                    ),
                );
            }
            match version::compare(&binary, &schema) {
                std::cmp::Ordering::Equal => {
                    return Ok(Ok(None));
                }
                std::cmp::Ordering::Less => {
                    return refuse(
                        s,
                        format!(
                            "The database schema ({schema}) was upgraded by a newer Octopus Server than the one installed here ({binary}). Downgrading a database is not supported; restore the backup taken before the upgrade instead."
                        ),
                    );
                }
                std::cmp::Ordering::Greater => {}
            }
            if !skip_license && !s.database.license.covers(&binary) {
                let l = &s.database.license;
                let reason = format!(
                    "Your license does not cover Octopus Server {binary}: its maintenance period ends {} and covers versions up to {}. No changes were made to the database. Reinstall the previous version or update the license, or use --skipLicenseCheck.",
                    l.maintenance_expires, l.max_version_covered
                );
                return refuse(s, reason);
            }
            s.record(Event::DbUpgradeStarted {
                node: node.to_string(),
                from: schema.clone(),
                to: binary.clone(),
            });
            if lock.is_none() {
                let reason = "Transaction (Process ID 61) was deadlocked on lock resources with another process and has been chosen as the deadlock victim. Rerun the transaction. The entire upgrade has been rolled back to its last known good state.".to_string();
                s.record(Event::DbUpgradeFailed {
                    node: node.to_string(),
                    from: schema,
                    to: binary,
                    reason: reason.clone(),
                });
                return Ok(Err(error(1, reason)));
            }
            if let Some(previous) = s.database.upgrade.take() {
                // Its process died while holding the lock: SQL rolled its transaction back.
                s.record(Event::DbUpgradeFailed {
                    node: previous.node,
                    from: previous.from,
                    to: previous.to,
                    reason: "the upgrading process ended before the upgrade finished; the upgrade was rolled back".to_string(),
                });
            }
            s.database.upgrade = Some(UpgradeInProgress {
                node: node.to_string(),
                from: schema.clone(),
                to: binary.clone(),
                started_sim: s.now_sim(),
            });
            let secs = s.migration_seconds(&schema, &binary);
            let failure = s.database.data.migration_failure.clone();
            Ok(Ok(Some((schema, binary, secs, failure))))
        })??;
        let Some((from, to, secs, failure)) = started else {
            return Ok(Output::ok(format!(
                "The database schema is already up to date ({}). No upgrade scripts need to run.",
                self.binary()
            )));
        };
        let clock = self.state.clock();
        // A data-dependent failure in the content fails the same way as the injected one.
        let failed = match (fault, failure) {
            (Some(code), _) => Some((code, "Upgrade script 'Script0412 - Add index to ServerTask.sql' failed: Timeout expired. The timeout period elapsed prior to completion of the operation. The entire upgrade has been rolled back to its last known good state.".to_string())),
            (None, Some(message)) => Some((1, message)),
            (None, None) => None,
        };
        if let Some((code, reason)) = failed {
            clock.sleep_sim(secs / 2.0);
            self.store.update(|s| {
                s.database.upgrade = None;
                s.record(Event::DbUpgradeFailed {
                    node: node.to_string(),
                    from: from.clone(),
                    to: to.clone(),
                    reason: reason.clone(),
                });
                Ok::<_, StoreError>(())
            })?;
            return Err(error(code, reason));
        }
        clock.sleep_sim(secs);
        self.store.update(|s| {
            s.database.schema_version = to.clone();
            s.database.upgrade = None;
            s.record(Event::DbUpgradeFinished {
                node: node.to_string(),
                from: from.clone(),
                to: to.clone(),
            });
            s.after_schema_upgrade();
            Ok::<_, StoreError>(())
        })?;
        drop(lock);
        Ok(Output::ok(format!(
            "Upgrading the database from {from} to {to}...\nThe database was upgraded successfully to {to}."
        )))
    }

    pub(super) fn upgrade_status(&self, opts: &Opts) -> Result<Output, Output> {
        let binary = self.binary();
        if version::compare(&binary, "2023.4.1149").is_lt() {
            return Err(error(
                1,
                format!(
                    "Command 'database-upgrade-status' is not supported by Octopus Server {binary} (added in 2023.4.1149)."
                ),
            ));
        }
        let format = format(opts, &["text", "json"], "text")?;
        self.fault(
            "db-upgrade-status",
            "A network-related or instance-specific error occurred while establishing a connection to SQL Server.",
        )?;
        let schema = self.store.read(|s| s.database.schema_version.clone())?;
        let required = version::compare(&binary, &schema).is_gt();
        if format == "json" {
            let body = json!({
                "IsUpgradeRequired": required,
                "CurrentSchemaVersion": schema,
                "ServerVersion": binary,
            });
            return Ok(Output::ok(body.to_string()));
        }
        Ok(Output::ok(match version::compare(&binary, &schema) {
            std::cmp::Ordering::Greater => format!(
                "The database schema is at version {schema}. Upgrade scripts need to run before Octopus Server {binary} can start."
            ),
            std::cmp::Ordering::Equal => format!(
                "The database schema is up to date with Octopus Server {binary}. No upgrade scripts need to run."
            ),
            std::cmp::Ordering::Less => format!(
                "The database schema ({schema}) is newer than this Octopus Server ({binary})."
            ),
        }))
    }
}
