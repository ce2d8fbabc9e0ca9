//! What every HTTP handler of the daemon shares: the store, the fixed clock, the shutdown
//! signal and the versions the nodes last served with.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::state::{Node, ServiceState, State, Store, StoreError};

/// What every HTTP handler of the daemon shares.
pub(crate) struct Shared {
    pub store: Store,
    /// Fixed for an installation: created_at and time_scale never change.
    pub clock: Clock,
    pub shutdown: Notify,
    /// The binary version each node last served with. A node registers its version in the
    /// database when it starts, so a stopped node keeps reporting the version it ran, even
    /// after new binaries are installed on its host.
    pub served_versions: Mutex<HashMap<String, String>>,
}

impl Shared {
    /// The current state, read off the async threads (the store takes a file lock).
    pub async fn state(&self) -> Result<State, StoreError> {
        let store = self.store.clone();
        blocking(move || store.snapshot()).await?
    }

    /// A locked read-modify-write of the state, off the async threads.
    pub async fn update<T, E>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        blocking(move || store.update(f)).await.map_err(E::from)?
    }

    pub fn note_served_versions(&self, state: &State) {
        let mut served = self
            .served_versions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for node in state
            .nodes
            .iter()
            .filter(|n| n.service == ServiceState::Running)
        {
            served.insert(node.name.clone(), node.version().to_string());
        }
    }

    /// The version a node reports in the cluster summary: what it runs, or, while it is
    /// not running, what it last ran (its installed binaries when the daemon never saw it).
    pub fn registered_version(&self, node: &Node) -> String {
        if node.service != ServiceState::Running {
            let served = self
                .served_versions
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(version) = served.get(&node.name) {
                return version.clone();
            }
        }
        node.version().to_string()
    }

    /// Real time `sim_seconds` of simulated time take.
    pub async fn sleep_sim(&self, sim_seconds: f64) {
        tokio::time::sleep(self.clock.real_duration(sim_seconds)).await;
    }
}

/// Runs `f` on the blocking pool; a panic in it becomes an I/O error, never a daemon crash.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Io {
            path: "state".to_string(),
            source: std::io::Error::other(e.to_string()),
        })
}
