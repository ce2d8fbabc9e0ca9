//! `octoup status [--all]`: the current or last run, read from the journal; the exit code
//! says its state, so a monitoring check can use it (README: "octoup status").

use octoup::engine::status::{Status, StatusState, runs, status};

use crate::cli::StatusArgs;
use crate::context::Context;
use crate::exit::Exit;

use super::upgrade::exit_for_error;

/// The exit code for a state.
pub(crate) fn exit_for_state(state: StatusState) -> Exit {
    match state {
        StatusState::Upgraded => Exit::Ok,
        StatusState::Failed => Exit::Failed,
        StatusState::Paused => Exit::Paused,
        StatusState::RolledBack => Exit::RolledBack,
        StatusState::Running => Exit::StatusRunning,
        StatusState::Interrupted => Exit::StatusInterrupted,
        StatusState::None => Exit::StatusNone,
    }
}

pub fn run(args: StatusArgs, ctx: &Context) -> Exit {
    let config = match ctx.config() {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    if args.all {
        let runs = match runs(&config) {
            Ok(runs) => runs,
            Err(e) => {
                ctx.report_error(&e);
                return exit_for_error(&e);
            }
        };
        if ctx.json {
            println!("{}", crate::render::runs_json(&runs, &config.state.dir));
        } else {
            print!("{}", crate::render::runs(&runs, &config.state.dir));
        }
        return Exit::Ok;
    }
    let status: Status = match status(&config) {
        Ok(s) => s,
        Err(e) => {
            ctx.report_error(&e);
            return exit_for_error(&e);
        }
    };
    if ctx.json {
        println!("{}", crate::render::status_json(&status));
    } else {
        print!("{}", crate::render::status(&status));
    }
    exit_for_state(status.state)
}
