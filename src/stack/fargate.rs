//! A Fargate service construct: log group, container defaults, task definition and the
//! service with its circuit breaker. Nothing here knows Airflow; the Airflow services,
//! the packed core task and Redis on Fargate are all made with it.

use std::collections::BTreeMap;

use super::cluster::Cluster;
use super::network::Network;
use super::scope::{ScaledService, Scope};
use super::security::SecurityGroups;
use crate::cfn::l1::ecs::service::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, DeploymentCircuitBreaker,
    DeploymentConfiguration, LoadBalancer, NetworkConfiguration, PropagateTags, ServiceRegistry,
};
use crate::cfn::l1::ecs::task_definition::{
    ContainerDefinition, CpuArchitecture, LogConfiguration, NetworkMode, OperatingSystemFamily,
    PortMapping, Protocol, RequiresCompatibilitiesItem, RuntimePlatform,
};
use crate::cfn::l1::ecs::{Service, TaskDefinition};
use crate::cfn::l1::logs::LogGroup;
use crate::cfn::{Attributes, Expr, Handle, Pseudo};
use crate::spec::Architecture;

/// Where tasks run: subnets, security groups, cluster and Cloud Map namespace.
pub struct Infra<'a> {
    /// The VPC and its subnets.
    pub net: &'a Network,
    /// The security groups and their ingress rules.
    pub sg: &'a SecurityGroups,
    /// The ECS cluster and the Cloud Map namespace.
    pub cluster: &'a Cluster,
}

/// A log group `/airflow-stack/<stack>/<name>` with the stack's retention, as
/// `<id>LogGroup`.
pub fn log_group(s: &mut Scope, id: &str, name: &str) -> Handle<LogGroup> {
    let resource = LogGroup {
        log_group_name: Some(s.log_group_name(name)),
        retention_in_days: Some(s.spec.logs.retention_days.into()),
        kms_key_id: s.kms_key_arn(),
        tags: s.tags.all(),
        ..LogGroup::default()
    };
    s.t.add(&format!("{id}LogGroup"), resource)
}

/// A container with the stack's defaults: essential, logging to `log_group` with the
/// container's name as stream prefix. Callers set the rest with struct update syntax
/// (`ContainerDefinition { command, ..container(..) }`).
pub fn container(
    name: &str,
    image: impl Into<Expr>,
    log_group: &Handle<LogGroup>,
) -> ContainerDefinition {
    // The awslogs driver's options, as ECS names them:
    // https://docs.aws.amazon.com/AmazonECS/latest/developerguide/using_awslogs.html
    let options = BTreeMap::from([
        ("awslogs-group".to_string(), log_group.r#ref()),
        ("awslogs-region".to_string(), Expr::Pseudo(Pseudo::Region)),
        ("awslogs-stream-prefix".to_string(), Expr::lit(name)),
    ]);
    ContainerDefinition {
        name: Some(name.into()),
        image: Some(image.into()),
        essential: Some(true),
        log_configuration: Some(LogConfiguration {
            log_driver: Some("awslogs".into()),
            options,
            ..LogConfiguration::default()
        }),
        ..ContainerDefinition::default()
    }
}

/// A TCP port a container listens on, with the name ECS shows for it.
pub fn tcp_port(name: &str, port: u16) -> PortMapping {
    PortMapping {
        container_port: Some(port.into()),
        protocol: Some(Protocol::Tcp),
        name: Some(name.into()),
        ..PortMapping::default()
    }
}

/// A Fargate task definition: what runs, how big, with which roles.
pub struct TaskDefinitionSpec {
    /// The family is `<stack>-<family_suffix>`.
    pub family_suffix: String,
    /// CPU units.
    pub cpu: u32,
    /// Memory in MiB.
    pub memory: u32,
    /// The containers.
    pub containers: Vec<ContainerDefinition>,
    /// Role ECS uses to start the task (secrets, logs).
    pub execution_role: Expr,
    /// Role the containers' code uses, if they make AWS calls.
    pub task_role: Option<Expr>,
    /// The instruction set; `None` is the stack's `services.architecture`. (A task
    /// running a binary built for the Lambdas runs on theirs.)
    pub architecture: Option<Architecture>,
}

/// A Fargate task definition for the stack's architecture, as `<id>TaskDefinition`.
pub fn task_definition(
    s: &mut Scope,
    id: &str,
    task: TaskDefinitionSpec,
) -> Handle<TaskDefinition> {
    let cpu_architecture = match task.architecture.unwrap_or(s.spec.services.architecture) {
        Architecture::X86_64 => CpuArchitecture::X86_64,
        Architecture::Arm64 => CpuArchitecture::Arm64,
    };
    let resource = TaskDefinition {
        family: Some(Expr::lit(format!("{}-{}", s.spec.name, task.family_suffix))),
        cpu: Some(task.cpu.to_string().into()),
        memory: Some(task.memory.to_string().into()),
        network_mode: Some(NetworkMode::Awsvpc),
        requires_compatibilities: vec![RequiresCompatibilitiesItem::Fargate],
        runtime_platform: Some(RuntimePlatform {
            cpu_architecture: Some(cpu_architecture),
            operating_system_family: Some(OperatingSystemFamily::Linux),
        }),
        execution_role_arn: Some(task.execution_role),
        task_role_arn: task.task_role,
        container_definitions: task.containers,
        tags: s.tags.all(),
        ..TaskDefinition::default()
    };
    s.t.add(&format!("{id}TaskDefinition"), resource)
}

/// Everything that differs between two Fargate services.
pub struct ServiceSpec {
    /// Logical id prefix: `<id>TaskDefinition`, `<id>Service`.
    pub id: String,
    /// A fixed `ServiceName`, for a service something finds by name; `None` lets
    /// CloudFormation name it (and replace it freely).
    pub service_name: Option<String>,
    /// The task definition.
    pub task: TaskDefinitionSpec,
    /// Tasks to run; `None` leaves the count to a scaler (a count in the template would
    /// be re-applied by every stack update that touches the service).
    pub desired_count: Option<u32>,
    /// On Fargate Spot.
    pub spot: bool,
    /// Security group ids of the tasks.
    pub security_groups: Vec<Expr>,
    /// Cloud Map service ARN, for services others call by name.
    pub registry: Option<Expr>,
    /// What must exist before the first task starts.
    pub depends_on: Attributes,
    /// How tasks are replaced.
    pub deployment: Deployment,
    /// How people reach the service's tasks (ECS Exec, a load balancer); nothing for
    /// every service but the api-server's.
    pub reach: Reach,
}

/// How people reach a service's tasks, from the access construct.
#[derive(Clone, Default)]
pub struct Reach {
    /// ECS Exec (`EnableExecuteCommand`).
    pub execute_command: bool,
    /// The load balancer target group the tasks register in.
    pub load_balancer: Option<LoadBalancer>,
    /// Seconds before the balancer's health checks count against a new task.
    pub health_check_grace_seconds: Option<i64>,
}

/// How ECS replaces a service's tasks on a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deployment {
    /// Start the new tasks, then stop the old ones (100 % / 200 %): no downtime, two
    /// generations run side by side for a while.
    StartFirst,
    /// Stop the old task, then start the new one (0 % / 100 %): for a service of which
    /// two must never run at once, such as the one Redis broker behind one Cloud Map
    /// name (two would split the queue between them).
    StopFirst,
}

impl Deployment {
    /// `(minimumHealthyPercent, maximumPercent)`.
    fn percents(self) -> (i64, i64) {
        match self {
            Deployment::StartFirst => (100, 200),
            Deployment::StopFirst => (0, 100),
        }
    }
}

/// Adds a task definition and its service, with the deployment circuit breaker on
/// (a service whose tasks keep failing rolls back instead of retrying for hours).
pub fn add_service(s: &mut Scope, infra: &Infra, service: ServiceSpec) -> Handle<Service> {
    let id = service.id.as_str();
    let family_suffix = service.task.family_suffix.clone();
    let definition = task_definition(s, id, service.task);
    let capacity_provider = if service.spot {
        "FARGATE_SPOT"
    } else {
        "FARGATE"
    };
    let (minimum_healthy_percent, maximum_percent) = service.deployment.percents();
    let assign_public_ip = if infra.net.assign_public_ip {
        AssignPublicIp::Enabled
    } else {
        AssignPublicIp::Disabled
    };
    let resource = Service {
        cluster: Some(infra.cluster.handle.r#ref()),
        task_definition: Some(definition.r#ref()),
        desired_count: service.desired_count.map(i64::from),
        capacity_provider_strategy: Some(vec![CapacityProviderStrategyItem {
            capacity_provider: Some(capacity_provider.into()),
            weight: Some(1),
            base: Some(0),
        }]),
        platform_version: Some("LATEST".into()),
        network_configuration: Some(NetworkConfiguration {
            awsvpc_configuration: Some(AwsVpcConfiguration {
                subnets: infra.net.subnets.clone(),
                security_groups: service.security_groups,
                assign_public_ip: Some(assign_public_ip),
            }),
        }),
        deployment_configuration: Some(DeploymentConfiguration {
            deployment_circuit_breaker: Some(DeploymentCircuitBreaker {
                enable: Some(true),
                rollback: Some(true),
                ..DeploymentCircuitBreaker::default()
            }),
            minimum_healthy_percent: Some(minimum_healthy_percent),
            maximum_percent: Some(maximum_percent),
            ..DeploymentConfiguration::default()
        }),
        service_registries: service.registry.map(|arn| {
            vec![ServiceRegistry {
                registry_arn: Some(arn),
                ..ServiceRegistry::default()
            }]
        }),
        enable_execute_command: Some(service.reach.execute_command),
        load_balancers: service.reach.load_balancer.map(|lb| vec![lb]),
        health_check_grace_period_seconds: service.reach.health_check_grace_seconds,
        service_name: service.service_name.map(Expr::lit),
        propagate_tags: Some(PropagateTags::Service),
        tags: s.tags.named(&format!("{}-{family_suffix}", s.spec.name)),
        ..Service::default()
    };
    let handle =
        s.t.add_with(&format!("{id}Service"), resource, service.depends_on);
    s.record_service(ScaledService {
        id: handle.id().clone(),
        desired_count: service.desired_count,
    });
    handle
}
