//! The HTTP side of the simulator against reference/octopus-api.md: shapes, status codes,
//! authentication, node listeners that vanish with the service, the feed and downloads,
//! and every HTTP fault.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use octoup_sim::state::{ServiceState, TaskState};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{Sim, is_octopus_timestamp, keys, wait_until};

const MSG_NOT_LOGGED_IN: &str =
    "You must be logged in to perform this action. Please provide a valid API key or log in again.";
const MSG_FORBIDDEN: &str = "You do not have permission to perform this action. Please contact your Octopus administrator. Missing permission: AdministerSystem";

const FAST: &str = "time_scale = 0.001\n";

fn two_nodes() -> String {
    format!("{FAST}nodes = 2\n")
}

/// Asserts an Octopus error response: the status and `{"ErrorMessage": message, "Errors": []}`.
async fn assert_error(response: reqwest::Response, status: u16, message: &str) {
    assert_eq!(response.status(), status, "{}", response.url());
    assert_eq!(error_message(&response.json().await.unwrap()), message);
}

fn error_message(body: &Value) -> &str {
    assert_eq!(body["Errors"], json!([]), "{body}");
    body["ErrorMessage"].as_str().unwrap()
}

#[tokio::test]
async fn root_document_is_anonymous_and_every_response_names_its_node() {
    let sim = Sim::start(&two_nodes()).await;
    for (i, name) in ["OCTO-NODE-01", "OCTO-NODE-02"].iter().enumerate() {
        let response = sim.anon(i, "/api").await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["octopus-node"],
            format!("name={name}; version=2024.1.10").as_str()
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/json; charset=utf-8"
        );
        let root: Value = response.json().await.unwrap();
        assert_eq!(
            keys(&root),
            [
                "ApiVersion",
                "Application",
                "HasLongTermSupport",
                "InstallationId",
                "Links",
                "Version"
            ]
        );
        assert_eq!(root["Application"], "Octopus Deploy");
        assert_eq!(root["Version"], "2024.1.10");
        assert_eq!(root["ApiVersion"], "3.0.0");
        assert_eq!(root["HasLongTermSupport"], true);
        assert_eq!(root["InstallationId"].as_str().unwrap().len(), 36);
        assert_eq!(root["Links"]["Self"], "/api");
        assert_eq!(
            root["Links"]["OctopusServerClusterSummary"],
            "/api/octopusservernodes/summary"
        );
        assert_eq!(
            root["Links"]["MaintenanceConfiguration"],
            "/api/maintenanceconfiguration"
        );
    }
    // Errors carry the header too.
    let response = sim.anon(0, "/api/tasks").await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["octopus-node"],
        "name=OCTO-NODE-01; version=2024.1.10"
    );
}

#[tokio::test]
async fn api_keys_are_checked_and_admin_actions_need_administer_system() {
    let sim = Sim::start(FAST).await;
    let get = |key: Option<&str>, path: &str| {
        let mut request = sim.client.get(sim.url(0, path));
        if let Some(key) = key {
            request = request.header("X-Octopus-ApiKey", key);
        }
        request.send()
    };

    let response = get(None, "/api/serverstatus").await.unwrap();
    assert_error(response, 401, MSG_NOT_LOGGED_IN).await;

    let response = get(Some("API-AAAAAAAAAAAAAAAAAAAAAAAAAA"), "/api/serverstatus")
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert!(
        error_message(&body).starts_with("The API key you provided was not valid."),
        "{body}"
    );

    assert_eq!(
        get(Some(&sim.readonly), "/api/serverstatus")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get(Some(&sim.admin), "/api/octopusservernodes")
            .await
            .unwrap()
            .status(),
        200
    );
    for query in ["apikey", "ApiKey"] {
        let url = format!("{}?{query}={}", sim.url(0, "/api/tasks"), sim.admin);
        assert_eq!(
            sim.client.get(url).send().await.unwrap().status(),
            200,
            "{query}"
        );
    }

    // The read-only key may look but not change anything.
    let forbidden = [
        (
            Method::PUT,
            "/api/maintenanceconfiguration",
            json!({"IsInMaintenanceMode": true}),
        ),
        (
            Method::PUT,
            "/api/octopusservernodes/OctopusServerNodes-OCTO-NODE-01",
            json!({"IsInMaintenanceMode": true}),
        ),
        (
            Method::POST,
            "/api/tasks/ServerTasks-1001/cancel",
            json!({}),
        ),
        (Method::GET, "/api/serverstatus/system-info", Value::Null),
    ];
    for (method, path, body) in forbidden {
        let mut request = sim
            .client
            .request(method.clone(), sim.url(0, path))
            .header("X-Octopus-ApiKey", &sim.readonly);
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert_error(response, 403, MSG_FORBIDDEN).await;
    }
    let state = sim.state();
    assert!(!state.database.maintenance.is_in_maintenance_mode);
    assert!(!state.nodes[0].drain);
    assert_eq!(
        sim.get(0, "/api/serverstatus/system-info").await.status(),
        200
    );

    // Anonymous endpoints.
    for path in [
        "/api",
        "/api/octopusservernodes/ping",
        "/api/serverstatus/health",
    ] {
        assert_eq!(get(None, path).await.unwrap().status(), 200, "{path}");
    }
}

#[tokio::test]
async fn maintenance_mode_accepts_bool_and_string_and_is_recorded() {
    let sim = Sim::start(FAST).await;
    let config = sim.get_json(0, "/api/maintenanceconfiguration").await;
    assert_eq!(config["Id"], "maintenance");
    assert_eq!(config["IsInMaintenanceMode"], false);
    assert_eq!(config["Links"]["Self"], "/api/maintenanceconfiguration");
    assert!(
        config.get("LastModifiedOn").is_none(),
        "null base fields are left out"
    );

    let response = sim
        .put(
            0,
            "/api/maintenanceconfiguration",
            json!({"IsInMaintenanceMode": true}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let config: Value = response.json().await.unwrap();
    assert_eq!(config["IsInMaintenanceMode"], true);
    assert!(is_octopus_timestamp(&config["LastModifiedOn"]), "{config}");
    assert_eq!(
        sim.get_json(0, "/api/serverstatus").await["IsInMaintenanceMode"],
        true
    );

    let health = sim.anon(0, "/api/serverstatus/health").await;
    assert_eq!(health.status(), 418);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["IsEntireClusterReadOnly"], true);
    assert_eq!(health["IsOperatingNormally"], false);

    let response = sim
        .put(
            0,
            "/api/maintenanceconfiguration",
            json!({"IsInMaintenanceMode": "false"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        sim.get_json(0, "/api/maintenanceconfiguration").await["IsInMaintenanceMode"],
        false
    );

    let response = sim
        .client
        .put(sim.url(0, "/api/maintenanceconfiguration"))
        .header("X-Octopus-ApiKey", &sim.admin)
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "No request body was supplied.").await;
    let response = sim.put(0, "/api/maintenanceconfiguration", json!({})).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["ErrorMessage"], "Model validation failed.");
    assert_eq!(
        body["Errors"][0],
        "The IsInMaintenanceMode field is required."
    );

    let history = sim.history();
    let sets: Vec<(bool, &str)> = history
        .iter()
        .filter(|e| e["kind"] == "maintenance-set")
        .map(|e| (e["value"].as_bool().unwrap(), e["by"].as_str().unwrap()))
        .collect();
    assert_eq!(
        sets,
        [(true, "api:OCTO-NODE-01"), (false, "api:OCTO-NODE-01")]
    );
    let statuses: Vec<u64> = history
        .iter()
        .filter(|e| e["kind"] == "api-request" && e["path"] == "/api/maintenanceconfiguration")
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 200, 400, 400]);
}

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

const TASK_FIELDS: &[&str] = &[
    "Id",
    "SpaceId",
    "Name",
    "Description",
    "Arguments",
    "State",
    "Completed",
    "QueueTime",
    "QueueTimeExpiry",
    "StartTime",
    "LastUpdatedTime",
    "CompletedTime",
    "ServerNode",
    "Duration",
    "ErrorMessage",
    "HasBeenPickedUpByProcessor",
    "IsCompleted",
    "FinishedSuccessfully",
    "HasPendingInterruptions",
    "CanRerun",
    "HasWarningsOrErrors",
    "ProjectId",
    "Links",
];

fn count(page: &Value) -> u64 {
    page["TotalResults"].as_u64().unwrap()
}

#[tokio::test]
async fn tasks_filter_count_and_cancel() {
    let spec = format!(
        "{}{}",
        two_nodes(),
        r#"
[[workload]]
node = "OCTO-NODE-01"
duration = 1000000
[[workload]]
node = "OCTO-NODE-02"
duration = 1000000
[[workload]]
node = "OCTO-NODE-01"
duration = 1
"#
    );
    let sim = Sim::start(&spec).await;
    // A task that cannot start: its node drains.
    sim.update(|s| {
        s.set_drain("OCTO-NODE-02", true, "test");
        s.queue_task("Health", "Check health", 5.0, Some("OCTO-NODE-02".into()));
    });
    wait_until(Duration::from_secs(5), || async {
        sim.state()
            .database
            .tasks
            .iter()
            .any(|t| t.state == TaskState::Success)
    })
    .await;

    let page = sim.get_json(0, "/api/tasks").await;
    assert_eq!(page["ItemType"], "Task");
    assert_eq!(count(&page), 4);
    assert_eq!(page["LastPageNumber"], 0);
    assert_eq!(
        page["TotalCounts"],
        json!({"Queued": 1, "Executing": 2, "Cancelling": 0, "Success": 1, "Failed": 0, "Canceled": 0, "TimedOut": 0})
    );
    let items = page["Items"].as_array().unwrap();
    for item in items {
        for field in TASK_FIELDS {
            assert!(item.get(*field).is_some(), "task lacks {field}: {item}");
        }
        assert!(is_octopus_timestamp(&item["QueueTime"]), "{item}");
    }
    let by_state = |state: &str| items.iter().find(|t| t["State"] == state).unwrap().clone();
    let queued = by_state("Queued");
    assert_eq!(queued["Completed"], "Queued...");
    assert_eq!(queued["ServerNode"], Value::Null);
    assert_eq!(queued["StartTime"], Value::Null);
    assert_eq!(queued["HasBeenPickedUpByProcessor"], false);
    let done = by_state("Success");
    assert_eq!(
        (
            done["IsCompleted"].clone(),
            done["FinishedSuccessfully"].clone()
        ),
        (json!(true), json!(true))
    );
    assert!(is_octopus_timestamp(&done["CompletedTime"]));
    assert!(
        done["Completed"].as_str().unwrap().ends_with("+00:00"),
        "{done}"
    );
    let executing = items
        .iter()
        .find(|t| t["State"] == "Executing" && t["ServerNode"] == "OctopusServerNodes-OCTO-NODE-02")
        .unwrap()
        .clone();
    assert_eq!(executing["Completed"], "Executing...");
    assert_eq!(executing["IsCompleted"], false);
    assert_eq!(executing["CompletedTime"], Value::Null);
    assert!(is_octopus_timestamp(&executing["StartTime"]));
    assert_eq!(
        executing["Arguments"]["DeploymentId"]
            .as_str()
            .unwrap()
            .split('-')
            .next(),
        Some("Deployments")
    );

    for (query, expected) in [
        ("states=Executing,Cancelling", 2),
        ("states=Queued&states=Executing", 3),
        ("states=Success", 1),
        ("active=true", 3),
        ("running=true", 2),
        ("node=OctopusServerNodes-OCTO-NODE-01", 2),
        ("node=OCTO-NODE-01", 2),
        (
            "node=OctopusServerNodes-OCTO-NODE-01&states=Executing,Cancelling",
            1,
        ),
        ("name=Health", 1),
    ] {
        let page = sim.get_json(0, &format!("/api/tasks?{query}")).await;
        assert_eq!(count(&page), expected, "{query}");
        assert_eq!(page["TotalCounts"].as_object().unwrap().len(), 7, "{query}");
    }
    let first = sim.get_json(0, "/api/tasks?take=1").await;
    assert_eq!(
        (
            first["NumberOfPages"].clone(),
            first["LastPageNumber"].clone()
        ),
        (json!(4), json!(3))
    );
    assert_eq!(first["Items"].as_array().unwrap().len(), 1);
    assert_eq!(
        sim.get_json(0, "/api/Spaces-1/tasks").await["TotalResults"],
        3
    );
    let bad = sim.get(0, "/api/tasks?states=Bogus").await;
    assert_eq!(bad.status(), 400);

    // Cancel: Executing → Cancelling (the answer) → Canceled shortly after.
    let id = executing["Id"].as_str().unwrap().to_string();
    assert_eq!(
        sim.get_json(1, &format!("/api/tasks/{id}")).await["Id"],
        id.as_str()
    );
    let response = sim
        .call(Method::POST, 0, &format!("/api/tasks/{id}/cancel"), None)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap()["State"],
        "Cancelling"
    );
    wait_until(Duration::from_secs(5), || async {
        sim.get_json(0, &format!("/api/tasks/{id}")).await["State"] == "Canceled"
    })
    .await;
    assert!(sim.history_kinds().contains(&"task-canceled".to_string()));
    assert_eq!(
        sim.get(0, "/api/tasks/ServerTasks-999999").await.status(),
        404
    );
}

#[tokio::test]
async fn server_status_and_licenses() {
    let sim = Sim::start(FAST).await;
    let status = sim.get_json(0, "/api/serverstatus").await;
    for key in [
        "IsDatabaseEncrypted",
        "IsMajorMinorUpgrade",
        "IsInMaintenanceMode",
        "IsUpgradeAvailable",
        "MaximumAvailableVersion",
        "MaximumAvailableVersionCoveredByLicense",
        "MaintenanceExpires",
        "Links",
    ] {
        assert!(status.get(key).is_some(), "serverstatus lacks {key}");
    }
    assert_eq!(status["MaximumAvailableVersion"], "2025.1.5501");
    assert_eq!(
        status["MaximumAvailableVersionCoveredByLicense"],
        "2024.4.9999"
    );
    assert_eq!(status["MaintenanceExpires"], "2025-03-31");
    assert_eq!(status["IsUpgradeAvailable"], true);
    assert_eq!(status["IsInMaintenanceMode"], false);

    let license = sim.get_json(0, "/api/licenses/licenses-current").await;
    assert_eq!(
        keys(&license),
        ["Id", "LicenseText", "Links", "SerialNumber"]
    );
    assert!(
        license["LicenseText"]
            .as_str()
            .unwrap()
            .contains("<MaintenanceExpires>2025-03-31</MaintenanceExpires>")
    );
    assert!(sim.history_kinds().contains(&"license-read".to_string()));

    let status = sim
        .get_json(0, "/api/licenses/licenses-current-status")
        .await;
    assert_eq!(status["IsCompliant"], true);
    assert_eq!(status["EffectiveExpiryDate"], "2025-03-31");
    assert!(status["DaysToEffectiveExpiryDate"].is_i64());
    assert_eq!(status["HostingEnvironment"], "SelfHosted");
    let message = &status["Messages"][0];
    assert_eq!(keys(message), ["Disposition", "Message"]);
    assert!(
        status["Limits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["Name"] == "Nodes")
    );
}

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
async fn the_feed_is_served_in_its_unsorted_order() {
    let spec = format!(
        "{FAST}[feed]\nversions = [{{ Version = \"2024.2.9409\", Released = \"2024-06-10\" }}, {{ Version = \"2024.1.10\", Released = \"2024-03-11\" }}, {{ Version = \"2024.2.100\", Released = \"2024-05-01\" }}]\n"
    );
    let sim = Sim::start(&spec).await;
    let response = sim
        .client
        .get(format!("{}/download/upgrade/v3", sim.feed))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let feed: Value = response.json().await.unwrap();
    assert_eq!(
        feed,
        json!([
            {"Version": "2024.2.9409", "Released": "2024-06-10"},
            {"Version": "2024.1.10", "Released": "2024-03-11"},
            {"Version": "2024.2.100", "Released": "2024-05-01"}
        ])
    );
}

const SIZE: u64 = 300_000;

fn download_spec() -> String {
    format!("{FAST}[installer]\nsize = {SIZE}\n")
}

fn msi_url(sim: &Sim, version: &str) -> String {
    format!("{}/octopus/Octopus.{version}-x64.msi", sim.feed)
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The body as far as it arrives, and whether the transfer failed.
async fn body(response: reqwest::Response) -> (Vec<u8>, bool) {
    let mut stream = response.bytes_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(_) => return (bytes, true),
        }
    }
    (bytes, false)
}

#[tokio::test]
async fn downloads_stream_the_installer_with_ranges_and_its_sha256() {
    let sim = Sim::start(&download_spec()).await;
    let url = msi_url(&sim, "2024.2.9409");
    let response = sim.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"],
        SIZE.to_string().as_str()
    );
    assert_eq!(response.headers()["accept-ranges"], "bytes");
    let header_sha = response.headers()["x-amz-meta-sha256"]
        .to_str()
        .unwrap()
        .to_string();
    let (full, failed) = body(response).await;
    assert!(!failed);
    assert_eq!(full.len() as u64, SIZE);
    assert_eq!(sha(&full), header_sha);
    assert!(full.starts_with(b"OCTOUP-SIM-MSI/1 version=2024.2.9409 size=300000\n"));
    let file = sim.dir().join("Octopus.2024.2.9409-x64.msi");
    std::fs::write(&file, &full).unwrap();
    assert_eq!(
        octoup_sim::installer::validate(&file).unwrap(),
        "2024.2.9409"
    );

    let head = sim.client.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], SIZE.to_string().as_str());
    assert_eq!(head.headers()["x-amz-meta-sha256"], header_sha.as_str());

    let resumed = sim
        .client
        .get(&url)
        .header("Range", "bytes=1000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 206);
    assert_eq!(
        resumed.headers()["content-range"],
        format!("bytes 1000-{}/{SIZE}", SIZE - 1).as_str()
    );
    assert_eq!(
        resumed.headers()["content-length"],
        (SIZE - 1000).to_string().as_str()
    );
    assert_eq!(body(resumed).await.0, &full[1000..]);
    let part = sim
        .client
        .get(&url)
        .header("Range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), &full[10..20]);

    let beyond = sim
        .client
        .get(&url)
        .header("Range", format!("bytes={SIZE}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 416);
    assert_eq!(
        beyond.headers()["content-range"],
        format!("bytes */{SIZE}").as_str()
    );

    // The installed version downloads too (for rollback); an unknown one does not.
    assert_eq!(
        sim.client
            .head(msi_url(&sim, "2024.1.10"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        sim.client
            .get(msi_url(&sim, "2031.1.1"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        sim.client
            .get(format!("{}/octopus/setup.exe", sim.feed))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn download_faults_drop_corrupt_ignore_range_and_hang() {
    let sim = Sim::start(&download_spec()).await;
    let url = msi_url(&sim, "2024.2.9409");
    let good = sim
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    // A HEAD leaves body faults for the GET.
    sim.fault("download", "drop:100000", None, 1);
    assert_eq!(sim.client.head(&url).send().await.unwrap().status(), 200);
    let response = sim.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"],
        SIZE.to_string().as_str()
    );
    let (bytes, failed) = body(response).await;
    assert!(
        failed,
        "a dropped connection must not look like a clean end"
    );
    assert_eq!(bytes.len(), 100_000);
    assert_eq!(bytes, &good[..100_000]);

    sim.fault("download", "corrupt:5000", None, 1);
    let response = sim.client.get(&url).send().await.unwrap();
    let header_sha = response.headers()["x-amz-meta-sha256"]
        .to_str()
        .unwrap()
        .to_string();
    let bytes = response.bytes().await.unwrap();
    assert_eq!(header_sha, sha(&good), "the header keeps the true hash");
    assert_ne!(sha(&bytes), header_sha);
    let differing: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != good[i]).collect();
    assert_eq!(differing, [5000]);

    sim.fault("download", "ignore-range", None, 1);
    let response = sim
        .client
        .get(&url)
        .header("Range", "bytes=1000-")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap(), good);

    sim.fault("download", "http:503", None, 1);
    assert_eq!(sim.client.get(&url).send().await.unwrap().status(), 503);
    assert_eq!(
        sim.client.get(&url).send().await.unwrap().status(),
        200,
        "times = 1"
    );

    sim.fault("download", "hang", None, 1);
    let error = sim
        .client
        .get(&url)
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error}");

    let fired: Vec<String> = sim
        .history()
        .iter()
        .filter(|e| e["kind"] == "fault-fired")
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        fired,
        [
            "drop:100000",
            "corrupt:5000",
            "ignore-range",
            "http:503",
            "hang"
        ]
    );
}

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
