//! octoup: safe, automatic upgrades of self-hosted Octopus Deploy servers and HA clusters.
//!
//! The library holds the logic and returns data; the `octoup` binary parses arguments,
//! renders results and maps them to exit codes. The parts, in dependency order (each uses
//! only those above it; see docs/architecture.md):
//!
//! - [`version`]: the four-part Octopus version type.
//! - [`process`]: the effects seams for programs, time and files (runner, run log, clock,
//!   fs, the platform module).
//! - [`config`]: `octoup.toml`, secrets and environment overrides.
//! - [`octopus`]: HTTP and the Octopus REST API client.
//! - [`settings`]: what a config resolves to, secrets as their sources (`octoup config check`).
//! - [`choice`]: which version to install (feed, policy, upgrade paths, `check`).
//! - [`installer`]: installer delivery (download, verify, cache).
//! - [`nodes`]: node operations, behind the [`nodes::NodeAgent`] trait: this machine, or
//!   another over SSH speaking the `octoup node` protocol.
//! - [`backup`]: the master key and license copies.
//! - [`database`]: the rollback point per strategy (native, snapshot, azure-copy, url, rds,
//!   external), its T-SQL, the choice by detected hosting, and the way back.
//! - [`journal`]: the crash-safe run journal and the state directory's lock.
//! - [`doctor`]: the preflight and the deep checks before the outage, and the verification
//!   after it, as findings; the compatibility rules are data.
//! - [`engine`]: plan, the typed step catalogue, the executor, the step
//!   bodies, undo, rollback, recovery and the report.
//! - [`notify`]: `[[notify]]` webhooks (generic JSON, Slack, Teams) told of a run's
//!   milestones, sent in the background, bounded.
//!
//! Progress is reported through [`progress::Progress`] and [`engine::Events`].

pub mod backup;
pub mod choice;
pub mod config;
pub mod database;
pub mod doctor;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod installer;
pub mod journal;
pub mod nodes;
pub mod notify;
pub mod octopus;
pub mod process;
pub mod progress;
pub mod rehearsal;
pub mod settings;
pub mod version;
pub mod window;
