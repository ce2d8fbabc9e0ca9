//! The `Octopus.Server.exe` command line: which commands exist, the options of each
//! (`--name=value` or `--name value`, any case) and their values.

use std::collections::HashMap;

use super::invocation::error;
use crate::standins::Output;

/// Commands that exist on the real server but that the simulator does not model.
pub(super) const NOT_SIMULATED: &[&str] = &[
    "admin",
    "checkservices",
    "configure",
    "create-instance",
    "delete-instance",
    "export-certificate",
    "import-certificate",
    "license",
    "lost-master-key",
    "path",
    "rotate-master-key",
    "run",
    "set-master-key",
    "ssl-certificate",
];

/// Options every command accepts.
const COMMON: &[(&str, bool)] = &[
    ("instance", true),
    ("config", true),
    ("console", false),
    ("nologo", false),
    ("noconsolelogging", false),
];

/// Options per command: (name, takes a value).
pub(super) fn options(command: &str) -> Option<&'static [(&'static str, bool)]> {
    Some(match command {
        "node" => &[
            ("taskCap", true),
            ("drain", true),
            ("wait", true),
            ("cancel-tasks", false),
            ("cancel-wait", true),
            ("skipDatabaseCompatibilityCheck", false),
            ("skipDatabaseSchemaUpgradeCheck", false),
        ],
        "service" => &[
            ("start", false),
            ("stop", false),
            ("restart", false),
            ("install", false),
            ("reconfigure", false),
            ("uninstall", false),
            ("username", true),
            ("user", true),
            ("password", true),
            ("dependOn", true),
        ],
        "database" => &[
            ("upgrade", false),
            ("create", false),
            ("delete", false),
            ("skipLicenseCheck", false),
            ("skipDatabaseCompatibilityCheck", false),
            ("connectionString", true),
            ("masterKey", true),
            ("grant", true),
        ],
        "database-upgrade-status" => &[("connectionString", true), ("format", true)],
        // Simulated on spare nodes only (production nodes refuse them: NOT_SIMULATED).
        "create-instance" => &[("home", true), ("serverNodeName", true)],
        "delete-instance" => &[],
        "configure" => &[("webListenPrefixes", true), ("home", true)],
        "show-master-key" | "version" | "list-instances" => &[("format", true)],
        "show-configuration" => &[("format", true), ("file", true)],
        "watchdog" => &[
            ("create", false),
            ("delete", false),
            ("interval", true),
            ("instances", true),
        ],
        _ => return None,
    })
}

/// Parsed options, keyed by the canonical option name.
pub(super) struct Opts(HashMap<&'static str, Option<String>>);

impl Opts {
    pub fn flag(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.as_deref())
    }
}

pub(super) fn parse_options(command: &str, args: &[String]) -> Result<Opts, String> {
    let table: Vec<(&'static str, bool)> = COMMON
        .iter()
        .chain(options(command).unwrap_or(&[]))
        .copied()
        .collect();
    let mut opts = HashMap::new();
    let mut unknown = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(body) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            unknown.push(arg.clone());
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(&(canonical, takes_value)) =
            table.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))
        else {
            unknown.push(arg.clone());
            continue;
        };
        let value = if takes_value {
            match inline {
                Some(v) => Some(v),
                None if i < args.len() && !args[i].starts_with("--") => {
                    i += 1;
                    Some(args[i - 1].clone())
                }
                None => {
                    return Err(format!(
                        "Missing required value for option '--{canonical}'. Use --{canonical}=VALUE."
                    ));
                }
            }
        } else {
            if inline.is_some() {
                return Err(format!("Option '--{canonical}' does not take a value."));
            }
            None
        };
        opts.insert(canonical, value);
    }
    if !unknown.is_empty() {
        return Err(format!(
            "Unrecognized command line arguments: {}. Run `Octopus.Server {command} --help` to see the options.",
            unknown.join(" ")
        ));
    }
    Ok(Opts(opts))
}

/// `--format` values a command accepts.
pub(super) fn format(opts: &Opts, allowed: &[&str], default: &str) -> Result<String, Output> {
    let f = opts.value("format").unwrap_or(default).to_ascii_lowercase();
    if allowed.contains(&f.as_str()) {
        Ok(f)
    } else {
        Err(error(
            1,
            format!(
                "The format '{f}' is not supported. Try one of: {}.",
                allowed.join(", ")
            ),
        ))
    }
}

pub(super) fn parse_bool(name: &str, value: &str) -> Result<bool, Output> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(error(
            1,
            format!("Invalid value '{value}' for --{name}: expected true or false."),
        )),
    }
}

pub(super) fn parse_number(name: &str, value: &str) -> Result<u64, Output> {
    value.parse().map_err(|_| {
        error(
            1,
            format!("Invalid value '{value}' for --{name}: expected a whole number."),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn options_in_both_forms_case_insensitive() {
        let o = parse_options(
            "node",
            &args(&[
                "--instance",
                "OctopusServer",
                "--drain=true",
                "--Wait",
                "30",
                "--cancel-tasks",
            ]),
        )
        .unwrap();
        assert_eq!(o.value("instance"), Some("OctopusServer"));
        assert_eq!(o.value("drain"), Some("true"));
        assert_eq!(o.value("wait"), Some("30"));
        assert!(o.flag("cancel-tasks"));
        let err = parse_options("node", &args(&["--drainn=true"]))
            .err()
            .unwrap();
        assert!(
            err.contains("Unrecognized command line arguments: --drainn=true"),
            "{err}"
        );
        let err = parse_options("node", &args(&["--wait"])).err().unwrap();
        assert!(
            err.contains("Missing required value for option '--wait'"),
            "{err}"
        );
        let err = parse_options("service", &args(&["--start=yes"]))
            .err()
            .unwrap();
        assert!(err.contains("does not take a value"), "{err}");
    }
}
