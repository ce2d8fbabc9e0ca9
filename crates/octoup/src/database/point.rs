//! What the database can be taken back to: the rollback point a run made, as the journal
//! records it (`outputs.rollback_point` on the step that made it).

use serde::{Deserialize, Serialize};

use super::tsql::Media;

/// A rollback point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RollbackPoint {
    /// A full `COPY_ONLY, CHECKSUM` backup: every file (or blob) of its media set.
    Backup {
        media: Media,
        files: Vec<String>,
        /// What SQL Server reported: bytes written and seconds taken (the throughput
        /// the next run estimates with).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bytes: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seconds: Option<f64>,
    },
    /// An RDS native backup in S3 (`arn:aws:s3:::bucket/key`, `*` for several files).
    Rds { object: String, task_id: u64 },
    /// A database snapshot on the same instance.
    Snapshot { name: String },
    /// An Azure SQL Database copy.
    Copy { name: String },
    /// The hosting's own backup, taken by a configured command; restoring it is manual.
    External { command: String },
}

impl RollbackPoint {
    /// The same backup as another SQL Server sees it: each disk file by its name in `dir`
    /// (that server's path to the folder production's server wrote to, e.g. a UNC share).
    pub fn seen_from(&self, dir: &std::path::Path) -> RollbackPoint {
        let RollbackPoint::Backup {
            media: Media::Disk,
            files,
            bytes,
            seconds,
        } = self
        else {
            return self.clone();
        };
        let dir = dir.to_string_lossy();
        // The folder is written the way that server writes paths, not this machine's way.
        let sep = if dir.contains('\\') && !dir.contains('/') {
            '\\'
        } else {
            '/'
        };
        let dir = dir.trim_end_matches(['/', '\\']);
        RollbackPoint::Backup {
            media: Media::Disk,
            files: files
                .iter()
                .map(|f| {
                    let name = f.rsplit(['/', '\\']).next().unwrap_or(f);
                    format!("{dir}{sep}{name}")
                })
                .collect(),
            bytes: *bytes,
            seconds: *seconds,
        }
    }

    /// In words, for the report and messages.
    pub fn describe(&self) -> String {
        match self {
            RollbackPoint::Backup { files, .. } if files.len() == 1 => files[0].clone(),
            RollbackPoint::Backup { files, .. } => {
                format!("{} (+{} more stripes)", files[0], files.len() - 1)
            }
            RollbackPoint::Rds { object, task_id } => format!("{object} (RDS task {task_id})"),
            RollbackPoint::Snapshot { name } => format!("database snapshot {name}"),
            RollbackPoint::Copy { name } => format!("database copy {name}"),
            RollbackPoint::External { command } => format!("taken by `{command}`"),
        }
    }

    /// Held on the database server until released: it costs space (a snapshot's sparse
    /// files grow with every page written; a copy is a whole database).
    pub fn is_held(&self) -> bool {
        matches!(
            self,
            RollbackPoint::Snapshot { .. } | RollbackPoint::Copy { .. }
        )
    }

    /// octoup can restore it by itself.
    pub fn restorable(&self) -> bool {
        !matches!(self, RollbackPoint::External { .. })
    }
}

/// The name octoup gives what it makes next to the database: a snapshot or copy
/// (`OctopusDeploy_octoup_<stamp>`), or the upgraded database a rollback renames away
/// (`OctopusDeploy_octoup_failed_<stamp>`).
pub(crate) fn sibling(database: &str, what: &str, stamp: &str) -> String {
    let stamp: String = stamp
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{database}_octoup_{what}{stamp}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_round_trip_through_the_journal_format() {
        let points = [
            RollbackPoint::Backup {
                media: Media::Disk,
                files: vec!["a.bak".into(), "b.bak".into()],
                bytes: Some(10),
                seconds: Some(1.5),
            },
            RollbackPoint::Rds {
                object: "arn:aws:s3:::b/k.bak".into(),
                task_id: 7,
            },
            RollbackPoint::Snapshot { name: "s".into() },
            RollbackPoint::Copy { name: "c".into() },
            RollbackPoint::External {
                command: "gcloud".into(),
            },
        ];
        for p in points {
            let v = serde_json::to_value(&p).unwrap();
            assert!(v.get("kind").is_some(), "{v}");
            assert_eq!(serde_json::from_value::<RollbackPoint>(v).unwrap(), p);
        }
        assert_eq!(
            sibling("Octo", "", "20261202T180000Z-3fa1"),
            "Octo_octoup_20261202T180000Z_3fa1"
        );
        assert_eq!(sibling("Octo", "failed_", "s-1"), "Octo_octoup_failed_s_1");
    }
}
