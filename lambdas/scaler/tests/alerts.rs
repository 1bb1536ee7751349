//! The alert state machine over several ticks, against a fake Airflow and recording
//! targets; Slack payloads through a local HTTP server; SNS through the emulator.

mod common;

use std::sync::{Arc, Mutex};

use airflow_scaler::alerts::{self, AlertPorts, AlertSettings};
use airflow_scaler::budget::Deadline;
use airflow_scaler::notify::{is_slack_webhook_url, slack_escape, Kind, Notice, SlackWebhook};
use airflow_scaler::ports::{Item, Notifier, StateStore};
use airflow_scaler::state;
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
        self.tick_until(minute, Deadline::unlimited()).await
    }

    async fn tick_until(
        &self,
        minute: i64,
        deadline: Deadline,
    ) -> Result<alerts::AlertOutcome, alerts::AlertError> {
        let ports = AlertPorts {
            airflow: &self.airflow,
            store: &self.state,
            notifiers: &self.notifiers,
        };
        alerts::tick(&ports, &settings(), at(minute), deadline).await
    }

    /// `(last_state, last_run_id)` stored for a DAG.
    fn dag(&self, dag: &str) -> (String, String) {
        let item = self.state.item(&format!("dag#{dag}")).unwrap();
        (item["last_state"].clone(), item["last_run_id"].clone())
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
    let slack = SlackWebhook::unchecked(
        common::http_client(),
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
    let url = format!("{}/services/T0/B0/very-secret-token", server.url);
    let slack = SlackWebhook::unchecked(common::http_client(), url);
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
    let unreachable = SlackWebhook::unchecked(
        common::http_client(),
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

/// The history the concurrency test replays: three DAGs fail once, one flaps
/// failed -> success -> failed, one fails and recovers.
fn busy_history(w: &World) {
    for dag in ["a", "b", "c"] {
        w.airflow.push_run(dag, "r1", "failed", &end(10));
    }
    w.airflow.push_run("d", "r1", "failed", &end(20));
    w.airflow.push_run("d", "r2", "success", &end(30));
    w.airflow.push_run("d", "r3", "failed", &end(40));
    w.airflow.push_run("e", "r1", "failed", &end(50));
    w.airflow.push_run("e", "r2", "success", &end(60));
}

#[tokio::test]
async fn two_overlapping_ticks_send_each_notice_once_and_keep_the_newest_state() {
    let mut expected = vec![
        failed("a", "r1"),
        failed("b", "r1"),
        failed("c", "r1"),
        failed("d", "r1"),
        recovered("d", "r2"),
        failed("d", "r3"),
        failed("e", "r1"),
        recovered("e", "r2"),
    ];
    expected.sort_by(|x, y| (&x.1, &x.2).cmp(&(&y.1, &y.2)));
    let mut races = 0;
    // The second tick starts 0..40 scheduler turns after the first, so the two meet at
    // every step of the protocol (claim, send, record, state write).
    for head_start in 0..40 {
        let w = World::new();
        busy_history(&w);
        let late = async {
            for _ in 0..head_start {
                tokio::task::yield_now().await;
            }
            w.tick(1).await
        };
        let (first, second) = tokio::join!(w.tick(1), late);
        first.unwrap();
        second.unwrap();
        // A later tick picks up anything a tick left to the other; nothing is resent.
        w.tick(2).await.unwrap();
        let mut sent = w.sent();
        sent.sort_by(|x, y| (&x.1, &x.2).cmp(&(&y.1, &y.2)));
        assert_eq!(sent, expected, "head start {head_start}");
        assert_eq!(
            w.dag("d"),
            ("failed".into(), "r3".into()),
            "head start {head_start}"
        );
        assert_eq!(
            w.dag("e"),
            ("success".into(), "r2".into()),
            "head start {head_start}"
        );
        races += w.state.lost_writes();
    }
    assert!(races > 0, "the ticks never met: the test proves nothing");
}

#[tokio::test]
async fn an_older_failure_never_overwrites_a_newer_success() {
    let w = World::new();
    w.airflow.push_run("etl", "r1", "failed", &end(10));
    w.airflow.push_run("etl", "r2", "success", &end(20));
    w.tick(1).await.unwrap();
    assert_eq!(w.dag("etl"), ("success".into(), "r2".into()));
    // A tick that read the DAG before r2 was written now tries to write r1's state.
    let stale = state::ReadDag::default();
    let r1 = state::DagState {
        last_state: "failed".into(),
        last_run_id: "r1".into(),
        last_end_date: end(10),
        last_alerted: None,
    };
    assert!(!state::save_dag_if(&w.state, "etl", &r1, &stale)
        .await
        .unwrap());
    assert_eq!(w.dag("etl"), ("success".into(), "r2".into()));
}

#[tokio::test]
async fn a_claim_left_by_a_crashed_tick_is_taken_over_after_its_lease() {
    let w = World::new();
    w.airflow.push_run("etl", "r1", "failed", &end(10));
    // A tick claimed the notice at 12:01 and crashed before sending it.
    let crashed = state::claim(&w.state, "etl", "r1", at(1)).await.unwrap();
    assert!(matches!(crashed, state::Claim::Won { .. }));
    let out = w.tick(2).await.unwrap();
    assert_eq!(
        (out.deferred, out.sent.len()),
        (1, 0),
        "the lease still runs"
    );
    assert!(
        state::load_cursor(&w.state).await.unwrap().is_none(),
        "the cursor waits"
    );
    let out = w.tick(6).await.unwrap();
    assert_eq!(
        out.sent,
        vec![failed("etl", "r1")],
        "lease over at 12:06: taken over"
    );
    w.tick(7).await.unwrap();
    w.tick(13).await.unwrap();
    assert_eq!(w.sent(), vec![failed("etl", "r1")]);
}

#[tokio::test]
async fn no_send_starts_with_less_than_ten_seconds_left() {
    let w = World::new();
    w.airflow.push_run("etl", "r1", "failed", &end(10));
    let out = w
        .tick_until(1, Deadline::after(std::time::Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(out.out_of_time);
    assert!(w.sent().is_empty());
    assert!(
        w.state.item("claim#etl#r1").is_none(),
        "no claim taken that would hold the notice back"
    );
    w.tick(2).await.unwrap();
    assert_eq!(w.sent(), vec![failed("etl", "r1")]);
}

#[tokio::test]
async fn state_written_before_versions_is_still_updated() {
    let w = World::new();
    // What the previous release wrote: no version attribute.
    w.state.insert(
        "dag#etl",
        Item::from([
            ("dag_id".to_string(), "etl".to_string()),
            ("last_state".to_string(), "failed".to_string()),
            ("last_run_id".to_string(), "r0".to_string()),
            ("last_end_date".to_string(), end(0)),
        ]),
    );
    w.airflow.push_run("etl", "r1", "failed", &end(10));
    w.tick(1).await.unwrap();
    assert!(w.sent().is_empty(), "still failed: quiet");
    assert_eq!(w.dag("etl"), ("failed".into(), "r1".into()));
    w.airflow.push_run("etl", "r2", "success", &end(70));
    w.tick(2).await.unwrap();
    assert_eq!(w.sent(), vec![recovered("etl", "r2")]);
}

#[tokio::test]
async fn a_notice_without_its_task_list_counts_as_an_api_read_failure() {
    let mut w = World::new();
    w.airflow.fail_failed_tasks = true;
    w.airflow.push_run("etl", "r1", "failed", &end(10));
    let out = w.tick(1).await.unwrap();
    assert!(out.api_read_failed);
    assert_eq!(
        out.sent,
        vec![failed("etl", "r1")],
        "the alert still goes out"
    );
}

fn hostile_notice() -> Notice {
    Notice {
        kind: Kind::Failed,
        stack: "dev&prod".into(),
        dag_id: "etl<!channel>".into(),
        run_id: "manual__<https://evil.example|click>".into(),
        failed_tasks: vec!["a>b".into(), "<@U123>".into()],
        url: "https://airflow.example.com/dags/etl/runs/x?a=1&b=2".into(),
        end_date: "2026-05-01T12:00:00+00:00".into(),
    }
}

#[test]
fn slack_text_escapes_every_user_derived_piece() {
    assert_eq!(
        slack_escape("a & b <c> &amp;"),
        "a &amp; b &lt;c&gt; &amp;amp;"
    );
    assert_eq!(slack_escape("plain_text *bold*"), "plain_text *bold*");
    let payload = hostile_notice().slack_payload();
    let text = payload["text"].as_str().unwrap();
    assert!(!text.contains('<') && !text.contains('>'), "{text}");
    for escaped in [
        "[dev&amp;prod] DAG etl&lt;!channel&gt; failed",
        "Run: manual__&lt;https://evil.example|click&gt;",
        "Failed tasks: a&gt;b, &lt;@U123&gt;",
        "runs/x?a=1&amp;b=2",
    ] {
        assert!(text.contains(escaped), "{escaped} in {text}");
    }
    // Every & left is the start of one of the three entities.
    let rest = text
        .replace("&amp;", "")
        .replace("&lt;", "")
        .replace("&gt;", "");
    assert!(!rest.contains('&'), "{text}");
    // SNS is plain text: no escaping there.
    assert!(hostile_notice()
        .sns_message()
        .contains("DAG etl<!channel> failed"));
}

#[test]
fn only_hooks_slack_com_urls_are_accepted_and_the_url_is_never_shown() {
    for good in [
        "https://hooks.slack.com/services/T0/B0/tok3n",
        "https://hooks.slack.com/triggers/T0/1/tok3n",
    ] {
        assert!(is_slack_webhook_url(good), "{good}");
    }
    for bad in [
        "http://hooks.slack.com/services/T0/B0/tok3n",
        "https://hooks.slack.com.evil.example/services/tok3n",
        "https://hooks.slack.com@evil.example/services/tok3n",
        "https://evil.example/hooks.slack.com/tok3n",
        "https://hooks.slack.com:8443/services/tok3n",
        "https://user:tok3n@hooks.slack.com/services/x",
        "https://hooks.slack.com/",
        "hooks.slack.com/services/tok3n",
        "placeholder",
    ] {
        assert!(!is_slack_webhook_url(bad), "{bad}");
        let err =
            SlackWebhook::from_secret(common::http_client(), "arn:aws:secretsmanager:slack", bad)
                .err()
                .unwrap()
                .to_string();
        assert!(err.contains("arn:aws:secretsmanager:slack"), "{err}");
        assert!(err.contains("https://hooks.slack.com/"), "{err}");
        assert!(!err.contains("tok3n") && !err.contains("evil"), "{err}");
    }
    let empty = SlackWebhook::from_secret(common::http_client(), "arn:s", " \n")
        .err()
        .unwrap()
        .to_string();
    assert!(empty.contains("arn:s is empty"), "{empty}");
    // Pasted with a trailing newline: accepted.
    assert!(SlackWebhook::from_secret(
        common::http_client(),
        "arn:s",
        "https://hooks.slack.com/services/T0/B0/tok3n\n"
    )
    .is_ok());
}

#[tokio::test]
async fn the_webhook_call_does_not_follow_redirects() {
    let server = Server::start_with_headers(|r| match r.path() {
        "/services/T0/B0/very-secret-token" => (
            302,
            vec![("location".to_string(), "/elsewhere".to_string())],
            String::new(),
        ),
        _ => (200, Vec::new(), "ok".into()),
    });
    let slack = SlackWebhook::unchecked(
        common::http_client(),
        format!("{}/services/T0/B0/very-secret-token", server.url),
    );
    let err = slack.send(&hostile_notice()).await.unwrap_err().to_string();
    assert!(err.contains("302"), "{err}");
    assert!(!err.contains("very-secret-token"), "{err}");
    let paths: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    assert_eq!(paths, ["/services/T0/B0/very-secret-token"], "not followed");
}

#[tokio::test]
async fn dynamodb_conditional_writes_through_the_emulator() {
    use airflow_scaler::aws::DynamoState;
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let emulator = common::emulator::Emulator::start();
    let config = emulator.sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    client
        .create_table()
        .table_name("state")
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    let store = DynamoState {
        client,
        table: "state".into(),
    };
    let versioned = |v: &str, who: &str| {
        Item::from([
            ("version".to_string(), v.to_string()),
            ("who".to_string(), who.to_string()),
        ])
    };
    assert!(store
        .put_if("k", versioned("1", "first"), None)
        .await
        .unwrap());
    assert!(
        !store
            .put_if("k", versioned("1", "second"), None)
            .await
            .unwrap(),
        "created once"
    );
    assert!(store
        .put_if("k", versioned("2", "update"), Some("1"))
        .await
        .unwrap());
    assert!(
        !store
            .put_if("k", versioned("2", "stale"), Some("1"))
            .await
            .unwrap(),
        "a stale version loses"
    );
    assert_eq!(store.get("k").await.unwrap().unwrap()["who"], "update");
    // An item from before versions is replaced by a write that expects none.
    store
        .put(
            "legacy",
            Item::from([("who".to_string(), "old".to_string())]),
        )
        .await
        .unwrap();
    assert!(store
        .put_if("legacy", versioned("1", "new"), None)
        .await
        .unwrap());
    // The claim protocol end to end on DynamoDB.
    let now = at(0);
    let won = state::claim(&store, "etl", "r1", now).await.unwrap();
    let state::Claim::Won { version } = won else {
        panic!("{won:?}")
    };
    assert_eq!(
        state::claim(&store, "etl", "r1", now).await.unwrap(),
        state::Claim::Held
    );
    assert!(state::mark_sent(&store, "etl", "r1", &version, now)
        .await
        .unwrap());
    assert_eq!(
        state::claim(&store, "etl", "r1", now + Duration::hours(1))
            .await
            .unwrap(),
        state::Claim::Sent
    );
}
