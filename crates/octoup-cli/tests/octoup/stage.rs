//! `octoup stage` against `octoup sim up`: the target's and the rollback installer are
//! downloaded through a dropped connection, verified, cached, and a corrupted one refused.

use octoup_testkit::{Ran, Scenario, Sim};
use sha2::{Digest, Sha256};

const SIZE: u64 = 3 * 1024 * 1024;

/// `octoup stage --json <extra>` against `sim`; the report is one pretty-printed object.
fn stage(sim: &Sim, extra: &[&str]) -> Ran {
    let mut args = vec!["stage", "--json"];
    args.extend_from_slice(extra);
    sim.octoup(&args)
}

/// `octoup sim up` (one node) with `spec` added to the fast default spec.
fn sim_up(spec: &str) -> Sim {
    Scenario::new().spec(spec).through_octoup().start()
}

fn file_sha256(path: &str) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn stage_downloads_through_a_drop_verifies_caches_and_refuses_corruption() {
    let sim = sim_up(&format!(
        "[installer]\nsize = {SIZE}\n\n[[faults]]\nop = \"download\"\naction = \"drop:1000000\"\ntimes = 1\n"
    ));
    let ran = stage(&sim, &["--to", "2024.2.9409"]);
    let json = &ran.json;
    assert_eq!(
        ran.code, 0,
        "stdout: {}\nstderr: {}",
        ran.stdout, ran.stderr
    );
    let installers = json["installers"].as_array().expect("installers").clone();
    let roles: Vec<(&str, &str)> = installers
        .iter()
        .map(|i| (i["role"].as_str().unwrap(), i["version"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        vec![("target", "2024.2.9409"), ("rollback", "2024.1.10")]
    );
    for i in &installers {
        let path = i["path"].as_str().unwrap();
        assert_eq!(i["size"], SIZE, "{i}");
        assert_eq!(std::fs::metadata(path).unwrap().len(), SIZE);
        assert_eq!(i["sha256"].as_str().unwrap(), file_sha256(path));
        assert_eq!(i["verified_by"], serde_json::json!(["header-sha256"]));
        assert_eq!(i["cached"], false);
    }
    // JSON mode keeps stderr quiet (no progress lines mixed into logs).
    assert!(ran.stderr.is_empty(), "{}", ran.stderr);

    // Again: both come from the cache.
    let ran = stage(&sim, &["--to", "2024.2.9409"]);
    let json = &ran.json;
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    assert!(
        json["installers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["cached"] == true),
        "{json}"
    );

    // A corrupted transfer of another version: refused, named, nothing kept.
    sim.fault("download", "corrupt:2000000", None, 1);
    let ran = stage(&sim, &["--to", "2024.2.9550"]);
    let json = &ran.json;
    assert_eq!(ran.code, 1, "{}{}", ran.stdout, ran.stderr);
    let error = json["error"].as_str().unwrap_or_default();
    assert!(error.contains("x-amz-meta-sha256"), "{}", ran.stdout);
    let cached = sim
        .dir()
        .join("octoup-state")
        .join("cache")
        .join("2024.2.9550");
    let leftovers: Vec<_> = std::fs::read_dir(&cached)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn stage_without_to_follows_the_version_policy_and_prints_text() {
    let sim = sim_up(&format!("[installer]\nsize = {SIZE}\n"));
    let ran = sim.octoup(&["stage"]);
    assert_eq!(
        ran.code, 0,
        "stdout: {}\nstderr: {}",
        ran.stdout, ran.stderr
    );
    assert!(ran.stdout.contains("target 2024."), "{}", ran.stdout);
    assert!(ran.stdout.contains("rollback 2024.1.10"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("verified by x-amz-meta-sha256"),
        "{}",
        ran.stdout
    );
    // Not a terminal: plain progress lines on stderr.
    assert!(ran.stderr.contains("downloading"), "{}", ran.stderr);
}
