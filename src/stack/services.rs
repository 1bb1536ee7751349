//! The Airflow 3 components as ECS services, each with its own task definition, log
//! group, security group and task role, all sharing one configuration (principle: "use
//! the same configuration across all the Airflow components").

use super::cluster::Cluster;
use super::iam::Roles;
use super::migration::Migration;
use super::network::Network;
use super::packing;
use super::secrets::Keys;
use super::security::{self, SecurityGroups};
use super::storage::Bucket;
use super::Tags;
use crate::cfn::aws::ecs::*;
use crate::cfn::aws::logs::LogGroup;
use crate::cfn::aws::Tag;
use crate::cfn::{Attributes, Expr, Handle, LogicalId, Pseudo, Template};
use crate::spec::{Architecture, AuthManager, Spec};

/// The Airflow configuration: one environment for every Airflow container, and the
/// secrets, of which each container gets only those its component needs
/// ([`SharedConfig::secrets_for`]).
pub struct SharedConfig {
    pub env: Vec<KeyValue>,
    fernet_key: SecretRef,
    api_secret_key: SecretRef,
    jwt_secret: SecretRef,
    sql_alchemy_conn: SecretRef,
    broker_url: SecretRef,
    result_backend: SecretRef,
    /// The admin password, for the containers that set up or serve logins.
    pub admin_password: SecretRef,
}

/// Name of the environment variable carrying the admin password where it is needed.
pub const ADMIN_PASSWORD_ENV: &str = "AIRFLOW_STACK_ADMIN_PASSWORD";

impl SharedConfig {
    pub fn new(spec: &Spec, keys: &Keys, bucket: &Bucket) -> SharedConfig {
        let ns = &spec.network.namespace;
        let auth_manager = match spec.airflow.auth_manager {
            AuthManager::Fab => {
                "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
            }
            AuthManager::Simple => {
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            }
        };
        let python_bool = |b: bool| if b { "True" } else { "False" };
        let mut env = vec![
            KeyValue::new("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor"),
            KeyValue::new("AIRFLOW__CORE__AUTH_MANAGER", auth_manager),
            KeyValue::new(
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                format!("http://api-server.{ns}:8080/execution/"),
            ),
            KeyValue::new(
                "AIRFLOW__CORE__LOAD_EXAMPLES",
                python_bool(spec.airflow.load_examples),
            ),
            // Fargate host names do not resolve across tasks; the task IP does, so the
            // api-server can fetch logs of running tasks from workers and the triggerer.
            KeyValue::new(
                "AIRFLOW__CORE__HOSTNAME_CALLABLE",
                "airflow.utils.net.get_host_ip_address",
            ),
            KeyValue::new(
                "AIRFLOW__CELERY__WORKER_CONCURRENCY",
                spec.services.worker.concurrency.to_string(),
            ),
            // Celery re-delivers a task not acknowledged within this time; Airflow warns
            // when it is unset (finding of the end-to-end run).
            KeyValue::new(
                "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT",
                spec.airflow.celery_visibility_timeout_seconds.to_string(),
            ),
            KeyValue::new("AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK", "True"),
            KeyValue::new("AIRFLOW__LOGGING__REMOTE_LOGGING", "True"),
            KeyValue::new(
                "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER",
                Expr::concat(vec![
                    Expr::lit("s3://"),
                    bucket.handle.r#ref(),
                    Expr::lit(format!("/{}", spec.storage.logs_prefix)),
                ]),
            ),
            KeyValue::new("AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID", "aws_default"),
            // Credentials come from the task role; the connection only names the region.
            KeyValue::new(
                "AIRFLOW_CONN_AWS_DEFAULT",
                Expr::concat(vec![
                    Expr::lit("aws://?region_name="),
                    Expr::Pseudo(Pseudo::Region),
                ]),
            ),
            KeyValue::new(
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
                bundle_config(spec, bucket),
            ),
        ];
        if spec.airflow.auth_manager == AuthManager::Simple {
            env.push(KeyValue::new(
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
                "admin:admin",
            ));
        }
        env.extend(
            spec.airflow
                .extra_env
                .iter()
                .map(|(k, v)| KeyValue::new(k, v.clone())),
        );
        let secret = |name: &str, arn: &Expr| SecretRef {
            name: name.to_string(),
            value_from: arn.clone(),
        };
        SharedConfig {
            env,
            fernet_key: secret("AIRFLOW__CORE__FERNET_KEY", &keys.fernet_key),
            api_secret_key: secret("AIRFLOW__API__SECRET_KEY", &keys.api_secret_key()),
            jwt_secret: secret("AIRFLOW__API_AUTH__JWT_SECRET", &keys.jwt_secret()),
            sql_alchemy_conn: secret(
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                &keys.sql_alchemy_conn(),
            ),
            broker_url: secret("AIRFLOW__CELERY__BROKER_URL", &keys.broker_url()),
            // Celery task results go to Redis, not to the metadata database (Airflow's
            // default, `db+` and the database URL): that default is the one reason a
            // worker would need database credentials (airflow3.md §14). Same URL as the
            // broker: result keys (`celery-task-meta-*`) and queues do not collide.
            result_backend: secret("AIRFLOW__CELERY__RESULT_BACKEND", &keys.broker_url()),
            admin_password: secret(ADMIN_PASSWORD_ENV, &keys.admin_password),
        }
    }

    /// The secrets one component's container gets.
    ///
    /// Airflow 3 isolates task code: a Celery worker runs DAG code and talks only to the
    /// Execution API, with a short-lived token the scheduler minted and connections the
    /// api-server decrypted (the end-to-end run shows it). So workers, and Flower, get the
    /// broker and nothing else: holding the JWT secret would let DAG code mint Execution
    /// API tokens, `[api] secret_key` forge UI sessions and log tokens, the Fernet key
    /// decrypt every connection, and the database URL bypass the API altogether. The
    /// scheduler, dag-processor, triggerer and api-server keep them: they use the
    /// metadata database directly. The migration task needs only the database.
    pub fn secrets_for(&self, component: &str) -> Vec<SecretRef> {
        let core = [
            &self.fernet_key,
            &self.api_secret_key,
            &self.jwt_secret,
            &self.sql_alchemy_conn,
        ];
        let celery = [&self.broker_url, &self.result_backend];
        let chosen: Vec<&SecretRef> = match component {
            "scheduler" => core.into_iter().chain(celery).collect(),
            "api-server" | "dag-processor" | "triggerer" => core.to_vec(),
            "worker" | "flower" => celery.to_vec(),
            "migrate" => vec![&self.sql_alchemy_conn],
            other => panic!("no secrets are defined for the component {other}"),
        };
        chosen.into_iter().cloned().collect()
    }
}

/// `[dag_processor] dag_bundle_config_list`: one S3DagBundle over the DAG prefix. JSON
/// text assembled with `Fn::Join` because the bucket name is only known at deploy time.
fn bundle_config(spec: &Spec, bucket: &Bucket) -> Expr {
    Expr::concat(vec![
        Expr::lit(
            r#"[{"name": "s3-dags", "classpath": "airflow.providers.amazon.aws.bundles.s3.S3DagBundle", "kwargs": {"aws_conn_id": "aws_default", "bucket_name": ""#,
        ),
        bucket.handle.r#ref(),
        Expr::lit(format!(
            r#"", "prefix": "{}", "refresh_interval": {}}}}}]"#,
            spec.storage.dags_prefix, spec.storage.dags_refresh_seconds
        )),
    ])
}

/// One Airflow component: what runs and how ECS checks it.
pub struct Component {
    /// Logical id prefix, e.g. `ApiServer`.
    pub id: &'static str,
    /// Container, log stream and Cloud Map name, e.g. `api-server`.
    pub name: &'static str,
    pub command: Vec<String>,
    pub port: Option<u16>,
    pub health: HealthCheck,
    /// Registered in Cloud Map as `<name>.<namespace>`.
    pub discoverable: bool,
}

fn shell_check(command: &str, interval: u32, timeout: u32, start_period: u32) -> HealthCheck {
    HealthCheck {
        command: vec!["CMD-SHELL".into(), format!("{command} || exit 1")],
        interval,
        timeout,
        retries: 5,
        start_period,
    }
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

/// The api-server command. With the simple auth manager the admin password is seeded
/// from the secret into the passwords file, so every replica accepts the same one.
fn api_server_command(spec: &Spec) -> Vec<String> {
    match spec.airflow.auth_manager {
        AuthManager::Fab => words("api-server"),
        AuthManager::Simple => vec![
            "bash".into(),
            "-c".into(),
            format!("printf '{{\"admin\": \"%s\"}}' \"${ADMIN_PASSWORD_ENV}\" > \"$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated\" && exec airflow api-server"),
        ],
    }
}

/// Every Airflow component of the stack, in a fixed order.
pub fn components(spec: &Spec) -> Vec<Component> {
    let jobs_check = |job: &str| {
        shell_check(
            &format!("airflow jobs check --job-type {job} --local"),
            60,
            30,
            120,
        )
    };
    let mut list = vec![
        Component {
            id: "ApiServer",
            name: "api-server",
            command: api_server_command(spec),
            port: Some(8080),
            health: shell_check("curl -fsS http://localhost:8080/api/v2/version", 30, 10, 60),
            discoverable: true,
        },
        Component {
            id: "Scheduler",
            name: "scheduler",
            command: words("scheduler"),
            port: None,
            health: shell_check("curl -fsS http://localhost:8974/health", 30, 10, 60),
            discoverable: false,
        },
        Component { id: "DagProcessor", name: "dag-processor", command: words("dag-processor"), port: None, health: jobs_check("DagProcessorJob"), discoverable: false },
        Component { id: "Triggerer", name: "triggerer", command: words("triggerer"), port: Some(8794), health: jobs_check("TriggererJob"), discoverable: false },
        Component {
            id: "Worker",
            name: "worker",
            command: words("celery worker"),
            port: Some(8793),
            // `inspect ping` took 10.8 s on 2 vCPUs: a generous timeout and start period.
            health: shell_check(
                "celery --app airflow.providers.celery.executors.celery_executor.app inspect ping -d \"celery@$(hostname)\"",
                60,
                45,
                120,
            ),
            discoverable: false,
        },
    ];
    if spec.services.flower.enabled {
        list.push(Component {
            id: "Flower",
            name: "flower",
            command: words("celery flower -H 0.0.0.0 -p 5555"),
            port: Some(5555),
            health: shell_check("curl -fsS http://localhost:5555/", 30, 10, 60),
            discoverable: true,
        });
    }
    list
}

/// A container with the stack's defaults (awslogs to `log_group`, essential).
pub fn container(
    spec: &Spec,
    name: &str,
    image: String,
    log_group: &Handle<LogGroup>,
) -> ContainerDefinition {
    let _ = spec;
    ContainerDefinition {
        name: name.to_string(),
        image,
        essential: true,
        command: Vec::new(),
        environment: Vec::new(),
        secrets: Vec::new(),
        port_mappings: Vec::new(),
        health_check: None,
        log_configuration: LogConfiguration {
            log_driver: "awslogs",
            options: AwsLogsOptions {
                group: log_group.r#ref(),
                region: Expr::Pseudo(Pseudo::Region),
                stream_prefix: name.to_string(),
            },
        },
        stop_timeout: None,
        linux_parameters: None,
        readonly_root_filesystem: None,
    }
}

/// A log group `/airflow-stack/<stack>/<name>` with the stack's retention.
pub fn log_group(
    t: &mut Template,
    spec: &Spec,
    id: &str,
    name: &str,
    tags: &Tags,
) -> Handle<LogGroup> {
    t.add(
        &format!("{id}LogGroup"),
        LogGroup {
            log_group_name: Expr::lit(format!("/airflow-stack/{}/{name}", spec.name)),
            retention_in_days: spec.logs.retention_days,
            tags: tags.all(),
        },
    )
}

/// Everything that differs between two Fargate services.
pub struct TaskSpec {
    pub id: &'static str,
    pub family_suffix: &'static str,
    pub cpu: u32,
    pub memory: u32,
    pub count: u32,
    pub spot: bool,
    pub containers: Vec<ContainerDefinition>,
    pub execution_role: Expr,
    pub task_role: Option<Expr>,
    pub security_groups: Vec<Expr>,
    pub registry: Option<Expr>,
    pub depends_on: Attributes,
    pub deployment: Deployment,
}

/// How ECS replaces a service's tasks on a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deployment {
    /// Start the new tasks, then stop the old ones (100 % / 200 %): no downtime, two
    /// generations run side by side for a while.
    StartFirst,
    /// Stop the old task, then start the new one (0 % / 100 %): for a service of which
    /// two must never run at once, such as the one Redis broker behind one Cloud Map
    /// name (two would split the queue between them).
    StopFirst,
}

impl Deployment {
    /// `(minimumHealthyPercent, maximumPercent)`.
    fn percents(self) -> (u32, u32) {
        match self {
            Deployment::StartFirst => (100, 200),
            Deployment::StopFirst => (0, 100),
        }
    }
}

/// A Fargate task definition for the stack's architecture.
pub fn task_definition(
    spec: &Spec,
    family_suffix: &str,
    (cpu, memory): (u32, u32),
    containers: Vec<ContainerDefinition>,
    execution_role: Expr,
    task_role: Option<Expr>,
    tags: Vec<Tag>,
) -> TaskDefinition {
    let cpu_architecture = match spec.services.architecture {
        Architecture::X86_64 => "X86_64",
        Architecture::Arm64 => "ARM64",
    };
    TaskDefinition {
        family: Expr::lit(format!("{}-{family_suffix}", spec.name)),
        cpu: cpu.to_string(),
        memory: memory.to_string(),
        network_mode: "awsvpc",
        requires_compatibilities: vec!["FARGATE"],
        runtime_platform: RuntimePlatform {
            cpu_architecture,
            operating_system_family: "LINUX",
        },
        execution_role_arn: execution_role,
        task_role_arn: task_role,
        container_definitions: containers,
        tags,
    }
}

/// Adds a task definition and its service with the circuit breaker on.
pub fn add_service(
    t: &mut Template,
    spec: &Spec,
    task: TaskSpec,
    net: &Network,
    cluster: &Cluster,
    tags: &Tags,
) -> Handle<Service> {
    let definition = t.add(
        &format!("{}TaskDefinition", task.id),
        task_definition(
            spec,
            task.family_suffix,
            (task.cpu, task.memory),
            task.containers,
            task.execution_role,
            task.task_role,
            tags.all(),
        ),
    );
    let capacity_provider = if task.spot { "FARGATE_SPOT" } else { "FARGATE" };
    t.add_with(
        &format!("{}Service", task.id),
        Service {
            cluster: cluster.handle.r#ref(),
            task_definition: definition.r#ref(),
            // With autoscaling the scaler owns the worker count: a count in the template
            // would be re-applied by every stack update that touches the service.
            desired_count: (task.id != "Worker" || !spec.autoscaling.enabled).then_some(task.count),
            capacity_provider_strategy: vec![CapacityProviderStrategyItem {
                capacity_provider,
                weight: 1,
                base: 0,
            }],
            platform_version: "LATEST",
            network_configuration: NetworkConfiguration {
                awsvpc_configuration: AwsVpcConfiguration {
                    subnets: net.subnets.clone(),
                    security_groups: task.security_groups,
                    assign_public_ip: net.assign_public_ip,
                },
            },
            deployment_configuration: DeploymentConfiguration {
                deployment_circuit_breaker: DeploymentCircuitBreaker {
                    enable: true,
                    rollback: true,
                },
                minimum_healthy_percent: task.deployment.percents().0,
                maximum_percent: task.deployment.percents().1,
            },
            service_registries: task
                .registry
                .map(|arn| vec![ServiceRegistry { registry_arn: arn }]),
            enable_execute_command: false,
            propagate_tags: "SERVICE",
            tags: tags.named(&format!("{}-{}", spec.name, task.family_suffix)),
        },
        task.depends_on,
    )
}

/// Size, count and capacity of a component from the stack file.
fn sizing(spec: &Spec, id: &str) -> (u32, u32, u32, bool) {
    let s = &spec.services;
    match id {
        "ApiServer" => (
            s.api_server.cpu,
            s.api_server.memory,
            s.api_server.count,
            s.api_server.spot,
        ),
        "Scheduler" => (
            s.scheduler.cpu,
            s.scheduler.memory,
            s.scheduler.count,
            s.scheduler.spot,
        ),
        "DagProcessor" => (
            s.dag_processor.cpu,
            s.dag_processor.memory,
            s.dag_processor.count,
            s.dag_processor.spot,
        ),
        "Triggerer" => (
            s.triggerer.cpu,
            s.triggerer.memory,
            s.triggerer.count,
            s.triggerer.spot,
        ),
        "Worker" => (s.worker.cpu, s.worker.memory, s.worker.count, s.worker.spot),
        _ => (s.flower.cpu, s.flower.memory, 1, false),
    }
}

/// Component-specific environment on top of the shared configuration.
fn own_env(spec: &Spec, component: &Component) -> Vec<KeyValue> {
    match component.name {
        // One API worker process per half vCPU: 4 (Airflow's default) starve a small task.
        "api-server" => vec![KeyValue::new(
            "AIRFLOW__API__WORKERS",
            (spec.services.api_server.cpu / 512).max(1).to_string(),
        )],
        // dumb-init passes SIGTERM to the worker only, which then shuts down warmly:
        // it stops taking tasks and finishes running ones within the stop timeout.
        "worker" => vec![KeyValue::new("DUMB_INIT_SETSID", "0")],
        _ => Vec::new(),
    }
}

#[allow(clippy::too_many_arguments)]
pub fn add(
    t: &mut Template,
    spec: &Spec,
    net: &Network,
    sg: &SecurityGroups,
    cluster: &Cluster,
    roles: &Roles,
    shared: &SharedConfig,
    migration: &Migration,
    tags: &Tags,
) -> Handle<Service> {
    let mut worker = None;
    let mut core = packing::Core::default();
    for component in components(spec) {
        let log_group = log_group(t, spec, component.id, component.name, tags);
        let mut secrets = shared.secrets_for(component.name);
        if component.name == "api-server" && spec.airflow.auth_manager == AuthManager::Simple {
            secrets.push(shared.admin_password.clone());
        }
        let mut container = container(spec, component.name, spec.airflow_image(), &log_group)
            .with_command(component.command.clone())
            .with_env(shared.env.clone())
            .with_env(own_env(spec, &component))
            .with_secrets(secrets)
            .with_health_check(component.health.clone());
        if let Some(port) = component.port {
            container = container.with_ports(vec![PortMapping {
                container_port: port,
                protocol: "tcp",
                name: component.name.to_string(),
            }]);
        }
        if component.name == "worker" {
            container = container.with_stop_timeout(120);
        }
        let registry = component
            .discoverable
            .then(|| cluster.register(t, component.id, component.name, tags));
        let (cpu, memory, count, spot) = sizing(spec, component.id);
        let (group, role) = match component.id {
            "ApiServer" => (&sg.api_server, roles.tasks.get("ApiServer")),
            "Scheduler" => (&sg.scheduler, roles.tasks.get("Scheduler")),
            "DagProcessor" => (&sg.dag_processor, roles.tasks.get("DagProcessor")),
            "Triggerer" => (&sg.triggerer, roles.tasks.get("Triggerer")),
            "Worker" => (&sg.worker, roles.tasks.get("Worker")),
            _ => (
                sg.flower
                    .as_ref()
                    .expect("flower group exists when flower is enabled"),
                None,
            ),
        };
        // Start once the migration is done and this component's network paths exist.
        let ready: Vec<LogicalId> = migration
            .ready
            .iter()
            .cloned()
            .chain(sg.paths_of(component.id))
            .chain(net.egress_ready.iter().cloned())
            .collect();
        if packing::Core::takes(spec, component.id) {
            core.push(container, security::ids(&[group]), registry, ready);
            continue;
        }
        let service = add_service(
            t,
            spec,
            TaskSpec {
                id: component.id,
                family_suffix: component.name,
                cpu,
                memory,
                count,
                spot,
                containers: vec![container],
                execution_role: roles.execution.arn(),
                task_role: role.map(|r| r.arn()),
                security_groups: security::ids(&[group]),
                registry,
                depends_on: Attributes::depends_on(ready),
                deployment: Deployment::StartFirst,
            },
            net,
            cluster,
            tags,
        );
        if component.id == "Worker" {
            worker = Some(service);
        }
    }
    core.finish(t, spec, net, cluster, roles, tags);
    worker.expect("every stack has a worker service")
}
