//! The connection manager against a local stream server on 127.0.0.1, with the table in
//! memory and a recording invoker.

mod common;

use std::time::Duration;

use airflow_stack_contract::streams::{lease_key, ManagerInvocation, StartedBy};
use airflow_streams::manager::{run_lambda, run_service, Outcome};
use airflow_streams::ports::{Lease, LeaseStore};
use common::{settings, sse, Rig, Step, StreamServer};
use tokio::time::{sleep, Instant};

fn chain(id: &str, generation: u64) -> ManagerInvocation {
    ManagerInvocation {
        chain_id: Some(id.into()),
        generation,
        last_event_id: None,
        started_by: Some(StartedBy::Deploy),
    }
}

#[tokio::test]
async fn stores_each_event_once_reconnects_with_last_event_id_and_hands_over() {
    // Connection 0: events 1-5 with event 3 repeated, then half of event 6, then the
    // server drops it. Connection 1 resumes after Last-Event-ID and sends 6-10.
    let server = StreamServer::start(|n, last| match n {
        0 => vec![
            Step::Send(format!(
                ": hello\n\n{}{}{}{}{}{}",
                sse(1),
                sse(2),
                sse(3),
                sse(3),
                sse(4),
                sse(5)
            )),
            Step::Send("id: 6\ndata: {\"n\"".into()),
        ],
        _ => {
            let from: u32 = last.and_then(|l| l.parse().ok()).unwrap_or(0) + 1;
            let mut body: String = (from..=10).map(sse).collect();
            body.push_str(": keepalive\n\n");
            vec![Step::Send(body), Step::Hold]
        }
    })
    .await;
    let rig = Rig::new(&server.url, false);
    let (table, invoker, ports) = (&rig.table, &rig.invoker, rig.ports());
    let s = settings(&server.url, 5, 3, 1);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(5);
    let report = run_lambda(&s, &ports, chain("c1", 4), deadline, "test-stream-orders").await;

    assert_eq!(report.outcome, Outcome::Deadline);
    assert_eq!(
        (report.stored, report.duplicates, report.store_failures),
        (10, 1, 0)
    );
    assert!(report.drops >= 1, "the dropped connection: {report:?}");
    let events = table.events();
    assert_eq!(events.len(), 10);
    assert!(events
        .iter()
        .all(|e| e.item.target == "orders_dag" && e.item.target_kind == "dag"));
    let six = events.iter().find(|e| e.item.data == "{\"n\": 6}").unwrap();
    assert_eq!(
        six.item.event_id.as_deref(),
        Some("6"),
        "the half event came again whole"
    );

    let seen = server.seen();
    assert_eq!(seen[0].header("last-event-id"), None);
    assert_eq!(
        seen[1].header("last-event-id"),
        Some("5"),
        "resumed after the last whole event"
    );
    assert_eq!(seen[0].header("x-api-key"), Some("s3cret"));
    assert_eq!(seen[0].header("accept"), Some("text/event-stream"));

    // The successor: at deadline − 3 s, generation + 1, the last event ID.
    let calls = invoker.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "test-stream-orders");
    assert_eq!(
        calls[0].1,
        ManagerInvocation {
            chain_id: Some("c1".into()),
            generation: 5,
            last_event_id: Some("10".into()),
            started_by: Some(StartedBy::Successor),
        }
    );
    assert_eq!(report.successor_started, Some(true));
    // Stopped at handoff + overlap (2 s + 1 s), well before the deadline.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_millis(4500),
        "{took:?}"
    );
    let lease = table.lease("orders").await.unwrap().unwrap();
    assert_eq!((lease.holder.as_str(), lease.generation), ("c1", 4));
    assert_eq!(
        lease.last_event_id.as_deref(),
        Some("10"),
        "the heartbeat keeps the resume point"
    );
}

#[tokio::test]
async fn a_silent_stream_does_not_hold_the_manager_past_its_deadline() {
    let server = StreamServer::start(|_, _| vec![Step::Send(sse(1)), Step::Hold]).await;
    let rig = Rig::new(&server.url, false);
    let (table, ports) = (&rig.table, rig.ports());
    // The read deadline (60 s) is far beyond the invocation's: the invocation wins.
    let s = settings(&server.url, 60, 2, 1);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(3);
    let report = run_lambda(&s, &ports, chain("c1", 0), deadline, "f").await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "returned {took:?} after start, deadline 3 s"
    );
    assert_eq!((report.stored, report.outcome), (1, Outcome::Deadline));

    // A read deadline shorter than the invocation: silent connections are dropped and
    // reconnected (each reconnect gets event 1 again: a duplicate).
    let s = settings(&server.url, 1, 2, 1);
    let started = Instant::now();
    let report = run_lambda(
        &s,
        &ports,
        chain("c1", 1),
        started + Duration::from_secs(4),
        "f",
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(report.drops >= 1, "{report:?}");
    assert!(report.duplicates >= 1, "{report:?}");
    assert_eq!(table.events().len(), 1);
}

#[tokio::test]
async fn a_deadline_too_near_for_the_handoff_still_hands_over_and_stops_in_time() {
    let server = StreamServer::start(|_, _| vec![Step::Hold]).await;
    let rig = Rig::new(&server.url, false);
    let (invoker, ports) = (&rig.invoker, rig.ports());
    let s = settings(&server.url, 60, 60, 20);
    let started = Instant::now();
    let report = run_lambda(
        &s,
        &ports,
        chain("c", 0),
        started + Duration::from_secs(2),
        "f",
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(invoker.calls().len(), 1, "handed over at half the time");
    assert_eq!(report.successor_started, Some(true));
}

#[tokio::test]
async fn a_failed_successor_invocation_is_reported_and_reading_goes_on() {
    let server = StreamServer::start(|_, _| {
        vec![
            Step::Send(sse(1)),
            Step::Sleep(Duration::from_millis(1500)),
            Step::Send(sse(2)),
            Step::Hold,
        ]
    })
    .await;
    let rig = Rig::new(&server.url, true);
    let ports = rig.ports();
    let s = settings(&server.url, 60, 3, 2);
    let report = run_lambda(
        &s,
        &ports,
        chain("c", 0),
        Instant::now() + Duration::from_secs(4),
        "f",
    )
    .await;
    assert_eq!(report.successor_started, Some(false));
    assert_eq!(
        report.stored, 2,
        "event 2 came after the failed handoff (1 s)"
    );
}

/// Events released over time: event k at k × 100 ms after the start; each connection
/// sends what is released after its Last-Event-ID, then waits for more.
fn timed_stream(last: u32) -> impl Fn(usize, Option<&str>) -> Vec<Step> + Send + Sync {
    let t0 = std::time::Instant::now();
    move |_, resume| {
        let from: u32 = resume.and_then(|l| l.parse().ok()).unwrap_or(0) + 1;
        let mut steps = Vec::new();
        for k in from..=last {
            let due = t0 + Duration::from_millis(100 * u64::from(k));
            let elapsed = std::time::Instant::now().max(t0);
            // Scripts are computed up front: sleep relative to the connection's start.
            let wait = due.saturating_duration_since(elapsed);
            steps.push((wait, k));
        }
        let mut out = Vec::new();
        let mut slept = Duration::ZERO;
        for (wait, k) in steps {
            if wait > slept {
                out.push(Step::Sleep(wait - slept));
                slept = wait;
            }
            out.push(Step::Send(sse(k)));
        }
        out.push(Step::Hold);
        out
    }
}

#[tokio::test]
async fn the_successor_takes_over_the_lease_and_the_overlap_collapses_duplicates() {
    let server = StreamServer::start(timed_stream(50)).await;
    let rig = Rig::new(&server.url, false);
    let (table, invoker, ports) = (&rig.table, &rig.invoker, rig.ports());
    let s = settings(&server.url, 5, 3, 2);
    let start = Instant::now();
    // The predecessor: hands over at 2 s, reads on to 4 s.
    let predecessor = run_lambda(
        &s,
        &ports,
        chain("c", 0),
        start + Duration::from_secs(5),
        "f",
    );
    // The "Lambda service": runs the invocation the predecessor asks for.
    let successor = async {
        let payload = loop {
            if let Some((_, p)) = invoker.calls().first() {
                break p.clone();
            }
            sleep(Duration::from_millis(20)).await;
        };
        run_lambda(
            &s,
            &ports,
            payload,
            Instant::now() + Duration::from_secs(5),
            "f",
        )
        .await
    };
    let (p, n) = tokio::join!(predecessor, successor);
    assert_eq!(n.generation, 1);
    assert_eq!(n.outcome, Outcome::Deadline);
    assert_eq!(
        p.outcome,
        Outcome::Deadline,
        "superseded, not lost: it read through the overlap"
    );
    assert_eq!(table.events().len(), 50, "no event lost, none twice");
    assert_eq!(p.stored + n.stored, 50);
    assert!(
        p.duplicates + n.duplicates >= 5,
        "both read during the overlap: {p:?} {n:?}"
    );
    let lease = table.lease("orders").await.unwrap().unwrap();
    assert_eq!((lease.holder.as_str(), lease.generation), ("c", 1));
}

#[tokio::test]
async fn two_chains_at_once_only_one_reads() {
    let server =
        StreamServer::start(|_, _| vec![Step::Send((1..=20).map(sse).collect()), Step::Hold]).await;
    let rig = Rig::new(&server.url, false);
    let (invoker, ports) = (&rig.invoker, rig.ports());
    let s = settings(&server.url, 5, 2, 1);
    let deadline = Instant::now() + Duration::from_secs(3);
    let (a, b) = tokio::join!(
        run_lambda(&s, &ports, chain("a", 0), deadline, "f"),
        run_lambda(&s, &ports, chain("b", 0), deadline, "f"),
    );
    let mut outcomes = [a.outcome, b.outcome];
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(outcomes, [Outcome::Deadline, Outcome::LeaseHeld]);
    assert_eq!(a.stored + b.stored, 20);
    assert_eq!(a.duplicates + b.duplicates, 0, "the other never read");
    assert_eq!(server.seen().len(), 1, "one connection");
    assert_eq!(invoker.calls().len(), 1, "one successor");
}

#[tokio::test]
async fn a_lease_taken_by_another_chain_stops_the_reader() {
    let server = StreamServer::start(|_, _| vec![Step::Send(sse(1)), Step::Hold]).await;
    let rig = Rig::new(&server.url, false);
    let (table, invoker, ports) = (&rig.table, &rig.invoker, rig.ports());
    let s = settings(&server.url, 60, 2, 1);
    let start = Instant::now();
    let thief = async {
        sleep(Duration::from_millis(500)).await;
        let now = airflow_streams::manager::now_s();
        table.set_lease(
            "orders",
            Lease {
                holder: "other".into(),
                generation: 0,
                heartbeat_at: now,
                expires_at: now + 60,
                ..Lease::default()
            },
        );
    };
    let (report, ()) = tokio::join!(
        run_lambda(
            &s,
            &ports,
            chain("mine", 0),
            start + Duration::from_secs(10),
            "f"
        ),
        thief
    );
    assert_eq!(report.outcome, Outcome::LeaseLost);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "stopped at the next heartbeat"
    );
    assert!(
        invoker.calls().is_empty(),
        "a stale instance starts no successor"
    );
    assert_eq!(lease_key("orders"), "lease#orders");
}

#[tokio::test]
async fn the_service_reads_until_shutdown_and_releases_the_lease() {
    let server = StreamServer::start(|_, _| vec![Step::Send(sse(1) + &sse(2)), Step::Hold]).await;
    let rig = Rig::new(&server.url, false);
    let (table, invoker, ports) = (&rig.table, &rig.invoker, rig.ports());
    let s = settings(&server.url, 60, 2, 1);
    let report = run_service(&s, &ports, sleep(Duration::from_millis(2500))).await;
    assert_eq!((report.outcome, report.stored), (Outcome::Shutdown, 2));
    assert!(invoker.calls().is_empty(), "no successor");
    let lease = table.lease("orders").await.unwrap().unwrap();
    assert!(
        lease.expires_at < airflow_streams::manager::now_s() + 1,
        "released"
    );
    assert!(lease.heartbeat_at > 0);
}

#[tokio::test]
async fn ndjson_with_an_id_field_collapses_repeats_by_id() {
    let server = StreamServer::start(|n, last| {
        assert_eq!(last, None, "NDJSON has no resume point");
        let body = if n == 0 {
            "{\"id\": \"a\", \"v\": 1}\n{\"id\": \"b\"}\n\n{\"id\": \"a\", \"v\": 2}\n{\"no_id\": true}\n{\"id\": \"c\""
        } else {
            "{\"id\": \"c\"}\n"
        };
        vec![Step::Send(body.into())]
    })
    .await;
    let rig = Rig::new(&server.url, false);
    let mut s = settings(&server.url, 5, 2, 1);
    s.format = airflow_stack_contract::streams::Format::Ndjson;
    s.identity = airflow_stack_contract::streams::Identity::Field("id".into());
    let report = run_lambda(
        &s,
        &rig.ports(),
        chain("c", 0),
        Instant::now() + Duration::from_secs(3),
        "f",
    )
    .await;
    let identities: Vec<String> = rig
        .table
        .events()
        .into_iter()
        .map(|e| e.item.identity)
        .collect();
    assert!(identities.contains(&"a".to_owned()) && identities.contains(&"b".to_owned()));
    assert!(
        identities.contains(&"c".to_owned()),
        "the cut-off line came whole on the next connection"
    );
    assert_eq!(
        identities.len(),
        4,
        "a, b, c and the hashed one: {identities:?}"
    );
    assert_eq!(report.identity_fallbacks, 1);
    assert!(
        report.duplicates >= 1,
        "a again (first writer wins: v 1 kept)"
    );
    let a = rig
        .table
        .events()
        .into_iter()
        .find(|e| e.item.identity == "a")
        .unwrap();
    assert_eq!(a.item.data, "{\"id\": \"a\", \"v\": 1}");
    assert_eq!(a.item.event_id, None);
}

/// A table whose puts take `delay` each: a store slower than the stream.
struct SlowStore<'a> {
    table: &'a airflow_streams::memory::MemoryTable,
    delay: Duration,
}

#[async_trait::async_trait]
impl airflow_streams::ports::EventStore for SlowStore<'_> {
    async fn put_event(
        &self,
        item: &airflow_streams::ports::EventItem,
    ) -> Result<airflow_streams::ports::Put, airflow_streams::ports::PortError> {
        sleep(self.delay).await;
        self.table.put_event(item).await
    }
}

#[tokio::test]
async fn a_backlog_the_store_cannot_clear_is_left_to_the_successor_before_the_deadline() {
    let events: String = (1..=30).map(sse).collect();
    let server =
        StreamServer::start(move |_, _| vec![Step::Send(events.clone()), Step::Hold]).await;
    let rig = Rig::new(&server.url, false);
    let slow = SlowStore {
        table: &rig.table,
        delay: Duration::from_millis(300),
    };
    let ports = airflow_streams::manager::ManagerPorts {
        events: &slow,
        ..rig.ports()
    };
    // Handoff at 1 s, stop at 2 s, deadline 3 s: 30 events read at once, about 7 stored
    // by the stop, the drain gives up 0.5 s before the deadline.
    let s = settings(&server.url, 60, 2, 1);
    let started = Instant::now();
    let report = run_lambda(
        &s,
        &ports,
        chain("c", 0),
        started + Duration::from_secs(3),
        "f",
    )
    .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "returned {took:?} after start, deadline 3 s"
    );
    assert_eq!(report.outcome, Outcome::Deadline);
    assert!(report.left_to_successor > 0, "{report:?}");
    assert_eq!(report.stored + report.left_to_successor, 30, "{report:?}");
    assert_eq!(rig.table.events().len() as u64, report.stored);
    // The successor resumes after the last stored event, so it reads the rest again.
    let stored_ids: Vec<u64> = rig
        .table
        .events()
        .iter()
        .map(|e| e.item.event_id.as_deref().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        report
            .last_event_id
            .as_deref()
            .map(|id| id.parse::<u64>().unwrap()),
        stored_ids.iter().max().copied(),
        "{report:?}"
    );
}
