//! `bootstrap` for the provided.al2023 runtime.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use airflow_secrets::aws_store::AwsSecretStore;
use airflow_secrets::SecretStore;
use aws_config::BehaviorVersion;
use cfn_custom_resource::{
    CloudFormationStacks, GuardConfig, OriginCheck, ResponseSender, RetryPolicy, StackResources,
};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    cfn_custom_resource::logging::init_json_logging();
    // defaults() honours AWS_ENDPOINT_URL, which is how tests point it at moto.
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let store: Arc<dyn SecretStore> = Arc::new(AwsSecretStore::new(
        aws_sdk_secretsmanager::Client::new(&config),
    ));
    let stacks: Arc<dyn StackResources> = Arc::new(CloudFormationStacks(
        aws_sdk_cloudformation::Client::new(&config),
    ));
    let sender = ResponseSender::new(RetryPolicy::default())?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (store, sender) = (Arc::clone(&store), sender.clone());
        // The function's own ARN tells the check which account and region it serves.
        let origin = OriginCheck::new(&event.context.invoked_function_arn, Arc::clone(&stacks));
        async move {
            let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(event.context.deadline);
            let guard = GuardConfig {
                log_stream: event.context.env_config.log_stream.clone(),
                ..GuardConfig::default()
            };
            airflow_secrets::invoke(event.payload, deadline, &guard, &sender, store, origin)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
