//! A rollback point kept after a successful upgrade (`[rollback] keep_hours`): what is
//! held and until when, `octoup finalize` releasing it, and its expiry.
//!
//! While a snapshot or database copy is held, `octoup rollback` can take back even the
//! finished upgrade (it reverts to the point and reinstalls the original version, and
//! discards what Octopus recorded since). Past its time the point is released before the
//! next upgrade begins; a new upgrade is refused while one is still held, because the next
//! run's own point would conflict with it (SQL Server reverts only with one snapshot).

use std::sync::Arc;

use jiff::Timestamp;
use serde::Serialize;

use crate::config::{Config, EnvOverrides};
use crate::database::{Choice, DatabaseSide, RollbackPoint};
use crate::journal::{Journal, JournalError, Run, RunStatus, StateDir, Step};
use crate::process::clock::now;
use crate::process::runner::RunLog;

use super::catalogue::StepKind;
use super::record::Record;
use super::{EngineError, open_log};
use crate::doctor::preflight::Connection;

/// A snapshot or copy an upgraded run keeps, for `octoup rollback` to take it back.
#[derive(Debug, Clone, Serialize)]
pub struct Held {
    pub run: String,
    pub point: RollbackPoint,
    /// What the point is, in words.
    pub describe: String,
    pub until: Timestamp,
}

impl Held {
    pub fn expired(&self, at: Timestamp) -> bool {
        at >= self.until
    }
}

/// What `run` holds: an upgraded run whose release step recorded `held_until` and not yet
/// `released`.
pub fn held(run: &Run) -> Option<Held> {
    if run.status != RunStatus::Upgraded {
        return None;
    }
    let release = run.step(StepKind::ReleaseRollbackPoint.name())?;
    if release.outputs.contains_key("released") {
        return None;
    }
    let until: Timestamp = release.output_str("held_until")?.parse().ok()?;
    let point = [StepKind::SnapshotDatabase, StepKind::CopyDatabase]
        .iter()
        .find_map(|k| run.step(k.name()).and_then(Step::rollback_point))?;
    Some(Held {
        run: run.id.clone(),
        describe: point.describe(),
        point,
        until,
    })
}

/// For `octoup rollback` without an unfinished run: the last run, made current again, when
/// it is a finished upgrade whose snapshot or copy is still held (it can be taken back).
pub(crate) fn reopen_held(state: &StateDir) -> Result<Option<Journal>, JournalError> {
    match state.last()? {
        Some(run) if held(&run).is_some_and(|h| !h.expired(now())) => {
            Ok(Some(state.reopen(&run.id)?))
        }
        _ => Ok(None),
    }
}

/// What `octoup finalize` did.
#[derive(Debug, Clone, Serialize)]
pub struct Finalized {
    /// The point released, when one was held.
    pub released: Option<Held>,
    /// What was done, in words.
    pub detail: String,
}

/// `octoup finalize`: releases the rollback point the last upgrade holds. Nothing held is
/// not an error (a scheduled `finalize` after every upgrade is harmless).
pub async fn finalize(config: Config, env: &EnvOverrides) -> Result<Finalized, EngineError> {
    let state = StateDir::new(&config.state.dir);
    let _lock = state.lock()?;
    if let Some(journal) = state.unfinished()? {
        return Err(EngineError::FinalizeUnfinished {
            run: journal.run.id.clone(),
        });
    }
    let Some(run) = state.last()? else {
        return Ok(Finalized {
            released: None,
            detail: "no run is recorded: nothing is held".into(),
        });
    };
    let Some(held) = held(&run) else {
        return Ok(Finalized {
            released: None,
            detail: format!(
                "the last run ({}, {}) holds no rollback point: nothing to release",
                run.id,
                run.status.as_str()
            ),
        });
    };
    let log = open_log(&run.log)?;
    let conn = Connection::new(config, env, log.clone())?;
    let detail = release(&state, &conn, &run, &held, "on request (`octoup finalize`)").await?;
    Ok(Finalized {
        released: Some(held),
        detail,
    })
}

/// Before a new upgrade: a point held past its time is released; one still held refuses
/// the upgrade (`Err` with the reason and the way out).
pub(crate) async fn release_expired(
    state: &StateDir,
    conn: &Connection,
    log: &Arc<RunLog>,
) -> Result<Option<String>, String> {
    let Some(run) = state.last().ok().flatten() else {
        return Ok(None);
    };
    let Some(held) = held(&run) else {
        return Ok(None);
    };
    if !held.expired(now()) {
        return Err(format!(
            "run {} still holds {} until {} ([rollback] keep_hours), so that `octoup rollback` can take that upgrade back; a new upgrade would make it useless. Run `octoup finalize` to release it first (or `octoup rollback` to take that upgrade back)",
            held.run, held.describe, held.until
        ));
    }
    let detail = release(state, conn, &run, &held, "its time was up")
        .await
        .map_err(|e| {
            format!(
                "run {}'s rollback point {} expired at {}, and releasing it failed: {e}",
                held.run, held.describe, held.until
            )
        })?;
    log.note(&format!("run {}: {detail}", held.run));
    Ok(Some(detail))
}

/// Drops the point and records it on the run's release step.
async fn release(
    state: &StateDir,
    conn: &Connection,
    run: &Run,
    held: &Held,
    why: &str,
) -> Result<String, EngineError> {
    let choice = run
        .step(StepKind::Preflight.name())
        .and_then(Step::strategy)
        .unwrap_or_else(|| Choice::native("no strategy recorded", false));
    let side = DatabaseSide::new(&conn.config, &choice)?;
    let done = side
        .release(conn.runner.as_ref(), &held.point)
        .await
        .map_err(|e| EngineError::Finalize(e.to_string()))?;
    let detail = format!("{done} ({why})");
    let mut journal = state.open(&run.id)?;
    let key = StepKind::ReleaseRollbackPoint.name();
    journal.update_step(key, |s| {
        Record::Released(now()).write(s);
        Record::Detail(detail.clone()).write(s);
    })?;
    Ok(detail)
}
