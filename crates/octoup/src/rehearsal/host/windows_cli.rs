//! The `Octopus.Server.exe` command lines of the Windows host (syntax from
//! reference/octopus-upgrades.md), the rehearsal instance's names, and the refusal of
//! this host without the operator's consent to secrets on a command line.

use crate::config::{Secret, WindowsRehearsalConfig};

/// Where the vendor documents `database --masterKey`.
pub(crate) const VENDOR_DOC: &str =
    "https://octopus.com/docs/octopus-rest-api/octopus.server.exe-command-line/database";

/// The first version with `database-upgrade-status` (reference/octopus-upgrades.md).
pub(crate) const UPGRADE_STATUS_SINCE: &str = "2023.4.1149";

/// The rehearsal instance: its name, home folder and config file on the spare node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Names {
    pub instance: String,
    pub home: String,
    pub config: String,
}

/// `<prefix>-<short id>`, in its own folder under `home` (a Windows path).
pub(crate) fn names(w: &WindowsRehearsalConfig, id: &str) -> Names {
    let short = id.replace(['-', 'T', 'Z'], "");
    let instance = format!("{}-{short}", w.instance_prefix);
    let sep = if w.home.contains('/') && !w.home.contains('\\') {
        '/'
    } else {
        '\\'
    };
    let home = format!("{}{sep}{instance}", w.home.trim_end_matches(['\\', '/']));
    let config = format!("{home}{sep}{instance}.config");
    Names {
        instance,
        home,
        config,
    }
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

pub(crate) fn create_instance(n: &Names) -> Vec<String> {
    args(&[
        "create-instance",
        "--instance",
        &n.instance,
        "--config",
        &n.config,
        "--home",
        &n.home,
    ])
}

/// `database --connectionString=… --masterKey=…`: the vendor's only route for a new
/// instance against an existing database. Both values are secrets on this command line
/// (opt-in: `[rehearsal.windows] secret_arguments`).
pub(crate) fn database_settings(
    instance: &str,
    connection: &Secret,
    master_key: &Secret,
) -> Vec<String> {
    vec![
        "database".into(),
        "--instance".into(),
        instance.into(),
        format!("--connectionString={}", connection.expose()),
        format!("--masterKey={}", master_key.expose()),
    ]
}

pub(crate) fn upgrade_status(instance: &str) -> Vec<String> {
    args(&[
        "database-upgrade-status",
        "--instance",
        instance,
        "--format=json",
    ])
}

pub(crate) fn upgrade(instance: &str) -> Vec<String> {
    args(&["database", "--upgrade", "--instance", instance])
}

pub(crate) fn listen_prefix(port: u16) -> String {
    format!("http://+:{port}/")
}

pub(crate) fn configure(instance: &str, port: u16) -> Vec<String> {
    let prefix = listen_prefix(port);
    args(&[
        "configure",
        "--instance",
        instance,
        "--webListenPrefixes",
        &prefix,
    ])
}

/// `service --instance X --<action>…`, e.g. `["install", "start"]`.
pub(crate) fn service(instance: &str, actions: &[&str]) -> Vec<String> {
    let mut a = args(&["service", "--instance", instance]);
    a.extend(actions.iter().map(|x| format!("--{x}")));
    a
}

pub(crate) fn delete_instance(instance: &str) -> Vec<String> {
    args(&["delete-instance", "--instance", instance])
}

/// The rehearsal instance's address: the spare node's `url` with `port`.
pub(crate) fn instance_url(node_url: &str, port: u16) -> String {
    let url = node_url.trim().trim_end_matches('/');
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !authority.ends_with(']') => h,
        _ => authority,
    };
    format!("{scheme}://{host}:{port}")
}

/// Whether an `Octopus.Server.exe` answer says the instance is not there (a teardown
/// after a kill may find it already gone).
pub(crate) fn instance_gone(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("has not been configured") || t.contains("does not exist")
}

/// Why `host = "windows"` is refused without `secret_arguments = true`: which secret would
/// go on which command line, the vendor's documentation, and the alternatives.
pub(crate) fn refusal(
    w: &WindowsRehearsalConfig,
    node: &str,
    over_ssh: bool,
    sql_login: Option<&str>,
) -> String {
    let secrets = match sql_login {
        Some(login) => format!(
            "the master key (--masterKey=…) and the password of the SQL login {login:?} (in --connectionString=…)"
        ),
        None => "the master key (--masterKey=…)".to_string(),
    };
    let ssh = if over_ssh {
        " and on the command line of the local ssh client that carries it"
    } else {
        ""
    };
    let integrated = if sql_login.is_some() {
        "; [rehearsal.windows] integrated_security = true keeps the SQL password off it (the spare node's account logs in)"
    } else {
        ""
    };
    format!(
        "[rehearsal] host = \"windows\" is refused: on the spare node {node}, `Octopus.Server.exe database --instance {}-<id> --connectionString=… --masterKey=…` would carry {secrets} on its command line{ssh}, which design invariant I5 forbids (any local user can read a process's command line). The vendor documents no other way for a new instance against an existing database: --masterKey \"[Optional] Sets the Master Key to use when encrypting/decrypting data. If omitted, the value from the config file will be used\" ({VENDOR_DOC}), and that config file's key is written, encrypted for the machine, by the CLI itself; no environment variable is documented for Octopus.Server.exe on Windows (MASTER_KEY belongs to the Linux container). Alternatives: [rehearsal] host = \"docker\", where every secret reaches the container through its environment only{integrated}. To accept the master key on that command line for rehearsals, set [rehearsal.windows] secret_arguments = true",
        w.instance_prefix
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w() -> WindowsRehearsalConfig {
        WindowsRehearsalConfig {
            home: r"D:\Rehearsals\".into(),
            ..WindowsRehearsalConfig::default()
        }
    }

    #[test]
    fn the_instance_gets_its_own_folder_and_config() {
        let n = names(&w(), "20261204T012345Z-3fa1");
        assert_eq!(
            n.instance,
            "OctoupRehearsal-20261204012345".to_string() + "3fa1"
        );
        assert_eq!(n.home, format!(r"D:\Rehearsals\{}", n.instance));
        assert_eq!(n.config, format!(r"{}\{}.config", n.home, n.instance));
        let unix = WindowsRehearsalConfig {
            home: "/srv/rehearsal/".into(),
            ..w()
        };
        assert!(
            names(&unix, "a")
                .config
                .starts_with("/srv/rehearsal/OctoupRehearsal-a/")
        );
    }

    #[test]
    fn command_lines_follow_the_vendors_syntax() {
        let n = names(&w(), "x");
        assert_eq!(
            create_instance(&n),
            [
                "create-instance",
                "--instance",
                &n.instance,
                "--config",
                &n.config,
                "--home",
                &n.home
            ]
        );
        let argv = database_settings(
            "I",
            &Secret::new("Server=s;Password=pw"),
            &Secret::new("KEY=="),
        );
        assert_eq!(
            argv,
            [
                "database",
                "--instance",
                "I",
                "--connectionString=Server=s;Password=pw",
                "--masterKey=KEY=="
            ]
        );
        assert_eq!(upgrade("I"), ["database", "--upgrade", "--instance", "I"]);
        assert_eq!(
            upgrade_status("I"),
            [
                "database-upgrade-status",
                "--instance",
                "I",
                "--format=json"
            ]
        );
        assert_eq!(
            configure("I", 8091),
            [
                "configure",
                "--instance",
                "I",
                "--webListenPrefixes",
                "http://+:8091/"
            ]
        );
        assert_eq!(
            service("I", &["install", "start"]),
            ["service", "--instance", "I", "--install", "--start"]
        );
        assert_eq!(delete_instance("I"), ["delete-instance", "--instance", "I"]);
    }

    #[test]
    fn the_instance_is_reached_on_the_listen_port() {
        assert_eq!(
            instance_url("http://spare01:8080/", 8091),
            "http://spare01:8091"
        );
        assert_eq!(instance_url("https://spare01", 443), "https://spare01:443");
        assert_eq!(
            instance_url("http://127.0.0.1:41002", 41010),
            "http://127.0.0.1:41010"
        );
    }

    #[test]
    fn the_refusal_names_each_secret_its_command_line_the_source_and_the_alternatives() {
        let text = refusal(&w(), "OCTO-SPARE-01", true, Some("octoup"));
        for says in [
            "OCTO-SPARE-01",
            "the master key (--masterKey=…)",
            "password of the SQL login \"octoup\"",
            "local ssh client",
            "I5",
            VENDOR_DOC,
            "If omitted, the value from the config file will be used",
            "host = \"docker\"",
            "integrated_security = true",
            "secret_arguments = true",
        ] {
            assert!(text.contains(says), "{says}: {text}");
        }
        let local = refusal(&w(), "SPARE", false, None);
        assert!(
            !local.contains("ssh client") && !local.contains("SQL login"),
            "{local}"
        );
        assert!(local.contains("--masterKey"), "{local}");
    }
}
