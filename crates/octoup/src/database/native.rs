//! `BACKUP DATABASE … TO DISK | URL` with its tuning and progress, and the restore from it.

use super::point::sibling;
use super::sql::Call;
use super::tsql::{self, Media};
use super::{DatabaseError, DatabaseSide, Hosting, Percent, RollbackPoint};
use crate::config::Secret;
use crate::process::runner::{CommandRunner, LineHook};

/// `n percent processed.`: SQL Server's STATS message.
pub(crate) fn percent(line: &str) -> Option<u32> {
    let n = line.trim().strip_suffix(" percent processed.")?;
    n.trim().parse().ok().filter(|p| *p <= 100)
}

/// `BACKUP DATABASE successfully processed 5002 pages in 1.234 seconds (31.6 MB/sec).`:
/// bytes written and seconds taken.
pub(crate) fn processed(output: &str) -> Option<(u64, f64)> {
    output.lines().rev().find_map(|line| {
        let rest = line.split(" successfully processed ").nth(1)?;
        let mut words = rest.split_whitespace();
        let pages: u64 = words.next()?.parse().ok()?;
        let seconds: f64 = rest
            .split(" pages in ")
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some((pages * 8192, seconds))
    })
}

/// A line hook that reports STATS percentages.
pub(super) fn progress_hook(percent: Option<Percent>) -> Option<LineHook> {
    percent.map(|f| {
        LineHook::new(move |line| {
            if let Some(p) = self::percent(line) {
                f(p)
            }
        })
    })
}

impl DatabaseSide {
    /// Every file of the media set: one, or `-1of3` … `-3of3`.
    fn media_files(&self, media: Media, stem: &str) -> Vec<String> {
        let n = self.stripes;
        let name = |i: u32| {
            if n == 1 {
                format!("{stem}.bak")
            } else {
                format!("{stem}-{i}of{n}.bak")
            }
        };
        (1..=n)
            .map(|i| match media {
                Media::Disk => self.backup_dir.join(name(i)).to_string_lossy().into_owned(),
                Media::Url => format!(
                    "{}/{}",
                    self.url.as_deref().unwrap_or("").trim_end_matches('/'),
                    name(i)
                ),
            })
            .collect()
    }

    pub(super) async fn media_backup(
        &self,
        runner: &dyn CommandRunner,
        media: Media,
        stem: &str,
        percent: Option<Percent>,
    ) -> Result<RollbackPoint, DatabaseError> {
        let files = self.media_files(media, stem);
        if media == Media::Disk {
            // Best effort: when the directory is local, SQL Server needs it to exist; when it
            // is a share seen only by the SQL Server, creating it here may fail and that is
            // fine.
            let _ = std::fs::create_dir_all(&self.backup_dir);
        }
        let text = tsql::backup_database(self.name(), media, &files, self.tuning);
        let out = self
            .sql
            .call(
                runner,
                "database backup",
                text,
                Call {
                    on_line: progress_hook(percent),
                    ..Call::default()
                },
            )
            .await?;
        let measured = processed(&out.stdout);
        Ok(RollbackPoint::Backup {
            media,
            files,
            bytes: measured.map(|m| m.0),
            seconds: measured.map(|m| m.1),
        })
    }

    pub(super) async fn restore_media(
        &self,
        runner: &dyn CommandRunner,
        media: Media,
        files: &[String],
        stamp: &str,
    ) -> Result<String, DatabaseError> {
        if self.hosting == Some(Hosting::AzureSqlManagedInstance) {
            // No WITH options, and never over an existing database: the upgraded one is
            // renamed away (and kept, for a person to look at).
            let failed = sibling(self.name(), "failed_", stamp);
            if self.exists(runner, self.name()).await? {
                self.quick(
                    runner,
                    "rename the upgraded database",
                    tsql::rename_database(self.name(), &failed),
                )
                .await?;
            }
            self.sql
                .run(
                    runner,
                    "database restore",
                    tsql::restore_database_plain(self.name(), media, files),
                )
                .await?;
            return Ok(format!(
                "restored {} from {}; the upgraded database is kept as {failed}",
                self.name(),
                files.first().map(String::as_str).unwrap_or("")
            ));
        }
        self.sql
            .run(
                runner,
                "database restore",
                tsql::restore_database(self.name(), media, files),
            )
            .await?;
        Ok(format!(
            "restored {} from {}",
            self.name(),
            files.first().map(String::as_str).unwrap_or("")
        ))
    }

    /// The credential `BACKUP … TO URL` signs with: created (or updated) from the SAS token
    /// when one is configured, else it must exist.
    pub(super) async fn ensure_credential(
        &self,
        runner: &dyn CommandRunner,
    ) -> Result<(), DatabaseError> {
        let url = self.url.as_deref().unwrap_or("").trim_end_matches('/');
        let exists = !self
            .rows(
                runner,
                "look for the blob credential",
                tsql::credential_exists(url),
            )
            .await?
            .is_empty();
        let Some(token) = &self.sas_token else {
            if exists {
                return Ok(());
            }
            return Err(DatabaseError::failed(
                "blob credential",
                format!("the server has no credential named {url}"),
                "set [database] sas_token_file (octoup then creates it), or CREATE CREDENTIAL [<container url>] WITH IDENTITY = 'SHARED ACCESS SIGNATURE', SECRET = '<token>'",
            ));
        };
        let env: Vec<(String, Secret)> = vec![(tsql::SAS_VARIABLE.to_string(), token.clone())];
        self.sql
            .call(
                runner,
                "set the blob credential",
                tsql::set_credential(url, exists),
                Call {
                    env,
                    quick: Some(self.quick),
                    ..Call::default()
                },
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_lines_and_the_summary_are_read() {
        assert_eq!(percent("10 percent processed."), Some(10));
        assert_eq!(percent("  100 percent processed.\r"), Some(100));
        assert_eq!(percent("Processed 5000 pages"), None);
        assert_eq!(percent("140 percent processed."), None);
        let out = "5 percent processed.\nProcessed 5000 pages for database 'd', file 'd' on file 1.\nBACKUP DATABASE successfully processed 5002 pages in 1.250 seconds (31.262 MB/sec).\n";
        assert_eq!(processed(out), Some((5002 * 8192, 1.25)));
        assert_eq!(processed("nothing"), None);
    }
}
