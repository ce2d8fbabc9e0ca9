//! A feed entry dated after today: warned about, and never chosen by policy.

use super::*;
use crate::choice::feed::parse_feed;

fn input(entries: &str, now: &str) -> CheckInput {
    CheckInput {
        current: "2024.1.10".parse().unwrap(),
        current_released: None,
        feed: parse_feed(entries.as_bytes()).unwrap(),
        policy: Policy::default(),
        license_max: None,
        now: now.parse().unwrap(),
    }
}

const FEED: &str = r#"[
  {"Version": "2024.1.10", "Released": "2024-02-01"},
  {"Version": "2024.3.12701", "Released": "2024-09-09"},
  {"Version": "2024.9.1", "Released": "2099-01-01"}
]"#;

#[test]
fn a_future_dated_entry_is_skipped_with_a_reason_and_a_warning() {
    let report = check(&input(FEED, "2025-06-01"));
    assert_eq!(report.target, Some("2024.3.12701".parse().unwrap()));
    let future = report
        .rejected
        .iter()
        .find(|r| r.version.to_string() == "2024.9.1")
        .expect("rejected");
    assert_eq!(future.rule, "released-in-future");
    assert!(
        future
            .reason
            .contains("dated 2099-01-01, after today (2025-06-01 UTC)"),
        "{}",
        future.reason
    );
    let warning = report
        .warnings
        .iter()
        .find(|w| w.contains("2024.9.1"))
        .expect("a warning names the entry");
    assert!(warning.contains("2099-01-01"), "{warning}");
}

#[test]
fn the_entry_is_a_candidate_once_its_date_has_come() {
    let report = check(&input(FEED, "2099-01-01"));
    assert_eq!(report.target, Some("2024.9.1".parse().unwrap()));
    assert!(report.warnings.iter().all(|w| !w.contains("after today")));
}

#[test]
fn a_setting_that_rejects_it_anyway_comes_first() {
    let mut i = input(FEED, "2025-06-01");
    i.policy.exclude = vec!["2024.9.1".parse().unwrap()];
    let report = check(&i);
    let r = report
        .rejected
        .iter()
        .find(|r| r.version.to_string() == "2024.9.1")
        .unwrap();
    assert_eq!(r.rule, "excluded");
}
