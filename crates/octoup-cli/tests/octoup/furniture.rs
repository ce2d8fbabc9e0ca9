//! The CLI furniture, end to end through the binary: shell completions, the man page,
//! `--help` (examples, the README's exit table), `--version`, `octoup init`,
//! `octoup config check`, and config errors (file:line:col, exit 2 from every command).

use std::path::Path;
use std::process::Command;

use octoup::config::Config;
use octoup_testkit::{Ran, octoup_command, run, run_in};

/// The README's "Exit status" rows: (code, meaning).
fn readme_exit_table() -> Vec<(String, String)> {
    let readme = include_str!("../../../../README.md");
    let section = readme.split("### Exit status").nth(1).unwrap();
    let rows: Vec<(String, String)> = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|row| {
            let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
            cells[0]
                .parse::<u8>()
                .ok()
                .map(|_| (cells[0].to_string(), cells[1].to_string()))
        })
        .collect();
    assert!(rows.len() >= 7, "{rows:?}");
    rows
}

#[test]
fn completions_for_each_shell_name_the_commands() {
    for (shell, marker) in [
        ("bash", "complete -F _octoup"),
        ("zsh", "#compdef octoup"),
        ("fish", "complete -c octoup"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let ran = run(["completions", shell]);
        ran.expect_code(0);
        assert!(ran.stdout.contains(marker), "{shell}: {}", ran.stdout);
        for command in ["init", "config", "upgrade", "completions"] {
            assert!(ran.stdout.contains(command), "{shell} lacks {command}");
        }
    }
    // The bash script is valid bash.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("octoup.bash");
    std::fs::write(&script, run(["completions", "bash"]).stdout).unwrap();
    let checked = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(checked.status.success(), "{checked:?}");
    run(["completions", "tcsh"]).expect_code(2);
}

#[test]
fn the_man_page_is_roff_with_the_commands_and_exit_statuses() {
    let ran = run(["man"]);
    ran.expect_code(0);
    assert!(ran.stdout.contains(".TH octoup"));
    for word in [
        "init",
        "completions",
        "OCTOPUS_API_KEY",
        "another octoup run holds the lock",
    ] {
        assert!(ran.stdout.contains(word), "the man page lacks {word}");
    }
}

#[test]
fn help_has_examples_and_the_readme_exit_table() {
    let long = run(["--help"]);
    long.expect_code(0);
    for (code, meaning) in readme_exit_table() {
        let line = format!("  {code}  {meaning}");
        assert!(
            long.stdout.contains(&line),
            "--help lacks {line:?}:\n{}",
            long.stdout
        );
    }
    assert!(
        long.stdout.contains("Examples:\n  octoup init"),
        "{}",
        long.stdout
    );
    assert!(long.stdout.contains("OCTOPUS_API_KEY"));
    let short = run(["-h"]);
    short.expect_code(0);
    assert!(
        short.stdout.contains("Exit status: 0, 1, 2, 3, 4, 5, 6"),
        "{}",
        short.stdout
    );
    assert!(!short.stdout.contains("Examples:"));
}

/// git's answer in this checkout, if git runs here.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn version_names_the_commit_and_its_date() {
    let ran = run(["--version"]);
    ran.expect_code(0);
    let line = ran.stdout.trim();
    let build = line
        .strip_prefix(&format!("octoup {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line:?}"));
    match (
        git(&["rev-parse", "--short", "HEAD"]),
        git(&["log", "-1", "--format=%cs"]),
    ) {
        (Some(commit), Some(date)) => assert_eq!(build, format!("{commit} {date}")),
        _ => assert_eq!(build, "unknown"),
    }
}

/// `octoup init <args>` in `dir`.
fn init(dir: &Path, args: &[&str]) -> Ran {
    run_in(dir, ["init"].iter().chain(args))
}

#[test]
fn init_writes_a_commented_config_that_loads() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path(), &["--url", "https://octopus.example.com"]).expect_code(0);
    let path = dir.path().join("octoup.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(
        config.server.url.as_deref(),
        Some("https://octopus.example.com")
    );
    assert!(config.nodes.is_empty());
    // Every key is commented with what it means: the line above each key (set or
    // commented out) is a comment that is not itself a key.
    let is_key = |l: &str| {
        l.trim_start_matches("# ")
            .split_once(" = ")
            .is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            })
    };
    let lines: Vec<&str> = text.lines().collect();
    let keys = (1..lines.len()).filter(|&i| is_key(lines[i])).count();
    assert!(keys >= 40, "{text}");
    for i in (1..lines.len()).filter(|&i| is_key(lines[i])) {
        assert!(
            lines[i - 1].starts_with("# ") && !is_key(lines[i - 1]),
            "{} has no comment above it",
            lines[i]
        );
    }
    assert!(text.contains("\nurl = \"https://octopus.example.com\"\n"));

    let cluster = [
        "--nodes",
        "OCTO-NODE-01=https://octo-node-01",
        "OCTO-NODE-02=https://octo-node-02",
        "--nodes",
        "OCTO-NODE-03=https://octo-node-03",
        "--url",
        "https://octopus.example.com",
        "--sql-server",
        "sql01.example.com",
        "--database",
        "Octopus",
        "--out",
        "ha.toml",
    ];
    init(dir.path(), &cluster).expect_code(0);
    let config = Config::load(&dir.path().join("ha.toml")).unwrap();
    let nodes: Vec<(&str, &str, bool)> = config
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.url.as_str(), n.primary))
        .collect();
    assert_eq!(
        nodes,
        [
            ("OCTO-NODE-01", "https://octo-node-01", true),
            ("OCTO-NODE-02", "https://octo-node-02", false),
            ("OCTO-NODE-03", "https://octo-node-03", false),
        ]
    );
    assert_eq!(config.database.name, "Octopus");
    assert_eq!(config.database.sqlcmd[2], "sql01.example.com");
}

#[test]
fn init_never_overwrites_and_never_writes_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("octoup.toml");
    std::fs::write(&path, "# mine\n").unwrap();
    let ran = init(dir.path(), &["--url", "https://octopus.example.com"]);
    ran.expect_code(2);
    assert!(
        ran.stderr.contains("octoup.toml already exists"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("never overwrites"), "{}", ran.stderr);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# mine\n");

    // The API key in the environment never reaches the file; a URL with credentials is refused.
    let ran = Ran::of(
        octoup_command([
            "init",
            "--out",
            "new.toml",
            "--url",
            "https://octopus.example.com",
        ])
        .current_dir(dir.path())
        .env("OCTOPUS_API_KEY", "API-ENVSECRET0000000000"),
    );
    ran.expect_code(0);
    let text = std::fs::read_to_string(dir.path().join("new.toml")).unwrap();
    assert!(!text.contains("API-ENVSECRET"));
    assert!(!text.lines().any(|l| l.starts_with("api_key")), "{text}");
    let ran = init(
        dir.path(),
        &["--out", "cred.toml", "--url", "https://admin:pw@octopus"],
    );
    ran.expect_code(2);
    assert!(!ran.stderr.contains("pw@") && !dir.path().join("cred.toml").exists());
    // A malformed --nodes value is bad usage.
    let ran = init(dir.path(), &["--out", "n.toml", "--nodes", "just-a-name"]);
    ran.expect_code(2);
    assert!(ran.stderr.contains("NAME=URL"), "{}", ran.stderr);
    assert!(!dir.path().join("n.toml").exists());
}

#[test]
fn config_check_resolves_and_redacts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.txt"), "API-FILESECRET000000000").unwrap();
    std::fs::write(
        dir.path().join("octoup.toml"),
        "[server]\nurl = \"https://octopus.example.com\"\napi_key_file = \"key.txt\"\n\n[[nodes]]\nname = \"A\"\nurl = \"https://a\"\n[[nodes]]\nname = \"B\"\nurl = \"https://b\"\ninstance = \"Other\"\n",
    )
    .unwrap();
    let ran = run_in(dir.path(), ["config", "check"]);
    ran.expect_code(0);
    let key_file = dir.path().join("key.txt");
    assert!(
        ran.stdout.starts_with("octoup.toml: valid\n"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains(&format!(
            "api_key:      from api_key_file {}",
            key_file.display()
        )),
        "{}",
        ran.stdout
    );
    assert!(!ran.stdout.contains("FILESECRET"));
    // Defaults filled in and relative paths resolved against the file's directory.
    let state = dir.path().join("octoup-state");
    assert!(
        ran.stdout
            .contains(&format!("dir = \"{}\"", state.display())),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("wait_seconds = 1800"));

    let ran = Ran::of(
        octoup_command(["config", "check", "--json"])
            .current_dir(dir.path())
            .env("OCTOPUS_API_KEY", "API-ENVSECRET0000000000"),
    );
    ran.expect_code(0);
    assert_eq!(ran.json["valid"], true);
    assert_eq!(ran.json["api_key"], "from OCTOPUS_API_KEY");
    assert!(!ran.stdout.contains("ENVSECRET") && !ran.stdout.contains("FILESECRET"));
    // [[nodes]] expanded: every per-node value filled in.
    let nodes = ran.json["settings"]["nodes"].as_array().unwrap();
    assert_eq!(nodes[0]["instance"], "OctopusServer");
    assert_eq!(nodes[1]["instance"], "Other");
    assert_eq!(nodes[1]["install"][0], "msiexec");

    // No key at all: shown as missing, and an upgrade would refuse, so exit 2.
    std::fs::write(
        dir.path().join("nokey.toml"),
        "[server]\nurl = \"https://o\"\n",
    )
    .unwrap();
    let ran = run_in(dir.path(), ["config", "check", "--config", "nokey.toml"]);
    ran.expect_code(2);
    assert!(
        ran.stdout.contains("api_key:      missing"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("no API key"), "{}", ran.stdout);
}

#[test]
fn a_config_error_is_placed_and_exits_2_from_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[server]\nurl = \"https://o\"\napi_key = \"API-INLINESECRET00000\"\n",
            "octoup.toml:3:1: [server] api_key: API keys never go in the config; use api_key_file or OCTOPUS_API_KEY",
        ),
        (
            "[server]\nurl = \"https://o\"\n\n[timeouts]\nstart = 0\n",
            "octoup.toml:5:1: [timeouts] start: expected a number of seconds above 0, found 0",
        ),
        (
            "[drain]\nwait_second = 5\n",
            "octoup.toml:2:1: [drain] wait_second: unknown key, expected `wait_seconds` or `cancel_tasks`",
        ),
        (
            "[[nodes]]\nname = \"a\"\nurl = \"https://a\"\nprimary = \"yes\"\n",
            "octoup.toml:4:11: [[nodes]] #1 primary: expected a boolean, found string \"yes\"",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(dir.path().join("octoup.toml"), text).unwrap();
        for args in [
            &["config", "check"][..],
            &["plan"],
            &["upgrade", "--yes"],
            &["status"],
            &["check"],
            &["stage"],
            &["rollback"],
        ] {
            let ran = run_in(dir.path(), args);
            ran.expect_code(2);
            assert!(ran.stderr.contains(expected), "{args:?}: {}", ran.stderr);
            assert!(!ran.stderr.contains("INLINESECRET") && !ran.stderr.contains("byte"));
        }
        let ran = run_in(dir.path(), ["config", "check", "--json"]);
        ran.expect_code(2);
        assert_eq!(ran.json["valid"], false);
        assert!(ran.json["error"].as_str().unwrap().contains(expected));
        assert_eq!(ran.json["location"]["file"], "octoup.toml");
    }
}
