//! The simulated installation's state on disk: `DIR/state.json`, guarded by an exclusive
//! lock on `DIR/state.lock`, written atomically (temp file + rename). Every process of the
//! simulator (the daemon, each stand-in) goes through [`Store`], so concurrent changes never
//! interleave and history events are appended under the same lock as the change they describe.
//!
//! - `model`: the types of `state.json` ([`State`] and its parts).
//! - `transitions`: every change of a [`State`], each recording its history events.
//! - `instance`: the other databases, credentials and RDS tasks on the SQL instance.
//! - `machines`: the host, spaces, targets and workers, and the tasks that act on them.
//! - `spare`: spare nodes outside the installation, and their rehearsal instances.
//! - `store`: the directory: lock, load, atomic save, and the history file.

mod instance;
mod machines;
mod model;
mod spare;
mod store;
mod transitions;

pub use instance::{Credential, OtherDatabase, OtherKind, RdsTask, SqlInstance};
pub use machines::{Machine, ServerInfo, Space};
pub use model::{
    BackupRecord, DaemonInfo, Database, License, Maintenance, Node, OctopusData, Ports, Secrets,
    ServiceState, State, Task, TaskState, UpgradeInProgress, Watchdog,
};
pub(crate) use model::{DatabaseSnapshot, node_id};
pub use spare::{RehearsalInstance, SpareNode};
pub use store::{REHEARSAL_SQL_DIR, Store, StoreError};
pub(crate) use transitions::new_guid;

#[cfg(test)]
mod tests;
