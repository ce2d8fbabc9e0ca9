//! `octoup rehearse` on the Windows host: a spare node of the simulator (`spare_nodes = 1`,
//! outside the installation) installs the staged MSI, makes a rehearsal instance against
//! the disarmed copy and runs a timed `database --upgrade`. No Docker engine is involved.
//! Every test proves production was not touched, the checker passes, and what the
//! opt-in puts on the vendor CLI's command line is in no file octoup wrote.

use std::path::Path;
use std::time::{Duration, Instant};

use octoup_testkit::*;
use serde_json::Value;

#[cfg(unix)]
use super::rehearse::ctrl_c;
use super::rehearse::{
    TARGET, assert_event, cleaned_after_kill, nothing_left, phases, plan_uses, production,
    scratch_exists, spawn_rehearsal, touching_production,
};

const SPARE: &str = "OCTO-SPARE-01";

/// An installation with a spare node, set up for Windows rehearsals to `TARGET`
/// (`secret_arguments` as given).
fn windows_rehearsable(s: Scenario, opt_in: bool) -> Sim {
    let sim = s.spare_nodes(1).start();
    let key = master_key(&sim);
    let key_file = sim.dir().join("rehearsal-master-key.txt");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let data = sim.dir().join("rehearsal-data");
    sim.edit_config(|cfg| {
        let r = cfg["rehearsal"]
            .as_table_mut()
            .expect("up wrote [rehearsal.windows]");
        r.insert("host".into(), "windows".into());
        r.insert(
            "data_dir".into(),
            data.to_string_lossy().into_owned().into(),
        );
        r.insert(
            "master_key_file".into(),
            key_file.to_string_lossy().into_owned().into(),
        );
        r["windows"]
            .as_table_mut()
            .unwrap()
            .insert("secret_arguments".into(), opt_in.into());
    });
    sim
}

fn master_key(sim: &Sim) -> String {
    sim.state()["secrets"]["master_key"]
        .as_str()
        .expect("the installation's master key")
        .to_string()
}

fn spare_instances(sim: &Sim) -> Vec<Value> {
    sim.state()["spare_nodes"][0]["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// What touched production from `from` on: events on the spare node are not production.
fn touched(h: &[Value], from: usize, scratch: &str) -> Vec<String> {
    let elsewhere: Vec<Value> = h[from..]
        .iter()
        .filter(|e| e["node"] != SPARE)
        .cloned()
        .collect();
    touching_production(&elsewhere, 0, scratch)
}

/// Files under `dir` (recursively) that hold `secret`.
fn files_holding(dir: &Path, secret: &str) -> Vec<String> {
    let mut texts = Vec::new();
    files_under(dir, &mut texts);
    texts
        .into_iter()
        .filter(|(_, text)| text.contains(secret))
        .map(|(path, _)| path)
        .collect()
}

#[test]
fn a_windows_rehearsal_is_go_times_database_upgrade_and_the_plan_uses_it() {
    let sim = windows_rehearsable(
        Scenario::new().spec("[durations]\ndb_upgrade = 1500\n"),
        true,
    );
    let before = production(&sim);
    let start = sim.history().len();
    let r = sim.octoup(&["rehearse", "--to", TARGET, "--json"]);
    r.expect_code(0);
    let j = &r.json;
    assert_eq!(j["status"], "go", "{}\n{}", r.stdout, r.stderr);
    assert_eq!(j["host"], "windows", "{}", r.stdout);
    assert_eq!(
        phases(j),
        [
            "backup",
            "verify",
            "restore",
            "disarm",
            "install",
            "instance",
            "database-upgrade",
            "start",
            "checks"
        ],
        "{}",
        r.stdout
    );
    let migrations = j["phases"][6]["seconds"].as_f64().unwrap();
    // 1500 simulated seconds at 2 ms each: at least 3 s of real time.
    assert!(migrations >= 3.0, "{migrations}");
    let w = &j["windows"];
    assert_eq!(w["node"], SPARE, "{}", r.stdout);
    assert!(
        w["upgrade_status"]
            .as_str()
            .is_some_and(|s| s.contains("\"IsUpgradeRequired\":true")),
        "database-upgrade-status is recorded: {w}"
    );
    assert_eq!(j["teardown"]["done"], true, "{}", r.stdout);
    let scratch = j["scratch_database"].as_str().unwrap();
    let id = j["id"].as_str().unwrap();
    let instance = w["instance"].as_str().unwrap();

    let h = sim.history();
    let t = touched(&h, start, scratch);
    assert!(t.is_empty(), "production was touched: {t:#?}");
    for kind in [
        "spare-node-installed",
        "rehearsal-instance-created",
        "rehearsal-instance-started",
        "rehearsal-instance-stopped",
        "rehearsal-instance-deleted",
    ] {
        assert_event(&h[start..], kind, |e| e["node"] == SPARE);
    }
    assert_event(&h, "rehearsal-migration-finished", |e| {
        e["database"] == scratch
    });
    // The opt-in's secret on the vendor CLI's command line is recorded, never a leak.
    assert_event(&h, "secret-argument", |e| {
        e["node"] == SPARE && e["which"] == "master key"
    });
    assert_eq!(count(&h, "secret-leak"), 0, "{}", kinds(&h));
    assert_eq!(count(&h, "db-upgrade-started"), 0);
    assert_eq!(production(&sim), before);
    sim.assert_check();
    assert!(
        !scratch_exists(&sim, scratch),
        "{}",
        sim.state()["instance_dbs"]
    );
    assert!(spare_instances(&sim).is_empty(), "{instance} is left");
    assert!(
        j["teardown"]["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a
                .as_str()
                .unwrap()
                .contains(&format!("deleted the instance {instance}"))),
        "{}",
        r.stdout
    );
    // What teardown leaves on the spare node is said, not found later.
    assert!(
        r.stdout.contains("left Octopus ") && r.stdout.contains("installed on the spare node"),
        "{}",
        r.stdout
    );

    // The master key and the SQL password are in no output and no file octoup wrote.
    let key = master_key(&sim);
    let password = sim.state()["secrets"]["sql_password"]
        .as_str()
        .unwrap()
        .to_string();
    for secret in [&key, &password] {
        assert!(!r.stdout.contains(secret.as_str()) && !r.stderr.contains(secret.as_str()));
        let state = sim.dir().join("octoup-state");
        assert!(
            files_holding(&state, secret).is_empty(),
            "{:?}",
            files_holding(&state, secret)
        );
    }

    // The plan estimates the database upgrade from the timed `database --upgrade`.
    plan_uses(&sim, id, migrations);
}

#[test]
fn a_failing_migration_on_the_windows_host_is_no_go_with_the_error() {
    let error = "Script0342 - Feed names: Cannot insert duplicate key row in object 'dbo.Feed' with unique index 'IX_Feed_Name'";
    let sim = windows_rehearsable(Scenario::new().database("migration_failure", error), true);
    let before = production(&sim);
    let start = sim.history().len();
    let r = sim.octoup(&["rehearse", "--to", TARGET, "--json"]);
    r.expect_code(3);
    let j = &r.json;
    assert_eq!(j["status"], "no-go", "{}", r.stdout);
    let reasons = j["reasons"].as_array().unwrap();
    assert!(
        reasons.iter().any(|x| x
            .as_str()
            .unwrap()
            .contains("the migrations failed: `database --upgrade`")
            && x.as_str().unwrap().contains("Script0342")),
        "{}",
        r.stdout
    );
    assert!(
        j["error"]
            .as_str()
            .is_some_and(|e| e.contains("IX_Feed_Name")),
        "{}",
        r.stdout
    );
    assert!(
        j["log_excerpt"]
            .as_str()
            .is_some_and(|e| e.contains("Upgrading database")),
        "{}",
        r.stdout
    );
    assert!(!phases(j).contains(&"start"), "{}", r.stdout);
    assert_eq!(j["teardown"]["done"], true, "{}", r.stdout);
    let scratch = j["scratch_database"].as_str().unwrap();
    let h = sim.history();
    assert_event(&h, "rehearsal-migration-failed", |e| {
        e["database"] == scratch
    });
    let t = touched(&h, start, scratch);
    assert!(t.is_empty(), "production was touched: {t:#?}");
    assert_eq!(production(&sim), before);
    sim.assert_check();
    assert!(!scratch_exists(&sim, scratch));
    assert!(spare_instances(&sim).is_empty());
}

#[test]
fn without_the_opt_in_the_windows_host_is_refused_before_anything_is_made() {
    let sim = windows_rehearsable(Scenario::new(), false);
    let start = sim.history().len();
    let r = sim.octoup(&["rehearse", "--to", TARGET, "--json"]);
    r.expect_code(2);
    let said = format!("{}{}", r.stdout, r.stderr);
    for says in [
        "--masterKey",
        "password of the SQL login",
        SPARE,
        "I5",
        "https://octopus.com/docs/octopus-rest-api/octopus.server.exe-command-line/database",
        "If omitted, the value from the config file will be used",
        "host = \\\"docker\\\"",
        "integrated_security = true",
        "secret_arguments = true",
    ] {
        assert!(
            said.contains(says) || said.contains(&says.replace("\\\"", "\"")),
            "{says}: {said}"
        );
    }
    let h = sim.history();
    for kind in [
        "db-backup-created",
        "db-restored-as",
        "standin-invoked",
        "spare-node-installed",
        "rehearsal-instance-created",
    ] {
        assert_eq!(
            count(&h[start..], kind),
            0,
            "{kind}: {}",
            kinds(&h[start..])
        );
    }
    let journal = sim.dir().join("octoup-state").join("rehearsals");
    assert!(
        std::fs::read_dir(&journal).map_or(true, |mut d| d.next().is_none()),
        "nothing journaled"
    );
}

#[test]
fn a_production_node_as_the_spare_is_refused_with_the_reason() {
    let sim = windows_rehearsable(Scenario::new().nodes(2), true);
    sim.edit_config(|cfg| {
        cfg["rehearsal"]["windows"]["node"]
            .as_table_mut()
            .unwrap()
            .insert("name".into(), "octo-node-02".into());
    });
    let r = sim.octoup(&["rehearse", "--to", TARGET, "--json"]);
    r.expect_code(2);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(
        said.contains("[rehearsal.windows.node] name")
            && said.contains("OCTO-NODE-02")
            && said.contains("never runs on a production node"),
        "{said}"
    );
    // The same address as the single node's [server] url is refused too.
    let one = windows_rehearsable(Scenario::new(), true);
    let url = one.read_config()["server"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    one.edit_config(|cfg| {
        cfg["rehearsal"]["windows"]["node"]
            .as_table_mut()
            .unwrap()
            .insert("url".into(), url.as_str().into());
    });
    let r = one.octoup(&["rehearse", "--to", TARGET, "--json"]);
    r.expect_code(2);
    let said = format!("{}{}", r.stdout, r.stderr);
    assert!(
        said.contains("has the address") && said.contains("production node"),
        "{said}"
    );
    assert_eq!(one.count("db-backup-created"), 0);
}

/// Waits for the journal to show a rehearsal instance that was made and a migration
/// under way; the rehearsal's id.
fn wait_for_upgrade(sim: &Sim) -> String {
    let dir = sim.dir().join("octoup-state").join("rehearsals");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "no rehearsal instance appeared");
        let found = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|t| serde_json::from_str::<Value>(&t).ok())
            .find(|r| {
                r["phases"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p["name"] == "instance"))
            })
            .and_then(|r| r["id"].as_str().map(str::to_string));
        if let Some(id) = found
            && sim.count("rehearsal-migration-started") > 0
        {
            return id;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_killed_windows_rehearsal_is_torn_down_by_cleanup() {
    // Migrations of 20000 simulated seconds: 40 s, long enough to kill octoup during them.
    let sim = windows_rehearsable(
        Scenario::new().spec("[durations]\ndb_upgrade = 20000\n"),
        true,
    );
    let before = production(&sim);
    let mut child = spawn_rehearsal(&sim, false);
    let id = wait_for_upgrade(&sim);
    child.kill().expect("kill octoup");
    let _ = child.wait();
    assert_eq!(spare_instances(&sim).len(), 1, "the kill left the instance");

    let cleaned = cleaned_after_kill(&sim, &id);
    let scratch = cleaned["scratch_database"].as_str().unwrap();
    assert!(
        spare_instances(&sim).is_empty(),
        "{:?}",
        spare_instances(&sim)
    );
    assert!(!scratch_exists(&sim, scratch));
    let h = sim.history();
    assert_event(&h, "rehearsal-instance-deleted", |e| e["node"] == SPARE);
    assert_eq!(production(&sim), before);
    sim.assert_check();
    nothing_left(&sim);
}

#[cfg(unix)]
#[test]
fn ctrl_c_tears_the_windows_rehearsal_down_at_once() {
    let sim = windows_rehearsable(
        Scenario::new().spec("[durations]\ndb_upgrade = 20000\n"),
        true,
    );
    let child = spawn_rehearsal(&sim, true);
    wait_for_upgrade(&sim);
    let j = ctrl_c(child);
    assert!(
        spare_instances(&sim).is_empty(),
        "{:?}",
        spare_instances(&sim)
    );
    assert!(!scratch_exists(
        &sim,
        j["scratch_database"].as_str().unwrap()
    ));
    sim.assert_check();
}

#[test]
fn a_windows_rehearsal_against_a_rehearsal_sql_server_migrates_the_copy_there() {
    let sim = windows_rehearsable(Scenario::new().rehearsal_sql_server(), true);
    let start = sim.history().len();
    let r = sim.octoup(&["rehearse", "--to", TARGET, "--json"]);
    r.expect_code(0);
    let j = &r.json;
    assert_eq!(j["status"], "go", "{}\n{}", r.stdout, r.stderr);
    assert_eq!(j["host"], "windows", "{}", r.stdout);
    let scratch = j["scratch_database"].as_str().unwrap();
    let h = sim.history();
    let after = &h[start..];
    // The spare node's instance upgraded the copy where it was restored, and only there:
    // production's server took the backup and nothing else.
    for kind in [
        "db-restored-as",
        "db-rows-changed",
        "rehearsal-migration-finished",
        "db-dropped",
    ] {
        let of_kind: Vec<&Value> = after.iter().filter(|e| e["kind"] == kind).collect();
        assert!(
            of_kind
                .iter()
                .any(|e| e["server"] == "rehearsal" && e["database"] == scratch),
            "{kind} on the rehearsal server: {after:#?}"
        );
        assert!(
            of_kind.iter().all(|e| e["server"] == "rehearsal"),
            "{kind} on production: {of_kind:#?}"
        );
    }
    assert!(
        after
            .iter()
            .any(|e| e["kind"] == "db-backup-created" && e["server"] != "rehearsal"),
        "production took the backup: {after:#?}"
    );
    assert!(spare_instances(&sim).is_empty(), "the instance is left");
}
