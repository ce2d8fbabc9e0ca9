//! `/api/tasks`: filters, counts, paging and cancel.

use std::time::Duration;

use octoup_sim::state::TaskState;
use reqwest::Method;
use serde_json::{Value, json};

use super::{count, two_nodes};
use crate::support::{Sim, is_octopus_timestamp, wait_until};

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
