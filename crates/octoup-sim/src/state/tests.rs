use super::*;
use crate::history::Event;
use crate::spec::{Spec, WorkloadSpec};

pub(crate) fn ports(n: usize) -> Ports {
    Ports {
        feed: 41000,
        nodes: (0..n).map(|i| 41001 + i as u16).collect(),
    }
}

#[test]
fn create_update_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec {
        nodes: 2,
        workload: vec![WorkloadSpec::default()],
        ..Spec::default()
    };
    let store = Store::create(
        dir.path(),
        State::new(&spec, &ports(2), Secrets::generate()),
    )
    .unwrap();
    assert!(matches!(
        Store::create(
            dir.path(),
            State::new(&spec, &ports(2), Secrets::generate())
        ),
        Err(StoreError::AlreadyExists(_))
    ));
    let state = store.snapshot().unwrap();
    assert_eq!(state.nodes.len(), 2);
    assert_eq!(state.nodes[1].id(), "OctopusServerNodes-OCTO-NODE-02");
    assert_eq!(state.database.tasks[0].state, TaskState::Executing);
    assert!(state.secrets.admin_api_key.starts_with("API-"));
    assert_eq!(state.secrets.admin_api_key.len(), 30);

    store
        .update(|s| {
            s.set_maintenance(true, "test");
            s.set_drain("OCTO-NODE-01", true, "cli");
            Ok::<_, StoreError>(())
        })
        .unwrap();
    // A failing update saves nothing and records nothing.
    let err: Result<(), StoreError> = store.update(|s| {
        s.set_maintenance(false, "test");
        Err(StoreError::NotFound("x".into()))
    });
    assert!(err.is_err());
    assert!(
        store
            .read(|s| s.database.maintenance.is_in_maintenance_mode)
            .unwrap()
    );

    let history = store.history().unwrap();
    let kinds: Vec<String> = history.iter().map(|r| r.event.kind()).collect();
    assert_eq!(
        kinds,
        [
            "installation-created",
            "task-queued",
            "task-started",
            "maintenance-set",
            "drain-set"
        ]
    );
    let seqs: Vec<u64> = history.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
}

#[test]
fn concurrent_updates_do_not_lose_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(
        dir.path(),
        State::new(&Spec::default(), &ports(1), Secrets::generate()),
    )
    .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    store
                        .update(|s| {
                            s.nodes[0].max_concurrent_tasks += 1;
                            Ok::<_, StoreError>(())
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        store.read(|s| s.nodes[0].max_concurrent_tasks).unwrap(),
        105
    );
}

#[test]
fn tasks_advance_and_respect_drain() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec {
        time_scale: 0.001,
        ..Spec::default()
    };
    let store = Store::create(
        dir.path(),
        State::new(&spec, &ports(1), Secrets::generate()),
    )
    .unwrap();
    store
        .update(|s| {
            s.set_drain("OCTO-NODE-01", true, "cli");
            s.queue_task("Deploy", "d", 5.0, None);
            s.advance_tasks();
            assert_eq!(s.database.tasks[0].state, TaskState::Queued);
            s.set_drain("OCTO-NODE-01", false, "cli");
            s.advance_tasks();
            assert_eq!(s.database.tasks[0].state, TaskState::Executing);
            Ok::<_, StoreError>(())
        })
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    store
        .update(|s| {
            s.advance_tasks();
            assert_eq!(s.database.tasks[0].state, TaskState::Success);
            Ok::<_, StoreError>(())
        })
        .unwrap();
}

#[test]
fn the_watchdog_restarts_a_stopped_service_after_its_interval() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec {
        time_scale: 0.001,
        nodes: 2,
        ..Spec::default()
    };
    let store = Store::create(
        dir.path(),
        State::new(&spec, &ports(2), Secrets::generate()),
    )
    .unwrap();
    store
        .update(|s| {
            for n in &mut s.nodes {
                n.watchdog = Some(Watchdog {
                    interval_minutes: 1,
                    instances: "*".into(),
                });
            }
            s.set_service("OCTO-NODE-01", ServiceState::Stopped);
            s.set_service("OCTO-NODE-02", ServiceState::Stopped);
            // Node 2 was upgraded but the schema was not: its restart fails.
            s.nodes[1].installed_version = Some("2024.2.9409".into());
            s.run_watchdogs();
            assert_eq!(s.nodes[0].service, ServiceState::Stopped, "not yet due");
            Ok::<_, StoreError>(())
        })
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(80));
    store
        .update(|s| {
            s.run_watchdogs();
            assert_eq!(s.nodes[0].service, ServiceState::Running);
            assert_eq!(s.nodes[1].service, ServiceState::Stopped);
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let history = store.history().unwrap();
    assert!(history.iter().any(|r| matches!(&r.event,
        Event::ServiceStarted { node, by, .. } if node == "OCTO-NODE-01" && by == "watchdog")));
    assert!(history.iter().any(|r| matches!(&r.event,
        Event::ServiceStartFailed { node, .. } if node == "OCTO-NODE-02")));
}
