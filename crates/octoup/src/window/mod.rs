//! The maintenance window's calendar: whether now is inside `[window]` and when it ends, or
//! the hard end `--until` gives one run. What fits in it is the engine's (`engine::window`).

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

use crate::config::{Schedule, WindowConfig};

/// `--until TIME`: an RFC 3339 instant, or a local `HH:MM` meaning the next such time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Until {
    At(Timestamp),
    Local(Time),
}

#[derive(Debug, thiserror::Error)]
#[error(
    "--until {0:?}: expected an RFC 3339 time (2026-12-05T04:00:00+01:00, or …Z for UTC) or a local \"HH:MM\" (the next such time)"
)]
pub struct UntilError(String);

impl FromStr for Until {
    type Err = UntilError;
    fn from_str(text: &str) -> Result<Until, UntilError> {
        if let Some(t) = crate::config::window_time(text) {
            return Ok(Until::Local(t));
        }
        text.trim()
            .parse::<Timestamp>()
            .map(Until::At)
            .map_err(|_| UntilError(text.to_string()))
    }
}

/// The hard end of one run, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct HardEnd {
    pub at: Timestamp,
    /// `[window] Sat, Sun 02:00–04:00 Europe/London` or `--until 04:00`.
    pub source: String,
    /// The zone times are shown in.
    pub zone_name: String,
}

impl HardEnd {
    /// `2026-12-05 04:00 GMT`, in the window's zone.
    pub fn shown(&self) -> String {
        show(self.at, &self.zone_name)
    }
}

/// An instant as people read it in `zone_name` (the machine's zone when it is unknown).
pub fn show(at: Timestamp, zone_name: &str) -> String {
    let tz = TimeZone::get(zone_name).unwrap_or_else(|_| TimeZone::system());
    at.to_zoned(tz).strftime("%Y-%m-%d %H:%M %Z").to_string()
}

/// Now is outside the configured window: nothing may begin.
#[derive(Debug, Clone, PartialEq)]
pub struct Outside {
    pub schedule: String,
    /// When the window opens next (`None`: never within a week, which a valid schedule
    /// cannot be).
    pub opens: Option<String>,
}

impl fmt::Display for Outside {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "outside the maintenance window ([window] {})",
            self.schedule
        )?;
        if let Some(opens) = &self.opens {
            write!(f, ": it opens next at {opens}")?;
        }
        write!(
            f,
            ". Nothing was changed; run `octoup upgrade` inside the window, or give --until TIME to set this run's hard end yourself"
        )
    }
}

/// Where `now` falls in the schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    Inside { ends: Timestamp },
    Outside { opens: Option<Timestamp> },
}

impl Schedule {
    /// Inside a window (opened on one of `days` at `start`, ending at the next `end`), or
    /// outside and when the next one opens.
    pub fn placement(&self, now: Timestamp) -> Placement {
        let today = now.to_zoned(self.zone.clone()).date();
        let crosses = self.end <= self.start;
        let mut next_open = None;
        // Yesterday's window may cross midnight into today; a week ahead finds the next.
        for offset in -1..=7i64 {
            let Ok(day) = today.checked_add(offset.days()) else {
                continue;
            };
            if !self.opens_on(day.weekday()) {
                continue;
            }
            let (Some(open), Some(close)) = (
                self.at(day, self.start),
                self.at(
                    if crosses {
                        day.tomorrow().unwrap_or(day)
                    } else {
                        day
                    },
                    self.end,
                ),
            ) else {
                continue;
            };
            if open <= now && now < close {
                return Placement::Inside { ends: close };
            }
            if open > now && next_open.is_none() {
                next_open = Some(open);
            }
        }
        Placement::Outside { opens: next_open }
    }

    /// The instant of `time` on `day` in the zone (a time skipped by a DST change is taken
    /// after the change, as jiff's `compatible` rule does).
    fn at(&self, day: Date, time: Time) -> Option<Timestamp> {
        day.to_datetime(time)
            .to_zoned(self.zone.clone())
            .ok()
            .map(|z: Zoned| z.timestamp())
    }
}

/// This run's hard end: `--until` when given (it replaces `[window]` for the run), else the
/// end of the window now is in; `Ok(None)` without either; `Err` outside the window.
pub fn hard_end(
    config: &WindowConfig,
    until: Option<Until>,
    now: Timestamp,
) -> Result<Option<HardEnd>, Outside> {
    let schedule = config.parsed();
    let (zone, zone_name) = match &schedule {
        Some(s) => (s.zone.clone(), s.zone_name.clone()),
        None => crate::config::window_zone(config.time_zone.as_deref()),
    };
    if let Some(until) = until {
        let at = match until {
            Until::At(t) => t,
            Until::Local(time) => next_local(now, time, &zone),
        };
        return Ok(Some(HardEnd {
            at,
            source: match until {
                Until::At(t) => format!("--until {t}"),
                Until::Local(time) => format!("--until {}", time.strftime("%H:%M")),
            },
            zone_name,
        }));
    }
    let Some(schedule) = schedule else {
        return Ok(None);
    };
    match schedule.placement(now) {
        Placement::Inside { ends } => Ok(Some(HardEnd {
            at: ends,
            source: format!("[window] {}", schedule.describe()),
            zone_name,
        })),
        Placement::Outside { opens } => Err(Outside {
            schedule: schedule.describe(),
            opens: opens.map(|t| show(t, &zone_name)),
        }),
    }
}

/// The first `time` in `zone` after `now`.
fn next_local(now: Timestamp, time: Time, zone: &TimeZone) -> Timestamp {
    let today = now.to_zoned(zone.clone()).date();
    [Some(today), today.tomorrow().ok()]
        .into_iter()
        .flatten()
        .filter_map(|d| d.to_datetime(time).to_zoned(zone.clone()).ok())
        .map(|z| z.timestamp())
        .find(|t| *t > now)
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(text: &str) -> WindowConfig {
        toml::from_str(text).expect("window toml")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    const WEEKEND: &str = "days = [\"Sat\", \"Sun\"]\nstart = \"02:00\"\nend = \"04:00\"\ntime_zone = \"Europe/London\"";

    #[test]
    fn inside_the_window_the_hard_end_is_its_end() {
        // 2026-12-05 is a Saturday; London is on GMT in December.
        let end = hard_end(&window(WEEKEND), None, ts("2026-12-05T02:30:00Z"))
            .unwrap()
            .unwrap();
        assert_eq!(end.at, ts("2026-12-05T04:00:00Z"));
        assert_eq!(end.source, "[window] Sat, Sun 02:00–04:00 Europe/London");
        assert_eq!(end.shown(), "2026-12-05 04:00 GMT");
        // British Summer Time: the same local window is an hour earlier in UTC.
        let end = hard_end(&window(WEEKEND), None, ts("2026-06-07T01:30:00Z"))
            .unwrap()
            .unwrap();
        assert_eq!(end.at, ts("2026-06-07T03:00:00Z"));
    }

    #[test]
    fn outside_the_window_says_when_it_opens() {
        let out = hard_end(&window(WEEKEND), None, ts("2026-12-02T15:00:00Z")).unwrap_err();
        assert_eq!(out.opens.as_deref(), Some("2026-12-05 02:00 GMT"));
        let text = out.to_string();
        assert!(text.contains("outside the maintenance window"), "{text}");
        assert!(text.contains("--until"), "{text}");
        // At the end itself the window is over.
        assert!(hard_end(&window(WEEKEND), None, ts("2026-12-05T04:00:00Z")).is_err());
    }

    #[test]
    fn a_window_across_midnight_belongs_to_the_day_it_opens() {
        let w = window("days = \"Sat\"\nstart = \"22:00\"\nend = \"02:00\"\ntime_zone = \"UTC\"");
        // Sunday 01:00 is inside Saturday's window.
        let end = hard_end(&w, None, ts("2026-12-06T01:00:00Z"))
            .unwrap()
            .unwrap();
        assert_eq!(end.at, ts("2026-12-06T02:00:00Z"));
        // Sunday 23:00 is not (no window opens on Sunday).
        assert!(hard_end(&w, None, ts("2026-12-06T23:00:00Z")).is_err());
    }

    #[test]
    fn until_overrides_the_window_and_local_times_are_the_next_one() {
        let now = ts("2026-12-02T15:00:00Z");
        let until: Until = "14:00".parse().unwrap();
        let end = hard_end(&window(WEEKEND), Some(until), now)
            .unwrap()
            .unwrap();
        assert_eq!(
            end.at,
            ts("2026-12-03T14:00:00Z"),
            "the next 14:00 is tomorrow"
        );
        assert_eq!(end.source, "--until 14:00");
        let until: Until = "2026-12-02T17:30:00+01:00".parse().unwrap();
        let end = hard_end(&WindowConfig::default(), Some(until), now)
            .unwrap()
            .unwrap();
        assert_eq!(end.at, ts("2026-12-02T16:30:00Z"));
        assert!("tomorrow".parse::<Until>().is_err());
        assert!("25:00".parse::<Until>().is_err());
        assert_eq!(hard_end(&WindowConfig::default(), None, now), Ok(None));
    }
}
