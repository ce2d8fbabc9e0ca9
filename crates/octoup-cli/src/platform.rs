//! The binary's one platform seam.

/// Makes a closed stdout (`octoup check --json | head`) end the process quietly, as other
/// command-line tools do, instead of a panic in `println!`. Rust ignores SIGPIPE by default.
#[cfg(unix)]
pub fn quiet_broken_pipe() {
    // SAFETY: called once at start, before any thread exists; SIG_DFL is always valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Windows has no SIGPIPE; a closed pipe surfaces as a write error there.
#[cfg(not(unix))]
pub fn quiet_broken_pipe() {}
