//! Worker autoscaling against fakes of Airflow and the ECS worker service.

mod common;

use airflow_scaler::handler::{run_tick, TickPorts};
use airflow_scaler::ports::{AirflowApi, PortError, TaskInstance};
use airflow_scaler::scaling::{self, decide, desired_workers, host_to_ip, Limits, ScalePorts};
use airflow_scaler::settings::{ScalingSettings, Settings};
use chrono::{DateTime, Duration, Utc};
use common::{EcsCall, FakeAirflow, FakeMetrics, FakeWorkers, MemoryState};

fn limits(concurrency: u32, min: u32, max: u32) -> Limits {
    Limits {
        concurrency,
        min,
        max,
        cooldown: Duration::minutes(10),
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-05-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn busy(host: &str) -> TaskInstance {
    TaskInstance {
        dag_id: "d".into(),
        task_id: "t".into(),
        hostname: Some(host.into()),
    }
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
    let metrics = FakeMetrics::default();
    let ports = ScalePorts {
        airflow,
        workers,
        metrics: &metrics,
        state,
    };
    scaling::tick(&ports, limits, now).await.unwrap()
}

#[tokio::test]
async fn scales_from_zero_when_work_appears() {
    let airflow = FakeAirflow {
        queued: 3,
        ..FakeAirflow::default()
    };
    let workers = FakeWorkers::new(0, &[]);
    let metrics = FakeMetrics::default();
    let state = MemoryState::default();
    let ports = ScalePorts {
        airflow: &airflow,
        workers: &workers,
        metrics: &metrics,
        state: &state,
    };
    let out = scaling::tick(&ports, &limits(16, 0, 5), t0())
        .await
        .unwrap();
    assert_eq!(out.set_count, Some(1));
    assert_eq!(workers.calls(), vec![EcsCall::SetCount(1)]);
    assert_eq!(metrics.last("QueuedTasks"), Some(3.0));
    assert_eq!(metrics.last("RunningTasks"), Some(0.0));
    assert_eq!(metrics.last("DesiredWorkers"), Some(1.0));
}

#[tokio::test]
async fn busy_workers_are_protected_before_any_scale_in() {
    // Three workers, one busy; the load wants 1 worker after a cool-down that has passed.
    let airflow = FakeAirflow {
        running: vec![busy("10.0.0.2"), busy("10.0.0.2")],
        ..FakeAirflow::default()
    };
    let workers = FakeWorkers::new(
        3,
        &[
            ("arn:t1", "10.0.0.1"),
            ("arn:t2", "10.0.0.2"),
            ("arn:t3", "10.0.0.3"),
        ],
    );
    let state = MemoryState::default();
    let l = limits(16, 0, 5);
    let first = run(&airflow, &workers, &state, &l, t0()).await;
    assert_eq!(first.set_count, None, "cool-down starts");
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(11)).await;
    assert_eq!(out.set_count, Some(1));
    let calls = workers.calls();
    let last_three = &calls[calls.len() - 3..];
    assert_eq!(
        last_three,
        &[
            EcsCall::Protect(vec!["arn:t2".into()]),
            EcsCall::Unprotect(vec!["arn:t1".into(), "arn:t3".into()]),
            EcsCall::SetCount(1),
        ],
        "protect busy, unprotect idle, then scale in"
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
    let airflow = FakeAirflow {
        running: vec![busy("10.9.9.9")],
        ..FakeAirflow::default()
    };
    let workers = FakeWorkers::new(3, &[("arn:a", "10.0.0.1")]);
    let state = MemoryState::default();
    run(&airflow, &workers, &state, &l, t0()).await;
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(5)).await;
    assert_eq!(out.protection.unmatched_hosts, vec!["10.9.9.9".to_string()]);
    assert_eq!(out.set_count, None);
    assert_eq!(workers.count(), 3);

    let airflow = FakeAirflow {
        running: vec![busy("10.0.0.1")],
        ..FakeAirflow::default()
    };
    let mut workers = FakeWorkers::new(3, &[("arn:a", "10.0.0.1"), ("arn:b", "10.0.0.2")]);
    workers.fail_protect = true;
    let state = MemoryState::default();
    run(&airflow, &workers, &state, &l, t0()).await;
    let out = run(&airflow, &workers, &state, &l, t0() + Duration::minutes(5)).await;
    assert_eq!(out.set_count, None, "protection failed: no scale-in");
    assert!(!workers.calls().contains(&EcsCall::SetCount(1)));
}

#[tokio::test]
async fn api_unreachable_leaves_the_count_unchanged_and_says_why() {
    let workers = FakeWorkers::new(2, &[("arn:a", "10.0.0.1")]);
    let metrics = FakeMetrics::default();
    let state = MemoryState::default();
    let settings = Settings {
        api_url: "http://api-server.airflow:8080".into(),
        admin_username: "admin".into(),
        admin_secret_arn: "arn:secret".into(),
        state_table: "t".into(),
        scaling: Some(ScalingSettings {
            cluster: "c".into(),
            service: "s".into(),
            metric_namespace: "AirflowStack".into(),
            stack: "dev".into(),
            limits: limits(16, 0, 5),
        }),
        alerts: None,
    };
    let ports = TickPorts {
        airflow: Err::<&dyn AirflowApi, _>(PortError(
            "POST /auth/token: could not connect: error sending request".into(),
        )),
        workers: Some(&workers),
        metrics: &metrics,
        state: &state,
        notifiers: &[],
    };
    let report = run_tick(&settings, &ports, t0()).await;
    let s = report.scaling.unwrap();
    assert!(!s.ok);
    assert!(
        s.message.contains("unreachable")
            && s.message.contains("left unchanged")
            && s.message.contains("could not connect"),
        "{}",
        s.message
    );
    assert!(
        workers.calls().is_empty(),
        "no ECS change: {:?}",
        workers.calls()
    );
    assert_eq!(workers.count(), 2);
    assert!(metrics.0.lock().unwrap().is_empty(), "no guessed metrics");
}
