//! The choice of strategy: `auto` by the detected hosting and edition, or the configured one
//! checked against the hosting. Pure, so every rule is table-tested. Facts:
//! shared/reference/sql-hosting-and-backups.md §2–§3.

use serde::{Deserialize, Serialize};

use super::detect::{Detected, Hosting};
use crate::config::{DatabaseConfig, DatabaseStrategy};

/// The strategy a run uses, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub strategy: DatabaseStrategy,
    /// In words: what was detected and why this strategy.
    pub why: String,
    /// `COMPRESSION` on the backups this strategy takes.
    pub compression: bool,
    /// The hosting it was chosen for (how a restore goes differs on Managed Instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosting: Option<Hosting>,
}

impl Choice {
    /// The native backup, when nothing chose otherwise (no database checks were made, or a
    /// journal from before strategies).
    pub fn native(why: &str, compression: bool) -> Choice {
        Choice {
            strategy: DatabaseStrategy::Native,
            why: why.to_string(),
            compression,
            hosting: None,
        }
    }
}

/// No strategy can run here, with the reason and the way out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{found}: {why}. {fix}")]
pub struct Refusal {
    pub found: String,
    pub why: String,
    pub fix: String,
}

/// Why a self-managed database cannot have a snapshot as its rollback point, or `None` when
/// every condition is proven. An unknown fact is a reason too: never assume it is fine.
pub fn snapshot_refusal(d: &Detected) -> Option<String> {
    match d.snapshot_supported() {
        Some(true) => {}
        Some(false) => {
            return Some(format!(
                "SQL Server {} ({}) has database snapshots only from 2016 SP1 (13.0.4001)",
                d.product_version.as_deref().unwrap_or("?"),
                d.edition.as_deref().unwrap_or("?")
            ));
        }
        None => return Some("the SQL Server version and edition could not be read".into()),
    }
    match d.snapshots.as_deref() {
        Some([]) => {}
        Some(names) => {
            return Some(format!(
                "the database already has a snapshot ({}); a revert needs it to be the only one",
                names.join(", ")
            ));
        }
        None => return Some("whether the database already has snapshots could not be read".into()),
    }
    match d.filestream {
        Some(false) => {}
        Some(true) => {
            return Some(
                "the database has FILESTREAM or memory-optimized data: a snapshot cannot be reverted with FILESTREAM, nor made with a memory-optimized filegroup".into(),
            );
        }
        None => return Some("the database's file types could not be read".into()),
    }
    match d.availability_group {
        Some(false) => {}
        Some(true) => {
            return Some(
                "the database is in an availability group: a snapshot stays on the replica that made it, and a revert is not possible there".into(),
            );
        }
        None => {
            return Some(
                "whether the database is in an availability group could not be read".into(),
            );
        }
    }
    match (d.data_bytes, d.data_free_bytes) {
        (Some(data), Some(free)) if free >= data => None,
        (Some(data), Some(free)) => Some(format!(
            "the data volume has {} free, less than the {} of data files a snapshot can grow to while the migrations rewrite tables",
            crate::process::fsutil::bytes(free),
            crate::process::fsutil::bytes(data)
        )),
        _ => Some("the data files' size and their volume's free space could not be read".into()),
    }
}

/// The strategy for this database.
pub fn choose(c: &DatabaseConfig, d: &Detected, rollback: bool) -> Result<Choice, Refusal> {
    let hosting = d.hosting;
    let hosting_name = hosting
        .map(Hosting::name)
        .unwrap_or("an undetected hosting");
    let compression = c
        .compression
        .unwrap_or_else(|| d.compression_allowed().unwrap_or(false));
    let chosen = |strategy, why| Ok(pick(strategy, why, compression, d));
    let strategy = c.strategy;
    let mismatch = |needs: &str| {
        Refusal {
        found: format!("[database] strategy = \"{strategy}\" on {hosting_name}"),
        why: format!("that strategy works only on {needs}"),
        fix: "set [database] strategy = \"auto\" to let octoup pick, or the one `octoup doctor` names".into(),
    }
    };
    match strategy {
        DatabaseStrategy::Auto => auto(c, d, compression),
        DatabaseStrategy::Native | DatabaseStrategy::Snapshot
            if hosting.is_some_and(|h| h != Hosting::SelfManaged) =>
        {
            Err(mismatch("self-managed SQL Server (BACKUP … TO DISK)"))
        }
        DatabaseStrategy::Snapshot => match snapshot_refusal(d) {
            None => chosen(strategy, "configured; every condition for a snapshot holds".into()),
            Some(reason) => Err(Refusal {
                found: "[database] strategy = \"snapshot\"".into(),
                why: reason,
                fix: "fix that, or set [database] strategy = \"native\" (a backup during the outage)".into(),
            }),
        },
        DatabaseStrategy::AzureCopy if hosting != Some(Hosting::AzureSqlDatabase) => {
            Err(mismatch("Azure SQL Database"))
        }
        DatabaseStrategy::Url
            if !matches!(
                hosting,
                Some(Hosting::AzureSqlManagedInstance | Hosting::SelfManaged)
            ) =>
        {
            Err(mismatch("Azure SQL Managed Instance or self-managed SQL Server"))
        }
        DatabaseStrategy::Rds if hosting != Some(Hosting::AmazonRds) => {
            Err(mismatch("Amazon RDS for SQL Server"))
        }
        DatabaseStrategy::External if rollback => Err(Refusal {
            found: "[database] strategy = \"external\" with [rollback] enabled".into(),
            why: "octoup cannot restore a backup the hosting took by itself, so it could not carry out a rollback".into(),
            fix: "set [rollback] enabled = false (the rollback is then yours: docs/database.md, \"external\"), or choose a strategy octoup can restore".into(),
        }),
        _ => chosen(strategy, format!("configured, on {hosting_name}")),
    }
}

fn pick(strategy: DatabaseStrategy, why: String, compression: bool, d: &Detected) -> Choice {
    Choice {
        strategy,
        why,
        compression,
        hosting: d.hosting,
    }
}

fn auto(c: &DatabaseConfig, d: &Detected, compression: bool) -> Result<Choice, Refusal> {
    let chosen = |strategy, why| Ok(pick(strategy, why, compression, d));
    match d.hosting {
        Some(Hosting::SelfManaged) => match snapshot_refusal(d) {
            None => chosen(
                DatabaseStrategy::Snapshot,
                format!(
                    "self-managed SQL Server {} ({}): a verified backup before the outage, a database snapshot in it (seconds, whatever the size)",
                    d.product_version.as_deref().unwrap_or("?"),
                    d.edition.as_deref().unwrap_or("?")
                ),
            ),
            Some(reason) => chosen(
                DatabaseStrategy::Native,
                format!("self-managed SQL Server, but no snapshot: {reason}; a verified backup during the outage"),
            ),
        },
        Some(Hosting::AzureSqlDatabase) => chosen(
            DatabaseStrategy::AzureCopy,
            "Azure SQL Database allows no BACKUP: a database copy during the outage (CREATE DATABASE … AS COPY OF)".into(),
        ),
        Some(Hosting::AzureSqlManagedInstance) if c.url.is_some() => chosen(
            DatabaseStrategy::Url,
            "Azure SQL Managed Instance backs up only to URL: a COPY_ONLY backup to the configured container".into(),
        ),
        Some(Hosting::AzureSqlManagedInstance) => Err(Refusal {
            found: "the database is on Azure SQL Managed Instance".into(),
            why: "it backs up only TO URL (Azure Blob Storage, COPY_ONLY), and [database] url is not set".into(),
            fix: "set [database] url = \"https://<account>.blob.core.windows.net/<container>\" and, unless the credential exists, [database] sas_token_file".into(),
        }),
        Some(Hosting::AmazonRds) if c.rds_s3_arn.is_some() => chosen(
            DatabaseStrategy::Rds,
            "Amazon RDS allows no BACKUP … TO DISK: a native backup to S3 through msdb.dbo.rds_backup_database".into(),
        ),
        Some(Hosting::AmazonRds) => Err(Refusal {
            found: "the database is on Amazon RDS for SQL Server".into(),
            why: "it backs up only to S3 through msdb.dbo.rds_backup_database (option group SQLSERVER_BACKUP_RESTORE), and [database] rds_s3_arn is not set".into(),
            fix: "set [database] rds_s3_arn = \"arn:aws:s3:::<bucket>/<prefix>\" (same region, with the option group's IAM role allowed to write there)".into(),
        }),
        Some(Hosting::GoogleCloudSql) => Err(Refusal {
            found: "the database is on Google Cloud SQL for SQL Server".into(),
            why: "the login has no sysadmin or dbcreator there, so T-SQL BACKUP and RESTORE cannot be used".into(),
            fix: "take the instance's on-demand backup through octoup: [database] strategy = \"external\", external_backup = [\"gcloud\", \"sql\", \"backups\", \"create\", \"--instance=<instance>\"], and [rollback] enabled = false (a rollback restores that backup by hand: docs/database.md, \"Cloud SQL\")".into(),
        }),
        None => Err(Refusal {
            found: "the database's hosting could not be detected".into(),
            why: "octoup picks the rollback point by hosting and edition (SERVERPROPERTY('EngineEdition') could not be read)".into(),
            fix: "check that sqlcmd reaches the server (`octoup doctor` shows the error), or set [database] strategy explicitly".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_managed() -> Detected {
        Detected {
            hosting: Some(Hosting::SelfManaged),
            product_version: Some("15.0.4322.2".into()),
            edition: Some("Standard Edition (64-bit)".into()),
            snapshots: Some(vec![]),
            filestream: Some(false),
            availability_group: Some(false),
            data_bytes: Some(100),
            data_free_bytes: Some(1000),
            multi_az: None,
        }
    }

    fn pick(c: &DatabaseConfig, d: &Detected) -> Result<DatabaseStrategy, String> {
        choose(c, d, true)
            .map(|c| c.strategy)
            .map_err(|r| r.to_string())
    }

    #[test]
    fn auto_picks_by_hosting_and_edition_and_says_why() {
        let c = DatabaseConfig::default();
        let d = self_managed();
        let choice = choose(&c, &d, true).unwrap();
        assert_eq!(choice.strategy, DatabaseStrategy::Snapshot);
        assert!(choice.compression, "Standard compresses");
        assert!(choice.why.contains("15.0.4322.2"), "{}", choice.why);

        let express = Detected {
            edition: Some("Express Edition (64-bit)".into()),
            ..self_managed()
        };
        assert!(!choose(&c, &express, true).unwrap().compression);

        // Every reason a snapshot cannot be had falls back to the native backup, saying it.
        let cases: Vec<(Detected, &str)> = vec![
            (
                Detected {
                    product_version: Some("13.0.1601.5".into()),
                    ..self_managed()
                },
                "2016 SP1",
            ),
            (
                Detected {
                    snapshots: Some(vec!["dba_snap".into()]),
                    ..self_managed()
                },
                "dba_snap",
            ),
            (
                Detected {
                    filestream: Some(true),
                    ..self_managed()
                },
                "FILESTREAM",
            ),
            (
                Detected {
                    availability_group: Some(true),
                    ..self_managed()
                },
                "availability group",
            ),
            (
                Detected {
                    data_free_bytes: Some(50),
                    ..self_managed()
                },
                "free",
            ),
            (
                Detected {
                    snapshots: None,
                    ..self_managed()
                },
                "could not be read",
            ),
        ];
        for (d, reason) in cases {
            let choice = choose(&c, &d, true).unwrap();
            assert_eq!(choice.strategy, DatabaseStrategy::Native, "{reason}");
            assert!(choice.why.contains(reason), "{reason}: {}", choice.why);
        }
        // Enterprise had snapshots before SP1.
        let ent = Detected {
            product_version: Some("13.0.1601.5".into()),
            edition: Some("Enterprise Edition: Core-based Licensing (64-bit)".into()),
            ..self_managed()
        };
        assert_eq!(pick(&c, &ent).unwrap(), DatabaseStrategy::Snapshot);

        let on = |h| Detected {
            hosting: Some(h),
            ..Detected::default()
        };
        assert_eq!(
            pick(&c, &on(Hosting::AzureSqlDatabase)).unwrap(),
            DatabaseStrategy::AzureCopy
        );
        assert!(
            pick(&c, &on(Hosting::AzureSqlManagedInstance))
                .unwrap_err()
                .contains("[database] url")
        );
        assert!(
            pick(&c, &on(Hosting::AmazonRds))
                .unwrap_err()
                .contains("rds_s3_arn")
        );
        let cloud = pick(&c, &on(Hosting::GoogleCloudSql)).unwrap_err();
        assert!(
            cloud.contains("gcloud") && cloud.contains("external"),
            "{cloud}"
        );
        assert!(
            pick(&c, &Detected::default())
                .unwrap_err()
                .contains("could not be detected")
        );

        let with = DatabaseConfig {
            url: Some("https://a.blob.core.windows.net/c".into()),
            rds_s3_arn: Some("arn:aws:s3:::b".into()),
            ..DatabaseConfig::default()
        };
        assert_eq!(
            pick(&with, &on(Hosting::AzureSqlManagedInstance)).unwrap(),
            DatabaseStrategy::Url
        );
        assert_eq!(
            pick(&with, &on(Hosting::AmazonRds)).unwrap(),
            DatabaseStrategy::Rds
        );
    }

    #[test]
    fn a_configured_strategy_must_fit_the_hosting() {
        let with = |strategy| DatabaseConfig {
            strategy,
            ..DatabaseConfig::default()
        };
        let azure = Detected {
            hosting: Some(Hosting::AzureSqlDatabase),
            ..Detected::default()
        };
        for s in [
            DatabaseStrategy::Native,
            DatabaseStrategy::Snapshot,
            DatabaseStrategy::Rds,
            DatabaseStrategy::Url,
        ] {
            let e = pick(&with(s), &azure).unwrap_err();
            assert!(
                e.contains("azure-sql-database") && e.contains("works only on"),
                "{e}"
            );
        }
        assert_eq!(
            pick(&with(DatabaseStrategy::AzureCopy), &azure).unwrap(),
            DatabaseStrategy::AzureCopy
        );
        let e = pick(&with(DatabaseStrategy::AzureCopy), &self_managed()).unwrap_err();
        assert!(e.contains("Azure SQL Database"), "{e}");
        // A configured snapshot is refused, not downgraded, when a condition fails.
        let ag = Detected {
            availability_group: Some(true),
            ..self_managed()
        };
        let e = pick(&with(DatabaseStrategy::Snapshot), &ag).unwrap_err();
        assert!(
            e.contains("availability group") && e.contains("native"),
            "{e}"
        );
        // external only with rollback off: octoup could not restore it.
        let e = choose(&with(DatabaseStrategy::External), &self_managed(), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[rollback] enabled = false"), "{e}");
        assert!(choose(&with(DatabaseStrategy::External), &self_managed(), false).is_ok());
        // Compression: configured wins over the edition.
        let off = DatabaseConfig {
            compression: Some(false),
            ..DatabaseConfig::default()
        };
        assert!(!choose(&off, &self_managed(), true).unwrap().compression);
    }
}
