//! What vouches for an installer: SHA-256 digests from the sources the operator trusts
//! (a pin in the config, the download's `x-amz-meta-sha256` header, a sidecar file) and an
//! optional command run on the file (an Authenticode check on Windows).
//!
//! Every source present must agree with the others and with the file; a disagreement
//! names both sides. A file nothing vouches for is refused unless explicitly allowed.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::process::runner::{CommandRunner, CommandSpec, RunError, expand};

/// Response header carrying the MSI's SHA-256 on the vendor's download host (S3 metadata).
pub(crate) const SHA256_HEADER: &str = "x-amz-meta-sha256";

/// Buffer for hashing files: large enough for full-speed reads, small enough not to matter.
const HASH_BUF: usize = 1024 * 1024;

/// What verified an installer, as recorded in receipts and JSON output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerifiedBy {
    /// `installer.sha256` in the config.
    PinnedSha256,
    /// The `x-amz-meta-sha256` response header.
    HeaderSha256,
    /// The sidecar named by `installer.sidecar`.
    Sidecar,
    /// The `installer.verify` command exited 0.
    VerifyCommand,
}

/// Where an expected digest came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashSource {
    Pinned,
    Header,
    Sidecar { location: String },
}

impl HashSource {
    pub(crate) fn verified_by(&self) -> VerifiedBy {
        match self {
            HashSource::Pinned => VerifiedBy::PinnedSha256,
            HashSource::Header => VerifiedBy::HeaderSha256,
            HashSource::Sidecar { .. } => VerifiedBy::Sidecar,
        }
    }
}

impl fmt::Display for HashSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashSource::Pinned => f.write_str("installer.sha256 (pinned in the config)"),
            HashSource::Header => write!(f, "the {SHA256_HEADER} response header"),
            HashSource::Sidecar { location } => write!(f, "the sidecar {location}"),
        }
    }
}

/// A digest some source says the installer has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExpectedHash {
    pub source: HashSource,
    /// Lowercase hex.
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "the installer {file} does not match the SHA-256 from {origin}: expected {expected}, got {actual}. The file was deleted; run again to download it anew (a corrupted transfer), or check {origin} if it happens again"
    )]
    Mismatch {
        file: String,
        origin: HashSource,
        expected: String,
        actual: String,
    },
    #[error(
        "the hash sources disagree about {what}: {first} says {first_sha256}, {second} says {second_sha256}. Fix or remove the wrong one"
    )]
    Disagree {
        what: String,
        first: HashSource,
        first_sha256: String,
        second: HashSource,
        second_sha256: String,
    },
    #[error(
        "nothing vouches for the installer at {url}: the server sent no {SHA256_HEADER} header and none of installer.sha256, installer.sidecar or installer.verify is set. Set one of them, or installer.allow_unverified = true to accept an unverified installer"
    )]
    Unverified { url: String },
    #[error("{origin} is not a SHA-256: {value:?} (expected 64 hex digits)")]
    BadDigest { origin: HashSource, value: String },
    #[error("cannot read the sidecar {location}: {reason}. Check installer.sidecar")]
    Sidecar { location: String, reason: String },
    #[error(
        "the verify command {program} rejected {file} ({code}){output}. The file was deleted; check installer.verify and the file's origin"
    )]
    CommandRejected {
        program: String,
        file: String,
        code: String,
        output: String,
    },
    #[error("{0}")]
    CommandFailed(#[source] RunError),
    #[error("cannot read {file} to hash it: {source}")]
    Read {
        file: String,
        #[source]
        source: io::Error,
    },
}

/// A 64-digit hex digest, lowercased; `None` for anything else.
pub(crate) fn parse_sha256(text: &str) -> Option<String> {
    let t = text.trim();
    (t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit())).then(|| t.to_ascii_lowercase())
}

/// The digest in a sidecar: the line naming `file_name` in a `sha256sum`-style list, else
/// the first token of a sidecar that holds a single digest. A list of several digests none
/// of which names the file vouches for nothing (`None`).
pub(crate) fn parse_sidecar(text: &str, file_name: &str) -> Option<String> {
    let entries: Vec<(String, Option<&str>)> = text
        .lines()
        .filter_map(|line| {
            let mut tokens = line.split_whitespace();
            let digest = parse_sha256(tokens.next()?)?;
            // `sha256sum` marks binary mode with a leading '*'.
            Some((digest, tokens.next().map(|n| n.trim_start_matches('*'))))
        })
        .collect();
    let named = entries
        .iter()
        .find(|(_, name)| name.is_some_and(|n| n.eq_ignore_ascii_case(file_name)));
    match (named, entries.as_slice()) {
        (Some((digest, _)), _) => Some(digest.clone()),
        (None, [(digest, _)]) => Some(digest.clone()),
        _ => None,
    }
}

/// Every source must say the same digest; `what` names the file in the message.
pub(crate) fn check_agreement(what: &str, expected: &[ExpectedHash]) -> Result<(), VerifyError> {
    let Some(first) = expected.first() else {
        return Ok(());
    };
    match expected.iter().find(|e| e.sha256 != first.sha256) {
        None => Ok(()),
        Some(other) => Err(VerifyError::Disagree {
            what: what.to_string(),
            first: first.source.clone(),
            first_sha256: first.sha256.clone(),
            second: other.source.clone(),
            second_sha256: other.sha256.clone(),
        }),
    }
}

/// Checks the file's digest against each source in order; returns what vouched for it.
pub(crate) fn check_digest(
    file: &Path,
    actual: &str,
    expected: &[ExpectedHash],
) -> Result<Vec<VerifiedBy>, VerifyError> {
    let mut by = Vec::new();
    for e in expected {
        if !e.sha256.eq_ignore_ascii_case(actual) {
            return Err(VerifyError::Mismatch {
                file: file.display().to_string(),
                origin: e.source.clone(),
                expected: e.sha256.clone(),
                actual: actual.to_string(),
            });
        }
        if !by.contains(&e.source.verified_by()) {
            by.push(e.source.verified_by());
        }
    }
    Ok(by)
}

/// SHA-256 (lowercase hex) and size of a file, read in fixed-size chunks.
pub(crate) fn hash_file(path: &Path) -> Result<(String, u64), VerifyError> {
    let read_err = |source| VerifyError::Read {
        file: path.display().to_string(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let mut hasher = Sha256::new();
    let size = hash_reader(&mut file, &mut hasher).map_err(read_err)?;
    Ok((hex::encode(hasher.finalize()), size))
}

/// Feeds everything `reader` yields into `hasher`; returns the byte count.
pub(crate) fn hash_reader(reader: &mut impl Read, hasher: &mut Sha256) -> io::Result<u64> {
    let mut buf = vec![0u8; HASH_BUF];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Runs the operator's `installer.verify` argv with `{installer}` replaced by `file`;
/// exit 0 means the file is trusted. An empty argv is no check (`Ok(false)`).
pub(crate) async fn run_verify_command(
    runner: &dyn CommandRunner,
    argv: &[String],
    file: &Path,
    timeout: Duration,
) -> Result<bool, VerifyError> {
    if argv.is_empty() {
        return Ok(false);
    }
    let file_text = file.display().to_string();
    let spec = CommandSpec::new(
        "verify the installer (installer.verify)",
        expand(argv, &[("installer", &file_text)]),
        timeout,
    );
    let program = spec.program().to_string();
    let out = runner.run(spec).await.map_err(VerifyError::CommandFailed)?;
    if out.success() {
        return Ok(true);
    }
    let tail = out.tail(5).replace('\n', " / ");
    Err(VerifyError::CommandRejected {
        program,
        file: file_text,
        code: out.code_text(),
        output: if tail.is_empty() {
            String::new()
        } else {
            format!(": {tail}")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::runner::CommandOutput;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn exp(source: HashSource, sha: &str) -> ExpectedHash {
        ExpectedHash {
            source,
            sha256: sha.into(),
        }
    }

    #[test]
    fn digests_are_parsed_strictly() {
        assert_eq!(parse_sha256(&A.to_uppercase()).as_deref(), Some(A));
        assert_eq!(parse_sha256(&format!(" {A}\n")).as_deref(), Some(A));
        assert_eq!(parse_sha256(&A[1..]), None);
        assert_eq!(parse_sha256(&A.replace('a', "g")), None);
    }

    #[test]
    fn sidecars_take_the_named_line_or_the_first_token() {
        assert_eq!(
            parse_sidecar(&format!("{A}\n"), "x.msi").as_deref(),
            Some(A)
        );
        assert_eq!(
            parse_sidecar(&format!("{A}  x.msi\n"), "y.msi").as_deref(),
            Some(A)
        );
        let list = format!("{A}  Octopus.1.0.0-x64.msi\n{B} *Octopus.2.0.0-x64.msi\n");
        assert_eq!(
            parse_sidecar(&list, "Octopus.2.0.0-x64.msi").as_deref(),
            Some(B)
        );
        assert_eq!(parse_sidecar(&list, "Octopus.3.0.0-x64.msi"), None);
        assert_eq!(parse_sidecar("not a digest", "x.msi"), None);
        assert_eq!(parse_sidecar("", "x.msi"), None);
    }

    #[test]
    fn disagreeing_sources_name_both() {
        let err = check_agreement(
            "Octopus 1.0.0",
            &[
                exp(HashSource::Pinned, A),
                exp(HashSource::Header, A),
                exp(
                    HashSource::Sidecar {
                        location: "sums.txt".into(),
                    },
                    B,
                ),
            ],
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("installer.sha256") && msg.contains("sums.txt"),
            "{msg}"
        );
        assert!(msg.contains(A) && msg.contains(B), "{msg}");
        check_agreement(
            "x",
            &[exp(HashSource::Pinned, A), exp(HashSource::Header, A)],
        )
        .unwrap();
        check_agreement("x", &[]).unwrap();
    }

    #[test]
    fn a_mismatch_names_the_source_expected_and_actual() {
        let f = Path::new("f.msi");
        let by = check_digest(
            f,
            A,
            &[exp(HashSource::Pinned, A), exp(HashSource::Header, A)],
        )
        .unwrap();
        assert_eq!(by, vec![VerifiedBy::PinnedSha256, VerifiedBy::HeaderSha256]);
        let err = check_digest(f, B, &[exp(HashSource::Header, A)]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(SHA256_HEADER), "{msg}");
        assert!(msg.contains(&format!("expected {A}, got {B}")), "{msg}");
    }

    #[test]
    fn hash_file_matches_a_known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let (sha, size) = hash_file(&p).unwrap();
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(size, 3);
    }

    struct Fixed(Option<i32>, &'static str);
    #[async_trait::async_trait]
    impl CommandRunner for Fixed {
        async fn run(&self, spec: CommandSpec) -> Result<CommandOutput, RunError> {
            assert_eq!(spec.argv[1], "/tmp/x.msi");
            Ok(CommandOutput {
                code: self.0,
                stderr: self.1.into(),
                ..CommandOutput::default()
            })
        }
    }

    #[tokio::test]
    async fn verify_command_substitutes_the_file_and_reports_rejections() {
        let argv = vec!["check-sig".to_string(), "{installer}".to_string()];
        let file = Path::new("/tmp/x.msi");
        let t = Duration::from_secs(5);
        assert!(
            !run_verify_command(&Fixed(Some(0), ""), &[], file, t)
                .await
                .unwrap()
        );
        assert!(
            run_verify_command(&Fixed(Some(0), ""), &argv, file, t)
                .await
                .unwrap()
        );
        let err = run_verify_command(&Fixed(Some(2), "NotSigned\n"), &argv, file, t)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("check-sig") && msg.contains("exit code 2") && msg.contains("NotSigned"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn a_missing_verify_program_is_explained() {
        let err = run_verify_command(
            &crate::process::runner::LocalRunner::default(),
            &["/nonexistent/octoup-verify".to_string()],
            Path::new("x"),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, VerifyError::CommandFailed(_)), "{err}");
        assert!(err.to_string().contains("octoup-verify"), "{err}");
    }
}
