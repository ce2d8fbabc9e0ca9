//! `octoup rehearse`: the target version on a disarmed copy of production, and a go/no-go
//! with the measured durations. The first Ctrl-C stops it and tears down; the second
//! exits at once (the next `octoup rehearse`, or `--cleanup`, tears down then).

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use octoup::process::clock::human_duration;
use octoup::rehearsal::{
    self, Outcome, Phase, Rehearsal, RehearsalEvents, RehearsalStatus, RehearseOptions,
};

use super::upgrade::block_on;
use crate::cli::RehearseArgs;
use crate::context::Context;
use crate::exit::Exit;

/// Prints the phases on stderr as they go.
struct Printer {
    show: bool,
    stop: AtomicBool,
    /// The last percentage shown, so a long statement prints every 20 %, not every 5 %.
    shown: AtomicU32,
}

impl Printer {
    fn line(&self, text: &str) {
        if self.show {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }

    fn interrupted(&self) {
        let mut err = std::io::stderr().lock();
        if self.stop.swap(true, Ordering::SeqCst) {
            let _ = writeln!(
                err,
                "\noctoup: second interrupt: exiting now. The rehearsal's container and network (or rehearsal instance) and its scratch database may be left: `octoup rehearse --cleanup` removes them (the next rehearsal does too)."
            );
            drop(err);
            std::process::exit(Exit::Interrupted as i32);
        }
        let _ = writeln!(
            err,
            "\noctoup: interrupted: stopping the rehearsal and tearing it down (production was not touched). Press Ctrl-C again to exit at once."
        );
    }
}

impl RehearsalEvents for Printer {
    fn phase(&self, name: &str, detail: &str) {
        self.shown.store(0, Ordering::SeqCst);
        self.line(&format!("▸ {name}: {detail}"));
    }
    fn finished(&self, phase: &Phase) {
        self.line(&format!(
            "✓ {} ({}){}",
            phase.name,
            human_duration(Duration::from_secs_f64(phase.seconds)),
            if phase.detail.is_empty() {
                String::new()
            } else {
                format!(": {}", phase.detail)
            }
        ));
    }
    fn note(&self, text: &str) {
        self.line(&format!("  {text}"));
    }
    fn percent(&self, percent: u32) {
        let step = percent / 20 * 20;
        if step
            > self.shown.swap(
                step.max(self.shown.load(Ordering::SeqCst)),
                Ordering::SeqCst,
            )
        {
            self.line(&format!("  {step} %"));
        }
    }
    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

pub fn run(args: RehearseArgs, ctx: &Context) -> Exit {
    let config = match ctx.config() {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    let printer = Arc::new(Printer {
        show: !ctx.quiet(),
        stop: AtomicBool::new(false),
        shown: AtomicU32::new(0),
    });
    let watcher = printer.clone();
    let options = RehearseOptions {
        to: args.to,
        cleanup: args.cleanup,
    };
    let run = async move {
        let interrupts = crate::platform::Interrupts::new().ok().map(|mut i| {
            tokio::spawn(async move {
                loop {
                    i.next().await;
                    watcher.interrupted();
                }
            })
        });
        let result = rehearsal::rehearse(config, &ctx.env, options, printer).await;
        if let Some(task) = interrupts {
            task.abort();
        }
        result
    };
    match block_on(run) {
        Ok(Ok(Outcome::Rehearsed(r))) => {
            ctx.show(&r, || render(&r));
            match r.status {
                RehearsalStatus::Go => Exit::Ok,
                RehearsalStatus::NoGo => Exit::Refused,
                RehearsalStatus::Failed => Exit::Failed,
                RehearsalStatus::Interrupted | RehearsalStatus::Running => Exit::Interrupted,
            }
        }
        Ok(Ok(Outcome::Cleaned { cleaned })) => {
            let value = serde_json::json!({ "cleaned": cleaned });
            ctx.show(&value, || render_cleaned(&cleaned));
            if cleaned.iter().all(|r| r.teardown.done) {
                Exit::Ok
            } else {
                Exit::Failed
            }
        }
        Ok(Err(e)) => {
            ctx.report_error(&e);
            if e.is_locked() {
                Exit::Locked
            } else if e.is_config() {
                Exit::Usage
            } else {
                Exit::Failed
            }
        }
        Err(e) => {
            ctx.report_error(&e);
            Exit::Failed
        }
    }
}

fn render(r: &Rehearsal) -> String {
    let verdict = match r.status {
        RehearsalStatus::Go => "GO",
        RehearsalStatus::NoGo => "NO-GO",
        RehearsalStatus::Failed => {
            "FAILED (the rehearsal could not be carried out; this says nothing about the upgrade)"
        }
        RehearsalStatus::Interrupted | RehearsalStatus::Running => "INTERRUPTED",
    };
    let mut t = format!(
        "\nRehearsal {} on {}: {} → {}, {verdict}\n",
        r.id,
        r.created.strftime("%Y-%m-%d %H:%M UTC"),
        r.from,
        r.target
    );
    let ran = match &r.windows {
        Some(w) => format!(
            "spare node {}, instance {} ({})",
            w.node, w.instance, r.image
        ),
        None => format!(
            "image {}{}",
            r.image,
            r.image_digest
                .as_ref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ),
    };
    t.push_str(&format!(
        "Copy: {} ({}); {ran}\n",
        r.scratch_database,
        if r.copy_method.is_empty() {
            "not made"
        } else {
            &r.copy_method
        },
    ));
    if !r.phases.is_empty() {
        t.push_str("Measured:\n");
        for p in &r.phases {
            t.push_str(&format!(
                "  {:<22} {:>10}  {}\n",
                p.name,
                human_duration(Duration::from_secs_f64(p.seconds)),
                p.detail
            ));
        }
    }
    if let (RehearsalStatus::Failed, Some(e)) = (r.status, &r.error) {
        t.push_str(&format!("Error: {e}\n"));
    }
    if !r.reasons.is_empty() {
        t.push_str("Why no-go:\n");
        for reason in &r.reasons {
            t.push_str(&format!("  - {reason}\n"));
        }
    }
    let others: Vec<_> = r
        .findings
        .iter()
        .filter(|f| !rehearsal::blockers(r).contains(f))
        .collect();
    if !others.is_empty() {
        t.push_str("Also found:\n");
        for f in others {
            t.push_str(&format!("  - {} ({:?}): {}\n", f.id, f.severity, f.found));
        }
    }
    if let Some(excerpt) = &r.log_excerpt {
        t.push_str("The rehearsal server's last lines:\n");
        for line in excerpt.lines() {
            t.push_str(&format!("  | {line}\n"));
        }
    }
    t.push_str(&format!(
        "Teardown: {}\n",
        if r.teardown.done {
            "done"
        } else {
            "INCOMPLETE: run `octoup rehearse --cleanup`"
        }
    ));
    for a in &r.teardown.actions {
        t.push_str(&format!("  - {a}\n"));
    }
    // Exactly what production saw: a backup was read from it, nothing in it changed.
    let untouched = if r.backup.as_ref().is_some_and(|b| b.reused_from.is_none()) {
        "Production's data, nodes and maintenance mode were not changed (its server only took the backup)."
    } else {
        "Production's data, nodes and maintenance mode were not changed."
    };
    let next = match r.status {
        RehearsalStatus::Go => {
            " `octoup plan` now estimates the database upgrade from this rehearsal."
        }
        RehearsalStatus::NoGo => " Fix what is named above before the window, then rehearse again.",
        _ => "",
    };
    t.push_str(&format!("{untouched}{next}\n"));
    t
}

fn render_cleaned(cleaned: &[Rehearsal]) -> String {
    if cleaned.is_empty() {
        return "No rehearsal left anything behind.\n".into();
    }
    let mut t = String::new();
    for r in cleaned {
        t.push_str(&format!(
            "Rehearsal {} ({}): {}\n",
            r.id,
            r.status.as_str(),
            if r.teardown.done {
                "torn down"
            } else {
                "NOT fully torn down"
            }
        ));
        for a in &r.teardown.actions {
            t.push_str(&format!("  - {a}\n"));
        }
    }
    t
}
