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
    /// `octoup status`: an octoup is working on the run now.
    StatusRunning = 9,
    /// `octoup status`: the run is unfinished and no octoup works on it (interrupted).
    StatusInterrupted = 10,
    /// `octoup status`: no run recorded.
    StatusNone = 11,
    /// `octoup check --exit-code`: an upgrade is eligible.
    UpgradeAvailable = 12,
    /// `octoup verify`: a finding at blocker level remains.
    VerifyFindings = 14,
}

impl Exit {
    /// Every status, in order: the README's "Exit status" table and `--help` list these.
    pub const ALL: [Exit; 15] = [
        Exit::Ok,
        Exit::Failed,
        Exit::Usage,
        Exit::Refused,
        Exit::Paused,
        Exit::RolledBack,
        Exit::Locked,
        Exit::Declined,
        Exit::NeedsConfirmation,
        Exit::StatusRunning,
        Exit::StatusInterrupted,
        Exit::StatusNone,
        Exit::UpgradeAvailable,
        Exit::VerifyFindings,
        Exit::Interrupted,
    ];

    /// What the status means, as the README's table says it (a test holds them equal).
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "upgraded, up to date, or the command did what it was asked",
            Exit::Failed => {
                "the run failed; the report says what state the system is in and what to do"
            }
            Exit::Usage => {
                "bad usage or configuration; nothing was changed (a bad URL or `[versions]` value, `--to` not a version or not in the feed, an API key the server refuses: 401, or without AdministerSystem: 403)"
            }
            Exit::Refused => {
                "a preflight check refused, or the server/feed could not be reached; nothing was changed (`octoup rehearse`: no-go)"
            }
            Exit::Paused => {
                "paused in a documented safe state; the report names the next step (`octoup upgrade` resumes)"
            }
            Exit::RolledBack => {
                "the upgrade failed and was rolled back; the original version serves"
            }
            Exit::Locked => "another octoup run holds the lock",
            Exit::StatusRunning => "`octoup status`: an octoup is working on the run now",
            Exit::StatusInterrupted => {
                "`octoup status`: the run is unfinished and no octoup works on it (interrupted: `octoup upgrade` continues it)"
            }
            Exit::StatusNone => "`octoup status`: no run recorded",
            Exit::UpgradeAvailable => {
                "`octoup check --exit-code`: an upgrade is eligible (the JSON or text names the target)"
            }
            Exit::VerifyFindings => {
                "`octoup verify`: a finding at blocker level remains (a node on another version, a failed integrity check with `integrity_check = \"blocker\"`, a Tentacle upgrade that did not take)"
            }
            Exit::Declined => "declined at the prompt; nothing was changed",
            Exit::NeedsConfirmation => {
                "confirmation needed: standard input is not a terminal and `--yes` was not given; nothing was changed"
            }
            Exit::Interrupted => {
                "a second Ctrl-C: octoup exited at once; the journal is consistent and the commands it started keep running (`octoup upgrade` continues; `octoup rehearse`: stopped and torn down at the first Ctrl-C)"
            }
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

    /// The rows of the README's "Exit status" table: `| code | meaning |`.
    fn readme_table() -> Vec<(u8, String)> {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("### Exit status")
            .nth(1)
            .expect("README.md has an \"Exit status\" section");
        section
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|row| {
                let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
                Some((cells.first()?.parse().ok()?, cells.get(1)?.to_string()))
            })
            .collect()
    }

    #[test]
    fn the_readme_table_is_the_exit_data() {
        let ours: Vec<(u8, String)> = Exit::ALL
            .iter()
            .map(|&e| (e as u8, e.meaning().to_string()))
            .collect();
        assert_eq!(readme_table(), ours);
    }
}
