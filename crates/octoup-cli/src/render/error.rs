//! Errors for people (and the JSON `error` field). A refused API key is rendered here from
//! the data the library carries (where the key came from), with the next step; every other
//! error is the library's own words.

use octoup::config::ApiKeySource;
use octoup::engine::EngineError;
use octoup::engine::preflight::PreflightError;
use octoup::octopus::api::ApiError;

/// An engine error; a refused key gets [`api_error`]'s words.
pub fn engine_error(error: &EngineError) -> String {
    match error {
        EngineError::Preflight(PreflightError::Api(e)) => api_error(e),
        other => other.to_string(),
    }
}

/// An API error; a refused key (401) or a key without the needed permission (403) says
/// where the key came from and what to change.
pub fn api_error(error: &ApiError) -> String {
    match error {
        ApiError::Unauthorized { url, key } => format!(
            "{} was refused (401) by {url}. {}. Nothing was changed.",
            the_key(key.as_ref()),
            next_step(key.as_ref())
        ),
        ApiError::Forbidden { url, detail, key } => format!(
            "{} was refused (403) by {url}: its user lacks AdministerSystem{}, which octoup needs to change maintenance mode and node drain. {}. Nothing was changed.",
            the_key(key.as_ref()),
            if detail.is_empty() {
                String::new()
            } else {
                format!(" ({detail})")
            },
            next_step(key.as_ref())
        ),
        other => other.to_string(),
    }
}

fn the_key(key: Option<&ApiKeySource>) -> String {
    match key {
        Some(ApiKeySource::Environment) => "the API key from OCTOPUS_API_KEY".into(),
        Some(ApiKeySource::File(path)) => format!("the API key in {}", path.display()),
        None => "the API key".into(),
    }
}

const CREATE: &str = "an administrator's API key (in Octopus: Profile → My API Keys)";

fn next_step(key: Option<&ApiKeySource>) -> String {
    match key {
        Some(ApiKeySource::Environment) => format!(
            "Set OCTOPUS_API_KEY to {CREATE}; it takes precedence over [server] api_key_file"
        ),
        Some(ApiKeySource::File(path)) => {
            format!("Put {CREATE} in {}, or set OCTOPUS_API_KEY", path.display())
        }
        None => format!("Put {CREATE} in [server] api_key_file or OCTOPUS_API_KEY"),
    }
}
