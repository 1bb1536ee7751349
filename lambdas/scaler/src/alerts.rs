//! Failed-run alerts: one alert when a DAG turns failed, silence while it stays
//! failed, one recovery notice when it succeeds again.
//!
//! Each tick reads the DAG runs that ended since the cursor (minus a small overlap, so a
//! run committed a little late is not missed), oldest first, and runs each through the
//! per-DAG state machine [`transition`]. Runs already seen are recognised by the DAG's
//! last run id and end date, so the overlap never alerts twice.
//!
//! # Exactly once, with ticks that overlap
//!
//! Two invocations can run at once (a slow tick and the next scheduled one, or a
//! Lambda retry), so every write that decides a notice is conditional
//! ([`StateStore::put_if`]):
//!
//! 1. **Claim before sending.** A run that causes a notice is claimed by creating
//!    `claim#<dag>#<run>` only if absent ([`state::claim`]). Only the tick that created
//!    it sends. A tick that finds the claim marked sent skips the notice; one that
//!    finds it held (not sent, lease running) leaves the run and that DAG's later runs
//!    to the holder and does not move the cursor past them.
//! 2. **Record after sending.** The claimant marks the claim sent ([`state::mark_sent`]);
//!    if delivery failed it releases the claim so the next tick retries at once.
//! 3. **Advance the DAG only from what was read.** The per-DAG state is written only if
//!    its version is still the one read ([`state::save_dag_if`]); on a conflict the tick
//!    reads again and decides again, so an older `failed` never overwrites a newer
//!    `success` and the state only moves forward in (end date, run id) order.
//!
//! A claim whose holder crashed is taken over once its lease ([`state::CLAIM_LEASE`],
//! 5 minutes) has ended without the claim being marked sent: the notice then goes out
//! late instead of never.
//!
//! **The window left:** a crash (or a timeout) after a target accepted the notice and
//! before the claim is marked sent. The claim then looks abandoned, and the tick that
//! takes it over after the lease sends the notice a second time. Closing it would need
//! the targets to deduplicate (Slack and SNS standard topics do not); the tick keeps it
//! small by not starting a send with less than [`crate::budget::RESERVE`] left.

use std::collections::HashSet;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use tracing::{info, warn};

use crate::budget::Deadline;
use crate::notify::{run_url, Kind, Notice};
use crate::ports::{AirflowApi, DagRun, Notifier, PortError, StateStore};
use crate::state::{self, Claim, DagState};

/// Runs per page (Airflow's default maximum page size).
const PAGE: u64 = 100;
/// Pages read per tick at most (10,000 runs); the rest waits for the next tick.
const MAX_PAGES: u64 = 100;
/// Times one run is re-read after another tick changed its DAG's state in between.
const MAX_CONFLICTS: usize = 5;

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

/// True when `run` is newer than what the DAG's state has already seen, in (end date,
/// run id) order: the order runs are processed in, so two ticks agree on it.
pub fn is_new(prev: Option<&DagState>, run: &DagRun) -> bool {
    let Some(prev) = prev else { return true };
    if prev.last_run_id == run.run_id {
        return false;
    }
    match (parse_time(&run.end_date), parse_time(&prev.last_end_date)) {
        (Some(run_end), Some(last_end)) => {
            (run_end, run.run_id.as_str()) > (last_end, prev.last_run_id.as_str())
        }
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
    /// Runs left to another tick that holds their notice's claim.
    pub deferred: usize,
    /// Whether the tick stopped before the end because time ran short.
    pub out_of_time: bool,
    /// Whether an Airflow read failed (a failed-task list: the notice went without it).
    pub api_read_failed: bool,
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
    /// Other ticks kept changing this DAG's state; the run is retried next tick.
    #[error("the state of DAG {dag_id} kept changing under this tick")]
    Contention {
        /// The DAG.
        dag_id: String,
    },
}

/// What processing one run came to.
enum Step {
    /// The run is accounted for (notice sent or not needed, DAG state advanced).
    Done,
    /// Another tick holds the run's claim: it and the DAG's later runs are its.
    Deferred,
    /// Too little time left to start a send.
    OutOfTime,
}

/// What one alert tick talks to, passed together.
pub struct AlertPorts<'a> {
    /// The Airflow API.
    pub airflow: &'a dyn AirflowApi,
    /// The state table.
    pub store: &'a dyn StateStore,
    /// The alert targets.
    pub notifiers: &'a [Box<dyn Notifier>],
}

/// One alert tick.
pub async fn tick(
    ports: &AlertPorts<'_>,
    settings: &AlertSettings,
    now: DateTime<Utc>,
    deadline: Deadline,
) -> Result<AlertOutcome, AlertError> {
    let store = ports.store;
    let cursor = state::load_cursor(store)
        .await
        .map_err(AlertError::State)?
        .and_then(|c| parse_time(&c))
        .unwrap_or(now - settings.first_lookback);
    let since = (cursor - settings.overlap).to_rfc3339_opts(SecondsFormat::Micros, true);
    let runs = ended_runs(ports.airflow, &since).await?;
    let mut outcome = AlertOutcome {
        runs_read: runs.len(),
        ..AlertOutcome::default()
    };
    let ctx = RunContext {
        ports,
        settings,
        now,
        now_text: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        deadline,
    };
    // DAGs whose next run is another tick's: their later runs must wait too, and the
    // cursor stops before the first such run.
    let mut waiting: HashSet<&str> = HashSet::new();
    let mut newest: Option<(DateTime<Utc>, String)> = None;
    let mut result = Ok(());
    for run in &runs {
        if waiting.contains(run.dag_id.as_str()) {
            outcome.deferred += 1;
            continue;
        }
        match process_run(&ctx, run, &mut outcome).await {
            Ok(Step::Done) => {}
            Ok(Step::Deferred) => {
                waiting.insert(&run.dag_id);
                outcome.deferred += 1;
                continue;
            }
            Ok(Step::OutOfTime) => {
                warn!("alerts stopped: less than the reserve left in the invocation");
                outcome.out_of_time = true;
                break;
            }
            Err(e) => {
                // Later runs wait: the cursor must not pass a run whose notice is unsent.
                result = Err(e);
                break;
            }
        }
        if waiting.is_empty() {
            advance(&mut newest, run);
        }
    }
    if let Some((_, end_date)) = newest {
        state::save_cursor(store, &end_date)
            .await
            .map_err(AlertError::State)?;
    }
    result.map(|()| outcome)
}

/// Moves the would-be cursor to `run`'s end date if that is later.
fn advance(newest: &mut Option<(DateTime<Utc>, String)>, run: &DagRun) {
    if let Some(end) = parse_time(&run.end_date) {
        if newest.as_ref().is_none_or(|(n, _)| end > *n) {
            *newest = Some((end, run.end_date.clone()));
        }
    }
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

/// What processing a run needs besides the run.
struct RunContext<'a> {
    ports: &'a AlertPorts<'a>,
    settings: &'a AlertSettings,
    now: DateTime<Utc>,
    now_text: String,
    deadline: Deadline,
}

/// Runs one run through its DAG's state machine: notice (once) and state update (only
/// from the state read), re-reading when another tick got there in between.
async fn process_run(
    ctx: &RunContext<'_>,
    run: &DagRun,
    outcome: &mut AlertOutcome,
) -> Result<Step, AlertError> {
    let store = ctx.ports.store;
    for _ in 0..MAX_CONFLICTS {
        let read = state::load_dag(store, &run.dag_id)
            .await
            .map_err(AlertError::State)?;
        if !is_new(read.state.as_ref(), run) {
            return Ok(Step::Done);
        }
        let (kind, next) = transition(read.state.as_ref(), run, &ctx.now_text);
        if let Some(kind) = kind {
            match notify_once(ctx, run, kind, outcome).await? {
                Step::Done => {}
                other => return Ok(other),
            }
        }
        if state::save_dag_if(store, &run.dag_id, &next, &read)
            .await
            .map_err(AlertError::State)?
        {
            return Ok(Step::Done);
        }
        info!(dag_id = %run.dag_id, run_id = %run.run_id, "DAG state changed under this tick; reading it again");
    }
    Err(AlertError::Contention {
        dag_id: run.dag_id.clone(),
    })
}

/// Sends the run's notice if this tick wins its claim, and records that it was sent.
async fn notify_once(
    ctx: &RunContext<'_>,
    run: &DagRun,
    kind: Kind,
    outcome: &mut AlertOutcome,
) -> Result<Step, AlertError> {
    let store = ctx.ports.store;
    if !ctx.deadline.has_room() {
        // Checked before claiming: a claim taken and then not used would hold the
        // notice back for a whole lease.
        return Ok(Step::OutOfTime);
    }
    let version = match state::claim(store, &run.dag_id, &run.run_id, ctx.now)
        .await
        .map_err(AlertError::State)?
    {
        Claim::Sent => return Ok(Step::Done),
        Claim::Held => return Ok(Step::Deferred),
        Claim::Won { version } => version,
    };
    let (notice, detail_read) = build_notice(ctx.ports.airflow, ctx.settings, run, kind).await;
    outcome.api_read_failed |= !detail_read;
    if let Err(e) = deliver(ctx.ports.notifiers, &notice).await {
        if let Err(release_error) =
            state::release(store, &run.dag_id, &run.run_id, &version, ctx.now).await
        {
            // The claim then lapses with its lease: the retry waits a few minutes.
            warn!(error = %release_error, "could not release the claim after a failed delivery");
        }
        return Err(e);
    }
    outcome
        .sent
        .push((kind, run.dag_id.clone(), run.run_id.clone()));
    let recorded = state::mark_sent(store, &run.dag_id, &run.run_id, &version, ctx.now)
        .await
        .map_err(AlertError::State)?;
    if !recorded {
        warn!(dag_id = %run.dag_id, run_id = %run.run_id,
            "the claim was taken over while sending: the notice may go out twice");
    }
    Ok(Step::Done)
}

/// The notice, and whether its details could be read (the failed-task list).
async fn build_notice(
    airflow: &dyn AirflowApi,
    settings: &AlertSettings,
    run: &DagRun,
    kind: Kind,
) -> (Notice, bool) {
    let mut detail_read = true;
    let failed_tasks = if kind == Kind::Failed {
        match airflow.failed_task_ids(&run.dag_id, &run.run_id).await {
            Ok(ids) => ids,
            Err(e) => {
                // The alert matters more than its detail: send it without the list.
                warn!(dag_id = %run.dag_id, error = %e, "could not list failed tasks");
                detail_read = false;
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let notice = Notice {
        kind,
        stack: settings.stack.clone(),
        dag_id: run.dag_id.clone(),
        run_id: run.run_id.clone(),
        failed_tasks,
        url: run_url(&settings.ui_base_url, &run.dag_id, &run.run_id),
        end_date: run.end_date.clone(),
    };
    (notice, detail_read)
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
