//! The REST API client against a local HTTP server standing in for the api-server.

mod common;

use airflow_scaler::airflow::AirflowClient;
use airflow_scaler::budget::Deadline;
use airflow_scaler::ports::AirflowApi;
use airflow_scaler::scaling::{self, Limits, Readings, ScalePorts, TickInput};
use chrono::{Duration, Utc};
use common::http::{Request, Server};
use common::{FakeWorkers, MemoryState};

fn api() -> Server {
    Server::start(|r| {
        match r.path() {
        "/auth/token" => (201, r#"{"access_token":"tok-123","token_type":"bearer"}"#.into()),
        "/api/v2/dags/~/dagRuns/~/taskInstances" => (
            200,
            r#"{"task_instances":[{"dag_id":"d","task_id":"t","hostname":"10.0.0.5","state":"running"},{"dag_id":"d","task_id":"u","hostname":"","state":"running"}],"total_entries":7}"#.into(),
        ),
        "/api/v2/dags/~/dagRuns" => (
            200,
            r#"{"dag_runs":[{"dag_id":"d","dag_run_id":"manual__x","state":"failed","end_date":"2026-05-01T12:00:00Z"},{"dag_id":"e","dag_run_id":"r","state":"success","end_date":null}],"total_entries":2}"#.into(),
        ),
        p if p.starts_with("/api/v2/dags/etl/dagRuns/") => (
            200,
            r#"{"task_instances":[{"dag_id":"etl","task_id":"load"},{"dag_id":"etl","task_id":"load"},{"dag_id":"etl","task_id":"extract"}],"total_entries":3}"#.into(),
        ),
        _ => (404, "{}".into()),
    }
    })
}

#[tokio::test]
async fn logs_in_and_reads_with_the_bearer_token() {
    let server = api();
    let client = AirflowClient::login(common::http_client(), &server.url, "admin", "pw")
        .await
        .unwrap();
    let page = client
        .task_instances(&["running"], &["default".to_string()], 0, 100)
        .await
        .unwrap();
    assert_eq!(page.total_entries, 7);
    assert_eq!(page.items[0].hostname.as_deref(), Some("10.0.0.5"));
    assert_eq!(page.items[1].hostname, None, "empty host names are no host");
    let runs = client
        .ended_dag_runs("2026-05-01T11:58:00.000000Z", 100, 100)
        .await
        .unwrap();
    assert_eq!(runs.items.len(), 1, "a run without end date is skipped");
    assert_eq!(runs.items[0].run_id, "manual__x");
    let failed = client
        .failed_task_ids("etl", "manual__2026-05-01T12:00:00+00:00")
        .await
        .unwrap();
    assert_eq!(failed, vec!["extract".to_string(), "load".to_string()]);

    let requests = server.requests();
    let login = &requests[0];
    assert_eq!(
        (login.method.as_str(), login.path()),
        ("POST", "/auth/token")
    );
    let body: serde_json::Value = serde_json::from_str(&login.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"username": "admin", "password": "pw"})
    );
    for r in &requests[1..] {
        assert_eq!(r.header("authorization"), Some("Bearer tok-123"));
    }
    let q = requests[1].query();
    assert!(q.contains(&("state".into(), "running".into())));
    assert!(q.contains(&("queue".into(), "default".into())));
    assert!(q.contains(&("order_by".into(), "id".into())));
    assert!(q.contains(&("limit".into(), "100".into())));
    let q = requests[2].query();
    for pair in [
        ("end_date_gte", "2026-05-01T11:58:00.000000Z"),
        ("state", "success"),
        ("state", "failed"),
        ("order_by", "end_date"),
        ("offset", "100"),
        ("limit", "100"),
    ] {
        assert!(
            q.contains(&(pair.0.into(), pair.1.into())),
            "{pair:?} in {q:?}"
        );
    }
    assert_eq!(
        requests[3].path(),
        "/api/v2/dags/etl/dagRuns/manual__2026-05-01T12%3A00%3A00%2B00%3A00/taskInstances"
    );
}

#[tokio::test]
async fn a_refused_login_names_the_status_but_not_the_password() {
    let server = Server::start(|_| (401, r#"{"detail":"Invalid credentials"}"#.into()));
    let err = AirflowClient::login(common::http_client(), &server.url, "admin", "s3cr3t-pw")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("401"), "{err}");
    assert!(!err.contains("s3cr3t-pw"), "{err}");
    let err = AirflowClient::login(
        common::http_client(),
        "http://127.0.0.1:1",
        "admin",
        "s3cr3t-pw",
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("could not connect"), "{err}");
    assert!(!err.contains("s3cr3t-pw"), "{err}");
}

/// Task instances as the api-server stores them: (id, state, queue, hostname).
type Row = (String, &'static str, &'static str, String);

/// 250 running task instances on queue `default`, 50 on each of 5 workers, stored out
/// of id order; 30 more running on `gpu` (not the worker service's) on another host;
/// 7 queued on `default`.
fn rows() -> Vec<Row> {
    let mut rows: Vec<Row> = (0..250)
        .map(|i| {
            // A stride through the ids so storage order is not id order.
            let n = (i * 37) % 250;
            (
                format!("0190a000-0000-7000-8000-{n:012}"),
                "running",
                "default",
                format!("10.0.1.{}", n % 5 + 1),
            )
        })
        .collect();
    rows.extend((0..30).map(|i| {
        (
            format!("0190a000-0000-7000-9000-{i:012}"),
            "running",
            "gpu",
            "10.0.9.9".to_string(),
        )
    }));
    rows.extend((0..7).map(|i| {
        (
            format!("0190a000-0000-7000-a000-{i:012}"),
            "queued",
            "default",
            String::new(),
        )
    }));
    rows
}

/// What Airflow 3's `GET /api/v2/dags/~/dagRuns/~/taskInstances` does with the
/// parameters the scaler sends: `state` and `queue` filter (repeated: any matches),
/// `order_by` must name an allowed column, `offset`/`limit` page.
fn list_task_instances(r: &Request, rows: &[Row]) -> (u16, String) {
    let q = r.query();
    let all = |k: &str| -> Vec<String> {
        q.iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let one = |k: &str| all(k).into_iter().next();
    if one("order_by").as_deref() != Some("id") {
        // The scaler must ask for the unique key; the default (map_index) is not.
        return (
            400,
            r#"{"detail":"test server: order_by=id expected"}"#.into(),
        );
    }
    let (states, queues) = (all("state"), all("queue"));
    let mut matching: Vec<&Row> = rows
        .iter()
        .filter(|row| states.is_empty() || states.iter().any(|s| s == row.1))
        .filter(|row| queues.is_empty() || queues.iter().any(|s| s == row.2))
        .collect();
    matching.sort_by(|a, b| a.0.cmp(&b.0));
    let offset: usize = one("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit: usize = one("limit").and_then(|v| v.parse().ok()).unwrap_or(50);
    let items: Vec<serde_json::Value> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|row| {
            serde_json::json!({
                "id": row.0, "dag_id": "wide", "task_id": format!("t_{}", row.0),
                "state": row.1, "queue": row.2,
                "hostname": if row.3.is_empty() { serde_json::Value::Null } else { row.3.clone().into() },
            })
        })
        .collect();
    let body = serde_json::json!({"task_instances": items, "total_entries": matching.len()});
    (200, body.to_string())
}

#[tokio::test]
async fn reads_250_running_task_instances_page_by_page_and_finds_every_worker_busy() {
    let rows = rows();
    let server = Server::start(move |r| match r.path() {
        "/auth/token" => (201, r#"{"access_token":"tok-123"}"#.into()),
        "/api/v2/dags/~/dagRuns/~/taskInstances" => list_task_instances(r, &rows),
        _ => (404, "{}".into()),
    });
    let client = AirflowClient::login(common::http_client(), &server.url, "admin", "pw")
        .await
        .unwrap();
    let hosts: Vec<String> = (1..=5).map(|n| format!("10.0.1.{n}")).collect();
    let arns: Vec<String> = (1..=5).map(|n| format!("arn:w{n}")).collect();
    let tasks: Vec<(&str, &str)> = arns
        .iter()
        .map(String::as_str)
        .zip(hosts.iter().map(String::as_str))
        .collect();
    let workers = FakeWorkers::new(5, &tasks);
    let state = MemoryState::default();
    let limits = Limits {
        concurrency: 64,
        min: 0,
        max: 10,
        cooldown: Duration::minutes(10),
        drain: Duration::minutes(10),
    };
    let queues = vec!["default".to_string(), "heavy".to_string()];
    let ports = ScalePorts {
        airflow: &client,
        workers: &workers,
        state: &state,
    };
    let mut readings = Readings::default();
    let now = Utc::now();
    let out = scaling::tick(
        &ports,
        TickInput {
            limits: &limits,
            queues: &queues,
            now,
            deadline: Deadline::unlimited(),
        },
        &mut readings,
    )
    .await
    .unwrap();
    assert!(out.gaps.is_empty(), "{:?}", out.gaps);
    assert_eq!((out.queued, out.running, out.busy), (7, 250, 5));
    assert_eq!(out.protection.busy, arns, "every worker found busy");
    assert!(
        out.protection.unmatched_hosts.is_empty(),
        "the gpu queue's host is not counted"
    );
    assert_eq!(out.desired, 5, "ceil(257 / 64) = 5, and 5 workers are busy");
    assert!(
        workers.calls().is_empty(),
        "busy workers protect themselves: {:?}",
        workers.calls()
    );

    let lists: Vec<Vec<(String, String)>> = server
        .requests()
        .iter()
        .filter(|r| r.path() == "/api/v2/dags/~/dagRuns/~/taskInstances")
        .map(|r| r.query())
        .collect();
    let expected = |states: &[&str], offset: &str, limit: &str| -> Vec<(String, String)> {
        states
            .iter()
            .map(|s| ("state", *s))
            .chain([
                ("queue", "default"),
                ("queue", "heavy"),
                ("order_by", "id"),
                ("offset", offset),
                ("limit", limit),
            ])
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        lists,
        vec![
            expected(&["queued", "running"], "0", "1"),
            expected(&["running"], "0", "100"),
            expected(&["running"], "100", "100"),
            expected(&["running"], "200", "100"),
        ]
    );
}
