//! Alert and recovery notices and how each target renders them: a Slack incoming
//! webhook (JSON `{"text": …}`) and an SNS topic (subject + plain-text message).
//!
//! Everything in a notice but its fixed words comes from users (DAG, run and task ids,
//! the stack name), so the Slack text escapes `&`, `<` and `>`, the characters Slack
//! parses as control sequences (links, `<!channel>` mentions): Slack's "Formatting text
//! for app surfaces", section "Escaping text", asks for exactly these three as HTML
//! entities and no others.

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

    /// The Slack webhook body: the headline in bold, the details below, every piece of
    /// text escaped ([`slack_escape`]) so ids cannot form links or mentions.
    pub fn slack_payload(&self) -> serde_json::Value {
        let icon = match self.kind {
            Kind::Failed => ":red_circle:",
            Kind::Recovered => ":large_green_circle:",
        };
        let text = format!(
            "{icon} *{}*\n{}",
            slack_escape(&self.headline()),
            slack_escape(&self.details().join("\n"))
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

/// `&`, `<` and `>` as the HTML entities Slack expects; nothing else is touched
/// (Slack would show other entities literally).
pub fn slack_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The only host incoming webhooks live on.
const SLACK_WEBHOOK_HOST: &str = "hooks.slack.com";

/// Whether `url` is a Slack incoming webhook: `https://hooks.slack.com/…`, with no user
/// info or port that could send the request elsewhere.
pub fn is_slack_webhook_url(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    parsed.scheme() == "https"
        && parsed.host_str() == Some(SLACK_WEBHOOK_HOST)
        && parsed.port().is_none()
        && parsed.username().is_empty()
        && parsed.password().is_none()
        && parsed.path().len() > 1
}

/// A Slack incoming webhook. The URL is a credential: it is never logged and never
/// appears in errors.
pub struct SlackWebhook {
    client: reqwest::Client,
    url: String,
}

impl SlackWebhook {
    /// A webhook client for the URL held by the secret `secret_arn`, if it is a Slack
    /// webhook URL ([`is_slack_webhook_url`]; surrounding whitespace, which pasting
    /// often adds, is ignored). The error names the secret, never its value. `client`
    /// should be [`crate::http::client`], which does not follow redirects.
    pub fn from_secret(
        client: reqwest::Client,
        secret_arn: &str,
        value: &str,
    ) -> Result<SlackWebhook, PortError> {
        let url = value.trim();
        if url.is_empty() {
            return Err(PortError(format!(
                "the Slack webhook secret {secret_arn} is empty: put the webhook URL in it"
            )));
        }
        if !is_slack_webhook_url(url) {
            return Err(PortError(format!(
                "the Slack webhook secret {secret_arn} does not hold an https://{SLACK_WEBHOOK_HOST}/ URL"
            )));
        }
        Ok(SlackWebhook {
            client,
            url: url.to_string(),
        })
    }

    /// A webhook client posting to `url` as given, without the host check: for tests
    /// against a local server. Production code uses [`SlackWebhook::from_secret`].
    pub fn unchecked(client: reqwest::Client, url: String) -> SlackWebhook {
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
