//! Upgrade paths: the intermediate stops some jumps need and the jumps that are known to
//! fail. The facts live in `data/upgrade-paths.toml` (embedded at build time) so they can be
//! reviewed and extended without touching code; this module only interprets them.

use std::fmt;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::choice::feed::Feed;
use crate::version::Version;

/// The data file shipped with octoup.
pub(crate) const BUILTIN: &str = include_str!("../../data/upgrade-paths.toml");

/// Guards against data whose rules keep inserting stops (each hop is routed again).
const MAX_DEPTH: usize = 8;

/// `min` (inclusive) and `below` (exclusive); either may be absent. A pre-release counts as
/// its release (it carries that release's changes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Range {
    pub min: Option<Version>,
    pub below: Option<Version>,
}

impl Range {
    pub(crate) fn contains(&self, version: &Version) -> bool {
        let v = version.release();
        self.min.as_ref().is_none_or(|min| v >= *min)
            && self.below.as_ref().is_none_or(|below| v < *below)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.min, &self.below) {
            (Some(min), Some(below)) => write!(f, "{min} or newer and older than {below}"),
            (Some(min), None) => write!(f, "{min} or newer"),
            (None, Some(below)) => write!(f, "older than {below}"),
            (None, None) => f.write_str("any version"),
        }
    }
}

/// One required stop: a fixed build, or the newest feed release in a range.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StopSpec {
    pub version: Option<Version>,
    pub newest: Option<Range>,
    pub fallback: Option<Version>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StopRule {
    pub id: String,
    pub source: String,
    pub why: String,
    pub from: Range,
    pub to: Range,
    pub via: Vec<StopSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BrokenRule {
    pub id: String,
    pub source: String,
    pub reason: String,
    pub from: Range,
    pub to: Vec<Range>,
}

impl BrokenRule {
    pub(crate) fn applies(&self, from: &Version, to: &Version) -> bool {
        self.from.contains(from) && self.to.iter().any(|r| r.contains(to))
    }
}

/// The whole data file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpgradePaths {
    #[serde(default)]
    pub stop: Vec<StopRule>,
    #[serde(default)]
    pub broken: Vec<BrokenRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upgrade-path data is invalid: {0}")]
pub(crate) struct DataError(String);

/// Why no path reaches a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathError {
    /// A hop of the path is a known broken jump.
    Broken(Box<BrokenHop>),
    /// A required stop is unavailable or not allowed.
    Stop { detail: String },
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Broken(hop) => {
                let BrokenHop { from, to, reason } = hop.as_ref();
                write!(f, "upgrading {from} -> {to} is broken: {reason}")
            }
            PathError::Stop { detail } => f.write_str(detail),
        }
    }
}

/// A hop that a `[[broken]]` rule forbids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BrokenHop {
    pub from: Version,
    pub to: Version,
    pub reason: String,
}

/// A path from the running version to a target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Route {
    /// Intermediate stops in order (the target itself is not included).
    pub stops: Vec<Version>,
    /// Why each stop is there ("2.6.5: Octopus 2.x must ... (source)").
    pub reasons: Vec<String>,
    /// Things the operator should know (a stop the feed does not list).
    pub notes: Vec<String>,
}

/// What the caller allows as a stop: `Err(why not)` for a version that must not be used.
pub(crate) type StopCheck<'a> = &'a dyn Fn(&Version) -> Result<(), String>;

impl UpgradePaths {
    /// The embedded data. Its validity is a unit test, so a failure here is a build defect.
    pub(crate) fn builtin() -> &'static UpgradePaths {
        static PATHS: OnceLock<UpgradePaths> = OnceLock::new();
        PATHS.get_or_init(|| {
            UpgradePaths::from_toml(BUILTIN).expect("data/upgrade-paths.toml is valid (tested)")
        })
    }

    pub(crate) fn from_toml(text: &str) -> Result<UpgradePaths, DataError> {
        let paths: UpgradePaths = toml::from_str(text).map_err(|e| DataError(e.to_string()))?;
        for rule in &paths.stop {
            if rule.via.is_empty() {
                return Err(DataError(format!(
                    "stop rule {} has no `via` stops",
                    rule.id
                )));
            }
            for spec in &rule.via {
                if spec.version.is_some() == spec.newest.is_some() {
                    return Err(DataError(format!(
                        "stop rule {}: each `via` entry needs exactly one of `version` or `newest`",
                        rule.id
                    )));
                }
                if spec.version.is_some() && spec.fallback.is_some() {
                    return Err(DataError(format!(
                        "stop rule {}: `fallback` only goes with `newest`",
                        rule.id
                    )));
                }
            }
        }
        Ok(paths)
    }

    /// The broken-jump rule that forbids `from -> to`, if any.
    pub(crate) fn broken_jump(&self, from: &Version, to: &Version) -> Option<&BrokenRule> {
        self.broken.iter().find(|rule| rule.applies(from, to))
    }

    /// The stops needed to go from `from` to `to`, every hop checked against the broken jumps.
    /// `allowed` vets each stop (excluded, released before the running build, ...).
    pub(crate) fn route(
        &self,
        from: &Version,
        to: &Version,
        feed: &Feed,
        allowed: StopCheck<'_>,
    ) -> Result<Route, PathError> {
        let mut route = Route::default();
        self.route_into(from, to, feed, allowed, 0, &mut route)?;
        Ok(route)
    }

    fn route_into(
        &self,
        from: &Version,
        to: &Version,
        feed: &Feed,
        allowed: StopCheck<'_>,
        depth: usize,
        route: &mut Route,
    ) -> Result<(), PathError> {
        if depth > MAX_DEPTH {
            return Err(PathError::Stop {
                detail: format!(
                    "the path from {from} to {to} needs more than {MAX_DEPTH} stops; the upgrade-path data loops"
                ),
            });
        }
        for rule in &self.stop {
            if !(rule.from.contains(from) && rule.to.contains(to)) {
                continue;
            }
            let mut stops = Vec::new();
            for spec in &rule.via {
                let previous = stops.last().unwrap_or(from);
                if let Some(stop) = resolve(rule, spec, previous, to, feed, allowed, route)? {
                    stops.push(stop);
                }
            }
            if stops.is_empty() {
                continue; // every stop is already behind us or beyond the target
            }
            let mut previous = from.clone();
            for stop in stops {
                self.route_into(&previous, &stop, feed, allowed, depth + 1, route)?;
                route
                    .reasons
                    .push(format!("{stop}: {} ({})", rule.why, rule.source));
                route.stops.push(stop.clone());
                previous = stop;
            }
            return self.route_into(&previous, to, feed, allowed, depth + 1, route);
        }
        match self.broken_jump(from, to) {
            Some(rule) => Err(PathError::Broken(Box::new(BrokenHop {
                from: from.clone(),
                to: to.clone(),
                reason: rule.reason.clone(),
            }))),
            None => Ok(()),
        }
    }
}

/// Picks the build for one stop strictly between `from` and `to`; `None` when the stop does
/// not lie in between (already passed, or the target itself is earlier).
fn resolve(
    rule: &StopRule,
    spec: &StopSpec,
    from: &Version,
    to: &Version,
    feed: &Feed,
    allowed: StopCheck<'_>,
    route: &mut Route,
) -> Result<Option<Version>, PathError> {
    let between = |v: &Version| v > from && v < to;
    let unusable = |v: &Version, why: String| PathError::Stop {
        detail: format!(
            "needs a stop at {v} ({}; {}), but {v} is {why}",
            rule.why, rule.source
        ),
    };
    if let Some(version) = &spec.version {
        if !between(version) {
            return Ok(None);
        }
        allowed(version).map_err(|why| unusable(version, why))?;
        if feed.get(version).is_none() {
            route.notes.push(format!(
                "required stop {version} is not in the feed; octoup uses it by its version number ({})",
                rule.source
            ));
        }
        return Ok(Some(version.clone()));
    }
    let range = spec
        .newest
        .as_ref()
        .expect("validated: `version` or `newest`");
    if range.contains(to) {
        return Ok(None); // the target itself is such a release
    }
    let in_range: Vec<&Version> = feed
        .releases()
        .iter()
        .map(|r| &r.version)
        .filter(|v| range.contains(v) && !v.is_prerelease())
        .collect();
    if in_range.iter().all(|v| !between(v)) && !in_range.is_empty() {
        return Ok(None);
    }
    let mut refused = Vec::new();
    for candidate in in_range.iter().rev().filter(|v| between(v)) {
        match allowed(candidate) {
            Ok(()) => return Ok(Some((*candidate).clone())),
            Err(why) => refused.push(format!("{candidate} is {why}")),
        }
    }
    if let Some(fallback) = &spec.fallback {
        if !between(fallback) {
            return Ok(None);
        }
        if refused.is_empty() {
            allowed(fallback).map_err(|why| unusable(fallback, why))?;
            route.notes.push(format!(
                "the feed lists no release {range}; octoup uses the known build {fallback} as the stop ({})",
                rule.source
            ));
            return Ok(Some(fallback.clone()));
        }
    }
    let found = if refused.is_empty() {
        "the feed lists none".to_string()
    } else {
        refused.join("; ")
    };
    Err(PathError::Stop {
        detail: format!(
            "needs a stop at a release {range} ({}; {}), but {found}: upgrade to such a release first, by hand or with --feed pointing at a feed that lists it",
            rule.why, rule.source
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::choice::feed::Release;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn feed(entries: &[(&str, &str)]) -> Feed {
        Feed::from_releases(entries.iter().map(|(ver, date)| Release {
            version: v(ver),
            released: date.parse().unwrap(),
        }))
    }

    fn any(_: &Version) -> Result<(), String> {
        Ok(())
    }

    fn stops(route: &Route) -> Vec<String> {
        route.stops.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn builtin_data_is_valid_and_sourced() {
        let paths = UpgradePaths::builtin();
        assert!(paths.stop.len() >= 7 && !paths.broken.is_empty());
        for rule in &paths.stop {
            assert!(
                !rule.source.is_empty() && !rule.why.is_empty(),
                "{}",
                rule.id
            );
        }
    }

    #[test]
    fn modern_upgrades_need_no_stops() {
        let route = UpgradePaths::builtin()
            .route(&v("2024.1.10"), &v("2024.2.7"), &Feed::default(), &any)
            .unwrap();
        assert_eq!(route, Route::default());
    }

    #[test]
    fn legacy_goes_through_2_6_5_and_the_newest_2018_10_lts() {
        let feed = feed(&[
            ("2018.10.0", "2018-10-20"),
            ("2018.10.5", "2019-03-01"),
            ("2018.11.0", "2018-11-20"),
            ("2025.1.100", "2025-02-01"),
        ]);
        let route = UpgradePaths::builtin()
            .route(&v("2.6.2.845"), &v("2025.1.100"), &feed, &any)
            .unwrap();
        // 2018.10 LTS, then 2021.1.8018 (issue 9141) before a 2023.4+ target.
        assert_eq!(stops(&route), ["2.6.5", "2018.10.5", "2021.1.8018"]);
        assert!(route.reasons[0].starts_with("2.6.5: Octopus 2.x must be upgraded to 2.6.5"));
        assert!(
            route
                .notes
                .iter()
                .any(|n| n.contains("required stop 2.6.5 is not in the feed"))
        );
    }

    #[test]
    fn legacy_uses_the_known_2018_10_build_when_the_feed_lacks_the_line() {
        let route = UpgradePaths::builtin()
            .route(&v("2.6.5"), &v("2019.1.0"), &Feed::default(), &any)
            .unwrap();
        assert_eq!(stops(&route), ["2018.10.0"]);
        assert!(
            route.notes[0].contains("octoup uses the known build 2018.10.0"),
            "{:?}",
            route.notes
        );
    }

    #[test]
    fn issue_4979_stops() {
        let paths = UpgradePaths::builtin();
        let route = paths
            .route(&v("3.3.8"), &v("2018.5.4"), &Feed::default(), &any)
            .unwrap();
        assert_eq!(stops(&route), ["3.4.15", "3.17.14"]);
        let route = paths
            .route(&v("3.3.8"), &v("2018.5.5"), &Feed::default(), &any)
            .unwrap();
        assert!(
            route.stops.is_empty(),
            "2018.5.5 is outside the broken range"
        );
        let route = paths
            .route(&v("2.6.5"), &v("2018.8.3"), &Feed::default(), &any)
            .unwrap();
        assert_eq!(stops(&route), ["2018.7.14"]);
    }

    #[test]
    fn issue_9145_and_9141_stops_from_2018_3() {
        let feed = feed(&[
            ("2021.1.8018", "2021-07-01"),
            ("2024.2.9409", "2024-05-01"),
            ("2024.3.12701", "2024-09-09"),
        ]);
        let paths = UpgradePaths::builtin();
        let route = paths
            .route(&v("2018.3.5"), &v("2024.3.12701"), &feed, &any)
            .unwrap();
        assert_eq!(stops(&route), ["2021.1.8018"]);
        // Without the 9141 stop (excluded), 9145 applies: the newest build before 2024.3.
        let no_9141 = |v: &Version| {
            if v.to_string() == "2021.1.8018" {
                Err("excluded".into())
            } else {
                Ok(())
            }
        };
        let err = paths
            .route(&v("2018.3.5"), &v("2024.3.12701"), &feed, &no_9141)
            .unwrap_err();
        assert!(err.to_string().contains("2021.1.8018 is excluded"), "{err}");
        let mut only_9145 = paths.clone();
        only_9145.stop.retain(|r| r.id.starts_with("issue-9145"));
        let route = only_9145
            .route(&v("2018.3.5"), &v("2024.3.12701"), &feed, &any)
            .unwrap();
        assert_eq!(stops(&route), ["2024.2.9409"]);
    }

    #[test]
    fn issue_10126_stop_before_2025_4() {
        let feed = feed(&[
            ("2024.3.4000", "2024-07-01"),
            ("2024.3.12701", "2024-09-09"),
            ("2025.3.500", "2025-08-01"),
            ("2025.4.10700", "2025-11-01"),
        ]);
        let route = UpgradePaths::builtin()
            .route(&v("2024.2.9409"), &v("2025.4.10700"), &feed, &any)
            .unwrap();
        assert_eq!(stops(&route), ["2025.3.500"]);
        let route = UpgradePaths::builtin()
            .route(&v("2024.3.12701"), &v("2025.4.10700"), &feed, &any)
            .unwrap();
        assert!(route.stops.is_empty());
    }

    #[test]
    fn missing_newest_stop_without_fallback_is_an_error_naming_it() {
        let err = UpgradePaths::builtin()
            .route(
                &v("2024.2.9409"),
                &v("2025.4.10700"),
                &Feed::default(),
                &any,
            )
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("2024.3.4894 or newer and older than 2025.4.0"),
            "{text}"
        );
        assert!(
            text.contains("the feed lists none") && text.contains("#10126"),
            "{text}"
        );
    }

    #[test]
    fn issue_7790_is_a_broken_jump_but_later_patches_are_fine() {
        let paths = UpgradePaths::builtin();
        let from = v("2021.3.12950");
        for broken in [
            "2022.1.2735",
            "2022.1.3000",
            "2022.2.1",
            "2022.3.10000",
            "2023.1.500",
        ] {
            let err = paths
                .route(&from, &v(broken), &Feed::default(), &any)
                .unwrap_err();
            assert!(matches!(err, PathError::Broken(_)), "{broken}");
            assert!(
                err.to_string()
                    .contains("Unexpected upgrade history detected"),
                "{err}"
            );
        }
        for fine in ["2022.1.2734", "2022.1.3277", "2022.3.10780", "2023.2.1"] {
            assert!(
                paths.route(&from, &v(fine), &Feed::default(), &any).is_ok(),
                "{fine}"
            );
        }
        assert!(
            paths
                .route(&v("2021.3.12911"), &v("2022.2.1"), &Feed::default(), &any)
                .is_ok()
        );
    }

    #[test]
    fn stops_are_vetted_by_the_caller() {
        let feed = feed(&[("2018.10.0", "2018-10-20"), ("2018.10.5", "2019-03-01")]);
        let no_5 = |v: &Version| {
            if v.to_string() == "2018.10.5" {
                Err("listed in versions.exclude".into())
            } else {
                Ok(())
            }
        };
        let route = UpgradePaths::builtin()
            .route(&v("2.6.5"), &v("2019.1.0"), &feed, &no_5)
            .unwrap();
        assert_eq!(
            stops(&route),
            ["2018.10.0"],
            "falls back to the next newest allowed build"
        );
        let none = |_: &Version| Err("listed in versions.exclude".to_string());
        let err = UpgradePaths::builtin()
            .route(&v("2.6.5"), &v("2019.1.0"), &feed, &none)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("2018.10.5 is listed in versions.exclude; 2018.10.0 is listed"),
            "{err}"
        );
    }

    #[test]
    fn bad_data_is_rejected() {
        let both = "[[stop]]\nid='x'\nsource='s'\nwhy='w'\nfrom={}\nto={}\nvia=[{version='1.0.0', newest={}}]\n";
        assert!(
            UpgradePaths::from_toml(both)
                .unwrap_err()
                .to_string()
                .contains("exactly one")
        );
        assert!(
            UpgradePaths::from_toml(
                "[[stop]]\nid='x'\nsource='s'\nwhy='w'\nfrom={}\nto={}\nvia=[]\n"
            )
            .is_err()
        );
        assert!(
            UpgradePaths::from_toml("[[stopp]]")
                .unwrap_err()
                .to_string()
                .contains("stopp")
        );
    }

    #[test]
    fn runaway_data_is_caught() {
        // Rules that each demand the build just below: 1.0.10 needs 1.0.9, which needs 1.0.8, ...
        let data: String = (1..=10)
            .rev()
            .map(|k| {
                format!(
                    "[[stop]]\nid='r{k}'\nsource='s'\nwhy='w'\nfrom={{}}\nto={{min='1.0.{k}'}}\nvia=[{{version='1.0.{}'}}]\n",
                    k - 1
                )
            })
            .collect();
        let paths = UpgradePaths::from_toml(&data).unwrap();
        let err = paths
            .route(&v("1.0.0"), &v("1.0.10"), &Feed::default(), &any)
            .unwrap_err();
        assert!(err.to_string().contains("loops"), "{err}");
        let ok = paths
            .route(&v("1.0.5"), &v("1.0.8"), &Feed::default(), &any)
            .unwrap();
        assert_eq!(stops(&ok), ["1.0.6", "1.0.7"]);
    }

    #[test]
    fn a_target_inside_the_stop_range_needs_no_stop() {
        let feed = feed(&[("2018.10.0", "2018-10-20"), ("2018.10.5", "2019-03-01")]);
        let route = UpgradePaths::builtin()
            .route(&v("2.6.5"), &v("2018.10.5"), &feed, &any)
            .unwrap();
        assert!(route.stops.is_empty());
    }
}
