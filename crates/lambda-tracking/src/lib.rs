//! Tracked invocations for `lambda_runtime` functions called by Airflow's
//! `TrackedLambdaInvokeOperator` (`providers/airflow-stack-lambda`).
//!
//! The operator puts a correlation ID into the payload (`airflow_correlation_id`) and then
//! follows the function's CloudWatch log lines that carry it. This crate does the
//! function's half:
//!
//! - reads the correlation ID from the event payload;
//! - writes a **start marker** before the handler runs;
//! - runs the handler inside a span holding the ID, and writes every `tracing` event as
//!   one JSON line with `correlation_id` at the top level ([`TrackingLayer`]);
//! - writes the **end marker** with the handler's result, or the **error record**
//!   (`errorMessage`, `errorType`, `stackTrace` = the error's `source()` chain) when it
//!   fails, panics included.
//!
//! The record format is defined once, in `providers/airflow-stack-lambda/README.md`
//! ("Record format").
//!
//! ```no_run
//! use lambda_runtime::LambdaEvent;
//! use lambda_tracking::Tracking;
//!
//! async fn handler(event: LambdaEvent<serde_json::Value>) -> Result<u32, std::io::Error> {
//!     tracing::info!("working on {}", event.payload);
//!     Ok(3)
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), lambda_runtime::Error> {
//!     let tracking = Tracking::stdout();
//!     tracking.init_subscriber();
//!     lambda_runtime::run(tracking.service(handler)).await
//! }
//! ```
#![warn(missing_docs)]

mod layer;
mod record;

use std::any::type_name;
use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent, Service};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

pub use layer::TrackingLayer;
pub use record::{
    ErrorRecord, InvocationIds, CORRELATION_FIELD, MARKER_FIELD, MAX_RESULT_BYTES, PAYLOAD_KEY,
    REQUEST_ID_FIELD,
};

/// The handler error types a tracked handler may return: anything `lambda_runtime` itself
/// accepts as a boxed error (a concrete error type, `Box<dyn Error>`, `String`).
pub type Error = lambda_runtime::Error;

/// Where the records go, shared by the `tracing` layer and the markers.
///
/// `W` is a [`MakeWriter`]: stdout on Lambda ([`Tracking::stdout`]), a buffer in tests.
#[derive(Clone, Debug)]
pub struct Tracking<W> {
    make_writer: W,
}

impl Tracking<fn() -> io::Stdout> {
    /// Records to standard output, which Lambda sends to the function's log group.
    pub fn stdout() -> Self {
        Self::new(io::stdout as fn() -> io::Stdout)
    }
}

impl<W> Tracking<W>
where
    W: for<'a> MakeWriter<'a> + Clone + Send + Sync + 'static,
{
    /// Records to `make_writer`.
    pub fn new(make_writer: W) -> Self {
        Self { make_writer }
    }

    /// The `tracing` layer writing JSON lines with the correlation ID, to combine with
    /// other layers; [`Tracking::init_subscriber`] installs it alone.
    pub fn layer(&self) -> TrackingLayer<W> {
        TrackingLayer::new(self.make_writer.clone())
    }

    /// Installs the layer as the global subscriber, at the level of `AWS_LAMBDA_LOG_LEVEL`
    /// (Lambda's log-level setting; `INFO` when unset). Markers are written whatever the
    /// level: the operator needs them. Does nothing if a global subscriber exists.
    pub fn init_subscriber(&self) {
        let level = level_from(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref());
        let _ = tracing_subscriber::registry()
            .with(self.layer().with_filter(level))
            .try_init();
    }

    /// A `lambda_runtime` service running `handler` tracked: pass it to
    /// `lambda_runtime::run`. The event arrives as JSON and is deserialised into the
    /// handler's event type after the correlation ID is read from it.
    pub fn service<T, R, E, F, Fut>(
        &self,
        handler: F,
    ) -> impl Service<LambdaEvent<Value>, Response = R, Error = InvocationFailed>
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        E: Into<Error> + 'static,
        F: Fn(LambdaEvent<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
    {
        let tracking = self.clone();
        let handler = Arc::new(handler);
        service_fn(move |event: LambdaEvent<Value>| {
            let tracking = tracking.clone();
            let handler = Arc::clone(&handler);
            async move { tracking.run(event, |event| handler(event)).await }
        })
    }

    /// Runs one invocation tracked: start marker, the handler in a span holding the
    /// correlation ID, then the end marker or the error record.
    pub async fn run<T, R, E, F, Fut>(
        &self,
        event: LambdaEvent<Value>,
        handler: F,
    ) -> Result<R, InvocationFailed>
    where
        T: DeserializeOwned,
        R: Serialize,
        E: Into<Error> + 'static,
        F: FnOnce(LambdaEvent<T>) -> Fut,
        Fut: Future<Output = Result<R, E>>,
    {
        let ids = InvocationIds {
            correlation_id: correlation_id_of(&event.payload),
            request_id: Some(event.context.request_id.clone()).filter(|id| !id.is_empty()),
        };
        let span = tracing::info_span!(
            "airflow_invocation",
            correlation_id = tracing::field::Empty,
            requestId = tracing::field::Empty
        );
        if let Some(id) = &ids.correlation_id {
            span.record(CORRELATION_FIELD, id.as_str());
        }
        if let Some(id) = &ids.request_id {
            // The runtime's own span has it too; here it holds under any runtime layer.
            span.record(REQUEST_ID_FIELD, id.as_str());
        }
        self.write(&ids, record::start_marker());
        if ids.correlation_id.is_none() {
            span.in_scope(|| {
                tracing::warn!("the payload has no {PAYLOAD_KEY}: these lines are not tracked")
            });
        }
        let call = async move {
            let LambdaEvent { payload, context } = event;
            let payload: T = serde_json::from_value(payload)
                .map_err(|error| ErrorRecord::from_error(&error, "PayloadError".to_owned()))?;
            handler(LambdaEvent::new(payload, context))
                .await
                .map_err(error_record::<E>)
        };
        let outcome = AssertUnwindSafe(call.instrument(span))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(panic_record(panic.as_ref())));
        match outcome {
            Ok(result) => {
                let json = serde_json::to_value(&result)
                    .map_err(|error| format!("the result is not JSON: {error}"));
                self.write(&ids, record::end_marker(json));
                Ok(result)
            }
            Err(error) => {
                self.write(&ids, record::error_record(&error));
                Err(InvocationFailed(error))
            }
        }
    }

    fn write(&self, ids: &InvocationIds, mut line: serde_json::Map<String, Value>) {
        line.insert("target".into(), env!("CARGO_PKG_NAME").into());
        ids.add_to(&mut line);
        record::write_line(&self.make_writer, &line);
    }
}

/// The correlation ID of a payload: a string under [`PAYLOAD_KEY`] of a JSON object.
pub fn correlation_id_of(payload: &Value) -> Option<String> {
    payload
        .get(PAYLOAD_KEY)
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// How a tracked invocation failed, as its error record says: returned to Lambda with the
/// record's type and message (a synchronous caller's response then says what the log says).
pub struct InvocationFailed(pub ErrorRecord);

impl std::fmt::Display for InvocationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.error_message)
    }
}

impl std::fmt::Debug for InvocationFailed {
    // The runtime logs the error with `{:?}`: the same words as the record, not its struct.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.error_type, self.0.error_message)
    }
}

impl StdError for InvocationFailed {}

impl From<InvocationFailed> for Diagnostic {
    fn from(failed: InvocationFailed) -> Self {
        Diagnostic {
            error_type: failed.0.error_type,
            error_message: failed.0.error_message,
        }
    }
}

fn error_record<E: Into<Error> + 'static>(error: E) -> ErrorRecord {
    // The type name before boxing: once boxed, only `Box<dyn Error>` is left.
    let error_type = match record::short_type_name(type_name::<E>()) {
        name if name.starts_with("Box<dyn") => "Error".to_owned(),
        name => name,
    };
    let boxed: Error = error.into();
    ErrorRecord::from_error(boxed.as_ref(), error_type)
}

fn panic_record(panic: &(dyn std::any::Any + Send)) -> ErrorRecord {
    let message = panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the handler panicked".to_owned());
    ErrorRecord {
        error_message: message.clone(),
        error_type: "Panic".to_owned(),
        stack_trace: vec![format!("panicked: {message}")],
    }
}

fn level_from(setting: Option<&str>) -> LevelFilter {
    match setting.map(str::to_ascii_uppercase).as_deref() {
        Some("TRACE") => LevelFilter::TRACE,
        Some("DEBUG") => LevelFilter::DEBUG,
        Some("WARN") => LevelFilter::WARN,
        Some("ERROR") | Some("FATAL") => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    }
}

#[cfg(test)]
mod tests;
