//! Queue-driven worker autoscaling: desired workers = ceil((queued + running) /
//! worker_concurrency), clamped to [min, max] (the Helm chart's KEDA formula).
//!
//! Scale-out is immediate; scale-in waits until fewer workers have been wanted for the
//! whole cool-down, and happens only after every busy worker is protected from
//! scale-in (ECS task scale-in protection), so ECS stops idle workers only.

use airflow_stack_contract::scaler::metrics;
use chrono::{DateTime, Duration, Utc};
use tracing::{info, warn};

use crate::ports::{AirflowApi, Metric, Metrics, PortError, StateStore, WorkerService, WorkerTask};
use crate::state;

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
}

/// Minutes a protection lasts: renewed every minute while the task is busy, so it
/// lapses on its own if the scaler stops running.
pub const PROTECTION_MINUTES: i32 = 60;

/// Task instances per page when reading running ones (Airflow's default maximum).
const PAGE: u64 = 100;
/// Pages of running task instances read at most (10,000 tasks).
const MAX_PAGES: u64 = 100;

/// The formula: workers needed for the work, clamped to the limits.
pub fn desired_workers(queued: u64, running: u64, limits: &Limits) -> u32 {
    let concurrency = u64::from(limits.concurrency.max(1));
    let needed = queued.saturating_add(running).div_ceil(concurrency);
    let needed = u32::try_from(needed).unwrap_or(u32::MAX);
    needed.clamp(limits.min, limits.max.max(limits.min))
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

/// Which worker tasks to protect (busy) and unprotect (idle), and which busy hosts
/// match no worker task (then scale-in is unsafe: a busy worker might be missed).
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

/// What one scaling tick saw and did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Queued task instances.
    pub queued: u64,
    /// Running task instances.
    pub running: u64,
    /// Workers wanted by the formula.
    pub desired: u32,
    /// The service's count before the tick.
    pub current: u32,
    /// The count set, if it changed.
    pub set_count: Option<u32>,
    /// The protection plan applied.
    pub protection: Protection,
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

/// The ports a scaling tick uses.
pub struct ScalePorts<'a> {
    /// Airflow REST API.
    pub airflow: &'a dyn AirflowApi,
    /// The worker service.
    pub workers: &'a dyn WorkerService,
    /// CloudWatch.
    pub metrics: &'a dyn Metrics,
    /// The state table.
    pub state: &'a dyn StateStore,
}

/// One tick: read the load, publish metrics, protect busy workers, set the count.
pub async fn tick(
    ports: &ScalePorts<'_>,
    limits: &Limits,
    now: DateTime<Utc>,
) -> Result<Outcome, ScaleError> {
    let (queued, busy_hosts, running) = read_load(ports.airflow).await?;
    let desired = desired_workers(queued, running, limits);
    publish(ports.metrics, queued, running, desired).await;
    let current = ports
        .workers
        .desired_count()
        .await
        .map_err(ScaleError::Ecs)?;
    let below_since = state::load_below_since(ports.state)
        .await
        .map_err(ScaleError::State)?;
    let mut decision = decide(desired, current, below_since, now, limits.cooldown);
    let tasks = ports.workers.tasks().await.map_err(ScaleError::Ecs)?;
    let protection = classify(&tasks, &busy_hosts);
    let protected_ok = apply_protection(ports.workers, &protection).await;
    if decision.set_count.is_some_and(|n| n < current)
        && !(protected_ok && protection.unmatched_hosts.is_empty())
    {
        // Scaling in now could stop a worker we failed to protect: wait for a tick in
        // which every busy worker is known and protected.
        warn!(
            unmatched_hosts = ?protection.unmatched_hosts,
            protected_ok, "scale-in postponed: not every busy worker is protected"
        );
        decision.set_count = None;
        decision.below_since = below_since.or(Some(now));
    }
    if let Some(count) = decision.set_count {
        ports
            .workers
            .set_desired_count(count)
            .await
            .map_err(ScaleError::Ecs)?;
        info!(
            from = current,
            to = count,
            queued,
            running,
            "worker count set"
        );
    }
    state::save_below_since(ports.state, decision.below_since)
        .await
        .map_err(ScaleError::State)?;
    Ok(Outcome {
        queued,
        running,
        desired,
        current,
        set_count: decision.set_count,
        protection,
    })
}

/// Queued count, host names of running task instances, running count.
async fn read_load(airflow: &dyn AirflowApi) -> Result<(u64, Vec<String>, u64), ScaleError> {
    let queued = airflow
        .task_instances("queued", 0, 1)
        .await
        .map_err(ScaleError::Api)?
        .total_entries;
    let mut hosts = Vec::new();
    let mut running = 0;
    for page_no in 0..MAX_PAGES {
        let page = airflow
            .task_instances("running", page_no * PAGE, PAGE)
            .await
            .map_err(ScaleError::Api)?;
        running = page.total_entries;
        let got = page.items.len() as u64;
        hosts.extend(page.items.into_iter().filter_map(|ti| ti.hostname));
        if got == 0 || (page_no + 1) * PAGE >= running {
            break;
        }
    }
    hosts.sort();
    hosts.dedup();
    Ok((queued, hosts, running))
}

/// Metrics are best effort: a CloudWatch hiccup must not stop scaling.
async fn publish(metrics: &dyn Metrics, queued: u64, running: u64, desired: u32) {
    let data = [
        Metric {
            name: metrics::QUEUED_TASKS,
            value: queued as f64,
        },
        Metric {
            name: metrics::RUNNING_TASKS,
            value: running as f64,
        },
        Metric {
            name: metrics::DESIRED_WORKERS,
            value: f64::from(desired),
        },
    ];
    if let Err(e) = metrics.put(&data).await {
        warn!(error = %e, "PutMetricData failed");
    }
}

/// Protects busy workers first, then unprotects idle ones; true when every busy
/// worker is protected.
async fn apply_protection(workers: &dyn WorkerService, p: &Protection) -> bool {
    let mut ok = true;
    if !p.busy.is_empty() {
        if let Err(e) = workers
            .set_protection(&p.busy, true, PROTECTION_MINUTES)
            .await
        {
            warn!(error = %e, "protecting busy workers failed");
            ok = false;
        }
    }
    if !p.idle.is_empty() {
        if let Err(e) = workers.set_protection(&p.idle, false, 0).await {
            // Idle workers that stay protected only delay scale-in; not fatal.
            warn!(error = %e, "unprotecting idle workers failed");
        }
    }
    ok
}
