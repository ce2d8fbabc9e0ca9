//! `SELECT` against the simulated server: the catalog views, DMVs and built-in functions a
//! preflight asks about, from the spec's `[database]`, refused the way the chosen hosting
//! and the login's permissions refuse them; and sqlcmd's output format for the options used
//! (`-h`, `-W`, `-s`, and `SET NOCOUNT`).

use std::collections::BTreeMap;

use super::parse::{Cond, Expr, Select, Source};
use crate::spec::Hosting;
use crate::state::{OctopusData, OtherKind, State};

const GB: f64 = 1e9;
const PAGE: f64 = 8192.0;
/// Database ids as a fresh instance numbers them; the Octopus database is the first user one.
const SYSTEM_DBS: &[&str] = &["master", "tempdb", "model", "msdb"];

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Null,
    Int(i64),
    Str(String),
}

impl Value {
    fn shown(&self) -> String {
        match self {
            Value::Null => "NULL".into(),
            Value::Int(i) => i.to_string(),
            Value::Str(s) => s.clone(),
        }
    }

    pub(super) fn text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            v => Some(v.shown()),
        }
    }

    fn bit(b: bool) -> Value {
        Value::Int(b as i64)
    }
}

/// A server error: number, severity, text.
pub(super) type SqlError = (u32, u32, String);

pub(super) type Row = BTreeMap<String, Value>;

/// How sqlcmd prints a result set.
pub(super) struct Format {
    pub headers: bool,
    pub trim: bool,
    pub separator: String,
}

/// The server as one query sees it.
pub(super) struct Server<'a> {
    pub state: &'a State,
    /// The database in context (`USE`).
    pub current: String,
    /// The connection's login.
    pub login: String,
    /// The root of the volume the simulated files live on.
    pub volume: String,
    /// Where the database files are (`DIR/data`).
    pub data_dir: String,
}

/// A row of `sys.master_files`.
struct File {
    database_id: i64,
    file_id: i64,
    name: String,
    physical_name: String,
    type_desc: &'static str,
    size: f64,
    used: f64,
}

/// The Octopus database's id (the first user database on a fresh instance).
const OCTOPUS_ID: i64 = 5;

/// The Octopus tables the simulator holds rows of (`sys.tables` lists them with the
/// catalog's older ones); `OctopusServerNodeStatus` only from schema [`NODE_STATUS_FROM`].
pub(super) const OCTOPUS_TABLES: &[&str] = &[
    "OctopusServerNode",
    "OctopusServerNodeStatus",
    "Subscription",
    "ProjectTrigger",
    "Machine",
    "Worker",
    "ExtensionConfiguration",
    "Configuration",
    "ServerTask",
];
/// The first schema with `OctopusServerNodeStatus` (the simulator's choice, unverified:
/// the vendor's statement guards it with `IF EXISTS`, so older schemas lack it).
pub(super) const NODE_STATUS_FROM: &str = "2022.1.0";

/// The `Configuration` row `upgradeavailability`'s JSON.
pub(super) fn configuration_json(installation_id: &str) -> String {
    serde_json::json!({ "InstallationId": installation_id, "UpgradeAvailable": false }).to_string()
}

/// The rows of one Octopus table in `data` (only the enabled rows of the four tables a
/// rehearsal disables are simulated: disabled ones are not kept).
pub(super) fn octopus_rows(data: &OctopusData, table: &str) -> Vec<Row> {
    let row = |pairs: Vec<(&str, Value)>| -> Row {
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    };
    let str = |v: &str| Value::Str(v.to_string());
    let counted = |prefix: &str, n: u32| -> Vec<Row> {
        (1..=n)
            .map(|k| {
                row(vec![
                    ("id", str(&format!("{prefix}-{k}"))),
                    ("name", str(&format!("{prefix} {k}"))),
                    ("isdisabled", Value::Int(0)),
                ])
            })
            .collect()
    };
    match table {
        "OctopusServerNode" | "OctopusServerNodeStatus" => {
            let names = if table == "OctopusServerNode" {
                &data.nodes
            } else {
                &data.node_status
            };
            names
                .iter()
                .map(|n| {
                    row(vec![
                        ("id", str(&crate::state::node_id(n))),
                        ("name", str(n)),
                        ("isinmaintenancemode", Value::Int(0)),
                        ("maxconcurrenttasks", Value::Int(5)),
                    ])
                })
                .collect()
        }
        "Subscription" => counted("Subscriptions", data.subscriptions),
        "ProjectTrigger" => counted("ProjectTriggers", data.project_triggers),
        "Machine" => counted("Machines", data.machines),
        "Worker" => counted("Workers", data.workers),
        "ExtensionConfiguration" => data
            .extensions
            .iter()
            .map(|e| row(vec![("id", str(e)), ("name", str(e))]))
            .collect(),
        "Configuration" => vec![row(vec![
            ("id", str("upgradeavailability")),
            ("json", str(&configuration_json(&data.installation_id))),
        ])],
        _ => Vec::new(),
    }
}

fn invalid_object(name: &str) -> SqlError {
    (208, 16, format!("Invalid object name '{name}'."))
}

fn no_server_state() -> SqlError {
    (
        300,
        14,
        "VIEW SERVER STATE permission was denied on object 'server', database 'master'.".into(),
    )
}

impl Server<'_> {
    fn octopus(&self) -> &str {
        &self.state.database.name
    }

    fn rds(&self) -> bool {
        self.state.sql.hosting == Hosting::AmazonRds
    }

    /// Every database with its id: the system ones, the Octopus one (5, unless renamed
    /// away), rdsadmin on RDS, then the others in creation order.
    fn databases(&self) -> Vec<(i64, String)> {
        let mut dbs: Vec<(i64, String)> = SYSTEM_DBS
            .iter()
            .enumerate()
            .map(|(i, s)| (i as i64 + 1, s.to_string()))
            .collect();
        if !self.state.instance_dbs.octopus_absent {
            dbs.push((OCTOPUS_ID, self.octopus().to_string()));
        }
        if self.rds() {
            dbs.push((6, "rdsadmin".into()));
        }
        for (i, d) in self.state.instance_dbs.databases.iter().enumerate() {
            dbs.push((7 + i as i64, d.name.clone()));
        }
        dbs
    }

    fn db_id(&self, name: &str) -> Option<i64> {
        self.databases()
            .into_iter()
            .find(|(_, d)| d.eq_ignore_ascii_case(name))
            .map(|(id, _)| id)
    }

    /// `state_desc` of a database: a copy is COPYING until done, then ONLINE or SUSPECT.
    fn state_desc(&self, name: &str) -> &'static str {
        let now = self.state.now_sim();
        match self.state.instance_dbs.get(name).map(|d| &d.kind) {
            Some(OtherKind::Copy { done_sim, .. }) if now < *done_sim => "COPYING",
            Some(OtherKind::Copy { fails: true, .. }) => "SUSPECT",
            _ => "ONLINE",
        }
    }

    fn in_octopus(&self) -> bool {
        self.current.eq_ignore_ascii_case(self.octopus())
    }

    fn sysadmin(&self) -> bool {
        let s = &self.state.sql;
        // Cloud SQL and RDS never give the login sysadmin (reference §2.4–§2.5).
        !matches!(s.hosting, Hosting::GoogleCloudSql | Hosting::AmazonRds)
            && s.can_restore
            && s.can_create_database
            && s.can_backup
    }

    fn sid(login: &str) -> String {
        format!("0x{}", hex::encode(login.as_bytes()))
    }

    fn owner(&self) -> String {
        if self.state.sql.can_restore {
            self.login.clone()
        } else {
            "sa".into()
        }
    }

    fn sizes(&self) -> (f64, f64, f64, f64) {
        let s = &self.state.sql;
        let used = (s.size_gb * GB / PAGE).ceil();
        let alloc = (used * 1.25).ceil().max(used + 1.0);
        let log = (s.log_size_gb * GB / PAGE).ceil();
        let log_used = ((s.log_size_gb - s.log_free_gb) * GB / PAGE)
            .ceil()
            .max(0.0);
        (used, alloc, log, log_used)
    }

    /// The database files: master's and the Octopus database's (each ROWS file of
    /// `data_files` holding an equal share, the log, a FILESTREAM container when the
    /// database has a FILESTREAM or memory-optimized filegroup).
    fn files(&self) -> Vec<File> {
        let (used, alloc, log, log_used) = self.sizes();
        let db = self.octopus().to_string();
        let s = &self.state.sql;
        let path = |name: &str| format!("{}/{name}", self.data_dir);
        let mut files = vec![
            File {
                database_id: 1,
                file_id: 1,
                name: "master".into(),
                physical_name: path("master.mdf"),
                type_desc: "ROWS",
                size: 512.0,
                used: 400.0,
            },
            File {
                database_id: 1,
                file_id: 2,
                name: "mastlog".into(),
                physical_name: path("mastlog.ldf"),
                type_desc: "LOG",
                size: 256.0,
                used: 50.0,
            },
        ];
        if self.state.instance_dbs.octopus_absent {
            return files;
        }
        let data = s.data_file_names(&db);
        let n = data.len() as f64;
        for (i, name) in data.iter().enumerate() {
            files.push(File {
                database_id: OCTOPUS_ID,
                file_id: if i == 0 { 1 } else { i as i64 + 2 },
                name: name.clone(),
                physical_name: path(&format!("{name}.{}", if i == 0 { "mdf" } else { "ndf" })),
                type_desc: "ROWS",
                size: (alloc / n).ceil(),
                used: (used / n).ceil(),
            });
        }
        files.push(File {
            database_id: OCTOPUS_ID,
            file_id: 2,
            name: format!("{db}_log"),
            physical_name: path(&format!("{db}_log.ldf")),
            type_desc: "LOG",
            size: log,
            used: log_used,
        });
        if s.filestream || s.memory_optimized {
            // Memory-optimized containers are FILESTREAM files in sys.master_files.
            files.push(File {
                database_id: OCTOPUS_ID,
                file_id: 65537,
                name: format!("{db}_container"),
                physical_name: path(&format!("{db}_container")),
                type_desc: "FILESTREAM",
                size: 0.0,
                used: 0.0,
            });
        }
        files
    }

    fn table(&self, source: &Source, outer: &Row) -> Result<Vec<Row>, SqlError> {
        let s = &self.state.sql;
        let azure_db = s.hosting == Hosting::AzureSqlDatabase;
        let row = |pairs: Vec<(&str, Value)>| -> Row {
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
        };
        let str = |v: &str| Value::Str(v.to_string());
        Ok(match source.name.as_str() {
            "sys.databases" => self
                .databases()
                .iter()
                .map(|(id, d)| {
                    let octopus = *id == OCTOPUS_ID;
                    let source = match self.state.instance_dbs.get(d).map(|o| &o.kind) {
                        Some(OtherKind::Snapshot { source }) => {
                            self.db_id(source).map(Value::Int).unwrap_or(Value::Null)
                        }
                        _ => Value::Null,
                    };
                    let replica = if octopus && !s.availability_group.is_empty() {
                        str("5d3c3a5e-4b3f-4c1e-9a57-0c8f2f3b6a11")
                    } else {
                        Value::Null
                    };
                    row(vec![
                        ("name", str(d)),
                        ("database_id", Value::Int(*id)),
                        ("source_database_id", source),
                        ("replica_id", replica),
                        (
                            "compatibility_level",
                            Value::Int(if octopus {
                                s.compatibility_level as i64
                            } else {
                                150
                            }),
                        ),
                        ("collation_name", str(&s.collation)),
                        (
                            "owner_sid",
                            Value::Str(Self::sid(&if octopus {
                                self.owner()
                            } else {
                                "sa".into()
                            })),
                        ),
                        ("state_desc", str(self.state_desc(d))),
                    ])
                })
                .collect(),
            "sys.filegroups" => {
                if !self.in_octopus() {
                    return Ok(vec![row(vec![
                        ("name", str("PRIMARY")),
                        ("type_desc", str("ROWS_FILEGROUP")),
                    ])]);
                }
                let mut groups = vec![("PRIMARY", "ROWS_FILEGROUP")];
                if s.filestream {
                    groups.push(("FileStreamGroup", "FILESTREAM_DATA_FILEGROUP"));
                }
                if s.memory_optimized {
                    groups.push(("InMemoryGroup", "MEMORY_OPTIMIZED_DATA_FILEGROUP"));
                }
                groups
                    .into_iter()
                    .map(|(n, t)| row(vec![("name", str(n)), ("type_desc", str(t))]))
                    .collect()
            }
            "sys.credentials" if !azure_db => self
                .state
                .instance_dbs
                .credentials
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    row(vec![
                        ("credential_id", Value::Int(65536 + i as i64)),
                        ("name", str(&c.name)),
                        ("credential_identity", str(&c.identity)),
                    ])
                })
                .collect(),
            "sys.dm_database_copies" if azure_db => {
                let now = self.state.now_sim();
                self.state
                    .instance_dbs
                    .databases
                    .iter()
                    .filter_map(|d| match &d.kind {
                        OtherKind::Copy {
                            started_sim,
                            done_sim,
                            fails,
                            ..
                        } if now < *done_sim || *fails => {
                            let span = (done_sim - started_sim).max(1e-9);
                            let pct = ((now - started_sim) / span * 100.0).clamp(0.0, 99.99);
                            let (code, desc) = if *fails && now >= *done_sim {
                                (Value::Int(40571), str("The database copy failed; drop the copy and start it again."))
                            } else {
                                (Value::Int(0), Value::Null)
                            };
                            Some(row(vec![
                                ("database_id", Value::Int(self.db_id(&d.name).unwrap_or(0))),
                                ("percent_complete", Value::Str(format!("{pct:.2}"))),
                                ("error_code", code),
                                ("error_desc", desc),
                            ]))
                        }
                        _ => None,
                    })
                    .collect()
            }
            "sys.database_mirroring" if !azure_db => self
                .databases()
                .iter()
                .map(|(id, _)| {
                    // RDS Multi-AZ by database mirroring shows the Octopus database mirrored.
                    let mirrored = *id == OCTOPUS_ID && self.rds() && s.multi_az;
                    row(vec![
                        ("database_id", Value::Int(*id)),
                        (
                            "mirroring_state_desc",
                            if mirrored {
                                str("SYNCHRONIZED")
                            } else {
                                Value::Null
                            },
                        ),
                    ])
                })
                .collect(),
            "sys.tables" | "sys.columns" => {
                let Some((_, schema)) = self.state.content_of(&self.current) else {
                    return Ok(Vec::new());
                };
                let mut tables: Vec<String> = [
                    "Event",
                    "Project",
                    "Deployment",
                    "ServerTask",
                    "VariableSet",
                ]
                .iter()
                .map(|t| t.to_string())
                .collect();
                for t in OCTOPUS_TABLES {
                    let too_old = *t == "OctopusServerNodeStatus"
                        && crate::version::compare(&schema, NODE_STATUS_FROM).is_lt();
                    if !too_old && !tables.iter().any(|x| x == t) {
                        tables.push(t.to_string());
                    }
                }
                for m in &s.collation_mismatches {
                    let t = m.split('.').next().unwrap_or("").to_string();
                    if !tables.contains(&t) {
                        tables.push(t);
                    }
                }
                let object_id = |i: usize| Value::Int(245_575_913 + i as i64 * 16);
                if source.name == "sys.tables" {
                    tables
                        .iter()
                        .enumerate()
                        .map(|(i, t)| row(vec![("object_id", object_id(i)), ("name", str(t))]))
                        .collect()
                } else {
                    let mut cols = Vec::new();
                    for (i, t) in tables.iter().enumerate() {
                        cols.push(row(vec![
                            ("object_id", object_id(i)),
                            ("name", str("Id")),
                            ("collation_name", str(&s.collation)),
                        ]));
                        cols.push(row(vec![
                            ("object_id", object_id(i)),
                            ("name", str("DataVersion")),
                            ("collation_name", Value::Null),
                        ]));
                        for m in &s.collation_mismatches {
                            if let Some((mt, mc)) = m.split_once('.')
                                && mt == t
                            {
                                cols.push(row(vec![
                                    ("object_id", object_id(i)),
                                    ("name", str(mc)),
                                    ("collation_name", str("Latin1_General_CS_AS")),
                                ]));
                            }
                        }
                    }
                    cols
                }
            }
            "sys.database_files" => {
                let id = self.db_id(&self.current).unwrap_or(1);
                self.files()
                    .into_iter()
                    .filter(|f| f.database_id == if id == OCTOPUS_ID { OCTOPUS_ID } else { 1 })
                    .map(|f| {
                        row(vec![
                            ("file_id", Value::Int(f.file_id)),
                            ("name", str(&f.name)),
                            ("physical_name", str(&f.physical_name)),
                            ("type_desc", str(f.type_desc)),
                            ("size", Value::Int(f.size as i64)),
                        ])
                    })
                    .collect()
            }
            "sys.master_files" if !azure_db => self
                .files()
                .into_iter()
                .map(|f| {
                    row(vec![
                        ("database_id", Value::Int(f.database_id)),
                        ("file_id", Value::Int(f.file_id)),
                        ("name", str(&f.name)),
                        ("physical_name", str(&f.physical_name)),
                        ("type_desc", str(f.type_desc)),
                        ("size", Value::Int(f.size as i64)),
                    ])
                })
                .collect(),
            "sys.dm_db_log_space_usage" => {
                let (_, _, log, log_used) = if self.in_octopus() {
                    self.sizes()
                } else {
                    (0.0, 0.0, 256.0, 50.0)
                };
                vec![row(vec![
                    ("total_log_size_in_bytes", Value::Int((log * PAGE) as i64)),
                    (
                        "used_log_space_in_bytes",
                        Value::Int((log_used * PAGE) as i64),
                    ),
                ])]
            }
            "sys.dm_server_services" if !azure_db => {
                if !s.view_server_state {
                    return Err(no_server_state());
                }
                vec![
                    row(vec![
                        ("servicename", str("SQL Server (MSSQLSERVER)")),
                        (
                            "instant_file_initialization_enabled",
                            str(if s.ifi { "Y" } else { "N" }),
                        ),
                    ]),
                    row(vec![
                        ("servicename", str("SQL Server Agent (MSSQLSERVER)")),
                        ("instant_file_initialization_enabled", str("N")),
                    ]),
                ]
            }
            "sys.dm_os_volume_stats" => {
                if !s.view_server_state {
                    return Err(no_server_state());
                }
                let args = source.args.clone().unwrap_or_default();
                let vals = args
                    .iter()
                    .map(|a| self.eval(a, Some(outer)))
                    .collect::<Result<Vec<_>, _>>()?;
                let id = |i: usize| match vals.get(i) {
                    Some(Value::Int(n)) => Some(*n),
                    _ => None,
                };
                let Some(file) = self
                    .files()
                    .into_iter()
                    .find(|f| Some(f.database_id) == id(0) && Some(f.file_id) == id(1))
                else {
                    return Ok(Vec::new());
                };
                let free_gb = match (file.type_desc, s.data_free_gb) {
                    ("ROWS", Some(data)) => data,
                    _ => s.backup_free_gb,
                };
                let free = (free_gb * GB) as i64;
                vec![row(vec![
                    ("volume_mount_point", str(&self.volume)),
                    ("available_bytes", Value::Int(free)),
                    (
                        "total_bytes",
                        Value::Int(free.saturating_mul(2).max(100_000_000_000)),
                    ),
                ])]
            }
            other => match self.octopus_table(other) {
                Some((data, table)) => octopus_rows(&data, table),
                None => return Err(invalid_object(other)),
            },
        })
    }

    /// `dbo.Subscription`, `Subscription` or `[db].dbo.Subscription` (lower-cased, dotted)
    /// in a database with Octopus content: that content and the table's name.
    pub(super) fn octopus_table(&self, name: &str) -> Option<(OctopusData, &'static str)> {
        let parts: Vec<&str> = name.split('.').collect();
        let (database, table) = match parts.as_slice() {
            [t] | ["dbo", t] => (self.current.clone(), *t),
            [db, "dbo" | "", t] => (db.to_string(), *t),
            _ => return None,
        };
        let (data, schema) = self.state.content_of(&database)?;
        let table = OCTOPUS_TABLES
            .iter()
            .find(|t| t.eq_ignore_ascii_case(table))?;
        if *table == "OctopusServerNodeStatus"
            && crate::version::compare(&schema, NODE_STATUS_FROM).is_lt()
        {
            return None;
        }
        Some((data, table))
    }

    /// The rows of `rows` for which `conds` hold.
    pub(super) fn matching(&self, rows: Vec<Row>, conds: &[Cond]) -> Result<Vec<Row>, SqlError> {
        let mut kept = Vec::new();
        for row in rows {
            if self.holds(conds, &row)? {
                kept.push(row);
            }
        }
        Ok(kept)
    }

    /// Evaluates `expr` against `row`.
    pub(super) fn value(&self, expr: &Expr, row: &Row) -> Result<Value, SqlError> {
        self.eval(expr, Some(row))
    }

    fn function(&self, name: &str, args: &[Value]) -> Result<Value, SqlError> {
        let s = &self.state.sql;
        let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::Null);
        let text = |i: usize| arg(i).text().unwrap_or_default();
        Ok(match name {
            "SERVERPROPERTY" => match text(0).to_ascii_lowercase().as_str() {
                "productversion" => Value::Str(s.product_version()),
                "edition" => Value::Str(s.edition()),
                "engineedition" => Value::Int(s.engine_edition() as i64),
                "productlevel" => Value::Str("RTM".into()),
                "collation" => Value::Str(s.collation.clone()),
                "servername" | "machinename" => Value::Str(self.state.sql_server.clone()),
                _ => Value::Null,
            },
            "DATABASEPROPERTYEX" => {
                if self.db_id(&text(0)).is_none() {
                    Value::Null
                } else {
                    match text(1).to_ascii_lowercase().as_str() {
                        "collation" => Value::Str(s.collation.clone()),
                        "status" => Value::Str(self.state_desc(&text(0)).into()),
                        "recovery" => Value::Str("FULL".into()),
                        _ => Value::Null,
                    }
                }
            }
            "DB_NAME" => match arg(0) {
                Value::Null if args.is_empty() => Value::Str(self.current.clone()),
                Value::Int(id) => self
                    .databases()
                    .into_iter()
                    .find(|(i, _)| *i == id)
                    .map(|(_, n)| Value::Str(n))
                    .unwrap_or(Value::Null),
                _ => Value::Null,
            },
            "DB_ID" => {
                let name = if args.is_empty() {
                    self.current.clone()
                } else {
                    text(0)
                };
                self.db_id(&name).map(Value::Int).unwrap_or(Value::Null)
            }
            "SUSER_SID" => Value::Str(Self::sid(&self.login)),
            "SUSER_SNAME" => match arg(0) {
                Value::Null if args.is_empty() => Value::Str(self.login.clone()),
                Value::Str(sid) => [self.login.clone(), "sa".into()]
                    .into_iter()
                    .find(|l| Self::sid(l) == sid)
                    .map(Value::Str)
                    .unwrap_or(Value::Null),
                _ => Value::Null,
            },
            "HAS_PERMS_BY_NAME" => match text(2).to_ascii_uppercase().as_str() {
                "BACKUP DATABASE" => Value::bit(s.can_backup),
                "CREATE ANY DATABASE" | "CREATE DATABASE" => Value::bit(s.can_create_database),
                "CONNECT" => Value::bit(true),
                _ => Value::bit(self.sysadmin()),
            },
            "IS_SRVROLEMEMBER" => match text(0).to_ascii_lowercase().as_str() {
                "sysadmin" => Value::bit(self.sysadmin()),
                "public" => Value::bit(true),
                // Cloud SQL's role for its `sqlserver` user; it exists nowhere else.
                "customerdbrootrole" => {
                    if s.hosting == Hosting::GoogleCloudSql {
                        Value::bit(true)
                    } else {
                        Value::Null
                    }
                }
                "dbcreator" | "serveradmin" | "securityadmin" | "processadmin" | "setupadmin"
                | "bulkadmin" | "diskadmin" => Value::bit(false),
                _ => Value::Null,
            },
            "FILEPROPERTY" => {
                let id = self.db_id(&self.current).unwrap_or(1);
                let file = text(0);
                match text(1).to_ascii_lowercase().as_str() {
                    "spaceused" => self
                        .files()
                        .into_iter()
                        .find(|f| f.database_id == id && f.name.eq_ignore_ascii_case(&file))
                        .map(|f| Value::Int(f.used as i64))
                        .unwrap_or(Value::Null),
                    _ => Value::Null,
                }
            }
            // The type is the first argument; the simulator's values need no conversion.
            "CONVERT" => arg(1),
            "NEWID" => Value::Str(crate::state::new_guid()),
            "LOWER" => arg(0)
                .text()
                .map(|t| Value::Str(t.to_lowercase()))
                .unwrap_or(Value::Null),
            "UPPER" => arg(0)
                .text()
                .map(|t| Value::Str(t.to_uppercase()))
                .unwrap_or(Value::Null),
            // `$.Key` paths of a top-level key only: what the rehearsal reads and writes.
            "JSON_VALUE" => {
                let doc: serde_json::Value =
                    serde_json::from_str(&text(0)).unwrap_or(serde_json::Value::Null);
                match text(1).strip_prefix("$.").and_then(|k| doc.get(k)) {
                    Some(serde_json::Value::String(v)) => Value::Str(v.clone()),
                    Some(serde_json::Value::Number(n)) => Value::Str(n.to_string()),
                    Some(serde_json::Value::Bool(b)) => Value::Str(b.to_string()),
                    _ => Value::Null,
                }
            }
            "JSON_MODIFY" => {
                let Ok(serde_json::Value::Object(mut doc)) =
                    serde_json::from_str::<serde_json::Value>(&text(0))
                else {
                    return Err((13609, 16, "JSON text is not properly formatted.".into()));
                };
                let Some(key) = text(1).strip_prefix("$.").map(str::to_string) else {
                    return Err((13607, 16, "JSON path is not properly formatted.".into()));
                };
                match arg(2) {
                    Value::Null => doc.remove(&key),
                    Value::Int(i) => doc.insert(key, i.into()),
                    Value::Str(v) => doc.insert(key, v.into()),
                };
                Value::Str(serde_json::Value::Object(doc).to_string())
            }
            "CAST" | "ISNULL" | "COALESCE" => args
                .iter()
                .find(|v| **v != Value::Null)
                .cloned()
                .unwrap_or(Value::Null),
            other => {
                return Err((
                    195,
                    15,
                    format!("'{other}' is not a recognized built-in function name."),
                ));
            }
        })
    }

    fn eval(&self, expr: &Expr, row: Option<&Row>) -> Result<Value, SqlError> {
        match expr {
            Expr::Null => Ok(Value::Null),
            Expr::Number(n) => Ok(n.parse().map(Value::Int).unwrap_or(Value::Str(n.clone()))),
            Expr::Str(s) => Ok(Value::Str(s.clone())),
            Expr::Global(g) if g == "@@VERSION" => Ok(Value::Str(format!(
                "Microsoft SQL Server ({}) - {} (X64) (octoup-sim)\n\t{} on {}",
                self.state.sql.product_version(),
                self.state.sql.product_version(),
                self.state.sql.edition(),
                self.state.sql_server
            ))),
            Expr::Global(g) if g == "@@SERVERNAME" => Ok(Value::Str(self.state.sql_server.clone())),
            Expr::Global(g) => Err((
                137,
                15,
                format!("Must declare the scalar variable \"{g}\"."),
            )),
            Expr::Column(q, c) => {
                let key = match q {
                    Some(q) => format!("{q}.{}", c.to_ascii_lowercase()),
                    None => c.to_ascii_lowercase(),
                };
                row.and_then(|r| r.get(&key))
                    .cloned()
                    .ok_or_else(|| (207, 16, format!("Invalid column name '{c}'.")))
            }
            Expr::Call(name, args) => {
                let vals = args
                    .iter()
                    .skip(usize::from(name == "CONVERT"))
                    .map(|a| self.eval(a, row))
                    .collect::<Result<Vec<_>, _>>()?;
                let vals = if name == "CONVERT" {
                    std::iter::once(Value::Null).chain(vals).collect()
                } else {
                    vals
                };
                self.function(name, &vals)
            }
        }
    }

    fn holds(&self, conds: &[Cond], row: &Row) -> Result<bool, SqlError> {
        for c in conds {
            let l = self.eval(&c.left, Some(row))?;
            let r = if c.op == "IN" {
                Value::Null
            } else {
                self.eval(&c.right, Some(row))?
            };
            let ok = match c.op.as_str() {
                "IS NULL" => l == Value::Null,
                "IS NOT NULL" => l != Value::Null,
                "IN" => {
                    let Expr::Call(_, list) = &c.right else {
                        return Ok(false);
                    };
                    let mut found = false;
                    for item in list {
                        let v = self.eval(item, Some(row))?;
                        if v != Value::Null
                            && l != Value::Null
                            && v.shown().eq_ignore_ascii_case(&l.shown())
                        {
                            found = true;
                        }
                    }
                    found
                }
                _ if l == Value::Null || r == Value::Null => false,
                op => {
                    let ord = match (&l, &r) {
                        (Value::Int(a), Value::Int(b)) => a.cmp(b),
                        _ => l
                            .shown()
                            .to_ascii_lowercase()
                            .cmp(&r.shown().to_ascii_lowercase()),
                    };
                    match op {
                        "=" => ord.is_eq(),
                        "<>" | "!=" => ord.is_ne(),
                        "<" => ord.is_lt(),
                        ">" => ord.is_gt(),
                        "<=" => ord.is_le(),
                        _ => ord.is_ge(),
                    }
                }
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Runs a select: the column names and rows.
    pub(super) fn select(&self, q: &Select) -> Result<(Vec<String>, Vec<Vec<Value>>), SqlError> {
        let mut rows: Vec<Row> = vec![Row::new()];
        for source in &q.from {
            let mut next = Vec::new();
            for outer in &rows {
                for inner in self.table(source, outer)? {
                    let mut combined = outer.clone();
                    for (k, v) in inner {
                        combined.insert(format!("{}.{k}", source.alias), v.clone());
                        combined.insert(k, v);
                    }
                    if self.holds(&source.on, &combined)? {
                        next.push(combined);
                    }
                }
            }
            rows = next;
        }
        let mut kept = Vec::new();
        for row in rows {
            if self.holds(&q.filter, &row)? {
                kept.push(row);
            }
        }
        let count = |e: &Expr| matches!(e, Expr::Call(n, a) if n == "COUNT" && a.is_empty());
        let mut out = Vec::new();
        if q.group_by.is_empty() && !q.items.iter().any(|(e, _)| count(e)) {
            for row in &kept {
                let values = q
                    .items
                    .iter()
                    .map(|(e, _)| self.eval(e, Some(row)))
                    .collect::<Result<Vec<_>, _>>()?;
                out.push(values);
            }
        } else {
            // Groups in order of first appearance; `COUNT(*)` is the group's size.
            let mut groups: Vec<(Vec<Value>, Vec<&Row>)> = Vec::new();
            for row in &kept {
                let key = q
                    .group_by
                    .iter()
                    .map(|e| self.eval(e, Some(row)))
                    .collect::<Result<Vec<_>, _>>()?;
                match groups.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, members)) => members.push(row),
                    None => groups.push((key, vec![row])),
                }
            }
            if groups.is_empty() && q.group_by.is_empty() {
                groups.push((Vec::new(), Vec::new()));
            }
            for (_, members) in groups {
                let values = q
                    .items
                    .iter()
                    .map(|(e, _)| {
                        if count(e) {
                            Ok(Value::Int(members.len() as i64))
                        } else {
                            self.eval(e, members.first().copied())
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                out.push(values);
            }
        }
        Ok((q.items.iter().map(|(_, n)| n.clone()).collect(), out))
    }
}

/// A result set as sqlcmd prints it.
pub(super) fn format(columns: &[String], rows: &[Vec<Value>], f: &Format, nocount: bool) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(Value::shown).collect())
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([columns[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |fields: Vec<String>| -> String {
        let padded: Vec<String> = fields
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if f.trim {
                    v.trim_end().to_string()
                } else {
                    format!("{v:<w$}", w = widths[i])
                }
            })
            .collect();
        padded.join(&f.separator)
    };
    let mut out = Vec::new();
    if f.headers {
        out.push(line(columns.to_vec()));
        out.push(line(
            widths
                .iter()
                .zip(columns)
                .map(|(w, c)| "-".repeat(if f.trim { c.len().max(1) } else { (*w).max(1) }))
                .collect(),
        ));
    }
    for r in cells {
        out.push(line(r));
    }
    if !nocount {
        out.push(String::new());
        out.push(format!("({} rows affected)", rows.len()));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlcmd_formats() {
        let cols = vec!["".to_string(), "name".to_string()];
        let rows = vec![vec![Value::Str("octoup".into()), Value::Null]];
        let plain = Format {
            headers: true,
            trim: false,
            separator: " ".into(),
        };
        assert_eq!(
            format(&cols, &rows, &plain, false),
            "       name\n------ ----\noctoup NULL\n\n(1 rows affected)"
        );
        let doctor = Format {
            headers: false,
            trim: true,
            separator: "|".into(),
        };
        assert_eq!(format(&cols, &rows, &doctor, true), "octoup|NULL");
        assert_eq!(format(&cols, &[], &doctor, true), "");
    }
}
