//! File-system helpers every module that writes state reuses: renames that survive
//! Windows antivirus locks, atomic writes, and durable (fsynced) files.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often and how long to retry an operation that a transient lock blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LockRetry {
    /// Tries in all (the first one included).
    pub attempts: u32,
    /// Delay before the second try; doubles each time, capped at `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for LockRetry {
    /// About 10 tries over ~3 s: long enough for an antivirus scan of a fresh file.
    fn default() -> Self {
        LockRetry {
            attempts: 10,
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
        }
    }
}

/// True for errors a scanner or indexer holding the file briefly open produces.
pub(crate) fn is_transient_lock(err: &io::Error) -> bool {
    if err.kind() == io::ErrorKind::PermissionDenied {
        return true;
    }
    // ERROR_SHARING_VIOLATION (32) and ERROR_LOCK_VIOLATION (33) are not mapped to
    // PermissionDenied by std, but they are what an antivirus holding the file gives.
    cfg!(windows) && matches!(err.raw_os_error(), Some(32 | 33))
}

/// Runs `op` until it succeeds, fails with a non-lock error, or the tries run out.
/// Blocking: it sleeps between tries (a few seconds at most with the default policy).
pub(crate) fn retry_locked<T>(
    policy: LockRetry,
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    let mut delay = policy.first_delay;
    let mut attempt = 1;
    loop {
        match op() {
            Err(e) if is_transient_lock(&e) && attempt < policy.attempts.max(1) => {
                tracing::debug!(attempt, error = %e, "file locked, retrying");
                std::thread::sleep(delay);
                delay = (delay * 2).min(policy.max_delay);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// `fs::rename` with retries on transient locks (Windows antivirus scanning a fresh file).
pub(crate) fn rename_with_retry(from: &Path, to: &Path) -> io::Result<()> {
    rename_with_policy(from, to, LockRetry::default())
}

pub(crate) fn rename_with_policy(from: &Path, to: &Path, policy: LockRetry) -> io::Result<()> {
    retry_locked(policy, || fs::rename(from, to))
}

/// Makes a completed rename or file creation in `dir` survive a power loss.
/// A no-op where directories cannot be opened as files (Windows, where NTFS journals it).
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(test)]
    synced::record(dir);
    if cfg!(unix) {
        File::open(dir)?.sync_all()
    } else {
        Ok(())
    }
}

/// The directories [`sync_dir`] synced on this thread (a test seam: a test clears it,
/// writes, and sees which directory entries were made durable).
#[cfg(test)]
pub(crate) mod synced {
    use std::cell::RefCell;
    use std::path::{Path, PathBuf};

    thread_local! {
        static SYNCED: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
    }

    pub(crate) fn record(dir: &Path) {
        SYNCED.with(|s| s.borrow_mut().push(dir.to_path_buf()));
    }

    /// What was synced since the last call, in order.
    pub(crate) fn take() -> Vec<PathBuf> {
        SYNCED.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }
}

/// `fs::create_dir_all`, then the new directory's entry made durable in its parent (a
/// journal renamed into a directory that a power loss forgets would be lost with it).
pub(crate) fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    sync_dir(parent_dir(dir))
}

/// Removes a file and makes the removal durable (the directory fsynced); a file that is
/// already gone is fine.
pub(crate) fn remove_file_durable(path: &Path) -> io::Result<()> {
    remove_file_if_exists(path)?;
    sync_dir(parent_dir(path))
}

/// Writes `bytes` to `path` so readers see the old content or the new, never a mix:
/// a temporary file beside it, fsynced, then renamed over it (with lock retries), then
/// the directory fsynced so the rename itself survives a power loss.
/// The `*.json` files directly in `dir`, sorted by name; none when `dir` does not exist.
pub(crate) fn json_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    Ok(paths)
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    create_dir_durable(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    let tmp_path = tmp.into_temp_path();
    rename_with_retry(&tmp_path, path)?;
    // Disarm the temp path's cleanup: the name it guards now belongs to `path`.
    let _ = tmp_path.keep();
    sync_dir(dir)
}

/// Removes a file; a file that is already gone is fine.
pub(crate) fn remove_file_if_exists(path: &Path) -> io::Result<()> {
    match retry_locked(LockRetry::default(), || fs::remove_file(path)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The directory that holds `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// An I/O error with the path it concerns, for messages that tell the operator where.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct PathError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Attaches an action and a path to an I/O result: `fs::read(p).at("cannot read", p)?`.
pub(crate) trait IoContext<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T, PathError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T, PathError> {
        self.map_err(|source| PathError {
            action,
            path: path.to_path_buf(),
            source,
        })
    }
}

/// `1.4 GB`, `512 MB`, `12 KB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn fast() -> LockRetry {
        LockRetry {
            attempts: 10,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    #[test]
    fn retries_permission_denied_until_it_clears() {
        let calls = Cell::new(0);
        let result = retry_locked(fast(), || {
            calls.set(calls.get() + 1);
            if calls.get() < 4 {
                Err(io::Error::from(io::ErrorKind::PermissionDenied))
            } else {
                Ok(7)
            }
        });
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.get(), 4);
    }

    #[test]
    fn gives_up_after_the_attempts_and_returns_the_last_error() {
        let calls = Cell::new(0);
        let result: io::Result<()> = retry_locked(fast(), || {
            calls.set(calls.get() + 1);
            Err(io::Error::from(io::ErrorKind::PermissionDenied))
        });
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(calls.get(), 10);
    }

    #[test]
    fn other_errors_are_not_retried() {
        let calls = Cell::new(0);
        let result: io::Result<()> = retry_locked(fast(), || {
            calls.set(calls.get() + 1);
            Err(io::Error::from(io::ErrorKind::NotFound))
        });
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn rename_moves_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, b"x").unwrap();
        rename_with_policy(&a, &b, fast()).unwrap();
        assert!(!a.exists());
        assert_eq!(fs::read(&b).unwrap(), b"x");
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("r.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("r.json")]);
    }

    #[test]
    fn write_atomic_syncs_the_directory_after_the_rename() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("runs");
        let path = sub.join("r.json");
        synced::take();
        write_atomic(&path, b"1").unwrap();
        // The new directory's entry in its parent, then the rename in the directory.
        assert_eq!(synced::take(), vec![dir.path().to_path_buf(), sub.clone()]);
        write_atomic(&path, b"2").unwrap();
        assert_eq!(synced::take(), vec![sub.clone()]);
        remove_file_durable(&path).unwrap();
        assert_eq!(synced::take(), vec![sub]);
    }

    #[test]
    fn remove_missing_file_is_ok() {
        let dir = tempfile::tempdir().unwrap();
        remove_file_if_exists(&dir.path().join("nope")).unwrap();
    }
}
