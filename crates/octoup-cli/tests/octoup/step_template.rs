//! The Octopus step template (`integrations/octopus/octoup-upgrade.steptemplate.json`)
//! against the shape of the vendor's community Library (`step-templates/*.json` and the
//! Library's own validation: Id a GUID, Name at most 200 characters, LastModifiedBy and
//! $Meta.ExportedAt present, no BOM, package feeds null), plus what only this template
//! promises: every parameter the script reads is declared and every declared one is read,
//! the exit codes it explains are exit.rs's, and the API key never reaches an argument.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

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

/// Parameter names the script reads: `$OctopusParameters['Name']` and `#{Name}`.
fn referenced(script: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (open, close) in [("$OctopusParameters['", "']"), ("#{", "}")] {
        for piece in script.split(open).skip(1) {
            if let Some((name, _)) = piece.split_once(close) {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// The keys of the script's `$meanings = @{ ... }` table.
fn explained_codes(script: &str) -> BTreeSet<u32> {
    script
        .split("$meanings = @{")
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .expect("the script has a $meanings table")
        .lines()
        .filter_map(|l| l.trim().split_once('=')?.0.trim().parse().ok())
        .collect()
}

#[test]
fn the_step_template_has_the_library_shape_and_keeps_its_promises() {
    let path = octopus_dir().join("octoup-upgrade.steptemplate.json");
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
    assert_eq!(string(props, "Octopus.Action.Script.Syntax"), "PowerShell");
    let script = string(props, "Octopus.Action.Script.ScriptBody");

    // The script is kept readable beside the template; the two are the same text.
    let ps1 = octopus_dir().join("octoup-upgrade.ScriptBody.ps1");
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
    for line in script.lines().filter(|l| l.contains("$apiKey")) {
        assert!(
            line.contains("$OctopusParameters['Octoup.ApiKey']")
                || line.contains("$env:OCTOPUS_API_KEY = $apiKey"),
            "the API key used outside OCTOPUS_API_KEY: {line}"
        );
    }
    assert!(script.contains("Remove-Item Env:OCTOPUS_API_KEY"));

    // Every exit status is explained, and only those.
    let ours: BTreeSet<u32> = exit_codes().into_iter().map(|(_, c)| c).collect();
    assert!(ours.len() >= 12, "{ours:?}");
    assert_eq!(explained_codes(script), ours);
}
