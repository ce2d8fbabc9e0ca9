//! The report of `octoup upgrade`, `resume`, `rollback` and `demo`, for people.

use std::fmt::Write as _;

use octoup::engine::report::{Backups, Operation, Outcome, Report, StepReport};
use octoup::journal::Direction;
use octoup::process::clock::human_seconds;

/// A summary for people.
pub fn report(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", headline(report));
    if let Some(line) = outage(report) {
        let _ = writeln!(out, "{line}");
    }
    if let Some(e) = &report.error {
        let _ = writeln!(out, "\nCause: {e}");
    }
    if !report.nodes.is_empty() {
        let _ = writeln!(out, "\nNodes:");
        for n in &report.nodes {
            let _ = writeln!(
                out,
                "  {:<20} {:<14} {}",
                n.name,
                n.version,
                if n.serving.is_some() {
                    "serving"
                } else {
                    "NOT serving"
                }
            );
        }
    }
    let reached: Vec<&StepReport> = report.steps.iter().filter(|s| s.reached).collect();
    if !reached.is_empty() {
        let _ = writeln!(out, "\nSteps:");
        for s in reached {
            let what = match &s.node {
                Some(n) => format!("{} {n}", s.name),
                None => s.name.clone(),
            };
            let secs = s
                .seconds
                .map(|x| format!(" ({})", human_seconds(x)))
                .unwrap_or_default();
            let detail = s
                .detail
                .as_deref()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {:<8} {what}{secs}{detail}", s.status);
        }
    }
    backups(&mut out, &report.backups);
    if !report.verification.is_empty() {
        let _ = write!(
            out,
            "\nAfter the start (the upgrade is done; `octoup verify` checks again):{}",
            super::verification(&report.verification)
        );
    }
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if let Some(n) = &report.next_step {
        let _ = writeln!(out, "\nNext step: {n}");
    }
    if let Some(l) = &report.log {
        let _ = writeln!(out, "Log: {}", l.display());
    }
    out
}

/// `A → B`, or `A` alone when no target was known (never "?").
fn versions(report: &Report) -> String {
    match (report.from.is_empty(), report.to.is_empty()) {
        (false, false) if report.from != report.to => format!("{} → {}", report.from, report.to),
        (false, _) => report.from.clone(),
        (true, false) => format!("→ {}", report.to),
        (true, true) => String::new(),
    }
}

/// The first line: the outcome, the operation and both versions.
fn headline(report: &Report) -> String {
    let (from, to) = (&report.from, &report.to);
    let op = report.operation.as_str();
    let rolling_back = report.direction == Direction::Rollback;
    match report.outcome {
        Outcome::Upgraded => format!("UPGRADED: {from} → {to}."),
        Outcome::UpToDate => format!("UP TO DATE: {from} (nothing to do)."),
        Outcome::RolledBack => {
            format!("ROLLED BACK: the upgrade {from} → {to} was taken back; {from} serves again.")
        }
        Outcome::Paused if rolling_back => format!(
            "ROLLBACK PAUSED: the rollback of {from} → {to} (back to {from}) stopped in a safe state."
        ),
        Outcome::Paused => {
            format!("PAUSED: the {op} {from} → {to} stopped in a safe state.")
        }
        Outcome::Failed => {
            format!("FAILED: the {op} {from} → {to} did not happen; what was done was undone.")
        }
        Outcome::Refused => {
            let what = match report.operation {
                Operation::Rollback => "the rollback",
                Operation::Resume => "the resumed upgrade",
                Operation::Upgrade => "the upgrade",
            };
            match versions(report) {
                v if v.is_empty() => format!("REFUSED: nothing was changed; {what} cannot start."),
                v => format!("REFUSED: nothing was changed; {what} {v} cannot start."),
            }
        }
    }
}

/// The outage: how long it took, or, while it lasts, that Octopus is down now.
fn outage(report: &Report) -> Option<String> {
    let took = human_seconds(report.outage_seconds);
    if report.outage_ongoing {
        let serving: Vec<&str> = report
            .nodes
            .iter()
            .filter(|n| n.serving.is_some())
            .map(|n| n.name.as_str())
            .collect();
        let down: Vec<&str> = report
            .nodes
            .iter()
            .filter(|n| n.serving.is_none())
            .map(|n| n.name.as_str())
            .collect();
        return Some(if serving.is_empty() {
            format!("Octopus is DOWN: {took} so far, no node serves.")
        } else {
            let versions: Vec<&str> = report
                .nodes
                .iter()
                .filter_map(|n| n.serving.as_deref())
                .collect();
            let same = versions.windows(2).all(|w| w[0] == w[1]);
            format!(
                "Octopus is PARTLY DOWN: {} of {} nodes serve {}; {} {} not ({took} since the first stop).",
                serving.len(),
                report.nodes.len(),
                if same {
                    versions[0].to_string()
                } else {
                    versions.join(", ")
                },
                down.join(", "),
                if down.len() == 1 { "does" } else { "do" },
            )
        });
    }
    (report.outage_seconds > 0.0).then(|| {
        format!(
            "Outage: {took} (first service stop until every node served {}).",
            match report.outcome {
                Outcome::Upgraded => &report.to,
                _ => &report.from,
            }
        )
    })
}

/// The backups a run made, where they are, and whether the database backup was verified.
pub(super) fn backups(out: &mut String, b: &Backups) {
    if b.database.is_none() && b.master_key.is_none() && b.license.is_none() {
        return;
    }
    let _ = writeln!(out, "\nBackups:");
    if let Some(p) = &b.database {
        let verified = if b.database_verified {
            " (verified)"
        } else {
            " (NOT verified)"
        };
        let _ = writeln!(out, "  database    {p}{verified}");
    }
    if let Some(p) = &b.master_key {
        let _ = writeln!(out, "  master key  {p} (owner-only)");
    }
    if let Some(p) = &b.license {
        let _ = writeln!(out, "  license     {p}");
    }
}
