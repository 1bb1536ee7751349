//! Alert and recovery notices and how each target renders them: a Slack incoming
//! webhook (JSON `{"text": …}`) and an SNS topic (subject + plain-text message).

use async_trait::async_trait;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::ports::{Notifier, PortError};

/// What happened to a DAG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// It turned failed.
    Failed,
    /// It succeeded again after failing.
    Recovered,
}

/// One notice about one DAG run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Failure or recovery.
    pub kind: Kind,
    /// The stack, so several deployments can share a channel.
    pub stack: String,
    /// The DAG.
    pub dag_id: String,
    /// The run that caused the notice.
    pub run_id: String,
    /// Failed task ids (failures only; empty if they could not be listed).
    pub failed_tasks: Vec<String>,
    /// Link to the run in the Airflow UI.
    pub url: String,
    /// When the run ended.
    pub end_date: String,
}

/// Characters left as they are in a URL path segment (RFC 3986 unreserved).
pub(crate) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `<base>/dags/<dag_id>/runs/<run_id>` with both ids encoded as path segments (run ids
/// such as `manual__2025-01-01T00:00:00+00:00` contain `:` and `+`).
pub fn run_url(base: &str, dag_id: &str, run_id: &str) -> String {
    format!(
        "{}/dags/{}/runs/{}",
        base.trim_end_matches('/'),
        utf8_percent_encode(dag_id, SEGMENT),
        utf8_percent_encode(run_id, SEGMENT)
    )
}

impl Notice {
    /// One-line headline.
    pub fn headline(&self) -> String {
        match self.kind {
            Kind::Failed => format!("[{}] DAG {} failed", self.stack, self.dag_id),
            Kind::Recovered => format!("[{}] DAG {} recovered", self.stack, self.dag_id),
        }
    }

    /// Lines of detail: run, failed tasks, link.
    fn details(&self) -> Vec<String> {
        let mut lines = vec![format!("Run: {} (ended {})", self.run_id, self.end_date)];
        if self.kind == Kind::Failed {
            let tasks = if self.failed_tasks.is_empty() {
                "(none listed)".to_string()
            } else {
                self.failed_tasks.join(", ")
            };
            lines.push(format!("Failed tasks: {tasks}"));
        }
        lines.push(format!("Open: {}", self.url));
        lines
    }

    /// The Slack webhook body.
    pub fn slack_payload(&self) -> serde_json::Value {
        let icon = match self.kind {
            Kind::Failed => ":red_circle:",
            Kind::Recovered => ":large_green_circle:",
        };
        let text = format!(
            "{icon} *{}*\n{}",
            self.headline(),
            self.details().join("\n")
        );
        serde_json::json!({ "text": text })
    }

    /// SNS subject: ASCII, at most 100 characters (SNS's limits).
    pub fn sns_subject(&self) -> String {
        let ascii: String = self
            .headline()
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        ascii.chars().take(100).collect()
    }

    /// SNS message body.
    pub fn sns_message(&self) -> String {
        format!("{}\n\n{}\n", self.headline(), self.details().join("\n"))
    }
}

/// A Slack incoming webhook. The URL is a credential: it is never logged and never
/// appears in errors.
pub struct SlackWebhook {
    client: reqwest::Client,
    url: String,
}

impl SlackWebhook {
    /// A webhook client posting to `url`.
    pub fn new(client: reqwest::Client, url: String) -> SlackWebhook {
        SlackWebhook { client, url }
    }
}

#[async_trait]
impl Notifier for SlackWebhook {
    fn name(&self) -> &'static str {
        "slack"
    }

    async fn send(&self, notice: &Notice) -> Result<(), PortError> {
        let body = serde_json::to_vec(&notice.slack_payload()).expect("JSON values serialise");
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            // without_url: reqwest errors would otherwise print the webhook URL.
            .map_err(|e| PortError(format!("Slack webhook: {}", e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(PortError(format!("Slack webhook answered HTTP {status}")))
        }
    }
}
