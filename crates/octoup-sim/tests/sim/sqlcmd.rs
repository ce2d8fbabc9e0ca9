//! The sqlcmd stand-in: backup, verify, restore, authentication and everything else refused.

use octoup_sim::history::Event;
use predicates::str::contains;

use crate::scene::{NEW, OLD, Scene};

const N1: &str = "OCTO-NODE-01";

/// `N'...'` with quotes doubled.
fn quoted(path: &std::path::Path) -> String {
    format!("N'{}'", path.display().to_string().replace('\'', "''"))
}

fn backup_sql(path: &std::path::Path) -> String {
    format!(
        "BACKUP DATABASE [OctopusDeploy] TO DISK = {} WITH COPY_ONLY, CHECKSUM, COMPRESSION, INIT",
        quoted(path)
    )
}

fn verify_sql(path: &std::path::Path) -> String {
    format!("RESTORE VERIFYONLY FROM DISK = {}", quoted(path))
}

fn restore_sql(path: &std::path::Path) -> String {
    format!(
        "RESTORE DATABASE [OctopusDeploy] FROM DISK = {} WITH REPLACE",
        quoted(path)
    )
}

#[test]
fn backup_verify_and_restore_round_trip() {
    let scene = Scene::with_nodes(1);
    let bak = scene.path("sql-backups").join("it's.bak");
    scene
        .sqlcmd(&backup_sql(&bak))
        .success()
        .stdout(contains("BACKUP DATABASE successfully processed"));
    assert!(bak.is_file());
    scene
        .sqlcmd(&verify_sql(&bak))
        .success()
        .stdout(contains("The backup set on file 1 is valid."));

    // Upgrade, then restore the pre-upgrade backup with every node stopped.
    scene.stop(N1);
    scene.update(|s| s.database.schema_version = NEW.into());
    scene
        .sqlcmd(&restore_sql(&bak))
        .success()
        .stdout(contains("RESTORE DATABASE successfully processed"));
    assert_eq!(scene.state().database.schema_version, OLD);
    let history = scene.history();
    let created = history.iter().find_map(|r| match &r.event {
        Event::DbBackupCreated {
            copy_only,
            checksum,
            schema_version,
            ..
        } => Some((*copy_only, *checksum, schema_version.clone())),
        _ => None,
    });
    assert_eq!(created, Some((true, true, OLD.to_string())));
    assert!(scene.has("db-backup-verified"));
    assert!(history.iter().any(|r| matches!(&r.event,
        Event::DbRestored { from_schema, to_schema, .. } if from_schema == NEW && to_schema == OLD)));
}

#[test]
fn restore_is_refused_while_a_node_runs() {
    let scene = Scene::with_nodes(2);
    let bak = scene.path("sql-backups").join("a.bak");
    scene.sqlcmd(&backup_sql(&bak)).success();
    scene.stop(N1);
    scene
        .sqlcmd(&restore_sql(&bak))
        .code(1)
        .stderr(contains("Msg 3101, Level 16"))
        .stderr(contains(
            "Exclusive access could not be obtained because the database is in use.",
        ));
    assert!(!scene.has("db-restored"));
}

#[test]
fn a_damaged_or_missing_backup_fails_verification() {
    let scene = Scene::with_nodes(1);
    let bak = scene.path("sql-backups").join("a.bak");
    scene.sqlcmd(&backup_sql(&bak)).success();
    let mut bytes = std::fs::read(&bak).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0x01;
    std::fs::write(&bak, bytes).unwrap();
    scene
        .sqlcmd(&verify_sql(&bak))
        .code(1)
        .stderr(contains("Damage to the backup set was detected"))
        .stderr(contains("VERIFY DATABASE is terminating abnormally."));
    assert!(scene.has("db-backup-verify-failed"));
    assert!(!scene.has("db-backup-verified"));
    scene
        .sqlcmd(&verify_sql(&scene.path("nope.bak")))
        .code(1)
        .stderr(contains("Operating system error 2"));
    scene
        .sqlcmd(&backup_sql(&scene.path("no-dir").join("x.bak")))
        .code(1)
        .stderr(contains("Operating system error 3"));
    scene
        .sqlcmd("BACKUP DATABASE [Other] TO DISK = N'x.bak'")
        .code(1)
        .stderr(contains("Database 'Other' does not exist"));
}

#[test]
fn other_t_sql_is_a_syntax_error_and_b_decides_the_exit_code() {
    let scene = Scene::with_nodes(1);
    scene
        .sqlcmd("TRUNCATE TABLE [Event]")
        .code(1)
        .stderr(contains(
            "Msg 102, Level 15, State 1, Server 127.0.0.1,1433, Line 1",
        ))
        .stderr(contains("Incorrect syntax near 'TRUNCATE'."));
    // DROP DATABASE is understood, and refused while Octopus uses the database.
    scene
        .sqlcmd("DROP DATABASE [OctopusDeploy]")
        .code(1)
        .stderr(contains("Msg 3702, Level 16"));
    let password = scene.state().secrets.sql_password;
    // Without -b sqlcmd prints the error but exits 0, as the real one does.
    scene
        .sqlcmd_args(
            &["-S", "db", "-U", "octoup", "-Q", "SHUTDOWN"],
            Some(&password),
        )
        .success()
        .stderr(contains("Incorrect syntax near 'SHUTDOWN'."));
    scene
        .sqlcmd("SELECT @@VERSION")
        .success()
        .stdout(contains("Microsoft SQL Server"));
}

#[test]
fn the_password_comes_from_sqlcmdpassword_and_p_is_a_leak() {
    let scene = Scene::with_nodes(1);
    let q = [
        "-S",
        "db",
        "-d",
        "master",
        "-U",
        "octoup",
        "-b",
        "-Q",
        "SELECT @@VERSION",
    ];
    scene
        .sqlcmd_args(&q, Some("wrong"))
        .code(1)
        .stderr(contains("Login failed for user 'octoup'"));
    scene
        .sqlcmd_args(&q, None)
        .code(1)
        .stderr(contains("Login failed"));
    // Windows authentication needs no password.
    scene
        .sqlcmd_args(&["-S", "db", "-E", "-b", "-Q", "SELECT @@VERSION"], None)
        .success();
    assert!(!scene.has("secret-leak"));
    let password = scene.state().secrets.sql_password;
    let mut with_p = q.to_vec();
    with_p.extend(["-P", &password]);
    scene.sqlcmd_args(&with_p, None).success();
    assert!(scene.has("secret-leak"));
    // The history never holds the password itself.
    let text = std::fs::read_to_string(scene.store.history_path()).unwrap();
    assert!(!text.contains(&password));
}

#[test]
fn sql_faults() {
    let scene = Scene::with_nodes(1);
    let bak = scene.path("sql-backups").join("a.bak");
    scene.fault("sql-backup", "exit:7", None, 1);
    scene
        .sqlcmd(&backup_sql(&bak))
        .code(7)
        .stderr(contains("There is not enough space on the disk"));
    assert!(!bak.exists());
    scene.sqlcmd(&backup_sql(&bak)).success();
    scene.fault("sql-verify", "exit:1", None, 1);
    scene
        .sqlcmd(&verify_sql(&bak))
        .code(1)
        .stderr(contains("VERIFY DATABASE is terminating abnormally"));
    scene.stop(N1);
    scene.fault("sql-restore", "exit:1", None, 1);
    scene
        .sqlcmd(&restore_sql(&bak))
        .code(1)
        .stderr(contains("RESTORE DATABASE is terminating abnormally"));
    assert!(!scene.has("db-restored"));
}
