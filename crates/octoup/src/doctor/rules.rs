//! The compatibility rules: what a target version needs of its host and database, and which
//! target operating systems it drops. The facts live in `data/compatibility.toml` (embedded
//! at build time); this module only interprets them, so a new rule needs no code.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::choice::paths::Range;
use crate::doctor::finding::{Finding, Severity};
use crate::version::Version;

pub(crate) const BUILTIN: &str = include_str!("../../data/compatibility.toml");

/// What a requirement is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum What {
    SqlServer,
    WindowsServer,
    Dotnet,
    CompatibilityLevel,
}

impl What {
    fn noun(self) -> &'static str {
        match self {
            What::SqlServer => "SQL Server",
            What::WindowsServer => "Windows Server",
            What::Dotnet => ".NET Framework",
            What::CompatibilityLevel => "database compatibility level",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// The finding's id when the requirement is not met.
    pub id: String,
    pub what: What,
    pub(crate) targets: Range,
    /// A release name (`"2016"`, `"2012 R2"`), a .NET version or a compatibility level.
    pub needs: String,
    pub severity: Severity,
    pub source: String,
}

impl Requirement {
    /// The finding for a host or database that does not meet this requirement.
    pub fn unmet(&self, target: &Version, found: impl Into<String>, fix: &str) -> Finding {
        Finding::new(
            self.id.clone(),
            self.severity,
            found,
            format!(
                "Octopus {target} needs {} {} or later (source: {})",
                self.what.noun(),
                self.needs,
                self.source
            ),
            fix,
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DroppedTargetOs {
    pub id: String,
    pub(crate) targets: Range,
    /// Matches a machine's `OperatingSystem` (case-insensitive substring).
    pub os: String,
    /// Matches when the machine's `OperatingSystemVersion` is older.
    pub version_below: String,
    /// How to name the affected OS to a person.
    pub name: String,
    pub severity: Severity,
    pub why: String,
    pub fix: String,
    pub source: String,
}

impl DroppedTargetOs {
    /// Whether a machine with this OS (as the API reports it) is affected. An unknown version
    /// is not matched (the caller reports it as unchecked).
    pub fn matches(&self, operating_system: &str, os_version: &str) -> bool {
        operating_system
            .to_ascii_lowercase()
            .contains(&self.os.to_ascii_lowercase())
            && dotted_cmp(os_version, &self.version_below) == Some(Ordering::Less)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    sql_server_releases: BTreeMap<String, String>,
    windows_server_releases: BTreeMap<String, String>,
    #[serde(default, rename = "requirement")]
    requirements: Vec<Requirement>,
    #[serde(default, rename = "dropped_target_os")]
    dropped: Vec<DroppedTargetOs>,
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("compatibility rules: {0}")]
    Toml(#[from] toml::de::Error),
    #[error(
        "compatibility rules: requirement {id} needs {what} {needs}, which is not in the {table} table"
    )]
    UnknownRelease {
        id: String,
        what: &'static str,
        needs: String,
        table: &'static str,
    },
    #[error("compatibility rules: {id}: `{value}` is not a dotted number")]
    NotDotted { id: String, value: String },
}

impl Rules {
    /// The rules shipped with octoup.
    pub fn builtin() -> &'static Rules {
        static RULES: OnceLock<Rules> = OnceLock::new();
        RULES.get_or_init(|| {
            Rules::from_toml(BUILTIN).expect("data/compatibility.toml is valid (tested)")
        })
    }

    /// Parses and checks rules: every release a requirement names is in its table, and every
    /// version is a dotted number, so evaluation never meets a value it cannot compare.
    pub fn from_toml(text: &str) -> Result<Rules, RulesError> {
        let rules: Rules = toml::from_str(text)?;
        for r in &rules.requirements {
            let dotted = match r.what {
                What::SqlServer => Some(("sql_server_releases", &rules.sql_server_releases)),
                What::WindowsServer => {
                    Some(("windows_server_releases", &rules.windows_server_releases))
                }
                What::Dotnet | What::CompatibilityLevel => None,
            };
            match dotted {
                Some((table, releases)) if !releases.contains_key(&r.needs) => {
                    return Err(RulesError::UnknownRelease {
                        id: r.id.clone(),
                        what: r.what.noun(),
                        needs: r.needs.clone(),
                        table,
                    });
                }
                Some(_) => {}
                None => check_dotted(&r.id, &r.needs)?,
            }
        }
        for (name, v) in rules
            .sql_server_releases
            .iter()
            .chain(&rules.windows_server_releases)
        {
            check_dotted(name, v)?;
        }
        for d in &rules.dropped {
            check_dotted(&d.id, &d.version_below)?;
        }
        Ok(rules)
    }

    /// The requirements of this kind that apply to `target`.
    pub fn requirements(&self, what: What, target: &Version) -> Vec<&Requirement> {
        self.requirements
            .iter()
            .filter(|r| r.what == what && r.targets.contains(target))
            .collect()
    }

    /// The target-OS rules that apply to `target`.
    pub fn dropped_target_os(&self, target: &Version) -> Vec<&DroppedTargetOs> {
        self.dropped
            .iter()
            .filter(|d| d.targets.contains(target))
            .collect()
    }

    /// Whether the found value meets a requirement: `found` is SQL Server's
    /// `ProductVersion` ("13.0.5026.0"), the host's Windows NT version ("10.0.17763"), a
    /// .NET version or a compatibility level. `None` when `found` cannot be compared.
    pub fn meets(&self, requirement: &Requirement, found: &str) -> Option<bool> {
        let needed = match requirement.what {
            What::SqlServer => self.sql_server_releases.get(&requirement.needs)?,
            What::WindowsServer => self.windows_server_releases.get(&requirement.needs)?,
            What::Dotnet | What::CompatibilityLevel => &requirement.needs,
        };
        dotted_cmp(found, needed).map(|o| o != Ordering::Less)
    }

    /// The SQL Server release a `ProductVersion` belongs to ("15.0.2000.5" → "2019").
    pub fn sql_server_release(&self, product_version: &str) -> Option<&str> {
        release_of(&self.sql_server_releases, product_version)
    }

    /// The Windows Server release of an NT version ("10.0.17763.1" → "2019").
    pub fn windows_server_release(&self, nt_version: &str) -> Option<&str> {
        release_of(&self.windows_server_releases, nt_version)
    }
}

/// The newest release whose version is at or below `found`.
fn release_of<'a>(releases: &'a BTreeMap<String, String>, found: &str) -> Option<&'a str> {
    releases
        .iter()
        .filter(|(_, v)| {
            matches!(
                dotted_cmp(found, v),
                Some(Ordering::Greater | Ordering::Equal)
            )
        })
        .max_by(|a, b| dotted_cmp(a.1, b.1).unwrap_or(Ordering::Equal))
        .map(|(name, _)| name.as_str())
}

fn check_dotted(id: &str, value: &str) -> Result<(), RulesError> {
    match parts(value) {
        Some(_) => Ok(()),
        None => Err(RulesError::NotDotted {
            id: id.to_string(),
            value: value.to_string(),
        }),
    }
}

fn parts(value: &str) -> Option<Vec<u64>> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    value.split('.').map(|p| p.parse().ok()).collect()
}

/// Compares dotted numbers, missing parts as zero: "6.3" < "10.0.14393", "13.0" = "13".
/// `None` when either is not a dotted number.
pub fn dotted_cmp(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (parts(a)?, parts(b)?);
    let n = a.len().max(b.len());
    let at = |v: &Vec<u64>, i: usize| v.get(i).copied().unwrap_or(0);
    Some(
        (0..n)
            .map(|i| at(&a, i).cmp(&at(&b, i)))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn the_shipped_rules_parse() {
        let rules = Rules::from_toml(BUILTIN).unwrap();
        assert!(!rules.requirements.is_empty());
        assert!(!rules.dropped.is_empty());
    }

    /// One row per rule boundary: (target, what, found, meets?).
    #[test]
    fn each_rule_as_a_table() {
        let rules = Rules::builtin();
        let cases: &[(&str, What, &str, bool)] = &[
            // SQL Server floors, including the 2020.2/2020.3 windows that needed 2017.
            ("2019.13.0", What::SqlServer, "10.0.6000.29", true),
            ("2019.13.0", What::SqlServer, "9.0.5000", false),
            ("2020.1.5", What::SqlServer, "12.0.6024.0", false),
            ("2020.1.5", What::SqlServer, "13.0.5026.0", true),
            ("2020.2.0", What::SqlServer, "13.0.5026.0", false),
            ("2020.2.17", What::SqlServer, "14.0.1000.169", true),
            ("2020.2.18", What::SqlServer, "13.0.5026.0", true),
            ("2020.3.5", What::SqlServer, "13.0.5026.0", false),
            ("2020.3.6", What::SqlServer, "13.0.5026.0", true),
            ("2025.3.1", What::SqlServer, "12.0.6024.0", false),
            ("2025.3.1", What::SqlServer, "16.0.1000.6", true),
            // Compatibility level.
            ("2024.1.1", What::CompatibilityLevel, "120", false),
            ("2024.1.1", What::CompatibilityLevel, "130", true),
            ("2024.1.1", What::CompatibilityLevel, "160", true),
            // Host Windows.
            ("2019.5.0", What::WindowsServer, "6.0.6002", false),
            ("2019.5.0", What::WindowsServer, "6.1.7601", true),
            ("2024.1.1", What::WindowsServer, "6.2.9200", false),
            ("2024.1.1", What::WindowsServer, "6.3.9600", true),
            ("2024.1.1", What::WindowsServer, "10.0.20348", true),
            // .NET on the host.
            ("2019.8.0", What::Dotnet, "4.7.1", false),
            ("2019.8.0", What::Dotnet, "4.8", true),
            ("2019.1.0", What::Dotnet, "4.5.2", true),
        ];
        for (target, what, found, meets) in cases {
            let reqs = rules.requirements(*what, &v(target));
            assert_eq!(reqs.len(), 1, "{target} {what:?}: one rule applies");
            assert_eq!(
                rules.meets(reqs[0], found),
                Some(*meets),
                "{target} {what:?} with {found}"
            );
        }
        // 2020.1+ needs no .NET on the host: no rule applies.
        assert!(rules.requirements(What::Dotnet, &v("2024.1.1")).is_empty());
        assert!(
            rules
                .requirements(What::CompatibilityLevel, &v("2019.1.0"))
                .is_empty()
        );
    }

    #[test]
    fn dropped_target_os_by_version() {
        let rules = Rules::builtin();
        let ids = |target: &str, os: &str, ver: &str| -> Vec<String> {
            rules
                .dropped_target_os(&v(target))
                .into_iter()
                .filter(|d| d.matches(os, ver))
                .map(|d| d.id.clone())
                .collect()
        };
        assert_eq!(
            ids("2024.1.1", "Microsoft Windows Server 2003", "5.2.3790"),
            ["targets.os-dropped", "targets.dotnet"]
        );
        assert_eq!(
            ids("2024.2.1", "Microsoft Windows", "6.0.6002"),
            ["targets.os-deprecated", "targets.dotnet"]
        );
        assert_eq!(
            ids("2024.1.1", "Microsoft Windows", "6.2.9200"),
            ["targets.dotnet"]
        );
        assert!(ids("2024.1.1", "Microsoft Windows", "10.0.17763").is_empty());
        assert!(ids("2024.1.1", "Ubuntu", "22.04").is_empty());
        assert!(ids("2023.4.1", "Microsoft Windows Server 2003", "5.2").is_empty());
        assert!(ids("2024.1.1", "Microsoft Windows", "unknown").is_empty());
    }

    #[test]
    fn releases_are_named_from_versions() {
        let rules = Rules::builtin();
        assert_eq!(rules.sql_server_release("15.0.2000.5"), Some("2019"));
        assert_eq!(rules.sql_server_release("10.50.6000"), Some("2008 R2"));
        assert_eq!(rules.sql_server_release("9.0"), None);
        assert_eq!(rules.windows_server_release("10.0.17763.1"), Some("2019"));
        assert_eq!(rules.windows_server_release("6.3.9600"), Some("2012 R2"));
    }

    #[test]
    fn bad_rules_are_refused_with_the_rule_named() {
        let base = "[sql_server_releases]\n\"2016\" = \"13.0\"\n[windows_server_releases]\n";
        let bad = format!(
            "{base}[[requirement]]\nid = \"x\"\nwhat = \"sql_server\"\ntargets = {{}}\nneeds = \"2015\"\nseverity = \"blocker\"\nsource = \"s\"\n"
        );
        let e = Rules::from_toml(&bad).unwrap_err().to_string();
        assert!(e.contains("requirement x") && e.contains("2015"), "{e}");
        let bad = format!(
            "{base}[[requirement]]\nid = \"y\"\nwhat = \"dotnet\"\ntargets = {{}}\nneeds = \"four\"\nseverity = \"blocker\"\nsource = \"s\"\n"
        );
        let e = Rules::from_toml(&bad).unwrap_err().to_string();
        assert!(e.contains("y: `four`"), "{e}");
        let unknown = format!("{base}[[requirement]]\nid = \"z\"\nwaht = 1\n");
        assert!(Rules::from_toml(&unknown).is_err());
    }

    #[test]
    fn dotted_numbers_compare_by_part() {
        assert_eq!(dotted_cmp("6.3", "10.0.14393"), Some(Ordering::Less));
        assert_eq!(dotted_cmp("13.0", "13"), Some(Ordering::Equal));
        assert_eq!(dotted_cmp("4.8", "4.7.2"), Some(Ordering::Greater));
        assert_eq!(dotted_cmp("", "1"), None);
        assert_eq!(dotted_cmp("1.x", "1"), None);
    }
}
