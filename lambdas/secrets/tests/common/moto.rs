//! moto's server mode as the Secrets Manager endpoint.
//!
//! `MOTO_ENDPOINT` points at a running moto; otherwise moto is started from
//! `$AIRFLOW_STACK_VENV/bin/moto_server` (default `$HOME/.cache/airflow-stack/venv`),
//! which the project's test script creates. Neither available: the test fails, it
//! never skips.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A moto endpoint; a server started here is killed by pid on drop (even on panic).
pub struct Moto {
    pub endpoint: String,
    child: Option<Child>,
}

const HOW_TO: &str = "the integration tests need moto 5.2.5 in server mode. Run the project's test \
command (it creates the venv), or by hand: python3 -m venv ~/.cache/airflow-stack/venv && \
~/.cache/airflow-stack/venv/bin/pip install \"moto[server]==5.2.5\"; then export \
AIRFLOW_STACK_VENV=~/.cache/airflow-stack/venv (or MOTO_ENDPOINT=http://127.0.0.1:<port> for a running moto)";

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
        let server = venv.join("bin/moto_server");
        assert!(server.exists(), "{} not found: {HOW_TO}", server.display());
        let port = free_port();
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
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
            "moto_server did not listen on {port} within {timeout:?}"
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
