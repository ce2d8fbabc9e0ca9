//! The rest of the SQL instance around the Octopus database: other databases (snapshots,
//! copies, renamed ones), credentials for backups to URL and RDS's native backup tasks, and
//! how each way of going back (revert, rename swap, restore) puts their content back as the
//! Octopus database the nodes read.

use serde::{Deserialize, Serialize};

use super::model::{DatabaseSnapshot, OctopusData, State};
use crate::history::Event;

/// What another database on the instance is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum OtherKind {
    /// `CREATE DATABASE … AS SNAPSHOT OF [source]`.
    Snapshot { source: String },
    /// `CREATE DATABASE … AS COPY OF [source]` (Azure SQL Database): COPYING until
    /// `done_sim`, then ONLINE (or SUSPECT when `fails`).
    Copy {
        source: String,
        started_sim: f64,
        done_sim: f64,
        fails: bool,
        /// The completion (or failure) is recorded once, when first seen.
        announced: bool,
    },
    /// An ordinary database (a renamed Octopus database, a finished copy).
    Plain,
}

/// Another database on the instance, with the content it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtherDatabase {
    pub name: String,
    pub kind: OtherKind,
    pub(crate) content: DatabaseSnapshot,
    pub created_sim: f64,
    /// Physical files of a database restored `WITH MOVE` (others: none recorded).
    #[serde(default)]
    pub files: Vec<String>,
}

/// A credential in `sys.credentials`: the secret is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credential {
    pub name: String,
    pub identity: String,
    pub secret_sha256: String,
}

/// An RDS native backup or restore task (`msdb.dbo.rds_task_status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RdsTask {
    pub id: u64,
    /// `BACKUP_DB` or `RESTORE_DB`.
    pub task_type: String,
    pub database: String,
    pub s3_arn: String,
    pub created_sim: f64,
    pub done_sim: f64,
    /// `Some`: the task ends ERROR with this task_info.
    pub error: Option<String>,
    /// Recorded as finished (and a restore applied) once, when first seen done.
    pub finished: bool,
}

impl RdsTask {
    pub(crate) fn percent(&self, now: f64) -> u32 {
        if now >= self.done_sim {
            return 100;
        }
        let span = (self.done_sim - self.created_sim).max(1e-9);
        // RDS refreshes the figure in 5 % steps.
        ((((now - self.created_sim) / span) * 20.0).floor() as u32 * 5).min(95)
    }

    pub(crate) fn lifecycle(&self, now: f64) -> &'static str {
        if now < self.created_sim + (self.done_sim - self.created_sim) * 0.05 {
            "CREATED"
        } else if now < self.done_sim {
            "IN_PROGRESS"
        } else if self.error.is_some() {
            "ERROR"
        } else {
            "SUCCESS"
        }
    }
}

/// Everything on the SQL instance besides the Octopus database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SqlInstance {
    pub databases: Vec<OtherDatabase>,
    pub credentials: Vec<Credential>,
    pub rds_tasks: Vec<RdsTask>,
    /// No database has the Octopus database's name now (renamed away before a restore).
    pub octopus_absent: bool,
}

impl SqlInstance {
    pub(crate) fn get(&self, name: &str) -> Option<&OtherDatabase> {
        self.databases
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
    }

    /// The snapshots of `source`.
    pub(crate) fn snapshots_of(&self, source: &str) -> Vec<&OtherDatabase> {
        self.databases
            .iter()
            .filter(|d| matches!(&d.kind, OtherKind::Snapshot { source: s } if s.eq_ignore_ascii_case(source)))
            .collect()
    }
}

impl State {
    /// The spec's pre-existing snapshots and credentials.
    pub(crate) fn seed_instance(&mut self) {
        let now = self.now_sim();
        let content = self.snapshot();
        for name in self.sql.existing_snapshots.clone() {
            self.instance_dbs.databases.push(OtherDatabase {
                name,
                kind: OtherKind::Snapshot {
                    source: self.database.name.clone(),
                },
                content: content.clone(),
                created_sim: now,
                files: Vec::new(),
            });
        }
        for name in self.sql.credentials.clone() {
            self.instance_dbs.credentials.push(Credential {
                name,
                identity: "SHARED ACCESS SIGNATURE".into(),
                secret_sha256: String::new(),
            });
        }
    }

    /// The Octopus rows and schema of a database with Octopus content (the Octopus one, or
    /// another holding a copy of it).
    pub(crate) fn content_of(&self, name: &str) -> Option<(OctopusData, String)> {
        if self.is_octopus(name) {
            return Some((self.octopus_data(), self.database.schema_version.clone()));
        }
        let d = self.instance_dbs.get(name)?;
        Some((d.content.data.clone(), d.content.schema_version.clone()))
    }

    /// Changes the Octopus rows of `name` (the Octopus database or another); false when it
    /// has none.
    pub(crate) fn change_content(&mut self, name: &str, f: impl FnOnce(&mut OctopusData)) -> bool {
        if self.is_octopus(name) {
            let mut data = self.octopus_data();
            f(&mut data);
            self.database.data = data;
            return true;
        }
        match self
            .instance_dbs
            .databases
            .iter_mut()
            .find(|d| d.name.eq_ignore_ascii_case(name))
        {
            Some(d) => {
                f(&mut d.content.data);
                true
            }
            None => false,
        }
    }

    /// The canonical name of a database (as created), or `name` itself.
    pub(crate) fn database_name(&self, name: &str) -> String {
        if self.is_octopus(name) {
            return self.database.name.clone();
        }
        self.instance_dbs
            .get(name)
            .map(|d| d.name.clone())
            .unwrap_or_else(|| name.to_string())
    }

    /// Whether a database of that name exists on the instance (the Octopus one included).
    pub(crate) fn database_exists(&self, name: &str) -> bool {
        self.is_octopus(name) || self.instance_dbs.get(name).is_some()
    }

    /// Whether a copy or an RDS task has finished by now and is not yet recorded.
    pub(crate) fn has_unsettled(&self) -> bool {
        let now = self.now_sim();
        self.instance_dbs.rds_tasks.iter().any(|t| !t.finished && now >= t.done_sim)
            || self.instance_dbs.databases.iter().any(|d| {
                matches!(d.kind, OtherKind::Copy { announced: false, done_sim, .. } if now >= done_sim)
            })
    }

    /// Whether `name` is the Octopus database and it exists now.
    pub(crate) fn is_octopus(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(&self.database.name) && !self.instance_dbs.octopus_absent
    }

    /// Records copies and RDS tasks that finished by now (once each); a finished RDS restore
    /// to the Octopus database's name becomes it, one to another name a new database
    /// (`content` reads what its S3 object holds).
    pub(crate) fn settle(&mut self, content: &dyn Fn(&str) -> Option<DatabaseSnapshot>) {
        let now = self.now_sim();
        let mut events = Vec::new();
        for d in &mut self.instance_dbs.databases {
            if let OtherKind::Copy {
                source,
                done_sim,
                fails,
                announced,
                ..
            } = &mut d.kind
                && !*announced
                && now >= *done_sim
            {
                *announced = true;
                events.push(if *fails {
                    Event::DbCopyFailed {
                        copy: d.name.clone(),
                        source: source.clone(),
                        reason: "The database copy failed (SUSPECT).".into(),
                    }
                } else {
                    Event::DbCopyCompleted {
                        copy: d.name.clone(),
                        source: source.clone(),
                        schema_version: d.content.schema_version.clone(),
                    }
                });
            }
        }
        let mut restores = Vec::new();
        for t in &mut self.instance_dbs.rds_tasks {
            if !t.finished && now >= t.done_sim {
                t.finished = true;
                let lifecycle = if t.error.is_some() {
                    "ERROR"
                } else {
                    "SUCCESS"
                };
                events.push(Event::RdsTaskFinished {
                    task_id: t.id,
                    task_type: t.task_type.clone(),
                    lifecycle: lifecycle.into(),
                    s3_arn: t.s3_arn.clone(),
                });
                if t.task_type == "RESTORE_DB" && t.error.is_none() {
                    restores.push((t.database.clone(), t.s3_arn.clone()));
                }
            }
        }
        for e in events {
            self.record(e);
        }
        for (database, arn) in restores {
            let Some(content) = content(&arn) else {
                continue;
            };
            if database.eq_ignore_ascii_case(&self.database.name) {
                self.instance_dbs.octopus_absent = false;
                self.restore(&content, &arn);
                continue;
            }
            // Under another name: a new database beside production, which is untouched.
            let schema_version = content.schema_version.clone();
            self.instance_dbs.databases.push(OtherDatabase {
                name: database.clone(),
                kind: OtherKind::Plain,
                content,
                created_sim: now,
                files: Vec::new(),
            });
            self.record(Event::DbRestoredAs {
                database,
                path: arn,
                schema_version,
            });
        }
    }

    /// Renames a database, recording `db-renamed`. Renaming the Octopus database away leaves
    /// no Octopus database; renaming another one to its name makes its content the one the
    /// nodes read (a rollback).
    pub(crate) fn rename_database(&mut self, from: &str, to: &str) {
        let octopus = self.database.name.clone();
        if from.eq_ignore_ascii_case(&octopus) && !self.instance_dbs.octopus_absent {
            let content = self.snapshot();
            self.instance_dbs.databases.push(OtherDatabase {
                name: to.to_string(),
                kind: OtherKind::Plain,
                content,
                created_sim: self.now_sim(),
                files: Vec::new(),
            });
            self.instance_dbs.octopus_absent = true;
        } else if let Some(i) = self
            .instance_dbs
            .databases
            .iter()
            .position(|d| d.name.eq_ignore_ascii_case(from))
        {
            if to.eq_ignore_ascii_case(&octopus) {
                let d = self.instance_dbs.databases.remove(i);
                self.instance_dbs.octopus_absent = false;
                self.record(Event::DbRenamed {
                    from: from.to_string(),
                    to: to.to_string(),
                });
                self.restore(&d.content, &format!("rename:{from}"));
                return;
            }
            let d = &mut self.instance_dbs.databases[i];
            d.name = to.to_string();
            d.kind = OtherKind::Plain;
        }
        self.record(Event::DbRenamed {
            from: from.to_string(),
            to: to.to_string(),
        });
    }

    /// Drops another database, recording what it was.
    pub(crate) fn drop_database(&mut self, name: &str) {
        let Some(i) = self
            .instance_dbs
            .databases
            .iter()
            .position(|d| d.name.eq_ignore_ascii_case(name))
        else {
            return;
        };
        let d = self.instance_dbs.databases.remove(i);
        self.record(match d.kind {
            OtherKind::Snapshot { source } => Event::DbSnapshotDropped {
                snapshot: d.name,
                source,
            },
            _ => Event::DbDropped { database: d.name },
        });
    }
}
