//! The version policy an administrator sets in `[versions]`: how far octoup may move
//! (`allow`), how old a release must be (`min_age_days`), an optional pinned line, versions
//! never to install, and whether pre-releases count.
//!
//! This module holds the per-version rules and the words that explain a rejection;
//! `crate::choice::check` applies them in order together with the upgrade-path facts.

use std::fmt;
use std::str::FromStr;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::version::{Line, Version, VersionError};

/// How far an automatic upgrade may move from the running version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Allow {
    /// Only newer builds of the running release line (`2024.2.x`).
    Patch,
    /// Any line of the running major (`2024.x`); never crosses a major. The default.
    #[default]
    Minor,
    /// Any newer version.
    Major,
}

impl Allow {
    /// Whether moving from `current` to `candidate` stays inside this scope.
    pub(crate) fn permits(self, current: &Version, candidate: &Version) -> bool {
        match self {
            Allow::Patch => candidate.line() == current.line(),
            Allow::Minor => candidate.major() == current.major(),
            Allow::Major => true,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Allow::Patch => "patch",
            Allow::Minor => "minor",
            Allow::Major => "major",
        }
    }
}

impl fmt::Display for Allow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Allow {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "patch" => Ok(Allow::Patch),
            "minor" => Ok(Allow::Minor),
            "major" => Ok(Allow::Major),
            _ => Err(PolicyError::Allow(s.to_string())),
        }
    }
}

/// A `[versions]` value that cannot be used; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("[versions] allow = {0:?} is not one of \"patch\", \"minor\", \"major\"")]
    Allow(String),
    #[error("[versions] pin: {0}")]
    Pin(VersionError),
    #[error("[versions] exclude: {0}")]
    Exclude(VersionError),
}

/// The rules that choose a target among the feed's versions.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    pub allow: Allow,
    /// Soak time: a release must be at least this many days old.
    pub min_age_days: u32,
    /// Stay on this release line.
    pub pin: Option<Line>,
    /// Versions never to install.
    pub exclude: Vec<Version>,
    /// Consider pre-releases (off unless asked).
    #[serde(rename = "prereleases")]
    pub include_prereleases: bool,
}

impl Policy {
    /// Builds the policy from the `[versions]` values as written in the config.
    pub(crate) fn from_values(
        allow: &str,
        min_age_days: u32,
        pin: Option<&str>,
        exclude: &[String],
        prereleases: bool,
    ) -> Result<Policy, PolicyError> {
        Ok(Policy {
            allow: allow.parse()?,
            min_age_days,
            pin: pin.map(str::parse).transpose().map_err(PolicyError::Pin)?,
            exclude: exclude
                .iter()
                .map(|v| v.parse())
                .collect::<Result<_, _>>()
                .map_err(PolicyError::Exclude)?,
            include_prereleases: prereleases,
        })
    }

    /// The policy from the config's `[versions]` section.
    pub fn from_config(versions: &crate::config::VersionsConfig) -> Result<Policy, PolicyError> {
        Policy::from_values(
            &versions.allow,
            versions.min_age_days,
            versions.pin.as_deref(),
            &versions.exclude,
            versions.prereleases,
        )
    }

    pub(crate) fn is_excluded(&self, version: &Version) -> bool {
        self.exclude.contains(version)
    }

    /// The rules set by the administrator alone (the first four in the documented order).
    pub(crate) fn config_rejection(
        &self,
        current: &Version,
        candidate: &Version,
    ) -> Option<Reason> {
        if candidate.is_prerelease() && !self.include_prereleases {
            return Some(Reason::Prerelease);
        }
        if self.is_excluded(candidate) {
            return Some(Reason::Excluded);
        }
        if let Some(pin) = self.pin
            && !pin.contains(candidate)
        {
            return Some(Reason::NotPinned { pin });
        }
        if !self.allow.permits(current, candidate) {
            return Some(Reason::OutOfScope {
                allow: self.allow,
                current: current.clone(),
            });
        }
        None
    }

    /// `Some` when the feed dates the release after `now`.
    pub(crate) fn in_future(released: Date, now: Date) -> Option<Reason> {
        (released > now).then_some(Reason::FutureRelease {
            released,
            today: now,
        })
    }

    /// Soak time: `Some` when `released` is less than `min_age_days` before `now`.
    pub(crate) fn too_young(&self, released: Date, now: Date) -> Option<Reason> {
        if self.min_age_days == 0 {
            return None;
        }
        let eligible_from = released
            .checked_add(jiff::Span::new().days(i64::from(self.min_age_days)))
            .unwrap_or(Date::MAX);
        (now < eligible_from).then_some(Reason::TooYoung {
            released,
            min_age_days: self.min_age_days,
            eligible_from,
        })
    }

    /// Warnings about settings that can never select anything from `current`.
    pub(crate) fn warnings(&self, current: &Version) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(pin) = self.pin {
            if pin < current.line() {
                warnings.push(format!(
                    "versions.pin = \"{pin}\" is older than the running line {}: octoup never downgrades, so nothing can be chosen",
                    current.line()
                ));
            } else {
                let probe = Version::new(pin.major, pin.minor, u64::MAX);
                if !self.allow.permits(current, &probe) {
                    warnings.push(format!(
                        "versions.pin = \"{pin}\" is outside allow = \"{}\" from {current}: set allow = \"{}\" to upgrade to it",
                        self.allow,
                        if pin.major == current.major() { "minor" } else { "major" }
                    ));
                }
            }
        }
        warnings
    }
}

/// When the running build was released: the "released before the running build" rule needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CurrentRelease {
    /// The feed (or the caller) knows the date.
    Known(Date),
    /// The running build is not in the feed, but an older build of its line is: builds of a
    /// line are released in build order, so the running one is no older than that.
    NoEarlierThan { date: Date, older: Version },
    /// Nothing to go on: the rule cannot be applied.
    Unknown,
}

impl CurrentRelease {
    /// The date a candidate must not be released before, if any.
    pub(crate) fn floor(&self) -> Option<Date> {
        match self {
            CurrentRelease::Known(date) | CurrentRelease::NoEarlierThan { date, .. } => Some(*date),
            CurrentRelease::Unknown => None,
        }
    }

    /// The exact date, when known.
    pub(crate) fn known(&self) -> Option<Date> {
        match self {
            CurrentRelease::Known(date) => Some(*date),
            _ => None,
        }
    }

    /// `Some` when `released` is before the running build's release (Octopus issue 7790).
    pub(crate) fn rejects(&self, current: &Version, released: Date) -> Option<Reason> {
        let floor = self.floor()?;
        (released < floor).then(|| Reason::ReleasedBeforeCurrent {
            current: current.clone(),
            current_release: self.clone(),
        })
    }
}

/// Why a version newer than the running one was not chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reason {
    Prerelease,
    Excluded,
    NotPinned {
        pin: Line,
    },
    OutOfScope {
        allow: Allow,
        current: Version,
    },
    /// The feed dates it after today: a misdated entry is not installed by policy.
    FutureRelease {
        released: Date,
        today: Date,
    },
    ReleasedBeforeCurrent {
        current: Version,
        current_release: CurrentRelease,
    },
    /// Upgrading to it (or to a required stop) hits a known broken jump.
    BrokenJump {
        detail: String,
    },
    NotLicensed {
        max: Version,
    },
    TooYoung {
        released: Date,
        min_age_days: u32,
        eligible_from: Date,
    },
    /// A required intermediate stop is unavailable or not allowed.
    NoPath {
        detail: String,
    },
    OlderPatch {
        newer: Version,
    },
    OlderLine {
        target: Version,
    },
}

impl Reason {
    /// A stable machine-readable name for the rule (the `rule` field in JSON).
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Reason::Prerelease => "prerelease",
            Reason::Excluded => "excluded",
            Reason::NotPinned { .. } => "pin",
            Reason::OutOfScope { .. } => "allow",
            Reason::FutureRelease { .. } => "released-in-future",
            Reason::ReleasedBeforeCurrent { .. } => "released-before-current",
            Reason::BrokenJump { .. } => "broken-jump",
            Reason::NotLicensed { .. } => "license",
            Reason::TooYoung { .. } => "min-age",
            Reason::NoPath { .. } => "upgrade-path",
            Reason::OlderPatch { .. } => "newer-patch-eligible",
            Reason::OlderLine { .. } => "newer-line-chosen",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Prerelease => {
                f.write_str("pre-release (set versions.prereleases = true to consider it)")
            }
            Reason::Excluded => f.write_str("listed in versions.exclude"),
            Reason::NotPinned { pin } => write!(f, "not on the pinned line {pin} (versions.pin)"),
            Reason::OutOfScope {
                allow: Allow::Patch,
                current,
            } => write!(
                f,
                "a new release line, and allow = \"patch\" keeps to {} (set allow = \"minor\" to consider it)",
                current.line()
            ),
            Reason::OutOfScope { allow, current } => write!(
                f,
                "a major upgrade from {}, and allow = \"{allow}\" never crosses a major (set allow = \"major\" to consider it)",
                current.major()
            ),
            Reason::FutureRelease { released, today } => write!(
                f,
                "dated {released}, after today ({today} UTC): a misdated feed entry is not installed by policy (it becomes a candidate on that date; --to installs it on purpose)"
            ),
            Reason::ReleasedBeforeCurrent {
                current,
                current_release,
            } => {
                match current_release {
                    CurrentRelease::Known(date) => {
                        write!(f, "released before the running build {current} ({date})")?
                    }
                    CurrentRelease::NoEarlierThan { date, older } => write!(
                        f,
                        "released before the running build {current} (not in the feed, but newer than {older} released {date})"
                    )?,
                    CurrentRelease::Unknown => {
                        write!(f, "released before the running build {current}")?
                    }
                }
                f.write_str(": upgrading to it fails with 'Unexpected upgrade history detected' (Octopus issue 7790)")
            }
            Reason::BrokenJump { detail } => f.write_str(detail),
            Reason::NotLicensed { max } => write!(
                f,
                "not covered by the license (maintenance covers up to {max})"
            ),
            Reason::TooYoung {
                released,
                min_age_days,
                eligible_from,
            } => write!(
                f,
                "released {released}, less than versions.min_age_days = {min_age_days} days ago (eligible from {eligible_from})"
            ),
            Reason::NoPath { detail } => f.write_str(detail),
            Reason::OlderPatch { newer } => {
                write!(f, "a newer patch of {} is eligible: {newer}", newer.line())
            }
            Reason::OlderLine { target } => {
                write!(
                    f,
                    "a newer release line is chosen: {} (target {target})",
                    target.line()
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn allow_scopes() {
        let current = v("2024.2.100");
        for (allow, candidate, ok) in [
            (Allow::Patch, "2024.2.200", true),
            (Allow::Patch, "2024.3.1", false),
            (Allow::Minor, "2024.4.1", true),
            (Allow::Minor, "2025.1.1", false),
            (Allow::Major, "2026.1.1", true),
        ] {
            assert_eq!(
                allow.permits(&current, &v(candidate)),
                ok,
                "{allow} {candidate}"
            );
        }
        assert_eq!(Allow::default(), Allow::Minor);
        assert_eq!("MAJOR".parse::<Allow>().unwrap(), Allow::Major);
        assert_eq!(
            "latest".parse::<Allow>().unwrap_err().to_string(),
            "[versions] allow = \"latest\" is not one of \"patch\", \"minor\", \"major\""
        );
    }

    #[test]
    fn serde_uses_the_config_names() {
        let policy: Policy = toml::from_str(
            "allow = \"patch\"\nmin_age_days = 7\npin = \"2024.3\"\nexclude = [\"2024.3.5\"]\nprereleases = true\n",
        )
        .unwrap();
        assert_eq!(
            policy,
            Policy {
                allow: Allow::Patch,
                min_age_days: 7,
                pin: Some("2024.3".parse().unwrap()),
                exclude: vec![v("2024.3.5")],
                include_prereleases: true,
            }
        );
        assert_eq!(toml::from_str::<Policy>("").unwrap(), Policy::default());
        let err = toml::from_str::<Policy>("alow = \"major\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("alow"), "{err}");
        let err = toml::from_str::<Policy>("exclude = [\"2024.3\"]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"2024.3\""), "{err}");
    }

    #[test]
    fn from_config_names_the_bad_key() {
        let mut versions = crate::config::VersionsConfig::default();
        assert_eq!(Policy::from_config(&versions).unwrap(), Policy::default());
        versions.exclude = vec!["2024.3.x".into()];
        let err = Policy::from_config(&versions).unwrap_err().to_string();
        assert!(
            err.starts_with("[versions] exclude: invalid Octopus version \"2024.3.x\""),
            "{err}"
        );
        versions.exclude.clear();
        versions.pin = Some("2024".into());
        let err = Policy::from_config(&versions).unwrap_err().to_string();
        assert!(
            err.starts_with("[versions] pin: invalid Octopus version \"2024\""),
            "{err}"
        );
    }

    #[test]
    fn config_rules_apply_in_order() {
        let policy = Policy {
            allow: Allow::Minor,
            pin: Some("2024.3".parse().unwrap()),
            exclude: vec![v("2024.3.7-rc.1"), v("2024.3.9")],
            ..Policy::default()
        };
        let current = v("2024.2.1");
        let code = |c: &str| policy.config_rejection(&current, &v(c)).map(|r| r.code());
        // Pre-release comes first even when the version is also excluded.
        assert_eq!(code("2024.3.7-rc.1"), Some("prerelease"));
        assert_eq!(code("2024.3.9"), Some("excluded"));
        assert_eq!(code("2024.4.1"), Some("pin"));
        assert_eq!(code("2024.3.8"), None);
        let unpinned = Policy {
            pin: None,
            ..policy.clone()
        };
        assert_eq!(
            unpinned
                .config_rejection(&current, &v("2025.1.1"))
                .map(|r| r.code()),
            Some("allow")
        );
    }

    #[test]
    fn soak_time() {
        let policy = Policy {
            min_age_days: 14,
            ..Policy::default()
        };
        let released: Date = "2024-06-01".parse().unwrap();
        let reason = policy
            .too_young(released, "2024-06-14".parse().unwrap())
            .unwrap();
        assert_eq!(
            reason.to_string(),
            "released 2024-06-01, less than versions.min_age_days = 14 days ago (eligible from 2024-06-15)"
        );
        assert!(
            policy
                .too_young(released, "2024-06-15".parse().unwrap())
                .is_none()
        );
        assert!(Policy::default().too_young(released, released).is_none());
    }

    #[test]
    fn released_before_current() {
        let current = v("2024.1.10");
        let known = CurrentRelease::Known("2024-02-01".parse().unwrap());
        let reason = known
            .rejects(&current, "2024-01-31".parse().unwrap())
            .unwrap();
        assert_eq!(
            reason.to_string(),
            "released before the running build 2024.1.10 (2024-02-01): upgrading to it fails with 'Unexpected upgrade history detected' (Octopus issue 7790)"
        );
        assert!(
            known
                .rejects(&current, "2024-02-01".parse().unwrap())
                .is_none(),
            "same day is fine"
        );
        assert!(
            CurrentRelease::Unknown
                .rejects(&current, "2000-01-01".parse().unwrap())
                .is_none()
        );
    }

    #[test]
    fn warnings_for_pins_that_cannot_match() {
        let current = v("2024.2.1");
        let old = Policy {
            pin: Some("2024.1".parse().unwrap()),
            ..Policy::default()
        };
        assert!(old.warnings(&current)[0].contains("older than the running line 2024.2"));
        let major = Policy {
            pin: Some("2025.1".parse().unwrap()),
            ..Policy::default()
        };
        assert!(major.warnings(&current)[0].contains("set allow = \"major\""));
        let fine = Policy {
            pin: Some("2024.3".parse().unwrap()),
            ..Policy::default()
        };
        assert!(fine.warnings(&current).is_empty());
    }
}
