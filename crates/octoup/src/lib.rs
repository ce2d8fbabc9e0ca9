//! octoup: safe, automatic upgrades of self-hosted Octopus Deploy servers and HA clusters.
//!
//! The library holds all the logic; the `octoup` binary parses arguments and maps results to
//! exit codes. Effects sit behind small seams: [`runner::CommandRunner`] (external programs),
//! [`http::HttpClient`] (HTTP), [`clock`] (time) and [`progress::Progress`] (progress reporting).

pub mod api;
pub mod backup;
pub mod cache;
pub mod check;
pub mod clock;
pub mod config;
pub mod download;
pub mod engine;
pub mod feed;
pub mod fsutil;
pub mod http;
pub mod journal;
pub mod node;
pub mod node_actions;
pub mod plan;
pub mod platform;
pub mod policy;
pub mod preflight;
pub mod progress;
pub mod remote_agent;
pub mod report;
pub mod runner;
pub mod transport;
pub mod tsql;
pub mod upgrade_paths;
pub mod verify;
pub mod version;
