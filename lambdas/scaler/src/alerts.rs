//! Failed-run alerts: one alert when a DAG turns failed, silence while it stays
//! failed, one recovery notice when it succeeds again.
//!
//! Each tick reads the DAG runs that ended since the cursor (minus a small overlap, so a
//! run committed a little late is not missed), oldest first, and runs each through the
//! per-DAG state machine [`transition`]. Runs already seen are recognised by the DAG's
//! last run id and end date, so the overlap never alerts twice.

use std::collections::HashMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use tracing::{info, warn};

use crate::notify::{run_url, Kind, Notice};
use crate::ports::{AirflowApi, DagRun, Notifier, PortError, StateStore};
use crate::state::{self, DagState};

/// Runs per page (Airflow's default maximum page size).
const PAGE: u64 = 100;
/// Pages read per tick at most (10,000 runs); the rest waits for the next tick.
const MAX_PAGES: u64 = 100;

/// Alert settings from the stack file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertSettings {
    /// The stack's name, shown in every notice.
    pub stack: String,
    /// Base URL of the Airflow UI for links.
    pub ui_base_url: String,
    /// How far back the very first tick looks.
    pub first_lookback: Duration,
    /// How far before the cursor each tick reads again.
    pub overlap: Duration,
}

impl AlertSettings {
    /// The defaults: look back 10 minutes at first, re-read 2 minutes.
    pub fn new(stack: String, ui_base_url: String) -> AlertSettings {
        AlertSettings {
            stack,
            ui_base_url,
            first_lookback: Duration::minutes(10),
            overlap: Duration::minutes(2),
        }
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// True when `run` is newer than what the DAG's state has already seen.
pub fn is_new(prev: Option<&DagState>, run: &DagRun) -> bool {
    let Some(prev) = prev else { return true };
    if prev.last_run_id == run.run_id {
        return false;
    }
    match (parse_time(&run.end_date), parse_time(&prev.last_end_date)) {
        (Some(run_end), Some(last_end)) => run_end >= last_end,
        _ => true,
    }
}

/// The state machine: the notice a run causes (if any) and the DAG's next state.
///
/// `failed` after anything but `failed` (including no history) alerts; `success` after
/// `failed` is a recovery; everything else is quiet.
pub fn transition(prev: Option<&DagState>, run: &DagRun, now: &str) -> (Option<Kind>, DagState) {
    let was_failed = prev.is_some_and(|p| p.last_state == "failed");
    let kind = match (run.state.as_str(), was_failed) {
        ("failed", false) => Some(Kind::Failed),
        ("success", true) => Some(Kind::Recovered),
        _ => None,
    };
    let last_alerted = match kind {
        Some(_) => Some(now.to_string()),
        None => prev.and_then(|p| p.last_alerted.clone()),
    };
    let next = DagState {
        last_state: run.state.clone(),
        last_run_id: run.run_id.clone(),
        last_end_date: run.end_date.clone(),
        last_alerted,
    };
    (kind, next)
}

/// What one alert tick did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlertOutcome {
    /// Ended runs read from the API.
    pub runs_read: usize,
    /// `(kind, dag_id, run_id)` of each notice delivered.
    pub sent: Vec<(Kind, String, String)>,
}

/// Why an alert tick stopped.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The Airflow API could not be read.
    #[error("Airflow API: {0}")]
    Api(PortError),
    /// The state table could not be read or written.
    #[error("state table: {0}")]
    State(PortError),
    /// No target took a notice; the run is retried next tick.
    #[error("no alert target delivered the notice for {dag_id} run {run_id}")]
    Undelivered {
        /// The DAG.
        dag_id: String,
        /// The run.
        run_id: String,
    },
}

/// One alert tick.
pub async fn tick(
    airflow: &dyn AirflowApi,
    store: &dyn StateStore,
    notifiers: &[Box<dyn Notifier>],
    settings: &AlertSettings,
    now: DateTime<Utc>,
) -> Result<AlertOutcome, AlertError> {
    let cursor = state::load_cursor(store)
        .await
        .map_err(AlertError::State)?
        .and_then(|c| parse_time(&c))
        .unwrap_or(now - settings.first_lookback);
    let since = (cursor - settings.overlap).to_rfc3339_opts(SecondsFormat::Micros, true);
    let runs = ended_runs(airflow, &since).await?;
    let mut outcome = AlertOutcome {
        runs_read: runs.len(),
        ..AlertOutcome::default()
    };
    let now_text = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut dags: HashMap<String, Option<DagState>> = HashMap::new();
    let mut newest: Option<(DateTime<Utc>, String)> = None;
    let mut result = Ok(());
    let deps = Deps {
        airflow,
        store,
        notifiers,
        settings,
    };
    for run in &runs {
        if let Err(e) = process_run(&deps, run, &now_text, &mut dags, &mut outcome).await {
            // Later runs wait: the cursor must not pass a run whose notice is unsent.
            result = Err(e);
            break;
        }
        if let Some(end) = parse_time(&run.end_date) {
            if newest.as_ref().is_none_or(|(n, _)| end > *n) {
                newest = Some((end, run.end_date.clone()));
            }
        }
    }
    if let Some((_, end_date)) = newest {
        state::save_cursor(store, &end_date)
            .await
            .map_err(AlertError::State)?;
    }
    result.map(|()| outcome)
}

/// All runs that ended at or after `since`, in success or failed, oldest first.
async fn ended_runs(airflow: &dyn AirflowApi, since: &str) -> Result<Vec<DagRun>, AlertError> {
    let mut runs = Vec::new();
    for page_no in 0..MAX_PAGES {
        let page = airflow
            .ended_dag_runs(since, page_no * PAGE, PAGE)
            .await
            .map_err(AlertError::Api)?;
        let got = page.items.len() as u64;
        runs.extend(page.items);
        if got == 0 || (page_no + 1) * PAGE >= page.total_entries {
            break;
        }
    }
    runs.retain(|r| r.state == "success" || r.state == "failed");
    // The API orders by end date already; sorting again makes the order independent of
    // its time-zone formatting, and run id breaks ties deterministically.
    runs.sort_by(|a, b| {
        (parse_time(&a.end_date), &a.run_id).cmp(&(parse_time(&b.end_date), &b.run_id))
    });
    runs.dedup_by(|a, b| a.dag_id == b.dag_id && a.run_id == b.run_id);
    Ok(runs)
}

/// What one alert tick talks to, passed together.
struct Deps<'a> {
    airflow: &'a dyn AirflowApi,
    store: &'a dyn StateStore,
    notifiers: &'a [Box<dyn Notifier>],
    settings: &'a AlertSettings,
}

async fn process_run(
    deps: &Deps<'_>,
    run: &DagRun,
    now: &str,
    dags: &mut HashMap<String, Option<DagState>>,
    outcome: &mut AlertOutcome,
) -> Result<(), AlertError> {
    let Deps {
        airflow,
        store,
        notifiers,
        settings,
    } = *deps;
    if !dags.contains_key(&run.dag_id) {
        let loaded = state::load_dag(store, &run.dag_id)
            .await
            .map_err(AlertError::State)?;
        dags.insert(run.dag_id.clone(), loaded);
    }
    let prev = dags.get(&run.dag_id).and_then(Option::as_ref);
    if !is_new(prev, run) {
        return Ok(());
    }
    let (kind, next) = transition(prev, run, now);
    if let Some(kind) = kind {
        let notice = build_notice(airflow, settings, run, kind).await;
        deliver(notifiers, &notice).await?;
        outcome
            .sent
            .push((kind, run.dag_id.clone(), run.run_id.clone()));
    }
    state::save_dag(store, &run.dag_id, &next)
        .await
        .map_err(AlertError::State)?;
    dags.insert(run.dag_id.clone(), Some(next));
    Ok(())
}

async fn build_notice(
    airflow: &dyn AirflowApi,
    settings: &AlertSettings,
    run: &DagRun,
    kind: Kind,
) -> Notice {
    let failed_tasks = if kind == Kind::Failed {
        match airflow.failed_task_ids(&run.dag_id, &run.run_id).await {
            Ok(ids) => ids,
            Err(e) => {
                // The alert matters more than its detail: send it without the list.
                warn!(dag_id = %run.dag_id, error = %e, "could not list failed tasks");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    Notice {
        kind,
        stack: settings.stack.clone(),
        dag_id: run.dag_id.clone(),
        run_id: run.run_id.clone(),
        failed_tasks,
        url: run_url(&settings.ui_base_url, &run.dag_id, &run.run_id),
        end_date: run.end_date.clone(),
    }
}

/// Sends to every target; succeeds if at least one took it (retrying would repeat the
/// notice on the targets that did).
async fn deliver(notifiers: &[Box<dyn Notifier>], notice: &Notice) -> Result<(), AlertError> {
    if notifiers.is_empty() {
        warn!(dag_id = %notice.dag_id, "no alert target configured; notice only logged");
        info!(headline = %notice.headline(), "notice");
        return Ok(());
    }
    let mut delivered = 0;
    for n in notifiers {
        match n.send(notice).await {
            Ok(()) => delivered += 1,
            Err(e) => warn!(target_name = n.name(), error = %e, "alert not delivered"),
        }
    }
    if delivered == 0 {
        return Err(AlertError::Undelivered {
            dag_id: notice.dag_id.clone(),
            run_id: notice.run_id.clone(),
        });
    }
    info!(headline = %notice.headline(), run_id = %notice.run_id, delivered, "notice sent");
    Ok(())
}
