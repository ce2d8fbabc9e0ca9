//! Backup files as the simulated SQL Server writes them: on disk at the path given, a URL
//! backup under `DIR/blob/<account>/<container>/<name>`, an RDS backup under
//! `DIR/s3/<bucket>/<key>`. Each stripe is a header line with the SHA-256 of the JSON body
//! that follows (the database's content, and which member of how many it is).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::state::DatabaseSnapshot;

/// First line of a simulated backup file.
const BACKUP_MAGIC: &str = "OCTOUP-SIM-BAK/1";

/// The contents of a simulated backup file (after the header line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct BackupBody {
    pub database: String,
    pub taken_at: jiff::Timestamp,
    pub copy_only: bool,
    pub snapshot: DatabaseSnapshot,
    /// Media families in the set (0 in files written before stripes: one).
    #[serde(default)]
    pub families: u32,
    #[serde(default)]
    pub family: u32,
    #[serde(default)]
    pub set_id: String,
    /// Simulated seconds the backup took (a verify and a restore take about as long).
    #[serde(default)]
    pub seconds: f64,
    #[serde(default)]
    pub pages: u64,
}

/// Why a backup set could not be read.
#[derive(Debug)]
pub(super) enum ReadError {
    NotFound(String),
    Io(String, String),
    Damaged(String),
    /// (families in the set, members given)
    Members(u32, usize),
}

/// `https://acct.blob.core.windows.net/container/name` → `DIR/blob/acct/container/name`.
pub(super) fn url_path(dir: &Path, url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("https://")?;
    let (host, path) = rest.split_once('/')?;
    let account = host.split('.').next()?;
    let mut p = dir.join("blob").join(account);
    for part in path.split('/').filter(|p| !p.is_empty() && *p != "..") {
        p.push(part);
    }
    Some(p)
}

/// `arn:aws:s3:::bucket/key` → `DIR/s3/bucket/key`.
pub(super) fn s3_path(dir: &Path, arn: &str) -> Option<PathBuf> {
    let rest = arn.strip_prefix("arn:aws:s3:::")?;
    let mut p = dir.join("s3");
    for part in rest.split('/').filter(|p| !p.is_empty() && *p != "..") {
        p.push(part);
    }
    Some(p)
}

/// The S3 objects a `…*.bak` ARN names for `n` files (RDS numbers them `1-of-n`), or the
/// ARN itself.
pub(super) fn s3_members(arn: &str, n: u32) -> Vec<String> {
    if n <= 1 || !arn.contains('*') {
        return vec![arn.replace('*', "")];
    }
    (1..=n)
        .map(|k| arn.replace('*', &format!("{k}-of-{n}")))
        .collect()
}

/// Writes every member of a backup set.
pub(super) fn write_set(files: &[PathBuf], body: &BackupBody) -> Result<(), String> {
    let set_id = format!("{:x}", Sha256::digest(body.taken_at.to_string().as_bytes()));
    for (i, file) in files.iter().enumerate() {
        let member = BackupBody {
            families: files.len() as u32,
            family: i as u32 + 1,
            set_id: set_id[..16].to_string(),
            ..body.clone()
        };
        let json = serde_json::to_string_pretty(&member).unwrap_or_default();
        let sum = hex::encode(Sha256::digest(json.as_bytes()));
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(file, format!("{BACKUP_MAGIC} sha256={sum}\n{json}"))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn read_one(file: &Path, shown: &str) -> Result<BackupBody, ReadError> {
    let text = match std::fs::read(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ReadError::NotFound(shown.to_string()));
        }
        Err(e) => return Err(ReadError::Io(shown.to_string(), e.to_string())),
    };
    let damaged = || ReadError::Damaged(shown.to_string());
    let text = String::from_utf8(text).map_err(|_| damaged())?;
    let (header, json) = text.split_once('\n').ok_or_else(damaged)?;
    let sum = header
        .strip_prefix(BACKUP_MAGIC)
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .ok_or_else(damaged)?;
    if hex::encode(Sha256::digest(json.as_bytes())) != sum {
        return Err(damaged());
    }
    serde_json::from_str(json).map_err(|_| damaged())
}

/// Reads a backup set from its members (`(file, name shown in messages)`); every member
/// must be given, all of one set.
pub(super) fn read_set(members: &[(PathBuf, String)]) -> Result<BackupBody, ReadError> {
    let mut first: Option<BackupBody> = None;
    for (file, shown) in members {
        let body = read_one(file, shown)?;
        if let Some(f) = &first
            && (f.set_id != body.set_id || f.families != body.families)
        {
            return Err(ReadError::Damaged(shown.clone()));
        }
        first.get_or_insert(body);
    }
    let body = first.ok_or_else(|| ReadError::Damaged(String::new()))?;
    let families = body.families.max(1);
    if members.len() != families as usize {
        return Err(ReadError::Members(families, members.len()));
    }
    Ok(body)
}
