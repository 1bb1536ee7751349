//! Worker autoscaling and failed-run alerts: one Rust Lambda (lambdas/scaler) in the
//! VPC, run every minute by an EventBridge rule, reaching the api-server through Cloud
//! Map. Its own security group, one ingress rule on the api-server for it, a state
//! table in DynamoDB, optionally an SNS topic and an empty Slack webhook secret, and a
//! role that may touch exactly the worker service, the cluster's tasks, the stack's
//! metric namespace, the table, the secrets and the topic.
//!
//! One tick at a time: the function's concurrency is reserved at 1, its timeout is
//! below the one-minute schedule, and neither EventBridge nor Lambda's asynchronous
//! queue retries or keeps a tick for longer than a minute (a late or repeated tick
//! would act on an old reading). An alarm watches the scaler's
//! `AirflowApiReadFailures` metric (published with autoscaling on), so a scaler that
//! cannot read Airflow (or does not run) is not silent.
//!
//! Nothing is added unless `autoscaling.enabled` or `alerts.enabled` is set.

use std::collections::BTreeMap;

use airflow_stack_contract::scaler::{
    metrics, Alerts, Autoscaling, ScalerSettings, DEFAULT_QUEUE, SCALER_USERNAME, STATE_TABLE_KEY,
};
use airflow_stack_contract::worker;

use super::assets;
use super::component::Component;
use super::fargate::Infra;
use super::keys::{self, Keys};
use super::rust_function::{self, RustFunctionSpec};
use super::scope::{unique_name, Scope, Tags};
use super::security;
use crate::cfn::l1::cloudwatch::{alarm, Alarm};
use crate::cfn::l1::dynamodb::table::{
    AttributeDefinition, AttributeType, BillingMode, KeySchemaItem,
};
use crate::cfn::l1::dynamodb::Table;
use crate::cfn::l1::ec2::SecurityGroup;
use crate::cfn::l1::ecs::Service;
use crate::cfn::l1::events::{rule, Rule};
use crate::cfn::l1::lambda::function::VpcConfig;
use crate::cfn::l1::lambda::{EventInvokeConfig, Function, Permission};
use crate::cfn::l1::secretsmanager::Secret;
use crate::cfn::l1::sns::Topic;
use crate::cfn::l1::{Statement, Tag};
use crate::cfn::{Expr, Handle, Template};
use crate::spec::Spec;

/// What the scaler works on.
pub struct Inputs<'a> {
    /// Subnets, the api-server's group and the cluster.
    pub infra: &'a Infra<'a>,
    /// The admin password secret the scaler logs in with.
    pub keys: &'a Keys,
    /// The worker service to scale.
    pub worker: &'a Handle<Service>,
}

/// Where alerts go, as template values; all `None` when alerts are off.
#[derive(Clone, Debug, Default)]
pub struct AlertTargets {
    /// The Slack webhook secret's ARN.
    pub slack_secret: Option<Expr>,
    /// The SNS topic's ARN.
    pub topic: Option<Expr>,
    /// The UI's base URL for links.
    pub ui_base_url: Option<Expr>,
}

/// What the scaler construct leaves for later ones.
pub struct Monitoring {
    /// The scaler's state table (where pausing marks it paused), when the scaler runs.
    pub table: Option<Handle<Table>>,
    /// Where alerts go.
    pub alerts: AlertTargets,
}

/// Seconds a tick may run: below the one-minute schedule, so a tick ends before the
/// next one starts (with the reserved concurrency of 1, a later tick would otherwise
/// wait in Lambda's queue).
pub const TIMEOUT_SECONDS: u32 = 50;
const _: () = assert!(TIMEOUT_SECONDS < 60);

/// The oldest a scheduled tick may be when it runs, in EventBridge's retries and in
/// Lambda's asynchronous queue: 60 s, the least both allow.
const MAX_EVENT_AGE_SECONDS: i64 = 60;

/// Consecutive one-minute periods with a failed (or no) reading before the alarm fires.
const ALARM_MINUTES: i64 = 5;

/// Logical id of the scaler's DynamoDB state table: `pause` and `resume` set and clear
/// its paused item.
pub const STATE_TABLE: &str = "ScalerStateTable";

/// Adds the scaler when autoscaling or alerts are on; returns its state table (where
/// pausing marks it paused) and the alert targets.
pub fn add(s: &mut Scope, inputs: &Inputs) -> Monitoring {
    let spec = s.spec;
    if !spec.runs_scaler() {
        return Monitoring {
            table: None,
            alerts: AlertTargets::default(),
        };
    }
    let code_key = assets::add_scaler_key(&mut s.t);
    let group = add_network_access(s, inputs);
    let table = s.t.add(STATE_TABLE, state_table(s.tags.all()));
    let key = s.kms_key_arn();
    let targets = add_targets(&mut s.t, spec, &s.tags, key);
    let net = inputs.infra.net;
    let f = rust_function::add(
        s,
        RustFunctionSpec {
            id: "Scaler".into(),
            log_name: "scaler-function".into(),
            function_name: Some(format!("{}-scaler", spec.name)),
            description:
                "airflow-stack scaler: worker autoscaling and failed-run alerts, every minute"
                    .into(),
            role_description: "Scales Airflow workers and sends failed-run alerts",
            policy_name: "scale-and-alert",
            statements: statements(spec, inputs, &table, &targets),
            code_key,
            timeout: TIMEOUT_SECONDS,
            environment: environment(spec, inputs, &table, &targets),
            vpc_config: Some(VpcConfig {
                subnet_ids: net.subnets.clone(),
                security_group_ids: security::ids(&[&group]),
                ..VpcConfig::default()
            }),
            // Two ticks at once would both read the same queue and both scale, protect
            // and alert (EventBridge delivers at least once).
            reserved_concurrency: Some(1),
            allow_recursion: false,
        },
    );
    let function = f;
    let t = &mut s.t;
    one_tick_at_a_time(t, &function);
    let rule = t.add(
        "ScalerScheduleRule",
        Rule {
            description: Some(format!("{}: run the scaler every minute", spec.name).into()),
            schedule_expression: Some("rate(1 minute)".into()),
            state: Some(rule::State::Enabled),
            targets: vec![rule::Target {
                arn: Some(function.arn()),
                id: Some("scaler".into()),
                // A tick EventBridge could not hand to Lambda is dropped after a
                // minute: the next one is due then.
                retry_policy: Some(rule::RetryPolicy {
                    maximum_event_age_in_seconds: Some(MAX_EVENT_AGE_SECONDS),
                    maximum_retry_attempts: Some(0),
                }),
                ..rule::Target::default()
            }],
            ..Rule::default()
        },
    );
    t.add(
        "ScalerSchedulePermission",
        Permission {
            action: Some("lambda:InvokeFunction".into()),
            function_name: Some(function.r#ref()),
            principal: Some("events.amazonaws.com".into()),
            source_arn: Some(rule.arn()),
            ..Permission::default()
        },
    );
    add_read_failure_alarm(t, spec, &targets);
    add_outputs(t, &targets, spec);
    Monitoring {
        table: Some(table),
        alerts: targets,
    }
}

/// Lambda's asynchronous invocation settings of the scaler: no retries (by default
/// Lambda runs a failed or timed-out event twice more, the last one minutes later) and
/// no event older than a minute (a tick that waited in the queue behind a running one
/// is dropped: the next is due).
fn one_tick_at_a_time(t: &mut Template, function: &Handle<Function>) {
    t.add(
        "ScalerInvokeConfig",
        EventInvokeConfig {
            function_name: Some(function.r#ref()),
            // The rule invokes the unpublished function.
            qualifier: Some("$LATEST".into()),
            maximum_retry_attempts: Some(0),
            maximum_event_age_in_seconds: Some(MAX_EVENT_AGE_SECONDS),
            ..EventInvokeConfig::default()
        },
    );
}

/// An alarm when the scaler has not read Airflow for [`ALARM_MINUTES`] minutes in a
/// row: `AirflowApiReadFailures` (1 per failed tick, 0 per good one) at least 1 in each
/// minute, or no data at all (a scaler that does not run is as bad: missing data
/// counts as breaching). It notifies the alert topic, when alerts have one, on firing
/// and on recovery.
fn add_read_failure_alarm(t: &mut Template, spec: &Spec, targets: &AlertTargets) {
    let topic: Vec<Expr> = targets.topic.iter().cloned().collect();
    t.add(
        "ScalerApiReadAlarm",
        Alarm {
            alarm_name: Some(format!("{}-scaler-cannot-read-airflow", spec.name).into()),
            alarm_description: Some(
                format!(
                    "{}: the scaler could not read the Airflow REST API (or did not run) for \
                     {ALARM_MINUTES} minutes: workers are not scaled and failed runs not \
                     alerted. Check the scaler's log and the api-server.",
                    spec.name
                )
                .into(),
            ),
            namespace: Some(metrics::NAMESPACE.into()),
            metric_name: Some(metrics::API_READ_FAILURES.into()),
            dimensions: vec![alarm::Dimension {
                name: Some(metrics::STACK_DIMENSION.into()),
                value: Some(spec.name.to_string().into()),
            }],
            statistic: Some(alarm::Statistic::Maximum),
            period: Some(60),
            evaluation_periods: Some(ALARM_MINUTES),
            datapoints_to_alarm: Some(ALARM_MINUTES),
            threshold: Some(1.into()),
            comparison_operator: Some(alarm::ComparisonOperator::GreaterThanOrEqualToThreshold),
            treat_missing_data: Some(alarm::TreatMissingData::Breaching),
            alarm_actions: topic.clone(),
            ok_actions: topic,
            ..Alarm::default()
        },
    );
}

/// The scaler's state: an on-demand table keyed by one string attribute.
fn state_table(tags: Vec<Tag>) -> Table {
    Table {
        attribute_definitions: vec![AttributeDefinition {
            attribute_name: Some(STATE_TABLE_KEY.into()),
            attribute_type: Some(AttributeType::S),
        }],
        key_schema: vec![KeySchemaItem {
            attribute_name: Some(STATE_TABLE_KEY.into()),
            key_type: Some("HASH".into()),
        }],
        billing_mode: Some(BillingMode::PayPerRequest),
        tags,
        ..Table::default()
    }
}

/// The scaler's own security group and the one rule letting it reach the api-server.
fn add_network_access(s: &mut Scope, inputs: &Inputs) -> Handle<SecurityGroup> {
    let infra = inputs.infra;
    let resource = security::egress_only(
        format!("{} scaler Lambda", s.spec.name),
        &infra.net.vpc_id,
        s.tags.named(&format!("{}-scaler", s.spec.name)),
    );
    let group = s.t.add("ScalerSecurityGroup", resource);
    security::allow(
        &mut s.t,
        "ApiServerFromScaler",
        infra.sg.of(Component::ApiServer),
        &group,
        8080,
        "REST API for the scaler",
    );
    group
}

/// The SNS topic and the Slack webhook secret, created or referenced; a created secret
/// is encrypted with the customer-managed `key`, if there is one.
fn add_targets(t: &mut Template, spec: &Spec, tags: &Tags, key: Option<Expr>) -> AlertTargets {
    let a = &spec.alerts;
    if !a.enabled {
        return AlertTargets::default();
    }
    let topic = a.sns_topic.as_deref().map(|v| match v {
        "create" => t
            .add(
                "AlertTopic",
                Topic {
                    display_name: Some(format!("{} Airflow alerts", spec.name).into()),
                    tags: tags.all(),
                    ..Topic::default()
                },
            )
            // `Ref` of a topic is its ARN.
            .r#ref(),
        arn => Expr::lit(arn),
    });
    let slack_secret = a.slack_webhook_secret.as_deref().map(|v| match v {
        // Created without a value: the user puts the webhook URL in it, so the URL
        // never passes through the template or the stack file.
        "create" => t
            .add(
                "SlackWebhookSecret",
                Secret {
                    kms_key_id: key.clone(),
                    ..keys::empty_secret(
                        unique_name(Expr::lit(spec.name.clone()), "-slack-webhook-"),
                        "Slack incoming-webhook URL for Airflow alerts: set its value to the URL",
                        tags.all(),
                    )
                },
            )
            .r#ref(),
        arn => Expr::lit(arn),
    });
    AlertTargets {
        slack_secret,
        topic,
        ui_base_url: Some(Expr::lit(alert_base_url(spec))),
    }
}

/// Links in alerts go where people open the UI: the access mode's URL unless the
/// stack file names another.
fn alert_base_url(spec: &Spec) -> String {
    let ui = spec.access.base_url(&spec.network.namespace);
    spec.alerts.ui_base_url.clone().unwrap_or(ui)
}

/// The function's configuration; no secret values, only ARNs.
fn environment(
    spec: &Spec,
    inputs: &Inputs,
    table: &Handle<Table>,
    targets: &AlertTargets,
) -> BTreeMap<String, Expr> {
    let ns = &spec.network.namespace;
    let api = format!("http://api-server.{ns}:8080");
    let a = &spec.autoscaling;
    let autoscaling = a.enabled.then(|| Autoscaling {
        cluster: inputs.infra.cluster.handle.r#ref(),
        worker_service: inputs.worker.name(),
        worker_concurrency: spec.services.worker.concurrency,
        min_workers: a.min_workers,
        max_workers: a.max_workers,
        cooldown_minutes: a.cooldown_minutes,
        drain_minutes: a.drain_minutes,
        // The stack's workers consume Airflow's default queue only (no queue setting
        // in the stack file yet).
        worker_queues: vec![DEFAULT_QUEUE.to_owned()],
    });
    let alerts = spec.alerts.enabled.then(|| Alerts {
        ui_base_url: Expr::lit(alert_base_url(spec)),
        slack_secret_arn: targets.slack_secret.clone(),
        sns_topic_arn: targets.topic.clone(),
    });
    let settings = ScalerSettings {
        airflow_api_url: Expr::lit(api),
        api_username: Expr::lit(SCALER_USERNAME),
        api_password_secret_arn: scaler_password(inputs),
        stack_name: Expr::lit(spec.name.clone()),
        state_table: table.r#ref(),
        // Every tick publishes AirflowApiReadFailures (the alarm's metric), alerts-only
        // stacks too; with autoscaling also the load (lambdas/scaler/src/handler.rs).
        metric_namespace: Expr::lit(metrics::NAMESPACE),
        autoscaling,
        alerts,
    };
    settings
        .to_environment()
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
}

/// Least privilege: each statement names the one resource it needs (writing its own
/// logs and managing its network interfaces are added by the Lambda construct).
fn statements(
    spec: &Spec,
    inputs: &Inputs,
    table: &Handle<Table>,
    targets: &AlertTargets,
) -> Vec<Statement> {
    let mut statements = Vec::new();
    if spec.autoscaling.enabled {
        statements.extend(scaling_statements(spec, inputs));
    }
    statements.push(put_metric_data());
    statements.push(Statement::allow(
        &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"],
        vec![table.arn()],
    ));
    let mut secrets = vec![scaler_password(inputs)];
    secrets.extend(targets.slack_secret.clone());
    statements.push(Statement::allow(
        &["secretsmanager:GetSecretValue"],
        secrets,
    ));
    if let Some(topic) = &targets.topic {
        statements.push(Statement::allow(&["sns:Publish"], vec![topic.clone()]));
    }
    statements
}

/// The scaler's own Airflow password: the keys construct makes the secret whenever
/// [`Spec::runs_scaler`], which is when this module adds anything.
fn scaler_password(inputs: &Inputs) -> Expr {
    inputs
        .keys
        .scaler_password
        .clone()
        .expect("a stack that runs the scaler has its password secret")
}

/// CloudWatch metrics in the stack's namespace only: PutMetricData has no resource to
/// name; the `cloudwatch:namespace` condition pins it.
fn put_metric_data() -> Statement {
    let mut metrics = Statement::allow(&["cloudwatch:PutMetricData"], vec![Expr::lit("*")]);
    metrics.condition =
        Some(serde_json::json!({"StringEquals": {"cloudwatch:namespace": metrics::NAMESPACE}}));
    metrics
}

/// ECS: the worker service and the cluster's tasks, as tightly as the Service
/// Authorization Reference for Amazon ECS allows:
/// - `UpdateService` (resource: service; condition keys include `ecs:cluster` and
///   `ecs:task-definition`) on the worker service's ARN, and with
///   `ArnLikeIfExists ecs:task-definition` on the worker family: the scaler only sets
///   the desired count (no task definition in its request, so the `IfExists` holds), and
///   cannot switch the service to another family's task definition;
/// - `ListTasks` has no task resource (its resource type is a container instance, which
///   Fargate tasks have none of): `*` with `ArnEquals ecs:cluster` on the cluster;
/// - `DescribeTasks` (with `include=TAGS`: the drain tag), `ListTagsForResource` (in
///   case the tags of `DescribeTasks` are authorized as a tag read), `GetTaskProtection`
///   (which workers are protected) and `UpdateTaskProtection` (the short protection of
///   the workers kept when a drain ends) on the cluster's task ARNs, `task/<cluster>/*`.
///   A task ARN does not name its service, so they cover every task of the cluster (the
///   scaler only touches tasks of the worker service it listed);
/// - `TagResource` and `UntagResource` on the same task ARNs, pinned to the drain tag
///   (ECS Developer Guide, "Control access to specific tags": `aws:RequestTag/<key>`
///   and `aws:TagKeys` on ECS tagging actions): `ForAllValues:StringEquals aws:TagKeys`
///   allows no other key, `Null aws:TagKeys false` refuses a request without keys (which
///   `ForAllValues` alone would let through), and `TagResource` may only write the value
///   `true`.
fn scaling_statements(spec: &Spec, inputs: &Inputs) -> Vec<Statement> {
    let cluster = &inputs.infra.cluster;
    let tasks_in_cluster = cluster.tasks_arn();
    let mut list = Statement::allow(&["ecs:ListTasks"], vec![Expr::lit("*")]);
    list.condition = Some(serde_json::json!({"ArnEquals": {"ecs:cluster": cluster.handle.arn()}}));
    let worker_family = Expr::arn(
        "ecs",
        Expr::lit(format!(
            "task-definition/{}-{}:*",
            spec.name,
            Component::Worker.name()
        )),
    );
    // `Ref` of an ECS service is its ARN.
    let mut update = Statement::allow(&["ecs:UpdateService"], vec![inputs.worker.r#ref()]);
    update.condition = Some(serde_json::json!({
        "ArnLikeIfExists": {"ecs:task-definition": worker_family}
    }));
    let only_the_drain_key = serde_json::json!({
        "ForAllValues:StringEquals": {"aws:TagKeys": [worker::DRAIN_TAG]},
        "Null": {"aws:TagKeys": "false"},
    });
    let mut tag = Statement::allow(&["ecs:TagResource"], vec![tasks_in_cluster.clone()]);
    let mut tag_condition = only_the_drain_key.clone();
    tag_condition["StringEquals"] = serde_json::json!({
        format!("aws:RequestTag/{}", worker::DRAIN_TAG): worker::DRAIN_VALUE
    });
    tag.condition = Some(tag_condition);
    let mut untag = Statement::allow(&["ecs:UntagResource"], vec![tasks_in_cluster.clone()]);
    untag.condition = Some(only_the_drain_key);
    vec![
        Statement::allow(&["ecs:DescribeServices"], vec![inputs.worker.r#ref()]),
        update,
        list,
        Statement::allow(
            &[
                "ecs:DescribeTasks",
                "ecs:ListTagsForResource",
                "ecs:GetTaskProtection",
                "ecs:UpdateTaskProtection",
            ],
            vec![tasks_in_cluster],
        ),
        tag,
        untag,
    ]
}

fn add_outputs(t: &mut Template, targets: &AlertTargets, spec: &Spec) {
    if spec.alerts.sns_topic.as_deref() == Some("create") {
        if let Some(topic) = &targets.topic {
            t.output(
                "AlertTopicArn",
                "SNS topic of failed-run alerts: subscribe to it",
                topic.clone(),
            );
        }
    }
    if spec.alerts.slack_webhook_secret.as_deref() == Some("create") {
        if let Some(secret) = &targets.slack_secret {
            t.output(
                "SlackWebhookSecretArn",
                "Secret to put the Slack incoming-webhook URL in (aws secretsmanager put-secret-value)",
                secret.clone(),
            );
        }
    }
}
