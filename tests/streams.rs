//! Event streams in the template (`streams:`, issue 17): the events table, one
//! connection manager per stream, the processor with its event source mapping and
//! dead-letter queue, the watchdog, their roles, and the validation messages.

mod common;

use common::{cli, synth};
use serde_json::{json, Value};

const BASE: &str = "name: st\nregion: us-east-1\nnetwork:\n  nat_gateways: 1\n";

/// Two streams: one SSE stream with an auth header and an id field that triggers a DAG,
/// one NDJSON stream identified by hash that records Asset events.
const TWO: &str = "streams:
  - name: orders
    url: https://events.example.com/orders
    format: sse
    auth:
      header: Authorization
      secret: arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-token-AbCdEf
    id_field: id
    target:
      dag: ingest_order
  - name: prices-eu
    url: https://feed.example.org/prices.ndjson
    format: ndjson
    target:
      asset: s3://prices/eu
    read_timeout_seconds: 30
";

const AUTH_SECRET: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-token-AbCdEf";

fn template(extra: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(&file, format!("{BASE}{extra}")).unwrap();
    serde_json::from_str(&synth(&file, "json")).unwrap()
}

fn resource<'a>(t: &'a Value, id: &str) -> &'a Value {
    let r = &t["Resources"][id];
    assert!(r.is_object(), "no resource {id}");
    r
}

/// The statements of a function's inline policy.
fn statements(t: &Value, function: &str) -> Vec<Value> {
    let policies = resource(t, &format!("{function}Role"))["Properties"]["Policies"]
        .as_array()
        .unwrap()
        .clone();
    policies
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap().clone())
        .collect()
}

/// `action -> resources` over a function's statements (log writing left out: every
/// function has it, tests/monitoring.rs checks it).
fn grants(t: &Value, function: &str) -> std::collections::BTreeMap<String, Vec<Value>> {
    let mut out = std::collections::BTreeMap::<String, Vec<Value>>::new();
    for s in statements(t, function) {
        assert_eq!(s["Effect"], "Allow");
        let resources = match &s["Resource"] {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        for action in s["Action"].as_array().unwrap() {
            let action = action.as_str().unwrap().to_owned();
            if action.starts_with("logs:") {
                continue;
            }
            out.entry(action).or_default().extend(resources.clone());
        }
    }
    out
}

fn env(t: &Value, function: &str) -> Value {
    resource(t, function)["Properties"]["Environment"]["Variables"].clone()
}

#[test]
fn off_by_default_adds_nothing() {
    let t = common::default_template();
    let resources = t["Resources"].as_object().unwrap();
    assert!(
        !resources.keys().any(|k| k.starts_with("Stream")),
        "{:?}",
        resources.keys().collect::<Vec<_>>()
    );
    assert!(t["Parameters"].get("StreamsFunctionCodeKey").is_none());
    assert!(!t.to_string().contains("airflow-stack-streams"));
}

#[test]
fn each_stream_gets_a_manager_that_runs_outside_the_vpc_and_may_invoke_itself() {
    let t = template(TWO);
    for (id, name) in [
        ("StreamOrdersFunction", "st-stream-orders"),
        ("StreamPricesEuFunction", "st-stream-prices-eu"),
    ] {
        let p = &resource(&t, id)["Properties"];
        assert_eq!(p["FunctionName"], name, "{id}");
        assert_eq!(p["Timeout"], 900, "{id}: Lambda's longest run");
        assert_eq!(
            p["RecursiveLoop"], "Allow",
            "{id}: Lambda stops a chain at its 17th self-invocation otherwise"
        );
        assert_eq!(p["ReservedConcurrentExecutions"], 3, "{id}");
        assert!(
            p.get("VpcConfig").is_none(),
            "{id}: reaches the internet without NAT"
        );
        assert_eq!(env(&t, id)["ROLE"], "manager");
        let invoke = resource(&t, &id.replace("Function", "InvokeConfig"));
        assert_eq!(invoke["Type"], "AWS::Lambda::EventInvokeConfig");
        assert_eq!(
            invoke["Properties"]["MaximumRetryAttempts"], 0,
            "a failed successor is the watchdog's"
        );
        // Its only invocation right is on itself, by its fixed name.
        let g = grants(&t, id);
        let invoke = g["lambda:InvokeFunction"].clone();
        assert_eq!(invoke.len(), 1, "{invoke:?}");
        assert!(invoke[0].to_string().contains(&format!("function:{name}")));
        for action in [
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        ] {
            assert!(
                g[action][0].to_string().contains("StreamEventsTable"),
                "{action}: {g:?}"
            );
        }
        assert!(!g.keys().any(|a| a == "dynamodb:Scan"
            || a == "dynamodb:DeleteItem"
            || a.starts_with("ecs:")
            || a.starts_with("sqs:")));
    }
    let orders = env(&t, "StreamOrdersFunction");
    assert_eq!(orders["STREAM_URL"], "https://events.example.com/orders");
    assert_eq!(orders["STREAM_FORMAT"], "sse");
    assert_eq!(orders["IDENTITY"], "field:id");
    assert_eq!(orders["TARGET_KIND"], "dag");
    assert_eq!(orders["TARGET"], "ingest_order");
    assert_eq!(orders["AUTH_HEADER"], "Authorization");
    assert_eq!(orders["AUTH_SECRET_ARN"], AUTH_SECRET);
    let prices = env(&t, "StreamPricesEuFunction");
    assert_eq!(prices["IDENTITY"], "hash");
    assert_eq!(prices["TARGET_KIND"], "asset");
    assert_eq!(prices["TARGET"], "s3://prices/eu");
    assert_eq!(prices["READ_TIMEOUT_SECONDS"], "30");
    assert!(prices.get("AUTH_SECRET_ARN").is_none());
}

#[test]
fn only_a_streams_own_manager_reads_its_auth_secret() {
    let t = template(TWO);
    assert_eq!(
        grants(&t, "StreamOrdersFunction")["secretsmanager:GetSecretValue"],
        vec![json!(AUTH_SECRET)]
    );
    for other in [
        "StreamPricesEuFunction",
        "StreamProcessorFunction",
        "StreamWatchdogFunction",
    ] {
        let g = grants(&t, other);
        let reads = g
            .get("secretsmanager:GetSecretValue")
            .cloned()
            .unwrap_or_default();
        assert!(
            !Value::from(reads).to_string().contains("orders-token"),
            "{other}"
        );
    }
    // The auth secret appears only in the orders manager's role and environment.
    for (id, r) in t["Resources"].as_object().unwrap() {
        if r.to_string().contains("orders-token") {
            assert!(
                id == "StreamOrdersFunction" || id == "StreamOrdersFunctionRole",
                "{id}"
            );
        }
    }
}

#[test]
fn the_table_deduplicates_by_key_expires_items_and_streams_new_images() {
    let t = template(TWO);
    let table = &resource(&t, "StreamEventsTable")["Properties"];
    assert_eq!(
        table["KeySchema"],
        json!([{"AttributeName": "pk", "KeyType": "HASH"}])
    );
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(table["StreamSpecification"]["StreamViewType"], "NEW_IMAGE");
    assert_eq!(
        table["TimeToLiveSpecification"],
        json!({"AttributeName": "expires_at", "Enabled": true})
    );
}

#[test]
fn the_processor_reaches_only_the_api_server_and_sends_what_fails_to_a_dead_letter_queue() {
    let t = template(TWO);
    let p = &resource(&t, "StreamProcessorFunction")["Properties"];
    assert!(p["VpcConfig"]["SecurityGroupIds"]
        .to_string()
        .contains("StreamProcessorSecurityGroup"));
    let e = env(&t, "StreamProcessorFunction");
    assert_eq!(e["ROLE"], "processor");
    assert_eq!(e["AIRFLOW_API_URL"], "http://api-server.airflow:8080");
    assert_eq!(e["API_USERNAME"], "airflow-stack-streams");
    assert_eq!(
        e["API_PASSWORD_SECRET_ARN"],
        json!({"Ref": "StreamsPasswordSecret"})
    );
    let ingress = &resource(&t, "ApiServerFromStreamProcessorIngress")["Properties"];
    assert_eq!(ingress["FromPort"], 8080);
    assert_eq!(ingress["ToPort"], 8080);
    assert_eq!(
        ingress["SourceSecurityGroupId"],
        json!({"Fn::GetAtt": ["StreamProcessorSecurityGroup", "GroupId"]})
    );

    let m = &resource(&t, "StreamProcessorEventSource")["Properties"];
    assert_eq!(
        m["EventSourceArn"],
        json!({"Fn::GetAtt": ["StreamEventsTable", "StreamArn"]})
    );
    assert_eq!(
        m["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(m["BisectBatchOnFunctionError"], true);
    assert_eq!(m["StartingPosition"], "TRIM_HORIZON");
    assert!(m["MaximumRetryAttempts"].as_i64().unwrap() >= 1);
    assert_eq!(
        m["DestinationConfig"]["OnFailure"]["Destination"],
        json!({"Fn::GetAtt": ["StreamDeadLetterQueue", "Arn"]})
    );
    // Only event items reach the processor, not the leases.
    let pattern: Value = serde_json::from_str(
        m["FilterCriteria"]["Filters"][0]["Pattern"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(pattern["eventName"], json!(["INSERT"]), "{pattern}");
    assert!(pattern.to_string().contains("event"), "{pattern}");
    let dlq = &resource(&t, "StreamDeadLetterQueue")["Properties"];
    assert_eq!(dlq["SqsManagedSseEnabled"], true);
    assert_eq!(
        t["Outputs"]["StreamDeadLetterQueueUrl"]["Value"],
        json!({"Ref": "StreamDeadLetterQueue"})
    );

    let g = grants(&t, "StreamProcessorFunction");
    for action in [
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
    ] {
        assert_eq!(
            g[action],
            vec![json!({"Fn::GetAtt": ["StreamEventsTable", "StreamArn"]})],
            "{action}"
        );
    }
    assert_eq!(g["dynamodb:ListStreams"], vec![json!("*")]);
    assert_eq!(
        g["dynamodb:GetItem"],
        vec![json!({"Fn::GetAtt": ["StreamEventsTable", "Arn"]})]
    );
    assert!(
        !g.contains_key("dynamodb:PutItem"),
        "only managers write events"
    );
    assert_eq!(
        g["secretsmanager:GetSecretValue"],
        vec![json!({"Ref": "StreamsPasswordSecret"})]
    );
    assert_eq!(
        g["sqs:SendMessage"],
        vec![json!({"Fn::GetAtt": ["StreamDeadLetterQueue", "Arn"]})]
    );
    assert!(!g.contains_key("lambda:InvokeFunction"));
}

#[test]
fn the_watchdog_runs_every_minute_invokes_the_managers_and_alerts_through_the_stack() {
    let t = template(&format!(
        "alerts:\n  enabled: true\n  sns_topic: create\n{TWO}"
    ));
    let rule = &resource(&t, "StreamWatchdogRule")["Properties"];
    assert_eq!(rule["ScheduleExpression"], "rate(1 minute)");
    assert_eq!(
        rule["Targets"][0]["Arn"],
        json!({"Fn::GetAtt": ["StreamWatchdogFunction", "Arn"]})
    );
    let e = env(&t, "StreamWatchdogFunction");
    assert_eq!(e["ROLE"], "watchdog");
    assert_eq!(e["STREAMS"], "orders,prices-eu");
    assert_eq!(e["SNS_TOPIC_ARN"], json!({"Ref": "AlertTopic"}));
    let g = grants(&t, "StreamWatchdogFunction");
    let invoke = Value::from(g["lambda:InvokeFunction"].clone()).to_string();
    assert!(invoke.contains("function:st-stream-orders"), "{invoke}");
    assert!(invoke.contains("function:st-stream-prices-eu"), "{invoke}");
    assert_eq!(g["lambda:InvokeFunction"].len(), 2);
    assert_eq!(g["sns:Publish"], vec![json!({"Ref": "AlertTopic"})]);
    assert_eq!(
        resource(&t, "StreamWatchdogFunction")["Properties"]["ReservedConcurrentExecutions"],
        1
    );
    // Without alerts the watchdog still restarts chains; it has nothing to publish to.
    let t = template(TWO);
    assert!(!grants(&t, "StreamWatchdogFunction").contains_key("sns:Publish"));
    assert!(env(&t, "StreamWatchdogFunction")
        .get("SNS_TOPIC_ARN")
        .is_none());
}

/// `action -> resources` of an ECS role's inline policy (log writing included).
fn role_grants(t: &Value, role: &str) -> std::collections::BTreeMap<String, Vec<Value>> {
    let mut out = std::collections::BTreeMap::<String, Vec<Value>>::new();
    for p in resource(t, role)["Properties"]["Policies"]
        .as_array()
        .unwrap()
    {
        for s in p["PolicyDocument"]["Statement"].as_array().unwrap() {
            assert_eq!(s["Effect"], "Allow");
            let resources = match &s["Resource"] {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            for action in s["Action"].as_array().unwrap() {
                out.entry(action.as_str().unwrap().to_owned())
                    .or_default()
                    .extend(resources.clone());
            }
        }
    }
    out
}

#[test]
fn a_stream_with_runner_service_is_one_always_on_fargate_task_the_watchdog_can_redeploy() {
    let file = TWO.replace(
        "    read_timeout_seconds: 30\n",
        "    read_timeout_seconds: 30\n    runner: service\n",
    );
    assert_ne!(file, TWO);
    let t = template(&file);
    // prices-eu has no function; orders keeps its chain.
    assert!(t["Resources"].get("StreamPricesEuFunction").is_none());
    assert!(t["Resources"].get("StreamOrdersFunction").is_some());
    let service = &resource(&t, "StreamPricesEuService")["Properties"];
    assert_eq!(service["ServiceName"], "st-stream-prices-eu");
    assert_eq!(service["DesiredCount"], 1);
    assert_eq!(
        service["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"],
        json!([{"Fn::GetAtt": ["StreamPricesEuSecurityGroup", "GroupId"]}])
    );
    // Nothing may connect to it.
    let ingress: Vec<_> = t["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::EC2::SecurityGroupIngress")
        .filter(|r| {
            r["Properties"]["GroupId"]
                .to_string()
                .contains("StreamPricesEuSecurityGroup")
        })
        .collect();
    assert!(ingress.is_empty(), "{ingress:?}");
    let task = &resource(&t, "StreamPricesEuTaskDefinition")["Properties"];
    assert_eq!(
        (task["Cpu"].as_str(), task["Memory"].as_str()),
        (Some("256"), Some("512"))
    );
    assert_eq!(
        task["RuntimePlatform"]["CpuArchitecture"], "ARM64",
        "the binary is the arm64 Lambda's"
    );
    let container = &task["ContainerDefinitions"][0];
    assert_eq!(container["Image"], "public.ecr.aws/lambda/python:3.12");
    assert_eq!(container["EntryPoint"][0], "python3");
    let launcher = container["EntryPoint"][2].as_str().unwrap();
    assert!(
        launcher.contains("os.execv('/tmp/stream/bootstrap'"),
        "{launcher}"
    );
    let vars: std::collections::BTreeMap<String, Value> = container["Environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| (kv["Name"].as_str().unwrap().to_owned(), kv["Value"].clone()))
        .collect();
    assert_eq!(vars["ROLE"], "service");
    assert_eq!(vars["STREAM_NAME"], "prices-eu");
    assert_eq!(vars["TARGET"], "s3://prices/eu");
    assert_eq!(vars["CODE_KEY"], json!({"Ref": "StreamsFunctionCodeKey"}));
    assert_eq!(
        vars["CODE_VERSION"],
        json!({"Ref": "StreamsFunctionCodeVersion"})
    );
    assert!(container.get("Secrets").is_none());

    // The task may use the table's items and fetch its code, nothing else.
    let g = role_grants(&t, "StreamPricesEuTaskRole");
    assert_eq!(
        g.keys().cloned().collect::<Vec<_>>(),
        [
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "s3:GetObjectVersion"
        ]
    );
    let object = Value::from(g["s3:GetObjectVersion"].clone()).to_string();
    assert!(object.contains("StreamsFunctionCodeKey"), "{object}");
    // Its execution role writes its own log group only.
    let g = role_grants(&t, "StreamPricesEuExecutionRole");
    assert_eq!(
        g["logs:PutLogEvents"],
        vec![json!({"Fn::GetAtt": ["StreamPricesEuLogGroup", "Arn"]})]
    );
    assert_eq!(g.len(), 2, "{g:?}");

    // The watchdog invokes only the Lambda-run manager and redeploys only this service.
    let e = env(&t, "StreamWatchdogFunction");
    assert_eq!(e["STREAMS"], "orders");
    assert_eq!(e["SERVICE_STREAMS"], "prices-eu");
    assert_eq!(e["CLUSTER"], json!({"Ref": "Cluster"}));
    let g = grants(&t, "StreamWatchdogFunction");
    assert_eq!(g["lambda:InvokeFunction"].len(), 1);
    let update = Value::from(g["ecs:UpdateService"].clone()).to_string();
    assert_eq!(g["ecs:UpdateService"].len(), 1);
    assert!(
        update.contains("service/") && update.contains("/st-stream-prices-eu"),
        "{update}"
    );
}

#[test]
fn the_processor_logs_in_as_its_own_airflow_user_with_a_generated_password() {
    let t = template(TWO);
    let secret = resource(&t, "StreamsPasswordSecret");
    assert_eq!(secret["DeletionPolicy"], "Retain");
    assert!(secret["Properties"].get("SecretString").is_none());
    assert_eq!(
        t["Resources"]["GeneratedSecrets"]["Properties"]["StreamsPasswordSecretArn"],
        json!({"Ref": "StreamsPasswordSecret"})
    );
    // The migration task creates the user (FAB role `User`: it may trigger DAG runs and
    // create Asset events, nothing administrative).
    let migrate = resource(&t, "MigrateTaskDefinition").to_string();
    assert!(
        migrate.contains("airflow-stack-streams --role User"),
        "{migrate}"
    );
}

#[test]
fn the_same_stack_file_renders_the_same_template() {
    assert_eq!(template(TWO), template(TWO));
}

fn invalid() -> Vec<(&'static str, String, &'static str, &'static str)> {
    let one = |body: &str| format!("{BASE}streams:\n  - {body}\n");
    let ok = "url: https://e.example.com/s\n    format: sse\n    target: {dag: d}";
    vec![
        (
            "unknown runner",
            one(&format!("name: s\n    {ok}\n    runner: fargate")),
            "streams[0].runner",
            "`lambda`",
        ),
        (
            "http URL",
            one("name: s\n    url: http://e.example.com/s\n    format: sse\n    target: {dag: d}"),
            "streams[0].url",
            "https://",
        ),
        (
            "upper-case name",
            one(&format!("name: Orders\n    {ok}")),
            "streams[0].name",
            "lower-case",
        ),
        (
            "double hyphen",
            one(&format!("name: a--b\n    {ok}")),
            "streams[0].name",
            "single hyphens",
        ),
        (
            "name too long for the function name",
            one(&format!("name: abcdefghijklmnopqrstu\n    {ok}")),
            "streams[0].name",
            "1-20",
        ),
        (
            "unknown format",
            one("name: s\n    url: https://e.example.com/s\n    format: websocket\n    target: {dag: d}"),
            "streams[0].format",
            "sse",
        ),
        (
            "two targets",
            one("name: s\n    url: https://e.example.com/s\n    format: sse\n    target: {dag: d, asset: s3://b/k}"),
            "streams[0].target",
            "single key",
        ),
        (
            "unknown target",
            one("name: s\n    url: https://e.example.com/s\n    format: sse\n    target: {dataset: x}"),
            "streams[0].target.dataset",
            "dag",
        ),
        (
            "bad dag id",
            one("name: s\n    url: https://e.example.com/s\n    format: sse\n    target: {dag: \"a b\"}"),
            "streams[0].target.dag",
            "DAG id",
        ),
        (
            "asset without a scheme",
            one("name: s\n    url: https://e.example.com/s\n    format: sse\n    target: {asset: orders}"),
            "streams[0].target.asset",
            "Asset URI",
        ),
        (
            "read timeout below five seconds",
            one(&format!("name: s\n    {ok}\n    read_timeout_seconds: 4")),
            "streams[0].read_timeout_seconds",
            "5 to 600",
        ),
        (
            "auth secret that is not an ARN",
            one(&format!(
                "name: s\n    {ok}\n    auth: {{header: Authorization, secret: my-token}}"
            )),
            "streams[0].auth.secret",
            "ARN",
        ),
        (
            "header with a colon",
            one(&format!(
                "name: s\n    {ok}\n    auth: {{header: \"Authorization:\", secret: {AUTH_SECRET}}}"
            )),
            "streams[0].auth.header",
            "header name",
        ),
        (
            "id field with a space",
            one(&format!("name: s\n    {ok}\n    id_field: \"event id\"")),
            "streams[0].id_field",
            "field name",
        ),
        (
            "a name twice",
            format!("{BASE}streams:\n  - name: s\n    {ok}\n  - name: s\n    {ok}\n"),
            "streams[1].name",
            "also streams[0].name",
        ),
        (
            "eleven streams",
            format!(
                "{BASE}streams:\n{}",
                (0..11)
                    .map(|i| format!("  - name: s{i}\n    {ok}\n"))
                    .collect::<String>()
            ),
            "streams",
            "at most 10",
        ),
        (
            "no egress in the dev shape",
            format!("name: a\nregion: us-east-1\nstreams:\n  - name: s\n    {ok}\n"),
            "streams",
            "nat_gateways",
        ),
        (
            "unknown key",
            one(&format!("name: s\n    {ok}\n    retries: 3")),
            "streams[0].retries",
            "unknown field",
        ),
    ]
}

#[test]
fn invalid_streams_exit_2_naming_the_field_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (case, text, field, words)) in invalid().into_iter().enumerate() {
        let file = dir.path().join(format!("case{i}.yaml"));
        let out_file = dir.path().join(format!("case{i}.json"));
        std::fs::write(&file, &text).unwrap();
        let out = cli()
            .args(["synth", "--format", "json", "--out"])
            .arg(&out_file)
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
        assert!(
            stderr.contains(&format!(": {field}: ")),
            "{case}: field {field} in {stderr}"
        );
        assert!(stderr.contains(words), "{case}: {words:?} in {stderr}");
        assert!(stderr.contains(file.to_str().unwrap()), "{case}: {stderr}");
        assert!(!out_file.exists(), "{case}: wrote {}", out_file.display());
    }
}

/// With the simple auth manager the processor's user gets the least role that does the
/// job: `user` triggers DAG runs, creating Asset events takes `op` (Airflow's
/// simple_auth_manager.py, `is_authorized_asset`).
#[test]
fn with_the_simple_auth_manager_the_processor_user_has_the_least_role_its_targets_need() {
    let simple = "airflow:\n  auth_manager: simple\n";
    let dag_only = "streams:\n  - name: s\n    url: https://e.example.com/s\n    format: sse\n    target: {dag: d}\n";
    let t = template(&format!("{simple}{dag_only}")).to_string();
    assert!(t.contains("airflow-stack-streams:user"), "{t}");
    assert!(!t.contains("airflow-stack-streams:op"));
    let t = template(&format!("{simple}{TWO}")).to_string();
    assert!(t.contains("airflow-stack-streams:op"));
    assert!(!t.contains("airflow-stack-streams:user"));
}

#[test]
fn cost_prices_each_runner_and_names_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yaml");
    let both = TWO.replace(
        "    read_timeout_seconds: 30\n",
        "    read_timeout_seconds: 30\n    runner: service\n",
    );
    std::fs::write(&file, format!("{BASE}{both}")).unwrap();
    let out = cli().arg("cost").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let line = |item: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.starts_with(item))
            .unwrap_or_else(|| panic!("no {item} line in\n{text}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    // The Lambda chain runs while paused; the Fargate task stops with the stack.
    let chain = line("StreamOrdersFunction");
    let task = line("StreamPricesEuService");
    let dollars = |v: &str| v.parse::<f64>().unwrap();
    assert!(dollars(&chain[1]) > 0.0 && dollars(&chain[1]) == dollars(&chain[2]));
    assert!(dollars(&task[1]) > 0.0 && dollars(&task[2]) == 0.0);
    assert!(
        chain
            .join(" ")
            .contains(&format!("Fargate task: ${}", task[1])),
        "{chain:?}"
    );
    assert!(
        task.join(" ").contains("0.25 vCPU / 0.5 GB ARM64"),
        "{task:?}"
    );
}

/// stacks/dev.yaml with a NAT gateway (the processor needs a way to AWS APIs) and two
/// streams, one per runner. The URLs are never connected to: the emulator fires no
/// schedule (no watchdog tick) and nothing is written to the table (no processor run).
fn dev_with_streams(dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(common::root().join("stacks/dev.yaml")).unwrap();
    let no_nat = "  nat_gateways: 0\n";
    assert!(text.contains(no_nat), "stacks/dev.yaml has no {no_nat:?}");
    let text = text.replace(no_nat, "  nat_gateways: 1\n");
    let both = TWO.replace(
        "    read_timeout_seconds: 30\n",
        "    read_timeout_seconds: 30\n    runner: service\n",
    );
    let path = dir.join("stack.yaml");
    std::fs::write(&path, format!("{text}{both}")).unwrap();
    path
}

#[test]
fn a_stack_with_both_runners_deploys_with_the_real_lambdas() {
    let emulator = common::emulator::Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dev_with_streams(dir.path());
    let file = file.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = emulator
            .cli(&common::emulator::target_dir())
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("$ airflow-stack {}\n{text}", args.join(" "));
        assert!(out.status.success(), "{} failed:\n{text}", args[0]);
    };
    run(&["bootstrap", file]);
    run(&["deploy", file, "--yes"]);
    let found = emulator.python(
        r#"
import boto3, json
boto3.setup_default_session(region_name='us-east-1')
res = boto3.client('cloudformation').describe_stack_resources(StackName='airflow-dev')['StackResources']
phys = {r['LogicalResourceId']: r.get('PhysicalResourceId', '') for r in res}
status = {r['ResourceStatus'] for r in res}
lam = boto3.client('lambda')
fn = lam.get_function_configuration(FunctionName='airflow-dev-stream-orders')
maps = lam.list_event_source_mappings(FunctionName=phys['StreamProcessorFunction'])['EventSourceMappings']
ecs = boto3.client('ecs')
svc = ecs.describe_services(cluster=phys['Cluster'], services=['airflow-dev-stream-prices-eu'])['services']
print(json.dumps({
    'status': sorted(status),
    'manager_role': fn['Environment']['Variables']['ROLE'],
    'prices_function': 'StreamPricesEuFunction' in phys,
    'mapping': [m['State'] for m in maps],
    'service': [(s['serviceName'], s['desiredCount']) for s in svc],
}))
"#,
        &[],
    );
    let found: Value = serde_json::from_str(found.trim()).unwrap();
    assert_eq!(found["status"], json!(["CREATE_COMPLETE"]), "{found}");
    assert_eq!(found["manager_role"], "manager");
    assert_eq!(found["prices_function"], false);
    assert_eq!(found["mapping"], json!(["Enabled"]));
    assert_eq!(
        found["service"],
        json!([["airflow-dev-stream-prices-eu", 1]])
    );
}

/// The Fargate runner's launcher, exactly as the template has it, run by Python with
/// boto3 (as in its image) against the emulator with credentials held to the task
/// role's S3 statement: it fetches the uploaded version of the zip (not the newer
/// object under the same key), marks `bootstrap` executable and execs it (the process
/// ECS signals is the binary, same pid).
#[test]
fn the_service_launcher_fetches_its_zip_version_with_the_task_role_and_execs_bootstrap() {
    let file = TWO.replace(
        "    read_timeout_seconds: 30\n",
        "    read_timeout_seconds: 30\n    runner: service\n",
    );
    let t = template(&file);
    let container =
        &resource(&t, "StreamPricesEuTaskDefinition")["Properties"]["ContainerDefinitions"][0];
    let entry: Vec<String> = container["EntryPoint"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(entry[..2], ["python3", "-c"]);
    let s3 = role_grants(&t, "StreamPricesEuTaskRole")
        .into_iter()
        .filter(|(action, _)| action.starts_with("s3:"))
        .map(|(action, _)| action)
        .collect::<Vec<_>>();
    let emulator = common::emulator::Emulator::start();
    let script = r#"
import boto3, io, json, os, subprocess, sys, urllib.request, uuid, zipfile
launcher, actions = sys.argv[1], json.loads(sys.argv[2])
s3 = boto3.client('s3')
bucket, key = 'assets-' + uuid.uuid4().hex[:8], 'assets/streams.zip'
s3.create_bucket(Bucket=bucket)
s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={'Status': 'Enabled'})
def zipped(text):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z:
        info = zipfile.ZipInfo('bootstrap')
        info.external_attr = 0o644 << 16  # not executable: the launcher must chmod it
        z.writestr(info, text)
    return buf.getvalue()
uploaded = s3.put_object(Bucket=bucket, Key=key,
    Body=zipped('#!/bin/sh\necho "uploaded pid=$$ role=$ROLE"\n'))['VersionId']
s3.put_object(Bucket=bucket, Key=key, Body=zipped('#!/bin/sh\necho newer\n'))
access_key = 'AKIA' + uuid.uuid4().hex[:16].upper()
body = {'access_key_id': access_key, 'name': 'stream-task',
        'principal': 'arn:aws:sts::123456789012:assumed-role/StreamTaskRole/task',
        'policies': [{'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow',
            'Action': actions, 'Resource': f'arn:aws:s3:::{bucket}/{key}'}]}]}
req = urllib.request.Request(os.environ['AWS_ENDPOINT_URL'] + '/_emulator/identities',
    data=json.dumps(body).encode(), headers={'Content-Type': 'application/json'}, method='POST')
urllib.request.urlopen(req).read()
env = {**os.environ, 'AWS_ACCESS_KEY_ID': access_key, 'ROLE': 'service',
       'CODE_BUCKET': bucket, 'CODE_KEY': key, 'CODE_VERSION': uploaded}
p = subprocess.Popen([sys.executable, '-c', launcher], env=env, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE, text=True)
out, err = p.communicate(timeout=60)
print(json.dumps({'pid': p.pid, 'code': p.returncode, 'out': out, 'err': err[-2000:]}))
"#;
    let out = emulator.python(script, &[&entry[2], &serde_json::to_string(&s3).unwrap()]);
    let ran: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ran["code"], 0, "{ran}");
    assert_eq!(
        ran["out"].as_str().unwrap().trim(),
        format!("uploaded pid={} role=service", ran["pid"]),
        "{ran}"
    );
}
