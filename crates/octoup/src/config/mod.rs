//! The `octoup.toml` configuration: the design's stable interface plus octoup's own additions.
//!
//! Unknown keys are an error that names the key (every table is `deny_unknown_fields`).
//! Relative paths are resolved against the directory of the config file, so a config
//! written next to its key files works wherever octoup is started from.
//! Nothing here reads the process environment: the binary passes `OCTOPUS_URL` and
//! `OCTOPUS_API_KEY` in through [`EnvOverrides`].

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod diagnostic;
mod key_source;
mod notify;
mod template;
mod validate;
mod window;

pub use diagnostic::Diagnostic;
use diagnostic::Source;
pub use key_source::ApiKeySource;
pub use notify::{NotifyConfig, NotifyEvent, NotifyFormat};
pub use template::{InitOptions, init_template};
pub(crate) use validate::{same_sql_server, sqlcmd_option};
pub use window::{DaysConfig, Schedule, WindowConfig};
pub(crate) use window::{parse_hh_mm as window_time, zone_or_system as window_zone};

/// Where the public version feed lives.
pub(crate) const DEFAULT_FEED: &str = "https://octopus.com/download/upgrade/v3";
/// The vendor's MSI download pattern.
pub(crate) const DEFAULT_INSTALLER_URL: &str =
    "https://download.octopusdeploy.com/octopus/Octopus.{version}-x64.msi";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "cannot read the config file {path}: {source}. Pass --config FILE or create ./octoup.toml (see docs/configuration.md)"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not valid TOML, an unknown key, a value of the wrong type, or a value that makes no
    /// sense: where (`file:line:col`), which key, and what was expected and found.
    #[error("{0}")]
    Parse(Diagnostic),
    #[error("config: {0}")]
    Invalid(String),
    #[error(
        "no server URL: set [server] url in the config or the OCTOPUS_URL environment variable"
    )]
    MissingUrl,
    #[error(
        "no API key: set [server] api_key_file in the config or the OCTOPUS_API_KEY environment variable (the key is never accepted as a command-line argument)"
    )]
    MissingApiKey,
    #[error("cannot read the API key file {path}: {source}. Check the path and its permissions")]
    ApiKeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot read the URL file of the webhook {webhook}, {path}: {source}. Check [[notify]] url_file and its permissions"
    )]
    WebhookFile {
        webhook: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the SAS token file {path}: {source}. Check [database] sas_token_file")]
    SasTokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot read the SQL password file {path}: {source}. Check the setting that names it ([database] password_file, [rehearsal] sql_password_file or [rehearsal.sql] password_file)"
    )]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A secret value (API key, SQL password, master key). Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value itself, for the one place that must send it (an HTTP header, a child's environment).
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Values the binary took from the environment (`OCTOPUS_URL`, `OCTOPUS_API_KEY`).
#[derive(Debug, Default, Clone)]
pub struct EnvOverrides {
    pub url: Option<String>,
    pub api_key: Option<Secret>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub versions: VersionsConfig,
    pub installer: InstallerConfig,
    pub database: DatabaseConfig,
    pub backup: BackupConfig,
    pub drain: DrainConfig,
    pub maintenance: MaintenanceConfig,
    pub state: StateConfig,
    pub rollback: RollbackConfig,
    pub network: NetworkConfig,
    pub timeouts: TimeoutsConfig,
    pub cluster: ClusterConfig,
    pub ssh: SshConfig,
    pub doctor: DoctorConfig,
    pub window: WindowConfig,
    /// `octoup rehearse`: the copy, the rehearsal host and its isolation.
    pub rehearsal: RehearsalConfig,
    pub nodes: Vec<NodeConfig>,
    /// `[[notify]]`: webhooks told of the run's milestones.
    pub notify: Vec<NotifyConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The server (or load balancer) URL. `OCTOPUS_URL` overrides it.
    pub url: Option<String>,
    /// A file holding the API key. `OCTOPUS_API_KEY` overrides it.
    pub api_key_file: Option<PathBuf>,
    pub instance: String,
    /// argv prefix that runs `Octopus.Server.exe` on the node.
    pub server_exe: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            url: None,
            api_key_file: None,
            instance: "OctopusServer".into(),
            server_exe: vec![r"C:\Program Files\Octopus Deploy\Octopus\Octopus.Server.exe".into()],
        }
    }
}

/// `[versions]`: where versions come from and the policy that chooses one.
/// The policy fields are kept as written here; the version policy (`choice::policy`) interprets them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VersionsConfig {
    /// URL or file (air-gapped mirror).
    pub feed: String,
    /// `patch`, `minor` or `major`.
    pub allow: String,
    /// Soak time: a release must be this many days old.
    pub min_age_days: u32,
    /// Stay on this release line, e.g. `2024.3`.
    pub pin: Option<String>,
    /// Versions never to install.
    pub exclude: Vec<String>,
    /// Consider pre-releases.
    pub prereleases: bool,
}

impl Default for VersionsConfig {
    fn default() -> Self {
        VersionsConfig {
            feed: DEFAULT_FEED.into(),
            allow: "minor".into(),
            min_age_days: 0,
            pin: None,
            exclude: Vec::new(),
            prereleases: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InstallerConfig {
    /// Download URL template with `{version}`.
    pub url: String,
    /// argv that installs `{installer}`, logging to `{log}`.
    pub install: Vec<String>,
    /// argv that uninstalls the installed version (`{installer}` is the installed version's
    /// staged installer). A rollback to an older version runs it first: the MSI refuses downgrades.
    pub uninstall: Vec<String>,
    /// Optional argv run on `{installer}` (e.g. an Authenticode check); exit 0 = trusted.
    pub verify: Vec<String>,
    /// Optional SHA-256 pin for the target's installer.
    pub sha256: Option<String>,
    /// Optional sidecar (URL template with `{version}`, or file) holding the hex SHA-256.
    pub sidecar: Option<String>,
    /// Install an installer no hash source vouches for. Off unless the operator says so.
    pub allow_unverified: bool,
    /// Download cache; default `<state.dir>/cache`.
    pub cache_dir: Option<PathBuf>,
    /// Retries for msiexec's 1618 ("another installation is in progress").
    pub busy_retries: u32,
    /// A download gives up after this many failed attempts in a row that received nothing.
    pub download_retries: u32,
    /// A download starts no new attempt after this many minutes.
    pub download_give_up_minutes: u64,
}

impl Default for InstallerConfig {
    fn default() -> Self {
        InstallerConfig {
            url: DEFAULT_INSTALLER_URL.into(),
            install: [
                "msiexec",
                "/i",
                "{installer}",
                "/quiet",
                "RUNMANAGERONEXIT=no",
                "/norestart",
                "/l*v",
                "{log}",
            ]
            .map(String::from)
            .to_vec(),
            uninstall: [
                "msiexec",
                "/x",
                "{installer}",
                "/quiet",
                "/norestart",
                "/l*v",
                "{log}",
            ]
            .map(String::from)
            .to_vec(),
            verify: Vec::new(),
            sha256: None,
            sidecar: None,
            allow_unverified: false,
            cache_dir: None,
            busy_retries: 5,
            download_retries: 6,
            download_give_up_minutes: 120,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub name: String,
    /// argv prefix; octoup appends `-Q <T-SQL>`.
    pub sqlcmd: Vec<String>,
    /// SQL login password, handed to sqlcmd only as `SQLCMDPASSWORD` in its environment.
    pub password_file: Option<PathBuf>,
    pub backup_dir: PathBuf,
    /// How the rollback point is made (`auto` picks by the detected hosting and edition).
    pub strategy: DatabaseStrategy,
    /// `COMPRESSION` on the backup; absent: wherever the edition allows it.
    pub compression: Option<bool>,
    /// Backup files written in parallel (one writer thread each; best on separate disks).
    pub stripes: u32,
    /// `MAXTRANSFERSIZE` in bytes (a multiple of 64 KiB, at most 4 MiB); absent: the server's.
    pub max_transfer_size: Option<u32>,
    /// `BUFFERCOUNT`; absent: the server's (memory = buffers × transfer size).
    pub buffer_count: Option<u32>,
    /// Where the snapshot's sparse files go; absent: next to each data file.
    pub snapshot_dir: Option<PathBuf>,
    /// `url`: the blob container, `https://account.blob.core.windows.net/container`.
    pub url: Option<String>,
    /// `url`: a file holding a SAS token for the container; octoup then creates (or
    /// updates) the credential. Absent: the credential must exist.
    pub sas_token_file: Option<PathBuf>,
    /// `rds`: where the backup goes, `arn:aws:s3:::bucket/prefix`.
    pub rds_s3_arn: Option<String>,
    /// `external`: the argv that takes the hosting's own backup during the outage, e.g.
    /// `gcloud sql backups create --instance=…` (Cloud SQL); the rollback is then manual.
    pub external_backup: Vec<String>,
}

/// `[database] strategy`: what the rollback point is.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum DatabaseStrategy {
    /// By the detected hosting and edition.
    #[default]
    Auto,
    /// `BACKUP … TO DISK` during the outage, then `RESTORE VERIFYONLY`.
    Native,
    /// A verified backup before the outage, a database snapshot during it.
    Snapshot,
    /// Azure SQL Database: `CREATE DATABASE … AS COPY OF` during the outage.
    AzureCopy,
    /// `BACKUP … TO URL` (Managed Instance, or SQL Server to Azure Blob).
    Url,
    /// Amazon RDS: `msdb.dbo.rds_backup_database` to S3.
    Rds,
    /// A configured command takes the hosting's own backup; no automatic restore.
    External,
}

impl DatabaseStrategy {
    pub fn name(self) -> &'static str {
        match self {
            DatabaseStrategy::Auto => "auto",
            DatabaseStrategy::Native => "native",
            DatabaseStrategy::Snapshot => "snapshot",
            DatabaseStrategy::AzureCopy => "azure-copy",
            DatabaseStrategy::Url => "url",
            DatabaseStrategy::Rds => "rds",
            DatabaseStrategy::External => "external",
        }
    }

    pub fn parse(name: &str) -> Option<DatabaseStrategy> {
        [
            DatabaseStrategy::Auto,
            DatabaseStrategy::Native,
            DatabaseStrategy::Snapshot,
            DatabaseStrategy::AzureCopy,
            DatabaseStrategy::Url,
            DatabaseStrategy::Rds,
            DatabaseStrategy::External,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

impl fmt::Display for DatabaseStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            name: "OctopusDeploy".into(),
            sqlcmd: ["sqlcmd", "-S", "localhost", "-E", "-b"]
                .map(String::from)
                .to_vec(),
            password_file: None,
            backup_dir: PathBuf::from("backups/sql"),
            strategy: DatabaseStrategy::Auto,
            compression: None,
            stripes: 1,
            max_transfer_size: None,
            buffer_count: None,
            snapshot_dir: None,
            url: None,
            sas_token_file: None,
            rds_s3_arn: None,
            external_backup: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Master key and license copies (owner-only permissions).
    pub dir: PathBuf,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            dir: PathBuf::from("backups"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DrainConfig {
    pub wait_seconds: u64,
    /// Cancel what still runs at the deadline; otherwise undo and stop with a report.
    pub cancel_tasks: bool,
}

impl Default for DrainConfig {
    fn default() -> Self {
        DrainConfig {
            wait_seconds: 1800,
            cancel_tasks: false,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MaintenanceConfig {
    /// Leave maintenance mode on after a successful upgrade, for a person to verify (the vendor guide's choice).
    pub leave_on: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Journal, lock, logs and (by default) the installer cache.
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: PathBuf::from("octoup-state"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RollbackConfig {
    /// Stage the current version's installer so a rollback never needs the network.
    pub enabled: bool,
    /// Roll back automatically when a step at or after the database upgrade fails.
    pub automatic: bool,
    /// Hours a snapshot or copy is kept after a successful upgrade, so `octoup rollback`
    /// can still take the upgrade back; 0 releases it at once. `octoup finalize` releases
    /// it earlier.
    pub keep_hours: u64,
}

impl Default for RollbackConfig {
    fn default() -> Self {
        RollbackConfig {
            enabled: true,
            automatic: false,
            keep_hours: 0,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// HTTPS proxy URL for the feed and downloads.
    pub proxy: Option<String>,
    /// Extra CA certificates (PEM) to trust.
    pub ca_bundle: Option<PathBuf>,
    /// Accept plain `http://` for non-loopback hosts.
    pub allow_plain_http: bool,
}

/// Timeouts in seconds for each kind of step. Every external command has one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsConfig {
    pub command: u64,
    pub stop: u64,
    pub start: u64,
    pub backup: u64,
    pub install: u64,
    pub db_upgrade: u64,
    pub http: u64,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig {
            command: 120,
            stop: 600,
            start: 900,
            backup: 7200,
            install: 3600,
            db_upgrade: 7200,
            http: 30,
        }
    }
}

/// What to do when one node fails in a cluster upgrade.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Stop in a documented safe state; a re-run continues.
    #[default]
    Pause,
    /// Restore the database and the original version on every node.
    Rollback,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Start the primary alone first, as a canary, before the others (costs one start time).
    pub canary: bool,
    pub on_failure: OnFailure,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SshConfig {
    /// argv prefix of the OpenSSH client.
    pub program: Vec<String>,
    pub connect_timeout_seconds: u64,
    /// Extra `-o` options, e.g. `UserKnownHostsFile=...`.
    pub options: Vec<String>,
    /// How to run octoup on the remote node.
    pub remote_octoup: Vec<String>,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            program: vec!["ssh".into()],
            connect_timeout_seconds: 10,
            options: Vec::new(),
            remote_octoup: vec!["octoup".into()],
        }
    }
}

/// `[rehearsal]`: how `octoup rehearse` copies production and where the target version
/// runs against the copy (docs/rehearsal.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RehearsalConfig {
    /// The image the Docker host runs; `{version}` is the target. Pin a digest with
    /// `octopusdeploy/octopusdeploy:{version}@sha256:…` when you know it.
    pub image: String,
    /// argv prefix of the Docker CLI on the rehearsal host (`["ssh", "box", "docker"]` works
    /// too when the relay address is reachable from there; see docs/rehearsal.md).
    pub docker: Vec<String>,
    /// Where `RESTORE … WITH MOVE` puts the copy's files: a folder on the SQL Server.
    /// Empty: next to the backups (`[database] backup_dir`).
    pub data_dir: Option<PathBuf>,
    /// The scratch database's name prefix; the rehearsal id is appended.
    pub database_prefix: String,
    /// The SQL Server as the container reaches it, `host,port` (default: sqlcmd's `-S`).
    pub sql_server: Option<String>,
    /// The SQL login the container uses (default: sqlcmd's `-U`). Windows authentication
    /// cannot reach SQL Server from a Linux container.
    pub sql_login: Option<String>,
    /// That login's password file (default: `[database] password_file`).
    pub sql_password_file: Option<PathBuf>,
    /// Appended to the container's connection string (e.g. `Encrypt=True`).
    pub connection_options: String,
    /// The master key the copy is encrypted with; default: the newest `master-key-*.txt`
    /// octoup saved in `[backup] dir`.
    pub master_key_file: Option<PathBuf>,
    /// Reuse the newest verified rehearsal backup younger than this many hours (0: always
    /// take a fresh COPY_ONLY backup).
    pub reuse_backup_hours: u64,
    /// Minutes the migrations and the start may take before the rehearsal is no-go.
    pub start_timeout_minutes: u64,
    /// Where the target runs against the copy: a Docker engine, or a spare Windows node.
    pub host: RehearsalHost,
    /// `[rehearsal.windows]`: the spare Windows node (`host = "windows"`).
    pub windows: WindowsRehearsalConfig,
    /// `[rehearsal.sql]`: a separate SQL Server the copy is restored on; absent: production's.
    pub sql: Option<RehearsalSqlConfig>,
}

/// `[rehearsal.sql]`: the rehearsal SQL Server, described the way `[database]` describes
/// production's. Production's server only writes the COPY_ONLY backup; this one restores it
/// (from `backup_dir`, the same folder as it sees it), holds the copy and drops it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RehearsalSqlConfig {
    /// argv prefix, as `[database] sqlcmd`; octoup appends `-Q <T-SQL>`.
    pub sqlcmd: Vec<String>,
    /// `host,port` as the rehearsal host reaches it (default: this sqlcmd's `-S`); the
    /// default of `[rehearsal] sql_server`.
    pub server: Option<String>,
    /// The SQL login the rehearsal server uses (default: this sqlcmd's `-U`).
    pub login: Option<String>,
    /// The login's password, handed to sqlcmd only as `SQLCMDPASSWORD`.
    pub password_file: Option<PathBuf>,
    /// `[database] backup_dir` as this server sees it (e.g. a UNC share): production's server
    /// writes the backup there, this one reads it.
    pub backup_dir: Option<PathBuf>,
}

impl RehearsalSqlConfig {
    /// The server's name: `server`, else the sqlcmd argv's `-S` (what the journal records).
    pub(crate) fn server_name(&self) -> Option<&str> {
        self.server
            .as_deref()
            .or_else(|| sqlcmd_option(&self.sqlcmd, "-S"))
            .filter(|s| !s.trim().is_empty())
    }
}

/// `[rehearsal] host`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RehearsalHost {
    /// The vendor's Linux container on a Docker engine; secrets only in its environment.
    #[default]
    Docker,
    /// A spare Windows node: the staged MSI, a rehearsal instance, `database --upgrade`.
    Windows,
}

/// `[rehearsal.windows]`: the spare Windows node a rehearsal instance is made on. It is
/// never one of `[[nodes]]` (docs/rehearsal.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WindowsRehearsalConfig {
    /// `[rehearsal.windows.node]`: named the way `[[nodes]]` are (name, url, ssh,
    /// server_exe, install, uninstall); `url` is the node's address, whose port octoup
    /// replaces by `listen_port` to reach the rehearsal instance.
    pub node: Option<NodeConfig>,
    /// The rehearsal instance's name prefix; the rehearsal id is appended.
    pub instance_prefix: String,
    /// A folder on the spare node; each rehearsal instance gets its own folder in it.
    pub home: String,
    /// The port the rehearsal instance listens on (`configure --webListenPrefixes`).
    pub listen_port: u16,
    /// The operator's explicit consent to the one route the vendor documents:
    /// `database --masterKey=VALUE` (and the connection string) on the command line of
    /// `Octopus.Server.exe` on the spare node. Without it `host = "windows"` is refused.
    pub secret_arguments: bool,
    /// `Integrated Security=True` in the rehearsal instance's connection string (the
    /// spare node's service account logs in): no SQL password on the command line.
    pub integrated_security: bool,
}

impl Default for WindowsRehearsalConfig {
    fn default() -> Self {
        WindowsRehearsalConfig {
            node: None,
            instance_prefix: "OctoupRehearsal".into(),
            home: r"C:\Octopus\OctoupRehearsal".into(),
            listen_port: 8091,
            secret_arguments: false,
            integrated_security: false,
        }
    }
}

impl Default for RehearsalConfig {
    fn default() -> Self {
        RehearsalConfig {
            image: "octopusdeploy/octopusdeploy:{version}".into(),
            docker: vec!["docker".into()],
            data_dir: None,
            database_prefix: "OctopusRehearsal".into(),
            sql_server: None,
            sql_login: None,
            sql_password_file: None,
            connection_options: "TrustServerCertificate=True".into(),
            master_key_file: None,
            reuse_backup_hours: 0,
            start_timeout_minutes: 240,
            host: RehearsalHost::Docker,
            windows: WindowsRehearsalConfig::default(),
            sql: None,
        }
    }
}

/// How `doctor` (and the preflight of `plan` and `upgrade`) treats its findings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DoctorConfig {
    /// Warnings accepted by id (`octoup doctor` lists them); the journal records them.
    pub accept: Vec<String>,
    /// An unaccepted warning blocks the upgrade too (for unattended runs).
    pub strict: bool,
    /// The System Integrity Check before the outage and after the start.
    pub integrity_check: IntegrityCheck,
    /// Seconds to wait for the System Integrity Check task.
    pub integrity_timeout_seconds: u64,
    /// Cancel a `RecurringScheduledDeployments` task found stuck in the queue after the
    /// start (otherwise it is reported).
    pub cancel_stuck_triggers: bool,
    /// A `RecurringScheduledDeployments` task queued longer than this is stuck.
    pub stuck_task_minutes: u64,
    /// `octoup verify --upgrade-tentacles`: machines per Upgrade task after the canary.
    pub tentacle_batch: usize,
    /// Seconds to wait for each Tentacle Upgrade task.
    pub tentacle_timeout_seconds: u64,
}

impl Default for DoctorConfig {
    fn default() -> Self {
        DoctorConfig {
            accept: Vec::new(),
            strict: false,
            integrity_check: IntegrityCheck::Warning,
            integrity_timeout_seconds: 600,
            cancel_stuck_triggers: false,
            stuck_task_minutes: 10,
            tentacle_batch: 10,
            tentacle_timeout_seconds: 1800,
        }
    }
}

/// What a failed System Integrity Check is.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum IntegrityCheck {
    /// Not run.
    Off,
    /// A failure is a warning.
    #[default]
    Warning,
    /// A failure blocks the upgrade.
    Blocker,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    pub name: String,
    /// The node's own address, for ping and `/api`.
    pub url: String,
    /// `user@host`; absent: the node is this machine.
    pub ssh: Option<String>,
    pub primary: bool,
    pub server_exe: Option<Vec<String>>,
    pub instance: Option<String>,
    pub install: Option<Vec<String>>,
    pub uninstall: Option<Vec<String>>,
    /// Config file for octoup on the remote node (ssh only).
    pub remote_config: Option<String>,
}

impl Config {
    /// Reads and validates a config file; relative paths become relative to its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Config::parse_file(&text, path)?;
        let base = path.parent().unwrap_or(Path::new(""));
        config.resolve_paths(base);
        Ok(config)
    }

    /// Parses and validates config text (paths stay as written).
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_file(text, Path::new("<config>"))
    }

    /// Parses and validates the text of `file` (named in errors, with line and column).
    fn parse_file(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let source = Source::new(text, file);
        if let Some(d) = source.forbidden_key() {
            return Err(ConfigError::Parse(d));
        }
        let config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse(source.toml_error(&e)))?;
        config
            .validate()
            .map_err(|p| ConfigError::Parse(source.problem(p)))?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = self.server.api_key_file.as_mut() {
            fix(p)
        }
        if let Some(p) = self.database.password_file.as_mut() {
            fix(p)
        }
        fix(&mut self.database.backup_dir);
        for p in [
            self.database.snapshot_dir.as_mut(),
            self.database.sas_token_file.as_mut(),
            self.rehearsal.data_dir.as_mut(),
            self.rehearsal.sql_password_file.as_mut(),
            self.rehearsal.master_key_file.as_mut(),
            self.rehearsal
                .sql
                .as_mut()
                .and_then(|s| s.password_file.as_mut()),
        ]
        .into_iter()
        .flatten()
        {
            fix(p)
        }
        fix(&mut self.backup.dir);
        fix(&mut self.state.dir);
        if let Some(p) = self.installer.cache_dir.as_mut() {
            fix(p)
        }
        if let Some(p) = self.network.ca_bundle.as_mut() {
            fix(p)
        }
        for hook in &mut self.notify {
            if let Some(p) = hook.url_file.as_mut() {
                fix(p)
            }
        }
        if !self.versions.feed.contains("://") {
            let mut feed = PathBuf::from(&self.versions.feed);
            fix(&mut feed);
            self.versions.feed = feed.to_string_lossy().into_owned();
        }
    }

    /// Applies `OCTOPUS_URL` (the API key is resolved by [`Config::api_key`]).
    pub fn apply_env(&mut self, env: &EnvOverrides) {
        if let Some(url) = &env.url {
            self.server.url = Some(url.clone());
        }
    }

    pub fn server_url(&self) -> Result<&str, ConfigError> {
        self.server
            .url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .ok_or(ConfigError::MissingUrl)
    }

    /// The API key: `OCTOPUS_API_KEY` wins over `[server] api_key_file`.
    pub fn api_key(&self, env: &EnvOverrides) -> Result<Secret, ConfigError> {
        if let Some(key) = env.api_key.as_ref().filter(|k| !k.is_empty()) {
            return Ok(key.clone());
        }
        let path = self
            .server
            .api_key_file
            .as_ref()
            .ok_or(ConfigError::MissingApiKey)?;
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ApiKeyFile {
            path: path.clone(),
            source,
        })?;
        let key = text.trim();
        if key.is_empty() {
            return Err(ConfigError::MissingApiKey);
        }
        Ok(Secret::new(key))
    }

    /// The SQL password, when a password file is configured.
    pub(crate) fn sql_password(&self) -> Result<Option<Secret>, ConfigError> {
        self.database
            .password_file
            .as_deref()
            .map(read_sql_password)
            .transpose()
    }

    /// The SAS token for `[database] url`, when octoup is to create the credential.
    pub(crate) fn sas_token(&self) -> Result<Option<Secret>, ConfigError> {
        let Some(path) = &self.database.sas_token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::SasTokenFile {
            path: path.clone(),
            source,
        })?;
        // Portals show the token with its leading `?`; the credential takes it without.
        let token = text.trim().trim_start_matches('?');
        if token.is_empty() || token.contains(['\'', '\n', '\r', '$', ' ']) {
            return Err(ConfigError::SasTokenFile {
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "it must hold one SAS token (sv=…&sig=…) on one line",
                ),
            });
        }
        Ok(Some(Secret::new(token)))
    }

    /// The download cache directory.
    pub(crate) fn cache_dir(&self) -> PathBuf {
        self.installer
            .cache_dir
            .clone()
            .unwrap_or_else(|| self.state.dir.join("cache"))
    }

    /// The nodes to upgrade: `[[nodes]]`, or this machine as the one node.
    /// Exactly one is primary (the first when none is marked).
    pub(crate) fn effective_nodes(&self) -> Result<Vec<NodeConfig>, ConfigError> {
        let mut nodes = if self.nodes.is_empty() {
            vec![NodeConfig {
                name: String::new(),
                url: self.server_url()?.to_string(),
                primary: true,
                ..NodeConfig::default()
            }]
        } else {
            self.nodes.clone()
        };
        if !nodes.iter().any(|n| n.primary) {
            nodes[0].primary = true;
        }
        Ok(nodes)
    }

    /// The argv prefix of `Octopus.Server.exe` for a node.
    pub(crate) fn server_exe_for<'a>(&'a self, node: &'a NodeConfig) -> &'a [String] {
        node.server_exe
            .as_deref()
            .unwrap_or(&self.server.server_exe)
    }

    pub(crate) fn instance_for<'a>(&'a self, node: &'a NodeConfig) -> &'a str {
        node.instance.as_deref().unwrap_or(&self.server.instance)
    }

    pub(crate) fn install_for<'a>(&'a self, node: &'a NodeConfig) -> &'a [String] {
        node.install.as_deref().unwrap_or(&self.installer.install)
    }

    pub(crate) fn uninstall_for<'a>(&'a self, node: &'a NodeConfig) -> &'a [String] {
        node.uninstall
            .as_deref()
            .unwrap_or(&self.installer.uninstall)
    }
}

/// A SQL password file's content (its line ending is not part of the password).
pub(crate) fn read_sql_password(path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::PasswordFile {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Secret::new(text.trim_end_matches(['\r', '\n'])))
}

#[cfg(test)]
mod tests;
