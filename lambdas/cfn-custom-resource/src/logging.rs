//! The log format every airflow-stack Lambda uses.

/// JSON lines at INFO: CloudWatch Logs Insights can query them, and DEBUG/TRACE output
/// of the SDK (which may describe requests) never reaches the logs.
pub fn init_json_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_target(false)
        .with_current_span(false)
        .with_ansi(false)
        .init();
}
