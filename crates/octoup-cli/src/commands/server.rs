//! What `check` and `stage` ask the server before choosing a version: the running version
//! (`/api`, anonymous) and, with an API key, the license cap (`/api/serverstatus`). Errors
//! come with their exit status: a configuration mistake (the URL, a refused key) is 2,
//! a server that could not be read is 3.

use std::time::Duration;

use octoup::config::{Config, ConfigError, EnvOverrides, Secret};
use octoup::octopus::api::{ApiError, OctopusApi};
use octoup::octopus::http::HttpClient;
use octoup::version::Version;

use crate::exit::Exit;

/// What the server says.
pub(crate) struct ServerFacts {
    pub current: Version,
    pub license_max: Option<Version>,
    pub warnings: Vec<String>,
}

/// The running version and the license cap; `Err` carries the exit status and the message.
pub(crate) async fn ask_server(
    config: &Config,
    env: &EnvOverrides,
    http: &HttpClient,
) -> Result<ServerFacts, (Exit, String)> {
    let url = config.server_url().map_err(|e| {
        (
            Exit::Usage,
            format!("{e}, or give the installed version with --current VERSION"),
        )
    })?;
    let mut warnings = Vec::new();
    let key = match config.api_key(env) {
        Ok(key) => Some(key),
        Err(ConfigError::MissingApiKey) => {
            warnings.push(
                "no API key, so the license coverage was not read from /api/serverstatus: set OCTOPUS_API_KEY or [server] api_key_file".into(),
            );
            None
        }
        Err(e) => return Err((Exit::Usage, e.to_string())),
    };
    let timeout = Duration::from_secs(config.timeouts.http.max(1));
    let api = OctopusApi::new(
        http.clone(),
        url,
        key.clone().unwrap_or_else(|| Secret::new("")),
        timeout,
    )
    .with_key_source(config.api_key_source(env));
    let root = api.root().await.map_err(server_error)?;
    let current = root.version.parse::<Version>().map_err(|e| {
        (
            Exit::Refused,
            format!("{url}/api reports a version octoup cannot read: {e}"),
        )
    })?;
    let mut license_max = None;
    if key.is_some() {
        let status = api.server_status().await.map_err(server_error)?;
        match status.maximum_available_version_covered_by_license.as_deref().map(str::trim) {
            Some(text) if !text.is_empty() => match text.parse::<Version>() {
                Ok(max) => license_max = Some(max),
                Err(e) => warnings.push(format!(
                    "license coverage unknown: /api/serverstatus MaximumAvailableVersionCoveredByLicense is unreadable ({e})"
                )),
            },
            _ => warnings.push(
                "license coverage unknown: /api/serverstatus gives no MaximumAvailableVersionCoveredByLicense (the server's upgrade check may be off)".into(),
            ),
        }
    }
    Ok(ServerFacts {
        current,
        license_max,
        warnings,
    })
}

/// A configuration mistake (an unusable URL, a refused key) is 2; anything else means the
/// server could not be read (3).
fn server_error(e: ApiError) -> (Exit, String) {
    let code = if e.is_config() {
        Exit::Usage
    } else {
        Exit::Refused
    };
    (code, crate::render::api_error(&e))
}
