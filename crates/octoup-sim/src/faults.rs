//! Fault injection: which operation fails, how, on which node, how often.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Operations of the CLI stand-ins and the HTTP side that faults can target.
pub(crate) const STANDIN_OPS: &[&str] = &[
    "drain",
    "service-stop",
    "service-start",
    "db-upgrade",
    "db-upgrade-status",
    "show-master-key",
    "show-configuration",
    "version",
    "list-instances",
    "watchdog",
    "msiexec",
    "sql-backup",
    "sql-verify",
    "sql-restore",
    "sql-snapshot",
    "sql-copy",
];

/// HTTP operations (`api:/api/...` names one path).
pub(crate) const HTTP_OPS: &[&str] = &["api", "ping", "feed", "download"];

/// A validated operation name: one of [`STANDIN_OPS`], [`HTTP_OPS`] or `api:/api/<path>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FaultOp(String);

impl FaultOp {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this fault targets the concrete operation `op`. A plain `api` fault matches
    /// every `api:/...` operation; `api:/api/x` matches only that path.
    pub(crate) fn matches(&self, op: &str) -> bool {
        self.0 == op || (self.0 == "api" && op.starts_with("api:"))
    }
}

impl FromStr for FaultOp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if STANDIN_OPS.contains(&s) || HTTP_OPS.contains(&s) {
            return Ok(FaultOp(s.to_string()));
        }
        if let Some(path) = s.strip_prefix("api:")
            && path.starts_with("/api")
        {
            return Ok(FaultOp(s.to_string()));
        }
        Err(format!(
            "unknown fault op {s:?}; use one of {}, {} or api:/api/<path>",
            STANDIN_OPS.join(", "),
            HTTP_OPS.join(", ")
        ))
    }
}

impl TryFrom<String> for FaultOp {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<FaultOp> for String {
    fn from(op: FaultOp) -> String {
        op.0
    }
}

impl fmt::Display for FaultOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What happens when a fault fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FaultAction {
    /// The stand-in prints a realistic error and exits with this code.
    Exit(i32),
    /// The stand-in or HTTP handler blocks until killed.
    Hang,
    /// Adds simulated seconds before doing the work normally.
    Delay(f64),
    /// The HTTP endpoint answers this status with an Octopus error body.
    Http(u16),
    /// The download closes the connection after this many bytes.
    Drop(u64),
    /// The download flips the byte at this offset.
    Corrupt(u64),
    /// The download answers 200 with the whole file to a Range request.
    IgnoreRange,
    /// The HTTP endpoint answers 200 with an HTML login page (a misconfigured proxy).
    Html,
    /// The HTTP endpoint answers 200 with JSON of the wrong shape (a list of strangers).
    WrongShape,
    /// The HTTP endpoint answers 200 with JSON cut off half way.
    Truncate,
    /// The HTTP endpoint answers 200 with a JSON body of this many bytes (streamed, no
    /// Content-Length).
    Huge(u64),
    /// The HTTP endpoint answers 200 and sends its JSON body one byte every this many
    /// (real) milliseconds.
    Drip(u64),
    /// The HTTP endpoint answers 302 to this URL.
    Redirect(String),
}

impl FaultAction {
    /// An action that replaces the HTTP answer with a hostile one (what a proxy, a broken
    /// server or a man in the middle might send), for any HTTP op.
    pub(crate) fn is_hostile_answer(&self) -> bool {
        matches!(
            self,
            FaultAction::Html
                | FaultAction::WrongShape
                | FaultAction::Truncate
                | FaultAction::Huge(_)
                | FaultAction::Drip(_)
                | FaultAction::Redirect(_)
        )
    }
}

impl FromStr for FaultAction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "unknown fault action {s:?}; use exit:N, hang, delay:S, http:CODE, drop:N, corrupt:N, ignore-range, html, wrong-shape, truncate, huge:BYTES, drip:MS or redirect:URL"
            )
        };
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let number = |what: &str| -> Result<&str, String> {
            arg.filter(|a| !a.is_empty()).ok_or_else(|| {
                format!(
                    "fault action {name} needs {what}, e.g. {name}:{}",
                    example(name)
                )
            })
        };
        let action = match name {
            "exit" => FaultAction::Exit(number("an exit code")?.parse().map_err(|_| usage())?),
            "hang" if arg.is_none() => FaultAction::Hang,
            "delay" => {
                let secs: f64 = number("simulated seconds")?.parse().map_err(|_| usage())?;
                if !(secs.is_finite() && secs >= 0.0) {
                    return Err(usage());
                }
                FaultAction::Delay(secs)
            }
            "http" => {
                let code: u16 = number("a status code")?.parse().map_err(|_| usage())?;
                if !(100..=599).contains(&code) {
                    return Err(format!(
                        "fault action http:{code}: status must be 100..=599"
                    ));
                }
                FaultAction::Http(code)
            }
            "drop" => FaultAction::Drop(number("a byte count")?.parse().map_err(|_| usage())?),
            "corrupt" => {
                FaultAction::Corrupt(number("a byte offset")?.parse().map_err(|_| usage())?)
            }
            "ignore-range" if arg.is_none() => FaultAction::IgnoreRange,
            "html" if arg.is_none() => FaultAction::Html,
            "wrong-shape" if arg.is_none() => FaultAction::WrongShape,
            "truncate" if arg.is_none() => FaultAction::Truncate,
            "huge" => FaultAction::Huge(number("a byte count")?.parse().map_err(|_| usage())?),
            "drip" => FaultAction::Drip(number("milliseconds")?.parse().map_err(|_| usage())?),
            "redirect" => {
                let url = number("a URL")?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "fault action redirect:{url}: the URL must be http(s)://"
                    ));
                }
                FaultAction::Redirect(url.to_string())
            }
            _ => return Err(usage()),
        };
        Ok(action)
    }
}

fn example(name: &str) -> &'static str {
    match name {
        "exit" => "1603",
        "delay" => "30",
        "http" => "503",
        "drip" => "200",
        "redirect" => "https://login.example.com/",
        _ => "1000",
    }
}

impl fmt::Display for FaultAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultAction::Exit(n) => write!(f, "exit:{n}"),
            FaultAction::Hang => f.write_str("hang"),
            FaultAction::Delay(s) => write!(f, "delay:{s}"),
            FaultAction::Http(c) => write!(f, "http:{c}"),
            FaultAction::Drop(n) => write!(f, "drop:{n}"),
            FaultAction::Corrupt(n) => write!(f, "corrupt:{n}"),
            FaultAction::IgnoreRange => f.write_str("ignore-range"),
            FaultAction::Html => f.write_str("html"),
            FaultAction::WrongShape => f.write_str("wrong-shape"),
            FaultAction::Truncate => f.write_str("truncate"),
            FaultAction::Huge(n) => write!(f, "huge:{n}"),
            FaultAction::Drip(ms) => write!(f, "drip:{ms}"),
            FaultAction::Redirect(url) => write!(f, "redirect:{url}"),
        }
    }
}

impl TryFrom<String> for FaultAction {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<FaultAction> for String {
    fn from(a: FaultAction) -> String {
        a.to_string()
    }
}

/// One pending fault, as in the spec's `[[faults]]` and `octoup-sim fault`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub op: FaultOp,
    pub action: FaultAction,
    /// Only on this node; any node when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// How often it fires before it clears; 0 = forever.
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

impl FaultSpec {
    /// A fault from its words, as `octoup-sim fault` takes them.
    pub fn parse(
        op: &str,
        action: &str,
        node: Option<String>,
        times: u32,
    ) -> Result<FaultSpec, String> {
        Ok(FaultSpec {
            op: op.parse()?,
            action: action.parse()?,
            node,
            times,
        })
    }

    /// Whether this fault applies to `op` on `node` (`None`: not node-specific, e.g. sqlcmd).
    pub(crate) fn applies(&self, op: &str, node: Option<&str>) -> bool {
        self.op.matches(op)
            && match (&self.node, node) {
                (None, _) => true,
                (Some(want), Some(node)) => want == node,
                (Some(_), None) => false,
            }
    }
}

/// Takes the first fault in `faults` matching `op` on `node`, consuming one of its `times`.
pub(crate) fn take(
    faults: &mut Vec<FaultSpec>,
    op: &str,
    node: Option<&str>,
) -> Option<FaultAction> {
    take_if(faults, op, node, |_| true)
}

/// [`take`] among the faults that `accept` also accepts.
pub(crate) fn take_if(
    faults: &mut Vec<FaultSpec>,
    op: &str,
    node: Option<&str>,
    accept: impl Fn(&FaultSpec) -> bool,
) -> Option<FaultAction> {
    let i = faults
        .iter()
        .position(|f| f.applies(op, node) && accept(f))?;
    let action = faults[i].action.clone();
    match faults[i].times {
        0 => {}
        1 => {
            faults.remove(i);
        }
        _ => faults[i].times -= 1,
    }
    Some(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_and_reject_nonsense() {
        for s in [
            "exit:1603",
            "hang",
            "delay:2.5",
            "http:503",
            "drop:100",
            "corrupt:7",
            "ignore-range",
            "html",
            "wrong-shape",
            "truncate",
            "huge:10485760",
            "drip:200",
            "redirect:http://127.0.0.2:9/login",
        ] {
            assert_eq!(s.parse::<FaultAction>().unwrap().to_string(), s);
        }
        for s in [
            "exit",
            "exit:x",
            "hang:1",
            "http:99",
            "delay:-1",
            "explode",
            "drop:",
            "html:1",
            "huge:",
            "drip:x",
            "redirect:",
            "redirect:ftp://x",
        ] {
            assert!(s.parse::<FaultAction>().is_err(), "{s}");
        }
        assert!(
            "exit"
                .parse::<FaultAction>()
                .unwrap_err()
                .contains("exit:1603")
        );
    }

    #[test]
    fn ops_are_validated() {
        assert!("msiexec".parse::<FaultOp>().is_ok());
        assert!("api:/api/serverstatus".parse::<FaultOp>().is_ok());
        assert!("api:/elsewhere".parse::<FaultOp>().is_err());
        assert!(
            "service"
                .parse::<FaultOp>()
                .unwrap_err()
                .contains("service-stop")
        );
    }

    #[test]
    fn take_consumes_times_and_respects_node() {
        let spec = |node: Option<&str>, times| FaultSpec {
            op: "msiexec".parse().unwrap(),
            action: FaultAction::Exit(1603),
            node: node.map(str::to_string),
            times,
        };
        let mut faults = vec![spec(Some("A"), 2)];
        assert_eq!(take(&mut faults, "msiexec", Some("B")), None);
        assert_eq!(take(&mut faults, "msiexec", None), None);
        assert_eq!(
            take(&mut faults, "msiexec", Some("A")),
            Some(FaultAction::Exit(1603))
        );
        assert_eq!(
            take(&mut faults, "msiexec", Some("A")),
            Some(FaultAction::Exit(1603))
        );
        assert_eq!(take(&mut faults, "msiexec", Some("A")), None);
        assert!(faults.is_empty());

        let mut forever = vec![spec(None, 0)];
        for _ in 0..5 {
            assert!(take(&mut forever, "msiexec", Some("X")).is_some());
        }
        assert_eq!(forever.len(), 1);

        let mut api = vec![FaultSpec {
            op: "api".parse().unwrap(),
            action: FaultAction::Http(503),
            node: None,
            times: 1,
        }];
        assert_eq!(take(&mut api, "ping", Some("A")), None);
        assert_eq!(
            take(&mut api, "api:/api/tasks", Some("A")),
            Some(FaultAction::Http(503))
        );
    }
}
