//! The processor on DynamoDB stream batches (as Lambda delivers them), with a fake
//! Airflow, and the Airflow client against a local HTTP server.

use std::collections::HashMap;
use std::sync::Mutex;

use airflow_stack_contract::streams::event_key;
use airflow_streams::airflow::AirflowClient;
use airflow_streams::identity::run_id;
use airflow_streams::memory::MemoryTable;
use airflow_streams::ports::{AirflowApi, EventItem, EventStore, PortError, Triggered};
use airflow_streams::processor::{event_object, process_batch, ProcessorPorts};
use async_trait::async_trait;
use aws_lambda_events::dynamodb::Event;
use serde_json::{json, Value};

/// Airflow in memory: runs by (dag, run id); a DAG named `broken` fails.
#[derive(Default)]
struct FakeAirflow {
    runs: Mutex<HashMap<(String, String), Value>>,
    asset_events: Mutex<Vec<(i64, Value)>>,
}

#[async_trait]
impl AirflowApi for FakeAirflow {
    async fn trigger_dag_run(
        &self,
        dag_id: &str,
        run_id: &str,
        conf: &Value,
    ) -> Result<Triggered, PortError> {
        if dag_id == "broken" {
            return Err(PortError(
                "POST /api/v2/dags/broken/dagRuns answered HTTP 404".into(),
            ));
        }
        let mut runs = self.runs.lock().unwrap();
        let key = (dag_id.to_owned(), run_id.to_owned());
        if runs.contains_key(&key) {
            return Ok(Triggered::AlreadyExists);
        }
        runs.insert(key, conf.clone());
        Ok(Triggered::Created)
    }
    async fn asset_id(&self, uri: &str) -> Result<Option<i64>, PortError> {
        Ok((uri == "s3://b/orders").then_some(7))
    }
    async fn create_asset_event(&self, asset_id: i64, extra: &Value) -> Result<(), PortError> {
        self.asset_events
            .lock()
            .unwrap()
            .push((asset_id, extra.clone()));
        Ok(())
    }
}

/// A stream record of an inserted event item, as Lambda delivers it.
fn record(seq: u32, identity: &str, data: &str, kind: &str, target: &str) -> Value {
    json!({
        "eventID": format!("e{seq}"), "eventName": "INSERT", "eventVersion": "1.1",
        "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
        "dynamodb": {
            "ApproximateCreationDateTime": 1.7e9,
            "Keys": {"pk": {"S": event_key("orders", identity)}},
            "NewImage": {
                "pk": {"S": event_key("orders", identity)}, "kind": {"S": "event"},
                "stream": {"S": "orders"}, "identity": {"S": identity}, "data": {"S": data},
                "target_kind": {"S": kind}, "target": {"S": target},
                "received_at": {"N": "1700000000000"}, "expires_at": {"N": "1700600000"}
            },
            "SequenceNumber": format!("{seq:021}"), "SizeBytes": 120,
            "StreamViewType": "NEW_IMAGE"
        }
    })
}

fn batch(records: Vec<Value>) -> Event {
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

#[tokio::test]
async fn one_run_per_event_409_is_done_and_one_failure_does_not_block_the_rest() {
    let airflow = FakeAirflow::default();
    let table = MemoryTable::default();
    let ports = ProcessorPorts {
        airflow: Ok(&airflow),
        marks: &table,
    };
    let event = batch(vec![
        record(1, "a", "{\"n\":1}", "dag", "orders_dag"),
        record(2, "b", "[1,2]", "dag", "broken"),
        record(3, "c", "plain", "dag", "orders_dag"),
        record(4, "a", "{\"n\":1}", "dag", "orders_dag"), // a redelivery of record 1
    ]);
    let response = process_batch(&event, &ports).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect();
    assert_eq!(failed, [format!("{:021}", 2)]);
    let wire = serde_json::to_value(&response).unwrap();
    assert_eq!(
        wire,
        json!({"batchItemFailures": [{"itemIdentifier": format!("{:021}", 2)}]})
    );

    let runs = airflow.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 2, "a and c, a once");
    assert_eq!(
        runs[&("orders_dag".into(), run_id("orders", "a"))],
        json!({"n": 1})
    );
    assert_eq!(
        runs[&("orders_dag".into(), run_id("orders", "c"))],
        json!({"event": "plain"})
    );

    // The retry from the failed record on: nothing new, nothing twice.
    let retry = process_batch(
        &batch(vec![record(3, "c", "plain", "dag", "orders_dag")]),
        &ports,
    )
    .await;
    assert!(retry.batch_item_failures.is_empty());
    assert_eq!(airflow.runs.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn asset_events_are_recorded_once_and_a_failed_login_fails_every_event() {
    let airflow = FakeAirflow::default();
    let table = MemoryTable::default();
    for id in ["x", "y"] {
        let item = EventItem {
            key: event_key("orders", id),
            stream: "orders".into(),
            identity: id.into(),
            data: "{\"n\":1}".into(),
            event_id: None,
            target_kind: "asset".into(),
            target: "s3://b/orders".into(),
            received_at_ms: 0,
            expires_at: 0,
        };
        table.put_event(&item).await.unwrap();
    }
    let ports = ProcessorPorts {
        airflow: Ok(&airflow),
        marks: &table,
    };
    let event = batch(vec![
        record(1, "x", "{\"n\":1}", "asset", "s3://b/orders"),
        record(2, "x", "{\"n\":1}", "asset", "s3://b/orders"),
        record(3, "y", "{\"n\":1}", "asset", "s3://b/unknown"),
    ]);
    let response = process_batch(&event, &ports).await;
    assert_eq!(response.batch_item_failures.len(), 1, "the unknown asset");
    let events = airflow.asset_events.lock().unwrap().clone();
    assert_eq!(events, [(7, json!({"n": 1, "stream_event_id": "x"}))]);
    let y = table
        .events()
        .into_iter()
        .find(|e| e.item.identity == "y")
        .unwrap();
    assert_eq!(
        (y.claimed_at, y.processed_at),
        (None, None),
        "the claim was dropped for the retry"
    );

    let down = ProcessorPorts {
        airflow: Err(PortError("POST /auth/token answered HTTP 503".into())),
        marks: &table,
    };
    let response = process_batch(
        &batch(vec![
            record(5, "z", "{}", "dag", "d"),
            record(6, "w", "{}", "dag", "d"),
        ]),
        &down,
    )
    .await;
    assert_eq!(response.batch_item_failures.len(), 2);
}

#[test]
fn non_object_data_is_wrapped() {
    assert_eq!(Value::Object(event_object("{\"a\":1}")), json!({"a": 1}));
    assert_eq!(Value::Object(event_object("42")), json!({"event": 42}));
    assert_eq!(
        Value::Object(event_object("not json")),
        json!({"event": "not json"})
    );
}

/// A one-shot-per-connection HTTP server answering by path.
async fn airflow_server() -> (String, std::sync::Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 16384];
            let mut got = 0;
            // Read the head and the body (content-length).
            let request = loop {
                let n = socket.read(&mut buf[got..]).await.unwrap();
                got += n;
                let text = String::from_utf8_lossy(&buf[..got]).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= len || n == 0 {
                        break text;
                    }
                }
            };
            log.lock().unwrap().push(request.clone());
            let line = request.lines().next().unwrap_or_default().to_owned();
            let logins = log
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.starts_with("POST /auth/token"))
                .count();
            let fresh = request.to_ascii_lowercase().contains("bearer tok2");
            let (status, body) = if line.starts_with("POST /auth/token") {
                (
                    201,
                    if logins == 1 {
                        "{\"access_token\":\"tok\"}"
                    } else {
                        "{\"access_token\":\"tok2\"}"
                    },
                )
            } else if line.contains("/dags/expiring/dagRuns") && !fresh {
                (401, "{\"detail\":\"expired\"}")
            } else if line.contains("/dags/expiring/dagRuns") {
                (200, "{}")
            } else if line.contains("/dags/seen/dagRuns") {
                (409, "{\"detail\":\"exists\"}")
            } else if line.contains("/dags/new/dagRuns") {
                (200, "{}")
            } else {
                (404, "{\"detail\":\"DAG with dag_id: 'gone' not found\"}")
            };
            let response = format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            socket.write_all(response.as_bytes()).await.unwrap();
        }
    });
    (url, seen)
}

#[tokio::test]
async fn the_airflow_client_logs_in_and_maps_409_to_already_exists() {
    let (url, seen) = airflow_server().await;
    let http = airflow_scaler::http::client().unwrap();
    let client = AirflowClient::login(http, &url, "airflow-stack-streams", "pw-secret")
        .await
        .unwrap();
    let conf = json!({"n": 1});
    assert_eq!(
        client
            .trigger_dag_run("new", "stream__orders__ab", &conf)
            .await
            .unwrap(),
        Triggered::Created
    );
    assert_eq!(
        client
            .trigger_dag_run("seen", "stream__orders__ab", &conf)
            .await
            .unwrap(),
        Triggered::AlreadyExists
    );
    let error = client
        .trigger_dag_run("gone", "r", &conf)
        .await
        .unwrap_err();
    assert!(
        error.0.contains("404") && error.0.contains("not found"),
        "{error}"
    );
    assert!(!error.0.contains("tok") && !error.0.contains("pw-secret"));
    // An expired token: one login again, then the call goes through.
    assert_eq!(
        client
            .trigger_dag_run("expiring", "r", &conf)
            .await
            .unwrap(),
        Triggered::Created
    );
    let requests = seen.lock().unwrap().clone();
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.starts_with("POST /auth/token"))
            .count(),
        2
    );
    let trigger = &requests[1];
    assert!(trigger
        .to_ascii_lowercase()
        .contains("authorization: bearer tok"));
    let body: Value = serde_json::from_str(trigger.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(
        body,
        json!({"dag_run_id": "stream__orders__ab", "logical_date": null, "conf": {"n": 1}})
    );
}
