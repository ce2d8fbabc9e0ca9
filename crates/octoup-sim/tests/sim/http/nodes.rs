//! `/api/octopusservernodes`: the list, one node, drain and task cap, summary and ping.

use reqwest::Method;
use serde_json::{Value, json};

use super::{FAST, assert_error, error_message};
use crate::support::{Sim, is_octopus_timestamp, keys};

#[tokio::test]
async fn nodes_list_get_drain_summary_and_ping() {
    let sim = Sim::start(&format!("{FAST}nodes = 3\n")).await;

    let page = sim.get_json(0, "/api/octopusservernodes?take=2").await;
    assert_eq!(page["ItemType"], "OctopusServerNode");
    assert_eq!(page["TotalResults"], 3);
    assert_eq!(page["ItemsPerPage"], 2);
    assert_eq!(page["NumberOfPages"], 2);
    assert_eq!(page["LastPageNumber"], 1);
    assert_eq!(page["Items"].as_array().unwrap().len(), 2);
    assert_eq!(
        page["Links"]["Page.Next"],
        "/api/octopusservernodes?skip=2&take=2"
    );
    assert_eq!(
        page["Links"]["Page.All"],
        "/api/octopusservernodes?skip=0&take=2147483647"
    );
    let node = &page["Items"][0];
    assert_eq!(
        keys(node),
        [
            "Id",
            "IsInMaintenanceMode",
            "Links",
            "MaxConcurrentTasks",
            "Name"
        ]
    );
    assert_eq!(node["Id"], "OctopusServerNodes-OCTO-NODE-01");
    assert_eq!(
        node["Links"]["Self"],
        "/api/octopusservernodes/OctopusServerNodes-OCTO-NODE-01"
    );

    let all = sim.get_json(0, "/api/octopusservernodes").await;
    assert_eq!(
        (all["ItemsPerPage"].clone(), all["LastPageNumber"].clone()),
        (json!(30), json!(0))
    );
    assert!(all["Links"].get("Page.Next").is_none());
    let second = sim
        .get_json(0, "/api/octopusservernodes?skip=1&take=1")
        .await;
    assert_eq!(second["Items"][0]["Name"], "OCTO-NODE-02");

    let id = "OctopusServerNodes-OCTO-NODE-02";
    assert_eq!(
        sim.get_json(0, &format!("/api/octopusservernodes/{id}"))
            .await["Name"],
        "OCTO-NODE-02"
    );
    let details = sim
        .get_json(0, &format!("/api/octopusservernodes/{id}/details"))
        .await;
    assert_eq!(keys(&details), ["Id", "Links", "RunningTasks"]);
    assert_eq!(details["RunningTasks"], 0);
    let bare = sim.get_json(0, "/api/octopusservernodes/all").await;
    assert_eq!(bare.as_array().unwrap().len(), 3);
    let missing = sim
        .get(0, "/api/octopusservernodes/OctopusServerNodes-NOPE")
        .await;
    assert_eq!(missing.status(), 404);
    assert!(!error_message(&missing.json().await.unwrap()).is_empty());

    // Drain node 2 through node 1's API, as Octopus's own script does.
    let body = json!({"Id": id, "Name": "OCTO-NODE-02", "MaxConcurrentTasks": 3, "IsInMaintenanceMode": true});
    let response = sim
        .put(0, &format!("/api/octopusservernodes/{id}"), body)
        .await;
    assert_eq!(response.status(), 200);
    let node: Value = response.json().await.unwrap();
    assert_eq!(
        (
            node["IsInMaintenanceMode"].clone(),
            node["MaxConcurrentTasks"].clone()
        ),
        (json!(true), json!(3))
    );

    let ping = sim.anon(1, "/api/octopusservernodes/ping").await;
    assert_eq!(ping.status(), 418);
    let ping: Value = ping.json().await.unwrap();
    assert_eq!(
        keys(&ping),
        [
            "Id",
            "IsInMaintenanceMode",
            "IsOffline",
            "LastSeen",
            "Links",
            "MaxConcurrentTasks",
            "Name",
            "Version"
        ]
    );
    assert_eq!(ping["Id"], id);
    assert_eq!(ping["IsInMaintenanceMode"], true);
    assert_eq!(
        ping["Links"]["Node"],
        format!("/api/octopusservernodes/{id}")
    );
    let ping = sim.anon(0, "/api/octopusservernodes/ping").await;
    assert_eq!(ping.status(), 200);
    assert_eq!(ping.json::<Value>().await.unwrap()["Name"], "OCTO-NODE-01");

    let summary = sim.get_json(2, "/api/octopusservernodes/summary").await;
    assert_eq!(summary["Links"]["Self"], "/api/octopusservernodes/summary");
    let nodes = summary["Nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let two = &nodes[1];
    for key in [
        "Id",
        "Name",
        "MaxConcurrentTasks",
        "IsInMaintenanceMode",
        "LastSeen",
        "IsOffline",
        "RunningTaskCount",
        "Version",
        "Links",
    ] {
        assert!(two.get(key).is_some(), "summary node lacks {key}: {two}");
    }
    assert_eq!(two["IsInMaintenanceMode"], true);
    assert_eq!(two["MaxConcurrentTasks"], 3);
    assert_eq!(two["RunningTaskCount"], 0);
    assert_eq!(two["IsOffline"], false);
    assert_eq!(two["Version"], "2024.1.10");
    assert!(is_octopus_timestamp(&two["LastSeen"]), "{two}");
    assert_eq!(
        two["Links"]["Node"],
        format!("/api/octopusservernodes/{id}")
    );

    // Health: 200 while some node takes work, 418 once every node drains.
    assert_eq!(sim.anon(0, "/api/serverstatus/health").await.status(), 200);
    for other in ["OCTO-NODE-01", "OCTO-NODE-03"] {
        let path = format!("/api/octopusservernodes/OctopusServerNodes-{other}");
        assert_eq!(
            sim.put(0, &path, json!({"IsInMaintenanceMode": "true"}))
                .await
                .status(),
            200
        );
    }
    let health = sim.anon(0, "/api/serverstatus/health").await;
    assert_eq!(health.status(), 418);
    let health: Value = health.json().await.unwrap();
    assert_eq!(
        keys(&health),
        [
            "Description",
            "IsCompliantWithLicense",
            "IsEntireClusterDrainingTasks",
            "IsEntireClusterReadOnly",
            "IsOperatingNormally",
            "Links"
        ]
    );
    assert_eq!(health["IsEntireClusterDrainingTasks"], true);

    // The 400s.
    let path = format!("/api/octopusservernodes/{id}");
    let response = sim.call(Method::PUT, 0, &path, None).await;
    assert_error(response, 400, "No request body was supplied.").await;
    let response = sim
        .put(
            0,
            "/api/octopusservernodes",
            json!({"IsInMaintenanceMode": true}),
        )
        .await;
    assert_error(response, 400, "No id parameter was provided.").await;
    let response = sim.put(0, &path, json!({"MaxConcurrentTasks": -1})).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.json::<Value>().await.unwrap()["ErrorMessage"],
        "Model validation failed."
    );
    assert_eq!(
        sim.put(0, &path, json!({"IsInMaintenanceMode": false}))
            .await
            .status(),
        200
    );

    let drains: Vec<(String, bool)> = sim
        .history()
        .iter()
        .filter(|e| e["kind"] == "drain-set")
        .map(|e| {
            (
                e["node"].as_str().unwrap().to_string(),
                e["value"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        drains,
        [
            ("OCTO-NODE-02".to_string(), true),
            ("OCTO-NODE-01".to_string(), true),
            ("OCTO-NODE-03".to_string(), true),
            ("OCTO-NODE-02".to_string(), false)
        ]
    );
}
