//! Where the API key comes from, as data: the error for a refused key names it, so the
//! operator fixes the right place.

use std::path::PathBuf;

use super::{Config, EnvOverrides};

/// The origin of the API key [`Config::api_key`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeySource {
    /// `OCTOPUS_API_KEY` (it wins over the file).
    Environment,
    /// `[server] api_key_file`.
    File(PathBuf),
}

impl Config {
    /// Where [`Config::api_key`] takes the key from, or `None` when there is none to take.
    pub fn api_key_source(&self, env: &EnvOverrides) -> Option<ApiKeySource> {
        if env.api_key.as_ref().is_some_and(|k| !k.is_empty()) {
            return Some(ApiKeySource::Environment);
        }
        self.server.api_key_file.clone().map(ApiKeySource::File)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn the_environment_wins_over_the_file() {
        let mut config = Config::default();
        let none = EnvOverrides::default();
        assert_eq!(config.api_key_source(&none), None);
        config.server.api_key_file = Some("/etc/octoup/api-key.txt".into());
        assert_eq!(
            config.api_key_source(&none),
            Some(ApiKeySource::File("/etc/octoup/api-key.txt".into()))
        );
        let env = EnvOverrides {
            api_key: Some(Secret::new("API-X")),
            ..EnvOverrides::default()
        };
        assert_eq!(config.api_key_source(&env), Some(ApiKeySource::Environment));
        let empty = EnvOverrides {
            api_key: Some(Secret::new("")),
            ..EnvOverrides::default()
        };
        assert!(matches!(
            config.api_key_source(&empty),
            Some(ApiKeySource::File(_))
        ));
    }
}
