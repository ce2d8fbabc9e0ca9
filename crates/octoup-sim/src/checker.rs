//! The invariant checker: replays the event history and reports every violation of
//! I1 (one schema upgrade at a time, none while a node's service runs), I2 (no node serves
//! with a binary different from the schema), I3 (verified database backup and master key
//! read before a schema upgrade; a completed Azure copy or a successful RDS backup taken with
//! every node stopped counts as the backup), I4 (here: a rollback — restore, snapshot revert,
//! rename swap — puts back the schema the first upgrade started from), I5 (no secret on a
//! command line) and I6 (maintenance and drain flags end as they began); R1 (a rehearsal
//! copy started armed). Rehearsal events and events about other databases than the Octopus
//! one count for none of I1–I4 and I6.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::history::{Event, Record};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Invariant {
    I1,
    I2,
    I3,
    I4,
    I5,
    I6,
    /// A rehearsal copy was started armed.
    R1,
}

impl Invariant {
    pub fn description(self) -> &'static str {
        match self {
            Invariant::I1 => {
                "at most one schema upgrade at a time, none while any node's service runs"
            }
            Invariant::I2 => {
                "no node serves with a binary version different from the schema version"
            }
            Invariant::I3 => {
                "a verified database backup and a master key read exist before any schema upgrade"
            }
            Invariant::I4 => "a rollback puts back the schema the database had before the upgrade",
            Invariant::I5 => "secrets never appear on a command line",
            Invariant::I6 => "maintenance mode and drain flags end as they began",
            Invariant::R1 => {
                "a rehearsal copy is disarmed (no production nodes, triggers, subscriptions, targets or workers enabled) before a server starts on it"
            }
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One broken invariant, at the event that broke it (`None`: at the end of the history).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub invariant: Invariant,
    pub seq: Option<u64>,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(
                f,
                "{} violated at event {seq}: {}",
                self.invariant, self.message
            ),
            None => write!(
                f,
                "{} violated at the end: {}",
                self.invariant, self.message
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Accept maintenance mode left on when it began off (as the vendor's guide does).
    pub allow_maintenance_left_on: bool,
}

/// Replays `records` and returns every violation, in history order.
pub fn check(records: &[Record], options: CheckOptions) -> Vec<Violation> {
    let mut c = Checker::default();
    // With a rehearsal SQL Server, production's server gets only the rehearsal's backup.
    let separate = records.iter().any(|r| r.server.is_some());
    for r in records {
        c.seq = Some(r.seq);
        match &r.server {
            // Another server: nothing there is the installation's, but an armed copy and a
            // leaked secret are as bad there.
            Some(_) => match &r.event {
                Event::RehearsalArmed { .. } | Event::SecretLeak { .. } => c.event(&r.event),
                _ => {}
            },
            None => {
                if separate {
                    c.production_untouched(&r.event);
                }
                c.event(&r.event);
            }
        }
    }
    c.seq = None;
    c.finish(options);
    c.violations
}

#[derive(Default)]
struct Checker {
    seq: Option<u64>,
    violations: Vec<Violation>,
    schema: String,
    /// Nodes whose service is not stopped (starting, running or stopping).
    live: BTreeSet<String>,
    /// Nodes serving requests, with the binary they run.
    serving: BTreeMap<String, String>,
    /// Schema upgrades started and not yet finished or failed: node → target.
    upgrading: BTreeMap<String, String>,
    /// Backups created: path → schema version they hold.
    backups: BTreeMap<String, String>,
    /// Schema versions for which a created backup has been verified.
    verified_schemas: BTreeSet<String>,
    master_key_read: bool,
    /// Rollback points taken with every node stopped, by name: the schema they hold, and
    /// whether they are complete (a copy finished, an RDS backup succeeded).
    offline_points: BTreeMap<String, (String, bool)>,
    /// The schema the first upgrade started from.
    original: Option<String>,
    initial_maintenance: Option<bool>,
    maintenance: bool,
    initial_drain: BTreeMap<String, bool>,
    drain: BTreeMap<String, bool>,
}

impl Checker {
    fn violate(&mut self, invariant: Invariant, message: String) {
        self.violations.push(Violation {
            invariant,
            seq: self.seq,
            message,
        });
    }

    /// I2: every serving node's binary equals the schema.
    fn check_serving(&mut self, context: &str) {
        let bad: Vec<(String, String)> = self
            .serving
            .iter()
            .filter(|(_, binary)| **binary != self.schema)
            .map(|(n, b)| (n.clone(), b.clone()))
            .collect();
        for (node, binary) in bad {
            let message = format!(
                "{node} serves with binary {binary} while the schema is {} ({context})",
                self.schema
            );
            self.violate(Invariant::I2, message);
        }
    }

    fn event(&mut self, event: &Event) {
        match event {
            Event::InstallationCreated {
                schema_version,
                maintenance,
                nodes,
            } => {
                self.schema = schema_version.clone();
                self.initial_maintenance = Some(*maintenance);
                self.maintenance = *maintenance;
                for n in nodes {
                    self.initial_drain.insert(n.node.clone(), n.drain);
                    self.drain.insert(n.node.clone(), n.drain);
                    if n.running {
                        self.live.insert(n.node.clone());
                        self.serving
                            .insert(n.node.clone(), n.binary_version.clone());
                    }
                }
                self.check_serving("at creation");
            }
            Event::MaintenanceSet { value, .. } => self.maintenance = *value,
            Event::DrainSet { node, value, .. } => {
                self.drain.insert(node.clone(), *value);
            }
            Event::ServiceStarting { node, .. } => {
                if let Some((upgrader, _)) = self.upgrading.iter().next() {
                    let message = format!("{node} started while {upgrader} upgrades the schema");
                    self.violate(Invariant::I1, message);
                }
                self.live.insert(node.clone());
            }
            Event::ServiceStarted {
                node,
                binary_version,
                ..
            } => {
                self.live.insert(node.clone());
                self.serving.insert(node.clone(), binary_version.clone());
                self.check_serving(&format!("{node} started"));
            }
            Event::ServiceStartFailed { node, .. } | Event::ServiceStopped { node, .. } => {
                self.live.remove(node);
                self.serving.remove(node);
            }
            Event::ServiceStopping { node, .. } => {
                self.serving.remove(node);
            }
            Event::InstallFinished { node, version, .. } => {
                if let Some(binary) = self.serving.get_mut(node) {
                    *binary = version.clone();
                    self.check_serving(&format!("{node} was reinstalled while serving"));
                }
            }
            Event::DbUpgradeStarted { node, from, to } => {
                if !self.upgrading.is_empty() {
                    let others: Vec<String> = self.upgrading.keys().cloned().collect();
                    let message = format!(
                        "{node} started a schema upgrade while {} already upgrades it",
                        others.join(", ")
                    );
                    self.violate(Invariant::I1, message);
                }
                if !self.live.is_empty() {
                    let live: Vec<String> = self.live.iter().cloned().collect();
                    let message = format!(
                        "schema upgrade by {node} started while the service of {} runs",
                        live.join(", ")
                    );
                    self.violate(Invariant::I1, message);
                }
                let point = self
                    .offline_points
                    .values()
                    .any(|(schema, done)| *done && schema == from);
                if !self.verified_schemas.contains(from) && !point {
                    let message = format!(
                        "schema upgrade {from} -> {to} by {node} started without a verified backup of the database at {from}"
                    );
                    self.violate(Invariant::I3, message);
                }
                if !self.master_key_read {
                    let message = format!(
                        "schema upgrade {from} -> {to} by {node} started before the master key was read (backed up)"
                    );
                    self.violate(Invariant::I3, message);
                }
                self.upgrading.insert(node.clone(), to.clone());
                self.original.get_or_insert_with(|| from.clone());
            }
            Event::DbUpgradeFinished { node, to, .. } => {
                self.upgrading.remove(node);
                self.schema = to.clone();
                self.check_serving("the schema changed under it");
            }
            Event::DbUpgradeFailed { node, .. } => {
                self.upgrading.remove(node);
            }
            Event::DbRestored {
                to_schema, path, ..
            } => {
                if let Some(original) = self.original.clone()
                    && original != *to_schema
                {
                    let message = format!(
                        "the rollback from {path} put back schema {to_schema}, not {original} the upgrade started from"
                    );
                    self.violate(Invariant::I4, message);
                }
                self.schema = to_schema.clone();
                self.check_serving("a restore changed the schema under it");
            }
            Event::DbBackupCreated {
                path,
                schema_version,
                ..
            } => {
                self.backups.insert(path.clone(), schema_version.clone());
            }
            Event::DbBackupVerified { path, .. } => {
                if let Some(schema) = self.backups.get(path) {
                    self.verified_schemas.insert(schema.clone());
                }
            }
            Event::DbCopyStarted {
                copy,
                schema_version,
                ..
            } => self.offline_point(copy, schema_version),
            Event::DbCopyCompleted { copy, .. } => self.complete_point(copy),
            Event::RdsTaskCreated {
                s3_arn,
                schema_version: Some(schema),
                task_type,
                ..
            } if task_type == "BACKUP_DB" => self.offline_point(s3_arn, schema),
            Event::RdsTaskFinished {
                s3_arn, lifecycle, ..
            } if lifecycle == "SUCCESS" => self.complete_point(s3_arn),
            Event::DbCopyFailed { copy: name, .. } | Event::DbDropped { database: name } => {
                self.offline_points.remove(name);
            }
            Event::DbRenamed { from, to } => {
                if let Some(p) = self.offline_points.remove(from) {
                    self.offline_points.insert(to.clone(), p);
                }
            }
            Event::MasterKeyRead { .. } => self.master_key_read = true,
            Event::RehearsalArmed { database, what } => {
                let message = format!(
                    "a rehearsal copy was started before it was disarmed: {database}: {what}"
                );
                self.violate(Invariant::R1, message);
            }
            Event::SecretLeak { place, detail } => {
                let message = format!("{place}: {detail}");
                self.violate(Invariant::I5, message);
            }
            _ => {}
        }
    }

    /// R1 with a rehearsal SQL Server: no rehearsal copy is made or disarmed on production's
    /// server (a drop there is an upgrade's snapshot or copy as well, so it is not judged).
    fn production_untouched(&mut self, event: &Event) {
        let what = match event {
            Event::DbRestoredAs { database, .. } => format!("restored {database}"),
            Event::DbRowsChanged {
                database, table, ..
            } => format!("changed {database}.{table}"),
            _ => return,
        };
        let message = format!(
            "a rehearsal SQL Server exists, yet production's SQL Server {what}: it must see only the backup"
        );
        self.violate(Invariant::R1, message);
    }

    /// A copy or RDS backup started: a rollback point only when no node's service runs.
    fn offline_point(&mut self, name: &str, schema: &str) {
        if self.live.is_empty() {
            self.offline_points
                .insert(name.to_string(), (schema.to_string(), false));
        }
    }

    fn complete_point(&mut self, name: &str) {
        if let Some(p) = self.offline_points.get_mut(name) {
            p.1 = true;
        }
    }

    fn finish(&mut self, options: CheckOptions) {
        if let Some(initial) = self.initial_maintenance
            && initial != self.maintenance
            // Left on after beginning off is accepted when asked for.
            && (initial || !options.allow_maintenance_left_on)
        {
            let message = format!(
                "maintenance mode began {} and ended {}",
                on_off(initial),
                on_off(self.maintenance)
            );
            self.violate(Invariant::I6, message);
        }
        let changed: Vec<(String, bool, bool)> = self
            .initial_drain
            .iter()
            .filter_map(|(node, initial)| {
                let end = self.drain.get(node).copied().unwrap_or(*initial);
                (end != *initial).then(|| (node.clone(), *initial, end))
            })
            .collect();
        for (node, initial, end) in changed {
            let message = format!(
                "{node}'s drain flag began {} and ended {}",
                on_off(initial),
                on_off(end)
            );
            self.violate(Invariant::I6, message);
        }
    }
}

fn on_off(v: bool) -> &'static str {
    if v { "on" } else { "off" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::NodeInit;

    const OLD: &str = "2024.1.10";
    const NEW: &str = "2024.2.9409";

    fn records(events: Vec<Event>) -> Vec<Record> {
        events
            .into_iter()
            .enumerate()
            .map(|(i, event)| Record {
                seq: i as u64 + 1,
                at: jiff::Timestamp::UNIX_EPOCH,
                sim_seconds: i as f64,
                server: None,
                event,
            })
            .collect()
    }

    fn created(nodes: &[&str]) -> Event {
        Event::InstallationCreated {
            schema_version: OLD.into(),
            maintenance: false,
            nodes: nodes
                .iter()
                .map(|n| NodeInit {
                    node: n.to_string(),
                    binary_version: OLD.into(),
                    running: true,
                    drain: false,
                    watchdog: false,
                })
                .collect(),
        }
    }

    fn svc(kind: &str, node: &str, binary: &str, schema: &str) -> Event {
        let (node, binary_version, schema_version) = (node.into(), binary.into(), schema.into());
        match kind {
            "starting" => Event::ServiceStarting {
                node,
                binary_version,
                schema_version,
            },
            "started" => Event::ServiceStarted {
                node,
                binary_version,
                schema_version,
                by: "cli".into(),
            },
            "stopping" => Event::ServiceStopping {
                node,
                binary_version,
                schema_version,
            },
            _ => Event::ServiceStopped {
                node,
                binary_version,
                schema_version,
            },
        }
    }

    fn stop(node: &str) -> Vec<Event> {
        vec![
            svc("stopping", node, OLD, OLD),
            svc("stopped", node, OLD, OLD),
        ]
    }

    fn start(node: &str, binary: &str, schema: &str) -> Vec<Event> {
        vec![
            svc("starting", node, binary, schema),
            svc("started", node, binary, schema),
        ]
    }

    fn backup_and_key() -> Vec<Event> {
        vec![
            Event::MasterKeyRead { node: "A".into() },
            Event::DbBackupCreated {
                database: "OctopusDeploy".into(),
                path: "/b/1.bak".into(),
                schema_version: OLD.into(),
                copy_only: true,
                checksum: true,
            },
            Event::DbBackupVerified {
                path: "/b/1.bak".into(),
                schema_version: OLD.into(),
            },
        ]
    }

    fn install(node: &str) -> Event {
        Event::InstallFinished {
            node: node.into(),
            version: NEW.into(),
            previous_version: Some(OLD.into()),
            exit_code: 0,
        }
    }

    fn upgrade(node: &str) -> Vec<Event> {
        vec![
            Event::DbUpgradeStarted {
                node: node.into(),
                from: OLD.into(),
                to: NEW.into(),
            },
            Event::DbUpgradeFinished {
                node: node.into(),
                from: OLD.into(),
                to: NEW.into(),
            },
        ]
    }

    fn maintenance(value: bool) -> Event {
        Event::MaintenanceSet {
            value,
            by: "api:A".into(),
        }
    }

    fn drain(node: &str, value: bool) -> Event {
        Event::DrainSet {
            node: node.into(),
            value,
            by: "cli".into(),
        }
    }

    /// A correct HA upgrade of nodes A and B.
    fn good() -> Vec<Event> {
        let mut e = vec![
            created(&["A", "B"]),
            maintenance(true),
            drain("A", true),
            drain("B", true),
        ];
        e.extend(stop("A"));
        e.extend(stop("B"));
        e.extend(backup_and_key());
        e.push(install("A"));
        e.push(install("B"));
        e.extend(upgrade("A"));
        e.extend(start("A", NEW, NEW));
        e.extend(start("B", NEW, NEW));
        e.extend([drain("A", false), drain("B", false), maintenance(false)]);
        e
    }

    fn invariants(events: Vec<Event>, options: CheckOptions) -> Vec<Invariant> {
        check(&records(events), options)
            .iter()
            .map(|v| v.invariant)
            .collect()
    }

    #[test]
    fn a_correct_upgrade_passes() {
        assert_eq!(check(&records(good()), CheckOptions::default()), vec![]);
    }

    #[test]
    fn i1_upgrade_while_a_node_runs() {
        let mut e = vec![created(&["A", "B"])];
        e.extend(stop("A"));
        e.extend(backup_and_key());
        e.push(install("A"));
        e.extend(upgrade("A")); // B still runs
        let v = check(&records(e), CheckOptions::default());
        assert_eq!(v[0].invariant, Invariant::I1);
        assert!(v[0].message.contains("B"), "{}", v[0]);
        // B serves 2024.1.10 on the new schema as well.
        assert!(v.iter().any(|v| v.invariant == Invariant::I2));
    }

    #[test]
    fn i1_two_concurrent_upgrades() {
        let mut e = vec![created(&["A", "B"])];
        e.extend(stop("A"));
        e.extend(stop("B"));
        e.extend(backup_and_key());
        e.push(Event::DbUpgradeStarted {
            node: "A".into(),
            from: OLD.into(),
            to: NEW.into(),
        });
        e.push(Event::DbUpgradeStarted {
            node: "B".into(),
            from: OLD.into(),
            to: NEW.into(),
        });
        e.push(Event::DbUpgradeFailed {
            node: "B".into(),
            from: OLD.into(),
            to: NEW.into(),
            reason: "deadlock".into(),
        });
        e.push(Event::DbUpgradeFinished {
            node: "A".into(),
            from: OLD.into(),
            to: NEW.into(),
        });
        assert_eq!(invariants(e, CheckOptions::default()), vec![Invariant::I1]);
    }

    #[test]
    fn i1_start_during_upgrade() {
        let mut e = vec![created(&["A"])];
        e.extend(stop("A"));
        e.extend(backup_and_key());
        e.push(Event::DbUpgradeStarted {
            node: "A".into(),
            from: OLD.into(),
            to: NEW.into(),
        });
        e.push(svc("starting", "A", OLD, OLD));
        assert_eq!(invariants(e, CheckOptions::default()), vec![Invariant::I1]);
    }

    #[test]
    fn i2_old_node_started_on_new_schema_and_restore_under_running_node() {
        let mut e = vec![created(&["A", "B"])];
        e.extend(stop("A"));
        e.extend(stop("B"));
        e.extend(backup_and_key());
        e.push(install("A"));
        e.extend(upgrade("A"));
        e.extend(start("A", NEW, NEW));
        e.extend(start("B", OLD, NEW)); // B was never upgraded
        let v = check(&records(e), CheckOptions::default());
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, Invariant::I2);
        assert!(
            v[0].message.contains("B serves with binary 2024.1.10"),
            "{}",
            v[0]
        );

        let mut e = vec![created(&["A"])];
        e.push(Event::DbRestored {
            database: "OctopusDeploy".into(),
            path: "/b/x.bak".into(),
            from_schema: OLD.into(),
            to_schema: "2023.4.8166".into(),
        });
        assert_eq!(invariants(e, CheckOptions::default()), vec![Invariant::I2]);
    }

    #[test]
    fn i3_needs_a_verified_backup_of_the_current_schema_and_the_master_key() {
        let without = |skip: usize| {
            let mut e = vec![created(&["A"])];
            e.extend(stop("A"));
            let mut b = backup_and_key();
            b.remove(skip);
            e.extend(b);
            e.push(install("A"));
            e.extend(upgrade("A"));
            invariants(e, CheckOptions::default())
        };
        assert_eq!(without(0), vec![Invariant::I3]); // no master key read
        assert_eq!(without(1), vec![Invariant::I3]); // verified a file never backed up
        assert_eq!(without(2), vec![Invariant::I3]); // backup never verified
    }

    /// Stop, read the key, take `point` (with A stopped or before), upgrade.
    fn upgrade_with(point: Vec<Event>, before_stop: bool) -> Vec<Invariant> {
        let mut e = vec![created(&["A"])];
        if before_stop {
            e.extend(point.clone());
        }
        e.extend(stop("A"));
        e.push(Event::MasterKeyRead { node: "A".into() });
        if !before_stop {
            e.extend(point);
        }
        e.push(install("A"));
        e.extend(upgrade("A"));
        invariants(e, CheckOptions::default())
    }

    #[test]
    fn i3_accepts_an_offline_azure_copy_or_rds_backup_once_complete() {
        let copy = |done: Option<Event>| {
            let mut v = vec![Event::DbCopyStarted {
                copy: "db_octoup_x".into(),
                source: "OctopusDeploy".into(),
                schema_version: OLD.into(),
            }];
            v.extend(done);
            v
        };
        let completed = Event::DbCopyCompleted {
            copy: "db_octoup_x".into(),
            source: "OctopusDeploy".into(),
            schema_version: OLD.into(),
        };
        assert_eq!(upgrade_with(copy(Some(completed.clone())), false), vec![]);
        assert_eq!(upgrade_with(copy(None), false), vec![Invariant::I3]);
        // Taken while A still served: its data may not be the last.
        assert_eq!(
            upgrade_with(copy(Some(completed)), true),
            vec![Invariant::I3]
        );
        let failed = Event::DbCopyFailed {
            copy: "db_octoup_x".into(),
            source: "OctopusDeploy".into(),
            reason: "SUSPECT".into(),
        };
        assert_eq!(upgrade_with(copy(Some(failed)), false), vec![Invariant::I3]);
        let rds = |lifecycle: &str| {
            vec![
                Event::RdsTaskCreated {
                    task_id: 1,
                    task_type: "BACKUP_DB".into(),
                    database: "OctopusDeploy".into(),
                    s3_arn: "arn:aws:s3:::b/db.bak".into(),
                    schema_version: Some(OLD.into()),
                },
                Event::RdsTaskFinished {
                    task_id: 1,
                    task_type: "BACKUP_DB".into(),
                    lifecycle: lifecycle.into(),
                    s3_arn: "arn:aws:s3:::b/db.bak".into(),
                },
            ]
        };
        assert_eq!(upgrade_with(rds("SUCCESS"), false), vec![]);
        assert_eq!(upgrade_with(rds("ERROR"), false), vec![Invariant::I3]);
        // A snapshot alone is no backup (snapshots page: "not a substitute").
        let snapshot = vec![Event::DbSnapshotCreated {
            snapshot: "db_octoup_x".into(),
            source: "OctopusDeploy".into(),
            schema_version: OLD.into(),
        }];
        assert_eq!(upgrade_with(snapshot, false), vec![Invariant::I3]);
    }

    #[test]
    fn i4_a_rollback_must_put_back_the_original_schema() {
        let rollback = |to: &str| {
            let mut e = vec![created(&["A"])];
            e.extend(stop("A"));
            e.extend(backup_and_key());
            e.push(install("A"));
            e.extend(upgrade("A"));
            e.push(Event::DbRestored {
                database: "OctopusDeploy".into(),
                path: "rename:db_octoup_x".into(),
                from_schema: NEW.into(),
                to_schema: to.into(),
            });
            invariants(e, CheckOptions::default())
        };
        assert_eq!(rollback(OLD), vec![]);
        assert_eq!(rollback("2023.4.8166"), vec![Invariant::I4]);
    }

    #[test]
    fn i5_secret_leaks() {
        let e = vec![
            created(&["A"]),
            Event::SecretLeak {
                place: "command line of sqlcmd".into(),
                detail: "-P".into(),
            },
        ];
        assert_eq!(invariants(e, CheckOptions::default()), vec![Invariant::I5]);
    }

    #[test]
    fn i6_flags_must_end_as_they_began() {
        let mut e = good();
        e.pop(); // maintenance left on
        assert_eq!(
            invariants(e.clone(), CheckOptions::default()),
            vec![Invariant::I6]
        );
        let allow = CheckOptions {
            allow_maintenance_left_on: true,
        };
        assert_eq!(invariants(e, allow), vec![]);

        let mut e = good();
        e.remove(e.len() - 2); // B left drained
        let v = check(&records(e), allow);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].invariant, Invariant::I6);
        assert!(
            v[0].message
                .contains("B's drain flag began off and ended on"),
            "{}",
            v[0]
        );
        assert_eq!(v[0].seq, None);
    }

    #[test]
    fn an_armed_rehearsal_is_r1_and_rehearsal_events_touch_nothing_else() {
        let v = check(
            &records(vec![
                created(&["A"]),
                Event::DbRestoredAs {
                    database: "Copy".into(),
                    path: "p".into(),
                    schema_version: OLD.into(),
                },
                Event::RehearsalArmed {
                    database: "Copy".into(),
                    what: "2 enabled subscriptions".into(),
                },
                Event::RehearsalMigrationStarted {
                    database: "Copy".into(),
                    from: OLD.into(),
                    to: NEW.into(),
                },
                Event::RehearsalMigrationFinished {
                    database: "Copy".into(),
                    from: OLD.into(),
                    to: NEW.into(),
                },
            ]),
            CheckOptions::default(),
        );
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, Invariant::R1);
        assert_eq!(v[0].seq, Some(3));
        assert!(
            v[0].message
                .contains("before it was disarmed: Copy: 2 enabled subscriptions")
        );
    }

    #[test]
    fn with_a_rehearsal_sql_server_production_sees_only_the_backup() {
        let restored = Event::DbRestoredAs {
            database: "Copy".into(),
            path: "p".into(),
            schema_version: OLD.into(),
        };
        let on = |server: Option<&str>, mut r: Vec<Record>| {
            for x in &mut r[1..] {
                x.server = server.map(str::to_string);
            }
            r
        };
        let made = Event::SqlServerCreated {
            address: "127.0.0.1,1".into(),
        };
        let armed = Event::RehearsalArmed {
            database: "Copy".into(),
            what: "1 node".into(),
        };
        // The restore on the rehearsal server: fine; its backups count for nothing here.
        let mut r = on(
            Some("rehearsal"),
            records(vec![created(&["A"]), made.clone(), restored.clone()]),
        );
        assert_eq!(check(&r, CheckOptions::default()), vec![]);
        // The same restore on production's server: R1.
        r.extend(
            on(None, records(vec![created(&["A"]), restored.clone()]))
                .into_iter()
                .skip(1),
        );
        let v = check(&r, CheckOptions::default());
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].invariant, Invariant::R1);
        assert!(
            v[0].message.contains("must see only the backup"),
            "{}",
            v[0]
        );
        // An armed copy on the rehearsal server is R1 too; without one, production restores are fine.
        let r = on(Some("rehearsal"), records(vec![created(&["A"]), armed]));
        assert_eq!(check(&r, CheckOptions::default()).len(), 1);
        assert_eq!(
            check(
                &records(vec![created(&["A"]), restored]),
                CheckOptions::default()
            ),
            vec![]
        );
    }
}
