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
//! Nothing is added without `streams:`.

use std::collections::BTreeMap;

use airflow_stack_contract::streams::{
    self, manager_function_name, processor_filter_pattern, Auth, Format, Identity, ManagerSettings,
    ProcessorSettings, Role, Target, WatchdogSettings, STREAMS_USERNAME, TABLE_KEY, TTL_ATTRIBUTE,
};

use super::assets;
use super::component::Component;
use super::fargate::Infra;
use super::keys::Keys;
use super::monitoring::AlertTargets;
use super::rust_function::{self, RustFunctionSpec};
use super::scope::Scope;
use super::security;
use crate::cfn::l1::dynamodb::table::{
    AttributeDefinition, AttributeType, BillingMode, KeySchemaItem, StreamSpecification,
    StreamViewType, TimeToLiveSpecification,
};
use crate::cfn::l1::dynamodb::Table;
use crate::cfn::l1::events::{rule, Rule};
use crate::cfn::l1::lambda::event_source_mapping::{
    DestinationConfig, Filter, FilterCriteria, FunctionResponseTypesItem, OnFailure,
};
use crate::cfn::l1::lambda::function::VpcConfig;
use crate::cfn::l1::lambda::{EventInvokeConfig, EventSourceMapping, Function, Permission};
use crate::cfn::l1::sqs::Queue;
use crate::cfn::l1::Statement;
use crate::cfn::{Expr, Handle, Template};
use crate::spec::{Spec, Stream, StreamFormat, StreamTarget};

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
/// the watchdog; nothing without `streams:`.
pub fn add(s: &mut Scope, inputs: &Inputs) {
    if !s.spec.has_streams() {
        return;
    }
    let code = assets::add_streams_key(&mut s.t);
    let table = s.t.add(TABLE, events_table(s));
    let streams = s.spec.streams.clone();
    for stream in &streams {
        add_manager(s, stream, &table, code.clone());
    }
    add_processor(s, inputs, &table, code.clone());
    add_watchdog(s, inputs, &table, code);
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
    if let Some(auth) = &stream.auth {
        statements.push(Statement::allow(
            &["secretsmanager:GetSecretValue"],
            vec![Expr::lit(auth.secret.as_str())],
        ));
    }
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
fn add_processor(s: &mut Scope, inputs: &Inputs, table: &Handle<Table>, code: assets::AssetCode) {
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
    s.t.add(
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
    let names: Vec<String> = spec
        .streams
        .iter()
        .map(|st| st.name.as_str().to_owned())
        .collect();
    let mut statements = vec![
        item_reads_and_writes(table),
        Statement::allow(
            &["lambda:InvokeFunction"],
            names
                .iter()
                .map(|n| function_arn(&manager_function_name(spec.name.as_str(), n)))
                .collect(),
        ),
    ];
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
