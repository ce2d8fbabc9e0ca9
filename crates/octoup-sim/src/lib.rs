//! octoup-sim: a faithful local Octopus Server installation (see docs/simulator.md).

mod checker;
mod cli;
mod clock;
mod container;
pub mod faults;
pub mod history;
mod image;
pub mod installer;
mod platform;
mod server;
pub mod spec;
mod standins;
pub mod state;
pub mod up;
mod version;
mod workload;

pub use cli::run_cli;
