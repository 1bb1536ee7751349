//! `dags push` refuses prefixes that could destroy data before it talks to AWS: the
//! checks need only the stack file, so these run without any endpoint.

mod common;

use common::{cli, root};

fn push(extra: &[&str]) -> std::process::Output {
    let dags = tempfile::tempdir().unwrap();
    std::fs::write(dags.path().join("a.py"), "x").unwrap();
    cli()
        .arg("dags")
        .arg("push")
        .arg(dags.path())
        .arg(root().join("stacks/dev.yaml"))
        .args(extra)
        // Nothing may be reached: an AWS call would fail on this port, not hang.
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_task_log_prefix_is_refused_even_when_forced() {
    for args in [
        &["--prefix", "logs", "--delete"][..],
        &["--prefix", "logs/", "--delete", "--force-prefix"][..],
    ] {
        let out = push(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("stacks/dev.yaml") && err.contains("task-log prefix `logs`"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("127.0.0.1:9"), "no AWS call was made: {err}");
    }
}

#[test]
fn another_prefix_needs_force_prefix() {
    let out = push(&["--prefix", "dags-v2"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("not the stack's DAG prefix `dags`") && err.contains("--force-prefix"),
        "{err}"
    );
}

#[test]
fn the_stack_prefix_gets_past_the_checks_to_aws() {
    // With the right prefix the command goes on to AWS and fails there (exit 1), which
    // shows the refusals above come from the prefix checks.
    let out = push(&["--prefix", "dags", "--bucket", "b"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}
