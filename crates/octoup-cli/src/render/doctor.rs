//! Findings for people: `octoup doctor`, the findings block of `octoup plan`, and what
//! `octoup verify` (and the end of an upgrade) found.

use std::fmt::Write as _;

use octoup::doctor::{AcceptedBy, DoctorReport, Finding, Findings, Severity};

/// `octoup doctor`.
pub fn doctor(report: &DoctorReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Installed {}; target {}{}.",
        report.current,
        report
            .target
            .as_deref()
            .unwrap_or("none (nothing to install)"),
        report
            .hosting
            .as_deref()
            .map(|h| format!("; database hosting {h}"))
            .unwrap_or_default()
    );
    if report.findings.is_empty() {
        let _ = writeln!(out, "\nNo findings: every check passed.");
    }
    out.push_str(&findings(&report.findings));
    out
}

/// Blockers first, then warnings, accepted warnings and information; each with its id, so
/// a warning can be accepted by name.
pub fn findings(findings: &Findings) -> String {
    grouped(
        findings,
        [
            "Blockers (`octoup upgrade` refuses until they are fixed):",
            "Warnings (accept one with `--accept ID` or [doctor] accept):",
            "Accepted:",
            "For information:",
        ],
    )
}

/// What the checks after the start found (`octoup verify`, and the end of an upgrade).
pub fn verification(findings: &Findings) -> String {
    grouped(
        findings,
        [
            "Needs attention now (`octoup verify` exits 14 until it is fixed):",
            "Worth a look:",
            "Accepted:",
            "For information:",
        ],
    )
}

/// `titles`: blockers, warnings, accepted, information.
fn grouped(findings: &Findings, titles: [&str; 4]) -> String {
    let mut out = String::new();
    let group = |f: &Finding| match (f.severity, f.accepted) {
        (Severity::Blocker, _) => 0,
        (Severity::Warning, None) => 1,
        (Severity::Warning, Some(_)) | (Severity::Info, Some(_)) => 2,
        (Severity::Info, None) => 3,
    };
    for (g, title) in titles.iter().enumerate() {
        let in_group: Vec<&Finding> = findings.iter().filter(|f| group(f) == g).collect();
        if in_group.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title}");
        for f in in_group {
            let _ = writeln!(out, "  [{}] {}", f.id, f.found);
            if !f.why.is_empty() {
                let _ = writeln!(out, "      why: {}", f.why);
            }
            if !f.fix.is_empty() {
                let _ = writeln!(out, "      fix: {}", f.fix);
            }
            if let Some(link) = &f.link {
                let _ = writeln!(out, "      see: {link}");
            }
            if let Some(by) = f.accepted {
                let _ = writeln!(
                    out,
                    "      accepted by {}",
                    match by {
                        AcceptedBy::Config => "[doctor] accept",
                        AcceptedBy::Flag => "--accept",
                    }
                );
            }
        }
    }
    out
}

/// `octoup verify`.
pub fn verify(report: &octoup::doctor::verify::VerifyReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Expected version {} on every node.", report.expected);
    for n in &report.nodes {
        let _ = writeln!(
            out,
            "  {:<20} {}{}",
            n.name,
            n.version.as_deref().unwrap_or("no version"),
            if n.offline { " (offline)" } else { "" }
        );
    }
    if let Some(t) = &report.tentacle_upgrade {
        let _ = writeln!(out, "\nTentacle upgrade:");
        for m in &t.machines {
            let _ = writeln!(
                out,
                "  {:<20} {:<10} {} → {}  task {} {}{}",
                m.name,
                m.space,
                m.before.as_deref().unwrap_or("?"),
                m.after.as_deref().unwrap_or("?"),
                m.task.as_deref().unwrap_or("-"),
                m.task_state,
                if m.upgraded { "" } else { "  NOT UPGRADED" }
            );
        }
        if !t.not_attempted.is_empty() {
            let _ = writeln!(
                out,
                "  not attempted (the canary failed): {}",
                t.not_attempted.join(", ")
            );
        }
    }
    if report.findings.is_empty() {
        let _ = writeln!(out, "\nNo findings: every check passed.");
    }
    out.push_str(&verification(&report.findings));
    out
}
