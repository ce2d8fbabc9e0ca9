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
