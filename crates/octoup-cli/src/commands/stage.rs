use crate::cli::StageArgs;
use crate::context::Context;
use crate::exit::Exit;

pub fn run(_args: StageArgs, ctx: &Context) -> Exit {
    super::not_yet("stage", ctx)
}
