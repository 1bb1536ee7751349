//! `airflow.lambda_functions` (issue 16, point 3): the functions DAGs may invoke with the
//! tracked Lambda operator (providers/airflow-stack-lambda). The workers' task role may
//! invoke them, read their configuration and search their log groups; the triggerer's
//! may only search the log groups; no other role gets anything, and an empty list
//! changes nothing. The list turns the image build on, and the build context carries the
//! provider, which the install script installs. Bad entries exit 2 with the field.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{cli, root, synth, venv_bin};
use serde_json::{json, Value};

/// A name in the stack's account and region, an ARN with an alias in another region
/// and account, and a function with a log group of its own.
const FUNCTIONS: &str = "  lambda_functions:
    - load-orders
    - arn:aws:lambda:eu-west-1:210987654321:function:reports:live
    - function: enrich
      log_group: /team/functions
";

fn write_stack(dir: &Path, text: &str) -> PathBuf {
    let file = dir.join("stack.yaml");
    std::fs::write(&file, text).unwrap();
    file
}

fn template_of(text: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    serde_json::from_str(&synth(&write_stack(dir.path(), text), "json")).unwrap()
}

/// A stack file `name: lf` in us-east-1 with these `airflow:` lines and more top-level
/// text.
fn stack(airflow: &str, more: &str) -> String {
    format!("name: lf\nregion: us-east-1\nairflow:\n{airflow}{more}")
}

/// The statements of a role's inline policies.
fn statements(t: &Value, role: &str) -> Vec<Value> {
    t["Resources"][role]["Properties"]["Policies"]
        .as_array()
        .unwrap_or_else(|| panic!("{role} has no policies"))
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap().clone())
        .collect()
}

fn arn(service: &str, resource: &str) -> Value {
    json!({"Fn::Join": ["", [
        "arn:", {"Ref": "AWS::Partition"}, format!(":{service}:"), {"Ref": "AWS::Region"}, ":",
        {"Ref": "AWS::AccountId"}, ":", resource
    ]]})
}

#[test]
fn the_worker_and_triggerer_role_policies_match_their_snapshot() {
    let t = template_of(&stack(FUNCTIONS, ""));
    let policies = json!({
        "WorkerTaskRole": t["Resources"]["WorkerTaskRole"]["Properties"]["Policies"],
        "TriggererTaskRole": t["Resources"]["TriggererTaskRole"]["Properties"]["Policies"],
    });
    insta::assert_json_snapshot!("worker_and_triggerer_policies", policies);
}

#[test]
fn the_worker_may_invoke_and_follow_the_functions_and_the_triggerer_only_follow() {
    let t = template_of(&stack(FUNCTIONS, ""));
    let invoke = json!({
        "Effect": "Allow",
        "Action": ["lambda:InvokeFunction", "lambda:GetFunctionConfiguration"],
        "Resource": [
            arn("lambda", "function:load-orders"),
            arn("lambda", "function:load-orders:*"),
            "arn:aws:lambda:eu-west-1:210987654321:function:reports:live",
            arn("lambda", "function:enrich"),
            arn("lambda", "function:enrich:*"),
        ]
    });
    let follow = json!({
        "Effect": "Allow",
        "Action": ["logs:FilterLogEvents"],
        "Resource": [
            arn("logs", "log-group:/aws/lambda/load-orders"),
            arn("logs", "log-group:/aws/lambda/load-orders:*"),
            "arn:aws:logs:eu-west-1:210987654321:log-group:/aws/lambda/reports",
            "arn:aws:logs:eu-west-1:210987654321:log-group:/aws/lambda/reports:*",
            arn("logs", "log-group:/team/functions"),
            arn("logs", "log-group:/team/functions:*"),
        ]
    });
    // Everything else in both roles is what they have without the list.
    let plain = template_of(&stack("  load_examples: false\n", ""));
    let mut worker = statements(&plain, "WorkerTaskRole");
    worker.extend([invoke, follow.clone()]);
    assert_eq!(statements(&t, "WorkerTaskRole"), worker);
    let mut triggerer = statements(&plain, "TriggererTaskRole");
    triggerer.push(follow);
    assert_eq!(statements(&t, "TriggererTaskRole"), triggerer);
}

/// The logical ids of the resources whose text names one of `needles`.
fn naming(t: &Value, needles: &[&str]) -> Vec<String> {
    t["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| {
            let text = r.to_string();
            needles.iter().any(|n| text.contains(n))
        })
        .map(|(id, _)| id.clone())
        .collect()
}

const GRANTED: &[&str] = &[
    "load-orders",
    "function:reports",
    "/team/functions",
    "lambda:GetFunctionConfiguration",
    "logs:FilterLogEvents",
];

#[test]
fn no_other_role_or_resource_names_the_functions_or_their_log_groups() {
    for (shape, more, roles) in [
        ("separate", "", vec!["TriggererTaskRole", "WorkerTaskRole"]),
        (
            "packed core, Flower, secrets backend, autoscaling, a created key",
            "services:\n  packing: core\n  flower: { enabled: true }\nnetwork:\n  nat_gateways: 1\nautoscaling:\n  enabled: true\nencryption:\n  kms_key: create\n",
            vec!["CoreTaskRole", "WorkerTaskRole"],
        ),
    ] {
        let airflow = format!("{FUNCTIONS}  secrets_backend: {{}}\n");
        let t = template_of(&stack(&airflow, more));
        assert_eq!(naming(&t, GRANTED), roles, "{shape}");
        // The triggerer's statement only, in the role of the task that runs it.
        let triggerer = roles[0];
        let text: Vec<String> = statements(&t, triggerer)
            .iter()
            .map(Value::to_string)
            .filter(|s| GRANTED.iter().any(|n| s.contains(n)))
            .collect();
        assert_eq!(text.len(), 1, "{shape}: {text:?}");
        assert!(text[0].contains("\"logs:FilterLogEvents\""), "{shape}");
        assert!(!text[0].contains("lambda:"), "{shape}");
    }
}

#[test]
fn an_empty_list_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for example in ["dev", "prod"] {
        let original = root().join(format!("stacks/{example}.yaml"));
        let text = std::fs::read_to_string(&original).unwrap();
        let with_empty = text.replacen("airflow:\n", "airflow:\n  lambda_functions: []\n", 1);
        assert_ne!(with_empty, text, "{example} has an airflow block");
        let file = dir.path().join(format!("{example}.yaml"));
        std::fs::write(&file, with_empty).unwrap();
        for format in ["json", "yaml"] {
            assert_eq!(
                synth(&file, format),
                synth(&original, format),
                "{example} {format}"
            );
        }
    }
}

/// `validate` of a stack file with these `airflow:` lines: exit code 2 and stderr.
fn refused(airflow: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = write_stack(dir.path(), &stack(airflow, ""));
    let out = cli().arg("validate").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{airflow}: {stderr}");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    stderr
}

#[test]
fn bad_entries_are_refused_with_the_field_and_what_is_valid() {
    let cases = [
        (
            "  lambda_functions: [load-orders, \"load*\"]\n",
            ":4:35: airflow.lambda_functions[1]: ",
            "is neither a Lambda function name (1-64 letters, digits, - and _",
        ),
        (
            "  lambda_functions:\n    - a\n    - b\n    - function: arn:aws:lambda:eu-west-1:1234:function:x\n",
            ":7:7: airflow.lambda_functions[2].function: ",
            "nor a function ARN such as arn:aws:lambda:eu-west-1:123456789012:function:load-orders",
        ),
        (
            "  lambda_functions:\n    - arn:aws:lambda:eu-west-1:123456789012:function:x:a:b\n",
            "airflow.lambda_functions[0]: ",
            "optionally ending in :<version or alias>",
        ),
        (
            "  lambda_functions:\n    - load-orders\n    - x\n    - function: load-orders\n      log_group: /other\n",
            ":7:7: airflow.lambda_functions[2]: ",
            "\"load-orders\" is listed twice (also airflow.lambda_functions[0])",
        ),
        (
            "  lambda_functions:\n    - function: x\n      log_group: /aws/lambda/*\n",
            ":6:7: airflow.lambda_functions[0].log_group: ",
            "is not a log group name: 1-512 letters, digits and . - _ / #",
        ),
        (
            "  lambda_functions:\n    - function: x\n      log_groups: /x\n",
            "airflow.lambda_functions[0].log_groups: ",
            "unknown field `log_groups`, expected `function` or `log_group`",
        ),
        (
            "  lambda_functions:\n    - log_group: /x\n",
            "airflow.lambda_functions[0]: ",
            "missing field `function`",
        ),
        (
            "  lambda_functions: load-orders\n",
            "airflow.lambda_functions: ",
            "expected a sequence",
        ),
    ];
    for (airflow, spot, words) in cases {
        let err = refused(airflow);
        assert!(err.contains(spot), "{airflow}: expected {spot:?} in {err}");
        assert!(
            err.contains(words),
            "{airflow}: expected {words:?} in {err}"
        );
    }
}

/// A function name of 64 characters whose log group has a long custom name.
fn long_entry(i: usize) -> String {
    format!(
        "    - function: f{i:03}-{}\n      log_group: /g{i:03}-{}\n",
        "x".repeat(59),
        "y".repeat(250)
    )
}

/// The template's value with the stack's pseudo parameters as AWS fills them in
/// (`aws`, the region, a 12-digit account); other references as 60 characters.
fn deployed(v: &Value, region: &str) -> Value {
    match v {
        Value::Object(m) if m.contains_key("Ref") => Value::String(match m["Ref"].as_str() {
            Some("AWS::Partition") => "aws".into(),
            Some("AWS::Region") => region.into(),
            Some("AWS::AccountId") => "123456789012".into(),
            _ => "r".repeat(60),
        }),
        Value::Object(m) if m.contains_key("Fn::GetAtt") => Value::String("a".repeat(60)),
        Value::Object(m) if m.contains_key("Fn::Join") => {
            let parts = m["Fn::Join"][1].as_array().unwrap();
            Value::String(
                parts
                    .iter()
                    .map(|p| deployed(p, region).as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
                    .join(m["Fn::Join"][0].as_str().unwrap()),
            )
        }
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), deployed(v, region)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| deployed(v, region)).collect()),
        other => other.clone(),
    }
}

/// The size of a role's inline policies as IAM counts it: names and documents, without
/// white space.
fn policy_characters(t: &Value, role: &str) -> usize {
    t["Resources"][role]["Properties"]["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            p["PolicyName"].as_str().unwrap().len()
                + deployed(&p["PolicyDocument"], "ap-southeast-2")
                    .to_string()
                    .len()
        })
        .sum()
}

#[test]
fn the_grants_fit_one_role_with_everything_else_on() {
    // Everything that adds to the workers' role: deep prefixes, the secrets backend,
    // task protection (autoscaling) and a customer-managed key.
    let more = "storage:\n  dags_prefix: some/deeper/prefix/for/dags\n  logs_prefix: some/deeper/prefix/for/logs\nnetwork:\n  nat_gateways: 1\nautoscaling:\n  enabled: true\nencryption:\n  kms_key: create\n";
    let backend = "  secrets_backend:\n    connections_prefix: a-rather-long/prefix-for/airflow-connections\n    variables_prefix: a-rather-long/prefix-for/airflow-variables\n";
    let list = |n: usize| {
        let entries: String = (0..n).map(long_entry).collect();
        format!("{backend}  lambda_functions:\n{entries}")
    };
    let text =
        |n: usize| stack(&list(n), more).replace("region: us-east-1", "region: ap-southeast-2");
    // The most entries of this size that are accepted.
    let dir = tempfile::tempdir().unwrap();
    let accepted = |n: usize| {
        let file = write_stack(dir.path(), &text(n));
        cli().arg("validate").arg(&file).output().unwrap()
    };
    let most = (1..40).take_while(|n| accepted(*n).status.success()).last();
    let most = most.expect("one long entry fits");
    assert!(most >= 5, "only {most} long entries fit");
    let t = template_of(&text(most));
    let size = policy_characters(&t, "WorkerTaskRole");
    assert!(
        size <= 10_240,
        "{most} entries: the workers' policies take {size} characters, IAM allows 10,240"
    );
    println!("{most} long entries accepted; the workers' policies: {size} of 10,240 characters");
    let over = accepted(most + 1);
    assert_eq!(over.status.code(), Some(2));
    let err = String::from_utf8_lossy(&over.stderr);
    assert!(
        err.contains("airflow.lambda_functions: ") && err.contains("IAM allows 10240 per role"),
        "{err}"
    );
}

/// `image-context` of a stack file into `<dir>/context`.
fn image_context(stack: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("context");
    let run = cli()
        .args(["image-context", "--out"])
        .arg(&out)
        .arg(stack)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "image-context failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

/// The provider's files as the package is built from them.
fn provider_files() -> Vec<String> {
    let base = root().join("providers/airflow-stack-lambda");
    let mut files = vec!["README.md".to_string(), "pyproject.toml".to_string()];
    for entry in std::fs::read_dir(base.join("src/airflow_stack_lambda")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".py") {
            files.push(format!("src/airflow_stack_lambda/{name}"));
        }
    }
    files
}

/// Runs the context's install script the way the e2e harness does (from another folder,
/// `AIRFLOW_STACK_CONSTRAINTS` set), with a `pip` that records its arguments.
fn run_install_script(context: &Path, args: &[&Path]) -> Vec<String> {
    let bin = tempfile::tempdir().unwrap();
    let record = bin.path().join("pip-args");
    std::fs::write(
        bin.path().join("pip"),
        format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\n", record.display()),
    )
    .unwrap();
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("a python3");
    std::os::unix::fs::symlink(python, bin.path().join("python")).unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(bin.path().join("pip"))
        .status()
        .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(context.join("install-requirements.sh"))
        .args(args)
        .current_dir(elsewhere.path())
        .env("PATH", format!("{}:/usr/bin:/bin", bin.path().display()))
        .env("AIRFLOW_STACK_CONSTRAINTS", "/constraints/frozen.txt")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "install script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn the_image_context_holds_the_provider_and_the_install_script_installs_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_stack(dir.path(), &stack(FUNCTIONS, ""));
    let context = image_context(&file, dir.path());
    let provider = context.join("providers/airflow-stack-lambda");
    let source = root().join("providers/airflow-stack-lambda");
    for path in provider_files() {
        assert_eq!(
            std::fs::read(provider.join(&path)).unwrap(),
            std::fs::read(source.join(&path)).unwrap(),
            "{path}"
        );
    }
    assert!(!context.join("requirements.txt").exists());
    let dockerfile = std::fs::read_to_string(context.join("Dockerfile")).unwrap();
    insta::assert_snapshot!("provider_only_dockerfile", dockerfile);
    insta::assert_snapshot!(
        "provider_only_install_script",
        std::fs::read_to_string(context.join("install-requirements.sh")).unwrap()
    );
    let hadolint = Command::new(venv_bin("hadolint"))
        .args(["--no-color", "--failure-threshold", "info"])
        .arg(context.join("Dockerfile"))
        .output()
        .unwrap();
    assert!(
        hadolint.status.success(),
        "hadolint: {}",
        String::from_utf8_lossy(&hadolint.stdout)
    );

    let provider = provider.canonicalize().unwrap();
    let args = run_install_script(&context, &[]);
    assert_eq!(
        args,
        [
            "install",
            "--no-cache-dir",
            "--constraint",
            "/constraints/frozen.txt",
            "apache-airflow==3.3.2",
            provider.to_str().unwrap(),
        ]
    );

    // With requirements: one pip call for Airflow, the requirements and the provider.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("requirements.txt"), "humanize>=4\n").unwrap();
    let airflow = format!("{FUNCTIONS}  build:\n    requirements: requirements.txt\n");
    let file = write_stack(dir.path(), &stack(&airflow, ""));
    let context = image_context(&file, dir.path());
    let requirements = context.join("requirements.txt");
    let args = run_install_script(&context, &[&requirements]);
    let provider = context
        .join("providers/airflow-stack-lambda")
        .canonicalize()
        .unwrap();
    assert_eq!(
        args,
        [
            "install",
            "--no-cache-dir",
            "--constraint",
            "/constraints/frozen.txt",
            "apache-airflow==3.3.2",
            "--requirement",
            requirements.to_str().unwrap(),
            provider.to_str().unwrap(),
        ]
    );
}

#[test]
fn the_list_turns_the_image_build_on_and_every_airflow_container_runs_it() {
    let t = template_of(&stack(FUNCTIONS, ""));
    let image_uri = json!({"Fn::GetAtt": ["AirflowImage", "ImageUri"]});
    for (id, container) in common::containers(&t) {
        if container["Name"] != "redis" {
            assert_eq!(container["Image"], image_uri, "{id}/{}", container["Name"]);
        }
    }
    let project = &t["Resources"]["ImageBuildProject"]["Properties"];
    assert!(
        project["Description"]
            .as_str()
            .unwrap()
            .ends_with("from airflow.lambda_functions (the tracked Lambda operator's provider)"),
        "{project}"
    );
}

#[test]
fn the_implicit_build_is_priced_like_airflow_build() {
    let dir = tempfile::tempdir().unwrap();
    let cost = |text: &str| -> Value {
        let file = write_stack(dir.path(), text);
        let out = cli()
            .args(["cost", "--output", "json"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let lines = |v: &Value, item: &str| -> Vec<Value> {
        v["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["item"] == item)
            .cloned()
            .collect()
    };
    let with_list = cost(&stack(FUNCTIONS, ""));
    std::fs::write(dir.path().join("requirements.txt"), "humanize>=4\n").unwrap();
    let with_build = cost(&stack("  build:\n    requirements: requirements.txt\n", ""));
    let without = cost(&stack("  load_examples: false\n", ""));
    for item in ["ECR", "CodeBuild"] {
        assert_eq!(lines(&with_list, item).len(), 1, "{item}");
        assert_eq!(lines(&with_list, item), lines(&with_build, item), "{item}");
        assert!(lines(&without, item).is_empty(), "{item}");
    }
}

#[test]
fn the_templates_with_lambda_functions_are_cfn_lint_clean() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("requirements.txt"), "humanize>=4\n").unwrap();
    let variations = [
        ("separate", stack(FUNCTIONS, ""), "json"),
        (
            "packed-arm64-kms-backend-build",
            stack(
                &format!("{FUNCTIONS}  secrets_backend: {{}}\n  build:\n    requirements: requirements.txt\n"),
                "services:\n  packing: core\n  architecture: arm64\nencryption:\n  kms_key: create\n",
            )
            .replace("region: us-east-1", "region: eu-west-1"),
            "yaml",
        ),
        (
            "one-arn-autoscaling",
            stack(
                "  lambda_functions: [\"arn:aws:lambda:us-east-1:123456789012:function:only\"]\n",
                "network:\n  nat_gateways: 1\nautoscaling:\n  enabled: true\n",
            ),
            "json",
        ),
    ];
    let mut files = Vec::new();
    for (name, text, format) in variations {
        let spec = dir.path().join(format!("{name}.stack.yaml"));
        std::fs::write(&spec, text).unwrap();
        let path = dir.path().join(format!("{name}.{format}"));
        std::fs::write(&path, synth(&spec, format)).unwrap();
        files.push(path);
    }
    let out = Command::new(venv_bin("cfn-lint"))
        .args([
            "--format",
            "parseable",
            "--non-zero-exit-code",
            "warning",
            "--regions",
            "us-east-1",
            "eu-west-1",
            "--",
        ])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cfn-lint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `deploy` with the list into the emulator: the image-build Lambda builds the base
/// image with the provider, every Airflow task definition names it, and the deployed
/// worker and triggerer roles, held to their own policies by the emulator's IAM
/// evaluator, may make exactly the operator's calls: the worker reads the functions'
/// configuration and searches their log groups, the triggerer searches the log groups
/// and may not touch the functions, and neither reaches another function or log group.
#[test]
fn deploy_with_lambda_functions_builds_the_image_and_the_roles_make_exactly_the_operators_calls() {
    use common::emulator::{target_dir, Emulator};
    let emulator = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    // The emulator's account: the second function is in another region of it.
    let text = "name: airflow-lambdas\nregion: us-east-1\nairflow:\n  lambda_functions:\n    - load-orders\n    - arn:aws:lambda:eu-west-1:123456789012:function:reports:live\n    - function: enrich\n      log_group: /team/functions\n";
    let stack = write_stack(dir.path(), text);
    let file = stack.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = emulator.cli(&target_dir()).args(args).output().unwrap();
        eprintln!(
            "$ airflow-stack {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    assert!(run(&["bootstrap", file]).status.success());
    assert!(
        run(&["deploy", file, "--yes"]).status.success(),
        "deploy with airflow.lambda_functions failed"
    );
    let tag = template_of(text)["Resources"]["AirflowImage"]["Properties"]["ImageTag"]
        .as_str()
        .unwrap()
        .to_string();
    let script = r#"
import ast, boto3, json, urllib.request, urllib.error, uuid, os
from botocore.exceptions import ClientError
endpoint = os.environ['AWS_ENDPOINT_URL']
boto3.setup_default_session(region_name='us-east-1')
cfn = boto3.client('cloudformation')
res = {r['LogicalResourceId']: r.get('PhysicalResourceId', '') for r in cfn.describe_stack_resources(StackName='airflow-lambdas')['StackResources']}
ecr = boto3.client('ecr')
tags = [t for i in ecr.describe_images(repositoryName=res['ImageRepository'])['imageDetails'] for t in i.get('imageTags', [])]
outputs = {o['OutputKey']: o['OutputValue'] for o in cfn.describe_stacks(StackName='airflow-lambdas')['Stacks'][0].get('Outputs', [])}
ecs = boto3.client('ecs')
images = sorted({c['image'] for arn in ecs.list_task_definitions()['taskDefinitionArns'] for c in ecs.describe_task_definition(taskDefinition=arn)['taskDefinition']['containerDefinitions'] if c['name'] != 'redis'})
iam = boto3.client('iam')

def identity(role):
    name = res[role]
    policies = [iam.get_role_policy(RoleName=name, PolicyName=p)['PolicyDocument']
                for p in iam.list_role_policies(RoleName=name)['PolicyNames']]
    # moto answers with the document as Python's repr of the dict CloudFormation put.
    policies = [ast.literal_eval(p) if isinstance(p, str) else p for p in policies]
    key = 'AKIA' + uuid.uuid4().hex[:16].upper()
    body = {'access_key_id': key, 'name': role, 'policies': policies,
            'principal': f'arn:aws:sts::123456789012:assumed-role/{name}/{role}'}
    req = urllib.request.Request(endpoint + '/_emulator/identities', method='POST',
                                 data=json.dumps(body).encode(), headers={'Content-Type': 'application/json'})
    try:
        urllib.request.urlopen(req, timeout=10).read()
    except urllib.error.HTTPError as e:
        raise SystemExit(f'registering {role}: {e.code} {e.read().decode()}: {json.dumps(policies)}')
    return key

def outcome(call):
    try:
        call()
        return 'ok'
    except ClientError as e:
        code = e.response['Error']['Code']
        return 'denied' if 'AccessDenied' in code else 'allowed'   # allowed, then not found

def calls(key):
    def client(service, region='us-east-1'):
        return boto3.client(service, region_name=region, aws_access_key_id=key, aws_secret_access_key='x')
    lam, logs = client('lambda'), client('logs')
    lam_eu, logs_eu = client('lambda', 'eu-west-1'), client('logs', 'eu-west-1')
    return {
        'config load-orders': outcome(lambda: lam.get_function_configuration(FunctionName='load-orders')),
        'config load-orders:live': outcome(lambda: lam.get_function_configuration(FunctionName='load-orders', Qualifier='live')),
        'invoke enrich': outcome(lambda: lam.invoke(FunctionName='enrich', InvocationType='Event', Payload=b'{}')),
        'config reports:live': outcome(lambda: lam_eu.get_function_configuration(FunctionName='arn:aws:lambda:eu-west-1:123456789012:function:reports:live')),
        'config reports (unqualified)': outcome(lambda: lam_eu.get_function_configuration(FunctionName='reports')),
        'config other': outcome(lambda: lam.get_function_configuration(FunctionName='other')),
        'filter load-orders': outcome(lambda: logs.filter_log_events(logGroupName='/aws/lambda/load-orders')),
        'filter /team/functions': outcome(lambda: logs.filter_log_events(logGroupName='/team/functions')),
        'filter reports': outcome(lambda: logs_eu.filter_log_events(logGroupName='/aws/lambda/reports')),
        'filter enrich default group': outcome(lambda: logs.filter_log_events(logGroupName='/aws/lambda/enrich')),
        'filter other': outcome(lambda: logs.filter_log_events(logGroupName='/aws/lambda/other')),
    }

print(json.dumps({'uri': outputs.get('AirflowImageUri'), 'tags': tags, 'images': images,
                  'worker': calls(identity('WorkerTaskRole')),
                  'triggerer': calls(identity('TriggererTaskRole')),
                  'scheduler': calls(identity('SchedulerTaskRole'))}))
"#;
    let state: Value = serde_json::from_str(emulator.python(script, &[]).trim()).unwrap();
    println!("{}", serde_json::to_string_pretty(&state).unwrap());
    let uri = state["uri"].as_str().expect("output AirflowImageUri");
    assert!(uri.ends_with(&format!(":{tag}")), "{state}");
    assert_eq!(state["tags"], json!([tag]), "{state}");
    assert_eq!(state["images"], json!([uri]), "{state}");
    let allowed = |who: &str, what: &str| state[who][what] != "denied";
    for what in [
        "config load-orders",
        "config load-orders:live",
        "invoke enrich",
        "config reports:live",
        "filter load-orders",
        "filter /team/functions",
        "filter reports",
    ] {
        assert!(allowed("worker", what), "worker: {what}: {state}");
    }
    for what in [
        "config reports (unqualified)",
        "config other",
        "filter enrich default group",
        "filter other",
    ] {
        assert!(!allowed("worker", what), "worker: {what}: {state}");
    }
    let triggerer = state["triggerer"].as_object().unwrap();
    for (what, outcome) in triggerer {
        let may = [
            "filter load-orders",
            "filter /team/functions",
            "filter reports",
        ]
        .contains(&what.as_str());
        assert_eq!(outcome != "denied", may, "triggerer: {what}: {state}");
    }
    for (what, outcome) in state["scheduler"].as_object().unwrap() {
        assert_eq!(outcome, "denied", "scheduler: {what}: {state}");
    }
}
