//! ECS: cluster, task definitions, services.

use serde::Serialize;
use serde_with::skip_serializing_none;

use super::{resource, Tag};
use crate::cfn::{Expr, Handle};

/// `AWS::ECS::Cluster` with its capacity providers.
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Cluster {
    pub cluster_name: Option<Expr>,
    pub capacity_providers: Vec<&'static str>,
    pub default_capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
    pub cluster_settings: Vec<ClusterSetting>,
    pub tags: Vec<Tag>,
}
resource!(Cluster, "AWS::ECS::Cluster");

impl Handle<Cluster> {
    /// `Fn::GetAtt Arn`
    pub fn arn(&self) -> Expr {
        self.get_att("Arn")
    }
}

/// A cluster setting such as Container Insights.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClusterSetting {
    pub name: &'static str,
    pub value: &'static str,
}

/// One entry of a capacity provider strategy.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CapacityProviderStrategyItem {
    pub capacity_provider: &'static str,
    pub weight: u32,
    pub base: u32,
}

/// `AWS::ECS::TaskDefinition` for Fargate.
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskDefinition {
    pub family: Expr,
    pub cpu: String,
    pub memory: String,
    pub network_mode: &'static str,
    pub requires_compatibilities: Vec<&'static str>,
    pub runtime_platform: RuntimePlatform,
    pub execution_role_arn: Expr,
    pub task_role_arn: Option<Expr>,
    pub container_definitions: Vec<ContainerDefinition>,
    pub tags: Vec<Tag>,
}
resource!(TaskDefinition, "AWS::ECS::TaskDefinition");

/// CPU architecture and OS of a Fargate task.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimePlatform {
    pub cpu_architecture: &'static str,
    pub operating_system_family: &'static str,
}

/// A container of a task definition.
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerDefinition {
    pub name: String,
    pub image: String,
    pub essential: bool,
    pub command: Vec<String>,
    pub environment: Vec<KeyValue>,
    pub secrets: Vec<SecretRef>,
    pub port_mappings: Vec<PortMapping>,
    pub health_check: Option<HealthCheck>,
    pub log_configuration: LogConfiguration,
    pub stop_timeout: Option<u32>,
    pub linux_parameters: Option<LinuxParameters>,
    pub readonly_root_filesystem: Option<bool>,
}

/// An environment variable. Never a secret: those go through [`SecretRef`].
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyValue {
    pub name: String,
    pub value: Expr,
}

/// A secret injected at container start from Secrets Manager (`valueFrom` an ARN).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretRef {
    pub name: String,
    pub value_from: Expr,
}

/// A TCP port the container listens on.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortMapping {
    pub container_port: u16,
    pub protocol: &'static str,
    pub name: String,
}

/// A container health check (ECS limits: interval 5-300 s, timeout 2-60 s,
/// retries 1-10, start period 0-300 s).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthCheck {
    pub command: Vec<String>,
    pub interval: u32,
    pub timeout: u32,
    pub retries: u32,
    pub start_period: u32,
}

/// Log driver settings (awslogs to the component's log group).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogConfiguration {
    pub log_driver: &'static str,
    pub options: AwsLogsOptions,
}

/// Options of the awslogs driver.
#[derive(Clone, Debug, Serialize)]
pub struct AwsLogsOptions {
    #[serde(rename = "awslogs-group")]
    pub group: Expr,
    #[serde(rename = "awslogs-region")]
    pub region: Expr,
    #[serde(rename = "awslogs-stream-prefix")]
    pub stream_prefix: String,
}

/// Linux settings; `InitProcessEnabled` reaps zombies and forwards signals.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LinuxParameters {
    pub init_process_enabled: bool,
}

/// `AWS::ECS::Service` on Fargate.
#[skip_serializing_none]
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Service {
    pub cluster: Expr,
    pub task_definition: Expr,
    /// `None` leaves the count to someone else (the scaler): CloudFormation then uses 1
    /// on create and never resets the count on update.
    pub desired_count: Option<u32>,
    pub capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
    pub platform_version: &'static str,
    pub network_configuration: NetworkConfiguration,
    pub deployment_configuration: DeploymentConfiguration,
    pub service_registries: Option<Vec<ServiceRegistry>>,
    pub enable_execute_command: bool,
    pub propagate_tags: &'static str,
    pub tags: Vec<Tag>,
}
resource!(Service, "AWS::ECS::Service");

impl Handle<Service> {
    /// `Fn::GetAtt Name`
    pub fn name(&self) -> Expr {
        self.get_att("Name")
    }

    /// The service ARN (what `Ref` returns for a service).
    pub fn arn(&self) -> Expr {
        self.r#ref()
    }
}

/// The awsvpc network of a Fargate service.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkConfiguration {
    pub awsvpc_configuration: AwsVpcConfiguration,
}

/// Subnets, security groups and public IP of a Fargate task.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AwsVpcConfiguration {
    pub subnets: Vec<Expr>,
    pub security_groups: Vec<Expr>,
    pub assign_public_ip: &'static str,
}

/// Rolling deployment settings with the circuit breaker.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentConfiguration {
    pub deployment_circuit_breaker: DeploymentCircuitBreaker,
    pub minimum_healthy_percent: u32,
    pub maximum_percent: u32,
}

/// Stops a deployment whose tasks keep failing and rolls it back, so CloudFormation
/// does not wait for hours on a crash loop.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeploymentCircuitBreaker {
    pub enable: bool,
    pub rollback: bool,
}

/// Registration of a service's tasks in Cloud Map.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceRegistry {
    pub registry_arn: Expr,
}

impl ContainerDefinition {
    /// Sets the command (what follows the image's entrypoint).
    pub fn with_command(mut self, command: Vec<String>) -> Self {
        self.command = command;
        self
    }
    /// Adds environment variables.
    pub fn with_env(mut self, env: Vec<KeyValue>) -> Self {
        self.environment.extend(env);
        self
    }
    /// Adds secrets injected from Secrets Manager.
    pub fn with_secrets(mut self, secrets: Vec<SecretRef>) -> Self {
        self.secrets.extend(secrets);
        self
    }
    /// Sets the listening ports.
    pub fn with_ports(mut self, ports: Vec<PortMapping>) -> Self {
        self.port_mappings = ports;
        self
    }
    /// Sets the health check.
    pub fn with_health_check(mut self, check: HealthCheck) -> Self {
        self.health_check = Some(check);
        self
    }
    /// Sets the seconds between SIGTERM and SIGKILL (at most 120 on Fargate).
    pub fn with_stop_timeout(mut self, seconds: u32) -> Self {
        self.stop_timeout = Some(seconds);
        self
    }
}

impl KeyValue {
    /// An environment variable.
    pub fn new(name: &str, value: impl Into<Expr>) -> KeyValue {
        KeyValue {
            name: name.to_string(),
            value: value.into(),
        }
    }
}
