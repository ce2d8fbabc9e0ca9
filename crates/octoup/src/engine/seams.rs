//! What the engine asks of the world, beyond the nodes ([`NodeAgent`]): the cluster's API,
//! the database, and the installer cache. Production implements them over HTTP, `sqlcmd`
//! and the download cache; the engine's in-process tests implement them with a fake.

use std::sync::Arc;

use async_trait::async_trait;

use crate::database::{DatabaseError, DatabaseSide, Percent, RollbackPoint};
use crate::installer::cache::{InstallerCache, InstallerError, Role, StagedInstaller};
use crate::nodes::NodeAgent;
use crate::octopus::api::{ApiError, NodeSummary, OctopusApi, TaskResource};
use crate::process::runner::CommandRunner;
use crate::progress::Progress;
use crate::version::Version;

/// The cluster-wide Octopus API (maintenance mode, drain flags, tasks, license).
#[async_trait]
pub(crate) trait Cluster: Send + Sync {
    async fn maintenance(&self) -> Result<bool, ApiError>;
    async fn set_maintenance(&self, on: bool) -> Result<(), ApiError>;
    async fn nodes_summary(&self) -> Result<Vec<NodeSummary>, ApiError>;
    async fn set_drain(&self, node_id: &str, on: bool) -> Result<(), ApiError>;
    async fn running_tasks(&self, node_id: &str) -> Result<Vec<TaskResource>, ApiError>;
    async fn cancel_task(&self, task_id: &str) -> Result<(), ApiError>;
    /// The license XML (`licenses-current`).
    async fn license_text(&self) -> Result<String, ApiError>;
    /// The checks after a successful start ([`crate::doctor::verify`]); a fake world has
    /// none to make.
    async fn verify(
        &self,
        _config: &crate::config::Config,
        _expected: &Version,
    ) -> crate::doctor::Findings {
        crate::doctor::Findings::default()
    }
}

/// The configured cluster address; when it does not answer (it is a node that is down, as
/// without a load balancer), the flags are written through any node that answers.
pub(crate) struct ClusterApi {
    pub main: OctopusApi,
    pub nodes: Vec<Arc<dyn NodeAgent>>,
}

impl ClusterApi {
    async fn writable(&self) -> OctopusApi {
        if self.main.ping().await.is_up() {
            return self.main.clone();
        }
        for n in &self.nodes {
            if n.ping().await.is_up() {
                return self.main.at(n.url());
            }
        }
        self.main.clone()
    }
}

#[async_trait]
impl Cluster for ClusterApi {
    async fn maintenance(&self) -> Result<bool, ApiError> {
        self.main.maintenance().await
    }
    async fn set_maintenance(&self, on: bool) -> Result<(), ApiError> {
        self.writable().await.set_maintenance(on).await
    }
    async fn nodes_summary(&self) -> Result<Vec<NodeSummary>, ApiError> {
        self.main.nodes_summary().await
    }
    async fn set_drain(&self, node_id: &str, on: bool) -> Result<(), ApiError> {
        self.writable().await.set_drain(node_id, on).await
    }
    async fn running_tasks(&self, node_id: &str) -> Result<Vec<TaskResource>, ApiError> {
        self.main.running_tasks(node_id).await
    }
    async fn cancel_task(&self, task_id: &str) -> Result<(), ApiError> {
        self.main.cancel_task(task_id).await
    }
    async fn license_text(&self) -> Result<String, ApiError> {
        self.main.license_text().await
    }
    async fn verify(
        &self,
        config: &crate::config::Config,
        expected: &Version,
    ) -> crate::doctor::Findings {
        crate::doctor::verify::after_upgrade(&self.main, config, expected).await
    }
}

/// The Octopus database's rollback point, by the run's strategy: the full backup, its
/// verification, the held point (snapshot, copy), the way back, and the release.
#[async_trait]
pub(crate) trait Database: Send + Sync {
    /// The strategy's full backup (named after `from` and `stamp`).
    async fn backup(
        &self,
        from: &Version,
        stamp: &str,
        percent: Option<Percent>,
    ) -> Result<RollbackPoint, DatabaseError>;
    /// Proves the backup restorable, as far as the hosting allows.
    async fn verify(&self, point: &RollbackPoint) -> Result<String, DatabaseError>;
    /// A snapshot or copy made during the outage.
    async fn hold(
        &self,
        stamp: &str,
        percent: Option<Percent>,
    ) -> Result<RollbackPoint, DatabaseError>;
    /// Takes the database back to `point`.
    async fn restore(&self, point: &RollbackPoint, stamp: &str) -> Result<String, DatabaseError>;
    /// Drops a held snapshot or copy.
    async fn release(&self, point: &RollbackPoint) -> Result<String, DatabaseError>;
}

/// The database through the configured `sqlcmd` argv.
pub(crate) struct SqlDatabase {
    pub side: DatabaseSide,
    pub runner: Arc<dyn CommandRunner>,
}

#[async_trait]
impl Database for SqlDatabase {
    async fn backup(
        &self,
        from: &Version,
        stamp: &str,
        percent: Option<Percent>,
    ) -> Result<RollbackPoint, DatabaseError> {
        self.side
            .backup(self.runner.as_ref(), from, stamp, percent)
            .await
    }
    async fn verify(&self, point: &RollbackPoint) -> Result<String, DatabaseError> {
        self.side.verify(self.runner.as_ref(), point).await
    }
    async fn hold(
        &self,
        stamp: &str,
        percent: Option<Percent>,
    ) -> Result<RollbackPoint, DatabaseError> {
        self.side.hold(self.runner.as_ref(), stamp, percent).await
    }
    async fn restore(&self, point: &RollbackPoint, stamp: &str) -> Result<String, DatabaseError> {
        self.side.restore(self.runner.as_ref(), point, stamp).await
    }
    async fn release(&self, point: &RollbackPoint) -> Result<String, DatabaseError> {
        self.side.release(self.runner.as_ref(), point).await
    }
}

/// Verified installers, downloaded once into the cache.
#[async_trait]
pub(crate) trait Installers: Send + Sync {
    async fn ensure(
        &self,
        version: &Version,
        role: Role,
        progress: &dyn Progress,
    ) -> Result<StagedInstaller, InstallerError>;
}

#[async_trait]
impl Installers for InstallerCache {
    async fn ensure(
        &self,
        version: &Version,
        role: Role,
        progress: &dyn Progress,
    ) -> Result<StagedInstaller, InstallerError> {
        self.ensure_installer(version, role, progress).await
    }
}
