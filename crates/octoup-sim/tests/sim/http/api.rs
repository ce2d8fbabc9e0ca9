//! The root document, API keys and AdministerSystem, maintenance mode, server status
//! and licenses.

use reqwest::Method;
use serde_json::{Value, json};

use super::{FAST, MSG_FORBIDDEN, MSG_NOT_LOGGED_IN, assert_error, error_message, two_nodes};
use crate::support::{Sim, is_octopus_timestamp, keys};

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
    // The term runs a year from the installation's creation unless [license] expires says.
    assert_ne!(status["EffectiveExpiryDate"], "2025-03-31");
    assert!(status["DaysToEffectiveExpiryDate"].as_i64().unwrap() > 300);
    assert_eq!(status["LicenseKind"], "Standard");
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
