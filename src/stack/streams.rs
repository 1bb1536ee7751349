//! Event streams (`streams:`): for each stream a connection manager, a Lambda chain
//! that holds the stream and writes every event once into a DynamoDB table; one event
//! processor fed by the table's stream, in the VPC, that triggers the DAG runs (or
//! records the Asset events) through the api-server; one watchdog, every minute, that
//! starts a chain that is missing and restarts (and alerts on) one whose heartbeat has
//! gone stale. One Rust crate (lambdas/streams) serves the three roles.
//!
//! Why a table between the stream and Airflow: a conditional put keyed by the event's
//! identity collapses duplicates (the overlap of two chain links, a vendor's resend),
//! and the table's stream delivers each new event to the processor with retries,
//! partial-batch failures and a dead-letter queue, none of which the manager would
//! otherwise have to carry.
//!
//! A stream with `runner: service` is held by one always-on Fargate task instead of a
//! Lambda chain: the same binary (role `service`), started by a launcher that fetches
//! the Lambda's zip from the assets bucket (see [`LAUNCHER_IMAGE`]).
//!
//! Nothing is added without `streams:`.

use std::collections::BTreeMap;

use airflow_stack_contract::streams::{
    self, manager_function_name, manager_service_name, processor_filter_pattern, Auth, Format,
    Identity, ManagerSettings, ProcessorSettings, Role, Target, WatchdogSettings, STREAMS_USERNAME,
    TABLE_KEY, TTL_ATTRIBUTE,
};

use super::airflow_config::env_var;
use super::assets;
use super::component::Component;
use super::fargate::{self, Deployment, Infra, Reach, ServiceSpec, TaskDefinitionSpec};
use super::keys::Keys;
use super::monitoring::AlertTargets;
use super::rust_function::{self, RustFunctionSpec};
use super::scope::Scope;
use super::security;
use super::service_role::{self, ServiceRole};
use crate::cfn::l1::dynamodb::table::{
    AttributeDefinition, AttributeType, BillingMode, KeySchemaItem, StreamSpecification,
    StreamViewType, TimeToLiveSpecification,
};
use crate::cfn::l1::dynamodb::Table;
use crate::cfn::l1::ecs::task_definition::ContainerDefinition;
use crate::cfn::l1::events::{rule, Rule};
use crate::cfn::l1::lambda::event_source_mapping::{
    DestinationConfig, Filter, FilterCriteria, FunctionResponseTypesItem, OnFailure,
};
use crate::cfn::l1::lambda::function::VpcConfig;
use crate::cfn::l1::lambda::{EventInvokeConfig, EventSourceMapping, Function, Permission};
use crate::cfn::l1::sqs::Queue;
use crate::cfn::l1::Statement;
use crate::cfn::{Attributes, Expr, Handle, Pseudo, Template};
use crate::spec::{Architecture, Spec, Stream, StreamFormat, StreamRunner, StreamTarget};

/// What the streams work with.
pub struct Inputs<'a> {
    /// Subnets and the api-server's security group (the processor's way in).
    pub infra: &'a Infra<'a>,
    /// The stream processor's Airflow password.
    pub keys: &'a Keys,
    /// Where the watchdog alerts (the stack's `alerts:` targets; none when alerts are
    /// off, and the watchdog then only logs).
    pub alerts: &'a AlertTargets,
}

/// Seconds a manager invocation may run: Lambda's most. A link of the chain hands over
/// to its successor [`streams::DEFAULT_HANDOFF_SECONDS`] before it ends.
pub const MANAGER_TIMEOUT_SECONDS: u32 = 900;

/// Seconds one processor batch may take: ten records, each one call to the api-server
/// (with a login when the token has expired).
const PROCESSOR_TIMEOUT_SECONDS: u32 = 60;

/// Seconds a watchdog tick may take: below the one-minute schedule.
const WATCHDOG_TIMEOUT_SECONDS: u32 = 50;

/// Concurrent invocations of one manager: two during a handover (predecessor and
/// successor), one more when the watchdog restarts a chain whose last link still runs
/// (the lease stops it). A bug that kept starting successors stops here instead of
/// taking the account's concurrency.
const MANAGER_CONCURRENCY: u32 = 3;

/// Records per processor batch.
const BATCH_SIZE: i64 = 10;

/// Retries of a failing batch before its records go to the dead-letter queue (with
/// bisection, a bad record is isolated within these).
const PROCESSOR_RETRIES: i64 = 5;

/// A record older than this is not retried any more but sent to the dead-letter queue:
/// an event an hour late is an incident, not a run to start silently.
const MAX_RECORD_AGE_SECONDS: i64 = 3600;

/// The dead-letter queue keeps a failed batch's description 14 days (SQS's most).
const DLQ_RETENTION_SECONDS: i64 = 14 * 24 * 3600;

/// Logical id of the events table.
pub const TABLE: &str = "StreamEventsTable";

/// Adds the table, one manager per stream, the processor, the dead-letter queue and
/// the watchdog; nothing without `streams:`. Returns the processor's event source
/// mapping (what pausing holds).
pub fn add(s: &mut Scope, inputs: &Inputs) -> Option<Handle<EventSourceMapping>> {
    if !s.spec.has_streams() {
        return None;
    }
    let code = assets::add_streams_key(&mut s.t);
    let table = s.t.add(TABLE, events_table(s));
    let streams = s.spec.streams.clone();
    for stream in &streams {
        match stream.runner {
            StreamRunner::Lambda => add_manager(s, stream, &table, code.clone()),
            StreamRunner::Service => add_service_runner(s, inputs.infra, stream, &table, &code),
        }
    }
    let mapping = add_processor(s, inputs, &table, code.clone());
    add_watchdog(s, inputs, &table, code);
    Some(mapping)
}

/// The events and leases: keyed by one string, on demand, items expiring by
/// [`TTL_ATTRIBUTE`] (events after `EVENT_TTL_HOURS`; deduplication needs them only
/// as long as a resend can come), new images streamed to the processor.
fn events_table(s: &Scope) -> Table {
    Table {
        attribute_definitions: vec![AttributeDefinition {
            attribute_name: Some(TABLE_KEY.into()),
            attribute_type: Some(AttributeType::S),
        }],
        key_schema: vec![KeySchemaItem {
            attribute_name: Some(TABLE_KEY.into()),
            key_type: Some("HASH".into()),
        }],
        billing_mode: Some(BillingMode::PayPerRequest),
        stream_specification: Some(StreamSpecification {
            stream_view_type: Some(StreamViewType::NewImage),
            ..StreamSpecification::default()
        }),
        time_to_live_specification: Some(TimeToLiveSpecification {
            attribute_name: Some(TTL_ATTRIBUTE.into()),
            enabled: Some(true),
        }),
        tags: s.tags.all(),
        ..Table::default()
    }
}

/// `orders-eu` -> `OrdersEu`: the stream's part of its resources' logical ids. Stream
/// names are lower-case with single hyphens, so this is one-to-one.
fn pascal(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// The ARN of a function of this stack's account and region by name (the managers have
/// fixed names, so a role can name one before it exists, its own included).
fn function_arn(name: &str) -> Expr {
    Expr::arn("lambda", Expr::lit(format!("function:{name}")))
}

/// One stream's connection manager: outside the VPC (it reaches the stream's server on
/// the internet; Lambda without a VPC has a route there and costs no NAT), invoking
/// only itself, reading only its auth secret, writing only the table.
fn add_manager(s: &mut Scope, stream: &Stream, table: &Handle<Table>, code: assets::AssetCode) {
    let id = format!("Stream{}", pascal(stream.name.as_str()));
    let name = manager_function_name(s.spec.name.as_str(), stream.name.as_str());
    let mut statements = vec![
        item_reads_and_writes(table),
        // Its successor: an asynchronous invocation of itself.
        Statement::allow(&["lambda:InvokeFunction"], vec![function_arn(&name)]),
    ];
    statements.extend(auth_secret_read(stream));
    let mut environment = manager_settings(s.spec, stream, table).to_environment();
    environment.insert(streams::variable::ROLE, Expr::lit(Role::Manager.as_str()));
    let function = rust_function::add(
        s,
        RustFunctionSpec {
            id: id.clone(),
            log_name: format!("stream-{}", stream.name.as_str()),
            function_name: Some(name),
            description: format!(
                "airflow-stack stream {}: holds the stream, writes each event once, hands over to its successor",
                stream.name.as_str()
            ),
            role_description: "Holds one event stream and stores its events",
            policy_name: "hold-stream",
            statements,
            code_key: code,
            timeout: MANAGER_TIMEOUT_SECONDS,
            environment: by_name(environment),
            vpc_config: None,
            reserved_concurrency: Some(MANAGER_CONCURRENCY),
            allow_recursion: true,
        },
    );
    no_async_retries(&mut s.t, &format!("{id}InvokeConfig"), &function);
}

/// The image of a stream's Fargate task: AWS's Lambda base image for Python (Amazon
/// Linux 2023, the OS of the `provided.al2023` runtime the binary is built for; arm64
/// and x86_64 in one tag; Python and boto3 inside). A public image needs no pull
/// permission and no image build; the binary comes from the assets bucket.
pub const LAUNCHER_IMAGE: &str = "public.ecr.aws/lambda/python:3.12";

/// The task's entry point: fetch the Lambda's zip (the exact version deploy verified),
/// unpack `bootstrap` and exec it, so the process ECS stops with SIGTERM is the binary.
const LAUNCHER: &str = "import io, os, zipfile, boto3
code = boto3.client('s3').get_object(Bucket=os.environ['CODE_BUCKET'], Key=os.environ['CODE_KEY'], VersionId=os.environ['CODE_VERSION'])
zipfile.ZipFile(io.BytesIO(code['Body'].read())).extract('bootstrap', '/tmp/stream')
os.chmod('/tmp/stream/bootstrap', 0o755)
os.execv('/tmp/stream/bootstrap', ['bootstrap'])
";

/// CPU units and MiB of a stream's task: Fargate's smallest, far above what one
/// connection and a DynamoDB client need.
const SERVICE_CPU: u32 = 256;
const SERVICE_MEMORY: u32 = 512;

/// The Lambdas' instruction set (the zip's binary is built for it).
fn lambda_architecture() -> Architecture {
    match assets::LAMBDA_ARCHITECTURE {
        "arm64" => Architecture::Arm64,
        _ => Architecture::X86_64,
    }
}

/// One stream held by an always-on Fargate task: its own log group, security group
/// (outbound only), execution role (its log group only) and task role (the table's
/// items, its auth secret, the code object), in the stack's subnets, named
/// [`manager_service_name`] so the watchdog can restart it.
fn add_service_runner(
    s: &mut Scope,
    infra: &Infra,
    stream: &Stream,
    table: &Handle<Table>,
    code: &assets::AssetCode,
) {
    let name = stream.name.as_str();
    let id = format!("Stream{}", pascal(name));
    let log_group = fargate::log_group(s, &id, &format!("stream-{name}"));
    let group = s.t.add(
        &format!("{id}SecurityGroup"),
        security::egress_only(
            format!("{} stream {name} task", s.spec.name),
            &infra.net.vpc_id,
            s.tags.named(&format!("{}-stream-{name}", s.spec.name)),
        ),
    );
    let execution = ecs_role(
        s,
        &format!("{id}ExecutionRole"),
        format!("Starts the stream {name} task: writes its logs"),
        "start-stream-task",
        vec![Statement::allow(
            &["logs:CreateLogStream", "logs:PutLogEvents"],
            vec![log_group.arn()],
        )],
    );
    let object = Expr::concat(vec![
        Expr::lit("arn:"),
        Expr::Pseudo(Pseudo::Partition),
        Expr::lit(":s3:::"),
        s.assets.bucket.clone(),
        Expr::lit("/"),
        code.key.clone(),
    ]);
    let mut statements = vec![
        item_reads_and_writes(table),
        // The launcher fetches exactly this version of the zip.
        Statement::allow(&["s3:GetObjectVersion"], vec![object]),
    ];
    statements.extend(auth_secret_read(stream));
    let task_role = ecs_role(
        s,
        &format!("{id}TaskRole"),
        format!("Holds the event stream {name} and stores its events"),
        "hold-stream",
        statements,
    );
    let container = ContainerDefinition {
        entry_point: vec![Expr::lit("python3"), Expr::lit("-c"), Expr::lit(LAUNCHER)],
        environment: service_environment(s, stream, table, code),
        ..fargate::container("stream", LAUNCHER_IMAGE, &log_group)
    };
    fargate::add_service(
        s,
        infra,
        ServiceSpec {
            id: id.clone(),
            service_name: Some(manager_service_name(s.spec.name.as_str(), name)),
            task: TaskDefinitionSpec {
                family_suffix: format!("stream-{name}"),
                cpu: SERVICE_CPU,
                memory: SERVICE_MEMORY,
                containers: vec![container],
                execution_role: execution.arn(),
                task_role: Some(task_role.arn()),
                architecture: Some(lambda_architecture()),
            },
            desired_count: Some(1),
            spot: false,
            security_groups: security::ids(&[&group]),
            registry: None,
            depends_on: Attributes::default(),
            // The new task pulls its image while the old one still reads; it takes the
            // lease when the old one releases it on SIGTERM.
            deployment: Deployment::StartFirst,
            reach: Reach::default(),
        },
    );
}

/// Reading the stream's auth secret, when it has one: only its own manager may.
fn auth_secret_read(stream: &Stream) -> Option<Statement> {
    stream.auth.as_ref().map(|auth| {
        Statement::allow(
            &["secretsmanager:GetSecretValue"],
            vec![Expr::lit(auth.secret.as_str())],
        )
    })
}

/// A role ECS tasks assume, with one inline policy and the stack's tags, as `id`.
fn ecs_role(
    s: &mut Scope,
    id: &str,
    description: String,
    policy_name: &'static str,
    statements: Vec<Statement>,
) -> Handle<crate::cfn::l1::iam::Role> {
    let role = ServiceRole {
        service: "ecs-tasks.amazonaws.com",
        description,
        policy_name,
        statements,
    };
    let tags = s.tags.all();
    s.t.add(id, service_role::role(role, tags))
}

/// The manager's settings, `ROLE=service`, the region (the SDK's, stated rather than
/// left to the platform) and where the launcher finds the code.
fn service_environment(
    s: &Scope,
    stream: &Stream,
    table: &Handle<Table>,
    code: &assets::AssetCode,
) -> Vec<crate::cfn::l1::ecs::task_definition::KeyValuePair> {
    let mut environment = manager_settings(s.spec, stream, table).to_environment();
    environment.insert(streams::variable::ROLE, Expr::lit(Role::Service.as_str()));
    environment.insert("AWS_REGION", Expr::Pseudo(Pseudo::Region));
    environment.insert("CODE_BUCKET", s.assets.bucket.clone());
    environment.insert("CODE_KEY", code.key.clone());
    environment.insert("CODE_VERSION", code.version.clone());
    environment
        .into_iter()
        .map(|(name, value)| env_var(name, value))
        .collect()
}

/// Lambda's own retries of an asynchronous invocation are off: a successor that failed
/// to start is the watchdog's to restart (with an alert), and a retried link would
/// start late, past its predecessor's overlap. Events older than a minute are dropped
/// for the same reason.
fn no_async_retries(t: &mut Template, id: &str, function: &Handle<Function>) {
    t.add(
        id,
        EventInvokeConfig {
            function_name: Some(function.r#ref()),
            qualifier: Some("$LATEST".into()),
            maximum_retry_attempts: Some(0),
            maximum_event_age_in_seconds: Some(60),
            ..EventInvokeConfig::default()
        },
    );
}

fn manager_settings(spec: &Spec, stream: &Stream, table: &Handle<Table>) -> ManagerSettings<Expr> {
    ManagerSettings {
        stack_name: Expr::lit(spec.name.as_str()),
        table: table.r#ref(),
        stream_name: Expr::lit(stream.name.as_str()),
        url: Expr::lit(stream.url.as_str()),
        format: match stream.format {
            StreamFormat::Sse => Format::Sse,
            StreamFormat::Ndjson => Format::Ndjson,
        },
        auth: stream.auth.as_ref().map(|a| Auth {
            header: Expr::lit(a.header.as_str()),
            secret_arn: Expr::lit(a.secret.as_str()),
        }),
        identity: match &stream.id_field {
            Some(field) => Identity::Field(field.as_str().to_owned()),
            None => Identity::Hash,
        },
        target: match &stream.target {
            StreamTarget::Dag(dag) => Target::Dag(dag.as_str().to_owned()),
            StreamTarget::Asset(uri) => Target::Asset(uri.as_str().to_owned()),
        },
        event_ttl_hours: streams::DEFAULT_EVENT_TTL_HOURS,
        read_timeout_seconds: stream.read_timeout_seconds,
        handoff_seconds: streams::DEFAULT_HANDOFF_SECONDS,
        overlap_seconds: streams::DEFAULT_OVERLAP_SECONDS,
        heartbeat_seconds: streams::DEFAULT_HEARTBEAT_SECONDS,
        lease_seconds: streams::DEFAULT_LEASE_SECONDS,
    }
}

/// The processor: in the VPC with its own security group and one rule into the
/// api-server, fed by the table's stream (new event items only), reporting failed
/// records one by one, and sending what still fails to the dead-letter queue.
fn add_processor(
    s: &mut Scope,
    inputs: &Inputs,
    table: &Handle<Table>,
    code: assets::AssetCode,
) -> Handle<EventSourceMapping> {
    let infra = inputs.infra;
    let group = s.t.add(
        "StreamProcessorSecurityGroup",
        security::egress_only(
            format!("{} stream processor Lambda", s.spec.name),
            &infra.net.vpc_id,
            s.tags.named(&format!("{}-stream-processor", s.spec.name)),
        ),
    );
    security::allow(
        &mut s.t,
        "ApiServerFromStreamProcessor",
        infra.sg.of(Component::ApiServer),
        &group,
        8080,
        "REST API for the stream processor",
    );
    let dlq = s.t.add(
        "StreamDeadLetterQueue",
        Queue {
            message_retention_period: Some(DLQ_RETENTION_SECONDS),
            sqs_managed_sse_enabled: Some(true),
            tags: s.tags.all(),
            ..Queue::default()
        },
    );
    let password = streams_password(inputs);
    let settings = ProcessorSettings {
        airflow_api_url: Expr::lit(format!(
            "http://api-server.{}:8080",
            s.spec.network.namespace
        )),
        api_username: Expr::lit(STREAMS_USERNAME),
        api_password_secret_arn: password.clone(),
        table: table.r#ref(),
    };
    let mut environment = settings.to_environment();
    environment.insert(streams::variable::ROLE, Expr::lit(Role::Processor.as_str()));
    let net = infra.net;
    let function = rust_function::add(
        s,
        RustFunctionSpec {
            id: "StreamProcessor".into(),
            log_name: "stream-processor".into(),
            function_name: None,
            description:
                "airflow-stack stream processor: one DAG run (or Asset event) per stored event"
                    .into(),
            role_description: "Starts Airflow DAG runs for stored stream events",
            policy_name: "process-stream-events",
            statements: processor_statements(table, &password, &dlq),
            code_key: code,
            timeout: PROCESSOR_TIMEOUT_SECONDS,
            environment: by_name(environment),
            vpc_config: Some(VpcConfig {
                subnet_ids: net.subnets.clone(),
                security_group_ids: security::ids(&[&group]),
                ..VpcConfig::default()
            }),
            reserved_concurrency: None,
            allow_recursion: false,
        },
    );
    let mapping = s.t.add(
        "StreamProcessorEventSource",
        EventSourceMapping {
            event_source_arn: Some(table.stream_arn()),
            function_name: Some(function.r#ref()),
            // Every record the stream still holds (24 hours), so events written while
            // the mapping was being created are not skipped.
            starting_position: Some("TRIM_HORIZON".into()),
            batch_size: Some(BATCH_SIZE),
            maximum_batching_window_in_seconds: Some(0),
            function_response_types: vec![FunctionResponseTypesItem::ReportBatchItemFailures],
            bisect_batch_on_function_error: Some(true),
            maximum_retry_attempts: Some(PROCESSOR_RETRIES),
            maximum_record_age_in_seconds: Some(MAX_RECORD_AGE_SECONDS),
            filter_criteria: Some(FilterCriteria {
                filters: vec![Filter {
                    pattern: Some(Expr::lit(processor_filter_pattern())),
                }],
            }),
            destination_config: Some(DestinationConfig {
                on_failure: Some(OnFailure {
                    destination: Some(dlq.arn()),
                }),
            }),
            ..EventSourceMapping::default()
        },
    );
    s.t.output(
        "StreamDeadLetterQueueUrl",
        "SQS queue describing stream events the processor gave up on",
        dlq.r#ref(),
    );
    mapping
}

/// The stream read actions Lambda's event source mapping needs on the table's stream
/// (Lambda developer guide, "Using AWS Lambda with Amazon DynamoDB", execution role
/// permissions), the one update that marks an event processed, its own password, and
/// sending to the dead-letter queue.
fn processor_statements(
    table: &Handle<Table>,
    password: &Expr,
    dlq: &Handle<Queue>,
) -> Vec<Statement> {
    vec![
        Statement::allow(
            &[
                "dynamodb:DescribeStream",
                "dynamodb:GetRecords",
                "dynamodb:GetShardIterator",
            ],
            vec![table.stream_arn()],
        ),
        // ListStreams names no stream (its resource is `*` in the Service Authorization
        // Reference for DynamoDB).
        Statement::allow(&["dynamodb:ListStreams"], vec![Expr::lit("*")]),
        // Reads the event item before its run is started, marks it processed after.
        Statement::allow(
            &["dynamodb:GetItem", "dynamodb:UpdateItem"],
            vec![table.arn()],
        ),
        Statement::allow(&["secretsmanager:GetSecretValue"], vec![password.clone()]),
        Statement::allow(&["sqs:SendMessage"], vec![dlq.arn()]),
    ]
}

fn streams_password(inputs: &Inputs) -> Expr {
    inputs
        .keys
        .streams_password
        .clone()
        .expect("a stack with streams has the stream processor's password secret")
}

/// The watchdog: every minute, outside the VPC; reads and marks the leases, invokes
/// the managers, alerts through the stack's targets.
fn add_watchdog(s: &mut Scope, inputs: &Inputs, table: &Handle<Table>, code: assets::AssetCode) {
    let spec = s.spec;
    let run_by = |runner: StreamRunner| -> Vec<String> {
        spec.streams
            .iter()
            .filter(|st| st.runner == runner)
            .map(|st| st.name.as_str().to_owned())
            .collect()
    };
    let (names, service_names) = (run_by(StreamRunner::Lambda), run_by(StreamRunner::Service));
    let mut statements = vec![item_reads_and_writes(table)];
    if !names.is_empty() {
        statements.push(Statement::allow(
            &["lambda:InvokeFunction"],
            names
                .iter()
                .map(|n| function_arn(&manager_function_name(spec.name.as_str(), n)))
                .collect(),
        ));
    }
    let cluster = inputs.infra.cluster.handle.r#ref();
    if !service_names.is_empty() {
        // A new deployment of each stream's service, and of nothing else.
        statements.push(Statement::allow(
            &["ecs:UpdateService"],
            service_names
                .iter()
                .map(|n| {
                    Expr::arn(
                        "ecs",
                        Expr::concat(vec![
                            Expr::lit("service/"),
                            cluster.clone(),
                            Expr::lit(format!("/{}", manager_service_name(spec.name.as_str(), n))),
                        ]),
                    )
                })
                .collect(),
        ));
    }
    let alerts = inputs.alerts;
    if let Some(topic) = &alerts.topic {
        statements.push(Statement::allow(&["sns:Publish"], vec![topic.clone()]));
    }
    if let Some(secret) = &alerts.slack_secret {
        statements.push(Statement::allow(
            &["secretsmanager:GetSecretValue"],
            vec![secret.clone()],
        ));
    }
    let settings = WatchdogSettings {
        stack_name: Expr::lit(spec.name.as_str()),
        table: table.r#ref(),
        streams: names,
        cluster: (!service_names.is_empty()).then_some(cluster),
        service_streams: service_names,
        stale_seconds: streams::DEFAULT_STALE_SECONDS,
        sns_topic_arn: alerts.topic.clone(),
        slack_secret_arn: alerts.slack_secret.clone(),
        ui_base_url: alerts.ui_base_url.clone(),
    };
    let mut environment = settings.to_environment();
    environment.insert(streams::variable::ROLE, Expr::lit(Role::Watchdog.as_str()));
    let function = rust_function::add(
        s,
        RustFunctionSpec {
            id: "StreamWatchdog".into(),
            log_name: "stream-watchdog".into(),
            function_name: None,
            description: "airflow-stack stream watchdog: starts missing chains, restarts stale ones and alerts once"
                .into(),
            role_description: "Restarts event stream chains",
            policy_name: "watch-streams",
            statements,
            code_key: code,
            timeout: WATCHDOG_TIMEOUT_SECONDS,
            environment: by_name(environment),
            vpc_config: None,
            reserved_concurrency: Some(1),
            allow_recursion: false,
        },
    );
    no_async_retries(&mut s.t, "StreamWatchdogInvokeConfig", &function);
    let t = &mut s.t;
    let schedule = t.add(
        "StreamWatchdogRule",
        Rule {
            description: Some(
                format!("{}: run the stream watchdog every minute", spec.name).into(),
            ),
            schedule_expression: Some("rate(1 minute)".into()),
            state: Some(rule::State::Enabled),
            targets: vec![rule::Target {
                arn: Some(function.arn()),
                id: Some("stream-watchdog".into()),
                retry_policy: Some(rule::RetryPolicy {
                    maximum_event_age_in_seconds: Some(60),
                    maximum_retry_attempts: Some(0),
                }),
                ..rule::Target::default()
            }],
            ..Rule::default()
        },
    );
    t.add(
        "StreamWatchdogPermission",
        Permission {
            action: Some("lambda:InvokeFunction".into()),
            function_name: Some(function.r#ref()),
            principal: Some("events.amazonaws.com".into()),
            source_arn: Some(schedule.arn()),
            ..Permission::default()
        },
    );
}

/// Get, Put and UpdateItem on the table: the managers (events, their lease) and the
/// watchdog (leases) use items by key only.
fn item_reads_and_writes(table: &Handle<Table>) -> Statement {
    Statement::allow(
        &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        ],
        vec![table.arn()],
    )
}

fn by_name(environment: BTreeMap<&'static str, Expr>) -> BTreeMap<String, Expr> {
    environment
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_id_parts_follow_the_hyphens() {
        assert_eq!(pascal("orders"), "Orders");
        assert_eq!(pascal("orders-eu-2"), "OrdersEu2");
    }
}
