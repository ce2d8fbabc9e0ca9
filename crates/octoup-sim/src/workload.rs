//! The workload the daemon ticks: tasks start, run for their simulated duration, finish,
//! get canceled, or die with their node's service. The task rules themselves live on
//! [`State`] (S1's model); this module decides when the daemon has to write.

use crate::state::{ServiceState, State, Store, StoreError};

/// Moves the workload forward to now: executing tasks on a node whose service is not
/// running are killed (Failed), then tasks advance (finish, cancel, start on free nodes).
pub fn advance(state: &mut State) {
    let down: Vec<String> = state
        .nodes
        .iter()
        .filter(|n| n.service != ServiceState::Running)
        .map(|n| n.name.clone())
        .collect();
    for node in down {
        state.kill_tasks(&node);
    }
    state.advance_tasks();
    // The scheduled `checkservices` task of a watchdog restarts stopped services.
    state.run_watchdogs();
}

/// Whether [`advance`] would change anything now.
pub fn due(state: &State) -> bool {
    let mut next = state.clone();
    advance(&mut next);
    next.database.tasks != state.database.tasks
        || next
            .nodes
            .iter()
            .zip(&state.nodes)
            .any(|(a, b)| a.service != b.service)
}

/// One daemon tick: advances the workload when something is due (writing the state only
/// then, so the daemon does not contend for the lock 40 times a second) and returns the
/// state as it is afterwards.
pub fn tick(store: &Store) -> Result<State, StoreError> {
    let state = store.snapshot()?;
    if !due(&state) {
        return Ok(state);
    }
    store.update(|s| {
        advance(s);
        Ok::<_, StoreError>(s.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Spec, WorkloadSpec};
    use crate::state::{Ports, Secrets, TaskState};

    fn store(spec: &Spec) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let ports = Ports {
            feed: 1,
            nodes: (0..spec.nodes).map(|i| 2 + i as u16).collect(),
        };
        let store =
            Store::create(dir.path(), State::new(spec, &ports, Secrets::generate())).unwrap();
        (dir, store)
    }

    #[test]
    fn tasks_finish_and_a_stopped_node_kills_its_tasks() {
        let spec = Spec {
            time_scale: 0.001,
            nodes: 2,
            workload: vec![
                WorkloadSpec {
                    node: Some("OCTO-NODE-01".into()),
                    duration: 10.0,
                    ..WorkloadSpec::default()
                },
                WorkloadSpec {
                    node: Some("OCTO-NODE-02".into()),
                    duration: 100_000.0,
                    ..WorkloadSpec::default()
                },
            ],
            ..Spec::default()
        };
        let (_dir, store) = store(&spec);
        let state = tick(&store).unwrap();
        assert_eq!(state.database.tasks[1].state, TaskState::Executing);

        store
            .update(|s| {
                s.set_service("OCTO-NODE-02", ServiceState::Stopping);
                Ok::<_, StoreError>(())
            })
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let state = tick(&store).unwrap();
        assert_eq!(state.database.tasks[0].state, TaskState::Success);
        assert_eq!(state.database.tasks[1].state, TaskState::Failed);
        assert!(!due(&state));
        let kinds: Vec<String> = store
            .history()
            .unwrap()
            .iter()
            .map(|r| r.event.kind())
            .collect();
        assert!(kinds.contains(&"task-killed".to_string()), "{kinds:?}");
        assert!(kinds.contains(&"task-finished".to_string()), "{kinds:?}");
    }

    #[test]
    fn nothing_due_means_no_write() {
        let (_dir, store) = store(&Spec::default());
        let before = std::fs::metadata(store.state_path())
            .unwrap()
            .modified()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        tick(&store).unwrap();
        let after = std::fs::metadata(store.state_path())
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);
    }
}
