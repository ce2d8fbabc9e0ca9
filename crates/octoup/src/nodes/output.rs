//! Reading what `Octopus.Server.exe` and msiexec print: versions, the watchdog, the
//! master key, the schema state, refusals and truncated exit codes.

use std::path::Path;

use serde_json::Value;

use crate::config::Secret;
use crate::process::runner::tail_lines;
use crate::version::Version;

use super::agent::*;

/// The version in `version --format=json` output (or plain text): a JSON field named like
/// a version, else the first token that parses as one.
pub(crate) fn parse_version_output(text: &str) -> Option<Version> {
    if let Some(v) = first_json_object(text) {
        for key in [
            "Version",
            "InformationalVersion",
            "MajorMinorPatch",
            "FullSemVer",
        ] {
            if let Some(found) = find_key_ci(&v, key).and_then(Value::as_str) {
                if let Ok(version) = found.trim().parse() {
                    return Some(version);
                }
                // "2024.1.10+Branch.main.Sha.abc": keep the part before build metadata.
                if let Some(head) = found.split(['+', ' ']).next()
                    && let Ok(version) = head.parse()
                {
                    return Some(version);
                }
            }
        }
    }
    text.split(|c: char| c.is_whitespace() || "\"',;:()[]{}".contains(c))
        .filter_map(|t| t.trim_start_matches(['v', 'V']).parse().ok())
        .next()
}

/// Watchdog settings from `show-configuration` JSON: flat dotted keys
/// (`Octopus.Watchdog.Enabled`) or the hierarchical form. A configuration without them
/// means no watchdog. `None` when the output is not JSON at all.
pub(crate) fn parse_watchdog(text: &str) -> Option<WatchdogInfo> {
    let v = first_json_object(text)?;
    let get = |name: &str| -> Option<Value> {
        find_key_ci(&v, &format!("Octopus.Watchdog.{name}"))
            .cloned()
            .or_else(|| {
                v.get("Octopus")
                    .and_then(|o| find_key_ci(o, "Watchdog"))
                    .and_then(|w| find_key_ci(w, name))
                    .cloned()
            })
    };
    let enabled = match get("Enabled") {
        Some(Value::Bool(b)) => b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let interval_minutes = match get("Interval") {
        Some(Value::Number(n)) => n.as_u64().map(|n| n as u32),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let instances = match get("Instances") {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    };
    Some(WatchdogInfo {
        enabled,
        interval_minutes,
        instances,
    })
}

/// The master key from `show-master-key` output: JSON `{"MasterKey": ...}` or text whose
/// last line holds it (after an optional `Master key:` label).
pub(crate) fn parse_master_key(text: &str) -> Option<Secret> {
    if let Some(v) = first_json_object(text)
        && let Some(key) = find_key_ci(&v, "MasterKey").and_then(Value::as_str)
    {
        return Some(Secret::new(key.trim())).filter(|s| !s.is_empty());
    }
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let key = line.rsplit(':').next().unwrap_or(line).trim();
    let plausible = key.len() >= 16
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c));
    plausible.then(|| Secret::new(key))
}

/// `database-upgrade-status` in words: pending, not pending, or unknown.
pub(crate) fn parse_upgrade_pending(text: &str) -> Option<bool> {
    if let Some(v) = first_json_object(text) {
        for key in [
            "UpgradeRequired",
            "IsUpgradeRequired",
            "RequiresUpgrade",
            "Pending",
        ] {
            if let Some(b) = find_key_ci(&v, key).and_then(Value::as_bool) {
                return Some(b);
            }
        }
    }
    let t = text.to_ascii_lowercase();
    let no = [
        "no upgrade",
        "not required",
        "up to date",
        "up-to-date",
        "no pending",
        "no scripts",
    ];
    let yes = [
        "will be upgraded",
        "upgrade required",
        "requires an upgrade",
        "pending",
        "scripts to run",
        "needs upgrade",
    ];
    if no.iter().any(|p| t.contains(p)) {
        Some(false)
    } else if yes.iter().any(|p| t.contains(p)) {
        Some(true)
    } else {
        None
    }
}

/// The server's refusal to upgrade while it sees nodes running (2023.2.9755+).
pub(crate) fn looks_like_nodes_running(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    (t.contains("node")
        && (t.contains("running") || t.contains("still active") || t.contains("online")))
        && !t.contains("license")
}

fn first_json_object(text: &str) -> Option<Value> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    (end > start)
        .then(|| serde_json::from_str::<Value>(&text[start..=end]).ok())
        .flatten()
        .filter(Value::is_object)
}

fn find_key_ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// msiexec's exit code. Unix keeps only 8 bits of an exit status, so a simulated msiexec's
/// 1603 arrives as 67; the verbose log's "Installation success or error status: N" line
/// holds the whole code, and is used when it agrees with the low 8 bits.
pub(crate) fn msi_exit_code(raw: Option<i32>, log_tail: &str) -> Option<i32> {
    let raw = raw?;
    let from_log = log_tail
        .rsplit("error status: ")
        .next()
        .filter(|_| log_tail.contains("error status: "))
        .and_then(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<i32>()
                .ok()
        });
    match from_log {
        Some(full) if full == raw || (full & 0xFF) == raw => Some(full),
        _ => Some(raw),
    }
}

/// An installer log's text (msiexec writes UTF-16 when asked for Unicode).
fn read_log(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|bytes| decode_log(&bytes))
}

/// An installer log's bytes as text: UTF-16 after its byte order mark, else UTF-8 (both
/// lossy: a log cut mid-character still reads).
pub(crate) fn decode_log(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// The last lines of an installer log.
pub(crate) fn read_log_tail(path: &Path, lines: usize) -> String {
    read_log(path)
        .map(|text| tail_lines(&text, lines))
        .unwrap_or_default()
}

/// Lines shown before and after the failing action in a verbose MSI log.
const CAUSE_BEFORE: usize = 12;
const CAUSE_AFTER: usize = 2;

/// What explains an installer failure: the lines around the first `Return value 3` of a
/// verbose (`/l*v`) log (the cause sits above it; the end of such a log is property
/// dumps), else the log's last lines.
pub(crate) fn msi_failure_excerpt(path: &Path, tail: usize) -> String {
    read_log(path)
        .map(|text| failure_excerpt(&text, tail))
        .unwrap_or_default()
}

/// [`msi_failure_excerpt`] of a log's text.
pub(crate) fn failure_excerpt(text: &str, tail: usize) -> String {
    excerpt_around_failure(text).unwrap_or_else(|| tail_lines(text, tail))
}

fn excerpt_around_failure(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| l.contains("Return value 3"))?;
    let from = at.saturating_sub(CAUSE_BEFORE);
    let to = (at + CAUSE_AFTER + 1).min(lines.len());
    Some(
        lines[from..to]
            .iter()
            .filter(|l| !l.trim().is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_msi_failure_shows_the_lines_above_the_first_return_value_3() {
        let mut log: Vec<String> = (0..40).map(|i| format!("MSI (s) line {i}")).collect();
        log[30] = "CustomAction InstallService returned actual error code 1603".into();
        log[31] = "Action ended 12:00:01: InstallFinalize. Return value 3.".into();
        for i in 0..200 {
            log.push(format!("Property(S): P{i} = value"));
        }
        log.push("Action ended 12:00:09: INSTALL. Return value 3.".into());
        let text = log.join("\r\n");
        let excerpt = excerpt_around_failure(&text).unwrap();
        assert!(
            excerpt.contains("returned actual error code 1603"),
            "{excerpt}"
        );
        assert!(
            excerpt.contains("InstallFinalize. Return value 3."),
            "{excerpt}"
        );
        assert!(!excerpt.contains("Property(S)"), "{excerpt}");
        assert!(excerpt.lines().count() <= CAUSE_BEFORE + CAUSE_AFTER + 1);
        assert_eq!(excerpt_around_failure("no failure here\nat all"), None);
    }

    #[test]
    fn versions_are_found_in_json_or_text() {
        let v = |s: &str| parse_version_output(s).map(|v| v.to_string());
        assert_eq!(
            v(r#"{"Version":"2024.1.10"}"#).as_deref(),
            Some("2024.1.10")
        );
        assert_eq!(
            v(r#"noise {"InformationalVersion":"2024.2.7+Branch.main"} "#).as_deref(),
            Some("2024.2.7")
        );
        assert_eq!(
            v("Octopus Deploy: 2023.4.8166\n").as_deref(),
            Some("2023.4.8166")
        );
        assert_eq!(v("nothing here"), None);
    }

    #[test]
    fn watchdog_flat_hierarchical_or_absent() {
        let w = parse_watchdog(
            r#"{"Octopus.Home":"C:\\Octopus","Octopus.Watchdog.Enabled":true,"Octopus.Watchdog.Interval":5,"Octopus.Watchdog.Instances":"*"}"#,
        )
        .unwrap();
        assert_eq!(
            w,
            WatchdogInfo {
                enabled: true,
                interval_minutes: Some(5),
                instances: Some("*".into())
            }
        );
        let w = parse_watchdog(r#"{"Octopus":{"Watchdog":{"Enabled":"True","Interval":"10"}}}"#)
            .unwrap();
        assert!(w.enabled);
        assert_eq!(w.interval_minutes, Some(10));
        assert!(!parse_watchdog(r#"{"Octopus.Home":"x"}"#).unwrap().enabled);
        assert!(parse_watchdog("Error: access denied").is_none());
    }

    #[test]
    fn master_key_json_or_text() {
        let k = parse_master_key(r#"{"MasterKey":"q3Yl0p9tRk2ZsW8vX1a2Bg=="}"#).unwrap();
        assert_eq!(k.expose(), "q3Yl0p9tRk2ZsW8vX1a2Bg==");
        let k = parse_master_key("Octopus Deploy\nMaster key: q3Yl0p9tRk2ZsW8vX1a2Bg==\n").unwrap();
        assert_eq!(k.expose(), "q3Yl0p9tRk2ZsW8vX1a2Bg==");
        assert!(parse_master_key("Access is denied.").is_none());
    }

    #[test]
    fn refusals_are_told_apart() {
        assert!(looks_like_nodes_running(
            "Unable to upgrade: the following nodes are still running: OCTO-NODE-02"
        ));
        assert!(!looks_like_nodes_running(
            "The license would be non-compliant; no data was changed"
        ));
        assert_eq!(
            parse_upgrade_pending("The database is up to date."),
            Some(false)
        );
        assert_eq!(
            parse_upgrade_pending("12 scripts to run; the database will be upgraded"),
            Some(true)
        );
        assert_eq!(
            parse_upgrade_pending(r#"{"UpgradeRequired": false}"#),
            Some(false)
        );
        assert_eq!(parse_upgrade_pending("???"), None);
    }

    #[test]
    fn truncated_msi_codes_are_recovered_from_the_log() {
        let log = "MSI (s): Product: Octopus -- Installation success or error status: 1603.";
        assert_eq!(msi_exit_code(Some(1603 & 0xFF), log), Some(1603));
        assert_eq!(msi_exit_code(Some(1603), log), Some(1603));
        assert_eq!(
            msi_exit_code(Some(3010 & 0xFF), "error status: 3010."),
            Some(3010)
        );
        // A log that disagrees with the exit code does not override it.
        assert_eq!(msi_exit_code(Some(1), log), Some(1));
        assert_eq!(msi_exit_code(Some(0), ""), Some(0));
        assert_eq!(msi_exit_code(None, log), None);
    }

    #[test]
    fn utf16_installer_logs_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.log");
        let mut bytes = vec![0xFF, 0xFE];
        for u in "line one\r\nError 1603: fatal\r\n".encode_utf16() {
            bytes.extend_from_slice(&u.to_le_bytes());
        }
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(read_log_tail(&path, 1), "Error 1603: fatal");
    }
}
