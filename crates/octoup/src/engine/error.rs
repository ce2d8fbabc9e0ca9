//! Why a step could not be done. Each variant's message says what happened and what the
//! operator does next; the journal and the report keep that text.

use std::path::PathBuf;

use crate::backup::BackupError;
use crate::database::DatabaseError;
use crate::installer::cache::InstallerError;
use crate::journal::JournalError;
use crate::nodes::NodeError;
use crate::octopus::api::ApiError;
use crate::version::Version;

use super::catalogue::StepKind;

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{0}. Nothing was changed on the server")]
    Stage(#[source] InstallerError),
    #[error("{0}. Nothing was changed on the server")]
    StageOnNode(#[source] NodeError),
    #[error(
        "{0}. The installer of the current version is kept so a failed upgrade can put it back; nothing was changed. Make it downloadable (or cached), or set [rollback] enabled = false to upgrade without it"
    )]
    StageRollback(#[source] InstallerError),
    #[error("{0}. Nothing was changed")]
    KeyBackup(#[source] BackupError),
    #[error("{0}. Nothing was changed")]
    LicenseRead(#[source] ApiError),
    #[error("{0}. Check [database] sqlcmd and backup_dir (a folder the SQL Server can write)")]
    DatabaseBackup(#[source] DatabaseError),
    #[error("no backup to verify: the backup step recorded no file")]
    NoBackupRecorded,
    #[error("{source}. The backup {path} cannot be trusted")]
    BackupUntrusted {
        path: String,
        #[source]
        source: DatabaseError,
    },
    #[error(
        "the drain deadline ({deadline}) passed with {count} task(s) still running on {node}: {tasks}. Nothing was stopped. Let them finish (or cancel them) and run `octoup upgrade` again, raise [drain] wait_seconds, or set [drain] cancel_tasks = true"
    )]
    DrainDeadline {
        deadline: String,
        count: usize,
        node: String,
        tasks: String,
    },
    #[error("cannot cancel {task}: {source}")]
    Cancel {
        task: String,
        #[source]
        source: ApiError,
    },
    #[error(
        "{count} task(s) on {node} did not end within {waited} of being cancelled: {tasks}. Nothing was stopped; look at them in the Octopus UI, then run `octoup upgrade` again"
    )]
    CancelledTasksRun {
        count: usize,
        node: String,
        waited: String,
        tasks: String,
    },
    /// The maintenance window leaves too little time (see `engine::window`).
    #[error("{0}")]
    Window(String),
    #[error("no staged installer recorded")]
    NoStagedInstaller,
    #[error(
        "the installer exited {code} but {node} still has {installed} installed; see its log {}",
        log.display()
    )]
    InstallerLied {
        code: i32,
        node: String,
        installed: Version,
        log: PathBuf,
    },
    #[error("node {node} still answers at {url}: the database upgrade needs every node stopped")]
    StillAnswers { node: String, url: String },
    #[error("the primary {node} has {installed} installed, not {want}")]
    PrimaryNotInstalled {
        node: String,
        installed: Version,
        want: Version,
    },
    #[error(
        "node {node} does not serve {want}: {ping}{}",
        served.as_ref().map(|v| format!(", /api Version {v}")).unwrap_or_default()
    )]
    NotServing {
        node: String,
        want: Version,
        ping: String,
        served: Option<String>,
    },
    #[error("the cluster summary reports {node} on {version}, not {want}")]
    SummaryMismatch {
        node: String,
        version: String,
        want: Version,
    },
    #[error("{node} was undrained but its ping still says {ping}")]
    StillDrained { node: String, ping: String },
    #[error(
        "{node} has {shown} installed but the database is still {from}, and no installer of {from} was staged ([rollback] enabled = false). Install {from} on {node} by hand (the node must not start with {shown}), then run `octoup upgrade` again"
    )]
    NoOriginalInstaller {
        node: String,
        shown: String,
        from: Version,
    },
    #[error("no staged installer recorded for the uninstall")]
    NoPackageForUninstall,
    #[error("reinstalling {from} on {node} left {installed} installed")]
    ReinstallFailed {
        node: String,
        from: Version,
        installed: Version,
    },
    #[error("{node} has {installed} installed, not {want}: it is left stopped")]
    LeftStopped {
        node: String,
        installed: Version,
        want: Version,
    },
    #[error("{node} does not have {want} installed: it is left stopped")]
    NotInstalled { node: String, want: Version },
    #[error(
        "{node} answers ({serving}) but not with {want}: stop it and run `octoup rollback` again"
    )]
    ServesOther {
        node: String,
        serving: String,
        want: Version,
    },
    #[error("the run recorded no database backup to restore")]
    NoBackupToRestore,
    #[error("the backup {path} was never verified; it is not restored")]
    BackupNeverVerified { path: String },
    #[error(
        "{0}. The database was not restored; check [database] sqlcmd and that nothing else uses the database"
    )]
    Restore(#[source] DatabaseError),
    #[error("step {0} has no node: the journal does not match the step catalogue")]
    NoNode(StepKind),
    #[error("step {0} is not part of this procedure")]
    NotHere(StepKind),
}
