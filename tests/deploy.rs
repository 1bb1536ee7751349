//! `bootstrap`, `deploy`, `diff` and `destroy` against the local AWS emulator (the
//! patched moto server in tests/aws_emulator), with the real Rust Lambdas executing the
//! custom resources. One scenario, in order, as a user would run it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use common::emulator::{assets_dir, Emulator};
use common::{cli, root};

struct Session {
    emulator: Emulator,
    dir: tempfile::TempDir,
}

impl Session {
    fn new() -> Session {
        Session {
            emulator: Emulator::start(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs the CLI against the emulator, with stdin not a terminal (as in CI).
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = cli();
        cmd.args(args)
            .env("AIRFLOW_STACK_ASSETS_DIR", assets_dir())
            .env_remove("AWS_PROFILE")
            .stdin(std::process::Stdio::null());
        for (k, v) in self.emulator.env() {
            cmd.env(k, v);
        }
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

    // A first deploy adds IAM statements and ingress rules: approval is needed, and
    // without a terminal it is refused, changing nothing.
    let out = s.run(&["deploy", path(&dev)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("need approval") && text(&out).contains("--yes"),
        "{}",
        text(&out)
    );

    first_deploy_runs_the_real_lambdas(&s, &dev).await;
    second_deploy_is_a_fast_no_op(&s, &dev);
    update_applies_a_changed_setting(&s).await;
    diff_flags_a_new_ingress_rule_as_broadening(&s);
    failed_deploy_names_the_resource_and_reason(&s);
    large_template_goes_through_s3(&s);
    destroy_lists_what_is_kept(&s, &dev).await;
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
    assert!(
        log.contains("first failure: Migration (Custom::AirflowMigration) UPDATE_FAILED"),
        "{log}"
    );
    assert!(
        log.contains("exit") && log.contains('3'),
        "the reason carries the exit code: {log}"
    );
    assert!(
        log.contains("stack status: UPDATE_ROLLBACK_COMPLETE"),
        "{log}"
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

async fn destroy_lists_what_is_kept(s: &Session, dev: &Path) {
    let out = s.run(&["destroy", path(dev)]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "no terminal and no --yes: refused"
    );
    assert!(text(&out).contains("--yes"));
    let physical = {
        let cfn = aws_sdk_cloudformation::Client::new(&s.sdk_config().await);
        let res = cfn
            .describe_stack_resource()
            .stack_name("airflow-dev")
            .logical_resource_id("DataBucket")
            .send()
            .await
            .unwrap();
        res.stack_resource_detail()
            .unwrap()
            .physical_resource_id()
            .unwrap()
            .to_string()
    };
    let out = s.run(&["destroy", path(dev), "--yes"]);
    assert!(out.status.success(), "destroy failed: {}", text(&out));
    let log = text(&out);
    assert!(log.contains("Deleted stack airflow-dev."), "{log}");
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
