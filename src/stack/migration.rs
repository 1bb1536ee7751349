//! Database migration at deploy time: a one-off ECS task (`airflow db migrate`, then
//! the admin user with FAB) run by `Custom::AirflowMigration`, whose Rust Lambda
//! (lambdas/migration) waits for the task across Lambda's 15-minute limit by
//! re-invoking itself. Every Airflow service depends on it, so no service starts on an
//! unmigrated database and a version upgrade migrates before the rollout.

use std::collections::BTreeMap;

use airflow_stack_contract::migration::{
    MigrationProperties, MAX_WAIT_SECONDS, RESOURCE_TYPE, SERVICE_TIMEOUT_SECONDS,
};
use airflow_stack_contract::secrets::AIRFLOW_DATABASE_USER;

use super::airflow_config::{
    SharedConfig, AIRFLOW_DATABASE_PASSWORD_ENV, AIRFLOW_DATABASE_URL_ENV,
};
use super::component::{airflow_users, Component};
use super::connections::Backends;
use super::fargate::{self, Infra, TaskDefinitionSpec};
use super::iam::Roles;
use super::rust_function::{self, RustFunctionSpec};
use super::scope::Scope;
use super::security;
use super::service_role::describe_own_stack_resources;
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
    let mut script = vec![
        "set -euo pipefail".to_owned(),
        format!("python -c '{}'", airflow_user_setup()),
        // From here on as the Airflow user: the tables `db migrate` creates are its own.
        format!("export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=\"${AIRFLOW_DATABASE_URL_ENV}\""),
        "airflow db migrate".to_owned(),
    ];
    if spec.airflow.auth_manager == AuthManager::Fab {
        for user in airflow_users(spec) {
            script.push(create_user(user.name, user.fab_role, user.password_env));
            if user.reset_password {
                script.push(reset_password_if_existing(user.name, user.password_env));
            }
        }
    }
    vec!["bash".into(), "-c".into(), script.join("; ").into()]
}

/// Python, run as the master user (the container's `[database] sql_alchemy_conn`, which
/// the image's entrypoint has just checked), that makes the Airflow database user
/// ([`AIRFLOW_DATABASE_USER`]) own the Airflow database: creates it when missing, gives
/// it the password from the secret on every run (a regenerated password takes effect at
/// the next deploy), makes the master a member (needed to hand objects over) and hands
/// over the database and whatever the master owns in it, which is every table of a
/// stack deployed before the user existed. `REASSIGN OWNED` run in the Airflow database
/// moves the master's objects in it and also the databases the master owns (shared
/// objects). On RDS the master (a CREATEDB, CREATEROLE, non-superuser role) may own the
/// `postgres` database too; it would move as well. That is a follow-up to narrow (a
/// per-object handover). The e2e run shows the handover of a master's table by a later
/// migration (`test_a_later_migration_hands_over_what_the_master_owned`).
///
/// The password goes through a bound parameter from the environment, never the command
/// line. Only double quotes inside: the script is one single-quoted shell word.
fn airflow_user_setup() -> String {
    let user = AIRFLOW_DATABASE_USER;
    [
        "import os, sqlalchemy as sa".to_owned(),
        "url = os.environ[\"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN\"]".to_owned(),
        "db = sa.create_engine(url, isolation_level=\"AUTOCOMMIT\").connect()".to_owned(),
        "run = lambda sql, **p: db.execute(sa.text(sql), p)".to_owned(),
        format!("exists = run(\"SELECT 1 FROM pg_roles WHERE rolname = :u\", u=\"{user}\").first()"),
        format!("exists or run(\"CREATE ROLE {user} LOGIN\")"),
        format!(
            "run(\"ALTER ROLE {user} WITH LOGIN PASSWORD :pw\", pw=os.environ[\"{AIRFLOW_DATABASE_PASSWORD_ENV}\"])"
        ),
        format!("run(\"GRANT {user} TO CURRENT_USER\")"),
        "name = run(\"SELECT current_database()\").scalar()".to_owned(),
        format!("run(f\"ALTER DATABASE \\\"{{name}}\\\" OWNER TO {user}\")"),
        format!("run(\"REASSIGN OWNED BY CURRENT_USER TO {user}\")"),
        format!("print(\"database user {user} owns\", name)"),
    ]
    .join("\n")
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
    let (definition, log_group) = one_off_task(s, me, migrate_command(spec), roles, shared);
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
        image: Some(shared.image.clone()),
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

/// A one-off task of `me` (the migration, the Fernet re-encryption): its log group and a
/// task definition of one Airflow container running `command`, with the component's
/// environment and secrets and no task role (it makes no AWS call).
pub(super) fn one_off_task(
    s: &mut Scope,
    me: Component,
    command: Vec<Expr>,
    roles: &Roles,
    shared: &SharedConfig,
) -> (Handle<TaskDefinition>, Handle<LogGroup>) {
    let spec = s.spec;
    let log_group = fargate::log_group(s, me.id(), me.name());
    let container = ContainerDefinition {
        command,
        environment: shared.env_for(spec, me),
        secrets: shared.secrets_for(spec, me),
        ..fargate::container(me.name(), shared.image.clone(), &log_group)
    };
    let size = me.size(spec);
    let definition = fargate::task_definition(
        s,
        me.id(),
        TaskDefinitionSpec {
            family_suffix: me.name().into(),
            cpu: size.cpu,
            memory: size.memory,
            containers: vec![container],
            execution_role: roles.execution.arn(),
            task_role: None,
            architecture: None,
        },
    );
    (definition, log_group)
}

/// The migration Lambda and its least-privilege role: run and watch exactly the
/// migration task, read its log group, re-invoke itself, describe its own stack's
/// resources (to confirm each request with CloudFormation).
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
        describe_own_stack_resources(),
    ];
    let code_key = s.assets.migration_key.clone();
    let f = rust_function::add(
        s,
        RustFunctionSpec {
            id: "Migration".into(),
            log_name: "migration-function".into(),
            function_name: Some(function_name),
            description:
                "airflow-stack migration custom resource: runs airflow db migrate as an ECS task"
                    .into(),
            role_description: "Runs and watches the Airflow database migration task",
            policy_name: "run-migration",
            statements,
            code_key,
            timeout: 900,
            environment: BTreeMap::new(),
            vpc_config: None,
            reserved_concurrency: None,
            allow_recursion: false,
        },
    );
    f.arn()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::component::{ADMIN_PASSWORD_ENV, SCALER_PASSWORD_ENV};

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

    /// Runs the script with `airflow` replaced by a stub that records its arguments, the
    /// database URL it got and the lines it reads, as FAB's prompt would (password, then
    /// confirmation), and `python` by one that records the URL it ran with.
    fn run_with_stub(script: &str, existing: bool) -> String {
        // A directory of its own per run: the tests run in parallel in one process.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let stub = dir.join("airflow");
        let already = if existing {
            "echo \"$3 already exists in the db\""
        } else {
            ":"
        };
        std::fs::write(
            &stub,
            format!(
                "#!/bin/bash\nread -r a; read -r b; echo \"url=$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN args=$* stdin=$a,$b\" >> \"{}/calls\"\n\
                 [ \"$1 $2\" = \"users create\" ] && {already}\nexit 0\n",
                dir.display()
            ),
        )
        .unwrap();
        let python = dir.join("python");
        std::fs::write(
            &python,
            format!(
                "#!/bin/bash\nprintf 'url=%s python %s %s\\n' \"$AIRFLOW__DATABASE__SQL_ALCHEMY_CONN\" \"$1\" \"$(printf '%s' \"$2\" | head -n1)\" >> \"{}/calls\"\n",
                dir.display()
            ),
        )
        .unwrap();
        for exe in [&stub, &python] {
            std::process::Command::new("chmod")
                .args(["+x", exe.to_str().unwrap()])
                .status()
                .unwrap();
        }
        let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap());
        let status = std::process::Command::new("bash")
            .args(["-c", script])
            .env("PATH", path)
            .env("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "master-url")
            .env(AIRFLOW_DATABASE_URL_ENV, "airflow-user-url")
            .env(ADMIN_PASSWORD_ENV, "Admin123")
            .env(SCALER_PASSWORD_ENV, "Scaler456")
            .stdin(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read_to_string(dir.join("calls")).unwrap()
    }

    #[test]
    fn the_master_sets_up_the_airflow_user_and_everything_else_runs_as_that_user() {
        for yaml in ["", "airflow: {auth_manager: simple}\n"] {
            let calls = run_with_stub(&script(&spec(yaml)), false);
            let lines: Vec<&str> = calls.lines().collect();
            assert!(
                lines[0].starts_with("url=master-url python -c import"),
                "{calls}"
            );
            assert!(lines[1].contains("args=db migrate"), "{calls}");
            for line in &lines[1..] {
                assert!(line.starts_with("url=airflow-user-url "), "{calls}");
            }
        }
    }

    #[test]
    fn the_airflow_user_setup_takes_its_password_from_the_environment_only() {
        let setup = airflow_user_setup();
        assert!(
            !setup.contains('\''),
            "one single-quoted shell word: {setup}"
        );
        assert!(setup.contains(&format!("os.environ[\"{AIRFLOW_DATABASE_PASSWORD_ENV}\"]")));
        assert!(setup.contains("PASSWORD :pw"), "a bound parameter: {setup}");
        assert!(setup.contains(&format!(
            "REASSIGN OWNED BY CURRENT_USER TO {AIRFLOW_DATABASE_USER}"
        )));
    }

    #[test]
    fn users_get_their_passwords_on_standard_input_never_as_arguments() {
        let s = spec("autoscaling: {enabled: true}\n");
        let script = script(&s);
        assert!(!script.contains("--password"), "{script}");
        let calls = run_with_stub(&script, false);
        let lines: Vec<&str> = calls.lines().skip(1).collect();
        assert_eq!(lines.len(), 3, "{calls}");
        assert!(lines[0].contains("args=db migrate"), "{calls}");
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
        assert_eq!(calls.lines().count(), 3, "{calls}");
        assert!(!calls.contains("airflow-stack-scaler"));
    }
}
