//! What every command gets: the global flags and the environment, read once here.

use std::path::PathBuf;

use octoup::config::{EnvOverrides, Secret};

use crate::cli::Cli;

pub struct Context {
    pub config_path: PathBuf,
    pub json: bool,
    pub verbose: bool,
    /// `-q`: errors only on stderr.
    pub less: bool,
    pub env: EnvOverrides,
}

impl Context {
    pub fn from_cli(cli: &Cli) -> Context {
        // The only place that reads the environment.
        let env = EnvOverrides {
            url: std::env::var("OCTOPUS_URL").ok().filter(|v| !v.is_empty()),
            api_key: std::env::var("OCTOPUS_API_KEY")
                .ok()
                .filter(|v| !v.is_empty())
                .map(Secret::new),
        };
        Context {
            config_path: cli.global.config.clone(),
            json: cli.global.json,
            verbose: cli.global.verbose > 0,
            less: cli.global.quiet,
            env,
        }
    }

    /// Nothing on stderr but errors and prompts: `-q`, or `--json` without `-v` (a machine
    /// reads stdout; a person asks for more with `-v`).
    pub fn quiet(&self) -> bool {
        self.less || (self.json && !self.verbose)
    }

    /// Loads the config and applies the environment.
    pub fn load_config(&self) -> Result<octoup::config::Config, octoup::config::ConfigError> {
        let mut config = octoup::config::Config::load(&self.config_path)?;
        config.apply_env(&self.env);
        Ok(config)
    }

    /// The config, or the usage exit after its error is reported.
    pub fn config(&self) -> Result<octoup::config::Config, crate::exit::Exit> {
        self.load_config().map_err(|e| {
            self.report_error(&e);
            crate::exit::Exit::Usage
        })
    }

    /// Prints a result: one JSON object on stdout, or `text()` for people.
    pub fn show<T: serde::Serialize>(&self, value: &T, text: impl FnOnce() -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            print!("{}", text());
        }
    }

    /// Prints an error for people (stderr) or machines (a JSON object on stdout).
    pub fn report_error(&self, error: &dyn std::fmt::Display) {
        if self.json {
            println!(
                "{}",
                serde_json::json!({ "outcome": "failed", "error": error.to_string() })
            );
        } else {
            eprintln!("error: {error}");
        }
    }
}
