//! Step-by-step progress of an upgrade on stderr, for people: one line when a step starts,
//! one when it ends. With `--json` nothing is printed (stdout carries only the JSON object)
//! unless `--verbose`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use octoup::engine::Events;
use octoup::engine::catalogue::StepKind;
use octoup::journal::{Step, StepState};
use octoup::process::clock::human_duration;
use octoup::progress::Progress;

use crate::live::Live;
use crate::progress::CliProgress;

pub struct StepPrinter {
    live: Live,
    /// Ask before the outage when a person is at the terminal.
    interactive: bool,
    progress: CliProgress,
}

impl StepPrinter {
    /// `quiet`: nothing on stderr but the prompt (see [`crate::context::Context::quiet`]).
    pub fn new(json: bool, quiet: bool, assume_yes: bool) -> StepPrinter {
        StepPrinter {
            live: Live::new(quiet),
            interactive: !json
                && !assume_yes
                && std::io::stdin().is_terminal()
                && std::io::stderr().is_terminal(),
            progress: CliProgress::for_output(quiet, json),
        }
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
        self.live
            .started(&step.id, StepKind::parse(&step.name), &what(step));
        self.line(&format!("  ..   {}", what(step)));
    }

    fn step_finished(&self, step: &Step) {
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
            .map(|s| format!(" ({})", human_duration(Duration::from_secs_f64(s))))
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
mod tests {
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
