//! The `Octopus.Server.exe` stand-in: real syntax, success paths, refusals and faults.

use octoup_sim::spec::{Spec, WorkloadSpec};
use octoup_sim::state::{ServiceState, TaskState};
use predicates::prelude::*;
use predicates::str::contains;

use crate::scene::{NEW, OLD, Scene, code, finish, spec};

const N1: &str = "OCTO-NODE-01";
const N2: &str = "OCTO-NODE-02";

fn with_task(duration: f64) -> Scene {
    Scene::new(Spec {
        workload: vec![WorkloadSpec {
            node: Some(N1.into()),
            duration,
            ..WorkloadSpec::default()
        }],
        ..spec(1)
    })
}

fn task_state(scene: &Scene) -> TaskState {
    scene.state().database.tasks[0].state
}

#[test]
fn drain_with_wait_zero_returns_at_once_and_undrain_clears_the_flag() {
    let scene = with_task(1_000_000.0);
    scene
        .exe(
            N1,
            &[
                "node",
                "--instance=OctopusServer",
                "--drain=true",
                "--wait=0",
            ],
        )
        .success()
        .stdout(contains("still running"));
    assert!(scene.state().nodes[0].drain);
    assert_eq!(task_state(&scene), TaskState::Executing);
    scene
        .exe(
            N1,
            &["node", "--instance", "OctopusServer", "--drain", "false"],
        )
        .success();
    assert!(!scene.state().nodes[0].drain);
    let drains: Vec<bool> = scene
        .history()
        .iter()
        .filter_map(|r| match &r.event {
            octoup_sim::history::Event::DrainSet { value, by, .. } => {
                assert_eq!(by, "cli");
                Some(*value)
            }
            _ => None,
        })
        .collect();
    assert_eq!(drains, [true, false]);
}

#[test]
fn drain_waits_for_running_tasks_or_cancels_them() {
    let scene = with_task(300.0);
    scene
        .exe(N1, &["node", "--drain=true", "--wait=100000"])
        .success()
        .stdout(contains("is drained"));
    assert_eq!(task_state(&scene), TaskState::Success);

    let scene = with_task(1_000_000.0);
    scene
        .exe(N1, &["node", "--drain=true", "--wait=50"])
        .success()
        .stdout(contains(
            "1 task(s) are still running after waiting 50 seconds",
        ));
    assert_eq!(task_state(&scene), TaskState::Executing);
    scene
        .exe(N1, &["node", "--drain=true", "--wait=0", "--cancel-tasks"])
        .success()
        .stdout(contains("Canceled 1 task(s)"));
    assert_eq!(task_state(&scene), TaskState::Canceled);
    assert!(scene.has("task-canceled"));
}

#[test]
fn node_options_are_validated_like_the_real_cli() {
    let scene = Scene::with_nodes(1);
    scene
        .exe(N1, &["node", "--wait=10"])
        .failure()
        .stderr(contains("can only be used with --drain=true"));
    scene
        .exe(N1, &["node", "--drain=false", "--cancel-tasks"])
        .failure()
        .stderr(contains("can only be used with --drain=true"));
    scene
        .exe(N1, &["node", "--drain=maybe"])
        .failure()
        .stderr(contains("Invalid value 'maybe' for --drain"));
    scene
        .exe(N1, &["node", "--drain=true", "--bogus"])
        .failure()
        .stderr(contains("Unrecognized command line arguments: --bogus"));
    scene
        .exe(N1, &["frobnicate"])
        .failure()
        .stderr(contains("Command 'frobnicate' is not supported"));
    scene
        .exe(N1, &["node", "--instance=Other", "--drain=true"])
        .failure()
        .stderr(contains(
            "Instance 'Other' of Octopus Server has not been configured",
        ));
    scene.exe(N1, &["node", "--taskCap=9"]).success();
    assert_eq!(scene.state().nodes[0].max_concurrent_tasks, 9);
    assert!(!scene.state().nodes[0].drain);
}

#[test]
fn service_stop_kills_running_tasks_and_start_brings_it_back() {
    let scene = with_task(1_000_000.0);
    scene.stop(N1);
    let state = scene.state();
    assert_eq!(state.nodes[0].service, ServiceState::Stopped);
    assert_eq!(state.database.tasks[0].state, TaskState::Failed);
    scene
        .exe(N1, &["service", "--stop"])
        .success()
        .stdout(contains("not running"));
    scene
        .exe(N1, &["service", "--instance=OctopusServer", "--start"])
        .success()
        .stdout(contains("Service started"));
    assert_eq!(scene.state().nodes[0].service, ServiceState::Running);
    let kinds = scene.kinds();
    let expected = [
        "service-stopping",
        "task-killed",
        "service-stopped",
        "service-starting",
        "service-started",
    ];
    let got: Vec<&str> = kinds
        .iter()
        .map(String::as_str)
        .filter(|k| expected.contains(k))
        .collect();
    assert_eq!(got, expected);
    scene
        .exe(N1, &["service"])
        .failure()
        .stderr(contains("Specify exactly one of --start, --stop"));
}

#[test]
fn start_refuses_a_binary_that_differs_from_the_schema_in_either_direction() {
    // Newer binary on the old schema: a database upgrade is required.
    let scene = Scene::with_nodes(1);
    scene.stop(N1);
    scene.update(|s| s.nodes[0].installed_version = Some(NEW.into()));
    scene
        .exe(N1, &["service", "--start"])
        .failure()
        .code(code(100))
        .stderr(contains("A database upgrade is required"));
    assert_eq!(scene.state().nodes[0].service, ServiceState::Stopped);
    assert!(scene.has("service-start-failed"));
    assert!(!scene.has("service-started"));

    // Older binary on a newer schema: downgrade protection.
    let scene = Scene::with_nodes(1);
    scene.stop(N1);
    scene.update(|s| s.database.schema_version = NEW.into());
    scene
        .exe(N1, &["service", "--start"])
        .failure()
        .code(code(100))
        .stderr(contains(format!(
            "The database schema ({NEW}) is newer than this version of Octopus Server ({OLD})"
        )));
}

#[test]
fn start_refuses_a_version_the_license_does_not_cover() {
    let scene = Scene::with_nodes(1);
    scene.stop(N1);
    scene.update(|s| {
        s.nodes[0].installed_version = Some("2025.1.5319".into());
        s.database.schema_version = "2025.1.5319".into();
    });
    scene
        .exe(N1, &["service", "--start"])
        .failure()
        .code(code(100))
        .stderr(contains("2025.1.5319 is not covered"));
}

#[test]
fn database_upgrade_moves_the_schema_to_the_installed_binary() {
    let scene = Scene::with_nodes(1);
    scene.stop(N1);
    scene
        .exe(N1, &["database", "--upgrade"])
        .success()
        .stdout(contains("already up to date"));
    scene.update(|s| s.nodes[0].installed_version = Some(NEW.into()));
    scene
        .exe(
            N1,
            &["database", "--instance", "OctopusServer", "--upgrade"],
        )
        .success()
        .stdout(contains(format!("upgraded successfully to {NEW}")));
    assert_eq!(scene.state().database.schema_version, NEW);
    assert!(scene.state().database.upgrade.is_none());
    scene.exe(N1, &["service", "--start"]).success();
    let kinds = scene.kinds();
    assert!(kinds.contains(&"db-upgrade-started".into()));
    assert!(kinds.contains(&"db-upgrade-finished".into()));
}

#[test]
fn database_upgrade_refuses_while_nodes_run_or_were_just_seen() {
    let scene = Scene::new(Spec {
        durations: octoup_sim::spec::Durations {
            node_stale_after: 400.0,
            ..Default::default()
        },
        ..spec(2)
    });
    scene.update(|s| {
        for n in &mut s.nodes {
            n.installed_version = Some(NEW.into());
        }
    });
    // This node's own service still runs.
    scene
        .exe(N1, &["database", "--upgrade"])
        .failure()
        .stderr(contains("(OCTO-NODE-01) is still running"));
    scene.stop(N1);
    // The other node runs.
    scene
        .exe(N1, &["database", "--upgrade"])
        .failure()
        .stderr(contains("still appear to be running: OCTO-NODE-02"));
    // The other node just stopped: still seen for node_stale_after (0.4 s real here).
    scene.stop(N2);
    scene
        .exe(N1, &["database", "--upgrade"])
        .failure()
        .stderr(contains("OCTO-NODE-02"));
    std::thread::sleep(std::time::Duration::from_millis(450));
    scene.exe(N1, &["database", "--upgrade"]).success();
    assert_eq!(scene.state().database.schema_version, NEW);
    let refused = scene
        .kinds()
        .iter()
        .filter(|k| *k == "db-upgrade-refused")
        .count();
    assert_eq!(refused, 3);
}

#[test]
fn database_upgrade_refuses_without_license_cover_unless_skipped_and_never_downgrades() {
    let scene = Scene::with_nodes(1);
    scene.stop(N1);
    scene.update(|s| s.nodes[0].installed_version = Some("2025.1.5319".into()));
    scene
        .exe(N1, &["database", "--upgrade"])
        .failure()
        .stderr(contains(
            "Your license does not cover Octopus Server 2025.1.5319",
        ))
        .stderr(contains("No changes were made to the database"));
    assert_eq!(scene.state().database.schema_version, OLD);
    scene
        .exe(N1, &["database", "--upgrade", "--skipLicenseCheck"])
        .success();
    assert_eq!(scene.state().database.schema_version, "2025.1.5319");

    scene.update(|s| s.nodes[0].installed_version = Some(OLD.into()));
    scene
        .exe(N1, &["database", "--upgrade"])
        .failure()
        .stderr(contains("Downgrading a database is not supported"));
}

#[test]
fn two_concurrent_database_upgrades_deadlock() {
    let scene = Scene::new(Spec {
        durations: octoup_sim::spec::Durations {
            db_upgrade: 1500.0,
            node_stale_after: 0.0,
            ..Default::default()
        },
        ..spec(2)
    });
    scene.stop(N1);
    scene.stop(N2);
    scene.update(|s| {
        for n in &mut s.nodes {
            n.installed_version = Some(NEW.into());
        }
    });
    let first = scene.spawn("exe", Some(N1), &["database", "--upgrade"]);
    scene.wait_for("the first upgrade to start", |s| {
        s.database.upgrade.is_some()
    });
    scene
        .exe(N2, &["database", "--upgrade"])
        .failure()
        .stderr(contains("deadlocked"));
    let (status, stdout, _) = finish(first);
    assert_eq!(status, 0, "{stdout}");
    assert_eq!(scene.state().database.schema_version, NEW);
    let kinds = scene.kinds();
    assert_eq!(
        kinds.iter().filter(|k| *k == "db-upgrade-started").count(),
        2
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "db-upgrade-failed").count(),
        1
    );
}

#[test]
fn information_commands_have_the_real_shapes() {
    let scene = Scene::with_nodes(1);
    let key = scene.state().secrets.master_key;
    scene
        .exe(N1, &["show-master-key", "--instance=OctopusServer"])
        .success()
        .stdout(format!("{key}\n"));
    assert!(scene.has("master-key-read"));

    let out = scene
        .exe(
            N1,
            &[
                "show-configuration",
                "--instance=OctopusServer",
                "--format=json",
            ],
        )
        .success();
    let config: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let conn = config["Octopus.Storage.ExternalDatabaseConnectionString"]
        .as_str()
        .unwrap();
    assert!(conn.contains("Initial Catalog=OctopusDeploy"), "{conn}");
    assert!(config["Octopus.Home"].is_string());
    scene
        .exe(N1, &["show-configuration", "--format=json-hierarchical"])
        .success()
        .stdout(contains("\"ExternalDatabaseConnectionString\""));
    scene
        .exe(N1, &["show-configuration"])
        .success()
        .stdout(contains("<set key=\"Octopus.Home\">"));

    scene
        .exe(N1, &["version"])
        .success()
        .stdout(format!("{OLD}\n"));
    let out = scene.exe(N1, &["version", "--format=json"]).success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["MajorMinorPatch"], OLD);

    let out = scene
        .exe(N1, &["list-instances", "--format=json"])
        .success();
    let list: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(list[0]["InstanceName"], "OctopusServer");
    assert!(list[0]["ConfigurationFilePath"].is_string());

    scene
        .exe(N1, &["database-upgrade-status"])
        .success()
        .stdout(contains("No upgrade scripts need to run"));
    scene.update(|s| s.nodes[0].installed_version = Some(NEW.into()));
    let out = scene
        .exe(N1, &["database-upgrade-status", "--format=json"])
        .success();
    let status: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(status["IsUpgradeRequired"], true);
    scene.update(|s| s.nodes[0].installed_version = Some("2023.2.9755".into()));
    scene
        .exe(N1, &["database-upgrade-status"])
        .failure()
        .stderr(contains("added in 2023.4.1149"));
}

#[test]
fn watchdog_create_and_delete() {
    let scene = Scene::with_nodes(1);
    scene
        .exe(
            N1,
            &["watchdog", "--create", "--interval=10", "--instances=*"],
        )
        .success();
    assert_eq!(
        scene.state().nodes[0]
            .watchdog
            .as_ref()
            .unwrap()
            .interval_minutes,
        10
    );
    scene.exe(N1, &["watchdog", "--delete"]).success();
    assert!(scene.state().nodes[0].watchdog.is_none());
    assert!(scene.has("watchdog-created") && scene.has("watchdog-deleted"));
    scene
        .exe(N1, &["watchdog"])
        .failure()
        .stderr(contains("Specify either --create or --delete"));
}

#[test]
fn faults_exit_delay_and_hang() {
    let scene = Scene::with_nodes(1);
    scene.fault("service-stop", "exit:5", Some(N1), 1);
    scene
        .exe(N1, &["service", "--stop"])
        .failure()
        .code(5)
        .stderr(contains("could not be stopped"));
    assert_eq!(scene.state().nodes[0].service, ServiceState::Running);
    assert!(scene.has("fault-fired"));
    // times = 1: the next stop works.
    scene.stop(N1);

    // A fault on another node does not fire here.
    let scene = Scene::with_nodes(2);
    scene.fault("version", "exit:3", Some("OCTO-NODE-02"), 0);
    scene.exe(N1, &["version"]).success();
    scene.exe(N2, &["version"]).code(3);
    scene.exe(N2, &["version"]).code(3);

    // delay:S adds simulated seconds (1 ms each here).
    scene.fault("show-master-key", "delay:400", None, 1);
    let start = std::time::Instant::now();
    scene.exe(N1, &["show-master-key"]).success();
    assert!(start.elapsed() >= std::time::Duration::from_millis(400));

    // hang blocks until killed.
    scene.fault("db-upgrade-status", "hang", None, 1);
    let mut child = scene.spawn("exe", Some(N1), &["database-upgrade-status"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "a hung stand-in must not exit"
    );
    child.kill().unwrap();
    let _ = child.wait();

    // A db-upgrade fault fails part way and rolls back.
    let scene = Scene::with_nodes(1);
    scene.stop(N1);
    scene.update(|s| s.nodes[0].installed_version = Some(NEW.into()));
    scene.fault("db-upgrade", "exit:1", None, 1);
    scene
        .exe(N1, &["database", "--upgrade"])
        .failure()
        .stderr(contains("rolled back").and(contains("Script")));
    assert_eq!(scene.state().database.schema_version, OLD);
    assert!(scene.state().database.upgrade.is_none());
    scene.exe(N1, &["database", "--upgrade"]).success();
}
