//! Before the outage: the installers staged (here and on every remote node), the master
//! key and the license backed up. Nothing here changes the installation.

use futures_util::future::join_all;

use crate::backup;
use crate::installer::cache::{Role, describe};

use super::super::catalogue::{StepId, StepKind};
use super::super::error::StepError;
use super::super::executor::{Done, Engine, StepResult};
use super::super::record::Record;

impl Engine {
    pub(super) async fn stage(&self, role: Role) -> StepResult {
        let version = match role {
            Role::Target => self.target(),
            Role::Rollback => self.from(),
        };
        let staged = self
            .installers
            .ensure(&version, role, self.events.progress())
            .await
            .map_err(|e| match role {
                Role::Target => StepError::Stage(e),
                Role::Rollback => StepError::StageRollback(e),
            })?;
        // Nodes reached over a transport stage into their own cache, all at once, before the
        // outage (a node on this machine uses the cache above: nothing to do).
        join_all(
            self.nodes
                .iter()
                .map(|n| n.agent.stage(&version, role == Role::Rollback)),
        )
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()
        .map_err(StepError::StageOnNode)?;
        let id = StepId::once(match role {
            Role::Target => StepKind::StageInstaller,
            Role::Rollback => StepKind::StageRollback,
        });
        let verified_by = describe(&staged.verified_by);
        self.record(&id, Record::Path(staged.path.clone()))?;
        self.record(&id, Record::Sha256(staged.sha256.clone()))?;
        self.record(&id, Record::VerifiedBy(verified_by.clone()))?;
        Ok(Done::Ok(format!(
            "{} ({verified_by})",
            staged.path.display()
        )))
    }

    pub(super) async fn backup_master_key(&self) -> StepResult {
        let path = backup::save_master_key(
            self.primary().agent.as_ref(),
            &self.config.backup.dir,
            &self.log,
            &self.stamp,
        )
        .await
        .map_err(StepError::KeyBackup)?;
        self.record(
            &StepId::once(StepKind::BackupMasterKey),
            Record::Path(path.clone()),
        )?;
        Ok(Done::Ok(path.display().to_string()))
    }

    pub(super) async fn backup_license(&self) -> StepResult {
        let text = self
            .cluster
            .license_text()
            .await
            .map_err(StepError::LicenseRead)?;
        let path = backup::save_license(&text, &self.config.backup.dir, &self.stamp)
            .map_err(StepError::KeyBackup)?;
        self.record(
            &StepId::once(StepKind::BackupLicense),
            Record::Path(path.clone()),
        )?;
        Ok(Done::Ok(path.display().to_string()))
    }
}
