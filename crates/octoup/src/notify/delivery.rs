//! Sending one payload to one webhook: retries with exponential backoff, all of it inside
//! one bound. What fails is described without the URL (it is the credential).

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::Method;
use serde_json::Value;

use crate::config::Secret;
use crate::octopus::http::{HttpClient, error_chain, is_retryable_status};

/// One attempt's failure; `retry` says whether another attempt may help.
#[derive(Debug)]
struct Attempt {
    reason: String,
    retry: bool,
}

/// Posts `body` to `url` until it is accepted (2xx), a refusal that no retry changes (a
/// 4xx other than 408/429), or `bound` has passed. `Err` says why, without the URL.
pub(crate) async fn deliver(
    http: &HttpClient,
    url: &Secret,
    body: &Value,
    bound: Duration,
) -> Result<(), String> {
    let attempt = || async {
        let request = http
            .request_no_redirect(Method::POST, url.expose())
            .map_err(|e| Attempt {
                reason: if e.is_config() {
                    "the URL is refused: it must be https:// (plain http:// only for a loopback host, or with [network] allow_plain_http)".into()
                } else {
                    "the URL cannot be used".into()
                },
                retry: false,
            })?
            .json(body)
            .timeout(bound);
        let response = request.send().await.map_err(|e| Attempt {
            reason: if e.is_timeout() {
                "no answer in time".into()
            } else {
                format!("no answer: {}", error_chain(&e.without_url()))
            },
            retry: true,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(Attempt {
            reason: format!("answered HTTP {}", status.as_u16()),
            retry: is_retryable_status(status.as_u16()),
        })
    };
    let policy = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(5)
        .with_jitter();
    // Why the attempts so far failed, for the message when the bound cuts them off.
    let failed = std::sync::Mutex::new((0u32, String::new()));
    let retried = attempt
        .retry(policy)
        .when(|e: &Attempt| e.retry)
        .notify(|e: &Attempt, _| {
            let mut failed = failed.lock().expect("attempts lock");
            failed.0 += 1;
            failed.1 = e.reason.clone();
        });
    match tokio::time::timeout(bound, retried).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.reason),
        Err(_) => {
            let (failures, last) = failed.lock().expect("attempts lock").clone();
            Err(match failures {
                0 => format!("no answer within {} s", bound.as_secs_f64()),
                n => format!(
                    "gave up after {} s and {} attempts; the last one: {last}",
                    bound.as_secs_f64(),
                    n + 1
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::octopus::http::NetworkSettings;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    async fn post_to(server: &MockServer, bound: Duration) -> Result<(), String> {
        let http = HttpClient::new(NetworkSettings::default()).unwrap();
        let url = Secret::new(format!("{}/hook/SECRET", server.uri()));
        deliver(&http, &url, &serde_json::json!({"a": 1}), bound).await
    }

    #[tokio::test]
    async fn a_server_error_is_retried_until_accepted() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hook/SECRET"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(2)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        assert_eq!(post_to(&server, Duration::from_secs(10)).await, Ok(()));
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_refusal_is_final_and_names_no_url() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(404))
            .mount(&server)
            .await;
        let err = post_to(&server, Duration::from_secs(10)).await.unwrap_err();
        assert_eq!(err, "answered HTTP 404");
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_bound_cuts_retries_off_and_says_why_they_failed() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500))
            .mount(&server)
            .await;
        let began = std::time::Instant::now();
        let err = post_to(&server, Duration::from_secs(1)).await.unwrap_err();
        assert!(
            began.elapsed() < Duration::from_millis(1500),
            "{:?}",
            began.elapsed()
        );
        assert!(err.contains("the last one: answered HTTP 500"), "{err}");
        assert!(!err.contains("SECRET"), "{err}");
    }
}
