//! `bootstrap` for the provided.al2023 runtime, and the service's entry point: the
//! role comes from `ROLE`.

use airflow_scaler::aws::secret_string;
use airflow_stack_contract::streams::{
    ManagerInvocation, ManagerSettings, ProcessorSettings, Role, WatchdogSettings,
};
use airflow_streams::airflow::AirflowClient;
use airflow_streams::aws::{DynamoTable, EcsServices, LambdaInvoker, SnsTopic};
use airflow_streams::manager::{self, ManagerPorts};
use airflow_streams::notify::SlackWebhook;
use airflow_streams::ports::{AirflowApi, Notifier, PortError};
use airflow_streams::processor::{self, ProcessorPorts};
use airflow_streams::source::{stream_client, HttpSource};
use airflow_streams::watchdog::{self, WatchdogPorts};
use aws_config::{BehaviorVersion, SdkConfig};
use aws_lambda_events::dynamodb::Event as StreamBatch;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use tracing::warn;

/// The environment, read through the process.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    cfn_custom_resource::logging::init_json_logging();
    let role = Role::from_env(var)?;
    // defaults() honours AWS_ENDPOINT_URL, so tests can point it at an emulator.
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    match role {
        Role::Manager => manager_lambda(&config).await,
        Role::Service => service(&config).await,
        Role::Processor => processor_lambda(&config).await,
        Role::Watchdog => watchdog_lambda(&config).await,
    }
}

/// The stream source, with the auth header's value read from its secret (per run, so
/// a rotated secret is picked up by the next link of the chain).
async fn source(config: &SdkConfig, s: &ManagerSettings<String>) -> Result<HttpSource, PortError> {
    let value = match &s.auth {
        Some(auth) => Some(
            secret_string(
                &aws_sdk_secretsmanager::Client::new(config),
                &auth.secret_arn,
            )
            .await?,
        ),
        None => None,
    };
    let auth = s
        .auth
        .as_ref()
        .zip(value.as_deref())
        .map(|(a, v)| (a.header.as_str(), v));
    HttpSource::new(stream_client()?, &s.url, s.format, auth)
}

async fn manager_lambda(config: &SdkConfig) -> Result<(), Error> {
    let settings = ManagerSettings::from_env(var)?;
    let function = var("AWS_LAMBDA_FUNCTION_NAME").ok_or("AWS_LAMBDA_FUNCTION_NAME is not set")?;
    let table = DynamoTable {
        client: aws_sdk_dynamodb::Client::new(config),
        table: settings.table.clone(),
    };
    let invoker = LambdaInvoker {
        client: aws_sdk_lambda::Client::new(config),
    };
    let (settings, table, invoker, function) = (&settings, &table, &invoker, &function);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // `{}` or anything without the fields is a new chain.
        let invocation: ManagerInvocation =
            serde_json::from_value(event.payload).unwrap_or_default();
        let deadline = tokio::time::Instant::now()
            + event
                .context
                .deadline()
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
        let source = source(config, settings).await?;
        let ports = ManagerPorts {
            source: &source,
            events: table,
            leases: table,
            invoker,
        };
        let report = manager::run_lambda(settings, &ports, invocation, deadline, function).await;
        Ok::<_, Error>(serde_json::to_value(report)?)
    }))
    .await
}

/// Resolves on SIGTERM (ECS stopping the task) or Ctrl-C.
async fn terminated() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn service(config: &SdkConfig) -> Result<(), Error> {
    let settings = ManagerSettings::from_env(var)?;
    let table = DynamoTable {
        client: aws_sdk_dynamodb::Client::new(config),
        table: settings.table.clone(),
    };
    let invoker = LambdaInvoker {
        client: aws_sdk_lambda::Client::new(config),
    };
    let source = source(config, &settings).await?;
    let ports = ManagerPorts {
        source: &source,
        events: &table,
        leases: &table,
        invoker: &invoker,
    };
    manager::run_service(&settings, &ports, terminated()).await;
    Ok(())
}

async fn processor_lambda(config: &SdkConfig) -> Result<(), Error> {
    let settings = ProcessorSettings::from_env(var)?;
    let table = DynamoTable {
        client: aws_sdk_dynamodb::Client::new(config),
        table: settings.table.clone(),
    };
    let secrets = aws_sdk_secretsmanager::Client::new(config);
    let http = airflow_scaler::http::client()?;
    // Logged in once per execution environment (the client logs in again on a 401);
    // a failed login is tried again by the next batch.
    let airflow: tokio::sync::OnceCell<AirflowClient> = tokio::sync::OnceCell::new();
    let (settings, table, secrets, http, airflow) = (&settings, &table, &secrets, &http, &airflow);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<StreamBatch>| async move {
            let login = airflow
                .get_or_try_init(|| async {
                    let password =
                        secret_string(secrets, &settings.api_password_secret_arn).await?;
                    AirflowClient::login(
                        http.clone(),
                        &settings.airflow_api_url,
                        &settings.api_username,
                        &password,
                    )
                    .await
                })
                .await;
            let ports = ProcessorPorts {
                airflow: login.map(|c| c as &dyn AirflowApi),
                marks: table,
            };
            let response = processor::process_batch(&event.payload, &ports).await;
            Ok::<_, Error>(response)
        },
    ))
    .await
}

/// The alert targets; a Slack secret that is not a webhook URL is skipped with a
/// warning naming the secret (never its value).
async fn notifiers(config: &SdkConfig, s: &WatchdogSettings<String>) -> Vec<Box<dyn Notifier>> {
    let mut out: Vec<Box<dyn Notifier>> = Vec::new();
    if let Some(arn) = &s.slack_secret_arn {
        let secrets = aws_sdk_secretsmanager::Client::new(config);
        let webhook = match (
            secret_string(&secrets, arn).await,
            airflow_scaler::http::client(),
        ) {
            (Ok(value), Ok(http)) => SlackWebhook::from_secret(http, arn, &value),
            (Err(e), _) => Err(e),
            (_, Err(e)) => Err(PortError(format!("HTTP client: {e}"))),
        };
        match webhook {
            Ok(slack) => out.push(Box::new(slack)),
            Err(e) => warn!(error = %e, "Slack skipped"),
        }
    }
    if let Some(topic) = &s.sns_topic_arn {
        out.push(Box::new(SnsTopic {
            client: aws_sdk_sns::Client::new(config),
            topic_arn: topic.clone(),
        }));
    }
    out
}

async fn watchdog_lambda(config: &SdkConfig) -> Result<(), Error> {
    let settings = WatchdogSettings::from_env(var)?;
    let table = DynamoTable {
        client: aws_sdk_dynamodb::Client::new(config),
        table: settings.table.clone(),
    };
    let invoker = LambdaInvoker {
        client: aws_sdk_lambda::Client::new(config),
    };
    // No cluster when no stream runs as a service: then nothing restarts a service.
    let services = EcsServices {
        client: aws_sdk_ecs::Client::new(config),
        cluster: settings.cluster.clone().unwrap_or_default(),
    };
    let (settings, table, invoker, services) = (&settings, &table, &invoker, &services);
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
        let notifiers = notifiers(config, settings).await;
        let ports = WatchdogPorts {
            leases: table,
            invoker,
            services,
            notifiers: &notifiers,
        };
        let report = watchdog::run_watchdog(settings, &ports, manager::now_s()).await;
        Ok::<_, Error>(serde_json::to_value(report)?)
    }))
    .await
}
