//! The database checks, through the configured `sqlcmd` argv (the password only in
//! `SQLCMDPASSWORD`): which SQL Server and hosting, the compatibility level, columns off the
//! default collation, sizes and free space, instant file initialization, and the login's
//! rights. Each query is small and separate, so a refused one is one `<check>.unchecked`
//! warning and the others still run. Facts: shared/reference/sql-hosting-and-backups.md
//! §1–§4 and prerequisites-and-followups.md §1.
//!
//! [`gather`] asks the server; [`evaluate`] turns what it found into findings (pure, so the
//! rules are table-tested).

use serde::{Deserialize, Serialize};

use super::Context;
use super::finding::Finding;
use super::rules::{Rules, What};
use crate::database::sqlcmd_output::{self as out, MARK, Row};
use crate::database::{DatabaseError, Sql, tsql};
use crate::process::fsutil::bytes;
use crate::process::runner::CommandRunner;
use crate::version::Version;

/// SQL Server Express's cap on a database's data (MS editions page; reference §1).
pub const EXPRESS_CAP_BYTES: u64 = 10 * GB;
const GB: u64 = 1_000_000_000;
const PAGE: u64 = 8192;
/// Write speed of a plain backup or a zero-fill (reference §4, ≈75 MB/s; **inf**).
const WRITE_BYTES_PER_SECOND: f64 = 75_000_000.0;
/// The collation list is cut here; the finding says how many there are.
const LIST_CAP: usize = 10;

/// What the login may do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseRights {
    /// `BACKUP DATABASE` on the Octopus database.
    pub backup: Option<bool>,
    /// `RESTORE … WITH REPLACE` over it: sysadmin, dbcreator or the database's owner.
    pub restore: Option<bool>,
    /// `CREATE ANY DATABASE`: what `RESTORE VERIFYONLY` and a database snapshot need.
    pub snapshot: Option<bool>,
    pub sysadmin: Option<bool>,
    pub dbcreator: Option<bool>,
    /// The login owns the database.
    pub owner: Option<bool>,
}

/// What the database checks found (in the report for the database-strategies issue).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatabaseFacts {
    /// `self-managed`, `azure-sql-database`, `azure-sql-managed-instance`, `amazon-rds`, or
    /// `other (EngineEdition N)`.
    pub hosting: Option<String>,
    /// `SERVERPROPERTY('ProductVersion')`.
    pub product_version: Option<String>,
    /// `SERVERPROPERTY('Edition')`.
    pub edition: Option<String>,
    /// `SERVERPROPERTY('EngineEdition')`: 2 Standard/Web, 3 Enterprise/Developer, 4 Express,
    /// 5 Azure SQL Database, 8 Managed Instance.
    pub engine_edition: Option<u32>,
    pub compatibility_level: Option<u32>,
    pub collation: Option<String>,
    /// `Table.Column` of every column off the database's default collation.
    pub collation_mismatches: Vec<String>,
    /// Allocated size of the data files.
    pub data_bytes: Option<u64>,
    /// Used pages of the data files (what a backup holds).
    pub data_used_bytes: Option<u64>,
    pub log_bytes: Option<u64>,
    pub log_free_bytes: Option<u64>,
    /// Free space where the backup goes.
    pub backup_free_bytes: Option<u64>,
    /// Instant file initialization for the SQL Server service.
    pub ifi: Option<bool>,
    pub rights: DatabaseRights,
    /// What decides the strategy (hosting, version, snapshot conditions).
    #[serde(default)]
    pub detected: crate::database::Detected,
    /// The strategy chosen for the rollback point, and why (absent: none can run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<crate::database::Choice>,
}

impl DatabaseFacts {
    /// A PaaS database whose `ProductVersion` is not a release (Azure reports 12.0.2000.8).
    fn evergreen(&self) -> bool {
        matches!(self.engine_edition, Some(5 | 8))
    }
}

/// The hosting a server's `EngineEdition` (and an `rdsadmin` database) tell.
pub fn hosting(engine_edition: u32, rdsadmin: bool) -> String {
    crate::database::Hosting::from_engine_edition(engine_edition, rdsadmin)
        .map(|h| h.name().to_string())
        .unwrap_or_else(|| format!("other (EngineEdition {engine_edition})"))
}

/// Runs the database checks.
pub(crate) async fn check(ctx: &Context<'_>) -> (DatabaseFacts, Vec<Finding>) {
    let config = ctx.config();
    let mut sql = match Sql::from_config(config) {
        Ok(s) => s,
        Err(e) => {
            return (
                DatabaseFacts::default(),
                vec![Finding::unchecked("sql", "the database", e)],
            );
        }
    };
    // A query is quick; a hung sqlcmd must not hold the doctor for a backup's timeout.
    sql.timeout = std::time::Duration::from_secs(config.timeouts.command);
    sql.timeout_setting = "[timeouts] command";
    let (mut facts, mut findings) =
        gather(&sql, &config.database.backup_dir, ctx.conn.runner.as_ref()).await;
    facts.detected = crate::database::detect::detect(
        &sql,
        ctx.conn.runner.as_ref(),
        facts.product_version.clone(),
        facts.edition.clone(),
        facts
            .hosting
            .as_deref()
            .and_then(crate::database::Hosting::parse),
    )
    .await;
    if let Some(h) = facts.detected.hosting {
        facts.hosting = Some(h.name().to_string());
    }
    match crate::database::strategy::choose(
        &config.database,
        &facts.detected,
        config.rollback.enabled,
    ) {
        Ok(choice) => {
            findings.push(Finding::new(
                "sql.strategy",
                super::Severity::Info,
                format!("the rollback point: {} ({})", choice.strategy, choice.why),
                "[database] strategy decides what the database can be taken back to, and how long the outage's database part takes",
                "nothing to do; set [database] strategy to choose another",
            ));
            facts.strategy = Some(choice);
        }
        Err(refusal) => findings.push(Finding::blocker(
            "sql.strategy",
            refusal.found,
            refusal.why,
            refusal.fix,
        )),
    }
    findings.extend(evaluate(
        &facts,
        &Inputs {
            target: ctx.target,
            rules: ctx.rules,
            rollback: config.rollback.enabled,
            compression: facts
                .strategy
                .as_ref()
                .map(|c| c.compression)
                .unwrap_or(false),
            database: &sql.database,
        },
    ));
    (facts, findings)
}

/// Runs one query; its rows, or why not.
async fn query(
    sql: &Sql,
    runner: &dyn CommandRunner,
    what: &str,
    text: String,
) -> Result<Vec<Row>, String> {
    match sql.run_with(runner, what, out::OPTIONS, text).await {
        Ok(o) => out::rows(&o.stdout, &o.stderr),
        // With -b, a server error is a failed exit: the message is in the tail.
        Err(DatabaseError::Sql { tail, code, .. }) => Err(out::rows(&tail, "")
            .err()
            .unwrap_or_else(|| format!("sqlcmd exited {code}: {tail}"))),
        Err(e) => Err(e.to_string()),
    }
}

/// The one row a query must return.
fn one(rows: Result<Vec<Row>, String>, width: usize) -> Result<Row, String> {
    let rows = rows?;
    match rows.as_slice() {
        [row] if row.len() >= width => Ok(row.clone()),
        [] => Err("the query returned no row".into()),
        _ => Err(format!(
            "unexpected output ({} rows, {} columns)",
            rows.len(),
            rows[0].len()
        )),
    }
}

/// `select` run in `database`. Azure SQL Database has no `USE` (error 40508: a connection
/// stays in its database), and there the configured connection is already to it.
fn in_db(database: &str, select: &str, paas: bool) -> String {
    if paas {
        return format!("SET NOCOUNT ON; {select}");
    }
    format!(
        "SET NOCOUNT ON; USE {}; {select}",
        tsql::quote_ident(database)
    )
}

/// Asks the server; every query that cannot run becomes an `unchecked` warning.
pub(crate) async fn gather(
    sql: &Sql,
    config_backup_dir: &std::path::Path,
    runner: &dyn CommandRunner,
) -> (DatabaseFacts, Vec<Finding>) {
    let db = sql.database.as_str();
    let db_lit = tsql::quote_string(db);
    let mut facts = DatabaseFacts::default();
    let mut unchecked = Vec::new();
    // A query that could not tell is the check's `unchecked` warning.
    let mut tell = |check: &str, what: &str, result: Result<(), String>| {
        if let Err(reason) = result {
            unchecked.push(Finding::unchecked(check, what, reason));
        }
    };

    let server = format!(
        "SET NOCOUNT ON; SELECT N'{MARK}', SERVERPROPERTY('ProductVersion'), SERVERPROPERTY('Edition'), SERVERPROPERTY('EngineEdition'), DB_ID(N'rdsadmin');"
    );
    let result = one(query(sql, runner, "SQL Server version", server).await, 4).map(|row| {
        facts.product_version = row[0].clone();
        facts.edition = row[1].clone();
        facts.engine_edition = out::number(&row[2]).map(|n| n as u32);
        facts.hosting = facts.engine_edition.map(|e| hosting(e, row[3].is_some()));
    });
    tell("sql.version", "the SQL Server version and hosting", result);
    let paas = facts.hosting.as_deref() == Some("azure-sql-database");

    let database = format!(
        "SET NOCOUNT ON; SELECT N'{MARK}', d.compatibility_level, d.collation_name, SUSER_SNAME(d.owner_sid), SUSER_SNAME() FROM sys.databases AS d WHERE d.name = {db_lit};"
    );
    let result = one(query(sql, runner, "database settings", database).await, 4).map(|row| {
        facts.compatibility_level = out::number(&row[0]).map(|n| n as u32);
        facts.collation = row[1].clone();
        facts.rights.owner = match (&row[2], &row[3]) {
            (Some(o), Some(me)) => Some(o.eq_ignore_ascii_case(me)),
            _ => None,
        };
    });
    tell(
        "sql.compatibility-level",
        &format!("the settings of database {db}"),
        result,
    );

    let collation = in_db(
        db,
        &format!(
            "SELECT N'{MARK}', t.name, c.name FROM sys.columns AS c JOIN sys.tables AS t ON t.object_id = c.object_id WHERE c.collation_name <> CONVERT(sysname, DATABASEPROPERTYEX(DB_NAME(), 'Collation')) ORDER BY t.name, c.name;"
        ),
        paas,
    );
    let result = query(sql, runner, "column collations", collation)
        .await
        .map(|rows| {
            facts.collation_mismatches = rows
                .iter()
                .map(|r| {
                    format!(
                        "{}.{}",
                        text(r, 0).unwrap_or_default(),
                        text(r, 1).unwrap_or_default()
                    )
                })
                .collect();
        });
    tell("sql.collation", "column collations", result);

    let files = in_db(
        db,
        &format!(
            "SELECT N'{MARK}', f.type_desc, f.size, FILEPROPERTY(f.name, 'SpaceUsed') FROM sys.database_files AS f;"
        ),
        paas,
    );
    let result = query(sql, runner, "database file sizes", files)
        .await
        .and_then(|rows| {
            let data: Vec<&Row> = rows
                .iter()
                .filter(|r| text(r, 0).as_deref() == Some("ROWS"))
                .collect();
            if data.is_empty() {
                return Err("sys.database_files listed no data file".into());
            }
            let pages = |i: usize| -> u64 {
                data.iter()
                    .map(|r| r.get(i).and_then(out::number).unwrap_or(0.0) as u64 * PAGE)
                    .sum()
            };
            facts.data_bytes = Some(pages(1));
            facts.data_used_bytes = Some(pages(2));
            Ok(())
        });
    tell("sql.backup-space", "the database's size", result);

    let log = in_db(
        db,
        &format!(
            "SELECT N'{MARK}', total_log_size_in_bytes, used_log_space_in_bytes FROM sys.dm_db_log_space_usage;"
        ),
        paas,
    );
    let result = one(query(sql, runner, "log space", log).await, 2).and_then(|row| {
        let (Some(total), Some(used)) = (out::number(&row[0]), out::number(&row[1])) else {
            return Err("sys.dm_db_log_space_usage returned no sizes".into());
        };
        facts.log_bytes = Some(total as u64);
        facts.log_free_bytes = Some((total - used).max(0.0) as u64);
        Ok(())
    });
    tell("sql.log-space", "the free log space", result);

    if !paas {
        let (free, result) = backup_free(sql, config_backup_dir, runner).await;
        facts.backup_free_bytes = free;
        tell(
            "sql.backup-space",
            &format!("the free space in {}", config_backup_dir.display()),
            result,
        );
        let ifi = format!(
            "SET NOCOUNT ON; SELECT N'{MARK}', servicename, instant_file_initialization_enabled FROM sys.dm_server_services;"
        );
        let result = query(sql, runner, "instant file initialization", ifi)
            .await
            .and_then(|rows| {
                facts.ifi = rows
                    .iter()
                    .find(|r| text(r, 0).is_some_and(|n| n.starts_with("SQL Server (")))
                    .and_then(|r| r.get(1).and_then(out::flag));
                facts
                    .ifi
                    .map(|_| ())
                    .ok_or_else(|| "sys.dm_server_services listed no SQL Server service".into())
            });
        tell("sql.ifi", "instant file initialization", result);
    }

    let rights = in_db(
        db,
        &format!(
            "SELECT N'{MARK}', HAS_PERMS_BY_NAME(DB_NAME(), 'DATABASE', 'BACKUP DATABASE'), IS_SRVROLEMEMBER('sysadmin'), IS_SRVROLEMEMBER('dbcreator'), HAS_PERMS_BY_NAME(NULL, NULL, 'CREATE ANY DATABASE');"
        ),
        paas,
    );
    let result = one(query(sql, runner, "the login's rights", rights).await, 4).map(|row| {
        let r = &mut facts.rights;
        r.backup = out::flag(&row[0]);
        r.sysadmin = out::flag(&row[1]);
        r.dbcreator = out::flag(&row[2]);
        r.snapshot = out::flag(&row[3]);
        let ways = [r.sysadmin, r.dbcreator, r.owner];
        r.restore = if ways.contains(&Some(true)) {
            Some(true)
        } else if ways.iter().all(|w| *w == Some(false)) {
            Some(false)
        } else {
            None
        };
    });
    tell("sql.rights", "the login's rights", result);
    (facts, unchecked)
}

/// Column `i` of a row, when it is not NULL.
fn text(row: &Row, i: usize) -> Option<String> {
    row.get(i).cloned().flatten()
}

/// Free space where the backup goes, as SQL Server sees it: the volume of a database file
/// whose mount point holds `[database] backup_dir` (`sys.dm_os_volume_stats`); else the
/// local free space when the path is local to octoup.
async fn backup_free(
    sql: &Sql,
    config_backup_dir: &std::path::Path,
    runner: &dyn CommandRunner,
) -> (Option<u64>, Result<(), String>) {
    let volumes = format!(
        "SET NOCOUNT ON; SELECT N'{MARK}', v.volume_mount_point, v.available_bytes FROM sys.master_files AS f CROSS APPLY sys.dm_os_volume_stats(f.database_id, f.file_id) AS v WHERE f.database_id = DB_ID({});",
        tsql::quote_string(&sql.database)
    );
    let dir = config_backup_dir.to_string_lossy().to_string();
    let server_view = match query(sql, runner, "backup volume", volumes).await {
        Ok(rows) => rows
            .iter()
            .filter_map(|r| {
                let mount = text(r, 0)?;
                let free = r.get(1).and_then(out::number)? as u64;
                starts_with_path(&dir, &mount).then_some((mount.len(), free))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, free)| free),
        Err(_) => None,
    };
    let found = server_view.or_else(|| {
        config_backup_dir
            .is_absolute()
            .then(|| crate::process::platform::available_space(config_backup_dir))
            .flatten()
    });
    let result = found.map(|_| ()).ok_or_else(|| {
        "it is not on a volume of the database's files, and octoup cannot see it".to_string()
    });
    (found, result)
}

/// `C:\Backups\x` is under the mount point `C:\`; case-insensitive, either separator.
fn starts_with_path(path: &str, mount: &str) -> bool {
    let norm = |s: &str| s.replace('\\', "/").to_ascii_lowercase();
    let (path, mount) = (norm(path), norm(mount));
    !mount.is_empty() && path.starts_with(&mount)
}

/// What the evaluation needs besides the facts.
pub(crate) struct Inputs<'a> {
    pub target: Option<&'a Version>,
    pub rules: &'a Rules,
    /// `[rollback] enabled`.
    pub rollback: bool,
    /// `[database] compression`.
    pub compression: bool,
    pub database: &'a str,
}

/// The size of octoup's backup: the used data pages, half of it compressed (reference §4
/// measured about a fifth; half is the safe side).
pub fn backup_estimate(used: u64, compression: bool) -> u64 {
    if compression { used / 2 } else { used }
}

/// The findings for what the checks found.
pub(crate) fn evaluate(f: &DatabaseFacts, i: &Inputs<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let hosting = f.hosting.as_deref().unwrap_or("");
    let native = !matches!(
        hosting,
        "azure-sql-database" | "azure-sql-managed-instance" | "amazon-rds" | "google-cloud-sql"
    );
    if let (Some(target), Some(version)) = (i.target, &f.product_version)
        && !f.evergreen()
    {
        for req in i.rules.requirements(What::SqlServer, target) {
            match i.rules.meets(req, version) {
                Some(true) => {}
                Some(false) => {
                    let release = i
                        .rules
                        .sql_server_release(version)
                        .map(|r| format!("SQL Server {r} ({version})"))
                        .unwrap_or_else(|| format!("SQL Server {version}"));
                    out.push(req.unmet(
                        target,
                        format!("the database runs on {release}"),
                        &format!(
                            "upgrade SQL Server to {} or later before this upgrade, or choose an older target with --to",
                            req.needs
                        ),
                    ));
                }
                None => out.push(Finding::unchecked(
                    &req.id,
                    "the SQL Server version",
                    format!("ProductVersion {version:?} is not a version"),
                )),
            }
        }
    }

    if let (Some(target), Some(level)) = (i.target, f.compatibility_level) {
        for req in i.rules.requirements(What::CompatibilityLevel, target) {
            if i.rules.meets(req, &level.to_string()) == Some(false) {
                out.push(req.unmet(
                    target,
                    format!("database {} has compatibility level {level}", i.database),
                    &format!(
                        "ALTER DATABASE {} SET COMPATIBILITY_LEVEL = {} (or higher) before the upgrade",
                        tsql::quote_ident(i.database),
                        req.needs
                    ),
                ));
            }
        }
    }

    if !f.collation_mismatches.is_empty() {
        let n = f.collation_mismatches.len();
        let mut list = f.collation_mismatches[..n.min(LIST_CAP)].join(", ");
        if n > LIST_CAP {
            list.push_str(&format!(" and {} more", n - LIST_CAP));
        }
        out.push(Finding::blocker(
            "sql.collation",
            format!(
                "{n} column(s) are not on the database's default collation {}: {list}",
                f.collation.as_deref().unwrap_or("(unknown)")
            ),
            "the Octopus database upgrade refuses while any column uses another collation (OctopusDeploy/Issues#3069, #7132)",
            "change those columns to the database default (ALTER TABLE … ALTER COLUMN … COLLATE DATABASE_DEFAULT, with the column's type and nullability; indexes and constraints on it must be dropped and recreated); the full list: sys.columns where collation_name <> DATABASEPROPERTYEX(DB_NAME(), 'Collation')",
        ));
    }

    if native && let (Some(used), Some(free)) = (f.data_used_bytes, f.backup_free_bytes) {
        let need = backup_estimate(used, i.compression);
        if free < need {
            out.push(Finding::blocker(
                "sql.backup-space",
                format!(
                    "the backup needs about {}{} but only {} is free where it goes ([database] backup_dir)",
                    bytes(need),
                    if i.compression { " (compressed estimate)" } else { "" },
                    bytes(free)
                ),
                "the backup is taken during the outage; when it does not fit the upgrade stops there",
                "free space on that volume, or point [database] backup_dir at a bigger one (a path the SQL Server can write)",
            ));
        }
    }

    if let (Some(used), Some(free)) = (f.data_used_bytes, f.log_free_bytes)
        && free < used / 4
    {
        out.push(Finding::warning(
            "sql.log-space",
            format!(
                "the log has {} free of {} for {} of data",
                bytes(free),
                bytes(f.log_bytes.unwrap_or(0)),
                bytes(used)
            ),
            "migrations rewrite big tables in one transaction and log heavily (OctopusDeploy/Issues#9624); a full log stops the database upgrade midway",
            "grow the log file (ALTER DATABASE … MODIFY FILE) or make sure autogrowth has room on its volume; accept this warning if it has",
        ));
    }

    if f.ifi == Some(false) {
        let data = f.data_bytes.unwrap_or(0);
        let minutes = data as f64 / WRITE_BYTES_PER_SECOND / 60.0;
        out.push(Finding::new(
            "sql.ifi",
            super::Severity::Info,
            format!(
                "instant file initialization is off: a rollback's RESTORE first zero-fills the {} of data files, about {minutes:.0} min more at ~75 MB/s",
                bytes(data)
            ),
            "only a rollback is slower; the upgrade itself is not",
            "grant the SQL Server service account \"Perform volume maintenance tasks\" (SE_MANAGE_VOLUME_NAME) and restart the service",
        ));
    }

    if let Some(4) = f.engine_edition
        && let Some(used) = f.data_used_bytes
    {
        let near = used * 10 >= EXPRESS_CAP_BYTES * 8;
        let found = format!(
            "SQL Server Express caps the database at 10 GB; it uses {}",
            bytes(used)
        );
        out.push(if near {
            Finding::warning(
                "sql.express-size",
                found,
                "migrations add data and log; at the cap the database upgrade fails",
                "move to SQL Server Standard or archive old events and tasks first; accept this warning if there is room",
            )
        } else {
            Finding::info("sql.express-size", found)
        });
    }

    if i.compression
        && native
        && f.edition
            .as_deref()
            .is_some_and(|e| e.contains("Express") || e.starts_with("Web"))
    {
        out.push(Finding::blocker(
            "sql.compression-unsupported",
            format!(
                "[database] compression is on but {} has no backup compression",
                f.edition.as_deref().unwrap_or("")
            ),
            "BACKUP … WITH COMPRESSION fails on Express and Web editions",
            "set [database] compression = false",
        ));
    }

    let strategy = f
        .strategy
        .as_ref()
        .map(|c| c.strategy)
        .or(native.then_some(crate::config::DatabaseStrategy::Native));
    if let Some(strategy) = strategy {
        rights_findings(&f.rights, strategy, i, &mut out);
    }
    let rds = f
        .strategy
        .as_ref()
        .is_some_and(|c| c.strategy == crate::config::DatabaseStrategy::Rds);
    if rds && i.rollback {
        match f.detected.multi_az {
            Some(true) => out.push(Finding::blocker(
                "sql.rds-multi-az",
                format!("the RDS instance is Multi-AZ (database {} is mirrored)", i.database),
                "RDS cannot restore over an existing database, so the rollback renames it first with rdsadmin.dbo.rds_modify_db_name, which Multi-AZ refuses until it is turned off; octoup refuses an outage whose rollback it could not carry out",
                "turn Multi-AZ off for the upgrade window (and on again afterwards), or set [rollback] enabled = false (docs/database.md, \"Multi-AZ\")",
            )),
            None => out.push(Finding::unchecked(
                "sql.rds-multi-az",
                "whether the RDS instance is Multi-AZ",
                "sys.database_mirroring could not be read",
            )),
            Some(false) => {}
        }
    }
    out
}

/// The rights the chosen strategy's statements need, its rollback's included (proven
/// before the outage: an outage whose rollback octoup could not carry out is refused unless
/// `[rollback] enabled = false`).
///
/// | strategy | point | verification | rollback |
/// |---|---|---|---|
/// | native | BACKUP DATABASE | CREATE DATABASE (VERIFYONLY) | RESTORE … WITH REPLACE: sysadmin, dbcreator or owner |
/// | snapshot | BACKUP, and CREATE DATABASE (the snapshot) | CREATE DATABASE | RESTORE … FROM DATABASE_SNAPSHOT: the same as a restore |
/// | url | BACKUP DATABASE (TO URL) | — | RESTORE … FROM URL under the old name: the same as a restore |
/// | azure-copy | CREATE DATABASE … AS COPY OF: server admin or dbmanager | — | ALTER DATABASE … MODIFY NAME, DROP: the same |
/// | rds, external | the hosting's own (the master user; the configured command) | — | — |
fn rights_findings(
    r: &DatabaseRights,
    strategy: crate::config::DatabaseStrategy,
    i: &Inputs<'_>,
    out: &mut Vec<Finding>,
) {
    use crate::config::DatabaseStrategy as S;
    let backs_up = matches!(strategy, S::Native | S::Snapshot | S::Url | S::Auto);
    let verifies = matches!(strategy, S::Native | S::Snapshot | S::Auto);
    let restores = matches!(strategy, S::Native | S::Snapshot | S::Url | S::Auto);
    if backs_up && r.backup == Some(false) {
        out.push(Finding::blocker(
            "sql.backup-rights",
            format!("the SQL login may not BACK UP database {}", i.database),
            "octoup takes a verified backup before the schema upgrade",
            format!(
                "make the login a member of db_owner or db_backupoperator in {} (or sysadmin)",
                i.database
            ),
        ));
    }
    if verifies && r.snapshot == Some(false) {
        out.push(Finding::blocker(
            "sql.verify-rights",
            if strategy == S::Snapshot {
                "the SQL login lacks CREATE DATABASE permission, which RESTORE VERIFYONLY and the database snapshot need"
            } else {
                "the SQL login lacks CREATE DATABASE permission, which RESTORE VERIFYONLY needs"
            },
            "octoup verifies the backup before the schema upgrade; the verification would be refused",
            "GRANT CREATE ANY DATABASE TO the login (in master), or add it to dbcreator",
        ));
    }
    if strategy == S::AzureCopy && r.snapshot == Some(false) {
        out.push(Finding::blocker(
            "sql.copy-rights",
            "the SQL login may not create databases on the logical server (it is neither the server admin nor in dbmanager)",
            "the azure-copy strategy makes its rollback point with CREATE DATABASE … AS COPY OF, and its rollback renames and drops databases, which need the same role",
            "in master: ALTER ROLE dbmanager ADD MEMBER [the login's user]; or use the server admin login for the upgrade",
        ));
    }
    if !i.rollback || !restores {
        return;
    }
    let how = match strategy {
        S::Snapshot => {
            "a rollback reverts the database to the snapshot (RESTORE … FROM DATABASE_SNAPSHOT)"
        }
        S::Url => "a rollback renames the database and restores the backup FROM URL under its name",
        _ => "a rollback restores the backup over the database",
    };
    match r.restore {
        Some(false) => out.push(Finding::blocker(
            "sql.restore-rights",
            format!(
                "the SQL login cannot RESTORE database {}: it is not sysadmin, not dbcreator and not the database's owner (db_owner may back up but not restore)",
                i.database
            ),
            format!("{how}; with rollback enabled octoup refuses an outage it could not undo"),
            format!(
                "add the login to dbcreator (ALTER SERVER ROLE dbcreator ADD MEMBER …) or make it the owner (ALTER AUTHORIZATION ON DATABASE::{} TO …), or set [rollback] enabled = false to upgrade without a rollback",
                tsql::quote_ident(i.database)
            ),
        )),
        None if r.backup.is_some() => out.push(Finding::unchecked(
            "sql.restore-rights",
            "whether the login may RESTORE the database",
            "its roles or the database's owner could not be read",
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseStrategy;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    /// A healthy self-managed 2019 database.
    fn good() -> DatabaseFacts {
        DatabaseFacts {
            hosting: Some("self-managed".into()),
            product_version: Some("15.0.4322.2".into()),
            edition: Some("Developer Edition (64-bit)".into()),
            engine_edition: Some(3),
            compatibility_level: Some(150),
            collation: Some("SQL_Latin1_General_CP1_CI_AS".into()),
            collation_mismatches: vec![],
            data_bytes: Some(3 * GB),
            data_used_bytes: Some(2 * GB),
            log_bytes: Some(GB),
            log_free_bytes: Some(GB * 9 / 10),
            backup_free_bytes: Some(500 * GB),
            ifi: Some(true),
            detected: Default::default(),
            strategy: None,
            rights: DatabaseRights {
                backup: Some(true),
                restore: Some(true),
                snapshot: Some(true),
                sysadmin: Some(true),
                dbcreator: Some(false),
                owner: Some(false),
            },
        }
    }

    fn strategy(strategy: DatabaseStrategy) -> crate::database::Choice {
        crate::database::Choice {
            strategy,
            ..crate::database::Choice::native("a test", false)
        }
    }

    fn ids(f: &DatabaseFacts, target: &str, rollback: bool, compression: bool) -> Vec<String> {
        let target = v(target);
        evaluate(
            f,
            &Inputs {
                target: Some(&target),
                rules: Rules::builtin(),
                rollback,
                compression,
                database: "OctopusDeploy",
            },
        )
        .into_iter()
        .map(|f| format!("{}:{}", f.id, f.severity.as_str()))
        .collect()
    }

    /// One row per rule: a change to the healthy facts and the findings it gives.
    #[test]
    fn each_database_rule_as_a_table() {
        type Change = fn(&mut DatabaseFacts);
        let cases: &[(&str, Change, bool, bool, &[&str])] = &[
            ("healthy", |_| {}, true, false, &[]),
            (
                "SQL 2014 for 2024.3",
                |f| f.product_version = Some("12.0.6024.0".into()),
                true,
                false,
                &["sql.version:blocker"],
            ),
            (
                "Azure's 12.0 is not a release",
                |f| {
                    f.product_version = Some("12.0.2000.8".into());
                    f.engine_edition = Some(5);
                    f.hosting = Some("azure-sql-database".into());
                },
                true,
                false,
                &[],
            ),
            (
                "unparseable version",
                |f| f.product_version = Some("fifteen".into()),
                true,
                false,
                &["sql.version.unchecked:warning"],
            ),
            (
                "compat 120",
                |f| f.compatibility_level = Some(120),
                true,
                false,
                &["sql.compatibility-level:warning"],
            ),
            (
                "collation",
                |f| f.collation_mismatches = vec!["Event.Name".into()],
                true,
                false,
                &["sql.collation:blocker"],
            ),
            (
                "backup does not fit",
                |f| f.backup_free_bytes = Some(GB),
                true,
                false,
                &["sql.backup-space:blocker"],
            ),
            (
                "fits compressed",
                |f| f.backup_free_bytes = Some(GB + 1),
                true,
                true,
                &[],
            ),
            (
                "small log",
                |f| f.log_free_bytes = Some(GB / 10),
                true,
                false,
                &["sql.log-space:warning"],
            ),
            (
                "IFI off",
                |f| f.ifi = Some(false),
                true,
                false,
                &["sql.ifi:info"],
            ),
            (
                "no backup right",
                |f| {
                    f.rights = DatabaseRights {
                        backup: Some(false),
                        restore: Some(false),
                        snapshot: Some(true),
                        ..Default::default()
                    };
                },
                true,
                false,
                &["sql.backup-rights:blocker", "sql.restore-rights:blocker"],
            ),
            (
                "db_owner only, rollback on",
                |f| {
                    f.rights = DatabaseRights {
                        backup: Some(true),
                        restore: Some(false),
                        snapshot: Some(true),
                        ..Default::default()
                    };
                },
                true,
                false,
                &["sql.restore-rights:blocker"],
            ),
            (
                "db_owner only, rollback off",
                |f| {
                    f.rights = DatabaseRights {
                        backup: Some(true),
                        restore: Some(false),
                        snapshot: Some(true),
                        ..Default::default()
                    };
                },
                false,
                false,
                &[],
            ),
            (
                "azure-copy without dbmanager: the copy and its rollback's renames",
                |f| {
                    f.hosting = Some("azure-sql-database".into());
                    f.strategy = Some(strategy(DatabaseStrategy::AzureCopy));
                    f.rights = DatabaseRights {
                        backup: None,
                        restore: Some(false),
                        snapshot: Some(false),
                        ..Default::default()
                    };
                },
                true,
                false,
                &["sql.copy-rights:blocker"],
            ),
            (
                "url: a restore FROM URL, no VERIFYONLY right needed",
                |f| {
                    f.hosting = Some("azure-sql-managed-instance".into());
                    f.strategy = Some(strategy(DatabaseStrategy::Url));
                    f.rights = DatabaseRights {
                        backup: Some(true),
                        restore: Some(false),
                        snapshot: Some(false),
                        ..Default::default()
                    };
                },
                true,
                false,
                &["sql.restore-rights:blocker"],
            ),
            (
                "rds: the master user's procedures, nothing more checked",
                |f| {
                    f.hosting = Some("amazon-rds".into());
                    f.strategy = Some(strategy(DatabaseStrategy::Rds));
                    f.detected.multi_az = Some(false);
                    f.rights = DatabaseRights {
                        backup: Some(false),
                        restore: Some(false),
                        snapshot: Some(false),
                        ..Default::default()
                    };
                },
                true,
                false,
                &[],
            ),
            (
                "snapshot: the revert is a restore",
                |f| {
                    f.strategy = Some(strategy(DatabaseStrategy::Snapshot));
                    f.rights.restore = Some(false);
                    f.rights.sysadmin = Some(false);
                },
                true,
                false,
                &["sql.restore-rights:blocker"],
            ),
            (
                "roles unreadable",
                |f| {
                    f.rights = DatabaseRights {
                        backup: Some(true),
                        restore: None,
                        snapshot: Some(true),
                        ..Default::default()
                    };
                },
                true,
                false,
                &["sql.restore-rights.unchecked:warning"],
            ),
            (
                "no CREATE DATABASE",
                |f| f.rights.snapshot = Some(false),
                true,
                false,
                &["sql.verify-rights:blocker"],
            ),
            (
                "Express, small",
                |f| {
                    f.engine_edition = Some(4);
                    f.edition = Some("Express Edition (64-bit)".into());
                },
                true,
                false,
                &["sql.express-size:info"],
            ),
            (
                "Express near the cap, compression on",
                |f| {
                    f.engine_edition = Some(4);
                    f.edition = Some("Express Edition (64-bit)".into());
                    f.data_used_bytes = Some(9 * GB);
                    f.log_free_bytes = Some(5 * GB);
                },
                true,
                true,
                &[
                    "sql.express-size:warning",
                    "sql.compression-unsupported:blocker",
                ],
            ),
            (
                "Managed Instance",
                |f| {
                    f.engine_edition = Some(8);
                    f.hosting = Some("azure-sql-managed-instance".into());
                    f.product_version = Some("12.0.2000.8".into());
                },
                true,
                false,
                &[],
            ),
            (
                "RDS, old SQL",
                |f| {
                    f.hosting = Some("amazon-rds".into());
                    f.product_version = Some("12.0.6024.0".into());
                    f.rights.restore = Some(false);
                },
                true,
                false,
                &["sql.version:blocker"],
            ),
            (
                "nothing known",
                |f| *f = DatabaseFacts::default(),
                true,
                false,
                &[],
            ),
        ];
        for (name, change, rollback, compression, want) in cases {
            let mut f = good();
            change(&mut f);
            assert_eq!(
                ids(&f, "2024.3.13050", *rollback, *compression),
                *want,
                "{name}"
            );
        }
    }

    #[test]
    fn the_collation_list_is_capped_and_counted() {
        let mut f = good();
        f.collation_mismatches = (0..14).map(|n| format!("T{n}.C")).collect();
        let target = v("2024.3.13050");
        let found = evaluate(
            &f,
            &Inputs {
                target: Some(&target),
                rules: Rules::builtin(),
                rollback: true,
                compression: false,
                database: "OctopusDeploy",
            },
        );
        let text = &found[0].found;
        assert!(text.starts_with("14 column(s)"), "{text}");
        assert!(text.contains("T9.C and 4 more"), "{text}");
        assert!(!text.contains("T10.C"), "{text}");
        // The restore fix names both ways out.
        let mut f = good();
        f.rights.restore = Some(false);
        let found = evaluate(
            &f,
            &Inputs {
                target: Some(&target),
                rules: Rules::builtin(),
                rollback: true,
                compression: false,
                database: "OctopusDeploy",
            },
        );
        assert!(
            found[0].fix.contains("dbcreator")
                && found[0].fix.contains("[rollback] enabled = false")
        );
    }

    #[test]
    fn hosting_from_engine_edition() {
        assert_eq!(hosting(3, false), "self-managed");
        assert_eq!(hosting(4, false), "self-managed");
        assert_eq!(hosting(5, false), "azure-sql-database");
        assert_eq!(hosting(8, false), "azure-sql-managed-instance");
        assert_eq!(hosting(2, true), "amazon-rds");
        assert_eq!(hosting(11, false), "other (EngineEdition 11)");
    }

    #[test]
    fn backup_dirs_match_mount_points() {
        assert!(starts_with_path(r"D:\Backups\sql", r"D:\"));
        assert!(starts_with_path(r"d:\backups", "D:/"));
        assert!(!starts_with_path(r"\\nas\b", r"C:\"));
        assert!(starts_with_path("/var/opt/mssql/backup", "/"));
        assert!(!starts_with_path("/x", ""));
    }
}
