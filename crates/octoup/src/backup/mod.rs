//! Backups taken before anything destructive: the master key and the license (files only
//! their owner can read), and the database (`COPY_ONLY, CHECKSUM`, then `RESTORE
//! VERIFYONLY`) through the configured `sqlcmd` argv.
//!
//! The master key is never printed or logged: the command's output is marked sensitive and
//! the key is added to the run log's redaction list. The SQL password reaches `sqlcmd` only
//! as `SQLCMDPASSWORD` in its environment.

pub mod tsql;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Config, ConfigError, Secret};
use crate::nodes::{NodeAgent, NodeError, file_safe};
use crate::octopus::api::ApiError;
use crate::process::runner::{CommandOutput, CommandRunner, CommandSpec, RunError, RunLog};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Config(#[from] ConfigError),
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
    #[error("{what} failed ({code}): {tail}")]
    Sql {
        what: String,
        code: String,
        tail: String,
    },
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

/// How to reach the database.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub sqlcmd: Vec<String>,
    pub password: Option<Secret>,
    pub database: String,
    /// Where SQL Server writes backups (a path the SQL Server can write).
    pub backup_dir: PathBuf,
    pub compression: bool,
    pub timeout: Duration,
    /// The setting `timeout` comes from, for the message when it runs out.
    pub timeout_setting: &'static str,
}

impl Sql {
    pub fn from_config(config: &Config) -> Result<Sql, ConfigError> {
        Ok(Sql {
            sqlcmd: config.database.sqlcmd.clone(),
            password: config.sql_password()?,
            database: config.database.name.clone(),
            backup_dir: config.database.backup_dir.clone(),
            compression: config.database.compression,
            timeout: Duration::from_secs(config.timeouts.backup),
            timeout_setting: "[timeouts] backup",
        })
    }

    /// `OctopusDeploy-2024.1.10-20250304T091244Z.bak`: the database, the version it holds
    /// and when (the vendor script lost the name to a PowerShell variable typo).
    pub(crate) fn backup_path(&self, from_version: &str, stamp: &str) -> PathBuf {
        self.backup_dir.join(format!(
            "{}-{}-{stamp}.bak",
            file_safe(&self.database),
            file_safe(from_version)
        ))
    }

    async fn run(
        &self,
        runner: &dyn CommandRunner,
        what: &str,
        sql: String,
    ) -> Result<CommandOutput, BackupError> {
        self.run_with(runner, what, &[], sql).await
    }

    /// Runs `sql` with extra sqlcmd `options` before `-Q` (the doctor's output format).
    pub(crate) async fn run_with(
        &self,
        runner: &dyn CommandRunner,
        what: &str,
        options: &[&str],
        sql: String,
    ) -> Result<CommandOutput, BackupError> {
        let mut argv = self.sqlcmd.clone();
        argv.extend(options.iter().map(|o| o.to_string()));
        argv.push("-Q".into());
        argv.push(sql);
        let mut spec =
            CommandSpec::new(what, argv, self.timeout).timeout_setting(self.timeout_setting);
        if let Some(pw) = &self.password {
            spec = spec.env("SQLCMDPASSWORD", pw.clone());
        }
        let out = runner.run(spec).await?;
        if !out.success() {
            return Err(BackupError::Sql {
                what: what.to_string(),
                code: out.code_text(),
                tail: out.tail(6),
            });
        }
        Ok(out)
    }

    /// `BACKUP DATABASE … WITH COPY_ONLY, CHECKSUM` to a new file; returns its path.
    pub(crate) async fn backup(
        &self,
        runner: &dyn CommandRunner,
        from_version: &str,
        stamp: &str,
    ) -> Result<PathBuf, BackupError> {
        let path = self.backup_path(from_version, stamp);
        // Best effort: when the directory is local, SQL Server needs it to exist; when it is
        // a share seen only by the SQL Server, creating it here may fail and that is fine.
        let _ = std::fs::create_dir_all(&self.backup_dir);
        let sql = tsql::backup_database(
            &self.database,
            &path.to_string_lossy(),
            tsql::BackupOptions {
                compression: self.compression,
            },
        );
        self.run(runner, "database backup", sql).await?;
        Ok(path)
    }

    /// `RESTORE VERIFYONLY` on a backup file.
    pub(crate) async fn verify(
        &self,
        runner: &dyn CommandRunner,
        path: &Path,
    ) -> Result<(), BackupError> {
        let sql = tsql::verify_backup(&path.to_string_lossy());
        self.run(runner, "backup verification", sql).await?;
        Ok(())
    }

    /// `RESTORE DATABASE … WITH REPLACE` (for a full rollback).
    pub(crate) async fn restore(
        &self,
        runner: &dyn CommandRunner,
        path: &Path,
    ) -> Result<(), BackupError> {
        let sql = tsql::restore_database(&self.database, &path.to_string_lossy());
        self.run(runner, "database restore", sql).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// Records every spec and answers with a fixed exit code.
    struct Recorder {
        specs: Mutex<Vec<CommandSpec>>,
        code: i32,
    }

    #[async_trait]
    impl CommandRunner for Recorder {
        async fn run(&self, spec: CommandSpec) -> Result<CommandOutput, RunError> {
            self.specs.lock().unwrap().push(spec);
            Ok(CommandOutput {
                code: Some(self.code),
                stdout: "Msg 3201, Level 16: Cannot open backup device".into(),
                ..CommandOutput::default()
            })
        }
    }

    fn sql(dir: &Path) -> Sql {
        Sql {
            sqlcmd: vec![
                "sqlcmd".into(),
                "-S".into(),
                "db".into(),
                "-U".into(),
                "octoup".into(),
            ],
            password: Some(Secret::new("Sq1-pass'word")),
            database: "Octo']pus".into(),
            backup_dir: dir.to_path_buf(),
            compression: false,
            timeout: Duration::from_secs(5),
            timeout_setting: "[timeouts] backup",
        }
    }

    #[tokio::test]
    async fn the_password_goes_in_the_environment_and_names_are_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Recorder {
            specs: Mutex::new(Vec::new()),
            code: 0,
        };
        let s = sql(dir.path());
        let path = s
            .backup(&runner, "2024.1.10", "20250101T000000Z")
            .await
            .unwrap();
        assert!(
            path.to_string_lossy()
                .contains("Octo__pus-2024.1.10-20250101T000000Z.bak")
        );
        s.verify(&runner, &path).await.unwrap();
        let specs = runner.specs.lock().unwrap();
        let backup = &specs[0];
        assert_eq!(backup.argv[backup.argv.len() - 2], "-Q");
        let q = backup.argv.last().unwrap();
        assert!(
            q.starts_with("BACKUP DATABASE [Octo']]pus] TO DISK = N'"),
            "{q}"
        );
        assert!(q.ends_with("WITH COPY_ONLY, CHECKSUM;"), "{q}");
        assert!(
            specs[1]
                .argv
                .last()
                .unwrap()
                .starts_with("RESTORE VERIFYONLY FROM DISK = N'")
        );
        for spec in specs.iter() {
            assert!(spec.argv.iter().all(|a| !a.contains("pass'word")));
            assert_eq!(spec.env[0].0, "SQLCMDPASSWORD");
            assert_eq!(spec.env[0].1.expose(), "Sq1-pass'word");
        }
    }

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

    #[tokio::test]
    async fn a_failed_backup_shows_the_server_message() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Recorder {
            specs: Mutex::new(Vec::new()),
            code: 1,
        };
        let err = sql(dir.path()).backup(&runner, "1", "2").await.unwrap_err();
        assert!(
            err.to_string().contains("Cannot open backup device"),
            "{err}"
        );
    }
}
