//! The JSON records themselves: field names, the markers, the error record, and writing
//! one record as one line. The format is defined once, in
//! `providers/airflow-stack-lambda/README.md` ("Record format"); this module writes it.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing_subscriber::fmt::MakeWriter;

/// The payload key the operator puts the correlation ID under.
pub const PAYLOAD_KEY: &str = "airflow_correlation_id";
/// The field every record of a tracked invocation carries.
pub const CORRELATION_FIELD: &str = "correlation_id";
/// The field naming a marker: `start`, `end` or `error`.
pub const MARKER_FIELD: &str = "airflow_tracking";
/// The Lambda request id, from the runtime's span, on every line that has one.
pub const REQUEST_ID_FIELD: &str = "requestId";
/// The largest result, as JSON text, the end marker carries. CloudWatch Logs caps the size
/// of one log event; this leaves room for the other fields under that cap. A larger
/// result is left out and `result_omitted` says why.
pub const MAX_RESULT_BYTES: usize = 128 * 1024;

/// The identity of the invocation a record belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InvocationIds {
    /// From the payload's [`PAYLOAD_KEY`]; `None` when the caller sent none.
    pub correlation_id: Option<String>,
    /// Lambda's request id.
    pub request_id: Option<String>,
}

impl InvocationIds {
    /// Adds the ids a record has not set itself.
    pub(crate) fn add_to(&self, record: &mut Map<String, Value>) {
        if let Some(id) = &self.correlation_id {
            record
                .entry(CORRELATION_FIELD)
                .or_insert_with(|| Value::String(id.clone()));
        }
        if let Some(id) = &self.request_id {
            record
                .entry(REQUEST_ID_FIELD)
                .or_insert_with(|| Value::String(id.clone()));
        }
    }
}

/// A failed invocation as the error record describes it (Lambda's own error field names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorRecord {
    /// The error's `Display`.
    pub error_message: String,
    /// The error's type name, without module paths.
    pub error_type: String,
    /// The error and its chain of `source()`s, outermost first ("caused by: ..." after the
    /// first): Rust errors have no portable stack, the chain is what explains them.
    pub stack_trace: Vec<String>,
}

impl ErrorRecord {
    /// From an error value, walking its `source()` chain.
    pub fn from_error(error: &(dyn std::error::Error + 'static), error_type: String) -> Self {
        let mut stack_trace = vec![error.to_string()];
        let mut cause = error.source();
        while let Some(inner) = cause {
            stack_trace.push(format!("caused by: {inner}"));
            cause = inner.source();
        }
        Self {
            error_message: error.to_string(),
            error_type,
            stack_trace,
        }
    }
}

/// The start marker's fields.
pub(crate) fn start_marker() -> Map<String, Value> {
    let mut record = base("INFO", "invocation started");
    record.insert(MARKER_FIELD.into(), "start".into());
    record
}

/// The end marker's fields; `result` only when the handler returned a non-null value that
/// fits in [`MAX_RESULT_BYTES`].
pub(crate) fn end_marker(result: Result<Value, String>) -> Map<String, Value> {
    let mut record = base("INFO", "invocation ended");
    record.insert(MARKER_FIELD.into(), "end".into());
    match result {
        Ok(Value::Null) => {}
        Ok(value) => {
            let size = serde_json::to_string(&value).map_or(usize::MAX, |text| text.len());
            if size <= MAX_RESULT_BYTES {
                record.insert("result".into(), value);
            } else {
                record.insert(
                    "result_omitted".into(),
                    format!("the result is {size} bytes of JSON, over the {MAX_RESULT_BYTES} an end marker carries").into(),
                );
            }
        }
        Err(why) => {
            record.insert("result_omitted".into(), why.into());
        }
    }
    record
}

/// The error record's fields.
pub(crate) fn error_record(error: &ErrorRecord) -> Map<String, Value> {
    let mut record = base("ERROR", &error.error_message);
    record.insert(MARKER_FIELD.into(), "error".into());
    record.insert("errorMessage".into(), error.error_message.clone().into());
    record.insert("errorType".into(), error.error_type.clone().into());
    record.insert(
        "stackTrace".into(),
        Value::Array(
            error
                .stack_trace
                .iter()
                .cloned()
                .map(Value::String)
                .collect(),
        ),
    );
    record
}

/// The fields every record written by this crate starts with.
pub(crate) fn base(level: &str, message: &str) -> Map<String, Value> {
    let mut record = Map::new();
    record.insert("timestamp".into(), now_rfc3339().into());
    record.insert("level".into(), level.into());
    record.insert("message".into(), message.into());
    record
}

/// Writes one record as one line. A failed write is dropped: logging must never fail the
/// function (and on Lambda, stdout does not fail).
pub(crate) fn write_line<W>(make_writer: &W, record: &Map<String, Value>)
where
    W: for<'a> MakeWriter<'a>,
{
    // Compact JSON has no raw newline, so one record is one CloudWatch log event.
    let Ok(mut line) = serde_json::to_vec(record) else {
        return;
    };
    line.push(b'\n');
    // One write_all per record: concurrent invocations do not interleave within a line.
    let _ = make_writer.make_writer().write_all(&line);
}

/// A type name without module paths: `my_fn::LoadError` gives `LoadError`,
/// `alloc::boxed::Box<dyn core::error::Error>` gives `Box<dyn Error>`.
pub(crate) fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut segment = String::new();
    let mut chars = full.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            segment.clear(); // a path prefix: drop it
        } else if c.is_alphanumeric() || c == '_' {
            segment.push(c);
        } else {
            out.push_str(&segment);
            segment.clear();
            out.push(c);
        }
    }
    out.push_str(&segment);
    out
}

/// Now as RFC 3339 UTC with milliseconds (`2026-12-01T17:42:44.123Z`).
pub(crate) fn now_rfc3339() -> String {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(since_epoch.as_millis() as i64)
}

/// Milliseconds since the epoch as RFC 3339 UTC. The date from the day count is Howard
/// Hinnant's `civil_from_days` ("chrono-Compatible Low-Level Date Algorithms"); it saves a
/// date crate for one format.
pub(crate) fn rfc3339(epoch_ms: i64) -> String {
    let days = epoch_ms.div_euclid(86_400_000);
    let ms_of_day = epoch_ms.rem_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, ms) = (
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day of a century leap year), 12:34:56.789
        assert_eq!(rfc3339(951_827_696_789), "2000-02-29T12:34:56.789Z");
        assert_eq!(rfc3339(1_796_147_364_005), "2026-12-01T17:49:24.005Z");
    }

    #[test]
    fn short_type_names_drop_module_paths() {
        assert_eq!(short_type_name("my_fn::errors::LoadError"), "LoadError");
        assert_eq!(
            short_type_name(
                "alloc::boxed::Box<dyn core::error::Error + core::marker::Send + core::marker::Sync>"
            ),
            "Box<dyn Error + Send + Sync>"
        );
        assert_eq!(short_type_name("String"), "String");
    }

    #[test]
    fn a_large_result_is_left_out_with_the_reason() {
        let big = Value::String("x".repeat(MAX_RESULT_BYTES));
        let marker = end_marker(Ok(big));
        assert!(marker.get("result").is_none());
        assert!(marker["result_omitted"]
            .as_str()
            .unwrap()
            .contains("over the 131072"));
    }

    #[test]
    fn a_null_result_is_no_result() {
        assert!(end_marker(Ok(Value::Null)).get("result").is_none());
        assert!(end_marker(Ok(Value::Null)).get("result_omitted").is_none());
    }
}
