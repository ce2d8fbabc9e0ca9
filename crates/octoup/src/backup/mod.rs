//! Backups taken before anything destructive: the master key and the license, in files
//! only their owner can read, each read back before it is trusted. (The database's rollback
//! point is [`crate::database`]'s.)
//!
//! The master key is never printed or logged: the command's output is marked sensitive and
//! the key is added to the run log's redaction list.

use std::path::{Path, PathBuf};

use crate::nodes::{NodeAgent, NodeError, file_safe};
use crate::octopus::api::ApiError;
use crate::process::runner::RunLog;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(
        "cannot write {path}: {source}. Check [backup] dir: it must be writable by the account running octoup"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the backup {path} does not read back as written ({detail}): the disk or share under [backup] dir does not keep what it is given. Use another [backup] dir"
    )]
    ReadBack { path: PathBuf, detail: String },
}

/// A file-name stamp, new for every engine: `20250304T091244Z-3fa1`. The random suffix keeps
/// two runs within one second (an undone run and its immediate re-run) from colliding on
/// the owner-only files, which are created with `create_new`.
pub(crate) fn stamp() -> String {
    crate::journal::new_run_id()
}

/// Reads the master key on `agent`'s node and writes it to an owner-only file in `dir`.
pub(crate) async fn save_master_key(
    agent: &dyn NodeAgent,
    dir: &Path,
    log: &RunLog,
    stamp: &str,
) -> Result<PathBuf, BackupError> {
    let key = agent.master_key().await?;
    log.redact(&key);
    let path = dir.join(format!(
        "master-key-{}-{stamp}.txt",
        file_safe(agent.name())
    ));
    write_private(&path, format!("{}\n", key.expose()).as_bytes())?;
    Ok(path)
}

/// Saves the license XML (`licenses-current`) to an owner-only file in `dir`.
pub(crate) fn save_license(text: &str, dir: &Path, stamp: &str) -> Result<PathBuf, BackupError> {
    let path = dir.join(format!("license-{stamp}.xml"));
    write_private(&path, text.as_bytes())?;
    Ok(path)
}

/// Writes an owner-only backup file, then reads it back: a backup is trusted only once
/// the file holds exactly what was written.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    crate::process::platform::write_owner_only(path, bytes).map_err(|source| {
        BackupError::Write {
            path: path.to_path_buf(),
            source,
        }
    })?;
    check_written(path, bytes)
}

/// The file at `path` holds exactly `bytes` (the error never shows them: they are secret).
fn check_written(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let back = std::fs::read(path).map_err(|e| BackupError::ReadBack {
        path: path.to_path_buf(),
        detail: format!("cannot read it back: {e}"),
    })?;
    if back == bytes {
        return Ok(());
    }
    let detail = match back.iter().zip(bytes).position(|(a, b)| a != b) {
        _ if back.len() != bytes.len() => {
            format!("{} bytes written, {} read back", bytes.len(), back.len())
        }
        Some(at) => format!("{} bytes, different from byte {at} on", bytes.len()),
        None => "different".into(),
    };
    Err(BackupError::ReadBack {
        path: path.to_path_buf(),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_is_read_back_and_compared_with_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = save_license("<License>abc</License>", dir.path(), "s1").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "<License>abc</License>"
        );
        // A share that keeps something else (cut short, or changed) is caught, by path,
        // without showing what the file should hold.
        std::fs::write(&path, "<License>ab").unwrap();
        let err = check_written(&path, b"<License>abc</License>")
            .unwrap_err()
            .to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("22 bytes written, 11 read back"), "{err}");
        assert!(!err.contains("abc"), "the content stays out: {err}");
        std::fs::write(&path, "<License>abd</License>").unwrap();
        let err = check_written(&path, b"<License>abc</License>")
            .unwrap_err()
            .to_string();
        assert!(err.contains("different from byte 11 on"), "{err}");
        std::fs::remove_file(&path).unwrap();
        let err = check_written(&path, b"x").unwrap_err().to_string();
        assert!(err.contains("cannot read it back"), "{err}");
    }
}
