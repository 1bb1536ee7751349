//! The AWS capabilities the handler needs, as small traits so tests can use fakes:
//! look an image up in ECR, start and follow a CodeBuild build, invoke this function
//! again, read the end of the build's log.

use async_trait::async_trait;

/// A failed AWS call, described without secrets (SDK errors carry none).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PortError(pub String);

/// The one StartBuild call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildLaunch {
    /// The CodeBuild project.
    pub project_name: String,
    /// `bucket/key` of the build context zip (`sourceLocationOverride`, type S3).
    pub source_location: String,
    /// The tag, passed as the build's `IMAGE_TAG` environment variable.
    pub image_tag: String,
    /// Deterministic per CloudFormation request: StartBuild's `idempotencyToken`, so a
    /// redelivered request (within CodeBuild's five minutes) gets the same build back
    /// instead of a second one.
    pub idempotency_token: String,
}

/// A build's `buildStatus` (CodeBuild API reference, `Build`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildStatus {
    /// `IN_PROGRESS`.
    InProgress,
    /// `SUCCEEDED`.
    Succeeded,
    /// `FAILED`, `FAULT`, `STOPPED`, `TIMED_OUT`, or a status this code does not know
    /// (which is final too: only `IN_PROGRESS` is documented as not final), as sent.
    Ended(String),
}

impl BuildStatus {
    /// From the API's word.
    pub fn parse(raw: &str) -> Self {
        match raw {
            "IN_PROGRESS" => Self::InProgress,
            "SUCCEEDED" => Self::Succeeded,
            other => Self::Ended(other.to_owned()),
        }
    }
}

/// One entry of a build's `phases`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PhaseState {
    /// `phaseType`: `DOWNLOAD_SOURCE`, `BUILD`, ...
    pub phase_type: String,
    /// `phaseStatus`: `SUCCEEDED`, `FAILED`, ...; absent while a phase runs and for
    /// `COMPLETED`.
    pub status: Option<String>,
    /// `contexts` as `statusCode: message`, CodeBuild's explanation of a failed phase.
    pub contexts: Vec<String>,
}

/// The parts of BatchGetBuilds the handler looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildState {
    /// `id` (`<project>:<uuid>`).
    pub id: String,
    /// `buildStatus`.
    pub status: BuildStatus,
    /// `currentPhase`.
    pub current_phase: Option<String>,
    /// `phases`, oldest first.
    pub phases: Vec<PhaseState>,
    /// `logs.groupName`, once CodeBuild has created the stream.
    pub log_group: Option<String>,
    /// `logs.streamName`.
    pub log_stream: Option<String>,
}

impl BuildState {
    /// The first phase that did not succeed: the one that explains a failed build.
    pub fn failed_phase(&self) -> Option<&PhaseState> {
        self.phases
            .iter()
            .find(|p| p.status.as_deref().is_some_and(|s| s != "SUCCEEDED"))
    }
}

/// ECR: does the image exist, and where is the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageLookup {
    /// DescribeImages found the tag.
    Present,
    /// The repository exists but holds no image with the tag.
    Absent,
}

/// The registry the image is pushed to.
#[async_trait]
pub trait Registry: Send + Sync {
    /// DescribeImages for one tag. A missing repository is an error.
    async fn find_image(&self, repository: &str, tag: &str) -> Result<ImageLookup, PortError>;
    /// DescribeRepositories: the repository's `repositoryUri`.
    async fn repository_uri(&self, repository: &str) -> Result<String, PortError>;
}

/// Starts and follows builds.
#[async_trait]
pub trait Builds: Send + Sync {
    /// StartBuild; the new build's id.
    async fn start_build(&self, launch: &BuildLaunch) -> Result<String, PortError>;
    /// BatchGetBuilds for one build; `None` when CodeBuild reports it not found.
    async fn get_build(&self, build_id: &str) -> Result<Option<BuildState>, PortError>;
}

/// Invokes this same function asynchronously with a continuation payload.
#[async_trait]
pub trait SelfInvoker: Send + Sync {
    /// `Invoke` with `InvocationType: Event`.
    async fn invoke_async(&self, function_arn: &str, payload: Vec<u8>) -> Result<(), PortError>;
}

/// Reads the end of a CloudWatch Logs stream.
#[async_trait]
pub trait LogTail: Send + Sync {
    /// Up to `limit` most recent messages, oldest first.
    async fn last_lines(
        &self,
        log_group: &str,
        log_stream: &str,
        limit: i32,
    ) -> Result<Vec<String>, PortError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failed_phase_is_the_first_that_did_not_succeed() {
        let phase = |t: &str, s: Option<&str>| PhaseState {
            phase_type: t.into(),
            status: s.map(str::to_owned),
            contexts: vec![],
        };
        let build = BuildState {
            id: "p:1".into(),
            status: BuildStatus::parse("FAILED"),
            current_phase: Some("COMPLETED".into()),
            phases: vec![
                phase("SUBMITTED", Some("SUCCEEDED")),
                phase("BUILD", Some("FAILED")),
                phase("POST_BUILD", Some("FAILED")),
                phase("COMPLETED", None),
            ],
            log_group: None,
            log_stream: None,
        };
        assert_eq!(build.failed_phase().unwrap().phase_type, "BUILD");
        assert_eq!(build.status, BuildStatus::Ended("FAILED".into()));
        assert_eq!(BuildStatus::parse("IN_PROGRESS"), BuildStatus::InProgress);
    }
}
