//! Issue 14 (rehearse): a copy restored `WITH MOVE`, the vendor's disarming statements and
//! their verification, the migration rules, the SQL Server port and `octoup-sim container`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use octoup_sim::spec::{DatabaseSpec, Spec};
use octoup_sim::state::Store;
use octoup_testkit::sim_bin;
use predicates::str::contains;

use crate::scene::{NEW, OLD, Scene, spec};

const N1: &str = "OCTO-NODE-01";
const DB: &str = "OctopusDeploy";
const COPY: &str = "OctopusDeploy_rehearsal";

const DISARM: &str = "DELETE FROM dbo.OctopusServerNode;
IF EXISTS (SELECT NULL FROM sys.tables WHERE name = 'OctopusServerNodeStatus') DELETE FROM dbo.OctopusServerNodeStatus;
UPDATE dbo.Subscription SET IsDisabled = 1;
UPDATE dbo.ProjectTrigger SET IsDisabled = 1;
UPDATE dbo.Machine SET IsDisabled = 1;
IF EXISTS (SELECT NULL FROM sys.tables WHERE name = 'Worker') UPDATE dbo.Worker SET IsDisabled = 1;
DELETE FROM dbo.ExtensionConfiguration WHERE Id IN ('authentication-octopusid', 'jira-integration');
UPDATE dbo.Configuration SET [JSON] = JSON_MODIFY([JSON], '$.InstallationId', LOWER(CONVERT(NVARCHAR(255), NEWID()))) WHERE Id = 'upgradeavailability'";

const CHECK: &str = "SET NOCOUNT ON;
SELECT COUNT(*) FROM dbo.OctopusServerNode;
SELECT COUNT(*) FROM dbo.Subscription WHERE IsDisabled = 0;
SELECT COUNT(*) FROM dbo.ProjectTrigger WHERE IsDisabled = 0;
SELECT COUNT(*) FROM dbo.Machine WHERE IsDisabled = 0;
SELECT COUNT(*) FROM dbo.Worker WHERE IsDisabled = 0;
SELECT JSON_VALUE([JSON], '$.InstallationId') FROM dbo.Configuration WHERE Id = 'upgradeavailability'";

fn backup(scene: &Scene) -> String {
    let path = scene.path("sql-backups").join("full.bak");
    let path = path.display().to_string();
    scene
        .sqlcmd(&format!(
            "BACKUP DATABASE [{DB}] TO DISK = N'{path}' WITH COPY_ONLY, CHECKSUM"
        ))
        .success();
    path
}

fn restore_as(bak: &str, name: &str, data: &str, extra: &str) -> String {
    format!(
        "RESTORE DATABASE [{name}] FROM DISK = N'{bak}' WITH MOVE N'{DB}' TO N'{data}/{name}.mdf', MOVE N'{DB}_log' TO N'{data}/{name}_log.ldf'{extra}"
    )
}

/// The values of [`CHECK`] in `database` (`-d`), one per line.
fn check(scene: &Scene, database: &str) -> Vec<String> {
    scene
        .rows_in(CHECK, database)
        .into_iter()
        .map(|r| r.join("|"))
        .collect()
}

impl Scene {
    fn rows_in(&self, query: &str, database: &str) -> Vec<Vec<String>> {
        let out = self
            .sql(query, &["-d", database, "-h", "-1", "-W", "-s", "|"], &[])
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('|').map(str::to_string).collect())
            .collect()
    }
}

#[test]
fn a_copy_is_restored_with_move_disarmed_verified_and_dropped_leaving_production_alone() {
    let scene = Scene::new(spec(2));
    let bak = backup(&scene);
    let data = scene.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let data = data.display().to_string();

    let files = scene.rows(&format!(
        "SET NOCOUNT ON; RESTORE FILELISTONLY FROM DISK = N'{bak}'"
    ));
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(files[0][0], DB);
    assert_eq!(files[0][1], format!("{data}/{DB}.mdf"));
    assert_eq!(&files[0][2..4], ["D", "PRIMARY"]);
    assert_eq!(files[0][6], "1");
    assert_eq!(files[1][0], format!("{DB}_log"));
    assert_eq!(&files[1][2..4], ["L", "NULL"]);
    assert_eq!(files[1][6], "2");
    let header = scene
        .sqlcmd(&format!("RESTORE FILELISTONLY FROM DISK = N'{bak}'"))
        .success()
        .get_output()
        .stdout
        .clone();
    let header = String::from_utf8_lossy(&header);
    let columns: Vec<&str> = header.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "LogicalName",
            "PhysicalName",
            "Type",
            "FileGroupName",
            "Size",
            "MaxSize",
            "FileId"
        ]
    );

    // Without MOVE the files are production's.
    scene
        .sqlcmd(&format!("RESTORE DATABASE [{COPY}] FROM DISK = N'{bak}'"))
        .failure()
        .stderr(contains("Msg 1834, Level 16"))
        .stderr(contains(format!(
            "The file '{data}/{DB}.mdf' cannot be overwritten.  It is being used by database '{DB}'."
        )))
        .stderr(contains("Msg 3156"))
        .stderr(contains("Msg 3119"))
        .stderr(contains("RESTORE DATABASE is terminating abnormally."));
    scene
        .sqlcmd(&format!(
            "RESTORE DATABASE [{COPY}] FROM DISK = N'{bak}' WITH MOVE N'Nope' TO N'{data}/x.mdf'"
        ))
        .failure()
        .stderr(contains(format!("Msg 3234, Level 16, State 1, Server 127.0.0.1,1433, Line 1\nLogical file 'Nope' is not part of database '{COPY}'. Use RESTORE FILELISTONLY to list the logical file names.")))
        .stderr(contains("Msg 3013"));
    scene
        .sqlcmd(&format!(
            "RESTORE DATABASE [{COPY}] FROM DISK = N'{bak}' WITH MOVE N'{DB}' TO N'{data}/same', MOVE N'{DB}_log' TO N'{data}/same'"
        ))
        .failure()
        .stderr(contains("Msg 3176"))
        .stderr(contains(format!("File '{data}/same' is claimed by")));
    scene
        .sqlcmd(&restore_as(&bak, COPY, "/no/such/folder", ""))
        .failure()
        .stderr(contains("Msg 5133, Level 16"))
        .stderr(contains("Directory lookup for the file \"/no/such/folder/"))
        .stderr(contains(
            "operating system error 3(The system cannot find the path specified.)",
        ));
    assert!(!scene.has("db-restored-as"));

    let out = scene
        .sqlcmd(&restore_as(
            &bak,
            COPY,
            &data,
            ", STATS = 50, CHECKSUM, RECOVERY",
        ))
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.contains("50 percent processed.\n100 percent processed."),
        "{out}"
    );
    assert!(
        out.contains("RESTORE DATABASE successfully processed"),
        "{out}"
    );
    let kinds = scene.kinds();
    assert!(kinds.contains(&"db-restored-as".to_string()), "{kinds:?}");
    assert!(!kinds.contains(&"db-restored".to_string()), "{kinds:?}");
    let restored = scene
        .history()
        .into_iter()
        .find(|r| r.event.kind() == "db-restored-as")
        .unwrap();
    let v = serde_json::to_value(&restored).unwrap();
    assert_eq!(v["database"], COPY);
    assert_eq!(v["path"], bak.as_str());
    assert_eq!(v["schema_version"], OLD);

    // Again onto the same name, and another copy onto the first one's files.
    scene
        .sqlcmd(&restore_as(&bak, COPY, &data, ""))
        .failure()
        .stderr(contains(format!("Msg 3154, Level 16, State 1, Server 127.0.0.1,1433, Line 1\nThe backup set holds a backup of a database other than the existing '{COPY}' database.")));
    scene
        .sqlcmd(&format!(
            "RESTORE DATABASE [Other] FROM DISK = N'{bak}' WITH MOVE N'{DB}' TO N'{data}/{COPY}.mdf', MOVE N'{DB}_log' TO N'{data}/o.ldf'"
        ))
        .failure()
        .stderr(contains(format!("It is being used by database '{COPY}'.")));

    // The copy is armed like production until disarmed.
    let production_id = scene.state().installation_id;
    let armed = vec!["2", "2", "3", "1", "1", production_id.as_str()];
    assert_eq!(check(&scene, COPY), armed);
    let tables = scene.rows_in("SET NOCOUNT ON; SELECT name FROM sys.tables", COPY);
    for t in [
        "OctopusServerNode",
        "OctopusServerNodeStatus",
        "Subscription",
        "ProjectTrigger",
        "Machine",
        "Worker",
        "ExtensionConfiguration",
        "Configuration",
        "ServerTask",
    ] {
        assert!(tables.iter().any(|r| r[0] == t), "{t} in {tables:?}");
    }
    let out = scene
        .sql(&format!("USE [{COPY}];\n{DISARM}"), &[], &[])
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8_lossy(&out);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            &format!("Changed database context to '{COPY}'.") as &str,
            "(2 rows affected)",
            "(2 rows affected)",
            "(2 rows affected)",
            "(3 rows affected)",
            "(1 rows affected)",
            "(1 rows affected)",
            "(2 rows affected)",
            "(1 rows affected)",
        ]
    );
    let after = check(&scene, COPY);
    assert_eq!(&after[..5], ["0", "0", "0", "0", "0"]);
    assert_ne!(after[5], production_id);
    assert_eq!(after[5].len(), 36);
    let changed: Vec<serde_json::Value> = scene
        .history()
        .iter()
        .filter(|r| r.event.kind() == "db-rows-changed")
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    assert_eq!(changed.len(), 8);
    assert!(changed.iter().all(|v| v["database"] == COPY));
    assert_eq!(changed[2]["table"], "Subscription");
    assert_eq!(changed[2]["statement"], "update");
    assert_eq!(changed[2]["rows"], 2);
    assert_eq!(changed[6]["table"], "ExtensionConfiguration");
    assert_eq!(changed[6]["statement"], "delete");
    assert_eq!(
        scene.rows_in(
            "SET NOCOUNT ON; SELECT Id FROM dbo.ExtensionConfiguration",
            COPY
        ),
        [["authentication-usernamepassword"]]
    );
    // Production is untouched.
    assert_eq!(check(&scene, DB), armed);
    // With NOCOUNT nothing is printed; run again, nothing changes.
    scene
        .sql(
            &format!("SET NOCOUNT ON; USE [{COPY}]; UPDATE dbo.Subscription SET IsDisabled = 1"),
            &[],
            &[],
        )
        .success()
        .stdout(predicates::str::diff(format!(
            "Changed database context to '{COPY}'.\n"
        )));
    // Outside an Octopus database the tables do not exist.
    scene
        .sqlcmd("UPDATE dbo.Subscription SET IsDisabled = 1")
        .failure()
        .stderr(contains("Msg 208"));

    scene.sqlcmd(&format!("DROP DATABASE [{COPY}]")).success();
    assert!(scene.has("db-dropped"));
    assert!(
        !scene
            .state()
            .instance_dbs
            .databases
            .iter()
            .any(|d| d.name == COPY)
    );
    assert!(scene.violations().is_empty(), "{:?}", scene.violations());
}

#[test]
fn disarming_statements_on_the_octopus_database_name_it() {
    let scene = Scene::with_nodes(1);
    scene
        .sql("UPDATE dbo.Machine SET IsDisabled = 1", &["-d", DB], &[])
        .success()
        .stdout(contains("(1 rows affected)"));
    let v: Vec<serde_json::Value> = scene
        .history()
        .iter()
        .filter(|r| r.event.kind() == "db-rows-changed")
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["database"], DB);
    assert_eq!(v[0]["table"], "Machine");
    // An old schema has no OctopusServerNodeStatus: the IF EXISTS skips it.
    let scene = Scene::new(Spec {
        version: "2021.3.1234".into(),
        ..spec(1)
    });
    scene
        .sql(
            "IF EXISTS (SELECT NULL FROM sys.tables WHERE name = 'OctopusServerNodeStatus') DELETE FROM dbo.OctopusServerNodeStatus",
            &["-d", DB],
            &[],
        )
        .success()
        .stdout("");
    scene
        .sql("DELETE FROM dbo.OctopusServerNodeStatus", &["-d", DB], &[])
        .failure()
        .stderr(contains("Msg 208"));
}

#[test]
fn restore_as_is_refused_by_hosting_and_rights() {
    let scene = Scene::new(Spec {
        database: DatabaseSpec {
            can_create_database: false,
            ..DatabaseSpec::default()
        },
        ..spec(1)
    });
    let bak = backup(&scene);
    let data = scene.path("sql-backups").display().to_string();
    scene
        .sqlcmd(&restore_as(&bak, COPY, &data, ""))
        .failure()
        .stderr(contains("Msg 262, Level 14, State 1, Server 127.0.0.1,1433, Line 1\nCREATE DATABASE permission denied in database 'master'."));
    scene
        .sqlcmd(&format!("RESTORE FILELISTONLY FROM DISK = N'{bak}'"))
        .failure()
        .stderr(contains("Msg 262"))
        .stderr(contains("RESTORE FILELIST is terminating abnormally."));
    for (hosting, says) in [
        (octoup_sim::spec::Hosting::AzureSqlDatabase, "Msg 40510"),
        (
            octoup_sim::spec::Hosting::AmazonRds,
            "CREATE DATABASE permission denied",
        ),
        (
            octoup_sim::spec::Hosting::AzureSqlManagedInstance,
            "Msg 41914",
        ),
    ] {
        let scene = Scene::new(Spec {
            database: DatabaseSpec {
                hosting,
                ..DatabaseSpec::default()
            },
            ..spec(1)
        });
        scene
            .sqlcmd(&restore_as(&bak, COPY, &data, ""))
            .failure()
            .stderr(contains(says));
        scene
            .sqlcmd(&format!("RESTORE FILELISTONLY FROM DISK = N'{bak}'"))
            .failure()
            .stderr(contains(says));
    }
}

#[test]
fn a_data_dependent_migration_failure_fails_database_upgrade_half_way() {
    let scene = Scene::new(Spec {
        database: DatabaseSpec {
            migration_failure:
                "Script0560 failed: Cannot insert duplicate key row in object 'dbo.Feed'".into(),
            ..DatabaseSpec::default()
        },
        ..spec(1)
    });
    scene.stop(N1);
    scene.update(|s| s.nodes[0].installed_version = Some(NEW.into()));
    std::thread::sleep(Duration::from_millis(20));
    scene
        .exe(N1, &["database", "--upgrade", "--instance=OctopusServer"])
        .failure()
        .stderr(contains("Script0560 failed: Cannot insert duplicate key"));
    assert_eq!(scene.state().database.schema_version, OLD);
    let failed = scene
        .history()
        .into_iter()
        .find(|r| r.event.kind() == "db-upgrade-failed")
        .unwrap();
    let v = serde_json::to_value(&failed).unwrap();
    assert_eq!(
        v["reason"],
        "Script0560 failed: Cannot insert duplicate key row in object 'dbo.Feed'"
    );
}

// ---- the SQL Server port and the container ----

/// A running installation (with its daemon and SQL Server port).
struct Live {
    sim: octoup_testkit::Sim,
    store: Store,
}

impl Live {
    fn up(extra: &str) -> Live {
        let sim = octoup_testkit::Sim::up(&format!("time_scale = 0.001\nnodes = 1\n{extra}"));
        let store = Store::open(sim.dir()).unwrap();
        Live { sim, store }
    }

    fn sqlcmd(&self, query: &str) -> std::process::Output {
        let s = self.store.snapshot().unwrap();
        Command::new(sim_bin())
            .arg("sqlcmd")
            .arg("--dir")
            .arg(self.sim.dir())
            .args([
                "-S",
                &s.sql_server,
                "-d",
                "master",
                "-U",
                "octoup",
                "-b",
                "-Q",
                query,
            ])
            .env("SQLCMDPASSWORD", &s.secrets.sql_password)
            .output()
            .unwrap()
    }

    /// A copy `name` restored from a fresh backup (armed).
    fn copy(&self, name: &str) {
        let dir = self.sim.dir().display().to_string();
        let bak = format!("{dir}/sql-backups/{name}.bak");
        let out = self.sqlcmd(&format!(
            "BACKUP DATABASE [{DB}] TO DISK = N'{bak}' WITH COPY_ONLY; {}",
            restore_as(&bak, name, &format!("{dir}/sql-backups"), "")
        ));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The container's environment for database `db`.
    fn env(&self, db: &str, port: u16) -> Vec<(String, String)> {
        let s = self.store.snapshot().unwrap();
        vec![
            ("ACCEPT_EULA".into(), "Y".into()),
            (
                "DB_CONNECTION_STRING".into(),
                format!(
                    "Server=127.0.0.1,{};Database={db};User ID=octoup;Password={};TrustServerCertificate=True;Connect Timeout=2",
                    s.sql_port, s.secrets.sql_password
                ),
            ),
            ("MASTER_KEY".into(), s.secrets.master_key.clone()),
            ("ADMIN_API_KEY".into(), s.secrets.admin_api_key.clone()),
            ("OCTOPUS_SERVER_NODE_NAME".into(), "REHEARSAL-01".into()),
            ("OCTOUP_SIM_CONTAINER_PORT".into(), port.to_string()),
        ]
    }

    fn kinds(&self) -> Vec<serde_json::Value> {
        self.store
            .history()
            .unwrap()
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect()
    }
}

fn container(env: &[(String, String)], extra: &[&str]) -> Child {
    Command::new(sim_bin())
        .args(["container", "--version", NEW])
        .args(extra)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.clone(), v.clone())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on 127.0.0.1:`port`: the body.
fn get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

#[test]
fn the_container_migrates_an_armed_copy_serves_it_and_the_checker_reports_r1() {
    let live = Live::up("");
    live.copy(COPY);
    let port = free_port();
    let mut child = container(&live.env(COPY, port), &[]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let line = lines.next().expect("the container ended early").unwrap();
        seen.push(line.clone());
        if line.starts_with("Web server is ready to process requests") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{seen:?}");
    }
    assert!(
        seen.contains(&format!("Upgrading database from {OLD} to {NEW}")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("Warning: this database still has")),
        "{seen:?}"
    );
    let root: serde_json::Value = serde_json::from_str(&get(port, "/api")).unwrap();
    assert_eq!(root["Version"], NEW);
    let production = live.store.snapshot().unwrap();
    assert_eq!(root["InstallationId"], production.installation_id.as_str());
    let _ = child.kill();
    let _ = child.wait();

    let history = live.kinds();
    let find = |kind: &str| {
        history
            .iter()
            .find(|v| v["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {history:?}"))
            .clone()
    };
    let armed = find("rehearsal-armed");
    assert_eq!(armed["database"], COPY);
    assert!(
        armed["what"].as_str().unwrap().contains("OCTO-NODE-01"),
        "{armed}"
    );
    let started = find("rehearsal-migration-started");
    assert_eq!(
        (started["from"].as_str(), started["to"].as_str()),
        (Some(OLD), Some(NEW))
    );
    assert_eq!(find("rehearsal-migration-finished")["database"], COPY);
    let state = live.store.snapshot().unwrap();
    assert!(state.instance_dbs.databases.iter().any(|d| d.name == COPY));
    assert_eq!(state.database.schema_version, OLD, "production untouched");
    let check = Command::new(sim_bin())
        .args(["check", "--json", "--dir"])
        .arg(live.sim.dir())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let invariants: Vec<&str> = v["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["invariant"].as_str().unwrap())
        .collect();
    assert_eq!(invariants, ["R1"], "{v}");
}

/// Runs the container to its end: (exit code, stdout).
fn ended(mut child: Child) -> (i32, String) {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the container did not end"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_container_refuses_bad_logins_keys_databases_and_failing_migrations() {
    let live = Live::up(
        "[database]\nmigration_failure = \"Script0601 failed: the Feed table holds a duplicate key\"\n",
    );
    live.copy(COPY);
    live.sqlcmd(&format!("USE [{COPY}]; {DISARM}"));
    let port = free_port();
    let env = live.env(COPY, port);
    let with = |key: &str, value: &str| -> Vec<(String, String)> {
        let mut e: Vec<(String, String)> = env.iter().filter(|(k, _)| k != key).cloned().collect();
        e.push((key.into(), value.into()));
        e
    };
    let s = live.store.snapshot().unwrap();
    let (code, out) = ended(container(&with("ACCEPT_EULA", "N"), &[]));
    assert_eq!(code, 1);
    assert!(out.contains("ACCEPT_EULA"), "{out}");
    let (code, out) = ended(container(
        &with(
            "DB_CONNECTION_STRING",
            &format!(
                "Server=127.0.0.1,{};Database={COPY};User ID=octoup;Password=wrong",
                s.sql_port
            ),
        ),
        &[],
    ));
    assert_eq!(code, 1);
    assert!(out.contains("Login failed for user 'octoup'."), "{out}");
    let (code, out) = ended(container(
        &with(
            "DB_CONNECTION_STRING",
            &format!(
                "Server=127.0.0.1,{};Database=Nope;User ID=octoup;Password={}",
                s.sql_port, s.secrets.sql_password
            ),
        ),
        &[],
    ));
    assert_eq!(code, 1);
    assert!(
        out.contains("Cannot open database \"Nope\" requested by the login. The login failed."),
        "{out}"
    );
    let (code, out) = ended(container(
        &with(
            "DB_CONNECTION_STRING",
            &format!(
                "Server=127.0.0.1,{};Database={COPY};User ID=octoup;Password=p;Connect Timeout=1",
                free_port()
            ),
        ),
        &[],
    ));
    assert_eq!(code, 1);
    assert!(out.contains("A network-related or instance-specific error occurred while establishing a connection to SQL Server"), "{out}");
    let (code, out) = ended(container(
        &with("MASTER_KEY", "AAAAAAAAAAAAAAAAAAAAAA=="),
        &[],
    ));
    assert_eq!(code, 1);
    assert!(
        out.contains("the master key cannot decrypt this database"),
        "{out}"
    );

    // Disarmed, but the content's migration fails; the password on argv is a leak.
    let (code, out) = ended(container(&env, &[&s.secrets.sql_password]));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("Error: Script0601 failed: the Feed table holds a duplicate key"),
        "{out}"
    );
    let history = live.kinds();
    assert!(
        !history.iter().any(|v| v["kind"] == "rehearsal-armed"),
        "disarmed"
    );
    let failed = history
        .iter()
        .find(|v| v["kind"] == "rehearsal-migration-failed")
        .unwrap();
    assert_eq!(failed["database"], COPY);
    assert_eq!(
        failed["error"],
        "Script0601 failed: the Feed table holds a duplicate key"
    );
    let leak = history.iter().find(|v| v["kind"] == "secret-leak").unwrap();
    assert_eq!(leak["place"], "command line of the container");
    assert!(!leak.to_string().contains(&s.secrets.sql_password));
    let state = serde_json::to_value(live.store.snapshot().unwrap()).unwrap();
    let copy = &state["instance_dbs"]["databases"][0];
    assert_eq!(copy["name"], COPY);
    assert_eq!(
        copy["content"]["schema_version"], OLD,
        "the failed migration left it"
    );
}

// ---- a spare node's rehearsal instance (the Windows rehearsal host) ----

const SPARE: &str = "OCTO-SPARE-01";

#[test]
fn a_spare_nodes_rehearsal_instance_refuses_what_the_real_cli_refuses_and_migrates_the_copy() {
    let live = Live::up("spare_nodes = 1\n");
    live.copy(COPY);
    live.sqlcmd(&format!("USE [{COPY}]; {DISARM}"));
    live.store
        .update(|s| {
            s.spare_nodes[0].installed_version = Some(NEW.to_string());
            Ok::<_, octoup_sim::state::StoreError>(())
        })
        .unwrap();
    let s = live.store.snapshot().unwrap();
    let dir = live.sim.dir().display().to_string();
    let exe = |node: &str, args: &[&str]| -> (i32, String) {
        let out = Command::new(sim_bin())
            .args(["exe", "--dir", &dir, "--node", node])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let cs = |db: &str| {
        format!(
            "--connectionString=Server=127.0.0.1,{};Database={db};User ID=octoup;Password={};Connect Timeout=2",
            s.sql_port, s.secrets.sql_password
        )
    };
    let key = format!("--masterKey={}", s.secrets.master_key);
    let i = ["--instance", "R1"];

    // An instance that does not exist.
    let (code, out) = exe(SPARE, &["database", "--upgrade", "--instance", "R1"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("Instance 'R1' of Octopus Server has not been configured"),
        "{out}"
    );
    let (code, out) = exe(
        SPARE,
        &[
            "create-instance",
            "--instance",
            "R1",
            "--config",
            "C:\\R1\\R1.config",
            "--home",
            "C:\\R1",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = exe(
        SPARE,
        &["create-instance", "--instance", "R1", "--config", "x"],
    );
    assert_eq!(code, 1);
    assert!(out.contains("already exists"), "{out}");
    // Not configured yet; a database that does not exist; a wrong master key.
    let (code, out) = exe(SPARE, &["database", "--upgrade", i[0], i[1]]);
    assert_eq!(code, 1);
    assert!(out.contains("has no database configured"), "{out}");
    let (code, out) = exe(SPARE, &["database", i[0], i[1], &cs("Nope"), &key]);
    assert_eq!(code, 1);
    assert!(out.contains("Cannot open database \"Nope\""), "{out}");
    let (code, out) = exe(
        SPARE,
        &[
            "database",
            i[0],
            i[1],
            &cs(COPY),
            "--masterKey=AAAAAAAAAAAAAAAAAAAAAA==",
        ],
    );
    assert_eq!(code, 1);
    assert!(out.contains("The master key cannot decrypt"), "{out}");
    // The copy, with the right key: the status, then the migration.
    let (code, out) = exe(SPARE, &["database", i[0], i[1], &cs(COPY), &key]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = exe(
        SPARE,
        &["database-upgrade-status", i[0], i[1], "--format=json"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"IsUpgradeRequired\":true"), "{out}");
    let (code, out) = exe(SPARE, &["database", "--upgrade", i[0], i[1]]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("upgraded successfully to {NEW}")),
        "{out}"
    );
    let history = live.kinds();
    assert!(
        history
            .iter()
            .any(|v| v["kind"] == "rehearsal-migration-finished" && v["database"] == COPY),
        "{history:?}"
    );
    // The secrets on that command line are recorded as the opt-in's, never as a leak.
    assert!(
        history
            .iter()
            .any(|v| v["kind"] == "secret-argument" && v["which"] == "master key")
    );
    assert!(
        !history.iter().any(|v| v["kind"] == "secret-leak"),
        "{history:?}"
    );
    let after = live.store.snapshot().unwrap();
    assert_eq!(
        after.database.schema_version, s.database.schema_version,
        "production untouched"
    );
    // The copy gone: the upgrade is refused.
    live.sqlcmd(&format!("DROP DATABASE [{COPY}]"));
    let (code, out) = exe(SPARE, &["database", "--upgrade", i[0], i[1]]);
    assert_eq!(code, 1);
    assert!(
        out.contains(&format!("Cannot open database \"{COPY}\"")),
        "{out}"
    );
    // Production nodes make no rehearsal instance.
    let (code, out) = exe(
        N1,
        &["create-instance", "--instance", "R2", "--config", "x"],
    );
    assert_eq!(code, 1);
    assert!(out.contains("not simulated"), "{out}");
    let (code, out) = exe(SPARE, &["delete-instance", i[0], i[1]]);
    assert_eq!(code, 0, "{out}");
    assert!(
        live.store.snapshot().unwrap().spare_nodes[0]
            .instances
            .is_empty()
    );
}
