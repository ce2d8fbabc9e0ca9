//! `up`/`down`, the generated octoup.toml, and the `check`, `history`, `fault`, `state`
//! commands.

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use octoup_testkit::sim_bin;
use predicates::str::contains;

use crate::scene::{NEW, Scene};

fn sim() -> Command {
    let mut cmd = Command::new(sim_bin());
    cmd.timeout(Duration::from_secs(60));
    cmd
}

fn answers(port: u16) -> bool {
    octoup_sim::up::http_status(port, "GET", "/api").is_ok()
}

fn strings(v: &toml::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn up_writes_the_config_and_down_stops_the_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sim");
    let spec = tmp.path().join("spec.toml");
    std::fs::write(&spec, "time_scale = 0.001\n").unwrap();
    sim()
        .args(["up", "--nodes", "2", "--version", "2024.2.9409", "--dir"])
        .arg(&dir)
        .arg("--spec")
        .arg(&spec)
        .assert()
        .success()
        .stdout(contains("OCTO-NODE-02"));
    let dir = dir.canonicalize().unwrap();
    let d = dir.display().to_string();
    let text = std::fs::read_to_string(dir.join("octoup.toml")).unwrap();
    let config: toml::Value = toml::from_str(&text).unwrap();
    let mut sections: Vec<&str> = config
        .as_table()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    sections.sort();
    assert_eq!(
        sections,
        [
            "backup",
            "database",
            "drain",
            "installer",
            "nodes",
            "server",
            "state",
            "versions"
        ]
    );
    let server = &config["server"];
    assert_eq!(server["instance"].as_str(), Some("OctopusServer"));
    assert_eq!(
        server["api_key_file"].as_str(),
        Some(dir.join("api-key.txt").to_str().unwrap())
    );
    let exe = strings(&server["server_exe"]);
    assert_eq!(exe[1..], ["exe", "--dir", &d, "--node", "OCTO-NODE-01"]);
    assert!(Path::new(&exe[0]).is_absolute());
    let install = strings(&config["installer"]["install"]);
    assert_eq!(
        install[1..6],
        ["msiexec", "--dir", &d, "--node", "OCTO-NODE-01"]
    );
    assert_eq!(
        install[6..],
        [
            "/i",
            "{installer}",
            "/quiet",
            "RUNMANAGERONEXIT=no",
            "/norestart",
            "/l*v",
            "{log}"
        ]
    );
    assert!(
        config["installer"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/octopus/Octopus.{version}-x64.msi")
    );
    assert!(
        config["versions"]["feed"]
            .as_str()
            .unwrap()
            .ends_with("/download/upgrade/v3")
    );
    let db = &config["database"];
    assert_eq!(db["name"].as_str(), Some("OctopusDeploy"));
    // `-S` names the simulator's SQL Server port, which answers while the daemon runs.
    let sql = octoup_sim::state::Store::open(&dir)
        .unwrap()
        .snapshot()
        .unwrap();
    assert_ne!(sql.sql_port, 0);
    let server = format!("127.0.0.1,{}", sql.sql_port);
    assert_eq!(sql.sql_server, server);
    assert!(std::net::TcpStream::connect(("127.0.0.1", sql.sql_port)).is_ok());
    assert_eq!(
        strings(&db["sqlcmd"])[1..],
        [
            "sqlcmd", "--dir", &d, "-S", &server, "-d", "master", "-U", "octoup", "-b"
        ]
    );
    assert_eq!(
        db["password_file"].as_str(),
        Some(dir.join("sql-password.txt").to_str().unwrap())
    );
    assert!(Path::new(db["backup_dir"].as_str().unwrap()).is_dir());
    assert_eq!(config["drain"]["wait_seconds"].as_integer(), Some(60));
    assert_eq!(config["drain"]["cancel_tasks"].as_bool(), Some(false));
    let nodes = config["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["primary"].as_bool(), Some(true));
    assert_eq!(nodes[1]["primary"].as_bool(), Some(false));
    assert_eq!(strings(&nodes[1]["server_exe"])[5], "OCTO-NODE-02");

    // Secrets: in files, never in the config.
    let key = std::fs::read_to_string(dir.join("api-key.txt")).unwrap();
    assert!(
        key.starts_with("API-")
            && key.len() == 30
            && key[4..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    );
    let password = std::fs::read_to_string(dir.join("sql-password.txt")).unwrap();
    assert!(!text.contains(&key) && !text.contains(&password));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("api-key.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Every node answers, with the requested version; the stand-in argv works as written.
    let store = octoup_sim::state::Store::open(&dir).unwrap();
    let state = store.snapshot().unwrap();
    assert!(state.daemon.is_some());
    assert!(state.nodes.iter().all(|n| answers(n.api_port)));
    let out = std::process::Command::new(&exe[0])
        .args(&exe[1..])
        .arg("version")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), NEW);

    // With the daemon up, a stopped node refuses connections and `--start` returns only
    // once the node answers again.
    let run = |args: &[&str]| {
        let status = std::process::Command::new(&exe[0])
            .args(&exe[1..])
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "{args:?}");
    };
    run(&["service", "--stop"]);
    assert!(!answers(state.nodes[0].api_port));
    assert!(answers(state.nodes[1].api_port));
    run(&["service", "--start"]);
    assert!(answers(state.nodes[0].api_port));

    // A second `up` on a running installation is refused.
    sim()
        .args(["up", "--dir"])
        .arg(&dir)
        .assert()
        .failure()
        .stderr(contains("already running"));

    sim()
        .args(["down", "--dir"])
        .arg(&dir)
        .assert()
        .success()
        .stdout(contains("stopped"));
    assert!(state.nodes.iter().all(|n| !answers(n.api_port)));
    assert!(store.snapshot().unwrap().daemon.is_none());
    sim()
        .args(["down", "--dir"])
        .arg(&dir)
        .assert()
        .success()
        .stdout(contains("was not running"));

    // `up` again resumes the same installation.
    sim()
        .args(["up", "--dir"])
        .arg(&dir)
        .assert()
        .success()
        .stdout(contains("restarted"));
    assert!(answers(state.nodes[0].api_port));
    sim().args(["down", "--dir"]).arg(&dir).assert().success();
}

#[test]
fn up_reports_a_bad_spec_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("spec.toml");
    std::fs::write(&spec, "[durations]\nstopp = 3\n").unwrap();
    sim()
        .args(["up", "--dir"])
        .arg(tmp.path().join("sim"))
        .arg("--spec")
        .arg(&spec)
        .assert()
        .failure()
        .stderr(contains("stopp"));
}

#[test]
fn check_passes_a_correct_upgrade_and_names_broken_invariants() {
    const N1: &str = "OCTO-NODE-01";
    let scene = Scene::with_nodes(1);
    let check = |args: &[&str]| {
        sim()
            .arg("check")
            .arg("--dir")
            .arg(&scene.dir)
            .args(args)
            .assert()
    };
    check(&[]).success().stdout(contains("All invariants hold"));

    // A correct single-node upgrade through the stand-ins.
    scene.exe(N1, &["node", "--drain=true"]).success();
    scene.exe(N1, &["show-master-key"]).success();
    scene.stop(N1);
    let bak = scene.path("sql-backups").join("a.bak");
    let b = bak.display().to_string();
    scene
        .sqlcmd(&format!(
            "BACKUP DATABASE [OctopusDeploy] TO DISK = N'{b}' WITH COPY_ONLY, CHECKSUM"
        ))
        .success();
    scene
        .sqlcmd(&format!("RESTORE VERIFYONLY FROM DISK = N'{b}'"))
        .success();
    let msi = scene.installer(NEW);
    scene.msiexec(N1, &msi, &scene.path("i.log")).success();
    scene.exe(N1, &["database", "--upgrade"]).success();
    scene.exe(N1, &["service", "--start"]).success();
    // Drain left on: I6.
    check(&[])
        .code(1)
        .stdout(contains("I6 violated"))
        .stdout(contains("drain flag began off and ended on"));
    scene.exe(N1, &["node", "--drain=false"]).success();
    check(&[]).success();

    // An upgrade without a verified backup: I3; maintenance left on: I6 unless allowed.
    let scene = Scene::with_nodes(1);
    scene.update(|s| s.set_maintenance(true, "test"));
    scene.stop(N1);
    scene.update(|s| s.nodes[0].installed_version = Some(NEW.into()));
    scene.exe(N1, &["database", "--upgrade"]).success();
    let check = |args: &[&str]| {
        sim()
            .arg("check")
            .arg("--dir")
            .arg(&scene.dir)
            .args(args)
            .assert()
    };
    let out = check(&["--json"]).code(1);
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let invariants: Vec<&str> = report["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["invariant"].as_str().unwrap())
        .collect();
    assert_eq!(invariants, ["I3", "I3", "I6"]);
    assert_eq!(report["ok"], false);
    let out = check(&["--allow-maintenance-left-on", "--json"]).code(1);
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["violations"].as_array().unwrap().len(), 2);
}

#[test]
fn history_fault_and_state_commands() {
    let scene = Scene::with_nodes(2);
    let dir = scene.dir.clone();
    sim()
        .args([
            "fault",
            "--op",
            "msiexec",
            "--action",
            "exit:1603",
            "--node",
            "OCTO-NODE-02",
            "--times",
            "2",
            "--dir",
        ])
        .arg(&dir)
        .assert()
        .success()
        .stdout(contains("msiexec -> exit:1603 on OCTO-NODE-02 (2 times)"));
    sim()
        .args(["fault", "--op", "bogus", "--action", "hang", "--dir"])
        .arg(&dir)
        .assert()
        .failure()
        .stderr(contains("unknown fault op \"bogus\""));
    sim()
        .args(["fault", "--op", "msiexec", "--action", "explode", "--dir"])
        .arg(&dir)
        .assert()
        .failure()
        .stderr(contains("unknown fault action"));
    sim()
        .args([
            "fault",
            "--op",
            "msiexec",
            "--action",
            "hang",
            "--node",
            "OCTO-NODE-09",
            "--dir",
        ])
        .arg(&dir)
        .assert()
        .failure()
        .stderr(contains("no node OCTO-NODE-09"));
    let faults = scene.state().faults;
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0].times, 2);

    let out = sim()
        .args(["state", "--json", "--dir"])
        .arg(&dir)
        .assert()
        .success();
    let state: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(state["nodes"][1]["name"], "OCTO-NODE-02");
    let out = sim().args(["state", "--dir"]).arg(&dir).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        text.contains("OCTO-NODE-02") && text.contains("schema 2024.1.10"),
        "{text}"
    );
    assert!(!text.contains(&scene.state().secrets.admin_api_key));

    scene.exe("OCTO-NODE-01", &["version"]).success();
    let out = sim()
        .args(["history", "--json", "--dir"])
        .arg(&dir)
        .assert()
        .success();
    let history: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let history = history.as_array().unwrap();
    assert_eq!(history[0]["kind"], "installation-created");
    assert_eq!(history[0]["seq"], 1);
    assert!(
        history
            .iter()
            .all(|r| r["at"].is_string() && r["sim_seconds"].is_number())
    );
    assert!(
        history
            .iter()
            .any(|r| r["kind"] == "standin-invoked" && r["program"] == "exe")
    );
    sim()
        .args(["history", "--dir"])
        .arg(&dir)
        .assert()
        .success()
        .stdout(contains("installation-created"));
    sim()
        .args(["history", "--dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .assert()
        .failure()
        .stderr(contains("no simulated installation"));
}
