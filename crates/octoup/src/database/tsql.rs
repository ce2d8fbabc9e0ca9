//! The T-SQL of every strategy, with safe quoting: identifiers as `[name]` (`]` doubled),
//! strings as `N'text'` (`'` doubled). A database name, path or URL holding `]`, `'`, `;` or
//! `--` stays inside its literal. Each statement follows the documented syntax
//! (shared/reference/sql-hosting-and-backups.md §2–§3; the exact texts octoup sends are
//! listed in docs/database.md).

use std::fmt::Write as _;

/// `[name]` with every `]` doubled: a safe SQL Server identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("[{}]", name.replace(']', "]]"))
}

/// `N'text'` with every `'` doubled: a safe Unicode string literal.
pub(crate) fn quote_string(text: &str) -> String {
    format!("N'{}'", text.replace('\'', "''"))
}

/// Where a backup's media set is written: files the SQL Server can write, or blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Media {
    Disk,
    Url,
}

impl Media {
    fn keyword(self) -> &'static str {
        match self {
            Media::Disk => "DISK",
            Media::Url => "URL",
        }
    }
}

/// `DISK = N'a', DISK = N'b'`: every member of the media set (a verify or restore that
/// names fewer is refused).
fn devices(media: Media, files: &[String]) -> String {
    files
        .iter()
        .map(|f| format!("{} = {}", media.keyword(), quote_string(f)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a backup is tuned (reference §2.1 and §4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tuning {
    /// `COMPRESSION` (Enterprise, Standard, Developer; not Express or Web).
    pub compression: bool,
    /// `MAXTRANSFERSIZE` in bytes.
    pub max_transfer_size: Option<u32>,
    /// `BUFFERCOUNT`.
    pub buffer_count: Option<u32>,
}

/// How often SQL Server reports progress (`STATS = 5`: every 5 %).
pub(crate) const STATS_PERCENT: u32 = 5;

/// A full backup that leaves the DBA's differential chain alone (`COPY_ONLY`, which Managed
/// Instance also demands) and checks page checksums while writing (`CHECKSUM`). octoup names
/// every file uniquely, so there is never an older backup set to append to.
pub(crate) fn backup_database(database: &str, media: Media, files: &[String], t: Tuning) -> String {
    let mut with = vec!["COPY_ONLY".to_string(), "CHECKSUM".to_string()];
    if t.compression {
        with.push("COMPRESSION".into());
    }
    // Microsoft's guidance for striped backups to block blobs: 4 MB transfers, 64 KB blocks.
    let transfer = match media {
        Media::Url => t.max_transfer_size.or(Some(4_194_304)),
        Media::Disk => t.max_transfer_size,
    };
    if let Some(size) = transfer {
        with.push(format!("MAXTRANSFERSIZE = {size}"));
    }
    if media == Media::Url {
        with.push("BLOCKSIZE = 65536".into());
    }
    if let Some(n) = t.buffer_count {
        with.push(format!("BUFFERCOUNT = {n}"));
    }
    with.push(format!("STATS = {STATS_PERCENT}"));
    format!(
        "BACKUP DATABASE {} TO {} WITH {};",
        quote_ident(database),
        devices(media, files),
        with.join(", ")
    )
}

/// Reads the whole media set back and checks it (SQL Server verifies the page checksums a
/// `CHECKSUM` backup carries by default).
pub(crate) fn verify_backup(media: Media, files: &[String]) -> String {
    format!("RESTORE VERIFYONLY FROM {};", devices(media, files))
}

/// Replaces the database with the backup (the rollback's database half on self-managed
/// SQL Server).
pub(crate) fn restore_database(database: &str, media: Media, files: &[String]) -> String {
    format!(
        "RESTORE DATABASE {} FROM {} WITH REPLACE, STATS = {STATS_PERCENT};",
        quote_ident(database),
        devices(media, files)
    )
}

/// Managed Instance restores only `FROM URL`, with no `WITH` options at all, and never over
/// an existing database (so the rollback renames the upgraded one first).
pub(crate) fn restore_database_plain(database: &str, media: Media, files: &[String]) -> String {
    format!(
        "RESTORE DATABASE {} FROM {};",
        quote_ident(database),
        devices(media, files)
    )
}

/// The files a backup holds (`LogicalName`, `PhysicalName`, `Type`, …): what a restore
/// under another name must move.
pub(crate) fn file_list(media: Media, files: &[String]) -> String {
    format!("RESTORE FILELISTONLY FROM {};", devices(media, files))
}

/// Restores a backup as a new database beside the original: every file moved (the
/// original's files are in use), the page checksums checked again.
pub(crate) fn restore_as(
    database: &str,
    media: Media,
    files: &[String],
    moves: &[(String, String)],
) -> String {
    let mut with: Vec<String> = moves
        .iter()
        .map(|(logical, to)| format!("MOVE {} TO {}", quote_string(logical), quote_string(to)))
        .collect();
    with.push("CHECKSUM".into());
    with.push(format!("STATS = {STATS_PERCENT}"));
    format!(
        "RESTORE DATABASE {} FROM {} WITH {};",
        quote_ident(database),
        devices(media, files),
        with.join(", ")
    )
}

/// `ALTER DATABASE [a] MODIFY NAME = [b];` (Azure SQL Database, Managed Instance).
pub(crate) fn rename_database(from: &str, to: &str) -> String {
    format!(
        "ALTER DATABASE {} MODIFY NAME = {};",
        quote_ident(from),
        quote_ident(to)
    )
}

pub(crate) fn drop_database(name: &str) -> String {
    format!("DROP DATABASE {};", quote_ident(name))
}

/// A query whose rows start with the doctor's mark column (see [`super::sqlcmd_output`]).
fn marked(select: &str) -> String {
    format!("SET NOCOUNT ON; SELECT N'octoup', {select}")
}

/// The data files a snapshot must name, every one of them.
pub(crate) fn data_files(database: &str) -> String {
    marked(&format!(
        "name, physical_name FROM sys.master_files WHERE database_id = DB_ID({}) AND type_desc = N'ROWS';",
        quote_string(database)
    ))
}

/// The snapshots of a database (a revert needs it to be the only one).
pub(crate) fn snapshots_of(database: &str) -> String {
    marked(&format!(
        "name FROM sys.databases WHERE source_database_id = DB_ID({});",
        quote_string(database)
    ))
}

/// `CREATE DATABASE [snap] ON (NAME = [f], FILENAME = N'…'), … AS SNAPSHOT OF [db];`
/// `files` are (logical name, sparse file path), one per data file.
pub(crate) fn create_snapshot(
    database: &str,
    snapshot: &str,
    files: &[(String, String)],
) -> String {
    let mut on = String::new();
    for (i, (name, path)) in files.iter().enumerate() {
        if i > 0 {
            on.push_str(", ");
        }
        let _ = write!(
            on,
            "(NAME = {}, FILENAME = {})",
            quote_ident(name),
            quote_string(path)
        );
    }
    format!(
        "CREATE DATABASE {} ON {on} AS SNAPSHOT OF {};",
        quote_ident(snapshot),
        quote_ident(database)
    )
}

/// Reverts the database to the snapshot (it must be the only one).
pub(crate) fn revert_to_snapshot(database: &str, snapshot: &str) -> String {
    format!(
        "RESTORE DATABASE {} FROM DATABASE_SNAPSHOT = {};",
        quote_ident(database),
        quote_string(snapshot)
    )
}

/// Azure SQL Database: a transactionally consistent copy, made asynchronously.
pub(crate) fn create_copy(database: &str, copy: &str) -> String {
    format!(
        "CREATE DATABASE {} AS COPY OF {};",
        quote_ident(copy),
        quote_ident(database)
    )
}

/// `COPYING`, `ONLINE` or `SUSPECT` (a failed copy).
pub(crate) fn database_state(name: &str) -> String {
    marked(&format!(
        "state_desc FROM sys.databases WHERE name = {};",
        quote_string(name)
    ))
}

/// A copy's progress (no row once it is done).
pub(crate) fn copy_progress(copy: &str) -> String {
    marked(&format!(
        "percent_complete, error_code, error_desc FROM sys.dm_database_copies WHERE database_id = DB_ID({});",
        quote_string(copy)
    ))
}

/// The scripting variable sqlcmd fills from the environment with the SAS token, so the
/// token is never on a command line.
pub(crate) const SAS_VARIABLE: &str = "OCTOUP_SAS_TOKEN";

pub(crate) fn credential_exists(url: &str) -> String {
    marked(&format!(
        "name FROM sys.credentials WHERE name = {};",
        quote_string(url)
    ))
}

/// `CREATE` or `ALTER CREDENTIAL [container url] WITH IDENTITY = N'SHARED ACCESS
/// SIGNATURE', SECRET = N'$(OCTOUP_SAS_TOKEN)';` (access keys are not accepted there).
pub(crate) fn set_credential(url: &str, exists: bool) -> String {
    format!(
        "{} CREDENTIAL {} WITH IDENTITY = N'SHARED ACCESS SIGNATURE', SECRET = N'$({SAS_VARIABLE})';",
        if exists { "ALTER" } else { "CREATE" },
        quote_ident(url)
    )
}

/// `exec msdb.dbo.rds_backup_database …` to `object` (`arn:aws:s3:::bucket/key`, with `*`
/// when there are several files).
pub(crate) fn rds_backup(database: &str, object: &str, files: u32) -> String {
    format!(
        "SET NOCOUNT ON; exec msdb.dbo.rds_backup_database @source_db_name = {}, @s3_arn_to_backup_to = {}, @overwrite_s3_backup_file = 0, @type = N'FULL', @number_of_files = {files};",
        quote_string(database),
        quote_string(object)
    )
}

pub(crate) fn rds_task_status(task_id: u64) -> String {
    format!("SET NOCOUNT ON; exec msdb.dbo.rds_task_status @task_id = {task_id};")
}

/// The tasks of a database, when the backup's own output did not show its task id.
pub(crate) fn rds_tasks_of(database: &str) -> String {
    format!(
        "SET NOCOUNT ON; exec msdb.dbo.rds_task_status @db_name = {};",
        quote_string(database)
    )
}

/// RDS cannot restore over an existing name: the rollback renames the upgraded one first.
pub(crate) fn rds_rename(from: &str, to: &str) -> String {
    format!(
        "EXEC rdsadmin.dbo.rds_modify_db_name {}, {};",
        quote_string(from),
        quote_string(to)
    )
}

/// Drops a database on RDS: the procedure works on Single-AZ and Multi-AZ instances alike,
/// where a mirrored or Always On database refuses a plain `DROP DATABASE` (RDS
/// `Appendix.SQLServer.CommonDBATasks.DropMirrorDB.md`).
pub(crate) fn rds_drop_database(name: &str) -> String {
    format!("EXECUTE msdb.dbo.rds_drop_database {};", quote_string(name))
}

/// Restores an S3 backup under `database`, which must not exist (RDS restores to a new name
/// only).
pub(crate) fn rds_restore(database: &str, object: &str) -> String {
    format!(
        "SET NOCOUNT ON; exec msdb.dbo.rds_restore_database @restore_db_name = {}, @s3_arn_to_restore_from = {};",
        quote_string(database),
        quote_string(object)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(f: &str) -> Vec<String> {
        vec![f.to_string()]
    }

    #[test]
    fn statements_read_as_expected() {
        assert_eq!(
            backup_database(
                "OctopusDeploy",
                Media::Disk,
                &one(r"\\nas\b\x.bak"),
                Tuning::default()
            ),
            r"BACKUP DATABASE [OctopusDeploy] TO DISK = N'\\nas\b\x.bak' WITH COPY_ONLY, CHECKSUM, STATS = 5;"
        );
        let tuned = Tuning {
            compression: true,
            max_transfer_size: Some(4_194_304),
            buffer_count: Some(64),
        };
        assert_eq!(
            backup_database("d", Media::Disk, &["a".into(), "b".into()], tuned),
            "BACKUP DATABASE [d] TO DISK = N'a', DISK = N'b' WITH COPY_ONLY, CHECKSUM, COMPRESSION, MAXTRANSFERSIZE = 4194304, BUFFERCOUNT = 64, STATS = 5;"
        );
        assert_eq!(
            backup_database(
                "d",
                Media::Url,
                &one("https://a.blob.core.windows.net/c/d.bak"),
                Tuning::default()
            ),
            "BACKUP DATABASE [d] TO URL = N'https://a.blob.core.windows.net/c/d.bak' WITH COPY_ONLY, CHECKSUM, MAXTRANSFERSIZE = 4194304, BLOCKSIZE = 65536, STATS = 5;"
        );
        assert_eq!(
            verify_backup(Media::Disk, &["C:\\b\\O'Brien.bak".into(), "x".into()]),
            "RESTORE VERIFYONLY FROM DISK = N'C:\\b\\O''Brien.bak', DISK = N'x';"
        );
        assert_eq!(
            restore_database("a]b", Media::Disk, &one("f")),
            "RESTORE DATABASE [a]]b] FROM DISK = N'f' WITH REPLACE, STATS = 5;"
        );
        assert_eq!(
            restore_database_plain("d", Media::Url, &one("u")),
            "RESTORE DATABASE [d] FROM URL = N'u';"
        );
        assert_eq!(
            create_snapshot(
                "Octo",
                "Octo_octoup_s",
                &[
                    ("Octo".into(), "D:\\Data\\Octo_s.ss".into()),
                    ("Octo_2".into(), "E:\\Octo_2_s.ss".into())
                ]
            ),
            "CREATE DATABASE [Octo_octoup_s] ON (NAME = [Octo], FILENAME = N'D:\\Data\\Octo_s.ss'), (NAME = [Octo_2], FILENAME = N'E:\\Octo_2_s.ss') AS SNAPSHOT OF [Octo];"
        );
        assert_eq!(
            revert_to_snapshot("Octo", "Octo_octoup_s"),
            "RESTORE DATABASE [Octo] FROM DATABASE_SNAPSHOT = N'Octo_octoup_s';"
        );
        assert_eq!(
            create_copy("Octo", "Octo_octoup_s"),
            "CREATE DATABASE [Octo_octoup_s] AS COPY OF [Octo];"
        );
        assert_eq!(
            rename_database("Octo", "Octo_failed"),
            "ALTER DATABASE [Octo] MODIFY NAME = [Octo_failed];"
        );
        assert_eq!(
            set_credential("https://a.blob.core.windows.net/c", false),
            "CREATE CREDENTIAL [https://a.blob.core.windows.net/c] WITH IDENTITY = N'SHARED ACCESS SIGNATURE', SECRET = N'$(OCTOUP_SAS_TOKEN)';"
        );
        assert_eq!(
            rds_backup("Octo", "arn:aws:s3:::b/p/Octo*.bak", 4),
            "SET NOCOUNT ON; exec msdb.dbo.rds_backup_database @source_db_name = N'Octo', @s3_arn_to_backup_to = N'arn:aws:s3:::b/p/Octo*.bak', @overwrite_s3_backup_file = 0, @type = N'FULL', @number_of_files = 4;"
        );
        assert_eq!(
            rds_restore("OctopusRehearsal_1", "arn:aws:s3:::b/p/Octo*.bak"),
            "SET NOCOUNT ON; exec msdb.dbo.rds_restore_database @restore_db_name = N'OctopusRehearsal_1', @s3_arn_to_restore_from = N'arn:aws:s3:::b/p/Octo*.bak';"
        );
        assert_eq!(
            rds_drop_database("O'Rehearsal"),
            "EXECUTE msdb.dbo.rds_drop_database N'O''Rehearsal';"
        );
        // Managed Instance: a restore under a new name takes no WITH options at all (no MOVE:
        // the instance places the files itself; no STATS).
        assert_eq!(
            restore_database_plain(
                "OctopusRehearsal_1",
                Media::Url,
                &[
                    "https://a.blob.core.windows.net/c/d-1of2.bak".into(),
                    "https://a.blob.core.windows.net/c/d-2of2.bak".into()
                ]
            ),
            "RESTORE DATABASE [OctopusRehearsal_1] FROM URL = N'https://a.blob.core.windows.net/c/d-1of2.bak', URL = N'https://a.blob.core.windows.net/c/d-2of2.bak';"
        );
        assert_eq!(
            rds_rename("Octo", "Octo_failed"),
            "EXEC rdsadmin.dbo.rds_modify_db_name N'Octo', N'Octo_failed';"
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
                Just("$(X)".to_string()),
                "[a-zA-Z0-9 \\\\.:_-]{0,4}",
            ],
            0..12,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn nothing_breaks_out_of_the_quotes(db in nasty(), file in nasty(), other in nasty()) {
            let sql = backup_database(&db, Media::Disk, std::slice::from_ref(&file), Tuning::default());
            let rest = sql.strip_prefix("BACKUP DATABASE ").unwrap();
            let (name, rest) = parse_ident(rest).expect("identifier parses");
            prop_assert_eq!(&name, &db);
            let rest = rest.strip_prefix(" TO DISK = ").unwrap();
            let (path, rest) = parse_string(rest).expect("literal parses");
            prop_assert_eq!(&path, &file);
            prop_assert_eq!(rest, " WITH COPY_ONLY, CHECKSUM, STATS = 5;");

            let sql = restore_database(&db, Media::Disk, std::slice::from_ref(&file));
            let rest = sql.strip_prefix("RESTORE DATABASE ").unwrap();
            let (name, rest) = parse_ident(rest).unwrap();
            prop_assert_eq!(&name, &db);
            let (path, rest) = parse_string(rest.strip_prefix(" FROM DISK = ").unwrap()).unwrap();
            prop_assert_eq!(&path, &file);
            prop_assert_eq!(rest, " WITH REPLACE, STATS = 5;");

            let sql = rename_database(&db, &other);
            let (a, rest) = parse_ident(sql.strip_prefix("ALTER DATABASE ").unwrap()).unwrap();
            let (b, rest) = parse_ident(rest.strip_prefix(" MODIFY NAME = ").unwrap()).unwrap();
            prop_assert_eq!((&a, &b, rest), (&db, &other, ";"));

            let sql = create_snapshot(&db, &other, &[(file.clone(), file.clone())]);
            let (s, rest) = parse_ident(sql.strip_prefix("CREATE DATABASE ").unwrap()).unwrap();
            let (n, rest) = parse_ident(rest.strip_prefix(" ON (NAME = ").unwrap()).unwrap();
            let (p, rest) = parse_string(rest.strip_prefix(", FILENAME = ").unwrap()).unwrap();
            let (d, rest) = parse_ident(rest.strip_prefix(") AS SNAPSHOT OF ").unwrap()).unwrap();
            prop_assert_eq!((&s, &n, &p, &d, rest), (&other, &file, &file, &db, ";"));

            let sql = rds_drop_database(&db);
            let (a, rest) = parse_string(sql.strip_prefix("EXECUTE msdb.dbo.rds_drop_database ").unwrap()).unwrap();
            prop_assert_eq!((&a, rest), (&db, ";"));

            let sql = rds_restore(&db, &file);
            let rest = sql.strip_prefix("SET NOCOUNT ON; exec msdb.dbo.rds_restore_database @restore_db_name = ").unwrap();
            let (a, rest) = parse_string(rest).unwrap();
            let (b, rest) = parse_string(rest.strip_prefix(", @s3_arn_to_restore_from = ").unwrap()).unwrap();
            prop_assert_eq!((&a, &b, rest), (&db, &file, ";"));

            let sql = rds_rename(&db, &other);
            let (a, rest) = parse_string(sql.strip_prefix("EXEC rdsadmin.dbo.rds_modify_db_name ").unwrap()).unwrap();
            let (b, rest) = parse_string(rest.strip_prefix(", ").unwrap()).unwrap();
            prop_assert_eq!((&a, &b, rest), (&db, &other, ";"));
        }
    }
}
