//! Node listeners that vanish with the service (and with the directory), drains seen
//! over HTTP, and the watchdog bringing a node back.

use std::time::{Duration, Instant};

use octoup_sim::state::ServiceState;
use serde_json::json;

use super::{FAST, count, two_nodes};
use crate::support::{Sim, wait_until};

/// Whether a fresh connection to node `i` is refused.
async fn refused(sim: &Sim, i: usize) -> bool {
    match sim.client.get(sim.url(i, "/api")).send().await {
        Ok(_) => false,
        Err(e) => e.is_connect(),
    }
}

#[tokio::test]
async fn a_stopped_node_refuses_connections_and_answers_again_after_start() {
    let sim = Sim::start(&two_nodes()).await;
    // A kept-alive connection must die with the service, too.
    let keep_alive = reqwest::Client::new();
    assert_eq!(
        keep_alive
            .get(sim.url(1, "/api"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    sim.update(|s| s.set_service("OCTO-NODE-02", ServiceState::Stopping));
    wait_until(Duration::from_secs(3), || refused(&sim, 1)).await;
    assert!(keep_alive.get(sim.url(1, "/api")).send().await.is_err());
    assert_eq!(sim.anon(0, "/api").await.status(), 200);

    sim.update(|s| {
        s.set_service("OCTO-NODE-02", ServiceState::Stopped);
        // New binaries on the stopped node's host (what msiexec does).
        s.node_mut("OCTO-NODE-02").unwrap().installed_version = Some("2024.2.9409".into());
    });
    // Stopped for longer than node_stale_after (5 ms here): offline in the summary.
    wait_until(Duration::from_secs(3), || async {
        let summary = sim.get_json(0, "/api/octopusservernodes/summary").await;
        summary["Nodes"][1]["IsOffline"] == true
    })
    .await;
    // The summary keeps the version the node registered when it last ran.
    let summary = sim.get_json(0, "/api/octopusservernodes/summary").await;
    assert_eq!(summary["Nodes"][1]["Version"], "2024.1.10");

    sim.update(|s| s.set_service("OCTO-NODE-02", ServiceState::Starting));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        refused(&sim, 1).await,
        "a starting service does not answer yet"
    );
    sim.update(|s| s.set_service("OCTO-NODE-02", ServiceState::Running));
    wait_until(Duration::from_secs(3), || async { !refused(&sim, 1).await }).await;
    let response = sim.get(1, "/api/octopusservernodes/ping").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["octopus-node"],
        "name=OCTO-NODE-02; version=2024.2.9409"
    );
    let summary = sim.get_json(0, "/api/octopusservernodes/summary").await;
    assert_eq!(summary["Nodes"][1]["Version"], "2024.2.9409");
    assert_eq!(summary["Nodes"][1]["IsOffline"], false);
}

#[tokio::test]
async fn a_stopping_service_kills_its_running_tasks() {
    let spec = format!(
        "{}\n[[workload]]\nnode = \"OCTO-NODE-02\"\nduration = 1000000\n",
        two_nodes()
    );
    let sim = Sim::start(&spec).await;
    let id = sim.state().database.tasks[0].id.clone();
    sim.update(|s| s.set_service("OCTO-NODE-02", ServiceState::Stopping));
    wait_until(Duration::from_secs(3), || async {
        sim.get_json(0, &format!("/api/tasks/{id}")).await["State"] == "Failed"
    })
    .await;
    let task = sim.get_json(0, &format!("/api/tasks/{id}")).await;
    assert!(!task["ErrorMessage"].as_str().unwrap().is_empty());
    assert_eq!(task["IsCompleted"], true);
    assert!(sim.history_kinds().contains(&"task-killed".to_string()));
}

#[tokio::test]
async fn a_drain_waits_for_running_tasks_and_holds_back_queued_ones() {
    // 300 simulated seconds at 0.001: the task runs for 0.3 s of real time.
    let spec = format!("{FAST}\n[[workload]]\nduration = 300\n");
    let sim = Sim::start(&spec).await;
    let started = Instant::now();
    let path = "/api/octopusservernodes/OctopusServerNodes-OCTO-NODE-01";
    assert_eq!(
        sim.put(0, path, json!({"IsInMaintenanceMode": true}))
            .await
            .status(),
        200
    );
    sim.update(|s| {
        s.queue_task("Deploy", "Deploy after the drain", 1.0, None);
    });

    let summary = sim.get_json(0, "/api/octopusservernodes/summary").await;
    assert_eq!(summary["Nodes"][0]["RunningTaskCount"], 1);
    let running = sim
        .get_json(
            0,
            "/api/tasks?node=OctopusServerNodes-OCTO-NODE-01&states=Executing,Cancelling",
        )
        .await;
    assert_eq!(count(&running), 1);

    wait_until(Duration::from_secs(5), || async {
        sim.get_json(0, "/api/octopusservernodes/summary").await["Nodes"][0]["RunningTaskCount"]
            == 0
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "the drain ended before the task could"
    );
    let queued = sim.get_json(0, "/api/tasks?states=Queued").await;
    assert_eq!(count(&queued), 1, "a draining node takes no new task");

    assert_eq!(
        sim.put(0, path, json!({"IsInMaintenanceMode": false}))
            .await
            .status(),
        200
    );
    wait_until(Duration::from_secs(5), || async {
        count(&sim.get_json(0, "/api/tasks?states=Queued").await) == 0
    })
    .await;
}

#[tokio::test]
async fn the_daemon_exits_when_its_directory_disappears() {
    let sim = Sim::start(FAST).await;
    std::fs::remove_dir_all(sim.dir()).unwrap();
    // About a second of ticks without a state file, then the listeners close.
    let feed = format!("{}/download/upgrade/v3", sim.feed);
    wait_until(Duration::from_secs(5), || async {
        sim.client.get(&feed).send().await.is_err() && refused(&sim, 0).await
    })
    .await;
}

#[tokio::test]
async fn the_watchdog_restarts_a_stopped_service_unless_deleted() {
    let sim = Sim::start(&two_nodes()).await;
    // Node 2 has a watchdog (1-minute interval); node 1 has none.
    sim.update(|s| {
        s.node_mut("OCTO-NODE-02").unwrap().watchdog = Some(octoup_sim::state::Watchdog {
            interval_minutes: 1,
            instances: "*".into(),
        });
        s.set_service("OCTO-NODE-01", ServiceState::Stopped);
        s.set_service("OCTO-NODE-02", ServiceState::Stopped);
    });
    wait_until(Duration::from_secs(3), || refused(&sim, 1)).await;
    // One simulated minute later the watchdog's checkservices has started node 2 again.
    wait_until(Duration::from_secs(5), || async { !refused(&sim, 1).await }).await;
    assert!(
        sim.history_kinds().iter().any(|k| k == "service-started"),
        "the restart is recorded"
    );
    assert!(
        refused(&sim, 0).await,
        "without a watchdog node 1 stays down"
    );
}
