//! The event processor: a batch of the table's DynamoDB stream records (new event
//! items only: [`airflow_stack_contract::streams::processor_filter_pattern`]) to DAG
//! runs or asset events.
//!
//! - A DAG target is triggered with the run ID derived from the event's identity
//!   ([`crate::identity::run_id`]): a redelivery asks for the same run and Airflow
//!   answers 409, which counts as done. Exactly one run per event.
//! - An asset event has no such key in Airflow, so the item is claimed first
//!   ([`ProcessedMarks::claim`]), the event recorded, the item marked processed. A
//!   redelivery of a processed item records nothing. The window that remains: the
//!   processor dies after Airflow recorded the event and before the mark is written;
//!   once the claim is older than [`CLAIM_STALE_MS`] a redelivery records it again (at
//!   least once, never lost). A failed call drops the claim so the retry may proceed.
//!
//! Failures are reported per record (`batchItemFailures`, the event source mapping
//! has `ReportBatchItemFailures`). Every record is attempted, and every failed one is
//! reported: Lambda checkpoints at the lowest reported sequence number and retries
//! from there (AWS Lambda Developer Guide, "Configuring partial batch response with
//! DynamoDB and Lambda"), so the later successes are redelivered and answered by the
//! idempotence above; after the mapping's retries the record goes to its on-failure
//! destination (the dead-letter queue) and the stream moves on.

use airflow_stack_contract::streams::{attribute, EVENT_KIND, KIND_ATTRIBUTE, TABLE_KEY};
use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde_json::{Map, Value};
use tracing::{error, info};

use crate::identity::run_id;
use crate::manager::now_ms;
use crate::ports::{AirflowApi, Claimed, PortError, ProcessedMarks, Triggered};

/// A claim older than this (milliseconds) belongs to an invocation that died: the
/// template keeps the processor's timeout below it.
pub const CLAIM_STALE_MS: i64 = 5 * 60 * 1000;

/// The extra key holding the event's identity in an asset event.
pub const STREAM_EVENT_ID: &str = "stream_event_id";

/// The outside world of the processor. `airflow` is an error when the login failed:
/// every event record then fails (and is retried).
pub struct ProcessorPorts<'a> {
    /// The logged-in API, or why there is none.
    pub airflow: Result<&'a dyn AirflowApi, PortError>,
    /// The claim marks on event items.
    pub marks: &'a dyn ProcessedMarks,
}

/// An event item from a stream record's new image.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EventRecordItem {
    key: String,
    stream: String,
    identity: String,
    data: String,
    target_kind: String,
    target: String,
}

/// A string attribute of the new image.
fn string(record: &EventRecord, name: &str) -> Option<String> {
    match record.change.new_image.get(name)? {
        serde_dynamo::AttributeValue::S(s) => Some(s.clone()),
        _ => None,
    }
}

/// The event item of an insert, `None` for anything else (a lease, a mark).
fn event_item(record: &EventRecord) -> Option<Result<EventRecordItem, PortError>> {
    if record.event_name != "INSERT"
        || string(record, KIND_ATTRIBUTE).as_deref() != Some(EVENT_KIND)
    {
        return None;
    }
    let get = |name: &str| {
        string(record, name)
            .ok_or_else(|| PortError(format!("the event item has no string {name}")))
    };
    let item = (|| {
        Ok(EventRecordItem {
            key: get(TABLE_KEY)?,
            stream: get(attribute::STREAM)?,
            identity: get(attribute::IDENTITY)?,
            data: get(attribute::DATA)?,
            target_kind: get(attribute::TARGET_KIND)?,
            target: get(attribute::TARGET)?,
        })
    })();
    Some(item)
}

/// The event as `conf`/`extra`: its data when that is a JSON object, else
/// `{"event": <data as JSON, or as a string>}`.
pub fn event_object(data: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(data) {
        Ok(Value::Object(object)) => object,
        Ok(other) => Map::from_iter([("event".to_owned(), other)]),
        Err(_) => Map::from_iter([("event".to_owned(), Value::String(data.to_owned()))]),
    }
}

/// What one record came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Triggered,
    AlreadyExisted,
    AssetEvent,
    AlreadyProcessed,
    NotAnEvent,
}

/// Processes a batch; the response names the failed records.
pub async fn process_batch(event: &Event, ports: &ProcessorPorts<'_>) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in &event.records {
        match process(record, ports).await {
            Ok(done) => {
                info!(sequence = ?record.change.sequence_number, outcome = ?done, "record done")
            }
            Err(e) => {
                error!(sequence = ?record.change.sequence_number, error = %e, "record failed");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = record.change.sequence_number.clone();
                response.batch_item_failures.push(failure);
            }
        }
    }
    response
}

async fn process(record: &EventRecord, ports: &ProcessorPorts<'_>) -> Result<Done, PortError> {
    let Some(item) = event_item(record) else {
        return Ok(Done::NotAnEvent);
    };
    let item = item?;
    let airflow = ports.airflow.as_ref().map_err(Clone::clone)?;
    match item.target_kind.as_str() {
        "dag" => trigger(*airflow, &item).await,
        "asset" => asset_event(*airflow, ports.marks, &item).await,
        other => Err(PortError(format!(
            "{}: unknown target kind {other:?}",
            item.key
        ))),
    }
}

async fn trigger(airflow: &dyn AirflowApi, item: &EventRecordItem) -> Result<Done, PortError> {
    let run_id = run_id(&item.stream, &item.identity);
    let conf = Value::Object(event_object(&item.data));
    match airflow
        .trigger_dag_run(&item.target, &run_id, &conf)
        .await?
    {
        Triggered::Created => Ok(Done::Triggered),
        Triggered::AlreadyExists => Ok(Done::AlreadyExisted),
    }
}

async fn asset_event(
    airflow: &dyn AirflowApi,
    marks: &dyn ProcessedMarks,
    item: &EventRecordItem,
) -> Result<Done, PortError> {
    let claimed_at = now_ms();
    match marks
        .claim(&item.key, claimed_at, claimed_at - CLAIM_STALE_MS)
        .await?
    {
        Claimed::Claimed => {}
        Claimed::AlreadyProcessed => return Ok(Done::AlreadyProcessed),
        Claimed::InFlight => {
            return Err(PortError(format!(
                "{}: another invocation is recording it",
                item.key
            )))
        }
    }
    let recorded = record_asset_event(airflow, item).await;
    if let Err(e) = recorded {
        if let Err(u) = marks.unclaim(&item.key, claimed_at).await {
            error!(key = %item.key, error = %u, "dropping the claim failed: a retry waits for it to go stale");
        }
        return Err(e);
    }
    marks.finish(&item.key, now_ms()).await?;
    Ok(Done::AssetEvent)
}

async fn record_asset_event(
    airflow: &dyn AirflowApi,
    item: &EventRecordItem,
) -> Result<(), PortError> {
    let asset_id = airflow
        .asset_id(&item.target)
        .await?
        .ok_or_else(|| PortError(format!("no asset with URI {} in Airflow", item.target)))?;
    let mut extra = event_object(&item.data);
    extra.insert(
        STREAM_EVENT_ID.to_owned(),
        Value::String(item.identity.clone()),
    );
    airflow
        .create_asset_event(asset_id, &Value::Object(extra))
        .await
}
