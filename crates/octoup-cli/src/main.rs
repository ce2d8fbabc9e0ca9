//! The `octoup` binary: parse arguments, build a context, call the library, map the result
//! to an exit code. All logic lives in the `octoup` library.

mod cli;
mod commands;
mod context;
mod exit;
mod help;
mod live;
mod platform;
mod progress;
mod render;
mod steps;
mod tracing_setup;

use clap::Parser;

fn main() -> std::process::ExitCode {
    platform::quiet_broken_pipe();
    let cli = cli::Cli::parse();
    let ctx = context::Context::from_cli(&cli);
    tracing_setup::install(cli.global.verbose, ctx.quiet());
    let code = commands::dispatch(cli.command, &ctx);
    code.into()
}
