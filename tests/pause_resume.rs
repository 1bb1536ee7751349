//! `airflow-stack pause` / `resume` against the local AWS emulator
//! (tests/aws_emulator/server.py): a stack with ECS services and an RDS instance created
//! through CloudFormation, paused (services to 0, then the database stopped) and resumed
//! (the database started and available, then the services at exactly the stack file's
//! counts), with the scaler's paused item set before the services stop and cleared on
//! resume. The order is read from the emulator's event list, where every UpdateService
//! and every RDS stop, start and status change is recorded in sequence; the emulator
//! takes a second for a stop or a start (tests/aws_emulator/rds_state.py), as RDS takes
//! minutes, so a resume that did not wait would scale the services up first.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::config::{BehaviorVersion, Credentials, Region};
use common::{cli, root};

const REGION: &str = "us-east-1";

/// The stack's RDS instance.
const DB: &str = "pause-test-db";

/// The emulator process, killed by its pid when dropped, also when a test panics.
struct Emulator {
    child: Child,
    url: String,
}

impl Emulator {
    fn start(log: &std::path::Path) -> Emulator {
        let venv = std::env::var("AIRFLOW_STACK_VENV")
            .unwrap_or_else(|_| "/root/.cache/airflow-stack/venv".into());
        let python = PathBuf::from(venv).join("bin/python");
        assert!(
            python.exists(),
            "{} is missing: run bash tests/run-all.sh to create the venv",
            python.display()
        );
        let mut child = Command::new(python)
            .arg(root().join("tests/aws_emulator/server.py"))
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start the emulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // Owned by the guard before anything can panic, so the process never leaks.
        let mut emulator = Emulator {
            url: String::new(),
            child,
        };
        let port = line
            .strip_prefix("READY ")
            .unwrap_or_else(|| {
                panic!(
                    "emulator did not start: {line:?}\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            })
            .trim()
            .to_string();
        emulator.url = format!("http://127.0.0.1:{port}");
        emulator
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(url: &str) -> aws_sdk_cloudformation::Config {
    aws_sdk_cloudformation::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build()
}

fn ecs_client(url: &str) -> aws_sdk_ecs::Client {
    let conf = aws_sdk_ecs::Config::builder()
        .behavior_version(aws_sdk_ecs::config::BehaviorVersion::latest())
        .region(aws_sdk_ecs::config::Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_ecs::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    aws_sdk_ecs::Client::from_conf(conf)
}

/// The stack file: core packed (count 2), 3 workers, Redis on Fargate (1), RDS.
const STACK_FILE: &str = "name: pause-test\nregion: us-east-1\ndatabase:\n  engine: rds-postgres\nservices:\n  packing: core\n  core: {cpu: 1024, memory: 4096, count: 2}\n  worker: {count: 3}\n";

/// What `deploy` would leave: the services under the logical ids the stack file
/// synthesizes, at its counts, plus one the stack file no longer has.
fn template() -> String {
    let service = |count: u32| {
        serde_json::json!({"Type": "AWS::ECS::Service", "Properties": {
            "Cluster": {"Ref": "Cluster"}, "TaskDefinition": {"Ref": "Task"},
            "DesiredCount": count}})
    };
    serde_json::json!({"Resources": {
        "Cluster": {"Type": "AWS::ECS::Cluster"},
        "Task": {"Type": "AWS::ECS::TaskDefinition", "Properties": {
            "Family": "pause-test", "Memory": "512",
            "ContainerDefinitions": [{"Name": "app", "Image": "busybox", "Memory": 512}]}},
        "CoreService": service(2),
        "WorkerService": service(3),
        "RedisService": service(1),
        "LegacyService": service(1),
        "DatabaseInstance": {"Type": "AWS::RDS::DBInstance", "Properties": {
            "DBInstanceIdentifier": DB, "Engine": "postgres", "DBInstanceClass": "db.t4g.micro",
            "AllocatedStorage": "20", "MasterUsername": "airflow",
            "MasterUserPassword": "not-a-secret-1", "Port": "5432"}},
        // The stream processor and its event source mapping on the events table's stream
        // (src/stack/streams.rs), with the four stream actions the emulator checks.
        "StreamEventsTable": {"Type": "AWS::DynamoDB::Table", "Properties": {
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
            "StreamSpecification": {"StreamViewType": "NEW_IMAGE"}}},
        "StreamProcessorFunctionRole": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"}]},
            "Policies": [{"PolicyName": "read-stream", "PolicyDocument": {
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                    "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords",
                               "dynamodb:GetShardIterator", "dynamodb:ListStreams"],
                    "Resource": "*"}]}}]}},
        "StreamProcessorFunction": {"Type": "AWS::Lambda::Function", "Properties": {
            "Runtime": "python3.12", "Handler": "index.handler",
            "Role": {"Fn::GetAtt": ["StreamProcessorFunctionRole", "Arn"]},
            "Code": {"ZipFile": "def handler(event, context):\n    return {}\n"}}},
        "StreamProcessorEventSource": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
            "EventSourceArn": {"Fn::GetAtt": ["StreamEventsTable", "StreamArn"]},
            "FunctionName": {"Ref": "StreamProcessorFunction"},
            "StartingPosition": "TRIM_HORIZON"}},
        // The scaler's state table (stack::SCALER_STATE_TABLE), as monitoring.rs makes it.
        "ScalerStateTable": {"Type": "AWS::DynamoDB::Table", "Properties": {
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST"}},
    }})
    .to_string()
}

/// Desired counts by logical id, read back from ECS.
async fn desired(url: &str) -> Vec<(String, i32)> {
    let cfn = aws_sdk_cloudformation::Client::from_conf(config(url));
    let ecs = ecs_client(url);
    let resources = cfn
        .describe_stack_resources()
        .stack_name("pause-test")
        .send()
        .await
        .unwrap();
    let physical = |id: &str| {
        resources
            .stack_resources()
            .iter()
            .find(|r| r.logical_resource_id() == Some(id))
            .and_then(|r| r.physical_resource_id())
            .unwrap()
            .to_string()
    };
    let mut out = Vec::new();
    for id in [
        "CoreService",
        "WorkerService",
        "RedisService",
        "LegacyService",
    ] {
        let services = ecs
            .describe_services()
            .cluster(physical("Cluster"))
            .services(physical(id))
            .send()
            .await
            .unwrap();
        out.push((id.to_string(), services.services()[0].desired_count()));
    }
    out
}

/// The physical id of one of the test stack's resources.
async fn physical_id(url: &str, logical: &str) -> String {
    aws_sdk_cloudformation::Client::from_conf(config(url))
        .describe_stack_resource()
        .stack_name("pause-test")
        .logical_resource_id(logical)
        .send()
        .await
        .unwrap()
        .stack_resource_detail()
        .and_then(|r| r.physical_resource_id().map(str::to_owned))
        .unwrap()
}

/// The stream processor's event source mapping: `State` as Lambda reports it.
async fn event_source_state(url: &str) -> String {
    let uuid = physical_id(url, "StreamProcessorEventSource").await;
    let conf = aws_sdk_lambda::Config::builder()
        .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
        .region(aws_sdk_lambda::config::Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    aws_sdk_lambda::Client::from_conf(conf)
        .get_event_source_mapping()
        .uuid(uuid)
        .send()
        .await
        .unwrap()
        .state()
        .unwrap_or_default()
        .to_owned()
}

/// The scaler's paused item (`since`), read back from the stack's state table.
async fn paused_item(url: &str) -> Option<String> {
    let table = physical_id(url, "ScalerStateTable").await;
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    let item = aws_sdk_dynamodb::Client::from_conf(conf)
        .get_item()
        .table_name(table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("paused".into()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    item.item()
        .map(|i| i["since"].as_s().expect("since is a string").clone())
}

fn rds_client(url: &str) -> aws_sdk_rds::Client {
    let conf = aws_sdk_rds::Config::builder()
        .behavior_version(aws_sdk_rds::config::BehaviorVersion::latest())
        .region(aws_sdk_rds::config::Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_rds::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    aws_sdk_rds::Client::from_conf(conf)
}

/// The instance's status as DescribeDBInstances reports it.
async fn db_status(url: &str, id: &str) -> String {
    let out = rds_client(url)
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .unwrap();
    out.db_instances()[0]
        .db_instance_status()
        .unwrap()
        .to_owned()
}

/// The emulator's ordered event list after `since`: UpdateService desired counts
/// (`desired-count`), RDS stop and start requests (`rds-request`) and the RDS status
/// changes that follow them (`rds-status`). Read with curl: no HTTP client among the
/// dev-dependencies.
fn events(url: &str, since: u64) -> Vec<serde_json::Value> {
    let out = Command::new("curl")
        .args(["-sSf"])
        .arg(format!("{url}/_emulator/ecs-events?since={since}"))
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    body["events"].as_array().unwrap().clone()
}

/// The `seq` of each event of `kind` for which `pick` holds.
fn seqs(
    events: &[serde_json::Value],
    kind: &str,
    pick: impl Fn(&serde_json::Value) -> bool,
) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e["kind"] == kind && pick(e))
        .map(|e| e["seq"].as_u64().unwrap())
        .collect()
}

/// Creates the stack of [`template`] and waits for CREATE_COMPLETE.
async fn create_stack(url: &str) {
    let cfn = aws_sdk_cloudformation::Client::from_conf(config(url));
    cfn.create_stack()
        .stack_name("pause-test")
        .template_body(template())
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stack = cfn
            .describe_stacks()
            .stack_name("pause-test")
            .send()
            .await
            .unwrap();
        let status = stack.stacks()[0]
            .stack_status()
            .unwrap()
            .as_str()
            .to_string();
        if status == "CREATE_COMPLETE" {
            return;
        }
        assert!(
            status.ends_with("IN_PROGRESS") && Instant::now() < deadline,
            "stack ended in {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `verb` on the stack file: exit code, stdout, stderr.
fn cli_output(url: &str, verb: &str, file: &std::path::Path) -> (Option<i32>, String, String) {
    let out = cli()
        .args([verb])
        .arg(file)
        .env("AWS_ENDPOINT_URL", url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn run_cli(url: &str, verb: &str, file: &std::path::Path) -> String {
    let out = cli()
        .args([verb])
        .arg(file)
        .env("AWS_ENDPOINT_URL", url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{verb} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn pause_scales_every_service_to_zero_and_resume_restores_the_stack_file_counts() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(&dir.path().join("emulator.log"));
    let url = &emulator.url;
    let file = dir.path().join("pause-test.yaml");
    std::fs::write(&file, STACK_FILE).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(create_stack(url));
    let deployed = vec![
        ("CoreService".to_string(), 2),
        ("WorkerService".to_string(), 3),
        ("RedisService".to_string(), 1),
        ("LegacyService".to_string(), 1),
    ];
    assert_eq!(rt.block_on(desired(url)), deployed);
    assert_eq!(rt.block_on(db_status(url, DB)), "available");
    assert_eq!(rt.block_on(paused_item(url)), None);
    assert_eq!(rt.block_on(event_source_state(url)), "Enabled");
    let before_pause = events(url, 0)
        .last()
        .map_or(0, |e| e["seq"].as_u64().unwrap());

    let paused = run_cli(url, "pause", &file);
    assert!(paused.contains("pause-test paused:"), "{paused}");
    let zero: Vec<_> = deployed.iter().map(|(id, _)| (id.clone(), 0)).collect();
    assert_eq!(rt.block_on(desired(url)), zero);
    // Stream events wait in the table's stream instead of failing at a stopped
    // api-server; held before the first service was scaled.
    assert_eq!(rt.block_on(event_source_state(url)), "Disabled", "{paused}");
    let held = paused
        .find("stream events")
        .expect("names the stream events");
    assert!(held < paused.find("CoreService").unwrap(), "{paused}");
    assert_eq!(rt.block_on(db_status(url, DB)), "stopped", "{paused}");
    assert!(
        paused.contains(&format!("database instance {DB} stopped")) && paused.contains("7 days"),
        "{paused}"
    );
    // Every service at 0 before the database was asked to stop.
    let pause_events = events(url, before_pause);
    let to_zero = seqs(&pause_events, "desired-count", |e| e["desired"] == 0);
    let stop = seqs(&pause_events, "rds-request", |e| {
        e["action"] == "StopDBInstance"
    });
    assert_eq!((to_zero.len(), stop.len()), (4, 1), "{pause_events:#?}");
    assert!(to_zero.iter().all(|s| *s < stop[0]), "{pause_events:#?}");
    // The scaler is told before the services stop (its ticks then do nothing).
    let since = rt.block_on(paused_item(url)).expect("paused item");
    assert!(since.starts_with("20") && since.ends_with('Z'), "{since}");
    let (mark, first_service) = (
        paused.find("scaler").expect("names the scaler"),
        paused.find("CoreService").unwrap(),
    );
    assert!(mark < first_service, "{paused}");
    let before_resume = pause_events.last().unwrap()["seq"].as_u64().unwrap();

    let resumed = run_cli(url, "resume", &file);
    assert!(resumed.contains("pause-test resumed:"), "{resumed}");
    assert_eq!(rt.block_on(db_status(url, DB)), "available");
    assert_eq!(rt.block_on(paused_item(url)), None, "{resumed}");
    assert_eq!(rt.block_on(event_source_state(url)), "Enabled", "{resumed}");
    assert!(resumed.contains("delivering again"), "{resumed}");
    assert!(
        resumed.contains("LegacyService") && resumed.contains("left as is"),
        "{resumed}"
    );
    // Exactly the stack file's counts; the service it no longer has stays at 0.
    let mut restored = deployed.clone();
    restored[3].1 = 0;
    assert_eq!(rt.block_on(desired(url)), restored);
    // The database started and became available before any service was scaled up.
    let resume_events = events(url, before_resume);
    let start = seqs(&resume_events, "rds-request", |e| {
        e["action"] == "StartDBInstance"
    });
    let available = seqs(&resume_events, "rds-status", |e| e["status"] == "available");
    let up = seqs(&resume_events, "desired-count", |e| e["desired"] != 0);
    assert_eq!(
        (start.len(), available.len(), up.len()),
        (1, 1, 3),
        "{resume_events:#?}"
    );
    assert!(start[0] < available[0], "{resume_events:#?}");
    assert!(up.iter().all(|s| *s > available[0]), "{resume_events:#?}");

    // Paused twice: the second pause finds the database stopped and says so.
    run_cli(url, "pause", &file);
    let again = run_cli(url, "pause", &file);
    assert!(again.contains("was already stopped"), "{again}");
    assert_eq!(rt.block_on(db_status(url, DB)), "stopped");

    // AWS starts a stopped instance again after 7 days; a pause during that start waits
    // for `available` (RDS stops nothing else) and stops it again.
    rt.block_on(async {
        rds_client(url)
            .start_db_instance()
            .db_instance_identifier(DB)
            .send()
            .await
            .unwrap()
    });
    let restarted = run_cli(url, "pause", &file);
    let (starting, stopping) = (
        restarted.find(&format!("{DB} starting")),
        restarted.find(&format!("{DB} stopping")),
    );
    assert!(
        starting.is_some() && stopping.is_some() && starting < stopping,
        "{restarted}"
    );
    assert_eq!(rt.block_on(db_status(url, DB)), "stopped", "{restarted}");
}

/// A database RDS cannot stop (it has a read replica): pause still takes the services
/// to 0, says what it could not do and why, and exits 1.
#[test]
fn pause_says_what_it_could_not_stop_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(&dir.path().join("emulator.log"));
    let url = &emulator.url;
    let file = dir.path().join("pause-test.yaml");
    std::fs::write(&file, STACK_FILE).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        create_stack(url).await;
        rds_client(url)
            .create_db_instance_read_replica()
            .db_instance_identifier("pause-test-replica")
            .source_db_instance_identifier(DB)
            .send()
            .await
            .unwrap();
    });
    let (code, stdout, stderr) = cli_output(url, "pause", &file);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("paused only in part"), "{stdout}");
    assert!(
        stderr.contains("the services are at 0, but the database still runs")
            && stderr.contains(&format!("database instance {DB} cannot be stopped"))
            && stderr.contains("read replica"),
        "{stderr}"
    );
    assert!(rt.block_on(desired(url)).iter().all(|(_, n)| *n == 0));
    assert_eq!(rt.block_on(db_status(url, DB)), "available");
}

#[test]
fn pause_names_a_missing_stack() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(&dir.path().join("emulator.log"));
    let file = dir.path().join("absent.yaml");
    std::fs::write(&file, "name: absent\nregion: us-east-1\n").unwrap();
    let out = cli()
        .arg("pause")
        .arg(&file)
        .env("AWS_ENDPOINT_URL", &emulator.url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stack absent does not exist"));
}

#[test]
fn cost_rejects_an_unknown_region_with_exit_2_and_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("far.yaml");
    std::fs::write(&file, "name: far\nregion: ap-south-2\n").unwrap();
    let out = cli().arg("cost").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("region") && err.contains("us-east-1, eu-west-1"),
        "{err}"
    );
    let out = cli()
        .args(["cost", "stacks/dev.yaml", "--output", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["always_on"].as_f64().unwrap() <= 60.0);
    assert_eq!(v["region"], "us-east-1");
}
