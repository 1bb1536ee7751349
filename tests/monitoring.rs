//! Autoscaling and alerts in the template (the scaler Lambda, its network access, its
//! role, its table, topic, secret and schedule) and their validation messages.

mod common;

use common::{cli, synth};
use serde_json::Value;

const BASE: &str = "name: mon\nregion: us-east-1\nnetwork:\n  nat_gateways: 1\n";
const BOTH: &str = "autoscaling:\n  enabled: true\n  min_workers: 0\n  max_workers: 6\n  cooldown_minutes: 15\nalerts:\n  enabled: true\n  slack_webhook_secret: create\n  sns_topic: create\n  ui_base_url: https://airflow.example.com\n";

fn template(extra: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(&file, format!("{BASE}{extra}")).unwrap();
    serde_json::from_str(&synth(&file, "json")).unwrap()
}

fn statements(t: &Value) -> Vec<Value> {
    t["Resources"]["ScalerFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .clone()
}

fn statement_for(t: &Value, action: &str) -> Value {
    statements(t)
        .into_iter()
        .find(|s| s["Action"].as_array().unwrap().iter().any(|a| a == action))
        .unwrap_or_else(|| panic!("no statement allows {action}"))
}

#[test]
fn off_by_default_adds_nothing() {
    let t = common::default_template();
    let resources = t["Resources"].as_object().unwrap();
    assert!(!resources
        .keys()
        .any(|k| k.starts_with("Scaler") || k.starts_with("Alert")));
    assert!(t["Parameters"].get("ScalerFunctionCodeKey").is_none());
    assert_eq!(
        t["Resources"]["WorkerService"]["Properties"]["DesiredCount"],
        1
    );
}

#[test]
fn the_scaler_runs_every_minute_in_the_vpc_and_reaches_only_the_api_server() {
    let t = template(BOTH);
    let r = &t["Resources"];
    let f = &r["ScalerFunction"]["Properties"];
    assert_eq!(
        f["Code"]["S3Key"],
        serde_json::json!({"Ref": "ScalerFunctionCodeKey"})
    );
    assert_eq!(f["VpcConfig"]["SubnetIds"].as_array().unwrap().len(), 2);
    assert_eq!(
        f["VpcConfig"]["SecurityGroupIds"],
        serde_json::json!([{"Fn::GetAtt": ["ScalerSecurityGroup", "GroupId"]}])
    );
    let env = &f["Environment"]["Variables"];
    assert_eq!(env["AIRFLOW_API_URL"], "http://api-server.airflow:8080");
    assert_eq!(env["MAX_WORKERS"], "6");
    assert_eq!(env["COOLDOWN_MINUTES"], "15");
    assert_eq!(env["WORKER_CONCURRENCY"], "8"); // the default
    assert_eq!(env["UI_BASE_URL"], "https://airflow.example.com");
    assert_eq!(
        env["SNS_TOPIC_ARN"],
        serde_json::json!({"Ref": "AlertTopic"})
    );
    assert_eq!(
        env["SLACK_SECRET_ARN"],
        serde_json::json!({"Ref": "SlackWebhookSecret"})
    );
    let ingress = &r["ApiServerFromScalerIngress"]["Properties"];
    assert_eq!(ingress["FromPort"], 8080);
    assert_eq!(ingress["ToPort"], 8080);
    assert_eq!(
        ingress["SourceSecurityGroupId"],
        serde_json::json!({"Fn::GetAtt": ["ScalerSecurityGroup", "GroupId"]})
    );
    let rule = &r["ScalerScheduleRule"]["Properties"];
    assert_eq!(rule["ScheduleExpression"], "rate(1 minute)");
    let permission = &r["ScalerSchedulePermission"]["Properties"];
    assert_eq!(permission["Principal"], "events.amazonaws.com");
    assert_eq!(
        permission["SourceArn"],
        serde_json::json!({"Fn::GetAtt": ["ScalerScheduleRule", "Arn"]})
    );
    assert_eq!(
        r["ScalerStateTable"]["Properties"]["BillingMode"],
        "PAY_PER_REQUEST"
    );
    assert!(t["Outputs"].get("AlertTopicArn").is_some());
    assert!(t["Outputs"].get("SlackWebhookSecretArn").is_some());
}

#[test]
fn the_scaler_owns_the_worker_count() {
    let t = template(BOTH);
    let worker = &t["Resources"]["WorkerService"]["Properties"];
    assert!(
        worker.get("DesiredCount").is_none(),
        "a template count would be re-applied on every update"
    );
    assert_eq!(
        t["Resources"]["SchedulerService"]["Properties"]["DesiredCount"],
        1
    );
}

#[test]
fn the_role_is_least_privilege() {
    let t = template(BOTH);
    let update = statement_for(&t, "ecs:UpdateService");
    assert_eq!(
        update["Resource"],
        serde_json::json!([{"Ref": "WorkerService"}])
    );
    let protect = statement_for(&t, "ecs:UpdateTaskProtection");
    assert!(protect["Resource"].to_string().contains("task/"));
    let metrics = statement_for(&t, "cloudwatch:PutMetricData");
    assert_eq!(
        metrics["Condition"]["StringEquals"]["cloudwatch:namespace"],
        "AirflowStack"
    );
    let list = statement_for(&t, "ecs:ListTasks");
    assert!(list["Condition"]["ArnEquals"]["ecs:cluster"].is_object());
    // Every wildcard resource carries a condition.
    for s in statements(&t) {
        if s["Resource"] == serde_json::json!(["*"]) {
            assert!(s.get("Condition").is_some(), "unconditioned *: {s}");
        }
    }
    let secrets = statement_for(&t, "secretsmanager:GetSecretValue");
    assert_eq!(
        secrets["Resource"].as_array().unwrap().len(),
        2,
        "admin + slack"
    );
    let publish = statement_for(&t, "sns:Publish");
    assert_eq!(
        publish["Resource"],
        serde_json::json!([{"Ref": "AlertTopic"}])
    );
    let managed = &t["Resources"]["ScalerFunctionRole"]["Properties"]["ManagedPolicyArns"];
    assert!(managed
        .to_string()
        .contains("AWSLambdaVPCAccessExecutionRole"));
}

#[test]
fn alerts_only_with_existing_targets_and_no_scaling_permissions() {
    let t =
        template("alerts:\n  enabled: true\n  sns_topic: arn:aws:sns:us-east-1:123456789012:ops\n");
    let r = t["Resources"].as_object().unwrap();
    assert!(!r.contains_key("AlertTopic") && !r.contains_key("SlackWebhookSecret"));
    let env = &t["Resources"]["ScalerFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        env["SNS_TOPIC_ARN"],
        "arn:aws:sns:us-east-1:123456789012:ops"
    );
    assert!(env.get("AUTOSCALING_ENABLED").is_none());
    assert_eq!(env["UI_BASE_URL"], "http://api-server.airflow:8080");
    let actions = serde_json::to_string(&statements(&t)).unwrap();
    assert!(!actions.contains("ecs:") && !actions.contains("cloudwatch:"));
    assert_eq!(
        t["Resources"]["WorkerService"]["Properties"]["DesiredCount"], 1,
        "without autoscaling the template keeps the count"
    );
}

/// `(case, stack file additions, field path, words in the message)`.
fn invalid() -> Vec<(&'static str, String, &'static str, &'static str)> {
    vec![
        (
            "no egress in the dev shape",
            "name: a\nregion: us-east-1\nautoscaling:\n  enabled: true\n".into(),
            "autoscaling.enabled",
            "nat_gateways",
        ),
        (
            "alerts without egress",
            "name: a\nregion: us-east-1\nalerts:\n  enabled: true\n  sns_topic: create\n".into(),
            "alerts.enabled",
            "VPC endpoints",
        ),
        (
            "min above max",
            format!("{BASE}autoscaling:\n  enabled: true\n  min_workers: 5\n  max_workers: 2\n"),
            "autoscaling.min_workers",
            "max_workers (2)",
        ),
        (
            "max zero",
            format!("{BASE}autoscaling:\n  enabled: true\n  max_workers: 0\n"),
            "autoscaling.max_workers",
            "1 to 100",
        ),
        (
            "cooldown zero",
            format!("{BASE}autoscaling:\n  enabled: true\n  cooldown_minutes: 0\n"),
            "autoscaling.cooldown_minutes",
            "1 to 1440",
        ),
        (
            "alerts without a target",
            format!("{BASE}alerts:\n  enabled: true\n"),
            "alerts",
            "slack_webhook_secret and/or sns_topic",
        ),
        (
            "bad topic",
            format!("{BASE}alerts:\n  enabled: true\n  sns_topic: my-topic\n"),
            "alerts.sns_topic",
            "topic ARN",
        ),
        (
            "bad slack secret",
            format!("{BASE}alerts:\n  enabled: true\n  slack_webhook_secret: https://hooks.slack.com/x\n"),
            "alerts.slack_webhook_secret",
            "secret ARN",
        ),
        (
            "bad ui url",
            format!("{BASE}alerts:\n  enabled: true\n  sns_topic: create\n  ui_base_url: airflow.example.com\n"),
            "alerts.ui_base_url",
            "http(s) URL",
        ),
        (
            "unknown key",
            format!("{BASE}autoscaling:\n  enabled: true\n  max: 3\n"),
            "autoscaling.max",
            "unknown field",
        ),
    ]
}

#[test]
fn invalid_settings_exit_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (case, text, field, words)) in invalid().into_iter().enumerate() {
        let file = dir.path().join(format!("case{i}.yaml"));
        std::fs::write(&file, &text).unwrap();
        let out = cli().arg("validate").arg(&file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
        assert!(
            stderr.contains(&format!(": {field}: ")),
            "{case}: field {field} in {stderr}"
        );
        assert!(stderr.contains(words), "{case}: {words:?} in {stderr}");
    }
}
