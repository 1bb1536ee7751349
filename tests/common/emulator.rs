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

    /// Makes the next one-off ECS task (a migration) exit with `code`.
    pub fn set_task_exit_code(&self, code: i32) {
        let url = format!("{}/_emulator/ecs-task-exit/{code}", self.endpoint);
        let status = Command::new("curl")
            .args(["-fsS", "-X", "POST", &url])
            .status()
            .expect("curl");
        assert!(status.success(), "could not set the task exit code");
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

/// Where lambdas/build.sh writes the Lambda zips; missing zips fail the test with the
/// command to build them.
pub fn assets_dir() -> PathBuf {
    let dir = target_dir().join("lambda");
    for name in ["airflow-secrets", "airflow-migration"] {
        let zip = dir.join(name).join("bootstrap.zip");
        assert!(
            zip.exists(),
            "{} is missing: run `bash lambdas/build.sh` (the test command does)",
            zip.display()
        );
    }
    dir
}
