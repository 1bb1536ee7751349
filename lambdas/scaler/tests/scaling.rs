//! Worker autoscaling against fakes of Airflow and the ECS worker service.

mod common;

use airflow_scaler::alerts::AlertSettings;
use airflow_scaler::budget::Deadline;
use airflow_scaler::handler::{describe_scaling, run_tick, TickPorts, TickReport};
use airflow_scaler::ports::{AirflowApi, PortError, TaskInstance};
use airflow_scaler::scaling::{
    self, decide, desired_workers, host_to_ip, target_workers, Drain, Limits, Readings, ScalePorts,
    TickInput, KEEPER_PROTECTION_MINUTES,
};
use airflow_scaler::settings::{AlertTargets, ScalingSettings, Settings};
use chrono::{DateTime, Duration, Utc};
use common::{EcsCall, FakeAirflow, FakeMetrics, FakeWorkers, MemoryState};

fn limits(concurrency: u32, min: u32, max: u32) -> Limits {
    Limits {
        concurrency,
        min,
        max,
        cooldown: Duration::minutes(10),
        drain: Duration::minutes(10),
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-05-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn busy(host: &str) -> TaskInstance {
    TaskInstance {
        id: String::new(),
        dag_id: "d".into(),
        task_id: "t".into(),
        hostname: Some(host.into()),
    }
}

/// `n` running task instances with distinct ids, on `host` (`None`: no host yet).
fn running_on(host: Option<&str>, n: usize, id_prefix: &str) -> Vec<TaskInstance> {
    (0..n)
        .map(|i| TaskInstance {
            id: format!("{id_prefix}-{i:04}"),
            dag_id: "d".into(),
            task_id: format!("t{i}"),
            hostname: host.map(str::to_string),
        })
        .collect()
}

fn queues() -> Vec<String> {
    vec!["default".into()]
}

/// (queued, running, concurrency, current, min, max, desired, count set now).
type Case = (u64, u64, u32, u32, u32, u32, u32, Option<u32>);

#[test]
fn desired_count_table() {
    // (queued, running, concurrency, current, min, max) -> count set immediately
    // (scale-out or hold; scale-in waits for the cool-down, see below).
    let cases: &[Case] = &[
        // q, r, conc, current, min, max, desired, set now
        (0, 0, 16, 0, 0, 10, 0, None),
        (1, 0, 16, 0, 0, 10, 1, Some(1)),
        (16, 0, 16, 0, 0, 10, 1, Some(1)),
        (17, 0, 16, 0, 0, 10, 2, Some(2)),
        (10, 7, 16, 1, 0, 10, 2, Some(2)),
        (0, 32, 16, 2, 0, 10, 2, None),
        (500, 0, 16, 3, 0, 10, 10, Some(10)),
        (0, 0, 16, 0, 2, 10, 2, Some(2)),
        (3, 3, 1, 0, 0, 4, 4, Some(4)),
        (5, 0, 4, 5, 0, 5, 2, None), // fewer wanted: cool-down first
        (0, 0, 16, 3, 1, 3, 1, None),
        (u64::MAX / 2, 0, 1, 0, 0, 100, 100, Some(100)),
    ];
    for &(q, r, conc, current, min, max, want, set) in cases {
        let l = limits(conc, min, max);
        let d = desired_workers(q, r, &l);
        assert_eq!(d, want, "desired for q={q} r={r} c={conc} [{min},{max}]");
        let decision = decide(d, current, None, t0(), l.cooldown);
        assert_eq!(
            decision.set_count, set,
            "set for {q}/{r}/{conc} at {current}"
        );
    }
}

#[test]
fn scale_in_waits_for_the_cooldown_and_resets_when_work_returns() {
    let cd = Duration::minutes(10);
    let first = decide(0, 2, None, t0(), cd);
    assert_eq!(first.set_count, None);
    assert_eq!(first.below_since, Some(t0()));
    let mid = decide(0, 2, first.below_since, t0() + Duration::minutes(9), cd);
    assert_eq!(mid.set_count, None);
    let back = decide(2, 2, mid.below_since, t0() + Duration::minutes(9), cd);
    assert_eq!(
        back.below_since, None,
        "work came back: the cool-down restarts"
    );
    let done = decide(0, 2, Some(t0()), t0() + Duration::minutes(10), cd);
    assert_eq!(done.set_count, Some(0));
}

#[test]
fn host_names_map_to_ips() {
    assert_eq!(host_to_ip("10.40.1.7"), "10.40.1.7");
    assert_eq!(host_to_ip("ip-10-40-1-7.ec2.internal"), "10.40.1.7");
    assert_eq!(host_to_ip("ip-10-40-1-7"), "10.40.1.7");
    assert_eq!(host_to_ip("worker-abc"), "worker-abc");
}

async fn run(
    airflow: &FakeAirflow,
    workers: &FakeWorkers,
    state: &MemoryState,
    limits: &Limits,
    now: DateTime<Utc>,
) -> scaling::Outcome {
    // The workers protect themselves (or clear their protection) before the tick.
    workers.workers_act(airflow);
    let ports = ScalePorts {
        airflow,
        workers,
        state,
    };
    let q = queues();
    let input = TickInput {
        limits,
        queues: &q,
        now,
        deadline: Deadline::unlimited(),
    };
    scaling::tick(&ports, input, &mut Readings::default())
        .await
        .unwrap()
}

fn settings(limits: Limits, queues: &[&str]) -> Settings {
    Settings {
        api_url: "http://api-server.airflow:8080".into(),
        api_username: "airflow-stack-scaler".into(),
        api_password_secret_arn: "arn:secret".into(),
        state_table: "t".into(),
        metric_namespace: "AirflowStack".into(),
        stack: "dev".into(),
        scaling: Some(ScalingSettings {
            cluster: "c".into(),
            service: "s".into(),
            limits,
            queues: queues.iter().map(|q| q.to_string()).collect(),
        }),
        alerts: None,
    }
}

/// One whole tick through the handler, as the Lambda runs it.
async fn handler_tick(
    airflow: Result<&dyn AirflowApi, PortError>,
    workers: &FakeWorkers,
    metrics: &FakeMetrics,
    state: &MemoryState,
    settings: &Settings,
    now: DateTime<Utc>,
    deadline: Deadline,
) -> TickReport {
    let ports = TickPorts {
        airflow,
        workers: Some(workers),
        metrics,
        state,
        notifiers: &[],
    };
    run_tick(settings, &ports, now, deadline).await
}

#[tokio::test]
async fn scales_from_zero_when_work_appears_and_publishes_every_metric() {
    let airflow = FakeAirflow {
        queued: 3,
        ..FakeAirflow::default()
    };
    let workers = FakeWorkers::new(0, &[]);
    let metrics = FakeMetrics::default();
    let state = MemoryState::default();
    let s = settings(limits(16, 0, 5), &["default"]);
    let report = handler_tick(
        Ok(&airflow),
        &workers,
        &metrics,
        &state,
        &s,
        t0(),
        Deadline::unlimited(),
    )
    .await;
    assert_eq!(workers.calls(), vec![EcsCall::SetCount(1)]);
    assert_eq!(
        metrics.all(),
        vec![
            ("QueuedTasks", 3.0),
            ("RunningTasks", 0.0),
            ("BusyWorkers", 0.0),
            ("DesiredWorkers", 1.0),
            ("AirflowApiReadFailures", 0.0),
        ]
    );
    let message = report.scaling.unwrap().message;
    assert_eq!(
        message,
        "queued 3 running 0 busy 0 desired 1 tasks 0: set 0 -> 1"
    );
}

/// An alerts-only stack publishes `AirflowApiReadFailures` too: its alarm is what tells
/// that alerts stopped because the scaler cannot read Airflow.
#[tokio::test]
async fn an_alerts_only_tick_publishes_the_read_failure_metric_and_nothing_else() {
    let mut s = settings(limits(16, 0, 5), &["default"]);
    s.scaling = None;
    s.alerts = Some(AlertTargets {
        settings: AlertSettings::new("dev".into(), "https://airflow.example".into()),
        slack_secret_arn: None,
        sns_topic_arn: None,
    });
    let (workers, state) = (FakeWorkers::new(0, &[]), MemoryState::default());
    let metrics = FakeMetrics::default();
    let healthy = FakeAirflow::default();
    handler_tick(
        Ok(&healthy),
        &workers,
        &metrics,
        &state,
        &s,
        t0(),
        Deadline::unlimited(),
    )
    .await;
    assert_eq!(metrics.all(), vec![("AirflowApiReadFailures", 0.0)]);

    let metrics = FakeMetrics::default();
    let down = Err(PortError("connection refused".into()));
    let report = handler_tick(
        down,
        &workers,
        &metrics,
        &state,
        &s,
        t0(),
        Deadline::unlimited(),
    )
    .await;
    assert!(report.api_read_failed, "{report:?}");
    assert_eq!(metrics.all(), vec![("AirflowApiReadFailures", 1.0)]);
    assert!(workers.calls().is_empty());
}

#[test]
fn the_target_never_counts_busy_workers_away() {
    // (formula, busy workers, worker tasks running) -> target
    let cases: &[(u32, u64, usize, u32)] = &[
        (1, 4, 4, 4),    // four workers with one task each: keep all four
        (5, 4, 4, 5),    // the formula wants more: scale out
        (0, 0, 3, 0),    // nothing busy: the formula alone
        (1, 10, 4, 4),   // hostless task instances cannot push past the tasks that run
        (2, 12, 12, 12), // above max (formula clamped to 2): busy ones are not stopped
    ];
    for &(formula, busy, tasks, want) in cases {
        assert_eq!(
            target_workers(formula, busy, tasks),
            want,
            "formula {formula} busy {busy} tasks {tasks}"
        );
    }
}

#[tokio::test]
async fn four_busy_workers_keep_four_until_they_finish_then_scale_in_after_the_cooldown() {
    // Four workers each running one task instance, concurrency 16: the formula alone
    // asks for ceil(4 / 16) = 1.
    let hosts = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"];
    let arns = ["arn:w1", "arn:w2", "arn:w3", "arn:w4"];
    let tasks: Vec<(&str, &str)> = arns.iter().copied().zip(hosts).collect();
    let airflow = FakeAirflow::running(hosts.iter().map(|h| busy(h)).collect());
    let workers = FakeWorkers::new(4, &tasks);
    let state = MemoryState::default();
    let l = limits(16, 0, 10);
    assert_eq!(desired_workers(0, 4, &l), 1, "the formula alone says 1");
    for minute in 0..30 {
        let out = run(
            &airflow,
            &workers,
            &state,
            &l,
            t0() + Duration::minutes(minute),
        )
        .await;
        assert_eq!(out.busy, 4, "minute {minute}");
        assert!(out.desired >= 4, "minute {minute}: target {}", out.desired);
        assert!(
            out.set_count.is_none_or(|n| n >= 4),
            "minute {minute}: {out:?}"
        );
        assert_eq!(workers.count(), 4, "minute {minute}");
        assert_eq!(
            workers.protected(),
            arns,
            "minute {minute}: all four protected (by themselves)"
        );
        assert_eq!(workers.task_arns(), arns, "minute {minute}: none stopped");
        assert!(
            workers.tagged().is_empty(),
            "minute {minute}: a busy worker drained"
        );
    }
    assert!(
        workers.calls().is_empty(),
        "the scaler neither protects busy workers nor touches them: {:?}",
        workers.calls()
    );
    // The four finish at minute 30 and clear their own protection; the count waits for
    // the cool-down, then the four are drained, then the count goes to 0.
    airflow.set_running(Vec::new());
    for minute in 30..40 {
        let out = run(
            &airflow,
            &workers,
            &state,
            &l,
            t0() + Duration::minutes(minute),
        )
        .await;
        assert_eq!(out.set_count, None, "minute {minute}: cooling down");
        assert_eq!(out.desired, 0);
    }
    assert!(
        workers.protected().is_empty(),
        "idle workers unprotected themselves"
    );
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(40)).await;
    assert_eq!(out.set_count, None, "the drain starts; the count waits");
    assert_eq!(workers.tagged().len(), 4);
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(41)).await;
    assert_eq!(out.set_count, Some(0));
    assert_eq!(workers.count(), 0);
    assert!(
        workers.task_arns().is_empty(),
        "ECS stopped the idle workers"
    );
}

#[tokio::test]
async fn protected_tasks_ecs_kept_raise_the_count_to_the_busy_workers() {
    // The old formula had set the count to 1; ECS kept the four protected tasks.
    let hosts = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"];
    let tasks = [
        ("arn:w1", hosts[0]),
        ("arn:w2", hosts[1]),
        ("arn:w3", hosts[2]),
        ("arn:w4", hosts[3]),
    ];
    let airflow = FakeAirflow::running(hosts.iter().map(|h| busy(h)).collect());
    let workers = FakeWorkers::new(1, &tasks);
    let out = run(
        &airflow,
        &workers,
        &MemoryState::default(),
        &limits(16, 0, 10),
        t0(),
    )
    .await;
    assert_eq!((out.current, out.tasks), (1, 4));
    assert_eq!(
        out.set_count,
        Some(4),
        "at once, no cool-down: it is no scale-out"
    );
    assert_eq!(workers.task_arns().len(), 4);
    assert_eq!(
        describe_scaling(&out),
        "queued 0 running 4 busy 4 desired 4 tasks 4: set 1 -> 4"
    );
}

#[tokio::test]
async fn scale_in_to_zero_after_idle_cooldown() {
    let airflow = FakeAirflow::default();
    let workers = FakeWorkers::new(2, &[("arn:a", "10.0.0.1"), ("arn:b", "10.0.0.2")]);
    let state = MemoryState::default();
    let l = limits(16, 0, 5);
    for minute in 0..10 {
        let out = run(
            &airflow,
            &workers,
            &state,
            &l,
            t0() + Duration::minutes(minute),
        )
        .await;
        assert_eq!(out.set_count, None, "minute {minute}: still cooling down");
    }
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(10)).await;
    assert_eq!(
        out.drain,
        Drain::Started(vec!["arn:b".into(), "arn:a".into()]),
        "youngest first"
    );
    assert_eq!(out.set_count, None);
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(11)).await;
    assert_eq!(out.set_count, Some(0));
    assert_eq!(workers.count(), 0);
}

#[tokio::test]
async fn no_scale_in_when_a_busy_host_matches_no_worker_or_protection_fails() {
    let l = Limits {
        cooldown: Duration::minutes(1),
        ..limits(16, 0, 5)
    };
    // A running task on an unknown host (e.g. a worker whose ENI we cannot see).
    let airflow = FakeAirflow::running(vec![busy("10.9.9.9")]);
    let workers = FakeWorkers::new(3, &[("arn:a", "10.0.0.1")]);
    let state = MemoryState::default();
    run(&airflow, &workers, &state, &l, t0()).await;
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(5)).await;
    assert_eq!(out.protection.unmatched_hosts, vec!["10.9.9.9".to_string()]);
    assert_eq!(out.set_count, None);
    assert_eq!(out.drain, Drain::None);
    assert_eq!(workers.count(), 3);
    assert!(
        workers.calls().is_empty(),
        "an unknown busy worker might be any of them: nothing drained: {:?}",
        workers.calls()
    );

    // 21 task instances at concurrency 16 want 2 workers of 3: c (the youngest idle)
    // drains, b is kept; protecting b fails, so the count is not lowered.
    let airflow = FakeAirflow {
        queued: 20,
        ..FakeAirflow::running(vec![busy("10.0.0.1")])
    };
    let mut workers = FakeWorkers::new(
        3,
        &[
            ("arn:a", "10.0.0.1"),
            ("arn:b", "10.0.0.2"),
            ("arn:c", "10.0.0.3"),
        ],
    );
    workers.fail_protect = true;
    let state = MemoryState::default();
    run(&airflow, &workers, &state, &l, t0()).await;
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(5)).await;
    assert_eq!(out.drain, Drain::Started(vec!["arn:c".into()]));
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(6)).await;
    assert_eq!(
        out.set_count, None,
        "protecting the kept worker failed: no scale-in"
    );
    assert!(matches!(out.drain, Drain::Waiting(_)), "{:?}", out.drain);
    assert!(!workers.calls().contains(&EcsCall::SetCount(2)));
    assert_eq!(workers.task_arns().len(), 3);
}

/// Ten idle workers after the cool-down, with 250 running task instances on one of
/// them, read in a way that goes wrong: no scale-in, nothing unprotected.
async fn after_cooldown_with(airflow: FakeAirflow) -> (scaling::Outcome, FakeWorkers) {
    let l = limits(1000, 0, 10);
    let workers = FakeWorkers::new(
        3,
        &[
            ("arn:a", "10.0.0.1"),
            ("arn:b", "10.0.0.2"),
            ("arn:c", "10.0.0.3"),
        ],
    );
    let state = MemoryState::default();
    run(&airflow, &workers, &state, &l, t0()).await;
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(11)).await;
    (out, workers)
}

#[tokio::test]
async fn an_incomplete_reading_never_scales_in_or_unprotects() {
    // Page 2 fails: the busy workers on page 3 (10.0.0.3) were never seen.
    let mut tis = running_on(Some("10.0.0.1"), 200, "a");
    tis.extend(running_on(Some("10.0.0.3"), 50, "c"));
    let failing = FakeAirflow {
        fail_running_from: Some(200),
        ..FakeAirflow::running(tis.clone())
    };
    let (out, workers) = after_cooldown_with(failing).await;
    assert_eq!(out.set_count, None, "{out:?}");
    assert!(out.api_read_failed);
    assert_eq!(out.gaps, ["page 2 failed"]);
    assert_eq!(out.busy, 1, "only what was read");
    assert!(workers.calls().is_empty(), "{:?}", workers.calls());
    assert_eq!(workers.count(), 3);

    // The total moves between pages.
    let drifting = FakeAirflow {
        running_total_drift: 1,
        ..FakeAirflow::running(tis.clone())
    };
    let (out, workers) = after_cooldown_with(drifting).await;
    assert_eq!(out.set_count, None);
    assert!(!out.api_read_failed);
    assert_eq!(
        out.gaps,
        ["the running total changed from 250 to 251 while paging"]
    );
    assert!(workers.calls().is_empty(), "{:?}", workers.calls());

    // A task instance appears on two pages (rows shifted between reads).
    let mut repeated = tis.clone();
    repeated[150] = repeated[10].clone();
    let (out, _) = after_cooldown_with(FakeAirflow::running(repeated)).await;
    assert_eq!(out.set_count, None);
    assert_eq!(
        out.gaps,
        [
            "read 249 of 250 running task instances",
            "1 task instances appeared on two pages"
        ]
    );

    // Every page read, but one task instance has no host yet: its worker is unknown.
    let mut hostless = running_on(Some("10.0.0.1"), 3, "a");
    hostless.extend(running_on(None, 1, "n"));
    let (out, workers) = after_cooldown_with(FakeAirflow::running(hostless)).await;
    assert!(out.gaps.is_empty());
    assert_eq!(out.busy, 2, "one known host and one unknown worker");
    assert_eq!(out.set_count, None);
    assert!(workers.calls().is_empty(), "{:?}", workers.calls());

    // The control: the same 250 read completely start draining the idle one.
    let (out, workers) = after_cooldown_with(FakeAirflow::running(tis)).await;
    assert!(out.gaps.is_empty(), "{:?}", out.gaps);
    assert_eq!(out.busy, 2);
    assert_eq!(out.drain, Drain::Started(vec!["arn:b".into()]));
    assert_eq!(workers.calls(), vec![EcsCall::Tag(vec!["arn:b".into()])]);
}

#[tokio::test]
async fn both_reads_filter_by_the_worker_queues_and_page_by_100() {
    let airflow = FakeAirflow {
        queued: 2,
        ..FakeAirflow::running(running_on(Some("10.0.0.1"), 150, "a"))
    };
    let workers = FakeWorkers::new(1, &[("arn:a", "10.0.0.1")]);
    let s = settings(limits(16, 0, 20), &["default", "heavy"]);
    handler_tick(
        Ok(&airflow),
        &workers,
        &FakeMetrics::default(),
        &MemoryState::default(),
        &s,
        t0(),
        Deadline::unlimited(),
    )
    .await;
    let calls: Vec<(String, Vec<String>, u64, u64)> = airflow
        .ti_calls()
        .into_iter()
        .map(|c| (c.states.join("+"), c.queues, c.offset, c.limit))
        .collect();
    let q = vec!["default".to_string(), "heavy".to_string()];
    assert_eq!(
        calls,
        vec![
            ("queued+running".into(), q.clone(), 0, 1),
            ("running".into(), q.clone(), 0, 100),
            ("running".into(), q, 100, 100),
        ]
    );
}

#[tokio::test]
async fn api_unreachable_leaves_the_count_unchanged_and_says_why() {
    let workers = FakeWorkers::new(2, &[("arn:a", "10.0.0.1")]);
    let metrics = FakeMetrics::default();
    let state = MemoryState::default();
    let s = settings(limits(16, 0, 5), &["default"]);
    let report = handler_tick(
        Err(PortError(
            "POST /auth/token: could not connect: error sending request".into(),
        )),
        &workers,
        &metrics,
        &state,
        &s,
        t0(),
        Deadline::unlimited(),
    )
    .await;
    let scaling = report.scaling.unwrap();
    assert!(!scaling.ok);
    assert!(
        scaling.message.contains("unreachable")
            && scaling.message.contains("left unchanged")
            && scaling.message.contains("could not connect"),
        "{}",
        scaling.message
    );
    assert!(report.api_read_failed);
    assert!(
        workers.calls().is_empty(),
        "no ECS change: {:?}",
        workers.calls()
    );
    assert_eq!(workers.count(), 2);
    assert_eq!(
        metrics.all(),
        vec![("AirflowApiReadFailures", 1.0)],
        "the failure is published, nothing is guessed"
    );
}

#[tokio::test]
async fn a_failed_page_is_published_as_an_api_read_failure() {
    let airflow = FakeAirflow {
        fail_running_from: Some(100),
        ..FakeAirflow::running(running_on(Some("10.0.0.1"), 120, "a"))
    };
    let workers = FakeWorkers::new(1, &[("arn:a", "10.0.0.1")]);
    let metrics = FakeMetrics::default();
    let s = settings(limits(16, 0, 20), &["default"]);
    let report = handler_tick(
        Ok(&airflow),
        &workers,
        &metrics,
        &MemoryState::default(),
        &s,
        t0(),
        Deadline::unlimited(),
    )
    .await;
    assert!(report.api_read_failed);
    let scaling = report.scaling.unwrap();
    assert!(scaling.ok, "what was read still scales out");
    assert!(
        scaling
            .message
            .ends_with("; incomplete reading (page 1 failed), no scale-in"),
        "{}",
        scaling.message
    );
    assert_eq!(metrics.last("AirflowApiReadFailures"), Some(1.0));
    assert_eq!(metrics.last("RunningTasks"), Some(120.0));
    assert_eq!(metrics.last("BusyWorkers"), Some(1.0));
    assert_eq!(metrics.last("DesiredWorkers"), Some(8.0), "ceil(120 / 16)");
}

#[tokio::test]
async fn a_tick_near_its_deadline_reads_no_further_page() {
    let airflow = FakeAirflow::running(running_on(Some("10.0.0.1"), 250, "a"));
    let workers = FakeWorkers::new(3, &[("arn:a", "10.0.0.1"), ("arn:b", "10.0.0.2")]);
    let s = settings(limits(1000, 0, 20), &["default"]);
    let report = handler_tick(
        Ok(&airflow),
        &workers,
        &FakeMetrics::default(),
        &MemoryState::default(),
        &s,
        t0(),
        Deadline::after(std::time::Duration::from_secs(5)),
    )
    .await;
    assert!(report.out_of_time);
    let running_pages = airflow
        .ti_calls()
        .iter()
        .filter(|c| c.states == ["running"])
        .count();
    assert_eq!(running_pages, 1, "only the first page");
    let message = report.scaling.unwrap().message;
    assert!(
        message.contains("out of time before the last page"),
        "{message}"
    );
    assert!(workers.calls().is_empty(), "{:?}", workers.calls());
}

/// Four workers, `w1` busy, at concurrency 16 (the formula wants 1), after the
/// cool-down: the state at minute 10.
async fn four_workers_one_busy(
    min: u32,
) -> (
    FakeAirflow,
    FakeWorkers,
    MemoryState,
    Limits,
    [&'static str; 4],
) {
    let arns = ["arn:w1", "arn:w2", "arn:w3", "arn:w4"];
    let tasks = [
        (arns[0], "10.0.0.1"),
        (arns[1], "10.0.0.2"),
        (arns[2], "10.0.0.3"),
        (arns[3], "10.0.0.4"),
    ];
    let airflow = FakeAirflow::running(vec![busy("10.0.0.1")]);
    let workers = FakeWorkers::new(4, &tasks);
    let state = MemoryState::default();
    let l = limits(16, min, 10);
    let out = run(&airflow, &workers, &state, &l, t0()).await;
    assert_eq!(
        (out.set_count, &out.drain),
        (None, &Drain::None),
        "cool-down"
    );
    (airflow, workers, state, l, arns)
}

fn strings(arns: &[&str]) -> Vec<String> {
    arns.iter().map(|a| a.to_string()).collect()
}

/// The scaler never clears protection (its port cannot), and what it protects is a
/// kept, untagged worker for a few minutes only.
fn only_short_protection_of_kept_workers(workers: &FakeWorkers, drained: &[&str]) {
    for call in workers.calls() {
        if let EcsCall::Protect(arns, minutes) = call {
            assert_eq!(minutes, KEEPER_PROTECTION_MINUTES);
            assert!(
                arns.iter().all(|a| !drained.contains(&a.as_str())),
                "a drained worker was protected: {arns:?}"
            );
        }
    }
}

#[tokio::test]
async fn scale_in_drains_the_idle_workers_first_then_ecs_stops_exactly_those() {
    let (airflow, workers, state, l, arns) = four_workers_one_busy(0).await;
    // Minute 10: the cool-down has passed. The three idle, unprotected workers are
    // tagged (youngest first); the count stays.
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(10)).await;
    assert_eq!(out.desired, 1);
    assert_eq!(
        out.drain,
        Drain::Started(strings(&["arn:w4", "arn:w3", "arn:w2"]))
    );
    assert_eq!(out.set_count, None, "not in the tick that tags");
    assert_eq!(workers.count(), 4);
    assert_eq!(workers.tagged(), strings(&arns[1..]));
    assert_eq!(workers.task_arns(), arns, "nothing stopped yet");
    // Minute 11: the tagged workers are idle and unprotected: the count is lowered and
    // ECS stops exactly them (w1 protects itself: it is busy).
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(11)).await;
    assert_eq!(out.set_count, Some(1));
    assert_eq!(
        describe_scaling(&out),
        "queued 0 running 1 busy 1 desired 1 tasks 4: set 4 -> 1; drained 3, kept 0 protected"
    );
    assert_eq!(workers.task_arns(), ["arn:w1"]);
    assert_eq!(
        workers.calls(),
        vec![
            EcsCall::Tag(strings(&["arn:w4", "arn:w3", "arn:w2"])),
            EcsCall::SetCount(1),
        ]
    );
    // The state keeps no drain; the next tick has nothing to do.
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(12)).await;
    assert_eq!((out.set_count, out.drain), (None, Drain::None));
    assert_eq!(
        state.item("scaler").unwrap().get("drain_started"),
        None,
        "{:?}",
        state.item("scaler")
    );
}

#[tokio::test]
async fn the_kept_idle_workers_are_protected_so_ecs_can_only_stop_the_drained_ones() {
    // min_workers 2: two of the three idle workers drain (w4, w3); w2 is idle and kept.
    let (airflow, workers, state, l, _) = four_workers_one_busy(2).await;
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(10)).await;
    assert_eq!(out.drain, Drain::Started(strings(&["arn:w4", "arn:w3"])));
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(11)).await;
    assert_eq!(out.set_count, Some(2));
    assert_eq!(
        out.drain,
        Drain::Finished {
            drained: strings(&["arn:w3", "arn:w4"]),
            kept: strings(&["arn:w2"]),
        }
    );
    // The fake ECS stops the first unprotected tasks it lists: without w2's protection
    // it would have stopped w2 and left a drained worker running.
    assert_eq!(workers.task_arns(), ["arn:w1", "arn:w2"]);
    assert_eq!(
        workers.calls()[1..],
        [
            EcsCall::Protect(strings(&["arn:w2"]), KEEPER_PROTECTION_MINUTES),
            EcsCall::SetCount(2),
        ]
    );
    only_short_protection_of_kept_workers(&workers, &["arn:w3", "arn:w4"]);
}

#[tokio::test]
async fn a_task_instance_that_starts_between_the_two_reads_is_counted_once() {
    // One worker holds the long task; a burst of three is queued, and one of them
    // starts on it right after the scaler's count (the e2e's scale-out tick).
    let l = limits(2, 0, 10);
    let airflow = FakeAirflow {
        queued: 3,
        start_after_count: std::sync::Mutex::new(vec![busy("10.0.0.1")]),
        ..FakeAirflow::running(vec![busy("10.0.0.1")])
    };
    let workers = FakeWorkers::new(1, &[("arn:w1", "10.0.0.1")]);
    let out = run(&airflow, &workers, &MemoryState::default(), &l, t0()).await;
    assert_eq!((out.queued, out.running), (2, 2), "read after the start");
    assert_eq!(out.desired, 2, "ceil(4 task instances / 2)");
    assert_eq!(out.set_count, Some(2));
    // Counted in two reads the starting one is in both: 3 queued + 2 running.
    assert_eq!(
        desired_workers(3, 2, &l),
        3,
        "what the double count asks for"
    );
}

#[tokio::test]
async fn a_pending_drain_grows_when_the_target_drops_so_no_unwanted_worker_is_kept() {
    // w1 holds the long task, w2 the last task of a burst, w3 is idle: the target is
    // 2 (two busy workers), so after the cool-down w3 drains.
    let l = limits(2, 0, 10);
    let tasks = [
        ("arn:w1", "10.0.0.1"),
        ("arn:w2", "10.0.0.2"),
        ("arn:w3", "10.0.0.3"),
    ];
    let airflow = FakeAirflow::running(vec![busy("10.0.0.1"), busy("10.0.0.2")]);
    let workers = FakeWorkers::new(3, &tasks);
    let state = MemoryState::default();
    run(&airflow, &workers, &state, &l, t0()).await;
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(10)).await;
    assert_eq!(out.drain, Drain::Started(strings(&["arn:w3"])));
    // w2's task ends before the drain does: the target is 1. The drain takes w2 on
    // instead of ending with w2 protected as a keeper.
    airflow.set_running(vec![busy("10.0.0.1")]);
    let grown = t0() + Duration::minutes(11);
    let out = run(&airflow, &workers, &state, &l, grown).await;
    assert_eq!(
        (out.desired, &out.drain, out.set_count),
        (1, &Drain::Started(strings(&["arn:w2"])), None)
    );
    assert_eq!(workers.tagged(), strings(&["arn:w2", "arn:w3"]));
    // w2 has DRAIN_SETTLE to see its tag.
    let out = run(
        &airflow,
        &workers,
        &state,
        &l,
        grown + Duration::seconds(10),
    )
    .await;
    assert_eq!(out.drain, Drain::Waiting(strings(&["arn:w2", "arn:w3"])));
    let out = run(
        &airflow,
        &workers,
        &state,
        &l,
        grown + Duration::seconds(30),
    )
    .await;
    assert_eq!(
        describe_scaling(&out),
        "queued 0 running 1 busy 1 desired 1 tasks 3: set 3 -> 1; drained 2, kept 0 protected"
    );
    assert_eq!(workers.task_arns(), ["arn:w1"]);
    assert!(
        !workers
            .calls()
            .iter()
            .any(|c| matches!(c, EcsCall::Protect(..))),
        "no idle worker held back: {:?}",
        workers.calls()
    );
    // The next tick has nothing left to do.
    let out = run(
        &airflow,
        &workers,
        &state,
        &l,
        grown + Duration::seconds(40),
    )
    .await;
    assert_eq!((out.set_count, out.drain), (None, Drain::None));
}

#[tokio::test]
async fn a_tagged_worker_that_turns_busy_holds_the_scale_in_until_it_is_idle() {
    let (airflow, workers, state, l, arns) = four_workers_one_busy(0).await;
    run(&airflow, &workers, &state, &l, t0() + Duration::minutes(10)).await;
    // w3 received a message just before it saw the tag: it protects itself.
    airflow.set_running(vec![busy("10.0.0.1"), busy("10.0.0.3")]);
    for minute in 11..14 {
        let out = run(
            &airflow,
            &workers,
            &state,
            &l,
            t0() + Duration::minutes(minute),
        )
        .await;
        assert_eq!(
            out.drain,
            Drain::Waiting(strings(&["arn:w3"])),
            "minute {minute}"
        );
        assert_eq!(out.set_count, None);
        assert_eq!(
            workers.task_arns(),
            arns,
            "minute {minute}: nothing stopped"
        );
    }
    // w3 is done and clears its protection: the drain ends.
    airflow.set_running(vec![busy("10.0.0.1")]);
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(14)).await;
    assert_eq!(out.set_count, Some(1));
    assert_eq!(workers.task_arns(), ["arn:w1"]);
    assert!(!workers
        .calls()
        .iter()
        .any(|c| matches!(c, EcsCall::Protect(..))));
}

#[tokio::test]
async fn a_drain_older_than_drain_minutes_is_cancelled_and_its_workers_consume_again() {
    let (airflow, workers, state, l, _) = four_workers_one_busy(0).await;
    run(&airflow, &workers, &state, &l, t0() + Duration::minutes(10)).await;
    // w3 keeps a long task: the drain waits for it...
    airflow.set_running(vec![busy("10.0.0.1"), busy("10.0.0.3")]);
    for minute in 11..20 {
        let out = run(
            &airflow,
            &workers,
            &state,
            &l,
            t0() + Duration::minutes(minute),
        )
        .await;
        assert!(matches!(out.drain, Drain::Waiting(_)), "minute {minute}");
    }
    // ...for drain_minutes (10), then gives up: every tagged worker is untagged.
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(20)).await;
    assert_eq!(
        out.drain,
        Drain::Cancelled {
            untagged: strings(&["arn:w2", "arn:w3", "arn:w4"]),
            reason: "not idle within 10 minutes".into(),
        }
    );
    assert_eq!(out.set_count, None);
    assert!(workers.tagged().is_empty());
    assert_eq!(workers.task_arns().len(), 4);
    // The next tick drains again, choosing only idle workers (w3 is busy).
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(21)).await;
    assert_eq!(out.desired, 2);
    assert_eq!(out.drain, Drain::Started(strings(&["arn:w4", "arn:w2"])));
}

#[tokio::test]
async fn scale_out_untags_a_pending_drain_before_it_raises_the_count() {
    let (airflow, workers, state, _, _) = four_workers_one_busy(0).await;
    let l = limits(16, 0, 10);
    run(&airflow, &workers, &state, &l, t0() + Duration::minutes(10)).await;
    assert_eq!(workers.tagged().len(), 3);
    // Work arrives: 80 queued at concurrency 16 wants 6 workers.
    let airflow = FakeAirflow {
        queued: 79,
        ..FakeAirflow::running(vec![busy("10.0.0.1")])
    };
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(11)).await;
    assert_eq!(out.set_count, Some(5), "ceil(80 / 16)");
    assert!(workers.tagged().is_empty());
    let calls = workers.calls();
    assert_eq!(
        calls[calls.len() - 2..],
        [
            EcsCall::Untag(strings(&["arn:w2", "arn:w3", "arn:w4"])),
            EcsCall::SetCount(5),
        ],
        "untag first: the drained workers take the new work at once"
    );
    assert_eq!(state.item("scaler").unwrap().get("drain_started"), None);
}

#[tokio::test]
async fn a_tagged_worker_with_no_drain_pending_is_untagged() {
    // A drained worker ECS did not stop (it stopped another), with no drain in the state.
    let airflow = FakeAirflow::running(vec![busy("10.0.0.1")]);
    let workers = FakeWorkers::new(2, &[("arn:a", "10.0.0.1"), ("arn:b", "10.0.0.2")]);
    workers.tasks.lock().unwrap()[1].draining = true;
    let state = MemoryState::default();
    let l = limits(16, 2, 10);
    let out = run(&airflow, &workers, &state, &l, t0()).await;
    assert_eq!(
        out.drain,
        Drain::Cancelled {
            untagged: strings(&["arn:b"]),
            reason: "no scale-in wanted".into(),
        }
    );
    assert!(workers.tagged().is_empty());
    assert_eq!(workers.calls(), vec![EcsCall::Untag(strings(&["arn:b"]))]);
}

/// `airflow-stack pause` writes the paused item: ticks then read nothing from Airflow,
/// change nothing, and keep the read-failure metric at 0; `resume` deletes it and the
/// next tick scales again.
#[tokio::test]
async fn a_paused_stack_is_left_alone_and_keeps_its_alarm_quiet() {
    use airflow_scaler::handler::{paused_since, paused_tick};
    let state = MemoryState::default();
    assert_eq!(paused_since(&state).await, None);
    state.insert(
        "paused",
        [("since".to_string(), "2026-12-01T00:00:00Z".to_string())].into(),
    );
    let since = paused_since(&state).await.expect("paused");
    assert_eq!(since, "2026-12-01T00:00:00Z");
    let metrics = FakeMetrics::default();
    let report = paused_tick(&metrics, since).await;
    assert_eq!(metrics.all(), vec![("AirflowApiReadFailures", 0.0)]);
    assert!(report.scaling.is_none() && report.alerts.is_none() && !report.api_read_failed);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["paused_since"], "2026-12-01T00:00:00Z");

    state.0.lock().unwrap().remove("paused");
    assert_eq!(paused_since(&state).await, None);
}
