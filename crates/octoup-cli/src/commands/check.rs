use crate::cli::CheckArgs;
use crate::context::Context;
use crate::exit::Exit;

pub fn run(_args: CheckArgs, ctx: &Context) -> Exit {
    super::not_yet("check", ctx)
}
