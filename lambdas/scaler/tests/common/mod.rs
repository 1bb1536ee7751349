//! Fakes of the scaler's ports: an in-memory Airflow, worker service, metrics sink,
//! state table and notifier, each recording what was asked of it.
//!
//! The state table and the notifier yield to the scheduler on every call, as real
//! network calls would, so two ticks joined with `tokio::join!` interleave.

#![allow(dead_code)]

pub mod emulator;
pub mod http;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use airflow_scaler::notify::Notice;
use airflow_scaler::ports::*;
use async_trait::async_trait;

/// One `task_instances` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TiCall {
    pub states: Vec<String>,
    pub queues: Vec<String>,
    pub offset: u64,
    pub limit: u64,
}

/// Airflow with task instances and ended DAG runs in memory.
#[derive(Default)]
pub struct FakeAirflow {
    pub queued: u64,
    pub running: Mutex<Vec<TaskInstance>>,
    pub runs: Mutex<Vec<DagRun>>,
    pub failed_tasks: BTreeMap<(String, String), Vec<String>>,
    /// Every `ended_dag_runs` call: (since, offset, limit).
    pub run_calls: Mutex<Vec<(String, u64, u64)>>,
    /// Every `task_instances` call.
    pub ti_calls: Mutex<Vec<TiCall>>,
    /// Running pages at or after this offset fail.
    pub fail_running_from: Option<u64>,
    /// Added to `total_entries` of running pages after the first (a total that moves
    /// while paging).
    pub running_total_drift: u64,
    /// `failed_task_ids` fails.
    pub fail_failed_tasks: bool,
    /// Task instances that leave the queue and start running right after a count that
    /// includes queued ones has been answered (once): a start between two reads.
    pub start_after_count: Mutex<Vec<TaskInstance>>,
    /// How many of `queued` have started so far.
    pub started: Mutex<u64>,
}

impl FakeAirflow {
    /// Airflow with these running task instances.
    pub fn running(tis: Vec<TaskInstance>) -> FakeAirflow {
        FakeAirflow {
            running: Mutex::new(tis),
            ..FakeAirflow::default()
        }
    }

    pub fn set_running(&self, tis: Vec<TaskInstance>) {
        *self.running.lock().unwrap() = tis;
    }

    /// Moves [`FakeAirflow::start_after_count`] from the queue to the running list.
    fn start_queued_after_count(&self) {
        let starting: Vec<TaskInstance> =
            self.start_after_count.lock().unwrap().drain(..).collect();
        *self.started.lock().unwrap() += starting.len() as u64;
        self.running.lock().unwrap().extend(starting);
    }

    pub fn ti_calls(&self) -> Vec<TiCall> {
        self.ti_calls.lock().unwrap().clone()
    }

    pub fn push_run(&self, dag: &str, run: &str, state: &str, end: &str) {
        self.runs.lock().unwrap().push(DagRun {
            dag_id: dag.into(),
            run_id: run.into(),
            state: state.into(),
            end_date: end.into(),
        });
    }
}

fn page<T: Clone>(items: &[T], offset: u64, limit: u64) -> Page<T> {
    Page {
        items: items
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .cloned()
            .collect(),
        total_entries: items.len() as u64,
    }
}

#[async_trait]
impl AirflowApi for FakeAirflow {
    async fn task_instances(
        &self,
        states: &[&str],
        queues: &[String],
        offset: u64,
        limit: u64,
    ) -> Result<Page<TaskInstance>, PortError> {
        self.ti_calls.lock().unwrap().push(TiCall {
            states: states.iter().map(|s| s.to_string()).collect(),
            queues: queues.to_vec(),
            offset,
            limit,
        });
        if let Some(other) = states.iter().find(|s| !["queued", "running"].contains(s)) {
            return Err(PortError(format!("unexpected state {other}")));
        }
        if states.contains(&"queued") {
            // A count: the queued (and running, when asked) task instances, one figure.
            let queued = self.queued - *self.started.lock().unwrap();
            let running = if states.contains(&"running") {
                self.running.lock().unwrap().len() as u64
            } else {
                0
            };
            self.start_queued_after_count();
            return Ok(Page {
                items: Vec::new(),
                total_entries: queued + running,
            });
        }
        if self.fail_running_from.is_some_and(|from| offset >= from) {
            return Err(PortError("GET taskInstances answered HTTP 503".into()));
        }
        let mut p = page(&self.running.lock().unwrap(), offset, limit);
        if offset > 0 {
            p.total_entries += self.running_total_drift;
        }
        Ok(p)
    }

    async fn ended_dag_runs(
        &self,
        since: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Page<DagRun>, PortError> {
        self.run_calls
            .lock()
            .unwrap()
            .push((since.to_string(), offset, limit));
        let since = chrono::DateTime::parse_from_rfc3339(since).unwrap();
        let runs: Vec<DagRun> = self
            .runs
            .lock()
            .unwrap()
            .iter()
            .filter(|r| chrono::DateTime::parse_from_rfc3339(&r.end_date).unwrap() >= since)
            .cloned()
            .collect();
        Ok(page(&runs, offset, limit))
    }

    async fn failed_task_ids(&self, dag_id: &str, run_id: &str) -> Result<Vec<String>, PortError> {
        if self.fail_failed_tasks {
            return Err(PortError("GET taskInstances answered HTTP 500".into()));
        }
        Ok(self
            .failed_tasks
            .get(&(dag_id.to_string(), run_id.to_string()))
            .cloned()
            .unwrap_or_default())
    }
}

/// One call made to the fake worker service, in order. There is no "unprotect": the
/// port cannot express it (the scaler never clears protection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EcsCall {
    Protect(Vec<String>, i32),
    Tag(Vec<String>),
    Untag(Vec<String>),
    SetCount(u32),
}

/// Who protected a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protector {
    /// The worker module, while it holds a message.
    Worker,
    /// The scaler, for the workers it keeps at the end of a drain.
    Scaler,
}

/// A worker service with a count and tasks. Like ECS, lowering the count below the
/// tasks that run stops unprotected tasks only; protected ones keep running. The
/// workers' own behaviour (the worker module) is [`FakeWorkers::workers_act`].
#[derive(Default)]
pub struct FakeWorkers {
    pub count: Mutex<u32>,
    pub tasks: Mutex<Vec<WorkerTask>>,
    pub protected: Mutex<BTreeMap<String, Protector>>,
    pub calls: Mutex<Vec<EcsCall>>,
    pub fail_protect: bool,
}

impl FakeWorkers {
    pub fn new(count: u32, tasks: &[(&str, &str)]) -> FakeWorkers {
        FakeWorkers {
            count: Mutex::new(count),
            tasks: Mutex::new(
                tasks
                    .iter()
                    .enumerate()
                    .map(|(i, (arn, ip))| WorkerTask {
                        task_arn: arn.to_string(),
                        private_ip: Some(ip.to_string()),
                        // Listed oldest first.
                        started_at: Some(1_000 + i as i64),
                        ..WorkerTask::default()
                    })
                    .collect(),
            ),
            ..FakeWorkers::default()
        }
    }

    /// What the worker module does between two ticks: a worker holding a task instance
    /// (by IP, as Airflow reports its host) protects its task; one holding none clears
    /// the protection it set itself (never the scaler's).
    pub fn workers_act(&self, airflow: &FakeAirflow) {
        let busy: BTreeSet<String> = airflow
            .running
            .lock()
            .unwrap()
            .iter()
            .filter_map(|ti| ti.hostname.clone())
            .collect();
        let tasks = self.tasks.lock().unwrap().clone();
        let mut protected = self.protected.lock().unwrap();
        for t in tasks {
            let holds = t.private_ip.as_ref().is_some_and(|ip| busy.contains(ip));
            if holds {
                protected.insert(t.task_arn.clone(), Protector::Worker);
            } else if protected.get(&t.task_arn) == Some(&Protector::Worker) {
                protected.remove(&t.task_arn);
            }
        }
    }

    /// The scaler's short protections lapse.
    pub fn expire_scaler_protection(&self) {
        self.protected
            .lock()
            .unwrap()
            .retain(|_, by| *by != Protector::Scaler);
    }

    /// ARNs of the tasks that run.
    pub fn task_arns(&self) -> Vec<String> {
        self.tasks
            .lock()
            .unwrap()
            .iter()
            .map(|t| t.task_arn.clone())
            .collect()
    }

    /// ARNs of the tasks with the drain tag.
    pub fn tagged(&self) -> Vec<String> {
        self.tasks
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.draining)
            .map(|t| t.task_arn.clone())
            .collect()
    }

    pub fn protected(&self) -> Vec<String> {
        self.protected.lock().unwrap().keys().cloned().collect()
    }

    /// What ECS does with a count below the running tasks: stop unprotected ones.
    fn stop_unprotected_above(&self, count: u32) {
        let protected = self.protected.lock().unwrap().clone();
        let mut tasks = self.tasks.lock().unwrap();
        while tasks.len() > count as usize {
            let Some(i) = tasks
                .iter()
                .position(|t| !protected.contains_key(&t.task_arn))
            else {
                break;
            };
            tasks.remove(i);
        }
    }

    pub fn calls(&self) -> Vec<EcsCall> {
        self.calls.lock().unwrap().clone()
    }

    pub fn count(&self) -> u32 {
        *self.count.lock().unwrap()
    }

    fn set_tag(&self, task_arns: &[String], on: bool) {
        for t in self.tasks.lock().unwrap().iter_mut() {
            if task_arns.contains(&t.task_arn) {
                t.draining = on;
            }
        }
    }
}

#[async_trait]
impl WorkerService for FakeWorkers {
    async fn desired_count(&self) -> Result<u32, PortError> {
        Ok(self.count())
    }

    async fn tasks(&self) -> Result<Vec<WorkerTask>, PortError> {
        let protected = self.protected.lock().unwrap().clone();
        Ok(self
            .tasks
            .lock()
            .unwrap()
            .iter()
            .map(|t| WorkerTask {
                protected: protected.contains_key(&t.task_arn),
                ..t.clone()
            })
            .collect())
    }

    async fn protect(
        &self,
        task_arns: &[String],
        expires_in_minutes: i32,
    ) -> Result<(), PortError> {
        if self.fail_protect {
            return Err(PortError("UpdateTaskProtection: AccessDenied".into()));
        }
        let mut set = self.protected.lock().unwrap();
        for arn in task_arns {
            set.entry(arn.clone()).or_insert(Protector::Scaler);
        }
        self.calls
            .lock()
            .unwrap()
            .push(EcsCall::Protect(task_arns.to_vec(), expires_in_minutes));
        Ok(())
    }

    async fn tag_drain(&self, task_arns: &[String]) -> Result<(), PortError> {
        self.set_tag(task_arns, true);
        self.calls
            .lock()
            .unwrap()
            .push(EcsCall::Tag(task_arns.to_vec()));
        Ok(())
    }

    async fn untag_drain(&self, task_arns: &[String]) -> Result<(), PortError> {
        self.set_tag(task_arns, false);
        self.calls
            .lock()
            .unwrap()
            .push(EcsCall::Untag(task_arns.to_vec()));
        Ok(())
    }

    async fn set_desired_count(&self, count: u32) -> Result<(), PortError> {
        *self.count.lock().unwrap() = count;
        self.calls.lock().unwrap().push(EcsCall::SetCount(count));
        self.stop_unprotected_above(count);
        Ok(())
    }
}

/// Metrics kept in memory.
#[derive(Default)]
pub struct FakeMetrics(pub Mutex<Vec<Metric>>);

#[async_trait]
impl Metrics for FakeMetrics {
    async fn put(&self, metrics: &[Metric]) -> Result<(), PortError> {
        self.0.lock().unwrap().extend_from_slice(metrics);
        Ok(())
    }
}

impl FakeMetrics {
    /// The names and values published, in order.
    pub fn all(&self) -> Vec<(&'static str, f64)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|m| (m.name, m.value))
            .collect()
    }

    pub fn last(&self, name: &str) -> Option<f64> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }
}

/// The state table in memory, with DynamoDB's conditional-write semantics for
/// `put_if` (the condition and the write are one atomic step).
#[derive(Default)]
pub struct MemoryState(
    pub Mutex<BTreeMap<String, Item>>,
    /// Conditional writes that lost (the condition did not hold).
    pub std::sync::atomic::AtomicUsize,
);

impl MemoryState {
    pub fn lost_writes(&self) -> usize {
        self.1.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn item(&self, key: &str) -> Option<Item> {
        self.0.lock().unwrap().get(key).cloned()
    }

    pub fn insert(&self, key: &str, item: Item) {
        self.0.lock().unwrap().insert(key.to_string(), item);
    }
}

#[async_trait]
impl StateStore for MemoryState {
    async fn get(&self, key: &str) -> Result<Option<Item>, PortError> {
        tokio::task::yield_now().await;
        Ok(self.0.lock().unwrap().get(key).cloned())
    }

    async fn put(&self, key: &str, item: Item) -> Result<(), PortError> {
        tokio::task::yield_now().await;
        self.0.lock().unwrap().insert(key.to_string(), item);
        Ok(())
    }

    async fn put_if(
        &self,
        key: &str,
        item: Item,
        expected: Option<&str>,
    ) -> Result<bool, PortError> {
        tokio::task::yield_now().await;
        let mut table = self.0.lock().unwrap();
        let stored = table
            .get(key)
            .and_then(|i| i.get(VERSION))
            .map(String::as_str);
        if stored != expected {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return Ok(false);
        }
        table.insert(key.to_string(), item);
        Ok(true)
    }
}

/// A notifier that records notices (or fails when told to).
#[derive(Default)]
pub struct Recorder {
    pub sent: std::sync::Arc<Mutex<Vec<Notice>>>,
    pub fail: std::sync::Arc<Mutex<bool>>,
}

#[async_trait]
impl Notifier for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    async fn send(&self, notice: &Notice) -> Result<(), PortError> {
        tokio::task::yield_now().await;
        if *self.fail.lock().unwrap() {
            return Err(PortError("target down".into()));
        }
        self.sent.lock().unwrap().push(notice.clone());
        Ok(())
    }
}

/// The function's own HTTP client (no redirects, short timeouts).
pub fn http_client() -> reqwest::Client {
    airflow_scaler::http::client().unwrap()
}
