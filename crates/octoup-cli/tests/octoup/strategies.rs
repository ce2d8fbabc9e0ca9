//! Every database strategy end to end against the simulator: an upgrade; a failure after the
//! schema upgrade (a start that fails), rolled back automatically to the original, after
//! which the simulator's invariant check passes; and each refusal, with its reason.

use octoup_testkit::*;

const FROM: &str = "2024.1.10";
const TARGET: &str = "2024.3.13050";

/// The hostings and the config each strategy needs.
fn on(strategy: &str) -> Scenario {
    let s = Scenario::new();
    match strategy {
        "native" => s.config("database", "strategy", "native"),
        "snapshot" => s,
        "azure-copy" => s.database("hosting", "azure-sql-database"),
        "url" => s
            .database("hosting", "azure-sql-managed-instance")
            .database(
                "credentials",
                toml::Value::Array(vec!["https://acct.blob.core.windows.net/octopus".into()]),
            )
            .config(
                "database",
                "url",
                "https://acct.blob.core.windows.net/octopus",
            ),
        "rds" => s.database("hosting", "amazon-rds").config(
            "database",
            "rds_s3_arn",
            "arn:aws:s3:::octopus-backups/upgrades",
        ),
        other => panic!("no scenario for {other}"),
    }
}

/// The step that made the rollback point, per strategy.
fn point_step(strategy: &str) -> &'static str {
    match strategy {
        "snapshot" => "snapshot-database",
        "azure-copy" => "copy-database",
        _ => "backup-database",
    }
}

const STRATEGIES: [&str; 5] = ["native", "snapshot", "azure-copy", "url", "rds"];

#[test]
fn every_strategy_upgrades_with_its_rollback_point() {
    for strategy in STRATEGIES {
        let (sim, r) = on(strategy).run(&["upgrade", "--yes", "--json"]);
        r.expect_code(0);
        assert!(r.all_nodes_on(TARGET), "{strategy}: {}", r.stdout);
        assert_eq!(
            r.step(point_step(strategy), None),
            "done",
            "{strategy}: {}",
            r.stdout
        );
        assert_eq!(
            r.json["database"]["strategy"]["strategy"], strategy,
            "{strategy}: the strategy the run used: {}",
            r.stdout
        );
        sim.assert_check();
    }
}

#[test]
fn every_strategy_rolls_back_a_failure_after_the_schema_upgrade() {
    for strategy in STRATEGIES {
        let (sim, r) = on(strategy)
            .config("rollback", "automatic", true)
            .fault("service-start", "exit:1")
            .run(&["upgrade", "--yes", "--json"]);
        r.expect_code(5);
        assert_eq!(r.outcome(), "rolled-back", "{strategy}: {}", r.stdout);
        assert!(r.all_nodes_on(FROM), "{strategy}: {}", r.stdout);
        assert_eq!(
            sim.state()["database"]["schema_version"],
            FROM,
            "{strategy}: the schema is the original again"
        );
        assert_eq!(
            sim.count("db-upgrade-finished"),
            1,
            "{strategy}: the schema was upgraded before the failure"
        );
        sim.assert_check();
    }
}

/// `octoup doctor` refuses (exit 3) with `sql.strategy` saying `reason`; the upgrade is
/// refused too and changes nothing.
#[track_caller]
fn refused(s: Scenario, reason: &str) {
    refused_by(s, "sql.strategy", reason)
}

#[track_caller]
fn refused_by(s: Scenario, id: &str, reason: &str) {
    let (sim, r) = s.run(&["doctor", "--json"]);
    r.expect_code(3);
    let finding = r.json["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no {id}: {}", r.stdout))
        .to_string();
    assert!(finding.contains("blocker"), "{finding}");
    assert!(finding.contains(reason), "{reason}: {finding}");
    let up = sim.octoup(&["upgrade", "--yes", "--json"]);
    up.expect_code(3);
    assert_eq!(mutating(&sim.history()), Vec::<String>::new());
}

#[test]
fn each_refusal_names_its_reason() {
    // A configured snapshot, refused rather than downgraded, for each condition.
    let snapshot = || Scenario::new().config("database", "strategy", "snapshot");
    refused(
        snapshot().database(
            "existing_snapshots",
            toml::Value::Array(vec!["dba_snap".into()]),
        ),
        "dba_snap",
    );
    refused(snapshot().database("filestream", true), "FILESTREAM");
    refused(
        snapshot().database("memory_optimized", true),
        "memory-optimized",
    );
    refused(
        snapshot().database("availability_group", "AG1"),
        "availability group",
    );
    refused(snapshot().database("data_free_gb", 0.5), "free");
    refused(
        snapshot()
            .database("sql_version", "13.0.1601.5")
            .database("edition", "Standard Edition (64-bit)"),
        "2016 SP1",
    );
    // Managed hostings without what their strategy needs.
    refused(
        Scenario::new().database("hosting", "azure-sql-managed-instance"),
        "[database] url",
    );
    refused(
        Scenario::new().database("hosting", "amazon-rds"),
        "rds_s3_arn",
    );
    refused(
        Scenario::new().database("hosting", "google-cloud-sql"),
        "gcloud",
    );
    // The rights each strategy's point and rollback need, proven before the outage.
    refused_by(
        on("azure-copy").database("can_create_database", false),
        "sql.copy-rights",
        "dbmanager",
    );
    refused_by(
        on("url").database("can_restore", false),
        "sql.restore-rights",
        "FROM URL",
    );
    refused_by(
        snapshot().database("can_restore", false),
        "sql.restore-rights",
        "DATABASE_SNAPSHOT",
    );
    refused_by(
        snapshot().database("can_create_database", false),
        "sql.verify-rights",
        "database snapshot",
    );
    // RDS Multi-AZ: the rollback's rename is refused there.
    refused_by(
        on("rds").database("multi_az", true),
        "sql.rds-multi-az",
        "Multi-AZ",
    );
    // A strategy that does not fit the hosting.
    refused(
        Scenario::new().config("database", "strategy", "azure-copy"),
        "works only on Azure SQL Database",
    );
    refused(
        Scenario::new()
            .config("database", "strategy", "external")
            .config(
                "database",
                "external_backup",
                toml::Value::Array(vec!["true".into()]),
            ),
        "[rollback] enabled = false",
    );
}

#[test]
fn auto_falls_back_to_native_and_says_why() {
    let (sim, r) = Scenario::new()
        .database(
            "existing_snapshots",
            toml::Value::Array(vec!["dba_snap".into()]),
        )
        .run(&["upgrade", "--yes", "--json"]);
    r.expect_code(0);
    assert_eq!(r.step("backup-database", None), "done", "{}", r.stdout);
    assert!(!r.stdout.contains("snapshot-database"), "{}", r.stdout);
    sim.assert_check();
}
