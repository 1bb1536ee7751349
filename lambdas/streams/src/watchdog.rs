//! The watchdog, run every minute: for each Lambda-run stream, starts a chain where
//! none ever ran, restarts one whose heartbeat went stale and alerts once per outage,
//! and says so when it recovers. For a stream run as a Fargate service it starts
//! nothing (ECS starts the task, and starts it again when it exits); when the
//! heartbeat goes stale it alerts once and forces one new deployment of the service,
//! which replaces a task that runs but no longer reads.
//!
//! Once per outage: the alert is recorded in the lease item by a conditional update
//! ([`LeaseStore::mark_alerted`]: only if none is recorded and the heartbeat is still
//! the stale one), and only the watchdog whose update succeeded sends it, so a second
//! tick or two watchdogs at once do not alert twice. A fresh heartbeat clears the
//! record (again conditionally: one recovery notice).

use airflow_stack_contract::streams::{
    manager_function_name, manager_service_name, ManagerInvocation, StartedBy, WatchdogSettings,
};
use serde::Serialize;
use tracing::{error, info, warn};

use crate::manager::new_chain_id;
use crate::notify::{Kind, Notice};
use crate::ports::{Invoker, Lease, LeaseStore, Notifier, ServiceRestarter};

/// The outside world of the watchdog.
pub struct WatchdogPorts<'a> {
    /// The lease items.
    pub leases: &'a dyn LeaseStore,
    /// Lambda's asynchronous invoke (the managers).
    pub invoker: &'a dyn Invoker,
    /// ECS (the streams run as services).
    pub services: &'a dyn ServiceRestarter,
    /// The alert targets.
    pub notifiers: &'a [Box<dyn Notifier>],
}

/// What the watchdog found for one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No lease item: never started (or its item expired).
    Missing,
    /// The heartbeat is fresh.
    Healthy,
    /// The heartbeat is older than `STALE_SECONDS`.
    Stale,
    /// The lease could not be read.
    Unknown,
}

/// One stream's check.
#[derive(Debug, Clone, Serialize)]
pub struct StreamCheck {
    /// The stream.
    pub stream: String,
    /// What was found.
    pub health: Health,
    /// Whether a chain was started (a Lambda-run stream) or the service was given a new
    /// deployment (a Fargate-run one).
    pub started: bool,
    /// Whether this tick alerted.
    pub alerted: bool,
    /// Whether this tick sent the recovery notice.
    pub recovered: bool,
}

/// One tick's checks.
#[derive(Debug, Clone, Serialize)]
pub struct WatchdogReport {
    /// Per stream.
    pub streams: Vec<StreamCheck>,
}

/// One tick at `now` (epoch seconds).
pub async fn run_watchdog(
    settings: &WatchdogSettings<String>,
    ports: &WatchdogPorts<'_>,
    now: i64,
) -> WatchdogReport {
    let mut streams = Vec::new();
    for stream in &settings.streams {
        streams.push(check(settings, ports, stream, Runner::Chain, now).await);
    }
    for stream in &settings.service_streams {
        streams.push(check(settings, ports, stream, Runner::Service, now).await);
    }
    WatchdogReport { streams }
}

/// What holds a stream, as far as restarting it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runner {
    /// A Lambda chain: the watchdog starts a new one where none runs, on every tick.
    Chain,
    /// A Fargate service: ECS starts its task (and again when it exits), so a missing
    /// lease means it is still starting (pulling its image); a stale one gets one new
    /// deployment per outage, with the alert (a deployment every minute would stop each
    /// replacement before it connected).
    Service,
}

async fn check(
    settings: &WatchdogSettings<String>,
    ports: &WatchdogPorts<'_>,
    stream: &str,
    runner: Runner,
    now: i64,
) -> StreamCheck {
    let mut check = StreamCheck {
        stream: stream.to_owned(),
        health: Health::Unknown,
        started: false,
        alerted: false,
        recovered: false,
    };
    let lease = match ports.leases.lease(stream).await {
        Ok(lease) => lease,
        Err(e) => {
            error!(stream, error = %e, "reading the lease failed");
            return check;
        }
    };
    let Some(lease) = lease else {
        check.health = Health::Missing;
        check.started = match runner {
            Runner::Chain => start(settings, ports, stream, None).await,
            Runner::Service => {
                info!(stream, "no lease yet: ECS starts the stream's task");
                false
            }
        };
        return check;
    };
    let age = now - lease.heartbeat_at;
    if age > i64::from(settings.stale_seconds) {
        check.health = Health::Stale;
        if runner == Runner::Chain {
            check.started = start(settings, ports, stream, lease.last_event_id.clone()).await;
        }
        check.alerted = alert_once(settings, ports, stream, &lease, now).await;
        if runner == Runner::Service && check.alerted {
            check.started = restart_service(settings, ports, stream).await;
        }
    } else {
        check.health = Health::Healthy;
        if lease.alerted_at.is_some() {
            check.recovered = recovered(settings, ports, stream, age).await;
        }
    }
    check
}

/// Forces a new deployment of the stream's service.
async fn restart_service(
    settings: &WatchdogSettings<String>,
    ports: &WatchdogPorts<'_>,
    stream: &str,
) -> bool {
    let service = manager_service_name(&settings.stack_name, stream);
    match ports.services.restart(&service).await {
        Ok(()) => {
            info!(stream, %service, "forced a new deployment of the service");
            true
        }
        Err(e) => {
            error!(stream, %service, error = %e, "restarting the service failed");
            false
        }
    }
}

/// Invokes the stream's manager as a new chain, resuming at `last_event_id`.
async fn start(
    settings: &WatchdogSettings<String>,
    ports: &WatchdogPorts<'_>,
    stream: &str,
    last_event_id: Option<String>,
) -> bool {
    let function = manager_function_name(&settings.stack_name, stream);
    let payload = ManagerInvocation {
        chain_id: Some(new_chain_id()),
        generation: 0,
        last_event_id,
        started_by: Some(StartedBy::Watchdog),
    };
    match ports.invoker.invoke_async(&function, &payload).await {
        Ok(()) => {
            info!(stream, %function, "started a new chain");
            true
        }
        Err(e) => {
            error!(stream, %function, error = %e, "starting a chain failed");
            false
        }
    }
}

async fn alert_once(
    settings: &WatchdogSettings<String>,
    ports: &WatchdogPorts<'_>,
    stream: &str,
    lease: &Lease,
    now: i64,
) -> bool {
    if lease.alerted_at.is_some() {
        return false;
    }
    match ports
        .leases
        .mark_alerted(stream, lease.heartbeat_at, now)
        .await
    {
        Ok(true) => {}
        Ok(false) => return false, // another tick or watchdog got there first
        Err(e) => {
            // Not alerting beats alerting twice: the next tick tries again.
            error!(stream, error = %e, "recording the alert failed");
            return false;
        }
    }
    let notice = notice(settings, Kind::Stale, stream, now - lease.heartbeat_at);
    send(ports, &notice).await;
    true
}

async fn recovered(
    settings: &WatchdogSettings<String>,
    ports: &WatchdogPorts<'_>,
    stream: &str,
    age: i64,
) -> bool {
    match ports.leases.clear_alerted(stream).await {
        Ok(true) => {
            send(ports, &notice(settings, Kind::Recovered, stream, age)).await;
            true
        }
        Ok(false) => false,
        Err(e) => {
            warn!(stream, error = %e, "clearing the alert failed");
            false
        }
    }
}

fn notice(settings: &WatchdogSettings<String>, kind: Kind, stream: &str, age: i64) -> Notice {
    Notice {
        kind,
        stack: settings.stack_name.clone(),
        stream: stream.to_owned(),
        heartbeat_age_seconds: age,
        ui_base_url: settings.ui_base_url.clone(),
    }
}

/// Sends to every target; a failed one is logged and the others still get it.
async fn send(ports: &WatchdogPorts<'_>, notice: &Notice) {
    for target in ports.notifiers {
        match target.send(notice).await {
            Ok(()) => info!(target = target.name(), stream = %notice.stream, "notice sent"),
            Err(e) => error!(target = target.name(), error = %e, "sending the notice failed"),
        }
    }
}
