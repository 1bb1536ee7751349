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
use super::iam::Roles;
use super::migration::one_off_task;
use super::scope::Scope;

/// Logical id of the task definition `rotate-fernet` runs.
pub const TASK_DEFINITION: &str = "RotateFernetTaskDefinition";

/// The image's entrypoint runs `airflow <args>` for an Airflow subcommand.
const COMMAND: &str = "rotate-fernet-key";

/// Adds the task definition and its log group.
pub fn add(s: &mut Scope, roles: &Roles, shared: &SharedConfig) {
    let (definition, _) = one_off_task(
        s,
        Component::RotateFernet,
        vec![COMMAND.into()],
        roles,
        shared,
    );
    debug_assert_eq!(definition.id().as_str(), TASK_DEFINITION);
}
