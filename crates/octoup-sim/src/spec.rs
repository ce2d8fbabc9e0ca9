//! The spec file (`octoup-sim up --spec FILE`): how the simulated installation looks and
//! behaves. Every key is optional; unknown keys are an error naming the key.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::faults::FaultSpec;

/// Default installed version (binary and schema on every node).
pub(crate) const DEFAULT_VERSION: &str = "2024.1.10";

/// Why a spec file could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpecError {
    #[error("cannot read spec file {path}: {source}; check the path")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "spec file {path} is not valid: {message}; fix the key named above (see docs/simulator.md)"
    )]
    Parse { path: String, message: String },
    #[error("spec is not valid: {0}; fix it (see docs/simulator.md)")]
    Invalid(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Spec {
    /// Real seconds per simulated second.
    pub time_scale: f64,
    /// Installed version and schema version on every node.
    pub version: String,
    pub nodes: u32,
    /// Spare Windows nodes (`OCTO-SPARE-01` …): not part of the installation, for the
    /// Windows rehearsal host; `up` names the first in `[rehearsal.windows.node]`.
    pub spare_nodes: u32,
    /// A second SQL Server for rehearsals (`DIR/rehearsal-sql`, its own port and
    /// password); `up` writes a matching `[rehearsal.sql]`.
    pub rehearsal_sql_server: bool,
    pub durations: Durations,
    pub license: LicenseSpec,
    pub server: ServerSpec,
    pub machines: Vec<MachineSpec>,
    pub installer: InstallerSpec,
    pub feed: FeedSpec,
    pub database: DatabaseSpec,
    pub workload: Vec<WorkloadSpec>,
    pub faults: Vec<FaultSpec>,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            time_scale: 0.01,
            version: DEFAULT_VERSION.to_string(),
            nodes: 1,
            spare_nodes: 0,
            rehearsal_sql_server: false,
            durations: Durations::default(),
            license: LicenseSpec::default(),
            server: ServerSpec::default(),
            machines: Vec::new(),
            installer: InstallerSpec::default(),
            feed: FeedSpec::default(),
            database: DatabaseSpec::default(),
            workload: Vec::new(),
            faults: Vec::new(),
        }
    }
}

/// Durations of the slow operations, in simulated seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Durations {
    pub stop: f64,
    pub start: f64,
    /// `None`: from the database's size and the backup's options (`standins::sqlcmd::timing`).
    pub backup: Option<f64>,
    pub verify: Option<f64>,
    pub restore: Option<f64>,
    pub install: f64,
    pub db_upgrade: f64,
    /// A stopped node still counts as running for `database --upgrade` this long.
    pub node_stale_after: f64,
    /// Set: a schema migration takes this many simulated seconds per GB of `size_gb` per
    /// release step (each `major.minor` passed) instead of `db_upgrade`.
    pub migration_per_gb_step: Option<f64>,
}

impl Durations {
    /// Simulated seconds a schema migration from `from` to `to` takes for a database of
    /// `size_gb`: `db_upgrade`, or with `migration_per_gb_step` that × size × the release
    /// steps (each distinct `major.minor` of `releases` and `to` above `from`'s, at least 1).
    /// One rule for `database --upgrade` and the container.
    pub(crate) fn migration_seconds(
        &self,
        size_gb: f64,
        from: &str,
        to: &str,
        releases: &[FeedEntry],
    ) -> f64 {
        let Some(per) = self.migration_per_gb_step else {
            return self.db_upgrade;
        };
        let minor = |v: &str| -> (u64, u64) {
            let mut parts = v.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
            (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
        };
        let (low, high) = (minor(from), minor(to));
        let mut passed: Vec<(u64, u64)> = releases
            .iter()
            .map(|r| minor(&r.version))
            .chain([high])
            .filter(|m| *m > low && *m <= high)
            .collect();
        passed.sort();
        passed.dedup();
        per * size_gb * passed.len().max(1) as f64
    }
}

impl Default for Durations {
    fn default() -> Self {
        Durations {
            stop: 10.0,
            start: 30.0,
            backup: None,
            verify: None,
            restore: None,
            install: 90.0,
            db_upgrade: 120.0,
            node_stale_after: 5.0,
            migration_per_gb_step: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LicenseSpec {
    /// `yyyy-MM-dd`.
    pub maintenance_expires: String,
    /// What `/api/serverstatus` reports as `MaximumAvailableVersionCoveredByLicense`.
    pub max_version_covered: String,
    /// The term's end (`EffectiveExpiryDate`, `yyyy-MM-dd`); absent: a year after the
    /// installation was created.
    pub expires: Option<String>,
    /// The license's node limit; absent: the number of nodes.
    pub node_limit: Option<u32>,
}

impl Default for LicenseSpec {
    fn default() -> Self {
        LicenseSpec {
            maintenance_expires: "2025-03-31".to_string(),
            max_version_covered: "2024.4.9999".to_string(),
            expires: None,
            node_limit: None,
        }
    }
}

/// The host and the server's own checks (see docs/simulator.md, `[server]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSpec {
    /// What `/api/serverstatus/system-info` reports as `OSVersion`.
    pub os_version: String,
    /// What the System Integrity Check reports before the upgrade; empty: it passes.
    pub integrity_errors: Vec<String>,
    /// After the schema upgrade; absent: the same as before.
    pub integrity_errors_after_upgrade: Option<Vec<String>>,
    /// The Tentacle version the server bundles (machines below it need an upgrade).
    pub tentacle_version: String,
    /// After the schema upgrade a `RecurringScheduledDeployments` task sits in the queue
    /// and never starts (OctopusDeploy/Issues#8485).
    pub stuck_triggers_after_upgrade: bool,
    /// An Early Access Program build: `/api` then carries `IsEarlyAccessProgram: true`
    /// (Octopus leaves the field out when it is false).
    pub early_access_program: bool,
}

impl Default for ServerSpec {
    fn default() -> Self {
        ServerSpec {
            os_version: "Microsoft Windows NT 10.0.20348.0".to_string(),
            integrity_errors: Vec::new(),
            integrity_errors_after_upgrade: None,
            tentacle_version: "8.1.2".to_string(),
            stuck_triggers_after_upgrade: false,
            early_access_program: false,
        }
    }
}

/// A deployment target or worker (`[[machines]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MachineSpec {
    pub name: String,
    /// The space's name; `Default` is `Spaces-1`, others are created as named.
    pub space: String,
    /// `target` (under `/machines`) or `worker` (under `/workers`).
    pub role: String,
    /// `OperatingSystem` as Octopus reports it.
    pub os: String,
    /// `OperatingSystemVersion`.
    pub os_version: String,
    pub tentacle_version: String,
    /// Calamari is current (`HasLatestCalamari`).
    pub calamari_current: bool,
    /// What the vendor's `Upgrade` task does to it: `ok`, `fails` (the task fails), or
    /// `reports-success-but-fails` (the task succeeds, the version stays; Issues#2468).
    pub upgrade: String,
}

impl Default for MachineSpec {
    fn default() -> Self {
        MachineSpec {
            name: String::new(),
            space: "Default".to_string(),
            role: "target".to_string(),
            os: "Microsoft Windows Server 2019 Datacenter".to_string(),
            os_version: "10.0.17763".to_string(),
            tentacle_version: "8.1.2".to_string(),
            calamari_current: true,
            upgrade: "ok".to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstallerSpec {
    /// Bytes of each generated installer.
    pub size: u64,
}

impl Default for InstallerSpec {
    fn default() -> Self {
        InstallerSpec { size: 1_048_576 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedSpec {
    /// The feed's entries, in the order served (unsorted on purpose).
    pub versions: Vec<FeedEntry>,
}

impl Default for FeedSpec {
    fn default() -> Self {
        FeedSpec {
            versions: default_feed(),
        }
    }
}

/// One element of `download/upgrade/v3`: the only two fields public consumers rely on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedEntry {
    #[serde(rename = "Version")]
    pub version: String,
    /// `yyyy-MM-dd`.
    #[serde(rename = "Released")]
    pub released: String,
}

/// The default feed: every line octoup must reason about, deliberately not sorted, with a
/// patch of an older line released after the first build of a newer one.
pub(crate) fn default_feed() -> Vec<FeedEntry> {
    [
        ("2024.1.10", "2024-03-11"),
        ("2023.4.8166", "2023-12-04"),
        ("2024.2.9409", "2024-06-10"),
        ("2024.1.12", "2024-04-22"),
        ("2024.3.12741", "2024-09-16"),
        ("2023.4.8440", "2024-02-19"),
        ("2025.1.5319", "2025-01-27"),
        ("2024.2.9550", "2024-07-15"),
        ("2024.3.13050", "2025-02-10"),
        ("2024.1.9", "2024-03-04"),
        ("2025.1.5501", "2025-03-10"),
    ]
    .into_iter()
    .map(|(version, released)| FeedEntry {
        version: version.to_string(),
        released: released.to_string(),
    })
    .collect()
}

/// Where the simulated SQL Server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hosting {
    SelfManaged,
    AzureSqlDatabase,
    AzureSqlManagedInstance,
    AmazonRds,
    GoogleCloudSql,
}

/// The SQL Server and the Octopus database as the sqlcmd stand-in reports them (`[database]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSpec {
    pub hosting: Hosting,
    /// `SERVERPROPERTY('ProductVersion')`; default 15.0.4322.2 (2019 CU22), or Azure's
    /// 12.0.2000.8 for the Azure hostings.
    pub sql_version: Option<String>,
    /// `SERVERPROPERTY('Edition')`; default "Developer Edition (64-bit)", "SQL Azure" on Azure.
    pub edition: Option<String>,
    pub compatibility_level: u32,
    /// The database's default collation.
    pub collation: String,
    /// `Table.Column`s on another collation.
    pub collation_mismatches: Vec<String>,
    /// Used data, log file size, free log space, free space where backups go (GB = 10^9 B).
    pub size_gb: f64,
    pub log_size_gb: f64,
    pub log_free_gb: f64,
    pub backup_free_gb: f64,
    /// Instant file initialization for the service.
    pub ifi: bool,
    /// The login may BACKUP the database.
    pub can_backup: bool,
    /// The login may RESTORE over it (sysadmin or the owner).
    pub can_restore: bool,
    /// The login has CREATE ANY DATABASE (RESTORE VERIFYONLY, snapshots).
    pub can_create_database: bool,
    /// The login has VIEW SERVER STATE (`sys.dm_server_services`, `sys.dm_os_volume_stats`).
    pub view_server_state: bool,
    /// Plain backup rate in MB/s as SQL Server reports it (MB = 2^20 B); reference §4: 75.
    pub throughput_mb_s: f64,
    /// Free space on the data files' volume; `None`: `backup_free_gb` (one volume).
    pub data_free_gb: Option<f64>,
    /// Logical names of the ROWS files; empty: one file named after the database.
    pub data_files: Vec<String>,
    pub filestream: bool,
    pub memory_optimized: bool,
    /// Non-empty: the database is in this availability group (`replica_id` not NULL).
    pub availability_group: String,
    /// RDS Multi-AZ (database mirroring): `rds_modify_db_name` refused.
    pub multi_az: bool,
    /// Azure SQL Database copy rate, MB/s.
    pub copy_mb_s: f64,
    /// Names of snapshots of the database that exist before octoup runs.
    pub existing_snapshots: Vec<String>,
    /// Names (container URLs) of credentials that exist before octoup runs.
    pub credentials: Vec<String>,
    /// Enabled `Subscription` and `ProjectTrigger` rows in the Octopus database.
    pub subscriptions: u32,
    pub project_triggers: u32,
    /// `ExtensionConfiguration` ids.
    pub extensions: Vec<String>,
    /// Non-empty: a data-dependent migration failure the next schema upgrade hits.
    pub migration_failure: String,
}

impl Default for DatabaseSpec {
    fn default() -> Self {
        DatabaseSpec {
            hosting: Hosting::SelfManaged,
            sql_version: None,
            edition: None,
            compatibility_level: 150,
            collation: "SQL_Latin1_General_CP1_CI_AS".into(),
            collation_mismatches: Vec::new(),
            size_gb: 2.0,
            log_size_gb: 1.0,
            log_free_gb: 0.9,
            backup_free_gb: 500.0,
            ifi: true,
            can_backup: true,
            can_restore: true,
            can_create_database: true,
            view_server_state: true,
            throughput_mb_s: 75.0,
            data_free_gb: None,
            data_files: Vec::new(),
            filestream: false,
            memory_optimized: false,
            availability_group: String::new(),
            multi_az: false,
            copy_mb_s: 50.0,
            existing_snapshots: Vec::new(),
            credentials: Vec::new(),
            subscriptions: 2,
            project_triggers: 3,
            extensions: [
                "authentication-octopusid",
                "jira-integration",
                "authentication-usernamepassword",
            ]
            .map(String::from)
            .to_vec(),
            migration_failure: String::new(),
        }
    }
}

impl DatabaseSpec {
    fn azure(&self) -> bool {
        matches!(
            self.hosting,
            Hosting::AzureSqlDatabase | Hosting::AzureSqlManagedInstance
        )
    }

    pub(crate) fn product_version(&self) -> String {
        self.sql_version.clone().unwrap_or_else(|| {
            if self.azure() {
                "12.0.2000.8"
            } else {
                "15.0.4322.2"
            }
            .to_string()
        })
    }

    /// The logical names of the ROWS files.
    pub(crate) fn data_file_names(&self, database: &str) -> Vec<String> {
        if self.data_files.is_empty() {
            vec![database.to_string()]
        } else {
            self.data_files.clone()
        }
    }

    pub(crate) fn edition(&self) -> String {
        self.edition.clone().unwrap_or_else(|| {
            if self.azure() {
                "SQL Azure"
            } else {
                "Developer Edition (64-bit)"
            }
            .to_string()
        })
    }

    /// `SERVERPROPERTY('EngineEdition')`.
    pub(crate) fn engine_edition(&self) -> u32 {
        match self.hosting {
            Hosting::AzureSqlDatabase => 5,
            Hosting::AzureSqlManagedInstance => 8,
            _ => {
                let e = self.edition();
                if e.starts_with("Express") {
                    4
                } else if e.starts_with("Standard") || e.starts_with("Web") {
                    2
                } else {
                    3
                }
            }
        }
    }

    fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("size_gb", self.size_gb),
            ("log_size_gb", self.log_size_gb),
            ("log_free_gb", self.log_free_gb),
            ("backup_free_gb", self.backup_free_gb),
            ("data_free_gb", self.data_free_gb.unwrap_or(0.0)),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("database.{name} must be >= 0, got {v}"));
            }
        }
        for (name, v) in [
            ("throughput_mb_s", self.throughput_mb_s),
            ("copy_mb_s", self.copy_mb_s),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("database.{name} must be > 0, got {v}"));
            }
        }
        if self.log_free_gb > self.log_size_gb {
            return Err(format!(
                "database.log_free_gb ({}) is more than log_size_gb ({})",
                self.log_free_gb, self.log_size_gb
            ));
        }
        if self.can_restore && !self.can_backup {
            return Err(
                "database.can_restore = true needs can_backup = true (the owner may back up)"
                    .into(),
            );
        }
        for m in &self.collation_mismatches {
            if m.split('.').count() != 2 || m.split('.').any(str::is_empty) {
                return Err(format!(
                    "database.collation_mismatches: {m:?} is not \"Table.Column\""
                ));
            }
        }
        if let Some(v) = &self.sql_version
            && !v.split('.').all(|p| p.parse::<u32>().is_ok())
        {
            return Err(format!(
                "database.sql_version {v:?} is not a ProductVersion like 15.0.4322.2"
            ));
        }
        Ok(())
    }
}

/// A task the installation runs so a drain has something to wait for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadSpec {
    /// Node name; any node when absent.
    pub node: Option<String>,
    /// Simulated seconds the task executes.
    pub duration: f64,
    /// `Executing` (already running at start) or `Queued`.
    pub state: String,
    pub name: String,
    pub description: Option<String>,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            node: None,
            duration: 30.0,
            state: "Executing".to_string(),
            name: "Deploy".to_string(),
            description: None,
        }
    }
}

impl Spec {
    /// Reads and validates a spec file.
    pub(crate) fn load(path: &Path) -> Result<Spec, SpecError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: shown.clone(),
            source,
        })?;
        let spec: Spec = toml::from_str(&text).map_err(|e| SpecError::Parse {
            path: shown,
            message: e.message().to_string(),
        })?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks values serde cannot: ranges, version strings, node names in workload/faults.
    pub(crate) fn validate(&self) -> Result<(), SpecError> {
        let bad = |m: String| Err(SpecError::Invalid(m));
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return bad(format!(
                "time_scale must be a positive number, got {}",
                self.time_scale
            ));
        }
        if let Some(per) = self.durations.migration_per_gb_step
            && !(per.is_finite() && per >= 0.0)
        {
            return bad(format!(
                "durations.migration_per_gb_step must be >= 0, got {per}"
            ));
        }
        if self.spare_nodes > 9 {
            return bad(format!(
                "spare_nodes must be 0..=9, got {}",
                self.spare_nodes
            ));
        }
        if self.nodes == 0 || self.nodes > 99 {
            return bad(format!("nodes must be 1..=99, got {}", self.nodes));
        }
        if !crate::version::is_valid(&self.version) {
            return bad(format!("version {:?} is not YYYY.N.BUILD", self.version));
        }
        if !crate::version::is_valid(&self.license.max_version_covered) {
            return bad(format!(
                "license.max_version_covered {:?} is not YYYY.N.BUILD",
                self.license.max_version_covered
            ));
        }
        if jiff::civil::Date::strptime("%Y-%m-%d", &self.license.maintenance_expires).is_err() {
            return bad(format!(
                "license.maintenance_expires {:?} is not yyyy-MM-dd",
                self.license.maintenance_expires
            ));
        }
        if let Some(expires) = &self.license.expires
            && jiff::civil::Date::strptime("%Y-%m-%d", expires).is_err()
        {
            return bad(format!("license.expires {expires:?} is not yyyy-MM-dd"));
        }
        if self.license.node_limit == Some(0) {
            return bad("license.node_limit must be at least 1".to_string());
        }
        let mut seen = Vec::new();
        for m in &self.machines {
            if m.name.trim().is_empty() {
                return bad("every [[machines]] entry needs a name".to_string());
            }
            if seen.contains(&(&m.space, &m.name)) {
                return bad(format!(
                    "machine {:?} is listed twice in space {:?}",
                    m.name, m.space
                ));
            }
            seen.push((&m.space, &m.name));
            if m.role != "target" && m.role != "worker" {
                return bad(format!(
                    "machine {:?}: role must be \"target\" or \"worker\", got {:?}",
                    m.name, m.role
                ));
            }
            if !["ok", "fails", "reports-success-but-fails"].contains(&m.upgrade.as_str()) {
                return bad(format!(
                    "machine {:?}: upgrade must be \"ok\", \"fails\" or \"reports-success-but-fails\", got {:?}",
                    m.name, m.upgrade
                ));
            }
        }
        self.database.validate().map_err(SpecError::Invalid)?;
        let d = &self.durations;
        for (name, value) in [
            ("stop", d.stop),
            ("start", d.start),
            ("backup", d.backup.unwrap_or(0.0)),
            ("verify", d.verify.unwrap_or(0.0)),
            ("restore", d.restore.unwrap_or(0.0)),
            ("install", d.install),
            ("db_upgrade", d.db_upgrade),
            ("node_stale_after", d.node_stale_after),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return bad(format!("durations.{name} must be >= 0, got {value}"));
            }
        }
        for entry in &self.feed.versions {
            if !crate::version::is_valid(&entry.version) {
                return bad(format!(
                    "feed version {:?} is not YYYY.N.BUILD",
                    entry.version
                ));
            }
        }
        let names = self.node_names();
        for w in &self.workload {
            if let Some(node) = &w.node
                && !names.contains(node)
            {
                return bad(format!(
                    "workload node {node:?} does not exist (nodes: {})",
                    names.join(", ")
                ));
            }
            if w.state != "Executing" && w.state != "Queued" {
                return bad(format!(
                    "workload state must be \"Executing\" or \"Queued\", got {:?}",
                    w.state
                ));
            }
            if !(w.duration.is_finite() && w.duration >= 0.0) {
                return bad(format!(
                    "workload duration must be >= 0, got {}",
                    w.duration
                ));
            }
        }
        for f in &self.faults {
            if let Some(node) = &f.node
                && !names.contains(node)
            {
                return bad(format!(
                    "fault node {node:?} does not exist (nodes: {})",
                    names.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// `OCTO-NODE-01` … `OCTO-NODE-NN`.
    pub(crate) fn node_names(&self) -> Vec<String> {
        (1..=self.nodes).map(node_name).collect()
    }
}

/// `OCTO-SPARE-01` … for `spare_nodes`.
pub(crate) fn spare_node_names(spec: &Spec) -> Vec<String> {
    (1..=spec.spare_nodes)
        .map(|n| format!("OCTO-SPARE-{n:02}"))
        .collect()
}

/// The name of node number `n` (1-based).
pub(crate) fn node_name(n: u32) -> String {
    format!("OCTO-NODE-{n:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_spec_has_the_documented_defaults() {
        let spec: Spec = toml::from_str("").unwrap();
        assert_eq!(spec, Spec::default());
        assert_eq!(spec.version, "2024.1.10");
        assert_eq!(spec.durations.db_upgrade, 120.0);
        assert_eq!(spec.license.max_version_covered, "2024.4.9999");
        spec.validate().unwrap();
        // The default feed is unsorted and covers the lines the docs promise.
        let versions: Vec<&str> = spec
            .feed
            .versions
            .iter()
            .map(|e| e.version.as_str())
            .collect();
        let mut sorted = versions.clone();
        sorted.sort_by(|a, b| crate::version::compare(a, b));
        assert_ne!(versions, sorted);
        for line in ["2023.4.", "2024.1.", "2024.2.", "2024.3.", "2025.1."] {
            assert!(versions.iter().any(|v| v.starts_with(line)), "{line}");
        }
        assert!(versions.contains(&DEFAULT_VERSION));
    }

    #[test]
    fn full_spec_parses() {
        let text = r#"
time_scale = 0.001
version = "2024.2.9409"
nodes = 3
[durations]
stop = 1
db_upgrade = 5.5
[license]
maintenance_expires = "2026-01-31"
max_version_covered = "2025.4.9999"
[installer]
size = 4096
[feed]
versions = [ { Version = "2024.2.9409", Released = "2024-06-10" } ]
[[workload]]
node = "OCTO-NODE-02"
duration = 30
state = "Queued"
name = "Deploy"
[[faults]]
op = "msiexec"
action = "exit:1603"
node = "OCTO-NODE-01"
times = 2
"#;
        let spec: Spec = toml::from_str(text).unwrap();
        spec.validate().unwrap();
        assert_eq!(spec.nodes, 3);
        assert_eq!(spec.durations.start, 30.0);
        assert_eq!(spec.durations.db_upgrade, 5.5);
        assert_eq!(spec.feed.versions.len(), 1);
        assert_eq!(spec.faults[0].times, 2);
        assert_eq!(spec.node_names()[2], "OCTO-NODE-03");
    }

    #[test]
    fn the_database_section_parses_defaults_by_hosting_and_checks_values() {
        let spec: Spec = toml::from_str(
            "[database]\nhosting = \"azure-sql-database\"\ncollation_mismatches = [\"Event.Name\"]\nsize_gb = 40\n",
        )
        .unwrap();
        spec.validate().unwrap();
        assert_eq!(spec.database.product_version(), "12.0.2000.8");
        assert_eq!(spec.database.edition(), "SQL Azure");
        assert_eq!(spec.database.engine_edition(), 5);
        let d = DatabaseSpec::default();
        assert_eq!(
            (d.product_version(), d.engine_edition()),
            ("15.0.4322.2".into(), 3)
        );
        let express = DatabaseSpec {
            edition: Some("Express Edition (64-bit)".into()),
            ..DatabaseSpec::default()
        };
        assert_eq!(express.engine_edition(), 4);
        for bad in [
            "[database]\nhosting = \"on-a-floppy\"",
            "[database]\ncan_restorr = false",
        ] {
            assert!(toml::from_str::<Spec>(bad).is_err(), "{bad}");
        }
        for (bad, named) in [
            ("[database]\ncollation_mismatches = [\"NoDot\"]", "NoDot"),
            ("[database]\nlog_free_gb = 5", "log_free_gb"),
            ("[database]\nsql_version = \"2019\"", ""),
            ("[database]\ncan_backup = false", "can_backup"),
            ("[database]\nsize_gb = -1", "size_gb"),
        ] {
            let spec: Spec = toml::from_str(bad).unwrap();
            if named.is_empty() {
                spec.validate().unwrap();
            } else {
                let e = spec.validate().unwrap_err().to_string();
                assert!(e.contains(named), "{bad}: {e}");
            }
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = toml::from_str::<Spec>("nodez = 2").unwrap_err();
        assert!(err.to_string().contains("nodez"), "{err}");
        let err = toml::from_str::<Spec>("[durations]\nstopp = 2").unwrap_err();
        assert!(err.to_string().contains("stopp"), "{err}");
        let spec: Spec = toml::from_str("[[workload]]\nnode = \"OCTO-NODE-07\"").unwrap();
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("OCTO-NODE-07")
        );
        let spec: Spec = toml::from_str("time_scale = 0").unwrap();
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("time_scale")
        );
        assert!(toml::from_str::<Spec>("[[faults]]\nop = \"bogus\"\naction = \"hang\"").is_err());
    }

    #[test]
    fn server_machines_and_license_keys() {
        let spec: Spec = toml::from_str(
            "[server]\nos_version = \"Unix 5.15\"\nintegrity_errors = [\"x\"]\n\
             [license]\nexpires = \"2027-01-31\"\nnode_limit = 2\n\
             [[machines]]\nname = \"web-01\"\nupgrade = \"reports-success-but-fails\"\n\
             [[machines]]\nname = \"w\"\nrole = \"worker\"\nspace = \"Ops\"\n",
        )
        .unwrap();
        spec.validate().unwrap();
        assert_eq!(spec.machines[0].space, "Default");
        assert_eq!(spec.server.tentacle_version, "8.1.2");
        let bad = |text: &str, named: &str| {
            let spec: Spec = toml::from_str(text).unwrap();
            let e = spec.validate().unwrap_err().to_string();
            assert!(e.contains(named), "{e}");
        };
        bad("[[machines]]\nname = \"a\"\nrole = \"server\"", "role");
        bad("[[machines]]\nname = \"a\"\nupgrade = \"maybe\"", "upgrade");
        bad(
            "[[machines]]\nname = \"a\"\n[[machines]]\nname = \"a\"",
            "twice",
        );
        bad("[license]\nexpires = \"soon\"", "license.expires");
        assert!(toml::from_str::<Spec>("[server]\nos = 1").is_err());
    }

    #[test]
    fn migration_seconds_follow_one_rule() {
        let feed = default_feed();
        let plain = Durations::default();
        assert_eq!(
            plain.migration_seconds(100.0, "2024.1.10", "2025.1.1", &feed),
            120.0
        );
        let per = Durations {
            migration_per_gb_step: Some(2.0),
            ..Durations::default()
        };
        // 2024.2 passed: one step.
        assert_eq!(
            per.migration_seconds(10.0, "2024.1.10", "2024.2.9409", &feed),
            20.0
        );
        // Without a feed only the target release is known: one step.
        assert_eq!(
            per.migration_seconds(10.0, "2024.1.10", "2025.1.1", &[]),
            20.0
        );
        let steps = per.migration_seconds(1.0, "2024.1.10", "2025.1.1", &feed) / 2.0;
        assert!(steps >= 3.0, "{steps}");
        // A build of the same release is still one step.
        assert_eq!(
            per.migration_seconds(1.0, "2024.1.10", "2024.1.20", &feed),
            2.0
        );
    }
}
