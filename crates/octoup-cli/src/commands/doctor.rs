//! `octoup doctor`: every preflight check, changing nothing; exit 0 without blockers, 3 with
//! any.

use octoup::engine;

use super::upgrade::{block_on, settle};
use crate::cli::PlanArgs;
use crate::context::Context;
use crate::exit::Exit;

pub fn run(args: PlanArgs, ctx: &Context) -> Exit {
    let config = match ctx.config() {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let result = block_on(engine::doctor(
        config,
        &ctx.env,
        args.to.as_deref(),
        &args.accept,
    ));
    let report = match settle(ctx, result) {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    ctx.show(&report, || crate::render::doctor(&report));
    if report.has_blockers() {
        Exit::Refused
    } else {
        Exit::Ok
    }
}
