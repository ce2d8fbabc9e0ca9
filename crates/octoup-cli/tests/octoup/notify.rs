//! `[[notify]]` webhooks against a local HTTP receiver: each milestone's payload in the
//! generic format (fully) and the Slack and Teams shapes, a paused run's message with its
//! next step, receivers that refuse or hang (the run succeeds, within the bound, with a
//! warning), and the webhook URL nowhere in the output, the run log, the journal or the
//! upgrade record.

use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Json, State};
use axum::http::Uri;
use axum::routing::post;
use serde_json::Value;

use octoup_testkit::*;

const FROM: &str = "2024.1.10";
const TARGET: &str = "2024.3.13050";
/// The credential part of every webhook URL here: it must never be shown.
const TOKEN: &str = "T0KEN-8f3a9c1d7e";

type Got = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook receiver on loopback: records every POST (path, JSON body) and answers 200,
/// or never answers (`hang`).
struct Receiver {
    base: String,
    got: Got,
}

impl Receiver {
    fn start(hang: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let got: Got = Arc::default();
        let state = (got.clone(), hang);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let app = Router::new().fallback(post(record)).with_state(state);
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        Receiver { base, got }
    }

    /// The URL of one webhook; its path carries the secret token.
    fn url(&self, name: &str) -> String {
        format!("{}/hooks/{TOKEN}/{name}", self.base)
    }

    /// The bodies posted to webhook `name`, in order.
    fn bodies(&self, name: &str) -> Vec<Value> {
        let suffix = format!("/{name}");
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(path, _)| path.ends_with(&suffix))
            .map(|(_, body)| body.clone())
            .collect()
    }
}

async fn record(State((got, hang)): State<(Got, bool)>, uri: Uri, Json(body): Json<Value>) {
    if hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    got.lock().unwrap().push((uri.path().to_string(), body));
}

/// Adds `[[notify]]` tables to the simulator's config.
fn add_webhooks(sim: &Sim, hooks: Vec<toml::Table>) {
    sim.edit_config(|cfg| {
        cfg.insert(
            "notify".into(),
            toml::Value::Array(hooks.into_iter().map(toml::Value::Table).collect()),
        );
    });
}

fn hook(pairs: &[(&str, toml::Value)]) -> toml::Table {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn events(bodies: &[Value]) -> Vec<&str> {
    bodies
        .iter()
        .map(|b| b["event"].as_str().unwrap_or("?"))
        .collect()
}

/// Fails if the secret token is in `text`.
#[track_caller]
fn assert_no_token(what: &str, text: &str) {
    assert!(
        !text.contains(TOKEN),
        "the webhook URL is in {what}:\n{text}"
    );
}

/// Every place octoup writes to: stdout, stderr, the run log, the journal, the record.
#[track_caller]
fn assert_url_nowhere(sim: &Sim, r: &Ran) {
    assert_no_token("stdout", &r.stdout);
    assert_no_token("stderr", &r.stderr);
    for key in ["log", "journal"] {
        let path = r.json[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: {}", r.stdout));
        assert_no_token(key, &std::fs::read_to_string(path).unwrap());
    }
    let record = record_of(sim, r);
    assert_no_token("the upgrade record", &record.to_string());
}

/// The upgrade record of the run `r` reported.
fn record_of(sim: &Sim, r: &Ran) -> Value {
    let config = sim.read_config();
    let state = config["state"]["dir"].as_str().unwrap();
    let id = r.json["run_id"].as_str().unwrap();
    let path = Path::new(state).join("records").join(format!("{id}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the record is owner-only: {mode:o}");
    }
    serde_json::from_str(&text).unwrap()
}

#[test]
fn an_upgrade_tells_every_milestone_in_each_format() {
    let receiver = Receiver::start(false);
    let sim = Scenario::new().start();
    let url_file = sim.dir().join("generic-webhook.url");
    std::fs::write(&url_file, format!("{}\n", receiver.url("generic"))).unwrap();
    add_webhooks(
        &sim,
        vec![
            hook(&[
                ("name", "ops-json".into()),
                ("url_file", url_file.to_str().unwrap().into()),
            ]),
            hook(&[
                ("format", "slack".into()),
                ("url_env", "OCTOUP_TEST_SLACK_URL".into()),
            ]),
            hook(&[
                ("format", "teams".into()),
                ("url", receiver.url("teams").into()),
                (
                    "events",
                    toml::Value::Array(vec!["outage-ended".into(), "upgraded".into()]),
                ),
            ]),
        ],
    );
    let r = Ran::of(
        sim.octoup_cmd(&["upgrade", "--json"])
            .env("OCTOUP_TEST_SLACK_URL", receiver.url("slack")),
    );
    r.expect_code(0);
    assert_eq!(r.outcome(), "upgraded");
    sim.assert_check();

    // generic: every milestone, in order, with the report's key fields.
    let generic = receiver.bodies("generic");
    assert_eq!(
        events(&generic),
        ["plan-ready", "outage-started", "outage-ended", "upgraded"],
        "{generic:#?}"
    );
    let run_id = r.json["run_id"].as_str().unwrap();
    for body in &generic {
        assert_eq!(body["source"], "octoup");
        assert_eq!(body["run_id"], run_id);
        assert_eq!(body["from"], FROM);
        assert_eq!(body["to"], TARGET);
        assert_eq!(body["nodes"][0]["name"], "OCTO-NODE-01", "{body}");
        assert!(
            body["summary"]
                .as_str()
                .unwrap()
                .contains(&format!("{FROM} → {TARGET}"))
        );
    }
    let [plan, started, ended, upgraded] = &generic[..] else {
        unreachable!()
    };
    assert!(
        plan["outage_estimate_seconds"].as_f64().unwrap() > 0.0,
        "{plan}"
    );
    assert_eq!(plan["nodes"][0]["version"], FROM);
    assert_eq!(started["outage_ongoing"], true);
    assert_eq!(started["nodes"][0]["version"], FROM);
    assert!(
        started["backups"]["master_key"].is_string(),
        "the master key is backed up before the outage: {started}"
    );
    assert_eq!(ended["outage_ongoing"], false);
    assert_eq!(ended["nodes"][0]["version"], TARGET);
    let reported = r.json["outage_seconds"].as_f64().unwrap();
    let told = ended["outage_seconds"].as_f64().unwrap();
    assert!(
        reported > 0.0 && (told - reported).abs() < 0.01,
        "{told} vs {reported}"
    );
    assert_eq!(upgraded["outage_seconds"], r.json["outage_seconds"]);
    assert_eq!(upgraded["nodes"], r.json["nodes"]);
    assert_eq!(upgraded["backups"], r.json["backups"]);
    assert!(upgraded["backups"]["database"].is_string(), "{upgraded}");
    assert_eq!(upgraded["error"], Value::Null);
    assert_eq!(upgraded["refused"], false);

    // slack: text plus blocks (header, headline, fields), for every milestone.
    let slack = receiver.bodies("slack");
    assert_eq!(slack.len(), 4, "{slack:#?}");
    for body in &slack {
        assert!(
            body["text"]
                .as_str()
                .unwrap()
                .contains(&format!("{FROM} → {TARGET}"))
        );
        assert_eq!(body["blocks"][0]["type"], "header");
        assert_eq!(body["blocks"][1]["text"]["type"], "mrkdwn");
        let fields = body["blocks"][2]["fields"].as_array().unwrap();
        assert!(
            fields
                .iter()
                .any(|f| f["text"].as_str().unwrap().starts_with("*Backups*"))
        );
    }
    assert!(
        slack[3]["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("upgraded")
    );

    // teams: only the events asked for, as an Adaptive Card message.
    let teams = receiver.bodies("teams");
    assert_eq!(teams.len(), 2, "{teams:#?}");
    for body in &teams {
        assert_eq!(body["type"], "message");
        let attachment = &body["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(attachment["content"]["type"], "AdaptiveCard");
        let facts = attachment["content"]["body"][2]["facts"]
            .as_array()
            .unwrap();
        assert!(facts.iter().any(|f| f["title"] == "Outage"), "{body}");
    }
    assert!(
        teams[1]["attachments"][0]["content"]["body"][0]["text"]
            .as_str()
            .unwrap()
            .ends_with("upgraded")
    );

    // The inline URL is allowed with a warning; the URL itself is shown nowhere.
    let warnings = r.json["warnings"].to_string();
    assert!(warnings.contains("written in the config"), "{warnings}");
    assert_url_nowhere(&sim, &r);
    let log = std::fs::read_to_string(r.json["log"].as_str().unwrap()).unwrap();
    assert!(
        log.contains("notification upgraded to webhook ops-json: delivered"),
        "{log}"
    );

    // The upgrade record is the report, and `status --all` names it.
    let record = record_of(&sim, &r);
    assert_eq!(record, r.json);
    let all = sim.octoup(&["status", "--all", "--json"]);
    let listed = all.json["runs"][0]["record"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", all.stdout));
    assert!(
        Path::new(listed).ends_with(Path::new("records").join(format!("{run_id}.json"))),
        "{listed}"
    );
}

#[test]
fn a_paused_run_tells_the_next_step() {
    let receiver = Receiver::start(false);
    let sim = Scenario::new().fault("db-upgrade", "exit:1").start();
    add_webhooks(&sim, vec![hook(&[("url", receiver.url("generic").into())])]);
    let r = sim.octoup(&["upgrade", "--json"]);
    r.expect_code(4);
    assert_eq!(r.outcome(), "paused");
    let bodies = receiver.bodies("generic");
    assert_eq!(
        events(&bodies),
        ["plan-ready", "outage-started", "paused"],
        "{bodies:#?}"
    );
    let paused = &bodies[2];
    assert_eq!(paused["next_step"], r.json["next_step"]);
    assert!(
        paused["next_step"]
            .as_str()
            .unwrap()
            .contains("octoup upgrade")
    );
    assert!(
        paused["error"]
            .as_str()
            .unwrap()
            .contains("upgrade-database"),
        "{paused}"
    );
    assert_eq!(paused["outage_ongoing"], true);
    assert_eq!(paused["backups"], r.json["backups"]);
    assert_url_nowhere(&sim, &r);

    // The fault was once: a re-run continues the run and tells how it ended.
    let again = sim.octoup(&["upgrade", "--json"]);
    again.expect_code(0);
    assert_eq!(again.json["run_id"], r.json["run_id"]);
    let bodies = receiver.bodies("generic");
    assert_eq!(
        events(&bodies[3..]),
        ["outage-ended", "upgraded"],
        "a resumed run has no new plan and no second outage start: {bodies:#?}"
    );
    assert_eq!(bodies[4]["outage_seconds"], again.json["outage_seconds"]);
    sim.assert_check();
}

#[test]
fn dead_receivers_do_not_hurt_the_run_and_are_bounded() {
    // A port nobody listens on: connection refused.
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        format!("http://127.0.0.1:{port}/hooks/{TOKEN}/refused")
    };
    let hanging = Receiver::start(true);
    let sim = Scenario::new().start();
    add_webhooks(
        &sim,
        vec![
            hook(&[
                ("name", "refuser".into()),
                ("url", refused.into()),
                ("timeout_seconds", 1.into()),
            ]),
            hook(&[
                ("name", "hanger".into()),
                ("url", hanging.url("hang").into()),
                ("timeout_seconds", 1.into()),
            ]),
        ],
    );
    let began = Instant::now();
    let r = sim.octoup(&["upgrade", "--json"]);
    let took = began.elapsed();
    r.expect_code(0);
    assert_eq!(r.outcome(), "upgraded");
    assert!(r.all_nodes_on(TARGET), "{}", r.stdout);
    sim.assert_check();
    let warnings: Vec<&str> = r.json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for name in ["refuser", "hanger"] {
        assert!(
            warnings.iter().any(|w| w.starts_with(&format!(
                "notification upgraded to webhook {name} was not delivered"
            ))),
            "{name}: {warnings:#?}"
        );
    }
    assert!(
        warnings.iter().any(
            |w| w.contains("refuser was not delivered: gave up after 1 s and")
                && w.contains("the last one: no answer")
        ),
        "{warnings:#?}"
    );
    assert!(
        warnings
            .iter()
            // The request's own timeout and the bound are equal: either may fire first.
            .any(|w| w.contains("hanger was not delivered: ")
                && (w.contains("no answer in time") || w.contains("no answer within 1 s"))),
        "{warnings:#?}"
    );
    // Sends happen in the background: a receiver that never answers does not lengthen
    // the outage by its bound (1 s per message), and the end waits one bound at most.
    assert!(
        r.json["outage_seconds"].as_f64().unwrap() < 1.0,
        "outage {}",
        r.json["outage_seconds"]
    );
    assert!(took < Duration::from_secs(30), "the run took {took:?}");
    let log = std::fs::read_to_string(r.json["log"].as_str().unwrap()).unwrap();
    assert!(log.contains("warning: notification"), "{log}");
    assert_url_nowhere(&sim, &r);
}
