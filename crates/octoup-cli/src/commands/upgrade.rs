//! `octoup plan`, `upgrade`, `resume`, `rollback` and `status`: thin wrappers around
//! `octoup::engine` that choose the output (text on stderr/stdout, or one JSON object on
//! stdout) and map the outcome to the exit status.

use std::future::Future;
use std::sync::Arc;

use octoup::engine::plan::PlanView;
use octoup::engine::report::{Outcome, Report};
use octoup::engine::{self, Answer, EngineError, UpgradeOptions, upgrade_record};
use octoup::journal::JournalError;
use octoup::notify::{Notifier, Notifying};

use crate::cli::{PlanArgs, UpgradeArgs};
use crate::context::Context;
use crate::exit::Exit;
use crate::steps::StepPrinter;

/// Runs a future on a fresh runtime (the commands are one-shot).
pub(crate) fn block_on<F: Future>(future: F) -> Result<F::Output, std::io::Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    Ok(runtime.block_on(future))
}

/// The exit status for a run's outcome (README: "Exit status").
pub(crate) fn exit_for(outcome: Outcome) -> Exit {
    match outcome {
        Outcome::Upgraded | Outcome::UpToDate => Exit::Ok,
        Outcome::Refused => Exit::Refused,
        Outcome::Paused => Exit::Paused,
        Outcome::RolledBack => Exit::RolledBack,
        Outcome::Failed => Exit::Failed,
    }
}

/// The exit status for an error that kept the engine from producing a report.
pub(crate) fn exit_for_error(error: &EngineError) -> Exit {
    match error {
        EngineError::Journal(JournalError::Locked { .. }) => Exit::Locked,
        EngineError::Preflight(e) if e.is_config() => Exit::Usage,
        EngineError::Config(_)
        | EngineError::Retarget { .. }
        | EngineError::UnknownNode { .. }
        | EngineError::NothingToResume { .. } => Exit::Usage,
        EngineError::Preflight(_) | EngineError::FinalizeUnfinished { .. } => Exit::Refused,
        EngineError::Journal(_) | EngineError::Log { .. } | EngineError::Finalize(_) => {
            Exit::Failed
        }
    }
}

/// Prints a report (JSON on stdout, or the summary on stdout) and returns its exit status.
pub(crate) fn print_report(report: &Report, ctx: &Context) -> Exit {
    ctx.show(report, || crate::render::report(report));
    exit_for(report.outcome)
}

/// Runs an engine call on a fresh runtime: the engine's error is reported and becomes its
/// exit status, as does a runtime that cannot start.
pub(crate) fn settle<T>(
    ctx: &Context,
    result: Result<Result<T, EngineError>, std::io::Error>,
) -> Result<T, Exit> {
    match result {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => {
            ctx.report_error(&crate::render::engine_error(&e));
            Err(exit_for_error(&e))
        }
        Err(e) => {
            ctx.report_error(&e);
            Err(Exit::Failed)
        }
    }
}

pub fn plan(args: PlanArgs, ctx: &Context) -> Exit {
    let config = match ctx.config() {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let result = block_on(engine::plan(
        config,
        &ctx.env,
        args.to.as_deref(),
        &args.accept,
    ));
    match settle(ctx, result) {
        Ok(PlanView::Fresh(plan)) => {
            ctx.show(&plan, || crate::render::plan(&plan));
            if !plan.facts.findings.has_blockers() {
                Exit::Ok
            } else {
                Exit::Refused
            }
        }
        Ok(PlanView::Unfinished(resume)) => {
            ctx.show(&resume, || crate::render::resume_plan(&resume));
            Exit::Ok
        }
        Err(exit) => exit,
    }
}

pub fn upgrade(args: UpgradeArgs, ctx: &Context) -> Exit {
    run_engine(
        UpgradeOptions {
            to: args.to,
            accept: args.accept,
            until: args.until,
            ..UpgradeOptions::default()
        },
        args.yes,
        ctx,
    )
}

pub fn resume(yes: bool, ctx: &Context) -> Exit {
    run_engine(
        UpgradeOptions {
            resume_only: true,
            ..UpgradeOptions::default()
        },
        yes,
        ctx,
    )
}

fn run_engine(options: UpgradeOptions, yes: bool, ctx: &Context) -> Exit {
    let config = match ctx.config() {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let events = Arc::new(StepPrinter::new(ctx.json, ctx.quiet(), yes).with_config(&config));
    let watcher = events.clone();
    let state_dir = config.state.dir.clone();
    let run = async move {
        let notifier = Arc::new(Notifier::from_config(&config, &|name| {
            std::env::var(name).ok()
        }));
        let notifying = Arc::new(Notifying::new(events.clone(), notifier.clone()));
        // Ctrl-C and SIGTERM: the first stops at the next safe point, the second exits.
        let interrupts = crate::platform::Interrupts::new().ok().map(|mut i| {
            tokio::spawn(async move {
                loop {
                    i.next().await;
                    watcher.interrupted();
                }
            })
        });
        let mut result = engine::upgrade(config, &ctx.env, options, notifying).await;
        if let Some(task) = interrupts {
            task.abort();
        }
        if let Ok(report) = &mut result {
            notifier.finish(report).await;
            keep_record(&state_dir, report);
        }
        (result, events.answer())
    };
    match block_on(run) {
        Ok((Ok(report), answer)) => {
            let exit = print_report(&report, ctx);
            match answer {
                Some(Answer::Declined) => Exit::Declined,
                Some(Answer::NeedsTerminal) => Exit::NeedsConfirmation,
                _ => exit,
            }
        }
        Ok((Err(e), _)) => {
            ctx.report_error(&crate::render::engine_error(&e));
            exit_for_error(&e)
        }
        Err(e) => {
            ctx.report_error(&e);
            Exit::Failed
        }
    }
}

/// Writes the upgrade record beside the journal; a failure is a warning of the report.
fn keep_record(state_dir: &std::path::Path, report: &mut Report) {
    if let Err(e) = upgrade_record::write_record(state_dir, report) {
        report.warnings.push(format!(
            "the upgrade record could not be written in {}: {e}",
            state_dir.join("records").display()
        ));
    }
}

/// `octoup rollback`: restores the database backup and the original version for the
/// unfinished run (or continues a rollback under way).
pub fn rollback(yes: bool, ctx: &Context) -> Exit {
    run_engine(
        UpgradeOptions {
            rollback: true,
            ..UpgradeOptions::default()
        },
        yes,
        ctx,
    )
}
