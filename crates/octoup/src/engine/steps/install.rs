//! The installer on a node: the target version during the outage, and the original
//! version put back (undo, rollback). The installer can claim success and leave the old
//! files (Octopus issue 6383), so the installed version is always read back.

use crate::journal::Step;

use super::super::catalogue::{StepId, StepKind};
use super::super::error::StepError;
use super::super::executor::{Done, Engine, EngineNode, StepResult};
use super::super::record::Record;

impl Engine {
    pub(super) async fn install(&self, n: &EngineNode) -> StepResult {
        let id = StepId::on(StepKind::Install, &n.info.name);
        let target = self.target();
        // Only a resumed run can find the target already installed (a crash after the
        // installer ran): a fresh run's preflight read the original on every node moments
        // ago, with every node stopped since. Each check is a command on the outage's
        // critical path (an SSH round trip per node in production).
        if self.resumed && n.agent.installed_version().await? == target {
            return Ok(Done::Ok(format!("{target} is installed")));
        }
        let installer = self
            .staged_target_installer()
            .ok_or(StepError::NoStagedInstaller)?;
        let outcome = n.agent.install(&installer, &target.to_string()).await?;
        self.record(&id, Record::ExitCode(outcome.exit_code))?;
        self.record(&id, Record::Log(outcome.log.clone()))?;
        let now_installed = n.agent.installed_version().await?;
        if now_installed != target {
            return Err(StepError::InstallerLied {
                code: outcome.exit_code,
                node: n.info.name.clone(),
                installed: now_installed,
                log: outcome.log,
            });
        }
        Ok(Done::Ok(format!(
            "{target} installed{}{}",
            if outcome.attempts > 1 {
                format!(
                    " after {} tries (another installation was running)",
                    outcome.attempts
                )
            } else {
                String::new()
            },
            if outcome.reboot_required {
                " (exit 3010: Windows asks for a reboot; octoup does not reboot)"
            } else {
                ""
            }
        )))
    }

    /// The target's installer, staged before the outage.
    pub(crate) fn staged_target_installer(&self) -> Option<std::path::PathBuf> {
        self.recorded(&StepId::once(StepKind::StageInstaller), Step::recorded_path)
    }

    /// Whether `version` is what the node has installed (false when it cannot be read).
    pub(crate) async fn installed_is(
        &self,
        n: &EngineNode,
        version: &crate::version::Version,
    ) -> bool {
        n.agent
            .installed_version()
            .await
            .is_ok_and(|v| v == *version)
    }

    /// Puts the original version back on a node whose binaries changed, before it may
    /// start: the newer product is uninstalled (an MSI refuses to downgrade itself), then
    /// the staged original installer runs. `Ok(false)` when the original is installed.
    pub(crate) async fn reinstall_original(&self, n: &EngineNode) -> Result<bool, StepError> {
        let from = self.from();
        // Nothing installed at all (a crash between the uninstall and the install) reads as
        // an error from `version`: go on to install.
        let installed = n.agent.installed_version().await.ok();
        if installed.as_ref() == Some(&from) {
            return Ok(false);
        }
        let shown = installed
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_else(|| "no Octopus Server".into());
        let Some(original) = self.rollback_installer() else {
            return Err(StepError::NoOriginalInstaller {
                node: n.info.name.clone(),
                shown,
                from,
            });
        };
        self.events.note(&format!(
            "{}: putting {from} back (the node must not start with {shown} against a {from} database)",
            n.info.name
        ));
        if let Some(current) = &installed {
            let package = self
                .staged_target_installer()
                .ok_or(StepError::NoPackageForUninstall)?;
            n.agent.uninstall(&package, &current.to_string()).await?;
        }
        n.agent.install(&original, &from.to_string()).await?;
        let now_installed = n.agent.installed_version().await?;
        if now_installed != from {
            return Err(StepError::ReinstallFailed {
                node: n.info.name.clone(),
                from,
                installed: now_installed,
            });
        }
        Ok(true)
    }
}
