//! The Airflow configuration shared by every Airflow container (principle: "use the
//! same configuration across all the Airflow components"): one environment, and the
//! secrets, of which each container gets only those its component needs.

use super::component::{airflow_users, AirflowSecret, Component};
use super::keys::Keys;
use super::storage::Bucket;
use crate::cfn::l1::ecs::task_definition::{KeyValuePair, Secret};
use crate::cfn::{Expr, Pseudo};
use crate::spec::{AuthManager, SecretEnvComponent, Spec};

/// The Airflow configuration: one environment for every Airflow container, and the
/// secrets, of which each container gets only those its component needs
/// ([`SharedConfig::secrets_for`]).
pub struct SharedConfig {
    /// The environment every Airflow container gets.
    pub env: Vec<KeyValuePair>,
    /// The image every Airflow container runs.
    pub image: Expr,
    fernet_key: Secret,
    api_secret_key: Secret,
    jwt_secret: Secret,
    sql_alchemy_conn: Secret,
    master_sql_alchemy_conn: Secret,
    airflow_database_url: Secret,
    airflow_database_password: Secret,
    broker_url: Secret,
    result_backend: Secret,
    admin_password: Secret,
    scaler_password: Option<Secret>,
    streams_password: Option<Secret>,
}

/// An environment variable of a container. Never a secret value: those are
/// [`Secret`]s, which ECS reads from Secrets Manager at start.
pub fn env_var(name: &str, value: impl Into<Expr>) -> KeyValuePair {
    KeyValuePair {
        name: Some(name.into()),
        value: Some(value.into()),
    }
}

/// The Airflow database user's URL, in the migration task (which migrates as that user).
pub const AIRFLOW_DATABASE_URL_ENV: &str = "AIRFLOW_STACK_AIRFLOW_DB_URL";
/// The Airflow database user's password, in the migration task (which sets it).
pub const AIRFLOW_DATABASE_PASSWORD_ENV: &str = "AIRFLOW_STACK_AIRFLOW_DB_PASSWORD";

/// `[api] base_url` as an environment variable.
pub const BASE_URL_ENV: &str = "AIRFLOW__API__BASE_URL";

pub use super::component::{ADMIN_PASSWORD_ENV, SCALER_PASSWORD_ENV, STREAMS_PASSWORD_ENV};

impl SharedConfig {
    /// The configuration of this stack file, reading secrets from `keys`.
    pub fn new(spec: &Spec, keys: &Keys, bucket: &Bucket, image: Expr) -> SharedConfig {
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
            env_var("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor"),
            env_var("AIRFLOW__CORE__AUTH_MANAGER", auth_manager),
            env_var(
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                format!("http://api-server.{ns}:8080/execution/"),
            ),
            env_var(
                "AIRFLOW__CORE__LOAD_EXAMPLES",
                python_bool(spec.airflow.load_examples),
            ),
            // Fargate host names do not resolve across tasks; the task IP does, so the
            // api-server can fetch logs of running tasks from workers and the triggerer.
            env_var(
                "AIRFLOW__CORE__HOSTNAME_CALLABLE",
                "airflow.utils.net.get_host_ip_address",
            ),
            env_var(
                "AIRFLOW__CELERY__WORKER_CONCURRENCY",
                spec.services.worker.concurrency.to_string(),
            ),
            // Celery re-delivers a task not acknowledged within this time; Airflow warns
            // when it is unset (finding of the end-to-end run).
            env_var(
                "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT",
                spec.airflow.celery_visibility_timeout_seconds.to_string(),
            ),
            env_var("AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK", "True"),
            env_var("AIRFLOW__LOGGING__REMOTE_LOGGING", "True"),
            env_var(
                "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER",
                Expr::concat(vec![
                    Expr::lit("s3://"),
                    bucket.handle.r#ref(),
                    Expr::lit(format!("/{}", spec.storage.logs_prefix)),
                ]),
            ),
            env_var("AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID", STACK_CONNECTION),
            // Credentials come from the task role; the connection only names the region.
            env_var(
                "AIRFLOW_CONN_AWS_DEFAULT",
                Expr::concat(vec![
                    Expr::lit("aws://?region_name="),
                    Expr::Pseudo(Pseudo::Region),
                ]),
            ),
            env_var(
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
                bundle_config(spec, bucket),
            ),
        ];
        // `[api] base_url`: the URL the UI is served at (stack/access.rs). Airflow 3.3.2
        // reads it for the login's redirects (FAB's `www/views.py` sends the browser to
        // it after the login), the UI's root path and cookie path (`api_fastapi/app.py`),
        // the allowed targets of a `next` redirect (`core_api/security.py`), and the
        // links it writes: a task instance's `log_url` in failure emails and callbacks
        // (`sdk/execution_time/task_runner.py`, run on workers; `models/taskinstance.py`).
        // So every component gets it. A value in `airflow.extra_env` wins, as for the
        // capacity defaults.
        if !spec.airflow.extra_env.contains_key(BASE_URL_ENV) {
            env.push(env_var(
                BASE_URL_ENV,
                spec.access.base_url(&spec.network.namespace),
            ));
        }
        if spec.airflow.auth_manager == AuthManager::Simple {
            env.push(env_var(
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
                simple_auth_manager_users(spec),
            ));
        }
        env.extend(
            capacity_defaults(spec)
                .into_iter()
                .filter(|(name, _)| !spec.airflow.extra_env.contains_key(*name))
                .map(|(name, value)| env_var(name, value)),
        );
        env.extend(
            spec.airflow
                .extra_env
                .iter()
                .map(|(k, v)| env_var(k, v.clone())),
        );
        let secret = |name: &str, arn: &Expr| Secret {
            name: Some(name.into()),
            value_from: Some(arn.clone()),
        };
        SharedConfig {
            env,
            image,
            fernet_key: secret("AIRFLOW__CORE__FERNET_KEY", &keys.fernet_key),
            api_secret_key: secret("AIRFLOW__API__SECRET_KEY", &keys.api_secret_key()),
            jwt_secret: secret("AIRFLOW__API_AUTH__JWT_SECRET", &keys.jwt_secret()),
            sql_alchemy_conn: secret(
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                &keys.sql_alchemy_conn(),
            ),
            master_sql_alchemy_conn: secret(
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
                &keys.master_sql_alchemy_conn(),
            ),
            airflow_database_url: secret(AIRFLOW_DATABASE_URL_ENV, &keys.sql_alchemy_conn()),
            airflow_database_password: secret(
                AIRFLOW_DATABASE_PASSWORD_ENV,
                &keys.airflow_database_password(),
            ),
            broker_url: secret("AIRFLOW__CELERY__BROKER_URL", &keys.broker_url()),
            // Celery task results go to Redis, not to the metadata database (Airflow's
            // default, `db+` and the database URL): that default is the one reason a
            // worker would need database credentials (airflow3.md §14). Same URL as the
            // broker: result keys (`celery-task-meta-*`) and queues do not collide.
            result_backend: secret("AIRFLOW__CELERY__RESULT_BACKEND", &keys.broker_url()),
            admin_password: secret(ADMIN_PASSWORD_ENV, &keys.admin_password),
            scaler_password: keys
                .scaler_password
                .as_ref()
                .map(|arn| secret(SCALER_PASSWORD_ENV, arn)),
            streams_password: keys
                .streams_password
                .as_ref()
                .map(|arn| secret(STREAMS_PASSWORD_ENV, arn)),
        }
    }

    /// The environment of `component`'s container: the shared one, plus the secrets
    /// backend in the components `airflow.secrets_backend` names
    /// ([`secrets_backend_env`]), plus, in containers that read the Fernet key while
    /// `secrets.fernet_rotation` is set, that token's hash ([`FERNET_ROTATION_ENV`]).
    pub fn env_for(&self, spec: &Spec, component: Component) -> Vec<KeyValuePair> {
        let mut env = self.env.clone();
        if reads_secrets_backend(spec, component) {
            env.extend(secrets_backend_env(spec));
        }
        let token = &spec.secrets.fernet_rotation;
        if !token.is_empty() && component.secrets(spec).contains(&AirflowSecret::FernetKey) {
            env.push(env_var(FERNET_ROTATION_ENV, rotation_hash(token)));
        }
        env
    }

    /// The secrets `component`'s container gets ([`Component::secrets`] says which and
    /// why).
    pub fn secrets_for(&self, spec: &Spec, component: Component) -> Vec<Secret> {
        component
            .secrets(spec)
            .into_iter()
            .map(|secret| self.secret(secret).clone())
            .chain(user_secrets(spec, component))
            .collect()
    }

    fn secret(&self, secret: AirflowSecret) -> &Secret {
        match secret {
            AirflowSecret::FernetKey => &self.fernet_key,
            AirflowSecret::ApiSecretKey => &self.api_secret_key,
            AirflowSecret::JwtSecret => &self.jwt_secret,
            AirflowSecret::SqlAlchemyConn => &self.sql_alchemy_conn,
            AirflowSecret::MasterSqlAlchemyConn => &self.master_sql_alchemy_conn,
            AirflowSecret::AirflowDatabaseUrl => &self.airflow_database_url,
            AirflowSecret::AirflowDatabasePassword => &self.airflow_database_password,
            AirflowSecret::BrokerUrl => &self.broker_url,
            AirflowSecret::ResultBackend => &self.result_backend,
            AirflowSecret::AdminPassword => &self.admin_password,
            // Component::secrets names it only in stacks that run the scaler, which are
            // the stacks that have the secret.
            AirflowSecret::ScalerPassword => self
                .scaler_password
                .as_ref()
                .expect("the scaler password secret exists when the scaler runs"),
            AirflowSecret::StreamsPassword => self
                .streams_password
                .as_ref()
                .expect("the streams password secret exists with event streams"),
        }
    }
}

/// The `airflow.secret_env` variables `component` gets, as ECS `Secrets`: the ARN, or
/// `<ARN>:<json key>::` for one key of a JSON secret (ECS's `valueFrom` form
/// `arn:json-key:version-stage:version-id`, "Pass Secrets Manager secrets through Amazon
/// ECS environment variables", Amazon ECS Developer Guide).
fn user_secrets(spec: &Spec, component: Component) -> Vec<Secret> {
    spec.airflow
        .secret_env
        .iter()
        .filter(|(_, entry)| {
            entry
                .components
                .iter()
                .any(|c| component_of(*c) == component)
        })
        .map(|(name, entry)| Secret {
            name: Some(Expr::lit(name.clone())),
            value_from: Some(Expr::lit(match &entry.json_key {
                Some(key) => format!("{}:{key}::", entry.secret),
                None => entry.secret.to_string(),
            })),
        })
        .collect()
}

fn component_of(c: SecretEnvComponent) -> Component {
    match c {
        SecretEnvComponent::ApiServer => Component::ApiServer,
        SecretEnvComponent::Scheduler => Component::Scheduler,
        SecretEnvComponent::DagProcessor => Component::DagProcessor,
        SecretEnvComponent::Triggerer => Component::Triggerer,
        SecretEnvComponent::Worker => Component::Worker,
        SecretEnvComponent::Flower => Component::Flower,
    }
}

/// The connection the stack defines for its own AWS calls (remote logging, the DAG
/// bundle): `AIRFLOW_CONN_AWS_DEFAULT`, the region only; credentials are the task role's.
pub const STACK_CONNECTION: &str = "aws_default";

/// The amazon provider's Secrets Manager backend (apache-airflow-providers-amazon 9.39.0,
/// `airflow/providers/amazon/aws/secrets/secrets_manager.py`).
pub const SECRETS_MANAGER_BACKEND: &str =
    "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend";

/// Whether `component` looks connections and variables up in Secrets Manager
/// (`airflow.secrets_backend.components`).
pub fn reads_secrets_backend(spec: &Spec, component: Component) -> bool {
    spec.airflow
        .secrets_backend
        .as_ref()
        .is_some_and(|b| b.components.iter().any(|c| component_of(*c) == component))
}

/// `[secrets] backend` and `backend_kwargs` for `airflow.secrets_backend`. Only the
/// connection and variable prefixes: `config_prefix` is null, so no configuration
/// option is ever looked up there (the task roles may read nothing else), and the
/// region is the stack's own. The stack's own connection, [`STACK_CONNECTION`], is
/// never looked up there (`connections_lookup_pattern`, matched with `re.match`): it is
/// in the environment, and remote logging and the DAG bundle ask for it on every log
/// upload and bundle refresh, each a Secrets Manager call otherwise. Workers read `[secrets]` too when `[workers]
/// secrets_backend` is unset (`_get_custom_secret_backend`, apache-airflow-core 3.3.2),
/// which the stack file cannot set while this is on.
fn secrets_backend_env(spec: &Spec) -> Vec<KeyValuePair> {
    let Some(b) = &spec.airflow.secrets_backend else {
        return Vec::new();
    };
    // The prefixes hold no character JSON escapes (SecretPrefix).
    let kwargs = Expr::concat(vec![
        Expr::lit(format!(
            r#"{{"connections_prefix": "{}", "connections_lookup_pattern": "^(?!{STACK_CONNECTION}$)", "variables_prefix": "{}", "config_prefix": null, "region_name": ""#,
            b.connections_prefix, b.variables_prefix
        )),
        Expr::Pseudo(Pseudo::Region),
        Expr::lit(r#""}"#),
    ]);
    vec![
        env_var("AIRFLOW__SECRETS__BACKEND", SECRETS_MANAGER_BACKEND),
        env_var("AIRFLOW__SECRETS__BACKEND_KWARGS", kwargs),
    ]
}

/// The secret ARNs `airflow.secrets_backend` reads: every secret under each prefix
/// (`arn:<partition>:secretsmanager:<region>:<account>:secret:<prefix>/*`; the backend
/// joins prefix and id with `/`, and Secrets Manager appends six random characters to a
/// name in its ARN, which the `*` covers).
pub fn secrets_backend_arns(spec: &Spec) -> Vec<Expr> {
    spec.airflow
        .secrets_backend
        .iter()
        .flat_map(|b| [&b.connections_prefix, &b.variables_prefix])
        .map(|prefix| Expr::arn("secretsmanager", Expr::lit(format!("secret:{prefix}/*"))))
        .collect()
}

/// The ARNs of every `airflow.secret_env` secret, once each, for the execution role.
pub fn user_secret_arns(spec: &Spec) -> Vec<Expr> {
    let arns: std::collections::BTreeSet<&str> = spec
        .airflow
        .secret_env
        .values()
        .map(|e| e.secret.as_str())
        .collect();
    arns.into_iter().map(Expr::lit).collect()
}

/// Set in every container that reads the Fernet key while a rotation token is set: a
/// new token changes these task definitions, so ECS restarts the services and they read
/// the rotated key (`new,<every old key>`). A secret's new value alone restarts nothing:
/// ECS reads secrets when a task starts.
pub const FERNET_ROTATION_ENV: &str = "AIRFLOW_STACK_FERNET_ROTATION";

/// The first 16 hex digits of the token's SHA-256: enough to differ per token, and it
/// puts no free text of the stack file into the task definitions.
fn rotation_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(token.as_bytes())[..8])
}

/// `[core] simple_auth_manager_users` (`user:role,...`): the stack's users
/// ([`airflow_users`]).
fn simple_auth_manager_users(spec: &Spec) -> String {
    airflow_users(spec)
        .iter()
        .map(|u| format!("{}:{}", u.name, u.simple_role))
        .collect::<Vec<_>>()
        .join(",")
}

/// `[core] parallelism`: task instances one scheduler keeps queued and running at once.
pub const PARALLELISM_ENV: &str = "AIRFLOW__CORE__PARALLELISM";
/// Airflow's default for it.
pub const DEFAULT_PARALLELISM: u32 = 32;
/// `[core] default_task_retries`: retries of an operator that sets none.
pub const DEFAULT_TASK_RETRIES_ENV: &str = "AIRFLOW__CORE__DEFAULT_TASK_RETRIES";

/// `[workers] execution_api_timeout`: how long a task's calls to the execution API wait
/// for an answer before they are retried (5 attempts).
pub const EXECUTION_API_TIMEOUT_ENV: &str = "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT";
/// The stack's value for it, in seconds (Airflow's is 5).
pub const EXECUTION_API_TIMEOUT_SECONDS: u32 = 30;

/// Settings that follow from the stack's capacity, each only where Airflow's default
/// does not fit; a value the stack file sets in `airflow.extra_env` wins (the caller
/// leaves these out then).
///
/// - `[workers] execution_api_timeout` 30 s instead of 5: an api-server process builds
///   its versioned execution API on the first request that reaches it (Cadwyn 7's
///   `Cadwyn.__call__` runs `_cadwyn_initialize` then, in the event loop), 4.3 s of CPU
///   measured on one full core, and the stack runs one API process per half vCPU, so
///   after every api-server start each process answers its first task call after about
///   9 s on Fargate. With 5 s every task that starts then spends its retries on a
///   request the server has not even read; the end-to-end run saw a task fail so
///   (issue 17's CI run: five 5-s attempts used up during a 33-s start on a loaded host).
/// - With autoscaling, `[core] parallelism` of at least `max_workers` × worker
///   concurrency: the scheduler queues no more task instances than it (queued and
///   running together), so with Airflow's 32 the scaler would never see the load that
///   asks for more than 32 / concurrency workers.
/// - With workers on Fargate Spot, `[core] default_task_retries` 1: Fargate stops a
///   Spot task 2 minutes after the interruption notice, and a task instance killed then
///   fails unless it has a retry left (Celery's warm shutdown only finishes what ends
///   within the container's stop timeout).
fn capacity_defaults(spec: &Spec) -> Vec<(&'static str, String)> {
    let mut out = vec![(
        EXECUTION_API_TIMEOUT_ENV,
        EXECUTION_API_TIMEOUT_SECONDS.to_string(),
    )];
    let a = &spec.autoscaling;
    if a.enabled {
        let slots = a
            .max_workers
            .saturating_mul(spec.services.worker.concurrency);
        out.push((PARALLELISM_ENV, slots.max(DEFAULT_PARALLELISM).to_string()));
    }
    if spec.services.worker.spot {
        out.push((DEFAULT_TASK_RETRIES_ENV, "1".to_owned()));
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> Spec {
        serde_yaml_ng::from_str(&format!("name: t\nregion: us-east-1\n{yaml}")).unwrap()
    }

    #[test]
    fn parallelism_covers_every_slot_autoscaling_may_start() {
        let s = spec("autoscaling: {enabled: true, max_workers: 10}\nservices:\n  worker: {concurrency: 8}\n");
        assert_eq!(
            capacity_defaults(&s),
            vec![timeout(), (PARALLELISM_ENV, "80".to_owned())]
        );
        // Never below Airflow's default.
        let s = spec("autoscaling: {enabled: true, max_workers: 2}\n");
        assert_eq!(
            capacity_defaults(&s),
            vec![timeout(), (PARALLELISM_ENV, "32".to_owned())]
        );
        // Without autoscaling, Airflow's default stays.
        assert_eq!(capacity_defaults(&spec("")), vec![timeout()]);
    }

    /// `FERNET_ROTATION_ENV` of each container of the built template, by container name.
    fn rotation_values(spec: &Spec) -> std::collections::BTreeMap<String, Option<String>> {
        let template = crate::stack::build(spec).unwrap().to_value();
        let mut found = std::collections::BTreeMap::new();
        for resource in template["Resources"].as_object().unwrap().values() {
            if resource["Type"] != "AWS::ECS::TaskDefinition" {
                continue;
            }
            for c in resource["Properties"]["ContainerDefinitions"]
                .as_array()
                .unwrap()
            {
                let value = c["Environment"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|e| e["Name"] == FERNET_ROTATION_ENV)
                    .map(|e| e["Value"].as_str().unwrap().to_owned());
                found.insert(c["Name"].as_str().unwrap().to_owned(), value);
            }
        }
        found
    }

    #[test]
    fn a_rotation_token_changes_every_task_definition_that_reads_the_fernet_key() {
        let flower = "services:\n  flower: {enabled: true}\n";
        let none = rotation_values(&spec(flower));
        let first = rotation_values(&spec(&format!(
            "{flower}secrets: {{fernet_rotation: r1}}\n"
        )));
        let second = rotation_values(&spec(&format!(
            "{flower}secrets: {{fernet_rotation: r2}}\n"
        )));
        assert!(none.values().all(Option::is_none), "{none:?}");
        for c in ["api-server", "scheduler", "dag-processor", "triggerer"] {
            let (a, b) = (first[c].clone().unwrap(), second[c].clone().unwrap());
            assert_ne!(a, b, "{c}: a new token must change the task definition");
            assert_eq!(a, rotation_hash("r1"));
        }
        // Containers without the key do not restart for it.
        for c in ["worker", "flower", "migrate", "redis"] {
            assert_eq!(first.get(c), Some(&None), "{c}: {first:?}");
        }
        assert_eq!(rotation_hash("r1").len(), 16);
    }

    #[test]
    fn spot_workers_give_tasks_one_retry() {
        let s = spec("services:\n  worker: {spot: true}\n");
        assert_eq!(
            capacity_defaults(&s),
            vec![timeout(), (DEFAULT_TASK_RETRIES_ENV, "1".to_owned())]
        );
    }

    fn timeout() -> (&'static str, String) {
        (EXECUTION_API_TIMEOUT_ENV, "30".to_owned())
    }

    /// The values of `name` in the Airflow containers of the built template.
    fn env_values(spec: &Spec, name: &str) -> Vec<Option<String>> {
        let template = crate::stack::build(spec).unwrap().to_value();
        let mut found = Vec::new();
        for resource in template["Resources"].as_object().unwrap().values() {
            if resource["Type"] != "AWS::ECS::TaskDefinition" {
                continue;
            }
            for c in resource["Properties"]["ContainerDefinitions"]
                .as_array()
                .unwrap()
            {
                if c["Name"] == "redis" {
                    continue;
                }
                let values: Vec<_> = c["Environment"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|e| e["Name"] == name)
                    .map(|e| e["Value"].as_str().unwrap().to_owned())
                    .collect();
                assert!(
                    values.len() <= 1,
                    "{name} twice in {}: {values:?}",
                    c["Name"]
                );
                found.push(values.into_iter().next());
            }
        }
        found
    }

    #[test]
    fn tasks_wait_30_s_for_the_execution_api_unless_the_stack_file_says_otherwise() {
        let values = env_values(&spec(""), EXECUTION_API_TIMEOUT_ENV);
        assert!(values.len() >= 5, "{values:?}");
        assert!(
            values.iter().all(|v| v.as_deref() == Some("30")),
            "{values:?}"
        );
        let own =
            spec("airflow:\n  extra_env: {AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT: \"12\"}\n");
        let values = env_values(&own, EXECUTION_API_TIMEOUT_ENV);
        assert!(
            values.iter().all(|v| v.as_deref() == Some("12")),
            "{values:?}"
        );
    }
}
