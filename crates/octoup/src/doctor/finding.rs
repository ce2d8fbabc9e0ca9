//! One thing a check found: a stable id, how much it matters, what was found, why it matters
//! for this target, and the fix. Blockers stop `upgrade` before anything changes; a warning
//! can be accepted by name (config or `--accept`), which the journal records.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The upgrade would fail or could not be undone: `upgrade` refuses (exit 3).
    Blocker,
    /// Worth knowing before the outage; accepted by name to silence it (or to pass
    /// `[doctor] strict`).
    Warning,
    /// Context for the operator; never stops anything.
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Blocker => "blocker",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// Who accepted a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcceptedBy {
    /// `[doctor] accept` in the configuration.
    Config,
    /// `--accept ID` on the command line.
    Flag,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable across releases (documented in docs/preflight.md): `sql.collation`,
    /// `license.expired`, … A check that could not run has the id `<check>.unchecked`.
    pub id: String,
    pub severity: Severity,
    /// What was found, with the names and figures.
    pub found: String,
    /// Why it matters for this target.
    pub why: String,
    /// What to do about it.
    pub fix: String,
    /// A page that shows more (a task's log, a machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<AcceptedBy>,
}

impl Finding {
    pub fn new(
        id: impl Into<String>,
        severity: Severity,
        found: impl Into<String>,
        why: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            id: id.into(),
            severity,
            found: found.into(),
            why: why.into(),
            fix: fix.into(),
            link: None,
            accepted: None,
        }
    }

    pub fn blocker(
        id: impl Into<String>,
        found: impl Into<String>,
        why: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding::new(id, Severity::Blocker, found, why, fix)
    }

    pub fn warning(
        id: impl Into<String>,
        found: impl Into<String>,
        why: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding::new(id, Severity::Warning, found, why, fix)
    }

    pub fn info(id: impl Into<String>, found: impl Into<String>) -> Finding {
        Finding::new(id, Severity::Info, found, "", "")
    }

    /// A check that could not run is a warning, never a silent pass: `check` is the id of the
    /// check (`sql.collation`), `what` what it would have checked.
    pub fn unchecked(check: &str, what: &str, reason: impl std::fmt::Display) -> Finding {
        Finding::warning(
            format!("{check}.unchecked"),
            format!("could not check {what}: {reason}"),
            "octoup cannot tell whether this would make the upgrade fail",
            format!(
                "check it by hand, then accept this warning (`--accept {check}.unchecked` or [doctor] accept)"
            ),
        )
    }

    pub fn with_link(mut self, link: impl Into<String>) -> Finding {
        self.link = Some(link.into());
        self
    }

    /// One line for a list or a log: what was found, why, and the fix.
    pub fn line(&self) -> String {
        let mut line = self.found.clone();
        for part in [&self.why, &self.fix] {
            if !part.is_empty() {
                line.push_str(if line.ends_with(['.', ':']) {
                    " "
                } else {
                    ". "
                });
                line.push_str(&capitalised(part));
            }
        }
        if let Some(link) = &self.link {
            line.push_str(&format!(" ({link})"));
        }
        line
    }
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// What the operator accepted and how strict to be.
#[derive(Debug, Clone, Default)]
pub struct Acceptance {
    pub config: Vec<String>,
    pub flag: Vec<String>,
    /// `[doctor] strict`: an unaccepted warning blocks too.
    pub strict: bool,
}

impl Acceptance {
    fn by(&self, id: &str) -> Option<AcceptedBy> {
        if self.flag.iter().any(|a| a == id) {
            Some(AcceptedBy::Flag)
        } else if self.config.iter().any(|a| a == id) {
            Some(AcceptedBy::Config)
        } else {
            None
        }
    }
}

/// Every finding of one preflight, in the order the checks ran.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Findings(pub Vec<Finding>);

impl Findings {
    pub fn push(&mut self, finding: Finding) {
        self.0.push(finding);
    }

    pub fn extend(&mut self, findings: impl IntoIterator<Item = Finding>) {
        self.0.extend(findings);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Finding> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Marks accepted warnings. A blocker cannot be accepted: its fix says so, and it
    /// still blocks.
    pub fn settle(&mut self, acceptance: &Acceptance) {
        for f in &mut self.0 {
            let Some(by) = acceptance.by(&f.id) else {
                continue;
            };
            match f.severity {
                Severity::Blocker => {
                    if !f.fix.contains("cannot be accepted") {
                        f.fix
                            .push_str(" (a blocker cannot be accepted; it must be fixed)");
                    }
                }
                _ => f.accepted = Some(by),
            }
        }
        if acceptance.strict {
            for f in &mut self.0 {
                if f.severity == Severity::Warning && f.accepted.is_none() {
                    f.severity = Severity::Blocker;
                    f.fix.push_str(&format!(
                        " ([doctor] strict: fix it or accept it with `--accept {}`)",
                        f.id
                    ));
                }
            }
        }
    }

    pub fn blockers(&self) -> impl Iterator<Item = &Finding> {
        self.0.iter().filter(|f| f.severity == Severity::Blocker)
    }

    pub fn has_blockers(&self) -> bool {
        self.blockers().next().is_some()
    }

    /// Warnings not accepted, as lines (accepted ones are in [`Findings::accepted`]).
    pub fn warning_lines(&self) -> Vec<String> {
        self.0
            .iter()
            .filter(|f| f.severity == Severity::Warning && f.accepted.is_none())
            .map(Finding::line)
            .collect()
    }

    pub fn blocker_lines(&self) -> Vec<String> {
        self.blockers().map(Finding::line).collect()
    }

    /// The ids of accepted warnings, for the journal.
    pub fn accepted(&self) -> Vec<String> {
        self.0
            .iter()
            .filter(|f| f.accepted.is_some())
            .map(|f| f.id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Findings {
        Findings(vec![
            Finding::blocker(
                "sql.version",
                "SQL Server 2014",
                "2024.1 needs 2016",
                "upgrade SQL",
            ),
            Finding::warning("license.grace", "expired 10 days ago", "in grace", "renew"),
            Finding::info("queue.backlog", "3 tasks queued"),
        ])
    }

    #[test]
    fn a_warning_accepted_by_flag_or_config_is_marked_and_listed() {
        let mut f = sample();
        f.settle(&Acceptance {
            flag: vec!["license.grace".into()],
            ..Default::default()
        });
        assert_eq!(f.0[1].accepted, Some(AcceptedBy::Flag));
        assert_eq!(f.accepted(), vec!["license.grace".to_string()]);
        assert!(f.warning_lines().is_empty());
        let mut f = sample();
        f.settle(&Acceptance {
            config: vec!["license.grace".into()],
            ..Default::default()
        });
        assert_eq!(f.0[1].accepted, Some(AcceptedBy::Config));
    }

    #[test]
    fn a_blocker_cannot_be_accepted() {
        let mut f = sample();
        f.settle(&Acceptance {
            flag: vec!["sql.version".into()],
            ..Default::default()
        });
        assert!(f.has_blockers());
        assert_eq!(f.0[0].accepted, None);
        assert!(f.0[0].fix.contains("cannot be accepted"));
    }

    #[test]
    fn strict_makes_unaccepted_warnings_block_but_not_info() {
        let mut f = sample();
        f.settle(&Acceptance {
            strict: true,
            ..Default::default()
        });
        assert_eq!(f.blockers().count(), 2);
        assert_eq!(f.0[2].severity, Severity::Info);
        let mut f = sample();
        f.settle(&Acceptance {
            strict: true,
            config: vec!["license.grace".into()],
            ..Default::default()
        });
        assert_eq!(f.blockers().count(), 1);
    }

    #[test]
    fn unchecked_is_a_warning_with_a_derived_id() {
        let f = Finding::unchecked("sql.collation", "column collations", "permission denied");
        assert_eq!(f.id, "sql.collation.unchecked");
        assert_eq!(f.severity, Severity::Warning);
        assert!(
            f.found
                .starts_with("could not check column collations: permission denied")
        );
    }

    #[test]
    fn a_line_reads_as_sentences() {
        let f = Finding::blocker(
            "x",
            "SQL Server 2014 found",
            "2024.1 needs 2016+",
            "upgrade SQL Server",
        );
        assert_eq!(
            f.line(),
            "SQL Server 2014 found. 2024.1 needs 2016+. Upgrade SQL Server"
        );
        assert_eq!(Finding::info("q", "3 queued").line(), "3 queued");
    }
}
