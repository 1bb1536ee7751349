//! Database migration at deploy time: a one-off ECS task (`airflow db migrate`, then
//! the admin user with FAB) run by `Custom::AirflowMigration`, whose Rust Lambda
//! (lambdas/migration) waits for the task across Lambda's 15-minute limit by
//! re-invoking itself. Every Airflow service depends on it, so no service starts on an
//! unmigrated database and a version upgrade migrates before the rollout.

use std::collections::BTreeMap;

use airflow_stack_contract::migration::{
    MigrationProperties, MAX_WAIT_SECONDS, RESOURCE_TYPE, SERVICE_TIMEOUT_SECONDS,
};
use airflow_stack_contract::scaler::{DEFAULT_ADMIN_USERNAME, SCALER_USERNAME};

use super::airflow_config::{SharedConfig, ADMIN_PASSWORD_ENV, SCALER_PASSWORD_ENV};
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

/// The migration container's command: migrate, then (FAB) create the admin user and,
/// in stacks that run the scaler, the scaler's read-only user.
///
/// `set -e` makes a failed migration fail the task instead of being swallowed. Passwords
/// never reach a command line (where `ps` and /proc show them): `printf`, a bash builtin,
/// feeds them to `users create`'s prompt, which reads standard input when the container
/// has no terminal (the FAB provider's `users create` and `users reset-password` ask
/// twice through `getpass` when `--password` is absent).
pub fn migrate_command(spec: &Spec) -> Vec<Expr> {
    match spec.airflow.auth_manager {
        AuthManager::Simple => vec!["db".into(), "migrate".into()],
        AuthManager::Fab => {
            let mut script = vec![
                "set -euo pipefail".to_owned(),
                "airflow db migrate".to_owned(),
                create_user(DEFAULT_ADMIN_USERNAME, "Admin", ADMIN_PASSWORD_ENV),
            ];
            if spec.runs_scaler() {
                script.push(create_user(SCALER_USERNAME, "Viewer", SCALER_PASSWORD_ENV));
                script.push(reset_password_if_existing(
                    SCALER_USERNAME,
                    SCALER_PASSWORD_ENV,
                ));
            }
            vec!["bash".into(), "-c".into(), script.join("; ").into()]
        }
    }
}

/// Feeds the password in `$env` to a FAB password prompt (password, then confirmation).
fn password_from(env: &str) -> String {
    format!("printf '%s\\n%s\\n' \"${env}\" \"${env}\"")
}

/// `users create`, idempotent: on later runs it prints "already exists" and exits 0,
/// leaving the user as it is (the admin keeps a password changed in the UI). Its output
/// is kept in `$created` for [`reset_password_if_existing`].
fn create_user(username: &str, role: &str, password_env: &str) -> String {
    format!(
        "created=$({} | airflow users create --username {username} --role {role} \
         --firstname airflow-stack --lastname {role} --email {username}@example.invalid); \
         echo \"$created\"",
        password_from(password_env)
    )
}

/// The scaler's password is the stack's, not a person's: when its user already exists
/// (a stack that turned the scaler off and on again gets a new secret), the password is
/// set to the secret's again, so the scaler can always log in.
fn reset_password_if_existing(username: &str, password_env: &str) -> String {
    format!(
        "case \"$created\" in *\"already exists\"*) {} | airflow users reset-password --username {username};; esac",
        password_from(password_env)
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> Spec {
        serde_yaml_ng::from_str(&format!("name: t\nregion: us-east-1\n{yaml}")).unwrap()
    }

    fn script(spec: &Spec) -> String {
        match migrate_command(spec).as_slice() {
            [Expr::Lit(bash), Expr::Lit(c), Expr::Lit(script)] if bash == "bash" && c == "-c" => {
                script.clone()
            }
            other => panic!("{other:?}"),
        }
    }

    /// Runs the script with `airflow` replaced by a stub that records its arguments and
    /// the lines it reads, as FAB's prompt would (password, then confirmation).
    fn run_with_stub(script: &str, existing: bool) -> String {
        let dir = std::env::temp_dir().join(format!("migrate-{}-{existing}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stub = dir.join("airflow");
        let already = if existing {
            "echo \"$3 already exists in the db\""
        } else {
            ":"
        };
        std::fs::write(
            &stub,
            format!(
                "#!/bin/bash\nread -r a; read -r b; echo \"args=$* stdin=$a,$b\" >> \"{}/calls\"\n\
                 [ \"$1 $2\" = \"users create\" ] && {already}\nexit 0\n",
                dir.display()
            ),
        )
        .unwrap();
        std::process::Command::new("chmod")
            .args(["+x", stub.to_str().unwrap()])
            .status()
            .unwrap();
        let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap());
        let status = std::process::Command::new("bash")
            .args(["-c", script])
            .env("PATH", path)
            .env(ADMIN_PASSWORD_ENV, "Admin123")
            .env(SCALER_PASSWORD_ENV, "Scaler456")
            .stdin(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let calls = std::fs::read_to_string(dir.join("calls")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        calls
    }

    #[test]
    fn users_get_their_passwords_on_standard_input_never_as_arguments() {
        let s = spec("autoscaling: {enabled: true}\n");
        let script = script(&s);
        assert!(!script.contains("--password"), "{script}");
        let calls = run_with_stub(&script, false);
        let lines: Vec<&str> = calls.lines().collect();
        assert_eq!(lines.len(), 3, "{calls}");
        assert!(lines[0].starts_with("args=db migrate"), "{calls}");
        assert!(
            lines[1].contains("users create --username admin --role Admin")
                && lines[1].ends_with("stdin=Admin123,Admin123"),
            "{calls}"
        );
        assert!(
            lines[2].contains("users create --username airflow-stack-scaler --role Viewer")
                && lines[2].ends_with("stdin=Scaler456,Scaler456"),
            "{calls}"
        );
        assert!(!calls.contains("args=users create --username admin --password"));
    }

    #[test]
    fn an_existing_scaler_user_gets_the_secrets_password_again_and_the_admin_does_not() {
        let s = spec("alerts: {enabled: true}\n");
        let calls = run_with_stub(&script(&s), true);
        let resets: Vec<&str> = calls
            .lines()
            .filter(|l| l.contains("users reset-password"))
            .collect();
        assert_eq!(resets.len(), 1, "{calls}");
        assert!(
            resets[0].contains("--username airflow-stack-scaler")
                && resets[0].ends_with("stdin=Scaler456,Scaler456"),
            "{calls}"
        );
    }

    #[test]
    fn without_the_scaler_only_the_admin_is_created() {
        let calls = run_with_stub(&script(&spec("")), false);
        assert_eq!(calls.lines().count(), 2, "{calls}");
        assert!(!calls.contains("airflow-stack-scaler"));
    }
}
