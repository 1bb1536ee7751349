//! `bootstrap` for the provided.al2023 runtime.

use std::sync::Arc;

use airflow_image_build::aws::{CloudWatchTail, CodeBuildProjects, EcrRegistry, LambdaSelf};
use airflow_image_build::{Invocation, Ports, Settings};
use aws_config::BehaviorVersion;
use cfn_custom_resource::{CloudFormationStacks, ResponseSender, RetryPolicy};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cfn_custom_resource::logging::init_json_logging();
    // An unusable timing variable fails the start (Runtime.ExitError), loudly, rather
    // than running with timings nobody chose.
    let settings = Settings::from_env(|name| std::env::var(name).ok())?;
    // defaults() honours AWS_ENDPOINT_URL, so tests can point it at an emulator.
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let ports = Ports {
        registry: Arc::new(EcrRegistry(aws_sdk_ecr::Client::new(&config))),
        builds: Arc::new(CodeBuildProjects(aws_sdk_codebuild::Client::new(&config))),
        lambda: Arc::new(LambdaSelf(aws_sdk_lambda::Client::new(&config))),
        logs: Arc::new(CloudWatchTail(aws_sdk_cloudwatchlogs::Client::new(&config))),
        stacks: Arc::new(CloudFormationStacks(aws_sdk_cloudformation::Client::new(
            &config,
        ))),
    };
    let sender = ResponseSender::new(RetryPolicy::default())?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (ports, settings, sender) = (ports.clone(), settings.clone(), sender.clone());
        async move {
            let invocation = Invocation {
                deadline: event.context.deadline(),
                function_arn: event.context.invoked_function_arn.clone(),
            };
            airflow_image_build::invoke(event.payload, &invocation, &ports, &settings, &sender)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
