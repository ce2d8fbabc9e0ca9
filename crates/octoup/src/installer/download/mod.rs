//! Streaming, resumable download of one large file into a `.part` file.
//!
//! The body is hashed (SHA-256) while it is written, in fixed-size pieces, so memory does not
//! grow with the file. Receiving runs on the async side and hashing + writing on a blocking
//! thread, connected by a small bounded channel: the two overlap on separate cores.
//!
//! After a drop the download resumes with `Range: bytes=N-`, but only a `206` whose
//! `Content-Range` starts exactly at N is appended; a `200` (server ignored the range) or any
//! other answer restarts from zero, truncating the partial. A resumed download re-reads the
//! existing partial into the hash, so the final digest always covers the whole file.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::installer::verify::{self, SHA256_HEADER, VerifyError};
use crate::octopus::http::{HttpClient, HttpError, body_read_error, redact_url, status_error};
use crate::progress::Progress;

/// When to give up retrying a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Give up after this many failed attempts in a row that received no byte.
    pub attempts_without_progress: u32,
    /// Give up after this many retries in all (a link that drops every few bytes ends too).
    pub max_retries: u32,
    /// First delay between attempts; doubles (with jitter) up to `max_delay`.
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Start no new attempt once this much time has passed since the download began.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts_without_progress: 6,
            max_retries: 100,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            give_up_after: Duration::from_secs(2 * 3600),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadOptions {
    pub retry: RetryPolicy,
    /// Test seam: a disk that fills up once the partial holds this many bytes (writes
    /// beyond fail with "storage full", as when another program takes the space meanwhile).
    #[doc(hidden)]
    pub disk_quota: Option<u64>,
}

/// Chunks in flight between the receiving and the writing side (each at most a few hundred KiB).
const CHANNEL_CHUNKS: usize = 32;
/// The writer hands the file system up to this much per (vectored) write.
const BATCH_BYTES: usize = 1024 * 1024;
/// Ask for background writeback after this much: the final fsync then has little left to do,
/// instead of flushing a whole gigabyte while the download already stands still.
const SYNC_EVERY: u64 = 64 * 1024 * 1024;

/// A completed download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Downloaded {
    pub path: PathBuf,
    /// SHA-256 of the whole file, lowercase hex.
    pub sha256: String,
    pub size: u64,
    /// The digest the server announced in `x-amz-meta-sha256`, if any.
    pub header_sha256: Option<String>,
    /// Attempts that continued a partial file with a range request.
    pub resumed: u32,
    /// Times a partial file was thrown away and the download started from zero.
    pub restarted: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(
        "the disk holding {path} is full ({written} bytes written{}). Free space or set installer.cache_dir to a larger disk; the partial download is kept and resumes on the next run",
        total_hint(*.total)
    )]
    DiskFull {
        path: PathBuf,
        written: u64,
        total: Option<u64>,
    },
    #[error(
        "not enough space for {path}: {needed} more bytes are needed, {available} are available. Free space or set installer.cache_dir to a larger disk"
    )]
    NoSpace {
        path: PathBuf,
        needed: u64,
        available: u64,
    },
    #[error(
        "cannot write the download to {path}: {source}. Check that the cache directory is writable by this account (installer.cache_dir)"
    )]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{url} ended after {got} of {expected} bytes")]
    Incomplete {
        url: String,
        got: u64,
        expected: u64,
    },
    #[error("{url}: {reason}; starting again from zero")]
    Restart { url: String, reason: String },
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(
        "gave up downloading {url} after {attempts} attempts in {elapsed_s} s; last error: {last}. Run again to resume from the partial download"
    )]
    GaveUp {
        url: String,
        attempts: u32,
        elapsed_s: u64,
        last: Box<DownloadError>,
    },
}

fn total_hint(total: Option<u64>) -> String {
    total.map_or(String::new(), |t| format!(" of {t}"))
}

impl DownloadError {
    /// A later attempt may succeed (network trouble, a server error, a restart).
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            DownloadError::Http(e) => e.is_retryable(),
            DownloadError::Incomplete { .. } | DownloadError::Restart { .. } => true,
            _ => false,
        }
    }
}

/// What to download, where, and how to report and judge it.
#[derive(Clone, Copy)]
pub(crate) struct DownloadJob<'a> {
    pub client: &'a HttpClient,
    pub url: &'a str,
    /// The partial file (`….part`), resumed when it exists.
    pub part: &'a Path,
    pub opts: &'a DownloadOptions,
    pub progress: &'a dyn Progress,
    /// What is downloaded, in words, for progress.
    pub label: &'a str,
    /// Judges the announced `x-amz-meta-sha256` (or its absence) before the body is read.
    pub check_header: &'a (dyn Fn(Option<&str>) -> Result<(), VerifyError> + Sync),
}

/// Downloads `job.url` into `job.part`, resuming whatever the partial already holds,
/// retrying per `opts.retry`. `check_header` sees the server's `x-amz-meta-sha256` (or its
/// absence) as soon as a response arrives, so a download nothing can vouch for, or one whose
/// announced digest contradicts another source, stops before its body is fetched.
///
/// On success `part` is complete and fsynced. On error it is left as is (a later call
/// resumes it); the caller deletes it when the content itself is at fault.
pub(crate) async fn download_resumable(job: &DownloadJob<'_>) -> Result<Downloaded, DownloadError> {
    let (url, part, opts, progress) = (job.url, job.part, job.opts, job.progress);
    let started = Instant::now();
    let policy = opts.retry;
    let new_backoff = || {
        ExponentialBuilder::default()
            .with_min_delay(policy.min_delay)
            .with_max_delay(policy.max_delay)
            .with_jitter()
            .without_max_times()
            .build()
    };
    let mut backoff = new_backoff();
    let mut state = State::default();
    let (mut retries, mut idle) = (0u32, 0u32);
    loop {
        let received_before = state.received;
        let error = match attempt(job, &mut state).await {
            Ok(done) => return Ok(done),
            Err(e) if e.is_retryable() => e,
            Err(e) => return Err(e),
        };
        if state.received > received_before {
            idle = 0;
            backoff = new_backoff();
        } else {
            idle += 1;
        }
        retries += 1;
        if idle >= policy.attempts_without_progress
            || retries > policy.max_retries
            || started.elapsed() >= policy.give_up_after
        {
            return Err(DownloadError::GaveUp {
                url: redact_url(url),
                attempts: retries,
                elapsed_s: started.elapsed().as_secs(),
                last: Box::new(error),
            });
        }
        // A restart is our decision, not the server's trouble: no reason to wait.
        let delay = match error {
            DownloadError::Restart { .. } => Duration::ZERO,
            _ => backoff.next().unwrap_or(policy.max_delay),
        };
        let have = file_len(part);
        tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, have, "download interrupted");
        progress.message(&format!(
            "{error}; retrying in {:.1} s from byte {have}",
            delay.as_secs_f64()
        ));
        tokio::time::sleep(delay).await;
    }
}

/// What one attempt leaves for the next.
#[derive(Debug, Default)]
struct State {
    /// Bytes received over all attempts (progress detection).
    received: u64,
    /// ETag or Last-Modified of the first answer, sent as `If-Range` so a file that changed
    /// upstream comes back whole (200) instead of being spliced.
    validator: Option<HeaderValue>,
    header_sha256: Option<String>,
    resumed: u32,
    restarted: u32,
    /// The next attempt must not send `Range` (the partial was just found unusable).
    from_zero: bool,
}

impl State {
    fn downloaded(&self, part: &Path, sha256: String, size: u64) -> Downloaded {
        Downloaded {
            path: part.to_path_buf(),
            sha256,
            size,
            header_sha256: self.header_sha256.clone(),
            resumed: self.resumed,
            restarted: self.restarted,
        }
    }
}

async fn attempt(job: &DownloadJob<'_>, state: &mut State) -> Result<Downloaded, DownloadError> {
    let DownloadJob {
        client,
        url,
        part,
        opts,
        progress,
        label,
        check_header,
    } = *job;
    let shown_url = redact_url(url);
    let have = if state.from_zero { 0 } else { file_len(part) };
    state.from_zero = false;
    let mut request = client.request(Method::GET, url)?;
    if have > 0 {
        request = request.header(header::RANGE, format!("bytes={have}-"));
        if let Some(v) = &state.validator {
            request = request.header(header::IF_RANGE, v.clone());
        }
    }
    let response = client.send(request).await?;
    let status = response.status();

    let (resume_at, total) = match status {
        StatusCode::PARTIAL_CONTENT if have > 0 => match parse_content_range(response.headers()) {
            Some(r) if r.start == have => (have, Some(r.total.unwrap_or(r.end + 1))),
            other => {
                state.from_zero = true;
                return Err(DownloadError::Restart {
                    url: shown_url,
                    reason: format!(
                        "asked for bytes from {have}, the server sent Content-Range {:?}",
                        other.map(|r| (r.start, r.end, r.total))
                    ),
                });
            }
        },
        StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => {
            let total = parse_content_range(response.headers()).and_then(|r| r.total);
            if total == Some(have) {
                // The partial is already whole (the last run died between the last byte and the rename).
                merge_header(state, announced_sha256(response.headers()));
                if state.header_sha256.is_some() {
                    check_header(state.header_sha256.as_deref())?;
                    return finish_complete_partial(part, state).await;
                }
                if check_header(None).is_ok() {
                    return finish_complete_partial(part, state).await;
                }
                // A 416 carries no object metadata (S3 sends none): when only the server's
                // x-amz-meta-sha256 can vouch for the file, fetch it whole again, whose answer
                // has it, rather than refuse a file nothing was wrong with.
            }
            state.from_zero = true;
            return Err(DownloadError::Restart {
                url: shown_url,
                reason: format!(
                    "the server cannot serve bytes from {have} (total {total:?}) or did not say what the file's digest is"
                ),
            });
        }
        s if s.is_success() && s != StatusCode::PARTIAL_CONTENT => {
            if have > 0 {
                tracing::warn!(url = %shown_url, have, "server ignored the Range request; restarting from zero");
                progress.message(&format!(
                    "{shown_url} ignored the range request: downloading again from zero"
                ));
                state.restarted += 1;
            }
            (0, response.content_length())
        }
        StatusCode::PARTIAL_CONTENT => {
            // A 206 to a request without Range cannot be appended to anything.
            state.from_zero = true;
            return Err(DownloadError::Restart {
                url: shown_url,
                reason: "the server sent a partial answer to a whole-file request".into(),
            });
        }
        _ => return Err(status_error(response).await.into()),
    };

    if merge_header(state, announced_sha256(response.headers())) && resume_at > 0 {
        // The file changed upstream; what the partial holds is of the old one.
        state.from_zero = true;
        return Err(DownloadError::Restart {
            url: shown_url,
            reason: format!("its {SHA256_HEADER} changed since the partial was started"),
        });
    }
    check_header(state.header_sha256.as_deref())?;
    if state.validator.is_none() {
        state.validator = validator(response.headers());
    }
    if resume_at > 0 {
        state.resumed += 1;
        tracing::info!(url = %shown_url, from = resume_at, "resuming download");
    }

    // Refuse before the body rather than after a gigabyte when the disk cannot hold it.
    if let Some(total) = total {
        let needed = total.saturating_sub(resume_at);
        let available =
            crate::process::platform::available_space(crate::process::fsutil::parent_dir(part));
        if available.is_some_and(|a| a < needed) {
            return Err(DownloadError::NoSpace {
                path: part.to_path_buf(),
                needed,
                available: available.unwrap_or(0),
            });
        }
    }
    progress.start(label, total, resume_at);
    let (path, quota) = (part.to_path_buf(), opts.disk_quota);
    let (sink, mut hasher) =
        blocking(part, move || Sink::open(path, resume_at, total, quota)).await?;
    let (sink, body_error) =
        stream_body(response, part, sink, &mut hasher, progress, state).await?;
    if let Some(e) = body_error {
        return Err(e.into());
    }
    if let Some(expected) = total
        && sink.written != expected
    {
        return Err(DownloadError::Incomplete {
            url: shown_url,
            got: sink.written,
            expected,
        });
    }
    let size = blocking(part, move || sink.complete()).await?;
    Ok(state.downloaded(part, hex::encode(hasher.finalize()), size))
}

/// Records the announced digest; `true` when it differs from the one seen before.
fn merge_header(state: &mut State, header: Option<String>) -> bool {
    match (&state.header_sha256, header) {
        (Some(old), Some(new)) if *old != new => {
            state.header_sha256 = Some(new);
            state.validator = None;
            true
        }
        (None, Some(new)) => {
            state.header_sha256 = Some(new);
            false
        }
        _ => false,
    }
}

async fn finish_complete_partial(part: &Path, state: &State) -> Result<Downloaded, DownloadError> {
    let path = part.to_path_buf();
    let (sha256, size) = blocking(part, move || Ok(verify::hash_file(&path)?)).await?;
    Ok(state.downloaded(part, sha256, size))
}

/// Runs file work (hashing a partial, fsync) off the async workers.
async fn blocking<T: Send + 'static>(
    part: &Path,
    work: impl FnOnce() -> Result<T, DownloadError> + Send + 'static,
) -> Result<T, DownloadError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DownloadError::Write {
            path: part.to_path_buf(),
            source: io::Error::other(e.to_string()),
        })?
}

/// Pumps the body into the writer thread, hashing it on the way: receiving + hashing here
/// and writing there keep the two busiest jobs on separate cores. Returns the sink (every
/// received byte written) and the transport error that cut the body short, if any.
async fn stream_body(
    mut response: Response,
    part: &Path,
    sink: Sink,
    hasher: &mut Sha256,
    progress: &dyn Progress,
    state: &mut State,
) -> Result<(Sink, Option<HttpError>), DownloadError> {
    let url = redact_url(response.url().as_str());
    let (tx, mut rx) = mpsc::channel::<Bytes>(CHANNEL_CHUNKS);
    let writer = tokio::task::spawn_blocking(move || {
        let mut sink = sink;
        let mut batch = Vec::with_capacity(CHANNEL_CHUNKS + 1);
        while let Some(first) = rx.blocking_recv() {
            // Take whatever else is already waiting: fewer, larger writes, no extra copy.
            let mut size = first.len();
            batch.push(first);
            while size < BATCH_BYTES
                && let Ok(chunk) = rx.try_recv()
            {
                size += chunk.len();
                batch.push(chunk);
            }
            sink.write_batch(&batch)?;
            batch.clear();
        }
        Ok::<Sink, DownloadError>(sink)
    });
    let mut body_error = None;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let n = chunk.len() as u64;
                hasher.update(&chunk);
                if tx.send(chunk).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
                state.received += n;
                progress.advance(n);
            }
            Ok(None) => break,
            Err(e) => {
                body_error = Some(body_read_error(&url, e));
                break;
            }
        }
    }
    drop(tx);
    let sink = writer.await.map_err(|e| DownloadError::Write {
        path: part.to_path_buf(),
        source: io::Error::other(e.to_string()),
    })??;
    Ok((sink, body_error))
}

/// The partial file being written.
struct Sink {
    path: PathBuf,
    file: File,
    /// Bytes in the file.
    written: u64,
    quota: Option<u64>,
    total_hint: Option<u64>,
    syncer: Option<Syncer>,
    synced_at: u64,
}

/// A thread that flushes the partial to disk in the background while the download goes on.
struct Syncer {
    nudge: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Syncer {
    /// `None` when the file cannot be shared with a thread: then only the final fsync runs.
    fn start(file: &File) -> Option<Syncer> {
        let file = file.try_clone().ok()?;
        let (nudge, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("octoup-sync".into())
            .spawn(move || {
                // Errors surface in the final fsync, which must succeed.
                while rx.recv().is_ok() {
                    let _ = file.sync_data();
                }
            })
            .ok()?;
        Some(Syncer { nudge, thread })
    }

    /// Asks for a flush unless one is already pending.
    fn nudge(&self) {
        let _ = self.nudge.try_send(());
    }

    fn stop(self) {
        drop(self.nudge);
        let _ = self.thread.join();
    }
}

impl Sink {
    /// Opens the partial: continued at `resume_at` or truncated. Returns it with the hash of
    /// what it already holds (re-read from disk, so the final digest covers the whole file).
    fn open(
        path: PathBuf,
        resume_at: u64,
        total: Option<u64>,
        quota: Option<u64>,
    ) -> Result<(Sink, Sha256), DownloadError> {
        let write_err = |source| DownloadError::Write {
            path: path.clone(),
            source,
        };
        let mut hasher = Sha256::new();
        let file = if resume_at > 0 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(write_err)?;
            let hashed =
                verify::hash_reader(&mut io::Read::take(&mut file, resume_at), &mut hasher)
                    .map_err(write_err)?;
            if hashed != resume_at {
                return Err(DownloadError::Restart {
                    url: path.display().to_string(),
                    reason: format!("the partial file shrank to {hashed} bytes"),
                });
            }
            // Drop anything past the resume point (a partial longer than we asked from).
            file.set_len(resume_at).map_err(write_err)?;
            file.seek(SeekFrom::Start(resume_at)).map_err(write_err)?;
            file
        } else {
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .map_err(write_err)?
        };
        let syncer = Syncer::start(&file);
        let sink = Sink {
            path,
            file,
            written: resume_at,
            quota,
            total_hint: total,
            syncer,
            synced_at: resume_at,
        };
        Ok((sink, hasher))
    }

    /// Appends received chunks with as few system calls as they allow.
    fn write_batch(&mut self, batch: &[Bytes]) -> Result<(), DownloadError> {
        let len: u64 = batch.iter().map(|c| c.len() as u64).sum();
        if let Some(quota) = self.quota
            && self.written + len > quota
        {
            // The test seam: fill the "disk" to the brim, then fail as a full one does.
            let mut room = quota.saturating_sub(self.written);
            for chunk in batch {
                let n = room.min(chunk.len() as u64) as usize;
                let result = self.file.write_all(&chunk[..n]);
                self.map_io(result)?;
                (self.written, room) = (self.written + n as u64, room - n as u64);
            }
            return self.map_io(Err(io::ErrorKind::StorageFull.into()));
        }
        let result = write_all_vectored(&mut self.file, batch);
        self.map_io(result)?;
        self.written += len;
        if self.written - self.synced_at >= SYNC_EVERY
            && let Some(syncer) = &self.syncer
        {
            syncer.nudge();
            self.synced_at = self.written;
        }
        Ok(())
    }

    /// Makes the file durable and returns its size.
    fn complete(mut self) -> Result<u64, DownloadError> {
        if let Some(syncer) = self.syncer.take() {
            syncer.stop();
        }
        let result = self.file.sync_all();
        self.map_io(result)?;
        Ok(self.written)
    }

    fn map_io<T>(&self, result: io::Result<T>) -> Result<T, DownloadError> {
        result.map_err(|source| {
            if is_disk_full(&source) {
                DownloadError::DiskFull {
                    path: self.path.clone(),
                    written: self.written,
                    total: self.total_hint,
                }
            } else {
                DownloadError::Write {
                    path: self.path.clone(),
                    source,
                }
            }
        })
    }
}

/// `write_all` over several buffers (std's `write_all_vectored` is not stable yet).
fn write_all_vectored(file: &mut File, chunks: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = chunks.iter().map(|c| IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn is_disk_full(e: &io::Error) -> bool {
    // ERROR_DISK_FULL (112) and ERROR_HANDLE_DISK_FULL (39) on Windows.
    e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || (cfg!(windows) && matches!(e.raw_os_error(), Some(39 | 112)))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The digest announced in `x-amz-meta-sha256`, if it is one. A malformed value is logged
/// and ignored: it cannot vouch for anything.
fn announced_sha256(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(SHA256_HEADER)?;
    let text = raw.to_str().unwrap_or_default();
    let parsed = verify::parse_sha256(text);
    if parsed.is_none() {
        tracing::warn!(value = ?raw, "ignoring a {SHA256_HEADER} header that is not a hex SHA-256");
    }
    parsed
}

/// A strong ETag, else Last-Modified: what `If-Range` may carry.
fn validator(headers: &HeaderMap) -> Option<HeaderValue> {
    headers
        .get(header::ETAG)
        .filter(|v| !v.as_bytes().starts_with(b"W/"))
        .or_else(|| headers.get(header::LAST_MODIFIED))
        .cloned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ContentRange {
    start: u64,
    end: u64,
    total: Option<u64>,
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`), or `bytes */TOTAL` (then start = end = 0).
fn parse_content_range(headers: &HeaderMap) -> Option<ContentRange> {
    let value = headers.get(header::CONTENT_RANGE)?.to_str().ok()?.trim();
    let rest = value.strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    if range.trim() == "*" {
        return Some(ContentRange {
            start: 0,
            end: 0,
            total,
        });
    }
    let (start, end) = range.split_once('-')?;
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    if end < start || total.is_some_and(|t| end >= t) {
        return None;
    }
    Some(ContentRange { start, end, total })
}

#[cfg(test)]
mod tests;
