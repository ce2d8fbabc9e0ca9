//! Input an operator can get wrong, against the simulator: `--to` a version the feed does
//! not list, configuration and usage errors (one exit status, 2, everywhere), a refused API
//! key (one message naming where the key came from), and a feed entry dated in the future.

use octoup_testkit::*;

/// The sim's feed lists 2024.3.13050 and 2025.1.5319 on either side of this.
const UNLISTED: &str = "2024.3.99999";

/// `octoup <args> --json` must exit `code` with an error containing every one of `words`,
/// changing nothing on the installation and downloading nothing into the cache.
#[track_caller]
fn refuses(sim: &Sim, args: &[&str], code: i32, words: &[&str]) -> Ran {
    let mut all = args.to_vec();
    all.push("--json");
    let r = sim.octoup(&all);
    r.expect_code(code);
    let error = r.json["error"].as_str().unwrap_or_default();
    for w in words {
        assert!(error.contains(w), "{args:?}: {w:?} not in {error}");
    }
    assert_unchanged(sim, args);
    r
}

#[track_caller]
fn assert_unchanged(sim: &Sim, what: &[&str]) {
    assert_eq!(
        mutating(&sim.history()),
        Vec::<String>::new(),
        "{what:?} changed the installation"
    );
    let cache = sim.dir().join("octoup-state").join("cache");
    let cached: Vec<_> = std::fs::read_dir(&cache)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(cached.is_empty(), "{what:?} downloaded {cached:?}");
}

const COMMANDS: [&[&str]; 3] = [&["plan"], &["stage"], &["upgrade", "--yes"]];

fn with(command: &[&'static str], extra: &[&'static str]) -> Vec<&'static str> {
    command.iter().chain(extra).copied().collect()
}

#[test]
fn to_a_version_not_in_the_feed_is_refused_naming_the_nearest_builds() {
    let sim = Scenario::new().start();
    for command in COMMANDS {
        refuses(
            &sim,
            &with(command, &["--to", UNLISTED]),
            2,
            &[
                UNLISTED,
                "does not list",
                "2024.3.13050 (the closest lower)",
                "2025.1.5319 (the closest higher)",
            ],
        );
    }
    // Text mode says the same on stderr.
    let r = sim.octoup(&["plan", "--to", UNLISTED]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("the nearest builds in the feed"),
        "{}",
        r.stderr
    );
}

#[test]
fn to_cannot_be_checked_when_the_feed_cannot_be_read() {
    let sim = Scenario::new()
        .config("versions", "feed", "/nonexistent/octoup-feed.json")
        .start();
    for command in COMMANDS {
        let r = sim.octoup(&with(command, &["--to", "2024.3.13050", "--json"]));
        r.expect_code(3);
        assert!(
            r.stdout
                .contains("cannot be checked against the version feed"),
            "{command:?}: {}",
            r.stdout
        );
        assert_unchanged(&sim, command);
    }
}

#[test]
fn to_a_listed_version_still_plans() {
    let (_sim, r) = Scenario::new().run(&["plan", "--to", "2024.2.9550", "--json"]);
    r.expect_code(0);
    assert_eq!(r.json["to"], "2024.2.9550", "{}", r.stdout);
}

#[test]
fn usage_and_configuration_errors_exit_2_everywhere() {
    let sim = Scenario::new().start();
    for command in COMMANDS {
        refuses(&sim, &with(command, &["--to", "banana"]), 2, &["banana"]);
        // A downgrade is not something octoup does: bad usage too.
        if command[0] != "stage" {
            refuses(
                &sim,
                &with(command, &["--to", "2024.1.9"]),
                2,
                &["downgrade"],
            );
        }
    }
    let all: [&[&str]; 4] = [&["check"], &["plan"], &["stage"], &["upgrade", "--yes"]];
    let good_url = sim.read_config()["server"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    for (table, key, value, words) in [
        ("server", "url", "ftp://octopus.example.com", &["ftp"][..]),
        (
            "server",
            "url",
            "http://octopus.example.com",
            &["allow_plain_http"][..],
        ),
        (
            "versions",
            "feed",
            "ftp://feed.example.com/v3",
            &["[versions] feed"][..],
        ),
    ] {
        sim.edit_config(|c| {
            c["server"]["url"] = good_url.clone().into();
            c[table][key] = value.into();
        });
        for command in all {
            refuses(&sim, command, 2, words);
        }
    }
}

#[test]
fn a_refused_key_is_2_everywhere_and_says_where_it_came_from() {
    let sim = Scenario::new().start();
    let key_file = sim.dir().join("wrong-key.txt");
    std::fs::write(&key_file, "API-WRONGWRONGWRONGWRONGWRONG\n").unwrap();
    sim.edit_config(|c| {
        c["server"]["api_key_file"] = key_file.display().to_string().into();
    });
    let all: [&[&str]; 4] = [&["check"], &["plan"], &["stage"], &["upgrade", "--yes"]];
    let from_file = format!("the API key in {} was refused (401)", key_file.display());
    for command in all {
        refuses(&sim, command, 2, &[&from_file, "Nothing was changed"]);
        // The environment wins over the file, and the message says so.
        let mut args = command.to_vec();
        args.push("--json");
        let r = Ran::of(
            sim.octoup_cmd(&args)
                .env("OCTOPUS_API_KEY", "API-ALSOWRONG"),
        );
        r.expect_code(2);
        let error = r.json["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("the API key from OCTOPUS_API_KEY was refused (401)"),
            "{command:?}: {error}"
        );
        assert!(error.contains("Set OCTOPUS_API_KEY"), "{error}");
        assert!(
            !error.contains("API-ALSOWRONG"),
            "the key itself never shows"
        );
        assert_unchanged(&sim, command);
    }
}

#[test]
fn a_feed_entry_dated_in_the_future_is_named_and_not_chosen() {
    let sim = Scenario::new()
        .spec(
            r#"[feed]
versions = [
  { Version = "2024.1.10", Released = "2024-03-11" },
  { Version = "2024.3.13050", Released = "2025-02-10" },
  { Version = "2024.3.20000", Released = "2099-01-01" },
]"#,
        )
        .start();
    let r = sim.octoup(&["check", "--json"]);
    r.expect_code(0);
    assert_eq!(r.json["target"], "2024.3.13050", "{}", r.stdout);
    let rejected = r.json["rejected"].as_array().unwrap();
    let future = rejected
        .iter()
        .find(|x| x["version"] == "2024.3.20000")
        .expect("listed as not chosen");
    assert_eq!(future["rule"], "released-in-future", "{future}");
    let warned = |json: &serde_json::Value| {
        json.as_array().is_some_and(|ws| {
            // A report's warnings are lines; a plan's findings are objects.
            ws.iter().any(|w| {
                w.as_str()
                    .or_else(|| w["found"].as_str())
                    .is_some_and(|w| w.contains("2024.3.20000") && w.contains("2099-01-01"))
            })
        })
    };
    assert!(warned(&r.json["warnings"]), "{}", r.stdout);
    // `plan` chooses the same way and carries the warning.
    let plan = sim.octoup(&["plan", "--json"]);
    plan.expect_code(0);
    assert_eq!(plan.json["to"], "2024.3.13050", "{}", plan.stdout);
    assert!(warned(&plan.json["facts"]["findings"]), "{}", plan.stdout);
    // Asked for by name it may be installed, but not silently.
    let to = sim.octoup(&["plan", "--to", "2024.3.20000", "--json"]);
    to.expect_code(0);
    assert!(warned(&to.json["facts"]["findings"]), "{}", to.stdout);
    assert_unchanged(&sim, &["check", "plan"]);
}
