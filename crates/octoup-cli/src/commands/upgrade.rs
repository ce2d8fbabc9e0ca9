use crate::cli::{PlanArgs, UpgradeArgs};
use crate::context::Context;
use crate::exit::Exit;

pub fn plan(_args: PlanArgs, ctx: &Context) -> Exit {
    super::not_yet("plan", ctx)
}

pub fn upgrade(_args: UpgradeArgs, ctx: &Context) -> Exit {
    super::not_yet("upgrade", ctx)
}

pub fn resume(ctx: &Context) -> Exit {
    super::not_yet("resume", ctx)
}

pub fn rollback(ctx: &Context) -> Exit {
    super::not_yet("rollback", ctx)
}

pub fn status(ctx: &Context) -> Exit {
    super::not_yet("status", ctx)
}
