//! `bootstrap`, `deploy`, `diff` and `destroy` against the local AWS emulator (the
//! patched moto server in tests/aws_emulator), with the real Rust Lambdas executing the
//! custom resources, each as its own role (every AWS call they make is authorized by the
//! emulator against the role's policy). One scenario, in order, as a user would run it,
//! starting with no Lambda build: the first deploy that needs the zips builds them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use common::emulator::{assets_dir, lambda_architecture, target_dir, Emulator};
use common::{default_template, root};

struct Session {
    emulator: Emulator,
    dir: tempfile::TempDir,
    /// The cargo target dir the CLI sees: no zips and no build of this workspace's
    /// crates in it (see `forget_lambda_builds`).
    target: PathBuf,
}

impl Session {
    fn new() -> Session {
        let target = target_dir().join("fresh-clone-target");
        forget_lambda_builds(&target);
        keep_one_zip(&target, KEPT_ZIP);
        Session {
            emulator: Emulator::start(),
            dir: tempfile::tempdir().unwrap(),
            target,
        }
    }

    /// The CLI against the emulator, with stdin not a terminal (as in CI), and the
    /// Session's target dir: deploy looks for the zips in `<target>/lambda/<arch>`.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.emulator.cli(&self.target);
        cmd.args(args);
        cmd
    }

    /// Runs the CLI (see `command`) and echoes what it printed.
    fn run(&self, args: &[&str]) -> Output {
        self.output(args, self.command(args))
    }

    fn output(&self, args: &[&str], mut cmd: Command) -> Output {
        let out = cmd.output().expect("run airflow-stack");
        eprintln!(
            "$ airflow-stack {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The default stack file with lines appended (later keys win in our tests' use:
    /// they only add sections the default file does not have).
    fn stack_file(&self, name: &str, replace: &[(&str, &str)]) -> PathBuf {
        let mut text = std::fs::read_to_string(root().join("stacks/dev.yaml")).unwrap();
        for (from, to) in replace {
            assert!(text.contains(from), "stacks/dev.yaml has no {from:?}");
            text = text.replace(from, to);
        }
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `airflow-dev`'s resources of one type: physical ids by logical id.
    async fn physical_ids_of(&self, resource_type: &str) -> Vec<(String, String)> {
        let cfn = aws_sdk_cloudformation::Client::new(&self.sdk_config().await);
        let out = cfn
            .describe_stack_resources()
            .stack_name("airflow-dev")
            .send()
            .await
            .unwrap();
        out.stack_resources()
            .iter()
            .filter(|r| r.resource_type() == Some(resource_type))
            .map(|r| {
                (
                    r.logical_resource_id().unwrap().to_string(),
                    r.physical_resource_id().unwrap().to_string(),
                )
            })
            .collect()
    }

    async fn physical_id(&self, logical_id: &str) -> String {
        let cfn = aws_sdk_cloudformation::Client::new(&self.sdk_config().await);
        let res = cfn
            .describe_stack_resource()
            .stack_name("airflow-dev")
            .logical_resource_id(logical_id)
            .send()
            .await
            .unwrap();
        res.stack_resource_detail()
            .unwrap()
            .physical_resource_id()
            .unwrap()
            .to_string()
    }

    async fn sdk_config(&self) -> aws_config::SdkConfig {
        for (k, v) in self.emulator.env() {
            std::env::set_var(k, v);
        }
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Puts `target` in the state of a fresh clone for the Lambdas: no zips, none in
/// lambdas/build.sh's cache (`lambda-cache`, which this target dir keeps from the last
/// run), and no build output of this workspace's own crates (`cargo clean -p` each, for the `lambda`
/// profile of both Lambda targets), so deploy must compile the Lambdas and link them.
/// What stays is third-party dependencies: they come from crates.io unchanged, and
/// rebuilding the AWS SDK for this test would add about nine minutes on a 2-core machine
/// (a cold CI run) without testing anything of ours. On the first run they are copied
/// from the shared target dir, where the test command's Lambda build (`lambdas/build.sh`)
/// has just compiled them; a copy, not hard links, because cargo rewrites fingerprint
/// files in place.
fn forget_lambda_builds(target: &Path) {
    seed_third_party_builds(target);
    // Only the zips: <target>/lambda/ is also cargo's host folder of the `lambda`
    // profile (build scripts, proc macros).
    for arch in ["arm64", "x86_64"] {
        let _ = std::fs::remove_dir_all(target.join("lambda").join(arch));
    }
    let _ = std::fs::remove_dir_all(target.join("lambda-cache"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let metadata = Command::new(&cargo)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    assert!(metadata.status.success(), "cargo metadata failed");
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout).unwrap();
    let members: Vec<String> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        members.iter().any(|m| m == "airflow-secrets"),
        "{members:?}"
    );
    for triple in ["aarch64-unknown-linux-gnu", "x86_64-unknown-linux-gnu"] {
        if !target.join(triple).exists() {
            continue;
        }
        let mut clean = Command::new(&cargo);
        clean
            .args([
                "clean",
                "--quiet",
                "--profile",
                "lambda",
                "--target",
                triple,
            ])
            .arg("--target-dir")
            .arg(target)
            .current_dir(root());
        for member in &members {
            clean.args(["-p", member]);
        }
        let status = clean.status().expect("run cargo clean");
        assert!(
            status.success(),
            "cargo clean -p <workspace members> failed"
        );
    }
}

/// The zip left in place for the first deploy: deploy builds only what is missing, and
/// one Lambda compiled and linked (fat LTO) proves the build as well as two at half the
/// time of a cold CI run.
const KEPT_ZIP: &str = "airflow-secrets";
/// The zip the first deploy must build.
const BUILT_ZIP: &str = "airflow-migration";

/// Copies `crate_name`'s zip from the shared target dir (the test command's
/// `lambdas/build.sh`) into `target`, for the architecture the template declares.
fn keep_one_zip(target: &Path, crate_name: &str) {
    let arch = lambda_architecture(&default_template());
    let to = target.join("lambda").join(&arch).join(crate_name);
    std::fs::create_dir_all(&to).unwrap();
    std::fs::copy(
        assets_dir(&arch).join(crate_name).join("bootstrap.zip"),
        to.join("bootstrap.zip"),
    )
    .expect("lambdas/build.sh wrote the zips into the shared target dir");
}

/// Copies the `lambda`-profile build folders of the shared target dir into `target`
/// when `target` has none yet (see [`forget_lambda_builds`]).
fn seed_third_party_builds(target: &Path) {
    let shared = target_dir();
    for dir in [
        "aarch64-unknown-linux-gnu",
        "x86_64-unknown-linux-gnu",
        "lambda",
    ] {
        let (from, to) = (shared.join(dir), target.join(dir));
        if to.exists() || !from.exists() {
            continue;
        }
        std::fs::create_dir_all(target).unwrap();
        let status = Command::new("cp")
            .arg("-a")
            .arg(&from)
            .arg(&to)
            .status()
            .expect("run cp");
        assert!(status.success(), "copying {} failed", from.display());
    }
}

/// With no cargo-lambda anywhere, the build deploy starts stops at once and says how to
/// install it; nothing is deployed.
fn without_cargo_lambda_deploy_says_how_to_install_it(s: &Session, dev: &Path) {
    let empty = s.dir.path().join("no-zips");
    std::fs::create_dir_all(&empty).unwrap();
    let args = ["deploy", path(dev), "--yes", "--assets-dir", path(&empty)];
    let mut cmd = s.command(&args);
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let without: Vec<PathBuf> = std::env::split_paths(&path_var)
        .filter(|dir| !dir.join("cargo-lambda").exists())
        .collect();
    cmd.env("PATH", std::env::join_paths(without).unwrap())
        .env_remove("AIRFLOW_STACK_VENV");
    let out = s.output(&args, cmd);
    assert_eq!(out.status.code(), Some(1));
    let log = text(&out);
    assert!(
        log.contains("cargo-lambda is not installed")
            && log.contains("pip install cargo-lambda")
            && log.contains("building the Lambda zips failed"),
        "{log}"
    );
    assert!(std::fs::read_dir(&empty).unwrap().next().is_none());
}

/// The deploy found a zip missing in `<target>/lambda/<arch>` and built it from this
/// checkout with lambdas/build.sh: it compiled only the Lambda that was missing (not
/// the one present, not the scaler, which the dev template does not use), and the zip
/// is byte-identical to the one the test command's own `lambdas/build.sh` wrote into
/// the shared target dir (same sources, another target dir, another build).
fn the_deploy_built_the_missing_zips(s: &Session, out: &Output, wall: f64) {
    let arch = lambda_architecture(&default_template());
    let dir = s.target.join("lambda").join(&arch);
    let log = text(out);
    println!("MEASURE deploy building the missing {arch} Lambda zip (this workspace's crates from scratch; third-party dependencies as earlier runs left them): {wall:.1}s");
    assert!(
        log.contains(&format!("Lambda zips missing in {}", dir.display())),
        "{log}"
    );
    for compiled in [BUILT_ZIP, "cfn-custom-resource"] {
        assert!(
            log.contains(&format!("Compiling {compiled} v")),
            "deploy did not compile {compiled}: {log}"
        );
    }
    for present_or_unused in [KEPT_ZIP, "airflow-scaler"] {
        assert!(
            !log.contains(&format!("Compiling {present_or_unused} v")),
            "deploy compiled {present_or_unused}: {log}"
        );
    }
    let shared = assets_dir(&arch);
    for crate_name in [KEPT_ZIP, BUILT_ZIP] {
        let built = std::fs::read(dir.join(crate_name).join("bootstrap.zip")).unwrap_or_else(|e| {
            panic!("deploy built no {crate_name} zip in {}: {e}", dir.display())
        });
        let reference = std::fs::read(shared.join(crate_name).join("bootstrap.zip")).unwrap();
        assert!(
            built == reference,
            "{crate_name}: the zip deploy built ({} bytes) differs from lambdas/build.sh's in {} ({} bytes): the build is not reproducible",
            built.len(),
            shared.display(),
            reference.len()
        );
    }
    assert!(!dir.join("airflow-scaler").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_lifecycle_against_the_emulator() {
    let s = Session::new();
    let dev = root().join("stacks/dev.yaml");

    // Before bootstrap, deploy says exactly what to run.
    let out = s.run(&["deploy", path(&dev), "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("run `airflow-stack bootstrap`"),
        "{}",
        text(&out)
    );

    let out = s.run(&["bootstrap", path(&dev)]);
    assert!(out.status.success(), "bootstrap failed");
    assert!(text(&out).contains("assets bucket"));

    without_cargo_lambda_deploy_says_how_to_install_it(&s, &dev);

    // A first deploy adds IAM statements and ingress rules: approval is needed, and
    // without a terminal it is refused, changing nothing. It is also the first deploy
    // that needs the Lambda zips: there are none, so it builds them first.
    let started = Instant::now();
    let out = s.run(&["deploy", path(&dev)]);
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("need approval") && text(&out).contains("--yes"),
        "{}",
        text(&out)
    );
    the_deploy_built_the_missing_zips(&s, &out, wall);

    first_deploy_runs_the_real_lambdas(&s, &dev).await;
    second_deploy_is_a_fast_no_op(&s, &dev);
    a_replaced_asset_is_refused(&s, &dev).await;
    update_applies_a_changed_setting(&s).await;
    diff_flags_a_new_ingress_rule_as_broadening(&s);
    failed_deploy_names_the_resource_and_reason(&s);
    large_template_goes_through_s3(&s);
    let denied = a_call_the_role_does_not_allow_fails_the_deploy(&s).await;
    a_failed_upgrade_rolls_back_without_migrating_down(&s).await;
    a_failed_first_deploy_is_deleted_by_id_and_created_again(&s);
    let functions = s.physical_ids_of("AWS::Lambda::Function").await;
    destroy_follows_the_stack_by_id(&s, &dev).await;
    every_lambda_call_was_authorized_by_its_role(&s, &functions, &denied);
}

async fn first_deploy_runs_the_real_lambdas(s: &Session, dev: &Path) {
    let outputs = s.dir.path().join("outputs.json");
    let started = Instant::now();
    let out = s.run(&[
        "deploy",
        path(dev),
        "--yes",
        "--outputs-file",
        path(&outputs),
    ]);
    println!(
        "MEASURE first deploy of stacks/dev.yaml against the emulator: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(out.status.success(), "first deploy failed: {}", text(&out));
    let log = text(&out);
    assert!(
        log.contains("CREATE_COMPLETE") && log.contains("| GeneratedSecrets ("),
        "per-resource progress with elapsed times: {log}"
    );
    assert!(
        log.contains("| Migration ("),
        "the migration shows as one step with its elapsed time"
    );
    let outputs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&outputs).unwrap()).unwrap();
    let stack = &outputs["airflow-dev"];
    assert_eq!(stack["DagPrefix"], "dags");
    assert_eq!(stack["ApiServerUrl"], "http://api-server.airflow:8080");
    let secrets = aws_sdk_secretsmanager::Client::new(&s.sdk_config().await);
    let value = |arn: &str| {
        let secrets = secrets.clone();
        let arn = arn.to_string();
        async move {
            secrets
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .expect("secret has a value")
                .secret_string()
                .unwrap()
                .to_string()
        }
    };
    let fernet = value(stack["FernetKeySecretArn"].as_str().unwrap()).await;
    assert_eq!(
        fernet.len(),
        44,
        "a Fernet key written by the real secrets Lambda"
    );
    let admin = value(stack["AdminSecretArn"].as_str().unwrap()).await;
    assert!(admin.len() == 32 && admin.chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(
        !log.contains(&fernet) && !log.contains(&admin),
        "a secret value reached the deploy output"
    );
}

fn second_deploy_is_a_fast_no_op(s: &Session, dev: &Path) {
    let started = Instant::now();
    let out = s.run(&["deploy", path(dev)]);
    let wall = started.elapsed().as_secs_f64();
    println!(
        "MEASURE no-change deploy against the emulator: {:.0} ms wall",
        wall * 1000.0
    );
    assert!(out.status.success());
    assert!(
        text(&out).contains("No changes: stack airflow-dev is up to date"),
        "{}",
        text(&out)
    );
    assert!(
        !text(&out).contains("UPDATE_"),
        "no change set may be executed"
    );
}

/// Someone with write access to the assets bucket puts other code under an asset's key
/// (the key is the zip's SHA-256, which a reproducible build makes predictable).
///
/// The function's code is pinned: the stack's version parameter for the asset is the
/// version id of the object deploy verified, so when CloudFormation reads the code
/// again after the swap (a function update), the function gets the verified bytes, not
/// the new version under the same key. The next deploy refuses, naming the object,
/// instead of trusting the name. Once the object is deleted, deploy uploads the real
/// zip again (with its checksum) as a new version and pins the function to it; the
/// deploy after that is a no-op again.
async fn a_replaced_asset_is_refused(s: &Session, dev: &Path) {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&s.sdk_config().await)
            .force_path_style(true)
            .build(),
    );
    let buckets = s3.list_buckets().send().await.unwrap();
    let mut found = None;
    for b in buckets.buckets() {
        let name = b.name().unwrap().to_string();
        let listed = s3
            .list_objects_v2()
            .bucket(&name)
            .prefix("assets/")
            .send()
            .await
            .unwrap();
        if let Some(object) = listed.contents().first() {
            found = Some((name, object.key().unwrap().to_string()));
            break;
        }
    }
    let (bucket, key) = found.expect("the first deploy uploaded its assets");
    let original = object_bytes(&s3, &bucket, &key).await;
    let verified = object_version(&s3, &bucket, &key).await;
    let (function, version_parameter) = asset_user(s, &key).await;
    assert_eq!(
        stack_parameters(s).await[&version_parameter],
        verified,
        "{function}'s code is pinned to the object version deploy verified"
    );

    let other = b"PK other code".to_vec();
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .body(other.clone().into())
        .send()
        .await
        .unwrap();
    assert_ne!(object_version(&s3, &bucket, &key).await, verified);
    // CloudFormation reads the code again when it updates the function (here its
    // timeout, through a change set with the stack's own parameters).
    let code_sha = s.emulator.python(FORCE_FUNCTION_UPDATE, &[&function]);
    assert_eq!(
        code_sha.trim(),
        base64_sha256(&original),
        "after the swap, {function} must still run the verified zip (the other code's CodeSha256 is {})",
        base64_sha256(&other)
    );

    let out = s.run(&["deploy", path(dev), "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let log = text(&out);
    assert!(
        log.contains(&format!("s3://{bucket}/{key} holds other code")),
        "{log}"
    );
    assert!(!log.contains("UPDATE_"), "nothing may be deployed: {log}");

    s3.delete_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    // The re-uploaded zip is a new object version: the function is updated to it (and
    // its timeout back to the template's), with no approval (the same verified bytes).
    let out = s.run(&["deploy", path(dev)]);
    assert!(out.status.success(), "{}", text(&out));
    let again = object_bytes(&s3, &bucket, &key).await;
    assert_eq!(again, original, "the real zip is back under its key");
    let reuploaded = object_version(&s3, &bucket, &key).await;
    assert_ne!(reuploaded, verified);
    assert_eq!(stack_parameters(s).await[&version_parameter], reuploaded);
    let out = s.run(&["deploy", path(dev)]);
    assert!(
        out.status.success() && text(&out).contains("No changes"),
        "the same key and version again: {}",
        text(&out)
    );
}

/// Updates one function of `airflow-dev` by a change set that only raises its timeout,
/// with the stack's current parameters, so CloudFormation reads its code again; prints
/// the function's CodeSha256 afterwards.
const FORCE_FUNCTION_UPDATE: &str = r#"
import json, sys, time
import boto3
logical = sys.argv[1]
cfn = boto3.client("cloudformation", region_name="us-east-1")
lam = boto3.client("lambda", region_name="us-east-1")
stack = cfn.describe_stacks(StackName="airflow-dev")["Stacks"][0]
body = cfn.get_template(StackName="airflow-dev")["TemplateBody"]
template = body if isinstance(body, dict) else json.loads(body)
template["Resources"][logical]["Properties"]["Timeout"] += 1
cs = cfn.create_change_set(
    StackName="airflow-dev", ChangeSetName="force-code-read", ChangeSetType="UPDATE",
    TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    Parameters=[{"ParameterKey": p["ParameterKey"], "ParameterValue": p["ParameterValue"]}
                for p in stack["Parameters"]],
    Tags=stack.get("Tags", []))
cfn.get_waiter("change_set_create_complete").wait(ChangeSetName=cs["Id"],
                                                  WaiterConfig={"Delay": 1})
cfn.execute_change_set(ChangeSetName=cs["Id"])
for _ in range(120):
    status = cfn.describe_stacks(StackName=cs["StackId"])["Stacks"][0]["StackStatus"]
    if not status.endswith("IN_PROGRESS"):
        break
    time.sleep(1)
assert status == "UPDATE_COMPLETE", status
name = cfn.describe_stack_resource(StackName="airflow-dev", LogicalResourceId=logical)[
    "StackResourceDetail"]["PhysicalResourceId"]
print(lam.get_function(FunctionName=name)["Configuration"]["CodeSha256"])
"#;

/// Lambda's CodeSha256 of a zip: its SHA-256, base64.
fn base64_sha256(bytes: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes))
}

/// The current version id of `s3://bucket/key`.
async fn object_version(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    head.version_id()
        .expect("the assets bucket is versioned")
        .to_string()
}

/// `airflow-dev`'s parameters by name.
async fn stack_parameters(s: &Session) -> std::collections::BTreeMap<String, String> {
    let cfn = aws_sdk_cloudformation::Client::new(&s.sdk_config().await);
    let out = cfn
        .describe_stacks()
        .stack_name("airflow-dev")
        .send()
        .await
        .unwrap();
    out.stacks()[0]
        .parameters()
        .iter()
        .map(|p| {
            (
                p.parameter_key().unwrap().to_string(),
                p.parameter_value().unwrap().to_string(),
            )
        })
        .collect()
}

/// The function whose code is under `key` (its logical id) and its version parameter,
/// from the stack's asset parameters (`<Function>CodeKey`, `<Function>CodeVersion`).
async fn asset_user(s: &Session, key: &str) -> (String, String) {
    let parameters = stack_parameters(s).await;
    let key_parameter = parameters
        .iter()
        .find(|(name, value)| name.ends_with("CodeKey") && value.as_str() == key)
        .map(|(name, _)| name.clone())
        .expect("an asset parameter names the key");
    let function = key_parameter.trim_end_matches("CodeKey").to_string();
    (function.clone(), format!("{function}CodeVersion"))
}

/// The bytes of `s3://bucket/key`.
async fn object_bytes(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let object = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    object.body.collect().await.unwrap().into_bytes().to_vec()
}

async fn update_applies_a_changed_setting(s: &Session) {
    let file = s.stack_file(
        "retention.yaml",
        &[("retention_days: 14", "retention_days: 30")],
    );
    let out = s.run(&["deploy", path(&file)]);
    assert!(
        out.status.success(),
        "an in-place change needs no approval: {}",
        text(&out)
    );
    let log = text(&out);
    assert!(
        log.contains("[~] modify") && log.contains("SchedulerLogGroup"),
        "{log}"
    );
    assert!(log.contains("UPDATE_COMPLETE"), "{log}");
    let logs = aws_sdk_cloudwatchlogs::Client::new(&s.sdk_config().await);
    let groups = logs
        .describe_log_groups()
        .log_group_name_prefix("/airflow-stack/airflow-dev/scheduler")
        .send()
        .await
        .unwrap();
    assert_eq!(
        groups.log_groups()[0].retention_in_days(),
        Some(30),
        "the new retention is applied"
    );
}

fn diff_flags_a_new_ingress_rule_as_broadening(s: &Session) {
    let file = s.stack_file(
        "flower.yaml",
        &[
            ("retention_days: 14", "retention_days: 30"),
            ("flower: { enabled: false }", "flower: { enabled: true }"),
        ],
    );
    let out = s.run(&["diff", path(&file)]);
    assert!(out.status.success());
    let log = text(&out);
    assert!(log.contains("[+] add    FlowerService"), "{log}");
    assert!(
        log.contains("Security-broadening changes")
            && log.contains("RedisFromFlowerIngress: ingress tcp 6379-6379"),
        "{log}"
    );
    let out = s.run(&["diff", path(&file), "--fail-on", "broadening"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "--fail-on broadening fails on a new ingress rule"
    );
    let out = s.run(&["diff", path(&file), "--fail-on", "destructive"]);
    assert!(out.status.success(), "adding resources is not destructive");
}

fn failed_deploy_names_the_resource_and_reason(s: &Session) {
    // The emulator writes these lines to the task's awslogs stream, where the migration
    // Lambda reads the end of its log for the FAILED reason.
    let lines = [
        "Running upgrade 3a1b2c -> 4d5e6f, emulated step",
        "sqlalchemy.exc.ProgrammingError: (psycopg2.errors.DuplicateTable) relation \"deploy_test_marker_7311\" already exists",
    ];
    s.emulator.set_task_output(&lines);
    s.emulator.set_task_exit_code(3);
    let file = s.stack_file(
        "image.yaml",
        &[
            ("retention_days: 14", "retention_days: 30"),
            (
                "auth_manager: fab",
                "auth_manager: fab\n  image: apache/airflow:3.3.2-python3.11",
            ),
        ],
    );
    let out = s.run(&["deploy", path(&file), "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    let log = text(&out);
    let report = log
        .split_once("deploy of airflow-dev failed")
        .map(|(_, report)| report)
        .unwrap_or_else(|| panic!("no failure report: {log}"));
    assert!(
        report.contains("first failure: Migration (Custom::AirflowMigration) UPDATE_FAILED"),
        "{report}"
    );
    assert!(
        report.contains("container migrate exited with code 3"),
        "the reason carries the exit code: {report}"
    );
    for line in lines {
        assert!(
            report.contains(line),
            "the reason carries the task's last log lines ({line:?}): {report}"
        );
    }
    assert!(
        report.contains("stack status: UPDATE_ROLLBACK_COMPLETE"),
        "{report}"
    );
    assert!(
        report.contains("describe-stack-events --stack-name arn:aws:cloudformation:"),
        "the report names the stack by ID: {report}"
    );
}

fn large_template_goes_through_s3(s: &Session) {
    // Flower's resources take the minified template over CloudFormation's 51,200-byte
    // TemplateBody limit: it must go up to the assets bucket and be passed by URL.
    let file = s.stack_file(
        "flower-deploy.yaml",
        &[
            ("retention_days: 14", "retention_days: 30"),
            ("flower: { enabled: false }", "flower: { enabled: true }"),
        ],
    );
    let out = s.run(&["deploy", path(&file), "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    let log = text(&out);
    assert!(
        log.contains("over the 51200-byte inline limit; passed as s3://"),
        "{log}"
    );
    assert!(
        log.contains("CREATE_COMPLETE") && log.contains("FlowerService"),
        "{log}"
    );
}

/// The migration Lambda's identity in the emulator: its function name.
const MIGRATION_FUNCTION: &str = "airflow-dev-migration";

/// Calls recorded after `since` (a `seq`).
fn calls_after(s: &Session, since: u64) -> Vec<serde_json::Value> {
    s.emulator
        .calls()
        .into_iter()
        .filter(|c| c["seq"].as_u64().unwrap_or(0) > since)
        .collect()
}

fn describe_call(c: &serde_json::Value) -> String {
    format!(
        "#{} {} {} on {}: {}",
        c["seq"], c["identity"], c["action"], c["resource"], c["reason"]
    )
}

/// The resources the deploy plan lists as added, modified or removed.
fn planned_changes(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.starts_with(" [+] ") || l.starts_with(" [~] ") || l.starts_with(" [-] "))
        .filter_map(|l| l.split_whitespace().nth(2).map(String::from))
        .collect()
}

/// Python (boto3, as the unrestricted operator): removes `action` from a role's inline
/// policy and prints the original document, which `RESTORE_POLICY` puts back.
const REMOVE_ACTION: &str = r#"
import ast, json, sys, boto3
role, name, action = sys.argv[1:4]
iam = boto3.client("iam", region_name="us-east-1")
doc = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
if isinstance(doc, str):  # moto answers a template-made policy as a Python dict's repr
    doc = json.loads(doc) if doc.lstrip().startswith('{"') else ast.literal_eval(doc)
kept = [st for st in doc["Statement"] if action not in st["Action"]]
assert len(kept) < len(doc["Statement"]), f"{action} is not in {name}"
iam.put_role_policy(RoleName=role, PolicyName=name,
                    PolicyDocument=json.dumps({**doc, "Statement": kept}))
print(json.dumps(doc))
"#;

const RESTORE_POLICY: &str = r#"
import sys, boto3
boto3.client("iam", region_name="us-east-1").put_role_policy(RoleName=sys.argv[1], PolicyName=sys.argv[2],
                                    PolicyDocument=sys.argv[3])
"#;

/// Enforcement bites: with `ecs:RunTask` taken out of the migration Lambda's role (as a
/// drifted or hand-edited role would be), an upgrade fails on the denied call, named in
/// the CLI's report. Its rollback lowers the version, so the Lambda makes no call at all
/// and the rollback completes although RunTask is still denied: defect 4 end to end.
/// Returns the `seq` range of the calls made meanwhile (the expected denials).
async fn a_call_the_role_does_not_allow_fails_the_deploy(s: &Session) -> (u64, u64) {
    // The image pinned to what 3.3.2 gives and a new version: only the migration resource
    // changes, so the stack update leaves the role as the test set it.
    let file = s.stack_file(
        "denied.yaml",
        &[
            ("retention_days: 14", "retention_days: 30"),
            ("flower: { enabled: false }", "flower: { enabled: true }"),
            ("version: \"3.3.2\"", "version: \"3.3.3\""),
            (
                "auth_manager: fab",
                "auth_manager: fab\n  image: apache/airflow:3.3.2-python3.12",
            ),
        ],
    );
    let role = s.physical_id("MigrationFunctionRole").await;
    let original = s
        .emulator
        .python(REMOVE_ACTION, &[&role, "run-migration", "ecs:RunTask"]);
    let since = s.emulator.last_call_seq();
    let started = Instant::now();
    let out = s.run(&["deploy", path(&file), "--yes"]);
    println!(
        "MEASURE deploy with a denied Lambda call, rolled back: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    s.emulator
        .python(RESTORE_POLICY, &[&role, "run-migration", original.trim()]);
    let until = s.emulator.last_call_seq();
    let log = text(&out);
    assert_eq!(planned_changes(&log), ["Migration"], "{log}");
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("first failure: Migration (Custom::AirflowMigration) UPDATE_FAILED: could not start the migration task")
            && log.contains("is not authorized to perform: ecs:RunTask"),
        "the report names the denied call: {log}"
    );
    assert!(
        log.contains("stack status: UPDATE_ROLLBACK_COMPLETE"),
        "the rollback (version down) makes no call, so RunTask's denial cannot fail it: {log}"
    );
    let denied: Vec<_> = calls_after(s, since)
        .into_iter()
        .filter(|c| c["allowed"] == false)
        .collect();
    assert!(!denied.is_empty(), "the emulator recorded no denial");
    for c in &denied {
        assert!(
            c["identity"] == MIGRATION_FUNCTION && c["action"] == "ecs:RunTask",
            "only the migration's RunTask may be denied: {}",
            describe_call(c)
        );
    }
    (since, until)
}

/// An upgrade whose migration succeeds but whose rollout fails rolls back to
/// UPDATE_ROLLBACK_COMPLETE: the rollback's Update of `Migration` lowers the version, so
/// the Lambda runs no task (the emulator's schema model would fail the older migrate
/// with exit 1, leaving UPDATE_ROLLBACK_FAILED), and the CLI says what became of the
/// database. NEEDS the emulator hook `POST /_emulator/fail-resource`.
async fn a_failed_upgrade_rolls_back_without_migrating_down(s: &Session) {
    let file = s.stack_file(
        "upgrade.yaml",
        &[
            ("retention_days: 14", "retention_days: 30"),
            ("flower: { enabled: false }", "flower: { enabled: true }"),
            ("version: \"3.3.2\"", "version: \"3.3.3\""),
        ],
    );
    // A service that depends on the migration fails, as a crash-looping 3.3.3 container
    // would through the deployment circuit breaker.
    s.emulator.fail_resource(
        "WorkerService",
        "Error occurred during operation 'ECS Deployment Circuit Breaker was triggered'.",
    );
    let since = s.emulator.last_call_seq();
    let started = Instant::now();
    let out = s.run(&["deploy", path(&file), "--yes"]);
    println!(
        "MEASURE failed upgrade and its rollback: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("first failure: WorkerService (AWS::ECS::Service) UPDATE_FAILED"),
        "{log}"
    );
    assert!(
        log.contains("stack status: UPDATE_ROLLBACK_COMPLETE"),
        "a failed upgrade must roll back completely: {log}"
    );
    assert!(
        log.contains("the migration to Airflow 3.3.3 had completed before the failure")
            && log.contains("returned the stack to 3.3.2 and ran no migration"),
        "the CLI says what became of the database: {log}"
    );
    let schema = s.emulator.get_json("/_emulator/schema")["schema"].clone();
    assert!(
        schema
            .as_object()
            .is_some_and(|m| m.values().any(|v| v["version"] == "3.3.3")),
        "the forward migration moved the schema model to 3.3.3: {schema}"
    );
    let runs: Vec<_> = calls_after(s, since)
        .into_iter()
        .filter(|c| c["identity"] == MIGRATION_FUNCTION && c["action"] == "ecs:RunTask")
        .collect();
    assert_eq!(
        runs.len(),
        1,
        "one migration task (the upgrade's), none for the rollback: {:?}",
        runs.iter().map(describe_call).collect::<Vec<_>>()
    );
    assert_lambda_logged(s, "Airflow version goes down: no migration").await;
}

/// A first deploy that fails leaves ROLLBACK_COMPLETE; the next deploy deletes that
/// stack (followed by its ID to DELETE_COMPLETE, where the name no longer answers) and
/// creates it again. A stack of its own, so the main one is untouched.
fn a_failed_first_deploy_is_deleted_by_id_and_created_again(s: &Session) {
    let file = s.stack_file(
        "second.yaml",
        &[("name: airflow-dev", "name: airflow-second")],
    );
    s.emulator.fail_resource(
        "WorkerService",
        "Error occurred during operation 'ECS Deployment Circuit Breaker was triggered'.",
    );
    let out = s.run(&["deploy", path(&file), "--yes"]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("stack status: ROLLBACK_COMPLETE"), "{log}");
    let started = Instant::now();
    let out = s.run(&["deploy", path(&file), "--yes"]);
    println!(
        "MEASURE deploy over a ROLLBACK_COMPLETE stack (delete, then create): {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("deleting it before creating it again") && !log.contains("does not exist"),
        "{log}"
    );
    assert!(log.contains("Deployed airflow-second in"), "{log}");
}

/// The migration Lambda wrote `needle` to its log group (the one its LoggingConfig names).
async fn assert_lambda_logged(s: &Session, needle: &str) {
    let logs = aws_sdk_cloudwatchlogs::Client::new(&s.sdk_config().await);
    let group = "/airflow-stack/airflow-dev/migration-function";
    let events = logs
        .filter_log_events()
        .log_group_name(group)
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot read {group}: {e:?}"));
    let messages: Vec<&str> = events.events().iter().filter_map(|e| e.message()).collect();
    assert!(
        messages.iter().any(|m| m.contains(needle)),
        "{group} has no line with {needle:?}: {messages:?}"
    );
}

async fn destroy_follows_the_stack_by_id(s: &Session, dev: &Path) {
    let out = s.run(&["destroy", path(dev)]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "no terminal and no --yes: refused"
    );
    assert!(text(&out).contains("--yes"));
    let physical = s.physical_id("DataBucket").await;
    let cfn = aws_sdk_cloudformation::Client::new(&s.sdk_config().await);
    let stack_id = cfn
        .describe_stacks()
        .stack_name("airflow-dev")
        .send()
        .await
        .unwrap()
        .stacks()[0]
        .stack_id()
        .unwrap()
        .to_string();
    let out = s.run(&["destroy", path(dev), "--yes"]);
    let log = text(&out);
    assert!(out.status.success(), "destroy failed: {log}");
    assert!(
        !log.contains("does not exist"),
        "destroy lost track of the stack: {log}"
    );
    assert!(
        log.contains(&format!("Deleted stack airflow-dev ({stack_id}).")),
        "{log}"
    );
    // Followed by name, the deleted stack vanished before its last event could be read.
    assert!(
        log.lines().any(|l| l.contains("| DELETE_COMPLETE")
            && l.contains("| AWS::CloudFormation::Stack")
            && l.ends_with("| airflow-dev")),
        "the deletion is followed to the stack's own DELETE_COMPLETE event: {log}"
    );
    for kept in [
        format!("bucket {physical}"),
        "FernetKeySecret".to_string(),
        "DatabaseSecret".to_string(),
        "a final snapshot of database".to_string(),
    ] {
        assert!(
            log.contains(&kept),
            "{kept} missing from the kept list: {log}"
        );
    }
    // As on AWS: a deleted stack is unknown by name and DELETE_COMPLETE by ID.
    let by_name = cfn.describe_stacks().stack_name("airflow-dev").send().await;
    let error = format!(
        "{:?}",
        by_name.expect_err("a deleted stack is unknown by name")
    );
    assert!(error.contains("does not exist"), "{error}");
    let by_id = cfn
        .describe_stacks()
        .stack_name(&stack_id)
        .send()
        .await
        .expect("a deleted stack is known by ID");
    assert_eq!(
        by_id.stacks()[0].stack_status().map(|s| s.as_str()),
        Some("DELETE_COMPLETE")
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&s.sdk_config().await)
            .force_path_style(true)
            .build(),
    );
    assert!(
        s3.head_bucket().bucket(&physical).send().await.is_ok(),
        "the data bucket survives destroy"
    );
    let out = s.run(&["destroy", path(dev), "--yes"]);
    assert!(out.status.success() && text(&out).contains("does not exist"));
}

/// Every call the stack's Lambdas made in the whole scenario was authorized by their own
/// roles, except the denials `denied` (a `seq` range) provoked on purpose.
fn every_lambda_call_was_authorized_by_its_role(
    s: &Session,
    functions: &[(String, String)],
    denied: &(u64, u64),
) {
    let calls = s.emulator.calls();
    for (logical, name) in functions {
        assert!(
            calls.iter().any(|c| c["identity"] == name.as_str()),
            "{logical} ({name}) ran but the emulator recorded no call under its identity"
        );
    }
    let unexpected: Vec<String> = calls
        .iter()
        .filter(|c| c["allowed"] == false)
        .filter(|c| !(denied.0..=denied.1).contains(&c["seq"].as_u64().unwrap_or(0)))
        .map(describe_call)
        .collect();
    assert!(
        unexpected.is_empty(),
        "calls the Lambdas' roles do not allow:\n{}",
        unexpected.join("\n")
    );
    println!(
        "MEASURE IAM decisions recorded for the Lambdas: {} ({} functions)",
        calls.len(),
        functions.len()
    );
}
