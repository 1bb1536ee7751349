//! An example tracked function whose behaviour the payload chooses, for the end-to-end
//! test of the tracked Lambda operator (issue 16).
//!
//! The payload (besides the operator's `airflow_correlation_id`):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `lines` | `0` | log this many ordinary lines first (`line i of N`) |
//! | `action` | `"succeed"` | `succeed`, `fail`, `sleep` or `panic` |
//! | `result` | `null` | `succeed`/`sleep`: the value returned (`null`: no result) |
//! | `message` | `"the example failed"` | `fail`: the error's message; `panic`: the panic's |
//! | `cause` | none | `fail`: the error's source, the second entry of its chain |
//! | `seconds` | `900` | `sleep`: how long before returning `result`; past the function's timeout Lambda ends it first, so no end marker is ever written |
#![warn(missing_docs)]

use std::time::Duration;

use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde_json::Value;

/// What the caller asks the function to do.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Order {
    /// Ordinary lines to log first.
    pub lines: u32,
    /// What to do then.
    pub action: Action,
    /// The result to return.
    pub result: Value,
    /// The error or panic message.
    pub message: String,
    /// The error's cause, if any.
    pub cause: Option<String>,
    /// How long `sleep` sleeps.
    pub seconds: f64,
}

impl Default for Order {
    fn default() -> Self {
        Self {
            lines: 0,
            action: Action::Succeed,
            result: Value::Null,
            message: "the example failed".to_owned(),
            cause: None,
            // Lambda's maximum timeout: a sleep that outlives any function.
            seconds: 900.0,
        }
    }
}

/// The behaviours.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Return `result`.
    Succeed,
    /// Fail with `message` (and `cause`).
    Fail,
    /// Sleep `seconds`, then return `result`.
    Sleep,
    /// Panic with `message`.
    Panic,
}

/// The error `fail` returns: `message`, caused by `cause` when given.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExampleError {
    message: String,
    #[source]
    cause: Option<Cause>,
}

/// The underlying cause of an [`ExampleError`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Cause(String);

/// The handler.
pub async fn handle(event: LambdaEvent<Order>) -> Result<Value, ExampleError> {
    let order = event.payload;
    for i in 1..=order.lines {
        tracing::info!(line = i, "line {i} of {}", order.lines);
    }
    match order.action {
        Action::Succeed => Ok(order.result),
        Action::Fail => {
            tracing::warn!("failing as asked");
            Err(ExampleError {
                message: order.message,
                cause: order.cause.map(Cause),
            })
        }
        Action::Sleep => {
            tracing::info!(seconds = order.seconds, "sleeping");
            tokio::time::sleep(Duration::from_secs_f64(order.seconds.max(0.0))).await;
            Ok(order.result)
        }
        Action::Panic => panic!("{}", order.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context;
    use serde_json::json;

    fn order(payload: Value) -> LambdaEvent<Order> {
        LambdaEvent::new(serde_json::from_value(payload).unwrap(), Context::default())
    }

    #[tokio::test]
    async fn succeed_returns_the_result() {
        let out = handle(order(json!({"result": {"n": 1}, "lines": 2}))).await;
        assert_eq!(out.unwrap(), json!({"n": 1}));
    }

    #[tokio::test]
    async fn fail_has_the_message_and_the_cause_as_source() {
        let error = handle(order(
            json!({"action": "fail", "message": "m", "cause": "c"}),
        ))
        .await
        .unwrap_err();
        assert_eq!(error.to_string(), "m");
        assert_eq!(std::error::Error::source(&error).unwrap().to_string(), "c");
    }

    #[tokio::test]
    async fn sleep_returns_after_the_given_time() {
        let out = handle(order(
            json!({"action": "sleep", "seconds": 0.01, "result": 2}),
        ))
        .await;
        assert_eq!(out.unwrap(), json!(2));
    }

    #[test]
    fn the_operators_key_is_not_in_the_way() {
        let o: Order = serde_json::from_value(json!({"airflow_correlation_id": "x"})).unwrap();
        assert_eq!(o.action, Action::Succeed);
    }
}
