//! The watchdog's notices and their targets: a Slack incoming webhook and an SNS topic.
//! The webhook checks and the escaping are the scaler's ([`airflow_scaler::notify`]).

use airflow_scaler::notify::{is_slack_webhook_url, slack_escape};
use async_trait::async_trait;

use crate::ports::{Notifier, PortError};

/// What happened to a stream's chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Its heartbeat went stale: the chain broke; the watchdog restarted it.
    Stale,
    /// Its heartbeat is fresh again.
    Recovered,
}

/// One notice about one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Stale or recovered.
    pub kind: Kind,
    /// The stack, so several deployments can share a channel.
    pub stack: String,
    /// The stream.
    pub stream: String,
    /// Seconds since the last heartbeat.
    pub heartbeat_age_seconds: i64,
    /// The Airflow UI, if known.
    pub ui_base_url: Option<String>,
}

impl Notice {
    /// One-line headline.
    pub fn headline(&self) -> String {
        match self.kind {
            Kind::Stale => format!("[{}] event stream {} stopped", self.stack, self.stream),
            Kind::Recovered => format!("[{}] event stream {} recovered", self.stack, self.stream),
        }
    }

    fn details(&self) -> Vec<String> {
        let mut lines = vec![match self.kind {
            Kind::Stale => format!(
                "No heartbeat for {} s: the connection manager's chain broke. A new chain was started; events the stream sent meanwhile are read again only if it resumes by Last-Event-ID.",
                self.heartbeat_age_seconds
            ),
            Kind::Recovered => "The connection manager is reading again.".to_owned(),
        }];
        if let Some(url) = &self.ui_base_url {
            lines.push(format!("Airflow: {url}"));
        }
        lines
    }

    /// The Slack webhook body, every piece of text escaped.
    pub fn slack_payload(&self) -> serde_json::Value {
        let icon = match self.kind {
            Kind::Stale => ":red_circle:",
            Kind::Recovered => ":large_green_circle:",
        };
        let text = format!(
            "{icon} *{}*\n{}",
            slack_escape(&self.headline()),
            slack_escape(&self.details().join("\n"))
        );
        serde_json::json!({ "text": text })
    }

    /// SNS subject: printable ASCII, at most 100 characters (SNS's limits).
    pub fn sns_subject(&self) -> String {
        self.headline()
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    '?'
                }
            })
            .take(100)
            .collect()
    }

    /// SNS message body.
    pub fn sns_message(&self) -> String {
        format!("{}\n\n{}\n", self.headline(), self.details().join("\n"))
    }
}

/// A Slack incoming webhook. The URL is a credential: never logged, never in errors.
pub struct SlackWebhook {
    client: reqwest::Client,
    url: String,
}

impl SlackWebhook {
    /// The webhook in the secret `secret_arn`, if it is an `https://hooks.slack.com/`
    /// URL. The error names the secret, never its value.
    pub fn from_secret(
        client: reqwest::Client,
        secret_arn: &str,
        value: &str,
    ) -> Result<SlackWebhook, PortError> {
        let url = value.trim();
        if !is_slack_webhook_url(url) {
            return Err(PortError(format!(
                "the Slack webhook secret {secret_arn} does not hold an https://hooks.slack.com/ URL"
            )));
        }
        Ok(SlackWebhook::unchecked(client, url.to_owned()))
    }

    /// A webhook posting to `url` as given (tests against a local server).
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
        let response = self
            .client
            .post(&self.url)
            .json(&notice.slack_payload())
            .send()
            .await
            // without_url: the URL is the credential.
            .map_err(|e| PortError(format!("Slack webhook: {}", e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(PortError(format!("Slack webhook answered HTTP {status}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_escaped_and_subjects_ascii() {
        let notice = Notice {
            kind: Kind::Stale,
            stack: "dev<!channel>".into(),
            stream: "orders".into(),
            heartbeat_age_seconds: 301,
            ui_base_url: Some("https://airflow.example".into()),
        };
        let text = notice.slack_payload()["text"].as_str().unwrap().to_owned();
        assert!(text.contains("dev&lt;!channel&gt;") && text.contains("301 s"));
        assert_eq!(
            notice.sns_subject(),
            "[dev<!channel>] event stream orders stopped"
        );
        assert!(notice.sns_message().contains("https://airflow.example"));
    }
}
