//! `octoup check`: which version would an upgrade install, by which path, and why not the
//! others. Reads the server (or `--current`), the license cap and the feed; the choice itself
//! is `octoup::choice::check`.
//!
//! Exit status: 0 when the answer is known (a target, up to date, or nothing eligible);
//! 2 for bad input or configuration (a refused API key included); 3 when the feed or the
//! server cannot be read. With `--exit-code`, an eligible target exits 12 instead of 0, so
//! a scheduled "notify me" job can tell "upgrade available" from "up to date".

use octoup::choice::choose;
use octoup::config::{Config, ConfigError};
use octoup::octopus::http::{HttpClient, NetworkSettings};
use octoup::version::Version;

use crate::cli::CheckArgs;
use crate::context::Context;
use crate::exit::Exit;

use super::server::{ServerFacts, ask_server};

pub fn run(args: CheckArgs, ctx: &Context) -> Exit {
    let fail = |code: Exit, error: &dyn std::fmt::Display| {
        ctx.report_error(error);
        code
    };
    let config = match load_config(ctx, args.current.is_some()) {
        Ok(config) => config,
        Err(e) => return fail(Exit::Usage, &e),
    };
    let current_arg = match args
        .current
        .as_deref()
        .map(str::parse::<Version>)
        .transpose()
    {
        Ok(current) => current,
        Err(e) => return fail(Exit::Usage, &format!("--current: {e}")),
    };
    let http = match HttpClient::new(NetworkSettings::from_config(&config)) {
        Ok(http) => http,
        Err(e) => return fail(Exit::Usage, &e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return fail(
                Exit::Failed,
                &format!("cannot start the async runtime: {e}"),
            );
        }
    };

    runtime.block_on(async {
        let facts = match current_arg {
            // `--current` means "no server": nothing is contacted but the feed.
            Some(current) => ServerFacts {
                current,
                license_max: None,
                warnings: vec![
                    "license coverage not checked (--current: no server asked); `octoup upgrade` compares the target with the server's MaximumAvailableVersionCoveredByLicense before any downtime".into(),
                ],
            },
            None => match ask_server(&config, &ctx.env, &http).await {
                Ok(facts) => facts,
                Err((code, message)) => return fail(code, &message),
            },
        };
        let chosen = choose(
            &config.versions,
            args.feed.as_deref(),
            &http,
            &facts.current,
            facts.license_max,
        )
        .await;
        let mut report = match chosen {
            Ok(report) => report,
            Err(e) if e.is_config() => return fail(Exit::Usage, &e),
            Err(e) => return fail(Exit::Refused, &e),
        };
        report.warnings.splice(0..0, facts.warnings);
        if ctx.json {
            match serde_json::to_string_pretty(&report) {
                Ok(json) => println!("{json}"),
                Err(e) => return fail(Exit::Failed, &format!("cannot write the report: {e}")),
            }
        } else {
            print!("{}", crate::render::check(&report));
        }
        if args.exit_code && report.target.is_some() {
            Exit::UpgradeAvailable
        } else {
            Exit::Ok
        }
    })
}

/// The config file; a missing default `./octoup.toml` is fine (defaults plus environment),
/// so `octoup check --current V --feed F` works with no config at all.
fn load_config(ctx: &Context, offline: bool) -> Result<Config, ConfigError> {
    let is_default = ctx.config_path.as_os_str() == "octoup.toml";
    if is_default && !ctx.config_path.exists() {
        let mut config = Config::default();
        config.apply_env(&ctx.env);
        if !offline {
            // Without a server there is nothing to check against: say how to give one.
            config.server_url().map_err(|_| {
                ConfigError::Invalid(
                    "no ./octoup.toml and no OCTOPUS_URL: pass --config FILE, set OCTOPUS_URL, or give the installed version with --current VERSION".into(),
                )
            })?;
        }
        return Ok(config);
    }
    ctx.load_config()
}
