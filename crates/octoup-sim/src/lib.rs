//! octoup-sim: a faithful local Octopus Server installation (see docs/simulator.md).

pub mod api;
pub mod clock;
pub mod daemon;
pub mod faults;
pub mod feed;
pub mod history;
pub mod installer;
pub mod spec;
pub mod state;
pub mod version;
pub mod workload;
pub mod standins;
