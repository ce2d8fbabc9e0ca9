//! T-SQL for the database backup, its verification and its restore, with safe quoting:
//! identifiers as `[name]` (`]` doubled), strings as `N'text'` (`'` doubled). A database
//! name or a path holding `]`, `'`, `;` or `--` stays inside its literal.

/// `[name]` with every `]` doubled: a safe SQL Server identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("[{}]", name.replace(']', "]]"))
}

/// `N'text'` with every `'` doubled: a safe Unicode string literal.
pub(crate) fn quote_string(text: &str) -> String {
    format!("N'{}'", text.replace('\'', "''"))
}

/// Options of a backup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BackupOptions {
    /// `COMPRESSION` (not every edition supports it).
    pub compression: bool,
}

/// A full backup that leaves the DBA's differential chain alone (`COPY_ONLY`) and checks
/// page checksums while writing (`CHECKSUM`). octoup names every backup file uniquely, so
/// there is never an older backup set in the file to append to.
pub(crate) fn backup_database(database: &str, file: &str, options: BackupOptions) -> String {
    let mut with = vec!["COPY_ONLY", "CHECKSUM"];
    if options.compression {
        with.push("COMPRESSION");
    }
    format!(
        "BACKUP DATABASE {} TO DISK = {} WITH {};",
        quote_ident(database),
        quote_string(file),
        with.join(", ")
    )
}

/// Reads the whole backup back and checks it (SQL Server verifies the page checksums a
/// `CHECKSUM` backup carries by default).
pub(crate) fn verify_backup(file: &str) -> String {
    format!("RESTORE VERIFYONLY FROM DISK = {};", quote_string(file))
}

/// Replaces the database with the backup (the full rollback's first half).
pub(crate) fn restore_database(database: &str, file: &str) -> String {
    format!(
        "RESTORE DATABASE {} FROM DISK = {} WITH REPLACE;",
        quote_ident(database),
        quote_string(file)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn statements_read_as_expected() {
        assert_eq!(
            backup_database("OctopusDeploy", r"\\nas\b\x.bak", BackupOptions::default()),
            r"BACKUP DATABASE [OctopusDeploy] TO DISK = N'\\nas\b\x.bak' WITH COPY_ONLY, CHECKSUM;"
        );
        assert!(
            backup_database("d", "f", BackupOptions { compression: true })
                .ends_with("WITH COPY_ONLY, CHECKSUM, COMPRESSION;")
        );
        assert_eq!(
            verify_backup("C:\\b\\O'Brien.bak"),
            "RESTORE VERIFYONLY FROM DISK = N'C:\\b\\O''Brien.bak';"
        );
        assert_eq!(
            restore_database("a]b", "f"),
            "RESTORE DATABASE [a]]b] FROM DISK = N'f' WITH REPLACE;"
        );
    }

    /// Parses a `[...]` identifier at the start of `s` the way SQL Server does; returns the
    /// name and the rest.
    fn parse_ident(s: &str) -> Option<(String, &str)> {
        parse_quoted(s.strip_prefix('[')?, ']')
    }

    /// Parses an `N'...'` literal at the start of `s`.
    fn parse_string(s: &str) -> Option<(String, &str)> {
        parse_quoted(s.strip_prefix("N'")?, '\'')
    }

    /// The text up to `close` (a doubled `close` stands for one) and the rest after it.
    fn parse_quoted(s: &str, close: char) -> Option<(String, &str)> {
        let mut chars = s.char_indices().peekable();
        let mut text = String::new();
        while let Some((i, c)) = chars.next() {
            if c != close {
                text.push(c);
            } else if chars.next_if(|&(_, n)| n == close).is_some() {
                text.push(close);
            } else {
                return Some((text, &s[i + close.len_utf8()..]));
            }
        }
        None
    }

    fn nasty() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("]".to_string()),
                Just("'".to_string()),
                Just(";".to_string()),
                Just("--".to_string()),
                Just("[".to_string()),
                Just("/*".to_string()),
                Just("N'".to_string()),
                "[a-zA-Z0-9 \\\\.:_-]{0,4}",
            ],
            0..12,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn nothing_breaks_out_of_the_quotes(db in nasty(), file in nasty()) {
            let sql = backup_database(&db, &file, BackupOptions::default());
            let rest = sql.strip_prefix("BACKUP DATABASE ").unwrap();
            let (name, rest) = parse_ident(rest).expect("identifier parses");
            prop_assert_eq!(&name, &db);
            let rest = rest.strip_prefix(" TO DISK = ").unwrap();
            let (path, rest) = parse_string(rest).expect("literal parses");
            prop_assert_eq!(&path, &file);
            prop_assert_eq!(rest, " WITH COPY_ONLY, CHECKSUM;");

            let sql = verify_backup(&file);
            let rest = sql.strip_prefix("RESTORE VERIFYONLY FROM DISK = ").unwrap();
            let (path, rest) = parse_string(rest).expect("literal parses");
            prop_assert_eq!(&path, &file);
            prop_assert_eq!(rest, ";");

            let sql = restore_database(&db, &file);
            let rest = sql.strip_prefix("RESTORE DATABASE ").unwrap();
            let (name, rest) = parse_ident(rest).unwrap();
            prop_assert_eq!(&name, &db);
            let (path, rest) = parse_string(rest.strip_prefix(" FROM DISK = ").unwrap()).unwrap();
            prop_assert_eq!(&path, &file);
            prop_assert_eq!(rest, " WITH REPLACE;");
        }
    }
}
