//! `airflow-stack rotate-fernet` against the local AWS emulator
//! (tests/aws_emulator/server.py), after real deploys of stacks/dev.yaml: the secrets
//! Lambda puts a new key in front of the old ones, the command runs the stack's
//! re-encryption task through ECS (the emulator checks its network path, its execution
//! role's secrets and its path to the database), and drops the old keys only after the
//! task exited 0. The real `airflow rotate-fernet-key` against PostgreSQL is in the
//! end-to-end run (tests/e2e, test_fernet_rotation_keeps_connections_readable).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::emulator::{target_dir, Emulator};
use common::root;

struct Session {
    emulator: Emulator,
    dir: tempfile::TempDir,
}

impl Session {
    fn run(&self, args: &[&str]) -> Output {
        let out = self
            .emulator
            .cli(&target_dir())
            .args(args)
            .output()
            .expect("run airflow-stack");
        eprintln!(
            "$ airflow-stack {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// stacks/dev.yaml with a rotation token (none: the file as it is).
    fn stack_file(&self, token: Option<&str>) -> PathBuf {
        let mut text = std::fs::read_to_string(root().join("stacks/dev.yaml")).unwrap();
        assert!(
            !text.contains("\nsecrets:"),
            "stacks/dev.yaml sets secrets: already"
        );
        if let Some(token) = token {
            text.push_str(&format!("\nsecrets:\n  fernet_rotation: \"{token}\"\n"));
        }
        let path = self.dir.path().join("stack.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn deploy(&self, file: &Path) {
        let out = self.run(&["deploy", file.to_str().unwrap(), "--yes"]);
        assert!(out.status.success(), "deploy failed: {}", text(&out));
    }

    /// The Fernet secret's keys, newest first, read as the operator.
    fn keys(&self) -> Vec<String> {
        let value = self.emulator.python(
            r#"
import boto3
boto3.setup_default_session(region_name="us-east-1")
cfn, sm = boto3.client("cloudformation"), boto3.client("secretsmanager")
arn = cfn.describe_stack_resource(StackName="airflow-dev", LogicalResourceId="FernetKeySecret")["StackResourceDetail"]["PhysicalResourceId"]
print(sm.get_secret_value(SecretId=arn)["SecretString"])
"#,
            &[],
        );
        value.trim().split(',').map(str::to_owned).collect()
    }

    /// Each ECS service's primary deployment id, by logical id.
    fn deployments(&self) -> serde_json::Value {
        let out = self.emulator.python(
            r#"
import boto3, json
boto3.setup_default_session(region_name="us-east-1")
cfn, ecs = boto3.client("cloudformation"), boto3.client("ecs")
res = cfn.describe_stack_resources(StackName="airflow-dev")["StackResources"]
cluster = next(r["PhysicalResourceId"] for r in res if r["ResourceType"] == "AWS::ECS::Cluster")
out = {}
for r in res:
    if r["ResourceType"] == "AWS::ECS::Service":
        svc = ecs.describe_services(cluster=cluster, services=[r["PhysicalResourceId"]])["services"][0]
        out[r["LogicalResourceId"]] = svc["deployments"][0]["id"]
print(json.dumps(out))
"#,
            &[],
        );
        serde_json::from_str(&out).unwrap()
    }

    /// The task definition family and security groups of the tasks the command started.
    fn rotation_tasks(&self) -> Vec<serde_json::Value> {
        let out = self.emulator.python(
            r#"
import boto3, json
boto3.setup_default_session(region_name="us-east-1")
cfn, ecs, ec2 = boto3.client("cloudformation"), boto3.client("ecs"), boto3.client("ec2")
res = cfn.describe_stack_resources(StackName="airflow-dev")["StackResources"]
cluster = next(r["PhysicalResourceId"] for r in res if r["ResourceType"] == "AWS::ECS::Cluster")
migrate_sg = next(r["PhysicalResourceId"] for r in res if r["LogicalResourceId"] == "MigrateSecurityGroup")
arns = ecs.list_tasks(cluster=cluster, startedBy="airflow-stack rotate-fernet", desiredStatus="STOPPED")["taskArns"]
tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
print(json.dumps([{
    "family": ecs.describe_task_definition(taskDefinition=t["taskDefinitionArn"])["taskDefinition"]["family"],
    "migrate_sg_only": [d["value"] for a in t.get("attachments", []) for d in a["details"] if d["name"] == "securityGroupId"] in ([], [migrate_sg]),
    "exit": [c.get("exitCode") for c in t["containers"]],
} for t in tasks]))
"#,
            &[],
        );
        serde_json::from_str(&out).unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn rotation_reencrypts_before_it_drops_a_key() {
    let s = Session {
        emulator: Emulator::start(),
        dir: tempfile::tempdir().unwrap(),
    };
    let plain = s.stack_file(None);
    let file = plain.to_str().unwrap();
    assert!(s.run(&["bootstrap", file]).status.success());
    s.deploy(&plain);
    let first = s.keys();
    assert_eq!(first.len(), 1, "a new stack has one Fernet key");

    // One key: nothing to re-encrypt, and the command says what to do first.
    let out = s.run(&["rotate-fernet", file, "--drop-old-keys"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("secrets.fernet_rotation"),
        "{}",
        text(&out)
    );

    // The first half: a deploy with a token puts a new key in front of the old one.
    s.deploy(&s.stack_file(Some("2026-12-01")));
    let rotated = s.keys();
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    assert_eq!(
        rotated[1], first[0],
        "the old key stays, behind the new one"
    );

    // A failed re-encryption keeps every key and shows the task's log without secrets.
    let leak = format!(
        "sqlalchemy.exc.OperationalError: postgresql+psycopg2://airflow:Hunter2Hunter2Hunter2@db:5432/airflow key {}",
        rotated[1]
    );
    s.emulator
        .set_task_output(&["Traceback (most recent call last):", &leak]);
    s.emulator.set_task_exit_code(1);
    let before = s.deployments();
    let out = s.run(&["rotate-fernet", file, "--drop-old-keys"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("exit code 1") && said.contains("every key is kept"),
        "{said}"
    );
    assert!(
        said.contains("Traceback") && said.contains("airflow:***@db"),
        "{said}"
    );
    assert!(
        !said.contains("Hunter2Hunter2") && !said.contains(&rotated[1]),
        "{said}"
    );
    assert!(!said.contains(&rotated[0]), "{said}");
    assert_eq!(s.keys(), rotated, "a failed task changed the keys");
    assert_eq!(s.deployments(), before, "a failed task restarted a service");

    // Success: the old key goes, and exactly the services that read the key restart.
    let out = s.run(&["rotate-fernet", file, "--drop-old-keys"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(s.keys(), vec![rotated[0].clone()]);
    let after = s.deployments();
    for (service, id) in after.as_object().unwrap() {
        let restarted = *id != before[service];
        let reads_key = !service.contains("Worker") && !service.contains("Redis");
        assert_eq!(restarted, reads_key, "{service}: restarted {restarted}");
    }
    let tasks = s.rotation_tasks();
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    for t in &tasks {
        assert_eq!(t["family"], "airflow-dev-rotate-fernet", "{t}");
        assert_eq!(t["migrate_sg_only"], true, "{t}");
    }

    // Without --drop-old-keys and no terminal, the keys stay and the command says how
    // to drop them later.
    s.deploy(&s.stack_file(Some("2026-12-02")));
    let again = s.keys();
    assert_eq!(again.len(), 2);
    let out = s.run(&["rotate-fernet", file]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("--drop-old-keys"), "{}", text(&out));
    assert_eq!(s.keys(), again);
}
