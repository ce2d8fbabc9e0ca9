//! The design's invariants, checked over the fake's history alone (it replays the events
//! from the state the run began with; it knows nothing of the engine):
//!
//! - I1 at most one schema upgrade at a time; none while any node's service runs;
//! - I2 no node serves with a binary version different from the schema version;
//! - I3 a verified backup of the schema being upgraded and the master key exist first;
//! - I6 maintenance mode and the drain flags end as they began.
//!
//! An unsafe attempt the fake refused (a start on mismatched binaries, a schema upgrade or
//! a restore while a node runs, an install under a running service) counts as a violation
//! too: the engine must not even try.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use crate::version::Version;

use super::fake::{Event, Op};

#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub invariant: &'static str,
    /// The index of the event in the history.
    pub at: usize,
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at event {}: {}", self.invariant, self.at, self.what)
    }
}

/// The installation as the history says it is.
struct Replay {
    schema: Version,
    /// Node → the binary version its service serves.
    serving: BTreeMap<String, Version>,
    installed: BTreeMap<String, Option<Version>>,
    drained: BTreeMap<String, bool>,
    maintenance: bool,
    /// Backup file → (schema it holds, verified).
    backups: BTreeMap<PathBuf, (Version, bool)>,
    master_key: bool,
    upgrading: Option<String>,
}

/// I1, I2 and I3: what must hold at every moment, whatever the outcome.
pub fn safety(history: &[Event]) -> Vec<Violation> {
    walk(history).1
}

/// I1, I2, I3 and I6: for a run that ended (upgraded, failed or rolled back).
pub fn all(history: &[Event]) -> Vec<Violation> {
    let (end, mut violations) = walk(history);
    let Some(Event::Began(began)) = history.first() else {
        return violations;
    };
    let at = history.len();
    if end.maintenance != began.maintenance {
        violations.push(Violation {
            invariant: "I6",
            at,
            what: format!(
                "maintenance mode ends {} but began {}",
                on(end.maintenance),
                on(began.maintenance)
            ),
        });
    }
    for n in &began.nodes {
        let now = end.drained.get(&n.name).copied().unwrap_or(false);
        if now != n.drained {
            violations.push(Violation {
                invariant: "I6",
                at,
                what: format!(
                    "{}'s drain flag ends {} but began {}",
                    n.name,
                    on(now),
                    on(n.drained)
                ),
            });
        }
    }
    violations
}

fn on(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn walk(history: &[Event]) -> (Replay, Vec<Violation>) {
    let Some(Event::Began(began)) = history.first() else {
        panic!("the history must begin with Event::Began");
    };
    let mut r = Replay {
        schema: began.schema.clone(),
        serving: began
            .nodes
            .iter()
            .filter_map(|n| Some((n.name.clone(), n.serving.clone()?)))
            .collect(),
        installed: began
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.installed.clone()))
            .collect(),
        drained: began
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.drained))
            .collect(),
        maintenance: began.maintenance,
        backups: began
            .backups
            .iter()
            .map(|b| (b.path.clone(), (b.schema.clone(), b.verified)))
            .collect(),
        master_key: began.master_key_read,
        upgrading: None,
    };
    let mut violations = Vec::new();
    for (at, event) in history.iter().enumerate().skip(1) {
        let mut v = |invariant: &'static str, what: String| {
            violations.push(Violation {
                invariant,
                at,
                what,
            })
        };
        match event {
            Event::Began(_) => v("history", "a second Began".into()),
            Event::Fault { .. } | Event::WatchdogDeleted { .. } | Event::WatchdogCreated { .. } => {
            }
            Event::TaskCancelled { .. } => {}
            Event::MaintenanceSet(on) => r.maintenance = *on,
            Event::DrainSet { node, on } => {
                r.drained.insert(node.clone(), *on);
            }
            Event::MasterKeyRead { .. } => r.master_key = true,
            Event::ServiceStopped { node } => {
                r.serving.remove(node);
            }
            Event::ServiceStarted { node, .. } => {
                // The binary the service runs is what is installed, whatever the fake says.
                match r.installed.get(node).cloned().flatten() {
                    Some(binary) => {
                        r.serving.insert(node.clone(), binary);
                    }
                    None => v("I2", format!("{node} started with nothing installed")),
                }
                if r.upgrading.is_some() {
                    v("I1", format!("{node} started during the schema upgrade"));
                }
            }
            Event::Installed { node, to, .. } => {
                r.installed.insert(node.clone(), Some(to.clone()));
            }
            Event::Uninstalled { node, .. } => {
                r.installed.insert(node.clone(), None);
            }
            Event::BackupMade { path, schema } => {
                r.backups.insert(path.clone(), (schema.clone(), false));
            }
            Event::BackupVerified { path } => match r.backups.get_mut(path) {
                Some(b) => b.1 = true,
                None => v("I3", format!("{} verified but never made", path.display())),
            },
            Event::SchemaUpgradeStarted { node, from, .. } => {
                if let Some(other) = &r.upgrading {
                    v(
                        "I1",
                        format!("a schema upgrade on {node} began while {other}'s ran"),
                    );
                }
                if !r.serving.is_empty() {
                    v(
                        "I1",
                        format!(
                            "a schema upgrade began while {} ran",
                            join(r.serving.keys())
                        ),
                    );
                }
                if *from != r.schema {
                    v(
                        "history",
                        format!("upgrade from {from} but the schema is {}", r.schema),
                    );
                }
                let verified = r
                    .backups
                    .values()
                    .any(|(schema, verified)| *verified && *schema == r.schema);
                if !verified {
                    v(
                        "I3",
                        format!(
                            "no verified backup of the {} schema before its upgrade",
                            r.schema
                        ),
                    );
                }
                if !r.master_key {
                    v(
                        "I3",
                        "no master key backup before the schema upgrade".into(),
                    );
                }
                r.upgrading = Some(node.clone());
            }
            Event::SchemaUpgradeFinished { schema, .. } => {
                if r.upgrading.take().is_none() {
                    v(
                        "history",
                        "a schema upgrade finished that never began".into(),
                    );
                }
                r.schema = schema.clone();
            }
            Event::Restored { path, schema } => {
                if !r.serving.is_empty() {
                    v(
                        "I2",
                        format!(
                            "the database was restored while {} ran",
                            join(r.serving.keys())
                        ),
                    );
                }
                match r.backups.get(path) {
                    Some((s, true)) if s == schema => {}
                    _ => v(
                        "I3",
                        format!("restored {}, not a verified backup", path.display()),
                    ),
                }
                r.schema = schema.clone();
            }
            Event::Released { path } => {
                r.backups.remove(path);
            }
            Event::Refused { op, node, why } => {
                let invariant = match op {
                    Op::UpgradeDatabase => "I1",
                    _ => "I2",
                };
                v(invariant, format!("attempted {op:?} on {node}: {why}"));
            }
        }
        // I2 after every event: every running service serves the schema's version.
        for (node, binary) in &r.serving {
            if *binary != r.schema {
                violations.push(Violation {
                    invariant: "I2",
                    at,
                    what: format!("{node} serves {binary} on a {} schema", r.schema),
                });
            }
        }
    }
    (r, violations)
}

fn join<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    //! The checker itself catches what it must (it would pass anything otherwise).
    use super::super::fake::{BackupFile, Model, NodeState};
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn began(serving: bool) -> Event {
        Event::Began(Model {
            nodes: ["A", "B"]
                .iter()
                .map(|n| NodeState {
                    name: n.to_string(),
                    url: String::new(),
                    primary: *n == "A",
                    installed: Some(v("1.0.0")),
                    serving: serving.then(|| v("1.0.0")),
                    drained: false,
                    watchdog: None,
                })
                .collect(),
            schema: v("1.0.0"),
            maintenance: false,
            backups: vec![BackupFile {
                path: "b.bak".into(),
                schema: v("1.0.0"),
                verified: true,
            }],
            master_key_read: true,
            tasks: Vec::new(),
        })
    }

    fn upgrade() -> [Event; 2] {
        [
            Event::SchemaUpgradeStarted {
                node: "A".into(),
                from: v("1.0.0"),
                to: v("2.0.0"),
            },
            Event::SchemaUpgradeFinished {
                node: "A".into(),
                schema: v("2.0.0"),
                ok: true,
            },
        ]
    }

    fn kinds(vs: &[Violation]) -> Vec<&'static str> {
        vs.iter().map(|v| v.invariant).collect()
    }

    #[test]
    fn an_upgrade_while_a_node_runs_breaks_i1_and_i2() {
        let mut h = vec![began(true), Event::ServiceStopped { node: "A".into() }];
        h.extend(upgrade());
        let k = kinds(&safety(&h));
        assert!(k.contains(&"I1"), "{k:?}");
        assert!(k.contains(&"I2"), "B serves 1.0.0 on a 2.0.0 schema: {k:?}");
    }

    #[test]
    fn a_clean_upgrade_passes_and_a_start_on_old_binaries_does_not() {
        let mut h = vec![began(false)];
        h.extend(upgrade());
        h.push(Event::Installed {
            node: "A".into(),
            from: Some(v("1.0.0")),
            to: v("2.0.0"),
        });
        assert_eq!(safety(&h), vec![]);
        h.push(Event::ServiceStarted {
            node: "B".into(),
            binary: v("1.0.0"),
            schema: v("2.0.0"),
        });
        assert_eq!(kinds(&safety(&h)), ["I2"]);
    }

    #[test]
    fn an_upgrade_without_a_verified_backup_breaks_i3() {
        let Event::Began(mut m) = began(false) else {
            unreachable!()
        };
        m.backups[0].verified = false;
        let mut h = vec![Event::Began(m)];
        h.extend(upgrade());
        assert_eq!(kinds(&safety(&h)), ["I3"]);
    }

    #[test]
    fn flags_left_on_break_i6() {
        let h = vec![
            began(true),
            Event::MaintenanceSet(true),
            Event::DrainSet {
                node: "B".into(),
                on: true,
            },
        ];
        assert_eq!(safety(&h), vec![]);
        assert_eq!(kinds(&all(&h)), ["I6", "I6"]);
    }
}
