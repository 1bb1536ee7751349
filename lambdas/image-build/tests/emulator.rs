//! The built Lambda (this crate's `bootstrap`, for this machine) deployed with a minimal
//! stack into the project's AWS emulator (tests/aws_emulator/server.py): an ECR
//! repository, a CodeBuild project with its service role, the function with its role,
//! and the `Custom::ImageBuild` resource. CloudFormation (the emulator's engine) invokes
//! the function, which runs as its role (every call authorized by the emulator's IAM
//! evaluation); CodeBuild builds run for a while, write their log and push the image
//! (tests/aws_emulator/codebuild.py), and end as the test decides
//! (`POST /_emulator/codebuild-next-build`).
//!
//! One stack goes through four deploys:
//! 1. Create: a build that succeeds; `ImageUri` is `<repositoryUri>:<tag>`, ECR holds
//!    the tag;
//! 2. Update of the resource with the same tag: no build (the count stays);
//! 3. Update to a tag whose build fails: the stack event's reason names the build, its
//!    status and phase and ends with the build log's last lines (a secret-shaped line
//!    redacted); the rollback's Update back to the built tag needs no build;
//! 4. Update to a tag whose build outlasts the function's timeout (6 s): the function
//!    hands the wait over to itself, and a later invocation answers.
//!
//! Needs the emulator's virtualenv (`AIRFLOW_STACK_VENV`, which the project's test
//! command creates); fails, never skips, without it.
//! `cargo test -p airflow-image-build --test emulator -- --nocapture` prints timings.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_cloudformation::types::{Capability, Parameter};
use serde_json::{json, Value};

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
const STACK: &str = "image-build";
const FUNCTION: &str = "image-build-test";
const PROJECT: &str = "airflow-image";
const REPOSITORY: &str = "airflow";
const BUCKET: &str = "assets";
const TAG_A: &str = "aaaa1111";
const TAG_B: &str = "bbbb2222";
const TAG_C: &str = "cccc3333";

/// The emulator, killed by pid when dropped (even after a panic).
struct Emulator {
    endpoint: String,
    child: Child,
    log: PathBuf,
}

impl Emulator {
    fn start(dir: &Path) -> Self {
        let venv = std::env::var("AIRFLOW_STACK_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".cache/airflow-stack/venv")
            });
        let python = venv.join("bin/python");
        assert!(
            python.exists(),
            "{} not found: run the project's test command (bash tests/run-all.sh creates the \
             venv with moto) or set AIRFLOW_STACK_VENV",
            python.display()
        );
        let server = root().join("tests/aws_emulator/server.py");
        let log = dir.join("emulator.log");
        let mut child = Command::new(&python)
            .arg(&server)
            .args(["--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .expect("start tests/aws_emulator/server.py");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(port) = line.strip_prefix("READY ") {
                        break port.trim().to_owned();
                    }
                }
                _ => panic!("the emulator exited before READY; see {}", log.display()),
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
            log,
        }
    }

    async fn config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "testing", "testing", None, None, "emulator",
            ))
            .load()
            .await
    }

    /// One request to an emulator endpoint: (status, body).
    fn http(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        let address = self.endpoint.trim_start_matches("http://");
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut stream = TcpStream::connect(address).expect("the emulator listens");
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        let status = reply
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = reply
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// How the next CodeBuild build ends.
    fn next_build(&self, ending: Value) {
        let (status, body) = self.http("POST", "/_emulator/codebuild-next-build", Some(&ending));
        assert_eq!(status, 200, "codebuild-next-build: {body}");
    }

    /// The IAM decisions the emulator took for the function's calls.
    fn function_calls(&self) -> Vec<Value> {
        let (status, body) = self.http(
            "GET",
            &format!("/_emulator/calls?identity={FUNCTION}"),
            None,
        );
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).expect("JSON calls");
        body["calls"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // SIGTERM lets it kill the Lambda processes it started.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    PathBuf::from(std::env::var("AIRFLOW_STACK_VENV").unwrap_or_else(|_| {
        format!(
            "{}/.cache/airflow-stack/venv",
            std::env::var("HOME").unwrap_or_default()
        )
    }))
    .join("bin/python")
}

/// A zip of `(name, mode, bytes)` entries, written by Python's zipfile (as
/// lambdas/build.sh does), so no zip crate is needed here.
fn zip(dir: &Path, name: &str, entries: &[(&str, u32, &Path)]) -> Vec<u8> {
    let out = dir.join(name);
    let mut args = vec![out.display().to_string()];
    for (entry, mode, path) in entries {
        args.push(format!("{entry}:{mode:o}:{}", path.display()));
    }
    let status = Command::new(python())
        .arg("-c")
        .arg(
            "import sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n\
             \x20   for spec in sys.argv[2:]:\n\
             \x20       name, mode, path = spec.split(':', 2)\n\
             \x20       info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))\n\
             \x20       info.external_attr = int(mode, 8) << 16\n\
             \x20       info.compress_type = zipfile.ZIP_DEFLATED\n\
             \x20       z.writestr(info, open(path, 'rb').read())\n",
        )
        .args(&args)
        .status()
        .expect("run python");
    assert!(status.success(), "zipping {name} failed");
    std::fs::read(out).unwrap()
}

/// The function's code: this crate's bootstrap, stripped of debug info (a debug build
/// is mostly that; each invocation unzips it).
fn function_zip(dir: &Path) -> Vec<u8> {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_airflow-image-build-bootstrap"));
    let stripped = dir.join("bootstrap");
    let status = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&stripped)
        .arg(&binary)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        std::fs::copy(&binary, &stripped).unwrap();
    }
    zip(dir, "function.zip", &[("bootstrap", 0o100755, &stripped)])
}

/// A build context: a Dockerfile and the buildspec that builds and pushes `$IMAGE_TAG`.
fn context_zip(dir: &Path) -> Vec<u8> {
    let dockerfile = dir.join("Dockerfile");
    std::fs::write(
        &dockerfile,
        "FROM apache/airflow:3.1.0\nCOPY requirements.txt .\n",
    )
    .unwrap();
    let buildspec = dir.join("buildspec.yml");
    std::fs::write(
        &buildspec,
        "version: 0.2\nphases:\n  pre_build:\n    commands:\n      - aws ecr get-login-password | \
         docker login --username AWS --password-stdin ${REPOSITORY_URI%%/*}\n  build:\n    \
         commands:\n      - docker build -t $REPOSITORY_URI:$IMAGE_TAG .\n  post_build:\n    \
         commands:\n      - docker push $REPOSITORY_URI:$IMAGE_TAG\n",
    )
    .unwrap();
    zip(
        dir,
        "context.zip",
        &[
            ("Dockerfile", 0o100644, &dockerfile),
            ("buildspec.yml", 0o100644, &buildspec),
        ],
    )
}

fn allow(actions: &[&str], resource: Value) -> Value {
    json!({"Effect": "Allow", "Action": actions, "Resource": resource})
}

fn role(service: &str, statements: Vec<Value>) -> Value {
    json!({"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": service}}]},
        "Policies": [{"PolicyName": "least-privilege", "PolicyDocument": {
            "Version": "2012-10-17", "Statement": statements}}]}})
}

/// The minimal stack: what the image-build resource needs, with least-privilege roles.
fn template() -> String {
    let sub = |s: &str| json!({"Fn::Sub": s});
    let build_logs = sub(&format!(
        "arn:aws:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:/aws/codebuild/{PROJECT}:*"
    ));
    let build_role = role(
        "codebuild.amazonaws.com",
        vec![
            allow(
                &[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                ],
                build_logs.clone(),
            ),
            allow(
                &["s3:GetObject"],
                json!(format!("arn:aws:s3:::{BUCKET}/image/*")),
            ),
            allow(&["ecr:GetAuthorizationToken"], json!("*")),
            allow(
                &[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:InitiateLayerUpload",
                    "ecr:UploadLayerPart",
                    "ecr:CompleteLayerUpload",
                    "ecr:PutImage",
                ],
                json!({"Fn::GetAtt": ["Repo", "Arn"]}),
            ),
        ],
    );
    let function_role = role(
        "lambda.amazonaws.com",
        vec![
            allow(
                &["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                sub(&format!(
                    "arn:aws:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:/aws/lambda/{FUNCTION}:*"
                )),
            ),
            allow(
                &["cloudformation:DescribeStackResource"],
                json!({"Ref": "AWS::StackId"}),
            ),
            allow(
                &["codebuild:StartBuild", "codebuild:BatchGetBuilds"],
                json!({"Fn::GetAtt": ["Project", "Arn"]}),
            ),
            allow(
                &["ecr:DescribeImages", "ecr:DescribeRepositories"],
                json!({"Fn::GetAtt": ["Repo", "Arn"]}),
            ),
            allow(&["logs:GetLogEvents"], build_logs),
            allow(
                &["lambda:InvokeFunction"],
                sub(&format!(
                    "arn:aws:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:{FUNCTION}"
                )),
            ),
        ],
    );
    json!({
        "Parameters": {
            "ImageTag": {"Type": "String"},
            "FunctionTimeout": {"Type": "Number"},
            "ServiceTimeout": {"Type": "String"},
        },
        "Resources": {
            "Repo": {"Type": "AWS::ECR::Repository", "Properties": {"RepositoryName": REPOSITORY}},
            "BuildRole": build_role,
            "Project": {"Type": "AWS::CodeBuild::Project", "Properties": {
                "Name": PROJECT,
                "ServiceRole": {"Fn::GetAtt": ["BuildRole", "Arn"]},
                "Source": {"Type": "S3", "Location": format!("{BUCKET}/image/{TAG_A}.zip")},
                "Artifacts": {"Type": "NO_ARTIFACTS"},
                "TimeoutInMinutes": 50,
                "Environment": {"Type": "ARM_CONTAINER", "ComputeType": "BUILD_GENERAL1_SMALL",
                    "Image": "aws/codebuild/amazonlinux2-aarch64-standard:3.0",
                    "PrivilegedMode": true,
                    "EnvironmentVariables": [{"Name": "REPOSITORY_URI",
                        "Value": {"Fn::GetAtt": ["Repo", "RepositoryUri"]}}]}}},
            "FunctionRole": function_role,
            "Function": {"Type": "AWS::Lambda::Function", "Properties": {
                "FunctionName": FUNCTION,
                "Code": {"S3Bucket": BUCKET, "S3Key": "function.zip"},
                "Handler": "bootstrap", "Runtime": "provided.al2023",
                "Architectures": [host_architecture()],
                "Timeout": {"Ref": "FunctionTimeout"}, "MemorySize": 256,
                "Role": {"Fn::GetAtt": ["FunctionRole", "Arn"]},
                "Environment": {"Variables": {
                    "IMAGE_BUILD_POLL_SECONDS": "1",
                    "IMAGE_BUILD_HANDOVER_MARGIN_SECONDS": "3",
                    "IMAGE_BUILD_ANSWER_MARGIN_SECONDS": "1"}}}},
            "Image": {"Type": "Custom::ImageBuild", "Properties": {
                "ServiceToken": {"Fn::GetAtt": ["Function", "Arn"]},
                "ServiceTimeout": {"Ref": "ServiceTimeout"},
                "ProjectName": {"Ref": "Project"},
                "RepositoryName": {"Ref": "Repo"},
                "ImageTag": {"Ref": "ImageTag"},
                "SourceLocation": {"Fn::Sub": format!("{BUCKET}/image/${{ImageTag}}.zip")}}},
        },
        "Outputs": {"ImageUri": {"Value": {"Fn::GetAtt": ["Image", "ImageUri"]}}},
    })
    .to_string()
}

fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "x86_64",
    }
}

struct Deployer {
    cfn: aws_sdk_cloudformation::Client,
}

impl Deployer {
    /// Creates or updates the stack and waits for a final status; returns it.
    async fn deploy(&self, create: bool, tag: &str, timeout: u32, service_timeout: u32) -> String {
        let parameters = [
            ("ImageTag", tag.to_owned()),
            ("FunctionTimeout", timeout.to_string()),
            ("ServiceTimeout", service_timeout.to_string()),
        ]
        .map(|(k, v)| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        });
        if create {
            self.cfn
                .create_stack()
                .stack_name(STACK)
                .template_body(template())
                .set_parameters(Some(parameters.to_vec()))
                .capabilities(Capability::CapabilityIam)
                .send()
                .await
                .expect("CreateStack");
        } else {
            self.cfn
                .update_stack()
                .stack_name(STACK)
                .template_body(template())
                .set_parameters(Some(parameters.to_vec()))
                .capabilities(Capability::CapabilityIam)
                .send()
                .await
                .expect("UpdateStack");
        }
        self.wait().await
    }

    async fn wait(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let stacks = self
                .cfn
                .describe_stacks()
                .stack_name(STACK)
                .send()
                .await
                .expect("DescribeStacks");
            let status = stacks.stacks()[0]
                .stack_status()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default();
            if !status.ends_with("_IN_PROGRESS") {
                return status;
            }
            assert!(Instant::now() < deadline, "the stack is still {status}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn image_uri(&self) -> String {
        let stacks = self
            .cfn
            .describe_stacks()
            .stack_name(STACK)
            .send()
            .await
            .unwrap();
        stacks.stacks()[0]
            .outputs()
            .iter()
            .find(|o| o.output_key() == Some("ImageUri"))
            .and_then(|o| o.output_value())
            .expect("an ImageUri output")
            .to_owned()
    }

    /// The image resource's events as (status, reason), oldest first.
    async fn image_events(&self) -> Vec<(String, String)> {
        let events = self
            .cfn
            .describe_stack_events()
            .stack_name(STACK)
            .send()
            .await
            .unwrap();
        let mut out: Vec<(String, String)> = events
            .stack_events()
            .iter()
            .filter(|e| e.logical_resource_id() == Some("Image"))
            .map(|e| {
                (
                    e.resource_status()
                        .map(|s| s.as_str().to_owned())
                        .unwrap_or_default(),
                    e.resource_status_reason().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        out.reverse();
        out
    }
}

async fn builds(codebuild: &aws_sdk_codebuild::Client) -> Vec<String> {
    codebuild
        .list_builds_for_project()
        .project_name(PROJECT)
        .send()
        .await
        .expect("ListBuildsForProject")
        .ids()
        .to_vec()
}

async fn has_image(ecr: &aws_sdk_ecr::Client, tag: &str) -> bool {
    ecr.describe_images()
        .repository_name(REPOSITORY)
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag(tag)
                .build(),
        )
        .send()
        .await
        .is_ok_and(|o| !o.image_details().is_empty())
}

#[tokio::test(flavor = "multi_thread")]
async fn image_builds_against_the_emulator() {
    let dir = std::env::temp_dir().join(format!("image-build-emulator-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let emulator = Emulator::start(&dir);
    let config = emulator.config().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let codebuild = aws_sdk_codebuild::Client::new(&config);
    let ecr = aws_sdk_ecr::Client::new(&config);
    let stack = Deployer {
        cfn: aws_sdk_cloudformation::Client::new(&config),
    };
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let put = |key: String, body: Vec<u8>| {
        let s3 = s3.clone();
        async move {
            s3.put_object()
                .bucket(BUCKET)
                .key(key)
                .body(body.into())
                .send()
                .await
                .expect("PutObject")
        }
    };
    put("function.zip".into(), function_zip(&dir)).await;
    let context = context_zip(&dir);
    for tag in [TAG_A, TAG_B, TAG_C] {
        put(format!("image/{tag}.zip"), context.clone()).await;
    }
    let repository_uri = format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}");
    let log = emulator.log.display().to_string();

    // 1. Create: one build, which succeeds; ECR holds the tag.
    emulator.next_build(json!({"status": "SUCCEEDED", "seconds": 1.6}));
    let started = Instant::now();
    let status = stack.deploy(true, TAG_A, 60, 300).await;
    println!(
        "MEASURE create with a 1.6 s build: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        status,
        "CREATE_COMPLETE",
        "{:?}; see {log}",
        stack.image_events().await
    );
    assert_eq!(stack.image_uri().await, format!("{repository_uri}:{TAG_A}"));
    assert!(has_image(&ecr, TAG_A).await);
    assert_eq!(builds(&codebuild).await.len(), 1);

    // 2. The same tag again (an Update: only ServiceTimeout changed): no build.
    let started = Instant::now();
    let status = stack.deploy(false, TAG_A, 60, 299).await;
    println!(
        "MEASURE update with the image already built: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        status,
        "UPDATE_COMPLETE",
        "{:?}",
        stack.image_events().await
    );
    assert_eq!(
        builds(&codebuild).await.len(),
        1,
        "an unchanged tag starts no build"
    );
    assert_eq!(stack.image_uri().await, format!("{repository_uri}:{TAG_A}"));

    // 3. A build that fails: the reason carries the build, its phase and its log's end.
    let secret = "hunter2Xq7KpM2zR9tBw4NlS8v";
    emulator.next_build(json!({
        "status": "FAILED", "phase": "BUILD", "seconds": 0.8,
        "lines": [
            "#7 [3/4] RUN pip install -r requirements.txt",
            format!("#7 0.912 using index https://build:{secret}@pypi.internal/simple"),
            "#7 2.345 ERROR: No matching distribution found for nosuchpackage==9.9",
        ],
    }));
    let status = stack.deploy(false, TAG_B, 60, 300).await;
    assert_eq!(status, "UPDATE_ROLLBACK_COMPLETE");
    let events = stack.image_events().await;
    let (_, reason) = events
        .iter()
        .find(|(status, _)| status == "UPDATE_FAILED")
        .unwrap_or_else(|| panic!("no UPDATE_FAILED event for Image: {events:?}"));
    let build_ids = builds(&codebuild).await;
    assert_eq!(build_ids.len(), 2);
    let failed = build_ids
        .iter()
        .find(|id| !reason.is_empty() && reason.contains(*id));
    assert!(failed.is_some(), "the reason names the build: {reason}");
    assert!(
        reason.contains(
            "ended FAILED in phase BUILD (FAILED): COMMAND_EXECUTION_ERROR: Error while \
                         executing command: docker build -t $REPOSITORY_URI:$IMAGE_TAG .."
        ) && reason.contains(&format!("log group /aws/codebuild/{PROJECT} stream ")),
        "{reason}"
    );
    assert!(
        reason.contains("ERROR: No matching distribution found for nosuchpackage==9.9"),
        "the log tail: {reason}"
    );
    assert!(
        !reason.contains(secret),
        "a secret reached the stack events: {reason}"
    );
    assert!(
        reason.contains("https://build:[redacted]@pypi.internal/simple"),
        "{reason}"
    );
    assert!(!has_image(&ecr, TAG_B).await);
    // The rollback went back to the built tag without building.
    assert_eq!(stack.image_uri().await, format!("{repository_uri}:{TAG_A}"));
    assert_eq!(builds(&codebuild).await.len(), 2);

    // 4. A build longer than the function's timeout: hand-overs finish it.
    emulator.next_build(json!({"status": "SUCCEEDED", "seconds": 10.0}));
    let invokes_before = self_invocations(&emulator);
    let started = Instant::now();
    let status = stack.deploy(false, TAG_C, 6, 300).await;
    let took = started.elapsed().as_secs_f64();
    let hops = self_invocations(&emulator) - invokes_before;
    println!("MEASURE update with a 10 s build and a 6 s function timeout: {took:.1}s, {hops} hand-overs");
    assert_eq!(
        status,
        "UPDATE_COMPLETE",
        "{:?}; see {log}",
        stack.image_events().await
    );
    assert_eq!(stack.image_uri().await, format!("{repository_uri}:{TAG_C}"));
    assert!(has_image(&ecr, TAG_C).await);
    assert!(
        hops >= 2,
        "a 10 s build outlasts a 6 s function more than once: {hops}"
    );
    assert_eq!(
        builds(&codebuild).await.len(),
        3,
        "the continuations start no build"
    );

    // Every call the function made was allowed by its role.
    let denied: Vec<Value> = emulator
        .function_calls()
        .into_iter()
        .filter(|c| c["allowed"] != true)
        .collect();
    assert!(
        denied.is_empty(),
        "calls its role does not allow: {denied:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// How many times the function invoked itself (allowed lambda:InvokeFunction calls).
fn self_invocations(emulator: &Emulator) -> usize {
    emulator
        .function_calls()
        .iter()
        .filter(|c| c["action"] == "lambda:InvokeFunction" && c["allowed"] == true)
        .count()
}
