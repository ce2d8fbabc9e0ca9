//! The installer cache: downloads, verifies and keeps Octopus installers before the outage.
//!
//! Layout under the cache directory:
//! ```text
//! partial/<version>/Octopus.<version>-x64.msi.part   download in progress (resumable)
//! partial/<version>/download.lock                    held while a process downloads it
//! <version>/<sha256>/Octopus.<version>-x64.msi       a complete installer
//! <version>/<sha256>/receipt.json                    written last: only then the entry counts
//! ```
//! An entry without a receipt, or whose size or digest no longer matches it, is never used.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::installer::download::{
    DownloadError, DownloadJob, DownloadOptions, RetryPolicy, download_resumable,
};
use crate::installer::verify::{
    self, ExpectedHash, HashSource, VerifiedBy, VerifyError, check_agreement, check_digest,
    parse_sha256, parse_sidecar, run_verify_command,
};
use crate::octopus::http::{HttpClient, redact_url};
use crate::process::fsutil::{
    self, remove_file_if_exists, rename_with_retry, sync_dir, write_atomic,
};
use crate::process::runner::CommandRunner;
use crate::progress::Progress;
use crate::version::Version;

/// Name of the receipt beside each cached installer.
pub(crate) const RECEIPT: &str = "receipt.json";
const PARTIAL_DIR: &str = "partial";
const LOCK_FILE: &str = "download.lock";

/// How installers are found, verified and kept.
#[derive(Debug, Clone)]
pub struct InstallerSettings {
    /// Download URL with `{version}`.
    pub url_template: String,
    /// SHA-256 pin for the target's installer (`installer.sha256`).
    pub sha256: Option<String>,
    /// Sidecar URL or file with the digest; `{version}` is filled in. Without `{version}`
    /// it describes the target only, like the pin.
    pub sidecar: Option<String>,
    /// argv run on `{installer}`; exit 0 = trusted.
    pub verify: Vec<String>,
    pub verify_timeout: Duration,
    /// Accept an installer nothing vouches for.
    pub allow_unverified: bool,
    pub cache_dir: PathBuf,
    /// On a cache hit, check only the size against the receipt, not the digest.
    pub trust_receipt: bool,
    /// Partial downloads older than this are deleted by [`InstallerCache::clean_partials`].
    pub partial_max_age: Duration,
    pub download: DownloadOptions,
}

impl InstallerSettings {
    pub fn from_config(config: &Config) -> Self {
        let i = &config.installer;
        InstallerSettings {
            url_template: i.url.clone(),
            sha256: i.sha256.clone().filter(|s| !s.trim().is_empty()),
            sidecar: i.sidecar.clone().filter(|s| !s.trim().is_empty()),
            verify: i.verify.clone(),
            verify_timeout: Duration::from_secs(config.timeouts.command),
            allow_unverified: i.allow_unverified,
            cache_dir: config.cache_dir(),
            trust_receipt: false,
            partial_max_age: Duration::from_secs(7 * 24 * 3600),
            download: DownloadOptions {
                retry: RetryPolicy {
                    attempts_without_progress: i.download_retries.max(1),
                    give_up_after: Duration::from_secs(i.download_give_up_minutes.max(1) * 60),
                    ..RetryPolicy::default()
                },
                ..DownloadOptions::default()
            },
        }
    }
}

/// Why an installer is wanted; it decides which target-only sources apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The version being installed: `installer.sha256` and a version-less sidecar apply.
    Target,
    /// The installed version, kept for a rollback: only per-version sources apply.
    Rollback,
}

/// A complete, verified installer on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedInstaller {
    pub version: String,
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub verified_by: Vec<VerifiedBy>,
    /// Found in the cache (no network used).
    pub cached: bool,
}

/// What is known about a cached installer; written after it passed every check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub version: String,
    pub sha256: String,
    pub size: u64,
    pub url: String,
    pub verified_by: Vec<VerifiedBy>,
    pub fetched_at: jiff::Timestamp,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallerError {
    #[error(
        "cannot use the installer cache directory {path}: {source}. Make it a directory writable by the account running octoup, or set installer.cache_dir"
    )]
    CacheDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "another octoup is downloading the {version} installer (it holds {lock}); wait for it to finish, then run again"
    )]
    Busy { version: String, lock: PathBuf },
    #[error("installer.sha256 = {0:?} is not a SHA-256 (expected 64 hex digits)")]
    BadPin(String),
    #[error("installer for {version}: {source}")]
    Download {
        version: String,
        #[source]
        source: Box<DownloadError>,
    },
    #[error("installer for {version}: {source}")]
    Verify {
        version: String,
        #[source]
        source: Box<VerifyError>,
    },
    #[error(
        "cannot store the {version} installer at {path}: {source}. Check free space and permissions of installer.cache_dir"
    )]
    Store {
        version: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl InstallerError {
    /// The verification failure behind this error, if that is what it is.
    pub fn verify_error(&self) -> Option<&VerifyError> {
        match self {
            InstallerError::Verify { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The download failure behind this error, if that is what it is.
    pub fn download_error(&self) -> Option<&DownloadError> {
        match self {
            InstallerError::Download { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Finds, downloads and verifies installers. Cheap to clone.
#[derive(Clone)]
pub struct InstallerCache {
    settings: Arc<InstallerSettings>,
    client: HttpClient,
    runner: Arc<dyn CommandRunner>,
}

impl InstallerCache {
    pub fn new(
        settings: InstallerSettings,
        client: HttpClient,
        runner: Arc<dyn CommandRunner>,
    ) -> Self {
        InstallerCache {
            settings: Arc::new(settings),
            client,
            runner,
        }
    }

    /// The installer's file name: `Octopus.<version>-x64.msi`.
    pub(crate) fn file_name(version: &Version) -> String {
        format!("Octopus.{}-x64.msi", path_safe(version))
    }

    /// The download URL for `version`.
    pub(crate) fn url(&self, version: &Version) -> String {
        self.settings
            .url_template
            .replace("{version}", &version.to_string())
    }

    /// Returns a verified installer for `version`: from the cache when a valid entry is
    /// there (re-checked against its receipt; no network), else downloaded (resuming any
    /// partial), verified against every applicable source, and stored.
    ///
    /// Call it before the outage for the target ([`Role::Target`]) and, when rollback is
    /// enabled, for the installed version ([`Role::Rollback`]).
    pub async fn ensure_installer(
        &self,
        version: &Version,
        role: Role,
        progress: &dyn Progress,
    ) -> Result<StagedInstaller, InstallerError> {
        let label = format!("Octopus {version} installer");
        let pin = self.pin(role)?;
        let me = self.clone();
        let (v, p) = (version.clone(), pin.clone());
        // Hashing a cached 1.4 GB file takes a second: keep it off the async workers.
        let hit = tokio::task::spawn_blocking(move || me.lookup(&v, p.as_deref()))
            .await
            .map_err(|e| self.cache_dir_error(&self.settings.cache_dir, io::Error::other(e)))??;
        if let Some(mut staged) = hit {
            self.run_verify(version, &staged.path, &mut staged.verified_by, false)
                .await?;
            progress.message(&format!(
                "{label}: using the cached {} ({} bytes, verified by {})",
                staged.path.display(),
                staged.size,
                describe(&staged.verified_by)
            ));
            return Ok(staged);
        }
        let result = self.fetch(version, role, pin, &label, progress).await;
        progress.finish(&match &result {
            Ok(s) => format!("{label}: verified ({})", describe(&s.verified_by)),
            // The error itself reaches the operator through the caller.
            Err(_) => format!("{label}: failed"),
        });
        result
    }

    /// A valid cached installer for `version` (matching `pin` when given), re-checked
    /// against its receipt: size always, digest unless `trust_receipt`. Entries that fail
    /// the check are deleted. Blocking (it hashes the file).
    pub fn lookup(
        &self,
        version: &Version,
        pin: Option<&str>,
    ) -> Result<Option<StagedInstaller>, InstallerError> {
        let vdir = self.settings.cache_dir.join(path_safe(version));
        let entries = match fs::read_dir(&vdir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.cache_dir_error(&vdir, e)),
        };
        let mut receipts: Vec<(PathBuf, Receipt)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let sha = parse_sha256(&name).filter(|s| *s == name)?;
                if pin.is_some_and(|p| p != sha) {
                    return None;
                }
                let receipt: Receipt =
                    serde_json::from_slice(&fs::read(e.path().join(RECEIPT)).ok()?).ok()?;
                (receipt.sha256 == sha && receipt.version == version.to_string())
                    .then(|| (e.path(), receipt))
            })
            .filter(|(_, r)| !r.verified_by.is_empty() || self.settings.allow_unverified)
            .collect();
        receipts.sort_by_key(|r| std::cmp::Reverse(r.1.fetched_at));
        for (dir, receipt) in receipts {
            let path = dir.join(Self::file_name(version));
            match self.recheck(&path, &receipt) {
                Ok(()) => {
                    return Ok(Some(StagedInstaller {
                        version: receipt.version,
                        path,
                        sha256: receipt.sha256,
                        size: receipt.size,
                        verified_by: receipt.verified_by,
                        cached: true,
                    }));
                }
                Err(why) => {
                    tracing::warn!(path = %path.display(), %why, "discarding a damaged cached installer");
                    let _ = fs::remove_dir_all(&dir);
                }
            }
        }
        Ok(None)
    }

    /// Deletes partial downloads of versions not in `keep` and those older than
    /// `partial_max_age`, skipping any a running download holds. Returns what it deleted.
    pub fn clean_partials(&self, keep: &[&Version]) -> Result<Vec<PathBuf>, InstallerError> {
        let root = self.settings.cache_dir.join(PARTIAL_DIR);
        let entries = match fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.cache_dir_error(&root, e)),
        };
        let keep: Vec<String> = keep.iter().map(|v| path_safe(v)).collect();
        let mut removed = Vec::new();
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = !keep.contains(&name) || older_than(&path, self.settings.partial_max_age);
            if !stale {
                continue;
            }
            if path.is_dir() {
                // A download in progress holds the lock: leave it alone.
                if let Ok(lock) = File::options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path.join(LOCK_FILE))
                    && lock.try_lock().is_err()
                {
                    continue;
                }
                if fs::remove_dir_all(&path).is_ok() {
                    removed.push(path);
                }
            } else if remove_file_if_exists(&path).is_ok() {
                removed.push(path);
            }
        }
        Ok(removed)
    }

    fn pin(&self, role: Role) -> Result<Option<String>, InstallerError> {
        match (&self.settings.sha256, role) {
            (Some(pin), Role::Target) => parse_sha256(pin)
                .map(Some)
                .ok_or_else(|| InstallerError::BadPin(pin.clone())),
            _ => Ok(None),
        }
    }

    fn recheck(&self, path: &Path, receipt: &Receipt) -> Result<(), String> {
        let size = fs::metadata(path).map_err(|e| e.to_string())?.len();
        if size != receipt.size {
            return Err(format!("size {size}, receipt says {}", receipt.size));
        }
        if !self.settings.trust_receipt {
            let (sha, _) = verify::hash_file(path).map_err(|e| e.to_string())?;
            if sha != receipt.sha256 {
                return Err(format!("SHA-256 {sha}, receipt says {}", receipt.sha256));
            }
        }
        Ok(())
    }

    /// Downloads, verifies and stores; the partial's lock is held throughout.
    async fn fetch(
        &self,
        version: &Version,
        role: Role,
        pin: Option<String>,
        label: &str,
        progress: &dyn Progress,
    ) -> Result<StagedInstaller, InstallerError> {
        let url = self.url(version);
        let file_name = Self::file_name(version);
        let partial_dir = self
            .settings
            .cache_dir
            .join(PARTIAL_DIR)
            .join(path_safe(version));
        fs::create_dir_all(&partial_dir).map_err(|e| self.cache_dir_error(&partial_dir, e))?;
        let lock_path = partial_dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| self.cache_dir_error(&lock_path, e))?;
        if lock.try_lock().is_err() {
            return Err(InstallerError::Busy {
                version: version.to_string(),
                lock: lock_path,
            });
        }
        let part = partial_dir.join(format!("{file_name}.part"));
        let verify_err = |source| InstallerError::Verify {
            version: version.to_string(),
            source: Box::new(source),
        };

        // Sources known before any byte: a disagreement stops here, not after 1.4 GB.
        let mut known = Vec::new();
        if let Some(sha256) = pin {
            known.push(ExpectedHash {
                source: HashSource::Pinned,
                sha256,
            });
        }
        if let Some(sidecar) = self.sidecar_expected(version, role, &file_name).await {
            known.push(sidecar.map_err(verify_err)?);
        }
        let what = format!("the {version} installer");
        check_agreement(&what, &known).map_err(verify_err)?;

        let has_command = !self.settings.verify.is_empty();
        let allow_unverified = self.settings.allow_unverified;
        let shown_url = redact_url(&url);
        let check_header = |header: Option<&str>| {
            let all = with_header(&known, header);
            if all.is_empty() && !has_command && !allow_unverified {
                return Err(VerifyError::Unverified {
                    url: shown_url.clone(),
                });
            }
            check_agreement(&what, &all)
        };
        let downloaded = download_resumable(&DownloadJob {
            client: &self.client,
            url: &url,
            part: &part,
            opts: &self.settings.download,
            progress,
            label,
            check_header: &check_header,
        })
        .await;
        let downloaded = match downloaded {
            Ok(d) => d,
            Err(DownloadError::Verify(source)) => {
                // A partial some source contradicts is not worth resuming.
                let _ = remove_file_if_exists(&part);
                return Err(verify_err(source));
            }
            Err(source) => {
                return Err(InstallerError::Download {
                    version: version.to_string(),
                    source: Box::new(source),
                });
            }
        };

        let expected = with_header(&known, downloaded.header_sha256.as_deref());
        let mut verified_by = match check_digest(&part, &downloaded.sha256, &expected) {
            Ok(by) => by,
            Err(e) => {
                let _ = remove_file_if_exists(&part);
                return Err(verify_err(e));
            }
        };

        // Into its final place, then the command check, then the receipt that makes it valid.
        let dir = self.entry_dir(version, &downloaded.sha256);
        let path = dir.join(&file_name);
        let store_err = |p: &Path, e| self.store_error(version, p, e);
        fs::create_dir_all(&dir).map_err(|e| store_err(&dir, e))?;
        remove_file_if_exists(&dir.join(RECEIPT)).map_err(|e| store_err(&dir, e))?;
        rename_with_retry(&part, &path).map_err(|e| store_err(&path, e))?;
        sync_dir(&dir).map_err(|e| store_err(&dir, e))?;
        if let Err(e) = self
            .run_verify(version, &path, &mut verified_by, true)
            .await
        {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        if verified_by.is_empty() {
            tracing::warn!(version = %version, "installer accepted unverified (installer.allow_unverified = true)");
            progress.message(&format!(
                "{label}: nothing vouches for it; accepted because installer.allow_unverified = true"
            ));
        }
        let receipt = Receipt {
            version: version.to_string(),
            sha256: downloaded.sha256.clone(),
            size: downloaded.size,
            url: redact_url(&url),
            verified_by: verified_by.clone(),
            fetched_at: jiff::Timestamp::now(),
        };
        let json = serde_json::to_vec_pretty(&receipt)
            .map_err(|e| store_err(&dir, io::Error::other(e)))?;
        let receipt_path = dir.join(RECEIPT);
        if let Err(e) = write_atomic(&receipt_path, &json) {
            let _ = fs::remove_dir_all(&dir);
            return Err(store_err(&receipt_path, e));
        }
        drop(lock);
        Ok(StagedInstaller {
            version: version.to_string(),
            path,
            sha256: downloaded.sha256,
            size: downloaded.size,
            verified_by,
            cached: false,
        })
    }

    /// Runs `installer.verify` if set; on rejection of a fresh download the caller deletes it.
    async fn run_verify(
        &self,
        version: &Version,
        path: &Path,
        verified_by: &mut Vec<VerifiedBy>,
        fresh: bool,
    ) -> Result<(), InstallerError> {
        let ran = run_verify_command(
            self.runner.as_ref(),
            &self.settings.verify,
            path,
            self.settings.verify_timeout,
        )
        .await
        .map_err(|source| {
            if !fresh {
                // A cached file the command now rejects must not be offered again.
                let _ = fs::remove_dir_all(fsutil::parent_dir(path));
            }
            InstallerError::Verify {
                version: version.to_string(),
                source: Box::new(source),
            }
        })?;
        if ran && !verified_by.contains(&VerifiedBy::VerifyCommand) {
            verified_by.push(VerifiedBy::VerifyCommand);
        }
        Ok(())
    }

    /// The sidecar's digest, when a sidecar applies to this role.
    async fn sidecar_expected(
        &self,
        version: &Version,
        role: Role,
        file_name: &str,
    ) -> Option<Result<ExpectedHash, VerifyError>> {
        let template = self.settings.sidecar.as_deref()?;
        if role == Role::Rollback && !template.contains("{version}") {
            return None;
        }
        let location = template.replace("{version}", &version.to_string());
        let shown = redact_url(&location);
        let text = match self.client.get_text_or_file(&location).await {
            Ok(t) => t,
            Err(e) => {
                return Some(Err(VerifyError::Sidecar {
                    location: shown,
                    reason: e.to_string(),
                }));
            }
        };
        Some(match parse_sidecar(&text, file_name) {
            Some(sha256) => Ok(ExpectedHash {
                source: HashSource::Sidecar { location: shown },
                sha256,
            }),
            None => Err(VerifyError::BadDigest {
                origin: HashSource::Sidecar { location: shown },
                value: text.chars().take(100).collect(),
            }),
        })
    }

    fn entry_dir(&self, version: &Version, sha256: &str) -> PathBuf {
        self.settings
            .cache_dir
            .join(path_safe(version))
            .join(sha256)
    }

    fn cache_dir_error(&self, path: &Path, source: io::Error) -> InstallerError {
        InstallerError::CacheDir {
            path: path.to_path_buf(),
            source,
        }
    }

    fn store_error(&self, version: &Version, path: &Path, source: io::Error) -> InstallerError {
        InstallerError::Store {
            version: version.to_string(),
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The known sources plus the header's digest, in the order pin, header, sidecar.
fn with_header(known: &[ExpectedHash], header: Option<&str>) -> Vec<ExpectedHash> {
    let mut all = known.to_vec();
    if let Some(sha256) = header {
        let at = all
            .iter()
            .position(|e| matches!(e.source, HashSource::Sidecar { .. }))
            .unwrap_or(all.len());
        all.insert(
            at,
            ExpectedHash {
                source: HashSource::Header,
                sha256: sha256.to_string(),
            },
        );
    }
    all
}

/// What verified an installer, in words.
pub fn describe(by: &[VerifiedBy]) -> String {
    if by.is_empty() {
        return "nothing (installer.allow_unverified)".into();
    }
    by.iter()
        .map(|b| match b {
            VerifiedBy::PinnedSha256 => "installer.sha256",
            VerifiedBy::HeaderSha256 => verify::SHA256_HEADER,
            VerifiedBy::Sidecar => "sidecar",
            VerifiedBy::VerifyCommand => "installer.verify",
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A version as a single path component (versions are digits, dots, letters and '-',
/// but a path must never be steered by one).
fn path_safe(version: &Version) -> String {
    version
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn older_than(path: &Path, age: Duration) -> bool {
    let newest = newest_mtime(path);
    newest.is_some_and(|t| {
        SystemTime::now()
            .duration_since(t)
            .is_ok_and(|elapsed| elapsed > age)
    })
}

/// The latest modification time of a file or of the files directly in a directory.
fn newest_mtime(path: &Path) -> Option<SystemTime> {
    let own = fs::metadata(path).and_then(|m| m.modified()).ok();
    if !path.is_dir() {
        return own;
    }
    fs::read_dir(path)
        .ok()?
        .filter_map(|e| e.ok()?.metadata().ok()?.modified().ok())
        .chain(own)
        .max()
}
