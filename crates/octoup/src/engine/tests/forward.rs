//! The upgrade that goes well.

use super::*;

/// Index of the first event that `is`.
fn first(history: &[Event], is: impl Fn(&Event) -> bool) -> usize {
    history.iter().position(is).expect("event in the history")
}

async fn happy(nodes: usize) {
    let ran = Scenario::nodes(nodes).run().await;
    ran.assert_upgraded();
    let h = ran.history();
    let upgrade = first(&h, |e| matches!(e, Event::SchemaUpgradeStarted { .. }));
    let names: Vec<String> = (1..=nodes).map(|i| format!("N{i}")).collect();
    for n in &names {
        let stop = first(&h, |e| stopped(e) == Some(n));
        let start = first(&h, |e| started(e) == Some(n));
        let install = first(&h, |e| installed(e) == Some(n));
        assert!(
            stop < install && install < upgrade && upgrade < start,
            "{n}: {h:#?}"
        );
    }
    ran.assert_once_each(stopped)
        .assert_once_each(started)
        .assert_once_each(installed);
    // I3 in the report too: the backups exist as files.
    let b = &ran.report().backups;
    assert!(b.database_verified);
    for file in [&b.database, &b.master_key, &b.license] {
        let file = file.as_deref().expect("backup recorded");
        assert!(std::path::Path::new(file).exists(), "{file}");
    }
    assert!(ran.report().outage_seconds >= 0.0);
    assert!(ran.journal().outage_ended.is_some());
}

#[tokio::test]
async fn one_node_upgrades_with_one_schema_upgrade_after_the_stop() {
    happy(1).await;
}

#[tokio::test]
async fn three_nodes_upgrade_with_one_schema_upgrade_on_the_primary_after_every_stop() {
    happy(3).await;
}

#[tokio::test]
async fn a_fresh_run_reads_each_installed_version_once_after_the_install_only() {
    // Every command between the first stop and the last start is on the outage's critical
    // path: a fresh run knows each node holds the original (its preflight read it), so it
    // reads the version back after the installer only, and not again on the primary
    // before the schema upgrade.
    let ran = Scenario::nodes(3).run().await;
    ran.assert_upgraded();
    for n in ["N1", "N2", "N3"] {
        assert_eq!(ran.fake().calls(Op::InstalledVersion, Some(n)), 1, "{n}");
        assert_eq!(ran.fake().calls(Op::Install, Some(n)), 1, "{n}");
    }
}

#[tokio::test]
async fn flags_that_were_on_stay_on_and_watchdogs_come_back() {
    let ran = Scenario::nodes(3)
        .with(|m| {
            m.maintenance = true;
            m.node_mut("N2").drained = true;
        })
        .watchdog("N1")
        .watchdog("N3")
        .run()
        .await;
    ran.assert_upgraded();
    ran.assert_steps(&["undrain@N2", "maintenance-restore"], StepState::Skipped)
        .assert_steps(
            &["delete-watchdog@N2", "create-watchdog@N2"],
            StepState::Skipped,
        )
        .assert_steps(
            &["create-watchdog@N1", "create-watchdog@N3"],
            StepState::Done,
        );
    let m = ran.model();
    assert!(m.maintenance && m.node("N2").drained);
}

#[tokio::test]
async fn canary_starts_the_primary_before_the_others() {
    let ran = Scenario::nodes(3)
        .config(|c| c.cluster.canary = true)
        .run()
        .await;
    ran.assert_upgraded();
    let starts: Vec<String> = ran
        .history()
        .iter()
        .filter_map(|e| started(e).cloned())
        .collect();
    assert_eq!(starts.first().map(String::as_str), Some("N1"), "{starts:?}");
}

#[tokio::test]
async fn a_drain_waits_for_tasks_and_cancels_them_at_the_deadline_when_configured() {
    let ran = Scenario::nodes(2)
        .task("N2")
        .config(|c| c.drain.cancel_tasks = true)
        .run()
        .await;
    ran.assert_upgraded();
    assert!(
        ran.history()
            .iter()
            .any(|e| matches!(e, Event::TaskCancelled { id } if id == "ServerTasks-1"))
    );
}

#[tokio::test]
async fn leave_on_keeps_maintenance_mode_and_says_so() {
    let ran = Scenario::nodes(1)
        .config(|c| c.maintenance.leave_on = true)
        .run()
        .await;
    ran.assert_outcome(Outcome::Upgraded)
        .assert_serving(TARGET)
        .assert_all_settled()
        .assert_invariants(false);
    assert!(ran.model().maintenance, "left on as configured");
    ran.assert_next("Maintenance mode was left on");
}

#[tokio::test]
async fn the_schema_upgrade_runs_on_the_configured_primary_even_when_it_is_not_first() {
    let ran = Scenario::nodes(3)
        .with(|m| {
            m.nodes[0].primary = false;
            m.nodes[2].primary = true;
        })
        .run()
        .await;
    ran.assert_upgraded();
    assert_eq!(ran.schema_upgrades(), ["N3"]);
    ran.assert_steps(&["upgrade-database@N3"], StepState::Done);
}
