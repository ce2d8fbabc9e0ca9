//! The one tracing subscriber: the library's diagnostics (`tracing::warn!` and friends)
//! reach the operator on stderr, never stdout, so `--json` output stays clean.
//!
//! Default: warnings and errors. `-v`: info. `-vv`: debug. `-q`, or `--json` without `-v`:
//! errors only. `RUST_LOG` overrides all of it (e.g. `RUST_LOG=octoup=trace`). Colour only
//! on a terminal, and never with `NO_COLOR` set.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn install(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Errors here mean a subscriber is already set (never, in the binary): nothing to do.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .without_time()
        .try_init();
}
