//! The three payloads: octoup's generic JSON, a Slack incoming-webhook message, and a
//! Microsoft Teams message carrying an Adaptive Card. The words are built once
//! ([`headline`], [`facts`]) and each format lays them out its own way.

use serde_json::{Value, json};

use crate::config::{NotifyEvent, NotifyFormat};
use crate::engine::Milestone;
use crate::process::clock::human_seconds;

/// The request body for `format`.
pub fn payload(format: NotifyFormat, m: &Milestone) -> Value {
    match format {
        NotifyFormat::Generic => generic(m),
        NotifyFormat::Slack => slack(m),
        NotifyFormat::Teams => teams(m),
    }
}

/// One line saying what happened.
pub fn headline(m: &Milestone) -> String {
    let versions = format!("{} → {}", m.from, m.to);
    let nodes = node_names(m);
    let outage = m.outage_seconds.map(human_seconds).unwrap_or_default();
    match m.event {
        NotifyEvent::PlanReady => format!(
            "octoup: upgrade {versions} on {nodes} begins (estimated outage {})",
            m.outage_estimate_seconds
                .map(human_seconds)
                .unwrap_or_else(|| "unknown".into())
        ),
        NotifyEvent::OutageStarted => {
            format!("octoup: outage started: Octopus is down while {nodes} upgrade {versions}")
        }
        NotifyEvent::OutageEnded => {
            format!("octoup: outage ended after {outage}: {nodes} serve again ({versions})")
        }
        NotifyEvent::Upgraded => {
            format!("octoup: upgraded {versions} on {nodes} (outage {outage})")
        }
        NotifyEvent::Paused => format!("octoup: upgrade {versions} paused in a safe state"),
        NotifyEvent::Failed if m.refused => {
            format!("octoup: upgrade {versions} refused; nothing was changed")
        }
        NotifyEvent::Failed => format!("octoup: upgrade {versions} failed"),
        NotifyEvent::RolledBack => {
            format!(
                "octoup: upgrade {versions} rolled back; {} serves again",
                m.from
            )
        }
    }
}

fn node_names(m: &Milestone) -> String {
    match m.nodes.len() {
        0 => "the server".into(),
        _ => m
            .nodes
            .iter()
            .map(|n| {
                if n.name.is_empty() {
                    "the server"
                } else {
                    &n.name
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The report's key fields, as (label, value) pairs for people.
pub fn facts(m: &Milestone) -> Vec<(&'static str, String)> {
    let mut facts = vec![("Versions", format!("{} → {}", m.from, m.to))];
    facts.push((
        "Nodes",
        if m.nodes.is_empty() {
            "(none read)".into()
        } else {
            m.nodes
                .iter()
                .map(|n| {
                    format!(
                        "{} {}",
                        if n.name.is_empty() { "server" } else { &n.name },
                        n.version
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        },
    ));
    let outage = match (m.outage_seconds, m.outage_estimate_seconds) {
        (Some(s), _) if m.outage_ongoing => format!("{} so far (ongoing)", human_seconds(s)),
        (Some(s), _) => human_seconds(s),
        (None, Some(e)) => format!("estimated {}", human_seconds(e)),
        (None, None) => "none".into(),
    };
    facts.push(("Outage", outage));
    let b = &m.backups;
    let backups = [
        b.database.as_deref().map(|d| {
            format!(
                "database {d}{}",
                if b.database_verified {
                    " (verified)"
                } else {
                    ""
                }
            )
        }),
        b.master_key.as_deref().map(|k| format!("master key {k}")),
        b.license.as_deref().map(|l| format!("license {l}")),
    ];
    let backups: Vec<String> = backups.into_iter().flatten().collect();
    facts.push((
        "Backups",
        if backups.is_empty() {
            "none yet".into()
        } else {
            backups.join("; ")
        },
    ));
    if let Some(e) = &m.error {
        facts.push(("Error", e.clone()));
    }
    if let Some(n) = &m.next_step {
        facts.push(("Next step", n.clone()));
    }
    if let Some(id) = &m.run_id {
        facts.push(("Run", id.clone()));
    }
    facts
}

/// The milestone as data, plus `source` and a `summary` line.
fn generic(m: &Milestone) -> Value {
    let mut value = serde_json::to_value(m).unwrap_or_else(|_| json!({}));
    if let Some(object) = value.as_object_mut() {
        object.insert("source".into(), json!("octoup"));
        object.insert("summary".into(), json!(headline(m)));
    }
    value
}

/// Slack limits a section field to 2000 characters and a header to 150.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// A Slack incoming-webhook message: `text` (the notification and fallback) and Block
/// Kit `blocks` (a header, the headline, the facts as fields).
fn slack(m: &Milestone) -> Value {
    let fields: Vec<Value> = facts(m)
        .into_iter()
        .take(10)
        .map(|(label, value)| json!({"type": "mrkdwn", "text": clip(&format!("*{label}*\n{value}"), 2000)}))
        .collect();
    json!({
        "text": headline(m),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": clip(&format!("octoup: {}", m.event.as_str()), 150)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": clip(&headline(m), 3000)}},
            {"type": "section", "fields": fields},
        ],
    })
}

/// A Teams message with one Adaptive Card (schema 1.4): the shape both the Teams Incoming
/// Webhook and the Workflows "send webhook alerts to a channel" trigger accept.
fn teams(m: &Milestone) -> Value {
    let facts: Vec<Value> = facts(m)
        .into_iter()
        .map(|(title, value)| json!({"title": title, "value": value}))
        .collect();
    let color = match m.event {
        NotifyEvent::Upgraded | NotifyEvent::OutageEnded => "Good",
        NotifyEvent::Failed | NotifyEvent::RolledBack => "Attention",
        NotifyEvent::Paused | NotifyEvent::OutageStarted => "Warning",
        NotifyEvent::PlanReady => "Default",
    };
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": format!("octoup: {}", m.event.as_str()), "weight": "Bolder", "size": "Medium", "color": color, "wrap": true},
                    {"type": "TextBlock", "text": headline(m), "wrap": true},
                    {"type": "FactSet", "facts": facts},
                ],
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::report::{Backups, NodeReport};

    fn milestone(event: NotifyEvent) -> Milestone {
        Milestone {
            event,
            run_id: Some("run-1".into()),
            from: "2024.1.10".into(),
            to: "2024.2.7".into(),
            nodes: vec![NodeReport {
                name: "N1".into(),
                version: "2024.2.7".into(),
                serving: Some("2024.2.7".into()),
            }],
            outage_seconds: Some(12.5),
            outage_ongoing: false,
            outage_estimate_seconds: None,
            backups: Backups {
                database: Some("/b/db.bak".into()),
                database_verified: true,
                master_key: Some("/b/mk".into()),
                license: None,
            },
            next_step: Some("run it again".into()),
            error: None,
            refused: false,
        }
    }

    #[test]
    fn each_format_carries_the_key_fields() {
        let m = milestone(NotifyEvent::Paused);
        let g = payload(NotifyFormat::Generic, &m);
        assert_eq!(g["event"], "paused");
        assert_eq!(g["run_id"], "run-1");
        assert_eq!(g["backups"]["database"], "/b/db.bak");
        assert_eq!(g["next_step"], "run it again");
        let s = payload(NotifyFormat::Slack, &m).to_string();
        let t = payload(NotifyFormat::Teams, &m).to_string();
        for text in [&s, &t] {
            for needle in [
                "2024.1.10 → 2024.2.7",
                "N1 2024.2.7",
                "/b/db.bak (verified)",
                "run it again",
            ] {
                assert!(text.contains(needle), "{needle} in {text}");
            }
        }
    }

    #[test]
    fn slack_limits_are_kept() {
        let mut m = milestone(NotifyEvent::Failed);
        m.error = Some("x".repeat(5000));
        let s = payload(NotifyFormat::Slack, &m);
        for f in s["blocks"][2]["fields"].as_array().unwrap() {
            assert!(f["text"].as_str().unwrap().chars().count() <= 2000);
        }
    }
}
