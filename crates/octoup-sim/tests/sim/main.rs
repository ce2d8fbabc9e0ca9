//! The integration tests of octoup-sim: one binary, one module per area.

mod exe;
mod http;
mod lifecycle;
mod msiexec;
mod scene;
mod sqlcmd;
mod support;
