//! `services.packing: core`: api-server, scheduler, dag-processor and triggerer as four
//! containers of one Fargate task. Each container keeps its name, command, health check,
//! ports and log group; the task gets every component's security group (so each
//! database and Redis rule still matches) and the one task role whose S3 access covers
//! all four (the triggerer's: read and write task logs, read DAGs).
//!
//! Why: on Fargate every task pays its own minimum size and, in public subnets, its
//! own public IPv4 address; four small always-on tasks cost more than one.

use super::cluster::Cluster;
use super::iam::Roles;
use super::network::Network;
use super::services::{add_service, Deployment, TaskSpec};
use super::Tags;
use crate::cfn::aws::ecs::{ContainerDefinition, Service};
use crate::cfn::{Attributes, Expr, Handle, LogicalId, Template};
use crate::spec::{Packing, Spec};

/// Logical id prefix and family suffix of the shared task.
pub const CORE_ID: &str = "Core";

/// The components the shared task runs, by logical id prefix.
const PACKED: &[&str] = &["ApiServer", "Scheduler", "DagProcessor", "Triggerer"];

/// Containers collected for the shared task while the components are built.
#[derive(Default)]
pub struct Core {
    containers: Vec<ContainerDefinition>,
    security_groups: Vec<Expr>,
    registry: Option<Expr>,
    /// What the components wait for, together (migration, network paths, routes).
    ready: Vec<LogicalId>,
}

impl Core {
    /// Whether the component `id` goes into the shared task for this spec.
    pub fn takes(spec: &Spec, id: &str) -> bool {
        spec.services.packing == Packing::Core && PACKED.contains(&id)
    }

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
    pub fn finish(
        self,
        t: &mut Template,
        spec: &Spec,
        net: &Network,
        cluster: &Cluster,
        roles: &Roles,
        tags: &Tags,
    ) -> Option<Handle<Service>> {
        if self.containers.is_empty() {
            return None;
        }
        let core = &spec.services.core;
        Some(add_service(
            t,
            spec,
            TaskSpec {
                id: CORE_ID,
                family_suffix: "core",
                cpu: core.cpu,
                memory: core.memory,
                count: core.count,
                spot: core.spot,
                containers: self.containers,
                execution_role: roles.execution.arn(),
                task_role: Some(roles.task("Core").arn()),
                security_groups: self.security_groups,
                registry: self.registry,
                depends_on: Attributes::depends_on(self.ready),
                deployment: Deployment::StartFirst,
            },
            net,
            cluster,
            tags,
        ))
    }
}
