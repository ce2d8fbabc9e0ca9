//! `[window]`: the maintenance window, as written, and its parse into a [`Schedule`]. The
//! calendar (is now inside, when does it end) is `crate::window`.
//!
//! Time zones come from jiff's database: the system's `/usr/share/zoneinfo` on Unix, the copy
//! jiff bundles on Windows (its default `tzdb-bundle-platform` feature), so an IANA name works
//! on both; without `time_zone` the machine's own zone is used (jiff's `tz-system`).

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::diagnostic::{KeyPath, Problem};

/// `days = ["Sat", "Sun"]` or `days = "Mon-Fri"`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DaysConfig {
    One(String),
    List(Vec<String>),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// The days the window opens on (absent: every day).
    pub days: Option<DaysConfig>,
    /// `HH:MM`, when the window opens.
    pub start: Option<String>,
    /// `HH:MM`, its hard end; before `start`, the window crosses midnight.
    pub end: Option<String>,
    /// An IANA name (`Europe/London`); absent: the machine's zone.
    pub time_zone: Option<String>,
}

/// A parsed `[window]`.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Days the window opens on, Monday first.
    pub days: [bool; 7],
    pub start: Time,
    pub end: Time,
    pub zone: TimeZone,
    /// The zone's name, for messages.
    pub zone_name: String,
}

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

impl WindowConfig {
    /// Whether a window is configured at all.
    pub fn is_set(&self) -> bool {
        self.days.is_some() || self.start.is_some() || self.end.is_some()
    }

    /// The schedule of a validated config (`None` without a window).
    pub(crate) fn parsed(&self) -> Option<Schedule> {
        self.schedule().ok().flatten()
    }

    /// The schedule, or `None` without a window. Errors name the key.
    pub(crate) fn schedule(&self) -> Result<Option<Schedule>, Problem> {
        if !self.is_set() {
            if self.time_zone.is_some() {
                zone(self.time_zone.as_deref())?;
            }
            return Ok(None);
        }
        let time = |key: &str, value: &Option<String>| -> Result<Time, Problem> {
            let Some(text) = value else {
                return Err(at(
                    key,
                    "missing: a window needs both start and end, as \"HH:MM\"".into(),
                ));
            };
            parse_hh_mm(text).ok_or_else(|| {
                at(
                    key,
                    format!("expected a time of day as \"HH:MM\" (24-hour), found {text:?}"),
                )
            })
        };
        let (start, end) = (time("start", &self.start)?, time("end", &self.end)?);
        if start == end {
            return Err(at(
                "end",
                format!(
                    "equals start ({}): the window would be empty (an end before the start crosses midnight)",
                    self.end.as_deref().unwrap_or_default()
                ),
            ));
        }
        let days = match &self.days {
            None => [true; 7],
            Some(spec) => parse_days(spec).map_err(|m| at("days", m))?,
        };
        let (zone, zone_name) = zone(self.time_zone.as_deref())?;
        Ok(Some(Schedule {
            days,
            start,
            end,
            zone,
            zone_name,
        }))
    }
}

impl Schedule {
    /// `Sat, Sun 02:00–04:00 Europe/London`.
    pub fn describe(&self) -> String {
        let days: Vec<&str> = (0..7)
            .filter(|&i| self.days[i])
            .map(|i| DAY_NAMES[i])
            .collect();
        let days = if days.len() == 7 {
            "every day".to_string()
        } else {
            days.join(", ")
        };
        format!(
            "{days} {}–{} {}",
            self.start.strftime("%H:%M"),
            self.end.strftime("%H:%M"),
            self.zone_name
        )
    }

    pub fn opens_on(&self, day: Weekday) -> bool {
        self.days[day.to_monday_zero_offset() as usize]
    }
}

fn at(key: &str, message: String) -> Problem {
    Problem::at(KeyPath::key("window", key), message)
}

/// `02:00` → 02:00. Only `HH:MM`: a seconds part or a 12-hour clock is a mistake here.
pub(crate) fn parse_hh_mm(text: &str) -> Option<Time> {
    let (h, m) = text.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    Time::new(h, m, 0, 0).ok()
}

fn day_index(name: &str) -> Option<usize> {
    let lower = name.trim().to_ascii_lowercase();
    (0..7).find(|&i| lower == DAY_NAMES[i].to_ascii_lowercase() || lower == FULL[i])
}

const FULL: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// `["Sat", "Sun"]`, `"Mon-Fri"`, `"Fri-Mon"` (wraps), `"Sat, Sun"`.
fn parse_days(spec: &DaysConfig) -> Result<[bool; 7], String> {
    let items: Vec<String> = match spec {
        DaysConfig::One(s) => s.split(',').map(str::to_string).collect(),
        DaysConfig::List(v) => v.clone(),
    };
    let mut days = [false; 7];
    for item in &items {
        let bad = || {
            format!(
                "expected day names (Mon, Tue, Wed, Thu, Fri, Sat, Sun) or a range such as \"Mon-Fri\", found {item:?}"
            )
        };
        match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day_index(a).ok_or_else(bad)?, day_index(b).ok_or_else(bad)?);
                let mut i = a;
                loop {
                    days[i] = true;
                    if i == b {
                        break;
                    }
                    i = (i + 1) % 7;
                }
            }
            None => days[day_index(item).ok_or_else(bad)?] = true,
        }
    }
    if !days.contains(&true) {
        return Err("is empty: name at least one day (or leave days out for every day)".into());
    }
    Ok(days)
}

/// The named zone, or the machine's.
fn zone(name: Option<&str>) -> Result<(TimeZone, String), Problem> {
    match name {
        Some(name) => match TimeZone::get(name) {
            // jiff matches names without regard to case; messages use the canonical one.
            Ok(tz) => {
                let canonical = tz.iana_name().unwrap_or(name).to_string();
                Ok((tz, canonical))
            }
            Err(_) => Err(at(
                "time_zone",
                format!(
                    "unknown time zone {name:?}: give an IANA name such as \"Europe/London\" or \"America/New_York\". List them with `timedatectl list-timezones` (Linux) or see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones"
                ),
            )),
        },
        None => {
            let tz = TimeZone::system();
            let name = tz.iana_name().unwrap_or("the machine's zone").to_string();
            Ok((tz, name))
        }
    }
}

/// The named zone of a validated config, else the machine's.
pub(crate) fn zone_or_system(name: Option<&str>) -> (TimeZone, String) {
    zone(name).unwrap_or_else(|_| zone(None).expect("the system zone"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Option<Schedule>, String> {
        let w: WindowConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        w.schedule()
            .map_err(|p| format!("{}: {}", p.key, p.message))
    }

    #[test]
    fn days_times_and_zones_parse() {
        let s = parsed("days = [\"Sat\", \"sunday\"]\nstart = \"22:00\"\nend = \"02:00\"\ntime_zone = \"Europe/London\"")
            .unwrap()
            .unwrap();
        assert_eq!(s.days, [false, false, false, false, false, true, true]);
        assert_eq!(s.describe(), "Sat, Sun 22:00–02:00 Europe/London");
        let s =
            parsed("days = \"Fri-Mon\"\nstart = \"02:00\"\nend = \"04:00\"\ntime_zone = \"UTC\"")
                .unwrap()
                .unwrap();
        assert_eq!(s.days, [true, false, false, false, true, true, true]);
        assert!(parsed("").unwrap().is_none());
    }

    #[test]
    fn bad_values_name_the_key_and_say_what_was_expected() {
        let e = parsed("start = \"2am\"\nend = \"04:00\"").unwrap_err();
        assert!(e.contains("[window] start") && e.contains("HH:MM"), "{e}");
        let e = parsed("start = \"02:00\"").unwrap_err();
        assert!(e.contains("[window] end") && e.contains("missing"), "{e}");
        let e = parsed("days = \"Mon-Fry\"\nstart = \"02:00\"\nend = \"04:00\"").unwrap_err();
        assert!(e.contains("[window] days") && e.contains("Mon-Fry"), "{e}");
        let e = parsed("start = \"02:00\"\nend = \"02:00\"").unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e =
            parsed("start = \"02:00\"\nend = \"04:00\"\ntime_zone = \"Europe/Londn\"").unwrap_err();
        assert!(e.contains("[window] time_zone"), "{e}");
        assert!(e.contains("\"Europe/Londn\"") && e.contains("IANA"), "{e}");
        assert!(e.contains("timedatectl list-timezones"), "{e}");
        assert!(parsed("start = \"02:00\"\nend = \"04:00\"\nzone = \"UTC\"").is_err());
    }

    #[test]
    fn the_config_file_error_says_where() {
        let text = "[window]\nstart = \"02:00\"\nend = \"04:00\"\ntime_zone = \"Mars/Olympus\"\n";
        let e = crate::config::Config::parse(text).unwrap_err().to_string();
        assert!(
            e.starts_with("<config>:4:1: [window] time_zone: unknown time zone \"Mars/Olympus\""),
            "{e}"
        );
        let e = crate::config::Config::parse("[window]\nstrat = \"02:00\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[window] strat: unknown key"), "{e}");
    }
}
