//! Version choice: the version feed, the operator's policy, the upgrade paths Octopus
//! requires, and `check`, which puts them together.
//!
//! [`choose`] is the one way a target is chosen by policy: `octoup check`, `stage`, `plan`,
//! `upgrade` and `demo` all go through it, with one notion of "today" ([`today`]).

pub mod check;
pub mod feed;
pub mod paths;
pub mod policy;
pub mod requested;

use jiff::civil::Date;

use crate::config::VersionsConfig;
use crate::version::Version;

use check::{CheckInput, CheckReport};
use feed::{FeedError, FeedSource, FetchText, load_feed};
use policy::{Policy, PolicyError};
use requested::{NotInFeed, Requested};

/// Why no target could be chosen at all.
#[derive(Debug, thiserror::Error)]
pub enum ChoiceError {
    /// `[versions]` is not valid: a configuration error.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The feed could not be read or used.
    #[error(transparent)]
    Feed(#[from] FeedError),
    /// The feed's URL is one octoup will not use (scheme, plain http): a configuration error.
    #[error("[versions] feed (or --feed): {0}")]
    FeedUrl(String),
    /// `--to` names a version the feed does not list: a usage error.
    #[error(transparent)]
    NotInFeed(#[from] Box<NotInFeed>),
}

impl ChoiceError {
    /// The operator's input is wrong (`[versions]`, the feed URL, `--to`), as opposed to a
    /// feed that could not be read.
    pub fn is_config(&self) -> bool {
        !matches!(self, ChoiceError::Feed(_))
    }
}

/// Today, for soak times (`min_age_days`): the UTC date, whatever the machine's time zone,
/// so that `octoup check` on an operator's laptop and `octoup upgrade` on a server in
/// another zone agree near midnight. Feed release dates are calendar dates, read as UTC.
pub(crate) fn today() -> Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

/// The policy's choice for an installation running `current`: reads `[versions]` and the
/// feed (`feed` overrides `[versions] feed`), then checks every candidate. The report says
/// which version, by which path, and why not the others.
pub async fn choose(
    versions: &VersionsConfig,
    feed: Option<&str>,
    http: &impl FetchText,
    current: &Version,
    license_max: Option<Version>,
) -> Result<CheckReport, ChoiceError> {
    let (policy, _, feed) = load(versions, feed, http).await?;
    Ok(check::check(&CheckInput {
        current: current.clone(),
        current_released: None,
        feed,
        policy,
        license_max,
        now: today(),
    }))
}

/// `--to wanted`: the feed must list it (a version it does not list was never published, or
/// is a typo). `[versions]` is checked too, so a bad policy is reported whatever is asked.
pub async fn requested(
    versions: &VersionsConfig,
    feed: Option<&str>,
    http: &impl FetchText,
    wanted: &Version,
) -> Result<Requested, ChoiceError> {
    let (_, source, feed) = load(versions, feed, http).await?;
    Ok(requested::requested(
        &feed,
        source.to_string(),
        wanted,
        today(),
    )?)
}

/// The policy, where the feed came from, and the feed.
async fn load(
    versions: &VersionsConfig,
    feed: Option<&str>,
    http: &impl FetchText,
) -> Result<(Policy, FeedSource, feed::Feed), ChoiceError> {
    let policy = Policy::from_config(versions)?;
    let source = FeedSource::parse(feed.unwrap_or(&versions.feed));
    if let FeedSource::Url(url) = &source {
        http.check_location(url).map_err(ChoiceError::FeedUrl)?;
    }
    let feed = load_feed(&source, http).await?;
    Ok((policy, source, feed))
}
