//! Test support for the workspace's integration tests, one implementation of each piece:
//!
//! - [`octoup_bin`], [`sim_bin`]: the built binaries (found beside the running test binary,
//!   built with cargo when missing or older than the test);
//! - [`Scenario`]: a fluent builder for a simulated installation, and [`Sim`], the running
//!   installation (stopped on drop) with its config, history, invariant check, faults and
//!   state;
//! - [`Ran`]: what one `octoup` run produced (exit code, stdout, stderr, parsed JSON);
//! - [`sim_image`], [`rehearsal_leftovers`]: real Docker for the rehearsal tests;
//! - [`find`], [`first`], [`last`], [`count`], [`kinds`], [`mutating`]: history helpers.

mod bins;
mod docker;
mod history;
mod ran;
mod scenario;
mod sim;

pub use bins::{octoup_bin, sim_bin, target_dir};
pub use docker::{rehearsal_leftovers, sim_image};
pub use history::{count, find, first, kinds, last, mutating};
pub use ran::{Ran, files_under, octoup_asking, octoup_command, run, run_in};
pub use scenario::Scenario;
pub use sim::{Launcher, SQLCMD_ARGS, Sim};
