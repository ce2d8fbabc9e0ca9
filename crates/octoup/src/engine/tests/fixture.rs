//! A journal written by octoup 0.1.0, paused at a failed database upgrade, still reads as a
//! [`Run`] and still resumes to `upgraded`.

use super::*;
use crate::installer::cache::Role;
use crate::progress::NoProgress;

const OLD: &str = include_str!("fixtures/paused-at-upgrade-database.v0.1.0.json");
const NODES: [&str; 2] = ["OCTO-NODE-01", "OCTO-NODE-02"];

#[test]
fn the_old_journal_deserialises() {
    let run: Run = serde_json::from_str(OLD).expect("a 0.1.0 journal reads as a Run");
    assert_eq!(run.status, RunStatus::Paused);
    assert_eq!(
        (run.from.to_string(), run.target.to_string()),
        (FROM.into(), "2024.3.13050".into())
    );
    assert_eq!(
        run.nodes
            .iter()
            .find(|n| n.primary)
            .map(|n| n.name.as_str()),
        Some(NODES[0])
    );
    let db = run.step("upgrade-database@OCTO-NODE-01").unwrap();
    assert_eq!(db.state, StepState::Failed);
    let backup = run
        .step("backup-database")
        .unwrap()
        .recorded_path()
        .unwrap();
    assert!(backup.ends_with("OctopusDeploy-2024.1.10-20261202T055608Z-10e2.bak"));
    let wd = run.step("delete-watchdog@OCTO-NODE-01").unwrap();
    assert_eq!(wd.watchdog_before(), None, "existed: false");
    assert_eq!(
        run.step("drain@OCTO-NODE-02").unwrap().was_on(),
        Some(false)
    );
}

#[tokio::test]
async fn the_old_journal_resumes_to_upgraded() {
    let mut run: Run = serde_json::from_str(OLD).unwrap();
    let ctx = Scenario::named(&NODES, FROM).into_ctx();
    // The world as the 0.1.0 run left it: what it did, done again here against the fake
    // (its history then begins before the run, for I6).
    let world = ctx.fake.world(&run.nodes);
    let target = run.target.clone();
    world.cluster.set_maintenance(true).await.unwrap();
    for (node, agent) in &world.nodes {
        world.cluster.set_drain(&node.id, true).await.unwrap();
        if node.primary {
            agent.master_key().await.unwrap();
        }
        agent.stop().await.unwrap();
    }
    let backup = world.database.backup(&run.from, "old", None).await.unwrap();
    world.database.verify(&backup).await.unwrap();
    let staged = world
        .installers
        .ensure(&target, Role::Target, &NoProgress)
        .await
        .unwrap();
    let original = world
        .installers
        .ensure(&run.from, Role::Rollback, &NoProgress)
        .await
        .unwrap();
    for (_, agent) in &world.nodes {
        agent
            .install(&staged.path, &target.to_string())
            .await
            .unwrap();
    }
    // Point its paths and addresses into this test's world (in memory, not the file).
    run.log = ctx.state.log_path(&run.id);
    for (node, fake) in run.nodes.iter_mut().zip(ctx.fake.model().nodes) {
        node.url = fake.url;
    }
    let path = |run: &mut Run, step: &str, to: &std::path::Path| {
        let s = run.step_mut(step).unwrap();
        s.outputs.insert("path".into(), serde_json::json!(to));
    };
    let crate::database::RollbackPoint::Backup { files, .. } = &backup else {
        panic!("a disk backup: {backup:?}");
    };
    path(&mut run, "backup-database", std::path::Path::new(&files[0]));
    path(&mut run, "stage-installer", &staged.path);
    path(&mut run, "stage-rollback-installer", &original.path);

    let ran = ctx.adopt(run).resume().await;
    ran.assert_upgraded();
    assert_eq!(ran.schema_upgrades(), vec![NODES[0].to_string()]);
    for n in NODES {
        assert_eq!(
            ran.count(n, installed),
            1,
            "{n}: installed once, by the old run"
        );
    }
}
