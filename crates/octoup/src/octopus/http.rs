//! The one HTTP client every module uses (feed, Octopus API, installer download).
//!
//! It enforces the transport rules in one place: plain `http://` only for loopback hosts
//! (the simulator) unless the operator allows it, redirects included; an optional proxy and
//! extra CA bundle; timeouts; a `octoup/<version>` user agent. Nothing here reads the
//! environment (no `HTTPS_PROXY` either): the binary passes every setting in.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, Url};

/// `octoup/<version>`.
pub(crate) const USER_AGENT: &str = concat!("octoup/", env!("CARGO_PKG_VERSION"));

/// Text bodies (`get_text`, `get_json`) larger than this are refused: they are feeds, API
/// answers and sidecars, never installers, and must not grow memory without bound.
pub(crate) const MAX_TEXT_BODY: usize = 64 * 1024 * 1024;

/// The setting that allows plain `http://` for non-loopback hosts, as operators write it.
pub(crate) const ALLOW_PLAIN_HTTP_SETTING: &str = "[network] allow_plain_http = true";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSettings {
    /// Proxy URL for every request except those to loopback hosts.
    pub proxy: Option<String>,
    /// PEM file with extra CA certificates to trust (a TLS-inspecting proxy's, a mirror's).
    pub ca_bundle: Option<PathBuf>,
    /// Accept plain `http://` for non-loopback hosts.
    pub allow_plain_http: bool,
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response (a stalled download fails, then resumes).
    pub read_timeout: Duration,
    /// Whole-request limit for small requests (`get_text`, `get_json`); not for downloads.
    pub request_timeout: Duration,
    pub user_agent: String,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        NetworkSettings {
            proxy: None,
            ca_bundle: None,
            allow_plain_http: false,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            user_agent: USER_AGENT.to_string(),
        }
    }
}

impl NetworkSettings {
    /// `[network]` and `[timeouts] http` of the config.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let n = &config.network;
        NetworkSettings {
            proxy: n.proxy.clone().filter(|p| !p.trim().is_empty()),
            ca_bundle: n.ca_bundle.clone(),
            allow_plain_http: n.allow_plain_http,
            request_timeout: Duration::from_secs(config.timeouts.http.max(1)),
            ..NetworkSettings::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(
        "refusing plain http:// URL {url}: only loopback hosts may use unencrypted HTTP. Use https://, or set {ALLOW_PLAIN_HTTP_SETTING} to allow it"
    )]
    PlainHttpRefused { url: String },
    #[error("{url:?} is not a usable URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot use the proxy {proxy}: {reason}. Check [network] proxy")]
    Proxy { proxy: String, reason: String },
    #[error("cannot use the CA bundle {path}: {reason}. Check [network] ca_bundle (a PEM file)")]
    CaBundle { path: PathBuf, reason: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    #[error("request to {url} failed: {reason}. Check the network, the proxy and the URL")]
    Request {
        url: String,
        reason: String,
        retryable: bool,
    },
    #[error("{url} answered HTTP {status}{}", body_hint(.body))]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: the response is larger than {limit} bytes; is this the right URL?")]
    TooLarge { url: String, limit: usize },
    #[error("{url}: the response is not the expected JSON: {reason}")]
    Json { url: String, reason: String },
    #[error("cannot read {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn body_hint(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

impl HttpError {
    /// The configuration is wrong (a URL octoup will not use, the proxy, the CA bundle),
    /// not the network: fixing the config fixes it.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            HttpError::PlainHttpRefused { .. }
                | HttpError::BadUrl { .. }
                | HttpError::Proxy { .. }
                | HttpError::CaBundle { .. }
        )
    }

    /// Worth retrying later: a network failure, a timeout, or a server-side (5xx, 408, 429) answer.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            HttpError::Request { retryable, .. } => *retryable,
            HttpError::Status { status, .. } => is_retryable_status(*status),
            _ => false,
        }
    }
}

pub(crate) fn is_retryable_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// A configured client. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    /// The same, following no redirect: for the Octopus API, whose requests carry the API
    /// key (reqwest keeps custom headers across a redirect to another host).
    no_redirect: reqwest::Client,
    settings: NetworkSettings,
    log: Option<CallLog>,
}

/// Where each call is written: method, path, status and duration (never a header, so never
/// the API key).
#[derive(Clone)]
struct CallLog(std::sync::Arc<crate::process::runner::RunLog>);

impl std::fmt::Debug for CallLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallLog")
    }
}

impl HttpClient {
    pub fn new(settings: NetworkSettings) -> Result<Self, HttpError> {
        Ok(HttpClient {
            inner: Self::build(&settings, true)?,
            no_redirect: Self::build(&settings, false)?,
            settings,
            log: None,
        })
    }

    fn build(settings: &NetworkSettings, follow: bool) -> Result<reqwest::Client, HttpError> {
        let allow_plain = settings.allow_plain_http;
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 10 {
                return attempt.error("more than 10 redirects");
            }
            match check_url_policy(attempt.url(), allow_plain) {
                Ok(()) => attempt.follow(),
                Err(e) => {
                    let message = format!("redirected to a refused URL: {e}");
                    attempt.error(message)
                }
            }
        });
        let mut builder = reqwest::Client::builder()
            .user_agent(settings.user_agent.clone())
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.read_timeout)
            .redirect(if follow {
                redirects
            } else {
                reqwest::redirect::Policy::none()
            })
            // Only the proxy passed in counts: reqwest would otherwise read HTTP(S)_PROXY.
            .no_proxy();
        if let Some(proxy) = settings.proxy.as_deref().filter(|p| !p.trim().is_empty()) {
            let shown = redact_url(proxy);
            let p = reqwest::Proxy::all(proxy)
                .map_err(|e| HttpError::Proxy {
                    proxy: shown.clone(),
                    reason: error_chain(&e),
                })?
                .no_proxy(reqwest::NoProxy::from_string("localhost,127.0.0.0/8,::1"));
            builder = builder.proxy(p);
        }
        if let Some(path) = &settings.ca_bundle {
            for cert in read_ca_bundle(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder
            .build()
            .map_err(|e| HttpError::Client(error_chain(&e)))
    }

    /// Writes every call into the run log.
    pub(crate) fn with_log(mut self, log: std::sync::Arc<crate::process::runner::RunLog>) -> Self {
        self.log = Some(CallLog(log));
        self
    }

    /// Parses `url` and applies the transport rules (scheme, plain-http policy).
    pub(crate) fn check_url(&self, url: &str) -> Result<Url, HttpError> {
        let parsed = Url::parse(url).map_err(|e| HttpError::BadUrl {
            url: redact_url(url),
            reason: e.to_string(),
        })?;
        check_url_policy(&parsed, self.settings.allow_plain_http)?;
        Ok(parsed)
    }

    /// A request builder for `url` after the transport rules passed; add headers and send it.
    /// No whole-request timeout is set (downloads take long); the read timeout applies.
    pub(crate) fn request(&self, method: Method, url: &str) -> Result<RequestBuilder, HttpError> {
        let url = self.check_url(url)?;
        Ok(self.inner.request(method, url))
    }

    /// [`HttpClient::request`] on the client that follows no redirect (a 3xx comes back
    /// as the answer); send it with [`HttpClient::send`].
    pub(crate) fn request_no_redirect(
        &self,
        method: Method,
        url: &str,
    ) -> Result<RequestBuilder, HttpError> {
        let url = self.check_url(url)?;
        Ok(self.no_redirect.request(method, url))
    }

    /// Sends a request, mapping transport failures to [`HttpError::Request`].
    /// Any status is returned; see [`HttpClient::send_ok`] for "2xx or error".
    pub(crate) async fn send(&self, request: RequestBuilder) -> Result<Response, HttpError> {
        // The client that made the builder sends it (it may be the one without redirects).
        let (client, request) = request.build_split();
        let request = request.map_err(|e| HttpError::Client(error_chain(&e)))?;
        let url = redact_url(request.url().as_str());
        let (method, path) = (request.method().clone(), request.url().path().to_string());
        let began = std::time::Instant::now();
        let result = client.execute(request).await;
        if let Some(CallLog(log)) = &self.log {
            let outcome = match &result {
                Ok(r) => r.status().as_u16().to_string(),
                Err(_) => "no answer".to_string(),
            };
            log.note(&format!(
                "http {method} {path} -> {outcome} ({} ms)",
                began.elapsed().as_millis()
            ));
        }
        result.map_err(|e| request_error(&url, e))
    }

    /// Sends a request and returns the response when its status is 2xx; otherwise
    /// [`HttpError::Status`] with the start of the body (servers explain errors there).
    pub(crate) async fn send_ok(&self, request: RequestBuilder) -> Result<Response, HttpError> {
        let response = self.send(request).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(status_error(response).await)
        }
    }

    /// GETs a small text resource (feed, sidecar, API answer) with the whole-request timeout.
    pub(crate) async fn get_text(&self, url: &str) -> Result<String, HttpError> {
        let request = self
            .request(Method::GET, url)?
            .timeout(self.settings.request_timeout);
        let response = self.send_ok(request).await?;
        read_text(response, MAX_TEXT_BODY).await
    }

    /// Reads a text resource named by the operator: an `http(s)://` URL, a `file://` URL,
    /// or a local path (air-gapped mirrors, sidecar files).
    pub(crate) async fn get_text_or_file(&self, location: &str) -> Result<String, HttpError> {
        match location_path(location) {
            Some(path) => tokio::fs::read_to_string(&path)
                .await
                .map_err(|source| HttpError::File { path, source }),
            None => self.get_text(location).await,
        }
    }
}

/// `Some(path)` when `location` names a local file (plain path or `file://` URL).
pub(crate) fn location_path(location: &str) -> Option<PathBuf> {
    if let Some(rest) = location.strip_prefix("file://") {
        return Url::parse(location)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .or_else(|| Some(PathBuf::from(rest)));
    }
    // "C:\x" parses as a URL with scheme "c"; only real schemes count as URLs.
    match location.split_once("://") {
        Some((scheme, _)) if scheme.len() > 1 => None,
        _ => Some(PathBuf::from(location)),
    }
}

/// Rejects anything but https, and http to a non-loopback host unless allowed.
pub(crate) fn check_url_policy(url: &Url, allow_plain_http: bool) -> Result<(), HttpError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_plain_http || is_loopback(url) => Ok(()),
        "http" => Err(HttpError::PlainHttpRefused {
            url: redact_url(url.as_str()),
        }),
        other => Err(HttpError::BadUrl {
            url: redact_url(url.as_str()),
            reason: format!("scheme {other:?} is not supported (use https://)"),
        }),
    }
}

/// 127.0.0.0/8, ::1 and `localhost`.
pub(crate) fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// A URL fit for messages and logs: any `user:password@` is replaced by `***@`.
pub(crate) fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("***");
            let _ = u.set_password(None);
            u.to_string()
        }
        Ok(_) => url.to_string(),
        // Unparseable: keep only what cannot hold credentials.
        Err(_) => match url.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_string(),
        },
    }
}

/// An error and its causes on one line (reqwest's own message often hides the cause).
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Maps a transport error; `url` is already redacted.
pub(crate) fn request_error(url: &str, e: reqwest::Error) -> HttpError {
    let retryable =
        e.is_timeout() || e.is_connect() || e.is_body() || e.is_decode() || e.is_request();
    let e = e.without_url();
    HttpError::Request {
        url: url.to_string(),
        reason: error_chain(&e),
        retryable: retryable && !e.is_redirect() && !e.is_builder(),
    }
}

/// A failure while reading a response body: always a transport problem, so retryable.
pub(crate) fn body_read_error(url: &str, e: reqwest::Error) -> HttpError {
    HttpError::Request {
        url: url.to_string(),
        reason: error_chain(&e.without_url()),
        retryable: true,
    }
}

/// A non-2xx answer as an error, with the first line(s) of its body.
pub(crate) async fn status_error(response: Response) -> HttpError {
    let url = redact_url(response.url().as_str());
    let status = response.status();
    let body = read_text(response, 4096)
        .await
        .map(|t| t.chars().take(300).collect::<String>().trim().to_string())
        .unwrap_or_default();
    HttpError::Status {
        url,
        status: status.as_u16(),
        body: if body.is_empty() {
            status.canonical_reason().unwrap_or("").to_string()
        } else {
            body
        },
    }
}

/// Reads a body as text, refusing more than `limit` bytes (chunk by chunk, so an
/// oversized answer never sits in memory whole).
pub(crate) async fn read_text(mut response: Response, limit: usize) -> Result<String, HttpError> {
    let url = redact_url(response.url().as_str());
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(HttpError::TooLarge { url, limit });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| body_read_error(&url, e))?
    {
        if body.len() + chunk.len() > limit {
            return Err(HttpError::TooLarge { url, limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn read_ca_bundle(path: &Path) -> Result<Vec<reqwest::Certificate>, HttpError> {
    let bad = |reason: String| HttpError::CaBundle {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(error_chain(&e)))?;
    if certs.is_empty() {
        return Err(bad("it holds no PEM certificate".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(allow_plain_http: bool) -> HttpClient {
        HttpClient::new(NetworkSettings {
            allow_plain_http,
            ..NetworkSettings::default()
        })
        .unwrap()
    }

    #[test]
    fn plain_http_is_refused_for_remote_hosts_and_names_the_setting() {
        let c = client(false);
        for url in [
            "http://download.octopusdeploy.com/octopus/x.msi",
            "http://10.0.0.5/x",
            "http://[fe80::1]/x",
        ] {
            let err = c.check_url(url).unwrap_err();
            assert!(matches!(err, HttpError::PlainHttpRefused { .. }), "{url}");
            let msg = err.to_string();
            assert!(msg.contains(url.split('/').nth(2).unwrap()), "{msg}");
            assert!(msg.contains("allow_plain_http"), "{msg}");
        }
    }

    #[test]
    fn plain_http_is_fine_for_loopback_or_when_allowed() {
        let c = client(false);
        for url in [
            "http://127.0.0.1:41000/x",
            "http://127.8.9.10/x",
            "http://localhost:1/x",
            "http://LOCALHOST/x",
            "http://[::1]:8080/x",
            "https://example.com/x",
        ] {
            c.check_url(url).unwrap();
        }
        client(true).check_url("http://mirror.corp/x").unwrap();
    }

    #[test]
    fn other_schemes_and_garbage_are_refused() {
        let c = client(true);
        assert!(matches!(
            c.check_url("ftp://example.com/x"),
            Err(HttpError::BadUrl { .. })
        ));
        assert!(matches!(
            c.check_url("not a url"),
            Err(HttpError::BadUrl { .. })
        ));
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact_url("http://user:s3cret@proxy.corp:3128/"),
            "http://***@proxy.corp:3128/"
        );
        assert_eq!(redact_url("https://a.b/c"), "https://a.b/c");
        assert!(!redact_url("::bad:pw@host").contains("pw"));
    }

    #[test]
    fn bad_proxy_and_ca_bundle_are_explained() {
        let err = HttpClient::new(NetworkSettings {
            proxy: Some("http://user:pw@[bad".into()),
            ..NetworkSettings::default()
        })
        .unwrap_err();
        assert!(matches!(err, HttpError::Proxy { .. }), "{err}");
        assert!(!err.to_string().contains("pw"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, "not a certificate").unwrap();
        let err = HttpClient::new(NetworkSettings {
            ca_bundle: Some(pem),
            ..NetworkSettings::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("ca_bundle"), "{err}");
    }

    #[test]
    fn locations_are_files_or_urls() {
        assert_eq!(location_path("https://a/b"), None);
        assert_eq!(location_path("http://a/b"), None);
        assert_eq!(location_path("sums.txt"), Some(PathBuf::from("sums.txt")));
        assert_eq!(
            location_path(r"C:\octoup\sums.txt"),
            Some(PathBuf::from(r"C:\octoup\sums.txt"))
        );
        assert!(location_path("file:///tmp/x").is_some());
    }
}
