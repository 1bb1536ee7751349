//! The traits of [`crate::ports`] implemented with the AWS SDK.

use async_trait::async_trait;
use aws_sdk_ecs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ecs::types::{AssignPublicIp, AwsVpcConfiguration, LaunchType, NetworkConfiguration};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;

use crate::ports::{
    ContainerState, LaunchResult, LogTail, PortError, SelfInvoker, TaskLaunch, TaskRunner,
    TaskState,
};

/// ECS through `aws_sdk_ecs`.
#[derive(Debug, Clone)]
pub struct EcsTasks(pub aws_sdk_ecs::Client);

/// Lambda through `aws_sdk_lambda`.
#[derive(Debug, Clone)]
pub struct LambdaSelf(pub aws_sdk_lambda::Client);

/// CloudWatch Logs through `aws_sdk_cloudwatchlogs`.
#[derive(Debug, Clone)]
pub struct CloudWatchTail(pub aws_sdk_cloudwatchlogs::Client);

/// `Call: Code: message` for a service's answer (what a person can act on, and short
/// enough for the 4 KB response); the whole error chain for transport failures.
fn port_error<E: std::error::Error + ProvideErrorMetadata>(call: &str, error: E) -> PortError {
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => PortError(format!("{call}: {code}: {message}")),
        (Some(code), None) => PortError(format!("{call}: {code}")),
        _ => PortError(format!("{call}: {}", DisplayErrorContext(error))),
    }
}

#[async_trait]
impl TaskRunner for EcsTasks {
    async fn run_task(&self, launch: &TaskLaunch) -> Result<LaunchResult, PortError> {
        let public_ip = if launch.assign_public_ip {
            AssignPublicIp::Enabled
        } else {
            AssignPublicIp::Disabled
        };
        let vpc = AwsVpcConfiguration::builder()
            .set_subnets(Some(launch.subnets.clone()))
            .set_security_groups(Some(launch.security_groups.clone()))
            .assign_public_ip(public_ip)
            .build()
            .map_err(|e| PortError(format!("RunTask: {e}")))?;
        let output = self
            .0
            .run_task()
            .cluster(&launch.cluster)
            .task_definition(&launch.task_definition)
            .launch_type(LaunchType::Fargate)
            .count(1)
            .network_configuration(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(vpc)
                    .build(),
            )
            .started_by(&launch.token)
            .client_token(&launch.token)
            .send()
            .await
            .map_err(|e| port_error("RunTask", e))?;
        if let Some(task_arn) = output.tasks().iter().find_map(|t| t.task_arn()) {
            return Ok(LaunchResult::Started {
                task_arn: task_arn.to_owned(),
            });
        }
        let mut reasons: Vec<String> = output
            .failures()
            .iter()
            .map(|f| {
                format!(
                    "{}: {} ({})",
                    f.arn().unwrap_or("-"),
                    f.reason().unwrap_or("no reason given"),
                    f.detail().unwrap_or("no detail")
                )
            })
            .collect();
        if reasons.is_empty() {
            reasons.push("RunTask returned neither a task nor a failure".into());
        }
        Ok(LaunchResult::Refused { reasons })
    }

    async fn describe_task(
        &self,
        cluster: &str,
        task_arn: &str,
    ) -> Result<Option<TaskState>, PortError> {
        let output = self
            .0
            .describe_tasks()
            .cluster(cluster)
            .tasks(task_arn)
            .send()
            .await
            .map_err(|e| port_error("DescribeTasks", e))?;
        Ok(output.tasks().first().map(|task| TaskState {
            task_arn: task.task_arn().unwrap_or(task_arn).to_owned(),
            last_status: task.last_status().unwrap_or_default().to_owned(),
            stopped_reason: task.stopped_reason().map(str::to_owned),
            containers: task
                .containers()
                .iter()
                .map(|c| ContainerState {
                    name: c.name().unwrap_or_default().to_owned(),
                    exit_code: c.exit_code(),
                    reason: c.reason().map(str::to_owned),
                })
                .collect(),
        }))
    }
}

#[async_trait]
impl SelfInvoker for LambdaSelf {
    async fn invoke_async(&self, function_arn: &str, payload: Vec<u8>) -> Result<(), PortError> {
        self.0
            .invoke()
            .function_name(function_arn)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| port_error("Invoke", e))?;
        Ok(())
    }
}

#[async_trait]
impl LogTail for CloudWatchTail {
    async fn last_lines(
        &self,
        log_group: &str,
        log_stream: &str,
        limit: i32,
    ) -> Result<Vec<String>, PortError> {
        // startFromHead=false without a token returns the newest page, oldest first.
        let output = self
            .0
            .get_log_events()
            .log_group_name(log_group)
            .log_stream_name(log_stream)
            .start_from_head(false)
            .limit(limit)
            .send()
            .await
            .map_err(|e| port_error("GetLogEvents", e))?;
        Ok(output
            .events()
            .iter()
            .filter_map(|e| e.message().map(str::to_owned))
            .collect())
    }
}
