//! `octoup check` offline: `--current` and a feed file, no server, no config file.

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

/// Unsorted on purpose: the last element (2024.1.15) is not the newest.
const FEED: &str = r#"[
  {"Version": "2024.3.12701", "Released": "2024-09-09"},
  {"Version": "2024.1.10", "Released": "2024-02-01"},
  {"Version": "2024.2.9409", "Released": "2024-05-01"},
  {"Version": "2024.2.9000", "Released": "2024-01-15"},
  {"Version": "2025.1.3", "Released": "2025-01-20", "Unknown": true},
  {"Version": "2024.1.15", "Released": "2024-10-01"}
]"#;

/// `octoup` run in an empty directory (so no ./octoup.toml is picked up) without server
/// environment variables.
fn octoup(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("octoup").unwrap();
    cmd.current_dir(dir)
        .env_remove("OCTOPUS_URL")
        .env_remove("OCTOPUS_API_KEY");
    cmd
}

fn json(output: &[u8]) -> Value {
    serde_json::from_slice(output).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {}",
            String::from_utf8_lossy(output)
        )
    })
}

#[test]
fn offline_json_chooses_by_policy_and_explains_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feed.json"), FEED).unwrap();
    let out = octoup(dir.path())
        .args([
            "check",
            "--current",
            "2024.1.10",
            "--feed",
            "feed.json",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out.stdout);
    assert_eq!(report["current"], "2024.1.10");
    assert_eq!(report["target"], "2024.3.12701");
    assert_eq!(report["path"], serde_json::json!(["2024.3.12701"]));
    let rejected: Vec<(String, String)> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["version"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let versions: Vec<&str> = rejected.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(
        versions,
        ["2025.1.3", "2024.2.9409", "2024.2.9000", "2024.1.15"]
    );
    assert!(
        rejected[0].1.contains("never crosses a major"),
        "{}",
        rejected[0].1
    );
    assert!(
        rejected[2]
            .1
            .contains("released before the running build 2024.1.10"),
        "{}",
        rejected[2].1
    );
}

#[test]
fn offline_config_policy_applies_and_up_to_date_is_success() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feed.json"), FEED).unwrap();
    std::fs::write(
        dir.path().join("policy.toml"),
        "[versions]\nfeed = \"feed.json\"\nallow = \"major\"\nexclude = [\"2025.1.3\"]\npin = \"2024.2\"\n",
    )
    .unwrap();
    let out = octoup(dir.path())
        .args([
            "check",
            "--config",
            "policy.toml",
            "--current",
            "2024.1.10",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out.stdout);
    assert_eq!(
        report["target"], "2024.2.9409",
        "pinned to 2024.2, feed from the config"
    );

    let out = octoup(dir.path())
        .args([
            "check",
            "--current",
            "2025.1.3",
            "--feed",
            "feed.json",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report = json(&out.stdout);
    assert!(report["target"].is_null());
    assert_eq!(report["path"], serde_json::json!([]));
    assert_eq!(report["status"], "up-to-date");
}

#[test]
fn human_output_names_target_path_and_reasons() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feed.json"), FEED).unwrap();
    let out = octoup(dir.path())
        .args(["check", "--current", "2024.1.10", "--feed", "feed.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Target:  2024.3.12701"), "{text}");
    assert!(
        text.contains("Path:    2024.1.10 -> 2024.3.12701"),
        "{text}"
    );
    assert!(
        text.contains("2024.1.15    a newer release line is chosen: 2024.3"),
        "{text}"
    );
}

#[test]
fn exit_codes_for_bad_input_and_unreadable_feeds() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feed.json"), FEED).unwrap();
    std::fs::write(dir.path().join("broken.json"), "<html>proxy login</html>").unwrap();
    let code = |args: &[&str]| octoup(dir.path()).args(args).output().unwrap();

    let bad_version = code(&["check", "--current", "2024.x.1", "--feed", "feed.json"]);
    assert_eq!(bad_version.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_version.stderr).contains("\"2024.x.1\""));

    let no_server = code(&["check"]);
    assert_eq!(no_server.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_server.stderr).contains("--current VERSION"));

    let missing = code(&["check", "--current", "2024.1.10", "--feed", "missing.json"]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("versions.feed"));

    let not_json = code(&[
        "check",
        "--current",
        "2024.1.10",
        "--feed",
        "broken.json",
        "--json",
    ]);
    assert_eq!(not_json.status.code(), Some(3));
    let error = json(&not_json.stdout);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("is not valid JSON"),
        "{error}"
    );
}
