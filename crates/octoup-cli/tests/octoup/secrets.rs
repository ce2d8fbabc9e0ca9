//! I5: the API key, the master key and the SQL password never appear in octoup's output,
//! its logs, its journal, or any child's command line.

use std::path::Path;

use octoup_testkit::*;

#[test]
fn secrets_never_appear_in_output_logs_journal_or_command_lines() {
    let sim = Scenario::new()
        .nodes(2)
        .watchdog("OCTO-NODE-01")
        .fault("db-upgrade", "exit:1")
        .start();
    let secrets = sim.secrets();
    let (admin_key, master_key) = (secrets[0].clone(), secrets[3].clone());
    // The API key comes from the environment this time (the other way to give it).
    sim.edit_config(|cfg| {
        cfg["server"].as_table_mut().unwrap().remove("api_key_file");
    });
    let mut texts: Vec<(String, String)> = Vec::new();
    // A paused run, its resume, plan and status, in text, verbose and JSON modes.
    for (args, code) in [
        (vec!["plan"], 0),
        (vec!["upgrade", "--verbose"], 4),
        (vec!["status", "--json"], 4),
        (vec!["upgrade", "--json", "--verbose"], 0),
        (vec!["status"], 0),
    ] {
        let out = sim
            .octoup_cmd(&args)
            .env("OCTOPUS_API_KEY", &admin_key)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        texts.push((
            format!("stdout of {args:?}"),
            String::from_utf8_lossy(&out.stdout).into(),
        ));
        texts.push((
            format!("stderr of {args:?}"),
            String::from_utf8_lossy(&out.stderr).into(),
        ));
    }
    let state_dir = sim.read_config()["state"]["dir"]
        .as_str()
        .unwrap()
        .to_string();
    let before = texts.len();
    files_under(Path::new(&state_dir), &mut texts);
    let names: Vec<&str> = texts[before..].iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names
            .iter()
            .any(|n| n.ends_with(".log") && n.contains("logs")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.contains("runs") && n.ends_with(".json")),
        "{names:?}"
    );
    for (place, text) in &texts {
        for (which, secret) in [
            "admin API key",
            "read-only API key",
            "SQL password",
            "master key",
        ]
        .iter()
        .zip(&secrets)
        {
            assert!(
                !text.contains(secret.as_str()),
                "the {which} appears in {place}"
            );
        }
    }
    // Every child's command line, as the stand-ins recorded it: no secret (the simulator
    // masks one as *** and records a secret-leak event).
    let h = sim.history();
    assert_eq!(count(&h, "secret-leak"), 0, "{}", kinds(&h));
    let invocations: Vec<_> = h
        .iter()
        .filter(|e| e["kind"] == "standin-invoked")
        .collect();
    assert!(invocations.len() > 10);
    for e in invocations {
        let args = e["args"].to_string();
        assert!(
            !args.contains("***"),
            "a secret was on a command line: {args}"
        );
    }
    // The master key was really read and kept, only in its owner-only backup file.
    let run = sim.octoup(&["status", "--json"]);
    let journal = std::fs::read_to_string(run.json["journal"].as_str().unwrap()).unwrap();
    let mk_path = journal
        .lines()
        .find(|l| l.contains("master-key-"))
        .and_then(|l| l.split('"').nth(3))
        .expect("master key path in the journal")
        .to_string();
    assert_eq!(std::fs::read_to_string(mk_path).unwrap().trim(), master_key);
    sim.assert_check();
}
