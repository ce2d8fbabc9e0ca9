//! The report of `octoup upgrade`, `resume`, `rollback` and `demo`, for people.

use std::fmt::Write as _;

use octoup::engine::report::{Outcome, Report, StepReport};
use octoup::process::clock::human_duration;

/// A summary for people.
pub fn report(report: &Report) -> String {
    let mut out = String::new();
    let headline = match report.outcome {
        Outcome::Upgraded => format!("Upgraded {} → {}.", report.from, report.to),
        Outcome::UpToDate => format!("Up to date: {} (nothing to do).", report.from),
        Outcome::RolledBack => format!(
            "The upgrade to {} failed and was rolled back: {} serves again.",
            report.to, report.from
        ),
        Outcome::Paused => format!(
            "PAUSED: the upgrade {} → {} stopped in a safe state.",
            report.from, report.to
        ),
        Outcome::Failed => format!(
            "FAILED: the upgrade {} → {} did not happen; what was done was undone.",
            report.from, report.to
        ),
        Outcome::Refused => format!(
            "REFUSED: nothing was changed; the upgrade {} → {} cannot start.",
            report.from,
            if report.to.is_empty() {
                "?"
            } else {
                &report.to
            }
        ),
    };
    let _ = writeln!(out, "{headline}");
    if report.outage_seconds > 0.0 {
        let _ = writeln!(
            out,
            "Outage: {} (first service stop until every node served {}).",
            human_duration(std::time::Duration::from_secs_f64(report.outage_seconds)),
            match report.outcome {
                Outcome::Upgraded => &report.to,
                _ => &report.from,
            }
        );
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
                if n.serving { "serving" } else { "NOT serving" }
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
                .map(|x| {
                    format!(
                        " ({})",
                        human_duration(std::time::Duration::from_secs_f64(x))
                    )
                })
                .unwrap_or_default();
            let detail = s
                .detail
                .as_deref()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {:<8} {what}{secs}{detail}", s.status);
        }
    }
    let b = &report.backups;
    if b.database.is_some() || b.master_key.is_some() || b.license.is_some() {
        let _ = writeln!(out, "\nBackups:");
        if let Some(p) = &b.database {
            let _ = writeln!(
                out,
                "  database    {p}{}",
                if b.database_verified {
                    " (verified)"
                } else {
                    " (NOT verified)"
                }
            );
        }
        if let Some(p) = &b.master_key {
            let _ = writeln!(out, "  master key  {p} (owner-only)");
        }
        if let Some(p) = &b.license {
            let _ = writeln!(out, "  license     {p}");
        }
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
