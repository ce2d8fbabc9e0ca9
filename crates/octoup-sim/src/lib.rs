//! octoup-sim: a faithful local Octopus Server installation (see docs/simulator.md).

pub mod clock;
pub mod faults;
pub mod history;
pub mod installer;
pub mod spec;
pub mod state;
pub mod version;
pub mod standins;
