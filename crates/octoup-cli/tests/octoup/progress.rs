//! What a person (or a log) sees while an upgrade runs: phase banners, timestamps on log
//! lines, heartbeats with elapsed time and timeout for long steps; and the logs octoup
//! writes: owner-only, with every HTTP call (never the key).

use octoup_testkit::*;

#[test]
fn a_log_gets_banners_timestamps_and_heartbeats_and_the_run_log_every_http_call() {
    let sim = Scenario::new().fault("db-upgrade", "delay:2500").start();
    let out = sim
        .octoup_cmd(&["upgrade"])
        .env("OCTOUP_HEARTBEAT_SECONDS", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?}:\n{stderr}"))
    };
    assert!(
        pos("── before the outage") < pos("OUTAGE started"),
        "{stderr}"
    );
    assert!(
        pos("OUTAGE started") < pos("..   stop OCTO-NODE-01"),
        "{stderr}"
    );
    assert!(pos("Octopus serves again") > pos("ok  verify"), "{stderr}");
    assert!(
        stderr.contains("still running: upgrade-database OCTO-NODE-01: ")
            && stderr.contains(" of up to 2h"),
        "a heartbeat names the step, its elapsed time and its timeout:\n{stderr}"
    );
    // Not a terminal: every step line carries the time.
    let step_line = lines[pos("ok  maintenance-on")];
    let stamp = &step_line[..8];
    assert!(
        stamp.chars().filter(|c| *c == ':').count() == 2
            && stamp.replace(':', "").chars().all(|c| c.is_ascii_digit()),
        "{step_line}"
    );

    let logs = sim.dir().join("octoup-state").join("logs");
    let run_log = std::fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        // The run's log, not an installer's `/l*v` log beside it (read_dir has no order).
        .find(|p| {
            p.extension().is_some_and(|x| x == "log")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("install-"))
        })
        .expect("a run log");
    let text = std::fs::read_to_string(&run_log).unwrap();
    assert!(text.contains("http GET /api -> 200"), "{text}");
    assert!(
        text.contains("http PUT /api/maintenanceconfiguration") || text.contains("http PUT /api/"),
        "{text}"
    );
    for secret in sim.secrets() {
        assert!(!text.contains(&secret), "a secret in the run log");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&run_log).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "run log {}", run_log.display());
        let installer_log = std::fs::read_dir(&logs)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("install-")
            })
            .expect("an installer log");
        let mode = std::fs::metadata(&installer_log)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "installer log {}", installer_log.display());
    }
}
