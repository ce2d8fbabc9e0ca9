//! Launch markers: one small file per step of a run, saying that its command was about to
//! be spawned and, once it was, the child's pid (`launches/<run>/<step>.json` in the state
//! directory).
//!
//! They are written with a plain write and rename, never fsynced: a stop, start or
//! watchdog command is on the outage's critical path, and a journal write (two fsyncs)
//! per command would lengthen it. That is enough for what they are for: a SIGKILLed
//! octoup leaves its writes in the page cache, so the next run reads them; only a crash
//! of the machine loses them, and after a reboot no child survives, so "no marker" (never
//! launched) is then also the truth.

use std::collections::BTreeMap;
use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StateDir;
use crate::process::fsutil;

const DIR: &str = "launches";

/// The marker of one step of one run.
#[derive(Debug, Clone)]
pub(crate) struct LaunchMarker {
    path: PathBuf,
}

/// What a marker file holds: the attempt it belongs to (the step's `started`), and the
/// launch records in the journal's `outputs` form.
#[derive(Serialize, Deserialize)]
struct Marker {
    attempt: Timestamp,
    outputs: BTreeMap<String, Value>,
}

impl StateDir {
    pub(crate) fn launch_marker(&self, run_id: &str, step: &str) -> LaunchMarker {
        LaunchMarker {
            path: self
                .launches_dir(run_id)
                .join(format!("{}.json", crate::nodes::file_safe(step))),
        }
    }

    fn launches_dir(&self, run_id: &str) -> PathBuf {
        self.root.join(DIR).join(run_id)
    }

    /// A finished run's markers go (best effort: a left-over marker is never read again).
    pub(crate) fn drop_launch_markers(&self, run_id: &str) {
        let _ = std::fs::remove_dir_all(self.launches_dir(run_id));
    }
}

impl LaunchMarker {
    /// Replaces the marker with `outputs` for `attempt`: readers see the old marker or
    /// the new one. Not fsynced (see the module's comment).
    pub(crate) fn write(
        &self,
        attempt: Timestamp,
        outputs: &BTreeMap<String, Value>,
    ) -> std::io::Result<()> {
        let dir = fsutil::parent_dir(&self.path);
        std::fs::create_dir_all(dir)?;
        let marker = Marker {
            attempt,
            outputs: outputs.clone(),
        };
        let bytes = serde_json::to_vec(&marker).unwrap_or_default();
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        fsutil::rename_with_retry(&tmp, &self.path)
    }

    /// The launch records of `attempt`; `None` when there is no marker, it is damaged, or
    /// it belongs to an earlier attempt of the step.
    pub(crate) fn read(&self, attempt: Timestamp) -> Option<BTreeMap<String, Value>> {
        let text = std::fs::read(&self.path).ok()?;
        let marker: Marker = serde_json::from_slice(&text).ok()?;
        (marker.attempt == attempt).then_some(marker.outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_read_back_for_its_attempt_only_and_goes_with_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let marker = state.launch_marker("run-1", "stop@OCTO NODE/01");
        let attempt = Timestamp::now();
        assert_eq!(marker.read(attempt), None, "nothing written yet");
        let mut outputs = BTreeMap::new();
        outputs.insert("launching".to_string(), Value::from("x"));
        marker.write(attempt, &outputs).unwrap();
        assert_eq!(marker.read(attempt), Some(outputs));
        let later = attempt + jiff::SignedDuration::from_secs(1);
        assert_eq!(marker.read(later), None, "another attempt's marker");
        state.drop_launch_markers("run-1");
        assert_eq!(marker.read(attempt), None);
    }

    #[test]
    fn a_damaged_marker_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let marker = state.launch_marker("run-1", "start@N1");
        marker.write(Timestamp::now(), &BTreeMap::new()).unwrap();
        std::fs::write(&marker.path, b"{\"attempt\": ").unwrap();
        assert_eq!(marker.read(Timestamp::now()), None);
    }
}
