//! `octoup verify`: the checks after the start, on demand (an upgrade runs them at its
//! end); exit 0 without blocker-level findings, 14 with any.

use octoup::doctor::verify::VerifyOptions;
use octoup::engine;

use super::upgrade::{block_on, settle};
use crate::cli::VerifyArgs;
use crate::context::Context;
use crate::exit::Exit;

pub fn run(args: VerifyArgs, ctx: &Context) -> Exit {
    let config = match ctx.config() {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let options = VerifyOptions {
        upgrade_tentacles: args.upgrade_tentacles,
    };
    let report = match settle(ctx, block_on(engine::verify(config, &ctx.env, options))) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    ctx.show(&report, || crate::render::verify(&report));
    if report.has_blockers() {
        Exit::VerifyFindings
    } else {
        Exit::Ok
    }
}
