//! `[[notify]]`: webhooks told of an upgrade's milestones. A webhook URL is a secret (it
//! is the credential: whoever has it can post): it comes from a file or an environment
//! variable, or inline with a warning, and it is never shown.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::diagnostic::{KeyPath, Problem};
use super::{Config, ConfigError, Secret};

/// The payload a webhook expects.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyFormat {
    /// octoup's own JSON: the event, the run id and the report's key fields.
    #[default]
    Generic,
    /// A Slack incoming webhook (`text` plus Block Kit `blocks`).
    Slack,
    /// A Microsoft Teams incoming webhook or Workflows trigger (an Adaptive Card message).
    Teams,
}

/// What a webhook can be told of.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyEvent {
    /// The plan is made and confirmed: the upgrade begins.
    PlanReady,
    /// The first service stopped: Octopus is down.
    OutageStarted,
    /// Every node serves again (the target, or after an undo the original version).
    OutageEnded,
    Upgraded,
    /// Stopped in a documented safe state; the message carries the next step.
    Paused,
    /// Failed (put back, or refused before any change).
    Failed,
    RolledBack,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 7] = [
        NotifyEvent::PlanReady,
        NotifyEvent::OutageStarted,
        NotifyEvent::OutageEnded,
        NotifyEvent::Upgraded,
        NotifyEvent::Paused,
        NotifyEvent::Failed,
        NotifyEvent::RolledBack,
    ];

    /// How a run ends (the last message of a run).
    pub fn is_ending(self) -> bool {
        matches!(
            self,
            NotifyEvent::Upgraded
                | NotifyEvent::Paused
                | NotifyEvent::Failed
                | NotifyEvent::RolledBack
        )
    }

    /// The config's (and the generic payload's) word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::PlanReady => "plan-ready",
            NotifyEvent::OutageStarted => "outage-started",
            NotifyEvent::OutageEnded => "outage-ended",
            NotifyEvent::Upgraded => "upgraded",
            NotifyEvent::Paused => "paused",
            NotifyEvent::Failed => "failed",
            NotifyEvent::RolledBack => "rolled-back",
        }
    }
}

/// One `[[notify]]` webhook.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Names the webhook in warnings and the log (the URL never is).
    pub name: Option<String>,
    pub format: NotifyFormat,
    /// The URL inline: allowed, but it puts a credential in the config (warned).
    pub url: Option<Secret>,
    /// A file holding the URL (owner-readable, like the API key file).
    pub url_file: Option<PathBuf>,
    /// An environment variable holding the URL.
    pub url_env: Option<String>,
    /// Only these events; absent: every event.
    pub events: Option<Vec<NotifyEvent>>,
    /// Every attempt for one event, retries included, ends within this many seconds.
    pub timeout_seconds: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            name: None,
            format: NotifyFormat::Generic,
            url: None,
            url_file: None,
            url_env: None,
            events: None,
            timeout_seconds: 10,
        }
    }
}

impl NotifyConfig {
    /// How warnings and the log name it: its `name`, else its place and format.
    pub fn label(&self, index: usize) -> String {
        match &self.name {
            Some(name) if !name.trim().is_empty() => name.clone(),
            _ => format!(
                "[[notify]] #{} ({})",
                index + 1,
                serde_json::to_value(self.format)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ),
        }
    }

    /// Whether this webhook wants `event`.
    pub fn wants(&self, event: NotifyEvent) -> bool {
        self.events.as_ref().is_none_or(|e| e.contains(&event))
    }

    /// The URL, from wherever it is configured; `lookup` reads an environment variable
    /// (the config never reads the process environment itself).
    pub fn resolve_url(
        &self,
        index: usize,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secret, ConfigError> {
        let label = self.label(index);
        let value = if let Some(url) = &self.url {
            url.expose().to_string()
        } else if let Some(path) = &self.url_file {
            std::fs::read_to_string(path).map_err(|source| ConfigError::WebhookFile {
                webhook: label.clone(),
                path: path.clone(),
                source,
            })?
        } else if let Some(name) = &self.url_env {
            lookup(name).unwrap_or_default()
        } else {
            String::new()
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "the webhook {label} has no URL: {} is empty or unset",
                self.source_name()
            )));
        }
        Ok(Secret::new(value))
    }

    /// Where the URL comes from, in words (never the URL).
    pub fn source_name(&self) -> String {
        match (&self.url, &self.url_file, &self.url_env) {
            (Some(_), _, _) => "url (inline)".into(),
            (_, Some(p), _) => format!("url_file {}", p.display()),
            (_, _, Some(n)) => format!("url_env {n}"),
            _ => "no url".into(),
        }
    }
}

impl Config {
    pub(super) fn validate_notify(&self) -> Result<(), Problem> {
        for (i, hook) in self.notify.iter().enumerate() {
            let at = |key: Option<&str>, message: String| {
                Err(Problem::at(KeyPath::item("notify", i, key), message))
            };
            let sources = [
                hook.url.is_some(),
                hook.url_file.is_some(),
                hook.url_env.is_some(),
            ];
            match sources.iter().filter(|s| **s).count() {
                0 => {
                    return at(
                        None,
                        "has no URL: give url_file (a file holding it), url_env (an environment variable) or url".into(),
                    );
                }
                1 => {}
                _ => {
                    return at(
                        None,
                        "gives more than one of url, url_file and url_env: keep one".into(),
                    );
                }
            }
            if let Some(url) = &hook.url
                && !(url.expose().starts_with("https://") || url.expose().starts_with("http://"))
            {
                return at(
                    Some("url"),
                    "expected an http(s):// URL (its value is not shown: it is a secret)".into(),
                );
            }
            if hook.url_env.as_ref().is_some_and(|n| n.trim().is_empty()) {
                return at(
                    Some("url_env"),
                    "is empty: name an environment variable".into(),
                );
            }
            if hook.timeout_seconds == 0 {
                return at(
                    Some("timeout_seconds"),
                    super::validate::zero(
                        "seconds",
                        "no delivery could be attempted",
                        NotifyConfig::default().timeout_seconds,
                    ),
                );
            }
            if hook.events.as_ref().is_some_and(Vec::is_empty) {
                return at(
                    Some("events"),
                    "is empty: leave it out for every event, or name some".into(),
                );
            }
        }
        Ok(())
    }
}

/// A secret in the config file is read as a plain string and always written as `***`
/// (`octoup config check` prints the config).
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_parses_with_its_filter() {
        let cfg = Config::parse(
            "[[notify]]\nformat = \"slack\"\nurl_env = \"OCTOUP_SLACK\"\nevents = [\"upgraded\", \"failed\"]\n",
        )
        .unwrap();
        let hook = &cfg.notify[0];
        assert_eq!(hook.format, NotifyFormat::Slack);
        assert!(hook.wants(NotifyEvent::Failed));
        assert!(!hook.wants(NotifyEvent::PlanReady));
        assert_eq!(hook.timeout_seconds, 10);
        let lookup = |n: &str| (n == "OCTOUP_SLACK").then(|| "https://hooks.example/T/B/x".into());
        assert_eq!(
            hook.resolve_url(0, &lookup).unwrap().expose(),
            "https://hooks.example/T/B/x"
        );
        assert!(hook.resolve_url(0, &|_| None).is_err());
    }

    #[test]
    fn bad_webhooks_are_named() {
        for (text, needle) in [
            ("[[notify]]\nurl_fil = \"x\"\n", "url_fil"),
            (
                "[[notify]]\nformat = \"discord\"\nurl_env = \"X\"\n",
                "discord",
            ),
            ("[[notify]]\nurl_env = \"X\"\nevents = [\"done\"]\n", "done"),
            ("[[notify]]\nformat = \"slack\"\n", "[[notify]] #1"),
            (
                "[[notify]]\nurl_env = \"X\"\nurl_file = \"f\"\n",
                "more than one",
            ),
            (
                "[[notify]]\nurl_env = \"X\"\n[[notify]]\nurl_env = \"Y\"\ntimeout_seconds = 0\n",
                "[[notify]] #2 timeout_seconds",
            ),
            (
                "[[notify]]\nurl = \"hooks.example/SECRETPATH\"\n",
                "http(s)",
            ),
        ] {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(!err.contains("SECRETPATH"), "{err}");
        }
    }

    #[test]
    fn an_inline_url_never_prints() {
        let cfg =
            Config::parse("[[notify]]\nurl = \"https://hooks.example/SECRETPATH\"\n").unwrap();
        let shown = format!(
            "{cfg:?} {} {}",
            toml::to_string(&cfg).unwrap(),
            serde_json::to_string(&cfg).unwrap()
        );
        assert!(!shown.contains("SECRETPATH"), "{shown}");
        assert_eq!(cfg.notify[0].source_name(), "url (inline)");
    }
}
