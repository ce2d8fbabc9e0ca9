//! What the server tells about itself that decides the strategy: the hosting, the version
//! and edition, and what would stop a database snapshot (another snapshot, FILESTREAM or
//! memory-optimized data, an availability group, too little free space). The queries are
//! small and separate: one that fails leaves its fact unknown, and an unknown fact never
//! counts as "fine" (`auto` then falls back to the native backup and says why).

use serde::{Deserialize, Serialize};

use super::sql::{Call, Sql};
use super::sqlcmd_output::{self as out, Row};
use super::tsql::{self, quote_string};
use crate::process::runner::CommandRunner;

/// The hosting, as `[database]` facts and the doctor name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hosting {
    SelfManaged,
    AzureSqlDatabase,
    AzureSqlManagedInstance,
    AmazonRds,
    GoogleCloudSql,
}

impl Hosting {
    /// The doctor's name for it (`self-managed`, …).
    pub fn parse(name: &str) -> Option<Hosting> {
        [
            Hosting::SelfManaged,
            Hosting::AzureSqlDatabase,
            Hosting::AzureSqlManagedInstance,
            Hosting::AmazonRds,
            Hosting::GoogleCloudSql,
        ]
        .into_iter()
        .find(|h| h.name() == name)
    }

    /// The hosting `SERVERPROPERTY('EngineEdition')` and an `rdsadmin` database tell;
    /// `None` for an edition octoup does not know.
    pub fn from_engine_edition(engine_edition: u32, rdsadmin: bool) -> Option<Hosting> {
        match engine_edition {
            5 => Some(Hosting::AzureSqlDatabase),
            8 => Some(Hosting::AzureSqlManagedInstance),
            // RDS instances carry the `rdsadmin` database (its procedures run backups); **inf**.
            _ if rdsadmin => Some(Hosting::AmazonRds),
            1..=4 => Some(Hosting::SelfManaged),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Hosting::SelfManaged => "self-managed",
            Hosting::AzureSqlDatabase => "azure-sql-database",
            Hosting::AzureSqlManagedInstance => "azure-sql-managed-instance",
            Hosting::AmazonRds => "amazon-rds",
            Hosting::GoogleCloudSql => "google-cloud-sql",
        }
    }
}

/// What the choice of strategy rests on; `None` where the server did not tell.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Detected {
    pub hosting: Option<Hosting>,
    /// `SERVERPROPERTY('ProductVersion')`, e.g. `15.0.4322.2`.
    pub product_version: Option<String>,
    /// `SERVERPROPERTY('Edition')`, e.g. `Standard Edition (64-bit)`.
    pub edition: Option<String>,
    /// Snapshots of the database that exist already.
    pub snapshots: Option<Vec<String>>,
    /// FILESTREAM or memory-optimized containers (`sys.master_files` type `FILESTREAM`).
    pub filestream: Option<bool>,
    /// The database is in an availability group (`sys.databases.replica_id`).
    pub availability_group: Option<bool>,
    /// Allocated size of the data files (what a snapshot can grow to).
    pub data_bytes: Option<u64>,
    /// Free space on the fullest volume holding a data file.
    pub data_free_bytes: Option<u64>,
    /// RDS: the database is mirrored (Multi-AZ), where a rename needs Multi-AZ off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_az: Option<bool>,
}

impl Detected {
    /// `COMPRESSION` is refused on Express and Web (reference §2.1).
    pub fn compression_allowed(&self) -> Option<bool> {
        let e = self.edition.as_deref()?.to_ascii_lowercase();
        Some(!(e.starts_with("express") || e.starts_with("web")))
    }

    /// Database snapshots: every edition from SQL Server 2016 SP1 (13.0.4001), Enterprise
    /// and Developer before that (reference §3).
    pub fn snapshot_supported(&self) -> Option<bool> {
        let version = self.product_version.as_deref()?;
        let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, build) = (parts.next()?, parts.nth(1).unwrap_or(0));
        let edition = self.edition.as_deref().unwrap_or("").to_ascii_lowercase();
        Some(
            major > 13
                || (major == 13 && build >= 4001)
                || edition.starts_with("enterprise")
                || edition.starts_with("developer"),
        )
    }
}

const PAGE: u64 = 8192;

async fn rows(sql: &Sql, runner: &dyn CommandRunner, what: &str, text: String) -> Option<Vec<Row>> {
    let call = Call {
        options: out::OPTIONS,
        quick: Some(std::time::Duration::from_secs(60)),
        ..Call::default()
    };
    let output = sql.call(runner, what, text, call).await.ok()?;
    out::rows(&output.stdout, &output.stderr).ok()
}

/// The hosting `EngineEdition` told, with Cloud SQL told apart: it looks self-managed by
/// its EngineEdition, but its login has the `CustomerDbRootRole` role.
pub(crate) async fn refine(
    sql: &Sql,
    runner: &dyn CommandRunner,
    hosting: Option<Hosting>,
) -> Option<Hosting> {
    if hosting == Some(Hosting::SelfManaged)
        && let Some(rows) = rows(
            sql,
            runner,
            "Cloud SQL role",
            "SET NOCOUNT ON; SELECT N'octoup', IS_SRVROLEMEMBER(N'CustomerDbRootRole');".into(),
        )
        .await
        && rows
            .first()
            .and_then(|r| out::flag(&r.first().cloned().flatten()))
            == Some(true)
    {
        return Some(Hosting::GoogleCloudSql);
    }
    hosting
}

/// Asks the server what the doctor's checks did not already tell: `product_version`,
/// `edition` and `engine_edition` (with `rdsadmin`) come from them. Cheap: a few quick
/// queries, before anything changes.
pub(crate) async fn detect(
    sql: &Sql,
    runner: &dyn CommandRunner,
    product_version: Option<String>,
    edition: Option<String>,
    hosting: Option<Hosting>,
) -> Detected {
    let db = &sql.database;
    let mut d = Detected {
        product_version,
        edition,
        hosting,
        ..Detected::default()
    };
    d.hosting = refine(sql, runner, d.hosting).await;
    if d.hosting == Some(Hosting::AmazonRds) {
        // Multi-AZ mirrors the database (database mirroring or an availability group).
        d.multi_az = rows(
            sql,
            runner,
            "Multi-AZ",
            format!(
                "SET NOCOUNT ON; SELECT N'octoup', mirroring_state_desc FROM sys.database_mirroring WHERE database_id = DB_ID({});",
                quote_string(db)
            ),
        )
        .await
        .map(|rows| rows.iter().any(|r| r.first().cloned().flatten().is_some()));
    }
    if d.hosting != Some(Hosting::SelfManaged) {
        return d;
    }
    d.snapshots = rows(sql, runner, "database snapshots", tsql::snapshots_of(db))
        .await
        .map(|rows| {
            rows.into_iter()
                .filter_map(|r| r.first().cloned().flatten())
                .collect()
        });
    d.availability_group = rows(
        sql,
        runner,
        "availability group",
        format!(
            "SET NOCOUNT ON; SELECT N'octoup', name, replica_id FROM sys.databases WHERE name = {};",
            quote_string(db)
        ),
    )
    .await
    .and_then(|rows| rows.first().map(|r| r.get(1).cloned().flatten().is_some()));
    if let Some(files) = rows(
        sql,
        runner,
        "data files and their volumes",
        format!(
            "SET NOCOUNT ON; SELECT N'octoup', f.type_desc, f.size, v.volume_mount_point, v.available_bytes FROM sys.master_files AS f CROSS APPLY sys.dm_os_volume_stats(f.database_id, f.file_id) AS v WHERE f.database_id = DB_ID({});",
            quote_string(db)
        ),
    )
    .await
    {
        let kind = |r: &Row| r.first().cloned().flatten().unwrap_or_default();
        d.filestream = Some(files.iter().any(|r| kind(r).eq_ignore_ascii_case("FILESTREAM")));
        let data: Vec<&Row> = files
            .iter()
            .filter(|r| kind(r).eq_ignore_ascii_case("ROWS"))
            .collect();
        let size = |r: &Row| out::number(&r.get(1).cloned().flatten()).map(|p| p as u64 * PAGE);
        let free = |r: &Row| out::number(&r.get(3).cloned().flatten()).map(|b| b as u64);
        d.data_bytes = data.iter().map(|r| size(r)).sum::<Option<u64>>();
        d.data_free_bytes = data.iter().map(|r| free(r)).collect::<Option<Vec<u64>>>().and_then(|v| v.into_iter().min());
    }
    d
}
