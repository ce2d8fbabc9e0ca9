//! Step-by-step progress of an upgrade on stderr, for people: one line when a step starts,
//! one when it ends. With `--json` nothing is printed (stdout carries only the JSON object)
//! unless `--verbose`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use octoup::engine::Events;
use octoup::journal::{Step, StepState};
use octoup::process::clock::human_duration;
use octoup::progress::Progress;

use crate::progress::CliProgress;

pub struct StepPrinter {
    quiet: bool,
    /// Ask before the outage when a person is at the terminal.
    interactive: bool,
    progress: CliProgress,
}

impl StepPrinter {
    /// `quiet`: nothing on stderr but the prompt (see [`crate::context::Context::quiet`]).
    pub fn new(json: bool, quiet: bool, assume_yes: bool) -> StepPrinter {
        StepPrinter {
            quiet,
            interactive: !json
                && !assume_yes
                && std::io::stdin().is_terminal()
                && std::io::stderr().is_terminal(),
            progress: CliProgress::for_output(quiet, json),
        }
    }

    fn line(&self, text: &str) {
        if !self.quiet {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{text}");
        }
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
        self.line(&format!("  ..   {}", what(step)));
    }

    fn step_finished(&self, step: &Step) {
        let mark = match step.state {
            StepState::Done => " ok ",
            StepState::Failed => "FAIL",
            StepState::Undone => "undo",
            StepState::Skipped => "skip",
            StepState::Running | StepState::Planned => " .. ",
        };
        let secs = step
            .seconds()
            .filter(|_| step.state != StepState::Undone)
            .map(|s| format!(" ({})", human_duration(Duration::from_secs_f64(s))))
            .unwrap_or_default();
        let detail = match (&step.error, step.output_str("detail")) {
            (Some(e), _) => format!(": {e}"),
            (None, Some(d)) if step.state != StepState::Undone => format!(" — {d}"),
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

    fn confirm(&self, summary: &str) -> bool {
        if !self.interactive {
            return true;
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{summary}\nContinue? [y/N] ");
        let _ = err.flush();
        drop(err);
        let mut answer = String::new();
        if std::io::stdin().read_line(&mut answer).is_err() {
            return false;
        }
        matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
    }
}
