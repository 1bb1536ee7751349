//! The patched moto server (tests/aws_emulator/server.py) as a test fixture: started on
//! a free 127.0.0.1 port, stopped by process id when dropped, even after a panic.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{root, venv_bin};

/// A running emulator.
pub struct Emulator {
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub endpoint: String,
}

impl Emulator {
    /// Starts the emulator and waits for its `READY <port>` line.
    pub fn start() -> Emulator {
        let python = venv_bin("python");
        let mut child = Command::new(python)
            .arg(root().join("tests/aws_emulator/server.py"))
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file()))
            .spawn()
            .expect("start the AWS emulator");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the emulator's READY line");
        let port = line.trim().strip_prefix("READY ").unwrap_or_else(|| {
            let _ = child.kill();
            panic!(
                "the emulator did not start (said {line:?}); see {}",
                log_path().display()
            )
        });
        Emulator {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        }
    }

    /// Environment for the CLI and SDK clients: the endpoint and dummy credentials.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ]
    }

    /// The CLI against this emulator as CI runs it: stdin not a terminal, no AWS
    /// profile, and deploy looking for the Lambda zips in `<target>/lambda/<arch>`.
    pub fn cli(&self, target: &std::path::Path) -> Command {
        let mut cmd = super::cli();
        cmd.env("CARGO_TARGET_DIR", target)
            .env_remove("AIRFLOW_STACK_ASSETS_DIR")
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null());
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd
    }

    /// Makes the next one-off ECS task (a migration) exit with `code`.
    pub fn set_task_exit_code(&self, code: i32) {
        let (status, body) =
            self.request("POST", &format!("/_emulator/ecs-task-exit/{code}"), None);
        assert_eq!(status, 200, "could not set the task exit code: {body}");
    }

    /// Makes the next one-off ECS task write these lines to its awslogs stream.
    pub fn set_task_output(&self, lines: &[&str]) {
        let body = serde_json::json!({ "lines": lines });
        let (status, text) = self.request("POST", "/_emulator/ecs-task-output", Some(&body));
        assert_eq!(status, 200, "POST /_emulator/ecs-task-output: {text}");
    }

    /// Makes the next create or update of the resource `logical_id` fail with `reason`
    /// (once: the rollback's update of it succeeds). NEEDS the emulator hook
    /// `POST /_emulator/fail-resource {"logical_id": ..., "reason": ...}`.
    pub fn fail_resource(&self, logical_id: &str, reason: &str) {
        let body = serde_json::json!({ "logical_id": logical_id, "reason": reason });
        let (status, text) = self.request("POST", "/_emulator/fail-resource", Some(&body));
        assert_eq!(
            status, 200,
            "the emulator has no working POST /_emulator/fail-resource hook (see tests/deploy.rs, \
             a_failed_upgrade_rolls_back_without_migrating_down): {text}"
        );
    }

    /// Every IAM decision the emulator made for a registered identity (the Lambdas'
    /// roles), in order: `GET /_emulator/calls`.
    pub fn calls(&self) -> Vec<serde_json::Value> {
        self.get_json("/_emulator/calls")["calls"]
            .as_array()
            .unwrap_or_else(|| panic!("GET /_emulator/calls has no \"calls\" list"))
            .clone()
    }

    /// The `seq` of the last recorded call (0 before any).
    pub fn last_call_seq(&self) -> u64 {
        self.calls()
            .last()
            .and_then(|c| c["seq"].as_u64())
            .unwrap_or(0)
    }

    /// An emulator endpoint's JSON answer, which must be 200.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.request("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// One request with curl (no HTTP client among the dev-dependencies): status and body.
    fn request(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-X", method, "-w", "\n%{http_code}"])
            .arg(format!("{}{path}", self.endpoint));
        if let Some(body) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(body.to_string());
        }
        let out = cmd.output().expect("run curl");
        assert!(
            out.status.success(),
            "curl {method} {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Runs a Python script (the virtualenv's, with boto3) against the emulator as the
    /// unrestricted operator; its stdout.
    pub fn python(&self, script: &str, args: &[&str]) -> String {
        let mut cmd = Command::new(venv_bin("python"));
        cmd.arg("-c").arg(script).args(args);
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run python");
        assert!(
            out.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // SIGTERM lets it kill the Lambda processes it started; SIGKILL if it lingers.
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

fn log_path() -> PathBuf {
    std::env::temp_dir().join(format!("airflow-stack-emulator-{}.log", std::process::id()))
}

fn log_file() -> std::fs::File {
    std::fs::File::create(log_path()).expect("create the emulator log")
}

/// The cargo target dir of this build (the test binary lives in `<target>/debug/deps`).
pub fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_airflow-stack"))
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .to_path_buf()
}

/// Where lambdas/build.sh (the test command runs it) writes the Lambda zips for
/// `architecture`; missing zips fail the test with the command to build them.
pub fn assets_dir(architecture: &str) -> PathBuf {
    let dir = target_dir().join("lambda").join(architecture);
    for name in ["airflow-secrets", "airflow-migration"] {
        let zip = dir.join(name).join("bootstrap.zip");
        assert!(
            zip.exists(),
            "{} is missing: run `bash lambdas/build.sh --arch {architecture}` (the test command does)",
            zip.display()
        );
    }
    dir
}

/// The one architecture of a template's Lambda functions (`Architectures` left out:
/// x86_64, as on AWS).
pub fn lambda_architecture(template: &serde_json::Value) -> String {
    let mut found: Vec<String> = template["Resources"]
        .as_object()
        .expect("Resources")
        .values()
        .filter(|r| r["Type"] == "AWS::Lambda::Function")
        .map(|r| {
            r["Properties"]["Architectures"][0]
                .as_str()
                .unwrap_or("x86_64")
                .to_string()
        })
        .collect();
    found.sort();
    found.dedup();
    assert_eq!(found.len(), 1, "the template's functions run on {found:?}");
    found.remove(0)
}
