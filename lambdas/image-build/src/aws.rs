//! The traits of [`crate::ports`] implemented with the AWS SDK.
//!
//! API references relied on:
//! - ECR DescribeImages (an absent tag is `ImageNotFoundException`) and
//!   DescribeRepositories (`repositoryUri`):
//!   <https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DescribeImages.html>
//! - CodeBuild StartBuild (`sourceTypeOverride`, `sourceLocationOverride` as
//!   `bucket/key` for S3, `environmentVariablesOverride`, `idempotencyToken`) and
//!   BatchGetBuilds (`builds`, `buildsNotFound`; `Build.buildStatus`, `phases`,
//!   `logs.groupName`/`streamName`):
//!   <https://docs.aws.amazon.com/codebuild/latest/APIReference/API_StartBuild.html>,
//!   <https://docs.aws.amazon.com/codebuild/latest/APIReference/API_Build.html>

use airflow_stack_contract::image_build::IMAGE_TAG_VARIABLE;
use async_trait::async_trait;
use aws_sdk_codebuild::types::{EnvironmentVariable, EnvironmentVariableType, SourceType};
use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ecr::types::ImageIdentifier;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;

use crate::ports::{
    BuildLaunch, BuildState, BuildStatus, Builds, ImageLookup, LogTail, PhaseState, PortError,
    Registry, SelfInvoker,
};

/// ECR through `aws_sdk_ecr`.
#[derive(Debug, Clone)]
pub struct EcrRegistry(pub aws_sdk_ecr::Client);

/// CodeBuild through `aws_sdk_codebuild`.
#[derive(Debug, Clone)]
pub struct CodeBuildProjects(pub aws_sdk_codebuild::Client);

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
impl Registry for EcrRegistry {
    async fn find_image(&self, repository: &str, tag: &str) -> Result<ImageLookup, PortError> {
        let result = self
            .0
            .describe_images()
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .send()
            .await;
        match result {
            Ok(output) if output.image_details().is_empty() => Ok(ImageLookup::Absent),
            Ok(_) => Ok(ImageLookup::Present),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_image_not_found_exception()) =>
            {
                Ok(ImageLookup::Absent)
            }
            Err(error) => Err(port_error("DescribeImages", error)),
        }
    }

    async fn repository_uri(&self, repository: &str) -> Result<String, PortError> {
        let output = self
            .0
            .describe_repositories()
            .repository_names(repository)
            .send()
            .await
            .map_err(|e| port_error("DescribeRepositories", e))?;
        output
            .repositories()
            .iter()
            .find(|r| r.repository_name() == Some(repository))
            .and_then(|r| r.repository_uri())
            .map(str::to_owned)
            .ok_or_else(|| PortError(format!("DescribeRepositories: no URI for {repository}")))
    }
}

#[async_trait]
impl Builds for CodeBuildProjects {
    async fn start_build(&self, launch: &BuildLaunch) -> Result<String, PortError> {
        let tag = EnvironmentVariable::builder()
            .name(IMAGE_TAG_VARIABLE)
            .value(&launch.image_tag)
            .r#type(EnvironmentVariableType::Plaintext)
            .build()
            .map_err(|e| PortError(format!("StartBuild: {e}")))?;
        let output = self
            .0
            .start_build()
            .project_name(&launch.project_name)
            .source_type_override(SourceType::S3)
            .source_location_override(&launch.source_location)
            .environment_variables_override(tag)
            .idempotency_token(&launch.idempotency_token)
            .send()
            .await
            .map_err(|e| port_error("StartBuild", e))?;
        // `build_value`: the SDK's name for the `build` member (`build` is the builders').
        output
            .build_value()
            .and_then(|b| b.id())
            .map(str::to_owned)
            .ok_or_else(|| PortError("StartBuild returned no build id".into()))
    }

    async fn get_build(&self, build_id: &str) -> Result<Option<BuildState>, PortError> {
        let output = self
            .0
            .batch_get_builds()
            .ids(build_id)
            .send()
            .await
            .map_err(|e| port_error("BatchGetBuilds", e))?;
        Ok(output
            .builds()
            .iter()
            .find(|b| b.id() == Some(build_id))
            .map(|build| BuildState {
                id: build_id.to_owned(),
                status: BuildStatus::parse(
                    build
                        .build_status()
                        .map(|s| s.as_str())
                        .unwrap_or("IN_PROGRESS"),
                ),
                current_phase: build.current_phase().map(str::to_owned),
                phases: build.phases().iter().map(phase_state).collect(),
                log_group: build.logs().and_then(|l| l.group_name()).map(str::to_owned),
                log_stream: build
                    .logs()
                    .and_then(|l| l.stream_name())
                    .map(str::to_owned),
            }))
    }
}

fn phase_state(phase: &aws_sdk_codebuild::types::BuildPhase) -> PhaseState {
    PhaseState {
        phase_type: phase
            .phase_type()
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        status: phase.phase_status().map(|s| s.as_str().to_owned()),
        contexts: phase
            .contexts()
            .iter()
            .filter(|c| {
                c.status_code().is_some_and(|s| !s.is_empty())
                    || c.message().is_some_and(|m| !m.is_empty())
            })
            .map(|c| {
                format!(
                    "{}: {}",
                    c.status_code().unwrap_or("-"),
                    c.message().unwrap_or_default()
                )
            })
            .collect(),
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
