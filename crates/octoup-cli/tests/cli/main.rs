//! The integration tests of the `octoup` binary: one binary, one module per command.

mod check;
mod stage;
