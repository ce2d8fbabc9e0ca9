//! octoup-sim: a faithful local Octopus Server installation (see docs/simulator.md).

pub mod checker;
pub mod cli;
pub mod clock;
pub mod faults;
pub mod history;
pub mod installer;
pub mod platform;
pub mod server;
pub mod spec;
pub mod standins;
pub mod state;
pub mod up;
pub mod version;
pub mod workload;

pub use cli::run_cli;
