//! Database migration at deploy time: a one-off ECS task (`airflow db migrate`, then
//! the admin user with FAB) run by `Custom::AirflowMigration`, whose Rust Lambda
//! (lambdas/migration) waits for the task across Lambda's 15-minute limit by
//! re-invoking itself. Every Airflow service depends on it, so no service starts on an
//! unmigrated database and a version upgrade migrates before the rollout.

use std::collections::BTreeMap;

use airflow_stack_contract::migration::{
    MigrationProperties, MAX_WAIT_SECONDS, RESOURCE_TYPE, SERVICE_TIMEOUT_SECONDS,
};
use airflow_stack_contract::scaler::DEFAULT_ADMIN_USERNAME;

use super::airflow_config::{SharedConfig, ADMIN_PASSWORD_ENV};
use super::component::Component;
use super::connections::Backends;
use super::fargate::{self, Infra, TaskDefinitionSpec};
use super::iam::Roles;
use super::rust_function::{self, RustFunctionSpec};
use super::scope::Scope;
use super::security;
use crate::cfn::custom::CustomResource;
use crate::cfn::l1::ecs::task_definition::ContainerDefinition;
use crate::cfn::l1::ecs::TaskDefinition;
use crate::cfn::l1::logs::LogGroup;
use crate::cfn::l1::Statement;
use crate::cfn::{Attributes, Expr, Handle, LogicalId};
use crate::spec::{AuthManager, Spec};

/// What the services wait for.
pub struct Migration {
    /// The migration resource and the broker.
    pub ready: Vec<LogicalId>,
}

/// The migration container's command: migrate, then (FAB) create the admin user.
/// `users create` prints "already exists" and exits 0 on later runs, so it is idempotent;
/// `set -e` makes a failed migration fail the task instead of being swallowed.
pub fn migrate_command(spec: &Spec) -> Vec<Expr> {
    match spec.airflow.auth_manager {
        AuthManager::Simple => vec!["db".into(), "migrate".into()],
        AuthManager::Fab => vec![
            "bash".into(),
            "-c".into(),
            format!(
                "set -euo pipefail; airflow db migrate; airflow users create --username {DEFAULT_ADMIN_USERNAME} --password \"${ADMIN_PASSWORD_ENV}\" \
                 --role Admin --firstname Airflow --lastname Admin --email admin@example.invalid"
            )
            .into(),
        ],
    }
}

/// Adds the migration task, its Lambda and `Custom::AirflowMigration`; returns what
/// the Airflow services must wait for.
pub fn add(
    s: &mut Scope,
    infra: &Infra,
    roles: &Roles,
    shared: &SharedConfig,
    backends: &Backends,
) -> Migration {
    let spec = s.spec;
    let me = Component::Migrate;
    let log_group = fargate::log_group(s, me.id(), me.name());
    let container = ContainerDefinition {
        command: migrate_command(spec),
        environment: shared.env.clone(),
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
    let function = add_function(s, infra, roles, &definition, &log_group);
    let (net, sg, cluster) = (infra.net, infra.sg, infra.cluster);
    let properties = MigrationProperties {
        cluster: cluster.handle.r#ref(),
        task_definition: definition.r#ref(),
        container_name: Expr::lit(me.name()),
        subnets: net.subnets.clone(),
        security_groups: security::ids(&[sg.of(me)]),
        assign_public_ip: net.assign_public_ip,
        log_group_name: log_group.r#ref(),
        log_stream_prefix: Expr::lit(me.name()),
        // Compared on Update: a change migrates again, a lower version does nothing.
        airflow_version: Some(Expr::lit(spec.airflow.version.clone())),
        image: Some(Expr::lit(spec.airflow_image())),
        database_host: Some(backends.database.host.clone()),
        max_wait_seconds: MAX_WAIT_SECONDS,
    };
    let migration = CustomResource::new(RESOURCE_TYPE, function, SERVICE_TIMEOUT_SECONDS)
        .with_properties(properties.to_properties());
    // The task must reach PostgreSQL (its ingress rule) and, to pull the image and read
    // its secrets, the internet (the subnets' routes) before it starts: CloudFormation
    // would otherwise create those in parallel with the migration.
    let attrs = Attributes::depends_on(
        [backends.urls_written.clone()]
            .into_iter()
            .chain(backends.database.writer.clone())
            .chain(sg.paths_of(me))
            .chain(net.egress_ready.iter().cloned()),
    );
    let handle = s.t.add_with("Migration", migration, attrs);
    Migration {
        ready: vec![handle.id().clone(), backends.broker.ready.clone()],
    }
}

/// The migration Lambda and its least-privilege role: run and watch exactly the
/// migration task, read its log group, re-invoke itself.
fn add_function(
    s: &mut Scope,
    infra: &Infra,
    roles: &Roles,
    task_definition: &Handle<TaskDefinition>,
    task_log_group: &Handle<LogGroup>,
) -> Expr {
    let function_name = format!("{}-migration", s.spec.name);
    let cluster = &infra.cluster.handle;
    // Its own ARN is built from the fixed name: `Fn::GetAtt` on the function would make
    // the role depend on the function that depends on the role.
    let self_arn = Expr::arn("lambda", Expr::lit(format!("function:{function_name}")));
    let tasks_in_cluster = Expr::arn(
        "ecs",
        Expr::concat(vec![Expr::lit("task/"), cluster.r#ref(), Expr::lit("/*")]),
    );
    let mut run_task = Statement::allow(&["ecs:RunTask"], vec![task_definition.r#ref()]);
    run_task.condition = Some(serde_json::json!({"ArnEquals": {"ecs:cluster": cluster.arn()}}));
    let statements = vec![
        run_task,
        Statement::allow(&["ecs:DescribeTasks"], vec![tasks_in_cluster]),
        Statement::allow(&["iam:PassRole"], vec![roles.execution.arn()]),
        Statement::allow(&["logs:GetLogEvents"], vec![task_log_group.arn()]),
        Statement::allow(&["lambda:InvokeFunction"], vec![self_arn]),
    ];
    let code_key = s.assets.migration_key.clone();
    let f = rust_function::add(
        s,
        RustFunctionSpec {
            id: "Migration",
            log_name: "migration-function",
            function_name: Some(function_name),
            description:
                "airflow-stack migration custom resource: runs airflow db migrate as an ECS task",
            role_description: "Runs and watches the Airflow database migration task",
            policy_name: "run-migration",
            statements,
            code_key,
            timeout: 900,
            environment: BTreeMap::new(),
            vpc_config: None,
            reserved_concurrency: None,
        },
    );
    f.arn()
}
