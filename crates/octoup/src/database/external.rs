//! `external`: the hosting's own backup, taken by a configured command during the outage
//! (Cloud SQL: `gcloud sql backups create --instance=…`). octoup cannot restore it, so the
//! strategy needs `[rollback] enabled = false`; docs/database.md has the manual way back.

use super::{DatabaseError, DatabaseSide, RollbackPoint};
use crate::process::runner::{CommandRunner, CommandSpec, display_argv, expand};
use crate::version::Version;

impl DatabaseSide {
    pub(super) async fn external_backup(
        &self,
        runner: &dyn CommandRunner,
        from: &Version,
        stamp: &str,
    ) -> Result<RollbackPoint, DatabaseError> {
        let from = from.to_string();
        let argv = expand(
            &self.external,
            &[
                ("version", &from),
                ("stamp", stamp),
                ("database", self.name()),
            ],
        );
        let shown = display_argv(&argv);
        let spec = CommandSpec::new("external database backup", argv, self.sql.timeout)
            .timeout_setting("[timeouts] backup");
        let out = runner.run(spec).await?;
        if !out.success() {
            return Err(DatabaseError::failed(
                "external database backup",
                format!("`{shown}` failed ({}): {}", out.code_text(), out.tail(6)),
                "fix the command in [database] external_backup (run it by hand to see), then run `octoup upgrade` again",
            ));
        }
        Ok(RollbackPoint::External { command: shown })
    }
}
