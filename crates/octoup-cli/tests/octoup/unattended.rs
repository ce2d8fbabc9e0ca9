//! The unattended examples under `integrations/`: the systemd units (checked by
//! `systemd-analyze verify` when it is installed) and the Task Scheduler XML (well-formed),
//! and each one's command line run for real, through the real binary, against the
//! simulator: what the units and the task start is a command octoup accepts and that does
//! what the docs say.

use std::path::{Path, PathBuf};
use std::process::Command;

use octoup_testkit::*;

const TARGET: &str = "2024.3.13050";

fn integrations() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../integrations")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `key=value` of `section` in a unit file (the first, after comments are dropped).
fn unit_value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
        } else if current == section
            && let Some((k, v)) = line.split_once('=')
            && k.trim() == key
        {
            return Some(v.trim().to_string());
        }
    }
    None
}

/// The octoup arguments of a command line, `--config FILE` pointed at `config`.
fn octoup_args(words: Vec<String>, config: &Path) -> Vec<String> {
    let program = &words[0];
    assert!(
        program.ends_with("/octoup") || program.ends_with("\\octoup.exe"),
        "not octoup: {program}"
    );
    let mut args = words[1..].to_vec();
    let at = args
        .iter()
        .position(|a| a == "--config")
        .expect("the command names its config with --config");
    args[at + 1] = config.to_string_lossy().into_owned();
    args
}

/// Runs `args` as the unit or the task would: no terminal, no --yes added.
fn run_as_scheduled(args: &[String]) -> Ran {
    Ran::of(&mut octoup_asking(args))
}

fn exec_start(unit: &str) -> Vec<String> {
    let text = read(&integrations().join("systemd").join(unit));
    assert_eq!(
        unit_value(&text, "Service", "Type").as_deref(),
        Some("oneshot")
    );
    assert_eq!(
        unit_value(&text, "Service", "StandardOutput").as_deref(),
        Some("journal"),
        "{unit}: the report goes to the journal"
    );
    let line = unit_value(&text, "Service", "ExecStart").expect("ExecStart");
    line.split_whitespace().map(str::to_string).collect()
}

#[test]
fn the_systemd_units_run_octoup_as_documented() {
    let sim = Scenario::new().start();
    let config = sim.config_path();
    let check = octoup_args(exec_start("octoup-check.service"), &config);
    let upgrade = octoup_args(exec_start("octoup-upgrade.service"), &config);
    assert!(check.contains(&"--exit-code".to_string()), "{check:?}");
    for flag in ["--yes", "--json"] {
        assert!(upgrade.contains(&flag.to_string()), "{upgrade:?}");
    }

    // The daily check says "upgrade available" (12), the window upgrades, then the
    // check is quiet (0).
    run_as_scheduled(&check).expect_code(12);
    let r = run_as_scheduled(&upgrade);
    r.expect_code(0);
    assert_eq!(
        r.outcome(),
        "upgraded",
        "stdout is one JSON report: {}",
        r.stdout
    );
    assert!(r.all_nodes_on(TARGET));
    run_as_scheduled(&check).expect_code(0);
    sim.assert_check();

    for (timer, service) in [
        ("octoup-upgrade.timer", "octoup-upgrade.service"),
        ("octoup-check.timer", "octoup-check.service"),
    ] {
        let text = read(&integrations().join("systemd").join(timer));
        assert_eq!(unit_value(&text, "Timer", "Unit").as_deref(), Some(service));
        assert!(
            unit_value(&text, "Timer", "OnCalendar").is_some(),
            "{timer}"
        );
        assert_eq!(
            unit_value(&text, "Install", "WantedBy").as_deref(),
            Some("timers.target")
        );
    }
}

/// `systemd-analyze verify` on the four units, the binary path pointed at the built
/// octoup (verify checks that ExecStart is executable). Any complaint fails, not only its
/// exit status (an unknown key is only a warning to it).
#[test]
fn systemd_analyze_verifies_the_units() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed: the units' syntax is not verified here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for entry in std::fs::read_dir(integrations().join("systemd")).unwrap() {
        let path = entry.unwrap().path();
        let text = read(&path).replace("/usr/local/bin/octoup", octoup_bin().to_str().unwrap());
        let copy = dir.path().join(path.file_name().unwrap());
        std::fs::write(&copy, text).unwrap();
        units.push(copy);
    }
    assert_eq!(units.len(), 4, "{units:?}");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

/// Splits a Windows command line's arguments: spaces separate, double quotes group.
fn split_windows(line: &str) -> Vec<String> {
    let (mut words, mut word, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Checks that `xml` is well-formed (tags nest and close, one root, attributes quoted)
/// and returns the text of every element, by its path (`Task/Actions/Exec/Command`).
fn parse_xml(xml: &str) -> Vec<(String, String)> {
    let mut stack: Vec<String> = Vec::new();
    let mut texts = Vec::new();
    let mut roots = 0;
    let mut rest = xml.trim_start_matches('\u{feff}');
    while let Some(open) = rest.find('<') {
        let text = rest[..open].trim();
        if !text.is_empty() {
            assert!(!stack.is_empty(), "text outside the root: {text}");
            assert!(
                !text.contains('&') || text.contains(';'),
                "bad entity: {text}"
            );
            texts.push((stack.join("/"), text.to_string()));
        }
        rest = &rest[open..];
        let (end, skip) = if rest.starts_with("<!--") {
            (rest.find("-->").expect("an unclosed comment"), 3)
        } else if rest.starts_with("<?") {
            (rest.find("?>").expect("an unclosed declaration"), 2)
        } else {
            (rest.find('>').expect("an unclosed tag"), 1)
        };
        let tag = &rest[..end + skip];
        rest = &rest[end + skip..];
        if tag.starts_with("<!--") || tag.starts_with("<?") {
            continue;
        }
        let inner = tag.trim_start_matches('<').trim_end_matches('>');
        assert_eq!(
            inner.matches('"').count() % 2,
            0,
            "unbalanced quotes: {tag}"
        );
        if let Some(name) = inner.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "mismatched {tag}"
            );
            continue;
        }
        let name = inner
            .trim_end_matches('/')
            .split_whitespace()
            .next()
            .expect("a tag name")
            .to_string();
        if stack.is_empty() {
            roots += 1;
        }
        if !inner.ends_with('/') {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    assert!(rest.trim().is_empty(), "after the root: {rest}");
    assert_eq!(roots, 1, "one root element");
    texts
}

#[test]
fn the_task_scheduler_xml_is_well_formed_and_its_command_line_runs() {
    let xml = read(
        &integrations()
            .join("windows")
            .join("octoup-upgrade.task.xml"),
    );
    assert!(
        xml.contains(
            r#"<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">"#
        ),
        "the Task Scheduler schema"
    );
    let texts = parse_xml(&xml);
    let text = |path: &str| {
        texts
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| panic!("no {path}"))
    };
    assert_eq!(text("Task/Settings/ExecutionTimeLimit"), "PT0S");
    assert_eq!(text("Task/Settings/MultipleInstancesPolicy"), "IgnoreNew");
    let mut words = vec![text("Task/Actions/Exec/Command")];
    words.extend(split_windows(&text("Task/Actions/Exec/Arguments")));

    let sim = Scenario::new().start();
    let args = octoup_args(words, &sim.config_path());
    let r = run_as_scheduled(&args);
    r.expect_code(0);
    assert_eq!(r.outcome(), "upgraded", "{}", r.stdout);
    sim.assert_check();
}

#[test]
fn the_xml_checker_finds_what_is_wrong() {
    for bad in [
        "<a><b></a></b>",
        "<a>",
        "<a/><b/>",
        "<a x=\"1></a>",
        "text<a/>",
    ] {
        let caught = std::panic::catch_unwind(|| parse_xml(bad));
        assert!(caught.is_err(), "{bad}");
    }
    assert_eq!(
        parse_xml("<?xml version=\"1.0\"?><!-- c --><a><b k=\"v\">t</b><c /></a>"),
        vec![("a/b".to_string(), "t".to_string())]
    );
}
