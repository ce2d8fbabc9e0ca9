//! The cloud hostings as issue 13's contract drives them: Azure SQL Database copies and the
//! rename swap, backups to URL (Managed Instance and SQL Server) with a SAS credential from
//! `$(OCTOUP_SAS_TOKEN)`, and RDS's native backup tasks; each refusal with its message.

use std::time::{Duration, Instant};

use octoup_sim::spec::{DatabaseSpec, Spec};
use predicates::str::contains;

use crate::scene::{NEW, OLD, Scene, spec};

const N1: &str = "OCTO-NODE-01";
const DB: &str = "OctopusDeploy";
const STAMP: &str = "20261202T180000Z-3fa1";

fn scene_on(hosting: &str, tweak: impl FnOnce(&mut DatabaseSpec)) -> Scene {
    let mut database: DatabaseSpec = toml::from_str(&format!("hosting = \"{hosting}\"")).unwrap();
    tweak(&mut database);
    Scene::new(Spec {
        database,
        ..spec(1)
    })
}

/// Polls `query`'s first row's column `col` until it is `want` (10 s at most).
fn wait_value(scene: &Scene, query: &str, col: usize, want: &str) -> Vec<Vec<String>> {
    let start = Instant::now();
    loop {
        let rows = scene.rows(query);
        if rows.first().and_then(|r| r.get(col)).map(String::as_str) == Some(want) {
            return rows;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{query}: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn azure_copy_then_the_rename_swap_brings_back_the_original_schema() {
    // 2 GB at 2 MB/s ≈ 950 simulated seconds ≈ 1 s here: long enough to see COPYING.
    let scene = scene_on("azure-sql-database", |d| d.copy_mb_s = 2.0);
    let copy = format!("{DB}_octoup_{STAMP}");
    let state_q = format!(
        "SET NOCOUNT ON; SELECT N'octoup', state_desc FROM sys.databases WHERE name = N'{copy}';"
    );
    let progress_q = format!(
        "SET NOCOUNT ON; SELECT N'octoup', percent_complete, error_code, error_desc FROM sys.dm_database_copies WHERE database_id = DB_ID(N'{copy}');"
    );
    scene.stop(N1);
    scene
        .sqlcmd(&format!("CREATE DATABASE [{copy}] AS COPY OF [{DB}];"))
        .success();
    assert_eq!(scene.rows(&state_q)[0][1], "COPYING");
    let progress = scene.rows(&progress_q);
    assert_eq!(progress.len(), 1);
    assert_eq!(progress[0][2], "0");
    // One copy of a source at a time.
    scene
        .sqlcmd(&format!("CREATE DATABASE [{DB}_again] AS COPY OF [{DB}];"))
        .code(1)
        .stderr(contains("Msg 40565, Level 16"));
    // Not renamed while still copying.
    wait_value(&scene, &state_q, 1, "ONLINE");
    assert!(scene.rows(&progress_q).is_empty());
    assert!(scene.has("db-copy-completed"));

    // The upgrade fails; swap the names back.
    scene.update(|s| s.database.schema_version = NEW.into());
    scene
        .sqlcmd(&format!(
            "ALTER DATABASE [{DB}] MODIFY NAME = [{DB}_octoup_failed_{STAMP}];"
        ))
        .success()
        .stdout(contains(format!(
            "The database name '{DB}_octoup_failed_{STAMP}' has been set."
        )));
    scene
        .sqlcmd(&format!("ALTER DATABASE [{copy}] MODIFY NAME = [{DB}];"))
        .success();
    assert_eq!(scene.state().database.schema_version, OLD);
    let names = scene.rows("SET NOCOUNT ON; SELECT N'octoup', name FROM sys.databases;");
    assert!(
        names
            .iter()
            .any(|r| r[1] == format!("{DB}_octoup_failed_{STAMP}"))
    );
    assert!(!names.iter().any(|r| r[1] == copy));
    assert!(scene.kinds().iter().filter(|k| *k == "db-renamed").count() == 2);
    // The rollback put back the schema the (pretend) upgrade started from: no I4.
    assert!(!scene.violations().iter().any(|v| v.starts_with("\"I4\"")));
}

#[test]
fn azure_copy_refusals() {
    let create = format!("CREATE DATABASE [{DB}_octoup_{STAMP}] AS COPY OF [{DB}];");
    scene_on("self-managed", |_| {})
        .sqlcmd(&create)
        .code(1)
        .stderr(contains("Msg 102, Level 15"));
    scene_on("azure-sql-database", |d| d.can_create_database = false)
        .sqlcmd(&create)
        .code(1)
        .stderr(contains(
            "Msg 262, Level 14, State 1, Server 127.0.0.1,1433, Line 1\nCREATE DATABASE permission denied in database 'master'.",
        ));
    let azure = scene_on("azure-sql-database", |_| {});
    azure
        .sqlcmd(&format!("BACKUP DATABASE [{DB}] TO URL = N'https://a.blob.core.windows.net/c/x.bak' WITH COPY_ONLY;"))
        .code(1)
        .stderr(contains("Msg 40510, Level 16"));
}

const CONTAINER: &str = "https://acct.blob.core.windows.net/backups";
const TOKEN: &str = "sv=2022-11-02&ss=b&sig=S3cr3tS4sT0ken";

fn urls(n: usize) -> Vec<String> {
    (1..=n)
        .map(|k| format!("{CONTAINER}/{DB}-{OLD}-{STAMP}-{k}of{n}.bak"))
        .collect()
}

fn url_list(urls: &[String]) -> String {
    urls.iter()
        .map(|u| format!("URL = N'{u}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn credential(scene: &Scene, verb: &str) {
    scene
        .sql(
            &format!("{verb} CREDENTIAL [{CONTAINER}] WITH IDENTITY = N'SHARED ACCESS SIGNATURE', SECRET = N'$(OCTOUP_SAS_TOKEN)';"),
            &[],
            &[("OCTOUP_SAS_TOKEN", TOKEN)],
        )
        .success();
}

#[test]
fn managed_instance_backup_to_url_and_rollback_by_rename_and_restore() {
    let scene = scene_on("azure-sql-managed-instance", |_| {});
    let set = urls(2);
    let backup = format!(
        "BACKUP DATABASE [{DB}] TO {} WITH COPY_ONLY, CHECKSUM, COMPRESSION, MAXTRANSFERSIZE = 4194304, BLOCKSIZE = 65536, STATS = 5;",
        url_list(&set)
    );
    let cred_q = format!(
        "SET NOCOUNT ON; SELECT N'octoup', name FROM sys.credentials WHERE name = N'{CONTAINER}';"
    );
    assert!(scene.rows(&cred_q).is_empty());
    // No credential for the container yet.
    scene
        .sqlcmd(&backup)
        .code(1)
        .stderr(contains(format!("Msg 3201, Level 16, State 1, Server 127.0.0.1,1433, Line 1\nCannot open backup device '{}'. Operating system error 50(The request is not supported.).", set[0])));
    credential(&scene, "CREATE");
    assert_eq!(scene.rows(&cred_q).len(), 1);
    credential(&scene, "ALTER");
    // The secret is never in the history (or the state).
    let history = std::fs::read_to_string(scene.path("history.jsonl")).unwrap();
    let state = std::fs::read_to_string(scene.path("state.json")).unwrap();
    assert!(!history.contains(TOKEN) && !state.contains(TOKEN));
    assert!(scene.has("credential-set"));
    assert!(!scene.has("secret-leak"));

    // MI: COPY_ONLY is mandatory, DISK is refused.
    scene
        .sqlcmd(&format!(
            "BACKUP DATABASE [{DB}] TO {} WITH CHECKSUM;",
            url_list(&set)
        ))
        .code(1)
        .stderr(contains("COPY_ONLY"));
    scene
        .sqlcmd(&format!(
            "BACKUP DATABASE [{DB}] TO DISK = N'/x.bak' WITH COPY_ONLY;"
        ))
        .code(1)
        .stderr(contains("Msg 41914"));
    scene
        .sqlcmd(&backup)
        .success()
        .stdout(contains("100 percent processed."))
        .stdout(contains("BACKUP DATABASE successfully processed"));
    assert!(
        scene
            .path("blob/acct/backups")
            .join(format!("{DB}-{OLD}-{STAMP}-2of2.bak"))
            .is_file()
    );
    scene
        .sqlcmd(&format!("RESTORE VERIFYONLY FROM {};", url_list(&set)))
        .success()
        .stdout(contains("The backup set on file 1 is valid."));

    scene.stop(N1);
    scene.update(|s| s.database.schema_version = NEW.into());
    // MI takes no WITH options on RESTORE, and no restore over an existing database.
    scene
        .sqlcmd(&format!("RESTORE DATABASE [{DB}] FROM {} WITH REPLACE, STATS = 5;", url_list(&set)))
        .code(1)
        .stderr(contains("Msg 41901, Level 16"))
        .stderr(contains("One or more of the options (replace, stats) are not supported for this statement in SQL Database Managed Instance."));
    scene
        .sqlcmd(&format!("RESTORE DATABASE [{DB}] FROM {};", url_list(&set)))
        .code(1)
        .stderr(contains("Msg 1801"));
    scene
        .sqlcmd(&format!(
            "ALTER DATABASE [{DB}] MODIFY NAME = [{DB}_octoup_failed_{STAMP}];"
        ))
        .success();
    scene
        .sqlcmd(&format!("RESTORE DATABASE [{DB}] FROM {};", url_list(&set)))
        .success();
    assert_eq!(scene.state().database.schema_version, OLD);
    assert!(!scene.state().instance_dbs.octopus_absent);
}

#[test]
fn sql_server_restores_from_url_with_replace() {
    let scene = scene_on("self-managed", |d| d.credentials = vec![CONTAINER.into()]);
    let set = urls(1);
    scene
        .sqlcmd(&format!(
            "BACKUP DATABASE [{DB}] TO {} WITH COPY_ONLY, CHECKSUM, STATS = 5;",
            url_list(&set)
        ))
        .success();
    scene.stop(N1);
    scene.update(|s| s.database.schema_version = NEW.into());
    scene
        .sqlcmd(&format!(
            "RESTORE DATABASE [{DB}] FROM {} WITH REPLACE, STATS = 5;",
            url_list(&set)
        ))
        .success()
        .stdout(contains("RESTORE DATABASE successfully processed"));
    assert_eq!(scene.state().database.schema_version, OLD);
    // More than 32 URL stripes.
    scene
        .sqlcmd(&format!(
            "BACKUP DATABASE [{DB}] TO {} WITH COPY_ONLY;",
            url_list(&urls(33))
        ))
        .code(1)
        .stderr(contains("Msg 3205"));
}

#[test]
fn scripting_variables() {
    let scene = scene_on("self-managed", |_| {});
    scene
        .sql("SELECT N'$(WHO)'", &["-h", "-1", "-W"], &[("WHO", "env")])
        .success()
        .stdout(contains("env"));
    scene
        .sql(
            "SELECT N'$(WHO)'",
            &["-h", "-1", "-W", "-v", "WHO=v"],
            &[("WHO", "env")],
        )
        .success()
        .stdout(contains("v\n"));
    scene
        .sql("SELECT N'$(NOPE_NOT_SET)'", &[], &[])
        .code(1)
        .stderr(contains("'NOPE_NOT_SET' scripting variable not defined."));
    scene
        .sql("SELECT N'$(WHO)'", &["-h", "-1", "-W", "-x"], &[])
        .success()
        .stdout(contains("$(WHO)"));
    // A secret typed into the query is a leak.
    let leaky = scene_on("self-managed", |_| {});
    leaky
        .sqlcmd(&format!("CREATE CREDENTIAL [{CONTAINER}] WITH IDENTITY = N'SHARED ACCESS SIGNATURE', SECRET = N'{TOKEN}';"))
        .success();
    assert!(leaky.has("secret-leak"));
}

const ARN: &str = "arn:aws:s3:::octo-bkt/octoup";

fn task_status(id: &str) -> String {
    format!("SET NOCOUNT ON; exec msdb.dbo.rds_task_status @task_id = {id};")
}

/// `restore` (an `rds_restore_database` onto `name`, which exists) starts a task that ends
/// ERROR with RDS's reason.
fn restore_ends_already_exists(scene: &Scene, restore: &str, name: &str) {
    let id = scene.rows(restore)[0][0].clone();
    let rows = wait_value(scene, &task_status(&id), 5, "ERROR");
    assert!(
        rows[0][6].contains(&format!("Database '{name}' already exists")),
        "{rows:?}"
    );
}

#[test]
fn rds_backup_task_then_rename_and_restore_task() {
    // ≈ 25 simulated seconds each at 75 MB/s.
    let scene = scene_on("amazon-rds", |_| {});
    let object = format!("{ARN}/{DB}-{OLD}-{STAMP}.bak");
    let backup = format!(
        "SET NOCOUNT ON; exec msdb.dbo.rds_backup_database @source_db_name = N'{DB}', @s3_arn_to_backup_to = N'{object}', @overwrite_s3_backup_file = 0, @type = N'FULL', @number_of_files = 1;"
    );
    scene.stop(N1);
    let row = scene.rows(&backup);
    assert_eq!(row.len(), 1);
    let row = &row[0];
    assert_eq!(row.len(), 14, "{row:?}");
    assert_eq!((row[1].as_str(), row[2].as_str()), ("BACKUP_DB", DB));
    assert!(
        ["CREATED", "IN_PROGRESS"].contains(&row[5].as_str()),
        "{row:?}"
    );
    assert_eq!(row[9], object);
    let id = row[0].clone();
    let done = wait_value(&scene, &task_status(&id), 5, "SUCCESS");
    assert_eq!(done[0][3], "100");
    assert!(
        scene
            .path("s3/octo-bkt/octoup")
            .join(format!("{DB}-{OLD}-{STAMP}.bak"))
            .is_file()
    );
    assert!(scene.has("rds-task-finished"));

    scene.update(|s| s.database.schema_version = NEW.into());
    let restore = format!(
        "SET NOCOUNT ON; exec msdb.dbo.rds_restore_database @restore_db_name = N'{DB}', @s3_arn_to_restore_from = N'{object}';"
    );
    // Onto an existing name: the task fails as RDS reports it.
    restore_ends_already_exists(&scene, &restore, DB);
    scene
        .sqlcmd(&format!(
            "EXEC rdsadmin.dbo.rds_modify_db_name N'{DB}', N'{DB}_octoup_failed_{STAMP}';"
        ))
        .success();
    let id = scene.rows(&restore)[0][0].clone();
    wait_value(&scene, &task_status(&id), 5, "SUCCESS");
    assert_eq!(scene.state().database.schema_version, OLD);
    assert!(!scene.violations().iter().any(|v| v.starts_with("\"I4\"")));
}

#[test]
fn rds_refusals() {
    let backup = format!(
        "exec msdb.dbo.rds_backup_database @source_db_name = N'{DB}', @s3_arn_to_backup_to = N'{ARN}/a.bak', @overwrite_s3_backup_file = 1, @type = N'FULL';"
    );
    scene_on("self-managed", |_| {})
        .sqlcmd(&backup)
        .code(1)
        .stderr(contains(
            "Msg 2812, Level 16, State 1, Server 127.0.0.1,1433, Line 1\nCould not find stored procedure 'msdb.dbo.rds_backup_database'.",
        ));
    scene_on("amazon-rds", |d| d.multi_az = true)
        .sqlcmd(&format!(
            "EXEC rdsadmin.dbo.rds_modify_db_name N'{DB}', N'x';"
        ))
        .code(1)
        .stderr(contains("Multi-AZ"));
    let multi = scene_on("amazon-rds", |d| d.multi_az = true);
    let mirroring = multi.rows(&format!("SET NOCOUNT ON; SELECT N'octoup', mirroring_state_desc FROM sys.database_mirroring WHERE database_id = DB_ID(N'{DB}');"));
    assert_eq!(mirroring[0][1], "SYNCHRONIZED");
    // At most two tasks at once (a big database keeps them running).
    let busy = scene_on("amazon-rds", |d| d.size_gb = 500.0);
    busy.sqlcmd(&backup).success();
    busy.sqlcmd(&backup).success();
    busy.sqlcmd(&backup)
        .code(1)
        .stderr(contains("2 native backup or restore tasks"));
    // Not in a backup file on disk.
    busy.sqlcmd(&format!("BACKUP DATABASE [{DB}] TO DISK = N'/x.bak';"))
        .code(1)
        .stderr(contains("Msg 262"));
}

/// The `db-restored-as` event for `database`, as JSON.
fn restored_as(scene: &Scene, database: &str) -> Option<serde_json::Value> {
    scene
        .history()
        .into_iter()
        .filter(|r| r.event.kind() == "db-restored-as")
        .map(|r| serde_json::to_value(&r).unwrap())
        .find(|v| v["database"] == database)
}

fn has_database(scene: &Scene, name: &str) -> bool {
    scene
        .state()
        .instance_dbs
        .databases
        .iter()
        .any(|d| d.name == name)
}

const COPY: &str = "OctopusRehearsal_1";

#[test]
fn managed_instance_restores_from_url_under_a_new_name_placing_the_files_itself() {
    let scene = scene_on("azure-sql-managed-instance", |_| {});
    let set = urls(2);
    credential(&scene, "CREATE");
    scene
        .sqlcmd(&format!(
            "BACKUP DATABASE [{DB}] TO {} WITH COPY_ONLY, CHECKSUM;",
            url_list(&set)
        ))
        .success();
    // Under a new name, MOVE and every other option are refused as over an existing one.
    scene
        .sqlcmd(&format!(
            "RESTORE DATABASE [{COPY}] FROM {} WITH MOVE N'{DB}' TO N'/x.mdf', STATS = 5;",
            url_list(&set)
        ))
        .code(1)
        .stderr(contains("Msg 41901"))
        .stderr(contains("(stats, move)"));
    scene
        .sqlcmd(&format!(
            "RESTORE DATABASE [{COPY}] FROM {} WITH REPLACE;",
            url_list(&set)
        ))
        .code(1)
        .stderr(contains("Msg 41901"));
    assert!(!has_database(&scene, COPY));
    // Nodes keep running: production is only read.
    scene
        .sqlcmd(&format!(
            "RESTORE DATABASE [{COPY}] FROM {};",
            url_list(&set)
        ))
        .success()
        .stdout(contains("RESTORE DATABASE successfully processed"));
    let v = restored_as(&scene, COPY).expect("db-restored-as for the copy");
    assert_eq!(
        (v["path"].as_str(), v["schema_version"].as_str()),
        (Some(set[0].as_str()), Some(OLD))
    );
    assert!(has_database(&scene, COPY));
    assert!(!scene.has("db-restored"), "production is untouched");
    // Again onto that name: MI never restores over a database.
    scene
        .sqlcmd(&format!("RESTORE DATABASE [{COPY}] FROM {};", url_list(&set)))
        .code(1)
        .stderr(contains(format!("Msg 1801, Level 16, State 1, Server 127.0.0.1,1433, Line 1\nDatabase '{COPY}' already exists.")));
    scene.sqlcmd(&format!("DROP DATABASE [{COPY}];")).success();
    assert!(!has_database(&scene, COPY));
    assert!(scene.violations().is_empty(), "{:?}", scene.violations());
}

#[test]
fn rds_restores_under_a_new_name_and_multi_az_drops_only_with_the_procedure() {
    let scene = scene_on("amazon-rds", |d| d.multi_az = true);
    let object = format!("{ARN}/{DB}-{OLD}-{STAMP}.bak");
    let id = scene.rows(&format!(
        "SET NOCOUNT ON; exec msdb.dbo.rds_backup_database @source_db_name = N'{DB}', @s3_arn_to_backup_to = N'{object}', @overwrite_s3_backup_file = 0, @type = N'FULL', @number_of_files = 1;"
    ))[0][0]
        .clone();
    wait_value(&scene, &task_status(&id), 5, "SUCCESS");
    let restore = format!(
        "SET NOCOUNT ON; exec msdb.dbo.rds_restore_database @restore_db_name = N'{COPY}', @s3_arn_to_restore_from = N'{object}';"
    );
    let id = scene.rows(&restore)[0][0].clone();
    let rows = wait_value(&scene, &task_status(&id), 5, "SUCCESS");
    assert_eq!(rows[0][2], COPY);
    let v = restored_as(&scene, COPY).expect("db-restored-as for the copy");
    assert_eq!(v["path"], object.as_str());
    assert!(has_database(&scene, COPY));
    assert!(!scene.has("db-restored"), "production is untouched");
    // RDS cannot restore over an existing name: the task ends ERROR.
    restore_ends_already_exists(&scene, &restore, COPY);
    // Multi-AZ mirrors every database: a plain DROP is refused, the procedure works.
    scene
        .sqlcmd(&format!("DROP DATABASE [{COPY}];"))
        .code(1)
        .stderr(contains("Msg 3743"));
    scene
        .sqlcmd(&format!("EXECUTE msdb.dbo.rds_drop_database N'{COPY}';"))
        .success();
    assert!(!has_database(&scene, COPY));
    scene
        .sqlcmd(&format!("EXECUTE msdb.dbo.rds_drop_database N'{COPY}';"))
        .code(1)
        .stderr(contains("Msg 3701"));
    // Elsewhere the procedure does not exist.
    scene_on("self-managed", |_| {})
        .sqlcmd(&format!("EXECUTE msdb.dbo.rds_drop_database N'{COPY}';"))
        .code(1)
        .stderr(contains("Msg 2812"));
    assert!(scene.violations().is_empty(), "{:?}", scene.violations());
}
