//! What a config resolves to, for `octoup config check`: the defaults filled in, relative
//! paths resolved (by [`Config::load`]), `[[nodes]]` expanded with their effective values,
//! where each secret comes from (never the secret: no `*_file` is read), and what would stop
//! an upgrade before it asks the server anything. Offline: nothing is contacted.

use std::path::Path;

use serde::Serialize;

use crate::config::{Config, ConfigError, EnvOverrides, NodeConfig};
use crate::octopus::http::{HttpClient, NetworkSettings, check_url_policy, redact_url};

/// The resolved settings and what is wrong with them.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// `from OCTOPUS_URL`, `from [server] url` or `missing`.
    pub url: String,
    /// `from OCTOPUS_API_KEY`, `from api_key_file <path>` or `missing`.
    pub api_key: String,
    /// `from password_file <path>`, or `none` (sqlcmd's own authentication, e.g. -E).
    pub sql_password: String,
    /// What an upgrade would refuse (each says what to do). Empty: ready.
    pub problems: Vec<String>,
    /// The config as octoup will use it, credentials in URLs shown as `***@`.
    pub config: Config,
}

/// Resolves a loaded config (paths already resolved) with the environment.
pub fn resolve(loaded: &Config, env: &EnvOverrides) -> Settings {
    let mut config = loaded.clone();
    let mut problems = Vec::new();
    let url = match (&env.url, config.server.url.as_deref().map(str::trim)) {
        (Some(_), _) => "from OCTOPUS_URL",
        (None, Some(u)) if !u.is_empty() => "from [server] url",
        _ => {
            problems.push(ConfigError::MissingUrl.to_string());
            "missing"
        }
    };
    config.apply_env(env);
    let api_key = match (&env.api_key, &config.server.api_key_file) {
        (Some(_), _) => "from OCTOPUS_API_KEY".to_string(),
        (None, Some(path)) => {
            missing_file(&mut problems, "[server] api_key_file", path);
            format!("from api_key_file {}", path.display())
        }
        (None, None) => {
            problems.push(ConfigError::MissingApiKey.to_string());
            "missing".to_string()
        }
    };
    let sql_password = match &config.database.password_file {
        Some(path) => {
            missing_file(&mut problems, "[database] password_file", path);
            format!("from password_file {}", path.display())
        }
        None => "none (sqlcmd's own authentication)".to_string(),
    };
    if let Err(e) = HttpClient::new(NetworkSettings::from_config(&config)) {
        problems.push(e.to_string());
    }
    config.installer.cache_dir = Some(config.cache_dir());
    if let Ok(nodes) = config.effective_nodes() {
        config.nodes = nodes.iter().map(|n| expand(&config, n)).collect();
    }
    let allow_plain = config.network.allow_plain_http;
    let urls = config.server.url.iter().map(|u| ("[server] url", u));
    // Without [[nodes]] the one node's url is the server's, checked already.
    let listed = if loaded.nodes.is_empty() {
        &[][..]
    } else {
        &config.nodes[..]
    };
    let node_urls = listed.iter().map(|n| ("[[nodes]] url", &n.url));
    for (key, url) in urls.chain(node_urls) {
        let checked = reqwest::Url::parse(url)
            .map_err(|e| e.to_string())
            .and_then(|u| check_url_policy(&u, allow_plain).map_err(|e| e.to_string()));
        if let Err(e) = checked {
            problems.push(format!("{key} {}: {e}", redact_url(url)));
        }
    }
    config.server.url = config.server.url.as_deref().map(redact_url);
    config.network.proxy = config.network.proxy.as_deref().map(redact_url);
    for node in &mut config.nodes {
        node.url = redact_url(&node.url);
    }
    Settings {
        url: url.to_string(),
        api_key,
        sql_password,
        problems,
        config,
    }
}

/// A node with every per-node value filled in (its override, or the global one).
fn expand(config: &Config, node: &NodeConfig) -> NodeConfig {
    NodeConfig {
        name: if node.name.is_empty() {
            "(this machine)".into()
        } else {
            node.name.clone()
        },
        server_exe: Some(config.server_exe_for(node).to_vec()),
        instance: Some(config.instance_for(node).to_string()),
        install: Some(config.install_for(node).to_vec()),
        uninstall: Some(config.uninstall_for(node).to_vec()),
        ..node.clone()
    }
}

/// Notes a secret file that is not there (only its existence is looked at, never its text).
fn missing_file(problems: &mut Vec<String>, key: &str, path: &Path) {
    if !path.is_file() {
        problems.push(format!(
            "{key} {} does not exist (or is not a file)",
            path.display()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn secrets_are_sources_never_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key.txt"), "API-INFILE123").unwrap();
        let path = dir.path().join("octoup.toml");
        std::fs::write(
            &path,
            "[server]\nurl = \"https://u:pw123@octopus.example.com\"\napi_key_file = \"key.txt\"\n[database]\npassword_file = \"nope.txt\"\n[network]\nproxy = \"http://p:proxypw@proxy:3128\"\n",
        )
        .unwrap();
        let config = Config::load(&path).unwrap();
        let settings = resolve(&config, &EnvOverrides::default());
        let key_file = dir.path().join("key.txt");
        assert_eq!(settings.url, "from [server] url");
        assert_eq!(
            settings.api_key,
            format!("from api_key_file {}", key_file.display())
        );
        assert!(settings.sql_password.starts_with("from password_file "));
        assert_eq!(settings.problems.len(), 1, "{:?}", settings.problems);
        assert!(settings.problems[0].contains("nope.txt does not exist"));
        let json = serde_json::to_string(&settings).unwrap();
        for secret in ["INFILE123", "pw123", "proxypw"] {
            assert!(!json.contains(secret), "{json}");
        }
        // Expanded: this machine as the one node, with its effective values.
        assert_eq!(settings.config.nodes.len(), 1);
        assert_eq!(
            settings.config.nodes[0].instance.as_deref(),
            Some("OctopusServer")
        );
        assert_eq!(
            settings.config.installer.cache_dir,
            Some(dir.path().join("octoup-state").join("cache"))
        );

        let env = EnvOverrides {
            url: Some("http://octopus.example.com".into()),
            api_key: Some(Secret::new("API-ENV")),
        };
        let settings = resolve(&Config::default(), &env);
        assert_eq!(settings.url, "from OCTOPUS_URL");
        assert_eq!(settings.api_key, "from OCTOPUS_API_KEY");
        assert!(
            settings.problems.iter().any(|p| p.contains("http://")),
            "{:?}",
            settings.problems
        );
        let settings = resolve(&Config::default(), &EnvOverrides::default());
        assert_eq!(
            (&settings.url[..], &settings.api_key[..]),
            ("missing", "missing")
        );
        assert_eq!(settings.problems.len(), 2, "{:?}", settings.problems);
    }
}
