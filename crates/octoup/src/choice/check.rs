//! `octoup check`: choose the target version and the path to it, and explain every newer
//! version that was not chosen. Pure: the feed, the license cap and "today" come in.
//!
//! Each newer version gets the first reason that applies, in this order (permanent facts
//! and the administrator's own settings first, passing conditions last):
//!  1. pre-release (unless `prereleases = true`)
//!  2. listed in `exclude`
//!  3. not on the pinned line (`pin`)
//!  4. outside `allow` (patch: same line; minor: same major; major: any)
//!  5. dated after today (a misdated feed entry; also a warning)
//!  6. released before the running build (Octopus issue 7790)
//!  7. a known broken jump on the way (data/upgrade-paths.toml)
//!  8. beyond the license's MaximumAvailableVersionCoveredByLicense
//!  9. younger than `min_age_days`
//! 10. a required intermediate stop is unavailable or not allowed
//! 11. a newer patch of the same line is eligible
//! 12. a newer line is chosen
//!
//! The target is the newest eligible patch of the newest eligible line. Versions that are
//! stops on the path are listed in `path`, not in `rejected`.

use std::fmt::Write as _;

use jiff::civil::Date;
use serde::Serialize;

use crate::choice::feed::{Feed, Release};
use crate::choice::paths::{BrokenHop, PathError, Route, UpgradePaths};
use crate::choice::policy::{CurrentRelease, Policy, Reason};
use crate::version::Version;

/// Everything the choice depends on.
#[derive(Debug, Clone)]
pub struct CheckInput {
    /// The running version (from the server's `/api`, or `--current`).
    pub current: Version,
    /// When the running build was released, if known from elsewhere; otherwise the feed is
    /// asked (see [`CurrentRelease`] for the fallback when the feed does not list it).
    pub current_released: Option<Date>,
    pub feed: Feed,
    pub policy: Policy,
    /// `/api/serverstatus` MaximumAvailableVersionCoveredByLicense; `None` without a server
    /// (the caller says so in the report's warnings: it knows why).
    pub license_max: Option<Version>,
    /// Today; never read from the clock in here.
    pub now: Date,
}

/// The outcome in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    /// A target was chosen.
    UpgradeAvailable,
    /// The feed lists nothing newer than the running version.
    UpToDate,
    /// Newer versions exist but every one is rejected (see `rejected`).
    NoEligibleVersion,
}

/// A newer version that was not chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub version: Version,
    pub reason: String,
    /// Stable rule name, e.g. `min-age` or `released-before-current`.
    pub rule: &'static str,
    pub released: Date,
}

/// The answer of `octoup check`; serializes to the design's JSON (plus extra fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub current: Version,
    pub target: Option<Version>,
    /// Every version to install in order, ending with the target; empty without a target.
    pub path: Vec<Version>,
    /// Newest first.
    pub rejected: Vec<Rejected>,
    pub status: CheckStatus,
    /// Exact release date of the running build, when the feed (or the caller) knows it.
    pub current_released: Option<Date>,
    pub target_released: Option<Date>,
    /// Why each intermediate stop is on the path.
    pub path_reasons: Vec<String>,
    pub warnings: Vec<String>,
    /// One or two sentences for people.
    pub explanation: String,
}

/// Chooses with the built-in upgrade-path data.
pub fn check(input: &CheckInput) -> CheckReport {
    check_with(input, UpgradePaths::builtin())
}

/// Chooses with the given upgrade-path data.
pub(crate) fn check_with(input: &CheckInput, paths: &UpgradePaths) -> CheckReport {
    let current = &input.current;
    let mut warnings: Vec<String> = input
        .feed
        .warnings()
        .iter()
        .map(ToString::to_string)
        .collect();
    warnings.extend(input.policy.warnings(current));
    let current_release = current_release(input, &mut warnings);
    if let Some(newest) = input.feed.newest()
        && newest.version < *current
    {
        warnings.push(format!(
            "the running version {current} is newer than everything in the feed (newest {}): is the feed an outdated mirror?",
            newest.version
        ));
    }

    for release in input.feed.newer_than(current) {
        if release.released > input.now {
            warnings.push(format!(
                "the feed dates {} {}, after today ({} UTC): a misdated feed entry? It is not chosen, nor taken as a stop (rule released-in-future)",
                release.version, release.released, input.now
            ));
        }
    }

    // Stops must be allowed too: not excluded, not dated in the future, not released
    // before the running build.
    let stop_allowed = |v: &Version| -> Result<(), String> {
        if input.policy.is_excluded(v) {
            return Err("listed in versions.exclude".into());
        }
        if let Some(release) = input.feed.get(v)
            && let Some(reason) = Policy::in_future(release.released, input.now)
                .or_else(|| current_release.rejects(current, release.released))
        {
            return Err(reason.to_string());
        }
        Ok(())
    };

    let mut rejected = Vec::new();
    let mut eligible: Vec<(&Release, Route)> = Vec::new();
    for release in input.feed.newer_than(current) {
        let version = &release.version;
        let early = input
            .policy
            .config_rejection(current, version)
            .or_else(|| Policy::in_future(release.released, input.now))
            .or_else(|| current_release.rejects(current, release.released));
        let route = match early {
            Some(_) => None,
            None => Some(paths.route(current, version, &input.feed, &stop_allowed)),
        };
        let reason = early
            .or_else(|| match &route {
                Some(Err(PathError::Broken(hop))) => {
                    let BrokenHop { from, to, reason } = hop.as_ref();
                    Some(Reason::BrokenJump {
                        detail: if from == current && to == version {
                            reason.clone()
                        } else {
                            format!("its path goes {from} -> {to}, which is broken: {reason}")
                        },
                    })
                }
                _ => None,
            })
            .or_else(|| {
                let max = input.license_max.as_ref()?;
                (version > max).then(|| Reason::NotLicensed { max: max.clone() })
            })
            .or_else(|| input.policy.too_young(release.released, input.now))
            .or_else(|| match &route {
                Some(Err(e)) => Some(Reason::NoPath {
                    detail: e.to_string(),
                }),
                _ => None,
            });
        match (reason, route) {
            (Some(reason), _) => rejected.push(rejection(release, &reason)),
            (None, Some(Ok(route))) => eligible.push((release, route)),
            (None, _) => unreachable!("a version without a reason has a route"),
        }
    }

    // The target: newest eligible version (so newest line, newest patch of it). `eligible`
    // is in feed order, oldest first.
    let chosen = eligible.pop();
    let mut path_reasons = Vec::new();
    let mut path = Vec::new();
    if let Some((target, route)) = &chosen {
        for (release, _) in &eligible {
            if route.stops.contains(&release.version) {
                continue;
            }
            let head = eligible
                .iter()
                .map(|(r, _)| &r.version)
                .chain(std::iter::once(&target.version))
                .filter(|v| v.line() == release.version.line())
                .max()
                .expect("the release itself is on its line");
            let reason = if *head != release.version {
                Reason::OlderPatch {
                    newer: head.clone(),
                }
            } else {
                Reason::OlderLine {
                    target: target.version.clone(),
                }
            };
            rejected.push(rejection(release, &reason));
        }
        warnings.extend(route.notes.iter().cloned());
        path_reasons = route.reasons.clone();
        path = route.stops.clone();
        path.push(target.version.clone());
    }
    rejected.sort_by(|a, b| b.version.cmp(&a.version));

    let newer = input.feed.newer_than(current).len();
    let status = match (&chosen, newer) {
        (Some(_), _) => CheckStatus::UpgradeAvailable,
        (None, 0) => CheckStatus::UpToDate,
        (None, _) => CheckStatus::NoEligibleVersion,
    };
    let target = chosen.as_ref().map(|(r, _)| r.version.clone());
    let explanation = explain(input, status, target.as_ref(), &path, rejected.len());
    CheckReport {
        current: current.clone(),
        target,
        path,
        rejected,
        status,
        current_released: current_release.known(),
        target_released: chosen.as_ref().map(|(r, _)| r.released),
        path_reasons,
        warnings,
        explanation,
    }
}

fn rejection(release: &Release, reason: &Reason) -> Rejected {
    Rejected {
        version: release.version.clone(),
        reason: reason.to_string(),
        rule: reason.code(),
        released: release.released,
    }
}

/// The running build's release date: given, from the feed, bounded by an older patch of its
/// line, or unknown (then the released-before rule is skipped, with a warning).
fn current_release(input: &CheckInput, warnings: &mut Vec<String>) -> CurrentRelease {
    let current = &input.current;
    if let Some(date) = input.current_released {
        return CurrentRelease::Known(date);
    }
    if let Some(release) = input.feed.get(current) {
        return CurrentRelease::Known(release.released);
    }
    let older_on_line = input
        .feed
        .releases()
        .iter()
        .rev()
        .find(|r| r.version < *current && r.version.line() == current.line());
    match older_on_line {
        Some(older) => {
            warnings.push(format!(
                "the running build {current} is not in the feed; its release date is taken as no earlier than {} (release of {}, an older build of {}) for the 'released before the running build' rule",
                older.released,
                older.version,
                current.line()
            ));
            CurrentRelease::NoEarlierThan {
                date: older.released,
                older: older.version.clone(),
            }
        }
        None => {
            warnings.push(format!(
                "the running build {current} and its release line are not in the feed, so its release date is unknown and the 'released before the running build' rule (Octopus issue 7790) cannot be applied: check the target's release date yourself"
            ));
            CurrentRelease::Unknown
        }
    }
}

fn explain(
    input: &CheckInput,
    status: CheckStatus,
    target: Option<&Version>,
    path: &[Version],
    rejected: usize,
) -> String {
    let policy = &input.policy;
    let mut settings = format!("allow = \"{}\"", policy.allow);
    if policy.min_age_days > 0 {
        let _ = write!(settings, ", min_age_days = {}", policy.min_age_days);
    }
    if let Some(pin) = policy.pin {
        let _ = write!(settings, ", pin = \"{pin}\"");
    }
    let current = &input.current;
    match (status, target) {
        (CheckStatus::UpgradeAvailable, Some(target)) => {
            let mut text = format!(
                "Upgrade {current} to {target}: the newest eligible build of {}, the newest release line the policy allows ({settings}).",
                target.line()
            );
            if path.len() > 1 {
                let stops: Vec<String> = path[..path.len() - 1]
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                let _ = write!(
                    text,
                    " The path goes through {} first (see path_reasons).",
                    stops.join(", then ")
                );
            }
            if rejected > 0 {
                let _ = write!(text, " {rejected} other newer version(s) not chosen.");
            }
            text
        }
        (CheckStatus::UpToDate, _) => {
            format!("{current} is up to date: the feed lists nothing newer.")
        }
        _ => format!(
            "No upgrade: all {rejected} newer version(s) are rejected ({settings}); {current} stays. Each version's reason is listed."
        ),
    }
}

#[cfg(test)]
mod future_tests;
#[cfg(test)]
mod tests;
