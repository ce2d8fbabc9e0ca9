//! The Octopus step template (`integrations/octopus/octoup-upgrade.steptemplate.json`)
//! against the shape of the vendor's community Library (`step-templates/*.json` and the
//! Library's own validation: Id a GUID, Name at most 200 characters, LastModifiedBy and
//! $Meta.ExportedAt present, no BOM, package feeds null), plus what only this template
//! promises: every parameter the script reads is declared and every declared one is read,
//! the exit codes it explains are exit.rs's, and the API key never reaches an argument.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

const TARGET: &str = "2024.2.9409";

fn octopus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../integrations/octopus")
}

/// `(variant, code)` of every `Exit` variant in exit.rs, the one source of exit statuses.
pub fn exit_codes() -> Vec<(String, u32)> {
    let source = include_str!("../../src/exit.rs");
    let body = source
        .split("pub enum Exit {")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .expect("exit.rs has `pub enum Exit { ... }`");
    body.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//") && !l.starts_with('#'))
        .filter_map(|l| {
            let (name, code) = l.trim_end_matches(',').split_once(" = ")?;
            Some((name.to_string(), code.parse().ok()?))
        })
        .collect()
}

fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
        && s != "00000000-0000-0000-0000-000000000000"
        && s != "abcdef00-ab00-cd00-ef00-000000abcdef"
}

fn string<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} must be a string: {:#}", v[key]))
}

/// Parameter names the script reads: `$OctopusParameters['Name']`, `get_octopusvariable
/// "Name"` and `#{Name}`.
fn referenced(script: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (open, close) in [
        ("$OctopusParameters['", "']"),
        ("get_octopusvariable \"", "\""),
        ("#{", "}"),
    ] {
        for piece in script.split(open).skip(1) {
            if let Some((name, _)) = piece.split_once(close) {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// The codes of the script's table of meanings: PowerShell's `$meanings = @{ N = ... }`,
/// Bash's `meaning() { case ... N) echo ...`.
fn explained_codes(script: &str) -> BTreeSet<u32> {
    let (open, sep) = if script.contains("$meanings = @{") {
        ("$meanings = @{", '=')
    } else {
        ("meaning() {", ')')
    };
    script
        .split(open)
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .expect("the script has a table of exit-code meanings")
        .lines()
        .filter_map(|l| l.trim().split_once(sep)?.0.trim().parse().ok())
        .collect()
}

/// The templates, their readable scripts, and the syntax of each.
const TEMPLATES: [(&str, &str, &str); 2] = [
    (
        "octoup-upgrade.steptemplate.json",
        "octoup-upgrade.ScriptBody.ps1",
        "PowerShell",
    ),
    (
        "octoup-upgrade-bash.steptemplate.json",
        "octoup-upgrade.ScriptBody.sh",
        "Bash",
    ),
];

/// Lines that may name the API key's variable: reading the parameter, testing it, and
/// handing it to octoup's environment.
const KEY_LINES: [&str; 5] = [
    "$OctopusParameters['Octoup.ApiKey']",
    "$env:OCTOPUS_API_KEY = $apiKey",
    "get_octopusvariable \"Octoup.ApiKey\"",
    "[ -n \"$api_key\" ]",
    "OCTOPUS_API_KEY=\"$api_key\" \"$octoup\"",
];

#[test]
fn the_step_templates_have_the_library_shape_and_keep_their_promises() {
    let mut ids = BTreeSet::new();
    for (template, body, syntax) in TEMPLATES {
        let t = check_template(template, body, syntax);
        assert!(ids.insert(t["Id"].to_string()), "two templates with one Id");
    }
}

fn check_template(template: &str, body: &str, syntax: &str) -> Value {
    let path = octopus_dir().join(template);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.starts_with('\u{feff}'),
        "the Library refuses a BOM: resave without it"
    );
    let t: Value = serde_json::from_str(&text).expect("the template is JSON");

    // The Library's own checks, and the fields every Octopus.Script template there has.
    assert!(is_guid(string(&t, "Id")), "Id must be a fresh GUID");
    let name = string(&t, "Name");
    assert!(!name.is_empty() && name.chars().count() <= 200, "{name}");
    assert!(!string(&t, "Description").is_empty());
    assert_eq!(string(&t, "ActionType"), "Octopus.Script");
    assert!(t["Version"].as_u64().is_some_and(|v| v >= 1), "Version");
    assert!(!string(&t, "LastModifiedBy").is_empty());
    assert!(!string(&t["$Meta"], "ExportedAt").is_empty());
    assert_eq!(string(&t["$Meta"], "Type"), "ActionTemplate");
    assert!(!string(&t, "Category").is_empty());
    for package in t["Packages"].as_array().into_iter().flatten() {
        assert!(package["FeedId"].is_null(), "package FeedId must be null");
    }
    let props = &t["Properties"];
    assert_eq!(
        string(props, "Octopus.Action.Script.ScriptSource"),
        "Inline"
    );
    assert_eq!(string(props, "Octopus.Action.Script.Syntax"), syntax);
    let script = string(props, "Octopus.Action.Script.ScriptBody");

    // The script is kept readable beside the template; the two are the same text.
    let ps1 = octopus_dir().join(body);
    let readable = std::fs::read_to_string(&ps1).unwrap();
    if script != readable && std::env::var("OCTOUP_UPDATE_STEP_TEMPLATE").as_deref() == Ok("1") {
        let mut updated = t.clone();
        updated["Properties"]["Octopus.Action.Script.ScriptBody"] = readable.clone().into();
        let mut out = serde_json::to_string_pretty(&updated).unwrap();
        out.push('\n');
        std::fs::write(&path, out).unwrap();
    } else {
        assert!(
            script == readable,
            "{} and the template's ScriptBody differ: run this test with OCTOUP_UPDATE_STEP_TEMPLATE=1 to copy the .ps1 in",
            ps1.display()
        );
    }

    // Parameters: the Library's shape, unique, and exactly the ones the script reads.
    let params = t["Parameters"].as_array().expect("Parameters is an array");
    let mut ids = BTreeSet::new();
    let mut declared = BTreeSet::new();
    for p in params {
        assert!(
            is_guid(string(p, "Id")) && ids.insert(string(p, "Id")),
            "{p}"
        );
        assert!(declared.insert(string(p, "Name").to_string()), "{p}");
        assert!(!string(p, "Label").is_empty() && !string(p, "HelpText").is_empty());
        let default = string(p, "DefaultValue");
        let control = string(&p["DisplaySettings"], "Octopus.ControlType");
        assert!(
            [
                "SingleLineText",
                "MultiLineText",
                "Select",
                "Checkbox",
                "Sensitive"
            ]
            .contains(&control),
            "{control}"
        );
        if control == "Select" {
            let options = string(&p["DisplaySettings"], "Octopus.SelectOptions");
            let values: Vec<&str> = options
                .lines()
                .map(|l| l.split_once('|').expect("value|label").0)
                .collect();
            assert!(values.contains(&default), "{default} not in {values:?}");
        }
        if control == "Sensitive" {
            assert_eq!(default, "", "a template never ships a secret");
        }
    }
    assert_eq!(referenced(script), declared);

    // The key goes to octoup in its environment only.
    let key = params
        .iter()
        .find(|p| p["DisplaySettings"]["Octopus.ControlType"] == "Sensitive")
        .expect("the API key is a Sensitive parameter");
    assert_eq!(key["Name"], "Octoup.ApiKey");
    for line in script
        .lines()
        .filter(|l| l.contains("$apiKey") || l.contains("$api_key") || l.contains("Octoup.ApiKey"))
    {
        assert!(
            KEY_LINES.iter().any(|k| line.contains(k)),
            "the API key used outside OCTOPUS_API_KEY: {line}"
        );
    }

    // Every exit status is explained, and only those.
    let ours: BTreeSet<u32> = exit_codes().into_iter().map(|(_, c)| c).collect();
    assert!(ours.len() >= 12, "{ours:?}");
    assert_eq!(explained_codes(script), ours);
    t
}

/// Octopus's Bash helpers as the step sees them: parameters from `OCTOPARAM_<name with _>`,
/// and the step's results as `##` lines in its log.
const BASH_HELPERS: &str = r####"
get_octopusvariable() { local n="OCTOPARAM_${1//./_}"; printf '%s' "${!n}"; }
set_octopusvariable() { echo "##set $1=$2"; }
write_highlight() { echo "##highlight $1"; }
fail_step() { echo "##fail $1"; exit 1; }
"####;

/// The Bash template's script under bash with `params`: (exit status, log).
fn run_bash_step(params: &[(&str, &str)]) -> (i32, String) {
    let body = std::fs::read_to_string(octopus_dir().join("octoup-upgrade.ScriptBody.sh")).unwrap();
    let mut cmd = std::process::Command::new("bash");
    cmd.arg("-c")
        .arg(format!("{BASH_HELPERS}\n{body}"))
        .env_remove("OCTOPUS_API_KEY")
        .env_remove("OCTOPUS_URL");
    for (k, v) in params {
        cmd.env(format!("OCTOPARAM_{}", k.replace('.', "_")), v);
    }
    let out = cmd.output().expect("run bash");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), log)
}

#[test]
fn the_bash_step_runs_octoup_and_maps_its_exit_codes() {
    // The database upgrade fails once (a pause); the key only in the Sensitive parameter.
    let sim = octoup_testkit::Scenario::new()
        .nodes(2)
        .fault("db-upgrade", "exit:1")
        .start();
    sim.edit_config(|c| {
        c["server"].as_table_mut().unwrap().remove("api_key_file");
    });
    let key = crate::ansible::api_key(&sim);
    let octoup = octoup_testkit::octoup_bin().display().to_string();
    let config = sim.config_path().display().to_string();
    let step = |command: &str, to: &str, key: &str| {
        run_bash_step(&[
            ("Octoup.Executable", &octoup),
            ("Octoup.ConfigPath", &config),
            ("Octoup.Command", command),
            ("Octoup.TargetVersion", to),
            ("Octoup.ApiKey", key),
        ])
    };

    let (code, log) = step("plan", TARGET, &key);
    assert_eq!(code, 0, "{log}");
    assert!(log.contains(&format!("##set Octoup.to={TARGET}")), "{log}");
    assert!(!log.contains(&key), "the key in the step's log: {log}");

    let (code, log) = step("upgrade", "2099.1.1", &key);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("##fail octoup upgrade exited 2 (bad usage or configuration; nothing was changed). --to 2099.1.1:"),
        "{log}"
    );
    assert!(log.contains("##set Octoup.outcome=failed"), "{log}");

    // Without the key octoup cannot ask the server: the step fails and says so.
    let (code, log) = step("upgrade", TARGET, "");
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("##fail octoup upgrade exited 2"), "{log}");

    let (code, log) = step("upgrade", TARGET, &key);
    assert_eq!(code, 1, "{log}");
    assert!(
        log.contains("##fail octoup upgrade exited 4 (paused"),
        "{log}"
    );
    assert!(log.contains("Next step: "), "{log}");
    assert!(log.contains("##set Octoup.outcome=paused"), "{log}");

    let (code, log) = step("upgrade", TARGET, &key);
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains(&format!(
            "##highlight octoup upgraded Octopus Server from 2024.1.10 to {TARGET}"
        )),
        "{log}"
    );
    let (code, log) = step("upgrade", TARGET, &key);
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("##highlight Octopus Server is up to date"),
        "{log}"
    );
    assert!(!log.contains(&key), "the key in the step's log: {log}");
    sim.assert_check();
}
