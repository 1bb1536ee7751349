//! Queue-driven worker autoscaling.
//!
//! The formula is the Helm chart's KEDA query: ceil((queued + running) /
//! worker_concurrency), clamped to [min, max], counting only task instances on the
//! queues the worker service consumes. The target is the larger of that and the number
//! of busy workers: protection is per worker while the formula counts task slots, so
//! four workers running one task each ask for one worker, and lowering the count to
//! one would leave ECS with four protected tasks it cannot stop and a service that
//! stops any worker that looks idle the moment it picks up work. A busy worker is
//! never counted away.
//!
//! Scale-out is immediate. Scale-in waits until fewer workers have been wanted for the
//! whole cool-down, and then drains before it lowers the count ([`Drain`]):
//!
//! 1. on a complete reading, it tags K = running − target worker tasks that hold no
//!    task instance and are unprotected (youngest first) with the drain tag; their
//!    worker module stops consuming. The count is not lowered in that tick;
//! 2. on a later tick (at least [`DRAIN_SETTLE`] later, so the workers have polled
//!    their tags), once every tagged task is idle and unprotected on a complete
//!    reading, it protects the other running tasks that are unprotected for
//!    [`KEEPER_PROTECTION_MINUTES`] and lowers the count: ECS, which stops unprotected
//!    tasks only, can then pick only the drained ones. If the target has meanwhile
//!    dropped below what the drain leaves running, the drain first grows: it tags
//!    that many more idle, unprotected workers and waits [`DRAIN_SETTLE`] again, so no
//!    idle worker that is no longer wanted ends up protected as a keeper;
//! 3. a drain older than `drain_minutes` is cancelled (the tags removed), and so is
//!    any drain when the target is no longer below the count (scale-out untags before
//!    it raises the count); a tagged task that runs while no drain is pending (ECS
//!    stopped another, the state was lost) is untagged, so it consumes again.
//!
//! Which workers drain is read from the tags every tick; the state table keeps only
//! when the drain began (`drain_started`), for the time limit and the settle time. Tags
//! are the truth the workers act on, so deriving the drain from them cannot disagree
//! with the workers, survives a lost state item, and needs no list to reconcile with
//! tasks that stopped.
//!
//! Busy workers protect themselves (the worker module, through the ECS agent's
//! endpoint): the scaler never sets protection to false and no longer protects busy
//! workers; it reads protection (`GetTaskProtection`) to choose and to wait.
//!
//! Reads page through the running task instances ordered by their unique id (Airflow
//! 3's `order_by` accepts `id`; without it the list is sorted by `map_index`, which is
//! not unique, so offsets can repeat or skip items between pages). Offset paging still
//! cannot see every change between two pages: a task instance that starts while
//! another ends keeps the total and may shift the pages by one. A changed total, a
//! short page, an item seen twice or a failed page each mark the reading incomplete;
//! a shift that keeps the total and repeats nothing is the one case left, and it can
//! only hide a busy worker for one tick. Neither a drain nor its end happens on an
//! incomplete reading, and a worker that holds a task protects itself whatever the
//! scaler read.

use airflow_stack_contract::scaler::metrics;
use chrono::{DateTime, Duration, Utc};
use tracing::{info, warn};

use std::collections::HashSet;

use crate::budget::Deadline;
use crate::ports::{AirflowApi, Metric, PortError, StateStore, WorkerService, WorkerTask};
use crate::state::{self, ScalerState};

/// The stack file's autoscaling settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `[celery] worker_concurrency`: task slots per worker.
    pub concurrency: u32,
    /// Fewest workers (0 allows scale to zero).
    pub min: u32,
    /// Most workers.
    pub max: u32,
    /// How long fewer workers must be wanted before scaling in.
    pub cooldown: Duration,
    /// How long a drain may wait for its workers before it is cancelled.
    pub drain: Duration,
}

/// Minutes the workers kept at the end of a drain are protected: long enough for ECS
/// to act on the lowered count (it picks the tasks to stop within seconds), short
/// enough that a kept worker that goes idle is not held back from a later scale-in.
pub const KEEPER_PROTECTION_MINUTES: i32 = 5;

/// The least time between tagging and lowering the count. A worker reads its tags every
/// 5 s, checks every 2 s and waits at most 5 s for its consumer to acknowledge the
/// cancel (src/stack/worker/airflow_stack_worker.py): 12 s at worst, so 20 s leaves a
/// margin. Until then a tagged worker that is idle and unprotected may simply not have
/// seen its tag yet. Ticks are a minute apart on AWS, so there a drain ends at the
/// earliest on the tick after the tagging.
pub const DRAIN_SETTLE: Duration = Duration::seconds(20);

/// Task instances per page when reading running ones: Airflow's `[api]
/// maximum_page_limit` default, above which it silently returns fewer.
pub const PAGE: u64 = 100;
/// Pages of running task instances read at most (10,000 tasks); beyond that the
/// reading counts as incomplete.
const MAX_PAGES: u64 = 100;

/// The formula: workers needed for the work, clamped to the limits (not yet raised to
/// the busy workers: see [`target_workers`]).
pub fn desired_workers(queued: u64, running: u64, limits: &Limits) -> u32 {
    let concurrency = u64::from(limits.concurrency.max(1));
    let needed = queued.saturating_add(running).div_ceil(concurrency);
    let needed = u32::try_from(needed).unwrap_or(u32::MAX);
    needed.clamp(limits.min, limits.max.max(limits.min))
}

/// The count to aim for: the formula, raised to the busy workers. Busy workers are
/// capped at the worker tasks that run, because a busy worker is one of them: a
/// running task instance without a host name counts as one busy worker of its own
/// (its worker is unknown), and without the cap a burst of those could scale out far
/// beyond what is running. The result may exceed `max` when more workers are busy
/// than `max` allows (after `max` was lowered): those are running already, and
/// stopping them is not the scaler's to decide.
pub fn target_workers(formula: u32, busy_workers: u64, worker_tasks: usize) -> u32 {
    let busy = busy_workers.min(worker_tasks as u64);
    formula.max(u32::try_from(busy).unwrap_or(u32::MAX))
}

/// What one tick decides about the desired count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The count to set, if it changes.
    pub set_count: Option<u32>,
    /// Since when fewer workers than the current count have been wanted (kept in the
    /// state table across ticks); `None` while the current count is needed.
    pub below_since: Option<DateTime<Utc>>,
}

/// Decides the new count from the wanted one, the current one and the cool-down state.
pub fn decide(
    wanted: u32,
    current: u32,
    below_since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    cooldown: Duration,
) -> Decision {
    if wanted >= current {
        return Decision {
            set_count: (wanted > current).then_some(wanted),
            below_since: None,
        };
    }
    let since = below_since.unwrap_or(now);
    if now - since >= cooldown {
        Decision {
            set_count: Some(wanted),
            below_since: None,
        }
    } else {
        Decision {
            set_count: None,
            below_since: Some(since),
        }
    }
}

/// Which worker tasks hold a task instance (busy) and which hold none (idle), and which
/// busy hosts match no worker task (then scale-in is unsafe: a busy worker might be
/// missed). Only idle ones may be drained, and only when the tick knows every busy
/// worker (see [`Load::knows_every_busy_worker`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Protection {
    /// Tasks running at least one task instance.
    pub busy: Vec<String>,
    /// Tasks with a known IP running none.
    pub idle: Vec<String>,
    /// Host names of running task instances that match no worker task's IP.
    pub unmatched_hosts: Vec<String>,
}

/// Matches running task instances' host names to worker tasks' private IPs.
pub fn classify(tasks: &[WorkerTask], busy_hosts: &[String]) -> Protection {
    let busy_ips: Vec<String> = busy_hosts.iter().map(|h| host_to_ip(h)).collect();
    let mut p = Protection::default();
    for task in tasks {
        match &task.private_ip {
            Some(ip) if busy_ips.contains(ip) => p.busy.push(task.task_arn.clone()),
            Some(_) => p.idle.push(task.task_arn.clone()),
            // No ENI yet: the task runs nothing and cannot be matched; leave it alone.
            None => {}
        }
    }
    let known: Vec<&String> = tasks.iter().filter_map(|t| t.private_ip.as_ref()).collect();
    for (host, ip) in busy_hosts.iter().zip(&busy_ips) {
        if !known.contains(&ip) && !p.unmatched_hosts.contains(host) {
            p.unmatched_hosts.push(host.clone());
        }
    }
    p
}

/// The IP a task instance's host name stands for: the name itself when the stack's
/// `get_host_ip_address` is in effect, or the `ip-10-0-1-2[.domain]` form EC2-style
/// DNS names take if a user overrode the callable.
pub fn host_to_ip(host: &str) -> String {
    if let Some(rest) = host.strip_prefix("ip-") {
        let label = rest.split('.').next().unwrap_or(rest);
        let dotted = label.replace('-', ".");
        if dotted.parse::<std::net::Ipv4Addr>().is_ok() {
            return dotted;
        }
    }
    host.to_string()
}

/// What the Airflow API said about the load in one tick.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Load {
    /// Queued task instances on the worker queues: those queued or running, counted in
    /// one query, less the running ones counted right after (never below 0). So
    /// `queued + running` is the larger of the two counts: a task instance that starts
    /// between them is counted once.
    pub queued: u64,
    /// Running task instances on the worker queues (`total_entries` of the first page).
    pub running: u64,
    /// Distinct host names of the running task instances read.
    pub busy_hosts: Vec<String>,
    /// Running task instances read that have no host name yet.
    pub hostless: u64,
    /// Why the reading is incomplete; empty when every running task instance was read.
    pub gaps: Vec<String>,
    /// Whether a page after the first failed (the first failing ends the tick).
    pub read_failed: bool,
    /// Whether paging stopped because the invocation was close to its deadline.
    pub out_of_time: bool,
}

impl Load {
    /// Workers known to hold a task instance: one per distinct host, plus one per
    /// running task instance without a host (its worker is unknown, so it cannot be
    /// shown to share one). A lower bound when the reading is incomplete.
    pub fn busy_workers(&self) -> u64 {
        self.busy_hosts.len() as u64 + self.hostless
    }

    /// Whether every running task instance was read and placed on a host: only then
    /// may an idle-looking worker be unprotected or the count lowered.
    pub fn knows_every_busy_worker(&self) -> bool {
        self.gaps.is_empty() && self.hostless == 0
    }
}

/// The figures a tick publishes, filled in as it learns them; the handler publishes
/// them once at the end of the tick, with [`metrics::API_READ_FAILURES`]. A figure the
/// tick did not get to is left out rather than guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readings {
    /// Queued task instances.
    pub queued: Option<u64>,
    /// Running task instances.
    pub running: Option<u64>,
    /// Busy workers ([`Load::busy_workers`]).
    pub busy: Option<u64>,
    /// The target count ([`target_workers`]).
    pub desired: Option<u32>,
}

impl Readings {
    /// The data points: the known figures and the API read-failure flag (always).
    pub fn to_metrics(&self, api_read_failed: bool) -> Vec<Metric> {
        let known = [
            (metrics::QUEUED_TASKS, self.queued),
            (metrics::RUNNING_TASKS, self.running),
            (metrics::BUSY_WORKERS, self.busy),
            (metrics::DESIRED_WORKERS, self.desired.map(u64::from)),
        ];
        let mut data: Vec<Metric> = known
            .into_iter()
            .filter_map(|(name, value)| {
                value.map(|v| Metric {
                    name,
                    value: v as f64,
                })
            })
            .collect();
        data.push(Metric {
            name: metrics::API_READ_FAILURES,
            value: if api_read_failed { 1.0 } else { 0.0 },
        });
        data
    }
}

/// What a tick did about draining workers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Drain {
    /// Nothing: no scale-in due, or nothing to drain.
    #[default]
    None,
    /// These tasks were tagged to drain; the count waits for them.
    Started(Vec<String>),
    /// A drain is pending; these tagged tasks hold work or protection (or the workers
    /// have not had time to see the tag, or the reading was incomplete).
    Waiting(Vec<String>),
    /// Every tagged task was idle and unprotected: the kept tasks were protected for
    /// [`KEEPER_PROTECTION_MINUTES`] and the count lowered.
    Finished {
        /// The tagged tasks, which ECS may now stop.
        drained: Vec<String>,
        /// The tasks protected so that ECS stops the drained ones only.
        kept: Vec<String>,
    },
    /// The drain tag was removed from these tasks: they consume again.
    Cancelled {
        /// The tasks untagged.
        untagged: Vec<String>,
        /// Why.
        reason: String,
    },
}

/// What one scaling tick saw and did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Queued task instances.
    pub queued: u64,
    /// Running task instances.
    pub running: u64,
    /// Busy workers ([`Load::busy_workers`]).
    pub busy: u64,
    /// The target: the formula raised to the busy workers ([`target_workers`]).
    pub desired: u32,
    /// The service's desired count before the tick.
    pub current: u32,
    /// Worker tasks that run (listed with `desiredStatus=RUNNING`): more than
    /// `current` while ECS keeps protected tasks it was asked to stop.
    pub tasks: usize,
    /// The count set, if it changed.
    pub set_count: Option<u32>,
    /// Busy and idle worker tasks as this tick matched them.
    pub protection: Protection,
    /// What the tick did about draining.
    pub drain: Drain,
    /// Why the reading was incomplete (then no drain starts or ends); empty when
    /// complete.
    pub gaps: Vec<String>,
    /// Whether an Airflow read failed part-way (a page after the first).
    pub api_read_failed: bool,
    /// Whether paging stopped because the invocation was close to its deadline.
    pub out_of_time: bool,
}

/// Why a tick left the count unchanged without deciding anything.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// The Airflow API could not be read: the count is left as it is.
    #[error("Airflow API unreachable, worker count left unchanged: {0}")]
    Api(PortError),
    /// ECS could not be read or updated.
    #[error("ECS: {0}")]
    Ecs(PortError),
    /// The state table could not be read or written.
    #[error("state table: {0}")]
    State(PortError),
}

/// The ports a scaling tick uses (metrics are the handler's: see [`Readings`]).
pub struct ScalePorts<'a> {
    /// Airflow REST API.
    pub airflow: &'a dyn AirflowApi,
    /// The worker service.
    pub workers: &'a dyn WorkerService,
    /// The state table.
    pub state: &'a dyn StateStore,
}

/// What a scaling tick is asked to do, besides the ports.
#[derive(Debug, Clone, Copy)]
pub struct TickInput<'a> {
    /// The formula's limits and the cool-down.
    pub limits: &'a Limits,
    /// The Celery queues the worker service consumes.
    pub queues: &'a [String],
    /// The tick's time.
    pub now: DateTime<Utc>,
    /// When the invocation ends.
    pub deadline: Deadline,
}

/// One tick: read the load and the worker tasks, then scale out, drain, finish a drain
/// or cancel one (see the module docs). Fills `readings` as it goes, so the handler can
/// publish what was learnt even when a later step fails.
pub async fn tick(
    ports: &ScalePorts<'_>,
    input: TickInput<'_>,
    readings: &mut Readings,
) -> Result<Outcome, ScaleError> {
    let load = read_load(ports.airflow, input.queues, input.deadline).await?;
    readings.queued = Some(load.queued);
    readings.running = Some(load.running);
    readings.busy = Some(load.busy_workers());
    let current = ports
        .workers
        .desired_count()
        .await
        .map_err(ScaleError::Ecs)?;
    let tasks = ports.workers.tasks().await.map_err(ScaleError::Ecs)?;
    let formula = desired_workers(load.queued, load.running, input.limits);
    let desired = target_workers(formula, load.busy_workers(), tasks.len());
    readings.desired = Some(desired);
    let mut st = state::load_scaler(ports.state)
        .await
        .map_err(ScaleError::State)?;
    let protection = classify(&tasks, &load.busy_hosts);
    let tagged: Vec<String> = tasks
        .iter()
        .filter(|t| t.draining)
        .map(|t| t.task_arn.clone())
        .collect();
    let mut set_count = None;
    let drain = if desired >= current {
        // No scale-in wanted: any drain is cancelled, before a scale-out raises the
        // count (the drained workers are the first to take the new work).
        st = ScalerState::default();
        let reason = if desired > current {
            "scale-out"
        } else {
            "no scale-in wanted"
        };
        let drain = cancel(ports.workers, &tagged, reason).await;
        if desired > current {
            ports
                .workers
                .set_desired_count(desired)
                .await
                .map_err(ScaleError::Ecs)?;
            set_count = Some(desired);
        }
        drain
    } else {
        let since = *st.below_since.get_or_insert(input.now);
        if input.now - since < input.limits.cooldown {
            st.drain_started = None;
            cancel(ports.workers, &tagged, "cooling down, no drain pending").await
        } else {
            let wanted = ScaleIn {
                tasks: &tasks,
                protection: &protection,
                safe: load.knows_every_busy_worker() && protection.unmatched_hosts.is_empty(),
                desired,
                current,
                now: input.now,
                limit: input.limits.drain,
            };
            if !wanted.safe {
                warn!(
                    gaps = ?load.gaps,
                    hostless = load.hostless,
                    unmatched_hosts = ?protection.unmatched_hosts,
                    "scale-in postponed: not every busy worker is known"
                );
            }
            let (drain, set) = scale_in(ports.workers, &wanted, &mut st).await?;
            set_count = set;
            drain
        }
    };
    if let Some(count) = set_count {
        info!(
            from = current,
            to = count,
            tasks = tasks.len(),
            queued = load.queued,
            running = load.running,
            busy = load.busy_workers(),
            drain = ?drain,
            "worker count set"
        );
    }
    state::save_scaler(ports.state, st)
        .await
        .map_err(ScaleError::State)?;
    Ok(Outcome {
        queued: load.queued,
        running: load.running,
        busy: load.busy_workers(),
        desired,
        current,
        tasks: tasks.len(),
        set_count,
        protection,
        drain,
        gaps: load.gaps,
        api_read_failed: load.read_failed,
        out_of_time: load.out_of_time,
    })
}

/// A scale-in that is due (the cool-down has passed).
struct ScaleIn<'a> {
    tasks: &'a [WorkerTask],
    protection: &'a Protection,
    /// Whether the reading is complete and every busy host matched a task.
    safe: bool,
    desired: u32,
    current: u32,
    now: DateTime<Utc>,
    limit: Duration,
}

/// Starts, waits for, finishes or cancels the drain of a due scale-in; returns what it
/// did and the count it set.
async fn scale_in(
    workers: &dyn WorkerService,
    c: &ScaleIn<'_>,
    st: &mut ScalerState,
) -> Result<(Drain, Option<u32>), ScaleError> {
    let tagged: Vec<&WorkerTask> = c.tasks.iter().filter(|t| t.draining).collect();
    let tagged_arns: Vec<String> = tagged.iter().map(|t| t.task_arn.clone()).collect();
    match st.drain_started {
        Some(started) if !tagged.is_empty() => {
            if c.now - started >= c.limit {
                st.drain_started = None;
                warn!(
                    tasks = ?tagged_arns,
                    minutes = c.limit.num_minutes(),
                    "drain cancelled: its workers did not become idle in time"
                );
                let reason = format!("not idle within {} minutes", c.limit.num_minutes());
                return Ok((cancel(workers, &tagged_arns, &reason).await, None));
            }
            let more = grow_candidates(c, tagged.len());
            if !more.is_empty() {
                // The target dropped below what the pending drain leaves: drain these
                // too, or the drain would end protecting them as keepers (idle workers
                // nobody wants, held for KEEPER_PROTECTION_MINUTES). The clock restarts
                // so they have DRAIN_SETTLE to see their tag; each growth tags a worker
                // more, so this ends.
                st.drain_started = Some(c.now);
                if let Err(e) = workers.tag_drain(&more).await {
                    warn!(error = %e, "tagging more workers to drain failed");
                }
                info!(tasks = ?more, "drain grown");
                return Ok((Drain::Started(more), None));
            }
            let not_ready: Vec<String> = tagged
                .iter()
                .filter(|t| t.protected || !c.protection.idle.contains(&t.task_arn))
                .map(|t| t.task_arn.clone())
                .collect();
            if c.now - started < DRAIN_SETTLE || !c.safe {
                return Ok((Drain::Waiting(tagged_arns), None));
            }
            if !not_ready.is_empty() {
                info!(waiting_for = ?not_ready, "drain waits for busy or protected workers");
                return Ok((Drain::Waiting(not_ready), None));
            }
            // Every tagged task is idle and unprotected: protect the others that are
            // not, so ECS can stop only the drained ones.
            let kept: Vec<String> = c
                .tasks
                .iter()
                .filter(|t| !t.draining && !t.protected)
                .map(|t| t.task_arn.clone())
                .collect();
            if !kept.is_empty() {
                if let Err(e) = workers.protect(&kept, KEEPER_PROTECTION_MINUTES).await {
                    warn!(error = %e, "protecting the kept workers failed: the drain waits");
                    return Ok((Drain::Waiting(Vec::new()), None));
                }
            }
            let remaining = u32::try_from(c.tasks.len() - tagged.len()).unwrap_or(u32::MAX);
            let count = c.desired.max(remaining);
            st.drain_started = None;
            if count <= c.desired {
                st.below_since = None;
            }
            let set = (count < c.current).then_some(count);
            if let Some(n) = set {
                workers
                    .set_desired_count(n)
                    .await
                    .map_err(ScaleError::Ecs)?;
            }
            Ok((
                Drain::Finished {
                    drained: tagged_arns,
                    kept,
                },
                set,
            ))
        }
        _ => {
            st.drain_started = None;
            if !tagged.is_empty() {
                // Tagged, yet no drain is pending: left over from a drain ECS ended
                // otherwise, or from lost state. Let them consume; drain next tick.
                return Ok((
                    cancel(workers, &tagged_arns, "no drain pending").await,
                    None,
                ));
            }
            if !c.safe {
                return Ok((Drain::None, None));
            }
            let k = c.tasks.len().saturating_sub(c.desired as usize);
            if k == 0 {
                // Fewer tasks run than the count asks for (some never started): the
                // lower count stops none of them.
                st.below_since = None;
                workers
                    .set_desired_count(c.desired)
                    .await
                    .map_err(ScaleError::Ecs)?;
                return Ok((Drain::None, Some(c.desired)));
            }
            let chosen = drain_candidates(c, k);
            if chosen.is_empty() {
                info!("scale-in waits: every worker is busy or protected");
                return Ok((Drain::None, None));
            }
            st.drain_started = Some(c.now);
            if let Err(e) = workers.tag_drain(&chosen).await {
                // The tasks tagged before the failure drain; the next tick reads which.
                warn!(error = %e, "tagging workers to drain failed");
            }
            info!(tasks = ?chosen, "drain started");
            Ok((Drain::Started(chosen), None))
        }
    }
}

/// Up to `k` untagged worker tasks that may drain (idle and unprotected), youngest
/// first (the oldest have warm caches and the longest logs to keep), then by ARN for a
/// stable order.
fn drain_candidates(c: &ScaleIn<'_>, k: usize) -> Vec<String> {
    let mut candidates: Vec<&WorkerTask> = c
        .tasks
        .iter()
        .filter(|t| !t.draining && !t.protected && c.protection.idle.contains(&t.task_arn))
        .collect();
    candidates.sort_by(|a, b| {
        b.started_at
            .cmp(&a.started_at)
            .then_with(|| a.task_arn.cmp(&b.task_arn))
    });
    candidates
        .into_iter()
        .take(k)
        .map(|t| t.task_arn.clone())
        .collect()
}

/// The workers a pending drain of `tagged` tasks should take on as well: when the
/// target is below what the drain leaves running, up to the difference of the idle,
/// unprotected, untagged ones. None on an incomplete reading.
fn grow_candidates(c: &ScaleIn<'_>, tagged: usize) -> Vec<String> {
    let left = c.tasks.len().saturating_sub(tagged);
    let extra = left.saturating_sub(c.desired as usize);
    if !c.safe || extra == 0 {
        return Vec::new();
    }
    drain_candidates(c, extra)
}

/// Removes the drain tag from `tagged` (nothing when empty); a failure is logged and
/// retried by the next tick, which still sees the tags.
async fn cancel(workers: &dyn WorkerService, tagged: &[String], reason: &str) -> Drain {
    if tagged.is_empty() {
        return Drain::None;
    }
    if let Err(e) = workers.untag_drain(tagged).await {
        warn!(error = %e, reason, "removing drain tags failed");
    } else {
        info!(tasks = ?tagged, reason, "drain tags removed");
    }
    Drain::Cancelled {
        untagged: tagged.to_vec(),
        reason: reason.to_owned(),
    }
}

/// Reads the queued-or-running count and every running task instance on `queues`, page
/// by page. Fails only when nothing could be read (the count or the first page);
/// anything that goes wrong later leaves a partial [`Load`] with its gaps named.
pub async fn read_load(
    airflow: &dyn AirflowApi,
    queues: &[String],
    deadline: Deadline,
) -> Result<Load, ScaleError> {
    // Queued and running counted in one query (one database snapshot): counted in two,
    // a task instance that starts between them is counted twice, and the formula asks
    // for a worker too many (the e2e's burst did: 3 queued + 2 running out of 4).
    // limit=1: only total_entries matters; Airflow rejects limit=0 on some versions.
    let active = airflow
        .task_instances(&["queued", "running"], queues, 0, 1)
        .await
        .map_err(ScaleError::Api)?
        .total_entries;
    let first = airflow
        .task_instances(&["running"], queues, 0, PAGE)
        .await
        .map_err(ScaleError::Api)?;
    let mut load = Load {
        queued: active.saturating_sub(first.total_entries),
        running: first.total_entries,
        ..Load::default()
    };
    let mut seen = RunningSeen::default();
    seen.take(first.items);
    for page_no in 1..MAX_PAGES {
        if seen.count >= load.running {
            break;
        }
        if !deadline.has_room() {
            load.gaps.push("out of time before the last page".into());
            load.out_of_time = true;
            break;
        }
        match airflow
            .task_instances(&["running"], queues, page_no * PAGE, PAGE)
            .await
        {
            Err(e) => {
                warn!(error = %e, page = page_no, "reading running task instances failed");
                load.read_failed = true;
                load.gaps.push(format!("page {page_no} failed"));
                break;
            }
            Ok(page) if page.total_entries != load.running => {
                load.gaps.push(format!(
                    "the running total changed from {} to {} while paging",
                    load.running, page.total_entries
                ));
                seen.take(page.items);
                break;
            }
            Ok(page) if page.items.is_empty() => break,
            Ok(page) => seen.take(page.items),
        }
    }
    if seen.count != load.running && load.gaps.is_empty() {
        load.gaps.push(format!(
            "read {} of {} running task instances",
            seen.count, load.running
        ));
    }
    if seen.repeated > 0 {
        load.gaps.push(format!(
            "{} task instances appeared on two pages",
            seen.repeated
        ));
    }
    load.hostless = seen.hostless;
    load.busy_hosts = seen.hosts.into_iter().collect();
    load.busy_hosts.sort();
    Ok(load)
}

/// The running task instances taken in so far.
#[derive(Default)]
struct RunningSeen {
    ids: HashSet<String>,
    hosts: HashSet<String>,
    hostless: u64,
    count: u64,
    repeated: u64,
}

impl RunningSeen {
    fn take(&mut self, items: Vec<crate::ports::TaskInstance>) {
        for ti in items {
            // An empty id (an API too old to send it) cannot be checked for repeats.
            if !ti.id.is_empty() && !self.ids.insert(ti.id) {
                self.repeated += 1;
                continue;
            }
            self.count += 1;
            match ti.hostname {
                Some(host) => {
                    self.hosts.insert(host);
                }
                None => self.hostless += 1,
            }
        }
    }
}
