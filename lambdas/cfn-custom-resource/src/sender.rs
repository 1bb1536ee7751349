//! The single PUT of the response document to the presigned `ResponseURL`.

use std::sync::Once;
use std::time::Duration;

use tokio::time::Instant;

use crate::response::ResponseDocument;

/// How often and how patiently the PUT is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in total, including the first.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles after each failure.
    pub initial_backoff: Duration,
    /// Upper bound for one wait.
    pub max_backoff: Duration,
    /// Upper bound for one attempt (connect + send + response headers).
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts over roughly four seconds of back-off: enough to ride out a blip
    /// in S3 or the NAT, short enough to finish well inside the deadline margin.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the response could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The URL is not http(s) or cannot be parsed.
    #[error("ResponseURL is not a valid http(s) URL")]
    InvalidUrl,
    /// The endpoint answered with a status that retrying cannot fix (for example 403).
    #[error("ResponseURL answered HTTP {0}")]
    Rejected(u16),
    /// Every attempt failed, or the time ran out.
    #[error("gave up after {attempts} attempt(s): {last_error}")]
    GaveUp {
        /// Attempts made.
        attempts: u32,
        /// The last failure, without the URL (it carries a presigned signature).
        last_error: String,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client could not be built: {0}")]
    Client(String),
}

/// Sends response documents; cheap to clone.
#[derive(Debug, Clone)]
pub struct ResponseSender {
    client: reqwest::Client,
    policy: RetryPolicy,
}

impl ResponseSender {
    /// A sender with its own HTTP client.
    pub fn new(policy: RetryPolicy) -> Result<Self, SendError> {
        install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(policy.attempt_timeout)
            .connect_timeout(policy.attempt_timeout.min(Duration::from_secs(3)))
            .build()
            .map_err(|e| SendError::Client(e.without_url().to_string()))?;
        Ok(Self { client, policy })
    }

    /// The retry policy in force.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// PUTs `document` to `url`, retrying transient failures with exponential back-off
    /// until `max_attempts` or `give_up_at`, whichever comes first.
    pub async fn send(
        &self,
        url: &str,
        document: &ResponseDocument,
        give_up_at: Instant,
    ) -> Result<(), SendError> {
        let url = parse_http_url(url)?;
        let body = document.to_body();
        let mut backoff = self.policy.initial_backoff;
        let mut last_error = String::from("no attempt made");
        for attempt in 1..=self.policy.max_attempts {
            match self.put_once(url.clone(), body.clone()).await {
                Ok(()) => {
                    tracing::info!(attempt, status = ?document.status, "response delivered to CloudFormation");
                    return Ok(());
                }
                Err(AttemptError::Permanent(code)) => {
                    tracing::error!(
                        attempt,
                        http_status = code,
                        "ResponseURL rejected the response"
                    );
                    return Err(SendError::Rejected(code));
                }
                Err(AttemptError::Transient(reason)) => {
                    tracing::warn!(attempt, error = %reason, "response PUT failed; will retry if time allows");
                    last_error = reason;
                }
            }
            let last = attempt == self.policy.max_attempts;
            if last || Instant::now() + backoff >= give_up_at {
                return Err(SendError::GaveUp {
                    attempts: attempt,
                    last_error,
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.policy.max_backoff);
        }
        Err(SendError::GaveUp {
            attempts: self.policy.max_attempts,
            last_error,
        })
    }

    async fn put_once(&self, url: reqwest::Url, body: Vec<u8>) -> Result<(), AttemptError> {
        let length = body.len();
        // The presigned S3 URL is signed with an empty content type: any other value
        // (reqwest adds none for a raw body, but be explicit) gives 403
        // SignatureDoesNotMatch. Content-Length is required by S3.
        let result = self
            .client
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "")
            .header(reqwest::header::CONTENT_LENGTH, length)
            .body(body)
            .send()
            .await;
        let response = result.map_err(|e| AttemptError::Transient(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            Err(AttemptError::Transient(format!("HTTP {}", status.as_u16())))
        } else {
            Err(AttemptError::Permanent(status.as_u16()))
        }
    }
}

enum AttemptError {
    Transient(String),
    Permanent(u16),
}

fn parse_http_url(raw: &str) -> Result<reqwest::Url, SendError> {
    let url = reqwest::Url::parse(raw).map_err(|_| SendError::InvalidUrl)?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(url),
        _ => Err(SendError::InvalidUrl),
    }
}

/// reqwest is built without a bundled crypto provider (the AWS SDK already links
/// aws-lc-rs); rustls needs a process-wide default installed once.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only means another component installed one first, which is fine.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Envelope;
    use crate::testing::CaptureServer;
    use std::collections::BTreeMap;

    fn document() -> ResponseDocument {
        let envelope = Envelope {
            stack_id: Some("stack".into()),
            request_id: Some("req".into()),
            logical_resource_id: Some("L".into()),
            ..Envelope::default()
        };
        ResponseDocument::success(&envelope, "pid".into(), BTreeMap::new())
    }

    fn quick_policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
            attempt_timeout: Duration::from_secs(2),
        }
    }

    fn far_future() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    #[tokio::test]
    async fn put_has_an_empty_content_type_and_a_content_length() {
        let server = CaptureServer::start(vec![]);
        let sender = ResponseSender::new(quick_policy()).unwrap();
        sender
            .send(&server.url("/resp?sig=1"), &document(), far_future())
            .await
            .unwrap();
        let request = server.wait_for(1, Duration::from_secs(5)).remove(0);
        assert_eq!(request.method, "PUT");
        assert_eq!(request.path, "/resp?sig=1");
        assert_eq!(request.header("content-type"), Some(""));
        assert_eq!(
            request.header("content-length"),
            Some(request.body.len().to_string().as_str())
        );
        assert_eq!(request.json()["Status"], "SUCCESS");
    }

    #[tokio::test]
    async fn transient_failures_are_retried() {
        let server = CaptureServer::start(vec![500, 503]);
        let sender = ResponseSender::new(quick_policy()).unwrap();
        sender
            .send(&server.url("/r"), &document(), far_future())
            .await
            .unwrap();
        assert_eq!(server.wait_for(3, Duration::from_secs(5)).len(), 3);
    }

    #[tokio::test]
    async fn a_403_is_not_retried() {
        let server = CaptureServer::start(vec![403]);
        let sender = ResponseSender::new(quick_policy()).unwrap();
        let err = sender
            .send(&server.url("/r"), &document(), far_future())
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Rejected(403)));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn unreachable_url_gives_up_after_bounded_attempts() {
        let url = crate::testing::unreachable_url();
        let sender = ResponseSender::new(quick_policy()).unwrap();
        let started = std::time::Instant::now();
        let err = sender
            .send(&url, &document(), far_future())
            .await
            .unwrap_err();
        assert!(
            matches!(err, SendError::GaveUp { attempts: 3, .. }),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn invalid_urls_are_refused_without_a_request() {
        let sender = ResponseSender::new(quick_policy()).unwrap();
        for url in ["not a url", "file:///etc/passwd", "ftp://x/y"] {
            let err = sender
                .send(url, &document(), far_future())
                .await
                .unwrap_err();
            assert!(matches!(err, SendError::InvalidUrl));
        }
    }
}
