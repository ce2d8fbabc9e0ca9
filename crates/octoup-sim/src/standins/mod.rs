//! Stand-ins for the programs octoup runs on a node: `Octopus.Server.exe`, `msiexec` and
//! `sqlcmd`, with the real argument syntax, exit codes and messages.

pub mod exe;
pub mod msiexec;
pub mod sqlcmd;

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::Duration;

use crate::faults::FaultAction;
use crate::history::Event;
use crate::state::{State, Store, StoreError};

/// Exit code and the text a stand-in prints.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(stdout: impl Into<String>) -> Output {
        Output {
            code: 0,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    pub fn fail(code: i32, stderr: impl Into<String>) -> Output {
        Output {
            code,
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }

    /// Prints stdout and stderr (each ending with a newline) and returns the exit code.
    pub fn emit(&self) -> i32 {
        use std::io::Write;
        let line = |s: &str| {
            if s.is_empty() || s.ends_with('\n') {
                s.to_string()
            } else {
                format!("{s}\n")
            }
        };
        let _ = std::io::stdout().write_all(line(&self.stdout).as_bytes());
        let _ = std::io::stderr().write_all(line(&self.stderr).as_bytes());
        self.code
    }
}

impl From<StoreError> for Output {
    fn from(e: StoreError) -> Output {
        Output::fail(1, format!("octoup-sim: {e}"))
    }
}

/// Takes a pending fault for `op` on `node` and acts on it: `hang` never returns, `delay`
/// sleeps, `exit:N` returns `Some(N)` for the caller to fail with its realistic message.
/// HTTP-only actions do not apply to stand-ins and are ignored.
pub(crate) fn apply_fault(
    store: &Store,
    op: &str,
    node: Option<&str>,
) -> Result<Option<i32>, StoreError> {
    // Most runs have no fault: look first, so they do not write the state.
    if !store.read(|s| s.faults.iter().any(|f| f.applies(op, node)))? {
        return Ok(None);
    }
    let (action, clock) =
        store.update(|s| Ok::<_, StoreError>((s.take_fault(op, node), s.clock())))?;
    match action {
        Some(FaultAction::Hang) => hang(),
        Some(FaultAction::Delay(secs)) => {
            clock.sleep_sim(secs);
            Ok(None)
        }
        Some(FaultAction::Exit(code)) => Ok(Some(code)),
        _ => Ok(None),
    }
}

/// Blocks until the process is killed.
pub(crate) fn hang() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Exclusive lock on `path` if free; `None` when another process holds it.
pub(crate) fn try_lock_file(path: &Path) -> Result<Option<File>, Output> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Output::fail(1, format!("octoup-sim: {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(Output::fail(
            1,
            format!("octoup-sim: {}: {e}", path.display()),
        )),
    }
}

/// Records that a stand-in ran (secrets masked) and any secret on its command line (I5).
pub fn record_invocation(
    store: &Store,
    program: &str,
    node: Option<&str>,
    args: &[String],
) -> Result<(), StoreError> {
    store.update(|s| {
        let (masked, leaks) = mask_secrets(s, args);
        // `database --connectionString --masterKey` on a spare node: the vendor's only
        // route for a rehearsal instance, which octoup takes only under its opt-in.
        let accepted = program == "exe"
            && node.is_some_and(|n| s.spare(n).is_some())
            && args
                .first()
                .is_some_and(|c| c.eq_ignore_ascii_case("database"));
        for (i, which) in leaks {
            let detail = format!("argument {} contains the {which}", i + 1);
            match node.filter(|_| accepted) {
                Some(n) => s.record(Event::SecretArgument {
                    node: n.to_string(),
                    which: which.to_string(),
                    detail,
                }),
                None => s.record(Event::SecretLeak {
                    place: format!("command line of {program}"),
                    detail,
                }),
            }
        }
        s.record(Event::StandinInvoked {
            program: program.to_string(),
            node: node.map(str::to_string),
            args: masked,
        });
        Ok::<_, StoreError>(())
    })
}

/// Replaces every known secret in `args` by `***`; returns the masked args and which
/// argument held which secret.
fn mask_secrets(state: &State, args: &[String]) -> (Vec<String>, Vec<(usize, &'static str)>) {
    let s = &state.secrets;
    let secrets = [
        (s.admin_api_key.as_str(), "admin API key"),
        (s.readonly_api_key.as_str(), "read-only API key"),
        (s.sql_password.as_str(), "SQL password"),
        (s.master_key.as_str(), "master key"),
    ];
    let mut leaks = Vec::new();
    let masked = args
        .iter()
        .enumerate()
        .map(|(i, arg)| {
            let mut arg = arg.clone();
            for (secret, which) in secrets {
                if !secret.is_empty() && arg.contains(secret) {
                    arg = arg.replace(secret, "***");
                    leaks.push((i, which));
                }
            }
            arg
        })
        .collect();
    (masked, leaks)
}
