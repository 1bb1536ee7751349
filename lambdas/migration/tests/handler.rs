//! Handler tests with fake ECS, Lambda and CloudWatch Logs, and a local TCP listener
//! standing in for the presigned ResponseURL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airflow_migration::continuation::MARKER;
use airflow_migration::ports::{
    ContainerState, LaunchResult, LogTail, PortError, SelfInvoker, TaskLaunch, TaskRunner,
    TaskState,
};
use airflow_migration::token::request_token;
use airflow_migration::{invoke, Invocation, InvokeError, Ports, Settings};
use async_trait::async_trait;
use cfn_custom_resource::origin::fake::FakeStacks;
use cfn_custom_resource::testing::{CaptureServer, CapturedRequest};
use cfn_custom_resource::{stable_physical_id, ResponseSender, RetryPolicy, MAX_RESPONSE_BYTES};
use serde_json::{json, Value};

const STACK_ID: &str = "arn:aws:cloudformation:eu-west-1:123456789012:stack/dev/abc";
const FUNCTION_ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:dev-migration";
const CLUSTER: &str = "dev-cluster";

/// ECS as the handler sees it: RunTask is idempotent per client token (as ECS's is),
/// and the task runs until `stop` is set, then reports `exit_code`.
struct FakeEcs {
    launches: Mutex<Vec<TaskLaunch>>,
    task_by_token: Mutex<HashMap<String, String>>,
    describes: AtomicUsize,
    stopped: AtomicBool,
    exit_code: Option<i32>,
    stopped_reason: Option<String>,
    container_reason: Option<String>,
    refusal: Option<Vec<String>>,
    panic_on_run: bool,
}

impl FakeEcs {
    fn finishing_with(exit_code: Option<i32>) -> Self {
        Self {
            launches: Mutex::default(),
            task_by_token: Mutex::default(),
            describes: AtomicUsize::new(0),
            stopped: AtomicBool::new(true),
            exit_code,
            stopped_reason: Some("Essential container in task exited".into()),
            container_reason: None,
            refusal: None,
            panic_on_run: false,
        }
    }

    fn never_stopping() -> Self {
        let ecs = Self::finishing_with(Some(0));
        ecs.stopped.store(false, Ordering::SeqCst);
        ecs
    }

    fn launches(&self) -> Vec<TaskLaunch> {
        self.launches.lock().unwrap().clone()
    }

    fn tasks_started(&self) -> usize {
        self.task_by_token.lock().unwrap().len()
    }

    fn calls(&self) -> usize {
        self.launches().len() + self.describes.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl TaskRunner for FakeEcs {
    async fn run_task(&self, launch: &TaskLaunch) -> Result<LaunchResult, PortError> {
        assert!(!self.panic_on_run, "simulated bug in the handler");
        self.launches.lock().unwrap().push(launch.clone());
        if let Some(reasons) = &self.refusal {
            return Ok(LaunchResult::Refused {
                reasons: reasons.clone(),
            });
        }
        let mut tasks = self.task_by_token.lock().unwrap();
        let next = tasks.len() + 1;
        let task_arn = tasks
            .entry(launch.token.clone())
            .or_insert_with(|| {
                format!("arn:aws:ecs:eu-west-1:123456789012:task/{CLUSTER}/task{next:04}")
            })
            .clone();
        Ok(LaunchResult::Started { task_arn })
    }

    async fn describe_task(
        &self,
        cluster: &str,
        task_arn: &str,
    ) -> Result<Option<TaskState>, PortError> {
        assert_eq!(cluster, CLUSTER);
        self.describes.fetch_add(1, Ordering::SeqCst);
        let stopped = self.stopped.load(Ordering::SeqCst);
        Ok(Some(TaskState {
            task_arn: task_arn.to_owned(),
            last_status: if stopped { "STOPPED" } else { "RUNNING" }.into(),
            stopped_reason: self.stopped_reason.clone().filter(|_| stopped),
            containers: vec![
                ContainerState {
                    name: "sidecar".into(),
                    exit_code: Some(0),
                    reason: None,
                },
                ContainerState {
                    name: "migrate".into(),
                    exit_code: self.exit_code.filter(|_| stopped),
                    reason: self.container_reason.clone().filter(|_| stopped),
                },
            ],
        }))
    }
}

#[derive(Default)]
struct FakeLambda {
    invocations: Mutex<Vec<(String, Vec<u8>)>>,
    fail: bool,
}

impl FakeLambda {
    fn payloads(&self) -> Vec<Value> {
        self.invocations
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| serde_json::from_slice(body).unwrap())
            .collect()
    }
}

#[async_trait]
impl SelfInvoker for FakeLambda {
    async fn invoke_async(&self, function_arn: &str, payload: Vec<u8>) -> Result<(), PortError> {
        if self.fail {
            return Err(PortError("Invoke: AccessDeniedException".into()));
        }
        self.invocations
            .lock()
            .unwrap()
            .push((function_arn.to_owned(), payload));
        Ok(())
    }
}

#[derive(Default)]
struct FakeLogs {
    lines: Vec<String>,
    reads: Mutex<Vec<(String, String, i32)>>,
}

#[async_trait]
impl LogTail for FakeLogs {
    async fn last_lines(
        &self,
        log_group: &str,
        log_stream: &str,
        limit: i32,
    ) -> Result<Vec<String>, PortError> {
        self.reads
            .lock()
            .unwrap()
            .push((log_group.into(), log_stream.into(), limit));
        let skip = self.lines.len().saturating_sub(limit as usize);
        Ok(self.lines[skip..].to_vec())
    }
}

struct Harness {
    server: CaptureServer,
    ecs: Arc<FakeEcs>,
    lambda: Arc<FakeLambda>,
    logs: Arc<FakeLogs>,
    /// CloudFormation: by default it is creating the Migration resource of STACK_ID.
    stacks: Arc<FakeStacks>,
    settings: Settings,
}

impl Harness {
    fn new(ecs: FakeEcs) -> Self {
        Self::with(ecs, FakeLambda::default(), FakeLogs::default())
    }

    fn with(ecs: FakeEcs, lambda: FakeLambda, logs: FakeLogs) -> Self {
        Self {
            server: CaptureServer::start(vec![]),
            ecs: Arc::new(ecs),
            lambda: Arc::new(lambda),
            logs: Arc::new(logs),
            stacks: Arc::new(FakeStacks::with(
                STACK_ID,
                "Migration",
                "Custom::AirflowMigration",
                "CREATE_IN_PROGRESS",
            )),
            settings: Settings {
                poll_interval: Duration::from_millis(20),
                handover_margin: Duration::from_millis(400),
                answer_margin: Duration::from_millis(100),
                max_hops: 20,
                log_tail_lines: 50,
                max_describe_errors: 3,
            },
        }
    }

    fn event(&self, request_type: &str) -> Value {
        let mut event = json!({
            "RequestType": request_type,
            "ResponseURL": self.server.url("/cfn-response?X-Amz-Signature=abc"),
            "StackId": STACK_ID,
            "RequestId": "11111111-2222-3333-4444-555555555555",
            "ResourceType": "Custom::AirflowMigration",
            "LogicalResourceId": "Migration",
            "ResourceProperties": properties(),
        });
        if request_type != "Create" {
            event["PhysicalResourceId"] = json!("the-id-cloudformation-holds");
        }
        if request_type == "Update" {
            event["OldResourceProperties"] = properties();
        }
        event
    }

    /// One invocation with `time_left` before the Lambda deadline.
    async fn invoke(&self, payload: Value, time_left: Duration) -> Result<Value, InvokeError> {
        let ports = Ports {
            ecs: self.ecs.clone(),
            lambda: self.lambda.clone(),
            logs: self.logs.clone(),
            stacks: self.stacks.clone(),
        };
        let invocation = Invocation {
            deadline: SystemTime::now() + time_left,
            function_arn: FUNCTION_ARN.into(),
        };
        let sender = ResponseSender::new(RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
            attempt_timeout: Duration::from_secs(2),
        })
        .unwrap();
        invoke(payload, &invocation, &ports, &self.settings, &sender).await
    }

    /// The single answer CloudFormation got, after checking it was the only one and
    /// was PUT the way S3's presigned URL needs.
    fn only_answer(&self) -> Value {
        let requests = self.server.wait_for(1, Duration::from_secs(5));
        // Give a stray second answer the chance to arrive before counting.
        std::thread::sleep(Duration::from_millis(100));
        let requests = if requests.len() == 1 {
            self.server.requests()
        } else {
            requests
        };
        assert_eq!(
            requests.len(),
            1,
            "CloudFormation must be answered exactly once"
        );
        assert_put_shape(&requests[0]);
        requests[0].json()
    }

    fn answers(&self) -> Vec<CapturedRequest> {
        self.server.requests()
    }
}

fn properties() -> Value {
    json!({
        "ServiceToken": FUNCTION_ARN,
        "Cluster": CLUSTER,
        "TaskDefinition": "arn:aws:ecs:eu-west-1:123456789012:task-definition/dev-migrate:3",
        "ContainerName": "migrate",
        "Subnets": ["subnet-a", "subnet-b"],
        "SecurityGroups": ["sg-migrate"],
        "AssignPublicIp": "DISABLED",
        "LogGroupName": "/airflow-stack/dev/migrate",
        "LogStreamPrefix": "migrate",
        "AirflowVersion": "3.1.0",
        "Image": "apache/airflow:3.1.0",
        "DatabaseHost": "dev-db.cluster-xyz.eu-west-1.rds.amazonaws.com",
        "MaxWaitSeconds": "3300"
    })
}

fn assert_put_shape(request: &CapturedRequest) {
    assert_eq!(request.method, "PUT");
    assert_eq!(request.path, "/cfn-response?X-Amz-Signature=abc");
    assert_eq!(request.header("content-type"), Some(""));
    assert!(
        request.body.len() <= MAX_RESPONSE_BYTES,
        "{}",
        request.body.len()
    );
}

fn epoch_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

const PLENTY: Duration = Duration::from_secs(30);

#[tokio::test]
async fn successful_migration_answers_success_once() {
    let h = Harness::new(FakeEcs::finishing_with(Some(0)));
    let summary = h.invoke(h.event("Create"), PLENTY).await.unwrap();
    assert_eq!(summary["Status"], "SUCCESS");

    let body = h.only_answer();
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(
        body["PhysicalResourceId"],
        stable_physical_id(STACK_ID, "Migration")
    );
    assert_eq!(body["StackId"], STACK_ID);
    assert_eq!(body["RequestId"], "11111111-2222-3333-4444-555555555555");
    assert_eq!(body["LogicalResourceId"], "Migration");

    let launches = h.ecs.launches();
    assert_eq!(launches.len(), 1);
    let launch = &launches[0];
    assert_eq!(launch.cluster, CLUSTER);
    assert_eq!(
        launch.task_definition,
        "arn:aws:ecs:eu-west-1:123456789012:task-definition/dev-migrate:3"
    );
    assert_eq!(launch.subnets, vec!["subnet-a", "subnet-b"]);
    assert_eq!(launch.security_groups, vec!["sg-migrate"]);
    assert!(!launch.assign_public_ip);
    assert_eq!(
        launch.token,
        request_token(STACK_ID, "11111111-2222-3333-4444-555555555555")
    );
    assert!(h.lambda.payloads().is_empty());
    assert!(h.logs.reads.lock().unwrap().is_empty());
}

#[tokio::test]
async fn waits_while_the_task_runs() {
    let h = Harness::new(FakeEcs::never_stopping());
    let ecs = h.ecs.clone();
    let stopper = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        ecs.stopped.store(true, Ordering::SeqCst);
    });
    h.invoke(h.event("Create"), PLENTY).await.unwrap();
    stopper.await.unwrap();
    assert_eq!(h.only_answer()["Status"], "SUCCESS");
    assert!(h.ecs.describes.load(Ordering::SeqCst) > 2);
}

#[tokio::test]
async fn failed_migration_reports_exit_code_reasons_and_log_tail() {
    let mut ecs = FakeEcs::finishing_with(Some(1));
    ecs.container_reason = Some("OutOfMemoryError: Container killed".into());
    let logs = FakeLogs {
        lines: vec![
            "INFO  [alembic.runtime.migration] Running upgrade".into(),
            "sqlalchemy.exc.OperationalError: could not connect to server".into(),
        ],
        ..FakeLogs::default()
    };
    let h = Harness::with(ecs, FakeLambda::default(), logs);
    h.invoke(h.event("Create"), PLENTY).await.unwrap();

    let body = h.only_answer();
    assert_eq!(body["Status"], "FAILED");
    assert_eq!(
        body["PhysicalResourceId"],
        stable_physical_id(STACK_ID, "Migration")
    );
    let reason = body["Reason"].as_str().unwrap();
    assert!(
        reason.contains("container migrate exited with code 1"),
        "{reason}"
    );
    assert!(
        reason.contains("task stopped: Essential container in task exited"),
        "{reason}"
    );
    assert!(
        reason.contains("container: OutOfMemoryError: Container killed"),
        "{reason}"
    );
    assert!(
        reason.contains("log group /airflow-stack/dev/migrate stream migrate/migrate/task0001"),
        "{reason}"
    );
    assert!(reason.ends_with(
        "Running upgrade\nsqlalchemy.exc.OperationalError: could not connect to server"
    ));
    let reads = h.logs.reads.lock().unwrap().clone();
    assert_eq!(
        reads,
        vec![(
            "/airflow-stack/dev/migrate".into(),
            "migrate/migrate/task0001".into(),
            50
        )]
    );
}

#[tokio::test]
async fn a_huge_log_is_cut_to_its_newest_lines_and_the_response_fits() {
    // Quotes and non-ASCII grow when JSON-escaped and encoded; the bound must still hold.
    let lines: Vec<String> = (0..5000)
        .map(|i| format!("line {i:04} \"{}\"\t\u{1b}[0m", "é\\".repeat(3000)))
        .collect();
    let logs = FakeLogs {
        lines,
        ..FakeLogs::default()
    };
    let h = Harness::with(
        FakeEcs::finishing_with(Some(2)),
        FakeLambda::default(),
        logs,
    );
    h.invoke(h.event("Create"), PLENTY).await.unwrap();

    let request = h.server.wait_for(1, Duration::from_secs(5)).remove(0);
    assert!(
        request.body.len() < MAX_RESPONSE_BYTES,
        "{}",
        request.body.len()
    );
    let body = request.json();
    assert_eq!(body["Status"], "FAILED");
    let reason = body["Reason"].as_str().unwrap();
    assert!(reason.contains("exited with code 2"));
    assert!(reason.contains("line 4999"), "the newest line is kept");
    assert!(!reason.contains("line 4990"), "old lines are dropped");
    assert!(!reason.contains('\u{1b}'), "control characters are removed");
}

#[tokio::test]
async fn a_container_that_never_ran_is_a_failure_with_the_stop_reason() {
    let mut ecs = FakeEcs::finishing_with(None);
    ecs.stopped_reason = Some("ResourceInitializationError: unable to pull secrets".into());
    let h = Harness::new(ecs);
    h.invoke(h.event("Create"), PLENTY).await.unwrap();
    let reason = h.only_answer()["Reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("has no exit code"), "{reason}");
    assert!(reason.contains("ResourceInitializationError"), "{reason}");
}

#[tokio::test]
async fn run_task_failures_are_reported() {
    let mut ecs = FakeEcs::finishing_with(Some(0));
    ecs.refusal = Some(vec!["arn:subnet-a: RESOURCE:ENI (no free addresses)".into()]);
    let h = Harness::new(ecs);
    h.invoke(h.event("Create"), PLENTY).await.unwrap();
    let body = h.only_answer();
    assert_eq!(body["Status"], "FAILED");
    assert_eq!(
        body["Reason"],
        "ECS refused to start the migration task: arn:subnet-a: RESOURCE:ENI (no free addresses)"
    );
    assert_eq!(h.ecs.describes.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_wait_is_handed_over_across_invocations_and_answered_once() {
    let h = Harness::new(FakeEcs::never_stopping());
    let event = h.event("Create");
    // 600 ms left and a 400 ms hand-over margin: the first hop hands over after ~200 ms.
    let short = Duration::from_millis(600);
    let before = epoch_millis();

    let first = h.invoke(event.clone(), short).await.unwrap();
    assert_eq!(first["HandedOver"], true);
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        h.answers().is_empty(),
        "a hand-over must not answer CloudFormation"
    );

    let payloads = h.lambda.payloads();
    assert_eq!(payloads.len(), 1);
    assert_eq!(h.lambda.invocations.lock().unwrap()[0].0, FUNCTION_ARN);
    let handed = &payloads[0];
    assert_eq!(handed.as_object().unwrap().len(), 1, "only the marker key");
    assert!(handed.get("RequestType").is_none());
    let state = &handed[MARKER];
    assert_eq!(
        state["Event"], event,
        "the original event travels untouched"
    );
    assert_eq!(
        state["TaskArn"],
        format!("arn:aws:ecs:eu-west-1:123456789012:task/{CLUSTER}/task0001")
    );
    assert_eq!(state["Hop"], 1);
    let started = state["StartedAtEpochMillis"].as_u64().unwrap();
    assert!(started >= before && started <= epoch_millis());

    // Second hop: still running, so it hands over again, carrying the first start time.
    let second = h.invoke(payloads[0].clone(), short).await.unwrap();
    assert_eq!(second["Hop"], 2);
    let payloads = h.lambda.payloads();
    assert_eq!(payloads.len(), 2);
    assert_eq!(payloads[1][MARKER]["Hop"], 2);
    assert_eq!(payloads[1][MARKER]["StartedAtEpochMillis"], started);
    assert!(h.answers().is_empty());

    // Third hop: the task has stopped; this one answers.
    h.ecs.stopped.store(true, Ordering::SeqCst);
    let third = h.invoke(payloads[1].clone(), short).await.unwrap();
    assert_eq!(third["Status"], "SUCCESS");
    let body = h.only_answer();
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(
        body["PhysicalResourceId"],
        stable_physical_id(STACK_ID, "Migration")
    );
    assert_eq!(
        h.ecs.launches().len(),
        1,
        "continuations never start a task"
    );
    assert_eq!(h.lambda.payloads().len(), 2);
}

#[tokio::test]
async fn the_overall_limit_fails_without_stopping_anything() {
    let logs = FakeLogs {
        lines: vec!["still upgrading table task_instance".into()],
        ..FakeLogs::default()
    };
    let h = Harness::with(FakeEcs::never_stopping(), FakeLambda::default(), logs);
    let mut event = h.event("Create");
    event["ResourceProperties"]["MaxWaitSeconds"] = json!("1");
    let started = std::time::Instant::now();
    h.invoke(event, PLENTY).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));

    let body = h.only_answer();
    assert_eq!(body["Status"], "FAILED");
    let reason = body["Reason"].as_str().unwrap();
    assert!(
        reason.contains("did not finish within MaxWaitSeconds=1"),
        "{reason}"
    );
    assert!(
        reason.contains("left running (nothing was stopped)"),
        "{reason}"
    );
    assert!(
        reason.ends_with("still upgrading table task_instance"),
        "{reason}"
    );
    assert!(h.lambda.payloads().is_empty());
}

#[tokio::test]
async fn the_overall_limit_counts_from_the_first_start_across_hops() {
    let h = Harness::new(FakeEcs::never_stopping());
    let continuation = json!({MARKER: {
        "Event": h.event("Create"),
        "TaskArn": format!("arn:aws:ecs:eu-west-1:123456789012:task/{CLUSTER}/old"),
        "StartedAtEpochMillis": epoch_millis() - 3301 * 1000,
        "Hop": 4,
    }});
    h.invoke(continuation, PLENTY).await.unwrap();
    let body = h.only_answer();
    assert_eq!(body["Status"], "FAILED");
    assert!(body["Reason"]
        .as_str()
        .unwrap()
        .contains("task/dev-cluster/old did not finish within MaxWaitSeconds=3300"));
    assert!(h.ecs.launches().is_empty());
}

#[tokio::test]
async fn a_redelivered_event_does_not_start_a_second_task() {
    let h = Harness::new(FakeEcs::finishing_with(Some(0)));
    let event = h.event("Create");
    h.invoke(event.clone(), PLENTY).await.unwrap();
    h.invoke(event, PLENTY).await.unwrap();

    assert_eq!(h.ecs.tasks_started(), 1, "one task for one request");
    let launches = h.ecs.launches();
    assert_eq!(launches[0].token, launches[1].token);
    let answers = h.server.wait_for(2, Duration::from_secs(5));
    assert!(answers.iter().all(|a| a.json()["Status"] == "SUCCESS"));

    // A new request (e.g. the rollback Update) is a new token and a new task.
    let mut update = h.event("Update");
    update["RequestId"] = json!("rollback-request");
    update["OldResourceProperties"]["Image"] = json!("apache/airflow:3.0.6");
    h.invoke(update, PLENTY).await.unwrap();
    assert_eq!(h.ecs.tasks_started(), 2);
}

#[tokio::test]
async fn update_without_a_relevant_change_runs_no_task() {
    let h = Harness::new(FakeEcs::finishing_with(Some(0)));
    let mut event = h.event("Update");
    event["ResourceProperties"]["Subnets"] = json!(["subnet-c"]);
    event["ResourceProperties"]["MaxWaitSeconds"] = json!("1800");
    h.invoke(event, PLENTY).await.unwrap();
    let body = h.only_answer();
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(body["PhysicalResourceId"], "the-id-cloudformation-holds");
    assert_eq!(h.ecs.calls(), 0);
}

#[tokio::test]
async fn update_with_a_new_image_migrates_and_keeps_the_physical_id() {
    let h = Harness::new(FakeEcs::finishing_with(Some(0)));
    for trigger in ["Image", "AirflowVersion", "DatabaseHost", "TaskDefinition"] {
        let mut event = h.event("Update");
        event["RequestId"] = json!(format!("update-{trigger}"));
        // An older version for AirflowVersion: the versions are compared (a lower new one
        // is a rollback and runs nothing).
        let previous = if trigger == "AirflowVersion" {
            "3.0.6"
        } else {
            "previous"
        };
        event["OldResourceProperties"][trigger] = json!(previous);
        h.invoke(event, PLENTY).await.unwrap();
    }
    assert_eq!(h.ecs.tasks_started(), 4);
    let answers = h.server.wait_for(4, Duration::from_secs(5));
    for answer in answers {
        assert_eq!(answer.json()["Status"], "SUCCESS");
        assert_eq!(
            answer.json()["PhysicalResourceId"],
            "the-id-cloudformation-holds"
        );
    }
}

/// An Update from `old` to `new` AirflowVersion (the image follows the version).
fn version_update(h: &Harness, old: &str, new: &str) -> Value {
    let mut event = h.event("Update");
    event["RequestId"] = json!(format!("update-{old}-to-{new}"));
    for (side, version) in [("OldResourceProperties", old), ("ResourceProperties", new)] {
        event[side]["AirflowVersion"] = json!(version);
        event[side]["Image"] = json!(format!("apache/airflow:{version}"));
    }
    event
}

#[tokio::test]
async fn the_rollback_of_an_upgrade_runs_no_task_and_keeps_the_physical_id() {
    // CloudFormation rolls a failed 3.10.0 upgrade back with an Update to 3.9.9; an
    // older `db migrate` would fail on the newer schema and fail the rollback.
    let h = Harness::new(FakeEcs::finishing_with(Some(1)));
    let summary = h
        .invoke(version_update(&h, "3.10.0", "3.9.9"), PLENTY)
        .await
        .unwrap();
    assert_eq!(summary["Status"], "SUCCESS");
    let body = h.only_answer();
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(body["PhysicalResourceId"], "the-id-cloudformation-holds");
    assert!(h.ecs.launches().is_empty(), "no RunTask on the way down");
    assert_eq!(h.ecs.calls(), 0);
    assert!(h.lambda.payloads().is_empty());
}

#[tokio::test]
async fn an_upgrade_and_an_equal_version_migrate() {
    let h = Harness::new(FakeEcs::finishing_with(Some(0)));
    h.invoke(version_update(&h, "3.9.9", "3.10.0"), PLENTY)
        .await
        .unwrap();
    assert_eq!(h.ecs.tasks_started(), 1, "an upgrade migrates");
    // Same version, new task definition: migrate is idempotent, so it still runs.
    let mut event = version_update(&h, "3.3.2", "3.3.2");
    event["ResourceProperties"]["TaskDefinition"] = json!("arn:td:4");
    h.invoke(event, PLENTY).await.unwrap();
    assert_eq!(h.ecs.tasks_started(), 2, "an equal version migrates");
    let answers = h.server.wait_for(2, Duration::from_secs(5));
    assert!(answers.iter().all(|a| a.json()["Status"] == "SUCCESS"));
    assert!(answers
        .iter()
        .all(|a| a.json()["PhysicalResourceId"] == "the-id-cloudformation-holds"));
}

#[tokio::test]
async fn an_unparsable_new_version_is_failed_with_the_form_expected() {
    let h = Harness::new(FakeEcs::finishing_with(Some(0)));
    h.invoke(version_update(&h, "3.3.2", "3.3.3rc1"), PLENTY)
        .await
        .unwrap();
    let body = h.only_answer();
    assert_eq!(body["Status"], "FAILED");
    assert_eq!(
        body["Reason"],
        "AirflowVersion \"3.3.3rc1\" is not a release version (decimal numbers separated by \
         dots, such as 3.3.2); the migration compares versions to skip a rollback's downgrade \
         and cannot order this one"
    );
    assert_eq!(body["PhysicalResourceId"], "the-id-cloudformation-holds");
    assert_eq!(h.ecs.calls(), 0);
}

#[tokio::test]
async fn the_rollback_from_an_unparsable_version_migrates() {
    // The forward Update to "3.3.3rc1" failed before any task; its rollback must not fail.
    let h = Harness::new(FakeEcs::finishing_with(Some(0)));
    h.invoke(version_update(&h, "3.3.3rc1", "3.3.2"), PLENTY)
        .await
        .unwrap();
    assert_eq!(h.only_answer()["Status"], "SUCCESS");
    assert_eq!(h.ecs.tasks_started(), 1);
}

#[tokio::test]
async fn delete_succeeds_without_any_call() {
    let h = Harness::new(FakeEcs::finishing_with(Some(1)));
    h.invoke(h.event("Delete"), PLENTY).await.unwrap();
    let body = h.only_answer();
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(body["PhysicalResourceId"], "the-id-cloudformation-holds");
    assert_eq!(h.ecs.calls(), 0);
    assert!(h.lambda.payloads().is_empty());
    assert!(h.logs.reads.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_panic_is_answered_failed() {
    let mut ecs = FakeEcs::finishing_with(Some(0));
    ecs.panic_on_run = true;
    let h = Harness::new(ecs);
    h.invoke(h.event("Create"), PLENTY).await.unwrap();
    let body = h.only_answer();
    assert_eq!(body["Status"], "FAILED");
    assert_eq!(
        body["Reason"],
        "internal error in the migration custom resource"
    );
}

#[tokio::test]
async fn a_failed_hand_over_is_answered_failed() {
    let lambda = FakeLambda {
        fail: true,
        ..FakeLambda::default()
    };
    let h = Harness::with(FakeEcs::never_stopping(), lambda, FakeLogs::default());
    h.invoke(h.event("Create"), Duration::from_millis(600))
        .await
        .unwrap();
    let body = h.only_answer();
    assert_eq!(body["Status"], "FAILED");
    let reason = body["Reason"].as_str().unwrap();
    assert!(reason.contains("could not hand the wait over"), "{reason}");
    assert!(reason.contains("AccessDeniedException"), "{reason}");
}

#[tokio::test]
async fn invalid_properties_are_failed_by_name() {
    let h = Harness::new(FakeEcs::finishing_with(Some(0)));
    let mut event = h.event("Create");
    event["ResourceProperties"]["AssignPublicIp"] = json!("MAYBE");
    h.invoke(event, PLENTY).await.unwrap();
    let body = h.only_answer();
    assert_eq!(body["Status"], "FAILED");
    assert!(body["Reason"].as_str().unwrap().contains("AssignPublicIp"));
    assert!(h.ecs.launches().is_empty());
}

#[tokio::test]
async fn malformed_events_and_continuations_are_answered() {
    let h = Harness::new(FakeEcs::finishing_with(Some(0)));
    let mut event = h.event("Create");
    event["RequestType"] = json!("Explode");
    h.invoke(event, PLENTY).await.unwrap();
    let broken = json!({MARKER: {"Event": h.event("Create"), "Hop": "one"}});
    h.invoke(broken, PLENTY).await.unwrap();

    let answers = h.server.wait_for(2, Duration::from_secs(5));
    assert_eq!(answers.len(), 2);
    assert!(answers.iter().all(|a| a.json()["Status"] == "FAILED"));
    let reasons: Vec<String> = answers
        .iter()
        .map(|a| a.json()["Reason"].as_str().unwrap().to_owned())
        .collect();
    assert!(reasons.iter().any(|r| r.contains("RequestType")));
    assert!(reasons
        .iter()
        .any(|r| r.contains("unreadable continuation")));
    assert_eq!(h.ecs.calls(), 0);
}

#[tokio::test]
async fn no_response_url_is_a_lambda_error() {
    let h = Harness::new(FakeEcs::finishing_with(Some(0)));
    let mut event = h.event("Create");
    event.as_object_mut().unwrap().remove("ResponseURL");
    let error = h.invoke(event, PLENTY).await.unwrap_err();
    assert!(matches!(error, InvokeError::NoResponseUrl));
    assert_eq!(h.ecs.calls(), 0);
}

#[tokio::test]
async fn too_many_hand_overs_fail_with_a_clear_reason() {
    let h = Harness::new(FakeEcs::never_stopping());
    let continuation = json!({MARKER: {
        "Event": h.event("Create"),
        "TaskArn": format!("arn:aws:ecs:eu-west-1:123456789012:task/{CLUSTER}/t"),
        "StartedAtEpochMillis": epoch_millis(),
        "Hop": 21,
    }});
    h.invoke(continuation, PLENTY).await.unwrap();
    let body = h.only_answer();
    assert_eq!(body["Status"], "FAILED");
    assert!(body["Reason"]
        .as_str()
        .unwrap()
        .starts_with("gave up after 20 hand-overs"));
    assert_eq!(h.ecs.calls(), 0);
}

/// An event CloudFormation did not send: answered FAILED, and no task is started,
/// watched or handed over.
async fn assert_refused(h: &Harness, payload: Value, reason_part: &str) {
    h.invoke(payload, PLENTY).await.unwrap();
    let body = h.only_answer();
    assert_eq!(body["Status"], "FAILED", "{body}");
    let reason = body["Reason"].as_str().unwrap();
    assert!(reason.starts_with("request refused: "), "{reason}");
    assert!(reason.contains(reason_part), "{reason}");
    assert_eq!(h.ecs.calls(), 0, "no RunTask or DescribeTasks");
    assert!(h.lambda.payloads().is_empty(), "no hand-over");
}

#[tokio::test]
async fn a_request_for_a_settled_resource_is_refused() {
    let mut h = Harness::new(FakeEcs::finishing_with(Some(0)));
    h.stacks = Arc::new(FakeStacks::with(
        STACK_ID,
        "Migration",
        "Custom::AirflowMigration",
        "UPDATE_COMPLETE",
    ));
    let event = h.event("Update");
    assert_refused(&h, event, "Migration is UPDATE_COMPLETE").await;
}

#[tokio::test]
async fn a_resource_missing_from_the_stack_or_of_another_type_is_refused() {
    let mut h = Harness::new(FakeEcs::finishing_with(Some(0)));
    h.stacks = Arc::new(FakeStacks::default());
    let event = h.event("Create");
    assert_refused(&h, event, "has no resource Migration").await;

    let mut h = Harness::new(FakeEcs::finishing_with(Some(0)));
    h.stacks = Arc::new(FakeStacks::with(
        STACK_ID,
        "Migration",
        "Custom::AirflowSecrets",
        "CREATE_IN_PROGRESS",
    ));
    let event = h.event("Create");
    assert_refused(&h, event, "is a Custom::AirflowSecrets").await;
}

#[tokio::test]
async fn a_stack_of_another_region_is_refused() {
    let h = Harness::new(FakeEcs::finishing_with(Some(0)));
    let mut event = h.event("Create");
    event["StackId"] = json!("arn:aws:cloudformation:us-east-1:123456789012:stack/dev/abc");
    assert_refused(&h, event, "not in this function's account").await;
    assert_eq!(h.stacks.call_count(), 0);
}

#[tokio::test]
async fn a_forged_continuation_is_refused_too() {
    // A continuation is an event like any other: once the resource has settled, a
    // payload that claims to continue its wait is not from this function.
    let mut h = Harness::new(FakeEcs::never_stopping());
    h.stacks = Arc::new(FakeStacks::with(
        STACK_ID,
        "Migration",
        "Custom::AirflowMigration",
        "CREATE_COMPLETE",
    ));
    let continuation = json!({MARKER: {
        "Event": h.event("Create"),
        "TaskArn": format!("arn:aws:ecs:eu-west-1:123456789012:task/{CLUSTER}/task0001"),
        "StartedAtEpochMillis": epoch_millis(),
        "Hop": 1
    }});
    assert_refused(&h, continuation, "Migration is CREATE_COMPLETE").await;
}

#[tokio::test]
async fn every_hop_of_a_genuine_wait_is_confirmed() {
    let h = Harness::new(FakeEcs::never_stopping());
    let short = Duration::from_millis(600);
    h.invoke(h.event("Create"), short).await.unwrap();
    let payloads = h.lambda.payloads();
    h.ecs.stopped.store(true, Ordering::SeqCst);
    h.invoke(payloads[0].clone(), short).await.unwrap();
    assert_eq!(h.only_answer()["Status"], "SUCCESS");
    assert_eq!(h.stacks.call_count(), 2, "the first invocation and the hop");
}
