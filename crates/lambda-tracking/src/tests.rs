//! The records a tracked invocation writes, captured from the writer.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use super::*;

const CID: &str = "etl.load.manual__2026-12-01.m-1.t2.0123456789ab";

/// Every line written, kept in memory.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn records(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "whole lines only");
        text.lines()
            .map(|line| serde_json::from_str(line).expect("every line is one JSON object"))
            .collect()
    }
}

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(Arc::clone(&self.0))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("table {table} is locked")]
struct LoadError {
    table: String,
    #[source]
    cause: io::Error,
}

#[derive(serde::Deserialize)]
struct Job {
    table: String,
    fail: bool,
}

async fn job(event: LambdaEvent<Job>) -> Result<Value, LoadError> {
    tracing::info!(rows = 3, "loading {}", event.payload.table);
    if event.payload.fail {
        return Err(LoadError {
            table: event.payload.table,
            cause: io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused"),
        });
    }
    Ok(json!({"rows": 3}))
}

fn event(payload: Value) -> LambdaEvent<Value> {
    let mut context = Context::default();
    context.request_id = "req-1".to_owned();
    LambdaEvent::new(payload, context)
}

/// Runs `body` on a current-thread runtime with the layer as this thread's subscriber.
fn with_tracking<F, Fut, O>(body: F) -> (O, Vec<Value>)
where
    F: FnOnce(Tracking<Capture>) -> Fut,
    Fut: Future<Output = O>,
{
    let capture = Capture::default();
    let tracking = Tracking::new(capture.clone());
    let subscriber = tracing_subscriber::registry().with(tracking.layer());
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let out = runtime.block_on(body(tracking));
    (out, capture.records())
}

fn kinds(records: &[Value]) -> Vec<Option<&str>> {
    records
        .iter()
        .map(|r| r.get(MARKER_FIELD).and_then(Value::as_str))
        .collect()
}

#[test]
fn success_writes_start_lines_and_end_with_the_result() {
    let (result, records) = with_tracking(|tracking| async move {
        let payload = json!({PAYLOAD_KEY: CID, "table": "orders", "fail": false});
        tracking.run(event(payload), job).await
    });

    assert_eq!(result.unwrap(), json!({"rows": 3}));
    assert_eq!(kinds(&records), [Some("start"), None, Some("end")]);
    for record in &records {
        assert_eq!(record[CORRELATION_FIELD], CID, "{record}");
        assert_eq!(record[REQUEST_ID_FIELD], "req-1", "{record}");
        assert!(record["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    let line = &records[1];
    assert_eq!(line["message"], "loading orders");
    assert_eq!(line["rows"], 3);
    assert_eq!(line["level"], "INFO");
    assert_eq!(records[2]["result"], json!({"rows": 3}));
}

#[test]
fn failure_writes_the_error_record_with_the_source_chain() {
    let (result, records) = with_tracking(|tracking| async move {
        let payload = json!({PAYLOAD_KEY: CID, "table": "orders", "fail": true});
        tracking.run(event(payload), job).await
    });

    assert_eq!(result.unwrap_err().to_string(), "table orders is locked");
    assert_eq!(kinds(&records), [Some("start"), None, Some("error")]);
    let error = &records[2];
    assert_eq!(error[CORRELATION_FIELD], CID);
    assert_eq!(error["level"], "ERROR");
    assert_eq!(error["errorMessage"], "table orders is locked");
    assert_eq!(error["errorType"], "LoadError");
    assert_eq!(
        error["stackTrace"],
        json!(["table orders is locked", "caused by: connection refused"])
    );
    assert!(error.get("result").is_none());
}

#[test]
fn a_payload_that_is_not_the_event_type_is_an_error_record() {
    let (result, records) = with_tracking(|tracking| async move {
        tracking.run(event(json!({PAYLOAD_KEY: CID})), job).await
    });
    assert!(result.is_err());
    assert_eq!(kinds(&records), [Some("start"), Some("error")]);
    assert_eq!(records[1]["errorType"], "PayloadError");
    assert!(records[1]["errorMessage"]
        .as_str()
        .unwrap()
        .contains("missing field"));
}

#[test]
fn a_panic_is_an_error_record_and_an_error() {
    async fn panics(_: LambdaEvent<Value>) -> Result<(), io::Error> {
        panic!("index out of range");
    }
    let (result, records) = with_tracking(|tracking| async move {
        tracking.run(event(json!({PAYLOAD_KEY: CID})), panics).await
    });
    assert_eq!(result.unwrap_err().to_string(), "index out of range");
    assert_eq!(kinds(&records), [Some("start"), Some("error")]);
    assert_eq!(records[1]["errorType"], "Panic");
}

#[test]
fn a_boxed_error_chain_is_kept() {
    async fn boxed(_: LambdaEvent<Value>) -> Result<(), Error> {
        Err(Box::new(LoadError {
            table: "t".into(),
            cause: io::Error::other("disk full"),
        }))
    }
    let (_, records) = with_tracking(|tracking| async move {
        tracking.run(event(json!({PAYLOAD_KEY: CID})), boxed).await
    });
    assert_eq!(records[1]["errorType"], "Error");
    assert_eq!(
        records[1]["stackTrace"],
        json!(["table t is locked", "caused by: disk full"])
    );
}

#[test]
fn no_result_means_no_result_field() {
    async fn nothing(_: LambdaEvent<Value>) -> Result<(), io::Error> {
        Ok(())
    }
    let (_, records) = with_tracking(|tracking| async move {
        tracking
            .run(event(json!({PAYLOAD_KEY: CID})), nothing)
            .await
    });
    assert_eq!(kinds(&records), [Some("start"), Some("end")]);
    assert!(records[1].get("result").is_none());
}

#[test]
fn without_a_correlation_id_the_lines_say_so_and_carry_none() {
    async fn ok(_: LambdaEvent<Value>) -> Result<u8, io::Error> {
        Ok(1)
    }
    let (_, records) =
        with_tracking(|tracking| async move { tracking.run(event(json!({})), ok).await });
    assert_eq!(kinds(&records), [Some("start"), None, Some("end")]);
    assert!(records.iter().all(|r| r.get(CORRELATION_FIELD).is_none()));
    assert!(records[1]["message"]
        .as_str()
        .unwrap()
        .contains(PAYLOAD_KEY));
}

#[test]
fn lines_outside_an_invocation_have_no_correlation_id() {
    let (_, records) = with_tracking(|_| async { tracing::info!("cold start") });
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["message"], "cold start");
    assert!(records[0].get(CORRELATION_FIELD).is_none());
}

#[test]
fn spans_inside_the_handler_keep_the_correlation_id() {
    async fn nested(_: LambdaEvent<Value>) -> Result<(), io::Error> {
        let span = tracing::info_span!("step", name = "copy");
        span.in_scope(|| tracing::warn!(attempt = 2, "retrying"));
        Ok(())
    }
    let (_, records) = with_tracking(|tracking| async move {
        tracking.run(event(json!({PAYLOAD_KEY: CID})), nested).await
    });
    assert_eq!(records[1]["message"], "retrying");
    assert_eq!(records[1][CORRELATION_FIELD], CID);
    assert_eq!(records[1]["level"], "WARN");
}

#[test]
fn the_service_runs_the_handler_tracked() {
    let (result, records) = with_tracking(|tracking| async move {
        let mut service = tracking.service(job);
        let payload = json!({PAYLOAD_KEY: CID, "table": "t", "fail": false});
        service.call(event(payload)).await
    });
    assert_eq!(result.unwrap(), json!({"rows": 3}));
    assert_eq!(kinds(&records), [Some("start"), None, Some("end")]);
}

#[test]
fn log_levels_follow_lambdas_setting() {
    assert_eq!(level_from(None), LevelFilter::INFO);
    assert_eq!(level_from(Some("debug")), LevelFilter::DEBUG);
    assert_eq!(level_from(Some("FATAL")), LevelFilter::ERROR);
    assert_eq!(level_from(Some("nonsense")), LevelFilter::INFO);
}
