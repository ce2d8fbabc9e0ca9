//! `octoup check`: offline (`--current` and a feed file, no server, no config file) and
//! against the simulator.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::{Value, json};

/// Unsorted on purpose: the last element (2024.1.15) is not the newest.
const FEED: &str = r#"[
  {"Version": "2024.3.12701", "Released": "2024-09-09"},
  {"Version": "2024.1.10", "Released": "2024-02-01"},
  {"Version": "2024.2.9409", "Released": "2024-05-01"},
  {"Version": "2024.2.9000", "Released": "2024-01-15"},
  {"Version": "2025.1.3", "Released": "2025-01-20", "Unknown": true},
  {"Version": "2024.1.15", "Released": "2024-10-01"}
]"#;

/// Runs `octoup` in `dir` (so no stray ./octoup.toml is picked up) without the server
/// environment variables.
fn octoup<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(dir: &Path, args: I) -> Output {
    Command::cargo_bin("octoup")
        .unwrap()
        .current_dir(dir)
        .env_remove("OCTOPUS_URL")
        .env_remove("OCTOPUS_API_KEY")
        .args(args)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn parse(output: &[u8]) -> Value {
    serde_json::from_slice(output).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {}",
            String::from_utf8_lossy(output)
        )
    })
}

/// `octoup check ... --json`, which must succeed; the report.
fn check_json<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Value {
    let out = octoup(
        dir,
        ["check".as_ref(), "--json".as_ref()]
            .into_iter()
            .chain(args.iter().map(AsRef::as_ref)),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    parse(&out.stdout)
}

/// A directory holding FEED as feed.json.
fn with_feed() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("feed.json"), FEED).unwrap();
    dir
}

#[test]
fn offline_json_chooses_by_policy_and_explains_the_rest() {
    let dir = with_feed();
    let report = check_json(
        dir.path(),
        &["--current", "2024.1.10", "--feed", "feed.json"],
    );
    assert_eq!(report["current"], "2024.1.10");
    assert_eq!(report["target"], "2024.3.12701");
    assert_eq!(report["path"], json!(["2024.3.12701"]));
    let rejected = report["rejected"].as_array().unwrap();
    let versions: Vec<&str> = rejected
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(
        versions,
        ["2025.1.3", "2024.2.9409", "2024.2.9000", "2024.1.15"]
    );
    let reason = |i: usize| rejected[i]["reason"].as_str().unwrap();
    assert!(reason(0).contains("never crosses a major"), "{}", reason(0));
    assert!(
        reason(2).contains("released before the running build 2024.1.10"),
        "{}",
        reason(2)
    );
}

#[test]
fn offline_config_policy_applies_and_up_to_date_is_success() {
    let dir = with_feed();
    std::fs::write(
        dir.path().join("policy.toml"),
        "[versions]\nfeed = \"feed.json\"\nallow = \"major\"\nexclude = [\"2025.1.3\"]\npin = \"2024.2\"\n",
    )
    .unwrap();
    let report = check_json(
        dir.path(),
        &["--config", "policy.toml", "--current", "2024.1.10"],
    );
    assert_eq!(
        report["target"], "2024.2.9409",
        "pinned to 2024.2, feed from the config"
    );

    let report = check_json(
        dir.path(),
        &["--current", "2025.1.3", "--feed", "feed.json"],
    );
    assert!(report["target"].is_null());
    assert_eq!(report["path"], json!([]));
    assert_eq!(report["status"], "up-to-date");
}

#[test]
fn human_output_names_target_path_and_reasons() {
    let dir = with_feed();
    let out = octoup(
        dir.path(),
        ["check", "--current", "2024.1.10", "--feed", "feed.json"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
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
    let dir = with_feed();
    std::fs::write(dir.path().join("broken.json"), "<html>proxy login</html>").unwrap();

    let bad_version = octoup(
        dir.path(),
        ["check", "--current", "2024.x.1", "--feed", "feed.json"],
    );
    assert_eq!(bad_version.status.code(), Some(2));
    assert!(stderr(&bad_version).contains("\"2024.x.1\""));

    let no_server = octoup(dir.path(), ["check"]);
    assert_eq!(no_server.status.code(), Some(2));
    assert!(stderr(&no_server).contains("--current VERSION"));

    let missing = octoup(
        dir.path(),
        ["check", "--current", "2024.1.10", "--feed", "missing.json"],
    );
    assert_eq!(missing.status.code(), Some(3));
    assert!(stderr(&missing).contains("versions.feed"));

    let not_json = octoup(
        dir.path(),
        [
            "check",
            "--current",
            "2024.1.10",
            "--feed",
            "broken.json",
            "--json",
        ],
    );
    assert_eq!(not_json.status.code(), Some(3));
    let error = parse(&not_json.stdout);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("is not valid JSON"),
        "{error}"
    );
}

/// A simulated installation started with `octoup sim up`, stopped on drop.
struct Sim {
    dir: tempfile::TempDir,
}

impl Sim {
    fn start(spec: &str) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let spec_path = dir.path().join("spec.toml");
        std::fs::write(&spec_path, spec).unwrap();
        let sim = Sim { dir };
        let out = octoup(
            sim.dir.path(),
            [
                OsStr::new("sim"),
                "up".as_ref(),
                "--dir".as_ref(),
                sim.install().as_os_str(),
                "--spec".as_ref(),
                spec_path.as_os_str(),
            ],
        );
        assert!(out.status.success(), "octoup sim up: {}", stderr(&out));
        sim
    }

    fn install(&self) -> PathBuf {
        self.dir.path().join("sim")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        octoup(
            self.dir.path(),
            [
                OsStr::new("sim"),
                "down".as_ref(),
                "--dir".as_ref(),
                self.install().as_os_str(),
            ],
        );
    }
}

#[test]
fn against_the_simulator_reads_version_license_and_feed() {
    let sim = Sim::start(
        r#"
version = "2024.1.10"
[license]
max_version_covered = "2024.4.9999"
[feed]
versions = [
  { Version = "2025.1.3", Released = "2025-01-20" },
  { Version = "2024.1.10", Released = "2024-02-01" },
  { Version = "2024.3.12701", Released = "2024-09-09" },
  { Version = "2024.2.9409", Released = "2024-05-01" },
]
"#,
    );
    // The simulator's config, with allow = "major" so that the license is what stops 2025.1.
    let config = std::fs::read_to_string(sim.install().join("octoup.toml")).unwrap();
    assert!(config.contains("[versions]\n"), "{config}");
    let major = sim.install().join("major.toml");
    std::fs::write(
        &major,
        config.replacen("[versions]\n", "[versions]\nallow = \"major\"\n", 1),
    )
    .unwrap();

    let report = check_json(sim.dir.path(), &[OsStr::new("--config"), major.as_os_str()]);
    assert_eq!(report["current"], "2024.1.10", "from the server's /api");
    assert_eq!(report["target"], "2024.3.12701");
    assert_eq!(report["rejected"][0]["version"], "2025.1.3");
    assert_eq!(
        report["rejected"][0]["reason"],
        "not covered by the license (maintenance covers up to 2024.4.9999)",
        "the cap comes from /api/serverstatus"
    );
    let warnings = report["warnings"].to_string();
    assert!(!warnings.contains("license coverage"), "{warnings}");
}
