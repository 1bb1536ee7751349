//! One tick: scaling, then alerts, each independent of the other's failure.
//!
//! The invocation itself always succeeds: a failed asynchronous invocation would be
//! retried by Lambda on top of the next scheduled one, doubling ticks. Problems are
//! logged and returned in the [`TickReport`] instead.
//!
//! The tick ends by publishing its metrics in one call: what the scaling half learnt
//! ([`Readings`], with autoscaling on) and, always, `AirflowApiReadFailures`, 1 when
//! logging in or any Airflow read of either half failed, so the alarm on it fires even
//! when every other figure is missing because the API is down, in an alerts-only stack
//! too (its alerts would otherwise stop silently).

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{error, info, warn};

use crate::alerts::{self, AlertError, AlertOutcome, AlertPorts};
use crate::budget::Deadline;
use crate::ports::{AirflowApi, Metrics, Notifier, PortError, StateStore, WorkerService};
use crate::scaling::{self, Drain, Outcome, Readings, ScaleError, ScalePorts, TickInput};
use crate::settings::Settings;
use airflow_stack_contract::scaler::{PAUSED_KEY, PAUSED_SINCE};

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
    /// Whether logging in or an Airflow read failed (the published
    /// `AirflowApiReadFailures`).
    pub api_read_failed: bool,
    /// Whether work was left undone because the invocation was close to its deadline.
    pub out_of_time: bool,
    /// Since when the stack is paused (`airflow-stack pause`), when it is: the tick did
    /// nothing else.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_since: Option<String>,
}

/// Since when `airflow-stack pause` paused the stack, if it did: the [`PAUSED_KEY`] item
/// of the state table. An unreadable table counts as not paused (the tick then runs and
/// reports what fails), so a paused flag can never hide a broken scaler for good.
pub async fn paused_since(state: &dyn StateStore) -> Option<String> {
    match state.get(PAUSED_KEY).await {
        Ok(item) => item.map(|i| i.get(PAUSED_SINCE).cloned().unwrap_or_default()),
        Err(e) => {
            warn!(error = %e, "could not read the paused flag; ticking as usual");
            None
        }
    }
}

/// The tick of a paused stack: no Airflow call (its api-server is stopped), no scaling,
/// no alert, and `AirflowApiReadFailures` 0, so the read-failure alarm, which treats a
/// missing value as a failure, stays quiet while the stack is paused on purpose.
pub async fn paused_tick(metrics: &dyn Metrics, since: String) -> TickReport {
    publish(metrics, &Readings::default(), false).await;
    info!(since = %since, "paused: nothing to do");
    TickReport {
        paused_since: Some(since),
        ..TickReport::default()
    }
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

/// Runs one tick; `deadline` is the invocation's (see [`crate::budget`]).
pub async fn run_tick(
    settings: &Settings,
    ports: &TickPorts<'_>,
    now: DateTime<Utc>,
    deadline: Deadline,
) -> TickReport {
    let mut report = TickReport {
        api_read_failed: ports.airflow.is_err(),
        ..TickReport::default()
    };
    let mut readings = Readings::default();
    if let (Some(scale), Some(workers)) = (&settings.scaling, ports.workers) {
        let result = match &ports.airflow {
            Err(e) => Err(ScaleError::Api(e.clone())),
            Ok(api) => {
                let p = ScalePorts {
                    airflow: *api,
                    workers,
                    state: ports.state,
                };
                let input = TickInput {
                    limits: &scale.limits,
                    queues: &scale.queues,
                    now,
                    deadline,
                };
                scaling::tick(&p, input, &mut readings).await
            }
        };
        match &result {
            Err(ScaleError::Api(_)) => report.api_read_failed = true,
            Ok(o) => {
                report.api_read_failed |= o.api_read_failed;
                report.out_of_time |= o.out_of_time;
            }
            Err(_) => {}
        }
        let result = result.map_err(|e| {
            warn!(error = %e, "scaling skipped");
            e.to_string()
        });
        report.scaling = Some(summary(result, describe_scaling));
    }
    if let Some(targets) = &settings.alerts {
        let result = match &ports.airflow {
            Err(e) => Err(format!("Airflow API unreachable, alerts wait: {e}")),
            Ok(api) => {
                let p = AlertPorts {
                    airflow: *api,
                    store: ports.state,
                    notifiers: ports.notifiers,
                };
                let result = alerts::tick(&p, &targets.settings, now, deadline).await;
                match &result {
                    Err(AlertError::Api(_)) => report.api_read_failed = true,
                    Ok(o) => {
                        report.api_read_failed |= o.api_read_failed;
                        report.out_of_time |= o.out_of_time;
                    }
                    Err(_) => {}
                }
                result.map_err(|e| e.to_string())
            }
        };
        if let Err(e) = &result {
            error!(error = %e, "alerts incomplete");
        }
        report.alerts = Some(summary(result, describe_alerts));
    }
    publish(ports.metrics, &readings, report.api_read_failed).await;
    info!(report = %serde_json::to_string(&report).unwrap_or_default(), "tick done");
    report
}

/// Metrics are best effort: a CloudWatch hiccup must not fail the tick.
async fn publish(metrics: &dyn Metrics, readings: &Readings, api_read_failed: bool) {
    if let Err(e) = metrics.put(&readings.to_metrics(api_read_failed)).await {
        warn!(error = %e, "PutMetricData failed");
    }
}

/// One line: the load, the target and what changed, e.g. `queued 3 running 0 busy 0
/// desired 1 tasks 0: set 0 -> 1`, followed by what happened to a drain, e.g.
/// `; drain started: 3 tagged`.
pub fn describe_scaling(o: &Outcome) -> String {
    let change = match o.set_count {
        Some(n) => format!("set {} -> {n}", o.current),
        None => format!("kept {}", o.current),
    };
    let mut line = format!(
        "queued {} running {} busy {} desired {} tasks {}: {change}",
        o.queued, o.running, o.busy, o.desired, o.tasks,
    );
    match &o.drain {
        Drain::None => {}
        Drain::Started(tagged) => {
            line.push_str(&format!("; drain started: {} tagged", tagged.len()))
        }
        Drain::Waiting(waiting) => line.push_str(&format!("; drain waiting for {}", waiting.len())),
        Drain::Finished { drained, kept } => line.push_str(&format!(
            "; drained {}, kept {} protected",
            drained.len(),
            kept.len()
        )),
        Drain::Cancelled { untagged, reason } => line.push_str(&format!(
            "; drain cancelled ({reason}): {} untagged",
            untagged.len()
        )),
    }
    if !o.gaps.is_empty() {
        line.push_str(&format!(
            "; incomplete reading ({}), no scale-in",
            o.gaps.join(", ")
        ));
    }
    line
}

fn describe_alerts(o: &AlertOutcome) -> String {
    let mut line = format!(
        "{} ended runs read, {} notices sent",
        o.runs_read,
        o.sent.len()
    );
    if o.deferred > 0 {
        line.push_str(&format!(", {} runs left to a concurrent tick", o.deferred));
    }
    if o.out_of_time {
        line.push_str(", stopped: less than 10 s left");
    }
    line
}
