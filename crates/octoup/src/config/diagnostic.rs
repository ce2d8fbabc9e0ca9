//! Where a configuration error is and what is wrong: `file:line:col`, the `[table] key`,
//! and what was expected and found. Built from the toml crate's byte spans (a parse or type
//! error) or from the key a validation names (found in the document again), never shown as
//! a byte offset.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;
use toml_edit::{ImDocument, Item, TableLike, Value};

/// One configuration error, ready to print: `octoup.toml:12:1: [drain] wait_second: unknown
/// key, expected one of ...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The config file, as it was given.
    pub file: PathBuf,
    /// 1-based line and column (in characters), when the place is known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The key, e.g. `[drain] wait_seconds` or `[[nodes]] #2 url`.
    pub key: Option<String>,
    /// What is wrong: expected vs found, or what to do instead.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// One step of a key's path: a key, or a position in an array of tables.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A key of the config, as a path from the root: `[drain] wait_seconds`, `[[nodes]] #2 url`,
/// `[serverr]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyPath {
    segs: Vec<Seg>,
    /// The path ends at a table (shown as `[table]`), not at a key holding a value.
    table: bool,
}

impl KeyPath {
    /// `[table] key`.
    pub(crate) fn key(table: &str, key: &str) -> KeyPath {
        KeyPath {
            segs: vec![Seg::Key(table.into()), Seg::Key(key.into())],
            table: false,
        }
    }

    /// A key of a nested table: `[rehearsal.windows.node] name` is
    /// `nested(&["rehearsal", "windows", "node"], "name")`.
    pub(crate) fn nested(tables: &[&str], key: &str) -> KeyPath {
        KeyPath {
            segs: tables
                .iter()
                .chain([&key])
                .map(|k| Seg::Key((*k).into()))
                .collect(),
            table: false,
        }
    }

    /// The `index`th `[[nodes]]` table, or one of its keys.
    pub(crate) fn node(index: usize, key: Option<&str>) -> KeyPath {
        KeyPath::item("nodes", index, key)
    }

    /// The `index`th table of the array of tables `array`, or one of its keys.
    pub(crate) fn item(array: &str, index: usize, key: Option<&str>) -> KeyPath {
        let mut segs = vec![Seg::Key(array.into()), Seg::Index(index)];
        segs.extend(key.map(|k| Seg::Key(k.into())));
        KeyPath {
            table: key.is_none(),
            segs,
        }
    }

    /// The last key's name.
    fn leaf(&self) -> Option<&str> {
        match self.segs.last() {
            Some(Seg::Key(k)) => Some(k),
            _ => None,
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (header, leaf) = match (self.table, self.segs.split_last()) {
            (false, Some((Seg::Key(k), rest))) => (rest, Some(k)),
            _ => (&self.segs[..], None),
        };
        let mut names: Vec<&str> = Vec::new();
        let mut out = String::new();
        for seg in header {
            match seg {
                Seg::Key(k) => names.push(k),
                Seg::Index(i) => {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(&format!("[[{}]] #{}", names.join("."), i + 1));
                    names.clear();
                }
            }
        }
        if !names.is_empty() {
            if out.is_empty() {
                out = format!("[{}]", names.join("."));
            } else {
                out = format!("{out} {}", names.join("."));
            }
        }
        match leaf {
            Some(k) if out.is_empty() => write!(f, "{k}"),
            Some(k) => write!(f, "{out} {k}"),
            None => write!(f, "{out}"),
        }
    }
}

/// A validation failure: the key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) key: KeyPath,
    pub(crate) message: String,
}

impl Problem {
    pub(crate) fn at(key: KeyPath, message: impl Into<String>) -> Problem {
        Problem {
            key,
            message: message.into(),
        }
    }
}

/// Keys that would put a secret in the file, refused with what to do instead.
const FORBIDDEN: &[(Option<&str>, &str, &str)] = &[
    (
        None,
        "api_key",
        "API keys never go in the config; use api_key_file or OCTOPUS_API_KEY",
    ),
    (
        Some("database"),
        "password",
        "SQL passwords never go in the config; use [database] password_file",
    ),
];

/// The config text, parsed once more (with spans) to say where things are.
pub(crate) struct Source<'a> {
    text: &'a str,
    file: &'a Path,
    doc: Option<ImDocument<&'a str>>,
}

impl<'a> Source<'a> {
    pub(crate) fn new(text: &'a str, file: &'a Path) -> Source<'a> {
        Source {
            text,
            file,
            doc: ImDocument::parse(text).ok(),
        }
    }

    /// A key that must never be in the file (it would hold a secret), when there is one.
    /// Its value is never shown.
    pub(crate) fn forbidden_key(&self) -> Option<Diagnostic> {
        let doc = self.doc.as_ref()?;
        let mut found = None;
        visit(doc.as_table(), &mut Vec::new(), &mut |path, span| {
            let table = match path.segs.first() {
                Some(Seg::Key(t)) if path.segs.len() > 1 => Some(t.as_str()),
                _ => None,
            };
            let hit = FORBIDDEN.iter().find(|(in_table, key, _)| {
                path.leaf() == Some(*key)
                    && !path.table
                    && in_table.is_none_or(|t| table == Some(t))
            });
            if let (Some((_, _, message)), None) = (hit, &found) {
                found = Some(self.diagnostic(Some(path), span, (*message).into()));
            }
        });
        found
    }

    /// A toml (parse or type) error, located and in words.
    pub(crate) fn toml_error(&self, error: &toml::de::Error) -> Diagnostic {
        let span = error.span();
        let key = span.as_ref().and_then(|s| match &self.doc {
            Some(doc) => path_at(doc.as_table(), s.start, &mut Vec::new()),
            None => guess_path(self.text, s.start),
        });
        let message = explain(error.message(), key.as_ref().is_some_and(|k| k.table));
        self.diagnostic(key.as_ref(), span, message)
    }

    /// A validation problem, located at its key (or the nearest table that is there).
    pub(crate) fn problem(&self, problem: Problem) -> Diagnostic {
        let span = self
            .doc
            .as_ref()
            .and_then(|doc| span_of(doc.as_table(), &problem.key));
        self.diagnostic(Some(&problem.key), span, problem.message)
    }

    fn diagnostic(
        &self,
        key: Option<&KeyPath>,
        span: Option<Range<usize>>,
        message: String,
    ) -> Diagnostic {
        let at = span.map(|s| line_col(self.text, s.start));
        Diagnostic {
            file: self.file.to_path_buf(),
            line: at.map(|(l, _)| l),
            column: at.map(|(_, c)| c),
            key: key.map(ToString::to_string),
            message,
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, byte: usize) -> (usize, usize) {
    let mut byte = byte.min(text.len());
    while !text.is_char_boundary(byte) {
        byte -= 1;
    }
    let before = &text[..byte];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn contains(span: Option<Range<usize>>, pos: usize) -> bool {
    span.is_some_and(|s| s.start <= pos && (pos < s.end || s.is_empty()))
}

/// Calls `f` with every key holding a value (and every table) and its key's span.
fn visit(
    table: &dyn TableLike,
    segs: &mut Vec<Seg>,
    f: &mut dyn FnMut(&KeyPath, Option<Range<usize>>),
) {
    for (name, item) in table.iter() {
        let key_span = table.key(name).and_then(|k| k.span());
        segs.push(Seg::Key(name.into()));
        match item {
            Item::ArrayOfTables(array) => {
                for (i, t) in array.iter().enumerate() {
                    segs.push(Seg::Index(i));
                    visit(t, segs, f);
                    segs.pop();
                }
            }
            _ => {
                let path = KeyPath {
                    segs: segs.clone(),
                    table: item.is_table(),
                };
                f(&path, key_span);
                if let Some(t) = item.as_table_like() {
                    visit(t, segs, f);
                }
            }
        }
        segs.pop();
    }
}

/// The key (or table) whose key, header or value holds byte `pos`.
fn path_at(table: &dyn TableLike, pos: usize, segs: &mut Vec<Seg>) -> Option<KeyPath> {
    for (name, item) in table.iter() {
        let key_span = table.key(name).and_then(|k| k.span());
        segs.push(Seg::Key(name.into()));
        let here = |segs: &Vec<Seg>, table| {
            Some(KeyPath {
                segs: segs.clone(),
                table,
            })
        };
        let found = match item {
            // A table's span covers its body too: its keys first, then the table.
            Item::Table(t) => path_at(t, pos, segs).or_else(|| {
                (contains(key_span, pos) || contains(t.span(), pos))
                    .then(|| here(segs, true))
                    .flatten()
            }),
            Item::ArrayOfTables(array) => array.iter().enumerate().find_map(|(i, t)| {
                segs.push(Seg::Index(i));
                let found = path_at(t, pos, segs)
                    .or_else(|| contains(t.span(), pos).then(|| here(segs, true)).flatten());
                segs.pop();
                found
            }),
            Item::Value(Value::InlineTable(t)) if !contains(key_span.clone(), pos) => {
                path_at(t, pos, segs).or_else(|| {
                    contains(item.span(), pos)
                        .then(|| here(segs, false))
                        .flatten()
                })
            }
            Item::Value(v) if contains(key_span, pos) || contains(v.span(), pos) => {
                here(segs, false)
            }
            _ => None,
        };
        segs.pop();
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The span of a key, or of the deepest part of its path that the document has.
fn span_of(root: &dyn TableLike, key: &KeyPath) -> Option<Range<usize>> {
    let mut table: &dyn TableLike = root;
    let mut best = None;
    let mut segs = key.segs.iter().peekable();
    while let Some(seg) = segs.next() {
        let Seg::Key(name) = seg else { return best };
        let Some((k, item)) = table.get_key_value(name) else {
            return best;
        };
        best = k.span().or(best);
        match (item, segs.peek()) {
            (Item::ArrayOfTables(array), Some(Seg::Index(i))) => {
                segs.next();
                let Some(t) = array.get(*i) else { return best };
                best = t.span().or(best);
                table = t;
            }
            (item, Some(_)) => match item.as_table_like() {
                Some(t) => table = t,
                None => return best,
            },
            (_, None) => {}
        }
    }
    best
}

/// The key at `pos` in text that is not valid TOML: the last `[table]` header above it and
/// the key on its line.
fn guess_path(text: &str, pos: usize) -> Option<KeyPath> {
    let mut segs = Vec::new();
    let mut arrays: Vec<(String, usize)> = Vec::new();
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let end = line_start + line.len();
        let trimmed = line.trim();
        if line_start <= pos {
            if let Some(name) = trimmed
                .strip_prefix("[[")
                .and_then(|l| l.split("]]").next())
            {
                let name = name.trim().to_string();
                let n = match arrays.iter_mut().find(|(a, _)| *a == name) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        arrays.push((name.clone(), 0));
                        0
                    }
                };
                segs = vec![Seg::Key(name), Seg::Index(n)];
            } else if let Some(name) = trimmed.strip_prefix('[').and_then(|l| l.split(']').next()) {
                segs = name.split('.').map(|n| Seg::Key(n.trim().into())).collect();
            }
        }
        if line_start <= pos && pos < end {
            let key = trimmed.split_once('=').map(|(k, _)| k.trim());
            let bare = |k: &str| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            };
            let table = match key {
                Some(k) if bare(k) => {
                    segs.push(Seg::Key(k.into()));
                    false
                }
                _ => true,
            };
            return (!segs.is_empty()).then_some(KeyPath { segs, table });
        }
        line_start = end;
    }
    None
}

/// serde's words for a type error, turned into "expected ..., found ...".
fn explain(message: &str, table: bool) -> String {
    let message = message.trim().replace('\n', "; ");
    let friendly = |expected: &str| match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number (0 or more)".to_string(),
        "path" => "a path (a string)".to_string(),
        other => other.to_string(),
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let what = if table {
            "unknown table"
        } else {
            "unknown key"
        };
        return match rest.split_once("`, ") {
            Some((_, "there are no fields")) => format!("{what} (this table has no keys)"),
            Some((_, expected)) => format!("{what}, {expected}"),
            None => what.to_string(),
        };
    }
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((found, expected)) = message
            .strip_prefix(prefix)
            .and_then(|r| r.rsplit_once(", expected "))
        {
            return format!("expected {}, found {found}", friendly(expected));
        }
    }
    if let Some((found, expected)) = message
        .strip_prefix("unknown variant ")
        .and_then(|r| r.split_once(", expected "))
    {
        return format!("expected {expected}, found {found}");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::line_col;
    use crate::config::Config;

    /// The error `Config::load` gives for `text` in a file named octoup.toml.
    fn error(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("octoup.toml");
        std::fs::write(&path, text).unwrap();
        let message = Config::load(&path).unwrap_err().to_string();
        let shown = path.display().to_string();
        assert!(message.starts_with(&shown), "{message}");
        assert!(!message.contains("byte"), "{message}");
        message.replacen(&shown, "octoup.toml", 1)
    }

    #[test]
    fn an_unknown_key_names_its_table_line_and_column() {
        assert_eq!(
            error("[server]\nurl = \"https://o\"\n\n[drain]\nwait_second = 5\n"),
            "octoup.toml:5:1: [drain] wait_second: unknown key, expected `wait_seconds` or `cancel_tasks`"
        );
        let table = error("[server]\nurl = \"https://o\"\n[serverr]\n");
        assert!(
            table.starts_with(
                "octoup.toml:3:2: [serverr]: unknown table, expected one of `server`,"
            ),
            "{table}"
        );
        assert_eq!(
            error("  top = 1\n"),
            "octoup.toml:1:3: top: unknown key, expected one of `server`, `versions`, `installer`, `database`, `backup`, `drain`, `maintenance`, `state`, `rollback`, `network`, `timeouts`, `cluster`, `ssh`, `doctor`, `window`, `rehearsal`, `nodes`, `notify`"
        );
    }

    #[test]
    fn a_wrong_type_says_what_was_expected_and_found() {
        assert_eq!(
            error("[timeouts]\nstart = \"ten\"\n"),
            "octoup.toml:2:9: [timeouts] start: expected a whole number (0 or more), found string \"ten\""
        );
        assert_eq!(
            error("[drain]\nwait_seconds = -1\n"),
            "octoup.toml:2:16: [drain] wait_seconds: expected a whole number (0 or more), found integer `-1`"
        );
        assert_eq!(
            error("[cluster]\non_failure = \"retry\"\n"),
            "octoup.toml:2:14: [cluster] on_failure: expected `pause` or `rollback`, found `retry`"
        );
        assert_eq!(
            error("server = { url = 3 }\n"),
            "octoup.toml:1:18: [server] url: expected a string, found integer `3`"
        );
    }

    #[test]
    fn the_node_is_named_by_its_position() {
        let text = "[[nodes]]\nname = \"a\"\nurl = \"https://a\"\n[[nodes]]\nname = \"b\"\nprimary = \"yes\"\n";
        assert_eq!(
            error(text),
            "octoup.toml:6:11: [[nodes]] #2 primary: expected a boolean, found string \"yes\""
        );
        // A validation error names the key; a missing key is shown at its table.
        let missing_url =
            "[[nodes]]\nname = \"a\"\nurl = \"https://a\"\n\n[[nodes]]\nname = \"b\"\n";
        assert_eq!(
            error(missing_url),
            "octoup.toml:5:1: [[nodes]] #2 url: node \"b\" has no url (its own address, for ping and /api)"
        );
        let two_primaries = "[[nodes]]\nname = \"a\"\nurl = \"https://a\"\nprimary = true\n[[nodes]]\nname = \"b\"\nurl = \"https://b\"\nprimary = true\n";
        assert!(
            error(two_primaries)
                .starts_with("octoup.toml:8:1: [[nodes]] #2 primary: 2 nodes are marked primary"),
            "{}",
            error(two_primaries)
        );
    }

    #[test]
    fn an_inline_api_key_is_refused_without_showing_it() {
        let message = "API keys never go in the config; use api_key_file or OCTOPUS_API_KEY";
        assert_eq!(
            error("[server]\nurl = \"https://o\"\napi_key = \"API-SECRET1234\"\n"),
            format!("octoup.toml:3:1: [server] api_key: {message}")
        );
        // Even when another key is wrong too, and wherever it is.
        let both = error("[drain]\nwait_second = 1\n[server]\napi_key = \"API-SECRET1234\"\n");
        assert_eq!(
            both,
            format!("octoup.toml:4:1: [server] api_key: {message}")
        );
        let nodes =
            error("[[nodes]]\nname = \"a\"\nurl = \"https://a\"\napi_key = \"API-SECRET1234\"\n");
        assert_eq!(
            nodes,
            format!("octoup.toml:4:1: [[nodes]] #1 api_key: {message}")
        );
        let password = error("[database]\npassword = \"hunter2\"\n");
        assert_eq!(
            password,
            "octoup.toml:2:1: [database] password: SQL passwords never go in the config; use [database] password_file"
        );
        for e in [both, nodes, password] {
            assert!(!e.contains("SECRET1234") && !e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn zero_durations_are_refused_naming_the_key() {
        for key in [
            "command",
            "stop",
            "start",
            "backup",
            "install",
            "db_upgrade",
            "http",
        ] {
            let e = error(&format!("[timeouts]\n{key} = 0\n"));
            assert!(
                e.starts_with(&format!(
                    "octoup.toml:2:1: [timeouts] {key}: expected a number of seconds above 0, found 0"
                )),
                "{e}"
            );
        }
        assert!(
            error("[timeouts]\nstart = 0\n")
                .ends_with("(every command it bounds would be killed at once; the default is 900)"),
        );
        assert!(error("[ssh]\nconnect_timeout_seconds = 0\n").starts_with(
            "octoup.toml:2:1: [ssh] connect_timeout_seconds: expected a number of seconds above 0"
        ));
        assert!(
            error("[installer]\ndownload_give_up_minutes = 0\n").starts_with(
                "octoup.toml:2:1: [installer] download_give_up_minutes: expected a number of minutes above 0"
            )
        );
        // A zero drain wait is meaningful (never wait) and stays allowed.
        Config::parse("[drain]\nwait_seconds = 0\n").unwrap();
    }

    #[test]
    fn a_syntax_error_is_placed_too() {
        assert_eq!(
            error("[server]\nurl = \n"),
            "octoup.toml:2:7: [server] url: invalid string; expected `\"`, `'`"
        );
        let e = error("[server]\nurl = \"https://o\"\n[server]\n");
        assert!(e.starts_with("octoup.toml:3:1: [server]: "), "{e}");
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let text = "# é\nkey = \"ü\" x\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, text.find("key").unwrap()), (2, 1));
        assert_eq!(line_col(text, text.find(" x").unwrap()), (2, 10));
        assert_eq!(line_col(text, text.len() + 5), (3, 1));
    }
}
