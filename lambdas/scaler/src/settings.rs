//! The function's configuration, from environment variables the template sets. None
//! of them is a secret: the admin password and the Slack webhook URL are read from
//! Secrets Manager by ARN at run time.

use chrono::Duration;

use crate::alerts::AlertSettings;
use crate::scaling::Limits;

/// Everything one tick needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `http://api-server.<namespace>:8080`.
    pub api_url: String,
    /// User the scaler logs in as.
    pub admin_username: String,
    /// Secret holding that user's password.
    pub admin_secret_arn: String,
    /// DynamoDB state table.
    pub state_table: String,
    /// Autoscaling, when on.
    pub scaling: Option<ScalingSettings>,
    /// Alerts, when on.
    pub alerts: Option<AlertTargets>,
}

/// Where and how to scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalingSettings {
    /// ECS cluster.
    pub cluster: String,
    /// The worker service.
    pub service: String,
    /// CloudWatch namespace.
    pub metric_namespace: String,
    /// `Stack` dimension value.
    pub stack: String,
    /// Formula limits.
    pub limits: Limits,
}

/// Where to alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertTargets {
    /// Stack name and UI link base.
    pub settings: AlertSettings,
    /// Secret holding the Slack incoming-webhook URL.
    pub slack_secret_arn: Option<String>,
    /// SNS topic.
    pub sns_topic_arn: Option<String>,
}

/// A missing or malformed variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("environment variable {name}: {problem}")]
pub struct SettingsError {
    /// The variable.
    pub name: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl Settings {
    /// Reads the settings through `var` (the process environment in production).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let required = |name: &'static str| {
            var(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| SettingsError {
                    name,
                    problem: "is not set".into(),
                })
        };
        let optional = |name: &str| var(name).filter(|v| !v.is_empty());
        let flag = |name: &str| optional(name).is_some_and(|v| v == "true");
        let number = |name: &'static str| -> Result<u32, SettingsError> {
            required(name)?.parse().map_err(|_| SettingsError {
                name,
                problem: "is not a whole number".into(),
            })
        };
        let stack = required("STACK_NAME")?;
        let scaling = if flag("AUTOSCALING_ENABLED") {
            Some(ScalingSettings {
                cluster: required("CLUSTER")?,
                service: required("WORKER_SERVICE")?,
                metric_namespace: required("METRIC_NAMESPACE")?,
                stack: stack.clone(),
                limits: Limits {
                    concurrency: number("WORKER_CONCURRENCY")?,
                    min: number("MIN_WORKERS")?,
                    max: number("MAX_WORKERS")?,
                    cooldown: Duration::minutes(i64::from(number("COOLDOWN_MINUTES")?)),
                },
            })
        } else {
            None
        };
        let alerts = if flag("ALERTS_ENABLED") {
            Some(AlertTargets {
                settings: AlertSettings::new(stack.clone(), required("UI_BASE_URL")?),
                slack_secret_arn: optional("SLACK_SECRET_ARN"),
                sns_topic_arn: optional("SNS_TOPIC_ARN"),
            })
        } else {
            None
        };
        Ok(Settings {
            api_url: required("AIRFLOW_API_URL")?,
            admin_username: optional("ADMIN_USERNAME").unwrap_or_else(|| "admin".into()),
            admin_secret_arn: required("ADMIN_SECRET_ARN")?,
            state_table: required("STATE_TABLE")?,
            scaling,
            alerts,
        })
    }
}
