//! A rehearsal's journal: `state/rehearsals/<id>.json`, written atomically after every
//! change. What it names (the scratch database, the container and the network, or the
//! Windows host's rehearsal instance) is written
//! *before* it is made, so a rehearsal killed at any point leaves a record that
//! `octoup rehearse --cleanup` (or the next rehearsal) tears down.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::RehearsalHost;
use crate::database::{Hosting, Media, RollbackPoint};
use crate::doctor::finding::Findings;
use crate::process::fsutil;
use crate::version::Version;

use super::RehearsalError;

const FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RehearsalStatus {
    /// Working now, or killed (then its teardown is pending).
    Running,
    /// The target started on the copy and every check passed.
    Go,
    /// The copy, the migrations, the start or a check failed: the reasons say which.
    NoGo,
    /// Stopped by Ctrl-C before a verdict.
    Interrupted,
    /// The rehearsal could not be carried out (Docker, the copy, the config): the error
    /// says why. It says nothing about the upgrade.
    Failed,
}

impl RehearsalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RehearsalStatus::Running => "running",
            RehearsalStatus::Go => "go",
            RehearsalStatus::NoGo => "no-go",
            RehearsalStatus::Interrupted => "interrupted",
            RehearsalStatus::Failed => "failed",
        }
    }
}

/// A measured phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// `backup`, `verify`, `restore`, `copy`, `disarm`, `migrations-and-start`, `checks`;
    /// on the Windows host `install`, `instance`, `database-upgrade`, `start` instead of
    /// `migrations-and-start`.
    pub name: String,
    pub seconds: f64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Where a rehearsal's backup is: files the SQL Server wrote, blobs (Managed Instance), or
/// an RDS native backup in S3.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupMedia {
    #[default]
    Disk,
    Url,
    S3,
}

impl BackupMedia {
    fn is_disk(&self) -> bool {
        *self == BackupMedia::Disk
    }
}

/// The backup a rehearsal restored from (kept: the next rehearsal may reuse it). COPY_ONLY
/// except on RDS, whose procedure has no such option.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupUsed {
    /// Every file or blob of the media set; on RDS the S3 object (`*` for several files).
    pub files: Vec<String>,
    /// Records from before Managed Instance and RDS copies are disk backups.
    #[serde(default, skip_serializing_if = "BackupMedia::is_disk")]
    pub media: BackupMedia,
    /// The version the database held when it was taken.
    pub schema: Version,
    pub taken: Timestamp,
    /// `RESTORE VERIFYONLY` passed on it.
    pub verified: bool,
    /// The rehearsal that took it, when this one reused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
}

impl BackupUsed {
    /// What a fresh backup was taken to, unverified; `None` for a point that is no backup.
    pub(crate) fn taken(point: &RollbackPoint, schema: &Version) -> Option<BackupUsed> {
        let (media, files) = match point {
            RollbackPoint::Backup {
                media: Media::Disk,
                files,
                ..
            } => (BackupMedia::Disk, files.clone()),
            RollbackPoint::Backup {
                media: Media::Url,
                files,
                ..
            } => (BackupMedia::Url, files.clone()),
            RollbackPoint::Rds { object, .. } => (BackupMedia::S3, vec![object.clone()]),
            _ => return None,
        };
        Some(BackupUsed {
            files,
            media,
            schema: schema.clone(),
            taken: Timestamp::now(),
            verified: false,
            reused_from: None,
        })
    }

    /// The backup as something to restore from (a reused one is not verified again).
    pub(crate) fn point(&self) -> RollbackPoint {
        match self.media {
            BackupMedia::Disk | BackupMedia::Url => RollbackPoint::Backup {
                media: if self.media == BackupMedia::Url {
                    Media::Url
                } else {
                    Media::Disk
                },
                files: self.files.clone(),
                bytes: None,
                seconds: None,
            },
            BackupMedia::S3 => RollbackPoint::Rds {
                object: self.files.first().cloned().unwrap_or_default(),
                // Only the object is restored from; the task that wrote it is long done.
                task_id: 0,
            },
        }
    }
}

/// The rehearsal instance the Windows host makes on the spare node (named before it is
/// made, so a teardown after a kill finds it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowsInstance {
    /// The spare node (`[rehearsal.windows.node] name`).
    pub node: String,
    pub instance: String,
    pub home: String,
    pub config: String,
    /// Where the rehearsal instance's API is reached.
    pub url: String,
    /// Whether the instance may exist (set before `create-instance`).
    pub made: bool,
    /// What `database-upgrade-status` said (absent: the target predates it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_status: Option<String>,
}

/// What was torn down, and whether all of it is gone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Teardown {
    pub done: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
    /// In words, one line per thing removed (or what could not be).
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rehearsal {
    pub format: u32,
    pub id: String,
    pub created: Timestamp,
    pub updated: Timestamp,
    pub pid: u32,
    pub from: Version,
    pub target: Version,
    pub status: RehearsalStatus,
    /// `restore` (a disk backup restored under a new name), `restore-from-url` (Managed
    /// Instance), `rds-restore` (Amazon RDS) or `copy` (Azure `AS COPY OF`).
    pub copy_method: String,
    /// The hosting the scratch database is on (how it is dropped: RDS has its procedure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosting: Option<Hosting>,
    /// The rehearsal SQL Server (`[rehearsal.sql]`) the scratch database is on; absent:
    /// production's (where the teardown, and `--cleanup` after a kill, drop it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_server: Option<String>,
    pub scratch_database: String,
    /// Whether the scratch database may exist (set before the statement that makes it).
    pub scratch_made: bool,
    /// Whether the network or the container may exist (set before the first is made).
    #[serde(default)]
    pub docker_made: bool,
    /// The rehearsal host (records before it was recorded are Docker's).
    #[serde(default)]
    pub host: RehearsalHost,
    /// The Windows host's rehearsal instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<WindowsInstance>,
    pub container: String,
    pub network: String,
    pub image: String,
    /// The digest (or local id) of the image that ran: what to pin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupUsed>,
    pub phases: Vec<Phase>,
    /// Why the verdict is no-go (empty for go).
    pub reasons: Vec<String>,
    pub findings: Findings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The last lines of the rehearsal server's log, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_excerpt: Option<String>,
    pub teardown: Teardown,
}

impl Rehearsal {
    pub(crate) fn new(id: &str, from: Version, target: Version, prefix: &str) -> Rehearsal {
        let now = Timestamp::now();
        let short = id.replace(['-', 'T', 'Z'], "");
        Rehearsal {
            format: FORMAT,
            id: id.to_string(),
            created: now,
            updated: now,
            pid: std::process::id(),
            from,
            target,
            status: RehearsalStatus::Running,
            copy_method: String::new(),
            hosting: None,
            sql_server: None,
            scratch_database: format!("{prefix}_{short}"),
            scratch_made: false,
            docker_made: false,
            host: RehearsalHost::Docker,
            windows: None,
            container: format!("octoup-rehearsal-{}", id.to_ascii_lowercase()),
            network: format!("octoup-rehearsal-{}", id.to_ascii_lowercase()),
            image: String::new(),
            image_digest: None,
            backup: None,
            phases: Vec::new(),
            reasons: Vec::new(),
            findings: Findings::default(),
            error: None,
            log_excerpt: None,
            teardown: Teardown::default(),
        }
    }

    pub fn phase(&self, name: &str) -> Option<&Phase> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// The migrations as measured (what the plan uses for the database upgrade): the
    /// Windows host's timed `database --upgrade`, else the Docker host's migrations and
    /// start (an upper bound).
    pub fn migration_seconds(&self) -> Option<f64> {
        self.phase(DATABASE_UPGRADE)
            .or_else(|| self.phase(MIGRATIONS))
            .map(|p| p.seconds)
    }

    /// Whether this rehearsal's host may have made something (a container, a network, a
    /// rehearsal instance).
    pub(crate) fn host_made(&self) -> bool {
        self.docker_made || self.windows.as_ref().is_some_and(|w| w.made)
    }
}

/// The phase the plan reads on the Docker host (the server migrates at start).
pub const MIGRATIONS: &str = "migrations-and-start";
/// The phase the plan reads on the Windows host: `database --upgrade` alone.
pub const DATABASE_UPGRADE: &str = "database-upgrade";

/// Where rehearsals are journaled.
#[derive(Debug, Clone)]
pub(crate) struct Rehearsals {
    dir: PathBuf,
}

impl Rehearsals {
    pub fn new(state_dir: &Path) -> Rehearsals {
        Rehearsals {
            dir: state_dir.join("rehearsals"),
        }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    pub fn save(&self, r: &mut Rehearsal) -> Result<(), RehearsalError> {
        r.updated = Timestamp::now();
        let bytes = serde_json::to_vec_pretty(r).map_err(|e| RehearsalError::Journal {
            path: self.path(&r.id),
            detail: e.to_string(),
        })?;
        fsutil::write_atomic(&self.path(&r.id), &bytes).map_err(|e| RehearsalError::Journal {
            path: self.path(&r.id),
            detail: e.to_string(),
        })
    }

    /// Every rehearsal, oldest first. One that cannot be read is an error naming it: it
    /// may hold leftovers to tear down.
    pub fn all(&self) -> Result<Vec<Rehearsal>, RehearsalError> {
        if !self.dir.exists() {
            return Ok(Vec::new());
        }
        let paths = fsutil::json_files(&self.dir).map_err(|e| RehearsalError::Journal {
            path: self.dir.clone(),
            detail: e.to_string(),
        })?;
        let mut out = Vec::new();
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(|e| RehearsalError::Journal {
                path: p.clone(),
                detail: e.to_string(),
            })?;
            let r: Rehearsal = serde_json::from_str(&text).map_err(|e| RehearsalError::Journal {
                path: p.clone(),
                detail: format!("{e}; move the file away once its container, network and scratch database are gone"),
            })?;
            out.push(r);
        }
        out.sort_by_key(|r| r.created);
        Ok(out)
    }
}

/// The newest go rehearsal to `target`: what the plan measures the database upgrade by.
pub fn newest_go<'a>(all: &'a [Rehearsal], target: &Version) -> Option<&'a Rehearsal> {
    all.iter().rev().find(|r| {
        r.status == RehearsalStatus::Go && &r.target == target && r.migration_seconds().is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_round_trips_to_what_it_is_restored_from() {
        let from: Version = "2024.1.10".parse().unwrap();
        let points = [
            RollbackPoint::Backup {
                media: Media::Disk,
                files: vec!["/b/a.bak".into()],
                bytes: Some(1),
                seconds: Some(1.0),
            },
            RollbackPoint::Backup {
                media: Media::Url,
                files: vec!["https://a/c/1of2.bak".into(), "https://a/c/2of2.bak".into()],
                bytes: None,
                seconds: None,
            },
            RollbackPoint::Rds {
                object: "arn:aws:s3:::b/p/x.bak".into(),
                task_id: 7,
            },
        ];
        for p in points {
            let used = BackupUsed::taken(&p, &from).unwrap();
            assert!(!used.verified);
            let json = serde_json::to_value(&used).unwrap();
            let back: BackupUsed = serde_json::from_value(json).unwrap();
            match (back.point(), &p) {
                (RollbackPoint::Rds { object, .. }, RollbackPoint::Rds { object: o, .. }) => {
                    assert_eq!(&object, o)
                }
                (
                    RollbackPoint::Backup { media, files, .. },
                    RollbackPoint::Backup {
                        media: m, files: f, ..
                    },
                ) => assert_eq!((&media, &files), (m, f)),
                other => panic!("{other:?}"),
            }
        }
        assert!(BackupUsed::taken(&RollbackPoint::Copy { name: "c".into() }, &from).is_none());
        // Records from before media was recorded are disk backups.
        let old: BackupUsed = serde_json::from_str(
            r#"{"files":["/b/a.bak"],"schema":"2024.1.10","taken":"2026-12-03T10:15:00Z","verified":true}"#,
        )
        .unwrap();
        assert_eq!(old.media, BackupMedia::Disk);
    }
}
