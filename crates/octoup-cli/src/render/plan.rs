//! `octoup plan` for people.

use std::fmt::Write as _;

use octoup::engine::plan::{Plan, ResumePlan};
use octoup::engine::preflight::bytes;
use octoup::process::clock::human_seconds;

pub fn plan(plan: &Plan) -> String {
    let f = &plan.facts;
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
    match (&plan.to, plan.up_to_date) {
        (Some(to), _) => {
            let _ = writeln!(out, "Target   {to}");
            if plan.path.len() > 1 {
                let _ = writeln!(
                    out,
                    "Path     {} (one version per run: re-run for the next)",
                    plan.path
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" → ")
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
    if !plan.why.is_empty() {
        let _ = writeln!(out, "Why      {}", plan.why);
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
    if plan.to.is_some() {
        match &plan.rehearsal {
            Some(r) => {
                let _ = writeln!(
                    out,
                    "\nSteps (estimates from {}; the database upgrade from rehearsal {} on {}):",
                    plan.estimates_from, r.id, r.date
                );
            }
            None => {
                let _ = writeln!(out, "\nSteps (estimates from {}):", plan.estimates_from);
            }
        }
        for s in &plan.steps {
            let what = match &s.node {
                Some(n) => format!("{} {n}", s.name),
                None => s.name.clone(),
            };
            let _ = writeln!(
                out,
                "  {} {:<34} {:>8}{}",
                if s.in_outage { "!" } else { " " },
                what,
                human_seconds(s.estimate_seconds),
                s.note
                    .as_deref()
                    .map(|n| format!("  {n}"))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(out, "  (! = during the outage)");
        let _ = writeln!(
            out,
            "\nEstimated outage: {} (stop + {} + database upgrade + start); the vendor's runbook order (each step on every node at once, one after another) would take {}.",
            human_seconds(plan.outage_estimate_seconds),
            if plan.backup_overlaps_install {
                "max(backup, install)"
            } else {
                "backup + install (no rollback installer staged)"
            },
            human_seconds(plan.vendor_outage_estimate_seconds),
        );
        if let Some(w) = &plan.window {
            let _ = writeln!(out, "{}", window_line(w));
        }
    }
    out.push_str(&super::findings(&f.findings));
    let _ = writeln!(out, "\nNothing was changed.");
    out
}

/// `octoup plan` while a run is unfinished: `octoup upgrade` continues that run.
pub fn resume_plan(plan: &ResumePlan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "An unfinished run, {} ({} → {}, {}), is in the state directory: `octoup upgrade` continues it instead of starting a new one.",
        plan.unfinished_run, plan.from, plan.to, plan.status
    );
    if let Some(pid) = &plan.live_pid {
        let _ = writeln!(
            out,
            "octoup (pid {pid}) is working on it now: wait for it; `octoup status` shows where it stands."
        );
    }
    let what = match plan.direction.as_str() {
        "undo" => "It would put back what the run changed",
        "rollback" => "It would continue the rollback",
        _ => "It would finish the upgrade",
    };
    let _ = writeln!(out, "{what}, in this order:");
    for step in &plan.remaining {
        let _ = writeln!(out, "  {}", step.replace('@', " "));
    }
    if let Some(e) = &plan.error {
        let _ = writeln!(out, "\nCause: {e}");
    }
    if let Some(n) = &plan.next_step {
        let _ = writeln!(out, "Next step: {n}");
    }
    let _ = writeln!(out, "\nNothing was changed.");
    out
}

/// `Maintenance window …: …` — where now falls and whether the work fits.
fn window_line(w: &octoup::engine::window::WindowFit) -> String {
    let estimate = format!(
        "the work up to the end of the outage is estimated at {} (figures: {})",
        human_seconds(w.estimate_seconds),
        w.figures
    );
    match (&w.ends, w.fits) {
        (Some(ends), true) => format!(
            "Maintenance window {}: ends at {ends}, in {}; {estimate}: it fits.",
            w.source,
            human_seconds(w.seconds_left)
        ),
        (Some(ends), false) => format!(
            "Maintenance window {}: ends at {ends}, in {}; {estimate}: it does NOT fit, `octoup upgrade` would refuse.",
            w.source,
            human_seconds(w.seconds_left)
        ),
        (None, _) => format!(
            "Maintenance window {}: outside it now{}; `octoup upgrade` would refuse (or give --until). {estimate}.",
            w.source,
            w.opens
                .as_deref()
                .map(|o| format!(", it opens next at {o}"))
                .unwrap_or_default()
        ),
    }
}
