//! Table tests for the choice: each rule alone, the rules that interact, and the vendor
//! script's bug scenario.

use std::collections::BTreeMap;

use super::*;
use crate::choice::feed::parse_feed;
use crate::choice::policy::Allow;

fn v(s: &str) -> Version {
    s.parse().unwrap()
}

fn d(s: &str) -> Date {
    s.parse().unwrap()
}

/// A feed in exactly the given order, parsed from JSON like the real one.
fn feed(entries: &[(&str, &str)]) -> Feed {
    let items: Vec<String> = entries
        .iter()
        .map(|(ver, date)| format!(r#"{{"Version":"{ver}","Released":"{date}"}}"#))
        .collect();
    parse_feed(format!("[{}]", items.join(",")).as_bytes()).unwrap()
}

fn input(current: &str, entries: &[(&str, &str)], policy: Policy) -> CheckInput {
    CheckInput {
        current: v(current),
        current_released: None,
        feed: feed(entries),
        policy,
        license_max: None,
        now: d("2025-01-01"),
    }
}

/// version -> rule, for every rejected version.
fn rules(report: &CheckReport) -> BTreeMap<String, &'static str> {
    report
        .rejected
        .iter()
        .map(|r| (r.version.to_string(), r.rule))
        .collect()
}

fn reason<'a>(report: &'a CheckReport, version: &str) -> &'a str {
    &report
        .rejected
        .iter()
        .find(|r| r.version.to_string() == version)
        .unwrap()
        .reason
}

fn strings(versions: &[Version]) -> Vec<String> {
    versions.iter().map(ToString::to_string).collect()
}

/// Every version newer than the current one is in the path or rejected, exactly once.
fn assert_accounted_for(input: &CheckInput, report: &CheckReport) {
    let mut seen: Vec<Version> = report.path.clone();
    seen.extend(report.rejected.iter().map(|r| r.version.clone()));
    seen.sort();
    let newer: Vec<Version> = input
        .feed
        .newer_than(&input.current)
        .iter()
        .map(|r| r.version.clone())
        .collect();
    let in_feed: Vec<Version> = seen
        .iter()
        .filter(|v| input.feed.get(v).is_some())
        .cloned()
        .collect();
    assert_eq!(
        in_feed, newer,
        "every newer feed version is in the path or rejected"
    );
    let mut dedup = seen.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len(), "no version listed twice");
}

fn run(input: &CheckInput) -> CheckReport {
    let report = check(input);
    assert_accounted_for(input, &report);
    report
}

#[test]
fn default_policy_picks_the_newest_patch_of_the_newest_minor_in_the_same_major() {
    let input = input(
        "2024.1.10",
        &[
            ("2024.1.10", "2024-02-01"),
            ("2024.1.12", "2024-03-01"),
            ("2024.2.7", "2024-04-01"),
            ("2024.2.9", "2024-05-01"),
            ("2025.1.3", "2024-12-01"),
        ],
        Policy::default(),
    );
    let report = run(&input);
    assert_eq!(report.target, Some(v("2024.2.9")));
    assert_eq!(strings(&report.path), ["2024.2.9"]);
    assert_eq!(report.status, CheckStatus::UpgradeAvailable);
    assert_eq!(report.current_released, Some(d("2024-02-01")));
    assert_eq!(report.target_released, Some(d("2024-05-01")));
    assert_eq!(
        rules(&report),
        BTreeMap::from([
            ("2025.1.3".into(), "allow"),
            ("2024.2.7".into(), "newer-patch-eligible"),
            ("2024.1.12".into(), "newer-line-chosen"),
        ])
    );
    assert_eq!(
        reason(&report, "2024.2.7"),
        "a newer patch of 2024.2 is eligible: 2024.2.9"
    );
    assert_eq!(
        reason(&report, "2024.1.12"),
        "a newer release line is chosen: 2024.2 (target 2024.2.9)"
    );
    assert!(reason(&report, "2025.1.3").contains("allow = \"minor\" never crosses a major"));
    // Newest first.
    assert_eq!(
        strings(
            &report
                .rejected
                .iter()
                .map(|r| r.version.clone())
                .collect::<Vec<_>>()
        ),
        ["2025.1.3", "2024.2.7", "2024.1.12"]
    );
}

#[test]
fn vendor_script_bug_scenario_unsorted_feed_whose_last_entry_is_not_the_newest() {
    // The vendor sample takes `$versions[-1]`: here that is 2024.1.15, an old-line patch
    // released after the newer line's builds. Its "same major" filter never matches either.
    let entries = [
        ("2024.3.12701", "2024-09-09"),
        ("2024.1.10", "2024-02-01"),
        ("2024.2.9409", "2024-05-01"),
        ("2024.1.15", "2024-10-01"),
    ];
    let input = input("2024.1.10", &entries, Policy::default());
    assert_eq!(
        entries.last().unwrap().0,
        "2024.1.15",
        "the scenario's last element is an old line"
    );
    let report = run(&input);
    assert_eq!(report.target, Some(v("2024.3.12701")));
    assert_eq!(rules(&report)["2024.1.15"], "newer-line-chosen");
    assert_eq!(rules(&report)["2024.2.9409"], "newer-line-chosen");
}

#[test]
fn allow_patch_stays_on_the_line_and_allow_major_crosses() {
    let entries = [
        ("2024.1.10", "2024-02-01"),
        ("2024.1.12", "2024-03-01"),
        ("2024.2.9", "2024-05-01"),
        ("2025.1.3", "2024-12-01"),
    ];
    let patch = run(&input(
        "2024.1.10",
        &entries,
        Policy {
            allow: Allow::Patch,
            ..Policy::default()
        },
    ));
    assert_eq!(patch.target, Some(v("2024.1.12")));
    assert_eq!(rules(&patch)["2024.2.9"], "allow");
    assert!(reason(&patch, "2024.2.9").contains("allow = \"patch\" keeps to 2024.1"));
    let major = run(&input(
        "2024.1.10",
        &entries,
        Policy {
            allow: Allow::Major,
            ..Policy::default()
        },
    ));
    assert_eq!(major.target, Some(v("2025.1.3")));
}

#[test]
fn prereleases_only_when_asked() {
    let entries = [
        ("2024.1.10", "2024-02-01"),
        ("2024.2.9", "2024-05-01"),
        ("2024.3.0-rc.1", "2024-06-01"),
    ];
    let off = run(&input("2024.1.10", &entries, Policy::default()));
    assert_eq!(off.target, Some(v("2024.2.9")));
    assert_eq!(rules(&off)["2024.3.0-rc.1"], "prerelease");
    let on = run(&input(
        "2024.1.10",
        &entries,
        Policy {
            include_prereleases: true,
            ..Policy::default()
        },
    ));
    assert_eq!(on.target, Some(v("2024.3.0-rc.1")));
}

#[test]
fn exclude_falls_back_to_the_previous_patch() {
    let entries = [
        ("2024.1.10", "2024-02-01"),
        ("2024.2.7", "2024-04-01"),
        ("2024.2.9", "2024-05-01"),
    ];
    let report = run(&input(
        "2024.1.10",
        &entries,
        Policy {
            exclude: vec![v("2024.2.9")],
            ..Policy::default()
        },
    ));
    assert_eq!(report.target, Some(v("2024.2.7")));
    assert_eq!(reason(&report, "2024.2.9"), "listed in versions.exclude");
}

#[test]
fn pin_keeps_to_the_line() {
    let entries = [
        ("2024.1.10", "2024-02-01"),
        ("2024.2.9", "2024-05-01"),
        ("2024.3.5", "2024-08-01"),
    ];
    let report = run(&input(
        "2024.1.10",
        &entries,
        Policy {
            pin: Some("2024.2".parse().unwrap()),
            ..Policy::default()
        },
    ));
    assert_eq!(report.target, Some(v("2024.2.9")));
    assert_eq!(
        reason(&report, "2024.3.5"),
        "not on the pinned line 2024.2 (versions.pin)"
    );
}

#[test]
fn soak_time_picks_an_older_patch_or_line() {
    let entries = [
        ("2024.1.10", "2024-02-01"),
        ("2024.2.7", "2024-10-01"),
        ("2024.3.1", "2024-12-10"),
        ("2024.3.2", "2024-12-20"),
    ];
    let policy = Policy {
        min_age_days: 30,
        ..Policy::default()
    };
    let report = run(&input("2024.1.10", &entries, policy.clone()));
    // now = 2025-01-01: 2024.3.x are younger than 30 days, so the whole line waits.
    assert_eq!(report.target, Some(v("2024.2.7")));
    assert_eq!(rules(&report)["2024.3.1"], "min-age");
    assert_eq!(
        reason(&report, "2024.3.2"),
        "released 2024-12-20, less than versions.min_age_days = 30 days ago (eligible from 2025-01-19)"
    );
    // Days later 2024.3.1 qualifies but 2024.3.2 does not: the older patch is taken.
    let later = CheckInput {
        now: d("2025-01-10"),
        ..input("2024.1.10", &entries, policy)
    };
    let report = run(&later);
    assert_eq!(report.target, Some(v("2024.3.1")));
    assert_eq!(rules(&report)["2024.3.2"], "min-age");
}

#[test]
fn license_cap() {
    let entries = [
        ("2024.1.10", "2024-02-01"),
        ("2024.2.9", "2024-05-01"),
        ("2024.3.5", "2024-08-01"),
    ];
    let capped = CheckInput {
        license_max: Some(v("2024.2.9")),
        ..input("2024.1.10", &entries, Policy::default())
    };
    let report = run(&capped);
    assert_eq!(report.target, Some(v("2024.2.9")));
    assert_eq!(
        reason(&report, "2024.3.5"),
        "not covered by the license (maintenance covers up to 2024.2.9)"
    );
    let unknown = run(&input("2024.1.10", &entries, Policy::default()));
    assert_eq!(
        unknown.target,
        Some(v("2024.3.5")),
        "no cap without a server"
    );
}

#[test]
fn never_a_build_released_before_the_running_build_even_on_a_newer_line() {
    let entries = [
        ("2024.1.10", "2024-02-01"),
        ("2024.2.1", "2024-01-15"), // newer line, but released before the running build
        ("2024.2.5", "2024-03-10"),
        ("2024.3.0", "2024-01-20"),
    ];
    let report = run(&input("2024.1.10", &entries, Policy::default()));
    assert_eq!(report.target, Some(v("2024.2.5")));
    assert_eq!(
        reason(&report, "2024.3.0"),
        "released before the running build 2024.1.10 (2024-02-01): upgrading to it fails with 'Unexpected upgrade history detected' (Octopus issue 7790)"
    );
    assert_eq!(rules(&report)["2024.2.1"], "released-before-current");
}

#[test]
fn running_build_missing_from_the_feed() {
    // An older build of its line bounds its release date from below.
    let entries = [
        ("2024.1.9", "2024-01-20"),
        ("2024.2.1", "2024-01-15"),
        ("2024.2.5", "2024-03-10"),
    ];
    let report = run(&input("2024.1.10", &entries, Policy::default()));
    assert_eq!(report.target, Some(v("2024.2.5")));
    assert_eq!(report.current_released, None);
    assert!(
        reason(&report, "2024.2.1")
            .contains("not in the feed, but newer than 2024.1.9 released 2024-01-20")
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("taken as no earlier than 2024-01-20"))
    );
    // Nothing of its line in the feed: the rule is skipped, loudly.
    let report = run(&input("2024.1.10", &entries[1..], Policy::default()));
    assert_eq!(report.target, Some(v("2024.2.5")));
    assert!(
        report
            .rejected
            .iter()
            .all(|r| r.rule != "released-before-current")
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("cannot be applied"))
    );
    // A date given by the caller wins.
    let given = CheckInput {
        current_released: Some(d("2024-03-01")),
        ..input("2024.1.10", &entries, Policy::default())
    };
    assert_eq!(run(&given).current_released, Some(d("2024-03-01")));
}

#[test]
fn up_to_date_and_nothing_eligible() {
    let up = run(&input(
        "2024.2.9",
        &[("2024.2.7", "2024-04-01"), ("2024.2.9", "2024-05-01")],
        Policy::default(),
    ));
    assert_eq!(
        (up.target.clone(), up.path.len(), up.status),
        (None, 0, CheckStatus::UpToDate)
    );
    assert!(up.explanation.contains("up to date"));
    let held = run(&input(
        "2024.2.9",
        &[("2024.2.9", "2024-05-01"), ("2025.1.1", "2025-01-01")],
        Policy::default(),
    ));
    assert_eq!(
        (held.target.clone(), held.status),
        (None, CheckStatus::NoEligibleVersion)
    );
    assert!(
        held.explanation
            .starts_with("No upgrade: all 1 newer version(s) are rejected")
    );
    let stale = run(&input(
        "2025.1.1",
        &[("2024.2.9", "2024-05-01")],
        Policy::default(),
    ));
    assert!(stale.warnings.iter().any(|w| w.contains("outdated mirror")));
}

#[test]
fn issue_7790_broken_jump_needs_a_later_patch() {
    let broken_only = [
        ("2021.3.12950", "2022-06-01"),
        ("2022.1.2800", "2022-07-01"),
        ("2022.2.8000", "2022-08-01"),
        ("2022.3.10000", "2022-09-20"),
    ];
    let policy = Policy {
        allow: Allow::Major,
        ..Policy::default()
    };
    let report = run(&input("2021.3.12950", &broken_only, policy.clone()));
    assert_eq!(report.target, None);
    assert_eq!(report.status, CheckStatus::NoEligibleVersion);
    for r in &report.rejected {
        assert_eq!(r.rule, "broken-jump", "{}", r.version);
        assert!(r.reason.contains("Unexpected upgrade history detected"));
    }
    let mut with_fix = broken_only.to_vec();
    with_fix.push(("2022.3.10780", "2022-11-16"));
    let report = run(&input("2021.3.12950", &with_fix, policy));
    assert_eq!(report.target, Some(v("2022.3.10780")));
    assert_eq!(rules(&report)["2022.3.10000"], "broken-jump");
}

#[test]
fn legacy_path_is_part_of_the_answer() {
    let entries = [
        ("2018.10.0", "2018-10-20"),
        ("2018.10.5", "2019-03-01"),
        ("2021.1.8018", "2021-07-01"),
        ("2025.1.100", "2025-02-01"),
    ];
    let report = run(&CheckInput {
        now: d("2025-06-01"),
        ..input(
            "2.6.2.845",
            &entries,
            Policy {
                allow: Allow::Major,
                ..Policy::default()
            },
        )
    });
    assert_eq!(report.target, Some(v("2025.1.100")));
    assert_eq!(
        strings(&report.path),
        ["2.6.5", "2018.10.5", "2021.1.8018", "2025.1.100"]
    );
    assert_eq!(report.path_reasons.len(), 3);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("required stop 2.6.5 is not in the feed"))
    );
    // The stops are in the path, not in `rejected`; the other 2018.10 build is rejected.
    assert_eq!(
        rules(&report),
        BTreeMap::from([("2018.10.0".into(), "newer-patch-eligible")])
    );
    assert!(
        report
            .explanation
            .contains("through 2.6.5, then 2018.10.5, then 2021.1.8018 first")
    );
    // Under the default policy (minor) the 2.x server stays on 2.x.
    let minor = run(&input("2.6.2.845", &entries, Policy::default()));
    assert_eq!(minor.target, None);
}

#[test]
fn a_required_stop_must_itself_be_allowed() {
    let entries = [
        ("2024.2.9409", "2024-05-01"),
        ("2025.3.500", "2025-08-01"),
        ("2025.4.10700", "2025-11-01"),
    ];
    let policy = Policy {
        allow: Allow::Major,
        exclude: vec![v("2025.3.500")],
        ..Policy::default()
    };
    let report = run(&CheckInput {
        now: d("2026-01-01"),
        ..input("2024.2.9409", &entries, policy)
    });
    // 2025.4 needs a stop before it (issue 10126); the only one is excluded.
    assert_eq!(rules(&report)["2025.4.10700"], "upgrade-path");
    assert!(
        reason(&report, "2025.4.10700").contains("2025.3.500 is listed in versions.exclude"),
        "{}",
        reason(&report, "2025.4.10700")
    );
    assert_eq!(report.target, None);
    // A stop released before the running build is refused the same way.
    let entries = [
        ("2024.2.9409", "2025-09-01"),
        ("2025.3.500", "2025-08-01"),
        ("2025.4.10700", "2025-11-01"),
    ];
    let policy = Policy {
        allow: Allow::Major,
        ..Policy::default()
    };
    let report = run(&CheckInput {
        now: d("2026-01-01"),
        ..input("2024.2.9409", &entries, policy)
    });
    assert!(
        reason(&report, "2025.4.10700").contains("2025.3.500 is released before the running build")
    );
}

/// Test data: a broken jump inside the 2024 lines, so every rule can meet in one feed.
fn paths_with_broken_2024_3_early_builds() -> UpgradePaths {
    UpgradePaths::from_toml(
        r#"
[[broken]]
id = "test"
source = "test data"
reason = "this early 2024.3 build breaks upgrades from 2024.1"
from = { min = "2024.1.0", below = "2024.2.0" }
to = [{ min = "2024.3.0", below = "2024.3.200" }]
"#,
    )
    .unwrap()
}

#[test]
fn every_rule_at_once_pin_exclude_soak_license_broken_jump_prerelease_released_before() {
    let entries = [
        ("2024.4.310", "2024-11-20"),
        ("2024.1.10", "2024-02-01"),
        ("2024.2.5", "2024-01-20"),
        ("2024.3.100", "2024-06-01"),
        ("2024.4.0-rc.1", "2024-09-01"),
        ("2024.1.12", "2024-03-01"),
        ("2024.4.300", "2024-10-01"),
        ("2024.2.9", "2024-04-10"),
        ("2024.4.500", "2024-10-01"),
        ("2024.3.250", "2024-08-01"),
        ("2024.4.150", "2024-09-20"),
        ("2025.1.1", "2024-11-01"),
        ("2024.4.200", "2024-10-10"),
    ];
    let policy = Policy {
        min_age_days: 30,
        exclude: vec![v("2024.4.300")],
        ..Policy::default()
    };
    let base = CheckInput {
        license_max: Some(v("2024.4.400")),
        now: d("2024-12-01"),
        ..input("2024.1.10", &entries, policy.clone())
    };
    let paths = paths_with_broken_2024_3_early_builds();
    let report = check_with(&base, &paths);
    assert_accounted_for(&base, &report);
    assert_eq!(report.target, Some(v("2024.4.200")));
    assert_eq!(
        rules(&report),
        BTreeMap::from([
            ("2025.1.1".into(), "allow"),
            ("2024.4.500".into(), "license"),
            ("2024.4.310".into(), "min-age"),
            ("2024.4.300".into(), "excluded"),
            ("2024.4.150".into(), "newer-patch-eligible"),
            ("2024.4.0-rc.1".into(), "prerelease"),
            ("2024.3.250".into(), "newer-line-chosen"),
            ("2024.3.100".into(), "broken-jump"),
            ("2024.2.9".into(), "newer-line-chosen"),
            ("2024.2.5".into(), "released-before-current"),
            ("2024.1.12".into(), "newer-line-chosen"),
        ])
    );
    assert_eq!(
        reason(&report, "2024.3.100"),
        "this early 2024.3 build breaks upgrades from 2024.1"
    );

    // Pinned to 2024.3: the broken early build is skipped, the later patch wins.
    let pinned = CheckInput {
        policy: Policy {
            pin: Some("2024.3".parse().unwrap()),
            ..policy.clone()
        },
        ..base.clone()
    };
    let report = check_with(&pinned, &paths);
    assert_accounted_for(&pinned, &report);
    assert_eq!(report.target, Some(v("2024.3.250")));
    let r = rules(&report);
    assert_eq!(
        (
            r["2024.4.200"],
            r["2024.4.0-rc.1"],
            r["2024.3.100"],
            r["2024.2.5"]
        ),
        ("pin", "prerelease", "broken-jump", "pin")
    );

    // Exclude the pinned line's good build too: nothing is left, and each says why.
    let nothing = CheckInput {
        policy: Policy {
            pin: Some("2024.3".parse().unwrap()),
            exclude: vec![v("2024.3.250")],
            ..policy.clone()
        },
        ..base.clone()
    };
    let report = check_with(&nothing, &paths);
    assert_accounted_for(&nothing, &report);
    assert_eq!(report.target, None);
    assert_eq!(rules(&report)["2024.3.250"], "excluded");

    // A lower license cap moves the target to the previous eligible line.
    let capped = CheckInput {
        license_max: Some(v("2024.3.250")),
        ..base.clone()
    };
    let report = check_with(&capped, &paths);
    assert_accounted_for(&capped, &report);
    assert_eq!(report.target, Some(v("2024.3.250")));
    assert_eq!(rules(&report)["2024.4.200"], "license");

    // Pre-releases allowed and soak satisfied later: the rc is still an older patch.
    let later = CheckInput {
        now: d("2025-02-01"),
        policy: Policy {
            include_prereleases: true,
            ..policy
        },
        ..base
    };
    let report = check_with(&later, &paths);
    assert_accounted_for(&later, &report);
    assert_eq!(report.target, Some(v("2024.4.310")));
    assert_eq!(rules(&report)["2024.4.0-rc.1"], "newer-patch-eligible");
}

#[test]
fn json_has_the_design_shape() {
    let input = input(
        "2024.1.10",
        &[
            ("2024.1.10", "2024-02-01"),
            ("2024.2.7", "2024-04-01"),
            ("2025.1.3", "2024-12-01"),
        ],
        Policy::default(),
    );
    let json = serde_json::to_value(run(&input)).unwrap();
    assert_eq!(json["current"], "2024.1.10");
    assert_eq!(json["target"], "2024.2.7");
    assert_eq!(json["path"], serde_json::json!(["2024.2.7"]));
    assert_eq!(json["rejected"][0]["version"], "2025.1.3");
    assert!(
        json["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("major")
    );
    assert_eq!(json["status"], "upgrade-available");
    let none = serde_json::to_value(run(&CheckInput {
        current: v("2025.1.3"),
        ..input
    }))
    .unwrap();
    assert!(none["target"].is_null());
    assert_eq!(none["path"], serde_json::json!([]));
}
