//! The maintenance window: a run that does not fit never begins, one whose window ends
//! before the point of no return is undone (a drain stops waiting), and one past that point
//! finishes and reports the overrun. Tokio's clock is paused: waits cost no wall time.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use super::super::record::Record;
use super::super::window::{WindowRecord, admit, outage_kinds, recorded};
use super::*;
use crate::window::Until;

/// A window that ends `secs` from now, estimated with the default figures (or `figure`
/// seconds for every step).
fn window(secs: i64, figure: Option<f64>) -> impl FnOnce(&mut Run) {
    move |run: &mut Run| {
        let ends_at = Timestamp::now() + SignedDuration::from_secs(secs);
        let seconds: BTreeMap<String, f64> =
            outage_kinds(crate::engine::catalogue::Layout::default())
                .map(|k| (k.name().to_string(), figure.unwrap_or(k.default_estimate())))
                .collect();
        let record = WindowRecord {
            source: "--until test".into(),
            ends_at,
            ends: ends_at.to_string(),
            zone: "UTC".into(),
            estimate_seconds: 0.0,
            figures: if figure.is_some() {
                "run test"
            } else {
                "defaults"
            }
            .into(),
            seconds,
            overrun_seconds: None,
        };
        let pre = run.step_mut("preflight").expect("preflight step");
        Record::Window(record).write(pre);
    }
}

#[test]
fn a_run_outside_its_time_is_refused_with_the_figures_it_used() {
    let config = Config::default();
    let at = |secs: i64| {
        Some(Until::At(
            Timestamp::now() + SignedDuration::from_secs(secs),
        ))
    };
    let (why, record) = admit(
        &config,
        at(600),
        1,
        &[],
        crate::engine::catalogue::Layout::default(),
        None,
        None,
    )
    .unwrap_err();
    assert!(
        why.contains("ends at") && why.contains("estimated at"),
        "{why}"
    );
    assert!(why.contains("(figures: defaults)"), "{why}");
    assert!(why.contains("nothing was changed"), "{why}");
    let record = record.expect("the figures go in the report");
    assert!(record.estimate_seconds > 600.0, "{record:?}");
    let (why, _) = admit(
        &config,
        at(-60),
        1,
        &[],
        crate::engine::catalogue::Layout::default(),
        None,
        None,
    )
    .unwrap_err();
    assert!(why.contains("ended at"), "{why}");
    let record = admit(
        &config,
        at(7200),
        1,
        &[],
        crate::engine::catalogue::Layout::default(),
        None,
        None,
    )
    .unwrap()
    .expect("a window");
    assert_eq!(record.source.split(' ').next(), Some("--until"));
    assert_eq!(record.figures, "defaults");
    assert!(
        admit(
            &config,
            None,
            1,
            &[],
            crate::engine::catalogue::Layout::default(),
            None,
            None
        )
        .unwrap()
        .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_that_does_not_fit_changes_nothing() {
    let ran = Scenario::nodes(2).run_edited(window(600, None)).await;
    ran.assert_outcome(Outcome::Refused);
    assert!(ran.report().refused);
    ran.assert_error("maintenance window")
        .assert_error("figures: defaults")
        .assert_error("nothing was changed");
    assert_eq!(ran.fake().calls(Op::Maintenance(true), None), 0);
    assert_eq!(ran.fake().calls(Op::Stage, None), 0, "not even a download");
    ran.assert_as_before();
}

#[tokio::test(start_paused = true)]
async fn the_drain_stops_waiting_when_the_rest_no_longer_fits_and_everything_is_undone() {
    let began = tokio::time::Instant::now();
    let ran = Scenario::nodes(3)
        .config(|c| c.drain.wait_seconds = 7200)
        .task("N2")
        .run_edited(window(3600, None))
        .await;
    let waited = began.elapsed().as_secs();
    ran.assert_undone()
        .assert_steps(&["drain@N2"], StepState::Failed)
        .assert_steps(&["stop@N1", "stop@N2", "stop@N3"], StepState::Planned)
        .assert_error("maintenance window")
        .assert_error("before the point of no return")
        .assert_error("undone")
        .assert_next("Everything was put back");
    // It waited while the rest could still fit (about an hour less the ~17 minutes the
    // default figures give the steps after the drain), not the drain's two hours.
    assert!((2000..3600).contains(&waited), "waited {waited} s");
    assert!(ran.report().window.is_some(), "the report names the window");
}

#[tokio::test(start_paused = true)]
async fn past_the_point_of_no_return_the_run_finishes_and_reports_the_overrun() {
    let ran = Scenario::nodes(2)
        .fault(Op::UpgradeDatabase, None, Fault::Slow)
        .run_edited(window(1800, None))
        .await;
    ran.assert_upgraded();
    let warnings = ran.report().warnings.join("\n");
    assert!(
        warnings.contains("after the point of no return") && warnings.contains("overran"),
        "{warnings}"
    );
    let w = ran.report().window.clone().expect("the report's window");
    assert!(w.overrun_seconds.is_some_and(|s| s >= 0.0), "{w:?}");
    let journaled = recorded(&ran.journal()).expect("journaled");
    assert!(journaled.overrun_seconds.is_some());
    assert!(
        ran.journal()
            .step("preflight")
            .unwrap()
            .warnings()
            .iter()
            .any(|w| w.contains("overran")),
        "status reads the warning from the journal"
    );
}

#[tokio::test(start_paused = true)]
async fn a_resumed_run_keeps_the_journaled_end() {
    let ran = Scenario::nodes(2)
        .fault(Op::Stop, Some("N1"), Fault::CrashAfter)
        .run_edited(window(3600, Some(1.0)))
        .await;
    assert!(ran.report.is_none(), "crashed");
    // By the time octoup runs again, the journaled end has passed.
    ran.edit_journal(|run| {
        let pre = run.step_mut("preflight").unwrap();
        let mut w = pre.window().unwrap();
        w.ends_at = Timestamp::now() - SignedDuration::from_secs(60);
        Record::Window(w).write(pre);
    });
    let ran = ran.resume().await;
    ran.assert_undone()
        .assert_error("ended at")
        .assert_error("before the point of no return");
}
