//! Installer delivery against a local HTTP server with injectable faults: resume after a
//! drop, a server ignoring Range, corruption, pins, missing sources, full or unusable disks.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use octoup::installer::cache::{
    InstallerCache, InstallerError, InstallerSettings, Receipt, Role, StagedInstaller,
};
use octoup::installer::download::{DownloadError, DownloadOptions, RetryPolicy};
use octoup::installer::verify::{VerifiedBy, VerifyError};
use octoup::octopus::http::{HttpClient, NetworkSettings};
use octoup::process::runner::{CommandOutput, CommandRunner, CommandSpec, LocalRunner, RunError};
use octoup::progress::Progress;
use octoup::version::Version;
use sha2::{Digest, Sha256};

const SIZE: usize = 3 * 1024 * 1024 + 17;

fn content() -> Vec<u8> {
    (0..SIZE).map(|i| (i * 31 % 251) as u8).collect()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[derive(Default)]
struct Faults {
    /// Close the connection after this many body bytes, for the next `drops` requests.
    drop_after: Option<usize>,
    drops: usize,
    ignore_range: bool,
    corrupt_at: Option<usize>,
    no_header: bool,
    /// Announce this Content-Length (a file bigger than any disk).
    claim_length: Option<u64>,
    /// Answer 302 to this location.
    redirect_to: Option<String>,
}

struct Server {
    body: Vec<u8>,
    faults: Mutex<Faults>,
    /// The Range header (or "-") of every request, in order.
    ranges: Mutex<Vec<String>>,
    requests: AtomicUsize,
}

async fn serve_installer(
    State(s): State<Arc<Server>>,
    UrlPath(file): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    if file != "Octopus.2024.2.7-x64.msi" {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("no such installer"))
            .unwrap();
    }
    let range = headers
        .get(header::RANGE)
        .map(|v| v.to_str().unwrap().to_string());
    s.ranges
        .lock()
        .unwrap()
        .push(range.clone().unwrap_or_else(|| "-".into()));
    let mut f = s.faults.lock().unwrap();
    if let Some(to) = &f.redirect_to {
        return Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, to)
            .body(Body::empty())
            .unwrap();
    }
    let mut data = s.body.clone();
    if let Some(at) = f.corrupt_at {
        data[at] ^= 0xff;
    }
    let total = data.len();
    let start = match range {
        Some(r) if !f.ignore_range => r
            .trim_start_matches("bytes=")
            .trim_end_matches('-')
            .parse::<usize>()
            .unwrap(),
        _ => 0,
    };
    if start >= total {
        // What S3 answers a range past the end: no object metadata, no sha256 header.
        return Response::builder()
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{total}"))
            .body(Body::from("InvalidRange"))
            .unwrap();
    }
    let length = f.claim_length.unwrap_or((total - start) as u64);
    let mut builder = Response::builder()
        .header(header::CONTENT_LENGTH, length)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, "\"v1\"");
    if !f.no_header {
        builder = builder.header("x-amz-meta-sha256", sha(&s.body).to_uppercase());
    }
    builder = if start > 0 {
        builder.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{total}", total - 1),
        )
    } else {
        builder.status(StatusCode::OK)
    };
    let slice = data[start..].to_vec();
    let drop_after = (f.drops > 0).then_some(f.drop_after).flatten();
    if drop_after.is_some() {
        f.drops -= 1;
    }
    if f.claim_length.is_some() {
        let stream =
            futures_util::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from(slice))]);
        return builder.body(Body::from_stream(stream)).unwrap();
    }
    let body = match drop_after {
        Some(n) => {
            let first = bytes::Bytes::from(slice[..n.min(slice.len())].to_vec());
            let stream = futures_util::stream::iter(vec![
                Ok(first),
                Err(std::io::Error::other("simulated drop")),
            ]);
            Body::from_stream(stream)
        }
        None => Body::from(slice),
    };
    builder.body(body).unwrap()
}

async fn start(faults: Faults) -> (Arc<Server>, String) {
    let server = Arc::new(Server {
        body: content(),
        faults: Mutex::new(faults),
        ranges: Mutex::new(Vec::new()),
        requests: AtomicUsize::new(0),
    });
    let app = axum::Router::new()
        .route("/octopus/{file}", axum::routing::get(serve_installer))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (
        server,
        format!("http://{addr}/octopus/Octopus.{{version}}-x64.msi"),
    )
}

fn settings(url: &str, cache: &Path) -> InstallerSettings {
    InstallerSettings {
        url_template: url.into(),
        sha256: None,
        sidecar: None,
        verify: Vec::new(),
        verify_timeout: Duration::from_secs(10),
        allow_unverified: false,
        cache_dir: cache.to_path_buf(),
        trust_receipt: false,
        partial_max_age: Duration::from_secs(3600),
        download: DownloadOptions {
            retry: RetryPolicy {
                attempts_without_progress: 3,
                max_retries: 10,
                min_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
                give_up_after: Duration::from_secs(30),
            },
            ..DownloadOptions::default()
        },
    }
}

fn cache_with(s: InstallerSettings) -> InstallerCache {
    cache_with_runner(s, Arc::new(LocalRunner::default()))
}

fn cache_with_runner(s: InstallerSettings, runner: Arc<dyn CommandRunner>) -> InstallerCache {
    let client = HttpClient::new(NetworkSettings::default()).unwrap();
    InstallerCache::new(s, client, runner)
}

fn v() -> Version {
    "2024.2.7".parse().unwrap()
}

/// The target's installer for `v()`, without progress.
async fn target(cache: &InstallerCache) -> Result<StagedInstaller, InstallerError> {
    cache
        .ensure_installer(&v(), Role::Target, &Recorder::default())
        .await
}

#[derive(Default)]
struct Recorder {
    messages: Mutex<Vec<String>>,
    advanced: AtomicUsize,
}

impl Progress for Recorder {
    fn start(&self, _: &str, _: Option<u64>, _: u64) {}
    fn advance(&self, bytes: u64) {
        self.advanced.fetch_add(bytes as usize, Ordering::SeqCst);
    }
    fn finish(&self, m: &str) {
        self.messages.lock().unwrap().push(m.to_string());
    }
    fn message(&self, m: &str) {
        self.messages.lock().unwrap().push(m.to_string());
    }
}

/// The error's message names every one of `needles`.
fn assert_mentions(err: &dyn std::fmt::Display, needles: &[&str]) {
    let msg = err.to_string();
    for needle in needles {
        assert!(msg.contains(needle), "{needle:?} missing in: {msg}");
    }
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// No complete installer or receipt anywhere in the cache.
fn assert_nothing_valid(cache: &Path) {
    let valid: Vec<String> = files(cache)
        .into_iter()
        .filter(|f| f.ends_with(".msi") || f.ends_with("receipt.json"))
        .collect();
    assert!(valid.is_empty(), "left in the cache: {valid:?}");
}

#[tokio::test]
async fn downloads_verifies_and_writes_a_receipt() {
    let (server, url) = start(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_with(settings(&url, dir.path()));
    let staged = target(&cache).await.unwrap();
    let expected = sha(&server.body);
    assert_eq!(staged.sha256, expected);
    assert_eq!(staged.size, SIZE as u64);
    assert_eq!(staged.verified_by, vec![VerifiedBy::HeaderSha256]);
    assert!(!staged.cached);
    assert_eq!(
        staged.path,
        dir.path()
            .join("2024.2.7")
            .join(&expected)
            .join("Octopus.2024.2.7-x64.msi")
    );
    assert_eq!(std::fs::read(&staged.path).unwrap(), server.body);
    let receipt: Receipt = serde_json::from_slice(
        &std::fs::read(staged.path.parent().unwrap().join("receipt.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(receipt.sha256, expected);
    assert_eq!(receipt.size, SIZE as u64);
    assert_eq!(receipt.version, "2024.2.7");
    assert!(receipt.url.ends_with("/octopus/Octopus.2024.2.7-x64.msi"));
    // The partial is gone; only its lock file remains.
    assert!(
        files(dir.path()).iter().all(|f| !f.ends_with(".part")),
        "{:?}",
        files(dir.path())
    );
}

#[tokio::test]
async fn a_drop_mid_stream_resumes_with_range_and_the_hash_covers_the_whole_file() {
    let (server, url) = start(Faults {
        drop_after: Some(1024 * 1024),
        drops: 2,
        ..Faults::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let progress = Recorder::default();
    let staged = cache_with(settings(&url, dir.path()))
        .ensure_installer(&v(), Role::Target, &progress)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&staged.path).unwrap(), server.body);
    assert_eq!(staged.sha256, sha(&server.body));
    let ranges = server.ranges.lock().unwrap().clone();
    assert_eq!(ranges.len(), 3, "{ranges:?}");
    assert_eq!(ranges[0], "-");
    // Each resume starts exactly where the partial ended: 1 MiB, then 2 MiB.
    assert_eq!(ranges[1], format!("bytes={}-", 1024 * 1024));
    assert_eq!(ranges[2], format!("bytes={}-", 2 * 1024 * 1024));
    // Only the bytes actually received were counted, not the whole file three times.
    assert_eq!(progress.advanced.load(Ordering::SeqCst), SIZE);
    let messages = progress.messages.lock().unwrap().join("\n");
    assert!(messages.contains("retrying"), "{messages}");
}

#[tokio::test]
async fn a_server_ignoring_range_restarts_from_zero_and_never_appends() {
    let (server, url) = start(Faults {
        drop_after: Some(1024 * 1024),
        drops: 1,
        ignore_range: true,
        ..Faults::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let progress = Recorder::default();
    let staged = cache_with(settings(&url, dir.path()))
        .ensure_installer(&v(), Role::Target, &progress)
        .await
        .unwrap();
    let ranges = server.ranges.lock().unwrap().clone();
    assert_eq!(
        ranges,
        vec!["-".to_string(), format!("bytes={}-", 1024 * 1024)]
    );
    assert_eq!(std::fs::metadata(&staged.path).unwrap().len(), SIZE as u64);
    assert_eq!(std::fs::read(&staged.path).unwrap(), server.body);
    let messages = progress.messages.lock().unwrap().join("\n");
    assert!(messages.contains("ignored the range"), "{messages}");
}

/// Found by scripts/chaos.sh (seed 17960, run 30): octoup killed after the last byte of the
/// rollback installer and before its rename left a whole partial; the next run's range
/// request got a 416, which carries no sha256 header, and the installer was refused as
/// unverified ("nothing vouches for it").
#[tokio::test]
async fn a_whole_partial_left_by_a_killed_run_is_fetched_again_when_only_the_header_vouches() {
    let (server, url) = start(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("partial").join("2024.2.7");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("Octopus.2024.2.7-x64.msi.part"), &server.body).unwrap();
    let staged = target(&cache_with(settings(&url, dir.path())))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&staged.path).unwrap(), server.body);
    let ranges = server.ranges.lock().unwrap().clone();
    assert_eq!(
        ranges,
        [format!("bytes={}-", server.body.len()), "-".to_string()]
    );

    // With a pin that vouches by itself, the whole partial is taken as it is.
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("partial").join("2024.2.7");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("Octopus.2024.2.7-x64.msi.part"), &server.body).unwrap();
    let mut s = settings(&url, dir.path());
    s.sha256 = Some(sha(&server.body));
    let staged = target(&cache_with(s)).await.unwrap();
    assert_eq!(std::fs::read(&staged.path).unwrap(), server.body);
    assert_eq!(server.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_corrupted_byte_is_a_mismatch_naming_the_source_and_the_file_is_deleted() {
    let (_server, url) = start(Faults {
        corrupt_at: Some(SIZE / 2),
        ..Faults::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let err = target(&cache_with(settings(&url, dir.path())))
        .await
        .unwrap_err();
    assert!(
        matches!(err.verify_error(), Some(VerifyError::Mismatch { .. })),
        "{err}"
    );
    assert_mentions(&err, &["x-amz-meta-sha256", "deleted"]);
    assert_nothing_valid(dir.path());
    assert!(
        files(dir.path()).iter().all(|f| !f.ends_with(".part")),
        "{:?}",
        files(dir.path())
    );
}

#[tokio::test]
async fn a_wrong_pin_is_refused_before_the_body_when_the_header_disagrees() {
    let (server, url) = start(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&url, dir.path());
    let wrong = sha(b"something else");
    s.sha256 = Some(wrong.clone());
    let progress = Recorder::default();
    let err = cache_with(s)
        .ensure_installer(&v(), Role::Target, &progress)
        .await
        .unwrap_err();
    assert!(
        matches!(err.verify_error(), Some(VerifyError::Disagree { .. })),
        "{err}"
    );
    assert_mentions(&err, &["installer.sha256", &wrong, &sha(&server.body)]);
    assert_eq!(progress.advanced.load(Ordering::SeqCst), 0);
    assert_nothing_valid(dir.path());
}

#[tokio::test]
async fn a_wrong_pin_without_header_is_a_mismatch_after_download() {
    let (_server, url) = start(Faults {
        no_header: true,
        ..Faults::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&url, dir.path());
    s.sha256 = Some(sha(b"something else").to_uppercase());
    let err = target(&cache_with(s)).await.unwrap_err();
    assert_mentions(&err, &["does not match", "installer.sha256"]);
    assert_nothing_valid(dir.path());
}

#[tokio::test]
async fn a_right_pin_verifies_the_target_but_not_the_rollback_installer() {
    let (server, url) = start(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&url, dir.path());
    s.sha256 = Some(sha(&server.body));
    let cache = cache_with(s);
    let staged = target(&cache).await.unwrap();
    assert_eq!(
        staged.verified_by,
        vec![VerifiedBy::PinnedSha256, VerifiedBy::HeaderSha256]
    );
    // The same version as a rollback installer: the pin does not apply, the cache does.
    let again = cache
        .ensure_installer(&v(), Role::Rollback, &Recorder::default())
        .await
        .unwrap();
    assert!(again.cached);
}

#[tokio::test]
async fn no_hash_source_is_refused_unless_allowed() {
    let (server, url) = start(Faults {
        no_header: true,
        ..Faults::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let progress = Recorder::default();
    let err = cache_with(settings(&url, dir.path()))
        .ensure_installer(&v(), Role::Target, &progress)
        .await
        .unwrap_err();
    assert_mentions(
        &err,
        &[
            "installer.sha256",
            "installer.sidecar",
            "installer.allow_unverified = true",
        ],
    );
    assert_eq!(
        progress.advanced.load(Ordering::SeqCst),
        0,
        "refused before the body"
    );
    assert_nothing_valid(dir.path());

    let mut s = settings(&url, dir.path());
    s.allow_unverified = true;
    let staged = cache_with(s)
        .ensure_installer(&v(), Role::Target, &progress)
        .await
        .unwrap();
    assert!(staged.verified_by.is_empty());
    assert_eq!(std::fs::read(&staged.path).unwrap(), server.body);
    // An unverified entry is not reused once unverified installers are no longer allowed.
    assert!(
        cache_with(settings(&url, dir.path()))
            .lookup(&v(), None)
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_sidecar_vouches_and_a_disagreeing_one_is_an_error() {
    let (server, url) = start(Faults {
        no_header: true,
        ..Faults::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let sums = dir.path().join("SHA256SUMS");
    std::fs::write(
        &sums,
        format!(
            "{}  Octopus.2024.1.10-x64.msi\n{} *Octopus.2024.2.7-x64.msi\n",
            sha(b"old"),
            sha(&server.body)
        ),
    )
    .unwrap();
    let mut s = settings(&url, &dir.path().join("cache"));
    s.sidecar = Some(sums.display().to_string());
    let staged = target(&cache_with(s.clone())).await.unwrap();
    assert_eq!(staged.verified_by, vec![VerifiedBy::Sidecar]);

    std::fs::write(&sums, format!("{}\n", sha(b"tampered"))).unwrap();
    s.cache_dir = dir.path().join("cache2");
    let err = target(&cache_with(s)).await.unwrap_err();
    assert_mentions(&err, &["does not match", "SHA256SUMS"]);
}

#[tokio::test]
async fn a_disk_filling_up_mid_download_is_explained_and_leaves_nothing_that_looks_valid() {
    let (server, url) = start(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&url, dir.path());
    s.download.disk_quota = Some(1024 * 1024);
    let err = target(&cache_with(s)).await.unwrap_err();
    assert!(
        matches!(err.download_error(), Some(DownloadError::DiskFull { .. })),
        "{err}"
    );
    assert_mentions(&err, &["full", "installer.cache_dir"]);
    assert_nothing_valid(dir.path());
    // With space again, the next run resumes the partial instead of starting over.
    let staged = target(&cache_with(settings(&url, dir.path())))
        .await
        .unwrap();
    assert_eq!(std::fs::read(&staged.path).unwrap(), server.body);
    let ranges = server.ranges.lock().unwrap().clone();
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert!(
        ranges[1].starts_with("bytes=") && ranges[1] != "bytes=0-",
        "{ranges:?}"
    );
}

#[tokio::test]
async fn an_installer_larger_than_the_free_space_is_refused_before_the_body() {
    let (_server, url) = start(Faults {
        claim_length: Some(1 << 60),
        ..Faults::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let progress = Recorder::default();
    let err = cache_with(settings(&url, dir.path()))
        .ensure_installer(&v(), Role::Target, &progress)
        .await
        .unwrap_err();
    assert!(
        matches!(err.download_error(), Some(DownloadError::NoSpace { .. })),
        "{err}"
    );
    assert_mentions(&err, &["not enough space", "installer.cache_dir"]);
    assert_eq!(progress.advanced.load(Ordering::SeqCst), 0);
    assert_nothing_valid(dir.path());
}

#[tokio::test]
async fn an_unusable_cache_directory_is_explained() {
    let (_server, url) = start(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    // A file where the cache directory should be: unusable even for root.
    let not_a_dir = dir.path().join("cache");
    std::fs::write(&not_a_dir, b"").unwrap();
    let err = target(&cache_with(settings(&url, &not_a_dir)))
        .await
        .unwrap_err();
    assert!(matches!(err, InstallerError::CacheDir { .. }), "{err}");
    assert_mentions(
        &err,
        &["installer.cache_dir", &not_a_dir.display().to_string()],
    );
}

#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(
        "http://download.example.com/octopus/Octopus.{version}-x64.msi",
        dir.path(),
    );
    let err = target(&cache_with(s)).await.unwrap_err();
    assert_mentions(&err, &["http://download.example.com", "allow_plain_http"]);
}

#[tokio::test]
async fn a_cache_hit_skips_the_network_and_a_damaged_entry_is_fetched_again() {
    let (server, url) = start(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_with(settings(&url, dir.path()));
    let first = target(&cache).await.unwrap();
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    let progress = Recorder::default();
    let hit = cache
        .ensure_installer(&v(), Role::Target, &progress)
        .await
        .unwrap();
    assert!(hit.cached);
    assert_eq!(hit.path, first.path);
    assert_eq!(hit.verified_by, first.verified_by);
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        1,
        "no request on a hit"
    );
    assert!(progress.messages.lock().unwrap()[0].contains("cached"));

    // Same size, one byte changed on disk: the hash check catches it.
    let mut bytes = std::fs::read(&first.path).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&first.path, &bytes).unwrap();
    let again = target(&cache).await.unwrap();
    assert!(!again.cached);
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    assert_eq!(std::fs::read(&again.path).unwrap(), server.body);
}

struct Verifier {
    ok: bool,
    seen: Mutex<Vec<Vec<String>>>,
}

#[async_trait::async_trait]
impl CommandRunner for Verifier {
    async fn run(&self, spec: CommandSpec) -> Result<CommandOutput, RunError> {
        assert!(Path::new(&spec.argv[1]).exists(), "the file is in place");
        self.seen.lock().unwrap().push(spec.argv.clone());
        Ok(CommandOutput {
            code: Some(if self.ok { 0 } else { 1 }),
            stderr: if self.ok { "" } else { "NotSigned" }.into(),
            ..CommandOutput::default()
        })
    }
}

#[tokio::test]
async fn the_verify_command_runs_on_the_file_and_a_rejection_deletes_it() {
    let (_server, url) = start(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&url, dir.path());
    s.verify = vec!["check-signature".into(), "{installer}".into()];
    let ok = Arc::new(Verifier {
        ok: true,
        seen: Mutex::new(Vec::new()),
    });
    let staged = target(&cache_with_runner(s.clone(), ok.clone()))
        .await
        .unwrap();
    assert_eq!(
        staged.verified_by,
        vec![VerifiedBy::HeaderSha256, VerifiedBy::VerifyCommand]
    );
    assert_eq!(
        ok.seen.lock().unwrap()[0],
        vec![
            "check-signature".to_string(),
            staged.path.display().to_string()
        ]
    );

    s.cache_dir = dir.path().join("other");
    let rejecting = Arc::new(Verifier {
        ok: false,
        seen: Mutex::new(Vec::new()),
    });
    let err = target(&cache_with_runner(s.clone(), rejecting))
        .await
        .unwrap_err();
    assert_mentions(&err, &["check-signature", "NotSigned"]);
    assert_nothing_valid(&s.cache_dir);
}

#[tokio::test]
async fn an_unknown_version_is_a_clear_404() {
    let (_server, url) = start(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let err = cache_with(settings(&url, dir.path()))
        .ensure_installer(
            &"2099.1.1".parse().unwrap(),
            Role::Target,
            &Recorder::default(),
        )
        .await
        .unwrap_err();
    assert_mentions(&err, &["404", "2099.1.1"]);
}

#[tokio::test]
async fn stale_partials_are_cleaned_but_kept_versions_stay() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_with(settings("http://127.0.0.1:9/{version}", dir.path()));
    let partial = |v: &str| -> PathBuf {
        let d = dir.path().join("partial").join(v);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("Octopus.{v}-x64.msi.part")), b"x").unwrap();
        d
    };
    let (target_dir, current, old) = (
        partial("2024.2.7"),
        partial("2024.1.10"),
        partial("2023.4.1"),
    );
    let keep: [Version; 2] = ["2024.2.7".parse().unwrap(), "2024.1.10".parse().unwrap()];
    let removed = cache.clean_partials(&[&keep[0], &keep[1]]).unwrap();
    assert_eq!(removed, vec![old.clone()]);
    assert!(target_dir.exists() && current.exists() && !old.exists());

    // A kept version's partial that has not moved for longer than the limit goes too.
    let part = current.join("Octopus.2024.1.10-x64.msi.part");
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
    for f in [current.clone(), part] {
        std::fs::File::open(&f)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
    }
    let removed = cache.clean_partials(&[&keep[0], &keep[1]]).unwrap();
    assert_eq!(removed, vec![current.clone()]);
    assert!(target_dir.exists());
}

#[tokio::test]
async fn a_redirect_to_plain_http_elsewhere_is_refused() {
    let (_server, url) = start(Faults {
        redirect_to: Some("http://mirror.example.com/Octopus.2024.2.7-x64.msi".into()),
        ..Faults::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let err = target(&cache_with(settings(&url, dir.path())))
        .await
        .unwrap_err();
    assert_mentions(&err, &["mirror.example.com", "allow_plain_http"]);
}

#[tokio::test]
async fn a_download_in_progress_elsewhere_is_not_disturbed() {
    let (server, url) = start(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join("partial").join("2024.2.7");
    std::fs::create_dir_all(&partial).unwrap();
    let lock = std::fs::File::create(partial.join("download.lock")).unwrap();
    lock.lock().unwrap();
    let cache = cache_with(settings(&url, dir.path()));
    let err = target(&cache).await.unwrap_err();
    assert!(matches!(err, InstallerError::Busy { .. }), "{err}");
    assert!(err.to_string().contains("another octoup"), "{err}");
    assert_eq!(server.requests.load(Ordering::SeqCst), 0);
    // Cleaning skips the locked partial too.
    assert!(cache.clean_partials(&[]).unwrap().is_empty());
    drop(lock);
    target(&cache).await.unwrap();
}
