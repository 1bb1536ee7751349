//! The function's configuration, from environment variables the template sets. None
//! of them is a secret: the scaler's Airflow password and the Slack webhook URL are read from
//! Secrets Manager by ARN at run time.

use airflow_stack_contract::scaler::ScalerSettings;
use chrono::Duration;

use crate::alerts::AlertSettings;
use crate::scaling::Limits;

/// Everything one tick needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `http://api-server.<namespace>:8080`.
    pub api_url: String,
    /// The scaler's own read-only Airflow user.
    pub api_username: String,
    /// Secret holding that user's password.
    pub api_password_secret_arn: String,
    /// DynamoDB state table.
    pub state_table: String,
    /// CloudWatch namespace of the metrics (`AirflowApiReadFailures` always).
    pub metric_namespace: String,
    /// `Stack` dimension value.
    pub stack: String,
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
    /// Formula limits.
    pub limits: Limits,
    /// The Celery queues the worker service consumes: only task instances on these
    /// count as load.
    pub queues: Vec<String>,
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

/// A missing or malformed variable (the contract reads the variables).
pub use airflow_stack_contract::scaler::SettingsError;

impl Settings {
    /// Reads the settings through `var` (the process environment in production). The
    /// variable names, which are required and how numbers and flags are written are the
    /// contract's (`airflow_stack_contract::scaler`), shared with the template.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let read = ScalerSettings::from_env(var)?;
        let scaling = read.autoscaling.map(|a| ScalingSettings {
            cluster: a.cluster,
            service: a.worker_service,
            limits: Limits {
                concurrency: a.worker_concurrency,
                min: a.min_workers,
                max: a.max_workers,
                cooldown: Duration::minutes(i64::from(a.cooldown_minutes)),
                drain: Duration::minutes(i64::from(a.drain_minutes)),
            },
            queues: a.worker_queues,
        });
        let alerts = read.alerts.map(|a| AlertTargets {
            settings: AlertSettings::new(read.stack_name.clone(), a.ui_base_url),
            slack_secret_arn: a.slack_secret_arn,
            sns_topic_arn: a.sns_topic_arn,
        });
        Ok(Settings {
            api_url: read.airflow_api_url,
            api_username: read.api_username,
            api_password_secret_arn: read.api_password_secret_arn,
            state_table: read.state_table,
            metric_namespace: read.metric_namespace,
            stack: read.stack_name,
            scaling,
            alerts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airflow_stack_contract::scaler::{metrics, Alerts, Autoscaling};

    /// What the template writes (through the contract), as the Lambda sees it.
    fn environment(
        autoscaling: bool,
        alerts: bool,
    ) -> std::collections::BTreeMap<&'static str, String> {
        ScalerSettings {
            airflow_api_url: "http://api-server.airflow.local:8080".to_owned(),
            api_username: "airflow-stack-scaler".into(),
            api_password_secret_arn: "arn:scaler".into(),
            stack_name: "airflow-dev".into(),
            state_table: "table".into(),
            metric_namespace: metrics::NAMESPACE.into(),
            autoscaling: autoscaling.then(|| Autoscaling {
                cluster: "cluster".into(),
                worker_service: "worker".into(),
                worker_concurrency: 8,
                min_workers: 1,
                max_workers: 4,
                cooldown_minutes: 10,
                drain_minutes: 12,
                worker_queues: vec!["default".into(), "heavy".into()],
            }),
            alerts: alerts.then(|| Alerts {
                ui_base_url: "https://airflow.example".into(),
                slack_secret_arn: None,
                sns_topic_arn: Some("arn:topic".into()),
            }),
        }
        .to_environment()
    }

    #[test]
    fn reads_what_the_template_writes() {
        let env = environment(true, true);
        let settings = Settings::from_vars(|name| env.get(name).cloned()).unwrap();
        assert_eq!(settings.stack, "airflow-dev");
        assert_eq!(settings.metric_namespace, metrics::NAMESPACE);
        let scaling = settings.scaling.unwrap();
        assert_eq!(scaling.service, "worker");
        assert_eq!(
            scaling.limits,
            Limits {
                concurrency: 8,
                min: 1,
                max: 4,
                cooldown: Duration::minutes(10),
                drain: Duration::minutes(12),
            }
        );
        assert_eq!(scaling.queues, ["default", "heavy"]);
        let alerts = settings.alerts.unwrap();
        assert_eq!(alerts.settings.stack, "airflow-dev");
        assert_eq!(alerts.sns_topic_arn.as_deref(), Some("arn:topic"));
        assert_eq!(settings.state_table, "table");
    }

    #[test]
    fn parts_that_are_off_stay_off() {
        let env = environment(false, false);
        let settings = Settings::from_vars(|name| env.get(name).cloned()).unwrap();
        assert_eq!(settings.scaling, None);
        assert_eq!(settings.alerts, None);
    }
}
