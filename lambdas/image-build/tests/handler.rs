//! Handler tests with fake ECR, CodeBuild, Lambda and CloudWatch Logs, and a local TCP
//! listener standing in for the presigned ResponseURL.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use airflow_image_build::continuation::MARKER;
use airflow_image_build::ports::{
    BuildLaunch, BuildState, BuildStatus, Builds, ImageLookup, LogTail, PhaseState, PortError,
    Registry, SelfInvoker,
};
use airflow_image_build::token::request_token;
use airflow_image_build::{invoke, Invocation, InvokeError, Ports, Settings};
use async_trait::async_trait;
use cfn_custom_resource::origin::fake::FakeStacks;
use cfn_custom_resource::testing::{CaptureServer, CapturedRequest};
use cfn_custom_resource::{stable_physical_id, ResponseSender, RetryPolicy, MAX_RESPONSE_BYTES};
use serde_json::{json, Value};

const STACK_ID: &str = "arn:aws:cloudformation:eu-west-1:123456789012:stack/dev/abc";
const FUNCTION_ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:dev-image-build";
const PROJECT: &str = "airflow-dev-image";
const REPOSITORY: &str = "airflow-dev";
const TAG: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const SOURCE: &str = "airflow-dev-assets/image/9f86d081.zip";
const REPOSITORY_URI: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/airflow-dev";
const REQUEST_ID: &str = "11111111-2222-3333-4444-555555555555";

/// ECR: the images it holds, as (repository, tag).
#[derive(Default)]
struct FakeRegistry {
    images: Mutex<BTreeSet<(String, String)>>,
    lookups: AtomicUsize,
}

impl FakeRegistry {
    fn holding(tag: &str) -> Self {
        let registry = Self::default();
        registry.push(tag);
        registry
    }

    fn push(&self, tag: &str) {
        self.images
            .lock()
            .unwrap()
            .insert((REPOSITORY.into(), tag.into()));
    }
}

#[async_trait]
impl Registry for FakeRegistry {
    async fn find_image(&self, repository: &str, tag: &str) -> Result<ImageLookup, PortError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        if repository != REPOSITORY {
            return Err(PortError(
                "DescribeImages: RepositoryNotFoundException".into(),
            ));
        }
        let held = self
            .images
            .lock()
            .unwrap()
            .contains(&(repository.into(), tag.into()));
        Ok(if held {
            ImageLookup::Present
        } else {
            ImageLookup::Absent
        })
    }

    async fn repository_uri(&self, repository: &str) -> Result<String, PortError> {
        assert_eq!(repository, REPOSITORY);
        Ok(REPOSITORY_URI.into())
    }
}

/// How a fake build ends.
#[derive(Clone)]
enum Ending {
    /// SUCCEEDED; `push` says whether the tag reaches ECR (what the buildspec does).
    Success { push: bool },
    /// The status, the failed phase and its context.
    Failure {
        status: &'static str,
        phase: &'static str,
        context: &'static str,
    },
}

/// CodeBuild: StartBuild is idempotent per token (as CodeBuild's is for five minutes);
/// a build stays IN_PROGRESS for `polls_until_done` BatchGetBuilds calls, then ends.
struct FakeBuilds {
    registry: Arc<FakeRegistry>,
    launches: Mutex<Vec<BuildLaunch>>,
    build_by_token: Mutex<HashMap<String, String>>,
    polls: AtomicUsize,
    polls_until_done: usize,
    ending: Ending,
    start_error: Option<String>,
}

impl FakeBuilds {
    fn new(registry: Arc<FakeRegistry>, polls_until_done: usize, ending: Ending) -> Self {
        Self {
            registry,
            launches: Mutex::default(),
            build_by_token: Mutex::default(),
            polls: AtomicUsize::new(0),
            polls_until_done,
            ending,
            start_error: None,
        }
    }

    fn launches(&self) -> Vec<BuildLaunch> {
        self.launches.lock().unwrap().clone()
    }

    fn builds_started(&self) -> usize {
        self.build_by_token.lock().unwrap().len()
    }
}

fn phase(phase_type: &str, status: Option<&str>, contexts: &[&str]) -> PhaseState {
    PhaseState {
        phase_type: phase_type.into(),
        status: status.map(str::to_owned),
        contexts: contexts.iter().map(|c| c.to_string()).collect(),
    }
}

#[async_trait]
impl Builds for FakeBuilds {
    async fn start_build(&self, launch: &BuildLaunch) -> Result<String, PortError> {
        if let Some(error) = &self.start_error {
            return Err(PortError(error.clone()));
        }
        self.launches.lock().unwrap().push(launch.clone());
        let mut builds = self.build_by_token.lock().unwrap();
        let next = builds.len() + 1;
        Ok(builds
            .entry(launch.idempotency_token.clone())
            .or_insert_with(|| format!("{PROJECT}:0000000{next}-aaaa-bbbb-cccc-dddddddddddd"))
            .clone())
    }

    async fn get_build(&self, build_id: &str) -> Result<Option<BuildState>, PortError> {
        let poll = self.polls.fetch_add(1, Ordering::SeqCst) + 1;
        let done = poll > self.polls_until_done;
        let mut build = BuildState {
            id: build_id.into(),
            status: BuildStatus::InProgress,
            current_phase: Some("BUILD".into()),
            phases: vec![
                phase("SUBMITTED", Some("SUCCEEDED"), &[]),
                phase("DOWNLOAD_SOURCE", Some("SUCCEEDED"), &[]),
                phase("BUILD", None, &[]),
            ],
            log_group: Some(format!("/aws/codebuild/{PROJECT}")),
            log_stream: build_id.split_once(':').map(|(_, id)| id.to_owned()),
        };
        if !done {
            return Ok(Some(build));
        }
        build.current_phase = Some("COMPLETED".into());
        match &self.ending {
            Ending::Success { push } => {
                if *push {
                    self.registry.push(TAG);
                }
                build.status = BuildStatus::Succeeded;
                build.phases[2] = phase("BUILD", Some("SUCCEEDED"), &[]);
            }
            Ending::Failure {
                status,
                phase: failed,
                context,
            } => {
                build.status = BuildStatus::parse(status);
                build.phases[2] = phase(failed, Some(status), &[context]);
            }
        }
        build.phases.push(phase("COMPLETED", None, &[]));
        Ok(Some(build))
    }
}

#[derive(Default)]
struct FakeLambda {
    invocations: Mutex<Vec<(String, Vec<u8>)>>,
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
    registry: Arc<FakeRegistry>,
    builds: Arc<FakeBuilds>,
    lambda: Arc<FakeLambda>,
    logs: Arc<FakeLogs>,
    /// CloudFormation: by default it is creating the Image resource of STACK_ID.
    stacks: Arc<FakeStacks>,
    settings: Settings,
}

impl Harness {
    fn new(registry: FakeRegistry, polls_until_done: usize, ending: Ending) -> Self {
        Self::with_logs(registry, polls_until_done, ending, FakeLogs::default())
    }

    fn with_logs(
        registry: FakeRegistry,
        polls_until_done: usize,
        ending: Ending,
        logs: FakeLogs,
    ) -> Self {
        let registry = Arc::new(registry);
        let builds = FakeBuilds::new(Arc::clone(&registry), polls_until_done, ending);
        Self {
            server: CaptureServer::start(vec![]),
            registry,
            builds: Arc::new(builds),
            lambda: Arc::default(),
            logs: Arc::new(logs),
            stacks: Arc::new(FakeStacks::with(
                STACK_ID,
                "Image",
                "Custom::ImageBuild",
                "CREATE_IN_PROGRESS",
            )),
            settings: Settings {
                poll_interval: Duration::from_millis(20),
                handover_margin: Duration::from_millis(400),
                answer_margin: Duration::from_millis(100),
                max_hops: 20,
                ..Settings::default()
            },
        }
    }

    fn event(&self, request_type: &str) -> Value {
        let mut event = json!({
            "RequestType": request_type,
            "ResponseURL": self.server.url("/cfn-response?X-Amz-Signature=abc"),
            "StackId": STACK_ID,
            "RequestId": REQUEST_ID,
            "ResourceType": "Custom::ImageBuild",
            "LogicalResourceId": "Image",
            "ResourceProperties": properties(),
        });
        if request_type != "Create" {
            event["PhysicalResourceId"] = json!(format!("{REPOSITORY_URI}:0123abcd"));
        }
        if request_type == "Update" {
            let mut old = properties();
            old["ImageTag"] = json!("0123abcd");
            event["OldResourceProperties"] = old;
        }
        event
    }

    /// One invocation with `time_left` before the Lambda deadline.
    async fn invoke(&self, payload: Value, time_left: Duration) -> Result<Value, InvokeError> {
        let ports = Ports {
            registry: self.registry.clone(),
            builds: self.builds.clone(),
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
    /// was PUT the way S3's presigned URL needs. Every invocation has returned when
    /// this is called, and the PUT is sent before `invoke` returns, so the count is
    /// final.
    fn only_answer(&self) -> Value {
        let requests = self.server.wait_for(1, Duration::from_secs(5));
        assert_eq!(
            requests.len(),
            1,
            "CloudFormation must be answered exactly once"
        );
        assert_put_shape(&requests[0]);
        requests[0].json()
    }
}

fn properties() -> Value {
    json!({
        "ServiceToken": FUNCTION_ARN,
        "ProjectName": PROJECT,
        "RepositoryName": REPOSITORY,
        "ImageTag": TAG,
        "SourceLocation": SOURCE,
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

const PLENTY: Duration = Duration::from_secs(30);

fn image_uri() -> String {
    format!("{REPOSITORY_URI}:{TAG}")
}

#[tokio::test]
async fn an_image_already_in_ecr_starts_no_build() {
    let h = Harness::new(
        FakeRegistry::holding(TAG),
        0,
        Ending::Success { push: true },
    );
    let summary = h.invoke(h.event("Create"), PLENTY).await.unwrap();
    assert_eq!(summary["Status"], "SUCCESS");
    let body = h.only_answer();
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(body["PhysicalResourceId"], image_uri());
    assert_eq!(body["Data"], json!({"ImageUri": image_uri()}));
    assert_eq!(h.builds.builds_started(), 0, "no StartBuild");
    assert_eq!(h.builds.polls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_update_to_a_tag_already_built_starts_no_build() {
    let h = Harness::new(
        FakeRegistry::holding(TAG),
        0,
        Ending::Success { push: true },
    );
    let stacks = FakeStacks::with(
        STACK_ID,
        "Image",
        "Custom::ImageBuild",
        "UPDATE_IN_PROGRESS",
    );
    let h = Harness {
        stacks: Arc::new(stacks),
        ..h
    };
    h.invoke(h.event("Update"), PLENTY).await.unwrap();
    let body = h.only_answer();
    assert_eq!(body["Status"], "SUCCESS");
    // A new tag is a new physical id: CloudFormation's Delete of the old one is a no-op.
    assert_eq!(body["PhysicalResourceId"], image_uri());
    assert_eq!(h.builds.builds_started(), 0);
}

#[tokio::test]
async fn a_build_that_succeeds_answers_the_image_uri() {
    let h = Harness::new(FakeRegistry::default(), 3, Ending::Success { push: true });
    h.invoke(h.event("Create"), PLENTY).await.unwrap();
    let body = h.only_answer();
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    assert_eq!(body["PhysicalResourceId"], image_uri());
    assert_eq!(body["Data"]["ImageUri"], image_uri());
    assert_eq!(body["RequestId"], REQUEST_ID);
    assert_eq!(body["LogicalResourceId"], "Image");

    let launches = h.builds.launches();
    assert_eq!(launches.len(), 1);
    assert_eq!(
        launches[0],
        BuildLaunch {
            project_name: PROJECT.into(),
            source_location: SOURCE.into(),
            image_tag: TAG.into(),
            idempotency_token: request_token(STACK_ID, REQUEST_ID),
        }
    );
    assert_eq!(
        h.builds.polls.load(Ordering::SeqCst),
        4,
        "3 in progress, 1 done"
    );
    assert!(
        h.lambda.payloads().is_empty(),
        "no hand-over with time to spare"
    );
    assert!(
        h.logs.reads.lock().unwrap().is_empty(),
        "no log read on success"
    );
}

#[tokio::test]
async fn a_failed_build_reports_its_status_phase_and_log_tail() {
    let secret = "dckr_pat_Q7xKp2MzR9tBw4NlS8vYc3DfG";
    let logs = FakeLogs {
        lines: vec![
            "[Container] 2026/12/01 18:00:01.000000 Running command docker build -t img .".into(),
            format!("Login with password {secret} succeeded"),
            "ERROR: Could not find a version that satisfies the requirement nosuchpkg==9.9".into(),
            "[Container] 2026/12/01 18:00:09.000000 Phase complete: BUILD State: FAILED".into(),
        ],
        ..FakeLogs::default()
    };
    let ending = Ending::Failure {
        status: "FAILED",
        phase: "BUILD",
        context: "COMMAND_EXECUTION_ERROR: Error while executing command: docker build -t img .. Reason: exit status 1",
    };
    let h = Harness::with_logs(FakeRegistry::default(), 1, ending, logs);
    h.invoke(h.event("Create"), PLENTY).await.unwrap();

    let body = h.only_answer();
    assert_eq!(body["Status"], "FAILED");
    assert_eq!(
        body["PhysicalResourceId"],
        stable_physical_id(STACK_ID, "Image"),
        "a failed Create answers the stable id; the Delete that follows does nothing"
    );
    let reason = body["Reason"].as_str().unwrap();
    let build_id = format!("{PROJECT}:00000001-aaaa-bbbb-cccc-dddddddddddd");
    assert!(
        reason.starts_with(&format!(
            "image build {build_id} ended FAILED in phase BUILD (FAILED): COMMAND_EXECUTION_ERROR: \
             Error while executing command: docker build -t img .. Reason: exit status 1; \
             log group /aws/codebuild/{PROJECT} stream 00000001-aaaa-bbbb-cccc-dddddddddddd, \
             last lines:\n"
        )),
        "{reason}"
    );
    assert!(
        reason.ends_with(
            "nosuchpkg==9.9\n[Container] 2026/12/01 18:00:09.000000 Phase complete: BUILD State: FAILED"
        ),
        "{reason}"
    );
    assert!(
        !reason.contains(secret),
        "a secret reached the reason: {reason}"
    );
    assert!(reason.contains("Login with password [redacted] succeeded"));
    assert_eq!(
        h.logs.reads.lock().unwrap().clone(),
        vec![(
            format!("/aws/codebuild/{PROJECT}"),
            "00000001-aaaa-bbbb-cccc-dddddddddddd".to_owned(),
            50
        )]
    );
}

#[tokio::test]
async fn every_final_status_but_success_fails() {
    for status in ["FAULT", "STOPPED", "TIMED_OUT"] {
        let ending = Ending::Failure {
            status,
            phase: "PROVISIONING",
            context: "ACCESS_DENIED: Service role may not create log streams",
        };
        let h = Harness::new(FakeRegistry::default(), 0, ending);
        h.invoke(h.event("Create"), PLENTY).await.unwrap();
        let body = h.only_answer();
        assert_eq!(body["Status"], "FAILED", "{status}");
        let reason = body["Reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("ended {status} in phase PROVISIONING")),
            "{reason}"
        );
    }
}

#[tokio::test]
async fn a_huge_log_is_cut_to_its_newest_lines_and_the_response_fits() {
    let logs = FakeLogs {
        lines: (0..200)
            .map(|i| format!("step {i:03} {}", "x".repeat(80)))
            .collect(),
        ..FakeLogs::default()
    };
    let ending = Ending::Failure {
        status: "FAILED",
        phase: "BUILD",
        context: "COMMAND_EXECUTION_ERROR: exit status 1",
    };
    let h = Harness::with_logs(FakeRegistry::default(), 0, ending, logs);
    h.invoke(h.event("Create"), PLENTY).await.unwrap();
    let body = h.only_answer();
    let reason = body["Reason"].as_str().unwrap();
    assert!(reason.contains("step 199"), "the newest line survives");
    assert!(!reason.contains("step 150"), "older lines are cut first");
    assert!(serde_json::to_vec(&body).unwrap().len() <= MAX_RESPONSE_BYTES);
}

#[tokio::test]
async fn a_success_without_the_image_in_ecr_fails() {
    let h = Harness::new(FakeRegistry::default(), 0, Ending::Success { push: false });
    h.invoke(h.event("Create"), PLENTY).await.unwrap();
    let body = h.only_answer();
    assert_eq!(body["Status"], "FAILED");
    let reason = body["Reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "SUCCEEDED but ECR holds no image {REPOSITORY}:{TAG}"
        )) && reason.contains("$IMAGE_TAG"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_long_build_is_handed_over_and_the_continuation_finishes_it() {
    let h = Harness::new(FakeRegistry::default(), 30, Ending::Success { push: true });
    // 500 ms left, hand-over margin 400 ms, polls every 20 ms: a few polls, then the
    // wait passes to a new invocation, without answering.
    let summary = h
        .invoke(h.event("Create"), Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(summary["HandedOver"], true, "{summary}");
    assert!(
        h.server.requests().is_empty(),
        "no answer from the first hop"
    );
    let payloads = h.lambda.payloads();
    assert_eq!(payloads.len(), 1);
    let continuation = &payloads[0][MARKER];
    let build_id = format!("{PROJECT}:00000001-aaaa-bbbb-cccc-dddddddddddd");
    assert_eq!(continuation["BuildId"], build_id);
    assert_eq!(continuation["Hop"], 1);
    assert_eq!(continuation["Event"], h.event("Create"));
    assert_eq!(
        h.lambda.invocations.lock().unwrap()[0].0,
        FUNCTION_ARN,
        "it invokes itself"
    );

    // The next hop, with time to spare, sees the build through and answers.
    h.invoke(payloads[0].clone(), PLENTY).await.unwrap();
    let body = h.only_answer();
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    assert_eq!(body["Data"]["ImageUri"], image_uri());
    assert_eq!(
        h.builds.builds_started(),
        1,
        "the continuation starts no build"
    );
    assert_eq!(h.builds.launches().len(), 1);
    assert_eq!(h.lambda.payloads().len(), 1, "one hand-over in all");
}

#[tokio::test]
async fn too_many_hops_fail_with_the_build_named() {
    let h = Harness::new(
        FakeRegistry::default(),
        1000,
        Ending::Success { push: true },
    );
    let continuation = json!({MARKER: {
        "Event": h.event("Create"),
        "BuildId": format!("{PROJECT}:x"),
        "StartedAtEpochMillis": 1,
        "Hop": 21,
    }});
    h.invoke(continuation, PLENTY).await.unwrap();
    let body = h.only_answer();
    assert_eq!(body["Status"], "FAILED");
    assert!(body["Reason"].as_str().unwrap().contains(&format!(
        "gave up after 20 hand-overs waiting for the image build {PROJECT}:x"
    )));
}

#[tokio::test]
async fn the_overall_limit_fails_and_leaves_the_build_running() {
    let mut h = Harness::new(
        FakeRegistry::default(),
        1000,
        Ending::Success { push: true },
    );
    h.settings.max_wait = Duration::from_millis(100);
    h.invoke(h.event("Create"), PLENTY).await.unwrap();
    let body = h.only_answer();
    assert_eq!(body["Status"], "FAILED");
    let reason = body["Reason"].as_str().unwrap();
    assert!(
        reason.contains("did not finish within 0 seconds; it was left running"),
        "{reason}"
    );
    assert!(reason.contains("log group /aws/codebuild/"), "{reason}");
}

#[tokio::test]
async fn delete_answers_success_and_touches_nothing() {
    let h = Harness::new(FakeRegistry::default(), 0, Ending::Success { push: true });
    h.invoke(h.event("Delete"), PLENTY).await.unwrap();
    let body = h.only_answer();
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(
        body["PhysicalResourceId"],
        format!("{REPOSITORY_URI}:0123abcd")
    );
    assert!(body.get("Data").is_none());
    assert_eq!(h.registry.lookups.load(Ordering::SeqCst), 0);
    assert_eq!(h.builds.builds_started(), 0);
    assert_eq!(
        h.stacks.call_count(),
        0,
        "Delete is not checked with CloudFormation"
    );
}

#[tokio::test]
async fn a_request_cloudformation_is_not_running_does_nothing() {
    let h = Harness::new(FakeRegistry::default(), 0, Ending::Success { push: true });
    let h = Harness {
        stacks: Arc::new(FakeStacks::with(
            STACK_ID,
            "Image",
            "Custom::ImageBuild",
            "CREATE_COMPLETE",
        )),
        ..h
    };
    h.invoke(h.event("Create"), PLENTY).await.unwrap();
    let body = h.only_answer();
    assert_eq!(body["Status"], "FAILED");
    assert!(body["Reason"].as_str().unwrap().contains("request refused"));
    assert_eq!(h.registry.lookups.load(Ordering::SeqCst), 0);
    assert_eq!(h.builds.builds_started(), 0);
}

#[tokio::test]
async fn bad_properties_and_start_errors_fail_with_what_to_fix() {
    let h = Harness::new(FakeRegistry::default(), 0, Ending::Success { push: true });
    let mut event = h.event("Create");
    event["ResourceProperties"]["ImageTag"] = json!("Latest");
    h.invoke(event, PLENTY).await.unwrap();
    let reason = h.only_answer()["Reason"].as_str().unwrap().to_owned();
    assert!(
        reason.contains("ImageTag") && !reason.contains("Latest"),
        "{reason}"
    );

    let registry = Arc::new(FakeRegistry::default());
    let mut builds = FakeBuilds::new(Arc::clone(&registry), 0, Ending::Success { push: true });
    builds.start_error =
        Some("StartBuild: ResourceNotFoundException: Project cannot be found".into());
    let h = Harness {
        registry,
        builds: Arc::new(builds),
        ..Harness::new(FakeRegistry::default(), 0, Ending::Success { push: true })
    };
    h.invoke(h.event("Create"), PLENTY).await.unwrap();
    let reason = h.only_answer()["Reason"].as_str().unwrap().to_owned();
    assert_eq!(
        reason,
        format!("could not start the image build (CodeBuild project {PROJECT}): StartBuild: ResourceNotFoundException: Project cannot be found")
    );
}
