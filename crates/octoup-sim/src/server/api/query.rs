//! Query strings as Octopus binds them: names match in any case, a list parameter may be
//! repeated (`states=Queued&states=Executing`) or comma-separated (`states=Queued,Executing`).

/// The decoded `name=value` pairs of a query string, in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (name, value) = p.split_once('=').unwrap_or((p, ""));
                (decode(name), decode(value))
            })
            .collect();
        Query(pairs)
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a list parameter, repeated or comma-separated, trimmed, non-empty.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// A boolean flag: `Some(true)`/`Some(false)` when given as true/false, else `None`.
    pub fn flag(&self, name: &str) -> Option<bool> {
        match self.get(name)? {
            v if v.eq_ignore_ascii_case("true") => Some(true),
            v if v.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }

    /// The pairs except paging and credentials, re-encoded, for the envelope's links.
    pub fn filters(&self) -> String {
        self.0
            .iter()
            .filter(|(k, _)| {
                !["skip", "take", "apikey"]
                    .iter()
                    .any(|p| k.eq_ignore_ascii_case(p))
            })
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Percent-decoding with `+` as space; invalid escapes are kept as they are.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi * 16 + lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-encoding of everything but unreserved characters and the comma.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_repeated_and_comma_separated() {
        let q = Query::parse(Some(
            "States=Queued&states=Executing,Cancelling&take=5&ApiKey=API-X",
        ));
        assert_eq!(q.list("states"), ["Queued", "Executing", "Cancelling"]);
        assert_eq!(q.get("TAKE"), Some("5"));
        assert_eq!(q.get("apikey"), Some("API-X"));
        assert_eq!(q.filters(), "States=Queued&states=Executing,Cancelling");
    }

    #[test]
    fn decoding() {
        let q = Query::parse(Some(
            "node=OctopusServerNodes-OCTO%2DNODE-01&a=b+c&bad=%zz&end=%4",
        ));
        assert_eq!(q.get("node"), Some("OctopusServerNodes-OCTO-NODE-01"));
        assert_eq!(q.get("a"), Some("b c"));
        assert_eq!(q.get("bad"), Some("%zz"));
        assert_eq!(q.get("end"), Some("%4"));
        assert_eq!(q.flag("missing"), None);
        assert_eq!(Query::parse(Some("active=TRUE")).flag("active"), Some(true));
    }
}
