//! The alert state machine over several ticks, against a fake Airflow and recording
//! targets; Slack payloads through a local HTTP server; SNS through the emulator.

mod common;

use std::sync::{Arc, Mutex};

use airflow_scaler::alerts::{self, AlertSettings};
use airflow_scaler::notify::{Kind, Notice, SlackWebhook};
use airflow_scaler::ports::Notifier;
use chrono::{DateTime, Duration, Utc};
use common::http::Server;
use common::{FakeAirflow, MemoryState, Recorder};

fn at(minute: i64) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-05-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
        + Duration::minutes(minute)
}

/// An end date `seconds` after 12:00, in Airflow's format.
fn end(seconds: i64) -> String {
    (at(0) + Duration::seconds(seconds))
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

fn settings() -> AlertSettings {
    AlertSettings::new("dev".into(), "https://airflow.example.com/".into())
}

struct World {
    airflow: FakeAirflow,
    state: MemoryState,
    sent: Arc<Mutex<Vec<Notice>>>,
    fail: Arc<Mutex<bool>>,
    notifiers: Vec<Box<dyn Notifier>>,
}

impl World {
    fn new() -> World {
        let recorder = Recorder::default();
        World {
            sent: recorder.sent.clone(),
            fail: recorder.fail.clone(),
            airflow: FakeAirflow::default(),
            state: MemoryState::default(),
            notifiers: vec![Box::new(recorder)],
        }
    }

    async fn tick(&self, minute: i64) -> Result<alerts::AlertOutcome, alerts::AlertError> {
        alerts::tick(
            &self.airflow,
            &self.state,
            &self.notifiers,
            &settings(),
            at(minute),
        )
        .await
    }

    /// `(kind, dag, run)` of every notice so far.
    fn sent(&self) -> Vec<(Kind, String, String)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|n| (n.kind, n.dag_id.clone(), n.run_id.clone()))
            .collect()
    }
}

fn failed(dag: &str, run: &str) -> (Kind, String, String) {
    (Kind::Failed, dag.into(), run.into())
}

fn recovered(dag: &str, run: &str) -> (Kind, String, String) {
    (Kind::Recovered, dag.into(), run.into())
}

#[tokio::test]
async fn first_failure_alerts_once_with_tasks_and_link() {
    let mut w = World::new();
    w.airflow.failed_tasks.insert(
        ("etl".into(), "manual__2026-05-01T11:59:00+00:00".into()),
        vec!["load".into(), "extract".into()],
    );
    w.airflow.push_run(
        "etl",
        "manual__2026-05-01T11:59:00+00:00",
        "failed",
        &end(30),
    );
    w.tick(1).await.unwrap();
    // The same run is inside the next ticks' overlap window: still one alert.
    w.tick(2).await.unwrap();
    w.tick(3).await.unwrap();
    assert_eq!(
        w.sent(),
        vec![failed("etl", "manual__2026-05-01T11:59:00+00:00")]
    );
    let notice = w.sent.lock().unwrap()[0].clone();
    assert_eq!(
        notice.failed_tasks,
        vec!["load".to_string(), "extract".to_string()]
    );
    assert_eq!(
        notice.url,
        "https://airflow.example.com/dags/etl/runs/manual__2026-05-01T11%3A59%3A00%2B00%3A00"
    );
}

#[tokio::test]
async fn repeated_failures_stay_quiet_and_recovery_notifies_once() {
    let w = World::new();
    w.airflow.push_run("etl", "r1", "failed", &end(10));
    w.tick(1).await.unwrap();
    w.airflow.push_run("etl", "r2", "failed", &end(70));
    w.tick(2).await.unwrap();
    w.airflow.push_run("etl", "r3", "failed", &end(130));
    w.tick(3).await.unwrap();
    assert_eq!(w.sent(), vec![failed("etl", "r1")], "still failed: quiet");
    w.airflow.push_run("etl", "r4", "success", &end(190));
    w.tick(4).await.unwrap();
    w.airflow.push_run("etl", "r5", "success", &end(250));
    w.tick(5).await.unwrap();
    assert_eq!(w.sent(), vec![failed("etl", "r1"), recovered("etl", "r4")]);
    // A first-ever success is quiet too.
    w.airflow.push_run("other", "o1", "success", &end(260));
    w.tick(6).await.unwrap();
    assert_eq!(w.sent().len(), 2);
}

#[tokio::test]
async fn flapping_gives_one_notice_per_transition() {
    let w = World::new();
    let states = ["failed", "success", "failed", "failed", "success", "failed"];
    for (i, s) in states.iter().enumerate() {
        w.airflow
            .push_run("flaky", &format!("r{i}"), s, &end(10 + 60 * i as i64));
        w.tick(1 + i as i64).await.unwrap();
    }
    assert_eq!(
        w.sent(),
        vec![
            failed("flaky", "r0"),
            recovered("flaky", "r1"),
            failed("flaky", "r2"),
            recovered("flaky", "r4"),
            failed("flaky", "r5"),
        ]
    );
    // The same history in one tick gives the same notices, in end-date order.
    let w2 = World::new();
    for (i, s) in states.iter().enumerate().rev() {
        w2.airflow
            .push_run("flaky", &format!("r{i}"), s, &end(10 + i as i64));
    }
    w2.tick(1).await.unwrap();
    assert_eq!(w2.sent(), w.sent());
}

#[tokio::test]
async fn many_dags_across_several_pages() {
    let w = World::new();
    // 250 DAGs: every third fails; 3 pages of 100.
    for i in 0..250 {
        let state = if i % 3 == 0 { "failed" } else { "success" };
        w.airflow
            .push_run(&format!("dag_{i:03}"), "r1", state, &end(i));
    }
    let out = w.tick(5).await.unwrap();
    assert_eq!(out.runs_read, 250);
    let offsets: Vec<u64> = w
        .airflow
        .run_calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.1)
        .collect();
    assert_eq!(offsets, vec![0, 100, 200]);
    let sent = w.sent();
    assert_eq!(sent.len(), 84);
    assert!(sent.iter().all(|(k, d, _)| *k == Kind::Failed
        && d.trim_start_matches("dag_").parse::<u32>().unwrap() % 3 == 0));
    // Next tick: nothing new, nothing sent; the query starts at the cursor minus overlap.
    w.tick(6).await.unwrap();
    assert_eq!(w.sent().len(), 84);
    let last_since = w
        .airflow
        .run_calls
        .lock()
        .unwrap()
        .last()
        .unwrap()
        .0
        .clone();
    assert_eq!(
        last_since, "2026-05-01T12:02:09.000000Z",
        "cursor 12:04:09 minus 2 min"
    );
}

#[tokio::test]
async fn an_undelivered_alert_is_retried_and_later_runs_wait() {
    let w = World::new();
    w.airflow.push_run("a", "r1", "failed", &end(10));
    w.airflow.push_run("b", "r1", "failed", &end(20));
    *w.fail.lock().unwrap() = true;
    assert!(w.tick(1).await.is_err());
    assert!(w.sent().is_empty());
    *w.fail.lock().unwrap() = false;
    // Ten minutes later: the cursor did not move past the unsent runs.
    w.tick(11).await.unwrap();
    assert_eq!(w.sent(), vec![failed("a", "r1"), failed("b", "r1")]);
}

#[tokio::test]
async fn slack_webhook_receives_one_json_message_per_notice() {
    let server = Server::start(|_| (200, "ok".into()));
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let slack = SlackWebhook::new(
        reqwest::Client::new(),
        format!("{}/services/T0/B0/secret", server.url),
    );
    let mut w = World::new();
    w.notifiers = vec![Box::new(slack)];
    w.airflow
        .failed_tasks
        .insert(("etl".into(), "r1".into()), vec!["load".into()]);
    w.airflow.push_run("etl", "r1", "failed", &end(10));
    w.tick(1).await.unwrap();
    w.airflow.push_run("etl", "r2", "failed", &end(70));
    w.tick(2).await.unwrap();
    w.airflow.push_run("etl", "r3", "success", &end(130));
    w.tick(3).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "one alert and one recovery");
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path(), "/services/T0/B0/secret");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    let alert: serde_json::Value = serde_json::from_str(&requests[0].body).unwrap();
    let text = alert["text"].as_str().unwrap();
    assert!(text.contains("[dev] DAG etl failed"), "{text}");
    assert!(text.contains("Run: r1"), "{text}");
    assert!(text.contains("Failed tasks: load"), "{text}");
    assert!(
        text.contains("https://airflow.example.com/dags/etl/runs/r1"),
        "{text}"
    );
    let recovery: serde_json::Value = serde_json::from_str(&requests[1].body).unwrap();
    let text = recovery["text"].as_str().unwrap();
    assert!(
        text.contains("[dev] DAG etl recovered") && text.contains("Run: r3"),
        "{text}"
    );
}

#[tokio::test]
async fn slack_errors_never_show_the_webhook_url() {
    let server = Server::start(|_| (500, "no".into()));
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let url = format!("{}/services/T0/B0/very-secret-token", server.url);
    let slack = SlackWebhook::new(reqwest::Client::new(), url);
    let notice = Notice {
        kind: Kind::Failed,
        stack: "dev".into(),
        dag_id: "etl".into(),
        run_id: "r1".into(),
        failed_tasks: vec![],
        url: "u".into(),
        end_date: "e".into(),
    };
    let err = slack.send(&notice).await.unwrap_err().to_string();
    assert!(!err.contains("very-secret-token"), "{err}");
    let unreachable = SlackWebhook::new(
        reqwest::Client::new(),
        "http://127.0.0.1:1/services/T0/B0/very-secret-token".into(),
    );
    let err = unreachable.send(&notice).await.unwrap_err().to_string();
    assert!(!err.contains("very-secret-token"), "{err}");
}

#[tokio::test]
async fn sns_topic_gets_subject_and_message_through_the_emulator() {
    use airflow_scaler::aws::SnsTopic;
    let emulator = common::emulator::Emulator::start();
    let config = emulator.sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let topic_arn = sns
        .create_topic()
        .name("alerts")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();
    // An HTTP subscriber: the emulator POSTs each notification to it, as SNS does.
    let inbox = Server::start(|_| (200, "{}".into()));
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("http")
        .endpoint(format!("{}/sns", inbox.url))
        .send()
        .await
        .unwrap();

    let mut w = World::new();
    w.notifiers = vec![Box::new(SnsTopic {
        client: sns.clone(),
        topic_arn: topic_arn.clone(),
    })];
    w.airflow
        .failed_tasks
        .insert(("etl".into(), "r1".into()), vec!["load".into()]);
    w.airflow.push_run("etl", "r1", "failed", &end(10));
    w.tick(1).await.unwrap();
    w.airflow.push_run("etl", "r2", "failed", &end(70));
    w.tick(2).await.unwrap();
    w.airflow.push_run("etl", "r3", "success", &end(130));
    w.tick(3).await.unwrap();

    let notifications: Vec<serde_json::Value> = inbox
        .requests()
        .iter()
        .filter_map(|r| serde_json::from_str::<serde_json::Value>(&r.body).ok())
        .filter(|v| v["Type"] == "Notification")
        .collect();
    assert_eq!(
        notifications.len(),
        2,
        "one alert and one recovery: {notifications:#?}"
    );
    let alert = &notifications[0];
    assert_eq!(alert["TopicArn"], topic_arn.as_str());
    assert_eq!(alert["Subject"], "[dev] DAG etl failed");
    let message = alert["Message"].as_str().unwrap();
    assert!(message.contains("Run: r1"), "{message}");
    assert!(message.contains("Failed tasks: load"), "{message}");
    assert!(
        message.contains("https://airflow.example.com/dags/etl/runs/r1"),
        "{message}"
    );
    assert_eq!(notifications[1]["Subject"], "[dev] DAG etl recovered");
}
