//! Shared helpers for the handler-level tests: events, an in-memory store, a capture
//! server as ResponseURL, and a log buffer to check that nothing secret is logged.
#![allow(dead_code)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use airflow_secrets::{invoke, InvokeError, MemoryStore, SecretStore};
use cfn_custom_resource::origin::fake::FakeStacks;
use cfn_custom_resource::testing::{CaptureServer, CapturedRequest};
use cfn_custom_resource::{GuardConfig, OriginCheck, ResponseSender, RetryPolicy, StackResources};
use serde_json::{json, Value};

pub const STACK: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/airflow-dev/1b2c";
pub const LOG_STREAM: &str = "2026/05/01/[$LATEST]0123456789abcdef";
/// The function's own ARN: the same account and region as [`STACK`].
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:secrets";

/// CloudFormation's view while it sends `event`: the resource the event names exists
/// with the event's type and is being created (or updated). The harness plays
/// CloudFormation, so this is what a genuine request finds.
pub fn running(event: &Value) -> FakeStacks {
    let text = |key: &str| event[key].as_str().unwrap_or_default().to_owned();
    let status = if text("RequestType") == "Update" {
        "UPDATE_IN_PROGRESS"
    } else {
        "CREATE_IN_PROGRESS"
    };
    FakeStacks::with(
        &text("StackId"),
        &text("LogicalResourceId"),
        &text("ResourceType"),
        status,
    )
}

/// A Secrets Manager ARN for a short name.
pub fn arn(name: &str) -> String {
    format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf")
}

/// The five secrets of `Custom::AirflowSecrets`, by property.
pub const SECRET_ROLES: [&str; 5] = [
    "FernetKeySecretArn",
    "SigningKeysSecretArn",
    "DatabaseSecretArn",
    "RedisSecretArn",
    "AdminPasswordSecretArn",
];

/// The JSON-object secrets among them.
pub const JSON_ROLES: [&str; 3] = [
    "SigningKeysSecretArn",
    "DatabaseSecretArn",
    "RedisSecretArn",
];

/// Properties of a `Custom::AirflowSecrets` resource.
pub fn secrets_props() -> Value {
    let mut props =
        json!({"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:secrets"});
    for role in SECRET_ROLES {
        props[role] = json!(arn(role));
    }
    props
}

/// Properties of a `Custom::AirflowConnectionUrls` resource.
pub fn url_props() -> Value {
    json!({
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:secrets",
        "DatabaseSecretArn": arn("DatabaseSecretArn"),
        "RedisSecretArn": arn("RedisSecretArn"),
        "DbUser": "airflow", "DbHost": "db.cluster-abc.us-east-1.rds.amazonaws.com",
        "DbPort": "5432", "DbName": "airflow", "DbSslMode": "require",
        "RedisHost": "redis.abc.cache.amazonaws.com", "RedisPort": "6379", "RedisTls": "true"
    })
}

/// A JSON-object secret value parsed; panics unless it is a flat object of strings.
pub fn parse_flat(value: &str) -> serde_json::Map<String, Value> {
    let Value::Object(doc) = serde_json::from_str::<Value>(value).expect("valid JSON") else {
        panic!("not a JSON object");
    };
    assert!(
        doc.values().all(Value::is_string),
        "a flat object of strings"
    );
    doc
}

/// The string leaves of a JSON object value, or the value itself; each split at `,`
/// (the Fernet `new,old` form).
pub fn secret_parts(value: &str) -> Vec<String> {
    let leaves: Vec<String> = match serde_json::from_str::<Value>(value) {
        Ok(Value::Object(doc)) => doc
            .values()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => vec![value.to_owned()],
    };
    leaves
        .iter()
        .flat_map(|leaf| leaf.split(','))
        .filter(|p| p.len() >= 8)
        .map(str::to_owned)
        .collect()
}

/// A request event.
pub fn event(request_type: &str, resource_type: &str, response_url: &str, props: Value) -> Value {
    let mut event = json!({
        "RequestType": request_type,
        "ResponseURL": response_url,
        "StackId": STACK,
        "RequestId": format!("req-{request_type}-1"),
        "ResourceType": resource_type,
        "LogicalResourceId": "AirflowSecrets",
        "ResourceProperties": props,
    });
    if request_type != "Create" {
        event["PhysicalResourceId"] = json!(cfn_custom_resource::stable_physical_id(
            STACK,
            "AirflowSecrets"
        ));
    }
    event
}

/// An Update event with old properties.
pub fn update_event(response_url: &str, resource_type: &str, props: Value, old: Value) -> Value {
    let mut event = event("Update", resource_type, response_url, props);
    event["OldResourceProperties"] = old;
    event
}

/// A store holding every secret the props name, all empty.
pub fn empty_store() -> Arc<MemoryStore> {
    let arns: Vec<String> = SECRET_ROLES.iter().map(|r| arn(r)).collect();
    let refs: Vec<&str> = arns.iter().map(String::as_str).collect();
    Arc::new(MemoryStore::with_empty_secrets(&refs))
}

/// Log lines written while a [`Harness`] call ran.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One Lambda "environment": a ResponseURL server, a store, a sender, captured logs.
pub struct Harness {
    pub server: CaptureServer,
    pub store: Arc<MemoryStore>,
    pub sender: ResponseSender,
    pub config: GuardConfig,
    pub logs: LogBuffer,
    /// CloudFormation's answers; `None`: [`running`] for each event (a genuine request).
    pub stacks: Option<Arc<FakeStacks>>,
}

impl Harness {
    pub fn new(store: Arc<MemoryStore>) -> Self {
        Self::with_server(store, CaptureServer::start(vec![]))
    }

    pub fn with_server(store: Arc<MemoryStore>, server: CaptureServer) -> Self {
        let sender = ResponseSender::new(RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
            attempt_timeout: Duration::from_secs(2),
        })
        .unwrap();
        let config = GuardConfig {
            safety_margin: Duration::from_millis(800),
            log_stream: LOG_STREAM.into(),
        };
        Self {
            server,
            store,
            sender,
            config,
            logs: LogBuffer::default(),
            stacks: None,
        }
    }

    pub fn url(&self) -> String {
        self.server.url("/cfn-response?X-Amz-Signature=abc")
    }

    /// Runs one invocation with a deadline `deadline_in` from now, bounded by a test
    /// timeout, capturing logs (JSON, as in production) while it runs.
    pub async fn invoke_with_deadline(
        &self,
        event: Value,
        deadline_in: Duration,
    ) -> Result<Value, InvokeError> {
        let sink = Arc::clone(&self.logs.0);
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || LogWriter(Arc::clone(&sink)))
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let store: Arc<dyn SecretStore> = self.store.clone();
        let stacks: Arc<dyn StackResources> = match &self.stacks {
            Some(stacks) => stacks.clone(),
            None => Arc::new(running(&event)),
        };
        let origin = OriginCheck::new(FUNCTION_ARN, stacks);
        let deadline = SystemTime::now() + deadline_in;
        let call = invoke(event, deadline, &self.config, &self.sender, store, origin);
        tokio::time::timeout(Duration::from_secs(20), call)
            .await
            .expect("invocation must finish within 20 s")
    }

    pub async fn invoke(&self, event: Value) -> Result<Value, InvokeError> {
        self.invoke_with_deadline(event, Duration::from_secs(30))
            .await
    }

    /// Invokes and returns the n-th (1-based) response PUT to the ResponseURL.
    pub async fn answer(&self, event: Value) -> CapturedRequest {
        let before = self.server.requests().len();
        let result = self.invoke(event).await;
        assert!(result.is_ok(), "invocation should be answered: {result:?}");
        let requests = self.server.wait_for(before + 1, Duration::from_secs(5));
        requests[before].clone()
    }

    /// The AWSCURRENT value of a JSON-object secret, parsed.
    pub fn doc(&self, role: &str) -> serde_json::Map<String, Value> {
        parse_flat(
            &self
                .store
                .value(&arn(role))
                .expect("the secret has a value"),
        )
    }

    /// Asserts that no stored value (nor any string inside a stored JSON object, nor
    /// an `extra` one) appears in any response body or the captured logs.
    pub fn assert_no_secret_leaked(&self, extra: &[&str]) {
        let logs = self.logs.text();
        let bodies: Vec<String> = self
            .server
            .requests()
            .iter()
            .map(CapturedRequest::text)
            .collect();
        let mut values = self.store.all_values();
        values.extend(extra.iter().map(|s| s.to_string()));
        for value in values {
            for part in secret_parts(&value) {
                let part = part.as_str();
                assert!(!logs.contains(part), "a secret value leaked into the logs");
                for body in &bodies {
                    assert!(
                        !body.contains(part),
                        "a secret value leaked into a response body"
                    );
                }
            }
        }
    }
}

pub mod moto;
pub mod runtime_api;
