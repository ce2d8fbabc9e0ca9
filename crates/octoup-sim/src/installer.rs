//! The simulated MSI format.
//!
//! A file is a one-line text header carrying the version and the total size, followed by a
//! deterministic pseudo-random body seeded by the version. Each 8-byte word of the file is
//! `splitmix64(seed + word_index)`, so any byte range can be generated on its own, without
//! storing the file: the download server streams GiB-sized installers in constant memory and
//! the msiexec stand-in checks a downloaded file byte for byte.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};

/// First bytes of every simulated installer.
pub(crate) const MAGIC: &str = "OCTOUP-SIM-MSI/1";

/// Size of the chunks the iterators hand out (64 KiB keeps memory flat while streaming).
pub(crate) const CHUNK: usize = 64 * 1024;

/// Why a file is not a valid simulated installer. Messages say what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum InstallerError {
    #[error("cannot read installer {path}: {source}; check the path and permissions")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an Octopus installer package (bad header: {detail}); download it again")]
    NotAnInstaller { path: String, detail: String },
    #[error(
        "installer {path} is truncated: {actual} of {expected} bytes; the download was incomplete, download it again"
    )]
    Truncated {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "installer {path} is too long: {actual} bytes, the package says {expected}; download it again"
    )]
    TooLong {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "installer {path} is corrupt: content differs at byte offset {offset}; download it again"
    )]
    Corrupt { path: String, offset: u64 },
}

/// One simulated installer: enough to generate any of its bytes.
#[derive(Debug, Clone)]
pub(crate) struct Installer {
    size: u64,
    header: Vec<u8>,
    seed: u64,
}

impl Installer {
    pub(crate) fn new(version: &str, size: u64) -> Self {
        Installer {
            size,
            header: header(version, size),
            seed: seed(version),
        }
    }

    /// Fills `buf` with the file's bytes starting at absolute `offset`. Bytes past the end
    /// of the file are not defined; callers keep `offset + buf.len() <= size`.
    pub(crate) fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut pos = offset;
        let mut out = &mut buf[..];
        // Header part.
        let header_len = self.header.len() as u64;
        if pos < header_len {
            let n = ((header_len - pos) as usize).min(out.len());
            out[..n].copy_from_slice(&self.header[pos as usize..pos as usize + n]);
            pos += n as u64;
            out = &mut out[n..];
        }
        if out.is_empty() {
            return;
        }
        // Unaligned start: finish the current word.
        let misalign = (pos % 8) as usize;
        if misalign != 0 {
            let word = self.word(pos / 8).to_le_bytes();
            let n = (8 - misalign).min(out.len());
            out[..n].copy_from_slice(&word[misalign..misalign + n]);
            pos += n as u64;
            out = &mut out[n..];
        }
        // Whole words, then a partial tail.
        let mut index = pos / 8;
        let mut words = out.chunks_exact_mut(8);
        for chunk in &mut words {
            chunk.copy_from_slice(&self.word(index).to_le_bytes());
            index += 1;
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            let n = tail.len();
            tail.copy_from_slice(&self.word(index).to_le_bytes()[..n]);
        }
    }

    /// The bytes `start..end` (end exclusive, clamped to the size) in chunks of [`CHUNK`].
    pub(crate) fn range(&self, start: u64, end: u64) -> RangeChunks {
        let end = end.min(self.size);
        RangeChunks {
            installer: self.clone(),
            pos: start.min(end),
            end,
        }
    }

    fn word(&self, index: u64) -> u64 {
        splitmix64(self.seed.wrapping_add(index))
    }
}

/// Iterator over generated chunks of one byte range.
#[derive(Debug, Clone)]
pub struct RangeChunks {
    installer: Installer,
    pos: u64,
    end: u64,
}

impl Iterator for RangeChunks {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if self.pos >= self.end {
            return None;
        }
        let n = ((self.end - self.pos) as usize).min(CHUNK);
        let mut buf = vec![0u8; n];
        self.installer.fill(self.pos, &mut buf);
        self.pos += n as u64;
        Some(buf)
    }
}

/// The text header: `OCTOUP-SIM-MSI/1 version=V size=N\n`.
pub(crate) fn header(version: &str, size: u64) -> Vec<u8> {
    format!("{MAGIC} version={version} size={size}\n").into_bytes()
}

/// Bytes `start..end` of the installer for `version` of `size` bytes, in 64 KiB chunks.
pub fn generate_range(version: &str, size: u64, start: u64, end: u64) -> RangeChunks {
    Installer::new(version, size).range(start, end)
}

/// Hex SHA-256 of the whole installer. Cached per (version, size): a GiB takes seconds.
pub(crate) fn sha256(version: &str, size: u64) -> String {
    static CACHE: OnceLock<Mutex<HashMap<(String, u64), String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (version.to_string(), size);
    if let Some(hash) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return hash.clone();
    }
    let mut hasher = Sha256::new();
    for chunk in generate_range(version, size, 0, size) {
        hasher.update(&chunk);
    }
    let hash = hex::encode(hasher.finalize());
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, hash.clone());
    hash
}

/// Checks that `path` is a complete, uncorrupted simulated installer; returns its version.
pub fn validate(path: &Path) -> Result<String, InstallerError> {
    let shown = path.display().to_string();
    let io = |source| InstallerError::Io {
        path: shown.clone(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let actual = file.metadata().map_err(io)?.len();

    // The header is one short line; 512 bytes is plenty for any version string.
    let mut head = Vec::with_capacity(512);
    (&mut file).take(512).read_to_end(&mut head).map_err(io)?;
    let (version, expected) =
        parse_header(&head).map_err(|detail| InstallerError::NotAnInstaller {
            path: shown.clone(),
            detail,
        })?;
    if actual < expected {
        return Err(InstallerError::Truncated {
            path: shown,
            expected,
            actual,
        });
    }
    if actual > expected {
        return Err(InstallerError::TooLong {
            path: shown,
            expected,
            actual,
        });
    }

    // Compare the whole file, streaming, against the generated content.
    let mut file = File::open(path).map_err(io)?;
    let installer = Installer::new(&version, expected);
    let mut got = vec![0u8; CHUNK];
    let mut offset = 0u64;
    for want in installer.range(0, expected) {
        let got = &mut got[..want.len()];
        file.read_exact(got).map_err(|source| {
            if source.kind() == std::io::ErrorKind::UnexpectedEof {
                InstallerError::Truncated {
                    path: shown.clone(),
                    expected,
                    actual: offset,
                }
            } else {
                io(source)
            }
        })?;
        if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
            return Err(InstallerError::Corrupt {
                path: shown,
                offset: offset + i as u64,
            });
        }
        offset += want.len() as u64;
    }
    Ok(version)
}

/// Parses `OCTOUP-SIM-MSI/1 version=V size=N\n` from the start of a file.
fn parse_header(head: &[u8]) -> Result<(String, u64), String> {
    let line_end = head
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| "no header line".to_string())?;
    let line =
        std::str::from_utf8(&head[..line_end]).map_err(|_| "header is not text".to_string())?;
    let mut parts = line.split(' ');
    if parts.next() != Some(MAGIC) {
        return Err(format!("does not start with {MAGIC}"));
    }
    let version = parts
        .next()
        .and_then(|p| p.strip_prefix("version="))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| "no version".to_string())?;
    let size = parts
        .next()
        .and_then(|p| p.strip_prefix("size="))
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| "no size".to_string())?;
    if parts.next().is_some() {
        return Err("unexpected fields".to_string());
    }
    Ok((version.to_string(), size))
}

/// FNV-1a of the version: a stable seed that differs per version.
fn seed(version: &str) -> u64 {
    version.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(version: &str, size: u64) -> Vec<u8> {
        generate_range(version, size, 0, size).flatten().collect()
    }

    #[test]
    fn starts_with_header_and_has_exact_size() {
        let bytes = whole("2024.2.9409", 200_003);
        assert_eq!(bytes.len(), 200_003);
        assert!(bytes.starts_with(b"OCTOUP-SIM-MSI/1 version=2024.2.9409 size=200003\n"));
    }

    #[test]
    fn any_range_equals_the_slice_of_the_whole_file() {
        let size = 3 * CHUNK as u64 + 77;
        let all = whole("2024.1.10", size);
        for (start, end) in [
            (0, 1),
            (3, 11),
            (45, 46),
            (7, 8 * 1000 + 5),
            (CHUNK as u64 - 3, size),
            (size - 1, size),
        ] {
            let part: Vec<u8> = generate_range("2024.1.10", size, start, end)
                .flatten()
                .collect();
            assert_eq!(
                part,
                &all[start as usize..end as usize],
                "range {start}..{end}"
            );
        }
        // Chunks are at most CHUNK and an end past the size is clamped.
        let chunks: Vec<_> = generate_range("2024.1.10", size, 0, size + 100).collect();
        assert_eq!(chunks.len(), 4);
        assert!(chunks.iter().all(|c| c.len() <= CHUNK));
    }

    #[test]
    fn bodies_differ_between_versions() {
        let a = whole("2024.1.10", 4096);
        let b = whole("2024.1.11", 4096);
        assert_ne!(a[100..], b[100..]);
        assert_ne!(sha256("2024.1.10", 4096), sha256("2024.1.11", 4096));
    }

    #[test]
    fn sha256_matches_the_content() {
        let bytes = whole("2024.3.100", 70_000);
        assert_eq!(
            sha256("2024.3.100", 70_000),
            hex::encode(Sha256::digest(&bytes))
        );
        // Cached value is the same.
        assert_eq!(
            sha256("2024.3.100", 70_000),
            hex::encode(Sha256::digest(&bytes))
        );
    }

    #[test]
    fn validate_accepts_a_good_file_and_names_each_defect() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Octopus.2024.2.1-x64.msi");
        let good = whole("2024.2.1", 150_000);
        std::fs::write(&path, &good).unwrap();
        assert_eq!(validate(&path).unwrap(), "2024.2.1");

        std::fs::write(&path, &good[..100_000]).unwrap();
        let err = validate(&path).unwrap_err();
        assert!(
            matches!(
                err,
                InstallerError::Truncated {
                    actual: 100_000,
                    expected: 150_000,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("truncated"));

        let mut long = good.clone();
        long.push(0);
        std::fs::write(&path, &long).unwrap();
        assert!(matches!(
            validate(&path).unwrap_err(),
            InstallerError::TooLong { .. }
        ));

        let mut bad = good.clone();
        bad[123_456] ^= 0xff;
        std::fs::write(&path, &bad).unwrap();
        let err = validate(&path).unwrap_err();
        assert!(
            matches!(
                err,
                InstallerError::Corrupt {
                    offset: 123_456,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("corrupt"));

        std::fs::write(&path, b"MZ\x90\x00 not an msi at all\n").unwrap();
        assert!(matches!(
            validate(&path).unwrap_err(),
            InstallerError::NotAnInstaller { .. }
        ));

        std::fs::write(&path, b"").unwrap();
        assert!(matches!(
            validate(&path).unwrap_err(),
            InstallerError::NotAnInstaller { .. }
        ));

        let missing = dir.path().join("missing.msi");
        assert!(matches!(
            validate(&missing).unwrap_err(),
            InstallerError::Io { .. }
        ));
    }

    #[test]
    fn a_header_claiming_another_version_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.msi");
        let mut bytes = whole("2024.2.1", 10_000);
        // Same length header, different version: body no longer matches the seed.
        let fake = header("2024.2.2", 10_000);
        bytes[..fake.len()].copy_from_slice(&fake);
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            validate(&path).unwrap_err(),
            InstallerError::Corrupt { .. }
        ));
    }
}
