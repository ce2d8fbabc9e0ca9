//! Model-based fault schedules: `proptest` generates a cluster (1–5 nodes, their watchdogs
//! and drain flags, maintenance mode, automatic rollback or not) and a schedule of faults —
//! any operation on any node fails, hangs past its timeout, or octoup dies before or after
//! it, several times over, so the crashes land in the forward run, the undo, a rollback and
//! the resumed runs alike. [`drive`] then acts as an operator would: on a crash it runs
//! `octoup upgrade` again; on `paused` it resumes or rolls back (the schedule says which);
//! until a terminal outcome, at most [`ATTEMPTS`] times, after which the operator fixes the
//! cause (every fault is cleared) and one more `octoup upgrade` must finish.
//!
//! Checked on the fake's history: I1–I3 whatever happened, I6 and the watchdogs at the
//! end, and I4: every node serves the target on the target schema, or every node serves
//! the original on the original schema, and every `paused` report named the next step.
//!
//! `PROPTEST_CASES` (default [`DEFAULT_CASES`]) sets the number of schedules,
//! `PROPTEST_RNG_SEED` fixes the seed; a failure is shrunk to a minimal schedule, which
//! belongs in [`regressions`] as a test of its own once fixed.

use std::fmt::Write as _;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError};

use super::*;

/// Schedules per `cargo test` run (see docs/recovery.md for the time it takes).
const DEFAULT_CASES: u32 = 2000;

/// Runs of octoup (the first one included) before the operator fixes the cause.
const ATTEMPTS: usize = 8;

#[derive(Debug, Clone)]
struct Strike {
    op: Op,
    /// The node it strikes (an index); `None`: the first call on any node.
    node: Option<usize>,
    fault: Fault,
}

#[derive(Debug, Clone)]
struct Schedule {
    nodes: usize,
    watchdogs: Vec<bool>,
    drained: Vec<bool>,
    maintenance: bool,
    automatic_rollback: bool,
    strikes: Vec<Strike>,
    /// What the operator does with each `paused` report in turn: roll back (`true`) or
    /// resume; resume once these run out.
    rollback_on_pause: Vec<bool>,
}

/// Operations done once for the whole cluster (a node makes no difference).
fn cluster_wide(op: Op) -> bool {
    matches!(
        op,
        Op::Stage | Op::License | Op::Maintenance(_) | Op::Backup | Op::Verify | Op::Restore
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Stage),
        Just(Op::MasterKey),
        Just(Op::License),
        Just(Op::Maintenance(true)),
        Just(Op::Maintenance(false)),
        Just(Op::Drain(true)),
        Just(Op::Drain(false)),
        Just(Op::DeleteWatchdog),
        Just(Op::CreateWatchdog),
        Just(Op::Stop),
        Just(Op::Start),
        Just(Op::Backup),
        Just(Op::Verify),
        Just(Op::Install),
        Just(Op::Uninstall),
        Just(Op::UpgradeDatabase),
        Just(Op::Restore),
        Just(Op::ServedVersion),
    ]
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        3 => Just(Fault::CrashBefore),
        3 => Just(Fault::CrashAfter),
        2 => Just(Fault::CrashLaunched),
        2 => Just(Fault::FailOnce),
        2 => Just(Fault::Hang),
        2 => Just(Fault::HangAfterDoing),
        1 => Just(Fault::FailAlways),
    ]
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (1usize..=5).prop_flat_map(|nodes| {
        let strike = (op(), proptest::option::weighted(0.8, 0..nodes), fault()).prop_map(
            |(op, node, fault)| Strike {
                op,
                node: if cluster_wide(op) { None } else { node },
                fault,
            },
        );
        (
            proptest::collection::vec(any::<bool>(), nodes),
            proptest::collection::vec(proptest::bool::weighted(0.2), nodes),
            proptest::bool::weighted(0.2),
            proptest::bool::weighted(0.2),
            proptest::collection::vec(strike, 0..=5),
            proptest::collection::vec(any::<bool>(), 0..ATTEMPTS),
        )
            .prop_map(
                move |(
                    watchdogs,
                    drained,
                    maintenance,
                    automatic_rollback,
                    strikes,
                    rollback_on_pause,
                )| Schedule {
                    nodes,
                    watchdogs,
                    drained,
                    maintenance,
                    automatic_rollback,
                    strikes,
                    rollback_on_pause,
                },
            )
    })
}

fn name(i: usize) -> String {
    format!("N{}", i + 1)
}

fn scenario(s: &Schedule) -> Scenario {
    let mut sc = Scenario::nodes(s.nodes).config(|c| c.rollback.automatic = s.automatic_rollback);
    for i in 0..s.nodes {
        if s.watchdogs[i] {
            sc = sc.watchdog(&name(i));
        }
        let drained = s.drained[i];
        sc = sc.with(|m| m.node_mut(&name(i)).drained = drained);
    }
    let maintenance = s.maintenance;
    sc = sc.with(|m| m.maintenance = maintenance);
    for st in &s.strikes {
        let node = st.node.map(name);
        sc = sc.fault(st.op, node.as_deref(), st.fault);
    }
    sc
}

/// How a run of octoup ended, for the trace.
fn ended(ran: &Ran) -> String {
    match &ran.report {
        None => "crashed".into(),
        Some(r) => format!(
            "{:?} (error: {:?}, next: {:?})",
            r.outcome, r.error, r.next_step
        ),
    }
}

/// Drives the schedule to its end as an operator would, then checks I1–I4 and I6; the
/// trace of the runs (one line each) when they hold.
async fn drive(s: &Schedule) -> Result<String, String> {
    let mut trace = String::new();
    let mut ran = scenario(s).run().await;
    let _ = writeln!(trace, "upgrade: {}", ended(&ran));
    let mut choices = s.rollback_on_pause.iter().copied();
    let mut attempts = 1;
    loop {
        let unfinished = ran.has_unfinished();
        if ran.report.is_none() && !unfinished {
            // octoup died after the journal was finished (in the report): `octoup status`
            // shows how the run ended; the journal is the outcome.
            let _ = writeln!(trace, "finished: {}", ran.journal().status.as_str());
            break;
        }
        let outcome = ran.report.as_ref().map(|r| r.outcome);
        if let Some(Outcome::Paused) = outcome {
            let next = ran.report().next_step.clone().unwrap_or_default();
            if next.trim().is_empty() || !unfinished {
                return Err(format!(
                    "I4: a paused report without a next step or journal\n{trace}"
                ));
            }
        }
        let terminal = match outcome {
            None | Some(Outcome::Paused) => false,
            // A refused rollback leaves the paused run as it was; a refusal without an
            // unfinished run changed nothing.
            Some(Outcome::Refused) => !unfinished,
            Some(_) => true,
        };
        if terminal {
            if unfinished {
                return Err(format!(
                    "a finished outcome left an unfinished journal\n{trace}"
                ));
            }
            break;
        }
        if attempts == ATTEMPTS {
            // The operator fixes the cause: one more `octoup upgrade` must finish.
            ran.fake().clear_faults();
            ran = ran.resume().await;
            let _ = writeln!(trace, "faults cleared; upgrade: {}", ended(&ran));
            match ran.report.as_ref().map(|r| r.outcome) {
                Some(Outcome::Upgraded | Outcome::Failed | Outcome::RolledBack)
                    if !ran.has_unfinished() =>
                {
                    break;
                }
                _ => {
                    return Err(format!(
                        "I4: one more run after the cause was fixed did not finish\n{trace}"
                    ));
                }
            }
        }
        attempts += 1;
        let rollback = outcome == Some(Outcome::Paused) && choices.next().unwrap_or(false);
        ran = if rollback {
            ran.rollback().await
        } else {
            ran.resume().await
        };
        let verb = if rollback { "rollback" } else { "upgrade" };
        let _ = writeln!(trace, "{verb}: {}", ended(&ran));
    }
    check_end(&ran).map_err(|e| format!("{e}\n{trace}"))?;
    let _ = writeln!(trace, "ends {}", ran.journal().status.as_str());
    Ok(trace)
}

/// I1–I3 and I6 over the history, the watchdogs as before, and I4's end state.
fn check_end(ran: &Ran) -> Result<(), String> {
    let history = ran.history();
    let violations = invariants::all(&history);
    if !violations.is_empty() {
        let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
        return Err(format!("violations:\n{}", list.join("\n")));
    }
    let status = ran.journal().status;
    let want = match status {
        RunStatus::Upgraded => v(TARGET),
        RunStatus::Failed | RunStatus::RolledBack => v(FROM),
        other => return Err(format!("I4: the run ends {}", other.as_str())),
    };
    if let Some(r) = &ran.report {
        let agrees = matches!(
            (r.outcome, status),
            (Outcome::Upgraded, RunStatus::Upgraded)
                | (Outcome::Failed | Outcome::Refused, RunStatus::Failed)
                | (Outcome::RolledBack, RunStatus::RolledBack)
        );
        if !agrees {
            return Err(format!(
                "the report says {:?} but the journal {}",
                r.outcome,
                status.as_str()
            ));
        }
    }
    let m = ran.model();
    if m.schema != want {
        return Err(format!(
            "I4: {} on a {} schema, expected {want}",
            status.as_str(),
            m.schema
        ));
    }
    let Some(Event::Began(began)) = history.first() else {
        return Err("no history".into());
    };
    for (b, n) in began.nodes.iter().zip(&m.nodes) {
        if n.installed.as_ref() != Some(&want) || n.serving.as_ref() != Some(&want) {
            return Err(format!(
                "I4: {} but {} has {:?} installed and serves {:?}, expected {want}",
                status.as_str(),
                n.name,
                n.installed,
                n.serving
            ));
        }
        if n.watchdog != b.watchdog {
            return Err(format!(
                "{}'s watchdog ends {:?} but began {:?}",
                n.name, n.watchdog, b.watchdog
            ));
        }
    }
    Ok(())
}

/// Runs `drive` on a current-thread runtime with paused time: deadlines and poll
/// intervals advance the clock, not the wall time.
fn check(s: &Schedule) -> Result<String, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime")
        .block_on(drive(s))
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn any_fault_schedule_ends_upgraded_or_as_before(s in schedule()) {
        check(&s).map_err(TestCaseError::fail)?;
    }
}

/// The generator is not vacuous: with a fixed seed its schedules crash octoup, undo,
/// pause, roll back, need the cause fixed, and end in each of the three ways.
#[test]
fn the_schedules_reach_every_ending() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut traces = String::new();
    for _ in 0..300 {
        let s = schedule()
            .new_tree(&mut runner)
            .expect("a schedule")
            .current();
        traces.push_str(&check(&s).expect("the property holds"));
    }
    for seen in [
        "crashed",
        "rollback: ",
        "Paused",
        "faults cleared",
        "finished: ",
        "ends upgraded",
        "ends failed",
        "ends rolled-back",
    ] {
        assert!(traces.contains(seen), "no schedule led to {seen:?}");
    }
}

/// Schedules the property found, shrunk, kept once fixed.
mod regressions {
    use super::*;

    fn strike(op: Op, node: Option<usize>, fault: Fault) -> Strike {
        Strike { op, node, fault }
    }

    fn plain(nodes: usize, strikes: Vec<Strike>, rollback_on_pause: Vec<bool>) -> Schedule {
        Schedule {
            nodes,
            watchdogs: vec![false; nodes],
            drained: vec![false; nodes],
            maintenance: false,
            automatic_rollback: false,
            strikes,
            rollback_on_pause,
        }
    }

    /// Shrunk from the first failure: octoup died in the report (reading what each node
    /// serves) after the undo had finished the journal. Not an engine fault: the run is
    /// over (`octoup status` says `failed`), and no unfinished run is left to continue.
    #[test]
    fn a_crash_after_the_journal_is_finished_leaves_nothing_to_continue() {
        let s = plain(
            3,
            vec![
                strike(Op::ServedVersion, None, Fault::CrashBefore),
                strike(Op::Stop, None, Fault::FailOnce),
            ],
            vec![],
        );
        let trace = check(&s).unwrap();
        assert!(trace.contains("finished: failed"), "{trace}");
    }

    #[test]
    fn a_crash_in_the_rollback_after_a_crash_in_the_upgrade_is_continued() {
        let s = plain(
            2,
            vec![
                strike(Op::Install, Some(1), Fault::CrashAfter),
                strike(Op::UpgradeDatabase, None, Fault::FailOnce),
                strike(Op::Restore, None, Fault::CrashBefore),
            ],
            vec![true],
        );
        check(&s).unwrap();
    }
}
