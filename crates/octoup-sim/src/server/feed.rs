//! The feed and download server (its own loopback port, `state.feed_port`):
//!
//! - `GET /download/upgrade/v3`: the feed, a JSON array of `{Version, Released}` in the
//!   state's (unsorted) order.
//! - `GET`/`HEAD /octopus/Octopus.{version}-x64.msi`: the generated installer, streamed in
//!   64 KiB chunks, with `Content-Length`, `Accept-Ranges: bytes`, `x-amz-meta-sha256` and
//!   single `Range` requests (206, or 416 when unsatisfiable).
//! - `POST /__sim/shutdown`: asks the daemon to exit (used by `octoup-sim down`).
//!
//! Faults: `feed` and `download` with `http:CODE`, `hang`, `delay:S`; `download` also with
//! `drop:N`, `corrupt:N` and `ignore-range`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;

use super::http::{ApiError, apply_fault, json_response, request_fault, take_fault};
use super::shared::{Shared, blocking};
use crate::faults::FaultAction;
use crate::installer::{Installer, RangeChunks};
use crate::state::State;

/// The control endpoint `octoup-sim down` posts to.
pub const SHUTDOWN_PATH: &str = "/__sim/shutdown";
/// The feed's path (as on octopus.com).
pub const FEED_PATH: &str = "/download/upgrade/v3";

/// How long a dropped download waits after its last bytes before cutting the connection,
/// so those bytes reach the client first.
const DROP_FLUSH: Duration = Duration::from_millis(50);

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(FEED_PATH, get(feed))
        .route("/octopus/{file}", get(download))
        .route(SHUTDOWN_PATH, post(shutdown))
        .fallback(|| async { ApiError::not_found() })
        .with_state(shared)
}

fn download_fault(a: &FaultAction) -> bool {
    request_fault(a)
        || matches!(
            a,
            FaultAction::Drop(_) | FaultAction::Corrupt(_) | FaultAction::IgnoreRange
        )
}

async fn feed(AxState(shared): AxState<Arc<Shared>>) -> Response {
    match feed_inner(&shared).await {
        Ok(r) | Err(r) => r,
    }
}

async fn feed_inner(shared: &Shared) -> Result<Response, Response> {
    let internal = |e| ApiError::from(e).into_response();
    let state = shared.state().await.map_err(internal)?;
    let fault = take_fault(shared, &state, "feed", None, true, request_fault)
        .await
        .map_err(internal)?;
    if let Some(action) = fault {
        apply_fault(shared, action).await?;
    }
    Ok(feed_body(&state))
}

fn feed_body(state: &State) -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::to_value(&state.feed).unwrap_or_default(),
    )
}

/// `Octopus.2024.2.9409-x64.msi` → `2024.2.9409`.
fn version_of(file: &str) -> Option<&str> {
    file.strip_prefix("Octopus.")?
        .strip_suffix("-x64.msi")
        .filter(|v| crate::version::is_valid(v))
}

/// Versions the download site has: everything in the feed, plus what is installed (the
/// real site keeps every release, and a rollback needs the current version's installer).
fn downloadable(state: &State, version: &str) -> bool {
    state.feed.iter().any(|e| e.version == version)
        || state.database.schema_version == version
        || state
            .nodes
            .iter()
            .any(|n| n.installed_version.as_deref() == Some(version))
}

async fn download(
    AxState(shared): AxState<Arc<Shared>>,
    method: Method,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    match download_inner(&shared, method, &file, &headers).await {
        Ok(r) | Err(r) => r,
    }
}

async fn download_inner(
    shared: &Shared,
    method: Method,
    file: &str,
    headers: &HeaderMap,
) -> Result<Response, Response> {
    let internal = |e| ApiError::from(e).into_response();
    let state = shared.state().await.map_err(internal)?;
    let Some(version) = version_of(file).filter(|v| downloadable(&state, v)) else {
        return Err(s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        ));
    };
    let size = state.installer_size;

    // A HEAD has no body, so it leaves body faults for the GET that follows.
    let usable = if method == Method::HEAD {
        request_fault
    } else {
        download_fault
    };
    let fault = take_fault(shared, &state, "download", None, true, usable)
        .await
        .map_err(internal)?;
    let (mut drop_after, mut corrupt, mut ignore_range) = (None, None, false);
    match fault {
        Some(FaultAction::Drop(n)) => drop_after = Some(n),
        Some(FaultAction::Corrupt(n)) => corrupt = Some(n),
        Some(FaultAction::IgnoreRange) => ignore_range = true,
        Some(action) => apply_fault(shared, action).await?,
        None => {}
    }

    let sha = {
        let version = version.to_string();
        blocking(move || crate::installer::sha256(&version, size))
            .await
            .map_err(internal)?
    };
    let range = if ignore_range {
        ByteRange::Whole
    } else {
        ByteRange::parse(
            headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
            size,
        )
    };
    let (status, start, end) = match range {
        ByteRange::Whole => (StatusCode::OK, 0, size),
        ByteRange::Part(first, last) => (StatusCode::PARTIAL_CONTENT, first, last + 1),
        ByteRange::Unsatisfiable => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [
                    (header::CONTENT_RANGE, format!("bytes */{size}")),
                    (header::ACCEPT_RANGES, "bytes".to_string()),
                ],
            )
                .into_response());
        }
    };

    let chunks = Installer::new(version, size).range(start, end);
    let body = Body::from_stream(body_stream(chunks, start, corrupt, drop_after));
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::ACCEPT_RANGES, "bytes")
        .header("x-amz-meta-sha256", &sha)
        .header(header::ETAG, format!("\"{}\"", &sha[..32]));
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end - 1),
        );
    }
    response.body(body).map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
    })
}

/// An S3-style XML error, as the download CDN answers.
fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

/// The generated bytes of one response. `corrupt`: flip the byte at that absolute file
/// offset. `drop_after`: after that many body bytes, fail the stream, which makes hyper
/// cut the connection short of `Content-Length` (the client sees a truncated body).
fn body_stream(
    chunks: RangeChunks,
    start: u64,
    corrupt: Option<u64>,
    drop_after: Option<u64>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    struct Cursor {
        chunks: RangeChunks,
        offset: u64,
        sent: u64,
        dropping: bool,
        done: bool,
    }
    let cursor = Cursor {
        chunks,
        offset: start,
        sent: 0,
        dropping: false,
        done: false,
    };
    futures_util::stream::unfold(cursor, move |mut c| async move {
        if c.done {
            return None;
        }
        if c.dropping {
            tokio::time::sleep(DROP_FLUSH).await;
            let error = std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "simulated dropped connection",
            );
            c.done = true;
            return Some((Err(error), c));
        }
        let mut chunk = c.chunks.next()?;
        let len = chunk.len() as u64;
        if let Some(at) = corrupt
            && (c.offset..c.offset + len).contains(&at)
        {
            chunk[(at - c.offset) as usize] ^= 0xff;
        }
        c.offset += len;
        if let Some(limit) = drop_after
            && c.sent + len >= limit
        {
            chunk.truncate((limit - c.sent) as usize);
            c.dropping = true;
        }
        c.sent += chunk.len() as u64;
        Some((Ok(Bytes::from(chunk)), c))
    })
}

/// A `Range` request header, resolved against the file size.
#[derive(Debug, PartialEq, Eq)]
enum ByteRange {
    /// No (usable) Range: the whole file with 200. Multiple ranges are answered this way too.
    Whole,
    /// Inclusive first and last byte.
    Part(u64, u64),
    Unsatisfiable,
}

impl ByteRange {
    fn parse(header: Option<&str>, size: u64) -> ByteRange {
        let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
            return ByteRange::Whole;
        };
        if spec.contains(',') {
            return ByteRange::Whole;
        }
        let Some((first, last)) = spec.trim().split_once('-') else {
            return ByteRange::Whole;
        };
        let (first, last) = (first.trim(), last.trim());
        if first.is_empty() {
            // Suffix range: the last N bytes.
            return match last.parse::<u64>() {
                Ok(0) => ByteRange::Unsatisfiable,
                Ok(_) if size == 0 => ByteRange::Unsatisfiable,
                Ok(n) => ByteRange::Part(size - n.min(size), size - 1),
                Err(_) => ByteRange::Whole,
            };
        }
        let Ok(first) = first.parse::<u64>() else {
            return ByteRange::Whole;
        };
        let last = if last.is_empty() {
            u64::MAX
        } else {
            match last.parse::<u64>() {
                Ok(l) if l >= first => l,
                // Syntactically invalid: ignored, as RFC 9110 says.
                _ => return ByteRange::Whole,
            }
        };
        if first >= size {
            return ByteRange::Unsatisfiable;
        }
        ByteRange::Part(first, last.min(size - 1))
    }
}

async fn shutdown(AxState(shared): AxState<Arc<Shared>>) -> Response {
    // Answer first; the daemon stops a moment later.
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        shared.shutdown.notify_one();
    });
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "Message": "The octoup-sim daemon is shutting down." }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn ranges() {
        use ByteRange::*;
        assert_eq!(ByteRange::parse(None, 100), Whole);
        assert_eq!(ByteRange::parse(Some("bytes=10-"), 100), Part(10, 99));
        assert_eq!(ByteRange::parse(Some("bytes=10-19"), 100), Part(10, 19));
        assert_eq!(ByteRange::parse(Some("bytes=10-1000"), 100), Part(10, 99));
        assert_eq!(ByteRange::parse(Some("bytes=-30"), 100), Part(70, 99));
        assert_eq!(ByteRange::parse(Some("bytes=-300"), 100), Part(0, 99));
        assert_eq!(ByteRange::parse(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(ByteRange::parse(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(ByteRange::parse(Some("bytes=20-10"), 100), Whole);
        assert_eq!(ByteRange::parse(Some("bytes=0-1,5-6"), 100), Whole);
        assert_eq!(ByteRange::parse(Some("items=0-1"), 100), Whole);
        assert_eq!(ByteRange::parse(Some("bytes=x-"), 100), Whole);
    }

    #[test]
    fn file_names() {
        assert_eq!(
            version_of("Octopus.2024.2.9409-x64.msi"),
            Some("2024.2.9409")
        );
        assert_eq!(version_of("Octopus.2024.2-x64.msi"), None);
        assert_eq!(version_of("Octopus.2024.2.9409.msi"), None);
    }

    async fn collect(
        chunks: RangeChunks,
        start: u64,
        corrupt: Option<u64>,
        drop_after: Option<u64>,
    ) -> (Vec<u8>, bool) {
        let mut stream = Box::pin(body_stream(chunks, start, corrupt, drop_after));
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(_) => return (out, true),
            }
        }
        (out, false)
    }

    #[tokio::test]
    async fn body_faults() {
        let installer = Installer::new("2024.2.1", 200_000);
        let whole: Vec<u8> = installer.range(0, 200_000).flatten().collect();

        let (bytes, failed) = collect(installer.range(0, 200_000), 0, None, None).await;
        assert_eq!((bytes.as_slice(), failed), (whole.as_slice(), false));

        let (bytes, failed) = collect(installer.range(0, 200_000), 0, None, Some(70_000)).await;
        assert!(failed);
        assert_eq!(bytes, &whole[..70_000]);

        let (bytes, failed) =
            collect(installer.range(1000, 200_000), 1000, Some(150_000), None).await;
        assert!(!failed);
        assert_eq!(bytes.len(), 199_000);
        assert_eq!(bytes[149_000], whole[150_000] ^ 0xff);
        assert_eq!(bytes[..149_000], whole[1000..150_000]);
        assert_eq!(bytes[149_001..], whole[150_001..]);
    }
}
