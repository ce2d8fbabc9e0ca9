//! `--to VERSION`: a version asked for by name must be one the feed lists, so a typo or a
//! build that was never published is refused before anything changes (instead of failing
//! later on the download server's 404). The error names the nearest builds the feed has.

use std::fmt;

use jiff::civil::Date;

use crate::choice::feed::Feed;
use crate::version::Version;

/// A `--to` version the feed lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    pub version: Version,
    pub released: Date,
    /// Odd but not refused (a release date after today).
    pub warnings: Vec<String>,
}

/// `--to` names a version the feed does not list: a usage error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotInFeed {
    pub wanted: Version,
    /// The feed it was looked up in (URL or file).
    pub feed: String,
    /// The newest listed build older than `wanted`.
    pub lower: Option<Version>,
    /// The oldest listed build newer than `wanted`.
    pub higher: Option<Version>,
    /// The newest listed build of `wanted`'s line, when it is neither of the above.
    pub newest_of_line: Option<Version>,
}

impl NotInFeed {
    pub(crate) fn new(feed: &Feed, source: String, wanted: &Version) -> NotInFeed {
        let releases = feed.releases();
        let lower = releases
            .iter()
            .rev()
            .find(|r| r.version < *wanted)
            .map(|r| r.version.clone());
        let higher = feed.newer_than(wanted).first().map(|r| r.version.clone());
        let newest_of_line = releases
            .iter()
            .rev()
            .find(|r| r.version.line() == wanted.line())
            .map(|r| r.version.clone())
            .filter(|v| Some(v) != lower.as_ref() && Some(v) != higher.as_ref());
        NotInFeed {
            wanted: wanted.clone(),
            feed: source,
            lower,
            higher,
            newest_of_line,
        }
    }
}

impl fmt::Display for NotInFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--to {}: the version feed ({}) does not list this version, so there is no such build to install",
            self.wanted, self.feed
        )?;
        let mut nearest = Vec::new();
        if let Some(v) = &self.lower {
            nearest.push(format!("{v} (the closest lower)"));
        }
        if let Some(v) = &self.higher {
            nearest.push(format!("{v} (the closest higher)"));
        }
        if let Some(v) = &self.newest_of_line {
            nearest.push(format!("{v} (the newest of {})", v.line()));
        }
        if !nearest.is_empty() {
            write!(
                f,
                "; the nearest builds in the feed: {}",
                nearest.join(", ")
            )?;
        }
        f.write_str(". Check the version (`octoup check` lists the candidates), or point [versions] feed at a feed that lists it")
    }
}

impl std::error::Error for NotInFeed {}

/// Looks `wanted` up in `feed`.
pub(crate) fn requested(
    feed: &Feed,
    source: String,
    wanted: &Version,
    today: Date,
) -> Result<Requested, Box<NotInFeed>> {
    let Some(release) = feed.get(wanted) else {
        return Err(Box::new(NotInFeed::new(feed, source, wanted)));
    };
    let mut warnings = Vec::new();
    if release.released > today {
        warnings.push(format!(
            "the feed dates {wanted} {}, after today ({today} UTC): a misdated feed entry? It is installed only because --to asks for it",
            release.released
        ));
    }
    Ok(Requested {
        version: wanted.clone(),
        released: release.released,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::choice::feed::Release;

    fn feed(entries: &[(&str, &str)]) -> Feed {
        Feed::from_releases(entries.iter().map(|(v, d)| Release {
            version: v.parse().unwrap(),
            released: d.parse().unwrap(),
        }))
    }

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    const TODAY: &str = "2025-06-01";

    fn sample() -> Feed {
        feed(&[
            ("2024.2.9409", "2024-05-01"),
            ("2024.3.12701", "2024-09-09"),
            ("2024.3.13050", "2024-10-01"),
            ("2025.1.3", "2025-01-20"),
        ])
    }

    #[test]
    fn a_listed_version_is_found() {
        let r = requested(
            &sample(),
            "f".into(),
            &v("2024.3.12701"),
            TODAY.parse().unwrap(),
        )
        .unwrap();
        assert_eq!(r.released, "2024-09-09".parse::<Date>().unwrap());
        assert!(r.warnings.is_empty());
    }

    /// The nearest builds named for an unlisted `wanted`: (lower, higher, newest of line).
    fn nearest(wanted: &str) -> (Option<Version>, Option<Version>, Option<Version>) {
        let e = requested(&sample(), "f".into(), &v(wanted), TODAY.parse().unwrap())
            .expect_err("not in the feed");
        (e.lower, e.higher, e.newest_of_line)
    }

    #[test]
    fn an_unlisted_version_names_the_nearest_builds() {
        let e = requested(
            &sample(),
            "feed.json".into(),
            &v("2024.3.99999"),
            TODAY.parse().unwrap(),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("feed.json"), "{text}");
        assert!(text.contains("2024.3.13050 (the closest lower)"), "{text}");
        assert!(text.contains("2025.1.3 (the closest higher)"), "{text}");
        // The closest lower is the newest of the line: not named twice.
        assert_eq!(
            nearest("2024.3.99999"),
            (Some(v("2024.3.13050")), Some(v("2025.1.3")), None)
        );
        assert_eq!(
            nearest("2024.3.12800"),
            (Some(v("2024.3.12701")), Some(v("2024.3.13050")), None)
        );
        assert_eq!(nearest("2024.2.1"), (None, Some(v("2024.2.9409")), None));
        // Below the line's first build: the newest of the line is named too.
        assert_eq!(
            nearest("2024.3.100"),
            (
                Some(v("2024.2.9409")),
                Some(v("2024.3.12701")),
                Some(v("2024.3.13050"))
            )
        );
        let e = requested(
            &sample(),
            "f".into(),
            &v("2024.3.100"),
            TODAY.parse().unwrap(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("2024.3.13050 (the newest of 2024.3)")
        );
    }

    #[test]
    fn a_future_dated_version_is_found_with_a_warning() {
        let f = feed(&[("2024.3.1", "2024-01-01"), ("2099.1.1", "2099-01-01")]);
        let r = requested(&f, "f".into(), &v("2099.1.1"), TODAY.parse().unwrap()).unwrap();
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].contains("2099-01-01, after today (2025-06-01 UTC)"));
    }
}
