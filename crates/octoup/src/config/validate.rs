//! The checks a config passes after it parsed: each failure names its key (the caller
//! finds it in the file) and says what was expected and found.

use super::diagnostic::{KeyPath, Problem};
use super::{
    Config, DatabaseConfig, DatabaseStrategy, DoctorConfig, InstallerConfig, NodeConfig, SshConfig,
    TimeoutsConfig,
};

/// The value after `flag` in a sqlcmd argv (`-S x` or `-Sx`).
pub(crate) fn sqlcmd_option<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        if a == flag {
            return it.next().map(String::as_str);
        }
        if let Some(v) = a.strip_prefix(flag).filter(|v| !v.is_empty()) {
            return Some(v);
        }
    }
    None
}

/// Whether two sqlcmd `-S` values name one SQL Server: `tcp:`, case, the local aliases and
/// the default port 1433 do not make a server another one.
pub(crate) fn same_sql_server(a: &str, b: &str) -> bool {
    fn key(s: &str) -> String {
        let s = s.trim().to_ascii_lowercase();
        let s = s.strip_prefix("tcp:").unwrap_or(&s);
        let (name, port) = match s.rsplit_once(',') {
            Some((n, p)) => (n.trim(), Some(p.trim().to_string())),
            None => (s, None),
        };
        let (host, instance) = name.split_once('\\').unwrap_or((name, ""));
        let host = match host {
            "." | "(local)" | "localhost" => "127.0.0.1",
            h => h,
        };
        // A named instance without a port is found by the SQL Browser, not on 1433.
        let port = port.unwrap_or_else(|| {
            if instance.is_empty() {
                "1433".into()
            } else {
                String::new()
            }
        });
        format!("{host}\\{instance},{port}")
    }
    key(a) == key(b)
}

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
        self.validate_spare_node()?;
        self.validate_rehearsal_sql()?;
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

impl Config {
    /// `[rehearsal.windows]`: what the Windows rehearsal host needs, and a spare node that
    /// is not production. The missing opt-in (`secret_arguments`) is refused by `octoup
    /// rehearse` itself, so a config naming the host still serves every other command.
    fn validate_spare_node(&self) -> Result<(), Problem> {
        const W: &[&str] = &["rehearsal", "windows"];
        let w = &self.rehearsal.windows;
        let at = |key: &str, message: String| Err(Problem::at(KeyPath::nested(W, key), message));
        // The instance name goes on command lines and into folder names.
        if w.instance_prefix.is_empty()
            || w.instance_prefix.len() > 40
            || !w
                .instance_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return at(
                "instance_prefix",
                format!(
                    "expected 1 to 40 letters, digits, - or _, found {:?}",
                    w.instance_prefix
                ),
            );
        }
        if w.home.trim().is_empty() {
            return at(
                "home",
                "is empty: give a folder on the spare node for the rehearsal instances".into(),
            );
        }
        if w.listen_port == 0 {
            return at(
                "listen_port",
                "expected a TCP port from 1 to 65535, found 0".into(),
            );
        }
        let Some(node) = &w.node else {
            if self.rehearsal.host == super::RehearsalHost::Windows {
                return Err(Problem::at(
                    KeyPath::key("rehearsal", "host"),
                    "is \"windows\" but [rehearsal.windows.node] is missing: name the spare Windows node (name, url, and ssh unless it is this machine)",
                ));
            }
            return Ok(());
        };
        const N: &[&str] = &["rehearsal", "windows", "node"];
        let at = |key: &str, message: String| Err(Problem::at(KeyPath::nested(N, key), message));
        if node.name.trim().is_empty() {
            return at("name", "missing: give the spare node's name".into());
        }
        if node.url.trim().is_empty() {
            return at(
                "url",
                format!(
                    "spare node {:?} has no url (its address; octoup reaches the rehearsal instance there on listen_port)",
                    node.name
                ),
            );
        }
        if node.primary {
            return at(
                "primary",
                "a spare node is never primary: it is not one of the installation's nodes".into(),
            );
        }
        if let Some(argv) = &node.install {
            check_install_argv(KeyPath::nested(N, "install"), argv)?;
        }
        if node.server_exe.as_ref().is_some_and(|v| v.is_empty()) {
            return at("server_exe", "is empty".into());
        }
        if let Some(reason) = self.production_node_like(node) {
            return at("name", reason);
        }
        Ok(())
    }

    /// `[rehearsal.sql]`: a sqlcmd argv, a server to name, the share, and not production's
    /// SQL Server (a restore there is what this table exists to avoid).
    fn validate_rehearsal_sql(&self) -> Result<(), Problem> {
        const T: &[&str] = &["rehearsal", "sql"];
        let Some(sql) = &self.rehearsal.sql else {
            return Ok(());
        };
        let at = |key: &str, message: String| Err(Problem::at(KeyPath::nested(T, key), message));
        if sql.sqlcmd.is_empty() {
            return at(
                "sqlcmd",
                "is empty: give the sqlcmd argv prefix that reaches the rehearsal SQL Server, e.g. [\"sqlcmd\", \"-S\", \"sqlrehearse01,1433\", \"-U\", \"octoup\", \"-b\"]".into(),
            );
        }
        let Some(server) = sql.server_name() else {
            return at(
                "server",
                "missing, and the sqlcmd argv has no -S: name the rehearsal SQL Server (host,port)"
                    .into(),
            );
        };
        if sql
            .backup_dir
            .as_ref()
            .is_none_or(|d| d.as_os_str().is_empty())
        {
            return at(
                "backup_dir",
                "missing: give [database] backup_dir as the rehearsal SQL Server sees it (e.g. a UNC share such as '\\\\nas\\octopus\\backups'): production's server writes the backup there and this one restores it".into(),
            );
        }
        let production = sqlcmd_option(&self.database.sqlcmd, "-S");
        for (key, name) in [
            ("server", Some(server)),
            ("sqlcmd", sqlcmd_option(&sql.sqlcmd, "-S")),
        ] {
            if let (Some(name), Some(prod)) = (name, production)
                && same_sql_server(name, prod)
            {
                return at(
                    key,
                    format!(
                        "names {name:?}, production's SQL Server ([database] sqlcmd -S {prod:?}): the copy would be restored on production, which [rehearsal.sql] is there to avoid. Name the rehearsal SQL Server, or remove [rehearsal.sql] to restore on production's server"
                    ),
                );
            }
        }
        Ok(())
    }

    /// Why `spare` is a production node (the same name, SSH host or address as one of
    /// `[[nodes]]`, or as `[server] url` for a single node), if it is.
    pub(crate) fn production_node_like(&self, spare: &NodeConfig) -> Option<String> {
        let production: Vec<NodeConfig> = if self.nodes.is_empty() {
            self.server
                .url
                .iter()
                .map(|url| NodeConfig {
                    url: url.clone(),
                    ..NodeConfig::default()
                })
                .collect()
        } else {
            self.nodes.clone()
        };
        let why = "a rehearsal never runs on a production node: name a spare Windows node that is not in [[nodes]] (or use [rehearsal] host = \"docker\")";
        for p in &production {
            let shown = if p.name.is_empty() {
                "the installation's node ([server] url)".to_string()
            } else {
                format!("[[nodes]] {:?}", p.name)
            };
            if !p.name.is_empty() && p.name.eq_ignore_ascii_case(spare.name.trim()) {
                return Some(format!(
                    "spare node {:?} has the name of {shown}: {why}",
                    spare.name
                ));
            }
            if let (Some(a), Some(b)) = (ssh_host(spare), ssh_host(p))
                && a.eq_ignore_ascii_case(b)
            {
                return Some(format!(
                    "spare node {:?} is reached over SSH at {a}, like {shown}: {why}",
                    spare.name
                ));
            }
            if let (Some(a), Some(b)) = (origin(&spare.url), origin(&p.url))
                && a == b
            {
                return Some(format!(
                    "spare node {:?} has the address {a} of {shown}: {why}",
                    spare.name
                ));
            }
        }
        None
    }
}

/// The host of a node's `ssh = "user@host"`.
fn ssh_host(node: &NodeConfig) -> Option<&str> {
    let d = node.ssh.as_deref()?.trim();
    let host = d.rsplit_once('@').map_or(d, |(_, h)| h);
    Some(host.rsplit_once(':').map_or(host, |(h, _)| h)).filter(|h| !h.is_empty())
}

/// `host:port` of a URL, lowercased, with the scheme's default port.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, a)| a);
    if authority.is_empty() {
        return None;
    }
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()) && !authority.ends_with(']'));
    Some(if has_port {
        authority.to_string()
    } else {
        let port = if scheme.eq_ignore_ascii_case("https") {
            443
        } else {
            80
        };
        format!("{authority}:{port}")
    })
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
