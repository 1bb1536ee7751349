//! The stack's ECS services: found through the stack's resources, scaled with
//! UpdateService and waited for until their tasks have stopped (`pause` / `resume`),
//! restarted to read a secret again (`rotate-fernet`).

use anyhow::anyhow;

use super::describe;

/// One resource of a deployed stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackResource {
    pub logical_id: String,
    pub resource_type: String,
    pub physical_id: String,
}

/// Every resource of a stack (DescribeStackResources); an error names a missing stack.
pub async fn stack_resources(
    cfn: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> anyhow::Result<Vec<StackResource>> {
    let out = cfn
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| {
            let text = describe(&e);
            if text.contains("does not exist") {
                anyhow!("stack {stack} does not exist; deploy it first")
            } else {
                anyhow!("cannot list resources of {stack}: {text}")
            }
        })?;
    Ok(out
        .stack_resources()
        .iter()
        .filter_map(|r| {
            Some(StackResource {
                logical_id: r.logical_resource_id()?.to_string(),
                resource_type: r.resource_type()?.to_string(),
                physical_id: r.physical_resource_id().unwrap_or_default().to_string(),
            })
        })
        .collect())
}

/// Desired and running task counts of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub desired: i32,
    pub running: i32,
}

/// What ECS says about one service: its counts, rollout and network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    /// Desired and running tasks.
    pub counts: Counts,
    /// Deployments ECS is running: more than one while a rollout is under way.
    pub deployments: usize,
    /// The task definition of the primary deployment.
    pub task_definition: String,
    /// Its tasks' subnets.
    pub subnets: Vec<String>,
    /// Whether its tasks get public IPs.
    pub assign_public_ip: bool,
}

impl ServiceState {
    /// Not rolling out: ECS runs one deployment (two while old tasks are replaced).
    pub fn is_steady(&self) -> bool {
        self.deployments <= 1
    }
}

/// The state of `services` (physical ids) in `cluster`, in the same order.
pub async fn states(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    services: &[String],
) -> anyhow::Result<Vec<ServiceState>> {
    let mut all = Vec::new();
    // DescribeServices takes at most 10 services per call.
    for chunk in services.chunks(10) {
        let out = ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| anyhow!("cannot describe services in {cluster}: {}", describe(&e)))?;
        for wanted in chunk {
            let found = out.services().iter().find(|s| {
                s.service_arn() == Some(wanted.as_str())
                    || s.service_name() == Some(wanted.as_str())
            });
            let found =
                found.ok_or_else(|| anyhow!("service {wanted} is not in cluster {cluster}"))?;
            all.push(state_of(found));
        }
    }
    Ok(all)
}

fn state_of(service: &aws_sdk_ecs::types::Service) -> ServiceState {
    let vpc = service
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration());
    ServiceState {
        counts: Counts {
            desired: service.desired_count(),
            running: service.running_count(),
        },
        deployments: service.deployments().len(),
        task_definition: service.task_definition().unwrap_or_default().to_owned(),
        subnets: vpc.map(|v| v.subnets().to_vec()).unwrap_or_default(),
        assign_public_ip: vpc.and_then(|v| v.assign_public_ip())
            == Some(&aws_sdk_ecs::types::AssignPublicIp::Enabled),
    }
}

/// The counts of `services` (physical ids) in `cluster`, in the same order.
pub async fn counts(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    services: &[String],
) -> anyhow::Result<Vec<Counts>> {
    Ok(states(ecs, cluster, services)
        .await?
        .into_iter()
        .map(|s| s.counts)
        .collect())
}

/// Tasks of a service (running or on their way) that ECS created before `since`.
pub async fn tasks_created_before(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    since: std::time::SystemTime,
) -> anyhow::Result<Vec<String>> {
    // ListTasks takes a service *name*; a service's physical id is its ARN.
    let name = service.rsplit('/').next().unwrap_or(service);
    let listed = ecs
        .list_tasks()
        .cluster(cluster)
        .service_name(name)
        .send()
        .await
        .map_err(|e| anyhow!("cannot list the tasks of {name}: {}", describe(&e)))?;
    let arns = listed.task_arns().to_vec();
    let mut old = Vec::new();
    // DescribeTasks takes at most 100 tasks per call.
    for chunk in arns.chunks(100) {
        let out = ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| anyhow!("cannot describe the tasks of {name}: {}", describe(&e)))?;
        for task in out.tasks() {
            let created = task
                .created_at()
                .and_then(|d| std::time::SystemTime::try_from(*d).ok());
            if created.is_some_and(|c| c < since) {
                old.push(task.task_arn().unwrap_or_default().to_owned());
            }
        }
    }
    Ok(old)
}

/// Starts a new deployment of a service with its current task definition: its tasks
/// are replaced and read their secrets again.
pub async fn restart(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
) -> anyhow::Result<()> {
    ecs.update_service()
        .cluster(cluster)
        .service(service)
        .force_new_deployment(true)
        .send()
        .await
        .map_err(|e| anyhow!("cannot restart {service}: {}", describe(&e)))?;
    Ok(())
}

/// Sets a service's desired count.
pub async fn set_desired_count(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    service: &str,
    count: i32,
) -> anyhow::Result<()> {
    ecs.update_service()
        .cluster(cluster)
        .service(service)
        .desired_count(count)
        .send()
        .await
        .map_err(|e| anyhow!("cannot scale {service} to {count}: {}", describe(&e)))?;
    Ok(())
}

/// Waits until none of `services` (physical ids) in `cluster` runs a task any more, or
/// `timeout` has passed; returns each service that still runs tasks, with their number.
/// A Fargate task gets up to 120 s between SIGTERM and SIGKILL (its `stopTimeout`), and
/// a worker under task scale-in protection is not stopped until it clears it.
pub async fn wait_drained(
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    services: &[String],
    timeout: std::time::Duration,
) -> anyhow::Result<Vec<(String, i32)>> {
    let started = std::time::Instant::now();
    let mut delay = std::time::Duration::from_secs(1);
    loop {
        let now = counts(ecs, cluster, services).await?;
        let running: Vec<(String, i32)> = services
            .iter()
            .zip(&now)
            .filter(|(_, c)| c.running > 0)
            .map(|(s, c)| (s.clone(), c.running))
            .collect();
        if running.is_empty() || started.elapsed() >= timeout {
            return Ok(running);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(10));
    }
}
