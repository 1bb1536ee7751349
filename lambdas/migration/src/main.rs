//! `bootstrap` for the provided.al2023 runtime.

use std::sync::Arc;

use airflow_migration::aws::{CloudWatchTail, EcsTasks, LambdaSelf};
use airflow_migration::{Invocation, Ports, Settings};
use aws_config::BehaviorVersion;
use cfn_custom_resource::{CloudFormationStacks, ResponseSender, RetryPolicy};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cfn_custom_resource::logging::init_json_logging();
    // defaults() honours AWS_ENDPOINT_URL, so tests can point it at an emulator.
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let ports = Ports {
        ecs: Arc::new(EcsTasks(aws_sdk_ecs::Client::new(&config))),
        lambda: Arc::new(LambdaSelf(aws_sdk_lambda::Client::new(&config))),
        logs: Arc::new(CloudWatchTail(aws_sdk_cloudwatchlogs::Client::new(&config))),
        stacks: Arc::new(CloudFormationStacks(aws_sdk_cloudformation::Client::new(
            &config,
        ))),
    };
    let settings = Settings::default();
    let sender = ResponseSender::new(RetryPolicy::default())?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (ports, settings, sender) = (ports.clone(), settings.clone(), sender.clone());
        async move {
            let invocation = Invocation {
                deadline: event.context.deadline(),
                function_arn: event.context.invoked_function_arn.clone(),
            };
            airflow_migration::invoke(event.payload, &invocation, &ports, &settings, &sender)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
