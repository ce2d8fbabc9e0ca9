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

/// The hostile answers: `html`, `wrong-shape`, `truncate`, `huge:BYTES`, `drip:MS`,
/// `redirect:URL`, on the API (any path, also anonymous ones named exactly), ping and feed.
#[tokio::test]
async fn hostile_answers() {
    let sim = Sim::start(&two_nodes()).await;
    let content_type = |r: &reqwest::Response| {
        r.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string()
    };

    sim.fault("api:/api", "html", None, 1);
    let r = sim.anon(0, "/api").await;
    assert_eq!(r.status(), 200);
    assert!(content_type(&r).starts_with("text/html"), "{r:?}");
    assert!(r.text().await.unwrap().contains("<form"));
    assert_eq!(sim.anon(0, "/api").await.status(), 200, "cleared");

    sim.fault("api", "wrong-shape", None, 1);
    let body: serde_json::Value = sim.get(0, "/api/tasks").await.json().await.unwrap();
    assert!(body.is_array(), "{body}");

    sim.fault("ping", "truncate", None, 1);
    let text = sim
        .client
        .get(sim.url(1, "/api/octopusservernodes/ping"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        serde_json::from_str::<serde_json::Value>(&text).is_err(),
        "{text}"
    );
    assert!(text.starts_with("{\"Application\""), "{text}");

    sim.fault("api", "huge:1000000", None, 1);
    let r = sim.get(0, "/api/tasks").await;
    assert!(r.content_length().is_none(), "streamed");
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), 1_000_000);
    serde_json::from_slice::<serde_json::Value>(&body).expect("valid JSON, only big");

    sim.fault("feed", "drip:100", None, 1);
    let feed = format!("{}/download/upgrade/v3", sim.feed);
    let started = Instant::now();
    let r = sim.client.get(&feed).send().await.unwrap();
    assert_eq!(r.status(), 200, "the status comes at once");
    let mut r = r;
    r.chunk().await.unwrap().expect("a first byte");
    let error = tokio::time::timeout(Duration::from_millis(350), r.bytes()).await;
    assert!(error.is_err(), "the body drips on past the deadline");
    assert!(started.elapsed() >= Duration::from_millis(350));

    sim.fault("api", "redirect:http://127.0.0.2:9/login", None, 1);
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_follow
        .get(sim.url(0, "/api/serverstatus"))
        .header("X-Octopus-ApiKey", &sim.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "http://127.0.0.2:9/login");

    assert!(sim.state().faults.is_empty());
}
