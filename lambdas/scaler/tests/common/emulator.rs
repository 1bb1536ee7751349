//! The project's patched moto server (tests/aws_emulator/server.py) as the AWS
//! endpoint. Started from `$AIRFLOW_STACK_VENV/bin/python` (default
//! `$HOME/.cache/airflow-stack/venv`); killed by pid on drop. Missing: the test fails
//! with how to create the venv, it never skips.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running emulator.
pub struct Emulator {
    pub endpoint: String,
    child: Child,
}

impl Emulator {
    pub fn start() -> Emulator {
        let venv = std::env::var("AIRFLOW_STACK_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".cache/airflow-stack/venv")
            });
        let python = venv.join("bin/python");
        let server =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/aws_emulator/server.py");
        assert!(
            python.exists(),
            "{} not found: run the project's test command (it creates the venv with moto) or set AIRFLOW_STACK_VENV",
            python.display()
        );
        let mut child = Command::new(&python)
            .arg(&server)
            .args(["--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tests/aws_emulator/server.py");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(p) = line.strip_prefix("READY ") {
                        break p.trim().to_string();
                    }
                }
                _ => panic!("the emulator exited before printing READY <port>"),
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Emulator {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        }
    }

    /// SDK config pointed at the emulator with dummy credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_sns::config::Credentials::new(
                "testing", "testing", None, None, "emulator",
            ))
            .load()
            .await
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
