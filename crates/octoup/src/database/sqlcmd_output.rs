//! Reading what `sqlcmd` prints for octoup's queries (the doctor's, and the strategies').
//!
//! Every query runs with `-h -1 -W -s "|"` (no header row and no dashes row, trailing spaces
//! removed, `|` between columns: the sqlcmd utility's documented options) after
//! `SET NOCOUNT ON` (no "(N rows affected)" line), and every row the doctor selects starts
//! with the literal column [`MARK`]. Only lines whose first column is the mark are rows, so
//! whatever else sqlcmd or the server prints (a header row from a `-h` in the configured
//! argv, "Changed database context to …", a warning, blank lines, "(1 rows affected)") is
//! skipped. A server error (`Msg N, Level L (≥ 11), …` and its text) or a sqlcmd error is an
//! error carrying that message.

/// The first column of every row the doctor selects.
pub(crate) const MARK: &str = "octoup";

/// The sqlcmd options every doctor query runs with.
pub(crate) const OPTIONS: &[&str] = &["-h", "-1", "-W", "-s", "|"];

/// One row: the columns after the mark; `None` for SQL `NULL`.
pub(crate) type Row = Vec<Option<String>>;

/// The rows of one query's output, or the error the server or sqlcmd reported.
pub(crate) fn rows(stdout: &str, stderr: &str) -> Result<Vec<Row>, String> {
    if let Some(error) = error_in(stdout).or_else(|| error_in(stderr)) {
        return Err(error);
    }
    Ok(stdout
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('|').map(str::trim);
            (fields.next() == Some(MARK)).then(|| {
                fields
                    .map(|f| (f != "NULL").then(|| f.to_string()))
                    .collect()
            })
        })
        .collect())
}

/// The rows of a statement whose result set octoup cannot mark (`RESTORE FILELISTONLY`):
/// every line with at least `columns` `|`-separated fields, or the error reported.
pub(crate) fn plain_rows(stdout: &str, stderr: &str, columns: usize) -> Result<Vec<Row>, String> {
    if let Some(error) = error_in(stdout).or_else(|| error_in(stderr)) {
        return Err(error);
    }
    Ok(stdout
        .lines()
        .map(|line| line.split('|').map(str::trim).collect::<Vec<_>>())
        .filter(|fields| fields.len() >= columns)
        .map(|fields| {
            fields
                .into_iter()
                .map(|f| (f != "NULL").then(|| f.to_string()))
                .collect()
        })
        .collect())
}

/// The first error in sqlcmd's output: a server message of severity 11 or more (its header
/// and the text on the next line), or a line of sqlcmd's own (`Sqlcmd: Error: …`).
fn error_in(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix("Msg ") {
            let number = header.split(',').next().unwrap_or("").trim();
            let level = header
                .split(',')
                .find_map(|p| p.trim().strip_prefix("Level "))
                .and_then(|l| l.trim().parse::<u32>().ok());
            if level.is_some_and(|l| l <= 10) {
                continue;
            }
            let message = lines.get(i + 1).map(|m| m.trim()).unwrap_or("");
            return Some(format!("SQL Server error {number}: {message}"));
        }
        if line.starts_with("Sqlcmd: ") || line.starts_with("HResult ") {
            return Some(line.to_string());
        }
    }
    None
}

/// A number column (`"150"`, `"8.0"`, sql_variant ints); `None` for NULL or text.
pub(crate) fn number(value: &Option<String>) -> Option<f64> {
    value.as_deref()?.trim().parse::<f64>().ok()
}

/// A bit/int flag column: `1` true, `0` false, `Y`/`N` too; `None` for NULL or anything else.
pub(crate) fn flag(value: &Option<String>) -> Option<bool> {
    match value.as_deref()?.trim() {
        "1" | "Y" | "y" => Some(true),
        "0" | "N" | "n" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn rows_are_the_marked_lines_whatever_else_is_printed() {
        let cases: &[(&str, &str, Vec<Row>)] = &[
            // The options as octoup sends them, NOCOUNT on.
            (
                "octoup|15.0.4322.2|Developer Edition (64-bit)|3|NULL\n",
                "",
                vec![vec![
                    s("15.0.4322.2"),
                    s("Developer Edition (64-bit)"),
                    s("3"),
                    None,
                ]],
            ),
            // A configured `-h` wins over ours: a header row and a dashes row, padded
            // columns, the rows-affected line and a context change.
            (
                "Changed database context to 'OctopusDeploy'.\n(No column name)|name      |collation_name\n----------------|----------|--------------\noctoup          |Event     |Latin1_General_CS_AS\noctoup          |Project   |NULL\n\n(2 rows affected)\n",
                "",
                vec![
                    vec![s("Event"), s("Latin1_General_CS_AS")],
                    vec![s("Project"), None],
                ],
            ),
            // An empty result and an informational message (level 0) are no error.
            (
                "Msg 5701, Level 0, State 2, Server sql01, Line 1\nChanged database context to 'OctopusDeploy'.\n",
                "",
                vec![],
            ),
            ("", "", vec![]),
            // Windows line ends; a warning line.
            (
                "Warning: Null value is eliminated by an aggregate.\r\noctoup|1\r\n",
                "",
                vec![vec![s("1")]],
            ),
        ];
        for (stdout, stderr, want) in cases {
            assert_eq!(&rows(stdout, stderr).unwrap(), want, "{stdout}");
        }
    }

    #[test]
    fn server_and_sqlcmd_errors_are_errors_with_their_message() {
        let e = rows(
            "",
            "Msg 208, Level 16, State 1, Server sql01, Line 1\nInvalid object name 'sys.dm_server_services'.\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            "SQL Server error 208: Invalid object name 'sys.dm_server_services'."
        );
        // Rows before an error do not hide it.
        let e = rows(
            "octoup|1\nMsg 300, Level 14, State 1, Line 1\nVIEW SERVER STATE permission was denied on object 'server', database 'master'.\n",
            "",
        )
        .unwrap_err();
        assert!(
            e.starts_with("SQL Server error 300: VIEW SERVER STATE"),
            "{e}"
        );
        let e = rows(
            "Sqlcmd: Error: Microsoft ODBC Driver 17 for SQL Server : Login timeout expired.\n",
            "",
        )
        .unwrap_err();
        assert!(e.contains("Login timeout expired"), "{e}");
        // A message header with nothing after it still names the error.
        let e = rows("Msg 40510, Level 16, State 1", "").unwrap_err();
        assert_eq!(e, "SQL Server error 40510: ");
    }

    #[test]
    fn values_read_defensively() {
        assert_eq!(number(&s("150")), Some(150.0));
        assert_eq!(number(&s(" 8.5 ")), Some(8.5));
        assert_eq!(number(&s("abc")), None);
        assert_eq!(number(&None), None);
        assert_eq!(flag(&s("1")), Some(true));
        assert_eq!(flag(&s("N")), Some(false));
        assert_eq!(flag(&s("2")), None);
        assert_eq!(flag(&None), None);
    }
}
