//! Entry points for the fuzz targets in `fuzz/` (outside the workspace): one function per
//! parser, taking arbitrary bytes. Each feeds the bytes to the parser the way production
//! code does, renders what comes back (errors included: their `Display` slices the input),
//! and asserts the parser's own properties (round trips, a total order). A panic here is a
//! bug in the parser. Not an API: the parsers stay `pub(crate)`.

use std::cmp::Ordering;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::choice::feed::parse_feed;
use crate::config::Config;
use crate::installer::cache::StagedInstaller;
use crate::installer::verify::{parse_sha256, parse_sidecar};
use crate::journal::Run;
use crate::nodes::output;
use crate::nodes::protocol::{
    InstallReport, StartReport, StatusReport, StopReport, UninstallReport,
};
use crate::octopus::api;
use crate::version::Version;

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// The upgrade feed (`choice::feed::parse_feed`): a sorted, duplicate-free result.
pub fn feed(data: &[u8]) {
    match parse_feed(data) {
        Ok(feed) => {
            let releases = feed.releases();
            assert!(!releases.is_empty());
            assert!(
                releases.windows(2).all(|w| w[0].version < w[1].version),
                "the feed is not sorted and duplicate-free"
            );
            for w in feed.warnings() {
                let _ = w.to_string();
            }
            for r in releases {
                assert_eq!(feed.get(&r.version).map(|f| &f.version), Some(&r.version));
                let _ = feed.newer_than(&r.version);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `Version::from_str`: `Display` then parse gives an equal version that prints the same;
/// equality, hashing and ordering agree. The input is split on newlines into up to three
/// versions so the order is checked on related pairs and triples.
pub fn version(data: &[u8]) {
    let s = text(data);
    let mut parsed = Vec::new();
    for piece in s.split('\n').take(3) {
        match piece.parse::<Version>() {
            Ok(v) => {
                let shown = v.to_string();
                let again: Version = shown
                    .parse()
                    .unwrap_or_else(|e| panic!("{shown:?} does not parse again: {e}"));
                assert_eq!(again, v, "round trip of {piece:?}");
                assert_eq!(again.to_string(), shown, "display is stable for {piece:?}");
                assert_eq!(v.cmp(&again), Ordering::Equal);
                let _ = v.release();
                let _ = v.line().to_string();
                parsed.push(v);
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
        let _ = piece.parse::<crate::version::Line>();
    }
    for a in &parsed {
        for b in &parsed {
            let ab = a.cmp(b);
            assert_eq!(ab, b.cmp(a).reverse(), "{a} vs {b}: not antisymmetric");
            assert_eq!(
                ab == Ordering::Equal,
                a == b,
                "{a} vs {b}: cmp and eq disagree"
            );
            assert_eq!(a.partial_cmp(b), Some(ab));
            if a == b {
                use std::hash::{BuildHasher, RandomState};
                let h = RandomState::new();
                assert_eq!(h.hash_one(a), h.hash_one(b), "{a} == {b} but hashes differ");
            }
            for c in &parsed {
                if ab != Ordering::Greater && b.cmp(c) != Ordering::Greater {
                    assert_ne!(
                        a.cmp(c),
                        Ordering::Greater,
                        "{a} <= {b} <= {c}: not transitive"
                    );
                }
            }
        }
    }
    let mut sorted = parsed.clone();
    sorted.sort();
    assert!(sorted.windows(2).all(|w| w[0] <= w[1]));
}

/// `octoup.toml` (`Config::parse`, then what a run derives from it). Errors render with
/// their `file:line:col` excerpt.
pub fn config(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(s) {
        Ok(config) => {
            let _ = config.effective_nodes().map_err(|e| e.to_string());
            let _ = config.server_url().map_err(|e| e.to_string());
            let _ = config.sql_password().map_err(|e| e.to_string());
            let _ = config.cache_dir();
            let settings =
                crate::settings::resolve(&config, &crate::config::EnvOverrides::default());
            let _ = format!("{settings:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fn decodes<T: DeserializeOwned>(s: &str) -> bool {
    api::parse::<T>("http://fuzz/api", s)
        .map_err(|e| e.to_string())
        .is_ok()
}

/// Every answer the Octopus API client decodes, as the client decodes it: each typed
/// resource, the pages, the untyped ones (maintenance, license, node for drain), the
/// ping bodies and the error bodies of a refused request.
pub fn api_response(data: &[u8]) {
    let s = text(data);
    decodes::<api::RootResource>(&s);
    decodes::<api::ServerStatus>(&s);
    decodes::<api::SystemInfo>(&s);
    decodes::<api::ClusterSummary>(&s);
    decodes::<api::Page<api::TaskResource>>(&s);
    decodes::<api::PingBody>(&s);
    let _: api::PingBody = serde_json::from_str(&s).unwrap_or_default();
    if let Ok(v) = api::parse::<Value>("http://fuzz/api", &s) {
        let _ = api::read_bool(&v, "IsInMaintenanceMode");
        let _ = api::license_text_of(&v);
        let _ = v.as_object().map(|o| o.contains_key("Id"));
    }
    for status in [200, 401, 403, 404, 418, 500, 503] {
        let _ = api::check_status("http://fuzz/api", status, &s).map_err(|e| e.to_string());
    }
}

/// The run journal (`journal::Run` from JSON): what parses serialises and parses back to
/// the same run.
pub fn journal(data: &[u8]) {
    let Ok(run) = serde_json::from_slice::<Run>(data) else {
        return;
    };
    let _ = run.outage_seconds();
    for step in &run.steps {
        let _ = step.seconds();
    }
    let json = serde_json::to_string(&run).expect("a parsed run serialises");
    let again: Run = serde_json::from_str(&json).expect("a serialised run parses");
    assert_eq!(
        serde_json::to_value(&again).ok(),
        serde_json::to_value(&run).ok(),
        "the journal does not round-trip"
    );
}

/// An `octoup node` answer as `remote.rs` reads it: the last line of standard output that
/// is a JSON object (banners may come first), decoded as every action's report.
pub fn node_reply(data: &[u8]) {
    let s = text(data);
    let Some(answer) = crate::nodes::remote::last_json_object(&s) else {
        return;
    };
    fn one<T: DeserializeOwned>(answer: &Value) {
        let _ =
            crate::nodes::remote::decode::<T>("N1", "octoup node x", answer, "exit code 0".into())
                .map_err(|e| e.to_string());
    }
    one::<StagedInstaller>(&answer);
    one::<StopReport>(&answer);
    one::<InstallReport>(&answer);
    one::<UninstallReport>(&answer);
    one::<StartReport>(&answer);
    one::<StatusReport>(&answer);
}

/// What `Octopus.Server.exe` and msiexec print (`nodes/output.rs`), and the installer log
/// (UTF-8 or UTF-16) the failure excerpt reads. The first byte picks the exit code the
/// msiexec parser is given.
pub fn command_output(data: &[u8]) {
    let s = text(data);
    let _ = output::parse_version_output(&s).map(|v| v.to_string());
    let _ = output::parse_watchdog(&s);
    let _ = output::parse_master_key(&s).map(|k| k.expose().len());
    let _ = output::parse_upgrade_pending(&s);
    let _ = output::looks_like_nodes_running(&s);
    let raw = data.first().map(|&b| i32::from(b) - 128);
    let _ = output::msi_exit_code(raw, &s);
    let _ = output::msi_exit_code(None, &s);
    let log = output::decode_log(data);
    let _ = output::failure_excerpt(&log, 5);
}

/// Installer digests (`installer/verify.rs`): a bare SHA-256 and a `sha256sum`-style
/// sidecar. The first line of the input names the file the sidecar is asked about.
pub fn sha256_sidecar(data: &[u8]) {
    let s = text(data);
    if let Some(d) = parse_sha256(&s) {
        assert_eq!(d.len(), 64);
        assert_eq!(parse_sha256(&d).as_deref(), Some(d.as_str()));
    }
    let (name, body) = s
        .split_once('\n')
        .unwrap_or(("Octopus.2024.2.7-x64.msi", &s));
    for file in [name, "Octopus.2024.2.7-x64.msi"] {
        if let Some(d) = parse_sidecar(body, file) {
            assert_eq!(parse_sha256(&d).as_deref(), Some(d.as_str()));
        }
    }
    let _ = PathBuf::from(name);
}
