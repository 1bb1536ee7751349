//! Database migration at deploy time: a one-off ECS task (`airflow db migrate`, then
//! the admin user with FAB) run by `Custom::AirflowMigration`, whose Rust Lambda
//! (lambdas/migration) waits for the task across Lambda's 15-minute limit by
//! re-invoking itself. Every Airflow service depends on it, so no service starts on an
//! unmigrated database and a version upgrade migrates before the rollout.

use super::assets::AssetParameters;
use super::broker::Broker;
use super::cluster::Cluster;
use super::database::Database;
use super::iam::Roles;
use super::network::Network;
use super::secrets::ConnectionUrls;
use super::security::{self, SecurityGroups};
use super::services::{self, SharedConfig, ADMIN_PASSWORD_ENV};
use super::Tags;
use crate::cfn::aws::custom::CustomResource;
use crate::cfn::aws::iam::{InlinePolicy, PolicyDocument, Role, Statement};
use crate::cfn::aws::lambda::{Code, Function, LoggingConfig};
use crate::cfn::aws::logs::LogGroup;
use crate::cfn::{Attributes, Expr, LogicalId, Template};
use crate::spec::{AuthManager, Spec};

/// What the services wait for.
pub struct Migration {
    /// The migration resource and the broker.
    pub ready: Vec<LogicalId>,
}

/// Seconds CloudFormation waits for the migration resource (its maximum).
pub const SERVICE_TIMEOUT_SECONDS: u32 = 3600;
/// The Lambda's own overall limit: below the service timeout, so it can still answer.
pub const MAX_WAIT_SECONDS: u32 = 3300;

/// The migration container's command: migrate, then (FAB) create the admin user.
/// `users create` prints "already exists" and exits 0 on later runs, so it is idempotent;
/// `set -e` makes a failed migration fail the task instead of being swallowed.
pub fn migrate_command(spec: &Spec) -> Vec<String> {
    match spec.airflow.auth_manager {
        AuthManager::Simple => vec!["db".into(), "migrate".into()],
        AuthManager::Fab => vec![
            "bash".into(),
            "-c".into(),
            format!(
                "set -euo pipefail; airflow db migrate; airflow users create --username admin --password \"${ADMIN_PASSWORD_ENV}\" \
                 --role Admin --firstname Airflow --lastname Admin --email admin@example.invalid"
            ),
        ],
    }
}

#[allow(clippy::too_many_arguments)]
pub fn add(
    t: &mut Template,
    spec: &Spec,
    assets: &AssetParameters,
    net: &Network,
    sg: &SecurityGroups,
    cluster: &Cluster,
    roles: &Roles,
    shared: &SharedConfig,
    urls: &ConnectionUrls,
    db: &Database,
    broker: &Broker,
    tags: &Tags,
) -> Migration {
    let log_group = services::log_group(t, spec, "Migrate", "migrate", tags);
    let mut secrets = shared.secrets_for("migrate");
    secrets.push(shared.admin_password.clone());
    let container = services::container(spec, "migrate", spec.airflow_image(), &log_group)
        .with_command(migrate_command(spec))
        .with_env(shared.env.clone())
        .with_secrets(secrets);
    let definition = t.add(
        "MigrateTaskDefinition",
        services::task_definition(
            spec,
            "migrate",
            (1024, 2048),
            vec![container],
            roles.execution.arn(),
            None,
            tags.all(),
        ),
    );
    let function_name = format!("{}-migration", spec.name);
    let function = add_function(
        t,
        spec,
        assets,
        &function_name,
        &definition.r#ref(),
        roles,
        cluster,
        &log_group,
        tags,
    );
    let migration = CustomResource::new(
        "Custom::AirflowMigration",
        function,
        SERVICE_TIMEOUT_SECONDS,
    )
    .prop("Cluster", cluster.handle.r#ref())
    .prop("TaskDefinition", definition.r#ref())
    .prop("ContainerName", "migrate")
    .list("Subnets", net.subnets.clone())
    .list("SecurityGroups", security::ids(&[&sg.migrate]))
    .prop("AssignPublicIp", net.assign_public_ip)
    .prop("LogGroupName", log_group.r#ref())
    .prop("LogStreamPrefix", "migrate")
    .prop("AirflowVersion", spec.airflow.version.clone())
    .prop("Image", spec.airflow_image())
    .prop("DatabaseHost", db.host.clone())
    .prop("MaxWaitSeconds", MAX_WAIT_SECONDS.to_string());
    // The task must reach PostgreSQL (its ingress rule) and, to pull the image and read
    // its secrets, the internet (the subnets' routes) before it starts: CloudFormation
    // would otherwise create those in parallel with the migration.
    let attrs = Attributes::depends_on(
        [urls.written.clone()]
            .into_iter()
            .chain(db.writer.clone())
            .chain(sg.paths_of("Migrate"))
            .chain(net.egress_ready.iter().cloned()),
    );
    let handle = t.add_with("Migration", migration, attrs);
    Migration {
        ready: vec![handle.id().clone(), broker.ready.clone()],
    }
}

/// The migration Lambda and its least-privilege role: run and watch exactly the
/// migration task, read its log group, re-invoke itself.
#[allow(clippy::too_many_arguments)]
fn add_function(
    t: &mut Template,
    spec: &Spec,
    assets: &AssetParameters,
    function_name: &str,
    task_definition: &Expr,
    roles: &Roles,
    cluster: &Cluster,
    task_log_group: &crate::cfn::Handle<LogGroup>,
    tags: &Tags,
) -> Expr {
    let own_logs = t.add(
        "MigrationFunctionLogGroup",
        LogGroup {
            log_group_name: Expr::lit(format!("/airflow-stack/{}/migration-function", spec.name)),
            retention_in_days: spec.logs.retention_days,
            tags: tags.all(),
        },
    );
    // Its own ARN is built from the fixed name: `Fn::GetAtt` on the function would make
    // the role depend on the function that depends on the role.
    let self_arn = Expr::arn("lambda", Expr::lit(format!("function:{function_name}")));
    let tasks_in_cluster = Expr::arn(
        "ecs",
        Expr::concat(vec![
            Expr::lit("task/"),
            cluster.handle.r#ref(),
            Expr::lit("/*"),
        ]),
    );
    let mut run_task = Statement::allow(&["ecs:RunTask"], vec![task_definition.clone()]);
    run_task.condition =
        Some(serde_json::json!({"ArnEquals": {"ecs:cluster": cluster.handle.arn()}}));
    let policy = PolicyDocument::new(vec![
        run_task,
        Statement::allow(&["ecs:DescribeTasks"], vec![tasks_in_cluster]),
        Statement::allow(&["iam:PassRole"], vec![roles.execution.arn()]),
        Statement::allow(&["logs:GetLogEvents"], vec![task_log_group.arn()]),
        Statement::allow(&["lambda:InvokeFunction"], vec![self_arn]),
        Statement::allow(
            &["logs:CreateLogStream", "logs:PutLogEvents"],
            vec![own_logs.arn()],
        ),
    ]);
    let role = t.add(
        "MigrationFunctionRole",
        Role::for_service(
            "lambda.amazonaws.com",
            "Runs and watches the Airflow database migration task".into(),
            vec![InlinePolicy {
                policy_name: "run-migration".into(),
                policy_document: policy,
            }],
            tags.all(),
        ),
    );
    let function = t.add(
        "MigrationFunction",
        Function {
            function_name: Some(Expr::lit(function_name)),
            description:
                "airflow-stack migration custom resource: runs airflow db migrate as an ECS task"
                    .into(),
            runtime: "provided.al2023",
            handler: "bootstrap",
            architectures: vec!["x86_64"],
            code: Code {
                s3_bucket: assets.bucket.clone(),
                s3_key: assets.migration_key.clone(),
            },
            role: role.arn(),
            timeout: 900,
            memory_size: 256,
            logging_config: Some(LoggingConfig {
                log_group: own_logs.r#ref(),
                log_format: "JSON",
            }),
            environment: None,
            vpc_config: None,
            tags: tags.all(),
        },
    );
    function.arn()
}
