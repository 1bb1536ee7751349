//! Always answer CloudFormation: the deadline guard and the panic guard.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::time::Instant;

use crate::physical_id::stable_physical_id;
use crate::request::{CustomResourceRequest, Envelope};
use crate::response::ResponseDocument;
use crate::sender::{ResponseSender, SendError};

/// How the guard behaves.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// FAILED is sent this long before the Lambda deadline if the handler is still
    /// running, leaving time for the PUT (and its retries) to get through.
    pub safety_margin: Duration,
    /// CloudWatch log stream of this invocation, quoted in every `Reason` so people
    /// can find the details.
    pub log_stream: String,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            safety_margin: Duration::from_secs(5),
            log_stream: String::new(),
        }
    }
}

/// What a successful handler returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandlerOutput {
    /// Attributes for `Fn::GetAtt`. Never put secret values here.
    pub data: BTreeMap<String, String>,
}

/// What the guard did with one event.
#[derive(Debug)]
pub enum GuardOutcome {
    /// The response was delivered.
    Answered(ResponseDocument),
    /// The event has no usable `ResponseURL`; nobody can be answered.
    NoResponseUrl,
    /// The response could not be delivered (after bounded retries).
    NotDelivered(ResponseDocument, SendError),
}

/// Validates `event`, runs `handler` on it under a deadline and a panic guard, and PUTs
/// exactly one response to its `ResponseURL`.
///
/// - Malformed requests are answered FAILED without running the handler.
/// - A handler error is answered FAILED with the error's message (which must therefore
///   never contain secret values) and the log stream.
/// - A panicking handler is answered FAILED: it runs in its own task, whose `JoinError`
///   is caught.
/// - A handler still running `safety_margin` before `deadline` is aborted and answered
///   FAILED.
pub async fn respond_guarded<H, Fut, E>(
    event: Value,
    deadline: SystemTime,
    config: &GuardConfig,
    sender: &ResponseSender,
    handler: H,
) -> GuardOutcome
where
    H: FnOnce(CustomResourceRequest) -> Fut,
    Fut: Future<Output = Result<HandlerOutput, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let envelope = Envelope::from_event(&event);
    let Some(response_url) = envelope.response_url.clone() else {
        tracing::error!("event has no ResponseURL; CloudFormation cannot be answered");
        return GuardOutcome::NoResponseUrl;
    };
    let hard_deadline = instant_for(deadline);
    let physical_id = physical_id_for(&envelope);
    let document = match CustomResourceRequest::from_event(&event) {
        Err(error) => {
            tracing::error!(%error, "rejecting malformed custom-resource request");
            failed(&envelope, physical_id, &error, config)
        }
        Ok(request) => {
            log_request(&request);
            run_handler(
                request,
                &envelope,
                physical_id,
                hard_deadline,
                config,
                handler,
            )
            .await
        }
    };
    // The PUT may use the time up to the real deadline, including the safety margin.
    match sender.send(&response_url, &document, hard_deadline).await {
        Ok(()) => GuardOutcome::Answered(document),
        Err(error) => {
            tracing::error!(%error, "could not deliver the response to CloudFormation");
            GuardOutcome::NotDelivered(document, error)
        }
    }
}

/// Runs the handler in its own task, bounded by the deadline minus the safety margin.
async fn run_handler<H, Fut, E>(
    request: CustomResourceRequest,
    envelope: &Envelope,
    physical_id: String,
    hard_deadline: Instant,
    config: &GuardConfig,
    handler: H,
) -> ResponseDocument
where
    H: FnOnce(CustomResourceRequest) -> Fut,
    Fut: Future<Output = Result<HandlerOutput, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let Some(work_deadline) = hard_deadline.checked_sub(config.safety_margin) else {
        return failed(
            envelope,
            physical_id,
            &"not enough time left before the Lambda deadline",
            config,
        );
    };
    if Instant::now() >= work_deadline {
        tracing::error!("deadline too close to start the work");
        return failed(
            envelope,
            physical_id,
            &"not enough time left before the Lambda deadline",
            config,
        );
    }
    let mut task = tokio::spawn(handler(request));
    match tokio::time::timeout_at(work_deadline, &mut task).await {
        Ok(Ok(Ok(output))) => {
            tracing::info!("handler succeeded");
            ResponseDocument::success(envelope, physical_id, output.data)
        }
        Ok(Ok(Err(error))) => {
            tracing::error!(%error, "handler failed");
            failed(envelope, physical_id, &error, config)
        }
        Ok(Err(join_error)) => {
            // The panic message itself goes to stderr through the panic hook; the
            // Reason stays generic.
            tracing::error!(
                panicked = join_error.is_panic(),
                "handler task did not finish"
            );
            failed(
                envelope,
                physical_id,
                &"internal error in the custom resource handler",
                config,
            )
        }
        Err(_elapsed) => {
            task.abort();
            tracing::error!("handler still running near the Lambda deadline; answering FAILED");
            failed(
                envelope,
                physical_id,
                &"timed out before the Lambda deadline",
                config,
            )
        }
    }
}

/// Update and Delete echo the id CloudFormation holds (a new one would mean
/// replacement); Create, and anything unparseable, gets the stable derived id.
/// Public so Lambdas with their own guard (the migration's hand-over) answer alike.
pub fn physical_id_for(envelope: &Envelope) -> String {
    let echoes = matches!(envelope.request_type.as_deref(), Some("Update" | "Delete"));
    match (&envelope.physical_resource_id, echoes) {
        (Some(id), true) if !id.is_empty() => id.clone(),
        _ => stable_physical_id(
            envelope.stack_id.as_deref().unwrap_or_default(),
            envelope.logical_resource_id.as_deref().unwrap_or("Unknown"),
        ),
    }
}

fn failed(
    envelope: &Envelope,
    physical_id: String,
    why: &dyn Display,
    config: &GuardConfig,
) -> ResponseDocument {
    let reason = if config.log_stream.is_empty() {
        why.to_string()
    } else {
        format!("{why} (see CloudWatch log stream {})", config.log_stream)
    };
    ResponseDocument::failed(envelope, physical_id, &reason)
}

fn log_request(request: &CustomResourceRequest) {
    tracing::info!(
        request_type = ?request.request_type,
        resource_type = %request.resource_type,
        logical_resource_id = %request.logical_resource_id,
        request_id = %request.request_id,
        "custom-resource request received"
    );
}

/// Converts the Lambda's wall-clock deadline into a monotonic instant.
pub fn instant_for(deadline: SystemTime) -> Instant {
    let remaining = deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + remaining
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sender::RetryPolicy;
    use crate::testing::CaptureServer;
    use serde_json::json;

    fn sender() -> ResponseSender {
        ResponseSender::new(RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
            attempt_timeout: Duration::from_secs(2),
        })
        .unwrap()
    }

    fn config() -> GuardConfig {
        GuardConfig {
            safety_margin: Duration::from_millis(500),
            log_stream: "2026/01/01/[$LATEST]abc".into(),
        }
    }

    fn event(url: &str, request_type: &str) -> Value {
        json!({"RequestType": request_type, "ResponseURL": url, "StackId": "stack",
               "RequestId": "req", "ResourceType": "Custom::T", "LogicalResourceId": "L",
               "PhysicalResourceId": "echo-me", "ResourceProperties": {}})
    }

    fn in_secs(secs: u64) -> SystemTime {
        SystemTime::now() + Duration::from_secs(secs)
    }

    async fn ok_handler(_: CustomResourceRequest) -> Result<HandlerOutput, String> {
        Ok(HandlerOutput::default())
    }

    #[tokio::test]
    async fn success_is_answered_with_a_stable_id_on_create() {
        let server = CaptureServer::start(vec![]);
        let outcome = respond_guarded(
            event(&server.url("/"), "Create"),
            in_secs(30),
            &config(),
            &sender(),
            ok_handler,
        )
        .await;
        assert!(matches!(outcome, GuardOutcome::Answered(_)));
        let body = server.wait_for(1, Duration::from_secs(5))[0].json();
        assert_eq!(body["Status"], "SUCCESS");
        assert_eq!(body["PhysicalResourceId"], stable_physical_id("stack", "L"));
        assert_eq!(body["NoEcho"], true);
    }

    #[tokio::test]
    async fn update_echoes_the_physical_id() {
        let server = CaptureServer::start(vec![]);
        respond_guarded(
            event(&server.url("/"), "Update"),
            in_secs(30),
            &config(),
            &sender(),
            ok_handler,
        )
        .await;
        assert_eq!(
            server.wait_for(1, Duration::from_secs(5))[0].json()["PhysicalResourceId"],
            "echo-me"
        );
    }

    #[tokio::test]
    async fn handler_error_becomes_failed_with_the_log_stream() {
        let server = CaptureServer::start(vec![]);
        respond_guarded(
            event(&server.url("/"), "Create"),
            in_secs(30),
            &config(),
            &sender(),
            |_| async { Err::<HandlerOutput, _>("boom".to_string()) },
        )
        .await;
        let body = server.wait_for(1, Duration::from_secs(5))[0].json();
        assert_eq!(body["Status"], "FAILED");
        assert_eq!(
            body["Reason"],
            "boom (see CloudWatch log stream 2026/01/01/[$LATEST]abc)"
        );
    }

    #[tokio::test]
    async fn panics_are_answered() {
        let server = CaptureServer::start(vec![]);
        respond_guarded(
            event(&server.url("/"), "Create"),
            in_secs(30),
            &config(),
            &sender(),
            |_| async {
                if true {
                    panic!("handler bug");
                }
                Ok::<_, String>(HandlerOutput::default())
            },
        )
        .await;
        let body = server.wait_for(1, Duration::from_secs(5))[0].json();
        assert_eq!(body["Status"], "FAILED");
        assert!(body["Reason"]
            .as_str()
            .unwrap()
            .starts_with("internal error"));
    }

    #[tokio::test]
    async fn slow_handlers_are_cut_off_before_the_deadline() {
        let server = CaptureServer::start(vec![]);
        let started = std::time::Instant::now();
        respond_guarded(
            event(&server.url("/"), "Create"),
            in_secs(2),
            &config(),
            &sender(),
            |_| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, String>(HandlerOutput::default())
            },
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(3));
        let body = server.wait_for(1, Duration::from_secs(5))[0].json();
        assert_eq!(body["Status"], "FAILED");
        assert!(body["Reason"].as_str().unwrap().starts_with("timed out"));
    }

    #[tokio::test]
    async fn a_past_deadline_answers_at_once() {
        let server = CaptureServer::start(vec![]);
        respond_guarded(
            event(&server.url("/"), "Create"),
            SystemTime::now(),
            &config(),
            &sender(),
            ok_handler,
        )
        .await;
        let body = server.wait_for(1, Duration::from_secs(5))[0].json();
        assert_eq!(body["Status"], "FAILED");
        assert!(body["Reason"]
            .as_str()
            .unwrap()
            .starts_with("not enough time"));
    }

    #[tokio::test]
    async fn malformed_requests_are_answered_without_running_the_handler() {
        let server = CaptureServer::start(vec![]);
        let bad = event(&server.url("/"), "Explode");
        respond_guarded(bad, in_secs(30), &config(), &sender(), |_| async {
            panic!("must not run");
            #[allow(unreachable_code)]
            Ok::<_, String>(HandlerOutput::default())
        })
        .await;
        let body = server.wait_for(1, Duration::from_secs(5))[0].json();
        assert_eq!(body["Status"], "FAILED");
        assert!(body["Reason"].as_str().unwrap().contains("RequestType"));
    }

    #[tokio::test]
    async fn no_response_url_is_reported() {
        let mut bad = event("x", "Create");
        bad.as_object_mut().unwrap().remove("ResponseURL");
        let outcome = respond_guarded(bad, in_secs(30), &config(), &sender(), ok_handler).await;
        assert!(matches!(outcome, GuardOutcome::NoResponseUrl));
    }
}
