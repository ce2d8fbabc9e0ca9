//! The integration tests of octoup-sim: one binary, one module per area.

mod http;
mod support;
mod exe;
mod lifecycle;
mod msiexec;
mod scene;
mod sqlcmd;
