//! One tick: scaling, then alerts, each independent of the other's failure.
//!
//! The invocation itself always succeeds: a failed asynchronous invocation would be
//! retried by Lambda on top of the next scheduled one, doubling ticks. Problems are
//! logged and returned in the [`TickReport`] instead.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{error, info, warn};

use crate::alerts::{self, AlertOutcome};
use crate::ports::{AirflowApi, Metrics, Notifier, PortError, StateStore, WorkerService};
use crate::scaling::{self, Outcome, ScaleError, ScalePorts};
use crate::settings::Settings;

/// The outside world of one tick. `airflow` is the login's result: when the API is
/// unreachable nothing is changed and the reason is logged.
pub struct TickPorts<'a> {
    /// The logged-in API, or why logging in failed.
    pub airflow: Result<&'a dyn AirflowApi, PortError>,
    /// The worker service (when autoscaling is on).
    pub workers: Option<&'a dyn WorkerService>,
    /// CloudWatch.
    pub metrics: &'a dyn Metrics,
    /// The state table.
    pub state: &'a dyn StateStore,
    /// Alert targets.
    pub notifiers: &'a [Box<dyn Notifier>],
}

/// What a tick did, as the invocation's result (and for tests).
#[derive(Debug, Default, Serialize)]
pub struct TickReport {
    /// Scaling: `None` when off.
    pub scaling: Option<Summary>,
    /// Alerts: `None` when off.
    pub alerts: Option<Summary>,
}

/// One half's result in a line.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Whether it completed.
    pub ok: bool,
    /// What it did or why it did not.
    pub message: String,
}

fn summary<T>(result: Result<T, String>, describe: impl Fn(&T) -> String) -> Summary {
    match result {
        Ok(v) => Summary {
            ok: true,
            message: describe(&v),
        },
        Err(message) => Summary { ok: false, message },
    }
}

/// Runs one tick.
pub async fn run_tick(
    settings: &Settings,
    ports: &TickPorts<'_>,
    now: DateTime<Utc>,
) -> TickReport {
    let mut report = TickReport::default();
    if let (Some(scale), Some(workers)) = (&settings.scaling, ports.workers) {
        let result = match &ports.airflow {
            Err(e) => Err(ScaleError::Api(e.clone())),
            Ok(api) => {
                let p = ScalePorts {
                    airflow: *api,
                    workers,
                    metrics: ports.metrics,
                    state: ports.state,
                };
                scaling::tick(&p, &scale.limits, now).await
            }
        };
        let result = result.map_err(|e| {
            warn!(error = %e, "scaling skipped");
            e.to_string()
        });
        report.scaling = Some(summary(result, describe_scaling));
    }
    if let Some(targets) = &settings.alerts {
        let result = match &ports.airflow {
            Err(e) => Err(format!("Airflow API unreachable, alerts wait: {e}")),
            Ok(api) => alerts::tick(*api, ports.state, ports.notifiers, &targets.settings, now)
                .await
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = &result {
            error!(error = %e, "alerts incomplete");
        }
        report.alerts = Some(summary(result, describe_alerts));
    }
    info!(report = %serde_json::to_string(&report).unwrap_or_default(), "tick done");
    report
}

fn describe_scaling(o: &Outcome) -> String {
    let change = match o.set_count {
        Some(n) => format!("set {} -> {n}", o.current),
        None => format!("kept {}", o.current),
    };
    format!(
        "queued {} running {} desired {}: {change}; protected {}, unprotected {}",
        o.queued,
        o.running,
        o.desired,
        o.protection.busy.len(),
        o.protection.idle.len()
    )
}

fn describe_alerts(o: &AlertOutcome) -> String {
    format!(
        "{} ended runs read, {} notices sent",
        o.runs_read,
        o.sent.len()
    )
}
