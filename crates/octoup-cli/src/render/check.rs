//! `octoup check` for people.

use std::fmt::Write as _;

use jiff::civil::Date;
use octoup::choice::check::{CheckReport, CheckStatus};

/// The human-readable form printed by `octoup check` without `--json`.
pub fn check(report: &CheckReport) -> String {
    let mut out = String::new();
    let date = |d: Option<Date>| d.map(|d| format!(" (released {d})")).unwrap_or_default();
    let _ = writeln!(
        out,
        "Current: {}{}",
        report.current,
        date(report.current_released)
    );
    match &report.target {
        Some(target) => {
            let _ = writeln!(out, "Target:  {target}{}", date(report.target_released));
            let steps: Vec<String> = std::iter::once(&report.current)
                .chain(&report.path)
                .map(ToString::to_string)
                .collect();
            let _ = writeln!(out, "Path:    {}", steps.join(" -> "));
            for reason in &report.path_reasons {
                let _ = writeln!(out, "         stop {reason}");
            }
        }
        None => {
            let why = match report.status {
                CheckStatus::UpToDate => "up to date",
                _ => "no eligible version",
            };
            let _ = writeln!(out, "Target:  none ({why})");
        }
    }
    let _ = writeln!(out, "\n{}", report.explanation);
    if !report.rejected.is_empty() {
        let width = report
            .rejected
            .iter()
            .map(|r| r.version.to_string().len())
            .max()
            .unwrap_or(0);
        let _ = writeln!(out, "\nNot chosen:");
        for r in &report.rejected {
            let _ = writeln!(out, "  {:width$}  {}", r.version.to_string(), r.reason);
        }
    }
    if !report.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings:");
        for w in &report.warnings {
            let _ = writeln!(out, "  - {w}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use octoup::choice::check::{CheckInput, check};
    use octoup::choice::feed::parse_feed;
    use octoup::choice::policy::Policy;

    #[test]
    fn text_output_lists_target_path_and_reasons() {
        let feed = parse_feed(
            br#"[{"Version":"2024.1.10","Released":"2024-02-01"},
                 {"Version":"2024.2.7","Released":"2024-04-01"},
                 {"Version":"2025.1.3","Released":"2024-12-01"}]"#,
        )
        .unwrap();
        let report = check(&CheckInput {
            current: "2024.1.10".parse().unwrap(),
            current_released: None,
            feed,
            policy: Policy::default(),
            license_max: None,
            now: "2025-01-01".parse().unwrap(),
        });
        let text = super::check(&report);
        assert!(
            text.contains("Current: 2024.1.10 (released 2024-02-01)"),
            "{text}"
        );
        assert!(
            text.contains("Target:  2024.2.7 (released 2024-04-01)"),
            "{text}"
        );
        assert!(text.contains("Path:    2024.1.10 -> 2024.2.7"), "{text}");
        assert!(
            text.contains("  2025.1.3  a major upgrade from 2024"),
            "{text}"
        );
    }
}
