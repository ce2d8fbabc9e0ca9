//! The few things that differ between operating systems: files only their owner may read,
//! and free disk space.

use std::io::Write;
use std::path::Path;

/// Writes a new file that only its owner can read (the master key, the license).
///
/// Unix: the file is created with mode 0600 from the start (never briefly world-readable)
/// and its directory is made 0700. Windows: the file inherits the ACL of its directory;
/// octoup adds nothing, so `[backup] dir` must be a directory whose ACL lets only
/// administrators read it (the README says so).
pub(crate) fn write_owner_only(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = crate::process::fsutil::parent_dir(path);
    std::fs::create_dir_all(dir)?;
    restrict_dir(dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    crate::process::fsutil::sync_dir(dir)
}

/// Opens a log for appending, creating it readable by its owner only (Unix: 0600, also
/// when it already existed; Windows: the directory's ACL, as for [`write_owner_only`]).
/// Logs name hosts, paths and commands: nobody else needs to read them.
pub(crate) fn append_owner_only(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    {
        options.open(path)
    }
}

#[cfg(unix)]
fn restrict_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn restrict_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
/// Whether only the owner can read `path` (Unix: no group/other bits). Always true elsewhere.
pub(crate) fn is_owner_only(path: &Path) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        Ok(mode & 0o077 == 0)
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).map(|_| true)
    }
}

/// Bytes available to this user on the volume holding `path` (or its nearest existing
/// ancestor, since backup directories may not exist yet). `None` when it cannot be told.
pub(crate) fn available_space(path: &Path) -> Option<u64> {
    let mut probe = Some(path);
    while let Some(p) = probe {
        if p.exists() {
            return fs4::available_space(p).ok();
        }
        probe = p.parent().filter(|q| !q.as_os_str().is_empty());
    }
    fs4::available_space(Path::new(".")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_only_files_are_owner_only_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("master-key.txt");
        write_owner_only(&path, b"secret").unwrap();
        assert!(is_owner_only(&path).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
        assert!(write_owner_only(&path, b"other").is_err());
    }

    #[test]
    fn free_space_of_a_path_that_does_not_exist_yet() {
        let dir = tempfile::tempdir().unwrap();
        let space = available_space(&dir.path().join("a/b/c"));
        assert!(space.is_some_and(|s| s > 0));
    }
}
