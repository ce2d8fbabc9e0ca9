use std::ffi::OsString;

use crate::cli::DemoArgs;
use crate::context::Context;
use crate::exit::Exit;

pub fn run(_args: DemoArgs, ctx: &Context) -> Exit {
    super::not_yet("demo", ctx)
}

/// `octoup sim ...` runs the embedded simulator, so `octoup demo` needs no second binary.
pub fn sim_passthrough(_args: Vec<OsString>) -> Exit {
    eprintln!("error: the embedded simulator is not wired yet; use the octoup-sim binary");
    Exit::Failed
}
