//! The step bodies, one file per group, and the dispatch from a step kind to its body.
//! Every body reads the real state before it acts, so running it again after a crash
//! confirms what it finds instead of repeating it.

mod before;
mod database;
mod install;
mod shutdown;
mod startup;

pub(crate) use startup::serves;

use super::catalogue::StepKind::{self, *};
use super::error::StepError;
use super::executor::{Engine, EngineNode, StepResult};
use crate::installer::cache::Role;

impl Engine {
    /// The body of a step of `kind` (on `node`, for per-node kinds).
    pub(crate) async fn body(&self, kind: StepKind, node: Option<&EngineNode>) -> StepResult {
        let n = || node.ok_or(StepError::NoNode(kind));
        match kind {
            StageInstaller => self.stage(Role::Target).await,
            StageRollback => self.stage(Role::Rollback).await,
            BackupMasterKey => self.backup_master_key().await,
            BackupLicense => self.backup_license().await,
            MaintenanceOn => self.maintenance_on().await,
            Drain => self.drain(n()?).await,
            DeleteWatchdog => self.delete_watchdog(n()?).await,
            Stop => self.stop(n()?).await,
            BackupDatabase => self.backup_database().await,
            VerifyBackup => self.verify_backup().await,
            SnapshotDatabase | CopyDatabase => self.hold_database(kind).await,
            ReleaseRollbackPoint => self.release_rollback_point().await,
            Install => self.install(n()?).await,
            UpgradeDatabase => self.upgrade_database().await,
            Start => self.start(n()?).await,
            Verify => self.verify().await,
            CreateWatchdog => self.create_watchdog(n()?).await,
            Undrain => self.undrain(n()?).await,
            MaintenanceRestore => self.maintenance_restore().await,
            RollbackStop => self.rb_stop(n()?).await,
            RollbackRestore => self.rb_restore().await,
            RollbackInstall => self.rb_install(n()?).await,
            RollbackStart => self.rb_start(n()?).await,
            RollbackVerify => self.rb_verify().await,
            RollbackWatchdog => self.rb_watchdog(n()?).await,
            RollbackDrain => self.rb_drain(n()?).await,
            RollbackMaintenance => self.rb_maintenance().await,
            Preflight => Err(StepError::NotHere(kind)),
        }
    }
}
