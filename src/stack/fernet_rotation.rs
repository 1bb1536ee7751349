//! The Fernet re-encryption task: a task definition that nothing runs on its own.
//! `airflow-stack rotate-fernet` starts it (RunTask) once a rotation has put
//! `new,<every old key>` into the Fernet secret and the services rolled, so that
//! `airflow rotate-fernet-key` rewrites every encrypted connection and variable under
//! the new key; only then may the old keys be dropped.
//!
//! Its command lives in the task definition, not in a RunTask override: what runs with
//! the Fernet key and the database URL is in the template, where `diff` and the
//! approval gate see it.

use super::airflow_config::SharedConfig;
use super::component::Component;
use super::fargate::{self, TaskDefinitionSpec};
use super::iam::Roles;
use super::scope::Scope;
use crate::cfn::l1::ecs::task_definition::ContainerDefinition;

/// Logical id of the task definition `rotate-fernet` runs.
pub const TASK_DEFINITION: &str = "RotateFernetTaskDefinition";

/// The image's entrypoint runs `airflow <args>` for an Airflow subcommand.
const COMMAND: &str = "rotate-fernet-key";

/// Adds the task definition and its log group.
pub fn add(s: &mut Scope, roles: &Roles, shared: &SharedConfig) {
    let spec = s.spec;
    let me = Component::RotateFernet;
    let log_group = fargate::log_group(s, me.id(), me.name());
    let container = ContainerDefinition {
        command: vec![COMMAND.into()],
        environment: shared.env_for(spec, me),
        secrets: shared.secrets_for(spec, me),
        ..fargate::container(me.name(), spec.airflow_image(), &log_group)
    };
    let size = me.size(spec);
    let definition = fargate::task_definition(
        s,
        me.id(),
        TaskDefinitionSpec {
            family_suffix: me.name(),
            cpu: size.cpu,
            memory: size.memory,
            containers: vec![container],
            execution_role: roles.execution.arn(),
            task_role: None,
        },
    );
    debug_assert_eq!(definition.id().as_str(), TASK_DEFINITION);
}
