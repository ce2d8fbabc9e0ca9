//! The upgrade record: a run's final report (the JSON `octoup upgrade --json` prints),
//! kept as `<state>/records/<run-id>.json` beside the journal's `runs/<run-id>.json`:
//! written atomically and readable by its owner only (it names hosts and backup paths).

use std::path::{Path, PathBuf};

use crate::process::fsutil;

use super::report::Report;

/// Where the record of run `id` lives.
pub fn record_path(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join("records").join(format!("{id}.json"))
}

/// Writes the record of `report`'s run (nothing for a report without a run: up to date, or
/// refused before one began). Returns where it went.
pub fn write_record(state_dir: &Path, report: &Report) -> std::io::Result<Option<PathBuf>> {
    let Some(id) = report.run_id.as_deref() else {
        return Ok(None);
    };
    let path = record_path(state_dir, id);
    let text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    // The temporary file is created owner-only (0600) and renamed over the record.
    fsutil::write_atomic(&path, text.as_bytes())?;
    crate::process::platform::restrict_owner_only(&path)?;
    Ok(Some(path))
}

/// Every record in the state directory, oldest first (run ids sort by time); a record
/// that cannot be read is left out: records are for people, the journal is the truth.
pub fn records(state_dir: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    fsutil::json_files(&state_dir.join("records"))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            Some((p, serde_json::from_str(&text).ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::report::Outcome;

    #[test]
    fn a_record_is_owner_only_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = Report::without_run(Outcome::Upgraded, "2024.1.1", "2024.2.1");
        assert_eq!(write_record(dir.path(), &report).unwrap(), None);
        report.run_id = Some("20260101-000000-abcd".into());
        let path = write_record(dir.path(), &report).unwrap().unwrap();
        assert_eq!(path, record_path(dir.path(), "20260101-000000-abcd"));
        assert!(crate::process::platform::is_owner_only(&path).unwrap());
        let read = records(dir.path());
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].1["outcome"], "upgraded");
        assert_eq!(read[0].1["to"], "2024.2.1");
    }
}
