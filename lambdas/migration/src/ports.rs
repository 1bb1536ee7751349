//! The three AWS capabilities the handler needs, as small traits so tests can use
//! fakes: run and watch an ECS task, invoke this function again, read a log tail.

use async_trait::async_trait;

/// Parameters of the one RunTask call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLaunch {
    /// Cluster name or ARN.
    pub cluster: String,
    /// Task definition ARN.
    pub task_definition: String,
    /// awsvpc subnets.
    pub subnets: Vec<String>,
    /// awsvpc security groups.
    pub security_groups: Vec<String>,
    /// `AssignPublicIp: ENABLED`.
    pub assign_public_ip: bool,
    /// Deterministic per CloudFormation request; sent both as `startedBy` (so people and
    /// tools can find the task) and as the RunTask `clientToken` (so ECS itself refuses
    /// to start a second task for a redelivered request).
    pub token: String,
}

/// What RunTask answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchResult {
    /// The task was accepted (or, for a repeated client token, had been accepted before).
    Started {
        /// Its ARN.
        task_arn: String,
    },
    /// ECS refused, with the reasons from the response's `failures` list.
    Refused {
        /// `arn: reason (detail)` per failure.
        reasons: Vec<String>,
    },
}

/// One container of a described task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerState {
    /// Container name from the task definition.
    pub name: String,
    /// Set once the container has exited.
    pub exit_code: Option<i32>,
    /// ECS's explanation when the container stopped abnormally.
    pub reason: Option<String>,
}

/// The parts of DescribeTasks the handler looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskState {
    /// Task ARN.
    pub task_arn: String,
    /// `PROVISIONING`, `PENDING`, `RUNNING`, ..., `STOPPED`.
    pub last_status: String,
    /// Why the task stopped, once it has.
    pub stopped_reason: Option<String>,
    /// Its containers.
    pub containers: Vec<ContainerState>,
}

impl TaskState {
    /// `lastStatus` is `STOPPED`: exit codes are final.
    pub fn is_stopped(&self) -> bool {
        self.last_status == "STOPPED"
    }
}

/// A failed AWS call, described without secrets (SDK errors carry none).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PortError(pub String);

/// Runs and watches the migration task.
#[async_trait]
pub trait TaskRunner: Send + Sync {
    /// RunTask with launch type FARGATE and one task.
    async fn run_task(&self, launch: &TaskLaunch) -> Result<LaunchResult, PortError>;
    /// DescribeTasks for one task; `None` when ECS reports it missing.
    async fn describe_task(
        &self,
        cluster: &str,
        task_arn: &str,
    ) -> Result<Option<TaskState>, PortError>;
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
