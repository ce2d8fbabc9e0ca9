//! `octoup status` for people and machines: the run's state (live or interrupted), the
//! step it is in and since when, every step with its duration, the backups, the outage.

use std::fmt::Write as _;
use std::path::Path;

use octoup::engine::status::{Status, StatusState, current_step};
use octoup::journal::Run;
use octoup::process::clock::{human_seconds, now, seconds_between};
use serde_json::{Value, json};

/// What the operator does about a run in this state.
fn advice(status: &Status) -> String {
    match status.state {
        StatusState::Running => format!(
            "octoup (pid {}) is working on it now: wait for it (`octoup status` again); do not start another run.",
            status.live_pid.as_deref().unwrap_or("?")
        ),
        StatusState::Interrupted => "No octoup is working on it: it was interrupted (killed, or the machine restarted). `octoup upgrade` continues it (it checks what each interrupted step really did first); `octoup rollback` rolls it back.".into(),
        StatusState::Paused => "Stopped in a safe state: see the next step below (`octoup upgrade` continues; `octoup rollback` rolls back).".into(),
        _ => String::new(),
    }
}

pub fn status(status: &Status) -> String {
    let mut out = String::new();
    let (Some(run), Some(report)) = (&status.run, &status.report) else {
        let _ = writeln!(
            out,
            "No octoup run recorded in {}.",
            status.state_dir.display()
        );
        return out;
    };
    let _ = writeln!(
        out,
        "Run {}: {} → {}: {}.",
        run.id,
        run.from,
        run.target,
        status.state.as_str().to_uppercase()
    );
    let advice = advice(status);
    if !advice.is_empty() {
        let _ = writeln!(out, "{advice}");
    }
    if let Some(held) = &status.held {
        let _ = writeln!(
            out,
            "Held: {} until {}{}. Until then `octoup rollback` can take this upgrade back (discarding what Octopus recorded since); `octoup finalize` releases it now.",
            held.describe,
            held.until.strftime("%Y-%m-%d %H:%M UTC"),
            if held.expired(now()) {
                " (past: the next `octoup upgrade` releases it)"
            } else {
                ""
            }
        );
    }
    if let Some(step) = current_step(run)
        && status.state == StatusState::Running
        && let Some(since) = step.started
    {
        let _ = writeln!(
            out,
            "Now: {} since {} ({}).",
            step.id.replace('@', " on "),
            since.strftime("%H:%M:%S UTC"),
            human_seconds(seconds_between(since, now()))
        );
    }
    match (run.outage_started, run.outage_ended) {
        (Some(a), Some(b)) => {
            let _ = writeln!(out, "Outage: {}.", human_seconds(seconds_between(a, b)));
        }
        (Some(a), None) => {
            let _ = writeln!(
                out,
                "Outage: began {} and has not ended ({} so far).",
                a.strftime("%H:%M:%S UTC"),
                human_seconds(seconds_between(a, now()))
            );
        }
        _ => {}
    }
    let _ = writeln!(
        out,
        "Started {}, last change {}; nodes {}.",
        run.created.strftime("%Y-%m-%d %H:%M:%S UTC"),
        run.updated.strftime("%Y-%m-%d %H:%M:%S UTC"),
        run.nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(out, "\nSteps:");
    for s in &run.steps {
        let what = match &s.node {
            Some(n) => format!("{} {n}", s.name),
            None => s.name.clone(),
        };
        let took = match (s.started, s.finished) {
            (Some(a), Some(b)) => format!(" ({})", human_seconds(seconds_between(a, b))),
            (Some(a), None) if s.state.as_str() == "running" => {
                format!(" (since {})", a.strftime("%H:%M:%S"))
            }
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "  {:<8} {what}{took}{}",
            s.state.as_str(),
            s.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    super::report::backups(&mut out, &report.backups);
    if let Some(w) = &report.window {
        let _ = writeln!(out, "\nMaintenance window: {}, ends {}.", w.source, w.ends);
    }
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if let Some(e) = &run.error {
        let _ = writeln!(out, "\nCause: {e}");
    }
    if let Some(n) = &run.next_step {
        let _ = writeln!(out, "Next step: {n}");
    }
    let _ = writeln!(
        out,
        "Journal: {}\nLog: {}",
        status
            .journal
            .as_deref()
            .map(Path::display)
            .map(|d| d.to_string())
            .unwrap_or_default(),
        run.log.display()
    );
    out
}

pub fn status_json(status: &Status) -> String {
    let Some(run) = &status.run else {
        return json!({ "state": "none", "run": null }).to_string();
    };
    let steps: Vec<Value> = run
        .steps
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "node": s.node,
                "state": s.state.as_str(),
                "started": s.started.map(|t| t.to_string()),
                "seconds": s.seconds(),
                "detail": s.output_str("detail"),
                "error": s.error,
            })
        })
        .collect();
    let report = status.report.as_ref();
    let value = json!({
        "state": status.state.as_str(),
        "live": status.live_pid.as_ref().map(|pid| json!({ "pid": pid })),
        "current_step": current_step(run).map(|s| json!({
            "id": s.id,
            "since": s.started.map(|t| t.to_string()),
        })),
        "run_id": run.id,
        "status": run.status.as_str(),
        "finished": run.status.is_finished(),
        "from": run.from,
        "to": run.target,
        "created": run.created.to_string(),
        "updated": run.updated.to_string(),
        "nodes": run.nodes.iter().map(|n| &n.name).collect::<Vec<_>>(),
        "outage_seconds": run.outage_seconds(),
        "outage_ongoing": report.is_some_and(|r| r.outage_ongoing),
        "held": status.held.as_ref().map(|h| json!({
            "point": h.describe,
            "until": h.until.to_string(),
            "expired": h.expired(now()),
        })),
        "backups": report.map(|r| &r.backups),
        "window": report.and_then(|r| r.window.as_ref()),
        "warnings": report.map(|r| &r.warnings),
        "steps": steps,
        "error": run.error,
        "next_step": run.next_step,
        "log": run.log,
        "journal": status.journal,
    });
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// `octoup status --all`.
pub fn runs(runs: &[Run], dir: &Path) -> String {
    let mut out = String::new();
    if runs.is_empty() {
        let _ = writeln!(out, "No octoup run recorded in {}.", dir.display());
        return out;
    }
    for r in runs {
        let _ = writeln!(
            out,
            "{}  {:<12} {} → {}  {}{}",
            r.id,
            r.status.as_str(),
            r.from,
            r.target,
            r.created.strftime("%Y-%m-%d %H:%M UTC"),
            r.outage_seconds()
                .map(|s| format!("  outage {}", human_seconds(s)))
                .unwrap_or_default()
        );
    }
    out
}

/// `status --all --json`; `record`: the run's upgrade record in `dir`, when it has one.
pub fn runs_json(runs: &[Run], dir: &Path) -> String {
    let list: Vec<Value> = runs
        .iter()
        .map(|r| {
            let record = octoup::engine::upgrade_record::record_path(dir, &r.id);
            json!({
                "run_id": r.id,
                "status": r.status.as_str(),
                "from": r.from,
                "to": r.target,
                "created": r.created.to_string(),
                "outage_seconds": r.outage_seconds(),
                "record": record.exists().then(|| record.display().to_string()),
            })
        })
        .collect();
    serde_json::to_string_pretty(&json!({ "runs": list })).unwrap_or_default()
}
