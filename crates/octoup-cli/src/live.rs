//! Signs of life while an upgrade runs, on stderr: a phase banner (before the outage /
//! OUTAGE started HH:MM:SS / after), every running step's elapsed time against its timeout
//! (a spinner on a terminal, a heartbeat line every few seconds in a log), timestamps on
//! log lines, and colour on a terminal unless NO_COLOR is set.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use console::Style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use octoup::config::Config;
use octoup::engine::catalogue::StepKind;
use octoup::process::clock::human_duration;

/// How often a log (not a terminal) hears about a step that is still running;
/// `OCTOUP_HEARTBEAT_SECONDS` changes it (tests, or a chattier log).
fn heartbeat() -> Duration {
    std::env::var("OCTOUP_HEARTBEAT_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&s: &u64| s > 0)
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(15))
}

/// Where the run stands, for the banner.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    NotStarted,
    Before,
    Outage,
    After,
}

struct Running {
    since: Instant,
    label: String,
    timeout: Option<Duration>,
    last_beat: Instant,
    bar: Option<ProgressBar>,
}

struct State {
    phase: Phase,
    outage_since: Option<Instant>,
    running: BTreeMap<String, Running>,
    /// Per step kind, the timeout that bounds it (from the config).
    timeouts: BTreeMap<StepKind, Duration>,
}

pub struct Live {
    quiet: bool,
    tty: bool,
    colour: bool,
    multi: Option<MultiProgress>,
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The timeout that bounds a step of `kind` (what the operator would raise).
pub fn timeouts(config: &Config) -> BTreeMap<StepKind, Duration> {
    use StepKind::*;
    let t = &config.timeouts;
    let s = Duration::from_secs;
    BTreeMap::from([
        (Drain, s(config.drain.wait_seconds)),
        (Stop, s(t.stop)),
        (RollbackStop, s(t.stop)),
        (BackupDatabase, s(t.backup)),
        (VerifyBackup, s(t.backup)),
        (RollbackRestore, s(t.backup)),
        (Install, s(t.install)),
        (RollbackInstall, s(t.install)),
        (UpgradeDatabase, s(t.db_upgrade)),
        (Start, s(t.start)),
        (RollbackStart, s(t.start)),
    ])
}

impl Live {
    pub fn new(quiet: bool) -> Live {
        let tty = std::io::stderr().is_terminal();
        let colour = tty && std::env::var_os("NO_COLOR").is_none();
        let state = Arc::new(Mutex::new(State {
            phase: Phase::NotStarted,
            outage_since: None,
            running: BTreeMap::new(),
            timeouts: BTreeMap::new(),
        }));
        let multi =
            (tty && !quiet).then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let live = Live {
            quiet,
            tty,
            colour,
            multi,
            state,
        };
        if !quiet {
            live.tick_in_background();
        }
        live
    }

    /// Timeouts to show beside the elapsed time.
    pub fn set_timeouts(&self, timeouts: BTreeMap<StepKind, Duration>) {
        lock(&self.state).timeouts = timeouts;
    }

    fn style(&self, style: Style, text: &str) -> String {
        if self.colour {
            style.apply_to(text).to_string()
        } else {
            text.to_string()
        }
    }

    pub fn ok(&self, text: &str) -> String {
        self.style(Style::new().green(), text)
    }

    pub fn bad(&self, text: &str) -> String {
        self.style(Style::new().red().bold(), text)
    }

    /// One line on stderr: above the spinners on a terminal, with a timestamp in a log.
    pub fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None => {
                let stamp = jiff::Zoned::now().strftime("%H:%M:%S");
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{stamp} {text}");
            }
        }
    }

    fn banner(&self, text: &str) {
        let bar = "──";
        self.line(&self.style(Style::new().yellow().bold(), &format!("{bar} {text} {bar}")));
    }

    /// A step began: the banner when it opens a phase, and a spinner on a terminal.
    pub fn started(&self, id: &str, kind: Option<StepKind>, label: &str) {
        let (phase_change, timeout) = {
            let mut s = lock(&self.state);
            // The backup steps open no outage: with the snapshot strategy they run while
            // Octopus still serves (and with the others, the installs start with them).
            let outage_step = kind.is_some_and(|k| {
                (k.in_outage() && !matches!(k, StepKind::BackupDatabase | StepKind::VerifyBackup))
                    || k == StepKind::RollbackStop
            });
            let change = match (s.phase, outage_step) {
                (Phase::NotStarted, false) => Some(Phase::Before),
                (Phase::NotStarted | Phase::Before, true) => Some(Phase::Outage),
                _ => None,
            };
            if let Some(p) = change {
                s.phase = p;
                if p == Phase::Outage {
                    s.outage_since = Some(Instant::now());
                }
            }
            (change, kind.and_then(|k| s.timeouts.get(&k).copied()))
        };
        match phase_change {
            Some(Phase::Before) => self.banner("before the outage: Octopus keeps serving"),
            Some(Phase::Outage) => self.banner(&format!(
                "OUTAGE started {}: Octopus is unavailable until every node serves again",
                jiff::Zoned::now().strftime("%H:%M:%S")
            )),
            _ => {}
        }
        let bar = self.multi.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        let now = Instant::now();
        lock(&self.state).running.insert(
            id.to_string(),
            Running {
                since: now,
                label: label.to_string(),
                timeout,
                last_beat: now,
                bar,
            },
        );
    }

    /// A step ended: its spinner goes; the banner when the outage ends.
    pub fn finished(&self, id: &str, kind: Option<StepKind>, done: bool) {
        let (bar, outage) = {
            let mut s = lock(&self.state);
            let bar = s.running.remove(id).and_then(|r| r.bar);
            let ends = done
                && matches!(kind, Some(StepKind::Verify | StepKind::RollbackVerify))
                && s.phase == Phase::Outage;
            let outage = if ends {
                s.phase = Phase::After;
                s.outage_since.map(|t| t.elapsed())
            } else {
                None
            };
            (bar, outage)
        };
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        if let Some(took) = outage {
            self.banner(&format!(
                "Octopus serves again {} (outage {}); after the outage",
                jiff::Zoned::now().strftime("%H:%M:%S"),
                human_duration(took)
            ));
        }
    }

    /// Elapsed and timeout, for a spinner's message or a heartbeat line.
    fn describe(r: &Running) -> String {
        format!(
            "{}: {}{}",
            r.label,
            human_duration(r.since.elapsed()),
            r.timeout
                .map(|t| format!(" of up to {}", human_duration(t)))
                .unwrap_or_default()
        )
    }

    /// Once a second: spinners show the elapsed time; a log gets a heartbeat line per step
    /// every [`heartbeat`].
    fn tick_in_background(&self) {
        let state = Arc::downgrade(&self.state);
        let tty = self.tty;
        let every = heartbeat();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let Some(state) = state.upgrade() else { return };
                let mut beats = Vec::new();
                {
                    let mut s = lock(&state);
                    for r in s.running.values_mut() {
                        if let Some(bar) = &r.bar {
                            bar.set_message(Live::describe(r));
                        } else if !tty && r.last_beat.elapsed() >= every {
                            r.last_beat = Instant::now();
                            beats.push(format!("  ..   still running: {}", Live::describe(r)));
                        }
                    }
                }
                for b in beats {
                    let stamp = jiff::Zoned::now().strftime("%H:%M:%S");
                    let _ = writeln!(std::io::stderr().lock(), "{stamp} {b}");
                }
            }
        });
    }
}
