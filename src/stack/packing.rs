//! `services.packing: core`: api-server, scheduler, dag-processor and triggerer as four
//! containers of one Fargate task. Each container keeps its name, command, health check,
//! ports and log group; the task gets every component's security group (so each
//! database and Redis rule still matches) and the one task role whose S3 access covers
//! all four (the triggerer's: read and write task logs, read DAGs).
//!
//! Why: on Fargate every task pays its own minimum size and, in public subnets, its
//! own public IPv4 address; four small always-on tasks cost more than one.

use super::component::CORE_ID;
use super::fargate::{self, Deployment, Infra, Reach, ServiceSpec, TaskDefinitionSpec};
use super::scope::Scope;
use crate::cfn::l1::ecs::task_definition::ContainerDefinition;
use crate::cfn::l1::ecs::Service;
use crate::cfn::{Attributes, Expr, Handle, LogicalId};

/// The roles of the shared task, as ARNs.
pub struct TaskRoles {
    /// Starts the task.
    pub execution: Expr,
    /// The four components' code runs with it.
    pub task: Option<Expr>,
}

/// Containers collected for the shared task while the components are built.
#[derive(Default)]
pub struct Core {
    containers: Vec<ContainerDefinition>,
    security_groups: Vec<Expr>,
    registry: Option<Expr>,
    /// What the components wait for, together (migration, network paths, routes).
    ready: Vec<LogicalId>,
    /// How people reach the task: the api-server container's ECS Exec or target group.
    pub reach: Reach,
}

impl Core {
    /// Adds one component's container, security groups, Cloud Map registration and
    /// the resources it waits for.
    pub fn push(
        &mut self,
        container: ContainerDefinition,
        security_groups: Vec<Expr>,
        registry: Option<Expr>,
        ready: Vec<LogicalId>,
    ) {
        self.containers.push(container);
        self.security_groups.extend(security_groups);
        self.registry = self.registry.take().or(registry);
        for id in ready {
            if !self.ready.contains(&id) {
                self.ready.push(id);
            }
        }
    }

    /// Adds the shared task definition and service `CoreService`, if any component
    /// was packed.
    pub fn finish(self, s: &mut Scope, infra: &Infra, roles: TaskRoles) -> Option<Handle<Service>> {
        if self.containers.is_empty() {
            return None;
        }
        let core = &s.spec.services.core;
        Some(fargate::add_service(
            s,
            infra,
            ServiceSpec {
                id: CORE_ID.into(),
                service_name: None,
                task: TaskDefinitionSpec {
                    family_suffix: "core".into(),
                    cpu: core.cpu,
                    memory: core.memory,
                    containers: self.containers,
                    execution_role: roles.execution,
                    task_role: roles.task,
                    architecture: None,
                },
                desired_count: Some(core.count),
                spot: core.spot,
                security_groups: self.security_groups,
                registry: self.registry,
                depends_on: Attributes::depends_on(self.ready),
                deployment: Deployment::StartFirst,
                reach: self.reach,
            },
        ))
    }
}
