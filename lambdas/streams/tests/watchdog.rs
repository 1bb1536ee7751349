//! The watchdog with the table in memory, a recording invoker and a recording notifier.

mod common;

use std::sync::{Arc, Mutex};

use airflow_stack_contract::streams::{StartedBy, WatchdogSettings};
use airflow_streams::memory::MemoryTable;
use airflow_streams::notify::{Kind, Notice};
use airflow_streams::ports::{Lease, LeaseStore, Notifier, PortError, ServiceRestarter};
use airflow_streams::watchdog::{run_watchdog, Health, WatchdogPorts};
use async_trait::async_trait;
use common::FakeInvoker;

#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<Notice>>>);

#[async_trait]
impl Notifier for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    async fn send(&self, notice: &Notice) -> Result<(), PortError> {
        self.0.lock().unwrap().push(notice.clone());
        Ok(())
    }
}

/// Records each forced deployment.
#[derive(Default, Clone)]
struct FakeEcs(Arc<Mutex<Vec<String>>>);

#[async_trait]
impl ServiceRestarter for FakeEcs {
    async fn restart(&self, service: &str) -> Result<(), PortError> {
        self.0.lock().unwrap().push(service.to_owned());
        Ok(())
    }
}

fn settings() -> WatchdogSettings<String> {
    WatchdogSettings {
        stack_name: "dev".into(),
        table: "t".into(),
        streams: vec!["orders".into(), "clicks".into()],
        service_streams: Vec::new(),
        cluster: None,
        stale_seconds: 300,
        sns_topic_arn: None,
        slack_secret_arn: None,
        ui_base_url: Some("https://airflow.example".into()),
    }
}

fn lease(heartbeat_at: i64) -> Lease {
    Lease {
        holder: "c".into(),
        generation: 3,
        heartbeat_at,
        expires_at: heartbeat_at + 90,
        last_event_id: Some("41".into()),
        alerted_at: None,
    }
}

#[tokio::test]
async fn a_missing_lease_starts_a_chain_without_alerting() {
    let (table, invoker, recorder) = (
        MemoryTable::default(),
        FakeInvoker::default(),
        Recorder::default(),
    );
    table.set_lease("clicks", lease(1000));
    let notifiers: Vec<Box<dyn Notifier>> = vec![Box::new(recorder.clone())];
    let ports = WatchdogPorts {
        leases: &table,
        invoker: &invoker,
        services: &FakeEcs::default(),
        notifiers: &notifiers,
    };
    let report = run_watchdog(&settings(), &ports, 1010).await;
    assert_eq!(report.streams[0].health, Health::Missing);
    assert_eq!(report.streams[1].health, Health::Healthy);
    let calls = invoker.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "dev-stream-orders");
    assert_eq!(calls[0].1.started_by, Some(StartedBy::Watchdog));
    assert_eq!(calls[0].1.generation, 0);
    assert!(calls[0].1.chain_id.is_some());
    assert!(recorder.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_stale_chain_is_restarted_on_every_tick_and_alerted_once_then_recovers() {
    let (table, invoker, recorder) = (
        MemoryTable::default(),
        FakeInvoker::default(),
        Recorder::default(),
    );
    let mut s = settings();
    s.streams = vec!["orders".into()];
    table.set_lease("orders", lease(1000));
    let notifiers: Vec<Box<dyn Notifier>> = vec![Box::new(recorder.clone())];
    let ports = WatchdogPorts {
        leases: &table,
        invoker: &invoker,
        services: &FakeEcs::default(),
        notifiers: &notifiers,
    };

    for (tick, now) in [1301, 1361, 1421].into_iter().enumerate() {
        let report = run_watchdog(&s, &ports, now).await;
        assert_eq!(report.streams[0].health, Health::Stale);
        assert!(report.streams[0].started);
        assert_eq!(report.streams[0].alerted, tick == 0, "tick {tick}");
    }
    // Two watchdogs at once on a fresh outage: one alert between them.
    table.set_lease("orders", lease(2000));
    let (a, b) = tokio::join!(
        run_watchdog(&s, &ports, 2400),
        run_watchdog(&s, &ports, 2400)
    );
    assert!(a.streams[0].alerted ^ b.streams[0].alerted);

    let notices = recorder.0.lock().unwrap().clone();
    assert_eq!(notices.len(), 2, "one per outage");
    assert_eq!(notices[0].kind, Kind::Stale);
    assert_eq!(notices[0].heartbeat_age_seconds, 301);
    let calls = invoker.calls();
    assert_eq!(calls.len(), 5);
    assert!(
        calls
            .iter()
            .all(|(_, p)| p.last_event_id.as_deref() == Some("41")),
        "resumes"
    );
    let chains: std::collections::BTreeSet<_> =
        calls.iter().map(|(_, p)| p.chain_id.clone()).collect();
    assert_eq!(chains.len(), 5, "a new chain each time");

    // The new chain heartbeats: cleared, one recovery notice.
    let mut fresh = table.lease("orders").await.unwrap().unwrap();
    fresh.heartbeat_at = 2450;
    table.set_lease("orders", fresh);
    let first = run_watchdog(&s, &ports, 2460).await;
    let second = run_watchdog(&s, &ports, 2520).await;
    assert!(first.streams[0].recovered && !second.streams[0].recovered);
    assert_eq!(
        table.lease("orders").await.unwrap().unwrap().alerted_at,
        None
    );
    let notices = recorder.0.lock().unwrap().clone();
    assert_eq!(notices.len(), 3);
    assert_eq!(notices[2].kind, Kind::Recovered);
}

#[tokio::test]
async fn a_stale_service_is_alerted_and_redeployed_once_per_outage_and_never_invoked() {
    let (table, invoker, recorder, ecs) = (
        MemoryTable::default(),
        FakeInvoker::default(),
        Recorder::default(),
        FakeEcs::default(),
    );
    let mut s = settings();
    s.streams = Vec::new();
    s.service_streams = vec!["ticks".into()];
    s.cluster = Some("dev-cluster".into());
    let notifiers: Vec<Box<dyn Notifier>> = vec![Box::new(recorder.clone())];
    let ports = WatchdogPorts {
        leases: &table,
        invoker: &invoker,
        services: &ecs,
        notifiers: &notifiers,
    };

    // Before its task first takes the lease: nothing to do, ECS starts it.
    let report = run_watchdog(&s, &ports, 1000).await;
    assert_eq!(report.streams[0].health, Health::Missing);
    assert!(!report.streams[0].started);

    table.set_lease("ticks", lease(1000));
    for (tick, now) in [1301, 1361, 1421].into_iter().enumerate() {
        let report = run_watchdog(&s, &ports, now).await;
        assert_eq!(report.streams[0].health, Health::Stale);
        assert_eq!(report.streams[0].alerted, tick == 0, "tick {tick}");
        assert_eq!(report.streams[0].started, tick == 0, "tick {tick}");
    }
    assert_eq!(*ecs.0.lock().unwrap(), ["dev-stream-ticks"]);
    assert!(
        invoker.calls().is_empty(),
        "a service-run stream has no function"
    );

    let mut fresh = table.lease("ticks").await.unwrap().unwrap();
    fresh.heartbeat_at = 1450;
    table.set_lease("ticks", fresh);
    assert!(run_watchdog(&s, &ports, 1460).await.streams[0].recovered);
    let kinds: Vec<_> = recorder.0.lock().unwrap().iter().map(|n| n.kind).collect();
    assert_eq!(kinds, [Kind::Stale, Kind::Recovered]);
}
