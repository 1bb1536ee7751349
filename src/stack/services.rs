//! The Airflow 3 components as ECS services, each with its own task definition, log
//! group, security group and task role, all sharing one configuration
//! ([`SharedConfig`]). With `services.packing: core` the four core components become
//! containers of one task ([`packing`](super::packing)).

use super::access::Exposure;
use super::airflow_config::{env_var, SharedConfig};
use super::component::{airflow_users, Component};
use super::fargate::{self, Deployment, Infra, ServiceSpec, TaskDefinitionSpec};
use super::iam::Roles;
use super::packing;
use super::scope::Scope;
use super::security;
use crate::cfn::l1::ecs::task_definition::{ContainerDefinition, HealthCheck, KeyValuePair};
use crate::cfn::l1::ecs::Service;
use crate::cfn::{Attributes, Expr, Handle, LogicalId};
use crate::spec::{AuthManager, Spec};
use airflow_stack_contract::worker;

fn shell_check(command: &str, interval: i64, timeout: i64, start_period: i64) -> HealthCheck {
    HealthCheck {
        command: vec!["CMD-SHELL".into(), format!("{command} || exit 1").into()],
        interval: Some(interval),
        timeout: Some(timeout),
        retries: Some(5),
        start_period: Some(start_period),
    }
}

fn words(s: &str) -> Vec<Expr> {
    s.split_whitespace().map(Expr::lit).collect()
}

/// The api-server command. With the simple auth manager the users' passwords are seeded
/// from their secrets into the passwords file, so every replica accepts the same ones.
/// The generated passwords are alphanumeric, so they need no JSON escaping.
fn api_server_command(spec: &Spec) -> Vec<Expr> {
    match spec.airflow.auth_manager {
        AuthManager::Fab => words("api-server"),
        AuthManager::Simple => {
            let users: Vec<(&str, &str)> = airflow_users(spec)
                .iter()
                .map(|u| (u.name, u.password_env))
                .collect();
            let format = users
                .iter()
                .map(|(user, _)| format!("\"{user}\": \"%s\""))
                .collect::<Vec<_>>()
                .join(", ");
            let values: String = users
                .iter()
                .map(|(_, env)| format!(" \"${env}\""))
                .collect();
            vec![
                "bash".into(),
                "-c".into(),
                format!("printf '{{{format}}}'{values} > \"$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated\" && exec airflow api-server").into(),
            ]
        }
    }
}

/// The container command of a long-running component.
fn command(spec: &Spec, component: Component) -> Vec<Expr> {
    match component {
        Component::ApiServer => api_server_command(spec),
        Component::Scheduler => words("scheduler"),
        Component::DagProcessor => words("dag-processor"),
        Component::Triggerer => words("triggerer"),
        Component::Worker if drains(spec) => worker::command().map(Expr::lit).to_vec(),
        Component::Worker => words("celery worker"),
        Component::Flower => words("celery flower -H 0.0.0.0 -p 5555"),
        Component::Migrate | Component::RotateFernet => {
            unreachable!("the one-off tasks are not services")
        }
    }
}

/// How ECS checks that a component is healthy.
fn health_check(component: Component) -> HealthCheck {
    let jobs_check = |job: &str| {
        shell_check(
            &format!("airflow jobs check --job-type {job} --local"),
            60,
            30,
            120,
        )
    };
    match component {
        Component::ApiServer => {
            shell_check("curl -fsS http://localhost:8080/api/v2/version", 30, 10, 60)
        }
        Component::Scheduler => shell_check("curl -fsS http://localhost:8974/health", 30, 10, 60),
        Component::DagProcessor => jobs_check("DagProcessorJob"),
        Component::Triggerer => jobs_check("TriggererJob"),
        // `inspect ping` took 10.8 s on 2 vCPUs: a generous timeout and start period.
        Component::Worker => shell_check(
            "celery --app airflow.providers.celery.executors.celery_executor.app inspect ping -d \"celery@$(hostname)\"",
            60,
            45,
            120,
        ),
        Component::Flower => shell_check("curl -fsS http://localhost:5555/", 30, 10, 60),
        Component::Migrate | Component::RotateFernet => {
            unreachable!("the one-off tasks are not services")
        }
    }
}

/// Component-specific environment on top of the shared configuration.
fn own_env(spec: &Spec, component: Component) -> Vec<KeyValuePair> {
    match component {
        // One API worker process per half vCPU: 4 (Airflow's default) starve a small task.
        Component::ApiServer => vec![env_var(
            "AIRFLOW__API__WORKERS",
            (spec.services.api_server.cpu / 512).max(1).to_string(),
        )],
        // dumb-init passes SIGTERM to the worker only, which then shuts down warmly:
        // it stops taking tasks and finishes running ones within the stop timeout.
        Component::Worker => {
            let mut env = vec![env_var("DUMB_INIT_SETSID", "0")];
            if drains(spec) {
                env.extend(
                    worker::environment(WORKER_MODULE)
                        .into_iter()
                        .map(|(name, value)| env_var(name, value)),
                );
            }
            env
        }
        _ => Vec::new(),
    }
}

/// The worker module (written by the worker's owners, included as is): Celery hooks
/// that protect the worker's own ECS task while it holds a message and stop it
/// consuming while its task carries the drain tag. The container command writes it
/// to `$AIRFLOW_HOME/config` (on Airflow's `sys.path`), and `[celery]
/// celery_config_options` points Celery at its configuration.
const WORKER_MODULE: &str = include_str!("worker/airflow_stack_worker.py");

/// Whether workers protect themselves and honour the drain tag: with autoscaling only.
/// Without a scaler nothing scales in, and ECS deployments honour task protection too:
/// a protected worker would hold a deployment back until it is idle (or its protection
/// expires), which only pays off when the scaler also drains before scaling in.
fn drains(spec: &Spec) -> bool {
    spec.autoscaling.enabled
}

/// The container of a long-running component.
fn component_container(
    s: &mut Scope,
    shared: &SharedConfig,
    component: Component,
) -> ContainerDefinition {
    let spec = s.spec;
    let log_group = fargate::log_group(s, component.id(), component.name());
    let mut environment = shared.env_for(spec, component);
    environment.extend(own_env(spec, component));
    ContainerDefinition {
        command: command(spec, component),
        environment,
        secrets: shared.secrets_for(spec, component),
        health_check: Some(health_check(component)),
        port_mappings: component
            .port()
            .map(|port| fargate::tcp_port(component.name(), port))
            .into_iter()
            .collect(),
        // Seconds between SIGTERM and SIGKILL (at most 120 on Fargate): a worker
        // finishes its running tasks within them.
        stop_timeout: (component == Component::Worker).then_some(120),
        ..fargate::container(component.name(), shared.image.clone(), &log_group)
    }
}

/// Adds every Airflow service; they start once `ready` (the migration, the broker)
/// exists. The api-server's service (or the packed core's) is reached as `exposure`
/// says. Returns the worker service, which the scaler scales.
pub fn add(
    s: &mut Scope,
    infra: &Infra,
    roles: &Roles,
    shared: &SharedConfig,
    ready: &[LogicalId],
    exposure: &Exposure,
) -> Handle<Service> {
    let spec = s.spec;
    let mut worker = None;
    let mut core = packing::Core::default();
    for component in Component::services(spec) {
        let container = component_container(s, shared, component);
        let registry = component
            .discoverable()
            .then(|| infra.cluster.register(s, component.id(), component.name()));
        let group = infra.sg.of(component);
        // Start once the migration is done and this component's network paths exist
        // (for the api-server also its load balancer listener, if any).
        let exposed = component == Component::ApiServer;
        let ready: Vec<LogicalId> = ready
            .iter()
            .cloned()
            .chain(infra.sg.paths_of(component))
            .chain(infra.net.egress_ready.iter().cloned())
            .chain(
                exposed
                    .then(|| exposure.ready.clone())
                    .into_iter()
                    .flatten(),
            )
            .collect();
        let flower_exec = exposure
            .flower
            .as_ref()
            .filter(|_| component == Component::Flower);
        let reach = if exposed {
            exposure.reach()
        } else {
            fargate::Reach {
                execute_command: flower_exec.is_some(),
                ..fargate::Reach::default()
            }
        };
        if component.is_packed(spec) {
            core.push(container, security::ids(&[group]), registry, ready);
            if exposed {
                core.reach = reach;
            }
            continue;
        }
        let size = component.size(spec);
        // With autoscaling the scaler owns the worker count.
        let scaled = component == Component::Worker && spec.autoscaling.enabled;
        let service = fargate::add_service(
            s,
            infra,
            ServiceSpec {
                id: component.id().into(),
                service_name: None,
                task: TaskDefinitionSpec {
                    family_suffix: component.name().into(),
                    cpu: size.cpu,
                    memory: size.memory,
                    containers: vec![container],
                    execution_role: roles.execution.arn(),
                    task_role: roles
                        .task_role(component)
                        .or(flower_exec.map(|f| &f.role))
                        .map(|r| r.arn()),
                    architecture: None,
                },
                desired_count: (!scaled).then_some(size.count),
                spot: size.spot,
                security_groups: security::ids(&[group]),
                registry,
                depends_on: Attributes::depends_on(ready),
                deployment: Deployment::StartFirst,
                reach,
            },
        );
        if component == Component::Worker {
            worker = Some(service);
        }
    }
    let core_roles = packing::TaskRoles {
        execution: roles.execution.arn(),
        task: roles.core.as_ref().map(|r| r.arn()),
    };
    core.finish(s, infra, core_roles);
    worker.expect("every stack has a worker service")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::component::{ADMIN_PASSWORD_ENV, SCALER_PASSWORD_ENV};

    fn spec(yaml: &str) -> Spec {
        serde_yaml_ng::from_str(&format!("name: t\nregion: us-east-1\n{yaml}")).unwrap()
    }

    /// Runs the api-server command's seeding step (everything before `exec airflow`)
    /// with bash and returns the passwords file it wrote.
    fn seeded_passwords(spec: &Spec) -> serde_json::Value {
        let command = api_server_command(spec);
        let Some(Expr::Lit(script)) = command.get(2) else {
            panic!("{command:?}")
        };
        let (seed, rest) = script.split_once(" && ").unwrap();
        assert_eq!(rest, "exec airflow api-server");
        let home = std::env::temp_dir().join(format!("seed-{}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        let status = std::process::Command::new("bash")
            .args(["-c", seed])
            .env("AIRFLOW_HOME", &home)
            .env(ADMIN_PASSWORD_ENV, "Admin123")
            .env(SCALER_PASSWORD_ENV, "Scaler456")
            .status()
            .unwrap();
        assert!(status.success());
        let file = home.join("simple_auth_manager_passwords.json.generated");
        let written = std::fs::read_to_string(&file).unwrap();
        std::fs::remove_dir_all(&home).unwrap();
        serde_json::from_str(&written).unwrap()
    }

    #[test]
    fn the_simple_auth_manager_gets_both_users_passwords_from_their_secrets() {
        let s = spec("airflow: {auth_manager: simple}\nalerts: {enabled: true}\n");
        assert_eq!(
            seeded_passwords(&s),
            serde_json::json!({"admin": "Admin123", "airflow-stack-scaler": "Scaler456"})
        );
        let s = spec("airflow: {auth_manager: simple}\n");
        assert_eq!(
            seeded_passwords(&s),
            serde_json::json!({"admin": "Admin123"})
        );
    }
}
