//! `octoup stage`: download and verify the installers an upgrade needs into the cache,
//! before the outage and without changing anything on the server: the target's (`--to`, or
//! the version policy's choice) and, when `[rollback] enabled`, the installed version's.
//!
//! Exit status: 0 when every needed installer is staged (or there is nothing to upgrade);
//! 2 for bad input or configuration; 3 when the server or feed cannot be read; 6 when
//! another octoup is downloading the same installer; 1 when a download or check fails.

use std::sync::Arc;

use octoup::choice::ChoiceError;
use octoup::config::Config;
use octoup::installer::cache::{
    InstallerCache, InstallerError, InstallerSettings, Role, StagedInstaller, describe,
};
use octoup::octopus::http::{HttpClient, NetworkSettings};
use octoup::process::runner::LocalRunner;
use octoup::progress::Progress;
use octoup::version::Version;
use serde::Serialize;

use crate::cli::StageArgs;
use crate::context::Context;
use crate::exit::Exit;
use crate::progress::{CliProgress, bytes};

use super::server::ask_server;

#[derive(Serialize)]
struct StageReport {
    installers: Vec<Staged>,
    /// Why nothing (or less than asked) was staged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

#[derive(Serialize)]
struct Staged {
    role: Role,
    #[serde(flatten)]
    installer: StagedInstaller,
}

type Failure = (Exit, String);

pub fn run(args: StageArgs, ctx: &Context) -> Exit {
    match stage(args, ctx) {
        Ok(report) => {
            print_report(&report, ctx);
            Exit::Ok
        }
        Err((code, message)) => {
            ctx.report_error(&message);
            code
        }
    }
}

fn stage(args: StageArgs, ctx: &Context) -> Result<StageReport, Failure> {
    let usage = |e: &dyn std::fmt::Display| (Exit::Usage, e.to_string());
    let config = ctx.load_config().map_err(|e| usage(&e))?;
    let to = args
        .to
        .as_deref()
        .map(str::parse::<Version>)
        .transpose()
        .map_err(|e| usage(&format!("--to: {e}")))?;
    let http = HttpClient::new(NetworkSettings::from_config(&config)).map_err(|e| usage(&e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| (Exit::Failed, format!("cannot start the async runtime: {e}")))?;
    let progress = CliProgress::for_output(ctx.quiet(), ctx.json);
    runtime.block_on(async {
        let mut notes = Vec::new();
        let (target, current) = choose(&config, ctx, &http, to, &mut notes).await?;
        let Some(target) = target else {
            return Ok(StageReport {
                installers: Vec::new(),
                notes,
            });
        };
        let cache = InstallerCache::new(
            InstallerSettings::from_config(&config),
            http,
            Arc::new(LocalRunner::default()),
        );
        let keep: Vec<&Version> = [Some(&target), current.as_ref()]
            .into_iter()
            .flatten()
            .collect();
        match cache.clean_partials(&keep) {
            Ok(removed) => {
                for path in removed {
                    progress.message(&format!(
                        "removed a stale partial download: {}",
                        path.display()
                    ));
                }
            }
            Err(e) => progress.message(&format!("could not clean stale partial downloads: {e}")),
        }
        let mut installers = vec![Staged {
            role: Role::Target,
            installer: ensure(&cache, &target, Role::Target, &progress).await?,
        }];
        match current {
            Some(current) if config.rollback.enabled && current != target => {
                installers.push(Staged {
                    role: Role::Rollback,
                    installer: ensure(&cache, &current, Role::Rollback, &progress).await?,
                })
            }
            _ => {}
        }
        Ok(StageReport { installers, notes })
    })
}

async fn ensure(
    cache: &InstallerCache,
    version: &Version,
    role: Role,
    progress: &dyn Progress,
) -> Result<StagedInstaller, Failure> {
    cache
        .ensure_installer(version, role, progress)
        .await
        .map_err(|e| {
            let code = match e {
                InstallerError::Busy { .. } => Exit::Locked,
                InstallerError::BadPin(_) | InstallerError::CacheDir { .. } => Exit::Usage,
                _ => Exit::Failed,
            };
            let what = match role {
                Role::Target => String::new(),
                Role::Rollback => " (the installed version's installer, kept for a rollback; set [rollback] enabled = false to upgrade without it)".into(),
            };
            (code, format!("{e}{what}"))
        })
}

/// The target (`--to`, which the feed must list, else the policy's next stop) and the
/// installed version (needed for the rollback installer, and to choose a target).
async fn choose(
    config: &Config,
    ctx: &Context,
    http: &HttpClient,
    to: Option<Version>,
    notes: &mut Vec<String>,
) -> Result<(Option<Version>, Option<Version>), Failure> {
    if let Some(wanted) = &to {
        let found = octoup::choice::requested(&config.versions, None, http, wanted)
            .await
            .map_err(|e| match e {
                ChoiceError::Feed(e) => (
                    Exit::Refused,
                    format!("--to {wanted} cannot be checked against the version feed, which could not be read: {e}"),
                ),
                e => (Exit::Usage, e.to_string()),
            })?;
        notes.extend(found.warnings);
        if !config.rollback.enabled {
            return Ok((to, None));
        }
    }
    let facts = match (ask_server(config, &ctx.env, http).await, &to) {
        (Ok(facts), _) => facts,
        (Err(failure), _) if failure.0 == Exit::Usage => return Err(failure),
        (Err((_, e)), Some(_)) => {
            notes.push(format!(
                "the rollback installer was not staged: {e}. `octoup upgrade` stages it before the outage"
            ));
            return Ok((to, None));
        }
        (Err((_, e)), None) => {
            return Err((
                Exit::Refused,
                format!(
                    "{e}; octoup needs the installed version to choose a target, or pass --to VERSION"
                ),
            ));
        }
    };
    let current = facts.current;
    if to.is_some() {
        return Ok((to, Some(current)));
    }
    notes.extend(facts.warnings);
    let report = octoup::choice::choose(&config.versions, None, http, &current, facts.license_max)
        .await
        .map_err(|e| {
            let code = if e.is_config() {
                Exit::Usage
            } else {
                Exit::Refused
            };
            (code, e.to_string())
        })?;
    notes.extend(report.warnings.iter().cloned());
    match report.path.first() {
        Some(next) => Ok((Some(next.clone()), Some(current))),
        None => {
            notes.push(format!("nothing to stage: {}", report.explanation));
            Ok((None, Some(current)))
        }
    }
}

fn print_report(report: &StageReport, ctx: &Context) {
    if ctx.json {
        match serde_json::to_string_pretty(report) {
            Ok(json) => println!("{json}"),
            Err(e) => ctx.report_error(&format!("cannot write the report: {e}")),
        }
        return;
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    for s in &report.installers {
        let i = &s.installer;
        let role = match s.role {
            Role::Target => "target",
            Role::Rollback => "rollback",
        };
        println!(
            "{role} {}: {}\n  sha256 {}  {} ({} bytes)  verified by {}{}",
            i.version,
            i.path.display(),
            i.sha256,
            bytes(i.size),
            i.size,
            describe(&i.verified_by),
            if i.cached { "  (already cached)" } else { "" }
        );
    }
}
