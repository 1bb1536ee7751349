//! One-off ECS tasks the CLI starts itself (`rotate-fernet`): RunTask, wait until the
//! task stops, read the end of its awslogs stream.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use aws_sdk_ecs::types::{AssignPublicIp, AwsVpcConfiguration, LaunchType, NetworkConfiguration};

use super::describe;

/// Where and what to run.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Cluster name or ARN.
    pub cluster: String,
    /// Task definition ARN (or family:revision).
    pub task_definition: String,
    /// Subnet ids.
    pub subnets: Vec<String>,
    /// Security group ids.
    pub security_groups: Vec<String>,
    /// Whether the task gets a public IP (public subnets without a NAT gateway).
    pub assign_public_ip: bool,
    /// `startedBy`, so the task says who started it in the console.
    pub started_by: String,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// The task's ARN.
    pub task_arn: String,
    /// The container's exit code; `None` when it never ran (image pull, secrets, ...).
    pub exit_code: Option<i32>,
    /// ECS's `stoppedReason`, and the container's `reason` when it has one.
    pub reason: String,
}

impl Stopped {
    /// The task ID, the last part of its ARN (also the last part of its log stream).
    pub fn task_id(&self) -> &str {
        self.task_arn.rsplit('/').next().unwrap_or(&self.task_arn)
    }
}

/// Starts one Fargate task; its ARN.
pub async fn run(ecs: &aws_sdk_ecs::Client, launch: &Launch) -> anyhow::Result<String> {
    let public_ip = if launch.assign_public_ip {
        AssignPublicIp::Enabled
    } else {
        AssignPublicIp::Disabled
    };
    let vpc = AwsVpcConfiguration::builder()
        .set_subnets(Some(launch.subnets.clone()))
        .set_security_groups(Some(launch.security_groups.clone()))
        .assign_public_ip(public_ip)
        .build()?;
    let out = ecs
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
        .started_by(&launch.started_by)
        .send()
        .await
        .map_err(|e| anyhow!("RunTask of {}: {}", launch.task_definition, describe(&e)))?;
    if let Some(arn) = out.tasks().iter().find_map(|t| t.task_arn()) {
        return Ok(arn.to_owned());
    }
    let reasons: Vec<String> = out
        .failures()
        .iter()
        .map(|f| {
            format!(
                "{} ({})",
                f.reason().unwrap_or("no reason"),
                f.detail().unwrap_or("-")
            )
        })
        .collect();
    bail!("ECS started no task: {}", reasons.join("; "))
}

/// Polls the task until it is STOPPED, calling `on_status` with each new last status
/// (PROVISIONING, PENDING, RUNNING, ...). Gives up after `timeout`, leaving the task be.
pub async fn wait_stopped(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    task_arn: &str,
    container: &str,
    timeout: Duration,
    mut on_status: impl FnMut(&str),
) -> anyhow::Result<Stopped> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let out = ecs
            .describe_tasks()
            .cluster(cluster)
            .tasks(task_arn)
            .send()
            .await
            .map_err(|e| anyhow!("DescribeTasks {task_arn}: {}", describe(&e)))?;
        let task = out
            .tasks()
            .first()
            .ok_or_else(|| anyhow!("ECS no longer knows task {task_arn}"))?;
        let status = task.last_status().unwrap_or("UNKNOWN").to_owned();
        if status != last {
            on_status(&status);
            last = status.clone();
        }
        if status == "STOPPED" {
            let c = task
                .containers()
                .iter()
                .find(|c| c.name() == Some(container));
            let mut reason = task.stopped_reason().unwrap_or_default().to_owned();
            if let Some(why) = c.and_then(|c| c.reason()) {
                reason = format!("{reason}; {container}: {why}");
            }
            return Ok(Stopped {
                task_arn: task_arn.to_owned(),
                exit_code: c.and_then(|c| c.exit_code()),
                reason,
            });
        }
        if started.elapsed() > timeout {
            bail!(
                "task {task_arn} is still {status} after {} minutes; it keeps running (aws ecs describe-tasks --cluster {cluster} --tasks {task_arn})",
                timeout.as_secs() / 60
            );
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
}

/// The last `n` lines of a log stream (none when the stream was never created: a task
/// that did not start writes nothing).
pub async fn log_tail(
    logs: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    n: i32,
) -> anyhow::Result<Vec<String>> {
    let out = logs
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_from_head(false)
        .limit(n)
        .send()
        .await;
    match out {
        Ok(out) => Ok(out
            .events()
            .iter()
            .filter_map(|e| e.message().map(str::to_owned))
            .collect()),
        Err(e) if describe(&e).contains("ResourceNotFound") => Ok(Vec::new()),
        Err(e) => Err(anyhow!("reading {group}/{stream}: {}", describe(&e))),
    }
}
