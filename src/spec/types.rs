//! What the user writes in a stack file. Every field has a documented default, so a
//! stack file only names what differs. Unknown keys are errors, everywhere.

use std::collections::BTreeMap;

use super::access::Access;
use super::build_inputs::BuildInputs;
use super::values::{
    LambdaFunctionRef, LogGroupName, OsPackage, PostgresVersion, Region, ScheduleExpression,
    SecretArn, SecretPrefix, StackName, SubnetId, VpcCidr, VpcId,
};

use schemars::JsonSchema;
use serde::Deserialize;

/// A stack file: one Airflow 3 deployment on ECS Fargate.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// CloudFormation stack name and the prefix of every named resource. Letters, digits
    /// and hyphens, starting with a letter, at most 32 characters.
    pub name: StackName,
    /// AWS region the stack is deployed to, e.g. `us-east-1`.
    pub region: Region,
    /// Tags put on the stack and on every resource that takes tags.
    #[serde(default)]
    #[schemars(schema_with = "super::schema_rules::tags")]
    pub tags: BTreeMap<String, String>,
    /// Turn on CloudFormation termination protection (recommended for production).
    #[serde(default)]
    pub termination_protection: bool,
    /// Airflow version, image and configuration shared by every component.
    #[serde(default)]
    pub airflow: Airflow,
    /// The VPC: created by the stack, or an existing one.
    #[serde(default)]
    pub network: Network,
    /// The metadata database.
    #[serde(default)]
    pub database: Database,
    /// The Celery broker.
    #[serde(default)]
    pub redis: Redis,
    /// Size, count and capacity of each Airflow component.
    #[serde(default)]
    pub services: Services,
    /// The S3 bucket holding DAGs and task logs.
    #[serde(default)]
    pub storage: Storage,
    /// CloudWatch Logs settings.
    #[serde(default)]
    pub logs: Logs,
    /// Generated secrets.
    #[serde(default)]
    pub secrets: Secrets,
    /// Which KMS key encrypts the stack's data at rest (log groups, secrets, the bucket).
    #[serde(default)]
    pub encryption: Encryption,
    /// Extra metrics for the ECS cluster (CloudWatch Container Insights). Off by default.
    #[serde(default)]
    pub monitoring: Monitoring,
    /// Queue-driven worker autoscaling by the scaler Lambda. Off by default.
    #[serde(default)]
    pub autoscaling: Autoscaling,
    /// Alerts when a DAG turns failed and when it recovers. Off by default.
    #[serde(default)]
    pub alerts: Alerts,
    /// Pause and resume every ECS service on a timetable (EventBridge Scheduler calling
    /// ECS UpdateService). Empty (the default): no schedule; use `airflow-stack pause`.
    #[serde(default)]
    pub schedule: Option<Schedule>,
    /// How people reach the Airflow UI, the REST API and Flower.
    #[serde(default)]
    pub access: Access,
    /// Long-lived HTTP event streams (server-sent events or NDJSON) whose events each
    /// trigger one DAG run or record one Asset event, exactly once per distinct event.
    /// Empty (the default): none.
    #[serde(default)]
    pub streams: Vec<super::Stream>,
    /// What `airflow.build` names, read from disk when the stack file is loaded
    /// (the files themselves, not only their paths): the image tag is their hash, so
    /// `synth` and `deploy` must see the same bytes. Not a stack-file key.
    #[serde(skip)]
    #[schemars(skip)]
    pub build_inputs: Option<BuildInputs>,
}

/// When to pause (every service at 0 tasks) and resume (the stack file's counts). The
/// database and all data stay; Aurora at `min_capacity: 0` pauses itself when idle.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// IANA time zone of both expressions, e.g. `Europe/Berlin`. Default: `UTC`.
    #[serde(default = "utc")]
    #[schemars(regex(pattern = r"^(UTC|[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)+)$"))]
    pub timezone: String,
    /// When to resume: an EventBridge Scheduler `cron(...)` or `rate(...)` expression,
    /// e.g. `cron(0 7 ? * MON-FRI *)`.
    pub resume: ScheduleExpression,
    /// When to pause, e.g. `cron(0 19 ? * MON-FRI *)`.
    pub pause: ScheduleExpression,
}

fn utc() -> String {
    "UTC".into()
}

/// Airflow itself.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Airflow {
    /// Airflow version (3.x). Also picks the default image.
    #[schemars(regex(pattern = r"^3\.[0-9]+\.[0-9]+$"))]
    pub version: String,
    /// Container image for every Airflow component. Default:
    /// `apache/airflow:<version>-python3.12`.
    #[schemars(regex(pattern = r"^\S+$"))]
    pub image: Option<String>,
    /// Auth manager: `fab` (users in the metadata database; an admin user is created
    /// with the generated password) or `simple` (development only).
    pub auth_manager: AuthManager,
    /// Load Airflow's example DAGs.
    pub load_examples: bool,
    /// Seconds before Celery hands an unacknowledged task to another worker; keep it
    /// above your longest task, or a long task runs twice.
    #[schemars(range(min = 60, max = 604800))]
    pub celery_visibility_timeout_seconds: u32,
    /// Extra Airflow configuration as environment variables (`AIRFLOW__SECTION__KEY`).
    /// Keys the stack manages (executor, database, broker, secrets, logging, bundles)
    /// are rejected, and so is the secrets backend while `secrets_backend` is on.
    #[schemars(schema_with = "super::schema_rules::extra_env")]
    pub extra_env: BTreeMap<String, String>,
    /// Environment variables whose values come from Secrets Manager, for your own
    /// secrets (an SMTP password, a connection's URI, an API key). ECS reads each secret
    /// when a task starts and gives it to the chosen components through the task
    /// definition's `Secrets`; the template holds only the ARN, and the execution role
    /// may read exactly these ARNs. A secret encrypted with a customer-managed KMS key
    /// also needs that key's policy to let the stack's execution role decrypt.
    #[schemars(schema_with = "super::schema_rules::secret_env")]
    pub secret_env: BTreeMap<String, SecretEnv>,
    /// Secrets Manager as Airflow's secrets backend (`[secrets] backend`, the amazon
    /// provider's `SecretsManagerBackend`): connections and variables are looked up
    /// under two name prefixes first, then in the environment and the metadata
    /// database. Only the chosen components get the setting, and only their task roles
    /// may read `<prefix>/*`. Empty (the default): off. `{}`: on, with the defaults.
    pub secrets_backend: Option<SecretsBackend>,
    /// An Airflow image built in your account from your Python requirements, plugins
    /// and Debian packages (CodeBuild, pushed to the stack's ECR repository, tagged by
    /// the SHA-256 of everything that went in). Every Airflow container runs it. The
    /// base is `image` when set, else the official image of `version`. Empty (the
    /// default): no build.
    pub build: Option<ImageBuild>,
    /// Lambda functions DAGs may invoke with the tracked Lambda operator
    /// (`TrackedLambdaInvokeOperator`, providers/airflow-stack-lambda): each a function
    /// name (in the stack's account and region), a function ARN (optionally ending in a
    /// version or alias), or `{function: <name or ARN>, log_group: <name>}` for a
    /// function that logs to a log group of its own. The workers' task role may invoke
    /// them, read their configuration and search their log groups
    /// (`logs:FilterLogEvents`); the triggerer's may only search the log groups. A
    /// non-empty list also builds the image in the account (as `build` does) with the
    /// provider installed. Empty (the default): nothing.
    #[schemars(schema_with = "super::schema_rules::lambda_functions")]
    pub lambda_functions: Vec<LambdaFunction>,
}

/// One entry of `airflow.lambda_functions`: a function and the log group it writes to.
/// Written as a plain string (the function; its log group is `/aws/lambda/<name>`) or a
/// map `{function: ..., log_group: ...}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LambdaFunction {
    /// The function: a name or an ARN.
    pub function: LambdaFunctionRef,
    /// Its log group, when not Lambda's default `/aws/lambda/<name>`.
    pub log_group: Option<LogGroupName>,
}

impl LambdaFunction {
    /// The log group the function writes to: the one named, else `/aws/lambda/<name>`.
    pub fn log_group_name(&self) -> String {
        match &self.log_group {
            Some(group) => group.as_str().to_string(),
            None => format!("/aws/lambda/{}", self.function.name()),
        }
    }

    /// What `lambda:InvokeFunction` and `lambda:GetFunctionConfiguration` are granted
    /// on: the function and every version and alias of it (`<arn>`, `<arn>:*`; Lambda
    /// authorizes a call with a `Qualifier` on the qualified ARN), or, for an ARN that
    /// names a version or alias, that one alone.
    pub fn function_arns(&self) -> Vec<GrantArn> {
        let f = &self.function;
        match f.arn() {
            Some(at) if at.qualifier.is_some() => vec![GrantArn::Full(f.as_str().to_string())],
            Some(_) => vec![
                GrantArn::Full(f.as_str().to_string()),
                GrantArn::Full(format!("{}:*", f.as_str())),
            ],
            None => {
                let own = |resource: String| GrantArn::Own {
                    service: "lambda",
                    resource,
                };
                vec![
                    own(format!("function:{}", f.name())),
                    own(format!("function:{}:*", f.name())),
                ]
            }
        }
    }

    /// What `logs:FilterLogEvents` is granted on: the log group's ARN, in the function's
    /// partition, region and account, in both forms IAM documents for a log group
    /// (`...:log-group:<name>`, and `...:log-group:<name>:*`, which CloudWatch Logs'
    /// user guide says to use in policies).
    pub fn log_group_arns(&self) -> Vec<GrantArn> {
        let group = self.log_group_name();
        let forms = [format!("log-group:{group}"), format!("log-group:{group}:*")];
        match self.function.arn() {
            Some(at) => forms
                .into_iter()
                .map(|resource| {
                    GrantArn::Full(format!(
                        "arn:{}:logs:{}:{}:{resource}",
                        at.partition, at.region, at.account
                    ))
                })
                .collect(),
            None => forms
                .into_iter()
                .map(|resource| GrantArn::Own {
                    service: "logs",
                    resource,
                })
                .collect(),
        }
    }
}

impl Airflow {
    /// What the workers may invoke and read the configuration of, for every function of
    /// `lambda_functions`, each ARN once, in the stack file's order.
    pub fn lambda_function_arns(&self) -> Vec<GrantArn> {
        distinct(
            self.lambda_functions
                .iter()
                .flat_map(LambdaFunction::function_arns),
        )
    }

    /// The log groups the workers and the triggerer may search, each ARN once (functions
    /// may share a log group), in the stack file's order.
    pub fn lambda_log_group_arns(&self) -> Vec<GrantArn> {
        distinct(
            self.lambda_functions
                .iter()
                .flat_map(LambdaFunction::log_group_arns),
        )
    }
}

fn distinct(arns: impl Iterator<Item = GrantArn>) -> Vec<GrantArn> {
    let mut out: Vec<GrantArn> = Vec::new();
    for arn in arns {
        if !out.contains(&arn) {
            out.push(arn);
        }
    }
    out
}

/// An ARN an IAM grant names: one in the stack's own partition, region and account
/// (written with the template's pseudo parameters), or a full ARN as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantArn {
    /// `arn:<partition>:<service>:<region>:<account>:<resource>` of the stack.
    Own {
        /// The ARN's service, e.g. `lambda`.
        service: &'static str,
        /// What follows the account, e.g. `function:load-orders`.
        resource: String,
    },
    /// A full ARN.
    Full(String),
}

impl GrantArn {
    /// The ARN's length once deployed in `region`, as IAM counts a policy's size (the
    /// stack's partition counted as `aws`, its account as the 12 digits every account
    /// has).
    pub fn deployed_len(&self, region: &str) -> usize {
        match self {
            GrantArn::Own { service, resource } => {
                "arn:aws:".len() + service.len() + 1 + region.len() + 1 + 12 + 1 + resource.len()
            }
            GrantArn::Full(arn) => arn.len(),
        }
    }
}

/// The map form of a [`LambdaFunction`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LambdaFunctionMap {
    function: LambdaFunctionRef,
    log_group: Option<LogGroupName>,
}

impl<'de> Deserialize<'de> for LambdaFunction {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, Visitor};

        struct Entry;

        impl<'de> Visitor<'de> for Entry {
            type Value = LambdaFunction;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a Lambda function name or ARN, or a map {function: <name or ARN>, log_group: <log group name>}")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<LambdaFunction, E> {
                Ok(LambdaFunction {
                    function: v.parse().map_err(E::custom)?,
                    log_group: None,
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LambdaFunction, A::Error> {
                // Through the map's own accessor, so a field's error names its path
                // (`airflow.lambda_functions[2].function`).
                let m = LambdaFunctionMap::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(LambdaFunction {
                    function: m.function,
                    log_group: m.log_group,
                })
            }
        }

        deserializer.deserialize_any(Entry)
    }
}

/// `airflow.build`: what goes into the image built in the account. Paths are relative
/// to the stack file's folder.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageBuild {
    /// A pip requirements file (one requirement per line; `-r`/`-c` includes are
    /// refused: the build context holds this one file). Installed with Airflow's
    /// constraints for the image's Airflow and Python versions, and
    /// `apache-airflow==<version>`, so nothing moves Airflow or its pinned dependencies.
    #[schemars(regex(pattern = r"^\S(.*\S)?$"), length(max = 1024))]
    pub requirements: Option<String>,
    /// A folder copied to the image's plugins folder (`/opt/airflow/plugins`, on every
    /// component's `sys.path`): Airflow plugins and shared modules.
    #[schemars(regex(pattern = r"^\S(.*\S)?$"), length(max = 1024))]
    pub plugins: Option<String>,
    /// Debian packages installed with apt-get into the image, `name` or `name=version`.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub os_packages: Vec<OsPackage>,
    /// A Secrets Manager secret (full ARN) holding Docker Hub credentials as JSON
    /// `{"username": ..., "password": ...}`: the build pulls the base image from Docker
    /// Hub once per build, and anonymous pulls are rate-limited per IP address. Without
    /// it the pull is anonymous.
    pub docker_hub_secret: Option<SecretArn>,
}

/// `airflow.secrets_backend`: where connections and variables live in Secrets Manager,
/// and which components read them there.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretsBackend {
    /// The connection `my_db` is the secret `<connections_prefix>/my_db` (a URI, or a
    /// JSON object of the connection's fields). Default: `airflow/connections`.
    #[serde(default = "SecretsBackend::default_connections_prefix")]
    pub connections_prefix: SecretPrefix,
    /// The variable `my_var` is the secret `<variables_prefix>/my_var`. Default:
    /// `airflow/variables`.
    #[serde(default = "SecretsBackend::default_variables_prefix")]
    pub variables_prefix: SecretPrefix,
    /// Which components look connections and variables up in Secrets Manager (and whose
    /// task roles may read them). Default: `worker` (task code), `triggerer` (deferred
    /// tasks' triggers) and `dag_processor` (top-level code of DAG files and DAG
    /// callbacks). The scheduler and the api-server run no DAG code; Flower reads no
    /// connection and cannot be named.
    #[serde(default = "SecretsBackend::default_components")]
    #[schemars(schema_with = "super::schema_rules::secrets_backend_components")]
    pub components: Vec<SecretEnvComponent>,
}

impl SecretsBackend {
    fn default_connections_prefix() -> SecretPrefix {
        "airflow/connections".parse().expect("a valid prefix")
    }

    fn default_variables_prefix() -> SecretPrefix {
        "airflow/variables".parse().expect("a valid prefix")
    }

    fn default_components() -> Vec<SecretEnvComponent> {
        use SecretEnvComponent::*;
        vec![DagProcessor, Triggerer, Worker]
    }
}

/// One `airflow.secret_env` variable.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretEnv {
    /// The secret's full ARN, with the six characters Secrets Manager appends to its
    /// name: `arn:aws:secretsmanager:<region>:<account>:secret:<name>-AbCdEf`.
    pub secret: SecretArn,
    /// A key of the secret's JSON value to take instead of the whole value.
    #[serde(default)]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_.@/+=-]{1,128}$"))]
    pub json_key: Option<String>,
    /// Which components get it. Default: the api-server, scheduler, dag-processor,
    /// triggerer and workers (not Flower).
    #[serde(default = "SecretEnv::default_components")]
    #[schemars(extend("uniqueItems" = true, "minItems" = 1))]
    pub components: Vec<SecretEnvComponent>,
}

impl SecretEnv {
    fn default_components() -> Vec<SecretEnvComponent> {
        use SecretEnvComponent::*;
        vec![ApiServer, Scheduler, DagProcessor, Triggerer, Worker]
    }
}

/// A component that can be given an `airflow.secret_env` variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretEnvComponent {
    /// The api-server.
    ApiServer,
    /// The scheduler.
    Scheduler,
    /// The dag-processor.
    DagProcessor,
    /// The triggerer.
    Triggerer,
    /// The Celery workers (where tasks run).
    Worker,
    /// Flower.
    Flower,
}

impl Default for Airflow {
    fn default() -> Self {
        Airflow {
            version: "3.3.2".into(),
            image: None,
            auth_manager: AuthManager::Fab,
            load_examples: false,
            celery_visibility_timeout_seconds: 21_600,
            extra_env: BTreeMap::new(),
            secret_env: BTreeMap::new(),
            secrets_backend: None,
            build: None,
            lambda_functions: Vec::new(),
        }
    }
}

/// How users log in to the UI and API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthManager {
    /// Flask AppBuilder auth manager (the Helm chart's default).
    Fab,
    /// Airflow's simple auth manager, for development and tests.
    Simple,
}

/// The VPC. Leave `vpc_id` empty to create one.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// Id of an existing VPC (`vpc-…`). Empty: the stack creates a VPC over 2 AZs.
    pub vpc_id: Option<VpcId>,
    /// With `vpc_id`: at least 2 subnet ids (`subnet-…`) in different AZs for tasks and
    /// the database.
    #[schemars(schema_with = "super::schema_rules::subnet_ids")]
    pub subnet_ids: Vec<SubnetId>,
    /// With `vpc_id`: give tasks public IPs (needed in public subnets without NAT).
    pub assign_public_ip: bool,
    /// CIDR block of a created VPC (a /16 to /24).
    pub cidr: VpcCidr,
    /// NAT gateways of a created VPC: 0 puts tasks in public subnets with public IPs and
    /// no inbound rule (cheapest), 1 or 2 puts them in private subnets behind NAT.
    #[schemars(range(max = 2))]
    pub nat_gateways: u8,
    /// Cloud Map private DNS namespace: the api-server is `api-server.<namespace>`.
    #[schemars(
        length(min = 1, max = 253),
        regex(
            pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
        )
    )]
    pub namespace: String,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            vpc_id: None,
            subnet_ids: Vec::new(),
            assign_public_ip: false,
            cidr: "10.40.0.0/16"
                .parse()
                .expect("the default CIDR block is valid"),
            nat_gateways: 0,
            namespace: "airflow".into(),
        }
    }
}

/// The metadata database (PostgreSQL).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    /// `aurora-serverless-v2` (scales in ACUs) or `rds-postgres` (one instance, cheaper
    /// when always on).
    pub engine: DatabaseEngine,
    /// PostgreSQL engine version.
    pub engine_version: PostgresVersion,
    /// Aurora: minimum capacity in ACUs (0 allows auto-pause, 0.5 steps).
    #[schemars(range(min = 0, max = 256), extend("multipleOf" = 0.5))]
    pub min_capacity: f64,
    /// Aurora: maximum capacity in ACUs (1 to 256).
    #[schemars(range(min = 1, max = 256), extend("multipleOf" = 0.5))]
    pub max_capacity: f64,
    /// RDS: instance class, e.g. `db.t4g.micro`.
    #[schemars(regex(pattern = r"^db\.[a-z0-9]+\.[a-z0-9]+$"))]
    pub instance_class: String,
    /// RDS: storage in GiB (20 to 65536).
    #[schemars(range(min = 20, max = 65536))]
    pub storage_gb: u32,
    /// Days of automated backups (1 to 35).
    #[schemars(range(min = 1, max = 35))]
    pub backup_retention_days: u32,
    /// Refuse to delete the database (set in production).
    pub deletion_protection: bool,
    /// Database name.
    #[schemars(regex(pattern = r"^[A-Za-z][A-Za-z0-9_]{0,62}$"))]
    pub name: String,
    /// Master user name.
    #[schemars(schema_with = "super::schema_rules::master_username")]
    pub username: String,
    /// RDS Enhanced Monitoring: seconds between OS metrics (memory, swap, processes) of
    /// the database instance, sent to the `RDSOSMetrics` log group; one of 0 (off, the
    /// default), 1, 5, 10, 15, 30, 60. CloudWatch Logs bills what it sends.
    #[schemars(extend("enum" = [0, 1, 5, 10, 15, 30, 60]))]
    pub monitoring_interval: u32,
}

impl Default for Database {
    fn default() -> Self {
        Database {
            engine: DatabaseEngine::AuroraServerlessV2,
            engine_version: "17.7".parse().expect("the default version is valid"),
            min_capacity: 0.5,
            max_capacity: 4.0,
            instance_class: "db.t4g.micro".into(),
            storage_gb: 20,
            backup_retention_days: 7,
            deletion_protection: false,
            name: "airflow".into(),
            username: "airflow".into(),
            monitoring_interval: 0,
        }
    }
}

/// Database engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DatabaseEngine {
    /// Aurora PostgreSQL with Serverless v2 scaling.
    AuroraServerlessV2,
    /// A single RDS PostgreSQL instance.
    RdsPostgres,
}

/// The Celery broker.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Redis {
    /// `fargate` (a Redis task registered as `redis.<namespace>`) or `elasticache`
    /// (a managed replication group with TLS and an auth token).
    pub engine: RedisEngine,
    /// Fargate: the Redis image. Default: Docker's official `redis:7.4-alpine` from ECR
    /// Public's mirror of the Docker official images,
    /// `public.ecr.aws/docker/library/redis:7.4-alpine` (not Docker Hub, which limits
    /// anonymous pulls per address).
    #[schemars(regex(pattern = r"^\S+$"))]
    pub image: String,
    /// Fargate: task size.
    #[schemars(extend("enum" = [256, 512, 1024, 2048, 4096, 8192, 16384]))]
    pub cpu: u32,
    /// Fargate: task memory in MiB.
    pub memory: u32,
    /// ElastiCache: node type.
    #[schemars(regex(pattern = r"^cache\.[^.]+\.[^.]+$"))]
    pub node_type: String,
    /// ElastiCache: engine version.
    pub engine_version: String,
}

impl Default for Redis {
    fn default() -> Self {
        Redis {
            engine: RedisEngine::Fargate,
            // Docker's official image as ECR Public mirrors it: Docker Hub limits anonymous
            // pulls per source address (tasks behind one NAT share the allowance), ECR
            // Public does not count them that way (README, "Where the images come from").
            image: DEFAULT_REDIS_IMAGE.into(),
            cpu: 256,
            memory: 512,
            node_type: "cache.t4g.micro".into(),
            engine_version: "7.1".into(),
        }
    }
}

/// The default `redis.image`: Docker's official Redis image through ECR Public's mirror
/// of the Docker official images (the `docker/library` namespace of `public.ecr.aws`).
pub const DEFAULT_REDIS_IMAGE: &str = "public.ecr.aws/docker/library/redis:7.4-alpine";

/// Where Redis runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedisEngine {
    /// A Fargate task.
    Fargate,
    /// Amazon ElastiCache.
    Elasticache,
}

/// CPU architecture of the Fargate tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Intel/AMD.
    X86_64,
    /// Graviton (about 20 % cheaper per vCPU-hour).
    Arm64,
}

/// The Airflow components. A component's block names only what differs from its
/// defaults (`scheduler: { count: 2 }` keeps the scheduler's CPU and memory).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Services {
    /// CPU architecture of every task.
    pub architecture: Architecture,
    /// The api-server (UI, REST API, Execution API for workers). Default: 1024 CPU
    /// units, 2048 MiB, 1 task (1 to 10).
    #[serde(deserialize_with = "service_over::<ApiServerDefaults, _>")]
    #[schemars(with = "ServicePatch", extend("properties" = {"count": {"minimum": 1}}))]
    pub api_server: Service,
    /// The scheduler. Default: 1024 CPU units, 2048 MiB, 1 task (1 to 10).
    #[serde(deserialize_with = "service_over::<SchedulerDefaults, _>")]
    #[schemars(with = "ServicePatch", extend("properties" = {"count": {"minimum": 1}}))]
    pub scheduler: Service,
    /// The dag-processor (parses DAGs from the S3 bundle). Default: 512 CPU units,
    /// 1024 MiB, 1 task (1 to 10).
    #[serde(deserialize_with = "service_over::<DagProcessorDefaults, _>")]
    #[schemars(with = "ServicePatch", extend("properties" = {"count": {"minimum": 1}}))]
    pub dag_processor: Service,
    /// The triggerer (runs deferred tasks). Default: 512 CPU units, 1024 MiB, 1 task
    /// (0 to 10).
    #[serde(deserialize_with = "service_over::<TriggererDefaults, _>")]
    #[schemars(with = "ServicePatch")]
    pub triggerer: Service,
    /// Celery workers.
    pub worker: Worker,
    /// Flower, the Celery monitoring UI.
    pub flower: Flower,
    /// `separate` (default): one ECS service per component. `core`: api-server,
    /// scheduler, dag-processor and triggerer run as four containers (same names) of one
    /// task sized by `core`, which saves three tasks' minimum sizes and public IPv4
    /// addresses; their own `cpu`, `memory`, `count` and `spot` are then not used.
    /// Workers, Redis and Flower keep their own services.
    pub packing: Packing,
    /// With `packing: core`: size, count and capacity of the shared task. Default: 1024
    /// CPU units, 4096 MiB, 1 task (1 to 10).
    #[serde(deserialize_with = "service_over::<CoreDefaults, _>")]
    #[schemars(with = "ServicePatch", extend("properties" = {"count": {"minimum": 1}}))]
    pub core: Service,
}

/// A component's default size, for the fields its block leaves out.
pub trait ServiceDefaults {
    /// The component's service when its block says nothing.
    fn service() -> Service;
}

macro_rules! service_defaults {
    ($($name:ident => $field:ident),* $(,)?) => {$(
        #[doc = concat!("`services.", stringify!($field), "`'s defaults.")]
        pub struct $name;
        impl ServiceDefaults for $name {
            fn service() -> Service {
                Services::default().$field
            }
        }
    )*};
}

service_defaults! {
    ApiServerDefaults => api_server,
    SchedulerDefaults => scheduler,
    DagProcessorDefaults => dag_processor,
    TriggererDefaults => triggerer,
    CoreDefaults => core,
}

/// Reads a component's block and fills what it leaves out from `D`.
fn service_over<'de, D: ServiceDefaults, De: serde::Deserializer<'de>>(
    de: De,
) -> Result<Service, De::Error> {
    let patch = ServicePatch::deserialize(de)?;
    let base = D::service();
    Ok(Service {
        cpu: patch.cpu.unwrap_or(base.cpu),
        memory: patch.memory.unwrap_or(base.memory),
        count: patch.count.unwrap_or(base.count),
        spot: patch.spot.unwrap_or(base.spot),
    })
}

/// A component's block as written: each field optional, taken from the component's
/// defaults when left out.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ServicePatch {
    /// CPU units (256 = 0.25 vCPU); a Fargate size: 256, 512, 1024, 2048, 4096, 8192, 16384.
    #[serde(default)]
    #[schemars(with = "u32", extend("enum" = [256, 512, 1024, 2048, 4096, 8192, 16384]))]
    cpu: Option<u32>,
    /// Memory in MiB, valid for the CPU size (256: 512, 1024 or 2048; 512: 1024 to
    /// 4096; 1024: 2048 to 8192; 2048: 4096 to 16384, in 1024 steps; larger sizes: see
    /// the Fargate documentation).
    #[serde(default)]
    #[schemars(with = "u32", range(min = 512, max = 122880))]
    memory: Option<u32>,
    /// Number of tasks.
    #[serde(default)]
    #[schemars(with = "u32", range(max = 10))]
    count: Option<u32>,
    /// Run on Fargate Spot (cheaper; tasks can be stopped with 2 minutes' notice).
    #[serde(default)]
    #[schemars(with = "bool")]
    spot: Option<bool>,
}

impl Default for Services {
    fn default() -> Self {
        Services {
            architecture: Architecture::X86_64,
            api_server: Service::sized(1024, 2048),
            scheduler: Service::sized(1024, 2048),
            dag_processor: Service::sized(512, 1024),
            triggerer: Service::sized(512, 1024),
            worker: Worker::default(),
            flower: Flower::default(),
            packing: Packing::Separate,
            core: Service::sized(1024, 4096),
        }
    }
}

/// How the core components map to ECS services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Packing {
    /// One service and task per component (independent sizes, counts and restarts).
    Separate,
    /// api-server, scheduler, dag-processor and triggerer in one task (cheapest).
    Core,
}

/// Size, count and capacity of one component.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// CPU units (256 = 0.25 vCPU); a Fargate size: 256, 512, 1024, 2048, 4096, 8192, 16384.
    pub cpu: u32,
    /// Memory in MiB, valid for the CPU size.
    pub memory: u32,
    /// Number of tasks.
    #[serde(default = "one")]
    pub count: u32,
    /// Run on Fargate Spot (cheaper; tasks can be stopped with 2 minutes' notice).
    #[serde(default)]
    pub spot: bool,
}

fn one() -> u32 {
    1
}

impl Service {
    fn sized(cpu: u32, memory: u32) -> Service {
        Service {
            cpu,
            memory,
            count: 1,
            spot: false,
        }
    }
}

/// Celery workers.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Worker {
    /// CPU units per worker task.
    #[schemars(extend("enum" = [256, 512, 1024, 2048, 4096, 8192, 16384]))]
    pub cpu: u32,
    /// Memory in MiB per worker task.
    pub memory: u32,
    /// Worker tasks at deploy time.
    #[schemars(range(max = 100))]
    pub count: u32,
    /// Run workers on Fargate Spot. Operators that set no retries then get one
    /// (`[core] default_task_retries` 1, unless `airflow.extra_env` sets it): a task
    /// instance running when Spot reclaims its worker is only run again by a retry.
    pub spot: bool,
    /// Task slots per worker (`[celery] worker_concurrency`). Memory must be at least
    /// 600 MiB + 120 MiB per slot (an idle worker and the smallest running task, as the
    /// end-to-end run measured them); size for your own tasks above that.
    #[schemars(range(min = 1, max = 256))]
    pub concurrency: u32,
}

impl Default for Worker {
    fn default() -> Self {
        Worker {
            cpu: 1024,
            memory: 2048,
            count: 1,
            spot: false,
            // 16 (Celery's default) needs about 2.5 GB (see `concurrency`).
            concurrency: 8,
        }
    }
}

/// Flower.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Flower {
    /// Run Flower, registered as `flower.<namespace>:5555`.
    pub enabled: bool,
    /// CPU units.
    #[schemars(extend("enum" = [256, 512, 1024, 2048, 4096, 8192, 16384]))]
    pub cpu: u32,
    /// Memory in MiB.
    pub memory: u32,
}

impl Default for Flower {
    fn default() -> Self {
        Flower {
            enabled: false,
            cpu: 256,
            memory: 512,
        }
    }
}

/// The DAG and log bucket.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// Key prefix of the DAG bundle.
    #[schemars(schema_with = "super::schema_rules::key_prefix")]
    pub dags_prefix: String,
    /// Key prefix of task logs.
    #[schemars(schema_with = "super::schema_rules::key_prefix")]
    pub logs_prefix: String,
    /// How often (seconds) the dag-processor refreshes DAGs from S3.
    #[schemars(range(min = 10, max = 86400))]
    pub dags_refresh_seconds: u32,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            dags_prefix: "dags".into(),
            logs_prefix: "logs".into(),
            dags_refresh_seconds: 60,
        }
    }
}

/// CloudWatch Logs.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Logs {
    /// Retention of every log group, in days (a CloudWatch value: 1, 3, 5, 7, 14, 30,
    /// 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653).
    #[schemars(extend("enum" = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653]))]
    pub retention_days: u32,
}

impl Default for Logs {
    fn default() -> Self {
        Logs { retention_days: 30 }
    }
}

/// Generated secrets.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Secrets {
    /// Length of the generated alphanumeric passwords (16 to 128).
    #[schemars(range(min = 16, max = 128))]
    pub password_length: u32,
    /// Change this token to rotate the Fernet key: the stack then holds
    /// `new,<every key it held>`, the services that read it restart, and you run
    /// `airflow rotate-fernet-key` (see the README). Empty: never rotate.
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]{0,64}$"))]
    pub fernet_rotation: String,
}

impl Default for Secrets {
    fn default() -> Self {
        Secrets {
            password_length: airflow_stack_contract::secrets::DEFAULT_PASSWORD_LENGTH,
            fernet_rotation: String::new(),
        }
    }
}

/// Observability of the ECS cluster.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Monitoring {
    /// CloudWatch Container Insights on the cluster: `disabled` (default), `enabled`
    /// (per-task and per-service CPU, memory, network and storage metrics) or
    /// `enhanced` (also per container). CloudWatch bills the metrics and the
    /// performance log events it collects, per task.
    pub container_insights: ContainerInsights,
}

/// The ECS cluster setting `containerInsights`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ContainerInsights {
    /// No Container Insights.
    #[default]
    Disabled,
    /// Container Insights.
    Enabled,
    /// Container Insights with enhanced observability.
    Enhanced,
}

impl ContainerInsights {
    /// The value of the cluster setting, as ECS spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerInsights::Disabled => "disabled",
            ContainerInsights::Enabled => "enabled",
            ContainerInsights::Enhanced => "enhanced",
        }
    }
}

/// Encryption at rest. Every log group, secret and the data bucket is always encrypted;
/// this chooses the key.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Encryption {
    /// `aws-managed` (default): each service's own key (S3 SSE-S3, the Secrets Manager
    /// key `aws/secretsmanager`, CloudWatch Logs' key); nothing to manage, but access
    /// to the data cannot be cut off by key policy. `create`: one customer-managed key
    /// for the stack, rotated yearly and kept when the stack is deleted (the secrets
    /// cannot be read without it), whose policy lets the account's IAM policies and
    /// CloudWatch Logs (for this stack's log groups) use it. Or the ARN of a key of your
    /// own in the stack's region, `arn:aws:kms:<region>:<account>:key/<id>`, whose
    /// policy must do the same. With a customer-managed key, the roles that read or
    /// write the secrets and the bucket are granted `kms:Decrypt` /
    /// `kms:GenerateDataKey` on it, through those services only.
    #[schemars(regex(
        pattern = r"^(aws-managed|create|arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+)$"
    ))]
    pub kms_key: String,
}

impl Default for Encryption {
    fn default() -> Self {
        Encryption {
            kms_key: AWS_MANAGED_KEY.into(),
        }
    }
}

/// `encryption.kms_key` for the services' own keys.
pub const AWS_MANAGED_KEY: &str = "aws-managed";
/// `encryption.kms_key` for a key created by the stack.
pub const CREATE_KEY: &str = "create";

/// What `encryption.kms_key` asks for (valid after [`super::validate`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KmsKey {
    /// Each service's AWS managed key.
    AwsManaged,
    /// One customer-managed key created by the stack.
    Create,
    /// A customer-managed key by ARN.
    Existing(String),
}

impl Encryption {
    /// The key choice, typed.
    pub fn key(&self) -> KmsKey {
        match self.kms_key.as_str() {
            AWS_MANAGED_KEY => KmsKey::AwsManaged,
            CREATE_KEY => KmsKey::Create,
            arn => KmsKey::Existing(arn.to_string()),
        }
    }
}

/// Worker autoscaling: a Lambda in the VPC runs every minute, reads queued and running
/// task instances from the REST API, publishes `QueuedTasks`, `RunningTasks` and
/// `DesiredWorkers` to CloudWatch (namespace `AirflowStack`, dimension `Stack`) and sets
/// the worker service's desired count to ceil((queued + running) / concurrency) within
/// [`min_workers`, `max_workers`]. Each worker protects its own ECS task (scale-in
/// protection) while it holds a task instance, and the scaler drains the workers it
/// scales in before lowering the count (see `drain_minutes`), so scale-in stops idle
/// workers only (Spot interruptions and health-check replacements still stop busy
/// ones; a deployment waits for busy workers). `[core] parallelism` is raised to `max_workers` × worker
/// concurrency (unless `airflow.extra_env` sets it), so that much work can be queued.
/// An alarm fires when the Lambda cannot read Airflow for 5 minutes.
///
/// The Lambda reaches ECS, CloudWatch, DynamoDB and Secrets Manager through the VPC's
/// egress: a created VPC needs `network.nat_gateways` of 1 or 2 (with 0 the Lambda has
/// no route to AWS APIs); an existing VPC's subnets need NAT or VPC endpoints.
/// With autoscaling on, the template leaves the worker service's desired count to the
/// scaler (`services.worker.count` is not used).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Autoscaling {
    /// Turn worker autoscaling on.
    pub enabled: bool,
    /// Fewest workers; 0 lets idle workers scale to zero.
    pub min_workers: u32,
    /// Most workers (1 to 100).
    #[schemars(range(min = 1, max = 100))]
    pub max_workers: u32,
    /// Minutes fewer workers must be wanted before any scale-in (0 to 1440; 0 starts a
    /// drain on the first tick that wants fewer).
    #[schemars(range(max = 1440))]
    pub cooldown_minutes: u32,
    /// Minutes a drain may take (2 to 1440). To scale in, the scaler tags the idle
    /// workers it chose `airflow-stack:drain=true`; they stop taking tasks, and once
    /// every one of them is idle and unprotected the count is lowered so that ECS stops
    /// exactly those. A drain still waiting after this long (a tagged worker kept a
    /// task) is cancelled: the tag is removed and the worker takes tasks again.
    #[schemars(range(min = 2, max = 1440))]
    pub drain_minutes: u32,
}

impl Default for Autoscaling {
    fn default() -> Self {
        Autoscaling {
            enabled: false,
            min_workers: 0,
            max_workers: 4,
            cooldown_minutes: 10,
            drain_minutes: airflow_stack_contract::scaler::DEFAULT_DRAIN_MINUTES,
        }
    }
}

/// Failed-run alerts from the same Lambda as autoscaling: one alert when a DAG turns
/// failed (run id, failed task ids, link to the run), nothing while it stays failed,
/// one notice when it succeeds again. Same network needs as [`Autoscaling`].
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    /// Turn alerts on.
    pub enabled: bool,
    /// Slack incoming webhook: `create` makes an empty secret (output
    /// `SlackWebhookSecretArn`) whose value you set to the webhook URL, or the ARN of a
    /// Secrets Manager secret you own holding the URL. Empty: no Slack.
    #[schemars(regex(
        pattern = r"^(create|arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:\S+)$"
    ))]
    pub slack_webhook_secret: Option<String>,
    /// SNS topic: `create` makes one (output `AlertTopicArn`; subscribe to it), or the
    /// ARN of an existing topic. Empty: no SNS. With autoscaling on, the scaler's
    /// "cannot read Airflow" alarm notifies the topic too.
    #[schemars(regex(pattern = r"^(create|arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:\S+)$"))]
    pub sns_topic: Option<String>,
    /// Base URL of the Airflow UI used in links, e.g. `https://airflow.example.com`.
    /// Default: the URL of the access mode (`access`; the `UiUrl` output).
    #[schemars(length(max = 512), regex(pattern = r"^https?://\S+$"))]
    pub ui_base_url: Option<String>,
}
