//! The project's AWS emulator (tests/aws_emulator/server.py: moto 5.2.5, patched) as the
//! Secrets Manager and CloudFormation endpoint.
//!
//! The Lambda confirms each Create and Update with CloudFormation
//! (`DescribeStackResource`) before it touches a secret; the emulator answers that for a
//! stack it did not deploy once the test, playing CloudFormation, says which resource
//! it is running ([`Moto::cloudformation_running`]). Plain moto cannot: it would answer
//! that the stack does not exist, and every request would be refused.
//!
//! `MOTO_ENDPOINT` points at a running emulator; otherwise it is started with
//! `$AIRFLOW_STACK_VENV/bin/python` (default `$HOME/.cache/airflow-stack/venv`), which
//! the project's test script creates. Neither available: the test fails, it never
//! skips.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A moto endpoint; a server started here is killed by pid on drop (even on panic).
pub struct Moto {
    pub endpoint: String,
    child: Option<Child>,
}

const HOW_TO: &str = "the integration tests need the AWS emulator (moto 5.2.5 in the project's \
venv). Run the project's test command (it creates the venv), or by hand: python3 -m venv \
~/.cache/airflow-stack/venv && ~/.cache/airflow-stack/venv/bin/pip install -r \
tests/requirements.txt; then export AIRFLOW_STACK_VENV=~/.cache/airflow-stack/venv (or \
MOTO_ENDPOINT=http://127.0.0.1:<port> for a running tests/aws_emulator/server.py)";

impl Moto {
    pub fn start() -> Self {
        if let Ok(endpoint) = std::env::var("MOTO_ENDPOINT") {
            return Self {
                endpoint,
                child: None,
            };
        }
        let venv = std::env::var("AIRFLOW_STACK_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".cache/airflow-stack/venv")
            });
        let python = venv.join("bin/python");
        assert!(python.exists(), "{} not found: {HOW_TO}", python.display());
        let server =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/aws_emulator/server.py");
        let port = free_port();
        let child = Command::new(&python)
            .arg(&server)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}; {HOW_TO}", server.display()));
        let moto = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child: Some(child),
        };
        wait_until_listening(port, Duration::from_secs(30));
        moto
    }
}

impl Moto {
    /// What DescribeStackResource answers for the resource `event` names (with the
    /// event's type) from now on: `*_IN_PROGRESS` while CloudFormation waits for this
    /// event's response, `*_COMPLETE` once it has one.
    pub fn cloudformation_status(&self, event: &serde_json::Value, done: bool) {
        let verb = if event["RequestType"] == "Update" {
            "UPDATE"
        } else {
            "CREATE"
        };
        let status = format!("{verb}_{}", if done { "COMPLETE" } else { "IN_PROGRESS" });
        let body = serde_json::json!({
            "stack_id": event["StackId"], "logical_id": event["LogicalResourceId"],
            "resource_type": event["ResourceType"], "status": status,
        })
        .to_string();
        let address = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).expect("the emulator listens");
        write!(
            stream,
            "POST /_emulator/cfn-running HTTP/1.1\r\nHost: {address}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "cfn-running: {reply}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until_listening(port: u16, timeout: Duration) {
    let until = Instant::now() + timeout;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < until,
            "the emulator did not listen on {port} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Secrets Manager client for the test's own setup and assertions.
pub async fn client(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "testing", "testing", None, None, "static",
        ))
        .load()
        .await;
    aws_sdk_secretsmanager::Client::new(&config)
}

/// Creates an empty secret (no SecretString), as the template does; returns its ARN.
pub async fn empty_secret(client: &aws_sdk_secretsmanager::Client, name: &str) -> String {
    let output = client
        .create_secret()
        .name(name)
        .send()
        .await
        .expect("create_secret");
    output.arn().expect("arn").to_string()
}

/// Creates a secret that already holds `value`; returns its ARN.
pub async fn secret_with_value(
    client: &aws_sdk_secretsmanager::Client,
    name: &str,
    value: &str,
) -> String {
    let output = client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("create_secret");
    output.arn().expect("arn").to_string()
}

/// The AWSCURRENT value.
pub async fn value(client: &aws_sdk_secretsmanager::Client, arn: &str) -> String {
    let output = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .expect("get_secret_value");
    output.secret_string().expect("secret string").to_string()
}
