//! Hostile answers from the server: each is refused before anything changes (the
//! simulator's history has no mutating event), with an error that says what was wrong
//! and at which URL (docs/simulator.md: the hostile fault actions).

use octoup_testkit::*;

/// `octoup upgrade` against a server whose first `/api` answer is `action`: refused (exit
/// 3), nothing changed, the error names the URL and contains `want`.
fn refused(action: &str, want: &[&str]) -> Ran {
    let sim = Scenario::new()
        .nodes(1)
        .config("timeouts", "http", 2)
        .fault("api:/api", action)
        .start();
    let r = sim.octoup(&["upgrade", "--json"]);
    let error = r.json["error"].as_str().unwrap_or_default().to_string();
    assert_eq!(r.code, 3, "{action}: {}\n{}", r.stdout, r.stderr);
    assert!(error.contains("/api"), "{action}: no URL in {error:?}");
    for w in want {
        assert!(error.contains(w), "{action}: {error:?} lacks {w:?}");
    }
    let changed = mutating(&sim.history());
    assert!(changed.is_empty(), "{action}: changed {changed:?}");
    r
}

#[test]
fn an_html_login_page_is_refused() {
    refused("html", &["got an HTML page", "proxy"]);
}

#[test]
fn json_of_the_wrong_shape_is_refused() {
    refused("wrong-shape", &["not the expected JSON"]);
}

#[test]
fn truncated_json_is_refused() {
    refused("truncate", &["not the expected JSON"]);
}

#[test]
fn a_huge_body_is_refused() {
    refused("huge:10485760", &["larger than"]);
}

#[test]
fn a_slow_drip_past_the_timeout_is_refused() {
    refused("drip:300", &["timed out"]);
}

#[test]
fn a_redirect_to_another_host_is_refused() {
    refused(
        "redirect:http://127.0.0.2:9/api",
        &["redirected to http://127.0.0.2:9/api"],
    );
}
