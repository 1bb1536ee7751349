//! The REST API client against a local HTTP server standing in for the api-server.

mod common;

use airflow_scaler::airflow::AirflowClient;
use airflow_scaler::ports::AirflowApi;
use common::http::Server;

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
    let page = client.task_instances("running", 0, 100).await.unwrap();
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
