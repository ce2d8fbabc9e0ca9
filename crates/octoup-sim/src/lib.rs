//! octoup-sim: a faithful local Octopus Server installation (see docs/simulator.md).

pub mod api;
pub mod checker;
pub mod cli;
pub mod clock;
pub mod daemon;
pub mod faults;
pub mod feed;
pub mod history;
pub mod installer;
pub mod platform;
pub mod spec;
pub mod standins;
pub mod state;
pub mod up;
pub mod version;
pub mod workload;

pub use cli::run_cli;
