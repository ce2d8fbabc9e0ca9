//! The Octopus upgrade feed (`https://octopus.com/download/upgrade/v3`, or an air-gapped
//! mirror file or URL): a JSON array of `{"Version": "...", "Released": "yyyy-MM-dd"}`.
//!
//! Only `Version` and `Released` are known fields (reference §2); everything else is
//! ignored. The order of the array is not documented, so the feed is sorted here: the vendor
//! script's "last element is the newest" is exactly the bug this avoids. Bad entries are
//! skipped with a warning rather than failing the whole feed.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;

use jiff::civil::Date;
use serde::Serialize;
use serde_json::Value;

use crate::version::Version;

/// Appended to every feed error: what the operator should check.
const FEED_HINT: &str = "Check `versions.feed` in the config (or --feed): it must be the Octopus \
upgrade feed (https://octopus.com/download/upgrade/v3) or, on an air-gapped network, a mirror \
file or URL holding the same JSON array";

/// One release listed by the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Release {
    pub version: Version,
    pub released: Date,
}

/// Something odd in the feed that did not stop it from being used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FeedWarning {
    /// Entry `index` (0-based position in the JSON array) was skipped.
    Malformed { index: usize, reason: String },
    /// Entry `index` lists a version already seen at `kept_index`; the first one is kept.
    Duplicate {
        index: usize,
        kept_index: usize,
        version: Version,
        dates_differ: bool,
    },
}

impl fmt::Display for FeedWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeedWarning::Malformed { index, reason } => {
                write!(f, "feed entry at index {index} skipped: {reason}")
            }
            FeedWarning::Duplicate {
                index,
                kept_index,
                version,
                dates_differ,
            } => {
                write!(
                    f,
                    "feed entry at index {index} repeats {version} (index {kept_index}); kept the first"
                )?;
                if *dates_differ {
                    f.write_str(", which has a different release date")?;
                }
                Ok(())
            }
        }
    }
}

/// The feed, sorted oldest to newest, one release per version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feed {
    releases: Vec<Release>,
    warnings: Vec<FeedWarning>,
}

impl Feed {
    #[cfg(test)]
    /// A feed built from releases in any order (duplicates: the first one wins).
    pub(crate) fn from_releases(releases: impl IntoIterator<Item = Release>) -> Feed {
        let mut feed = Feed {
            releases: releases.into_iter().collect(),
            warnings: Vec::new(),
        };
        feed.normalize(None);
        feed
    }

    /// All releases, oldest first.
    pub(crate) fn releases(&self) -> &[Release] {
        &self.releases
    }

    /// What was skipped or merged while reading the feed.
    pub(crate) fn warnings(&self) -> &[FeedWarning] {
        &self.warnings
    }

    /// The release entry for `version`, if the feed lists it.
    pub(crate) fn get(&self, version: &Version) -> Option<&Release> {
        self.releases
            .binary_search_by(|r| r.version.cmp(version))
            .ok()
            .map(|i| &self.releases[i])
    }

    /// Releases strictly newer than `version`, oldest first.
    pub(crate) fn newer_than(&self, version: &Version) -> &[Release] {
        let start = self.releases.partition_point(|r| r.version <= *version);
        &self.releases[start..]
    }

    /// The newest release (pre-releases included).
    pub(crate) fn newest(&self) -> Option<&Release> {
        self.releases.last()
    }

    /// Sorts and removes duplicates; `indices[i]` is the JSON index of `releases[i]`.
    fn normalize(&mut self, indices: Option<Vec<usize>>) {
        let indices = indices.unwrap_or_else(|| (0..self.releases.len()).collect());
        let mut first_seen: HashMap<Version, (usize, Date)> = HashMap::new();
        let mut kept = Vec::with_capacity(self.releases.len());
        for (release, index) in self.releases.drain(..).zip(indices) {
            match first_seen.get(&release.version) {
                Some(&(kept_index, date)) => self.warnings.push(FeedWarning::Duplicate {
                    index,
                    kept_index,
                    dates_differ: date != release.released,
                    version: release.version,
                }),
                None => {
                    first_seen.insert(release.version.clone(), (index, release.released));
                    kept.push(release);
                }
            }
        }
        kept.sort_by(|a, b| a.version.cmp(&b.version));
        self.releases = kept;
    }
}

/// The feed could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("could not read the version feed file {path}: {source}. {FEED_HINT}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not download the version feed from {url}: {detail}. {FEED_HINT}")]
    Fetch { url: String, detail: String },
    #[error("the version feed{origin} is not valid JSON ({detail}). {FEED_HINT}")]
    NotJson { origin: Origin, detail: String },
    #[error("the version feed{origin} is a JSON {found}, not an array of versions. {FEED_HINT}")]
    NotArray { origin: Origin, found: &'static str },
    #[error("the version feed{origin} is empty: it lists no versions. {FEED_HINT}")]
    Empty { origin: Origin },
    #[error(
        "the version feed{origin} has {count} entries but none is usable (first problem: {first}). {FEED_HINT}"
    )]
    NoUsableEntries {
        origin: Origin,
        count: usize,
        first: String,
    },
}

/// Where a feed came from, shown in errors as " from <source>" (empty for raw bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin(Option<String>);

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(source) => write!(f, " from {source}"),
            None => Ok(()),
        }
    }
}

impl FeedError {
    fn with_origin(mut self, source: &FeedSource) -> FeedError {
        let named = Origin(Some(source.to_string()));
        match &mut self {
            FeedError::NotJson { origin, .. }
            | FeedError::NotArray { origin, .. }
            | FeedError::Empty { origin }
            | FeedError::NoUsableEntries { origin, .. } => *origin = named,
            FeedError::Read { .. } | FeedError::Fetch { .. } => {}
        }
        self
    }
}

/// Parses the feed: pure, no I/O. Entries that cannot be used become warnings.
pub fn parse_feed(bytes: &[u8]) -> Result<Feed, FeedError> {
    // Some servers and editors put a UTF-8 byte order mark in front of JSON.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let value: Value = serde_json::from_slice(bytes).map_err(|e| FeedError::NotJson {
        origin: Origin::default(),
        detail: e.to_string(),
    })?;
    let entries = match value {
        Value::Array(entries) => entries,
        other => {
            return Err(FeedError::NotArray {
                origin: Origin::default(),
                found: json_kind(&other),
            });
        }
    };
    if entries.is_empty() {
        return Err(FeedError::Empty {
            origin: Origin::default(),
        });
    }
    let mut feed = Feed::default();
    let mut indices = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        match parse_entry(entry) {
            Ok(release) => {
                feed.releases.push(release);
                indices.push(index);
            }
            Err(reason) => feed.warnings.push(FeedWarning::Malformed { index, reason }),
        }
    }
    if feed.releases.is_empty() {
        let first = feed
            .warnings
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        return Err(FeedError::NoUsableEntries {
            origin: Origin::default(),
            count: entries.len(),
            first,
        });
    }
    feed.normalize(Some(indices));
    Ok(feed)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A field by its documented name, or the same name in another case (hand-made mirrors).
fn field<'a>(object: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn parse_entry(entry: &Value) -> Result<Release, String> {
    let Value::Object(object) = entry else {
        return Err(format!("it is a JSON {}, not an object", json_kind(entry)));
    };
    let version = match field(object, "Version") {
        Some(Value::String(s)) => s.parse::<Version>().map_err(|e| e.to_string())?,
        Some(other) => {
            return Err(format!(
                "\"Version\" is a JSON {}, not a string",
                json_kind(other)
            ));
        }
        None => return Err("it has no \"Version\" field".into()),
    };
    let released = match field(object, "Released") {
        Some(Value::String(s)) => parse_released(s).ok_or_else(|| {
            format!("{version}: \"Released\" {s:?} is neither yyyy-MM-dd nor an RFC 3339 timestamp")
        })?,
        Some(other) => {
            return Err(format!(
                "{version}: \"Released\" is a JSON {}, not a string",
                json_kind(other)
            ));
        }
        None => return Err(format!("{version}: it has no \"Released\" field")),
    };
    Ok(Release { version, released })
}

/// `yyyy-MM-dd` (what Evergreen parses), or a full RFC 3339 timestamp (taken as its UTC
/// date), or a timestamp without offset (taken as written).
pub(crate) fn parse_released(text: &str) -> Option<Date> {
    let text = text.trim();
    if text.len() == 10 {
        return text.parse::<Date>().ok();
    }
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts.to_zoned(jiff::tz::TimeZone::UTC).date());
    }
    text.parse::<jiff::civil::DateTime>()
        .ok()
        .map(|dt| dt.date())
}

/// Where the feed comes from: `http(s)://` is a URL; a plain path or `file://` URL is a file
/// (the same rule as `crate::octopus::http::location_path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FeedSource {
    Url(String),
    File(PathBuf),
}

impl FeedSource {
    pub fn parse(text: &str) -> FeedSource {
        let text = text.trim();
        match crate::octopus::http::location_path(text) {
            Some(path) => FeedSource::File(path),
            None => FeedSource::Url(text.to_string()),
        }
    }
}

impl fmt::Display for FeedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeedSource::Url(url) => f.write_str(url),
            FeedSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The HTTP seam: fetch a URL's body as text. Implemented for the project's HTTP client;
/// tests use a closure-backed fake.
pub trait FetchText {
    fn get_text(&self, url: &str) -> impl Future<Output = Result<String, String>> + Send;
    /// Whether `url` is one the client will use at all (scheme, plain http): `Err` is a
    /// configuration error, not a feed that could not be read.
    fn check_location(&self, _url: &str) -> Result<(), String> {
        Ok(())
    }
}

/// The project's HTTP client (plain http only to loopback, proxy, CA bundle).
impl FetchText for crate::octopus::http::HttpClient {
    async fn get_text(&self, url: &str) -> Result<String, String> {
        crate::octopus::http::HttpClient::get_text(self, url)
            .await
            .map_err(|e| e.to_string())
    }

    fn check_location(&self, url: &str) -> Result<(), String> {
        self.check_url(url).map(drop).map_err(|e| e.to_string())
    }
}

/// Reads and parses the feed from a file or URL.
pub(crate) async fn load_feed(
    source: &FeedSource,
    http: &impl FetchText,
) -> Result<Feed, FeedError> {
    let bytes = match source {
        FeedSource::File(path) => tokio::fs::read(path).await.map_err(|e| FeedError::Read {
            path: path.clone(),
            source: e,
        })?,
        FeedSource::Url(url) => http
            .get_text(url)
            .await
            .map_err(|detail| FeedError::Fetch {
                url: url.clone(),
                detail,
            })?
            .into_bytes(),
    };
    parse_feed(&bytes).map_err(|e| e.with_origin(source))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn versions(feed: &Feed) -> Vec<String> {
        feed.releases()
            .iter()
            .map(|r| r.version.to_string())
            .collect()
    }

    #[test]
    fn sorts_by_version_not_by_position() {
        // The vendor script takes the last element; here the last is an old-line patch.
        let feed = parse_feed(
            br#"[{"Version":"2024.2.9409","Released":"2024-05-01"},
                 {"Version":"2024.3.12701","Released":"2024-09-09"},
                 {"Version":"2024.2.9500","Released":"2024-10-01"}]"#,
        )
        .unwrap();
        assert_eq!(
            versions(&feed),
            ["2024.2.9409", "2024.2.9500", "2024.3.12701"]
        );
        assert_eq!(feed.newest().unwrap().version, v("2024.3.12701"));
        assert!(feed.warnings().is_empty());
    }

    #[test]
    fn ignores_unknown_fields_and_accepts_timestamps() {
        let feed = parse_feed(
            br#"[{"Version":"2024.1.1","Released":"2024-01-02T23:30:00-05:00","Notes":"x","IsLts":true},
                 {"Version":"2024.1.2","Released":"2024-01-10T08:00:00"},
                 {"version":"2024.1.3","released":"2024-01-20"}]"#,
        )
        .unwrap();
        let dates: Vec<String> = feed
            .releases()
            .iter()
            .map(|r| r.released.to_string())
            .collect();
        // 23:30 at UTC-5 is the next day in UTC.
        assert_eq!(dates, ["2024-01-03", "2024-01-10", "2024-01-20"]);
    }

    #[test]
    fn malformed_entries_are_skipped_with_index_and_reason() {
        let feed = parse_feed(
            br#"[{"Version":"2024.1.1","Released":"2024-01-02"},
                 "2024.1.2",
                 {"Released":"2024-01-03"},
                 {"Version":"banana","Released":"2024-01-03"},
                 {"Version":"2024.1.4","Released":"yesterday"},
                 {"Version":"2024.1.5"},
                 {"Version":20240106,"Released":"2024-01-06"}]"#,
        )
        .unwrap();
        assert_eq!(versions(&feed), ["2024.1.1"]);
        let warnings: Vec<String> = feed.warnings().iter().map(ToString::to_string).collect();
        assert_eq!(warnings.len(), 6, "{warnings:#?}");
        assert!(warnings[0].starts_with("feed entry at index 1 skipped: it is a JSON string"));
        assert!(warnings[1].contains("index 2") && warnings[1].contains("no \"Version\""));
        assert!(warnings[2].contains("index 3") && warnings[2].contains("\"banana\""));
        assert!(warnings[3].contains("index 4") && warnings[3].contains("\"yesterday\""));
        assert!(warnings[4].contains("index 5") && warnings[4].contains("no \"Released\""));
        assert!(warnings[5].contains("index 6") && warnings[5].contains("not a string"));
    }

    #[test]
    fn duplicates_keep_the_first_and_are_noted() {
        let feed = parse_feed(
            br#"[{"Version":"2024.1.1","Released":"2024-01-02"},
                 {"Version":"2024.1.2","Released":"2024-01-09"},
                 {"Version":"2024.1.1.0","Released":"2024-01-05"}]"#,
        )
        .unwrap();
        assert_eq!(versions(&feed), ["2024.1.1", "2024.1.2"]);
        assert_eq!(
            feed.get(&v("2024.1.1")).unwrap().released.to_string(),
            "2024-01-02"
        );
        assert_eq!(
            feed.warnings()[0].to_string(),
            "feed entry at index 2 repeats 2024.1.1.0 (index 0); kept the first, which has a different release date"
        );
    }

    #[test]
    fn unusable_feeds_are_errors_that_say_what_to_check() {
        let cases: [(&[u8], &str); 5] = [
            (b"[]", "is empty"),
            (
                b"{\"Version\":\"2024.1.1\"}",
                "is a JSON object, not an array",
            ),
            (b"<html>502 Bad Gateway</html>", "is not valid JSON"),
            (b"", "is not valid JSON"),
            (
                b"[1, {\"Version\":\"x\"}]",
                "has 2 entries but none is usable",
            ),
        ];
        for (bytes, expected) in cases {
            let err = parse_feed(bytes).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
            assert!(
                err.contains("versions.feed") && err.contains("air-gapped"),
                "{err}"
            );
        }
    }

    #[test]
    fn byte_order_mark_is_tolerated() {
        let feed =
            parse_feed(b"\xEF\xBB\xBF[{\"Version\":\"2024.1.1\",\"Released\":\"2024-01-02\"}]")
                .unwrap();
        assert_eq!(versions(&feed), ["2024.1.1"]);
    }

    #[test]
    fn newer_than_and_get() {
        let feed = parse_feed(
            br#"[{"Version":"2024.1.3","Released":"2024-01-20"},
                 {"Version":"2024.1.1","Released":"2024-01-02"},
                 {"Version":"2024.2.1","Released":"2024-04-02"}]"#,
        )
        .unwrap();
        let newer: Vec<String> = feed
            .newer_than(&v("2024.1.2"))
            .iter()
            .map(|r| r.version.to_string())
            .collect();
        assert_eq!(newer, ["2024.1.3", "2024.2.1"]);
        assert_eq!(feed.newer_than(&v("2024.1.3")).len(), 1);
        assert!(feed.get(&v("2024.1.2")).is_none());
        assert_eq!(
            feed.get(&v("2024.1.3.0")).unwrap().version.to_string(),
            "2024.1.3"
        );
    }

    #[test]
    fn source_parse() {
        assert_eq!(
            FeedSource::parse("https://octopus.com/download/upgrade/v3"),
            FeedSource::Url("https://octopus.com/download/upgrade/v3".into())
        );
        assert_eq!(
            FeedSource::parse("HTTP://127.0.0.1:8080/feed"),
            FeedSource::Url("HTTP://127.0.0.1:8080/feed".into())
        );
        assert_eq!(
            FeedSource::parse("mirror/feed.json"),
            FeedSource::File("mirror/feed.json".into())
        );
        assert_eq!(
            FeedSource::parse(r"C:\octoup\feed.json"),
            FeedSource::File(r"C:\octoup\feed.json".into())
        );
        assert!(matches!(
            FeedSource::parse("file:///srv/mirror/feed.json"),
            FeedSource::File(_)
        ));
        assert!(matches!(
            FeedSource::parse("file:///srv/mirror/feed.json"),
            FeedSource::File(_)
        ));
    }

    struct Fake(Result<String, String>);

    impl FetchText for Fake {
        async fn get_text(&self, _url: &str) -> Result<String, String> {
            self.0.clone()
        }
    }

    #[tokio::test]
    async fn load_from_file_url_and_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.json");
        std::fs::write(&path, r#"[{"Version":"2024.1.1","Released":"2024-01-02"}]"#).unwrap();
        let unused = Fake(Err("not called".into()));
        let feed = load_feed(&FeedSource::File(path.clone()), &unused)
            .await
            .unwrap();
        assert_eq!(versions(&feed), ["2024.1.1"]);

        let missing = dir.path().join("missing.json");
        let err = load_feed(&FeedSource::File(missing.clone()), &unused)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("could not read the version feed file") && err.contains("missing.json"),
            "{err}"
        );

        let url = FeedSource::Url("https://mirror.example/feed".into());
        let ok = Fake(Ok(
            r#"[{"Version":"2024.2.1","Released":"2024-04-02"}]"#.into()
        ));
        assert_eq!(versions(&load_feed(&url, &ok).await.unwrap()), ["2024.2.1"]);

        let down = Fake(Err("connection refused".into()));
        let err = load_feed(&url, &down).await.unwrap_err().to_string();
        assert!(
            err.contains("from https://mirror.example/feed: connection refused"),
            "{err}"
        );

        let html = Fake(Ok("<html>".into()));
        let err = load_feed(&url, &html).await.unwrap_err().to_string();
        assert!(
            err.starts_with("the version feed from https://mirror.example/feed is not valid JSON"),
            "{err}"
        );
    }
}
