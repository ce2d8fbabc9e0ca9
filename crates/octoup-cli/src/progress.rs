//! How the CLI shows [`octoup::progress::Progress`]: a bar with rate and ETA on a terminal,
//! a plain line every few seconds in a log, nothing at all in JSON mode (stdout carries only
//! the JSON object; stderr stays quiet unless `--verbose`). Everything goes to stderr.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use octoup::progress::Progress;

/// How often the plain-line mode prints while bytes keep coming.
const LINE_INTERVAL: Duration = Duration::from_secs(10);

pub struct CliProgress {
    mode: Mode,
}

enum Mode {
    Quiet,
    Bar(Mutex<Option<ProgressBar>>),
    Lines(Mutex<Lines>),
}

#[derive(Default)]
struct Lines {
    label: String,
    total: Option<u64>,
    done: u64,
    /// Where this (re)start began, for the rate.
    start_done: u64,
    started: Option<Instant>,
    last_print: Option<Instant>,
}

impl CliProgress {
    /// The right mode for this run: quiet for `--json` (unless verbose), a bar when stderr
    /// is a terminal, lines otherwise.
    pub fn for_output(quiet: bool, json: bool) -> CliProgress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() && !json {
            Mode::Bar(Mutex::new(None))
        } else {
            Mode::Lines(Mutex::new(Lines::default()))
        };
        CliProgress { mode }
    }
}

fn bar_style(known_total: bool) -> ProgressStyle {
    let template = if known_total {
        "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}"
    } else {
        "{spinner} {msg} {binary_bytes} {binary_bytes_per_sec}"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Progress for CliProgress {
    fn start(&self, label: &str, total: Option<u64>, done: u64) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bar(slot) => {
                let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
                bar.set_style(bar_style(total.is_some()));
                bar.set_message(label.to_string());
                bar.set_position(done);
                bar.reset_eta();
                if let Some(old) = lock(slot).replace(bar) {
                    old.finish_and_clear();
                }
            }
            Mode::Lines(state) => {
                let mut s = lock(state);
                let now = Instant::now();
                *s = Lines {
                    label: label.to_string(),
                    total,
                    done,
                    start_done: done,
                    started: Some(now),
                    last_print: Some(now),
                };
                let from = if done > 0 {
                    format!(", resuming at {}", bytes(done))
                } else {
                    String::new()
                };
                let size = total.map_or("size unknown".into(), bytes);
                line(&format!("{label}: downloading ({size}{from})"));
            }
        }
    }

    fn advance(&self, n: u64) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bar(slot) => {
                if let Some(bar) = lock(slot).as_ref() {
                    bar.inc(n);
                }
            }
            Mode::Lines(state) => {
                let mut s = lock(state);
                s.done += n;
                let due = s.last_print.is_none_or(|t| t.elapsed() >= LINE_INTERVAL);
                if due {
                    s.last_print = Some(Instant::now());
                    line(&s.describe());
                }
            }
        }
    }

    fn finish(&self, message: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bar(slot) => match lock(slot).take() {
                Some(bar) => {
                    bar.finish_and_clear();
                    line(message);
                }
                None => line(message),
            },
            Mode::Lines(state) => {
                *lock(state) = Lines::default();
                line(message);
            }
        }
    }

    fn message(&self, message: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bar(slot) => match lock(slot).as_ref() {
                Some(bar) => bar.println(message),
                None => line(message),
            },
            Mode::Lines(_) => line(message),
        }
    }
}

impl Lines {
    fn describe(&self) -> String {
        self.describe_at(Instant::now())
    }

    /// The line as of `now` (a parameter, so the wording is testable without timing).
    fn describe_at(&self, now: Instant) -> String {
        let elapsed = self
            .started
            .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        let rate = if elapsed > 0.0 {
            (self.done - self.start_done) as f64 / elapsed
        } else {
            0.0
        };
        let mut text = format!("{}: {}", self.label, bytes(self.done));
        if let Some(total) = self.total.filter(|t| *t > 0) {
            text += &format!(
                " of {} ({:.0}%)",
                bytes(total),
                self.done as f64 * 100.0 / total as f64
            );
            if rate > 0.0 {
                let eta = total.saturating_sub(self.done) as f64 / rate;
                text += &format!(", ETA {}", seconds(eta));
            }
        }
        text + &format!(", {}/s", bytes(rate as u64))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn line(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Bytes in binary units, one decimal.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn seconds(s: f64) -> String {
    let s = s.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(1_430_000_000), "1.3 GiB");
        assert_eq!(seconds(59.4), "59s");
        assert_eq!(seconds(125.0), "2m05s");
        assert_eq!(seconds(7260.0), "2h01m");
    }

    #[test]
    fn lines_describe_progress_rate_and_eta() {
        let now = Instant::now();
        let l = Lines {
            label: "Octopus 2024.2.7 installer".into(),
            total: Some(1000),
            done: 250,
            start_done: 0,
            started: Some(now - Duration::from_secs(5)),
            last_print: None,
        };
        let text = l.describe_at(now);
        assert!(
            text.starts_with("Octopus 2024.2.7 installer: 250 B of 1000 B (25%)"),
            "{text}"
        );
        assert!(text.contains("ETA 15s"), "{text}");
        assert!(text.ends_with("50 B/s"), "{text}");
    }
}
