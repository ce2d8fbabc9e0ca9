//! Self-managed SQL Server, as issue 13's contract sends it: the tuned native backup
//! (stripes, compression, transfer size, STATS progress), size-dependent durations, and the
//! snapshot strategy (create, revert, drop) with SQL Server's refusals.

use std::io::{BufRead, BufReader};

use octoup_sim::history::Event;
use octoup_sim::spec::{DatabaseSpec, Spec};
use predicates::str::contains;

use crate::scene::{NEW, OLD, Scene, spec};

const N1: &str = "OCTO-NODE-01";
const DB: &str = "OctopusDeploy";

fn scene_with(database: DatabaseSpec) -> Scene {
    Scene::new(Spec {
        database,
        ..spec(1)
    })
}

fn two_files() -> DatabaseSpec {
    DatabaseSpec {
        data_files: vec![DB.into(), "OctopusDeploy_2".into()],
        ..DatabaseSpec::default()
    }
}

fn stripes(scene: &Scene, n: usize) -> Vec<String> {
    let dir = scene.path("sql-backups");
    (1..=n)
        .map(|k| {
            dir.join(format!("{DB}-{OLD}-20261202T180000Z-3fa1-{k}of{n}.bak"))
                .display()
                .to_string()
        })
        .collect()
}

fn devices(kind: &str, paths: &[String]) -> String {
    paths
        .iter()
        .map(|p| format!("{kind} = N'{}'", p.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stdout of a statement that must succeed.
fn stdout(scene: &Scene, query: &str) -> String {
    String::from_utf8_lossy(&scene.sqlcmd(query).success().get_output().stdout).into_owned()
}

/// (seconds, MB/sec) of the `… successfully processed N pages in S seconds (R MB/sec).` line.
fn figures(out: &str) -> (f64, f64) {
    let line = out
        .lines()
        .find(|l| l.contains("successfully processed"))
        .unwrap_or_else(|| panic!("no completion line in {out}"));
    let secs = line
        .split(" in ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let rate = line.split('(').nth(1).unwrap().split(' ').next().unwrap();
    (secs.parse().unwrap(), rate.parse().unwrap())
}

fn backup_sql(paths: &[String], options: &str) -> String {
    format!(
        "BACKUP DATABASE [{DB}] TO {} WITH COPY_ONLY, CHECKSUM{options}, STATS = 5;",
        devices("DISK", paths)
    )
}

#[test]
fn striped_tuned_backup_verify_and_restore_as_the_contract_sends_them() {
    let scene = Scene::new(Spec {
        database: two_files(),
        ..spec(1)
    });
    let set = stripes(&scene, 2);
    let out = stdout(
        &scene,
        &backup_sql(
            &set,
            ", COMPRESSION, MAXTRANSFERSIZE = 4194304, BUFFERCOUNT = 64",
        ),
    );
    let percents: Vec<&str> = out
        .lines()
        .filter(|l| l.ends_with("percent processed."))
        .collect();
    assert_eq!(percents.len(), 20, "{out}");
    assert_eq!(percents[0], "5 percent processed.");
    assert_eq!(percents[19], "100 percent processed.");
    assert!(
        out.contains(&format!(
            "Processed 122071 pages for database '{DB}', file '{DB}' on file 1."
        )),
        "{out}"
    );
    assert!(out.contains("file 'OctopusDeploy_2' on file 1."), "{out}");
    // 75 MB/s × 2 (COMPRESSION) × 1.25 (2 stripes) × 1.25 (MAXTRANSFERSIZE/BUFFERCOUNT).
    let (secs, rate) = figures(&out);
    assert!((rate - 234.375).abs() < 0.01, "{out}");
    assert!((secs - 8.139).abs() < 0.01, "{out}");
    for p in &set {
        assert!(std::path::Path::new(p).is_file());
    }

    // Every member must be named.
    scene
        .sqlcmd(&format!("RESTORE VERIFYONLY FROM {};", devices("DISK", &set[..1])))
        .code(1)
        .stderr(contains("Msg 3132, Level 16"))
        .stderr(contains(
            "The media set has 2 media families but only 1 are provided. All members must be provided.",
        ));
    scene
        .sqlcmd(&format!(
            "RESTORE VERIFYONLY FROM {};",
            devices("DISK", &set)
        ))
        .success()
        .stdout(contains("The backup set on file 1 is valid."));

    scene.stop(N1);
    scene.update(|s| s.database.schema_version = NEW.into());
    let out = stdout(
        &scene,
        &format!(
            "RESTORE DATABASE [{DB}] FROM {} WITH REPLACE, STATS = 5;",
            devices("DISK", &set)
        ),
    );
    assert!(out.contains("100 percent processed."), "{out}");
    assert!(
        out.contains("RESTORE DATABASE successfully processed"),
        "{out}"
    );
    assert_eq!(scene.state().database.schema_version, OLD);
    assert!(scene.history().iter().any(|r| matches!(&r.event,
        Event::DbBackupVerified { path, .. } if *path == set[0])));
}

#[test]
fn durations_follow_the_size_the_options_and_an_explicit_duration() {
    let seconds = |size_gb: f64, options: &str, explicit: Option<f64>| {
        let mut s = spec(1);
        s.database.size_gb = size_gb;
        s.durations.backup = explicit;
        let scene = Scene::new(s);
        let set = stripes(&scene, 1);
        figures(&stdout(&scene, &backup_sql(&set, options)))
    };
    let (plain, rate) = seconds(2.0, "", None);
    assert!((rate - 75.0).abs() < 0.01, "{rate}");
    let (ten_times, _) = seconds(20.0, "", None);
    assert!(
        (ten_times / plain - 10.0).abs() < 0.01,
        "{plain} {ten_times}"
    );
    let (compressed, rate) = seconds(2.0, ", COMPRESSION", None);
    assert!(
        (plain / compressed - 2.0).abs() < 0.01,
        "{plain} {compressed}"
    );
    assert!((rate - 150.0).abs() < 0.01);
    // The spec's `[durations] backup` wins, and the rate follows from it.
    let (fixed, rate) = seconds(2.0, "", Some(60.0));
    assert_eq!(fixed, 60.0);
    assert!((rate - 2.0e9 / 1_048_576.0 / 60.0).abs() < 0.1, "{rate}");
}

#[test]
fn percent_lines_arrive_while_the_backup_runs() {
    // 16 GB at 75 MB/s ≈ 194 simulated seconds ≈ 1.9 s at this time scale.
    let mut s = spec(1);
    s.time_scale = 0.01;
    s.database.size_gb = 16.0;
    let scene = Scene::new(s);
    let set = stripes(&scene, 1);
    let password = scene.state().secrets.sql_password;
    let mut child = std::process::Command::new(octoup_testkit::sim_bin())
        .arg("sqlcmd")
        .arg("--dir")
        .arg(&scene.dir)
        .args(octoup_testkit::SQLCMD_ARGS)
        .args(["-Q", &backup_sql(&set, "")])
        .env("SQLCMDPASSWORD", password)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "5 percent processed.");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the backup had already ended"
    );
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(child.wait().unwrap().success());
    assert_eq!(rest[18], "100 percent processed.");
    assert!(
        rest.last()
            .unwrap()
            .starts_with("BACKUP DATABASE successfully processed")
    );
}

#[test]
fn backup_refusals() {
    let scene = Scene::with_nodes(1);
    let set = stripes(&scene, 1);
    scene
        .sqlcmd(&backup_sql(&set, ", MAXTRANSFERSIZE = 100000"))
        .code(1)
        .stderr(contains("MAXTRANSFERSIZE"))
        .stderr(contains("BACKUP DATABASE is terminating abnormally."));
    let web = scene_with(DatabaseSpec {
        edition: Some("Web Edition (64-bit)".into()),
        ..DatabaseSpec::default()
    });
    web.sqlcmd(&backup_sql(&stripes(&web, 1), ", COMPRESSION"))
        .code(1)
        .stderr(contains(
            "Msg 1844, Level 16, State 1, Server 127.0.0.1,1433, Line 1\nBACKUP DATABASE WITH COMPRESSION is not supported on Web Edition (64-bit).",
        ));
    for hosting in ["amazon-rds", "google-cloud-sql"] {
        let db: DatabaseSpec = toml::from_str(&format!("hosting = \"{hosting}\"")).unwrap();
        let scene = scene_with(db);
        scene
            .sqlcmd(&backup_sql(&stripes(&scene, 1), ""))
            .code(1)
            .stderr(contains("Msg 262, Level 14"));
    }
}

fn files_query() -> String {
    format!(
        "SET NOCOUNT ON; SELECT N'octoup', name, physical_name FROM sys.master_files WHERE database_id = DB_ID(N'{DB}') AND type_desc = N'ROWS';"
    )
}

fn others_query() -> String {
    format!(
        "SET NOCOUNT ON; SELECT N'octoup', name FROM sys.databases WHERE source_database_id = DB_ID(N'{DB}');"
    )
}

const SNAP: &str = "OctopusDeploy_octoup_20261202T180000Z-3fa1";

/// The contract's CREATE DATABASE … AS SNAPSHOT OF naming every ROWS file `rows` lists.
fn create_snapshot(rows: &[Vec<String>]) -> String {
    let files: Vec<String> = rows
        .iter()
        .map(|r| {
            let dir = std::path::Path::new(&r[2])
                .parent()
                .unwrap()
                .display()
                .to_string();
            format!(
                "(NAME = [{}], FILENAME = N'{dir}/{}_20261202T180000Z-3fa1.ss')",
                r[1], r[1]
            )
        })
        .collect();
    format!(
        "CREATE DATABASE [{SNAP}] ON {} AS SNAPSHOT OF [{DB}];",
        files.join(", ")
    )
}

#[test]
fn snapshot_create_revert_and_drop() {
    let scene = scene_with(two_files());
    let rows = scene.rows(&files_query());
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[0][0].as_str(), rows[1][1].as_str()),
        ("octoup", "OctopusDeploy_2")
    );
    assert!(rows[0][2].starts_with(&scene.dir.join("data").display().to_string()));
    assert!(scene.rows(&others_query()).is_empty());

    // Every ROWS file must be named.
    scene
        .sqlcmd(&create_snapshot(&rows[..1]))
        .code(1)
        .stderr(contains("Msg 5127, Level 16"))
        .stderr(contains(
            "All files must be specified for database snapshot creation. Missing the file \"OctopusDeploy_2\".",
        ));
    scene.stop(N1);
    scene.sqlcmd(&create_snapshot(&rows)).success();
    assert_eq!(
        scene.rows(&others_query()),
        vec![vec!["octoup".to_string(), SNAP.to_string()]]
    );

    // The upgrade goes wrong; the source cannot be dropped or restored from a backup while the
    // snapshot exists, but it reverts.
    scene.update(|s| s.database.schema_version = NEW.into());
    scene
        .sqlcmd(&format!("DROP DATABASE [{DB}];"))
        .code(1)
        .stderr(contains(format!(
            "Msg 3709, Level 16, State 1, Server 127.0.0.1,1433, Line 1\nCannot drop the database while the database snapshot \"{SNAP}\" refers to it. Drop that database first."
        )));
    scene
        .sqlcmd(&format!(
            "RESTORE DATABASE [{DB}] FROM DISK = N'{}' WITH REPLACE;",
            stripes(&scene, 1)[0]
        ))
        .code(1)
        .stderr(contains("database snapshot"));
    scene
        .sqlcmd(&format!(
            "RESTORE DATABASE [{DB}] FROM DATABASE_SNAPSHOT = N'{SNAP}';"
        ))
        .success();
    assert_eq!(scene.state().database.schema_version, OLD);
    scene.sqlcmd(&format!("DROP DATABASE [{SNAP}];")).success();
    assert!(scene.rows(&others_query()).is_empty());
    let kinds = scene.kinds();
    for k in [
        "db-snapshot-created",
        "db-snapshot-reverted",
        "db-restored",
        "db-snapshot-dropped",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
}

#[test]
fn snapshot_refusals() {
    let revert = format!("RESTORE DATABASE [{DB}] FROM DATABASE_SNAPSHOT = N'{SNAP}';");
    // Another snapshot blocks the revert.
    let scene = scene_with(DatabaseSpec {
        existing_snapshots: vec!["Nightly".into()],
        ..DatabaseSpec::default()
    });
    let rows = scene.rows(&files_query());
    scene.sqlcmd(&create_snapshot(&rows)).success();
    assert_eq!(scene.rows(&others_query()).len(), 2);
    scene.stop(N1);
    scene
        .sqlcmd(&revert)
        .code(1)
        .stderr(contains("Msg 3137, Level 16"))
        .stderr(contains("all other snapshots have not been dropped"));
    // FILESTREAM blocks the revert.
    let fs = scene_with(DatabaseSpec {
        filestream: true,
        ..DatabaseSpec::default()
    });
    assert!(
        fs.rows(&format!(
            "SET NOCOUNT ON; USE [{DB}]; SELECT N'octoup', type_desc FROM sys.filegroups;"
        ))
        .iter()
        .any(|r| r.len() == 2 && r[1] == "FILESTREAM_DATA_FILEGROUP")
    );
    fs.sqlcmd(&create_snapshot(&fs.rows(&files_query())))
        .success();
    fs.stop(N1);
    fs.sqlcmd(&revert).code(1).stderr(contains("FILESTREAM"));
    // No snapshot of a memory-optimized database, nor before 2016 SP1 on Standard.
    let mo = scene_with(DatabaseSpec {
        memory_optimized: true,
        ..DatabaseSpec::default()
    });
    mo.sqlcmd(&create_snapshot(&mo.rows(&files_query())))
        .code(1)
        .stderr(contains("MEMORY_OPTIMIZED_DATA"));
    let old = scene_with(DatabaseSpec {
        sql_version: Some("13.0.1601.5".into()),
        edition: Some("Standard Edition (64-bit)".into()),
        ..DatabaseSpec::default()
    });
    old.sqlcmd(&create_snapshot(&old.rows(&files_query())))
        .code(1)
        .stderr(contains("Msg 1844, Level 16"))
        .stderr(contains(
            "Database Snapshot is not supported on Standard Edition (64-bit).",
        ));
    let sp1 = scene_with(DatabaseSpec {
        sql_version: Some("13.0.4001.0".into()),
        edition: Some("Express Edition (64-bit)".into()),
        ..DatabaseSpec::default()
    });
    sp1.sqlcmd(&create_snapshot(&sp1.rows(&files_query())))
        .success();
    // Not on the cloud hostings.
    let azure: DatabaseSpec = toml::from_str("hosting = \"azure-sql-managed-instance\"").unwrap();
    let mi = scene_with(azure);
    mi.sqlcmd(&create_snapshot(&[vec![
        "octoup".into(),
        DB.into(),
        "/d/x.mdf".into(),
    ]]))
    .code(1)
    .stderr(contains("not supported"));
}

#[test]
fn the_doctor_facts_for_the_strategies() {
    let scene = scene_with(DatabaseSpec {
        availability_group: "AG1".into(),
        filestream: true,
        data_free_gb: Some(12.0),
        ..two_files()
    });
    let types = scene.rows(&format!("SET NOCOUNT ON; SELECT N'octoup', type_desc, COUNT(*) FROM sys.master_files WHERE database_id = DB_ID(N'{DB}') GROUP BY type_desc;"));
    assert_eq!(
        types,
        vec![
            vec!["octoup".to_string(), "ROWS".into(), "2".into()],
            vec!["octoup".to_string(), "LOG".into(), "1".into()],
            vec!["octoup".to_string(), "FILESTREAM".into(), "1".into()],
        ]
    );
    let ag = scene.rows(&format!("SET NOCOUNT ON; SELECT N'octoup', name, replica_id FROM sys.databases WHERE name = N'{DB}';"));
    assert_ne!(ag[0][2], "NULL");
    let free = scene.rows(&format!("SET NOCOUNT ON; SELECT N'octoup', v.volume_mount_point, v.available_bytes FROM sys.master_files AS f CROSS APPLY sys.dm_os_volume_stats(f.database_id, f.file_id) AS v WHERE f.database_id = DB_ID(N'{DB}');"));
    assert!(free.iter().any(|r| r[2] == "12000000000"), "{free:?}");
    assert!(free.iter().any(|r| r[2] == "500000000000"), "{free:?}");
    let role = "SET NOCOUNT ON; SELECT N'octoup', IS_SRVROLEMEMBER(N'CustomerDbRootRole');";
    assert_eq!(scene.rows(role)[0][1], "NULL");
    let gcp = scene_with(toml::from_str("hosting = \"google-cloud-sql\"").unwrap());
    assert_eq!(gcp.rows(role)[0][1], "1");
}
