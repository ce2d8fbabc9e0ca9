//! Octopus Server versions: `2024.2.9409`, legacy four-part `2.6.2.845`, pre-releases like
//! `2024.3.0-rc.1`.
//!
//! Equality, hashing and ordering use the normalized value (missing parts are 0, so
//! `2024.1.1 == 2024.1.1.0`); `Display` keeps the number of parts that was parsed, so a
//! version prints the way the feed or the server wrote it.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a version string must look like; appended to every parse error.
const EXPECTED: &str = "expected three or four numbers separated by dots (2024.2.9409, 2.6.2.845), \
                        optionally followed by a pre-release tag (2024.3.0-rc.1)";

/// An Octopus Server version.
#[derive(Clone, Debug)]
pub struct Version {
    /// Normalized to four parts; parts that were not written are 0.
    parts: [u64; 4],
    /// How many parts were written (3 or 4), for `Display`.
    written: u8,
    /// Pre-release identifiers; empty for a release.
    pre: Vec<PreId>,
}

/// One dot-separated pre-release identifier, compared the SemVer way: numbers numerically,
/// numbers before words, words by ASCII.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum PreId {
    Num(u64),
    Word(String),
}

/// A release line, `major.minor` (e.g. `2024.3`), as used by `versions.pin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Line {
    pub major: u64,
    pub minor: u64,
}

/// A version (or line) string that does not parse; the message names the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Octopus version {input:?}: {problem}; {expected}")]
pub struct VersionError {
    pub input: String,
    pub problem: String,
    expected: &'static str,
}

impl VersionError {
    fn new(input: &str, problem: impl Into<String>) -> Self {
        VersionError {
            input: input.to_string(),
            problem: problem.into(),
            expected: EXPECTED,
        }
    }

    fn line(input: &str, problem: impl Into<String>) -> Self {
        VersionError {
            input: input.to_string(),
            problem: problem.into(),
            expected: "expected a release line: two numbers separated by a dot, like 2024.3",
        }
    }
}

impl Version {
    /// A three-part release version.
    pub fn new(major: u64, minor: u64, build: u64) -> Version {
        Version {
            parts: [major, minor, build, 0],
            written: 3,
            pre: Vec::new(),
        }
    }

    pub(crate) fn major(&self) -> u64 {
        self.parts[0]
    }

    pub(crate) fn minor(&self) -> u64 {
        self.parts[1]
    }

    #[cfg(test)]
    /// The third part: the build number of modern versions (`2024.2.9409` → 9409).
    pub(crate) fn build(&self) -> u64 {
        self.parts[2]
    }

    /// The release line this version belongs to (`2024.2.9409` → `2024.2`).
    pub(crate) fn line(&self) -> Line {
        Line {
            major: self.major(),
            minor: self.minor(),
        }
    }

    pub(crate) fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    /// The same version without its pre-release tag (`2024.3.0-rc.1` → `2024.3.0`).
    pub(crate) fn release(&self) -> Version {
        Version {
            pre: Vec::new(),
            ..self.clone()
        }
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.parts == other.parts && self.pre == other.pre
    }
}

impl Eq for Version {}

impl Hash for Version {
    // Must agree with `Eq`: hash the normalized value, never `written`.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts.hash(state);
        self.pre.hash(state);
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts.cmp(&other.parts).then_with(|| {
            // A release sorts after every pre-release of the same numbers.
            match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            }
        })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Parses one numeric part; `what` names it in the error.
fn number(input: &str, part: &str, what: &str) -> Result<u64, VersionError> {
    if part.is_empty() {
        return Err(VersionError::new(
            input,
            format!("the {what} part is empty"),
        ));
    }
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VersionError::new(
            input,
            format!("the {what} part {part:?} is not a number"),
        ));
    }
    // Leading zeros would not survive a display round trip, and Octopus never writes them.
    if part.len() > 1 && part.starts_with('0') {
        return Err(VersionError::new(
            input,
            format!("the {what} part {part:?} has a leading zero"),
        ));
    }
    part.parse()
        .map_err(|_| VersionError::new(input, format!("the {what} part {part:?} is too large")))
}

fn parse_pre(input: &str, tag: &str) -> Result<Vec<PreId>, VersionError> {
    tag.split('.')
        .map(|id| {
            if id.is_empty() {
                return Err(VersionError::new(input, "the pre-release tag has an empty identifier"));
            }
            if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(VersionError::new(
                    input,
                    format!("the pre-release identifier {id:?} has characters other than letters, digits and '-'"),
                ));
            }
            if id.bytes().all(|b| b.is_ascii_digit()) {
                number(input, id, "pre-release").map(PreId::Num)
            } else {
                Ok(PreId::Word(id.to_string()))
            }
        })
        .collect()
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let input = s.trim();
        if input.is_empty() {
            return Err(VersionError::new(s, "it is empty"));
        }
        if input.contains('+') {
            return Err(VersionError::new(
                s,
                "build metadata ('+...') is not used by Octopus versions",
            ));
        }
        let (numbers, pre) = match input.split_once('-') {
            Some((n, tag)) => (n, parse_pre(s, tag)?),
            None => (input, Vec::new()),
        };
        let pieces: Vec<&str> = numbers.split('.').collect();
        if !(3..=4).contains(&pieces.len()) {
            return Err(VersionError::new(
                s,
                format!("it has {} part(s)", pieces.len()),
            ));
        }
        const NAMES: [&str; 4] = ["major", "minor", "build", "revision"];
        let mut parts = [0u64; 4];
        for (i, piece) in pieces.iter().enumerate() {
            parts[i] = number(s, piece, NAMES[i])?;
        }
        Ok(Version {
            parts,
            written: pieces.len() as u8,
            pre,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.parts;
        write!(f, "{a}.{b}.{c}")?;
        if self.written == 4 {
            write!(f, ".{d}")?;
        }
        for (i, id) in self.pre.iter().enumerate() {
            f.write_str(if i == 0 { "-" } else { "." })?;
            match id {
                PreId::Num(n) => write!(f, "{n}")?,
                PreId::Word(w) => f.write_str(w)?,
            }
        }
        Ok(())
    }
}

impl Line {
    /// Whether `version` belongs to this line.
    pub(crate) fn contains(&self, version: &Version) -> bool {
        version.line() == *self
    }
}

impl FromStr for Line {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let input = s.trim();
        let Some((major, minor)) = input.split_once('.') else {
            return Err(VersionError::line(s, "it has no dot"));
        };
        let part = |p: &str, what: &str| -> Result<u64, VersionError> {
            number(s, p, what).map_err(|e| VersionError::line(s, e.problem))
        };
        Ok(Line {
            major: part(major, "major")?,
            minor: part(minor, "minor")?,
        })
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Serde as the display string, parsed back with `FromStr` (errors name the bad input).
macro_rules! serde_as_string {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_as_string!(Version, Line);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn parses_modern_and_legacy_versions() {
        let modern = v("2024.2.9409");
        assert_eq!(
            (modern.major(), modern.minor(), modern.build()),
            (2024, 2, 9409)
        );
        assert_eq!(
            modern.line(),
            Line {
                major: 2024,
                minor: 2
            }
        );
        assert!(!modern.is_prerelease());
        let legacy = v("2.6.2.845");
        assert_eq!(legacy.to_string(), "2.6.2.845");
        assert_eq!(legacy.line().to_string(), "2.6");
    }

    #[test]
    fn numeric_not_lexical_order() {
        assert!(v("2024.1.10") > v("2024.1.9"));
        assert!(v("2024.1.9999") < v("2024.2.1"));
        assert!(v("2024.4.9999") < v("2025.1.1"));
        assert!(v("2.6.5") < v("2.6.5.1"));
        assert!(v("3.17.14") < v("2018.10.0"));
    }

    #[test]
    fn missing_parts_are_zero_and_display_keeps_the_given_form() {
        assert_eq!(v("2024.1.1"), v("2024.1.1.0"));
        assert_eq!(v("2024.1.1").cmp(&v("2024.1.1.0")), Ordering::Equal);
        let set: HashSet<Version> = [v("2024.1.1"), v("2024.1.1.0")].into_iter().collect();
        assert_eq!(set.len(), 1, "Hash must agree with Eq");
        assert_eq!(v("2024.1.1.0").to_string(), "2024.1.1.0");
        assert_eq!(v("2024.1.1").to_string(), "2024.1.1");
    }

    #[test]
    fn prereleases_sort_before_their_release_semver_style() {
        let order = [
            "2024.2.9999",
            "2024.3.0-alpha",
            "2024.3.0-alpha.1",
            "2024.3.0-alpha.beta",
            "2024.3.0-beta.2",
            "2024.3.0-beta.11",
            "2024.3.0-rc.1",
            "2024.3.0",
            "2024.3.1-rc.1",
        ];
        for pair in order.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert!(v("2024.3.0-rc.1").is_prerelease());
        assert_eq!(v("2024.3.0-rc.1").release(), v("2024.3.0"));
    }

    #[test]
    fn errors_name_the_input_and_the_problem() {
        for (input, problem) in [
            ("", "empty"),
            ("2024.2", "2 part(s)"),
            ("2024.2.1.2.3", "5 part(s)"),
            ("2024.x.1", "\"x\" is not a number"),
            ("2024..1", "minor part is empty"),
            ("2024.02.1", "leading zero"),
            ("2024.2.1-", "empty identifier"),
            ("2024.2.1-rc.01", "leading zero"),
            ("2024.2.1-rc_1", "characters other than"),
            ("2024.2.1+abc", "build metadata"),
            ("99999999999999999999.1.1", "too large"),
        ] {
            let err = input.parse::<Version>().unwrap_err().to_string();
            assert!(err.contains(&format!("{input:?}")), "{err}");
            assert!(err.contains(problem), "{input}: {err}");
            assert!(
                err.contains("2024.2.9409"),
                "error shows the expected form: {err}"
            );
        }
    }

    #[test]
    fn surrounding_whitespace_is_tolerated() {
        assert_eq!(v(" 2024.2.1\n"), v("2024.2.1"));
    }

    #[test]
    fn serde_is_a_string() {
        let json = serde_json::to_string(&v("2024.3.0-rc.1")).unwrap();
        assert_eq!(json, "\"2024.3.0-rc.1\"");
        let back: Version = serde_json::from_str("\"2.6.2.845\"").unwrap();
        assert_eq!(back.to_string(), "2.6.2.845");
        let err = serde_json::from_str::<Version>("\"2024\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"2024\""), "{err}");
    }

    #[test]
    fn lines_parse_display_and_contain() {
        let line: Line = "2024.3".parse().unwrap();
        assert_eq!(line.to_string(), "2024.3");
        assert!(line.contains(&v("2024.3.12701")));
        assert!(!line.contains(&v("2024.4.1")));
        assert!(
            "2024"
                .parse::<Line>()
                .unwrap_err()
                .to_string()
                .contains("like 2024.3")
        );
        assert!("2024.3.1".parse::<Line>().is_err());
        assert!("2024.x".parse::<Line>().is_err());
        assert!(
            Line {
                major: 2024,
                minor: 2
            } < Line {
                major: 2024,
                minor: 10
            }
        );
    }

    fn pre_id() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u64..1000).prop_map(|n| n.to_string()),
            "[a-zA-Z-][a-zA-Z0-9-]{0,5}",
        ]
    }

    /// Canonical version strings: what `Display` produces.
    fn version_string() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(0u64..3000, 3..=4),
            prop::collection::vec(pre_id(), 0..3),
        )
            .prop_map(|(parts, pre)| {
                let mut s = parts
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(".");
                if !pre.is_empty() {
                    s.push('-');
                    s.push_str(&pre.join("."));
                }
                s
            })
    }

    proptest! {
        #[test]
        fn display_round_trips(s in version_string()) {
            let parsed: Version = s.parse().unwrap();
            prop_assert_eq!(parsed.to_string(), s.clone());
            let again: Version = parsed.to_string().parse().unwrap();
            prop_assert_eq!(again, parsed);
        }

        #[test]
        fn order_is_total_and_consistent_with_eq(a in version_string(), b in version_string(), c in version_string()) {
            let (a, b, c): (Version, Version, Version) = (a.parse().unwrap(), b.parse().unwrap(), c.parse().unwrap());
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            prop_assert_eq!(a.cmp(&b) == Ordering::Equal, a == b);
            if a <= b && b <= c {
                prop_assert!(a <= c);
            }
            if a == b {
                let mut ha = std::collections::hash_map::DefaultHasher::new();
                let mut hb = std::collections::hash_map::DefaultHasher::new();
                a.hash(&mut ha);
                b.hash(&mut hb);
                prop_assert_eq!(ha.finish(), hb.finish());
            }
        }

        #[test]
        fn trailing_zero_normalizes(major in 0u64..3000, minor in 0u64..50, build in 0u64..20000) {
            let three: Version = format!("{major}.{minor}.{build}").parse().unwrap();
            let four: Version = format!("{major}.{minor}.{build}.0").parse().unwrap();
            prop_assert_eq!(&three, &four);
            prop_assert_eq!(three.cmp(&four), Ordering::Equal);
            let set: HashSet<Version> = [three.clone(), four.clone()].into_iter().collect();
            prop_assert_eq!(set.len(), 1);
            let bigger: Version = format!("{major}.{minor}.{build}.1").parse().unwrap();
            prop_assert!(bigger > three);
        }
    }
}
