//! Durability: a damaged journal is reported with its path and the way to recover, and
//! octoup neither continues nor starts a run over it (README: "After a crash").

use octoup_testkit::*;

#[test]
fn a_truncated_journal_is_reported_and_no_run_starts_over_it() {
    let sim = Scenario::new()
        .nodes(1)
        .fault("db-upgrade", "exit:1")
        .start();
    sim.octoup(&["upgrade", "--json"]).expect_code(4);
    let status = sim.octoup(&["status", "--json"]);
    let journal = status.json["journal"]
        .as_str()
        .expect("a journal path")
        .to_string();
    let text = std::fs::read_to_string(&journal).unwrap();
    std::fs::write(&journal, &text[..text.len() / 2]).unwrap();
    let before = mutating(&sim.history()).len();

    for args in [
        &["status"][..],
        &["upgrade"],
        &["status", "--all"],
        &["plan"],
    ] {
        let r = sim.octoup(args);
        r.expect_code(1);
        for want in [
            journal.as_str(),
            "is damaged",
            "will not start or continue a run over it",
            "move the file away",
        ] {
            assert!(
                r.stderr.contains(want),
                "`octoup {args:?}` lacks {want:?}: {}",
                r.stderr
            );
        }
    }
    let json = sim.octoup(&["upgrade", "--json"]);
    json.expect_code(1);
    assert!(
        json.json["error"]
            .as_str()
            .unwrap_or_default()
            .contains(&journal),
        "{}",
        json.stdout
    );
    assert_eq!(
        mutating(&sim.history()).len(),
        before,
        "nothing changed: {:?}",
        mutating(&sim.history())
    );
    // The file is left as it was found: never replaced, never removed.
    assert_eq!(
        std::fs::read_to_string(&journal).unwrap(),
        text[..text.len() / 2]
    );
}
