//! One module per command. Each returns an [`Exit`].

mod check;
mod config;
mod demo;
mod doctor;
mod finalize;
mod furniture;
mod init;
mod node;
mod rehearse;
mod server;
mod stage;
mod status;
mod upgrade;
mod verify;

use crate::cli::Command;
use crate::context::Context;
use crate::exit::Exit;

pub fn dispatch(command: Command, ctx: &Context) -> Exit {
    match command {
        Command::Check(args) => check::run(args, ctx),
        Command::Plan(args) => upgrade::plan(args, ctx),
        Command::Doctor(args) => doctor::run(args, ctx),
        Command::Verify(args) => verify::run(args, ctx),
        Command::Upgrade(args) => upgrade::upgrade(args, ctx),
        Command::Resume(args) => upgrade::resume(args.yes, ctx),
        Command::Rollback(args) => upgrade::rollback(args.yes, ctx),
        Command::Finalize => finalize::run(ctx),
        Command::Rehearse(args) => rehearse::run(args, ctx),
        Command::Status(args) => status::run(args, ctx),
        Command::Stage(args) => stage::run(args, ctx),
        Command::Demo(args) => demo::run(args, ctx),
        Command::Node(args) => node::run(args, ctx),
        Command::Init(args) => init::run(args, ctx),
        Command::Config(args) => config::run(args, ctx),
        Command::Completions(args) => furniture::completions(args),
        Command::Man => furniture::man(),
        Command::Sim { args } => demo::sim_passthrough(args),
    }
}
