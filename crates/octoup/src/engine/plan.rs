//! The steps of an upgrade, with estimated durations and the outage they add up to.
//! `octoup plan` shows it (changing nothing); `octoup upgrade` journals the same list.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::engine::preflight::{Facts, bytes};
use crate::journal::{Run, RunStatus};
use crate::process::clock::human_duration;

/// Step names, in order. Per-node steps carry the node.
pub const PREFLIGHT: &str = "preflight";
pub const STAGE_INSTALLER: &str = "stage-installer";
pub const STAGE_ROLLBACK: &str = "stage-rollback-installer";
pub const BACKUP_MASTER_KEY: &str = "backup-master-key";
pub const BACKUP_LICENSE: &str = "backup-license";
pub const MAINTENANCE_ON: &str = "maintenance-on";
pub const DRAIN: &str = "drain";
pub const DELETE_WATCHDOG: &str = "delete-watchdog";
pub const STOP: &str = "stop";
pub const BACKUP_DATABASE: &str = "backup-database";
pub const VERIFY_BACKUP: &str = "verify-backup";
pub const INSTALL: &str = "install";
pub const UPGRADE_DATABASE: &str = "upgrade-database";
pub const START: &str = "start";
pub const VERIFY: &str = "verify";
pub const CREATE_WATCHDOG: &str = "create-watchdog";
pub const UNDRAIN: &str = "undrain";
pub const MAINTENANCE_RESTORE: &str = "maintenance-restore";

/// One step of the plan: `(name, node)`.
pub type StepKey = (&'static str, Option<String>);

/// The steps for these nodes, in journal order. `primary` runs the database upgrade.
pub fn steps(nodes: &[String], primary: &str, rollback: bool) -> Vec<StepKey> {
    let mut out: Vec<StepKey> = vec![(PREFLIGHT, None), (STAGE_INSTALLER, None)];
    if rollback {
        out.push((STAGE_ROLLBACK, None));
    }
    out.push((BACKUP_MASTER_KEY, None));
    out.push((BACKUP_LICENSE, None));
    out.push((MAINTENANCE_ON, None));
    let each = |out: &mut Vec<StepKey>, name: &'static str| {
        for n in nodes {
            out.push((name, Some(n.clone())));
        }
    };
    each(&mut out, DRAIN);
    each(&mut out, DELETE_WATCHDOG);
    each(&mut out, STOP);
    out.push((BACKUP_DATABASE, None));
    out.push((VERIFY_BACKUP, None));
    each(&mut out, INSTALL);
    out.push((UPGRADE_DATABASE, Some(primary.to_string())));
    each(&mut out, START);
    out.push((VERIFY, None));
    each(&mut out, CREATE_WATCHDOG);
    each(&mut out, UNDRAIN);
    out.push((MAINTENANCE_RESTORE, None));
    out
}

/// Whether a step is part of the outage (between the first stop and every node serving).
pub fn in_outage(name: &str) -> bool {
    matches!(
        name,
        STOP | BACKUP_DATABASE | VERIFY_BACKUP | INSTALL | UPGRADE_DATABASE | START | VERIFY
    )
}

/// Seconds a step takes when nothing better is known (a mid-size installation).
pub fn default_estimate(name: &str) -> f64 {
    match name {
        STAGE_INSTALLER | STAGE_ROLLBACK => 120.0,
        BACKUP_MASTER_KEY | BACKUP_LICENSE | MAINTENANCE_ON | MAINTENANCE_RESTORE => 2.0,
        DRAIN => 5.0,
        DELETE_WATCHDOG | CREATE_WATCHDOG | UNDRAIN => 3.0,
        STOP => 30.0,
        BACKUP_DATABASE => 300.0,
        VERIFY_BACKUP => 120.0,
        INSTALL => 180.0,
        UPGRADE_DATABASE => 300.0,
        START => 90.0,
        VERIFY => 5.0,
        _ => 1.0,
    }
}

/// Measured step durations (the longest per name) of the newest upgraded run.
pub fn measured(history: &[Run]) -> Option<(String, BTreeMap<String, f64>)> {
    let run = history
        .iter()
        .rev()
        .find(|r| r.status == RunStatus::Upgraded)?;
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    for s in &run.steps {
        if let Some(secs) = s.seconds() {
            let e = out.entry(s.name.clone()).or_insert(0.0);
            *e = e.max(secs);
        }
    }
    Some((run.id.clone(), out))
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub name: String,
    pub node: Option<String>,
    pub estimate_seconds: f64,
    pub in_outage: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Clone, Serialize)]
pub struct Plan {
    pub from: String,
    pub to: Option<String>,
    pub path: Vec<String>,
    pub why: String,
    pub up_to_date: bool,
    pub facts: Facts,
    pub steps: Vec<PlannedStep>,
    /// S + max(B, I) + U + T: octoup's order (backup and installs overlap).
    pub outage_estimate_seconds: f64,
    /// S + B + I + U + T: the vendor script's serial order, for comparison.
    pub serial_outage_estimate_seconds: f64,
    /// `defaults`, or the run whose measured durations were used.
    pub estimates_from: String,
    /// Whether the database backup overlaps the installs (needs a staged rollback installer).
    pub backup_overlaps_install: bool,
}

/// The plan for the preflight's findings. Changes nothing.
pub fn make_plan(config: &Config, facts: Facts, history: &[Run]) -> Plan {
    let measured = measured(history);
    let estimate = |name: &str| -> f64 {
        measured
            .as_ref()
            .and_then(|(_, m)| m.get(name).copied())
            .unwrap_or_else(|| default_estimate(name))
    };
    let nodes: Vec<String> = facts.nodes.iter().map(|n| n.name.clone()).collect();
    let primary = facts.primary().map(|n| n.name.clone()).unwrap_or_default();
    let rollback = config.rollback.enabled;
    let mut steps = Vec::new();
    for (name, node) in self::steps(&nodes, &primary, rollback) {
        if name == PREFLIGHT {
            continue;
        }
        let node_facts = node
            .as_ref()
            .and_then(|n| facts.nodes.iter().find(|f| &f.name == n));
        let mut note = None;
        let mut secs = estimate(name);
        match name {
            DRAIN => {
                if let Some(f) = node_facts
                    && f.running_tasks > 0
                {
                    note = Some(format!(
                        "{} task(s) running now: waits up to {} for them, then {}",
                        f.running_tasks,
                        human_duration(Duration::from_secs(config.drain.wait_seconds)),
                        if config.drain.cancel_tasks {
                            "cancels what still runs"
                        } else {
                            "stops and puts everything back"
                        }
                    ));
                    secs = secs.max(config.drain.wait_seconds as f64);
                }
            }
            DELETE_WATCHDOG | CREATE_WATCHDOG => {
                let exists = node_facts
                    .and_then(|f| f.watchdog.as_ref())
                    .is_some_and(|w| w.enabled);
                if !exists {
                    note = Some("no watchdog: skipped".into());
                    secs = 0.0;
                }
            }
            UNDRAIN if node_facts.is_some_and(|f| f.drained) => {
                note = Some("was drained before: stays drained".into());
                secs = 0.0;
            }
            MAINTENANCE_ON if facts.maintenance => {
                note = Some("already on".into());
            }
            MAINTENANCE_RESTORE => {
                note = Some(if config.maintenance.leave_on {
                    "left on ([maintenance] leave_on): turn it off after checking".into()
                } else if facts.maintenance {
                    "was on before: stays on".into()
                } else {
                    "turned off again".into()
                });
            }
            UPGRADE_DATABASE => {
                note = Some("the only schema upgrade, with every node stopped".into());
            }
            _ => {}
        }
        steps.push(PlannedStep {
            name: name.to_string(),
            node,
            estimate_seconds: secs,
            in_outage: in_outage(name),
            note,
        });
    }
    let longest = |name: &str| {
        steps
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.estimate_seconds)
            .fold(0.0, f64::max)
    };
    let sum = |name: &str| -> f64 {
        steps
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.estimate_seconds)
            .sum()
    };
    let (s, b, i, u, t) = (
        longest(STOP),
        longest(BACKUP_DATABASE) + longest(VERIFY_BACKUP),
        longest(INSTALL),
        longest(UPGRADE_DATABASE),
        longest(START),
    );
    let canary_extra = if config.cluster.canary && nodes.len() > 1 {
        t
    } else {
        0.0
    };
    let overlap = rollback;
    let outage =
        s + if overlap { b.max(i) } else { b + i } + u + t + canary_extra + longest(VERIFY);
    let serial = sum(STOP) + b + sum(INSTALL) + u + sum(START);
    let target = facts.target.clone();
    Plan {
        from: facts.version.clone(),
        to: target.as_ref().and_then(|t| t.target.clone()),
        path: target.as_ref().map(|t| t.path.clone()).unwrap_or_default(),
        why: target.as_ref().map(|t| t.why.clone()).unwrap_or_default(),
        up_to_date: target.as_ref().is_some_and(|t| t.up_to_date),
        facts,
        steps,
        outage_estimate_seconds: outage,
        serial_outage_estimate_seconds: serial,
        estimates_from: match measured {
            Some((id, _)) => format!("run {id}"),
            None => "defaults".into(),
        },
        backup_overlaps_install: overlap,
    }
}

impl Plan {
    pub fn render_text(&self) -> String {
        let f = &self.facts;
        let mut out = String::new();
        let _ = writeln!(out, "Server   {} (version {})", f.server_url, f.version);
        let _ = writeln!(
            out,
            "Maintenance mode is {}.",
            if f.maintenance { "ON" } else { "off" }
        );
        let _ = writeln!(out, "\nNodes:");
        for n in &f.nodes {
            let _ = writeln!(
                out,
                "  {}{:<18} api {:<12} installed {:<12} {}{}{}",
                if n.primary { "*" } else { " " },
                n.name,
                n.api_version.as_deref().unwrap_or("?"),
                n.exe_version.as_deref().unwrap_or("?"),
                n.ping,
                if n.running_tasks > 0 {
                    format!(", {} task(s) running", n.running_tasks)
                } else {
                    String::new()
                },
                match &n.watchdog {
                    Some(w) if w.enabled => ", watchdog on",
                    _ => "",
                }
            );
        }
        let _ = writeln!(out, "  (* runs the database upgrade)");
        for o in &f.other_nodes {
            let _ = writeln!(
                out,
                "  ?{:<18} registered, {} (not in the config)",
                o.name,
                if o.is_offline { "offline" } else { "RUNNING" }
            );
        }
        let _ = writeln!(out);
        match (&self.to, self.up_to_date) {
            (Some(to), _) => {
                let _ = writeln!(out, "Target   {to}");
                if self.path.len() > 1 {
                    let _ = writeln!(
                        out,
                        "Path     {} (one version per run: re-run for the next)",
                        self.path.join(" → ")
                    );
                }
            }
            (None, true) => {
                let _ = writeln!(out, "Target   none: up to date");
            }
            (None, false) => {
                let _ = writeln!(out, "Target   none");
            }
        }
        if !self.why.is_empty() {
            let _ = writeln!(out, "Why      {}", self.why);
        }
        if let Some(max) = &f.license_covers_up_to {
            let _ = writeln!(
                out,
                "License  covers versions up to {max}{}",
                f.license_maintenance_expires
                    .as_deref()
                    .map(|d| format!(" (maintenance until {d})"))
                    .unwrap_or_default()
            );
        }
        for d in &f.disk {
            let _ = writeln!(
                out,
                "Disk     {}: {} free in {}{}",
                d.what,
                d.available_bytes.map(bytes).unwrap_or_else(|| "?".into()),
                d.path.display(),
                d.needed_bytes
                    .map(|n| format!(" (needs {})", bytes(n)))
                    .unwrap_or_default()
            );
        }
        if self.to.is_some() {
            let _ = writeln!(out, "\nSteps (estimates from {}):", self.estimates_from);
            for s in &self.steps {
                let what = match &s.node {
                    Some(n) => format!("{} {n}", s.name),
                    None => s.name.clone(),
                };
                let _ = writeln!(
                    out,
                    "  {} {:<34} {:>8}{}",
                    if s.in_outage { "!" } else { " " },
                    what,
                    human_duration(Duration::from_secs_f64(s.estimate_seconds)),
                    s.note
                        .as_deref()
                        .map(|n| format!("  {n}"))
                        .unwrap_or_default()
                );
            }
            let _ = writeln!(out, "  (! = during the outage)");
            let _ = writeln!(
                out,
                "\nEstimated outage: {} (stop + {} + database upgrade + start); the vendor's serial order would take {}.",
                human_duration(Duration::from_secs_f64(self.outage_estimate_seconds)),
                if self.backup_overlaps_install {
                    "max(backup, install)"
                } else {
                    "backup + install (no rollback installer staged)"
                },
                human_duration(Duration::from_secs_f64(self.serial_outage_estimate_seconds)),
            );
        }
        for w in &f.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        for b in &f.blockers {
            let _ = writeln!(out, "BLOCKER: {b}");
        }
        if !f.blockers.is_empty() {
            let _ = writeln!(
                out,
                "`octoup upgrade` would refuse until the blockers are fixed."
            );
        }
        let _ = writeln!(out, "\nNothing was changed.");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_list_has_one_database_upgrade_on_the_primary() {
        let nodes = vec!["A".to_string(), "B".to_string()];
        let s = steps(&nodes, "B", true);
        let ups: Vec<_> = s.iter().filter(|(n, _)| *n == UPGRADE_DATABASE).collect();
        assert_eq!(ups.len(), 1);
        assert_eq!(ups[0].1.as_deref(), Some("B"));
        assert_eq!(s.iter().filter(|(n, _)| *n == STOP).count(), 2);
        let pos = |name: &str| s.iter().position(|(n, _)| *n == name).unwrap();
        assert!(pos(MAINTENANCE_ON) < pos(DRAIN));
        assert!(pos(STOP) < pos(BACKUP_DATABASE));
        assert!(pos(VERIFY_BACKUP) < pos(UPGRADE_DATABASE));
        assert!(pos(INSTALL) < pos(UPGRADE_DATABASE));
        assert!(pos(UPGRADE_DATABASE) < pos(START));
        assert!(pos(UNDRAIN) < pos(MAINTENANCE_RESTORE));
        assert!(
            !steps(&nodes, "A", false)
                .iter()
                .any(|(n, _)| *n == STAGE_ROLLBACK)
        );
    }
}
