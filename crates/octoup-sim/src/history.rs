//! The append-only event history `DIR/history.jsonl`: one JSON object per line,
//! `{"seq", "at", "sim_seconds", "kind", ...fields}`. Written only under the state lock
//! (see `state::Store`, which also reads it back), so `seq` is strictly increasing.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// Real time, RFC 3339.
    pub at: Timestamp,
    pub sim_seconds: f64,
    /// The SQL Server the event happened on when it is not the installation's own:
    /// `rehearsal` (spec `rehearsal_sql_server`). Absent: production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(flatten)]
    pub event: Event,
}

/// A node's flags and versions when the installation was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInit {
    pub node: String,
    pub binary_version: String,
    pub running: bool,
    pub drain: bool,
    pub watchdog: bool,
}

/// Everything that happened, tagged by `kind` (kebab-case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Event {
    InstallationCreated {
        schema_version: String,
        maintenance: bool,
        nodes: Vec<NodeInit>,
    },
    /// Cluster maintenance mode changed. `by`: `api:<node>`, `restore`, ...
    MaintenanceSet {
        value: bool,
        by: String,
    },
    /// A node's drain flag changed. `by`: `cli`, `api:<node>`, `restore`, ...
    DrainSet {
        node: String,
        value: bool,
        by: String,
    },
    ServiceStarting {
        node: String,
        binary_version: String,
        schema_version: String,
    },
    ServiceStarted {
        node: String,
        binary_version: String,
        schema_version: String,
        /// `cli` or `watchdog`.
        by: String,
    },
    ServiceStartFailed {
        node: String,
        binary_version: String,
        schema_version: String,
        reason: String,
    },
    ServiceStopping {
        node: String,
        binary_version: String,
        schema_version: String,
    },
    ServiceStopped {
        node: String,
        binary_version: String,
        schema_version: String,
    },
    WatchdogCreated {
        node: String,
        interval_minutes: u32,
    },
    WatchdogDeleted {
        node: String,
    },
    InstallStarted {
        node: String,
        file: String,
        /// The version the file carries; `None` when it is not a valid installer.
        version: Option<String>,
        previous_version: Option<String>,
    },
    InstallFinished {
        node: String,
        version: String,
        previous_version: Option<String>,
        exit_code: i32,
    },
    InstallFailed {
        node: String,
        version: Option<String>,
        exit_code: i32,
        reason: String,
    },
    /// `msiexec /x`: the binaries are gone from the node.
    UninstallFinished {
        node: String,
        version: String,
    },
    DbUpgradeStarted {
        node: String,
        from: String,
        to: String,
    },
    DbUpgradeFinished {
        node: String,
        from: String,
        to: String,
    },
    DbUpgradeFailed {
        node: String,
        from: String,
        to: String,
        reason: String,
    },
    /// `database --upgrade` refused before touching anything (nodes running, license, ...).
    DbUpgradeRefused {
        node: String,
        reason: String,
    },
    DbBackupCreated {
        database: String,
        path: String,
        schema_version: String,
        copy_only: bool,
        checksum: bool,
    },
    DbBackupVerified {
        path: String,
        schema_version: String,
    },
    DbBackupVerifyFailed {
        path: String,
        reason: String,
    },
    DbRestored {
        database: String,
        path: String,
        from_schema: String,
        to_schema: String,
    },
    /// `CREATE DATABASE [snapshot] … AS SNAPSHOT OF [source]`.
    DbSnapshotCreated {
        snapshot: String,
        source: String,
        schema_version: String,
    },
    /// `RESTORE DATABASE [source] FROM DATABASE_SNAPSHOT` (followed by `db-restored`).
    DbSnapshotReverted {
        snapshot: String,
        source: String,
        from_schema: String,
        to_schema: String,
    },
    DbSnapshotDropped {
        snapshot: String,
        source: String,
    },
    /// `CREATE DATABASE [copy] AS COPY OF [source]` (Azure SQL Database) began.
    DbCopyStarted {
        copy: String,
        source: String,
        schema_version: String,
    },
    DbCopyCompleted {
        copy: String,
        source: String,
        schema_version: String,
    },
    DbCopyFailed {
        copy: String,
        source: String,
        reason: String,
    },
    /// `ALTER DATABASE … MODIFY NAME` or `rds_modify_db_name`; a rename onto the Octopus
    /// database's name is followed by `db-restored`.
    DbRenamed {
        from: String,
        to: String,
    },
    DbDropped {
        database: String,
    },
    /// `up` made a second SQL Server (spec `rehearsal_sql_server`), reached at `server`.
    SqlServerCreated {
        address: String,
    },
    /// `RESTORE DATABASE [new] … WITH MOVE …` (on Managed Instance `FROM URL` alone; on RDS a
    /// finished `rds_restore_database` to a new name): another database made from a backup
    /// (production is untouched; `db-restored` is production changing).
    DbRestoredAs {
        database: String,
        path: String,
        schema_version: String,
    },
    /// A `DELETE`/`UPDATE` changed Octopus rows in `database` (`statement`: delete/update/insert).
    DbRowsChanged {
        database: String,
        table: String,
        statement: String,
        rows: u64,
    },
    /// `octoup-sim container` started against a copy that still has production's nodes or
    /// enabled triggers, subscriptions, targets or workers (R1).
    RehearsalArmed {
        database: String,
        what: String,
    },
    /// msiexec on a spare node (outside the installation): `version` installed, or `None`
    /// removed.
    SpareNodeInstalled {
        node: String,
        version: Option<String>,
    },
    /// `create-instance` / `delete-instance` of a rehearsal instance on a spare node.
    RehearsalInstanceCreated {
        node: String,
        instance: String,
    },
    RehearsalInstanceDeleted {
        node: String,
        instance: String,
    },
    /// A rehearsal instance's service started serving (against `database`), or stopped.
    RehearsalInstanceStarted {
        node: String,
        instance: String,
        database: String,
        port: u16,
    },
    RehearsalInstanceStopped {
        node: String,
        instance: String,
    },
    /// A secret on the command line of `Octopus.Server.exe database` on a spare node: the
    /// vendor's only route for a new instance against an existing database, taken only
    /// under the operator's opt-in. Recorded (never the value), not counted as a leak.
    SecretArgument {
        node: String,
        which: String,
        detail: String,
    },
    /// The container began migrating `database`'s schema.
    RehearsalMigrationStarted {
        database: String,
        from: String,
        to: String,
    },
    RehearsalMigrationFinished {
        database: String,
        from: String,
        to: String,
    },
    RehearsalMigrationFailed {
        database: String,
        from: String,
        to: String,
        error: String,
    },
    /// `CREATE`/`ALTER CREDENTIAL`: the name only, never the secret.
    CredentialSet {
        name: String,
        identity: String,
        altered: bool,
    },
    /// `rds_backup_database` / `rds_restore_database` queued a task.
    RdsTaskCreated {
        task_id: u64,
        task_type: String,
        database: String,
        s3_arn: String,
        /// The schema the backup holds (backups only).
        schema_version: Option<String>,
    },
    /// `lifecycle`: SUCCESS or ERROR.
    RdsTaskFinished {
        task_id: u64,
        task_type: String,
        lifecycle: String,
        s3_arn: String,
    },
    MasterKeyRead {
        node: String,
    },
    /// `via`: `api:<node>` or `cli`.
    LicenseRead {
        via: String,
    },
    TaskQueued {
        task_id: String,
        name: String,
        node: Option<String>,
    },
    TaskStarted {
        task_id: String,
        node: String,
        name: String,
    },
    /// `state`: the final state (`Success`, `Failed`, `TimedOut`).
    TaskFinished {
        task_id: String,
        node: String,
        state: String,
    },
    TaskCanceled {
        task_id: String,
        node: Option<String>,
        by: String,
    },
    /// The node's service stopped under an executing task.
    TaskKilled {
        task_id: String,
        node: String,
    },
    ApiRequest {
        node: String,
        method: String,
        path: String,
        status: u16,
    },
    FaultFired {
        op: String,
        action: String,
        node: Option<String>,
    },
    /// A stand-in was run; secrets in `args` are replaced by `***`.
    StandinInvoked {
        program: String,
        node: Option<String>,
        args: Vec<String>,
    },
    /// A secret appeared where it must not (I5): `place` says where, never the secret itself.
    SecretLeak {
        place: String,
        detail: String,
    },
}

impl Event {
    /// The `kind` tag, as written in the history.
    pub fn kind(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_flat_json_tagged_by_kind() {
        let record = Record {
            seq: 7,
            at: "2025-03-04T09:12:44.120Z".parse().unwrap(),
            sim_seconds: 12.5,
            server: None,
            event: Event::DrainSet {
                node: "OCTO-NODE-01".into(),
                value: true,
                by: "cli".into(),
            },
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["kind"], "drain-set");
        assert_eq!(json["seq"], 7);
        assert_eq!(json["node"], "OCTO-NODE-01");
        assert_eq!(json["at"], "2025-03-04T09:12:44.12Z");
        let back: Record = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
        assert_eq!(record.event.kind(), "drain-set");
    }
}
