//! Exit statuses as data (documented in README.md).

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Upgraded, up to date, or the command did what it was asked.
    Ok = 0,
    /// The run failed; the report says what state the system is in.
    Failed = 1,
    /// Bad usage or configuration: nothing was changed.
    Usage = 2,
    /// A preflight check refused, or the server/feed could not be reached: nothing was changed.
    Refused = 3,
    /// The run stopped in a documented safe state; the report names the next step.
    Paused = 4,
    /// The upgrade failed and was rolled back: the original version serves.
    RolledBack = 5,
    /// Another octoup run holds the lock.
    Locked = 6,
    /// Declined at the prompt: nothing was changed.
    Declined = 7,
    /// Confirmation needed: standard input is not a terminal and `--yes` was not given;
    /// nothing was changed.
    NeedsConfirmation = 8,
    /// A second Ctrl-C: octoup exited at once; the journal is consistent and the commands
    /// it started run on.
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}
