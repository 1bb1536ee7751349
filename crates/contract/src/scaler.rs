//! The scaler (lambdas/scaler): its settings, which the template (src/stack) writes as
//! the function's environment variables, and the names both sides use for its
//! CloudWatch metrics and DynamoDB state table.
//!
//! None of the settings is a secret: the scaler's own Airflow password and the Slack
//! webhook URL are passed by secret ARN and read from Secrets Manager at run time.

use std::collections::BTreeMap;

use crate::wire;

/// The Airflow admin user the migration task creates (with FAB) or the api-server
/// declares (simple auth manager); the admin-password secret holds its first password.
pub const DEFAULT_ADMIN_USERNAME: &str = "admin";

/// The scaler's own Airflow user: read-only (FAB role `Viewer`, simple auth manager role
/// `viewer`), its password in a secret only the scaler, the migration task and (with the
/// simple auth manager) the api-server read. The scaler only lists DAG runs and task
/// instances, so a leaked password or a bug in it can change nothing in Airflow.
pub const SCALER_USERNAME: &str = "airflow-stack-scaler";

/// The partition key (a string) of the scaler's DynamoDB state table: the template
/// creates the table with it, the Lambda reads and writes items by it.
pub const STATE_TABLE_KEY: &str = "pk";

/// The state table item (by [`STATE_TABLE_KEY`]) that `airflow-stack pause` writes and
/// `resume` deletes: while it exists the scaler neither scales nor alerts, and reports
/// the Airflow API as readable (the api-server is stopped on purpose, which is no reason
/// for the read-failure alarm). Its attribute [`PAUSED_SINCE`] says since when.
pub const PAUSED_KEY: &str = "paused";
/// When the stack was paused (RFC 3339), an attribute of the [`PAUSED_KEY`] item.
pub const PAUSED_SINCE: &str = "since";

/// The CloudWatch metrics the scaler publishes.
pub mod metrics {
    /// The namespace: the template passes it as `METRIC_NAMESPACE` and limits the
    /// role's `cloudwatch:PutMetricData` to it.
    pub const NAMESPACE: &str = "AirflowStack";
    /// The dimension holding the stack name.
    pub const STACK_DIMENSION: &str = "Stack";
    /// Queued task instances.
    pub const QUEUED_TASKS: &str = "QueuedTasks";
    /// Running task instances.
    pub const RUNNING_TASKS: &str = "RunningTasks";
    /// The worker count the formula asked for.
    pub const DESIRED_WORKERS: &str = "DesiredWorkers";
    /// Workers holding at least one task instance (they bound scale-in from below).
    pub const BUSY_WORKERS: &str = "BusyWorkers";
    /// 1 when a tick could not read Airflow's REST API (login or a list call failed),
    /// else 0: the template's alarm watches it, because a scaler that cannot read
    /// Airflow changes nothing and would otherwise be silent.
    pub const API_READ_FAILURES: &str = "AirflowApiReadFailures";
}

/// Minutes a drain may take by default (`autoscaling.drain_minutes`).
pub const DEFAULT_DRAIN_MINUTES: u32 = 10;

/// The queue Airflow puts task instances on when an operator names none
/// (`[operators] default_queue`), and the one the stack's workers consume.
pub const DEFAULT_QUEUE: &str = "default";

/// The environment variable names. Only this crate spells them.
pub mod variable {
    /// The api-server's base URL (`http://api-server.<namespace>:8080`).
    pub const AIRFLOW_API_URL: &str = "AIRFLOW_API_URL";
    /// The Airflow user to log in as ([`super::SCALER_USERNAME`]).
    pub const API_USERNAME: &str = "API_USERNAME";
    /// The secret holding that user's password (a plain string).
    pub const API_PASSWORD_SECRET_ARN: &str = "API_PASSWORD_SECRET_ARN";
    /// The stack's name (metric dimension, alert texts).
    pub const STACK_NAME: &str = "STACK_NAME";
    /// The DynamoDB state table.
    pub const STATE_TABLE: &str = "STATE_TABLE";
    /// `true` when autoscaling is on.
    pub const AUTOSCALING_ENABLED: &str = "AUTOSCALING_ENABLED";
    /// The ECS cluster of the worker service.
    pub const CLUSTER: &str = "CLUSTER";
    /// The worker service's name.
    pub const WORKER_SERVICE: &str = "WORKER_SERVICE";
    /// The CloudWatch namespace to publish to.
    pub const METRIC_NAMESPACE: &str = "METRIC_NAMESPACE";
    /// Task slots per worker.
    pub const WORKER_CONCURRENCY: &str = "WORKER_CONCURRENCY";
    /// Fewest workers.
    pub const MIN_WORKERS: &str = "MIN_WORKERS";
    /// Most workers.
    pub const MAX_WORKERS: &str = "MAX_WORKERS";
    /// Minutes fewer workers must be wanted before scaling in.
    pub const COOLDOWN_MINUTES: &str = "COOLDOWN_MINUTES";
    /// Minutes a drain may take before the scaler cancels it (untags its workers).
    pub const DRAIN_MINUTES: &str = "DRAIN_MINUTES";
    /// The Celery queues the worker service consumes, comma-separated: only task
    /// instances on these queues count as load.
    pub const WORKER_QUEUES: &str = "WORKER_QUEUES";
    /// `true` when alerts are on.
    pub const ALERTS_ENABLED: &str = "ALERTS_ENABLED";
    /// Base URL of the Airflow UI for links in alerts.
    pub const UI_BASE_URL: &str = "UI_BASE_URL";
    /// The secret holding the Slack incoming-webhook URL.
    pub const SLACK_SECRET_ARN: &str = "SLACK_SECRET_ARN";
    /// The SNS topic to publish alerts to.
    pub const SNS_TOPIC_ARN: &str = "SNS_TOPIC_ARN";
}

/// The scaler's settings. Written by the CLI (src/stack) as the function's environment
/// through [`ScalerSettings::to_environment`] with `V` its template expression type;
/// read by the scaler with `V = String` through [`ScalerSettings::from_env`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalerSettings<V> {
    /// `AIRFLOW_API_URL`.
    pub airflow_api_url: V,
    /// `API_USERNAME`.
    pub api_username: V,
    /// `API_PASSWORD_SECRET_ARN`.
    pub api_password_secret_arn: V,
    /// `STACK_NAME`.
    pub stack_name: V,
    /// `STATE_TABLE`.
    pub state_table: V,
    /// `METRIC_NAMESPACE` (the template writes [`metrics::NAMESPACE`]): every tick
    /// publishes `AirflowApiReadFailures` there, with autoscaling also the load.
    pub metric_namespace: V,
    /// Present when `AUTOSCALING_ENABLED` is `true`.
    pub autoscaling: Option<Autoscaling<V>>,
    /// Present when `ALERTS_ENABLED` is `true`.
    pub alerts: Option<Alerts<V>>,
}

/// Where and how to scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autoscaling<V> {
    /// `CLUSTER`.
    pub cluster: V,
    /// `WORKER_SERVICE`.
    pub worker_service: V,
    /// `WORKER_CONCURRENCY`.
    pub worker_concurrency: u32,
    /// `MIN_WORKERS`.
    pub min_workers: u32,
    /// `MAX_WORKERS`.
    pub max_workers: u32,
    /// `COOLDOWN_MINUTES`.
    pub cooldown_minutes: u32,
    /// `DRAIN_MINUTES`: [`DEFAULT_DRAIN_MINUTES`] when unset (a function deployed
    /// before drains existed).
    pub drain_minutes: u32,
    /// `WORKER_QUEUES`: [`DEFAULT_QUEUE`] alone when unset.
    pub worker_queues: Vec<String>,
}

/// Where to alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alerts<V> {
    /// `UI_BASE_URL`.
    pub ui_base_url: V,
    /// `SLACK_SECRET_ARN`, when Slack is a target.
    pub slack_secret_arn: Option<V>,
    /// `SNS_TOPIC_ARN`, when SNS is a target.
    pub sns_topic_arn: Option<V>,
}

/// A missing or malformed variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// The variable.
    pub name: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "environment variable {}: {}", self.name, self.problem)
    }
}

impl std::error::Error for SettingsError {}

impl<V> ScalerSettings<V> {
    /// The environment variables, by name.
    pub fn to_environment(&self) -> BTreeMap<&'static str, V>
    where
        V: Clone + From<String>,
    {
        use variable::*;
        let number = |n: u32| V::from(n.to_string());
        let flag = || V::from(wire::TRUE.to_owned());
        let mut env = BTreeMap::from([
            (AIRFLOW_API_URL, self.airflow_api_url.clone()),
            (API_USERNAME, self.api_username.clone()),
            (
                API_PASSWORD_SECRET_ARN,
                self.api_password_secret_arn.clone(),
            ),
            (STACK_NAME, self.stack_name.clone()),
            (STATE_TABLE, self.state_table.clone()),
            (METRIC_NAMESPACE, self.metric_namespace.clone()),
        ]);
        if let Some(a) = &self.autoscaling {
            env.extend([
                (AUTOSCALING_ENABLED, flag()),
                (CLUSTER, a.cluster.clone()),
                (WORKER_SERVICE, a.worker_service.clone()),
                (WORKER_CONCURRENCY, number(a.worker_concurrency)),
                (MIN_WORKERS, number(a.min_workers)),
                (MAX_WORKERS, number(a.max_workers)),
                (COOLDOWN_MINUTES, number(a.cooldown_minutes)),
                (DRAIN_MINUTES, number(a.drain_minutes)),
                (WORKER_QUEUES, V::from(a.worker_queues.join(","))),
            ]);
        }
        if let Some(a) = &self.alerts {
            env.insert(ALERTS_ENABLED, flag());
            env.insert(UI_BASE_URL, a.ui_base_url.clone());
            if let Some(arn) = &a.slack_secret_arn {
                env.insert(SLACK_SECRET_ARN, arn.clone());
            }
            if let Some(arn) = &a.sns_topic_arn {
                env.insert(SNS_TOPIC_ARN, arn.clone());
            }
        }
        env
    }
}

/// `a,b` -> ["a", "b"]; blanks dropped; [`DEFAULT_QUEUE`] when nothing is left.
fn queues(value: Option<String>) -> Vec<String> {
    let named: Vec<String> = value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_owned)
        .collect();
    if named.is_empty() {
        vec![DEFAULT_QUEUE.to_owned()]
    } else {
        named
    }
}

impl ScalerSettings<String> {
    /// Reads the settings through `var` (the process environment in the Lambda). Empty
    /// counts as unset; a flag is on only when it is exactly `true`.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        use variable::*;
        let optional = |name: &str| var(name).filter(|v| !v.is_empty());
        let required = |name: &'static str| {
            optional(name).ok_or_else(|| SettingsError {
                name,
                problem: "is not set".into(),
            })
        };
        let flag = |name: &str| optional(name).is_some_and(|v| v == wire::TRUE);
        let number = |name: &'static str| -> Result<u32, SettingsError> {
            required(name)?.parse().map_err(|_| SettingsError {
                name,
                problem: "is not a whole number".into(),
            })
        };
        let autoscaling = if flag(AUTOSCALING_ENABLED) {
            Some(Autoscaling {
                cluster: required(CLUSTER)?,
                worker_service: required(WORKER_SERVICE)?,
                worker_concurrency: number(WORKER_CONCURRENCY)?,
                min_workers: number(MIN_WORKERS)?,
                max_workers: number(MAX_WORKERS)?,
                cooldown_minutes: number(COOLDOWN_MINUTES)?,
                drain_minutes: match optional(DRAIN_MINUTES) {
                    None => DEFAULT_DRAIN_MINUTES,
                    Some(_) => number(DRAIN_MINUTES)?,
                },
                worker_queues: queues(optional(WORKER_QUEUES)),
            })
        } else {
            None
        };
        let alerts = if flag(ALERTS_ENABLED) {
            Some(Alerts {
                ui_base_url: required(UI_BASE_URL)?,
                slack_secret_arn: optional(SLACK_SECRET_ARN),
                sns_topic_arn: optional(SNS_TOPIC_ARN),
            })
        } else {
            None
        };
        Ok(ScalerSettings {
            airflow_api_url: required(AIRFLOW_API_URL)?,
            api_username: required(API_USERNAME)?,
            api_password_secret_arn: required(API_PASSWORD_SECRET_ARN)?,
            stack_name: required(STACK_NAME)?,
            state_table: required(STATE_TABLE)?,
            metric_namespace: required(METRIC_NAMESPACE)?,
            autoscaling,
            alerts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for the CLI's expression type.
    #[derive(Debug, Clone, PartialEq)]
    enum Expr {
        Lit(String),
        Ref(&'static str),
    }

    impl From<String> for Expr {
        fn from(s: String) -> Self {
            Expr::Lit(s)
        }
    }

    /// What Lambda does with the template's `Environment.Variables`: every value a
    /// resolved string.
    fn deploy(env: BTreeMap<&'static str, Expr>) -> BTreeMap<String, String> {
        env.into_iter()
            .map(|(k, v)| {
                let value = match v {
                    Expr::Lit(s) => s,
                    Expr::Ref(id) => format!("resolved-{id}"),
                };
                (k.to_owned(), value)
            })
            .collect()
    }

    fn cli(autoscaling: bool, alerts: bool) -> ScalerSettings<Expr> {
        ScalerSettings {
            airflow_api_url: Expr::Lit("http://api-server.airflow.local:8080".into()),
            api_username: Expr::Lit(SCALER_USERNAME.into()),
            api_password_secret_arn: Expr::Ref("ScalerPasswordSecret"),
            stack_name: Expr::Lit("airflow-dev".into()),
            state_table: Expr::Ref("ScalerStateTable"),
            metric_namespace: Expr::Lit(metrics::NAMESPACE.into()),
            autoscaling: autoscaling.then(|| Autoscaling {
                cluster: Expr::Ref("Cluster"),
                worker_service: Expr::Ref("WorkerService"),
                worker_concurrency: 8,
                min_workers: 0,
                max_workers: 4,
                cooldown_minutes: 10,
                drain_minutes: 7,
                worker_queues: vec!["default".into(), "heavy".into()],
            }),
            alerts: alerts.then(|| Alerts {
                ui_base_url: Expr::Lit("https://airflow.example".into()),
                slack_secret_arn: Some(Expr::Ref("SlackWebhookSecret")),
                sns_topic_arn: None,
            }),
        }
    }

    fn lambda(settings: ScalerSettings<Expr>) -> Result<ScalerSettings<String>, SettingsError> {
        let env = deploy(settings.to_environment());
        ScalerSettings::from_env(|name| env.get(name).cloned())
    }

    #[test]
    fn round_trips_from_the_cli_shape_to_the_lambda_shape() {
        for (autoscaling, alerts) in [(true, true), (true, false), (false, true), (false, false)] {
            let read = lambda(cli(autoscaling, alerts)).unwrap();
            assert_eq!(read.stack_name, "airflow-dev");
            assert_eq!(read.state_table, "resolved-ScalerStateTable");
            assert_eq!(read.api_username, SCALER_USERNAME);
            assert_eq!(
                read.api_password_secret_arn,
                "resolved-ScalerPasswordSecret"
            );
            assert_eq!(read.autoscaling.is_some(), autoscaling);
            assert_eq!(read.alerts.is_some(), alerts);
            if let Some(a) = read.autoscaling {
                assert_eq!(
                    a,
                    Autoscaling {
                        cluster: "resolved-Cluster".into(),
                        worker_service: "resolved-WorkerService".into(),
                        worker_concurrency: 8,
                        min_workers: 0,
                        max_workers: 4,
                        cooldown_minutes: 10,
                        drain_minutes: 7,
                        worker_queues: vec!["default".into(), "heavy".into()],
                    }
                );
            }
            if let Some(a) = read.alerts {
                assert_eq!(
                    a.slack_secret_arn.as_deref(),
                    Some("resolved-SlackWebhookSecret")
                );
                assert_eq!(a.sns_topic_arn, None);
            }
        }
    }

    #[test]
    fn only_what_is_on_is_written() {
        let env = cli(false, false).to_environment();
        assert_eq!(
            env.keys().copied().collect::<Vec<_>>(),
            [
                "AIRFLOW_API_URL",
                "API_PASSWORD_SECRET_ARN",
                "API_USERNAME",
                "METRIC_NAMESPACE",
                "STACK_NAME",
                "STATE_TABLE"
            ]
        );
        assert_eq!(
            cli(true, true).to_environment()["AUTOSCALING_ENABLED"],
            Expr::Lit("true".into())
        );
    }

    #[test]
    fn missing_and_malformed_variables_are_named() {
        let mut env = deploy(cli(true, false).to_environment());
        env.insert("MAX_WORKERS".into(), "many".into());
        let error = ScalerSettings::from_env(|n| env.get(n).cloned()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable MAX_WORKERS: is not a whole number"
        );
        env.insert("MAX_WORKERS".into(), "4".into());
        env.insert("STATE_TABLE".into(), String::new());
        let error = ScalerSettings::from_env(|n| env.get(n).cloned()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable STATE_TABLE: is not set"
        );
        env.insert("STATE_TABLE".into(), "t".into());
        env.insert("AUTOSCALING_ENABLED".into(), "yes".into());
        let read = ScalerSettings::from_env(|n| env.get(n).cloned()).unwrap();
        assert_eq!(
            read.autoscaling, None,
            "a flag is on only when it is exactly true"
        );
        env.remove("API_USERNAME");
        let error = ScalerSettings::from_env(|n| env.get(n).cloned()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable API_USERNAME: is not set",
            "no silent fallback to another user"
        );
        env.insert("API_USERNAME".into(), SCALER_USERNAME.into());
        env.insert("AUTOSCALING_ENABLED".into(), "true".into());
        env.insert("WORKER_QUEUES".into(), " ,".into());
        let read = ScalerSettings::from_env(|n| env.get(n).cloned()).unwrap();
        assert_eq!(read.autoscaling.unwrap().worker_queues, [DEFAULT_QUEUE]);
    }

    #[test]
    fn drain_minutes_round_trip_and_default_when_unset() {
        let mut env = deploy(cli(true, false).to_environment());
        assert_eq!(env["DRAIN_MINUTES"], "7");
        let read = ScalerSettings::from_env(|n| env.get(n).cloned()).unwrap();
        assert_eq!(read.autoscaling.unwrap().drain_minutes, 7);
        env.remove("DRAIN_MINUTES");
        let read = ScalerSettings::from_env(|n| env.get(n).cloned()).unwrap();
        assert_eq!(
            read.autoscaling.unwrap().drain_minutes,
            DEFAULT_DRAIN_MINUTES,
            "a function deployed before drains existed"
        );
        env.insert("DRAIN_MINUTES".into(), "soon".into());
        let error = ScalerSettings::from_env(|n| env.get(n).cloned()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable DRAIN_MINUTES: is not a whole number"
        );
    }
}
