//! The connection manager: holds the stream, writes every event once, keeps the lease,
//! and (as a Lambda) hands over to its successor before its deadline.
//!
//! One invocation (or the service process) reads in a single task: a reader future
//! that connects, reads with a deadline on every chunk and reconnects with backoff,
//! feeding a bounded channel; and a loop that stores what the reader sends, renews the
//! lease every heartbeat, starts the successor at the handoff time and stops at the
//! stop time (or on SIGTERM, or when the lease is lost).
//!
//! ```text
//!  start ──── reading ──── handoff (deadline − HANDOFF) ── overlap ── stop ── deadline
//!                             └─ successor invoked: it reads too; duplicates collapse
//! ```

use std::future::Future;
use std::pin::pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airflow_stack_contract::streams::{event_key, ManagerInvocation, ManagerSettings, StartedBy};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::{sleep, sleep_until, timeout, timeout_at, Instant, MissedTickBehavior};
use tracing::{error, info, warn};

use crate::decode::{decoder, Decoder, StreamEvent};
use crate::identity::identity;
use crate::ports::{Claim, EventItem, EventStore, Invoker, LeaseStore, Put, Renewal};
use crate::source::{Connection, Source};

/// The first reconnect waits this long; each failed one doubles it.
pub const BACKOFF_START: Duration = Duration::from_millis(250);
/// The longest wait between reconnects.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Events read but not yet stored: the reader waits (and so reads no further) when the
/// store falls this far behind.
const CHANNEL: usize = 256;
/// Attempts at one event's put (the SDK retries throttling inside each).
const PUT_ATTEMPTS: u32 = 4;
/// The least an invocation must run before the handoff; a deadline nearer than
/// `HANDOFF_SECONDS` plus this hands over at half the remaining time instead.
const MIN_RUN: Duration = Duration::from_secs(5);
/// What the stop keeps from the deadline at least: the drain of read events.
const STOP_MARGIN: Duration = Duration::from_secs(1);
/// What the drain of read events keeps from the deadline: the report is logged and the
/// invocation returns before Lambda ends it (a run Lambda ends logs no report, and its
/// invocation counts as failed).
const DRAIN_MARGIN: Duration = Duration::from_millis(500);

/// The outside world of a manager.
pub struct ManagerPorts<'a> {
    /// The stream.
    pub source: &'a dyn Source,
    /// The event items.
    pub events: &'a dyn EventStore,
    /// The lease items.
    pub leases: &'a dyn LeaseStore,
    /// Lambda's asynchronous invoke (the successor).
    pub invoker: &'a dyn Invoker,
}

/// Why the manager stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its stop time came (after the handoff and the overlap).
    #[default]
    Deadline,
    /// SIGTERM (the service).
    Shutdown,
    /// Another chain holds the lease: it did not read.
    LeaseHeld,
    /// Another chain took the lease while it read: it stopped at once.
    LeaseLost,
    /// The lease could not be read or written at the start.
    Error,
}

/// What one run did: the Lambda's result, the service's last log line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ManagerReport {
    /// The chain.
    pub chain_id: String,
    /// This run's generation.
    pub generation: u64,
    /// Why it stopped.
    pub outcome: Outcome,
    /// Events stored (first writer).
    pub stored: u64,
    /// Events already stored (repeats, the overlap).
    pub duplicates: u64,
    /// Events whose put failed after retries (logged with their key).
    pub store_failures: u64,
    /// Events whose `field:` identity was missing (they used the hash).
    pub identity_fallbacks: u64,
    /// Connections that ended, failed or went silent (each followed by a reconnect).
    pub drops: u64,
    /// Whether the successor was invoked (`None`: not due, or the service).
    pub successor_started: Option<bool>,
    /// The last SSE event ID read.
    pub last_event_id: Option<String>,
    /// Events read but not stored when the deadline came (the store was slower than the
    /// stream): the successor reads them again from the last stored event's ID.
    pub left_to_successor: u64,
}

/// Now, epoch milliseconds.
pub fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Now, epoch seconds.
pub fn now_s() -> i64 {
    now_ms() / 1000
}

/// A new chain id (random UUID).
pub fn new_chain_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// When a Lambda run hands over and stops, given its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// When the successor is invoked.
    pub handoff_at: Instant,
    /// When reading stops.
    pub stop_at: Instant,
    /// When storing what was read before the stop gives up ([`DRAIN_MARGIN`] before
    /// the deadline).
    pub drain_until: Instant,
}

impl Schedule {
    /// `deadline − HANDOFF` and `OVERLAP` after it, the stop at least [`STOP_MARGIN`]
    /// before the deadline. A deadline too near for the configured handoff (a short
    /// function timeout) hands over at half the remaining time, so a chain never spins.
    pub fn for_deadline(
        now: Instant,
        deadline: Instant,
        handoff: Duration,
        overlap: Duration,
    ) -> Self {
        let remaining = deadline.saturating_duration_since(now);
        let handoff_at = if remaining > handoff + MIN_RUN {
            deadline - handoff
        } else {
            warn!(
                remaining_ms = remaining.as_millis() as u64,
                "the function's time limit leaves no room for HANDOFF_SECONDS: handing over at half the time"
            );
            now + remaining / 2
        };
        let latest_stop = deadline
            .checked_sub(STOP_MARGIN)
            .unwrap_or(now)
            .max(handoff_at);
        Schedule {
            handoff_at,
            stop_at: (handoff_at + overlap).min(latest_stop),
            drain_until: deadline.checked_sub(DRAIN_MARGIN).unwrap_or(now),
        }
    }
}

/// What the reader sends.
enum Read {
    Event(StreamEvent),
    /// The connection ended, failed or went silent; the reader reconnects.
    Dropped(String),
}

/// Connects, reads, reconnects with backoff, forever (the caller drops it to stop).
async fn read_forever(
    source: &dyn Source,
    mut decoder: Box<dyn Decoder>,
    read_timeout: Duration,
    tx: mpsc::Sender<Read>,
) {
    let mut backoff = BACKOFF_START;
    loop {
        let resume = decoder.last_event_id().map(str::to_owned);
        let (reason, got_events) =
            match timeout(read_timeout, source.connect(resume.as_deref())).await {
                Ok(Ok(connection)) => {
                    decoder.reset();
                    read_connection(connection, decoder.as_mut(), read_timeout, &tx).await
                }
                Ok(Err(e)) => (e.0, false),
                Err(_) => ("connecting timed out".to_owned(), false),
            };
        if got_events {
            backoff = BACKOFF_START;
        }
        if tx.send(Read::Dropped(reason)).await.is_err() {
            return;
        }
        sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Reads one connection until it ends; every chunk must come within `read_timeout`.
/// Returns why it ended and whether it gave any event.
async fn read_connection(
    mut connection: Box<dyn Connection>,
    decoder: &mut dyn Decoder,
    read_timeout: Duration,
    tx: &mpsc::Sender<Read>,
) -> (String, bool) {
    let mut got_events = false;
    loop {
        let chunk = match timeout(read_timeout, connection.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => return ("the server closed the stream".into(), got_events),
            Ok(Err(e)) => return (e.0, got_events),
            Err(_) => {
                let silent = format!("no byte for {} s", read_timeout.as_secs_f32());
                return (silent, got_events);
            }
        };
        for event in decoder.feed(&chunk) {
            got_events = true;
            if tx.send(Read::Event(event)).await.is_err() {
                return ("stopped".into(), got_events);
            }
        }
    }
}

/// One manager's state while it holds the lease.
struct Session<'a> {
    settings: &'a ManagerSettings<String>,
    ports: &'a ManagerPorts<'a>,
    claim: Claim,
    report: ManagerReport,
}

/// When a session hands over and stops (a Lambda run); `None` for the service.
struct Plan<'f> {
    schedule: Schedule,
    function: &'f str,
}

impl<'a> Session<'a> {
    fn new(
        settings: &'a ManagerSettings<String>,
        ports: &'a ManagerPorts<'a>,
        chain_id: String,
        generation: u64,
        resume: Option<String>,
    ) -> Self {
        Session {
            settings,
            ports,
            claim: Claim {
                stream: settings.stream_name.clone(),
                chain_id: chain_id.clone(),
                generation,
                now: now_s(),
                lease_seconds: settings.lease_seconds,
                last_event_id: resume.clone(),
            },
            report: ManagerReport {
                chain_id,
                generation,
                last_event_id: resume,
                ..ManagerReport::default()
            },
        }
    }

    /// Reads until the stop time, the shutdown or the loss of the lease.
    async fn read(
        &mut self,
        plan: Option<Plan<'_>>,
        shutdown: impl Future<Output = ()>,
    ) -> Outcome {
        let s = self.settings;
        let read_timeout = Duration::from_secs(s.read_timeout_seconds.into());
        let (tx, mut rx) = mpsc::channel(CHANNEL);
        let decoder = decoder(s.format, self.report.last_event_id.clone());
        let mut reader = pin!(read_forever(self.ports.source, decoder, read_timeout, tx));
        let mut shutdown = pin!(shutdown);
        let beat = Duration::from_secs(s.heartbeat_seconds.into());
        let mut heartbeat = tokio::time::interval_at(Instant::now() + beat, beat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let far = Instant::now() + Duration::from_secs(10 * 365 * 86_400);
        let (handoff_at, stop_at) = plan
            .as_ref()
            .map_or((far, far), |p| (p.schedule.handoff_at, p.schedule.stop_at));
        let mut handoff = pin!(sleep_until(handoff_at));
        let mut stop = pin!(sleep_until(stop_at));
        let (mut handoff_due, mut renewing) = (plan.is_some(), true);
        let outcome = loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break Outcome::Shutdown,
                // Before the stop: when both are due (a short deadline), the chain
                // must still go on.
                () = &mut handoff, if handoff_due => {
                    handoff_due = false;
                    let function = plan.as_ref().map_or("", |p| p.function);
                    self.start_successor(function).await;
                }
                () = &mut stop => break Outcome::Deadline,
                _ = heartbeat.tick(), if renewing => match self.renew().await {
                    Some(Renewal::Lost) => break Outcome::LeaseLost,
                    Some(Renewal::Superseded) => renewing = false,
                    _ => {}
                },
                Some(read) = rx.recv() => self.handle(read).await,
                () = &mut reader => {}
            }
        };
        // What was read before the stop is stored: a successor might not see it again.
        let drain_until = plan.as_ref().map(|p| p.schedule.drain_until);
        self.drain(rx, drain_until).await;
        outcome
    }

    /// Stores what the reader sent before the stop, until `until` (a Lambda run's
    /// deadline, less the margin for the report): a backlog the store cannot clear by
    /// then is left to the successor, which reads on from the last stored event's ID.
    /// The e2e run of 1d6febd saw a first link, behind its stream under load, still
    /// storing 5 s after its stop when Lambda ended it (24 s limit): no report, and its
    /// invocation counted as failed.
    async fn drain(&mut self, mut rx: mpsc::Receiver<Read>, until: Option<Instant>) {
        rx.close();
        while let Ok(read) = rx.try_recv() {
            let Some(until) = until else {
                self.handle(read).await;
                continue;
            };
            let is_event = matches!(read, Read::Event(_));
            if timeout_at(until, self.handle(read)).await.is_ok() {
                continue;
            }
            // The interrupted put may or may not have landed: the successor's read of
            // it is then a duplicate, dropped by the conditional put.
            let mut left = u64::from(is_event);
            while let Ok(read) = rx.try_recv() {
                left += u64::from(matches!(read, Read::Event(_)));
            }
            self.report.left_to_successor = left;
            warn!(stream = %self.settings.stream_name, left, "the deadline is near: read events left to the successor");
            return;
        }
    }

    async fn handle(&mut self, read: Read) {
        match read {
            Read::Event(event) => self.store(event).await,
            Read::Dropped(reason) => {
                self.report.drops += 1;
                warn!(stream = %self.claim.stream, %reason, "stream connection ended; reconnecting");
            }
        }
    }

    /// Writes one event (first writer wins), retrying a failed put.
    async fn store(&mut self, event: StreamEvent) {
        let s = self.settings;
        let (identity, fell_back) = identity(&s.identity, &event);
        if fell_back {
            self.report.identity_fallbacks += 1;
            warn!(stream = %s.stream_name, "event without its identity field: using the hash of its data");
        }
        let received_at_ms = now_ms();
        let item = EventItem {
            key: event_key(&s.stream_name, &identity),
            stream: s.stream_name.clone(),
            identity,
            data: event.data,
            event_id: event.id,
            target_kind: s.target.kind().to_owned(),
            target: s.target.name().to_owned(),
            received_at_ms,
            expires_at: received_at_ms / 1000 + i64::from(s.event_ttl_hours) * 3600,
        };
        let mut wait = Duration::from_millis(100);
        for attempt in 1..=PUT_ATTEMPTS {
            match self.ports.events.put_event(&item).await {
                Ok(put) => {
                    // The resume point moves only past what is in the table: a put
                    // that failed or was cut off by the deadline is read again.
                    if event.last_event_id.is_some() {
                        self.report.last_event_id = event.last_event_id.clone();
                        self.claim.last_event_id = event.last_event_id;
                    }
                    return match put {
                        Put::Stored => self.report.stored += 1,
                        Put::Duplicate => self.report.duplicates += 1,
                    };
                }
                Err(e) if attempt < PUT_ATTEMPTS => {
                    warn!(key = %item.key, error = %e, attempt, "storing an event failed; retrying");
                    sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => {
                    self.report.store_failures += 1;
                    error!(key = %item.key, error = %e, "storing an event failed: the event is lost");
                }
            }
        }
    }

    async fn renew(&mut self) -> Option<Renewal> {
        self.claim.now = now_s();
        match self.ports.leases.renew(&self.claim).await {
            Ok(Renewal::Renewed) => Some(Renewal::Renewed),
            Ok(Renewal::Superseded) => {
                info!(stream = %self.claim.stream, "the successor holds the lease: reading on through the overlap");
                Some(Renewal::Superseded)
            }
            Ok(Renewal::Lost) => {
                warn!(stream = %self.claim.stream, "another chain holds the lease: stopping");
                Some(Renewal::Lost)
            }
            Err(e) => {
                // Reading goes on: the next beat tries again before the lease lapses.
                warn!(stream = %self.claim.stream, error = %e, "renewing the lease failed");
                None
            }
        }
    }

    async fn start_successor(&mut self, function: &str) {
        let payload = ManagerInvocation {
            chain_id: Some(self.claim.chain_id.clone()),
            generation: self.claim.generation + 1,
            last_event_id: self.report.last_event_id.clone(),
            started_by: Some(StartedBy::Successor),
        };
        match self.ports.invoker.invoke_async(function, &payload).await {
            Ok(()) => {
                info!(stream = %self.claim.stream, generation = payload.generation, "successor started");
                self.report.successor_started = Some(true);
            }
            Err(e) => {
                // Reading goes on to the stop; the watchdog sees the heartbeat go stale.
                error!(stream = %self.claim.stream, error = %e, "starting the successor failed: the chain ends here");
                self.report.successor_started = Some(false);
            }
        }
    }

    fn finish(mut self, outcome: Outcome) -> ManagerReport {
        self.report.outcome = outcome;
        info!(report = %serde_json::to_string(&self.report).unwrap_or_default(), "manager stopped");
        self.report
    }
}

/// The resume point: the invocation's, else the lease's (a chain the watchdog or a
/// person restarted continues where the last holder was).
async fn resume_point(
    ports: &ManagerPorts<'_>,
    stream: &str,
    given: Option<String>,
) -> Option<String> {
    if given.is_some() {
        return given;
    }
    match ports.leases.lease(stream).await {
        Ok(lease) => lease.and_then(|l| l.last_event_id),
        Err(e) => {
            warn!(error = %e, "reading the lease for the resume point failed");
            None
        }
    }
}

/// One Lambda invocation of the chain: takes the lease, reads, invokes `function`
/// (itself) at the handoff time, stops before `deadline`.
pub async fn run_lambda(
    settings: &ManagerSettings<String>,
    ports: &ManagerPorts<'_>,
    invocation: ManagerInvocation,
    deadline: Instant,
    function: &str,
) -> ManagerReport {
    let chain_id = invocation.chain_id.unwrap_or_else(new_chain_id);
    let resume = resume_point(ports, &settings.stream_name, invocation.last_event_id).await;
    let mut session = Session::new(settings, ports, chain_id, invocation.generation, resume);
    match ports.leases.acquire(&session.claim).await {
        Ok(true) => {}
        Ok(false) => {
            info!(stream = %settings.stream_name, "another chain holds the lease: exiting");
            return session.finish(Outcome::LeaseHeld);
        }
        Err(e) => {
            error!(stream = %settings.stream_name, error = %e, "taking the lease failed");
            return session.finish(Outcome::Error);
        }
    }
    let schedule = Schedule::for_deadline(
        Instant::now(),
        deadline,
        Duration::from_secs(settings.handoff_seconds.into()),
        Duration::from_secs(settings.overlap_seconds.into()),
    );
    let plan = Plan { schedule, function };
    let outcome = session.read(Some(plan), std::future::pending()).await;
    session.finish(outcome)
}

/// The always-on manager (a Fargate task): waits for the lease, reads until
/// `shutdown`, then lets the lease lapse so a replacement takes over at once. A lost
/// lease sends it back to waiting.
pub async fn run_service(
    settings: &ManagerSettings<String>,
    ports: &ManagerPorts<'_>,
    shutdown: impl Future<Output = ()>,
) -> ManagerReport {
    let mut shutdown = pin!(shutdown);
    let resume = resume_point(ports, &settings.stream_name, None).await;
    let mut session = Session::new(settings, ports, new_chain_id(), 0, resume);
    let beat = Duration::from_secs(settings.heartbeat_seconds.into());
    loop {
        loop {
            session.claim.now = now_s();
            match ports.leases.acquire(&session.claim).await {
                Ok(true) => break,
                Ok(false) => {
                    info!(stream = %settings.stream_name, "another chain holds the lease: waiting")
                }
                Err(e) => warn!(error = %e, "taking the lease failed: retrying"),
            }
            tokio::select! {
                () = &mut shutdown => return session.finish(Outcome::Shutdown),
                () = sleep(beat) => {}
            }
        }
        info!(stream = %settings.stream_name, chain_id = %session.claim.chain_id, "lease taken: reading");
        match session.read(None, shutdown.as_mut()).await {
            Outcome::LeaseLost => {
                session.claim.generation += 1;
                session.report.generation = session.claim.generation;
            }
            outcome => {
                session.claim.now = now_s();
                if let Err(e) = ports.leases.release(&session.claim).await {
                    warn!(error = %e, "releasing the lease failed: it lapses on its own");
                }
                return session.finish(outcome);
            }
        }
    }
}
