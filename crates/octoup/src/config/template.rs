//! The commented `octoup.toml` that `octoup init` writes: every key with what it means, the
//! given values set, the rest commented out with their defaults (taken from
//! [`Config::default`], so they cannot drift). It never holds a secret.

use std::fmt::Write as _;

use super::{Config, ConfigError};

/// What `octoup init` was told.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// `[[nodes]]`: name (as registered in Octopus) and the node's own URL.
    pub nodes: Vec<(String, String)>,
    /// `[server] url`.
    pub url: Option<String>,
    /// The SQL Server host, for `sqlcmd -S`.
    pub sql_server: Option<String>,
    /// `[database] name`.
    pub database: Option<String>,
}

/// Every key of every table but `[[nodes]]`: table, key, what it means, and an example for
/// a key without a default.
pub(crate) const KEYS: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "server",
        "url",
        "The server or load balancer URL (OCTOPUS_URL overrides it). Plain http:// only for loopback hosts unless [network] allow_plain_http.",
        Some("\"https://octopus.example.com\""),
    ),
    (
        "server",
        "api_key_file",
        "A file holding the API key of a user with AdministerSystem (OCTOPUS_API_KEY overrides it). The key itself never goes in this file.",
        Some("\"api-key.txt\""),
    ),
    (
        "server",
        "instance",
        "The Octopus instance name on each node.",
        None,
    ),
    (
        "server",
        "server_exe",
        "argv prefix that runs Octopus.Server.exe (Linux containers: [\"/Octopus/Octopus.Server\"]).",
        None,
    ),
    (
        "versions",
        "feed",
        "The version feed: a URL, or a file (an air-gapped mirror).",
        None,
    ),
    (
        "versions",
        "allow",
        "How far to upgrade: patch (same major.minor), minor (same major) or major (any).",
        None,
    ),
    (
        "versions",
        "min_age_days",
        "Soak time: a release must be at least this many days old.",
        None,
    ),
    (
        "versions",
        "pin",
        "Stay on one release line.",
        Some("\"2024.3\""),
    ),
    ("versions", "exclude", "Versions never to install.", None),
    ("versions", "prereleases", "Consider pre-releases.", None),
    (
        "installer",
        "url",
        "Download URL template ({version} is filled in).",
        None,
    ),
    (
        "installer",
        "install",
        "argv that installs {installer}, logging to {log}.",
        None,
    ),
    (
        "installer",
        "uninstall",
        "argv that removes the installed version before a rollback installs the older one (MSIs refuse downgrades).",
        None,
    ),
    (
        "installer",
        "verify",
        "Optional argv run on {installer} (e.g. an Authenticode check); exit 0 = trusted.",
        None,
    ),
    (
        "installer",
        "sha256",
        "SHA-256 pin for the target's installer (64 hex digits).",
        Some("\"<64 hex digits>\""),
    ),
    (
        "installer",
        "sidecar",
        "URL template or file holding the installer's hex SHA-256.",
        Some("\"https://mirror.example.com/Octopus.{version}-x64.msi.sha256\""),
    ),
    (
        "installer",
        "allow_unverified",
        "Install even when no hash source vouches for the file.",
        None,
    ),
    (
        "installer",
        "cache_dir",
        "The download cache (default: <[state] dir>/cache).",
        Some("\"octoup-state/cache\""),
    ),
    (
        "installer",
        "busy_retries",
        "Retries when msiexec answers 1618 (another installation in progress).",
        None,
    ),
    (
        "installer",
        "download_retries",
        "A download gives up after this many failed attempts in a row that received nothing.",
        None,
    ),
    (
        "installer",
        "download_give_up_minutes",
        "No new download attempt starts after this many minutes.",
        None,
    ),
    ("database", "name", "The Octopus database name.", None),
    (
        "database",
        "sqlcmd",
        "sqlcmd argv prefix (octoup appends -Q <T-SQL>); -E is Windows authentication.",
        None,
    ),
    (
        "database",
        "password_file",
        "A file holding the SQL login password (SQL authentication only), given to sqlcmd only as SQLCMDPASSWORD.",
        Some("\"sql-password.txt\""),
    ),
    (
        "database",
        "backup_dir",
        "Where SQL Server writes the COPY_ONLY, CHECKSUM backup (a path the SQL Server can write).",
        None,
    ),
    (
        "database",
        "strategy",
        "The rollback point: auto (by the detected hosting and edition), native, snapshot, azure-copy, url, rds or external.",
        None,
    ),
    (
        "database",
        "compression",
        "COMPRESSION on the backup; absent: wherever the edition allows it (not Express, not Web).",
        Some("true"),
    ),
    (
        "database",
        "stripes",
        "Backup files written in parallel, one writer each (best on separate disks).",
        None,
    ),
    (
        "database",
        "max_transfer_size",
        "MAXTRANSFERSIZE in bytes: a multiple of 65536, at most 4194304.",
        Some("4194304"),
    ),
    (
        "database",
        "buffer_count",
        "BUFFERCOUNT (the backup uses buffer_count x max_transfer_size of memory).",
        Some("64"),
    ),
    (
        "database",
        "snapshot_dir",
        "snapshot: where the snapshot's sparse files go (a path on the SQL Server); absent: next to each data file.",
        Some("'D:\\SQLSnapshots'"),
    ),
    (
        "database",
        "url",
        "url: the Azure Blob container the backup goes to.",
        Some("\"https://account.blob.core.windows.net/octopus\""),
    ),
    (
        "database",
        "sas_token_file",
        "url: a file holding a SAS token for the container; octoup then creates the credential (absent: it must exist).",
        Some("\"sas-token.txt\""),
    ),
    (
        "database",
        "rds_s3_arn",
        "rds: the S3 bucket and prefix rds_backup_database writes to.",
        Some("\"arn:aws:s3:::octopus-backups/upgrades\""),
    ),
    (
        "database",
        "external_backup",
        "external: the argv that takes the hosting's own backup during the outage (the rollback is then manual).",
        Some("[\"gcloud\", \"sql\", \"backups\", \"create\", \"--instance=octopus-sql\"]"),
    ),
    (
        "backup",
        "dir",
        "Master key and license copies, readable by the owner only.",
        None,
    ),
    (
        "drain",
        "wait_seconds",
        "How long to wait for running tasks after draining.",
        None,
    ),
    (
        "drain",
        "cancel_tasks",
        "At the deadline cancel what still runs; otherwise undo and stop with a list of the tasks.",
        None,
    ),
    (
        "maintenance",
        "leave_on",
        "Leave maintenance mode on after a successful upgrade, for a person to verify.",
        None,
    ),
    (
        "state",
        "dir",
        "The journal, lock, run logs and the default installer cache.",
        None,
    ),
    (
        "rollback",
        "enabled",
        "Stage the current version's installer too, so a rollback never needs the network.",
        None,
    ),
    (
        "rollback",
        "automatic",
        "Roll back by itself when the database upgrade, a start or the verification fails.",
        None,
    ),
    (
        "rollback",
        "keep_hours",
        "Hours to keep the snapshot or database copy after a successful upgrade, so that `octoup rollback` can take the upgrade back; `octoup finalize` releases it sooner. 0 drops it as the last step (at most 168).",
        None,
    ),
    (
        "network",
        "proxy",
        "HTTPS proxy for the feed and downloads.",
        Some("\"http://proxy.example.com:3128\""),
    ),
    (
        "network",
        "ca_bundle",
        "Extra CA certificates (PEM) to trust.",
        Some("\"ca.pem\""),
    ),
    (
        "network",
        "allow_plain_http",
        "Accept http:// for non-loopback hosts.",
        None,
    ),
    (
        "timeouts",
        "command",
        "Seconds any other external command may run before it is killed and its step fails.",
        None,
    ),
    ("timeouts", "stop", "Seconds for a service stop.", None),
    (
        "timeouts",
        "start",
        "Seconds for a service start and its verification.",
        None,
    ),
    (
        "timeouts",
        "backup",
        "Seconds for the database backup and its RESTORE VERIFYONLY.",
        None,
    ),
    ("timeouts", "install", "Seconds for one install.", None),
    (
        "timeouts",
        "db_upgrade",
        "Seconds for the database upgrade.",
        None,
    ),
    ("timeouts", "http", "Seconds for one HTTP request.", None),
    (
        "cluster",
        "canary",
        "Start the primary alone first, then the others (costs one start time).",
        None,
    ),
    (
        "cluster",
        "on_failure",
        "pause (stop in a safe state; a re-run continues) or rollback (restore every node).",
        None,
    ),
    (
        "doctor",
        "accept",
        "Warnings accepted by id (`octoup doctor` lists them); the journal records each.",
        Some("[\"license.grace\"]"),
    ),
    (
        "doctor",
        "strict",
        "An unaccepted warning blocks the upgrade too (for unattended runs).",
        None,
    ),
    (
        "doctor",
        "integrity_check",
        "The System Integrity Check before the outage and after the start: off, warning or blocker (when it fails).",
        None,
    ),
    (
        "doctor",
        "integrity_timeout_seconds",
        "Seconds to wait for the System Integrity Check task.",
        None,
    ),
    (
        "doctor",
        "cancel_stuck_triggers",
        "Cancel a RecurringScheduledDeployments task stuck in the queue after the start (otherwise reported).",
        None,
    ),
    (
        "doctor",
        "stuck_task_minutes",
        "A RecurringScheduledDeployments task queued longer than this many minutes is stuck.",
        None,
    ),
    (
        "doctor",
        "tentacle_batch",
        "`octoup verify --upgrade-tentacles`: machines per Upgrade task after the one-machine canary.",
        None,
    ),
    (
        "doctor",
        "tentacle_timeout_seconds",
        "Seconds to wait for each Tentacle Upgrade task.",
        None,
    ),
    (
        "rehearsal",
        "image",
        "`octoup rehearse`: the image the Docker host runs against the copy; {version} is the target. Pin a digest (…:{version}@sha256:…) when you know it.",
        None,
    ),
    (
        "rehearsal",
        "docker",
        "argv of the Docker CLI on the rehearsal host (a Linux box that reaches the SQL Server).",
        None,
    ),
    (
        "rehearsal",
        "data_dir",
        "Where RESTORE … WITH MOVE puts the copy's files: a folder on the SQL Server (default: [database] backup_dir).",
        Some("'D:\\SQLData\\rehearsal'"),
    ),
    (
        "rehearsal",
        "database_prefix",
        "The scratch database's name prefix; the rehearsal id is appended.",
        None,
    ),
    (
        "rehearsal",
        "sql_server",
        "The SQL Server as the container reaches it, host,port (default: sqlcmd's -S). Give a name, not an address, so a TLS certificate still validates.",
        Some("\"sql01.example.com,1433\""),
    ),
    (
        "rehearsal",
        "sql_login",
        "The SQL login the container uses (default: sqlcmd's -U; Windows authentication cannot reach SQL Server from a Linux container).",
        Some("\"octopus-rehearsal\""),
    ),
    (
        "rehearsal",
        "sql_password_file",
        "That login's password file (default: [database] password_file). It reaches the container only through its environment.",
        Some("\"rehearsal-sql-password.txt\""),
    ),
    (
        "rehearsal",
        "connection_options",
        "Appended to the container's connection string.",
        None,
    ),
    (
        "rehearsal",
        "master_key_file",
        "The master key file (default: the newest master-key-*.txt octoup saved in [backup] dir, else read from the primary node and saved there).",
        Some("\"master-key.txt\""),
    ),
    (
        "rehearsal",
        "reuse_backup_hours",
        "Reuse the newest verified rehearsal backup younger than this many hours (0: always a fresh COPY_ONLY backup).",
        None,
    ),
    (
        "rehearsal",
        "start_timeout_minutes",
        "Minutes the migrations and the start may take on the copy before the rehearsal is no-go.",
        None,
    ),
    (
        "rehearsal",
        "host",
        "Where the target runs against the copy: \"docker\" (the vendor's Linux container; secrets only in its environment) or \"windows\" (a spare Windows node, [rehearsal.windows]).",
        None,
    ),
    (
        "rehearsal.windows",
        "instance_prefix",
        "With host = \"windows\": the rehearsal instance's name prefix; the rehearsal id is appended. Name the spare node in [rehearsal.windows.node] (name, url, ssh, server_exe, install, as [[nodes]]); it is never one of [[nodes]].",
        None,
    ),
    (
        "rehearsal.windows",
        "home",
        "A folder on the spare node; each rehearsal instance gets its own folder in it.",
        None,
    ),
    (
        "rehearsal.windows",
        "listen_port",
        "The port the rehearsal instance listens on (configure --webListenPrefixes); octoup reaches it at the spare node's url on this port.",
        None,
    ),
    (
        "rehearsal.windows",
        "secret_arguments",
        "Consent to the only route the vendor documents: the master key (and a SQL login's password) on the command line of Octopus.Server.exe database on the spare node. Off: host = \"windows\" is refused.",
        None,
    ),
    (
        "rehearsal.windows",
        "integrated_security",
        "Integrated Security in the rehearsal instance's connection string (recommended: no SQL password on a command line).",
        None,
    ),
    (
        "ssh",
        "program",
        "The OpenSSH client argv prefix (BatchMode=yes, StrictHostKeyChecking=yes and ConnectTimeout are always added).",
        None,
    ),
    (
        "ssh",
        "connect_timeout_seconds",
        "Seconds to wait for an SSH connection.",
        None,
    ),
    (
        "ssh",
        "options",
        "Extra -o options, e.g. \"UserKnownHostsFile=...\", \"IdentityFile=...\".",
        None,
    ),
    (
        "ssh",
        "remote_octoup",
        "How to run octoup on a remote node.",
        None,
    ),
];

/// Tables only a cluster needs.
const CLUSTER_ONLY: &[&str] = &["cluster", "ssh"];

const HEADER: &str = "\
# octoup.toml, written by `octoup init`. Every key is described in docs/configuration.md.
# A line \"# key = value\" shows the default (or an example): remove the \"# \" to change it.
# An unknown key is an error; relative paths are relative to this file's directory.
# No secret goes in this file: the API key comes from the OCTOPUS_API_KEY environment
# variable or [server] api_key_file. Check the file with `octoup config check`.
";

const REHEARSAL_SQL: &str = r#"
# Restore the rehearsal copy on a separate SQL Server instead of production's (docs/rehearsal.md):
# production's server only writes the COPY_ONLY backup; this one restores, holds and drops the copy.
# [rehearsal.sql]
#   sqlcmd = ["sqlcmd", "-S", "sqlrehearse01.example.com,1433", "-U", "octoup", "-b"]
#   password_file = "rehearsal-sql-password.txt"   # reaches sqlcmd only as SQLCMDPASSWORD
#   backup_dir = '\\nas\octopus\backups'          # [database] backup_dir as that server sees it
"#;

/// The commented config for `options`. Refuses what would put a secret in the file or not
/// load (the result always loads with [`Config::parse`]).
pub fn init_template(options: &InitOptions) -> Result<String, ConfigError> {
    let defaults = toml::Table::try_from(Config::default())
        .map_err(|e| ConfigError::Invalid(format!("the defaults do not serialize: {e}")))?;
    let mut set: Vec<(&str, &str, toml::Value)> = Vec::new();
    if let Some(url) = &options.url {
        no_credentials("--url", url)?;
        set.push(("server", "url", url.as_str().into()));
    }
    if let Some(host) = &options.sql_server {
        let mut sqlcmd = Config::default().database.sqlcmd;
        if let Some(i) = sqlcmd.iter().position(|a| a == "-S") {
            sqlcmd[i + 1] = host.clone();
        }
        set.push(("database", "sqlcmd", sqlcmd.into()));
    }
    if let Some(name) = &options.database {
        set.push(("database", "name", name.as_str().into()));
    }
    let mut out = String::from(HEADER);
    let mut table = "";
    for &(t, key, meaning, example) in KEYS {
        if !options.nodes.is_empty() || !CLUSTER_ONLY.contains(&t) {
            if t != table {
                table = t;
                let _ = write!(out, "\n[{t}]\n");
            }
            let _ = writeln!(out, "# {meaning}");
            let given = set.iter().find(|(st, sk, _)| *st == t && *sk == key);
            // A nested table (`rehearsal.windows`) is found part by part.
            let default = t
                .split('.')
                .try_fold(&defaults, |d, part| d.get(part)?.as_table())
                .and_then(|d| d.get(key))
                .map(ToString::to_string);
            match (given, default.as_deref().or(example)) {
                (Some((_, _, value)), _) => {
                    let _ = writeln!(out, "{key} = {value}");
                }
                (None, Some(value)) => {
                    let _ = writeln!(out, "# {key} = {value}");
                }
                (None, None) => {}
            }
        }
    }
    // Commented as a whole: an empty [rehearsal.sql] would not load.
    out.push_str(REHEARSAL_SQL);
    if options.nodes.is_empty() {
        out.push_str(
            "\n# One node: this machine. For an HA cluster add a [[nodes]] table per node\n# (`octoup init --nodes NAME=URL ...` writes them).\n",
        );
    }
    for (i, (name, url)) in options.nodes.iter().enumerate() {
        no_credentials("--nodes", url)?;
        let host = host_of(url);
        let _ = write!(
            out,
            "\n[[nodes]]\n# The node's name as registered in Octopus.\nname = {}\n# The node's own address, for ping and /api.\nurl = {}\n# user@host to reach the node over SSH; absent: the node is this machine.\n# ssh = {}\n",
            toml::Value::from(name.as_str()),
            toml::Value::from(url.as_str()),
            toml::Value::from(format!("admin@{host}")),
        );
        if i == 0 {
            out.push_str("# The node that runs the single database upgrade (default: the first).\nprimary = true\n# Optional per-node overrides: server_exe, instance, install, uninstall, remote_config.\n");
        }
    }
    Config::parse(&out)?;
    Ok(out)
}

/// The host of a URL (for the example `ssh` line).
fn host_of(url: &str) -> &str {
    let authority = authority(url);
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    if host.is_empty() { "host" } else { host }
}

/// The `[user@]host[:port]` part of a URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// Refuses a URL with a user name or password in it: no secret goes in the config.
fn no_credentials(flag: &str, url: &str) -> Result<(), ConfigError> {
    if authority(url).contains('@') {
        return Err(ConfigError::Invalid(format!(
            "{flag}: a URL with a user name or password in it would put a secret in the config; give the URL without them"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> InitOptions {
        InitOptions {
            nodes: vec![
                ("OCTO-NODE-01".into(), "https://octo-node-01".into()),
                ("OCTO-NODE-02".into(), "https://octo-node-02:8443/".into()),
            ],
            url: Some("https://octopus.example.com".into()),
            sql_server: Some("sql01.example.com".into()),
            database: Some("Octopus".into()),
        }
    }

    #[test]
    fn the_template_loads_with_the_given_values() {
        let config = Config::parse(&init_template(&cluster()).unwrap()).unwrap();
        assert_eq!(
            config.server.url.as_deref(),
            Some("https://octopus.example.com")
        );
        assert_eq!(config.database.name, "Octopus");
        assert_eq!(
            config.database.sqlcmd,
            ["sqlcmd", "-S", "sql01.example.com", "-E", "-b"]
        );
        let names: Vec<_> = config
            .nodes
            .iter()
            .map(|n| (&n.name[..], n.primary))
            .collect();
        assert_eq!(names, [("OCTO-NODE-01", true), ("OCTO-NODE-02", false)]);
        assert_eq!(config.nodes[1].url, "https://octo-node-02:8443/");
        // Everything else is the default.
        let mut expected = Config::default();
        expected.server.url = config.server.url.clone();
        expected.database = config.database.clone();
        expected.nodes = config.nodes.clone();
        assert_eq!(config, expected);

        let one = init_template(&InitOptions::default()).unwrap();
        assert_eq!(Config::parse(&one).unwrap(), Config::default());
        assert!(
            !one.contains("[ssh]") && !one.contains("\n[[nodes]]"),
            "{one}"
        );
    }

    #[test]
    fn every_key_is_explained_and_its_example_loads() {
        let text = init_template(&cluster()).unwrap();
        // Uncommenting every "# key = value" line gives a config that still loads.
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(kv)
                    if kv.split_once(" = ").is_some_and(|(k, _)| {
                        k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    }) =>
                {
                    format!("{kv}\n")
                }
                _ => format!("{l}\n"),
            })
            .collect();
        let config = Config::parse(&uncommented.replace("<64 hex digits>", &"a".repeat(64)))
            .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        assert_eq!(config.versions.pin.as_deref(), Some("2024.3"));
        assert_eq!(config.nodes[1].ssh.as_deref(), Some("admin@octo-node-02"));
        // Every key of every table has its line (a new key needs its meaning here), and
        // docs/configuration.md describes it.
        let docs = include_str!("../../../../docs/configuration.md");
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        for (table, keys) in &defaults {
            for (key, value) in keys.as_table().into_iter().flat_map(|t| t.iter()) {
                if value.is_table() {
                    // A nested table: its keys are listed under `table.key`.
                    for sub in value.as_table().into_iter().flat_map(|t| t.keys()) {
                        let nested = format!("{table}.{key}");
                        assert!(
                            KEYS.iter().any(|(t, k, _, _)| *t == nested && k == sub),
                            "[{nested}] {sub} is not in KEYS"
                        );
                    }
                    continue;
                }
                assert!(
                    KEYS.iter().any(|(t, k, _, _)| t == table && k == key),
                    "[{table}] {key} is not in KEYS"
                );
            }
        }
        for (table, key, _, _) in KEYS {
            assert!(
                text.contains(&format!("\n{key} = ")) || text.contains(&format!("# {key} = ")),
                "[{table}] {key}"
            );
            assert!(
                docs.contains(&format!("`{key}`")),
                "[{table}] {key} is not in docs/configuration.md"
            );
        }
    }

    #[test]
    fn no_secret_goes_in() {
        let mut options = cluster();
        options.url = Some("https://admin:hunter2@octopus.example.com".into());
        let e = init_template(&options).unwrap_err().to_string();
        assert!(e.contains("--url") && !e.contains("hunter2"), "{e}");
        let mut options = cluster();
        options.nodes[1].1 = "https://u:pw@node".into();
        assert!(
            init_template(&options)
                .unwrap_err()
                .to_string()
                .contains("--nodes")
        );
        // A bad cluster (two nodes of one name) is refused by the config's own checks.
        let mut options = cluster();
        options.nodes[1].0 = "octo-node-01".into();
        assert!(
            init_template(&options)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }
}
