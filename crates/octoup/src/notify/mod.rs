//! Notifications: `[[notify]]` webhooks told of a run's milestones (plan ready, outage
//! started and ended, and how the run ended), in a generic JSON, Slack or Teams shape.
//!
//! Sending never holds the run up: each webhook has one background task that delivers its
//! messages in order ([`delivery`] retries with backoff inside the webhook's bound). Only
//! at the end, [`Notifier::finish`] waits for what is still outstanding, at most one bound,
//! and turns each failure into a warning of the report and a line of the run log. A
//! webhook URL is a secret: it is redacted in the log and never put in a message.
//!
//! The engine reports milestones through [`Events::milestone`]; [`Notifying`] wraps the
//! caller's [`Events`] and forwards every call.

mod delivery;
pub mod format;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{Config, NotifyConfig, NotifyEvent, Secret};
use crate::engine::confirm::{Answer, Confirmation};
use crate::engine::report::Report;
use crate::engine::{Events, Milestone};
use crate::journal::Step;
use crate::octopus::http::{HttpClient, NetworkSettings};
use crate::process::runner::RunLog;
use crate::progress::Progress;

/// What became of one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub webhook: String,
    pub event: NotifyEvent,
    /// `Err`: why it was not delivered (never the URL).
    pub result: Result<(), String>,
}

struct Hook {
    label: String,
    config: NotifyConfig,
    queue: mpsc::UnboundedSender<Milestone>,
    /// Set when the run ended: earlier milestones not yet sent give way to the ending.
    closing: watch::Sender<bool>,
    worker: JoinHandle<()>,
}

/// The configured webhooks and what was sent to them.
pub struct Notifier {
    hooks: Mutex<Vec<Hook>>,
    secrets: Vec<Secret>,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    /// Found while setting up (a URL inline, a URL that cannot be read).
    warnings: Vec<String>,
}

impl Notifier {
    /// No webhooks.
    pub fn none() -> Notifier {
        Notifier {
            hooks: Mutex::new(Vec::new()),
            secrets: Vec::new(),
            deliveries: Arc::new(Mutex::new(Vec::new())),
            warnings: Vec::new(),
        }
    }

    /// The webhooks of `[[notify]]`; `lookup` reads an environment variable (`url_env`).
    /// A webhook whose URL cannot be had is left out with a warning: a notification never
    /// stops an upgrade. Call it inside the runtime the run uses (it starts the senders).
    pub fn from_config(config: &Config, lookup: &dyn Fn(&str) -> Option<String>) -> Notifier {
        let mut notifier = Notifier::none();
        if config.notify.is_empty() {
            return notifier;
        }
        let http = match HttpClient::new(NetworkSettings::from_config(config)) {
            Ok(http) => http,
            Err(e) => {
                notifier
                    .warnings
                    .push(format!("notifications are off: {e}"));
                return notifier;
            }
        };
        let mut hooks = Vec::new();
        for (i, hook) in config.notify.iter().enumerate() {
            let label = hook.label(i);
            let url = match hook.resolve_url(i, lookup) {
                Ok(url) => url,
                Err(e) => {
                    notifier
                        .warnings
                        .push(format!("webhook {label} gets no notifications: {e}"));
                    continue;
                }
            };
            if hook.url.is_some() {
                notifier.warnings.push(format!(
                    "webhook {label}: its URL is written in the config; a webhook URL is a credential, keep it in url_file (owner-readable) or url_env"
                ));
            }
            let (queue, closing, worker) = spawn_worker(
                http.clone(),
                url.clone(),
                hook,
                label.clone(),
                notifier.deliveries.clone(),
            );
            notifier.secrets.push(url);
            hooks.push(Hook {
                label,
                config: hook.clone(),
                queue,
                closing,
                worker,
            });
        }
        notifier.hooks = Mutex::new(hooks);
        notifier
    }

    /// The webhook URLs, for redaction.
    pub fn secrets(&self) -> &[Secret] {
        &self.secrets
    }

    /// Queues `milestone` for every webhook that wants it; returns at once.
    pub fn send(&self, milestone: &Milestone) {
        for hook in self.hooks.lock().expect("hooks lock").iter() {
            if hook.config.wants(milestone.event) {
                let _ = hook.queue.send(milestone.clone());
            }
        }
    }

    /// The end of the run: an earlier milestone still being sent (or queued) gives way,
    /// how the run ended is sent, each webhook gets at most its bound for it, and every
    /// failure becomes a warning of the report and a line of its run log. Never fails.
    pub async fn finish(&self, report: &mut Report) {
        let hooks = std::mem::take(&mut *self.hooks.lock().expect("hooks lock"));
        let ending = Milestone::of_report(report);
        let ending = ending.as_ref();
        let mut late = Vec::new();
        let waits = hooks.into_iter().map(|hook| async move {
            let _ = hook.closing.send(true);
            if let Some(m) = ending.filter(|m| hook.config.wants(m.event)) {
                let _ = hook.queue.send(m.clone());
            }
            drop(hook.queue);
            // The ending's own delivery is bounded; the margin is for the bookkeeping.
            let bound =
                Duration::from_secs(hook.config.timeout_seconds) + Duration::from_millis(500);
            let mut worker = hook.worker;
            match tokio::time::timeout(bound, &mut worker).await {
                Ok(_) => None,
                Err(_) => {
                    worker.abort();
                    Some(hook.label)
                }
            }
        });
        for label in futures_util::future::join_all(waits)
            .await
            .into_iter()
            .flatten()
        {
            late.push(format!(
                "webhook {label}: how the run ended was not delivered within its timeout_seconds"
            ));
        }
        let deliveries = self.deliveries.lock().expect("deliveries lock").clone();
        let mut warnings = self.warnings.clone();
        warnings.extend(deliveries.iter().filter_map(|d| {
            d.result.as_ref().err().map(|why| {
                format!(
                    "notification {} to webhook {} was not delivered: {why}",
                    d.event.as_str(),
                    d.webhook
                )
            })
        }));
        warnings.extend(late);
        let warnings: Vec<String> = warnings.iter().map(|w| self.scrub(w)).collect();
        if let Some(path) = &report.log
            && let Ok(log) = RunLog::open(path)
        {
            for s in &self.secrets {
                log.redact(s);
            }
            for d in deliveries.iter().filter(|d| d.result.is_ok()) {
                log.note(&format!(
                    "notification {} to webhook {}: delivered",
                    d.event.as_str(),
                    d.webhook
                ));
            }
            for w in &warnings {
                log.note(&format!("warning: {w}"));
            }
        }
        report.warnings.extend(warnings);
    }

    /// What was sent so far, and how it went.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().expect("deliveries lock").clone()
    }

    fn scrub(&self, text: &str) -> String {
        self.secrets
            .iter()
            .fold(text.to_string(), |t, s| t.replace(s.expose(), "***"))
    }
}

/// One webhook's sender: delivers its messages in order, each within the bound.
fn spawn_worker(
    http: HttpClient,
    url: Secret,
    hook: &NotifyConfig,
    label: String,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
) -> (
    mpsc::UnboundedSender<Milestone>,
    watch::Sender<bool>,
    JoinHandle<()>,
) {
    let (queue, mut messages) = mpsc::unbounded_channel::<Milestone>();
    let (closing, mut closed) = watch::channel(false);
    let (format, bound) = (hook.format, Duration::from_secs(hook.timeout_seconds));
    let worker = tokio::spawn(async move {
        while let Some(m) = messages.recv().await {
            let body = format::payload(format, &m);
            let send = delivery::deliver(&http, &url, &body, bound);
            let result = if m.event.is_ending() {
                send.await
            } else if *closed.borrow() {
                Err("the run ended before it was sent".into())
            } else {
                tokio::select! {
                    result = send => result,
                    _ = closed.wait_for(|c| *c) => {
                        Err("still being sent when the run ended; the ending was sent instead".into())
                    }
                }
            };
            deliveries.lock().expect("deliveries lock").push(Delivery {
                webhook: label.clone(),
                event: m.event,
                result,
            });
        }
    });
    (queue, closing, worker)
}

/// The caller's [`Events`], with every milestone also sent to the webhooks.
pub struct Notifying {
    inner: Arc<dyn Events>,
    notifier: Arc<Notifier>,
}

impl Notifying {
    pub fn new(inner: Arc<dyn Events>, notifier: Arc<Notifier>) -> Notifying {
        Notifying { inner, notifier }
    }
}

impl Events for Notifying {
    fn step_started(&self, step: &Step) {
        self.inner.step_started(step)
    }
    fn step_finished(&self, step: &Step) {
        self.inner.step_finished(step)
    }
    fn note(&self, text: &str) {
        self.inner.note(text)
    }
    fn progress(&self) -> &dyn Progress {
        self.inner.progress()
    }
    fn confirm(&self, what: &Confirmation) -> Answer {
        self.inner.confirm(what)
    }
    fn stop_requested(&self) -> bool {
        self.inner.stop_requested()
    }
    fn milestone(&self, milestone: &Milestone) {
        self.inner.milestone(milestone);
        self.notifier.send(milestone);
    }
}
