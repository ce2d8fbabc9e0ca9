//! `octoup check`: offline (`--current` and a feed file, no server, no config file) and
//! against the simulator.

use std::ffi::OsStr;
use std::path::Path;

use octoup_testkit::{Ran, Scenario, run_in};
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

/// The one JSON object a command printed on stdout.
fn parse(ran: &Ran) -> &Value {
    assert!(ran.json.is_object(), "not one JSON object: {}", ran.stdout);
    &ran.json
}

/// `octoup check ... --json` in `dir`, which must succeed; the report.
fn check_json<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Value {
    let ran = run_in(
        dir,
        ["check".as_ref(), "--json".as_ref()]
            .into_iter()
            .chain(args.iter().map(AsRef::as_ref)),
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    parse(&ran).clone()
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

/// `octoup check --current 2024.1.10 --feed feed.json` (text) with FEED, which must succeed.
pub fn offline_text() -> Ran {
    let dir = with_feed();
    let ran = run_in(
        dir.path(),
        ["check", "--current", "2024.1.10", "--feed", "feed.json"],
    );
    ran.expect_code(0);
    ran
}

#[test]
fn human_output_names_target_path_and_reasons() {
    let out = offline_text();
    let text = &out.stdout;
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

    let bad_version = run_in(
        dir.path(),
        ["check", "--current", "2024.x.1", "--feed", "feed.json"],
    );
    assert_eq!(bad_version.code, 2);
    assert!(bad_version.stderr.contains("\"2024.x.1\""));

    let no_server = run_in(dir.path(), ["check"]);
    assert_eq!(no_server.code, 2);
    assert!(no_server.stderr.contains("--current VERSION"));

    let missing = run_in(
        dir.path(),
        ["check", "--current", "2024.1.10", "--feed", "missing.json"],
    );
    assert_eq!(missing.code, 3);
    assert!(missing.stderr.contains("versions.feed"));

    let not_json = run_in(
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
    assert_eq!(not_json.code, 3);
    let error = parse(&not_json);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("is not valid JSON"),
        "{error}"
    );
}

#[test]
fn against_the_simulator_reads_version_license_and_feed() {
    let sim = Scenario::new()
        .through_octoup()
        .spec(
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
        )
        .start();
    // The simulator's config, with allow = "major" so that the license is what stops 2025.1.
    let config = std::fs::read_to_string(sim.dir().join("octoup.toml")).unwrap();
    assert!(config.contains("[versions]\n"), "{config}");
    let major = sim.dir().join("major.toml");
    std::fs::write(
        &major,
        config.replacen("[versions]\n", "[versions]\nallow = \"major\"\n", 1),
    )
    .unwrap();

    let report = check_json(sim.dir(), &[OsStr::new("--config"), major.as_os_str()]);
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

/// `min_age_days` counts from one UTC "today" (`octoup::choice::today`), whatever the
/// machine's time zone: a release dated exactly `min_age_days` ago is eligible under time
/// zones far east and far west of UTC alike. `plan`, `upgrade`, `stage` and `demo` choose
/// through the same `choice::choose`.
#[test]
fn soak_time_is_counted_in_utc_whatever_the_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let released = today.checked_sub(jiff::Span::new().days(3)).unwrap();
    std::fs::write(
        dir.path().join("feed.json"),
        format!(
            r#"[{{"Version": "2024.1.10", "Released": "2024-02-01"}},
                {{"Version": "2024.1.20", "Released": "{released}"}}]"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("octoup.toml"),
        "[versions]\nfeed = \"feed.json\"\nmin_age_days = 3\n",
    )
    .unwrap();
    for tz in [
        "UTC",
        "Pacific/Kiritimati",
        "Etc/GMT+12",
        "Pacific/Pago_Pago",
    ] {
        let ran = Ran::of(
            octoup_testkit::octoup_command(["check", "--json", "--current", "2024.1.10"])
                .current_dir(dir.path())
                .env("TZ", tz),
        );
        assert_eq!(ran.code, 0, "TZ={tz}: {}", ran.stderr);
        assert_eq!(
            parse(&ran)["target"],
            "2024.1.20",
            "TZ={tz}: {}",
            ran.stdout
        );
    }
}
