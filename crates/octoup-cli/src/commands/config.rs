//! `octoup config check`: validates the config offline and prints what it resolves to
//! (`octoup::settings`), secrets as where they come from. Exit 0 valid, 2 invalid.

use std::fmt::Write as _;

use octoup::config::{Config, ConfigError};
use octoup::settings::{Settings, resolve};

use crate::cli::{ConfigAction, ConfigArgs};
use crate::context::Context;
use crate::exit::Exit;

pub fn run(args: ConfigArgs, ctx: &Context) -> Exit {
    match args.action {
        ConfigAction::Check => check(ctx),
    }
}

fn check(ctx: &Context) -> Exit {
    let path = &ctx.config_path;
    // Loaded by its absolute path, so the relative paths it holds show resolved; an error
    // names the file as it was given.
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
    let config = match Config::load(&absolute) {
        Ok(config) => config,
        Err(mut e) => {
            if let ConfigError::Parse(d) = &mut e {
                d.file = path.clone();
            }
            if ctx.json {
                let location = match &e {
                    ConfigError::Parse(d) => serde_json::to_value(d).ok(),
                    _ => None,
                };
                println!(
                    "{}",
                    serde_json::json!({
                        "valid": false, "config": path, "error": e.to_string(), "location": location,
                    })
                );
            } else {
                eprintln!("error: {e}");
            }
            return Exit::Usage;
        }
    };
    let settings = resolve(&config, &ctx.env);
    let valid = settings.problems.is_empty();
    if ctx.json {
        let value = serde_json::json!({
            "valid": valid,
            "config": path,
            "url": settings.url,
            "api_key": settings.api_key,
            "sql_password": settings.sql_password,
            "problems": settings.problems,
            "settings": settings.config,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        print!("{}", text(path, &settings));
    }
    if valid { Exit::Ok } else { Exit::Usage }
}

fn text(path: &std::path::Path, settings: &Settings) -> String {
    let mut out = String::new();
    let _ = match settings.problems.len() {
        0 => writeln!(out, "{}: valid", path.display()),
        n => writeln!(
            out,
            "{}: {n} problem{} an upgrade would refuse",
            path.display(),
            if n == 1 { "" } else { "s" }
        ),
    };
    for problem in &settings.problems {
        let _ = writeln!(out, "  - {problem}");
    }
    let _ = writeln!(
        out,
        "\nurl:          {}\napi_key:      {}\nsql_password: {}",
        settings.url, settings.api_key, settings.sql_password
    );
    let _ = writeln!(
        out,
        "\n# Resolved: defaults filled in, relative paths resolved, [[nodes]] expanded; no secret shown.\n"
    );
    match toml::to_string(&settings.config) {
        Ok(toml) => out.push_str(&toml),
        Err(e) => {
            let _ = writeln!(out, "(cannot show the settings as TOML: {e})");
        }
    }
    out
}
