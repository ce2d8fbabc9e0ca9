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

/// The interrupts octoup answers: Ctrl-C (SIGINT) and SIGTERM on Unix; Ctrl-C and
/// Ctrl-Break on Windows. Created inside the runtime; from then on they no longer end the
/// process by themselves (the children run in their own process groups and never get them).
pub struct Interrupts {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(windows)]
    c: tokio::signal::windows::CtrlC,
    #[cfg(windows)]
    brk: tokio::signal::windows::CtrlBreak,
}

impl Interrupts {
    pub fn new() -> std::io::Result<Interrupts> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Interrupts {
                int: signal(SignalKind::interrupt())?,
                term: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(windows)]
        {
            Ok(Interrupts {
                c: tokio::signal::windows::ctrl_c()?,
                brk: tokio::signal::windows::ctrl_break()?,
            })
        }
    }

    /// The next interrupt.
    pub async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(windows)]
        tokio::select! {
            _ = self.c.recv() => {}
            _ = self.brk.recv() => {}
        }
    }
}
