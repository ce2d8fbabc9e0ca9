//! Everything that differs between operating systems: detaching the daemon, writing files
//! only the owner may read, a `/tmp` for the container image, and the signals that stop the
//! container's server.

use std::io::Write;
use std::path::Path;
use std::process::Command;

/// Makes `command` run on after the calling process exits and outside its console/process
/// group, so a Ctrl-C in the terminal that ran `up` does not kill the daemon.
pub fn detach(command: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        const DETACHED_PROCESS: u32 = 0x0000_0008;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        const CREATE_NO_WINDOW: u32 = 0x0800_0000;
        command.creation_flags(DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW);
    }
}

/// Writes a secret to `path`, readable only by its owner (mode 0600 on Unix; on Windows
/// the file inherits the directory's ACL).
pub fn write_secret(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    #[cfg(unix)]
    {
        // `mode` only applies when the file is created; tighten an existing one too.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Makes `dir` a `/tmp` (everyone writes, only the owner deletes: mode 1777 on Unix; on
/// Windows the directory's ACL applies).
pub fn shared_tmp(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Ends process `pid` (a rehearsal instance's server) and reaps nothing: it was detached.
pub fn terminate(pid: u32) {
    #[cfg(unix)]
    let _ = Command::new("kill")
        .arg(pid.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    #[cfg(windows)]
    let _ = Command::new("taskkill")
        .args(["/PID", &pid.to_string(), "/T", "/F"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// What stops a server: Ctrl-C, and on Unix SIGTERM too (`docker stop` sends it, and as a
/// container's PID 1 the process ignores it without a handler).
pub struct Stop {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Stop {
    pub fn new() -> std::io::Result<Stop> {
        Ok(Stop {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?,
        })
    }

    /// The next stop request.
    pub async fn requested(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
