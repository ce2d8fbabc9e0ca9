//! The integration tests of octoup-sim: one binary, one module per area.

mod cloud;
mod exe;
mod http;
mod lifecycle;
mod msiexec;
mod native;
mod rehearsal;
mod scene;
mod sqlcmd;
mod support;
