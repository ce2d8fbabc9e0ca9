//! Step-by-step progress of an upgrade on stderr, for people: one line when a step starts,
//! one when it ends. With `--json` nothing is printed (stdout carries only the JSON object)
//! unless `--verbose`. Also the confirmation prompt, and what a Ctrl-C does (see
//! [`StepPrinter::interrupted`]).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use octoup::engine::Events;
use octoup::engine::catalogue::StepKind;
use octoup::engine::confirm::{Action, Answer, Confirmation};
use octoup::journal::{Step, StepState};
use octoup::process::clock::human_seconds;
use octoup::progress::Progress;

use crate::live::Live;
use crate::progress::CliProgress;

pub struct StepPrinter {
    live: Live,
    /// `--yes`: go ahead without asking.
    assume_yes: bool,
    /// A person can be asked: standard input is a terminal.
    interactive: bool,
    progress: CliProgress,
    /// The answer given, for the exit status.
    answer: Mutex<Option<Answer>>,
    /// The prompt is waiting for an answer.
    asking: AtomicBool,
    /// A stop was asked for (the first Ctrl-C): the engine stops at its next safe point.
    stop: AtomicBool,
    /// The steps running now, for the interrupt message.
    running: Mutex<Vec<String>>,
}

impl StepPrinter {
    /// `quiet`: nothing on stderr but the prompt and interrupt messages (see
    /// [`crate::context::Context::quiet`]).
    pub fn new(json: bool, quiet: bool, assume_yes: bool) -> StepPrinter {
        StepPrinter {
            live: Live::new(quiet),
            assume_yes,
            interactive: std::io::stdin().is_terminal(),
            progress: CliProgress::for_output(quiet, json),
            answer: Mutex::new(None),
            asking: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            running: Mutex::new(Vec::new()),
        }
    }

    /// How the confirmation was answered (`None`: never asked).
    pub fn answer(&self) -> Option<Answer> {
        *self.answer.lock().expect("answer lock")
    }

    /// An interrupt (Ctrl-C, SIGTERM). At the prompt nothing has changed: octoup exits with
    /// 7. The first one otherwise asks the engine to stop at its next safe point; the
    /// second exits at once with 130 (the journal is always consistent, the children run
    /// on in their own process groups).
    pub fn interrupted(&self) {
        let mut err = std::io::stderr().lock();
        if self.asking.load(Ordering::SeqCst) {
            let _ = writeln!(
                err,
                "\noctoup: interrupted at the prompt: nothing was changed."
            );
            drop(err);
            std::process::exit(i32::from(crate::exit::Exit::Declined as u8));
        }
        if self.stop.swap(true, Ordering::SeqCst) {
            let _ = writeln!(
                err,
                "\noctoup: second interrupt: exiting now. The journal is consistent; the commands octoup started keep running. `octoup status` shows the run; `octoup upgrade` continues it (and waits for what still runs)."
            );
            drop(err);
            std::process::exit(crate::exit::Exit::Interrupted as i32);
        }
        let running = self.running.lock().expect("running lock").clone();
        let _ = writeln!(
            err,
            "\noctoup: interrupted. Running now: {}. octoup stops at the next safe point: the running step finishes and is journaled, then the run pauses and prints the state and the next command (`octoup upgrade` continues, `octoup rollback` goes back). Press Ctrl-C again to exit at once (the running commands go on).",
            if running.is_empty() {
                "no step (between steps)".to_string()
            } else {
                running.join(", ")
            }
        );
    }

    /// Shows each step's elapsed time against the timeout the config gives it.
    pub fn with_config(self, config: &octoup::config::Config) -> StepPrinter {
        self.live.set_timeouts(crate::live::timeouts(config));
        self
    }

    fn line(&self, text: &str) {
        self.live.line(text);
    }
}

fn what(step: &Step) -> String {
    match &step.node {
        Some(n) => format!("{} {n}", step.name),
        None => step.name.clone(),
    }
}

impl Events for StepPrinter {
    fn step_started(&self, step: &Step) {
        self.running.lock().expect("running lock").push(what(step));
        self.live
            .started(&step.id, StepKind::parse(&step.name), &what(step));
        self.line(&format!("  ..   {}", what(step)));
    }

    fn step_finished(&self, step: &Step) {
        let name = what(step);
        self.running
            .lock()
            .expect("running lock")
            .retain(|s| *s != name);
        self.live.finished(
            &step.id,
            StepKind::parse(&step.name),
            step.state == StepState::Done,
        );
        let mark = match step.state {
            StepState::Done => self.live.ok(" ok "),
            StepState::Failed => self.live.bad("FAIL"),
            StepState::Undone => "undo".to_string(),
            StepState::Skipped => "skip".to_string(),
            StepState::Running | StepState::Planned => " .. ".to_string(),
        };
        let secs = step
            .seconds()
            .filter(|_| step.state != StepState::Undone)
            .map(|s| format!(" ({})", human_seconds(s)))
            .unwrap_or_default();
        let detail = match (&step.error, step.output_str("detail")) {
            (Some(e), _) => format!(": {e}"),
            (None, Some(d)) if step.state != StepState::Undone => format!(" — {}", shorten(d)),
            _ if step.state == StepState::Undone => " — put back".to_string(),
            _ => String::new(),
        };
        self.line(&format!("  {mark} {}{secs}{detail}", what(step)));
    }

    fn note(&self, text: &str) {
        self.line(&format!("  note {text}"));
    }

    fn progress(&self) -> &dyn Progress {
        &self.progress
    }

    fn confirm(&self, what: &Confirmation) -> Answer {
        let answer = self.ask(what);
        *self.answer.lock().expect("answer lock") = Some(answer);
        answer
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

impl StepPrinter {
    fn ask(&self, what: &Confirmation) -> Answer {
        if self.assume_yes {
            return Answer::Yes;
        }
        if !self.interactive || self.stop.load(Ordering::SeqCst) {
            return if self.interactive {
                Answer::Declined
            } else {
                Answer::NeedsTerminal
            };
        }
        self.asking.store(true, Ordering::SeqCst);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{}Continue? [y/N] ", confirmation_text(what));
        let _ = err.flush();
        drop(err);
        let mut answer = String::new();
        let read = std::io::stdin().read_line(&mut answer);
        self.asking.store(false, Ordering::SeqCst);
        match read {
            Ok(_) if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") => Answer::Yes,
            _ => Answer::Declined,
        }
    }
}

/// The prompt's text: what will happen, the outage, and for a rollback what it discards.
pub(crate) fn confirmation_text(c: &Confirmation) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let nodes = c.nodes.join(", ");
    let run = c.run.as_deref().unwrap_or("");
    match c.action {
        Action::Upgrade => {
            let _ = writeln!(
                out,
                "octoup will upgrade Octopus {} → {} on {nodes}.",
                c.from, c.to
            );
            if let Some(wait) = c.drain_wait_seconds {
                let _ = writeln!(
                    out,
                    "First maintenance mode goes on and every node is drained: running tasks get up to {} to finish ([drain] wait_seconds).",
                    human_seconds(wait as f64)
                );
            }
            let _ = writeln!(
                out,
                "Then the outage: Octopus is unavailable from the first service stop until every node serves {}{}. `octoup plan` shows the steps and estimates.",
                c.to,
                c.outage_estimate_seconds
                    .map(|s| format!(", an estimated {}", human_seconds(s)))
                    .unwrap_or_default()
            );
        }
        Action::Resume => {
            let _ = writeln!(
                out,
                "octoup will continue run {run} ({} → {}) on {nodes}{}.",
                c.from,
                c.to,
                c.continues_at
                    .as_deref()
                    .map(|s| format!(", from step {s}"))
                    .unwrap_or_default()
            );
            let _ = writeln!(
                out,
                "{}",
                if c.outage_ongoing {
                    format!(
                        "The outage is ongoing: Octopus is unavailable until every node serves {}.",
                        c.to
                    )
                } else {
                    "The outage has not begun: maintenance mode and the drain come first if they are not done yet.".to_string()
                }
            );
        }
        Action::Rollback => {
            let _ = writeln!(
                out,
                "octoup will roll back run {run}: every node ({nodes}) goes back to {}.",
                c.from
            );
            match &c.restore {
                None => {
                    let _ = writeln!(
                        out,
                        "The database upgrade never started: the database is not restored."
                    );
                }
                Some(r) => {
                    let _ = writeln!(
                        out,
                        "The database is restored from {}: everything done in Octopus since that backup is discarded.",
                        r.backup
                            .as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| "the run's backup".into())
                    );
                    if r.served.is_empty() {
                        let _ = writeln!(out, "  No node has served {} yet.", c.to);
                    }
                    for s in &r.served {
                        let _ =
                            writeln!(out, "  {} has served {} since {}.", s.node, c.to, s.since);
                    }
                    let _ = writeln!(
                        out,
                        "  {}",
                        match r.maintenance_off_since {
                            Some(t) => format!(
                                "Maintenance mode has been off since {t}: what users did since then is lost."
                            ),
                            None => "Maintenance mode stayed on meanwhile: no one could change anything.".to_string(),
                        }
                    );
                }
            }
        }
    }
    out
}

/// Cache paths carry a 64-hex digest per entry; on a progress line its first 8 characters
/// say enough (the report and the journal keep the whole path).
fn shorten(text: &str) -> String {
    text.split_inclusive(['/', '\\'])
        .map(|part| {
            let (name, sep) = match part.strip_suffix(['/', '\\']) {
                Some(name) => (name, &part[name.len()..]),
                None => (part, ""),
            };
            if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                format!("{}…{sep}", &name[..8])
            } else {
                part.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod shorten_tests {
    #[test]
    fn cache_digests_are_shortened_on_progress_lines() {
        let digest = "44212d3fccd310bc86de79ea13c0f4ad54cfdfcd115d13c78b09823d99085910";
        let path = format!("/state/cache/2024.3.13050/{digest}/Octopus.2024.3.13050-x64.msi (x)");
        assert_eq!(
            super::shorten(&path),
            "/state/cache/2024.3.13050/44212d3f…/Octopus.2024.3.13050-x64.msi (x)"
        );
        assert_eq!(super::shorten("turned on"), "turned on");
    }
}
