//! The checks a config passes after it parsed: each failure names its key (the caller
//! finds it in the file) and says what was expected and found.

use super::diagnostic::{KeyPath, Problem};
use super::{
    Config, DatabaseConfig, DatabaseStrategy, DoctorConfig, InstallerConfig, SshConfig,
    TimeoutsConfig,
};

/// The longest `[rollback] keep_hours` accepted.
pub const MAX_KEEP_HOURS: u64 = 168;

impl TimeoutsConfig {
    /// Every `[timeouts]` key and its value.
    fn entries(&self) -> [(&'static str, u64); 7] {
        [
            ("command", self.command),
            ("stop", self.stop),
            ("start", self.start),
            ("backup", self.backup),
            ("install", self.install),
            ("db_upgrade", self.db_upgrade),
            ("http", self.http),
        ]
    }
}

impl DatabaseConfig {
    /// The backup tuning and what the chosen strategy needs.
    fn validate(&self) -> Result<(), Problem> {
        let at =
            |key: &str, message: String| Err(Problem::at(KeyPath::key("database", key), message));
        // BACKUP takes at most 64 devices; TO URL at most 32; rds_backup_database at most 10.
        let most = match self.strategy {
            DatabaseStrategy::Url => 32,
            DatabaseStrategy::Rds => 10,
            _ => 64,
        };
        if !(1..=most).contains(&self.stripes) {
            return at(
                "stripes",
                format!(
                    "expected 1 to {most} files for strategy {}, found {}",
                    self.strategy, self.stripes
                ),
            );
        }
        if let Some(size) = self.max_transfer_size
            && (size == 0 || size % 65_536 != 0 || size > 4_194_304)
        {
            return at(
                "max_transfer_size",
                format!("expected a multiple of 65536 from 65536 to 4194304 bytes, found {size}"),
            );
        }
        if self.buffer_count == Some(0) {
            return at(
                "buffer_count",
                "expected at least 1 (or leave it out)".into(),
            );
        }
        match self.strategy {
            DatabaseStrategy::Url => match self.url.as_deref() {
                None => {
                    return at(
                        "url",
                        "is missing: strategy \"url\" needs the blob container, e.g. \"https://account.blob.core.windows.net/octopus\"".into(),
                    );
                }
                Some(u)
                    if !u.starts_with("https://")
                        || u.trim_end_matches('/').matches('/').count() < 3 =>
                {
                    return at(
                        "url",
                        format!(
                            "expected https://<account>.blob.core.windows.net/<container>, found {u:?}"
                        ),
                    );
                }
                Some(_) => {}
            },
            DatabaseStrategy::Rds => match self.rds_s3_arn.as_deref() {
                None => {
                    return at(
                        "rds_s3_arn",
                        "is missing: strategy \"rds\" needs the S3 bucket (and prefix), e.g. \"arn:aws:s3:::octopus-backups/upgrades\"".into(),
                    );
                }
                Some(a)
                    if a.strip_prefix("arn:aws:s3:::")
                        .is_none_or(|b| b.trim_matches('/').is_empty() || b.contains('*')) =>
                {
                    return at(
                        "rds_s3_arn",
                        format!(
                            "expected arn:aws:s3:::<bucket>[/prefix] (no wildcard: octoup names the files), found {a:?}"
                        ),
                    );
                }
                Some(_) => {}
            },
            DatabaseStrategy::External if self.external_backup.is_empty() => {
                return at(
                    "external_backup",
                    "is empty: strategy \"external\" needs the argv that takes the hosting's backup, e.g. [\"gcloud\", \"sql\", \"backups\", \"create\", \"--instance=octopus-sql\"]".into(),
                );
            }
            _ => {}
        }
        Ok(())
    }
}

impl Config {
    pub(super) fn validate(&self) -> Result<(), Problem> {
        let at = |table: &str, key: &str, message: String| {
            Err(Problem::at(KeyPath::key(table, key), message))
        };
        if !matches!(self.versions.allow.as_str(), "patch" | "minor" | "major") {
            return at(
                "versions",
                "allow",
                format!(
                    "expected patch, minor or major, found {:?}",
                    self.versions.allow
                ),
            );
        }
        if self.server.server_exe.is_empty() {
            return at(
                "server",
                "server_exe",
                "is empty: give the argv that runs Octopus.Server.exe".into(),
            );
        }
        if self.server.instance.trim().is_empty() {
            return at(
                "server",
                "instance",
                "is empty (the default instance is OctopusServer)".into(),
            );
        }
        check_install_argv(
            KeyPath::key("installer", "install"),
            &self.installer.install,
        )?;
        check_install_argv(
            KeyPath::key("installer", "uninstall"),
            &self.installer.uninstall,
        )?;
        if !self.installer.url.contains("{version}") {
            return at(
                "installer",
                "url",
                format!(
                    "expected a URL template with a {{version}} placeholder, found {:?}",
                    self.installer.url
                ),
            );
        }
        if let Some(sha) = &self.installer.sha256
            && !(sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return at(
                "installer",
                "sha256",
                format!("expected a 64-digit hex SHA-256, found {sha:?}"),
            );
        }
        if self.installer.download_give_up_minutes == 0 {
            return at(
                "installer",
                "download_give_up_minutes",
                zero(
                    "minutes",
                    "no download would ever start",
                    InstallerConfig::default().download_give_up_minutes,
                ),
            );
        }
        if self.database.sqlcmd.is_empty() {
            return at(
                "database",
                "sqlcmd",
                "is empty: give the sqlcmd argv prefix".into(),
            );
        }
        if self.database.name.trim().is_empty() {
            return at("database", "name", "is empty".into());
        }
        self.database.validate()?;
        let r = &self.rehearsal;
        if r.image.trim().is_empty() {
            return at(
                "rehearsal",
                "image",
                "is empty: give the image, e.g. \"octopusdeploy/octopusdeploy:{version}\"".into(),
            );
        }
        if r.docker.is_empty() {
            return at(
                "rehearsal",
                "docker",
                "is empty: give the argv of the Docker CLI, e.g. [\"docker\"]".into(),
            );
        }
        // The scratch name goes into T-SQL as an identifier and into file names.
        if r.database_prefix.is_empty()
            || r.database_prefix.len() > 64
            || !r
                .database_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return at(
                "rehearsal",
                "database_prefix",
                format!(
                    "expected 1 to 64 letters, digits or _, found {:?}",
                    r.database_prefix
                ),
            );
        }
        if r.start_timeout_minutes == 0 {
            return at(
                "rehearsal",
                "start_timeout_minutes",
                "expected at least 1 minute".into(),
            );
        }
        if self.rollback.keep_hours > MAX_KEEP_HOURS {
            // A snapshot grows with every page Octopus writes, and a copy costs a second
            // database: past a week, a rollback that discards that much is not a rollback.
            return at(
                "rollback",
                "keep_hours",
                format!(
                    "is {}, more than {MAX_KEEP_HOURS} (a week): a kept snapshot grows with every write, and taking back a week of work is a restore, not a rollback. Use at most {MAX_KEEP_HOURS}",
                    self.rollback.keep_hours
                ),
            );
        }
        let defaults = TimeoutsConfig::default().entries();
        for ((key, value), (_, default)) in self.timeouts.entries().into_iter().zip(defaults) {
            if value == 0 {
                return at(
                    "timeouts",
                    key,
                    zero(
                        "seconds",
                        "every command it bounds would be killed at once",
                        default,
                    ),
                );
            }
        }
        if self.ssh.program.is_empty() {
            return at("ssh", "program", "is empty".into());
        }
        if self.ssh.connect_timeout_seconds == 0 {
            return at(
                "ssh",
                "connect_timeout_seconds",
                zero(
                    "seconds",
                    "no connection could be made",
                    SshConfig::default().connect_timeout_seconds,
                ),
            );
        }
        for id in &self.doctor.accept {
            if !finding_id(id) {
                return at(
                    "doctor",
                    "accept",
                    format!(
                        "{id:?} is not a finding id (ids look like `license.grace`; `octoup doctor` lists them)"
                    ),
                );
            }
        }
        if self.doctor.integrity_timeout_seconds == 0 {
            return at(
                "doctor",
                "integrity_timeout_seconds",
                zero(
                    "seconds",
                    "the check could never finish",
                    DoctorConfig::default().integrity_timeout_seconds,
                ),
            );
        }
        for (key, unit, value, default) in [
            (
                "tentacle_batch",
                "machines",
                self.doctor.tentacle_batch as u64,
                DoctorConfig::default().tentacle_batch as u64,
            ),
            (
                "tentacle_timeout_seconds",
                "seconds",
                self.doctor.tentacle_timeout_seconds,
                DoctorConfig::default().tentacle_timeout_seconds,
            ),
        ] {
            if value == 0 {
                return at(
                    "doctor",
                    key,
                    zero(unit, "no Tentacle could be upgraded", default),
                );
            }
        }
        self.window.schedule()?;
        self.validate_nodes()?;
        self.validate_notify()
    }

    fn validate_nodes(&self) -> Result<(), Problem> {
        let mut seen = std::collections::BTreeSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let at = |key: Option<&str>, message: String| {
                Err(Problem::at(KeyPath::node(i, key), message))
            };
            if node.name.trim().is_empty() {
                return at(
                    Some("name"),
                    "missing: give the node's name as registered in Octopus".into(),
                );
            }
            if !seen.insert(node.name.to_ascii_lowercase()) {
                return at(
                    Some("name"),
                    format!("node {:?} is listed twice in [[nodes]]", node.name),
                );
            }
            if node.url.trim().is_empty() {
                return at(
                    Some("url"),
                    format!(
                        "node {:?} has no url (its own address, for ping and /api)",
                        node.name
                    ),
                );
            }
            if let Some(argv) = &node.install {
                check_install_argv(KeyPath::node(i, Some("install")), argv)?;
            }
            if let Some(argv) = &node.uninstall {
                check_install_argv(KeyPath::node(i, Some("uninstall")), argv)?;
            }
            if node.server_exe.as_ref().is_some_and(|v| v.is_empty()) {
                return at(
                    Some("server_exe"),
                    format!("node {:?} server_exe is empty", node.name),
                );
            }
        }
        let primaries: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].primary)
            .collect();
        if let [_, second, ..] = primaries[..] {
            return Err(Problem::at(
                KeyPath::node(second, Some("primary")),
                format!(
                    "{} nodes are marked primary = true; exactly one node runs the database upgrade",
                    primaries.len()
                ),
            ));
        }
        Ok(())
    }
}

/// The message for a zero duration that makes no sense.
pub(super) fn zero(unit: &str, why: &str, default: u64) -> String {
    format!("expected a number of {unit} above 0, found 0 ({why}; the default is {default})")
}

fn check_install_argv(key: KeyPath, argv: &[String]) -> Result<(), Problem> {
    if argv.is_empty() {
        return Err(Problem::at(key, "is empty"));
    }
    if !argv.iter().any(|a| a.contains("{installer}")) {
        return Err(Problem::at(
            key,
            "has no {installer} placeholder: octoup cannot tell it which file to install",
        ));
    }
    Ok(())
}

/// A finding id: dot-separated parts of lowercase letters, digits and `-`.
pub(crate) fn finding_id(id: &str) -> bool {
    id.split('.').count() >= 2
        && id.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}
