//! Worker autoscaling and failed-run alerts: one Rust Lambda (lambdas/scaler) in the
//! VPC, run every minute by an EventBridge rule, reaching the api-server through Cloud
//! Map. Its own security group, one ingress rule on the api-server for it, a state
//! table in DynamoDB, optionally an SNS topic and an empty Slack webhook secret, and a
//! role that may touch exactly the worker service, the cluster's tasks, the stack's
//! metric namespace, the table, the secrets and the topic.
//!
//! Nothing is added unless `autoscaling.enabled` or `alerts.enabled` is set.

use std::collections::BTreeMap;

use super::assets;
use super::cluster::Cluster;
use super::network::Network;
use super::secrets::Keys;
use super::security::{self, SecurityGroups};
use super::Tags;
use crate::cfn::aws::dynamodb::Table;
use crate::cfn::aws::ec2::{EgressRule, SecurityGroup};
use crate::cfn::aws::ecs::Service;
use crate::cfn::aws::events::{Rule, Target};
use crate::cfn::aws::iam::{InlinePolicy, PolicyDocument, Role, Statement};
use crate::cfn::aws::lambda::{Code, Environment, Function, LoggingConfig, Permission, VpcConfig};
use crate::cfn::aws::logs::LogGroup;
use crate::cfn::aws::secretsmanager::Secret;
use crate::cfn::aws::sns::Topic;
use crate::cfn::{Expr, Handle, Template};
use crate::spec::Spec;

/// CloudWatch namespace of `QueuedTasks`, `RunningTasks` and `DesiredWorkers`; the
/// role may publish to this namespace only.
pub const METRIC_NAMESPACE: &str = "AirflowStack";

/// What the construct wires together.
pub struct Inputs<'a> {
    /// Bucket of the Lambda code assets.
    pub assets_bucket: Expr,
    /// Subnets and VPC.
    pub net: &'a Network,
    /// The api-server's group gets an ingress rule for the scaler.
    pub sg: &'a SecurityGroups,
    /// The cluster of the worker service.
    pub cluster: &'a Cluster,
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
pub fn add(t: &mut Template, spec: &Spec, inputs: &Inputs, tags: &Tags) {
    if !spec.autoscaling.enabled && !spec.alerts.enabled {
        return;
    }
    let code_key = assets::add_scaler_key(t);
    let group = add_network_access(t, spec, inputs, tags);
    let table = t.add("ScalerStateTable", Table::on_demand("pk", tags.all()));
    let targets = add_targets(t, spec, tags);
    let log_group = t.add(
        "ScalerFunctionLogGroup",
        LogGroup {
            log_group_name: Expr::lit(format!("/airflow-stack/{}/scaler-function", spec.name)),
            retention_in_days: spec.logs.retention_days,
            tags: tags.all(),
        },
    );
    let role = add_role(t, spec, inputs, &table, &targets, &log_group, tags);
    let function = t.add(
        "ScalerFunction",
        Function {
            function_name: Some(Expr::lit(format!("{}-scaler", spec.name))),
            description:
                "airflow-stack scaler: worker autoscaling and failed-run alerts, every minute"
                    .into(),
            runtime: "provided.al2023",
            handler: "bootstrap",
            architectures: vec!["x86_64"],
            code: Code {
                s3_bucket: inputs.assets_bucket.clone(),
                s3_key: code_key,
            },
            role: role.arn(),
            // Below the one-minute schedule, so ticks do not pile up.
            timeout: 50,
            memory_size: 256,
            logging_config: Some(LoggingConfig {
                log_group: log_group.r#ref(),
                log_format: "JSON",
            }),
            environment: Some(Environment {
                variables: environment(spec, inputs, &table, &targets),
            }),
            vpc_config: Some(VpcConfig {
                subnet_ids: inputs.net.subnets.clone(),
                security_group_ids: security::ids(&[&group]),
            }),
            tags: tags.all(),
        },
    );
    let rule = t.add(
        "ScalerScheduleRule",
        Rule {
            description: format!("{}: run the scaler every minute", spec.name),
            schedule_expression: "rate(1 minute)".into(),
            state: "ENABLED",
            targets: vec![Target {
                arn: function.arn(),
                id: "scaler".into(),
            }],
        },
    );
    t.add(
        "ScalerSchedulePermission",
        Permission {
            action: "lambda:InvokeFunction",
            function_name: function.r#ref(),
            principal: "events.amazonaws.com",
            source_arn: rule.arn(),
        },
    );
    add_outputs(t, &targets, spec);
}

/// The scaler's own security group and the one rule letting it reach the api-server.
fn add_network_access(
    t: &mut Template,
    spec: &Spec,
    inputs: &Inputs,
    tags: &Tags,
) -> Handle<SecurityGroup> {
    let group = t.add(
        "ScalerSecurityGroup",
        SecurityGroup {
            group_description: format!("{} scaler Lambda", spec.name),
            vpc_id: inputs.net.vpc_id.clone(),
            security_group_egress: vec![EgressRule::all()],
            tags: tags.named(&format!("{}-scaler", spec.name)),
        },
    );
    security::allow(
        t,
        "ApiServerFromScaler",
        &inputs.sg.api_server,
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
                    display_name: Some(format!("{} Airflow alerts", spec.name)),
                    tags: tags.all(),
                },
            )
            .arn(),
        arn => Expr::lit(arn),
    });
    let slack_secret = a.slack_webhook_secret.as_deref().map(|v| match v {
        // Created without a value: the user puts the webhook URL in it, so the URL
        // never passes through the template or the stack file.
        "create" => t
            .add(
                "SlackWebhookSecret",
                Secret {
                    name: super::unique_name(Expr::lit(spec.name.clone()), "-slack-webhook-"),
                    description:
                        "Slack incoming-webhook URL for Airflow alerts: set its value to the URL"
                            .into(),
                    tags: tags.all(),
                },
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
    let mut env = BTreeMap::from([
        ("AIRFLOW_API_URL".to_string(), Expr::lit(api.clone())),
        ("ADMIN_USERNAME".into(), Expr::lit("admin")),
        (
            "ADMIN_SECRET_ARN".into(),
            inputs.keys.admin_password.clone(),
        ),
        ("STACK_NAME".into(), Expr::lit(spec.name.clone())),
        ("STATE_TABLE".into(), table.r#ref()),
    ]);
    let a = &spec.autoscaling;
    if a.enabled {
        let w = &spec.services.worker;
        env.extend([
            ("AUTOSCALING_ENABLED".to_string(), Expr::lit("true")),
            ("CLUSTER".into(), inputs.cluster.handle.r#ref()),
            ("WORKER_SERVICE".into(), inputs.worker.name()),
            ("METRIC_NAMESPACE".into(), Expr::lit(METRIC_NAMESPACE)),
            (
                "WORKER_CONCURRENCY".into(),
                Expr::lit(w.concurrency.to_string()),
            ),
            ("MIN_WORKERS".into(), Expr::lit(a.min_workers.to_string())),
            ("MAX_WORKERS".into(), Expr::lit(a.max_workers.to_string())),
            (
                "COOLDOWN_MINUTES".into(),
                Expr::lit(a.cooldown_minutes.to_string()),
            ),
        ]);
    }
    if spec.alerts.enabled {
        let base = spec.alerts.ui_base_url.clone().unwrap_or(api);
        env.insert("ALERTS_ENABLED".into(), Expr::lit("true"));
        env.insert("UI_BASE_URL".into(), Expr::lit(base));
        if let Some(s) = &targets.slack_secret {
            env.insert("SLACK_SECRET_ARN".into(), s.clone());
        }
        if let Some(topic) = &targets.topic {
            env.insert("SNS_TOPIC_ARN".into(), topic.clone());
        }
    }
    env
}

/// Least privilege: each statement names the one resource it needs.
fn add_role(
    t: &mut Template,
    spec: &Spec,
    inputs: &Inputs,
    table: &Handle<Table>,
    targets: &Targets,
    log_group: &Handle<LogGroup>,
    tags: &Tags,
) -> Handle<Role> {
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
    statements.push(Statement::allow(
        &["logs:CreateLogStream", "logs:PutLogEvents"],
        vec![log_group.arn()],
    ));
    let mut role = Role::for_service(
        "lambda.amazonaws.com",
        "Scales Airflow workers and sends failed-run alerts".into(),
        vec![InlinePolicy {
            policy_name: "scale-and-alert".into(),
            policy_document: PolicyDocument::new(statements),
        }],
        tags.all(),
    );
    // The ENI permissions every VPC Lambda needs (ec2:CreateNetworkInterface, ...),
    // which cannot be scoped to resources known in advance.
    role.managed_policy_arns = Some(vec![Expr::managed_policy(
        "service-role/AWSLambdaVPCAccessExecutionRole",
    )]);
    t.add("ScalerFunctionRole", role)
}

/// ECS and CloudWatch: the worker service, the cluster's tasks, one metric namespace.
fn scaling_statements(inputs: &Inputs) -> Vec<Statement> {
    let cluster = &inputs.cluster.handle;
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
        Some(serde_json::json!({"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}}));
    vec![
        Statement::allow(
            &["ecs:DescribeServices", "ecs:UpdateService"],
            vec![inputs.worker.arn()],
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
