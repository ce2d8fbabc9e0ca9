//! Faults on the API, ping and feed endpoints: `http:CODE`, `hang`, `delay:S`.

use std::time::{Duration, Instant};

use super::{error_message, two_nodes};
use crate::support::Sim;

#[tokio::test]
async fn api_and_feed_faults() {
    let sim = Sim::start(&two_nodes()).await;

    sim.fault("api", "http:503", Some("OCTO-NODE-01"), 1);
    // Anonymous endpoints ignore the catch-all `api` fault, and node 2 is not targeted.
    assert_eq!(sim.anon(0, "/api").await.status(), 200);
    assert_eq!(sim.get(1, "/api/serverstatus").await.status(), 200);
    let response = sim.get(0, "/api/serverstatus").await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers()["octopus-node"],
        "name=OCTO-NODE-01; version=2024.1.10"
    );
    assert!(!error_message(&response.json().await.unwrap()).is_empty());
    assert_eq!(sim.get(0, "/api/serverstatus").await.status(), 200);

    sim.fault("api:/api/octopusservernodes/summary", "http:500", None, 2);
    assert_eq!(sim.get(0, "/api/tasks").await.status(), 200);
    assert_eq!(
        sim.get(0, "/api/octopusservernodes/summary").await.status(),
        500
    );
    assert_eq!(
        sim.get(1, "/api/octopusservernodes/summary").await.status(),
        500
    );
    assert_eq!(
        sim.get(0, "/api/octopusservernodes/summary").await.status(),
        200
    );

    sim.fault("ping", "http:503", Some("OCTO-NODE-02"), 1);
    let ping = |i| {
        sim.client
            .get(sim.url(i, "/api/octopusservernodes/ping"))
            .send()
    };
    assert_eq!(ping(0).await.unwrap().status(), 200);
    assert_eq!(ping(1).await.unwrap().status(), 503);
    assert_eq!(ping(1).await.unwrap().status(), 200);

    sim.fault("api", "hang", None, 1);
    let error = sim
        .client
        .get(sim.url(0, "/api/tasks"))
        .header("X-Octopus-ApiKey", &sim.admin)
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");

    // 200 simulated seconds at 0.001 = 0.2 s.
    sim.fault("api", "delay:200", None, 1);
    let started = Instant::now();
    assert_eq!(sim.get(0, "/api/tasks").await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(200));

    sim.fault("feed", "http:503", None, 1);
    let feed = format!("{}/download/upgrade/v3", sim.feed);
    assert_eq!(sim.client.get(&feed).send().await.unwrap().status(), 503);
    assert_eq!(sim.client.get(&feed).send().await.unwrap().status(), 200);

    assert!(sim.state().faults.is_empty());
    let fired = sim
        .history_kinds()
        .iter()
        .filter(|k| *k == "fault-fired")
        .count();
    assert_eq!(fired, 7);
}
