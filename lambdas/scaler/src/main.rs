//! `bootstrap` for the provided.al2023 runtime.

use std::sync::Arc;

use airflow_scaler::airflow::AirflowClient;
use airflow_scaler::aws::{self, CloudWatchMetrics, DynamoState, EcsWorkers, SnsTopic};
use airflow_scaler::budget::Deadline;
use airflow_scaler::notify::SlackWebhook;
use airflow_scaler::ports::{AirflowApi, Notifier, PortError, WorkerService};
use airflow_scaler::{handler, run_tick, Settings, TickPorts};
use aws_config::BehaviorVersion;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use tracing::warn;

/// Clients built once per execution environment.
struct Clients {
    settings: Settings,
    http: reqwest::Client,
    secrets: aws_sdk_secretsmanager::Client,
    ecs: aws_sdk_ecs::Client,
    metrics: CloudWatchMetrics,
    state: DynamoState,
    sns: aws_sdk_sns::Client,
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cfn_custom_resource::logging::init_json_logging();
    let settings = Settings::from_vars(|k| std::env::var(k).ok())?;
    // defaults() honours AWS_ENDPOINT_URL, so tests can point it at an emulator.
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let http = airflow_scaler::http::client()?;
    let clients = Arc::new(Clients {
        metrics: CloudWatchMetrics {
            client: aws_sdk_cloudwatch::Client::new(&config),
            namespace: settings.metric_namespace.clone(),
            stack: settings.stack.clone(),
        },
        state: DynamoState {
            client: aws_sdk_dynamodb::Client::new(&config),
            table: settings.state_table.clone(),
        },
        secrets: aws_sdk_secretsmanager::Client::new(&config),
        ecs: aws_sdk_ecs::Client::new(&config),
        sns: aws_sdk_sns::Client::new(&config),
        http,
        settings,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let clients = clients.clone();
        // The invocation's deadline, so the tick stops starting work before Lambda
        // cuts it off mid-write.
        let deadline = Deadline::from_system_time(event.context.deadline());
        async move { tick(&clients, deadline).await }
    }))
    .await
}

async fn tick(c: &Clients, deadline: Deadline) -> Result<Value, lambda_runtime::Error> {
    let s = &c.settings;
    // Before logging in: a paused stack's api-server is stopped.
    if let Some(since) = handler::paused_since(&c.state).await {
        return Ok(serde_json::to_value(
            handler::paused_tick(&c.metrics, since).await,
        )?);
    }
    let login = login(c).await;
    let airflow: Result<&dyn AirflowApi, PortError> = match &login {
        Ok(client) => Ok(client),
        Err(e) => Err(e.clone()),
    };
    let workers = s.scaling.as_ref().map(|sc| EcsWorkers {
        client: c.ecs.clone(),
        cluster: sc.cluster.clone(),
        service: sc.service.clone(),
    });
    let notifiers = notifiers(c).await;
    let ports = TickPorts {
        airflow,
        workers: workers.as_ref().map(|w| w as &dyn WorkerService),
        metrics: &c.metrics,
        state: &c.state,
        notifiers: &notifiers,
    };
    let report = run_tick(s, &ports, chrono::Utc::now(), deadline).await;
    Ok(serde_json::to_value(report)?)
}

async fn login(c: &Clients) -> Result<AirflowClient, PortError> {
    let s = &c.settings;
    let password = aws::secret_string(&c.secrets, &s.api_password_secret_arn).await?;
    AirflowClient::login(c.http.clone(), &s.api_url, &s.api_username, &password).await
}

/// The alert targets; a Slack secret that is unset, still the placeholder or not a
/// `https://hooks.slack.com/` URL is skipped with a warning naming the secret (the
/// value itself is never logged).
async fn notifiers(c: &Clients) -> Vec<Box<dyn Notifier>> {
    let mut out: Vec<Box<dyn Notifier>> = Vec::new();
    let Some(targets) = &c.settings.alerts else {
        return out;
    };
    if let Some(arn) = &targets.slack_secret_arn {
        let webhook = aws::secret_string(&c.secrets, arn)
            .await
            .and_then(|value| SlackWebhook::from_secret(c.http.clone(), arn, &value));
        match webhook {
            Ok(slack) => out.push(Box::new(slack)),
            Err(e) => warn!(error = %e, "Slack skipped"),
        }
    }
    if let Some(topic) = &targets.sns_topic_arn {
        out.push(Box::new(SnsTopic {
            client: c.sns.clone(),
            topic_arn: topic.clone(),
        }));
    }
    out
}
