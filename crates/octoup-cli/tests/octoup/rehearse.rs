//! `octoup rehearse` against the simulator and a real Docker engine: the simulator plays
//! the vendor's container (`octoup-sim image`), the SQL Server is the simulator's, reached
//! only through octoup's relay on an internal network. Every test proves production was not
//! touched: no event on the production database or nodes in the simulator's history, and
//! the invariant checker (R1: no copy started armed; I5: no secret on a command line).

use std::time::{Duration, Instant};

use octoup_testkit::*;
use serde_json::Value;

pub(crate) const TARGET: &str = "2024.3.13050";

/// A one-node installation set up for rehearsals to `TARGET`.
fn rehearsable(s: Scenario) -> Sim {
    let image = sim_image(TARGET);
    let sim = s.start();
    let key = sim.state()["secrets"]["master_key"]
        .as_str()
        .expect("the installation's master key")
        .to_string();
    let key_file = sim.dir().join("rehearsal-master-key.txt");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let data = sim.dir().join("rehearsal-data");
    sim.edit_config(|cfg| {
        let mut t = toml::Table::new();
        t.insert("image".into(), image.replace(TARGET, "{version}").into());
        t.insert(
            "data_dir".into(),
            data.to_string_lossy().into_owned().into(),
        );
        t.insert(
            "master_key_file".into(),
            key_file.to_string_lossy().into_owned().into(),
        );
        // The rehearsal SQL Server `up` wrote, when the scenario has one.
        if let Some(sql) = cfg.get("rehearsal").and_then(|r| r.get("sql")) {
            t.insert("sql".into(), sql.clone());
        }
        cfg.insert("rehearsal".into(), toml::Value::Table(t));
    });
    sim
}

/// The events from `from` on that touch production: anything but reads of it (API GETs,
/// sqlcmd, its COPY_ONLY backup and that backup's verification) and what happened to the
/// scratch database.
pub(crate) fn touching_production(h: &[Value], from: usize, scratch: &str) -> Vec<String> {
    // A copy's events name it as `copy`; every other event on the scratch database as
    // `database`.
    let on_scratch = |e: &Value| {
        [&e["database"], &e["copy"]]
            .iter()
            .any(|v| v.as_str().is_some_and(|d| d.eq_ignore_ascii_case(scratch)))
    };
    h[from..]
        .iter()
        .filter(|e| {
            let kind = e["kind"].as_str().unwrap_or("");
            match kind {
                "api-request" => e["method"].as_str().is_some_and(|m| m != "GET"),
                "standin-invoked" => e["program"] != "sqlcmd",
                "db-backup-created" => e["copy_only"] != true,
                // RDS's native backup reads production; a restore names the scratch database.
                "rds-task-created" => e["task_type"] != "BACKUP_DB" && !on_scratch(e),
                // The blob credential is a server object, not the database.
                "db-backup-verified" | "task-queued" | "task-started" | "task-finished"
                | "rds-task-finished" | "credential-set" => false,
                "fault-fired" => false,
                _ => !on_scratch(e),
            }
        })
        .map(|e| e.to_string())
        .collect()
}

/// `octoup plan --to TARGET` estimates the database upgrade from rehearsal `id`'s
/// `seconds`; its `upgrade-database` step.
pub(crate) fn plan_uses(sim: &Sim, id: &str, seconds: f64) -> Value {
    let plan = sim.octoup(&["plan", "--to", TARGET, "--json"]);
    plan.expect_code(0);
    assert_eq!(plan.json["rehearsal"]["id"], id, "{}", plan.stdout);
    let step = plan.json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "upgrade-database")
        .expect("the database upgrade is planned")
        .clone();
    assert_eq!(step["estimate_seconds"].as_f64(), Some(seconds), "{step}");
    step
}

/// `octoup rehearse --to TARGET --json`, which exits `code`: where the history stood before
/// it, and what it printed.
fn rehearse_json(sim: &Sim, code: i32) -> (usize, Ran) {
    let start = sim.history().len();
    let r = sim.octoup(&["rehearse", "--to", TARGET, "--json"]);
    r.expect_code(code);
    (start, r)
}

/// The phases a rehearsal whose copy is a restored backup measures, in order.
const RESTORED: [&str; 6] = [
    "backup",
    "verify",
    "restore",
    "disarm",
    "migrations-and-start",
    "checks",
];

/// The names of a rehearsal report's phases, in order.
pub(crate) fn phases(report: &Value) -> Vec<&str> {
    report["phases"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default()
}

/// An event of `kind` matching `pred` is in `h`.
pub(crate) fn assert_event(h: &[Value], kind: &str, pred: impl Fn(&Value) -> bool) {
    assert!(find(h, kind, pred).is_some(), "no {kind}: {}", kinds(h));
}

pub(crate) fn scratch_exists(sim: &Sim, scratch: &str) -> bool {
    sim.state()["instance_dbs"]["databases"]
        .as_array()
        .is_some_and(|dbs| dbs.iter().any(|d| d["name"] == scratch))
}

pub(crate) fn production(sim: &Sim) -> Value {
    let s = sim.state();
    serde_json::json!({
        "schema": s["database"]["schema_version"],
        "maintenance": s["database"]["maintenance"]["is_in_maintenance_mode"],
        "nodes": s["nodes"].as_array().unwrap().iter().map(|n| serde_json::json!([
            n["name"], n["service"], n["drain"], n["installed_version"]
        ])).collect::<Vec<_>>(),
    })
}

#[test]
fn a_rehearsal_is_go_measures_the_migrations_and_the_plan_uses_them() {
    let sim = rehearsable(Scenario::new().spec("[durations]\ndb_upgrade = 1500\n"));
    let before = production(&sim);
    let start = sim.history().len();
    let r = sim.octoup(&["rehearse", "--to", TARGET, "--json"]);
    r.expect_code(0);
    let j = &r.json;
    assert_eq!(j["status"], "go", "{}", r.stdout);
    assert_eq!(phases(j), RESTORED, "{}", r.stdout);
    let migrations = j["phases"][4]["seconds"].as_f64().unwrap();
    // 1500 simulated seconds at 2 ms each: at least 3 s of real time.
    assert!(migrations >= 3.0, "{migrations}");
    assert_eq!(j["teardown"]["done"], true, "{}", r.stdout);
    // What ran is recorded exactly (a local image has no registry digest: its id).
    assert!(
        j["image_digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{}",
        r.stdout
    );
    let scratch = j["scratch_database"].as_str().unwrap();
    let id = j["id"].as_str().unwrap();

    let h = sim.history();
    let touched = touching_production(&h, start, scratch);
    assert!(touched.is_empty(), "production was touched: {touched:#?}");
    assert!(
        find(&h, "db-restored-as", |e| e["database"] == scratch).is_some(),
        "{}",
        kinds(&h)
    );
    assert!(
        find(&h, "rehearsal-migration-finished", |e| e["database"]
            == scratch)
        .is_some(),
        "{}",
        kinds(&h)
    );
    assert!(
        find(&h, "db-rows-changed", |e| e["database"] == scratch).is_some(),
        "disarmed: {}",
        kinds(&h)
    );
    assert_eq!(count(&h, "db-upgrade-started"), 0);
    assert_eq!(production(&sim), before);
    sim.assert_check();
    assert!(
        rehearsal_leftovers(id).is_empty(),
        "{:?}",
        rehearsal_leftovers(id)
    );
    assert!(
        !scratch_exists(&sim, scratch),
        "{}",
        sim.state()["instance_dbs"]
    );

    // The plan estimates the database upgrade from what the rehearsal measured.
    let step = plan_uses(&sim, id, migrations);
    assert!(
        step["note"]
            .as_str()
            .unwrap()
            .contains(&format!("measured in rehearsal {id} on ")),
        "{step}"
    );
    let text = sim.octoup(&["plan", "--to", TARGET]);
    assert!(
        text.stdout.contains("measured in rehearsal"),
        "{}",
        text.stdout
    );
}

#[test]
fn a_failing_migration_is_no_go_with_the_error_and_production_is_untouched() {
    let sim = rehearsable(Scenario::new().database(
        "migration_failure",
        "Script0342 - Feed names: Cannot insert duplicate key row in object 'dbo.Feed' with unique index 'IX_Feed_Name'",
    ));
    let before = production(&sim);
    let start = sim.history().len();
    let r = sim.octoup(&["rehearse", "--to", TARGET, "--json"]);
    r.expect_code(3);
    let j = &r.json;
    assert_eq!(j["status"], "no-go", "{}", r.stdout);
    let reasons = j["reasons"].to_string();
    assert!(
        reasons.contains("migrations or the start failed"),
        "{reasons}"
    );
    assert!(reasons.contains("duplicate key"), "{reasons}");
    assert!(
        j["log_excerpt"]
            .as_str()
            .is_some_and(|l| l.contains("IX_Feed_Name")),
        "{}",
        r.stdout
    );
    assert_eq!(j["teardown"]["done"], true, "{}", r.stdout);
    let scratch = j["scratch_database"].as_str().unwrap();
    let h = sim.history();
    let touched = touching_production(&h, start, scratch);
    assert!(touched.is_empty(), "production was touched: {touched:#?}");
    assert!(
        find(&h, "rehearsal-migration-failed", |e| e["database"]
            == scratch)
        .is_some(),
        "{}",
        kinds(&h)
    );
    assert_eq!(production(&sim), before);
    sim.assert_check();
    assert!(rehearsal_leftovers(j["id"].as_str().unwrap()).is_empty());
    assert!(!scratch_exists(&sim, scratch));

    // The text says no-go and shows the server's last lines.
    let text = sim.octoup(&["rehearse", "--to", TARGET]);
    text.expect_code(3);
    assert!(text.stdout.contains("NO-GO"), "{}", text.stdout);
    assert!(text.stdout.contains("| "), "{}", text.stdout);
}

/// Waits for the rehearsal's journal to name a running container; its id.
fn wait_for_container(sim: &Sim) -> String {
    let dir = sim.dir().join("octoup-state").join("rehearsals");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "no rehearsal container appeared");
        if let Some(id) = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|t| serde_json::from_str::<Value>(&t).ok())
            .find(|r| {
                r["phases"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p["name"] == "disarm"))
            })
            .and_then(|r| r["id"].as_str().map(str::to_string))
            && rehearsal_leftovers(&id)
                .iter()
                .any(|l| l.starts_with("container "))
        {
            return id;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_killed_rehearsal_is_torn_down_by_cleanup() {
    // Migrations of 20000 simulated seconds: 40 s, long enough to kill octoup during them.
    let sim = rehearsable(Scenario::new().spec("[durations]\ndb_upgrade = 20000\n"));
    let before = production(&sim);
    let mut child = spawn_rehearsal(&sim, false);
    let id = wait_for_container(&sim);
    child.kill().expect("kill octoup");
    let _ = child.wait();
    assert!(
        !rehearsal_leftovers(&id).is_empty(),
        "the kill left the container"
    );

    let cleaned = cleaned_after_kill(&sim, &id);
    let scratch = cleaned["scratch_database"].as_str().unwrap();
    assert!(
        rehearsal_leftovers(&id).is_empty(),
        "{:?}",
        rehearsal_leftovers(&id)
    );
    assert!(
        !scratch_exists(&sim, scratch),
        "{}",
        sim.state()["instance_dbs"]
    );
    assert_eq!(production(&sim), before);
    sim.assert_check();
    nothing_left(&sim);
}

/// `octoup rehearse --to TARGET --json` in the background (its output piped or dropped).
pub(crate) fn spawn_rehearsal(sim: &Sim, output: bool) -> std::process::Child {
    let pipe = || {
        if output {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        }
    };
    sim.octoup_cmd(&["rehearse", "--to", TARGET, "--json"])
        .stdout(pipe())
        .stderr(pipe())
        .spawn()
        .expect("start octoup rehearse")
}

/// `octoup rehearse --cleanup` after rehearsal `id` was killed: the one record it tore
/// down, interrupted and done.
pub(crate) fn cleaned_after_kill(sim: &Sim, id: &str) -> Value {
    let c = sim.octoup(&["rehearse", "--cleanup", "--json"]);
    c.expect_code(0);
    let cleaned = c.json["cleaned"].as_array().expect("cleaned").clone();
    assert_eq!(cleaned.len(), 1, "{}", c.stdout);
    assert_eq!(cleaned[0]["id"], id);
    assert_eq!(cleaned[0]["status"], "interrupted");
    assert_eq!(cleaned[0]["teardown"]["done"], true, "{}", c.stdout);
    cleaned[0].clone()
}

/// Nothing is left for a second cleanup.
pub(crate) fn nothing_left(sim: &Sim) {
    let again = sim.octoup(&["rehearse", "--cleanup", "--json"]);
    again.expect_code(0);
    assert_eq!(again.json["cleaned"].as_array().map(Vec::len), Some(0));
}

/// SIGINT (a terminal's Ctrl-C) to a running rehearsal: it exits 130 at once, without
/// waiting for the migrations, torn down; its report.
#[cfg(unix)]
pub(crate) fn ctrl_c(child: std::process::Child) -> Value {
    let started = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it waited for the migrations"
    );
    let j: Value = serde_json::from_slice(&out.stdout).expect("the report");
    assert_eq!(j["status"], "interrupted", "{j}");
    assert_eq!(j["teardown"]["done"], true, "{j}");
    j
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_the_rehearsal_and_tears_it_down_at_once() {
    let sim = rehearsable(Scenario::new().spec("[durations]\ndb_upgrade = 20000\n"));
    let child = spawn_rehearsal(&sim, true);
    let id = wait_for_container(&sim);
    let j = ctrl_c(child);
    assert!(
        rehearsal_leftovers(&id).is_empty(),
        "{:?}",
        rehearsal_leftovers(&id)
    );
    assert!(!scratch_exists(
        &sim,
        j["scratch_database"].as_str().unwrap()
    ));
    sim.assert_check();
}

#[test]
fn no_secret_reaches_the_output_the_journal_the_log_or_the_docker_command_line() {
    let sim = rehearsable(Scenario::new());
    let secrets = sim.secrets();
    let (admin_key, sql_password, master_key) = (&secrets[0], &secrets[2], &secrets[3]);
    let mut texts = Vec::new();
    for args in [
        vec!["rehearse", "--to", TARGET, "--verbose"],
        vec!["rehearse", "--to", TARGET, "--json"],
    ] {
        let out = sim.octoup_cmd(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        texts.push((
            format!("stdout of {args:?}"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ));
        texts.push((
            format!("stderr of {args:?}"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let state_dir = sim.dir().join("octoup-state");
    files_under(&state_dir, &mut texts);
    let log = texts
        .iter()
        .find(|(n, _)| n.contains("rehearsal-") && n.ends_with(".log"))
        .expect("the rehearsal's run log")
        .1
        .clone();
    // The container's secrets are named on docker's command line, never given there.
    assert!(log.contains("--env DB_CONNECTION_STRING "), "{log}");
    assert!(log.contains("--env MASTER_KEY "), "{log}");
    assert!(!log.contains("DB_CONNECTION_STRING="), "{log}");
    for (name, text) in &texts {
        for (what, secret) in [
            ("API key", admin_key),
            ("SQL password", sql_password),
            ("master key", master_key),
        ] {
            assert!(!text.contains(secret.as_str()), "the {what} is in {name}");
        }
    }
    // The simulator's container saw no secret in its own argv either (I5).
    sim.assert_check();
}

#[test]
fn a_recent_verified_backup_is_reused_when_the_config_allows_it() {
    let sim = rehearsable(Scenario::new());
    sim.edit_config(|cfg| {
        cfg["rehearsal"]
            .as_table_mut()
            .unwrap()
            .insert("reuse_backup_hours".into(), 24.into());
    });
    let first = sim.octoup(&["rehearse", "--to", TARGET, "--json"]);
    first.expect_code(0);
    assert!(
        first.json["backup"]["reused_from"].is_null(),
        "{}",
        first.stdout
    );
    let backups = sim.count("db-backup-created");
    let second = sim.octoup(&["rehearse", "--to", TARGET, "--json"]);
    second.expect_code(0);
    assert_eq!(
        second.json["backup"]["reused_from"], first.json["id"],
        "{}",
        second.stdout
    );
    assert_eq!(
        second.json["backup"]["files"],
        first.json["backup"]["files"]
    );
    assert!(
        !second.json["phases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "backup"),
        "{}",
        second.stdout
    );
    assert_eq!(
        sim.count("db-backup-created"),
        backups,
        "no second backup was taken"
    );
    sim.assert_check();
}

#[test]
fn on_azure_sql_database_the_copy_is_made_as_copy_of_and_dropped() {
    let sim = rehearsable(Scenario::new().database("hosting", "azure-sql-database"));
    let (start, r) = rehearse_json(&sim, 0);
    assert_eq!(r.json["copy_method"], "copy", "{}", r.stdout);
    assert_eq!(
        phases(&r.json),
        ["copy", "disarm", "migrations-and-start", "checks"],
        "{}",
        r.stdout
    );
    let scratch = r.json["scratch_database"].as_str().unwrap();
    let h = sim.history();
    assert_eq!(
        count(&h, "db-backup-created"),
        0,
        "Azure SQL Database allows no BACKUP"
    );
    let touched = touching_production(&h, start, scratch);
    assert!(touched.is_empty(), "production was touched: {touched:#?}");
    assert!(
        find(&h, "db-rows-changed", |e| e["database"] == scratch).is_some(),
        "{}",
        kinds(&h)
    );
    assert!(!scratch_exists(&sim, scratch));
    sim.assert_check();
}

/// A go rehearsal whose copy is a backup restored under the scratch name (`copy_method`):
/// the history shows the copy made under that name, nothing on production, and the scratch
/// database dropped at teardown. Its report.
fn restored_under_the_scratch_name_and_dropped(sim: &Sim, copy_method: &str) -> Value {
    let (start, r) = rehearse_json(sim, 0);
    assert_eq!(r.json["status"], "go", "{}", r.stdout);
    assert_eq!(r.json["copy_method"], copy_method, "{}", r.stdout);
    assert_eq!(phases(&r.json), RESTORED, "{}", r.stdout);
    let scratch = r.json["scratch_database"].as_str().unwrap();
    let h = sim.history();
    assert_event(&h[start..], "db-restored-as", |e| e["database"] == scratch);
    let touched = touching_production(&h, start, scratch);
    assert!(touched.is_empty(), "production was touched: {touched:#?}");
    assert_event(&h[start..], "db-dropped", |e| e["database"] == scratch);
    assert!(!scratch_exists(sim, scratch));
    assert_eq!(r.json["teardown"]["done"], true, "{}", r.stdout);
    sim.assert_check();
    r.json
}

#[test]
fn on_managed_instance_the_copy_is_a_backup_to_url_restored_under_a_new_name() {
    const CONTAINER: &str = "https://acct.blob.core.windows.net/octopus";
    const TOKEN: &str = "sv=2022-11-02&ss=b&sig=R3h3arsalS4sT0ken";
    let sim = rehearsable(
        Scenario::new()
            .database("hosting", "azure-sql-managed-instance")
            .config("database", "url", CONTAINER),
    );
    let token_file = sim.dir().join("sas-token.txt");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    sim.edit_config(|cfg| {
        cfg["database"].as_table_mut().unwrap().insert(
            "sas_token_file".into(),
            token_file.to_string_lossy().into_owned().into(),
        );
    });
    let start = sim.history().len();
    let report = restored_under_the_scratch_name_and_dropped(&sim, "restore-from-url");
    let backup = &report["backup"];
    assert_eq!(backup["media"], "url", "{report}");
    assert!(
        backup["files"][0]
            .as_str()
            .is_some_and(|f| f.starts_with(&format!("{CONTAINER}/"))),
        "{report}"
    );
    let h = sim.history();
    assert_event(&h[start..], "credential-set", |e| e["name"] == CONTAINER);
    // The blob is kept and reused like a disk backup; the SAS token reached sqlcmd only
    // through its environment: not in octoup's output, journal or logs (the checker's I5
    // covers sqlcmd's command line).
    sim.edit_config(|cfg| {
        cfg["rehearsal"]
            .as_table_mut()
            .unwrap()
            .insert("reuse_backup_hours".into(), 24.into());
    });
    let backups = sim.count("db-backup-created");
    let out = sim
        .octoup_cmd(&["rehearse", "--to", TARGET, "--verbose"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        sim.count("db-backup-created"),
        backups,
        "the blob was reused"
    );
    assert_eq!(sim.count("db-restored-as"), 2);
    let mut texts = vec![
        (
            "stdout".to_string(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ),
        (
            "stderr".to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        ("the JSON report".to_string(), report.to_string()),
    ];
    files_under(&sim.dir().join("octoup-state"), &mut texts);
    for (name, text) in &texts {
        assert!(!text.contains(TOKEN), "the SAS token is in {name}");
    }
    sim.assert_check();
}

#[test]
fn on_amazon_rds_the_copy_is_a_native_backup_restored_under_a_new_name() {
    // Multi-AZ: the scratch database is dropped with rds_drop_database (a plain DROP is
    // refused for a mirrored database).
    let sim = rehearsable(
        Scenario::new()
            .database("hosting", "amazon-rds")
            .database("multi_az", true)
            .config(
                "database",
                "rds_s3_arn",
                "arn:aws:s3:::octopus-backups/rehearsals",
            ),
    );
    let start = sim.history().len();
    let report = restored_under_the_scratch_name_and_dropped(&sim, "rds-restore");
    let scratch = report["scratch_database"].as_str().unwrap();
    let object = report["backup"]["files"][0].as_str().unwrap();
    assert_eq!(report["backup"]["media"], "s3", "{report}");
    assert!(
        object.starts_with("arn:aws:s3:::octopus-backups/rehearsals/"),
        "{report}"
    );
    let h = sim.history();
    assert_event(&h[start..], "rds-task-created", |e| {
        e["task_type"] == "RESTORE_DB" && e["database"] == scratch && e["s3_arn"] == object
    });
}

#[test]
fn on_google_cloud_sql_the_rehearsal_is_refused_with_the_documented_route() {
    let sim = rehearsable(Scenario::new().database("hosting", "google-cloud-sql"));
    let (start, r) = rehearse_json(&sim, 1);
    let error = r.json["error"].as_str().unwrap_or("");
    assert!(
        error.contains("no sysadmin or dbcreator") && error.contains("gcloud sql import bak"),
        "{}",
        r.stdout
    );
    let h = sim.history();
    assert_eq!(count(&h[start..], "db-backup-created"), 0, "{}", kinds(&h));
}

#[test]
fn without_a_docker_engine_the_rehearsal_fails_before_any_copy_and_says_so() {
    let sim = rehearsable(Scenario::new());
    sim.edit_config(|cfg| {
        cfg["rehearsal"]
            .as_table_mut()
            .unwrap()
            .insert("docker".into(), toml::Value::Array(vec!["false".into()]));
    });
    let start = sim.history().len();
    let r = sim.octoup(&["rehearse", "--to", TARGET, "--json"]);
    r.expect_code(1);
    assert_eq!(r.json["status"], "failed", "{}", r.stdout);
    assert!(
        r.json["reasons"].as_array().unwrap().is_empty(),
        "not a verdict: {}",
        r.stdout
    );
    let error = r.json["error"].as_str().unwrap();
    assert!(
        error.contains("Docker") && error.contains("[rehearsal] docker"),
        "{error}"
    );
    // Nothing was made, so nothing is left to tear down (a later rehearsal has no leftovers).
    assert_eq!(r.json["teardown"]["done"], true, "{}", r.stdout);
    let h = sim.history();
    assert_eq!(
        count(&h[start..], "db-backup-created"),
        0,
        "nothing was copied: {}",
        kinds(&h)
    );
    let text = sim.octoup(&["rehearse", "--to", TARGET]);
    text.expect_code(1);
    assert!(
        text.stdout.contains("says nothing about the upgrade"),
        "{}",
        text.stdout
    );
}

/// A rehearsable installation with a rehearsal SQL Server (`[rehearsal.sql]` kept from
/// what `octoup-sim up` wrote).
fn rehearsable_elsewhere(s: Scenario) -> Sim {
    let sim = rehearsable(s.rehearsal_sql_server());
    assert!(
        sim.dir().join("rehearsal-sql").join("state.json").is_file(),
        "no rehearsal SQL Server"
    );
    sim
}

/// The rehearsal SQL Server's state (`DIR/rehearsal-sql/state.json`).
fn rehearsal_server(sim: &Sim) -> Value {
    let text = std::fs::read_to_string(sim.dir().join("rehearsal-sql").join("state.json"))
        .expect("the rehearsal SQL Server's state");
    serde_json::from_str(&text).unwrap()
}

fn on_rehearsal_server(e: &Value) -> bool {
    e["server"] == "rehearsal"
}

#[test]
fn on_a_rehearsal_sql_server_production_sees_only_the_backup() {
    let sim = rehearsable_elsewhere(Scenario::new().spec("[durations]\ndb_upgrade = 1500\n"));
    let cfg = sim.read_config();
    let sql = &cfg["rehearsal"]["sql"];
    assert!(
        sql["backup_dir"]
            .as_str()
            .unwrap()
            .contains("rehearsal-sql"),
        "{sql}"
    );
    let password = rehearsal_server(&sim)["secrets"]["sql_password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(password, sim.secrets()[2]);
    let before = production(&sim);
    let (start, r) = rehearse_json(&sim, 0);
    let j = &r.json;
    assert_eq!(j["status"], "go", "{}", r.stdout);
    assert_eq!(phases(j), RESTORED, "{}", r.stdout);
    assert_eq!(
        j["sql_server"].as_str(),
        sql["sqlcmd"][sql["sqlcmd"].as_array().unwrap().len() - 6].as_str(),
        "the journal names the server: {}",
        r.stdout
    );
    let scratch = j["scratch_database"].as_str().unwrap();
    let id = j["id"].as_str().unwrap();
    let migrations = j["phases"][4]["seconds"].as_f64().unwrap();

    let h = sim.history();
    let after = &h[start..];
    // Production wrote the COPY_ONLY backup; the rehearsal server restored it from its
    // view of the share, was disarmed, migrated and dropped it.
    assert_event(after, "db-backup-created", |e| {
        !on_rehearsal_server(e) && e["copy_only"] == true
    });
    assert_event(after, "db-restored-as", |e| {
        on_rehearsal_server(e)
            && e["database"] == scratch
            && e["path"]
                .as_str()
                .is_some_and(|p| p.contains("rehearsal-sql"))
    });
    assert_event(after, "db-rows-changed", |e| {
        on_rehearsal_server(e) && e["database"] == scratch
    });
    assert_event(after, "rehearsal-migration-finished", |e| {
        on_rehearsal_server(e) && e["database"] == scratch
    });
    assert_event(after, "db-dropped", |e| {
        on_rehearsal_server(e) && e["database"] == scratch
    });
    let on_production: Vec<&Value> = after
        .iter()
        .filter(|e| !on_rehearsal_server(e))
        .filter(|e| {
            matches!(
                e["kind"].as_str(),
                Some(
                    "db-restored-as"
                        | "db-rows-changed"
                        | "db-dropped"
                        | "rehearsal-migration-started"
                )
            )
        })
        .collect();
    assert!(on_production.is_empty(), "{on_production:#?}");
    let touched = touching_production(&h, start, scratch);
    assert!(touched.is_empty(), "production was touched: {touched:#?}");
    assert_eq!(production(&sim), before);
    assert!(!scratch_exists(&sim, scratch));
    sim.assert_check();

    // The plan estimates from the rehearsal as it does for a copy on production's server.
    plan_uses(&sim, id, migrations);

    // The rehearsal server's SQL password is in no output and no state file of octoup.
    let mut texts = vec![
        ("stdout".to_string(), r.stdout.clone()),
        ("stderr".to_string(), r.stderr.clone()),
    ];
    files_under(&sim.dir().join("octoup-state"), &mut texts);
    for (name, text) in &texts {
        assert!(
            !text.contains(&password),
            "the rehearsal SQL password is in {name}"
        );
    }
}

#[test]
fn a_killed_rehearsal_on_a_rehearsal_sql_server_is_dropped_there_by_cleanup() {
    let sim = rehearsable_elsewhere(Scenario::new().spec("[durations]\ndb_upgrade = 20000\n"));
    let mut child = spawn_rehearsal(&sim, false);
    let id = wait_for_container(&sim);
    child.kill().expect("kill octoup");
    let _ = child.wait();
    let start = sim.history().len();
    let cleaned = cleaned_after_kill(&sim, &id);
    let scratch = cleaned["scratch_database"].as_str().unwrap();
    assert!(cleaned["sql_server"].is_string(), "{cleaned}");
    let h = sim.history();
    assert_event(&h[start..], "db-dropped", |e| {
        on_rehearsal_server(e) && e["database"] == scratch
    });
    assert!(
        rehearsal_server(&sim)["instance_dbs"]["databases"]
            .as_array()
            .is_none_or(|dbs| dbs.iter().all(|d| d["name"] != scratch)),
        "{}",
        rehearsal_server(&sim)["instance_dbs"]
    );
    assert!(rehearsal_leftovers(&id).is_empty());
    sim.assert_check();
    nothing_left(&sim);
}

/// Found by scripts/chaos-rehearse.sh: a `--cleanup` killed just after its `docker rm` was
/// sent left the engine removing the container, and the next cleanup was told "removal of
/// container … is already in progress" (and, for the network, "has active endpoints"): it
/// exited 1 with the teardown not done, though the engine was about to finish it. Now a
/// removal the engine is busy with is asked again until it is done.
#[test]
fn a_removal_the_engine_is_already_busy_with_is_waited_for_not_failed() {
    let sim = rehearsable(Scenario::new());
    // The Docker CLI, answering each removal once as an engine still busy with an earlier,
    // killed teardown's does; then the real engine.
    let wrapper = sim.dir().join("busy-docker.sh");
    std::fs::write(
        &wrapper,
        format!(
            r#"#!/bin/sh
case "$1 $2" in
    "rm --force") what=container ;;
    "network rm") what=network ;;
    *) exec docker "$@" ;;
esac
marker="{dir}/busy-$what"
if [ ! -e "$marker" ]; then
    : >"$marker"
    if [ "$what" = container ]; then
        echo "Error response from daemon: removal of container octoup-rehearsal is already in progress" >&2
    else
        echo "Error response from daemon: error while removing network: network octoup-rehearsal has active endpoints" >&2
    fi
    exit 1
fi
exec docker "$@"
"#,
            dir = sim.dir().display()
        ),
    )
    .unwrap();
    sim.edit_config(|cfg| {
        let r = cfg.get_mut("rehearsal").unwrap().as_table_mut().unwrap();
        r.insert(
            "docker".into(),
            toml::Value::Array(vec![
                "sh".into(),
                wrapper.to_string_lossy().into_owned().into(),
            ]),
        );
    });
    let (_, r) = rehearse_json(&sim, 0);
    assert!(sim.dir().join("busy-container").exists(), "{}", r.stdout);
    assert!(sim.dir().join("busy-network").exists(), "{}", r.stdout);
    assert_eq!(r.json["teardown"]["done"], true, "{}", r.stdout);
    let id = r.json["id"].as_str().unwrap();
    assert!(
        rehearsal_leftovers(id).is_empty(),
        "{:?}",
        rehearsal_leftovers(id)
    );
    sim.assert_check();
    nothing_left(&sim);
}
