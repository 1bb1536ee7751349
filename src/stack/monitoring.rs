//! Worker autoscaling and failed-run alerts: one Rust Lambda (lambdas/scaler) in the
//! VPC, run every minute by an EventBridge rule, reaching the api-server through Cloud
//! Map. Its own security group, one ingress rule on the api-server for it, a state
//! table in DynamoDB, optionally an SNS topic and an empty Slack webhook secret, and a
//! role that may touch exactly the worker service, the cluster's tasks, the stack's
//! metric namespace, the table, the secrets and the topic.
//!
//! Nothing is added unless `autoscaling.enabled` or `alerts.enabled` is set.

use std::collections::BTreeMap;

use airflow_stack_contract::scaler::{
    metrics, Alerts, Autoscaling, ScalerSettings, DEFAULT_ADMIN_USERNAME, STATE_TABLE_KEY,
};

use super::assets;
use super::component::Component;
use super::fargate::Infra;
use super::keys::{self, Keys};
use super::rust_function::{self, RustFunctionSpec};
use super::scope::{unique_name, Scope, Tags};
use super::security;
use crate::cfn::l1::dynamodb::table::{
    AttributeDefinition, AttributeType, BillingMode, KeySchemaItem,
};
use crate::cfn::l1::dynamodb::Table;
use crate::cfn::l1::ec2::SecurityGroup;
use crate::cfn::l1::ecs::Service;
use crate::cfn::l1::events::{rule, Rule};
use crate::cfn::l1::lambda::function::VpcConfig;
use crate::cfn::l1::lambda::Permission;
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

/// Where alerts go, as template values.
struct Targets {
    slack_secret: Option<Expr>,
    topic: Option<Expr>,
}

/// Adds the scaler when autoscaling or alerts are on.
pub fn add(s: &mut Scope, inputs: &Inputs) {
    let spec = s.spec;
    if !spec.autoscaling.enabled && !spec.alerts.enabled {
        return;
    }
    let code_key = assets::add_scaler_key(&mut s.t);
    let group = add_network_access(s, inputs);
    let table = s.t.add("ScalerStateTable", state_table(s.tags.all()));
    let targets = add_targets(&mut s.t, spec, &s.tags);
    let net = inputs.infra.net;
    let f = rust_function::add(
        s,
        RustFunctionSpec {
            id: "Scaler",
            log_name: "scaler-function",
            function_name: Some(format!("{}-scaler", spec.name)),
            description:
                "airflow-stack scaler: worker autoscaling and failed-run alerts, every minute",
            role_description: "Scales Airflow workers and sends failed-run alerts",
            policy_name: "scale-and-alert",
            statements: statements(spec, inputs, &table, &targets),
            // The ENI permissions every VPC Lambda needs (ec2:CreateNetworkInterface,
            // ...), which cannot be scoped to resources known in advance.
            managed_policies: vec![Expr::managed_policy(
                "service-role/AWSLambdaVPCAccessExecutionRole",
            )],
            code_key,
            // Below the one-minute schedule, so ticks do not pile up.
            timeout: 50,
            environment: environment(spec, inputs, &table, &targets),
            vpc_config: Some(VpcConfig {
                subnet_ids: net.subnets.clone(),
                security_group_ids: security::ids(&[&group]),
                ..VpcConfig::default()
            }),
        },
    );
    let function = f;
    let t = &mut s.t;
    let rule = t.add(
        "ScalerScheduleRule",
        Rule {
            description: Some(format!("{}: run the scaler every minute", spec.name).into()),
            schedule_expression: Some("rate(1 minute)".into()),
            state: Some(rule::State::Enabled),
            targets: vec![rule::Target {
                arn: Some(function.arn()),
                id: Some("scaler".into()),
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
    add_outputs(t, &targets, spec);
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

/// The SNS topic and the Slack webhook secret, created or referenced.
fn add_targets(t: &mut Template, spec: &Spec, tags: &Tags) -> Targets {
    let a = &spec.alerts;
    if !a.enabled {
        return Targets {
            slack_secret: None,
            topic: None,
        };
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
                keys::empty_secret(
                    unique_name(Expr::lit(spec.name.clone()), "-slack-webhook-"),
                    "Slack incoming-webhook URL for Airflow alerts: set its value to the URL",
                    tags.all(),
                ),
            )
            .r#ref(),
        arn => Expr::lit(arn),
    });
    Targets {
        slack_secret,
        topic,
    }
}

/// The function's configuration; no secret values, only ARNs.
fn environment(
    spec: &Spec,
    inputs: &Inputs,
    table: &Handle<Table>,
    targets: &Targets,
) -> BTreeMap<String, Expr> {
    let ns = &spec.network.namespace;
    let api = format!("http://api-server.{ns}:8080");
    let a = &spec.autoscaling;
    let autoscaling = a.enabled.then(|| Autoscaling {
        cluster: inputs.infra.cluster.handle.r#ref(),
        worker_service: inputs.worker.name(),
        metric_namespace: Expr::lit(metrics::NAMESPACE),
        worker_concurrency: spec.services.worker.concurrency,
        min_workers: a.min_workers,
        max_workers: a.max_workers,
        cooldown_minutes: a.cooldown_minutes,
    });
    let alerts = spec.alerts.enabled.then(|| Alerts {
        ui_base_url: Expr::lit(spec.alerts.ui_base_url.clone().unwrap_or(api.clone())),
        slack_secret_arn: targets.slack_secret.clone(),
        sns_topic_arn: targets.topic.clone(),
    });
    let settings = ScalerSettings {
        airflow_api_url: Expr::lit(api),
        admin_username: Expr::lit(DEFAULT_ADMIN_USERNAME),
        admin_secret_arn: inputs.keys.admin_password.clone(),
        stack_name: Expr::lit(spec.name.clone()),
        state_table: table.r#ref(),
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
/// logs is added by the Lambda construct).
fn statements(
    spec: &Spec,
    inputs: &Inputs,
    table: &Handle<Table>,
    targets: &Targets,
) -> Vec<Statement> {
    let mut statements = Vec::new();
    if spec.autoscaling.enabled {
        statements.extend(scaling_statements(inputs));
    }
    statements.push(Statement::allow(
        &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"],
        vec![table.arn()],
    ));
    let mut secrets = vec![inputs.keys.admin_password.clone()];
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

/// ECS and CloudWatch: the worker service, the cluster's tasks, one metric namespace.
fn scaling_statements(inputs: &Inputs) -> Vec<Statement> {
    let cluster = &inputs.infra.cluster.handle;
    let tasks_in_cluster = Expr::arn(
        "ecs",
        Expr::concat(vec![Expr::lit("task/"), cluster.r#ref(), Expr::lit("/*")]),
    );
    // ListTasks has no task resource to name; the condition pins it to the cluster.
    let mut list = Statement::allow(&["ecs:ListTasks"], vec![Expr::lit("*")]);
    list.condition = Some(serde_json::json!({"ArnEquals": {"ecs:cluster": cluster.arn()}}));
    // PutMetricData has no resource either; the condition pins the namespace.
    let mut metrics = Statement::allow(&["cloudwatch:PutMetricData"], vec![Expr::lit("*")]);
    metrics.condition =
        Some(serde_json::json!({"StringEquals": {"cloudwatch:namespace": metrics::NAMESPACE}}));
    vec![
        Statement::allow(
            &["ecs:DescribeServices", "ecs:UpdateService"],
            // `Ref` of an ECS service is its ARN.
            vec![inputs.worker.r#ref()],
        ),
        list,
        Statement::allow(
            &["ecs:DescribeTasks", "ecs:UpdateTaskProtection"],
            vec![tasks_in_cluster],
        ),
        metrics,
    ]
}

fn add_outputs(t: &mut Template, targets: &Targets, spec: &Spec) {
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
