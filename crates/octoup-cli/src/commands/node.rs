use crate::cli::NodeArgs;
use crate::context::Context;
use crate::exit::Exit;

pub fn run(_args: NodeArgs, ctx: &Context) -> Exit {
    super::not_yet("node", ctx)
}
