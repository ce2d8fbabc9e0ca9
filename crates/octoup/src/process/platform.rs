//! The few things that differ between operating systems: files only their owner may read,
//! free disk space, and child processes (detached from the terminal's Ctrl-C, killed with
//! their group, and recognised again after a crash).

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

/// Makes an existing file readable by its owner only (Unix: 0600; Windows: the
/// directory's ACL, as for [`write_owner_only`]).
pub(crate) fn restrict_owner_only(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).map(|_| ())
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

/// Windows' `CREATE_NEW_PROCESS_GROUP` (winbase.h): the child gets no Ctrl-C of ours.
#[cfg(windows)]
const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;

/// Detaches a child from the terminal's signals: a Ctrl-C (SIGINT to the foreground process
/// group) or a SIGTERM of octoup never reaches `database --upgrade`, msiexec or a backup.
/// Unix: its own process group (its pgid is its pid). Windows: a new process group.
pub(crate) fn detach(command: &mut tokio::process::Command) {
    #[cfg(unix)]
    command.process_group(0);
    #[cfg(windows)]
    command.creation_flags(CREATE_NEW_PROCESS_GROUP);
    #[cfg(not(any(unix, windows)))]
    let _ = command;
}

/// Kills a child [`detach`]ed by the runner at its timeout, with everything it started
/// (Unix: its process group). Windows: nothing here; the runner's kill of the child
/// itself (`kill_on_drop`) is what ends it.
pub(crate) fn kill_group(pid: u32) {
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(pid)
        && pid > 0
    {
        // SAFETY: kill(2) has no memory effects; a negative pid names the process group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    #[cfg(not(unix))]
    let _ = pid;
}

/// A process as the journal records it: its pid and, where the OS tells it, its start
/// time (Linux: clock ticks since boot, `/proc/<pid>/stat` field 22), so a reused pid is
/// not taken for the process octoup started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessId {
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_start: Option<u64>,
}

impl ProcessId {
    /// The running process `pid`, with its start time when the OS gives it.
    pub fn of(pid: u32) -> ProcessId {
        ProcessId {
            pid,
            os_start: start_time(pid),
        }
    }

    /// Whether this very process still runs (a zombie, or another process that got the
    /// pid since, does not count).
    pub fn is_running(&self) -> bool {
        if !exists(self.pid) {
            return false;
        }
        match (self.os_start, start_time(self.pid)) {
            (Some(recorded), Some(now)) => recorded == now,
            // Started before the OS told its start time, or the OS does not tell.
            _ => true,
        }
    }
}

/// Linux: the start time in `/proc/<pid>/stat` (field 22; fields counted after the
/// parenthesised command name, which may hold spaces); `None` for a zombie or elsewhere.
fn start_time(pid: u32) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
        // After the name: field 3 (state) is the first; field 22 the 20th.
        if fields.next()? == "Z" {
            return None;
        }
        fields.nth(18)?.parse().ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// Whether a process `pid` exists. Unix: `kill(pid, 0)` (EPERM: it exists, another user's);
/// Linux also counts a zombie as gone. Windows: `OpenProcess` and its exit code.
fn exists(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(raw) = libc::pid_t::try_from(pid) else {
            return false;
        };
        if raw <= 0 {
            return false;
        }
        // SAFETY: signal 0 only checks that the process exists; no memory is touched.
        let found = unsafe { libc::kill(raw, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        #[cfg(target_os = "linux")]
        let found = found && !is_zombie(pid);
        found
    }
    #[cfg(windows)]
    {
        use windows_sys::Win32::Foundation::CloseHandle;
        use windows_sys::Win32::System::Threading::{
            GetExitCodeProcess, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
        };
        const STILL_ACTIVE: u32 = 259;
        // SAFETY: plain Win32 calls on a handle this function opens and closes.
        unsafe {
            let handle = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
            if handle.is_null() {
                return false;
            }
            let mut code = 0u32;
            let ok = GetExitCodeProcess(handle, &mut code) != 0;
            CloseHandle(handle);
            ok && code == STILL_ACTIVE
        }
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = pid;
        true
    }
}

#[cfg(target_os = "linux")]
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|st| st == "Z"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_running_child_is_alive_and_a_reaped_one_is_not() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let id = ProcessId::of(child.id());
        assert!(id.is_running(), "{id:?}");
        #[cfg(target_os = "linux")]
        assert!(id.os_start.is_some(), "Linux tells the start time");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!id.is_running(), "{id:?} was reaped");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_reused_pid_is_not_the_recorded_process() {
        let me = ProcessId::of(std::process::id());
        assert!(me.is_running());
        let other = ProcessId {
            os_start: me.os_start.map(|s| s + 1),
            ..me
        };
        assert!(!other.is_running(), "another start time: another process");
    }

    #[cfg(unix)]
    #[test]
    fn a_zombie_is_not_running() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let id = ProcessId::of(child.id());
        std::thread::sleep(std::time::Duration::from_millis(300));
        // Exited, not yet reaped.
        #[cfg(target_os = "linux")]
        assert!(!id.is_running());
        child.wait().unwrap();
        assert!(!id.is_running());
    }

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
