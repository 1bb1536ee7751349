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
    // Every wildcard resource carries a condition, except the two EC2 Describe actions
    // a VPC Lambda needs, which IAM only allows on "*".
    for s in statements(&t) {
        if s["Resource"] == serde_json::json!(["*"]) && s.get("Condition").is_none() {
            assert_eq!(
                s["Action"],
                serde_json::json!(["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"]),
                "unconditioned *: {s}"
            );
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
}

#[test]
fn the_scaler_writes_only_its_own_log_group_and_has_no_managed_policy() {
    let t = template(BOTH);
    let role = &t["Resources"]["ScalerFunctionRole"]["Properties"];
    // AWSLambdaVPCAccessExecutionRole would allow logs:CreateLogGroup/PutLogEvents on *.
    assert!(role.get("ManagedPolicyArns").is_none(), "{role}");
    let log_group = &t["Resources"]["ScalerFunctionLogGroup"]["Properties"];
    assert_eq!(
        log_group["LogGroupName"],
        "/airflow-stack/mon/scaler-function"
    );
    assert_eq!(log_group["RetentionInDays"], 30); // the stack's logs.retention_days
    assert_eq!(
        t["Resources"]["ScalerFunction"]["Properties"]["LoggingConfig"]["LogGroup"],
        serde_json::json!({"Ref": "ScalerFunctionLogGroup"})
    );
    let logs = statement_for(&t, "logs:PutLogEvents");
    assert_eq!(
        logs["Action"],
        serde_json::json!(["logs:CreateLogStream", "logs:PutLogEvents"])
    );
    assert_eq!(
        logs["Resource"],
        serde_json::json!([{"Fn::GetAtt": ["ScalerFunctionLogGroup", "Arn"]}])
    );
    let actions: Vec<String> = statements(&t)
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert!(!actions.iter().any(|a| a == "logs:CreateLogGroup"));
    // The network-interface actions of a VPC Lambda, as the Lambda guide lists them.
    for action in [
        "ec2:CreateNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action} missing");
    }
    let create = statement_for(&t, "ec2:CreateNetworkInterface");
    assert_eq!(
        create["Resource"],
        serde_json::json!([{"Fn::Join": ["", [
            "arn:", {"Ref": "AWS::Partition"}, ":ec2:", {"Ref": "AWS::Region"}, ":",
            {"Ref": "AWS::AccountId"}, ":", "*/*"
        ]]}]),
        "the account's EC2 resources in the stack's region, not *"
    );
}

#[test]
fn no_function_of_the_stack_has_a_managed_policy() {
    for t in [template(BOTH), common::default_template()] {
        for (id, r) in t["Resources"].as_object().unwrap() {
            if r["Type"] == "AWS::IAM::Role" {
                assert!(
                    r["Properties"].get("ManagedPolicyArns").is_none(),
                    "{id} has a managed policy"
                );
            }
        }
    }
}

#[test]
fn update_service_is_limited_to_the_worker_service_and_its_family() {
    let t = template(BOTH);
    let update = statement_for(&t, "ecs:UpdateService");
    assert_eq!(
        update["Action"],
        serde_json::json!(["ecs:UpdateService"]),
        "own statement, with its own condition"
    );
    let family = &update["Condition"]["ArnLikeIfExists"]["ecs:task-definition"];
    assert!(
        family
            .to_string()
            .contains("\"task-definition/mon-worker:*\""),
        "{family}"
    );
    let describe = statement_for(&t, "ecs:DescribeServices");
    assert_eq!(
        describe["Resource"],
        serde_json::json!([{"Ref": "WorkerService"}])
    );
    let tasks = statement_for(&t, "ecs:UpdateTaskProtection");
    assert_eq!(
        tasks["Resource"],
        serde_json::json!([{"Fn::Join": ["", [
            "arn:", {"Ref": "AWS::Partition"}, ":ecs:", {"Ref": "AWS::Region"}, ":",
            {"Ref": "AWS::AccountId"}, ":",
            {"Fn::Join": ["", ["task/", {"Ref": "Cluster"}, "/*"]]}
        ]]}])
    );
}

#[test]
fn the_scaler_runs_one_tick_at_a_time() {
    let t = template(BOTH);
    let r = &t["Resources"];
    let f = &r["ScalerFunction"]["Properties"];
    assert_eq!(f["ReservedConcurrentExecutions"], 1);
    assert!(
        f["Timeout"].as_i64().unwrap() < 60,
        "a tick ends before the next is due"
    );
    let invoke = &r["ScalerInvokeConfig"];
    assert_eq!(invoke["Type"], "AWS::Lambda::EventInvokeConfig");
    let invoke = &invoke["Properties"];
    assert_eq!(
        invoke["FunctionName"],
        serde_json::json!({"Ref": "ScalerFunction"})
    );
    assert_eq!(invoke["Qualifier"], "$LATEST");
    assert_eq!(invoke["MaximumRetryAttempts"], 0);
    assert_eq!(invoke["MaximumEventAgeInSeconds"], 60);
    let retry = &r["ScalerScheduleRule"]["Properties"]["Targets"][0]["RetryPolicy"];
    assert_eq!(retry["MaximumRetryAttempts"], 0);
    assert_eq!(retry["MaximumEventAgeInSeconds"], 60);
    // The other functions keep the shared pool.
    for (id, res) in r.as_object().unwrap() {
        if res["Type"] == "AWS::Lambda::Function" && id != "ScalerFunction" {
            assert!(res["Properties"]
                .get("ReservedConcurrentExecutions")
                .is_none());
        }
    }
}

#[test]
fn an_alarm_fires_when_the_scaler_cannot_read_airflow() {
    let t = template(BOTH);
    let alarm = &t["Resources"]["ScalerApiReadAlarm"];
    assert_eq!(alarm["Type"], "AWS::CloudWatch::Alarm");
    let a = &alarm["Properties"];
    assert_eq!(a["Namespace"], "AirflowStack");
    assert_eq!(a["MetricName"], "AirflowApiReadFailures");
    assert_eq!(
        a["Dimensions"],
        serde_json::json!([{"Name": "Stack", "Value": "mon"}])
    );
    assert_eq!(a["Statistic"], "Maximum");
    assert_eq!(a["Period"], 60);
    assert_eq!(a["EvaluationPeriods"], 5);
    assert_eq!(a["DatapointsToAlarm"], 5);
    assert_eq!(a["Threshold"], 1);
    assert_eq!(a["ComparisonOperator"], "GreaterThanOrEqualToThreshold");
    assert_eq!(
        a["TreatMissingData"], "breaching",
        "a scaler that does not run"
    );
    let topic = serde_json::json!([{"Ref": "AlertTopic"}]);
    assert_eq!(a["AlarmActions"], topic);
    assert_eq!(a["OKActions"], topic);
    // The role may publish the metric the alarm watches.
    let metrics = statement_for(&t, "cloudwatch:PutMetricData");
    assert_eq!(
        metrics["Condition"]["StringEquals"]["cloudwatch:namespace"],
        "AirflowStack"
    );
}

#[test]
fn the_alarm_exists_wherever_the_scaler_runs() {
    let t = common::default_template();
    assert!(t["Resources"].get("ScalerApiReadAlarm").is_none());
    // Autoscaling without alerts: an alarm without actions (visible in the console).
    let t = template("autoscaling:\n  enabled: true\n");
    let a = &t["Resources"]["ScalerApiReadAlarm"]["Properties"];
    assert!(a.get("AlarmActions").is_none() && a.get("OKActions").is_none());
    // Autoscaling and alerts to an existing topic: the alarm notifies it too.
    let arn = "arn:aws:sns:us-east-1:123456789012:ops";
    let t = template(&format!(
        "autoscaling:\n  enabled: true\nalerts:\n  enabled: true\n  sns_topic: {arn}\n"
    ));
    let a = &t["Resources"]["ScalerApiReadAlarm"]["Properties"];
    assert_eq!(a["AlarmActions"], serde_json::json!([arn]));
    // Alerts alone: the scaler still reads Airflow and publishes the read-failure metric
    // on every tick (lambdas/scaler/src/handler.rs), so alerts that stop because it cannot
    // read Airflow are not silent either.
    let t = template(&format!("alerts:\n  enabled: true\n  sns_topic: {arn}\n"));
    let a = &t["Resources"]["ScalerApiReadAlarm"]["Properties"];
    assert_eq!(a["AlarmActions"], serde_json::json!([arn]));
    let env = &t["Resources"]["ScalerFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(env["METRIC_NAMESPACE"], "AirflowStack");
    assert!(env.get("AUTOSCALING_ENABLED").is_none());
    let metrics = statement_for(&t, "cloudwatch:PutMetricData");
    assert_eq!(
        metrics["Condition"]["StringEquals"]["cloudwatch:namespace"],
        "AirflowStack"
    );
}

fn env_of(t: &Value, container: &str) -> std::collections::BTreeMap<String, Value> {
    let (_, c) = common::containers(t)
        .into_iter()
        .find(|(_, c)| c["Name"] == container)
        .unwrap_or_else(|| panic!("no container {container}"));
    c["Environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| (kv["Name"].as_str().unwrap().to_owned(), kv["Value"].clone()))
        .collect()
}

#[test]
fn max_workers_is_reachable_through_the_schedulers_parallelism() {
    // 12 workers x 8 slots: Airflow's default of 32 would cap the load at 4 workers.
    let t = template("autoscaling:\n  enabled: true\n  max_workers: 12\n");
    for container in ["scheduler", "worker", "api-server"] {
        assert_eq!(
            env_of(&t, container)["AIRFLOW__CORE__PARALLELISM"],
            "96",
            "{container}: one configuration for every component"
        );
    }
    // Never below Airflow's default.
    let t = template("autoscaling:\n  enabled: true\n  max_workers: 2\n");
    assert_eq!(env_of(&t, "scheduler")["AIRFLOW__CORE__PARALLELISM"], "32");
    // The stack file's own value wins, once.
    let t = template(
        "autoscaling:\n  enabled: true\n  max_workers: 12\nairflow:\n  extra_env:\n    AIRFLOW__CORE__PARALLELISM: \"200\"\n",
    );
    let (_, c) = common::containers(&t)
        .into_iter()
        .find(|(_, c)| c["Name"] == "scheduler")
        .unwrap();
    let values: Vec<&Value> = c["Environment"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|kv| kv["Name"] == "AIRFLOW__CORE__PARALLELISM")
        .map(|kv| &kv["Value"])
        .collect();
    assert_eq!(values, vec!["200"]);
    // Without autoscaling: Airflow's default.
    let t = template("");
    assert!(!env_of(&t, "scheduler").contains_key("AIRFLOW__CORE__PARALLELISM"));
}

#[test]
fn tasks_on_spot_workers_get_one_retry_unless_the_stack_file_says_otherwise() {
    let t = template("services:\n  worker: {spot: true}\n");
    for container in ["scheduler", "dag-processor", "worker"] {
        assert_eq!(
            env_of(&t, container)["AIRFLOW__CORE__DEFAULT_TASK_RETRIES"],
            "1",
            "{container}"
        );
    }
    let t = template(
        "services:\n  worker: {spot: true}\nairflow:\n  extra_env:\n    AIRFLOW__CORE__DEFAULT_TASK_RETRIES: \"3\"\n",
    );
    assert_eq!(
        env_of(&t, "worker")["AIRFLOW__CORE__DEFAULT_TASK_RETRIES"],
        "3"
    );
    let t = template("services:\n  worker: {spot: false}\n");
    assert!(!env_of(&t, "worker").contains_key("AIRFLOW__CORE__DEFAULT_TASK_RETRIES"));
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
    // Links go where people open the UI: the access mode's URL (the tunnel's by default).
    assert_eq!(env["UI_BASE_URL"], "http://localhost:8080/");
    let actions = serde_json::to_string(&statements(&t)).unwrap();
    assert!(!actions.contains("ecs:"), "{actions}");
    // Its one CloudWatch permission: the read-failure metric, in its namespace.
    let cloudwatch: Vec<Value> = statements(&t)
        .into_iter()
        .filter(|s| s["Action"].to_string().contains("cloudwatch:"))
        .collect();
    assert_eq!(cloudwatch.len(), 1, "{cloudwatch:?}");
    assert_eq!(
        cloudwatch[0]["Action"],
        serde_json::json!(["cloudwatch:PutMetricData"])
    );
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
            format!("{BASE}autoscaling:\n  enabled: true\n  cooldown_minutes: 1441\n"),
            "autoscaling.cooldown_minutes",
            "0 to 1440",
        ),
        (
            "drain of one minute",
            format!("{BASE}autoscaling:\n  enabled: true\n  drain_minutes: 1\n"),
            "autoscaling.drain_minutes",
            "2 to 1440",
        ),
        (
            "the workers' Celery configuration overridden",
            format!("{BASE}autoscaling:\n  enabled: true\nairflow:\n  extra_env:\n    AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS: my.CONFIG\n"),
            "airflow.extra_env.AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS",
            "task protection and drain",
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

/// The worker container and task role the drain protocol needs, written by hand here
/// (not through the contract crate) so a rename there fails this test.
#[test]
fn with_autoscaling_workers_protect_themselves_and_honour_the_drain_tag() {
    let t = template("autoscaling:\n  enabled: true\n  drain_minutes: 7\n");
    let (_, worker) = common::containers(&t)
        .into_iter()
        .find(|(_, c)| c["Name"] == "worker")
        .unwrap();
    assert_eq!(
        worker["Command"],
        serde_json::json!([
            "bash",
            "-c",
            "mkdir -p \"$AIRFLOW_HOME/config\" && printf '%s' \"$AIRFLOW_STACK_WORKER_MODULE\" > \"$AIRFLOW_HOME/config/airflow_stack_worker.py\" && exec airflow celery worker"
        ])
    );
    let env = env_of(&t, "worker");
    assert_eq!(
        env["AIRFLOW_STACK_WORKER_MODULE"],
        include_str!("../src/stack/worker/airflow_stack_worker.py")
    );
    assert_eq!(
        env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"],
        "airflow_stack_worker.CELERY_CONFIG"
    );
    assert_eq!(env["AIRFLOW_STACK_DRAIN_TAG"], "airflow-stack:drain");
    assert_eq!(env["AIRFLOW_STACK_PROTECTION_MINUTES"], "60");
    assert_eq!(
        t["Resources"]["ScalerFunction"]["Properties"]["Environment"]["Variables"]["DRAIN_MINUTES"],
        "7"
    );
    // The worker's task role: the agent's protection endpoint and the worker's own
    // ListTagsForResource (its drain tag), on the cluster's tasks.
    let role = &t["Resources"]["WorkerTaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        ["Statement"];
    let protection = role
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["Action"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "ecs:UpdateTaskProtection")
        })
        .expect("the worker may protect itself");
    assert_eq!(
        protection["Action"],
        serde_json::json!([
            "ecs:GetTaskProtection",
            "ecs:UpdateTaskProtection",
            "ecs:ListTagsForResource"
        ])
    );
    assert!(protection["Resource"].to_string().contains("task/"));
    assert!(protection["Resource"].to_string().contains("\"Cluster\""));
}

#[test]
fn without_autoscaling_workers_run_celery_as_before() {
    let t = template("");
    let (_, worker) = common::containers(&t)
        .into_iter()
        .find(|(_, c)| c["Name"] == "worker")
        .unwrap();
    assert_eq!(worker["Command"], serde_json::json!(["celery", "worker"]));
    let env = env_of(&t, "worker");
    assert!(!env.keys().any(|k| k.starts_with("AIRFLOW_STACK_")));
    assert!(!env.contains_key("AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"));
    assert!(!t["Resources"]["WorkerTaskRole"]
        .to_string()
        .contains("TaskProtection"));
}

#[test]
fn the_scaler_may_set_and_remove_the_drain_tag_only() {
    let t = template(BOTH);
    let tag = statement_for(&t, "ecs:TagResource");
    assert_eq!(tag["Action"], serde_json::json!(["ecs:TagResource"]));
    assert_eq!(
        tag["Condition"],
        serde_json::json!({
            "ForAllValues:StringEquals": {"aws:TagKeys": ["airflow-stack:drain"]},
            "Null": {"aws:TagKeys": "false"},
            "StringEquals": {"aws:RequestTag/airflow-stack:drain": "true"},
        })
    );
    let untag = statement_for(&t, "ecs:UntagResource");
    assert_eq!(
        untag["Condition"],
        serde_json::json!({
            "ForAllValues:StringEquals": {"aws:TagKeys": ["airflow-stack:drain"]},
            "Null": {"aws:TagKeys": "false"},
        })
    );
    for s in [&tag, &untag, &statement_for(&t, "ecs:GetTaskProtection")] {
        assert!(s["Resource"].to_string().contains("task/"), "{s}");
    }
}

#[test]
fn the_scaler_logs_in_as_its_own_user_with_a_secret_of_its_own() {
    let t = template(BOTH);
    let secret = &t["Resources"]["ScalerPasswordSecret"];
    assert_eq!(secret["Type"], "AWS::SecretsManager::Secret");
    assert_eq!(
        secret["DeletionPolicy"], "Retain",
        "the user in the database outlives it"
    );
    assert!(secret["Properties"].get("SecretString").is_none());
    assert_eq!(
        t["Resources"]["GeneratedSecrets"]["Properties"]["ScalerPasswordSecretArn"],
        serde_json::json!({"Ref": "ScalerPasswordSecret"})
    );
    let env = &t["Resources"]["ScalerFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(env["API_USERNAME"], "airflow-stack-scaler");
    assert_eq!(
        env["API_PASSWORD_SECRET_ARN"],
        serde_json::json!({"Ref": "ScalerPasswordSecret"})
    );
    let read = statement_for(&t, "secretsmanager:GetSecretValue");
    let resources = read["Resource"].to_string();
    assert!(resources.contains("ScalerPasswordSecret"), "{resources}");
    assert!(!resources.contains("AdminPasswordSecret"), "{resources}");
    // A stack without the scaler has neither the secret nor the user.
    let t = common::default_template();
    assert!(t["Resources"].get("ScalerPasswordSecret").is_none());
    assert!(!t.to_string().contains("airflow-stack-scaler"));
}

/// `schedule:` pauses the scaler with the services: DynamoDB PutItem/DeleteItem of the
/// paused item through Scheduler's universal targets, with a role allowed exactly that.
#[test]
fn office_hours_mark_the_scaler_paused_and_resumed() {
    let t = template(
        "autoscaling:\n  enabled: true\nschedule:\n  timezone: Europe/Berlin\n  resume: \"cron(0 7 ? * MON-FRI *)\"\n  pause: \"cron(0 19 ? * MON-FRI *)\"\n",
    );
    let r = &t["Resources"];
    // The input with the table's Ref replaced by a name, as Scheduler would send it.
    let input = |id: &str| -> Value {
        let target = &r[id]["Properties"]["Target"];
        let parts = target["Input"]["Fn::Join"][1].as_array().unwrap();
        let text: String = parts
            .iter()
            .map(|p| match p {
                Value::String(s) => s.clone(),
                other => {
                    assert_eq!(other, &serde_json::json!({"Ref": "ScalerStateTable"}));
                    "tbl".to_owned()
                }
            })
            .collect();
        serde_json::from_str(&text).unwrap()
    };
    let arn = |id: &str| r[id]["Properties"]["Target"]["Arn"].to_string();
    assert!(arn("ScalerPauseSchedule").contains(":scheduler:::aws-sdk:dynamodb:putItem"));
    assert_eq!(
        input("ScalerPauseSchedule"),
        serde_json::json!({"TableName": "tbl", "Item": {
            "pk": {"S": "paused"}, "since": {"S": "<aws.scheduler.scheduled-time>"}}})
    );
    assert!(arn("ScalerResumeSchedule").contains(":scheduler:::aws-sdk:dynamodb:deleteItem"));
    assert_eq!(
        input("ScalerResumeSchedule"),
        serde_json::json!({"TableName": "tbl", "Key": {"pk": {"S": "paused"}}})
    );
    for (id, when) in [
        ("ScalerPauseSchedule", "cron(0 19 ? * MON-FRI *)"),
        ("ScalerResumeSchedule", "cron(0 7 ? * MON-FRI *)"),
    ] {
        assert_eq!(r[id]["Properties"]["ScheduleExpression"], when);
        assert_eq!(
            r[id]["Properties"]["ScheduleExpressionTimezone"],
            "Europe/Berlin"
        );
    }
    let policy = &r["ScheduleRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"];
    let dynamo = policy
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Action"].to_string().contains("dynamodb"))
        .expect("a DynamoDB statement");
    assert_eq!(
        dynamo["Action"],
        serde_json::json!(["dynamodb:PutItem", "dynamodb:DeleteItem"])
    );
    assert_eq!(
        dynamo["Resource"],
        serde_json::json!([{"Fn::GetAtt": ["ScalerStateTable", "Arn"]}])
    );
    // Without the scaler, the schedule touches the services only.
    let t = template("schedule:\n  timezone: UTC\n  resume: \"cron(0 7 * * ? *)\"\n  pause: \"cron(0 19 * * ? *)\"\n");
    assert!(t["Resources"].get("ScalerPauseSchedule").is_none());
    assert!(!t["Resources"]["ScheduleRole"]
        .to_string()
        .contains("dynamodb"));
}
