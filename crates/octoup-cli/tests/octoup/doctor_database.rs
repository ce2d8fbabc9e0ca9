//! The database checks end to end: each blocker refuses `octoup upgrade` before anything
//! changes, with the fix named, and shows in `octoup doctor --json`; a warning accepted by
//! id lets the upgrade go ahead and is journaled; a refused query is an `unchecked` warning;
//! the hosting is detected. The simulated SQL Server is set through the spec's `[database]`.

use octoup_testkit::*;
use serde_json::Value;

const TARGET: &str = "2024.3.13050";

fn finding<'a>(json: &'a Value, id: &str) -> Option<&'a Value> {
    json["findings"].as_array()?.iter().find(|f| f["id"] == id)
}

fn ids(json: &Value) -> Vec<String> {
    json["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["id"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// `upgrade --yes` refuses with `id` as a blocker whose fix says `fix`, nothing changes, and
/// `doctor --json` shows the same finding (exit 3).
#[track_caller]
fn refused_with(scenario: Scenario, id: &str, fix: &str) -> (Sim, Value) {
    let (sim, r) = scenario.run(&["upgrade", "--yes", "--json"]);
    r.expect_code(3);
    assert_eq!(r.json["refused"], true, "{}", r.stdout);
    let f = finding(&r.json, id).unwrap_or_else(|| panic!("{id} in {}", r.stdout));
    assert_eq!(f["severity"], "blocker", "{f}");
    assert!(
        f["fix"].as_str().unwrap().contains(fix),
        "the fix names {fix:?}: {f}"
    );
    assert!(
        r.json["error"].as_str().unwrap_or("").contains(fix),
        "the refusal says the fix: {}",
        r.stdout
    );
    assert_eq!(mutating(&sim.history()), Vec::<String>::new());
    let doctor = sim.octoup(&["doctor", "--json"]);
    doctor.expect_code(3);
    let d = finding(&doctor.json, id).unwrap_or_else(|| panic!("{id} in {}", doctor.stdout));
    assert_eq!(d["severity"], "blocker");
    assert_eq!(mutating(&sim.history()), Vec::<String>::new());
    sim.assert_check();
    (sim, doctor.json)
}

#[test]
fn a_healthy_database_gives_no_finding_and_its_facts_reach_the_report() {
    let (sim, r) = Scenario::new().run(&["doctor", "--json"]);
    r.expect_code(0);
    assert_eq!(r.json["hosting"], "self-managed", "{}", r.stdout);
    // Only the strategy's information: nothing to fix.
    let sql: Vec<String> = ids(&r.json)
        .into_iter()
        .filter(|i| i.starts_with("sql.") && i != "sql.strategy")
        .collect();
    assert!(sql.is_empty(), "{sql:?}");
    assert!(
        r.json["database"]["strategy"]["strategy"].is_string(),
        "{}",
        r.stdout
    );
    assert_eq!(
        r.json["database"]["rights"]["snapshot"], true,
        "{}",
        r.stdout
    );
    let up = sim.octoup(&["upgrade", "--yes", "--json"]);
    up.expect_code(0);
    assert!(up.all_nodes_on(TARGET), "{}", up.stdout);
    let db = &up.json["database"];
    assert_eq!(db["hosting"], "self-managed", "{}", up.stdout);
    assert_eq!(db["product_version"], "15.0.4322.2");
    assert_eq!(db["engine_edition"], 3);
    assert_eq!(db["compatibility_level"], 150);
    assert_eq!(db["rights"]["restore"], true);
    assert_eq!(db["rights"]["backup"], true);
    assert_eq!(db["ifi"], true);
    assert!(db["data_used_bytes"].as_u64().unwrap() >= 2_000_000_000);
    sim.assert_check();
}

#[test]
fn sql_server_too_old_for_the_target_is_refused() {
    let (_, doctor) = refused_with(
        Scenario::new().database("sql_version", "12.0.6024.0"),
        "sql.version",
        "SQL Server to 2016 or later",
    );
    let f = finding(&doctor, "sql.version").unwrap();
    assert!(
        f["found"].as_str().unwrap().contains("SQL Server 2014"),
        "{f}"
    );
}

#[test]
fn columns_off_the_default_collation_are_refused_and_named() {
    let (_, doctor) = refused_with(
        Scenario::new().database(
            "collation_mismatches",
            vec!["Event.Name".to_string(), "Project.Slug".to_string()],
        ),
        "sql.collation",
        "COLLATE DATABASE_DEFAULT",
    );
    let found = finding(&doctor, "sql.collation").unwrap()["found"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(found.starts_with("2 column(s)"), "{found}");
    assert!(
        found.contains("Event.Name") && found.contains("Project.Slug"),
        "{found}"
    );
}

#[test]
fn a_login_that_cannot_restore_is_refused_while_rollback_is_on() {
    refused_with(
        Scenario::new().database("can_restore", false),
        "sql.restore-rights",
        "[rollback] enabled = false",
    );
}

#[test]
fn rollback_off_lifts_the_restore_rights_blocker() {
    let scenario = Scenario::new()
        .database("can_restore", false)
        .config("rollback", "enabled", false);
    let (sim, r) = scenario.run(&["doctor", "--json"]);
    r.expect_code(0);
    assert!(
        finding(&r.json, "sql.restore-rights").is_none(),
        "{}",
        r.stdout
    );
    let up = sim.octoup(&["upgrade", "--yes", "--json"]);
    up.expect_code(0);
    assert!(up.all_nodes_on(TARGET), "{}", up.stdout);
    assert_eq!(up.json["database"]["rights"]["restore"], false);
    // What the blocker would have prevented: the login's RESTORE is refused as SQL Server
    // refuses it.
    let bak = up.json["backups"]["database"].as_str().unwrap().to_string();
    let restore = format!("RESTORE DATABASE [OctopusDeploy] FROM DISK = N'{bak}' WITH REPLACE");
    let out = sim.standin(&["sqlcmd", "-S", "sql", "-b", "-Q", &restore], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Msg 3110, Level 14")
            && err.contains("User does not have permission to RESTORE database 'OctopusDeploy'"),
        "{err}"
    );
    sim.assert_check();
}

#[test]
fn a_backup_volume_too_small_is_refused() {
    refused_with(
        Scenario::new()
            .database("size_gb", 40.0)
            .database("log_free_gb", 0.9)
            .database("backup_free_gb", 10.0),
        "sql.backup-space",
        "[database] backup_dir",
    );
}

#[test]
fn a_warning_accepted_by_id_lets_the_upgrade_go_ahead_and_is_journaled() {
    let scenario = Scenario::new().database("log_free_gb", 0.1);
    let (sim, r) = scenario.run(&["doctor", "--json"]);
    r.expect_code(0);
    let f = finding(&r.json, "sql.log-space").expect("the warning");
    assert_eq!(f["severity"], "warning");
    let up = sim.octoup(&["upgrade", "--yes", "--accept", "sql.log-space", "--json"]);
    up.expect_code(0);
    assert!(up.all_nodes_on(TARGET), "{}", up.stdout);
    assert_eq!(up.json["accepted"], serde_json::json!(["sql.log-space"]));
    let journal: Value = serde_json::from_str(
        &std::fs::read_to_string(up.json["journal"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let preflight = journal["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "preflight")
        .expect("a preflight step");
    assert_eq!(
        preflight["outputs"]["accepted"],
        serde_json::json!(["sql.log-space"]),
        "{preflight}"
    );
    sim.assert_check();
}

#[test]
fn a_query_the_server_refuses_is_an_unchecked_warning() {
    // Without VIEW SERVER STATE, sys.dm_server_services is refused (Msg 300).
    let (sim, r) = Scenario::new()
        .database("view_server_state", false)
        .run(&["doctor", "--json"]);
    r.expect_code(0);
    let f = finding(&r.json, "sql.ifi.unchecked").unwrap_or_else(|| panic!("{}", r.stdout));
    assert_eq!(f["severity"], "warning");
    assert!(
        f["found"].as_str().unwrap().contains("VIEW SERVER STATE"),
        "{f}"
    );
    // The other checks still ran.
    assert_eq!(r.json["hosting"], "self-managed");
    assert!(
        finding(&r.json, "sql.rights.unchecked").is_none(),
        "{}",
        r.stdout
    );
    assert_eq!(mutating(&sim.history()), Vec::<String>::new());
}

#[test]
fn azure_sql_database_is_detected_and_gets_the_copy_strategy() {
    let (sim, r) = Scenario::new()
        .database("hosting", "azure-sql-database")
        .run(&["doctor", "--json"]);
    let doctor = &r.json;
    assert_eq!(doctor["hosting"], "azure-sql-database");
    assert_eq!(
        doctor["database"]["strategy"]["strategy"], "azure-copy",
        "{}",
        r.stdout
    );
    assert!(
        doctor["database"]["strategy"]["why"]
            .as_str()
            .is_some_and(|w| w.contains("AS COPY OF")),
        "{}",
        r.stdout
    );
    // The stand-in refuses a backup there as Azure SQL Database does.
    let out = sim.standin(
        &[
            "sqlcmd",
            "-S",
            "sql",
            "-b",
            "-Q",
            "BACKUP DATABASE [OctopusDeploy] TO DISK = N'x.bak' WITH COPY_ONLY",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Msg 40510"),
        "{out:?}"
    );
}

#[test]
fn the_sqlcmd_stand_in_answers_in_sqlcmd_formats() {
    let sim = Scenario::new()
        .database("edition", "Express Edition (64-bit)")
        .start();
    let run = |args: &[&str]| {
        let mut all = vec!["sqlcmd", "-S", "sql"];
        all.extend_from_slice(args);
        let out = sim.standin(&all, &[]);
        (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // Default format: a header row, dashes, the row, "(1 rows affected)".
    let (out, _) = run(&["-Q", "SELECT SERVERPROPERTY('EngineEdition') AS e"]);
    assert_eq!(out.trim_end(), "e\n-\n4\n\n(1 rows affected)");
    let (out, _) = run(&[
        "-h",
        "-1",
        "-W",
        "-s",
        "|",
        "-Q",
        "SET NOCOUNT ON; SELECT N'x', SERVERPROPERTY('Edition'), DB_ID(N'rdsadmin')",
    ]);
    assert_eq!(out.trim_end(), "x|Express Edition (64-bit)|NULL");
    let (_, err) = run(&["-Q", "SELECT name FROM sys.nothing"]);
    assert!(
        err.contains("Msg 208") && err.contains("Invalid object name 'sys.nothing'"),
        "{err}"
    );
    let (_, err) = run(&["-Q", "SELECT NOPE(1)"]);
    assert!(err.contains("Msg 195"), "{err}");
}
