//! Disarming the copy before any Octopus process sees it. A restored copy of production
//! still knows production's nodes, triggers, subscriptions, deployment targets and workers:
//! started as it is, it would deploy to production through its listening Tentacles. The
//! statements are the vendor's, for a cloned instance (OctopusDeploy/docs
//! `src/shared-content/upgrade/upgrade-disable-targets-cloned-instance.include.md`, and
//! `upgrade-update-installation-id.include.md` for a new installation id), run in one
//! batch in the copy, then read back: a copy that still has an armed row is never started.

use crate::database::sqlcmd_output;
use crate::database::tsql::quote_ident;

/// The vendor's statements, in the copy (`USE [copy]` first; on Azure SQL Database, where
/// `USE` is refused, the connection's database is the copy instead).
pub(crate) fn statements(copy: &str, use_database: bool) -> String {
    let mut sql = String::new();
    if use_database {
        sql.push_str(&format!("USE {};\n", quote_ident(copy)));
    }
    sql.push_str(
        "DELETE FROM dbo.OctopusServerNode;\n\
         IF EXISTS (SELECT NULL FROM sys.tables WHERE name = 'OctopusServerNodeStatus') DELETE FROM dbo.OctopusServerNodeStatus;\n\
         UPDATE dbo.Subscription SET IsDisabled = 1;\n\
         UPDATE dbo.ProjectTrigger SET IsDisabled = 1;\n\
         UPDATE dbo.Machine SET IsDisabled = 1;\n\
         IF EXISTS (SELECT NULL FROM sys.tables WHERE name = 'Worker') UPDATE dbo.Worker SET IsDisabled = 1;\n\
         DELETE FROM dbo.ExtensionConfiguration WHERE Id IN ('authentication-octopusid', 'jira-integration');\n\
         UPDATE dbo.Configuration SET [JSON] = JSON_MODIFY([JSON], '$.InstallationId', LOWER(CONVERT(NVARCHAR(255), NEWID()))) WHERE Id = 'upgradeavailability';",
    );
    sql
}

/// What is still armed, read back in the copy: one value per line.
pub(crate) fn check(copy: &str, use_database: bool) -> String {
    let mut sql = String::from("SET NOCOUNT ON;\n");
    if use_database {
        sql.push_str(&format!("USE {};\n", quote_ident(copy)));
    }
    sql.push_str(
        "SELECT COUNT(*) FROM dbo.OctopusServerNode;\n\
         SELECT COUNT(*) FROM dbo.Subscription WHERE IsDisabled = 0;\n\
         SELECT COUNT(*) FROM dbo.ProjectTrigger WHERE IsDisabled = 0;\n\
         SELECT COUNT(*) FROM dbo.Machine WHERE IsDisabled = 0;\n\
         SELECT COUNT(*) FROM dbo.Worker WHERE IsDisabled = 0;\n\
         SELECT JSON_VALUE([JSON], '$.InstallationId') FROM dbo.Configuration WHERE Id = 'upgradeavailability';",
    );
    sql
}

/// The tables [`check`] counts, in its order.
const ARMED: [&str; 5] = [
    "node registrations (OctopusServerNode)",
    "enabled subscriptions",
    "enabled project triggers",
    "enabled deployment targets",
    "enabled workers",
];

/// The copy as [`check`] found it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Disarmed {
    /// What is still armed, in words (empty: disarmed).
    pub armed: Vec<String>,
    pub installation_id: Option<String>,
}

/// Reads [`check`]'s output; `production_id` is the installation id the copy must no
/// longer carry. An answer that is not five counts is an error: octoup never guesses that
/// a copy is safe.
pub(crate) fn read(stdout: &str, production_id: Option<&str>) -> Result<Disarmed, String> {
    let values: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("Changed database context")
                && !l.starts_with('(')
                && !l.chars().all(|c| c == '-')
        })
        .collect();
    if values.len() < ARMED.len() {
        return Err(format!(
            "expected {} counts and the installation id, got {:?}",
            ARMED.len(),
            values
        ));
    }
    let mut armed = Vec::new();
    for (what, value) in ARMED.iter().zip(&values) {
        let n = sqlcmd_output::number(&Some(value.to_string()))
            .ok_or_else(|| format!("{what}: expected a count, got {value:?}"))?;
        if n > 0.0 {
            armed.push(format!("{n} {what}"));
        }
    }
    let installation_id = values
        .get(ARMED.len())
        .map(|v| v.to_string())
        .filter(|v| v != "NULL");
    if let (Some(copy), Some(prod)) = (&installation_id, production_id)
        && copy.eq_ignore_ascii_case(prod)
    {
        armed.push(format!("the production installation id {prod}"));
    }
    Ok(Disarmed {
        armed,
        installation_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statements_are_the_vendors_in_the_copy() {
        let sql = statements("Octo]Copy", true);
        assert!(sql.starts_with("USE [Octo]]Copy];\n"));
        for s in [
            "DELETE FROM dbo.OctopusServerNode;",
            "UPDATE dbo.Subscription SET IsDisabled = 1;",
            "UPDATE dbo.ProjectTrigger SET IsDisabled = 1;",
            "UPDATE dbo.Machine SET IsDisabled = 1;",
            "UPDATE dbo.Worker SET IsDisabled = 1;",
            "'$.InstallationId'",
        ] {
            assert!(sql.contains(s), "{s} missing from {sql}");
        }
        assert!(!statements("c", false).contains("USE"));
    }

    #[test]
    fn a_copy_is_disarmed_only_when_every_count_is_zero_and_the_id_is_new() {
        let ok = read("0\n0\n0\n0\n0\nabc\n", Some("prod")).unwrap();
        assert!(ok.armed.is_empty());
        assert_eq!(ok.installation_id.as_deref(), Some("abc"));
        let armed = read(
            "Changed database context to 'c'.\n2\n0\n3\n0\n0\nPROD\n",
            Some("prod"),
        )
        .unwrap();
        assert_eq!(armed.armed.len(), 3, "{:?}", armed.armed);
        assert!(armed.armed[0].contains("node registrations"));
        assert!(read("0\n0\n", None).is_err());
        assert!(read("0\nx\n0\n0\n0\n", None).is_err());
    }
}
