//! Where the target version runs against the disarmed copy: the seam between the flow
//! (written once in `rehearsal/mod.rs`) and a rehearsal host.
//!
//! - [`docker`]: the vendor's Linux container on an `--internal` network (secrets only in
//!   its environment); [`docker_cli`] is the Docker CLI it drives.
//! - [`windows`]: a spare Windows node: the staged MSI, a rehearsal instance,
//!   `database --upgrade` timed (secrets on `Octopus.Server.exe`'s command line, opt-in);
//!   [`windows_cli`] builds its command lines.

mod docker;
mod docker_cli;
mod windows;
mod windows_cli;

use std::time::{Duration, Instant};

use async_trait::async_trait;

pub(super) use docker::DockerHost;
pub(super) use windows::WindowsHost;

use super::record::{Rehearsal, Rehearsals};
use super::{Kit, RehearsalError};
use crate::config::{Config, Secret};
use crate::octopus::api::OctopusApi;

/// A rehearsal server that was started: where its API is, the phase its wait closes, and
/// what must live while it runs (the Docker host's relay).
pub(super) struct Launched {
    pub api: OctopusApi,
    /// The phase that ends when `/api` reports the target.
    pub phase: &'static str,
    pub started: Instant,
    pub keep: Option<Box<dyn Send + Sync>>,
}

#[async_trait]
pub(super) trait RehearsalHost: Send + Sync {
    /// What the operator's configuration forbids on this host, refused before anything
    /// is made or journaled (a configuration error).
    fn refused(&self, kit: &Kit<'_>) -> Result<(), RehearsalError> {
        let _ = kit;
        Ok(())
    }

    /// Before the copy is made: whatever this host needs is asked (and refused) here, and
    /// what it will make is named in `r` (journaled before it exists). Returns a note.
    async fn ready(&self, kit: &Kit<'_>, r: &mut Rehearsal) -> Result<String, RehearsalError>;

    /// Runs the target against the disarmed copy `r.scratch_database`. `None`: it failed
    /// before it could serve; the reasons (no-go), the error and an excerpt are in `r`.
    async fn launch(
        &self,
        kit: &Kit<'_>,
        r: &mut Rehearsal,
        book: &Rehearsals,
        master_key: Secret,
    ) -> Result<Option<Launched>, RehearsalError>;

    /// How long the launched server may take to serve the target, and the setting that
    /// says so. The Docker host's server migrates at start, so its wait covers both.
    fn start_limit(&self, config: &Config) -> (Duration, &'static str) {
        (
            Duration::from_secs(config.rehearsal.start_timeout_minutes.max(1) * 60),
            "[rehearsal] start_timeout_minutes",
        )
    }

    /// `Some(exit code)` once the rehearsal server stopped by itself; `None` while it runs
    /// or when this host cannot tell (the wait's deadline then decides).
    async fn stopped(&self, r: &Rehearsal) -> Result<Option<Option<i64>>, RehearsalError>;

    /// The last lines the rehearsal server (or its last command) wrote, unscrubbed.
    async fn logs(&self, r: &Rehearsal) -> String;

    /// Removes what `r` says this host made (also after a kill); one line per thing into
    /// `actions`. `false`: something could not be removed (left for `--cleanup`).
    async fn teardown(&self, r: &Rehearsal, actions: &mut Vec<String>) -> bool;
}
