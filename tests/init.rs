//! `airflow-stack init`: what it writes validates, synthesizes and passes cfn-lint for
//! each shape (and with an existing VPC); it never overwrites; it asks only on a
//! terminal; bad flags exit 2 naming the flag.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{cli, venv_bin};

fn run(args: &[&str]) -> Output {
    let out = cli()
        .args(args)
        .stdin(Stdio::null())
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

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The init cases: `(name, extra flags)`.
const CASES: &[(&str, &[&str])] = &[
    ("init-dev", &["--shape", "dev", "--region", "us-east-1"]),
    ("init-prod", &["--shape", "prod", "--region", "eu-west-1"]),
    (
        "init-dev-vpc",
        &[
            "--shape",
            "dev",
            "--region",
            "us-east-1",
            "--vpc-id",
            "vpc-0a1b2c3d4e5f60718",
            "--subnet-ids",
            "subnet-0a1b2c3d,subnet-1a2b3c4d",
        ],
    ),
    (
        "init-prod-vpc",
        &[
            "--shape",
            "prod",
            "--region",
            "eu-west-1",
            "--vpc-id",
            "vpc-0a1b2c3d",
            "--subnet-ids",
            "subnet-0a1b2c3d,subnet-1a2b3c4d,subnet-2a2b3c4d",
        ],
    ),
];

#[test]
fn each_shape_validates_synthesizes_and_passes_cfn_lint() {
    let dir = tempfile::tempdir().unwrap();
    let mut templates: Vec<PathBuf> = Vec::new();
    for (name, flags) in CASES {
        let project = dir.path().join(name);
        let mut args = vec!["init", path(&project), "--name", name];
        args.extend_from_slice(flags);
        let out = run(&args);
        assert!(out.status.success(), "init {name}: {}", stderr(&out));
        let stack = project.join(format!("{name}.yaml"));
        let dag = project.join("dags/hello_airflow_stack.py");
        assert!(
            stack.is_file() && dag.is_file(),
            "init {name} wrote no files"
        );
        let text = std::fs::read_to_string(&stack).unwrap();
        assert!(
            text.lines()
                .filter(|l| l.trim_start().starts_with('#'))
                .count()
                > 40,
            "the stack file explains its options in comments:\n{text}"
        );

        let out = run(&["validate", path(&stack)]);
        assert!(out.status.success(), "validate {name}: {}", stderr(&out));
        let out = run(&["synth", "--format", "json", path(&stack)]);
        assert!(out.status.success(), "synth {name}: {}", stderr(&out));
        let template = dir.path().join(format!("{name}.json"));
        std::fs::write(&template, &out.stdout).unwrap();
        templates.push(template);

        // The example DAG is Python that compiles (Airflow itself is not in the venv;
        // the e2e runs DAGs).
        let out = Command::new(venv_bin("python"))
            .args(["-m", "py_compile"])
            .arg(&dag)
            .output()
            .expect("run python");
        assert!(out.status.success(), "{}: {}", dag.display(), stderr(&out));
    }
    let out = Command::new(venv_bin("cfn-lint"))
        .args([
            "--format",
            "parseable",
            "--non-zero-exit-code",
            "warning",
            "--",
        ])
        .args(&templates)
        .output()
        .expect("run cfn-lint");
    assert!(
        out.status.success(),
        "cfn-lint found problems (exit {:?}):\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    println!("cfn-lint: {} init templates clean", templates.len());
}

#[test]
fn shapes_differ_where_they_should() {
    let dir = tempfile::tempdir().unwrap();
    let read = |name: &str, shape: &str| {
        let out = run(&[
            "init",
            path(dir.path()),
            "--shape",
            shape,
            "--name",
            name,
            "--region",
            "eu-west-1",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::remove_dir_all(dir.path().join("dags")).unwrap();
        std::fs::read_to_string(dir.path().join(format!("{name}.yaml"))).unwrap()
    };
    let dev = read("a-dev", "dev");
    let prod = read("a-prod", "prod");
    assert!(dev.contains("engine: rds-postgres") && dev.contains("nat_gateways: 0"));
    assert!(prod.contains("engine: aurora-serverless-v2") && prod.contains("nat_gateways: 2"));
    assert!(prod.contains("termination_protection: true") && prod.contains("engine: elasticache"));
}

#[test]
fn init_never_overwrites_and_writes_nothing_when_it_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "init",
        path(dir.path()),
        "--shape",
        "dev",
        "--name",
        "mine",
        "--region",
        "us-east-1",
    ];
    // An example DAG of the user's own is in the way: init refuses, naming it, and does
    // not write the stack file either.
    let dag = dir.path().join("dags/hello_airflow_stack.py");
    std::fs::create_dir_all(dag.parent().unwrap()).unwrap();
    std::fs::write(&dag, "# my own\n").unwrap();
    let out = run(&args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("{} already exists", dag.display())),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&dag).unwrap(), "# my own\n");
    assert!(
        !dir.path().join("mine.yaml").exists(),
        "half of the files were written"
    );

    std::fs::remove_file(&dag).unwrap();
    assert!(run(&args).status.success());
    let stack = dir.path().join("mine.yaml");
    let before = std::fs::read(&stack).unwrap();
    std::fs::write(&stack, b"name: edited\n").unwrap();
    let out = run(&args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("{} already exists", stack.display())),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(&stack).unwrap(), b"name: edited\n");
    assert!(!before.is_empty());
    // No temporary file is left next to them.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["dags", "mine.yaml"]);
}

#[test]
fn without_a_terminal_missing_flags_are_an_error_listing_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["init", path(dir.path()), "--name", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("--shape") && err.contains("--region") && !err.contains("--name"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let base = ["init", path(dir.path())];
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--shape",
                "dev",
                "--name",
                "9lives",
                "--region",
                "us-east-1",
            ],
            "--name: ",
        ),
        (
            &["--shape", "dev", "--name", "ok", "--region", "Mars"],
            "--region: ",
        ),
        (
            &[
                "--shape",
                "dev",
                "--name",
                "ok",
                "--region",
                "us-east-1",
                "--vpc-id",
                "vpc-xyz",
                "--subnet-ids",
                "subnet-0a1b2c3d,subnet-1a2b3c4d",
            ],
            "--vpc-id: ",
        ),
        (
            &[
                "--shape",
                "dev",
                "--name",
                "ok",
                "--region",
                "us-east-1",
                "--vpc-id",
                "vpc-0a1b2c3d",
                "--subnet-ids",
                "subnet-0a1b2c3d",
            ],
            "--subnet-ids: ",
        ),
        // clap's own checks: an unknown shape, a VPC without subnets.
        (&["--shape", "big"], "invalid value 'big'"),
        (
            &[
                "--shape",
                "dev",
                "--name",
                "ok",
                "--region",
                "us-east-1",
                "--vpc-id",
                "vpc-0a1b2c3d",
            ],
            "--subnet-ids",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{args:?} wrote files"
        );
    }
}

#[test]
fn on_a_terminal_it_asks_for_what_is_missing() {
    // `script` (util-linux) runs init on a pseudo-terminal and types the answers: shape
    // by default (empty line: dev), then the name; the region comes from its flag.
    let dir = tempfile::tempdir().unwrap();
    let command = format!(
        "{} init {} --region eu-central-1",
        env!("CARGO_BIN_EXE_airflow-stack"),
        dir.path().display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script (util-linux)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"\nasked-stack\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("Shape, dev or prod [dev]") && text.contains("Stack name [airflow-dev]"),
        "{text}"
    );
    assert!(
        !text.contains("AWS region"),
        "asked for a flag it had: {text}"
    );
    let written = std::fs::read_to_string(dir.path().join("asked-stack.yaml")).unwrap();
    assert!(
        written.contains("name: \"asked-stack\"") && written.contains("region: \"eu-central-1\""),
        "{written}"
    );
    assert!(
        written.contains("engine: rds-postgres"),
        "the dev shape: {written}"
    );
}
